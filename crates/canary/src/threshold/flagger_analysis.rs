//! [`FlaggerAnalysis`]: a Flagger canary analysis of several metrics, checked together once per
//! interval, with the one `failedChecks` counter Flagger keeps for the whole analysis
//! (`advanceCanary`, `runAnalysis` and `runMetricChecks` in fluxcd/flagger's
//! `pkg/controller/scheduler*.go`).

use serde::{Deserialize, Serialize};
use serin_signals::{Metric, Timestamp};

use crate::gather::{Gathering, distinct};
use crate::judge::{Judge, Judgement, Sample, Severity, Verdict};
use crate::threshold::flagger::{CheckOutcome, check_last, check_value};
use crate::threshold::flagger_config::FlaggerAnalysisConfig;
use crate::{Error, Result};

/// How one metric check has fared so far.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Standing {
    /// Intervals in which this check failed.
    failed: u32,
    /// Its last outcome and the value it judged.
    last: Option<(CheckOutcome, Option<f64>)>,
}

/// Flagger's analysis of a canary over several metrics: every interval checks each metric
/// against its `thresholdRange`, and the interval is **one** failed check if any metric fails,
/// however many do. Failed checks add up over the whole analysis (a passing interval does not
/// reset them), and the analysis rolls back once they reach `threshold`. This is Flagger's
/// `status.failedChecks`: with `threshold` 2, an error rate that fails once and a latency that
/// fails once later roll the canary back, where two per-metric
/// [`FlaggerJudge`](super::FlaggerJudge)s would each still wait for a second failure.
///
/// It is fed one interval of every metric at once, with [`check`](Self::check) (the values) or
/// [`observe`](Self::observe) (the samples), and answers a [`Judgement`] whose evidence names
/// the metric that decided. It is also a [`Judge`] that the canary controller feeds one
/// metric's sample at a time ([`Judge::analyses`] answers for each of its metrics): the
/// samples of one window are gathered, and the interval is checked once every metric has
/// had its sample of that window, or, if one never comes, when the first sample of a later
/// window arrives (the missing metric then counts as no data, as Flagger finds no values).
///
/// Flagger stops an interval at its first failing metric; here every metric is still checked,
/// so the evidence shows each one, and the interval still counts once. No data is inconclusive
/// and not counted, unless `noDataFails` (Flagger parity) is set. Until the threshold is
/// reached, the analysis passes after an interval whose checks all passed and is inconclusive
/// after one with a failed or missing check (Flagger halts advancement). Once it rolls back,
/// the analysis is over, as Flagger's is: it has [concluded](Judge::concluded), later
/// intervals and samples are not recorded, so the evidence stays that of the interval that
/// decided.
///
/// ```
/// use serin_canary::kayenta::Quantity;
/// use serin_canary::threshold::{FlaggerAnalysis, FlaggerAnalysisConfig, FlaggerMetric, Range};
/// use serin_signals::Metric;
///
/// let mut config = FlaggerAnalysisConfig::new(vec![
///     FlaggerMetric::new(Metric::ErrorRate, Quantity::SuccessRatePercent, Range::at_least(99.0)),
///     FlaggerMetric::new(Metric::Latency, Quantity::LatencyQuantile(0.99), Range::at_most(500.0)),
/// ]);
/// config.threshold = 2;
/// let mut analysis = FlaggerAnalysis::new(config)?;
/// analysis.check(&[Some(97.0), Some(300.0)])?; // the success rate fails
/// analysis.check(&[Some(99.9), Some(300.0)])?; // all pass: the count stays
/// analysis.check(&[Some(99.9), Some(800.0)])?; // the latency fails
/// assert_eq!(analysis.failed_checks(), 2);
/// assert!(analysis.rolls_back());
/// # Ok::<(), serin_canary::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    deny_unknown_fields,
    try_from = "SavedFlaggerAnalysis"
)]
pub struct FlaggerAnalysis {
    config: FlaggerAnalysisConfig,
    intervals: u32,
    failed_checks: u32,
    checks: Vec<Standing>,
    /// The interval being gathered from samples fed one metric at a time (as a [`Judge`]): per
    /// metric check, the value fed (`None` inside: fed without data).
    pending: Gathering<Option<f64>>,
}

