//! [`LatencySketch`]: a mergeable quantile sketch of latencies with a stated relative-error bound.

use serde::{Deserialize, Serialize};
use sketches_ddsketch::{Config, DDSketch};

use crate::error::{Error, Result};

/// A DDSketch of latencies in milliseconds.
///
/// Every quantile it answers is within **1% relative error** of the true quantile of the values
/// added (DDSketch's guarantee for `alpha = 0.01`), whatever the distribution, as long as the
/// sketch has not collapsed its lowest bins: with 2,048 bins that covers more than eight orders of
/// magnitude (for example 1 µs to 100 s), which latencies never exceed. Values below 1 µs
/// (0.001 ms), zero among them, share one bin: a quantile that falls among them reads as the
/// smallest value added, within 1 µs of the true one rather than within 1%. Sketches merge
/// exactly, so per-instance or per-interval sketches add up to the sketch of the whole. Memory
/// stays bounded (at most 2,048 bins, about 16 KiB) however many values are added.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "SketchIn", into = "SketchOut")]
pub struct LatencySketch {
    inner: DDSketch,
}

/// The serialized form: an empty sketch is `null`, because DDSketch keeps infinite min/max while
/// empty and JSON cannot carry infinities; a non-empty one is DDSketch's own form.
#[derive(Serialize)]
#[serde(transparent)]
struct SketchOut(Option<DDSketch>);

/// The same form read back, checked ([`DdSketchRepr::check`]) before DDSketch, which trusts it,
/// reads it.
#[derive(Deserialize)]
#[serde(transparent)]
struct SketchIn(Option<DdSketchRepr>);

/// DDSketch's serialized fields, field for field, so that a sketch read from a journal or a
/// peer is checked before DDSketch indexes its bins with it: a store whose keys point outside its
/// bins, or another configuration, would make a later merge or quantile panic.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DdSketchRepr {
    config: serde_json::Value,
    store: StoreRepr,
    negative_store: StoreRepr,
    min: f64,
    max: f64,
    sum: f64,
    zero_count: u64,
}

/// The fields of DDSketch's `CollapsingLowestDenseStore`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreRepr {
    bins: Vec<u64>,
    count: u64,
    min_key: i32,
    max_key: i32,
    offset: i32,
    bin_limit: usize,
    is_collapsed: bool,
}

const BIN_LIMIT: u32 = 2048;

fn config() -> Config {
    Config::new(LatencySketch::RELATIVE_ACCURACY, BIN_LIMIT, 1.0e-3)
}

impl StoreRepr {
    /// The store of no values, as DDSketch starts one: no bins, and keys that any first value
    /// replaces.
    fn empty() -> Self {
        StoreRepr {
            bins: Vec::new(),
            count: 0,
            min_key: i32::MAX,
            max_key: i32::MIN,
            offset: 0,
            bin_limit: BIN_LIMIT as usize,
            is_collapsed: false,
        }
    }

