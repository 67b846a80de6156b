//! [`KayentaAnalysis`]: a whole Kayenta canary config judged as Spinnaker's canary stage judges
//! it, every metric at once into one score per judgement, over a multi-judgement run.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serin_signals::{Metric, Timestamp, Window};

use crate::gather::{Gathering, distinct};
use crate::judge::{ArmValues, Evidence, Judge, Judgement, Sample, Severity, Statistic, Verdict};
use crate::kayenta::analysis::{against_canary, shift_effect};
use crate::kayenta::canary_config::{
    CanaryConfig, CanaryJudgement, MetricSetPair, ScoreThresholds,
};
use crate::kayenta::classify::Label;
use crate::kayenta::point::Quantity;
use crate::kayenta::run::{RunConfig, RunState, RunStatus, check_window};
use crate::severity::SeverityBands;
use crate::{Error, Result};

/// Which of Serin's observations stands for a metric of the Kayenta config: Kayenta names a
/// provider's query, Serin a metric and the number taken from each observation of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KayentaBinding {
    /// The metric whose samples give the points.
    pub metric: Metric,
    /// The number of each arm's observation that is a point.
    pub quantity: Quantity,
}

impl KayentaBinding {
    /// Points of `quantity` from samples of `metric`.
    pub fn new(metric: Metric, quantity: Quantity) -> Self {
        KayentaBinding { metric, quantity }
    }
}

/// The settings of a [`KayentaAnalysis`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KayentaAnalysisConfig {
    /// The Kayenta canary config: its metrics, their groups and classifier settings, and the
    /// group weights.
    pub canary_config: CanaryConfig,
    /// One binding per metric of the canary config, by the metric's name.
    pub bindings: BTreeMap<String, KayentaBinding>,
    /// Points each arm needs after the warm-up before a due judgement is made (before that it
    /// is skipped). Default 10, as for [`KayentaConfig`](super::KayentaConfig).
    #[serde(default = "default_min_points")]
    pub min_points: usize,
    /// Judge only the last this-many points (Kayenta's `lookbackMins` in steps), which may
    /// reach back into the warm-up; `None` (the default) is the growing window from the end of
    /// the warm-up (`lookbackMins = 0`).
    #[serde(default)]
    pub lookback_points: Option<usize>,
    /// The run: lifetime, warm-up, interval, and the pass and marginal thresholds (its
    /// `thresholds.groupWeights` must stay empty: the weights are the canary config's). A run
    /// that writes no thresholds judges by the canary config's `classifier.scoreThresholds`,
    /// as Kayenta does when the execution request carries none, else by 75 and 50.
    pub run: RunConfig,
    /// Effect-size bands for the severity of a failed run, applied to `|meanRatio − 1|` of
    /// each metric labelled `High` or `Low` in the judgement that failed it: the worst grades
    /// the failure, each graded as [`KayentaConfig::severity`](super::KayentaConfig::severity)
    /// grades one metric (an improvement on an `either` metric at most a warning). `None` (the
    /// default) keeps Kayenta's two levels: critical when a critical metric failed, warning
    /// otherwise. A failed critical metric is always critical.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<SeverityBands>,
}

fn default_min_points() -> usize {
    10
}

impl KayentaAnalysisConfig {
    /// A run of `canary_config` with `bindings`, waiting for 10 points.
    pub fn new(
        canary_config: CanaryConfig,
        bindings: BTreeMap<String, KayentaBinding>,
        run: RunConfig,
    ) -> Self {
        KayentaAnalysisConfig {
            canary_config,
            bindings,
            min_points: default_min_points(),
            lookback_points: None,
            run,
            severity: None,
        }
    }

