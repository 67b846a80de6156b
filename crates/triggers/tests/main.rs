//! The crate's behaviour tests, one module per subject, built as a single test binary:
//! one link instead of one per file keeps a clean build small and quick.

mod config;
mod engine;
mod invariants;
mod learned_baseline;
mod merged_streams;
mod scenarios;
