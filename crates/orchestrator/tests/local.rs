//! The same scenarios on the embedded backend at small scale: real demo-service processes
//! behind the real proxy, real HTTP load, real time (bounded waits). Zero requests may fail
//! because of a switch.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serin_local::load::{Load, Tally};
use serin_local::{ProcessConfig, ProcessPlatform, ProxiedPlatform, ProxyConfig, ProxyRouter};
use serin_orchestrator::{
    DeploymentConfig, InMemoryJournal, Orchestrator, Outcome, Platform, Report, ServiceBackends,
    StrategyKind, TrackSpec, TrackStatus, TrafficStrategyKind,
};
use serin_signals::InMemoryHealth;

const SERVICE: &str = "demo";
/// Requests per second of the load through the proxy.
const LOAD_RPS: f64 = 400.0;

/// The demo service binary of `serin-local`: next to this test's target directory when the
/// workspace has built it, otherwise built once into a target directory of its own (`cargo
/// test` holds the lock of the main one while tests run).
fn demo_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe
        .parent()
        .and_then(|p| p.parent())
        .expect("target dir")
        .to_path_buf();
    let demo = dir.join("serin-demo-service");
    if demo.exists() {
        return demo;
    }
    let own = dir.join("serin-demo-build");
    let built = own.join("debug").join("serin-demo-service");
    if !built.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args([
                "build",
                "-q",
                "-p",
                "serin-local",
                "--bin",
                "serin-demo-service",
            ])
            .arg("--target-dir")
            .arg(&own)
            .status()
            .expect("cargo build");
        assert!(
            status.success() && built.exists(),
            "could not build {}",
            built.display()
        );
    }
    built
}

/// One scenario at a time: each runs real processes under real load, and on a small machine
/// scenarios running side by side starve each other of the traffic their analysis needs.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Local {
    _turn: tokio::sync::MutexGuard<'static, ()>,
    /// The processes' logs and lock files, removed when the scenario ends.
    _dir: tempfile::TempDir,
    router: ProxyRouter,
    platform: Arc<ProxiedPlatform>,
    orchestrator: Orchestrator,
    load: OnceLock<Load>,
}

impl Local {
    async fn new(rates: &'static [(&'static str, &'static str)]) -> Local {
        let turn = ONE_AT_A_TIME.lock().await;
        let demo = demo_binary().display().to_string();
        let dir = tempfile::Builder::new()
            .prefix("serin-orchestrator-local-")
            .tempdir()
            .expect("temp dir");
        // A generous connect timeout: the machine running the tests may be busy, and a slow
        // accept is not what these tests are about.
        let router =
            ProxyRouter::bind(ProxyConfig::default().with_connect_timeout(Duration::from_secs(5)))
                .await
                .expect("proxy");
        let platform = Arc::new(ProxiedPlatform::new(
            ProcessPlatform::new(ProcessConfig::new(dir.path()).with_grace(Duration::from_secs(1)))
                .expect("platform"),
            router.clone(),
        ));
        let backends = ServiceBackends::new(
            Arc::new(router.clone()),
            Arc::new(router.metrics()),
            Arc::new(InMemoryHealth::new()),
        )
        .with_command(Arc::new(move |spec: TrackSpec| {
            let v = spec.version().to_string();
            let rate = rates
                .iter()
                .find(|(version, _)| *version == v)
                .map_or("0", |(_, r)| *r);
            spec.with_command([demo.as_str()])?
                .with_env("DEMO_ERROR_RATE", rate)
        }));
        let orchestrator =
            Orchestrator::builder(platform.clone(), Arc::new(InMemoryJournal::new()))
                .service(SERVICE, backends)
                .build();
        // Catch instances that become ready or die between the orchestrator's own reads.
        platform.spawn_sync(Duration::from_millis(50));
        Local {
            _turn: turn,
            _dir: dir,
            router,
            platform,
            orchestrator,
            load: OnceLock::new(),
        }
    }

    /// A world where `strategy` installed 1.0.0, then under load.
    async fn installed(
        rates: &'static [(&'static str, &'static str)],
        strategy: StrategyKind,
    ) -> Local {
        let local = Local::new(rates).await;
        let install = local.run(&config(strategy, "1.0.0")).await;
        assert_eq!(install.outcome, Some(Outcome::Succeeded));
        local.start_load().await;
        local
    }

    async fn start_load(&self) {
        let _ = self
            .load
            .set(Load::start(self.router.local_addr(), LOAD_RPS).expect("load"));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    /// What the load saw so far.
    fn tally(&self) -> Tally {
        self.load.get().map(Load::tally).unwrap_or_default()
    }

    async fn run(&self, config: &DeploymentConfig) -> Report {
        tokio::time::timeout(Duration::from_secs(60), self.orchestrator.run(config))
            .await
            .expect("finished within a minute")
            .expect("run")
            .remove(0)
    }

    /// Lets the last requests land, then closes the world: what the load saw, and the tracks
    /// that were left running.
    async fn finish(self) -> (Tally, Vec<TrackStatus>) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let tally = self.tally();
        let live = self.platform.list().await.expect("list");
        self.close().await;
        (tally, live)
    }

    async fn close(self) {
        if let Some(load) = self.load.get() {
            load.stop().await;
        }
        for t in self.platform.list().await.unwrap_or_default() {
            let _ = self
                .platform
                .retire(SERVICE, &t.track, Duration::ZERO)
                .await;
        }
        self.router.shutdown();
    }
}

