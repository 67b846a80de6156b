//! [`Range`]: inclusive metric bounds, the shape of both Argo conditions and Flagger's
//! `thresholdRange`.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Inclusive bounds `min ≤ value ≤ max`; a missing side is unbounded.
///
/// As an Argo condition, `{"max": 0.01}` stands for `result <= 0.01`; as Flagger's
/// `thresholdRange`, `{"min": 99}` is the docs' success-rate check.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Range {
    /// Smallest value inside the range.
    pub min: Option<f64>,
    /// Largest value inside the range.
    pub max: Option<f64>,
}

impl Range {
    /// `value ≤ max`.
    pub fn at_most(max: f64) -> Self {
        Range {
            min: None,
            max: Some(max),
        }
    }

    /// `value ≥ min`.
    pub fn at_least(min: f64) -> Self {
        Range {
            min: Some(min),
            max: None,
        }
    }

    /// Whether `value` lies inside (NaN never does).
    pub fn contains(&self, value: f64) -> bool {
        !value.is_nan()
            && self.min.is_none_or(|m| value >= m)
            && self.max.is_none_or(|m| value <= m)
    }

    /// Checks the bounds, naming `path` in errors: at least one side, finite, `min ≤ max`.
    pub fn validate(&self, path: &str) -> Result<()> {
        if self.min.is_none() && self.max.is_none() {
            return Err(Error::invalid_config(
                path,
                "{}",
                "a range needs a min, a max or both",
            ));
        }
        for (side, v) in [("min", self.min), ("max", self.max)] {
            if let Some(v) = v
                && !v.is_finite()
            {
                return Err(Error::invalid_config(
                    format!("{path}.{side}"),
                    v,
                    "must be a finite number",
                ));
            }
        }
        if let (Some(lo), Some(hi)) = (self.min, self.max)
            && lo > hi
        {
            return Err(Error::invalid_config(
                format!("{path}.min"),
                lo,
                format!("exceeds {path}.max ({hi})"),
            ));
        }
        Ok(())
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.min, self.max) {
            (Some(lo), Some(hi)) => write!(f, "{lo} ≤ value ≤ {hi}"),
            (Some(lo), None) => write!(f, "value ≥ {lo}"),
            (None, Some(hi)) => write!(f, "value ≤ {hi}"),
            (None, None) => f.write_str("any value"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inclusive_bounds_and_nan() {
        let r = Range::at_most(0.01);
        assert!(r.contains(0.01) && !r.contains(0.0101) && !r.contains(f64::NAN));
        assert!(Range::at_least(99.0).contains(99.0));
    }

    #[test]
    fn validation_names_the_path() {
        let msg = Range::default()
            .validate("argo.successCondition")
            .unwrap_err();
        assert!(msg.to_string().contains("argo.successCondition"));
        let r = Range {
            min: Some(2.0),
            max: Some(1.0),
        };
        let msg = r
            .validate("flagger.thresholdRange")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("flagger.thresholdRange.min") && msg.contains('2'));
        let r = Range::at_most(f64::INFINITY);
        assert!(r.validate("x").unwrap_err().to_string().contains("x.max"));
    }
}
