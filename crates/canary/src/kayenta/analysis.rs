//! [`KayentaJudge`]: Kayenta's metric classifier run as a [`Judge`] over a growing (or sliding)
//! window of per-interval points, optionally with the run logic of Kayenta's multi-judgement runs
//! ([`RunConfig`]: interim judgements that fail early at or below the marginal score, a final
//! one that must reach the pass score).

use serde::{Deserialize, Serialize};
use serin_signals::{Metric, Timestamp, Window};

use crate::judge::{
    ArmValues, Effect, Evidence, Interval, Judge, Judgement, Sample, Severity, Statistic, Verdict,
    check_metric,
};
use crate::kayenta::classify::{
    CONFIDENCE, Classification, Direction, Label, MetricConfig, classify,
};
use crate::kayenta::mann_whitney::ShiftInterval;
use crate::kayenta::point::Quantity;
use crate::kayenta::run::{RunConfig, RunState, RunStatus, check_window};
use crate::severity::SeverityBands;
use crate::{Error, Result};

/// The settings of one [`KayentaJudge`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KayentaConfig {
    /// The metric judged.
    pub metric: Metric,
    /// Which number of each observation is a point.
    pub quantity: Quantity,
    /// Kayenta's per-metric settings.
    #[serde(default)]
    pub metric_config: MetricConfig,
    /// Points each arm needs before the first judgement (before that: inconclusive). Kayenta
    /// itself judges any sample; runs are advised to gather ≥ 50. Default 10.
    #[serde(default = "default_min_points")]
    pub min_points: usize,
    /// Judge only the last this-many points (Kayenta's `lookbackMins` in steps); `None` is the
    /// growing window (`lookbackMins = 0`).
    #[serde(default)]
    pub lookback_points: Option<usize>,
    /// Effect-size bands for the severity of a `High`/`Low` failure, applied to
    /// `|meanRatio − 1|`. `None` (the default) keeps Kayenta's two levels: critical for a
    /// critical metric, warning otherwise. A critical metric is always critical.
    ///
    /// With `direction: either`, the side that is in the canary's favour (a `Low` error rate
    /// or latency, a `High` success rate) still fails as in Kayenta, but is graded at most a
    /// warning ([`SeverityBands::classify_failure`]): Kayenta never makes a non-critical
    /// metric's failure critical, and an improvement is no reason for an immediate rollback
    /// (an error rate that drops to zero has a mean ratio of NaN, which the bands would
    /// otherwise grade critical). A gauge (`value`) has no known good side, and a one-sided
    /// direction names the bad side itself, so both are graded by size alone.
    #[serde(default)]
    pub severity: Option<SeverityBands>,
    /// The run logic of Spinnaker's canary stage; `None` (the default) judges the window at
    /// every sample and answers its label, without a run around it.
    #[serde(default)]
    pub run: Option<RunConfig>,
}

fn default_min_points() -> usize {
    10
}

impl KayentaConfig {
    /// The defaults for `metric` judged by `quantity`.
    pub fn new(metric: Metric, quantity: Quantity) -> Self {
        KayentaConfig {
            metric,
            quantity,
            metric_config: MetricConfig::default(),
            min_points: default_min_points(),
            lookback_points: None,
            severity: None,
            run: None,
        }
    }

    /// With Spinnaker's run logic (see [`RunConfig`]).
    pub fn with_run(mut self, run: RunConfig) -> Self {
        self.run = Some(run);
        self
    }

    /// Checks every number, naming the path (`kayentaConfig.minPoints`).
    pub fn validate(&self) -> Result<()> {
        self.quantity.validate("kayentaConfig.quantity")?;
        self.metric_config.validate("kayentaConfig.metricConfig")?;
        check_window(self.min_points, self.lookback_points, "kayentaConfig")?;
        if let Some(run) = &self.run {
            if self.metric_config.muted {
                // Kayenta leaves muted metrics out of the score; a run of this one metric would
                // score nothing, which Kayenta reports as 0 and so fails the run: the opposite
                // of muting.
                return Err(Error::invalid_config(
                    "kayentaConfig.metricConfig.muted",
                    true,
                    "a muted metric is classified but not scored, so a run of it alone has no \
                     score; drop `run` to report its label, or unmute it",
                ));
            }
            run.validate("kayentaConfig.run")?;
            run.check_fits(
                self.min_points,
                self.lookback_points.is_some(),
                "kayentaConfig.run",
            )?;
        }
        Ok(())
    }
}

