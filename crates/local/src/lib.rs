//! # serin-local
//!
//! The embedded default backend for one machine. It will hold a reverse proxy implementing
//! `TrafficRouter`, a process platform implementing `Platform`, and proxy-measured metrics
//! implementing `MetricsSource`, so a canary can be judged with no external infrastructure.
//!
//! This crate is not yet implemented: it exposes no API so far.
