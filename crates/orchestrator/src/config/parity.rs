//! `canaryConfig.parityJudges`: the analyses of Argo Rollouts, Flagger and Kayenta, as written
//! for those controllers, judging a canary beside the sequential judges, or either as a dry run.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serin_canary::judge::Judge;
use serin_canary::kayenta::{KayentaAnalysis, KayentaAnalysisConfig};
use serin_canary::threshold::{
    ArgoConfig, ArgoJudge, FlaggerAnalysis, FlaggerAnalysisConfig, FlaggerMetric,
};

use crate::error::{Error, Result};
use crate::state::AnyJudge;

use super::{CanaryConfig, human};

/// Analyses with the exact rules of Argo Rollouts, Flagger and Kayenta, for teams that move
/// their analysis over as it is. By default they judge beside the sequential judges: whichever
/// judge fails first rolls the canary back (a dry-run Argo metric only advises), and the canary
/// is promoted at the end of its steps if none has. Their [`role`](Self::role) can instead make
/// them a dry run, or make the sequential judges one, so that a team can watch one analysis
/// while the other decides before it switches. A run that ended inconclusive (an Argo metric's
/// `inconclusiveLimit`) is handled by `canaryConfig.onInconclusive`.
///
/// Each is fed once per `canaryConfig.metricsWindow`, which stands for their interval: one
/// measurement of an Argo metric, one Flagger check, one Kayenta point. Like Argo's
/// background analysis, they run from the canary's first step to its end and are never
/// restarted: an Argo run that has passed stays passed through later analysis steps, where
/// Argo would start a new run at each inline analysis step (write the metric with `interval`
/// and without `count` to have it measure throughout). An Argo run still going at the
/// promotion ends with it, as Argo terminates a background run; a Kayenta run must fit within
/// the canary's timed pauses and analysis steps, so that its final judgement comes before the
/// promotion, as Spinnaker's pipeline waits out the canary stage.
///
/// They judge the canary alone against fixed bounds (Argo, Flagger) or score intervals
/// (Kayenta), and give no guarantee on false rollbacks when checked repeatedly: the `alpha` of
/// `canaryConfig` is the sequential judges' alone.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ParityJudges {
    /// Which judges decide: these beside the sequential judges (the default), the sequential
    /// judges alone with these as a dry run, or these alone with the sequential judges as a
    /// dry run.
    #[serde(skip_serializing_if = "is_alongside")]
    pub role: ParityRole,
    /// Argo Rollouts analysis metrics (`successCondition`, `failureCondition`, `failureLimit`,
    /// `count`, `initialDelay`, `dryRun`, ...), one judge each. An `interval`, if written, must
    /// be `canaryConfig.metricsWindow`: each window is one measurement. An `initialDelay`
    /// counts from the canary's first step, and must end within its timed pauses and analysis
    /// steps.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub argo: Vec<ArgoConfig>,
    /// A Flagger canary's `analysis`: its metric checks (the built-ins by name,
    /// `request-success-rate` and `request-duration`) and its one `threshold` of failed checks,
    /// one check per window. Its `interval` and each metric's, if written, must be
    /// `canaryConfig.metricsWindow`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flagger: Option<FlaggerAnalysisConfig>,
    /// A Kayenta canary config, each metric bound to a Serin metric, judged as Spinnaker's
    /// canary stage judges it; its run counts one point per window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kayenta: Option<KayentaAnalysisConfig>,
}

/// Which judges of a canary decide, when [`ParityJudges`] are written. A dry-run judge is
/// fed, judged and listed in every decision's evidence ("Dry run, recorded only: …"), as an
/// Argo Rollouts metric with `dryRun`; it never holds, rolls back or delays a raise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ParityRole {
    /// The parity judges and the sequential judges all decide: the first to fail rolls back.
    #[default]
    Alongside,
    /// The sequential judges decide; the parity judges are a dry run, to watch what a team's
    /// former analysis would have said.
    DryRun,
    /// The parity judges decide; the sequential judges are a dry run, to watch them before
    /// they decide. `canaryConfig.alpha` then bounds nothing that acts: the parity judges give
    /// no guarantee on false rollbacks. The promotion gate (`promotionMaxErrorRate`) and the
    /// rollback triggers still hold, and `pacing.exposureBudget`, which models the sequential
    /// judges, is refused.
    Instead,
}