/// Kayenta's `NetflixACAJudge` metric classification as a judge: every observed sample adds one
/// point per arm (no data is a missing point, handled by the NaN strategy), and every judgement
/// classifies the window with Mann-Whitney at confidence 0.98 and tolerance 0.25.
///
/// Verdicts: `High`/`Low` (in a judged direction) fail — critically for a critical metric —,
/// `Pass` passes, and `Nodata`, `NodataFailMetric` and `Error` are inconclusive (the label is in
/// the evidence, and [`score`](crate::kayenta::score) keeps Kayenta's run-level rules for them).
/// Fewer than `minPoints` points per arm is inconclusive.
///
/// A `muted` metric is classified and reported but, as in Kayenta, never scored: its verdict is
/// always inconclusive, whatever its label, so it neither rolls the canary back nor counts as
/// evidence for promoting it; the label, interval and effect stay in the evidence. A muted
/// metric cannot have a [`RunConfig`], since a run of it alone would have nothing to score.
///
/// With a [`RunConfig`], verdicts follow Spinnaker's canary stage instead: a judgement is made
/// only when one is due (every `intervalPoints` points after the warm-up, the last at the end of
/// the last whole interval; due judgements with fewer than `minPoints` points are skipped), an
/// interim score at or below the marginal threshold fails the run at once, the final score
/// passes it only at or above the pass threshold, and the verdict is inconclusive while the run
/// goes on. As in Spinnaker (orca's `AggregateCanaryResultsTask`), a final score between the
/// marginal and the pass thresholds fails the run: Spinnaker has no inconclusive outcome that
/// waits for a person. A run that has ended has [concluded](Judge::concluded) and takes no
/// more points; it always ends at a judgement with a score (the final judgement is always due,
/// as the configuration guarantees the window holds `minPoints` by then, and a window without
/// data scores 0 with the default `nanStrategy`, as in Kayenta), so its verdict is a pass or a
/// failure, never inconclusive; Spinnaker, too, fails a stage whose canary run ended without a
/// score.
/// Without a run the judge never concludes.
///
/// This judge is for parity and comparison: re-judging a growing window is repeated testing
/// without correction, so its false-rollback rate grows with the number of looks.
///
/// ```
/// use serin_canary::kayenta::{KayentaConfig, KayentaJudge, Quantity, RunConfig, RunStatus};
/// use serin_signals::Metric;
///
/// // An hour of one-minute points, judged every minute (Spinnaker: 60-minute lifetime,
/// // 1-minute interval); the canary's error rate doubles.
/// let config = KayentaConfig::new(Metric::ErrorRate, Quantity::ErrorRate)
///     .with_run(RunConfig::new(60).every(1));
/// let mut judge = KayentaJudge::new(config)?;
/// for i in 0..60 {
///     let base = 0.010 + 0.001 * f64::from(i % 5);
///     judge.push_points(Some(base), Some(2.0 * base));
/// }
/// assert_eq!(judge.run_state().status, RunStatus::FailedEarly);
/// assert_eq!(judge.run_state().judged_at, [10]); // the first judgement with 10 points
/// # Ok::<(), serin_canary::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    deny_unknown_fields,
    try_from = "SavedKayentaJudge"
)]
pub struct KayentaJudge {
    config: KayentaConfig,
    baseline: Vec<Option<f64>>,
    canary: Vec<Option<f64>>,
    /// Points per arm dropped from the front once a sliding window no longer needed them.
    dropped: usize,
    window: Option<Window>,
    run_state: RunState,
}

