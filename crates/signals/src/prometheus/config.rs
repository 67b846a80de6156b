//! [`PrometheusConfig`]: the Prometheus source as written in a config file.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{PrometheusBuilder, PrometheusSource, redacted};
use crate::error::{Error, Result};
use crate::metric::Metric;

/// The Prometheus source in config (YAML, JSON, TOML), camelCase as users write it:
///
/// ```yaml
/// baseUrl: http://prometheus.monitoring:9090
/// timeout: 5s            # per request; human strings or milliseconds
/// retries: 3
/// initialBackoff: 200ms
/// maxBackoff: 5s
/// latencyScale: 1000     # histogram bounds in seconds
/// acceptWarnings: false  # a warned answer may be partial (Thanos, Cortex): retried, then no data
/// bearerTokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token  # read before each request
/// queries:
///   error_rate:
///     requests: sum(increase(http_requests_total{app="shop",track="{{track}}"}[{{window}}]))
///     errors: sum(increase(http_requests_total{app="shop",track="{{track}}",code=~"5.."}[{{window}}]))
///   queue_depth:
///     value: max(queue_depth{track="{{track}}"})
/// ```
///
/// Omitted settings keep the builder's defaults, and metrics not listed under `queries` keep
/// their default templates, but for `error_rate` and `throughput`: they read one pair of counts,
/// so the queries listed for one of them serve the other unless both are listed. Each entry of `queries` holds exactly one of `requests` with
/// `errors` (counts), `buckets` (latency histogram) or `value` (gauge).
/// [`PrometheusSource::from_config`] checks everything and names the offending path.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrometheusConfig {
    /// Prometheus' base URL.
    pub base_url: String,
    /// The time one HTTP request may take (at most [`MAX_TIMEOUT`](super::MAX_TIMEOUT)).
    #[serde(
        default,
        with = "crate::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// How many times a transient failure is retried (at most
    /// [`MAX_RETRIES`](super::MAX_RETRIES)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// The first backoff between retries (longer than zero unless `retries` is 0, at most
    /// [`MAX_BACKOFF`](super::MAX_BACKOFF)). Without
    /// `maxBackoff`, the default cap is raised to it if shorter.
    #[serde(
        default,
        with = "crate::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub initial_backoff: Option<Duration>,
    /// The cap on the backoff between retries, not shorter than `initialBackoff` (at most
    /// [`MAX_BACKOFF`](super::MAX_BACKOFF)). Without
    /// `initialBackoff`, the default first backoff is lowered to it if longer.
    #[serde(
        default,
        with = "crate::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_backoff: Option<Duration>,
    /// What a histogram `le` bound is multiplied by to get milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_scale: Option<f64>,
    /// Whether an answer that carries warnings is taken as whole (default `false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept_warnings: Option<bool>,
    /// A file holding a bearer token, read before every request (see
    /// [`PrometheusBuilder::with_bearer_token_file`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<std::path::PathBuf>,
    /// Query templates per metric, replacing the defaults of the metrics listed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub queries: BTreeMap<Metric, QueryConfig>,
}

/// Written out so that the password of a `baseUrl` carrying basic auth is never printed: a
/// config is often logged whole.
impl std::fmt::Debug for PrometheusConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let PrometheusConfig {
            base_url,
            timeout,
            retries,
            initial_backoff,
            max_backoff,
            latency_scale,
            accept_warnings,
            bearer_token_file,
            queries,
        } = self;
        f.debug_struct("PrometheusConfig")
            .field("base_url", &redacted(base_url))
            .field("timeout", timeout)
            .field("retries", retries)
            .field("initial_backoff", initial_backoff)
            .field("max_backoff", max_backoff)
            .field("latency_scale", latency_scale)
            .field("accept_warnings", accept_warnings)
            .field("bearer_token_file", bearer_token_file)
            .field("queries", queries)
            .finish()
    }
}

