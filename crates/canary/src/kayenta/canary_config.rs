//! Kayenta's canary configuration, as Spinnaker's canary UI edits it and Kayenta's
//! `/canaryConfig` API stores it (JSON), and one judgement of it: every metric classified with its
//! own `analysisConfigurations.canary` block, its label counted in each of its groups, the groups
//! weighted into the run's score, as `NetflixACAJudge` judges one interval.
//!
//! A team moving from Kayenta brings the configuration it has tuned; reading it as written, and
//! refusing what cannot be honoured instead of skipping it, keeps the verdicts those settings
//! were tuned for.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::kayenta::classify::{MetricConfig, classify};
use crate::kayenta::scoring::{CanaryScore, MetricResult, ScoreConfig, score};
use crate::{Error, Result};

/// The only judge whose rules this module implements.
pub const NETFLIX_ACA_JUDGE: &str = "NetflixACAJudge-v1.0";

/// A Kayenta canary configuration (Kayenta's `CanaryConfig`), with its field names.
///
/// Fields Kayenta keeps for its own bookkeeping (ids, timestamps, applications, templates and
/// each metric's provider query) are read and kept as they are, so that a configuration
/// round-trips, but they decide nothing here: Serin's metrics sources answer the queries.
/// Anything else is refused with its path, as a misspelt setting would otherwise be silently
/// left at its default.
///
/// ```
/// use serin_canary::kayenta::{CanaryConfig, MetricSetPair, ScoreVerdict};
///
/// let config = CanaryConfig::from_json(r#"{
///   "name": "checkout",
///   "judge": { "name": "NetflixACAJudge-v1.0" },
///   "metrics": [{
///     "name": "errors",
///     "groups": ["availability"],
///     "analysisConfigurations": { "canary": { "direction": "increase", "critical": true } }
///   }],
///   "classifier": { "groupWeights": { "availability": 100 } }
/// }"#)?;
/// let steady: Vec<Option<f64>> = (0..30).map(|i| Some(1.0 + f64::from(i % 5))).collect();
/// let judgement = config.judge(&[MetricSetPair::new("errors", steady.clone(), steady)], None)?;
/// assert_eq!(judgement.score.verdict, ScoreVerdict::Pass);
/// # Ok::<(), serin_canary::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanaryConfig {
    /// Kayenta's id of the stored configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The configuration's name.
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Kayenta's schema version of the configuration (`"1"`). Kayenta's field is a string,
    /// into which Jackson reads a number too, and Kayenta's own example writes one (`1.0`):
    /// a number is kept as text, `1.0` as `"1.0"`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "string_or_number"
    )]
    pub config_version: Option<String>,
    /// The Spinnaker applications that may use it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applications: Vec<String>,
    /// The judge; absent means Kayenta's default, [`NETFLIX_ACA_JUDGE`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<JudgeRef>,
    /// The metrics, each with its groups and classifier settings.
    pub metrics: Vec<CanaryMetric>,
    /// Query templates of the metrics sources, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub templates: BTreeMap<String, String>,
    /// Group weights and, in older configurations, the score thresholds.
    #[serde(default)]
    pub classifier: Classifier,
    /// When the configuration was created, in Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_timestamp: Option<i64>,
    /// When the configuration was last changed, in Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_timestamp: Option<i64>,
    /// `createdTimestamp` as ISO 8601 text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_timestamp_iso: Option<String>,
    /// `updatedTimestamp` as ISO 8601 text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_timestamp_iso: Option<String>,
}

/// A string field that may be written as a number, read as Jackson reads a scalar into a
/// `String`: the number as JSON writes it (`1.0` stays `"1.0"`, `2` is `"2"`).
fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct Text;
    impl<'de> Visitor<'de> for Text {
        type Value = Option<String>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string or a number")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_owned()))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            // JSON's shortest text for the number, which keeps `1.0` (Rust's own prints `1`).
            serde_json::Number::from_f64(v)
                .map(|n| Some(n.to_string()))
                .ok_or_else(|| E::invalid_value(de::Unexpected::Float(v), &self))
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }
    d.deserialize_any(Text)
}

