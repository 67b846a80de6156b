//! Kayenta's multi-judgement run logic (Spinnaker's canary stage and
//! `kayenta-standalone-canary-analysis`): a run of `lifetime` points judged every `interval`
//! points over a growing (or sliding) window, failing early when an interim score is at or below
//! the marginal threshold, and passing only if the final score reaches the pass threshold. As in
//! Spinnaker's `RunCanaryIntervalsStage`, the run is the warm-up followed by as many whole
//! intervals as the rest of the lifetime holds, and the last of them makes the final judgement.
//!
//! Each judgement scores the window's classification with [`score`] (one metric: 100 for `Pass`,
//! 0 for `High`, `Low` and `NodataFailMetric`, and forced to 0 by the ≥ 50% `Nodata` rule or a
//! failing critical metric). Spinnaker's `MonitorCanaryTask` stops the run as soon as an interim
//! score is `≤ marginal` (so an exactly marginal interim score fails early), and the verdict of a
//! completed run uses only the last score: above marginal and `≥ pass` passes, anything else
//! fails.

use serde::{Deserialize, Serialize};

use crate::kayenta::canary_config::ScoreThresholds;
use crate::kayenta::classify::Classification;
use crate::kayenta::scoring::{MetricResult, ScoreConfig, score};
use crate::{Error, Result};

/// The run settings (Spinnaker's `lifetimeDuration`, `beginCanaryAnalysisAfterMins`,
/// `canaryAnalysisIntervalMins` and `scoreThresholds`, in points of the metric's step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunConfig {
    /// Points in the whole run, warm-up included: Spinnaker's `beginCanaryAnalysisAfterMins`
    /// plus `lifetimeDuration`, over the step (Spinnaker waits out the warm-up, then runs the
    /// lifetime). The final judgement is made at the end of the last whole interval, the end
    /// of the lifetime when `intervalPoints` divides the points after the warm-up; later points
    /// are ignored.
    pub lifetime_points: usize,
    /// Points before the first judgement window opens (`beginCanaryAnalysisAfterMins`): a
    /// growing window starts after them, so the warm-up is never judged. Default 0.
    #[serde(default)]
    pub begin_after_points: usize,
    /// Points between judgements (`canaryAnalysisIntervalMins`); `None`, Spinnaker's default,
    /// is the lifetime: a single judgement at the end, as is an interval longer than the
    /// points after `beginAfterPoints`. Spinnaker judges whole intervals only: 60 points judged every 25 are judged
    /// after 25 and 50, and the one after 50 is final.
    #[serde(default)]
    pub interval_points: Option<usize>,
    /// The marginal and pass thresholds of the score. `None` (not written) leaves them to the
    /// canary config's `classifier.scoreThresholds` where there is one, as Kayenta takes the
    /// config's when the execution request carries none, and otherwise to Spinnaker's 75
    /// (pass) and 50 (marginal) (see [`thresholds_or`](Self::thresholds_or)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<ScoreConfig>,
}

/// Checks a judge's window settings, naming fields under `path`: at least one point per arm,
/// and a sliding window (`lookback`) that holds `min_points`, or no judgement is ever made.
pub(crate) fn check_window(min_points: usize, lookback: Option<usize>, path: &str) -> Result<()> {
    if min_points == 0 {
        return Err(Error::invalid_config(
            format!("{path}.minPoints"),
            0,
            "at least one point per arm is needed",
        ));
    }
    if let Some(k) = lookback
        && k < min_points
    {
        return Err(Error::invalid_config(
            format!("{path}.lookbackPoints"),
            k,
            format!(
                "a sliding window must hold at least minPoints ({min_points}) points, or no \
                 judgement is ever made (omit it for a growing window)"
            ),
        ));
    }
    Ok(())
}

impl RunConfig {
    /// A run of `lifetime_points` points with Spinnaker's defaults: no delay, one judgement at
    /// the end, and no thresholds of its own (see [`thresholds_or`](Self::thresholds_or)).
    pub fn new(lifetime_points: usize) -> Self {
        RunConfig {
            lifetime_points,
            begin_after_points: 0,
            interval_points: None,
            thresholds: None,
        }
    }

