//! [`PrometheusSource`]: a [`MetricsSource`] that asks Prometheus with PromQL over HTTP
//! (feature `prometheus`).
//!
//! Each metric has PromQL templates in which `{{track}}` becomes the track's name and
//! `{{window}}` the window's length (`60000ms`). A query over a window is an instant query
//! (`/api/v1/query`) evaluated at the window's end; a range query (`/api/v1/query_range`)
//! evaluates the same templates with `{{window}}` set to the step, once per step.
//!
//! **Freshness.** Prometheus holds a sample only once it has scraped it, up to one scrape
//! interval after the requests it counts, so a window queried the instant it ends misses its
//! last requests, and no later window holds them. A caller reading windows back to back should
//! query each about one scrape interval after its end (the orchestrator's
//! `monitoring.readDelay`).
//!
//! | metric | measurement | default template(s) |
//! |---|---|---|
//! | `error_rate`, `throughput` | counts | requests: `sum(increase(http_requests_total{track="{{track}}"}[{{window}}]))`; errors: the same with `code=~"5.."`; queries given for one of the two serve both |
//! | `latency` | sketch | `sum by (le) (increase(http_request_duration_seconds_bucket{track="{{track}}"}[{{window}}]))` |
//! | `cpu` | gauge (cores) | `sum(rate(container_cpu_usage_seconds_total{track="{{track}}"}[{{window}}]))` |
//! | `memory` | gauge (bytes) | `sum(max_over_time(container_memory_working_set_bytes{track="{{track}}"}[{{window}}]))` |
//! | custom | gauge | none: set one with [`PrometheusBuilder::with_gauge_query`] |
//!
//! **Counts** use `increase()`, which handles counter resets (a restarted instance) but
//! extrapolates to the window's edges, so counts are estimates rounded to whole requests. An
//! errors query with no series while requests are present means zero errors. Errors above requests
//! by more than rounding explains (one, or 1%) are [`Error::BadResponse`]: the two templates count
//! different things, and capping them would read every request as failed.
//!
//! **Latency** is read from a Prometheus histogram's bucket increases and turned into a
//! [`LatencySketch`](crate::LatencySketch): every request is placed at its bucket's upper bound,
//! so quantiles are upper bounds at the histogram's resolution (within the sketch's 1% when
//! latencies sit on bucket bounds), and requests in the `+Inf` bucket count at the largest finite
//! bound, as in `histogram_quantile`; buckets without the `+Inf` one, which alone counts every
//! request, are [`Error::BadResponse`]. Bounds are told apart by number, not spelling: one
//! series' `le="1"` and `le="1.0"` (Prometheus 3 writes bounds as floats, so a window spanning an
//! upgrade has both) are one bucket, and added. A histogram cannot give more: choose buckets
//! around the latencies you judge. Native histograms are not read: an answer holding their
//! samples is [`Error::BadResponse`] saying what to query instead. Bucket bounds are multiplied by
//! [`with_latency_scale`](PrometheusBuilder::with_latency_scale) (default 1000: seconds to
//! milliseconds).
//!
//! **Result types**: an instant query must give a `vector` or a `scalar`, one value per series at
//! the window's end; a `matrix` (a template whose range has no function over it, `x[5m]`) holds
//! raw samples of which none is that value, and is [`Error::BadResponse`]. A range query must
//! give a `matrix`, as Prometheus always does, with samples at the steps' ends only: a query
//! frontend that aligns ranges to the step (Thanos' default) answers for other windows, and
//! is [`Error::BadResponse`] too.
//!
//! **No data**: an empty result, NaN or an infinity is [`Measurement::NoData`](crate::Measurement),
//! never zero. **Errors**: a query Prometheus rejects (`bad_data`, `execution`, other 4xx) is
//! [`Error::BadQuery`] at once; connection errors, 5xx, 429 and Prometheus' `timeout`/`unavailable`
//! errors are retried with exponential backoff, then reported as [`Error::Unavailable`]; a request
//! that outlives the per-request timeout on the last attempt is [`Error::Timeout`]. The same
//! timeout is sent as Prometheus' `timeout` parameter, so the server stops evaluating a query
//! the source has given up on instead of piling retried copies of it up. An answer
//! larger than 64 MiB is [`Error::BadResponse`] without another attempt: it is a query that
//! forgot to aggregate, and reading it whole would hold it all in memory.
//!
//! **Partial answers**: Thanos and Cortex answer with the data they could reach and say so only in
//! the answer's `warnings` (VictoriaMetrics with `isPartial`). Such an answer is retried like a
//! transient failure, then reported as [`Error::Unavailable`], which a judge takes as inconclusive,
//! rather than as a count that misses a store's errors. Prometheus' `PromQL info:` notes do not count.
//! [`PrometheusBuilder::accept_warnings`] takes warned answers as whole, for a server whose
//! warnings are known to be harmless.
//!
//! **Authentication**: basic auth in the base URL (`https://user:password@host`, the way a config
//! file gives it), a bearer token read from a file before every request
//! ([`PrometheusBuilder::with_bearer_token_file`], as Prometheus' own `bearer_token_file`: a
//! Kubernetes service account's token is rotated in place), or any header through
//! [`PrometheusBuilder::with_client`]. Credentials are sent in the `Authorization` header only:
//! errors and debug output show a password as `***` and never a token.
//!
//! Build a source in code with [`PrometheusSource::builder`], or from a config file with
//! [`PrometheusConfig`] and [`PrometheusSource::from_config`].

