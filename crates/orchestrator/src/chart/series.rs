//! What a chart shows, taken from a [`Report`]: per arm, its traffic weight over time (from the
//! weight events, as steps), its error rate and p99 latency per observation window (from the
//! samples, with gaps where it had no data), and the decisions to mark.

use serin_signals::Arm;

use super::layout::TimeAxis;
use crate::event::{EventKind, Phase};
use crate::report::Report;

/// One arm's lines. Times are seconds since the start.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ArmLines {
    /// Which arm.
    pub(crate) arm: Arm,
    /// `baseline 1.0.0 on stable`.
    pub(crate) label: String,
    /// Its share of traffic in percent, as steps (two points per change).
    pub(crate) weight: Vec<(f64, f64)>,
    /// Errors per request in percent at the end of each window; `None` without data.
    pub(crate) error_rate: Vec<(f64, Option<f64>)>,
    /// 99th percentile latency in milliseconds at the end of each window; `None` without data.
    pub(crate) p99_ms: Vec<(f64, Option<f64>)>,
}

/// The kinds of decision a chart marks, each with its own colour and legend entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum MarkerKind {
    /// The new version's weight changed.
    WeightStep,
    /// A judge or trigger saw something wrong that did not roll back (yet).
    Anomaly,
    /// A rollback trigger fired.
    TriggerFired,
    /// Traffic started going back to the old version.
    RollbackStarted,
    /// The new version serves all traffic.
    Completed,
    /// The old version serves all traffic again.
    RolledBack,
    /// The deployment failed or was blocked.
    Failed,
}

impl MarkerKind {
    /// Its legend entry.
    pub(crate) fn legend(self) -> &'static str {
        match self {
            MarkerKind::WeightStep => "weight step",
            MarkerKind::Anomaly => "anomaly",
            MarkerKind::TriggerFired => "trigger fired",
            MarkerKind::RollbackStarted => "rollback started",
            MarkerKind::Completed => "completed",
            MarkerKind::RolledBack => "rolled back",
            MarkerKind::Failed => "failed",
        }
    }
}

/// A stretch of the time axis shaded by what the deployment was doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum BandKind {
    /// The new version took all traffic and the rollback triggers watched it.
    Monitoring,
    /// Traffic was going back to the old version.
    Rollback,
}

impl BandKind {
    /// Its legend entry.
    pub(crate) fn legend(self) -> &'static str {
        match self {
            BandKind::Monitoring => "monitoring",
            BandKind::Rollback => "rollback phase",
        }
    }
}

/// One shaded stretch, in seconds since the start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Band {
    /// Where it starts.
    pub(crate) from: f64,
    /// Where it ends.
    pub(crate) to: f64,
    /// What it shows.
    pub(crate) kind: BandKind,
}

/// One decision on the time axis.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Marker {
    /// Seconds since the start.
    pub(crate) at: f64,
    /// What was decided.
    pub(crate) kind: MarkerKind,
    /// A word or two above its line (`40%`, `trigger error-rate`).
    pub(crate) label: String,
}

/// Everything the chart draws.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Timeline {
    /// The shared time axis.
    pub(crate) axis: TimeAxis,
    /// The old version's arm; absent on a first install.
    pub(crate) baseline: Option<ArmLines>,
    /// The new version's arm.
    pub(crate) canary: ArmLines,
    /// The decisions, in order.
    pub(crate) markers: Vec<Marker>,
    /// The monitoring and rollback phases, in order.
    pub(crate) bands: Vec<Band>,
}

