//! Several target services validated together against what the platform runs: an
//! orchestrator built with a fleet given before the last restart validates the set, orders it
//! and plans it from the versions that run now, and one that cannot learn them starts nothing.

use crate::support;

use std::sync::Arc;

use serin_compat::matrix::{OneMinorAtATime, PairRule, Requires, Target};
use serin_compat::{Fleet, Matrix, Registry, Release, Rule, Selector, Validator};
use serin_orchestrator::{
    DeploymentConfig, Error, Journal, Orchestrator, OrchestratorBuilder, Platform, Report,
    ServiceBackends, StrategyKind,
};
use serin_signals::Track;
use serin_traffic::InMemoryRouter;
use support::{SilentStatus, World, v};

const SERVICES: [&str; 2] = ["api", "web"];

/// A world whose services `api` and `web` each have a router of their own.
struct Services {
    world: World,
    routers: [Arc<InMemoryRouter>; 2],
}

impl Services {
    /// `api` and `web` installed at 1.0.0, then `api` moved to 1.1.0 (on green; `web` stays on
    /// blue), by an orchestrator without a validator.
    async fn api_moved() -> Self {
        let services = Services {
            world: World::new(),
            routers: SERVICES.map(|_| Arc::new(InMemoryRouter::new())),
        };
        let o = services.builder(services.world.platform.clone()).build();
        for (version, targets) in [("1.0.0", &SERVICES[..]), ("1.1.0", &["api"][..])] {
            let reports = o.run(&config(version, targets)).await.expect("run");
            assert_succeeded(&reports, targets);
        }
        services
    }

    /// Only `api` installed, at 1.1.0: nothing of `web` runs.
    async fn only_api() -> Self {
        let services = Services {
            world: World::new(),
            routers: SERVICES.map(|_| Arc::new(InMemoryRouter::new())),
        };
        let o = services.builder(services.world.platform.clone()).build();
        for version in ["1.0.0", "1.1.0"] {
            let reports = o.run(&config(version, &["api"])).await.expect("run");
            assert_succeeded(&reports, &["api"]);
        }
        services
    }

    fn builder(&self, platform: Arc<dyn Platform>) -> OrchestratorBuilder {
        let world = &self.world;
        let builder = Orchestrator::builder(platform, world.journal.clone()).clock(world.clock);
        SERVICES
            .iter()
            .zip(&self.routers)
            .fold(builder, |b, (service, router)| {
                let backends = ServiceBackends::new(
                    router.clone(),
                    world.source.clone(),
                    world.health.clone(),
                );
                b.service(service, backends)
            })
    }

    /// An orchestrator started afresh on `platform`, validating by `rule`, and given the fleet
    /// as it was before `api` moved: `api: 1.0.0`, `web: 1.0.0`.
    fn restarted(&self, platform: Arc<dyn Platform>, rule: Rule) -> Orchestrator {
        let stale = Fleet::new().with("api", v("1.0.0")).with("web", v("1.0.0"));
        self.builder(platform)
            .validator(validator(rule), stale)
            .build()
    }
}

/// `api` and `web` at 1.0.0, 1.1.0 and 1.2.0, and `rule`.
fn validator(rule: Rule) -> Validator {
    let mut registry = Registry::new();
    for service in SERVICES {
        for version in ["1.0.0", "1.1.0", "1.2.0"] {
            registry
                .add_release(service, Release::new(v(version)))
                .expect("release");
        }
    }
    let matrix = Matrix::new(vec![rule], &registry).expect("matrix");
    Validator::new(registry, matrix).expect("validator")
}

/// `api` moves one minor at a time: from 1.0.0 to 1.2.0 is blocked, from 1.1.0 it is not.
fn api_one_minor_at_a_time() -> Rule {
    Rule::OneMinorAtATime(OneMinorAtATime {
        id: Some("api-one-minor".into()),
        service: "api".into(),
    })
}

/// `web` 1.2.0 needs `api` at 1.1.0 or later: from `api` 1.0.0, `api` moves first.
fn web_needs_api_1_1() -> Rule {
    Rule::Requires(Requires {
        id: Some("web-needs-api".into()),
        service: "web".into(),
        versions: Selector::parse(">=1.2.0", "test").expect("selector"),
        dependency: "api".into(),
        req: Selector::parse(">=1.1.0", "test").expect("selector"),
        reason: None,
    })
}

