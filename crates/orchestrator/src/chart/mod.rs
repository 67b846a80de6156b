//! Timeline charts of a [`Report`] (the `charts` feature): what a person looks at to see, at a
//! glance, how traffic moved and what each version did with it.
//!
//! Three stacked panels share one time axis (seconds since the deployment started): the traffic
//! weight of each arm, its error rate and its p99 latency, per observation window as journalled
//! in [`Report::samples`]. The baseline (old version) and the canary (new version) keep one
//! colour each in every panel. Decisions are vertical lines through all three panels, labelled
//! above the first: weight steps (dashed), anomalies, fired triggers, the start of a rollback,
//! and the end (completed, rolled back, failed); the monitoring and rollback phases are faint
//! bands behind the data. A window in which an arm had no data breaks its line rather than
//! drawing it at zero; a lone window between gaps is a dot, and a panel with no data at all
//! says so. A first install has no baseline, and a report without samples still shows its
//! weights and decisions.
//!
//! Only SVG is written: its text is laid out by whatever displays it, so rendering needs no
//! font files or font libraries. A bitmap needs glyphs: plotters draws them either through the
//! system's font libraries (its `ttf` feature: fontconfig and FreeType) or from fonts
//! registered at run time (its `ab_glyph` feature), and the latter, once enabled anywhere in a
//! build, makes *every* text of every backend, SVG included, fail unless a font was registered
//! first, process-wide and for the life of the process. Neither is a fair price for a library
//! feature, so a PNG is left to any SVG renderer (`rsvg-convert -o chart.png chart.svg`).

mod draw;
mod layout;
mod series;

use std::path::Path;

use crate::error::{Error, Result};
use crate::report::Report;
use crate::state::Outcome;

use series::Timeline;

/// The size and title of a chart. `ChartOptions::default()` is 1000 × 780 pixels, titled
/// from the report.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChartOptions {
    /// Width in pixels (480 to 8000).
    pub width: u32,
    /// Height in pixels (360 to 8000).
    pub height: u32,
    /// A title instead of the one made from the report (service, versions, outcome).
    pub title: Option<String>,
}

impl Default for ChartOptions {
    fn default() -> Self {
        ChartOptions {
            width: 1000,
            height: 780,
            title: None,
        }
    }
}

impl ChartOptions {
    const MIN_WIDTH: u32 = 480;
    const MIN_HEIGHT: u32 = 360;
    const MAX_SIDE: u32 = 8000;

    /// Sets the size in pixels (checked when rendering).
    pub fn with_size(mut self, width: u32, height: u32) -> Self {
        self.width = width;
        self.height = height;
        self
    }

    /// Sets the title.
    pub fn with_title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// Checks the size: small enough to be sane, big enough for three readable panels.
    pub fn validate(&self) -> Result<()> {
        if !(Self::MIN_WIDTH..=Self::MAX_SIDE).contains(&self.width) {
            return Err(Error::invalid(
                "chartOptions.width",
                self.width,
                format!(
                    "must be between {} and {} pixels",
                    Self::MIN_WIDTH,
                    Self::MAX_SIDE
                ),
            ));
        }
        if !(Self::MIN_HEIGHT..=Self::MAX_SIDE).contains(&self.height) {
            return Err(Error::invalid(
                "chartOptions.height",
                self.height,
                format!(
                    "must be between {} and {} pixels",
                    Self::MIN_HEIGHT,
                    Self::MAX_SIDE
                ),
            ));
        }
        Ok(())
    }
}

impl Report {
    /// The chart's title: service, versions, strategy and outcome.
    fn chart_title(&self) -> String {
        let change = match &self.from {
            Some(from) => format!("{} → {}", from.version, self.to.version),
            None => format!("install {}", self.to.version),
        };
        let outcome = match &self.outcome {
            None => "still running",
            Some(Outcome::Succeeded) => "succeeded",
            Some(Outcome::RolledBack { .. }) => "rolled back",
            Some(Outcome::Blocked { .. }) => "blocked",
            Some(Outcome::Failed { .. }) => "failed",
        };
        format!(
            "{}: {change} by {} — {outcome}",
            self.service, self.strategy
        )
    }

    /// The line under the title: the deployment, its length and why it ended as it did.
    fn chart_subtitle(&self, width: u32) -> String {
        let secs = self
            .last_at
            .saturating_duration_since(self.started_at)
            .as_secs_f64();
        let mut line = format!(
            "deployment {} · {}",
            self.deployment,
            layout::format_offset(secs)
        );
        if let Some(
            Outcome::RolledBack { reason }
            | Outcome::Blocked { reason }
            | Outcome::Failed { reason },
        ) = &self.outcome
        {
            line.push_str(" · ");
            line.push_str(reason);
        }
        // About one character per 6.5 pixels at the subtitle's size.
        crate::truncate(
            &printable(&line),
            (width.saturating_sub(40) as usize * 2) / 13,
        )
    }