/// A journalled [`FlaggerAnalysis`] as read back, checked before it becomes an analysis: the
/// settings as the constructor checks them, one standing per metric check, each last check
/// with the outcome its value checks as, and counts that intervals can have left (a failed
/// interval had a failing check, and none is recorded after the rollback). A record that
/// breaks these would roll back or pass on checks never made, so it is refused, naming the
/// field.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SavedFlaggerAnalysis {
    #[serde(deserialize_with = "crate::checked::config")]
    config: FlaggerAnalysisConfig,
    intervals: u32,
    failed_checks: u32,
    checks: Vec<Standing>,
    /// Absent in a record written before samples were gathered one metric at a time.
    #[serde(default)]
    pending: Option<Gathering<Option<f64>>>,
}

impl TryFrom<SavedFlaggerAnalysis> for FlaggerAnalysis {
    type Error = Error;

    fn try_from(s: SavedFlaggerAnalysis) -> Result<Self> {
        let n = s.config.metrics.len();
        if s.checks.len() != n {
            return Err(Error::invalid_input(
                "flaggerAnalysis.checks",
                s.checks.len(),
                format!("must hold one standing per metric check ({n})"),
            ));
        }
        if s.failed_checks > s.intervals.min(s.config.failed_checks_to_roll_back()) {
            return Err(Error::invalid_input(
                "flaggerAnalysis.failedChecks",
                s.failed_checks,
                format!(
                    "exceeds the {} intervals checked or the threshold {} (nothing is recorded \
                     after the rollback)",
                    s.intervals,
                    s.config.failed_checks_to_roll_back()
                ),
            ));
        }
        let failed: u64 = s.checks.iter().map(|c| u64::from(c.failed)).sum();
        if u64::from(s.failed_checks) > failed {
            return Err(Error::invalid_input(
                "flaggerAnalysis.failedChecks",
                s.failed_checks,
                format!("exceeds the {failed} failures of the metric checks"),
            ));
        }
        for (i, (c, m)) in s.checks.iter().zip(&s.config.metrics).enumerate() {
            if c.failed > s.failed_checks {
                return Err(Error::invalid_input(
                    format!("flaggerAnalysis.checks[{i}].failed"),
                    c.failed,
                    format!(
                        "exceeds the analysis's {} failed checks (a failing metric fails its \
                         interval)",
                        s.failed_checks
                    ),
                ));
            }
            check_last(
                &m.threshold_range,
                m.compare(),
                s.config.no_data_fails,
                c.last,
                &format!("flaggerAnalysis.checks[{i}].last"),
            )?;
            if c.last.is_some() != (s.intervals > 0) {
                return Err(Error::invalid_input(
                    format!("flaggerAnalysis.checks[{i}].last"),
                    if c.last.is_some() { "a check" } else { "null" },
                    format!(
                        "must be the last check exactly when an interval was checked ({} \
                         checked)",
                        s.intervals
                    ),
                ));
            }
        }
        let pending = s.pending.unwrap_or_else(|| Gathering::new(n));
        pending.check_saved(n, "flaggerAnalysis.pending")?;
        Ok(FlaggerAnalysis {
            config: s.config,
            intervals: s.intervals,
            failed_checks: s.failed_checks,
            checks: s.checks,
            pending,
        })
    }
}

impl FlaggerAnalysis {
    /// Name used in evidence.
    pub const NAME: &'static str = "flagger";

