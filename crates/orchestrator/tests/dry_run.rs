//! The dry run against what a run then does, on a simulated fleet: the plan's timings are the
//! ones the deployment keeps.

use crate::sim_fleet;

use std::time::Duration;

use serin_orchestrator::{EventKind, Outcome, Report, StrategyKind};
use sim_fleet::{config, deploy};

/// How long after the new version took all traffic the deployment completed: when it retired
/// the old version, with no drain.
fn retired_after_promotion(r: &Report) -> Duration {
    let at = |hit: &dyn Fn(&EventKind) -> bool| {
        r.timeline
            .iter()
            .find(|e| hit(&e.kind))
            .map(|e| e.at)
            .expect("event")
    };
    let promoted =
        at(&|k| matches!(k, EventKind::WeightChanged { percent, .. } if *percent >= 100.0));
    let completed = at(&|k| matches!(k, EventKind::Completed { .. }));
    completed.saturating_duration_since(promoted)
}

#[tokio::test(start_paused = true)]
async fn the_plan_retires_the_old_version_when_the_run_does() {
    for strategy in [StrategyKind::Canary, StrategyKind::BlueGreen] {
        let (_world, o) = sim_fleet::fleet(31, 0.06);
        let install = deploy(&o, "1.0.0", strategy).await;
        assert_eq!(install.outcome, Some(Outcome::Succeeded), "{install}");
        // The watch outlasts the warm delay: the old version goes when the watch ends.
        let mut c = config("1.1.0", strategy);
        assert!(c.monitoring.monitoring_duration > c.blue_green_config.keep_old_warm_for);
        c.canary_config.drain = Duration::ZERO;
        c.blue_green_config.drain = Duration::ZERO;
        let plan = o.plan(&c).await.expect("plan").remove(0);
        let r = o.run(&c).await.expect("run").remove(0);
        assert_eq!(r.outcome, Some(Outcome::Succeeded), "{r}");
        let after = retired_after_promotion(&r);
        let old = plan.from.as_ref().expect("a running version");
        let said = format!(
            "retire {} ({}) {} after promotion",
            old.track,
            old.version,
            serin_signals::duration::human(after)
        );
        assert!(
            plan.steps.iter().any(|s| s == &said),
            "{strategy}: the run retired the old version {after:?} after promotion; the plan \
             says:\n{plan}"
        );
    }
}
