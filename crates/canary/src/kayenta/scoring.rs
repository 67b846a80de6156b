//! Kayenta's canary score (`scorers/WeightedSumScorer.scala`, `ScoringHelper.scala`,
//! `classifiers/score/ThresholdScoreClassifier.scala`): group scores, group weights, the forced
//! zero for critical failures and for mostly-missing data, and the pass / marginal thresholds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::kayenta::classify::{Classification, Label};
use crate::{Error, Result};

/// Kayenta's `NODATA_THRESHOLD`: at least this percentage of `Nodata` metrics zeroes the score.
pub const NODATA_THRESHOLD: f64 = 50.0;

/// One metric's classification, with the groups it is scored in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricResult {
    /// The metric's name.
    pub name: String,
    /// The groups the metric belongs to: its label counts in each of them, as in Kayenta,
    /// where a metric may belong to several. A metric in none is in no group score but still
    /// counts for the critical and `Nodata` rules.
    pub groups: Vec<String>,
    /// Muted metrics are reported but not scored.
    pub muted: bool,
    /// The classification.
    pub classification: Classification,
}

/// The scoring settings (Kayenta's `classifier` block and the run's score thresholds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScoreConfig {
    /// Weights per group, summing to at most 100; groups without a weight share the remainder.
    #[serde(default)]
    pub group_weights: BTreeMap<String, f64>,
    /// A score at or above this passes (Kayenta's examples use 75).
    pub pass: f64,
    /// A score at or above this is marginal, below fails (Kayenta's examples use 50).
    pub marginal: f64,
}

impl Default for ScoreConfig {
    fn default() -> Self {
        ScoreConfig {
            group_weights: BTreeMap::new(),
            pass: 75.0,
            marginal: 50.0,
        }
    }
}

impl ScoreConfig {
    /// Checks thresholds and weights, naming the path (`scoreConfig.groupWeights.latency`).
    pub fn validate(&self) -> Result<()> {
        self.validate_at("scoreConfig")
    }

    /// As [`validate`](Self::validate), with `path` naming this block in errors
    /// (`kayentaConfig.run.thresholds`), for a score configuration nested in another.
    pub fn validate_at(&self, path: &str) -> Result<()> {
        for (name, v) in [("pass", self.pass), ("marginal", self.marginal)] {
            if !(0.0..=100.0).contains(&v) {
                return Err(Error::invalid_config(
                    format!("{path}.{name}"),
                    v,
                    "a score threshold must lie in [0, 100]",
                ));
            }
        }
        if self.marginal > self.pass {
            return Err(Error::invalid_config(
                format!("{path}.marginal"),
                self.marginal,
                format!("exceeds {path}.pass ({})", self.pass),
            ));
        }
        let mut sum = 0.0;
        for (group, w) in &self.group_weights {
            if !(w.is_finite() && *w >= 0.0) {
                return Err(Error::invalid_config(
                    format!("{path}.groupWeights.{group}"),
                    w,
                    "a weight must be a finite number ≥ 0",
                ));
            }
            sum += w;
        }
        if sum > 100.0 + 1e-9 {
            return Err(Error::invalid_config(
                format!("{path}.groupWeights"),
                sum,
                "weights must sum to at most 100",
            ));
        }
        Ok(())
    }
}

/// The run's verdict from its score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ScoreVerdict {
    /// Score ≥ pass.
    Pass,
    /// marginal ≤ score < pass.
    Marginal,
    /// Score < marginal.
    Fail,
}

/// The canary score with its parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CanaryScore {
    /// The summary score, 0..=100, rounded half up to two decimals.
    pub score: f64,
    /// Each group's score, 0..=100, as Kayenta reports it: a group none of whose metrics is
    /// `Pass`, `High`, `Low` or `NodataFailMetric` reports 0 (Kayenta's `noData` group), although
    /// it counts as 100 in the summary score, so that a group without evidence neither drags the
    /// score down nor shows as healthy.
    pub group_scores: BTreeMap<String, f64>,
    /// Pass, marginal or fail.
    pub verdict: ScoreVerdict,
    /// Why the score was forced to 0, if it was.
    pub forced_zero: Option<String>,
}

/// Commons Math's `Precision.round(x, 2)`, as Kayenta rounds the summary score: half up, on the
/// shortest decimal that reads back as `x` (so 1.005 is 1.01, where `(100x).round() / 100`, on
/// the binary value 100.49999…, gives 1.0). Scores are finite and non-negative.
fn round_half_up_2(x: f64) -> f64 {
    let text = x.to_string();
    let Some((whole, frac)) = text.split_once('.') else {
        return x;
    };
    let digits: Vec<f64> = frac.bytes().take(3).map(|b| f64::from(b - b'0')).collect();
    match (whole.parse::<f64>(), digits.as_slice()) {
        (Ok(whole), [tenths, hundredths, next]) => {
            let up = if *next >= 5.0 { 1.0 } else { 0.0 };
            (whole * 100.0 + tenths * 10.0 + hundredths + up) / 100.0
        }
        _ => x,
    }
}