/// A journalled [`KayentaJudge`] as read back, checked before it becomes a judge: the settings
/// as the constructor checks them, one point per arm for every interval, which the window and
/// the sliding-window trimming rely on, points dropped only by a sliding window, and a run
/// whose judgements are scores in `[0, 100]` made at points it has seen, each when one was
/// due, with the status those scores lead to (none without a run configured): one that claims
/// to have passed without a score, on a failing score or before its final judgement is refused
/// rather than passing the canary on nothing.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SavedKayentaJudge {
    #[serde(deserialize_with = "crate::checked::config")]
    config: KayentaConfig,
    baseline: Vec<Option<f64>>,
    canary: Vec<Option<f64>>,
    #[serde(default)]
    dropped: usize,
    window: Option<Window>,
    #[serde(default)]
    run_state: RunState,
}

impl TryFrom<SavedKayentaJudge> for KayentaJudge {
    type Error = Error;

    fn try_from(s: SavedKayentaJudge) -> Result<Self> {
        if s.baseline.len() != s.canary.len() {
            return Err(Error::invalid_input(
                "kayentaJudge.canary",
                format!("{} points", s.canary.len()),
                format!(
                    "the baseline holds {} points; each arm holds one point per interval",
                    s.baseline.len()
                ),
            ));
        }
        if s.dropped > 0 && s.config.lookback_points.is_none() {
            return Err(Error::invalid_input(
                "kayentaJudge.dropped",
                s.dropped,
                "only a sliding window (lookbackPoints) drops points; a growing window keeps \
                 them all",
            ));
        }
        if let Some(k) = s.config.lookback_points
            && s.dropped > 0
            && s.baseline.len() < k
        {
            return Err(Error::invalid_input(
                "kayentaJudge.baseline",
                format!("{} points", s.baseline.len()),
                format!(
                    "a sliding window that has dropped points keeps at least its lookbackPoints \
                     ({k}), or its next judgements would read a window it never held"
                ),
            ));
        }
        let points = s.dropped.saturating_add(s.baseline.len());
        s.run_state
            .check_saved(s.config.run.as_ref(), None, points, "kayentaJudge.runState")?;
        Ok(KayentaJudge {
            config: s.config,
            baseline: s.baseline,
            canary: s.canary,
            dropped: s.dropped,
            window: s.window,
            run_state: s.run_state,
        })
    }
}

impl KayentaJudge {
    /// Name used in evidence.
    pub const NAME: &'static str = "kayenta";

    /// A judge with `config`, after validating it.
    pub fn new(config: KayentaConfig) -> Result<Self> {
        config.validate()?;
        Ok(KayentaJudge {
            config,
            baseline: Vec::new(),
            canary: Vec::new(),
            dropped: 0,
            window: None,
            run_state: RunState::default(),
        })
    }

    /// The run's judgements so far (always `Running` without a [`RunConfig`]).
    pub fn run_state(&self) -> &RunState {
        &self.run_state
    }

    /// The configuration.
    pub fn config(&self) -> &KayentaConfig {
        &self.config
    }

    /// Adds one point per arm directly (`None` = missing), for callers that already hold
    /// per-interval values.
    pub fn push_points(&mut self, baseline: Option<f64>, canary: Option<f64>) {
        // A run that has ended takes no more points, as Spinnaker's stage ends with it: its
        // verdict and evidence stay those of its last judgement.
        if self.config.run.is_some() && self.run_state.status != RunStatus::Running {
            return;
        }
        self.baseline.push(baseline.filter(|v| v.is_finite()));
        self.canary.push(canary.filter(|v| v.is_finite()));
        // A sliding window needs only its last points: keep at most twice as many.
        if let Some(k) = self.config.lookback_points
            && self.baseline.len() >= k.saturating_mul(2)
        {
            let drop = self.baseline.len() - k;
            self.baseline.drain(..drop);
            self.canary.drain(..drop);
            self.dropped = self.dropped.saturating_add(drop);
        }
        let n = self.points();
        if let Some(run) = &self.config.run
            && run.due(n)
            && self.windowed().0.len() >= self.config.min_points
        {
            let cls = self.classification();
            self.run_state
                .judge(run, n, &self.config.metric.to_string(), cls);
        }
    }

