//! Several target services in one run: the set is validated as a whole before anything moves,
//! deployed group by group in the validator's rollout order (a group at the same time), and
//! each deployment is validated against the fleet as the groups before it left it. A set with
//! a target whose deployment has not finished starts nothing, and a run dropped before it
//! returns rolls back the deployments it started.

use std::sync::Arc;
use std::time::Duration;

use serin_compat::matrix::Requires;
use serin_compat::{Fleet, Matrix, Registry, Release, Rule, Selector, Validator};
use serin_orchestrator::{
    Clock, DeploymentConfig, Error, InMemoryJournal, InMemoryPlatform, Journal, OnResume,
    Orchestrator, Outcome, Platform, Report, ServiceBackends, Stage, StrategyKind,
};
use serin_signals::{
    HealthSignal, InMemoryHealth, InMemorySource, Probe, ProbeStatus, Timestamp, Track,
};
use serin_traffic::InMemoryRouter;

use crate::support;

fn v(s: &str) -> semver::Version {
    semver::Version::parse(s).expect("test version")
}

/// `api`, `db` and `cache` at 1.0.0 and 1.1.0; `api` 1.1.0 needs `db` at `db_req` (no rule
/// at all without one).
fn validator(db_req: Option<&str>) -> Validator {
    let mut registry = Registry::new();
    for service in ["api", "db", "cache"] {
        for version in ["1.0.0", "1.1.0"] {
            registry
                .add_release(service, Release::new(v(version)))
                .expect("release");
        }
    }
    let rules = db_req.map(|req| {
        Rule::Requires(Requires {
            id: Some("api-needs-db".into()),
            service: "api".into(),
            versions: Selector::parse(">=1.1.0", "test").expect("selector"),
            dependency: "db".into(),
            req: Selector::parse(req, "test").expect("selector"),
            reason: None,
        })
    });
    let matrix = Matrix::new(rules.into_iter().collect(), &registry).expect("matrix");
    Validator::new(registry, matrix).expect("validator")
}

struct Fixture {
    platform: Arc<InMemoryPlatform>,
    journal: Arc<InMemoryJournal>,
    /// The health source of `cache` alone.
    cache_health: Arc<InMemoryHealth>,
    clock: Clock,
    orchestrator: Orchestrator,
}

fn fixture(db_req: Option<&str>) -> Fixture {
    let platform = Arc::new(InMemoryPlatform::new());
    let journal = Arc::new(InMemoryJournal::new());
    let source = Arc::new(InMemorySource::new());
    let health = Arc::new(InMemoryHealth::new());
    let clock = Clock::starting_at(Timestamp::from_millis(1_700_000_000_000));
    let mut builder = Orchestrator::builder(platform.clone(), journal.clone())
        .clock(clock)
        .validator(validator(db_req), Fleet::new());
    let cache_health = Arc::new(InMemoryHealth::new());
    for (service, health) in [
        ("api", health.clone()),
        ("db", health),
        ("cache", cache_health.clone()),
    ] {
        let backends =
            ServiceBackends::new(Arc::new(InMemoryRouter::new()), source.clone(), health);
        builder = builder.service(service, backends);
    }
    Fixture {
        platform,
        journal,
        cache_health,
        clock,
        orchestrator: builder.build(),
    }
}

/// The config lists `api` first, although its new version needs the new `db`.
fn config() -> DeploymentConfig {
    DeploymentConfig::new(StrategyKind::BlueGreen, v("1.1.0"), &["api", "db"]).expect("config")
}

