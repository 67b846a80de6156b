//! Derivations: why something cannot be done, as a chain of facts a person can check.
//!
//! In the spirit of pubgrub's reports, an [`Explanation`] is a conclusion drawn from causes; a
//! cause is either a fact (a rule, a running version, a blocked edge) or another explanation.
//! Rendering puts the derived sub-results first, each as a sentence of its own, so the text
//! reads top-down and the final conclusion comes last:
//!
//! ```
//! use serin_compat::Explanation;
//! let unreachable = Explanation::new("db 1.4.0 cannot be reached from 1.2.0")
//!     .fact("the edge 1.2.0 -> 1.4.0 is blocked");
//! let e = Explanation::new("api 2.0.0 cannot be deployed while db is at 1.2.0")
//!     .fact("api 2.0.0 needs db >=1.4")
//!     .derived(unreachable);
//! assert_eq!(
//!     e.to_string(),
//!     "Because the edge 1.2.0 -> 1.4.0 is blocked, db 1.4.0 cannot be reached from 1.2.0. \
//!      So, because api 2.0.0 needs db >=1.4 and db 1.4.0 cannot be reached from 1.2.0, \
//!      api 2.0.0 cannot be deployed while db is at 1.2.0."
//! );
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

/// One reason behind a conclusion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Cause {
    /// A fact taken from the input (a rule, the fleet, the graph).
    Fact(String),
    /// A conclusion derived elsewhere.
    Derived(Box<Explanation>),
}

/// A conclusion and the causes it follows from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// The causes, in the order they are cited.
    pub because: Vec<Cause>,
    /// What follows from them.
    pub conclusion: String,
}

impl Explanation {
    /// An explanation with no causes yet.
    pub fn new(conclusion: impl Into<String>) -> Self {
        Self {
            because: Vec::new(),
            conclusion: conclusion.into(),
        }
    }

    /// Adds a fact.
    #[must_use]
    pub fn fact(mut self, fact: impl Into<String>) -> Self {
        self.because.push(Cause::Fact(fact.into()));
        self
    }

    /// Adds a derived cause.
    #[must_use]
    pub fn derived(mut self, sub: Explanation) -> Self {
        self.because.push(Cause::Derived(Box::new(sub)));
        self
    }

    fn write_into(&self, out: &mut Vec<String>) -> String {
        let mut parts = Vec::new();
        for cause in &self.because {
            match cause {
                Cause::Fact(f) => parts.push(f.clone()),
                Cause::Derived(sub) => {
                    let conclusion = sub.write_into(out);
                    parts.push(conclusion);
                }
            }
        }
        // A conclusion is kept as written: it often starts with a service's name (`api 2.0.0
        // needs ...`), which a capital would misspell.
        let sentence = if parts.is_empty() {
            self.conclusion.clone()
        } else {
            format!("Because {}, {}", join_and(&parts), self.conclusion)
        };
        out.push(format!("{sentence}."));
        self.conclusion.clone()
    }
}

fn join_and(parts: &[String]) -> String {
    match parts {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {}", init.join(", "), last),
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut lines = Vec::new();
        self.write_into(&mut lines);
        let last = lines.len().saturating_sub(1);
        for (i, line) in lines.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            if i == last && i > 0 {
                write!(f, "So, {}", lower_first(line))?;
            } else {
                f.write_str(line)?;
            }
        }
        Ok(())
    }
}

fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_level_reads_as_one_sentence() {
        let e = Explanation::new("api 2.0.0 cannot be deployed while db is at 1.2.0")
            .fact("api 2.0.0 needs db >=1.4")
            .fact("db 1.2.0 is running");
        assert_eq!(
            e.to_string(),
            "Because api 2.0.0 needs db >=1.4 and db 1.2.0 is running, api 2.0.0 cannot be \
             deployed while db is at 1.2.0."
        );
    }

    #[test]
    fn derived_causes_come_first() {
        let sub = Explanation::new("db 1.4.0 cannot be reached from 1.2.0")
            .fact("the edge 1.2.0 -> 1.4.0 is blocked");
        let e = Explanation::new("api 2.0.0 cannot be deployed while db is at 1.2.0")
            .fact("api 2.0.0 needs db >=1.4")
            .derived(sub);
        let text = e.to_string();
        assert!(text.starts_with("Because the edge 1.2.0 -> 1.4.0 is blocked, db 1.4.0"));
        assert!(text.contains("So, because api 2.0.0 needs db >=1.4 and db 1.4.0 cannot"));
    }

    #[test]
    fn no_causes_is_just_the_conclusion_as_written() {
        assert_eq!(
            Explanation::new("api 2.0.0 cannot move before web").to_string(),
            "api 2.0.0 cannot move before web."
        );
    }
}
