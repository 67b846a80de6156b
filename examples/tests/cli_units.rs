//! The example CLI's unit tests. Its modules are compiled into this test crate, so that `cargo
//! test` runs the tests beside their code while it builds the example itself as the plain
//! program that `tests/cli.rs` runs (an example built as a test harness would not be).

// The verbs' entry points live in the example's `main`; here only the tests use the modules.
#![allow(dead_code)]

#[path = "../cli/mod.rs"]
mod cli;
