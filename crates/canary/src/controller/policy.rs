//! The canary policy: its steps, limits and what to do when the evidence runs out.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::pacing::Pacing;
use super::promotion::PromotionGate;
use crate::{Error, Result};

/// One step of a canary rollout, written like Argo Rollouts' steps, a map with one key:
/// `{"setWeight": 20}`, `{"pause": {}}`, `{"pause": {"duration": "5m"}}`,
/// `{"analysis": {"duration": "10m", "minSamples": 60}}`, `{"setCanaryScale": {"replicas": 3}}`,
/// or in YAML `- setWeight: 20`. (Serde's own form of an enum in YAML, a tag such as
/// `!setWeight 20`, is read too.)
///
/// ```
/// use serin_canary::controller::Step;
///
/// let steps: Vec<Step> = serde_yaml_ng::from_str("- setWeight: 20\n- pause: {}\n")?;
/// assert_eq!(steps[0], Step::SetWeight(20));
/// assert_eq!(serde_yaml_ng::to_string(&steps[0])?, "setWeight: 20\n");
/// # Ok::<(), serde_yaml_ng::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Route this percentage (0..=100) of traffic to the canary. At 100% the baseline serves
    /// nothing for the judges to compare with: pauses there run their course and the promotion
    /// follows on the evidence of the weights before, and an analysis step there is refused.
    SetWeight(u8),
    /// Wait: for a duration, or without one until a [`Command::Resume`](super::Command::Resume)
    /// (which also ends a timed pause early).
    Pause(Pause),
    /// Keep judging at the current weight until the judges pass, or the step's duration ends with
    /// enough samples and no failure; a judge whose run has concluded inconclusive never lets it
    /// complete (see [`OnInconclusive`]).
    Analysis(AnalysisStep),
    /// Scale the canary's track (without changing the traffic weight).
    SetCanaryScale(CanaryScale),
}

impl Serialize for Step {
    /// A map with one key where people read it, serde's own variant in compact binary forms.
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use crate::one_key::{OneKey as _, write};
        match self {
            Step::SetWeight(w) => write(s, Self::NAME, Self::KINDS, 0, w),
            Step::Pause(p) => write(s, Self::NAME, Self::KINDS, 1, p),
            Step::Analysis(a) => write(s, Self::NAME, Self::KINDS, 2, a),
            Step::SetCanaryScale(c) => write(s, Self::NAME, Self::KINDS, 3, c),
        }
    }
}

impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        crate::one_key::read(d)
    }
}

impl crate::one_key::OneKey for Step {
    const NAME: &'static str = "Step";
    const KINDS: &'static [&'static str] = &["setWeight", "pause", "analysis", "setCanaryScale"];
    const WHAT: &'static str = "a step";

    fn value<'de, V: crate::one_key::Value<'de>>(
        index: usize,
        value: V,
    ) -> std::result::Result<Self, V::Error> {
        Ok(match index {
            0 => Step::SetWeight(value.read::<WidePercent>()?.percent("setWeight")?),
            1 => Step::Pause(value.read()?),
            2 => Step::Analysis(value.read()?),
            _ => Step::SetCanaryScale(value.read()?),
        })
    }
}

/// A percentage read as any integer, so that one no `u8` holds (`300`, `-5`) is refused as
/// 101 is, naming the field and the range, rather than in the integer reader's words
/// ("invalid value: integer `300`, expected u8"). Read through `deserialize_u8`: a compact
/// binary form reads the byte a `u8` wrote, a self-describing one the number as written.
struct WidePercent(i128);

impl<'de> Deserialize<'de> for WidePercent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Wide;
        impl serde::de::Visitor<'_> for Wide {
            type Value = WidePercent;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a percentage in 0..=100")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<Self::Value, E> {
                Ok(WidePercent(v.into()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<Self::Value, E> {
                Ok(WidePercent(v.into()))
            }
        }
        d.deserialize_u8(Wide)
    }
}

impl WidePercent {
    /// The percentage, or an error naming `field` for one no `u8` holds; one above 100 that
    /// fits is refused by [`CanaryPolicy::validate`], with the step's place.
    fn percent<E: serde::de::Error>(self, field: &str) -> std::result::Result<u8, E> {
        u8::try_from(self.0).map_err(|_| {
            E::custom(Error::invalid_config(
                field,
                self.0,
                "must be a percentage in 0..=100",
            ))
        })
    }
}

