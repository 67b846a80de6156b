//! The source against a scripted transport: request shapes, conversions, retries in paused time.

use std::collections::VecDeque;
use std::sync::Mutex;

use super::*;
use crate::memory::lock;
use crate::observation::{Counts, Gauge};
use crate::track::Track;

/// What the fake server does for one request.
#[derive(Debug, Clone)]
enum Reply {
    Http(u16, &'static str),
    Refused,
    Hang,
}

/// One request as the fake server saw it: the path and the query parameters.
type Seen = (String, Vec<(String, String)>);

/// A transport that plays scripted replies in order and records every request.
#[derive(Debug, Default)]
struct Scripted {
    replies: Mutex<VecDeque<Reply>>,
    seen: Mutex<Vec<Seen>>,
}

impl Scripted {
    fn new(replies: impl IntoIterator<Item = Reply>) -> Arc<Self> {
        Arc::new(Scripted {
            replies: Mutex::new(replies.into_iter().collect()),
            seen: Mutex::default(),
        })
    }

    fn seen(&self) -> Vec<Seen> {
        lock(&self.seen).clone()
    }
}

#[async_trait]
impl Transport for Scripted {
    async fn get(
        &self,
        url: &url::Url,
        params: &[(&str, String)],
    ) -> std::result::Result<(u16, String), Failure> {
        lock(&self.seen).push((
            url.path().to_owned(),
            params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        ));
        let reply = lock(&self.replies).pop_front();
        match reply {
            Some(Reply::Http(status, body)) => Ok((status, body.to_owned())),
            Some(Reply::Refused) | None => Err(Failure::Transient(
                "error sending request: Connection refused".into(),
            )),
            Some(Reply::Hang) => {
                tokio::time::sleep(Duration::from_secs(3_600)).await;
                Err(Failure::Transient("hung".into()))
            }
        }
    }
}

fn source(transport: Arc<Scripted>) -> PrometheusSource {
    PrometheusSource::builder("http://prom.example:9090/sub")
        .with_timeout(Duration::from_secs(2))
        .with_retries(2)
        .with_backoff(Duration::from_millis(100), Duration::from_secs(1))
        .build()
        .unwrap()
        .with_transport(transport)
}

fn minute() -> Window {
    Window::new(
        Timestamp::from_millis(1_764_303_540_000),
        Timestamp::from_millis(1_764_303_600_500),
    )
    .unwrap()
}

const REQUESTS: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1764303600.5,"1000.4"]}]}}"#;
const ERRORS: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1764303600.5,"12"]}]}}"#;
const EMPTY: &str = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
const NAN: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1764303600.5,"NaN"]}]}}"#;
const BAD_DATA: &str = r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:8: parse error: unexpected \"]\""}"#;
const BUSY: &str = r#"{"status":"error","errorType":"unavailable","error":"too many queries"}"#;
const TWO_SERIES: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"pod":"a"},"value":[1,"1"]},{"metric":{"pod":"b"},"value":[1,"2"]}]}}"#;
const RANGE_REQUESTS: &str = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1764303570.5,"600"],[1764303600.5,"400"]]}]}}"#;
const RANGE_ERRORS: &str = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1764303600.5,"4"]]}]}}"#;