mod config;
mod convert;
mod response;
mod retry;
mod template;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::metric::Metric;
use crate::observation::{Measurement, Observation};
use crate::source::{MetricQuery, MetricsSource};
use crate::time::{Timestamp, Window};
use response::{ResultType, Series};
use retry::Failure;
use template::Template;

pub use config::{PrometheusConfig, QueryConfig};

/// The default requests query: all requests of a track over the window.
pub const DEFAULT_REQUESTS_QUERY: &str =
    r#"sum(increase(http_requests_total{track="{{track}}"}[{{window}}]))"#;
/// The default errors query: requests that answered 5xx.
pub const DEFAULT_ERRORS_QUERY: &str =
    r#"sum(increase(http_requests_total{track="{{track}}",code=~"5.."}[{{window}}]))"#;
/// The default latency query: histogram bucket increases by `le`, in seconds.
pub const DEFAULT_LATENCY_QUERY: &str = r#"sum by (le) (increase(http_request_duration_seconds_bucket{track="{{track}}"}[{{window}}]))"#;
/// The default CPU query: cores in use, averaged over the window.
pub const DEFAULT_CPU_QUERY: &str =
    r#"sum(rate(container_cpu_usage_seconds_total{track="{{track}}"}[{{window}}]))"#;
/// The default memory query: the peak working set over the window, in bytes.
pub const DEFAULT_MEMORY_QUERY: &str =
    r#"sum(max_over_time(container_memory_working_set_bytes{track="{{track}}"}[{{window}}]))"#;

/// How one metric is asked for, as written by the caller.
#[derive(Debug, Clone)]
enum RawQueries {
    Counts { requests: String, errors: String },
    Latency { buckets: String },
    Gauge { value: String },
}

/// How one metric is asked for, parsed.
#[derive(Debug, Clone)]
enum Queries {
    Counts {
        requests: Template,
        errors: Template,
    },
    Latency {
        buckets: Template,
    },
    Gauge {
        value: Template,
    },
}

/// Builds a [`PrometheusSource`]: setters cannot fail; [`build`](PrometheusBuilder::build) checks
/// everything at once.
///
/// ```
/// use std::time::Duration;
/// use serin_signals::Metric;
/// use serin_signals::prometheus::PrometheusSource;
///
/// let source = PrometheusSource::builder("http://127.0.0.1:9090")
///     .with_timeout(Duration::from_secs(5))
///     .with_retries(3)
///     .with_gauge_query(Metric::named("queue_depth")?, r#"max(queue_depth{track="{{track}}"})"#)
///     .build()?;
/// # let _ = source;
///
/// let bad = PrometheusSource::builder("http://127.0.0.1:9090")
///     .with_gauge_query(Metric::Cpu, r#"sum(rate(cpu{track="{{track}}"}[{{windw}}]))"#)
///     .build()
///     .unwrap_err();
/// assert!(bad.to_string().contains("unknown placeholder `{{windw}}`"));
/// # Ok::<(), serin_signals::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct PrometheusBuilder {
    base_url: Redacted<String>,
    name: String,
    queries: BTreeMap<Metric, RawQueries>,
    /// The metrics whose counts queries were given rather than defaulted or shared.
    given_counts: BTreeSet<Metric>,
    timeout: Duration,
    retries: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    latency_scale: f64,
    accept_warnings: bool,
    bearer_token_file: Option<PathBuf>,
    client: Option<HttpClient>,
}

impl PrometheusBuilder {
    fn new(base_url: String) -> Self {
        let counts = || RawQueries::Counts {
            requests: DEFAULT_REQUESTS_QUERY.into(),
            errors: DEFAULT_ERRORS_QUERY.into(),
        };
        let queries = BTreeMap::from([
            (Metric::ErrorRate, counts()),
            (Metric::Throughput, counts()),
            (
                Metric::Latency,
                RawQueries::Latency {
                    buckets: DEFAULT_LATENCY_QUERY.into(),
                },
            ),
            (
                Metric::Cpu,
                RawQueries::Gauge {
                    value: DEFAULT_CPU_QUERY.into(),
                },
            ),
            (
                Metric::Memory,
                RawQueries::Gauge {
                    value: DEFAULT_MEMORY_QUERY.into(),
                },
            ),
        ]);
        PrometheusBuilder {
            base_url: Redacted(base_url),
            name: "prometheus".into(),
            queries,
            given_counts: BTreeSet::new(),
            timeout: Duration::from_secs(10),
            retries: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            latency_scale: 1_000.0,
            accept_warnings: false,
            bearer_token_file: None,
            client: None,
        }
    }

