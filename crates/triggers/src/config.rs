//! Trigger configuration as users write it (camelCase, durations as `30s` or milliseconds),
//! validated on load with errors that name the path.
//!
//! ```
//! use serin_triggers::TriggerConfig;
//!
//! // The brief's metric trigger, as JSON (YAML and TOML read the same way).
//! let t: TriggerConfig = serde_json::from_str(r#"{
//!     "kind": "metricThreshold", "id": "error-rate",
//!     "metric": "error_rate", "operator": "gt", "value": 0.10,
//!     "duration": 30000, "cooldown": "1m"
//! }"#)?;
//! t.validate("triggers[0]")?;
//! assert_eq!(t.id(), "error-rate");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serin_signals::{Metric, Probe, Track};

use crate::action::{Action, MissingData};
use crate::error::{Error, Result};
use crate::evidence::TriggerKind;
use crate::lifecycle::Timing;
use crate::operator::Operator;

fn canary() -> Track {
    Track::Canary
}
fn stable() -> Track {
    Track::Stable
}
fn rollback() -> Action {
    Action::Rollback
}
fn one_minute() -> Duration {
    Duration::from_secs(60)
}
fn two_minutes() -> Duration {
    Duration::from_secs(120)
}
fn five_seconds() -> Duration {
    Duration::from_secs(5)
}
fn three() -> u32 {
    3
}
fn fifty() -> f64 {
    50.0
}
fn ten() -> u64 {
    10
}
fn hundred() -> u64 {
    100
}
fn one() -> f64 {
    1.0
}
fn arl() -> f64 {
    10_000.0
}
fn thirty_two() -> usize {
    32
}

/// One trigger, tagged by `kind`.
///
/// Read by hand rather than as serde's internally tagged enum, which buffers the whole entry
/// and so hides from a reader's error the field it is about: a bad value is named by its path
/// (`triggers[2].value`), not only by its entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum TriggerConfig {
    /// A metric compared with a threshold for a duration.
    MetricThreshold(MetricThresholdConfig),
    /// Consecutive failing probes of the watched track.
    HealthCheck(HealthCheckConfig),
    /// Error rate above a baseline.
    ErrorSpike(ErrorSpikeConfig),
    /// An external dependency failing its checks.
    DependencyFailure(DependencyFailureConfig),
    /// CPU or memory above a share of capacity for a duration.
    ResourceUsage(ResourceUsageConfig),
}

impl<'de> Deserialize<'de> for TriggerConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_map(TriggerVisitor)
    }
}

/// Reads the fields after `kind` straight from the reader, so that its errors keep their path;
/// the fields written before `kind` are held until it is known.
struct TriggerVisitor;

impl<'de> Visitor<'de> for TriggerVisitor {
    type Value = TriggerConfig;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a trigger: a map with a `kind`")
    }

    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<TriggerConfig, A::Error> {
        let mut before = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if key != "kind" {
                let value = if TEXT_FIELDS.contains(&key.as_str()) {
                    map.next_value::<Option<String>>()?
                        .map_or(Scalar::Null, Scalar::Str)
                } else {
                    map.next_value::<Scalar>()?
                };
                before.push((key, value));
                continue;
            }
            let kind: TriggerKind = map.next_value()?;
            let fields = MapAccessDeserializer::new(Fields {
                has_id: before.iter().any(|(key, _)| key == "id"),
                before: before.into_iter(),
                held: None,
                map,
            });
            return Ok(match kind {
                TriggerKind::MetricThreshold => {
                    TriggerConfig::MetricThreshold(Deserialize::deserialize(fields)?)
                }
                TriggerKind::HealthCheck => {
                    TriggerConfig::HealthCheck(Deserialize::deserialize(fields)?)
                }
                TriggerKind::ErrorSpike => {
                    TriggerConfig::ErrorSpike(Deserialize::deserialize(fields)?)
                }
                TriggerKind::DependencyFailure => {
                    TriggerConfig::DependencyFailure(Deserialize::deserialize(fields)?)
                }
                TriggerKind::ResourceUsage => {
                    TriggerConfig::ResourceUsage(Deserialize::deserialize(fields)?)
                }
            });
        }
        Err(de::Error::custom(missing_kind(
            before.iter().map(|(key, _)| key.as_str()),
        )))
    }
}

/// The fields whose values are text, held as text when written before `kind`: a YAML reader
/// gives `id: 42` as the text `42` when asked for text, as it is after `kind`, but as a number
/// when asked for anything.
const TEXT_FIELDS: [&str; 7] = [
    "id",
    "track",
    "baselineTrack",
    "serviceName",
    "dependency",
    "metric",
    "callMetric",
];

/// The fields that only one kind of trigger has, by which an entry without `kind` (the brief
/// writes none) is told which kind it is.
const OWN_FIELDS: [(TriggerKind, &[&str]); 5] = [
    (
        TriggerKind::MetricThreshold,
        &["metric", "operator", "value", "warnValue", "quantile"],
    ),
    (
        TriggerKind::HealthCheck,
        &[
            "serviceName",
            "checkType",
            "checkInterval",
            "failingShare",
            "maxInstances",
        ],
    ),
    (
        TriggerKind::ErrorSpike,
        &[
            "baselineErrorRate",
            "learnFor",
            "increasePercentage",
            "windowSize",
            "minErrorCount",
            "minBaselineRequests",
            "detector",
            "averageRunLength",
            "dispersion",
        ],
    ),
    (
        TriggerKind::DependencyFailure,
        &[
            "dependency",
            "callMetric",
            "maxCallErrorRate",
            "onSharedOutage",
        ],
    ),
    (
        TriggerKind::ResourceUsage,
        &["resource", "capacity", "warnPercent", "rollbackPercent"],
    ),
];

/// The error for an entry without `kind`: the kinds, and the one its `fields` belong to when
/// they belong to exactly one.
fn missing_kind<'a>(fields: impl Iterator<Item = &'a str> + Clone) -> String {
    let kinds: Vec<String> = OWN_FIELDS
        .iter()
        .map(|(kind, _)| format!("`{kind}`"))
        .collect();
    let mut message = format!(
        "missing field `kind`: a trigger is one of {}",
        kinds.join(", ")
    );
    let mut matches = OWN_FIELDS.iter().filter_map(|(kind, own)| {
        let written: Vec<String> = fields
            .clone()
            .filter(|f| own.contains(f))
            .map(|f| format!("`{f}`"))
            .collect();
        (!written.is_empty()).then(|| (kind, written.join(", ")))
    });
    if let (Some((kind, written)), None) = (matches.next(), matches.next()) {
        message.push_str(&format!(
            "; {written}: fields of a `{kind}`, so write `kind: {kind}`"
        ));
    }
    message
}

