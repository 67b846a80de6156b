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
//!
//! ## A rollout, end to end
//!
//! A canary at 10% of 500 requests/s fails 1% of its requests, 1.8 times the baseline's rate.
//! The caller carries out each [`Action`](controller::Action) and feeds the controller every
//! second's counts; the default judge may be read after every sample, so the rollback comes the
//! second its evidence crosses `1/α` (here within two minutes), not at the end of an
//! analysis interval. Half a minute in, the rollout is journalled and resumed, as after a
//! restart of the process running it.
//!
//! ```
//! use std::time::Duration;
//!
//! use serin_canary::controller::{
//!     Action, AnalysisStep, CanaryController, CanaryPolicy, ControllerState, Step,
//! };
//! use serin_canary::sequential::SequentialCountJudge;
//! use serin_signals::{Counts, Measurement, Metric, Observation, Timestamp, Track, Window};
//!
//! let policy = CanaryPolicy::new(vec![
//!     Step::SetWeight(10),
//!     Step::Analysis(AnalysisStep { duration: Duration::from_secs(600), min_samples: 60 }),
//!     Step::SetWeight(50),
//! ]);
//! let judge = SequentialCountJudge::new(Metric::ErrorRate, 0.05, 0.0)?;
//! let mut ctl = CanaryController::new(policy, vec![judge])?;
//! assert_eq!(ctl.tick(Timestamp::from_millis(0)).action, Action::SetWeight(10));
//!
//! let observe = |track, w, requests, errors| -> Result<_, serin_signals::Error> {
//!     let counts = Measurement::Counts(Counts::new(requests, errors)?);
//!     Ok(Observation::new(Metric::ErrorRate, track, w, counts))
//! };
//! let mut decision = None;
//! for s in 0..600u64 {
//!     if s == 30 {
//!         // Journal the state and the judges; a new process resumes exactly here.
//!         let (policy, judges, state) = ctl.into_parts();
//!         let (judges, state) = (serde_json::to_string(&judges)?, serde_json::to_string(&state)?);
//!         let judges: Vec<SequentialCountJudge> = serde_json::from_str(&judges)?;
//!         let state: ControllerState = serde_json::from_str(&state)?;
//!         ctl = CanaryController::from_parts(policy, judges, state)?;
//!     }
//!     let start = Timestamp::from_millis(s * 1000);
//!     let w = Window::new(start, start.saturating_add(Duration::from_secs(1)))?;
//!     let baseline = observe(Track::Stable, w, 450, 2 + s % 2)?; // 0.56% errors
//!     let canary = observe(Track::Canary, w, 50, s % 2)?; // 1% errors
//!     let d = ctl.observe(&baseline, &canary, w.end())?;
//!     if d.action != Action::Hold {
//!         decision = Some(d);
//!         break;
//!     }
//! }
//! let d = decision.expect("the judge decides within the analysis step");
//! assert_eq!(d.action, Action::Rollback);
//! assert!(d.at > Timestamp::from_millis(30_000), "after the resume");
//! assert!(d.at < Timestamp::from_millis(120_000), "long before the step's ten minutes end");
//! println!("{}: {}", d.reason, d.evidence[0].summary);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod checked;
pub mod controller;
mod gather;
pub mod judge;
pub mod kayenta;
mod one_key;
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
    /// A document (a Kayenta canary config) could not be read; `path` is where, `.` for the
    /// whole document.
    #[error("cannot read {what} at {path}: {reason}")]
    Parse {
        /// What was being read.
        what: String,
        /// Where in it, as a camelCase path (`metrics[1].analysisConfigurations.canary`).
        path: String,
        /// The reader's complaint, with the offending value where it names one.
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

    /// Shorthand for [`Error::Parse`].
    pub fn parse(what: &str, path: impl ToString, reason: impl ToString) -> Self {
        Error::Parse {
            what: what.to_owned(),
            path: path.to_string(),
            reason: reason.to_string(),
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