    /// Points per arm so far, including those a sliding window no longer holds.
    pub fn points(&self) -> usize {
        self.dropped.saturating_add(self.baseline.len())
    }

    /// The points judged: the last `lookbackPoints` of a sliding window, or a growing window
    /// from the end of a run's warm-up. As Spinnaker scopes each judgement from
    /// `start + beginCanaryAnalysisAfterMins`, the warm-up's points (a canary still filling
    /// its caches) are never judged; a sliding window ends where the run is, and reaches as far
    /// back as its lookback, as in Spinnaker.
    fn windowed(&self) -> (&[Option<f64>], &[Option<f64>]) {
        let n = self.baseline.len();
        let start = match self.config.lookback_points {
            Some(k) => n.saturating_sub(k),
            // Nothing is dropped from a growing window, so indices are the points' own.
            None => self
                .config
                .run
                .as_ref()
                .map_or(0, |r| r.begin_after_points.min(n)),
        };
        (
            self.baseline.get(start..).unwrap_or(&[]),
            self.canary.get(start..).unwrap_or(&[]),
        )
    }

    /// Whether a `High` or `Low` of this metric is against the canary: always for a one-sided
    /// direction (its side is the one the metric is judged on) and for a gauge; with
    /// `either`, only the side on which the quantity is worse.
    fn against_canary(&self, label: Label) -> bool {
        against_canary(
            self.config.metric_config.direction,
            &self.config.quantity,
            label,
        )
    }

    /// Kayenta's classification of the current window.
    pub fn classification(&self) -> Classification {
        let (b, c) = self.windowed();
        classify(&self.config.metric_config, b, c)
    }
}

/// Whether a `High` or `Low` of a metric judged in `direction` on `quantity` is against the
/// canary: always for a one-sided direction (its side is the one the metric is judged on) and
/// for a gauge, which has no known good side; with `either`, only the side on which the
/// quantity is worse.
pub(super) fn against_canary(direction: Direction, quantity: &Quantity, label: Label) -> bool {
    match (direction, quantity.lower_is_better()) {
        (Direction::Either, Some(lower_is_better)) => (label == Label::High) == lower_is_better,
        _ => true,
    }
}

/// The Hodges-Lehmann shift and its interval at Kayenta's confidence, as evidence.
pub(super) fn shift_effect(ci: &ShiftInterval) -> Effect {
    Effect {
        name: "hodgesLehmannShift".into(),
        estimate: ci.estimate,
        interval: Some(Interval {
            lower: ci.lower,
            upper: ci.upper,
            level: CONFIDENCE,
        }),
    }
}