#[tokio::test(start_paused = true)]
async fn error_rate_is_two_instant_queries_at_the_window_end() {
    let t = Scripted::new([Reply::Http(200, REQUESTS), Reply::Http(200, ERRORS)]);
    let s = source(Arc::clone(&t));
    let q = MetricQuery::new(Metric::ErrorRate, Track::Canary, minute());
    let o = s.query(&q).await.unwrap();
    assert_eq!(
        o.measurement,
        Measurement::Counts(Counts::new(1_000, 12).unwrap())
    );
    assert_eq!((o.window, o.track), (minute(), Track::Canary));
    let seen = t.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].0, "/sub/api/v1/query");
    assert_eq!(
        seen[0].1,
        vec![
            (
                "query".to_owned(),
                r#"sum(increase(http_requests_total{track="canary"}[60500ms]))"#.to_owned()
            ),
            ("time".to_owned(), "1764303600.500".to_owned()),
            ("timeout".to_owned(), "2000ms".to_owned()),
        ]
    );
    assert!(seen[1].1[0].1.contains(r#"code=~"5..""#));
}

#[tokio::test(start_paused = true)]
async fn empty_and_nan_results_are_no_data_never_zero() {
    for replies in [
        vec![Reply::Http(200, EMPTY), Reply::Http(200, EMPTY)],
        vec![Reply::Http(200, NAN), Reply::Http(200, EMPTY)],
        vec![Reply::Http(200, REQUESTS), Reply::Http(200, NAN)],
    ] {
        let s = source(Scripted::new(replies));
        let o = s
            .query(&MetricQuery::new(
                Metric::ErrorRate,
                Track::Stable,
                minute(),
            ))
            .await
            .unwrap();
        assert!(o.measurement.is_no_data(), "{:?}", o.measurement);
    }
    let s = source(Scripted::new([Reply::Http(200, NAN)]));
    let o = s
        .query(&MetricQuery::new(Metric::Cpu, Track::Stable, minute()))
        .await
        .unwrap();
    assert!(o.measurement.is_no_data());
}

#[tokio::test(start_paused = true)]
async fn bad_queries_fail_at_once_naming_the_query() {
    let t = Scripted::new([Reply::Http(400, BAD_DATA), Reply::Http(200, EMPTY)]);
    let s = source(Arc::clone(&t));
    let err = s
        .query(&MetricQuery::new(Metric::Memory, Track::Blue, minute()))
        .await
        .unwrap_err();
    match &err {
        Error::BadQuery { query, reason } => {
            assert!(query.contains("container_memory_working_set_bytes") && query.contains("blue"));
            assert!(
                reason.contains("bad_data") && reason.contains("parse error"),
                "{reason}"
            );
        }
        other => panic!("expected BadQuery, got {other:?}"),
    }
    assert_eq!(t.seen().len(), 1, "4xx is never retried");
}

#[tokio::test(start_paused = true)]
async fn transient_failures_are_retried_with_backoff() {
    let t = Scripted::new([
        Reply::Refused,
        Reply::Http(503, BUSY),
        Reply::Http(200, NAN.replace("NaN", "0.5").leak()),
    ]);
    let s = source(Arc::clone(&t));
    let started = tokio::time::Instant::now();
    let o = s
        .query(&MetricQuery::new(Metric::Cpu, Track::Green, minute()))
        .await
        .unwrap();
    assert_eq!(
        o.measurement,
        Measurement::Gauge(crate::Gauge::new(0.5).unwrap())
    );
    assert_eq!(t.seen().len(), 3);
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(300),
        "100 ms then 200 ms"
    );
}

#[tokio::test(start_paused = true)]
async fn an_outage_is_unavailable_after_every_retry() {
    let t = Scripted::new([
        Reply::Refused,
        Reply::Http(429, "slow down"),
        Reply::Http(502, ""),
    ]);
    let s = source(Arc::clone(&t));
    let err = s
        .query(&MetricQuery::new(Metric::Cpu, Track::Green, minute()))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, Error::Unavailable { .. })
            && msg.contains("HTTP 502")
            && msg.contains("3 attempts"),
        "{msg}"
    );
    assert_eq!(t.seen().len(), 3);
}

const PARTIAL_ERRORS: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1764303600.5,"3"]}]},"warnings":["receive-2: store unavailable, partial response"]}"#;

/// Thanos and Cortex mark a partial answer only with warnings: its count may miss a store's
/// errors, so it is asked again and, while it stays partial, reported rather than judged.
#[tokio::test(start_paused = true)]
async fn partial_answers_are_retried_and_never_taken_as_whole() {
    let t = Scripted::new([
        Reply::Http(200, REQUESTS),
        Reply::Http(200, PARTIAL_ERRORS),
        Reply::Http(200, ERRORS),
    ]);
    let q = MetricQuery::new(Metric::ErrorRate, Track::Canary, minute());
    let o = source(Arc::clone(&t)).query(&q).await.unwrap();
    assert_eq!(
        o.measurement,
        Measurement::Counts(Counts::new(1_000, 12).unwrap())
    );
    assert_eq!(t.seen().len(), 3);

    let t = Scripted::new([
        Reply::Http(200, REQUESTS),
        Reply::Http(200, PARTIAL_ERRORS),
        Reply::Http(200, PARTIAL_ERRORS),
        Reply::Http(200, PARTIAL_ERRORS),
    ]);
    let err = source(Arc::clone(&t)).query(&q).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, Error::Unavailable { .. })
            && msg.contains("store unavailable, partial response")
            && msg.contains("acceptWarnings"),
        "{msg}"
    );

    let t = Scripted::new([Reply::Http(200, REQUESTS), Reply::Http(200, PARTIAL_ERRORS)]);
    let accepting = PrometheusSource::builder("http://prom.example:9090")
        .accept_warnings(true)
        .build()
        .unwrap()
        .with_transport(Arc::clone(&t) as Arc<dyn Transport>);
    let o = accepting.query(&q).await.unwrap();
    assert_eq!(
        o.measurement,
        Measurement::Counts(Counts::new(1_000, 3).unwrap())
    );
}

