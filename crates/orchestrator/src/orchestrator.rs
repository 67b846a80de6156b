//! [`Orchestrator`]: plans, starts, resumes and reports deployments; [`DeploymentHandle`]:
//! operates one that runs (promote, abort, pause, resume, status).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use serin_canary::controller::CanaryPolicy;
use serin_compat::{Fleet, Validator};
use serin_signals::{HealthSource, MetricsSource, Timestamp, Track};
use serin_traffic::{Plan, TrafficRouter};
use serin_triggers::Engine;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::config::{DeploymentConfig, OnResume, StrategyKind, TrafficStrategyKind};
use crate::error::{Error, Result};
use crate::event::{Event, EventKind, Phase};
use crate::hooks::{BackupInfo, BackupProvider, Notifier, StepRunner};
use crate::journal::Journal;
use crate::platform::{Platform, TrackSpec};
use crate::report::Report;
use crate::run::{Operation, Runner, split_all};
use crate::state::{DeploymentState, Outcome, Placement, Stage, StepStatus, UpgradeStep};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Virtual-time-friendly clock: a wall-clock reading taken once, advanced by `tokio::time`
/// (so paused-time tests run hours in milliseconds). Share one clock between an orchestrator
/// and the one that resumes its deployments.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Timestamp,
    anchor: tokio::time::Instant,
}

impl Clock {
    /// A clock that reads `base` now.
    pub fn starting_at(base: Timestamp) -> Self {
        Clock {
            base,
            anchor: tokio::time::Instant::now(),
        }
    }

    /// A clock that reads the wall clock now.
    pub fn system() -> Self {
        Self::starting_at(Timestamp::from_system_time(std::time::SystemTime::now()))
    }

    /// The current time.
    pub fn now(&self) -> Timestamp {
        self.base.saturating_add(self.anchor.elapsed())
    }
}

/// Builds a [`TrackSpec`]'s command and environment for a version (a process platform needs
/// to know what to run).
pub type SpecFn = Arc<dyn Fn(TrackSpec) -> Result<TrackSpec> + Send + Sync>;

/// The backends of one service: its traffic router, metrics and health sources.
#[derive(Clone)]
pub struct ServiceBackends {
    /// Routes the service's traffic between tracks named by [`Track::as_str`].
    pub router: Arc<dyn TrafficRouter>,
    /// Answers metric queries per track.
    pub metrics: Arc<dyn MetricsSource>,
    /// Answers probe results per track.
    pub health: Arc<dyn HealthSource>,
    /// Completes each new track's spec (command, environment), if the platform needs it.
    pub command: Option<SpecFn>,
}

impl ServiceBackends {
    /// The backends of a service.
    pub fn new(
        router: Arc<dyn TrafficRouter>,
        metrics: Arc<dyn MetricsSource>,
        health: Arc<dyn HealthSource>,
    ) -> Self {
        ServiceBackends {
            router,
            metrics,
            health,
            command: None,
        }
    }

    /// With a function completing each new track's spec.
    pub fn with_command(mut self, f: SpecFn) -> Self {
        self.command = Some(f);
        self
    }
}

impl fmt::Debug for ServiceBackends {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceBackends")
            .field("router", &self.router.name())
            .field("metrics", &self.metrics.name())
            .field("health", &self.health.name())
            .finish()
    }
}

pub(crate) struct Validation {
    pub(crate) validator: Validator,
    pub(crate) fleet: Fleet,
}

pub(crate) struct Inner {
    pub(crate) platform: Arc<dyn Platform>,
    pub(crate) journal: Arc<dyn Journal>,
    pub(crate) services: BTreeMap<String, ServiceBackends>,
    pub(crate) notifier: Option<Arc<dyn Notifier>>,
    pub(crate) backup: Option<Arc<dyn BackupProvider>>,
    pub(crate) steps: Option<Arc<dyn StepRunner>>,
    pub(crate) validator: Option<Validation>,
    pub(crate) clock: Clock,
    pub(crate) events: broadcast::Sender<Event>,
    locks: Mutex<BTreeSet<String>>,
}

/// Builds an [`Orchestrator`].
pub struct OrchestratorBuilder {
    platform: Arc<dyn Platform>,
    journal: Arc<dyn Journal>,
    services: BTreeMap<String, ServiceBackends>,
    notifier: Option<Arc<dyn Notifier>>,
    backup: Option<Arc<dyn BackupProvider>>,
    steps: Option<Arc<dyn StepRunner>>,
    validator: Option<Validation>,
    clock: Option<Clock>,
    capacity: usize,
}

