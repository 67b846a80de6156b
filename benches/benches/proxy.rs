//! The embedded proxy against a direct connection and against nginx, same backends, same
//! machine, same run; then the full-scale zero-downtime scenario.
//!
//! Part 1 — throughput and added latency. Two `serin-demo-service` backends; four ways in:
//! directly to one backend, through `serin_local::ProxyRouter` with a 50/50 split (on worker
//! threads of its own, and on the bench's own tokio runtime), and through
//! nginx configured as the equivalent weighted reverse proxy (`upstream` with `weight=50` each,
//! keep-alive to the backends). Saturation throughput is measured with wrk (closed loop, 64
//! connections; the median of three rounds in which the paths take turns) when present, else with the bench's own keep-alive client; latency p50/p99 with
//! the bench's own client at a fixed rate of 50% of the proxy's saturation, for all paths.
//! During that fixed-rate run the CPU time (user + system) of the proxy's worker threads and of
//! nginx's processes is read from `/proc`, per request answered: unlike saturation throughput,
//! that cost holds on a machine busy with other work.
//! The proxy serves on as many worker threads as nginx has worker processes (one per core).
//! Without nginx the nginx row is skipped with a message (`scripts/bench/nginx.sh` installs it).
//!
//! Part 2 — zero downtime at full scale: keep-alive clients through the proxy for 30 s while it
//! runs a blue-green switch, scaling, a gradual canary 0→100% and a rollback over real
//! processes; every response is counted; the target is ≥ 2,000 req/s and zero failures.
//!
//! Run: `cargo bench -p serin-benches --bench proxy` (options after `--`:
//! `--measure-secs N` (default 5), `--scenario-secs N` (default 30)).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serin_local::{ProcessConfig, ProcessPlatform, ProxyConfig, ProxyRouter};
use serin_orchestrator::{Platform, TrackSpec, wait_ready};
use serin_signals::Track;
use serin_traffic::{TrafficRouter, TrafficSplit, Weight};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> Result<u16, BoxError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn wait_listening(addr: SocketAddr) -> Result<(), BoxError> {
    for _ in 0..250 {
        if TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("{addr} did not start listening within 5 s").into())
}

async fn start_backend(bin: &Path, version: &str) -> Result<(SocketAddr, Child), BoxError> {
    let port = free_port()?;
    let child = Command::new(bin)
        .env("PORT", port.to_string())
        .env("VERSION", version)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_listening(addr).await?;
    Ok((addr, child))
}

fn nginx_binary() -> Option<PathBuf> {
    let from_env = std::env::var("SERIN_NGINX").ok().filter(|s| !s.is_empty());
    from_env
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("/usr/sbin/nginx")))
        .filter(|p| p.exists())
}

/// Threads serving each proxy: the proxy's workers and nginx's `worker_processes` alike.
fn proxy_threads() -> u16 {
    std::thread::available_parallelism()
        .map_or(1, |n| u16::try_from(n.get()).unwrap_or(u16::MAX))
        .min(256)
}

async fn start_nginx(bin: &Path, backends: &[SocketAddr]) -> Result<(SocketAddr, Child), BoxError> {
    let port = free_port()?;
    let dir = std::env::temp_dir().join(format!("serin-bench-nginx-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let servers: String = backends
        .iter()
        .map(|b| format!("    server {b} weight=50;\n"))
        .collect();
    let d = dir.display();
    let workers = proxy_threads();
    let conf = format!(
        "worker_processes {workers};\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         upstream backends {{\n{servers}    keepalive 128;\n  }}\n\
         server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass http://backends;\n\
         proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n    }}\n  }}\n}}\n"
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf)?;
    let child = Command::new(bin)
        .arg("-e")
        .arg(dir.join("startup.log"))
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&conf_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_listening(addr).await?;
    Ok((addr, child))
}

/// Stops nginx with SIGTERM, which its master passes on to its workers; the `kill_on_drop`
/// SIGKILL (left for an early exit) ends the master alone and leaves the workers running.
async fn stop_nginx(mut child: Child) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
        let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    }
}

