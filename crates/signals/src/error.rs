//! The one error type of `serin-signals`.

/// Everything that can go wrong while building signal values or asking a source for them.
///
/// Messages name the field or query, the value and the reason, so a caller can print them as is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value given to a constructor or read from config was rejected; nothing was changed.
    #[error("invalid {field} `{value}`: {reason}")]
    InvalidField {
        /// The field or parameter, as a path (`window.end`, `track`).
        field: String,
        /// The offending value, rendered for humans.
        value: String,
        /// Why it was rejected.
        reason: String,
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
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
