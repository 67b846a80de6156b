//! Pure placement helpers: the shared time axis, the breaks in a line where an arm had no data,
//! value ranges that end on round numbers, and rows for marker labels so that labels of
//! decisions close in time do not overlap.

use std::ops::Range;

use serin_signals::Timestamp;

/// The time axis every panel shares: seconds since the deployment started.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TimeAxis {
    span: f64,
}

impl TimeAxis {
    /// The shortest axis drawn: a deployment that ended at once still gets a readable second.
    const MIN_SPAN: f64 = 1.0;

    /// An axis from 0 to `span` seconds (at least one second).
    pub(crate) fn new(span: f64) -> Self {
        let span = if span.is_finite() && span > Self::MIN_SPAN {
            span
        } else {
            Self::MIN_SPAN
        };
        TimeAxis { span }
    }

    /// Seconds from `start` to `at` (zero for times before the start).
    pub(crate) fn offset(start: Timestamp, at: Timestamp) -> f64 {
        at.saturating_duration_since(start).as_secs_f64()
    }

    /// The axis' range in seconds.
    pub(crate) fn range(&self) -> Range<f64> {
        0.0..self.span
    }

    /// Its length in seconds.
    pub(crate) fn span(&self) -> f64 {
        self.span
    }
}

/// An offset for a tick label: `45s`, `2m`, `2m30s`, `1h`, `1h05m`. Sub-second offsets (only
/// on axes shorter than a few seconds) keep one decimal.
pub(crate) fn format_offset(secs: f64) -> String {
    if !secs.is_finite() || secs <= 0.0 {
        return "0s".to_owned();
    }
    if secs < 10.0 && secs.fract().abs() > 1e-6 {
        return format!("{secs:.1}s");
    }
    let total = secs.round() as u64;
    let (h, m, s) = (total / 3_600, (total % 3_600) / 60, total % 60);
    match (h, m, s) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

/// Tick positions for an axis of `span` seconds: multiples of the first round step (1, 2, 5,
/// 10, 15, 30 seconds; 1, 2, 5, 10, 15, 30 minutes; hours; days) that gives at most
/// `max_ticks` intervals, from zero to the end of the axis.
pub(crate) fn time_ticks(span: f64, max_ticks: usize) -> Vec<f64> {
    const STEPS: [f64; 20] = [
        0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1_800.0,
        3_600.0, 7_200.0, 10_800.0, 21_600.0, 43_200.0,
    ];
    const DAY: f64 = 86_400.0;
    if !span.is_finite() || span <= 0.0 {
        return vec![0.0];
    }
    let most = max_ticks.max(1) as f64;
    let step = STEPS
        .iter()
        .copied()
        .find(|step| span / step <= most)
        .unwrap_or_else(|| (span / most / DAY).ceil() * DAY);
    let count = (span / step + 1e-9).floor() as usize;
    (0..=count).map(|i| i as f64 * step).collect()
}

/// A value-axis label: whole numbers as they are, others with up to two decimals (`0.5ms`,
/// `2.5%`, `0.25%`), so that small scales do not print as `0`; from a million up, a mantissa
/// and an exponent (`2.5e6ms`), so that the label fits beside the axis.
pub(crate) fn format_value(v: f64, unit: &str) -> String {
    if !v.is_finite() {
        return String::new();
    }
    if v.abs() >= 1e6 {
        let text = format!("{v:.2e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
        return format!("{mantissa}e{exponent}{unit}");
    }
    if (v - v.round()).abs() < 1e-9 {
        return format!("{v:.0}{unit}");
    }
    let text = format!("{v:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}{unit}")
}

/// Splits a series into the runs between missing values: `None` (no data in that window)
/// breaks the line instead of drawing it down to zero.
pub(crate) fn split_gaps(points: &[(f64, Option<f64>)]) -> Vec<Vec<(f64, f64)>> {
    let mut runs = Vec::new();
    let mut run = Vec::new();
    for &(x, y) in points {
        match y.filter(|y| y.is_finite()) {
            Some(y) if x.is_finite() => run.push((x, y)),
            _ => {
                if !run.is_empty() {
                    runs.push(std::mem::take(&mut run));
                }
            }
        }
    }
    if !run.is_empty() {
        runs.push(run);
    }
    runs
}

/// The top of a value axis starting at zero: a little above the largest finite value, rounded
/// up to 1, 2, 2.5 or 5 times a power of ten, and never below `floor` (so a flat zero line
/// still has a scale).
pub(crate) fn upper_bound(values: impl IntoIterator<Item = f64>, floor: f64) -> f64 {
    let max = values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    let wanted = (max * 1.1).max(floor);
    if wanted.is_nan() || wanted <= 0.0 {
        return 1.0;
    }
    // Near the largest `f64`, the headroom and the rounding overflow: the axis then ends at
    // the largest `f64`, which still covers every value, rather than at infinity (which
    // nothing can be drawn against).
    let magnitude = 10_f64.powf(wanted.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|bound| *bound >= wanted * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude)
        .min(f64::MAX)
}

/// Assigns each label (its horizontal extent in pixels, in drawing order) the first of `rows`
/// rows where it does not overlap the labels already placed; `None` when every row is taken
/// there, in which case the caller draws the marker without its label.
pub(crate) fn label_rows(spans: &[(f64, f64)], rows: usize, gap: f64) -> Vec<Option<usize>> {
    let mut ends: Vec<Vec<(f64, f64)>> = vec![Vec::new(); rows];
    spans
        .iter()
        .map(|&(start, end)| {
            let row = ends.iter().position(|placed| {
                placed
                    .iter()
                    .all(|&(s, e)| end + gap <= s || start >= e + gap)
            })?;
            if let Some(placed) = ends.get_mut(row) {
                placed.push((start, end));
            }
            Some(row)
        })
        .collect()
}

/// The width in pixels a label of `text` takes at `size` pixels, as the SVG backend lays it
/// out (its estimate, about half the font size per character).
pub(crate) fn text_width(text: &str, size: f64) -> f64 {
    let em = size / 1.24 / 1.24;
    em * 0.7 * text.chars().count() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Gap splitting keeps every finite value, in order, in non-empty runs, and a run never
        /// spans a missing value.
        #[test]
        fn gaps_keep_every_value_and_only_break_at_missing_ones(
            ys in proptest::collection::vec(proptest::option::of(-1e6..1e6_f64), 0..60)
        ) {
            let points: Vec<(f64, Option<f64>)> =
                ys.iter().enumerate().map(|(i, y)| (i as f64, *y)).collect();
            let runs = split_gaps(&points);
            let flat: Vec<(f64, f64)> = runs.iter().flatten().copied().collect();
            let expected: Vec<(f64, f64)> = points
                .iter()
                .filter_map(|&(x, y)| y.map(|y| (x, y)))
                .collect();
            prop_assert_eq!(flat, expected);
            for run in &runs {
                prop_assert!(!run.is_empty());
                for pair in run.windows(2) {
                    // Consecutive in a run means consecutive in the input.
                    prop_assert_eq!(pair[1].0 - pair[0].0, 1.0);
                }
            }
        }

        /// Labels placed in the same row never overlap (nor come closer than the gap).
        #[test]
        fn labels_in_one_row_never_overlap(
            labels in proptest::collection::vec((0.0..1000.0_f64, 1.0..120.0_f64), 0..40),
            rows in 0usize..4,
        ) {
            let spans: Vec<(f64, f64)> = labels.iter().map(|&(x, w)| (x, x + w)).collect();
            let placed = label_rows(&spans, rows, 4.0);
            prop_assert_eq!(placed.len(), spans.len());
            for (i, a) in spans.iter().enumerate() {
                for (j, b) in spans.iter().enumerate().skip(i + 1) {
                    if let (Some(ra), Some(rb)) = (placed[i], placed[j]) {
                        prop_assert!(ra < rows && rb < rows);
                        if ra == rb {
                            prop_assert!(a.1 + 4.0 <= b.0 || b.1 + 4.0 <= a.0, "{a:?} {b:?}");
                        }
                    }
                }
            }
        }

        /// Ticks start at zero, stay on the axis, are evenly spaced and never too many.
        #[test]
        fn ticks_are_few_even_and_on_the_axis(span in 0.001..1e7_f64, most in 1usize..20) {
            let ticks = time_ticks(span, most);
            prop_assert_eq!(ticks.first().copied(), Some(0.0));
            prop_assert!(ticks.len() <= most + 1, "{} ticks for at most {}", ticks.len(), most);
            prop_assert!(ticks.iter().all(|&t| t <= span * (1.0 + 1e-9)));
            if let [a, b, ..] = ticks.as_slice() {
                let step = b - a;
                for pair in ticks.windows(2) {
                    prop_assert!(((pair[1] - pair[0]) - step).abs() <= step * 1e-9);
                }
            }
        }

        /// The top of a value axis is finite, at or above every value and the floor, up to the
        /// largest `f64`.
        #[test]
        fn axis_tops_cover_the_data(
            values in proptest::collection::vec(
                prop_oneof![0.0..1e9_f64, 0.0..f64::MAX],
                0..20,
            ),
            floor in 0.0..100.0_f64,
        ) {
            let top = upper_bound(values.iter().copied(), floor);
            prop_assert!(top > 0.0 && top.is_finite(), "{top}");
            prop_assert!(top >= floor);
            prop_assert!(values.iter().all(|v| *v <= top));
        }
    }

    #[test]
    fn the_time_axis_counts_seconds_from_the_start_and_is_never_empty() {
        let start = Timestamp::from_millis(1_000);
        assert_eq!(
            TimeAxis::offset(start, Timestamp::from_millis(91_500)),
            90.5
        );
        assert_eq!(TimeAxis::offset(start, Timestamp::from_millis(0)), 0.0);
        assert_eq!(TimeAxis::new(300.0).range(), 0.0..300.0);
        assert_eq!(TimeAxis::new(0.0).span(), 1.0);
        assert_eq!(TimeAxis::new(f64::NAN).span(), 1.0);
        assert_eq!(TimeAxis::new(-5.0).span(), 1.0);
    }

    #[test]
    fn ticks_fall_on_round_durations() {
        assert_eq!(
            time_ticks(45.0, 10),
            vec![0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 45.0]
        );
        assert_eq!(
            time_ticks(500.0, 10),
            vec![0.0, 60.0, 120.0, 180.0, 240.0, 300.0, 360.0, 420.0, 480.0]
        );
        assert_eq!(time_ticks(4.0 * 3_600.0 + 10.0, 10).len(), 9);
        assert_eq!(time_ticks(1.0, 10).len(), 11);
        assert_eq!(time_ticks(0.0, 10), vec![0.0]);
        assert_eq!(time_ticks(f64::NAN, 10), vec![0.0]);
        let days = time_ticks(30.0 * 86_400.0, 10);
        assert!(days.len() <= 11 && days.len() >= 5, "{days:?}");
        assert!(days.iter().all(|t| t % 86_400.0 == 0.0));
    }

    #[test]
    fn tick_labels_read_as_durations() {
        assert_eq!(format_offset(0.0), "0s");
        assert_eq!(format_offset(-3.0), "0s");
        assert_eq!(format_offset(0.5), "0.5s");
        assert_eq!(format_offset(45.0), "45s");
        assert_eq!(format_offset(120.0), "2m");
        assert_eq!(format_offset(150.0), "2m30s");
        assert_eq!(format_offset(3_600.0), "1h");
        assert_eq!(format_offset(3_900.0), "1h05m");
        assert_eq!(format_offset(14_400.0), "4h");
    }

    #[test]
    fn value_labels_keep_the_decimals_small_scales_need() {
        assert_eq!(format_value(0.0, "ms"), "0ms");
        assert_eq!(format_value(200.0, "ms"), "200ms");
        assert_eq!(format_value(0.5, "ms"), "0.5ms");
        assert_eq!(format_value(2.5, "%"), "2.5%");
        assert_eq!(format_value(0.25, "%"), "0.25%");
        assert_eq!(format_value(1.0 / 3.0, "%"), "0.33%");
        assert_eq!(format_value(f64::NAN, "%"), "");
        // Large values keep to a few characters.
        assert_eq!(format_value(999_999.0, "ms"), "999999ms");
        assert_eq!(format_value(2_500_000.0, "ms"), "2.5e6ms");
        assert_eq!(format_value(1e7, "ms"), "1e7ms");
        assert_eq!(format_value(f64::MAX, "ms"), "1.8e308ms");
    }

    #[test]
    fn missing_values_break_the_line_and_are_not_drawn_as_zero() {
        let points = [
            (0.0, Some(1.0)),
            (1.0, Some(2.0)),
            (2.0, None),
            (3.0, Some(0.0)),
            (4.0, Some(f64::NAN)),
            (5.0, Some(4.0)),
            (6.0, Some(5.0)),
        ];
        assert_eq!(
            split_gaps(&points),
            vec![
                vec![(0.0, 1.0), (1.0, 2.0)],
                vec![(3.0, 0.0)],
                vec![(5.0, 4.0), (6.0, 5.0)],
            ]
        );
        assert!(split_gaps(&[]).is_empty());
        assert!(split_gaps(&[(0.0, None), (1.0, None)]).is_empty());
        assert_eq!(split_gaps(&[(2.0, Some(7.0))]), vec![vec![(2.0, 7.0)]]);
    }

    #[test]
    fn value_axes_end_on_round_numbers_above_the_data() {
        assert_eq!(upper_bound([0.4, 3.2], 1.0), 5.0);
        assert_eq!(upper_bound([9.5], 1.0), 20.0);
        assert_eq!(upper_bound([160.0, 170.0], 1.0), 200.0);
        assert_eq!(upper_bound([2.2], 0.0), 2.5);
        assert_eq!(upper_bound([], 1.0), 1.0);
        assert_eq!(upper_bound([f64::NAN, f64::INFINITY], 1.0), 1.0);
        assert_eq!(upper_bound([0.0], 0.0), 1.0);
        assert_eq!(upper_bound([100.0], 100.0), 200.0);
        // Where the headroom would overflow, the axis still covers the value.
        assert_eq!(upper_bound([1e300, f64::MAX], 1.0), f64::MAX);
        assert_eq!(upper_bound([1e308], 1.0), f64::MAX);
    }

    #[test]
    fn labels_close_in_time_take_the_next_row_and_give_up_when_all_are_taken() {
        let rows = label_rows(
            &[
                (0.0, 40.0),
                (20.0, 60.0),
                (30.0, 70.0),
                (35.0, 80.0),
                (100.0, 140.0),
            ],
            3,
            4.0,
        );
        assert_eq!(rows, vec![Some(0), Some(1), Some(2), None, Some(0)]);
        // A gap of less than `gap` pixels counts as an overlap.
        assert_eq!(
            label_rows(&[(0.0, 10.0), (12.0, 20.0)], 2, 4.0),
            vec![Some(0), Some(1)]
        );
        assert!(label_rows(&[], 3, 4.0).is_empty());
        assert_eq!(label_rows(&[(0.0, 1.0)], 0, 4.0), vec![None]);
    }

    #[test]
    fn text_width_grows_with_characters_not_bytes() {
        assert_eq!(text_width("→", 13.0), text_width("a", 13.0));
        assert!(text_width("rolled back", 13.0) > text_width("10%", 13.0));
    }
}
