//! Comparison [`Operator`]s for threshold triggers, written as Prometheus and the brief do.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How an observed value is compared with a threshold: the condition is *breached* when
/// `observed <op> threshold` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Operator {
    /// `observed > threshold`.
    Gt,
    /// `observed >= threshold`.
    Ge,
    /// `observed < threshold`.
    Lt,
    /// `observed <= threshold`.
    Le,
    /// `observed == threshold` (exact float equality: meant for counters and flags).
    Eq,
    /// `observed != threshold`.
    Ne,
}

impl Operator {
    /// Whether `observed <op> threshold` holds. NaN never breaches (it is no data, not a value).
    pub fn breached(self, observed: f64, threshold: f64) -> bool {
        if observed.is_nan() {
            return false;
        }
        match self {
            Operator::Gt => observed > threshold,
            Operator::Ge => observed >= threshold,
            Operator::Lt => observed < threshold,
            Operator::Le => observed <= threshold,
            Operator::Eq => observed == threshold,
            Operator::Ne => observed != threshold,
        }
    }

    /// Whether `a` is a strictly less severe level than `b` for this operator (a warn level must
    /// be reached before the rollback level): `a < b` for `gt`/`ge`, `a > b` for `lt`/`le`.
    /// Equality operators have no ordering, so no warn level fits them.
    pub(crate) fn less_severe(self, a: f64, b: f64) -> bool {
        match self {
            Operator::Gt | Operator::Ge => a < b,
            Operator::Lt | Operator::Le => a > b,
            Operator::Eq | Operator::Ne => false,
        }
    }

    /// The operator's symbol, for evidence.
    pub fn symbol(self) -> &'static str {
        match self {
            Operator::Gt => ">",
            Operator::Ge => ">=",
            Operator::Lt => "<",
            Operator::Le => "<=",
            Operator::Eq => "==",
            Operator::Ne => "!=",
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_operator_compares_as_named() {
        let cases = [
            (Operator::Gt, [false, false, true]),
            (Operator::Ge, [false, true, true]),
            (Operator::Lt, [true, false, false]),
            (Operator::Le, [true, true, false]),
            (Operator::Eq, [false, true, false]),
            (Operator::Ne, [true, false, true]),
        ];
        for (op, want) in cases {
            let got = [0.5, 1.0, 1.5].map(|v| op.breached(v, 1.0));
            assert_eq!(got, want, "{op:?}");
            assert!(!op.breached(f64::NAN, 1.0), "{op:?} with NaN");
        }
    }

    #[test]
    fn operators_read_from_the_brief_spelling() {
        for (s, op) in [("\"gt\"", Operator::Gt), ("\"ne\"", Operator::Ne)] {
            assert_eq!(serde_json::from_str::<Operator>(s).unwrap(), op);
        }
        assert!(serde_json::from_str::<Operator>("\">\"").is_err());
    }

    #[test]
    fn severity_order_follows_the_operator() {
        assert!(Operator::Gt.less_severe(0.1, 0.2));
        assert!(Operator::Lt.less_severe(500.0, 100.0));
        assert!(!Operator::Eq.less_severe(1.0, 2.0));
    }
}
