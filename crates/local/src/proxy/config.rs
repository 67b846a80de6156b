//! [`ProxyConfig`]: where the proxy listens and how it measures.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::trust::Net;
use crate::error::{Error, Result};

/// How a [`ProxyRouter`](crate::ProxyRouter) is set up. Serialized in camelCase; durations as
/// human strings (`1s`) or integer milliseconds; checked on load, errors naming the field
/// (`proxyConfig.connectTimeout`).
///
/// ```
/// use serin_local::ProxyConfig;
///
/// let c: ProxyConfig = serde_json::from_str(
///     r#"{"listen": "127.0.0.1:8080", "admin": "127.0.0.1:9090", "connectTimeout": "500ms"}"#,
/// )?;
/// assert_eq!(c.connect_timeout, std::time::Duration::from_millis(500));
/// let refused = serde_json::from_str::<ProxyConfig>(r#"{"connectTimeout": 0}"#).unwrap_err();
/// assert!(refused.to_string().contains("proxyConfig.connectTimeout `0s`"), "{refused}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawConfig", into = "RawConfig")]
#[non_exhaustive]
pub struct ProxyConfig {
    /// Where clients connect (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// Where `/metrics` (Prometheus text) and `/healthz` are served; none by default.
    pub admin: Option<SocketAddr>,
    /// How long opening a connection to an instance may take before the request is retried
    /// elsewhere (1 ms ..= 60 s; default 1 s).
    pub connect_timeout: Duration,
    /// The time resolution of the measurements (default 1 s).
    pub metrics_resolution: Duration,
    /// How long measurements are kept (default 1 h): a query of a window reaching further
    /// back is refused rather than answered with the part still kept.
    pub metrics_retention: Duration,
    /// Threads of its own the proxy serves clients on, each running a single-threaded runtime
    /// with its own share of the client connections and its own pool of connections to the
    /// instances, so a request is read, forwarded and answered on one thread without waking
    /// another (as nginx's worker processes do). `0` serves on the runtime that calls
    /// [`bind`](crate::ProxyRouter::bind) instead. At most 256.
    ///
    /// The default is one per core ([`std::thread::available_parallelism`]), at most 8: on a
    /// 2-core machine, two workers forwarded 1.22× the requests per second of the same proxy on
    /// a 2-thread multi-threaded tokio runtime (wrk, 64 connections, the `proxy` bench), since
    /// a request on the shared runtime is often woken on one thread and forwarded on another.
    /// The cap keeps an embedded proxy from taking a thread per core on a large machine whose
    /// cores also run the services behind it. Choose `0` when the proxy must live and die with
    /// the caller's runtime (paused-time tests, a single-threaded program).
    pub workers: u16,
    /// The largest request body, in bytes, that is mirrored along with its request (default
    /// 64 KiB, at most 16 MiB; `0`: requests with a body are never mirrored). Such a body is
    /// copied to the mirror as it streams to the chosen instance, so a mirrored request holds
    /// at most this much memory; requests with a larger body or one of unknown length
    /// (chunked) go to their instance but not to the mirror, and are counted
    /// ([`ProxyMetrics::mirror_skipped`](crate::ProxyMetrics::mirror_skipped)).
    pub mirror_body_limit: u64,
    /// How long a client may take to send a request's headers before its connection is closed
    /// (1 ms ..= 1 h; default 30 s, hyper's, where nginx's `client_header_timeout` is 60 s).
    /// Without it a client that opens connections and sends its headers a byte at a time holds
    /// them, and a connection in the middle of its headers, forever. It runs from the accept
    /// for the first request, whatever the protocol: a connection that sends nothing, or only
    /// the HTTP/2 preface, is closed then.
    ///
    /// It is the idle timeout too: a keep-alive connection, HTTP/1.1 or HTTP/2, with no
    /// request in progress for this long is closed (HTTP/2 with a `GOAWAY`, so the client's
    /// next request goes on a new connection and none is lost), as Go's `http.Server` uses its
    /// read timeout when no idle timeout is set; hyper already ties the two for HTTP/1.1.
    /// Without it an HTTP/2 client that answers pings held its connection for ever. A
    /// connection with a request in progress (a long poll, a download) stays open however long
    /// that takes; an HTTP/2 one is pinged every this long meanwhile and closed if a ping is not
    /// acknowledged within as long again (a client gone without a word).
    pub header_read_timeout: Duration,
    /// How long an instance may take to answer a request's headers once the request, body
    /// included, was sent (1 ms ..= 24 h; default 60 s, nginx's `proxy_read_timeout`); opening
    /// the connection is timed by [`connect_timeout`](Self::connect_timeout) alone. Past it
    /// the client gets a 504, counted as an error of the instance's backend, so a version that
    /// hangs is seen by the analysis (a request that never ends is never measured); a bodyless
    /// GET, HEAD or OPTIONS is first tried once more elsewhere, as after a failure. An upload
    /// takes as long as its client takes, within [`request_body_timeout`](Self::request_body_timeout)
    /// between chunks, and the body of a response that has begun is timed only between its
    /// reads ([`response_body_timeout`](Self::response_body_timeout)): streams and downloads
    /// run as long as they take. It also bounds a mirrored copy's wait for its answer
    /// and the reading of that answer.
    pub response_timeout: Duration,
    /// The longest pause allowed in sending a request body to an instance (1 ms ..= 24 h;
    /// default 60 s, nginx's `client_body_timeout` and `proxy_send_timeout`): how long the
    /// proxy waits for the client's next chunk, or for the instance to take the chunk it was
    /// given. An instance that stops reading an upload gets a 504 charged to its backend, as if
    /// it had not answered in time; a client that stops sending its body gets a 408, charged to
    /// no one. Either way the request ends, so it is measured and a drain does not wait for it.
    pub request_body_timeout: Duration,
    /// The longest pause allowed between two reads of a response body from an instance, once
    /// its headers came (1 ms ..= 24 h; default 60 s, nginx's `proxy_read_timeout`, which runs
    /// between two reads the same way). An instance that stalls in the middle of a body would
    /// otherwise hold the client's connection and its own in-flight count for ever, make every
    /// drain wait out its timeout, and never be counted: past this pause the answer is cut
    /// off (the client sees the connection or HTTP/2 stream end before the body's end, never
    /// a short body passed off as whole) and counted as an error of the instance's backend. A
    /// stream that sends something at least this often runs as long as it takes; a client that
    /// reads slowly is not timed by it.
    pub response_body_timeout: Duration,
    /// How long a keep-alive connection to an instance may stay unused in the proxy's pool
    /// before the proxy closes it (1 ms ..= 24 h; default 60 s, nginx's upstream
    /// `keepalive_timeout`; Envoy's idle timeout does the same). Without a limit the proxy held
    /// connections to an instance that no longer got traffic (a blue track at weight zero, a
    /// retired mirror) for as long as the instance kept them.
    ///
    /// Set it below the instances' own keep-alive timeout (Node's is 5 s, Go's `IdleTimeout`
    /// often 30 to 120 s): an instance that closes an idle connection just as the proxy sends a
    /// request on it fails that request after it left the proxy, and only a bodyless GET, HEAD
    /// or OPTIONS is then tried again; when the proxy closes first, no request is caught so.
    /// The idle time runs from the moment the last answer on the connection was read in full
    /// (from the arrival of its head, for a body read within the limit), and a connection with
    /// a request in flight, waiting for its answer or reading it, is never closed by it.
    pub upstream_idle_timeout: Duration,
    /// The proxies in front of this one whose forwarding headers are believed: addresses or
    /// CIDR ranges (`10.0.0.0/8`, `2001:db8::/32`, `192.0.2.7`); none by default.
    ///
    /// A request from one of them keeps its `Forwarded`, `X-Forwarded-For`,
    /// `X-Forwarded-Proto`, `X-Forwarded-Host`, `X-Forwarded-Port` and `X-Real-IP`, and the
    /// proxy appends its own entries to the first two (and sets `X-Forwarded-Proto: http` only
    /// if it is missing), so an instance sees the whole chain, as nginx's `set_real_ip_from`,
    /// Envoy's `xff_num_trusted_hops` and Traefik's `forwardedHeaders.trustedIPs` allow. From
    /// any other client those headers are dropped and the proxy's own put in their place: the
    /// instance gets `X-Forwarded-For` with the client's address alone, `X-Forwarded-Proto:
    /// http` and `Forwarded: for=…;proto=http`, so a client cannot pass itself off as another
    /// address, scheme or host. Checked on load: each entry must be an address or a range
    /// without address bits past its prefix (`10.0.0.1/8` is refused; write `10.0.0.0/8`).
    pub trusted_proxies: Vec<String>,
    /// The most header fields an HTTP/1.1 message head may have, a client's request or an
    /// instance's answer (32 ..= 1000; default 100, hyper's, as Envoy's `max_headers_count`,
    /// and about what nginx's 4 or 8 KiB buffer for an answer's head holds: a service behind
    /// either never sends more). A request with more is answered
    /// `431 Request Header Fields Too Large` by the proxy and reaches no instance; an answer
    /// with more is a 502, charged to the instance's backend as an error, since the version
    /// sent it, and logged with this limit. Each message head is parsed into room for this
    /// many fields: the default's is reserved on the stack, any other's is allocated for
    /// each message. HTTP/2 heads are bounded by size alone
    /// ([`max_request_head_size`](Self::max_request_head_size)).
    pub max_headers: usize,
    /// The largest request head a client may send, in bytes, its request line and header
    /// fields (8 KiB ..= 1 MiB; default 64 KiB, as Envoy's `max_request_headers_kb` of 60 KiB,
    /// where nginx takes 4 buffers of 8 KiB). A larger one is answered
    /// `431 Request Header Fields Too Large` by the proxy (HTTP/1.1, which then closes the
    /// connection; HTTP/2 on its stream alone, as its `SETTINGS_MAX_HEADER_LIST_SIZE`) and
    /// reaches no instance, so no backend is charged with it. It takes the place of hyper's
    /// own limits, about 400 KiB for an HTTP/1.1 head (every connection could hold that much)
    /// and 16 KiB for an HTTP/2 one. It bounds the read buffer of an HTTP/1.1 connection,
    /// so it is never below hyper's smallest buffer, 8 KiB; bodies and pipelined requests
    /// stream through that buffer and are not limited by it, only each head.
    pub max_request_head_size: usize,
    /// The largest answer head an instance may send, in bytes, its status line and header
    /// fields (8 KiB ..= 1 MiB; default 64 KiB, as Envoy's `max_response_headers_kb` of 60 KiB,
    /// where nginx's `proxy_buffer_size` is 4 or 8 KiB). A larger one is a 502, charged to the
    /// instance's backend as an error, since the version sent it, and logged with this limit.
    /// It takes the place of hyper's own limit, about 400 KiB, which every connection to an
    /// instance could hold for one answer's head. It bounds the read buffer of a connection to
    /// an instance, so it is never below hyper's smallest buffer, 8 KiB; answer bodies stream
    /// through that buffer and are not limited by it.
    pub max_response_head_size: usize,
}

