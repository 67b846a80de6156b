//! A small in-memory world for behaviour tests: platform, router, metrics and health sources,
//! a journal, and a traffic generator that records, every second, the requests and errors
//! each track served under the split in force (errors at each version's configured rate) and,
//! for versions given a median latency, their latencies.

mod faulty_journal;

pub use faulty_journal::{Fault, Faulty};

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serin_compat::breaking::{Endpoint, Field};
use serin_compat::registry::ProvidedApi;
use serin_compat::{Fleet, Matrix, Registry, Release, Validator};
use serin_orchestrator::backup::Retention;
use serin_orchestrator::{
    BackupInfo, BackupProvider, Clock, DeploymentConfig, DeploymentHandle, DeploymentPlan, Event,
    EventKind, InMemoryBackup, InMemoryJournal, InMemoryPlatform, InMemoryStepRunner, Journal,
    Orchestrator, OrchestratorBuilder, Outcome, Platform, Record, Report, ServiceBackends, Stage,
    StrategyKind, TrackSpec, TrackStatus, TrafficStrategyKind,
};
use serin_signals::{InMemoryHealth, InMemorySource, Metric, Timestamp, Track, Window};
use serin_traffic::{InMemoryRouter, TrafficRouter};
use tokio::sync::broadcast;

pub const SERVICE: &str = "web";
pub const RPS: u64 = 200;

pub struct World {
    pub platform: Arc<InMemoryPlatform>,
    pub router: Arc<InMemoryRouter>,
    pub source: Arc<InMemorySource>,
    pub health: Arc<InMemoryHealth>,
    pub journal: Arc<InMemoryJournal>,
    pub clock: Clock,
    /// Error rate per version (`major.minor.patch`).
    pub rates: Arc<Mutex<BTreeMap<String, f64>>>,
    /// Median latency in ms per version, for those whose latencies are recorded.
    pub medians: Arc<Mutex<BTreeMap<String, f64>>>,
}

/// The standard normal's deciles' midpoints: the spread of recorded latencies around their
/// median (log sd 0.5), the same every second.
const LOG_SPREAD: [f64; 10] = [
    -1.645, -1.036, -0.674, -0.385, -0.126, 0.126, 0.385, 0.674, 1.036, 1.645,
];

pub fn v(s: &str) -> semver::Version {
    semver::Version::parse(s).expect("test version")
}

