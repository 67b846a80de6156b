//! What the sequential tests' settings share: which changes they look for ([`Sides`]) and the
//! checks that refuse a setting no test could work with, each naming the field, the value and
//! what it must be.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Which changes a sequential test looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Sides {
    /// Only "the canary is worse" (its error rate is higher by more than the margin).
    #[default]
    CanaryWorse,
    /// Any difference beyond the margin, either way (for metrics where lower is also suspicious,
    /// such as successful requests or throughput counts).
    TwoSided,
}

/// Refuses the setting `{path}.{field}` unless `v` is finite and at least `min`, saying what it
/// `must` be.
pub(crate) fn check_at_least(
    path: &str,
    field: &str,
    v: f64,
    min: f64,
    must: impl Into<String>,
) -> Result<()> {
    check_setting(path, field, v, v.is_finite() && v >= min, must)
}

/// Refuses the setting `{path}.{field}` unless `v` is finite and above `min`, saying what it
/// `must` be.
pub(crate) fn check_above(
    path: &str,
    field: &str,
    v: f64,
    min: f64,
    must: impl Into<String>,
) -> Result<()> {
    check_setting(path, field, v, v.is_finite() && v > min, must)
}

fn check_setting(path: &str, field: &str, v: f64, ok: bool, must: impl Into<String>) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_config(format!("{path}.{field}"), v, must))
    }
}

/// What a margin must be, in the tests that state no example.
pub(crate) const MARGIN: &str = "must be a finite fraction >= 0";

/// Refuses a saved rejection (`rejected`, for a worse canary or not) that a test of `sides`
/// could not have made, naming `{path}.rejectedWorse`: a one-sided test tests only "the canary
/// is not worse", so it never rejects for a better one.
pub(crate) fn check_rejection(path: &str, sides: Sides, rejected: bool, worse: bool) -> Result<()> {
    if rejected && !worse && sides == Sides::CanaryWorse {
        return Err(Error::invalid_input(
            format!("{path}.rejectedWorse"),
            false,
            "must be true once a one-sided (canaryWorse) test has rejected: it rejects only \
             for a worse canary",
        ));
    }
    Ok(())
}

/// What a t-test's prior variance must be.
pub(crate) const PRIOR_VARIANCE: &str = "must be a finite number > 0";

/// Refuses `{path}.minSamples` of 0: a batch spans at least one sample.
pub(crate) fn check_min_samples(path: &str, v: u64) -> Result<()> {
    if v == 0 {
        return Err(Error::invalid_config(
            format!("{path}.minSamples"),
            v,
            "must be at least 1 sample",
        ));
    }
    Ok(())
}

/// Refuses `path` unless `v` is a probability strictly between 0 and 1 (an `alpha`).
pub(crate) fn check_open_unit(path: &str, v: f64) -> Result<()> {
    if v > 0.0 && v < 1.0 {
        Ok(())
    } else {
        Err(Error::invalid_config(
            path,
            v,
            "must be a probability strictly between 0 and 1",
        ))
    }
}
