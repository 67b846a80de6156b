//! [`FlaggerJudge`]: Flagger's per-interval metric checks (`thresholdRange`, `threshold` of failed
//! checks) for an analysis of one metric (`pkg/controller/scheduler.go` in fluxcd/flagger). An
//! analysis of several metrics shares one counter: see [`FlaggerAnalysis`](super::FlaggerAnalysis).

use serde::{Deserialize, Serialize};
use serin_signals::{Metric, Timestamp};

use crate::judge::{Judge, Judgement, Sample, Severity, Verdict, check_metric};
use crate::kayenta::Quantity;
use crate::threshold::bounds::Range;
use crate::{Error, Result};

/// One metric of a Flagger `Canary` analysis, with Flagger's defaults. Checked when read
/// ([`FlaggerConfig::validate`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    deny_unknown_fields,
    try_from = "WrittenFlaggerConfig"
)]
pub struct FlaggerConfig {
    /// The metric judged (Flagger checks the canary alone).
    pub metric: Metric,
    /// Which number of the canary's observation is checked (`successRatePercent` for the
    /// built-in `request-success-rate`, `{"latencyQuantile": 0.99}` for `request-duration`).
    /// The value is compared as a number, as Flagger compares a custom check; the built-in
    /// `request-duration`, named in a [`FlaggerMetric`](super::FlaggerMetric), compares whole
    /// milliseconds.
    pub quantity: Quantity,
    /// The accepted range of the value.
    pub threshold_range: Range,
    /// Failed checks before rollback (Flagger's `threshold`, default 1; 0 reads as 1, as
    /// Flagger reads it). Flagger counts the failed intervals of the whole analysis, whichever
    /// metric failed, so this judge's count is Flagger's only when the metric is the analysis's
    /// only check.
    #[serde(default = "default_threshold")]
    pub threshold: u32,
    /// Flagger parity: an interval without data counts as a failed check, as Flagger does
    /// ("no values found"). Off by default, because Serin treats missing data as inconclusive:
    /// it neither fails nor passes a check.
    #[serde(default)]
    pub no_data_fails: bool,
}

/// A [`FlaggerConfig`] as written, before it is checked.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WrittenFlaggerConfig {
    metric: Metric,
    quantity: Quantity,
    threshold_range: Range,
    #[serde(default = "default_threshold")]
    threshold: u32,
    #[serde(default)]
    no_data_fails: bool,
}

impl TryFrom<WrittenFlaggerConfig> for FlaggerConfig {
    type Error = Error;

    /// Refused when read, as the judge refuses it: a range that holds no value would
    /// otherwise load and fail only once a judge was built from it.
    fn try_from(w: WrittenFlaggerConfig) -> Result<Self> {
        let config = FlaggerConfig {
            metric: w.metric,
            quantity: w.quantity,
            threshold_range: w.threshold_range,
            threshold: w.threshold,
            no_data_fails: w.no_data_fails,
        };
        config.validate()?;
        Ok(config)
    }
}

pub(super) fn default_threshold() -> u32 {
    1
}

/// The failed checks that roll back, for a configured `threshold`: Flagger reads 0 as its
/// default of 1 (`GetAnalysisThreshold`), so a threshold of 0 written for Flagger keeps its
/// meaning here rather than rolling back before any check has failed.
pub(super) fn effective_threshold(threshold: u32) -> u32 {
    threshold.max(1)
}

/// How a check compares its value with its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Compare {
    /// As numbers: a custom check (Flagger's `MetricTemplate`), and every check of a
    /// [`FlaggerJudge`].
    Exact,
    /// In whole milliseconds, as Flagger's built-in `request-duration` compares them: it
    /// truncates the measured p99 and both bounds to `time.Duration`s of whole milliseconds
    /// (`pkg/controller/scheduler_metrics.go`), so a p99 of 500.6 ms passes `max: 500`.
    WholeMilliseconds,
}

/// One check of `value` (`None` or not finite = no data) against `range`: what it found, and
/// the value it judged (as measured).
pub(super) fn check_value(
    range: &Range,
    compare: Compare,
    no_data_fails: bool,
    value: Option<f64>,
) -> (CheckOutcome, Option<f64>) {
    let value = value.filter(|v| v.is_finite());
    let inside = |v: f64| match compare {
        Compare::Exact => range.contains(v),
        Compare::WholeMilliseconds => Range {
            min: range.min.map(f64::trunc),
            max: range.max.map(f64::trunc),
        }
        .contains(v.trunc()),
    };
    let outcome = match value {
        Some(v) if inside(v) => CheckOutcome::Passed,
        Some(_) => CheckOutcome::Failed,
        None if no_data_fails => CheckOutcome::Failed,
        None => CheckOutcome::NoData,
    };
    (outcome, value)
}