impl World {
    pub fn new() -> Self {
        World {
            platform: Arc::new(InMemoryPlatform::new()),
            router: Arc::new(InMemoryRouter::new()),
            source: Arc::new(InMemorySource::new()),
            health: Arc::new(InMemoryHealth::new()),
            journal: Arc::new(InMemoryJournal::new()),
            clock: Clock::starting_at(Timestamp::from_millis(1_700_000_000_000)),
            rates: Arc::new(Mutex::new(BTreeMap::new())),
            medians: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }

    /// A world serving 1.0.0, with 1.0.0 and 1.1.0 failing 0.5% of requests (no traffic is
    /// generated).
    pub async fn installed() -> Arc<Self> {
        let world = Arc::new(World::new());
        world.set_rate("1.0.0", 0.005);
        world.set_rate("1.1.0", 0.005);
        world.install("1.0.0").await;
        world
    }

    /// A world whose platform is `platform` (say, one whose instances get ready slowly).
    pub fn on(platform: InMemoryPlatform) -> Self {
        World {
            platform: Arc::new(platform),
            ..World::new()
        }
    }

    pub fn orchestrator(&self) -> Orchestrator {
        self.orchestrator_over(self.journal.clone())
    }

    /// An orchestrator on the world's backends over another journal.
    pub fn orchestrator_over(&self, journal: Arc<dyn Journal>) -> Orchestrator {
        self.builder(journal).build()
    }

    /// An orchestrator's builder on the world's backends over `journal`, for the providers a
    /// test adds (backup, notifier, validator).
    pub fn builder(&self, journal: Arc<dyn Journal>) -> OrchestratorBuilder {
        self.builder_routing(self.router.clone(), journal)
    }

    /// An orchestrator on the world's backends over its journal but routing through `router`:
    /// a router that fails on cue, or one a restarted process starts afresh.
    pub fn orchestrator_routing(&self, router: Arc<dyn TrafficRouter>) -> Orchestrator {
        self.builder_routing(router, self.journal.clone()).build()
    }

    fn builder_routing(
        &self,
        router: Arc<dyn TrafficRouter>,
        journal: Arc<dyn Journal>,
    ) -> OrchestratorBuilder {
        let backends = ServiceBackends::new(router, self.source.clone(), self.health.clone());
        self.builder_on(self.platform.clone(), backends, journal)
    }

    /// An orchestrator's builder on the world's clock over `journal`, but on `platform` and
    /// `backends` in place of the world's: doubles that hang or fail on cue.
    pub fn builder_on(
        &self,
        platform: Arc<dyn Platform>,
        backends: ServiceBackends,
        journal: Arc<dyn Journal>,
    ) -> OrchestratorBuilder {
        Orchestrator::builder(platform, journal)
            .service(SERVICE, backends)
            .clock(self.clock)
    }

    /// Starts `config` on a fresh orchestrator.
    pub async fn start(&self, config: &DeploymentConfig) -> DeploymentHandle {
        self.orchestrator()
            .start(config, SERVICE)
            .await
            .expect("start")
    }

    /// Whether the service runs a track named `track`.
    pub async fn has_track(&self, track: &Track) -> bool {
        self.platform.status(SERVICE, track).await.is_ok()
    }

    /// How many instances the track named `track` runs (0 when there is none).
    pub async fn instances_of(&self, track: &Track) -> usize {
        self.platform
            .list()
            .await
            .expect("list")
            .iter()
            .find(|t| t.track == *track)
            .map_or(0, |t| t.instances.len())
    }

    /// Asserts that all traffic goes to `track`, which runs `version`.
    pub async fn assert_live(&self, track: Track, version: &str) {
        assert_eq!(self.live_version().await, Some((track, version.to_owned())));
    }

    /// An orchestrator over `journal` with the [`checklist_validator`], and the backup provider
    /// and step runner given.
    pub fn checklist_orchestrator(
        &self,
        journal: Arc<dyn Journal>,
        backup: Option<Arc<InMemoryBackup>>,
        runner: Option<Arc<dyn serin_orchestrator::StepRunner>>,
    ) -> Orchestrator {
        let (validator, fleet) = checklist_validator();
        let mut b = self.builder(journal).validator(validator, fleet);
        if let Some(backup) = backup {
            b = b.backup(backup);
        }
        if let Some(runner) = runner {
            b = b.step_runner(runner);
        }
        b.build()
    }

    /// Resumes deployment `id` with a fresh orchestrator and returns its report.
    pub async fn resumed(&self, id: &str) -> Report {
        resume_to_end(&self.orchestrator(), id).await
    }

    /// Runs `config` to its end and returns the report of its one target service.
    pub async fn deploy(&self, config: &DeploymentConfig) -> Report {
        self.orchestrator()
            .run(config)
            .await
            .expect("run")
            .remove(0)
    }

    /// The dry run of `config` for its one target service.
    pub async fn plan(&self, config: &DeploymentConfig) -> DeploymentPlan {
        self.orchestrator()
            .plan(config)
            .await
            .expect("plan")
            .remove(0)
    }

    /// The canary step of the dry run of `config`.
    pub async fn canary_step(&self, config: &DeploymentConfig) -> String {
        let plan = self.plan(config).await;
        plan.steps
            .iter()
            .find(|s| s.starts_with("canary "))
            .unwrap_or_else(|| panic!("no canary step: {plan}"))
            .clone()
    }

    pub fn set_rate(&self, version: &str, rate: f64) {
        self.rates
            .lock()
            .expect("rates")
            .insert(version.to_owned(), rate);
    }

    /// Records `version`'s latencies from now on, log-normal around `median_ms`.
    pub fn set_latency(&self, version: &str, median_ms: f64) {
        self.medians
            .lock()
            .expect("medians")
            .insert(version.to_owned(), median_ms);
    }

    /// Records one second of traffic ending now, split by the router's current split.
    pub async fn tick_traffic(&self, carry: &mut BTreeMap<String, f64>) {
        let now = self.clock.now();
        let window = Window::ending_at(now, Duration::from_secs(1));
        let Ok(Some(split)) = self.router.current().await else {
            return;
        };
        let tracks = self.platform.list().await.unwrap_or_default();
        for b in split.backends() {
            let share = f64::from(b.weight().bps()) / 10_000.0;
            let requests = (RPS as f64 * share).round() as u64;
            if requests == 0 {
                continue;
            }
            let name = b.name().as_str().to_owned();
            let Some(st) = tracks
                .iter()
                .find(|t| t.service == SERVICE && t.track.as_str() == name)
            else {
                continue;
            };
            let rate = self
                .rates
                .lock()
                .expect("rates")
                .get(&st.version.to_string())
                .copied()
                .unwrap_or(0.0);
            let c = carry.entry(name.clone()).or_insert(0.0);
            *c += requests as f64 * rate;
            let errors = c.floor() as u64;
            *c -= errors as f64;
            let track: Track = name.parse().expect("track");
            self.source
                .record_counts(
                    track.clone(),
                    Metric::ErrorRate,
                    window,
                    requests,
                    errors.min(requests),
                )
                .expect("record");
            let median = self
                .medians
                .lock()
                .expect("medians")
                .get(&st.version.to_string())
                .copied();
            if let Some(median) = median {
                let millis: Vec<f64> = (0..requests as usize)
                    .map(|i| median * (0.5 * LOG_SPREAD[i % LOG_SPREAD.len()]).exp())
                    .collect();
                self.source
                    .record_latency(track, window, &millis)
                    .expect("record");
            }
        }
    }

    /// Spawns the traffic generator (one record per virtual second).
    pub fn spawn_traffic(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let world = Arc::clone(self);
        // Each second of traffic ends half a second off the whole seconds the deployment's
        // windows end on: a second ending at a window's end, recorded at the very instant the
        // window is read, may come after the read and go unseen, and with a deterministic
        // error schedule always the same arm's error would.
        tokio::spawn(async move {
            let mut carry = BTreeMap::new();
            tokio::time::sleep(Duration::from_millis(500)).await;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                world.tick_traffic(&mut carry).await;
            }
        })
    }

