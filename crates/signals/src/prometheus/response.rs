//! Reading Prometheus' HTTP API answers (`/api/v1/query`, `/api/v1/query_range`).
//!
//! The envelope is `{"status":"success","data":{"resultType":...,"result":...}}` or
//! `{"status":"error","errorType":...,"error":...}`. Sample values are strings because they may be
//! `NaN`, `+Inf` or `-Inf`; such values are carried as `None` (no data), never as zero.
//!
//! A successful answer may carry `warnings`. Thanos and Cortex report a partial answer (a store
//! or ingester that did not answer) only that way, and VictoriaMetrics sets `isPartial`; Prometheus
//! itself warns when it dropped samples (histograms mixed with floats). The caller decides what a
//! warned answer is worth. Prometheus' `PromQL info:` annotations (a counter's name without
//! `_total`) say nothing about the data and are not kept.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

/// What went wrong with an answer, before it is turned into the crate's error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ResponseError {
    /// Prometheus said `status: error` (bad query, failed execution, timeout, ...).
    Api {
        /// `bad_data`, `execution`, `timeout`, `canceled`, `internal`, `unavailable`, ...
        error_type: String,
        /// Prometheus' message.
        error: String,
    },
    /// The body is not a Prometheus answer.
    Malformed(String),
}

/// One series of a result: its labels and its samples, oldest first. A sample value is `None`
/// when Prometheus reported NaN or an infinity.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Series {
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) samples: Vec<(f64, Option<f64>)>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    status: String,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
    /// `null` (how Go encodes an empty list, and what some proxies send) is no warnings.
    #[serde(default)]
    warnings: Option<Vec<String>>,
    /// `null` is not partial, as an absent flag is not.
    #[serde(default, rename = "isPartial")]
    is_partial: Option<bool>,
}

/// The `resultType` of an answer that can be a measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum ResultType {
    /// An instant vector: one sample per series, at the evaluation time.
    #[default]
    Vector,
    /// A range vector (an instant query of `x[5m]`) or a range query's answer: many samples
    /// per series.
    Matrix,
    /// A single number, without labels.
    Scalar,
}

impl ResultType {
    /// The name Prometheus gives it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ResultType::Vector => "vector",
            ResultType::Matrix => "matrix",
            ResultType::Scalar => "scalar",
        }
    }
}

/// A successful answer: its result type, its series, and the warnings that say it may be
/// partial.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Answer {
    pub(crate) result_type: ResultType,
    pub(crate) series: Vec<Series>,
    pub(crate) warnings: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data<'a> {
    result_type: String,
    #[serde(borrow)]
    result: &'a RawValue,
}

/// A series' float sample, or a native histogram's (`histogram`), which is not read.
#[derive(Deserialize)]
struct VectorSample {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    value: Option<(f64, String)>,
    #[serde(default)]
    histogram: Option<IgnoredAny>,
}

/// A series' float samples, and its native histogram ones (`histograms`), which are not read.
#[derive(Deserialize)]
struct MatrixSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Option<Vec<(f64, String)>>,
    #[serde(default)]
    histograms: Option<IgnoredAny>,
}

/// Why a native histogram sample cannot be a measurement, and what to ask for instead.
const NATIVE_HISTOGRAM: &str = "a series holds native histogram samples, which are not read: \
    for latency, query a classic histogram's `_bucket` series by `le` \
    (`sum by (le) (increase(x_bucket[{{window}}]))`); otherwise turn the histogram into floats \
    with `histogram_count()`, `histogram_sum()` or `histogram_quantile()`";

/// The float samples of a series, refused when it holds native histogram samples (dropping
/// those would pass part of the series off as all of it) or neither.
fn floats<T>(
    samples: Option<T>,
    histograms: Option<IgnoredAny>,
    field: &str,
) -> Result<T, ResponseError> {
    match (samples, histograms) {
        (_, Some(_)) => Err(ResponseError::Malformed(NATIVE_HISTOGRAM.to_owned())),
        (Some(samples), None) => Ok(samples),
        (None, None) => Err(ResponseError::Malformed(format!(
            "a series has no `{field}`"
        ))),
    }
}

