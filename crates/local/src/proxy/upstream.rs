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
//!
//! A pooled connection idle for [`ProxyConfig::upstream_idle_timeout`](crate::ProxyConfig::upstream_idle_timeout)
//! is closed by its own task (as nginx's upstream `keepalive_timeout` and Envoy's idle timeout
//! do), so instances no longer listed in any split, or no longer sent anything, are not held
//! open for ever, and the proxy, not the instance, ends a connection it no longer uses.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use super::reading::Stalled;
use crate::proxy::Body;

/// The most idle connections kept per endpoint.
const MAX_IDLE: usize = 1_024;

/// How long a pooled connection may stay idle unless configured otherwise: nginx's upstream
/// `keepalive_timeout`.
pub(crate) const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

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
    idle: Box<[Mutex<Vec<Pooled>>]>,
    /// How long a pooled connection may stay idle before its task closes it.
    idle_timeout: Duration,
    /// The longest pause in reading a response body from one of its connections.
    body_timeout: Duration,
    /// The most header fields an answer may have; `None` for hyper's own.
    max_headers: Option<usize>,
    /// The most bytes an answer's head may have: the bound of a connection's read buffer.
    max_head_size: usize,
    /// The id of the next connection opened.
    next_id: AtomicU64,
    in_flight: AtomicUsize,
    removed: AtomicBool,
}

/// A connection in a pool: ready for a request, or still reading its last answer.
#[derive(Debug)]
struct Pooled {
    sender: SendRequest<Body>,
    due: Arc<BodyDue>,
    /// Which connection it is, for its task to find it.
    id: u64,
    /// Since when it is idle, as far as known: the arrival of its last answer's head, until its
    /// task sees that answer read in full (a body that takes longer than the limit to read).
    since: Instant,
}

/// What a connection's task does next about its idle limit.
enum Next {
    /// Looks again then.
    Sleep(Instant),
    /// Waits for its answer to be read in full.
    AwaitAnswer,
    /// Nothing: the connection is closing.
    Close,
}