/// Scores a set of metric classifications as Kayenta does.
///
/// ```
/// use serin_canary::kayenta::{classify, score, MetricConfig, MetricResult, ScoreConfig, ScoreVerdict};
///
/// let same: Vec<Option<f64>> = (0..20).map(|i| Some(f64::from(i))).collect();
/// let result = MetricResult {
///     name: "latency".into(),
///     groups: vec!["performance".into()],
///     muted: false,
///     classification: classify(&MetricConfig::default(), &same, &same),
/// };
/// let s = score(&[result], &ScoreConfig::default())?;
/// assert_eq!((s.score, s.verdict), (100.0, ScoreVerdict::Pass));
/// # Ok::<(), serin_canary::Error>(())
/// ```
///
/// Muted results are left out before anything is counted, as Kayenta's `ScoringHelper` does:
/// they are in no group, cannot be a critical failure and do not count toward the `Nodata`
/// share. Groups without a configured weight share what *all* the configured weights leave of
/// 100, whether or not the weighted groups have results (Kayenta's `WeightedSumScorer`): a
/// configured group with no results therefore lowers the best reachable score instead of
/// handing its weight to the others.
pub fn score(results: &[MetricResult], config: &ScoreConfig) -> Result<CanaryScore> {
    config.validate()?;
    let scored: Vec<&MetricResult> = results.iter().filter(|r| !r.muted).collect();

    // Group tallies, a metric's label in each of its groups: Nodata and Error are not counted.
    let mut tallies: BTreeMap<&str, (u32, u32)> = BTreeMap::new();
    for r in &scored {
        for group in &r.groups {
            let t = tallies.entry(group.as_str()).or_default();
            match r.classification.label {
                Label::Pass => {
                    t.0 += 1;
                    t.1 += 1;
                }
                Label::High | Label::Low | Label::NodataFailMetric => t.1 += 1,
                Label::Nodata | Label::Error => {}
            }
        }
    }
    // The score of each group in the summary: a group with nothing counted counts as 100.
    // Computed in Kayenta's order, `(pass / counted) * 100`: `100 * pass / counted` can differ
    // in the last bit, which the rounding to two decimals can turn into 0.01.
    let effective = |(pass, counted): (u32, u32)| {
        if counted == 0 {
            100.0
        } else {
            f64::from(pass) / f64::from(counted) * 100.0
        }
    };
    // As reported: a group with nothing counted reports 0.
    let group_scores: BTreeMap<String, f64> = tallies
        .iter()
        .map(|(g, t)| {
            let s = if t.1 == 0 { 0.0 } else { effective(*t) };
            ((*g).to_owned(), s)
        })
        .collect();

    // Weights: explicit ones for present groups; the others share what all the configured
    // weights leave, present or not.
    let configured: f64 = config.group_weights.values().sum();
    let unweighted = tallies
        .keys()
        .filter(|g| !config.group_weights.contains_key(**g))
        .count();
    let share = if unweighted > 0 {
        (100.0 - configured).max(0.0) / unweighted as f64
    } else {
        0.0
    };
    let raw: f64 = tallies
        .iter()
        .map(|(g, t)| {
            let w = config.group_weights.get(*g).copied().unwrap_or(share);
            effective(*t) * (w / 100.0)
        })
        .sum();
    let mut total = round_half_up_2(raw);

    let critical = scored
        .iter()
        .find(|r| r.classification.critical && r.classification.label != Label::Pass);
    let nodata = scored
        .iter()
        .filter(|r| r.classification.label == Label::Nodata)
        .count();
    let forced_zero = if let Some(r) = critical {
        Some(format!(
            "critical metric `{}` is {}",
            r.name, r.classification.label
        ))
    } else if !scored.is_empty() && 100.0 * nodata as f64 / scored.len() as f64 >= NODATA_THRESHOLD
    {
        Some(format!(
            "{nodata} of {} metrics have no data (threshold {NODATA_THRESHOLD}%)",
            scored.len()
        ))
    } else {
        None
    };
    if forced_zero.is_some() {
        total = 0.0;
    }
    let verdict = if total >= config.pass {
        ScoreVerdict::Pass
    } else if total >= config.marginal {
        ScoreVerdict::Marginal
    } else {
        ScoreVerdict::Fail
    };
    Ok(CanaryScore {
        score: total,
        group_scores,
        verdict,
        forced_zero,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(name: &str, group: &str, label: Label, critical: bool) -> MetricResult {
        MetricResult {
            name: name.into(),
            groups: vec![group.into()],
            muted: false,
            classification: Classification {
                label,
                critical,
                interval: None,
                effect: f64::NAN,
                deviation: f64::NAN,
                points: (10, 10),
                reason: String::new(),
            },
        }
    }

    #[test]
    fn one_high_among_ten_scores_ninety() {
        let mut rs: Vec<_> = (0..9)
            .map(|i| result(&format!("m{i}"), "g", Label::Pass, false))
            .collect();
        rs.push(result("bad", "g", Label::High, false));
        let s = score(&rs, &ScoreConfig::default()).unwrap();
        assert_eq!((s.score, s.verdict), (90.0, ScoreVerdict::Pass));
    }

    #[test]
    fn weighted_groups_and_the_remainder() {
        let rs = vec![
            result("a", "errors", Label::High, false),
            result("b", "latency", Label::Pass, false),
            result("c", "cpu", Label::Pass, false),
            result("d", "cpu", Label::Error, false),
        ];
        let cfg = ScoreConfig {
            group_weights: BTreeMap::from([("errors".to_owned(), 60.0)]),
            ..ScoreConfig::default()
        };
        // errors 0 × 60, latency 100 × 20, cpu 100 × 20 (Error not counted).
        let s = score(&rs, &cfg).unwrap();
        assert_eq!((s.score, s.verdict), (40.0, ScoreVerdict::Fail));
        assert_eq!(s.group_scores.get("cpu"), Some(&100.0));
    }

    #[test]
    fn a_label_counts_in_each_of_its_groups_and_in_none_without_one() {
        let mut both = result("p99", "errors", Label::High, false);
        both.groups.push("latency".into());
        let mut loose = result("cpu", "", Label::Low, false);
        loose.groups.clear();
        let rs = vec![
            both,
            loose,
            result("5xx", "errors", Label::Pass, false),
            result("p50", "latency", Label::Pass, false),
        ];
        let s = score(&rs, &ScoreConfig::default()).unwrap();
        // Each group holds one Pass and the shared High; the group-less Low is in neither.
        assert_eq!(s.group_scores.len(), 2);
        assert_eq!(
            (s.group_scores["errors"], s.group_scores["latency"]),
            (50.0, 50.0)
        );
        assert_eq!(s.score, 50.0);
        // It still counts for the rules over all metrics: critical, it zeroes the score.
        let mut rs = rs;
        rs[1].classification.critical = true;
        assert_eq!(score(&rs, &ScoreConfig::default()).unwrap().score, 0.0);
    }

    #[test]
    fn critical_failures_and_missing_data_force_zero() {
        let rs = vec![
            result("a", "g", Label::Pass, false),
            result("b", "g", Label::High, true),
        ];
        let s = score(&rs, &ScoreConfig::default()).unwrap();
        assert_eq!(s.score, 0.0);
        assert!(s.forced_zero.unwrap().contains('b'));
        let rs = vec![
            result("a", "g", Label::Pass, false),
            result("b", "g", Label::Nodata, false),
        ];
        let s = score(&rs, &ScoreConfig::default()).unwrap();
        assert_eq!((s.score, s.verdict), (0.0, ScoreVerdict::Fail));
        let rs = vec![
            result("a", "g", Label::Pass, false),
            result("b", "g", Label::Pass, false),
            result("c", "g", Label::NodataFailMetric, false),
        ];
        let s = score(&rs, &ScoreConfig::default()).unwrap();
        assert_eq!((s.score, s.verdict), (66.67, ScoreVerdict::Marginal));
    }

    #[test]
    fn the_summary_rounds_half_up_on_its_decimal_digits() {
        // Commons Math rounds the decimal text: 1.005 is 1.01, though 100 × 1.005 < 100.5.
        assert_eq!(round_half_up_2(1.005), 1.01);
        assert_eq!(round_half_up_2(99.985), 99.99);
        assert_eq!(round_half_up_2(200.0 / 3.0), 66.67);
        assert_eq!(round_half_up_2(0.004), 0.0);
        assert_eq!(round_half_up_2(90.0), 90.0);
        // End to end: one group weighted 2.01 scoring 50 sums to 50 × (2.01 / 100) = 1.005.
        let rs = vec![
            result("a", "g", Label::Pass, false),
            result("b", "g", Label::High, false),
        ];
        let cfg = ScoreConfig {
            group_weights: BTreeMap::from([("g".to_owned(), 2.01)]),
            ..ScoreConfig::default()
        };
        assert_eq!(score(&rs, &cfg).unwrap().score, 1.01);
    }

    #[test]
    fn bad_thresholds_are_named() {
        let cfg = ScoreConfig {
            pass: 40.0,
            marginal: 50.0,
            ..ScoreConfig::default()
        };
        let msg = score(&[], &cfg).unwrap_err().to_string();
        assert!(msg.contains("scoreConfig.marginal") && msg.contains("50"));
    }
}
