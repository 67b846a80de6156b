//! [`ProxyRouter`]: an HTTP/1.1 and HTTP/2 (cleartext) reverse proxy on hyper that routes each
//! request by the applied [`TrafficSplit`].

mod accept;
mod choose;
mod config;
mod conn;
mod headers;
mod mirror;
mod reading;
mod sent;
mod trust;
mod upstream;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body as _, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::upgrade::OnUpgrade;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use serin_orchestrator::TrackStatus;
use serin_traffic::{Capabilities, TrafficRouter, TrafficSplit};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

pub use config::ProxyConfig;

use crate::error::{Error, Result};
use crate::metrics::{ProxyMetrics, Store, now};
use accept::{Conns, spawn_workers};
use choose::{Reason, choose};
use conn::{Activity, Tracked};
use headers::{
    Peer, bad_host, is_upgrade, join_field, keep_from_shared_caches, max_forwards, only_chunked,
    set_host, strip_hop_by_hop, upstream_request, via,
};
use sent::Waiting;
use upstream::{Endpoint, InFlight, SendError};

/// The body type the proxy forwards: streamed, never buffered.
pub(crate) type Body = BoxBody<Bytes, hyper::Error>;

/// How many mirrored copies may be outstanding per mirror backend (sent and not yet answered
/// and read, or given up): past it a copy is dropped and counted, so a mirror that answers
/// slowly or not at all holds at most this many connections, however many requests come.
const MIRROR_CONCURRENCY: usize = 128;

/// The methods the proxy passes on, as its `Allow` says when it answers for itself: the
/// standard ones but `CONNECT` and `TRACE`, which it refuses.
const ALLOW: HeaderValue = HeaderValue::from_static("GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS");

/// What requests read: the split in force and the ready endpoints of each backend, swapped
/// whole, so a request sees either the old or the new of both, never a mix.
#[derive(Debug, Default)]
struct Snapshot {
    split: Option<Arc<TrafficSplit>>,
    backends: HashMap<String, Arc<Backend>>,
}

#[derive(Debug)]
struct Backend {
    endpoints: Vec<Arc<Endpoint>>,
    next: AtomicUsize,
}

impl Backend {
    /// The next endpoint in round-robin order, skipping `not`.
    fn pick(&self, not: Option<SocketAddr>) -> Option<Arc<Endpoint>> {
        let n = self.endpoints.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .filter_map(|i| self.endpoints.get(start.wrapping_add(i) % n))
            .find(|e| Some(e.addr()) != not)
            .cloned()
    }
}

#[derive(Debug)]
struct Shared {
    config: ProxyConfig,
    snapshot: RwLock<Arc<Snapshot>>,
    /// Serialises writers (apply, set_endpoints) so none loses another's change.
    write: Mutex<HashMap<SocketAddr, Arc<Endpoint>>>,
    metrics: Arc<Store>,
    /// The outstanding mirrored copies each mirror backend may still take.
    mirror_slots: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Becomes `true` (or closes) when the proxy stops: tunnels end with it.
    stopped: watch::Receiver<bool>,
    /// [`ProxyConfig::trusted_proxies`], read.
    trusted: Vec<trust::Net>,
}