    /// Checks what DDSketch relies on: the bins sum to the count, fit the bin limit, and hold
    /// nothing outside the keys `[min_key, max_key]`, which lie inside the bins. What DDSketch
    /// would misuse yet can rebuild is reset: a store of no values becomes the empty store (its
    /// keys say nothing, yet DDSketch would grow its bins from them on the next value added, and
    /// keys far apart would overflow or index past them), and a collapsed mark the bins
    /// contradict is cleared.
    fn check(&mut self, field: &str) -> Result<()> {
        let invalid = |name: &str, value: &dyn ToString, reason: &str| {
            Err(Error::invalid(
                format!("{field}.{name}"),
                value.to_string(),
                reason,
            ))
        };
        if self.bin_limit != BIN_LIMIT as usize {
            return invalid(
                "bin_limit",
                &self.bin_limit,
                "must be the sketch's 2048 bins",
            );
        }
        if self.bins.len() > self.bin_limit {
            return invalid(
                "bins",
                &format!("{} bins", self.bins.len()),
                "must be at most the sketch's 2048 bins",
            );
        }
        let total = self.bins.iter().try_fold(0u64, |t, b| t.checked_add(*b));
        if total != Some(self.count) {
            return invalid("count", &self.count, "must be the sum of the bins");
        }
        if self.count == 0 {
            *self = StoreRepr::empty();
            return Ok(());
        }
        let (lo, hi) = (i64::from(self.min_key), i64::from(self.max_key));
        let first = i64::from(self.offset);
        let last = first + self.bins.len() as i64 - 1;
        if !(first <= lo && lo <= hi && hi <= last) {
            return invalid(
                "min_key",
                &format!("{lo}..={hi}"),
                &format!("the keys must lie within the bins' keys {first}..={last}"),
            );
        }
        let outside = self.bins.iter().enumerate().any(|(i, b)| {
            let key = first + i as i64;
            *b > 0 && !(lo..=hi).contains(&key)
        });
        if outside {
            return invalid(
                "bins",
                &"[..]",
                "a bin outside min_key..=max_key holds values",
            );
        }
        // A store that collapsed its lowest bins fills all of them, from its lowest key up, and
        // DDSketch counts every smaller value in the first bin. Marked collapsed with bins to
        // spare, a small value would be counted at a key below the lowest one or far above the
        // value: its quantiles off by more than the sketch's bound, and the store unreadable.
        // Unmarked, DDSketch collapses the store again when it must.
        let full = hi - lo + 1 == i64::from(BIN_LIMIT) && self.bins.len() == BIN_LIMIT as usize;
        if self.is_collapsed && !(full && lo == first) {
            self.is_collapsed = false;
        }
        Ok(())
    }
}

impl DdSketchRepr {
    /// Checks a serialized sketch; the empty sketch is `None`.
    fn check(mut self) -> Result<Option<DDSketch>> {
        let standard = serde_json::to_value(DDSketch::new(config()))
            .ok()
            .and_then(|mut v| v.get_mut("config").map(serde_json::Value::take));
        if standard.as_ref() != Some(&self.config) {
            return Err(Error::invalid(
                "latencySketch.config",
                self.config,
                "must be the configuration every latency sketch shares (1% accuracy, 2048 bins)",
            ));
        }
        self.store.check("latencySketch.store")?;
        self.negative_store.check("latencySketch.negative_store")?;
        if self.negative_store.count > 0 {
            return Err(Error::invalid(
                "latencySketch.negative_store.count",
                self.negative_store.count,
                "must be 0: latencies are never negative",
            ));
        }
        let Some(count) = self.store.count.checked_add(self.zero_count) else {
            return Err(Error::invalid(
                "latencySketch.zero_count",
                self.zero_count,
                "overflows the count of values",
            ));
        };
        if count == 0 {
            return Ok(None);
        }
        if count > LatencySketch::MAX_VALUES {
            return Err(Error::invalid(
                "latencySketch.count",
                count,
                format!(
                    "a sketch holds at most {} values",
                    LatencySketch::MAX_VALUES
                ),
            ));
        }
        for (name, value, ok, reason) in [
            (
                "max",
                self.max,
                self.max >= 0.0,
                "must be finite and at least 0",
            ),
            (
                "min",
                self.min,
                (0.0..=self.max).contains(&self.min),
                "must be finite, at least 0 and at most max",
            ),
            (
                "sum",
                self.sum,
                self.sum >= 0.0,
                "must be finite and at least 0",
            ),
        ] {
            if !(value.is_finite() && ok) {
                return Err(Error::invalid(
                    format!("latencySketch.{name}"),
                    value,
                    reason,
                ));
            }
        }
        self.check_extremes(count)?;
        let inner = serde_json::to_value(self)
            .and_then(serde_json::from_value)
            .map_err(|e| Error::invalid("latencySketch", "{..}", e.to_string()))?;
        Ok(Some(inner))
    }
}