/// The judge a configuration names (Kayenta's `CanaryJudgeConfig`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JudgeRef {
    /// The judge's name; only [`NETFLIX_ACA_JUDGE`] is accepted.
    pub name: String,
    /// Settings of the judge; `NetflixACAJudge` reads none, so any given are refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub judge_configurations: BTreeMap<String, serde_json::Value>,
}

/// One metric of a configuration (Kayenta's `CanaryMetricConfig`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanaryMetric {
    /// The metric's name, unique in the configuration: a [`MetricSetPair`] is matched by it.
    pub name: String,
    /// The metrics source's query, kept as written.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub query: serde_json::Value,
    /// The groups whose scores count this metric's label; in Kayenta a metric may belong to
    /// several, and one in none is in no group score (it still counts for the critical and
    /// `Nodata` rules).
    #[serde(default)]
    pub groups: Vec<String>,
    /// The classifier's settings.
    #[serde(default)]
    pub analysis_configurations: AnalysisConfigurations,
    /// The scope the metric is queried in (`default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_name: Option<String>,
}

/// A metric's `analysisConfigurations`: the `canary` block that `NetflixACAJudge` reads.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnalysisConfigurations {
    /// The metric's classification settings.
    #[serde(default)]
    pub canary: MetricConfig,
}

/// A configuration's `classifier` block (Kayenta's `CanaryClassifierConfig`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Classifier {
    /// Weight of each group in the score, summing to at most 100 (Kayenta asks for exactly 100);
    /// groups without one share what the weights leave.
    #[serde(default)]
    pub group_weights: BTreeMap<String, f64>,
    /// Score thresholds kept in the configuration by older Kayenta versions; a run's own
    /// thresholds take precedence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_thresholds: Option<ScoreThresholds>,
}

/// The pass and marginal score thresholds (Kayenta's `CanaryClassifierThresholdsConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScoreThresholds {
    /// A score at or above this passes.
    pub pass: f64,
    /// A score at or above this (and below `pass`) is marginal.
    pub marginal: f64,
}

/// One metric's points for one judgement (Kayenta's `MetricSetPair`): the baseline's
/// (`control`) and the canary's (`experiment`) series, a missing point as `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricSetPair {
    /// The metric's name in the configuration.
    pub name: String,
    /// The baseline's points.
    pub control: Vec<Option<f64>>,
    /// The canary's points.
    pub experiment: Vec<Option<f64>>,
}

impl MetricSetPair {
    /// The points of metric `name`.
    pub fn new(
        name: impl Into<String>,
        control: Vec<Option<f64>>,
        experiment: Vec<Option<f64>>,
    ) -> Self {
        MetricSetPair {
            name: name.into(),
            control,
            experiment,
        }
    }
}

/// One judgement of a configuration: each metric's result, in the configuration's order, and
/// the score they make.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CanaryJudgement {
    /// Every configured metric's classification, with its groups.
    pub results: Vec<MetricResult>,
    /// The score, its group scores and its verdict.
    pub score: CanaryScore,
}

