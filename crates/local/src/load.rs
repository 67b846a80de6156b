//! [`Load`]: steady HTTP traffic through the proxy, counting who answered each request.
//!
//! The load is *open-loop*, as wrk2's: a scheduler starts a `GET /` every `1 / rps` seconds,
//! whatever the answers' times. A closed loop, where each client waits for its answer before it
//! sends the next request, slows down exactly when the service does: it sends fewer requests
//! than asked, and the time they would have waited is never measured (coordinated omission),
//! so a slow switch looks fast and a stall looks like a quiet moment.
//!
//! - Each request goes out on an idle keep-alive connection, or on a new one. A request whose
//!   idle connection the proxy closed before the request was written goes out once more on a
//!   new connection, as HTTP clients resend it (RFC 9112 §9.3.1): the proxy never saw it.
//! - At most `max_in_flight` requests are in flight at once ([`DEFAULT_MAX_IN_FLIGHT`] unless
//!   given); a request that falls due while that many are waits one period at most for a
//!   free slot, and is counted as **not sent** if none frees, so the rate is never silently
//!   lower than asked. The requests that fell due before the load stops are all sent.
//! - The latency of an answer is measured from the moment its request was **due**, not from when
//!   it left: a scheduler that fell behind (a busy runtime) sends the requests it owes at once and
//!   their wait shows as latency, not as a lower rate.
//! - A request counts as *answered* when the response carries the `x-serin-version` header that
//!   the demo service (and any service that wants its answers counted per version) sets, and as
//!   *unanswered* otherwise: a refused connection, a dropped one, or a 502/503 from the proxy
//!   itself. That is how the quickstart, the CLI's built-in load and the end-to-end tests measure
//!   "no request failed because of a switch".

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serin_signals::LatencySketch;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::error::{Error, Result};

/// The response header naming the version that answered.
pub const VERSION_HEADER: &str = "x-serin-version";

/// The most requests per second a [`Load`] sends: one scheduler starts every request, and past
/// this rate its own CPU would be what the proxy's latency measured.
pub const MAX_RPS: f64 = 10_000.0;

/// The requests a [`Load`] keeps in flight at most unless told otherwise. Each one holds a
/// connection to the proxy, and, in a process that runs the proxy too, the proxy holds two more
/// (the client's and the instance's): 128 stay well inside the usual limit of 1,024 open files.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 128;

/// The largest bound on requests in flight [`Load::start_bounded`] accepts.
pub const MAX_IN_FLIGHT: usize = 4_096;

/// What one version answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionTally {
    /// Requests it answered.
    pub answered: u64,
    /// Of those, answered with a 5xx.
    pub server_errors: u64,
}

/// What the load saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tally {
    /// Requests a version answered.
    pub answered: u64,
    /// Of those, answered with a 5xx by the version itself.
    pub server_errors: u64,
    /// Requests no version answered (refused or dropped connections, proxy 502/503, no answer
    /// by the end of [`Load::stop`]'s wait).
    pub unanswered: u64,
    /// Requests that fell due while the bound of requests in flight was reached, and were not
    /// sent: the answers were too slow for the rate (see `latency`). Not counted as unanswered,
    /// since nothing was asked of the service, but a sign that it stalls.
    pub not_sent: u64,
    /// The answered requests by version.
    pub by_version: BTreeMap<String, VersionTally>,
    /// The latency of the answered requests in milliseconds, each from the moment its request
    /// was due. Serialized as a summary (`count`, `p50`, `p90`, `p99`, `max`), not as the
    /// sketch's bins.
    #[serde(serialize_with = "latency_summary")]
    pub latency: LatencySketch,
}

fn latency_summary<S: serde::Serializer>(
    sketch: &LatencySketch,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;
    let mut s = serializer.serialize_struct("Latency", 5)?;
    s.serialize_field("count", &sketch.count())?;
    s.serialize_field("p50", &sketch.quantile(0.5))?;
    s.serialize_field("p90", &sketch.quantile(0.9))?;
    s.serialize_field("p99", &sketch.quantile(0.99))?;
    s.serialize_field("max", &sketch.max())?;
    s.end()
}

