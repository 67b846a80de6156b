//! Sharing `α` across several metrics, so that the whole analysis keeps its false-rollback bound.

use serde::{Deserialize, Serialize};
use serin_signals::Timestamp;

use super::judges::threshold_text;
use super::settings::check_open_unit;
use crate::judge::{Judgement, Severity, Statistic, Verdict};
use crate::{Error, Result};

/// How several sequential judges share one `α`.
///
/// - [`AlphaSharing::Split`] (Bonferroni): each of `m` judges runs at `α/m` and the analysis fails
///   when any judge fails. Best when one metric is expected to carry a regression.
/// - [`AlphaSharing::Average`]: each judge reports its e-value; the analysis fails when their
///   **mean** reaches `1/α` (a mean of e-values is an e-value, whatever their dependence). Best
///   when a regression shows in several metrics at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AlphaSharing {
    /// Each judge at `α/m`; any failure fails the analysis.
    #[default]
    Split,
    /// The mean of the judges' e-values against `1/α`.
    Average,
}

impl AlphaSharing {
    /// The `α` each of `m` judges must be built with.
    pub fn per_judge_alpha(self, alpha: f64, m: usize) -> f64 {
        match self {
            AlphaSharing::Split => alpha / m.max(1) as f64,
            AlphaSharing::Average => alpha,
        }
    }
}

/// Combines the current judgements of several sequential judges (built with
/// [`AlphaSharing::per_judge_alpha`]) into one, whose evidence is the decisive judge's with a
/// summary that says how `α` was shared.
///
/// The combined verdict is `Fail` as described on [`AlphaSharing`] (the severity is the highest
/// among the failing judges, or `Warning` when only the average fails), `Pass` when every judge
/// passes, and `Inconclusive` otherwise. Averaged, the evidence's statistic and threshold are
/// the mean e-value and `1/α` the verdict was decided on.
///
/// It judges the judgements it is given, and keeps nothing: split, a judge's failure stands
/// (each judge keeps its own), but averaged, the analysis is rejected the first time the mean
/// reaches `1/α`, which is the `Fail` to act on (the canary controller rolls back at once); a
/// later call judges the mean of then, which the canary's recovery may have lowered. An empty slice or a bad `alpha` is an error, and so,
/// split, are judges whose own `α`s (`1/threshold` of each e-value) sum to more than `alpha`:
/// a judge added on resume at `α/3` beside judges built at `α/2` would spend more than `α`.
pub fn combine(
    judgements: &[Judgement],
    alpha: f64,
    sharing: AlphaSharing,
    now: Timestamp,
) -> Result<Judgement> {
    check_open_unit("alpha", alpha)?;
    let m = judgements.len();
    let first = judgements.first().ok_or_else(|| {
        Error::invalid_input("judgements", "[]", "at least one judgement is needed")
    })?;
    let worst_fail = judgements
        .iter()
        .filter_map(|j| j.verdict.severity().map(|s| (s, j)))
        .max_by_key(|(s, _)| *s);
    let all_pass = judgements.iter().all(|j| j.verdict == Verdict::Pass);
    // Averaged, the mean e-value the verdict is decided on.
    let mut mean_of = None;
    let (verdict, decisive, how) = match sharing {
        AlphaSharing::Split => {
            let how = format!(
                "alpha {alpha} split over {m} metric(s) (Bonferroni): each fails at its own \
                 1/alpha = {}",
                split_thresholds(judgements, alpha)?
            );
            match worst_fail {
                Some((s, j)) => (Verdict::Fail(s), j, how),
                None if all_pass => (Verdict::Pass, first, how),
                None => (Verdict::Inconclusive, first, how),
            }
        }
        AlphaSharing::Average => {
            let e = |j: &Judgement| match j.evidence.statistic {
                Some(Statistic::EValue(e)) if e.is_finite() && e >= 0.0 => e,
                Some(Statistic::EValue(e)) if e == f64::INFINITY => e,
                // A judge without an e-value counts as 0, which can only lower the mean.
                _ => 0.0,
            };
            let mean = judgements.iter().map(e).sum::<f64>() / m as f64;
            let top = judgements
                .iter()
                .max_by(|a, b| e(a).total_cmp(&e(b)))
                .unwrap_or(first);
            let how = format!(
                "mean e-value {mean:.3} of {m} metric(s) against 1/alpha = {} (e-value averaging)",
                threshold_text(1.0 / alpha)
            );
            mean_of = Some(mean);
            if mean >= 1.0 / alpha {
                let sev = worst_fail.map_or(Severity::Warning, |(s, _)| s);
                (Verdict::Fail(sev), top, how)
            } else if all_pass {
                (Verdict::Pass, first, how)
            } else {
                (Verdict::Inconclusive, top, how)
            }
        }
    };
    let mut evidence = decisive.evidence.clone();
    if let Some(mean) = mean_of {
        evidence.statistic = Some(Statistic::EValue(mean));
        evidence.threshold = Some(1.0 / alpha);
    }
    evidence.at = now;
    evidence.summary = format!("{} [{how}; verdict {verdict}]", decisive.evidence.summary);
    Ok(Judgement { verdict, evidence })
}

/// The thresholds `1/α_j` the judges with an e-value fail at, as evidence writes them (one
/// when they agree), once their `α_j` are checked to sum to at most `alpha` (up to rounding):
/// the Bonferroni bound holds for what each judge was built with, not for `alpha/m`. Without
/// any e-value, `m/alpha`.
fn split_thresholds(judgements: &[Judgement], alpha: f64) -> Result<String> {
    let m = judgements.len();
    let thresholds: Vec<f64> = judgements
        .iter()
        .filter(|j| matches!(j.evidence.statistic, Some(Statistic::EValue(_))))
        .filter_map(|j| j.evidence.threshold)
        .collect();
    let spent: f64 = thresholds
        .iter()
        // A threshold that is not a number or not above 0 is no judge's `1/α`: it spends all.
        .map(|&t| if t > 0.0 { 1.0 / t } else { f64::INFINITY })
        .sum();
    if spent > alpha * (1.0 + 1e-9) {
        return Err(Error::invalid_input(
            "judgements",
            format!("alphas (1/threshold) summing to {spent}"),
            format!(
                "the judges' alphas must sum to at most alpha = {alpha}: build each with \
                 AlphaSharing::Split.per_judge_alpha(alpha, {m})"
            ),
        ));
    }
    let mut texts: Vec<String> = thresholds.iter().map(|&t| threshold_text(t)).collect();
    if texts.is_empty() {
        texts.push(threshold_text(m as f64 / alpha));
    }
    if texts.iter().all(|t| *t == texts[0]) {
        texts.truncate(1);
    }
    Ok(texts.join(", "))
}
