//! [`FlaggerAnalysisConfig`] and [`FlaggerMetric`]: a Flagger canary's `analysis` as written
//! for Flagger, its built-in checks by name, and the Flagger fields that pace traffic or query
//! a provider refused with where their job is done here.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serin_signals::Metric;

use crate::kayenta::Quantity;
use crate::threshold::bounds::Range;
use crate::threshold::flagger::{Compare, default_threshold, effective_threshold};
use crate::{Error, Result};

/// One metric check of a Flagger analysis (an entry of `analysis.metrics`).
///
/// Written as for Flagger, a check of a built-in metric needs only its `name` and
/// `thresholdRange`: `request-success-rate` checks the success rate in percent of
/// `error_rate` and `request-duration` the p99 of `latency` in milliseconds, as Flagger's
/// built-ins do (`request-duration` in whole milliseconds, as Flagger truncates the p99 and its
/// bounds: 500.6 ms passes `max: 500`). Any other check names the Serin `metric` and `quantity` it reads (Flagger's
/// `templateRef` query is the metrics source's business here), and may keep its Flagger
/// `name` as a label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    deny_unknown_fields,
    try_from = "WrittenFlaggerMetric"
)]
pub struct FlaggerMetric {
    /// Flagger's name for the check, if written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The metric checked (Flagger checks the canary alone).
    pub metric: Metric,
    /// Which number of the canary's observation is checked (`successRatePercent` for the
    /// built-in `request-success-rate`, `{"latencyQuantile": 0.99}` for `request-duration`).
    pub quantity: Quantity,
    /// The accepted range of the value.
    pub threshold_range: Range,
    /// The window each value is read over (Flagger's metric `interval`, default `1m`), if
    /// written; whoever feeds the analysis reads values over its own window, and may refuse
    /// another.
    #[serde(
        with = "serin_signals::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub interval: Option<Duration>,
}

/// A [`FlaggerMetric`] as written: a built-in's `name` stands for its metric and quantity.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WrittenFlaggerMetric {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    metric: Option<Metric>,
    #[serde(default)]
    quantity: Option<Quantity>,
    threshold_range: Range,
    #[serde(default, with = "serin_signals::duration::option")]
    interval: Option<Duration>,
    /// Refused with a pointer: the value comes from the metrics source.
    #[serde(default)]
    template_ref: Option<serde_json::Value>,
    /// Refused with a pointer, as `templateRef` (Flagger's older inline query).
    #[serde(default)]
    query: Option<serde_json::Value>,
}

/// Flagger's built-in checks and what each reads.
fn built_in(name: &str) -> Option<(Metric, Quantity)> {
    match name {
        "request-success-rate" => Some((Metric::ErrorRate, Quantity::SuccessRatePercent)),
        "request-duration" => Some((Metric::Latency, Quantity::LatencyQuantile(0.99))),
        _ => None,
    }
}

impl TryFrom<WrittenFlaggerMetric> for FlaggerMetric {
    type Error = Error;