/// The templates of one metric; exactly one form must be given.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueryConfig {
    /// Counts: the requests query (with `errors`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<String>,
    /// Counts: the failed requests query (with `requests`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<String>,
    /// Latency: the histogram buckets query, one series per `le`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<String>,
    /// Gauge: the one query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl PrometheusConfig {
    /// A config for `base_url` with every default.
    pub fn new(base_url: impl Into<String>) -> Self {
        PrometheusConfig {
            base_url: base_url.into(),
            timeout: None,
            retries: None,
            initial_backoff: None,
            max_backoff: None,
            latency_scale: None,
            accept_warnings: None,
            bearer_token_file: None,
            queries: BTreeMap::new(),
        }
    }

    /// The builder this config describes (not yet checked: [`PrometheusBuilder::build`] does).
    pub fn into_builder(self) -> Result<PrometheusBuilder> {
        let mut b = PrometheusSource::builder(self.base_url);
        if let Some(t) = self.timeout {
            b = b.with_timeout(t);
        }
        if let Some(r) = self.retries {
            b = b.with_retries(r);
        }
        // A setting left out follows the one given: a cap below the default first backoff
        // lowers it, as a first backoff above the default cap raises that, so that either
        // setting alone is never refused for the other's default.
        match (self.initial_backoff, self.max_backoff) {
            (None, None) => {}
            (Some(initial), Some(max)) if max < initial => {
                return Err(Error::invalid(
                    "maxBackoff",
                    format!("{max:?}"),
                    format!("must not be shorter than initialBackoff {initial:?}"),
                ));
            }
            // The first backoff would follow the cap down to zero and be refused by a name
            // the config never wrote.
            (None, Some(max)) if max.is_zero() && b.retries > 0 => {
                return Err(Error::invalid(
                    "maxBackoff",
                    "0s",
                    "must be longer than zero when there are retries, or they hammer a struggling server",
                ));
            }
            (initial, max) => {
                let initial =
                    initial.unwrap_or(b.initial_backoff.min(max.unwrap_or(Duration::MAX)));
                let max = max.unwrap_or(b.max_backoff.max(initial));
                b = b.with_backoff(initial, max);
            }
        }
        if let Some(s) = self.latency_scale {
            b = b.with_latency_scale(s);
        }
        if let Some(accept) = self.accept_warnings {
            b = b.accept_warnings(accept);
        }
        if let Some(path) = self.bearer_token_file {
            b = b.with_bearer_token_file(path);
        }
        for (metric, q) in self.queries {
            let path = format!("queries.{metric}");
            b = match q {
                QueryConfig {
                    requests: Some(requests),
                    errors: Some(errors),
                    buckets: None,
                    value: None,
                } => b.with_counts_queries(metric, requests, errors),
                QueryConfig {
                    requests: None,
                    errors: None,
                    buckets: Some(buckets),
                    value: None,
                } if metric == Metric::Latency => b.with_latency_query(buckets),
                QueryConfig {
                    requests: None,
                    errors: None,
                    buckets: Some(_),
                    value: None,
                } => {
                    return Err(Error::invalid(
                        format!("{path}.buckets"),
                        &metric,
                        "histogram buckets are read for the `latency` metric only; use `value` for a gauge",
                    ));
                }
                QueryConfig {
                    requests: None,
                    errors: None,
                    buckets: None,
                    value: Some(value),
                } => b.with_gauge_query(metric, value),
                other => {
                    let given: Vec<&str> = [
                        ("requests", other.requests.is_some()),
                        ("errors", other.errors.is_some()),
                        ("buckets", other.buckets.is_some()),
                        ("value", other.value.is_some()),
                    ]
                    .iter()
                    .filter(|(_, set)| *set)
                    .map(|(name, _)| *name)
                    .collect();
                    return Err(Error::invalid(
                        path,
                        format!("{{{}}}", given.join(", ")),
                        "give exactly one of `requests` with `errors`, `buckets`, or `value`",
                    ));
                }
            };
        }
        Ok(b)
    }
}