    /// The name used in errors and evidence (default `prometheus`).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Reads `metric` as request and error counts from two counter queries (both need
    /// `{{track}}` and `{{window}}`; use `increase(...[{{window}}])`).
    ///
    /// [`Metric::ErrorRate`] and [`Metric::Throughput`] read one pair of counts: queries given
    /// for one of them serve the other too while that one still has the default counts
    /// queries, so the two never count different requests (or one of them nothing, for ever).
    /// [`build`](Self::build) refuses counts queries for a metric that is not
    /// [countable](Metric::countable).
    pub fn with_counts_queries(
        mut self,
        metric: Metric,
        requests: impl Into<String>,
        errors: impl Into<String>,
    ) -> Self {
        let queries = RawQueries::Counts {
            requests: requests.into(),
            errors: errors.into(),
        };
        let partner = match metric {
            Metric::ErrorRate => Some(Metric::Throughput),
            Metric::Throughput => Some(Metric::ErrorRate),
            _ => None,
        };
        if let Some(partner) = partner
            && !self.given_counts.contains(&partner)
            && let Some(shared @ RawQueries::Counts { .. }) = self.queries.get_mut(&partner)
        {
            *shared = queries.clone();
        }
        self.given_counts.insert(metric.clone());
        self.queries.insert(metric, queries);
        self
    }

    /// Reads [`Metric::Latency`] from histogram bucket increases: the query must give one series
    /// per `le` bound (`sum by (le) (increase(x_bucket{...}[{{window}}]))`).
    pub fn with_latency_query(mut self, buckets: impl Into<String>) -> Self {
        self.queries.insert(
            Metric::Latency,
            RawQueries::Latency {
                buckets: buckets.into(),
            },
        );
        self
    }

    /// Reads `metric` as a gauge from one query giving one series (`{{window}}` optional).
    pub fn with_gauge_query(mut self, metric: Metric, query: impl Into<String>) -> Self {
        self.queries.insert(
            metric,
            RawQueries::Gauge {
                value: query.into(),
            },
        );
        self
    }

    /// Forgets the query of `metric`, so asking for it is [`Error::Unsupported`].
    pub fn without_metric(mut self, metric: &Metric) -> Self {
        self.queries.remove(metric);
        self
    }