/// The most worker threads a proxy may have.
const MAX_WORKERS: u16 = 256;

/// The most worker threads a proxy gets by default.
const DEFAULT_MAX_WORKERS: u16 = 8;

/// One worker per core, at most [`DEFAULT_MAX_WORKERS`]; one if the count is unknown.
fn default_workers() -> u16 {
    std::thread::available_parallelism()
        .map_or(1, |n| u16::try_from(n.get()).unwrap_or(u16::MAX))
        .min(DEFAULT_MAX_WORKERS)
}

/// The largest [`ProxyConfig::mirror_body_limit`]: the memory one mirrored request may hold.
const MAX_MIRROR_BODY_LIMIT: u64 = 16 * 1024 * 1024;

/// hyper's limit on a message head's fields, for which it reserves room on the stack.
const HYPER_MAX_HEADERS: usize = 100;

/// The range of [`ProxyConfig::max_headers`]: fewer would refuse a browser's ordinary
/// requests, more would have every message head parsed into room for thousands of fields.
const MAX_HEADERS: std::ops::RangeInclusive<usize> = 32..=1_000;

/// The range of [`ProxyConfig::max_request_head_size`] and
/// [`ProxyConfig::max_response_head_size`]: hyper's smallest read buffer, and a bound on the
/// memory one connection's head may hold.
const MAX_HEAD_SIZE: std::ops::RangeInclusive<usize> = 8 * 1024..=1024 * 1024;

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: None,
            connect_timeout: Duration::from_secs(1),
            metrics_resolution: Duration::from_secs(1),
            metrics_retention: Duration::from_secs(3_600),
            workers: default_workers(),
            mirror_body_limit: 64 * 1024,
            header_read_timeout: Duration::from_secs(30),
            response_timeout: Duration::from_secs(60),
            request_body_timeout: Duration::from_secs(60),
            response_body_timeout: Duration::from_secs(60),
            upstream_idle_timeout: super::upstream::DEFAULT_IDLE_TIMEOUT,
            trusted_proxies: Vec::new(),
            max_headers: HYPER_MAX_HEADERS,
            max_request_head_size: 64 * 1024,
            max_response_head_size: 64 * 1024,
        }
    }
}