/// The embedded reverse proxy, a [`TrafficRouter`] with [`Capabilities::full`]: weights to the
/// basis point, header and cookie match routes, sticky sessions by cookie, mirroring. The
/// sticky cookie is set `Path=/`, `HttpOnly`, with the session's TTL as its `Max-Age`, and
/// `Secure` too when its name has the `__Secure-` or `__Host-` prefix, as browsers require of
/// such names (for a proxy behind one that terminates TLS). An answer that carries it is made
/// `Cache-Control: private` (`public` removed, the other directives kept; one already private
/// or `no-store` is left as it is, unless `must-understand` lets a cache store it all the
/// same), as HAProxy's `cookie … insert nocache` does: a CDN or shared cache in front of the
/// proxy that stored it would hand the same cookie to every client it serves the answer to, and
/// pin them all to one backend. Answers without the cookie keep their caching headers as the
/// instance sent them.
///
/// - **Atomic splits.** [`apply`](TrafficRouter::apply) swaps one immutable snapshot; every
///   request reads one snapshot once, so none sees a half-applied split, and new requests follow
///   the new split at once. It never waits and never fails for a valid split.
/// - **Readiness gating.** Backends get their instances from
///   [`set_endpoints`](ProxyRouter::set_endpoints) (or [`sync_track`](ProxyRouter::sync_track)
///   from a platform's status): only ready instances are listed. A backend with no ready
///   instance gets no traffic; its weight goes to the split's other ready backends in proportion
///   to their weights, and with none ready the proxy answers 503. A client pinned by its sticky
///   cookie to a backend without a ready instance is served by weight meanwhile and keeps its
///   pin (no new `Set-Cookie`), so a restart does not move it off its version for the cookie's
///   lifetime.
/// - **Drain.** An instance removed from the endpoints gets no new request; its in-flight
///   requests finish and its idle keep-alive connections are closed.
///   [`wait_drained`](ProxyRouter::wait_drained) waits until nothing is in flight there, after
///   which the platform can stop the process.
/// - **Retry.** A request whose connection to an instance fails before any byte was sent is
///   retried once on another ready instance (another instance of the same backend first, then
///   another backend of the split by weight), chosen among the instances listed when the retry
///   is made. A bodyless `GET`, `HEAD` or `OPTIONS` is also retried once if the instance failed
///   after receiving it (it crashed mid-answer) or did not answer in time: it is idempotent.
///   When that failure came on a kept-alive connection (the instance may have closed it as
///   idle just as the request went out, as servers with keep-alive limits shorter than
///   [`ProxyConfig::upstream_idle_timeout`] do), the retry may go to the same instance if its
///   backend has no other, on another connection, so that race never reaches the client. The
///   instance is still charged with the error in the [metrics](ProxyRouter::metrics), and the
///   one that answers the retry is timed from its own attempt, so a hanging version's wait
///   never shows as the other's latency. An answer the proxy cannot pass on (a head over the
///   limits below, a switch of protocols not asked for, a transfer coding other than chunked)
///   is a 502 at once, never sent again, as nginx's default `proxy_next_upstream` does: the
///   version sent it, and its other instances would too. Request and response bodies are
///   streamed, never buffered.
/// - **Timeouts.** A client has [`ProxyConfig::header_read_timeout`] to send each request's
///   headers, the first one included (a connection that sends nothing, or only the HTTP/2
///   preface, is closed then). A connection of either protocol with no request in progress for
///   as long is closed (HTTP/2 with a `GOAWAY`, so the client's next request goes on a new
///   connection and none is lost), as Go's `IdleTimeout` defaults to its read timeout; one
///   with a request in progress stays however long that takes, and an HTTP/2 one is pinged
///   meanwhile and closed if the ping goes unanswered. A request body may pause at most
///   [`ProxyConfig::request_body_timeout`]: an instance that stops reading it gets a 504
///   charged to its backend, a client that stops sending it a 408 charged to no one. Once the
///   request is sent, the instance has [`ProxyConfig::response_timeout`] to answer (504), and
///   then may pause its answer's body at most [`ProxyConfig::response_body_timeout`] between
///   two reads (nginx's `proxy_read_timeout`): past that the answer is cut off, never passed
///   off as whole, and counted as an error of the instance's backend. A
///   client that goes away before its answer (closes its connection or resets its HTTP/2
///   stream, mid-upload or waiting) is not an error of the instance: it is counted apart, as
///   closed by the client ([`client_closed`](ProxyRouter::client_closed), nginx's 499), and
///   the instance is charged nothing.
/// - **Head limits.** A client's request head larger than
///   [`ProxyConfig::max_request_head_size`] (64 KiB by default), or an HTTP/1.1 one with more
///   header fields than [`ProxyConfig::max_headers`] (100), is answered
///   `431 Request Header Fields Too Large` by the proxy, reaches no instance and is charged to
///   no backend. An instance's answer with more fields than that, or a head larger than
///   [`ProxyConfig::max_response_head_size`] (64 KiB by default), is a 502 charged to its
///   backend as an error (the version sent it), logged with the limit, and sent neither to
///   that instance again on another connection, as a kept-alive connection's failure would
///   be, nor to another instance.
/// - **Mirroring** sends a copy of the given share of requests to the mirror backend and
///   discards its answers. A copy is measured against the mirror backend like any request
///   (answered, failed, refused or not answered within [`ProxyConfig::response_timeout`]), so
///   a shadow version's errors show; its answer's body is read within the response timeout
///   too. At most 128 copies per mirror backend are outstanding at a time: past that, a copy
///   is dropped and counted ([`ProxyMetrics::mirror_dropped`],
///   `serin_proxy_mirror_dropped_total`), so a mirror that hangs holds at most 128 connections
///   and the request itself never waits for it. A request body of a declared length up to
///   [`ProxyConfig::mirror_body_limit`] is copied to the mirror as it streams to the chosen
///   instance, through a bounded queue: the request never waits for the mirror, and a mirror
///   that falls behind loses its copy (cut short, so it never sees a truncated body as a whole
///   one; counted by [`ProxyMetrics::mirror_dropped`], and not as the mirror's error).
///   Requests with a larger body or one of unknown length (chunked) are not mirrored and are
///   counted ([`ProxyMetrics::mirror_skipped`], `serin_proxy_mirror_skipped_total`). Upgrade
///   requests are not mirrored.
/// - **Forwarding headers.** Requests go to the instances as HTTP/1.1 with `Via: 1.1 serin`
///   appended (the version the client spoke: `2 serin` for HTTP/2), and responses come back
///   with `Via: 1.1 serin` appended. Requests tell the instance who the client was:
///   `X-Forwarded-For` (its address), `X-Forwarded-Proto: http` (the proxy serves cleartext
///   only) and `Forwarded: for=…;proto=http` (RFC 7239). What a client says of itself in
///   those headers (and in `X-Forwarded-Host`, `X-Forwarded-Port`, `X-Real-IP`, or spelled
///   with `_` for `-`, as CGI-style servers read them alike) is dropped, so none can pass
///   itself off as another address, scheme or host, unless the client is one of
///   [`ProxyConfig::trusted_proxies`]: then its chain is kept and the proxy's entries are
///   appended to it (nginx's `set_real_ip_from`, Envoy's `xff_num_trusted_hops`). `Host` is
///   the request target's authority when it has one (an absolute-form target, or HTTP/2's
///   `:authority`), else the client's `Host`, else (an HTTP/1.0 request without one) the
///   proxy's address as the client reached it, and a match route on `host` is matched
///   against that `Host`, the one the instance gets; a request with more than one `Host`, one
///   whose `Host` is not a host (`shop/admin`, `evil@shop`), or an HTTP/1.1 one with none and
///   no authority in its target, is answered 400 (RFC 9112, 3.2), as nginx does. A body of
///   unknown length (chunked, HTTP/2 without `content-length`) goes on chunked, whatever the
///   method. A transfer coding other than `chunked` is answered 501 in a request and 502 in
///   a response with a body (it would pass on applied but unnamed; an answer to a `HEAD`, or
///   a 304, may name the one a `GET` would have had, RFC 9112, 6.1), and a response framed
///   by both chunks and `Content-Length` is passed on chunked, without the length (RFC 9112,
///   6.3). An HTTP/2 client's separate `cookie` fields are joined with `; ` into one
///   `Cookie` header. Hop-by-hop headers are not forwarded, nor are `Proxy-Authorization` and
///   `Proxy-Authenticate` (this proxy asks for no credentials); a client's `TE: trailers` is
///   said again to the instance, so that an instance's trailers reach a client that takes
///   them. A client's `Expect: 100-continue` is met by the proxy, which says `100 Continue`
///   once the request is on its way to an instance, and is not passed on (as Envoy does); any
///   other expectation is passed on, listed with it or not, for the instance to meet or to
///   answer `417 Expectation Failed`.
/// - **Upgrades.** An HTTP/1.1 request to switch protocols (`Connection: upgrade` with
///   `Upgrade`, as a WebSocket handshake) is forwarded with those headers; when the instance
///   answers `101 Switching Protocols`, the proxy answers the same and then relays bytes both
///   ways until either side closes or the proxy shuts down. The tunnel counts as in flight on
///   its instance for its whole life, so [`wait_drained`](ProxyRouter::wait_drained) waits for
///   it (up to its timeout, after which the platform stops the instance and the tunnel ends).
///   A `101` to a request that did not ask to switch is a 502 charged to the instance. A
///   `426 Upgrade Required` keeps its `Upgrade` header (with `Connection: upgrade`): it names
///   the protocols the client must switch to (RFC 9110, 15.5.22).
///   HTTP/2 upgrades (extended `CONNECT`) are not offered, and `CONNECT` is answered
///   `501 Not Implemented`: this is a reverse proxy, not a forward one. An upgrade to `h2c`
///   is not passed on (the request is forwarded as plain HTTP/1.1): it would turn the
///   connection into an HTTP/2 tunnel to one instance that no split, metric or drain governs.
/// - **Requests for the proxy itself.** `TRACE` is answered `405 Method Not Allowed` with an
///   `Allow` header, as nginx does: forwarded, it would have the instance echo the request,
///   cookies and credentials included, to any script that can read the answer (Cross-Site
///   Tracing). An `OPTIONS` with `Max-Forwards: 0` is answered `200` with an `Allow` header by
///   the proxy, its last allowed hop, and one with a larger count is forwarded with the count
///   lowered by one (RFC 9110, 7.6.2); other methods' `Max-Forwards` is passed on untouched, as
///   is one that is no count. Neither answer reaches an instance or counts in any backend's
///   metrics.
/// - **Threads.** By default the proxy serves on threads of its own, one per core (at most 8,
///   [`ProxyConfig::workers`]), each a single-threaded runtime with an even share of the client
///   connections and its own upstream pools, so a request is forwarded and answered without
///   waking another thread; every guarantee above holds the same way (one snapshot, shared
///   endpoints and in-flight counts). With `workers` 0 it serves on the runtime that binds it.
/// - **Metrics.** Every answer is measured per backend ([`metrics`](ProxyRouter::metrics)),
///   an instance's once its body has ended (an error if the body broke off), and
///   served as Prometheus text at `/metrics` on the admin address, if configured, with the
///   requests closed by their clients ([`client_closed`](ProxyRouter::client_closed)).
///
/// Clones share one proxy. It serves until [`shutdown`](ProxyRouter::shutdown) is called or
/// its last clone is dropped, which stops it the same way: no new connections, in-flight
/// requests finish, idle connections close; [`stopped`](ProxyRouter::stopped) waits for that
/// to be done. Keep a clone for as long as it should serve.
#[derive(Debug, Clone)]
pub struct ProxyRouter {
    shared: Arc<Shared>,
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    /// Closed once every serving task (each worker's, the admin listener's) has ended, each
    /// holding a receiver until then: what [`stopped`](ProxyRouter::stopped) waits for.
    running: Arc<watch::Sender<()>>,
}