/// A trigger's fields: those held from before `kind`, then the rest of the reader's map.
struct Fields<A> {
    before: std::vec::IntoIter<(String, Scalar)>,
    held: Option<(String, Scalar)>,
    map: A,
    /// Whether an `id` was read, which the entries copied from the brief lack.
    has_id: bool,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Fields<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> std::result::Result<Option<K::Value>, A::Error> {
        let Some((key, value)) = self.before.next() else {
            let key = self.map.next_key_seed(NotingId {
                seed,
                has_id: &mut self.has_id,
            })?;
            if key.is_none() && !self.has_id {
                return Err(de::Error::custom(
                    "missing field `id`: every trigger needs a unique `id`, which its events \
                     name (`id: error-rate`)",
                ));
            }
            return Ok(key);
        };
        let read = seed.deserialize(key.as_str().into_deserializer())?;
        self.held = Some((key, value));
        Ok(Some(read))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> std::result::Result<V::Value, A::Error> {
        match self.held.take() {
            // Read from the hold, out of the reader's sight: the error names its field itself.
            Some((key, value)) => seed
                .deserialize(Held(value, PhantomData::<A::Error>))
                .map_err(|e| de::Error::custom(format_args!("{key}: {e}"))),
            None => self.map.next_value_seed(seed),
        }
    }
}

/// A key seed that notes an `id`. The key is read within the reader's own call, so an
/// unknown field's error keeps the key's position.
struct NotingId<'a, K> {
    seed: K,
    has_id: &'a mut bool,
}

impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for NotingId<'_, K> {
    type Value = K::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<K::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, K: DeserializeSeed<'de>> Visitor<'de> for NotingId<'_, K> {
    type Value = K::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> std::result::Result<K::Value, E> {
        *self.has_id |= key == "id";
        self.seed.deserialize(key.into_deserializer())
    }
}

