//! [`DependencyFailureTrigger`]: an external dependency failing its checks, told apart from a
//! fault of the new version by the baseline track's view of the same dependency.

use serde::{Deserialize, Serialize};
use serin_signals::{HealthSignal, Measurement, Observation, Probe, ProbeStatus, Timestamp};

use crate::config::{DependencyFailureConfig, TriggerConfig};
use crate::error::{Error, Result};
use crate::evidence::{Evidence, TriggerKind};
use crate::lifecycle::{Verdict, not_after};
use crate::operator::Operator;
use crate::trigger::{Trigger, found, track_heap};

/// The most instances whose latest probe time one side remembers: a source probing from more
/// instances than this within `staleAfter` may have a result of the least recently heard one
/// counted again.
const MAX_INSTANCES: usize = 1024;

/// One track's checks of one stream: its probe results, or its call windows.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Side {
    consecutive_failures: u32,
    /// The newest pass or fail and its data time.
    last: Option<(bool, Timestamp)>,
    /// The data time of the newest failure.
    last_failure: Option<Timestamp>,
    /// The data time of the first failure of the current streak (`None` while passing, and in
    /// states journalled before it was kept, until the next failure).
    #[serde(default)]
    streak_start: Option<Timestamp>,
    /// The probe time of the newest probe result taken (any status).
    #[serde(default)]
    last_probe: Option<Timestamp>,
    /// The probe time of the newest result taken from each instance (`None`: the track as a
    /// whole) heard from within `staleAfter` of the newest: a probe result is the same check
    /// read again only when it is not newer than its own instance's last. Instances probed in
    /// one round may share its time, and a source lists its results by instance rather than
    /// by time, so the newest of the track would drop all but one instance's check of a round.
    /// Empty in states journalled before it was kept, until the next probe result.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    instances: Vec<(Option<Box<str>>, Timestamp)>,
    /// The window end of the newest call observation taken.
    #[serde(default)]
    last_call: Option<Timestamp>,
}

impl Side {
    /// Whether a probe result of `instance` at `at` is a check not yet taken, noting it if so:
    /// one not newer than its instance's last is that result read again, or an older one.
    /// Instances not heard from within `staleAfter` of the newest result are forgotten: a
    /// result that old is stale on arrival and never reaches the trigger.
    fn takes_probe(
        &mut self,
        instance: Option<&str>,
        at: Timestamp,
        stale_after: std::time::Duration,
    ) -> bool {
        let known = self
            .instances
            .iter()
            .position(|(name, _)| name.as_deref() == instance);
        let last = match known {
            Some(i) => self.instances.get(i).map(|(_, t)| *t),
            // A state journalled before instances were kept knows only the track's newest.
            None if self.instances.is_empty() => self.last_probe,
            None => None,
        };
        if last.is_some_and(|l| at <= l) {
            return false;
        }
        match known.and_then(|i| self.instances.get_mut(i)) {
            Some((_, t)) => *t = at,
            None => {
                if self.instances.len() >= MAX_INSTANCES
                    && let Some(oldest) = self
                        .instances
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, (_, t))| *t)
                        .map(|(i, _)| i)
                {
                    self.instances.swap_remove(oldest);
                }
                self.instances.push((instance.map(Box::from), at));
            }
        }
        let newest = self.last_probe.map_or(at, |l| l.max(at));
        self.last_probe = Some(newest);
        let horizon = newest.saturating_sub(stale_after);
        self.instances.retain(|(_, t)| *t >= horizon);
        true
    }
}

/// Where a check came from: probes and call windows are separate streams, each with its own
/// times and its own failure streak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum Stream {
    #[default]
    Probe,
    Call,
}

/// Why the trigger last breached, least severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum Cause {
    None,
    /// The baseline fails too, has no recent result, or has not been seen passing since the
    /// watched track began failing: the dependency itself may be down.
    Shared,
    /// Only the watched track fails: the new version broke its use of the dependency.
    Ours,
}