impl OrchestratorBuilder {
    /// The backends of `service`.
    pub fn service(mut self, service: &str, backends: ServiceBackends) -> Self {
        self.services.insert(service.to_owned(), backends);
        self
    }

    /// Where notifications go.
    pub fn notifier(mut self, notifier: Arc<dyn Notifier>) -> Self {
        self.notifier = Some(notifier);
        self
    }

    /// Who takes the backup in preparation.
    pub fn backup(mut self, backup: Arc<dyn BackupProvider>) -> Self {
        self.backup = Some(backup);
        self
    }

    /// Who carries out the validated upgrade's checklist steps (migrations, flags); without
    /// one, each step is recorded as due when its phase comes.
    pub fn step_runner(mut self, runner: Arc<dyn StepRunner>) -> Self {
        self.steps = Some(runner);
        self
    }

    /// Validates every upgrade against `fleet` (what runs now) before anything changes.
    pub fn validator(mut self, validator: Validator, fleet: Fleet) -> Self {
        self.validator = Some(Validation { validator, fleet });
        self
    }

    /// The clock (default: the wall clock, advanced by `tokio::time`).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// How many events a slow subscriber may fall behind before it misses some (default 4096).
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// The orchestrator.
    pub fn build(self) -> Orchestrator {
        let (events, _) = broadcast::channel(self.capacity);
        Orchestrator {
            inner: Arc::new(Inner {
                platform: self.platform,
                journal: self.journal,
                services: self.services,
                notifier: self.notifier,
                backup: self.backup,
                steps: self.steps,
                validator: self.validator,
                clock: self.clock.unwrap_or_else(Clock::system),
                events,
                locks: Mutex::new(BTreeSet::new()),
            }),
        }
    }
}

/// A deployment's status, as its handle reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// The deployment's id.
    pub deployment: String,
    /// The service.
    pub service: String,
    /// Where it stands.
    pub stage: Stage,
    /// The brief's phase.
    pub phase: Phase,
    /// The new version's share of traffic, in percent.
    pub weight: f64,
    /// Paused by an operator.
    pub paused: bool,
    /// How it ended, once over.
    pub outcome: Option<Outcome>,
}

impl Status {
    pub(crate) fn of(s: &DeploymentState) -> Self {
        Status {
            deployment: s.id.clone(),
            service: s.service.clone(),
            stage: s.stage,
            phase: s.phase(),
            weight: s.weight,
            paused: s.paused,
            outcome: s.outcome.clone(),
        }
    }
}

/// What `plan` (the dry run) answers for one service: what runs, what would be deployed
/// where, and the ordered steps — nothing is changed.
#[derive(Debug, Clone)]
pub struct DeploymentPlan {
    /// The service.
    pub service: String,
    /// The strategy.
    pub strategy: StrategyKind,
    /// What runs now.
    pub from: Option<Placement>,
    /// What would run after.
    pub to: Placement,
    /// The ordered steps, one sentence each.
    pub steps: Vec<String>,
    /// The validated upgrade's checklist (empty without a validator); its steps are also in
    /// `steps`, in the phase they are carried out in.
    pub checklist: Vec<serin_compat::Step>,
    /// The traffic plan of a blue-green switch.
    pub traffic: Option<Plan>,
    /// The canary policy of a canary.
    pub canary: Option<CanaryPolicy>,
}

impl fmt::Display for DeploymentPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.from {
            Some(from) => writeln!(
                f,
                "{}: {from} -> {} by {}",
                self.service, self.to, self.strategy
            )?,
            None => writeln!(
                f,
                "{}: install {} by {}",
                self.service, self.to, self.strategy
            )?,
        }
        for (i, s) in self.steps.iter().enumerate() {
            writeln!(f, "  {:>2}. {s}", i + 1)?;
        }
        if let Some(p) = &self.traffic {
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Operates one running deployment.
pub struct DeploymentHandle {
    id: String,
    commands: mpsc::UnboundedSender<(Operation, oneshot::Sender<Result<()>>)>,
    status: watch::Receiver<Status>,
    task: JoinHandle<Result<Report>>,
}

impl fmt::Debug for DeploymentHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeploymentHandle")
            .field("id", &self.id)
            .finish()
    }
}

