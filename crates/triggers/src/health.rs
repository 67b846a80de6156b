//! [`HealthCheckTrigger`]: consecutive failing probes per instance, or a share of instances.

use serde::{Deserialize, Serialize};
use serin_signals::{HealthSignal, Observation, ProbeStatus, Timestamp};

use crate::config::{HealthCheckConfig, TriggerConfig};
use crate::error::Result;
use crate::evidence::{Evidence, TriggerKind};
use crate::lifecycle::{Verdict, not_after};
use crate::operator::Operator;
use crate::trigger::{Trigger, track_heap};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InstanceHealth {
    /// `None` for probes of the track as a whole (boxed: no spare capacity).
    name: Option<Box<str>>,
    consecutive_failures: u32,
    /// The probe time of the last pass or fail (unknown results do not count).
    last_known: Option<Timestamp>,
    /// The probe time of the newest result taken, whatever its status: a result that is not
    /// newer is the same one read again (or an older one) and is ignored.
    last_seen: Timestamp,
}

/// Consecutive failures of the watched probe on the watched track.
///
/// Each instance (or the track as a whole, for probes without an instance) keeps its own count of
/// consecutive failures; a pass resets it and an `unknown` result leaves it as it was (unknown is
/// not healthy). A result counts once: one whose probe time is not later than the instance's
/// newest result is the same result read again (sources answer the latest result they hold each
/// time they are asked) or an older one, and changes nothing. Instances not heard from within
/// `staleAfter` of the newest result no longer count. At most `maxInstances` are remembered: a
/// new instance takes the place of the least recently seen one only if that one has not been
/// heard from within `staleAfter`, and is not counted while every remembered instance still
/// reports. Forgetting the least recently seen instance whatever its age would, with more
/// instances than that probed in turn, forget each one just before its next result, so that no
/// failure streak could ever build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheckTrigger {
    config: HealthCheckConfig,
    instances: Vec<InstanceHealth>,
    clock: Timestamp,
    last_failing: usize,
    last_active: usize,
}

impl HealthCheckTrigger {
    /// A trigger for a config (validated here).
    pub fn new(config: HealthCheckConfig) -> Result<Self> {
        TriggerConfig::HealthCheck(config.clone()).validate("healthCheck")?;
        Ok(HealthCheckTrigger {
            config,
            instances: Vec::new(),
            clock: Timestamp::EPOCH,
            last_failing: 0,
            last_active: 0,
        })
    }

    /// The config.
    pub fn config(&self) -> &HealthCheckConfig {
        &self.config
    }

    /// The probe time of the newest pass or fail held, the time the verdict stands for.
    pub(crate) fn data_time(&self) -> Option<Timestamp> {
        self.instances.iter().filter_map(|i| i.last_known).max()
    }

    /// Checks a deserialized state: at most `maxInstances`, each instance once (a second copy
    /// would never update, yet keep counting until it aged out), and no probe time past `clock`
    /// (a result dated ahead would make every real result of its instance look already seen).
    pub(crate) fn check_state(&self, clock: Timestamp) -> std::result::Result<(), String> {
        if self.instances.len() > self.config.max_instances {
            return Err(format!(
                "{} instances exceed maxInstances {}",
                self.instances.len(),
                self.config.max_instances
            ));
        }
        not_after("clock", Some(self.clock), clock)?;
        let mut seen = std::collections::HashMap::with_capacity(self.instances.len());
        for (n, i) in self.instances.iter().enumerate() {
            if let Some(first) = seen.insert(i.name.as_deref(), n) {
                let name = i
                    .name
                    .as_deref()
                    .map_or("none (the track as a whole)".into(), |name| {
                        format!("`{name}`")
                    });
                return Err(format!(
                    "instances[{n}].name {name} is held twice, also by instances[{first}]"
                ));
            }
            not_after(
                &format!("instances[{n}].lastSeen"),
                Some(i.last_seen),
                clock,
            )?;
            not_after(&format!("instances[{n}].lastKnown"), i.last_known, clock)?;
        }
        Ok(())
    }

