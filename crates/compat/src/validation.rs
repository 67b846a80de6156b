//! The answer to "may this upgrade go ahead?": [`UpgradeValidation`].

use std::collections::BTreeMap;
use std::fmt;

use semver::Version;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::explain::Explanation;
use crate::path::UpgradePath;
use crate::steps::Step;

/// How serious a finding is (oasdiff's and buf's ERR / WARN / INFO).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Severity {
    /// Worth knowing; never blocks.
    Info,
    /// The upgrade may go ahead, but someone should look.
    Warn,
    /// The upgrade must not go ahead.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        })
    }
}

/// The overall answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Verdict {
    /// Nothing stands in the way.
    Ok,
    /// Allowed, with warnings to read first.
    OkWithWarnings,
    /// At least one error finding: do not start.
    Blocked,
}

impl Verdict {
    /// The verdict implied by a set of findings: any error blocks, any warning qualifies.
    pub fn from_findings(findings: &[Finding]) -> Self {
        match findings.iter().map(|f| f.severity).max() {
            Some(Severity::Error) => Self::Blocked,
            Some(Severity::Warn) => Self::OkWithWarnings,
            _ => Self::Ok,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ok => "ok",
            Self::OkWithWarnings => "ok with warnings",
            Self::Blocked => "blocked",
        })
    }
}

/// One thing the validator noticed, with the evidence behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// How serious it is.
    pub severity: Severity,
    /// A stable code for the check (`matrix.requires`, `sql.ban-drop-column`, ...).
    pub code: String,
    /// What it is about (`api 2.0.0`, `migration 0012 statement 3`).
    pub subject: String,
    /// One sentence.
    pub message: String,
    /// The facts that triggered it: rule labels, running versions, statements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
    /// A derivation, for findings that block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Explanation>,
    /// What to do instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe: Option<String>,
}

impl Finding {
    /// A finding with a message and nothing else.
    pub fn new(
        severity: Severity,
        code: impl Into<String>,
        subject: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity,
            code: code.into(),
            subject: subject.into(),
            message: message.into(),
            evidence: Vec::new(),
            explanation: None,
            recipe: None,
        }
    }

    /// Adds a piece of evidence.
    #[must_use]
    pub fn with_evidence(mut self, evidence: impl Into<String>) -> Self {
        self.evidence.push(evidence.into());
        self
    }

    /// Attaches a derivation.
    #[must_use]
    pub fn with_explanation(mut self, explanation: Explanation) -> Self {
        self.explanation = Some(explanation);
        self
    }

    /// Attaches a recipe.
    #[must_use]
    pub fn with_recipe(mut self, recipe: impl Into<String>) -> Self {
        self.recipe = Some(recipe.into());
        self
    }

    /// The finding on one line, for events and logs: severity, subject, code, message and
    /// what to do instead; the evidence and the derivation are left to [`Display`](fmt::Display).
    ///
    /// ```
    /// use serin_compat::{Finding, Severity};
    /// let f = Finding::new(Severity::Error, "sql.ban-drop-table", "api 1.2.0 migration 0007",
    ///     "dropping table(s) users breaks the old version").with_recipe("drop it later");
    /// assert_eq!(f.one_line(), "[error] api 1.2.0 migration 0007 (sql.ban-drop-table): \
    ///     dropping table(s) users breaks the old version (instead: drop it later)");
    /// ```
    pub fn one_line(&self) -> String {
        let head = self.head();
        match &self.recipe {
            Some(r) => format!("{head} (instead: {r})"),
            None => head,
        }
    }

    fn head(&self) -> String {
        format!(
            "[{}] {} ({}): {}",
            self.severity, self.subject, self.code, self.message
        )
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.head())?;
        for e in &self.evidence {
            write!(f, "\n    evidence: {e}")?;
        }
        if let Some(x) = &self.explanation {
            write!(f, "\n    why: {x}")?;
        }
        if let Some(r) = &self.recipe {
            write!(f, "\n    instead: {r}")?;
        }
        Ok(())
    }
}

/// One service moving from its running version(s) to a target, through any required stops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Move {
    /// The service.
    pub service: String,
    /// The versions running before the move.
    pub from: Vec<Version>,
    /// Each version deployed in turn; the last is the target.
    pub hops: Vec<Version>,
}

