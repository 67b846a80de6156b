//! Kayenta's pre-processing: the NaN strategy and the IQR outlier filter
//! (`preprocessing/Transforms.scala`, `detectors/IQRDetector.scala`).

use serde::{Deserialize, Serialize};

/// What to do with missing points (NaN in Kayenta's time series; no data here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NanStrategy {
    /// Drop missing points (Kayenta's default, which its configs also write `none`).
    #[default]
    #[serde(alias = "none")]
    Remove,
    /// Replace missing points with 0.0.
    Replace,
}

/// Whether to drop outliers before the test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OutlierStrategy {
    /// Keep every point (Kayenta's default, which its configs write `none`).
    #[default]
    #[serde(alias = "none")]
    Keep,
    /// Drop points outside Kayenta's reduced-sensitivity IQR fences.
    Remove,
}

/// Kayenta's `outliers` block: the strategy and the IQR factor of its filter.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Outliers {
    /// Whether to drop outliers.
    pub strategy: OutlierStrategy,
    /// The IQR factor of the filter (Kayenta's `outlierFactor`, default 3.0), read and checked
    /// only when outliers are removed.
    pub outlier_factor: Option<f64>,
}

/// Applies the NaN strategy: missing points are dropped or become 0.0. A NaN point is missing
/// too, as Kayenta's own series mark a missing point (`Transforms.removeNaNs` and
/// `replaceNaNs`), so points copied from Kayenta are judged as Kayenta judges them.
pub fn apply_nan_strategy(points: &[Option<f64>], strategy: NanStrategy) -> Vec<f64> {
    let present = |p: &Option<f64>| p.filter(|v| !v.is_nan());
    match strategy {
        NanStrategy::Remove => points.iter().filter_map(present).collect(),
        NanStrategy::Replace => points.iter().map(|p| present(p).unwrap_or(0.0)).collect(),
    }
}

/// Apache Commons Math's default (`LEGACY`) percentile of sorted data, `p` in (0, 100]: position
/// `p(n+1)/100`, clamped to the extremes, linear between neighbours. Kayenta's IQR detector uses
/// it, so the fences here fall where Kayenta's do.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let n = sorted.len();
    let first = *sorted.first()?;
    let last = *sorted.last()?;
    if n == 1 {
        return Some(first);
    }
    let pos = p * (n as f64 + 1.0) / 100.0;
    let fpos = pos.floor();
    let d = pos - fpos;
    if pos < 1.0 {
        return Some(first);
    }
    if pos >= n as f64 {
        return Some(last);
    }
    let i = fpos as usize; // 1 <= fpos < n
    let lower = *sorted.get(i - 1)?;
    let upper = *sorted.get(i)?;
    Some(lower + d * (upper - lower))
}

/// Kayenta's IQR filter with reduced sensitivity: keeps the points inside
/// `[min(P1, Q1 − f·IQR), max(P99, Q3 + f·IQR)]`.
pub fn remove_outliers(points: &[f64], factor: f64) -> Vec<f64> {
    let mut sorted = points.to_vec();
    sorted.sort_by(f64::total_cmp);
    let fences = (|| {
        let p25 = percentile(&sorted, 25.0)?;
        let p75 = percentile(&sorted, 75.0)?;
        let iqr = p75 - p25;
        let lower = percentile(&sorted, 1.0)?.min(p25 - factor * iqr);
        let upper = percentile(&sorted, 99.0)?.max(p75 + factor * iqr);
        Some((lower, upper))
    })();
    match fences {
        Some((lower, upper)) => points
            .iter()
            .copied()
            .filter(|x| *x >= lower && *x <= upper)
            .collect(),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commons_math_percentiles() {
        let d = [1.0, 2.0, 3.0, 4.0];
        // pos = 0.25 * 5 = 1.25 → 1 + 0.25 * (2 - 1)
        assert_eq!(percentile(&d, 25.0), Some(1.25));
        assert_eq!(percentile(&d, 75.0), Some(3.75));
        assert_eq!(percentile(&d, 1.0), Some(1.0));
        assert_eq!(percentile(&d, 99.0), Some(4.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn nan_strategies() {
        let p = [Some(1.0), None, Some(3.0)];
        assert_eq!(apply_nan_strategy(&p, NanStrategy::Remove), vec![1.0, 3.0]);
        assert_eq!(
            apply_nan_strategy(&p, NanStrategy::Replace),
            vec![1.0, 0.0, 3.0]
        );
    }

    #[test]
    fn a_far_outlier_is_removed_and_the_body_kept() {
        let mut p: Vec<f64> = (0..200).map(|i| 10.0 + f64::from(i % 10)).collect();
        p.push(10_000.0);
        let kept = remove_outliers(&p, 3.0);
        assert_eq!(kept.len(), 200);
        assert!(kept.iter().all(|x| *x < 100.0));
    }
}
