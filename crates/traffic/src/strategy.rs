//! Switching strategies — how fast traffic moves to the new backend: [`Strategy::Immediate`],
//! [`Strategy::Gradual`] and [`Strategy::Weighted`]. A strategy is turned into a
//! [`Plan`](crate::Plan) by [`Plan::shift`](crate::Plan::shift).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration;
use crate::error::{Error, Result};
use crate::weight::{Percent, Weight};

/// How traffic moves from the current split to all-on-the-target.
///
/// Serialized with a `type` tag; weights in percent, durations as human strings or milliseconds:
///
/// ```
/// use std::time::Duration;
/// use serin_traffic::{Pause, Strategy, Weight};
///
/// let gradual: Strategy =
///     serde_json::from_str(r#"{"type": "gradual", "increment": 10, "interval": "30s"}"#)?;
/// assert_eq!(gradual, Strategy::gradual(Weight::from_percent(10)?, Duration::from_secs(30))?);
///
/// let weighted: Strategy = serde_json::from_str(r#"{"type": "weighted", "steps": [
///     {"weight": 5, "duration": "5m"},
///     {"weight": 25, "duration": 300000, "pause": "untilApproved"},
///     {"weight": 50, "pause": {"timed": "10m"}}
/// ]}"#)?;
/// let Strategy::Weighted { steps } = &weighted else { unreachable!() };
/// assert_eq!(steps[1].pause, Pause::UntilApproved);
///
/// // An increment of 0 is refused, naming the field.
/// let err = serde_json::from_str::<Strategy>(r#"{"type": "gradual", "increment": 0, "interval": "30s"}"#)
///     .unwrap_err();
/// assert!(err.to_string().contains("strategy.increment"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawStrategy", into = "RawStrategy")]
pub enum Strategy {
    /// All traffic at once: one step (blue-green's switch).
    Immediate,
    /// `increment` more on the target every `interval` (e.g. 10% every 30s) until 100%.
    Gradual {
        /// How much weight each step adds (more than 0%).
        increment: Weight,
        /// How long each step holds before the next.
        interval: Duration,
    },
    /// Explicit steps of increasing weight on the target, each held for a while and optionally
    /// paused for approval (Argo Rollouts' `setWeight` + `pause`). After the last step the
    /// target gets 100%.
    Weighted {
        /// The steps, strictly increasing in weight, the first above 0%.
        steps: Vec<WeightedStep>,
    },
}

impl Strategy {
    /// [`Strategy::Immediate`].
    pub fn immediate() -> Self {
        Strategy::Immediate
    }

    /// [`Strategy::Gradual`], checked.
    pub fn gradual(increment: Weight, interval: Duration) -> Result<Self> {
        let s = Strategy::Gradual {
            increment,
            interval,
        };
        s.validate()?;
        Ok(s)
    }

    /// [`Strategy::Weighted`], checked.
    pub fn weighted(steps: Vec<WeightedStep>) -> Result<Self> {
        let s = Strategy::Weighted { steps };
        s.validate()?;
        Ok(s)
    }

    /// Checks the strategy, naming the field at fault (`strategy.increment`,
    /// `strategy.steps[2].weight`): the increment must be more than 0%; weighted steps must be
    /// present, more than 0% and strictly increasing.
    pub fn validate(&self) -> Result<()> {
        match self {
            Strategy::Immediate => Ok(()),
            Strategy::Gradual { increment, .. } => {
                if increment.is_zero() {
                    Err(Error::invalid(
                        "strategy.increment",
                        increment,
                        "must be more than 0%",
                    ))
                } else {
                    Ok(())
                }
            }
            Strategy::Weighted { steps } => {
                if steps.is_empty() {
                    return Err(Error::invalid(
                        "strategy.steps",
                        "[]",
                        "a weighted strategy needs at least one step",
                    ));
                }
                // Steps only rise, so only the first can be at 0%. Such a step moves no traffic
                // and a plan skips it as already passed — its hold and approval pause with it —
                // so it is refused rather than silently dropped.
                if let Some(first) = steps.first()
                    && first.weight.is_zero()
                {
                    return Err(Error::invalid(
                        "strategy.steps[0].weight",
                        first.weight,
                        "must be more than 0% (a step at 0% moves no traffic, so a plan would \
                         skip it together with its hold and pause)",
                    ));
                }
                for (i, pair) in steps.windows(2).enumerate() {
                    if let [prev, next] = pair
                        && next.weight <= prev.weight
                    {
                        return Err(Error::invalid(
                            format!("strategy.steps[{}].weight", i + 1),
                            next.weight,
                            format!(
                                "must be greater than the previous step's {} (steps only move \
                                 traffic toward the target)",
                                prev.weight
                            ),
                        ));
                    }
                }
                Ok(())
            }
        }
    }
}