/// Checks a journalled last check against what `range` makes of its value, naming `field`: a
/// failing value recorded as passed would pass the canary on a check that failed.
pub(super) fn check_last(
    range: &Range,
    compare: Compare,
    no_data_fails: bool,
    last: Option<(CheckOutcome, Option<f64>)>,
    field: &str,
) -> Result<()> {
    let Some((outcome, value)) = last else {
        return Ok(());
    };
    let checked = check_value(range, compare, no_data_fails, value);
    if checked == (outcome, value) {
        return Ok(());
    }
    Err(Error::invalid_input(
        field,
        format!("{outcome:?} with {value:?}"),
        format!("a check of {value:?} against {range} is {:?}", checked.0),
    ))
}

impl FlaggerConfig {
    /// Flagger's defaults with `range` on `quantity` of `metric`.
    pub fn new(metric: Metric, quantity: Quantity, range: Range) -> Self {
        FlaggerConfig {
            metric,
            quantity,
            threshold_range: range,
            threshold: default_threshold(),
            no_data_fails: false,
        }
    }

    /// Checks the configuration, naming the path (`flaggerConfig.thresholdRange`).
    pub fn validate(&self) -> Result<()> {
        self.quantity.validate("flaggerConfig.quantity")?;
        self.threshold_range
            .validate("flaggerConfig.thresholdRange")
    }

    /// The failed checks that roll back: `threshold`, with 0 read as 1 as Flagger reads it.
    pub fn failed_checks_to_roll_back(&self) -> u32 {
        effective_threshold(self.threshold)
    }
}

/// What one check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CheckOutcome {
    /// The value was inside the range.
    Passed,
    /// The value was outside the range (or, in parity mode, missing).
    Failed,
    /// No data, not counted (Serin's default).
    NoData,
}

/// Flagger's analysis of one metric as a [`Judge`]: each sample is one interval's check of the
/// canary's value against `thresholdRange`; failed checks accumulate for the whole analysis and
/// the judge fails once they reach `threshold`.
///
/// Judges are per metric, so this one counts its own metric's failed checks. Flagger keeps one
/// `failedChecks` for the whole analysis: an interval in which any metric fails counts once,
/// and failures spread over metrics add up. Several `FlaggerJudge`s with a `threshold` above 1
/// therefore roll back later than Flagger does; for Flagger's count over several metrics, use
/// [`FlaggerAnalysis`](super::FlaggerAnalysis), which checks them together.
///
/// No data is inconclusive and not counted, unless `noDataFails` (Flagger parity) is set, in
/// which case it is a failed check as in Flagger. Until the threshold is reached, the judge passes
/// after a passed check and is inconclusive after a failed or missing one (Flagger halts
/// advancement on a failed check). Once it is reached, the judge fails for good: Flagger's
/// analysis ends with the rollback, so the judge has [concluded](Judge::concluded) and records
/// no more checks until a reset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    deny_unknown_fields,
    try_from = "SavedFlaggerJudge"
)]
pub struct FlaggerJudge {
    config: FlaggerConfig,
    checks: u32,
    failed_checks: u32,
    last: Option<(CheckOutcome, Option<f64>)>,
}

/// A journalled [`FlaggerJudge`] as read back, checked before it becomes a judge: the settings
/// as the constructor checks them, failed checks among the checks made and never past the
/// threshold (the check that reaches it rolls back, and none is recorded after), a last check
/// exactly when one was made, with the outcome its value checks as. A last check that passed
/// with no check made, or on a failing value, would pass the canary on a check it never had,
/// so such a record is refused, naming the field.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SavedFlaggerJudge {
    #[serde(deserialize_with = "crate::checked::config")]
    config: FlaggerConfig,
    checks: u32,
    failed_checks: u32,
    last: Option<(CheckOutcome, Option<f64>)>,
}

impl TryFrom<SavedFlaggerJudge> for FlaggerJudge {
    type Error = Error;