fn is_alongside(role: &ParityRole) -> bool {
    *role == ParityRole::Alongside
}

impl ParityJudges {
    /// The judges of `canary`'s parity judges, in the order written: Argo's metrics, then
    /// Flagger's analysis, then Kayenta's, with what each judge refuses named under `path`.
    /// Also refused: an Argo `interval` other than `metricsWindow`, and a Kayenta run that
    /// would outlast the canary's timed pauses and analysis steps, whose end promotes the
    /// canary before the run's final judgement.
    pub(crate) fn judges(&self, path: &str, canary: &CanaryConfig) -> Result<Vec<AnyJudge>> {
        let window = canary.metrics_window;
        // Each window is one measurement or check: an interval written otherwise would be
        // read as this one.
        let same_window = |at: String, interval: Option<Duration>, each: &str| match interval {
            Some(d) if d != window => Err(Error::invalid(
                at,
                human(d),
                format!(
                    "each canaryConfig.metricsWindow ({}) is one {each}: leave the interval \
                     out or set metricsWindow to it",
                    human(window)
                ),
            )),
            _ => Ok(()),
        };
        let mut judges = Vec::new();
        for (i, c) in self.argo.iter().enumerate() {
            let at = format!("{path}.argo[{i}]");
            same_window(format!("{at}.interval"), c.interval, "measurement")?;
            if let Some(delay) = c.initial_delay {
                let what = "the metric's first measurement comes after its initialDelay";
                within_steps(
                    canary,
                    format!("{at}.initialDelay"),
                    human(delay),
                    delay,
                    what,
                )?;
            }
            let judge = ArgoJudge::new(c.clone()).map_err(|e| relocate(e, &at))?;
            judges.push(AnyJudge::Argo(Box::new(judge)));
        }
        if let Some(c) = &self.flagger {
            let at = format!("{path}.flagger");
            same_window(format!("{at}.interval"), c.interval, "check")?;
            for (i, m) in c.metrics.iter().enumerate() {
                let metric_at = format!("{at}.metrics[{i}].interval");
                same_window(metric_at, m.interval, "check")?;
            }
            let judge = FlaggerAnalysis::new(c.clone()).map_err(|e| relocate(e, &at))?;
            judges.push(AnyJudge::Flagger(Box::new(judge)));
        }
        if let Some(c) = &self.kayenta {
            let at = format!("{path}.kayenta");
            let judge = KayentaAnalysis::new(c.clone()).map_err(|e| relocate(e, &at))?;
            // While the run goes on, its judge has not passed: no analysis step ends early.
            // The final judgement comes after the last whole interval, maybe short of the
            // lifetime.
            let points = u32::try_from(c.run.final_point()).unwrap_or(u32::MAX);
            within_steps(
                canary,
                format!("{at}.run.lifetimePoints"),
                c.run.lifetime_points,
                window.saturating_mul(points),
                &format!(
                    "the run's final judgement comes after {points} points, one per \
                     canaryConfig.metricsWindow of {}",
                    human(window)
                ),
            )?;
            judges.push(AnyJudge::Kayenta(Box::new(judge)));
        }
        match self.role {
            ParityRole::DryRun => Ok(judges.into_iter().map(AnyJudge::dry_run).collect()),
            ParityRole::Instead if !judges.iter().any(|j| !j.advisory()) => Err(Error::invalid(
                format!("{path}.role"),
                "instead",
                "needs a parity judge that decides (an Argo metric without dryRun, Flagger's \
                 or Kayenta's analysis): the sequential judges are a dry run, and a canary \
                 that no judge decides would pass on no evidence",
            )),
            _ => Ok(judges),
        }
    }

    /// What these judges do, for the dry run: `also judged by Argo Rollouts' error_rate,
    /// Flagger's analysis of error_rate and latency (threshold 2)`, as their role has it;
    /// `None` when there are none.
    pub(crate) fn summary(&self) -> Option<String> {
        let judges = self.judges_named()?;
        Some(match self.role {
            ParityRole::Alongside => format!("also judged by {judges}"),
            ParityRole::DryRun => {
                format!("also judged, as a dry run recorded and never acted on, by {judges}")
            }
            ParityRole::Instead => format!(
                "judged by {judges} instead of the sequential judges, which are a dry run \
                 recorded and never acted on"
            ),
        })
    }