/// An external dependency failing `failureThreshold` consecutive checks of one stream (probes,
/// or call windows) from the watched track. See [`DependencyFailureConfig`] for how a shared
/// outage is told apart.
///
/// A check counts once: a probe result whose time is not later than the newest one of the same
/// track and instance (or a call window not later than the newest one of its track) is the same
/// check read again, or an older one, and changes nothing. Instances probed in the same round
/// each give their own check, whatever order a source lists them in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DependencyFailureTrigger {
    config: DependencyFailureConfig,
    /// The probe results of each track (in states journalled before call windows had sides of
    /// their own, both streams).
    watched: Side,
    baseline: Side,
    /// The call windows of each track: a stream of their own, so that probes that pass (the
    /// dependency answers) do not clear calls that fail (its queries do), nor the reverse.
    #[serde(default)]
    watched_calls: Side,
    #[serde(default)]
    baseline_calls: Side,
    clock: Timestamp,
    cause: Cause,
    /// The stream whose streak gave `cause`.
    #[serde(default)]
    decided_by: Stream,
    last_call_rate: Option<f64>,
}

impl DependencyFailureTrigger {
    /// A trigger for a config (validated here).
    pub fn new(config: DependencyFailureConfig) -> Result<Self> {
        TriggerConfig::DependencyFailure(config.clone()).validate("dependencyFailure")?;
        Ok(DependencyFailureTrigger {
            config,
            watched: Side::default(),
            baseline: Side::default(),
            watched_calls: Side::default(),
            baseline_calls: Side::default(),
            clock: Timestamp::EPOCH,
            cause: Cause::None,
            decided_by: Stream::Probe,
            last_call_rate: None,
        })
    }

    /// The config.
    pub fn config(&self) -> &DependencyFailureConfig {
        &self.config
    }

    /// The data time of the newest pass or fail held of the watched track, probes or calls:
    /// the time the verdict stands for. The baseline's results tell a shared outage apart;
    /// they say nothing of whether the watched track still reports.
    pub(crate) fn data_time(&self) -> Option<Timestamp> {
        [&self.watched, &self.watched_calls]
            .into_iter()
            .filter_map(|side| side.last)
            .map(|(_, t)| t)
            .max()
    }

