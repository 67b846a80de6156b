//! [`Load`]: steady HTTP traffic through the proxy, counting who answered each request.
//!
//! Keep-alive clients send `GET /` at a fixed total rate, taking turns so that the requests are
//! spread evenly over time, and reconnect when a connection drops.
//! A request counts as *answered* when the response carries the `x-serin-version` header that
//! the demo service (and any service that wants its answers counted per version) sets, and as
//! *unanswered* otherwise: a refused connection, or a 502/503 from the proxy itself. That is how
//! the quickstart, the CLI's built-in load and the end-to-end tests measure "no request failed
//! because of a switch".

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};

/// The response header naming the version that answered.
pub const VERSION_HEADER: &str = "x-serin-version";

/// Requests per second one client sends at most; more load runs more clients.
const RPS_PER_CLIENT: f64 = 50.0;

/// The most requests per second a [`Load`] sends: 64 keep-alive clients, one request in flight
/// each. Past it the clients would not pace but spin, and their own CPU would be what the
/// proxy's latency measured.
pub const MAX_RPS: f64 = 10_000.0;

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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tally {
    /// Requests a version answered.
    pub answered: u64,
    /// Of those, answered with a 5xx by the version itself.
    pub server_errors: u64,
    /// Requests no version answered (refused connections, proxy 502/503).
    pub unanswered: u64,
    /// The answered requests by version.
    pub by_version: BTreeMap<String, VersionTally>,
}

/// `N answered (M with a 5xx from the service), K unanswered`.
impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} answered ({} with a 5xx from the service), {} unanswered",
            self.answered, self.server_errors, self.unanswered
        )
    }
}

impl Tally {
    fn record(&mut self, version: Option<String>, server_error: bool) {
        let Some(version) = version else {
            self.unanswered += 1;
            return;
        };
        let v = self.by_version.entry(version).or_default();
        v.answered += 1;
        self.answered += 1;
        if server_error {
            v.server_errors += 1;
            self.server_errors += 1;
        }
    }
}

/// A running load; [`stop`](Load::stop) ends it, and so does dropping it (which cancels its
/// clients at once, requests in flight included). Shareable: every method takes `&self`.
#[derive(Debug)]
pub struct Load {
    tally: Arc<Mutex<Tally>>,
    stop: Arc<AtomicBool>,
    clients: Mutex<Vec<JoinHandle<()>>>,
}

