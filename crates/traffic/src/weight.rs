//! [`Weight`]: a share of traffic, held exactly in basis points.
//!
//! Weights are integers so that a split's weights add up to exactly [`Weight::FULL`] at every
//! step of a plan — no floating-point drift, no "99.99999%". One basis point is 0.01%; whole
//! percentages, as the brief and most routers write them (`10` = 10%), have helpers. The
//! serialized form is the percentage, with up to two decimals (`10`, `12.5`, `0.01`).

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// A share of traffic in basis points: 0 ..= 10 000, where 10 000 is 100%.
///
/// ```
/// use serin_traffic::Weight;
///
/// let w = Weight::from_percent(10)?;
/// assert_eq!(w.bps(), 1_000);
/// assert_eq!(w.to_string(), "10%");
/// assert_eq!(Weight::from_bps(1_250)?.to_string(), "12.5%");
/// assert!(Weight::from_percent(101).is_err());
/// # Ok::<(), serin_traffic::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Weight(u16);

impl Weight {
    /// The number of basis points in 100%.
    pub const TOTAL_BPS: u16 = 10_000;
    /// No traffic.
    pub const ZERO: Weight = Weight(0);
    /// All traffic (100%).
    pub const FULL: Weight = Weight(Self::TOTAL_BPS);
    /// The smallest non-zero weight: one basis point (0.01%).
    pub const ONE_BPS: Weight = Weight(1);

    /// A weight of `bps` basis points; more than 10 000 (100%) is refused.
    pub fn from_bps(bps: u16) -> Result<Self> {
        Self::from_bps_named("weight", u64::from(bps))
    }

    /// A weight of `percent` whole percent; more than 100 is refused.
    pub fn from_percent(percent: u8) -> Result<Self> {
        Self::from_percent_f64_named("weight", f64::from(percent))
    }

    /// A weight from a percentage with at most two decimals (`12.5`, `0.01`); negative, non-finite,
    /// over 100 or finer than one basis point is refused.
    pub fn from_percent_f64(percent: f64) -> Result<Self> {
        Self::from_percent_f64_named("weight", percent)
    }

    /// The weight in basis points.
    pub const fn bps(self) -> u16 {
        self.0
    }

    /// The weight in percent (`12.5`). Exact for display; use [`Weight::bps`] for arithmetic.
    pub fn as_percent(self) -> f64 {
        f64::from(self.0) / 100.0
    }

    /// Whether this is zero.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// The rest of 100% (`FULL - self`).
    pub const fn complement(self) -> Weight {
        Weight(Self::TOTAL_BPS - self.0)
    }

    /// `self + other`, capped at 100%.
    pub fn saturating_add(self, other: Weight) -> Weight {
        Weight(self.0.saturating_add(other.0).min(Self::TOTAL_BPS))
    }

    /// This weight as a granularity — the smallest step of weight a router can express — or an
    /// error naming `field`: it must be more than zero and divide 100% evenly (1 bps, 1%, 5%,
    /// 100%, ...), so that weights on its multiples can add up to exactly 100%.
    pub(crate) fn as_granularity(self, field: &str) -> Result<Self> {
        if self.is_zero() || !Self::TOTAL_BPS.is_multiple_of(self.0) {
            return Err(Error::invalid(
                field,
                self,
                "must be more than 0% and divide 100% evenly",
            ));
        }
        Ok(self)
    }

    pub(crate) fn from_bps_named(field: &str, bps: u64) -> Result<Self> {
        match u16::try_from(bps) {
            Ok(b) if b <= Self::TOTAL_BPS => Ok(Weight(b)),
            _ => Err(Error::invalid(
                field,
                format!("{bps} bps"),
                "must be at most 10000 basis points (100%)",
            )),
        }
    }

