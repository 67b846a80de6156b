//! The one error type of `serin-orchestrator`.

use std::time::Duration;

/// Everything that can go wrong while the orchestrator validates its input or drives a
/// [`Platform`](crate::Platform).
///
/// Messages name the field, object or platform, the value and the reason, so a caller can print
/// them as they are. A call that returns an error other than [`Error::Platform`] has changed
/// nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value given to a constructor or read from config was rejected.
    #[error("invalid {field} `{value}`: {reason}")]
    InvalidField {
        /// The field or parameter, as a path (`trackSpec.instances`).
        field: String,
        /// The offending value, rendered for humans.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// Something named does not exist (a track that was never brought up, or was retired).
    #[error("{what} `{name}` not found")]
    NotFound {
        /// The kind of thing (`track`, `instance`).
        what: String,
        /// Its name (`web/canary`).
        name: String,
    },
    /// Something that must be unique already exists (a track brought up twice).
    #[error("{what} `{name}` already exists: {reason}")]
    AlreadyExists {
        /// The kind of thing (`track`).
        what: String,
        /// Its name (`web/canary`).
        name: String,
        /// What to do about it.
        reason: String,
    },
    /// The platform itself failed (a process would not start, a port was taken, an API call
    /// failed). What was already running keeps running.
    #[error("platform `{platform}` failed: {reason}")]
    Platform {
        /// The platform's name (see `Platform::name`).
        platform: String,
        /// What went wrong, as precisely as the platform knows it.
        reason: String,
    },
    /// Something did not happen in time (instances that never became ready).
    #[error("{what} did not happen within {after:?}: {reason}")]
    Timeout {
        /// What was awaited (`readiness of web/green`).
        what: String,
        /// How long it was awaited.
        after: Duration,
        /// The last state seen.
        reason: String,
    },
    /// A backend the orchestrator talks to (traffic router, metrics or health source, journal,
    /// notifier, backup provider) failed.
    #[error("{backend} `{name}` failed: {reason}")]
    Backend {
        /// What kind of backend (`router`, `metrics`, `journal`).
        backend: String,
        /// Its name, as it reports it.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// The upgrade did not validate: it is blocked and nothing was changed.
    #[error("upgrade of `{service}` to {version} is blocked: {reason}")]
    Blocked {
        /// The service.
        service: String,
        /// The version asked for.
        version: String,
        /// The validator's explanation.
        reason: String,
    },
    /// An operation that does not fit the deployment's current state (promote after the end,
    /// a second deployment of a service that is being deployed).
    #[error("cannot {operation} deployment `{deployment}`: {reason}")]
    Conflict {
        /// The operation asked for (`promote`, `run`, `resume`).
        operation: String,
        /// The deployment (or service) concerned.
        deployment: String,
        /// Why not, and what to do.
        reason: String,
    },
}

impl Error {
    /// Shorthand for [`Error::Backend`].
    pub fn backend(
        backend: impl Into<String>,
        name: impl Into<String>,
        reason: impl ToString,
    ) -> Self {
        Error::Backend {
            backend: backend.into(),
            name: name.into(),
            reason: reason.to_string(),
        }
    }

    /// Shorthand for [`Error::Conflict`].
    pub fn conflict(
        operation: impl Into<String>,
        deployment: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::Conflict {
            operation: operation.into(),
            deployment: deployment.into(),
            reason: reason.into(),
        }
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

    /// Shorthand for [`Error::Platform`].
    pub fn platform(platform: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Platform {
            platform: platform.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::NotFound`].
    pub fn not_found(what: impl Into<String>, name: impl ToString) -> Self {
        Error::NotFound {
            what: what.into(),
            name: name.to_string(),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_thing_the_value_and_the_reason() {
        let e = Error::invalid("trackSpec.instances", 0, "must be at least 1");
        assert_eq!(
            e.to_string(),
            "invalid trackSpec.instances `0`: must be at least 1"
        );
        assert_eq!(
            Error::not_found("track", "web/green").to_string(),
            "track `web/green` not found"
        );
        assert_eq!(
            Error::platform("process", "port 80 is in use").to_string(),
            "platform `process` failed: port 80 is in use"
        );
    }
}
