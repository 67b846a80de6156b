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
#[serde(try_from = "StrategyFields", into = "RawStrategy")]
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
                // Steps only rise, so only the first can be at 0%. Such a step moves no traffic,
                // and a plan from a split already sending some to the target skips it as passed
                // — its hold and approval pause with it — so it is refused rather than silently
                // dropped.
                if let Some(first) = steps.first()
                    && first.weight.is_zero()
                {
                    return Err(Error::invalid(
                        "strategy.steps[0].weight",
                        first.weight,
                        "must be more than 0% (a step at 0% moves no traffic, so a plan from \
                         a split already sending some would skip it with its hold and pause)",
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
/// Serialized as `"none"`, `"untilApproved"` or a map with one key, `{"timed": "5m"}` (in YAML
/// `timed: 5m`; serde's own form of an enum in YAML, a tag such as `!timed 5m`, is read too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Pause {
    /// Go on to the next step.
    #[default]
    None,
    /// Wait this much longer, then go on.
    Timed(Duration),
    /// Wait until someone approves (a person, or the canary analysis), then go on.
    UntilApproved,
}

/// The names of [`Pause`]'s kinds, as written.
const PAUSES: &[&str] = &["none", "timed", "untilApproved"];

/// A timed pause's wait, written as a duration string.
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
struct Timed(#[serde(with = "duration")] Duration);

impl Serialize for Pause {
    /// Written as `"none"`, `"untilApproved"` or a map with one key, `{timed: 5m}`, where people
    /// read it (a YAML writer would otherwise write a tag, `!timed 5m`); as serde's own variant
    /// in compact binary forms, whose readers expect it.
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Pause::None => s.serialize_unit_variant("Pause", 0, PAUSES[0]),
            Pause::UntilApproved => s.serialize_unit_variant("Pause", 2, PAUSES[2]),
            Pause::Timed(d) if !s.is_human_readable() => {
                s.serialize_newtype_variant("Pause", 1, PAUSES[1], &Timed(*d))
            }
            Pause::Timed(d) => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry(PAUSES[1], &Timed(*d))?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Pause {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        if d.is_human_readable() {
            d.deserialize_any(PauseVisitor)
        } else {
            d.deserialize_enum("Pause", PAUSES, PauseVisitor)
        }
    }
}

struct PauseVisitor;

impl PauseVisitor {
    /// The pause a unit kind names.
    fn unit<E: serde::de::Error>(kind: &str) -> std::result::Result<Pause, E> {
        match kind {
            "none" => Ok(Pause::None),
            "untilApproved" => Ok(Pause::UntilApproved),
            "timed" => Err(E::custom("a `timed` pause needs a duration: `{timed: 5m}`")),
            other => Err(E::unknown_variant(other, PAUSES)),
        }
    }
}

impl<'de> serde::de::Visitor<'de> for PauseVisitor {
    type Value = Pause;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a pause: `none`, `untilApproved` or a map with one key, `timed`")
    }

    /// `none` or `untilApproved`.
    fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Pause, E> {
        Self::unit(v)
    }

    /// `{timed: 5m}`: the key names the kind.
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Pause, A::Error> {
        use serde::de::Error as _;
        let Some(kind) = map.next_key::<String>()? else {
            return Err(A::Error::invalid_length(0, &self));
        };
        let pause = match kind.as_str() {
            "timed" => Pause::Timed(map.next_value::<Timed>()?.0),
            other => return Err(A::Error::unknown_variant(other, &PAUSES[1..2])),
        };
        if let Some(more) = map.next_key::<String>()? {
            return Err(A::Error::custom(format_args!(
                "a pause has one key, `{kind}`; `{more}` is one too many"
            )));
        }
        Ok(pause)
    }

    /// Serde's own form of an enum: a YAML tag (`!timed 5m`), or a binary variant.
    fn visit_enum<A: serde::de::EnumAccess<'de>>(
        self,
        data: A,
    ) -> std::result::Result<Pause, A::Error> {
        use serde::de::VariantAccess as _;
        let (Kind(kind), value) = data.variant::<Kind>()?;
        if kind == "timed" {
            return value.newtype_variant::<Timed>().map(|t| Pause::Timed(t.0));
        }
        let pause = Self::unit(kind)?;
        value.unit_variant()?;
        Ok(pause)
    }
}

/// The kind a [`Pause`] variant names: by its name (`timed`), or by its index in [`PAUSES`]
/// as compact binary forms write it.
struct Kind(&'static str);

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_identifier(KindVisitor)
    }
}

struct KindVisitor;

impl serde::de::Visitor<'_> for KindVisitor {
    type Value = Kind;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a pause kind: `none`, `timed` or `untilApproved`")
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<Kind, E> {
        usize::try_from(v)
            .ok()
            .and_then(|i| PAUSES.get(i))
            .copied()
            .map(Kind)
            .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Kind, E> {
        PAUSES
            .iter()
            .find(|kind| **kind == v)
            .copied()
            .map(Kind)
            .ok_or_else(|| E::unknown_variant(v, PAUSES))
    }
}