    /// A world serving 1.0.0 under traffic, with 1.0.0 and 1.1.0 failing the given shares of
    /// requests; the traffic generator runs as long as the returned handle is kept or dropped.
    pub async fn serving(old_rate: f64, new_rate: f64) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        World::serving_on(InMemoryPlatform::new(), old_rate, new_rate).await
    }

    /// [`World::serving`] on `platform`.
    pub async fn serving_on(
        platform: InMemoryPlatform,
        old_rate: f64,
        new_rate: f64,
    ) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let (world, traffic) = World::on(platform).under_traffic(old_rate, new_rate);
        world.install("1.0.0").await;
        (world, traffic)
    }

    /// This world under traffic, with nothing installed yet: 1.0.0 and 1.1.0 fail the given
    /// shares of requests.
    pub fn under_traffic(
        self,
        old_rate: f64,
        new_rate: f64,
    ) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let world = Arc::new(self);
        world.set_rate("1.0.0", old_rate);
        world.set_rate("1.1.0", new_rate);
        let traffic = world.spawn_traffic();
        (world, traffic)
    }

    /// Installs `version` as the first release (no analysis: nothing to compare with).
    pub async fn install(&self, version: &str) {
        let config =
            DeploymentConfig::new(StrategyKind::Canary, v(version), &[SERVICE]).expect("config");
        let reports = self.orchestrator().run(&config).await.expect("install");
        assert!(reports[0].outcome.as_ref().expect("over").is_success());
    }

    pub async fn live_version(&self) -> Option<(Track, String)> {
        let split = self.router.current().await.ok()??;
        let live = split
            .backends()
            .iter()
            .find(|b| b.weight().bps() == 10_000)?
            .name()
            .as_str()
            .to_owned();
        let track: Track = live.parse().ok()?;
        let st = self.platform.status(SERVICE, &track).await.ok()?;
        Some((track, st.version.to_string()))
    }
}

/// A canary config that runs in a few virtual minutes.
/// A world serving 1.0.0 on blue under traffic (both versions failing 0.5% of requests),
/// installed by an immediate blue-green switch.
pub async fn world_on_blue() -> Arc<World> {
    let (world, _traffic) = World::new().under_traffic(0.005, 0.005);
    let config = blue_green_config("1.0.0", TrafficStrategyKind::Immediate);
    let r = world.orchestrator().run(&config).await.expect("install");
    assert_eq!(r[0].outcome, Some(Outcome::Succeeded));
    world.assert_live(Track::Blue, "1.0.0").await;
    world
}

/// Kills the first instance of green ("out of memory").
pub async fn kill_a_green_instance(world: &World) {
    let green = world
        .platform
        .status(SERVICE, &Track::Green)
        .await
        .expect("green");
    world
        .platform
        .kill(
            SERVICE,
            &Track::Green,
            &green.instances[0].id,
            "out of memory",
        )
        .expect("kill");
}