impl CanaryConfig {
    /// Reads a configuration from Kayenta's JSON and validates it. A field that does not parse
    /// is named by its path (`metrics[1].analysisConfigurations.canary.direction`).
    pub fn from_json(text: &str) -> Result<Self> {
        let mut de = serde_json::Deserializer::from_str(text);
        let config: CanaryConfig = serde_path_to_error::deserialize(&mut de)
            .map_err(|e| Error::parse("Kayenta canary config", e.path(), e.inner()))?;
        de.end()
            .map_err(|e| Error::parse("Kayenta canary config", ".", e))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what Kayenta's judge would trip over or silently misread: the judge's name,
    /// metric names (present and unique), each metric's classifier settings, the group weights
    /// and thresholds, and that every weighted group has a metric (a weight no metric can earn
    /// would cap the score below 100 without any failure to show for it).
    pub fn validate(&self) -> Result<()> {
        if let Some(judge) = &self.judge {
            if judge.name != NETFLIX_ACA_JUDGE {
                return Err(Error::invalid_config(
                    "judge.name",
                    &judge.name,
                    format!("only {NETFLIX_ACA_JUDGE}'s rules are implemented"),
                ));
            }
            if let Some(key) = judge.judge_configurations.keys().next() {
                return Err(Error::invalid_config(
                    format!("judge.judgeConfigurations.{key}"),
                    &judge.judge_configurations[key],
                    format!("{NETFLIX_ACA_JUDGE} reads no judge configuration"),
                ));
            }
        }
        if self.metrics.is_empty() {
            return Err(Error::invalid_config(
                "metrics",
                "[]",
                "a canary config needs at least one metric",
            ));
        }
        let mut names = BTreeSet::new();
        for (i, m) in self.metrics.iter().enumerate() {
            if m.name.trim().is_empty() {
                return Err(Error::invalid_config(
                    format!("metrics[{i}].name"),
                    &m.name,
                    "a metric needs a name: its points are matched by it",
                ));
            }
            if !names.insert(m.name.as_str()) {
                return Err(Error::invalid_config(
                    format!("metrics[{i}].name"),
                    &m.name,
                    "another metric has this name, so its points could not be told apart",
                ));
            }
            m.analysis_configurations
                .canary
                .validate(&format!("metrics[{i}].analysisConfigurations.canary"))?;
        }
        let weights = ScoreConfig {
            group_weights: self.classifier.group_weights.clone(),
            ..ScoreConfig::default()
        };
        weights.validate_at("classifier")?;
        if let Some(t) = self.classifier.score_thresholds {
            let thresholds = ScoreConfig {
                pass: t.pass,
                marginal: t.marginal,
                ..ScoreConfig::default()
            };
            thresholds.validate_at("classifier.scoreThresholds")?;
        }
        let grouped: BTreeSet<&str> = self
            .metrics
            .iter()
            .flat_map(|m| m.groups.iter().map(String::as_str))
            .collect();
        if let Some((group, weight)) = weights
            .group_weights
            .iter()
            .find(|(g, _)| !grouped.contains(g.as_str()))
        {
            return Err(Error::invalid_config(
                format!("classifier.groupWeights.{group}"),
                weight,
                "no metric belongs to this group, so its weight could never be earned",
            ));
        }
        Ok(())
    }

    /// The scoring settings: these group weights with `thresholds`, else the configuration's
    /// own, else Kayenta's examples (75 to pass, 50 for marginal).
    pub fn score_config(&self, thresholds: Option<ScoreThresholds>) -> ScoreConfig {
        let defaults = ScoreConfig::default();
        let t = thresholds
            .or(self.classifier.score_thresholds)
            .unwrap_or(ScoreThresholds {
                pass: defaults.pass,
                marginal: defaults.marginal,
            });
        ScoreConfig {
            group_weights: self.classifier.group_weights.clone(),
            pass: t.pass,
            marginal: t.marginal,
        }
    }

    /// Judges one interval: every configured metric is classified from its pair's points, and
    /// the results are scored. A configured metric without a pair has no data (so it is
    /// `Nodata`, or `NodataFailMetric` if it must have data), as when Kayenta's fetch comes back
    /// empty; a pair naming no configured metric, or a metric twice, is refused, as Kayenta's
    /// judge refuses a pair it has no configuration for. `thresholds` are the run's (see
    /// [`score_config`](Self::score_config)).
    pub fn judge(
        &self,
        pairs: &[MetricSetPair],
        thresholds: Option<ScoreThresholds>,
    ) -> Result<CanaryJudgement> {
        self.validate()?;
        let mut by_name: BTreeMap<&str, &MetricSetPair> = BTreeMap::new();
        for (i, pair) in pairs.iter().enumerate() {
            if !self.metrics.iter().any(|m| m.name == pair.name) {
                return Err(Error::invalid_input(
                    format!("pairs[{i}].name"),
                    &pair.name,
                    format!("canary config `{}` has no metric of this name", self.name),
                ));
            }
            if by_name.insert(pair.name.as_str(), pair).is_some() {
                return Err(Error::invalid_input(
                    format!("pairs[{i}].name"),
                    &pair.name,
                    "an earlier pair holds this metric's points",
                ));
            }
        }
        let results: Vec<MetricResult> = self
            .metrics
            .iter()
            .map(|m| {
                let canary = &m.analysis_configurations.canary;
                let (control, experiment) = by_name
                    .get(m.name.as_str())
                    .map_or((&[][..], &[][..]), |p| (&p.control[..], &p.experiment[..]));
                MetricResult {
                    name: m.name.clone(),
                    groups: m.groups.clone(),
                    muted: canary.muted,
                    classification: classify(canary, control, experiment),
                }
            })
            .collect();
        let score = score(&results, &self.score_config(thresholds))?;
        Ok(CanaryJudgement { results, score })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kayenta::{Label, ScoreVerdict};

    /// Two groups weighted 70/30; `p99` belongs to both.
    const CONFIG: &str = r#"{
      "id": "6c1f-checkout",
      "name": "checkout-canary",
      "description": "errors and latency of the checkout service",
      "configVersion": "1",
      "applications": ["checkout"],
      "createdTimestamp": 1764000000000,
      "createdTimestampIso": "2025-11-24T16:00:00.000Z",
      "judge": { "name": "NetflixACAJudge-v1.0", "judgeConfigurations": {} },
      "metrics": [
        {
          "name": "5xx",
          "query": { "type": "prometheus", "metricName": "http_requests_total" },
          "groups": ["availability"],
          "analysisConfigurations": {
            "canary": { "direction": "increase", "nanStrategy": "replace" }
          },
          "scopeName": "default"
        },
        {
          "name": "p99",
          "query": { "type": "prometheus", "customInlineTemplate": "PromQL:histogram_quantile(0.99, x)" },
          "groups": ["availability", "latency"],
          "analysisConfigurations": {
            "canary": {
              "direction": "increase",
              "nanStrategy": "none",
              "outliers": { "strategy": "none" },
              "effectSize": { "allowedIncrease": 1.1 }
            }
          },
          "scopeName": "default"
        },
        {
          "name": "cpu",
          "groups": ["latency"],
          "analysisConfigurations": { "canary": { "mustHaveData": true } }
        }
      ],
      "templates": {},
      "classifier": { "groupWeights": { "availability": 70, "latency": 30 } }
    }"#;

    fn series(level: f64) -> Vec<Option<f64>> {
        (0..40).map(|i| Some(level + f64::from(i % 7))).collect()
    }

    #[test]
    fn reads_kayentas_json_and_round_trips() {
        let config = CanaryConfig::from_json(CONFIG).unwrap();
        assert_eq!(config.metrics.len(), 3);
        assert_eq!(config.metrics[1].groups, ["availability", "latency"]);
        let p99 = &config.metrics[1].analysis_configurations.canary;
        assert_eq!(p99.effect_size.allowed_increase, Some(1.1));
        let again: CanaryConfig =
            serde_json::from_str(&serde_json::to_string(&config).unwrap()).unwrap();
        assert_eq!(again, config);
    }

    #[test]
    fn a_metric_counts_in_every_group_it_belongs_to() {
        let config = CanaryConfig::from_json(CONFIG).unwrap();
        let pairs = [
            MetricSetPair::new("5xx", series(10.0), series(10.0)),
            MetricSetPair::new("p99", series(100.0), series(200.0)),
            MetricSetPair::new("cpu", series(50.0), series(50.0)),
        ];
        let j = config.judge(&pairs, None).unwrap();
        let labels: Vec<Label> = j.results.iter().map(|r| r.classification.label).collect();
        assert_eq!(labels, [Label::Pass, Label::High, Label::Pass]);
        // availability: 5xx Pass, p99 High → 50; latency: p99 High, cpu Pass → 50.
        assert_eq!(j.score.group_scores["availability"], 50.0);
        assert_eq!(j.score.group_scores["latency"], 50.0);
        assert_eq!(
            (j.score.score, j.score.verdict),
            (50.0, ScoreVerdict::Marginal)
        );
    }

    #[test]
    fn a_metric_without_points_has_no_data_and_the_run_thresholds_win() {
        let config = CanaryConfig::from_json(CONFIG).unwrap();
        let pairs = [
            MetricSetPair::new("5xx", series(10.0), series(10.0)),
            MetricSetPair::new("p99", series(100.0), series(100.0)),
        ];
        let j = config.judge(&pairs, None).unwrap();
        assert_eq!(j.results[2].classification.label, Label::NodataFailMetric);
        // availability 100 × 0.7, latency (p99 Pass, cpu NodataFailMetric) 50 × 0.3.
        assert_eq!((j.score.score, j.score.verdict), (85.0, ScoreVerdict::Pass));
        let strict = ScoreThresholds {
            pass: 90.0,
            marginal: 80.0,
        };
        let j = config.judge(&pairs, Some(strict)).unwrap();
        assert_eq!(j.score.verdict, ScoreVerdict::Marginal);
    }

    #[test]
    fn pairs_that_match_no_metric_or_repeat_one_are_refused() {
        let config = CanaryConfig::from_json(CONFIG).unwrap();
        let stray = [MetricSetPair::new("p50", series(1.0), series(1.0))];
        let msg = config.judge(&stray, None).unwrap_err().to_string();
        assert!(
            msg.contains("pairs[0].name") && msg.contains("p50"),
            "{msg}"
        );
        let twice = [
            MetricSetPair::new("cpu", series(1.0), series(1.0)),
            MetricSetPair::new("cpu", series(1.0), series(1.0)),
        ];
        let msg = config.judge(&twice, None).unwrap_err().to_string();
        assert!(msg.contains("pairs[1].name"), "{msg}");
    }

    /// The error of `CONFIG` with the key at JSON pointer `at` set to `value`.
    fn error_of(at: &str, value: serde_json::Value) -> String {
        let mut json: serde_json::Value = serde_json::from_str(CONFIG).unwrap();
        let (parent, key) = at.rsplit_once('/').unwrap();
        let object = json.pointer_mut(parent).unwrap().as_object_mut().unwrap();
        object.insert(key.to_owned(), value);
        CanaryConfig::from_json(&json.to_string())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn what_cannot_be_honoured_is_refused_with_its_path() {
        use serde_json::json;
        let cases = [
            (
                "/metrics/1/analysisConfigurations/canary/critcal",
                json!(true),
                "metrics[1].analysisConfigurations.canary.critcal",
            ),
            (
                "/judge/name",
                json!("StaticBaselineJudge-v1.0"),
                "judge.name",
            ),
            ("/metrics/2/name", json!("p99"), "metrics[2].name"),
            (
                "/classifier/groupWeights/saturation",
                json!(0),
                "classifier.groupWeights.saturation",
            ),
            (
                "/classifier/groupWeights/latency",
                json!(40),
                "classifier.groupWeights",
            ),
            (
                "/metrics/0/analysisConfigurations/canary/effectSize",
                json!({ "allowedIncrease": "NaN" }),
                "metrics[0].analysisConfigurations.canary.effectSize.allowedIncrease",
            ),
            ("/metrics", json!([]), "metrics"),
            (
                "/classifier/scoreThresholds",
                json!({ "pass": 40, "marginal": 60 }),
                "classifier.scoreThresholds.marginal",
            ),
        ];
        for (at, value, path) in cases {
            let msg = error_of(at, value);
            assert!(msg.contains(path), "{path}: {msg}");
        }
    }
}
