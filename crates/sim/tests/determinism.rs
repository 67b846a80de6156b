//! Determinism and additivity: the same seed gives the same answers, another seed other
//! answers, asking again never changes an answer, and any partition of a window adds up to it.

use crate::common;

use std::time::Duration;

use common::*;
use proptest::prelude::*;
use serin_signals::{Counts, LatencySketch, Timestamp, Track, Window};
use serin_sim::{ErrorWander, Load, Schedule, SimConfig, SimWorld, VersionProfile};

/// The same scripted scenario: stable, then a canary stepping up every five minutes.
async fn scenario(seed: u64) -> SimWorld {
    scenario_from(SimConfig::new(seed)).await
}

/// The scenario of [`scenario`] in a world built on `config`.
async fn scenario_from(config: SimConfig) -> SimWorld {
    let world = fleet(config.with_load(Load::constant(250.0))).await;
    up(&world, "2.0.0", Track::Canary, 2).await;
    ready(&world, &Track::Canary).await.unwrap();
    for canary in [5u8, 10, 25, 50] {
        split(&world, &[("stable", 100 - canary), ("canary", canary)]).await;
        wait(Duration::from_secs(300)).await;
    }
    world
}

fn minute_windows(world: &SimWorld) -> Vec<Window> {
    let start = world.config().start();
    (0..20)
        .map(|m| {
            let from = start.saturating_add(Duration::from_secs(60 * m));
            Window::new(from, from.saturating_add(Duration::from_secs(60))).unwrap()
        })
        .collect()
}

type Answer = (Option<Counts>, Option<Counts>, Option<Vec<f64>>);

async fn answers(world: &SimWorld) -> Vec<Answer> {
    answers_in_order(world, false).await
}

/// The answers for every minute, asked oldest first or newest first (so that what the world
/// has already computed differs), always listed oldest first.
async fn answers_in_order(world: &SimWorld, newest_first: bool) -> Vec<Answer> {
    let mut windows = minute_windows(world);
    if newest_first {
        windows.reverse();
    }
    let mut out = Vec::new();
    for w in windows {
        let quantiles = latency(world, Track::Canary, w).await.map(|s| {
            [0.5, 0.9, 0.99]
                .iter()
                .filter_map(|q| s.quantile(*q))
                .collect()
        });
        out.push((
            counts(world, Track::Stable, w).await,
            counts(world, Track::Canary, w).await,
            quantiles,
        ));
    }
    if newest_first {
        out.reverse();
    }
    out
}

#[tokio::test(start_paused = true)]
async fn the_same_seed_gives_identical_answers_and_another_seed_others() {
    let a = answers(&scenario(99).await).await;
    let b = answers_in_order(&scenario(99).await, true).await;
    assert_eq!(a, b);
    assert!(
        a.iter()
            .filter(|(s, c, l)| s.is_some() && c.is_some() && l.is_some())
            .count()
            >= 15
    );
    let other = answers(&scenario(100).await).await;
    assert_ne!(a, other);
    let differing = a.iter().zip(&other).filter(|(x, y)| x.0 != y.0).count();
    assert!(differing >= 15, "only {differing} minutes differ");
}