fn config(strategy: StrategyKind, version: &str) -> DeploymentConfig {
    let mut c = DeploymentConfig::new(
        strategy,
        semver::Version::parse(version).expect("version"),
        &[SERVICE],
    )
    .expect("config");
    c.blue_green_config.replicas_per_env = 2;
    c.blue_green_config.health_check_interval = Duration::from_millis(100);
    c.blue_green_config.readiness_timeout = Duration::from_secs(20);
    c.blue_green_config.keep_old_warm_for = Duration::from_secs(1);
    c.blue_green_config.drain = Duration::from_millis(500);
    c.blue_green_config.traffic_strategy = TrafficStrategyKind::Gradual;
    c.blue_green_config.traffic_increment = 50.0;
    c.blue_green_config.traffic_interval = Duration::from_secs(1);
    c.canary_config.initial_percentage = 20;
    c.canary_config.increment_percentage = 40;
    c.canary_config.increment_interval = Duration::from_secs(3);
    c.canary_config.metrics_window = Duration::from_secs(1);
    c.canary_config.drain = Duration::from_millis(500);
    c.monitoring.check_interval = Duration::from_millis(500);
    c.monitoring.monitoring_duration = Duration::from_secs(1);
    c.monitoring.error_rate_threshold = None;
    c.validate().expect("valid");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_promotes_then_rolls_back_on_real_processes_without_failed_requests() {
    // The healthy versions make no errors of their own, so any error a switch caused would show.
    static RATES: [(&str, &str); 3] = [("1.0.0", "0"), ("1.1.0", "0"), ("1.2.0", "0.3")];
    let local = Local::installed(&RATES, StrategyKind::Canary).await;
    let v2 = local.run(&config(StrategyKind::Canary, "1.1.0")).await;
    assert_eq!(v2.outcome, Some(Outcome::Succeeded), "{v2}");
    let v3 = local.run(&config(StrategyKind::Canary, "1.2.0")).await;
    assert!(
        matches!(v3.outcome, Some(Outcome::RolledBack { .. })),
        "{v3}"
    );
    let (
        Tally {
            answered,
            unanswered,
            ..
        },
        live,
    ) = local.finish().await;
    assert!(answered > 500, "{answered} requests answered");
    assert_eq!(unanswered, 0, "requests failed because of a switch");
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].version.to_string(), "1.1.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gradual_blue_green_switch_on_real_processes_drops_nothing() {
    static RATES: [(&str, &str); 2] = [("1.0.0", "0"), ("1.1.0", "0")];
    let local = Local::installed(&RATES, StrategyKind::BlueGreen).await;
    let report = local.run(&config(StrategyKind::BlueGreen, "1.1.0")).await;
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    let (
        Tally {
            server_errors,
            unanswered,
            ..
        },
        live,
    ) = local.finish().await;
    assert_eq!((unanswered, server_errors), (0, 0));
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].track.to_string(), "green");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blue_green_switch_to_a_failing_version_is_switched_back_by_its_trigger() {
    static RATES: [(&str, &str); 2] = [("1.0.0", "0"), ("1.1.0", "0.4")];
    let local = Local::installed(&RATES, StrategyKind::BlueGreen).await;
    let mut c = config(StrategyKind::BlueGreen, "1.1.0");
    c.monitoring.error_rate_threshold = Some(0.10);
    c.monitoring.consecutive_failures = 2;
    c.monitoring.monitoring_duration = Duration::from_secs(10);
    c.validate().expect("valid");
    let report = local.run(&c).await;
    let Some(Outcome::RolledBack { reason }) = &report.outcome else {
        panic!("expected a rollback by the trigger, got {report}");
    };
    assert!(reason.contains("trigger"), "{reason}");
    let (Tally { unanswered, .. }, live) = local.finish().await;
    assert_eq!(unanswered, 0, "requests failed because of a switch");
    assert_eq!(live.len(), 1);
    assert_eq!(
        (live[0].track.to_string(), live[0].version.to_string()),
        ("blue".to_owned(), "1.0.0".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_canary_holds_its_weight_then_an_abort_rolls_it_back() {
    static RATES: [(&str, &str); 2] = [("1.0.0", "0"), ("1.1.0", "0")];
    let local = Local::installed(&RATES, StrategyKind::Canary).await;
    let handle = local
        .orchestrator
        .start(&config(StrategyKind::Canary, "1.1.0"), SERVICE)
        .await
        .expect("start");
    let mut status = handle.watch();
    tokio::time::timeout(Duration::from_secs(30), async {
        while status.borrow().weight <= 0.0 {
            status.changed().await.expect("status");
        }
    })
    .await
    .expect("the canary receives traffic");
    handle.pause().await.expect("pause");
    let held = handle.status().weight;
    // Longer than the increment interval (2 s): a running canary would have moved on.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(handle.status().weight, held, "a pause holds the weight");
    assert!(handle.status().paused);
    handle.resume().await.expect("resume");
    handle.abort().await.expect("abort");
    let report = tokio::time::timeout(Duration::from_secs(30), handle.wait())
        .await
        .expect("over within 30 s")
        .expect("report");
    let Some(Outcome::RolledBack { reason }) = &report.outcome else {
        panic!("expected a rollback, got {report}");
    };
    assert!(reason.contains("aborted"), "{reason}");
    let (Tally { unanswered, .. }, live) = local.finish().await;
    assert_eq!(unanswered, 0, "requests failed because of a switch");
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].version.to_string(), "1.0.0");
}