/// `setCanaryScale.weight`, read as [`WidePercent`].
fn wide_scale_weight<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<u8>, D::Error> {
    Option::<WidePercent>::deserialize(d)?
        .map(|w| w.percent("setCanaryScale.weight"))
        .transpose()
}

/// A pause, timed or waiting for approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pause {
    /// How long to wait (unless a resume command ends the pause first), from when the weight
    /// set before it is in force, as an [`AnalysisStep`]'s duration counts; `None` waits for a
    /// resume command.
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration: Option<Duration>,
}

/// An analysis step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnalysisStep {
    /// How long the step may judge before it decides on the evidence it has, from when its
    /// weight is in force: a window of the split before it, fed while a raised weight waits for
    /// its track, starts the step's clock afresh at its end.
    #[serde(with = "serin_signals::duration")]
    pub duration: Duration,
    /// Samples with data (for every judge that is not
    /// [advisory](crate::judge::Judge::advisory)) the step needs before it may complete without
    /// every such judge passing. Default `1`, and at least `1`: missing evidence is never a pass.
    /// Only samples of the split the step analyses count: those fed while the weight set last
    /// was in force, not those of the split before a raise whose track is still growing (see
    /// [`feed_in_force`](super::CanaryController::feed_in_force)).
    #[serde(default = "one")]
    pub min_samples: u64,
}

fn one() -> u64 {
    1
}

/// How to scale the canary's track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanaryScale {
    /// An absolute number of instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// A percentage (0..=100) of the stable track's instances.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wide_scale_weight"
    )]
    pub weight: Option<u8>,
    /// Scale to match the current traffic weight.
    #[serde(default)]
    pub match_traffic_weight: bool,
}

/// What to do when the analysis is still inconclusive at a step's deadline (not enough data),
/// or when a judge's run has [concluded](crate::judge::Judge::concluded) inconclusive (an Argo
/// Rollouts run that ended `Inconclusive` or `Error`), which no wait can turn into a pass.
/// Never a promotion: missing evidence is never a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OnInconclusive {
    /// Keep holding at the current weight (until the progress deadline, if any).
    #[default]
    Hold,
    /// Roll back.
    Rollback,
}

/// What to do when a judge fails with [`Severity::Warning`](crate::judge::Severity::Warning).
/// A critical failure always rolls back at once. An informational one (below a warning band
/// set above 0, a regression the bands say is not worth acting on) is reported in the
/// decisions' evidence and neither rolls back nor holds: the rollout goes on and may promote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OnWarning {
    /// Roll back (the default).
    #[default]
    Rollback,
    /// Hold the weight and wait for a command.
    Hold,
}

