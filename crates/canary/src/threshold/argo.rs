//! [`ArgoJudge`]: Argo Rollouts' analysis semantics for one metric (`EvaluateResult` and
//! `assessMetricStatus` in argoproj/argo-rollouts).

use serde::{Deserialize, Serialize};
use serin_signals::{Metric, Timestamp};

use crate::judge::{Judge, Judgement, Sample, Severity, Verdict, check_metric};
use crate::threshold::argo_config::ArgoConfig;
use crate::{Error, Result};

/// The phase of one measurement or of the metric's run, as Argo names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ArgoPhase {
    /// Still measuring.
    Running,
    /// The run (or measurement) succeeded.
    Successful,
    /// Failed measurements exceeded `failureLimit`.
    Failed,
    /// Consecutive errors exceeded `consecutiveErrorLimit`.
    Error,
    /// Inconclusive measurements exceeded `inconclusiveLimit` (Argo pauses for a human).
    Inconclusive,
}

/// Argo Rollouts' analysis of one metric as a [`Judge`]: each sample is one measurement of the
/// canary (the baseline is ignored, as in Argo).
///
/// A measurement is `Error` when the canary has no data (an empty or NaN query result). With
/// neither condition it is `Successful`; with only a success condition, not matching it fails;
/// with only a failure condition, not matching it succeeds; with both, matching neither is
/// `Inconclusive` (upstream `EvaluateResult`). The run is `Failed` when failures exceed
/// `failureLimit`, `Inconclusive` when inconclusive measurements exceed `inconclusiveLimit`,
/// `Error` when consecutive errors exceed `consecutiveErrorLimit`, and `Successful` after
/// `consecutiveSuccessLimit` successes in a row. After `count` measurements with none of these,
/// it ends as Argo ≥ 1.8 ends it: `Successful` if only `failureLimit` applies, `Failed` if only
/// `consecutiveSuccessLimit` does, `Inconclusive` if both do. As in Argo, errored measurements
/// do not count toward `count`, so a run of errors alone never ends `Successful`. A config read
/// without `count` or `interval` has a count of 1, as in Argo (see [`ArgoConfig`]).
///
/// Verdicts: `Failed` fails (warning severity). Argo aborts a rollout on an `Error` run; here,
/// as everywhere in Serin, missing evidence is **inconclusive**, never a failure or a pass, and
/// the evidence says that Argo would have aborted. A `Successful` run passes (Argo goes on with
/// the rollout, whatever failures or inconclusive measurements stayed within their limits).
/// A [dry-run](ArgoConfig::dry_run) metric is measured, assessed and answered the same; it is
/// [advisory](Judge::advisory), so the canary controller records its verdict in every decision
/// and acts on it never, as Argo's run counts it in its `dryRunSummary` and goes on.
///
/// A run that has ended (any phase but `Running`) has [concluded](Judge::concluded): it takes
/// no more measurements, and its verdict is final. One that ended `Inconclusive` (Argo pauses
/// the rollout for a person) or `Error` (Argo aborts it) is therefore inconclusive for good, and
/// the controller applies its policy's `onInconclusive` (hold, or roll back) rather than wait
/// for a pass that cannot come or move on past an analysis step whose time ran out as if the
/// run had passed.
/// While the run goes on, a metric with a `consecutiveSuccessLimit` is inconclusive until the
/// streak is complete (Argo waits for it); one without passes while the last measurement
/// succeeded, and is inconclusive before any measurement or after an inconclusive or errored
/// one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    deny_unknown_fields,
    try_from = "SavedArgoJudge"
)]
pub struct ArgoJudge {
    config: ArgoConfig,
    /// Measurements that were not errors (Argo's `count`).
    count: u32,
    failed: u32,
    inconclusive: u32,
    errors: u32,
    consecutive_errors: u32,
    consecutive_successes: u32,
    last: Option<(ArgoPhase, Option<f64>)>,
    /// When the run started: the start of the first window fed (for `initialDelay`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    started: Option<Timestamp>,
}

/// A journalled [`ArgoJudge`] as read back, checked before it becomes a judge: the settings
/// as the constructor checks them, and counters that measurements can have left. Failed and
/// inconclusive measurements are among those counted, a streak is no longer than its kind's
/// count, and a last measurement is there exactly when one was taken, with the phase its
/// value measures and the streak it leaves. A record that breaks these (a streak of successes
/// no measurement made, or a failed value recorded as a success, say) would end or pass the
/// run on evidence it never had, so it is refused, naming the field.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SavedArgoJudge {
    #[serde(deserialize_with = "crate::checked::config")]
    config: ArgoConfig,
    count: u32,
    failed: u32,
    inconclusive: u32,
    errors: u32,
    consecutive_errors: u32,
    consecutive_successes: u32,
    last: Option<(ArgoPhase, Option<f64>)>,
    /// Absent in a record written before `initialDelay` was read.
    #[serde(default)]
    started: Option<Timestamp>,
}

impl TryFrom<SavedArgoJudge> for ArgoJudge {
    type Error = Error;