impl PrometheusSource {
    /// Builds a source from config; errors name the path (`queries.error_rate`, `baseUrl`) or
    /// the metric and template.
    pub fn from_config(config: PrometheusConfig) -> Result<Self> {
        config.into_builder()?.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_config_builds_with_defaults_for_the_rest() {
        let json = r#"{
            "baseUrl": "http://127.0.0.1:9090",
            "timeout": "5s",
            "retries": 1,
            "initialBackoff": 50,
            "acceptWarnings": true,
            "queries": {
                "queue_depth": {"value": "max(queue_depth{track=\"{{track}}\"})"},
                "error_rate": {
                    "requests": "sum(increase(r{track=\"{{track}}\"}[{{window}}]))",
                    "errors": "sum(increase(e{track=\"{{track}}\"}[{{window}}]))"
                }
            }
        }"#;
        let config: PrometheusConfig = serde_json::from_str(json).unwrap();
        assert_eq!(config.timeout, Some(Duration::from_secs(5)));
        assert_eq!(config.initial_backoff, Some(Duration::from_millis(50)));
        assert_eq!(config.accept_warnings, Some(true));
        let back: PrometheusConfig =
            serde_json::from_str(&serde_json::to_string(&config).unwrap()).unwrap();
        assert_eq!(back, config);
        let source = PrometheusSource::from_config(config).unwrap();
        let window = crate::Window::new(
            crate::Timestamp::from_millis(0),
            crate::Timestamp::from_millis(60_000),
        )
        .unwrap();
        let q = |m: Metric| crate::MetricQuery::new(m, crate::Track::Canary, window);
        assert_eq!(
            source.promql(&q(Metric::ErrorRate)).unwrap()[1],
            r#"sum(increase(e{track="canary"}[60000ms]))"#
        );
        assert!(
            source.promql(&q(Metric::Latency)).unwrap()[0]
                .contains("http_request_duration_seconds_bucket")
        );
    }

