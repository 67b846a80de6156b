//! A journal over the world's own that fails, stalls or loses one chosen append: the crash
//! points and journal failures that the tests of resumption inject.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use serin_orchestrator::{Error, InMemoryJournal, Journal, Record};

use super::World;

/// What the faulty journal does to the append it picks.
#[derive(Clone, Copy)]
pub enum Fault {
    /// Refuses it: nothing is stored and the append fails, as on a full disk.
    Fail,
    /// Stores it and never returns: a crash right after the write.
    Stall,
    /// Stores nothing and never returns: a crash while writing it, before it is durable.
    Lose,
}

pub type Pick = Box<dyn Fn(&Record) -> bool + Send + Sync>;

/// The world's journal, with the first append that `pick` chooses failed or stalled.
pub struct Faulty {
    inner: Arc<InMemoryJournal>,
    pick: Pick,
    fault: Fault,
    fired: AtomicBool,
}

impl Faulty {
    pub fn new(
        world: &World,
        fault: Fault,
        pick: impl Fn(&Record) -> bool + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Faulty {
            inner: world.journal.clone(),
            pick: Box::new(pick),
            fault,
            fired: AtomicBool::new(false),
        })
    }

    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Journal for Faulty {
    fn name(&self) -> &str {
        "faulty"
    }

    async fn append(&self, record: &Record) -> serin_orchestrator::Result<()> {
        if !self.fired() && (self.pick)(record) {
            self.fired.store(true, Ordering::SeqCst);
            match self.fault {
                Fault::Fail => {
                    return Err(Error::backend(
                        "journal",
                        "faulty",
                        "no space left on device",
                    ));
                }
                Fault::Stall => {
                    self.inner.append(record).await?;
                    std::future::pending::<()>().await;
                }
                Fault::Lose => std::future::pending::<()>().await,
            }
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
