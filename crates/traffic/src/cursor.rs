//! [`PlanCursor`]: where an execution of a [`Plan`] stands, and what is due next.
//!
//! The cursor is pure like the plan: it is told when a step was applied and when an approval
//! came, and given `now` it answers what to do — it never sleeps or reads a clock. The executor
//! (the orchestrator) does the waiting and the applying, and can journal the cursor (it is
//! serializable) to resume after a crash.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::plan::Plan;

/// What is due next in a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Next {
    /// Apply step `step` now.
    Apply {
        /// The step's index.
        step: usize,
    },
    /// The applied step is holding; nothing to do before `until_millis`.
    Wait {
        /// When the hold ends, in milliseconds since the Unix epoch.
        until_millis: u64,
    },
    /// The applied step has held long enough and waits for approval.
    AwaitApproval {
        /// The step's index.
        step: usize,
    },
    /// The last step is applied, held and (if asked) approved.
    Done,
}

/// How far the execution of a plan has got: which step was applied last, when, and whether it
/// was approved. Times are milliseconds since the Unix epoch (as `serin-signals`' `Timestamp`).
///
/// The first [`applied`](Self::applied) records the plan's [`fingerprint`](Plan::fingerprint),
/// and [`next`](Self::next), [`applied`](Self::applied) and [`approve`](Self::approve) refuse
/// any other plan with an error naming `plan`: a cursor journalled for one plan and read back
/// with another (edited, or rebuilt from changed config) would otherwise walk it from a step
/// it never reached. It is serialized as 16 hexadecimal digits (`"plan": "1f0e…"`), so that
/// no JSON reader rounds it. A cursor journalled without one still loads and works as before,
/// checked only against the plan's length until its next `applied` records the fingerprint.
///
/// ```
/// use std::time::Duration;
/// use serin_traffic::{Next, Plan, PlanCursor, Strategy, TrafficSplit, Weight};
///
/// let from = TrafficSplit::all_to("stable", &["canary"])?;
/// let plan = Plan::shift(&from, "canary", &Strategy::gradual(Weight::from_percent(50)?, Duration::from_secs(30))?)?;
/// let mut cursor = PlanCursor::new();
/// assert_eq!(cursor.next(&plan, 0)?, Next::Apply { step: 0 });
/// cursor.applied(&plan, 0, 1_000)?;
/// assert_eq!(cursor.next(&plan, 2_000)?, Next::Wait { until_millis: 31_000 });
/// assert_eq!(cursor.next(&plan, 31_000)?, Next::Apply { step: 1 });
/// cursor.applied(&plan, 1, 31_000)?;
/// assert_eq!(cursor.next(&plan, 31_000)?, Next::Done);
///
/// // A cursor journalled for a longer plan does not fit this one: an error, not `Done`.
/// let other: PlanCursor = serde_json::from_str(r#"{"applied":{"step":5,"atMillis":0,"approved":false}}"#)?;
/// assert!(other.next(&plan, 31_000).is_err());
///
/// // Nor does it fit another plan of the same length: the cursor knows the plan it ran.
/// let slower = Plan::shift(&from, "canary", &Strategy::gradual(Weight::from_percent(50)?, Duration::from_secs(60))?)?;
/// assert_eq!(slower.len(), plan.len());
/// assert!(cursor.next(&slower, 31_000).unwrap_err().to_string().contains("belongs to another plan"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlanCursor {
    #[serde(default, skip_serializing_if = "Option::is_none", with = "hex")]
    plan: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    applied: Option<Applied>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Applied {
    step: usize,
    at_millis: u64,
    approved: bool,
}

impl PlanCursor {
    /// A cursor before the first step.
    pub fn new() -> Self {
        PlanCursor {
            plan: None,
            applied: None,
        }
    }

    /// The step applied last, if any.
    pub fn last_applied(&self) -> Option<usize> {
        self.applied.map(|a| a.step)
    }

    /// What is due in `plan` at `now_millis`, or an error when the cursor does not fit `plan`:
    /// naming `plan` when it was started on another plan, `applied.step` when its last applied
    /// step is past the plan's last step (journalled for a longer plan, or edited). Answering
    /// [`Next::Done`] or a later step there would let an executor promote or go on with a plan
    /// it never ran, so the cursor is refused instead, as [`applied`](Self::applied) and
    /// [`approve`](Self::approve) refuse it.
    pub fn next(&self, plan: &Plan, now_millis: u64) -> Result<Next> {
        self.fits(plan)?;
        self.due(plan, now_millis)
    }