/// A failed send.
pub(crate) enum SendError {
    /// Nothing was sent: the request comes back, for a retry elsewhere.
    NotSent(Box<Request<Body>>, String),
    /// The request (or part of it) was sent, then the exchange failed.
    Failed(String),
    /// As [`Failed`](Self::Failed), on a kept-alive connection that had served before: the
    /// instance may have closed it as idle just as the request went out, a race that no
    /// keep-alive avoids.
    Reused(String),
    /// The answer's head had more header fields than the proxy takes, or more bytes than it
    /// buffers: the instance's doing, on any connection.
    HeadTooLarge,
    /// No answer came within the time [`Endpoint::send`] was given for it.
    TimedOut,
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
    /// An endpoint with `pools` pools (the proxy's worker count, at least one), whose
    /// connections are closed once idle for `idle`, fail a response body that pauses for
    /// `body`, and fail an answer with more than `max_headers` header fields (`None`: hyper's
    /// limit) or a head of more than `max_head_size` bytes (at least hyper's smallest buffer,
    /// 8 KiB, below which hyper panics).
    pub(crate) fn new(
        addr: SocketAddr,
        pools: usize,
        idle: Duration,
        body: Duration,
        max_headers: Option<usize>,
        max_head_size: usize,
    ) -> Arc<Self> {
        Arc::new(Endpoint {
            addr,
            idle: (0..pools.max(1)).map(|_| Mutex::new(Vec::new())).collect(),
            idle_timeout: idle,
            body_timeout: body,
            max_headers,
            max_head_size,
            next_id: AtomicU64::new(0),
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
    fn lock_idle(&self) -> Option<MutexGuard<'_, Vec<Pooled>>> {
        self.lock_pool_of(WORKER.get())
    }

    /// Worker `worker`'s pool.
    fn lock_pool_of(&self, worker: usize) -> Option<MutexGuard<'_, Vec<Pooled>>> {
        self.idle
            .get(worker)
            .or_else(|| self.idle.first())
            .map(lock_pool)
    }

    /// What connection `id` of `worker`'s pool does next about its idle limit, at `now`. One
    /// idle for the limit leaves the pool, which closes it (hyper ends a connection whose
    /// sender is dropped, with nothing in flight); one in use is never closed here.
    fn expire(&self, worker: usize, id: u64, now: Instant) -> Next {
        let Some(mut pool) = self.lock_pool_of(worker) else {
            return Next::Close;
        };
        let Some(i) = pool.iter().position(|p| p.id == id) else {
            // Taken by a request: it comes back, and is idle, no sooner than now.
            return Next::Sleep(now + self.idle_timeout);
        };
        let pooled = &pool[i];
        if pooled.sender.is_closed() {
            // Ended by the instance or switched to another protocol: nothing left to time.
            drop(pool.swap_remove(i));
            return Next::Close;
        }
        if !pooled.sender.is_ready() {
            return Next::AwaitAnswer;
        }
        let due = pooled.since + self.idle_timeout;
        if due > now {
            return Next::Sleep(due);
        }
        drop(pool.swap_remove(i));
        Next::Close
    }

    /// Ready once connection `id` of `worker`'s pool has its answer read in full (its idle time
    /// starts then), or has left the pool.
    fn poll_answered(&self, worker: usize, id: u64, cx: &mut Context<'_>) -> Poll<()> {
        let Some(mut pool) = self.lock_pool_of(worker) else {
            return Poll::Ready(());
        };
        let Some(pooled) = pool.iter_mut().find(|p| p.id == id) else {
            return Poll::Ready(());
        };
        match pooled.sender.poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => {
                pooled.since = Instant::now();
                Poll::Ready(())
            }
        }
    }

    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    /// Opens a connection: its sender, id and body timing.
    async fn connect(
        self: &Arc<Self>,
        timeout: Duration,
    ) -> Result<(SendRequest<Body>, u64, Arc<BodyDue>), String> {
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
        let due = Arc::new(BodyDue::default());
        let io = TimedIo {
            io: TokioIo::new(stream),
            due: due.clone(),
            idle: self.body_timeout,
            waiting: None,
            timer: Box::pin(tokio::time::sleep(self.body_timeout)),
        };
        let mut builder = http1::Builder::new();
        builder.max_buf_size(self.max_head_size);
        if let Some(fields) = self.max_headers {
            builder.max_headers(fields);
        }
        let (sender, conn) = builder
            .handshake(io)
            .await
            .map_err(|e| format!("handshake with {}: {e}", self.addr))?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let endpoint = Arc::downgrade(self);
        let worker = WORKER.get();
        let idle = self.idle_timeout;
        // With upgrades, so that a `101 Switching Protocols` answer hands the connection over
        // to the proxy's tunnel (see `ProxyRouter`); other requests are served as without.
        tokio::spawn(async move {
            let conn = conn.with_upgrades();
            tokio::pin!(conn);
            let mut next = Next::Sleep(Instant::now() + idle);
            let ended = loop {
                let check = async {
                    match next {
                        Next::Sleep(at) => tokio::time::sleep_until(at).await,
                        Next::AwaitAnswer => answered(&endpoint, worker, id).await,
                        Next::Close => std::future::pending().await,
                    }
                };
                // The connection first: most wakes are its own, and need no timer polled.
                tokio::select! {
                    biased;
                    ended = &mut conn => break ended,
                    () = check => {
                        next = endpoint
                            .upgrade()
                            .map_or(Next::Close, |e| e.expire(worker, id, Instant::now()));
                    }
                }
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, "upstream connection ended");
            }
        });
        Ok((sender, id, due))
    }

    /// Sends `req`, on an idle connection if one is usable, else on a new one: the answer, and
    /// the token by which its body's reads are timed until [`BodyDue::done`]. With
    /// `answer_within`, the answer's head must come within it of the connection being had, so
    /// a slow connect takes nothing from the wait for the answer (a request with a body has its
    /// wait timed by the caller, from the end of the body).
    pub(crate) async fn send(
        self: &Arc<Self>,
        mut req: Request<Body>,
        connect_timeout: Duration,
        answer_within: Option<Duration>,
    ) -> Result<(Response<Incoming>, DueToken), SendError> {
        loop {
            let pooled = {
                // Connections are pooled as soon as their request is sent; one whose response
                // is still being read is not ready and stays for later. Closed ones go.
                self.lock_idle().and_then(|mut idle| {
                    idle.retain(|p| !p.sender.is_closed());
                    idle.iter()
                        .rposition(|p| p.sender.is_ready())
                        .map(|i| idle.swap_remove(i))
                })
            };
            let reused = pooled.is_some();
            let (mut sender, id, due) = match pooled {
                Some(p) => (p.sender, p.id, p.due),
                None => match self.connect(connect_timeout).await {
                    Ok(s) => s,
                    Err(reason) => return Err(SendError::NotSent(Box::new(req), reason)),
                },
            };
            // The wait for the head is the response timeout's, not the body timeout's.
            due.due.store(0, Ordering::Release);
            let sent = sender.try_send_request(req);
            let answer = match answer_within {
                Some(limit) => match tokio::time::timeout(limit, sent).await {
                    Ok(answer) => answer,
                    Err(_) => return Err(SendError::TimedOut),
                },
                None => sent.await,
            };
            match answer {
                Ok(res) => {
                    // A switched connection is a tunnel's: its pauses are its own business.
                    let token = if res.status() == StatusCode::SWITCHING_PROTOCOLS {
                        0
                    } else {
                        due.begin()
                    };
                    let token = DueToken {
                        due: due.clone(),
                        token,
                    };
                    self.recycle(sender, id, due);
                    return Ok((res, token));
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
                    None if e.error().is_parse_too_large() => return Err(SendError::HeadTooLarge),
                    None if reused => return Err(SendError::Reused(e.into_error().to_string())),
                    None => return Err(SendError::Failed(e.into_error().to_string())),
                },
            }
        }
    }

    /// Puts connection `id` back in the pool at once: it becomes ready (usable) by itself when
    /// its response has been read in full, with no task to watch it. Not into the pool of a
    /// removed endpoint, checked with the pool locked: [`remove`](Self::remove) marks the
    /// endpoint before it locks each pool to clear it, so a connection pushed before that
    /// clear is cleared, and one that comes after sees the mark. Checked before taking the
    /// lock, a removal between the check and the push would leave the connection pooled, open
    /// to the removed instance until the idle timeout.
    fn recycle(&self, sender: SendRequest<Body>, id: u64, due: Arc<BodyDue>) {
        if let Some(mut idle) = self.lock_idle()
            && !self.removed.load(Ordering::SeqCst)
            && idle.len() < MAX_IDLE
        {
            idle.push(Pooled {
                sender,
                due,
                id,
                since: Instant::now(),
            });
        }
    }
}