    /// The time one HTTP request may take (default 10 s, at most [`MAX_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many times a transient failure is retried (default 3, so 4 attempts in all; at most
    /// [`MAX_RETRIES`]).
    pub fn with_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// The first backoff and its cap; each retry waits twice as long as the one before
    /// (default 200 ms, capped at 5 s; both at most [`MAX_BACKOFF`]). The first backoff must be
    /// longer than zero when there are retries.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max;
        self
    }

    /// What a histogram `le` bound is multiplied by to get milliseconds (default 1000, for
    /// histograms in seconds; 1 for histograms in milliseconds).
    pub fn with_latency_scale(mut self, to_millis: f64) -> Self {
        self.latency_scale = to_millis;
        self
    }

    /// Whether an answer that carries warnings is taken as whole (default `false`: it is retried,
    /// then reported as [`Error::Unavailable`], because Thanos and Cortex mark partial data only
    /// with warnings).
    pub fn accept_warnings(mut self, accept: bool) -> Self {
        self.accept_warnings = accept;
        self
    }

    /// Sends `Authorization: Bearer <token>`, the token being the contents of `path` (surrounding
    /// whitespace trimmed). The file is read before every request, not once, because the tokens
    /// mounted into a Kubernetes pod are rotated in place; [`build`](Self::build) reads it once to
    /// refuse a file that is missing, empty or not a header value. Not with credentials in the
    /// base URL: a request carries one `Authorization` header.
    pub fn with_bearer_token_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.bearer_token_file = Some(path.into());
        self
    }

    /// The HTTP client to use (for proxies, TLS roots or default headers such as
    /// authorization, which the debug output of the builder and the source never shows). The
    /// per-request timeout still applies.
    pub fn with_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(HttpClient(client));
        self
    }

    /// Checks everything and builds the source. Errors name the setting (`baseUrl`, `timeout`,
    /// `retries`, `initialBackoff`, `maxBackoff`, `backoff`, `latencyScale`, `bearerTokenFile`) or the metric
    /// and template; an HTTP client that cannot be set up (no TLS backend) is
    /// [`Error::Unavailable`].
    pub fn build(self) -> Result<PrometheusSource> {
        // Shown with its password, if any, hidden.
        let shown = redacted(&self.base_url.0);
        let mut base = url::Url::parse(&self.base_url.0)
            .map_err(|e| Error::invalid("baseUrl", &shown, format!("is not a URL ({e})")))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(Error::invalid(
                "baseUrl",
                &shown,
                "must be an http:// or https:// URL",
            ));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(Error::invalid(
                "baseUrl",
                &shown,
                "must not hold a query string or fragment",
            ));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let endpoint = |path: &str| {
            base.join(path)
                .map_err(|e| Error::invalid("baseUrl", &shown, e.to_string()))
        };
        let (query_url, range_url) = (endpoint("api/v1/query")?, endpoint("api/v1/query_range")?);
        if self.timeout.is_zero() {
            return Err(Error::invalid("timeout", "0s", "must be longer than zero"));
        }
        if self.timeout > MAX_TIMEOUT {
            return Err(Error::invalid(
                "timeout",
                format!("{:?}", self.timeout),
                format!(
                    "must be at most {}, the longest one query may run",
                    humantime::format_duration(MAX_TIMEOUT)
                ),
            ));
        }
        if self.retries > MAX_RETRIES {
            return Err(Error::invalid(
                "retries",
                self.retries,
                format!("must be at most {MAX_RETRIES}"),
            ));
        }
        if self.retries > 0 && self.initial_backoff.is_zero() {
            return Err(Error::invalid(
                "initialBackoff",
                "0s",
                "must be longer than zero when there are retries, or they hammer a struggling server",
            ));
        }
        // The first backoff is checked before the cap, which a config raises to follow it.
        for (field, backoff) in [
            ("initialBackoff", self.initial_backoff),
            ("maxBackoff", self.max_backoff),
        ] {
            if backoff > MAX_BACKOFF {
                return Err(Error::invalid(
                    field,
                    format!("{backoff:?}"),
                    format!(
                        "must be at most {}, or a retry holds the query longer than asking again \
                         at the next tick",
                        humantime::format_duration(MAX_BACKOFF)
                    ),
                ));
            }
        }
        if self.max_backoff < self.initial_backoff {
            return Err(Error::invalid(
                "backoff",
                format!("{:?}..{:?}", self.initial_backoff, self.max_backoff),
                "the cap must not be shorter than the first backoff",
            ));
        }
        if !self.latency_scale.is_finite() || self.latency_scale <= 0.0 {
            return Err(Error::invalid(
                "latencyScale",
                self.latency_scale,
                "must be a positive, finite factor",
            ));
        }
        let mut queries = BTreeMap::new();
        // The counts templates a caller gave are checked before the copy shared with their
        // partner metric, so that a bad one is named by the metric it was written for.
        let mut written: Vec<_> = self.queries.iter().collect();
        written.sort_by_key(|(metric, _)| !self.given_counts.contains(*metric));
        for (metric, raw) in written {
            // A `Metric::Custom` built directly: no query could name it.
            metric.validate("queries")?;
            let part = |p: &str| format!("{metric}.{p}");
            let parsed = match raw {
                RawQueries::Counts { .. } if !metric.countable() => {
                    return Err(Error::invalid(
                        format!("queries.{metric}"),
                        "{requests, errors}",
                        format!(
                            "`{metric}` is not counted: give `{}`",
                            if *metric == Metric::Latency {
                                "buckets"
                            } else {
                                "value"
                            }
                        ),
                    ));
                }
                RawQueries::Counts { requests, errors } => Queries::Counts {
                    requests: Template::parse(&part("requests"), requests, true)?,
                    errors: Template::parse(&part("errors"), errors, true)?,
                },
                RawQueries::Latency { buckets } => Queries::Latency {
                    buckets: Template::parse(&part("buckets"), buckets, true)?,
                },
                RawQueries::Gauge { value } => Queries::Gauge {
                    value: Template::parse(metric.as_str(), value, false)?,
                },
            };
            queries.insert(metric.clone(), parsed);
        }
        if let Some(path) = &self.bearer_token_file {
            if !base.username().is_empty() || base.password().is_some() {
                return Err(Error::invalid(
                    "bearerTokenFile",
                    path.display(),
                    format!(
                        "cannot be used with the credentials in baseUrl `{shown}`: a request \
                         carries one Authorization header; give one or the other"
                    ),
                ));
            }
            bearer_token(path)
                .map_err(|reason| Error::invalid("bearerTokenFile", path.display(), reason))?;
        }
        let client = match self.client {
            Some(HttpClient(client)) => client,
            // `Client::default()` panics where `build` reports, e.g. without TLS roots.
            None => reqwest::Client::builder()
                .build()
                .map_err(|e| Error::Unavailable {
                    source_name: self.name.clone(),
                    reason: format!("cannot set up an HTTP client: {}", describe(&e)),
                })?,
        };
        let transport: Arc<dyn Transport> = Arc::new(ReqwestTransport {
            client: HttpClient(client),
            bearer_token_file: self.bearer_token_file,
            max_answer_bytes: MAX_ANSWER_BYTES,
        });
        Ok(PrometheusSource {
            name: self.name,
            query_url: Redacted(query_url),
            range_url: Redacted(range_url),
            queries,
            timeout: self.timeout,
            retries: self.retries,
            initial_backoff: self.initial_backoff,
            max_backoff: self.max_backoff,
            latency_scale: self.latency_scale,
            accept_warnings: self.accept_warnings,
            transport,
        })
    }
}

