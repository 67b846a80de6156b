//! Journalled judges carry their settings; [`config`] reads them back checked, so that an
//! edited or damaged journal with a setting no constructor would take is refused on load, as
//! a bad config is, rather than giving a judge that never decides (an `alpha` of 0) or divides
//! by zero.

use serde::{Deserialize, Deserializer};

use crate::Result;

/// Settings that can check themselves, as their judge's constructor does.
pub(crate) trait Checked {
    /// The constructor's check; the error names the field.
    fn check(&self) -> Result<()>;
}

/// Deserializes settings and checks them (for `#[serde(deserialize_with = "...")]`).
pub(crate) fn config<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Checked,
{
    let config = T::deserialize(d)?;
    config.check().map_err(serde::de::Error::custom)?;
    Ok(config)
}

impl Checked for crate::sequential::LatencyTestConfig {
    fn check(&self) -> Result<()> {
        self.validate("latencyTest.config")
    }
}

impl Checked for crate::sequential::BatchCountConfig {
    fn check(&self) -> Result<()> {
        self.validate("batchCountTest.config")
    }
}

impl Checked for crate::kayenta::KayentaConfig {
    fn check(&self) -> Result<()> {
        self.validate()
    }
}

impl Checked for crate::kayenta::KayentaAnalysisConfig {
    fn check(&self) -> Result<()> {
        self.validate()
    }
}

impl Checked for crate::threshold::ArgoConfig {
    fn check(&self) -> Result<()> {
        self.validate()
    }
}

impl Checked for crate::threshold::FlaggerConfig {
    fn check(&self) -> Result<()> {
        self.validate()
    }
}