impl ProxyConfig {
    /// The defaults, listening on `listen`.
    pub fn listening_on(listen: SocketAddr) -> Self {
        ProxyConfig {
            listen,
            ..Self::default()
        }
    }

    /// With an admin listener.
    pub fn with_admin(mut self, admin: SocketAddr) -> Self {
        self.admin = Some(admin);
        self
    }

    /// With another connect timeout.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// With another measurement resolution and retention.
    pub fn with_metrics(mut self, resolution: Duration, retention: Duration) -> Self {
        self.metrics_resolution = resolution;
        self.metrics_retention = retention;
        self
    }

    /// Served on `workers` threads of its own (`0`: on the caller's runtime).
    pub fn with_workers(mut self, workers: u16) -> Self {
        self.workers = workers;
        self
    }

    /// Mirrors requests whose body has at most `bytes` bytes (`0`: only bodyless requests).
    pub fn with_mirror_body_limit(mut self, bytes: u64) -> Self {
        self.mirror_body_limit = bytes;
        self
    }

    /// With another limit on the time a client may take to send a request's headers.
    pub fn with_header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// With another limit on the time an instance may take to answer a request's headers.
    pub fn with_response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// With another limit on the pauses in reading a response body.
    pub fn with_response_body_timeout(mut self, timeout: Duration) -> Self {
        self.response_body_timeout = timeout;
        self
    }

