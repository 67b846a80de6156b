//! Config types with an enum that carries data read from YAML as JSON writes them, a map with
//! one key (`timed: 5m`, `perRequest: {}`), through the reader every config file goes through;
//! serde's YAML tags (`!setWeight 20`) still read.

use std::time::Duration;

use serin_canary::kayenta::Quantity;
use serin_canary::sequential::CountMode;
use serin_compat::Format;
use serin_compat::catalog::from_str;
use serin_orchestrator::DeploymentConfig;
use serin_traffic::{Pause, Strategy};

fn yaml<T: serde::de::DeserializeOwned>(text: &str) -> T {
    from_str(text, Format::Yaml).unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn enums_with_data_read_as_one_key_maps() {
    assert_eq!(
        yaml::<Pause>("timed: 5m\n"),
        Pause::Timed(Duration::from_secs(300))
    );
    assert_eq!(yaml::<Pause>("untilApproved\n"), Pause::UntilApproved);
    assert!(matches!(
        yaml::<CountMode>("perRequest: {}\n"),
        CountMode::PerRequest(_)
    ));
    assert!(matches!(
        yaml::<CountMode>("batched: {}\n"),
        CountMode::Batched(_)
    ));
    assert_eq!(
        yaml::<Quantity>("latencyQuantile: 0.99\n"),
        Quantity::LatencyQuantile(0.99)
    );
    let strategy = yaml::<Strategy>(
        "type: weighted\nsteps:\n  - {weight: 5, pause: {timed: 10m}}\n  - weight: 100\n",
    );
    let Strategy::Weighted { steps } = strategy else {
        panic!("{strategy:?}")
    };
    assert_eq!(steps[0].pause, Pause::Timed(Duration::from_secs(600)));
}

#[test]
fn a_bad_value_inside_a_one_key_map_is_named_by_its_path() {
    let err = from_str::<Vec<CountMode>>("- perRequest: {alpha: often}\n", Format::Yaml)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("cannot parse YAML: [0].perRequest.alpha: invalid type: string \"often\""),
        "{err}"
    );
}

#[test]
fn a_deployment_config_reads_steps_as_maps_and_as_tags() {
    let head = "strategy: canary\nversion: 1.0.0\ntargetServices: [web]\ncanaryConfig:\n  steps:\n";
    let maps = DeploymentConfig::from_yaml(&format!(
        "{head}    - setWeight: 20\n    - pause: {{duration: 5m}}\n    - setWeight: 100\n"
    ))
    .unwrap();
    let tags = DeploymentConfig::from_yaml(&format!(
        "{head}    - !setWeight 20\n    - !pause {{duration: 5m}}\n    - !setWeight 100\n"
    ))
    .unwrap();
    assert_eq!(maps, tags);
    assert_eq!(maps.canary_config.steps.as_ref().map(Vec::len), Some(3));
}
