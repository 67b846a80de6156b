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

    /// A query template was rejected when a source was built; nothing was built.
    #[error("invalid query template for metric `{metric}`: {reason} (template `{template}`)")]
    InvalidTemplate {
        /// The metric (and part, such as `error_rate.errors`) the template is for.
        metric: String,
        /// The template as given.
        template: String,
        /// Why it was rejected.
        reason: String,
    },

    /// The metrics store rejected a query as malformed or impossible to evaluate (Prometheus'
    /// `bad_data` or `execution` errors). Retrying cannot help: fix the query or its template.
    #[error("query `{query}` was rejected: {reason}")]
    BadQuery {
        /// The query as sent.
        query: String,
        /// What the store said, with its error type.
        reason: String,
    },

    /// A source could not be reached or kept failing (connection refused, 5xx, 429, injected
    /// outage) after every retry. The measurement is unknown, never zero.
    #[error("metrics source `{source_name}` is unavailable: {reason}")]
    Unavailable {
        /// The source's name (see `MetricsSource::name`).
        source_name: String,
        /// The last failure seen, with the number of attempts made.
        reason: String,
    },

    /// A source did not answer a query within its per-request timeout on its last attempt
    /// (earlier attempts failed or timed out too). The message gives the number of attempts, so
    /// that a caller who waited several timeouts long is not told of one.
    #[error(
        "metrics source `{source_name}` timed out on query `{query}`: no answer within {after:?}{}",
        attempts_note(*.attempts)
    )]
    Timeout {
        /// The source's name.
        source_name: String,
        /// The query as sent.
        query: String,
        /// The per-request timeout that elapsed.
        after: std::time::Duration,
        /// The attempts made, the first included.
        attempts: u32,
    },

    /// A source answered with something this crate cannot read (not JSON, an unexpected result
    /// type, several series where one was expected). Not retried: the same query would get the
    /// same answer.
    #[error(
        "metrics source `{source_name}` gave an unreadable answer to query `{query}`: {reason}"
    )]
    BadResponse {
        /// The source's name.
        source_name: String,
        /// The query as sent.
        query: String,
        /// What was wrong with the answer.
        reason: String,
    },

    /// A source was asked for something it was not configured or able to answer.
    #[error("metrics source `{source_name}` does not support {what}")]
    Unsupported {
        /// The source's name.
        source_name: String,
        /// What was asked, e.g. ``metric `queue_depth` (no query template configured)``.
        what: String,
    },
}

/// How many attempts a timeout ended, for its message (nothing for a single one).
fn attempts_note(attempts: u32) -> String {
    if attempts > 1 {
        format!(" on the last of {attempts} attempts")
    } else {
        String::new()
    }
}

impl Error {
    /// Whether the failure is the backend's, not the question's: an outage or a timeout, after
    /// which the same query may succeed later. Callers treat it as inconclusive and hold.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable { .. } | Error::Timeout { .. })
    }

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
