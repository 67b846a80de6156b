//! Every strategy end to end on the simulated fleet (`serin-sim`): seeded traffic, versions
//! with error-rate schedules, scripted faults, virtual time. Hours of canary run in
//! milliseconds.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use serin_canary::controller::{Pause, Step};
use serin_orchestrator::{
    Clock, DeploymentConfig, EventKind, FileJournal, InMemoryJournal, Journal, Orchestrator,
    Outcome, Platform, Report, ServiceBackends, StrategyKind, TrafficStrategyKind,
};
use serin_signals::{Probe, Track, Window};
use serin_sim::{
    ErrorWander, Fault, Load, Schedule, SimConfig, SimWorld, Span, Unready, VersionProfile,
};

const SERVICE: &str = "web";

fn v(s: &str) -> semver::Version {
    semver::Version::parse(s).expect("version")
}

struct Sim {
    world: SimWorld,
    orchestrator: Orchestrator,
}

fn profile(rate: Schedule) -> VersionProfile {
    VersionProfile::default()
        .with_error_rate(rate)
        .with_startup(Duration::from_secs(5))
}

/// A fleet config under `seed` whose versions fail constant shares of their requests.
fn constant_rates(seed: u64, rates: &[(&str, f64)]) -> SimConfig {
    rates
        .iter()
        .fold(SimConfig::new(seed), |c, (version, rate)| {
            c.with_profile(v(version), profile(Schedule::constant(*rate)))
        })
}

fn sim(config: SimConfig) -> Sim {
    sim_at(config, 300.0)
}

/// A simulated fleet serving `rps` requests per second.
fn sim_at(config: SimConfig, rps: f64) -> Sim {
    sim_with(config, rps, Arc::new(InMemoryJournal::new()))
}

/// A simulated fleet serving `rps` requests per second, journalling to `journal`.
fn sim_with(config: SimConfig, rps: f64, journal: Arc<dyn Journal>) -> Sim {
    let world =
        SimWorld::new(config.with_service(SERVICE).with_load(Load::constant(rps))).expect("world");
    let backends = ServiceBackends::new(
        Arc::new(world.router()),
        Arc::new(world.metrics()),
        Arc::new(world.health()),
    );
    let orchestrator = Orchestrator::builder(Arc::new(world.platform()), journal)
        .service(SERVICE, backends)
        .clock(Clock::starting_at(world.now()))
        .build();
    Sim {
        world,
        orchestrator,
    }
}

fn canary(version: &str) -> DeploymentConfig {
    let mut c =
        DeploymentConfig::new(StrategyKind::Canary, v(version), &[SERVICE]).expect("config");
    c.canary_config.initial_percentage = 5;
    c.canary_config.increment_percentage = 20;
    c.canary_config.increment_interval = Duration::from_secs(300);
    c.canary_config.metrics_window = Duration::from_secs(30);
    c.canary_config.replicas = 1;
    c.blue_green_config.replicas_per_env = 3;
    c.blue_green_config.health_check_interval = Duration::from_secs(1);
    c.blue_green_config.keep_old_warm_for = Duration::from_secs(120);
    c.monitoring.monitoring_duration = Duration::from_secs(300);
    c.validate().expect("valid");
    c
}

async fn install(s: &Sim, strategy: StrategyKind) {
    let mut c = canary("1.0.0");
    c.strategy = strategy;
    let r = s.orchestrator.run(&c).await.expect("install");
    assert_eq!(r[0].outcome, Some(Outcome::Succeeded), "install");
}

async fn deploy(s: &Sim, config: &DeploymentConfig) -> Report {
    s.orchestrator.run(config).await.expect("run").remove(0)
}

async fn live(s: &Sim) -> (Track, String) {
    let platform = s.world.platform();
    let tracks = platform.list().await.expect("list");
    let split = s.world.applied_splits().last().expect("a split").1.clone();
    let b = split
        .backends()
        .iter()
        .find(|b| b.weight().bps() == 10_000)
        .expect("one track takes all");
    let t = tracks
        .iter()
        .find(|t| t.track.as_str() == b.name().as_str())
        .expect("the live track runs");
    (t.track.clone(), t.version.to_string())
}

