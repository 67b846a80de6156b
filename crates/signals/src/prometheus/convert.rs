//! Turning the samples of one instant into a [`Measurement`].
//!
//! Each query gives, for one evaluation instant, one value per series (`None` for NaN or an
//! infinity). Counts and gauges expect at most one series (aggregate in the template with
//! `sum(...)`); latency expects one series per histogram bucket, told apart by the `le` label.

use std::collections::BTreeMap;

use crate::observation::{Counts, Gauge, Measurement};
use crate::sketch::LatencySketch;

/// One series' value at one instant.
pub(crate) type Point<'a> = (&'a BTreeMap<String, String>, Option<f64>);

/// The single value of a query at one instant: `Ok(None)` for no series, `Ok(Some(None))` for
/// NaN, an error for several series.
fn single(points: &[Point<'_>]) -> Result<Option<Option<f64>>, String> {
    match points {
        [] => Ok(None),
        [(_, v)] => Ok(Some(*v)),
        many => Err(format!(
            "gave {} series where one was expected; aggregate the template, e.g. `sum(...)`",
            many.len()
        )),
    }
}

fn non_negative_count(what: &str, v: f64) -> Result<u64, String> {
    if v < 0.0 {
        return Err(format!(
            "{what} is negative ({v}); use increase() over a counter"
        ));
    }
    // `increase()` extrapolates to the window's edges, so counts come back fractional.
    Ok(v.round() as u64)
}

/// Counts from the requests and errors queries.
///
/// No requests series, or NaN anywhere, is no data. A missing errors series with requests present
/// means zero errors: Prometheus has no series for a status code that never occurred. Rounding of
/// two separately extrapolated counters can put errors one above requests (a little more over
/// many instances, each extrapolated alone); such errors are capped at requests. More errors than
/// [`error_excess_allowed`] above requests is an error: the two templates count different
/// things (an errors query that does not select the track, say), and capping would read a
/// healthy track as failing every request.
///
/// An unreadable answer is blamed on the query whose template to fix: [`Side::Errors`] for
/// errors counted beyond requests, as the requests are the reference.
pub(crate) fn counts(
    requests: &[Point<'_>],
    errors: &[Point<'_>],
) -> Result<Measurement, (Side, String)> {
    let on = |side: Side| move |reason: String| (side, reason);
    let requests = match single(requests)
        .map_err(|e| format!("requests query {e}"))
        .map_err(on(Side::Requests))?
    {
        None | Some(None) => return Ok(Measurement::NoData),
        Some(Some(v)) => non_negative_count("requests", v).map_err(on(Side::Requests))?,
    };
    let errors = match single(errors)
        .map_err(|e| format!("errors query {e}"))
        .map_err(on(Side::Errors))?
    {
        None => 0,
        Some(None) => return Ok(Measurement::NoData),
        Some(Some(v)) => non_negative_count("errors", v).map_err(on(Side::Errors))?,
    };
    if errors > requests.saturating_add(error_excess_allowed(requests)) {
        return Err((
            Side::Errors,
            format!(
                "the errors query counts {errors} where the requests query counts {requests}; \
                 errors must be a subset of requests: check that both templates select the same \
                 track and requests"
            ),
        ));
    }
    let counts = Counts::new(requests, errors.min(requests))
        .map_err(|e| e.to_string())
        .map_err(on(Side::Errors))?;
    Ok(Measurement::Counts(counts))
}

/// Which of the two counts queries an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The requests query, sent first.
    Requests,
    /// The errors query.
    Errors,
}

/// How many errors above requests rounding can explain: one, or 1% of requests (extrapolation
/// rounds each instance's series alone).
fn error_excess_allowed(requests: u64) -> u64 {
    (requests / 100).max(1)
}

/// A gauge from one query; no series or NaN is no data.
pub(crate) fn gauge(points: &[Point<'_>]) -> Result<Measurement, String> {
    match single(points)? {
        None | Some(None) => Ok(Measurement::NoData),
        Some(Some(v)) => Ok(Measurement::Gauge(
            Gauge::new(v).map_err(|e| e.to_string())?,
        )),
    }
}

/// A latency sketch from cumulative histogram buckets (`le` label, in the histogram's unit,
/// multiplied by `scale` to get milliseconds).
///
/// A Prometheus histogram only knows how many requests fell in each bucket, not their values, so
/// each request is placed at its bucket's **upper bound** (the smallest `le` at least as large as
/// it). Quantiles of the sketch are therefore upper bounds at the histogram's resolution — never
/// optimistic, and exact (within the sketch's 1%) when values sit on bucket bounds. Requests in the
/// `+Inf` bucket are placed at the largest finite bound, as `histogram_quantile` does, so quantiles
/// that fall there are lower bounds: give the histogram a top bucket above any latency you judge.
/// No series, NaN in any bucket, or no requests at all is no data. Buckets without the `+Inf`
/// one are an error: only it counts every request, so without it the slowest would go unseen.
///
/// Buckets are told apart by the number in `le`, not its spelling: Prometheus 3 writes bounds as
/// floats (`le="1"` became `le="1.0"`), so a window spanning an upgrade, or a `sum by (le)` over
/// servers of both versions, gives two series for one bound. They count one bucket's requests
/// between them and are added. Series that share a bound and also differ in another label (one
/// per instance) were not aggregated, and are an error.
pub(crate) fn latency(points: &[Point<'_>], scale: f64) -> Result<Measurement, String> {
    if points.is_empty() {
        return Ok(Measurement::NoData);
    }
    let mut parsed = Vec::with_capacity(points.len());
    for (labels, value) in points {
        let Some(bucket) = Bucket::read(labels, *value)? else {
            return Ok(Measurement::NoData);
        };
        parsed.push(bucket);
    }
    parsed.sort_by(|a, b| a.bound.total_cmp(&b.bound));
    let buckets = merge_spellings(&parsed)?;
    if let Some((top, _)) = buckets.last().filter(|(b, _)| b.is_finite()) {
        return Err(format!(
            "the histogram has no `+Inf` bucket (the largest is le=`{top}`), so the requests \
             above it are not counted and every quantile would read low; keep the `+Inf` bucket \
             in the query"
        ));
    }
    let largest_finite = buckets
        .iter()
        .map(|(b, _)| *b)
        .filter(|b| b.is_finite())
        .fold(None, |acc: Option<f64>, b| {
            Some(acc.map_or(b, |a| a.max(b)))
        });
    let mut sketch = LatencySketch::new();
    let mut previous = 0u64;
    for (bound, cumulative) in buckets {
        // Extrapolated bucket counts can dip slightly below the bucket before; cumulative counts
        // never decrease, so clamp.
        let cumulative = (cumulative.round() as u64).max(previous);
        let in_bucket = cumulative - previous;
        previous = cumulative;
        if in_bucket == 0 {
            continue;
        }
        let at = if bound.is_finite() {
            bound
        } else {
            largest_finite
                .ok_or("the histogram has only a `+Inf` bucket, so no latency can be read")?
        };
        sketch
            .add_n(at * scale, in_bucket)
            .map_err(|e| e.to_string())?;
    }
    if sketch.count() == 0 {
        return Ok(Measurement::NoData);
    }
    Ok(Measurement::Latency(sketch))
}

/// One bucket series at one instant.
struct Bucket<'a> {
    bound: f64,
    le: &'a str,
    labels: &'a BTreeMap<String, String>,
    count: f64,
}

impl<'a> Bucket<'a> {
    /// The bucket of one series; `None` for a NaN count (no data).
    fn read(
        labels: &'a BTreeMap<String, String>,
        count: Option<f64>,
    ) -> Result<Option<Self>, String> {
        let Some(le) = labels.get("le") else {
            return Err(
                "latency query gave a series without an `le` label; aggregate buckets with `sum by (le) (...)`".into(),
            );
        };
        let bound: f64 = match le.as_str() {
            "+Inf" | "Inf" | "inf" => f64::INFINITY,
            other => other
                .parse()
                .map_err(|_| format!("bucket bound le=`{other}` is not a number"))?,
        };
        if bound.is_nan() || bound < 0.0 {
            return Err(format!(
                "bucket bound le=`{le}` must be a non-negative number"
            ));
        }
        let Some(count) = count else {
            return Ok(None);
        };
        if count < 0.0 {
            return Err(format!("bucket le=`{le}` count is negative ({count})"));
        }
        Ok(Some(Bucket {
            bound,
            le,
            labels,
            count,
        }))
    }

    fn other_labels(&self) -> impl Iterator<Item = (&'a String, &'a String)> {
        self.labels.iter().filter(|(k, _)| k.as_str() != "le")
    }
}

/// Adds up the series of each bound (sorted by bound) into `(bound, cumulative count)`; series
/// of one bound must be spellings of it within one series' labels.
fn merge_spellings(sorted: &[Bucket<'_>]) -> Result<Vec<(f64, f64)>, String> {
    sorted
        .chunk_by(|a, b| a.bound == b.bound)
        .map(|same_bound| {
            if let Some((a, b)) = first_unmergeable(same_bound) {
                return Err(format!(
                    "two series share the bucket bound {} (le=`{}` and le=`{}`) and differ in \
                     more than its spelling; aggregate with `sum by (le) (...)`",
                    a.bound, a.le, b.le
                ));
            }
            Ok((
                same_bound[0].bound,
                same_bound.iter().map(|b| b.count).sum(),
            ))
        })
        .collect()
}

/// Two series of one bound that are not one series' `le` written two ways: the same spelling
/// twice, or other labels that differ.
fn first_unmergeable<'s, 'a>(
    same_bound: &'s [Bucket<'a>],
) -> Option<(&'s Bucket<'a>, &'s Bucket<'a>)> {
    same_bound.iter().enumerate().find_map(|(i, a)| {
        same_bound[i + 1..]
            .iter()
            .find(|b| a.le == b.le || !a.other_labels().eq(b.other_labels()))
            .map(|b| (a, b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(le: Option<&str>) -> BTreeMap<String, String> {
        le.map(|l| BTreeMap::from([("le".to_owned(), l.to_owned())]))
            .unwrap_or_default()
    }

    #[test]
    fn counts_round_cap_and_treat_missing_errors_as_zero() {
        let none = labels(None);
        let r = [(&none, Some(100.4))];
        let e = [(&none, Some(101.0))];
        assert_eq!(
            counts(&r, &e).unwrap(),
            Measurement::Counts(Counts::new(100, 100).unwrap())
        );
        assert_eq!(
            counts(&r, &[]).unwrap(),
            Measurement::Counts(Counts::new(100, 0).unwrap())
        );
        assert_eq!(counts(&[], &e).unwrap(), Measurement::NoData);
        assert_eq!(counts(&[(&none, None)], &e).unwrap(), Measurement::NoData);
        assert_eq!(counts(&r, &[(&none, None)]).unwrap(), Measurement::NoData);
        assert_eq!(
            counts(&[(&none, Some(-1.0))], &[]).unwrap_err().0,
            Side::Requests
        );
        let (side, msg) = counts(&r, &[(&none, Some(-1.0))]).unwrap_err();
        assert!(
            side == Side::Errors && msg.contains("errors is negative"),
            "{msg}"
        );
        let two = [(&none, Some(1.0)), (&none, Some(2.0))];
        let (side, msg) = counts(&two, &[]).unwrap_err();
        assert!(side == Side::Requests && msg.contains("2 series"), "{msg}");
        let (side, msg) = counts(&r, &two).unwrap_err();
        assert!(
            side == Side::Errors && msg.contains("errors query gave 2 series"),
            "{msg}"
        );
    }

    /// Errors well above requests are two templates counting different things, not rounding:
    /// capped, they would read as every request failing.
    #[test]
    fn errors_beyond_rounding_above_requests_are_refused() {
        let none = labels(None);
        for (r, e, capped) in [
            (0.4, 0.6, true),
            (1_000.0, 1_010.0, true),
            (1_000.0, 1_011.0, false),
        ] {
            let got = counts(&[(&none, Some(r))], &[(&none, Some(e))]);
            if capped {
                let Ok(Measurement::Counts(c)) = got else {
                    panic!("{r}/{e}: {got:?}")
                };
                assert_eq!(c.errors(), c.requests(), "{r}/{e}");
            } else {
                let (side, msg) = got.unwrap_err();
                assert_eq!(side, Side::Errors, "{msg}");
                assert!(
                    msg.contains("1011") && msg.contains("1000") && msg.contains("subset"),
                    "{msg}"
                );
            }
        }
        let (_, msg) = counts(&[(&none, Some(100.0))], &[(&none, Some(4_000.0))]).unwrap_err();
        assert!(msg.contains("same track"), "{msg}");
    }

    #[test]
    fn gauges_are_single_finite_values() {
        let none = labels(None);
        assert_eq!(
            gauge(&[(&none, Some(0.25))]).unwrap(),
            Measurement::Gauge(Gauge::new(0.25).unwrap())
        );
        assert_eq!(gauge(&[]).unwrap(), Measurement::NoData);
        assert_eq!(gauge(&[(&none, None)]).unwrap(), Measurement::NoData);
    }

    #[test]
    fn latency_places_requests_at_bucket_upper_bounds() {
        let (a, b, c, inf) = (
            labels(Some("0.01")),
            labels(Some("0.05")),
            labels(Some("0.25")),
            labels(Some("+Inf")),
        );
        // Cumulative: 50 ≤ 10 ms, 90 ≤ 50 ms, 99 ≤ 250 ms, 100 in all.
        let points = [
            (&inf, Some(100.0)),
            (&b, Some(90.0)),
            (&a, Some(50.0)),
            (&c, Some(99.0)),
        ];
        let Measurement::Latency(s) = latency(&points, 1_000.0).unwrap() else {
            panic!("expected a sketch")
        };
        assert_eq!(s.count(), 100);
        for (q, want) in [(0.25, 10.0), (0.75, 50.0), (0.95, 250.0), (1.0, 250.0)] {
            let got = s.quantile(q).unwrap();
            assert!((got - want).abs() <= want * 0.011, "q{q}: {got} vs {want}");
        }
    }

    /// Thresholds sit on bucket bounds: a histogram whose every request fell at or under
    /// 250 ms must not read as a p99 above 250 ms.
    #[test]
    fn latency_never_reads_above_the_highest_bucket_used() {
        let (a, b, inf) = (
            labels(Some("0.1")),
            labels(Some("0.25")),
            labels(Some("+Inf")),
        );
        let points = [
            (&a, Some(400.0)),
            (&b, Some(1_000.0)),
            (&inf, Some(1_000.0)),
        ];
        let Measurement::Latency(s) = latency(&points, 1_000.0).unwrap() else {
            panic!("expected a sketch")
        };
        for q in [0.9, 0.99, 0.999] {
            assert_eq!(s.quantile(q), Some(250.0), "q{q}");
        }
        let low = s.quantile(0.1).unwrap();
        assert!((low - 100.0).abs() <= 100.0 * 0.011, "{low}");
    }

    /// One bound written two ways is one bucket only within one series' labels: buckets that
    /// also differ in another label (one per instance, say) were not aggregated, and one
    /// spelling twice can only be that.
    #[test]
    fn latency_refuses_one_bound_across_series() {
        let with = |le: &str, instance: &str| {
            BTreeMap::from([
                ("instance".to_owned(), instance.to_owned()),
                ("le".to_owned(), le.to_owned()),
            ])
        };
        let (one_a, one_b, inf_a, inf_b) = (
            with("1", "a"),
            with("1.0", "b"),
            with("+Inf", "a"),
            with("+Inf", "b"),
        );
        let msg = latency(
            &[
                (&one_a, Some(1.0)),
                (&one_b, Some(1.0)),
                (&inf_a, Some(2.0)),
                (&inf_b, Some(2.0)),
            ],
            1.0,
        )
        .unwrap_err();
        assert!(msg.contains("share") && msg.contains("le=`1.0`"), "{msg}");
        let (one, one_again, inf) = (with("1", "a"), with("1.0", "a"), with("+Inf", "a"));
        assert!(matches!(
            latency(&[(&one, Some(1.0)), (&one_again, Some(1.0)), (&inf, Some(2.0))], 1.0),
            Ok(Measurement::Latency(s)) if s.count() == 2
        ));
    }

    /// Without its `+Inf` bucket (a template that filters `le`, or a bucket series missing at
    /// one step of a range) a histogram does not say how many requests there were: the
    /// requests above the largest finite bound would be dropped and every quantile read low.
    /// `histogram_quantile` answers NaN for it.
    #[test]
    fn latency_without_the_inf_bucket_is_refused() {
        let (a, b) = (labels(Some("0.1")), labels(Some("0.25")));
        // 900 of 1000 requests were slower than 250 ms; only the +Inf bucket would say so.
        let msg = latency(&[(&a, Some(50.0)), (&b, Some(100.0))], 1_000.0).unwrap_err();
        assert!(msg.contains("+Inf") && msg.contains("0.25"), "{msg}");
    }

    #[test]
    fn latency_no_data_and_errors() {
        let (a, inf, none) = (labels(Some("0.1")), labels(Some("+Inf")), labels(None));
        assert_eq!(latency(&[], 1.0).unwrap(), Measurement::NoData);
        assert_eq!(
            latency(&[(&a, Some(0.0)), (&inf, Some(0.0))], 1.0).unwrap(),
            Measurement::NoData
        );
        assert_eq!(
            latency(&[(&a, None), (&inf, Some(3.0))], 1.0).unwrap(),
            Measurement::NoData
        );
        assert!(
            latency(&[(&none, Some(1.0))], 1.0)
                .unwrap_err()
                .contains("`le`")
        );
        assert!(
            latency(&[(&inf, Some(1.0))], 1.0)
                .unwrap_err()
                .contains("+Inf")
        );
        let bad = labels(Some("abc"));
        assert!(
            latency(&[(&bad, Some(1.0))], 1.0)
                .unwrap_err()
                .contains("abc")
        );
        assert!(
            latency(&[(&a, Some(1.0)), (&a, Some(2.0))], 1.0)
                .unwrap_err()
                .contains("share")
        );
    }
}