impl ProxyRouter {
    /// Binds the listener (and the admin listener) and starts serving; must run inside a tokio
    /// runtime. A port already in use is [`Error::Bind`].
    pub async fn bind(config: ProxyConfig) -> Result<Self> {
        config.validate()?;
        let trusted = config.trusted_nets()?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| Error::Bind {
                addr: config.listen,
                reason: e.to_string(),
            })?;
        let addr = listener.local_addr().map_err(|e| Error::Bind {
            addr: config.listen,
            reason: e.to_string(),
        })?;
        let admin = match config.admin {
            Some(a) => {
                let l = TcpListener::bind(a).await.map_err(|e| Error::Bind {
                    addr: a,
                    reason: e.to_string(),
                })?;
                let local = l.local_addr().map_err(|e| Error::Bind {
                    addr: a,
                    reason: e.to_string(),
                })?;
                Some((l, local))
            }
            None => None,
        };
        let metrics = Arc::new(Store::new(
            config.metrics_resolution,
            config.metrics_retention,
        )?);
        let (stop, stopped) = watch::channel(false);
        let (running, serving) = watch::channel(());
        let shared = Arc::new(Shared {
            config,
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            write: Mutex::new(HashMap::new()),
            metrics,
            mirror_slots: Mutex::new(HashMap::new()),
            stopped: stopped.clone(),
            trusted,
        });
        let workers = shared.config.workers;
        if workers == 0 {
            tokio::spawn(serve(
                Conns::listen(listener),
                shared.clone(),
                stopped.clone(),
                serving.clone(),
            ));
        } else if let Err(reason) = spawn_workers(listener, workers, &shared, &stopped, &serving) {
            // Workers already started stop with the listener's other copies.
            let _ = stop.send(true);
            return Err(Error::Bind { addr, reason });
        }
        let admin_addr = admin.as_ref().map(|(_, a)| *a);
        if let Some((l, _)) = admin {
            tokio::spawn(serve_admin(l, shared.clone(), stopped, serving));
        }
        Ok(ProxyRouter {
            shared,
            addr,
            admin_addr,
            stop,
            running: Arc::new(running),
        })
    }

    /// The address the proxy listens on (with the port chosen, if `0` was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin address (`/metrics`, `/healthz`), if configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The proxy's measurements, as a [`MetricsSource`](serin_signals::MetricsSource).
    pub fn metrics(&self) -> ProxyMetrics {
        ProxyMetrics {
            store: self.shared.metrics.clone(),
        }
    }

    /// Makes `addrs` the ready instances of `backend` (replacing its previous list; empty: none
    /// ready). Instances that left every backend are drained (see
    /// [`wait_drained`](ProxyRouter::wait_drained)).
    pub fn set_endpoints(&self, backend: &str, addrs: &[SocketAddr]) {
        let mut registry = lock(&self.shared.write);
        let old = self.snapshot();
        let mut wanted: Vec<SocketAddr> = Vec::with_capacity(addrs.len());
        for a in addrs {
            if !wanted.contains(a) {
                wanted.push(*a);
            }
        }
        let current = old.backends.get(backend);
        // Every status read and sync pass lists the instances again: when nothing changed, the
        // backend stays as it is, round-robin position included, so requests keep rotating
        // over all its instances instead of starting again from the first.
        let listed: Vec<SocketAddr> = current
            .map(|b| b.endpoints.iter().map(|e| e.addr()).collect())
            .unwrap_or_default();
        if listed == wanted {
            return;
        }
        let next = current.map_or(0, |b| b.next.load(Ordering::Relaxed));
        let mut backends = old.backends.clone();
        let mut eps = Vec::with_capacity(wanted.len());
        let config = &self.shared.config;
        for a in &wanted {
            let ep = registry
                .entry(*a)
                .or_insert_with(|| {
                    Endpoint::new(
                        *a,
                        usize::from(config.workers),
                        config.upstream_idle_timeout,
                        config.response_body_timeout,
                        config.hyper_max_headers(),
                        config.max_response_head_size,
                    )
                })
                .clone();
            ep.restore();
            eps.push(ep);
        }
        if eps.is_empty() {
            backends.remove(backend);
        } else {
            backends.insert(
                backend.to_owned(),
                Arc::new(Backend {
                    endpoints: eps,
                    next: AtomicUsize::new(next),
                }),
            );
        }
        // Endpoints no backend lists any more stop taking requests and close idle connections;
        // they stay known until nothing is in flight on them, for `in_flight`.
        registry.retain(|addr, ep| {
            let used = backends
                .values()
                .any(|b| b.endpoints.iter().any(|e| e.addr() == *addr));
            if !used {
                ep.remove();
            }
            used || ep.in_flight() > 0
        });
        self.swap(Snapshot {
            split: old.split.clone(),
            backends,
        });
    }

    /// Lists the ready instances of a platform's track as the endpoints of the backend named
    /// like the track (`green`).
    pub fn sync_track(&self, status: &TrackStatus) {
        self.set_endpoints(status.track.as_str(), &status.ready_addresses());
    }

    /// The ready instances of `backend`, as last set.
    pub fn endpoints(&self, backend: &str) -> Vec<SocketAddr> {
        self.snapshot()
            .backends
            .get(backend)
            .map(|b| b.endpoints.iter().map(|e| e.addr()).collect())
            .unwrap_or_default()
    }

    /// Requests routed to `backend` whose client went away (closed its connection or reset its
    /// HTTP/2 stream, mid-upload or waiting) before their answer began, since start: what
    /// nginx logs as 499 and Envoy as response code 0. They are in neither the backend's
    /// requests nor its errors (the instance did nothing wrong, and nothing was answered);
    /// served at `/metrics` as `serin_proxy_client_closed_total`. Many of them on one backend
    /// alone can mean that its instances are too slow for their clients' patience.
    pub fn client_closed(&self, backend: &str) -> u64 {
        self.shared.metrics.client_closed(backend)
    }

    /// How many requests are in flight on instance `addr`, listed or draining (0 for an
    /// unknown one).
    pub fn in_flight(&self, addr: SocketAddr) -> usize {
        lock(&self.shared.write)
            .get(&addr)
            .map_or(0, |e| e.in_flight())
    }

    /// Waits (polling every 5 ms, at least once) until no request is in flight on any of
    /// `addrs`; `false` if some still were after `timeout`.
    pub async fn wait_drained(&self, addrs: &[SocketAddr], timeout: Duration) -> bool {
        // A timeout past what the clock holds waits as long as it takes.
        let deadline = Instant::now().checked_add(timeout);
        loop {
            // Sleep first: a request that read the previous endpoints an instant before they
            // changed has counted itself in flight by the time this wakes.
            tokio::time::sleep(Duration::from_millis(5)).await;
            if addrs.iter().all(|a| self.in_flight(*a) == 0) {
                return true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
        }
    }

    /// Stops accepting connections and closes open ones gracefully (in-flight requests finish),
    /// on the proxy's listener and its admin listener alike.
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
    }

    /// Waits until the proxy has stopped after [`shutdown`](ProxyRouter::shutdown): its
    /// listeners are closed and every client connection has ended, its in-flight requests
    /// answered (a protocol-switched tunnel ends with the shutdown). A program that exits
    /// right after `shutdown` would cut those requests off; awaiting this first lets them
    /// finish. Pending for as long as the proxy serves.
    pub async fn stopped(&self) {
        self.running.closed().await;
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.shared.snapshot()
    }

    fn swap(&self, snap: Snapshot) {
        let mut w = self
            .shared
            .snapshot
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *w = Arc::new(snap);
    }
}