    /// What is due in `plan`, which [`fits`](Self::fits) has accepted.
    fn due(&self, plan: &Plan, now_millis: u64) -> Result<Next> {
        let Some(a) = self.applied else {
            return Ok(Next::Apply { step: 0 });
        };
        let Some(step) = plan.step(a.step) else {
            return Err(not_a_step(a.step, plan));
        };
        // Rounded up: a hold of 1.5 ms is not over at 1 ms.
        let hold = step.hold();
        let hold_millis = hold.as_millis() + u128::from(hold.subsec_nanos() % 1_000_000 != 0);
        let hold = u64::try_from(hold_millis).unwrap_or(u64::MAX);
        let until = a.at_millis.saturating_add(hold);
        Ok(if now_millis < until {
            Next::Wait {
                until_millis: until,
            }
        } else if step.await_approval() && !a.approved {
            Next::AwaitApproval { step: a.step }
        } else if a.step + 1 < plan.len() {
            Next::Apply { step: a.step + 1 }
        } else {
            Next::Done
        })
    }

    /// Refuses a cursor started on another plan, or whose last applied step is not a step of
    /// `plan`; answers `plan`'s fingerprint.
    fn fits(&self, plan: &Plan) -> Result<u64> {
        let fingerprint = plan.fingerprint();
        if let Some(own) = self.plan
            && own != fingerprint
        {
            return Err(Error::invalid(
                "plan",
                hex::render(own),
                format!(
                    "the cursor belongs to another plan (this plan's fingerprint is {})",
                    hex::render(fingerprint)
                ),
            ));
        }
        match self.applied {
            Some(a) if a.step >= plan.len() => Err(not_a_step(a.step, plan)),
            _ => Ok(fingerprint),
        }
    }

    /// Records that step `step` of `plan` was applied at `at_millis`. Only the step that
    /// [`next`](Self::next) answers as due at `at_millis` is accepted: the first, or the one
    /// after the last applied once that step has held for its hold and, if it awaits approval,
    /// has been approved. Anything else is refused, naming the step and what it waits for, and
    /// changes nothing: the cursor is what an executor journals, so it never records an order
    /// of steps the plan does not allow (a replay would resume past an approval gate no one
    /// gave). A cursor that does not fit `plan` (started on another plan, or edited) is refused
    /// too, rather than guessing what is due. The cursor records `plan`'s fingerprint.
    pub fn applied(&mut self, plan: &Plan, step: usize, at_millis: u64) -> Result<()> {
        let fingerprint = self.fits(plan)?;
        // `fits` leaves `a.step < plan.len()`, so the sum does not overflow.
        let expected = self.applied.map_or(0, |a| a.step + 1);
        if step != expected || step >= plan.len() {
            return Err(Error::invalid(
                "step",
                step,
                if expected >= plan.len() {
                    format!("the plan's {} steps are all applied", plan.len())
                } else {
                    format!("the next step to apply is {expected}")
                },
            ));
        }
        if let Some(a) = self.applied {
            match self.due(plan, at_millis)? {
                Next::Wait { until_millis } => {
                    return Err(Error::invalid(
                        "step",
                        step,
                        format!(
                            "is not due at {at_millis} ms: step {} holds until {until_millis} ms",
                            a.step
                        ),
                    ));
                }
                Next::AwaitApproval { step: waiting } => {
                    return Err(Error::invalid(
                        "step",
                        step,
                        format!(
                            "is not due: step {waiting} awaits approval; approve it before \
                             applying step {step}"
                        ),
                    ));
                }
                Next::Apply { .. } | Next::Done => {}
            }
        }
        self.plan = Some(fingerprint);
        self.applied = Some(Applied {
            step,
            at_millis,
            approved: false,
        });
        Ok(())
    }

    /// Records the approval of step `step`, which must be the step applied last and one that
    /// awaits approval. Approving before its hold ends is allowed: the hold still runs out.
    /// A cursor that does not fit `plan` is refused as in [`next`](Self::next).
    pub fn approve(&mut self, plan: &Plan, step: usize) -> Result<()> {
        self.fits(plan)?;
        match (&mut self.applied, plan.step(step)) {
            (Some(a), Some(s)) if a.step == step && s.await_approval() => {
                a.approved = true;
                Ok(())
            }
            (Some(a), Some(_)) if a.step == step => {
                Err(Error::invalid("step", step, "does not await approval"))
            }
            _ => Err(Error::invalid(
                "step",
                step,
                match self.applied {
                    Some(a) => format!("only the step applied last ({}) can be approved", a.step),
                    None => "no step has been applied yet".to_owned(),
                },
            )),
        }
    }
}

