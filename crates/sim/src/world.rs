//! [`SimWorld`]: the shared simulated world, its virtual clock and its fleet.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use serin_orchestrator::{InstanceStatus, TrackKey, TrackStatus};
use serin_signals::{
    Counts, HealthSignal, InMemoryHealth, InMemorySource, LatencySketch, Observation, ProbeStatus,
    Timestamp, Track, Window,
};
use serin_traffic::TrafficSplit;

use crate::config::{DEFAULT_START, SimConfig, Unready};
use crate::error::{Error, Result};
use crate::fault::{Fault, Span, covers};
use crate::health::SimHealth;
use crate::metrics::SimMetrics;
use crate::platform::SimPlatform;
use crate::profile::{Readiness, VersionProfile};
use crate::router::SimRouter;
use crate::sample;
use crate::timeline::{EventKind, TimelineEvent};

/// A deterministic simulated fleet in virtual time.
///
/// One world holds one service's tracks, the split in force, the scripted faults and everything
/// that happened. Its views — [`platform`](SimWorld::platform), [`router`](SimWorld::router),
/// [`metrics`](SimWorld::metrics) and [`health`](SimWorld::health) — implement the `Platform`,
/// `TrafficRouter`, `MetricsSource` and `HealthSource` traits over that one world, so what the
/// router applies and what the platform runs is what the metrics show.
///
/// Time is tokio's: the world's `now` is its start [`Timestamp`] plus the
/// `tokio::time::Instant` elapsed since it was built ([`SimWorld::new`] says when a world built
/// outside a runtime starts). Under a paused clock
/// (`#[tokio::test(start_paused = true)]`), hours of simulated rollout pass in milliseconds; the
/// world itself never sleeps except where the trait says to wait (a retirement's drain).
///
/// Traffic is generated in one-second buckets on demand, whole seconds after the world's start
/// (so a fault's span begins and ends on a bucket's edge): each bucket is drawn from the state
/// in force at its first instant (split, readiness, profile), and its requests arrive at
/// uniform instants over the second. A query counts the requests that arrived in its window
/// by `now`, so its rate (requests ÷ the window's length) is the load's whatever its bounds: a
/// window ending in the second under way counts the part of it that has passed, as a proxy's
/// live counters or Prometheus' `increase()` do, rather than reading a tenth low over ten
/// seconds. Its counts, latencies and arrival instants come from random streams keyed by the
/// seed, the track and the second (counted from the world's start), so the same query always
/// gives the same answer, different seeds give different answers, the same seed gives the same
/// answers whatever the start timestamp, and sub-windows cut anywhere (to the millisecond) add
/// up to their union exactly.
///
/// Whatever drives the world (an orchestrator's executor, a test) should take its own `now`
/// from [`SimWorld::now`], so that the windows it asks the metrics for are the world's.
///
/// Cloning is cheap: clones share the world.
#[derive(Debug, Clone)]
pub struct SimWorld {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The instant of the runtime's clock at which the world's clock starts: when it was built
    /// inside a runtime, or else when it was first read inside one.
    origin: OnceLock<tokio::time::Instant>,
    state: Mutex<State>,
    recorded: InMemorySource,
    recorded_health: InMemoryHealth,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) config: SimConfig,
    /// Every change of the split in force, oldest first.
    splits: Vec<(Timestamp, TrafficSplit)>,
    fleet: BTreeMap<TrackKey, Vec<Incarnation>>,
    /// Deployment locks, service -> holder: the world's, not a platform view's, so a lock
    /// outlives the executor that took it (see [`SimPlatform`]).
    pub(crate) locks: BTreeMap<String, String>,
    timeline: Vec<TimelineEvent>,
    pub(crate) fail_next_apply: Option<String>,
    /// What each track served in whole blocks of [`Level::Block`] seconds, once they are over.
    blocks: HashMap<(Track, u64), Block>,
    /// What each track served in whole spans of [`Level::Span`] seconds, once they are over.
    spans: HashMap<(Track, u64), Block>,
    /// How many seconds have been drawn, for tests of the cache.
    #[cfg(test)]
    drawn: std::cell::Cell<u64>,
}

/// The two levels of the cache of what tracks served. A query adds whole spans (hours) from
/// the span cache, whole blocks (ten seconds) at its edges from the block cache, and draws only
/// the seconds left over: a query costs about the same whatever its length, once its time has
/// been drawn. Each level starts over when full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// Ten seconds: the windows of a canary's ticks.
    Block,
    /// An hour: the bulk of a long window. Without it, a window longer than the block cache
    /// holds (about 22 hours of one track) emptied the cache on its way and was drawn anew,
    /// second by second, every time it was asked.
    Span,
}

impl Level {
    /// Seconds per cached piece.
    fn seconds(self) -> u64 {
        match self {
            Level::Block => 10,
            Level::Span => 3_600,
        }
    }

    /// The most pieces kept (each a few KiB: counts and a sketch of a few hundred bins). 8,192
    /// blocks are about eleven hours of two tracks; 4,096 spans are months.
    fn max(self) -> usize {
        match self {
            Level::Block => 8_192,
            Level::Span => 4_096,
        }
    }
}

/// What one track served over one piece of time: its counts, and its latencies when asked for.
#[derive(Debug, Clone, Default)]
struct Block {
    counts: Counts,
    latency: Option<LatencySketch>,
}

