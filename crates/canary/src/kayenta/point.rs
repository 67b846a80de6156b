//! How one observation becomes one number: the per-interval point that the Kayenta and threshold
//! judges compare.

use serde::{Deserialize, Serialize};
use serin_signals::Measurement;

use crate::{Error, Result};

/// Which number of an observation a point-based judge looks at.
///
/// Serialized in camelCase: `"errorRate"`, `"successRatePercent"`, `{"latencyQuantile": 0.99}`
/// (a map with one key, in YAML `latencyQuantile: 0.99`; serde's own form of an enum in YAML, a
/// tag such as `!latencyQuantile 0.99`, is read too), `"latencyMean"`, `"value"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quantity {
    /// `errors / requests` of a counts observation, as a fraction (`0.005` = 0.5%).
    ErrorRate,
    /// `100 · (1 − errors / requests)`, as Flagger's built-in `request-success-rate` reports it.
    SuccessRatePercent,
    /// The mean latency in milliseconds of a latency sketch.
    LatencyMean,
    /// A latency quantile in milliseconds (`0.99` = p99, Flagger's `request-duration`).
    LatencyQuantile(f64),
    /// A gauge's value (CPU, memory, a custom metric).
    Value,
}

/// The names of [`Quantity`]'s kinds, as written.
const QUANTITIES: &[&str] = &[
    "errorRate",
    "successRatePercent",
    "latencyMean",
    "latencyQuantile",
    "value",
];

impl Serialize for Quantity {
    /// Unit kinds as their names; a quantile as a map with one key where people read it (a YAML
    /// writer would otherwise write a tag, `!latencyQuantile 0.99`), as serde's own variant in
    /// compact binary forms, whose readers expect it.
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let unit = |s: S, index: u32| {
            s.serialize_unit_variant("Quantity", index, QUANTITIES[index as usize])
        };
        match self {
            Quantity::ErrorRate => unit(s, 0),
            Quantity::SuccessRatePercent => unit(s, 1),
            Quantity::LatencyMean => unit(s, 2),
            Quantity::Value => unit(s, 4),
            Quantity::LatencyQuantile(q) => crate::one_key::write(s, "Quantity", QUANTITIES, 3, q),
        }
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        if d.is_human_readable() {
            d.deserialize_any(QuantityVisitor)
        } else {
            d.deserialize_enum("Quantity", QUANTITIES, QuantityVisitor)
        }
    }
}

struct QuantityVisitor;

impl QuantityVisitor {
    /// The quantity a unit kind names.
    fn unit<E: serde::de::Error>(kind: &str) -> std::result::Result<Quantity, E> {
        match kind {
            "errorRate" => Ok(Quantity::ErrorRate),
            "successRatePercent" => Ok(Quantity::SuccessRatePercent),
            "latencyMean" => Ok(Quantity::LatencyMean),
            "value" => Ok(Quantity::Value),
            "latencyQuantile" => Err(E::custom(
                "a `latencyQuantile` needs its quantile: `{latencyQuantile: 0.99}`",
            )),
            other => Err(E::unknown_variant(other, QUANTITIES)),
        }
    }
}

impl<'de> serde::de::Visitor<'de> for QuantityVisitor {
    type Value = Quantity;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "a quantity: `errorRate`, `successRatePercent`, `latencyMean`, `value`, or a map \
             with one key, `latencyQuantile`",
        )
    }

    /// `errorRate`, `successRatePercent`, `latencyMean` or `value`.
    fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Quantity, E> {
        Self::unit(v)
    }

    /// `{latencyQuantile: 0.99}`: the key names the kind.
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Quantity, A::Error> {
        use serde::de::Error as _;
        let Some(kind) = map.next_key::<String>()? else {
            return Err(A::Error::invalid_length(0, &self));
        };
        let quantity = match kind.as_str() {
            "latencyQuantile" => Quantity::LatencyQuantile(map.next_value()?),
            other => return Err(A::Error::unknown_variant(other, &QUANTITIES[3..4])),
        };
        crate::one_key::no_more(&mut map, "a quantity", &kind)?;
        Ok(quantity)
    }

    /// Serde's own form of an enum: a YAML tag (`!latencyQuantile 0.99`), or a binary variant.
    fn visit_enum<A: serde::de::EnumAccess<'de>>(
        self,
        data: A,
    ) -> std::result::Result<Quantity, A::Error> {
        use serde::de::VariantAccess as _;
        let (kind, value) = data.variant::<String>()?;
        if kind == "latencyQuantile" {
            return value.newtype_variant().map(Quantity::LatencyQuantile);
        }
        let quantity = Self::unit(&kind)?;
        value.unit_variant()?;
        Ok(quantity)
    }
}

