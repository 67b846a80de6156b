//! Serde for `f64` values that may be NaN or infinite (a ratio over zero errors, an unbounded
//! interval). JSON has no literals for them, and `serde_json` writes them as `null`, which it then
//! refuses to read back as a number: a journal or report holding one would not replay. This
//! module writes finite values as numbers and the others as the strings `"NaN"`, `"inf"` and
//! `"-inf"`, and reads numbers, those strings and `null` (as NaN, for records written before).
//!
//! ```
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! struct Bound {
//!     #[serde(with = "serin_signals::float")]
//!     upper: f64,
//! }
//!
//! let json = serde_json::to_string(&Bound { upper: f64::INFINITY }).unwrap();
//! assert_eq!(json, r#"{"upper":"inf"}"#);
//! let back: Bound = serde_json::from_str(&json).unwrap();
//! assert_eq!(back.upper, f64::INFINITY);
//! let nan: Bound = serde_json::from_str(r#"{"upper":null}"#).unwrap();
//! assert!(nan.upper.is_nan());
//! ```

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

/// Writes `v` as a number when finite, else as `"NaN"`, `"inf"` or `"-inf"`.
pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_finite() {
        s.serialize_f64(*v)
    } else if v.is_nan() {
        s.serialize_str("NaN")
    } else if *v > 0.0 {
        s.serialize_str("inf")
    } else {
        s.serialize_str("-inf")
    }
}

/// Reads a number, `"NaN"`, `"inf"`, `"-inf"` (also `"+inf"`, `"infinity"`), or `null` as NaN.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    d.deserialize_any(FloatVisitor)
}

struct FloatVisitor;

impl Visitor<'_> for FloatVisitor {
    type Value = f64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number, \"NaN\", \"inf\", \"-inf\" or null")
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        match v.to_ascii_lowercase().as_str() {
            "nan" => Ok(f64::NAN),
            "inf" | "+inf" | "infinity" | "+infinity" => Ok(f64::INFINITY),
            "-inf" | "-infinity" => Ok(f64::NEG_INFINITY),
            _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
        }
    }

    fn visit_unit<E: de::Error>(self) -> Result<f64, E> {
        Ok(f64::NAN)
    }

    fn visit_none<E: de::Error>(self) -> Result<f64, E> {
        Ok(f64::NAN)
    }
}

/// The same for `Option<f64>`: `None` is written as `null` and `null` reads back as `None`.
pub mod option {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `None` as `null`, a value as [`super::serialize`] does.
    pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(x) => super::serialize(x, s),
            None => s.serialize_none(),
        }
    }

    /// Reads `null` as `None`, anything else as [`super::deserialize`] does.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super")] f64);
        Option::<Wrapped>::deserialize(d).map(|w| w.map(|Wrapped(x)| x))
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize, Deserialize)]
    struct Both {
        #[serde(with = "super")]
        x: f64,
        #[serde(with = "super::option", default)]
        y: Option<f64>,
    }

    #[test]
    fn every_float_round_trips_through_json() {
        for x in [
            0.0,
            -1.5,
            1e300,
            f64::MAX,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ] {
            for y in [None, Some(x), Some(f64::NAN)] {
                let json = serde_json::to_string(&Both { x, y }).expect("json");
                let back: Both = serde_json::from_str(&json).expect(&json);
                assert!(back.x == x || (x.is_nan() && back.x.is_nan()), "{json}");
                match (y, back.y) {
                    (None, None) => {}
                    (Some(a), Some(b)) => assert!(a == b || (a.is_nan() && b.is_nan()), "{json}"),
                    other => panic!("{json}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn other_strings_are_refused_with_what_was_expected() {
        let err = serde_json::from_str::<Both>(r#"{"x":"lots"}"#)
            .expect_err("refused")
            .to_string();
        assert!(err.contains("lots") && err.contains("\"inf\""), "{err}");
    }
}