impl Block {
    /// Nothing served, with an empty sketch when latencies are asked for.
    fn empty(latency: bool) -> Self {
        Block {
            counts: Counts::default(),
            latency: latency.then(LatencySketch::new),
        }
    }

    /// Adds what `other` served (its latencies only when this block keeps them).
    fn add(&mut self, other: &Block) {
        self.counts = self.counts.saturating_add(other.counts);
        if let (Some(mine), Some(theirs)) = (&mut self.latency, &other.latency) {
            // A scenario's requests never approach the sketch's limit (see `combine`).
            let _ = mine.merge(theirs);
        }
    }
}

/// What a query window covers of the seconds of traffic: whole seconds, and the parts of the
/// seconds its ends cut (at most two).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Cover {
    pub(crate) whole: std::ops::Range<u64>,
    pub(crate) cuts: Vec<Cut>,
}

/// The milliseconds `from..until` (of `0..=1000`) of second `second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Cut {
    pub(crate) second: u64,
    pub(crate) from: u64,
    pub(crate) until: u64,
}

/// One life of a track: from bring-up to retirement.
#[derive(Debug, Clone)]
pub(crate) struct Incarnation {
    pub(crate) version: semver::Version,
    pub(crate) profile: VersionProfile,
    pub(crate) started: Timestamp,
    pub(crate) retired: Option<Timestamp>,
    pub(crate) next_index: u32,
    pub(crate) instances: Vec<Instance>,
}

#[derive(Debug, Clone)]
pub(crate) struct Instance {
    pub(crate) id: String,
    pub(crate) started: Timestamp,
    pub(crate) stopped: Option<Timestamp>,
    pub(crate) ready_delay: Duration,
}

impl Instance {
    fn present_at(&self, t: Timestamp) -> bool {
        self.started <= t && self.stopped.is_none_or(|s| t < s)
    }
}

/// One instance's probes at one time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct InstanceState {
    pub(crate) readiness: ProbeStatus,
    pub(crate) liveness: ProbeStatus,
    pub(crate) started: bool,
    pub(crate) detail: Option<String>,
}

impl InstanceState {
    fn is_ready(&self) -> bool {
        self.readiness == ProbeStatus::Pass && self.liveness != ProbeStatus::Fail
    }
}

/// What one track served in one second.
#[derive(Debug, Clone)]
pub(crate) struct Second {
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    /// No ready instance took these requests: they all failed, without a latency.
    pub(crate) unroutable: bool,
    /// Log-normal median (ms) and log-sd of the latencies, when they were served.
    latency: Option<(f64, f64)>,
    /// The second's random stream, past its count draws: latencies continue it.
    rng: rand_chacha::ChaCha8Rng,
}

impl SimWorld {
    /// A world built from `config` (checked first), whose virtual clock starts now.
    ///
    /// Built outside a Tokio runtime, where there is no virtual clock to start from, the
    /// world's clock starts when it is first read inside one: the wall-clock time that passes
    /// before then would otherwise shift every virtual time by a different amount in every run.
    pub fn new(config: SimConfig) -> Result<Self> {
        config.validate()?;
        let origin = OnceLock::new();
        if tokio::runtime::Handle::try_current().is_ok() {
            let _ = origin.set(tokio::time::Instant::now());
        }
        Ok(SimWorld {
            inner: Arc::new(Inner {
                origin,
                state: Mutex::new(State {
                    config,
                    splits: Vec::new(),
                    fleet: BTreeMap::new(),
                    locks: BTreeMap::new(),
                    timeline: Vec::new(),
                    fail_next_apply: None,
                    blocks: HashMap::new(),
                    spans: HashMap::new(),
                    #[cfg(test)]
                    drawn: std::cell::Cell::new(0),
                }),
                recorded: InMemorySource::named("sim"),
                recorded_health: InMemoryHealth::named("sim"),
            }),
        })
    }

    /// The world as a `Platform`.
    pub fn platform(&self) -> SimPlatform {
        SimPlatform::new(self.clone())
    }

    /// The world as a `TrafficRouter`.
    pub fn router(&self) -> SimRouter {
        SimRouter::new(self.clone())
    }

    /// The world as a `MetricsSource`.
    pub fn metrics(&self) -> SimMetrics {
        SimMetrics::new(self.clone())
    }

    /// The world as a `HealthSource`.
    pub fn health(&self) -> SimHealth {
        SimHealth::new(self.clone())
    }

    /// The virtual time now.
    pub fn now(&self) -> Timestamp {
        let origin = match self.inner.origin.get() {
            Some(origin) => Some(*origin),
            None if tokio::runtime::Handle::try_current().is_ok() => {
                Some(*self.inner.origin.get_or_init(tokio::time::Instant::now))
            }
            None => None,
        };
        let elapsed = origin.map_or(Duration::ZERO, |origin| {
            tokio::time::Instant::now().saturating_duration_since(origin)
        });
        self.lock().config.start().saturating_add(elapsed)
    }

    /// The configuration the world runs with, including faults injected since.
    pub fn config(&self) -> SimConfig {
        self.lock().config.clone()
    }

    /// Everything that happened, oldest first.
    pub fn timeline(&self) -> Vec<TimelineEvent> {
        self.lock().timeline.clone()
    }

