//! A deployment config's errors name where the bad value stands, as the file writes it
//! (`triggers[2].value`), in JSON and in YAML, inside tagged parts (a trigger) too; and an
//! unknown field is refused wherever it is written.

use serin_orchestrator::DeploymentConfig;

/// A map's fields, each value a literal that JSON and YAML read alike (`"abc"`, `true`, `-1`).
type Fields<'a> = &'a [(&'a str, &'a str)];

const METRIC: Fields = &[
    ("kind", r#""metricThreshold""#),
    ("id", r#""p99""#),
    ("metric", r#""latency""#),
    ("operator", r#""gt""#),
    ("value", "900"),
];
const HEALTH: Fields = &[
    ("kind", r#""healthCheck""#),
    ("id", r#""ready""#),
    ("checkType", r#""readiness""#),
];
const CHANNEL: Fields = &[("type", r#""slack""#), ("destination", r##""#deploys""##)];

fn json_map(fields: Fields) -> String {
    let fields: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!(r#""{k}":{v}"#))
        .collect();
    format!("{{{}}}", fields.join(","))
}

/// `fields` as a block mapping, each line indented by `indent`.
fn yaml_map(fields: Fields, indent: &str) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{indent}{k}: {v}\n"))
        .collect()
}

fn head(json: bool) -> &'static str {
    if json {
        r#"{"strategy":"canary","version":"1.0.0","targetServices":["web"],"#
    } else {
        "strategy: canary\nversion: 1.0.0\ntargetServices: [web]\n"
    }
}

/// A config whose `section` lists `entries`, as JSON and as YAML (block style).
fn with_list(section: &str, entries: &[Fields]) -> [String; 2] {
    let json: Vec<String> = entries.iter().map(|e| json_map(e)).collect();
    let json = format!(r#"{}"{section}":[{}]}}"#, head(true), json.join(","));
    let mut yaml = format!("{}{section}:\n", head(false));
    for e in entries {
        yaml.push_str("  - ");
        yaml.push_str(yaml_map(e, "    ").trim_start());
    }
    [json, yaml]
}

/// A config whose `section` is the map of `fields`, as JSON and as YAML (block style).
fn with_map(section: &str, fields: Fields) -> [String; 2] {
    let json = format!(r#"{}"{section}":{}}}"#, head(true), json_map(fields));
    let yaml = format!("{}{section}:\n{}", head(false), yaml_map(fields, "  "));
    [json, yaml]
}

/// Each file's error must name `path`, hold `value` and say `reason`.
fn assert_refused(files: &[String; 2], path: &str, value: &str, reason: &str) {
    for (text, result) in [
        (&files[0], DeploymentConfig::from_json(&files[0])),
        (&files[1], DeploymentConfig::from_yaml(&files[1])),
    ] {
        let err = result.expect_err(&format!("refused: {text}")).to_string();
        assert!(
            err.contains(&format!("{path}: ")) && err.contains(value) && err.contains(reason),
            "want `{path}`, `{value}`, `{reason}` in `{err}`\nfor {text}"
        );
    }
}

/// Valid triggers of each kind, for a case to set one field of.
const ERRORS: Fields = &[
    ("kind", r#""metricThreshold""#),
    ("id", r#""errors""#),
    ("metric", r#""error_rate""#),
    ("operator", r#""gt""#),
    ("value", "0.1"),
];
const LIVE: Fields = &[
    ("kind", r#""healthCheck""#),
    ("id", r#""live""#),
    ("checkType", r#""liveness""#),
];
const SPIKE: Fields = &[
    ("kind", r#""errorSpike""#),
    ("id", r#""spike""#),
    ("baselineErrorRate", "0.01"),
];
const DB: Fields = &[
    ("kind", r#""dependencyFailure""#),
    ("id", r#""db""#),
    ("dependency", r#""postgres""#),
];
const CPU: Fields = &[
    ("kind", r#""resourceUsage""#),
    ("id", r#""cpu""#),
    ("resource", r#""cpu""#),
    ("capacity", "2"),
];

/// `base` with `field` set to `literal`: in its place where `base` has it, last otherwise.
fn with_field<'a>(base: Fields<'a>, field: &'a str, literal: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut fields = base.to_vec();
    match fields.iter_mut().find(|(k, _)| *k == field) {
        Some(set) => set.1 = literal,
        None => fields.push((field, literal)),
    }
    fields
}

/// Each file's error, for a third trigger that is `base` with `field` set to `literal`, must
/// name the field's path, hold `value` and say `reason`.
fn assert_third_trigger_refused(
    base: Fields,
    field: &str,
    literal: &str,
    value: &str,
    reason: &str,
) {
    let third = with_field(base, field, literal);
    let files = with_list("triggers", &[METRIC, HEALTH, third.as_slice()]);
    assert_refused(&files, &format!("triggers[2].{field}"), value, reason);
}

#[test]
fn a_bad_value_in_a_trigger_is_named_by_its_path() {
    #[rustfmt::skip]
    let cases: [(Fields, &str, &str, &str, &str); 9] = [
        // base  field                 literal          value        reason
        (ERRORS, "value",              r#""abc""#,      "\"abc\"",    "expected f64"),
        (ERRORS, "duration",           "true",          "true",       "expected a duration"),
        (ERRORS, "metric",             r#""Bad Name""#, "Bad Name",   "must match"),
        (ERRORS, "action",             r#""explode""#,  "explode",    "unknown variant"),
        (LIVE,   "failureThreshold",   r#""three""#,    "\"three\"",  "expected u32"),
        (LIVE,   "checkInterval",      "false",         "false",      "expected a duration"),
        (SPIKE,  "increasePercentage", r#""lots""#,     "\"lots\"",   "expected f64"),
        (DB,     "failureThreshold",   "-1",            "-1",         "expected u32"),
        (CPU,    "capacity",           r#""two""#,      "\"two\"",    "expected f64"),
    ];
    for (base, field, literal, value, reason) in cases {
        assert_third_trigger_refused(base, field, literal, value, reason);
    }
}

#[test]
fn an_unknown_field_in_a_trigger_of_each_kind_is_refused_with_its_path() {
    let cases: [(Fields, &str, &str); 5] = [
        (ERRORS, "vlaue", "0.2"),
        (LIVE, "failureTreshold", "3"),
        (SPIKE, "baselineErrorRat", "0.01"),
        (DB, "onSharedOutages", r#""hold""#),
        (CPU, "capactiy", "4"),
    ];
    for (base, field, literal) in cases {
        let value = format!("`{field}`");
        assert_third_trigger_refused(base, field, literal, &value, "unknown field");
    }
    let files = with_list("triggers", &[METRIC, HEALTH, &[("kind", r#""nope""#)]]);
    assert_refused(&files, "triggers[2].kind", "`nope`", "unknown variant");
    let files = with_list("triggers", &[METRIC, HEALTH, &[("id", r#""x""#)]]);
    assert_refused(&files, "triggers[2]", "`kind`", "missing field");
}

#[test]
fn a_trigger_whose_kind_comes_last_reads_alike_and_names_its_fields() {
    let kind_last: Fields = &[
        ("id", r#""p99""#),
        ("metric", r#""latency""#),
        ("operator", r#""gt""#),
        ("value", "900"),
        ("warnValue", "null"),
        ("duration", "30000"),
        ("kind", r#""metricThreshold""#),
        ("cooldown", r#""2m""#),
    ];
    let kind_first: Fields = &[
        ("kind", r#""metricThreshold""#),
        ("id", r#""p99""#),
        ("metric", r#""latency""#),
        ("operator", r#""gt""#),
        ("value", "900"),
        ("duration", r#""30s""#),
        ("cooldown", r#""2m""#),
    ];
    let [json, yaml] = with_list("triggers", &[HEALTH, kind_last]);
    let [first, _] = with_list("triggers", &[HEALTH, kind_first]);
    let first = DeploymentConfig::from_json(&first).expect("kind first");
    assert_eq!(
        DeploymentConfig::from_json(&json).expect("kind last"),
        first
    );
    assert_eq!(
        DeploymentConfig::from_yaml(&yaml).expect("kind last"),
        first
    );

    let bad: Fields = &[
        ("id", r#""p99""#),
        ("value", r#""abc""#),
        ("kind", r#""metricThreshold""#),
        ("metric", r#""latency""#),
        ("operator", r#""gt""#),
    ];
    let files = with_list("triggers", &[METRIC, HEALTH, bad]);
    assert_refused(&files, "triggers[2]", "value: ", "expected f64");
    let misspelt: Fields = &[("vlaue", "1"), ("kind", r#""metricThreshold""#)];
    let files = with_list("triggers", &[METRIC, HEALTH, misspelt]);
    assert_refused(&files, "triggers[2]", "`vlaue`", "unknown field");
}

#[test]
fn a_bad_value_in_a_notification_channel_is_named_by_its_path() {
    let slack: Fields = &[("type", r#""slack""#), ("destination", r#""d""#)];
    #[rustfmt::skip]
    let cases: [(&str, &str, &str, &str, &str); 3] = [
        // field   literal          path         value        reason
        ("type",   r#""slak""#,      "type",      "`slak`",    "unknown variant"),
        ("events", r#"["strated"]"#, "events[0]", "`strated`", "unknown variant"),
        ("evnets", "[]",             "evnets",    "`evnets`",  "unknown field"),
    ];
    for (field, literal, path, value, reason) in cases {
        let second = with_field(slack, field, literal);
        let files = with_list("notificationChannels", &[CHANNEL, second.as_slice()]);
        assert_refused(
            &files,
            &format!("notificationChannels[1].{path}"),
            value,
            reason,
        );
    }
}

#[test]
fn a_channel_listed_twice_for_the_same_events_is_refused() {
    // The same receiver listed twice would get every message they share twice.
    let refused = |files: [String; 2], reason: &str| {
        for (text, result) in [
            (&files[0], DeploymentConfig::from_json(&files[0])),
            (&files[1], DeploymentConfig::from_yaml(&files[1])),
        ] {
            let err = result.expect_err(text).to_string();
            assert!(
                err.contains("notificationChannels[1] `#deploys`")
                    && err.contains("the same channel as notificationChannels[0]")
                    && err.contains(reason),
                "{err}\nfor {text}"
            );
        }
    };
    refused(
        with_list("notificationChannels", &[CHANNEL, CHANNEL]),
        "every event",
    );
    let rollback: Fields = &[
        ("type", r#""slack""#),
        ("destination", r##"" #deploys""##),
        ("events", r#"["rollback", "failed"]"#),
    ];
    refused(
        with_list("notificationChannels", &[CHANNEL, rollback]),
        "both take `rollback`, `failed`",
    );
    // Disjoint events, another secret (another workspace) or another kind: each its own.
    let started: Fields = &[
        ("type", r#""slack""#),
        ("destination", r##""#deploys""##),
        ("events", r#"["started"]"#),
    ];
    let other_workspace: Fields = &[
        ("type", r#""slack""#),
        ("destination", r##""#deploys""##),
        ("secretEnv", r#""OTHER_SLACK""#),
    ];
    for files in [
        with_list("notificationChannels", &[rollback, started]),
        with_list("notificationChannels", &[CHANNEL, other_workspace]),
    ] {
        DeploymentConfig::from_json(&files[0]).expect(&files[0]);
        DeploymentConfig::from_yaml(&files[1]).expect(&files[1]);
    }
}

#[test]
fn a_bad_value_in_a_settings_section_is_named_by_its_path() {
    // Each case sets, in the section its path starts with, the field next in the path.
    #[rustfmt::skip]
    let cases: [(&str, &str, &str, &str); 10] = [
        // path, literal, value, reason
        ("canaryConfig.initialPercentage", r#""five""#, "\"five\"", "expected u8"),
        ("canaryConfig.pacing.beta", r#"{"beta": "x"}"#, "\"x\"", "expected f64"),
        ("canaryConfig.incrementPercent", "10", "`incrementPercent`", "unknown field"),
        ("blueGreenConfig.replicasPerEnv", r#""x""#, "\"x\"", "expected u32"),
        ("blueGreenConfig.replicas", "3", "`replicas`", "unknown field"),
        ("monitoring.checkInterval", "true", "true", "expected a duration"),
        ("monitoring.checkIntervall", r#""5s""#, "`checkIntervall`", "unknown field"),
        ("canaryThresholds.maxErrorRate", r#""x""#, "\"x\"", "expected f64"),
        (
            "canaryThresholds.customMetricThresholds.queue_depth.max",
            r#"{"queue_depth": {"max": "x"}}"#, "\"x\"", "expected f64",
        ),
        (
            "canaryThresholds.customMetricThresholds.queue_depth.maks",
            r#"{"queue_depth": {"maks": 1}}"#, "`maks`", "unknown field",
        ),
    ];
    for (path, literal, value, reason) in cases {
        let mut parts = path.split('.');
        let (Some(section), Some(field)) = (parts.next(), parts.next()) else {
            panic!("a path of a section's field: {path}");
        };
        assert_refused(&with_map(section, &[(field, literal)]), path, value, reason);
    }
}

#[test]
fn a_trigger_reads_alike_from_toml() {
    let json = DeploymentConfig::from_json(
        r#"{"strategy":"canary","version":"1.0.0","targetServices":["web"],"triggers":[
            {"kind":"metricThreshold","id":"p99","metric":"latency","operator":"gt","value":900,
             "warnValue":700,"duration":"30s","onMissingData":"fire"},
            {"kind":"dependencyFailure","id":"db","dependency":"postgres","callMetric":"db_calls","maxCallErrorRate":0.5}]}"#,
    )
    .expect("json");
    let toml = DeploymentConfig::from_toml(
        r#"strategy = "canary"
version = "1.0.0"
targetServices = ["web"]

[[triggers]]
id = "p99"
metric = "latency"
kind = "metricThreshold"
operator = "gt"
value = 900
warnValue = 700
duration = 30000
onMissingData = "fire"

[[triggers]]
kind = "dependencyFailure"
id = "db"
dependency = "postgres"
callMetric = "db_calls"
maxCallErrorRate = 0.5
"#,
    )
    .expect("toml");
    assert_eq!(toml, json);
}

#[cfg(feature = "notify")]
#[test]
fn a_channel_destination_no_message_could_reach_is_refused_on_load() {
    #[rustfmt::skip]
    let cases: [(&str, &str, &str); 5] = [
        // type       destination                        reason
        ("webhook",   "not a url",                       "is not a URL"),
        ("webhook",   "ftp://example.org/hook",          "http:// or https://"),
        ("webhook",   "deploys.example.org/hook",        "https://"),
        ("slack",     "hooks.slack.com/services/T/B/X",  "https://"),
        ("email",     "ops at example.org",              "address"),
    ];
    for (kind, destination, reason) in cases {
        let (kind, destination) = (format!("\"{kind}\""), format!("\"{destination}\""));
        let channel: Fields = &[("type", &kind), ("destination", &destination)];
        let files = with_list("notificationChannels", &[CHANNEL, channel]);
        for (text, result) in [
            (&files[0], DeploymentConfig::from_json(&files[0])),
            (&files[1], DeploymentConfig::from_yaml(&files[1])),
        ] {
            let err = result.expect_err(text).to_string();
            assert!(
                err.contains("notificationChannels[1].destination") && err.contains(reason),
                "{err}\nfor {text}"
            );
        }
    }
}
