//! Several target services in one run: the set is validated as a whole before anything moves,
//! deployed in the validator's rollout order, and each deployment is validated against the
//! fleet as the ones before it left it.

use std::sync::Arc;

use serin_compat::matrix::Requires;
use serin_compat::{Fleet, Matrix, Registry, Release, Rule, Selector, Validator};
use serin_orchestrator::{
    Clock, DeploymentConfig, Error, InMemoryJournal, InMemoryPlatform, Journal, Orchestrator,
    Platform, ServiceBackends, StrategyKind,
};
use serin_signals::{InMemoryHealth, InMemorySource, Timestamp};
use serin_traffic::InMemoryRouter;

fn v(s: &str) -> semver::Version {
    semver::Version::parse(s).expect("test version")
}

/// `api` and `db` at 1.0.0 and 1.1.0; `api` 1.1.0 needs `db` at `db_req`.
fn validator(db_req: &str) -> Validator {
    let mut registry = Registry::new();
    for service in ["api", "db"] {
        for version in ["1.0.0", "1.1.0"] {
            registry
                .add_release(service, Release::new(v(version)))
                .expect("release");
        }
    }
    let rule = Rule::Requires(Requires {
        id: Some("api-needs-db".into()),
        service: "api".into(),
        versions: Selector::parse(">=1.1.0", "test").expect("selector"),
        dependency: "db".into(),
        req: Selector::parse(db_req, "test").expect("selector"),
        reason: None,
    });
    let matrix = Matrix::new(vec![rule], &registry).expect("matrix");
    Validator::new(registry, matrix).expect("validator")
}

struct Fixture {
    platform: Arc<InMemoryPlatform>,
    journal: Arc<InMemoryJournal>,
    orchestrator: Orchestrator,
}

fn fixture(db_req: &str) -> Fixture {
    let platform = Arc::new(InMemoryPlatform::new());
    let journal = Arc::new(InMemoryJournal::new());
    let source = Arc::new(InMemorySource::new());
    let health = Arc::new(InMemoryHealth::new());
    let mut builder = Orchestrator::builder(platform.clone(), journal.clone())
        .clock(Clock::starting_at(Timestamp::from_millis(
            1_700_000_000_000,
        )))
        .validator(validator(db_req), Fleet::new());
    for service in ["api", "db"] {
        let backends = ServiceBackends::new(
            Arc::new(InMemoryRouter::new()),
            source.clone(),
            health.clone(),
        );
        builder = builder.service(service, backends);
    }
    Fixture {
        platform,
        journal,
        orchestrator: builder.build(),
    }
}

/// The config lists `api` first, although its new version needs the new `db`.
fn config() -> DeploymentConfig {
    DeploymentConfig::new(StrategyKind::BlueGreen, v("1.1.0"), &["api", "db"]).expect("config")
}

#[tokio::test(start_paused = true)]
async fn a_dependency_is_deployed_first_and_the_next_validation_sees_it() {
    let f = fixture(">=1.1.0");
    let plans = f.orchestrator.plan(&config()).await.expect("plan");
    let planned: Vec<&str> = plans.iter().map(|p| p.service.as_str()).collect();
    assert_eq!(planned, ["db", "api"]);
    for p in &plans {
        assert!(!p.steps[0].contains("BLOCKED"), "{p}");
    }

    let reports = f.orchestrator.run(&config()).await.expect("run");
    let done: Vec<(&str, bool)> = reports
        .iter()
        .map(|r| {
            let ok = r.outcome.as_ref().is_some_and(|o| o.is_success());
            (r.service.as_str(), ok)
        })
        .collect();
    assert_eq!(done, [("db", true), ("api", true)], "{reports:?}");
    let fleet = f.orchestrator.fleet().expect("a validator is configured");
    assert_eq!(fleet.running("db"), [v("1.1.0")]);
    assert_eq!(fleet.running("api"), [v("1.1.0")]);
}

#[tokio::test(start_paused = true)]
async fn a_set_that_no_order_lets_through_starts_nothing() {
    // No release of db satisfies api 1.1.0.
    let f = fixture(">=2.0.0");
    let err = f.orchestrator.run(&config()).await.unwrap_err();
    let Error::Blocked {
        service, reason, ..
    } = &err
    else {
        panic!("expected blocked, got {err}");
    };
    assert_eq!(service, "api, db");
    assert!(reason.contains("matrix.requires"), "{reason}");
    assert!(f.platform.list().await.expect("list").is_empty());
    assert!(f.journal.deployments().await.expect("journal").is_empty());
    assert!(
        f.orchestrator
            .fleet()
            .expect("fleet")
            .iter()
            .next()
            .is_none()
    );

    let plans = f.orchestrator.plan(&config()).await.expect("plan");
    assert_eq!(plans.len(), 2);
    for p in &plans {
        assert!(
            p.steps[0].starts_with("validation: BLOCKED — the target services together"),
            "{p}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_single_service_deployment_validates_against_the_updated_fleet() {
    let f = fixture(">=1.1.0");
    let api_alone =
        DeploymentConfig::new(StrategyKind::BlueGreen, v("1.1.0"), &["api"]).expect("config");
    let db_alone =
        DeploymentConfig::new(StrategyKind::BlueGreen, v("1.1.0"), &["db"]).expect("config");
    // Before db moves, api 1.1.0 alone is blocked.
    let blocked = f.orchestrator.run(&api_alone).await.expect("run").remove(0);
    assert!(
        blocked.outcome.as_ref().is_some_and(|o| !o.is_success()),
        "{blocked}"
    );
    let db = f.orchestrator.run(&db_alone).await.expect("run").remove(0);
    assert!(db.outcome.as_ref().is_some_and(|o| o.is_success()), "{db}");
    let api = f.orchestrator.run(&api_alone).await.expect("run").remove(0);
    assert!(
        api.outcome.as_ref().is_some_and(|o| o.is_success()),
        "{api}"
    );
}