/// Every service at 1.0.0 (no rule applies to it): first installs, with nothing to compare.
async fn install(f: &Fixture) {
    let install =
        DeploymentConfig::new(StrategyKind::BlueGreen, v("1.0.0"), &["api", "db", "cache"])
            .expect("config");
    let reports = f.orchestrator.run(&install).await.expect("install");
    assert_eq!(reports.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_dependency_is_deployed_first_and_the_next_validation_sees_it() {
    let f = fixture(Some(">=1.1.0"));
    install(&f).await;
    let plans = f.orchestrator.plan(&config()).await.expect("plan");
    let planned: Vec<&str> = plans.iter().map(|p| p.service.as_str()).collect();
    assert_eq!(planned, ["db", "api"]);
    for p in &plans {
        assert!(!p.steps[0].contains("BLOCKED"), "{p}");
    }

    let reports = f.orchestrator.run(&config()).await.expect("run");
    let done = succeeded(&reports);
    assert_eq!(done, [("db", true), ("api", true)]);
    assert!(reports[0].last_at > reports[0].started_at);
    assert!(
        reports[1].started_at >= reports[0].last_at,
        "api waited for db"
    );
    let fleet = f.orchestrator.fleet().expect("a validator is configured");
    assert_eq!(fleet.running("db"), [v("1.1.0")]);
    assert_eq!(fleet.running("api"), [v("1.1.0")]);
}

#[tokio::test(start_paused = true)]
async fn a_set_that_no_order_lets_through_starts_nothing() {
    // No release of db satisfies api 1.1.0.
    let f = fixture(Some(">=2.0.0"));
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
    let f = fixture(Some(">=1.1.0"));
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

#[tokio::test(start_paused = true)]
async fn services_that_may_move_in_either_order_are_deployed_at_the_same_time() {
    let f = fixture(None);
    install(&f).await;
    let plans = f.orchestrator.plan(&config()).await.expect("plan");
    assert_eq!(plans.len(), 2);
    let reports = f.orchestrator.run(&config()).await.expect("run");
    assert_eq!(reports.len(), 2);
    assert!(
        reports
            .iter()
            .all(|r| r.outcome.as_ref().is_some_and(|o| o.is_success()))
    );
    // Both started at the same instant, and each ended after the other had started.
    assert_eq!(reports[0].started_at, reports[1].started_at);
    assert!(reports[0].last_at > reports[1].started_at);
    assert!(reports[1].last_at > reports[0].started_at);
}

#[tokio::test(start_paused = true)]
async fn when_one_of_a_group_fails_the_others_finish_and_no_later_group_starts() {
    let f = fixture(Some(">=1.1.0"));
    install(&f).await;
    // cache's dependency probe fails: its deployment stops in preparation.
    let now = f.clock.now();
    for track in [Track::Blue, Track::Green, Track::Stable] {
        f.cache_health
            .record(HealthSignal::new(
                track,
                Probe::Dependency("redis".into()),
                ProbeStatus::Fail,
                now,
            ))
            .expect("record");
    }
    let all = DeploymentConfig::new(StrategyKind::BlueGreen, v("1.1.0"), &["api", "db", "cache"])
        .expect("config");
    let reports = f.orchestrator.run(&all).await.expect("run");
    let mut done = succeeded(&reports);
    // db and cache form the first group; api, which needs the new db, never starts.
    done.sort_unstable();
    assert_eq!(done, [("cache", false), ("db", true)]);
    let db = reports.iter().find(|r| r.service == "db").expect("db");
    let cache = reports
        .iter()
        .find(|r| r.service == "cache")
        .expect("cache");
    assert!(
        db.last_at > cache.last_at,
        "db ran to its end after cache failed"
    );
    let fleet = f.orchestrator.fleet().expect("fleet");
    assert_eq!(fleet.running("api"), [v("1.0.0")]);
    assert_eq!(fleet.running("cache"), [v("1.0.0")]);
}

/// The versions of `service` the platform runs.
async fn running(f: &Fixture, service: &str) -> Vec<String> {
    let tracks = f.platform.list().await.expect("list");
    tracks
        .into_iter()
        .filter(|t| t.service == service)
        .map(|t| t.version.to_string())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_dependent_is_not_deployed_over_an_unfinished_dependency() {
    let f = fixture(Some(">=1.1.0"));
    install(&f).await;
    // db's deployment to 1.1.0 is watched after its promotion (all traffic on 1.1.0), and
    // rolls back if it is resumed after a crash.
    let mut db_alone =
        DeploymentConfig::new(StrategyKind::BlueGreen, v("1.1.0"), &["db"]).expect("config");
    db_alone.on_resume = OnResume::Rollback;
    let h = f
        .orchestrator
        .start(&db_alone, "db")
        .await
        .expect("start db");
    let db = h.id().to_owned();
    support::until_stage(&h, Stage::Monitoring).await;
    let deployments = f.journal.deployments().await.expect("journal").len();
    let fleet = f.orchestrator.fleet();

    // While it runs here, and once it is cut short (its lock kept), the run of api and db
    // starts nothing: api 1.1.0 would run over a db that may yet roll back.
    let refused = |err: Error| {
        let Error::Conflict {
            deployment, reason, ..
        } = &err
        else {
            panic!("expected a conflict, got {err}");
        };
        assert_eq!(deployment, "db", "{err}");
        assert!(reason.contains(&db), "{err}");
    };
    refused(f.orchestrator.run(&config()).await.expect_err("db runs"));
    h.kill();
    tokio::task::yield_now().await; // the killed executor's task ends
    refused(
        f.orchestrator
            .run(&config())
            .await
            .expect_err("db is unfinished"),
    );
    let deployed = f.journal.deployments().await.expect("journal").len();
    assert_eq!(deployed, deployments, "no deployment was started");
    assert_eq!(f.orchestrator.fleet(), fleet);
    assert_eq!(running(&f, "api").await, ["1.0.0"]);
    let plans = f.orchestrator.plan(&config()).await.expect("plan");
    for p in &plans {
        assert!(p.steps[0].starts_with("start: REFUSED"), "{p}");
        assert!(p.steps[0].contains(&db), "{p}");
    }

    // Resumed, db rolls back, and api still runs the version that works with db 1.0.0.
    let back = f.orchestrator.resume(&db).await.expect("resume");
    let back = back.wait().await.expect("report");
    assert!(
        matches!(back.outcome, Some(Outcome::RolledBack { .. })),
        "{back}"
    );
    assert_eq!(running(&f, "db").await, ["1.0.0"]);
    assert_eq!(running(&f, "api").await, ["1.0.0"]);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_run_rolls_back_the_deployments_it_started() {
    let f = fixture(Some(">=1.1.0"));
    install(&f).await;
    // The caller gives up on the run after a minute (a timeout, a select! on Ctrl-C), while db,
    // the first group, is under way.
    let all = config();
    let gave_up = tokio::time::timeout(Duration::from_secs(60), f.orchestrator.run(&all)).await;
    assert!(
        gave_up.is_err(),
        "the run is still under way after a minute"
    );
    let deployments = f.journal.deployments().await.expect("journal");
    let started: Vec<&String> = deployments
        .iter()
        .filter(|d| d.contains("-1.1.0-"))
        .collect();
    let [db] = started.as_slice() else {
        panic!("db alone started: {started:?}");
    };
    assert!(db.starts_with("db-"), "{db}");

    // db's deployment ends as an operator's abort ends it: rolled back, 1.0.0 serving.
    let report = support::bounded("db's deployment", async {
        loop {
            let status = f.orchestrator.status(db).await.expect("status");
            if status.outcome.is_some() {
                return f.orchestrator.report(db).await.expect("report");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
    .await;
    let Some(Outcome::RolledBack { reason }) = &report.outcome else {
        panic!("{report}");
    };
    assert!(reason.contains("aborted"), "{reason}");
    assert_eq!(running(&f, "db").await, ["1.0.0"]);
    assert_eq!(running(&f, "api").await, ["1.0.0"]);
    assert!(
        f.orchestrator
            .unfinished()
            .await
            .expect("unfinished")
            .is_empty()
    );

    // Nothing is left holding the services: the run goes through when asked again.
    let reports = f.orchestrator.run(&all).await.expect("run");
    let done = succeeded(&reports);
    assert_eq!(done, [("db", true), ("api", true)]);
}

/// Each report's service, and whether its deployment succeeded, in the order of the reports.
fn succeeded(reports: &[Report]) -> Vec<(&str, bool)> {
    reports
        .iter()
        .map(|r| {
            let ok = r.outcome.as_ref().is_some_and(|o| o.is_success());
            (r.service.as_str(), ok)
        })
        .collect()
}