    /// With another limit on the pauses in sending a request body.
    pub fn with_request_body_timeout(mut self, timeout: Duration) -> Self {
        self.request_body_timeout = timeout;
        self
    }

    /// With another limit on the time a connection to an instance may stay unused.
    pub fn with_upstream_idle_timeout(mut self, timeout: Duration) -> Self {
        self.upstream_idle_timeout = timeout;
        self
    }

    /// Believing the forwarding headers of requests from `proxies`: addresses or CIDR ranges
    /// (see [`trusted_proxies`](Self::trusted_proxies)).
    pub fn with_trusted_proxies<S: Into<String>>(
        mut self,
        proxies: impl IntoIterator<Item = S>,
    ) -> Self {
        self.trusted_proxies = proxies.into_iter().map(Into::into).collect();
        self
    }

    /// Taking message heads of at most `fields` header fields.
    pub fn with_max_headers(mut self, fields: usize) -> Self {
        self.max_headers = fields;
        self
    }

    /// Taking request heads of at most `bytes` bytes.
    pub fn with_max_request_head_size(mut self, bytes: usize) -> Self {
        self.max_request_head_size = bytes;
        self
    }

    /// Taking answer heads of at most `bytes` bytes from the instances.
    pub fn with_max_response_head_size(mut self, bytes: usize) -> Self {
        self.max_response_head_size = bytes;
        self
    }