    /// The thresholds the run judges by: its own, else `fallback` (the canary config's
    /// `classifier.scoreThresholds`), else Spinnaker's 75 (pass) and 50 (marginal).
    pub fn thresholds_or(&self, fallback: Option<ScoreThresholds>) -> ScoreThresholds {
        let own = self.thresholds.as_ref().map(|t| ScoreThresholds {
            pass: t.pass,
            marginal: t.marginal,
        });
        own.or(fallback).unwrap_or_else(|| {
            let defaults = ScoreConfig::default();
            ScoreThresholds {
                pass: defaults.pass,
                marginal: defaults.marginal,
            }
        })
    }

    /// With a judgement every `points` points.
    pub fn every(mut self, points: usize) -> Self {
        self.interval_points = Some(points);
        self
    }

    /// Checks every field, naming the path (`kayentaConfig.run.intervalPoints`).
    pub fn validate(&self, path: &str) -> Result<()> {
        if self.lifetime_points == 0 {
            return Err(Error::invalid_config(
                format!("{path}.lifetimePoints"),
                0,
                "a run needs at least one point",
            ));
        }
        if self.begin_after_points >= self.lifetime_points {
            return Err(Error::invalid_config(
                format!("{path}.beginAfterPoints"),
                self.begin_after_points,
                format!(
                    "must be below lifetimePoints ({}) so that the run judges at least once",
                    self.lifetime_points
                ),
            ));
        }
        if self.interval_points == Some(0) {
            return Err(Error::invalid_config(
                format!("{path}.intervalPoints"),
                0,
                "must be at least one point (omit it for one judgement at the end)",
            ));
        }
        let Some(thresholds) = &self.thresholds else {
            return Ok(());
        };
        if let Some((group, weight)) = thresholds.group_weights.iter().next() {
            // Kayenta weighs groups from the canary config's classifier; a run's
            // `scoreThresholds` are only pass and marginal. Over one metric, a weight would
            // cap a perfect score below 100.
            return Err(Error::invalid_config(
                format!("{path}.thresholds.groupWeights.{group}"),
                weight,
                "a run's thresholds are pass and marginal only: group weights are a canary \
                 config's (classifier.groupWeights)",
            ));
        }
        thresholds.validate_at(&format!("{path}.thresholds"))
    }

    /// Checks that the final judgement can be made by a judge that waits for `min_points`
    /// points per arm in its window, a growing one unless `sliding`, naming fields under
    /// `path`: a run whose window never holds them would never end.
    pub(crate) fn check_fits(&self, min_points: usize, sliding: bool, path: &str) -> Result<()> {
        // A growing window opens after the warm-up; a sliding one may reach back into it.
        let warm_up = if sliding { 0 } else { self.begin_after_points };
        if self.lifetime_points.saturating_sub(warm_up) < min_points {
            return Err(Error::invalid_config(
                format!("{path}.lifetimePoints"),
                self.lifetime_points,
                format!(
                    "must be at least minPoints ({min_points}) plus the warm-up's \
                     beginAfterPoints ({warm_up}) so that the final judgement can be made"
                ),
            ));
        }
        // The final judgement falls at the end of the last whole interval, which may come
        // before the end of the lifetime.
        let last = self.final_point();
        if let Some(k) = self.interval_points
            && last.saturating_sub(warm_up) < min_points
        {
            return Err(Error::invalid_config(
                format!("{path}.intervalPoints"),
                k,
                format!(
                    "the last whole interval ends after {last} points, when the window holds \
                     fewer than minPoints ({min_points}), so the final judgement could never be \
                     made (Spinnaker judges whole intervals only)"
                ),
            ));
        }
        Ok(())
    }

    /// The run's status after a judgement scoring `score` once `n` points have arrived: an
    /// interim score at or below marginal ends it, and the final one passes it at or above
    /// pass (thresholds as [`thresholds_or`](Self::thresholds_or) gives them).
    fn status_after(&self, n: usize, score: f64, fallback: Option<ScoreThresholds>) -> RunStatus {
        let t = self.thresholds_or(fallback);
        if n >= self.final_point() {
            // Spinnaker fails a final score at or below marginal before it looks at pass
            // (`AggregateCanaryResultsTask`), which matters where the two are equal.
            if score > t.marginal && score >= t.pass {
                RunStatus::Passed
            } else {
                RunStatus::Failed
            }
        } else if score <= t.marginal {
            RunStatus::FailedEarly
        } else {
            RunStatus::Running
        }
    }