    /// Every side, named as serialized.
    fn sides(&self) -> [(&'static str, &Side); 4] {
        [
            ("watched", &self.watched),
            ("baseline", &self.baseline),
            ("watchedCalls", &self.watched_calls),
            ("baselineCalls", &self.baseline_calls),
        ]
    }

    /// The watched and baseline sides of `stream`.
    fn stream(&self, stream: Stream) -> (&Side, &Side) {
        match stream {
            Stream::Probe => (&self.watched, &self.baseline),
            Stream::Call => (&self.watched_calls, &self.baseline_calls),
        }
    }

    /// Checks a deserialized state: no check time past `clock` (a check dated ahead would make
    /// every real check of its track and stream, or instance, look already seen), and each
    /// instance held once per side, at most [`MAX_INSTANCES`].
    pub(crate) fn check_state(&self, clock: Timestamp) -> std::result::Result<(), String> {
        not_after("clock", Some(self.clock), clock)?;
        for (name, side) in self.sides() {
            for (field, at) in [
                ("last", side.last.map(|(_, t)| t)),
                ("lastFailure", side.last_failure),
                ("streakStart", side.streak_start),
                ("lastProbe", side.last_probe),
                ("lastCall", side.last_call),
            ] {
                not_after(&format!("{name}.{field}"), at, clock)?;
            }
            for (i, (instance, at)) in side.instances.iter().enumerate() {
                not_after(&format!("{name}.instances[{i}]"), Some(*at), clock)?;
                if let Some(first) = side.instances[..i].iter().position(|(n, _)| n == instance) {
                    return Err(format!(
                        "{name}.instances[{i}] names instance {} held by {name}.instances[{first}] \
                         too",
                        instance.as_deref().unwrap_or("none (the track as a whole)")
                    ));
                }
            }
            if side.instances.len() > MAX_INSTANCES {
                return Err(format!(
                    "{name}.instances holds {} instances, more than {MAX_INSTANCES}",
                    side.instances.len()
                ));
            }
        }
        Ok(())
    }

    /// Which side a track is: `Some(true)` watched, `Some(false)` baseline.
    fn side_of(&self, track: &serin_signals::Track) -> Option<bool> {
        if *track == self.config.track {
            Some(true)
        } else if *track == self.config.baseline_track {
            Some(false)
        } else {
            None
        }
    }

    fn is_call(&self, obs: &Observation) -> Option<bool> {
        let m = self.config.call_metric.as_ref()?;
        if obs.metric != *m {
            return None;
        }
        self.side_of(&obs.track)
    }

    /// Records one check on one side and answers the verdict; `None` when the check is not
    /// newer than the last one of its side and stream (read again, or late) — for a probe, the
    /// last one of its `instance`.
    fn record(
        &mut self,
        watched: bool,
        stream: Stream,
        instance: Option<&str>,
        passed: Option<bool>,
        at: Timestamp,
    ) -> Option<Verdict> {
        let stale_after = self.config.stale_after;
        let side = match (watched, stream) {
            (true, Stream::Probe) => &mut self.watched,
            (false, Stream::Probe) => &mut self.baseline,
            (true, Stream::Call) => &mut self.watched_calls,
            (false, Stream::Call) => &mut self.baseline_calls,
        };
        match stream {
            Stream::Probe => {
                if !side.takes_probe(instance, at, stale_after) {
                    return None;
                }
            }
            Stream::Call => {
                if side.last_call.is_some_and(|l| at <= l) {
                    return None;
                }
                side.last_call = Some(at);
            }
        }
        // Counted in arrival order; times are kept as they are (the newest wins).
        let newest = side.last.is_none_or(|(_, t)| at >= t);
        match passed {
            Some(true) => {
                side.consecutive_failures = 0;
                side.streak_start = None;
                if newest {
                    side.last = Some((true, at));
                }
            }
            Some(false) => {
                // A gap longer than `staleAfter` ends a streak, as it ends a breach: a check
                // that failed minutes ago and one that fails now are not consecutive. (A health
                // check keeps its streaks across gaps, which are an instance's restarts.)
                if side
                    .last
                    .is_some_and(|(_, t)| at.saturating_duration_since(t) > self.config.stale_after)
                {
                    side.consecutive_failures = 0;
                    side.streak_start = None;
                }
                side.consecutive_failures = side.consecutive_failures.saturating_add(1);
                side.streak_start = Some(side.streak_start.map_or(at, |s| s.min(at)));
                side.last_failure = Some(side.last_failure.map_or(at, |f| f.max(at)));
                if newest {
                    side.last = Some((false, at));
                }
            }
            None => {}
        }
        // The trigger's data clock: the newest check of either side and stream.
        self.clock = self.clock.max(at);
        Some(self.verdict(passed.is_none() && watched))
    }

    fn verdict(&mut self, unknown: bool) -> Verdict {
        let horizon = self.clock.saturating_sub(self.config.stale_after);
        let recent = |s: &Side| s.last.is_some_and(|(_, t)| t >= horizon);
        // Each stream is judged against the baseline's checks of the same kind (a baseline
        // whose probes pass while its queries fail is down all the same); a fault of the new
        // version found by either stream outweighs a shared outage found by the other.
        let judged = |stream| {
            let (watched, baseline) = self.stream(stream);
            self.judge(watched, baseline, horizon)
        };
        // The graver cause decides; probes on a tie.
        let (probe, call) = (judged(Stream::Probe), judged(Stream::Call));
        let (decided_by, cause) = if call > probe {
            (Stream::Call, call)
        } else {
            (Stream::Probe, probe)
        };
        self.cause = cause;
        self.decided_by = decided_by;
        match cause {
            Cause::Ours => Verdict::Breach(self.config.action),
            Cause::Shared => Verdict::Breach(self.config.shared_outage_action()),
            Cause::None if unknown || !(recent(&self.watched) || recent(&self.watched_calls)) => {
                Verdict::NoData
            }
            Cause::None => Verdict::Ok,
        }
    }

    /// The cause of one stream's failures, if its watched side has failed `failureThreshold`
    /// consecutive checks with the last one within `horizon`.
    fn judge(&self, watched: &Side, baseline: &Side, horizon: Timestamp) -> Cause {
        let recent = |s: &Side| s.last.is_some_and(|(_, t)| t >= horizon);
        if watched.consecutive_failures < self.config.failure_threshold || !recent(watched) {
            return Cause::None;
        }
        // Ours only if the baseline was seen passing while the watched track failed: at or
        // after the first failure of the streak (a pass from before it says nothing about the
        // dependency since), and no later than the latest one (when a shared outage ends, the
        // baseline's pass may arrive before the watched track's own).
        let ours = recent(baseline)
            && match (baseline.last, watched.streak_start, watched.last_failure) {
                (Some((true, passed)), Some(began), Some(failed)) => {
                    began <= passed && passed <= failed
                }
                _ => false,
            };
        if ours { Cause::Ours } else { Cause::Shared }
    }
}

impl Trigger for DependencyFailureTrigger {
    fn id(&self) -> &str {
        &self.config.id
    }

