//! Enums with data read and written as a map with one key in YAML (`batched: {alpha: 0.01}`),
//! as people write them and as JSON has them, with serde's tag form still read.

use serin_canary::kayenta::Quantity;
use serin_canary::sequential::{BatchCountConfig, CountMode, CountTestConfig};

#[test]
fn count_modes_read_and_write_a_map_with_one_key_in_yaml() {
    let batched = CountMode::Batched(BatchCountConfig::new(0.01));
    let read: CountMode = serde_yaml_ng::from_str("batched:\n  alpha: 0.01\n").unwrap();
    assert_eq!(read, batched);
    let yaml = serde_yaml_ng::to_string(&batched).unwrap();
    assert!(yaml.starts_with("batched:\n  alpha: 0.01\n"), "{yaml}");
    assert_eq!(
        serde_yaml_ng::from_str::<CountMode>(&yaml).unwrap(),
        batched
    );
    let tagged: CountMode = serde_yaml_ng::from_str("!perRequest\nalpha: 0.01\n").unwrap();
    assert_eq!(tagged, CountMode::PerRequest(CountTestConfig::new(0.01)));

    let msg = serde_yaml_ng::from_str::<CountMode>("batched: {}\nperRequest: {}\n")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("perRequest"), "{msg}");
    let msg = serde_yaml_ng::from_str::<CountMode>("linear: {}\n")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("linear"), "{msg}");
}

#[test]
fn count_modes_write_json_as_before() {
    let json = serde_json::to_string(&CountMode::PerRequest(CountTestConfig::new(0.01))).unwrap();
    assert!(
        json.starts_with(r#"{"perRequest":{"alpha":0.01,"margin":0.0,"#),
        "{json}"
    );
    let read: CountMode = serde_json::from_str(r#"{"batched":{"alpha":0.01}}"#).unwrap();
    assert_eq!(read, CountMode::Batched(BatchCountConfig::new(0.01)));
    assert_eq!(
        serde_json::from_str::<CountMode>(&json).unwrap(),
        CountMode::PerRequest(CountTestConfig::new(0.01))
    );
}

#[test]
fn quantities_read_and_write_a_map_with_one_key_in_yaml() {
    let p99 = Quantity::LatencyQuantile(0.99);
    assert_eq!(
        serde_yaml_ng::from_str::<Quantity>("latencyQuantile: 0.99\n").unwrap(),
        p99
    );
    assert_eq!(
        serde_yaml_ng::to_string(&p99).unwrap(),
        "latencyQuantile: 0.99\n"
    );
    assert_eq!(
        serde_yaml_ng::from_str::<Quantity>("!latencyQuantile 0.99\n").unwrap(),
        p99
    );
    assert_eq!(
        serde_yaml_ng::from_str::<Quantity>("errorRate\n").unwrap(),
        Quantity::ErrorRate
    );
    assert_eq!(
        serde_yaml_ng::to_string(&Quantity::Value).unwrap(),
        "value\n"
    );
    let msg = serde_yaml_ng::from_str::<Quantity>("p99\n")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("p99"), "{msg}");
    let msg = serde_yaml_ng::from_str::<Quantity>("latencyQuantile: high\n")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("latencyQuantile"), "{msg}");
}

#[test]
fn quantities_write_json_as_before() {
    for (q, json) in [
        (Quantity::ErrorRate, r#""errorRate""#),
        (Quantity::SuccessRatePercent, r#""successRatePercent""#),
        (Quantity::LatencyMean, r#""latencyMean""#),
        (
            Quantity::LatencyQuantile(0.99),
            r#"{"latencyQuantile":0.99}"#,
        ),
        (Quantity::Value, r#""value""#),
    ] {
        assert_eq!(serde_json::to_string(&q).unwrap(), json);
        assert_eq!(serde_json::from_str::<Quantity>(json).unwrap(), q);
    }
}
