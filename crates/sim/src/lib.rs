//! # serin-sim
//!
//! A deterministic simulated fleet in virtual time (tokio's paused clock, seeded randomness) with
//! scriptable faults, implementing `Platform`, `TrafficRouter`, `MetricsSource` and `HealthSource`
//! so that hours of rollout run in milliseconds.
//!
//! This crate is not yet implemented: it exposes no API so far.