    fn kind(&self) -> TriggerKind {
        TriggerKind::DependencyFailure
    }

    fn check(&self, obs: &Observation) -> Result<()> {
        if self.is_call(obs).is_none() {
            return Ok(());
        }
        match &obs.measurement {
            Measurement::Counts(_) | Measurement::Gauge(_) | Measurement::NoData => Ok(()),
            other => Err(Error::MeasurementMismatch {
                trigger: self.config.id.clone(),
                metric: obs.metric.to_string(),
                track: obs.track.to_string(),
                expected: "counts or a gauge holding the call error rate",
                found: found(other),
            }),
        }
    }

    fn observe(&mut self, obs: &Observation) -> Result<Option<Verdict>> {
        let Some(watched) = self.is_call(obs) else {
            return Ok(None);
        };
        self.check(obs)?;
        let rate = match &obs.measurement {
            Measurement::Counts(c) => c.error_rate(),
            Measurement::Gauge(g) => Some(g.value()),
            _ => None,
        };
        let max = self.config.max_call_error_rate.unwrap_or(1.0);
        let passed = rate.map(|r| r <= max);
        // A baseline result can turn a shared outage into "ours" (or back): report it too.
        let verdict = self.record(watched, Stream::Call, None, passed, obs.window.end());
        if watched && verdict.is_some() {
            self.last_call_rate = rate;
        }
        Ok(verdict)
    }

    fn observe_health(&mut self, signal: &HealthSignal) -> Option<Verdict> {
        match &signal.probe {
            Probe::Dependency(name) if *name == self.config.dependency => {}
            _ => return None,
        }
        let watched = self.side_of(&signal.track)?;
        let passed = match signal.status {
            ProbeStatus::Pass => Some(true),
            ProbeStatus::Fail => Some(false),
            ProbeStatus::Unknown => None,
        };
        // A baseline result can turn a shared outage into "ours" (or back): report it too.
        self.record(
            watched,
            Stream::Probe,
            signal.instance.as_deref(),
            passed,
            signal.at,
        )
    }