impl Move {
    /// The final version.
    pub fn target(&self) -> Option<&Version> {
        self.hops.last()
    }
}

impl fmt::Display for Move {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let from: Vec<String> = self.from.iter().map(ToString::to_string).collect();
        let from = if from.is_empty() {
            "(new)".to_owned()
        } else {
            from.join("+")
        };
        write!(f, "{} {}", self.service, from)?;
        for hop in &self.hops {
            write!(f, " -> {hop}")?;
        }
        Ok(())
    }
}

/// The validator's full answer for a proposed change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeValidation {
    /// Ok, ok with warnings, or blocked.
    pub verdict: Verdict,
    /// Everything noticed, errors first.
    pub findings: Vec<Finding>,
    /// Groups of moves; a group moves together, groups move in order. Empty when blocked
    /// before an order could be found.
    pub order: Vec<Vec<Move>>,
    /// The release path chosen per service that has an upgrade graph.
    pub paths: BTreeMap<String, UpgradePath>,
    /// The checklist to follow, in order.
    pub steps: Vec<Step>,
}

impl UpgradeValidation {
    /// Builds the answer from its parts, sorting findings (errors first) and deriving the verdict.
    pub fn new(
        mut findings: Vec<Finding>,
        order: Vec<Vec<Move>>,
        paths: BTreeMap<String, UpgradePath>,
        steps: Vec<Step>,
    ) -> Self {
        findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
        Self {
            verdict: Verdict::from_findings(&findings),
            findings,
            order,
            paths,
            steps,
        }
    }

    /// Whether the upgrade may start.
    pub fn is_allowed(&self) -> bool {
        self.verdict != Verdict::Blocked
    }

    /// Findings of at least `severity`.
    pub fn findings_at_least(&self, severity: Severity) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.severity >= severity)
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|e| Error::Serialize {
            format: "JSON",
            reason: e.to_string(),
        })
    }
}

impl fmt::Display for UpgradeValidation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "verdict: {}", self.verdict)?;
        if !self.findings.is_empty() {
            writeln!(f, "findings:")?;
            for finding in &self.findings {
                writeln!(f, "  {finding}")?;
            }
        }
        if !self.order.is_empty() {
            writeln!(f, "order:")?;
            for (i, group) in self.order.iter().enumerate() {
                let moves: Vec<String> = group.iter().map(ToString::to_string).collect();
                writeln!(f, "  {}. {}", i + 1, moves.join("; "))?;
            }
        }
        for (service, path) in &self.paths {
            writeln!(f, "path {service}: {path}")?;
        }
        if !self.steps.is_empty() {
            writeln!(f, "steps:")?;
            for (i, step) in self.steps.iter().enumerate() {
                writeln!(f, "  {}. {step}", i + 1)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_follows_worst_severity() {
        let info = Finding::new(Severity::Info, "x", "s", "m");
        let warn = Finding::new(Severity::Warn, "x", "s", "m");
        let err = Finding::new(Severity::Error, "x", "s", "m");
        assert_eq!(Verdict::from_findings(&[]), Verdict::Ok);
        assert_eq!(
            Verdict::from_findings(std::slice::from_ref(&info)),
            Verdict::Ok
        );
        assert_eq!(
            Verdict::from_findings(&[info.clone(), warn.clone()]),
            Verdict::OkWithWarnings
        );
        assert_eq!(Verdict::from_findings(&[warn, err, info]), Verdict::Blocked);
    }

    #[test]
    fn findings_sorted_errors_first_and_json_round_trips() {
        let v = UpgradeValidation::new(
            vec![
                Finding::new(Severity::Info, "a", "s", "m"),
                Finding::new(Severity::Error, "b", "s", "m").with_recipe("do x"),
            ],
            Vec::new(),
            BTreeMap::new(),
            Vec::new(),
        );
        assert_eq!(v.findings[0].code, "b");
        assert!(!v.is_allowed());
        let json = v.to_json().unwrap();
        let back: UpgradeValidation = serde_json::from_str(&json).unwrap();
        assert_eq!(back, v);
        assert!(v.to_string().contains("verdict: blocked"));
    }
}
