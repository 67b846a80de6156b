//! [`Plan`]: the ordered steps from the current split to the target, as a value.
//!
//! Plans are pure: building one reads no clock and touches no router, so a plan can be printed
//! for a dry run, journalled, tested exhaustively and executed step by step by someone else (the
//! orchestrator), who decides when to apply each step and when to wait.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::split::{RawSplit, TrafficSplit};
use crate::strategy::{Pause, Strategy};
use crate::weight::Weight;
use crate::{duration, fingerprint};

/// One step of a [`Plan`]: apply `split`, hold it for `hold`, then (if `await_approval`) wait
/// for approval before the next step.
///
/// Serialized as `{"split": {...}, "hold": "30s", "awaitApproval": false}`; an error in the
/// split names its path from the step (`split.backends[1].weight`), and from the plan
/// (`steps[2].split.backends[1].weight`) when the step is read as part of one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawStep", into = "RawStep")]
pub struct PlanStep {
    split: TrafficSplit,
    hold: Duration,
    await_approval: bool,
}

impl PlanStep {
    /// The split to apply.
    pub fn split(&self) -> &TrafficSplit {
        &self.split
    }

    /// How long to hold the split once applied (zero: go on at once).
    pub fn hold(&self) -> Duration {
        self.hold
    }

    /// Whether to wait for approval after the hold.
    pub fn await_approval(&self) -> bool {
        self.await_approval
    }
}

/// The ordered steps from a starting split to a target split.
///
/// Build one with [`Plan::shift`] — moving all traffic to one backend (stable → canary,
/// blue → green), the common case. A plan always has at least one step, every step names the
/// starting split's backends in the same order (steps move weight, never add or drop a
/// backend, so the dry-run table has one column per backend), its last step's split is the
/// target exactly — all weight on the new backend, with the starting split's sticky sessions
/// and without its match routes and mirror — and [`Plan::rollback`] / [`Plan::rollback_from`]
/// give the one-step plan back to the starting (stable) split's weights and sticky sessions,
/// again without its match routes and mirror (see [`Plan::rollback`] for why). For a router
/// with coarser weights than basis points, [`Plan::shift_with_granularity`] keeps every weight
/// on its granularity. A plan read back from JSON is checked to have steps and to name the
/// same backends in each.
///
/// ```
/// use std::time::Duration;
/// use serin_traffic::{Plan, Strategy, TrafficSplit, Weight};
///
/// let stable = TrafficSplit::from_percents([("stable", 100), ("canary", 0)])?;
/// let plan = Plan::shift(&stable, "canary", &Strategy::gradual(Weight::from_percent(25)?, Duration::from_secs(30))?)?;
/// assert_eq!(plan.len(), 4);
/// assert_eq!(plan.step(0).map(|s| s.split().weight_of("canary")), Some(Some(Weight::from_percent(25)?)));
/// assert_eq!(plan.target(), &TrafficSplit::from_percents([("stable", 0), ("canary", 100)])?);
/// assert_eq!(plan.rollback_from(1)?.target(), &stable);
/// println!("{plan}"); // a table for a dry run
/// # Ok::<(), serin_traffic::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawPlan", into = "RawPlan")]
pub struct Plan {
    from: TrafficSplit,
    steps: Vec<PlanStep>,
    // Computed once by `Plan::new` (a plan never changes), as a cursor asks for it at each call.
    fingerprint: u64,
}

impl Plan {
    /// The plan from `from` through `steps`, with its fingerprint.
    fn new(from: TrafficSplit, steps: Vec<PlanStep>) -> Plan {
        let fingerprint = fingerprint::of(&from, &steps);
        Plan {
            from,
            steps,
            fingerprint,
        }
    }

    /// The plan that moves all traffic from `from` to backend `to` following `strategy`.
    ///
    /// - `to` must be a backend of `from` (it may already carry some weight: the plan starts
    ///   from there, and weighted steps below that weight are skipped as already passed). A
    ///   weighted step at exactly that weight is kept as a re-apply of `from`: being at its
    ///   weight is not having held it or had it approved, so its hold and approval still run.
    /// - Every step's weights add up to 100%; the target's weight only rises and every other
    ///   backend's only falls. When `from` has several other backends they give up weight in
    ///   proportion to their starting weights (rounded to the basis point, never rising).
    /// - Intermediate steps keep `from`'s match routes, mirror and sticky sessions. The last
    ///   step is the target: 100% on `to`, the other backends listed at 0%, `from`'s sticky
    ///   sessions and nothing else. The routes and the mirror belong to the deployment and end
    ///   with it, as a rollback drops them ([`Plan::rollback`]); sticky sessions are the
    ///   service's own setting, kept by a rollback and by a completed plan alike, so the next
    ///   deployment starts with them.
    /// - Gradual steps hold for the interval; weighted steps hold for their duration plus any
    ///   timed pause and may await approval; the last step of a gradual or immediate plan holds
    ///   for zero (there is nothing after it to wait for).
    ///
    /// Errors name the field: `to` (no such backend) or the strategy's (`strategy.increment`,
    /// `strategy.steps[1].weight`).
    pub fn shift(from: &TrafficSplit, to: &str, strategy: &Strategy) -> Result<Plan> {
        Plan::shift_with_granularity(from, to, strategy, Weight::ONE_BPS)
    }

