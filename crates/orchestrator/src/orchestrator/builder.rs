//! Building an [`Orchestrator`]: its clock, each service's backends, and the hooks it calls.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serin_compat::{Fleet, Proposal, UpgradeValidation, Validator};
use serin_signals::{HealthSource, MetricsSource, Timestamp};
use serin_traffic::TrafficRouter;
use tokio::sync::broadcast;

use crate::error::Result;
use crate::event::Event;
use crate::hooks::{BackupProvider, Notifier, StepRunner};
use crate::journal::Journal;
use crate::platform::{Platform, TrackSpec};

use super::Orchestrator;

/// The most events a subscriber may fall behind by ([`OrchestratorBuilder::event_capacity`]).
const MAX_EVENT_CAPACITY: usize = 1 << 16;

/// How long a notifier call may take by default ([`OrchestratorBuilder::notify_timeout`]).
const DEFAULT_NOTIFY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a journal call outside a run may take by default
/// ([`OrchestratorBuilder::journal_timeout`]).
const DEFAULT_JOURNAL_TIMEOUT: Duration = Duration::from_secs(60);

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
    /// Routes the service's traffic between tracks named by [`Track::as_str`](serin_signals::Track::as_str).
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

/// The compatibility validator and what it takes as running: the fleet given to the builder,
/// with each service this orchestrator has since deployed at the version it deployed (so that
/// the second service of a run is validated against the first one's new version).
pub(crate) struct Validation {
    validator: Validator,
    fleet: Mutex<Fleet>,
}

impl Validation {
    /// Validates `proposal` against `fleet`.
    pub(crate) fn validate_on(
        &self,
        fleet: &Fleet,
        proposal: &Proposal,
    ) -> serin_compat::Result<UpgradeValidation> {
        self.validator.validate(fleet, proposal)
    }

    /// What runs now, as far as this orchestrator knows.
    pub(crate) fn fleet(&self) -> Fleet {
        crate::lock(&self.fleet).clone()
    }

    /// Records that `service` now runs `running` (none: nothing of it runs, and its next
    /// deployment is a first install).
    pub(crate) fn record(&self, service: &str, running: Vec<semver::Version>) {
        crate::lock(&self.fleet).set(service, running);
    }
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
    /// How long one notifier call may take before it is given up.
    pub(crate) notify_timeout: Duration,
    /// How many notifier calls were given up so far.
    pub(crate) notify_timeouts: AtomicU64,
    /// How long one journal call made outside a run may take before it is given up.
    pub(crate) journal_timeout: Duration,
    pub(crate) events: broadcast::Sender<Event>,
    pub(crate) locks: Mutex<BTreeSet<String>>,
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
    notify_timeout: Duration,
    journal_timeout: Duration,
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

    /// How long one call of the notifier may take (default 5 s). The deployment awaits each
    /// call, so that a channel gets its events in order; one that has not answered by then is
    /// dropped (cancelled), logged as a warning and counted
    /// ([`Orchestrator::notifications_timed_out`]), and the deployment goes on, as after a
    /// failed notification. A notifier is a courtesy, not a safety mechanism: a hung receiver
    /// must not hold up a rollback. A notifier that queues its deliveries (as the `notify`
    /// feature's `ChannelNotifier` does) answers at once and never meets this bound; one that
    /// sends inline should answer well within it. Zero gives up every call that does not
    /// answer at once.
    pub fn notify_timeout(mut self, timeout: Duration) -> Self {
        self.notify_timeout = timeout;
        self
    }

    /// How long one call into the journal made outside a run may take (default 1 minute):
    /// the reads of [`Orchestrator::resume`], [`abandon`](Orchestrator::abandon),
    /// [`status`](Orchestrator::status), [`report`](Orchestrator::report),
    /// [`unfinished`](Orchestrator::unfinished) and of the rollback commands
    /// ([`rollback`](Orchestrator::rollback), [`rollback_to`](Orchestrator::rollback_to)),
    /// made before any deployment's config gives a bound. One that has not answered by then
    /// is dropped and the command fails with [`Error::Timeout`](crate::Error::Timeout) naming
    /// the journal, the call and the bound, with nothing changed: a journal that hangs (a
    /// database behind a dead connection) must not hang the command for ever. A run's own
    /// journal calls are given its `maxDeploymentDuration` instead.
    pub fn journal_timeout(mut self, timeout: Duration) -> Self {
        self.journal_timeout = timeout;
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

    /// Validates every upgrade against `fleet` (what runs now) before anything changes. The
    /// orchestrator keeps the fleet up to date with its own deployments: once one succeeds, its
    /// service counts as running the new version alone. A [`run`](Orchestrator::run) of
    /// several services takes each target as the platform runs it when the run begins: one
    /// of which nothing runs counts as running nothing, whatever `fleet` said.
    pub fn validator(mut self, validator: Validator, fleet: Fleet) -> Self {
        self.validator = Some(Validation {
            validator,
            fleet: Mutex::new(fleet),
        });
        self
    }

    /// The clock (default: the wall clock, advanced by `tokio::time`).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// How many events a slow subscriber may fall behind before it misses some (default 4096;
    /// taken between 1 and 65,536, since every slot is allocated up front). A subscriber that
    /// must see every event reads them back from the journal.
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.clamp(1, MAX_EVENT_CAPACITY);
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
                notify_timeout: self.notify_timeout,
                notify_timeouts: AtomicU64::new(0),
                journal_timeout: self.journal_timeout,
                events,
                locks: Mutex::new(BTreeSet::new()),
            }),
        }
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
            notify_timeout: DEFAULT_NOTIFY_TIMEOUT,
            journal_timeout: DEFAULT_JOURNAL_TIMEOUT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InMemoryJournal, InMemoryPlatform};

    #[tokio::test]
    async fn any_event_capacity_builds() {
        // tokio's channel panics past `usize::MAX / 2` and allocates every slot up front.
        for capacity in [0, 1, 4_096, usize::MAX / 2 + 1, usize::MAX] {
            let o = Orchestrator::builder(
                Arc::new(InMemoryPlatform::new()),
                Arc::new(InMemoryJournal::new()),
            )
            .event_capacity(capacity)
            .build();
            let _events = o.subscribe();
        }
    }
}
