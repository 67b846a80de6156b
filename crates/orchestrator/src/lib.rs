//! # serin-orchestrator
//!
//! The thin composition layer of Serin. It will hold the deployment configuration, the plan, the
//! strategies (blue-green, canary, blue-green-with-canary), the journal, events, notifications,
//! backups and the final report, and the traits `Platform`, `Notifier`, `BackupProvider` and
//! `Journal`. Every decision it executes comes from the pure crates (`serin-compat`,
//! `serin-traffic`, `serin-canary`, `serin-triggers`); the orchestrator only sequences, executes
//! through traits and records.
//!
//! This crate is not yet implemented: it exposes no API so far.
