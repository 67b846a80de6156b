//! Severity from effect-size bands: how bad is a regression that a judge has found to be real?
//!
//! A judge first decides *whether* the canary is worse (a statistical question); the bands then
//! say *how much* worse matters (an operational one). Effects are relative: `0.5` means "50%
//! worse" (an error-rate ratio of 1.5, a median 50% slower). A regression at or above
//! [`SeverityBands::critical`] is [`Severity::Critical`] and asks for an immediate rollback; at or
//! above [`SeverityBands::warning`] it is a [`Severity::Warning`]; below, [`Severity::Info`].
//! A two-sided judge's failure because the canary is *better* is graded at most a warning
//! ([`SeverityBands::classify_failure`]): an improvement never asks for an immediate rollback.
//!
//! ```
//! use serin_canary::judge::Severity;
//! use serin_canary::severity::SeverityBands;
//!
//! let bands = SeverityBands::new(0.2, 1.0)?;
//! assert_eq!(bands.classify(0.1), Severity::Info);
//! assert_eq!(bands.classify(0.5), Severity::Warning);
//! assert_eq!(bands.classify(1.5), Severity::Critical);
//! // Unknown effects (NaN) are treated as critical: a judge that failed without a measurable
//! // effect has seen something it cannot size.
//! assert_eq!(bands.classify(f64::NAN), Severity::Critical);
//! # Ok::<(), serin_canary::Error>(())
//! ```

use serde::{Deserialize, Serialize};

use crate::judge::Severity;
use crate::{Error, Result};

/// Effect-size bands that map a relative regression to a [`Severity`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    deny_unknown_fields,
    try_from = "BandsRepr",
    into = "BandsRepr"
)]
pub struct SeverityBands {
    warning: f64,
    critical: f64,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BandsRepr {
    warning: f64,
    critical: f64,
}

impl TryFrom<BandsRepr> for SeverityBands {
    type Error = Error;
    fn try_from(r: BandsRepr) -> Result<Self> {
        SeverityBands::new(r.warning, r.critical)
    }
}

impl From<SeverityBands> for BandsRepr {
    fn from(b: SeverityBands) -> Self {
        BandsRepr {
            warning: b.warning,
            critical: b.critical,
        }
    }
}

impl Default for SeverityBands {
    /// Any real regression is a warning; doubling (+100%) is critical.
    fn default() -> Self {
        SeverityBands {
            warning: 0.0,
            critical: 1.0,
        }
    }
}

impl SeverityBands {
    /// Bands with a warning at `warning` and critical at `critical` (relative effects, `0.5` =
    /// 50% worse). Both must be finite, `warning >= 0` and `critical >= warning`.
    pub fn new(warning: f64, critical: f64) -> Result<Self> {
        if !(warning.is_finite() && warning >= 0.0) {
            return Err(Error::invalid_config(
                "severity.warning",
                warning,
                "must be a finite relative effect >= 0 (0.2 = 20% worse)",
            ));
        }
        if !(critical.is_finite() && critical >= warning) {
            return Err(Error::invalid_config(
                "severity.critical",
                critical,
                format!("must be finite and at least severity.warning ({warning})"),
            ));
        }
        Ok(SeverityBands { warning, critical })
    }

    /// Bands suited to latency: a warning from any real slowdown, critical from +50%.
    pub fn latency() -> Self {
        SeverityBands {
            warning: 0.0,
            critical: 0.5,
        }
    }

    /// The warning band's lower edge.
    pub fn warning(&self) -> f64 {
        self.warning
    }

    /// The critical band's lower edge.
    pub fn critical(&self) -> f64 {
        self.critical
    }

    /// The severity of a confirmed regression of relative size `effect` (its absolute value is
    /// used). NaN is critical. A failure in the canary's favour is graded by
    /// [`classify_failure`](Self::classify_failure) instead.
    pub fn classify(&self, effect: f64) -> Severity {
        let e = effect.abs();
        if e.is_nan() || e >= self.critical {
            Severity::Critical
        } else if e >= self.warning {
            Severity::Warning
        } else {
            Severity::Info
        }
    }

    /// The severity of a judge's failure of relative size `effect`, where `worse` says whether
    /// the canary was found worse than the baseline or (a two-sided judge) better.
    ///
    /// Worse grades as [`classify`](Self::classify). Better grades by its size too, but at most
    /// [`Severity::Warning`]: fewer errors or lower latency than the baseline beyond the margin
    /// is suspicious (requests dropped before they are counted, a broken probe), and like
    /// Kayenta's `Low` on a two-sided metric it fails the analysis, yet it is no evidence of
    /// harm to users. A critical failure asks for an immediate rollback, which an improvement
    /// never warrants; a warning follows the policy's `onWarning`, so an operator who holds on
    /// warnings gets a hold to look at it instead.
    pub fn classify_failure(&self, effect: f64, worse: bool) -> Severity {
        let severity = self.classify(effect);
        if worse {
            severity
        } else {
            severity.min(Severity::Warning)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_validate_and_name_the_field() {
        let msg = SeverityBands::new(-0.1, 1.0).unwrap_err().to_string();
        assert!(msg.contains("severity.warning"), "{msg}");
        let msg = SeverityBands::new(0.5, 0.2).unwrap_err().to_string();
        assert!(
            msg.contains("severity.critical") && msg.contains("0.2"),
            "{msg}"
        );
        assert!(serde_json::from_str::<SeverityBands>(r#"{"warning":1,"critical":0}"#).is_err());
        let b: SeverityBands = serde_json::from_str(r#"{"warning":0.1,"critical":2}"#).unwrap();
        assert_eq!(b.classify(3.0), Severity::Critical);
    }

    #[test]
    fn classification_is_monotone() {
        let b = SeverityBands::new(0.2, 1.0).unwrap();
        let mut last = Severity::Info;
        for i in 0..300 {
            let s = b.classify(f64::from(i) / 100.0);
            assert!(s >= last);
            last = s;
        }
        assert_eq!(b.classify(-2.0), Severity::Critical);
    }

    #[test]
    fn a_failure_in_the_canarys_favour_is_at_most_a_warning() {
        let b = SeverityBands::new(0.2, 1.0).unwrap();
        assert_eq!(b.classify_failure(-1.0, false), Severity::Warning);
        assert_eq!(b.classify_failure(f64::NAN, false), Severity::Warning);
        assert_eq!(b.classify_failure(-0.1, false), Severity::Info);
        assert_eq!(b.classify_failure(-0.5, false), Severity::Warning);
        assert_eq!(b.classify_failure(1.0, true), Severity::Critical);
        assert_eq!(b.classify_failure(0.1, true), Severity::Info);
    }
}