    fn try_from(w: WrittenFlaggerMetric) -> Result<Self> {
        super::refuse_written(
            "flaggerMetric",
            &[("templateRef", &w.template_ref), ("query", &w.query)],
            "is not read: a check's value is the `quantity` of `metric` that the deployment's \
             metrics source reads for the canary, so name those instead",
        )?;
        let reads = w.name.as_deref().and_then(built_in);
        let (metric, quantity) = match (w.metric, w.quantity, reads) {
            (Some(m), Some(q), None) => (m, q),
            (None, None, Some(reads)) => reads,
            (Some(m), Some(q), Some(reads)) if (&m, q) == (&reads.0, reads.1) => reads,
            (_, _, Some((m, q))) => {
                return Err(Error::invalid_config(
                    "flaggerMetric.name",
                    w.name.unwrap_or_default(),
                    format!(
                        "is Flagger's built-in check of {} of `{m}`: leave out metric and \
                         quantity, or give another name to a check of something else",
                        q.describe()
                    ),
                ));
            }
            // The metric is written and only its quantity is missing: name the quantity, not
            // the metric that is there.
            (Some(m), None, None) => {
                return Err(Error::invalid_config(
                    "flaggerMetric.quantity",
                    "(missing)",
                    format!(
                        "a check names the quantity of `{m}` it reads (`errorRate`, \
                         `successRatePercent`, `{{latencyQuantile: 0.99}}`, `latencyMean` or \
                         `value`), unless it is one of Flagger's built-ins \
                         (`request-success-rate`, `request-duration`)"
                    ),
                ));
            }
            (None, _, None) => {
                return Err(Error::invalid_config(
                    "flaggerMetric.metric",
                    w.name.as_deref().unwrap_or("(no name)"),
                    "a check names the metric and quantity it reads, unless it is one of \
                     Flagger's built-ins (`request-success-rate`, `request-duration`)",
                ));
            }
        };
        Ok(FlaggerMetric {
            name: w.name,
            metric,
            quantity,
            threshold_range: w.threshold_range,
            interval: w.interval,
        })
    }
}

impl FlaggerMetric {
    /// How the check compares: Flagger's built-in `request-duration` in whole milliseconds,
    /// any other check as numbers.
    pub(super) fn compare(&self) -> Compare {
        match self.name.as_deref() {
            Some("request-duration") => Compare::WholeMilliseconds,
            _ => Compare::Exact,
        }
    }

    /// A check of `quantity` of `metric` against `range`.
    pub fn new(metric: Metric, quantity: Quantity, range: Range) -> Self {
        FlaggerMetric {
            name: None,
            metric,
            quantity,
            threshold_range: range,
            interval: None,
        }
    }
}

/// A Flagger `Canary`'s `analysis`: its metric checks and the one `threshold` of failed checks,
/// with Flagger's defaults. Flagger's traffic steps (`maxWeight`, `stepWeight`, `stepWeights`,
/// `stepWeightPromotion`, `iterations`), its routing (`match`, `mirror`, `mirrorWeight`,
/// `sessionAffinity`) and its `webhooks` and `alerts` are refused with a pointer to where that
/// job is done, so that a pasted analysis does not seem to do what it does not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    deny_unknown_fields,
    try_from = "WrittenFlaggerAnalysis"
)]
pub struct FlaggerAnalysisConfig {
    /// Failed checks of the analysis before rollback (Flagger's `analysis.threshold`, default
    /// 1; 0 reads as 1, as Flagger reads it): an interval in which any metric fails is one
    /// failed check.
    #[serde(default = "default_threshold")]
    pub threshold: u32,
    /// How often the metrics are checked (Flagger's `analysis.interval`, default `1m`), if
    /// written; whoever feeds the analysis checks at its own pace, and may refuse another.
    #[serde(
        default,
        with = "serin_signals::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub interval: Option<Duration>,
    /// Flagger parity: a metric without data fails its check, as in Flagger ("no values
    /// found"). Off by default, because Serin treats missing data as inconclusive.
    #[serde(default)]
    pub no_data_fails: bool,
    /// The checks made every interval (Flagger's `analysis.metrics`), at least one. A metric
    /// may be checked more than once (its p99 and its mean latency, say).
    pub metrics: Vec<FlaggerMetric>,
}

