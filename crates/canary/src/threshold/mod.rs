//! Threshold parity: Argo Rollouts' and Flagger's analysis rules as judges, for parity with those
//! controllers and as baselines in the evaluation harness.
//!
//! Both judge the canary's value alone against fixed bounds ([`Range`], or an Argo condition
//! of one value), once per interval,
//! without a baseline: they judge load and time of day as much as the version, and give no
//! guarantee on false rollbacks when checked repeatedly.
//!
//! - [`ArgoJudge`]: `successCondition` / `failureCondition` as bounds or as Argo's expressions
//!   ([`Condition`]: `result[0] <= 0.01`), `failureLimit` (0), `inconclusiveLimit` (0),
//!   `consecutiveErrorLimit` (4), `consecutiveSuccessLimit`, `count` and `interval` (neither:
//!   one measurement), `initialDelay`, and per-metric `dryRun`.
//! - [`FlaggerJudge`]: `thresholdRange` min/max and `threshold` failed checks (1); no data is a
//!   failed check only in its parity mode (`noDataFails`).
//! - [`FlaggerAnalysis`]: Flagger's analysis of several metrics at once, with its one
//!   `failedChecks` counter: an interval in which any metric fails is one failed check. Judges
//!   are per metric, so a `FlaggerJudge` per metric counts each metric's failures apart and,
//!   with `threshold` above 1, rolls back later than Flagger when failures are spread over
//!   metrics; the analysis is where the metrics are combined, as Flagger combines them. It is
//!   a judge of all its metrics, which the canary controller feeds one sample at a time.

mod argo;
mod argo_config;
mod bounds;
mod condition;
mod flagger;
mod flagger_analysis;
mod flagger_config;

pub use argo::{ArgoJudge, ArgoPhase};
pub use argo_config::ArgoConfig;
pub use bounds::Range;
pub use condition::{Condition, Expression};
pub use flagger::{CheckOutcome, FlaggerConfig, FlaggerJudge};
pub use flagger_analysis::FlaggerAnalysis;
pub use flagger_config::{FlaggerAnalysisConfig, FlaggerMetric};

use serin_signals::{Metric, Timestamp};

use crate::judge::{ArmValues, Evidence, Statistic};
use crate::{Error, Result};

/// Refuses the first of a peer's `fields` that was written (under `root`), with `reason`: a
/// field whose job is done elsewhere in Serin, so that pasting it gets a pointer there rather
/// than "unknown field", and is never silently ignored.
fn refuse_written(
    root: &str,
    fields: &[(&str, &Option<serde_json::Value>)],
    reason: &str,
) -> Result<()> {
    match fields.iter().find_map(|(f, v)| v.as_ref().map(|v| (f, v))) {
        Some((field, value)) => Err(Error::invalid_config(
            format!("{root}.{field}"),
            value,
            reason,
        )),
        None => Ok(()),
    }
}

/// The evidence both threshold judges give: `checks` measurements of the canary alone (no
/// baseline), the `last` value measured, and the `failed` ones as the score against `limit`.
fn evidence(
    judge: &str,
    metric: &Metric,
    now: Timestamp,
    checks: u32,
    last: Option<f64>,
    failed: u32,
    limit: f64,
) -> Evidence {
    let mut ev = Evidence::empty(judge, metric.clone(), now);
    ev.sample_size = ArmValues::new(0, u64::from(checks));
    ev.estimates = ArmValues::new(None, last);
    ev.statistic = Some(Statistic::Score(f64::from(failed)));
    ev.threshold = Some(limit);
    ev
}