impl Shared {
    fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Counts a request routed to `backend` whose client went away before its answer.
    fn record_client_closed(&self, backend: &str) {
        tracing::debug!(%backend, "the client went away before its answer (499)");
        self.metrics.record_client_closed(backend);
    }

    /// A slot for one more outstanding copy to `mirror`, if it has one free.
    fn mirror_slot(&self, mirror: &str) -> Option<OwnedSemaphorePermit> {
        let slots = {
            let mut all = lock(&self.mirror_slots);
            match all.get(mirror) {
                Some(s) => s.clone(),
                None => all
                    .entry(mirror.to_owned())
                    .or_insert_with(|| Arc::new(Semaphore::new(MIRROR_CONCURRENCY)))
                    .clone(),
            }
        };
        slots.try_acquire_owned().ok()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into()).map_err(|e| match e {}).boxed()
}

fn answer(status: StatusCode, text: &str) -> Response<Body> {
    let mut res = Response::new(full(format!("{text}\n")));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

/// A bodyless copy of `req` for the mirror.
fn mirror_copy(req: &Request<Body>) -> Request<Body> {
    let mut copy = Request::new(Empty::new().map_err(|e| match e {}).boxed());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.headers_mut() = req.headers().clone();
    copy
}

/// Whether an answer with `status` to a request (a `HEAD` one: `head`) has a body: not one to
/// a `HEAD`, nor a 1xx, 204 or 304 (RFC 9112, 6.3).
fn has_body(head: bool, status: StatusCode) -> bool {
    !head
        && !status.is_informational()
        && status != StatusCode::NO_CONTENT
        && status != StatusCode::NOT_MODIFIED
}

fn has_no_body(req: &Request<Incoming>) -> bool {
    req.body().is_end_stream() || req.body().size_hint().exact() == Some(0)
}

/// One attempt's outcome.
enum Attempt {
    Answered(Response<Body>),
    /// `101 Switching Protocols` to an upgrade request: the response, the instance's side of
    /// the connection once it is switched, and the in-flight count the tunnel holds.
    Upgraded(Response<Body>, OnUpgrade, InFlight),
    /// Nothing was sent (no connection, or the instance had just left the proxy): the request
    /// comes back, for a retry elsewhere.
    NotSent(Request<Body>),
    /// Sent, then the exchange failed (the instance crashed or closed the connection).
    Failed,
    /// As `Failed`, on a kept-alive connection: the instance may have closed it as idle just
    /// as the request went out, so a request safe to repeat may go to it again.
    Dropped,
    /// Answered in a way the proxy cannot pass on: a head over its limits, a switch of
    /// protocols not asked for, a transfer coding other than chunked. The version's doing, which
    /// its other instances would repeat: never sent again.
    Unusable,
    /// Sent, and not answered within the response timeout, or the instance stopped reading
    /// the body for longer than the body timeout (already counted as an error).
    TimedOut,
    /// The request body failed on the proxy's side: the client sent a malformed one, or a
    /// mirror's copy was cut short. Not the instance's doing: counted nowhere.
    BodyFailed,
    /// The client went away in the middle of its request body (closed its connection or reset
    /// its stream). Not the instance's doing: counted as closed by the client.
    ClientGone,
    /// The client paused its body for longer than the body timeout. Counted nowhere.
    ClientStalled,
}

/// How the sending of a request body ended.
enum Sending<T> {
    /// The exchange ended (answered or failed) before the body was all sent.
    Done(T),
    /// The body was sent in full (or ended otherwise): the answer is awaited.
    Sent,
    /// The body made no progress for the body timeout, waiting for this side.
    Stalled(Waiting),
}

/// Follows `send` while its body is sent, until it is sent, the exchange ends, or it pauses
/// for longer than `idle`.
async fn while_sending<F: Future + Unpin>(
    send: &mut F,
    mut watch: sent::Watch,
    idle: Duration,
) -> Sending<F::Output> {
    // Before the body is asked for, the connection is timed by the connect timeout: the body
    // timeout is not checked then, only looked at again every `idle` (from the last look, not
    // from `since`, which may be long past when the connect is slower than `idle`).
    let mut looked = Instant::now();
    loop {
        let (who, since) = watch.progress.waiting();
        let due = if who == Waiting::Start {
            looked + idle
        } else {
            since + idle
        };
        tokio::select! {
            biased;
            outcome = &mut *send => return Sending::Done(outcome),
            _ = &mut watch.sent => return Sending::Sent,
            () = tokio::time::sleep_until(due) => {
                looked = Instant::now();
                if who != Waiting::Start && watch.progress.waiting() == (who, since) {
                    return Sending::Stalled(who);
                }
            }
        }
    }
}

async fn attempt(
    shared: &Shared,
    backend: &str,
    endpoint: Arc<Endpoint>,
    req: Request<Body>,
    started: Instant,
) -> Attempt {
    let guard = endpoint.begin();
    // Counted in flight first, then checked: an instance taken out of the proxy since the
    // caller picked it gets nothing (it may be stopping), and one taken out after this point
    // sees the request in flight, so `wait_drained` waits for it.
    if endpoint.is_removed() {
        return Attempt::NotSent(req);
    }
    // Only an upgrade request keeps its `Upgrade` header on the way (`upstream_request`).
    let upgrade = req.headers().contains_key(header::UPGRADE);
    let head = req.method() == Method::HEAD;
    let (req, watch) = sent::watch(req);
    let progress = watch.as_ref().map(|w| w.progress.clone());
    let limit = shared.config.response_timeout;
    // A bodyless request's wait for its answer starts once it has a connection; one with a
    // body waits from the end of the body (below).
    let answer_within = watch.is_none().then_some(limit);
    let send = endpoint.send(req, shared.config.connect_timeout, answer_within);
    tokio::pin!(send);
    let latency = || started.elapsed().as_secs_f64() * 1_000.0;
    // The body's pauses are timed while it is sent; the wait for the instance's answer is
    // timed from the end of the body.
    let early = match watch {
        None => None,
        Some(watch) => {
            let idle = shared.config.request_body_timeout;
            match while_sending(&mut send, watch, idle).await {
                Sending::Done(outcome) => Some(outcome),
                Sending::Sent => None,
                Sending::Stalled(Waiting::Client) => {
                    tracing::debug!(%backend, addr = %endpoint.addr(), ?idle, "client body stalled");
                    return Attempt::ClientStalled;
                }
                Sending::Stalled(_) => {
                    tracing::debug!(%backend, addr = %endpoint.addr(), ?idle, "instance stopped reading the body");
                    shared.metrics.record(backend, now(), latency(), true);
                    return Attempt::TimedOut;
                }
            }
        }
    };
    let timed = match (early, answer_within) {
        (Some(outcome), _) => Ok(outcome),
        (None, Some(_)) => Ok(send.await),
        (None, None) => tokio::time::timeout(limit, send).await,
    };
    match timed.unwrap_or(Err(SendError::TimedOut)) {
        Err(SendError::TimedOut) => {
            tracing::debug!(%backend, addr = %endpoint.addr(), ?limit, "no answer in time");
            shared.metrics.record(backend, now(), latency(), true);
            Attempt::TimedOut
        }
        // A switch of protocols the request did not ask for leaves the client a connection
        // it cannot use (RFC 9110, 15.2.2), and a transfer coding other than chunked would
        // reach it still applied but no longer named: the instance's answer is unusable. An
        // answer without a body (to a `HEAD`, a 1xx, 204 or 304) may name the coding a `GET`'s
        // body would have had (RFC 9112, 6.1): it has nothing to which one was applied.
        Ok((res, _))
            if (!upgrade && res.status() == StatusCode::SWITCHING_PROTOCOLS)
                || (has_body(head, res.status()) && !only_chunked(res.headers())) =>
        {
            tracing::debug!(%backend, addr = %endpoint.addr(), status = %res.status(), "unusable answer");
            Attempt::Unusable
        }
        Ok((mut res, due)) => {
            let error = res.status().is_server_error();
            let answered = shared.metrics.answered(backend, latency(), error);
            // Framed by its chunks, whatever `Content-Length` says (RFC 9112, 6.3): the length
            // goes with the coding, or the client would get the body cut to it as a whole one.
            if res.headers().contains_key(header::TRANSFER_ENCODING) {
                res.headers_mut().remove(header::CONTENT_LENGTH);
            }
            let switched = (upgrade && res.status() == StatusCode::SWITCHING_PROTOCOLS)
                .then(|| hyper::upgrade::on(&mut res));
            let (mut parts, body) = res.into_parts();
            let upgrade_required = parts.status == StatusCode::UPGRADE_REQUIRED;
            strip_hop_by_hop(&mut parts.headers, switched.is_some() || upgrade_required);
            join_field(
                &mut parts.headers,
                header::VIA,
                Some(via(parts.version)),
                b", ",
            );
            if let Some(switched) = switched {
                let res = Response::from_parts(parts, body.boxed());
                return Attempt::Upgraded(res, switched, guard);
            }
            // The request is counted, and its in-flight count drops, when the response body is
            // done (or dropped); a body that breaks off or pauses past its limit fails, and
            // counts the request as an error.
            let body = reading::Reading::new(body, due, answered, guard).boxed();
            Attempt::Answered(Response::from_parts(parts, body))
        }
        // Not a keep-alive race: the instance sent it, and would again.
        Err(SendError::HeadTooLarge) => {
            tracing::warn!(
                %backend,
                addr = %endpoint.addr(),
                max_headers = shared.config.max_headers,
                max_response_head_size = shared.config.max_response_head_size,
                "502: the instance's answer had more header fields than proxyConfig.maxHeaders \
                 allows, or its head did not fit the read buffer that \
                 proxyConfig.maxResponseHeadSize bounds (body bytes read with it count too)"
            );
            Attempt::Unusable
        }
        Err(SendError::NotSent(req, reason)) => {
            tracing::debug!(%backend, addr = %endpoint.addr(), %reason, "request not sent");
            shared.metrics.record_connect_error(backend);
            Attempt::NotSent(*req)
        }
        Err(SendError::Failed(reason) | SendError::Reused(reason))
            if progress.as_ref().is_some_and(|p| p.client_gone()) =>
        {
            tracing::debug!(%backend, addr = %endpoint.addr(), %reason, "client gone mid-body");
            Attempt::ClientGone
        }
        Err(SendError::Failed(reason) | SendError::Reused(reason))
            if progress.as_ref().is_some_and(|p| p.source_failed()) =>
        {
            tracing::debug!(%backend, addr = %endpoint.addr(), %reason, "request body failed at its source");
            Attempt::BodyFailed
        }
        Err(SendError::Reused(reason)) => {
            tracing::debug!(%backend, addr = %endpoint.addr(), %reason, "request failed on a kept-alive connection");
            Attempt::Dropped
        }
        Err(SendError::Failed(reason)) => {
            tracing::debug!(%backend, addr = %endpoint.addr(), %reason, "request failed");
            Attempt::Failed
        }
    }
}

/// Sends a mirrored copy and reads its answer, holding one of the mirror's slots until done;
/// the copy is measured against the mirror's backend like any request.
fn spawn_mirror(
    shared: Arc<Shared>,
    mirror: String,
    endpoint: Arc<Endpoint>,
    copy: Request<Body>,
    slot: OwnedSemaphorePermit,
) {
    tokio::spawn(async move {
        let _slot = slot;
        let started = Instant::now();
        // Bounded by the connect timeout, the body's pauses and the response timeout; the
        // answer's body is read within the response timeout as well.
        match attempt(&shared, &mirror, endpoint.clone(), copy, started).await {
            Attempt::Answered(res) => {
                let limit = shared.config.response_timeout;
                if tokio::time::timeout(limit, mirror::drain(res.into_body()))
                    .await
                    .is_err()
                {
                    tracing::debug!(%mirror, ?limit, "mirror answer not read in time");
                }
            }
            // Charged as the 502 a client would have had: nothing else is tried for a copy.
            Attempt::Failed | Attempt::Dropped | Attempt::Unusable => {
                let latency = started.elapsed().as_secs_f64() * 1_000.0;
                shared.metrics.record(&mirror, now(), latency, true);
            }
            Attempt::NotSent(_) if !endpoint.is_removed() => {
                let latency = started.elapsed().as_secs_f64() * 1_000.0;
                shared.metrics.record(&mirror, now(), latency, true);
            }
            // Counted already (timed out), or the copy's source failed or stalled (the client,
            // or a copy cut short because the mirror fell behind), or the instance left.
            Attempt::NotSent(_)
            | Attempt::TimedOut
            | Attempt::BodyFailed
            | Attempt::ClientGone
            | Attempt::ClientStalled
            | Attempt::Upgraded(..) => {}
        }
    });
}

/// Relays bytes both ways between a client and an instance once both have switched
/// protocols, until either side closes or the proxy stops; the instance counts the tunnel in
/// flight meanwhile.
async fn tunnel(
    client: OnUpgrade,
    instance: OnUpgrade,
    in_flight: InFlight,
    mut stopped: watch::Receiver<bool>,
) {
    let relay = async {
        let (client, instance) = match tokio::join!(client, instance) {
            (Ok(c), Ok(i)) => (c, i),
            (c, i) => {
                tracing::debug!(client = ?c.err(), instance = ?i.err(), "upgrade failed");
                return;
            }
        };
        let (mut client, mut instance) = (TokioIo::new(client), TokioIo::new(instance));
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut instance).await {
            tracing::debug!(error = %e, "tunnel ended");
        }
    };
    tokio::select! {
        () = relay => {}
        _ = stopped.wait_for(|s| *s) => {}
    }
    drop(in_flight);
}

