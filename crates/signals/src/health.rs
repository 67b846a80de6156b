//! Health and dependency [`HealthSignal`]s: probe results with timestamps.

use std::fmt;

use serde::de::{self, EnumAccess, MapAccess, VariantAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::time::Timestamp;
use crate::track::Track;

/// What a probe checks.
///
/// Written as config spells it, in every format: `readiness`, `liveness`, `startup`, or a map
/// `{dependency: postgres}`. Left to serde's default, YAML would write a dependency as a tagged
/// value (`!dependency postgres`), which nothing read through a buffer can read back: a probe
/// inside an internally tagged or untagged enum (a fault, a trigger), or flattened, would be
/// written in a form its reader refuses; and serde's YAML reader takes only that tagged form,
/// so a map written by hand would not be read where a probe stands alone. So every form is
/// read everywhere: the name, the map, and the tagged value older files hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Probe {
    /// Ready to receive traffic (a failing readiness probe takes an instance out of the split).
    Readiness,
    /// Alive (a failing liveness probe means the instance should be replaced).
    Liveness,
    /// Finished starting (as Kubernetes' startup probe).
    Startup,
    /// An external dependency the service calls (a database, another service), by name.
    Dependency(String),
}

impl Serialize for Probe {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (index, name) = match self {
            Probe::Readiness => (0, "readiness"),
            Probe::Liveness => (1, "liveness"),
            Probe::Startup => (2, "startup"),
            Probe::Dependency(dependency) => {
                // A compact binary form keeps serde's own encoding, which its reader expects.
                if !s.is_human_readable() {
                    return s.serialize_newtype_variant("Probe", 3, "dependency", dependency);
                }
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry("dependency", dependency)?;
                return map.end();
            }
        };
        s.serialize_unit_variant("Probe", index, name)
    }
}

/// The names of [`Probe`]'s forms, as written.
const PROBES: &[&str] = &["readiness", "liveness", "startup", "dependency"];

impl<'de> Deserialize<'de> for Probe {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            d.deserialize_any(ProbeVisitor)
        } else {
            d.deserialize_enum("Probe", PROBES, ProbeVisitor)
        }
    }
}

struct ProbeVisitor;

impl ProbeVisitor {
    /// The probe named `name`, which has no value.
    fn plain<E: de::Error>(name: &str) -> Result<Probe, E> {
        match name {
            "readiness" => Ok(Probe::Readiness),
            "liveness" => Ok(Probe::Liveness),
            "startup" => Ok(Probe::Startup),
            "dependency" => Err(E::invalid_value(
                de::Unexpected::Str(name),
                &"a dependency written with its name: `{dependency: postgres}`",
            )),
            other => Err(E::unknown_variant(other, PROBES)),
        }
    }
}

impl<'de> Visitor<'de> for ProbeVisitor {
    type Value = Probe;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("`readiness`, `liveness`, `startup` or `{dependency: <name>}`")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Probe, E> {
        Self::plain(v)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Probe, A::Error> {
        let Some(key) = map.next_key::<String>()? else {
            return Err(de::Error::invalid_length(0, &self));
        };
        if key != "dependency" {
            return Err(de::Error::unknown_field(&key, &["dependency"]));
        }
        let name = map.next_value::<String>()?;
        if let Some(extra) = map.next_key::<String>()? {
            return Err(de::Error::unknown_field(&extra, &[]));
        }
        Ok(Probe::Dependency(name))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Probe, A::Error> {
        let (form, variant) = data.variant::<Form>()?;
        let probe = match form {
            Form::Dependency => return variant.newtype_variant().map(Probe::Dependency),
            Form::Readiness => Probe::Readiness,
            Form::Liveness => Probe::Liveness,
            Form::Startup => Probe::Startup,
        };
        variant.unit_variant()?;
        Ok(probe)
    }
}

/// A [`Probe`]'s form as a tagged value names it (`!dependency`), or as a compact binary
/// format does: by its index, in the order the serializer numbers them.
#[derive(Deserialize)]
#[serde(variant_identifier, rename_all = "camelCase")]
enum Form {
    Readiness,
    Liveness,
    Startup,
    Dependency,
}

/// The outcome of one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ProbeStatus {
    /// The probe succeeded.
    Pass,
    /// The probe ran and failed.
    Fail,
    /// The probe could not be run, so it says nothing about the instance (a probe with no path
    /// a request can carry, a prober that is itself down): unknown, never healthy. A source
    /// that reaches the instance and gets no answer in time reports `Fail`, as the kubelet does.
    Unknown,
}

/// One probe result for one instance (or the whole track) at one time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthSignal {
    /// The track probed.
    pub track: Track,
    /// The instance probed, or `None` for the track as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// What was probed.
    pub probe: Probe,
    /// The outcome.
    pub status: ProbeStatus,
    /// When the probe completed.
    pub at: Timestamp,
    /// What the probe saw (status code, error message), for evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl HealthSignal {
    /// A probe result for the whole track, with no instance and no detail.
    pub fn new(track: Track, probe: Probe, status: ProbeStatus, at: Timestamp) -> Self {
        HealthSignal {
            track,
            instance: None,
            probe,
            status,
            at,
            detail: None,
        }
    }