/// A field's value written before `kind`: every field of a trigger is a scalar.
enum Scalar {
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(String),
    Null,
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, a string, a boolean or null")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<Scalar, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Scalar, E> {
                Ok(Scalar::U64(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Scalar, E> {
                Ok(Scalar::I64(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Scalar, E> {
                Ok(Scalar::F64(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Scalar, E> {
                Ok(Scalar::Str(v.to_owned()))
            }
            fn visit_unit<E: de::Error>(self) -> std::result::Result<Scalar, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E: de::Error>(self) -> std::result::Result<Scalar, E> {
                Ok(Scalar::Null)
            }
        }
        d.deserialize_any(ScalarVisitor)
    }
}

/// A held [`Scalar`], read with the reader's error type.
struct Held<E>(Scalar, PhantomData<E>);

impl<'de, E: de::Error> Deserializer<'de> for Held<E> {
    type Error = E;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> std::result::Result<V::Value, E> {
        match self.0 {
            Scalar::Bool(v) => visitor.visit_bool(v),
            Scalar::U64(v) => visitor.visit_u64(v),
            Scalar::I64(v) => visitor.visit_i64(v),
            Scalar::F64(v) => visitor.visit_f64(v),
            Scalar::Str(v) => visitor.visit_string(v),
            Scalar::Null => visitor.visit_unit(),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> std::result::Result<V::Value, E> {
        match self.0 {
            Scalar::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> std::result::Result<V::Value, E> {
        match self.0 {
            Scalar::Str(v) => visitor.visit_enum(v.into_deserializer()),
            _ => self.deserialize_any(visitor),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct newtype_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

/// A metric compared with a threshold (`error_rate gt 0.10 for 30s`), like a Prometheus alert
/// rule with `for:`.
///
/// The value read from each observation: counts give the error rate (requests per second for
/// `throughput`), a latency sketch gives its `quantile` in milliseconds, a gauge its value.
/// Counts for a metric other than `error_rate` or `throughput`, and a sketch for one other than
/// `latency`, are rejected (a custom metric may come as anything).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricThresholdConfig {
    /// Unique id, named in events.
    pub id: String,
    /// The watched track (default `canary`).
    #[serde(default = "canary")]
    pub track: Track,
    /// The metric read.
    pub metric: Metric,
    /// The comparison that counts as a breach.
    pub operator: Operator,
    /// The threshold of `action`. Ratios are fractions (`0.10` = 10%; an `error_rate` level
    /// outside 0..=1 is refused, as it could never be reached, and so are `gt 1` and `lt 0`;
    /// `ge 0` and `le 1` are refused too, as every window breaches them), latency milliseconds.
    pub value: f64,
    /// The action asked for when `value` is breached for `duration` (default `rollback`).
    #[serde(default = "rollback")]
    pub action: Action,
    /// An optional, less severe level that only warns (error rate: warn at `0.10`, roll back at
    /// `0.20`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn_value: Option<f64>,
    /// The quantile read from latency sketches (default `0.99`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantile: Option<f64>,
    /// How long the breach must hold before firing (Prometheus `for:`; default 0), in data time
    /// from the first breaching input to the latest one; an input on the healthy side resets it.
    /// Inputs without data (a window without requests) neither end a pending breach nor count
    /// as breaching; a gap longer than `staleAfter` ends it. Prometheus' `for:` drops a pending
    /// alert when its expression returns nothing; Serin does not, because at low traffic windows
    /// without data are common and must not reset a real breach.
    #[serde(default, with = "serin_signals::duration")]
    pub duration: Duration,
    /// After firing, no fire of the same or a lower level for this long (default 1m).
    #[serde(default = "one_minute", with = "serin_signals::duration")]
    pub cooldown: Duration,
    /// What to do when data is missing (default `hold`).
    #[serde(default)]
    pub on_missing_data: MissingData,
    /// No usable data for longer than this is *stale* (default 1m).
    #[serde(default = "one_minute", with = "serin_signals::duration")]
    pub stale_after: Duration,
}

/// Which probe a health-check trigger watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CheckType {
    /// Readiness probes.
    Readiness,
    /// Liveness probes.
    Liveness,
    /// Startup probes.
    Startup,
}

impl CheckType {
    /// The probe this check type reads.
    pub fn probe(self) -> Probe {
        match self {
            CheckType::Readiness => Probe::Readiness,
            CheckType::Liveness => Probe::Liveness,
            CheckType::Startup => Probe::Startup,
        }
    }
}

/// Consecutive failing probes of the watched track (per instance), or a share of its instances
/// failing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// Unique id, named in events.
    pub id: String,
    /// The watched track (default `canary`).
    #[serde(default = "canary")]
    pub track: Track,
    /// The service checked, named in evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// Which probe is read.
    pub check_type: CheckType,
    /// Consecutive failures of one instance that count as failing (default 3).
    #[serde(default = "three")]
    pub failure_threshold: u32,
    /// How often probes run (default 5s); staleness defaults to three intervals.
    #[serde(default = "five_seconds", with = "serin_signals::duration")]
    pub check_interval: Duration,
    /// If set, fire only when at least this fraction (`0.5` = half) of the instances seen
    /// recently are failing; if unset, one failing instance is enough.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_share: Option<f64>,
    /// Instances remembered at most (default 32, which keeps a trigger under 4 KiB). A new
    /// instance takes the place of the least recently seen one only once that one has been
    /// silent for `staleAfter`; until then it is not counted, so set this to at least the
    /// number of instances the track runs.
    #[serde(default = "thirty_two")]
    pub max_instances: usize,
    /// The action asked for (default `rollback`).
    #[serde(default = "rollback")]
    pub action: Action,
    /// After firing, no fire of the same or a lower level for this long (default 1m).
    #[serde(default = "one_minute", with = "serin_signals::duration")]
    pub cooldown: Duration,
    /// What to do when probe results are missing (default `hold`).
    #[serde(default)]
    pub on_missing_data: MissingData,
    /// No usable probe result for longer than this is *stale* (default 3 × `checkInterval`, at
    /// least `checkInterval`).
    #[serde(
        default,
        with = "serin_signals::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub stale_after: Option<Duration>,
}

/// The detector an error-spike trigger runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Detector {
    /// Bernoulli CUSUM on the counts of each observation (the default): its average run length
    /// to a false alarm is at least `averageRunLength` observations when the true error rate is
    /// the baseline.
    #[default]
    Cusum,
    /// The simple rule: error rate over `windowSize` above baseline × (1 + increase).
    Ratio,
}

/// Error rate above a baseline by `increasePercentage` percent.
///
/// The baseline is exactly one of: `baselineErrorRate` (fixed), `baselineTrack` (learned from
/// that track's counts over `windowSize`, e.g. `stable`), or `learnFor` (learned from the watched
/// track's own first `learnFor` of data: the pre-deploy window, judged healthy by definition).
/// `learnFor` therefore needs a watched track that served before the deploy (`stable`, or a
/// named track): it is refused on `canary`, the version under evaluation, which has no data from
/// before the deploy and would learn its own faults as the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErrorSpikeConfig {
    /// Unique id, named in events.
    pub id: String,
    /// The watched track (default `canary`); its `error_rate` observations must hold counts.
    #[serde(default = "canary")]
    pub track: Track,
    /// A fixed baseline error rate, as a fraction (`0.02` = 2%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_error_rate: Option<f64>,
    /// Learn the baseline from this track's error rate over `windowSize`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_track: Option<Track>,
    /// Learn the baseline from the watched track's first `learnFor` of data (the requests served
    /// meanwhile are healthy by definition; a window without any is no data). Nothing later is
    /// learned: it is the data under judgment, and a spike taken into the baseline would hide
    /// itself. If the window holds fewer than `minBaselineRequests` requests, the baseline stays
    /// unknown and the trigger answers no data (it goes stale and asks for `onMissingData`):
    /// give low-traffic services a longer `learnFor`. Not on the `canary` track, which has no
    /// data from before the deploy.
    #[serde(
        default,
        with = "serin_signals::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub learn_for: Option<Duration>,
    /// The increase over the baseline that is a spike, in percent (`50` = 1.5 × baseline;
    /// default 50).
    #[serde(default = "fifty")]
    pub increase_percentage: f64,
    /// The window the ratio rule and `minErrorCount` look at (default 1m).
    #[serde(default = "one_minute", with = "serin_signals::duration")]
    pub window_size: Duration,
    /// Fewer errors than this in the window never fire (default 10).
    #[serde(default = "ten")]
    pub min_error_count: u64,
    /// A learned baseline needs at least this many requests (default 100, at least 1); with
    /// fewer the trigger has no data (a `learnFor` baseline for good, as it learns nothing past
    /// its window).
    #[serde(default = "hundred")]
    pub min_baseline_requests: u64,
    /// The detector (default `cusum`).
    #[serde(default)]
    pub detector: Detector,
    /// CUSUM only: the average number of observations between false alarms when nothing changed
    /// (default 10000); the CUSUM threshold is its natural logarithm.
    #[serde(default = "arl")]
    pub average_run_length: f64,
    /// CUSUM only: how much more the error counts vary between observations than independent
    /// requests would (variance ÷ binomial variance, measured on healthy traffic at typical
    /// volume; default 1). Each log-likelihood ratio is divided by it (a quasi-binomial CUSUM),
    /// so the run-length promise still holds approximately when error rates wander between
    /// windows independently of the version.
    #[serde(default = "one")]
    pub dispersion: f64,
    /// How long the spike must hold before firing (default 0), measured as
    /// [`MetricThresholdConfig::duration`] is: in data time, reset by an input on the healthy
    /// side, neither ended nor extended by inputs without data.
    #[serde(default, with = "serin_signals::duration")]
    pub duration: Duration,
    /// After firing, no fire of the same or a lower level for this long (default 2m).
    #[serde(default = "two_minutes", with = "serin_signals::duration")]
    pub cooldown: Duration,
    /// The action asked for (default `rollback`).
    #[serde(default = "rollback")]
    pub action: Action,
    /// What to do when data is missing (default `hold`).
    #[serde(default)]
    pub on_missing_data: MissingData,
    /// No usable data for longer than this is *stale* (default 1m).
    #[serde(default = "one_minute", with = "serin_signals::duration")]
    pub stale_after: Duration,
}

/// What a dependency failure seen by both arms leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SharedOutage {
    /// Hold (the default): the dependency is down for everyone, rolling back would not help.
    #[default]
    Hold,
    /// Roll back anyway.
    Rollback,
}

/// An external dependency failing `failureThreshold` consecutive checks from the watched track.
///
/// Checks are `dependency(<name>)` probes and, if `callMetric` is set, observations of the error
/// rate of calls to it (a check fails above `maxCallErrorRate`). Probes and calls are two
/// streams, each with its own streak: a probe that passes (the dependency answers) does not
/// clear calls that fail (its queries do), nor the reverse. The baseline track's view of the
/// same dependency, in the same stream, tells the cases apart: if the baseline still passes, the
/// new version broke its use of the dependency and the trigger asks for `action`; if the baseline
/// fails too or has no recent result, the dependency is down for everyone and the trigger asks
/// for `onSharedOutage` (never more than `action`: an optional dependency, `action: warn`, only
/// warns either way).
/// "Still passes" means the baseline's latest result is a pass that came while the watched track
/// was failing: at or after the first failure of the watched track's current streak (a pass from
/// before the failures began only says the baseline has not been checked since, and proves
/// nothing), and no later than its latest failure (so the end of a shared outage, the baseline's
/// pass arriving before the watched track's, is not mistaken for a fault of the new version).
///
/// Each check counts once: a probe result whose time is not later than the newest one of its
/// track and instance, or a call window not later than the newest one of its track, is the same
/// check read again (or an older one) and is ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DependencyFailureConfig {
    /// Unique id, named in events.
    pub id: String,
    /// The watched track (default `canary`).
    #[serde(default = "canary")]
    pub track: Track,
    /// The dependency's name, as in `Probe::Dependency`.
    pub dependency: String,
    /// The track whose view of the dependency is the reference (default `stable`).
    #[serde(default = "stable")]
    pub baseline_track: Track,
    /// Consecutive failed checks of one stream (probes, or call windows) that count as failing
    /// (default 3). Every probe result of the watched track is one check, whatever instance it
    /// names: a source that probes the dependency from each instance gives one check per
    /// instance and round, so set this to the checks of the rounds it should span (3 rounds
    /// of 3 instances: 9), or probe once per track, as the simulator does.
    #[serde(default = "three")]
    pub failure_threshold: u32,
    /// A metric carrying the counts of calls to the dependency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_metric: Option<Metric>,
    /// The call error rate (fraction) above which a call observation is a failed check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_call_error_rate: Option<f64>,
    /// The action when only the watched track fails (default `rollback`).
    #[serde(default = "rollback")]
    pub action: Action,
    /// The answer when both tracks fail (default `hold`), capped at `action`.
    #[serde(default)]
    pub on_shared_outage: SharedOutage,
    /// After firing, no fire of the same or a lower level for this long (default 1m).
    #[serde(default = "one_minute", with = "serin_signals::duration")]
    pub cooldown: Duration,
    /// What to do when checks are missing (default `hold`).
    #[serde(default)]
    pub on_missing_data: MissingData,
    /// No usable check for longer than this is *stale*; also how recent the baseline's result
    /// must be to count (default 1m).
    #[serde(default = "one_minute", with = "serin_signals::duration")]
    pub stale_after: Duration,
}

/// A resource read by a resource-usage trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Resource {
    /// CPU, read from the `cpu` gauge in cores.
    Cpu,
    /// Memory, read from the `memory` gauge in bytes.
    Memory,
}

impl Resource {
    /// The metric carrying this resource.
    pub fn metric(self) -> Metric {
        match self {
            Resource::Cpu => Metric::Cpu,
            Resource::Memory => Metric::Memory,
        }
    }
}

/// CPU or memory above a percentage of capacity for a duration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceUsageConfig {
    /// Unique id, named in events.
    pub id: String,
    /// The watched track (default `canary`).
    #[serde(default = "canary")]
    pub track: Track,
    /// CPU or memory.
    pub resource: Resource,
    /// The capacity the percentages refer to: cores for CPU, bytes for memory.
    pub capacity: f64,
    /// Warn above this percentage of capacity (`80` = 80%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn_percent: Option<f64>,
    /// Roll back above this percentage of capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_percent: Option<f64>,
    /// How long the level must hold before firing (default 0), measured as
    /// [`MetricThresholdConfig::duration`] is: in data time, reset by an input on the healthy
    /// side, neither ended nor extended by inputs without data.
    #[serde(default, with = "serin_signals::duration")]
    pub duration: Duration,
    /// After firing, no fire of the same or a lower level for this long (default 1m).
    #[serde(default = "one_minute", with = "serin_signals::duration")]
    pub cooldown: Duration,
    /// What to do when data is missing (default `hold`).
    #[serde(default)]
    pub on_missing_data: MissingData,
    /// No usable data for longer than this is *stale* (default 1m).
    #[serde(default = "one_minute", with = "serin_signals::duration")]
    pub stale_after: Duration,
}

fn check_id(path: &str, id: &str) -> Result<()> {
    if id.trim().is_empty() || id.chars().count() > 128 {
        return Err(Error::config(
            format!("{path}.id"),
            id,
            "must be a non-blank name of at most 128 characters",
        ));
    }
    Ok(())
}

fn check_finite(path: &str, field: &str, v: f64) -> Result<()> {
    if !v.is_finite() {
        return Err(Error::config(
            format!("{path}.{field}"),
            v,
            "must be a finite number",
        ));
    }
    Ok(())
}

/// `0 < v < 1`.
fn check_fraction(path: &str, field: &str, v: f64) -> Result<()> {
    if !(v > 0.0 && v < 1.0) {
        return Err(Error::config(
            format!("{path}.{field}"),
            v,
            "must be a fraction strictly between 0 and 1 (0.02 = 2%)",
        ));
    }
    Ok(())
}

fn check_positive(path: &str, field: &str, d: Duration) -> Result<()> {
    if d.is_zero() {
        return Err(Error::config(
            format!("{path}.{field}"),
            "0s",
            "must be longer than zero",
        ));
    }
    Ok(())
}

impl TriggerConfig {
    /// The trigger's id.
    pub fn id(&self) -> &str {
        match self {
            TriggerConfig::MetricThreshold(c) => &c.id,
            TriggerConfig::HealthCheck(c) => &c.id,
            TriggerConfig::ErrorSpike(c) => &c.id,
            TriggerConfig::DependencyFailure(c) => &c.id,
            TriggerConfig::ResourceUsage(c) => &c.id,
        }
    }

    /// The trigger's kind.
    pub fn kind(&self) -> TriggerKind {
        match self {
            TriggerConfig::MetricThreshold(_) => TriggerKind::MetricThreshold,
            TriggerConfig::HealthCheck(_) => TriggerKind::HealthCheck,
            TriggerConfig::ErrorSpike(_) => TriggerKind::ErrorSpike,
            TriggerConfig::DependencyFailure(_) => TriggerKind::DependencyFailure,
            TriggerConfig::ResourceUsage(_) => TriggerKind::ResourceUsage,
        }
    }

    /// Checks every field; `path` (`triggers[2]`) prefixes the field named in the error.
    pub fn validate(&self, path: &str) -> Result<()> {
        check_id(path, self.id())?;
        self.check_names(path)?;
        match self {
            TriggerConfig::MetricThreshold(c) => c.validate(path),
            TriggerConfig::HealthCheck(c) => c.validate(path),
            TriggerConfig::ErrorSpike(c) => c.validate(path),
            TriggerConfig::DependencyFailure(c) => c.validate(path),
            TriggerConfig::ResourceUsage(c) => c.validate(path),
        }
    }

    /// Checks the tracks and metrics a config built in code may hold unchecked
    /// ([`Track::validate`], [`Metric::validate`]); read from a file they are checked already.
    /// A `Named("stable")` track would never see the stable track's inputs, so the trigger
    /// would watch nothing, and the engine, which refuses to write such a name, could not be
    /// journalled.
    fn check_names(&self, path: &str) -> Result<()> {
        type Fields<'a, T> = Vec<(&'static str, &'a T)>;
        let (tracks, metrics): (Fields<'_, Track>, Fields<'_, Metric>) = match self {
            TriggerConfig::MetricThreshold(c) => {
                (vec![("track", &c.track)], vec![("metric", &c.metric)])
            }
            TriggerConfig::HealthCheck(c) => (vec![("track", &c.track)], vec![]),
            TriggerConfig::ErrorSpike(c) => {
                let mut tracks = vec![("track", &c.track)];
                tracks.extend(c.baseline_track.as_ref().map(|t| ("baselineTrack", t)));
                (tracks, vec![])
            }
            TriggerConfig::DependencyFailure(c) => (
                vec![("track", &c.track), ("baselineTrack", &c.baseline_track)],
                c.call_metric.iter().map(|m| ("callMetric", m)).collect(),
            ),
            TriggerConfig::ResourceUsage(c) => (vec![("track", &c.track)], vec![]),
        };
        let named = |e: serin_signals::Error, field: String, value: String| match e {
            serin_signals::Error::InvalidField {
                field,
                value,
                reason,
            } => Error::InvalidConfig {
                field,
                value,
                reason,
            },
            other => Error::config(field, value, other.to_string()),
        };
        for (field, t) in tracks {
            let field = format!("{path}.{field}");
            t.validate(&field)
                .map_err(|e| named(e, field.clone(), t.as_str().to_owned()))?;
        }
        for (field, m) in metrics {
            let field = format!("{path}.{field}");
            m.validate(&field)
                .map_err(|e| named(e, field.clone(), m.as_str().to_owned()))?;
        }
        Ok(())
    }

    pub(crate) fn timing(&self) -> Timing {
        match self {
            TriggerConfig::MetricThreshold(c) => Timing {
                duration: c.duration,
                cooldown: c.cooldown,
                stale_after: c.stale_after,
                missing: c.on_missing_data,
            },
            TriggerConfig::HealthCheck(c) => Timing {
                duration: Duration::ZERO,
                cooldown: c.cooldown,
                stale_after: c.effective_stale_after(),
                missing: c.on_missing_data,
            },
            TriggerConfig::ErrorSpike(c) => Timing {
                duration: c.duration,
                cooldown: c.cooldown,
                stale_after: c.stale_after,
                missing: c.on_missing_data,
            },
            TriggerConfig::DependencyFailure(c) => Timing {
                duration: Duration::ZERO,
                cooldown: c.cooldown,
                stale_after: c.stale_after,
                missing: c.on_missing_data,
            },
            TriggerConfig::ResourceUsage(c) => Timing {
                duration: c.duration,
                cooldown: c.cooldown,
                stale_after: c.stale_after,
                missing: c.on_missing_data,
            },
        }
    }
}

impl MetricThresholdConfig {
    /// The quantile read from latency sketches.
    pub fn effective_quantile(&self) -> f64 {
        self.quantile.unwrap_or(0.99)
    }

    fn validate(&self, path: &str) -> Result<()> {
        check_finite(path, "value", self.value)?;
        check_positive(path, "staleAfter", self.stale_after)?;
        // An error rate is a fraction: a level written as a percentage (`10` for 10%) could
        // never be reached, and the trigger would watch without ever firing.
        if self.metric == Metric::ErrorRate {
            for (field, v) in [("value", Some(self.value)), ("warnValue", self.warn_value)] {
                if let Some(v) = v
                    && !(0.0..=1.0).contains(&v)
                {
                    return Err(Error::config(
                        format!("{path}.{field}"),
                        v,
                        "an error_rate level is a fraction of requests between 0 and 1 \
                         (0.10 = 10%); a level outside that range is never reached",
                    ));
                }
            }
            // The ends of the range are levels too, but no rate lies above 1 or below 0: such a
            // level would never be breached either (a warn level lies inside it, as it must be
            // reached first).
            let (value, op) = (self.value, self.operator);
            if (op == Operator::Gt && value >= 1.0) || (op == Operator::Lt && value <= 0.0) {
                return Err(Error::config(
                    format!("{path}.value"),
                    value,
                    format!(
                        "with operator `{}` this level is never breached: an error_rate lies \
                         between 0 and 1",
                        format!("{op:?}").to_lowercase()
                    ),
                ));
            }
            // Nor is a level every rate breaches, a clean window's 0 included (`ge 0`, `le 1`):
            // the trigger would fire on the first window of any version, good or bad, and roll
            // back (or warn on) every deployment.
            for (field, v) in [("value", Some(value)), ("warnValue", self.warn_value)] {
                if let Some(v) = v
                    && ((op == Operator::Ge && v <= 0.0) || (op == Operator::Le && v >= 1.0))
                {
                    return Err(Error::config(
                        format!("{path}.{field}"),
                        v,
                        format!(
                            "with operator `{}` this level is breached by every error_rate, \
                             a window without errors included: an error_rate lies between 0 \
                             and 1",
                            format!("{op:?}").to_lowercase()
                        ),
                    ));
                }
            }
        }
        if let Some(q) = self.quantile {
            if !(q > 0.0 && q <= 1.0) {
                return Err(Error::config(
                    format!("{path}.quantile"),
                    q,
                    "must be in (0, 1] (0.99 = p99)",
                ));
            }
            // Read only from latency sketches: a metric that never gives one would ignore it,
            // and the threshold would apply to another value than the one written.
            if matches!(
                self.metric,
                Metric::ErrorRate | Metric::Throughput | Metric::Cpu | Metric::Memory
            ) {
                return Err(Error::config(
                    format!("{path}.quantile"),
                    q,
                    format!(
                        "is read from latency sketches only, and `{}` gives counts or a gauge",
                        self.metric
                    ),
                ));
            }
        }
        if let Some(w) = self.warn_value {
            check_finite(path, "warnValue", w)?;
            if self.action == Action::Warn {
                return Err(Error::config(
                    format!("{path}.warnValue"),
                    w,
                    "a warn level needs a more severe `action` than warn",
                ));
            }
            if !self.operator.less_severe(w, self.value) {
                return Err(Error::config(
                    format!("{path}.warnValue"),
                    w,
                    format!(
                        "must be reached before `value` {} with operator `{}`",
                        self.value, self.operator
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl HealthCheckConfig {
    /// `staleAfter`, or three check intervals.
    pub fn effective_stale_after(&self) -> Duration {
        self.stale_after
            .unwrap_or(self.check_interval.saturating_mul(3))
    }

    fn validate(&self, path: &str) -> Result<()> {
        if self.failure_threshold == 0 {
            return Err(Error::config(
                format!("{path}.failureThreshold"),
                0,
                "must be at least 1",
            ));
        }
        check_positive(path, "checkInterval", self.check_interval)?;
        // Results come once per interval: a shorter staleAfter would find each one missing
        // before the next, and the trigger would report missing data between any two probes.
        if let Some(s) = self.stale_after
            && s < self.check_interval
        {
            return Err(Error::config(
                format!("{path}.staleAfter"),
                format!("{s:?}"),
                format!(
                    "must be at least checkInterval {:?}: probe results come once per interval",
                    self.check_interval
                ),
            ));
        }
        if let Some(share) = self.failing_share
            && !(share > 0.0 && share <= 1.0)
        {
            return Err(Error::config(
                format!("{path}.failingShare"),
                share,
                "must be in (0, 1] (0.5 = half of the instances)",
            ));
        }
        if !(1..=1024).contains(&self.max_instances) {
            return Err(Error::config(
                format!("{path}.maxInstances"),
                self.max_instances,
                "must be between 1 and 1024",
            ));
        }
        Ok(())
    }
}

impl ErrorSpikeConfig {
    /// The CUSUM threshold `h = ln(averageRunLength)`.
    pub fn cusum_threshold(&self) -> f64 {
        self.average_run_length.ln()
    }

    fn validate(&self, path: &str) -> Result<()> {
        let sources = usize::from(self.baseline_error_rate.is_some())
            + usize::from(self.baseline_track.is_some())
            + usize::from(self.learn_for.is_some());
        if sources != 1 {
            return Err(Error::config(
                format!("{path}.baselineErrorRate"),
                format!("{sources} baseline sources"),
                "set exactly one of baselineErrorRate, baselineTrack or learnFor",
            ));
        }
        if !(self.increase_percentage.is_finite() && self.increase_percentage > 0.0) {
            return Err(Error::config(
                format!("{path}.increasePercentage"),
                self.increase_percentage,
                "must be a positive percentage (50 = 1.5 × baseline)",
            ));
        }
        if let Some(p0) = self.baseline_error_rate {
            check_fraction(path, "baselineErrorRate", p0)?;
            let p1 = p0 * (1.0 + self.increase_percentage / 100.0);
            if p1 >= 1.0 {
                return Err(Error::config(
                    format!("{path}.increasePercentage"),
                    self.increase_percentage,
                    format!("puts the spike level {p1} at or above 100% for baseline {p0}"),
                ));
            }
        }
        if let Some(t) = &self.baseline_track
            && *t == self.track
        {
            return Err(Error::config(
                format!("{path}.baselineTrack"),
                t,
                "must differ from the watched track",
            ));
        }
        if let Some(d) = self.learn_for {
            check_positive(path, "learnFor", d)?;
            // The canary is the version under evaluation: it has no data from before the deploy,
            // so its "pre-deploy window" would be its own first minutes, faults included.
            if self.track == Track::Canary {
                return Err(Error::config(
                    format!("{path}.learnFor"),
                    format!("{d:?}"),
                    format!(
                        "learns the baseline from the watched track's data before the deploy, \
                         but track `{}` is the version under evaluation and has none: watch a \
                         track that served before it, or use baselineTrack (e.g. `stable`) or \
                         baselineErrorRate",
                        self.track
                    ),
                ));
            }
        }
        // From no requests the learned rate would be the smoothing's 0.5 alone.
        if self.min_baseline_requests == 0 {
            return Err(Error::config(
                format!("{path}.minBaselineRequests"),
                0,
                "must be at least 1: a baseline is learned from requests",
            ));
        }
        if self.window_size < Duration::from_millis(crate::buckets::BUCKETS as u64) {
            return Err(Error::config(
                format!("{path}.windowSize"),
                format!("{:?}", self.window_size),
                format!(
                    "must be at least {} ms (one per bucket)",
                    crate::buckets::BUCKETS
                ),
            ));
        }
        if !(self.average_run_length.is_finite() && self.average_run_length > 1.0) {
            return Err(Error::config(
                format!("{path}.averageRunLength"),
                self.average_run_length,
                "must be a finite number of observations above 1",
            ));
        }
        if !(self.dispersion.is_finite() && self.dispersion >= 1.0) {
            return Err(Error::config(
                format!("{path}.dispersion"),
                self.dispersion,
                "must be a finite variance ratio of at least 1",
            ));
        }
        check_positive(path, "staleAfter", self.stale_after)
    }
}

impl DependencyFailureConfig {
    /// The action when both tracks fail: `onSharedOutage`, but never more than `action`. An
    /// outage everyone sees is not the new version's fault, so it asks for no more than that
    /// fault would: a dependency the service can do without (`action: warn`) warns, and does
    /// not hold every deployment while it is down.
    pub fn shared_outage_action(&self) -> Action {
        let shared = match self.on_shared_outage {
            SharedOutage::Hold => Action::Hold,
            SharedOutage::Rollback => Action::Rollback,
        };
        shared.min(self.action)
    }

    fn validate(&self, path: &str) -> Result<()> {
        if self.dependency.trim().is_empty() {
            return Err(Error::config(
                format!("{path}.dependency"),
                &self.dependency,
                "must name the dependency",
            ));
        }
        if self.failure_threshold == 0 {
            return Err(Error::config(
                format!("{path}.failureThreshold"),
                0,
                "must be at least 1",
            ));
        }
        if self.baseline_track == self.track {
            return Err(Error::config(
                format!("{path}.baselineTrack"),
                &self.baseline_track,
                "must differ from the watched track",
            ));
        }
        if self.call_metric == Some(Metric::Latency) {
            // Its observations are sketches, which this trigger cannot read; and the engine
            // refuses an observation some trigger cannot read, so every trigger on latency
            // would go without data.
            return Err(Error::config(
                format!("{path}.callMetric"),
                "latency",
                "must carry the calls' counts or their error rate: latency is measured as \
                 sketches, which a dependency check cannot read",
            ));
        }
        match (&self.call_metric, self.max_call_error_rate) {
            (Some(_), Some(r)) => check_fraction(path, "maxCallErrorRate", r)?,
            (None, None) => {}
            (Some(m), None) => {
                return Err(Error::config(
                    format!("{path}.maxCallErrorRate"),
                    "none",
                    format!("is required with callMetric `{m}`"),
                ));
            }
            (None, Some(r)) => {
                return Err(Error::config(
                    format!("{path}.callMetric"),
                    "none",
                    format!("is required with maxCallErrorRate {r}"),
                ));
            }
        }
        check_positive(path, "staleAfter", self.stale_after)
    }
}

impl ResourceUsageConfig {
    fn validate(&self, path: &str) -> Result<()> {
        if !(self.capacity.is_finite() && self.capacity > 0.0) {
            return Err(Error::config(
                format!("{path}.capacity"),
                self.capacity,
                "must be a positive number (cores for cpu, bytes for memory)",
            ));
        }
        for (field, v) in [
            ("warnPercent", self.warn_percent),
            ("rollbackPercent", self.rollback_percent),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && v > 0.0)
            {
                return Err(Error::config(
                    format!("{path}.{field}"),
                    v,
                    "must be a positive percentage (80 = 80%)",
                ));
            }
        }
        match (self.warn_percent, self.rollback_percent) {
            (None, None) => Err(Error::config(
                format!("{path}.rollbackPercent"),
                "none",
                "set warnPercent, rollbackPercent or both",
            )),
            (Some(w), Some(r)) if w >= r => Err(Error::config(
                format!("{path}.warnPercent"),
                w,
                format!("must be below rollbackPercent {r}"),
            )),
            _ => check_positive(path, "staleAfter", self.stale_after),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> TriggerConfig {
        serde_json::from_str(json).unwrap()
    }

    fn err(json: &str) -> String {
        match serde_json::from_str::<TriggerConfig>(json) {
            Err(e) => e.to_string(),
            Ok(c) => c.validate("triggers[0]").unwrap_err().to_string(),
        }
    }

    #[test]
    fn the_briefs_trigger_examples_load() {
        let m = parse(
            r#"{"kind":"metricThreshold","id":"e","metric":"error_rate","operator":"gt",
                "value":0.10,"duration":30000,"cooldown":60000}"#,
        );
        m.validate("t").unwrap();
        let TriggerConfig::MetricThreshold(m) = m else {
            panic!("kind")
        };
        assert_eq!(m.duration, Duration::from_secs(30));
        assert_eq!(m.track, Track::Canary);
        let h = parse(
            r#"{"kind":"healthCheck","id":"h","serviceName":"app","checkType":"readiness",
                "failureThreshold":3,"checkInterval":5000,"cooldown":60000}"#,
        );
        h.validate("t").unwrap();
        assert_eq!(h.timing().stale_after, Duration::from_secs(15));
        let s = parse(
            r#"{"kind":"errorSpike","id":"s","baselineErrorRate":0.02,"increasePercentage":50,
                "windowSize":60000,"minErrorCount":10,"cooldown":120000}"#,
        );
        s.validate("t").unwrap();
        assert_eq!(s.kind(), TriggerKind::ErrorSpike);
    }

    #[test]
    fn a_text_field_reads_the_same_before_and_after_kind() {
        let after = "kind: dependencyFailure\nid: 42\ndependency: 1.50\n";
        let before = "id: 42\ndependency: 1.50\nkind: dependencyFailure\n";
        let after: TriggerConfig = serde_yaml_ng::from_str(after).unwrap();
        let before: TriggerConfig = serde_yaml_ng::from_str(before).unwrap();
        assert_eq!(before, after);
        let TriggerConfig::DependencyFailure(d) = before else {
            panic!("kind")
        };
        assert_eq!((d.id.as_str(), d.dependency.as_str()), ("42", "1.50"));
        let h: TriggerConfig = serde_yaml_ng::from_str(
            "serviceName: ~\nid: h\nkind: healthCheck\ncheckType: readiness\n",
        )
        .unwrap();
        let TriggerConfig::HealthCheck(h) = h else {
            panic!("kind")
        };
        assert_eq!(h.service_name, None);
        // JSON keeps numbers and text apart wherever the field is written.
        for json in [
            r#"{"kind":"healthCheck","id":42,"checkType":"readiness"}"#,
            r#"{"id":42,"kind":"healthCheck","checkType":"readiness"}"#,
        ] {
            let msg = serde_json::from_str::<TriggerConfig>(json)
                .unwrap_err()
                .to_string();
            assert!(msg.contains("expected a string"), "{msg}");
        }
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let msg = err(
            r#"{"kind":"metricThreshold","id":"e","metric":"error_rate","operator":"gt",
                "value":0.1,"treshold":3}"#,
        );
        assert!(msg.contains("treshold"), "{msg}");
    }

    #[test]
    fn bad_values_name_the_path_the_value_and_the_reason() {
        let cases = [
            (
                r#"{"kind":"metricThreshold","id":"e","metric":"latency","operator":"gt","value":10000,"warnValue":20000}"#,
                "triggers[0].warnValue",
            ),
            (
                r#"{"kind":"metricThreshold","id":"e","metric":"latency","operator":"gt","value":1,"quantile":1.5}"#,
                "triggers[0].quantile",
            ),
            (
                r#"{"kind":"metricThreshold","id":"e","metric":"error_rate","operator":"gt","value":0.1,"quantile":0.99}"#,
                "triggers[0].quantile `0.99`: is read from latency sketches only",
            ),
            (
                r#"{"kind":"metricThreshold","id":"e","metric":"error_rate","operator":"gt","value":10}"#,
                "triggers[0].value `10`: an error_rate level is a fraction",
            ),
            (
                r#"{"kind":"metricThreshold","id":"e","metric":"error_rate","operator":"gt","value":0.2,"warnValue":-0.1}"#,
                "triggers[0].warnValue `-0.1`: an error_rate level is a fraction",
            ),
            (
                r#"{"kind":"healthCheck","id":"h","checkType":"liveness","failureThreshold":0}"#,
                "triggers[0].failureThreshold",
            ),
            (
                r#"{"kind":"healthCheck","id":"h","checkType":"liveness","failingShare":0}"#,
                "triggers[0].failingShare",
            ),
            (
                r#"{"kind":"healthCheck","id":"h","checkType":"liveness","checkInterval":"10s","staleAfter":"5s"}"#,
                "triggers[0].staleAfter `5s`: must be at least checkInterval",
            ),
            (
                r#"{"kind":"errorSpike","id":"s","baselineErrorRate":0.6,"increasePercentage":100}"#,
                "triggers[0].increasePercentage",
            ),
            (
                r#"{"kind":"errorSpike","id":"s","baselineErrorRate":0.02,"baselineTrack":"stable"}"#,
                "triggers[0].baselineErrorRate",
            ),
            (
                r#"{"kind":"errorSpike","id":"s","baselineTrack":"canary"}"#,
                "triggers[0].baselineTrack",
            ),
            (
                r#"{"kind":"errorSpike","id":"s","baselineErrorRate":0.02,"averageRunLength":1}"#,
                "triggers[0].averageRunLength",
            ),
            (
                r#"{"kind":"errorSpike","id":"s","baselineErrorRate":0.02,"dispersion":0.5}"#,
                "triggers[0].dispersion",
            ),
            (
                r#"{"kind":"errorSpike","id":"s","track":"stable","learnFor":"1m","minBaselineRequests":0}"#,
                "triggers[0].minBaselineRequests",
            ),
            (
                r#"{"kind":"errorSpike","id":"s","learnFor":"1m"}"#,
                "triggers[0].learnFor",
            ),
            (
                r#"{"kind":"dependencyFailure","id":"d","dependency":"db","callMetric":"db_calls"}"#,
                "triggers[0].maxCallErrorRate",
            ),
            (
                r#"{"kind":"resourceUsage","id":"r","resource":"cpu","capacity":2,"warnPercent":95,"rollbackPercent":80}"#,
                "triggers[0].warnPercent",
            ),
            (
                r#"{"kind":"resourceUsage","id":"r","resource":"cpu","capacity":0,"warnPercent":80}"#,
                "triggers[0].capacity",
            ),
            (
                r#"{"kind":"resourceUsage","id":" ","resource":"cpu","capacity":1,"warnPercent":80}"#,
                "triggers[0].id",
            ),
        ];
        for (json, path) in cases {
            let msg = err(json);
            assert!(msg.contains(path), "{json}: {msg}");
        }
    }

    /// An error rate lies in 0..=1: `gt 1` and `lt 0` can never be breached, so such a level
    /// would watch without ever firing, as a level outside the range would.
    #[test]
    fn an_error_rate_level_no_rate_can_breach_is_refused() {
        for (op, value) in [("gt", "1"), ("lt", "0")] {
            let msg = err(&format!(
                r#"{{"kind":"metricThreshold","id":"e","metric":"error_rate","operator":"{op}",
                    "value":{value}}}"#
            ));
            assert!(
                msg.contains(&format!("triggers[0].value `{value}`"))
                    && msg.contains("never")
                    && msg.contains(op),
                "{op} {value}: {msg}"
            );
        }
        // The ends of the range are reachable with the other operators.
        for (op, value) in [("ge", "1"), ("le", "0"), ("gt", "0"), ("lt", "1")] {
            parse(&format!(
                r#"{{"kind":"metricThreshold","id":"e","metric":"error_rate","operator":"{op}",
                    "value":{value}}}"#
            ))
            .validate("triggers[0]")
            .unwrap();
        }
    }

    #[test]
    fn an_error_rate_level_every_rate_breaches_is_refused() {
        // Breached by every window, a clean one included: it would roll back every deployment.
        for (op, value) in [("ge", "0"), ("le", "1")] {
            let msg = err(&format!(
                r#"{{"kind":"metricThreshold","id":"e","metric":"error_rate","operator":"{op}",
                    "value":{value}}}"#
            ));
            assert!(
                msg.contains(&format!("triggers[0].value `{value}`"))
                    && msg.contains("every")
                    && msg.contains(op),
                "{op} {value}: {msg}"
            );
        }
        for (op, value, warn) in [("ge", "0.2", "0"), ("le", "0.5", "1")] {
            let msg = err(&format!(
                r#"{{"kind":"metricThreshold","id":"e","metric":"error_rate","operator":"{op}",
                    "value":{value},"warnValue":{warn}}}"#
            ));
            assert!(
                msg.contains(&format!("triggers[0].warnValue `{warn}`")) && msg.contains("every"),
                "{op} {value} warn {warn}: {msg}"
            );
        }
    }