/// Serde for the plan's fingerprint: 16 lowercase hexadecimal digits, as a string, because
/// JSON readers that hold numbers as doubles would round a 64-bit integer.
mod hex {
    use serde::{Deserialize, Deserializer, Serializer, de};

    use crate::error::Error;

    /// `fingerprint` as 16 lowercase hexadecimal digits.
    pub(super) fn render(fingerprint: u64) -> String {
        format!("{fingerprint:016x}")
    }

    pub(super) fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(f) => s.serialize_str(&render(*f)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        let text = String::deserialize(d)?;
        match u64::from_str_radix(&text, 16) {
            Ok(f) if text.len() == 16 && text.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(Some(f)),
            _ => Err(de::Error::custom(Error::invalid(
                "plan",
                &text,
                "a plan fingerprint is 16 hexadecimal digits",
            ))),
        }
    }
}

/// The error for a cursor whose last applied step `step` is not a step of `plan`.
fn not_a_step(step: usize, plan: &Plan) -> Error {
    Error::invalid(
        "applied.step",
        step,
        format!(
            "is not a step of the plan, which has {} steps; the cursor belongs to another plan",
            plan.len()
        ),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::split::TrafficSplit;
    use crate::strategy::{Pause, Strategy, WeightedStep};
    use crate::weight::Weight;

    fn plan() -> Plan {
        let from = TrafficSplit::all_to("stable", &["canary"]).unwrap();
        let s = Strategy::weighted(vec![
            WeightedStep::new(Weight::from_percent(10).unwrap(), Duration::from_secs(10))
                .with_pause(Pause::UntilApproved),
            WeightedStep::new(Weight::from_percent(50).unwrap(), Duration::from_secs(5)),
        ])
        .unwrap();
        Plan::shift(&from, "canary", &s).unwrap()
    }

    #[test]
    fn a_hold_of_a_fraction_of_a_millisecond_is_not_over_early() {
        let from = TrafficSplit::all_to("stable", &["canary"]).unwrap();
        let s = Strategy::gradual(
            Weight::from_percent(50).unwrap(),
            Duration::from_micros(1_500),
        )
        .unwrap();
        let plan = Plan::shift(&from, "canary", &s).unwrap();
        let mut c = PlanCursor::new();
        c.applied(&plan, 0, 1_000).unwrap();
        assert_eq!(
            c.next(&plan, 1_001).unwrap(),
            Next::Wait {
                until_millis: 1_002
            }
        );
        assert_eq!(c.next(&plan, 1_002).unwrap(), Next::Apply { step: 1 });
    }

    #[test]
    fn walks_holds_and_approvals() {
        let plan = plan();
        let mut c = PlanCursor::new();
        assert!(c.approve(&plan, 0).is_err());
        assert!(c.applied(&plan, 1, 0).is_err());
        c.applied(&plan, 0, 1_000).unwrap();
        assert_eq!(
            c.next(&plan, 5_000).unwrap(),
            Next::Wait {
                until_millis: 11_000
            }
        );
        assert_eq!(
            c.next(&plan, 11_000).unwrap(),
            Next::AwaitApproval { step: 0 }
        );
        c.approve(&plan, 0).unwrap();
        assert_eq!(c.next(&plan, 11_000).unwrap(), Next::Apply { step: 1 });
        c.applied(&plan, 1, 12_000).unwrap();
        assert!(c.approve(&plan, 1).is_err());
        assert_eq!(
            c.next(&plan, 16_999).unwrap(),
            Next::Wait {
                until_millis: 17_000
            }
        );
        assert_eq!(c.next(&plan, 17_000).unwrap(), Next::Apply { step: 2 });
        c.applied(&plan, 2, 17_000).unwrap();
        assert_eq!(c.next(&plan, 17_000).unwrap(), Next::Done);
        let err = c.applied(&plan, 3, 18_000).unwrap_err();
        assert!(err.to_string().contains("all applied"), "{err}");
        assert_eq!(c.last_applied(), Some(2));
    }

    #[test]
    fn early_approval_still_waits_for_the_hold_and_cursor_round_trips() {
        let plan = plan();
        let mut c = PlanCursor::new();
        c.applied(&plan, 0, 0).unwrap();
        c.approve(&plan, 0).unwrap();
        assert_eq!(
            c.next(&plan, 9_999).unwrap(),
            Next::Wait {
                until_millis: 10_000
            }
        );
        assert_eq!(c.next(&plan, 10_000).unwrap(), Next::Apply { step: 1 });
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<PlanCursor>(&json).unwrap(), c);
    }

    #[test]
    fn a_step_is_refused_until_its_predecessor_has_held_and_been_approved() {
        let plan = plan();
        let mut c = PlanCursor::new();
        c.applied(&plan, 0, 1_000).unwrap();
        let before = c;
        // Step 0 holds until 11 000 ms, then awaits approval.
        let err = c.applied(&plan, 1, 5_000).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid step `1`: is not due at 5000 ms: step 0 holds until 11000 ms"
        );
        let err = c.applied(&plan, 1, 11_000).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid step `1`: is not due: step 0 awaits approval; approve it before applying \
             step 1"
        );
        assert_eq!(c, before);
        c.approve(&plan, 0).unwrap();
        c.applied(&plan, 1, 11_000).unwrap();
        // Step 1 has no approval gate: only its hold counts.
        assert!(c.applied(&plan, 2, 15_999).is_err());
        c.applied(&plan, 2, 16_000).unwrap();
    }

    #[test]
    fn a_cursor_past_the_plan_is_refused_and_unchanged() {
        let plan = plan();
        for step in [plan.len(), usize::MAX] {
            let json = format!(r#"{{"applied":{{"step":{step},"atMillis":0,"approved":false}}}}"#);
            let mut c: PlanCursor = serde_json::from_str(&json).unwrap();
            let before = c;
            for attempt in [0, 1, step] {
                let err = c.applied(&plan, attempt, 1_000).unwrap_err();
                let msg = err.to_string();
                assert!(
                    msg.contains(&format!("applied.step `{step}`")) && msg.contains("3 steps"),
                    "{msg}"
                );
            }
            assert_eq!(c, before);
        }
    }

    /// A cursor journalled for a longer plan answers an error naming `applied.step` from
    /// `next` and `approve` — never `Done`, which an executor would take for a finished plan
    /// and promote — and changes nothing.
    #[test]
    fn a_cursor_from_another_plan_is_an_error_not_done() {
        let plan = plan();
        for step in [plan.len(), plan.len() + 4, usize::MAX] {
            let json = format!(r#"{{"applied":{{"step":{step},"atMillis":0,"approved":true}}}}"#);
            let mut c: PlanCursor = serde_json::from_str(&json).unwrap();
            let before = c;
            for now in [0, 1_000_000] {
                let err = c.next(&plan, now).unwrap_err();
                assert_eq!(
                    err.to_string(),
                    format!(
                        "invalid applied.step `{step}`: is not a step of the plan, which has 3 \
                         steps; the cursor belongs to another plan"
                    )
                );
            }
            let err = c.approve(&plan, step).unwrap_err();
            assert!(err.to_string().contains("3 steps"), "{err}");
            assert_eq!(c, before);
        }
    }

    /// `plan()` with the second step held 6s instead of 5s: as long, but another plan.
    fn other_plan() -> Plan {
        let from = TrafficSplit::all_to("stable", &["canary"]).unwrap();
        let s = Strategy::weighted(vec![
            WeightedStep::new(Weight::from_percent(10).unwrap(), Duration::from_secs(10))
                .with_pause(Pause::UntilApproved),
            WeightedStep::new(Weight::from_percent(50).unwrap(), Duration::from_secs(6)),
        ])
        .unwrap();
        Plan::shift(&from, "canary", &s).unwrap()
    }

    #[test]
    fn a_cursor_started_on_another_plan_of_equal_length_is_refused_and_unchanged() {
        let (plan, other) = (plan(), other_plan());
        assert_eq!(plan.len(), other.len());
        let mut c = PlanCursor::new();
        c.applied(&other, 0, 0).unwrap();
        let before = c;
        let refused = |e: Error| match e {
            Error::InvalidField { field, reason, .. } => {
                assert_eq!(field, "plan");
                assert!(
                    reason.contains("the cursor belongs to another plan"),
                    "{reason}"
                );
            }
            other => panic!("expected InvalidField, got {other:?}"),
        };
        refused(c.next(&plan, 20_000).unwrap_err());
        refused(c.applied(&plan, 1, 20_000).unwrap_err());
        refused(c.approve(&plan, 0).unwrap_err());
        assert_eq!(c, before);
        // The same plan built again is the same plan.
        c.approve(&other_plan(), 0).unwrap();
        assert_eq!(
            c.next(&other_plan(), 20_000).unwrap(),
            Next::Apply { step: 1 }
        );
    }

    #[test]
    fn a_cursor_journalled_without_a_fingerprint_loads_and_works_as_before() {
        let plan = plan();
        let json = r#"{"applied":{"step":0,"atMillis":1000,"approved":true}}"#;
        let mut c: PlanCursor = serde_json::from_str(json).unwrap();
        assert_eq!(c.next(&plan, 11_000).unwrap(), Next::Apply { step: 1 });
        assert_eq!(
            c.next(&other_plan(), 11_000).unwrap(),
            Next::Apply { step: 1 }
        );
        c.applied(&plan, 1, 11_000).unwrap();
        assert_eq!(c.last_applied(), Some(1));
        // From then on it knows its plan.
        assert!(c.next(&other_plan(), 20_000).is_err());
        assert!(c.next(&plan, 20_000).is_ok());
    }

    /// The fingerprint is journalled: a change of its encoding would refuse every cursor in
    /// flight, so its value for one plan is pinned, as is the cursor's serialized form.
    #[test]
    fn the_fingerprint_is_pinned_and_journalled_as_hex() {
        let plan = plan();
        assert_eq!(plan.fingerprint(), 0xf9a6_9fbb_2de6_a20c);
        let mut c = PlanCursor::new();
        c.applied(&plan, 0, 1_000).unwrap();
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"{"plan":"f9a69fbb2de6a20c","applied":{"step":0,"atMillis":1000,"approved":false}}"#
        );
        assert_eq!(serde_json::from_str::<PlanCursor>(&json).unwrap(), c);
        for bad in [
            "12345",
            "000000000000000g",
            "+00000000000000f",
            "00000000000000000",
            "",
        ] {
            let json = format!(r#"{{"plan":"{bad}"}}"#);
            let msg = serde_json::from_str::<PlanCursor>(&json)
                .unwrap_err()
                .to_string();
            assert!(msg.contains(&format!("invalid plan `{bad}`")), "{msg}");
        }
    }

    /// Every part of the plan counts: the starting split, and each step's weights, routes,
    /// mirror, sticky sessions, hold and approval.
    #[test]
    fn every_part_of_the_plan_changes_the_fingerprint() {
        use crate::routes::{MatchRoute, Mirror, StickySession, ValueMatch};
        let from = TrafficSplit::all_to("stable", &["canary"]).unwrap();
        let route = |v: ValueMatch| MatchRoute::header("x-canary", v, "canary").unwrap();
        let gradual = |pct: u8, secs: u64| {
            Strategy::gradual(
                Weight::from_percent(pct).unwrap(),
                Duration::from_secs(secs),
            )
            .unwrap()
        };
        let shift = |from: &TrafficSplit, s: &Strategy| Plan::shift(from, "canary", s).unwrap();
        let plans = [
            shift(&from, &gradual(50, 30)),
            shift(&from, &gradual(40, 30)),
            shift(&from, &gradual(50, 31)),
            shift(
                &TrafficSplit::all_to("stable", &["canary", "x"]).unwrap(),
                &gradual(50, 30),
            ),
            shift(
                &from
                    .clone()
                    .with_route(route(ValueMatch::Exact("a".into())))
                    .unwrap(),
                &gradual(50, 30),
            ),
            shift(
                &from
                    .clone()
                    .with_route(route(ValueMatch::Prefix("a".into())))
                    .unwrap(),
                &gradual(50, 30),
            ),
            shift(
                &from
                    .clone()
                    .with_mirror(Mirror::new("canary", Weight::FULL).unwrap()),
                &gradual(50, 30),
            ),
            shift(
                &from
                    .clone()
                    .with_sticky(StickySession::new("s", Duration::from_secs(60)).unwrap()),
                &gradual(50, 30),
            ),
            plan(),
            other_plan(),
            Plan::rollback(&plan()),
        ];
        let mut seen: Vec<u64> = plans.iter().map(Plan::fingerprint).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), plans.len());
        assert_eq!(
            shift(&from, &gradual(50, 30)).fingerprint(),
            shift(&from, &gradual(50, 30)).fingerprint()
        );
        let mut approved = serde_json::to_value(plan()).unwrap();
        approved["steps"][1]["awaitApproval"] = true.into();
        let approved: Plan = serde_json::from_value(approved).unwrap();
        assert_ne!(approved.fingerprint(), plan().fingerprint());
    }
}