    /// The deployment holding the platform's deployment lock of `service`, if one does.
    pub fn lock_holder(&self, service: &str) -> Option<String> {
        self.lock().locks.get(service).cloned()
    }

    /// Every change of the split in force with its time, oldest first.
    pub fn applied_splits(&self) -> Vec<(Timestamp, TrafficSplit)> {
        self.lock().splits.clone()
    }

    /// Adds `fault` to the script. It must not start before now (that would rewrite what was
    /// already observed); an invalid or past fault is an error and changes nothing.
    pub fn inject(&self, fault: Fault) -> Result<()> {
        let now = self.now();
        let mut state = self.lock();
        state
            .config
            .check_fault(&fault, "fault", state.config.faults())?;
        let since = state.since_start(now);
        if fault.starts() < since {
            return Err(Error::invalid(
                "fault",
                format!("{fault:?}"),
                format!(
                    "starts at {:?}, before the present ({since:?})",
                    fault.starts()
                ),
            ));
        }
        state.config.push_fault(fault.clone());
        state.timeline.push(TimelineEvent {
            at: now,
            kind: EventKind::FaultInjected { fault },
        });
        Ok(())
    }

    /// Sets how `version` behaves. Refused (changing nothing) once a track has run that
    /// version, since that would rewrite what was already observed. Errors name the profile
    /// by its path in the config (`simConfig.profiles.2.0.0.errorRate`), as loading does.
    pub fn set_profile(&self, version: semver::Version, profile: VersionProfile) -> Result<()> {
        let mut state = self.lock();
        let field = format!("simConfig.profiles.{version}");
        profile.validate(&field)?;
        let ran = state
            .fleet
            .values()
            .flatten()
            .any(|inc| inc.version == version);
        if ran {
            return Err(Error::invalid(
                field,
                &version,
                "a track has already run this version; profiles are fixed once used",
            ));
        }
        state.config.set_profile(version, profile);
        Ok(())
    }

    /// Makes the next router `apply` fail with `message`, changing nothing.
    pub fn fail_next_apply(&self, message: impl Into<String>) {
        self.lock().fail_next_apply = Some(message.into());
    }

    /// Records an observation measured elsewhere (or arranged by a test) that metric queries
    /// add to the simulated traffic, as the in-memory source aggregates: it counts toward a
    /// query whose window holds its window's end, in `(start, end]` (an observation at one
    /// instant, toward the window that contains it), so of touching windows exactly one counts
    /// an observation that straddles their edge.
    pub fn record(&self, observation: Observation) -> Result<()> {
        Ok(self.inner.recorded.record(observation)?)
    }

    /// Records a probe result that the health source reports alongside the simulated probes
    /// (the newest result of each probe and instance wins). A track built around its name
    /// check ([`Track::validate`](serin_signals::Track::validate)) is refused, as by
    /// [`record`](Self::record), and changes nothing.
    pub fn record_health(&self, signal: HealthSignal) -> Result<()> {
        Ok(self.inner.recorded_health.record(signal)?)
    }

    /// The requests over `window` that found no ready instance of the track the split sent
    /// them to (all failed, whatever [`Unready`] policy), summed over tracks. Zero means no
    /// request was lost to routing. This is what happened, not what the metrics saw: seconds a
    /// metrics gap hides from queries count here too. A mirror's copies are no user's requests
    /// and never count here.
    pub fn unroutable(&self, window: Window) -> Counts {
        let now = self.now();
        let state = self.lock();
        let cover = state.cover(window, now);
        let whole = cover.whole.clone().map(|s| (s, None));
        let cut = cover.cuts.iter().map(|c| (c.second, Some(*c)));
        let mut total = Counts::default();
        for (s, cut) in whole.chain(cut) {
            let Some(split) = state.split_at(state.second_start(s)) else {
                continue;
            };
            for backend in split.backends() {
                let Ok(track) = Track::named(backend.name().as_str()) else {
                    continue;
                };
                // The requests were lost whether or not the metrics saw them.
                if let Some(sec) = state.served(&track, s)
                    && sec.unroutable
                {
                    let lost = match cut {
                        Some(cut) => state.cut_of(&track, cut, sec, false).counts,
                        None => Counts::new(sec.requests, sec.errors).unwrap_or_default(),
                    };
                    total = total.saturating_add(lost);
                }
            }
        }
        total
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // Every update below is a single push or assignment, so a poisoned lock still holds
        // consistent data.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn recorded(&self) -> &InMemorySource {
        &self.inner.recorded
    }

    pub(crate) fn recorded_health(&self) -> &InMemoryHealth {
        &self.inner.recorded_health
    }
}

impl State {
    /// World time elapsed at `t`.
    pub(crate) fn since_start(&self, t: Timestamp) -> Duration {
        t.saturating_duration_since(self.config.start())
    }

    pub(crate) fn push(&mut self, at: Timestamp, kind: EventKind) {
        self.timeline.push(TimelineEvent { at, kind });
    }

    /// The first fault of the given kind active at `now`, by the picker's answer.
    pub(crate) fn active_fault<T>(
        &self,
        now: Timestamp,
        pick: impl Fn(&Fault, Duration) -> Option<T>,
    ) -> Option<T> {
        let since = self.since_start(now);
        self.config.faults().iter().find_map(|f| pick(f, since))
    }

