//! Kayenta's metric classifier (`classifiers/metric/MannWhitneyClassifier.scala` as configured by
//! `NetflixACAJudge`): pre-processing, the Mann-Whitney interval with tolerance 0.25 and
//! confidence 0.98, effect sizes, and the labels `Pass`, `High`, `Low`, `Nodata`,
//! `NodataFailMetric` and `Error`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::kayenta::mann_whitney::{Precision, ShiftInterval, experiment_rank_sum, search};
use crate::kayenta::preprocess::{
    NanStrategy, OutlierStrategy, Outliers, apply_nan_strategy, remove_outliers,
};
use crate::{Error, Result};

/// The confidence `NetflixACAJudge` always passes to the classifier.
pub const CONFIDENCE: f64 = 0.98;
/// The tolerance `NetflixACAJudge` always passes: the shift must clear 25% of `|HL|`.
pub const TOLERANCE: f64 = 0.25;
/// Relative σ of the jitter Kayenta adds when each sample is constant but the two differ.
const JITTER: f64 = 1e-5;

/// Which change of the metric counts against the canary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    /// Only an increase (errors, latency).
    Increase,
    /// Only a decrease (throughput, success rate).
    Decrease,
    /// Either (Kayenta's default).
    #[default]
    Either,
}

/// The effect-size measure compared with the allowed and critical limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EffectMeasure {
    /// `mean(canary) / mean(baseline)`; NaN if either mean is 0 (Kayenta's default).
    #[default]
    MeanRatio,
    /// The common-language effect size (Vargha-Delaney A): `P(canary > baseline)`.
    Cles,
}

/// Effect-size limits (Kayenta's `effectSize` block). Defaults depend on the measure: 1.0 for
/// `meanRatio`, 0.5 for `cles` (both mean "no filter").
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EffectSize {
    /// The measure.
    #[serde(default)]
    pub measure: EffectMeasure,
    /// `High` needs an effect at least this large.
    pub allowed_increase: Option<f64>,
    /// `Low` needs an effect at most this large.
    pub allowed_decrease: Option<f64>,
    /// A critical metric's `High` is critical at this effect or above.
    pub critical_increase: Option<f64>,
    /// A critical metric's `Low` is critical at this effect or below.
    pub critical_decrease: Option<f64>,
}

impl Default for EffectSize {
    fn default() -> Self {
        EffectSize {
            measure: EffectMeasure::MeanRatio,
            allowed_increase: None,
            allowed_decrease: None,
            critical_increase: None,
            critical_decrease: None,
        }
    }
}

impl EffectSize {
    fn neutral(&self) -> f64 {
        match self.measure {
            EffectMeasure::MeanRatio => 1.0,
            EffectMeasure::Cles => 0.5,
        }
    }

    /// `(allowedIncrease, allowedDecrease, criticalIncrease, criticalDecrease)` with defaults.
    pub fn limits(&self) -> (f64, f64, f64, f64) {
        let n = self.neutral();
        (
            self.allowed_increase.unwrap_or(n),
            self.allowed_decrease.unwrap_or(n),
            self.critical_increase.unwrap_or(n),
            self.critical_decrease.unwrap_or(n),
        )
    }
}

/// One metric's settings, as under Kayenta's `analysisConfigurations.canary`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct MetricConfig {
    /// Which change counts against the canary.
    pub direction: Direction,
    /// What to do with missing points.
    pub nan_strategy: NanStrategy,
    /// Whether and how to drop outliers (Kayenta's `outliers: {strategy, outlierFactor}`).
    pub outliers: Outliers,
    /// A critical metric that is not `Pass` forces the canary score to 0.
    pub critical: bool,
    /// A non-critical metric without data is `NodataFailMetric` instead of `Nodata`.
    pub must_have_data: bool,
    /// Muted metrics are classified and reported but not scored (Kayenta's `muted`): they are
    /// left out of [`score`](crate::kayenta::score), and a
    /// [`KayentaJudge`](crate::kayenta::KayentaJudge) of one answers inconclusive whatever its
    /// label.
    pub muted: bool,
    /// Effect-size measure and limits.
    pub effect_size: EffectSize,
}