#[tokio::test(start_paused = true)]
async fn a_hanging_server_is_a_timeout() {
    let t = Scripted::new([Reply::Hang, Reply::Hang, Reply::Hang]);
    let s = source(Arc::clone(&t));
    let started = tokio::time::Instant::now();
    let err = s
        .query(&MetricQuery::new(Metric::Cpu, Track::Green, minute()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Timeout { after, attempts: 3, .. } if after == Duration::from_secs(2)),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("within 2s on the last of 3 attempts"),
        "{err}"
    );
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(3 * 2_000 + 100 + 200)
    );
}

#[tokio::test(start_paused = true)]
async fn unreadable_answers_are_bad_responses() {
    for body in ["<html>", TWO_SERIES] {
        let t = Scripted::new([Reply::Http(200, body)]);
        let s = source(Arc::clone(&t));
        let err = s
            .query(&MetricQuery::new(Metric::Cpu, Track::Green, minute()))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::BadResponse { .. }), "{err}");
        assert_eq!(t.seen().len(), 1, "not retried");
    }
}

/// An answer to the errors query that cannot be read is reported with the errors query, the
/// template to fix, and one to the requests query with the requests query.
#[tokio::test(start_paused = true)]
async fn a_bad_counts_answer_names_the_query_that_gave_it() {
    let q = MetricQuery::new(Metric::ErrorRate, Track::Canary, minute());
    for (replies, side, says) in [
        ([REQUESTS, TWO_SERIES], 1, "errors query gave 2 series"),
        ([TWO_SERIES, REQUESTS], 0, "requests query gave 2 series"),
    ] {
        let t = Scripted::new(replies.map(|body| Reply::Http(200, body)));
        let s = source(Arc::clone(&t));
        let err = s.query(&q).await.unwrap_err();
        let promql = s.promql(&q).unwrap()[side].clone();
        assert!(
            matches!(&err, Error::BadResponse { query, reason, .. }
                if *query == promql && reason.contains(says)),
            "{err}"
        );
    }
}

/// A template without a function over its range (`x[5m]`) makes Prometheus answer an instant
/// query with every raw sample of the range: none is the value at the window's end, so the
/// answer is refused rather than read from its oldest sample.
#[tokio::test(start_paused = true)]
async fn a_range_vector_is_no_instant_measurement() {
    const RAW: &str = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1764303540.5,"7"],[1764303570.5,"8"],[1764303600.5,"9"]]}]}}"#;
    let t = Scripted::new([Reply::Http(200, RAW)]);
    let s = source(Arc::clone(&t));
    let err = s
        .query(&MetricQuery::new(Metric::Cpu, Track::Green, minute()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::BadResponse { reason, .. } if reason.contains("`matrix`")),
        "{err}"
    );
    assert_eq!(t.seen().len(), 1, "not retried");
    // A range query is answered with a matrix, and only with one.
    let t = Scripted::new([Reply::Http(200, REQUESTS), Reply::Http(200, ERRORS)]);
    let s = source(Arc::clone(&t));
    let q = MetricQuery::new(Metric::ErrorRate, Track::Canary, minute());
    let err = s
        .query_range(&q, Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BadResponse { .. }), "{err}");
}