async fn handle(shared: Arc<Shared>, mut req: Request<Incoming>, peer: &Peer) -> Response<Body> {
    let started = Instant::now();
    if req.method() == Method::CONNECT {
        return answer(
            StatusCode::NOT_IMPLEMENTED,
            "CONNECT is not supported: this is a reverse proxy",
        );
    }
    if let Some(why) = bad_host(&req) {
        return answer(StatusCode::BAD_REQUEST, why);
    }
    set_host(&mut req, peer);
    if !only_chunked(req.headers()) {
        return answer(
            StatusCode::NOT_IMPLEMENTED,
            "no transfer coding but chunked is supported",
        );
    }
    if let Some(res) = own_answer(&mut req) {
        return res;
    }
    let snap = shared.snapshot();
    let Some(split) = snap.split.clone() else {
        return answer(StatusCode::SERVICE_UNAVAILABLE, "no traffic split applied");
    };
    let ready = |b: &str| snap.backends.contains_key(b);
    let roll = rand::random_range(0..10_000u32);
    let Some((backend, reason)) = choose(&split, req.headers(), roll, &ready, None) else {
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "no ready backend in the split",
        );
    };
    let mut answering = Answering {
        shared: &shared,
        backend,
        armed: true,
    };
    let res = forward(
        &shared,
        req,
        peer,
        &snap,
        &split,
        (backend, reason),
        started,
    )
    .await;
    answering.armed = false;
    res
}

