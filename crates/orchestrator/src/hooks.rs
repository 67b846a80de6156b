//! The [`Notifier`] and [`BackupProvider`] traits, with in-memory implementations that record
//! what they were asked (real channels and backups are separate crates).

use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::config::NotificationChannel;
use crate::error::{Error, Result};
use crate::event::Event;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Delivers events to a notification channel (Slack, e-mail, PagerDuty, a webhook).
///
/// The orchestrator calls it after an event is journalled and executed, only for the
/// channels subscribed to the event's category. A failure is logged and never stops or rolls
/// back a deployment: a notification is a courtesy, not a safety mechanism.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Delivers `event` to `channel`.
    async fn notify(&self, channel: &NotificationChannel, event: &Event) -> Result<()>;
}

/// Records every notification in memory.
#[derive(Debug, Clone, Default)]
pub struct InMemoryNotifier {
    sent: Arc<Mutex<Vec<(NotificationChannel, Event)>>>,
}

impl InMemoryNotifier {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything delivered so far, in order.
    pub fn sent(&self) -> Vec<(NotificationChannel, Event)> {
        lock(&self.sent).clone()
    }
}

#[async_trait]
impl Notifier for InMemoryNotifier {
    async fn notify(&self, channel: &NotificationChannel, event: &Event) -> Result<()> {
        lock(&self.sent).push((channel.clone(), event.clone()));
        Ok(())
    }
}

/// Takes a backup (a database dump, a snapshot) before a deployment changes anything, and
/// restores it on request.
#[async_trait]
pub trait BackupProvider: Send + Sync {
    /// A short name for messages.
    fn name(&self) -> &str;

    /// Takes a backup labelled with the service and the version being replaced; returns its id.
    async fn backup(&self, service: &str, label: &str) -> Result<String>;

    /// Restores the backup `id`.
    async fn restore(&self, id: &str) -> Result<()>;
}

/// Records backups and restores in memory; can be told to fail.
#[derive(Debug, Clone, Default)]
pub struct InMemoryBackup {
    inner: Arc<Mutex<BackupLog>>,
}

#[derive(Debug, Default)]
struct BackupLog {
    taken: Vec<(String, String, String)>,
    restored: Vec<String>,
    fail_next: Option<String>,
}

impl InMemoryBackup {
    /// An empty provider.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next backup fails with `reason`.
    pub fn fail_next(&self, reason: impl Into<String>) {
        lock(&self.inner).fail_next = Some(reason.into());
    }

    /// Backups taken: (id, service, label).
    pub fn taken(&self) -> Vec<(String, String, String)> {
        lock(&self.inner).taken.clone()
    }

    /// Ids restored, in order.
    pub fn restored(&self) -> Vec<String> {
        lock(&self.inner).restored.clone()
    }
}

#[async_trait]
impl BackupProvider for InMemoryBackup {
    fn name(&self) -> &str {
        "in-memory"
    }

    async fn backup(&self, service: &str, label: &str) -> Result<String> {
        let mut log = lock(&self.inner);
        if let Some(reason) = log.fail_next.take() {
            return Err(Error::backend("backup", "in-memory", reason));
        }
        let id = format!("backup-{}-{service}", log.taken.len() + 1);
        log.taken
            .push((id.clone(), service.to_owned(), label.to_owned()));
        Ok(id)
    }

    async fn restore(&self, id: &str) -> Result<()> {
        let mut log = lock(&self.inner);
        if !log.taken.iter().any(|(t, _, _)| t == id) {
            return Err(Error::not_found("backup", id));
        }
        log.restored.push(id.to_owned());
        Ok(())
    }
}

/// Carries out the steps of a validated upgrade's checklist that a machine can do (expand and
/// contract migrations through a migration tool, flag changes through a flag service).
///
/// The orchestrator runs no SQL itself. It calls the runner for each step when the step's phase
/// comes: steps before the deployment in preparation, steps after it in completion (once the
/// old version is retired). Without a runner, or when the runner answers `None`, the step is
/// recorded as due, for an operator.
#[async_trait]
pub trait StepRunner: Send + Sync {
    /// A short name for messages.
    fn name(&self) -> &str;

    /// Carries out `step` of `deployment`: `Some(evidence)` when done, `None` when the step is
    /// left to an operator. An error before the deployment fails it with nothing changed; an
    /// error after it is recorded on the step (the new version already serves all traffic).
    async fn run(&self, deployment: &str, step: &serin_compat::Step) -> Result<Option<String>>;
}

/// Records the steps it is asked to run and reports them done; can be told to fail or to leave
/// steps of some kinds to an operator.
#[derive(Debug, Clone, Default)]
pub struct InMemoryStepRunner {
    inner: Arc<Mutex<StepLog>>,
}

#[derive(Debug, Default)]
struct StepLog {
    ran: Vec<(String, serin_compat::Step)>,
    leave: Vec<serin_compat::steps::StepKind>,
    fail_next: Option<String>,
}

impl InMemoryStepRunner {
    /// A runner that does every step.
    pub fn new() -> Self {
        Self::default()
    }

    /// Steps of `kind` are left to an operator (answered `None`).
    pub fn leaving(self, kind: serin_compat::steps::StepKind) -> Self {
        lock(&self.inner).leave.push(kind);
        self
    }

    /// The next step fails with `reason`.
    pub fn fail_next(&self, reason: impl Into<String>) {
        lock(&self.inner).fail_next = Some(reason.into());
    }

    /// The steps carried out: (deployment, step), in order.
    pub fn ran(&self) -> Vec<(String, serin_compat::Step)> {
        lock(&self.inner).ran.clone()
    }
}

#[async_trait]
impl StepRunner for InMemoryStepRunner {
    fn name(&self) -> &str {
        "in-memory"
    }

    async fn run(&self, deployment: &str, step: &serin_compat::Step) -> Result<Option<String>> {
        let mut log = lock(&self.inner);
        if let Some(reason) = log.fail_next.take() {
            return Err(Error::backend("step runner", "in-memory", reason));
        }
        if log.leave.contains(&step.kind) {
            return Ok(None);
        }
        log.ran.push((deployment.to_owned(), step.clone()));
        Ok(Some(format!(
            "step {} recorded by the in-memory runner",
            log.ran.len()
        )))
    }
}