impl Timeline {
    /// Takes the chart's content from `report`.
    pub(crate) fn of(report: &Report) -> Self {
        let start = report.started_at;
        let mut end = TimeAxis::offset(start, report.last_at);
        for e in &report.timeline {
            end = end.max(TimeAxis::offset(start, e.at));
        }
        for s in &report.samples {
            end = end.max(TimeAxis::offset(start, s.window.end()));
        }
        let axis = TimeAxis::new(end);

        // The new version's share, as steps: 0 until its first weight, then what the weight
        // events say the router applied. A rollback takes it to 0 when its switch back was
        // applied (`weightChanged` 0, and `rolledBack`, which follows only a switch that took),
        // not when it starts: the chart shows the split in force, never the one asked for.
        let mut steps: Vec<(f64, f64)> = vec![(0.0, 0.0)];
        let mut markers = Vec::new();
        let mut bands = Vec::new();
        let mut open: Option<(f64, BandKind)> = None;
        for e in &report.timeline {
            let at = TimeAxis::offset(start, e.at);
            if let EventKind::PhaseChanged { phase } = &e.kind {
                if let Some((from, kind)) = open.take() {
                    bands.push(Band { from, to: at, kind });
                }
                open = match phase {
                    Phase::Monitoring => Some((at, BandKind::Monitoring)),
                    Phase::Rollback => Some((at, BandKind::Rollback)),
                    _ => None,
                };
            }
            let (weight, marker) = match &e.kind {
                EventKind::WeightChanged { percent, .. } => (
                    Some(*percent),
                    Some((MarkerKind::WeightStep, format!("{percent}%"))),
                ),
                EventKind::Anomaly { source, .. } => (
                    None,
                    Some((MarkerKind::Anomaly, format!("anomaly {source}"))),
                ),
                EventKind::TriggerFired { event } => (
                    None,
                    Some((
                        MarkerKind::TriggerFired,
                        format!("trigger {}", event.trigger),
                    )),
                ),
                // Only a marker: a rollback starts before its switch back, which may fail (the
                // deployment then ends `failed` with the canary still taking its share). The
                // split that took effect is announced by `weightChanged`, or by `rolledBack`.
                EventKind::RollbackStarted { .. } => {
                    (None, Some((MarkerKind::RollbackStarted, "rollback".into())))
                }
                EventKind::RolledBack { .. } => (
                    Some(0.0),
                    Some((MarkerKind::RolledBack, "rolled back".into())),
                ),
                EventKind::Completed { .. } => {
                    (None, Some((MarkerKind::Completed, "completed".into())))
                }
                EventKind::Failed { .. } => (None, Some((MarkerKind::Failed, "failed".into()))),
                EventKind::Blocked { .. } => (None, Some((MarkerKind::Failed, "blocked".into()))),
                _ => (None, None),
            };
            if let Some(w) = weight.filter(|w| w.is_finite()) {
                let last = steps.last().map_or(0.0, |p| p.1);
                if w != last {
                    steps.push((at, last));
                    steps.push((at, w.clamp(0.0, 100.0)));
                }
            }
            if let Some((kind, label)) = marker {
                let label = super::printable(&label);
                markers.push(Marker { at, kind, label });
            }
        }
        if let Some((from, kind)) = open {
            bands.push(Band {
                from,
                to: axis.span(),
                kind,
            });
        }
        let last = steps.last().map_or(0.0, |p| p.1);
        steps.push((axis.span(), last));

        let lines = |arm: Arm, label: String, weight: Vec<(f64, f64)>| {
            let mut error_rate = Vec::with_capacity(report.samples.len());
            let mut p99_ms = Vec::with_capacity(report.samples.len());
            for s in &report.samples {
                let at = TimeAxis::offset(start, s.window.end());
                let a = s.arm(arm);
                // More errors than requests cannot be (a report edited by hand): no data,
                // rather than an error rate past 100% that flattens every other line.
                let rate = a.and_then(|a| a.error_rate()).filter(|r| *r <= 1.0);
                error_rate.push((at, rate.map(|r| r * 100.0)));
                // A latency that cannot be (negative or not finite, in a report edited by
                // hand) is no data rather than a point far off the axis.
                let p99 = a.and_then(|a| a.p99_ms);
                p99_ms.push((at, p99.filter(|v| v.is_finite() && *v >= 0.0)));
            }
            ArmLines {
                arm,
                label,
                weight,
                error_rate,
                p99_ms,
            }
        };
        let canary = lines(
            Arm::Canary,
            format!("canary {} on {}", report.to.version, report.to.track),
            steps.clone(),
        );
        let baseline = report.from.as_ref().map(|from| {
            lines(
                Arm::Baseline,
                format!("baseline {} on {}", from.version, from.track),
                steps.iter().map(|&(t, w)| (t, 100.0 - w)).collect(),
            )
        });
        Timeline {
            axis,
            baseline,
            canary,
            markers,
            bands,
        }
    }

    /// The arms, baseline first.
    pub(crate) fn arms(&self) -> impl Iterator<Item = &ArmLines> {
        self.baseline.iter().chain(std::iter::once(&self.canary))
    }

    /// The kinds of band present, in legend order.
    pub(crate) fn band_kinds(&self) -> Vec<BandKind> {
        let mut kinds: Vec<BandKind> = self
            .bands
            .iter()
            .filter(|b| b.to > b.from)
            .map(|b| b.kind)
            .collect();
        kinds.sort();
        kinds.dedup();
        kinds
    }