/// Parses a Prometheus sample value: finite numbers are `Some`, NaN and infinities `None`.
fn value(raw: &str) -> Result<Option<f64>, ResponseError> {
    let v: f64 = raw
        .parse()
        .map_err(|_| ResponseError::Malformed(format!("sample value `{raw}` is not a number")))?;
    Ok(v.is_finite().then_some(v))
}

/// Parses a body into its series and warnings. A `vector` or `scalar` gives one sample per
/// series, a `matrix` many; an empty result is an empty list (no data).
pub(crate) fn parse(body: &str) -> Result<Answer, ResponseError> {
    let envelope: Envelope = serde_json::from_str(body)
        .map_err(|e| ResponseError::Malformed(format!("not a Prometheus API answer ({e})")))?;
    if envelope.status != "success" {
        return Err(ResponseError::Api {
            error_type: envelope.error_type.unwrap_or_else(|| "unknown".into()),
            error: envelope
                .error
                .unwrap_or_else(|| format!("status `{}` without a message", envelope.status)),
        });
    }
    let mut warnings: Vec<String> = envelope
        .warnings
        .unwrap_or_default()
        .into_iter()
        .filter(|w| !w.starts_with("PromQL info:"))
        .collect();
    if envelope.is_partial == Some(true) && warnings.is_empty() {
        warnings.push("the answer is marked partial (`isPartial`)".into());
    }
    let (result_type, series) = series(envelope.data)?;
    Ok(Answer {
        result_type,
        series,
        warnings,
    })
}

