//! [`ArgoConfig`]: one metric of an Argo Rollouts `AnalysisTemplate` as written for Argo,
//! with Argo's defaults and its rule for how long a metric runs (`EffectiveCount`).

use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serin_signals::Metric;

use crate::kayenta::Quantity;
use crate::threshold::argo::ArgoPhase;
use crate::threshold::condition::Condition;
use crate::{Error, Result};

/// One metric of an Argo `AnalysisTemplate`, with Argo's defaults.
///
/// Read from a config, the metric runs as long as Argo runs it (`EffectiveCount`): `count`
/// measurements when a count is given, until stopped with an `interval` and no count, and
/// **exactly one** with neither (Argo's `count: 0` is no count). A config without a count used
/// to run until stopped; it now takes Argo's one measurement, so that a metric copied from a
/// template ends where Argo ends it (a step analysis written without an interval measures once
/// and decides) instead of running on, unseen, past Argo's verdict. A run until stopped without
/// an interval is written `count: null`, as such configs and saved judges always were, and an
/// explicit `null` still reads as until stopped, so they read back as before.
///
/// `count` and the limits are read as Argo reads its `IntOrString`s: a number, or a string
/// holding one (`count: "5"`). Argo's arguments are not substituted, so a string that holds
/// something else (`"{{args.count}}"`) is refused, naming the field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "WrittenArgoConfig")]
pub struct ArgoConfig {
    /// The metric's `name` in the `AnalysisTemplate`, if written: a label (what it measures
    /// is `metric` and `quantity`; Argo's `provider` query is the metrics source's business).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The metric judged (Argo measures the canary alone, not against the baseline).
    pub metric: Metric,
    /// Which number of the canary's observation is the measurement's `result`.
    pub quantity: Quantity,
    /// `successCondition`: bounds on the result, or Argo's expression as written
    /// (`result[0] <= 0.01`; see [`Condition`] for what it may hold).
    pub success_condition: Option<Condition>,
    /// `failureCondition`, written as `successCondition` is (bounds hold inside the range).
    pub failure_condition: Option<Condition>,
    /// Failed when failed measurements exceed this; −1 disables (Argo default 0). Disabling it
    /// needs a `consecutiveSuccessLimit`, as in Argo ≥ 1.8: a metric must be able to end.
    pub failure_limit: i64,
    /// Inconclusive when inconclusive measurements exceed this (Argo default 0).
    pub inconclusive_limit: u32,
    /// Error when consecutive errored measurements exceed this (Argo default 4).
    pub consecutive_error_limit: u32,
    /// Successful once this many consecutive measurements succeed; 0 = off (Argo ≥ 1.8).
    pub consecutive_success_limit: u32,
    /// The run ends after this many measurements that were not errors (Argo retries an errored
    /// measurement and does not count it); `None` = runs until stopped. How it ends, if no limit
    /// ended it first, depends on which limits apply (Argo ≥ 1.8): `Successful` with only
    /// `failureLimit`, `Failed` with only `consecutiveSuccessLimit` (the streak never came), and
    /// `Inconclusive` with both. Read from a config, Argo's rule above fills it in (a count of 1
    /// when neither `count` nor `interval` is given); written, `None` is `null`.
    pub count: Option<u32>,
    /// `interval`: how often the caller measures (a duration: `30s`, `5m`, or milliseconds). The
    /// judge is fed one measurement at a time and keeps no clock, so the interval only decides,
    /// when the config is read, whether a metric without a count runs until stopped (an interval)
    /// or takes one measurement (none). Argo also requires it for a count above 1; here the
    /// caller paces the measurements, so it is not required.
    #[serde(
        with = "serin_signals::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub interval: Option<Duration>,
    /// Argo's dry-run mode for this metric (the run's `dryRun: [{metricName: …}]` naming it):
    /// measured and assessed as usual, its verdict only recorded. The judge answers what the
    /// metric's run says and is [advisory](crate::judge::Judge::advisory): the canary
    /// controller never holds, rolls back or refuses a promotion on it, as a dry-run metric
    /// never fails or pauses Argo's run.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// `initialDelay`: how long after the run starts (the start of the first window the judge
    /// is [fed](crate::judge::Judge::observe)) measuring begins. A window that ends before then
    /// is not measured, as Argo takes its first measurement once the delay is over. Values
    /// given to [`ArgoJudge::measure`](super::ArgoJudge::measure) carry no time and are all
    /// measured, and once a run has measured, by either way, its delay is over.
    #[serde(
        with = "serin_signals::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub initial_delay: Option<Duration>,
}

