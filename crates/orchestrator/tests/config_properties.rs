//! Properties of the configuration: environment overrides never panic and either give a valid
//! config or an error naming the variable; a valid config reads back as written; derived canary
//! steps always rise toward the target, and are refused exactly when their pauses together would
//! outlast `maxDuration`.

use std::time::Duration;

use proptest::prelude::*;
use serin_canary::controller::Step;
use serin_orchestrator::{DeploymentConfig, StrategyKind};

const VARS: [&str; 18] = [
    "VERSION",
    "DEPLOYMENT_STRATEGY",
    "REPLICAS",
    "ERROR_RATE_THRESHOLD",
    "LATENCY_THRESHOLD",
    "MAX_ERROR_RATE",
    "CHECK_INTERVAL",
    "MONITORING_DURATION",
    "CONSECUTIVE_FAILURES",
    "TRAFFIC_STRATEGY",
    "TRAFFIC_INCREMENT",
    "TRAFFIC_INTERVAL",
    "INITIAL_PERCENTAGE",
    "INCREMENT",
    "PHASE_DURATION",
    "CANARY_ERROR_RATE",
    "NAMESPACE",
    "ENVIRONMENT",
];

fn base() -> DeploymentConfig {
    DeploymentConfig::new(
        StrategyKind::Canary,
        semver::Version::new(1, 0, 0),
        &["web"],
    )
    .expect("valid")
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,4}",
        "0\\.[0-9]{1,3}",
        "[0-9]{1,3}(ms|s|m|h)",
        "(canary|blue-green|blue-green-with-canary|gradual|immediate|weighted)",
        "[0-9]\\.[0-9]\\.[0-9]",
        ".{0,12}",
    ]
}

proptest! {
    #[test]
    fn overrides_give_a_valid_config_or_an_error_naming_the_variable(
        picks in proptest::collection::vec((0..VARS.len(), value()), 1..5)
    ) {
        let env: Vec<(&str, String)> = picks.iter().map(|(i, v)| (VARS[*i], v.clone())).collect();
        let lookup = |name: &str| env.iter().rev().find(|(k, _)| *k == name).map(|(_, v)| v.clone());
        match base().with_overrides(lookup) {
            Ok(c) => prop_assert!(c.validate().is_ok()),
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(
                    VARS.iter().any(|v| msg.contains(v))
                        || msg.contains("canaryConfig")
                        || msg.contains("blueGreenConfig")
                        || msg.contains("monitoring")
                        || msg.contains("canaryThresholds"),
                    "{msg}"
                );
            }
        }
    }

    /// What validates is written and read back unchanged, as a journal does before a
    /// deployment resumes: in JSON and YAML always, in TOML (which has no `null`) unless a
    /// threshold whose default is on was turned off.
    #[test]
    fn a_valid_config_reads_back_as_written(
        picks in proptest::collection::vec((0..VARS.len(), value()), 1..5),
        error_rate_off in any::<bool>(),
    ) {
        let env: Vec<(&str, String)> = picks.iter().map(|(i, v)| (VARS[*i], v.clone())).collect();
        let lookup = |name: &str| env.iter().rev().find(|(k, _)| *k == name).map(|(_, v)| v.clone());
        let mut c = base();
        if error_rate_off {
            c.monitoring.error_rate_threshold = None;
        }
        let Ok(c) = c.with_overrides(lookup) else {
            return Ok(());
        };
        let json = serde_json::to_string(&c).expect("json");
        prop_assert_eq!(&DeploymentConfig::from_json(&json).expect("json"), &c);
        // JSON is YAML where it writes ASCII only (YAML reads a raw line separator otherwise).
        if json.is_ascii() {
            prop_assert_eq!(&DeploymentConfig::from_yaml(&json).expect("yaml"), &c);
        }
        if c.monitoring.error_rate_threshold.is_some() {
            let toml = toml::to_string(&c).expect("toml");
            prop_assert_eq!(&DeploymentConfig::from_toml(&toml).expect("toml"), &c);
        }
    }

    #[test]
    fn derived_canary_weights_rise_strictly_below_the_target(
        initial in 1u8..=100, increment in 1u8..=100, target in 1u8..=100
    ) {
        let mut c = base();
        c.canary_config.initial_percentage = initial;
        c.canary_config.increment_percentage = increment;
        c.canary_config.target_percentage = target;
        // Room for a hundred pauses, so that only the percentages can be refused here.
        c.canary_config.max_duration = c.canary_config.increment_interval * 101;
        c.max_deployment_duration = c.canary_config.max_duration;
        if c.validate().is_err() {
            prop_assert!(initial >= target);
            return Ok(());
        }
        let policy = c.canary_config.policy();
        prop_assert!(policy.is_ok());
        let weights: Vec<u8> = policy
            .iter()
            .flat_map(|p| p.steps.iter())
            .filter_map(|s| match s { Step::SetWeight(w) => Some(*w), _ => None })
            .collect();
        prop_assert!(!weights.is_empty());
        prop_assert_eq!(weights[0], initial);
        prop_assert!(weights.windows(2).all(|w| w[0] < w[1]));
        prop_assert!(weights.iter().all(|w| *w < target));
    }

    #[test]
    fn derived_canary_steps_are_refused_exactly_when_their_pauses_outlast_max_duration(
        initial in 1u8..100, increment in 1u8..=100, interval_s in 1u64..3_600, slack in -2i64..=2
    ) {
        let mut c = base();
        c.canary_config.initial_percentage = initial;
        c.canary_config.increment_percentage = increment;
        c.canary_config.increment_interval = Duration::from_secs(interval_s);
        let weights = (100 - u64::from(initial)).div_ceil(u64::from(increment));
        // Each pause lasts whole metrics windows.
        let window = c.canary_config.metrics_window.as_secs();
        let planned = interval_s.div_ceil(window) * window * weights;
        let max = planned.saturating_add_signed(slack).max(interval_s + 1);
        c.canary_config.max_duration = Duration::from_secs(max);
        // The deployment's own deadline has room to spare (past the pauses and the readiness
        // timeout alike): only the canary's is tested here.
        c.max_deployment_duration =
            Duration::from_secs(max + 1) + c.blue_green_config.readiness_timeout;
        match c.validate() {
            Ok(()) => prop_assert!(max > planned, "{planned}s of pauses in {max}s"),
            Err(e) => {
                prop_assert!(max <= planned, "{e}");
                prop_assert!(e.to_string().contains("canaryConfig.maxDuration"), "{e}");
            }
        }
    }
}
