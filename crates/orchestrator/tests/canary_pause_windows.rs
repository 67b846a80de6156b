//! A canary's timed pause is over at the first metrics window read at or after its end, and
//! the windows run back to back from the canary's first step, so a pause lasts a whole number
//! of `metricsWindow`s: a 2m pause read every 90s lasts 3m. A config whose pauses, so counted,
//! outlast the canary's `maxDuration` would roll back every canary, however good, after taking
//! most of the traffic: it is refused when it loads, and one whose pauses fit is promoted.

use crate::sim_fleet;

use std::time::Duration;

use serin_orchestrator::{DeploymentConfig, Outcome, StrategyKind};

/// The simulated fleet's canary (10%, 40%, 70%, each held `incrementInterval` 2m), read every
/// 90s: each pause lasts two windows, 3m, 9m in all.
fn read_every_ninety_seconds(version: &str, max_duration: Duration) -> DeploymentConfig {
    let mut c = sim_fleet::config(version, StrategyKind::Canary);
    c.canary_config.metrics_window = Duration::from_secs(90);
    c.canary_config.max_duration = max_duration;
    c.max_deployment_duration = Duration::from_secs(3600);
    c
}

#[test]
fn pauses_that_outlast_max_duration_in_whole_windows_are_refused() {
    let err = read_every_ninety_seconds("1.1.0", Duration::from_secs(8 * 60))
        .validate()
        .expect_err("9m of pauses in 8m")
        .to_string();
    assert!(
        err.contains("canaryConfig.maxDuration `8m`")
            && err.contains("(9m")
            && err.contains("whole canaryConfig.metricsWindow"),
        "{err}"
    );
    read_every_ninety_seconds("1.1.0", Duration::from_secs(9 * 60))
        .validate()
        .expect_err("9m of pauses in 9m");
    // Pauses of whole windows are counted as written.
    let mut whole = read_every_ninety_seconds("1.1.0", Duration::from_secs(8 * 60));
    whole.canary_config.metrics_window = Duration::from_secs(60);
    whole.validate().expect("6m of pauses in 8m");
}

#[tokio::test(start_paused = true)]
async fn pauses_that_fit_in_whole_windows_are_promoted_before_max_duration() {
    let (_world, o) = sim_fleet::fleet(31, 0.06);
    let install = sim_fleet::deploy(&o, "1.0.0", StrategyKind::BlueGreen).await;
    assert_eq!(install.outcome, Some(Outcome::Succeeded), "{install}");
    let c = read_every_ninety_seconds("1.1.0", Duration::from_secs(10 * 60));
    c.validate().expect("9m of pauses in 10m");
    let r = o.run(&c).await.expect("run").remove(0);
    assert_eq!(r.outcome, Some(Outcome::Succeeded), "{r}");
}
