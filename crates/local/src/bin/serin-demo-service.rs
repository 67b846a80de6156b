//! `serin-demo-service`: a small HTTP service with a configurable error rate and latency per
//! version, for the tests, the quickstart and the benches of the embedded backend.
//!
//! It reads its configuration from the environment, as a process platform starts it:
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `PORT` | loopback port to listen on (`0`: any) | required |
//! | `VERSION`, `INSTANCE` | echoed in `x-serin-version` / `x-serin-instance` | `0.0.0`, `demo` |
//! | `DEMO_ERROR_RATE` | share of `/` requests answered 500 (`0` ..= `1`) | `0` |
//! | `DEMO_LATENCY_MS` | delay before answering `/` | `0` |
//! | `DEMO_READY_AFTER_MS` | `/ready` answers 503 until this long after start | `0` |
//! | `DEMO_NEVER_READY` | `1`: `/ready` always answers 503 | unset |
//! | `SERIN_LIFELINE` | `stdin`: stop at end-of-file on stdin | unset |
//!
//! Paths: `/` (the service), `/ready`, `/live`, `/status/{code}`, `/delay/{ms}`, `/echo`
//! (streams the request body back), `/crash` (exits with status 3), `/hang` (never answers).
//! On SIGTERM it stops accepting, lets in-flight requests finish, closes keep-alive connections
//! gracefully and exits 0. With `SERIN_LIFELINE=stdin` (set by the process platform, which holds
//! the other end of its stdin) it does the same at end-of-file on stdin, so it does not outlive
//! a platform that was killed outright.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::Instant;

type Body = BoxBody<Bytes, hyper::Error>;

