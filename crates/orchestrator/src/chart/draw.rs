//! Draws a [`Timeline`] as SVG with plotters: a header (title, subtitle, legend), a strip of
//! decision labels, then three panels sharing the time axis — traffic weight, error rate and
//! p99 latency per arm — with the decisions as vertical lines through all three.

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::layout::{
    format_offset, format_value, label_rows, split_gaps, text_width, time_ticks, upper_bound,
};
use super::series::{ArmLines, BandKind, MarkerKind, Timeline};
use serin_signals::Arm;

/// The baseline's colour in every panel (a blue).
const BASELINE: RGBColor = RGBColor(31, 119, 180);
/// The canary's colour in every panel (an orange, the bird's own).
const CANARY: RGBColor = RGBColor(230, 140, 0);
const GRID_BOLD: RGBColor = RGBColor(215, 215, 215);
const GRID_LIGHT: RGBColor = RGBColor(238, 238, 238);
const INK: RGBColor = RGBColor(40, 40, 40);
const MUTED: RGBColor = RGBColor(100, 100, 100);

const FONT: &str = "sans-serif";
const TITLE_SIZE: f64 = 20.0;
const TEXT_SIZE: f64 = 13.0;
const LABEL_SIZE: f64 = 12.0;

/// Heights in pixels.
const HEADER: u32 = 78;
const LABEL_ROW: u32 = 15;
const LABEL_ROWS: usize = 3;
const X_AXIS: u32 = 42;
/// Widths in pixels.
const Y_AXIS: u32 = 64;
const SIDE_MARGIN: u32 = 16;
const RIGHT_MARGIN: u32 = 24;

/// The colour of an arm's lines.
pub(crate) fn arm_colour(arm: Arm) -> RGBColor {
    match arm {
        Arm::Baseline => BASELINE,
        _ => CANARY,
    }
}

/// The colour of a marker's line and label.
pub(crate) fn marker_colour(kind: MarkerKind) -> RGBColor {
    match kind {
        MarkerKind::WeightStep => RGBColor(150, 150, 150),
        MarkerKind::Anomaly => RGBColor(160, 80, 170),
        MarkerKind::TriggerFired => RGBColor(213, 94, 0),
        MarkerKind::RollbackStarted => RGBColor(200, 0, 40),
        MarkerKind::Completed => RGBColor(0, 140, 90),
        MarkerKind::RolledBack => RGBColor(110, 0, 0),
        MarkerKind::Failed => RGBColor(0, 0, 0),
    }
}

/// The shade of a phase band (drawn faint).
pub(crate) fn band_colour(kind: BandKind) -> RGBColor {
    match kind {
        BandKind::Monitoring => RGBColor(0, 140, 90),
        BandKind::Rollback => RGBColor(200, 0, 40),
    }
}

/// How strongly a band is shaded.
const BAND_OPACITY: f64 = 0.08;

/// A drawing failure, as text (plotters' error types carry the backend's).
type DrawResult<T = ()> = Result<T, String>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// One of the three panels.
struct Panel<'a> {
    y_max: f64,
    y_unit: &'a str,
    bottom: bool,
}

