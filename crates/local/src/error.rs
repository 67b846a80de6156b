//! The one error type of `serin-local`.

use std::net::SocketAddr;

/// Everything that can go wrong while building the embedded backend's own parts: binding the
/// proxy, checking its configuration, starting a [`Load`](crate::load::Load).
///
/// The trait implementations ([`TrafficRouter`](serin_traffic::TrafficRouter),
/// [`MetricsSource`](serin_signals::MetricsSource), [`Platform`](serin_orchestrator::Platform))
/// answer with the traits' own errors, as their callers expect; so does
/// [`ProcessPlatform::new`](crate::ProcessPlatform::new), whose configuration belongs to the
/// platform.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value given to a constructor or read from config was rejected; nothing was built.
    #[error("invalid {field} `{value}`: {reason}")]
    InvalidField {
        /// The field, as a path (`proxyConfig.connectTimeout`).
        field: String,
        /// The offending value, rendered for humans.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A listener could not be bound (the port is in use, the address is not local).
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the system said.
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