fn series(data: Option<&RawValue>) -> Result<(ResultType, Vec<Series>), ResponseError> {
    let data = data.ok_or_else(|| ResponseError::Malformed("`data` is missing".into()))?;
    let data: Data<'_> = serde_json::from_str(data.get())
        .map_err(|e| ResponseError::Malformed(format!("`data` is not a query result ({e})")))?;
    let bad = |e: serde_json::Error| {
        ResponseError::Malformed(format!("`{}` result is malformed ({e})", data.result_type))
    };
    match data.result_type.as_str() {
        "vector" => {
            let samples: Vec<VectorSample> =
                serde_json::from_str(data.result.get()).map_err(bad)?;
            let series = samples
                .into_iter()
                .map(|s| {
                    let (t, v) = floats(s.value, s.histogram, "value")?;
                    Ok(Series {
                        labels: s.metric,
                        samples: vec![(t, value(&v)?)],
                    })
                })
                .collect::<Result<_, ResponseError>>()?;
            Ok((ResultType::Vector, series))
        }
        "matrix" => {
            let series: Vec<MatrixSeries> = serde_json::from_str(data.result.get()).map_err(bad)?;
            let series = series
                .into_iter()
                .map(|s| {
                    let samples = floats(s.values, s.histograms, "values")?
                        .iter()
                        .map(|(t, v)| Ok((*t, value(v)?)))
                        .collect::<Result<Vec<_>, ResponseError>>()?;
                    Ok(Series {
                        labels: s.metric,
                        samples,
                    })
                })
                .collect::<Result<_, ResponseError>>()?;
            Ok((ResultType::Matrix, series))
        }
        "scalar" => {
            let (t, v): (f64, String) = serde_json::from_str(data.result.get()).map_err(bad)?;
            let series = vec![Series {
                labels: BTreeMap::new(),
                samples: vec![(t, value(&v)?)],
            }];
            Ok((ResultType::Scalar, series))
        }
        other => Err(ResponseError::Malformed(format!(
            "result type `{other}` cannot be a measurement; the query must give a vector, matrix or scalar"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Bodies recorded from Prometheus 2.42 (`/api/v1/query` and `/api/v1/query_range`), except
    // VECTOR_LE, which has the shape of a `sum by (le)` answer.
    const VECTOR: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1795840314.250,"60"]}]}}"#;
    const VECTOR_LABELS: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"instance":"127.0.0.1:19464","job":"serin-test-exporter"},"value":[1795840314.250,"30"]}]}}"#;
    const VECTOR_LE: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"le":"0.05"},"value":[1764303600,"40"]},{"metric":{"le":"+Inf"},"value":[1764303600,"100"]},{"metric":{"le":"0.01"},"value":[1764303600,"50"]}]}}"#;
    const MATRIX: &str = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1795840294.250,"10"],[1795840304.250,"10"],[1795840314.250,"10"]]}]}}"#;
    const MATRIX_EMPTY: &str = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
    const EMPTY: &str = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
    const NAN: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1795840314.250,"NaN"]}]}}"#;
    const SCALAR: &str =
        r#"{"status":"success","data":{"resultType":"scalar","result":[1795840200.5,"3"]}}"#;
    const SCALAR_NAN: &str =
        r#"{"status":"success","data":{"resultType":"scalar","result":[1795840200.5,"NaN"]}}"#;
    const ERROR: &str = r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:16: parse error: unclosed left parenthesis"}"#;
    const INFO: &str = r#"{"status":"success","data":{"resultType":"vector","result":[]},"warnings":["PromQL info: metric might not be a counter"]}"#;
    const PARTIAL: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1795840314.250,"60"]}]},"warnings":["No StoreAPIs matched for this query","receive-1 did not answer"]}"#;
    const VM_PARTIAL: &str =
        r#"{"status":"success","isPartial":true,"data":{"resultType":"vector","result":[]}}"#;

    #[test]
    fn vectors_matrices_and_scalars_parse() {
        let v = parse(VECTOR).unwrap();
        assert_eq!(v.result_type, ResultType::Vector);
        let v = v.series;
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].samples, vec![(1795840314.25, Some(60.0))]);
        let labelled = parse(VECTOR_LABELS).unwrap().series;
        assert_eq!(
            labelled[0].labels.get("job").map(String::as_str),
            Some("serin-test-exporter")
        );
        let le = parse(VECTOR_LE).unwrap().series;
        assert_eq!(le[1].labels.get("le").map(String::as_str), Some("+Inf"));
        assert_eq!(parse(MATRIX).unwrap().result_type, ResultType::Matrix);
        assert_eq!(parse(SCALAR).unwrap().result_type, ResultType::Scalar);
        let m = parse(MATRIX).unwrap().series;
        let times: Vec<f64> = m[0].samples.iter().map(|(t, _)| *t).collect();
        assert_eq!(times, vec![1795840294.25, 1795840304.25, 1795840314.25]);
        assert!(m[0].samples.iter().all(|(_, v)| *v == Some(10.0)));
        assert_eq!(
            parse(SCALAR).unwrap().series[0].samples,
            vec![(1795840200.5, Some(3.0))]
        );
    }

    #[test]
    fn empty_results_nan_and_infinities_are_no_data() {
        assert!(parse(EMPTY).unwrap().series.is_empty());
        assert!(parse(MATRIX_EMPTY).unwrap().series.is_empty());
        assert_eq!(
            parse(NAN).unwrap().series[0].samples,
            vec![(1795840314.25, None)]
        );
        assert_eq!(
            parse(SCALAR_NAN).unwrap().series[0].samples,
            vec![(1795840200.5, None)]
        );
        let inf = NAN.replace("NaN", "+Inf");
        assert_eq!(parse(&inf).unwrap().series[0].samples[0].1, None);
    }

    #[test]
    fn warnings_are_kept_but_infos_are_not() {
        let info = parse(INFO).unwrap();
        assert!(
            info.series.is_empty() && info.warnings.is_empty(),
            "{info:?}"
        );
        let partial = parse(PARTIAL).unwrap();
        assert_eq!(partial.series[0].samples, vec![(1795840314.25, Some(60.0))]);
        assert_eq!(
            partial.warnings,
            [
                "No StoreAPIs matched for this query",
                "receive-1 did not answer"
            ]
        );
        let vm = parse(VM_PARTIAL).unwrap();
        assert!(vm.warnings[0].contains("isPartial"), "{vm:?}");
    }

    /// Go servers and proxies encode an empty list as `null`: that is no warnings, not a
    /// malformed answer, and a `null` `isPartial` is not a partial one.
    #[test]
    fn null_warnings_infos_and_partial_flag_read_as_none() {
        for body in [
            r#"{"status":"success","data":{"resultType":"vector","result":[]},"warnings":null}"#,
            r#"{"status":"success","data":{"resultType":"vector","result":[]},"infos":null}"#,
            r#"{"status":"success","data":{"resultType":"vector","result":[]},"warnings":null,"infos":null,"isPartial":null}"#,
        ] {
            let answer = parse(body).unwrap_or_else(|e| panic!("{body}: {e:?}"));
            assert!(answer.warnings.is_empty(), "{body}: {answer:?}");
        }
    }

    #[test]
    fn errors_keep_prometheus_type_and_message() {
        match parse(ERROR) {
            Err(ResponseError::Api { error_type, error }) => {
                assert_eq!(error_type, "bad_data");
                assert!(error.contains("unclosed left parenthesis"), "{error}");
            }
            other => panic!("expected an API error, got {other:?}"),
        }
    }

    #[test]
    fn garbage_is_malformed() {
        for body in [
            "",
            "<html>502 Bad Gateway</html>",
            r#"{"status":"success"}"#,
            r#"{"status":"success","data":{"resultType":"string","result":[1,"x"]}}"#,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"abc"]}]}}"#,
            r#"{"status":"success","data":{"resultType":"matrix","result":{}}}"#,
        ] {
            assert!(
                matches!(parse(body), Err(ResponseError::Malformed(_))),
                "{body}"
            );
        }
    }

    /// A native histogram's samples (`histogram`, `histograms`) are not floats; the answer says
    /// so and what to ask instead, rather than that a `value` is missing.
    #[test]
    fn native_histograms_are_named_with_what_to_query_instead() {
        let h = r#"{"count":"10","sum":"1.5","buckets":[[0,"0.1","0.2","10"]]}"#;
        for body in [
            format!(
                r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"histogram":[1795840314.25,{h}]}}]}}}}"#
            ),
            format!(
                r#"{{"status":"success","data":{{"resultType":"matrix","result":[{{"metric":{{}},"histograms":[[1795840314.25,{h}]]}}]}}}}"#
            ),
            format!(
                r#"{{"status":"success","data":{{"resultType":"matrix","result":[{{"metric":{{}},"values":[[1795840304.25,"1"]],"histograms":[[1795840314.25,{h}]]}}]}}}}"#
            ),
        ] {
            match parse(&body) {
                Err(ResponseError::Malformed(reason)) => assert!(
                    reason.contains("native histogram")
                        && reason.contains("_bucket")
                        && reason.contains("histogram_count"),
                    "{body}: {reason}"
                ),
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(body in ".*") {
            let _ = parse(&body);
        }

        #[test]
        fn parse_never_panics_on_near_misses(
            rt in "(vector|matrix|scalar|string|x)",
            v in "(\"[0-9.eE+-]*\"|\"NaN\"|\"[+-]Inf\"|[0-9]+|null)",
            t in "([0-9.]+|\"x\"|null)",
        ) {
            let body = format!(
                r#"{{"status":"success","data":{{"resultType":"{rt}","result":[{{"metric":{{}},"value":[{t},{v}],"values":[[{t},{v}]]}}]}}}}"#
            );
            let _ = parse(&body);
        }
    }
}