impl MetricConfig {
    /// Checks the numbers; `path` names the block in errors (`kayenta.metrics[0]`).
    pub fn validate(&self, path: &str) -> Result<()> {
        // Kayenta builds its IQR filter, which refuses a factor that is not above zero, only
        // when outliers are removed; otherwise the factor is never read, so it is not checked.
        if self.outliers.strategy == OutlierStrategy::Remove
            && let Some(f) = self.outliers.outlier_factor
            && !(f.is_finite() && f > 0.0)
        {
            return Err(Error::invalid_config(
                format!("{path}.outliers.outlierFactor"),
                f,
                "must be a finite number greater than zero",
            ));
        }
        let e = &self.effect_size;
        for (name, v) in [
            ("allowedIncrease", e.allowed_increase),
            ("allowedDecrease", e.allowed_decrease),
            ("criticalIncrease", e.critical_increase),
            ("criticalDecrease", e.critical_decrease),
        ] {
            if let Some(v) = v
                && !v.is_finite()
            {
                return Err(Error::invalid_config(
                    format!("{path}.effectSize.{name}"),
                    v,
                    "must be a finite number",
                ));
            }
            // A limit no effect can reach would silently turn every `High` or `Low` into `Pass`.
            if let Some(v) = v
                && e.measure == EffectMeasure::Cles
                && !(0.0..=1.0).contains(&v)
            {
                return Err(Error::invalid_config(
                    format!("{path}.effectSize.{name}"),
                    v,
                    "a cles effect size is a probability, so its limits lie in [0, 1]",
                ));
            }
        }
        Ok(())
    }

    fn outlier_factor(&self) -> f64 {
        self.outliers.outlier_factor.unwrap_or(3.0)
    }
}

