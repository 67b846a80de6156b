//! PromQL templates with `{{track}}` and `{{window}}` placeholders, checked when a source is built.

use std::fmt;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::track::Track;

/// A placeholder a template may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placeholder {
    /// The track's name (a DNS-1123 label, checked by the source before rendering, so it is
    /// safe inside a quoted label matcher).
    Track,
    /// The window's length as a PromQL duration in milliseconds (`60000ms`).
    Window,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Slot(Placeholder),
}

/// A parsed PromQL template.
///
/// Placeholders are written `{{track}}` and `{{window}}` (spaces inside the braces are allowed).
/// A template is rejected when it is empty, holds an unknown placeholder, has a `{{` without its
/// `}}` (or the reverse), has unbalanced `(`, `[` or `{` outside quoted strings and `#`
/// comments, or lacks a placeholder it needs outside comments: every template needs
/// `{{track}}` (or arms could not be told apart), and templates over counters need `{{window}}`
/// (or windows would not be respected).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    source: String,
    parts: Vec<Part>,
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Template {
    /// Parses `template` for `metric` (named in errors, e.g. `error_rate.errors`); `needs_window`
    /// says whether `{{window}}` is required.
    pub(crate) fn parse(metric: &str, template: &str, needs_window: bool) -> Result<Self> {
        let fail = |reason: String| Error::InvalidTemplate {
            metric: metric.to_owned(),
            template: template.to_owned(),
            reason,
        };
        if template.trim().is_empty() {
            return Err(fail("is empty".into()));
        }
        let mut parts = Vec::new();
        let mut rest = template;
        let mut text = String::new();
        while let Some(open) = rest.find("{{") {
            let (before, after_open) = rest.split_at(open);
            if before.contains("}}") {
                return Err(fail("has `}}` without a matching `{{`".into()));
            }
            text.push_str(before);
            let inner_and_rest = after_open.get(2..).unwrap_or_default();
            let Some(close) = inner_and_rest.find("}}") else {
                return Err(fail("has `{{` without a matching `}}`".into()));
            };
            let (inner, after_close) = inner_and_rest.split_at(close);
            if inner.contains("{{") {
                return Err(fail("has `{{` without a matching `}}`".into()));
            }
            let slot = match inner.trim() {
                "track" => Placeholder::Track,
                "window" => Placeholder::Window,
                other => {
                    return Err(fail(format!(
                        "has unknown placeholder `{{{{{other}}}}}`; the known ones are `{{{{track}}}}` and `{{{{window}}}}`"
                    )));
                }
            };
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(Part::Slot(slot));
            rest = after_close.get(2..).unwrap_or_default();
        }
        if rest.contains("}}") {
            return Err(fail("has `}}` without a matching `{{`".into()));
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        let used = scan(&parts).map_err(fail)?;
        if !used.contains(&Placeholder::Track) {
            return Err(fail(
                "lacks `{{track}}` outside comments, so it could not tell one track from another"
                    .into(),
            ));
        }
        if needs_window && !used.contains(&Placeholder::Window) {
            return Err(fail(
                "lacks `{{window}}` outside comments, so it would not respect the query window (use it as the range, e.g. `increase(x[{{window}}])`)".into(),
            ));
        }
        Ok(Template {
            source: template.to_owned(),
            parts,
        })
    }

    /// The PromQL for `track` over a window of `window` length.
    pub(crate) fn render(&self, track: &Track, window: Duration) -> String {
        let mut out = String::with_capacity(self.source.len() + 16);
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Slot(Placeholder::Track) => out.push_str(track.as_str()),
                Part::Slot(Placeholder::Window) => {
                    out.push_str(&format!("{}ms", window.as_millis()));
                }
            }
        }
        out
    }
}