/// The most retries a source may make per request. With the backoff doubling up to its cap,
/// more would keep a caller waiting minutes for a Prometheus that is down, when holding and
/// asking again at the next tick gives the same answer sooner.
pub const MAX_RETRIES: u32 = 10;

/// The longest backoff between retries, first or capped. A Prometheus that is still down after
/// a minute is better asked again at the next tick than waited for: with [`MAX_RETRIES`] at this
/// cap a query is already held for ten minutes, and a longer one (`maxBackoff: 100y`) would
/// hold it for good.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The longest per-request timeout. It is also sent as Prometheus' own `timeout` parameter,
/// which Prometheus cannot read past about 292 years, so every query would fail; and well before
/// that, a query running for longer than an hour (Prometheus' own limit is 2 minutes by default)
/// is one that holds an analysis far past any interval it judges.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3_600);

/// The largest answer read, in bytes. Prometheus returns at most 11,000 points per series, so
/// a histogram of 40 buckets over that many steps is about 10 MB; an answer beyond this limit is
/// a query that forgot to aggregate (or not Prometheus), and reading it would hold all of it in
/// memory.
const MAX_ANSWER_BYTES: usize = 64 << 20;

/// One HTTP GET, answered with a status and a body; errors are transport failures
/// (connection refused, reset, unreadable body: transient) or an answer too large to read. A
/// seam for tests.
#[async_trait]
pub(crate) trait Transport: Send + Sync + std::fmt::Debug {
    async fn get(
        &self,
        url: &url::Url,
        params: &[(&str, String)],
    ) -> std::result::Result<(u16, String), Failure>;
}

#[derive(Debug)]
struct ReqwestTransport {
    client: HttpClient,
    /// Read before each request; see [`PrometheusBuilder::with_bearer_token_file`].
    bearer_token_file: Option<PathBuf>,
    /// [`MAX_ANSWER_BYTES`] but in tests.
    max_answer_bytes: usize,
}

/// The largest bearer token file read: a Kubernetes service account token is about 1 KiB, and a
/// file far larger is the wrong file.
const MAX_TOKEN_BYTES: u64 = 64 << 10;

/// The token in the file at `path`. Read synchronously: at build, like the config file that
/// names it, and before a request on tokio's blocking pool.
fn bearer_token(path: &Path) -> std::result::Result<reqwest::header::HeaderValue, String> {
    use std::io::Read;
    let mut text = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_TOKEN_BYTES + 1).read_to_end(&mut text))
        .map_err(|e| format!("cannot be read: {e}"))?;
    token_header(&text)
}

/// `Bearer <token>` for a token file's contents (surrounding whitespace trimmed), marked
/// sensitive so that no debug output shows it; the reason it cannot be one otherwise.
fn token_header(text: &[u8]) -> std::result::Result<reqwest::header::HeaderValue, String> {
    if text.len() as u64 > MAX_TOKEN_BYTES {
        return Err(format!(
            "is larger than {MAX_TOKEN_BYTES} bytes, which no bearer token is"
        ));
    }
    let token = text.trim_ascii();
    if token.is_empty() {
        return Err("is empty: it must hold the token".into());
    }
    let mut value = reqwest::header::HeaderValue::from_bytes(&[b"Bearer ", token].concat())
        .map_err(|_| "holds bytes a header cannot carry (a line break inside the token?)")?;
    value.set_sensitive(true);
    Ok(value)
}

impl ReqwestTransport {
    fn too_large(&self) -> Failure {
        Failure::Malformed(format!(
            "the answer is larger than {} bytes; aggregate the query (e.g. `sum by (le) (...)`) or ask for fewer steps",
            self.max_answer_bytes
        ))
    }
}

#[async_trait]
impl Transport for ReqwestTransport {
    async fn get(
        &self,
        url: &url::Url,
        params: &[(&str, String)],
    ) -> std::result::Result<(u16, String), Failure> {
        let transient = |e: reqwest::Error| Failure::Transient(describe(&e));
        let mut request = self.client.0.get(url.clone()).query(params);
        if let Some(path) = &self.bearer_token_file {
            // Unreadable mid-rotation, or removed: retried like a refused connection, and the
            // reason names the file (never its contents).
            let read = path.clone();
            let token = tokio::task::spawn_blocking(move || bearer_token(&read))
                .await
                .unwrap_or_else(|e| Err(format!("cannot be read: {e}")))
                .map_err(|reason| {
                    Failure::Transient(format!("bearerTokenFile {} {reason}", path.display()))
                })?;
            request = request.header(reqwest::header::AUTHORIZATION, token);
        }
        let mut response = request.send().await.map_err(transient)?;
        let status = response.status().as_u16();
        let declared = response.content_length().unwrap_or(0);
        if declared > self.max_answer_bytes as u64 {
            return Err(self.too_large());
        }
        // Read chunk by chunk rather than all at once, so that an answer without a declared
        // length stops at the limit too.
        let mut body = Vec::with_capacity(declared as usize);
        while let Some(chunk) = response.chunk().await.map_err(transient)? {
            if body.len() + chunk.len() > self.max_answer_bytes {
                return Err(self.too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let body = String::from_utf8(body)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        Ok((status, body))
    }
}

/// A URL shown with the password of its userinfo (`https://user:password@host`) replaced by
/// `***`: a base URL is how a config file gives basic auth, and errors, configs and sources end
/// up in logs. A URL that parses is cut where the HTTP client cuts it, so what is hidden is
/// what would be sent. One that does not parse is hidden up to its last `@` after the user
/// name: a password may hold `/`, `?` or `#`, and showing too little of a broken URL is better
/// than showing its password.
pub(crate) fn redacted(url: &str) -> String {
    if let Ok(mut parsed) = url::Url::parse(url) {
        if parsed.password().is_none() {
            return url.to_owned();
        }
        // Cannot fail: a URL with a password has a host.
        let _ = parsed.set_password(Some("***"));
        return parsed.to_string();
    }
    let Some(scheme) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme + 3..];
    let Some(at) = rest.rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme + 3],
            &rest[..colon],
            &rest[at..]
        ),
        None => url.to_owned(),
    }
}

