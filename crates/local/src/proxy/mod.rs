//! [`ProxyRouter`]: an HTTP/1.1 and HTTP/2 (cleartext) reverse proxy on hyper that routes each
//! request by the applied [`TrafficSplit`].

mod accept;
mod choose;
mod config;
mod mirror;
mod sent;
mod upstream;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body as _, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use serin_orchestrator::TrackStatus;
use serin_signals::Timestamp;
use serin_traffic::{Capabilities, TrafficRouter, TrafficSplit};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

pub use config::ProxyConfig;

use crate::error::{Error, Result};
use crate::metrics::{ProxyMetrics, Store};
use accept::{Conns, spawn_workers};
use choose::{Reason, choose};
use upstream::{Endpoint, SendError};

/// The body type the proxy forwards: streamed, never buffered.
pub(crate) type Body = BoxBody<Bytes, hyper::Error>;

/// How long a mirrored copy may take, answer included, before it is given up.
const MIRROR_TIMEOUT: Duration = Duration::from_secs(30);

/// Headers that belong to one connection and are not forwarded (RFC 9110, 7.6.1).
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

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
}

/// The embedded reverse proxy, a [`TrafficRouter`] with [`Capabilities::full`]: weights to the
/// basis point, header and cookie match routes, sticky sessions by cookie, mirroring.
///
/// - **Atomic splits.** [`apply`](TrafficRouter::apply) swaps one immutable snapshot; every
///   request reads one snapshot once, so none sees a half-applied split, and new requests follow
///   the new split at once. It never waits and never fails for a valid split.
/// - **Readiness gating.** Backends get their instances from
///   [`set_endpoints`](ProxyRouter::set_endpoints) (or [`sync_track`](ProxyRouter::sync_track)
///   from a platform's status): only ready instances are listed. A backend with no ready
///   instance gets no traffic; its weight goes to the split's other ready backends in proportion
///   to their weights, and with none ready the proxy answers 503.
/// - **Drain.** An instance removed from the endpoints gets no new request; its in-flight
///   requests finish and its idle keep-alive connections are closed.
///   [`wait_drained`](ProxyRouter::wait_drained) waits until nothing is in flight there, after
///   which the platform can stop the process.
/// - **Retry.** A request whose connection to an instance fails before any byte was sent is
///   retried once on another ready instance (another instance of the same backend first, then
///   another backend of the split by weight). A bodyless `GET`, `HEAD` or `OPTIONS` is also
///   retried once if the instance failed after receiving it (it crashed mid-answer): it is
///   idempotent. Request and response bodies are streamed, never buffered.
/// - **Mirroring** sends a copy of the given share of requests to the mirror backend and
///   discards its answers (a copy gets at most 30 s). A request body of a declared length up to
///   [`ProxyConfig::mirror_body_limit`] is copied to the mirror as it streams to the chosen
///   instance, through a bounded queue: the request never waits for the mirror, and a mirror
///   that falls behind loses its copy (cut short, so it never sees a truncated body as a whole
///   one; counted by [`ProxyMetrics::mirror_dropped`]). Requests with a larger body or one of
///   unknown length (chunked) are not mirrored and are counted
///   ([`ProxyMetrics::mirror_skipped`], `serin_proxy_mirror_skipped_total`).
/// - **Threads.** By default the proxy serves on threads of its own, one per core (at most 8,
///   [`ProxyConfig::workers`]), each a single-threaded runtime with an even share of the client
///   connections and its own upstream pools, so a request is forwarded and answered without
///   waking another thread; every guarantee above holds the same way (one snapshot, shared
///   endpoints and in-flight counts). With `workers` 0 it serves on the runtime that binds it.
/// - **Metrics.** Every answer is measured per backend ([`metrics`](ProxyRouter::metrics)) and
///   served as Prometheus text at `/metrics` on the admin address, if configured.
///
/// Dropping the router does not stop it; call [`shutdown`](ProxyRouter::shutdown).
#[derive(Debug, Clone)]
pub struct ProxyRouter {
    shared: Arc<Shared>,
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
}