/// An [`ArgoConfig`] as written, before Argo's `EffectiveCount` settles how long it runs. The
/// count and the limits are Argo's `IntOrString`s, so they may be written quoted.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WrittenArgoConfig {
    #[serde(default)]
    name: Option<String>,
    metric: Metric,
    quantity: Quantity,
    #[serde(default)]
    success_condition: Option<Condition>,
    #[serde(default)]
    failure_condition: Option<Condition>,
    #[serde(default)]
    failure_limit: Option<IntOrString>,
    #[serde(default)]
    inconclusive_limit: Option<IntOrString>,
    #[serde(default)]
    consecutive_error_limit: Option<IntOrString>,
    #[serde(default)]
    consecutive_success_limit: Option<IntOrString>,
    /// `None` when absent, `Some(None)` when written `null` (a run until stopped).
    #[serde(default, deserialize_with = "present")]
    count: Option<Option<IntOrString>>,
    #[serde(default, with = "serin_signals::duration::option")]
    interval: Option<Duration>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default, with = "serin_signals::duration::option")]
    initial_delay: Option<Duration>,
    /// Refused with a pointer: the query is the metrics source's.
    #[serde(default)]
    provider: Option<serde_json::Value>,
}

/// A field that is present, `null` included: `Some(None)` for `null`.
fn present<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Option<IntOrString>>, D::Error> {
    Option::<IntOrString>::deserialize(d).map(Some)
}

/// An integer as Argo reads it (`intstr.IntOrString`): a number, or a string holding one, as
/// a template writes it where an argument fills it in (`count: "{{args.count}}"`, which Argo
/// substitutes before reading the number).
enum IntOrString {
    Int(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct IntOrText;
        impl Visitor<'_> for IntOrText {
            type Value = IntOrString;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an integer, or a string holding one")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<IntOrString, E> {
                Ok(IntOrString::Int(v))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<IntOrString, E> {
                i64::try_from(v)
                    .map(IntOrString::Int)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<IntOrString, E> {
                Ok(IntOrString::Text(v.to_owned()))
            }
        }
        d.deserialize_any(IntOrText)
    }
}

impl IntOrString {
    /// The integer of field `path` (`argoConfig.count`): a string must hold one, as Argo reads
    /// it once its arguments are substituted, which they are not here.
    fn integer(self, path: &str) -> Result<i64> {
        match self {
            IntOrString::Int(n) => Ok(n),
            IntOrString::Text(text) => text.parse().map_err(|_| {
                Error::invalid_config(
                    path,
                    &text,
                    "must be an integer, written bare or quoted; Argo's arguments \
                     (`{{args.…}}`) are not substituted here, so write the value itself",
                )
            }),
        }
    }

    /// As [`integer`](Self::integer), for a field that cannot be negative.
    fn count(self, path: &str) -> Result<u32> {
        let n = self.integer(path)?;
        u32::try_from(n)
            .map_err(|_| Error::invalid_config(path, n, format!("must be from 0 to {}", u32::MAX)))
    }
}

impl TryFrom<WrittenArgoConfig> for ArgoConfig {
    type Error = Error;

    fn try_from(w: WrittenArgoConfig) -> Result<Self> {
        super::refuse_written(
            "argoConfig",
            &[("provider", &w.provider)],
            "is not read: a measurement is the `quantity` of `metric` that the deployment's \
             metrics source reads for the canary, so the provider's query is left out",
        )?;
        let limit = |v: Option<IntOrString>, name: &str, default: u32| {
            v.map_or(Ok(default), |v| v.count(&format!("argoConfig.{name}")))
        };
        let failure_limit = match w.failure_limit {
            Some(v) => v.integer("argoConfig.failureLimit")?,
            None => 0,
        };
        let inconclusive_limit = limit(w.inconclusive_limit, "inconclusiveLimit", 0)?;
        let consecutive_error_limit = limit(
            w.consecutive_error_limit,
            "consecutiveErrorLimit",
            default_consecutive_error_limit(),
        )?;
        let consecutive_success_limit =
            limit(w.consecutive_success_limit, "consecutiveSuccessLimit", 0)?;
        // Absent (`None`), `null` (`Some(None)`) or a number.
        let written = match w.count {
            None => None,
            Some(None) => Some(None),
            Some(Some(v)) => Some(Some(v.count("argoConfig.count")?)),
        };
        let count = match written {
            Some(None) => None,
            Some(Some(n)) if n > 0 => Some(n),
            // Argo's `EffectiveCount`: without a count, one measurement unless an interval
            // repeats it until stopped.
            _ => w.interval.is_none().then_some(1),
        };
        let config = ArgoConfig {
            name: w.name,
            metric: w.metric,
            quantity: w.quantity,
            success_condition: w.success_condition,
            failure_condition: w.failure_condition,
            failure_limit,
            inconclusive_limit,
            consecutive_error_limit,
            consecutive_success_limit,
            count,
            interval: w.interval,
            dry_run: w.dry_run,
            initial_delay: w.initial_delay,
        };
        // Refused when read, as a judge refuses it: a config that loaded and failed only
        // once a judge was built from it would pass every check of the file it came in.
        config.validate()?;
        Ok(config)
    }
}