/// A URL, or the text of one, whose debug output hides its password ([`redacted`]).
#[derive(Clone)]
struct Redacted<T>(T);

impl<T: AsRef<str>> std::fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&redacted(self.0.as_ref()), f)
    }
}

/// The HTTP client, shown without its settings: its default headers may hold credentials (an
/// `Authorization` header given through [`PrometheusBuilder::with_client`]), which reqwest
/// prints unless they are marked sensitive.
#[derive(Clone)]
struct HttpClient(reqwest::Client);

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("reqwest::Client { .. }")
    }
}

/// A reqwest error with its causes, which hold the useful part (`Connection refused`).
fn describe(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        msg.push_str(": ");
        msg.push_str(&c.to_string());
        cause = c.source();
    }
    msg
}

/// A [`MetricsSource`] backed by a Prometheus server; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct PrometheusSource {
    name: String,
    query_url: Redacted<url::Url>,
    range_url: Redacted<url::Url>,
    queries: BTreeMap<Metric, Queries>,
    timeout: Duration,
    retries: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    latency_scale: f64,
    accept_warnings: bool,
    transport: Arc<dyn Transport>,
}

/// Which result types a request's answer may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    /// An instant query: a `vector` or a `scalar`, one value per series at the evaluation time.
    /// A `matrix` is the answer to a range-vector expression (`x[5m]` without a function over
    /// it): it holds every raw sample of the range, none of which is the value at the window's
    /// end, so reading one (the oldest, say) would pass off a stale sample as the measurement.
    Instant,
    /// A range query: Prometheus answers every one with a `matrix`; anything else is not
    /// Prometheus' answer to it.
    Range,
}

impl Expected {
    fn check(self, got: ResultType) -> std::result::Result<(), String> {
        match (self, got) {
            (Expected::Instant, ResultType::Vector | ResultType::Scalar)
            | (Expected::Range, ResultType::Matrix) => Ok(()),
            (Expected::Instant, _) => Err(format!(
                "an instant query gave a `{}` (a range vector of raw samples), not one value per \
                 series at the window's end; apply a function over the range in the template, \
                 e.g. `max_over_time(x[{{{{window}}}}])` or `increase(x[{{{{window}}}}])`",
                got.as_str()
            )),
            (Expected::Range, _) => Err(format!(
                "a range query gave a `{}` where Prometheus answers a `matrix`",
                got.as_str()
            )),
        }
    }
}

/// Prometheus' time parameter: seconds since the epoch with milliseconds.
fn prom_time(t: Timestamp) -> String {
    let ms = t.as_millis();
    format!("{}.{:03}", ms / 1_000, ms % 1_000)
}

/// A sample time in milliseconds (Prometheus answers float seconds with millisecond precision).
fn sample_millis(t: f64) -> Option<u64> {
    let ms = (t * 1_000.0).round();
    (ms.is_finite() && ms >= 0.0 && ms < u64::MAX as f64).then_some(ms as u64)
}

/// Why a range answer is not the one asked for, if it holds a sample at an instant that is no
/// step's end. Prometheus evaluates a range query at `start + k × step` exactly, but a query
/// frontend may move the range to multiples of the step for its cache (Thanos'
/// `--query-range.align-range-with-step`, on by default; VictoriaMetrics from 50 points): its
/// samples then measure other windows than the steps, and read at the steps' ends every step
/// would be no data.
fn off_step(
    series: &[Series],
    first: Timestamp,
    last: Timestamp,
    step: Duration,
) -> Option<String> {
    let step_ms = u64::try_from(step.as_millis()).unwrap_or(u64::MAX);
    let (first_ms, last_ms) = (first.as_millis(), last.as_millis());
    let on_step =
        |ms: u64| (first_ms..=last_ms).contains(&ms) && (ms - first_ms).is_multiple_of(step_ms);
    let (t, _) = series
        .iter()
        .flat_map(|s| &s.samples)
        .find(|(t, _)| !sample_millis(*t).is_some_and(on_step))?;
    let at = sample_millis(*t).map_or_else(
        || t.to_string(),
        |ms| Timestamp::from_millis(ms).to_string(),
    );
    Some(format!(
        "the answer holds a sample at {at}, which is no step's end (every {}ms from {first} to \
         {last}); a query frontend that aligns ranges to the step for its cache (Thanos' \
         `--query-range.align-range-with-step`, on by default) answered for other windows than \
         those asked: turn that alignment off, or ask for windows that end on a multiple of the \
         step",
        step.as_millis()
    ))
}

