//! Anytime-valid sequential judges: they may be checked after every sample, and their
//! false-rollback probability stays at most `α` over an unbounded run.
//!
//! - [`CountTest`] / [`SequentialCountJudge`]: errors, 5xx, crashes — the conditional test of
//!   which arm each error came from given the traffic split (Lindon & Malek 2022), as a
//!   predictable plug-in likelihood ratio mixed with a mixture over start times, so a regression
//!   that starts late is not diluted by the good minutes before it. O(1) state; handles a split
//!   that changes between samples; one- or two-sided; with a practical-significance margin.
//!   Its confidence sequence for the rate ratio, from which a judge passes, restarts at each
//!   new split, the `k`-th at level `1 − α·6/(π²k²)`, so that a pass of a canary worse than the
//!   limit stays at most `α` over the whole run.
//! - [`BatchCountTest`]: the robust mode for overdispersed traffic (error rates that wander
//!   independently per arm): per-batch log-ratios and a sequential t-test with an estimated
//!   variance.
//! - [`LatencyTest`] / [`SequentialLatencyJudge`]: the mean log latency of every value in each
//!   arm ([`LogMoments`], read from the sketches' bins) and a normal-mixture e-process on their
//!   difference, mixed with fixed bets over start times for late regressions, with a robust
//!   between-batches t-test mode; reports the median and p99 shifts with confidence sequences.
//! - [`AlphaSharing`] and [`combine`]: one `α` for several metrics, by splitting or by e-value
//!   averaging.
//! - [`LateStart`]: when a test rejected because of its start-time mixture, the start it weighed
//!   most and the effect since then, which the judges' evidence states beside the whole run's.
//!
//! Every test here is an e-process: a nonnegative (super)martingale under the null, starting at
//! 1, so by Ville's inequality `P(sup_t E_t ≥ 1/α) ≤ α`. Nuisance parameters (the baseline's
//! error rate, the load, latency variance) are never assumed known: the count test conditions
//! them away, the latency test bounds each arm's variance from the spread within its batches,
//! and the t-test is scale-invariant.

mod batch;
mod combine;
mod counts;
mod judges;
mod latency;
mod logspace;
mod moments;
mod onset_clock;
mod quantile_band;
mod ratio_interval;
mod scatter;
mod settings;
mod starts;
mod ttest;

pub use batch::{BatchCountConfig, BatchCountTest};
pub use combine::{AlphaSharing, combine};
pub(crate) use counts::share_of;
pub use counts::{CountTest, CountTestConfig, CountTotals};
pub(crate) use judges::threshold_text;
pub use judges::{CountMode, SequentialCountJudge, SequentialJudge, SequentialLatencyJudge};
pub use latency::{CONCENTRATED_LOG_SD, LatencyTest, LatencyTestConfig, LatencyVariance};
pub use moments::{LogMoments, MAX_ABS_LOG, SKETCH_LOG_ERROR};
pub(crate) use moments::{MIN_LOG_VARIANCE, Spread};
pub(crate) use scatter::{ErrorScatter, MIN_EXPECTED_ERRORS, Scatter};
pub use settings::Sides;
pub(crate) use settings::check_open_unit as check_alpha;
pub use starts::LateStart;
