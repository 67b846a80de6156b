//! [`Schedule`]: a value that changes over a track's life, as steps and ramps.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One point of a [`Schedule`]: `value` at `at` after the track started.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Point {
    /// Time since the track was brought up.
    #[serde(with = "serin_signals::duration")]
    pub at: Duration,
    /// The value at that time.
    pub value: f64,
}

/// A value over a track's life: piecewise linear between its points, constant before the first
/// and after the last. Two points at the same time make a step.
///
/// Serialized as a plain number (a constant) or a list of `{at, value}` points:
///
/// ```
/// use std::time::Duration;
/// use serin_sim::Schedule;
///
/// // Errors rise from 0.5% to 5% over ten minutes, starting two minutes after bring-up.
/// let ramp = Schedule::ramp(0.005, 0.05, Duration::from_secs(120), Duration::from_secs(600));
/// assert_eq!(ramp.at(Duration::ZERO), 0.005);
/// assert!((ramp.at(Duration::from_secs(420)) - 0.0275).abs() < 1e-12);
/// assert_eq!(ramp.at(Duration::from_secs(3_600)), 0.05);
///
/// let parsed: Schedule = serde_json::from_str(r#"[{"at": "2m", "value": 0.005}, {"at": "12m", "value": 0.05}]"#)?;
/// assert_eq!(parsed, ramp);
/// assert_eq!(serde_json::from_str::<Schedule>("0.01")?, Schedule::constant(0.01));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "ScheduleRepr", into = "ScheduleRepr")]
pub struct Schedule {
    points: Vec<Point>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ScheduleRepr {
    Constant(f64),
    Points(Vec<Point>),
}

/// Read by hand rather than as an untagged enum, whose one error ("did not match any
/// variant") would hide the value written, the reason, and the point and field at fault.
impl<'de> Deserialize<'de> for ScheduleRepr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Repr;

        impl<'de> serde::de::Visitor<'de> for Repr {
            type Value = ScheduleRepr;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number (a constant value) or a list of points `{at, value}`")
            }

            fn visit_f64<E>(self, v: f64) -> std::result::Result<ScheduleRepr, E> {
                Ok(ScheduleRepr::Constant(v))
            }

            fn visit_i64<E>(self, v: i64) -> std::result::Result<ScheduleRepr, E> {
                Ok(ScheduleRepr::Constant(v as f64))
            }

            fn visit_u64<E>(self, v: u64) -> std::result::Result<ScheduleRepr, E> {
                Ok(ScheduleRepr::Constant(v as f64))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<ScheduleRepr, A::Error> {
                let mut points = Vec::new();
                while let Some(point) = seq.next_element()? {
                    points.push(point);
                }
                Ok(ScheduleRepr::Points(points))
            }
        }

        d.deserialize_any(Repr)
    }
}

impl From<ScheduleRepr> for Schedule {
    fn from(r: ScheduleRepr) -> Self {
        match r {
            ScheduleRepr::Constant(v) => Schedule::constant(v),
            ScheduleRepr::Points(points) => Schedule { points },
        }
    }
}

impl From<Schedule> for ScheduleRepr {
    fn from(s: Schedule) -> Self {
        match s.points.as_slice() {
            [only] if only.at.is_zero() => ScheduleRepr::Constant(only.value),
            _ => ScheduleRepr::Points(s.points),
        }
    }
}

impl Schedule {
    /// The same value all the time.
    pub fn constant(value: f64) -> Self {
        Schedule {
            points: vec![Point {
                at: Duration::ZERO,
                value,
            }],
        }
    }

    /// `before` until `at`, then `after`.
    pub fn step(before: f64, after: f64, at: Duration) -> Self {
        Schedule {
            points: vec![Point { at, value: before }, Point { at, value: after }],
        }
    }

    /// `from` until `start`, then a straight line to `to` over `over`, then `to`.
    pub fn ramp(from: f64, to: f64, start: Duration, over: Duration) -> Self {
        Schedule {
            points: vec![
                Point {
                    at: start,
                    value: from,
                },
                Point {
                    at: start.saturating_add(over),
                    value: to,
                },
            ],
        }
    }