/// A strategy as written. Read through [`StrategyFields`], not as an internally tagged enum:
/// serde buffers such an enum's map before it reads the tag, and its buffer holds no enum, so a
/// pause written in serde's own YAML form (`pause: !timed 5m`) could not be read in it.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
enum RawStrategy {
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

/// The kinds of strategy, as the `type` key names them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
enum StrategyKind {
    Immediate,
    Gradual,
    Weighted,
}

/// A strategy as read: every key of every kind, read straight from the map (see
/// [`RawStrategy`] for why), then checked to be the ones its `type` takes.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StrategyFields {
    #[serde(rename = "type")]
    kind: StrategyKind,
    #[serde(default, deserialize_with = "given")]
    increment: Option<Option<Percent>>,
    #[serde(default, deserialize_with = "given")]
    interval: Option<Option<RawDuration>>,
    #[serde(default, deserialize_with = "given")]
    steps: Option<Option<Vec<RawStep>>>,
}

/// A key that is present: `Some(None)` when written as `null`, which is refused naming the key
/// rather than read as the key left out (a strategy would take a key its kind has no use for).
fn given<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> std::result::Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A duration as written (a human string or integer milliseconds).
#[derive(Deserialize)]
#[serde(transparent)]
struct RawDuration(#[serde(with = "duration")] Duration);

impl TryFrom<StrategyFields> for Strategy {
    type Error = Error;
    fn try_from(raw: StrategyFields) -> Result<Self> {
        let (kind, takes) = match raw.kind {
            StrategyKind::Immediate => ("an immediate", [false, false, false]),
            StrategyKind::Gradual => ("a gradual", [true, true, false]),
            StrategyKind::Weighted => ("a weighted", [false, false, true]),
        };
        for (name, null) in [
            ("increment", matches!(raw.increment, Some(None))),
            ("interval", matches!(raw.interval, Some(None))),
            ("steps", matches!(raw.steps, Some(None))),
        ] {
            if null {
                return Err(Error::invalid(
                    format!("strategy.{name}"),
                    "null",
                    "write a value, or leave the key out",
                ));
            }
        }
        let (increment, interval, steps) = (
            raw.increment.flatten(),
            raw.interval.flatten().map(|d| d.0),
            raw.steps.flatten(),
        );
        let given = [
            increment.map(|p| format!("{}", p.0)),
            interval.map(duration::human),
            steps.as_ref().map(|s| format!("{} steps", s.len())),
        ];
        for ((name, value), takes) in ["increment", "interval", "steps"]
            .iter()
            .zip(given)
            .zip(takes)
        {
            match (value, takes) {
                (Some(value), false) => {
                    return Err(Error::invalid(
                        format!("strategy.{name}"),
                        value,
                        format!("{kind} strategy has no `{name}`"),
                    ));
                }
                (None, true) => {
                    return Err(Error::invalid(
                        format!("strategy.{name}"),
                        "(missing)",
                        format!("{kind} strategy needs `{name}`"),
                    ));
                }
                _ => {}
            }
        }
        let s = match (raw.kind, increment, interval, steps) {
            (StrategyKind::Gradual, Some(increment), Some(interval), _) => Strategy::Gradual {
                increment: increment.weight("strategy.increment")?,
                interval,
            },
            (StrategyKind::Weighted, _, _, Some(steps)) => Strategy::Weighted {
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
            // The keys checked above leave only an immediate strategy here.
            _ => Strategy::Immediate,
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
    fn a_pause_reads_a_map_with_one_key_and_writes_json_as_before() {
        use serde::de::IntoDeserializer as _;
        use serde::de::value::{Error as ValueError, MapDeserializer};

        // A human-readable reader that hands over a map, as YAML's does for `timed: 5m`.
        let map = MapDeserializer::<_, ValueError>::new([("timed", "5m")].into_iter());
        assert_eq!(
            Pause::deserialize(map).unwrap(),
            Pause::Timed(Duration::from_secs(300))
        );
        let plain = "untilApproved".into_deserializer();
        assert_eq!(
            Pause::deserialize::<serde::de::value::StrDeserializer<'_, ValueError>>(plain).unwrap(),
            Pause::UntilApproved
        );
        let two =
            MapDeserializer::<_, ValueError>::new([("timed", "5m"), ("none", "")].into_iter());
        let msg = Pause::deserialize(two).unwrap_err().to_string();
        assert!(msg.contains("none"), "{msg}");

        let weighted = Strategy::weighted(vec![
            WeightedStep::new(pct(5), Duration::from_secs(60)),
            WeightedStep::new(pct(50), Duration::ZERO).with_pause(Pause::UntilApproved),
            WeightedStep::new(pct(80), Duration::ZERO)
                .with_pause(Pause::Timed(Duration::from_secs(300))),
        ])
        .unwrap();
        let json = serde_json::to_string(&weighted).unwrap();
        assert_eq!(
            json,
            r#"{"type":"weighted","steps":[{"weight":5,"duration":"1m","pause":"none"},{"weight":50,"duration":"0s","pause":"untilApproved"},{"weight":80,"duration":"0s","pause":{"timed":"5m"}}]}"#
        );
        assert_eq!(serde_json::from_str::<Strategy>(&json).unwrap(), weighted);

        // YAML: the map is written and read back, inside a weighted strategy too; the tag is
        // still read.
        let yaml = serde_yaml_ng::to_string(&weighted).unwrap();
        assert!(yaml.contains("    timed: 5m"), "{yaml}");
        assert_eq!(
            serde_yaml_ng::from_str::<Strategy>(&yaml).unwrap(),
            weighted
        );
        for text in ["timed: 5m\n", "!timed 5m\n"] {
            assert_eq!(
                serde_yaml_ng::from_str::<Pause>(text).unwrap(),
                Pause::Timed(Duration::from_secs(300)),
                "{text}"
            );
        }
    }

    /// A pause in serde's own YAML form of an enum, a tag (`!timed 5m`), is read inside a
    /// weighted strategy as it is on its own: a strategy written that way loads.
    #[test]
    fn a_tagged_pause_is_read_inside_a_weighted_strategy() {
        let yaml = "type: weighted\nsteps:\n- weight: 10\n  pause: !timed 5m\n- weight: 50\n  \
                    duration: 1m\n  pause: untilApproved\n";
        let expected = Strategy::weighted(vec![
            WeightedStep::new(pct(10), Duration::ZERO)
                .with_pause(Pause::Timed(Duration::from_secs(300))),
            WeightedStep::new(pct(50), Duration::from_secs(60)).with_pause(Pause::UntilApproved),
        ])
        .unwrap();
        assert_eq!(serde_yaml_ng::from_str::<Strategy>(yaml).unwrap(), expected);
        let yaml = "type: gradual\nincrement: 10\ninterval: 30s\n";
        assert_eq!(
            serde_yaml_ng::from_str::<Strategy>(yaml).unwrap(),
            Strategy::gradual(pct(10), Duration::from_secs(30)).unwrap()
        );
    }

    /// Compact binary forms name a variant by its index, as `serialize_unit_variant` gives it:
    /// a pause written by index is read back by index.
    #[test]
    fn a_pause_reads_its_variant_by_index() {
        use serde::de::IntoDeserializer as _;
        use serde::de::value::{EnumAccessDeserializer, Error as ValueError, U32Deserializer};

        let by_index = |i: u32| {
            let variant: U32Deserializer<ValueError> = i.into_deserializer();
            Pause::deserialize(EnumAccessDeserializer::new(variant))
        };
        assert_eq!(by_index(0).unwrap(), Pause::None);
        assert_eq!(by_index(2).unwrap(), Pause::UntilApproved);
        let msg = by_index(3).unwrap_err().to_string();
        assert!(msg.contains('3') && msg.contains("untilApproved"), "{msg}");
    }

    #[test]
    fn a_weighted_step_at_zero_is_refused_rather_than_dropped() {
        // From a split already sending some traffic to the target, a plan would skip this step
        // as passed, and its approval gate with it.
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
    fn a_key_written_as_null_is_refused_naming_it() {
        // `null` is neither the value a strategy takes nor the key left out: read as absent,
        // an immediate strategy would take an `increment` it has no use for.
        for (json, field) in [
            (
                r#"{"type":"immediate","increment":null}"#,
                "strategy.increment",
            ),
            (
                r#"{"type":"immediate","interval":null}"#,
                "strategy.interval",
            ),
            (r#"{"type":"immediate","steps":null}"#, "strategy.steps"),
            (
                r#"{"type":"gradual","increment":null,"interval":"1s"}"#,
                "strategy.increment",
            ),
            (
                r#"{"type":"gradual","increment":10,"interval":null}"#,
                "strategy.interval",
            ),
            (r#"{"type":"weighted","steps":null}"#, "strategy.steps"),
        ] {
            let msg = serde_json::from_str::<Strategy>(json)
                .unwrap_err()
                .to_string();
            assert!(
                msg.contains(&format!("invalid {field} `null`")),
                "{json}: {msg}"
            );
        }
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
                r#"{"type":"gradual","increment":10}"#,
                "invalid strategy.interval `(missing)`: a gradual strategy needs `interval`",
            ),
            (
                r#"{"type":"gradual","increment":10,"interval":"1s","steps":[]}"#,
                "invalid strategy.steps `0 steps`: a gradual strategy has no `steps`",
            ),
            (
                r#"{"type":"immediate","increment":10}"#,
                "invalid strategy.increment `10`: an immediate strategy has no `increment`",
            ),
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
