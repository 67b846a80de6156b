//! Shared setup for Serin's criterion benches and scenario harness.

pub mod canary_sim;
pub mod cusum;
pub mod rollout_sim;
pub mod wander_filter;

use std::time::Instant;

/// Items per second of `f`, which handles `n` items per call: one warm-up call, then `passes`
/// calls timed back to back, of which the median counts (a pass that the machine's other load
/// slowed down moves it little). For the tables that print a figure beside baselines measured in
/// the same run, where criterion's separate runs would let the machine's load differ between
/// them.
pub fn items_per_second(n: usize, passes: u32, mut f: impl FnMut()) -> f64 {
    f();
    let mut seconds: Vec<f64> = (0..passes.max(1))
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    seconds.sort_by(f64::total_cmp);
    n as f64 / seconds[seconds.len() / 2]
}