    /// Checks everything, naming the path (`kayentaAnalysis.bindings.p99.quantity`).
    pub fn validate(&self) -> Result<()> {
        self.canary_config.validate().map_err(|e| match e {
            Error::InvalidConfig {
                path,
                value,
                reason,
            } => Error::invalid_config(
                format!("kayentaAnalysis.canaryConfig.{path}"),
                value,
                reason,
            ),
            other => other,
        })?;
        for m in &self.canary_config.metrics {
            let Some(b) = self.bindings.get(&m.name) else {
                return Err(Error::invalid_config(
                    format!("kayentaAnalysis.bindings.{}", m.name),
                    "none",
                    "every metric of the canary config needs the metric and quantity its \
                     points come from",
                ));
            };
            b.quantity
                .validate(&format!("kayentaAnalysis.bindings.{}.quantity", m.name))?;
        }
        if let Some(name) = self
            .bindings
            .keys()
            .find(|n| !self.canary_config.metrics.iter().any(|m| &m.name == *n))
        {
            return Err(Error::invalid_config(
                format!("kayentaAnalysis.bindings.{name}"),
                name,
                "the canary config has no metric of this name",
            ));
        }
        if self
            .canary_config
            .metrics
            .iter()
            .all(|m| m.analysis_configurations.canary.muted)
        {
            return Err(Error::invalid_config(
                "kayentaAnalysis.canaryConfig.metrics",
                "all muted",
                "muted metrics are not scored, so a run of these alone would have no score",
            ));
        }
        check_window(self.min_points, self.lookback_points, "kayentaAnalysis")?;
        self.run.validate("kayentaAnalysis.run")?;
        self.run.check_fits(
            self.min_points,
            self.lookback_points.is_some(),
            "kayentaAnalysis.run",
        )
    }

    /// The thresholds the run judges by: the run's own, else the canary config's, else 75
    /// and 50.
    fn thresholds(&self) -> ScoreThresholds {
        self.run
            .thresholds_or(self.canary_config.classifier.score_thresholds)
    }
}

/// Kayenta's judgement of a whole canary config, run as Spinnaker's canary stage runs it: every
/// interval adds one point per arm to each metric's series; when a judgement is due (see
/// [`RunConfig`]), every metric is classified over the growing window after the warm-up (or
/// the last `lookbackPoints`), each
/// label counts in each of its groups, and the weighted groups make one score. An interim
/// score at or below marginal fails the run early; the final score passes it only at or above
/// pass.
///
/// This is where Kayenta and a set of per-metric judges part: one `High` among ten equally
/// grouped metrics scores 90 and passes, where ten [`KayentaJudge`](super::KayentaJudge)s
/// would let the one failure roll the canary back; a critical metric that is not `Pass`, or
/// half the metrics without data, zero the score.
///
/// Verdicts: inconclusive while the run goes on, pass once it passed, fail once it failed (as
/// in Spinnaker, a final score between marginal and pass fails): critical if a critical metric
/// zeroed the score, a warning otherwise. A run that has ended has
/// [concluded](Judge::concluded) and takes no more points.
///
/// As a [`Judge`], it is fed one Serin metric's sample at a time ([`Judge::analyses`] answers
/// for each bound metric): the samples of one window are gathered, each giving the points of
/// every Kayenta metric bound to it, and the interval is added once every bound metric has had
/// its sample of that window or, if one never comes, when a sample of a later window arrives
/// (the missing points are then missing, as when Kayenta's fetch finds none).
///
/// ```
/// use std::collections::BTreeMap;
/// use serin_canary::kayenta::{
///     CanaryConfig, KayentaAnalysis, KayentaAnalysisConfig, KayentaBinding, Quantity, RunConfig,
///     RunStatus,
/// };
/// use serin_signals::Metric;
///
/// let canary_config = CanaryConfig::from_json(r#"{
///   "name": "checkout",
///   "metrics": [
///     { "name": "errors", "groups": ["availability"],
///       "analysisConfigurations": { "canary": { "direction": "increase" } } },
///     { "name": "p99", "groups": ["latency"],
///       "analysisConfigurations": { "canary": { "direction": "increase" } } }
///   ],
///   "classifier": { "groupWeights": { "availability": 60, "latency": 40 } }
/// }"#)?;
/// let bindings = BTreeMap::from([
///     ("errors".to_owned(), KayentaBinding::new(Metric::ErrorRate, Quantity::ErrorRate)),
///     ("p99".to_owned(), KayentaBinding::new(Metric::Latency, Quantity::LatencyQuantile(0.99))),
/// ]);
/// // Thirty one-minute points, judged every ten.
/// let config = KayentaAnalysisConfig::new(canary_config, bindings, RunConfig::new(30).every(10));
/// let mut analysis = KayentaAnalysis::new(config)?;
/// for i in 0..30 {
///     let base = 0.010 + 0.001 * f64::from(i % 5);
///     let p99 = 200.0 + f64::from(i % 7);
///     // The error rate doubles: availability scores 0, latency 100, the run 40.
///     analysis.push_interval(&[(Some(base), Some(2.0 * base)), (Some(p99), Some(p99))])?;
/// }
/// assert_eq!(analysis.run_state().status, RunStatus::FailedEarly);
/// assert_eq!(analysis.run_state().scores, [40.0]);
/// # Ok::<(), serin_canary::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    deny_unknown_fields,
    try_from = "SavedKayentaAnalysis"
)]
pub struct KayentaAnalysis {
    config: KayentaAnalysisConfig,
    /// Per metric of the canary config, in its order: the baseline's and the canary's points.
    control: Vec<Vec<Option<f64>>>,
    experiment: Vec<Vec<Option<f64>>>,
    window: Option<Window>,
    /// The interval being gathered from samples fed one metric at a time (as a [`Judge`]): per
    /// metric of the canary config, its `(baseline, canary)` points.
    pending: Gathering<Points>,
    run_state: RunState,
}