impl ProxyRouter {
    /// Binds the listener (and the admin listener) and starts serving; must run inside a tokio
    /// runtime. A port already in use is [`Error::Bind`].
    pub async fn bind(config: ProxyConfig) -> Result<Self> {
        config.validate()?;
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
        let shared = Arc::new(Shared {
            config,
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            write: Mutex::new(HashMap::new()),
            metrics,
        });
        let (stop, stopped) = watch::channel(false);
        let workers = shared.config.workers;
        if workers == 0 {
            tokio::spawn(serve(
                Conns::listen(listener),
                shared.clone(),
                stopped.clone(),
            ));
        } else if let Err(reason) = spawn_workers(listener, workers, &shared, &stopped) {
            // Workers already started stop with the listener's other copies.
            let _ = stop.send(true);
            return Err(Error::Bind { addr, reason });
        }
        let admin_addr = admin.as_ref().map(|(_, a)| *a);
        if let Some((l, _)) = admin {
            tokio::spawn(serve_admin(l, shared.clone(), stopped));
        }
        Ok(ProxyRouter {
            shared,
            addr,
            admin_addr,
            stop,
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
        let mut backends = old.backends.clone();
        let mut eps = Vec::with_capacity(addrs.len());
        for a in addrs {
            if eps.iter().any(|e: &Arc<Endpoint>| e.addr() == *a) {
                continue;
            }
            let pools = usize::from(self.shared.config.workers);
            let ep = registry
                .entry(*a)
                .or_insert_with(|| Endpoint::new(*a, pools))
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
                    next: AtomicUsize::new(0),
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

    /// Stops accepting connections and closes open ones gracefully (in-flight requests finish).
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
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
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Timestamp::from_millis(ms)
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

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers named in `Connection` are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::try_from(n.trim()).ok())
        .collect();
    for h in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(h);
    }
}

/// The request as sent to an instance: HTTP/1.1, origin-form URI, `Host` kept (or taken from
/// an HTTP/2 `:authority`), hop-by-hop headers removed, body streamed.
fn upstream_request(req: Request<Incoming>) -> Request<Body> {
    let (mut parts, body) = req.into_parts();
    if !parts.headers.contains_key(header::HOST)
        && let Some(host) = parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    {
        parts.headers.insert(header::HOST, host);
    }
    strip_hop_by_hop(&mut parts.headers);
    // HTTP/1.1 clients send the origin form already: keep it as it is, without a copy.
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        parts.uri = Uri::try_from(path).unwrap_or_else(|_| Uri::from_static("/"));
    }
    parts.version = Version::HTTP_11;
    Request::from_parts(parts, body.boxed())
}

/// A bodyless copy of `req` for the mirror.
fn mirror_copy(req: &Request<Body>) -> Request<Body> {
    let mut copy = Request::new(Empty::new().map_err(|e| match e {}).boxed());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.headers_mut() = req.headers().clone();
    copy
}

fn has_no_body(req: &Request<Incoming>) -> bool {
    req.body().is_end_stream() || req.body().size_hint().exact() == Some(0)
}

/// One attempt's outcome.
enum Attempt {
    Answered(Response<Body>),
    NotSent(Request<Body>),
    Failed,
    /// Sent, and not answered within the response timeout (already counted as an error).
    TimedOut,
}

async fn attempt(
    shared: &Shared,
    backend: &str,
    endpoint: Arc<Endpoint>,
    req: Request<Body>,
    started: Instant,
    retrying: bool,
) -> Attempt {
    let guard = endpoint.begin();
    let (req, body_sent) = sent::signal_when_sent(req);
    let send = endpoint.send(req, shared.config.connect_timeout);
    let limit = shared.config.response_timeout;
    // The wait for the instance is timed from the end of the request body.
    let timed = match body_sent {
        None => tokio::time::timeout(limit, send).await,
        Some(body_sent) => {
            tokio::pin!(send);
            let early = tokio::select! {
                biased;
                outcome = &mut send => Some(outcome),
                _ = body_sent => None,
            };
            match early {
                Some(outcome) => Ok(outcome),
                None => tokio::time::timeout(limit, send).await,
            }
        }
    };
    let Ok(outcome) = timed else {
        tracing::debug!(%backend, addr = %endpoint.addr(), ?limit, "no answer in time");
        let latency = started.elapsed().as_secs_f64() * 1_000.0;
        shared.metrics.record(backend, now(), latency, true);
        return Attempt::TimedOut;
    };
    match outcome {
        Ok(res) => {
            let latency = started.elapsed().as_secs_f64() * 1_000.0;
            let error = res.status().is_server_error();
            shared.metrics.record(backend, now(), latency, error);
            let (mut parts, body) = res.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            // The in-flight count drops when the response body is done (or dropped).
            let body = body
                .map_frame(move |f| {
                    let _held = &guard;
                    f
                })
                .boxed();
            Attempt::Answered(Response::from_parts(parts, body))
        }
        Err(SendError::NotSent(req, reason)) => {
            tracing::debug!(%backend, addr = %endpoint.addr(), %reason, "request not sent");
            shared.metrics.record_connect_error(backend, !retrying);
            Attempt::NotSent(*req)
        }
        Err(SendError::Failed(reason)) => {
            tracing::debug!(%backend, addr = %endpoint.addr(), %reason, "request failed");
            Attempt::Failed
        }
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
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
    let bodyless = has_no_body(&req);
    let mut req = upstream_request(req);
    if let Some(m) = split.mirror()
        && rand::random_range(0..10_000u32) < u32::from(m.percent().bps())
        && let Some(ep) = snap
            .backends
            .get(m.backend().as_str())
            .and_then(|b| b.pick(None))
    {
        let name = m.backend().as_str();
        let copy = if bodyless {
            Some(mirror_copy(&req))
        } else if let Some(len) = mirror::teeable_len(&req, shared.config.mirror_body_limit) {
            let (primary, copy) = mirror::tee(req, len, shared.metrics.clone(), name);
            req = primary;
            Some(copy)
        } else {
            shared.metrics.record_mirror_skipped(name);
            None
        };
        if let Some(copy) = copy {
            let shared = shared.clone();
            let name = name.to_owned();
            tokio::spawn(async move {
                // A mirror that never answers holds its connection for a bounded time only.
                let _ = tokio::time::timeout(MIRROR_TIMEOUT, async {
                    if let Attempt::Answered(res) =
                        attempt(&shared, &name, ep, copy, Instant::now(), true).await
                    {
                        mirror::drain(res.into_body()).await;
                    }
                })
                .await;
            });
        }
    }
    let set_cookie = split.sticky().and_then(|s| {
        (reason == Reason::Weight)
            .then(|| {
                HeaderValue::from_str(&format!(
                    "{}={backend}; Path=/; Max-Age={}; HttpOnly",
                    s.cookie(),
                    s.ttl().as_secs()
                ))
                .ok()
            })
            .flatten()
    });
    let Some(first) = snap.backends.get(backend).and_then(|b| b.pick(None)) else {
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "no ready backend in the split",
        );
    };
    let first_addr = first.addr();
    // An idempotent request without a body can be sent again even if the first try reached
    // the instance (it crashed or closed the connection mid-answer).
    let replay = (bodyless
        && matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS))
    .then(|| mirror_copy(&req));
    let (retry, failure) = match attempt(&shared, backend, first, req, started, false).await {
        Attempt::NotSent(req) => (Some(req), Attempt::Failed),
        Attempt::Failed => (replay, Attempt::Failed),
        Attempt::TimedOut => (replay, Attempt::TimedOut),
        answered => return finish(answered, backend, backend, set_cookie, &shared, started),
    };
    let Some(req) = retry else {
        return finish(failure, backend, backend, set_cookie, &shared, started);
    };
    // Once, elsewhere: another instance of the same backend, else another backend.
    let other = snap
        .backends
        .get(backend)
        .and_then(|b| b.pick(Some(first_addr)))
        .map(|e| (backend, e))
        .or_else(|| {
            let roll = rand::random_range(0..10_000u32);
            choose(&split, req.headers(), roll, &ready, Some(backend)).and_then(|(b, _)| {
                snap.backends
                    .get(b)
                    .and_then(|x| x.pick(None))
                    .map(|e| (b, e))
            })
        });
    let (served_by, outcome) = match other {
        Some((b, ep)) => (b, attempt(&shared, b, ep, req, started, true).await),
        None => (backend, failure),
    };
    finish(outcome, backend, served_by, set_cookie, &shared, started)
}