    /// A schedule through `points`, which must be in time order (checked by
    /// [`validate`](Schedule::validate)).
    pub fn points(points: impl IntoIterator<Item = Point>) -> Self {
        Schedule {
            points: points.into_iter().collect(),
        }
    }

    /// The points, in time order.
    pub fn as_points(&self) -> &[Point] {
        &self.points
    }

    /// The value `since` after the track started.
    pub fn at(&self, since: Duration) -> f64 {
        let Some(first) = self.points.first() else {
            return 0.0;
        };
        if since < first.at {
            return first.value;
        }
        // The last point at or before `since`, and the one after it.
        let i = self.points.partition_point(|p| p.at <= since);
        let (Some(a), Some(b)) = (self.points.get(i.wrapping_sub(1)), self.points.get(i)) else {
            return self.points.last().map_or(first.value, |p| p.value);
        };
        let span = b.at.saturating_sub(a.at).as_secs_f64();
        if span <= 0.0 {
            return b.value;
        }
        let f = since.saturating_sub(a.at).as_secs_f64() / span;
        a.value + (b.value - a.value) * f
    }

    /// Checks that there is at least one point, that points are in time order and that every
    /// value is finite and within `min ..= max`; `field` names the schedule in the error.
    pub fn validate(&self, field: &str, min: f64, max: f64) -> Result<()> {
        if self.points.is_empty() {
            return Err(Error::invalid(field, "[]", "needs at least one point"));
        }
        for (i, p) in self.points.iter().enumerate() {
            if !p.value.is_finite() || p.value < min || p.value > max {
                return Err(Error::invalid(
                    format!("{field}[{i}].value"),
                    p.value,
                    format!("must be a finite number in {min} ..= {max}"),
                ));
            }
            if let Some(prev) = i.checked_sub(1).and_then(|j| self.points.get(j))
                && p.at < prev.at
            {
                return Err(Error::invalid(
                    format!("{field}[{i}].at"),
                    format!("{:?}", p.at),
                    format!("comes before the previous point ({:?})", prev.at),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn steps_jump_and_ramps_interpolate() {
        let step = Schedule::step(0.001, 0.2, S(60));
        assert_eq!(step.at(S(59)), 0.001);
        assert_eq!(step.at(S(60)), 0.2);
        assert_eq!(step.at(S(6_000)), 0.2);
        let ramp = Schedule::ramp(1.0, 3.0, S(10), S(20));
        assert_eq!(ramp.at(S(0)), 1.0);
        assert_eq!(ramp.at(S(20)), 2.0);
        assert_eq!(ramp.at(S(30)), 3.0);
        assert_eq!(Schedule::constant(0.5).at(S(1_000_000)), 0.5);
    }

    #[test]
    fn validation_names_the_point() {
        let bad = Schedule::points([
            Point {
                at: S(10),
                value: 0.1,
            },
            Point {
                at: S(5),
                value: 0.2,
            },
        ]);
        let msg = bad.validate("errorRate", 0.0, 1.0).unwrap_err().to_string();
        assert!(msg.contains("errorRate[1].at"), "{msg}");
        let msg = Schedule::constant(1.5)
            .validate("errorRate", 0.0, 1.0)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("errorRate[0].value") && msg.contains("1.5"),
            "{msg}"
        );
        assert!(Schedule::points([]).validate("x", 0.0, 1.0).is_err());
        // Reading an unchecked, unordered schedule never panics.
        assert!(bad.at(S(7)).is_finite());
        assert!(
            Schedule::constant(f64::NAN)
                .validate("x", 0.0, 1.0)
                .is_err()
        );
    }

    #[test]
    fn serde_round_trips() {
        for s in [
            Schedule::constant(0.25),
            Schedule::ramp(0.005, 0.05, S(0), S(600)),
        ] {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(serde_json::from_str::<Schedule>(&json).unwrap(), s);
        }
        assert!(serde_json::from_str::<Schedule>(r#"[{"at":"1s","value":1,"x":2}]"#).is_err());
    }
}
