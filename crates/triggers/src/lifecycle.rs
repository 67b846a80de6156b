//! The state machine every trigger shares: `for` duration, cooldown and staleness.
//!
//! A trigger only answers a [`Verdict`] for each input; this module turns the stream of verdicts
//! into [`TriggerState`]s and actions. Times are data times (an observation's window end, a
//! probe's completion time) and the `now` of [`Engine::tick`](crate::Engine::tick).
//!
//! The `for` duration and staleness are measured in data time: an input older than the last
//! data taken is late and ignored (it changes nothing), as is one already older than `staleAfter`
//! at the machine's clock; an input older than the last tick but newer than the last data counts
//! at its own time. A gap in the data longer than `staleAfter` ends a breach, whether a tick or
//! the next input finds it first. The machine's clock (the latest input or tick) never moves
//! backwards: fires, cooldowns and state changes are reported at it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serin_signals::Timestamp;

use crate::action::{Action, MissingData};

/// What a trigger concludes from its latest input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Verdict {
    /// The condition is on the healthy side of its bound.
    Ok,
    /// The input carried no usable data (no requests, an unknown probe, a missing baseline):
    /// nothing is concluded (a pending breach is neither ended nor extended), and the time since
    /// the last usable data keeps growing.
    NoData,
    /// The condition is breached at this action's level.
    Breach(Action),
}

/// Where a trigger stands: `Ok → Pending → Firing → Cooldown → Ok`, plus `Stale` when its data is
/// missing.
///
/// The level a firing trigger reports (and [`Engine::current_action`](crate::Engine::current_action)
/// counts) is the most severe one whose condition currently holds for its own `duration`, as
/// with one Prometheus alert rule per severity: when a higher level clears while a lower one
/// still holds, the trigger steps down to the lower one (a hold eased to a warning stops holding
/// the rollout, instead of holding it until its deadline rolls it back). A step down asks for
/// nothing new: the lower condition has held all along, under the higher one. Going back up
/// asks again unless the cooldown of a fire of that level still runs, and then the trigger
/// reports the level without asking. A rollback never steps down: once asked for it is acted
/// on, once, and stays firing while any level is breached.
///
/// Read back from saved state strictly: an unknown key is an error, not ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "state", from = "StrictState")]
pub enum TriggerState {
    /// Healthy, or not yet breached.
    Ok,
    /// Breached at `action`'s level since `since`, waiting for the `duration` to elapse.
    Pending {
        /// When the breach began.
        since: Timestamp,
        /// The level breached.
        action: Action,
    },
    /// Asks for `action` since `since`; stays here while the condition holds, at the most
    /// severe level that still holds (a rollback at rollback).
    Firing {
        /// The level asked for: the one fired, or the one stepped to since.
        action: Action,
        /// When it fired, or stepped to this level.
        since: Timestamp,
    },
    /// Fired `action` and the condition has cleared (or is breached again), but a fire of the
    /// same or a lower level is suppressed until `until`. A breach that holds for the duration
    /// meanwhile is not asked for again, yet still counts in
    /// [`Engine::current_action`](crate::Engine::current_action); if it still holds at `until`,
    /// the first evaluation from then on (tick or input) fires it.
    Cooldown {
        /// The end of the cooldown.
        until: Timestamp,
        /// The action that started it.
        action: Action,
    },
    /// No usable data for longer than `staleAfter` since `since`.
    Stale {
        /// When the trigger went stale.
        since: Timestamp,
    },
}

/// [`TriggerState`] as it is read back. Serde ignores the extra keys of an internally tagged
/// unit variant even with `deny_unknown_fields` (`{"state": "ok", "since": ...}` would read as
/// `ok`), so `ok` is read as an empty struct variant here, where unknown keys are refused.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", tag = "state", deny_unknown_fields)]
enum StrictState {
    Ok {},
    Pending { since: Timestamp, action: Action },
    Firing { action: Action, since: Timestamp },
    Cooldown { until: Timestamp, action: Action },
    Stale { since: Timestamp },
}

impl From<StrictState> for TriggerState {
    fn from(s: StrictState) -> Self {
        match s {
            StrictState::Ok {} => TriggerState::Ok,
            StrictState::Pending { since, action } => TriggerState::Pending { since, action },
            StrictState::Firing { action, since } => TriggerState::Firing { action, since },
            StrictState::Cooldown { until, action } => TriggerState::Cooldown { until, action },
            StrictState::Stale { since } => TriggerState::Stale { since },
        }
    }
}

impl TriggerState {
    /// The state's name (`ok`, `pending`, `firing`, `cooldown`, `stale`).
    pub fn name(&self) -> &'static str {
        match self {
            TriggerState::Ok => "ok",
            TriggerState::Pending { .. } => "pending",
            TriggerState::Firing { .. } => "firing",
            TriggerState::Cooldown { .. } => "cooldown",
            TriggerState::Stale { .. } => "stale",
        }
    }
}

/// Refuses a time `name` of a deserialized state that lies past the machine's `clock`: the
/// machine never writes one, and one from a damaged snapshot would silence the trigger.
pub(crate) fn not_after(name: &str, at: Option<Timestamp>, clock: Timestamp) -> Result<(), String> {
    match at {
        Some(at) if at > clock => Err(format!("{name} {at} is later than the clock {clock}")),
        _ => Ok(()),
    }
}

