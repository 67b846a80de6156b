//! The crate's behaviour tests, one module per subject, built as a single test binary:
//! one link instead of one per file keeps a clean build small and quick.

mod catalog_support;

mod catalog_files;
mod config_forms;
mod error_paths;
mod first_install;
mod fixtures;
mod graph_specs;
mod handover;
mod migration_merge;
mod migration_opt_in;
mod migration_primary_keys;
mod migration_rules;
mod migration_state;
mod migration_tools;
mod migration_types;
mod multi_hop_steps;
mod postgres;
mod properties;
mod review_fixes;
mod rollback_and_queries;
mod rollbacks;
mod rules_and_semver;
mod sure_providers;
mod validate;