/// `N answered (M with a 5xx from the service), K unanswered, J not sent`, then the latency
/// when something was answered.
impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} answered ({} with a 5xx from the service), {} unanswered, {} not sent",
            self.answered, self.server_errors, self.unanswered, self.not_sent
        )?;
        if let (Some(p50), Some(p99)) = (self.latency.quantile(0.5), self.latency.quantile(0.99)) {
            write!(f, "; latency p50 {p50:.1} ms, p99 {p99:.1} ms")?;
        }
        Ok(())
    }
}

impl Tally {
    fn answered(&mut self, version: String, server_error: bool, latency: Duration) {
        let v = self.by_version.entry(version).or_default();
        v.answered += 1;
        self.answered += 1;
        if server_error {
            v.server_errors += 1;
            self.server_errors += 1;
        }
        // A duration's milliseconds are finite and non-negative: the sketch takes them.
        let _ = self.latency.add(latency.as_secs_f64() * 1_000.0);
    }
}

/// What the scheduler and the requests in flight share.
#[derive(Debug)]
struct Shared {
    proxy: SocketAddr,
    tally: Mutex<Tally>,
    /// Keep-alive connections with no request on them.
    idle: Mutex<Vec<Sender>>,
}

impl Shared {
    fn tally(&self) -> MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Sender>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running load; [`stop`](Load::stop) ends it, and so does dropping it (which cancels its
/// requests in flight at once). Shareable: every method takes `&self`.
#[derive(Debug)]
pub struct Load {
    shared: Arc<Shared>,
    /// When [`stop`](Load::stop) was asked for: the requests due by then are still sent.
    stop: watch::Sender<Option<Instant>>,
    scheduler: Mutex<Option<JoinHandle<()>>>,
}

impl Load {
    /// Starts `rps` requests a second to `proxy`, at most [`DEFAULT_MAX_IN_FLIGHT`] in flight.
    /// Needs a Tokio runtime.
    ///
    /// Errors: `rps` is not a number above 0 and at most [`MAX_RPS`] (nothing starts).
    pub fn start(proxy: SocketAddr, rps: f64) -> Result<Load> {
        Load::start_bounded(proxy, rps, DEFAULT_MAX_IN_FLIGHT)
    }

    /// Starts `rps` requests a second to `proxy`, at most `max_in_flight` in flight (a request
    /// due beyond that is counted as not sent). Needs a Tokio runtime.
    ///
    /// Errors: `rps` is not a number above 0 and at most [`MAX_RPS`], or `max_in_flight` is not
    /// between 1 and [`MAX_IN_FLIGHT`] (nothing starts).
    pub fn start_bounded(proxy: SocketAddr, rps: f64, max_in_flight: usize) -> Result<Load> {
        if !(rps > 0.0 && rps <= MAX_RPS) {
            return Err(Error::invalid(
                "rps",
                rps,
                format!("must be a number of requests a second above 0 and at most {MAX_RPS}"),
            ));
        }
        if !(1..=MAX_IN_FLIGHT).contains(&max_in_flight) {
            return Err(Error::invalid(
                "maxInFlight",
                max_in_flight,
                format!("must be between 1 and {MAX_IN_FLIGHT} requests"),
            ));
        }
        let shared = Arc::new(Shared {
            proxy,
            tally: Mutex::new(Tally::default()),
            idle: Mutex::new(Vec::new()),
        });
        let (stop, stopped) = watch::channel(None);
        let scheduler = tokio::spawn(schedule(Arc::clone(&shared), rps, max_in_flight, stopped));
        Ok(Load {
            shared,
            stop,
            scheduler: Mutex::new(Some(scheduler)),
        })
    }

    /// What the load saw so far.
    pub fn tally(&self) -> Tally {
        self.shared.tally().clone()
    }

    /// Stops sending, lets the requests in flight finish (all within ten seconds; one still
    /// waiting then is cancelled and counted as unanswered) and returns the totals.
    pub async fn stop(&self) -> Tally {
        self.stop.send_if_modified(|at| {
            let first = at.is_none();
            at.get_or_insert_with(Instant::now);
            first
        });
        let scheduler = self
            .scheduler
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(s) = scheduler {
            let _ = s.await;
        }
        // The keep-alive connections close with the load's end, not with its last handle.
        self.shared.idle().clear();
        self.tally()
    }
}

/// How long [`Load::stop`] lets the requests in flight finish: long enough that only a request
/// no one will answer is still waiting on a busy machine (it then counts as unanswered), and
/// no wait at all when every request has its answer.
const STOP_WAIT: Duration = Duration::from_secs(10);

impl Drop for Load {
    fn drop(&mut self) {
        // The scheduler owns the requests in flight: aborting it cancels them too.
        if let Some(s) = self
            .scheduler
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            s.abort();
        }
    }
}

/// Starts a request every `1 / rps` seconds, each due at `start + n / rps` and measured from
/// then, until told to stop; then waits for the requests in flight (at most [`STOP_WAIT`],
/// then cancels those left and counts them as unanswered).
///
/// At the bound of requests in flight, a request waits for a free slot for one period at
/// most: requests in flight that are merely young (the burst of those a scheduler that fell
/// behind owed) answer within it, and one that finds no slot then is not sent, as the answers
/// are too slow for the rate. The requests that fell due before the stop but were not sent
/// yet (the scheduler was behind, if only by a timer's tick) are sent then: every request
/// that fell due is counted once.
async fn schedule(
    shared: Arc<Shared>,
    rps: f64,
    max_in_flight: usize,
    mut stop: watch::Receiver<Option<Instant>>,
) {
    let start = Instant::now();
    let period = Duration::try_from_secs_f64(1.0 / rps).unwrap_or(Duration::MAX);
    let mut in_flight = JoinSet::new();
    // When the stop was asked for: the requests due by then are still sent.
    let mut stopped_at: Option<Instant> = None;
    let mut n = 0u64;
    loop {
        // A request due past what the clock can hold (at a rate of one in many years) never
        // falls due: the load waits for its stop.
        let Some(due) = Duration::try_from_secs_f64(n as f64 / rps)
            .ok()
            .and_then(|after| start.checked_add(after))
        else {
            if stopped_at.is_none() {
                let _ = stop.wait_for(Option::is_some).await;
            }
            break;
        };
        match stopped_at {
            Some(end) if due > end => break,
            // Owed since before the stop: sent at once.
            Some(_) => {}
            None => tokio::select! {
                biased;
                asked = stop.wait_for(Option::is_some) => {
                    stopped_at = asked.ok().and_then(|at| *at).or_else(|| Some(Instant::now()));
                    continue;
                }
                // A request already due (the scheduler fell behind) is sent at once.
                () = tokio::time::sleep_until(due) => {}
            },
        }
        n += 1;
        while in_flight.try_join_next().is_some() {}
        if in_flight.len() >= max_in_flight
            && tokio::time::timeout(period, in_flight.join_next())
                .await
                .is_err()
        {
            shared.tally().not_sent += 1;
            continue;
        }
        in_flight.spawn(request(Arc::clone(&shared), due));
    }
    let finished = async { while in_flight.join_next().await.is_some() {} };
    if tokio::time::timeout(STOP_WAIT, finished).await.is_ok() {
        return;
    }
    // A request stuck on a hanging upstream is cancelled and counted as unanswered: it fell due
    // and got no answer. One that finished meanwhile has counted itself.
    in_flight.abort_all();
    while let Some(ended) = in_flight.join_next().await {
        if ended.is_err_and(|e| e.is_cancelled()) {
            shared.tally().unanswered += 1;
        }
    }
}

/// One request, due at `due`: on an idle keep-alive connection, or a new one. A connection that
/// cannot be made, or that drops the request, makes it unanswered.
async fn request(shared: Arc<Shared>, due: Instant) {
    let Some(sender) = sender(&shared).await else {
        shared.tally().unanswered += 1;
        return;
    };
    let Ok(req) = hyper::Request::get("/")
        .header(hyper::header::HOST, shared.proxy.to_string())
        .body(Empty::new())
    else {
        return;
    };
    let Some((sender, resp)) = send(shared.proxy, sender, req).await else {
        shared.tally().unanswered += 1;
        return;
    };
    let version = resp
        .headers()
        .get(VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let server_error = resp.status().is_server_error();
    let whole = resp.into_body().collect().await.is_ok();
    match version {
        Some(v) if whole => shared.tally().answered(v, server_error, due.elapsed()),
        _ => shared.tally().unanswered += 1,
    }
    if whole {
        shared.idle().push(sender);
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

/// Sends `req` on `sender`, and returns the connection that answered with the answer. A request
/// its connection closed before writing it (the proxy closed an idle keep-alive connection just
/// as it was taken) is sent once more on a new connection to `proxy`, as HTTP clients do: the
/// proxy never saw it, so it is no request a switch failed. One the connection took and then
/// dropped is not sent again: that failure is the proxy's, and counts.
async fn send(
    proxy: SocketAddr,
    mut sender: Sender,
    req: hyper::Request<Empty<Bytes>>,
) -> Option<(Sender, hyper::Response<hyper::body::Incoming>)> {
    match sender.try_send_request(req).await {
        Ok(resp) => Some((sender, resp)),
        Err(mut failed) => {
            let unsent = failed.take_message()?;
            let mut fresh = connect(proxy).await?;
            let resp = fresh.send_request(unsent).await.ok()?;
            Some((fresh, resp))
        }
    }
}

/// An idle connection that can take a request (those the proxy closed meanwhile are dropped),
/// else a new one; `None` if none could be made.
async fn sender(shared: &Shared) -> Option<Sender> {
    loop {
        let Some(mut s) = shared.idle().pop() else {
            return connect(shared.proxy).await;
        };
        if s.ready().await.is_ok() {
            return Some(s);
        }
    }
}

/// A new keep-alive connection to `proxy`, ready for a request; `None` if none could be made.
async fn connect(proxy: SocketAddr) -> Option<Sender> {
    let stream = TcpStream::connect(proxy).await.ok()?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .ok()?;
    tokio::spawn(conn);
    sender.ready().await.ok()?;
    Some(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tally_counts_by_version_and_keeps_the_unanswered_apart() {
        let mut t = Tally::default();
        let ms = Duration::from_millis;
        t.answered("1.0.0".into(), false, ms(10));
        t.answered("1.1.0".into(), true, ms(20));
        t.answered("1.1.0".into(), false, ms(30));
        t.unanswered += 1;
        t.not_sent += 2;
        assert_eq!((t.answered, t.server_errors, t.unanswered), (3, 1, 1));
        let (p50, p99) = (
            t.latency.quantile(0.5).expect("p50"),
            t.latency.quantile(0.99).expect("p99"),
        );
        assert_eq!(
            t.to_string(),
            format!(
                "3 answered (1 with a 5xx from the service), 1 unanswered, 2 not sent; \
                 latency p50 {p50:.1} ms, p99 {p99:.1} ms"
            )
        );
        assert!((19.0..=21.0).contains(&p50), "{t}");
        assert_eq!(
            t.by_version["1.1.0"],
            VersionTally {
                answered: 2,
                server_errors: 1
            }
        );
        assert_eq!(t.latency.count(), 3);
        let doc = serde_json::to_value(&t).expect("json");
        assert_eq!(doc["notSent"], 2);
        assert_eq!(doc["latency"]["count"], 3);
        assert_eq!(doc["latency"]["p50"], p50);
    }

    #[tokio::test]
    async fn a_rate_or_bound_out_of_range_starts_nothing() {
        let addr: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        for rps in [0.0, -5.0, f64::NAN, f64::INFINITY, MAX_RPS * 1.01, 1e12] {
            let err = Load::start(addr, rps).expect_err("refused");
            assert!(err.to_string().contains("rps"), "{err}");
        }
        for bound in [0, MAX_IN_FLIGHT + 1] {
            let err = Load::start_bounded(addr, 10.0, bound).expect_err("refused");
            let text = err.to_string();
            assert!(
                text.contains("maxInFlight") && text.contains(&bound.to_string()),
                "{text}"
            );
        }
    }

    /// A server that accepts each connection and reads `before_closing` bytes (none: at once)
    /// of it before it closes it.
    async fn closing(before_closing: usize) -> SocketAddr {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut read = vec![0; before_closing];
                let _ = stream.read_exact(&mut read).await;
            }
        });
        addr
    }

    /// A client connection to `addr`, its connection task not yet running.
    async fn handshake(
        addr: SocketAddr,
    ) -> (
        Sender,
        hyper::client::conn::http1::Connection<TokioIo<TcpStream>, Empty<Bytes>>,
    ) {
        let stream = TcpStream::connect(addr).await.expect("connect");
        hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake")
    }

    /// A GET of `/` for the load's requests.
    fn get() -> hyper::Request<Empty<Bytes>> {
        hyper::Request::get("/")
            .body(Empty::new())
            .expect("request")
    }

    /// A connection the proxy closed before the request was written (it was idle, and the
    /// proxy closed it as the request took it): the request is sent again on a new
    /// connection, and answered. The proxy never saw it.
    #[tokio::test]
    async fn a_request_its_connection_closed_before_writing_it_is_sent_on_a_new_one() {
        let (proxy, arrivals, _server) = slow(Duration::ZERO).await;
        let (sender, conn) = handshake(closing(0).await).await;
        // The connection ends with the peer's close, before any request.
        let _ = conn.await;
        let (_, resp) = send(proxy, sender, get()).await.expect("answered");
        assert_eq!(resp.headers()[VERSION_HEADER], "1.0.0");
        assert_eq!(arrivals.lock().unwrap().len(), 1);
    }

    /// A connection that took the request and then closed without an answer: the request is
    /// not sent again (the proxy saw it and dropped it, which is what the load counts).
    #[tokio::test]
    async fn a_request_its_connection_took_and_dropped_is_not_sent_again() {
        let (proxy, arrivals, _server) = slow(Duration::ZERO).await;
        let (sender, conn) = handshake(closing(4).await).await;
        tokio::spawn(conn);
        assert!(send(proxy, sender, get()).await.is_none());
        assert!(arrivals.lock().unwrap().is_empty());
    }

    /// A server that accepts connections and never answers: the requests hang. It counts the
    /// connections it accepted.
    async fn silent() -> (SocketAddr, Arc<Mutex<usize>>, JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(Mutex::new(0));
        let count = Arc::clone(&accepted);
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                *count.lock().unwrap() += 1;
                held.push(stream);
            }
        });
        (addr, accepted, task)
    }

    /// A service that answers every request as version `1.0.0` after `delay` (in the test's
    /// paused time), noting when each request arrived.
    async fn slow(delay: Duration) -> (SocketAddr, Arc<Mutex<Vec<Instant>>>, JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&arrivals);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let seen = Arc::clone(&seen);
                let svc = hyper::service::service_fn(move |_req| {
                    seen.lock().unwrap().push(Instant::now());
                    async move {
                        tokio::time::sleep(delay).await;
                        let mut resp = hyper::Response::new(Empty::<Bytes>::new());
                        resp.headers_mut().insert(
                            VERSION_HEADER,
                            hyper::header::HeaderValue::from_static("1.0.0"),
                        );
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc),
                );
            }
        });
        (addr, arrivals, task)
    }

    /// Whether every task of the load has ended (they alone hold its shared state besides the
    /// load itself).
    async fn tasks_ended(shared: &std::sync::Weak<Shared>, holders: usize) -> bool {
        for _ in 0..100 {
            if shared.strong_count() <= holders {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    #[tokio::test(start_paused = true)]
    async fn stopping_cancels_requests_stuck_on_a_silent_upstream() {
        let (addr, _, server) = silent().await;
        let load = Load::start(addr, 20.0).expect("start");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let shared = Arc::downgrade(&load.shared);
        load.stop().await;
        assert!(tasks_ended(&shared, 1).await, "a request still runs");
        server.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_cancels_requests_stuck_on_a_silent_upstream() {
        let (addr, _, server) = silent().await;
        let load = Load::start(addr, 20.0).expect("start");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let shared = Arc::downgrade(&load.shared);
        drop(load);
        assert!(tasks_ended(&shared, 0).await, "a request still runs");
        server.abort();
    }

    /// The requests are spread evenly: at 400 a second, one every 2.5 ms, not a burst of many
    /// at once, which would queue at the proxy and show in its latency. In paused time the
    /// clock moves only from one timer to the next, so requests sent together arrive at the
    /// same instant.
    #[tokio::test(start_paused = true)]
    async fn the_requests_are_spread_over_time() {
        let (addr, arrivals, server) = slow(Duration::ZERO).await;
        let load = Load::start(addr, 400.0).expect("start");
        tokio::time::sleep(Duration::from_millis(500)).await;
        load.stop().await;
        server.abort();
        let at = arrivals.lock().unwrap().clone();
        let instants: std::collections::BTreeSet<_> = at.iter().collect();
        assert!(at.len() > 100, "{} requests", at.len());
        assert!(
            instants.len() * 2 > at.len(),
            "{} requests arrived at only {} instants",
            at.len(),
            instants.len()
        );
    }

    /// Answers that take half a second do not slow the load down: at 20 requests a second, a
    /// second brings 20 requests, not the two or three a client waiting for each answer sends.
    /// Each answer's latency is the service's half second.
    #[tokio::test(start_paused = true)]
    async fn a_slow_service_gets_requests_at_the_rate_asked() {
        let (addr, arrivals, server) = slow(Duration::from_millis(500)).await;
        let load = Load::start(addr, 20.0).expect("start");
        tokio::time::sleep(Duration::from_millis(975)).await;
        assert_eq!(arrivals.lock().unwrap().len(), 20);
        let t = load.stop().await;
        server.abort();
        assert_eq!((t.answered, t.unanswered, t.not_sent), (20, 0, 0), "{t}");
        let p50 = t.latency.quantile(0.5).expect("latency");
        assert!((495.0..=600.0).contains(&p50), "{t}");
    }

    /// A scheduler held up for half a second (a busy runtime) sends the requests that fell due
    /// meanwhile as soon as it runs again, and measures each from when it was due: the wait
    /// shows as latency, not as requests never sent.
    #[tokio::test(start_paused = true)]
    async fn requests_due_while_the_scheduler_was_held_up_are_sent_late_and_measured_from_due() {
        let (addr, arrivals, server) = slow(Duration::ZERO).await;
        let load = Load::start(addr, 10.0).expect("start");
        tokio::time::sleep(Duration::from_millis(250)).await;
        // The clock jumps past five more due times before the scheduler runs again.
        tokio::time::advance(Duration::from_millis(500)).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        let t = load.stop().await;
        server.abort();
        // Due at 0, 100, 200 ms on time; at 300 .. 700 ms late.
        assert_eq!(arrivals.lock().unwrap().len(), 8);
        assert_eq!(t.answered, 8, "{t}");
        let late = t.latency.max().expect("latency");
        assert!((440.0..=520.0).contains(&late), "{t}");
    }

    /// A scheduler held up for a second at 320 requests a second owes more requests than the
    /// bound of requests in flight (192 more): it sends them as the young ones in flight
    /// answer, and does not count them as not sent, since no answer was slow. (At most one
    /// is: under paused time, a moment when every request in flight waits on the network lets
    /// the clock jump to the end of a slot's wait.)
    #[tokio::test(start_paused = true)]
    async fn a_burst_owed_by_a_held_up_scheduler_is_sent_not_dropped() {
        let (addr, _, server) = slow(Duration::ZERO).await;
        let load = Load::start(addr, 320.0).expect("start");
        tokio::time::sleep(Duration::from_millis(500)).await;
        tokio::time::advance(Duration::from_millis(1_000)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let t = load.stop().await;
        server.abort();
        assert!(t.unanswered == 0 && t.not_sent <= 1, "{t}");
        assert_eq!(t.answered + t.not_sent, 641, "due at 0 .. 2000 ms: {t}");
    }

    /// Stopped while the scheduler still owes requests (it was held up), the load sends those
    /// that fell due before the stop: every request that fell due is counted once, and none
    /// as not sent, since no answer was slow.
    #[tokio::test(start_paused = true)]
    async fn requests_owed_when_the_load_stops_are_sent_then() {
        let (addr, _, server) = slow(Duration::ZERO).await;
        let load = Load::start(addr, 100.0).expect("start");
        tokio::time::sleep(Duration::from_millis(495)).await;
        tokio::time::advance(Duration::from_millis(1_000)).await;
        let t = load.stop().await;
        server.abort();
        // Due at 0, 10, ..., 1490 ms.
        assert_eq!((t.answered, t.unanswered, t.not_sent), (150, 0, 0), "{t}");
    }

    /// The service holds every request: past the bound of requests in flight, those that fall
    /// due are counted as not sent, at the load's rate (each once it has waited a period for a
    /// slot: by 975 ms, those due from 150 to 900 ms), and no more connections are opened.
    #[tokio::test(start_paused = true)]
    async fn requests_due_at_the_in_flight_bound_are_counted_not_sent() {
        let (addr, accepted, server) = silent().await;
        let load = Load::start_bounded(addr, 20.0, 3).expect("start");
        tokio::time::sleep(Duration::from_millis(975)).await;
        let t = load.tally();
        assert_eq!((t.answered, t.unanswered, t.not_sent), (0, 0, 16), "{t}");
        assert_eq!(*accepted.lock().unwrap(), 3);
        drop(load);
        server.abort();
    }

    /// Requests still waiting for an answer when the load stops are counted as unanswered once
    /// the wait for them is over: every request that fell due is counted once, and a stall at
    /// the end of a run shows as failed requests rather than vanishing from the tally.
    #[tokio::test(start_paused = true)]
    async fn requests_cancelled_at_stop_are_counted_unanswered() {
        let (addr, _, server) = silent().await;
        let load = Load::start_bounded(addr, 20.0, 3).expect("start");
        tokio::time::sleep(Duration::from_millis(975)).await;
        let t = load.stop().await;
        server.abort();
        assert_eq!((t.answered, t.unanswered, t.not_sent), (0, 3, 17), "{t}");
    }

    /// Once stopped, the load holds no connection open to the proxy, though it is still there
    /// to be asked for its tally.
    #[tokio::test(start_paused = true)]
    async fn stopping_closes_the_load_s_connections() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let open = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&open);
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let svc = hyper::service::service_fn(|_req| async {
                    let mut resp = hyper::Response::new(Empty::<Bytes>::new());
                    resp.headers_mut().insert(
                        VERSION_HEADER,
                        hyper::header::HeaderValue::from_static("1.0.0"),
                    );
                    Ok::<_, std::convert::Infallible>(resp)
                });
                let count = Arc::clone(&count);
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                    count.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        let load = Load::start(addr, 50.0).expect("start");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(open.load(Ordering::SeqCst) > 0);
        let t = load.stop().await;
        assert!(t.answered > 20, "{t}");
        for _ in 0..100 {
            if open.load(Ordering::SeqCst) == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(open.load(Ordering::SeqCst), 0, "connections left open");
        drop(load);
        server.abort();
    }

    /// Nothing listens: each due request counts as one unanswered request, at the load's rate,
    /// not as fast as connections are refused.
    #[tokio::test(start_paused = true)]
    async fn an_outage_counts_the_requests_the_load_would_have_sent() {
        let spare = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = spare.local_addr().expect("addr");
        drop(spare);
        let load = Load::start(addr, 2.0).expect("start");
        tokio::time::sleep(Duration::from_millis(1_900)).await;
        let t = load.stop().await;
        assert_eq!(t.answered, 0);
        assert!((3..=5).contains(&t.unanswered), "{t:?}");
    }

    /// A rate so low that its second request falls due past what the clock can hold sends its
    /// first request and then waits for the stop: no request is due later, and nothing panics
    /// (a panicking scheduler would cancel that first request and count it nowhere).
    #[tokio::test(start_paused = true)]
    async fn a_rate_whose_next_request_is_due_past_the_clock_sends_the_first_and_waits() {
        let (addr, arrivals, server) = slow(Duration::ZERO).await;
        for rps in [1e-19, 1e-30, f64::MIN_POSITIVE] {
            let load = Load::start(addr, rps).expect("start");
            tokio::time::sleep(Duration::from_millis(100)).await;
            let t = load.stop().await;
            assert_eq!(
                (t.answered, t.unanswered, t.not_sent),
                (1, 0, 0),
                "{rps}: {t}"
            );
        }
        assert_eq!(arrivals.lock().unwrap().len(), 3);
        server.abort();
    }

    /// Nothing listens: every attempt is unanswered, and stopping returns.
    #[tokio::test(start_paused = true)]
    async fn a_load_against_nothing_counts_only_unanswered_requests() {
        let spare = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = spare.local_addr().expect("addr");
        drop(spare);
        let load = Load::start(addr, 20.0).expect("start");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let t = load.stop().await;
        assert_eq!(t.answered, 0);
        assert!(t.unanswered > 0, "{t:?}");
    }
}