#[tokio::test(start_paused = true)]
async fn range_queries_evaluate_each_step_end() {
    let t = Scripted::new([
        Reply::Http(200, RANGE_REQUESTS),
        Reply::Http(200, RANGE_ERRORS),
    ]);
    let s = source(Arc::clone(&t));
    let q = MetricQuery::new(Metric::ErrorRate, Track::Canary, minute());
    let got = s.query_range(&q, Duration::from_secs(30)).await.unwrap();
    let seen = t.seen();
    assert_eq!(seen[0].0, "/sub/api/v1/query_range");
    let params: BTreeMap<_, _> = seen[0].1.iter().cloned().collect();
    assert_eq!(params["start"], "1764303570.500");
    assert_eq!(params["end"], "1764303600.500");
    assert_eq!(params["step"], "30000ms");
    // The server gives up when the source does, and does not evaluate on for no one.
    assert_eq!(params["timeout"], "2000ms");
    assert!(params["query"].contains("[30000ms]"));
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0].window.end(),
        Timestamp::from_millis(1_764_303_570_500)
    );
    assert_eq!(got[1].window.end(), minute().end());
    assert_eq!(
        got[0].measurement,
        Measurement::Counts(Counts::new(600, 0).unwrap())
    );
    assert_eq!(
        got[1].measurement,
        Measurement::Counts(Counts::new(400, 4).unwrap())
    );
}

#[tokio::test(start_paused = true)]
async fn range_answers_are_read_at_each_step_end_in_any_order() {
    // Samples out of time order, one instant answered twice (the first counts, as Prometheus
    // never does this) and one step missing: each step reads its own instant.
    const REQUESTS: &str = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1764303600.5,"400"],[1764303540.5,"100"],[1764303600.5,"999"],[1764303570.5,"600"]]}]}}"#;
    const ERRORS: &str = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1764303600.5,"4"],[1764303570.5,"NaN"]]}]}}"#;
    let t = Scripted::new([Reply::Http(200, REQUESTS), Reply::Http(200, ERRORS)]);
    let s = source(Arc::clone(&t));
    let two_steps = Window::new(
        minute().end().saturating_sub(Duration::from_secs(90)),
        minute().end(),
    )
    .unwrap();
    let q = MetricQuery::new(Metric::ErrorRate, Track::Canary, two_steps);
    let got = s.query_range(&q, Duration::from_secs(30)).await.unwrap();
    let measurements: Vec<_> = got.into_iter().map(|o| o.measurement).collect();
    assert_eq!(
        measurements,
        vec![
            Measurement::Counts(Counts::new(100, 0).unwrap()),
            Measurement::NoData,
            Measurement::Counts(Counts::new(400, 4).unwrap()),
        ]
    );
}

/// A query frontend that aligns a range to multiples of its step, for its cache (Thanos'
/// `--query-range.align-range-with-step`, on by default; VictoriaMetrics from 50 points), answers
/// at instants other than the steps' ends: read at the steps' ends, every step would be no data,
/// and the answer holds counts over other windows than those asked.
#[tokio::test(start_paused = true)]
async fn range_answers_at_other_instants_than_the_step_ends_are_refused() {
    const ALIGNED: &str = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1764303570,"600"],[1764303600,"400"]]}]}}"#;
    let t = Scripted::new([Reply::Http(200, ALIGNED), Reply::Http(200, ALIGNED)]);
    let s = source(Arc::clone(&t));
    let q = MetricQuery::new(Metric::ErrorRate, Track::Canary, minute());
    let err = s
        .query_range(&q, Duration::from_secs(30))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, Error::BadResponse { .. })
            && msg.contains("2025-11-28T04:19:30.000Z")
            && msg.contains("step")
            && msg.contains("align"),
        "{msg}"
    );
    assert_eq!(
        t.seen().len(),
        1,
        "not retried, and the errors query not asked"
    );
}

/// The request heads a loopback server received, as text.
type Heads = Arc<Mutex<Vec<String>>>;

/// A loopback HTTP server that answers every connection with `response`, counts them and keeps
/// their request heads.
async fn serve(response: Vec<u8>) -> (String, Arc<std::sync::atomic::AtomicUsize>, Heads) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&connections);
    let heads = Heads::default();
    let kept = Arc::clone(&heads);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let (response, kept) = (response.clone(), Arc::clone(&kept));
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                lock(&kept).push(String::from_utf8_lossy(&request).into_owned());
                let _ = stream.write_all(&response).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (url, connections, heads)
}

