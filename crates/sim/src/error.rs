//! The one error type of `serin-sim`.

/// Everything that can go wrong while configuring or scripting a simulated world.
///
/// Messages name the field (as a path such as `simConfig.profiles.2.0.0.errorRate`), the value
/// and the reason. A call that returns an error has changed nothing. The views
/// ([`SimPlatform`](crate::SimPlatform), [`SimRouter`](crate::SimRouter),
/// [`SimMetrics`](crate::SimMetrics), [`SimHealth`](crate::SimHealth)) answer with the error
/// types of the traits they implement.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value given to a constructor or read from config was rejected.
    #[error("invalid {field} `{value}`: {reason}")]
    InvalidField {
        /// The field or parameter, as a path (`simConfig.load.rps`).
        field: String,
        /// The offending value, rendered for humans.
        value: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A value was rejected by the signals vocabulary (an observation with more errors than
    /// requests, a NaN latency).
    #[error(transparent)]
    Signals(#[from] serin_signals::Error),
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