    /// Either backoff setting alone fits the other's default: a cap below the default first
    /// backoff (200 ms) lowers it, a first backoff above the default cap (5 s) raises that.
    #[test]
    fn one_backoff_setting_alone_is_never_refused_for_the_others_default() {
        for (json, initial, max) in [
            (r#""maxBackoff":"100ms""#, 100, 100),
            (r#""maxBackoff":"1s""#, 200, 1_000),
            (r#""initialBackoff":"10s""#, 10_000, 10_000),
            (r#""initialBackoff":"50ms""#, 50, 5_000),
        ] {
            let config: PrometheusConfig =
                serde_json::from_str(&format!(r#"{{"baseUrl":"http://x",{json}}}"#)).unwrap();
            let b = config.into_builder().unwrap();
            assert_eq!(
                (b.initial_backoff, b.max_backoff),
                (Duration::from_millis(initial), Duration::from_millis(max)),
                "{json}"
            );
            b.build().unwrap();
        }
    }

    /// Error rate and throughput read one pair of counts: overriding one of them alone moves
    /// the other to the same templates, so the two never count different requests.
    #[test]
    fn counts_given_for_one_of_error_rate_and_throughput_serve_both() {
        let window = crate::Window::new(
            crate::Timestamp::from_millis(0),
            crate::Timestamp::from_millis(60_000),
        )
        .unwrap();
        let promql = |source: &PrometheusSource, m: Metric| {
            source.promql(&crate::MetricQuery::new(m, crate::Track::Canary, window))
        };
        let counts = |prefix: &str| QueryConfig {
            requests: Some(format!(
                "sum(increase({prefix}_r{{track=\"{{{{track}}}}\"}}[{{{{window}}}}]))"
            )),
            errors: Some(format!(
                "sum(increase({prefix}_e{{track=\"{{{{track}}}}\"}}[{{{{window}}}}]))"
            )),
            ..QueryConfig::default()
        };
        for given in [Metric::ErrorRate, Metric::Throughput] {
            let mut config = PrometheusConfig::new("http://x");
            config.queries.insert(given.clone(), counts("shop"));
            let source = PrometheusSource::from_config(config).unwrap();
            let rate = promql(&source, Metric::ErrorRate).unwrap();
            assert!(
                rate[0].starts_with("sum(increase(shop_r{"),
                "{given}: {rate:?}"
            );
            assert_eq!(
                promql(&source, Metric::Throughput).unwrap(),
                rate,
                "{given}"
            );
        }
        // Both given: each keeps its own.
        let mut config = PrometheusConfig::new("http://x");
        config.queries.insert(Metric::ErrorRate, counts("a"));
        config.queries.insert(Metric::Throughput, counts("b"));
        let source = PrometheusSource::from_config(config).unwrap();
        assert!(promql(&source, Metric::ErrorRate).unwrap()[0].contains("a_r"));
        assert!(promql(&source, Metric::Throughput).unwrap()[0].contains("b_r"));
        // In code, whatever the order, and a metric forgotten or read as a gauge stays so.
        let b = PrometheusSource::builder("http://x")
            .with_counts_queries(
                Metric::Throughput,
                "t{{track}}{{window}}",
                "u{{track}}{{window}}",
            )
            .with_counts_queries(
                Metric::ErrorRate,
                "e{{track}}{{window}}",
                "f{{track}}{{window}}",
            )
            .build()
            .unwrap();
        assert_eq!(promql(&b, Metric::Throughput).unwrap()[0], "tcanary60000ms");
        let b = PrometheusSource::builder("http://x")
            .without_metric(&Metric::Throughput)
            .with_counts_queries(
                Metric::ErrorRate,
                "e{{track}}{{window}}",
                "f{{track}}{{window}}",
            )
            .build()
            .unwrap();
        assert!(matches!(
            promql(&b, Metric::Throughput),
            Err(Error::Unsupported { .. })
        ));
    }

    /// Prometheus reads its `timeout` parameter as a duration of at most about 292 years; a
    /// longer one made every query a bad query, so it is refused where it is written.
    #[test]
    fn an_absurd_timeout_is_refused_at_load() {
        let msg = PrometheusSource::from_config(
            serde_json::from_str(r#"{"baseUrl":"http://x","timeout":"3000000h"}"#).unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            msg.contains("invalid timeout `10800000000s`") && msg.contains("at most 1h"),
            "{msg}"
        );
        PrometheusSource::builder("http://x")
            .with_timeout(Duration::from_secs(3_600))
            .build()
            .unwrap();
    }

    #[test]
    fn bad_config_names_the_path() {
        let cases = [
            (r#"{"baseUrl":"http://x","timout":"5s"}"#, "timout"),
            (r#"{"baseUrl":"http://x","timeout":"soon"}"#, "soon"),
            (
                r#"{"baseUrl":"http://x","queries":{"cpu":{"value":"a","requests":"b"}}}"#,
                "queries.cpu",
            ),
            (
                r#"{"baseUrl":"http://x","queries":{"error_rate":{"requests":"b"}}}"#,
                "queries.error_rate",
            ),
            (
                r#"{"baseUrl":"http://x","queries":{"cpu":{"buckets":"b"}}}"#,
                "queries.cpu.buckets",
            ),
            (
                r#"{"baseUrl":"http://x","queries":{"cpu":{"value":"max(cpu)"}}}"#,
                "lacks `{{track}}`",
            ),
            (r#"{"baseUrl":"gopher://x"}"#, "baseUrl"),
            (
                r#"{"baseUrl":"http://x","retries":11}"#,
                "invalid retries `11`",
            ),
            (
                r#"{"baseUrl":"http://x","initialBackoff":0}"#,
                "invalid initialBackoff `0s`",
            ),
            (
                r#"{"baseUrl":"http://x","queries":{"9bad":{"value":"x"}}}"#,
                "9bad",
            ),
            (
                r#"{"baseUrl":"http://x","initialBackoff":"1s","maxBackoff":"500ms"}"#,
                "invalid maxBackoff `500ms`: must not be shorter than initialBackoff 1s",
            ),
            // The first backoff follows a zero cap down to zero; the error names the setting
            // that was written.
            (
                r#"{"baseUrl":"http://x","maxBackoff":0}"#,
                "invalid maxBackoff `0s`: must be longer than zero when there are retries",
            ),
            // A backoff past the cap would hold a query for that long; the error names the
            // setting written, whichever one the other followed.
            (
                r#"{"baseUrl":"http://x","maxBackoff":"100y"}"#,
                "invalid maxBackoff `3155760000s`: must be at most 1m",
            ),
            (
                r#"{"baseUrl":"http://x","initialBackoff":"2m"}"#,
                "invalid initialBackoff `120s`: must be at most 1m",
            ),
            (
                r#"{"baseUrl":"http://x","initialBackoff":"1s","maxBackoff":"61s"}"#,
                "invalid maxBackoff `61s`: must be at most 1m",
            ),
        ];
        for (json, want) in cases {
            let msg = match serde_json::from_str::<PrometheusConfig>(json) {
                Err(e) => e.to_string(),
                Ok(c) => PrometheusSource::from_config(c).unwrap_err().to_string(),
            };
            assert!(msg.contains(want), "{json}: {msg}");
        }
    }

    /// Counts are read for error rate, throughput and custom metrics: a latency, CPU or memory
    /// query written as counts would hand its readers request counts as milliseconds, cores
    /// or bytes, so it is refused with the shape that metric takes, and so is the builder's.
    #[test]
    fn counts_are_refused_for_metrics_that_are_not_counted() {
        let counts = r#"{"requests":"sum(increase(r{track=\"{{track}}\"}[{{window}}]))",
            "errors":"sum(increase(e{track=\"{{track}}\"}[{{window}}]))"}"#;
        for (metric, want) in [
            ("latency", "give `buckets`"),
            ("cpu", "give `value`"),
            ("memory", "give `value`"),
        ] {
            let json = format!(r#"{{"baseUrl":"http://x","queries":{{"{metric}":{counts}}}}}"#);
            let config: PrometheusConfig = serde_json::from_str(&json).unwrap();
            let msg = PrometheusSource::from_config(config)
                .unwrap_err()
                .to_string();
            assert!(
                msg.contains(&format!("queries.{metric}")) && msg.contains(want),
                "{metric}: {msg}"
            );
        }
        let built = PrometheusSource::builder("http://x")
            .with_counts_queries(Metric::Latency, "r[{{window}}]", "e[{{window}}]")
            .build();
        assert!(built.is_err());
        // A custom metric may be counted.
        let json =
            format!(r#"{{"baseUrl":"http://x","queries":{{"checkout_failures":{counts}}}}}"#);
        let config: PrometheusConfig = serde_json::from_str(&json).unwrap();
        assert!(PrometheusSource::from_config(config).is_ok());
    }

    /// A bad template is named by the metric it was written for, not by the metric it is
    /// shared with.
    #[test]
    fn a_bad_shared_counts_template_names_the_metric_it_was_written_for() {
        let json = r#"{"baseUrl":"http://x","queries":{"throughput":{
            "requests":"sum(increase(r{track=\"{{track}}\"}[5m]))",
            "errors":"sum(increase(e{track=\"{{track}}\"}[{{window}}]))"}}}"#;
        let config: PrometheusConfig = serde_json::from_str(json).unwrap();
        let msg = PrometheusSource::from_config(config)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("lacks `{{window}}`"), "{msg}");
        assert!(msg.contains("`throughput.requests`"), "{msg}");
    }
}
