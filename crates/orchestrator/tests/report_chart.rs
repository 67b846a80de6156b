//! Timeline charts of real reports from simulated deployments (`charts` feature): a promoted
//! canary, a rolled-back canary, a blue-green switch and a first install each render three
//! panels, a legend naming both arms and the markers of their decisions; windows without data
//! break the lines.

use crate::sim_fleet;

use serin_orchestrator::{ChartOptions, Orchestrator, Outcome, Report, StrategyKind};
use serin_signals::Arm;
use sim_fleet::deploy;

/// The canary's colour in the SVG (an orange), as plotters writes it.
const CANARY_STROKE: &str = "stroke=\"#E68C00\"";
/// What a panel without data says.
const NO_DATA: &str = "no data in any window";
const PANELS: [&str; 3] = [
    "traffic weight per arm (%)",
    "error rate per arm (%)",
    "p99 latency per arm (ms)",
];

/// A simulated fleet where 1.0.0 and 1.1.0 make 0.5% errors and 1.2.0 makes 25%; `installed`
/// is running when it is returned (or nothing, for `None`).
async fn fleet(seed: u64, installed: Option<StrategyKind>) -> Orchestrator {
    let (_world, o) = sim_fleet::fleet(seed, 0.25);
    if let Some(strategy) = installed {
        let r = deploy(&o, "1.0.0", strategy).await;
        assert_eq!(r.outcome, Some(Outcome::Succeeded), "{r}");
    }
    o
}

fn render(report: &Report) -> String {
    let svg = report.render_svg(&ChartOptions::default()).expect("render");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    for panel in PANELS {
        assert!(svg.contains(panel), "panel `{panel}` missing");
    }
    svg
}

/// Checks that each text is written in the chart, whole (a label, a legend entry, a title).
fn assert_has(svg: &str, texts: &[&str]) {
    for t in texts {
        let whole = format!(">\n{t}\n</text>");
        assert!(svg.contains(&whole), "`{t}` missing from the chart");
    }
}

#[tokio::test(start_paused = true)]
async fn a_promoted_canary_shows_both_arms_its_steps_and_completion() {
    let o = fleet(21, Some(StrategyKind::Canary)).await;
    let r = deploy(&o, "1.1.0", StrategyKind::Canary).await;
    assert_eq!(r.outcome, Some(Outcome::Succeeded), "{r}");
    let svg = render(&r);
    assert_has(
        &svg,
        &[
            "web: 1.0.0 → 1.1.0 by canary — succeeded",
            "baseline 1.0.0 on stable",
            "canary 1.1.0 on canary",
            "weight step",
            "monitoring",
            "10%",
            "40%",
            "70%",
            "100%",
            "completed",
            "time since start",
        ],
    );
    assert!(!svg.contains("rolled back"));
    assert!(!svg.contains(NO_DATA));
}

#[tokio::test(start_paused = true)]
async fn a_rolled_back_canary_marks_the_rollback_and_draws_its_lone_sample_as_dots() {
    let o = fleet(22, Some(StrategyKind::Canary)).await;
    deploy(&o, "1.1.0", StrategyKind::Canary).await;
    let r = deploy(&o, "1.2.0", StrategyKind::Canary).await;
    assert!(matches!(r.outcome, Some(Outcome::RolledBack { .. })), "{r}");
    assert_eq!(r.samples.len(), 1, "the judge decides on the first window");
    let svg = render(&r);
    assert_has(
        &svg,
        &[
            "web: 1.1.0 → 1.2.0 by canary — rolled back",
            "baseline 1.1.0 on canary",
            "canary 1.2.0 on stable",
            "rollback started",
            "rollback",
            "rolled back",
        ],
    );
    // One window: a dot per arm in the error-rate and latency panels, no line.
    assert_eq!(svg.matches("<circle").count(), 4, "{svg}");
}