/// One interval's `(baseline, canary)` points of one metric.
type Points = (Option<f64>, Option<f64>);

/// A journalled [`KayentaAnalysis`] as read back, checked before it becomes one: the settings
/// as the constructor checks them, one series per arm and metric, all of one length, an
/// interval being gathered that is neither empty with a window nor whole, and a run whose
/// judgements replay to its status at points it has seen.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SavedKayentaAnalysis {
    #[serde(deserialize_with = "crate::checked::config")]
    config: KayentaAnalysisConfig,
    control: Vec<Vec<Option<f64>>>,
    experiment: Vec<Vec<Option<f64>>>,
    window: Option<Window>,
    pending: Gathering<Points>,
    run_state: RunState,
}

impl TryFrom<SavedKayentaAnalysis> for KayentaAnalysis {
    type Error = Error;

    fn try_from(s: SavedKayentaAnalysis) -> Result<Self> {
        let metrics = s.config.canary_config.metrics.len();
        let points = s.control.first().map_or(0, Vec::len);
        let even = |series: &[Vec<Option<f64>>]| {
            series.len() == metrics && series.iter().all(|v| v.len() == points)
        };
        if !even(&s.control) || !even(&s.experiment) {
            return Err(Error::invalid_input(
                "kayentaAnalysis.experiment",
                format!("{} series", s.experiment.len()),
                format!(
                    "each arm holds one series per metric ({metrics}), all with one point per \
                     interval ({points})"
                ),
            ));
        }
        s.pending.check_saved(metrics, "kayentaAnalysis.pending")?;
        s.run_state.check_saved(
            Some(&s.config.run),
            s.config.canary_config.classifier.score_thresholds,
            points,
            "kayentaAnalysis.runState",
        )?;
        Ok(KayentaAnalysis {
            config: s.config,
            control: s.control,
            experiment: s.experiment,
            window: s.window,
            pending: s.pending,
            run_state: s.run_state,
        })
    }
}

impl KayentaAnalysis {
    /// Name used in evidence.
    pub const NAME: &'static str = "kayenta-analysis";