/// A canary policy. Serialized in camelCase; [`CanaryPolicy::validate`] runs on load.
///
/// ```
/// use serin_canary::controller::CanaryPolicy;
///
/// let policy: CanaryPolicy = serde_json::from_str(r#"{
///     "steps": [
///         {"setWeight": 5},
///         {"analysis": {"duration": "10m", "minSamples": 60}},
///         {"setWeight": 50},
///         {"pause": {"duration": "5m"}}
///     ],
///     "maxDuration": "2h",
///     "progressDeadline": "30m"
/// }"#)?;
/// assert_eq!(policy.steps.len(), 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    deny_unknown_fields,
    try_from = "PolicyRepr",
    into = "PolicyRepr"
)]
pub struct CanaryPolicy {
    /// The steps, in order; after the last one the canary is promoted.
    pub steps: Vec<Step>,
    /// The longest the whole rollout may take; past it, it rolls back. Each timed pause and
    /// analysis step must be shorter.
    pub max_duration: Option<Duration>,
    /// The longest one step may hold without progress; past it, the rollout rolls back. A step's
    /// planned wait (a timed pause's or an analysis step's duration) is not a lack of progress:
    /// the deadline counts from its end. Nor is a hold of the caller's (an operator's pause):
    /// the deadline counts afresh once it ends. A pause waiting for approval has none.
    pub progress_deadline: Option<Duration>,
    /// What to do when an analysis step ends without enough data, or a judge's run concludes
    /// inconclusive (see [`OnInconclusive`]).
    pub on_inconclusive: OnInconclusive,
    /// What to do on a warning-level failure.
    pub on_warning: OnWarning,
    /// Power-aware pacing of weight increases, if wanted. With pacing, the last `setWeight`
    /// step may not lower the weight to 0%: the promotion waits for pacing's gate at the last
    /// weight, which 0% gives nothing to pass with.
    pub pacing: Option<Pacing>,
    /// The bound the canary's error rate must be shown below before promotion, if any.
    pub promotion: Option<PromotionGate>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PolicyRepr {
    steps: Vec<Step>,
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    max_duration: Option<Duration>,
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    progress_deadline: Option<Duration>,
    #[serde(default)]
    on_inconclusive: OnInconclusive,
    #[serde(default)]
    on_warning: OnWarning,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pacing: Option<Pacing>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    promotion: Option<PromotionGate>,
}

impl TryFrom<PolicyRepr> for CanaryPolicy {
    type Error = Error;
    fn try_from(r: PolicyRepr) -> Result<Self> {
        let p = CanaryPolicy {
            steps: r.steps,
            max_duration: r.max_duration,
            progress_deadline: r.progress_deadline,
            on_inconclusive: r.on_inconclusive,
            on_warning: r.on_warning,
            pacing: r.pacing,
            promotion: r.promotion,
        };
        p.validate()?;
        Ok(p)
    }
}

impl From<CanaryPolicy> for PolicyRepr {
    fn from(p: CanaryPolicy) -> Self {
        PolicyRepr {
            steps: p.steps,
            max_duration: p.max_duration,
            progress_deadline: p.progress_deadline,
            on_inconclusive: p.on_inconclusive,
            on_warning: p.on_warning,
            pacing: p.pacing,
            promotion: p.promotion,
        }
    }
}

/// The weights `steps` set, in order.
fn weights(steps: &[Step]) -> impl Iterator<Item = u8> + '_ {
    steps.iter().filter_map(|s| match s {
        Step::SetWeight(w) => Some(*w),
        _ => None,
    })
}

impl CanaryPolicy {
    /// A policy with these steps and the defaults otherwise (no deadlines, hold when
    /// inconclusive, roll back on warnings, no pacing).
    pub fn new(steps: Vec<Step>) -> Self {
        CanaryPolicy {
            steps,
            max_duration: None,
            progress_deadline: None,
            on_inconclusive: OnInconclusive::Hold,
            on_warning: OnWarning::Rollback,
            pacing: None,
            promotion: None,
        }
    }

    /// The highest weight below 100% a `setWeight` step asks for (0 without one).
    pub fn highest_weight(&self) -> u8 {
        weights(&self.steps).filter(|w| *w < 100).max().unwrap_or(0)
    }

    /// The canary weight when `step` begins: the last `setWeight` before it, 0% without one (a
    /// `setWeight` step ends only once its weight is set).
    pub fn weight_before(&self, step: usize) -> u8 {
        weights(self.steps.get(..step).unwrap_or(&self.steps))
            .last()
            .unwrap_or(0)
    }

