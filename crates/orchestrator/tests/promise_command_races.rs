//! An operator's abort or promote racing a step, on the simulated fleet, for every strategy:
//! sent at the very instant a step moves the weight (and just before and after it), the
//! command wins whichever way the race goes. An abort ends rolled back with all traffic on the
//! old version, a promote ends with all traffic on the new one; no request is lost either way,
//! and the report's events run without a gap or a repeat.

use crate::promise_support;
use crate::sim_fleet;

use std::time::Duration;

use serin_orchestrator::{Outcome, StrategyKind};

use promise_support::{
    STRATEGIES, assert_all_traffic_on, assert_events_in_sequence, assert_no_request_lost, config,
    serving,
};
use sim_fleet::SERVICE;

/// When the second weight is set, counting from the start: the new track is ready at 5 s and
/// takes its first weight then; a gradual switch steps every 60 s, a canary every 120 s.
fn second_step(strategy: StrategyKind) -> Duration {
    match strategy {
        StrategyKind::BlueGreen => Duration::from_secs(65),
        _ => Duration::from_secs(125),
    }
}

/// Sends `command` at `offset` around the second step and checks the run ends as it asks.
async fn race(seed: u64, strategy: StrategyKind, offset: i64, abort: bool) {
    let (world, o) = serving(seed, &config("1.0.0", strategy)).await;
    let since = world.now();
    let h = o
        .start(&config("1.1.0", strategy), SERVICE)
        .await
        .expect("start");
    let at = second_step(strategy).as_millis() as i64 + offset;
    tokio::time::sleep(Duration::from_millis(at as u64)).await;
    let sent = if abort {
        h.abort().await
    } else {
        h.promote().await
    };
    let r = h.wait().await.expect("report");
    let what = format!("{strategy:?}, abort {abort}, {offset:+} ms: {sent:?} {r}");
    let expected = if abort {
        assert!(
            matches!(&r.outcome, Some(Outcome::RolledBack { reason }) if reason.contains("abort")),
            "{what}"
        );
        "1.0.0"
    } else {
        assert_eq!(r.outcome, Some(Outcome::Succeeded), "{what}");
        "1.1.0"
    };
    assert_all_traffic_on(&world, expected, &what).await;
    assert_no_request_lost(&world, since, &what);
    assert_events_in_sequence(&r, &what);
}

#[tokio::test(start_paused = true)]
async fn an_abort_racing_a_step_always_rolls_back() {
    for (seed, strategy) in (1..).zip(STRATEGIES) {
        for offset in [-1, 0, 1] {
            race(seed, strategy, offset, true).await;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_promote_racing_a_step_always_promotes() {
    for (seed, strategy) in (10..).zip(STRATEGIES) {
        for offset in [-1, 0, 1] {
            race(seed, strategy, offset, false).await;
        }
    }
}