/// [`serve`] answering every request with an empty vector (no data).
async fn serve_empty_vector() -> (String, Arc<std::sync::atomic::AtomicUsize>, Heads) {
    let body = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
    serve(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
    .await
}

/// The source `config` builds, and the debug output of the config, its builder and the source
/// (which must hide its credentials).
fn shown_forms(config: &PrometheusConfig) -> (PrometheusSource, [String; 3]) {
    let builder = config.clone().into_builder().unwrap();
    let source = PrometheusSource::from_config(config.clone()).unwrap();
    let shown = [
        format!("{config:?}"),
        format!("{builder:?}"),
        format!("{source:?}"),
    ];
    (source, shown)
}

/// A source reading answers of at most `limit` bytes from `url`.
fn limited_source(url: &str, limit: usize) -> PrometheusSource {
    PrometheusSource::builder(url)
        .with_retries(2)
        .build()
        .unwrap()
        .with_transport(Arc::new(ReqwestTransport {
            client: HttpClient(reqwest::Client::new()),
            bearer_token_file: None,
            max_answer_bytes: limit,
        }))
}

#[tokio::test]
async fn answers_beyond_the_size_limit_are_refused_without_retrying() {
    use std::sync::atomic::Ordering;
    let body = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1764303600.5,"7"]}]}}"#;
    let declared = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    // Without a declared length, in chunks: the limit is met while reading.
    let mut chunked =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for part in body.as_bytes().chunks(40) {
        chunked.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        chunked.extend_from_slice(part);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    for response in [declared.into_bytes(), chunked] {
        let (url, connections, _) = serve(response).await;
        let q = MetricQuery::new(Metric::Cpu, Track::Canary, minute());
        let read = limited_source(&url, body.len()).query(&q).await.unwrap();
        assert_eq!(
            read.measurement,
            Measurement::Gauge(Gauge::new(7.0).unwrap())
        );
        let err = limited_source(&url, body.len() - 1)
            .query(&q)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::BadResponse { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&format!("larger than {} bytes", body.len() - 1)),
            "{text}"
        );
        assert_eq!(
            connections.load(Ordering::SeqCst),
            2,
            "one each, not retried"
        );
    }
}

/// A base URL may carry basic auth (`https://user:password@host`, the way a config file gives
/// it): the password goes to the server in the `Authorization` header and nowhere else, neither
/// into errors nor into the debug output of the config, the builder or the source; nor does a
/// header given through the client.
#[tokio::test]
async fn credentials_are_sent_but_never_shown() {
    for url in [
        "https://admin:s3cret@prom.example/?org=1",
        "ftp://admin:s3cret@prom.example",
        "http://admin:s3cret@prom.example:99999",
        // A `/` in the password, not percent-encoded, does not end the userinfo.
        "http://admin:s3cret/x@prom.example:99999",
    ] {
        let err = PrometheusSource::builder(url)
            .build()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("baseUrl")
                && err.contains("admin:***@prom.example")
                && !err.contains("s3cret"),
            "{err}"
        );
    }
    let config = PrometheusConfig::new("http://admin:s3cret@127.0.0.1:1/prometheus");
    for shown in shown_forms(&config).1 {
        assert!(
            shown.contains("admin:***@127.0.0.1:1/prometheus") && !shown.contains("s3cret"),
            "{shown}"
        );
    }
    // A header given through the client, even one not marked sensitive, is not shown either.
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_static("Bearer t0ken"),
    );
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();
    let builder = PrometheusSource::builder("http://127.0.0.1:1").with_client(client);
    let source = builder.clone().build().unwrap();
    for shown in [format!("{builder:?}"), format!("{source:?}")] {
        assert!(!shown.contains("t0ken"), "{shown}");
    }
    // Nothing listens on port 1: the error names the request, without the password.
    let q = MetricQuery::new(Metric::Cpu, Track::Canary, minute());
    let unreachable = PrometheusSource::builder("http://admin:s3cret@127.0.0.1:1")
        .with_retries(0)
        .build()
        .unwrap();
    let err = unreachable.query(&q).await.unwrap_err().to_string();
    assert!(
        err.contains("127.0.0.1:1") && !err.contains("s3cret"),
        "{err}"
    );
    // And a server that answers is sent the credentials.
    let (url, _, heads) = serve_empty_vector().await;
    let with_auth = url.replacen("http://", "http://admin:s3cret@", 1);
    let read = PrometheusSource::builder(with_auth)
        .build()
        .unwrap()
        .query(&q)
        .await
        .unwrap();
    assert_eq!(read.measurement, Measurement::NoData);
    let heads = lock(&heads).clone();
    assert!(
        heads.len() == 1
            && heads[0]
                .to_ascii_lowercase()
                .contains("authorization: basic ywrtaw46cznjcmv0"),
        "{heads:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn latency_comes_from_histogram_buckets() {
    const BUCKETS: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"le":"0.1"},"value":[1,"90"]},{"metric":{"le":"0.5"},"value":[1,"99"]},{"metric":{"le":"+Inf"},"value":[1,"100"]}]}}"#;
    let s = source(Scripted::new([Reply::Http(200, BUCKETS)]));
    let o = s
        .query(&MetricQuery::new(Metric::Latency, Track::Canary, minute()))
        .await
        .unwrap();
    let Measurement::Latency(sketch) = o.measurement else {
        panic!("expected a sketch, got {:?}", o.measurement)
    };
    assert_eq!(sketch.count(), 100);
    let p50 = sketch.quantile(0.5).unwrap();
    assert!((p50 - 100.0).abs() <= 1.0, "{p50}");
}

