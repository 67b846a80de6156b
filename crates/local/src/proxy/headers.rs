//! What a request and its answer carry through the proxy: hop-by-hop headers removed (RFC 9110,
//! 7.6.1) except a protocol switch's own (or a demand for one), a client's `TE: trailers` said
//! again to the instance (10.1.4), `Max-Forwards` read (7.6.2), `Via` added to both (7.6.3),
//! `Forwarded` (RFC 7239), `X-Forwarded-For` and `X-Forwarded-Proto` added to requests (a
//! client's own kept only when it is a trusted proxy), a valid `Host` always (RFC 9112, 3.2),
//! an HTTP/2 client's split cookies joined (RFC 9113, 8.2.3), and a `100-continue`
//! expectation met by the proxy rather than passed on, any other passed on (RFC 9110, 10.1.1).

use std::net::{IpAddr, SocketAddr};

use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Uri, Version};

use super::Body;
use super::trust::Net;

/// `X-Forwarded-For` and `X-Forwarded-Proto`, de facto standard.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// The headers by which a proxy tells the next hop who its client was: believed only from a
/// trusted proxy, dropped from anyone else (Traefik's list, without its own extensions).
const FORWARDING: [HeaderName; 6] = [
    header::FORWARDED,
    X_FORWARDED_FOR,
    X_FORWARDED_PROTO,
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-real-ip"),
];

/// Headers that belong to one connection and are not forwarded (RFC 9110, 7.6.1), and a
/// proxy's own authentication (11.7): credentials for the next proxy that asked for them, and
/// a challenge from the previous one. This proxy asks for none, so an instance gets no
/// credentials meant for a proxy, and a client no challenge this proxy never made.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The client connection a request came on.
#[derive(Debug, Clone, Default)]
pub(super) struct Peer {
    /// The proxy's address as the client reached it.
    local: Option<SocketAddr>,
    /// Whether the client is a trusted proxy, whose forwarding headers are kept.
    trusted: bool,
    /// This hop's `X-Forwarded-For` entry and `Forwarded` element (the client's address),
    /// made once for all the connection's requests.
    forwarded_for: Option<HeaderValue>,
    forwarded: Option<HeaderValue>,
}

impl Peer {
    /// The connection from `client` to the proxy's `local` address; `trusted` lists the
    /// proxies whose forwarding headers are kept.
    pub(super) fn new(
        client: Option<SocketAddr>,
        local: Option<SocketAddr>,
        trusted: &[Net],
    ) -> Self {
        let ip = client.map(|c| c.ip().to_canonical());
        Peer {
            local,
            trusted: ip.is_some_and(|ip| trusted.iter().any(|n| n.contains(ip))),
            forwarded_for: ip.and_then(|ip| HeaderValue::from_str(&ip.to_string()).ok()),
            forwarded: ip.and_then(|ip| {
                // RFC 7239, 6: an IPv6 node is bracketed and, with its `:`, quoted.
                let node = match ip {
                    IpAddr::V4(v4) => v4.to_string(),
                    IpAddr::V6(v6) => format!("\"[{v6}]\""),
                };
                HeaderValue::from_str(&format!("for={node};proto=http")).ok()
            }),
        }
    }
}

/// Adds this hop's `value` to the field `name`, after the values already there.
fn append_entry(headers: &mut HeaderMap, name: HeaderName, value: &HeaderValue) {
    if headers.contains_key(&name) {
        join_field(headers, name, Some(value.as_bytes()), b", ");
    } else {
        headers.insert(name, value.clone());
    }
}