    /// The remembered instance `name`, or a new one for it; `None` when every remembered
    /// instance has been heard from at or after `horizon` and there is no room for another.
    fn slot(
        &mut self,
        name: Option<&str>,
        at: Timestamp,
        horizon: Timestamp,
    ) -> Option<&mut InstanceHealth> {
        let pos = self
            .instances
            .iter()
            .position(|i| i.name.as_deref() == name);
        let i = match pos {
            Some(i) => i,
            None => {
                if self.instances.len() >= self.config.max_instances {
                    let silent = self
                        .instances
                        .iter()
                        .enumerate()
                        .filter(|(_, i)| i.last_seen < horizon)
                        .min_by_key(|(_, i)| i.last_seen)
                        .map(|(n, _)| n)?;
                    self.instances.swap_remove(silent);
                }
                self.instances.push(InstanceHealth {
                    name: name.map(Box::from),
                    consecutive_failures: 0,
                    last_known: None,
                    last_seen: at,
                });
                self.instances.len() - 1
            }
        };
        self.instances.get_mut(i)
    }
}

impl Trigger for HealthCheckTrigger {
    fn id(&self) -> &str {
        &self.config.id
    }

    fn kind(&self) -> TriggerKind {
        TriggerKind::HealthCheck
    }

    fn check(&self, _obs: &Observation) -> Result<()> {
        Ok(())
    }

    fn observe(&mut self, _obs: &Observation) -> Result<Option<Verdict>> {
        Ok(None)
    }

    fn observe_health(&mut self, signal: &HealthSignal) -> Option<Verdict> {
        if signal.track != self.config.track || signal.probe != self.config.check_type.probe() {
            return None;
        }
        let name = signal.instance.as_deref();
        let at = signal.at;
        if self
            .instances
            .iter()
            .any(|i| i.name.as_deref() == name && at <= i.last_seen)
        {
            return None;
        }
        // The newest probe time seen: the trigger's own data clock, moved only by a result
        // taken.
        let clock = self.clock.max(at);
        let horizon = clock.saturating_sub(self.config.effective_stale_after());
        let slot = self.slot(name, at, horizon)?;
        slot.last_seen = at;
        match signal.status {
            ProbeStatus::Pass => {
                slot.consecutive_failures = 0;
                slot.last_known = Some(at);
            }
            ProbeStatus::Fail => {
                // A gap does not end the streak: an instance in a restart loop is silent while
                // it restarts, and the loop is the failure.
                slot.consecutive_failures = slot.consecutive_failures.saturating_add(1);
                slot.last_known = Some(at);
            }
            ProbeStatus::Unknown => {}
        }
        self.clock = clock;
        let threshold = self.config.failure_threshold;
        let active = self
            .instances
            .iter()
            .filter(|i| i.last_known.is_some_and(|k| k >= horizon));
        let (mut n, mut failing) = (0usize, 0usize);
        for i in active {
            n += 1;
            failing += usize::from(i.consecutive_failures >= threshold);
        }
        self.last_failing = failing;
        self.last_active = n;
        let breached = match self.config.failing_share {
            None => failing > 0,
            Some(share) => n > 0 && failing as f64 / n as f64 >= share,
        };
        Some(if breached {
            Verdict::Breach(self.config.action)
        } else if signal.status == ProbeStatus::Unknown || n == 0 {
            Verdict::NoData
        } else {
            Verdict::Ok
        })
    }

    fn evidence(&self, at: Timestamp, since: Option<Timestamp>) -> Evidence {
        let c = &self.config;
        let service = c.service_name.as_deref().unwrap_or("the service");
        let worst = self
            .instances
            .iter()
            .max_by_key(|i| i.consecutive_failures)
            .map(|i| {
                format!(
                    "; worst {} with {} consecutive failures",
                    i.name.as_deref().unwrap_or("(track)"),
                    i.consecutive_failures
                )
            })
            .unwrap_or_default();
        let (observed, threshold, reason) = match c.failing_share {
            None => (
                self.last_failing as f64,
                1.0,
                format!(
                    "{} of {} instances failed {} consecutive {:?} probes{worst}",
                    self.last_failing, self.last_active, c.failure_threshold, c.check_type
                ),
            ),
            Some(share) => {
                let observed = if self.last_active == 0 {
                    0.0
                } else {
                    self.last_failing as f64 / self.last_active as f64
                };
                (
                    observed,
                    share,
                    format!(
                        "{} of {} instances failed {} consecutive {:?} probes (share {observed:.2} against {share}){worst}",
                        self.last_failing, self.last_active, c.failure_threshold, c.check_type
                    ),
                )
            }
        };
        Evidence {
            trigger: c.id.clone(),
            kind: TriggerKind::HealthCheck,
            // Only the check type's name is ours to lowercase; the service's is written as its
            // owner wrote it.
            subject: format!(
                "{} of {service} on {}",
                format!("{:?}", c.check_type).to_lowercase(),
                c.track
            ),
            observed: Some(observed),
            threshold: Some(threshold),
            operator: Some(Operator::Ge),
            since,
            at,
            reason,
        }
    }