/// The timing parameters of one trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timing {
    pub duration: Duration,
    pub cooldown: Duration,
    pub stale_after: Duration,
    pub missing: MissingData,
}

/// A change the machine reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Transition {
    pub from: TriggerState,
    pub to: TriggerState,
    pub action: Option<Action>,
    pub at: Timestamp,
    pub since: Option<Timestamp>,
    /// The time of the last usable data, if any.
    pub last_data: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Fired {
    action: Action,
    at: Timestamp,
}

/// The runtime state of the machine (serializable for resume after restart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Lifecycle {
    state: TriggerState,
    /// Since when (data time) the verdict has been at or above each action's level, without a
    /// break.
    since: [Option<Timestamp>; 3],
    fired: Option<Fired>,
    /// The data time of the newest usable input taken (never re-stamped with the clock).
    last_data: Option<Timestamp>,
    origin: Timestamp,
    /// The latest input or tick.
    clock: Timestamp,
}

impl Lifecycle {
    /// A machine started at `origin` (staleness counts from there until the first data).
    pub fn new(origin: Timestamp) -> Self {
        Lifecycle {
            state: TriggerState::Ok,
            since: [None; 3],
            fired: None,
            last_data: None,
            origin,
            clock: origin,
        }
    }

    pub fn state(&self) -> TriggerState {
        self.state
    }

    /// The data time of the newest usable input taken, if any.
    pub fn last_data(&self) -> Option<Timestamp> {
        self.last_data
    }

    /// The latest input or tick: no time the trigger holds may lie past it.
    pub fn clock(&self) -> Timestamp {
        self.clock
    }

    /// Checks a deserialized machine: no time it holds lies past its clock (the latest input
    /// or tick), and a breach begins no later than the last data. The machine itself never
    /// writes such times; one from a damaged snapshot would silence the trigger without a
    /// word: a fire dated in the future keeps it in cooldown, and last data dated there makes
    /// every real input look late. Nor does it write a firing state without a fire of its
    /// level or above, or a cooldown other than the one of the fire it holds, which would let
    /// a restored trigger ask for the same action again at once.
    pub fn check_state(&self, t: &Timing) -> Result<(), String> {
        let clock = self.clock;
        let late = |name: &str, at: Option<Timestamp>| not_after(name, at, clock);
        late("origin", Some(self.origin))?;
        late("lastData", self.last_data)?;
        late("fired.at", self.fired.map(|f| f.at))?;
        for (a, since) in Action::ALL.into_iter().zip(self.since) {
            if since.is_some_and(|s| self.last_data.is_none_or(|last| s > last)) {
                let last = self.last_data.map_or("none".to_owned(), |l| l.to_string());
                return Err(format!(
                    "the {a} breach begins after the last data ({last})"
                ));
            }
        }
        // A firing trigger holds the fire of its level or a higher one (a step down keeps it, a
        // step up inside a cooldown happens only under a fire of that level), and a cooldown
        // is the one of the fire it holds. Without that fire, or under a lower one, a restored
        // trigger would ask for the same action again at once, its cooldown or not.
        let fired = self
            .fired
            .map_or("none".to_owned(), |f| format!("{} at {}", f.action, f.at));
        match self.state {
            TriggerState::Firing { action, .. } if self.fired.is_none_or(|f| f.action < action) => {
                return Err(format!(
                    "fired {fired} does not answer the state firing at {action}"
                ));
            }
            TriggerState::Cooldown { action, .. }
                if self.fired.is_none_or(|f| f.action != action) =>
            {
                return Err(format!(
                    "fired {fired} does not answer the state's cooldown of {action}"
                ));
            }
            TriggerState::Cooldown { until, .. }
                if self
                    .fired
                    .is_some_and(|f| until != f.at.saturating_add(t.cooldown)) =>
            {
                return Err(format!(
                    "state.until {until} is not the end of the cooldown of fired {fired}"
                ));
            }
            _ => {}
        }
        match self.state {
            TriggerState::Pending { since, .. }
            | TriggerState::Firing { since, .. }
            | TriggerState::Stale { since } => late("state.since", Some(since)),
            TriggerState::Cooldown { until, .. } if until > clock.saturating_add(t.cooldown) => {
                Err(format!(
                    "the cooldown until {until} outlasts the clock {clock} plus the cooldown"
                ))
            }
            TriggerState::Ok | TriggerState::Cooldown { .. } => Ok(()),
        }
    }

    /// The action the trigger asks for now: the level it is firing at while it stays firing,
    /// its missing-data action while stale, and otherwise the most severe level whose breach has
    /// held for the whole `duration` up to the last data. The last case is a breach the cooldown
    /// keeps from firing again: the cooldown only keeps the request from being repeated, so a
    /// hold that is breached again inside it still holds.
    pub fn asks(&self, t: &Timing) -> Option<Action> {
        match self.state {
            TriggerState::Firing { action, .. } => Some(action),
            TriggerState::Stale { .. } => Some(t.missing.action()),
            TriggerState::Ok | TriggerState::Pending { .. } | TriggerState::Cooldown { .. } => {
                self.held(t)
            }
        }
    }