    pub(crate) fn from_percent_f64_named(field: &str, percent: f64) -> Result<Self> {
        if !percent.is_finite() {
            return Err(Error::invalid(
                field,
                percent,
                "must be a finite percentage",
            ));
        }
        if percent < 0.0 {
            return Err(Error::invalid(field, percent, "must not be negative"));
        }
        if percent > 100.0 {
            return Err(Error::invalid(field, percent, "must be at most 100%"));
        }
        // Two decimals as a float carry its rounding, never more: a share finer than a basis
        // point (`0.000000001`) is refused, not rounded away to 0%. The rounding is a few units
        // in the last place of 100%, the largest operand a percentage is computed from, not of
        // the result: `100.0 - 97.3` is `2.700000000000003` and stands for 2.7%. A share that
        // rounds to 0 bps takes only an exact 0: any share below a basis point (`1e-18`) is
        // still a share asked for, and is refused rather than taken as 0%.
        let scaled = percent * 100.0;
        let bps = scaled.round();
        let rounding = if bps == 0.0 {
            0.0
        } else {
            4.0 * f64::EPSILON * f64::from(Self::TOTAL_BPS)
        };
        if (scaled - bps).abs() > rounding {
            return Err(Error::invalid(
                field,
                percent,
                "must have at most two decimals (the unit is one basis point, 0.01%)",
            ));
        }
        // `bps` is a whole number in 0 ..= 10 000 here, so the conversion is exact.
        Self::from_bps_named(field, bps as u64)
    }
}

impl fmt::Display for Weight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.0 / 100, self.0 % 100);
        match frac {
            0 => write!(f, "{whole}%"),
            _ if frac % 10 == 0 => write!(f, "{whole}.{}%", frac / 10),
            _ => write!(f, "{whole}.{frac:02}%"),
        }
    }
}

/// Written as the percentage: an integer when whole (`10`), otherwise a decimal (`12.5`).
impl Serialize for Weight {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_multiple_of(100) {
            s.serialize_u64(u64::from(self.0 / 100))
        } else {
            s.serialize_f64(self.as_percent())
        }
    }
}

/// Read from a percentage (`10`, `12.5`).
impl<'de> Deserialize<'de> for Weight {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let percent = d.deserialize_any(PercentVisitor)?;
        Weight::from_percent_f64(percent).map_err(de::Error::custom)
    }
}

/// A percentage as read from config, before it is checked; lets the containing type's
/// validation name the field (`strategy.increment`) in its error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Percent(pub(crate) f64);

impl Percent {
    pub(crate) fn weight(self, field: &str) -> Result<Weight> {
        Weight::from_percent_f64_named(field, self.0)
    }
}

impl From<Weight> for Percent {
    fn from(w: Weight) -> Self {
        Percent(w.as_percent())
    }
}

impl Serialize for Percent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.fract() == 0.0 && (0.0..=100.0).contains(&self.0) {
            s.serialize_u64(self.0 as u64)
        } else {
            s.serialize_f64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PercentVisitor).map(Percent)
    }
}

struct PercentVisitor;