/// Removes the hop-by-hop headers (those of `HOP_BY_HOP` and those named in `Connection`);
/// with `keep_upgrade`, for a protocol switch or a `426 Upgrade Required` (which MUST name the
/// protocols to switch to, RFC 9110, 15.5.22), `Upgrade` stays and `Connection` says `upgrade`.
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Headers named in `Connection` are hop-by-hop too, but for `Host`: it names the target,
    // not the connection (RFC 9112, 3.2), and dropping it on a client's word would send the
    // request to the instance with the proxy's own address as its host, as neither nginx nor
    // Envoy ever does.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::try_from(n.trim()).ok())
        .filter(|n| *n != header::HOST)
        .collect();
    let upgrade: Vec<HeaderValue> = if keep_upgrade {
        headers.get_all(header::UPGRADE).iter().cloned().collect()
    } else {
        Vec::new()
    };
    for h in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(h);
    }
    if !upgrade.is_empty() {
        for v in upgrade {
            headers.append(header::UPGRADE, v);
        }
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Whether the comma-separated header `name` lists `token`.
fn lists(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Makes a response that carries the proxy's sticky cookie one no shared cache may store
/// (RFC 9111, 5.2.2.7), as HAProxy's `cookie … insert nocache` does: a CDN or shared proxy in
/// front of this one would otherwise replay the answer, cookie and all, to other clients, and
/// pin them all to one backend. `private` is added to `Cache-Control` (made when missing: an
/// answer without it may be stored for its `Expires` or heuristic freshness), `public` goes
/// (`public, private` contradicts itself), and a `private` for named fields only becomes one
/// for the whole answer. One that is private or `no-store` already keeps its header as it is,
/// but for `no-store` beside `must-understand`, which a cache that knows the status code
/// ignores (5.2.2.3). `no-cache` is no such answer: it is stored, and served again once
/// revalidated, cookie and all. A shared cache's own directives (`s-maxage`,
/// `proxy-revalidate`) are kept, moot beside `private`.
pub(super) fn keep_from_shared_caches(headers: &mut HeaderMap) {
    let mut kept: Vec<&[u8]> = Vec::new();
    let (mut private, mut no_store, mut must_understand, mut dropped) =
        (false, false, false, false);
    for v in headers.get_all(header::CACHE_CONTROL) {
        for d in directives(v.as_bytes()) {
            let name = d.split(|&b| b == b'=').next().unwrap_or(d).trim_ascii();
            if name.eq_ignore_ascii_case(b"public")
                || (name.eq_ignore_ascii_case(b"private") && name.len() < d.len())
            {
                dropped = true;
                continue;
            }
            private |= d.eq_ignore_ascii_case(b"private");
            no_store |= d.eq_ignore_ascii_case(b"no-store");
            must_understand |= d.eq_ignore_ascii_case(b"must-understand");
            kept.push(d);
        }
    }
    let unstorable = private || (no_store && !must_understand);
    if unstorable && !dropped {
        return;
    }
    if !unstorable {
        kept.push(b"private");
    }
    if let Ok(v) = HeaderValue::from_bytes(&kept.join(&b", "[..])) {
        headers.insert(header::CACHE_CONTROL, v);
    }
}

/// The directives of a `Cache-Control` value, split at the commas outside quoted strings
/// (`no-cache="Set-Cookie, Vary"` is one directive).
fn directives(v: &[u8]) -> Vec<&[u8]> {
    let mut found = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, &b) in v.iter().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b',' if !quoted => {
                found.push(&v[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    found.push(&v[start..]);
    found
        .into_iter()
        .map(<[u8]>::trim_ascii)
        .filter(|d| !d.is_empty())
        .collect()
}

/// How many more hops a `TRACE` or `OPTIONS` request may take past this one (RFC 9110,
/// 7.6.2): the value of its one `Max-Forwards` field, a count of digits (one too large for a
/// `u64` is as good as endless). `None` without the field, or with a value that is no count
/// (or with two): such a request is passed on as it came, for the next hop to judge.
pub(super) fn max_forwards(headers: &HeaderMap) -> Option<u64> {
    let mut fields = headers.get_all(header::MAX_FORWARDS).iter();
    let value = fields.next()?.as_bytes();
    if fields.next().is_some() || value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, d| {
        d.is_ascii_digit()
            .then(|| n.saturating_mul(10).saturating_add(u64::from(d - b'0')))
    })
}

/// Whether every transfer coding named in `Transfer-Encoding` is `chunked` (true without
/// the header). The proxy decodes chunked framing and frames the message again for the next
/// hop; any other coding (`gzip, chunked`) would reach the next hop still applied but no
/// longer named, as a body it cannot read, so such a message is refused instead: a request
/// with `501 Not Implemented` (RFC 9112, 6.1), a response with a body with a 502 (as nginx
/// does).
pub(super) fn only_chunked(headers: &HeaderMap) -> bool {
    headers.get_all(header::TRANSFER_ENCODING).iter().all(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .map(str::trim)
                .all(|c| c.is_empty() || c.eq_ignore_ascii_case("chunked"))
        })
    })
}

