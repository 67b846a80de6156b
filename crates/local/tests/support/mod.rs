//! Shared test support: the demo service, a keep-alive load generator, a proxy set up for one
//! backend, and small HTTP helpers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serin_local::{ProxyConfig, ProxyRouter};
use serin_orchestrator::{Platform, TrackSpec, TrackStatus, wait_ready};
use serin_signals::Track;
use serin_traffic::{Mirror, TrafficRouter, TrafficSplit, Weight};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

pub const DEMO: &str = env!("CARGO_BIN_EXE_serin-demo-service");

/// A directory of its own for the test `name` (logs, lock and pid files), removed with
/// everything in it when the test drops it, so that test runs leave nothing behind.
pub fn scratch(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("serin-local-{name}-"))
        .tempdir()
        .expect("temp dir")
}

/// `instances` instances of the demo service `web` 1.0.0 brought up on `track` of `platform`,
/// once all are ready (at most 10 s, read every 20 ms).
pub async fn up(platform: &dyn Platform, track: Track, instances: u32) -> TrackStatus {
    platform
        .bring_up(&demo_spec("web", "1.0.0", track.clone(), instances))
        .await
        .unwrap();
    wait_ready(
        platform,
        "web",
        &track,
        Duration::from_millis(20),
        Duration::from_secs(10),
    )
    .await
    .unwrap()
}

/// A spec running the demo service.
pub fn demo_spec(service: &str, version: &str, track: Track, instances: u32) -> TrackSpec {
    TrackSpec::new(service, version, track, instances)
        .unwrap()
        .with_command([DEMO])
        .unwrap()
}

/// A demo service process started directly, killed on drop.
pub struct Demo {
    pub addr: SocketAddr,
    _child: Child,
}

pub fn free_port() -> u16 {
    serin_local::free_loopback_port().unwrap()
}

pub async fn start_demo(version: &str, env: &[(&str, &str)]) -> Demo {
    let port = free_port();
    let child = Command::new(DEMO)
        .env("PORT", port.to_string())
        .env("VERSION", version)
        .env("INSTANCE", format!("direct-{port}"))
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..200 {
        if TcpStream::connect(addr).await.is_ok() {
            return Demo {
                addr,
                _child: child,
            };
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("demo service on {addr} did not start within 4s");
}

/// `GET path` with `host` and `headers` on a fresh HTTP/1.1 connection to `addr`: the answer.
pub async fn get_response(
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> hyper::Response<hyper::body::Incoming> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::get(path).header("host", host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    sender
        .send_request(req.body(Empty::new()).unwrap())
        .await
        .unwrap()
}

/// One request on a fresh connection: status, headers' `x-serin-version` and body.
pub async fn get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, String, String) {
    let res = get_response(addr, &addr.to_string(), path, headers).await;
    let status = res.status();
    let version = res
        .headers()
        .get("x-serin-version")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, version, String::from_utf8_lossy(&body).into_owned())
}

/// Counts every response of a keep-alive load.
#[derive(Default)]
pub struct Tally {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    pub stop: AtomicBool,
    pub versions: Mutex<BTreeMap<String, u64>>,
    pub failures: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, why: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut f = self.failures.lock().unwrap();
        if f.len() < 20 {
            f.push(why);
        }
    }
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

/// Starts `workers` clients, each on one keep-alive connection to `addr`, sending `GET /` in a
/// loop until `tally.stop`; every response is counted, and every request that got no 200.
pub fn start_load(
    addr: SocketAddr,
    workers: usize,
    tally: Arc<Tally>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..workers)
        .map(|_| {
            let tally = tally.clone();
            tokio::spawn(async move {
                'connect: while !tally.stop.load(Ordering::Relaxed) {
                    let stream = match TcpStream::connect(addr).await {
                        Ok(s) => s,
                        Err(e) => {
                            tally.fail(format!("connect: {e}"));
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let Ok((mut sender, conn)) =
                        http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await
                    else {
                        tally.fail("handshake".into());
                        continue;
                    };
                    tokio::spawn(conn);
                    while !tally.stop.load(Ordering::Relaxed) {
                        // A connection the server ended between requests is a reconnect.
                        if sender.ready().await.is_err() {
                            continue 'connect;
                        }
                        let req = Request::get("/")
                            .header("host", "serin.test")
                            .body(Empty::new())
                            .unwrap();
                        match sender.send_request(req).await {
                            Ok(res) => {
                                let status = res.status();
                                let version = res
                                    .headers()
                                    .get("x-serin-version")
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or("?")
                                    .to_owned();
                                let body = res.into_body().collect().await;
                                if status == StatusCode::OK && body.is_ok() {
                                    tally.ok.fetch_add(1, Ordering::Relaxed);
                                    *tally.versions.lock().unwrap().entry(version).or_default() +=
                                        1;
                                } else {
                                    tally.fail(format!("status {status}"));
                                }
                            }
                            Err(e) => {
                                tally.fail(format!("request: {e}"));
                                continue 'connect;
                            }
                        }
                    }
                }
            })
        })
        .collect()
}

/// A request as a [`start_recorder`] server received it: method, path and the whole body.
pub type Recorded = (String, String, Bytes);

/// An HTTP/1.1 server that answers 204 to everything after reading the whole request, and
/// hands each complete request to the returned receiver (requests cut short are not handed).
pub async fn start_recorder() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<Recorded>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let tx = tx.clone();
                async move {
                    let method = req.method().to_string();
                    let path = req.uri().path().to_owned();
                    let body = req.into_body().collect().await?.to_bytes();
                    let _ = tx.send((method, path, body));
                    let mut res = hyper::Response::new(Empty::<Bytes>::new());
                    *res.status_mut() = StatusCode::NO_CONTENT;
                    Ok::<_, hyper::Error>(res)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc),
            );
        }
    });
    (addr, rx)
}