#[tokio::test(start_paused = true)]
async fn a_blue_green_switch_with_a_trigger_shows_the_trigger_and_the_switch_back() {
    let o = fleet(23, Some(StrategyKind::BlueGreen)).await;
    let r = deploy(&o, "1.1.0", StrategyKind::BlueGreen).await;
    assert_eq!(r.outcome, Some(Outcome::Succeeded), "{r}");
    let svg = render(&r);
    assert_has(
        &svg,
        &[
            "web: 1.0.0 → 1.1.0 by blue-green — succeeded",
            "baseline 1.0.0 on blue",
            "canary 1.1.0 on green",
            "25%",
            "50%",
            "75%",
        ],
    );
    let r = deploy(&o, "1.2.0", StrategyKind::BlueGreen).await;
    assert!(matches!(r.outcome, Some(Outcome::RolledBack { .. })), "{r}");
    let svg = render(&r);
    assert_has(
        &svg,
        &[
            "baseline 1.1.0 on green",
            "canary 1.2.0 on blue",
            "trigger fired",
            "trigger error-rate-threshold",
            "rolled back",
        ],
    );
}

#[tokio::test(start_paused = true)]
async fn a_first_install_has_no_baseline() {
    let o = fleet(24, None).await;
    let r = deploy(&o, "1.0.0", StrategyKind::Canary).await;
    assert_eq!(r.outcome, Some(Outcome::Succeeded), "{r}");
    let svg = render(&r);
    assert_has(
        &svg,
        &[
            "web: install 1.0.0 by canary — succeeded",
            "canary 1.0.0 on stable",
        ],
    );
    assert!(!svg.contains("baseline"), "nothing ran before: no baseline");
}

#[tokio::test(start_paused = true)]
async fn windows_without_data_break_the_lines_and_reports_without_samples_still_render() {
    let o = fleet(25, Some(StrategyKind::Canary)).await;
    let r = deploy(&o, "1.1.0", StrategyKind::Canary).await;
    let lines = |r: &Report| render(r).matches(CANARY_STROKE).count();
    let before = lines(&r);

    // A window in the middle of a run where the canary had no data: its error-rate and
    // latency lines each break in two (of at least two windows each, so lines, not dots).
    let mut gap = r.clone();
    let middle = (2..gap.samples.len().saturating_sub(2))
        .find(|&i| {
            let has = |j: usize| {
                gap.samples[j]
                    .arm(Arm::Canary)
                    .is_some_and(|a| a.error_rate().is_some() && a.p99_ms.is_some())
            };
            (i - 2..=i + 2).all(has)
        })
        .expect("five windows with data in a row");
    for a in &mut gap.samples[middle].arms {
        if a.arm == Arm::Canary {
            a.requests = None;
            a.errors = None;
            a.p99_ms = None;
        }
    }
    assert_eq!(lines(&gap), before + 2, "{:?}", gap.samples[middle]);

    // No samples at all: the weights and decisions remain, the data panels are empty.
    let mut bare = r.clone();
    bare.samples.clear();
    let svg = render(&bare);
    assert_has(&svg, &["40%", "completed"]);
    assert_eq!(
        svg.matches(CANARY_STROKE).count(),
        2,
        "only the legend's swatch and the weight line"
    );
    assert!(!svg.contains("<circle"));
    assert_eq!(
        svg.matches(NO_DATA).count(),
        2,
        "the error-rate and latency panels say they have no data"
    );
}

#[tokio::test(start_paused = true)]
async fn a_chart_is_written_only_as_svg_and_bad_options_change_nothing() {
    let o = fleet(26, Some(StrategyKind::Canary)).await;
    let r = deploy(&o, "1.1.0", StrategyKind::Canary).await;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("chart.svg");
    r.write_chart(&path, &ChartOptions::default().with_title("release 1.1.0"))
        .expect("write");
    let written = std::fs::read_to_string(&path).expect("read");
    assert!(written.contains("release 1.1.0") && written.contains("</svg>"));

    let png = dir.path().join("chart.png");
    let e = r
        .write_chart(&png, &ChartOptions::default())
        .expect_err("not svg");
    assert!(e.to_string().contains("*.svg"), "{e}");
    assert!(!png.exists());
    let tiny = dir.path().join("tiny.svg");
    let e = r
        .write_chart(&tiny, &ChartOptions::default().with_size(1000, 10))
        .expect_err("too small");
    assert!(e.to_string().contains("chartOptions.height"), "{e}");
    assert!(!tiny.exists());
}
