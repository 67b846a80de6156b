//! A rollback trigger on an arm that has just begun taking traffic gets its `staleAfter`,
//! counted from that moment, before its missing data rolls back: metrics need a scrape or two
//! to appear. The moment is journalled, so a restart neither extends nor cuts short the grace.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use serin_orchestrator::{EventKind, Journal, Outcome, Report};
use serin_signals::Timestamp;
use support::{World, rollback_reason, run_to_end, stale_at_zero_config, until_weight};

/// The trigger's `staleAfter`.
const STALE_AFTER: Duration = Duration::from_secs(10);

/// A world serving 1.0.0 whose metrics source is out from the start.
async fn outage() -> (Arc<World>, tokio::task::JoinHandle<()>) {
    let (world, traffic) = World::serving(0.005, 0.005).await;
    world.source.set_unavailable(true);
    (world, traffic)
}

/// Starts the canary and kills it once it sends the new version its first weight; its id.
async fn killed_at_first_weight(world: &World) -> String {
    let h = world.start(&stale_at_zero_config()).await;
    let id = h.id().to_owned();
    until_weight(&h, 10.0).await;
    h.kill();
    id
}

/// When the new version first took traffic, as the report's timeline says.
fn first_weight_at(report: &Report) -> Timestamp {
    report
        .timeline
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::WeightChanged { percent, .. } if *percent > 0.0 => Some(e.at),
            _ => None,
        })
        .unwrap_or_else(|| panic!("the canary never took traffic\n{report}"))
}

/// When the rollback started, as the report's timeline says.
fn rollback_started_at(report: &Report) -> Timestamp {
    report
        .timeline
        .iter()
        .find_map(|e| matches!(e.kind, EventKind::RollbackStarted { .. }).then_some(e.at))
        .unwrap_or_else(|| panic!("no rollback\n{report}"))
}

/// The metrics source is out from the start and comes back 11 to 12 s after the canary's
/// first weight (its first window after that weight has no data): the trigger, stale since
/// the minute at 0%, waits its `staleAfter` from the first weight, gets data at the next
/// window, and the deployment succeeds.
#[tokio::test(start_paused = true)]
async fn a_trigger_stale_at_zero_percent_gets_its_stale_after_once_traffic_flows() {
    let (world, _traffic) = outage().await;
    let h = world.start(&stale_at_zero_config()).await;
    until_weight(&h, 10.0).await;
    tokio::time::sleep(STALE_AFTER + Duration::from_secs(1)).await;
    world.source.set_unavailable(false);
    let report = h.wait().await.expect("report");
    support::assert_succeeded(&report);
    assert!(
        report.timeline.iter().any(|e| matches!(
            &e.kind,
            EventKind::Anomaly { source, summary, .. }
                if source == "trigger `errors`" && summary.contains("serves no traffic")
        )),
        "{report}"
    );
}

/// A metrics outage that outlasts the grace: the first window past `staleAfter` after the
/// first weight rolls back, not the first window after it.
#[tokio::test(start_paused = true)]
async fn a_trigger_still_stale_past_its_grace_rolls_back_at_the_next_window() {
    let (world, _traffic) = outage().await;
    let report = run_to_end(&world.orchestrator(), &stale_at_zero_config()).await;
    let reason = rollback_reason(&report);
    assert!(
        reason.contains("`errors`") && reason.contains("no usable data"),
        "{reason}"
    );
    let first = first_weight_at(&report);
    let waited = rollback_started_at(&report).saturating_duration_since(first);
    let window = stale_at_zero_config().canary_config.metrics_window;
    assert!(
        waited > STALE_AFTER && waited <= STALE_AFTER + window,
        "rolled back {waited:?} after the first weight\n{report}"
    );
}

/// Killed right after the first weight and resumed 3 s later, with the source back 11 to 12 s
/// after that weight: the grace counts from the journalled first weight, the trigger gets its
/// data in time and the deployment succeeds.
#[tokio::test(start_paused = true)]
async fn the_grace_survives_a_restart() {
    let (world, _traffic) = outage().await;
    let id = killed_at_first_weight(&world).await;
    let since = world
        .journal
        .all()
        .iter()
        .find(|r| r.deployment == id && r.state.weight > 0.0)
        .map(|r| (r.at, r.state.canary_traffic_since))
        .expect("the first weight's record");
    assert_eq!(since.1, Some(since.0), "journalled with the first weight");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let resumed = world.orchestrator().resume(&id).await.expect("resume");
    tokio::time::sleep(STALE_AFTER - Duration::from_secs(2)).await;
    world.source.set_unavailable(false);
    let report = resumed.wait().await.expect("report");
    support::assert_succeeded(&report);
    assert!(
        world
            .journal
            .all()
            .iter()
            .filter(|r| r.deployment == id && r.state.weight > 0.0)
            .all(|r| r.state.canary_traffic_since == Some(since.0)),
        "the resume kept when the canary began taking traffic"
    );
}

/// Nor does a restart extend the grace: resumed 15 s after the first weight with the outage
/// still on, the deployment rolls back at its first window, not `staleAfter` after the resume.
#[tokio::test(start_paused = true)]
async fn a_restart_does_not_extend_the_grace() {
    let (world, _traffic) = outage().await;
    let id = killed_at_first_weight(&world).await;
    tokio::time::sleep(STALE_AFTER + Duration::from_secs(5)).await;
    let report = world.resumed(&id).await;
    assert!(
        matches!(report.outcome, Some(Outcome::RolledBack { .. })),
        "{report}"
    );
    let waited = rollback_started_at(&report).saturating_duration_since(first_weight_at(&report));
    assert!(
        waited < STALE_AFTER * 2,
        "rolled back {waited:?} after the first weight\n{report}"
    );
}

/// A record written by a clock two hours ahead says the canary began taking traffic two hours
/// from now: resumed with the outage still on, the grace counts from now, not until this clock
/// catches up, and the deployment rolls back within a window or two.
#[tokio::test(start_paused = true)]
async fn a_grace_journalled_by_a_clock_ahead_counts_from_the_resume() {
    let (world, _traffic) = outage().await;
    let id = killed_at_first_weight(&world).await;
    let mut edited = world.journal.all().last().expect("records").clone();
    edited.seq += 1;
    edited.state.canary_traffic_since = Some(
        world
            .clock
            .now()
            .saturating_add(Duration::from_secs(2 * 3600)),
    );
    world.journal.append(&edited).await.expect("append");
    let resumed_at = world.clock.now();
    let report = world.resumed(&id).await;
    let reason = rollback_reason(&report);
    assert!(reason.contains("`errors`"), "{reason}");
    let waited = rollback_started_at(&report).saturating_duration_since(resumed_at);
    assert!(
        waited <= STALE_AFTER * 2,
        "rolled back {waited:?} after the resume\n{report}"
    );
}