/// A server that accepts connections and never reads from them nor answers: the slowest
/// possible mirror. Connections are held until the task is aborted.
pub async fn start_silent() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (addr, task)
}

/// A request body sent in the given chunks without a declared length (chunked on HTTP/1.1).
pub struct Chunked(pub std::collections::VecDeque<Bytes>);

impl hyper::body::Body for Chunked {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.0.pop_front().map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

/// Sends `body` to `addr` as `POST path` on a fresh connection: the status and the whole
/// answer body.
pub async fn post<B>(addr: SocketAddr, path: &str, body: B) -> (StatusCode, Bytes)
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = http1::handshake::<_, B>(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::post(path)
        .header("host", "serin.test")
        .body(body)
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, body)
}

/// A body of `len` bytes that is not all alike, so a reordered or truncated copy shows.
pub fn payload(len: usize) -> Bytes {
    (0..len)
        .map(|i| u8::try_from(i % 251).unwrap())
        .collect::<Vec<u8>>()
        .into()
}

/// A server that reads each request's headers and closes the connection without answering: an
/// instance that crashes on every request it receives. Runs until the task is aborted.
pub async fn start_crasher() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 1024];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
            });
        }
    });
    (addr, task)
}

/// The value of the Prometheus counter `name` of `backend` in `text` (0 if absent).
pub fn counter(text: &str, name: &str, backend: &str) -> f64 {
    let prefix = format!("{name}{{backend=\"{backend}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// A proxy sending everything to `stable`, and a copy of everything to `shadow` if given.
pub async fn proxy(
    config: ProxyConfig,
    stable: SocketAddr,
    shadow: Option<SocketAddr>,
) -> ProxyRouter {
    let router = ProxyRouter::bind(config).await.unwrap();
    router.set_endpoints("stable", &[stable]);
    let split = match shadow {
        Some(shadow) => {
            router.set_endpoints("shadow", &[shadow]);
            TrafficSplit::from_percents([("stable", 100), ("shadow", 0)])
                .unwrap()
                .with_mirror(Mirror::new("shadow", Weight::FULL).unwrap())
        }
        None => TrafficSplit::all_to("stable", &[]).unwrap(),
    };
    router.apply(&split).await.unwrap();
    router
}

/// Waits (up to 5 s, polling every 10 ms) until `cond` holds; whether it did.
pub async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

/// The Prometheus counter `name` of `backend`, as the proxy's metrics say.
pub fn count(router: &ProxyRouter, name: &str, backend: &str) -> f64 {
    counter(&router.metrics().prometheus_text(), name, backend)
}

/// (requests, errors) of `backend` since start.
pub fn measured(router: &ProxyRouter, backend: &str) -> (f64, f64) {
    let text = router.metrics().prometheus_text();
    (
        counter(&text, "serin_proxy_requests_total", backend),
        counter(&text, "serin_proxy_errors_total", backend),
    )
}

/// Reads `stream` up to the end of a message head (the blank line), returned as text.
pub async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(0) | Err(_) => break,
            Ok(_) => head.push(byte[0]),
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Reads `stream` until the peer closes it (or it fails): everything read.
pub async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
}

/// Writes `request`, as raw bytes, on a fresh connection to `addr`: the connection and the
/// head of the answer, read within 5 s.
pub async fn send_raw(addr: SocketAddr, request: &[u8]) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let head = tokio::time::timeout(Duration::from_secs(5), read_head(&mut stream))
        .await
        .expect("an answer within 5 s");
    (stream, head)
}

/// An HTTP/2 (prior knowledge) connection to `addr`: its sender and its running task.
pub async fn h2_connect(
    addr: SocketAddr,
) -> (
    http2::SendRequest<Empty<Bytes>>,
    JoinHandle<hyper::Result<()>>,
) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .unwrap();
    (sender, tokio::spawn(conn))
}

/// An instance that answers each request `after` reading its head.
pub async fn answering_after(after: Duration) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                if read_head(&mut stream).await.is_empty() {
                    return;
                }
                tokio::time::sleep(after).await;
                let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                let _ = stream.write_all(ok).await;
                let _ = stream.read(&mut [0u8; 1024]).await;
            });
        }
    });
    addr
}
