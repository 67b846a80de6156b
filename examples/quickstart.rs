//! Placeholder until the traffic crate lands.
fn main() {}
