//! The one error type of `serin-traffic`.

use crate::capabilities::Capability;

/// Everything that can go wrong while building splits, strategies and plans, or while a router
/// applies a split.
///
/// Messages name the field (as a path such as `backends[1].name` or `strategy.increment`), the
/// value and the reason, so a caller can print them as they are. A call that returns an error has
/// changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value given to a constructor or read from config was rejected.
    #[error("invalid {field} `{value}`: {reason}")]
    InvalidField {
        /// The field or parameter, as a path (`backends[1].weight`, `strategy.steps[2].weight`).
        field: String,
        /// The offending value, rendered for humans.
        value: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A split as a whole is not valid (its weights do not add up, it has no backend, ...).
    #[error("invalid traffic split {split}{}: {reason}", at(.field))]
    InvalidSplit {
        /// Where the split stands when it is part of something larger, as a path
        /// (`steps[2].split`, `from`); empty for a split on its own.
        field: String,
        /// The split (or the part of it at fault), rendered for humans.
        split: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A router was asked for something it cannot do; it kept its previous split.
    #[error("router `{router}` does not support {capability}: {reason}")]
    Unsupported {
        /// The missing capability.
        capability: Capability,
        /// The router that refused.
        router: String,
        /// Which part of the split needs it.
        reason: String,
    },

    /// The router's own backend failed (an API call, a proxy reload, ...); it kept its previous
    /// split.
    #[error("router `{router}` failed: {message}")]
    Backend {
        /// The router that failed.
        router: String,
        /// What went wrong, as the backend reported it.
        message: String,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidField`].
    pub fn invalid(
        field: impl Into<String>,
        value: impl ToString,
        reason: impl Into<String>,
    ) -> Self {
        Error::InvalidField {
            field: field.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// The same error with its field path prefixed by `parent` (`backends[0]` + `name` becomes
    /// `backends[0].name`), so nested validation can name the full path.
    pub(crate) fn within(self, parent: &str) -> Self {
        let nest = |field: String| {
            if field.is_empty() {
                parent.to_owned()
            } else {
                format!("{parent}.{field}")
            }
        };
        match self {
            Error::InvalidField {
                field,
                value,
                reason,
            } => Error::InvalidField {
                field: nest(field),
                value,
                reason,
            },
            Error::InvalidSplit {
                field,
                split,
                reason,
            } => Error::InvalidSplit {
                field: nest(field),
                split,
                reason,
            },
            other => other,
        }
    }
}

/// ` at <field>` for a split that stands inside something larger, else nothing.
fn at(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!(" at {field}")
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