impl Visitor<'_> for PercentVisitor {
    type Value = f64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a percentage between 0 and 100, such as 10 or 12.5")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        // Anything above 100 is refused by the caller, which names the field.
        Ok(v as f64)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_and_bps_agree() {
        assert_eq!(
            Weight::from_percent(10).unwrap(),
            Weight::from_bps(1000).unwrap()
        );
        assert_eq!(Weight::from_percent_f64(12.34).unwrap().bps(), 1234);
        assert_eq!(Weight::from_percent_f64(0.01).unwrap(), Weight::ONE_BPS);
        assert_eq!(Weight::FULL.complement(), Weight::ZERO);
        assert_eq!(
            Weight::from_percent(70)
                .unwrap()
                .saturating_add(Weight::from_percent(50).unwrap()),
            Weight::FULL
        );
    }

    #[test]
    fn out_of_range_and_too_fine_are_refused_with_reasons() {
        for (p, why) in [
            (100.5, "at most 100%"),
            (-1.0, "negative"),
            (f64::NAN, "finite"),
            (0.001, "two decimals"),
            // Finer than the old absolute tolerance of a millionth of a basis point: refused,
            // not rounded away to 0%, nor to 99.99%.
            (0.000_000_001, "two decimals"),
            (99.989_999_999_9, "two decimals"),
        ] {
            let msg = Weight::from_percent_f64(p).unwrap_err().to_string();
            assert!(msg.contains("weight") && msg.contains(why), "{p}: {msg}");
        }
        // Two decimals as written or computed keep their float rounding and are taken.
        for (p, bps) in [
            (0.07, 7),
            (12.34, 1_234),
            (99.99, 9_999),
            (100.0 - 33.33, 6_667),
        ] {
            assert_eq!(Weight::from_percent_f64(p).map(Weight::bps), Ok(bps), "{p}");
        }
        let json = r#"{"backends":[{"name":"a","weight":99.999999999},{"name":"b","weight":0.000000001}]}"#;
        assert!(serde_json::from_str::<crate::TrafficSplit>(json).is_err());
        assert!(Weight::from_bps(10_001).is_err());
        assert!(Weight::from_percent(101).is_err());
    }

    /// The rest of 100% computed from a weight (`100.0 - 97.3`) carries the rounding of 100, not
    /// of the smaller result: it is taken as the two decimals it stands for.
    #[test]
    fn a_complement_computed_from_two_decimals_is_taken() {
        for (canary, rest) in [
            (97.3, 270),
            (99.7, 30),
            (99.99, 1),
            (90.1, 990),
            (33.33, 6_667),
        ] {
            assert_eq!(
                Weight::from_percent_f64(100.0 - canary).map(Weight::bps),
                Ok(rest),
                "100 - {canary}"
            );
        }
        assert_eq!(Weight::from_percent_f64(0.1 + 0.2).map(Weight::bps), Ok(30));
    }

    /// However small a share is, it is a share asked for: below the float rounding of a
    /// basis point it is still refused, not taken as 0%, so the split holds what was written.
    #[test]
    fn a_share_below_the_rounding_of_a_basis_point_is_refused_not_zero() {
        for p in [1e-16, 1e-18, 1e-300, 5e-324] {
            let msg = Weight::from_percent_f64(p)
                .map(Weight::bps)
                .unwrap_err()
                .to_string();
            assert!(
                msg.contains("weight") && msg.contains("two decimals"),
                "{p}: {msg}"
            );
        }
        let json = r#"{"backends":[{"name":"a","weight":100},{"name":"b","weight":1e-18}]}"#;
        let msg = serde_json::from_str::<crate::TrafficSplit>(json)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("backends[1].weight"), "{msg}");
        assert_eq!(Weight::from_percent_f64(0.0), Ok(Weight::ZERO));
        assert_eq!(Weight::from_percent_f64(-0.0), Ok(Weight::ZERO));
    }

    #[test]
    fn displays_like_a_person_writes_it() {
        for (bps, s) in [
            (0, "0%"),
            (1000, "10%"),
            (1250, "12.5%"),
            (1, "0.01%"),
            (10_000, "100%"),
        ] {
            assert_eq!(Weight::from_bps(bps).unwrap().to_string(), s);
        }
    }

    #[test]
    fn serializes_as_percent_and_round_trips_every_value() {
        assert_eq!(
            serde_json::to_string(&Weight::from_bps(1000).unwrap()).unwrap(),
            "10"
        );
        assert_eq!(
            serde_json::to_string(&Weight::from_bps(1250).unwrap()).unwrap(),
            "12.5"
        );
        for bps in 0..=Weight::TOTAL_BPS {
            let w = Weight::from_bps(bps).unwrap();
            let back: Weight = serde_json::from_str(&serde_json::to_string(&w).unwrap()).unwrap();
            assert_eq!(back, w);
        }
        assert!(serde_json::from_str::<Weight>("150").is_err());
        assert!(serde_json::from_str::<Weight>("-3").is_err());
        assert!(serde_json::from_str::<Weight>("\"10\"").is_err());
    }
}