struct Config {
    version: String,
    instance: String,
    error_rate: f64,
    latency: Duration,
    ready_at: Option<Instant>,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn parse<T: std::str::FromStr>(name: &str, default: &str) -> Result<T, String> {
    let raw = env_or(name, default);
    raw.parse()
        .map_err(|_| format!("invalid {name} `{raw}`: not a valid number"))
}

fn config() -> Result<(u16, Config), String> {
    let raw_port = std::env::var("PORT").map_err(|_| "PORT is not set".to_owned())?;
    let port: u16 = raw_port
        .parse()
        .map_err(|_| format!("invalid PORT `{raw_port}`: must be a port number (0 to 65535)"))?;
    let error_rate: f64 = parse("DEMO_ERROR_RATE", "0")?;
    if !(0.0..=1.0).contains(&error_rate) {
        return Err(format!(
            "invalid DEMO_ERROR_RATE `{error_rate}`: must be between 0 and 1"
        ));
    }
    let latency_ms: u64 = parse("DEMO_LATENCY_MS", "0")?;
    let ready_after_ms: u64 = parse("DEMO_READY_AFTER_MS", "0")?;
    let never_ready = env_or("DEMO_NEVER_READY", "") == "1";
    Ok((
        port,
        Config {
            version: env_or("VERSION", "0.0.0"),
            instance: env_or("INSTANCE", "demo"),
            error_rate,
            latency: Duration::from_millis(latency_ms),
            // A delay past what the clock can hold is never over.
            ready_at: (!never_ready)
                .then(|| Instant::now().checked_add(Duration::from_millis(ready_after_ms)))
                .flatten(),
        },
    ))
}

/// Writes one line to standard output, ignoring a failure: the output is a pipe to the platform,
/// and a platform that is gone (the very reason the lifeline ends) takes its reading end with it.
/// `println!` would panic there, and the service would exit without draining.
fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// [`say`] on standard error.
fn complain(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn text(cfg: &Config, status: StatusCode, body: String) -> Response<Body> {
    let mut res = Response::new(Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed());
    *res.status_mut() = status;
    let h = res.headers_mut();
    if let Ok(v) = cfg.version.parse() {
        h.insert("x-serin-version", v);
    }
    if let Ok(v) = cfg.instance.parse() {
        h.insert("x-serin-instance", v);
    }
    res
}

async fn handle(cfg: Arc<Config>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let res = match path.as_str() {
        "/" => {
            if !cfg.latency.is_zero() {
                tokio::time::sleep(cfg.latency).await;
            }
            if cfg.error_rate > 0.0 && rand::random::<f64>() < cfg.error_rate {
                text(
                    &cfg,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "injected error\n".into(),
                )
            } else {
                let body = format!("{} {}\n", cfg.version, cfg.instance);
                text(&cfg, StatusCode::OK, body)
            }
        }
        "/ready" => match cfg.ready_at {
            Some(at) if Instant::now() >= at => text(&cfg, StatusCode::OK, "ready\n".into()),
            _ => text(&cfg, StatusCode::SERVICE_UNAVAILABLE, "not ready\n".into()),
        },
        "/live" => text(&cfg, StatusCode::OK, "live\n".into()),
        "/echo" => {
            let mut res = Response::new(req.into_body().boxed());
            if let Ok(v) = cfg.version.parse() {
                res.headers_mut().insert("x-serin-version", v);
            }
            res
        }
        "/crash" => {
            complain(format_args!("crashing on request"));
            std::process::exit(3);
        }
        "/hang" => std::future::pending().await,
        other => {
            if let Some(code) = other.strip_prefix("/status/") {
                match code
                    .parse::<u16>()
                    .ok()
                    .and_then(|c| StatusCode::from_u16(c).ok())
                {
                    Some(status) => text(&cfg, status, format!("{status}\n")),
                    None => text(&cfg, StatusCode::BAD_REQUEST, "bad status\n".into()),
                }
            } else if let Some(ms) = other.strip_prefix("/delay/") {
                match ms.parse::<u64>() {
                    Ok(ms) => {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        text(&cfg, StatusCode::OK, format!("{ms}\n"))
                    }
                    Err(_) => text(&cfg, StatusCode::BAD_REQUEST, "bad delay\n".into()),
                }
            } else {
                text(&cfg, StatusCode::NOT_FOUND, "not found\n".into())
            }
        }
    };
    Ok(res)
}

async fn serve(port: u16, cfg: Config) -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    say(format_args!(
        "serin-demo-service {} {} listening on {local}",
        cfg.version, cfg.instance
    ));
    let cfg = Arc::new(cfg);
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM handler: {e}"))?;
    let lifeline = lifeline();
    tokio::pin!(lifeline);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    // Out of file descriptors, every accept fails at once: rest, do not spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let cfg = cfg.clone();
                let svc = service_fn(move |req| handle(cfg.clone(), req));
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                let conn = graceful.watch(conn.into_owned());
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            _ = term.recv() => {
                say(format_args!("SIGTERM: draining"));
                break;
            }
            () = &mut lifeline => {
                say(format_args!("stdin closed (the platform is gone): draining"));
                break;
            }
        }
    }
    drop(listener);
    graceful.shutdown().await;
    say(format_args!("drained; exiting"));
    Ok(())
}

/// Completes at end-of-file on stdin when `SERIN_LIFELINE=stdin`; never otherwise (a demo
/// started by hand keeps its terminal's stdin for whoever typed the command).
async fn lifeline() {
    if std::env::var("SERIN_LIFELINE").as_deref() != Ok("stdin") {
        return std::future::pending().await;
    }
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    // Anything written is ignored; an error reads as the pipe gone.
    while let Ok(n) = stdin.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

fn main() {
    let result = config().and_then(|(port, cfg)| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the runtime: {e}"))?;
        let served = runtime.block_on(serve(port, cfg));
        // The lifeline's read of stdin runs on a blocking thread that only end-of-file ends,
        // and dropping a runtime waits for its blocking threads: after a SIGTERM, with the
        // platform still holding stdin open, the service would drain and then hang until the
        // grace period ran out and SIGKILL came. It is done; nothing is left to wait for.
        runtime.shutdown_background();
        served
    });
    if let Err(e) = result {
        complain(format_args!("serin-demo-service: {e}"));
        std::process::exit(2);
    }
}
