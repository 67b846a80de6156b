//! [`Orchestrator`]: plans, starts, resumes and reports deployments; [`DeploymentHandle`]:
//! operates one that runs (promote, abort, pause, resume, status).

mod builder;
mod handle;
mod plan;
mod rollback;

pub(crate) use builder::Inner;
pub use builder::{Clock, OrchestratorBuilder, ServiceBackends, SpecFn};
pub use handle::{DeploymentHandle, Status};
use handle::{LockGuard, Unwaited};
pub use plan::DeploymentPlan;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serin_compat::Fleet;
use serin_signals::Track;
use serin_traffic::TrafficRouter;
use serin_triggers::Engine;
use tokio::sync::{broadcast, mpsc, watch};

use crate::config::{DeploymentConfig, StrategyKind, human};
use crate::error::{Error, Result};
use crate::event::{Event, EventKind, Phase};
use crate::journal::{Journal, Record};
use crate::lock;
use crate::platform::{Platform, TrackKey, TrackStatus};
use crate::report::Report;
use crate::run::{Resumption, Runner};
use crate::state::{DeploymentState, Outcome, Placement, Stage};

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
    /// Every event of every deployment from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// The orchestrator's clock.
    pub fn clock(&self) -> Clock {
        self.inner.clock
    }

    /// How many notifier calls, over every deployment this orchestrator ran, were given up
    /// because they did not answer within
    /// [`notify_timeout`](OrchestratorBuilder::notify_timeout). Each is logged as a warning
    /// too; a rising count means a receiver that holds up deployments.
    pub fn notifications_timed_out(&self) -> u64 {
        self.inner
            .notify_timeouts
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `call`, into the journal, `doing` something outside a run, given
    /// [`journal_timeout`](OrchestratorBuilder::journal_timeout) to answer: no deployment's
    /// config gives a bound yet.
    async fn on_journal<T>(&self, doing: &str, call: impl Future<Output = Result<T>>) -> Result<T> {
        let journal = self.inner.journal.as_ref();
        let limit = self.inner.journal_timeout;
        let who = format!("journal `{}`", journal.name());
        let why = format!(
            "a journal call outside a run is given the orchestrator's journal timeout ({})",
            human(limit)
        );
        bounded(&who, doing, limit, why, call).await
    }

    /// The records of `deployment`, read outside a run (see [`on_journal`](Self::on_journal)).
    async fn records(&self, deployment: &str) -> Result<Vec<Record>> {
        let doing = format!("reading the records of {deployment}");
        self.on_journal(&doing, self.inner.journal.records(deployment))
            .await
    }

    /// The last record of every deployment, read outside a run (see
    /// [`on_journal`](Self::on_journal)).
    async fn last_records(&self) -> Result<Vec<Record>> {
        let doing = "reading the last record of every deployment";
        self.on_journal(doing, self.inner.journal.last_records())
            .await
    }

    fn backends(&self, service: &str) -> Result<ServiceBackends> {
        self.inner
            .services
            .get(service)
            .cloned()
            .ok_or_else(|| Error::not_found("service backends", service))
    }

    /// What runs now: the track taking most traffic, or the only track of the service. Each
    /// call into the router and the platform is given `limit` to answer (see [`within`]).
    async fn current(
        &self,
        service: &str,
        backends: &ServiceBackends,
        limit: Duration,
    ) -> Result<Option<Placement>> {
        let router = &backends.router;
        let split = within(
            &format!("router `{}`", router.name()),
            limit,
            &format!("reading the traffic split of {service}"),
            async {
                router
                    .current()
                    .await
                    .map_err(|e| Error::backend("router", router.name(), e))
            },
        )
        .await?;
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
                let platform = self.inner.platform.as_ref();
                let listing = on_platform(platform, limit, "listing the tracks", platform.list());
                let tracks: Vec<_> = listing
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
        let status = status_within(self.inner.platform.as_ref(), service, &track, limit).await?;
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
                "is not one of targetServices",
            ));
        }
        let backends = self.backends(service)?;
        let limit = config.max_deployment_duration;
        let from = self.current(service, &backends, limit).await?;
        let track = Self::new_track(config.strategy, from.as_ref());
        if let Some(old) = &from {
            check_weights(config, &backends.router, &old.track, &track)?;
        }
        Ok((
            backends,
            from,
            Placement {
                track,
                version: config.version.clone(),
            },
        ))
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
        resumption: Option<Resumption>,
        backends: ServiceBackends,
        guard: LockGuard,
    ) -> DeploymentHandle {
        let id = state.id.clone();
        let announced = resumption.as_ref().map_or(0.0, |r| r.announced);
        let (runner, tx, status_rx) = self.runner(state, seq, announced, backends);
        let task = tokio::spawn(async move {
            let _guard = guard;
            let mut runner = runner;
            if let Some(resumption) = resumption {
                // Before any stage runs again: the split, the last record's effects and
                // events, and `onResume`, each journalled as an uninterrupted run would.
                runner.resume_from(resumption).await?;
            }
            // A deployment that ends frees the platform's lock (see `Runner::drive`); one cut
            // short (a journal failure, or `kill`) keeps it until it is resumed.
            runner.drive().await
        });
        DeploymentHandle {
            id,
            commands: tx,
            status: status_rx,
            task,
        }
    }

    /// A runner of `state`, whose next record is `seq`, with the channels its handle holds.
    fn runner(
        &self,
        state: DeploymentState,
        seq: u64,
        announced: f64,
        backends: ServiceBackends,
    ) -> (
        Runner,
        mpsc::UnboundedSender<(crate::run::Operation, crate::run::Reply)>,
        watch::Receiver<Status>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (status_tx, status_rx) = watch::channel(Status::of(&state));
        let runner = Runner {
            inner: Arc::clone(&self.inner),
            backends,
            state,
            seq,
            commands: rx,
            requeue: tx.clone(),
            status: status_tx,
            sample: None,
            unreadable: Default::default(),
            announced,
            split_unknown: Default::default(),
            watch_saw_data: None,
            unfed_told: Default::default(),
        };
        (runner, tx, status_rx)
    }

    /// Starts deploying `service` by `config` and returns at once with a handle. One
    /// deployment per service at a time.
    ///
    /// Each call it makes into the router and the platform, and the journal's listing of the
    /// deployments, is given the config's `maxDeploymentDuration` to answer: one that does not
    /// refuses the start with [`Error::Timeout`] naming it, and any deployment lock it took
    /// is freed. Freeing it is given 30 s more (`maxDeploymentDuration` if shorter), not a
    /// whole `maxDeploymentDuration` again; a lock not freed by then is named in the
    /// deployment's end, an anomaly in its report naming the deployment whose resume frees it.
    ///
    /// The deployment's first record is journalled before the platform's deployment lock of
    /// the service is taken, so that a crash between the two leaves a deployment to
    /// [`resume`](Self::resume) (which takes the lock) or [`abandon`](Self::abandon), never a
    /// lock that no deployment in the journal holds. A start refused after that record (the
    /// lock held by another deployment, the new track already running, the platform not
    /// answering) ends the deployment as failed with the reason, journalled and announced,
    /// and returns that refusal; one refused before it (the config, the backends, the router,
    /// the journal's listing) journals nothing.
    ///
    /// A deployment whose weights the service's router cannot take (a blue-green switch's
    /// steps, a canary's weights, off the router's
    /// [`weight_granularity`](serin_traffic::Capabilities::weight_granularity)) is refused
    /// before anything moves, naming the config field, the step, the weight and the
    /// granularity: the router would refuse it only once the new track is up.
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
        let journal = self.inner.journal.as_ref();
        let who = format!("journal `{}`", journal.name());
        let limit = config.max_deployment_duration;
        let known = within(
            &who,
            limit,
            "listing the deployments",
            journal.deployments(),
        )
        .await?;
        let mut n = 1;
        while known.contains(&id) {
            n += 1;
            id = format!("{service}-{}-{}-{n}", to.version, now.as_millis());
        }
        let triggers = Engine::new(config.trigger_config()?, now)
            .map_err(|e| Error::invalid("triggers", "…", e.to_string()))?;
        let mut runner_state = DeploymentState::new(
            id,
            service.to_owned(),
            config.clone(),
            from.clone(),
            to.clone(),
            triggers,
            now,
        );
        runner_state.restore = restore;
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
        // `start` returns, and before the platform's lock is taken: a deployment holding the
        // lock is always one the journal knows, so a crash between the two leaves one to
        // resume or abandon, not a lock that nothing can free.
        let (tx, rx) = mpsc::unbounded_channel();
        let (status_tx, _) = watch::channel(Status::of(&runner_state));
        let mut first = Runner {
            inner: Arc::clone(&self.inner),
            backends: backends.clone(),
            state: runner_state.clone(),
            seq: 0,
            commands: rx,
            requeue: tx,
            status: status_tx,
            sample: None,
            unreadable: Default::default(),
            announced: 0.0,
            split_unknown: Default::default(),
            watch_saw_data: None,
            unfed_told: Default::default(),
        };
        first.commit(Vec::new(), kinds).await?;
        let platform = self.inner.platform.as_ref();
        if let Err(refused) = claim(platform, service, &to.track, &first.state.id, limit).await {
            let Refused { error, lock_left } = *refused;
            // Journalled as failed, or it would be found unfinished.
            if let Err(j) = first.refused(error.to_string(), lock_left).await {
                tracing::warn!(deployment = %first.state.id, "journalling the refused start failed: {j}");
            }
            return Err(error);
        }
        runner_state = first.state.clone();
        let seq = first.seq;
        Ok(self.spawn(runner_state, seq, None, backends, guard))
    }

    /// Deploys the target services, each to its end, and returns their reports in the order
    /// they were started. Without a validator, or with one target, the services go one after
    /// the other in the config's order, and the run stops after the first that does not
    /// succeed.
    ///
    /// With a validator and several target services, the set is validated as a whole before
    /// anything moves, from the version the platform runs of each target (a fleet given to the
    /// builder may be out of date), and a set that no order lets through is an
    /// [`Error::Blocked`] naming the findings, with nothing started. A target whose running
    /// version cannot be read refuses the run with the error [`start`](Self::start) would
    /// give, with nothing started. Otherwise the services are deployed group by group
    /// in the validator's rollout order (a service whose new version needs another's new
    /// version comes in a later group): the services of a group may move in either order, so
    /// they are deployed **at the same time**, and the next group starts once all of them
    /// have succeeded. When one of them does not succeed, the others of its group still run
    /// to their end and no later group starts. Each deployment is also validated alone, when
    /// it starts, against the fleet the set was validated against, as the groups before it
    /// left it.
    ///
    /// A run of several target services in which the start of any would be refused (a
    /// deployment of it that has not finished, running here or cut short and holding the
    /// platform's lock; its new track running already) is refused as a whole with
    /// [`Error::Conflict`] naming that target and why, before anything moves: an unfinished
    /// deployment may yet roll back, and a service that needs its new version must not be
    /// deployed over it meanwhile.
    ///
    /// An error (a deployment that cannot start, an executor that stops) is returned once every
    /// deployment of its group has ended; their reports stay in the journal.
    ///
    /// Dropping the run before it returns (a timeout, a `select!` on Ctrl-C) aborts every
    /// deployment it started that has not ended, as [`DeploymentHandle::abort`] does: each
    /// rolls back (or, before any change, ends as failed) in its own task, journalled and
    /// announced, its report in the journal; no later group starts. Without that, nothing
    /// could stop them: their handles go with the run, and [`resume`](Self::resume) and
    /// [`abandon`](Self::abandon) refuse a deployment this orchestrator runs. A deployment
    /// whose start was under way when the run was dropped may be left cut short, to be resumed
    /// or abandoned.
    pub async fn run(&self, config: &DeploymentConfig) -> Result<Vec<Report>> {
        let mut out = Vec::new();
        let (groups, running) = self.rollout_groups(config).await?;
        if let Some((service, why)) = self.run_refusal(config).await? {
            return Err(Error::conflict(
                "run",
                service,
                format!(
                    "{why}; no target of the run ({}) starts until then",
                    config.target_services.join(", ")
                ),
            ));
        }
        if let (Some(v), Some(running)) = (&self.inner.validator, running) {
            // Each deployment is validated alone too, against the validator's fleet: it learns
            // what runs, or a service of a group would be checked against a version of another
            // that no longer runs. A target that runs nothing runs no version, whatever the
            // fleet said: its deployment is a first install.
            for service in &config.target_services {
                v.record(service, running.running(service).to_vec());
            }
        }
        for group in groups {
            // Dropped with the run, it aborts the deployments that have not ended.
            let mut unwaited = Unwaited::default();
            let mut refused = None;
            for service in &group {
                match self.start(config, service).await {
                    Ok(handle) => unwaited.0.push_back(handle),
                    Err(e) => {
                        refused = Some(e);
                        break;
                    }
                }
            }
            // Each deployment runs in its own task: waiting for them in turn waits for all.
            let mut failed = None;
            while let Some(handle) = unwaited.0.front_mut() {
                match handle.finished().await {
                    Ok(report) => out.push(report),
                    Err(e) => failed = failed.or(Some(e)),
                }
                unwaited.0.pop_front();
            }
            if let Some(e) = refused.or(failed) {
                return Err(e);
            }
            if !out
                .iter()
                .all(|r| r.outcome.as_ref().is_some_and(Outcome::is_success))
            {
                break;
            }
        }
        Ok(out)
    }

    /// The groups [`run`](Self::run) deploys the target services in (see there), and, when
    /// the set was validated as a whole, the fleet it was validated against: the validator's,
    /// with each target at the version the platform runs it (see
    /// [`running_fleet`](Self::running_fleet)).
    pub(crate) async fn rollout_groups(
        &self,
        config: &DeploymentConfig,
    ) -> Result<(Vec<Vec<String>>, Option<Fleet>)> {
        let targets = &config.target_services;
        let one_by_one = || targets.iter().map(|s| vec![s.clone()]).collect();
        let Some(v) = self.inner.validator.as_ref().filter(|_| targets.len() > 1) else {
            return Ok((one_by_one(), None));
        };
        let fleet = self.running_fleet(v.fleet(), config).await?;
        let proposal = targets.iter().fold(serin_compat::Proposal::new(), |p, s| {
            p.with(s.clone(), config.version.clone())
        });
        let blocked = |reason: String| Error::Blocked {
            service: targets.join(", "),
            version: config.version.to_string(),
            reason,
        };
        let validation = v
            .validate_on(&fleet, &proposal)
            .map_err(|e| blocked(e.to_string()))?;
        if !validation.is_allowed() {
            let findings: Vec<String> = validation
                .findings_at_least(serin_compat::Severity::Error)
                .map(serin_compat::Finding::one_line)
                .collect();
            return Err(blocked(findings.join("; ")));
        }
        let mut groups: Vec<Vec<String>> = validation
            .order
            .iter()
            .map(|g| g.iter().map(|m| m.service.clone()).collect())
            .collect();
        // A service already at the version has no move; it comes last, alone.
        for s in targets {
            if !groups.iter().flatten().any(|g| g == s) {
                groups.push(vec![s.clone()]);
            }
        }
        Ok((groups, Some(fleet)))
    }

    /// `fleet` with each target service of `config` at the version the platform runs it (none
    /// before its first install), read as [`start`](Self::start) reads it: a fleet given
    /// before the last restart, or before a change made by hand, would have the set validated
    /// and ordered from versions that no longer run. Nothing falls back to the fleet: a target
    /// without backends, or whose router or platform fails, is the error `start` would give,
    /// and one whose router or platform does not answer within `maxDeploymentDuration` an
    /// [`Error::Timeout`] naming the service and the call.
    async fn running_fleet(&self, mut fleet: Fleet, config: &DeploymentConfig) -> Result<Fleet> {
        for service in &config.target_services {
            let backends = self.backends(service)?;
            let limit = config.max_deployment_duration;
            let from = self.current(service, &backends, limit).await?;
            set_running(&mut fleet, service, from.as_ref());
        }
        Ok(fleet)
    }

    /// What the validator takes as running (`None` without a validator): the fleet given to
    /// the builder, with each service this orchestrator has since deployed at its new version,
    /// and each target of a [`run`](Self::run) of several services at the version the
    /// platform ran it when that run began.
    pub fn fleet(&self) -> Option<serin_compat::Fleet> {
        self.inner.validator.as_ref().map(|v| v.fleet())
    }

    /// Deployments whose journal does not end with a finished state (after a crash).
    pub async fn unfinished(&self) -> Result<Vec<String>> {
        Ok(self
            .last_records()
            .await?
            .into_iter()
            .filter(|r| !r.state.is_done())
            .map(|r| r.deployment)
            .collect())
    }

    /// Resumes a deployment from its last journal record. First the traffic split: the one the
    /// journal has in force (the last one the deployment applied) is read back from the router
    /// and applied again if the router holds another or none (an embedded proxy that restarted
    /// with the process, a split that drifted); before the deployment applied any, the split it
    /// started under is put back only if the router lost its split. Then the last record's
    /// effects are carried out again (they are idempotent) and its events announced again (a
    /// subscriber may see them twice, with the same sequence numbers); a share of traffic they
    /// give the new version that the deployment had not announced yet (the crash came between
    /// applying it and announcing it) is announced then, in a record of its own, as is the
    /// share the record's decision set even when it equals the one announced before (a canary
    /// stage entered at 0%), as an uninterrupted run announces it. If carrying
    /// them out fails, the deployment goes on as an uninterrupted run whose step failed: with
    /// `rollbackOnError` it rolls back, otherwise it ends as failed — journalled and announced
    /// either way. Then it continues, or, when the config says `onResume: rollback`, starts a
    /// rollback, journalled and announced like an operator's abort. Resuming a finished
    /// deployment only announces its final events again (a crash may have come between
    /// writing and announcing them), records a success's version in the validator's fleet
    /// (see [`fleet`](Self::fleet)), frees the platform's deployment lock if its end could
    /// not (an anomaly in its report says so), and returns its report; it touches no split.
    ///
    /// Events: a record's events are announced once its effects were carried out, and the
    /// next record is written only after that, so a crash can keep only the last record's
    /// events from subscribers, and those are announced again here. Notifications are
    /// delivered at most once across a crash, except the last record's events, which are sent
    /// again: a [`Notifier`](crate::Notifier) may deliver in the background (the
    /// `notify::ChannelNotifier` of feature `notify` queues and retries in memory), and
    /// what it still held for earlier records when the process died is lost. The report's
    /// timeline, read from the journal, has every event.
    ///
    /// A record edited by hand or damaged is refused with the field and the reason, and
    /// nothing moves: one whose configuration no longer validates, or whose fields disagree
    /// (see [`Record::check_restored`](crate::Record::check_restored)). A record written by a
    /// clock ahead of this one is observed from now, so the new version is watched at once,
    /// and an arm it says began taking traffic later than now began now.
    ///
    /// The weights the deployment has still to set (the rest of a blue-green switch's plan, the
    /// canary's remaining steps, all of them before either began) are checked against the
    /// router it resumes with, as [`start`](Self::start) checks them: a router swapped since
    /// for a coarser one (a Service selector's all-or-nothing switch) refuses the resume with
    /// the field, the step, the weight and the granularity, before anything moves, and the
    /// deployment stays unfinished, to be resumed once its router takes them.
    ///
    /// The platform's deployment lock is taken back within `maxDeploymentDuration` (taken, by
    /// a deployment cut short between its first record and the lock): a platform that does not
    /// answer refuses the resume with [`Error::Timeout`], and the lock stays the deployment's,
    /// as it was since it was cut short. One another deployment holds refuses the resume with
    /// [`Error::Conflict`] naming it, and nothing moves.
    pub async fn resume(&self, deployment: &str) -> Result<DeploymentHandle> {
        let records = self.records(deployment).await?;
        let Some((last, earlier)) = records.split_last() else {
            return Err(Error::not_found("deployment", deployment));
        };
        last.check_restored()?;
        let resumption = Resumption::of(last.clone(), earlier)?;
        let mut state = last.state.clone();
        let now = self.inner.clock.now();
        if state.observed_until > now {
            // The record was written by a clock ahead of this one: the next window starts
            // now, or nothing would watch the new version until this clock caught up.
            tracing::warn!(
                deployment = %state.id,
                ahead_ms = state.observed_until.as_millis() - now.as_millis(),
                "the journal's last observation is ahead of this clock; observing from now"
            );
            state.observed_until = now;
        }
        // Likewise when an arm began taking traffic: the grace its triggers get from then
        // would otherwise last until this clock caught up, with missing data excused.
        for since in [
            &mut state.canary_traffic_since,
            &mut state.baseline_traffic_since,
        ] {
            if since.is_some_and(|t| t > now) {
                *since = Some(now);
            }
        }
        let backends = self.backends(&state.service)?;
        check_remaining_weights(&state, &backends.router)?;
        let guard = self.lock_service(&state.service)?;
        let limit = state.config.max_deployment_duration;
        // Not freed if it does not answer in time: the deployment, cut short, keeps its
        // service locked until it is resumed or abandoned, so the lock is its own either way.
        lock_within(
            self.inner.platform.as_ref(),
            &state.service,
            &state.id,
            limit,
        )
        .await?;
        let seq = last.seq + 1;
        Ok(self.spawn(state, seq, Some(resumption), backends, guard))
    }

    /// Ends a deployment that was cut short (its process crashed or was killed) and that will
    /// not be resumed, as failed with `reason`: journalled and announced (events and
    /// notifications) like any other end, so that its report, its status and the journal's
    /// compaction see it finished, and the platform's deployment lock it kept is freed.
    ///
    /// Nothing else moves: no split, no track. It is for a caller that has already put the
    /// service back as it wants it, where [`resume`](Self::resume) cannot finish the run — on
    /// the embedded backend the tracks' processes end with the process that ran them, so
    /// there is nothing left to switch back. A deployment that has ended is refused, and so is
    /// one this orchestrator is running (abort it instead), or one whose platform lock another
    /// deployment holds; nothing is written then. A run of the same deployment in another
    /// process holds the same lock (the holder is the deployment's id), so the caller makes
    /// sure none is left (`serin-cli` abandons only while it holds its state directory).
    pub async fn abandon(&self, deployment: &str, reason: &str) -> Result<Report> {
        let records = self.records(deployment).await?;
        let Some(last) = records.last() else {
            return Err(Error::not_found("deployment", deployment));
        };
        if last.state.is_done() {
            return Err(Error::conflict(
                "abandon",
                deployment,
                "the deployment has already ended; only one cut short can be abandoned",
            ));
        }
        last.check_restored()?;
        let state = last.state.clone();
        let (service, id) = (state.service.clone(), state.id.clone());
        let _guard = self.lock_service(&service)?;
        let (platform, limit) = (
            self.inner.platform.as_ref(),
            state.config.max_deployment_duration,
        );
        // Kept if it does not answer in time, as in `resume`.
        lock_within(platform, &service, &id, limit).await?;
        let backends = self.backends(&service)?;
        let (runner, _, _) = self.runner(state, last.seq + 1, 0.0, backends);
        runner.abandon(reason).await?;
        self.report(deployment).await
    }

    /// The status of a deployment as its last journal record has it (running or not).
    pub async fn status(&self, deployment: &str) -> Result<Status> {
        let records = self.records(deployment).await?;
        records
            .last()
            .map(|r| Status::of(&r.state))
            .ok_or_else(|| Error::not_found("deployment", deployment))
    }

    /// The report of a deployment, from its journal.
    pub async fn report(&self, deployment: &str) -> Result<Report> {
        let records = self.records(deployment).await?;
        if records.is_empty() {
            return Err(Error::not_found("deployment", deployment));
        }
        Report::from_records(&records)
    }
}

