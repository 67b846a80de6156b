//! One backend endpoint (an instance's address) with its pool of keep-alive HTTP/1.1
//! connections, and the send that knows whether a request left the proxy.
//!
//! The proxy keeps its own small pool instead of a general client so that it always knows
//! whether a failed request was sent: a connection that cannot be opened, or a pooled
//! connection that turns out closed before the request was written, hands the request back
//! (hyper's `try_send_request`), and the proxy retries it elsewhere without any risk of running
//! it twice.
//!
//! With worker threads ([`ProxyConfig::workers`](crate::ProxyConfig::workers)) each worker has
//! its own pool per endpoint: a connection's task runs on the worker that opened it, and only
//! that worker's requests use it, so forwarding a request never wakes another thread.

use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::proxy::Body;

/// The most idle connections kept per endpoint.
const MAX_IDLE: usize = 1_024;

thread_local! {
    /// The index of the proxy worker running on this thread (0 off the proxy's threads).
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// Marks the current thread as proxy worker `index`.
pub(crate) fn set_worker(index: usize) {
    WORKER.set(index);
}

/// An instance the proxy forwards to.
#[derive(Debug)]
pub(crate) struct Endpoint {
    addr: SocketAddr,
    /// One pool per worker (one in all when serving on the caller's runtime).
    idle: Box<[Mutex<Vec<SendRequest<Body>>>]>,
    in_flight: AtomicUsize,
    removed: AtomicBool,
}

/// A failed send.
pub(crate) enum SendError {
    /// Nothing was sent: the request comes back, for a retry elsewhere.
    NotSent(Box<Request<Body>>, String),
    /// The request (or part of it) was sent, then the exchange failed.
    Failed(String),
}

/// Counts one request in flight on an endpoint until dropped.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Endpoint>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Endpoint {
    /// An endpoint with `pools` pools (the proxy's worker count, at least one).
    pub(crate) fn new(addr: SocketAddr, pools: usize) -> Arc<Self> {
        Arc::new(Endpoint {
            addr,
            idle: (0..pools.max(1)).map(|_| Mutex::new(Vec::new())).collect(),
            in_flight: AtomicUsize::new(0),
            removed: AtomicBool::new(false),
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Whether the endpoint is out of every backend. A request counts itself in flight
    /// ([`begin`](Self::begin)) before asking, and the proxy marks an endpoint removed before
    /// reading its in-flight count: with both in one order (`SeqCst`), either the request sees
    /// the mark or the count sees the request.
    pub(crate) fn is_removed(&self) -> bool {
        self.removed.load(Ordering::SeqCst)
    }

    /// Marks the endpoint as out of every backend: idle connections are closed now (the
    /// instance sees a clean end of its keep-alive connections) and busy ones when their
    /// request completes.
    pub(crate) fn remove(&self) {
        self.removed.store(true, Ordering::SeqCst);
        for pool in &self.idle {
            lock_pool(pool).clear();
        }
    }

    /// Takes it back into service (an address listed again).
    pub(crate) fn restore(&self) {
        self.removed.store(false, Ordering::SeqCst);
    }

    /// This worker's pool (`new` makes one for every worker).
    fn lock_idle(&self) -> Option<std::sync::MutexGuard<'_, Vec<SendRequest<Body>>>> {
        let worker = WORKER.get();
        self.idle
            .get(worker)
            .or_else(|| self.idle.first())
            .map(lock_pool)
    }

    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    async fn connect(&self, timeout: Duration) -> Result<SendRequest<Body>, String> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(self.addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(format!("connect to {}: {e}", self.addr)),
            Err(_) => {
                return Err(format!(
                    "connect to {}: timed out after {timeout:?}",
                    self.addr
                ));
            }
        };
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake with {}: {e}", self.addr))?;
        // With upgrades, so that a `101 Switching Protocols` answer hands the connection over
        // to the proxy's tunnel (see `ProxyRouter`); other requests are served as without.
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended");
            }
        });
        Ok(sender)
    }

    /// Sends `req`, on an idle connection if one is usable, else on a new one.
    pub(crate) async fn send(
        self: &Arc<Self>,
        mut req: Request<Body>,
        connect_timeout: Duration,
    ) -> Result<Response<Incoming>, SendError> {
        loop {
            let pooled = {
                // Connections are pooled as soon as their request is sent; one whose response
                // is still being read is not ready and stays for later. Closed ones go.
                self.lock_idle().and_then(|mut idle| {
                    idle.retain(|s| !s.is_closed());
                    idle.iter()
                        .rposition(SendRequest::is_ready)
                        .map(|i| idle.swap_remove(i))
                })
            };
            let reused = pooled.is_some();
            let mut sender = match pooled {
                Some(s) => s,
                None => match self.connect(connect_timeout).await {
                    Ok(s) => s,
                    Err(reason) => return Err(SendError::NotSent(Box::new(req), reason)),
                },
            };
            match sender.try_send_request(req).await {
                Ok(res) => {
                    self.recycle(sender);
                    return Ok(res);
                }
                Err(mut e) => match e.take_message() {
                    // A stale pooled connection: try the next one, or a fresh one.
                    Some(back) if reused => req = back,
                    Some(back) => {
                        return Err(SendError::NotSent(
                            Box::new(back),
                            e.into_error().to_string(),
                        ));
                    }
                    None => return Err(SendError::Failed(e.into_error().to_string())),
                },
            }
        }
    }

    /// Puts the connection back in the pool at once: it becomes ready (usable) by itself when
    /// its response has been read in full, with no task to watch it.
    fn recycle(&self, sender: SendRequest<Body>) {
        if self.removed.load(Ordering::Acquire) {
            return;
        }
        if let Some(mut idle) = self.lock_idle()
            && idle.len() < MAX_IDLE
        {
            idle.push(sender);
        }
    }
}

fn lock_pool(
    pool: &Mutex<Vec<SendRequest<Body>>>,
) -> std::sync::MutexGuard<'_, Vec<SendRequest<Body>>> {
    pool.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