/// Prometheus 3 writes `le` as a float (`le="1"` became `le="1.0"`), so a window spanning an
/// upgrade, or a `sum by (le)` over servers of both versions, gives two series for one bound.
#[tokio::test(start_paused = true)]
async fn latency_merges_one_bound_written_two_ways() {
    const TWO_SPELLINGS: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"le":"0.5"},"value":[1,"40"]},{"metric":{"le":"1"},"value":[1,"60"]},{"metric":{"le":"1.0"},"value":[1,"30"]},{"metric":{"le":"+Inf"},"value":[1,"100"]}]}}"#;
    const ONE_SPELLING: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"le":"0.5"},"value":[1,"40"]},{"metric":{"le":"1.0"},"value":[1,"90"]},{"metric":{"le":"+Inf"},"value":[1,"100"]}]}}"#;
    let s = source(Scripted::new([
        Reply::Http(200, TWO_SPELLINGS),
        Reply::Http(200, ONE_SPELLING),
    ]));
    let q = MetricQuery::new(Metric::Latency, Track::Canary, minute());
    let merged = s.query(&q).await.unwrap().measurement;
    let single = s.query(&q).await.unwrap().measurement;
    let Measurement::Latency(sketch) = &merged else {
        panic!("expected a sketch, got {merged:?}")
    };
    assert_eq!(sketch.count(), 100);
    let p75 = sketch.quantile(0.75).unwrap();
    assert!((p75 - 1_000.0).abs() <= 1_000.0 * 0.011, "{p75}");
    assert_eq!(merged, single);
}