/// One step of a [`Strategy::Weighted`]: put `weight` on the target, hold it for `duration`,
/// then pause as `pause` says.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WeightedStep {
    /// The target's weight during this step.
    pub weight: Weight,
    /// How long the step holds before its pause (zero if omitted).
    pub duration: Duration,
    /// What happens after the hold.
    pub pause: Pause,
}

impl WeightedStep {
    /// A step at `weight`, held for `duration`, with no pause.
    pub fn new(weight: Weight, duration: Duration) -> Self {
        WeightedStep {
            weight,
            duration,
            pause: Pause::None,
        }
    }

    /// The same step followed by `pause`.
    pub fn with_pause(mut self, pause: Pause) -> Self {
        self.pause = pause;
        self
    }
}

/// What a [`WeightedStep`] does after holding: go on, wait longer, or wait for approval.
///
/// Serialized as `"none"`, `"untilApproved"` or `{"timed": "5m"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Pause {
    /// Go on to the next step.
    #[default]
    None,
    /// Wait this much longer, then go on.
    Timed(#[serde(with = "duration")] Duration),
    /// Wait until someone approves (a person, or the canary analysis), then go on.
    UntilApproved,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
enum RawStrategy {
    // A struct variant, not a unit one: serde ignores every other key of an internally tagged
    // unit variant, so `{"type": "immediate", "interval": "30s"}` would pass unnoticed.
    Immediate {},
    Gradual {
        increment: Percent,
        #[serde(with = "duration")]
        interval: Duration,
    },
    Weighted {
        steps: Vec<RawStep>,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawStep {
    weight: Percent,
    #[serde(default, with = "duration")]
    duration: Duration,
    #[serde(default)]
    pause: Pause,
}

impl TryFrom<RawStrategy> for Strategy {
    type Error = Error;
    fn try_from(raw: RawStrategy) -> Result<Self> {
        let s = match raw {
            RawStrategy::Immediate {} => Strategy::Immediate,
            RawStrategy::Gradual {
                increment,
                interval,
            } => Strategy::Gradual {
                increment: increment.weight("strategy.increment")?,
                interval,
            },
            RawStrategy::Weighted { steps } => Strategy::Weighted {
                steps: steps
                    .into_iter()
                    .enumerate()
                    .map(|(i, s)| {
                        Ok(WeightedStep {
                            weight: s.weight.weight(&format!("strategy.steps[{i}].weight"))?,
                            duration: s.duration,
                            pause: s.pause,
                        })
                    })
                    .collect::<Result<_>>()?,
            },
        };
        s.validate()?;
        Ok(s)
    }
}

impl From<Strategy> for RawStrategy {
    fn from(s: Strategy) -> Self {
        match s {
            Strategy::Immediate => RawStrategy::Immediate {},
            Strategy::Gradual {
                increment,
                interval,
            } => RawStrategy::Gradual {
                increment: increment.into(),
                interval,
            },
            Strategy::Weighted { steps } => RawStrategy::Weighted {
                steps: steps
                    .into_iter()
                    .map(|s| RawStep {
                        weight: s.weight.into(),
                        duration: s.duration,
                        pause: s.pause,
                    })
                    .collect(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pct(p: u8) -> Weight {
        Weight::from_percent(p).unwrap()
    }

    #[test]
    fn strategies_round_trip() {
        for s in [
            Strategy::immediate(),
            Strategy::gradual(pct(10), Duration::from_secs(30)).unwrap(),
            Strategy::weighted(vec![
                WeightedStep::new(pct(5), Duration::from_secs(60)),
                WeightedStep::new(pct(50), Duration::ZERO).with_pause(Pause::UntilApproved),
                WeightedStep::new(pct(80), Duration::ZERO)
                    .with_pause(Pause::Timed(Duration::from_secs(300))),
            ])
            .unwrap(),
        ] {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(
                serde_json::from_str::<Strategy>(&json).unwrap(),
                s,
                "{json}"
            );
        }
        assert_eq!(
            serde_json::to_string(&Strategy::gradual(pct(10), Duration::from_secs(30)).unwrap())
                .unwrap(),
            r#"{"type":"gradual","increment":10,"interval":"30s"}"#
        );
        assert_eq!(
            serde_json::to_string(&Strategy::immediate()).unwrap(),
            r#"{"type":"immediate"}"#
        );
    }

    #[test]
    fn a_weighted_step_at_zero_is_refused_rather_than_dropped() {
        // A plan would skip this step as already passed, and its approval gate with it.
        let gate_first = Strategy::weighted(vec![
            WeightedStep::new(Weight::ZERO, Duration::ZERO).with_pause(Pause::UntilApproved),
            WeightedStep::new(pct(20), Duration::from_secs(60)),
        ]);
        match gate_first {
            Err(Error::InvalidField { field, reason, .. }) => {
                assert_eq!(field, "strategy.steps[0].weight");
                assert!(reason.contains("more than 0%"), "{reason}");
            }
            other => panic!("expected InvalidField, got {other:?}"),
        }
        assert!(
            Strategy::weighted(vec![WeightedStep::new(Weight::ONE_BPS, Duration::ZERO)]).is_ok()
        );
    }

    #[test]
    fn bad_strategies_name_the_field() {
        for (json, field) in [
            (
                r#"{"type":"gradual","increment":0,"interval":"1s"}"#,
                "strategy.increment",
            ),
            (
                r#"{"type":"gradual","increment":150,"interval":"1s"}"#,
                "strategy.increment",
            ),
            (r#"{"type":"weighted","steps":[]}"#, "strategy.steps"),
            (
                r#"{"type":"weighted","steps":[{"weight":20},{"weight":10}]}"#,
                "strategy.steps[1].weight",
            ),
            (
                r#"{"type":"weighted","steps":[{"weight":20},{"weight":20}]}"#,
                "strategy.steps[1].weight",
            ),
            (
                r#"{"type":"weighted","steps":[{"weight":101}]}"#,
                "strategy.steps[0].weight",
            ),
            (
                r#"{"type":"gradual","increment":10,"interval":"1s","extra":1}"#,
                "extra",
            ),
            (
                r#"{"type":"weighted","steps":[{"weight":10,"hold":"1s"}]}"#,
                "hold",
            ),
            (r#"{"type":"linear"}"#, "linear"),
            (r#"{"type":"immediate","interval":"30s"}"#, "interval"),
            (
                r#"{"type":"weighted","steps":[{"weight":0,"pause":"untilApproved"},{"weight":50}]}"#,
                "strategy.steps[0].weight",
            ),
        ] {
            let msg = serde_json::from_str::<Strategy>(json)
                .unwrap_err()
                .to_string();
            assert!(msg.contains(field), "{json}: {msg}");
        }
        let e = Strategy::gradual(Weight::ZERO, Duration::from_secs(1)).unwrap_err();
        assert!(
            matches!(e, Error::InvalidField { ref field, .. } if field == "strategy.increment")
        );
    }
}
