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
//! - [`breaking`]: API surface diffs and semver checks, and the findings of oasdiff and buf.
//! - [`migration`]: SQL migration safety (PostgreSQL), with `-- serin:ignore` for findings
//!   reviewed by hand and opt-in rules ([`migration::OPT_IN_RULES`]) a catalog's migration turns
//!   on with `enableRules`.
//! - [`path`]: upgrade graphs with blocked/conditional edges and required stops.
//! - [`steps`]: the pre/post-upgrade checklist.
//! - [`validation`]: the result, [`UpgradeValidation`].
//! - [`catalog`]: everything above as one document, loadable from YAML, JSON or TOML.
//!
//! ```
//! use serin_compat::{Catalog, Fleet, Format, Proposal, Verdict};
//!
//! let catalog = Catalog::parse(r#"
//! registry:
//!   services:
//!     api: { releases: [ {version: 1.0.0}, {version: 2.0.0} ] }
//!     db:  { releases: [ {version: 1.2.0}, {version: 1.4.0} ] }
//! rules:
//!   - requires: { service: api, versions: ">=2.0.0", dependency: db, req: ">=1.4" }
//! "#, Format::Yaml).unwrap();
//! let validator = catalog.validator().unwrap();
//! let fleet = Fleet::from_yaml_str("api: 1.0.0\ndb: 1.2.0").unwrap();
//!
//! // api alone is blocked, with a derivation and a recipe.
//! let alone = validator.validate(&fleet, &Proposal::new().with("api", "2.0.0".parse().unwrap()))
//!     .unwrap();
//! assert_eq!(alone.verdict, Verdict::Blocked);
//! let why = alone.findings[0].explanation.as_ref().unwrap().to_string();
//! assert!(why.ends_with("api 2.0.0 cannot be deployed while db is at 1.2.0."));
//! assert_eq!(alone.findings[0].recipe.as_deref(), Some("upgrade db to 1.4.0 in the same change"));
//!
//! // Both together: db first, then api.
//! let both = Proposal::new()
//!     .with("api", "2.0.0".parse().unwrap())
//!     .with("db", "1.4.0".parse().unwrap());
//! let result = validator.validate(&fleet, &both).unwrap();
//! assert_eq!(result.verdict, Verdict::Ok);
//! assert_eq!(result.order[0][0].service, "db");
//! assert_eq!(result.order[1][0].service, "api");
//! println!("{result}");
//! ```

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
mod unique;
pub mod validate;
pub mod validation;
mod yaml;

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
pub use yaml::{MAX_YAML_NESTING, yaml_nesting_problem};