#[test]
fn build_checks_every_setting() {
    let cases: Vec<(PrometheusBuilder, &str)> = vec![
        (PrometheusSource::builder("not a url"), "baseUrl"),
        (PrometheusSource::builder("ftp://x"), "http://"),
        (PrometheusSource::builder("http://x/?a=b"), "query string"),
        (
            PrometheusSource::builder("http://x").with_timeout(Duration::ZERO),
            "timeout",
        ),
        (
            PrometheusSource::builder("http://x")
                .with_backoff(Duration::from_secs(2), Duration::from_secs(1)),
            "backoff",
        ),
        (
            PrometheusSource::builder("http://x").with_retries(MAX_RETRIES + 1),
            "invalid retries `11`: must be at most 10",
        ),
        (
            PrometheusSource::builder("http://x")
                .with_retries(1)
                .with_backoff(Duration::ZERO, Duration::from_secs(1)),
            "invalid initialBackoff `0s`",
        ),
        (
            PrometheusSource::builder("http://x")
                .with_backoff(Duration::from_secs(1), MAX_BACKOFF + Duration::from_secs(1)),
            "invalid maxBackoff `61s`: must be at most 1m",
        ),
        (
            PrometheusSource::builder("http://x").with_latency_scale(f64::NAN),
            "latencyScale",
        ),
        (
            PrometheusSource::builder("http://x").with_counts_queries(
                Metric::ErrorRate,
                r#"sum(increase(r{track="{{track}}"}[{{window}}]))"#,
                "",
            ),
            "`error_rate.errors`",
        ),
        (
            PrometheusSource::builder("http://x")
                .with_latency_query(r#"sum by (le) (x{track="{{track}}"})"#),
            "`latency.buckets`",
        ),
    ];
    for (builder, want) in cases {
        let msg = builder.build().unwrap_err().to_string();
        assert!(msg.contains(want), "{want}: {msg}");
    }
    // The limits themselves, and no backoff when nothing is retried, are fine.
    for builder in [
        PrometheusSource::builder("http://x").with_retries(MAX_RETRIES),
        PrometheusSource::builder("http://x").with_backoff(MAX_BACKOFF, MAX_BACKOFF),
        PrometheusSource::builder("http://x")
            .with_retries(0)
            .with_backoff(Duration::ZERO, Duration::ZERO),
    ] {
        builder.build().unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn sub_millisecond_steps_are_refused_before_asking() {
    let t = Scripted::new([]);
    let s = source(Arc::clone(&t));
    let q = MetricQuery::new(Metric::ErrorRate, Track::Canary, minute());
    let err = s
        .query_range(&q, Duration::new(1, 600_000))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("whole number of milliseconds"),
        "{err}"
    );
    assert!(t.seen().is_empty());
}

#[tokio::test(start_paused = true)]
async fn unconfigured_metrics_and_empty_windows_are_errors() {
    let t = Scripted::new([]);
    let s = source(Arc::clone(&t)).clone();
    let custom = Metric::named("queue_depth").unwrap();
    let err = s
        .query(&MetricQuery::new(custom, Track::Canary, minute()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }) && err.to_string().contains("queue_depth"));
    let s = PrometheusSource::builder("http://x")
        .without_metric(&Metric::Cpu)
        .build()
        .unwrap();
    assert!(
        s.promql(&MetricQuery::new(Metric::Cpu, Track::Canary, minute()))
            .is_err()
    );
    let empty = Window::new(minute().end(), minute().end()).unwrap();
    let err = s
        .query(&MetricQuery::new(Metric::Memory, Track::Canary, empty))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("query.window"), "{err}");
    assert!(t.seen().is_empty());
}