    /// Checks the policy; errors name the path (`canaryPolicy.steps[2].setWeight`).
    pub fn validate(&self) -> Result<()> {
        if self.steps.is_empty() {
            return Err(Error::invalid_config(
                "canaryPolicy.steps",
                "[]",
                "needs at least one step",
            ));
        }
        for (i, step) in self.steps.iter().enumerate() {
            let path = format!("canaryPolicy.steps[{i}]");
            match step {
                Step::SetWeight(w) if *w > 100 => {
                    return Err(Error::invalid_config(
                        format!("{path}.setWeight"),
                        w,
                        "must be a percentage in 0..=100",
                    ));
                }
                Step::Analysis(a) if a.duration.is_zero() => {
                    return Err(Error::invalid_config(
                        format!("{path}.analysis.duration"),
                        "0s",
                        "must be longer than zero",
                    ));
                }
                Step::Analysis(_) if self.weight_before(i) == 100 => {
                    return Err(Error::invalid_config(
                        format!("{path}.analysis"),
                        "at 100%",
                        "can never gather a sample: at 100% the baseline serves no traffic for \
                         the judges to compare the canary with; analyse before the weight \
                         reaches 100%, or leave the last raise to the promotion",
                    ));
                }
                Step::Analysis(a) if a.min_samples == 0 => {
                    return Err(Error::invalid_config(
                        format!("{path}.analysis.minSamples"),
                        0,
                        "must be at least 1: an analysis step must not end on no data, since \
                         missing evidence is never a pass",
                    ));
                }
                Step::SetCanaryScale(s) => {
                    let set = usize::from(s.replicas.is_some())
                        + usize::from(s.weight.is_some())
                        + usize::from(s.match_traffic_weight);
                    if set != 1 {
                        return Err(Error::invalid_config(
                            format!("{path}.setCanaryScale"),
                            format!("{s:?}"),
                            "set exactly one of replicas, weight or matchTrafficWeight",
                        ));
                    }
                    if let Some(w) = s.weight
                        && w > 100
                    {
                        return Err(Error::invalid_config(
                            format!("{path}.setCanaryScale.weight"),
                            w,
                            "must be a percentage in 0..=100",
                        ));
                    }
                }
                _ => {}
            }
        }
        for (name, d) in [
            ("maxDuration", self.max_duration),
            ("progressDeadline", self.progress_deadline),
        ] {
            if d.is_some_and(|d| d.is_zero()) {
                return Err(Error::invalid_config(
                    format!("canaryPolicy.{name}"),
                    "0s",
                    "must be longer than zero (or left out)",
                ));
            }
        }
        if let Some(max) = self.max_duration {
            for (i, step) in self.steps.iter().enumerate() {
                let Some((field, planned)) = planned_wait(step) else {
                    continue;
                };
                if planned >= max {
                    return Err(Error::invalid_config(
                        format!("canaryPolicy.steps[{i}].{field}"),
                        humantime::format_duration(planned),
                        format!(
                            "must be shorter than canaryPolicy.maxDuration ({}): the rollout \
                             would be rolled back before the step ran its course",
                            humantime::format_duration(max)
                        ),
                    ));
                }
            }
        }
        if let Some(p) = &self.pacing {
            p.validate("canaryPolicy.pacing")?;
            // The promotion waits for pacing's gate at the last weight, which at 0% gathers
            // nothing and so would not be asked: the weights before would go unchecked.
            let last = self
                .steps
                .iter()
                .rposition(|s| matches!(s, Step::SetWeight(_)));
            if let Some(i) = last
                && self.steps[i] == Step::SetWeight(0)
                && self.highest_weight() > 0
            {
                return Err(Error::invalid_config(
                    format!("canaryPolicy.steps[{i}].setWeight"),
                    0,
                    "must not be the last weight with pacing: the promotion waits for pacing's \
                     gate at the last weight, and at 0% the canary serves nothing to pass it \
                     with, so the canary would be promoted without the gate of the weights \
                     before passing; end on the weight to promote from",
                ));
            }
        }
        if let Some(g) = &self.promotion {
            g.validate("canaryPolicy.promotion")?;
        }
        Ok(())
    }
}

/// A step's planned wait, with the field that sets it: a timed pause's or an analysis step's
/// duration.
pub(crate) fn planned_wait(step: &Step) -> Option<(&'static str, Duration)> {
    match step {
        Step::Pause(Pause { duration: Some(d) }) => Some(("pause.duration", *d)),
        Step::Analysis(a) => Some(("analysis.duration", a.duration)),
        _ => None,
    }
}