pub fn canary_config(version: &str) -> DeploymentConfig {
    let mut c =
        DeploymentConfig::new(StrategyKind::Canary, v(version), &[SERVICE]).expect("config");
    c.canary_config.initial_percentage = 10;
    c.canary_config.increment_percentage = 30;
    c.canary_config.increment_interval = Duration::from_secs(60);
    c.canary_config.metrics_window = Duration::from_secs(10);
    c.canary_config.replicas = 1;
    c.blue_green_config.replicas_per_env = 2;
    c.blue_green_config.health_check_interval = Duration::from_secs(1);
    c.blue_green_config.keep_old_warm_for = Duration::from_secs(60);
    c.monitoring.check_interval = Duration::from_secs(5);
    c.monitoring.monitoring_duration = Duration::from_secs(60);
    c.validate().expect("valid test config");
    c
}

/// Writes `steps` into `config`'s canary, leaving the fields steps are otherwise derived from
/// at their defaults, as a file that writes steps does (a file may not write both).
pub fn written_steps(config: &mut DeploymentConfig, steps: Vec<serin_canary::controller::Step>) {
    let default = serin_orchestrator::CanaryConfig::default();
    let c = &mut config.canary_config;
    c.initial_percentage = default.initial_percentage;
    c.increment_percentage = default.increment_percentage;
    c.target_percentage = default.target_percentage;
    c.increment_interval = default.increment_interval;
    c.steps = Some(steps);
}

/// [`canary_config`] shortened to few records (so few crash points): 45% steps every 30 s,
/// 20 s of monitoring, the old version kept warm for 20 s.
pub fn short_canary_config(version: &str) -> DeploymentConfig {
    let mut c = canary_config(version);
    c.canary_config.increment_percentage = 45;
    c.canary_config.increment_interval = Duration::from_secs(30);
    c.monitoring.monitoring_duration = Duration::from_secs(20);
    c.blue_green_config.keep_old_warm_for = Duration::from_secs(20);
    c
}

/// A blue-green config on [`canary_config`]'s timings: with a gradual switch, 25% every 30 s.
pub fn blue_green_config(version: &str, traffic: TrafficStrategyKind) -> DeploymentConfig {
    let mut c = canary_config(version);
    c.strategy = StrategyKind::BlueGreen;
    c.blue_green_config.traffic_strategy = traffic;
    c.blue_green_config.traffic_increment = 25.0;
    c.blue_green_config.traffic_interval = Duration::from_secs(30);
    c
}

/// A canary to 1.1.0 that waits a minute at 0% before its first weight (10%), with a trigger
/// that rolls back above 20% errors and when it has no data for 10 s (`onMissingData: fire`).
pub fn stale_at_zero_config() -> DeploymentConfig {
    let mut config = canary_config("1.1.0");
    written_steps(
        &mut config,
        serde_json::from_str(
            r#"[{"pause":{"duration":"1m"}},{"setWeight":10},{"pause":{"duration":"30s"}},
                {"setWeight":50},{"pause":{"duration":"30s"}}]"#,
        )
        .expect("steps"),
    );
    config.triggers = vec![errors_or_missing_data_trigger()];
    config.validate().expect("valid");
    config
}

/// A trigger that rolls back above 20% errors, and when it has had no data for 10 s
/// (`onMissingData: fire`).
pub fn errors_or_missing_data_trigger() -> serin_triggers::TriggerConfig {
    serde_json::from_str(
        r#"{"kind":"metricThreshold","id":"errors","metric":"error_rate","operator":"gt",
            "value":0.2,"onMissingData":"fire","staleAfter":"10s"}"#,
    )
    .expect("trigger")
}

/// The deadline events of `report`: phase and action, each with its position in the
/// timeline.
pub fn deadlines(report: &Report) -> Vec<(usize, serin_orchestrator::Phase, String)> {
    report
        .timeline
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match &e.kind {
            EventKind::DeadlineReached { phase, action } => Some((i, *phase, action.clone())),
            _ => None,
        })
        .collect()
}

/// The reason of a rolled-back deployment; panics with the report otherwise.
pub fn rollback_reason(report: &Report) -> &str {
    match &report.outcome {
        Some(Outcome::RolledBack { reason }) => reason,
        other => panic!("expected a rollback, got {other:?}\n{report}"),
    }
}

/// Asserts that the deployment succeeded; shows the report otherwise.
pub fn assert_succeeded(report: &Report) {
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
}

/// Every event received so far.
pub fn drain(rx: &mut broadcast::Receiver<Event>) -> Vec<Event> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e);
    }
    out
}

