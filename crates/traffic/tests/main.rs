//! The crate's behaviour tests, one module per subject, built as a single test binary:
//! one link instead of one per file keeps a clean build small and quick.

mod conformance;
mod executing_plans;
mod plans_proptest;
