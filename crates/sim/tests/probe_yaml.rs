//! A probe written out reads back as the same probe, in JSON and in YAML: on its own, in the
//! health signals that carry it, and inside a fault, which is read by its `kind` tag.

use std::time::Duration;

use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serin_signals::{HealthSignal, Probe, ProbeStatus, Timestamp, Track};
use serin_sim::{Fault, Span};

fn probes() -> impl Strategy<Value = Probe> {
    prop_oneof![
        Just(Probe::Readiness),
        Just(Probe::Liveness),
        Just(Probe::Startup),
        "[a-z0-9][a-z0-9._-]{0,15}".prop_map(Probe::Dependency),
        // Names YAML would read as another type if they were written bare.
        prop::sample::select(vec!["true", "null", "1.5", "~", "readiness", ""])
            .prop_map(|n| Probe::Dependency(n.to_owned())),
    ]
}

/// A probe inside an enum read by a tag field, as faults and triggers are: what is read goes
/// through serde's buffer, which keeps no YAML tag.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
enum Tagged {
    Check { probe: Probe },
}

fn both_ways<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) {
    let yaml = serde_yaml_ng::to_string(value).unwrap();
    let back: T = serde_yaml_ng::from_str(&yaml).unwrap_or_else(|e| panic!("{e}:\n{yaml}"));
    assert_eq!(&back, value, "{yaml}");
    let json = serde_json::to_string(value).unwrap();
    let back: T = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(&back, value, "{json}");
}

proptest! {
    #[test]
    fn a_probe_reads_back_as_written(probe in probes(), at in 0u64..1 << 50) {
        both_ways(&probe);
        both_ways(&Tagged::Check { probe: probe.clone() });
        let signal = HealthSignal::new(Track::Canary, probe.clone(), ProbeStatus::Fail, Timestamp::from_millis(at))
            .with_instance("canary-0");
        both_ways(&signal);
        both_ways(&vec![signal]);
        both_ways(&Fault::ProbeFailure {
            track: Some(Track::Canary),
            probe,
            span: Span::new(Duration::ZERO, Duration::from_secs(60)),
        });
    }
}

/// A dependency is written as config spells it, the same in both formats, and the tagged form
/// older files hold is still read.
#[test]
fn a_dependency_is_written_as_a_map() {
    let db = Probe::Dependency("postgres".into());
    assert_eq!(
        serde_yaml_ng::to_string(&db).unwrap().trim(),
        "dependency: postgres"
    );
    assert_eq!(
        serde_json::to_string(&db).unwrap(),
        r#"{"dependency":"postgres"}"#
    );
    assert_eq!(
        serde_json::to_string(&Probe::Startup).unwrap(),
        r#""startup""#
    );
    assert_eq!(
        serde_yaml_ng::from_str::<Probe>("!dependency postgres").unwrap(),
        db
    );
}