/// A [`FlaggerAnalysisConfig`] as written, Flagger's traffic steps included.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WrittenFlaggerAnalysis {
    #[serde(default = "default_threshold")]
    threshold: u32,
    #[serde(default, with = "serin_signals::duration::option")]
    interval: Option<Duration>,
    #[serde(default)]
    no_data_fails: bool,
    metrics: Vec<FlaggerMetric>,
    #[serde(default)]
    max_weight: Option<serde_json::Value>,
    #[serde(default)]
    step_weight: Option<serde_json::Value>,
    #[serde(default)]
    step_weights: Option<serde_json::Value>,
    #[serde(default)]
    step_weight_promotion: Option<serde_json::Value>,
    #[serde(default)]
    iterations: Option<serde_json::Value>,
    #[serde(default, rename = "match")]
    route_match: Option<serde_json::Value>,
    #[serde(default)]
    mirror: Option<serde_json::Value>,
    #[serde(default)]
    mirror_weight: Option<serde_json::Value>,
    #[serde(default)]
    session_affinity: Option<serde_json::Value>,
    #[serde(default)]
    webhooks: Option<serde_json::Value>,
    #[serde(default)]
    alerts: Option<serde_json::Value>,
}

impl TryFrom<WrittenFlaggerAnalysis> for FlaggerAnalysisConfig {
    type Error = Error;

    fn try_from(w: WrittenFlaggerAnalysis) -> Result<Self> {
        super::refuse_written(
            "flaggerAnalysis",
            &[
                ("maxWeight", &w.max_weight),
                ("stepWeight", &w.step_weight),
                ("stepWeights", &w.step_weights),
                ("stepWeightPromotion", &w.step_weight_promotion),
                ("iterations", &w.iterations),
            ],
            "is Flagger's traffic pacing, which this analysis does not drive: a canary's \
             weights are its own steps (Serin's canaryConfig: initialPercentage, \
             incrementPercentage and targetPercentage, or steps)",
        )?;
        super::refuse_written(
            "flaggerAnalysis",
            &[
                ("match", &w.route_match),
                ("mirror", &w.mirror),
                ("mirrorWeight", &w.mirror_weight),
                ("sessionAffinity", &w.session_affinity),
            ],
            "is Flagger's traffic routing, which this analysis does not drive: Serin's router \
             splits a canary's traffic by weight",
        )?;
        super::refuse_written(
            "flaggerAnalysis",
            &[("webhooks", &w.webhooks), ("alerts", &w.alerts)],
            "is not called by this analysis: a deployment's events go to its \
             notificationChannels, its pre- and post-upgrade steps to its step runner, and a \
             confirmation is a pause step that an operator's resume ends",
        )?;
        let config = FlaggerAnalysisConfig {
            threshold: w.threshold,
            interval: w.interval,
            no_data_fails: w.no_data_fails,
            metrics: w.metrics,
        };
        // Refused when read, as the analysis refuses it (no metrics, a range that holds no
        // value), rather than once it is built.
        config.validate()?;
        Ok(config)
    }
}

impl FlaggerAnalysisConfig {
    /// Flagger's defaults with `metrics`.
    pub fn new(metrics: Vec<FlaggerMetric>) -> Self {
        FlaggerAnalysisConfig {
            threshold: default_threshold(),
            interval: None,
            no_data_fails: false,
            metrics,
        }
    }

    /// Checks the configuration, naming the path (`flaggerAnalysis.metrics[1].thresholdRange`).
    pub fn validate(&self) -> Result<()> {
        if self.metrics.is_empty() {
            return Err(Error::invalid_config(
                "flaggerAnalysis.metrics",
                "[]",
                "an analysis checks at least one metric",
            ));
        }
        for (i, m) in self.metrics.iter().enumerate() {
            m.quantity
                .validate(&format!("flaggerAnalysis.metrics[{i}].quantity"))?;
            m.threshold_range
                .validate(&format!("flaggerAnalysis.metrics[{i}].thresholdRange"))?;
        }
        Ok(())
    }

    /// The failed checks that roll back: `threshold`, with 0 read as 1 as Flagger reads it.
    pub fn failed_checks_to_roll_back(&self) -> u32 {
        effective_threshold(self.threshold)
    }
}

impl crate::checked::Checked for FlaggerAnalysisConfig {
    fn check(&self) -> Result<()> {
        self.validate()
    }
}