fn unroutable_since(s: &Sim, since: serin_signals::Timestamp) -> u64 {
    let w = Window::new(since, s.world.now()).expect("window");
    s.world.unroutable(w).requests()
}

fn rolled_back(r: &Report) -> &str {
    match &r.outcome {
        Some(Outcome::RolledBack { reason }) => reason,
        other => panic!("expected a rollback, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn canary_success_without_a_lost_request() {
    let s = sim(constant_rates(1, &[("1.0.0", 0.005), ("1.1.0", 0.005)]));
    install(&s, StrategyKind::Canary).await;
    let since = s.world.now();
    let r = deploy(&s, &canary("1.1.0")).await;
    assert_eq!(r.outcome, Some(Outcome::Succeeded), "{r}");
    assert_eq!(live(&s).await, (Track::Canary, "1.1.0".into()));
    assert_eq!(
        unroutable_since(&s, since),
        0,
        "no request sent to an unready track"
    );
    assert_eq!(s.world.platform().list().await.expect("list").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_bad_canary_under_scarce_traffic_is_never_promoted_on_too_little_evidence() {
    // One request every fifty seconds: the canary sees a request every few minutes, so its
    // judges may end every step inconclusive. A canary failing 30% of its requests must still
    // never be promoted: the promotion gate holds it until its error rate is shown low, which
    // never happens, until a trigger or the rollout's deadline rolls it back. (Without the gate,
    // this canary was promoted after its last timed step.)
    let s = sim_at(
        constant_rates(21, &[("1.0.0", 0.005), ("1.1.0", 0.30)]),
        0.02,
    );
    install(&s, StrategyKind::Canary).await;
    let mut config = canary("1.1.0");
    config.canary_config.max_duration = Duration::from_secs(3 * 3_600);
    let r = deploy(&s, &config).await;
    rolled_back(&r);
    assert_eq!(live(&s).await, (Track::Stable, "1.0.0".into()), "{r}");
    let promoted = r
        .timeline
        .iter()
        .any(|e| matches!(e.kind, EventKind::Completed { .. }));
    assert!(!promoted, "{r}");
}

#[tokio::test(start_paused = true)]
async fn canary_whose_errors_rise_from_half_a_percent_to_five_is_rolled_back_by_the_judge() {
    let s = sim(SimConfig::new(2)
        .with_profile(v("1.0.0"), profile(Schedule::constant(0.005)))
        .with_profile(
            v("1.1.0"),
            profile(Schedule::ramp(
                0.005,
                0.05,
                Duration::ZERO,
                Duration::from_secs(600),
            )),
        ));
    install(&s, StrategyKind::Canary).await;
    let mut c = canary("1.1.0");
    c.monitoring.error_rate_threshold = None;
    let r = deploy(&s, &c).await;
    assert!(rolled_back(&r).contains("error_rate"), "{r}");
    assert_eq!(live(&s).await, (Track::Stable, "1.0.0".into()));
    // Small blast radius: rolled back before the weight ever passed 25%.
    let max = r
        .timeline
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::WeightChanged { percent, .. } => Some(*percent),
            _ => None,
        })
        .fold(0.0_f64, f64::max);
    assert!(max <= 25.0, "weight reached {max}%");
}

#[tokio::test(start_paused = true)]
async fn canary_rolled_back_by_a_health_trigger() {
    // Unready instances get no traffic (their share goes to stable), so only the trigger sees
    // the failing probes.
    let s = sim(SimConfig::new(3)
        .with_unready(Unready::Redistribute)
        .with_profile(v("1.0.0"), profile(Schedule::constant(0.005)))
        .with_profile(v("1.1.0"), profile(Schedule::constant(0.005))));
    install(&s, StrategyKind::Canary).await;
    s.world
        .inject(Fault::ProbeFailure {
            track: Some(Track::Canary),
            probe: Probe::Liveness,
            span: Span::new(Duration::from_secs(400), Duration::from_secs(4_000)),
        })
        .expect("fault");
    let mut c = canary("1.1.0");
    c.triggers = serde_json::from_str(
        r#"[{"kind":"healthCheck","id":"canary-live","serviceName":"web","checkType":"liveness","failureThreshold":3,"checkInterval":5000}]"#,
    )
    .expect("trigger");
    let r = deploy(&s, &c).await;
    assert!(rolled_back(&r).contains("canary-live"), "{r}");
    assert!(
        r.timeline
            .iter()
            .any(|e| matches!(e.kind, EventKind::TriggerFired { .. }))
    );
    assert_eq!(live(&s).await, (Track::Stable, "1.0.0".into()));
}

#[tokio::test(start_paused = true)]
async fn a_crashing_canary_is_rolled_back() {
    let s = sim(SimConfig::new(4)
        .with_unready(Unready::Fail)
        .with_profile(v("1.0.0"), profile(Schedule::constant(0.005)))
        .with_profile(
            v("1.1.0"),
            profile(Schedule::constant(0.005)).with_crash_after(Duration::from_secs(200)),
        ));
    install(&s, StrategyKind::Canary).await;
    let r = deploy(&s, &canary("1.1.0")).await;
    rolled_back(&r);
    assert_eq!(live(&s).await, (Track::Stable, "1.0.0".into()));
}

#[tokio::test(start_paused = true)]
async fn a_canary_past_its_deadline_is_rolled_back() {
    let s = sim(constant_rates(5, &[("1.0.0", 0.005), ("1.1.0", 0.005)]));
    install(&s, StrategyKind::Canary).await;
    let mut c = canary("1.1.0");
    c.max_deployment_duration = Duration::from_secs(600);
    // A step that waits for an approval that never comes (timed pauses that outlast the
    // deadline are refused when the config is loaded).
    support::written_steps(
        &mut c,
        vec![
            Step::SetWeight(5),
            Step::Pause(Pause {
                duration: Some(Duration::from_secs(300)),
            }),
            Step::SetWeight(25),
            Step::Pause(Pause::default()),
        ],
    );
    c.validate().expect("valid");
    let r = deploy(&s, &c).await;
    assert!(rolled_back(&r).contains("maxDeploymentDuration"), "{r}");
}

#[tokio::test(start_paused = true)]
async fn a_four_hour_canary_runs_in_virtual_time() {
    let s = sim(constant_rates(6, &[("1.0.0", 0.01), ("1.1.0", 0.01)]));
    install(&s, StrategyKind::Canary).await;
    let mut c = canary("1.1.0");
    c.canary_config.initial_percentage = 5;
    c.canary_config.increment_percentage = 5;
    c.canary_config.increment_interval = Duration::from_secs(750);
    c.canary_config.max_duration = Duration::from_secs(6 * 3_600);
    c.max_deployment_duration = Duration::from_secs(6 * 3_600);
    let started = std::time::Instant::now();
    let r = deploy(&s, &c).await;
    assert_eq!(r.outcome, Some(Outcome::Succeeded), "{r}");
    let virtual_time = r.last_at.saturating_duration_since(r.started_at);
    assert!(
        virtual_time >= Duration::from_secs(4 * 3_600),
        "{virtual_time:?}"
    );
    println!("{virtual_time:?} of canary in {:?}", started.elapsed());
}

#[tokio::test(start_paused = true)]
async fn operations_on_the_simulator_abort_pause_resume_promote() {
    let s = sim(constant_rates(
        7,
        &[("1.0.0", 0.005), ("1.1.0", 0.005), ("1.2.0", 0.005)],
    ));
    install(&s, StrategyKind::Canary).await;
    // Pause, resume, then promote early.
    let h = s
        .orchestrator
        .start(&canary("1.1.0"), SERVICE)
        .await
        .expect("start");
    tokio::time::sleep(Duration::from_secs(60)).await;
    h.pause().await.expect("pause");
    tokio::time::sleep(Duration::from_secs(1_200)).await;
    assert_eq!(h.status().weight, 5.0);
    h.resume().await.expect("resume");
    // The step's own 5 minutes have passed: the next tick raises the weight.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(h.status().weight, 25.0);
    h.promote().await.expect("promote");
    let r = h.wait().await.expect("report");
    assert_eq!(r.outcome, Some(Outcome::Succeeded));
    assert_eq!(live(&s).await, (Track::Canary, "1.1.0".into()));
    // Abort the next one.
    let h = s
        .orchestrator
        .start(&canary("1.2.0"), SERVICE)
        .await
        .expect("start");
    tokio::time::sleep(Duration::from_secs(100)).await;
    h.abort().await.expect("abort");
    let r = h.wait().await.expect("report");
    assert!(rolled_back(&r).contains("aborted"));
    assert_eq!(live(&s).await, (Track::Canary, "1.1.0".into()));
}

fn blue_green(version: &str, traffic: TrafficStrategyKind) -> DeploymentConfig {
    let mut c = canary(version);
    c.strategy = StrategyKind::BlueGreen;
    c.blue_green_config.traffic_strategy = traffic;
    c.blue_green_config.traffic_increment = 20.0;
    c.blue_green_config.traffic_interval = Duration::from_secs(60);
    c
}

#[tokio::test(start_paused = true)]
async fn blue_green_success_and_switch_back_on_failure() {
    let s = sim(constant_rates(
        8,
        &[("1.0.0", 0.005), ("1.1.0", 0.005), ("1.2.0", 0.25)],
    ));
    install(&s, StrategyKind::BlueGreen).await;
    let since = s.world.now();
    let r = deploy(&s, &blue_green("1.1.0", TrafficStrategyKind::Gradual)).await;
    assert_eq!(r.outcome, Some(Outcome::Succeeded), "{r}");
    assert_eq!(live(&s).await, (Track::Green, "1.1.0".into()));
    assert_eq!(unroutable_since(&s, since), 0);
    let r = deploy(&s, &blue_green("1.2.0", TrafficStrategyKind::Immediate)).await;
    assert!(rolled_back(&r).contains("error-rate-threshold"), "{r}");
    assert_eq!(live(&s).await, (Track::Green, "1.1.0".into()));
}

#[tokio::test(start_paused = true)]
async fn router_errors_roll_back_when_rollback_on_error_is_set() {
    let s = sim(constant_rates(9, &[("1.0.0", 0.005), ("1.1.0", 0.005)]));
    install(&s, StrategyKind::BlueGreen).await;
    let mut c = blue_green("1.1.0", TrafficStrategyKind::Gradual);
    c.monitoring.error_rate_threshold = None;
    // The router fails once, at the second step of the switch.
    s.world.fail_next_apply("injected router error");
    let r = deploy(&s, &c).await;
    assert!(rolled_back(&r).contains("router"), "{r}");
    assert_eq!(live(&s).await, (Track::Blue, "1.0.0".into()));
}

#[tokio::test(start_paused = true)]
async fn blue_green_with_canary_on_the_simulator() {
    let s = sim(constant_rates(
        10,
        &[("1.0.0", 0.005), ("1.1.0", 0.005), ("1.2.0", 0.05)],
    ));
    install(&s, StrategyKind::BlueGreen).await;
    let mut c = canary("1.1.0");
    c.strategy = StrategyKind::BlueGreenWithCanary;
    c.canary_config.target_percentage = 50;
    let r = deploy(&s, &c).await;
    assert_eq!(r.outcome, Some(Outcome::Succeeded), "{r}");
    assert_eq!(live(&s).await, (Track::Green, "1.1.0".into()));
    let mut c = c.clone();
    c.version = v("1.2.0");
    c.monitoring.error_rate_threshold = None;
    let r = deploy(&s, &c).await;
    assert!(rolled_back(&r).contains("error_rate"), "{r}");
    assert_eq!(live(&s).await, (Track::Green, "1.1.0".into()));
}

#[tokio::test(start_paused = true)]
async fn a_file_journal_replays_every_record_of_a_canary_and_its_report() {
    // Judges' evidence holds numbers JSON has no words for (a ratio over zero errors is NaN, an
    // unbounded interval is infinite); every record must still read back, or a resume would
    // replay an older state.
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("journal.jsonl");
    let journal = Arc::new(FileJournal::open(&path).expect("journal"));
    let s = sim_with(
        constant_rates(5, &[("1.0.0", 0.0), ("1.1.0", 0.0)]),
        300.0,
        journal.clone(),
    );
    install(&s, StrategyKind::Canary).await;
    let mut config = canary("1.1.0");
    config.canary_config.judge_latency = true;
    let r = deploy(&s, &config).await;
    assert_eq!(r.outcome, Some(Outcome::Succeeded), "{r}");
    assert!(
        r.timeline
            .iter()
            .any(|e| matches!(&e.kind, EventKind::AnalysisResult { decision }
            if decision.evidence.iter().any(|ev| ev.metric == serin_signals::Metric::Latency))),
        "the latency judge spoke: {r}"
    );
    let reread = FileJournal::open(&path).expect("reopen");
    let records = reread.records(&r.deployment).await.expect("records");
    let report = Report::from_records(&records).expect("report");
    assert_eq!(report.timeline.len(), r.timeline.len());
    assert_eq!(report.outcome, r.outcome);
    let json = report.to_json().expect("json");
    let back: Report = serde_json::from_str(&json).expect("the report reads back");
    assert_eq!(back.timeline.len(), report.timeline.len());
}

/// A canary failing `canary_rate` of its requests against a baseline failing 1%, both error
/// rates wandering on their own each second (log-sd 0.5, correlation 0.6 from one second to the
/// next), run under `seed` with the default or the robust judges; whether it was rolled back.
async fn wandering_canary_rolled_back(seed: u64, canary_rate: f64, robust: bool) -> bool {
    let wander = ErrorWander::new(0.5, 0.6);
    let s = sim_at(
        SimConfig::new(seed)
            .with_profile(
                v("1.0.0"),
                profile(Schedule::constant(0.01)).with_error_wander(wander),
            )
            .with_profile(
                v("1.1.0"),
                profile(Schedule::constant(canary_rate)).with_error_wander(wander),
            ),
        500.0,
    );
    install(&s, StrategyKind::Canary).await;
    let mut c = canary("1.1.0");
    // Half the traffic from the start, for 45 minutes: the share at which the wander fools a
    // per-request model most (errors from both tracks, each clumping on its own).
    c.canary_config.initial_percentage = 50;
    c.canary_config.increment_interval = Duration::from_secs(900);
    c.canary_config.error_rate_margin = 0.0;
    c.canary_config.robust_judges = robust;
    c.monitoring.error_rate_threshold = None;
    let r = deploy(&s, &c).await;
    match &r.outcome {
        Some(Outcome::Succeeded) => false,
        Some(Outcome::RolledBack { .. }) => true,
        other => panic!("seed {seed}: {other:?}\n{r}"),
    }
}

#[tokio::test(start_paused = true)]
async fn robust_judges_keep_a_good_canary_whose_error_rate_wanders_and_catch_a_bad_one() {
    // The per-request judges read the wander's clumps of errors as evidence and roll back many
    // good canaries; the robust judges estimate the wander from the scatter between batches.
    let (mut default, mut robust) = (0, 0);
    for seed in 100..112 {
        default += u32::from(wandering_canary_rolled_back(seed, 0.01, false).await);
        robust += u32::from(wandering_canary_rolled_back(seed, 0.01, true).await);
    }
    assert!(
        default >= 6,
        "default judges rolled back {default} of 12 good canaries"
    );
    assert!(
        robust <= 1,
        "robust judges rolled back {robust} of 12 good canaries"
    );
    // A canary with three times the baseline's error rate is still caught.
    for seed in 200..204 {
        assert!(
            wandering_canary_rolled_back(seed, 0.03, true).await,
            "seed {seed}"
        );
    }
}
