//! The [`Engine`]: many triggers over many signal streams, fed observations, probe results and
//! `now`; it queues [`Event`]s (state changes and actions, with evidence) for the caller to poll.
//!
//! Sans-IO in the manner of quinn-proto: the engine never reads a clock or waits; the caller
//! feeds it ([`observe`](Engine::observe), [`observe_health`](Engine::observe_health),
//! [`tick`](Engine::tick)) and drains it ([`poll_event`](Engine::poll_event)). The whole engine
//! serializes (config, trigger state and undrained events), so a restarted process resumes where
//! it stopped, and replaying the same inputs yields the same events.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use serin_signals::{HealthSignal, Metric, Observation, Probe, Timestamp, Track};

use crate::action::Action;
use crate::config::TriggerConfig;
use crate::error::{Error, Result};
use crate::evidence::Evidence;
use crate::lifecycle::{Lifecycle, Timing, Transition, TriggerState};
use crate::trigger::{AnyTrigger, Subscription, Trigger};

/// The triggers an engine runs. Validated on load: a config read with serde is refused as
/// [`validate`](Self::validate) refuses it, naming `triggers[i].field`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    deny_unknown_fields,
    try_from = "WrittenEngineConfig"
)]
pub struct EngineConfig {
    /// The triggers, each with a unique id.
    pub triggers: Vec<TriggerConfig>,
}

/// An [`EngineConfig`] as written, before it is validated.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WrittenEngineConfig {
    triggers: Vec<TriggerConfig>,
}

impl TryFrom<WrittenEngineConfig> for EngineConfig {
    type Error = Error;
    fn try_from(w: WrittenEngineConfig) -> Result<Self> {
        let config = EngineConfig {
            triggers: w.triggers,
        };
        config.validate()?;
        Ok(config)
    }
}

impl EngineConfig {
    /// Checks every trigger (errors name `triggers[i].field`) and that ids are unique.
    pub fn validate(&self) -> Result<()> {
        let mut seen = HashMap::new();
        for (i, t) in self.triggers.iter().enumerate() {
            t.validate(&format!("triggers[{i}]"))?;
            if seen.insert(t.id(), i).is_some() {
                return Err(Error::DuplicateTrigger {
                    id: t.id().to_owned(),
                    index: i,
                });
            }
        }
        Ok(())
    }
}

/// A state change of one trigger, with the action it asks for (if any) and its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Event {
    /// The trigger's id.
    pub trigger: String,
    /// When it happened: the data time of the input that caused it, or the `now` of a tick,
    /// never earlier than a tick or input the trigger has already seen.
    pub at: Timestamp,
    /// The state before.
    pub from: TriggerState,
    /// The state after.
    pub to: TriggerState,
    /// The action asked for: set when the trigger fires or goes stale, except inside the
    /// cooldown of a fire of the same or a higher level. A firing trigger stepping down to a
    /// lower level (or back up inside that level's cooldown) changes state without asking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// What the trigger saw.
    pub evidence: Evidence,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Slot {
    trigger: AnyTrigger,
    lifecycle: Lifecycle,
    #[serde(skip, default = "placeholder_timing")]
    timing: Option<Timing>,
}

fn placeholder_timing() -> Option<Timing> {
    None
}

impl Slot {
    /// Whether the trigger takes nothing from an input of data time `at`: one its lifecycle
    /// would not take (late, sent again, or stale on arrival), or one already older than the
    /// trigger's `staleAfter` at the engine's `clock`. That clock may be ahead of the
    /// lifecycle's own ([`Engine::advance_clock`] moves it alone), and an input that old when
    /// it arrives would have found the trigger stale had it come in time. A trigger that
    /// merges streams tells late from new per stream itself (one instance's result may come
    /// after another's newer one and still count), so only staleness on arrival is judged here
    /// for it.
    fn passes_over(&self, at: Timestamp, clock: Option<Timestamp>) -> bool {
        let Some(t) = &self.timing else {
            return false;
        };
        if clock.is_some_and(|c| c.saturating_duration_since(at) > t.stale_after) {
            return true;
        }
        if self.trigger.merges_streams() {
            self.lifecycle.stale_on_arrival(at, t)
        } else {
            !self.lifecycle.takes(at, t)
        }
    }
}