/// 1.0.0 runs; 1.1.0 is yanked, so the validator blocks it.
pub fn yanking_validator() -> (Validator, Fleet) {
    let mut registry = Registry::new();
    registry
        .add_release(SERVICE, Release::new(v("1.0.0")))
        .expect("release");
    registry
        .add_release(SERVICE, Release::new(v("1.1.0")).yanked())
        .expect("release");
    let matrix = Matrix::new(Vec::new(), &registry).expect("matrix");
    (
        Validator::new(registry, matrix).expect("validator"),
        Fleet::new().with(SERVICE, v("1.0.0")),
    )
}

/// 1.0.0 runs; 1.1.0 adds a column (expand), drops an old one (contract) and declares a
/// breaking change (flag before, clean-up after): two steps before the deployment for the
/// runner (the flag and the expand migration; the backup step is done by the backup) and two
/// after it. 1.2.0 keeps 1.1.0's schema.
pub fn checklist_validator() -> (Validator, Fleet) {
    let mut registry = Registry::new();
    registry
        .add_release(SERVICE, Release::new(v("1.0.0")).with_schema_version(1))
        .expect("release");
    registry
        .add_release(
            SERVICE,
            Release::new(v("1.1.0"))
                .with_schema_version(2)
                .with_migration("0002_add_email", "ALTER TABLE users ADD COLUMN email text;")
                .with_migration("0003_drop_fax", "ALTER TABLE users DROP COLUMN fax;")
                .with_breaking("the /v1/fax endpoint is removed"),
        )
        .expect("release");
    registry
        .add_release(SERVICE, Release::new(v("1.2.0")).with_schema_version(2))
        .expect("release");
    let matrix = Matrix::new(Vec::new(), &registry).expect("matrix");
    (
        Validator::new(registry, matrix).expect("validator"),
        Fleet::new().with(SERVICE, v("1.0.0")),
    )
}

/// 1.0.0 at schema 1; 1.1.0 at schema 2 (adds a column, drops another: a contract migration)
/// with a response field more, so that going back to 1.0.0 has a feature-flag step before it,
/// which a step runner carries out.
pub fn flagged_validator() -> (Validator, Fleet) {
    let users = |version: &str, fields: &[&str]| {
        let get = Endpoint {
            name: "get".into(),
            request: Vec::new(),
            response: fields
                .iter()
                .map(|f| Field::new(*f, "string", false))
                .collect(),
        };
        ProvidedApi::new("users", v(version)).with_endpoints(vec![get])
    };
    let mut registry = Registry::new();
    registry
        .add_release(
            SERVICE,
            Release::new(v("1.0.0"))
                .with_schema_version(1)
                .providing(users("1.0.0", &["id"])),
        )
        .expect("release");
    registry
        .add_release(
            SERVICE,
            Release::new(v("1.1.0"))
                .with_schema_version(2)
                .providing(users("1.1.0", &["id", "email"]))
                .with_migration("0002_add_email", "ALTER TABLE users ADD COLUMN email text;")
                .with_migration("0003_drop_fax", "ALTER TABLE users DROP COLUMN fax;"),
        )
        .expect("release");
    let matrix = Matrix::new(Vec::new(), &registry).expect("matrix");
    (
        Validator::new(registry, matrix).expect("validator"),
        Fleet::new().with(SERVICE, v("1.0.0")),
    )
}

/// Starts `config` on `o` and waits for its report.
pub async fn run_to_end(o: &Orchestrator, config: &DeploymentConfig) -> Report {
    o.start(config, SERVICE)
        .await
        .expect("start")
        .wait()
        .await
        .expect("report")
}

/// Resumes deployment `id` on `o` and waits for its report.
pub async fn resume_to_end(o: &Orchestrator, id: &str) -> Report {
    o.resume(id)
        .await
        .expect("resume")
        .wait()
        .await
        .expect("report")
}