/// The proxy's own answer, with its `Allow`, to a request no instance may see: a `TRACE`
/// (405), or an `OPTIONS` whose `Max-Forwards` is 0 (200, and no content). An `OPTIONS` that
/// may go further gets its `Max-Forwards` counted down instead (RFC 9110, 7.6.2).
fn own_answer(req: &mut Request<Incoming>) -> Option<Response<Body>> {
    let mut res = match *req.method() {
        Method::TRACE => answer(
            StatusCode::METHOD_NOT_ALLOWED,
            "TRACE is not allowed: it would echo the request, credentials included",
        ),
        Method::OPTIONS => match max_forwards(req.headers())? {
            0 => Response::new(full(Bytes::new())),
            n => {
                req.headers_mut()
                    .insert(header::MAX_FORWARDS, HeaderValue::from(n - 1));
                return None;
            }
        },
        _ => return None,
    };
    res.headers_mut().insert(header::ALLOW, ALLOW);
    Some(res)
}

/// Counts its request as closed by the client if it is dropped armed: hyper drops a request's
/// future when the client goes away before the answer (closes its connection or resets its
/// HTTP/2 stream), so nothing else would record it.
struct Answering<'a> {
    shared: &'a Shared,
    /// The backend the request was routed to.
    backend: &'a str,
    armed: bool,
}

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.shared.record_client_closed(self.backend);
        }
    }
}

/// Forwards `req`, routed to `backend` for `reason`, and answers it.
async fn forward(
    shared: &Arc<Shared>,
    mut req: Request<Incoming>,
    peer: &Peer,
    snap: &Snapshot,
    split: &TrafficSplit,
    (backend, reason): (&str, Reason),
    started: Instant,
) -> Response<Body> {
    let bodyless = has_no_body(&req);
    // The client's side of a protocol switch, should the instance agree to it.
    let upgrade = is_upgrade(&req).then(|| hyper::upgrade::on(&mut req));
    let mut req = upstream_request(req, peer, upgrade.is_some());
    if upgrade.is_none()
        && let Some(m) = split.mirror()
        && rand::random_range(0..10_000u32) < u32::from(m.percent().bps())
        && let Some(ep) = snap
            .backends
            .get(m.backend().as_str())
            .and_then(|b| b.pick(None))
    {
        let name = m.backend().as_str();
        let teeable = if bodyless {
            Some(None)
        } else {
            mirror::teeable_len(&req, shared.config.mirror_body_limit).map(Some)
        };
        match teeable {
            None => shared.metrics.record_mirror_skipped(name),
            Some(len) => match shared.mirror_slot(name) {
                // The mirror has as many copies outstanding as it may: it has fallen behind.
                None => shared.metrics.record_mirror_dropped(name),
                Some(slot) => {
                    let copy = match len {
                        None => mirror_copy(&req),
                        Some(len) => {
                            let (primary, copy) =
                                mirror::tee(req, len, shared.metrics.clone(), name);
                            req = primary;
                            copy
                        }
                    };
                    spawn_mirror(shared.clone(), name.to_owned(), ep, copy, slot);
                }
            },
        }
    }
    // A client pinned to a backend of the split that is briefly without a ready instance
    // (restarting, scaling) is served by weight meanwhile, but keeps its pin: re-pinning it for
    // the cookie's whole lifetime would move it off its version for a moment's unreadiness.
    // A pin to a backend no longer weighted in the split is replaced.
    let set_cookie = split.sticky().and_then(|s| {
        (reason == Reason::Weight && !pinned(split, req.headers(), s.cookie()))
            .then(|| pin(s.cookie(), backend, s.ttl()))
            .flatten()
    });
    let Some(first) = snap.backends.get(backend).and_then(|b| b.pick(None)) else {
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "no ready backend in the split",
        );
    };
    let first_addr = first.addr();
    let mut reply = Reply {
        chosen: backend,
        set_cookie,
        started,
        upgrade,
    };
    // An idempotent request without a body can be sent again even if the first try reached
    // the instance (it crashed or closed the connection mid-answer).
    let replay = (bodyless
        && matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS))
    .then(|| mirror_copy(&req));
    let (req, failure) = match attempt(shared, backend, first, req, started).await {
        Attempt::NotSent(req) => (req, None),
        failed @ (Attempt::Failed | Attempt::Dropped | Attempt::TimedOut) => match replay {
            Some(req) => (req, Some(failed)),
            None => return reply.finish(failed, backend, shared),
        },
        answered => return reply.finish(answered, backend, shared),
    };
    // Once, elsewhere: another instance of the same backend, else another backend, among the
    // instances listed now. The first try may have waited out the response timeout; the ones
    // listed when the request came in may have left the proxy and been stopped since.
    let latest = shared.snapshot();
    let retry_split = latest.split.as_deref().unwrap_or(split);
    let listed = |b: &str| latest.backends.contains_key(b);
    // A request dropped with its kept-alive connection may go to the same instance again when
    // its backend has no other: on a connection it has not closed, it is likely answered.
    let again = matches!(failure, Some(Attempt::Dropped));
    let other = latest
        .backends
        .get(backend)
        .and_then(|b| {
            b.pick(Some(first_addr))
                .or_else(|| again.then(|| b.pick(None)).flatten())
        })
        .map(|e| (backend, e))
        .or_else(|| {
            let roll = rand::random_range(0..10_000u32);
            choose(retry_split, req.headers(), roll, &listed, Some(backend)).and_then(|(b, _)| {
                latest
                    .backends
                    .get(b)
                    .and_then(|x| x.pick(None))
                    .map(|e| (b, e))
            })
        });
    let Some((served_by, ep)) = other else {
        // Nowhere else to go: a request never sent is a 502 counted by `finish`.
        let outcome = failure.unwrap_or(Attempt::Failed);
        return reply.finish(outcome, backend, shared);
    };
    shared.metrics.record_retry(backend);
    // An instance that received the request and failed it is charged with the error, like one
    // that timed out, even though another answers the replay: a crashing version must show.
    if matches!(failure, Some(Attempt::Failed | Attempt::Dropped)) {
        let latency = started.elapsed().as_secs_f64() * 1_000.0;
        shared.metrics.record(backend, now(), latency, true);
    }
    // The answering backend is timed from its own attempt: the first one's wait (up to the
    // connect or response timeout) is the first instance's, charged to it above or as it timed
    // out, and would otherwise make the backend that answered look as slow as the one that hung.
    reply.started = Instant::now();
    let outcome = attempt(shared, served_by, ep, req, reply.started).await;
    reply.finish(outcome, served_by, shared)
}