/// Checks that `router` can take every weight a deployment by `config` from `old` to `new`
/// would give it (its [`weight_granularity`](serin_traffic::Capabilities::weight_granularity)):
/// each step of a blue-green switch's plan, each canary weight. The router would refuse one
/// off it only once the new track is up; this refuses it before anything moves. (A first
/// install moves all traffic at once, which every router takes.)
fn check_weights(
    config: &DeploymentConfig,
    router: &Arc<dyn TrafficRouter>,
    old: &Track,
    new: &Track,
) -> Result<()> {
    let granularity = router.capabilities().weight_granularity();
    if config.strategy != StrategyKind::BlueGreen {
        return config
            .canary_config
            .check_granularity(granularity, router.name(), 0);
    }
    let start = crate::run::split_all(old, Some(new))?;
    config
        .blue_green_config
        .plan_on(&start, new.as_str(), granularity, router.name())
        .map(drop)
}

/// Checks that `router` can take every weight the deployment in `state`, being resumed, has
/// still to set, as [`check_weights`] does at the start: before its switch or canary began,
/// all of them; in a blue-green switch, the plan's steps after the last applied; in a canary,
/// the weights of its steps from the current one. A rollback moves all traffic back, which
/// every router takes, and the promotion all of it to the new version.
fn check_remaining_weights(state: &DeploymentState, router: &Arc<dyn TrafficRouter>) -> Result<()> {
    let granularity = router.capabilities().weight_granularity();
    match (state.stage, &state.from, &state.plan, &state.canary) {
        (
            Stage::Validation | Stage::Preparation | Stage::BringUp | Stage::WaitReady,
            Some(old),
            ..,
        ) => check_weights(&state.config, router, &old.track, &state.to.track),
        (Stage::Switch, _, Some(run), _) => {
            let next = run.cursor.last_applied().map_or(0, |i| i + 1);
            let off = (run.plan.steps().iter().enumerate().skip(next)).find_map(|(i, s)| {
                let w = s.split().weight_of(state.to.track.as_str())?;
                (!w.bps().is_multiple_of(granularity.bps().max(1))).then_some((i, w))
            });
            off.map_or(Ok(()), |(i, w)| {
                Err(Error::invalid(
                    "blueGreenConfig.trafficStrategy",
                    w,
                    format!(
                        "step {i} of the switch's plan would set the new version's weight to \
                         {w}, but router `{}` takes weights only in multiples of its \
                         granularity {granularity}; resume once the service's router takes them",
                        router.name()
                    ),
                ))
            })
        }
        (Stage::Canary, _, _, Some(run)) => state.config.canary_config.check_granularity(
            granularity,
            router.name(),
            run.controller.step(),
        ),
        _ => Ok(()),
    }
}

