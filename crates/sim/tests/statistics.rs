//! The simulated traffic has the sampling noise of real independent requests: per-window
//! request counts are Poisson (variance ≈ mean) and error counts binomial, so judges see neither
//! more nor less noise than the model promises.

use crate::common;

use std::time::Duration;

use common::*;
use serin_signals::{Timestamp, Track, Window};
use serin_sim::{Load, Schedule, SimConfig, VersionProfile};

fn mean_and_variance(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var)
}

#[tokio::test(start_paused = true)]
async fn counts_have_poisson_and_binomial_dispersion() {
    let profile = VersionProfile::default().with_error_rate(Schedule::constant(0.005));
    let world = fleet(
        SimConfig::new(77)
            .with_load(Load::constant(1_000.0))
            .with_default_profile(profile),
    )
    .await;
    let begin = world.now();
    wait(Duration::from_secs(3_600)).await;
    let mut requests = Vec::new();
    let mut errors = Vec::new();
    for i in 0..360u64 {
        let from = Timestamp::from_millis(begin.as_millis() + i * 10_000);
        let w = Window::new(from, from.saturating_add(Duration::from_secs(10))).unwrap();
        let c = counts(&world, Track::Stable, w).await.unwrap();
        requests.push(c.requests() as f64);
        errors.push(c.errors() as f64);
    }
    let (mean, var) = mean_and_variance(&requests);
    assert!(
        (mean / 10_000.0 - 1.0).abs() < 0.005,
        "mean requests {mean}"
    );
    assert!(
        (0.75..1.3).contains(&(var / mean)),
        "request dispersion {}",
        var / mean
    );
    let (mean, var) = mean_and_variance(&errors);
    assert!((mean / 50.0 - 1.0).abs() < 0.08, "mean errors {mean}");
    // Binomial with p = 0.5%: variance = mean × 0.995, plus the Poisson spread of requests.
    assert!(
        (0.75..1.3).contains(&(var / mean)),
        "error dispersion {}",
        var / mean
    );
}