/// Whether the request's sticky cookie (named `name`) pins it to a backend the split still
/// weights, ready or not.
fn pinned(split: &TrafficSplit, headers: &header::HeaderMap, name: &str) -> bool {
    choose::cookie(headers, name).is_some_and(|wanted| {
        split
            .backends()
            .iter()
            .any(|b| b.name().as_str() == wanted && !b.weight().is_zero())
    })
}

/// The `Set-Cookie` value that pins a client to `backend` through cookie `name` for `ttl`.
///
/// A name with the `__Secure-` or `__Host-` prefix (matched regardless of case, as browsers
/// do) promises the browser a cookie set `Secure`, and `__Host-` also one with `Path=/` and no
/// `Domain` (RFC 6265bis, 4.1.3): without `Secure` the browser drops the cookie and the client
/// is never pinned. Such a name only makes sense behind a proxy that terminates TLS, which is
/// where the browser sees the cookie come from.
fn pin(name: &str, backend: &str, ttl: Duration) -> Option<HeaderValue> {
    let prefixed = ["__secure-", "__host-"].iter().any(|p| {
        name.get(..p.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(p))
    });
    let secure = if prefixed { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={backend}; Path=/; Max-Age={}; HttpOnly{secure}",
        ttl.as_secs()
    ))
    .ok()
}

/// What the client's answer needs besides the outcome.
struct Reply<'a> {
    /// The backend the request was routed to.
    chosen: &'a str,
    /// The sticky cookie, when the backend was chosen by weight.
    set_cookie: Option<HeaderValue>,
    /// When the attempt being answered began: its latency is measured from then.
    started: Instant,
    /// The client's side of a protocol switch it asked for.
    upgrade: Option<OnUpgrade>,
}

impl Reply<'_> {
    /// The client's answer: the instance's response (with the sticky cookie when it was chosen
    /// by weight and served by that backend; a switch of protocols starts the tunnel), a 504
    /// for an instance that did not answer or read in time (counted when it timed out), a 408
    /// or 400 for a client that stalled or broke its body (counted nowhere; one that went away
    /// mid-body is counted as closed by the client), or a 502 counted as an error of
    /// `served_by`.
    fn finish(self, outcome: Attempt, served_by: &str, shared: &Shared) -> Response<Body> {
        let cookie = |mut res: Response<Body>| {
            if let Some(v) = self.set_cookie
                && served_by == self.chosen
            {
                res.headers_mut().append(header::SET_COOKIE, v);
                keep_from_shared_caches(res.headers_mut());
            }
            res
        };
        match outcome {
            Attempt::Answered(res) => cookie(res),
            Attempt::Upgraded(res, instance, in_flight) => match self.upgrade {
                Some(client) => {
                    tokio::spawn(tunnel(client, instance, in_flight, shared.stopped.clone()));
                    cookie(res)
                }
                None => answer(
                    StatusCode::BAD_GATEWAY,
                    "the instance switched protocols unasked",
                ),
            },
            Attempt::TimedOut => answer(
                StatusCode::GATEWAY_TIMEOUT,
                "the instance did not answer, or read the request, within the proxy's timeout",
            ),
            Attempt::ClientStalled => {
                let mut res = answer(
                    StatusCode::REQUEST_TIMEOUT,
                    "the request body paused for longer than the proxy's body timeout",
                );
                res.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                res
            }
            Attempt::ClientGone => {
                shared.record_client_closed(self.chosen);
                let mut res = answer(
                    StatusCode::BAD_REQUEST,
                    "the request body ended with its connection or stream",
                );
                res.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                res
            }
            Attempt::BodyFailed => {
                let mut res = answer(
                    StatusCode::BAD_REQUEST,
                    "the request body could not be read",
                );
                res.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                res
            }
            Attempt::NotSent(_) | Attempt::Failed | Attempt::Dropped | Attempt::Unusable => {
                let latency = self.started.elapsed().as_secs_f64() * 1_000.0;
                shared.metrics.record(served_by, now(), latency, true);
                answer(StatusCode::BAD_GATEWAY, "no instance could answer")
            }
        }
    }
}

/// The HTTP/1.1 and HTTP/2 server of the proxy and of its admin listener: connections whose
/// request headers take longer than the header read timeout are closed (HTTP/1.1, by hyper;
/// the first request of either version, by [`conn::run`]), so are connections idle for as
/// long (by hyper for HTTP/1.1, by [`conn::run`] for both), and HTTP/2 connections are pinged
/// every header read timeout and closed if a ping is not acknowledged within as long (a
/// client gone without a word, in the middle of a long request). A request head larger than
/// [`ProxyConfig::max_request_head_size`], or an HTTP/1.1 one with more fields than
/// [`ProxyConfig::max_headers`], is answered 431 by hyper, before any service sees it.
fn http_server(config: &ProxyConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let mut http1 = builder.http1();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        // Validated at least hyper's minimum, below which this panics.
        .max_buf_size(config.max_request_head_size);
    if let Some(fields) = config.hyper_max_headers() {
        http1.max_headers(fields);
    }
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(config.header_read_timeout)
        .keep_alive_timeout(config.header_read_timeout)
        .max_header_list_size(u32::try_from(config.max_request_head_size).unwrap_or(u32::MAX));
    builder
}