    /// The judges, named: `Argo Rollouts' error_rate, Flagger's analysis of error_rate and
    /// latency (threshold 2)`; `None` when there are none.
    fn judges_named(&self) -> Option<String> {
        let mut parts = Vec::new();
        if !self.argo.is_empty() {
            let each: Vec<String> = self
                .argo
                .iter()
                .map(|c| {
                    let dry = if c.dry_run { " (dry run)" } else { "" };
                    match &c.name {
                        Some(name) => format!("{name} on {}{dry}", c.metric),
                        None => format!("{}{dry}", c.metric),
                    }
                })
                .collect();
            parts.push(format!("Argo Rollouts' {}", each.join(", ")));
        }
        if let Some(f) = &self.flagger {
            let mut names: Vec<String> = Vec::new();
            // A check is named as written for Flagger, else by the metric it reads.
            let named = |m: &FlaggerMetric| m.name.clone().unwrap_or_else(|| m.metric.to_string());
            for name in f.metrics.iter().map(named) {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            parts.push(format!(
                "Flagger's analysis of {} (threshold {})",
                names.join(" and "),
                f.failed_checks_to_roll_back()
            ));
        }
        if let Some(k) = &self.kayenta {
            let n = k.canary_config.metrics.len();
            parts.push(format!(
                "Kayenta's canary config `{}` ({n} metric{}, a run of {} points)",
                k.canary_config.name,
                if n == 1 { "" } else { "s" },
                k.run.lifetime_points
            ));
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

/// Refuses a parity setting whose effect comes `takes` after the canary's first step, later
/// than its timed pauses and analysis steps together: the canary would be promoted first.
/// `what` says what comes that late.
fn within_steps(
    canary: &CanaryConfig,
    at: String,
    value: impl ToString,
    takes: Duration,
    what: &str,
) -> Result<()> {
    let (pauses, analyses) = (canary.timed_pauses()?, canary.analysis_steps()?);
    if takes <= pauses.saturating_add(analyses) {
        return Ok(());
    }
    let analyses = if analyses.is_zero() {
        String::new()
    } else {
        format!(" and its analysis steps ({})", human(analyses))
    };
    Err(Error::invalid(
        at,
        value,
        format!(
            "{what}: {}, longer than the canary's timed pauses together ({}, {}){analyses}, so \
             the canary would be promoted first",
            human(takes),
            human(pauses),
            canary.pauses_field()?,
        ),
    ))
}

/// A judge's or a policy's refusal, its path moved under `at`: they name their settings from
/// their own root (`flaggerAnalysis.metrics[1].thresholdRange`, `canaryPolicy.steps[2]`), which
/// is `at` in this config.
pub(super) fn relocate(e: serin_canary::Error, at: &str) -> Error {
    match e {
        serin_canary::Error::InvalidConfig {
            path,
            value,
            reason,
        } => {
            let rest = path.split_once('.').map_or("", |(_, rest)| rest);
            let field = if rest.is_empty() {
                at.to_owned()
            } else {
                format!("{at}.{rest}")
            };
            Error::invalid(field, value, reason)
        }
        other => Error::invalid(at, "…", other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_judge_refusal_names_the_path_in_this_config() {
        let e = serin_canary::Error::invalid_config(
            "flaggerAnalysis.metrics[1].thresholdRange",
            "[5, 1]",
            "min above max",
        );
        let moved = relocate(e, "canaryConfig.parityJudges.flagger").to_string();
        assert!(
            moved.contains("canaryConfig.parityJudges.flagger.metrics[1].thresholdRange"),
            "{moved}"
        );
        assert!(
            moved.contains("[5, 1]") && moved.contains("min above max"),
            "{moved}"
        );
        let root = serin_canary::Error::invalid_config("argoConfig", "x", "why");
        let moved = relocate(root, "canaryConfig.parityJudges.argo[0]").to_string();
        assert!(
            moved.contains("canaryConfig.parityJudges.argo[0] "),
            "{moved}"
        );
    }
}