/// Which answer of a connection has its body being read, if any: while one has, the
/// connection's reads are timed by the response body timeout (nginx's `proxy_read_timeout`,
/// between two reads). Not while the connection waits for an answer's head (the response
/// timeout's), nor while it is idle in the pool, nor once it is a tunnel.
#[derive(Debug, Default)]
pub(crate) struct BodyDue {
    /// The token of the answer whose body is being read; 0 for none.
    due: AtomicU64,
    /// The last token given.
    issued: AtomicU64,
}

impl BodyDue {
    fn begin(&self) -> u64 {
        let token = self.issued.fetch_add(1, Ordering::Relaxed) + 1;
        self.due.store(token, Ordering::Release);
        token
    }
}

/// An answer's claim on its connection's body timing, ended by [`done`](DueToken::done) or
/// when dropped (its body read, failed or dropped); a later answer's claim is left alone.
#[derive(Debug)]
pub(crate) struct DueToken {
    due: Arc<BodyDue>,
    token: u64,
}

impl DueToken {
    pub(crate) fn done(&self) {
        let _ = self
            .due
            .due
            .compare_exchange(self.token, 0, Ordering::AcqRel, Ordering::Relaxed);
    }
}

impl Drop for DueToken {
    fn drop(&mut self) {
        self.done();
    }
}

/// A connection to an instance whose reads fail with [`Stalled`] once they have waited for
/// the response body timeout while an answer's body is due ([`BodyDue`]): hyper then fails
/// that body, and the client's answer is cut off rather than held for ever. Only reads hyper
/// asks for are timed: a client that reads slowly stops them, and is not counted.
struct TimedIo {
    io: TokioIo<TcpStream>,
    due: Arc<BodyDue>,
    idle: Duration,
    /// Since when a read has waited for the instance, while one does.
    waiting: Option<Instant>,
    /// One per connection, reset for each wait.
    timer: Pin<Box<Sleep>>,
}