    /// [`Plan::shift`] for a router that takes weights only in multiples of `granularity` (its
    /// [`Capabilities::weight_granularity`](crate::Capabilities::weight_granularity): whole
    /// percents for NGINX, 100% for a Service-selector switch), so that
    /// [`Capabilities::check_plan`](crate::Capabilities::check_plan) finds no weight too fine.
    ///
    /// Everything [`Plan::shift`] promises holds, and every weight of every step is a multiple
    /// of `granularity`: the other backends give up weight in whole multiples of it, each time
    /// the one furthest above its proportional share, so three backends at 50/50/0 moving 33%
    /// go to 33/34/33 rather than 33.5/33.5/33. At one basis point the plan is
    /// [`Plan::shift`]'s.
    ///
    /// Nothing else is rounded: a weight the user asked for stays what was asked, or the plan
    /// is refused, naming the field and the step, rather than holding a weight nobody asked for
    /// or dropping a step. Refused are a `granularity` that is not more than 0% or does not
    /// divide 100% evenly (`granularity`), a starting weight off it (`from.backends[0].weight`:
    /// no router at that granularity holds such a split, nor could a rollback restore it), and
    /// a step the strategy puts off it (`strategy.increment`, `strategy.steps[1].weight`). A
    /// mirror's share is the starting split's, which `check_plan` checks with the rest.
    pub fn shift_with_granularity(
        from: &TrafficSplit,
        to: &str,
        strategy: &Strategy,
        granularity: Weight,
    ) -> Result<Plan> {
        let granularity = granularity.as_granularity("granularity")?;
        strategy.validate()?;
        let Some(to_idx) = from.backends().iter().position(|b| b.name().as_str() == to) else {
            let names = from
                .backends()
                .iter()
                .map(|b| b.name().as_str())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(Error::invalid(
                "to",
                to,
                format!("is not a backend of the starting split ({names})"),
            ));
        };
        let unit = granularity.bps();
        if let Some((i, b)) = from
            .backends()
            .iter()
            .enumerate()
            .find(|(_, b)| !b.weight().bps().is_multiple_of(unit))
        {
            return Err(Error::invalid(
                format!("from.backends[{i}].weight"),
                b.weight(),
                format!(
                    "backend {}'s starting weight is not a multiple of the weight granularity \
                     {granularity}: no router at that granularity holds this split, nor could a \
                     rollback restore it",
                    b.name()
                ),
            ));
        }
        let start: Vec<u16> = from.backends().iter().map(|b| b.weight().bps()).collect();
        let w0 = start.get(to_idx).copied().unwrap_or(0);
        let mut marks = marks(strategy, w0);
        if let Some((i, mark)) = marks
            .iter()
            .enumerate()
            .find(|(_, m)| !m.weight.is_multiple_of(unit))
        {
            return Err(Error::invalid(
                &mark.field,
                mark.value,
                format!(
                    "step {i} of the plan would put {} on {to}, not a multiple of the weight \
                     granularity {granularity}",
                    Weight::from_bps(mark.weight)?
                ),
            ));
        }
        // The final step is always the target; a weighted 100% step lends it its hold.
        let (final_hold, final_approval) = match marks.pop_if(|m| m.weight >= Weight::TOTAL_BPS) {
            Some(m) => (m.hold, m.await_approval),
            None => (Duration::ZERO, false),
        };

        let mut steps = Vec::with_capacity(marks.len() + 1);
        let mut current = start.clone();
        for mark in marks {
            current = step_toward(&current, &start, to_idx, mark.weight, unit);
            let weights: Vec<Weight> = current
                .iter()
                .map(|&b| Weight::from_bps(b))
                .collect::<Result<_>>()?;
            steps.push(PlanStep {
                split: from.reweighted(&weights)?,
                hold: mark.hold,
                await_approval: mark.await_approval,
            });
        }
        let target_weights: Vec<Weight> = (0..start.len())
            .map(|i| {
                if i == to_idx {
                    Weight::FULL
                } else {
                    Weight::ZERO
                }
            })
            .collect();
        steps.push(PlanStep {
            split: from
                .without_routes_or_mirror()
                .reweighted(&target_weights)?,
            hold: final_hold,
            await_approval: final_approval,
        });
        Ok(Plan::new(from.clone(), steps))
    }

    /// The split the plan starts from (the stable split a rollback returns to).
    pub fn from(&self) -> &TrafficSplit {
        &self.from
    }

    /// The split the plan ends at: the last step's.
    pub fn target(&self) -> &TrafficSplit {
        // A plan always has at least one step (checked by every constructor); `from` is only a
        // fallback that cannot be reached.
        self.steps.last().map(|s| &s.split).unwrap_or(&self.from)
    }

    /// The steps, in order.
    pub fn steps(&self) -> &[PlanStep] {
        &self.steps
    }

    /// Step `index` (0-based), if there is one.
    pub fn step(&self, index: usize) -> Option<&PlanStep> {
        self.steps.get(index)
    }

    /// The number of steps (at least one).
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Always `false`: a plan has at least one step.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The sum of all holds: the least time the plan takes, approvals aside.
    pub fn total_hold(&self) -> Duration {
        self.steps
            .iter()
            .fold(Duration::ZERO, |acc, s| acc.saturating_add(s.hold))
    }

    /// How many steps wait for approval.
    pub fn approvals(&self) -> usize {
        self.steps.iter().filter(|s| s.await_approval).count()
    }

