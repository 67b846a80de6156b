//! Quickstart: two real deployments on one machine, under real load, in under two minutes.
//!
//! 1. Starts the embedded reverse proxy ([`ProxyRouter`]) and installs the demo service 1.0.0
//!    (0.5% errors) behind it as processes ([`ProcessPlatform`]), wrapped in a [`ProxiedPlatform`]
//!    so the proxy stays in step with them: ready instances join the proxy, and a retired track leaves it and drains
//!    before its processes are stopped.
//! 2. Starts a load generator: keep-alive HTTP clients sending a few hundred requests a second
//!    through the proxy, counting every answer by the version that gave it.
//! 3. Deploys 1.1.0 (healthy, 0.5% errors) by canary — 10%, 40%, 70%, judged by the sequential
//!    error-rate test on the proxy's own measurements — and promotes it.
//! 4. Deploys 1.2.0, whose error rate is 5% (ten times 1.1.0's): the sequential judge sees it at
//!    the first weight and rolls it back automatically.
//!
//! A live status line shows the phase, the weight, the requests and error rates per version and
//! the last decision; each deployment ends with its report, and the run ends with the load
//! generator's count of failed requests — v1.2.0's own 500s, and no failure caused by a switch.
//!
//! ```text
//! cargo run -p serin-examples --example quickstart
//! ```
//!
//! The demo service binary (`serin-demo-service`, in `serin-local`) is built on the first run
//! if it is not next to this example's binary yet.

use std::collections::BTreeMap;
use std::error::Error;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serin_local::{ProcessConfig, ProcessPlatform, ProxiedPlatform, ProxyConfig, ProxyRouter};
use serin_orchestrator::{
    DeploymentConfig, Event, EventKind, FileJournal, Orchestrator, Outcome, Platform,
    ServiceBackends, Status, TrackSpec,
};
use serin_signals::InMemoryHealth;
use tokio::net::TcpStream;

type BoxError = Box<dyn Error + Send + Sync>;

const SERVICE: &str = "demo";
/// Concurrent keep-alive clients of the load generator.
const CLIENTS: usize = 8;
/// Requests per second per client.
const RATE_PER_CLIENT: u64 = 40;

/// The error rate each version of the demo service is started with.
fn error_rate(version: &semver::Version) -> &'static str {
    match (version.major, version.minor) {
        (1, 2) => "0.05",
        _ => "0.005",
    }
}

/// Answers counted by the load generator: per version, requests and 5xx; plus failures that no
/// version answered (connection errors, proxy 502/503).
#[derive(Debug, Default)]
struct Tally {
    by_version: Mutex<BTreeMap<String, (u64, u64)>>,
    unanswered: AtomicU64,
    total: AtomicU64,
}

impl Tally {
    fn record(&self, version: Option<String>, status: u16) {
        self.total.fetch_add(1, Ordering::Relaxed);
        match version {
            Some(v) => {
                let mut map = self.by_version.lock().unwrap_or_else(|e| e.into_inner());
                let entry = map.entry(v).or_default();
                entry.0 += 1;
                if status >= 500 {
                    entry.1 += 1;
                }
            }
            None => {
                self.unanswered.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn line(&self) -> String {
        let map = self.by_version.lock().unwrap_or_else(|e| e.into_inner());
        let mut parts = vec![format!("{} req", self.total.load(Ordering::Relaxed))];
        for (v, (n, e)) in map.iter() {
            let rate = if *n > 0 {
                *e as f64 / *n as f64 * 100.0
            } else {
                0.0
            };
            parts.push(format!("v{v}: {n} ({rate:.1}% err)"));
        }
        parts.push(format!(
            "unanswered {}",
            self.unanswered.load(Ordering::Relaxed)
        ));
        parts.join(" | ")
    }
}

/// One keep-alive client: sends `GET /` at a steady pace, reconnecting if the connection drops.
async fn client(proxy: SocketAddr, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    let period = Duration::from_micros(1_000_000 / RATE_PER_CLIENT);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    'connect: while !stop.load(Ordering::Relaxed) {
        let Ok(stream) = TcpStream::connect(proxy).await else {
            tally.record(None, 0);
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok((mut sender, conn)) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await
        else {
            tally.record(None, 0);
            continue;
        };
        tokio::spawn(conn);
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            if sender.ready().await.is_err() {
                continue 'connect;
            }
            let req = match hyper::Request::get("/")
                .header(hyper::header::HOST, "demo")
                .body(Empty::new())
            {
                Ok(r) => r,
                Err(_) => continue,
            };
            match sender.send_request(req).await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let version = resp
                        .headers()
                        .get("x-serin-version")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let _ = resp.into_body().collect().await;
                    tally.record(version, status);
                }
                Err(_) => {
                    tally.record(None, 0);
                    continue 'connect;
                }
            }
        }
    }
}