    /// An analysis with `config`, after validating it.
    pub fn new(config: KayentaAnalysisConfig) -> Result<Self> {
        config.validate()?;
        let n = config.canary_config.metrics.len();
        Ok(KayentaAnalysis {
            config,
            control: vec![Vec::new(); n],
            experiment: vec![Vec::new(); n],
            window: None,
            pending: Gathering::new(n),
            run_state: RunState::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &KayentaAnalysisConfig {
        &self.config
    }

    /// The run's judgements so far.
    pub fn run_state(&self) -> &RunState {
        &self.run_state
    }

    /// Points per arm and metric so far.
    pub fn points(&self) -> usize {
        self.control.first().map_or(0, Vec::len)
    }

    /// Adds one interval directly: one `(baseline, canary)` point per metric of the canary
    /// config, in its order (`None` = missing), for callers that already hold per-interval
    /// values; makes the judgement if one is due. Errors if `points` does not hold one entry
    /// per metric; nothing changes then. A run that has ended takes no more points.
    pub fn push_interval(&mut self, points: &[Points]) -> Result<()> {
        let n = self.config.canary_config.metrics.len();
        if points.len() != n {
            return Err(Error::invalid_input(
                "points",
                points.len(),
                format!("one pair of points per metric of the canary config ({n}), in its order"),
            ));
        }
        if self.run_state.status != RunStatus::Running {
            return Ok(());
        }
        let finite = |v: Option<f64>| v.filter(|v| v.is_finite());
        for (i, (b, c)) in points.iter().enumerate() {
            self.control[i].push(finite(*b));
            self.experiment[i].push(finite(*c));
        }
        let n = self.points();
        let run = &self.config.run;
        if run.due(n) && n - self.window_start(n) >= self.config.min_points {
            let score = self.judgement_after(n).map_or(0.0, |j| j.score.score);
            let fallback = self.config.canary_config.classifier.score_thresholds;
            self.run_state.record(run, fallback, n, score);
        }
        Ok(())
    }

    /// Where the window judged after `n` points starts: `lookbackPoints` before its end, or,
    /// growing, at the end of the warm-up. As Spinnaker scopes each judgement, the warm-up's
    /// points are never in a growing window, and a sliding one reaches as far back as its
    /// lookback.
    fn window_start(&self, n: usize) -> usize {
        match self.config.lookback_points {
            Some(k) => n.saturating_sub(k),
            None => self.config.run.begin_after_points.min(n),
        }
    }

    /// Kayenta's judgement of the window judged after the first `n` points.
    fn judgement_after(&self, n: usize) -> Result<CanaryJudgement> {
        let start = self.window_start(n);
        let pairs: Vec<MetricSetPair> = self
            .config
            .canary_config
            .metrics
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let cut = |v: &[Option<f64>]| v.get(start..n).unwrap_or(&[]).to_vec();
                MetricSetPair::new(
                    m.name.clone(),
                    cut(&self.control[i]),
                    cut(&self.experiment[i]),
                )
            })
            .collect();
        self.config
            .canary_config
            .judge(&pairs, Some(self.config.thresholds()))
    }

    /// The last judgement made, recomputed from the points it read.
    pub fn last_judgement(&self) -> Option<CanaryJudgement> {
        let n = *self.run_state.judged_at.last()?;
        self.judgement_after(n).ok()
    }

    fn binding(&self, i: usize) -> &KayentaBinding {
        // `validate` guarantees a binding for every metric.
        &self.config.bindings[&self.config.canary_config.metrics[i].name]
    }

    /// Adds the interval gathered so far, a metric not fed having missing points.
    fn close_pending(&mut self) -> Result<()> {
        let points = self.pending.take((None, None));
        self.push_interval(&points)
    }

    /// The judgement after the intervals so far, stamped `now`; its evidence is about the
    /// first metric that did not pass the last judgement (else the first metric).
    pub fn judgement(&self, now: Timestamp) -> Judgement {
        let last = self.last_judgement();
        let decisive = last
            .as_ref()
            .and_then(|j| {
                j.results
                    .iter()
                    .position(|r| r.classification.label != Label::Pass)
            })
            .unwrap_or(0);
        let mut ev = Evidence::empty(Self::NAME, self.binding(decisive).metric.clone(), now);
        ev.window = self.window;
        let thresholds = self.config.thresholds();
        ev.threshold = Some(thresholds.pass);
        ev.statistic = self.run_state.last_score().map(Statistic::Score);
        let r = &self.run_state;
        let run = &self.config.run;
        let Some(j) = last else {
            let why = format!(
                "Kayenta run of `{}`: {} of {} points, no judgement yet (the first is due after \
                 {} points past the warm-up)",
                self.config.canary_config.name,
                self.points(),
                run.final_point(),
                self.config.min_points
            );
            return Judgement::inconclusive(ev, why);
        };
        let d = &j.results[decisive].classification;
        ev.sample_size = ArmValues::new(d.points.0 as u64, d.points.1 as u64);
        ev.effects.extend(d.interval.as_ref().map(shift_effect));
        let labels = j
            .results
            .iter()
            .map(|m| format!("{} {}", m.name, m.classification.label))
            .collect::<Vec<_>>()
            .join(", ");
        let groups = j
            .score
            .group_scores
            .iter()
            .map(|(g, s)| format!("{g} {s:.2}"))
            .collect::<Vec<_>>()
            .join(", ");
        let (verdict, what) = match r.status {
            RunStatus::Running => (Verdict::Inconclusive, "the run goes on"),
            RunStatus::Passed => (Verdict::Pass, "the final score reached the pass threshold"),
            RunStatus::FailedEarly => (
                Verdict::Fail(self.severity(&j)),
                "an interim score at or below the marginal threshold ended the run",
            ),
            RunStatus::Failed => (
                Verdict::Fail(self.severity(&j)),
                "the final score fell short of the pass threshold",
            ),
        };
        ev.summary = format!(
            "Kayenta run of `{}`: judgement {} after {} of {} points scored {:.2} (marginal {}, \
             pass {}){}; labels: {labels}; groups: {groups}: {what}.",
            self.config.canary_config.name,
            r.scores.len(),
            r.judged_at.last().copied().unwrap_or(0),
            run.final_point(),
            j.score.score,
            thresholds.marginal,
            thresholds.pass,
            j.score
                .forced_zero
                .as_ref()
                .map_or(String::new(), |why| format!(", forced to 0: {why}")),
        );
        Judgement {
            verdict,
            evidence: ev,
        }
    }

    /// Critical if a critical metric zeroed the score; else, with bands, the worst grade of
    /// the metrics labelled `High` or `Low` (a warning if none is: a score failed by missing
    /// data); else a warning.
    fn severity(&self, j: &CanaryJudgement) -> Severity {
        let critical = j.results.iter().any(|r| {
            !r.muted && r.classification.critical && r.classification.label != Label::Pass
        });
        if critical {
            return Severity::Critical;
        }
        let Some(bands) = self.config.severity else {
            return Severity::Warning;
        };
        // The results are in the config's order of metrics, as are the bindings.
        let metrics = &self.config.canary_config.metrics;
        (j.results.iter().zip(metrics).enumerate())
            .filter(|(_, (r, _))| {
                !r.muted && matches!(r.classification.label, Label::High | Label::Low)
            })
            .map(|(i, (r, m))| {
                let label = r.classification.label;
                let direction = m.analysis_configurations.canary.direction;
                let worse = against_canary(direction, &self.binding(i).quantity, label);
                bands.classify_failure(r.classification.deviation - 1.0, worse)
            })
            .max()
            .unwrap_or(Severity::Warning)
    }

    /// Forgets every point and judgement; the configuration is kept.
    pub fn reset(&mut self) {
        self.control.iter_mut().for_each(Vec::clear);
        self.experiment.iter_mut().for_each(Vec::clear);
        self.window = None;
        self.pending.clear();
        self.run_state = RunState::default();
    }
}

impl Judge for KayentaAnalysis {
    fn name(&self) -> &str {
        Self::NAME
    }