/// Reads the template as PromQL: checks that `(`, `[` and `{` are balanced outside quoted
/// strings and `#` comments (placeholders count as plain text), so a typo is caught when the
/// source is built rather than on the first query, and answers the placeholders outside
/// comments, the only ones that select anything.
fn scan(parts: &[Part]) -> Result<Vec<Placeholder>, String> {
    let mut stack: Vec<char> = Vec::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut comment = false;
    let mut used = Vec::new();
    let chars = parts.iter().flat_map(|p| match p {
        Part::Text(t) => t.chars().map(|c| (c, None)).collect::<Vec<_>>(),
        Part::Slot(slot) => vec![('x', Some(*slot))],
    });
    for (c, slot) in chars {
        if let Some(slot) = slot.filter(|_| !comment) {
            used.push(slot);
        }
        if comment {
            comment = c != '\n';
            continue;
        }
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' && q != '`' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '#' => comment = true,
            '"' | '\'' | '`' => quote = Some(c),
            '(' | '[' | '{' => stack.push(c),
            ')' | ']' | '}' => {
                let want = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                if stack.pop() != Some(want) {
                    return Err(format!("has an unbalanced `{c}`"));
                }
            }
            _ => {}
        }
    }
    if let Some(q) = quote {
        return Err(format!("has an unterminated {q}-quoted string"));
    }
    match stack.pop() {
        Some(open) => Err(format!("has an unclosed `{open}`")),
        None => Ok(used),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_track_and_window() {
        let t = Template::parse(
            "error_rate.requests",
            r#"sum(increase(http_requests_total{track="{{track}}"}[{{ window }}]))"#,
            true,
        )
        .unwrap();
        assert_eq!(
            t.render(&Track::Canary, Duration::from_secs(90)),
            r#"sum(increase(http_requests_total{track="canary"}[90000ms]))"#
        );
    }

    #[test]
    fn bad_templates_name_the_metric_the_template_and_the_reason() {
        let cases = [
            ("", "empty"),
            ("  ", "empty"),
            ("x{track=\"{{track}}\"}[{{window}}", "unclosed `[`"),
            ("x{track=\"{{track}}\"}[{{window}}]]", "unbalanced `]`"),
            (
                "x{track=\"{{track}}\"}[{{windw}}]",
                "unknown placeholder `{{windw}}`",
            ),
            ("x{track=\"{{track}\"}[{{window}}]", "without a matching"),
            (
                "x{track=\"{{track}}\"}[{{window]",
                "without a matching `}}`",
            ),
            (
                "x{track=\"track}}\"}[{{window}}]",
                "`}}` without a matching `{{`",
            ),
            (
                "x{track=\"{{track}}\"}[5m] }}",
                "`}}` without a matching `{{`",
            ),
            ("sum(increase(x[{{window}}]))", "lacks `{{track}}`"),
            (
                "sum(increase(x{t=\"{{track}}\"}[5m]))",
                "lacks `{{window}}`",
            ),
            ("x{t=\"{{track}}}[{{window}}]", "unterminated"),
        ];
        for (template, why) in cases {
            let err = Template::parse("latency", template, true).unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(err, Error::InvalidTemplate { .. })
                    && msg.contains("`latency`")
                    && msg.contains(template)
                    && msg.contains(why),
                "{template:?}: {msg}"
            );
        }
    }

    /// PromQL comments run from `#` to the end of the line and may hold any text; a template
    /// written as a block in YAML often starts with one.
    #[test]
    fn comments_may_hold_quotes_and_brackets() {
        let template = "# the shop's requests (all codes\n\
                        sum(increase(r{track=\"{{track}}\"}[{{window}}])) # 5xx) too";
        let t = Template::parse("error_rate.requests", template, true).unwrap();
        assert!(
            t.render(&Track::Canary, Duration::from_secs(1))
                .contains("track=\"canary\"}[1000ms]")
        );
        // A placeholder in a comment selects nothing: both arms would read the same series.
        let msg = Template::parse("cpu", "sum(rate(x[{{window}}])) # of {{track}}", false)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("lacks `{{track}}`"), "{msg}");
        let msg = Template::parse("latency", "x{t=\"{{track}}\"}[{{window}}] # (\n)", true)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("unbalanced `)`"), "{msg}");
    }

    #[test]
    fn quoted_braces_and_gauges_without_window_are_fine() {
        let t = Template::parse(
            "cpu",
            r#"max(x{track="{{track}}", re=~"a{1,2}(\"b"})"#,
            false,
        )
        .unwrap();
        assert!(
            t.render(&Track::Blue, Duration::ZERO)
                .contains("track=\"blue\"")
        );
    }
}