    /// The span of world time over which the faults whose spans `pick` answers hold without a
    /// break at `now`, from the first start to the last end (see [`Span::in_force`]).
    pub(crate) fn fault_span_in_force(
        &self,
        now: Timestamp,
        pick: impl Fn(&Fault) -> Option<Span>,
    ) -> Option<Span> {
        Span::in_force(
            self.config.faults().iter().filter_map(pick),
            self.since_start(now),
        )
    }

    // ----- router -----

    pub(crate) fn current_split(&self) -> Option<&TrafficSplit> {
        self.splits.last().map(|(_, s)| s)
    }

    pub(crate) fn set_split(&mut self, now: Timestamp, split: &TrafficSplit) -> bool {
        if self.current_split() == Some(split) {
            return false;
        }
        self.splits.push((now, split.clone()));
        true
    }

    fn split_at(&self, t: Timestamp) -> Option<&TrafficSplit> {
        let i = self.splits.partition_point(|(at, _)| *at <= t);
        i.checked_sub(1)
            .and_then(|j| self.splits.get(j))
            .map(|(_, s)| s)
    }

    // ----- fleet -----

    pub(crate) fn active(&self, key: &TrackKey) -> Option<&Incarnation> {
        self.fleet
            .get(key)
            .and_then(|v| v.last())
            .filter(|inc| inc.retired.is_none())
    }

    pub(crate) fn active_mut(&mut self, key: &TrackKey) -> Option<&mut Incarnation> {
        self.fleet
            .get_mut(key)
            .and_then(|v| v.last_mut())
            .filter(|inc| inc.retired.is_none())
    }

    /// How many times `key` has been brought up: tells one incarnation from the next.
    pub(crate) fn incarnations(&self, key: &TrackKey) -> usize {
        self.fleet.get(key).map_or(0, Vec::len)
    }

    pub(crate) fn add_incarnation(&mut self, key: TrackKey, incarnation: Incarnation) {
        self.fleet.entry(key).or_default().push(incarnation);
    }

    /// Every track that runs now, ordered by service then track.
    pub(crate) fn running(&self) -> impl Iterator<Item = (&TrackKey, &Incarnation)> {
        self.fleet
            .iter()
            .filter_map(|(k, v)| v.last().filter(|i| i.retired.is_none()).map(|i| (k, i)))
    }

    /// The incarnation of `track` of the loaded service alive at `t`.
    fn incarnation_at(&self, track: &Track, t: Timestamp) -> Option<&Incarnation> {
        let key = TrackKey::new(self.config.service(), track);
        self.fleet
            .get(&key)?
            .iter()
            .rev()
            .find(|inc| inc.started <= t && inc.retired.is_none_or(|r| t < r))
    }

    /// Whether `service` is the world's own: the one whose traffic, metrics and probes it
    /// simulates, and the only one a fault acts on unless it names another (a crash may).
    fn is_world_service(&self, service: &str) -> bool {
        service == self.config.service()
    }

    /// The startup delay of an instance of `key` started at `now` with `profile`: its
    /// startup plus the extras of every slow-start fault (on the world's service) active then.
    pub(crate) fn ready_delay(
        &self,
        key: &TrackKey,
        profile: &VersionProfile,
        now: Timestamp,
    ) -> Duration {
        let since = self.since_start(now);
        self.config
            .faults()
            .iter()
            .filter_map(|f| match f {
                Fault::SlowStart {
                    track: t,
                    span,
                    extra,
                } if self.is_world_service(&key.service)
                    && covers(t.as_ref(), &key.track)
                    && span.contains(since) =>
                {
                    Some(*extra)
                }
                _ => None,
            })
            .fold(profile.startup, Duration::saturating_add)
    }