impl DdSketchRepr {
    /// Checks that the extremes and the sum agree with the bins: the latency test reads the
    /// largest value exactly, and Kayenta's mean reads the sum, so a damaged one would weigh in
    /// as if measured. The largest value lies in the highest occupied bin, within one bin for
    /// another platform's logarithm; the smallest in the zero bin if it holds values, else at
    /// or below the lowest occupied bin; the sum between `count × min` and `count × max`,
    /// within rounding.
    fn check_extremes(&self, count: u64) -> Result<()> {
        let cfg = config();
        let off_by = |v: f64, key: i32| (i64::from(cfg.key(v)) - i64::from(key)).abs();
        let tiny = cfg.min_possible();
        let store = &self.store;
        let max_ok = if store.count == 0 {
            self.max <= tiny
        } else {
            self.max > tiny && off_by(self.max, store.max_key) <= 1
        };
        // A store whose lowest bins collapsed holds smaller values in its lowest bin, and a
        // merge does not carry the store's `is_collapsed` flag, so the smallest value is only
        // checked from above.
        let min_ok = if self.zero_count > 0 {
            self.min <= tiny
        } else {
            self.min > tiny && i64::from(cfg.key(self.min)) <= i64::from(store.min_key) + 1
        };
        if !(min_ok && max_ok) {
            return Err(Error::invalid(
                if min_ok {
                    "latencySketch.max"
                } else {
                    "latencySketch.min"
                },
                format!("min {}, max {}", self.min, self.max),
                "must lie in the lowest and the highest bin that hold values",
            ));
        }
        let n = count as f64;
        let (low, high) = (n * self.min * (1.0 - 1e-3), n * self.max * (1.0 + 1e-3));
        if !(low <= self.sum && self.sum <= high) {
            return Err(Error::invalid(
                "latencySketch.sum",
                self.sum,
                format!("must lie between count × min ({low}) and count × max ({high})"),
            ));
        }
        Ok(())
    }
}

impl TryFrom<SketchIn> for LatencySketch {
    type Error = Error;
    fn try_from(r: SketchIn) -> Result<Self> {
        let inner = match r.0 {
            Some(repr) => repr.check()?,
            None => None,
        };
        Ok(inner
            .map(|inner| LatencySketch { inner })
            .unwrap_or_default())
    }
}

impl From<LatencySketch> for SketchOut {
    fn from(s: LatencySketch) -> Self {
        SketchOut((s.count() > 0).then_some(s.inner))
    }
}

impl Default for LatencySketch {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for LatencySketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencySketch")
            .field("count", &self.count())
            .field("p50", &self.quantile(0.5))
            .field("p99", &self.quantile(0.99))
            .finish()
    }
}

/// Two sketches are equal when they hold the same number of values with the same extremes and
/// quantiles at every percentile, and sums that differ by no more than adding the values in
/// another order can round them; sketches built from the same values in any order are equal.
impl PartialEq for LatencySketch {
    fn eq(&self, other: &Self) -> bool {
        self.count() == other.count()
            && sums_agree(self.inner.sum(), other.inner.sum(), self.count())
            && self.min() == other.min()
            && self.max() == other.max()
            && (0..=100).all(|p| {
                self.quantile(f64::from(p) / 100.0) == other.quantile(f64::from(p) / 100.0)
            })
    }
}

/// Whether two sums of the same `n` non-negative values agree within rounding: adding a value,
/// scaling a repeated one and merging a sketch each round a sum by at most one part in 2⁵³ of
/// the total, whatever the order, so two sums made in different orders differ by at most a few
/// `n` parts in 2⁵³.
fn sums_agree(a: Option<f64>, b: Option<f64>, n: u64) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= a.max(b) * 4.0 * f64::EPSILON * n as f64,
        (a, b) => a == b,
    }
}

impl LatencySketch {
    /// The guaranteed relative accuracy of every quantile.
    pub const RELATIVE_ACCURACY: f64 = 0.01;

    /// The most values one sketch holds, 2⁵³ (ninety years at three million a second): counts
    /// stay exact as floats, and no sum of counts overflows.
    pub const MAX_VALUES: u64 = 1 << 53;

    /// An empty sketch.
    pub fn new() -> Self {
        LatencySketch {
            inner: DDSketch::new(config()),
        }
    }

    /// Adds one latency in milliseconds. Negative, NaN or infinite values are rejected and leave
    /// the sketch unchanged.
    pub fn add(&mut self, millis: f64) -> Result<()> {
        self.add_n(millis, 1)
    }