/// Saturation throughput with wrk (64 connections, 2 threads), if installed.
async fn wrk(addr: SocketAddr, secs: u64) -> Option<f64> {
    let out = Command::new("wrk")
        .args([
            "-t2",
            "-c64",
            &format!("-d{secs}s"),
            &format!("http://{addr}/"),
        ])
        .output()
        .await
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let non_2xx = text
        .lines()
        .any(|l| l.contains("Non-2xx") || l.contains("Socket errors"));
    if non_2xx {
        eprintln!("wrk against {addr} reported errors:\n{text}");
    }
    text.lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    stop: AtomicBool,
    latencies_us: Mutex<Vec<u32>>,
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, why: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut f) = self.failures.lock()
            && f.len() < 10
        {
            f.push(why);
        }
    }
}

/// One keep-alive client: `GET /` in a loop, each request due every `interval` (none: as fast
/// as possible), until `tally.stop`. Every response is counted.
async fn client(addr: SocketAddr, interval: Option<Duration>, record: bool, tally: Arc<Tally>) {
    let mut ticker = interval.map(|i| {
        let mut t = tokio::time::interval(i);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut local = Vec::new();
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
            if let Some(t) = ticker.as_mut() {
                t.tick().await;
            }
            // A server may end a keep-alive connection between requests (nginx does after 1,000
            // requests): that is a reconnect, not a failed request.
            if sender.ready().await.is_err() {
                continue 'connect;
            }
            let Ok(req) = Request::get("/").header("host", "bench").body(Empty::new()) else {
                break 'connect;
            };
            let started = Instant::now();
            match sender.send_request(req).await {
                Ok(res) => {
                    let status = res.status();
                    let body = res.into_body().collect().await;
                    if status == StatusCode::OK && body.is_ok() {
                        tally.ok.fetch_add(1, Ordering::Relaxed);
                        if record {
                            local.push(
                                u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX),
                            );
                        }
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
    if let Ok(mut l) = tally.latencies_us.lock() {
        l.extend(local);
    }
}

/// Runs `conns` clients for `secs`; returns (requests per second, tally).
async fn load(addr: SocketAddr, conns: usize, rate: Option<f64>, secs: u64) -> (f64, Arc<Tally>) {
    let tally = Arc::new(Tally::default());
    let interval = rate.map(|r| Duration::from_secs_f64(conns as f64 / r.max(1.0)));
    let tasks: Vec<_> = (0..conns)
        .map(|_| tokio::spawn(client(addr, interval, rate.is_some(), tally.clone())))
        .collect();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    tally.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let rps = tally.ok.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    (rps, tally)
}

fn quantile_ms(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    f64::from(sorted[i.min(sorted.len() - 1)]) / 1_000.0
}

struct Row {
    name: &'static str,
    rps: f64,
    tool: &'static str,
    p50: f64,
    p99: f64,
    failed: u64,
    /// CPU microseconds per request at the fixed rate, user and system, where the path's
    /// server can be told apart from the bench's own threads.
    cpu_us: Option<[f64; 2]>,
}

/// Whose CPU time a path's requests cost.
#[derive(Clone, Copy)]
enum Server {
    /// Not measured: the backend itself, or a proxy sharing the bench's threads.
    Unmeasured,
    /// The proxy's worker threads in this process (named `serin-proxy-N`).
    Workers,
    /// nginx: its master process and the worker processes it started.
    Nginx(u32),
}

impl Server {
    /// Whether the thread or process `id`, named `name`, child of `ppid`, is one of its own.
    fn runs(self, id: u32, name: &str, ppid: u32) -> bool {
        match self {
            Server::Unmeasured => false,
            Server::Workers => name.starts_with("serin-proxy-"),
            Server::Nginx(master) => id == master || ppid == master,
        }
    }
}

/// Linux reports CPU times in `/proc` in ticks of 1/100 s (`USER_HZ`), whatever the kernel's
/// own tick.
const MICROS_PER_TICK: f64 = 10_000.0;

/// The name, the parent's pid, and the user and system CPU ticks of a `/proc/.../stat` line.
fn stat_ticks(stat: &str) -> Option<(String, u32, [u64; 2])> {
    // The name is in parentheses and may hold spaces; the fields after it are plain.
    let (head, rest) = stat.rsplit_once(") ")?;
    let name = head.split_once('(')?.1.to_owned();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, ppid, [utime, stime]))
}

/// The user and system CPU ticks `server` has used so far; `None` if it is not measured, or
/// `/proc` shows none of its threads or processes.
fn cpu_ticks(server: Server) -> Option<[u64; 2]> {
    let dir = match server {
        Server::Unmeasured => return None,
        Server::Workers => "/proc/self/task",
        Server::Nginx(_) => "/proc",
    };
    let ticks: Vec<[u64; 2]> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let id = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let (name, ppid, ticks) = stat_ticks(&stat)?;
            server.runs(id, &name, ppid).then_some(ticks)
        })
        .collect();
    (!ticks.is_empty()).then(|| {
        ticks
            .iter()
            .fold([0, 0], |[u, s], [tu, ts]| [u + tu, s + ts])
    })
}