    /// [`max_headers`](Self::max_headers) for hyper's builders: `None` for hyper's own, which
    /// it parses without an allocation.
    pub(super) fn hyper_max_headers(&self) -> Option<usize> {
        (self.max_headers != HYPER_MAX_HEADERS).then_some(self.max_headers)
    }

    /// The trusted ranges, read; the first bad one is an error naming it.
    pub(super) fn trusted_nets(&self) -> Result<Vec<Net>> {
        self.trusted_proxies
            .iter()
            .enumerate()
            .map(|(i, text)| {
                Net::parse(text).map_err(|reason| {
                    Error::invalid(format!("proxyConfig.trustedProxies[{i}]"), text, reason)
                })
            })
            .collect()
    }

    /// Checks every field; [`ProxyRouter::bind`](crate::ProxyRouter::bind) calls it.
    pub fn validate(&self) -> Result<()> {
        let within = |field: &str, value: Duration, max: Duration, max_text: &str| {
            if (Duration::from_millis(1)..=max).contains(&value) {
                Ok(())
            } else {
                Err(Error::invalid(
                    format!("proxyConfig.{field}"),
                    serin_signals::duration::human(value),
                    format!("must be between 1ms and {max_text}"),
                ))
            }
        };
        within(
            "connectTimeout",
            self.connect_timeout,
            Duration::from_secs(60),
            "60s",
        )?;
        within(
            "headerReadTimeout",
            self.header_read_timeout,
            Duration::from_secs(3_600),
            "1h",
        )?;
        within(
            "responseTimeout",
            self.response_timeout,
            Duration::from_secs(86_400),
            "24h",
        )?;
        within(
            "requestBodyTimeout",
            self.request_body_timeout,
            Duration::from_secs(86_400),
            "24h",
        )?;
        within(
            "responseBodyTimeout",
            self.response_body_timeout,
            Duration::from_secs(86_400),
            "24h",
        )?;
        within(
            "upstreamIdleTimeout",
            self.upstream_idle_timeout,
            Duration::from_secs(86_400),
            "24h",
        )?;
        if self.workers > MAX_WORKERS {
            return Err(Error::invalid(
                "proxyConfig.workers",
                self.workers,
                format!("must be at most {MAX_WORKERS} (0 serves on the caller's runtime)"),
            ));
        }
        if self.mirror_body_limit > MAX_MIRROR_BODY_LIMIT {
            return Err(Error::invalid(
                "proxyConfig.mirrorBodyLimit",
                self.mirror_body_limit,
                format!(
                    "must be at most {MAX_MIRROR_BODY_LIMIT} bytes (16 MiB): a mirrored body \
                     is held in memory while it streams"
                ),
            ));
        }
        if !MAX_HEADERS.contains(&self.max_headers) {
            return Err(Error::invalid(
                "proxyConfig.maxHeaders",
                self.max_headers,
                format!(
                    "must be between {} and {} header fields",
                    MAX_HEADERS.start(),
                    MAX_HEADERS.end()
                ),
            ));
        }
        for (field, value) in [
            ("maxRequestHeadSize", self.max_request_head_size),
            ("maxResponseHeadSize", self.max_response_head_size),
        ] {
            if !MAX_HEAD_SIZE.contains(&value) {
                return Err(Error::invalid(
                    format!("proxyConfig.{field}"),
                    value,
                    "must be between 8192 bytes (8 KiB) and 1048576 bytes (1 MiB)",
                ));
            }
        }
        self.trusted_nets()?;
        crate::metrics::Store::new(self.metrics_resolution, self.metrics_retention).map(|_| ())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "default_listen")]
    listen: SocketAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    admin: Option<SocketAddr>,
    #[serde(default = "default_connect", with = "serin_signals::duration")]
    connect_timeout: Duration,
    #[serde(default = "default_resolution", with = "serin_signals::duration")]
    metrics_resolution: Duration,
    #[serde(default = "default_retention", with = "serin_signals::duration")]
    metrics_retention: Duration,
    #[serde(default = "default_workers")]
    workers: u16,
    #[serde(default = "default_mirror_body_limit")]
    mirror_body_limit: u64,
    #[serde(default = "default_header_read", with = "serin_signals::duration")]
    header_read_timeout: Duration,
    #[serde(default = "default_response", with = "serin_signals::duration")]
    response_timeout: Duration,
    #[serde(default = "default_request_body", with = "serin_signals::duration")]
    request_body_timeout: Duration,
    #[serde(default = "default_response_body", with = "serin_signals::duration")]
    response_body_timeout: Duration,
    #[serde(default = "default_upstream_idle", with = "serin_signals::duration")]
    upstream_idle_timeout: Duration,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    trusted_proxies: Vec<String>,
    #[serde(default = "default_max_headers")]
    max_headers: usize,
    #[serde(default = "default_max_request_head_size")]
    max_request_head_size: usize,
    #[serde(default = "default_max_response_head_size")]
    max_response_head_size: usize,
}