    /// The most severe level whose breach has held for the whole `duration` up to the last
    /// data.
    fn held(&self, t: &Timing) -> Option<Action> {
        let last = self.last_data?;
        Action::ALL.into_iter().rev().find(|a| {
            self.since[a.index()].is_some_and(|s| last.saturating_duration_since(s) >= t.duration)
        })
    }

    /// Moves the clock to an input of time `at` that a merging trigger took, whatever data
    /// time its verdict stands for.
    pub fn advance(&mut self, at: Timestamp) {
        self.clock = self.clock.max(at);
    }

    /// Whether an input of data time `at` would be taken: it is neither older than the last
    /// data taken (late, or old data sent again) nor older than `staleAfter` at the clock (stale
    /// on arrival).
    pub fn takes(&self, at: Timestamp, t: &Timing) -> bool {
        self.last_data.is_none_or(|last| at >= last) && !self.stale_on_arrival(at, t)
    }

    /// Whether an input of data time `at` is already older than `staleAfter` at the clock:
    /// had it come in time, the trigger would have gone stale since, so it can neither keep
    /// the trigger fresh nor count toward a breach.
    pub fn stale_on_arrival(&self, at: Timestamp, t: &Timing) -> bool {
        self.clock.saturating_duration_since(at) > t.stale_after
    }

    /// Feeds one verdict observed at data time `at`. An input the machine does not
    /// [take](Lifecycle::takes) changes nothing.
    pub fn observe(&mut self, verdict: Verdict, at: Timestamp, t: &Timing) -> Option<Transition> {
        if !self.takes(at, t) {
            return None;
        }
        let now = at.max(self.clock);
        self.clock = now;
        let from = self.state;
        // A gap in the data longer than `staleAfter` ends the breach, as a tick inside it would
        // have: the first input after the gap may come before any tick (a process restarted
        // after it feeds before it ticks).
        let gap_ended_breach = self
            .last_data
            .is_some_and(|last| at.saturating_duration_since(last) > t.stale_after)
            && self.breach().is_some();
        if gap_ended_breach {
            self.since = [None; 3];
            // What fired answered the breach the gap ended: a breach after the gap is a new
            // one, pending for its own duration, as after a tick inside the gap, rather than
            // latched to the old fire (a rollback would otherwise stay firing on it).
            if let TriggerState::Firing { .. } = self.state {
                self.state = TriggerState::Ok;
            }
        }
        match verdict {
            // An input without data concludes nothing, but a breach the gap before it ended is
            // over all the same: the state leaves `Pending` or `Firing` below, as after any
            // other input, rather than go on waiting or asking for a breach no longer held.
            Verdict::NoData if !gap_ended_breach => return self.end_cooldown(from, now, t),
            Verdict::NoData => {}
            Verdict::Ok => {
                self.last_data = Some(at);
                self.since = [None; 3];
            }
            Verdict::Breach(level) => {
                self.last_data = Some(at);
                for a in Action::ALL {
                    let slot = &mut self.since[a.index()];
                    if a <= level {
                        slot.get_or_insert(at);
                    } else {
                        *slot = None;
                    }
                }
            }
        }
        let fire = self.eligible(at, now, t);
        if let Some(action) = fire {
            self.fired = Some(Fired { action, at: now });
            self.state = TriggerState::Firing { action, since: now };
        } else {
            self.state = self.resting(now, t);
        }
        self.report(from, fire, now)
    }

    /// Advances the clock to `now`: detects staleness and the end of a cooldown.
    pub fn tick(&mut self, now: Timestamp, t: &Timing) -> Option<Transition> {
        let now = now.max(self.clock);
        self.clock = now;
        let from = self.state;
        let last = self.last_data.unwrap_or(self.origin);
        let stale = now.saturating_duration_since(last) > t.stale_after;
        if stale && !matches!(from, TriggerState::Stale { .. }) {
            self.since = [None; 3];
            let action = t.missing.action();
            // The stale action counts as a fire, and like any fire it is not asked for again
            // inside the cooldown of one of the same or a higher level (a source that keeps
            // dropping out would otherwise ask each time); nor does it end that cooldown: a
            // rollback would otherwise fire again as soon as breaching data returns. The trigger
            // is stale all the same, so its action still counts in the current action.
            let cooling = self
                .fired
                .filter(|f| f.action >= action && now < f.at.saturating_add(t.cooldown));
            self.fired = cooling.or(Some(Fired { action, at: now }));
            self.state = TriggerState::Stale { since: now };
            return self.report(from, cooling.is_none().then_some(action), now);
        }
        // A trigger that went stale inside the cooldown of a fire of its missing-data action's
        // level or above did not ask for that action (its fire is older than the staleness);
        // still stale when that cooldown ends, it asks now, as a breach that held through a
        // cooldown does.
        if let TriggerState::Stale { since } = from
            && let Some(f) = self.fired
            && f.at < since
            && now >= f.at.saturating_add(t.cooldown)
        {
            let action = t.missing.action();
            self.fired = Some(Fired { action, at: now });
            return self.report(from, Some(action), now);
        }
        self.end_cooldown(from, now, t)
    }

