//! Kayenta parity: the Mann-Whitney judge with the exact rules of Kayenta's `NetflixACAJudge`.
//!
//! - [`shift_interval`]: the rank-sum confidence interval and Hodges-Lehmann estimate, equal to
//!   R's `wilcox.test(conf.int = TRUE, exact = FALSE)` to better than 1e-6 (tested against
//!   committed R output).
//! - [`classify`]: one metric's label (`Pass`, `High`, `Low`, `Nodata`, `NodataFailMetric`,
//!   `Error`) with Kayenta's NaN strategies, IQR outlier removal, tolerance 0.25, confidence
//!   0.98, `meanRatio` / `cles` effect sizes and critical metrics. Its interval is
//!   [`shift_interval`]'s, searched more finely where the shifts span less than 1, so that a
//!   label does not depend on the unit (error rates as fractions or in percent).
//! - [`score`]: the run's score from weighted groups, with the critical and ≥ 50% `Nodata` rules
//!   and the marginal / pass thresholds.
//! - [`CanaryConfig`]: a whole Kayenta canary config read from its JSON, each metric in its
//!   groups, judged at once into one score ([`CanaryConfig::judge`]); [`KayentaAnalysis`] runs
//!   it as a [`Judge`](crate::judge::Judge) over Spinnaker's multi-judgement run.
//! - [`KayentaJudge`]: the classifier as a [`Judge`](crate::judge::Judge) over a growing or
//!   sliding window of per-interval points, optionally inside Spinnaker's multi-judgement run
//!   logic ([`RunConfig`]: fail early at an interim score ≤ marginal, pass on a final score
//!   ≥ pass).
//!
//! Kayenta re-judges a growing window without correcting for the repeated looks; this module
//! reproduces that faithfully, for parity and as a baseline in the evaluation harness, not as
//! Serin's default judge.

mod analysis;
mod canary_config;
mod classify;
mod config_analysis;
mod mann_whitney;
mod normal;
mod point;
mod preprocess;
mod run;
mod scoring;
mod zeroin;

pub use analysis::{KayentaConfig, KayentaJudge};
pub use canary_config::{
    AnalysisConfigurations, CanaryConfig, CanaryJudgement, CanaryMetric, Classifier, JudgeRef,
    MetricSetPair, NETFLIX_ACA_JUDGE, ScoreThresholds,
};
pub use classify::{
    CONFIDENCE, Classification, Direction, EffectMeasure, EffectSize, Label, MetricConfig,
    TOLERANCE, classify,
};
pub use config_analysis::{KayentaAnalysis, KayentaAnalysisConfig, KayentaBinding};
pub use mann_whitney::{ROOT_TOLERANCE, ShiftInterval, shift_interval};
pub use point::Quantity;
pub use preprocess::{NanStrategy, OutlierStrategy, Outliers, apply_nan_strategy, remove_outliers};
pub use run::{RunConfig, RunState, RunStatus};
pub use scoring::{CanaryScore, MetricResult, NODATA_THRESHOLD, ScoreConfig, ScoreVerdict, score};