/// `api` 1.2.0 never works with `web` 1.0.0.
fn api_1_2_denies_web_1_0() -> Rule {
    let target = |service: &str, versions: &str| {
        Target::new(
            service,
            Selector::parse(versions, "test").expect("selector"),
        )
    };
    Rule::Deny(PairRule {
        id: Some("api-1.2-not-with-web-1.0".into()),
        a: target("api", ">=1.2.0"),
        b: target("web", "1.0.0"),
        reason: None,
    })
}

fn config(version: &str, targets: &[&str]) -> DeploymentConfig {
    DeploymentConfig::new(StrategyKind::BlueGreen, v(version), targets).expect("config")
}

fn assert_succeeded(reports: &[Report], services: &[&str]) {
    let mut done: Vec<(&str, bool)> = reports
        .iter()
        .map(|r| {
            let ok = r.outcome.as_ref().is_some_and(|o| o.is_success());
            (r.service.as_str(), ok)
        })
        .collect();
    done.sort_unstable();
    let all: Vec<(&str, bool)> = services.iter().map(|s| (*s, true)).collect();
    assert_eq!(done, all);
}

#[tokio::test(start_paused = true)]
async fn a_set_is_validated_and_planned_from_the_versions_the_platform_runs() {
    let services = Services::api_moved().await;
    let o = services.restarted(services.world.platform.clone(), api_one_minor_at_a_time());
    let to_1_2 = config("1.2.0", &SERVICES);

    let plans = o.plan(&to_1_2).await.expect("plan");
    assert_eq!(plans.len(), 2);
    for p in &plans {
        assert!(!p.steps[0].contains("BLOCKED"), "{p}");
    }
    let api = plans.iter().find(|p| p.service == "api").expect("api");
    assert_eq!(api.from.as_ref().map(|p| &p.version), Some(&v("1.1.0")));

    let reports = o.run(&to_1_2).await.expect("run");
    assert_succeeded(&reports, &SERVICES);
}

#[tokio::test(start_paused = true)]
async fn a_set_is_ordered_by_the_versions_the_platform_runs() {
    let services = Services::api_moved().await;
    let o = services.restarted(services.world.platform.clone(), web_needs_api_1_1());
    // `api` runs 1.1.0 already, so `web` 1.2.0 needs nothing `api` has yet to deploy: both
    // move at the same time, and `web`'s own validation sees the `api` that runs.
    let reports = o.run(&config("1.2.0", &SERVICES)).await.expect("run");
    assert_succeeded(&reports, &SERVICES);
    assert_eq!(
        reports[0].started_at, reports[1].started_at,
        "web waited for api"
    );
    let fleet = o.fleet().expect("a validator is configured");
    assert_eq!(fleet.running("api"), [v("1.2.0")]);
    assert_eq!(fleet.running("web"), [v("1.2.0")]);
}

#[tokio::test(start_paused = true)]
async fn a_target_whose_running_version_cannot_be_read_starts_nothing() {
    let services = Services::api_moved().await;
    // `api` runs on green, which answers; `web`'s blue never does.
    let silent = Arc::new(SilentStatus::new(services.world.platform.clone()));
    silent.spare(Track::Green);
    let o = services.restarted(silent.clone(), api_one_minor_at_a_time());
    let known = services.world.journal.deployments().await.expect("journal");
    let to_1_2 = config("1.2.0", &SERVICES);

    for err in [
        o.run(&to_1_2).await.expect_err("run"),
        o.plan(&to_1_2).await.expect_err("plan"),
    ] {
        let Error::Timeout { what, .. } = &err else {
            panic!("expected a timeout, got {err}");
        };
        assert!(what.contains("web/blue"), "{err}");
    }
    assert_eq!(
        services.world.journal.deployments().await.expect("journal"),
        known,
        "nothing started"
    );
    assert_eq!(silent.stall.dropped(), silent.stall.hung());
}

#[tokio::test(start_paused = true)]
async fn a_target_that_runs_nothing_leaves_the_fleet_it_was_given_in() {
    // The fleet given says `web` runs 1.0.0, but nothing of it runs: it was removed since, and
    // this run is its first install. `api` 1.2.0 works with every `web` but 1.0.0.
    let services = Services::only_api().await;
    let o = services.restarted(services.world.platform.clone(), api_1_2_denies_web_1_0());
    let to_1_2 = config("1.2.0", &SERVICES);
    let reports = o.run(&to_1_2).await.expect("run");
    for r in &reports {
        assert!(r.outcome.as_ref().is_some_and(|o| o.is_success()), "{r}");
    }
    assert_succeeded(&reports, &SERVICES);
    let fleet = o.fleet().expect("a validator is configured");
    assert_eq!(fleet.running("api"), [v("1.2.0")]);
    assert_eq!(fleet.running("web"), [v("1.2.0")]);
}
