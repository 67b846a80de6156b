//! The crate's single error type.
//!
//! Every variant names the input it rejects (a path such as `rules[3].skew.maxOlder`, a service,
//! a version) and why, so a caller can print it as is. Bad input never changes any state.

/// Everything that can go wrong while loading or querying compatibility data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A version string is not valid semver.
    #[error("{path}: invalid version {value:?}: {reason}")]
    InvalidVersion {
        /// Where the value came from (`services.api.releases[2].version`).
        path: String,
        /// The rejected text.
        value: String,
        /// The parser's reason.
        reason: String,
    },
    /// A field holds a value that is well-formed but not acceptable.
    #[error("{path}: invalid value {value:?}: {reason}")]
    InvalidValue {
        /// Where the value came from.
        path: String,
        /// The rejected value, as written.
        value: String,
        /// Why it is rejected.
        reason: String,
    },
    /// A service name that the registry does not know.
    #[error("{path}: unknown service {service:?}: it has no releases in the registry")]
    UnknownService {
        /// Where the name came from.
        path: String,
        /// The name.
        service: String,
    },
    /// A version of a known service that was never released.
    #[error("{path}: unknown version {version} of service {service:?}: it is not in the registry")]
    UnknownVersion {
        /// Where the version came from.
        path: String,
        /// The service.
        service: String,
        /// The version.
        version: String,
    },
    /// The same version of a service was declared twice.
    #[error("{path}: duplicate release {version} of service {service:?}")]
    DuplicateRelease {
        /// Where the duplicate was found.
        path: String,
        /// The service.
        service: String,
        /// The version declared twice.
        version: String,
    },
    /// Two rules say opposite things about the same versions.
    #[error("{first} and {second} contradict each other: {reason}")]
    ContradictoryRules {
        /// The first rule's label.
        first: String,
        /// The second rule's label.
        second: String,
        /// What they disagree on.
        reason: String,
    },
    /// A graph that must be acyclic contains a cycle.
    #[error("{path}: cycle {cycle}")]
    Cycle {
        /// Which graph.
        path: String,
        /// The cycle, written `a -> b -> a`.
        cycle: String,
    },
    /// A document could not be parsed at all.
    #[error("cannot parse {format}: {reason}")]
    Parse {
        /// `YAML`, `JSON`, `TOML` or `SQL`.
        format: &'static str,
        /// The parser's message, with its position.
        reason: String,
    },
    /// A result could not be serialized.
    #[error("cannot serialize to {format}: {reason}")]
    Serialize {
        /// The target format.
        format: &'static str,
        /// The serializer's message.
        reason: String,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