/// Why a request's `Host` makes it unanswerable (RFC 9112, 3.2: a server MUST answer 400 to
/// an HTTP/1.1 request without `Host`, to any request with more than one, and to one whose
/// `Host` is not a host), as nginx answers: passing on two would let the proxy route by one
/// and the instance serve the other, one that is no host (`shop/admin`, `evil@shop`) would
/// reach the instance's links and redirects as if it were, and inventing one for HTTP/1.1
/// would hide a broken client. A request whose target carries an authority (absolute form,
/// HTTP/2's `:authority`) needs no `Host`.
pub(super) fn bad_host<B>(req: &Request<B>) -> Option<&'static str> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return Some("more than one Host header");
    }
    if first.is_some_and(|h| !is_host(h.as_bytes())) {
        return Some("the Host header is not a host");
    }
    (first.is_none() && req.version() == Version::HTTP_11 && req.uri().authority().is_none())
        .then_some("an HTTP/1.1 request needs a Host header")
}

/// Whether `v` is a `Host` value, `uri-host [ ":" port ]` (RFC 9110, 7.2): a name or IPv4
/// address (RFC 3986's `reg-name`: unreserved characters, percent-escapes and sub-delims) or a
/// bracketed IP literal, and a port of digits.
fn is_host(v: &[u8]) -> bool {
    let (host, port) = match v.iter().rposition(|&b| b == b':') {
        Some(i) if !v.ends_with(b"]") => (&v[..i], &v[i + 1..]),
        _ => (v, &b""[..]),
    };
    let named = |b: &u8| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(b);
    let fine = match host.strip_prefix(b"[").and_then(|h| h.strip_suffix(b"]")) {
        Some(ip) => ip.iter().all(|b| named(b) || *b == b':'),
        None => host.iter().all(named),
    };
    fine && !host.is_empty() && port.iter().all(u8::is_ascii_digit)
}

/// Whether `name` is one of the forwarding headers spelled with `_` for `-`
/// (`x_forwarded_for`): CGI-style servers (WSGI, Rack, PHP) read both spellings as one
/// variable, so a client could pass itself off as another address by it (nginx drops every
/// name with `_` for this).
fn disguised(name: &HeaderName) -> bool {
    let name = name.as_str().as_bytes();
    name.contains(&b'_')
        && FORWARDING.iter().any(|f| {
            let f = f.as_str().as_bytes();
            f.len() == name.len()
                && f.iter()
                    .zip(name)
                    .all(|(a, b)| a == b || (*a == b'-' && *b == b'_'))
        })
}

/// Whether `req` asks to switch protocols (a WebSocket handshake): HTTP/1.1 only (RFC 9110,
/// 7.8), with `Upgrade` named in `Connection`, and not to HTTP/2 (`h2c`).
///
/// An `h2c` upgrade is never passed on (Envoy drops it too): were the instance to accept it,
/// the connection would become a tunnel of HTTP/2 straight to that instance, and every later
/// request on it would bypass the split, the metrics and the drain (h2c smuggling). The client
/// goes on in HTTP/1.1, as the upgrade is optional; it can speak HTTP/2 to the proxy directly.
pub(super) fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && lists(req.headers(), header::CONNECTION, "upgrade")
        && !req
            .headers()
            .get_all(header::UPGRADE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim().eq_ignore_ascii_case("h2c"))
}

/// The proxy's `Via` entry for a message received in version `v` (RFC 9110, 7.6.3: the
/// protocol's name is left out for HTTP, and the proxy calls itself `serin`).
pub(super) fn via(v: Version) -> &'static [u8] {
    match v {
        Version::HTTP_09 => b"0.9 serin",
        Version::HTTP_10 => b"1.0 serin",
        Version::HTTP_2 => b"2 serin",
        Version::HTTP_3 => b"3 serin",
        _ => b"1.1 serin",
    }
}