    fn evidence(&self, at: Timestamp, since: Option<Timestamp>) -> Evidence {
        let c = &self.config;
        // The stream that decided the cause, or without one the stream failing longer.
        let stream = match self.cause {
            Cause::None
                if self.watched_calls.consecutive_failures > self.watched.consecutive_failures =>
            {
                Stream::Call
            }
            Cause::None => Stream::Probe,
            Cause::Shared | Cause::Ours => self.decided_by,
        };
        let (watched, baseline) = self.stream(stream);
        let checks = match stream {
            Stream::Probe => "probe checks",
            Stream::Call => "call checks",
        };
        let began = watched.streak_start;
        let base = match baseline.last {
            Some((true, t)) if began.is_some_and(|b| t < b) => format!(
                "{} last passed at {t}, before these failures began",
                c.baseline_track
            ),
            Some((true, t)) => format!("{} passes (at {t})", c.baseline_track),
            Some((false, t)) => format!(
                "{} fails too ({} consecutive, at {t})",
                c.baseline_track, baseline.consecutive_failures
            ),
            None => format!("{} has no result", c.baseline_track),
        };
        let call = self
            .last_call_rate
            .map(|r| format!("; call error rate {r}"))
            .unwrap_or_default();
        let reason = match self.cause {
            Cause::Ours => format!(
                "{} failed {} consecutive {checks} from {} while {base}: the new version broke its use of it{call}",
                c.dependency, watched.consecutive_failures, c.track
            ),
            Cause::Shared => format!(
                "{} failed {} consecutive {checks} from {} and {base}: a shared outage, not this deployment{call}",
                c.dependency, watched.consecutive_failures, c.track
            ),
            Cause::None => format!(
                "{} has {} consecutive failed {checks} from {}; {base}{call}",
                c.dependency, watched.consecutive_failures, c.track
            ),
        };
        Evidence {
            trigger: c.id.clone(),
            kind: TriggerKind::DependencyFailure,
            subject: format!("dependency {} from {}", c.dependency, c.track),
            observed: Some(f64::from(watched.consecutive_failures)),
            threshold: Some(f64::from(c.failure_threshold)),
            operator: Some(Operator::Ge),
            since,
            at,
            reason,
        }
    }

