//! Config as users write it: YAML in the brief's shapes, round trips, and errors with paths.

use std::time::Duration;

use serin_signals::{Timestamp, Track};
use serin_triggers::{
    Action, Detector, Engine, EngineConfig, MissingData, SharedOutage, TriggerConfig, defaults,
};

const YAML: &str = r#"
triggers:
  - kind: metricThreshold
    id: error-rate
    metric: error_rate
    operator: gt
    value: 0.10
    duration: 30000   # the brief writes milliseconds
    cooldown: 60000
  - kind: healthCheck
    id: readiness
    serviceName: app
    checkType: readiness
    failureThreshold: 3
    checkInterval: 5s
    cooldown: 1m
    failingShare: 0.5
  - kind: errorSpike
    id: error-spike
    baselineErrorRate: 0.02
    increasePercentage: 50
    windowSize: 1m
    minErrorCount: 10
    cooldown: 2m
    detector: ratio
  - kind: dependencyFailure
    id: postgres
    dependency: postgres
    failureThreshold: 3
    onSharedOutage: rollback
    onMissingData: warn
  - kind: resourceUsage
    id: memory
    track: green
    resource: memory
    capacity: 4294967296
    warnPercent: 85
    duration: 2m
"#;

#[test]
fn the_brief_shapes_load_from_yaml() {
    let config: EngineConfig = serde_yaml_ng::from_str(YAML).unwrap();
    let engine = Engine::new(config.clone(), Timestamp::EPOCH).unwrap();
    assert_eq!(engine.len(), 5);
    let TriggerConfig::MetricThreshold(m) = &config.triggers[0] else {
        panic!("kind")
    };
    assert_eq!(
        (m.duration, m.cooldown),
        (Duration::from_secs(30), Duration::from_secs(60))
    );
    assert_eq!(m.action, Action::Rollback);
    let TriggerConfig::ErrorSpike(s) = &config.triggers[2] else {
        panic!("kind")
    };
    assert_eq!(s.detector, Detector::Ratio);
    assert_eq!(s.window_size, Duration::from_secs(60));
    let TriggerConfig::DependencyFailure(d) = &config.triggers[3] else {
        panic!("kind")
    };
    assert_eq!(d.on_shared_outage, SharedOutage::Rollback);
    assert_eq!(d.on_missing_data, MissingData::Warn);
    assert_eq!(d.baseline_track, Track::Stable);
    let TriggerConfig::ResourceUsage(r) = &config.triggers[4] else {
        panic!("kind")
    };
    assert_eq!(r.track, Track::Green);
    // Written back as human durations, read back equal.
    let yaml = serde_yaml_ng::to_string(&config).unwrap();
    assert!(yaml.contains("duration: 30s"), "{yaml}");
    assert_eq!(
        serde_yaml_ng::from_str::<EngineConfig>(&yaml).unwrap(),
        config
    );
    assert_eq!(engine.config(), config);
}

#[test]
fn errors_name_the_path_in_the_engine_config() {
    let bad = YAML.replace("increasePercentage: 50", "increasePercentage: -5");
    let msg = serde_yaml_ng::from_str::<EngineConfig>(&bad)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("triggers[2].increasePercentage") && msg.contains("-5"),
        "{msg}"
    );
    let unknown = YAML.replace("failingShare: 0.5", "failingShares: 0.5");
    let msg = serde_yaml_ng::from_str::<EngineConfig>(&unknown)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("failingShares"), "{msg}");
    let kind = YAML.replace("kind: resourceUsage", "kind: diskUsage");
    let msg = serde_yaml_ng::from_str::<EngineConfig>(&kind)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("diskUsage"), "{msg}");
}

#[test]
fn the_alert_table_is_overridable_config() {
    let mut table = defaults::alert_table(&Track::Canary, 2.0, 8e9).unwrap();
    let yaml = serde_yaml_ng::to_string(&EngineConfig {
        triggers: table.clone(),
    })
    .unwrap();
    assert!(
        yaml.contains("warnValue: 0.1") && yaml.contains("value: 0.2"),
        "{yaml}"
    );
    if let Some(TriggerConfig::MetricThreshold(m)) = table.first_mut() {
        m.value = 0.05;
        m.warn_value = Some(0.02);
    }
    Engine::new(EngineConfig { triggers: table }, Timestamp::EPOCH).unwrap();
}

/// The brief's rollback triggers, as written there: without `kind` or `id`.
const BRIEF: &str = r#"
triggers:
  - metric: error_rate
    operator: gt
    value: 0.10
    duration: 30000
    cooldown: 60000
  - serviceName: app
    checkType: readiness
    failureThreshold: 3
    checkInterval: 5000
    cooldown: 60000
  - baselineErrorRate: 0.02
    increasePercentage: 50
    windowSize: 60000
    minErrorCount: 10
    cooldown: 120000
"#;

const KINDS: &str =
    "`metricThreshold`, `healthCheck`, `errorSpike`, `dependencyFailure`, `resourceUsage`";

fn refused(yaml: &str) -> String {
    serde_yaml_ng::from_str::<EngineConfig>(yaml)
        .unwrap_err()
        .to_string()
}

#[test]
fn a_trigger_copied_from_the_brief_is_told_its_kind_and_id() {
    for (i, kind) in ["metricThreshold", "healthCheck", "errorSpike"]
        .into_iter()
        .enumerate()
    {
        // Only entry `i` is kept, so the error is its own.
        let entries: Vec<&str> = BRIEF.split("\n  - ").collect();
        let yaml = format!("{}\n  - {}", entries[0], entries[i + 1]);
        let msg = refused(&yaml);
        assert!(
            msg.contains("triggers[0]")
                && msg.contains("missing field `kind`")
                && msg.contains(KINDS)
                && msg.contains(&format!("write `kind: {kind}`")),
            "{msg}"
        );
        let with_kind = format!("{}\n  - kind: {kind}\n    {}", entries[0], entries[i + 1]);
        let msg = refused(&with_kind);
        assert!(
            msg.contains("triggers[0]")
                && msg.contains("missing field `id`")
                && msg.contains("unique"),
            "{msg}"
        );
    }
    // Fields of no kind, or of two: the kinds are listed, none is guessed.
    for entry in ["cooldown: 1m", "checkType: readiness\n    dependency: db"] {
        let msg = refused(&format!("triggers:\n  - {entry}\n"));
        assert!(
            msg.contains("missing field `kind`") && msg.contains(KINDS) && !msg.contains("write"),
            "{msg}"
        );
    }
    // JSON too, where the reader gives no path.
    let msg = serde_json::from_str::<TriggerConfig>(r#"{"resource": "cpu", "capacity": 2}"#)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("write `kind: resourceUsage`"), "{msg}");
}

#[test]
fn an_engine_config_is_validated_on_load() {
    let bad = [
        (
            "triggers:\n  - {kind: resourceUsage, id: mem, resource: memory, capacity: 1, warnPercent: -1}\n",
            "triggers[0].warnPercent",
        ),
        (
            "triggers:\n  - {kind: healthCheck, id: h, checkType: readiness}\n  - {kind: healthCheck, id: h, checkType: readiness}\n",
            "`h`",
        ),
    ];
    for (yaml, names) in bad {
        let msg = serde_yaml_ng::from_str::<EngineConfig>(yaml)
            .unwrap_err()
            .to_string();
        assert!(msg.contains(names), "{yaml}: {msg}");
    }
    let good = "triggers:\n  - {kind: healthCheck, id: h, checkType: readiness}\n";
    assert!(serde_yaml_ng::from_str::<EngineConfig>(good).is_ok());
}
