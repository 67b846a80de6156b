//! [`Load`]: how many requests per second the simulated service receives in total.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The most requests per second a simulated service may receive, at any time: a diurnal
/// load's peak too, not only its mean.
pub const MAX_RPS: f64 = 1.0e6;

/// The total request rate of the simulated service, before the split divides it among tracks.
/// Each second's count is Poisson around the rate.
///
/// ```
/// use std::time::Duration;
/// use serin_sim::Load;
///
/// let flat = Load::constant(200.0);
/// assert_eq!(flat.rate_at(Duration::from_secs(3_600)), 200.0);
///
/// // 100 rps on average, 150 at 14:00 after the start, 50 twelve hours later.
/// let day = Load::diurnal(100.0, 0.5, Duration::from_secs(14 * 3_600));
/// assert!((day.rate_at(Duration::from_secs(14 * 3_600)) - 150.0).abs() < 1e-9);
/// assert!((day.rate_at(Duration::from_secs(2 * 3_600)) - 50.0).abs() < 1e-9);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind", deny_unknown_fields)]
pub enum Load {
    /// The same rate all the time.
    Constant {
        /// Requests per second.
        rps: f64,
    },
    /// A daily cycle: `meanRps × (1 + amplitude × cos(2π (t − peakAt) / period))`, with `t`
    /// counted from the world's start. Its peak, `meanRps × (1 + amplitude)`, must not exceed
    /// [`MAX_RPS`]: a cycle that would is refused rather than flattened, so the load simulated
    /// is always the one written.
    #[serde(rename_all = "camelCase")]
    Diurnal {
        /// The average requests per second.
        mean_rps: f64,
        /// How far the rate swings around the mean, as a fraction of it (`0.0 ..= 1.0`).
        amplitude: f64,
        /// When the peak comes, after the world's start (modulo the period).
        #[serde(with = "serin_signals::duration")]
        peak_at: Duration,
        /// The length of one cycle (a day by default).
        #[serde(with = "serin_signals::duration", default = "one_day")]
        period: Duration,
    },
}

fn one_day() -> Duration {
    Duration::from_secs(86_400)
}

impl Default for Load {
    fn default() -> Self {
        Load::Constant { rps: 100.0 }
    }
}

impl Load {
    /// A constant rate.
    pub fn constant(rps: f64) -> Self {
        Load::Constant { rps }
    }

    /// A daily cycle around `mean_rps`, peaking `peak_at` after the start.
    pub fn diurnal(mean_rps: f64, amplitude: f64, peak_at: Duration) -> Self {
        Load::Diurnal {
            mean_rps,
            amplitude,
            peak_at,
            period: one_day(),
        }
    }

    /// Requests per second `since` after the world's start.
    pub fn rate_at(&self, since: Duration) -> f64 {
        match *self {
            Load::Constant { rps } => rps,
            Load::Diurnal {
                mean_rps,
                amplitude,
                peak_at,
                period,
            } => {
                let period = period.as_secs_f64().max(1e-3);
                let phase = (since.as_secs_f64() - peak_at.as_secs_f64()) / period;
                (mean_rps * (1.0 + amplitude * (std::f64::consts::TAU * phase).cos())).max(0.0)
            }
        }
    }

    /// Checks the rates (a diurnal load's peak included), amplitude and period; `field` names
    /// the load in errors.
    pub fn validate(&self, field: &str) -> Result<()> {
        let rate_ok = |r: f64| r.is_finite() && (0.0..=MAX_RPS).contains(&r);
        match *self {
            Load::Constant { rps } if !rate_ok(rps) => Err(Error::invalid(
                format!("{field}.rps"),
                rps,
                format!("must be a number of requests per second in 0 ..= {MAX_RPS}"),
            )),
            Load::Diurnal { mean_rps, .. } if !rate_ok(mean_rps) => Err(Error::invalid(
                format!("{field}.meanRps"),
                mean_rps,
                format!("must be a number of requests per second in 0 ..= {MAX_RPS}"),
            )),
            Load::Diurnal { amplitude, .. }
                if !amplitude.is_finite() || !(0.0..=1.0).contains(&amplitude) =>
            {
                Err(Error::invalid(
                    format!("{field}.amplitude"),
                    amplitude,
                    "must be a fraction of the mean in 0 ..= 1",
                ))
            }
            Load::Diurnal { period, .. } if period < Duration::from_secs(1) => Err(Error::invalid(
                format!("{field}.period"),
                format!("{period:?}"),
                "must be at least one second",
            )),
            Load::Diurnal {
                mean_rps,
                amplitude,
                ..
            } if mean_rps * (1.0 + amplitude) > MAX_RPS => Err(Error::invalid(
                format!("{field}.meanRps"),
                mean_rps,
                format!(
                    "with {field}.amplitude {amplitude} peaks at {} requests per second, above \
                     {MAX_RPS}; lower the mean or the amplitude",
                    mean_rps * (1.0 + amplitude)
                ),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_forms_and_validation() {
        let l: Load = serde_json::from_str(r#"{"kind": "constant", "rps": 50}"#).unwrap();
        assert_eq!(l, Load::constant(50.0));
        let d: Load = serde_json::from_str(
            r#"{"kind": "diurnal", "meanRps": 80, "amplitude": 0.3, "peakAt": "13h"}"#,
        )
        .unwrap();
        assert_eq!(d, Load::diurnal(80.0, 0.3, Duration::from_secs(13 * 3_600)));
        assert!(serde_json::from_str::<Load>(r#"{"kind": "constant", "rps": 1, "x": 2}"#).is_err());
        let msg = Load::constant(-1.0)
            .validate("load")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("load.rps") && msg.contains("-1"), "{msg}");
        let msg = Load::diurnal(10.0, 1.5, Duration::ZERO)
            .validate("load")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("load.amplitude"), "{msg}");
    }

    /// A diurnal load is refused when its peak, not only its mean, is above [`MAX_RPS`], and
    /// the refusal names both fields with their values.
    #[test]
    fn a_diurnal_peak_above_the_limit_is_refused() {
        let peak_at = Duration::from_secs(3_600);
        let too_high = Load::diurnal(MAX_RPS * 0.8, 0.5, peak_at);
        let msg = too_high.validate("load").unwrap_err().to_string();
        for part in ["load.meanRps", "800000", "load.amplitude", "0.5", "1200000"] {
            assert!(msg.contains(part), "{part}: {msg}");
        }
        assert!(
            Load::diurnal(MAX_RPS / 2.0, 1.0, peak_at)
                .validate("load")
                .is_ok()
        );
        assert!(
            Load::diurnal(MAX_RPS, 0.0, peak_at)
                .validate("load")
                .is_ok()
        );
    }
}