impl Read for TimedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if polled.is_ready() || this.due.due.load(Ordering::Acquire) == 0 {
            this.waiting = None;
            return polled;
        }
        let since = *this.waiting.get_or_insert_with(Instant::now);
        let deadline = since + this.idle;
        if this.timer.deadline() != deadline {
            this.timer.as_mut().reset(deadline);
        }
        match this.timer.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                Stalled(this.idle),
            ))),
        }
    }
}

impl Write for TimedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

/// Waits until connection `id` of `worker`'s pool of `endpoint` has its answer read in full.
async fn answered(endpoint: &Weak<Endpoint>, worker: usize, id: u64) {
    std::future::poll_fn(|cx| match endpoint.upgrade() {
        Some(e) => e.poll_answered(worker, id, cx),
        None => Poll::Ready(()),
    })
    .await;
}

fn lock_pool(pool: &Mutex<Vec<Pooled>>) -> MutexGuard<'_, Vec<Pooled>> {
    pool.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use http_body_util::{BodyExt, Empty};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    use super::*;

    /// An instance that answers each request on its connections with `ok`: a request for
    /// `/late` after 90 s, one for `/slow` with its head at once and its body 90 s later; it
    /// tells of each connection it accepts (`true`) and each one closed by the proxy (`false`).
    async fn instance() -> (SocketAddr, mpsc::UnboundedReceiver<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let _ = tx.send(true);
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 1024];
                    loop {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                        if !seen.ends_with(b"\r\n\r\n") {
                            continue;
                        }
                        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n";
                        if seen.starts_with(b"GET /late ") {
                            tokio::time::sleep(Duration::from_secs(90)).await;
                        }
                        if stream.write_all(head).await.is_err() {
                            break;
                        }
                        if seen.starts_with(b"GET /slow ") {
                            tokio::time::sleep(Duration::from_secs(90)).await;
                        }
                        seen.clear();
                        if stream.write_all(b"ok").await.is_err() {
                            break;
                        }
                    }
                    let _ = tx.send(false);
                });
            }
        });
        (addr, rx)
    }

    async fn get(endpoint: &Arc<Endpoint>, path: &str) {
        let req = Request::get(path)
            .header("host", "shop")
            .body(Empty::new().map_err(|never| match never {}).boxed())
            .unwrap();
        let Ok((res, _)) = endpoint.send(req, Duration::from_secs(1), None).await else {
            panic!("{path} not answered");
        };
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ok");
    }

    fn pooled(endpoint: &Endpoint) -> usize {
        lock_pool(&endpoint.idle[0]).len()
    }

    #[tokio::test]
    async fn a_connection_idle_for_the_limit_is_closed_and_one_in_use_never_is() {
        let (addr, mut events) = instance().await;
        let idle = Duration::from_secs(60);
        let endpoint = Endpoint::new(addr, 1, idle, Duration::from_secs(600), None, 64 * 1024);
        get(&endpoint, "/").await;
        assert_eq!(events.recv().await, Some(true));
        // The socket is settled: from here the clock moves only when everything waits on it.
        tokio::time::pause();
        tokio::time::sleep(idle - Duration::from_secs(1)).await;
        assert!(events.try_recv().is_err(), "closed before its limit");
        // Used again, on the same connection, by a request answered after longer than the
        // limit, then by one whose answer takes longer than the limit to read: it is not idle
        // while an answer is awaited or read.
        get(&endpoint, "/late").await;
        get(&endpoint, "/slow").await;
        tokio::time::sleep(idle - Duration::from_secs(1)).await;
        assert!(events.try_recv().is_err(), "closed while in use or since");
        assert_eq!(pooled(&endpoint), 1);
        // Idle for the limit since its answer was read: closed by the proxy.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let closed = tokio::time::timeout(Duration::from_secs(1), events.recv()).await;
        assert_eq!(closed, Ok(Some(false)), "still open past the idle limit");
        assert_eq!(pooled(&endpoint), 0);
        // The next request opens a new one.
        tokio::time::resume();
        get(&endpoint, "/").await;
        assert_eq!(events.recv().await, Some(true));
    }
}