    /// When `inst` of `key` crashes, if ever: its profile's crash time or a crash fault of its
    /// service and track after its start. A crash at the very instant it started comes first
    /// in the order of events: it kills what ran then, and this instance started after it.
    fn crash_time(
        &self,
        key: &TrackKey,
        profile: &VersionProfile,
        inst: &Instance,
    ) -> Option<Timestamp> {
        let start = self.config.start();
        let by_profile = profile.crash_after.map(|d| inst.started.saturating_add(d));
        let by_fault = self
            .config
            .faults()
            .iter()
            .filter_map(|f| match f {
                Fault::Crash {
                    service,
                    track: t,
                    instance,
                    at,
                } if *t == key.track
                    && service.as_deref().unwrap_or(self.config.service()) == key.service
                    && instance.as_ref().is_none_or(|i| *i == inst.id) =>
                {
                    Some(start.saturating_add(*at))
                }
                _ => None,
            })
            .filter(|at| *at > inst.started)
            .min();
        match (by_profile, by_fault) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether a probe-failure fault fails `probe` of `key` at `t` (on the world's service).
    pub(crate) fn probe_failing(
        &self,
        key: &TrackKey,
        probe: &serin_signals::Probe,
        t: Timestamp,
    ) -> bool {
        self.is_world_service(&key.service)
            && self
                .active_fault(t, |f, since| match f {
                    Fault::ProbeFailure {
                        track: ft,
                        probe: p,
                        span,
                    } if p == probe && covers(ft.as_ref(), &key.track) && span.contains(since) => {
                        Some(())
                    }
                    _ => None,
                })
                .is_some()
    }

    /// The probes of `inst` of `key` at `t`, or `None` when it did not run then.
    pub(crate) fn instance_state(
        &self,
        key: &TrackKey,
        inc: &Incarnation,
        inst: &Instance,
        t: Timestamp,
    ) -> Option<InstanceState> {
        use serin_signals::Probe;
        if !inst.present_at(t) {
            return None;
        }
        let age = t.saturating_duration_since(inst.started);
        let started = age >= inst.ready_delay;
        let state = |readiness, liveness, detail: String| InstanceState {
            readiness,
            liveness,
            started,
            detail: Some(detail),
        };
        if let Some(crash) = self.crash_time(key, &inc.profile, inst)
            && crash <= t
        {
            return Some(state(
                ProbeStatus::Fail,
                ProbeStatus::Fail,
                format!("crashed at {crash}"),
            ));
        }
        if self.probe_failing(key, &Probe::Liveness, t) {
            return Some(state(
                ProbeStatus::Fail,
                ProbeStatus::Fail,
                "liveness probe failing".into(),
            ));
        }
        if !started {
            return Some(state(
                ProbeStatus::Fail,
                ProbeStatus::Pass,
                format!("starting (ready after {:?})", inst.ready_delay),
            ));
        }
        match inc.profile.readiness {
            Readiness::Never => {
                return Some(state(
                    ProbeStatus::Fail,
                    ProbeStatus::Pass,
                    "never becomes ready".into(),
                ));
            }
            Readiness::Flapping { up, down } => {
                let cycle = up.saturating_add(down).as_millis().max(1);
                let phase = (age - inst.ready_delay).as_millis() % cycle;
                if phase >= up.as_millis() {
                    return Some(state(
                        ProbeStatus::Fail,
                        ProbeStatus::Pass,
                        "flapping: not ready".into(),
                    ));
                }
            }
            Readiness::Ready => {}
        }
        if self.probe_failing(key, &Probe::Readiness, t) {
            return Some(state(
                ProbeStatus::Fail,
                ProbeStatus::Pass,
                "readiness probe failing".into(),
            ));
        }
        Some(InstanceState {
            readiness: ProbeStatus::Pass,
            liveness: ProbeStatus::Pass,
            started,
            detail: None,
        })
    }

    /// The platform's view of a running track at `now`.
    pub(crate) fn report(&self, key: &TrackKey, inc: &Incarnation, now: Timestamp) -> TrackStatus {
        TrackStatus::new(
            key.service.clone(),
            inc.version.clone(),
            key.track.clone(),
            inc.instances
                .iter()
                .filter_map(|inst| {
                    let s = self.instance_state(key, inc, inst, now)?;
                    let mut i = InstanceStatus::new(inst.id.clone(), s.readiness, s.liveness);
                    i.detail = s.detail;
                    Some(i)
                })
                .collect(),
        )
    }

    fn ready_count(&self, track: &Track, t: Timestamp) -> usize {
        let key = TrackKey::new(self.config.service(), track);
        self.incarnation_at(track, t).map_or(0, |inc| {
            inc.instances
                .iter()
                .filter(|i| {
                    self.instance_state(&key, inc, i, t)
                        .is_some_and(|s| s.is_ready())
                })
                .count()
        })
    }

    // ----- traffic -----

    /// How far into a second of the epoch the world starts, in milliseconds. Seconds of
    /// traffic are counted from that phase, so each starts a whole number of seconds after the
    /// world does: fault spans, counted from the start, then begin and end on a second's edge
    /// whatever the start.
    fn phase(&self) -> u64 {
        self.config.start().as_millis() % 1_000
    }

    /// The number that keys the random draws of second `s` of traffic: its place after the
    /// world's first second, so that the start timestamp only labels the time axis and a seed
    /// draws the same traffic whenever the world starts (a command line tool starting its
    /// world at the wall-clock time reproduces a run from its seed). The count begins at the
    /// default start's second, where a world at that start draws what it always drew.
    fn key(&self, s: u64) -> u64 {
        let first = self.config.start().as_millis() / 1_000;
        s.saturating_sub(first)
            .saturating_add(DEFAULT_START.as_millis() / 1_000)
    }

    /// The first instant of second `s` of traffic.
    fn second_start(&self, s: u64) -> Timestamp {
        Timestamp::from_millis(s.saturating_mul(1_000).saturating_add(self.phase()))
    }

    /// What `window` covers of the traffic that has arrived by `now` since the world
    /// started: the whole seconds in it, and the parts of the seconds at its ends.
    pub(crate) fn cover(&self, window: Window, now: Timestamp) -> Cover {
        // Milliseconds counted from the phase of the seconds (the start is at or after it).
        let phase = self.phase();
        let a = window
            .start()
            .as_millis()
            .max(self.config.start().as_millis())
            - phase;
        let b = window
            .end()
            .as_millis()
            .min(now.as_millis())
            .saturating_sub(phase);
        if b <= a {
            return Cover::default();
        }
        let (first, last) = (a / 1_000, (b - 1) / 1_000);
        let cut = |second: u64, from: u64, until: u64| Cut {
            second,
            from,
            until,
        };
        if first == last {
            let (from, until) = (a - first * 1_000, b - first * 1_000);
            return if from == 0 && until == 1_000 {
                Cover {
                    whole: first..first + 1,
                    cuts: Vec::new(),
                }
            } else {
                Cover {
                    whole: 0..0,
                    cuts: vec![cut(first, from, until)],
                }
            };
        }
        let mut cuts = Vec::new();
        if !a.is_multiple_of(1_000) {
            cuts.push(cut(first, a % 1_000, 1_000));
        }
        if !b.is_multiple_of(1_000) {
            cuts.push(cut(last, 0, b % 1_000));
        }
        Cover {
            whole: a.div_ceil(1_000)..b / 1_000,
            cuts,
        }
    }

    /// The whole seconds whose first instant lies in `window`, that started after the world
    /// did and are over by `now`.
    pub(crate) fn seconds_in(&self, window: Window, now: Timestamp) -> std::ops::Range<u64> {
        let phase = self.phase();
        let first = (window
            .start()
            .as_millis()
            .max(self.config.start().as_millis())
            - phase)
            .div_ceil(1_000);
        let end = window
            .end()
            .as_millis()
            .saturating_sub(phase)
            .div_ceil(1_000)
            .min(now.as_millis().saturating_sub(phase) / 1_000);
        first..end.max(first)
    }

    /// Whether the metrics of second `s` were lost to a metrics-gap fault.
    fn lost_to_gap(&self, s: u64) -> bool {
        let since = self.since_start(self.second_start(s));
        self.config.faults().iter().any(|f| match f {
            Fault::MetricsGap { span } => span.contains(since),
            _ => false,
        })
    }

    /// What the metrics recorded of `track` of the loaded service in second `s`: what it
    /// served, unless the second was lost to a gap.
    pub(crate) fn second(&self, track: &Track, s: u64) -> Option<Second> {
        if self.lost_to_gap(s) {
            return None;
        }
        self.served(track, s)
    }

    /// What `track` of the loaded service served in second `s`, drawn from the state in force
    /// at its first instant, whether or not the metrics recorded it; `None` when it was sent
    /// nothing.
    ///
    /// A track the split's mirror names also serves copies of the mirror's share of all
    /// requests, on top of what its weight sends it: they cost it CPU and show in its counts
    /// and latencies, as a shadow's own metrics show mirrored traffic (what Flagger's
    /// blue-green mirroring analyses). Nobody waits for a copy's answer, so copies that find
    /// no ready instance are dropped by the router: never counted as served, nor as unroutable.
    /// The copies are drawn after the second's own requests, so a second without a mirror
    /// draws exactly as it would if mirroring did not exist.
    fn served(&self, track: &Track, s: u64) -> Option<Second> {
        #[cfg(test)]
        self.drawn.set(self.drawn.get() + 1);
        let t = self.second_start(s);
        let since = self.since_start(t);
        let split = self.split_at(t)?;
        let weight = split.weight_of(track.as_str()).unwrap_or_default();
        let mirrored = split
            .mirror()
            .filter(|m| m.backend().as_str() == track.as_str())
            .map(|m| m.percent().as_percent() / 100.0);
        if weight.is_zero() && mirrored.is_none() {
            return None;
        }
        let ready = self.ready_count(track, t) > 0;
        let share = match self.config.unready() {
            _ if weight.is_zero() => 0.0,
            Unready::Fail => weight.as_percent() / 100.0,
            Unready::Redistribute => {
                let ready_bps: u32 = split
                    .backends()
                    .iter()
                    .filter(|b| !b.weight().is_zero())
                    .filter(|b| {
                        Track::named(b.name().as_str()).is_ok_and(|tr| self.ready_count(&tr, t) > 0)
                    })
                    .map(|b| u32::from(b.weight().bps()))
                    .sum();
                match (ready, ready_bps) {
                    (true, bps) if bps > 0 => f64::from(weight.bps()) / f64::from(bps),
                    (false, 0) => weight.as_percent() / 100.0,
                    // Handed over to the ready tracks.
                    _ => 0.0,
                }
            }
        };
        let rate = self.config.load().rate_at(since);
        let key = self.key(s);
        let mut rng = sample::stream(self.config.seed(), track, key, sample::TRAFFIC);
        let requests = sample::poisson(&mut rng, rate * share);
        let inc = self.incarnation_at(track, t).filter(|_| ready);
        let Some(inc) = inc else {
            return (requests > 0).then_some(Second {
                requests,
                errors: requests,
                unroutable: true,
                latency: None,
                rng,
            });
        };
        let copies = mirrored.map_or(0, |m| sample::poisson(&mut rng, rate * m));
        let requests = requests.saturating_add(copies);
        if requests == 0 {
            return None;
        }
        let age = t.saturating_duration_since(inc.started);
        let wander = inc.profile.error_wander.map_or(1.0, |w| {
            sample::wander_multiplier(self.config.seed(), track, key, w)
        });
        let (slower, failing) = self.incident(track, since);
        let own = inc.profile.error_rate.at(age) * wander;
        // Without an errors fault the version's own rate is used untouched (`1 − (1 − p)` is
        // not always `p` in floating point), so a world without one draws what it always drew.
        let error_rate = if failing > 0.0 {
            1.0 - (1.0 - own.clamp(0.0, 1.0)) * (1.0 - failing)
        } else {
            own
        };
        let errors = sample::binomial(&mut rng, requests, error_rate);
        let median = inc.profile.latency.median_ms * inc.profile.latency_factor.at(age) * slower;
        Some(Second {
            requests,
            errors,
            unroutable: false,
            latency: Some((median.max(1e-3), inc.profile.latency.sigma)),
            rng,
        })
    }

    /// The latency multiplier and the extra failure rate that latency and errors faults put on
    /// the requests `track` of the loaded service serves `since` the start: `(1.0, 0.0)` when
    /// none is active. Overlapping faults compound: their factors multiply, and a request
    /// fails if any of them fails it.
    fn incident(&self, track: &Track, since: Duration) -> (f64, f64) {
        let mut slower = 1.0;
        let mut passing = 1.0;
        for fault in self.config.faults() {
            match fault {
                Fault::Latency {
                    track: t,
                    span,
                    factor,
                } if covers(t.as_ref(), track) && span.contains(since) => slower *= factor,
                Fault::Errors {
                    track: t,
                    span,
                    rate,
                } if covers(t.as_ref(), track) && span.contains(since) => passing *= 1.0 - rate,
                _ => {}
            }
        }
        (slower, 1.0 - passing)
    }

    /// The CPU (cores) or memory (bytes) of `track` of the loaded service at the last second
    /// of `seconds` in which it had a live instance and that a metrics gap did not lose, or
    /// `None` when there is none.
    pub(crate) fn gauge(
        &self,
        track: &Track,
        seconds: std::ops::Range<u64>,
        memory: bool,
    ) -> Option<f64> {
        for s in seconds.rev() {
            if self.lost_to_gap(s) {
                continue;
            }
            let t = self.second_start(s);
            let Some(inc) = self.incarnation_at(track, t) else {
                continue;
            };
            let key = TrackKey::new(self.config.service(), track);
            let live = inc
                .instances
                .iter()
                .filter(|i| {
                    self.instance_state(&key, inc, i, t)
                        .is_some_and(|st| st.liveness != ProbeStatus::Fail)
                })
                .count() as f64;
            if live == 0.0 {
                continue;
            }
            let profile = &inc.profile;
            if memory {
                let age = t.saturating_duration_since(inc.started);
                return Some(live * profile.memory_mib.at(age) * 1_048_576.0);
            }
            let served = self
                .second(track, s)
                .filter(|sec| !sec.unroutable)
                .map_or(0, |sec| sec.requests);
            return Some(
                live * profile.cpu_idle_cores
                    + served as f64 * profile.cpu_ms_per_request / 1_000.0,
            );
        }
        None
    }

    /// Adds the latencies of a served second, drawn from the rest of its random stream, to
    /// `sketch` (adding to one sketch puts every value in the same bin as merging would).
    fn add_latencies(sec: &mut Second, sketch: &mut LatencySketch) {
        if let Some((median, sigma)) = sec.latency {
            sample::latencies(&mut sec.rng, sec.requests, median, sigma, sketch);
        }
    }

    /// Splits `seconds` into its leading seconds, the indices of the whole pieces of `size`
    /// seconds inside it, and its trailing seconds.
    fn partition(
        seconds: std::ops::Range<u64>,
        size: u64,
    ) -> (
        std::ops::Range<u64>,
        std::ops::Range<u64>,
        std::ops::Range<u64>,
    ) {
        let first = seconds.start.div_ceil(size);
        let end = seconds.end / size;
        if first >= end {
            return (seconds.clone(), 0..0, seconds.end..seconds.end);
        }
        (
            seconds.start..first * size,
            first..end,
            end * size..seconds.end,
        )
    }

    /// Adds what `track` served in each of `seconds`, drawn one by one, to `acc`.
    fn add_seconds(&self, track: &Track, seconds: std::ops::Range<u64>, acc: &mut Block) {
        for mut sec in seconds.filter_map(|s| self.second(track, s)) {
            acc.counts = acc
                .counts
                .saturating_add(Counts::new(sec.requests, sec.errors).unwrap_or_default());
            if let Some(sketch) = &mut acc.latency {
                Self::add_latencies(&mut sec, sketch);
            }
        }
    }

    /// Adds what `track` served over `seconds` to `acc`: whole blocks from the block cache,
    /// the seconds at the edges drawn.
    fn add_blocks(&mut self, track: &Track, seconds: std::ops::Range<u64>, acc: &mut Block) {
        let latency = acc.latency.is_some();
        let (head, blocks, tail) = Self::partition(seconds, Level::Block.seconds());
        self.add_seconds(track, head, acc);
        for b in blocks {
            acc.add(self.cached(Level::Block, track, b, latency));
        }
        self.add_seconds(track, tail, acc);
    }

    /// What `track` served over piece `index` of `level`, from the cache or drawn into it.
    fn cached(&mut self, level: Level, track: &Track, index: u64, latency: bool) -> &Block {
        let key = (track.clone(), index);
        let cache = match level {
            Level::Block => &self.blocks,
            Level::Span => &self.spans,
        };
        let fresh = cache
            .get(&key)
            .is_none_or(|b| latency && b.latency.is_none());
        if fresh {
            let size = level.seconds();
            let mut computed = Block::empty(latency);
            self.add_seconds(track, index * size..(index + 1) * size, &mut computed);
            let cache = self.cache_mut(level);
            if cache.len() >= level.max() {
                cache.clear();
            }
            cache.insert(key.clone(), computed);
        }
        // Present: found above or just inserted.
        self.cache_mut(level).entry(key).or_default()
    }

    fn cache_mut(&mut self, level: Level) -> &mut HashMap<(Track, u64), Block> {
        match level {
            Level::Block => &mut self.blocks,
            Level::Span => &mut self.spans,
        }
    }

    /// What `track` served over `seconds` (all of them over), with its latencies when asked.
    fn served_over(
        &mut self,
        track: &Track,
        seconds: std::ops::Range<u64>,
        latency: bool,
    ) -> Block {
        let (head, spans, tail) = Self::partition(seconds, Level::Span.seconds());
        let mut acc = Block::empty(latency);
        self.add_blocks(track, head, &mut acc);
        for h in spans {
            acc.add(self.cached(Level::Span, track, h, latency));
        }
        self.add_blocks(track, tail, &mut acc);
        acc
    }

    /// What `sec`, second `cut.second` of `track`, served in the milliseconds `cut` keeps:
    /// the requests that arrived then (see [`sample::arrived_before`]), with their latencies
    /// when asked for.
    fn cut_of(&self, track: &Track, cut: Cut, mut sec: Second, latency: bool) -> Block {
        let (seed, key) = (self.config.seed(), self.key(cut.second));
        let (values, all) = match sec.latency.filter(|_| latency) {
            Some((median, sigma)) => {
                let (mut values, mut sizes) = (Vec::new(), Vec::new());
                sample::latency_groups(&mut sec.rng, sec.requests, median, sigma, |v, n| {
                    values.push(v);
                    sizes.push(n);
                });
                let failed = sample::errors_by_group(seed, track, key, sec.errors, &sizes);
                let ok = sizes.iter().zip(&failed).map(|(n, e)| n - e).collect();
                (values, sample::Classes { ok, failed })
            }
            None => (
                Vec::new(),
                sample::Classes {
                    ok: vec![sec.requests.saturating_sub(sec.errors)],
                    failed: vec![sec.errors],
                },
            ),
        };
        let before = |ms| sample::arrived_before(seed, track, key, &all, ms);
        let part = before(cut.until).minus(&before(cut.from));
        let mut block = Block::empty(latency);
        block.counts = Counts::new(part.requests(), part.errors()).unwrap_or_default();
        if let Some(sketch) = &mut block.latency {
            for (j, value) in values.into_iter().enumerate() {
                let n = part.requests_of(j);
                if n > 0 {
                    // See `combine`: a scenario never nears the sketch's limits.
                    let _ = sketch.add_n(value, n);
                }
            }
        }
        block
    }

    /// What `track` served over `cover`, with its latencies when asked: whole seconds from
    /// the caches, cut ones drawn.
    fn served_in(&mut self, track: &Track, cover: &Cover, latency: bool) -> Block {
        let mut acc = self.served_over(track, cover.whole.clone(), latency);
        for cut in &cover.cuts {
            if let Some(sec) = self.second(track, cut.second) {
                acc.add(&self.cut_of(track, *cut, sec, latency));
            }
        }
        acc
    }

    /// The requests and errors `track` served over `cover`.
    pub(crate) fn counts_over(&mut self, track: &Track, cover: &Cover) -> Counts {
        self.served_in(track, cover, false).counts
    }

    /// The latencies `track` served over `cover`.
    pub(crate) fn latency_over(&mut self, track: &Track, cover: &Cover) -> LatencySketch {
        self.served_in(track, cover, true)
            .latency
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use serin_orchestrator::{Platform, TrackSpec};
    use serin_signals::{Metric, MetricQuery, MetricsSource};
    use serin_traffic::TrafficRouter;

    use super::*;

    /// A query over most of a day is answered from the cache when it is asked again, as a
    /// short one is: the seconds it covers are not drawn anew.
    #[tokio::test(start_paused = true)]
    async fn a_long_query_asked_again_comes_from_the_cache() {
        let world = SimWorld::new(SimConfig::new(5)).unwrap();
        let spec = TrackSpec::new("web", "1.0.0", Track::Stable, 1).unwrap();
        world.platform().bring_up(&spec).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let split = TrafficSplit::from_percents([("stable", 100)]).unwrap();
        world.router().apply(&split).await.unwrap();
        tokio::time::sleep(Duration::from_secs(24 * 3_600)).await;
        let window = Window::ending_at(world.now(), Duration::from_secs(24 * 3_600 - 7));
        let metrics = world.metrics();
        for metric in [Metric::ErrorRate, Metric::Latency] {
            let query = MetricQuery::new(metric.clone(), Track::Stable, window);
            let first = metrics.query(&query).await.unwrap();
            let before = world.lock().drawn.get();
            let again = metrics.query(&query).await.unwrap();
            let redrawn = world.lock().drawn.get() - before;
            assert_eq!(again, first);
            // Only the seconds at the window's edges, outside whole blocks, are drawn again.
            assert!(
                redrawn < 2 * Level::Block.seconds(),
                "{metric}: {redrawn} seconds drawn again"
            );
        }
    }
}