    fn heap_bytes(&self) -> usize {
        self.config.id.capacity()
            + self.config.dependency.capacity()
            + track_heap(&self.config.track)
            + track_heap(&self.config.baseline_track)
            + [&self.watched, &self.baseline]
                .iter()
                .map(|side| {
                    side.instances.capacity() * std::mem::size_of::<(Option<Box<str>>, Timestamp)>()
                        + side
                            .instances
                            .iter()
                            .map(|(n, _)| n.as_ref().map_or(0, |n| n.len()))
                            .sum::<usize>()
                })
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Action;
    use serin_signals::{Counts, Metric, Track, Window};
    use std::time::Duration;

    fn trigger(extra: &str) -> DependencyFailureTrigger {
        trigger_with(2, extra)
    }

    fn trigger_with(threshold: u32, extra: &str) -> DependencyFailureTrigger {
        let json = format!(
            r#"{{"kind":"dependencyFailure","id":"db","dependency":"postgres","failureThreshold":{threshold}{extra}}}"#
        );
        let TriggerConfig::DependencyFailure(c) = serde_json::from_str(&json).unwrap() else {
            panic!("kind")
        };
        DependencyFailureTrigger::new(c).unwrap()
    }

    fn probe(track: Track, status: ProbeStatus, s: u64) -> HealthSignal {
        HealthSignal::new(
            track,
            Probe::Dependency("postgres".into()),
            status,
            Timestamp::from_millis(s * 1_000),
        )
    }

    #[test]
    fn an_optional_dependency_down_for_everyone_only_warns() {
        // A dependency the service can do without warns when the new version breaks it; an
        // outage everyone sees is not the new version's fault, and asks for no more than that.
        let mut t = trigger(r#","action":"warn""#);
        t.observe_health(&probe(Track::Stable, ProbeStatus::Fail, 1));
        t.observe_health(&probe(Track::Canary, ProbeStatus::Fail, 2));
        assert_eq!(
            t.observe_health(&probe(Track::Canary, ProbeStatus::Fail, 3)),
            Some(Verdict::Breach(Action::Warn))
        );
        assert!(
            t.evidence(Timestamp::EPOCH, None)
                .reason
                .contains("shared outage")
        );
    }

    #[test]
    fn only_the_new_version_failing_is_a_rollback() {
        let mut t = trigger("");
        t.observe_health(&probe(Track::Stable, ProbeStatus::Pass, 1));
        assert_eq!(
            t.observe_health(&probe(Track::Canary, ProbeStatus::Fail, 2)),
            Some(Verdict::Ok)
        );
        // The baseline passes while the watched track fails.
        assert_eq!(
            t.observe_health(&probe(Track::Stable, ProbeStatus::Pass, 2)),
            Some(Verdict::Ok)
        );
        assert_eq!(
            t.observe_health(&probe(Track::Canary, ProbeStatus::Fail, 3)),
            Some(Verdict::Breach(Action::Rollback))
        );
        let e = t.evidence(Timestamp::from_millis(3_000), None);
        assert!(e.reason.contains("broke its use"), "{}", e.reason);
    }

    #[test]
    fn a_shared_outage_holds_unless_configured_otherwise() {
        for (extra, want) in [
            ("", Action::Hold),
            (r#","onSharedOutage":"rollback""#, Action::Rollback),
        ] {
            let mut t = trigger(extra);
            t.observe_health(&probe(Track::Stable, ProbeStatus::Fail, 1));
            t.observe_health(&probe(Track::Canary, ProbeStatus::Fail, 2));
            assert_eq!(
                t.observe_health(&probe(Track::Canary, ProbeStatus::Fail, 3)),
                Some(Verdict::Breach(want))
            );
            assert!(
                t.evidence(Timestamp::EPOCH, None)
                    .reason
                    .contains("shared outage")
            );
        }
        // No baseline result at all is not proof that it is ours.
        let mut t = trigger("");
        t.observe_health(&probe(Track::Canary, ProbeStatus::Fail, 2));
        assert_eq!(
            t.observe_health(&probe(Track::Canary, ProbeStatus::Fail, 3)),
            Some(Verdict::Breach(Action::Hold))
        );
        // The baseline recovering first is not yet proof (the outage may be ending)...
        assert_eq!(
            t.observe_health(&probe(Track::Stable, ProbeStatus::Pass, 4)),
            Some(Verdict::Breach(Action::Hold))
        );
        // ...but the watched track failing again while the baseline passes is.
        assert_eq!(
            t.observe_health(&probe(Track::Canary, ProbeStatus::Fail, 5)),
            Some(Verdict::Breach(Action::Rollback))
        );
    }

    #[test]
    fn a_baseline_pass_from_before_the_failures_began_is_not_proof() {
        let mut t = trigger_with(3, "");
        // The baseline's last pass is older than the outage: it has not been probed since.
        t.observe_health(&probe(Track::Stable, ProbeStatus::Pass, 30));
        for s in [35, 40] {
            t.observe_health(&probe(Track::Canary, ProbeStatus::Fail, s));
        }
        assert_eq!(
            t.observe_health(&probe(Track::Canary, ProbeStatus::Fail, 45)),
            Some(Verdict::Breach(Action::Hold))
        );
        let e = t.evidence(Timestamp::from_millis(45_000), None);
        assert!(
            e.reason.contains("shared outage") && e.reason.contains("before these failures began"),
            "{}",
            e.reason
        );
        // A pass during the failures, followed by another failure, is proof.
        assert_eq!(
            t.observe_health(&probe(Track::Stable, ProbeStatus::Pass, 47)),
            Some(Verdict::Breach(Action::Hold))
        );
        assert_eq!(
            t.observe_health(&probe(Track::Canary, ProbeStatus::Fail, 50)),
            Some(Verdict::Breach(Action::Rollback))
        );
    }

    #[test]
    fn a_check_read_again_is_not_another_failure() {
        let mut t = trigger_with(
            3,
            r#","callMetric":"postgres_calls","maxCallErrorRate":0.05"#,
        );
        t.observe_health(&probe(Track::Stable, ProbeStatus::Pass, 30));
        assert_eq!(
            t.observe_health(&probe(Track::Canary, ProbeStatus::Fail, 30)),
            Some(Verdict::Ok)
        );
        for s in [30, 30, 20] {
            assert_eq!(
                t.observe_health(&probe(Track::Canary, ProbeStatus::Fail, s)),
                None
            );
        }
        assert_eq!(t.watched.consecutive_failures, 1);
        // Call windows are a stream of their own: one ending before the last probe is new, but
        // the same window read again is not.
        let calls = Observation::new(
            Metric::named("postgres_calls").unwrap(),
            Track::Canary,
            Window::ending_at(Timestamp::from_millis(29_000), Duration::from_secs(1)),
            Measurement::Counts(Counts::new(100, 50).unwrap()),
        );
        assert_eq!(t.observe(&calls).unwrap(), Some(Verdict::Ok));
        assert_eq!(t.observe(&calls).unwrap(), None);
        assert_eq!(t.watched.consecutive_failures, 1);
        assert_eq!(t.watched_calls.consecutive_failures, 1);
        // The baseline's results are deduplicated too.
        assert_eq!(
            t.observe_health(&probe(Track::Stable, ProbeStatus::Pass, 30)),
            None
        );
    }

    #[test]
    fn failing_calls_are_not_cleared_by_passing_probes() {
        let calls = |track, s: u64, errors| {
            Observation::new(
                Metric::named("postgres_calls").unwrap(),
                track,
                Window::ending_at(Timestamp::from_millis(s * 1_000), Duration::from_secs(5)),
                Measurement::Counts(Counts::new(100, errors).unwrap()),
            )
        };
        // The dependency answers every probe, but half of the queries from `errors` fail.
        let run = |stable_errors| {
            let mut t = trigger_with(
                3,
                r#","callMetric":"postgres_calls","maxCallErrorRate":0.05"#,
            );
            let mut last = None;
            for s in [5, 10, 15] {
                t.observe_health(&probe(Track::Stable, ProbeStatus::Pass, s));
                t.observe(&calls(Track::Stable, s, stable_errors)).unwrap();
                t.observe_health(&probe(Track::Canary, ProbeStatus::Pass, s));
                last = t.observe(&calls(Track::Canary, s, 50)).unwrap();
            }
            (
                last,
                t.evidence(Timestamp::from_millis(15_000), None).reason,
            )
        };
        // Only the canary's queries fail: the new version broke its use of the dependency.
        let (verdict, reason) = run(0);
        assert_eq!(verdict, Some(Verdict::Breach(Action::Rollback)), "{reason}");
        assert!(reason.contains("broke its use"), "{reason}");
        // The stable's fail too: a shared outage, whatever the probes say.
        let (verdict, reason) = run(50);
        assert_eq!(verdict, Some(Verdict::Breach(Action::Hold)), "{reason}");
        assert!(reason.contains("shared outage"), "{reason}");
    }

    #[test]
    fn call_error_rates_count_as_checks() {
        let mut t = trigger(r#","callMetric":"postgres_calls","maxCallErrorRate":0.05"#);
        let calls = |track, s: u64, errors| {
            Observation::new(
                Metric::named("postgres_calls").unwrap(),
                track,
                Window::ending_at(Timestamp::from_millis(s * 1_000), Duration::from_secs(1)),
                Measurement::Counts(Counts::new(100, errors).unwrap()),
            )
        };
        // The baseline alone says nothing about the watched track yet.
        assert_eq!(
            t.observe(&calls(Track::Stable, 1, 0)).unwrap(),
            Some(Verdict::NoData)
        );
        assert_eq!(
            t.observe(&calls(Track::Canary, 1, 50)).unwrap(),
            Some(Verdict::Ok)
        );
        assert_eq!(
            t.observe(&calls(Track::Canary, 2, 50)).unwrap(),
            Some(Verdict::Breach(Action::Rollback))
        );
        assert_eq!(
            t.observe(&calls(Track::Canary, 3, 1)).unwrap(),
            Some(Verdict::Ok)
        );
    }
}