impl Load {
    /// Starts `rps` requests a second in total to `proxy`, from one keep-alive client per 50
    /// requests a second (each sending at least one a second). Needs a Tokio runtime.
    ///
    /// Errors: `rps` is not a number above 0 and at most [`MAX_RPS`] (nothing starts).
    pub fn start(proxy: SocketAddr, rps: f64) -> Result<Load> {
        if !(rps > 0.0 && rps <= MAX_RPS) {
            return Err(Error::invalid(
                "rps",
                rps,
                format!("must be a number of requests a second above 0 and at most {MAX_RPS}"),
            ));
        }
        let tally = Arc::new(Mutex::new(Tally::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (rps / RPS_PER_CLIENT).ceil().clamp(1.0, 64.0) as usize;
        let period = Duration::from_secs_f64(clients as f64 / rps.max(clients as f64));
        // The clients take turns over the period, so the load is steady rather than a burst
        // of every client at once: client `i` starts `i / clients` of a period after the first.
        let now = tokio::time::Instant::now();
        let clients = (0..clients)
            .map(|i| {
                let first = now + period.mul_f64(i as f64 / clients as f64);
                tokio::spawn(client(
                    proxy,
                    first,
                    period,
                    Arc::clone(&tally),
                    Arc::clone(&stop),
                ))
            })
            .collect();
        Ok(Load {
            tally,
            stop,
            clients: Mutex::new(clients),
        })
    }

    /// What the load saw so far.
    pub fn tally(&self) -> Tally {
        self.tally.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops every client (each finishes its request in flight, all within two seconds; a
    /// client still waiting then is cancelled, its request uncounted) and returns the totals.
    pub async fn stop(&self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        let clients = std::mem::take(&mut *self.clients.lock().unwrap_or_else(|e| e.into_inner()));
        let deadline = tokio::time::Instant::now() + STOP_WAIT;
        for mut c in clients {
            // A request stuck on a hanging upstream would keep its client, and its connection,
            // running for as long as the upstream holds it: dropping the handle would not end it.
            if tokio::time::timeout_at(deadline, &mut c).await.is_err() {
                c.abort();
            }
        }
        self.tally()
    }
}

/// How long [`Load::stop`] lets the clients finish their requests in flight.
const STOP_WAIT: Duration = Duration::from_secs(2);

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for c in self
            .clients
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            c.abort();
        }
    }
}

async fn client(
    proxy: SocketAddr,
    first: tokio::time::Instant,
    period: Duration,
    tally: Arc<Mutex<Tally>>,
    stop: Arc<AtomicBool>,
) {
    let record = |version: Option<String>, server_error: bool| {
        tally
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(version, server_error);
    };
    let mut tick = tokio::time::interval_at(first, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sender = None;
    loop {
        tick.tick().await;
        if stop.load(Ordering::Relaxed) {
            return;
        }
        // A keep-alive connection the proxy closed since the last request is replaced on this
        // tick. A connection that cannot be made is this tick's request, unanswered: the
        // attempts keep the load's rate, so an outage counts as many requests as it lasted
        // ticks, not as many as the client could retry.
        if let Some(s) = sender.as_mut()
            && !is_ready(s).await
        {
            sender = None;
        }
        if sender.is_none() {
            sender = connect(proxy).await;
        }
        let Some(s) = sender.as_mut() else {
            record(None, false);
            continue;
        };
        let Ok(req) = hyper::Request::get("/")
            .header(hyper::header::HOST, proxy.to_string())
            .body(Empty::new())
        else {
            continue;
        };
        match s.send_request(req).await {
            Ok(resp) => {
                let version = resp
                    .headers()
                    .get(VERSION_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let server_error = resp.status().is_server_error();
                let _ = resp.into_body().collect().await;
                record(version, server_error);
            }
            Err(_) => {
                record(None, false);
                sender = None;
            }
        }
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

/// Whether `sender`'s connection can take a request now.
async fn is_ready(sender: &mut Sender) -> bool {
    sender.ready().await.is_ok()
}

/// A new keep-alive connection to `proxy`, ready for a request; `None` if none could be made.
async fn connect(proxy: SocketAddr) -> Option<Sender> {
    let stream = TcpStream::connect(proxy).await.ok()?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .ok()?;
    tokio::spawn(conn);
    is_ready(&mut sender).await.then_some(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tally_counts_by_version_and_keeps_the_unanswered_apart() {
        let mut t = Tally::default();
        t.record(Some("1.0.0".into()), false);
        t.record(Some("1.1.0".into()), true);
        t.record(Some("1.1.0".into()), false);
        t.record(None, false);
        assert_eq!((t.answered, t.server_errors, t.unanswered), (3, 1, 1));
        assert_eq!(
            t.to_string(),
            "3 answered (1 with a 5xx from the service), 1 unanswered"
        );
        assert_eq!(
            t.by_version["1.1.0"],
            VersionTally {
                answered: 2,
                server_errors: 1
            }
        );
    }

    #[tokio::test]
    async fn a_rate_that_is_not_a_positive_number_starts_nothing() {
        let addr: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        for rps in [0.0, -5.0, f64::NAN, f64::INFINITY, MAX_RPS * 1.01, 1e12] {
            let err = Load::start(addr, rps).expect_err("refused");
            assert!(err.to_string().contains("rps"), "{err}");
        }
    }

    /// A server that accepts connections and never answers: the clients' requests hang.
    async fn silent() -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        (addr, task)
    }

    /// Whether every client task has ended (they alone hold the tally besides the load).
    async fn clients_ended(tally: &std::sync::Weak<Mutex<Tally>>, holders: usize) -> bool {
        for _ in 0..100 {
            if tally.strong_count() <= holders {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    #[tokio::test(start_paused = true)]
    async fn stopping_cancels_clients_stuck_on_a_silent_upstream() {
        let (addr, server) = silent().await;
        let load = Load::start(addr, 20.0).expect("start");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let tally = Arc::downgrade(&load.tally);
        load.stop().await;
        assert!(clients_ended(&tally, 1).await, "a client still runs");
        server.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_cancels_clients_stuck_on_a_silent_upstream() {
        let (addr, server) = silent().await;
        let load = Load::start(addr, 20.0).expect("start");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let tally = Arc::downgrade(&load.tally);
        drop(load);
        assert!(clients_ended(&tally, 0).await, "a client still runs");
        server.abort();
    }

    /// The clients take turns: a load of eight clients sends one request every 2.5 ms, not
    /// eight at once every 20 ms, which would queue in bursts at the proxy and show in its
    /// latency. In paused time the clock moves only from one timer to the next, so requests
    /// sent together arrive at the same instant.
    #[tokio::test(start_paused = true)]
    async fn the_clients_spread_their_requests_over_the_period() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let arrivals = Arc::new(Mutex::new(Vec::<tokio::time::Instant>::new()));
        let seen = Arc::clone(&arrivals);
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let seen = Arc::clone(&seen);
                let svc = hyper::service::service_fn(move |_req| {
                    seen.lock().unwrap().push(tokio::time::Instant::now());
                    async {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            Empty::<Bytes>::new(),
                        ))
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc),
                );
            }
        });
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

    /// Nothing listens: each tick's attempt counts as one unanswered request, at the load's
    /// rate, not as fast as connections are refused.
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