impl Quantity {
    /// Checks the quantile of [`Quantity::LatencyQuantile`]; `path` names the field in errors.
    pub fn validate(&self, path: &str) -> Result<()> {
        if let Quantity::LatencyQuantile(q) = self
            && !(0.0..=1.0).contains(q)
        {
            return Err(Error::invalid_config(
                format!("{path}.latencyQuantile"),
                q,
                "a quantile must lie in [0, 1]",
            ));
        }
        Ok(())
    }

    /// The point of `measurement`, or `None` when it holds no usable number: no data, an empty
    /// window, or a measurement of another kind (which is no data for this quantity, never zero).
    pub fn of(&self, measurement: &Measurement) -> Option<f64> {
        let v = match (self, measurement) {
            (Quantity::ErrorRate, Measurement::Counts(c)) => c.error_rate(),
            (Quantity::SuccessRatePercent, Measurement::Counts(c)) => {
                c.error_rate().map(|r| 100.0 * (1.0 - r))
            }
            (Quantity::LatencyMean, Measurement::Latency(s)) => s.mean(),
            (Quantity::LatencyQuantile(q), Measurement::Latency(s)) => s.quantile(*q),
            (Quantity::Value, Measurement::Gauge(g)) => Some(g.value()),
            _ => None,
        };
        v.filter(|x| x.is_finite())
    }

    /// Whether a lower point is the better one: `Some(true)` for error rates and latencies,
    /// `Some(false)` for the success rate, `None` for a gauge, whose good side only its
    /// owner knows.
    pub(crate) fn lower_is_better(&self) -> Option<bool> {
        match self {
            Quantity::ErrorRate | Quantity::LatencyMean | Quantity::LatencyQuantile(_) => {
                Some(true)
            }
            Quantity::SuccessRatePercent => Some(false),
            Quantity::Value => None,
        }
    }

    /// A short name for evidence.
    pub fn describe(&self) -> String {
        match self {
            Quantity::ErrorRate => "error rate".into(),
            Quantity::SuccessRatePercent => "success rate (%)".into(),
            Quantity::LatencyMean => "mean latency (ms)".into(),
            Quantity::LatencyQuantile(q) => format!("p{} latency (ms)", q * 100.0),
            Quantity::Value => "value".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serin_signals::{Counts, Gauge, LatencySketch};

    #[test]
    fn points_come_from_the_matching_measurement_only() {
        let c = Measurement::Counts(Counts::new(200, 2).unwrap());
        assert_eq!(Quantity::ErrorRate.of(&c), Some(0.01));
        assert_eq!(Quantity::SuccessRatePercent.of(&c), Some(99.0));
        assert_eq!(Quantity::LatencyMean.of(&c), None);
        assert_eq!(Quantity::ErrorRate.of(&Measurement::NoData), None);
        assert_eq!(
            Quantity::ErrorRate.of(&Measurement::Counts(Counts::default())),
            None
        );
        let mut s = LatencySketch::new();
        s.add_n(100.0, 10).unwrap();
        let l = Measurement::Latency(s);
        assert!((Quantity::LatencyQuantile(0.99).of(&l).unwrap() - 100.0).abs() <= 1.0);
        assert_eq!(
            Quantity::Value.of(&Measurement::Gauge(Gauge::new(2.5).unwrap())),
            Some(2.5)
        );
    }

    #[test]
    fn quantiles_out_of_range_are_rejected_by_path() {
        let msg = Quantity::LatencyQuantile(1.5)
            .validate("flagger.quantity")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("flagger.quantity.latencyQuantile") && msg.contains("1.5"));
    }
}