/// The start timestamp only labels the time axis: the same seed and scenario started at another
/// instant (as a command line tool starting its world at the wall-clock time does) draw the
/// same traffic, errors, wander and latencies, second for second after the start, so a seed
/// reproduces a run whenever it is run.
#[tokio::test(start_paused = true)]
async fn the_same_seed_gives_the_same_answers_whatever_the_start() {
    let wandering = VersionProfile::default()
        .with_error_rate(Schedule::constant(0.02))
        .with_error_wander(ErrorWander::new(0.5, 0.8));
    let config = |start| {
        SimConfig::new(99)
            .with_start(start)
            .with_profile(semver::Version::new(2, 0, 0), wandering.clone())
    };
    let default = SimConfig::new(99).start();
    let later = Timestamp::from_millis(1_796_121_753_347);
    let (a, b) = (
        scenario_from(config(default)).await,
        scenario_from(config(later)).await,
    );
    assert_eq!(answers(&a).await, answers(&b).await);
    // A window that cuts seconds, at the same place after each start.
    let cut = |world: &SimWorld| {
        let start = world.config().start();
        Window::new(
            start.saturating_add(Duration::from_millis(390_250)),
            start.saturating_add(Duration::from_millis(1_150_700)),
        )
        .unwrap()
    };
    for track in [Track::Stable, Track::Canary] {
        let (x, y) = (
            counts(&a, track.clone(), cut(&a)).await,
            counts(&b, track.clone(), cut(&b)).await,
        );
        assert!(x.is_some());
        assert_eq!(x, y, "{track}");
        let (x, y) = (
            latency(&a, track.clone(), cut(&a)).await.unwrap(),
            latency(&b, track.clone(), cut(&b)).await.unwrap(),
        );
        assert!(same_sketch(&x, &y), "{track}: {x:?} vs {y:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn asking_again_later_gives_the_same_answer() {
    let world = scenario(5).await;
    let first = answers(&world).await;
    wait(Duration::from_secs(3_600)).await;
    split(&world, &[("stable", 0), ("canary", 100)]).await;
    wait(Duration::from_secs(600)).await;
    assert_eq!(answers(&world).await, first);
}

fn window(a: u64, b: u64) -> Window {
    Window::new(Timestamp::from_millis(a), Timestamp::from_millis(b)).unwrap()
}

fn same_sketch(a: &LatencySketch, b: &LatencySketch) -> bool {
    a.count() == b.count()
        && (1..100).all(|p| a.quantile(f64::from(p) / 100.0) == b.quantile(f64::from(p) / 100.0))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Cutting a window anywhere (to the millisecond) into consecutive pieces never changes the
    /// total: counts add up exactly and sketches merge to the whole, whatever the fraction of a
    /// second at which the world starts.
    #[test]
    fn sub_windows_add_up(
        cuts in proptest::collection::vec(0u64..1_200_000, 0..6),
        phase in 0u64..1_000,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let start = Timestamp::from_millis(1_700_000_000_000 + phase);
            let world = scenario_from(SimConfig::new(17).with_start(start)).await;
            let start = start.as_millis();
            let mut points: Vec<u64> = cuts.iter().map(|c| start + c).collect();
            points.push(start);
            points.push(start + 1_200_000);
            points.sort_unstable();
            let whole = window(start, start + 1_200_000);
            for track in [Track::Stable, Track::Canary] {
                let mut total = Counts::default();
                let mut merged = LatencySketch::new();
                for pair in points.windows(2) {
                    let w = window(pair[0], pair[1]);
                    if let Some(c) = counts(&world, track.clone(), w).await {
                        total = total.saturating_add(c);
                    }
                    if let Some(s) = latency(&world, track.clone(), w).await {
                        merged.merge(&s).unwrap();
                    }
                }
                let all = counts(&world, track.clone(), whole).await.unwrap();
                assert_eq!(total, all, "{track}");
                let sketch = latency(&world, track.clone(), whole).await.unwrap();
                assert!(same_sketch(&merged, &sketch), "{track}: {merged:?} vs {sketch:?}");
            }
        });
    }
}

/// A world built before its runtime exists takes no wall-clock time into its virtual clock:
/// its clock starts when first read inside the runtime, so every run sees the same times.
#[test]
fn a_world_built_outside_a_runtime_keeps_its_clock_virtual() {
    let world = SimWorld::new(SimConfig::new(5)).unwrap();
    let start = world.config().start();
    assert_eq!(world.now(), start);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        // Whatever time passes before the world is first used is not the world's.
        tokio::time::advance(Duration::from_secs(3_600)).await;
        assert_eq!(world.now(), start);
        up(&world, "1.0.0", Track::Stable, 1).await;
        wait(Duration::from_secs(90)).await;
        assert_eq!(world.now(), start.saturating_add(Duration::from_secs(90)));
        let up_at = world.timeline().first().map(|e| e.at);
        assert_eq!(up_at, Some(start));
    });
}