    /// Ends a cooldown that has run out by the clock `now`. A breach that has held for its
    /// `duration` up to the last data fires here, at the first evaluation at or after the
    /// cooldown's end, as a Prometheus rule that kept firing through an alert manager's repeat
    /// interval notifies again once it elapses; resting in `Pending` would wait for the next
    /// input and fire one check interval late.
    fn end_cooldown(
        &mut self,
        from: TriggerState,
        now: Timestamp,
        t: &Timing,
    ) -> Option<Transition> {
        if let TriggerState::Cooldown { until, .. } = from
            && now >= until
        {
            let fire = self.last_data.and_then(|last| self.eligible(last, now, t));
            if let Some(action) = fire {
                self.fired = Some(Fired { action, at: now });
                self.state = TriggerState::Firing { action, since: now };
            } else {
                self.state = self.resting(now, t);
            }
            return self.report(from, fire, now);
        }
        self.report(from, None, now)
    }

    /// The most severe level that has been breached for the whole `duration` up to the data
    /// time `at` and is not suppressed, at the clock `now`, by the current firing or a cooldown of
    /// the same or a higher level.
    fn eligible(&self, at: Timestamp, now: Timestamp, t: &Timing) -> Option<Action> {
        for a in Action::ALL.into_iter().rev() {
            let Some(since) = self.since[a.index()] else {
                continue;
            };
            if at.saturating_duration_since(since) < t.duration {
                continue;
            }
            if let TriggerState::Firing { action, .. } = self.state
                && action >= a
            {
                return None;
            }
            if let Some(f) = self.fired
                && f.action >= a
                && now < f.at.saturating_add(t.cooldown)
            {
                continue;
            }
            return Some(a);
        }
        None
    }

    fn breach(&self) -> Option<(Action, Timestamp)> {
        Action::ALL
            .into_iter()
            .rev()
            .find_map(|a| self.since[a.index()].map(|s| (a, s)))
    }

    /// The state when nothing fires at `at`.
    ///
    /// A trigger firing below `rollback` follows the most severe level that still holds for its
    /// `duration`: it steps down when a higher level clears (and back up, without asking again,
    /// when that level holds again inside its cooldown), so a hold whose condition has eased to
    /// a warning no longer holds the rollout. A rollback never steps down while any level is
    /// breached: it has been asked for and is acted on once.
    fn resting(&self, at: Timestamp, t: &Timing) -> TriggerState {
        let breach = self.breach();
        if let TriggerState::Firing { action, since } = self.state
            && breach.is_some()
        {
            if action == Action::Rollback {
                return self.state;
            }
            if let Some(level) = self.held(t) {
                let since = if level == action { since } else { at };
                return TriggerState::Firing {
                    action: level,
                    since,
                };
            }
        }
        if let Some(f) = self.fired {
            let until = f.at.saturating_add(t.cooldown);
            if at < until {
                return TriggerState::Cooldown {
                    until,
                    action: f.action,
                };
            }
        }
        match breach {
            Some((action, since)) => TriggerState::Pending { since, action },
            None => TriggerState::Ok,
        }
    }