/// Sets `service` in `fleet` to the version that runs (`from`; none before a first install)
/// where the fleet says otherwise.
pub(crate) fn set_running(fleet: &mut Fleet, service: &str, from: Option<&Placement>) {
    let running: Vec<_> = from.iter().map(|p| p.version.clone()).collect();
    if fleet.running(service) != running.as_slice() {
        fleet.set(service, running);
    }
}

/// `call`, into `who` ("platform `process`"), `doing` something, given `limit` to answer:
/// [`Error::Timeout`] naming them and the bound when it does not, the call dropped. The calls
/// made before a deployment runs (or after it ended) have no deadline and no abort of their
/// own; `limit` is the config's `maxDeploymentDuration`, which bounds them in the deployment.
async fn within<T>(
    who: &str,
    limit: Duration,
    doing: &str,
    call: impl Future<Output = Result<T>>,
) -> Result<T> {
    let why = format!("maxDeploymentDuration ({}) ran out", human(limit));
    bounded(who, doing, limit, why, call).await
}

/// `call`, into `who`, `doing` something, given `limit` to answer: [`Error::Timeout`]
/// naming them, the bound and `why` it is the bound when it does not, the call dropped.
pub(crate) async fn bounded<T>(
    who: &str,
    doing: &str,
    limit: Duration,
    why: String,
    call: impl Future<Output = Result<T>>,
) -> Result<T> {
    tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
        Err(Error::Timeout {
            what: format!("an answer of {who} to {doing}"),
            after: limit,
            reason: why,
        })
    })
}

