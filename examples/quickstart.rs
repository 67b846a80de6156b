//! Quickstart: two real deployments on one machine, under real load, in under a minute.
//!
//! 1. Starts the embedded reverse proxy ([`ProxyRouter`]) and installs the demo service 1.0.0
//!    (0.5% errors) behind it as processes ([`ProcessPlatform`]), wrapped in a [`ProxiedPlatform`]
//!    so the proxy stays in step with them: ready instances join the proxy, and a retired track leaves it and drains
//!    before its processes are stopped. An [`HttpHealth`] probes every instance's `/ready` and
//!    `/live` each second, as the orchestrator's health source.
//! 2. Starts a load generator: keep-alive HTTP clients sending a few hundred requests a second
//!    through the proxy, counting every answer by the version that gave it.
//! 3. Deploys 1.1.0 (healthy, 0.5% errors) by canary — 10%, 40%, 70%, judged by the sequential
//!    error-rate test on the proxy's own measurements — and promotes it. The judge runs at
//!    `alpha: 0.01`, so a healthy version is rolled back in at most 1% of runs (errors are
//!    random, and a good canary's first errors may arrive in a clump; at the default 0.05 this
//!    demo would end otherwise than described in up to 5% of runs).
//! 4. Deploys 1.2.0, whose error rate is 5% (ten times 1.1.0's): the sequential judge sees it at
//!    one of the first weights (which one depends on when its random errors come) and rolls it
//!    back automatically.
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
//! if it is not next to this example's binary yet, and built again when it is older than the
//! sources it is made of (see `serin_examples::demo_binary`).

use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serin_local::load::{Load, Tally};
use serin_local::{
    HttpHealth, ProbePaths, ProcessConfig, ProcessPlatform, ProxiedPlatform, ProxyConfig,
    ProxyRouter,
};
use serin_orchestrator::{
    DeploymentConfig, Event, EventKind, FileJournal, Orchestrator, Outcome, Platform,
    ServiceBackends, Status, TrackSpec,
};

type BoxError = Box<dyn Error + Send + Sync>;

const SERVICE: &str = "demo";
/// Requests per second of the load generator.
const LOAD_RPS: f64 = 320.0;

/// The error rate each version of the demo service is started with.
fn error_rate(version: &semver::Version) -> &'static str {
    match (version.major, version.minor) {
        (1, 2) => "0.05",
        _ => "0.005",
    }
}

/// The load generator's status: requests, and each version's share of 5xx, and those that no
/// version answered.
fn load_line(t: &Tally) -> String {
    let mut parts = vec![format!("{} req", t.answered + t.unanswered + t.not_sent)];
    for (v, n) in &t.by_version {
        let rate = if n.answered > 0 {
            n.server_errors as f64 / n.answered as f64 * 100.0
        } else {
            0.0
        };
        parts.push(format!("v{v}: {} ({rate:.1}% err)", n.answered));
    }
    parts.push(format!("unanswered {}", t.unanswered));
    if t.not_sent > 0 {
        parts.push(format!("not sent {}", t.not_sent));
    }
    parts.join(" | ")
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
  alpha: 0.01
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
    // The brief's environment variables override the file (INCREMENT, PHASE_DURATION, ...),
    // except VERSION: each step of the demo names the version it deploys, and a VERSION left
    // in the shell would make all three deploy the same one.
    c = c.with_overrides(|name| {
        (name != "VERSION")
            .then(|| std::env::var(name).ok())
            .flatten()
    })?;
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
    load: &Arc<Load>,
) -> Result<serin_orchestrator::Report, BoxError> {
    let config = config(version)?;
    for plan in orchestrator.plan(&config).await? {
        println!("\n== plan (dry run) ==\n{plan}");
    }
    let mut events = orchestrator.subscribe();
    let handle = orchestrator.start(&config, SERVICE).await?;
    let status = handle.watch();
    let last = Arc::new(Mutex::new(String::from("starting")));
    // The status line, cut to the terminal's width (a longer one would wrap, and each redraw
    // would scroll the screen); not drawn when stderr is not a terminal.
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{wide_msg}")?);
    let printer = {
        let load = Arc::clone(load);
        let last = Arc::clone(&last);
        let bar = bar.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let s: Status = status.borrow().clone();
                let decision = last.lock().map(|l| l.clone()).unwrap_or_default();
                bar.set_message(format!(
                    "[{:<10}] weight {:>5.1}% | {} | {}",
                    s.phase.to_string(),
                    s.weight,
                    load_line(&load.tally()),
                    decision
                ));
            }
        })
    };
    let listener = {
        let last = Arc::clone(&last);
        let bar = bar.clone();
        tokio::spawn(async move {
            while let Ok(e) = events.recv().await {
                if let Some(text) = describe(&e) {
                    // Above the status line, and in full when stderr is a file.
                    bar.suspend(|| eprintln!("  • {text}"));
                    if let Ok(mut l) = last.lock() {
                        *l = text.chars().take(80).collect();
                    }
                }
            }
        })
    };
    let report = handle.wait().await;
    printer.abort();
    listener.abort();
    bar.finish_and_clear();
    let report = report?;
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
    // Every instance's `/ready` and `/live`, probed each second: what health-check triggers
    // read (this run configures none; a config that adds one gets live results).
    let probes = Arc::new(HttpHealth::new(Duration::from_secs(2))?);
    let refresh = probes.spawn_refresh(
        platform.clone(),
        SERVICE,
        ProbePaths::new("/ready", "/live"),
        Duration::from_secs(1),
    );
    let demo_path = demo.display().to_string();
    let backends =
        ServiceBackends::new(Arc::new(router.clone()), Arc::new(router.metrics()), probes)
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
    let load = Arc::new(Load::start(router.local_addr(), LOAD_RPS)?);
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 3. 1.1.0 by canary: promoted.
    println!("\n== deploy 1.1.0 (healthy) ==");
    let v2 = deploy(&orchestrator, "1.1.0", &load).await?;

    // 4. 1.2.0 by canary: 5% errors, rolled back by the judge.
    println!("\n== deploy 1.2.0 (errors rise from 0.5% to 5%) ==");
    let v3 = deploy(&orchestrator, "1.2.0", &load).await?;

    tokio::time::sleep(Duration::from_secs(1)).await;
    let tally = load.stop().await;
    sync.abort();
    refresh.abort();
    for t in platform.list().await? {
        let _ = platform.retire(SERVICE, &t.track, Duration::ZERO).await;
    }
    router.shutdown();

    println!("\n== load generator ==");
    for (v, n) in &tally.by_version {
        println!(
            "  v{v}: {} requests, {} answered 5xx",
            n.answered, n.server_errors
        );
    }
    let unanswered = tally.unanswered;
    let v3_errors = tally.by_version.get("1.2.0").map_or(0, |n| n.server_errors);
    println!("  failed because of a switch (no version answered): {unanswered}");
    println!("  failed by 1.2.0's own errors: {v3_errors}");
    // Due while the generator's bound of requests in flight was reached: a stall, not a switch.
    println!(
        "  not sent (answers too slow for the rate): {}",
        tally.not_sent
    );
    if let (Some(p50), Some(p99)) = (tally.latency.quantile(0.5), tally.latency.quantile(0.99)) {
        println!("  latency from each request's due time: p50 {p50:.1} ms, p99 {p99:.1} ms");
    }
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