/// Renders `timeline` to an SVG document of `width` × `height` pixels.
pub(crate) fn render(
    timeline: &Timeline,
    title: &str,
    subtitle: &str,
    width: u32,
    height: u32,
) -> DrawResult<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let strip = LABEL_ROW * LABEL_ROWS as u32;
        let (header, rest) = root.split_vertically(HEADER + strip);
        draw_header(&header, timeline, title, subtitle)?;

        let panels_height = height.saturating_sub(HEADER + strip + X_AXIS);
        let each = panels_height / 3;
        let (top, rest) = rest.split_vertically(each);
        let (middle, bottom) = rest.split_vertically(each);

        let errors = upper_bound(
            timeline
                .arms()
                .flat_map(|a| a.error_rate.iter().filter_map(|p| p.1)),
            1.0,
        );
        let latency = upper_bound(
            timeline
                .arms()
                .flat_map(|a| a.p99_ms.iter().filter_map(|p| p.1)),
            1.0,
        );
        let weight = draw_panel(
            &top,
            timeline,
            &Panel {
                y_max: 105.0,
                y_unit: "%",
                bottom: false,
            },
            |a| a.weight.iter().map(|&(x, y)| (x, Some(y))).collect(),
        )?;
        draw_panel(
            &middle,
            timeline,
            &Panel {
                y_max: errors,
                y_unit: "%",
                bottom: false,
            },
            |a| a.error_rate.clone(),
        )?;
        draw_panel(
            &bottom,
            timeline,
            &Panel {
                y_max: latency,
                y_unit: "ms",
                bottom: true,
            },
            |a| a.p99_ms.clone(),
        )?;
        draw_marker_labels(&root, timeline, &weight, HEADER + strip)?;
        for (area, caption) in [
            (&top, "traffic weight per arm (%)"),
            (&middle, "error rate per arm (%)"),
            (&bottom, "p99 latency per arm (ms)"),
        ] {
            draw_caption(area, caption)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Title, subtitle and one legend for all panels: the arms, then the kinds of decision shown.
fn draw_header<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    timeline: &Timeline,
    title: &str,
    subtitle: &str,
) -> DrawResult {
    let left = (SIDE_MARGIN + 4) as i32;
    area.draw(&Text::new(
        title.to_owned(),
        (left, 10),
        (FONT, TITLE_SIZE)
            .into_font()
            .style(FontStyle::Bold)
            .color(&INK),
    ))
    .map_err(err)?;
    area.draw(&Text::new(
        subtitle.to_owned(),
        (left, 36),
        (FONT, TEXT_SIZE).into_font().color(&MUTED),
    ))
    .map_err(err)?;
    let y = 60;
    let mut x = left;
    let text = (FONT, TEXT_SIZE).into_font().color(&INK);
    for arm in timeline.arms() {
        let colour = arm_colour(arm.arm);
        area.draw(&PathElement::new(
            vec![(x, y + 6), (x + 22, y + 6)],
            colour.stroke_width(3),
        ))
        .map_err(err)?;
        area.draw(&Text::new(arm.label.clone(), (x + 28, y), text.clone()))
            .map_err(err)?;
        x += 28 + text_width(&arm.label, TEXT_SIZE) as i32 + 22;
    }
    for kind in timeline.band_kinds() {
        let colour = band_colour(kind);
        area.draw(&Rectangle::new(
            [(x, y - 1), (x + 14, y + 13)],
            colour.mix(BAND_OPACITY * 2.0).filled(),
        ))
        .map_err(err)?;
        let name = kind.legend();
        area.draw(&Text::new(name, (x + 20, y), text.clone()))
            .map_err(err)?;
        x += 20 + text_width(name, TEXT_SIZE) as i32 + 18;
    }
    for kind in timeline.marker_kinds() {
        let colour = marker_colour(kind);
        let style = colour.stroke_width(2);
        if kind == MarkerKind::WeightStep {
            area.draw(&DashedPathElement::new(
                vec![(x + 5, y - 1), (x + 5, y + 14)],
                3,
                2,
                style,
            ))
            .map_err(err)?;
        } else {
            area.draw(&PathElement::new(
                vec![(x + 5, y - 1), (x + 5, y + 14)],
                style,
            ))
            .map_err(err)?;
        }
        let name = kind.legend();
        area.draw(&Text::new(name, (x + 12, y), text.clone()))
            .map_err(err)?;
        x += 12 + text_width(name, TEXT_SIZE) as i32 + 18;
    }
    Ok(())
}

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Space above each panel's plot for its caption.
const CAPTION: u32 = 20;

/// A panel's caption, left-aligned above its plot on a white ground (so the ticks of the
/// decision labels above pass behind it).
fn draw_caption<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, caption: &str) -> DrawResult {
    let x = (SIDE_MARGIN + Y_AXIS) as i32 + 4;
    let width = text_width(caption, TEXT_SIZE + 1.0) as i32 + 8;
    area.draw(&Rectangle::new(
        [(x - 4, 1), (x + width, CAPTION as i32 - 1)],
        WHITE.filled(),
    ))
    .map_err(err)?;
    area.draw(&Text::new(
        caption.to_owned(),
        (x, 4),
        (FONT, TEXT_SIZE + 1.0).into_font().color(&INK),
    ))
    .map_err(err)
}