fn mean_of(points: &[Option<f64>]) -> Option<f64> {
    let v: Vec<f64> = points.iter().flatten().copied().collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

impl Judge for KayentaJudge {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn metric(&self) -> &Metric {
        &self.config.metric
    }

    fn observe(&mut self, sample: &Sample<'_>) -> Result<Judgement> {
        check_metric(Self::NAME, &self.config.metric, sample)?;
        // Everything fallible first, so a rejected sample changes nothing.
        let w = sample.window();
        let window = match self.window {
            Some(prev) => Window::new(prev.start().min(w.start()), prev.end().max(w.end()))?,
            None => w,
        };
        // A run that has ended takes no more points, so its evidence keeps the window it judged.
        let taken = self.config.run.is_none() || self.run_state.status == RunStatus::Running;
        let q = self.config.quantity;
        self.push_points(
            q.of(&sample.baseline().measurement),
            q.of(&sample.canary().measurement),
        );
        if taken {
            self.window = Some(window);
        }
        Ok(self.judgement(sample.now()))
    }

    fn judgement(&self, now: Timestamp) -> Judgement {
        let (b, c) = self.windowed();
        let mut ev = Evidence::empty(Self::NAME, self.config.metric.clone(), now);
        ev.window = self.window;
        let present = |p: &[Option<f64>]| p.iter().flatten().count();
        ev.sample_size = ArmValues::new(present(b) as u64, present(c) as u64);
        ev.estimates = ArmValues::new(mean_of(b), mean_of(c));
        let min = self.config.min_points;
        let quantity = self.config.quantity.describe();
        if b.len() < min {
            return Judgement::inconclusive(
                ev,
                format!(
                    "{} of {min} points of {quantity} so far; Kayenta's judge waits for {min}",
                    b.len()
                ),
            );
        }
        let cls = classify(&self.config.metric_config, b, c);
        if let Some(ci) = cls.interval {
            ev.effects.push(shift_effect(&ci));
            ev.threshold = Some(crate::kayenta::TOLERANCE * ci.estimate.abs());
        }
        let effect_name = match self.config.metric_config.effect_size.measure {
            crate::kayenta::EffectMeasure::MeanRatio => "meanRatio",
            crate::kayenta::EffectMeasure::Cles => "cles",
        };
        ev.effects.push(Effect {
            name: effect_name.into(),
            estimate: cls.effect,
            interval: None,
        });
        let severity = match (cls.label, self.config.severity) {
            _ if cls.critical => Severity::Critical,
            (Label::High | Label::Low, Some(bands)) => {
                bands.classify_failure(cls.deviation - 1.0, self.against_canary(cls.label))
            }
            _ => Severity::Warning,
        };
        let label_verdict = match cls.label {
            Label::High | Label::Low => Verdict::Fail(severity),
            Label::Pass => Verdict::Pass,
            Label::Nodata | Label::NodataFailMetric | Label::Error => Verdict::Inconclusive,
        };
        ev.summary = format!(
            "Kayenta label {} on {} ({} baseline, {} canary points): {}",
            cls.label, quantity, cls.points.0, cls.points.1, cls.reason
        );
        if self.config.metric_config.muted {
            ev.summary = format!(
                "{} Muted: classified but not scored, so it decides nothing.",
                ev.summary
            );
            return Judgement {
                verdict: Verdict::Inconclusive,
                evidence: ev,
            };
        }
        let verdict = match &self.config.run {
            None => label_verdict,
            Some(run) => {
                let r = &self.run_state;
                let last = r
                    .last_score()
                    .map_or("none yet".to_owned(), |s| format!("{s:.2}"));
                ev.statistic = r.last_score().map(Statistic::Score);
                let (verdict, what) = match r.status {
                    RunStatus::Running => (Verdict::Inconclusive, "the run goes on"),
                    RunStatus::FailedEarly => (
                        Verdict::Fail(severity),
                        "an interim score at or below the marginal threshold ended the run",
                    ),
                    RunStatus::Passed => {
                        (Verdict::Pass, "the final score reached the pass threshold")
                    }
                    RunStatus::Failed => (
                        Verdict::Fail(severity),
                        "the final score fell short of the pass threshold",
                    ),
                };
                ev.summary = format!(
                    "{} Run: {} judgement(s) of {} points, last score {last} (marginal {}, pass \
                     {}): {what}.",
                    ev.summary,
                    r.scores.len(),
                    run.final_point(),
                    run.thresholds_or(None).marginal,
                    run.thresholds_or(None).pass
                );
                verdict
            }
        };
        Judgement {
            verdict,
            evidence: ev,
        }
    }

    /// Whether a [`RunConfig`] run has ended (passed, failed, or failed early).
    fn concluded(&self) -> bool {
        self.config.run.is_some() && self.run_state.status != RunStatus::Running
    }

    fn reset(&mut self) {
        self.baseline.clear();
        self.canary.clear();
        self.dropped = 0;
        self.window = None;
        self.run_state = RunState::default();
    }
}