    fn try_from(s: SavedArgoJudge) -> Result<Self> {
        let refuse = |field: &str, value: u32, reason: String| {
            Err(Error::invalid_input(
                format!("argoJudge.{field}"),
                value,
                reason,
            ))
        };
        let judged = u64::from(s.failed) + u64::from(s.inconclusive);
        if judged > u64::from(s.count) {
            return refuse(
                "failed",
                s.failed,
                format!(
                    "with {} inconclusive, exceeds the {} measurements counted",
                    s.inconclusive, s.count
                ),
            );
        }
        if s.consecutive_errors > s.errors {
            return refuse(
                "consecutiveErrors",
                s.consecutive_errors,
                format!("exceeds the {} errored measurements", s.errors),
            );
        }
        let successes = u64::from(s.count) - judged;
        if u64::from(s.consecutive_successes) > successes {
            return refuse(
                "consecutiveSuccesses",
                s.consecutive_successes,
                format!(
                    "exceeds the {successes} successful measurements ({} counted, {} failed, {} \
                     inconclusive)",
                    s.count, s.failed, s.inconclusive
                ),
            );
        }
        let measured = s.count > 0 || s.errors > 0;
        if s.last.is_some() != measured {
            return Err(Error::invalid_input(
                "argoJudge.last",
                if s.last.is_some() {
                    "a measurement"
                } else {
                    "null"
                },
                format!(
                    "must be the last measurement exactly when one was taken ({} counted, {} \
                     errors)",
                    s.count, s.errors
                ),
            ));
        }
        if let Some((phase, value)) = s.last {
            // The phase its value measures, and the streaks it leaves (successes, errors).
            let measured = s.config.evaluate(value);
            let left = match phase {
                ArgoPhase::Successful => (true, false),
                ArgoPhase::Error => (false, true),
                _ => (false, false),
            };
            if phase != measured || left != (s.consecutive_successes > 0, s.consecutive_errors > 0)
            {
                return Err(Error::invalid_input(
                    "argoJudge.last",
                    format!("{phase:?} with {value:?}"),
                    format!(
                        "a measurement of {value:?} is {measured:?}, and a {phase:?} one leaves \
                         a streak of its own kind only (the record holds {} consecutive \
                         successes and {} consecutive errors)",
                        s.consecutive_successes, s.consecutive_errors
                    ),
                ));
            }
        }
        Ok(ArgoJudge {
            config: s.config,
            count: s.count,
            failed: s.failed,
            inconclusive: s.inconclusive,
            errors: s.errors,
            consecutive_errors: s.consecutive_errors,
            consecutive_successes: s.consecutive_successes,
            last: s.last,
            started: s.started,
        })
    }
}

impl ArgoJudge {
    /// Name used in evidence.
    pub const NAME: &'static str = "argo";

    /// A judge with `config`, after validating it.
    pub fn new(config: ArgoConfig) -> Result<Self> {
        config.validate()?;
        Ok(ArgoJudge {
            config,
            count: 0,
            failed: 0,
            inconclusive: 0,
            errors: 0,
            consecutive_errors: 0,
            consecutive_successes: 0,
            last: None,
            started: None,
        })
    }

    /// The phase of one measurement of `result` (`None`, NaN or infinite = no data: an
    /// `Error`, never a value a condition could pass or fail).
    pub fn evaluate(&self, result: Option<f64>) -> ArgoPhase {
        self.config.evaluate(result)
    }

    /// Records one measurement of `result` (`None` = no data) and returns its phase. Once the
    /// run has ended (any phase but `Running`), nothing more is recorded, as Argo stops
    /// measuring a completed metric: the run's phase is final.
    pub fn measure(&mut self, result: Option<f64>) -> ArgoPhase {
        let result = result.filter(|v| v.is_finite());
        let phase = self.evaluate(result);
        if self.phase() != ArgoPhase::Running {
            return phase;
        }
        if phase != ArgoPhase::Error {
            self.count = self.count.saturating_add(1);
        }
        match phase {
            ArgoPhase::Error => {
                self.errors = self.errors.saturating_add(1);
                self.consecutive_errors = self.consecutive_errors.saturating_add(1);
                self.consecutive_successes = 0;
            }
            ArgoPhase::Failed => {
                self.failed = self.failed.saturating_add(1);
                self.consecutive_errors = 0;
                self.consecutive_successes = 0;
            }
            ArgoPhase::Inconclusive => {
                self.inconclusive = self.inconclusive.saturating_add(1);
                self.consecutive_errors = 0;
                self.consecutive_successes = 0;
            }
            ArgoPhase::Successful | ArgoPhase::Running => {
                self.consecutive_errors = 0;
                self.consecutive_successes = self.consecutive_successes.saturating_add(1);
            }
        }
        self.last = Some((phase, result));
        phase
    }

    /// The settings.
    pub fn config(&self) -> &ArgoConfig {
        &self.config
    }