/// Serde for `Option<Duration>` with `serin_signals::duration`'s forms.
pub(crate) mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(transparent)]
    struct D(#[serde(with = "serin_signals::duration")] Duration);

    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        d.map(D).serialize(s)
    }

    pub(crate) fn deserialize<'de, De: Deserializer<'de>>(
        d: De,
    ) -> Result<Option<Duration>, De::Error> {
        Ok(Option::<D>::deserialize(d)?.map(|D(d)| d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A step is a map with one known key, in YAML's plain form and serde's tagged one alike;
    /// anything else is refused, naming what is wrong.
    #[test]
    fn a_step_is_a_map_with_one_known_key() {
        let yaml = "- setWeight: 20\n- !pause {duration: 1m}\n- analysis: {duration: 5m}\n";
        let steps: Vec<Step> = serde_yaml_ng::from_str(yaml).unwrap();
        assert_eq!(
            steps[1],
            Step::Pause(Pause {
                duration: Some(Duration::from_secs(60))
            })
        );
        let written = serde_yaml_ng::to_string(&steps).unwrap();
        assert!(!written.contains('!'), "{written}");
        assert_eq!(
            serde_yaml_ng::from_str::<Vec<Step>>(&written).unwrap(),
            steps
        );
        for (json, why) in [
            (r#"{"setWeight": 20, "pause": {}}"#, "one key"),
            (r#"{"setWeigth": 20}"#, "unknown variant `setWeigth`"),
            (r#"{}"#, "invalid length 0"),
            (r#"{"setWeight": 200000}"#, "200000"),
            (r#"{"pause": {"duraton": "1m"}}"#, "unknown field `duraton`"),
            (r#""setWeight""#, "a map with one key"),
        ] {
            let e = serde_json::from_str::<Step>(json).unwrap_err().to_string();
            assert!(e.contains(why), "{json}: {e}");
        }
    }

    #[test]
    fn bad_policies_name_the_path() {
        for (json, path) in [
            (r#"{"steps":[]}"#, "canaryPolicy.steps"),
            (
                r#"{"steps":[{"setWeight":5},{"setWeight":101}]}"#,
                "canaryPolicy.steps[1].setWeight",
            ),
            (
                r#"{"steps":[{"analysis":{"duration":0}}]}"#,
                "canaryPolicy.steps[0].analysis.duration",
            ),
            (
                r#"{"steps":[{"setCanaryScale":{}}]}"#,
                "canaryPolicy.steps[0].setCanaryScale",
            ),
            (
                r#"{"steps":[{"setWeight":5}],"maxDuration":"0s"}"#,
                "canaryPolicy.maxDuration",
            ),
            (
                r#"{"steps":[{"analysis":{"duration":"60s","minSamples":0}}]}"#,
                "canaryPolicy.steps[0].analysis.minSamples",
            ),
            (
                r#"{"steps":[{"setWeight":5},{"pause":{"duration":"1h"}}],"maxDuration":"1h"}"#,
                "canaryPolicy.steps[1].pause.duration",
            ),
            (
                r#"{"steps":[{"setWeight":5},{"analysis":{"duration":"2h"}}],"maxDuration":"1h"}"#,
                "canaryPolicy.steps[1].analysis.duration",
            ),
        ] {
            let msg = serde_json::from_str::<CanaryPolicy>(json)
                .unwrap_err()
                .to_string();
            assert!(msg.contains(path), "{json}: {msg}");
        }
        assert!(
            serde_json::from_str::<CanaryPolicy>(r#"{"steps":[{"setWeight":5}],"x":1}"#).is_err()
        );
    }

    #[test]
    fn a_step_that_cannot_run_its_course_within_the_maximum_duration_is_refused() {
        let json = |pause: &str| {
            format!(
                r#"{{"steps":[{{"setWeight":5}},{{"pause":{{"duration":"{pause}"}}}}],
                "maxDuration":"10m","progressDeadline":"1m"}}"#
            )
        };
        let msg = serde_json::from_str::<CanaryPolicy>(&json("10m"))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("canaryPolicy.steps[1].pause.duration")
                && msg.contains("10m")
                && msg.contains("canaryPolicy.maxDuration"),
            "{msg}"
        );
        // Shorter than the maximum duration, though longer than the progress deadline: taken.
        assert!(serde_json::from_str::<CanaryPolicy>(&json("9m")).is_ok());
        // An analysis step needs at least one sample to end without every judge passing.
        let p: CanaryPolicy =
            serde_json::from_str(r#"{"steps":[{"analysis":{"duration":"60s"}}]}"#).unwrap();
        assert!(p.validate().is_ok());
        let mut zero = p;
        zero.steps[0] = Step::Analysis(AnalysisStep {
            duration: Duration::from_secs(60),
            min_samples: 0,
        });
        let msg = zero.validate().unwrap_err().to_string();
        assert!(
            msg.contains("canaryPolicy.steps[0].analysis.minSamples"),
            "{msg}"
        );
    }

    #[test]
    fn policies_round_trip_with_human_durations() {
        let json = r#"{"steps":[{"setWeight":10},{"pause":{}},{"pause":{"duration":30000}},
            {"analysis":{"duration":"10m"}},{"setCanaryScale":{"replicas":2}}],
            "progressDeadline":"15m","onInconclusive":"rollback"}"#;
        let p: CanaryPolicy = serde_json::from_str(json).unwrap();
        assert_eq!(
            p.steps[2],
            Step::Pause(Pause {
                duration: Some(Duration::from_secs(30))
            })
        );
        assert_eq!(p.on_inconclusive, OnInconclusive::Rollback);
        let back: CanaryPolicy = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }
}
