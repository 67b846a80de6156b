//! Shared setup for Serin's criterion benches and scenario harness.

pub mod canary_sim;
pub mod cusum;
pub mod wander_filter;