/// Puts each series' samples in time order (stably, so of two samples at one instant the first
/// answered still counts), for [`points_at`] to find a step's sample by binary search: a range
/// answer holds up to [`MAX_RANGE_STEPS`](crate::MAX_RANGE_STEPS) samples per series, and a
/// linear scan per step made reading a histogram's range quadratic in the steps.
fn sort_by_time(series: &mut [Series]) {
    for s in series {
        s.samples.sort_by_key(|(t, _)| sample_millis(*t));
    }
}

/// The value of each series at instant `at` (the only sample of each series when `None`); with
/// `at`, the samples must be in time order ([`sort_by_time`]).
fn points_at(series: &[Series], at: Option<u64>) -> Vec<convert::Point<'_>> {
    series
        .iter()
        .filter_map(|s| {
            let sample = match at {
                None => s.samples.first(),
                Some(t) => {
                    let i = s
                        .samples
                        .partition_point(|(st, _)| sample_millis(*st) < Some(t));
                    s.samples
                        .get(i)
                        .filter(|(st, _)| sample_millis(*st) == Some(t))
                }
            };
            sample.map(|(_, v)| (&s.labels, *v))
        })
        .collect()
}

impl PrometheusSource {
    /// A builder for a source at `base_url` (e.g. `http://127.0.0.1:9090`, or a prefix such as
    /// `https://example.net/prometheus`) with the default templates.
    pub fn builder(base_url: impl Into<String>) -> PrometheusBuilder {
        PrometheusBuilder::new(base_url.into())
    }

    /// The PromQL this source sends for `query` (one query, or requests then errors for counts).
    /// Useful for evidence and for checking templates.
    pub fn promql(&self, query: &MetricQuery) -> Result<Vec<String>> {
        // The name goes into the query as written, which is safe inside a quoted label matcher
        // only for a DNS-1123 label. `Track::Named` is a public variant, so a name that never
        // went through `Track::named` can reach here, quotes and all.
        query.validate()?;
        let len = query.window.length();
        Ok(match self.queries_for(query)? {
            Queries::Counts { requests, errors } => vec![
                requests.render(&query.track, len),
                errors.render(&query.track, len),
            ],
            Queries::Latency { buckets } => vec![buckets.render(&query.track, len)],
            Queries::Gauge { value } => vec![value.render(&query.track, len)],
        })
    }

    fn queries_for(&self, query: &MetricQuery) -> Result<&Queries> {
        self.queries
            .get(&query.metric)
            .ok_or_else(|| Error::Unsupported {
                source_name: self.name.clone(),
                what: format!(
                    "metric `{}` (no query template configured; add one to the builder)",
                    query.metric
                ),
            })
    }