    /// An analysis with `config`, after validating it.
    pub fn new(config: FlaggerAnalysisConfig) -> Result<Self> {
        config.validate()?;
        let n = config.metrics.len();
        Ok(FlaggerAnalysis {
            config,
            intervals: 0,
            failed_checks: 0,
            checks: vec![Standing::default(); n],
            pending: Gathering::new(n),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &FlaggerAnalysisConfig {
        &self.config
    }

    /// Records one interval: `values` holds one value per metric check, in the order of
    /// `metrics` (`None` = no data), and the interval's outcome is returned: `Failed` if any
    /// check failed, else `NoData` if any had no data, else `Passed`.
    ///
    /// Once the analysis has rolled back, the outcome is returned but not recorded. Errors if
    /// `values` does not hold one value per check; nothing changes then.
    pub fn check(&mut self, values: &[Option<f64>]) -> Result<CheckOutcome> {
        let n = self.config.metrics.len();
        if values.len() != n {
            return Err(Error::invalid_input(
                "values",
                values.len(),
                format!(
                    "one value per metric check of the analysis ({n}), in the order of \
                     flaggerAnalysis.metrics"
                ),
            ));
        }
        let results: Vec<_> = self
            .config
            .metrics
            .iter()
            .zip(values)
            .map(|(m, v)| {
                check_value(
                    &m.threshold_range,
                    m.compare(),
                    self.config.no_data_fails,
                    *v,
                )
            })
            .collect();
        let outcome = interval_outcome(results.iter().map(|(o, _)| *o));
        if self.rolls_back() {
            return Ok(outcome);
        }
        for (standing, (o, v)) in self.checks.iter_mut().zip(results) {
            if o == CheckOutcome::Failed {
                standing.failed = standing.failed.saturating_add(1);
            }
            standing.last = Some((o, v));
        }
        self.intervals = self.intervals.saturating_add(1);
        if outcome == CheckOutcome::Failed {
            self.failed_checks = self.failed_checks.saturating_add(1);
        }
        Ok(outcome)
    }

    /// Records one interval from its samples, one per metric of the analysis (each check of a
    /// metric takes its quantity of the canary's observation), and answers the judgement
    /// after it, stamped with the latest sample's `now`.
    ///
    /// Errors if a sample's metric is not checked, a metric has two samples, or a metric
    /// checked has none (Flagger checks every metric every interval; a sample without data is
    /// how to say there was none); nothing changes then.
    pub fn observe(&mut self, samples: &[Sample<'_>]) -> Result<Judgement> {
        let metrics = &self.config.metrics;
        let mut values = vec![None; metrics.len()];
        let mut fed = vec![false; metrics.len()];
        let mut now = None;
        for (k, s) in samples.iter().enumerate() {
            let mut used = false;
            for (i, m) in metrics.iter().enumerate() {
                if &m.metric != s.metric() {
                    continue;
                }
                if fed[i] {
                    return Err(Error::invalid_input(
                        format!("samples[{k}].metric"),
                        s.metric(),
                        "a second sample of this metric in one interval",
                    ));
                }
                fed[i] = true;
                used = true;
                values[i] = m.quantity.of(&s.canary().measurement);
            }
            if !used {
                return Err(Error::invalid_input(
                    format!("samples[{k}].metric"),
                    s.metric(),
                    "no check of this analysis uses it",
                ));
            }
            now = now.max(Some(s.now()));
        }
        if let Some(i) = fed.iter().position(|f| !f) {
            return Err(Error::invalid_input(
                "samples",
                &metrics[i].metric,
                "no sample of this metric: every metric is checked every interval (a sample \
                 without data stands for no data)",
            ));
        }
        let Some(now) = now else {
            return Err(Error::invalid_input(
                "samples",
                "[]",
                "an interval has a sample of each metric",
            ));
        };
        self.check(&values)?;
        Ok(self.judgement(now))
    }

    /// Intervals checked so far.
    pub fn intervals(&self) -> u32 {
        self.intervals
    }

    /// Failed checks so far (Flagger's `status.failedChecks`): intervals in which any metric
    /// failed.
    pub fn failed_checks(&self) -> u32 {
        self.failed_checks
    }

    /// Whether Flagger would roll back now.
    pub fn rolls_back(&self) -> bool {
        self.failed_checks >= self.config.failed_checks_to_roll_back()
    }

    /// The outcome of the last interval recorded, if any.
    pub fn last(&self) -> Option<CheckOutcome> {
        (self.intervals > 0).then(|| {
            interval_outcome(
                self.checks
                    .iter()
                    .map(|c| c.last.map_or(CheckOutcome::NoData, |(o, _)| o)),
            )
        })
    }

    /// The judgement after the intervals so far, stamped `now`. Its evidence is about the
    /// metric that decided: the first one that failed in the last interval, else the first
    /// without data, else the first checked.
    pub fn judgement(&self, now: Timestamp) -> Judgement {
        let last_of = |i: usize| self.checks[i].last;
        let decisive = [CheckOutcome::Failed, CheckOutcome::NoData]
            .into_iter()
            .find_map(|want| {
                (0..self.checks.len()).find(|i| last_of(*i).is_some_and(|(o, _)| o == want))
            })
            .unwrap_or(0);
        let mut ev = super::evidence(
            Self::NAME,
            &self.config.metrics[decisive].metric,
            now,
            self.intervals,
            last_of(decisive).and_then(|(_, v)| v),
            self.failed_checks,
            f64::from(self.config.failed_checks_to_roll_back()),
        );
        let verdict = if self.rolls_back() {
            Verdict::Fail(Severity::Warning)
        } else if self.last() == Some(CheckOutcome::Passed) {
            Verdict::Pass
        } else {
            Verdict::Inconclusive
        };
        let checks = self
            .config
            .metrics
            .iter()
            .zip(&self.checks)
            .map(|(m, c)| {
                let last = match c.last {
                    Some((o, Some(v))) => format!("{o:?} with {v}"),
                    Some((o, None)) => format!("{o:?} without data"),
                    None => "not checked yet".to_owned(),
                };
                format!(
                    "{} of `{}` against {}: {last}, {} failed",
                    m.quantity.describe(),
                    m.metric,
                    m.threshold_range,
                    c.failed
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        ev.summary = format!(
            "Flagger: {} failed checks in {} intervals (threshold {}){}; last interval: {checks}",
            self.failed_checks,
            self.intervals,
            self.config.failed_checks_to_roll_back(),
            if self.rolls_back() {
                ", rolled back"
            } else {
                ""
            }
        );
        Judgement {
            verdict,
            evidence: ev,
        }
    }

    /// Forgets every interval (a new analysis, as Flagger starts one for a new revision); the
    /// configuration is kept.
    pub fn reset(&mut self) {
        self.intervals = 0;
        self.failed_checks = 0;
        self.checks.fill(Standing::default());
        self.pending.clear();
    }

    /// Checks the interval gathered so far, a metric not fed counting as no data.
    fn close_pending(&mut self) -> Result<()> {
        let values = self.pending.take(None);
        self.check(&values).map(|_| ())
    }
}

impl Judge for FlaggerAnalysis {
    fn name(&self) -> &str {
        Self::NAME
    }

    /// The first metric checked.
    fn metric(&self) -> &Metric {
        &self.config.metrics[0].metric
    }

    fn analyses(&self, metric: &Metric) -> bool {
        self.config.metrics.iter().any(|m| &m.metric == metric)
    }

    fn analysed_metrics(&self) -> Vec<Metric> {
        distinct(self.config.metrics.iter().map(|m| &m.metric))
    }

    /// Gathers one metric's sample into its window's interval (see the type's doc). A sample
    /// [`accepts`](Judge::accepts) refuses is an error, and nothing changes; once the analysis
    /// has rolled back, nothing is gathered.
    fn observe(&mut self, sample: &Sample<'_>) -> Result<Judgement> {
        self.accepts(sample)?;
        if self.rolls_back() {
            return Ok(self.judgement(sample.now()));
        }
        let window = sample.window();
        if self.pending.ends_with(window) {
            self.close_pending()?;
        }
        for (i, m) in self.config.metrics.iter().enumerate() {
            if &m.metric == sample.metric() {
                self.pending
                    .put(window, i, m.quantity.of(&sample.canary().measurement));
            }
        }
        if self.pending.is_whole() {
            self.close_pending()?;
        }
        Ok(self.judgement(sample.now()))
    }

    /// Refuses a sample of a metric not checked, one of a window older than the one being
    /// gathered, and a second sample of a metric for the same window.
    fn accepts(&self, sample: &Sample<'_>) -> Result<()> {
        if !self.analyses(sample.metric()) {
            return Err(Error::invalid_input(
                "sample.metric",
                sample.metric(),
                format!("no check of the `{}` analysis uses it", Self::NAME),
            ));
        }
        self.pending
            .accepts(sample, |i| &self.config.metrics[i].metric)
    }

    fn judgement(&self, now: Timestamp) -> Judgement {
        FlaggerAnalysis::judgement(self, now)
    }

    /// Whether the analysis has rolled back: its `Fail` is final until a reset.
    fn concluded(&self) -> bool {
        self.rolls_back()
    }

    fn reset(&mut self) {
        FlaggerAnalysis::reset(self)
    }
}

/// An interval's outcome from its checks' outcomes: failed if any failed, else no data if any
/// had none, else passed.
fn interval_outcome(outcomes: impl Iterator<Item = CheckOutcome>) -> CheckOutcome {
    outcomes.fold(CheckOutcome::Passed, |acc, o| match (acc, o) {
        (CheckOutcome::Failed, _) | (_, CheckOutcome::Failed) => CheckOutcome::Failed,
        (CheckOutcome::NoData, _) | (_, CheckOutcome::NoData) => CheckOutcome::NoData,
        _ => CheckOutcome::Passed,
    })
}