    fn heap_bytes(&self) -> usize {
        self.config.id.capacity()
            + self
                .config
                .service_name
                .as_ref()
                .map_or(0, String::capacity)
            + track_heap(&self.config.track)
            + self.instances.capacity() * std::mem::size_of::<InstanceHealth>()
            + self
                .instances
                .iter()
                .map(|i| i.name.as_ref().map_or(0, |n| n.len()))
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Action;
    use serin_signals::{Probe, Track};

    fn trigger(extra: &str) -> HealthCheckTrigger {
        let json = format!(
            r#"{{"kind":"healthCheck","id":"ready","checkType":"readiness","failureThreshold":3,
                "checkInterval":"5s"{extra}}}"#
        );
        let TriggerConfig::HealthCheck(c) = serde_json::from_str(&json).unwrap() else {
            panic!("kind")
        };
        HealthCheckTrigger::new(c).unwrap()
    }

    fn sig(inst: &str, status: ProbeStatus, s: u64) -> HealthSignal {
        HealthSignal::new(
            Track::Canary,
            Probe::Readiness,
            status,
            Timestamp::from_millis(s * 1_000),
        )
        .with_instance(inst)
    }

    #[test]
    fn the_subject_keeps_the_service_and_track_names_as_written() {
        let t = trigger(r#","serviceName":"Checkout-API","track":"blue""#);
        let e = t.evidence(Timestamp::EPOCH, None);
        assert_eq!(e.subject, "readiness of Checkout-API on blue");
    }

    #[test]
    fn three_consecutive_failures_of_one_instance_fire() {
        let mut t = trigger("");
        assert_eq!(
            t.observe_health(&sig("a", ProbeStatus::Fail, 5)),
            Some(Verdict::Ok)
        );
        assert_eq!(
            t.observe_health(&sig("a", ProbeStatus::Fail, 10)),
            Some(Verdict::Ok)
        );
        // A pass in between resets the count.
        t.observe_health(&sig("a", ProbeStatus::Pass, 15));
        t.observe_health(&sig("a", ProbeStatus::Fail, 20));
        t.observe_health(&sig("a", ProbeStatus::Fail, 25));
        // Unknown neither resets nor counts.
        assert_eq!(
            t.observe_health(&sig("a", ProbeStatus::Unknown, 27)),
            Some(Verdict::NoData)
        );
        assert_eq!(
            t.observe_health(&sig("a", ProbeStatus::Fail, 30)),
            Some(Verdict::Breach(Action::Rollback))
        );
        let e = t.evidence(Timestamp::from_millis(30_000), None);
        assert!(
            e.reason.contains("1 of 1") && e.reason.contains("worst a"),
            "{}",
            e.reason
        );
        // Other probes and tracks are ignored.
        let live = HealthSignal::new(
            Track::Canary,
            Probe::Liveness,
            ProbeStatus::Fail,
            Timestamp::EPOCH,
        );
        assert_eq!(t.observe_health(&live), None);
    }

    #[test]
    fn a_result_read_again_is_not_another_failure() {
        let mut t = trigger("");
        // A source answers the latest result it holds, read at every tick: one failed probe,
        // read three times, is one failure.
        assert_eq!(
            t.observe_health(&sig("a", ProbeStatus::Fail, 30)),
            Some(Verdict::Ok)
        );
        assert_eq!(t.observe_health(&sig("a", ProbeStatus::Fail, 30)), None);
        assert_eq!(t.observe_health(&sig("a", ProbeStatus::Fail, 30)), None);
        // An older result arriving late is not news either.
        assert_eq!(t.observe_health(&sig("a", ProbeStatus::Pass, 25)), None);
        assert_eq!(t.instances[0].consecutive_failures, 1);
        // Newer probes count.
        t.observe_health(&sig("a", ProbeStatus::Fail, 35));
        assert_eq!(
            t.observe_health(&sig("a", ProbeStatus::Fail, 40)),
            Some(Verdict::Breach(Action::Rollback))
        );
    }

    #[test]
    fn results_are_new_per_instance() {
        // Sources list results by instance, not by time: b's results, older than a's latest, are
        // still b's newest.
        let mut t = trigger("");
        assert_eq!(
            t.observe_health(&sig("a", ProbeStatus::Pass, 33)),
            Some(Verdict::Ok)
        );
        t.observe_health(&sig("b", ProbeStatus::Fail, 21));
        t.observe_health(&sig("b", ProbeStatus::Fail, 26));
        assert_eq!(
            t.observe_health(&sig("b", ProbeStatus::Fail, 31)),
            Some(Verdict::Breach(Action::Rollback))
        );
    }

    #[test]
    fn a_failing_share_needs_enough_instances() {
        let mut t = trigger(r#","failingShare":0.5"#);
        for s in [5, 10, 15] {
            t.observe_health(&sig("a", ProbeStatus::Fail, s));
            t.observe_health(&sig("b", ProbeStatus::Pass, s));
            t.observe_health(&sig("c", ProbeStatus::Pass, s));
        }
        assert_eq!(
            t.observe_health(&sig("c", ProbeStatus::Pass, 16)),
            Some(Verdict::Ok)
        );
        for s in [17, 18, 19] {
            t.observe_health(&sig("b", ProbeStatus::Fail, s));
        }
        assert_eq!(
            t.observe_health(&sig("c", ProbeStatus::Pass, 20)),
            Some(Verdict::Breach(Action::Rollback))
        );
    }

    #[test]
    fn instances_are_bounded_and_old_ones_stop_counting() {
        let mut t = trigger(r#","maxInstances":2"#);
        for s in [1, 2, 3] {
            t.observe_health(&sig("a", ProbeStatus::Fail, s));
        }
        t.observe_health(&sig("b", ProbeStatus::Pass, 4));
        // No room for `c` while `a` and `b` report: the failing `a` is not forgotten for it.
        assert_eq!(t.observe_health(&sig("c", ProbeStatus::Pass, 5)), None);
        assert_eq!(t.instances.len(), 2);
        assert!(t.check_state(Timestamp::from_millis(5_000)).is_ok());
        assert_eq!(
            t.observe_health(&sig("b", ProbeStatus::Pass, 6)),
            Some(Verdict::Breach(Action::Rollback))
        );
        // A failing instance silent for longer than staleAfter (15 s) no longer counts.
        let mut t = trigger("");
        for s in [1, 2, 3] {
            t.observe_health(&sig("a", ProbeStatus::Fail, s));
        }
        assert_eq!(
            t.observe_health(&sig("b", ProbeStatus::Pass, 30)),
            Some(Verdict::Ok)
        );
    }

    #[test]
    fn more_instances_than_remembered_probed_in_turn_still_fire() {
        // Three crash-looping instances probed in turn every 5 s, two remembered: forgetting
        // the least recently seen would forget each one just before its next result.
        let mut t = trigger(r#","maxInstances":2"#);
        let mut verdicts = Vec::new();
        for round in 1..=3 {
            for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
                verdicts.push(t.observe_health(&sig(
                    name,
                    ProbeStatus::Fail,
                    round * 5 + i as u64,
                )));
            }
        }
        assert!(
            verdicts.contains(&Some(Verdict::Breach(Action::Rollback))),
            "{verdicts:?}"
        );
        assert!(t.instances.len() <= 2);
        // An instance silent for longer than staleAfter (15 s) makes room for a new one.
        assert_eq!(
            t.observe_health(&sig("d", ProbeStatus::Pass, 100)),
            Some(Verdict::Ok)
        );
        assert!(t.instances.iter().any(|i| i.name.as_deref() == Some("d")));
    }

    #[test]
    fn a_crash_looping_instance_fails_consecutively_across_its_restarts() {
        // Each restart leaves a gap longer than staleAfter (15 s) in the instance's results; the
        // failures either side of it are still one streak, as a restart loop is the failure.
        let mut t = trigger("");
        t.observe_health(&sig("a", ProbeStatus::Fail, 5));
        t.observe_health(&sig("a", ProbeStatus::Fail, 40));
        assert_eq!(
            t.observe_health(&sig("a", ProbeStatus::Fail, 80)),
            Some(Verdict::Breach(Action::Rollback))
        );
    }

    #[test]
    fn a_saved_state_naming_one_instance_twice_is_refused() {
        let mut t = trigger("");
        t.observe_health(&sig("a", ProbeStatus::Fail, 1));
        t.observe_health(&sig("b", ProbeStatus::Pass, 1));
        // A second, named `a` too, would never update, yet count until it aged out.
        t.instances[1].name = Some("a".into());
        let reason = t.check_state(Timestamp::from_millis(5_000)).unwrap_err();
        assert!(
            reason.contains("instances[1].name") && reason.contains("`a`"),
            "{reason}"
        );
        // The track-as-a-whole slot, unnamed, may appear only once as well.
        t.instances[0].name = None;
        t.instances[1].name = None;
        let reason = t.check_state(Timestamp::from_millis(5_000)).unwrap_err();
        assert!(reason.contains("instances[1].name"), "{reason}");
    }
}