    #[cfg(test)]
    fn with_transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = transport;
        self
    }

    /// Sends one request with retries, timeouts and backoff, and parses the answer, which must be
    /// of one of the `expected` result types.
    async fn fetch(
        &self,
        url: &url::Url,
        promql: &str,
        params: &[(&str, String)],
        expected: Expected,
    ) -> Result<Vec<Series>> {
        let mut retry = 0u32;
        loop {
            let outcome = tokio::time::timeout(self.timeout, self.transport.get(url, params)).await;
            let failure = match outcome {
                Err(_elapsed) => Failure::TimedOut,
                Ok(Err(failure)) => failure,
                Ok(Ok((status, body))) => {
                    match retry::classify(status, &body, self.accept_warnings) {
                        Ok(answer) => match expected.check(answer.result_type) {
                            Ok(()) => return Ok(answer.series),
                            Err(reason) => Failure::Malformed(reason),
                        },
                        Err(f) => f,
                    }
                }
            };
            if failure.is_transient() && retry < self.retries {
                tokio::time::sleep(retry::backoff(
                    retry,
                    self.initial_backoff,
                    self.max_backoff,
                ))
                .await;
                retry += 1;
                continue;
            }
            let attempts = retry + 1;
            return Err(match failure {
                Failure::TimedOut => Error::Timeout {
                    source_name: self.name.clone(),
                    query: promql.to_owned(),
                    after: self.timeout,
                    attempts,
                },
                Failure::Transient(reason) => Error::Unavailable {
                    source_name: self.name.clone(),
                    reason: format!(
                        "{reason} (after {attempts} attempt{}, query `{promql}`)",
                        if attempts == 1 { "" } else { "s" }
                    ),
                },
                Failure::BadQuery(reason) => Error::BadQuery {
                    query: promql.to_owned(),
                    reason,
                },
                Failure::Malformed(reason) => Error::BadResponse {
                    source_name: self.name.clone(),
                    query: promql.to_owned(),
                    reason,
                },
            });
        }
    }

    /// Prometheus' own `timeout` parameter, set to the per-request timeout: a query this source
    /// has given up on (to retry it, or to report a timeout) is stopped on the server too,
    /// rather than evaluated on to no one while each retry starts another copy of it.
    fn server_timeout(&self) -> String {
        format!("{}ms", self.timeout.as_millis().max(1))
    }

    async fn instant(&self, promql: &str, at: Timestamp) -> Result<Vec<Series>> {
        let params = [
            ("query", promql.to_owned()),
            ("time", prom_time(at)),
            ("timeout", self.server_timeout()),
        ];
        self.fetch(&self.query_url.0, promql, &params, Expected::Instant)
            .await
    }

    async fn range(&self, promql: &str, steps: &[Window], step: Duration) -> Result<Vec<Series>> {
        let (Some(first), Some(last)) = (steps.first(), steps.last()) else {
            return Ok(Vec::new());
        };
        let params = [
            ("query", promql.to_owned()),
            ("start", prom_time(first.end())),
            ("end", prom_time(last.end())),
            // In milliseconds, which Prometheus parses exactly: seconds as a float (`4.100`)
            // are truncated to 4099 ms there, and the samples then miss the steps' ends.
            ("step", format!("{}ms", step.as_millis())),
            ("timeout", self.server_timeout()),
        ];
        let series = self
            .fetch(&self.range_url.0, promql, &params, Expected::Range)
            .await?;
        match off_step(&series, first.end(), last.end(), step) {
            None => Ok(series),
            Some(reason) => Err(self.bad_response(promql, reason)),
        }
    }

    fn bad_response(&self, promql: &str, reason: String) -> Error {
        Error::BadResponse {
            source_name: self.name.clone(),
            query: promql.to_owned(),
            reason,
        }
    }

    /// Turns fetched series into one measurement at instant `at` (`None` for instant queries).
    fn measure(
        &self,
        queries: &Queries,
        fetched: &[(String, Vec<Series>)],
        at: Option<u64>,
    ) -> Result<Measurement> {
        let first_query = fetched.first().map(|(q, _)| q.as_str()).unwrap_or_default();
        match (queries, fetched) {
            (Queries::Counts { .. }, [(rq, requests), (eq, errors)]) => {
                convert::counts(&points_at(requests, at), &points_at(errors, at)).map_err(
                    // The error names the query whose answer was wrong: its template to fix.
                    |(side, reason)| match side {
                        convert::Side::Requests => (rq.as_str(), reason),
                        convert::Side::Errors => (eq.as_str(), reason),
                    },
                )
            }
            (Queries::Latency { .. }, [(q, buckets)]) => {
                convert::latency(&points_at(buckets, at), self.latency_scale)
                    .map_err(|reason| (q.as_str(), reason))
            }
            (Queries::Gauge { .. }, [(q, value)]) => {
                convert::gauge(&points_at(value, at)).map_err(|reason| (q.as_str(), reason))
            }
            _ => Err((
                first_query,
                "internal: query and answer shapes differ".to_owned(),
            )),
        }
        .map_err(|(query, reason)| self.bad_response(query, reason))
    }
}

#[async_trait]
impl MetricsSource for PrometheusSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn query(&self, query: &MetricQuery) -> Result<Observation> {
        // First, so that a metric built around its name check is refused as such rather than
        // as a metric without a template.
        query.validate()?;
        if query.window.length().is_zero() {
            return Err(Error::invalid(
                "query.window",
                query.window,
                "is empty; Prometheus needs a range of at least one millisecond",
            ));
        }
        let queries = self.queries_for(query)?;
        let mut fetched = Vec::with_capacity(2);
        for promql in self.promql(query)? {
            let series = self.instant(&promql, query.window.end()).await?;
            fetched.push((promql, series));
        }
        let measurement = self.measure(queries, &fetched, None)?;
        Ok(Observation::new(
            query.metric.clone(),
            query.track.clone(),
            query.window,
            measurement,
        ))
    }

    async fn query_range(&self, query: &MetricQuery, step: Duration) -> Result<Vec<Observation>> {
        query.validate()?;
        let steps = query.steps(step)?;
        let queries = self.queries_for(query)?;
        let per_step = query.with_window(Window::ending_at(query.window.end(), step));
        let mut fetched = Vec::with_capacity(2);
        for promql in self.promql(&per_step)? {
            let mut series = self.range(&promql, &steps, step).await?;
            sort_by_time(&mut series);
            fetched.push((promql, series));
        }
        steps
            .into_iter()
            .map(|window| {
                let at = Some(window.end().as_millis());
                let measurement = self.measure(queries, &fetched, at)?;
                Ok(Observation::new(
                    query.metric.clone(),
                    query.track.clone(),
                    window,
                    measurement,
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