    fn try_from(s: SavedFlaggerJudge) -> Result<Self> {
        if s.failed_checks > s.checks {
            return Err(Error::invalid_input(
                "flaggerJudge.failedChecks",
                s.failed_checks,
                format!("exceeds the {} checks made", s.checks),
            ));
        }
        let threshold = s.config.failed_checks_to_roll_back();
        if s.failed_checks > threshold {
            return Err(Error::invalid_input(
                "flaggerJudge.failedChecks",
                s.failed_checks,
                format!(
                    "exceeds the threshold {threshold}: the check that reaches it rolls back, \
                     and none is recorded after it"
                ),
            ));
        }
        if s.last.is_some() != (s.checks > 0) {
            return Err(Error::invalid_input(
                "flaggerJudge.last",
                if s.last.is_some() { "a check" } else { "null" },
                format!(
                    "must be the last check exactly when one was made ({} made)",
                    s.checks
                ),
            ));
        }
        let c = &s.config;
        check_last(
            &c.threshold_range,
            Compare::Exact,
            c.no_data_fails,
            s.last,
            "flaggerJudge.last",
        )?;
        Ok(FlaggerJudge {
            config: s.config,
            checks: s.checks,
            failed_checks: s.failed_checks,
            last: s.last,
        })
    }
}

impl FlaggerJudge {
    /// Name used in evidence.
    pub const NAME: &'static str = "flagger";

    /// A judge with `config`, after validating it.
    pub fn new(config: FlaggerConfig) -> Result<Self> {
        config.validate()?;
        Ok(FlaggerJudge {
            config,
            checks: 0,
            failed_checks: 0,
            last: None,
        })
    }

    /// Records one interval's check of `value` (`None` = no data) and returns its outcome.
    /// Once the judge has rolled back, the outcome is returned but not recorded: Flagger's
    /// analysis ends with the rollback.
    pub fn check(&mut self, value: Option<f64>) -> CheckOutcome {
        let (outcome, value) = check_value(
            &self.config.threshold_range,
            Compare::Exact,
            self.config.no_data_fails,
            value,
        );
        if self.rolls_back() {
            return outcome;
        }
        self.checks = self.checks.saturating_add(1);
        if outcome == CheckOutcome::Failed {
            self.failed_checks = self.failed_checks.saturating_add(1);
        }
        self.last = Some((outcome, value));
        outcome
    }

    /// Failed checks so far (Flagger's `status.failedChecks`).
    pub fn failed_checks(&self) -> u32 {
        self.failed_checks
    }

    /// Whether Flagger would roll back now.
    pub fn rolls_back(&self) -> bool {
        self.failed_checks >= self.config.failed_checks_to_roll_back()
    }
}

impl Judge for FlaggerJudge {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn metric(&self) -> &Metric {
        &self.config.metric
    }

    fn observe(&mut self, sample: &Sample<'_>) -> Result<Judgement> {
        check_metric(Self::NAME, &self.config.metric, sample)?;
        self.check(self.config.quantity.of(&sample.canary().measurement));
        Ok(self.judgement(sample.now()))
    }

    fn judgement(&self, now: Timestamp) -> Judgement {
        let mut ev = super::evidence(
            Self::NAME,
            &self.config.metric,
            now,
            self.checks,
            self.last.and_then(|(_, v)| v),
            self.failed_checks,
            f64::from(self.config.failed_checks_to_roll_back()),
        );
        let range = self.config.threshold_range;
        let verdict = if self.rolls_back() {
            Verdict::Fail(Severity::Warning)
        } else {
            match self.last {
                Some((CheckOutcome::Passed, _)) => Verdict::Pass,
                _ => Verdict::Inconclusive,
            }
        };
        let last = match self.last {
            Some((o, Some(v))) => format!("last check {o:?} with {v}"),
            Some((o, None)) => format!("last check {o:?} without data"),
            None => "no check yet".to_owned(),
        };
        ev.summary = format!(
            "Flagger: {} failed checks of {} (threshold {}) against {} of {}; {last}",
            self.failed_checks,
            self.checks,
            self.config.failed_checks_to_roll_back(),
            range,
            self.config.quantity.describe()
        );
        Judgement {
            verdict,
            evidence: ev,
        }
    }

    /// Whether the analysis has rolled back: its `Fail` is final until a reset.
    fn concluded(&self) -> bool {
        self.rolls_back()
    }

    fn reset(&mut self) {
        self.checks = 0;
        self.failed_checks = 0;
        self.last = None;
    }
}