    /// A 64-bit fingerprint of the whole plan — the starting split and every step's split,
    /// hold and approval — that a [`PlanCursor`](crate::PlanCursor) records to refuse another
    /// plan. It is the same in every process, on every platform and with every compiler:
    /// FNV-1a over the plan written out field by field, not `std::hash`.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The one-step plan from the target back to the starting split: its weights and sticky
    /// sessions exactly, without its match routes and mirror.
    ///
    /// The routes and the mirror are the deployment's own — a header route that lets testers
    /// reach the new version at 0%, a mirror that shows it real traffic — which every step
    /// carries and the target drops. A rollback drops them too, as Argo Rollouts removes its
    /// managed routes (`setHeaderRoute`, `setMirrorRoute`) when a rollout is aborted as well as
    /// when it is fully promoted: a version rolled back for being bad must get no more requests,
    /// matched or copied, and a mirror to a track about to be retired would only load it and
    /// fail. Sticky sessions stay, as they stay at the target: they are the service's setting,
    /// not the deployment's, and keep users from flipping between the backends left.
    pub fn rollback(&self) -> Plan {
        Plan::new(self.target().clone(), vec![self.rollback_step()])
    }

    /// The one-step plan from step `index`'s split back to the starting split, as
    /// [`rollback`](Self::rollback) — for a rollback in the middle of the plan. An index past
    /// the end is refused.
    pub fn rollback_from(&self, index: usize) -> Result<Plan> {
        let Some(step) = self.steps.get(index) else {
            return Err(Error::invalid(
                "step",
                index,
                format!(
                    "the plan has {} steps, numbered 0 to {}",
                    self.steps.len(),
                    self.steps.len().saturating_sub(1)
                ),
            ));
        };
        Ok(Plan::new(step.split.clone(), vec![self.rollback_step()]))
    }

    /// The one step of a rollback: the starting weights and sticky sessions, applied at once.
    fn rollback_step(&self) -> PlanStep {
        PlanStep {
            split: self.from.without_routes_or_mirror(),
            hold: Duration::ZERO,
            await_approval: false,
        }
    }
}

/// A weight the target reaches in a step of a plan, before the step is built.
struct Mark {
    /// The target's weight, in basis points; strictly increasing from mark to mark.
    weight: u16,
    hold: Duration,
    await_approval: bool,
    /// The strategy's field that asked for the weight, and its value, for an error.
    field: String,
    value: Weight,
}

/// The target's weights `strategy` asks for on the way from `w0` bps, strictly increasing: a
/// gradual strategy's increments below 100%, a weighted strategy's steps from `w0` on (a 100%
/// step included: it lends the final step its hold and approval).
fn marks(strategy: &Strategy, w0: u16) -> Vec<Mark> {
    let full = Weight::TOTAL_BPS;
    let mut marks = Vec::new();
    match strategy {
        Strategy::Immediate => {}
        Strategy::Gradual {
            increment,
            interval,
        } => {
            let mut w = w0;
            loop {
                w = w.saturating_add(increment.bps()).min(full);
                if w >= full {
                    break;
                }
                marks.push(Mark {
                    weight: w,
                    hold: *interval,
                    await_approval: false,
                    field: "strategy.increment".to_owned(),
                    value: *increment,
                });
            }
        }
        Strategy::Weighted { steps } => {
            for (i, s) in steps.iter().enumerate() {
                if s.weight.bps() < w0 {
                    continue;
                }
                let (extra, await_approval) = match s.pause {
                    Pause::None => (Duration::ZERO, false),
                    Pause::Timed(d) => (d, false),
                    Pause::UntilApproved => (Duration::ZERO, true),
                };
                marks.push(Mark {
                    weight: s.weight.bps(),
                    hold: s.duration.saturating_add(extra),
                    await_approval,
                    field: format!("strategy.steps[{i}].weight"),
                    value: s.weight,
                });
            }
        }
    }
    marks
}

/// The weights after raising `to_idx` to `target` bps from `prev`: the other backends give up
/// the difference `unit` bps at a time, each time the one furthest above its proportional share
/// of what is left (proportions from `start`), so no weight ever rises and, with `prev` and
/// `target` multiples of `unit`, every weight stays one.
fn step_toward(prev: &[u16], start: &[u16], to_idx: usize, target: u16, unit: u16) -> Vec<u16> {
    let mut next = prev.to_vec();
    let have = prev.get(to_idx).copied().unwrap_or(0);
    if target <= have {
        return next;
    }
    if let Some(t) = next.get_mut(to_idx) {
        *t = target;
    }
    let full = i64::from(Weight::TOTAL_BPS);
    let start_rest = full - i64::from(start.get(to_idx).copied().unwrap_or(0));
    let left = full - i64::from(target);
    if left == 0 || start_rest == 0 {
        for (i, w) in next.iter_mut().enumerate() {
            if i != to_idx {
                *w = 0;
            }
        }
        return next;
    }
    for _ in 0..(target - have) / unit {
        // excess_i ∝ prev_i / left - start_i / start_rest, scaled by start_rest * left.
        let pick = next
            .iter()
            .zip(start)
            .enumerate()
            .filter(|&(i, (&w, _))| i != to_idx && w >= unit)
            .max_by(|&(i, (&a, &sa)), &(j, (&b, &sb))| {
                let ea = i64::from(a) * start_rest - i64::from(sa) * left;
                let eb = i64::from(b) * start_rest - i64::from(sb) * left;
                // Ties go to the earlier backend.
                ea.cmp(&eb).then(j.cmp(&i))
            })
            .map(|(i, _)| i);
        match pick.and_then(|i| next.get_mut(i)) {
            Some(w) => *w -= unit,
            None => break,
        }
    }
    next
}

