//! The product brief's settings, as its users write them: each key and environment variable
//! acts in the brief's unit and meaning, or is refused saying what to write instead; and what
//! is written reads back the same.

use std::time::Duration;

use serin_orchestrator::{DeploymentConfig, StrategyKind};
use serin_signals::{Gauge, Measurement, Metric, Observation, Timestamp, Track, Window};
use serin_triggers::{Action, Engine, Resource, TriggerConfig};

const HEAD: &str = "strategy: canary\nversion: 1.0.0\ntargetServices: [web]\n";

fn load(extra: &str) -> serin_orchestrator::Result<DeploymentConfig> {
    DeploymentConfig::from_yaml(&format!("{HEAD}{extra}\n"))
}

fn refused(extra: &str) -> String {
    load(extra).expect_err(extra).to_string()
}

/// The error of `config` with the environment variables `vars` set.
fn refused_env(config: &DeploymentConfig, vars: &[(&str, &str)]) -> String {
    config
        .clone()
        .with_overrides(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
        .expect_err(&format!("{vars:?}"))
        .to_string()
}

/// The brief's `cpu_usage` and `memory_usage` are percentages (`CPU Usage > 80%`), while the
/// gauges report cores and bytes: each limit is a percentage of a capacity the config names.
#[test]
fn cpu_and_memory_limits_are_percentages_of_a_capacity() {
    let c = load(
        "canaryThresholds: { maxCpuUsage: 95, cpuCapacity: 2, maxMemoryUsage: 85, \
         memoryCapacity: 536870912 }",
    )
    .expect("percentages of capacities");
    let resources: Vec<(Resource, f64, Option<f64>)> = c
        .trigger_config()
        .expect("triggers")
        .triggers
        .iter()
        .filter_map(|t| match t {
            TriggerConfig::ResourceUsage(r) => Some((r.resource, r.capacity, r.rollback_percent)),
            _ => None,
        })
        .collect();
    assert_eq!(
        resources,
        [
            (Resource::Cpu, 2.0, Some(95.0)),
            (Resource::Memory, 536_870_912.0, Some(85.0))
        ]
    );
    // The canary's CPU gauge, in cores, against 95% of its 2 cores.
    let mut engine =
        Engine::new(c.trigger_config().expect("triggers"), Timestamp::EPOCH).expect("an engine");
    let cpu = |end_s: u64, cores: f64| {
        Observation::new(
            Metric::Cpu,
            Track::Canary,
            Window::ending_at(
                Timestamp::from_millis(end_s * 1_000),
                Duration::from_secs(10),
            ),
            Measurement::Gauge(Gauge::new(cores).expect("a gauge")),
        )
    };
    engine.observe(&cpu(10, 1.8)).expect("observed");
    assert_eq!(engine.current_action(), None, "90% of capacity");
    engine.observe(&cpu(20, 1.96)).expect("observed");
    assert_eq!(engine.current_action(), Some(Action::Rollback), "98%");

    let err = refused("canaryThresholds: { maxMemoryUsage: 85 }");
    assert!(
        err.contains("canaryThresholds.maxMemoryUsage `85`") && err.contains("memoryCapacity"),
        "{err}"
    );
    let err = refused("canaryThresholds: { maxCpuUsage: 150, cpuCapacity: 2 }");
    assert!(
        err.contains("canaryThresholds.maxCpuUsage `150`") && err.contains("100"),
        "{err}"
    );
    let err = refused("canaryThresholds: { cpuCapacity: 2 }");
    assert!(
        err.contains("canaryThresholds.cpuCapacity `2`") && err.contains("maxCpuUsage"),
        "{err}"
    );
}

/// A threshold turned off (`null`) stays off when the config is written and read again, as a
/// journal does before a deployment resumes.
#[test]
fn a_monitoring_threshold_turned_off_stays_off_when_written_and_read_back() {
    let c = load("monitoring: { errorRateThreshold: null }").expect("off");
    assert_eq!(c.monitoring.error_rate_threshold, None);
    let json = serde_json::to_string(&c).expect("json");
    assert_eq!(DeploymentConfig::from_json(&json).expect("json"), c);
    let yaml = serde_json::to_string_pretty(&c).expect("json is yaml");
    assert_eq!(DeploymentConfig::from_yaml(&yaml).expect("yaml"), c);
}

/// A value that is no percentage is refused whatever the traffic strategy: a NaN would not
/// even be written back (JSON has no NaN), so its deployment could not resume.
#[test]
fn a_traffic_increment_that_is_no_percentage_is_refused_under_any_strategy() {
    for (value, shown) in [(".nan", "NaN"), ("-5", "-5"), ("150", "150")] {
        let err = refused(&format!("blueGreenConfig: {{ trafficIncrement: {value} }}"));
        assert!(
            err.contains(&format!("blueGreenConfig.trafficIncrement `{shown}`")),
            "{err}"
        );
    }
}

/// Bare numbers in the environment are seconds: an error must not tell the user to write
/// milliseconds, which would then be read as seconds.
#[test]
fn a_bad_environment_duration_is_explained_in_seconds() {
    let base = load("").expect("valid");
    for (var, value) in [
        ("CHECK_INTERVAL", "0.5"),
        ("PHASE_DURATION", "soon"),
        ("MONITORING_DURATION", "99999999999999999999999"),
    ] {
        let err = refused_env(&base, &[(var, value)]);
        assert!(err.contains(&format!("{var} (")), "{err}");
        assert!(!err.contains("milliseconds"), "{err}");
        assert!(err.contains("seconds") && err.contains("`500ms`"), "{err}");
    }
}

/// A brief variable whose field nothing reads would be silently ignored: it is refused, saying
/// what to set instead.
#[test]
fn an_environment_variable_that_would_have_no_effect_is_refused() {
    let bg =
        DeploymentConfig::from_yaml("strategy: blue-green\nversion: 1.0.0\ntargetServices: [web]")
            .expect("valid");
    for var in ["TRAFFIC_INCREMENT", "TRAFFIC_INTERVAL"] {
        let err = refused_env(&bg, &[(var, "20")]);
        assert!(
            err.contains(&format!("{var} (blueGreenConfig."))
                && err.contains("TRAFFIC_STRATEGY=gradual"),
            "{err}"
        );
    }
    let gradual = bg
        .clone()
        .with_overrides(|k| match k {
            "TRAFFIC_STRATEGY" => Some("gradual".into()),
            "TRAFFIC_INCREMENT" => Some("20".into()),
            "TRAFFIC_INTERVAL" => Some("20".into()),
            _ => None,
        })
        .expect("a gradual switch reads both");
    assert_eq!(gradual.blue_green_config.traffic_increment, 20.0);
    // A weighted switch holds each weight for the interval, and has no increment.
    let weighted = DeploymentConfig::from_yaml(
        "strategy: blue-green\nversion: 1.0.0\ntargetServices: [web]\n\
         blueGreenConfig: { trafficStrategy: weighted, weights: [10, 50] }",
    )
    .expect("valid");
    weighted
        .clone()
        .with_overrides(|k| (k == "TRAFFIC_INTERVAL").then(|| "20".into()))
        .expect("a weighted switch reads the interval");
    let err = refused_env(&weighted, &[("TRAFFIC_INCREMENT", "20")]);
    assert!(err.contains("TRAFFIC_INCREMENT ("), "{err}");

    let steps = load("canaryConfig: { steps: [ { setWeight: 10 }, { pause: { duration: 1m } } ] }")
        .expect("explicit steps");
    for var in ["INITIAL_PERCENTAGE", "INCREMENT", "PHASE_DURATION"] {
        let err = refused_env(&steps, &[(var, "20")]);
        assert!(
            err.contains(&format!("{var} (canaryConfig.")) && err.contains("canaryConfig.steps"),
            "{err}"
        );
    }
    // Only the deployment's own strategy counts: one `.env` serves every make target.
    let bg_steps = DeploymentConfig::from_yaml(
        "strategy: blue-green\nversion: 1.0.0\ntargetServices: [web]\n\
         canaryConfig: { steps: [ { setWeight: 10 }, { pause: { duration: 1m } } ] }",
    )
    .expect("valid");
    for (var, config) in [("TRAFFIC_INCREMENT", &steps), ("INCREMENT", &bg_steps)] {
        config
            .clone()
            .with_overrides(|k| (k == var).then(|| "20".into()))
            .unwrap_or_else(|e| panic!("{var} of another strategy is refused: {e}"));
    }
}

/// A phase longer than the canary's `maxDuration` is named by the field the file writes, not
/// by the derived policy's steps.
#[test]
fn a_phase_longer_than_the_canary_may_run_is_named_by_its_field() {
    let err = refused("canaryConfig: { incrementInterval: 2h }");
    assert!(
        err.contains("canaryConfig.incrementInterval `2h`") && !err.contains("canaryPolicy"),
        "{err}"
    );
    let err = refused_env(&load("").expect("valid"), &[("PHASE_DURATION", "7200")]);
    assert!(
        err.contains("PHASE_DURATION (canaryConfig.incrementInterval) `2h`"),
        "{err}"
    );
}

/// A value that does not parse is explained in the variable's unit, as the brief writes it.
#[test]
fn a_bad_environment_value_says_what_to_write() {
    let base = load("").expect("valid");
    for (var, value, want) in [
        ("ERROR_RATE_THRESHOLD", "10%", "`0.10` = 10%"),
        ("CANARY_ERROR_RATE", "2%", "`0.10` = 10%"),
        ("LATENCY_THRESHOLD", "5s", "a number of milliseconds"),
        ("INCREMENT", "300", "whole percentage"),
        ("INITIAL_PERCENTAGE", "5%", "whole percentage"),
        ("REPLICAS", "-1", "whole number of instances"),
        ("CONSECUTIVE_FAILURES", "three", "whole number of checks"),
        ("VERSION", "v1.2.0", "semantic version such as `1.1.0`"),
    ] {
        let err = refused_env(&base, &[(var, value)]);
        assert!(
            err.contains(&format!("{var} ("))
                && err.contains(want)
                && !err.contains("not a number"),
            "{err}"
        );
    }
}

/// `NAMESPACE` is a Kubernetes namespace in the brief (`kubectl -n production`), so a DNS
/// label; `ENVIRONMENT` is a name shown in reports and notifications, without control
/// characters. Either is refused otherwise, from the file or the environment.
#[test]
fn a_namespace_is_a_dns_label_and_an_environment_a_printable_name() {
    let base = load("").expect("valid");
    for (var, value, path) in [
        ("NAMESPACE", "Prod Cluster", "namespace"),
        ("NAMESPACE", "production\u{7f}", "namespace"),
        ("ENVIRONMENT", "prod\r\nBcc: x@y", "environment"),
    ] {
        let err = refused_env(&base, &[(var, value)]);
        assert!(err.contains(&format!("{var} ({path})")), "{err}");
        let json = format!(
            r#"{{"strategy":"canary","version":"1.0.0","targetServices":["web"],"{path}":{}}}"#,
            serde_json::to_string(value).unwrap()
        );
        let err = DeploymentConfig::from_json(&json)
            .expect_err(&json)
            .to_string();
        assert!(err.contains(&format!("{path} `")), "{err}");
    }
    let c = load("namespace: payments-eu\nenvironment: Production (EU)").expect("valid names");
    assert_eq!(c.environment.as_deref(), Some("Production (EU)"));
}

/// `INCREMENT=1` makes 95 pauses of the default 5m `incrementInterval`, which cannot fit in
/// `canaryConfig.maxDuration` (1h): the error names the variable that did it, and each
/// variable that set a field the pauses come from, not only the first.
#[test]
fn an_increment_that_makes_the_canary_too_long_is_named() {
    let base = DeploymentConfig::new(
        StrategyKind::Canary,
        semver::Version::new(1, 0, 0),
        &["web"],
    )
    .expect("valid");
    let err = base
        .clone()
        .with_overrides(|name| (name == "INCREMENT").then(|| "1".to_owned()))
        .expect_err("95 pauses of 5m do not fit in 1h")
        .to_string();
    assert!(
        err.contains("canaryConfig.incrementPercentage is set by INCREMENT"),
        "{err}"
    );
    let err = base
        .with_overrides(|name| match name {
            "INCREMENT" => Some("1".to_owned()),
            "PHASE_DURATION" => Some("60".to_owned()),
            _ => None,
        })
        .expect_err("95 pauses of 1m do not fit in 1h")
        .to_string();
    assert!(
        err.contains("canaryConfig.incrementInterval is set by PHASE_DURATION")
            && err.contains("canaryConfig.incrementPercentage is set by INCREMENT"),
        "{err}"
    );
}

/// `TRAFFIC_STRATEGY=weighted` over a config without weights names the variable, though the
/// field refused is the weights, which no variable sets.
#[test]
fn a_weighted_strategy_without_weights_names_the_variable_that_chose_it() {
    let c = DeploymentConfig::from_yaml(
        "strategy: blue-green\nversion: 1.0.0\ntargetServices: [web]\n",
    )
    .expect("config");
    let msg = refused_env(&c, &[("TRAFFIC_STRATEGY", "weighted")]);
    assert!(
        msg.contains("TRAFFIC_STRATEGY") && msg.contains("blueGreenConfig.weights"),
        "{msg}"
    );
}