/// Serves `conns` until `stopped`, then waits for their connections to end; `_serving` is
/// held until then, for [`ProxyRouter::stopped`].
async fn serve(
    mut conns: Conns,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
    _serving: watch::Receiver<()>,
) {
    let builder = http_server(&shared.config);
    // Every connection holds a receiver until it ends: the shutdown waits for them all.
    let (open, _) = watch::channel(());
    let limit = shared.config.header_read_timeout;
    loop {
        tokio::select! {
            accepted = conns.next() => {
                let Some(stream) = accepted else { break };
                let _ = stream.set_nodelay(true);
                let peer = Arc::new(Peer::new(
                    stream.peer_addr().ok(),
                    stream.local_addr().ok(),
                    &shared.trusted,
                ));
                let activity = Activity::new();
                let busy = activity.clone();
                let shared = shared.clone();
                let svc = service_fn(move |req| {
                    let busy = busy.begin();
                    let (shared, peer) = (shared.clone(), peer.clone());
                    async move {
                        let res = handle(shared, req, &peer).await;
                        Ok::<_, Infallible>(res.map(|body| Tracked::new(body, busy)))
                    }
                });
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .into_owned();
                tokio::spawn(conn::run(conn, activity, limit, stopped.clone(), open.subscribe()));
            }
            _ = stopped.changed() => break,
        }
    }
    drop(conns);
    open.closed().await;
}

async fn serve_admin(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
    _serving: watch::Receiver<()>,
) {
    let builder = http_server(&shared.config);
    // A scraper's keep-alive connection is closed at shutdown like a client's.
    let (open, _) = watch::channel(());
    let limit = shared.config.header_read_timeout;
    loop {
        tokio::select! {
            accepted = accept::accept(&listener) => {
                let Some(stream) = accepted else { continue };
                let shared = shared.clone();
                let activity = Activity::new();
                let busy = activity.clone();
                let svc = service_fn(move |req: Request<Incoming>| {
                    let busy = busy.begin();
                    let shared = shared.clone();
                    async move {
                        let res = match (req.method(), req.uri().path()) {
                            (&Method::GET, "/metrics") => {
                                let text = shared.metrics.prometheus();
                                let mut r = Response::new(full(text));
                                r.headers_mut().insert(
                                    header::CONTENT_TYPE,
                                    HeaderValue::from_static("text/plain; version=0.0.4"),
                                );
                                r
                            }
                            (&Method::GET, "/healthz") => answer(StatusCode::OK, "ok"),
                            _ => answer(StatusCode::NOT_FOUND, "not found"),
                        };
                        Ok::<_, Infallible>(res.map(|body| Tracked::new(body, busy)))
                    }
                });
                let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
                tokio::spawn(conn::run(conn, activity, limit, stopped.clone(), open.subscribe()));
            }
            _ = stopped.changed() => break,
        }
    }
    drop(listener);
    open.closed().await;
}

#[async_trait]
impl TrafficRouter for ProxyRouter {
    fn name(&self) -> &str {
        "local-proxy"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::full()
    }

    async fn apply(&self, split: &TrafficSplit) -> serin_traffic::Result<()> {
        self.capabilities().check(split, self.name())?;
        let _writer = lock(&self.shared.write);
        let old = self.snapshot();
        if old.split.as_deref() == Some(split) {
            return Ok(());
        }
        self.swap(Snapshot {
            split: Some(Arc::new(split.clone())),
            backends: old.backends.clone(),
        });
        Ok(())
    }

    async fn current(&self) -> serin_traffic::Result<Option<TrafficSplit>> {
        Ok(self.snapshot().split.as_deref().cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_timeout_shorter_than_the_connect_does_not_spin() {
        // A send that is still connecting: pending, counting how often it is polled.
        let polls = std::cell::Cell::new(0u32);
        let mut send = std::future::poll_fn(|_| {
            polls.set(polls.get() + 1);
            std::task::Poll::<()>::Pending
        });
        let req = Request::post("/").body(full("hello")).unwrap();
        // The body is never asked for: the request is held, unsent, as a connect holds it.
        let (_req, watch) = sent::watch(req);
        let idle = Duration::from_millis(50);
        let sending = while_sending(&mut send, watch.unwrap(), idle);
        tokio::pin!(sending);
        std::future::poll_fn(|cx| {
            assert!(sending.as_mut().poll(cx).is_pending());
            std::task::Poll::Ready(())
        })
        .await;
        // Long past the body timeout, with the connect still going on.
        tokio::time::advance(idle * 10).await;
        let before = polls.get();
        std::future::poll_fn(|cx| {
            assert!(sending.as_mut().poll(cx).is_pending());
            std::task::Poll::Ready(())
        })
        .await;
        assert!(
            polls.get() - before <= 3,
            "looped {} times in one wake",
            polls.get() - before
        );
    }

    #[tokio::test]
    async fn listing_the_instances_again_keeps_their_rotation() {
        let router = ProxyRouter::bind(ProxyConfig::default().with_workers(0))
            .await
            .unwrap();
        let (a, b, c) = (addr(10_001), addr(10_002), addr(10_003));
        let pick = || {
            router.snapshot().backends["stable"]
                .pick(None)
                .map(|e| e.addr())
        };
        router.set_endpoints("stable", &[a, b]);
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(pick());
            // A status read or sync pass in between lists the same instances.
            router.set_endpoints("stable", &[a, b]);
        }
        assert_eq!(seen, [Some(a), Some(b), Some(a), Some(b)]);
        // A longer list, listed again between requests, rotates over all of it.
        router.set_endpoints("stable", &[a, b, c]);
        let mut seen: Vec<_> = (0..3)
            .map(|_| {
                router.set_endpoints("stable", &[a, b, c]);
                pick()
            })
            .collect();
        seen.sort();
        assert_eq!(seen, [Some(a), Some(b), Some(c)]);
        router.shutdown();
    }

    #[tokio::test]
    async fn an_instance_taken_out_gets_nothing_from_a_request_that_picked_it_before() {
        // It would accept a connection, and never answer.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let instance = listener.local_addr().unwrap();
        let router = ProxyRouter::bind(
            ProxyConfig::default()
                .with_workers(0)
                .with_response_timeout(Duration::from_secs(1)),
        )
        .await
        .unwrap();
        router.set_endpoints("stable", &[instance]);
        // A request read the endpoints; then the instance left the proxy.
        let picked = router.snapshot().backends["stable"].endpoints[0].clone();
        router.set_endpoints("stable", &[]);
        let req = Request::get("/").body(full("")).unwrap();
        let outcome = attempt(&router.shared, "stable", picked, req, Instant::now()).await;
        assert!(matches!(outcome, Attempt::NotSent(_)), "sent anyway");
        assert_eq!(router.in_flight(instance), 0);
        router.shutdown();
    }
}
