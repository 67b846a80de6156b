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
    /// An input dated further past the engine's clock (the latest `now` it was given) than a
    /// trigger that reads it allows: its `staleAfter`. Taken, it would move the trigger's data
    /// time ahead, so that every real input until then looked late and was dropped while the
    /// trigger never went stale: a source whose clock runs ahead would silence it.
    #[error(
        "{input} is dated {at}, past the engine's clock {clock} by more than the staleAfter of \
         trigger `{trigger}` ({stale_after_ms} ms): taken, it would make every real input until \
         then look late and keep the trigger from going stale (is the source's clock ahead? a \
         caller that feeds what it read up to its `now` before ticking moves the clock first \
         with Engine::advance_clock)"
    )]
    AheadOfClock {
        /// What was refused (`observation of error_rate on track canary`).
        input: String,
        /// Its data time: an observation's window end, a probe's completion time.
        at: serin_signals::Timestamp,
        /// The engine's clock.
        clock: serin_signals::Timestamp,
        /// The trigger whose `staleAfter` it passes.
        trigger: String,
        /// That `staleAfter`, in milliseconds.
        stale_after_ms: u128,
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