fn default_listen() -> SocketAddr {
    ProxyConfig::default().listen
}
fn default_connect() -> Duration {
    ProxyConfig::default().connect_timeout
}
fn default_resolution() -> Duration {
    ProxyConfig::default().metrics_resolution
}
fn default_retention() -> Duration {
    ProxyConfig::default().metrics_retention
}
fn default_mirror_body_limit() -> u64 {
    ProxyConfig::default().mirror_body_limit
}
fn default_header_read() -> Duration {
    ProxyConfig::default().header_read_timeout
}
fn default_response() -> Duration {
    ProxyConfig::default().response_timeout
}
fn default_request_body() -> Duration {
    ProxyConfig::default().request_body_timeout
}
fn default_response_body() -> Duration {
    ProxyConfig::default().response_body_timeout
}
fn default_upstream_idle() -> Duration {
    ProxyConfig::default().upstream_idle_timeout
}
fn default_max_headers() -> usize {
    ProxyConfig::default().max_headers
}
fn default_max_request_head_size() -> usize {
    ProxyConfig::default().max_request_head_size
}
fn default_max_response_head_size() -> usize {
    ProxyConfig::default().max_response_head_size
}

impl TryFrom<RawConfig> for ProxyConfig {
    type Error = Error;
    fn try_from(r: RawConfig) -> Result<Self> {
        let c = ProxyConfig {
            listen: r.listen,
            admin: r.admin,
            connect_timeout: r.connect_timeout,
            metrics_resolution: r.metrics_resolution,
            metrics_retention: r.metrics_retention,
            workers: r.workers,
            mirror_body_limit: r.mirror_body_limit,
            header_read_timeout: r.header_read_timeout,
            response_timeout: r.response_timeout,
            request_body_timeout: r.request_body_timeout,
            response_body_timeout: r.response_body_timeout,
            upstream_idle_timeout: r.upstream_idle_timeout,
            trusted_proxies: r.trusted_proxies,
            max_headers: r.max_headers,
            max_request_head_size: r.max_request_head_size,
            max_response_head_size: r.max_response_head_size,
        };
        c.validate()?;
        Ok(c)
    }
}