/// Waits (in virtual time) until the deployment's status is in `stage`.
pub async fn until_stage(h: &DeploymentHandle, stage: Stage) {
    for _ in 0..100_000 {
        if h.status().stage == stage {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never reached {stage:?}: {:?}", h.status());
}

/// Waits (in virtual time, a second at a time) until the deployment sends at least `percent`
/// of traffic to the new version.
pub async fn until_weight(h: &DeploymentHandle, percent: f64) {
    while h.status().weight < percent {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The kinds of the report's events, in order.
pub fn kinds(report: &Report) -> Vec<&EventKind> {
    report.timeline.iter().map(|e| &e.kind).collect()
}

/// The weights the events set, in order.
pub fn weights(events: &[Event]) -> Vec<f64> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::WeightChanged { percent, .. } => Some(*percent),
            _ => None,
        })
        .collect()
}

/// Starts `config` on `o` with the world's journal set to stall once it holds `records`
/// records, and kills the run there: the executor stops right after that write, before it
/// acts on it. The journal then takes writes again; returns its last record.
pub async fn crash_at(
    world: &World,
    o: Orchestrator,
    config: DeploymentConfig,
    records: usize,
) -> Record {
    world.journal.stall_after(Some(records));
    let (tx, rx) = tokio::sync::oneshot::channel();
    let starter = tokio::spawn(async move {
        let h = o.start(&config, SERVICE).await.expect("start");
        let _ = tx.send(h);
    });
    while world.journal.len() < records {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Let the executor reach the stalled write and sit there.
    tokio::time::sleep(Duration::from_millis(10)).await;
    match tokio::time::timeout(Duration::from_millis(1), rx).await {
        Ok(Ok(handle)) => handle.kill(),
        _ => starter.abort(),
    }
    world.journal.stall_after(None);
    world.journal.all().last().expect("records").clone()
}

/// A world serving 1.0.0 (both versions failing 0.5% of requests) whose new instances take
/// `ready_after` status checks to become ready.
pub async fn slow_serving_world(ready_after: u32) -> (Arc<World>, tokio::task::JoinHandle<()>) {
    World::serving_on(
        InMemoryPlatform::new().with_ready_after(ready_after),
        0.005,
        0.005,
    )
    .await
}

/// A canary to 1.1.0 (10%, 40%, 70%, then a promotion that grows its track from 1 instance
/// to 2) with a trigger that holds above 20% errors, and goes stale, holding too, after 10 s
/// without data. The monitoring threshold, which would roll back, is off.
pub fn holding_canary_config() -> DeploymentConfig {
    let mut config = canary_config("1.1.0");
    config.monitoring.error_rate_threshold = None;
    config.blue_green_config.readiness_timeout = Duration::from_secs(300);
    config.triggers = vec![
        serde_json::from_str(
            r#"{"kind":"metricThreshold","id":"errors-hold","metric":"error_rate",
                "operator":"gt","value":0.2,"action":"hold","staleAfter":"10s"}"#,
        )
        .expect("trigger"),
    ];
    config.validate().expect("valid");
    config
}

/// The canary track's share in the router's split now, in percent.
pub async fn canary_share(world: &World) -> f64 {
    world
        .router
        .current()
        .await
        .expect("split")
        .and_then(|s| s.weight_of("canary").map(|w| w.as_percent()))
        .unwrap_or(0.0)
}

/// An in-memory backup provider whose calls, each on its own cue, never answer (a catalog on
/// a hung network share, a dump stuck on a lock), or whose backups take a while.
#[derive(Default)]
pub struct HangingBackup {
    pub inner: InMemoryBackup,
    pub hang_backup: std::sync::atomic::AtomicBool,
    pub hang_restore: std::sync::atomic::AtomicBool,
    pub hang_info: std::sync::atomic::AtomicBool,
    pub hang_list: std::sync::atomic::AtomicBool,
    /// How long each backup takes before it is taken.
    pub backup_takes: Mutex<Duration>,
    pub stall: Stall,
}

impl HangingBackup {
    /// `inner` (say, one with a retention), answering until cued.
    pub fn over(inner: InMemoryBackup) -> Arc<Self> {
        Arc::new(HangingBackup {
            inner,
            ..HangingBackup::default()
        })
    }

    /// Never answers, as [`Stall::now`], once `cue` is set.
    async fn hang_on(&self, cue: &std::sync::atomic::AtomicBool) {
        if cue.load(std::sync::atomic::Ordering::SeqCst) {
            self.stall.now::<()>().await;
        }
    }
}

#[async_trait::async_trait]
impl BackupProvider for HangingBackup {
    fn name(&self) -> &str {
        "hanging-backup"
    }
    async fn backup(&self, service: &str, label: &str) -> serin_orchestrator::Result<String> {
        self.hang_on(&self.hang_backup).await;
        let takes = *self.backup_takes.lock().expect("backup_takes");
        tokio::time::sleep(takes).await;
        self.inner.backup(service, label).await
    }
    async fn restore(&self, id: &str) -> serin_orchestrator::Result<()> {
        self.hang_on(&self.hang_restore).await;
        self.inner.restore(id).await
    }
    async fn info(&self, id: &str) -> serin_orchestrator::Result<BackupInfo> {
        self.hang_on(&self.hang_info).await;
        self.inner.info(id).await
    }
    fn retention(&self) -> Option<Retention> {
        self.inner.retention()
    }
    async fn list(&self, service: &str) -> serin_orchestrator::Result<Vec<BackupInfo>> {
        self.hang_on(&self.hang_list).await;
        self.inner.list(service).await
    }
}

/// 1.0.0 serving, and an orchestrator backing up through `provider`.
pub async fn backing_up(provider: Arc<dyn BackupProvider>) -> (Arc<World>, Orchestrator) {
    let world = World::installed().await;
    let o = world
        .builder(world.journal.clone())
        .backup(provider)
        .build();
    (world, o)
}

/// 1.0.0 ran, then 1.1.0 (whose contract migration is destructive) was deployed over it
/// within `max` with a backup through `provider`, and serves: a rollback to 1.0.0 must
/// restore that backup.
pub async fn upgraded(
    provider: Arc<dyn BackupProvider>,
    max: Duration,
) -> (Arc<World>, Orchestrator) {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let (validator, fleet) = checklist_validator();
    let o = world
        .builder(world.journal.clone())
        .validator(validator, fleet)
        .backup(provider)
        .step_runner(Arc::new(InMemoryStepRunner::new()))
        .build();
    let up = bounded("the upgrade", run_to_end(&o, &canary_within(max))).await;
    assert_succeeded(&up);
    (world, o)
}

/// Asserts that the last record journalled for `id` leaves nothing in flight.
pub async fn assert_nothing_in_flight(world: &World, id: &str) {
    let records = world.journal.records(id).await.expect("records");
    let last = records.last().expect("a record");
    assert_eq!(last.state.in_flight, None, "{:?}", last.state.in_flight);
}

/// The canary of 1.1.0 ([`canary_config`]) bounded by `max` (`maxDeploymentDuration`).
pub fn canary_within(max: Duration) -> DeploymentConfig {
    let mut c = canary_config("1.1.0");
    c.max_deployment_duration = max;
    c.validate().expect("valid");
    c
}

/// The reason of a failed deployment's report; panics on any other outcome.
pub fn failed_reason(report: &Report) -> &str {
    match &report.outcome {
        Some(Outcome::Failed { reason }) => reason,
        other => panic!("expected failed, got {other:?}\n{report}"),
    }
}

/// How long a deployment took, from its start to its last record.
pub fn took(report: &Report) -> Duration {
    report.last_at.saturating_duration_since(report.started_at)
}

/// Longer than any deployment here may take: reaching it means a wait was never bounded.
pub const HUNG: Duration = Duration::from_secs(48 * 3_600);

/// `fut`, or a panic naming `what` if it never ends within [`HUNG`].
pub async fn bounded<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(HUNG, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} never ended"))
}

