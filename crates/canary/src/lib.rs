//! # serin-canary
//!
//! Canary analysis for Serin: judges that compare the canary with the baseline and stay honest
//! however often they are checked, and a pure canary controller that turns their verdicts into
//! actions (set weight, hold, promote, roll back), each with the evidence that decided it.
//!
//! - [`judge`]: the [`Judge`](judge::Judge) trait and the values every judge shares: the
//!   [`Sample`](judge::Sample) it is fed, the [`Verdict`](judge::Verdict) and
//!   [`Evidence`](judge::Evidence) it answers, and [`Severity`](judge::Severity).
//! - [`sequential`]: the default, anytime-valid judges — a count test of which arm each error
//!   came from (with a robust batch mode), a latency test on the shift of the arms' mean log
//!   latency, and `α` sharing across metrics.
//! - [`kayenta`] and [`threshold`]: parity judges with the rules of Kayenta, Argo Rollouts and
//!   Flagger, for comparison and migration.
//! - [`severity`]: effect-size bands that grade a confirmed regression info / warning / critical.
//! - [`controller`]: the canary policy and its controller, a pure state machine with
//!   power-aware pacing.
//!
//! Everything here is pure and synchronous: no clock, no I/O; `now` is always a parameter.

pub mod controller;
pub mod judge;
pub mod kayenta;
pub mod sequential;
pub mod severity;
pub mod threshold;

/// Everything that can go wrong in `serin-canary`: a rejected configuration or a rejected input.
///
/// Bad input returns an error and changes nothing. Messages name the field or path, the value
/// and the reason, so a caller can print them as they are.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value was rejected (`canaryPolicy.steps[2].setWeight`).
    #[error("invalid configuration {path} `{value}`: {reason}")]
    InvalidConfig {
        /// Where the value sits, as a camelCase path.
        path: String,
        /// The offending value, rendered for humans.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// An input fed to a judge or to the controller was rejected; nothing was changed.
    #[error("invalid input {field} `{value}`: {reason}")]
    InvalidInput {
        /// The input field (`sample.canary.window`, `command`).
        field: String,
        /// The offending value, rendered for humans.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A value from `serin-signals` was rejected.
    #[error(transparent)]
    Signals(#[from] serin_signals::Error),
}

impl Error {
    /// Shorthand for [`Error::InvalidConfig`].
    pub fn invalid_config(
        path: impl Into<String>,
        value: impl ToString,
        reason: impl Into<String>,
    ) -> Self {
        Error::InvalidConfig {
            path: path.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid_input(
        field: impl Into<String>,
        value: impl ToString,
        reason: impl Into<String>,
    ) -> Self {
        Error::InvalidInput {
            field: field.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