    fn report(
        &self,
        from: TriggerState,
        action: Option<Action>,
        at: Timestamp,
    ) -> Option<Transition> {
        if from == self.state && action.is_none() {
            return None;
        }
        let since = match self.state {
            TriggerState::Firing { action, .. } => self.since[action.index()],
            TriggerState::Pending { since, .. } | TriggerState::Stale { since } => Some(since),
            TriggerState::Ok | TriggerState::Cooldown { .. } => None,
        };
        Some(Transition {
            from,
            to: self.state,
            action,
            at,
            since,
            last_data: self.last_data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(secs: u64) -> Timestamp {
        Timestamp::from_millis(secs * 1_000)
    }

    fn timing(duration: u64, cooldown: u64) -> Timing {
        Timing {
            duration: Duration::from_secs(duration),
            cooldown: Duration::from_secs(cooldown),
            stale_after: Duration::from_secs(60),
            missing: MissingData::Hold,
        }
    }

    const RB: Verdict = Verdict::Breach(Action::Rollback);

    #[test]
    fn breach_goes_pending_then_fires_after_the_duration() {
        let t = timing(30, 60);
        let mut m = Lifecycle::new(ts(0));
        let tr = m.observe(RB, ts(10), &t).unwrap();
        assert_eq!(
            tr.to,
            TriggerState::Pending {
                since: ts(10),
                action: Action::Rollback
            }
        );
        assert_eq!(tr.action, None);
        assert!(m.observe(RB, ts(30), &t).is_none(), "still pending");
        let tr = m.observe(RB, ts(40), &t).unwrap();
        assert_eq!(tr.action, Some(Action::Rollback));
        assert_eq!(tr.since, Some(ts(10)));
        assert!(matches!(m.state(), TriggerState::Firing { .. }));
        assert!(m.observe(RB, ts(50), &t).is_none(), "firing is latched");
    }

    #[test]
    fn a_gap_longer_than_stale_after_ends_the_breach_before_any_tick() {
        // A process restarted after the gap feeds its first window before it ticks: the gap
        // ends the pending breach all the same, as Prometheus drops a pending alert whose
        // series went missing.
        let t = timing(60, 0);
        let mut m = Lifecycle::new(ts(0));
        m.observe(RB, ts(10), &t);
        let tr = m.observe(RB, ts(71), &t).unwrap();
        assert_eq!(
            (tr.to, tr.action),
            (
                TriggerState::Pending {
                    since: ts(71),
                    action: Action::Rollback
                },
                None
            )
        );
        assert!(m.observe(RB, ts(130), &t).is_none());
        assert_eq!(
            m.observe(RB, ts(131), &t).unwrap().action,
            Some(Action::Rollback)
        );
        // A gap of exactly staleAfter is not stale: the breach goes on.
        let mut m = Lifecycle::new(ts(0));
        m.observe(RB, ts(10), &t);
        assert_eq!(
            m.observe(RB, ts(70), &t).unwrap().action,
            Some(Action::Rollback)
        );
    }

    #[test]
    fn a_gap_ends_a_fired_rollback_whether_a_tick_or_the_next_input_finds_it() {
        // Fired a rollback at 40, then nothing until 200 (staleAfter 60, cooldown 30): the
        // breach the rollback answered is over, and the one that starts at 200 is new.
        let t = timing(30, 30);
        let fired = || {
            let mut m = Lifecycle::new(ts(0));
            m.observe(RB, ts(10), &t);
            assert_eq!(
                m.observe(RB, ts(40), &t).unwrap().action,
                Some(Action::Rollback)
            );
            m
        };
        let mut ticked = fired();
        ticked.tick(ts(150), &t);
        ticked.observe(RB, ts(200), &t);
        let mut fed = fired();
        let tr = fed.observe(RB, ts(200), &t).unwrap();
        let pending = TriggerState::Pending {
            since: ts(200),
            action: Action::Rollback,
        };
        assert_eq!(ticked.state(), pending);
        assert_eq!((tr.to, tr.action), (pending, None));
        // The new breach fires once it has held for its own duration.
        assert_eq!(
            fed.observe(RB, ts(230), &t).unwrap().action,
            Some(Action::Rollback)
        );
    }

    #[test]
    fn an_input_without_data_after_a_gap_fires_nothing_from_before_it() {
        let t = timing(0, 60);
        let mut m = Lifecycle::new(ts(0));
        assert_eq!(
            m.observe(RB, ts(10), &t).unwrap().action,
            Some(Action::Rollback)
        );
        m.observe(Verdict::Ok, ts(20), &t);
        // Breached again inside the cooldown, then nothing for longer than staleAfter: the
        // cooldown ends at an empty window, which must not fire on the breach before the gap.
        m.observe(RB, ts(30), &t);
        let tr = m.observe(Verdict::NoData, ts(100), &t).unwrap();
        assert_eq!((tr.to, tr.action), (TriggerState::Ok, None));
        assert_eq!(
            m.tick(ts(100), &t).unwrap().to,
            TriggerState::Stale { since: ts(100) }
        );
    }

    #[test]
    fn a_healthy_reading_resets_the_duration() {
        let t = timing(30, 60);
        let mut m = Lifecycle::new(ts(0));
        m.observe(RB, ts(10), &t);
        let tr = m.observe(Verdict::Ok, ts(20), &t).unwrap();
        assert_eq!(tr.to, TriggerState::Ok);
        m.observe(RB, ts(30), &t);
        assert!(m.observe(RB, ts(50), &t).is_none());
        assert_eq!(
            m.observe(RB, ts(60), &t).unwrap().action,
            Some(Action::Rollback)
        );
    }

    #[test]
    fn firing_clears_into_cooldown_then_ok() {
        let t = timing(0, 60);
        let mut m = Lifecycle::new(ts(0));
        assert_eq!(
            m.observe(RB, ts(10), &t).unwrap().action,
            Some(Action::Rollback)
        );
        let tr = m.observe(Verdict::Ok, ts(20), &t).unwrap();
        assert_eq!(
            tr.to,
            TriggerState::Cooldown {
                until: ts(70),
                action: Action::Rollback
            }
        );
        assert!(
            m.observe(RB, ts(30), &t).is_none(),
            "suppressed in cooldown"
        );
        assert!(m.tick(ts(69), &t).is_none());
        // The breach still holds when the cooldown ends: it fires at that evaluation, not at
        // the next input.
        let tr = m.tick(ts(70), &t).unwrap();
        assert_eq!(
            (tr.to, tr.action, tr.since),
            (
                TriggerState::Firing {
                    action: Action::Rollback,
                    since: ts(70)
                },
                Some(Action::Rollback),
                Some(ts(30))
            )
        );
        assert!(m.observe(RB, ts(71), &t).is_none(), "firing is latched");
    }

    #[test]
    fn a_breach_that_holds_through_the_cooldown_fires_when_it_ends() {
        let t = timing(30, 60);
        let mut m = Lifecycle::new(ts(0));
        let warn = Verdict::Breach(Action::Warn);
        m.observe(warn, ts(0), &t);
        assert_eq!(
            m.observe(warn, ts(30), &t).unwrap().action,
            Some(Action::Warn)
        );
        m.observe(Verdict::Ok, ts(40), &t);
        // Breached again at 50 s, held for its 30 s by 80 s, inside the cooldown (until 90 s).
        m.observe(warn, ts(50), &t);
        assert!(m.observe(warn, ts(80), &t).is_none());
        assert!(m.tick(ts(89), &t).is_none());
        let tr = m.tick(ts(90), &t).unwrap();
        assert_eq!(
            (tr.action, tr.at, tr.since),
            (Some(Action::Warn), ts(90), Some(ts(50)))
        );
        assert_eq!(
            m.state(),
            TriggerState::Firing {
                action: Action::Warn,
                since: ts(90)
            }
        );
        // Its own cooldown runs from this fire.
        m.observe(Verdict::Ok, ts(95), &t);
        m.observe(warn, ts(100), &t);
        assert!(m.observe(warn, ts(140), &t).is_none());
        assert!(m.tick(ts(149), &t).is_none());
        assert_eq!(m.tick(ts(150), &t).unwrap().action, Some(Action::Warn));
    }

    #[test]
    fn a_breach_short_of_its_duration_when_the_cooldown_ends_waits() {
        let t = timing(30, 60);
        let mut m = Lifecycle::new(ts(0));
        assert!(m.observe(RB, ts(0), &t).is_some());
        assert_eq!(
            m.observe(RB, ts(30), &t).unwrap().action,
            Some(Action::Rollback)
        );
        m.observe(Verdict::Ok, ts(40), &t);
        m.observe(RB, ts(80), &t);
        // At 90 s the breach has held 0 s of data: pending, nothing asked.
        let tr = m.tick(ts(90), &t).unwrap();
        assert_eq!(
            (tr.to, tr.action),
            (
                TriggerState::Pending {
                    since: ts(80),
                    action: Action::Rollback
                },
                None
            )
        );
        assert_eq!(
            m.observe(RB, ts(110), &t).unwrap().action,
            Some(Action::Rollback)
        );
    }

    #[test]
    fn an_input_without_data_after_the_cooldown_ends_it_too() {
        let t = timing(0, 60);
        let mut m = Lifecycle::new(ts(0));
        m.observe(RB, ts(10), &t);
        m.observe(Verdict::Ok, ts(20), &t);
        m.observe(RB, ts(30), &t);
        let tr = m.observe(Verdict::NoData, ts(70), &t).unwrap();
        assert_eq!((tr.action, tr.at), (Some(Action::Rollback), ts(70)));
    }

    #[test]
    fn cooldown_ends_in_ok_when_healthy() {
        let t = timing(0, 60);
        let mut m = Lifecycle::new(ts(0));
        m.observe(RB, ts(10), &t);
        m.observe(Verdict::Ok, ts(20), &t);
        let tr = m.tick(ts(70), &t).unwrap();
        assert_eq!(tr.to, TriggerState::Ok);
        // A fire after the cooldown is allowed.
        assert!(m.observe(Verdict::Ok, ts(75), &t).is_none());
        assert_eq!(
            m.observe(RB, ts(80), &t).unwrap().action,
            Some(Action::Rollback)
        );
    }

    #[test]
    fn escalation_from_warn_is_not_hidden_by_its_cooldown() {
        let t = timing(0, 600);
        let mut m = Lifecycle::new(ts(0));
        let warn = Verdict::Breach(Action::Warn);
        assert_eq!(
            m.observe(warn, ts(1), &t).unwrap().action,
            Some(Action::Warn)
        );
        assert!(m.observe(warn, ts(2), &t).is_none());
        assert_eq!(
            m.observe(RB, ts(3), &t).unwrap().action,
            Some(Action::Rollback)
        );
        // Back down to warn: still firing, no new action.
        assert!(m.observe(warn, ts(4), &t).is_none());
        assert!(matches!(
            m.state(),
            TriggerState::Firing {
                action: Action::Rollback,
                ..
            }
        ));
    }

    #[test]
    fn a_hold_steps_down_to_warn_when_only_the_warn_level_holds() {
        let t = timing(30, 600);
        let mut m = Lifecycle::new(ts(0));
        let (warn, hold) = (Verdict::Breach(Action::Warn), Verdict::Breach(Action::Hold));
        m.observe(hold, ts(10), &t);
        assert_eq!(
            m.observe(hold, ts(40), &t).unwrap().action,
            Some(Action::Hold)
        );
        // Only the warn level holds now: the trigger reports warn, and asks for nothing new.
        let tr = m.observe(warn, ts(50), &t).unwrap();
        assert_eq!(
            (tr.to, tr.action, tr.since),
            (
                TriggerState::Firing {
                    action: Action::Warn,
                    since: ts(50)
                },
                None,
                Some(ts(10))
            )
        );
        assert_eq!(m.asks(&t), Some(Action::Warn));
        // The hold level breached again must hold for its own duration first.
        assert!(m.observe(hold, ts(60), &t).is_none());
        assert_eq!(m.asks(&t), Some(Action::Warn));
        // Held again inside the hold's cooldown: reported, not asked for again.
        let tr = m.observe(hold, ts(90), &t).unwrap();
        assert_eq!(
            (tr.to, tr.action),
            (
                TriggerState::Firing {
                    action: Action::Hold,
                    since: ts(90)
                },
                None
            )
        );
        assert_eq!(m.asks(&t), Some(Action::Hold));
        // Cleared: the hold's cooldown goes on from its fire.
        let tr = m.observe(Verdict::Ok, ts(100), &t).unwrap();
        assert_eq!(
            tr.to,
            TriggerState::Cooldown {
                until: ts(640),
                action: Action::Hold
            }
        );
        assert_eq!(m.asks(&t), None);
    }

    #[test]
    fn back_up_after_the_cooldown_asks_again() {
        // No gap in the data ends the breach between its inputs.
        let t = Timing {
            stale_after: Duration::from_secs(600),
            ..timing(0, 60)
        };
        let mut m = Lifecycle::new(ts(0));
        let (warn, hold) = (Verdict::Breach(Action::Warn), Verdict::Breach(Action::Hold));
        assert_eq!(
            m.observe(hold, ts(10), &t).unwrap().action,
            Some(Action::Hold)
        );
        // Eased to a warning past the hold's cooldown: still nothing new is asked for.
        let tr = m.observe(warn, ts(100), &t).unwrap();
        assert_eq!((tr.to.name(), tr.action), ("firing", None));
        assert_eq!(m.asks(&t), Some(Action::Warn));
        assert!(m.observe(warn, ts(110), &t).is_none());
        // The hold comes back after its cooldown: asked for again.
        let tr = m.observe(hold, ts(120), &t).unwrap();
        assert_eq!(tr.action, Some(Action::Hold));
        assert_eq!(m.asks(&t), Some(Action::Hold));
    }

    #[test]
    fn nothing_steps_down_from_rollback() {
        // No gap in the data ends the breach between its inputs.
        let t = Timing {
            stale_after: Duration::from_secs(600),
            ..timing(0, 60)
        };
        let mut m = Lifecycle::new(ts(0));
        assert_eq!(
            m.observe(RB, ts(10), &t).unwrap().action,
            Some(Action::Rollback)
        );
        // Inside the cooldown and after it, at every lower level: still the rollback.
        for (s, level) in [(20, Action::Hold), (30, Action::Warn), (200, Action::Warn)] {
            assert!(
                m.observe(Verdict::Breach(level), ts(s), &t).is_none(),
                "{level} at {s}"
            );
            assert_eq!(
                m.state(),
                TriggerState::Firing {
                    action: Action::Rollback,
                    since: ts(10)
                }
            );
            assert_eq!(m.asks(&t), Some(Action::Rollback));
        }
    }

    #[test]
    fn saved_states_with_unknown_keys_are_refused() {
        let firing = TriggerState::Firing {
            action: Action::Hold,
            since: ts(5),
        };
        let json = serde_json::to_value(firing).unwrap();
        assert_eq!(
            serde_json::from_value::<TriggerState>(json.clone()).unwrap(),
            firing
        );
        for (state, key) in [
            (json, "until"),
            (serde_json::to_value(TriggerState::Ok).unwrap(), "since"),
            (
                serde_json::to_value(TriggerState::Stale { since: ts(5) }).unwrap(),
                "action",
            ),
        ] {
            let mut bad = state;
            bad[key] = serde_json::json!(7);
            let msg = serde_json::from_value::<TriggerState>(bad.clone())
                .unwrap_err()
                .to_string();
            assert!(msg.contains(key), "{bad}: {msg}");
        }
    }

    #[test]
    fn missing_data_goes_stale_with_the_policy_action() {
        let mut t = timing(0, 60);
        t.missing = MissingData::Fire;
        let mut m = Lifecycle::new(ts(0));
        assert!(
            m.tick(ts(60), &t).is_none(),
            "exactly staleAfter is not yet stale"
        );
        let tr = m.tick(ts(61), &t).unwrap();
        assert_eq!(tr.to, TriggerState::Stale { since: ts(61) });
        assert_eq!(tr.action, Some(Action::Rollback));
        assert!(m.tick(ts(200), &t).is_none(), "stale is reported once");
        // NoData does not refresh; Ok does.
        assert!(m.observe(Verdict::NoData, ts(201), &t).is_none());
        let tr = m.observe(Verdict::Ok, ts(300), &t).unwrap();
        assert_eq!(tr.to, TriggerState::Ok);
    }

    #[test]
    fn going_stale_keeps_the_cooldown_of_a_more_severe_fire() {
        let t = timing(0, 600);
        let mut m = Lifecycle::new(ts(0));
        assert_eq!(
            m.observe(RB, ts(10), &t).unwrap().action,
            Some(Action::Rollback)
        );
        // Stale, but a hold is not asked for inside the rollback's cooldown.
        let tr = m.tick(ts(100), &t).unwrap();
        assert_eq!(
            (tr.to, tr.action),
            (TriggerState::Stale { since: ts(100) }, None)
        );
        assert_eq!(m.asks(&t), Some(Action::Hold));
        // Data returns still breaching, inside the rollback's cooldown: suppressed.
        let tr = m.observe(RB, ts(110), &t).unwrap();
        assert_eq!(tr.action, None);
        assert_eq!(
            tr.to,
            TriggerState::Cooldown {
                until: ts(610),
                action: Action::Rollback
            }
        );
        assert!(m.observe(RB, ts(609), &t).is_none());
        assert_eq!(
            m.observe(RB, ts(610), &t).unwrap().action,
            Some(Action::Rollback)
        );
    }

    #[test]
    fn staleness_that_outlasts_the_cooldown_asks_when_it_ends() {
        let t = timing(0, 600);
        let mut m = Lifecycle::new(ts(0));
        m.observe(RB, ts(10), &t);
        assert_eq!(m.tick(ts(100), &t).unwrap().action, None);
        assert!(m.tick(ts(609), &t).is_none());
        let tr = m.tick(ts(610), &t).unwrap();
        assert_eq!(
            (tr.to, tr.action, tr.at),
            (
                TriggerState::Stale { since: ts(100) },
                Some(Action::Hold),
                ts(610)
            )
        );
        // Asked once: not again while it stays stale.
        assert!(m.tick(ts(1_300), &t).is_none());
    }

    #[test]
    fn firing_clears_straight_to_ok_after_the_cooldown_and_can_go_stale() {
        let t = timing(0, 30);
        let mut m = Lifecycle::new(ts(0));
        m.observe(RB, ts(10), &t);
        m.observe(RB, ts(50), &t);
        let tr = m.observe(Verdict::Ok, ts(50), &t).unwrap();
        assert_eq!((tr.from.name(), tr.to), ("firing", TriggerState::Ok));
        m.observe(RB, ts(60), &t);
        let tr = m.tick(ts(200), &t).unwrap();
        assert_eq!(tr.from.name(), "firing");
        assert_eq!(tr.to, TriggerState::Stale { since: ts(200) });
        assert_eq!(tr.action, Some(Action::Hold));
        assert_eq!(tr.last_data, Some(ts(60)));
    }

    #[test]
    fn pending_escalates_and_de_escalates_without_firing() {
        let t = timing(60, 0);
        let mut m = Lifecycle::new(ts(0));
        let warn = Verdict::Breach(Action::Warn);
        m.observe(warn, ts(10), &t);
        let tr = m.observe(RB, ts(20), &t).unwrap();
        assert_eq!(
            tr.to,
            TriggerState::Pending {
                since: ts(20),
                action: Action::Rollback
            }
        );
        let tr = m.observe(warn, ts(30), &t).unwrap();
        assert_eq!(
            tr.to,
            TriggerState::Pending {
                since: ts(10),
                action: Action::Warn
            }
        );
        // The warn level has held since 10 s: it fires at 70 s.
        assert_eq!(
            m.observe(warn, ts(70), &t).unwrap().action,
            Some(Action::Warn)
        );
    }

    #[test]
    fn a_late_healthy_input_does_not_clear_a_later_breach() {
        let t = timing(30, 0);
        let mut m = Lifecycle::new(ts(0));
        m.observe(RB, ts(40), &t);
        assert!(m.tick(ts(45), &t).is_none());
        // A healthy window that ended before the breach began arrives late: it says nothing
        // about the breach, and changes nothing.
        assert!(m.observe(Verdict::Ok, ts(35), &t).is_none());
        assert_eq!(
            m.state(),
            TriggerState::Pending {
                since: ts(40),
                action: Action::Rollback
            }
        );
        let tr = m.observe(RB, ts(70), &t).unwrap();
        assert_eq!(tr.action, Some(Action::Rollback));
        assert_eq!(tr.since, Some(ts(40)));
    }

    #[test]
    fn old_data_sent_again_does_not_keep_a_trigger_fresh() {
        let t = timing(0, 0);
        let mut m = Lifecycle::new(ts(0));
        m.observe(Verdict::Ok, ts(10), &t);
        assert!(m.tick(ts(40), &t).is_none());
        // The same window again, and an older one: still data from 10 s.
        assert!(m.observe(Verdict::Ok, ts(10), &t).is_none());
        assert!(m.observe(Verdict::Ok, ts(5), &t).is_none());
        assert!(m.tick(ts(70), &t).is_none());
        let tr = m.tick(ts(71), &t).unwrap();
        assert_eq!(tr.to, TriggerState::Stale { since: ts(71) });
        assert_eq!(tr.last_data, Some(ts(10)));
    }

    #[test]
    fn a_late_but_new_input_counts_in_data_time() {
        let t = timing(30, 0);
        let mut m = Lifecycle::new(ts(0));
        m.observe(RB, ts(10), &t);
        assert!(m.tick(ts(45), &t).is_none());
        // Newer than the last data, older than the tick: the breach has held 28 s of data.
        assert!(m.observe(RB, ts(38), &t).is_none());
        assert!(matches!(m.state(), TriggerState::Pending { .. }));
        assert_eq!(
            m.observe(RB, ts(46), &t).unwrap().action,
            Some(Action::Rollback)
        );
    }

    #[test]
    fn data_older_than_stale_after_is_stale_on_arrival() {
        let t = timing(0, 0);
        let mut m = Lifecycle::new(ts(0));
        m.observe(Verdict::Ok, ts(10), &t);
        assert_eq!(
            m.tick(ts(100), &t).unwrap().to,
            TriggerState::Stale { since: ts(100) }
        );
        // Newer than the last data, but already older than staleAfter: it is not taken.
        assert!(m.observe(Verdict::Ok, ts(39), &t).is_none());
        assert_eq!(m.state(), TriggerState::Stale { since: ts(100) });
        // Data within staleAfter of the clock is.
        assert_eq!(
            m.observe(Verdict::Ok, ts(40), &t).unwrap().to,
            TriggerState::Ok
        );
    }
}