/// Counts, when dropped, a call of the user's code dropped before it answered.
pub struct Dropped<'a>(pub &'a std::sync::atomic::AtomicUsize);

impl Drop for Dropped<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The calls of a test double that never answer (a platform, provider or source on a hung
/// network): how many hung, and how many of those the caller dropped before they answered;
/// and the calls cued to hang, for a double that hangs on some calls only.
#[derive(Default)]
pub struct Stall {
    hung: std::sync::atomic::AtomicUsize,
    dropped: std::sync::atomic::AtomicUsize,
    cued: Mutex<Vec<String>>,
}

impl Stall {
    /// Makes the calls named `call` hang from now on (see [`Stall::if_cued`]).
    pub fn cue(&self, call: &str) {
        self.cued.lock().expect("cued").push(call.to_owned());
    }

    /// Never answers, as [`Stall::now`], if `call` was cued; answers at once otherwise.
    pub async fn if_cued(&self, call: &str) {
        let cued = self.cued.lock().expect("cued").iter().any(|c| c == call);
        if cued {
            self.now::<()>().await;
        }
    }

    /// Never answers: counted as hung, and as dropped once the caller gives up on it.
    pub async fn now<T>(&self) -> T {
        self.hung.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _dropped = Dropped(&self.dropped);
        std::future::pending().await
    }

    /// Waits (in virtual time) until a call hangs.
    pub async fn until_hung(&self) {
        while self.hung() == 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// How many calls hung.
    pub fn hung(&self) -> usize {
        self.hung.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How many calls that hung were dropped.
    pub fn dropped(&self) -> usize {
        self.dropped.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Aborts the deployment of `handle` on `o` and waits for its report, each within [`HUNG`];
/// answers when the abort was asked, and the report.
pub async fn abort_to_end(o: &Orchestrator, handle: DeploymentHandle) -> (Timestamp, Report) {
    let asked = o.clock().now();
    bounded("the abort", handle.abort()).await.expect("abort");
    let report = bounded("the deployment", handle.wait())
        .await
        .expect("report");
    println!("{report}");
    (asked, report)
}

/// The world's platform, but its status of any track but the one spared never answers once
/// one is (the new track hangs, while the old one keeps answering): an API server that
/// accepts the connection and says nothing.
pub struct SilentStatus {
    pub inner: Arc<InMemoryPlatform>,
    pub spared: Mutex<Option<Track>>,
    pub stall: Stall,
}

impl SilentStatus {
    /// `inner`, answering until told to spare a track.
    pub fn new(inner: Arc<InMemoryPlatform>) -> Self {
        SilentStatus {
            inner,
            spared: Mutex::new(None),
            stall: Stall::default(),
        }
    }

    /// Makes the status of every track but `track` hang from now on.
    pub fn spare(&self, track: Track) {
        *self.spared.lock().expect("spared") = Some(track);
    }
}

#[async_trait::async_trait]
impl Platform for SilentStatus {
    fn name(&self) -> &str {
        "silent"
    }
    async fn bring_up(&self, spec: &TrackSpec) -> serin_orchestrator::Result<TrackStatus> {
        self.inner.bring_up(spec).await
    }
    async fn status(
        &self,
        service: &str,
        track: &Track,
    ) -> serin_orchestrator::Result<TrackStatus> {
        let hang = matches!(&*self.spared.lock().expect("spared"), Some(t) if t != track);
        if hang {
            self.stall.now::<()>().await;
        }
        self.inner.status(service, track).await
    }
    async fn scale(
        &self,
        service: &str,
        track: &Track,
        instances: u32,
    ) -> serin_orchestrator::Result<TrackStatus> {
        self.inner.scale(service, track, instances).await
    }
    async fn retire(
        &self,
        service: &str,
        track: &Track,
        drain: Duration,
    ) -> serin_orchestrator::Result<()> {
        self.inner.retire(service, track, drain).await
    }
    async fn list(&self) -> serin_orchestrator::Result<Vec<TrackStatus>> {
        self.inner.list().await
    }
}

/// The world's health source, but its signals never answer once `hang` is set.
pub struct SilentHealth {
    pub inner: Arc<InMemoryHealth>,
    pub hang: std::sync::atomic::AtomicBool,
    pub stall: Stall,
}

impl SilentHealth {
    /// `inner`, answering until told to hang.
    pub fn new(inner: Arc<InMemoryHealth>) -> Self {
        SilentHealth {
            inner,
            hang: std::sync::atomic::AtomicBool::new(false),
            stall: Stall::default(),
        }
    }
}

#[async_trait::async_trait]
impl serin_signals::HealthSource for SilentHealth {
    fn name(&self) -> &str {
        "silent-health"
    }
    async fn probe(
        &self,
        track: &Track,
        probe: &serin_signals::Probe,
    ) -> serin_signals::Result<Option<serin_signals::HealthSignal>> {
        self.inner.probe(track, probe).await
    }
    async fn signals(
        &self,
        track: &Track,
    ) -> serin_signals::Result<Vec<serin_signals::HealthSignal>> {
        if self.hang.load(std::sync::atomic::Ordering::SeqCst) {
            self.stall.now::<()>().await;
        }
        self.inner.signals(track).await
    }
}

/// The world's metrics source, but its queries never answer once `hang` is set.
pub struct SilentMetrics {
    pub inner: Arc<InMemorySource>,
    pub hang: std::sync::atomic::AtomicBool,
    pub stall: Stall,
}

impl SilentMetrics {
    /// `inner`, answering until told to hang.
    pub fn new(inner: Arc<InMemorySource>) -> Self {
        SilentMetrics {
            inner,
            hang: std::sync::atomic::AtomicBool::new(false),
            stall: Stall::default(),
        }
    }
}

#[async_trait::async_trait]
impl serin_signals::MetricsSource for SilentMetrics {
    fn name(&self) -> &str {
        "silent-metrics"
    }
    async fn query(
        &self,
        query: &serin_signals::MetricQuery,
    ) -> serin_signals::Result<serin_signals::Observation> {
        if self.hang.load(std::sync::atomic::Ordering::SeqCst) {
            self.stall.now::<()>().await;
        }
        self.inner.query(query).await
    }
}