impl From<ProxyConfig> for RawConfig {
    fn from(c: ProxyConfig) -> Self {
        RawConfig {
            listen: c.listen,
            admin: c.admin,
            connect_timeout: c.connect_timeout,
            metrics_resolution: c.metrics_resolution,
            metrics_retention: c.metrics_retention,
            workers: c.workers,
            mirror_body_limit: c.mirror_body_limit,
            header_read_timeout: c.header_read_timeout,
            response_timeout: c.response_timeout,
            request_body_timeout: c.request_body_timeout,
            response_body_timeout: c.response_body_timeout,
            upstream_idle_timeout: c.upstream_idle_timeout,
            trusted_proxies: c.trusted_proxies,
            max_headers: c.max_headers,
            max_request_head_size: c.max_request_head_size,
            max_response_head_size: c.max_response_head_size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_and_bad_fields_are_named() {
        let c = ProxyConfig::default();
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<ProxyConfig>(&json).unwrap(), c);
        for (json, field) in [
            (r#"{"connectTimeout": "2m"}"#, "proxyConfig.connectTimeout"),
            (
                r#"{"metricsResolution": 0}"#,
                "proxyConfig.metricsResolution",
            ),
            (
                r#"{"metricsRetention": "1ms"}"#,
                "proxyConfig.metricsRetention",
            ),
            (r#"{"workers": 257}"#, "proxyConfig.workers"),
            (
                r#"{"mirrorBodyLimit": 16777217}"#,
                "proxyConfig.mirrorBodyLimit",
            ),
            (
                r#"{"headerReadTimeout": "2h"}"#,
                "proxyConfig.headerReadTimeout",
            ),
            (
                r#"{"headerReadTimeout": 0}"#,
                "proxyConfig.headerReadTimeout",
            ),
            (
                r#"{"responseTimeout": "25h"}"#,
                "proxyConfig.responseTimeout",
            ),
            (
                r#"{"requestBodyTimeout": "25h"}"#,
                "proxyConfig.requestBodyTimeout",
            ),
            (
                r#"{"requestBodyTimeout": 0}"#,
                "proxyConfig.requestBodyTimeout",
            ),
            (
                r#"{"responseBodyTimeout": "25h"}"#,
                "proxyConfig.responseBodyTimeout",
            ),
            (
                r#"{"upstreamIdleTimeout": 0}"#,
                "proxyConfig.upstreamIdleTimeout",
            ),
            (
                r#"{"upstreamIdleTimeout": "25h"}"#,
                "proxyConfig.upstreamIdleTimeout",
            ),
            (r#"{"maxHeaders": 31}"#, "proxyConfig.maxHeaders"),
            (r#"{"maxHeaders": 1001}"#, "proxyConfig.maxHeaders"),
            (
                r#"{"maxRequestHeadSize": 8191}"#,
                "proxyConfig.maxRequestHeadSize",
            ),
            (
                r#"{"maxRequestHeadSize": 1048577}"#,
                "proxyConfig.maxRequestHeadSize",
            ),
            (
                r#"{"maxResponseHeadSize": 8191}"#,
                "proxyConfig.maxResponseHeadSize",
            ),
            (
                r#"{"maxResponseHeadSize": 1048577}"#,
                "proxyConfig.maxResponseHeadSize",
            ),
        ] {
            let e = serde_json::from_str::<ProxyConfig>(json)
                .unwrap_err()
                .to_string();
            assert!(e.contains(field), "{json}: {e}");
        }
        assert!(serde_json::from_str::<ProxyConfig>(r#"{"port": 80}"#).is_err());
        let two: ProxyConfig = serde_json::from_str(r#"{"workers": 2}"#).unwrap();
        assert_eq!(two, ProxyConfig::default().with_workers(2));
        assert_eq!(c.mirror_body_limit, 65_536);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(usize::from(c.workers), cores.clamp(1, 8));
        let caller: ProxyConfig = serde_json::from_str(r#"{"workers": 0}"#).unwrap();
        assert_eq!(caller.workers, 0);
        assert_eq!(c.request_body_timeout, Duration::from_secs(60));
        let body: ProxyConfig = serde_json::from_str(r#"{"requestBodyTimeout": "250ms"}"#).unwrap();
        assert_eq!(
            body,
            ProxyConfig::default().with_request_body_timeout(Duration::from_millis(250))
        );
        let e = serde_json::from_str::<ProxyConfig>(r#"{"requestBodyTimeout": "25h"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`1day 1h`") && e.contains("between 1ms and 24h"),
            "{e}"
        );
        assert_eq!(c.upstream_idle_timeout, Duration::from_secs(60));
        let idle: ProxyConfig = serde_json::from_str(r#"{"upstreamIdleTimeout": "4s"}"#).unwrap();
        assert_eq!(
            idle,
            ProxyConfig::default().with_upstream_idle_timeout(Duration::from_secs(4))
        );
        let e = ProxyConfig::default()
            .with_upstream_idle_timeout(Duration::ZERO)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("proxyConfig.upstreamIdleTimeout") && e.contains("between 1ms and 24h"),
            "{e}"
        );
        let none: ProxyConfig = serde_json::from_str(r#"{"mirrorBodyLimit": 0}"#).unwrap();
        assert_eq!(none, ProxyConfig::default().with_mirror_body_limit(0));
        assert_eq!((c.max_headers, c.hyper_max_headers()), (100, None));
        assert_eq!(c.max_request_head_size, 65_536);
        assert_eq!(c.max_response_head_size, 65_536);
        let heads: ProxyConfig = serde_json::from_str(
            r#"{"maxHeaders": 200, "maxRequestHeadSize": 8192, "maxResponseHeadSize": 131072}"#,
        )
        .unwrap();
        assert_eq!(
            heads,
            ProxyConfig::default()
                .with_max_headers(200)
                .with_max_request_head_size(8_192)
                .with_max_response_head_size(131_072)
        );
        assert_eq!(heads.hyper_max_headers(), Some(200));
        // A buffer below hyper's minimum would panic in hyper, not be refused here.
        let e = ProxyConfig::default()
            .with_max_request_head_size(4_096)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("proxyConfig.maxRequestHeadSize") && e.contains("4096"),
            "{e}"
        );
        let e = ProxyConfig::default()
            .with_max_response_head_size(4_096)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("proxyConfig.maxResponseHeadSize") && e.contains("4096"),
            "{e}"
        );
    }

    #[test]
    fn trusted_proxies_are_read_and_a_bad_one_is_named_with_its_index() {
        let c: ProxyConfig =
            serde_json::from_str(r#"{"trustedProxies": ["10.0.0.0/8", "::1"]}"#).unwrap();
        assert_eq!(
            c,
            ProxyConfig::default().with_trusted_proxies(["10.0.0.0/8", "::1"])
        );
        let json = serde_json::to_string(&c).unwrap();
        assert!(
            json.contains(r#""trustedProxies":["10.0.0.0/8","::1"]"#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<ProxyConfig>(&json).unwrap(), c);
        assert!(c.trusted_nets().unwrap()[0].contains([10, 1, 2, 3].into()));
        assert!(
            !serde_json::to_string(&ProxyConfig::default())
                .unwrap()
                .contains("trustedProxies")
        );
        let e = serde_json::from_str::<ProxyConfig>(
            r#"{"trustedProxies": ["10.0.0.0/8", "10.0.0.1/8"]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("proxyConfig.trustedProxies[1]")
                && e.contains("`10.0.0.1/8`")
                && e.contains("write 10.0.0.0/8"),
            "{e}"
        );
        let built = ProxyConfig::default().with_trusted_proxies(["edge"]);
        let e = built.validate().unwrap_err().to_string();
        assert!(e.contains("proxyConfig.trustedProxies[0]"), "{e}");
    }
}