impl fmt::Display for Plan {
    /// A table for a dry run: one row per step with every backend's weight, the hold and what
    /// comes after; routes, mirror and sticky sessions in a last column when any step has them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self
            .from
            .backends()
            .iter()
            .map(|b| b.name().as_str())
            .collect();
        let extras = |s: &TrafficSplit| {
            let mut parts: Vec<String> = s.routes().iter().map(ToString::to_string).collect();
            parts.extend(s.mirror().map(ToString::to_string));
            parts.extend(s.sticky().map(ToString::to_string));
            parts.join("; ")
        };
        let show_extras = !self.from.is_plain() || self.steps.iter().any(|s| !s.split.is_plain());

        let mut header = vec!["step".to_owned()];
        header.extend(names.iter().map(|n| (*n).to_owned()));
        header.extend(["hold".to_owned(), "then".to_owned()]);
        if show_extras {
            header.push("also".to_owned());
        }
        let weights = |s: &TrafficSplit| -> Vec<String> {
            names
                .iter()
                .map(|n| {
                    s.weight_of(n)
                        .map_or_else(|| "-".to_owned(), |w| w.to_string())
                })
                .collect()
        };
        let mut rows = vec![header];
        let mut start = vec!["start".to_owned()];
        start.extend(weights(&self.from));
        start.extend(["-".to_owned(), String::new()]);
        if show_extras {
            start.push(extras(&self.from));
        }
        rows.push(start);
        for (i, s) in self.steps.iter().enumerate() {
            let last = i + 1 == self.steps.len();
            let mut row = vec![i.to_string()];
            row.extend(weights(&s.split));
            row.push(if s.hold.is_zero() {
                "-".to_owned()
            } else {
                duration::human(s.hold)
            });
            row.push(
                match (s.await_approval, last) {
                    (true, false) => "await approval",
                    (true, true) => "await approval, done",
                    (false, false) => "next",
                    (false, true) => "done",
                }
                .to_owned(),
            );
            if show_extras {
                row.push(extras(&s.split));
            }
            rows.push(row);
        }