    /// The run's phase after the measurements so far (`assessMetricStatus`); `Running` before
    /// any measurement, as every counter is still zero.
    pub fn phase(&self) -> ArgoPhase {
        let c = &self.config;
        let (failure, success) = (c.failure_applies(), c.success_applies());
        if failure && i64::from(self.failed) > c.failure_limit {
            ArgoPhase::Failed
        } else if self.inconclusive > c.inconclusive_limit {
            ArgoPhase::Inconclusive
        } else if self.consecutive_errors > c.consecutive_error_limit {
            ArgoPhase::Error
        } else if success && self.consecutive_successes >= c.consecutive_success_limit {
            ArgoPhase::Successful
        } else if c.count.is_some_and(|n| self.count >= n) {
            // The count is reached and no limit ended the run.
            match (failure, success) {
                (true, true) => ArgoPhase::Inconclusive,
                (false, true) => ArgoPhase::Failed,
                _ => ArgoPhase::Successful,
            }
        } else {
            ArgoPhase::Running
        }
    }
}

impl Judge for ArgoJudge {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn metric(&self) -> &Metric {
        &self.config.metric
    }

    fn observe(&mut self, sample: &Sample<'_>) -> Result<Judgement> {
        check_metric(Self::NAME, &self.config.metric, sample)?;
        let window = sample.window();
        let started = *self.started.get_or_insert(window.start());
        // A run that has measured is past its delay, whether `measure` (which knows no time)
        // took its measurements or this did.
        let delayed = self.count == 0
            && self.errors == 0
            && self
                .config
                .initial_delay
                .is_some_and(|d| window.end() < started.saturating_add(d));
        if !delayed {
            self.measure(self.config.quantity.of(&sample.canary().measurement));
        }
        Ok(self.judgement(sample.now()))
    }

    fn judgement(&self, now: Timestamp) -> Judgement {
        let mut ev = super::evidence(
            Self::NAME,
            &self.config.metric,
            now,
            self.count,
            self.last.and_then(|(_, v)| v),
            self.failed,
            self.config.failure_limit as f64,
        );
        let phase = self.phase();
        let last = self.last.map(|(p, _)| p);
        let counts = format!(
            "{} measurements: {} failed (limit {}), {} inconclusive (limit {}), {} errors ({} \
             consecutive, limit {})",
            self.count,
            self.failed,
            self.config.failure_limit,
            self.inconclusive,
            self.config.inconclusive_limit,
            self.errors,
            self.consecutive_errors,
            self.config.consecutive_error_limit
        );
        let c = &self.config;
        // Whether the count, rather than a limit, ended the run.
        let by_count = |limit_hit: bool| {
            if limit_hit {
                String::new()
            } else {
                format!(
                    " at count {} without {} consecutive successes",
                    self.count, c.consecutive_success_limit
                )
            }
        };
        let (verdict, why) = match (phase, last) {
            (ArgoPhase::Failed, _) => (
                Verdict::Fail(Severity::Warning),
                format!(
                    "run Failed{}",
                    by_count(c.failure_applies() && i64::from(self.failed) > c.failure_limit)
                ),
            ),
            (ArgoPhase::Error, _) => (
                Verdict::Inconclusive,
                "run Error (Argo would abort; missing data is inconclusive here)".to_owned(),
            ),
            (ArgoPhase::Inconclusive, _) => (
                Verdict::Inconclusive,
                format!(
                    "run Inconclusive{}",
                    by_count(self.inconclusive > c.inconclusive_limit)
                ),
            ),
            (ArgoPhase::Successful, _) => (Verdict::Pass, "run Successful".to_owned()),
            (_, Some(ArgoPhase::Successful)) if self.config.success_applies() => (
                Verdict::Inconclusive,
                format!(
                    "run {phase:?}, {} of {} consecutive successes",
                    self.consecutive_successes, self.config.consecutive_success_limit
                ),
            ),
            (_, Some(ArgoPhase::Successful)) => (
                Verdict::Pass,
                format!("run {phase:?}, last measurement successful"),
            ),
            (_, Some(p)) => (
                Verdict::Inconclusive,
                format!("run {phase:?}, last measurement {p:?}"),
            ),
            (_, None) => (
                Verdict::Inconclusive,
                match (c.initial_delay, self.started) {
                    (Some(d), Some(started)) => format!(
                        "no measurement yet (initialDelay {d:?}: the first window measured ends \
                         at or after {})",
                        started.saturating_add(d)
                    ),
                    _ => "no measurement yet".to_owned(),
                },
            ),
        };
        ev.summary = format!("Argo: {why}; {counts}");
        Judgement {
            verdict,
            evidence: ev,
        }
    }

    /// Whether the run has ended: its phase is no longer `Running`.
    fn concluded(&self) -> bool {
        self.phase() != ArgoPhase::Running
    }

    /// A [dry-run](ArgoConfig::dry_run) metric's verdict is recorded, never acted on.
    fn advisory(&self) -> bool {
        self.config.dry_run
    }

    fn reset(&mut self) {
        *self = ArgoJudge {
            config: self.config.clone(),
            count: 0,
            failed: 0,
            inconclusive: 0,
            errors: 0,
            consecutive_errors: 0,
            consecutive_successes: 0,
            last: None,
            started: None,
        };
    }
}
