//! Threshold parity: Argo Rollouts' and Flagger's analysis rules as judges, for parity with those
//! controllers and as baselines in the evaluation harness.
//!
//! Both judge the canary's value alone against fixed bounds ([`Range`]), once per interval,
//! without a baseline: they judge load and time of day as much as the version, and give no
//! guarantee on false rollbacks when checked repeatedly.
//!
//! - [`ArgoJudge`]: `successCondition` / `failureCondition` as bounds, `failureLimit` (0),
//!   `inconclusiveLimit` (0), `consecutiveErrorLimit` (4), `consecutiveSuccessLimit`, `count`.
//! - [`FlaggerJudge`]: `thresholdRange` min/max and `threshold` failed checks (1); no data is a
//!   failed check only in its parity mode (`noDataFails`).

mod argo;
mod bounds;
mod flagger;

pub use argo::{ArgoConfig, ArgoJudge, ArgoPhase};
pub use bounds::Range;
pub use flagger::{CheckOutcome, FlaggerConfig, FlaggerJudge};