    /// The metric bound to the canary config's first metric.
    fn metric(&self) -> &Metric {
        &self.binding(0).metric
    }

    fn analyses(&self, metric: &Metric) -> bool {
        self.config.bindings.values().any(|b| &b.metric == metric)
    }

    fn analysed_metrics(&self) -> Vec<Metric> {
        let metrics = 0..self.config.canary_config.metrics.len();
        distinct(metrics.map(|i| &self.binding(i).metric))
    }

    /// Gathers one metric's sample into its window's interval (see the type's doc). A sample
    /// [`accepts`](Judge::accepts) refuses is an error, and nothing changes; once the run has
    /// ended, nothing is gathered.
    fn observe(&mut self, sample: &Sample<'_>) -> Result<Judgement> {
        self.accepts(sample)?;
        if self.run_state.status != RunStatus::Running {
            return Ok(self.judgement(sample.now()));
        }
        // Everything fallible first, so a rejected sample changes nothing.
        let window = sample.window();
        let covered = match self.window {
            Some(w) => Window::new(w.start().min(window.start()), w.end().max(window.end()))?,
            None => window,
        };
        if self.pending.ends_with(window) {
            self.close_pending()?;
        }
        self.window = Some(covered);
        for i in 0..self.config.canary_config.metrics.len() {
            let b = self.binding(i);
            if &b.metric == sample.metric() {
                let q = b.quantity;
                let points = (
                    q.of(&sample.baseline().measurement),
                    q.of(&sample.canary().measurement),
                );
                self.pending.put(window, i, points);
            }
        }
        if self.pending.is_whole() {
            self.close_pending()?;
        }
        Ok(self.judgement(sample.now()))
    }

    /// Refuses a sample of a metric no binding names, one of a window older than the one being
    /// gathered, and a second sample of a metric for the same window.
    fn accepts(&self, sample: &Sample<'_>) -> Result<()> {
        if !self.analyses(sample.metric()) {
            return Err(Error::invalid_input(
                "sample.metric",
                sample.metric(),
                format!("no binding of the `{}` analysis names it", Self::NAME),
            ));
        }
        self.pending.accepts(sample, |i| &self.binding(i).metric)
    }

    fn judgement(&self, now: Timestamp) -> Judgement {
        KayentaAnalysis::judgement(self, now)
    }

    /// Whether the run has ended (passed, failed, or failed early).
    fn concluded(&self) -> bool {
        self.run_state.status != RunStatus::Running
    }

    fn reset(&mut self) {
        KayentaAnalysis::reset(self)
    }
}