    /// Adds `count` copies of one latency in milliseconds, in constant time. Errs, changing
    /// nothing, on a value [`add`](Self::add) rejects, past [`MAX_VALUES`](Self::MAX_VALUES), or
    /// when the sum of the values would no longer be a finite number.
    pub fn add_n(&mut self, millis: f64, count: u64) -> Result<()> {
        if !millis.is_finite() || millis < 0.0 {
            return Err(Error::invalid(
                "latency",
                millis,
                "must be a finite, non-negative number of milliseconds",
            ));
        }
        // `-0.0` passes the sign check: keep it as `0.0`, so that no reading shows `-0`.
        let millis = millis.abs();
        self.room_for("latency.count", count)?;
        self.sum_room("latency", millis, millis * count as f64)?;
        self.inner.add_with_count(millis, count);
        Ok(())
    }

    /// Merges `other` into this sketch; the result is the sketch of both sets of values. Errs,
    /// changing nothing, if that would hold more than [`MAX_VALUES`](Self::MAX_VALUES) or a sum
    /// that is no longer a finite number.
    pub fn merge(&mut self, other: &LatencySketch) -> Result<()> {
        if other.count() == 0 {
            return Ok(());
        }
        self.room_for("latencySketch.count", other.count())?;
        let other_sum = other.inner.sum().unwrap_or(0.0);
        self.sum_room("latencySketch.sum", other_sum, other_sum)?;
        // Both sides are built with the same configuration (checked when read back), the only
        // case DDSketch refuses.
        if self.inner.merge(&other.inner).is_err() {
            unreachable!("latency sketches always share one configuration");
        }
        Ok(())
    }

    /// Errs unless `count` more values fit.
    fn room_for(&self, field: &str, count: u64) -> Result<()> {
        match self.count().checked_add(count) {
            Some(n) if n <= Self::MAX_VALUES => Ok(()),
            _ => Err(Error::invalid(
                field,
                count,
                format!(
                    "would take the sketch of {} values past its {} values",
                    self.count(),
                    Self::MAX_VALUES
                ),
            )),
        }
    }

    /// Errs unless `added` keeps the sum finite: an infinite sum has no JSON form, so the
    /// sketch could be written to a journal but never read back, and its mean would be infinite.
    fn sum_room(&self, field: &str, value: f64, added: f64) -> Result<()> {
        let sum = self.inner.sum().unwrap_or(0.0);
        if (sum + added).is_finite() {
            return Ok(());
        }
        Err(Error::invalid(
            field,
            value,
            format!(
                "would take the sum of the sketch's values ({sum} ms) past the largest finite number"
            ),
        ))
    }

    /// The number of values added.
    pub fn count(&self) -> u64 {
        self.inner.count() as u64
    }

