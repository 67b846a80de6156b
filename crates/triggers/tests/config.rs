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
    let config: EngineConfig = serde_yaml_ng::from_str(&bad).unwrap();
    let msg = Engine::new(config, Timestamp::EPOCH)
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