fn config(version: &str) -> Result<DeploymentConfig, BoxError> {
    let mut c = DeploymentConfig::from_yaml(&format!(
        r#"
strategy: canary
version: {version}
targetServices: [{SERVICE}]
blueGreenConfig:
  replicasPerEnv: 2
  healthCheckInterval: 100ms
  readinessTimeout: 20s
  keepOldWarmFor: 3s
  drain: 1s
canaryConfig:
  initialPercentage: 10
  incrementPercentage: 30
  incrementInterval: 6s
  metricsWindow: 2s
  maxDuration: 2m
  replicas: 1
  drain: 1s
monitoring:
  checkInterval: 1s
  monitoringDuration: 4s
  consecutiveFailures: 3
  errorRateThreshold: 0.2
maxDeploymentDuration: 3m
"#
    ))?;
    // The brief's environment variables override the file (VERSION, INCREMENT, ...).
    c = c.with_env()?;
    Ok(c)
}

fn describe(e: &Event) -> Option<String> {
    match &e.kind {
        EventKind::PhaseChanged { .. } | EventKind::Validated { .. } => None,
        EventKind::AnalysisResult { decision }
            if decision.action == serin_canary::controller::Action::Hold =>
        {
            None
        }
        kind => Some(kind.to_string()),
    }
}