/// Saturation throughput of one path, with the tool that measured it.
async fn saturation(addr: SocketAddr, secs: u64) -> (f64, &'static str) {
    match wrk(addr, secs).await {
        Some(r) => (r, "wrk"),
        None => (load(addr, 64, None, secs).await.0, "own"),
    }
}

/// Latency of one path at a fixed `rate`, and the CPU time its server spent per request, into
/// `row`.
async fn latency(row: &mut Row, addr: SocketAddr, server: Server, secs: u64, rate: f64) {
    let before = cpu_ticks(server);
    let (_, tally) = load(addr, 16, Some(rate), secs).await;
    let ok = tally.ok.load(Ordering::Relaxed);
    row.cpu_us = before
        .zip(cpu_ticks(server))
        .filter(|_| ok > 0)
        .map(|(b, a)| {
            [0, 1].map(|i| a[i].saturating_sub(b[i]) as f64 * MICROS_PER_TICK / ok as f64)
        });
    let mut lat = tally
        .latencies_us
        .lock()
        .map(|l| l.clone())
        .unwrap_or_default();
    lat.sort_unstable();
    row.p50 = quantile_ms(&lat, 0.5);
    row.p99 = quantile_ms(&lat, 0.99);
    row.failed += tally.failed.load(Ordering::Relaxed);
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Saturation rounds: the paths take turns, so a change in the machine's other load falls on
/// all of them alike; each path's figure is its median over the rounds.
const ROUNDS: usize = 3;

async fn throughput_and_latency(bin: &Path, secs: u64) -> Result<(), BoxError> {
    let (a, _ka) = start_backend(bin, "1.0.0").await?;
    let (b, _kb) = start_backend(bin, "1.0.0").await?;
    let router = ProxyRouter::bind(ProxyConfig::default().with_workers(proxy_threads())).await?;
    router.set_endpoints("blue", &[a]);
    router.set_endpoints("green", &[b]);
    router
        .apply(&TrafficSplit::from_percents([("blue", 50), ("green", 50)])?)
        .await?;
    // The same proxy served on the bench's own runtime (workers 0), for the choice of default.
    let on_caller = ProxyRouter::bind(ProxyConfig::default().with_workers(0)).await?;
    on_caller.set_endpoints("blue", &[a]);
    on_caller.set_endpoints("green", &[b]);
    on_caller
        .apply(&TrafficSplit::from_percents([("blue", 50), ("green", 50)])?)
        .await?;
    let nginx = match nginx_binary() {
        Some(bin) => match start_nginx(&bin, &[a, b]).await {
            Ok(started) => Some(started),
            Err(e) => {
                println!("nginx column skipped: {e}");
                None
            }
        },
        None => {
            println!(
                "nginx column skipped: nginx is not installed (run scripts/bench/nginx.sh as root)"
            );
            None
        }
    };
    let mut paths: Vec<(&'static str, SocketAddr, Server)> = vec![
        ("direct", a, Server::Unmeasured),
        ("serin proxy", router.local_addr(), Server::Workers),
        (
            "serin, caller's runtime",
            on_caller.local_addr(),
            Server::Unmeasured,
        ),
    ];
    if let Some((addr, child)) = &nginx {
        let server = child.id().map_or(Server::Unmeasured, Server::Nginx);
        paths.push(("nginx", *addr, server));
    }
    let mut figures: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    let mut tools = vec!["own"; paths.len()];
    for _ in 0..ROUNDS {
        for ((_, addr, _), (f, tool)) in paths.iter().zip(figures.iter_mut().zip(tools.iter_mut()))
        {
            let (rps, used) = saturation(*addr, secs).await;
            f.push(rps);
            *tool = used;
        }
    }
    let mut rows: Vec<Row> = paths
        .iter()
        .zip(figures.into_iter().zip(tools))
        .map(|((name, _, _), (f, tool))| Row {
            name,
            rps: median(f),
            tool,
            p50: f64::NAN,
            p99: f64::NAN,
            failed: 0,
            cpu_us: None,
        })
        .collect();
    // The proxy's saturation fixes the common latency rate (50% of it).
    let rate = rows.get(1).map_or(1_000.0, |r| r.rps * 0.5);
    for (row, (_, addr, server)) in rows.iter_mut().zip(&paths) {
        latency(row, *addr, *server, secs, rate).await;
    }
    if let Some((_, child)) = nginx {
        stop_nginx(child).await;
    }
    let [direct, serin, caller, rest @ ..] = rows.as_slice() else {
        return Err("no rows measured".into());
    };
    let nginx = rest.first();
    router.shutdown();
    on_caller.shutdown();

    println!();
    println!(
        "cores: {}; saturation: median of {ROUNDS} rounds of {secs} s, the paths taking turns; latency: {secs} s at a fixed {rate:.0} req/s (50% of the proxy's saturation), 16 keep-alive connections",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "wrk: 2 threads, 64 connections, against each path; serin proxy: {t} worker threads; serin, caller's runtime: workers 0 on the bench's 2-thread tokio runtime; nginx: worker_processes {t}; all: the same two backends, 50/50, keep-alive upstream",
        t = proxy_threads()
    );
    println!(
        "| path | saturation req/s | tool | p50 ms | p99 ms | added p50 ms | added p99 ms | failed |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {:.0} | {} | {:.3} | {:.3} | {:+.3} | {:+.3} | {} |",
            r.name,
            r.rps,
            r.tool,
            r.p50,
            r.p99,
            r.p50 - direct.p50,
            r.p99 - direct.p99,
            r.failed
        );
    }
    let added = serin.p99 - direct.p99;
    println!(
        "serin added p99: {added:.3} ms (target ≤ 1 ms): {}",
        if added <= 1.0 { "met" } else { "NOT met" }
    );
    if let Some(n) = &nginx {
        let ratio = serin.rps / n.rps;
        println!(
            "serin / nginx throughput: {:.2} (target ≥ 0.80): {}",
            ratio,
            if ratio >= 0.8 { "met" } else { "NOT met" }
        );
    }
    println!(
        "worker threads / caller's runtime throughput: {:.2}",
        serin.rps / caller.rps
    );
    let cpu = |r: Option<&Row>| {
        r.and_then(|r| r.cpu_us).map_or_else(
            || "not measured".to_owned(),
            |[u, s]| format!("{:.1} µs (user {u:.1}, system {s:.1})", u + s),
        )
    };
    println!(
        "CPU per request at {rate:.0} req/s: serin proxy {} (its worker threads), nginx {} (its processes)",
        cpu(Some(serin)),
        cpu(nginx)
    );
    if let Some((s, n)) = serin.cpu_us.zip(nginx.and_then(|n| n.cpu_us)) {
        println!(
            "serin / nginx CPU per request: {:.2}",
            (s[0] + s[1]) / (n[0] + n[1])
        );
    }
    Ok(())
}

