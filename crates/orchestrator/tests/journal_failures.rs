//! A journal that fails an append stops the deployment where its last record left it, whatever
//! error the journal reports: nothing is carried out, answered or announced as done that is
//! not journalled, and a resume goes on from the last record.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use serin_orchestrator::{Error, InMemoryJournal, Journal, Outcome, Record, Stage};
use support::{World, canary_config, until_weight};

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
