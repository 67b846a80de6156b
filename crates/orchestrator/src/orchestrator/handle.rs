//! A running deployment's handle and status, and the per-service lock its executor holds.

use std::fmt;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::event::Phase;
use crate::lock;
use crate::report::Report;
use crate::run::Operation;
use crate::state::{DeploymentState, Outcome, Stage};

use super::Inner;

/// A deployment's status, as its handle reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// The deployment's id.
    pub deployment: String,
    /// The service.
    pub service: String,
    /// Where it stands.
    pub stage: Stage,
    /// The brief's phase.
    pub phase: Phase,
    /// The new version's share of traffic, in percent.
    pub weight: f64,
    /// Paused by an operator; never once the deployment is over.
    pub paused: bool,
    /// How it ended, once over.
    pub outcome: Option<Outcome>,
}

impl Status {
    pub(crate) fn of(s: &DeploymentState) -> Self {
        Status {
            deployment: s.id.clone(),
            service: s.service.clone(),
            stage: s.stage,
            phase: s.phase(),
            weight: s.weight,
            // Journals written before a finish cleared it may hold a finished, paused state.
            paused: s.paused && s.stage != Stage::Done,
            outcome: s.outcome.clone(),
        }
    }
}

/// Operates one running deployment.
///
/// The deployment runs in a task of its own: dropping its handle neither stops nor aborts
/// it, and it goes on to its end, journalled and announced as ever (its report is then read
/// with [`Orchestrator::report`](super::Orchestrator::report)). Nothing in this process can
/// operate it any more, though: while it runs here, [`resume`](super::Orchestrator::resume)
/// and [`abandon`](super::Orchestrator::abandon) refuse it. Keep the handle to promote,
/// pause or abort it.
pub struct DeploymentHandle {
    pub(super) id: String,
    pub(super) commands: mpsc::UnboundedSender<(Operation, oneshot::Sender<Result<()>>)>,
    pub(super) status: watch::Receiver<Status>,
    pub(super) task: JoinHandle<Result<Report>>,
}

impl fmt::Debug for DeploymentHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeploymentHandle")
            .field("id", &self.id)
            .finish()
    }
}

impl DeploymentHandle {
    /// The deployment's id (for `resume` and `report`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The latest status.
    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// A receiver that sees every status change.
    pub fn watch(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    async fn send(&self, op: Operation) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.commands.send((op, tx)).map_err(|_| {
            Error::conflict(
                format!("{op:?}").to_lowercase(),
                &self.id,
                "the deployment is over",
            )
        })?;
        rx.await.map_err(|_| {
            Error::conflict(
                format!("{op:?}").to_lowercase(),
                &self.id,
                "the deployment is over",
            )
        })?
    }

    /// Gives the new version all traffic now (refused while a judge fails), through a
    /// rollback trigger's hold, and lifts a pause. A canary track that must first grow to full
    /// size and is not ready at once takes all traffic once ready: the promote is answered
    /// when it is under way, and the status and the events tell the rest. During the watch
    /// after promotion it ends the watch; after it, the old version's warm delay is not cut
    /// short (only a pause is lifted; see [`Operation::Promote`]).
    pub async fn promote(&self) -> Result<()> {
        self.send(Operation::Promote).await
    }

    /// Rolls back now.
    pub async fn abort(&self) -> Result<()> {
        self.send(Operation::Abort).await
    }

    /// Holds the weight where it is (a promotion's grown track too, see
    /// [`Operation::Pause`]); triggers keep watching and may still roll back.
    pub async fn pause(&self) -> Result<()> {
        self.send(Operation::Pause).await
    }

    /// Carries on after a pause or an indefinite pause step.
    pub async fn resume(&self) -> Result<()> {
        self.send(Operation::Resume).await
    }

    /// Waits for the end and returns the report.
    pub async fn wait(mut self) -> Result<Report> {
        self.finished().await
    }

    /// [`wait`](Self::wait), keeping the handle: a caller dropped while it waits still holds
    /// it (see [`abort_unheard`](Self::abort_unheard)).
    pub(super) async fn finished(&mut self) -> Result<Report> {
        (&mut self.task)
            .await
            .map_err(|e| Error::conflict("wait", &self.id, format!("the executor stopped: {e}")))?
    }

    /// Asks the deployment to [`abort`](Self::abort) without waiting for its answer: for a
    /// caller that is being dropped and cannot wait. A deployment over or rolling back
    /// refuses it, as it refuses any abort.
    pub(super) fn abort_unheard(&self) {
        let (reply, _) = oneshot::channel();
        // Fails only once the executor has ended: there is nothing left to abort.
        let _ = self.commands.send((Operation::Abort, reply));
    }

    /// Stops the executor where it stands, without rolling back — what a crash does. The
    /// journal keeps the last state; [`Orchestrator::resume`](super::Orchestrator::resume) finishes the deployment.
    pub fn kill(self) {
        self.task.abort();
    }
}

/// Removes the service's lock when the executor ends, however it ends.
pub(super) struct LockGuard {
    pub(super) inner: Arc<Inner>,
    pub(super) service: String,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        lock(&self.inner.locks).remove(&self.service);
    }
}

/// The deployments a [`run`](super::Orchestrator::run) started and has not seen end, in the
/// order it started them. Dropped with the run (a timeout, a `select!` that chose another
/// branch), it aborts each: their handles go with the run, and nothing could stop them then.
#[derive(Default)]
pub(super) struct Unwaited(pub(super) std::collections::VecDeque<DeploymentHandle>);

impl Drop for Unwaited {
    fn drop(&mut self) {
        for handle in &self.0 {
            handle.abort_unheard();
        }
    }
}