type Routes<K> = HashMap<K, HashMap<Track, Vec<u32>>>;

/// The trigger engine: many triggers over many signal streams.
///
/// The caller feeds it ([`observe`](Engine::observe), [`observe_health`](Engine::observe_health),
/// [`tick`](Engine::tick) with `now`) and drains it ([`poll_event`](Engine::poll_event)). The
/// engine serializes whole (config, trigger state and undrained events), so a restarted process
/// resumes where it stopped; replaying the same inputs yields the same events.
///
/// ```
/// use std::time::Duration;
/// use serin_signals::{Counts, Measurement, Metric, Observation, Timestamp, Track, Window};
/// use serin_triggers::{Action, Engine, EngineConfig};
///
/// let config: EngineConfig = serde_json::from_str(r#"{"triggers": [{
///     "kind": "metricThreshold", "id": "error-rate", "metric": "error_rate",
///     "operator": "gt", "value": 0.10, "duration": "30s", "cooldown": "1m"
/// }]}"#)?;
/// let mut engine = Engine::new(config, Timestamp::EPOCH)?;
/// for s in [10, 20, 30, 40] {
///     let end = Timestamp::from_millis(s * 1_000);
///     let window = Window::ending_at(end, Duration::from_secs(10));
///     let counts = Measurement::Counts(Counts::new(1_000, 150)?);
///     engine.observe(&Observation::new(Metric::ErrorRate, Track::Canary, window, counts))?;
///     engine.tick(end);
/// }
/// let fired: Vec<_> = engine.drain_events().filter(|e| e.action.is_some()).collect();
/// assert_eq!(fired.len(), 1);
/// assert_eq!(fired[0].action, Some(Action::Rollback));
/// assert_eq!(fired[0].at, Timestamp::from_millis(40_000)); // 30 s after the first breach
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "Snapshot", into = "Snapshot")]
pub struct Engine {
    slots: Vec<Slot>,
    metric_routes: Routes<Metric>,
    probe_routes: Routes<Probe>,
    events: VecDeque<Event>,
    /// The latest `now` given to [`tick`](Engine::tick) or
    /// [`advance_clock`](Engine::advance_clock), `None` before the first: inputs dated further
    /// past it than a trigger's `staleAfter` are refused.
    clock: Option<Timestamp>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Snapshot {
    triggers: Vec<Slot>,
    events: VecDeque<Event>,
    /// Absent before the first tick, and from snapshots written before the engine kept it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    clock: Option<Timestamp>,
}

impl TryFrom<Snapshot> for Engine {
    type Error = Error;
    fn try_from(s: Snapshot) -> Result<Self> {
        let config = EngineConfig {
            triggers: s.triggers.iter().map(|t| t.trigger.config()).collect(),
        };
        config.validate()?;
        for (i, slot) in s.triggers.iter().enumerate() {
            slot.trigger
                .check_state(slot.lifecycle.clock())
                .map_err(|reason| Error::InvalidSnapshot {
                    field: format!("triggers[{i}]"),
                    reason,
                })?;
            slot.lifecycle
                .check_state(&slot.trigger.config().timing())
                .map_err(|reason| Error::InvalidSnapshot {
                    field: format!("triggers[{i}].lifecycle"),
                    reason,
                })?;
        }
        Ok(Engine::assemble(s.triggers, s.events, s.clock))
    }
}

impl From<Engine> for Snapshot {
    fn from(e: Engine) -> Self {
        Snapshot {
            triggers: e.slots,
            events: e.events,
            clock: e.clock,
        }
    }
}

impl Engine {
    /// An engine running `config`'s triggers, started at `now` (a trigger with no data by
    /// `now + staleAfter` goes stale). Validates the config first.
    pub fn new(config: EngineConfig, now: Timestamp) -> Result<Self> {
        config.validate()?;
        let slots = config
            .triggers
            .into_iter()
            .map(|c| {
                Ok(Slot {
                    trigger: AnyTrigger::new(c)?,
                    lifecycle: Lifecycle::new(now),
                    timing: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Engine::assemble(slots, VecDeque::new(), None))
    }

    fn assemble(mut slots: Vec<Slot>, events: VecDeque<Event>, clock: Option<Timestamp>) -> Self {
        slots.shrink_to_fit();
        let mut metric_routes: Routes<Metric> = HashMap::new();
        let mut probe_routes: Routes<Probe> = HashMap::new();
        for (i, slot) in slots.iter_mut().enumerate() {
            slot.timing = Some(slot.trigger.config().timing());
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            for sub in slot.trigger.subscriptions() {
                let list = match sub {
                    Subscription::Metric(m, t) => {
                        metric_routes.entry(m).or_default().entry(t).or_default()
                    }
                    Subscription::Probe(p, t) => {
                        probe_routes.entry(p).or_default().entry(t).or_default()
                    }
                };
                if !list.contains(&i) {
                    list.push(i);
                }
            }
        }
        metric_routes.shrink_to_fit();
        probe_routes.shrink_to_fit();
        Engine {
            slots,
            metric_routes,
            probe_routes,
            events,
            clock,
        }
    }

    /// The config the engine runs.
    pub fn config(&self) -> EngineConfig {
        EngineConfig {
            triggers: self.slots.iter().map(|s| s.trigger.config()).collect(),
        }
    }

    /// The number of triggers.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the engine runs no trigger.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Feeds one observation to the triggers that watch its metric and track. A measurement one
    /// of them cannot read is an error, and then no trigger has changed.
    ///
    /// The window's end is the observation's data time. An observation older than the last data
    /// a trigger took (a late window, or one sent again) or already older than its `staleAfter`
    /// at the engine's clock changes nothing: it neither clears a breach that began after it nor
    /// keeps the trigger from going stale. The same holds for probe results
    /// ([`observe_health`](Engine::observe_health)), judged per instance and track.
    ///
    /// An observation whose window ends further past the engine's clock (the latest `now` given
    /// to [`tick`](Engine::tick) or [`advance_clock`](Engine::advance_clock)) than the
    /// `staleAfter` of a trigger that watches it is refused ([`Error::AheadOfClock`]), and
    /// changes nothing: it comes from a source whose clock runs ahead, and taken it would make
    /// every real window until its end look late, while the trigger, fresh until then, never
    /// went stale. Within that bound a window may end past the last tick, as the one read up to
    /// the next tick's `now` does; a caller whose ticks are further apart than a `staleAfter`
    /// moves the clock with [`advance_clock`](Engine::advance_clock) before feeding what it
    /// read. Before the first tick or `advance_clock` nothing is refused: the engine knows only
    /// its start then, which may come long before the first data (a deployment that waits for
    /// its new track to be ready). A caller that wants the bound from the start ticks at it.
    pub fn observe(&mut self, obs: &Observation) -> Result<()> {
        let Some(route) = self
            .metric_routes
            .get(&obs.metric)
            .and_then(|by_track| by_track.get(&obs.track))
        else {
            return Ok(());
        };
        for &i in route {
            if let Some(slot) = self.slots.get(i as usize) {
                slot.trigger.check(obs)?;
            }
        }
        let at = obs.window.end();
        self.check_not_ahead(route, at, || {
            format!("observation of {} on track {}", obs.metric, obs.track)
        })?;
        let clock = self.clock;
        for &i in route {
            let Some(slot) = self.slots.get_mut(i as usize) else {
                continue;
            };
            if slot.passes_over(at, clock) {
                continue;
            }
            if let Some(verdict) = slot.trigger.observe(obs)?
                && let Some(timing) = &slot.timing
            {
                let tr = slot
                    .lifecycle
                    .observe(verdict, slot.trigger.verdict_time(at), timing);
                slot.lifecycle.advance(at);
                if let Some(tr) = tr {
                    self.events.push_back(event(&slot.trigger, tr));
                }
            }
        }
        Ok(())
    }

    /// Feeds one probe result to the triggers that watch its probe and track. A result that is
    /// not newer than the last one taken for its instance (on its track, for a dependency) is
    /// the same result read again, or an older one, and changes nothing: a source answers the
    /// latest result it holds each time it is asked. Nor does one already older than the
    /// trigger's `staleAfter` at the engine's clock: it does not count toward a failure streak.
    ///
    /// A result completed further past the engine's clock than the `staleAfter` of a trigger
    /// that watches it is refused ([`Error::AheadOfClock`]) and changes nothing, as an
    /// observation is (see [`observe`](Engine::observe)).
    pub fn observe_health(&mut self, signal: &HealthSignal) -> Result<()> {
        let Some(route) = self
            .probe_routes
            .get(&signal.probe)
            .and_then(|by_track| by_track.get(&signal.track))
        else {
            return Ok(());
        };
        self.check_not_ahead(route, signal.at, || {
            let probe = match &signal.probe {
                Probe::Readiness => "readiness".to_owned(),
                Probe::Liveness => "liveness".to_owned(),
                Probe::Startup => "startup".to_owned(),
                Probe::Dependency(name) => format!("dependency {name}"),
            };
            let instance = signal
                .instance
                .as_ref()
                .map(|i| format!(" of instance {i}"))
                .unwrap_or_default();
            format!("{probe} probe result{instance} on track {}", signal.track)
        })?;
        let clock = self.clock;
        for &i in route {
            let Some(slot) = self.slots.get_mut(i as usize) else {
                continue;
            };
            if slot.passes_over(signal.at, clock) {
                continue;
            }
            if let Some(verdict) = slot.trigger.observe_health(signal)
                && let Some(timing) = &slot.timing
            {
                let tr =
                    slot.lifecycle
                        .observe(verdict, slot.trigger.verdict_time(signal.at), timing);
                slot.lifecycle.advance(signal.at);
                if let Some(tr) = tr {
                    self.events.push_back(event(&slot.trigger, tr));
                }
            }
        }
        Ok(())
    }

    /// Refuses an input of data time `at` for the triggers `route` lists if it lies further
    /// past the engine's clock than one of their `staleAfter`s; `input` says what it is.
    fn check_not_ahead(
        &self,
        route: &[u32],
        at: Timestamp,
        input: impl FnOnce() -> String,
    ) -> Result<()> {
        let Some(clock) = self.clock else {
            return Ok(());
        };
        let ahead = route
            .iter()
            .filter_map(|&i| self.slots.get(i as usize))
            .filter_map(|s| s.timing.map(|t| (s, t.stale_after)))
            .find(|(_, stale_after)| at > clock.saturating_add(*stale_after));
        match ahead {
            Some((slot, stale_after)) => Err(Error::AheadOfClock {
                input: input(),
                at,
                clock,
                trigger: slot.trigger.id().to_owned(),
                stale_after_ms: stale_after.as_millis(),
            }),
            None => Ok(()),
        }
    }

    /// Moves the engine's clock to `now` (never back) without judging anything: no trigger
    /// goes stale and no cooldown ends, as they would at a [`tick`](Engine::tick). Inputs are
    /// refused only when dated further past the clock than a trigger's `staleAfter`, so a
    /// caller that reads the data up to its `now` and feeds it before ticking with that `now`
    /// calls this first, lest a window longer than a `staleAfter` (ticks far apart, a restart)
    /// be refused.
    pub fn advance_clock(&mut self, now: Timestamp) {
        self.clock = Some(self.clock.map_or(now, |clock| clock.max(now)));
    }

    /// Advances every trigger to `now`: triggers without usable data for longer than their
    /// `staleAfter` go stale (asking for their missing-data action, unless the cooldown of a
    /// fire of the same or a higher level still runs: then they ask when it ends, if still
    /// stale), and ended cooldowns clear (a breach that has held for its `duration` through
    /// one fires at once, rather than at the next input). Moves the engine's clock to `now`, as
    /// [`advance_clock`](Engine::advance_clock) does.
    pub fn tick(&mut self, now: Timestamp) {
        self.advance_clock(now);
        for slot in &mut self.slots {
            if let Some(timing) = &slot.timing
                && let Some(tr) = slot.lifecycle.tick(now, timing)
            {
                let mut ev = event(&slot.trigger, tr);
                if let TriggerState::Stale { .. } = tr.to {
                    let action = timing.missing.action();
                    let last = tr.last_data.map_or_else(
                        || "none since the start".to_owned(),
                        |t| format!("last at {t}"),
                    );
                    // The trigger's own reason follows: it says what it last read, or why it
                    // has no verdict (a learned baseline that never got its requests).
                    ev.evidence.reason = format!(
                        "no usable data for longer than {} ms ({last}): missing data asks to \
                         {action}; last evidence: {}",
                        timing.stale_after.as_millis(),
                        ev.evidence.reason
                    );
                }
                self.events.push_back(ev);
            }
        }
    }

    /// The oldest event not yet taken.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Takes every queued event, oldest first.
    pub fn drain_events(&mut self) -> std::collections::vec_deque::Drain<'_, Event> {
        self.events.drain(..)
    }

    /// The state of the trigger `id`.
    pub fn state(&self, id: &str) -> Option<TriggerState> {
        self.slots
            .iter()
            .find(|s| s.trigger.id() == id)
            .map(|s| s.lifecycle.state())
    }

    /// The data time of the newest usable input the trigger `id` took (a window with
    /// requests, a probe result), if it took any: a trigger that is `Ok` without ever having
    /// taken one has judged nothing, which a caller about to act on its silence must know.
    pub fn last_data(&self, id: &str) -> Option<Timestamp> {
        self.slots
            .iter()
            .find(|s| s.trigger.id() == id)
            .and_then(|s| s.lifecycle.last_data())
    }

    /// Every trigger's id and state, in config order.
    pub fn states(&self) -> impl Iterator<Item = (&str, TriggerState)> {
        self.slots
            .iter()
            .map(|s| (s.trigger.id(), s.lifecycle.state()))
    }

    /// What the trigger `id` last saw, stamped `at`.
    pub fn evidence(&self, id: &str, at: Timestamp) -> Option<Evidence> {
        self.slots
            .iter()
            .find(|s| s.trigger.id() == id)
            .map(|s| s.trigger.evidence(at, None))
    }

    /// The most severe action among triggers currently firing or stale (the stale action is the
    /// trigger's missing-data policy), or `None` when nothing asks for anything. A firing
    /// trigger counts at the most severe level that still holds, so a hold eased to a warning
    /// counts as a warning ([`TriggerState`] says when levels step down). A trigger in
    /// its cooldown whose condition is breached again for its `duration` asks for that level
    /// too: the cooldown keeps a fire from being repeated, not the condition from counting, so
    /// a hold breached again inside it still holds.
    pub fn current_action(&self) -> Option<Action> {
        self.slots
            .iter()
            .filter_map(|s| s.timing.and_then(|t| s.lifecycle.asks(&t)))
            .max()
    }

    /// [`current_action`](Self::current_action) without what stale triggers ask for: the
    /// action the data itself asks for. A caller that knows a track can have no data yet (it
    /// serves no traffic) holds on this one, as staleness there says nothing of the version.
    pub fn data_action(&self) -> Option<Action> {
        self.slots
            .iter()
            .filter(|s| !matches!(s.lifecycle.state(), TriggerState::Stale { .. }))
            .filter_map(|s| s.timing.and_then(|t| s.lifecycle.asks(&t)))
            .max()
    }

    /// An estimate of the memory the engine holds, in bytes: trigger structs and the heap they
    /// own, plus the routing tables (queued events excluded).
    pub fn memory_bytes(&self) -> usize {
        let slots = self.slots.capacity() * std::mem::size_of::<Slot>()
            + self
                .slots
                .iter()
                .map(|s| s.trigger.heap_bytes())
                .sum::<usize>();
        let routes = |n_keys: usize, lists: usize, ids: usize| {
            n_keys * (std::mem::size_of::<(Metric, HashMap<Track, Vec<u32>>)>() + 8)
                + lists * (std::mem::size_of::<(Track, Vec<u32>)>() + 8)
                + ids * std::mem::size_of::<u32>()
        };
        let count = |r: &Routes<Metric>| {
            let lists: usize = r.values().map(HashMap::len).sum();
            let ids: usize = r
                .values()
                .flat_map(HashMap::values)
                .map(Vec::capacity)
                .sum();
            routes(r.capacity(), lists, ids)
        };
        let probe_lists: usize = self.probe_routes.values().map(HashMap::len).sum();
        let probe_ids: usize = self
            .probe_routes
            .values()
            .flat_map(HashMap::values)
            .map(Vec::capacity)
            .sum();
        slots
            + count(&self.metric_routes)
            + routes(self.probe_routes.capacity(), probe_lists, probe_ids)
    }
}

fn event(trigger: &AnyTrigger, tr: Transition) -> Event {
    Event {
        trigger: trigger.id().to_owned(),
        at: tr.at,
        from: tr.from,
        to: tr.to,
        action: tr.action,
        evidence: trigger.evidence(tr.at, tr.since),
    }
}