/// [`within`], for a call into `platform`.
async fn on_platform<T>(
    platform: &dyn Platform,
    limit: Duration,
    doing: &str,
    call: impl Future<Output = Result<T>>,
) -> Result<T> {
    within(
        &format!("platform `{}`", platform.name()),
        limit,
        doing,
        call,
    )
    .await
}

/// The status of a track, given `limit` to answer.
async fn status_within(
    platform: &dyn Platform,
    service: &str,
    track: &Track,
    limit: Duration,
) -> Result<TrackStatus> {
    let doing = format!("the status of {}", TrackKey::new(service, track));
    on_platform(platform, limit, &doing, platform.status(service, track)).await
}

/// Takes the platform's deployment lock of `service` for `holder`, given `limit` to answer.
async fn lock_within(
    platform: &dyn Platform,
    service: &str,
    holder: &str,
    limit: Duration,
) -> Result<()> {
    let doing = format!("taking the deployment lock of {service}");
    on_platform(platform, limit, &doing, platform.lock(service, holder)).await
}

/// A start refused by [`claim`], right after its first record: why, and, when the deployment
/// lock it took (or may have taken) could not be freed, why not.
struct Refused {
    error: Error,
    lock_left: Option<Error>,
}

impl From<Error> for Box<Refused> {
    fn from(error: Error) -> Self {
        Box::new(Refused {
            error,
            lock_left: None,
        })
    }
}