/// Kayenta's metric classification labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Label {
    /// No significant difference (or one inside the tolerance band or the effect limits).
    Pass,
    /// The canary is significantly higher.
    High,
    /// The canary is significantly lower.
    Low,
    /// An arm has no data; counts as a failure of its group.
    NodataFailMetric,
    /// An arm has no data; not scored.
    Nodata,
    /// The test could not be computed; not scored.
    Error,
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The outcome of classifying one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Classification {
    /// The label.
    pub label: Label,
    /// Whether this result makes the whole canary fail (critical metric, not `Pass`).
    pub critical: bool,
    /// The shift interval and Hodges-Lehmann estimate, when the test ran.
    pub interval: Option<ShiftInterval>,
    /// The effect size in the configured measure (NaN when it cannot be computed).
    pub effect: f64,
    /// Kayenta's reported `deviation`: the mean ratio.
    pub deviation: f64,
    /// Points per arm after pre-processing (baseline, canary).
    pub points: (usize, usize),
    /// Why, in one sentence.
    pub reason: String,
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn mean_ratio(canary: &[f64], baseline: &[f64]) -> f64 {
    let (mc, mb) = (mean(canary), mean(baseline));
    if mc == 0.0 || mb == 0.0 {
        f64::NAN
    } else {
        mc / mb
    }
}

fn cles(canary: &[f64], baseline: &[f64]) -> f64 {
    let (m, n) = (canary.len() as f64, baseline.len() as f64);
    let r1 = experiment_rank_sum(canary, baseline);
    (2.0 * r1 - m * (m + 1.0)) / (2.0 * m * n)
}

/// A deterministic Gaussian jitter (splitmix64 + Box-Muller) so that a classification can be
/// replayed exactly; Kayenta draws it at random.
fn jitter(values: &mut [f64], seed: u64) {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    for v in values.iter_mut() {
        let (u1, u2) = (next(), next());
        let g = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        *v += g * JITTER * v.abs();
    }
}

/// Classifies one metric from its baseline and canary points (missing points as `None` or, as in
/// Kayenta's series, NaN), with Kayenta's exact rules in Kayenta's order.
///
/// ```
/// use serin_canary::kayenta::{classify, Label, MetricConfig};
///
/// let baseline: Vec<Option<f64>> = (0..30).map(|i| Some(100.0 + f64::from(i % 7))).collect();
/// let canary: Vec<Option<f64>> = (0..30).map(|i| Some(150.0 + f64::from(i % 7))).collect();
/// let c = classify(&MetricConfig::default(), &baseline, &canary);
/// assert_eq!(c.label, Label::High);
/// ```
pub fn classify(
    config: &MetricConfig,
    baseline: &[Option<f64>],
    canary: &[Option<f64>],
) -> Classification {
    let mut control = apply_nan_strategy(baseline, config.nan_strategy);
    let mut experiment = apply_nan_strategy(canary, config.nan_strategy);
    if config.outliers.strategy == OutlierStrategy::Remove {
        control = remove_outliers(&control, config.outlier_factor());
        experiment = remove_outliers(&experiment, config.outlier_factor());
    }
    let points = (control.len(), experiment.len());
    let done = |label: Label, critical: bool, reason: String| Classification {
        label,
        critical,
        interval: None,
        effect: f64::NAN,
        deviation: f64::NAN,
        points,
        reason,
    };

    // 1. No data.
    if control.is_empty() || experiment.is_empty() {
        return match config.nan_strategy {
            NanStrategy::Replace => done(
                Label::Pass,
                false,
                "no data in an arm; NaN strategy `replace` passes".into(),
            ),
            NanStrategy::Remove if config.must_have_data && !config.critical => done(
                Label::NodataFailMetric,
                false,
                "no data in an arm and the metric must have data".into(),
            ),
            NanStrategy::Remove => done(Label::Nodata, config.critical, "no data in an arm".into()),
        };
    }
    let deviation = mean_ratio(&experiment, &control);
    let effect = match config.effect_size.measure {
        EffectMeasure::MeanRatio => deviation,
        EffectMeasure::Cles => cles(&experiment, &control),
    };
    let with_effect = |mut c: Classification| {
        c.effect = effect;
        c.deviation = deviation;
        c
    };

    // 2-3. Identical samples, or one distinct value overall.
    let mut sc = control.clone();
    let mut se = experiment.clone();
    sc.sort_by(f64::total_cmp);
    se.sort_by(f64::total_cmp);
    if sc == se {
        return with_effect(done(Label::Pass, false, "identical samples".into()));
    }
    let all_same = |v: &[f64], x: f64| v.iter().all(|y| *y == x);
    if let Some(&first) = sc.first()
        && all_same(&sc, first)
        && all_same(&se, first)
    {
        return with_effect(done(Label::Pass, false, "one distinct value".into()));
    }
    // 4. Each sample constant but different: jitter to break the ties.
    if let (Some(&c0), Some(&e0)) = (sc.first(), se.first())
        && all_same(&sc, c0)
        && all_same(&se, e0)
    {
        jitter(&mut control, 0x5EED_0001);
        jitter(&mut experiment, 0x5EED_0002);
    }

    // 5. The interval and the Hodges-Lehmann estimate.
    let ci = match search(&experiment, &control, CONFIDENCE, Precision::UnitFree) {
        Ok(ci) => ci,
        Err(e) => {
            return with_effect(done(Label::Error, false, format!("test failed: {e}")));
        }
    };
    // 6. Tolerance band and effect limits.
    let (allowed_inc, allowed_dec, critical_inc, critical_dec) = config.effect_size.limits();
    let band = TOLERANCE * ci.estimate.abs();
    let up = matches!(config.direction, Direction::Increase | Direction::Either);
    let down = matches!(config.direction, Direction::Decrease | Direction::Either);
    let (label, reason) = if up && ci.lower > band && (effect.is_nan() || effect >= allowed_inc) {
        (
            Label::High,
            format!(
                "shift interval [{:.6}, {:.6}] lies above the tolerance band ±{band:.6}",
                ci.lower, ci.upper
            ),
        )
    } else if down && ci.upper < -band && (effect.is_nan() || effect <= allowed_dec) {
        (
            Label::Low,
            format!(
                "shift interval [{:.6}, {:.6}] lies below the tolerance band ±{band:.6}",
                ci.lower, ci.upper
            ),
        )
    } else {
        (
            Label::Pass,
            format!(
                "shift interval [{:.6}, {:.6}] does not clear the tolerance band ±{band:.6} \
                 in a judged direction with the effect limits",
                ci.lower, ci.upper
            ),
        )
    };
    // 7. Criticality.
    let critical = config.critical
        && (effect.is_nan() && label != Label::Pass
            || label == Label::High && effect >= critical_inc
            || label == Label::Low && effect <= critical_dec);
    Classification {
        label,
        critical,
        interval: Some(ci),
        effect,
        deviation,
        points,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(v: &[f64]) -> Vec<Option<f64>> {
        v.iter().map(|x| Some(*x)).collect()
    }

    /// Error rates as fractions span a few `1e-4`: searched to R's absolute tolerance, the
    /// interval would stop anywhere inside its jumps and label `High` what the same rates in
    /// per mille label `Pass`.
    #[test]
    fn the_label_does_not_depend_on_the_unit() {
        let series = |level: f64, mult: usize, scale: f64| -> Vec<Option<f64>> {
            (0..30)
                .map(|i| Some(scale * (level + 0.00002 * ((i * mult) % 11) as f64)))
                .collect()
        };
        let cfg = MetricConfig::default();
        let fraction = classify(&cfg, &series(0.0010, 7, 1.0), &series(0.00103, 5, 1.0));
        let per_mille = classify(&cfg, &series(0.0010, 7, 1e3), &series(0.00103, 5, 1e3));
        assert_eq!(
            fraction.label, per_mille.label,
            "{fraction:?} {per_mille:?}"
        );
        assert_eq!(per_mille.label, Label::Pass);
        let (f, m) = (fraction.interval.unwrap(), per_mille.interval.unwrap());
        for (a, b) in [
            (f.lower, m.lower),
            (f.upper, m.upper),
            (f.estimate, m.estimate),
        ] {
            assert!(
                (a * 1e3 - b).abs() < 1e-4 * (m.upper - m.lower),
                "{f:?} {m:?}"
            );
        }
    }

    #[test]
    fn no_data_labels_follow_the_flags() {
        let some = pts(&[1.0, 2.0]);
        let none: Vec<Option<f64>> = vec![None, None];
        let mut cfg = MetricConfig::default();
        assert_eq!(classify(&cfg, &some, &none).label, Label::Nodata);
        cfg.must_have_data = true;
        assert_eq!(classify(&cfg, &some, &none).label, Label::NodataFailMetric);
        cfg.critical = true;
        let c = classify(&cfg, &some, &none);
        assert!(c.label == Label::Nodata && c.critical);
        cfg.nan_strategy = NanStrategy::Replace;
        // Replace turns the missing points into zeros, which are data.
        assert_ne!(classify(&cfg, &some, &none).label, Label::Nodata);
        assert_eq!(classify(&cfg, &some, &[]).label, Label::Pass);
    }

    #[test]
    fn identical_and_single_valued_samples_pass() {
        let cfg = MetricConfig::default();
        let a = pts(&[3.0, 1.0, 2.0]);
        let b = pts(&[1.0, 2.0, 3.0]);
        assert_eq!(classify(&cfg, &a, &b).label, Label::Pass);
        let c = pts(&[5.0, 5.0, 5.0]);
        let d = pts(&[5.0, 5.0]);
        assert_eq!(classify(&cfg, &c, &d).label, Label::Pass);
    }

    #[test]
    fn constant_but_different_samples_are_jittered_and_judged() {
        let cfg = MetricConfig::default();
        let base = pts(&[1.0; 20]);
        let can = pts(&[2.0; 20]);
        let c = classify(&cfg, &base, &can);
        assert_eq!(c.label, Label::High, "{c:?}");
        assert!(c.interval.is_some());
    }

    #[test]
    fn direction_and_effect_limits_filter() {
        let base: Vec<f64> = (0..40).map(|i| 100.0 + f64::from(i % 9)).collect();
        let low: Vec<f64> = base.iter().map(|x| x * 0.7).collect();
        let mut cfg = MetricConfig::default();
        assert_eq!(classify(&cfg, &pts(&base), &pts(&low)).label, Label::Low);
        cfg.direction = Direction::Increase;
        assert_eq!(classify(&cfg, &pts(&base), &pts(&low)).label, Label::Pass);
        let high: Vec<f64> = base.iter().map(|x| x * 1.3).collect();
        cfg.effect_size.allowed_increase = Some(1.5);
        assert_eq!(classify(&cfg, &pts(&base), &pts(&high)).label, Label::Pass);
        cfg.effect_size.allowed_increase = Some(1.2);
        cfg.critical = true;
        cfg.effect_size.critical_increase = Some(1.25);
        let c = classify(&cfg, &pts(&base), &pts(&high));
        assert!(c.label == Label::High && c.critical, "{c:?}");
        assert!((c.deviation - 1.3).abs() < 1e-9);
    }

    #[test]
    fn cles_is_the_probability_of_superiority() {
        assert_eq!(cles(&[3.0, 4.0], &[1.0, 2.0]), 1.0);
        assert_eq!(cles(&[1.0, 2.0], &[3.0, 4.0]), 0.0);
        assert_eq!(cles(&[1.0, 2.0], &[1.0, 2.0]), 0.5);
    }

    #[test]
    fn bad_numbers_in_config_are_named() {
        let cfg = MetricConfig {
            outliers: Outliers {
                strategy: OutlierStrategy::Remove,
                outlier_factor: Some(-1.0),
            },
            ..MetricConfig::default()
        };
        let msg = cfg.validate("kayenta.metric").unwrap_err().to_string();
        assert!(msg.contains("kayenta.metric.outliers.outlierFactor") && msg.contains("-1"));
    }
}