    /// The `q`-quantile (`0.0..=1.0`), or `None` for an empty sketch or a `q` out of range.
    ///
    /// Within the sketch's 1% of the true quantile, and never outside the smallest and the
    /// largest value added, which the sketch keeps exactly. DDSketch answers a bin's middle
    /// (in relative terms), which for the highest or lowest bin can lie past every value added:
    /// a thousand requests of exactly 250 ms would read as a p99 of 252 ms and breach a
    /// `gt 250` threshold that no request breached. A Prometheus histogram read as a sketch puts
    /// every request on its bucket's bound, so a threshold set on a bound (as thresholds usually
    /// are) meets exactly that case. The true quantile always lies between the extremes, so
    /// clamping to them only moves an answer closer to it.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let v = self.inner.quantile(q).ok().flatten()?;
        match (self.inner.min(), self.inner.max()) {
            (Some(lo), Some(hi)) if lo <= hi => Some(v.clamp(lo, hi)),
            _ => Some(v),
        }
    }

    /// The mean of the values added, or `None` if empty.
    pub fn mean(&self) -> Option<f64> {
        let n = self.count();
        self.inner.sum().filter(|_| n > 0).map(|s| s / n as f64)
    }

    /// The smallest value added, or `None` if empty.
    pub fn min(&self) -> Option<f64> {
        self.inner.min()
    }

    /// The largest value added, or `None` if empty.
    pub fn max(&self) -> Option<f64> {
        self.inner.max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_the_stated_bound() {
        let mut s = LatencySketch::new();
        let values: Vec<f64> = (1..=10_000).map(|i| f64::from(i) * 0.37).collect();
        for v in &values {
            s.add(*v).unwrap();
        }
        for q in [0.5, 0.9, 0.99] {
            let exact = values[((values.len() as f64 - 1.0) * q) as usize];
            let got = s.quantile(q).unwrap();
            assert!(
                (got - exact).abs() <= exact * LatencySketch::RELATIVE_ACCURACY * 1.01,
                "q={q} exact={exact} got={got}"
            );
        }
    }

    /// Values below 1 µs share the zero bin, and read back within 1 µs.
    #[test]
    fn values_below_a_microsecond_read_within_a_microsecond() {
        let values = [0.0, 0.0002, 0.0008, 0.0009, 5.0];
        let mut s = LatencySketch::new();
        for v in values {
            s.add(v).unwrap();
        }
        for (q, exact) in [(0.25, 0.0002), (0.5, 0.0008), (0.75, 0.0009)] {
            let got = s.quantile(q).unwrap();
            assert!(
                (got - exact).abs() < 0.001,
                "q={q}: exact {exact}, got {got}"
            );
        }
        assert_eq!(s.quantile(1.0), Some(5.0));
    }

    /// DDSketch answers a bin's middle, which for a sketch of one repeated value lies above it
    /// (252.2 ms for 250 ms) or below it (49.9 ms for 50 ms): a quantile past every value added.
    #[test]
    fn quantiles_never_leave_the_values_added() {
        for v in [250.0, 50.0, 1_000.0, 7.0] {
            let mut s = LatencySketch::new();
            s.add_n(v, 1_000).unwrap();
            for q in [0.01, 0.5, 0.99, 0.999] {
                assert_eq!(s.quantile(q), Some(v), "q{q} of 1000 × {v} ms");
            }
        }
        // Spread values: the top and bottom quantiles stay within the extremes, the middle
        // within the stated bound.
        let mut s = LatencySketch::new();
        s.add_n(50.0, 500).unwrap();
        s.add_n(250.0, 500).unwrap();
        assert_eq!(s.quantile(0.001), Some(50.0));
        assert_eq!(s.quantile(0.999), Some(250.0));
        let mid = s.quantile(0.75).unwrap();
        assert!((mid - 250.0).abs() <= 250.0 * LatencySketch::RELATIVE_ACCURACY);
    }

    #[test]
    fn merge_equals_the_sketch_of_all_values() {
        let (mut a, mut b, mut all) = (
            LatencySketch::new(),
            LatencySketch::new(),
            LatencySketch::new(),
        );
        for i in 0..500 {
            let v = f64::from(i % 97) + 0.5;
            if i % 2 == 0 {
                a.add(v).unwrap()
            } else {
                b.add(v).unwrap()
            }
            all.add(v).unwrap();
        }
        a.merge(&b).unwrap();
        assert_eq!(a, all);
    }

    #[test]
    fn sketches_of_the_same_values_in_any_order_are_equal() {
        let values = [0.1, 0.2, 0.3];
        let of = |values: &mut dyn Iterator<Item = &f64>| {
            let mut s = LatencySketch::new();
            for v in values {
                s.add(*v).unwrap();
            }
            s
        };
        let forward = of(&mut values.iter());
        let backward = of(&mut values.iter().rev());
        assert_ne!(
            forward.inner.sum(),
            backward.inner.sum(),
            "the sums round apart"
        );
        assert_eq!(forward, backward);
        let (mut halves, second) = (of(&mut values[2..].iter()), of(&mut values[..2].iter()));
        halves.merge(&second).unwrap();
        assert_eq!(halves, forward);
        let mut more = forward.clone();
        more.add(0.0).unwrap();
        assert_ne!(more, forward, "another value is another sketch");
        let mut heavier = LatencySketch::new();
        for v in values.iter().rev() {
            heavier.add(v * 1.000_001).unwrap();
        }
        assert_ne!(heavier.inner.sum(), forward.inner.sum());
    }

    #[test]
    fn bad_values_change_nothing() {
        let mut s = LatencySketch::new();
        for bad in [f64::NAN, f64::INFINITY, -1.0] {
            assert!(s.add(bad).unwrap_err().to_string().contains("latency"));
        }
        assert_eq!(s.count(), 0);
        assert_eq!(s.quantile(0.5), None);
        assert_eq!(s.mean(), None);
        // Counts past the limit are refused too, by adding and by merging.
        s.add_n(5.0, LatencySketch::MAX_VALUES).unwrap();
        let e = s.add(5.0).unwrap_err().to_string();
        assert!(e.contains("latency.count") && e.contains("past"), "{e}");
        let mut one = LatencySketch::new();
        one.add(7.0).unwrap();
        assert!(
            s.merge(&one)
                .unwrap_err()
                .to_string()
                .contains("latencySketch.count")
        );
        assert!(s.add_n(5.0, u64::MAX).is_err());
        assert_eq!((s.count(), s.max()), (LatencySketch::MAX_VALUES, Some(5.0)));
        one.merge(&LatencySketch::new()).unwrap();
        assert_eq!(one.count(), 1);
    }

    /// `-0.0` is zero, not a negative latency: it is taken, and reported as `0`, never `-0`.
    #[test]
    fn negative_zero_is_kept_as_zero() {
        let mut s = LatencySketch::new();
        s.add(-0.0).unwrap();
        s.add_n(-0.0, 2).unwrap();
        let min = s.min().unwrap();
        assert!(min == 0.0 && min.is_sign_positive(), "{min}");
        for reading in [s.max(), s.quantile(0.5), s.mean()] {
            assert_eq!(format!("{reading:?}"), "Some(0.0)");
        }
        let json = serde_json::to_string(&s).unwrap();
        assert!(!json.contains("-0"), "{json}");
    }

    #[test]
    fn a_sum_past_the_largest_float_is_refused_and_the_sketch_still_reads_back() {
        let mut s = LatencySketch::new();
        s.add(f64::MAX).unwrap();
        let e = s.add(f64::MAX).unwrap_err().to_string();
        assert!(e.contains("latency") && e.contains("sum"), "{e}");
        assert!(s.add_n(1e300, 1_000_000).is_err());
        let mut big = LatencySketch::new();
        big.add(f64::MAX / 2.0).unwrap();
        let mut copy = big.clone();
        copy.merge(&big).unwrap();
        let e = copy.merge(&s).unwrap_err().to_string();
        assert!(e.contains("latencySketch.sum"), "{e}");
        assert_eq!((s.count(), copy.count()), (1, 2));
        for sketch in [s, copy] {
            let json = serde_json::to_string(&sketch).unwrap();
            let back: LatencySketch = serde_json::from_str(&json).expect(&json);
            assert_eq!(back, sketch);
        }
    }

    /// A sketch of a few values as its serialized form, edited by `edit`, read back.
    fn edited(edit: impl FnOnce(&mut serde_json::Value)) -> Result<LatencySketch> {
        let mut s = LatencySketch::new();
        for v in [0.0, 3.0, 12.5, 12.5, 250.0] {
            s.add(v).unwrap();
        }
        let mut v = serde_json::to_value(&s).unwrap();
        edit(&mut v);
        serde_json::from_value(v).map_err(|e| Error::invalid("json", "", e.to_string()))
    }

    #[test]
    fn a_sketch_read_back_is_checked_before_it_is_used() {
        let unchanged = edited(|_| {}).unwrap();
        assert_eq!((unchanged.count(), unchanged.max()), (5, Some(250.0)));
        let refused = [
            (
                edited(|v| v["config"]["gamma"] = 1.05.into()),
                "latencySketch.config",
            ),
            (
                edited(|v| v["config"]["offset"] = 3.into()),
                "latencySketch.config",
            ),
            (
                edited(|v| v["store"]["bins"] = serde_json::json!([])),
                "latencySketch.store.count",
            ),
            (
                edited(|v| v["store"]["count"] = 9.into()),
                "latencySketch.store.count",
            ),
            (
                edited(|v| v["store"]["offset"] = 10_000.into()),
                "latencySketch.store.min_key",
            ),
            (
                edited(|v| v["store"]["bin_limit"] = 10.into()),
                "latencySketch.store.bin_limit",
            ),
            (
                edited(|v| v["store"]["max_key"] = v["store"]["min_key"].clone()),
                "latencySketch.store.bins",
            ),
            (
                edited(|v| {
                    v["negative_store"] = v["store"].clone();
                }),
                "latencySketch.negative_store.count",
            ),
            (
                edited(|v| v["zero_count"] = u64::MAX.into()),
                "latencySketch.zero_count",
            ),
            (
                edited(|v| v["zero_count"] = LatencySketch::MAX_VALUES.into()),
                "latencySketch.count",
            ),
            (edited(|v| v["min"] = (-1.0).into()), "latencySketch.min"),
            (edited(|v| v["min"] = 300.0.into()), "latencySketch.min"),
            // Extremes and sums that the bins contradict.
            (edited(|v| v["max"] = 1e300.into()), "latencySketch.max"),
            (edited(|v| v["max"] = 100.0.into()), "latencySketch.max"),
            (edited(|v| v["min"] = 2.0.into()), "latencySketch.min"),
            (edited(|v| v["sum"] = 1e6.into()), "latencySketch.sum"),
        ];
        for (i, (r, field)) in refused.into_iter().enumerate() {
            let e = r.expect_err(field).to_string();
            assert!(e.contains(field), "case {i}: {e}");
        }
        // A store whose bin was raised with its count stays consistent, so it is accepted, and
        // merges without panicking.
        let mut more = edited(|v| {
            let bins = v["store"]["bins"].as_array_mut().unwrap();
            let at = bins.iter().position(|b| b.as_u64() > Some(0)).unwrap();
            bins[at] = (bins[at].as_u64().unwrap() + 1).into();
            v["store"]["count"] = (v["store"]["count"].as_u64().unwrap() + 1).into();
        })
        .unwrap();
        more.merge(&unchanged).unwrap();
        assert_eq!(more.count(), 11);
    }

    #[test]
    fn a_sketch_of_zeros_read_back_takes_new_values_whatever_its_empty_store_says() {
        let edits: [fn(&mut serde_json::Value); 3] = [
            |store| {
                store["min_key"] = i32::MIN.into();
                store["max_key"] = i32::MAX.into();
            },
            |store| {
                store["bins"] = serde_json::json!([0, 0, 0]);
                store["offset"] = (i32::MAX - 1).into();
                store["min_key"] = (i32::MAX - 1).into();
                store["max_key"] = (i32::MAX - 1).into();
            },
            |store| {
                store["offset"] = i32::MIN.into();
                store["is_collapsed"] = true.into();
            },
        ];
        for (i, edit) in edits.into_iter().enumerate() {
            let mut zeros = LatencySketch::new();
            zeros.add_n(0.0, 3).unwrap();
            let mut form = serde_json::to_value(&zeros).unwrap();
            edit(&mut form["store"]);
            let mut back: LatencySketch = serde_json::from_value(form).unwrap();
            back.add(0.5).unwrap();
            back.add_n(40.0, 2).unwrap();
            let mut want = zeros.clone();
            want.add(0.5).unwrap();
            want.add_n(40.0, 2).unwrap();
            assert_eq!(back, want, "edit {i}");
        }
    }

    #[test]
    fn a_collapsed_mark_the_bins_contradict_misplaces_no_value() {
        let mut s = LatencySketch::new();
        s.add(100.0).unwrap();
        s.add(120.0).unwrap();
        let form = serde_json::to_value(&s).unwrap();
        let (offset, min_key) = (&form["store"]["offset"], &form["store"]["min_key"]);
        assert_ne!(offset, min_key);
        // Marked as it is, and with its bins moved to start at its lowest key.
        let mut starting_at_min = form.clone();
        let skip = min_key.as_u64().unwrap() - offset.as_u64().unwrap();
        let store = &mut starting_at_min["store"];
        let bins = store["bins"].as_array_mut().unwrap();
        bins.drain(..usize::try_from(skip).unwrap());
        store["offset"] = store["min_key"].clone();
        s.add(10.0).unwrap();
        for (i, mut form) in [form, starting_at_min].into_iter().enumerate() {
            form["store"]["is_collapsed"] = true.into();
            let mut back: LatencySketch = serde_json::from_value(form).unwrap();
            back.add(10.0).unwrap();
            let low = back.quantile(0.01).unwrap();
            assert!((low - 10.0).abs() <= 10.0 * 0.0101, "case {i}: {low}");
            assert_eq!(back, s, "case {i}");
            let json = serde_json::to_string(&back).unwrap();
            let again: LatencySketch = serde_json::from_str(&json).expect(&json);
            assert_eq!(again, s, "case {i}");
        }
    }

    #[test]
    fn sketches_of_any_range_read_back_whole() {
        let of = |values: &[f64]| {
            let mut s = LatencySketch::new();
            for v in values {
                s.add(*v).unwrap();
            }
            s
        };
        // Only zeros; one value; a range so wide that the lowest bins collapse; merges.
        let collapsed = of(&[0.01, 3.0, 1e17]);
        let form = serde_json::to_value(&collapsed).unwrap();
        assert_eq!(form["store"]["is_collapsed"], true);
        let back: LatencySketch = serde_json::from_value(form).unwrap();
        let again = serde_json::to_value(&back).unwrap();
        assert_eq!(
            again["store"]["is_collapsed"], true,
            "a collapsed store stays marked"
        );
        // A merge keeps the collapsed bins but not the store's `is_collapsed` flag.
        let mut merged = of(&[1.0]);
        merged.merge(&of(&[3e16, 0.003])).unwrap();
        let mut with_zero = of(&[0.0, 7.0]);
        with_zero.merge(&collapsed).unwrap();
        for s in [
            of(&[0.0, 0.0005]),
            of(&[42.0]),
            collapsed,
            merged,
            with_zero,
        ] {
            let back: LatencySketch =
                serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
            assert_eq!(back, s);
        }
    }

    proptest::proptest! {
        /// Every sketch built by adding and merging, over any range of values (zeros, values
        /// below the smallest bin, values wide enough apart to collapse the lowest bins), reads
        /// back whole: the checks on load refuse no sketch that could have been made.
        #[test]
        fn every_sketch_made_reads_back_whole(
            parts in proptest::collection::vec(
                proptest::collection::vec((-12.0f64..18.0, 1u64..1_000), 0..20),
                1..4,
            ),
        ) {
            let mut whole = LatencySketch::new();
            for part in parts {
                let mut s = LatencySketch::new();
                for (exp, n) in part {
                    // Powers of ten from 1e-12 (the zero bin) to 1e18, and exact zeros.
                    let v = if exp < -11.0 { 0.0 } else { 10f64.powf(exp) };
                    s.add_n(v, n).unwrap();
                }
                whole.merge(&s).unwrap();
                let back: LatencySketch =
                    serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
                proptest::prop_assert_eq!(back, s);
            }
            let back: LatencySketch =
                serde_json::from_str(&serde_json::to_string(&whole).unwrap()).unwrap();
            proptest::prop_assert_eq!(back, whole);
        }
    }

    #[test]
    fn serde_round_trips_including_empty() {
        let empty = LatencySketch::new();
        let json = serde_json::to_string(&empty).unwrap();
        assert_eq!(json, "null");
        assert_eq!(serde_json::from_str::<LatencySketch>(&json).unwrap(), empty);
        let mut s = LatencySketch::new();
        s.add_n(12.5, 3).unwrap();
        s.add(250.0).unwrap();
        let back: LatencySketch =
            serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    /// A sketch read back that is refused names the field that is wrong, with its value, by
    /// the name the document gives it.
    #[test]
    fn a_refused_sketch_names_the_field_at_fault() {
        let e = edited(|v| v["sum"] = (-1.0).into())
            .unwrap_err()
            .to_string();
        assert!(e.contains("latencySketch.sum `-1`"), "{e}");
        let e = edited(|v| v["max"] = (-5.0).into())
            .unwrap_err()
            .to_string();
        assert!(e.contains("latencySketch.max `-5`"), "{e}");
        let e = edited(|v| {
            let bins = v["store"]["bins"].as_array_mut().unwrap();
            bins.resize(2_049, 0.into());
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("latencySketch.store.bins `2049 bins`"), "{e}");
    }
}