async fn deploy(
    orchestrator: &Orchestrator,
    version: &str,
    tally: &Arc<Tally>,
) -> Result<serin_orchestrator::Report, BoxError> {
    let config = config(version)?;
    for plan in orchestrator.plan(&config).await? {
        println!("\n== plan (dry run) ==\n{plan}");
    }
    let mut events = orchestrator.subscribe();
    let handle = orchestrator.start(&config, SERVICE).await?;
    let status = handle.watch();
    let last = Arc::new(Mutex::new(String::from("starting")));
    let printer = {
        let tally = Arc::clone(tally);
        let last = Arc::clone(&last);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let s: Status = status.borrow().clone();
                let decision = last.lock().map(|l| l.clone()).unwrap_or_default();
                let mut line = format!(
                    "[{:<10}] weight {:>5.1}% | {} | {}",
                    s.phase.to_string(),
                    s.weight,
                    tally.line(),
                    decision
                );
                line.truncate(200);
                eprint!("\r{line:<200}");
            }
        })
    };
    let listener = {
        let last = Arc::clone(&last);
        tokio::spawn(async move {
            while let Ok(e) = events.recv().await {
                if let Some(text) = describe(&e) {
                    eprintln!("\r{:<200}", format!("  • {text}"));
                    if let Ok(mut l) = last.lock() {
                        *l = text.chars().take(80).collect();
                    }
                }
            }
        })
    };
    let report = handle.wait().await?;
    printer.abort();
    listener.abort();
    eprintln!();
    println!("\n== report ==\n{report}");
    Ok(report)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let started = tokio::time::Instant::now();
    let demo = serin_examples::demo_binary()?;
    let work = std::env::temp_dir().join(format!("serin-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;

    // A generous connect timeout: a busy machine may accept slowly; that is not a failure.
    let router =
        ProxyRouter::bind(ProxyConfig::default().with_connect_timeout(Duration::from_secs(5)))
            .await?;
    let platform = Arc::new(ProxiedPlatform::new(
        ProcessPlatform::new(
            ProcessConfig::new(work.join("logs")).with_grace(Duration::from_secs(2)),
        )?,
        router.clone(),
    ));
    let demo_path = demo.display().to_string();
    let backends = ServiceBackends::new(
        Arc::new(router.clone()),
        Arc::new(router.metrics()),
        Arc::new(InMemoryHealth::new()),
    )
    .with_command(Arc::new(move |spec: TrackSpec| {
        let rate = error_rate(spec.version());
        spec.with_command([demo_path.as_str()])?
            .with_env("DEMO_ERROR_RATE", rate)
    }));
    let journal = Arc::new(FileJournal::open(work.join("journal.jsonl"))?);
    let orchestrator = Orchestrator::builder(platform.clone(), journal)
        .service(SERVICE, backends)
        .build();
    println!(
        "proxy on http://{} — journal and logs in {}",
        router.local_addr(),
        work.display()
    );

    let stop = Arc::new(AtomicBool::new(false));
    // Catches instances that become ready or die between the orchestrator's own reads.
    let sync = platform.spawn_sync(Duration::from_millis(50));

    // 1. Install 1.0.0 (nothing runs yet: no analysis, straight to 100%).
    println!("\n== install 1.0.0 ==");
    let install = orchestrator.run(&config("1.0.0")?).await?;
    if !install
        .iter()
        .all(|r| r.outcome.as_ref().is_some_and(Outcome::is_success))
    {
        return Err("installing 1.0.0 failed".into());
    }
    for _ in 0..50 {
        if !router.endpoints("stable").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // 2. Load.
    let tally = Arc::new(Tally::default());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            tokio::spawn(client(
                router.local_addr(),
                Arc::clone(&tally),
                Arc::clone(&stop),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 3. 1.1.0 by canary: promoted.
    println!("\n== deploy 1.1.0 (healthy) ==");
    let v2 = deploy(&orchestrator, "1.1.0", &tally).await?;

    // 4. 1.2.0 by canary: 5% errors, rolled back by the judge.
    println!("\n== deploy 1.2.0 (errors rise from 0.5% to 5%) ==");
    let v3 = deploy(&orchestrator, "1.2.0", &tally).await?;

    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.await;
    }
    sync.abort();
    for t in platform.list().await? {
        let _ = platform.retire(SERVICE, &t.track, Duration::ZERO).await;
    }
    router.shutdown();

    println!("\n== load generator ==");
    let by_version = tally
        .by_version
        .lock()
        .map(|m| m.clone())
        .unwrap_or_default();
    for (v, (n, e)) in &by_version {
        println!("  v{v}: {n} requests, {e} answered 5xx");
    }
    let unanswered = tally.unanswered.load(Ordering::Relaxed);
    let v3_errors = by_version.get("1.2.0").map_or(0, |(_, e)| *e);
    println!("  failed because of a switch (no version answered): {unanswered}");
    println!("  failed by 1.2.0's own errors: {v3_errors}");
    println!(
        "  1.1.0: {}; 1.2.0: {}",
        v2.outcome
            .as_ref()
            .map_or("unfinished".into(), ToString::to_string),
        v3.outcome
            .as_ref()
            .map_or("unfinished".into(), ToString::to_string)
    );
    println!("  total time: {:.1}s", started.elapsed().as_secs_f64());
    let ok = v2.outcome == Some(Outcome::Succeeded)
        && matches!(v3.outcome, Some(Outcome::RolledBack { .. }))
        && unanswered == 0;
    if ok {
        Ok(())
    } else {
        Err("the quickstart did not end as expected".into())
    }
}