    /// Points after which the final judgement is made: the warm-up, then as many whole
    /// intervals as the rest of the lifetime holds (Spinnaker makes `lifetime / interval`
    /// judgements, rounded down, and takes an interval longer than the lifetime as the
    /// lifetime). Points after it are never judged.
    pub fn final_point(&self) -> usize {
        let span = self.lifetime_points.saturating_sub(self.begin_after_points);
        let whole = match self.interval_points {
            Some(k) if k > 0 && k <= span => span - span % k,
            _ => span,
        };
        self.begin_after_points.saturating_add(whole)
    }

    /// Whether a judgement is due once `n` points have arrived.
    pub(crate) fn due(&self, n: usize) -> bool {
        let last = self.final_point();
        if n == 0 || n > last || n <= self.begin_after_points {
            return false;
        }
        if n == last {
            return true;
        }
        self.interval_points
            .is_some_and(|k| (n - self.begin_after_points).is_multiple_of(k))
    }
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RunStatus {
    /// No judgement has ended the run yet.
    Running,
    /// An interim score was at or below the marginal threshold: the run stopped early.
    FailedEarly,
    /// The final score reached the pass threshold (and was above marginal).
    Passed,
    /// The final score was below the pass threshold.
    Failed,
}

/// A run's judgements so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunState {
    /// The status.
    pub status: RunStatus,
    /// The score of every judgement made, in order.
    pub scores: Vec<f64>,
    /// Points after which each judgement was made.
    pub judged_at: Vec<usize>,
}

impl Default for RunState {
    fn default() -> Self {
        RunState {
            status: RunStatus::Running,
            scores: Vec::new(),
            judged_at: Vec::new(),
        }
    }
}

impl RunState {
    /// Records the judgement of the window after `n` points (`n` due by `config`) of one
    /// metric, `name`, scored alone; a run that has ended records nothing more.
    pub(crate) fn judge(
        &mut self,
        config: &RunConfig,
        n: usize,
        name: &str,
        classification: Classification,
    ) {
        let result = MetricResult {
            name: name.to_owned(),
            groups: vec![name.to_owned()],
            // A muted metric has no run (`KayentaConfig::validate` refuses one): this one counts.
            muted: false,
            classification,
        };
        // The thresholds, which decide the verdict but not the score, were validated with the
        // judge's configuration.
        let thresholds = config.thresholds.clone().unwrap_or_default();
        let s = score(std::slice::from_ref(&result), &thresholds).map_or(0.0, |s| s.score);
        self.record(config, None, n, s);
    }

    /// Records a judgement after `n` points (`n` due by `config`) that scored `score`, judged
    /// by the run's thresholds or, if it writes none, `fallback`'s (the canary config's); a run
    /// that has ended records nothing more.
    pub(crate) fn record(
        &mut self,
        config: &RunConfig,
        fallback: Option<ScoreThresholds>,
        n: usize,
        score: f64,
    ) {
        if self.status != RunStatus::Running {
            return;
        }
        self.scores.push(score);
        self.judged_at.push(n);
        self.status = config.status_after(n, score, fallback);
    }

    /// Checks a journalled run read back, naming fields under `path`: one score per
    /// judgement, each in `[0, 100]`, none made past the `points` seen, and, replayed against
    /// `config` and `fallback` ([`check_replay`](Self::check_replay)), the status they lead
    /// to; without a run configured, no judgement at all.
    pub(crate) fn check_saved(
        &self,
        config: Option<&RunConfig>,
        fallback: Option<ScoreThresholds>,
        points: usize,
        path: &str,
    ) -> Result<()> {
        if self.judged_at.len() != self.scores.len() {
            return Err(Error::invalid_input(
                format!("{path}.judgedAt"),
                format!("{} judgements", self.judged_at.len()),
                format!(
                    "the run holds {} scores, one per judgement",
                    self.scores.len()
                ),
            ));
        }
        if let Some(bad) = self.scores.iter().find(|v| !(0.0..=100.0).contains(*v)) {
            return Err(Error::invalid_input(
                format!("{path}.scores"),
                bad,
                "a score lies in [0, 100]",
            ));
        }
        if let Some(at) = self.judged_at.iter().find(|n| **n > points) {
            return Err(Error::invalid_input(
                format!("{path}.judgedAt"),
                at,
                format!("is past the {points} points seen"),
            ));
        }
        match config {
            Some(run) if self.status == RunStatus::Running && points >= run.final_point() => {
                Err(Error::invalid_input(
                    format!("{path}.status"),
                    "Running",
                    format!(
                        "the final judgement was due after {} points and {points} were seen: \
                         a run still running past it would never end",
                        run.final_point()
                    ),
                ))
            }
            Some(run) => self.check_replay(run, fallback, path),
            None if self.status != RunStatus::Running || !self.scores.is_empty() => {
                Err(Error::invalid_input(
                    format!("{path}.status"),
                    format!("{:?}", self.status),
                    "without a run configured, nothing is judged as a run",
                ))
            }
            None => Ok(()),
        }
    }