proptest::proptest! {
    #[test]
    fn template_parser_never_panics(s in ".*") {
        let _ = Template::parse("custom", &s, true);
    }

    #[test]
    fn template_parser_never_panics_on_brace_soup(s in "[{}()\\[\\]\"a-z ]{0,40}") {
        if let Ok(t) = Template::parse("custom", &s, false) {
            // Whatever parsed renders with the track in it.
            proptest::prop_assert!(t.render(&Track::Canary, Duration::from_secs(1)).contains("canary"));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_track_built_around_its_checks_is_refused_not_spliced_into_promql() {
    let t = Scripted::new([]);
    let s = source(Arc::clone(&t));
    for track in [
        Track::Named(r#"a"} or vector(1e9) #"#.to_owned()),
        Track::Named("stable".to_owned()),
    ] {
        let q = MetricQuery::new(Metric::ErrorRate, track, minute());
        let err = s.promql(&q).expect_err("refused");
        assert!(err.to_string().contains("query.track"), "{err}");
        assert!(s.query(&q).await.is_err());
    }
    assert!(t.seen().is_empty(), "nothing was sent");
    let q = MetricQuery::new(
        Metric::ErrorRate,
        Track::named("shadow-1").unwrap(),
        minute(),
    );
    assert!(s.promql(&q).unwrap()[0].contains(r#"track="shadow-1""#));
}

/// A custom metric built around `Metric::named` is refused when the source is built, as a
/// query for it would be: no query could name it.
#[test]
fn a_custom_metric_built_around_its_checks_is_refused_at_build() {
    for name in ["queue depth", "cpu"] {
        let err = PrometheusSource::builder("http://prom.example:9090")
            .with_gauge_query(Metric::Custom(name.into()), r#"max(q{track="{{track}}"})"#)
            .build()
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("queries") && msg.contains(name), "{msg}");
    }
}

/// A metric built around its name check is refused as invalid, by both calls, before anything
/// is sent: not reported as a metric that lacks a template.
#[tokio::test(start_paused = true)]
async fn invalid_queries_are_refused_before_anything_is_sent() {
    let t = Scripted::new([]);
    let s = source(Arc::clone(&t));
    let fixture = crate::testkit::InMemoryFixture::new();
    crate::testkit::check_invalid_queries_refused(&s, &fixture).await;
    assert!(t.seen().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn a_bearer_token_is_read_from_its_file_before_every_request() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "t0ken-one\n").unwrap();
    let (url, _, heads) = serve_empty_vector().await;
    let mut config = PrometheusConfig::new(url.clone());
    config.bearer_token_file = Some(path.clone());
    config.retries = Some(0);
    let (source, shown) = shown_forms(&config);
    for shown in shown {
        assert!(!shown.contains("t0ken"), "{shown}");
    }
    let q = MetricQuery::new(Metric::Cpu, Track::Canary, minute());
    source.query(&q).await.unwrap();
    // Rotated in place, as the kubelet does: the next request sends the new token.
    std::fs::write(&path, "t0ken-two").unwrap();
    source.query(&q).await.unwrap();
    let sent: Vec<String> = lock(&heads)
        .iter()
        .map(|h| {
            h.lines()
                .find(|l| l.to_ascii_lowercase().starts_with("authorization:"))
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(
        sent,
        [
            "authorization: Bearer t0ken-one",
            "authorization: Bearer t0ken-two"
        ]
    );
    // Gone mid-run: the source is unavailable, named by the file, and the token is not shown.
    std::fs::remove_file(&path).unwrap();
    let err = source.query(&q).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    let shown = err.to_string();
    assert!(
        shown.contains("bearerTokenFile") && shown.contains(&path.display().to_string()),
        "{shown}"
    );
    assert_eq!(lock(&heads).len(), 2, "no request without its token");

    // What the build refuses, naming the setting: a file that is missing, empty or not a
    // header value, and a token beside the base URL's own credentials.
    let refused = |base: &str, contents: Option<&str>| {
        let file = dir.path().join("refused");
        let _ = std::fs::remove_file(&file);
        if let Some(c) = contents {
            std::fs::write(&file, c).unwrap();
        }
        PrometheusSource::builder(base)
            .with_bearer_token_file(&file)
            .build()
            .unwrap_err()
            .to_string()
    };
    for (base, contents, why) in [
        (url.as_str(), None, "cannot be read"),
        (url.as_str(), Some(" \n"), "is empty"),
        (url.as_str(), Some("t0k\nen"), "a header cannot carry"),
        (
            "http://admin:s3cret@127.0.0.1:1",
            Some("t0ken"),
            "one Authorization header",
        ),
    ] {
        let err = refused(base, contents);
        assert!(
            err.contains("bearerTokenFile") && err.contains(why) && !err.contains("s3cret"),
            "{err}"
        );
    }
    let huge = "x".repeat(MAX_TOKEN_BYTES as usize + 1);
    assert!(refused(&url, Some(&huge)).contains("larger than"));
}

#[test]
fn a_password_is_hidden_wherever_its_url_puts_the_userinfo() {
    for (url, shown) in [
        // A `?` in the password of a URL that does not parse (the port is too large).
        (
            "https://admin:pa?ss@prom.example:99999",
            "https://admin:***@prom.example:99999",
        ),
        // A `#` and a `/` likewise.
        (
            "http://admin:pa#s/s@prom.example:99999/x",
            "http://admin:***@prom.example:99999/x",
        ),
        // A URL that parses is cut where the client cuts it.
        (
            "http://admin:pass@prom.example:9090/api",
            "http://admin:***@prom.example:9090/api",
        ),
        // An `@` in the path of a URL without credentials is not a password.
        (
            "http://prom.example:9090/a@b",
            "http://prom.example:9090/a@b",
        ),
        ("http://user@prom.example", "http://user@prom.example"),
        ("not a url", "not a url"),
    ] {
        assert_eq!(redacted(url), shown, "{url}");
    }
}