async fn scenario(bin: &Path, secs: u64) -> Result<(), BoxError> {
    let dir = std::env::temp_dir().join(format!("serin-bench-scenario-{}", std::process::id()));
    let platform =
        ProcessPlatform::new(ProcessConfig::new(&dir).with_grace(Duration::from_secs(5)))?;
    let router = ProxyRouter::bind(ProxyConfig::default().with_workers(proxy_threads())).await?;
    let spec = |version: &str, track: Track, n: u32| -> Result<TrackSpec, BoxError> {
        Ok(TrackSpec::new("web", version, track, n)?.with_command([bin.display().to_string()])?)
    };
    let poll = Duration::from_millis(20);
    let ready = Duration::from_secs(10);
    let up = |version: &'static str, track: Track, n: u32| {
        let (platform, router, spec) = (&platform, &router, &spec);
        async move {
            platform.bring_up(&spec(version, track.clone(), n)?).await?;
            let s = wait_ready(platform, "web", &track, poll, ready).await?;
            router.sync_track(&s);
            Ok::<_, BoxError>(s)
        }
    };
    let retire = |track: Track| {
        let (platform, router) = (&platform, &router);
        async move {
            let addrs = router.endpoints(track.as_str());
            router.set_endpoints(track.as_str(), &[]);
            if !router.wait_drained(&addrs, Duration::from_secs(10)).await {
                return Err::<(), BoxError>(format!("{track} did not drain").into());
            }
            platform.retire("web", &track, Duration::ZERO).await?;
            Ok(())
        }
    };
    let step = Duration::from_secs_f64(secs as f64 / 30.0);
    let t0 = Instant::now();
    up("1.0.0", Track::Blue, 2).await?;
    router
        .apply(&TrafficSplit::all_to("blue", &["green"])?)
        .await?;

    let tally = Arc::new(Tally::default());
    let clients: Vec<_> = (0..16)
        .map(|_| tokio::spawn(client(router.local_addr(), None, false, tally.clone())))
        .collect();
    let started = Instant::now();
    let mut events = Vec::new();
    let mut mark = |what: &str| {
        events.push(format!(
            "{:>6.2} s  {what}",
            started.elapsed().as_secs_f64()
        ))
    };
    tokio::time::sleep(step * 3).await;
    up("2.0.0", Track::Green, 2).await?;
    router
        .apply(&TrafficSplit::all_to("green", &["blue"])?)
        .await?;
    mark("blue-green switch: all traffic to green (2.0.0)");
    tokio::time::sleep(step * 2).await;
    retire(Track::Blue).await?;
    mark("blue drained and stopped");
    platform.scale("web", &Track::Green, 3).await?;
    let three = wait_ready(&platform, "web", &Track::Green, poll, ready).await?;
    router.sync_track(&three);
    mark("green scaled to 3");
    tokio::time::sleep(step * 2).await;
    if let Some(newest) = three.instances.last().and_then(|i| i.address) {
        let keep: Vec<SocketAddr> = router
            .endpoints("green")
            .into_iter()
            .filter(|a| *a != newest)
            .collect();
        router.set_endpoints("green", &keep);
        router
            .wait_drained(&[newest], Duration::from_secs(10))
            .await;
    }
    platform.scale("web", &Track::Green, 2).await?;
    mark("green scaled back to 2 (newest drained first)");
    up("3.0.0", Track::Canary, 2).await?;
    for pct in (0..=100).step_by(10) {
        let w = Weight::from_percent(pct)?;
        router
            .apply(&TrafficSplit::new([
                ("green", w.complement()),
                ("canary", w),
            ])?)
            .await?;
        tokio::time::sleep(step).await;
    }
    mark("canary 0 -> 100% in 10% steps");
    router
        .apply(&TrafficSplit::all_to("green", &["canary"])?)
        .await?;
    mark("rollback: all traffic back to green");
    tokio::time::sleep(step * 2).await;
    retire(Track::Canary).await?;
    mark("canary drained and stopped");
    let left = Duration::from_secs(secs).saturating_sub(started.elapsed());
    tokio::time::sleep(left).await;
    tally.stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    platform
        .retire("web", &Track::Green, Duration::ZERO)
        .await?;
    router.shutdown();

    let ok = tally.ok.load(Ordering::Relaxed);
    let failed = tally.failed.load(Ordering::Relaxed);
    println!();
    println!(
        "zero-downtime scenario over real processes ({:.1} s setup before load):",
        (started - t0).as_secs_f64()
    );
    for e in &events {
        println!("  {e}");
    }
    println!("| duration s | requests ok | failed | req/s | target |");
    println!("|---:|---:|---:|---:|---|");
    println!(
        "| {elapsed:.1} | {ok} | {failed} | {:.0} | ≥ 2000 req/s, 0 failed: {} |",
        ok as f64 / elapsed,
        if failed == 0 && ok as f64 / elapsed >= 2_000.0 {
            "met"
        } else {
            "NOT met"
        }
    );
    if failed > 0 {
        println!(
            "failures: {:?}",
            tally.failures.lock().map(|f| f.clone()).unwrap_or_default()
        );
    }
    Ok(())
}

fn main() -> Result<(), BoxError> {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too: keep that short.
    let quick = !std::env::args().any(|a| a == "--bench");
    let measure_secs = arg("--measure-secs", if quick { 1 } else { 5 });
    let scenario_secs = arg("--scenario-secs", if quick { 3 } else { 30 });
    let bin = serin_examples::demo_binary()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        throughput_and_latency(&bin, measure_secs).await?;
        scenario(&bin, scenario_secs).await
    })
}