        let columns = rows.first().map_or(0, Vec::len);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                rows.iter()
                    .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        writeln!(
            f,
            "plan: {} step(s) from [{}] to [{}], holding {} in all{}",
            self.steps.len(),
            self.from,
            self.target(),
            duration::human(self.total_hold()),
            match self.approvals() {
                0 => String::new(),
                n => format!(", {n} approval(s)"),
            }
        )?;
        for row in &rows {
            let mut line = String::new();
            for (c, (cell, width)) in row.iter().zip(&widths).enumerate() {
                if c > 0 {
                    line.push_str("  ");
                }
                // Weights and holds right-aligned, words left-aligned.
                let numeric = c > 0 && c <= names.len() + 1;
                if numeric {
                    line.push_str(&format!("{cell:>width$}"));
                } else {
                    line.push_str(&format!("{cell:<width$}"));
                }
            }
            writeln!(f, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawStep {
    split: RawSplit,
    #[serde(with = "duration")]
    hold: Duration,
    #[serde(default)]
    await_approval: bool,
}

impl TryFrom<RawStep> for PlanStep {
    type Error = Error;
    fn try_from(raw: RawStep) -> Result<Self> {
        Ok(PlanStep {
            split: TrafficSplit::try_from(raw.split).map_err(|e| e.within("split"))?,
            hold: raw.hold,
            await_approval: raw.await_approval,
        })
    }
}

impl From<PlanStep> for RawStep {
    fn from(s: PlanStep) -> Self {
        RawStep {
            split: s.split.into(),
            hold: s.hold,
            await_approval: s.await_approval,
        }
    }
}

/// A plan as read, its splits not yet checked, so that an error in one names its path in the
/// plan (`from.backends[0].name`, `steps[2].split.routes[0].backend`).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawPlan {
    from: RawSplit,
    steps: Vec<RawStep>,
}

impl TryFrom<RawPlan> for Plan {
    type Error = Error;
    fn try_from(raw: RawPlan) -> Result<Self> {
        let from = TrafficSplit::try_from(raw.from).map_err(|e| e.within("from"))?;
        let steps = raw
            .steps
            .into_iter()
            .enumerate()
            .map(|(i, s)| PlanStep::try_from(s).map_err(|e| e.within(&format!("steps[{i}]"))))
            .collect::<Result<Vec<_>>>()?;
        if steps.is_empty() {
            return Err(Error::invalid(
                "steps",
                "[]",
                "a plan has at least one step",
            ));
        }
        let plan = Plan::new(from, steps);
        let from = backend_names(&plan.from);
        for (i, step) in plan.steps.iter().enumerate() {
            let here = backend_names(&step.split);
            if here != from {
                return Err(Error::invalid(
                    format!("steps[{i}].split.backends"),
                    here.join(", "),
                    format!(
                        "must name the starting split's backends in the same order ({})",
                        from.join(", ")
                    ),
                ));
            }
        }
        Ok(plan)
    }
}

fn backend_names(split: &TrafficSplit) -> Vec<&str> {
    split.backends().iter().map(|b| b.name().as_str()).collect()
}

impl From<Plan> for RawPlan {
    fn from(p: Plan) -> Self {
        RawPlan {
            from: p.from.into(),
            steps: p.steps.into_iter().map(Into::into).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::{MatchRoute, ValueMatch};
    use crate::strategy::{Pause, WeightedStep};

    fn pct(p: u8) -> Weight {
        Weight::from_percent(p).unwrap()
    }

    fn canary_weights(plan: &Plan) -> Vec<u16> {
        plan.steps()
            .iter()
            .map(|s| s.split().weight_of("canary").unwrap().bps() / 100)
            .collect()
    }

    #[test]
    fn gradual_ten_percent_every_thirty_seconds() {
        let from = TrafficSplit::all_to("stable", &["canary"]).unwrap();
        let s = Strategy::gradual(pct(10), Duration::from_secs(30)).unwrap();
        let plan = Plan::shift(&from, "canary", &s).unwrap();
        assert_eq!(
            canary_weights(&plan),
            (1..=10).map(|i| i * 10).collect::<Vec<_>>()
        );
        assert_eq!(plan.total_hold(), Duration::from_secs(270));
        assert_eq!(plan.step(9).unwrap().hold(), Duration::ZERO);
        assert!(plan.step(10).is_none());
        assert_eq!(
            plan.target(),
            &TrafficSplit::from_percents([("stable", 0), ("canary", 100)]).unwrap()
        );
    }

    #[test]
    fn gradual_starts_from_weight_already_on_target_and_caps_at_full() {
        let from = TrafficSplit::from_percents([("stable", 75), ("canary", 25)]).unwrap();
        let s = Strategy::gradual(pct(30), Duration::from_secs(1)).unwrap();
        assert_eq!(
            canary_weights(&Plan::shift(&from, "canary", &s).unwrap()),
            [55, 85, 100]
        );
    }

    #[test]
    fn immediate_is_one_step() {
        let from = TrafficSplit::all_to("blue", &["green"]).unwrap();
        let plan = Plan::shift(&from, "green", &Strategy::immediate()).unwrap();
        assert_eq!(plan.len(), 1);
        assert_eq!(plan.target().weight_of("green"), Some(Weight::FULL));
        assert_eq!(plan.target().weight_of("blue"), Some(Weight::ZERO));
        assert_eq!(plan.rollback().target(), &from);
        assert_eq!(plan.rollback().from(), plan.target());
    }

    #[test]
    fn weighted_steps_skip_passed_weights_and_end_at_full() {
        let from = TrafficSplit::from_percents([("stable", 80), ("canary", 20)]).unwrap();
        let s = Strategy::weighted(vec![
            WeightedStep::new(pct(10), Duration::from_secs(60)),
            WeightedStep::new(pct(15), Duration::from_secs(60)),
            WeightedStep::new(pct(50), Duration::from_secs(60)).with_pause(Pause::UntilApproved),
            WeightedStep::new(pct(80), Duration::from_secs(60))
                .with_pause(Pause::Timed(Duration::from_secs(240))),
        ])
        .unwrap();
        let plan = Plan::shift(&from, "canary", &s).unwrap();
        assert_eq!(canary_weights(&plan), [50, 80, 100]);
        assert!(plan.step(0).unwrap().await_approval());
        assert_eq!(plan.step(1).unwrap().hold(), Duration::from_secs(300));
        assert_eq!(plan.approvals(), 1);

        let to_full = Strategy::weighted(vec![
            WeightedStep::new(pct(50), Duration::ZERO),
            WeightedStep::new(pct(100), Duration::from_secs(9)).with_pause(Pause::UntilApproved),
        ])
        .unwrap();
        let plan = Plan::shift(&from, "canary", &to_full).unwrap();
        assert_eq!(canary_weights(&plan), [50, 100]);
        assert_eq!(plan.step(1).unwrap().hold(), Duration::from_secs(9));
        assert!(plan.step(1).unwrap().await_approval());
    }

    /// Being at a step's weight already is not having held it or had it approved: the step
    /// stays, re-applying the starting weights, so its hold runs and its approval gate stops
    /// the plan before traffic moves on.
    #[test]
    fn a_weighted_step_at_the_starting_weight_keeps_its_hold_and_gate() {
        let from = TrafficSplit::from_percents([("stable", 80), ("canary", 20)]).unwrap();
        let s = Strategy::weighted(vec![
            WeightedStep::new(pct(10), Duration::from_secs(60)).with_pause(Pause::UntilApproved),
            WeightedStep::new(pct(20), Duration::from_secs(60)).with_pause(Pause::UntilApproved),
            WeightedStep::new(pct(50), Duration::ZERO),
        ])
        .unwrap();
        let plan = Plan::shift(&from, "canary", &s).unwrap();
        assert_eq!(canary_weights(&plan), [20, 50, 100]);
        let first = plan.step(0).unwrap();
        assert_eq!(first.split(), &from);
        assert_eq!(first.hold(), Duration::from_secs(60));
        assert!(first.await_approval());
        assert_eq!(plan.approvals(), 1);

        // At the target already, a gated 100% step still gates the re-applied target.
        let at_target = TrafficSplit::from_percents([("stable", 0), ("canary", 100)]).unwrap();
        let s = Strategy::weighted(vec![
            WeightedStep::new(pct(50), Duration::ZERO),
            WeightedStep::new(pct(100), Duration::from_secs(9)).with_pause(Pause::UntilApproved),
        ])
        .unwrap();
        let plan = Plan::shift(&at_target, "canary", &s).unwrap();
        assert_eq!(plan.len(), 1);
        assert_eq!(plan.target(), &at_target);
        assert!(plan.step(0).unwrap().await_approval());
    }

    #[test]
    fn other_backends_shrink_in_proportion_without_rising() {
        let from = TrafficSplit::from_percents([("a", 60), ("b", 30), ("canary", 10)]).unwrap();
        let s = Strategy::gradual(pct(10), Duration::ZERO).unwrap();
        let plan = Plan::shift(&from, "canary", &s).unwrap();
        let first = plan.step(0).unwrap().split();
        // 80% left, split 2:1.
        assert_eq!(first.weight_of("a").unwrap().bps(), 5333);
        assert_eq!(first.weight_of("b").unwrap().bps(), 2667);
        let mut prev = (6000, 3000);
        for s in plan.steps() {
            let now = (
                s.split().weight_of("a").unwrap().bps(),
                s.split().weight_of("b").unwrap().bps(),
            );
            assert!(now.0 <= prev.0 && now.1 <= prev.1, "{prev:?} -> {now:?}");
            prev = now;
        }
    }

    #[test]
    fn routes_stay_until_the_plain_target() {
        let from = TrafficSplit::all_to("stable", &["canary"])
            .unwrap()
            .with_route(
                MatchRoute::header("x-canary", ValueMatch::Exact("always".into()), "canary")
                    .unwrap(),
            )
            .unwrap();
        let s = Strategy::gradual(pct(50), Duration::from_secs(30)).unwrap();
        let plan = Plan::shift(&from, "canary", &s).unwrap();
        assert_eq!(plan.step(0).unwrap().split().routes().len(), 1);
        assert!(plan.target().is_plain());
        let table = plan.to_string();
        assert!(
            table.contains("header x-canary=always -> canary"),
            "{table}"
        );
    }

    #[test]
    fn bad_input_names_the_field() {
        let from = TrafficSplit::all_to("stable", &["canary"]).unwrap();
        let e = Plan::shift(&from, "green", &Strategy::immediate()).unwrap_err();
        assert!(e.to_string().contains("stable, canary"), "{e}");
        assert!(matches!(e, Error::InvalidField { ref field, .. } if field == "to"));
        let bad = Strategy::Gradual {
            increment: Weight::ZERO,
            interval: Duration::from_secs(1),
        };
        let e = Plan::shift(&from, "canary", &bad).unwrap_err();
        assert!(
            matches!(e, Error::InvalidField { ref field, .. } if field == "strategy.increment")
        );
        let plan = Plan::shift(&from, "canary", &Strategy::immediate()).unwrap();
        let e = plan.rollback_from(1).unwrap_err();
        assert!(e.to_string().contains("numbered 0 to 0"), "{e}");
    }

    #[test]
    fn already_at_target_is_one_reapply() {
        let from = TrafficSplit::from_percents([("stable", 0), ("canary", 100)]).unwrap();
        let s = Strategy::gradual(pct(10), Duration::from_secs(1)).unwrap();
        let plan = Plan::shift(&from, "canary", &s).unwrap();
        assert_eq!(plan.len(), 1);
        assert_eq!(plan.target(), &from);
    }

    #[test]
    fn table_lists_every_step() {
        let from = TrafficSplit::all_to("stable", &["canary"]).unwrap();
        let s = Strategy::gradual(pct(25), Duration::from_secs(30)).unwrap();
        let table = Plan::shift(&from, "canary", &s).unwrap().to_string();
        let expected = "\
plan: 4 step(s) from [stable 100%, canary 0%] to [stable 0%, canary 100%], holding 1m 30s in all
step   stable  canary  hold  then
start    100%      0%     -
0         75%     25%   30s  next
1         50%     50%   30s  next
2         25%     75%   30s  next
3          0%    100%     -  done
";
        assert_eq!(table, expected);
    }

    #[test]
    fn plans_round_trip_and_refuse_empty() {
        let from = TrafficSplit::all_to("stable", &["canary"]).unwrap();
        let s = Strategy::gradual(pct(40), Duration::from_secs(30)).unwrap();
        let plan = Plan::shift(&from, "canary", &s).unwrap();
        let json = serde_json::to_string(&plan).unwrap();
        assert_eq!(serde_json::from_str::<Plan>(&json).unwrap(), plan);
        let empty = r#"{"from":{"backends":[{"name":"a","weight":100}]},"steps":[]}"#;
        let msg = serde_json::from_str::<Plan>(empty).unwrap_err().to_string();
        assert!(msg.contains("steps"), "{msg}");
    }

    #[test]
    fn an_error_in_a_nested_split_names_its_path_in_the_plan() {
        let ok = r#"{"backends":[{"name":"stable","weight":100},{"name":"green","weight":0}]}"#;
        let plan = |from: &str, bad_step: &str| {
            format!(
                r#"{{"from":{from},"steps":[{{"split":{ok},"hold":0}},{{"split":{ok},"hold":0}},{{"split":{bad_step},"hold":"30s"}}]}}"#
            )
        };
        for (json, field) in [
            (
                plan(
                    ok,
                    r#"{"backends":[{"name":"stable","weight":0},{"name":"green","weight":100.001}]}"#,
                ),
                "steps[2].split.backends[1].weight",
            ),
            (
                plan(
                    ok,
                    r#"{"backends":[{"name":"stable","weight":0},{"name":"Green","weight":100}]}"#,
                ),
                "steps[2].split.backends[1].name",
            ),
            (
                plan(
                    ok,
                    r#"{"backends":[{"name":"stable","weight":0},{"name":"green","weight":100}],"routes":[{"header":"x","exact":"1","backend":"blue"}]}"#,
                ),
                "steps[2].split.routes[0].backend",
            ),
            (
                plan(
                    ok,
                    r#"{"backends":[{"name":"stable","weight":0},{"name":"green","weight":100}],"mirror":{"backend":"shadow","percent":0}}"#,
                ),
                "steps[2].split.mirror.percent",
            ),
            (
                plan(
                    r#"{"backends":[{"name":"stable","weight":-1},{"name":"green","weight":0}]}"#,
                    ok,
                ),
                "from.backends[0].weight",
            ),
        ] {
            let raw: RawPlan = serde_json::from_str(&json).unwrap();
            match Plan::try_from(raw) {
                Err(Error::InvalidField { field: got, .. }) => assert_eq!(got, field, "{json}"),
                other => panic!("{json}: expected InvalidField, got {other:?}"),
            }
            let msg = serde_json::from_str::<Plan>(&json).unwrap_err().to_string();
            assert!(msg.contains(&format!("invalid {field} `")), "{msg}");
        }
        // Weights that do not add up name the split's place too.
        let json = plan(
            ok,
            r#"{"backends":[{"name":"stable","weight":90},{"name":"green","weight":20}]}"#,
        );
        let msg = serde_json::from_str::<Plan>(&json).unwrap_err().to_string();
        assert!(
            msg.contains("invalid traffic split stable 90% + green 20% at steps[2].split: "),
            "{msg}"
        );
        // A step read on its own names the path from the step.
        let step = r#"{"split":{"backends":[{"name":"a","weight":100.5}]},"hold":0}"#;
        let msg = serde_json::from_str::<PlanStep>(step)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("invalid split.backends[0].weight `"), "{msg}");
    }

    #[test]
    fn plans_whose_steps_name_other_backends_are_refused() {
        let from = r#"{"backends":[{"name":"stable","weight":100},{"name":"canary","weight":0}]}"#;
        for (step1, names) in [
            (
                r#"{"backends":[{"name":"stable","weight":0},{"name":"other","weight":100}]}"#,
                "`stable, other`",
            ),
            (
                r#"{"backends":[{"name":"canary","weight":100}]}"#,
                "`canary`",
            ),
            (
                r#"{"backends":[{"name":"canary","weight":100},{"name":"stable","weight":0}]}"#,
                "`canary, stable`",
            ),
        ] {
            let json = format!(
                r#"{{"from":{from},"steps":[{{"split":{from},"hold":0}},{{"split":{step1},"hold":0}}]}}"#
            );
            let msg = serde_json::from_str::<Plan>(&json).unwrap_err().to_string();
            assert!(
                msg.contains("steps[1].split.backends") && msg.contains(names),
                "{json}: {msg}"
            );
            assert!(msg.contains("(stable, canary)"), "{msg}");
        }
    }

    /// `weights` with the deployment's managed routes (a header route and a mirror to the
    /// canary) and the service's sticky sessions, which it also answers.
    fn managed(weights: &TrafficSplit) -> (TrafficSplit, crate::routes::StickySession) {
        use crate::routes::{Mirror, StickySession};
        let sticky = StickySession::new("serin-backend", Duration::from_secs(3600)).unwrap();
        let split = weights
            .clone()
            .with_route(
                MatchRoute::header("x-canary", ValueMatch::Exact("always".into()), "canary")
                    .unwrap(),
            )
            .unwrap()
            .with_mirror(Mirror::new("canary", pct(20)).unwrap())
            .with_sticky(sticky.clone());
        (split, sticky)
    }

    /// A rollback, from the target or from any step, drops the starting split's match routes
    /// and mirror (the deployment's managed routes) and keeps its weights and sticky sessions.
    #[test]
    fn rollback_drops_routes_and_mirror_and_keeps_weights_and_sticky() {
        let weights = TrafficSplit::from_percents([("stable", 90), ("canary", 10)]).unwrap();
        let (from, sticky) = managed(&weights);
        let s = Strategy::gradual(pct(30), Duration::from_secs(30)).unwrap();
        let plan = Plan::shift(&from, "canary", &s).unwrap();
        let expected = weights.with_sticky(sticky);
        let mut backs = vec![plan.rollback()];
        backs.extend((0..plan.len()).map(|i| plan.rollback_from(i).unwrap()));
        for back in backs {
            assert_eq!(back.len(), 1);
            let step = back.step(0).unwrap();
            assert_eq!(step.split(), &expected);
            assert!(step.split().routes().is_empty() && step.split().mirror().is_none());
            assert_eq!(
                (step.hold(), step.await_approval()),
                (Duration::ZERO, false)
            );
        }
        // A plain starting split comes back exactly.
        let plain = TrafficSplit::all_to("stable", &["canary"]).unwrap();
        let plan = Plan::shift(&plain, "canary", &s).unwrap();
        assert_eq!(plan.rollback().target(), &plain);
    }

    /// A completed plan leaves the service's own sticky sessions in force, as a rollback does,
    /// and drops only the deployment's match routes and mirror; so the next deployment starts
    /// from a split that still has them.
    #[test]
    fn the_target_keeps_sticky_sessions_and_drops_routes_and_mirror() {
        let weights = TrafficSplit::from_percents([("stable", 90), ("canary", 10)]).unwrap();
        let (from, sticky) = managed(&weights);
        let expected = TrafficSplit::from_percents([("stable", 0), ("canary", 100)])
            .unwrap()
            .with_sticky(sticky);
        for s in [
            Strategy::immediate(),
            Strategy::gradual(pct(30), Duration::from_secs(30)).unwrap(),
        ] {
            let plan = Plan::shift(&from, "canary", &s).unwrap();
            assert_eq!(plan.target(), &expected);
            assert_eq!(plan.rollback().target().sticky(), plan.target().sticky());
        }
    }

    fn weights_at(plan: &Plan, step: usize) -> Vec<u16> {
        plan.step(step)
            .unwrap()
            .split()
            .backends()
            .iter()
            .map(|b| b.weight().bps())
            .collect()
    }

    /// With three backends the other two shrink in proportion, which at basis points gives
    /// weights such as 33.5% that a whole-percent router refuses; at its granularity every step
    /// (and the rollback) is one it takes.
    #[test]
    fn several_backends_shrink_in_whole_steps_of_the_granularity() {
        use crate::capabilities::Capabilities;
        let from = TrafficSplit::from_percents([("a", 50), ("b", 50), ("canary", 0)]).unwrap();
        let s = Strategy::gradual(pct(33), Duration::from_secs(30)).unwrap();
        let whole_percent = Capabilities::full()
            .with_weight_granularity(pct(1))
            .unwrap();
        let plan = Plan::shift_with_granularity(&from, "canary", &s, pct(1)).unwrap();
        whole_percent.check_plan(&plan, "nginx").unwrap();
        // 67% left, one percent more on the earlier backend's side given up first.
        assert_eq!(weights_at(&plan, 0), [3300, 3400, 3300]);
        assert_eq!(canary_weights(&plan), [33, 66, 99, 100]);
        assert_eq!(plan.rollback().target(), &from);

        let from = TrafficSplit::from_percents([("a", 60), ("b", 30), ("canary", 10)]).unwrap();
        let s = Strategy::gradual(pct(10), Duration::ZERO).unwrap();
        let fives = Capabilities::full()
            .with_weight_granularity(pct(5))
            .unwrap();
        let plan = Plan::shift_with_granularity(&from, "canary", &s, pct(5)).unwrap();
        fives.check_plan(&plan, "lb").unwrap();
        // 80% left, 2:1 is 53.3% and 26.7%: each within one step of its share.
        assert_eq!(weights_at(&plan, 0), [5500, 2500, 2000]);
        // At one basis point the plan is the one `shift` builds.
        assert_eq!(
            Plan::shift_with_granularity(&from, "canary", &s, Weight::ONE_BPS).unwrap(),
            Plan::shift(&from, "canary", &s).unwrap()
        );
    }

    /// A weight the granularity cannot express is refused, naming the field, the step and the
    /// granularity, instead of being rounded into a step nobody asked for or dropped.
    #[test]
    fn weights_off_the_granularity_are_refused_naming_the_step_and_granularity() {
        let stable = TrafficSplit::all_to("stable", &["canary"]).unwrap();
        let weighted = Strategy::weighted(vec![
            WeightedStep::new(pct(10), Duration::ZERO),
            WeightedStep::new(Weight::from_bps(1250).unwrap(), Duration::ZERO),
        ])
        .unwrap();
        let gradual = Strategy::gradual(Weight::from_bps(250).unwrap(), Duration::ZERO).unwrap();
        let fine = TrafficSplit::new([
            ("stable", Weight::from_bps(8750).unwrap()),
            ("canary", Weight::from_bps(1250).unwrap()),
        ])
        .unwrap();
        for (from, s, granularity, field, message) in [
            (
                &stable,
                &weighted,
                pct(1),
                "strategy.steps[1].weight",
                "invalid strategy.steps[1].weight `12.5%`: step 1 of the plan would put 12.5% \
                 on canary, not a multiple of the weight granularity 1%",
            ),
            (
                &stable,
                &gradual,
                pct(1),
                "strategy.increment",
                "invalid strategy.increment `2.5%`: step 0 of the plan would put 2.5% on \
                 canary, not a multiple of the weight granularity 1%",
            ),
            (
                &stable,
                &Strategy::gradual(pct(10), Duration::ZERO).unwrap(),
                Weight::FULL,
                "strategy.increment",
                "weight granularity 100%",
            ),
            (
                &fine,
                &Strategy::immediate(),
                pct(1),
                "from.backends[0].weight",
                "invalid from.backends[0].weight `87.5%`",
            ),
            (
                &stable,
                &Strategy::immediate(),
                pct(3),
                "granularity",
                "invalid granularity `3%`: must be more than 0% and divide 100% evenly",
            ),
        ] {
            let e = Plan::shift_with_granularity(from, "canary", s, granularity).unwrap_err();
            assert!(e.to_string().contains(message), "{e}");
            assert!(
                matches!(e, Error::InvalidField { field: ref f, .. } if f == field),
                "{e}"
            );
        }
        // An immediate switch is all or nothing, which every granularity expresses; a weighted
        // step already passed is skipped, not refused.
        let plan =
            Plan::shift_with_granularity(&stable, "canary", &Strategy::immediate(), Weight::FULL)
                .unwrap();
        assert_eq!(plan.len(), 1);
        let at_20 = TrafficSplit::from_percents([("stable", 80), ("canary", 20)]).unwrap();
        let plan = Plan::shift_with_granularity(&at_20, "canary", &weighted, pct(1)).unwrap();
        assert_eq!(canary_weights(&plan), [100]);
    }
}