    /// Checks a journalled run against `config` by replaying it, naming the field under
    /// `path`: every judgement was due, came after the one before it and before the run
    /// ended, and the status is the one the scores lead to. A status the scores contradict (a
    /// pass on a failing score, or before the final judgement) would end the run on a verdict
    /// no judgement made. The run's thresholds are its own, else `fallback`'s.
    fn check_replay(
        &self,
        config: &RunConfig,
        fallback: Option<ScoreThresholds>,
        path: &str,
    ) -> Result<()> {
        let mut status = RunStatus::Running;
        let mut previous = 0;
        for (&n, &s) in self.judged_at.iter().zip(&self.scores) {
            if status != RunStatus::Running || n <= previous || !config.due(n) {
                return Err(Error::invalid_input(
                    format!("{path}.judgedAt"),
                    n,
                    format!(
                        "no judgement was due after {n} points: judgements fall every \
                         intervalPoints after beginAfterPoints, the last after {} points (the \
                         last whole interval of lifetimePoints {}), in order, and none after \
                         the run ended",
                        config.final_point(),
                        config.lifetime_points
                    ),
                ));
            }
            status = config.status_after(n, s, fallback);
            previous = n;
        }
        if status != self.status {
            return Err(Error::invalid_input(
                format!("{path}.status"),
                format!("{:?}", self.status),
                format!("the recorded scores lead to {status:?}"),
            ));
        }
        Ok(())
    }

    /// The last score, if any judgement was made.
    pub fn last_score(&self) -> Option<f64> {
        self.scores.last().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spinnaker fails a final score at or below marginal before it looks at pass, and a
    /// final score between the two fails too; an interim one between them goes on.
    #[test]
    fn the_final_score_passes_only_above_marginal_and_at_or_above_pass() {
        // Judged once, at the end.
        let with = |marginal: f64, pass: f64| RunConfig {
            thresholds: Some(ScoreConfig {
                marginal,
                pass,
                ..ScoreConfig::default()
            }),
            ..RunConfig::new(20)
        };
        let status = |config: &RunConfig, n: usize, score: f64| {
            let mut run = RunState::default();
            run.record(config, None, n, score);
            run.status
        };
        let usual = with(50.0, 75.0);
        assert_eq!(status(&usual, 20, 60.0), RunStatus::Failed);
        assert_eq!(status(&usual, 20, 75.0), RunStatus::Passed);
        assert_eq!(
            status(&usual.clone().every(10), 10, 60.0),
            RunStatus::Running
        );
        assert_eq!(status(&with(100.0, 100.0), 20, 100.0), RunStatus::Failed);
    }

    #[test]
    fn judgements_fall_on_the_interval_and_at_the_end() {
        let c = RunConfig {
            begin_after_points: 2,
            ..RunConfig::new(10).every(3)
        };
        // Eight points after the warm-up hold two whole intervals of 3 (Spinnaker: 8 / 3 = 2).
        let due: Vec<usize> = (0..=12).filter(|n| c.due(*n)).collect();
        assert_eq!(due, vec![5, 8]);
        assert_eq!(c.final_point(), 8);
        let one = RunConfig::new(10);
        assert_eq!((0..=12).filter(|n| one.due(*n)).collect::<Vec<_>>(), [10]);
    }

    #[test]
    fn bad_settings_name_the_field() {
        let e = RunConfig::new(0).validate("run").unwrap_err().to_string();
        assert!(e.contains("run.lifetimePoints"), "{e}");
        let e = RunConfig::new(5).every(0).validate("run").unwrap_err();
        assert!(e.to_string().contains("run.intervalPoints"), "{e}");
        let c = RunConfig {
            begin_after_points: 5,
            ..RunConfig::new(5)
        };
        let e = c.validate("run").unwrap_err().to_string();
        assert!(e.contains("run.beginAfterPoints"), "{e}");
        let c = RunConfig {
            thresholds: Some(ScoreConfig {
                pass: 120.0,
                ..ScoreConfig::default()
            }),
            ..RunConfig::new(5)
        };
        let e = c.validate("run").unwrap_err().to_string();
        assert!(e.contains("run.thresholds"), "{e}");
    }
}
