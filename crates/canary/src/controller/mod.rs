//! The canary controller: a pure state machine that turns a [`CanaryPolicy`] and the judges'
//! verdicts into actions — set weight, scale, hold, promote, roll back — each with the evidence
//! that decided it.
//!
//! The caller (the orchestrator's executor) feeds it observations, commands and `now`, journals
//! each [`Decision`] and carries out its [`Action`]; the controller never sleeps, reads a clock or
//! does I/O. Its [`ControllerState`] is serializable, and so are the sequential judges, so an
//! interrupted rollout resumes exactly with [`CanaryController::from_parts`].
//!
//! [`Pacing`] adds what none of Argo Rollouts, Flagger or Kayenta has: the weight rises, and the
//! canary is promoted, only once the errors at the current weight rule out a regression of a
//! stated size (and, with a [`LatencyPacing`] gate, the latencies a slowdown of a stated size),
//! and the first weight can be sized so that the expected number of users exposed to a bad
//! version stays within a budget.
//!
//! A caller with several metrics per window [`feeds`](CanaryController::feed) each of them and
//! then [`ticks`](CanaryController::tick) once, and carries out that one decision. A
//! [`PromotionGate`] keeps a canary whose judges never had the data to fail it from being
//! promoted: its own error rate must first be shown below a bound.

mod error_batches;
mod latency_gate;
mod machine;
mod pacing;
mod policy;
mod promotion;

pub use latency_gate::{LatencyPacing, MIN_SCATTER_PAIRS, MIN_SPREAD_DOF};
pub use machine::{Action, CanaryController, Command, ControllerState, Decision, Phase};
pub use pacing::Pacing;
pub use policy::{AnalysisStep, CanaryPolicy, CanaryScale, OnInconclusive, OnWarning, Pause, Step};
pub use promotion::PromotionGate;
