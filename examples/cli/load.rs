//! The built-in load for the local backend: keep-alive HTTP clients sending `GET /` through the
//! proxy at a steady total rate, so the canary judges and the rollback triggers have data.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// Clients of the load; each sends `rps / CLIENTS` requests a second.
const CLIENTS: usize = 4;

/// What the load saw.
#[derive(Debug, Default)]
struct Counters {
    answered: AtomicU64,
    server_errors: AtomicU64,
    unanswered: AtomicU64,
}

/// The load's totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tally {
    /// Requests a version answered.
    pub answered: u64,
    /// Of those, answered with a 5xx by the version itself.
    pub server_errors: u64,
    /// Requests no version answered (refused connections, proxy 502/503).
    pub unanswered: u64,
}

/// A running load; [`stop`](Load::stop) ends it.
#[derive(Debug)]
pub struct Load {
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    clients: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts `rps` requests a second in total to `proxy` (at least one a second per client).
    pub fn start(proxy: SocketAddr, rps: f64) -> Load {
        let counters = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let per_client = (rps / CLIENTS as f64).max(1.0);
        let period = Duration::from_secs_f64(1.0 / per_client);
        let clients = (0..CLIENTS)
            .map(|_| {
                tokio::spawn(client(
                    proxy,
                    period,
                    Arc::clone(&counters),
                    Arc::clone(&stop),
                ))
            })
            .collect();
        Load {
            counters,
            stop,
            clients,
        }
    }

    /// What the load saw so far.
    pub fn tally(&self) -> Tally {
        Tally {
            answered: self.counters.answered.load(Ordering::Relaxed),
            server_errors: self.counters.server_errors.load(Ordering::Relaxed),
            unanswered: self.counters.unanswered.load(Ordering::Relaxed),
        }
    }

    /// Stops every client (each finishes its request in flight) and returns the totals.
    pub async fn stop(mut self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        for c in std::mem::take(&mut self.clients) {
            if tokio::time::timeout(Duration::from_secs(2), c)
                .await
                .is_err()
            {
                // A request stuck on a dying upstream: the client is dropped with it.
            }
        }
        self.tally()
    }
}

async fn client(
    proxy: SocketAddr,
    period: Duration,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    'connect: while !stop.load(Ordering::Relaxed) {
        let Ok(stream) = TcpStream::connect(proxy).await else {
            counters.unanswered.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok((mut sender, conn)) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await
        else {
            counters.unanswered.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        tokio::spawn(conn);
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            if sender.ready().await.is_err() {
                continue 'connect;
            }
            let Ok(req) = hyper::Request::get("/")
                .header(hyper::header::HOST, "demo")
                .body(Empty::new())
            else {
                continue;
            };
            match sender.send_request(req).await {
                Ok(resp) => {
                    let by_version = resp.headers().contains_key("x-serin-version");
                    let status = resp.status();
                    let _ = resp.into_body().collect().await;
                    if by_version {
                        counters.answered.fetch_add(1, Ordering::Relaxed);
                        if status.is_server_error() {
                            counters.server_errors.fetch_add(1, Ordering::Relaxed);
                        }
                    } else {
                        counters.unanswered.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(_) => {
                    counters.unanswered.fetch_add(1, Ordering::Relaxed);
                    continue 'connect;
                }
            }
        }
    }
}