    #[test]
    fn an_id_is_limited_in_characters_not_bytes() {
        let with_id = |id: &str| {
            parse(&format!(
                r#"{{"kind":"healthCheck","id":"{id}","checkType":"liveness"}}"#
            ))
            .validate("triggers[0]")
        };
        with_id(&"é".repeat(128)).unwrap();
        let msg = with_id(&"é".repeat(129)).unwrap_err().to_string();
        assert!(
            msg.contains("triggers[0].id") && msg.contains("128 characters"),
            "{msg}"
        );
    }

    #[test]
    fn a_baseline_is_never_learned_from_the_version_under_evaluation() {
        for json in [
            r#"{"kind":"errorSpike","id":"s","learnFor":"1m"}"#,
            r#"{"kind":"errorSpike","id":"s","track":"canary","learnFor":"1m"}"#,
        ] {
            let msg = err(json);
            assert!(
                msg.contains("triggers[0].learnFor")
                    && msg.contains("60s")
                    && msg.contains("canary")
                    && msg.contains("before the deploy"),
                "{json}: {msg}"
            );
        }
        // A track that served before the deploy may learn from its own past.
        parse(r#"{"kind":"errorSpike","id":"s","track":"stable","learnFor":"1m"}"#)
            .validate("triggers[0]")
            .unwrap();
    }

    /// Tracks and metrics built in code around their name checks are refused by path: such a
    /// trigger would watch nothing, and an engine holding it could not be written down.
    #[test]
    fn names_built_around_their_checks_are_refused_by_path() {
        let TriggerConfig::MetricThreshold(base) = parse(
            r#"{"kind":"metricThreshold","id":"e","metric":"error_rate","operator":"gt","value":0.1}"#,
        ) else {
            panic!("kind")
        };
        let with = |edit: fn(&mut MetricThresholdConfig)| {
            let mut c = base.clone();
            edit(&mut c);
            TriggerConfig::MetricThreshold(c)
                .validate("triggers[3]")
                .unwrap_err()
                .to_string()
        };
        let msg = with(|c| c.track = Track::Named("stable".into()));
        assert!(
            msg.contains("triggers[3].track `stable`") && msg.contains("well-known"),
            "{msg}"
        );
        let msg = with(|c| c.track = Track::Named("Canary 2".into()));
        assert!(msg.contains("triggers[3].track `Canary 2`"), "{msg}");
        let msg = with(|c| c.metric = Metric::Custom("queue depth".into()));
        assert!(msg.contains("triggers[3].metric `queue depth`"), "{msg}");
        let TriggerConfig::DependencyFailure(mut d) = parse(
            r#"{"kind":"dependencyFailure","id":"d","dependency":"db","callMetric":"db_calls",
                "maxCallErrorRate":0.5}"#,
        ) else {
            panic!("kind")
        };
        d.baseline_track = Track::Named("blue".into());
        let msg = TriggerConfig::DependencyFailure(d.clone())
            .validate("triggers[0]")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("triggers[0].baselineTrack `blue`"), "{msg}");
        d.baseline_track = Track::Stable;
        d.call_metric = Some(Metric::Custom("cpu".into()));
        let msg = TriggerConfig::DependencyFailure(d)
            .validate("triggers[0]")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("triggers[0].callMetric `cpu`"), "{msg}");
    }

    #[test]
    fn configs_round_trip_with_human_durations() {
        let s = parse(
            r#"{"kind":"errorSpike","id":"s","baselineTrack":"stable","windowSize":"2m","detector":"ratio"}"#,
        );
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"windowSize\":\"2m\""), "{json}");
        assert_eq!(serde_json::from_str::<TriggerConfig>(&json).unwrap(), s);
    }
}