    /// The same signal for one instance.
    pub fn with_instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    /// The same signal with what the probe saw.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Checks the names a source keys results by, naming `{field}.track`,
    /// `{field}.instance` or `{field}.probe.dependency`: a track built around its name check
    /// ([`Track::validate`]), or a blank instance or dependency name. A blank instance would be
    /// held apart from the track-wide result (`None`) and from every named instance, and
    /// neither it nor a nameless dependency could be told apart in evidence.
    pub fn validate(&self, field: &str) -> Result<()> {
        self.track.validate(&format!("{field}.track"))?;
        let blank = |name: &str| name.trim().is_empty();
        if let Some(instance) = self.instance.as_deref().filter(|i| blank(i)) {
            return Err(Error::invalid(
                format!("{field}.instance"),
                instance,
                "must not be empty or blank: a result for the whole track has no instance",
            ));
        }
        if let Probe::Dependency(name) = &self.probe
            && blank(name)
        {
            return Err(Error::invalid(
                format!("{field}.probe.dependency"),
                name,
                "must not be empty or blank: a dependency is probed by its name",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_round_trip() {
        let s = HealthSignal::new(
            Track::Green,
            Probe::Dependency("postgres".into()),
            ProbeStatus::Fail,
            Timestamp::from_millis(7),
        )
        .with_instance("green-0")
        .with_detail("connection refused");
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"dependency\":\"postgres\""), "{json}");
        assert_eq!(serde_json::from_str::<HealthSignal>(&json).unwrap(), s);
    }

    /// A variant as a compact binary format reads it back: its index, then its value.
    struct Indexed(u32, &'static str);

    impl<'de> EnumAccess<'de> for Indexed {
        type Error = de::value::Error;
        type Variant = Self;

        fn variant_seed<V: de::DeserializeSeed<'de>>(
            self,
            seed: V,
        ) -> Result<(V::Value, Self), Self::Error> {
            let index = de::value::U32Deserializer::<Self::Error>::new(self.0);
            Ok((seed.deserialize(index)?, self))
        }
    }

    impl<'de> VariantAccess<'de> for Indexed {
        type Error = de::value::Error;

        fn unit_variant(self) -> Result<(), Self::Error> {
            Ok(())
        }

        fn newtype_variant_seed<T: de::DeserializeSeed<'de>>(
            self,
            seed: T,
        ) -> Result<T::Value, Self::Error> {
            seed.deserialize(de::value::StrDeserializer::<Self::Error>::new(self.1))
        }

        fn tuple_variant<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("no probe is a tuple"))
        }

        fn struct_variant<V: Visitor<'de>>(
            self,
            _: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("no probe is a struct"))
        }
    }

    #[test]
    fn a_probe_reads_back_by_the_index_a_compact_format_writes() {
        for (index, probe) in [
            (0, Probe::Readiness),
            (1, Probe::Liveness),
            (2, Probe::Startup),
            (3, Probe::Dependency("postgres".into())),
        ] {
            let read = Probe::deserialize(de::value::EnumAccessDeserializer::new(Indexed(
                index, "postgres",
            )));
            assert_eq!(read, Ok(probe), "index {index}");
        }
        let err = Probe::deserialize(de::value::EnumAccessDeserializer::new(Indexed(4, "x")));
        assert!(err.unwrap_err().to_string().contains('4'));
    }
}