    /// The kinds of marker present, in legend order.
    pub(crate) fn marker_kinds(&self) -> Vec<MarkerKind> {
        let mut kinds: Vec<MarkerKind> = self.markers.iter().map(|m| m.kind).collect();
        kinds.sort();
        kinds.dedup();
        kinds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(from: &str, events: &str, samples: &str) -> Report {
        let json = format!(
            r#"{{"deployment":"web-1","service":"web","strategy":"canary","from":{from},
            "to":{{"track":"canary","version":"1.1.0"}},"outcome":null,
            "startedAt":1000,"lastAt":61000,"backup":null,"timeline":[{events}],
            "samples":[{samples}]}}"#
        );
        serde_json::from_str(&json).expect("report")
    }

    fn event(seq: u64, at_ms: u64, kind: &str) -> String {
        format!(
            r#"{{"deployment":"web-1","service":"web","seq":{seq},"at":{at_ms},"kind":{kind}}}"#
        )
    }

    #[test]
    fn weights_are_steps_that_fall_to_zero_once_rolled_back_and_the_baseline_takes_the_rest() {
        let events = [
            event(
                0,
                11_000,
                r#"{"type":"weightChanged","track":"canary","percent":10.0}"#,
            ),
            event(
                1,
                31_000,
                r#"{"type":"weightChanged","track":"canary","percent":40.0}"#,
            ),
            event(2, 41_000, r#"{"type":"rollbackStarted","reason":"x"}"#),
            event(3, 41_000, r#"{"type":"phaseChanged","phase":"rollback"}"#),
            event(4, 51_000, r#"{"type":"rolledBack","reason":"x"}"#),
            event(5, 51_000, r#"{"type":"phaseChanged","phase":"finished"}"#),
        ]
        .join(",");
        let t = Timeline::of(&report(
            r#"{"track":"stable","version":"1.0.0"}"#,
            &events,
            "",
        ));
        assert_eq!(t.axis.span(), 60.0);
        assert_eq!(
            t.canary.weight,
            vec![
                (0.0, 0.0),
                (10.0, 0.0),
                (10.0, 10.0),
                (30.0, 10.0),
                (30.0, 40.0),
                (50.0, 40.0),
                (50.0, 0.0),
                (60.0, 0.0),
            ]
        );
        let baseline = t.baseline.as_ref().expect("baseline");
        assert_eq!(baseline.label, "baseline 1.0.0 on stable");
        assert_eq!(baseline.weight.get(2), Some(&(10.0, 90.0)));
        let labels: Vec<(f64, &str)> = t.markers.iter().map(|m| (m.at, m.label.as_str())).collect();
        assert_eq!(
            labels,
            vec![
                (10.0, "10%"),
                (30.0, "40%"),
                (40.0, "rollback"),
                (50.0, "rolled back")
            ]
        );
        assert_eq!(
            t.bands,
            vec![Band {
                from: 40.0,
                to: 50.0,
                kind: BandKind::Rollback
            }]
        );
        assert_eq!(t.band_kinds(), vec![BandKind::Rollback]);
        assert_eq!(
            t.marker_kinds(),
            vec![
                MarkerKind::WeightStep,
                MarkerKind::RollbackStarted,
                MarkerKind::RolledBack
            ]
        );
    }

    #[test]
    fn a_rollback_whose_switch_back_failed_leaves_the_canary_its_share() {
        // The switch back failed twice: no `weightChanged 0`, no `rolledBack`, the end is
        // `failed`, and the canary still takes 40% of the traffic.
        let events = [
            event(
                0,
                31_000,
                r#"{"type":"weightChanged","track":"canary","percent":40.0}"#,
            ),
            event(1, 41_000, r#"{"type":"rollbackStarted","reason":"x"}"#),
            event(2, 41_000, r#"{"type":"phaseChanged","phase":"rollback"}"#),
            event(3, 51_000, r#"{"type":"failed","reason":"router down"}"#),
        ]
        .join(",");
        let t = Timeline::of(&report(
            r#"{"track":"stable","version":"1.0.0"}"#,
            &events,
            "",
        ));
        assert_eq!(
            t.canary.weight,
            vec![(0.0, 0.0), (30.0, 0.0), (30.0, 40.0), (60.0, 40.0)]
        );
        let baseline = t.baseline.as_ref().expect("baseline");
        assert_eq!(baseline.weight.last(), Some(&(60.0, 60.0)));
        // A switch back that took is announced, and the line falls there.
        let switched = [
            event(
                0,
                31_000,
                r#"{"type":"weightChanged","track":"canary","percent":40.0}"#,
            ),
            event(1, 41_000, r#"{"type":"rollbackStarted","reason":"x"}"#),
            event(
                2,
                45_000,
                r#"{"type":"weightChanged","track":"canary","percent":0.0}"#,
            ),
            event(3, 51_000, r#"{"type":"rolledBack","reason":"x"}"#),
        ]
        .join(",");
        let t = Timeline::of(&report(
            r#"{"track":"stable","version":"1.0.0"}"#,
            &switched,
            "",
        ));
        assert_eq!(
            t.canary.weight,
            vec![
                (0.0, 0.0),
                (30.0, 0.0),
                (30.0, 40.0),
                (44.0, 40.0),
                (44.0, 0.0),
                (60.0, 0.0)
            ]
        );
    }

    #[test]
    fn the_monitoring_phase_is_a_band_to_its_end_or_the_axis_end() {
        let events = [
            event(0, 21_000, r#"{"type":"phaseChanged","phase":"monitoring"}"#),
            event(1, 41_000, r#"{"type":"phaseChanged","phase":"completion"}"#),
            event(2, 51_000, r#"{"type":"phaseChanged","phase":"monitoring"}"#),
        ]
        .join(",");
        let t = Timeline::of(&report("null", &events, ""));
        let spans: Vec<(f64, f64)> = t.bands.iter().map(|b| (b.from, b.to)).collect();
        assert_eq!(spans, vec![(20.0, 40.0), (50.0, 60.0)]);
        assert_eq!(t.band_kinds(), vec![BandKind::Monitoring]);
    }

    #[test]
    fn samples_give_percent_error_rates_and_p99_with_none_where_an_arm_had_no_data() {
        let samples = r#"
            {"window":{"start":1000,"end":11000},"weightPercent":10.0,"arms":[
                {"arm":"baseline","version":"1.0.0","track":"stable","requests":900,"errors":9,"p99Ms":120.0},
                {"arm":"canary","version":"1.1.0","track":"canary","requests":100,"errors":2}]},
            {"window":{"start":11000,"end":21000},"weightPercent":10.0,"arms":[
                {"arm":"baseline","version":"1.0.0","track":"stable","requests":0,"errors":0},
                {"arm":"canary","version":"1.1.0","track":"canary","requests":100,"errors":0,"p99Ms":80.5}]}"#;
        let t = Timeline::of(&report(
            r#"{"track":"stable","version":"1.0.0"}"#,
            "",
            samples,
        ));
        let baseline = t.baseline.as_ref().expect("baseline");
        assert_eq!(baseline.error_rate, vec![(10.0, Some(1.0)), (20.0, None)]);
        assert_eq!(baseline.p99_ms, vec![(10.0, Some(120.0)), (20.0, None)]);
        assert_eq!(
            t.canary.error_rate,
            vec![(10.0, Some(2.0)), (20.0, Some(0.0))]
        );
        assert_eq!(t.canary.p99_ms, vec![(10.0, None), (20.0, Some(80.5))]);
        assert!(t.markers.is_empty());
        // With nothing before it, there is no baseline and the canary line is its own.
        let install = Timeline::of(&report("null", "", samples));
        assert!(install.baseline.is_none());
        assert_eq!(install.arms().count(), 1);
        assert_eq!(install.canary.label, "canary 1.1.0 on canary");
    }

    #[test]
    fn values_that_cannot_be_are_no_data_and_the_chart_still_renders() {
        // A report edited by hand: plotters panics on a point this far off the axis.
        let samples = r#"
            {"window":{"start":1000,"end":11000},"weightPercent":10.0,"arms":[
                {"arm":"baseline","version":"1.0.0","track":"stable","requests":9,"errors":900,"p99Ms":-1e300},
                {"arm":"canary","version":"1.1.0","track":"canary","requests":100,"errors":2,"p99Ms":80.5}]}"#;
        let r = report(r#"{"track":"stable","version":"1.0.0"}"#, "", samples);
        let t = Timeline::of(&r);
        let baseline = t.baseline.expect("baseline");
        assert_eq!(baseline.p99_ms, vec![(10.0, None)]);
        assert_eq!(
            baseline.error_rate,
            vec![(10.0, None)],
            "more errors than requests"
        );
        assert_eq!(t.canary.p99_ms, vec![(10.0, Some(80.5))]);
        r.render_svg(&crate::ChartOptions::default())
            .expect("render");
    }

    #[test]
    fn a_latency_near_the_largest_f64_gets_an_axis_that_reaches_it() {
        // The axis once ended at 1ms here (its headroom overflowed), with the line off the top.
        let samples = r#"
            {"window":{"start":1000,"end":11000},"weightPercent":10.0,"arms":[
                {"arm":"canary","version":"1.1.0","track":"canary","requests":100,"errors":2,"p99Ms":1.7e308}]},
            {"window":{"start":11000,"end":21000},"weightPercent":10.0,"arms":[
                {"arm":"canary","version":"1.1.0","track":"canary","requests":100,"errors":2,"p99Ms":80.5}]}"#;
        let r = report(r#"{"track":"stable","version":"1.0.0"}"#, "", samples);
        let svg = r
            .render_svg(&crate::ChartOptions::default())
            .expect("render");
        assert!(svg.contains("\n1.5e308ms\n"), "{svg}");
    }
}