/// One panel: grid and axes, the decision lines, then each arm's runs of data (a lone point
/// between gaps as a dot, so a single sample still shows).
fn draw_panel<'a, DB: DrawingBackend + 'a>(
    area: &'a DrawingArea<DB, Shift>,
    timeline: &Timeline,
    panel: &Panel<'_>,
    points: impl Fn(&ArmLines) -> Vec<(f64, Option<f64>)>,
) -> DrawResult<Chart<'a, DB>> {
    let mut chart = ChartBuilder::on(area)
        .margin_left(SIDE_MARGIN)
        .margin_right(RIGHT_MARGIN)
        .margin_top(CAPTION)
        .x_label_area_size(if panel.bottom { X_AXIS } else { 0 })
        .y_label_area_size(Y_AXIS)
        .build_cartesian_2d(timeline.axis.range(), 0.0..panel.y_max)
        .map_err(err)?;
    let unit = panel.y_unit;
    let y_format = move |v: &f64| format_value(*v, unit);
    // The time grid and its labels are drawn here rather than by plotters, so that ticks fall
    // on round durations (`time_ticks`).
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_labels(5)
        .bold_line_style(GRID_BOLD)
        .light_line_style(GRID_LIGHT)
        .axis_style(MUTED)
        .label_style((FONT, LABEL_SIZE).into_font().color(&INK))
        .y_label_formatter(&y_format)
        .draw()
        .map_err(err)?;
    let ticks = time_ticks(timeline.axis.span(), 10);
    chart
        .draw_series(
            ticks
                .iter()
                .map(|&t| PathElement::new(vec![(t, 0.0), (t, panel.y_max)], GRID_BOLD)),
        )
        .map_err(err)?;
    if panel.bottom {
        let label = (FONT, LABEL_SIZE)
            .into_font()
            .color(&INK)
            .pos(Pos::new(HPos::Center, VPos::Top));
        // Backend coordinates, made relative to this panel's area.
        let (bx, by) = area.get_base_pixel();
        let at = |t: f64| {
            let (x, y) = chart.backend_coord(&(t, 0.0));
            (x - bx, y - by)
        };
        for &t in &ticks {
            let (x, y) = at(t);
            area.draw(&Text::new(format_offset(t), (x, y + 6), label.clone()))
                .map_err(err)?;
        }
        let (left, y) = at(0.0);
        let (right, _) = at(timeline.axis.span());
        area.draw(&Text::new(
            "time since start",
            ((left + right) / 2, y + 24),
            (FONT, TEXT_SIZE)
                .into_font()
                .color(&MUTED)
                .pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(err)?;
    }

    chart
        .draw_series(timeline.bands.iter().map(|b| {
            Rectangle::new(
                [(b.from, 0.0), (b.to, panel.y_max)],
                band_colour(b.kind).mix(BAND_OPACITY).filled(),
            )
        }))
        .map_err(err)?;
    for m in &timeline.markers {
        let colour = marker_colour(m.kind);
        let line = vec![(m.at, 0.0), (m.at, panel.y_max)];
        if m.kind == MarkerKind::WeightStep {
            chart
                .draw_series(std::iter::once(DashedPathElement::new(
                    line,
                    4,
                    3,
                    colour.stroke_width(1),
                )))
                .map_err(err)?;
        } else {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    line,
                    colour.stroke_width(2),
                )))
                .map_err(err)?;
        }
    }
    let mut observed = false;
    for arm in timeline.arms() {
        let colour = arm_colour(arm.arm);
        for run in split_gaps(&points(arm)) {
            observed = true;
            if let [only] = run.as_slice() {
                chart
                    .draw_series(std::iter::once(Circle::new(*only, 4, colour.filled())))
                    .map_err(err)?;
            } else {
                chart
                    .draw_series(LineSeries::new(run, colour.stroke_width(2)))
                    .map_err(err)?;
            }
        }
    }
    if !observed {
        // Say so, rather than leave an empty panel to be read as zero.
        let (bx, by) = area.get_base_pixel();
        let (x, y) = chart.backend_coord(&(timeline.axis.span() / 2.0, panel.y_max / 2.0));
        area.draw(&Text::new(
            NO_DATA,
            (x - bx, y - by),
            (FONT, TEXT_SIZE)
                .into_font()
                .color(&MUTED)
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))
        .map_err(err)?;
    }
    Ok(chart)
}

/// The note in a panel where no arm has any data.
pub(crate) const NO_DATA: &str = "no data in any window";

/// The decisions' labels, in rows above the top panel so that labels close in time do not
/// overlap, each tied to its line by a short tick.
fn draw_marker_labels<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    timeline: &Timeline,
    chart: &Chart<'_, DB>,
    bottom: u32,
) -> DrawResult {
    let markers = &timeline.markers;
    let xs: Vec<i32> = markers
        .iter()
        .map(|m| chart.backend_coord(&(m.at, 0.0)).0)
        .collect();
    // A label that would run past the plot's right edge goes to the left of its line.
    let right =
        f64::from(chart.backend_coord(&(timeline.axis.span(), 0.0)).0) + f64::from(RIGHT_MARGIN);
    let spans: Vec<(f64, f64)> = markers
        .iter()
        .zip(&xs)
        .map(|(m, &x)| {
            let x = f64::from(x);
            let w = 4.0 + text_width(&m.label, LABEL_SIZE);
            if x + w > right {
                (x - w, x)
            } else {
                (x, x + w)
            }
        })
        .collect();
    let rows = label_rows(&spans, LABEL_ROWS, 4.0);
    // Rows are filled from the bottom up, so the first row sits right above the panel.
    for (((m, &x), row), span) in markers.iter().zip(&xs).zip(rows).zip(&spans) {
        let Some(row) = row else { continue };
        let colour = marker_colour(m.kind);
        let y = bottom as i32 - LABEL_ROW as i32 * (row as i32 + 1);
        root.draw(&PathElement::new(
            vec![(x, y + 2), (x, (bottom + CAPTION) as i32)],
            colour.stroke_width(1),
        ))
        .map_err(err)?;
        root.draw(&Text::new(
            m.label.clone(),
            (
                span.0 as i32 + if span.0 < f64::from(x) { 0 } else { 3 },
                y + 1,
            ),
            (FONT, LABEL_SIZE).into_font().color(&colour),
        ))
        .map_err(err)?;
    }
    Ok(())
}