fn default_consecutive_error_limit() -> u32 {
    4
}

impl ArgoConfig {
    /// Argo's defaults for `metric` measured as `quantity`, with no conditions, running until
    /// stopped (`count` `None`): the caller decides how often and how long it feeds the judge.
    /// Set `count` to `Some(1)` for Argo's one measurement of a metric with neither count nor
    /// interval, which is what such a config reads as.
    pub fn new(metric: Metric, quantity: Quantity) -> Self {
        ArgoConfig {
            name: None,
            metric,
            quantity,
            success_condition: None,
            failure_condition: None,
            failure_limit: 0,
            inconclusive_limit: 0,
            consecutive_error_limit: default_consecutive_error_limit(),
            consecutive_success_limit: 0,
            count: None,
            interval: None,
            dry_run: false,
            initial_delay: None,
        }
    }

    /// Checks the configuration, naming the path (`argoConfig.failureLimit`).
    pub fn validate(&self) -> Result<()> {
        self.quantity.validate("argoConfig.quantity")?;
        if let Some(r) = &self.success_condition {
            r.validate("argoConfig.successCondition")?;
        }
        if let Some(r) = &self.failure_condition {
            r.validate("argoConfig.failureCondition")?;
        }
        if self.failure_limit < -1 {
            return Err(Error::invalid_config(
                "argoConfig.failureLimit",
                self.failure_limit,
                "must be ≥ 0, or −1 to disable",
            ));
        }
        if !self.failure_applies() && !self.success_applies() {
            // Argo ≥ 1.8 refuses it too: such a metric could never end but by error.
            return Err(Error::invalid_config(
                "argoConfig.failureLimit",
                self.failure_limit,
                "disables the failure limit while consecutiveSuccessLimit is 0 (off): one of \
                 them must apply, or the metric can neither fail nor succeed",
            ));
        }
        if let Some(count) = self.count {
            if count == 0 {
                return Err(Error::invalid_config(
                    "argoConfig.count",
                    0,
                    "must be at least 1 (`None` runs until stopped)",
                ));
            }
            // Argo's `ValidateMetric`: limits a run of `count` measurements could never reach.
            // Argo checks only a count it was given and runs the default one measurement against
            // any limit; here that count is checked too, as such a limit is a mistake.
            for (name, limit) in [
                ("failureLimit", self.failure_limit),
                ("inconclusiveLimit", i64::from(self.inconclusive_limit)),
                (
                    "consecutiveSuccessLimit",
                    i64::from(self.consecutive_success_limit),
                ),
            ] {
                if i64::from(count) < limit {
                    // Most likely Argo's one measurement of a metric without an interval.
                    let hint = if count == 1 && self.interval.is_none() {
                        "; a metric with neither count nor interval takes one measurement, and \
                         one with an interval alone runs until stopped"
                    } else {
                        ""
                    };
                    return Err(Error::invalid_config(
                        "argoConfig.count",
                        count,
                        format!(
                            "must be ≥ {name} ({limit}), which the run could never reach{hint}"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The phase of one measurement of `result` (upstream `EvaluateResult`).
    pub(super) fn evaluate(&self, result: Option<f64>) -> ArgoPhase {
        let Some(v) = result.filter(|v| v.is_finite()) else {
            return ArgoPhase::Error;
        };
        let mut success = self.success_condition.as_ref().is_some_and(|c| c.holds(v));
        let mut fail = self.failure_condition.as_ref().is_some_and(|c| c.holds(v));
        match (&self.success_condition, &self.failure_condition) {
            (None, None) => return ArgoPhase::Successful,
            (Some(_), None) => fail = !success,
            (None, Some(_)) => success = !fail,
            (Some(_), Some(_)) => {}
        }
        if fail {
            ArgoPhase::Failed
        } else if success {
            ArgoPhase::Successful
        } else {
            ArgoPhase::Inconclusive
        }
    }

    /// Whether `failureLimit` applies (it is not −1).
    pub(super) fn failure_applies(&self) -> bool {
        self.failure_limit >= 0
    }

    /// Whether `consecutiveSuccessLimit` applies (it is not 0).
    pub(super) fn success_applies(&self) -> bool {
        self.consecutive_success_limit > 0
    }
}
