//! A journal that fails an append stops the deployment where its last record left it, whatever
//! error the journal reports: nothing is carried out, answered or announced as done that is
//! not journalled, and a resume goes on from the last record. A deployment's first record is
//! written before it takes the service's deployment lock, so that no crash leaves the lock
//! held by a deployment the journal does not know.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serin_orchestrator::{Error, InMemoryJournal, Journal, Outcome, Platform, Record, Stage};
use support::{Fault, Faulty, World, canary_config, until_weight};

/// The world's journal, failing the first append of a paused state with an error of its own
/// backend, as a journal kept in a database would report a lost connection.
struct RefusesPause {
    inner: Arc<InMemoryJournal>,
    failed: AtomicBool,
}

#[async_trait]
impl Journal for RefusesPause {
    fn name(&self) -> &str {
        "pg-journal"
    }

    async fn append(&self, record: &Record) -> serin_orchestrator::Result<()> {
        if record.state.paused && !self.failed.swap(true, Ordering::SeqCst) {
            return Err(Error::backend("database", "pg", "connection reset by peer"));
        }
        self.inner.append(record).await
    }

    async fn records(&self, deployment: &str) -> serin_orchestrator::Result<Vec<Record>> {
        self.inner.records(deployment).await
    }

    async fn deployments(&self) -> serin_orchestrator::Result<Vec<String>> {
        self.inner.deployments().await
    }
}

/// The pause's record is refused: the operator hears so, the deployment stops there instead
/// of going on paused from a state no record holds, and a resume carries on unpaused from
/// the last record to success.
#[tokio::test(start_paused = true)]
async fn a_pause_the_journal_refuses_stops_the_deployment_unpaused() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let journal = Arc::new(RefusesPause {
        inner: world.journal.clone(),
        failed: AtomicBool::new(false),
    });
    let config = canary_config("1.1.0");
    let h = world
        .orchestrator_over(journal)
        .start(&config, support::SERVICE)
        .await
        .expect("start");
    let id = h.id().to_owned();
    until_weight(&h, 10.0).await;
    let e = h.pause().await.expect_err("the pause was not journalled");
    assert!(e.to_string().contains("connection reset"), "{e}");
    let stopped = h
        .wait()
        .await
        .expect_err("the deployment stops at the failed append");
    assert!(
        matches!(&stopped, Error::Backend { backend, .. } if backend == "journal"),
        "{stopped:?}"
    );
    let records = world.journal.all();
    assert!(
        records.iter().all(|r| !r.state.paused),
        "no record says paused"
    );
    let last = records.last().expect("records");
    assert_eq!(last.state.stage, Stage::Canary);
    let report = world.resumed(&id).await;
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    assert!(world.journal.all().iter().all(|r| !r.state.paused));
}

/// A start killed while its first record is written has taken no deployment lock (the lock
/// comes after that record), so the service is not locked by a deployment the journal does
/// not know: a restarted process deploys it.
#[tokio::test(start_paused = true)]
async fn a_crash_before_the_first_record_is_durable_leaves_the_service_deployable() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    // The process is killed while writing the first record, before it is durable.
    let first = world.orchestrator_over(Faulty::new(&world, Fault::Lose, |r| r.seq == 0));
    let config = canary_config("1.1.0");
    let c = config.clone();
    let starter = tokio::spawn(async move { first.start(&c, support::SERVICE).await.map(drop) });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!starter.is_finished(), "the first record is being written");
    starter.abort();
    let second = world.orchestrator();
    assert!(second.unfinished().await.expect("unfinished").is_empty());
    let report = support::run_to_end(&second, &config).await;
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
}

/// A start killed between its first record and the deployment lock is found unfinished, and
/// its resume takes the lock and deploys.
#[tokio::test(start_paused = true)]
async fn a_start_cut_short_before_taking_the_lock_is_resumed_and_takes_it() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let config = canary_config("1.1.0");
    let first = world.journal.len() + 1;
    let last = support::crash_at(&world, world.orchestrator(), config, first).await;
    assert_eq!(last.seq, 0);
    assert_eq!(
        world
            .platform
            .lock_holder(support::SERVICE)
            .await
            .expect("holder"),
        None
    );
    let o = world.orchestrator();
    let unfinished = o.unfinished().await.expect("unfinished");
    assert_eq!(unfinished, std::slice::from_ref(&last.deployment));
    let report = support::resume_to_end(&o, &last.deployment).await;
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
}

/// A start refused for the lock another deployment holds ends as failed in the journal,
/// naming that deployment, so that nothing is left unfinished; the lock stays the other's.
#[tokio::test(start_paused = true)]
async fn a_start_refused_for_another_deployments_lock_is_journalled_as_failed() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    world
        .platform
        .lock(support::SERVICE, "web-other")
        .await
        .expect("lock");
    let o = world.orchestrator();
    let e = o
        .start(&canary_config("1.1.0"), support::SERVICE)
        .await
        .map(drop)
        .expect_err("the lock is another's");
    assert!(e.to_string().contains("web-other"), "{e}");
    assert!(o.unfinished().await.expect("unfinished").is_empty());
    let id = world
        .journal
        .all()
        .last()
        .expect("records")
        .deployment
        .clone();
    let report = o.report(&id).await.expect("report");
    let Some(Outcome::Failed { reason }) = &report.outcome else {
        panic!("{report}");
    };
    assert!(reason.contains("web-other"), "{reason}");
    assert_eq!(
        world
            .platform
            .lock_holder(support::SERVICE)
            .await
            .expect("holder"),
        Some("web-other".to_owned())
    );
}
