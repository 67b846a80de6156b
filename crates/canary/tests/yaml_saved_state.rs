//! A saved judge reads back from YAML as people write it, maps with one key and no tags, as it
//! does from JSON; the JSON form stays as journals already hold it.

use crate::common;

use common::{counts, latency, second};
use serin_canary::judge::{Judge, Sample};
use serin_canary::sequential::{
    BatchCountConfig, CountMode, CountTestConfig, SequentialCountJudge, SequentialJudge,
    SequentialLatencyJudge,
};
use serin_canary::severity::SeverityBands;
use serin_signals::{Metric, Track};

/// A count judge of `mode` fed a minute of per-second samples.
fn fed_count_judge(mode: CountMode) -> SequentialCountJudge {
    let mut judge =
        SequentialCountJudge::with_mode(Metric::ErrorRate, mode, SeverityBands::default()).unwrap();
    for s in 0..60 {
        let w = second(s);
        let b = counts(Metric::ErrorRate, Track::Stable, w, 900, 9 + s % 3);
        let c = counts(Metric::ErrorRate, Track::Canary, w, 100, 1 + s % 2);
        judge
            .observe(&Sample::new(&b, &c, Some(0.1), w.end()).unwrap())
            .unwrap();
    }
    judge
}

/// A latency judge fed one sample.
fn fed_latency_judge() -> SequentialLatencyJudge {
    let mut judge = SequentialLatencyJudge::new(Metric::Latency, 0.05, 0.0).unwrap();
    let w = second(0);
    let values: Vec<f64> = (0..40).map(|k| 10.0 + f64::from(k % 7)).collect();
    let b = latency(Track::Stable, w, &values);
    let c = latency(Track::Canary, w, &values);
    judge
        .observe(&Sample::new(&b, &c, Some(0.5), w.end()).unwrap())
        .unwrap();
    judge
}

fn modes() -> [CountMode; 2] {
    [
        CountMode::PerRequest(CountTestConfig::new(0.05)),
        CountMode::Batched(BatchCountConfig::new(0.05)),
    ]
}

/// Writes `value` to YAML, checks it holds no tag, and reads it back.
fn through_yaml<T: serde::Serialize + serde::de::DeserializeOwned>(value: &T) -> T {
    let yaml = serde_yaml_ng::to_string(value).unwrap();
    assert!(!yaml.contains('!'), "a tag in the saved form:\n{yaml}");
    serde_yaml_ng::from_str(&yaml).unwrap()
}

#[test]
fn a_saved_count_judge_round_trips_through_yaml_without_tags() {
    for mode in modes() {
        let judge = fed_count_judge(mode);
        assert_eq!(through_yaml(&judge), judge);
    }
}

#[test]
fn either_sequential_judge_round_trips_through_yaml_without_tags() {
    let judges: Vec<SequentialJudge> = vec![
        fed_count_judge(modes()[0]).into(),
        fed_count_judge(modes()[1]).into(),
        fed_latency_judge().into(),
    ];
    for judge in judges {
        assert_eq!(through_yaml(&judge), judge);
    }
}

#[test]
fn a_saved_count_judge_s_engine_is_a_map_with_one_key_in_json_and_yaml() {
    for (mode, kind) in modes().into_iter().zip(["perRequest", "batched"]) {
        let judge = fed_count_judge(mode);
        let json = serde_json::to_value(&judge).unwrap();
        let engine = json["engine"].as_object().unwrap();
        assert_eq!(engine.keys().collect::<Vec<_>>(), [kind]);
        let yaml: serde_yaml_ng::Value = serde_yaml_ng::to_value(&judge).unwrap();
        let engine = yaml["engine"].as_mapping().unwrap();
        assert_eq!(engine.len(), 1);
        assert!(engine.contains_key(kind));
    }
}

#[test]
fn a_saved_judge_written_as_json_reads_from_yaml() {
    // A journal's JSON is YAML too: a saved judge copied from one reads as it was.
    for mode in modes() {
        let judge = fed_count_judge(mode);
        let json = serde_json::to_string(&SequentialJudge::from(judge.clone())).unwrap();
        let read: SequentialJudge = serde_yaml_ng::from_str(&json).unwrap();
        assert_eq!(read, SequentialJudge::from(judge));
    }
}

#[test]
fn a_judge_saved_with_a_yaml_tag_still_reads() {
    // Serde's own form, `!counts` and the judge below it, as YAML writers gave it before.
    let judge = SequentialJudge::from(fed_count_judge(modes()[0]));
    let yaml = serde_yaml_ng::to_string(&judge).unwrap();
    let body = yaml.strip_prefix("counts:\n").unwrap();
    let tagged = format!("!counts\n{}", body.replace("\n  ", "\n").trim_start());
    assert_eq!(
        serde_yaml_ng::from_str::<SequentialJudge>(&tagged).unwrap(),
        judge
    );
}

#[test]
fn a_saved_judge_with_two_kinds_is_refused_naming_both() {
    let judge = serde_json::to_value(SequentialJudge::from(fed_count_judge(modes()[0]))).unwrap();
    let mut two = judge.as_object().unwrap().clone();
    two.insert("latency".into(), judge["counts"].clone());
    let err = serde_json::from_value::<SequentialJudge>(two.into())
        .unwrap_err()
        .to_string();
    assert!(err.contains("`counts`; `latency` is one too many"), "{err}");
}
