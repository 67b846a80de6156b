//! The one error type of `serin-local`.

use std::net::SocketAddr;

/// Everything that can go wrong while building or running the embedded backend's parts.
///
/// The trait implementations map these onto the traits' own errors (`serin_traffic::Error`,
/// `serin_signals::Error`, `serin_orchestrator::Error`), keeping the message.
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
    /// An I/O operation failed (a log file, a process spawn).
    #[error("{what} failed: {reason}")]
    Io {
        /// What was being done.
        what: String,
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