/// How long freeing the deployment lock of a refused start is given at most. The refusal
/// mostly comes from a call that had a whole `maxDeploymentDuration` already (one that did not
/// answer): a second one for the clean-up would have the start take twice its bound.
const CLEAN_UP_LIMIT: Duration = Duration::from_secs(30);

/// Takes the deployment lock of `service` for `holder`, a deployment that does not exist yet.
/// A lock call dropped before it answered may have taken the lock (see [`Platform`]), so one
/// that did not answer in time is freed (see [`free_refused`]): `holder` is new, so the lock,
/// if taken, is no one else's, and freeing it frees nothing another holder holds.
async fn lock_new(
    platform: &dyn Platform,
    service: &str,
    holder: &str,
    limit: Duration,
) -> Result<(), Box<Refused>> {
    match lock_within(platform, service, holder, limit).await {
        Err(error @ Error::Timeout { .. }) => {
            let lock_left = free_refused(platform, service, holder, limit).await;
            Err(Box::new(Refused { error, lock_left }))
        }
        locked => Ok(locked?),
    }
}

/// Takes the deployment lock of `service` for `holder`, a deployment just journalled, and
/// checks that its new `track` does not run yet (any error but a timeout is a track that does
/// not run; one that did not answer may run). The lock is freed when either fails (see
/// [`free_refused`]).
async fn claim(
    platform: &dyn Platform,
    service: &str,
    track: &Track,
    holder: &str,
    limit: Duration,
) -> Result<(), Box<Refused>> {
    lock_new(platform, service, holder, limit)
        .await
        .map_err(|mut refused| {
            if let Error::Conflict { reason, .. } = &refused.error {
                refused.error = Error::conflict(
                    "run",
                    service,
                    format!("{reason}; resume it to finish it (or roll it back) first"),
                );
            }
            refused
        })?;
    let error = match status_within(platform, service, track, limit).await {
        Ok(st) => Error::conflict(
            "run",
            service,
            format!(
                "track {track} already runs {}: resume or finish the deployment that started it, or retire it",
                st.version
            ),
        ),
        Err(e @ Error::Timeout { .. }) => e,
        Err(_) => return Ok(()),
    };
    let lock_left = free_refused(platform, service, holder, limit).await;
    Err(Box::new(Refused { error, lock_left }))
}

