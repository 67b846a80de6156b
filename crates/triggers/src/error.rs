//! The one error type of `serin-triggers`.

/// Everything that can go wrong while configuring the trigger engine or feeding it.
///
/// Every variant names the field, trigger or input, the offending value and the reason, so a
/// caller can print it as is. An operation that returns an error has changed nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A config value was rejected.
    #[error("invalid {field} `{value}`: {reason}")]
    InvalidConfig {
        /// The field as a path (`triggers[2].increasePercentage`).
        field: String,
        /// The offending value, rendered for humans.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// Two triggers share one id, so their events could not be told apart.
    #[error("duplicate trigger id `{id}` at triggers[{index}]: ids must be unique")]
    DuplicateTrigger {
        /// The repeated id.
        id: String,
        /// The position of the second trigger with this id.
        index: usize,
    },
    /// An observation routed to a trigger carries a measurement the trigger cannot read.
    #[error(
        "observation of `{metric}` on track `{track}` holds {found}, but trigger `{trigger}` needs {expected}"
    )]
    MeasurementMismatch {
        /// The trigger that would have read it.
        trigger: String,
        /// The observed metric.
        metric: String,
        /// The observed track.
        track: String,
        /// What the trigger reads (`counts`, `a gauge`).
        expected: &'static str,
        /// What the observation held.
        found: &'static str,
    },
    /// A snapshot does not fit the config it carries.
    #[error("invalid snapshot {field}: {reason}")]
    InvalidSnapshot {
        /// The part of the snapshot (`triggers[3].state`).
        field: String,
        /// Why it was rejected.
        reason: String,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidConfig`].
    pub(crate) fn config(
        field: impl Into<String>,
        value: impl ToString,
        reason: impl Into<String>,
    ) -> Self {
        Error::InvalidConfig {
            field: field.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