impl DeploymentHandle {
    /// The deployment's id (for `resume` and `report`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The latest status.
    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// A receiver that sees every status change.
    pub fn watch(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    async fn send(&self, op: Operation) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.commands.send((op, tx)).map_err(|_| {
            Error::conflict(
                format!("{op:?}").to_lowercase(),
                &self.id,
                "the deployment is over",
            )
        })?;
        rx.await.map_err(|_| {
            Error::conflict(
                format!("{op:?}").to_lowercase(),
                &self.id,
                "the deployment is over",
            )
        })?
    }

    /// Gives the new version all traffic now (refused while a judge fails).
    pub async fn promote(&self) -> Result<()> {
        self.send(Operation::Promote).await
    }

    /// Rolls back now.
    pub async fn abort(&self) -> Result<()> {
        self.send(Operation::Abort).await
    }

    /// Holds the weight where it is; triggers keep watching and may still roll back.
    pub async fn pause(&self) -> Result<()> {
        self.send(Operation::Pause).await
    }

    /// Carries on after a pause or an indefinite pause step.
    pub async fn resume(&self) -> Result<()> {
        self.send(Operation::Resume).await
    }

    /// Waits for the end and returns the report.
    pub async fn wait(self) -> Result<Report> {
        self.task
            .await
            .map_err(|e| Error::conflict("wait", &self.id, format!("the executor stopped: {e}")))?
    }

    /// Stops the executor where it stands, without rolling back — what a crash does. The
    /// journal keeps the last state; [`Orchestrator::resume`] finishes the deployment.
    pub fn kill(self) {
        self.task.abort();
    }
}

/// Removes the service's lock when the executor ends, however it ends.
struct LockGuard {
    inner: Arc<Inner>,
    service: String,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        lock(&self.inner.locks).remove(&self.service);
    }
}

/// Plans, runs, operates, resumes and reports deployments.
///
/// ```
/// use std::sync::Arc;
/// use serin_orchestrator::{
///     DeploymentConfig, InMemoryJournal, InMemoryPlatform, Orchestrator, ServiceBackends, StrategyKind,
/// };
/// use serin_signals::{InMemoryHealth, InMemorySource};
/// use serin_traffic::InMemoryRouter;
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let platform = Arc::new(InMemoryPlatform::new());
/// let backends = ServiceBackends::new(
///     Arc::new(InMemoryRouter::new()),
///     Arc::new(InMemorySource::new()),
///     Arc::new(InMemoryHealth::new()),
/// );
/// let orchestrator = Orchestrator::builder(platform, Arc::new(InMemoryJournal::new()))
///     .service("web", backends)
///     .build();
/// let config = DeploymentConfig::new(StrategyKind::BlueGreen, semver::Version::new(1, 0, 0), &["web"])?;
/// let reports = orchestrator.run(&config).await?;
/// assert!(reports[0].outcome.as_ref().is_some_and(|o| o.is_success()));
/// # Ok::<(), serin_orchestrator::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Orchestrator {
    inner: Arc<Inner>,
}