/// Frees the deployment lock a refused start took, or may have taken, as [`unlock`] does but
/// within [`CLEAN_UP_LIMIT`] (or `limit`, the start's `maxDeploymentDuration`, if shorter):
/// why it could not, when it could not.
async fn free_refused(
    platform: &dyn Platform,
    service: &str,
    holder: &str,
    limit: Duration,
) -> Option<Error> {
    let bound = limit.min(CLEAN_UP_LIMIT);
    let why = format!(
        "freeing the lock of a refused start is given {} after the call that refused it",
        human(bound)
    );
    let freed = unlock_within(platform, service, holder, bound, why).await;
    freed
        .inspect_err(|e| {
            tracing::warn!(deployment = %holder, "freeing the platform's deployment lock failed: {e}");
        })
        .err()
}

/// How many times in all the platform is asked to free a deployment lock.
const UNLOCK_ATTEMPTS: u32 = 4;
/// The wait before asking again to free a deployment lock, doubled after each failure.
const UNLOCK_BACKOFF: Duration = Duration::from_secs(1);

/// Frees the platform's deployment lock of `service` held by `holder`, all within `limit`.
///
/// A failed call is made again, [`UNLOCK_ATTEMPTS`] times in all, [`UNLOCK_BACKOFF`] after
/// the first failure and twice as long after each next: a lock left held refuses every later
/// deployment of the service, and a platform's failure is often brief (a Lease another writer
/// changed at the same moment, an API server restarting). A call that does not answer had the
/// whole `limit`, and is not made again.
pub(crate) async fn unlock(
    platform: &dyn Platform,
    service: &str,
    holder: &str,
    limit: Duration,
) -> Result<()> {
    let why = format!("maxDeploymentDuration ({}) ran out", human(limit));
    unlock_within(platform, service, holder, limit, why).await
}

/// [`unlock`], all within `limit`, `why` it is the bound.
async fn unlock_within(
    platform: &dyn Platform,
    service: &str,
    holder: &str,
    limit: Duration,
    why: String,
) -> Result<()> {
    let doing = format!("freeing the deployment lock of {service}");
    let retried = async {
        let mut backoff = UNLOCK_BACKOFF;
        for _ in 1..UNLOCK_ATTEMPTS {
            match platform.unlock(service, holder).await {
                Ok(()) => return Ok(()),
                Err(e) => tracing::debug!(
                    deployment = %holder,
                    "freeing the platform's deployment lock failed, asking again in {backoff:?}: {e}"
                ),
            }
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
        platform.unlock(service, holder).await
    };
    let who = format!("platform `{}`", platform.name());
    bounded(&who, &doing, limit, why, retried).await
}
