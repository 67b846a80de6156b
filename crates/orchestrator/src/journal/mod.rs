//! The [`Journal`]: every state change of a deployment is written here **before** it is
//! carried out, so a process killed at any point can resume from the last record.
//!
//! [`FileJournal`] is the embedded default (an append-only file of JSON lines, synced to disk
//! after every record, in which [`FileJournal::compact`] reduces old finished deployments to
//! their last record);
//! [`InMemoryJournal`] serves tests and can simulate a crash right after a
//! given write. Behind the `testkit` feature, the module `journal::testkit` is the conformance
//! suite every journal runs.

mod file;
#[cfg(any(feature = "testkit", test))]
pub mod testkit;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serin_signals::Timestamp;

use crate::error::{Error, Result};
use crate::event::Event;
use crate::lock;
use crate::sample::Sample;
use crate::state::{DeploymentState, Effect, MAX_SEQ};

/// One journal record: the state a deployment moves to, the effects that move the world there,
/// and the events that tell about it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Record {
    /// The deployment's id.
    pub deployment: String,
    /// Position in the deployment's journal, from 0.
    pub seq: u64,
    /// When it was written.
    pub at: Timestamp,
    /// The state after this change.
    pub state: DeploymentState,
    /// What to carry out, in order (idempotent).
    pub effects: Vec<Effect>,
    /// What to announce once carried out.
    pub events: Vec<Event>,
    /// The new version's share of traffic, in percent, that the decision this record holds
    /// sets: announced ([`WeightChanged`](crate::EventKind::WeightChanged)) in a record of its
    /// own once the effects are carried out, so not among `events`. A deployment resumed from
    /// this record announces it as the uninterrupted run would have, even when it equals the
    /// share announced before (a canary stage entered at 0%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    /// What both arms looked like over the window observed just before this record, if one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<Sample>,
}

impl Record {
    /// Checks a record read back before a deployment resumes from it: it is its deployment's,
    /// its sequence number leaves room for the next, and its state passes
    /// [`DeploymentState::check_restored`]. A record edited by hand or damaged is refused with
    /// the field and the reason.
    pub fn check_restored(&self) -> Result<()> {
        if self.state.id != self.deployment {
            return Err(Error::invalid(
                "state.id",
                &self.state.id,
                format!("the record is of deployment `{}`", self.deployment),
            ));
        }
        if self.seq >= MAX_SEQ {
            return Err(Error::invalid(
                "seq",
                self.seq,
                "is past 2^53, more records than any deployment writes",
            ));
        }
        self.state.check_restored()
    }
}

/// Where deployments record their state changes before acting on them.
///
/// Contract: `append` returns only once the record is durable; `records` returns a
/// deployment's records in the order appended; a record that was cut short by a crash is
/// ignored, never half-read, but only when it was never acknowledged (it was the write in
/// flight, or was written again after the crash). A damaged record that may have been
/// acknowledged fails the reads of its deployment instead of leaving a silent gap: a resume
/// never replays around a lost record.
#[async_trait]
pub trait Journal: Send + Sync {
    /// A short name for errors.
    fn name(&self) -> &str;

    /// Appends `record` durably.
    async fn append(&self, record: &Record) -> Result<()>;

    /// The records of `deployment`, in order (empty if unknown).
    async fn records(&self, deployment: &str) -> Result<Vec<Record>>;

    /// Every deployment with records, in the order of their first record.
    async fn deployments(&self) -> Result<Vec<String>>;

    /// The last record of every deployment, in the order of their first record: what to look
    /// at to find the deployments a crash left unfinished. The default reads each deployment's
    /// records in turn; a journal that holds every deployment in one place reads it once.
    async fn last_records(&self) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        for deployment in self.deployments().await? {
            if let Some(last) = self.records(&deployment).await?.pop() {
                out.push(last);
            }
        }
        Ok(out)
    }

    /// Every record, deployment by deployment in the order of their first record, each
    /// deployment's in the order appended. The default reads each deployment's records in
    /// turn; a journal that holds every deployment in one place reads it once.
    async fn all_records(&self) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        for deployment in self.deployments().await? {
            out.extend(self.records(&deployment).await?);
        }
        Ok(out)
    }
}

#[async_trait]
impl<T: Journal + ?Sized> Journal for Arc<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    async fn append(&self, record: &Record) -> Result<()> {
        (**self).append(record).await
    }
    async fn records(&self, deployment: &str) -> Result<Vec<Record>> {
        (**self).records(deployment).await
    }
    async fn deployments(&self) -> Result<Vec<String>> {
        (**self).deployments().await
    }
    async fn last_records(&self) -> Result<Vec<Record>> {
        (**self).last_records().await
    }
    async fn all_records(&self) -> Result<Vec<Record>> {
        (**self).all_records().await
    }
}

/// Records in memory. [`stall_after`](InMemoryJournal::stall_after) makes an append keep the
/// record and then never return, which is what a crash right after a journal write looks like
/// to the executor: tests stop the executor there and resume.
#[derive(Debug, Clone, Default)]
pub struct InMemoryJournal {
    inner: Arc<Mutex<MemoryInner>>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    records: Vec<Record>,
    stall_at: Option<usize>,
}

impl InMemoryJournal {
    /// An empty journal.
    pub fn new() -> Self {
        Self::default()
    }

    /// The append that brings the journal to `total` records stores its record and then
    /// never returns. `None` turns this off.
    pub fn stall_after(&self, total: Option<usize>) {
        lock(&self.inner).stall_at = total;
    }

    /// Every record of every deployment, in order.
    pub fn all(&self) -> Vec<Record> {
        lock(&self.inner).records.clone()
    }

    /// How many records are held.
    pub fn len(&self) -> usize {
        lock(&self.inner).records.len()
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl Journal for InMemoryJournal {
    fn name(&self) -> &str {
        "in-memory"
    }

    async fn append(&self, record: &Record) -> Result<()> {
        let stall = {
            let mut inner = lock(&self.inner);
            inner.records.push(record.clone());
            inner.stall_at == Some(inner.records.len())
        };
        if stall {
            std::future::pending::<()>().await;
        }
        Ok(())
    }

    async fn records(&self, deployment: &str) -> Result<Vec<Record>> {
        Ok(lock(&self.inner)
            .records
            .iter()
            .filter(|r| r.deployment == deployment)
            .cloned()
            .collect())
    }

    async fn deployments(&self) -> Result<Vec<String>> {
        Ok(first_appearances(
            lock(&self.inner)
                .records
                .iter()
                .map(|r| r.deployment.as_str()),
        ))
    }
}

/// Each name once, in the order of its first appearance.
fn first_appearances<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut seen = HashSet::new();
    names
        .filter(|name| seen.insert(*name))
        .map(str::to_owned)
        .collect()
}

pub use file::{Compacted, FileJournal};

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_in_memory_journal_passes_the_conformance_suite() {
        testkit::check_journal(&InMemoryJournal::new()).await;
    }

    #[tokio::test]
    async fn the_in_memory_journal_can_stall_after_a_write() {
        let j = InMemoryJournal::new();
        let record = |seq| testkit::sample_record("web-1.1.0-1000", seq);
        j.stall_after(Some(2));
        j.append(&record(0)).await.expect("first");
        let stalled =
            tokio::time::timeout(std::time::Duration::from_millis(20), j.append(&record(1))).await;
        assert!(stalled.is_err(), "the second append never returns");
        assert_eq!(j.len(), 2, "but its record is kept");
        j.stall_after(None);
        j.append(&record(2)).await.expect("third");
        assert_eq!(j.records("web-1.1.0-1000").await.expect("records").len(), 3);
    }
}
