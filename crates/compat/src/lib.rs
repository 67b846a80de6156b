//! Version compatibility validation that explains itself.
//!
//! Before any traffic moves, `serin-compat` answers whether an upgrade is safe, why not, and
//! what to do. It is pure and synchronous: no clock, no I/O.
//!
//! - [`registry`]: services, releases and their metadata.
//! - [`matrix`]: rules between versions (requires, deny/allow, skew, one minor at a time,
//!   transitions).
//! - [`validate`]: checks a proposed change of a [`Fleet`] at every intermediate state and
//!   finds a safe order.
//! - [`explain`]: derivations ("because ..., so ...").
//! - [`breaking`]: API surface diffs and semver checks.
//! - [`migration`]: SQL migration safety (PostgreSQL).
//! - [`path`]: upgrade graphs with blocked/conditional edges and required stops.
//! - [`steps`]: the pre/post-upgrade checklist.
//! - [`validation`]: the result, [`UpgradeValidation`].
//! - [`catalog`]: everything above as one document, loadable from YAML, JSON or TOML.

pub mod breaking;
pub mod catalog;
pub mod error;
pub mod explain;
pub mod fleet;
pub mod matrix;
pub mod migration;
pub mod path;
pub mod registry;
pub mod selector;
pub mod steps;
pub mod validate;
pub mod validation;

pub use catalog::{Catalog, Format};
pub use error::{Error, Result};
pub use explain::Explanation;
pub use fleet::{Fleet, Proposal};
pub use matrix::{Matrix, Rule};
pub use path::{Route, UpgradeGraph, UpgradePath};
pub use registry::{Registry, Release};
pub use selector::{Selector, parse_version};
/// The version types every API here speaks, re-exported so callers need no extra dependency.
pub use semver::{Version, VersionReq};
pub use steps::Step;
pub use validate::Validator;
pub use validation::{Finding, Move, Severity, UpgradeValidation, Verdict};