/// Puts the values of `name`, and `last` after them if given, into one field joined with
/// `sep`.
pub(super) fn join_field(
    headers: &mut HeaderMap,
    name: HeaderName,
    last: Option<&[u8]>,
    sep: &[u8],
) {
    if let Some(last) = last
        && !headers.contains_key(&name)
    {
        // The common case: nothing to join.
        if let Ok(v) = HeaderValue::from_bytes(last) {
            headers.insert(name, v);
        }
        return;
    }
    let mut joined = Vec::new();
    let values = headers.get_all(&name).iter().map(HeaderValue::as_bytes);
    for v in values.chain(last).map(<[u8]>::trim_ascii) {
        if v.is_empty() {
            continue;
        }
        if !joined.is_empty() {
            joined.extend_from_slice(sep);
        }
        joined.extend_from_slice(v);
    }
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        headers.insert(name, v);
    }
}

/// Gives `req` the `Host` it is forwarded with (RFC 9112, 3.2), before it is routed, so that a
/// route on `host` sees what the instance will: the target's authority (absolute form, HTTP/2's
/// `:authority`, which comes without a `host` field) wins over the client's `Host` (3.2.2),
/// and an HTTP/1.0 request with neither gets the proxy's address as the client reached it (an
/// HTTP/1.1 one without was answered 400, see [`bad_host`]).
pub(super) fn set_host<B>(req: &mut Request<B>, peer: &Peer) {
    let host = match req.uri().authority() {
        Some(a) => HeaderValue::from_str(match a.as_str().rsplit_once('@') {
            Some((_, host)) => host,
            None => a.as_str(),
        })
        .ok(),
        None if req.headers().contains_key(header::HOST) => None,
        None => peer
            .local
            .and_then(|l| HeaderValue::from_str(&l.to_string()).ok()),
    };
    if let Some(host) = host {
        req.headers_mut().insert(header::HOST, host);
    }
}