impl fmt::Debug for Orchestrator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Orchestrator")
            .field("platform", &self.inner.platform.name())
            .field("journal", &self.inner.journal.name())
            .field("services", &self.inner.services.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Orchestrator {
    /// Starts building an orchestrator over `platform`, journalling to `journal`.
    pub fn builder(platform: Arc<dyn Platform>, journal: Arc<dyn Journal>) -> OrchestratorBuilder {
        OrchestratorBuilder {
            platform,
            journal,
            services: BTreeMap::new(),
            notifier: None,
            backup: None,
            steps: None,
            validator: None,
            clock: None,
            capacity: 4096,
        }
    }

    /// Every event of every deployment from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// The orchestrator's clock.
    pub fn clock(&self) -> Clock {
        self.inner.clock
    }

    fn backends(&self, service: &str) -> Result<ServiceBackends> {
        self.inner
            .services
            .get(service)
            .cloned()
            .ok_or_else(|| Error::not_found("service backends", service))
    }

    /// What runs now: the track taking most traffic, or the only track of the service.
    async fn current(
        &self,
        service: &str,
        backends: &ServiceBackends,
    ) -> Result<Option<Placement>> {
        let split = backends
            .router
            .current()
            .await
            .map_err(|e| Error::backend("router", backends.router.name(), e))?;
        let live = split.and_then(|s| {
            s.backends()
                .iter()
                .filter(|b| !b.weight().is_zero())
                .max_by_key(|b| b.weight())
                .map(|b| b.name().as_str().to_owned())
        });
        let track = match live {
            Some(name) => Some(
                Track::named(&name)
                    .map_err(|e| Error::invalid("router.current", &name, e.to_string()))?,
            ),
            None => {
                let tracks: Vec<_> = self
                    .inner
                    .platform
                    .list()
                    .await?
                    .into_iter()
                    .filter(|t| t.service == service)
                    .collect();
                match tracks.as_slice() {
                    [only] => Some(only.track.clone()),
                    _ => None,
                }
            }
        };
        let Some(track) = track else {
            return Ok(None);
        };
        let status = self.inner.platform.status(service, &track).await?;
        Ok(Some(Placement {
            track,
            version: status.version,
        }))
    }

    fn new_track(strategy: StrategyKind, from: Option<&Placement>) -> Track {
        match (strategy, from.map(|p| &p.track)) {
            (StrategyKind::Canary, None) => Track::Stable,
            (StrategyKind::Canary, Some(Track::Canary)) => Track::Stable,
            (StrategyKind::Canary, Some(_)) => Track::Canary,
            (_, Some(Track::Blue)) => Track::Green,
            (_, _) => Track::Blue,
        }
    }

    async fn prepare(
        &self,
        config: &DeploymentConfig,
        service: &str,
    ) -> Result<(ServiceBackends, Option<Placement>, Placement)> {
        config.validate()?;
        if !config.target_services.iter().any(|s| s == service) {
            return Err(Error::invalid(
                "service",
                service,
                "is not one of deploymentConfig.targetServices",
            ));
        }
        let backends = self.backends(service)?;
        let from = self.current(service, &backends).await?;
        let track = Self::new_track(config.strategy, from.as_ref());
        Ok((
            backends,
            from,
            Placement {
                track,
                version: config.version.clone(),
            },
        ))
    }

    /// The dry run: for every target service, what runs, where the new version would go and
    /// the ordered steps. Reads the router and the platform; changes nothing.
    pub async fn plan(&self, config: &DeploymentConfig) -> Result<Vec<DeploymentPlan>> {
        let mut out = Vec::new();
        for service in &config.target_services {
            let (_, from, to) = self.prepare(config, service).await?;
            let mut checklist = Vec::new();
            let mut steps = vec![match &self.inner.validator {
                Some(v) => {
                    let proposal =
                        serin_compat::Proposal::new().with(service.clone(), to.version.clone());
                    match v.validator.validate(&v.fleet, &proposal) {
                        Ok(val) if val.is_allowed() => {
                            checklist = val.steps.clone();
                            format!("validation: {:?}", val.verdict)
                        }
                        Ok(val) => format!(
                            "validation: BLOCKED — {}",
                            val.findings
                                .iter()
                                .map(|f| f.message.clone())
                                .collect::<Vec<_>>()
                                .join("; ")
                        ),
                        Err(e) => format!("validation: BLOCKED — {e}"),
                    }
                }
                None => "validation: no validator configured".to_owned(),
            }];
            steps.push(match &self.inner.backup {
                Some(b) => format!("preparation: pre-checks, backup by {}", b.name()),
                None => "preparation: pre-checks (no backup provider)".to_owned(),
            });
            let runner = self
                .inner
                .steps
                .as_ref()
                .map_or("due for an operator".to_owned(), |r| {
                    format!("by the {} step runner", r.name())
                });
            let items: Vec<UpgradeStep> = checklist
                .iter()
                .cloned()
                .map(UpgradeStep::pending)
                .collect();
            for item in items.iter().filter(|i| i.is_pre(service)) {
                steps.push(format!(
                    "preparation: upgrade step {} ({runner})",
                    item.step
                ));
            }
            let bg = &config.blue_green_config;
            let instances = match (config.strategy, &from) {
                (StrategyKind::Canary, Some(_)) => config.canary_config.replicas,
                _ => bg.replicas_per_env,
            };
            steps.push(format!(
                "bring up {} on {} with {instances} instance(s), wait until ready",
                to.version, to.track
            ));
            let mut traffic = None;
            let mut canary = None;
            match (&from, config.strategy) {
                (None, _) => steps.push(format!("route 100% to {} (first install)", to.track)),
                (Some(old), StrategyKind::BlueGreen) => {
                    let start = split_all(&old.track, Some(&to.track))?;
                    let plan =
                        Plan::shift(&start, to.track.as_str(), &bg.traffic()?).map_err(|e| {
                            Error::invalid("blueGreenConfig.trafficStrategy", "…", e.to_string())
                        })?;
                    steps.push(format!(
                        "switch traffic {} -> {} ({:?}, {} step(s)), rollback triggers checked every {:?}",
                        old.track,
                        to.track,
                        bg.traffic_strategy,
                        plan.len(),
                        config.monitoring.check_interval
                    ));
                    traffic = Some(plan);
                }
                (Some(old), _) => {
                    let policy = config.canary_config.policy()?;
                    let weights: Vec<String> = policy
                        .steps
                        .iter()
                        .filter_map(|s| match s {
                            serin_canary::controller::Step::SetWeight(w) => Some(format!("{w}%")),
                            _ => None,
                        })
                        .collect();
                    steps.push(format!(
                        "canary {to} (canary arm) vs {old} (baseline arm): weights {} judged every {:?}, promote when no judge fails",
                        weights.join(" → "),
                        config.canary_config.metrics_window
                    ));
                    if config.strategy == StrategyKind::Canary
                        && bg.replicas_per_env > config.canary_config.replicas
                    {
                        steps.push(format!(
                            "scale {} to {} instance(s)",
                            to.track, bg.replicas_per_env
                        ));
                    }
                    canary = Some(policy);
                }
            }
            if let Some(old) = &from {
                steps.push(format!("route 100% to {}", to.track));
                steps.push(format!(
                    "monitor for {:?} with {} rollback trigger(s)",
                    config.monitoring.monitoring_duration,
                    config.trigger_config()?.triggers.len()
                ));
                steps.push(format!(
                    "retire {} ({}) {:?} after promotion",
                    old.track, old.version, bg.keep_old_warm_for
                ));
            }
            for item in items.iter().filter(|i| !i.is_pre(service)) {
                if item.is_this_deploy(service) {
                    continue;
                }
                steps.push(format!("completion: upgrade step {} ({runner})", item.step));
            }
            out.push(DeploymentPlan {
                service: service.clone(),
                strategy: config.strategy,
                from,
                to,
                steps,
                checklist,
                traffic,
                canary,
            });
        }
        Ok(out)
    }

    fn lock_service(&self, service: &str) -> Result<LockGuard> {
        let mut locks = lock(&self.inner.locks);
        if !locks.insert(service.to_owned()) {
            return Err(Error::conflict(
                "run",
                service,
                "another deployment of this service is running; wait for it, abort it or resume it",
            ));
        }
        Ok(LockGuard {
            inner: Arc::clone(&self.inner),
            service: service.to_owned(),
        })
    }

    fn spawn(
        &self,
        state: DeploymentState,
        seq: u64,
        resume_effects: Option<crate::journal::Record>,
        backends: ServiceBackends,
        guard: LockGuard,
    ) -> DeploymentHandle {
        let (tx, rx) = mpsc::unbounded_channel();
        let (status_tx, status_rx) = watch::channel(Status::of(&state));
        let id = state.id.clone();
        let runner = Runner {
            inner: Arc::clone(&self.inner),
            backends,
            state,
            seq,
            commands: rx,
            _keep: tx.clone(),
            status: status_tx,
            sample: None,
        };
        let task = tokio::spawn(async move {
            let _guard = guard;
            let mut runner = runner;
            if let Some(last) = resume_effects {
                // Carry out the last journalled record again (its effects are idempotent) and
                // announce its events, which the crash may have kept from subscribers.
                if let Err(e) = runner.execute(&last.effects).await {
                    tracing::warn!(deployment = %last.deployment, "repeating the last record failed: {e}");
                    if runner.state.stage != Stage::Done && runner.state.config.rollback_on_error {
                        runner.state.stage = Stage::RollingBack;
                        runner.state.rollback_reason = Some(format!(
                            "resumed after a crash; repeating the last step failed: {e}"
                        ));
                    }
                }
                runner.emit(&last.events).await;
                if runner.state.stage != Stage::Done
                    && runner.state.config.on_resume == OnResume::Rollback
                    && !matches!(
                        runner.state.stage,
                        Stage::Validation | Stage::Preparation | Stage::RollingBack
                    )
                {
                    runner.state.stage = Stage::RollingBack;
                    runner.state.rollback_reason =
                        Some("resumed after a crash; onResume is rollback".into());
                }
            }
            // A deployment that ended frees the platform's lock; one cut short (a journal
            // failure, or `kill`, which never gets here) keeps it until it is resumed.
            let platform = Arc::clone(&runner.inner.platform);
            let (service, holder) = (runner.state.service.clone(), runner.state.id.clone());
            let out = runner.drive().await;
            if out.is_ok()
                && let Err(e) = platform.unlock(&service, &holder).await
            {
                tracing::warn!(deployment = %holder, "freeing the platform's deployment lock failed: {e}");
            }
            out
        });
        DeploymentHandle {
            id,
            commands: tx,
            status: status_rx,
            task,
        }
    }

    /// Starts deploying `service` by `config` and returns at once with a handle. One
    /// deployment per service at a time.
    pub async fn start(
        &self,
        config: &DeploymentConfig,
        service: &str,
    ) -> Result<DeploymentHandle> {
        self.start_restoring(config, service, None).await
    }

    /// [`start`](Self::start), restoring backup `restore` in preparation.
    async fn start_restoring(
        &self,
        config: &DeploymentConfig,
        service: &str,
        restore: Option<String>,
    ) -> Result<DeploymentHandle> {
        let guard = self.lock_service(service)?;
        let (backends, from, to) = self.prepare(config, service).await?;
        let now = self.inner.clock.now();
        let mut id = format!("{service}-{}-{}", to.version, now.as_millis());
        let known = self.inner.journal.deployments().await?;
        let mut n = 1;
        while known.contains(&id) {
            n += 1;
            id = format!("{service}-{}-{}-{n}", to.version, now.as_millis());
        }
        self.inner
            .platform
            .lock(service, &id)
            .await
            .map_err(|e| match e {
                Error::Conflict { reason, .. } => Error::conflict(
                    "run",
                    service,
                    format!("{reason}; resume it to finish it (or roll it back) first"),
                ),
                other => other,
            })?;
        if let Ok(st) = self.inner.platform.status(service, &to.track).await {
            let _ = self.inner.platform.unlock(service, &id).await;
            return Err(Error::conflict(
                "run",
                service,
                format!(
                    "track {} already runs {}: resume or finish the deployment that started it, or retire it",
                    to.track, st.version
                ),
            ));
        }
        let triggers = Engine::new(config.trigger_config()?, now)
            .map_err(|e| Error::invalid("deploymentConfig.triggers", "…", e.to_string()))?;
        let state = DeploymentState {
            id,
            service: service.to_owned(),
            config: config.clone(),
            strategy: config.strategy,
            from: from.clone(),
            to: to.clone(),
            stage: Stage::Validation,
            started_at: now,
            deadline: now.saturating_add(config.max_deployment_duration),
            paused: false,
            weight: 0.0,
            observed_until: now,
            promoted_at: None,
            canary: None,
            plan: None,
            triggers,
            backup: None,
            restore,
            canary_scale_follows_weight: false,
            checklist: Vec::new(),
            deadline_action: false,
            rollback_reason: None,
            outcome: None,
            next_event: 0,
        };
        let mut runner_state = state;
        let kinds = vec![
            EventKind::Started {
                strategy: config.strategy,
                from: from.map(|p| p.version.to_string()),
                to: to.version.to_string(),
            },
            EventKind::PhaseChanged {
                phase: Phase::Validation,
            },
        ];
        // The first record is written here, so a deployment exists in the journal as soon as
        // `start` returns.
        let (tx, rx) = mpsc::unbounded_channel();
        let (status_tx, _) = watch::channel(Status::of(&runner_state));
        let mut first = Runner {
            inner: Arc::clone(&self.inner),
            backends: backends.clone(),
            state: runner_state.clone(),
            seq: 0,
            commands: rx,
            _keep: tx,
            status: status_tx,
            sample: None,
        };
        if let Err(e) = first.commit(Vec::new(), kinds).await {
            let _ = self.inner.platform.unlock(service, &first.state.id).await;
            return Err(e);
        }
        runner_state = first.state.clone();
        let seq = first.seq;
        Ok(self.spawn(runner_state, seq, None, backends, guard))
    }

    /// Deploys every target service in turn, each to its end, and returns their reports. Stops
    /// after the first service that does not succeed.
    pub async fn run(&self, config: &DeploymentConfig) -> Result<Vec<Report>> {
        let mut out = Vec::new();
        for service in &config.target_services {
            let report = self.start(config, service).await?.wait().await?;
            let ok = report.outcome.as_ref().is_some_and(Outcome::is_success);
            out.push(report);
            if !ok {
                break;
            }
        }
        Ok(out)
    }

    /// Deployments whose journal does not end with a finished state (after a crash).
    pub async fn unfinished(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for id in self.inner.journal.deployments().await? {
            let records = self.inner.journal.records(&id).await?;
            if records.last().is_some_and(|r| !r.state.is_done()) {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// Resumes a deployment from its last journal record: carries out that record's effects
    /// again (they are idempotent), announces its events again (so none is lost; a subscriber
    /// may see the last ones twice, with the same sequence numbers), then continues — or rolls
    /// back when the config says `onResume: rollback`. Resuming a finished deployment only
    /// announces its final events again (a crash may have come between writing and announcing
    /// them) and returns its report.
    pub async fn resume(&self, deployment: &str) -> Result<DeploymentHandle> {
        let records = self.inner.journal.records(deployment).await?;
        let Some(last) = records.last().cloned() else {
            return Err(Error::not_found("deployment", deployment));
        };
        let state = last.state.clone();
        let guard = self.lock_service(&state.service)?;
        self.inner.platform.lock(&state.service, &state.id).await?;
        let backends = self.backends(&state.service)?;
        let seq = last.seq + 1;
        Ok(self.spawn(state, seq, Some(last), backends, guard))
    }

    /// The status of a deployment as its last journal record has it (running or not).
    pub async fn status(&self, deployment: &str) -> Result<Status> {
        let records = self.inner.journal.records(deployment).await?;
        records
            .last()
            .map(|r| Status::of(&r.state))
            .ok_or_else(|| Error::not_found("deployment", deployment))
    }

    /// The report of a deployment, from its journal.
    pub async fn report(&self, deployment: &str) -> Result<Report> {
        let records = self.inner.journal.records(deployment).await?;
        if records.is_empty() {
            return Err(Error::not_found("deployment", deployment));
        }
        Report::from_records(&records)
    }

    /// Deploys `version` of `service` back, by an immediate blue-green switch with the
    /// config's health gate and monitoring (the "rollback to version" of the brief).
    ///
    /// The database follows the code. A deployment's expand migrations run while the old
    /// version still serves, so they never stop it from working; its contract migrations run
    /// once the old version is gone and are destructive for it. When a deployment being undone
    /// (one that succeeded since `version` last ran) has a contract migration carried out or
    /// handed to an operator, the backup taken before the first deployment being undone is
    /// restored in preparation, after a fresh backup of the current database and before any
    /// traffic moves. Without that backup, or without a backup provider, or when the backup no
    /// longer exists or the provider's [`Retention`](crate::backup::Retention) would delete it
    /// as the fresh backup is taken, the rollback is refused with the reason, and nothing
    /// changes.
    pub async fn rollback_to(
        &self,
        config: &DeploymentConfig,
        service: &str,
        version: semver::Version,
    ) -> Result<Report> {
        self.start_rollback_to(config, service, version)
            .await?
            .wait()
            .await
    }

    /// [`rollback_to`](Self::rollback_to), returning at once with a handle (for progress, or
    /// to abort it).
    pub async fn start_rollback_to(
        &self,
        config: &DeploymentConfig,
        service: &str,
        version: semver::Version,
    ) -> Result<DeploymentHandle> {
        let restore = self.restore_point(service, &version).await?;
        if let Some(id) = &restore {
            let Some(backup) = &self.inner.backup else {
                return Err(Error::conflict(
                    "rollback",
                    service,
                    "a backup must be restored (destructive migrations ran since that version), \
                     and no backup provider is configured",
                ));
            };
            survives_fresh_backup(backup.as_ref(), service, id).await?;
        }
        let mut c = config.clone();
        c.version = version;
        c.strategy = StrategyKind::BlueGreen;
        c.blue_green_config.traffic_strategy = TrafficStrategyKind::Immediate;
        c.target_services = vec![service.to_owned()];
        self.start_restoring(&c, service, restore).await
    }

    /// The backup a rollback of `service` to `version` must restore, if any: see
    /// [`rollback_to`](Self::rollback_to). Refuses (an error) when one is needed and none exists.
    async fn restore_point(
        &self,
        service: &str,
        version: &semver::Version,
    ) -> Result<Option<String>> {
        let mut succeeded = Vec::new();
        for id in self.inner.journal.deployments().await? {
            let records = self.inner.journal.records(&id).await?;
            if let Some(last) = records.into_iter().last()
                && last.state.service == service
                && last.state.outcome.as_ref().is_some_and(Outcome::is_success)
            {
                succeeded.push(last.state);
            }
        }
        // The deployments being undone: those after the last one that left `version` running,
        // or else those since `version` was last replaced.
        let start = match succeeded.iter().rposition(|d| &d.to.version == version) {
            Some(i) => i + 1,
            None => succeeded
                .iter()
                .rposition(|d| d.from.as_ref().is_some_and(|f| &f.version == version))
                .unwrap_or(succeeded.len()),
        };
        let undone = &succeeded[start.min(succeeded.len())..];
        let destructive = undone.iter().find_map(|d| {
            d.checklist
                .iter()
                .find(|s| {
                    s.step.kind == serin_compat::steps::StepKind::ContractMigration
                        && matches!(s.status, StepStatus::Done | StepStatus::Due)
                })
                .map(|s| (d, s))
        });
        let Some((d, step)) = destructive else {
            return Ok(None);
        };
        let first = &undone[0];
        match &first.backup {
            Some(id) => Ok(Some(id.clone())),
            None => Err(Error::conflict(
                "rollback",
                service,
                format!(
                    "deployment {} ran a destructive migration ({}: {}) and deployment {} took no \
                     backup to restore; restore the database by hand, then deploy {version}",
                    d.id, step.status, step.step.text, first.id
                ),
            )),
        }
    }

    /// Deploys back the version that ran before the last successful deployment of `service`.
    pub async fn rollback(&self, config: &DeploymentConfig, service: &str) -> Result<Report> {
        let mut previous = None;
        for id in self.inner.journal.deployments().await? {
            let records = self.inner.journal.records(&id).await?;
            if let Some(last) = records.last()
                && last.state.service == service
                && last.state.outcome.as_ref().is_some_and(Outcome::is_success)
            {
                previous = last.state.from.as_ref().map(|p| p.version.clone());
            }
        }
        let Some(version) = previous else {
            return Err(Error::not_found("previous version of service", service));
        };
        self.rollback_to(config, service, version).await
    }
}

/// Refuses a rollback whose restore point is gone, or would be: the rollback takes a fresh
/// backup before it restores, and the provider's retention must not expire the backup to restore.
async fn survives_fresh_backup(backup: &dyn BackupProvider, service: &str, id: &str) -> Result<()> {
    let refuse = |why: String| {
        Err(Error::conflict(
            "rollback",
            service,
            format!("backup {id} must be restored, but {why}; restore the database by hand"),
        ))
    };
    if let Err(Error::NotFound { .. }) = backup.info(id).await {
        return refuse("it no longer exists".to_owned());
    }
    let Some(retention) = backup.retention() else {
        return Ok(());
    };
    let Ok(mut kept) = backup.list(service).await else {
        return Ok(());
    };
    let Some(target) = kept
        .iter()
        .find(|b| b.id == id)
        .map(|b| (b.created_at, b.id.clone()))
    else {
        return Ok(());
    };
    let newer = kept
        .iter()
        .filter(|b| (b.created_at, &b.id) > (target.0, &target.1))
        .count();
    kept.push(BackupInfo::new(
        "",
        service,
        "",
        Timestamp::from_millis(u64::MAX),
    ));
    if retention.expired(&kept).iter().any(|b| b.id == id) {
        return refuse(format!(
            "the backup taken first would make the retention (keepLast {}) delete it: {newer} \
             newer backups of {service} exist; raise keepLast to at least {}",
            retention.keep(),
            newer + 2
        ));
    }
    Ok(())
}