    /// Renders the report's timeline chart as an SVG document (`charts` feature).
    ///
    /// Three stacked panels share the time axis (seconds since the start): traffic weight,
    /// error rate and p99 latency per arm, the baseline and the canary in one colour each
    /// throughout. Decisions (weight steps, anomalies, fired triggers, rollback, the end) are
    /// vertical lines across the panels with labels above them; a window where an arm had no
    /// data breaks its line instead of drawing zero. Only SVG is produced: its text is laid out
    /// by the viewer, so no font files are needed (convert it with any SVG renderer, such as
    /// `rsvg-convert`, for a PNG).
    ///
    /// ```
    /// use serin_orchestrator::{ChartOptions, Report};
    /// # fn report() -> Report {
    /// #     serde_json::from_str(r#"{"deployment":"web-1","service":"web","strategy":"canary",
    /// #       "from":{"track":"stable","version":"1.0.0"},"to":{"track":"canary","version":"1.1.0"},
    /// #       "outcome":{"result":"succeeded"},"startedAt":0,"lastAt":60000,"backup":null,
    /// #       "timeline":[],"samples":[]}"#).unwrap()
    /// # }
    /// let report: Report = report();
    /// let svg = report.render_svg(&ChartOptions::default())?;
    /// assert!(svg.starts_with("<svg") && svg.contains("p99 latency per arm"));
    /// assert!(report.render_svg(&ChartOptions::default().with_size(10, 10)).is_err());
    /// # Ok::<(), serin_orchestrator::Error>(())
    /// ```
    pub fn render_svg(&self, options: &ChartOptions) -> Result<String> {
        options.validate()?;
        let title = options
            .title
            .as_deref()
            .map_or_else(|| printable(&self.chart_title()), printable);
        let subtitle = self.chart_subtitle(options.width);
        draw::render(
            &Timeline::of(self),
            &title,
            &subtitle,
            options.width,
            options.height,
        )
        .map_err(|e| Error::backend("chart", &self.deployment, e))
    }

    /// Renders the chart and writes it to `path`, which must name an `.svg` file. Nothing is
    /// written when rendering fails.
    pub fn write_chart(&self, path: impl AsRef<Path>, options: &ChartOptions) -> Result<()> {
        let path = path.as_ref();
        let is_svg = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("svg"));
        if !is_svg {
            return Err(Error::invalid(
                "chart path",
                path.display(),
                "charts are written as SVG: name the file `*.svg`",
            ));
        }
        let svg = self.render_svg(options)?;
        std::fs::write(path, svg)
            .map_err(|e| Error::backend("chart file", path.display().to_string(), e))
    }
}

/// `text` as a line of the chart. A reason can carry what a process last logged, terminal
/// colours (`ESC[31m`) and line breaks included; XML forbids most control characters even
/// escaped, and browsers and `rsvg-convert` refuse to show an SVG holding one. CSI sequences
/// (colours, cursor moves: `ESC [` to the final byte) are dropped whole; every other control
/// character, those of other escape sequences included, becomes a space, and the two
/// noncharacters XML also forbids become U+FFFD, as an undecodable byte does.
pub(crate) fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // `ESC [`, parameters, then one final character in `@` ..= `~`.
            '\u{1b}' if chars.peek() == Some(&'[') => {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            c if c.is_control() => out.push(' '),
            '\u{FFFE}' | '\u{FFFF}' => out.push(char::REPLACEMENT_CHARACTER),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_outside_their_bounds_are_refused_with_their_path() {
        assert!(ChartOptions::default().validate().is_ok());
        let e = ChartOptions::default()
            .with_size(100, 780)
            .validate()
            .expect_err("too narrow");
        assert!(e.to_string().contains("chartOptions.width `100`"), "{e}");
        let e = ChartOptions::default()
            .with_size(1000, 9000)
            .validate()
            .expect_err("too tall");
        assert!(e.to_string().contains("chartOptions.height `9000`"), "{e}");
    }

    /// Whether `c` may appear in an XML 1.0 document at all: C0 controls other than tab and
    /// line breaks may not, even escaped, and a viewer refuses the whole SVG for one.
    fn xml_char(c: char) -> bool {
        matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && !matches!(c, '\u{FFFE}' | '\u{FFFF}'))
    }

    #[test]
    fn a_reason_with_terminal_colours_still_renders_a_valid_document() {
        // A process that died after logging in colour: its last lines reach the reason.
        let reason = "instance canary-0 died: exited with status 1; last log lines: \
                      \u{1b}[31mERROR\u{1b}[0m bind failed\u{7}";
        let report: Report = serde_json::from_value(serde_json::json!({
            "deployment": "web-1", "service": "web", "strategy": "canary",
            "from": {"track": "stable", "version": "1.0.0"},
            "to": {"track": "canary", "version": "1.1.0"},
            "outcome": {"result": "failed", "reason": reason},
            "startedAt": 0, "lastAt": 60000, "backup": null, "samples": [],
            "timeline": [{
                "deployment": "web-1", "service": "web", "seq": 0, "at": 30000,
                "kind": {"type": "anomaly", "source": "trigger `errors\u{1b}`",
                         "severity": "warn", "summary": "errors rose"}
            }]
        }))
        .expect("report");
        let options = ChartOptions::default().with_title("web\u{0}: \u{1b}[1mcanary\u{1b}[0m");
        let svg = report.render_svg(&options).expect("render");
        let bad: Vec<char> = svg.chars().filter(|c| !xml_char(*c)).collect();
        assert!(bad.is_empty(), "characters XML forbids: {bad:?}");
        assert!(
            svg.contains("last log lines: ERROR bind failed "),
            "the reason is still shown, without its colours"
        );
        assert!(
            svg.contains("anomaly trigger `errors `"),
            "and the anomaly's marker"
        );
    }
}