/// The request as sent to an instance: HTTP/1.1, origin-form URI, `Host` kept as
/// [`set_host`] set it, split `cookie` fields joined (RFC 9113, 8.2.3), hop-by-hop headers
/// removed (all but the protocol switch of an `upgrade`), `Via` added, forwarding headers
/// added to a trusted proxy's or put in place of anyone else's, body streamed.
pub(super) fn upstream_request(
    req: Request<Incoming>,
    peer: &Peer,
    upgrade: bool,
) -> Request<Body> {
    let (mut parts, body) = req.into_parts();
    // `TE` is the client's own connection's, but its `trailers` says that the client takes
    // trailers, which an instance that honours `TE` sends only when told (RFC 9110, 10.1.4).
    let trailers = lists(&parts.headers, header::TE, "trailers");
    // Before anything is added: a client could name the proxy's own headers in `Connection`.
    strip_hop_by_hop(&mut parts.headers, upgrade);
    // A `100-continue` is met here: hyper says `100 Continue` when the body is first read, as
    // it is sent to the instance. Asked again, the instance's `100` would stop at the proxy;
    // and an HTTP/1.0 client's, to be ignored (RFC 9110, 10.1.1), would become an HTTP/1.1 one.
    // Any other expectation listed with it goes on, for the instance to meet or to answer 417:
    // dropped, the request would be served as if the client had asked for nothing.
    if lists(&parts.headers, header::EXPECT, "100-continue") {
        let others: Vec<Vec<u8>> = parts
            .headers
            .get_all(header::EXPECT)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|m| !m.is_empty() && !m.eq_ignore_ascii_case(b"100-continue"))
            .map(<[u8]>::to_vec)
            .collect();
        parts.headers.remove(header::EXPECT);
        if !others.is_empty()
            && let Ok(v) = HeaderValue::from_bytes(&others.join(&b", "[..]))
        {
            parts.headers.insert(header::EXPECT, v);
        }
    }
    if trailers {
        parts
            .headers
            .insert(header::TE, HeaderValue::from_static("trailers"));
        parts
            .headers
            .append(header::CONNECTION, HeaderValue::from_static("te"));
    }
    // HTTP/2 lets a client split its cookies over several fields; HTTP/1.1 wants one.
    if parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .nth(1)
        .is_some()
    {
        join_field(&mut parts.headers, header::COOKIE, None, b"; ");
    }
    join_field(
        &mut parts.headers,
        header::VIA,
        Some(via(parts.version)),
        b", ",
    );
    // Only a trusted proxy's account of who its client was is passed on; anyone else could
    // write any address, scheme or host there.
    if !peer.trusted {
        for h in &FORWARDING {
            parts.headers.remove(h);
        }
        let disguised: Vec<HeaderName> = parts
            .headers
            .keys()
            .filter(|n| disguised(n))
            .cloned()
            .collect();
        for h in &disguised {
            parts.headers.remove(h);
        }
    }
    if let Some(v) = &peer.forwarded_for {
        append_entry(&mut parts.headers, X_FORWARDED_FOR, v);
    }
    if let Some(v) = &peer.forwarded {
        append_entry(&mut parts.headers, header::FORWARDED, v);
    }
    // The scheme the first proxy was reached by, if a trusted one said; else this hop's.
    if !parts.headers.contains_key(X_FORWARDED_PROTO) {
        parts
            .headers
            .insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    }
    // HTTP/1.1 clients send the origin form already: keep it as it is, without a copy. An
    // empty path is `/` in origin form (RFC 9112, 3.2.1), before the query if there is one.
    // An HTTP/2 `OPTIONS` for the whole server (`:path: *`) goes on in asterisk form (3.2.4),
    // not as a request for a resource `/*`. (An absolute form without a path reads as `/`
    // once parsed, so it goes on as `/`.)
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        let target = parts.uri.path_and_query().map_or("", |p| p.as_str());
        let path = if target.starts_with('/') {
            target.to_owned()
        } else if parts.method == Method::OPTIONS && target == "*" {
            "*".to_owned()
        } else {
            format!("/{target}")
        };
        parts.uri = Uri::try_from(path).unwrap_or_else(|_| Uri::from_static("/"));
    }
    // A body of unknown length (chunked, or HTTP/2 without `content-length`) goes on chunked:
    // without the header hyper's client would send a GET, HEAD or OPTIONS one as empty.
    if !body.is_end_stream() && body.size_hint().exact().is_none() {
        parts.headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
    }
    parts.version = Version::HTTP_11;
    Request::from_parts(parts, body.boxed())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn hop_by_hop_headers_go_but_a_protocol_switch_keeps_its_own() {
        let sent = headers(&[
            ("connection", "keep-alive, Upgrade, x-secret"),
            ("upgrade", "websocket"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("sec-websocket-key", "abc"),
        ]);
        let mut plain = sent.clone();
        strip_hop_by_hop(&mut plain, false);
        assert_eq!(plain, headers(&[("sec-websocket-key", "abc")]));
        let mut switch = sent;
        strip_hop_by_hop(&mut switch, true);
        assert_eq!(
            switch,
            headers(&[
                ("sec-websocket-key", "abc"),
                ("upgrade", "websocket"),
                ("connection", "upgrade"),
            ])
        );
    }

    #[test]
    fn max_forwards_is_a_count_of_digits_in_one_field() {
        let count = |pairs: &[(&'static str, &'static str)]| max_forwards(&headers(pairs));
        assert_eq!(count(&[("max-forwards", "0")]), Some(0));
        assert_eq!(count(&[("max-forwards", "12")]), Some(12));
        // Past what a `u64` holds: as good as endless.
        let huge = count(&[("max-forwards", "184467440737095516160")]);
        assert_eq!(huge, Some(u64::MAX));
        for no in ["", "two", "-1", "1, 2", "+3", "0x1"] {
            assert_eq!(count(&[("max-forwards", no)]), None, "{no:?}");
        }
        assert_eq!(count(&[]), None);
        assert_eq!(count(&[("max-forwards", "1"), ("max-forwards", "1")]), None);
    }

    #[test]
    fn a_client_cannot_strip_its_own_host_by_naming_it_in_connection() {
        let mut h = headers(&[
            ("host", "shop"),
            ("connection", "Host, x-secret"),
            ("x-secret", "1"),
        ]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h, headers(&[("host", "shop")]));
    }

    #[test]
    fn only_http_1_1_requests_naming_upgrade_in_connection_switch_protocols() {
        let req = |version, pairs: &[(&'static str, &'static str)]| {
            let mut r = Request::new(());
            *r.version_mut() = version;
            *r.headers_mut() = headers(pairs);
            r
        };
        let ws = [
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ];
        assert!(is_upgrade(&req(Version::HTTP_11, &ws)));
        assert!(!is_upgrade(&req(Version::HTTP_10, &ws)));
        assert!(!is_upgrade(&req(
            Version::HTTP_11,
            &[("upgrade", "websocket")]
        )));
        assert!(!is_upgrade(&req(
            Version::HTTP_11,
            &[("connection", "upgrade")]
        )));
        // An upgrade to HTTP/2 would take the connection out of the proxy's hands.
        for offer in ["h2c", "websocket, H2C"] {
            let h2c = [
                ("connection", "Upgrade, HTTP2-Settings"),
                ("upgrade", offer),
            ];
            assert!(!is_upgrade(&req(Version::HTTP_11, &h2c)), "{offer}");
        }
    }

    #[test]
    fn fields_are_joined_in_order_with_the_proxy_s_entry_last() {
        let mut h = headers(&[("via", "1.0 edge"), ("via", " 1.1 cdn "), ("cookie", "a=1")]);
        join_field(&mut h, header::VIA, Some(via(Version::HTTP_2)), b", ");
        assert_eq!(h["via"], "1.0 edge, 1.1 cdn, 2 serin");
        join_field(&mut h, X_FORWARDED_FOR, Some(b"10.0.0.1"), b", ");
        assert_eq!(h["x-forwarded-for"], "10.0.0.1");
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        join_field(&mut h, header::COOKIE, None, b"; ");
        assert_eq!(h.get_all(header::COOKIE).iter().count(), 1);
        assert_eq!(h["cookie"], "a=1; b=2");
    }

    #[test]
    fn a_pinned_answer_is_made_private_unless_no_cache_may_store_it() {
        let pin = "track=stable; Path=/; Max-Age=60; HttpOnly";
        for (sent, kept) in [
            (&[][..], &["private"][..]),
            // Stored, and served again once revalidated, stored cookies and all.
            (&["no-cache"], &["no-cache, private"]),
            // Several fields become one; directives are matched whatever their case, and a
            // shared cache's own (`s-maxage`, `proxy-revalidate`) are kept: `private` makes
            // them moot, and a private cache ignores them.
            (
                &["Public", "S-MAXAGE=60, proxy-revalidate", "no-cache"],
                &["S-MAXAGE=60, proxy-revalidate, no-cache, private"],
            ),
            (&["max-age=5", "PRIVATE"], &["max-age=5", "PRIVATE"]),
            (&["No-Store"], &["No-Store"]),
            // A cache that understands the status code ignores `no-store` (RFC 9111,
            // 5.2.2.3): it stores the answer, for as long as `max-age` says.
            (
                &["must-understand, no-store, max-age=60"],
                &["must-understand, no-store, max-age=60, private"],
            ),
            (
                &["MUST-UNDERSTAND", "no-store"],
                &["MUST-UNDERSTAND, no-store, private"],
            ),
            (
                &["private, must-understand, no-store"],
                &["private, must-understand, no-store"],
            ),
        ] {
            let mut h = HeaderMap::new();
            h.append(header::SET_COOKIE, HeaderValue::from_static("session=1"));
            h.append(header::SET_COOKIE, HeaderValue::from_static(pin));
            for v in sent {
                h.append(header::CACHE_CONTROL, HeaderValue::from_static(v));
            }
            keep_from_shared_caches(&mut h);
            let got: Vec<_> = h.get_all(header::CACHE_CONTROL).iter().collect();
            assert_eq!(got, kept, "{sent:?}");
            // The instance's own cookie, on the same answer, stays as it set it.
            let cookies: Vec<_> = h.get_all(header::SET_COOKIE).iter().collect();
            assert_eq!(cookies, ["session=1", pin], "{sent:?}");
        }
    }
}
