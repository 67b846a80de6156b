//! A world described in YAML, as a test suite would keep it in a file, runs as written; a
//! mistake in it is refused with the path of the field.

use crate::common;

use std::time::Duration;

use common::*;
use serin_orchestrator::Platform;
use serin_signals::{ProbeStatus, Track, Window};
use serin_sim::{SimConfig, SimWorld};

const SCENARIO: &str = r#"
seed: 2024
start: 1700000000000
service: web
load: {kind: constant, rps: 400}
unready: fail
profiles:
  "2.0.0":
    errorRate: [{at: 0s, value: 0.002}, {at: 10m, value: 0.002}, {at: 10m, value: 0.08}]
    latency: {medianMs: 70, sigma: 0.3}
    startup: 20s
dependencies: [postgres]
faults:
  - {kind: crash, track: canary, instance: canary-1, at: 30m}
"#;

#[tokio::test(start_paused = true)]
async fn a_yaml_scenario_runs_as_written() {
    let config: SimConfig = serde_yaml_ng::from_str(SCENARIO).unwrap();
    let world = fleet(config).await;
    up(&world, "2.0.0", Track::Canary, 2).await;
    let t0 = world.now();
    ready(&world, &Track::Canary).await.unwrap();
    assert_eq!(
        world.now().saturating_duration_since(t0),
        Duration::from_secs(20)
    );
    split(&world, &[("stable", 50), ("canary", 50)]).await;
    wait(Duration::from_secs(35 * 60)).await;

    let at = |m: u64| t0.saturating_add(Duration::from_secs(m * 60));
    let before = counts(&world, Track::Canary, Window::new(at(1), at(10)).unwrap())
        .await
        .unwrap();
    let after = counts(&world, Track::Canary, Window::new(at(11), at(29)).unwrap())
        .await
        .unwrap();
    assert!(before.error_rate().unwrap() < 0.005, "{before:?}");
    assert!(
        (0.07..0.09).contains(&after.error_rate().unwrap()),
        "{after:?}"
    );

    let status = world
        .platform()
        .status(SERVICE, &Track::Canary)
        .await
        .unwrap();
    let live: Vec<ProbeStatus> = status.instances.iter().map(|i| i.liveness).collect();
    assert_eq!(live, [ProbeStatus::Pass, ProbeStatus::Fail]);
    assert_eq!(
        world
            .unroutable(Window::new(at(1), at(35)).unwrap())
            .requests(),
        0
    );
}

#[test]
fn mistakes_are_refused_with_their_path() {
    for (bad, path) in [
        (
            SCENARIO.replace("rps: 400", "rps: -4"),
            "simConfig.load.rps",
        ),
        (
            SCENARIO.replace("sigma: 0.3", "sigma: 9"),
            "simConfig.profiles.2.0.0.latency.sigma",
        ),
        (
            SCENARIO.replace("unready: fail", "unready: retry"),
            "unready",
        ),
        (SCENARIO.replace("seed: 2024", "seeds: 2024"), "seeds"),
    ] {
        let msg = serde_yaml_ng::from_str::<SimConfig>(&bad)
            .unwrap_err()
            .to_string();
        assert!(msg.contains(path), "{path}: {msg}");
    }
    let config: SimConfig = serde_yaml_ng::from_str(SCENARIO).unwrap();
    let world = SimWorld::new(config).unwrap();
    assert_eq!(world.config().faults().len(), 1);
}
