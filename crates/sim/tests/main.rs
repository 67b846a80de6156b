//! The crate's behaviour tests, one module per subject, built as a single test binary:
//! one link instead of one per file keeps a clean build small and quick.

mod common;

mod config_round_trip;
mod conformance;
mod deployment_lock;
mod determinism;
mod faults;
mod long_canary;
mod mirroring;
mod names;
mod overlapping_faults;
mod platform;
mod probe_yaml;
mod resources;
mod scenario_file;
mod statistics;
mod windows;