/// The client's answer: the instance's response (with the sticky cookie when it was chosen by
/// weight and served by that backend), a 504 for an instance that did not answer in time
/// (counted when it timed out), or a 502 counted as an error of `served_by`.
fn finish(
    outcome: Attempt,
    chosen: &str,
    served_by: &str,
    set_cookie: Option<HeaderValue>,
    shared: &Shared,
    started: Instant,
) -> Response<Body> {
    match outcome {
        Attempt::Answered(mut res) => {
            if let Some(v) = set_cookie
                && served_by == chosen
            {
                res.headers_mut().append(header::SET_COOKIE, v);
            }
            res
        }
        Attempt::TimedOut => answer(
            StatusCode::GATEWAY_TIMEOUT,
            "the instance did not answer within the proxy's response timeout",
        ),
        Attempt::NotSent(_) | Attempt::Failed => {
            let latency = started.elapsed().as_secs_f64() * 1_000.0;
            shared.metrics.record(served_by, now(), latency, true);
            answer(StatusCode::BAD_GATEWAY, "no instance could answer")
        }
    }
}

/// The HTTP/1.1 and HTTP/2 server of the proxy and of its admin listener, closing connections
/// whose request headers take longer than the configured limit.
fn http_server(config: &ProxyConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    builder
}

async fn serve(mut conns: Conns, shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let builder = http_server(&shared.config);
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = conns.next() => {
                let Some(stream) = accepted else { break };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let svc = service_fn(move |req| {
                    let shared = shared.clone();
                    async move { Ok::<_, Infallible>(handle(shared, req).await) }
                });
                let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "client connection ended");
                    }
                });
            }
            _ = stopped.changed() => break,
        }
    }
    drop(conns);
    graceful.shutdown().await;
}

async fn serve_admin(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    let builder = http_server(&shared.config);
    loop {
        tokio::select! {
            accepted = accept::accept(&listener) => {
                let Some(stream) = accepted else { continue };
                let shared = shared.clone();
                let svc = service_fn(move |req: Request<Incoming>| {
                    let shared = shared.clone();
                    async move {
                        let res = match (req.method(), req.uri().path()) {
                            (&Method::GET, "/metrics") => {
                                let mut r = Response::new(full(shared.metrics.prometheus()));
                                r.headers_mut().insert(
                                    header::CONTENT_TYPE,
                                    HeaderValue::from_static("text/plain; version=0.0.4"),
                                );
                                r
                            }
                            (&Method::GET, "/healthz") => answer(StatusCode::OK, "ok"),
                            _ => answer(StatusCode::NOT_FOUND, "not found"),
                        };
                        Ok::<_, Infallible>(res)
                    }
                });
                let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            _ = stopped.changed() => break,
        }
    }
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
