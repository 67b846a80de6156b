//! The [`Notifier`], [`BackupProvider`] and [`StepRunner`] traits, with in-memory
//! implementations that record what they were asked (real backups are in `backup`, behind the
//! `backup` feature).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serin_signals::Timestamp;

use crate::backup::Retention;
use crate::config::NotificationChannel;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::lock;

#[cfg(any(feature = "testkit", test))]
pub mod step_testkit;

/// Delivers events to a notification channel (Slack, e-mail, PagerDuty, a webhook).
///
/// The orchestrator calls [`notify_in`](Notifier::notify_in) after an event is journalled and
/// executed, only for the channels subscribed to the event's category, with the deployment's
/// [`NotifyContext`] (its environment and namespace). A failure is logged and never stops or
/// rolls back a deployment: a notification is a courtesy, not a safety mechanism. The call is
/// awaited, so that each channel gets events in order, but for
/// [`notify_timeout`](crate::OrchestratorBuilder::notify_timeout) at most (default 5 s): a call
/// that takes longer is dropped, logged and counted, and the deployment goes on. An
/// implementation that talks to a slow service should queue and answer at once.
///
/// An implementation needs only [`notify`](Notifier::notify): `notify_in` calls it by default,
/// dropping the context. One that tells its readers where the deployment runs (the
/// environment in a page's summary, say) overrides `notify_in` as well.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Delivers `event` to `channel`.
    async fn notify(&self, channel: &NotificationChannel, event: &Event) -> Result<()>;

    /// Delivers `event` of a deployment running in `ctx` to `channel`; what the orchestrator
    /// calls. By default [`notify`](Notifier::notify), without the context.
    ///
    /// The context is an argument rather than part of the [`Event`]: it describes the
    /// deployment, not what happened, and the journal and the report record it once, with the
    /// deployment's config, not in every event.
    async fn notify_in(
        &self,
        ctx: &NotifyContext,
        channel: &NotificationChannel,
        event: &Event,
    ) -> Result<()> {
        let _ = ctx;
        self.notify(channel, event).await
    }
}

/// Where the deployment an event belongs to runs, as its config names it: what a reader of a
/// notification needs to tell `prod` from `staging` before reading on.
///
/// Both fields are labels from the [`DeploymentConfig`](crate::DeploymentConfig)
/// (`environment`, `namespace`, or `ENVIRONMENT`, `NAMESPACE`), `None` when it names none.
/// Non-exhaustive, so that more of the deployment's surroundings can be added without breaking
/// notifiers: build one with [`new`](Self::new) and the `with_` methods.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NotifyContext {
    /// The environment deployed to (`prod`, `staging`).
    pub environment: Option<String>,
    /// The namespace deployed to.
    pub namespace: Option<String>,
}

impl NotifyContext {
    /// A context that names nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// With the environment deployed to.
    pub fn with_environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(environment.into());
        self
    }

    /// With the namespace deployed to.
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// The context of a deployment run with `config`.
    pub(crate) fn of(config: &crate::DeploymentConfig) -> Self {
        let named = |s: &Option<String>| s.as_ref().filter(|s| !s.trim().is_empty()).cloned();
        NotifyContext {
            environment: named(&config.environment),
            namespace: named(&config.namespace),
        }
    }
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
///
/// The contract, checked by the conformance suite `backup::testkit` (feature `testkit`):
/// - [`backup`](BackupProvider::backup) returns a new id, distinct from every other id the
///   provider has returned; a failure leaves no backup behind.
/// - [`info`](BackupProvider::info) and [`list`](BackupProvider::list) describe what was taken
///   ([`BackupInfo`]: service, label, time, size, duration and the checks a restore is verified
///   against); providers that keep their metadata on disk answer them across processes.
/// - [`restore`](BackupProvider::restore) puts the backed-up state back and verifies it against
///   the recorded checks; a verification that fails is an error, never a silent success.
/// - [`delete`](BackupProvider::delete) removes a backup; afterwards it is not found.
/// - An unknown id is [`Error::NotFound`] everywhere.
///
/// A deployment bounds the calls it makes in preparation (the listing, the backup, a restore)
/// as it bounds a [`StepRunner`]'s: at `maxDeploymentDuration` or on an operator's abort it
/// drops the call's future, which cancels it at its next `.await`. A dropped backup must
/// leave no backup behind, as a failed one does, and a provider that spawns a process ties
/// it to the future (`kill_on_drop`), so a cancelled dump or restore does not run on. What a
/// dropped restore put back until then is not undone: the deployment fails saying so.
///
/// `info`, `list` and `delete` were added after the first three methods; their default bodies
/// answer that the provider does not support them, so older implementations still compile.
#[async_trait]
pub trait BackupProvider: Send + Sync {
    /// A short name for messages.
    fn name(&self) -> &str;

    /// Takes a backup labelled with the service and the version being replaced; returns its id.
    async fn backup(&self, service: &str, label: &str) -> Result<String>;

    /// Restores the backup `id`.
    async fn restore(&self, id: &str) -> Result<()>;

    /// What is known of the backup `id` ([`Error::NotFound`] for an unknown id).
    async fn info(&self, id: &str) -> Result<BackupInfo> {
        Err(Error::backend(
            "backup",
            self.name(),
            format!("cannot describe backup `{id}`: this provider keeps no catalog"),
        ))
    }

    /// The backups of `service` that still exist, oldest first.
    async fn list(&self, service: &str) -> Result<Vec<BackupInfo>> {
        Err(Error::backend(
            "backup",
            self.name(),
            format!("cannot list the backups of `{service}`: this provider keeps no catalog"),
        ))
    }

    /// Deletes the backup `id` ([`Error::NotFound`] for an unknown id).
    async fn delete(&self, id: &str) -> Result<()> {
        Err(Error::backend(
            "backup",
            self.name(),
            format!("cannot delete backup `{id}`: this provider does not support deletion"),
        ))
    }

    /// The retention the provider enforces after each backup, if any. A rollback that must
    /// restore a backup takes a fresh one first; knowing the retention, the orchestrator
    /// refuses the rollback up front when that fresh backup would expire the one to restore.
    fn retention(&self) -> Option<Retention> {
        None
    }
}

/// What a provider records about one backup, so that `list` and `info` can answer and a
/// restore can be verified.
///
/// Serialized in camelCase; `duration` as a human string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct BackupInfo {
    /// The id [`BackupProvider::backup`] returned.
    pub id: String,
    /// The service it was taken for.
    pub service: String,
    /// The label it was given (`before 1.2.0 -> 1.3.0`).
    pub label: String,
    /// When it was taken.
    pub created_at: Timestamp,
    /// Its size in bytes, as stored (a dump file, a copied tree, a template database).
    pub size_bytes: u64,
    /// How long taking it lasted.
    #[serde(with = "serin_signals::duration")]
    pub duration: Duration,
    /// What a restore is verified against (row counts and checksums of tables, file hashes).
    pub checks: Vec<BackupCheck>,
    /// What was backed up, in the provider's words (`directory /srv/web/data`, `postgres
    /// database shop on 127.0.0.1:5432`). Providers that keep their backups in one store list,
    /// restore and delete only those of their own source, so one never restores another's
    /// data or prunes another's backups. `None` in metadata written before it was recorded,
    /// which every provider on the store still takes as its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl BackupInfo {
    /// A backup of `service` labelled `label`, taken at `created_at`, with no size, duration or
    /// checks yet.
    pub fn new(
        id: impl Into<String>,
        service: impl Into<String>,
        label: impl Into<String>,
        created_at: Timestamp,
    ) -> Self {
        BackupInfo {
            id: id.into(),
            service: service.into(),
            label: label.into(),
            created_at,
            size_bytes: 0,
            duration: Duration::ZERO,
            checks: Vec::new(),
            source: None,
        }
    }

    /// With what was backed up (see [`source`](Self::source)).
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// With its size in bytes.
    pub fn with_size(mut self, size_bytes: u64) -> Self {
        self.size_bytes = size_bytes;
        self
    }

    /// With how long it took.
    pub fn with_duration(mut self, duration: Duration) -> Self {
        self.duration = duration;
        self
    }

    /// With the checks a restore is verified against.
    pub fn with_checks(mut self, checks: Vec<BackupCheck>) -> Self {
        self.checks = checks;
        self
    }
}

/// One thing a restore is verified against: a subject (a table, a file tree), how many items
/// it held (rows, files) and a checksum of their content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupCheck {
    /// What was checked (`public.orders`, `files`).
    pub subject: String,
    /// How many items it held (rows, entries).
    pub count: u64,
    /// A checksum of the content, hex-encoded (the algorithm is the provider's).
    pub checksum: String,
}

impl BackupCheck {
    /// A check of `subject`: `count` items with `checksum`.
    pub fn new(subject: impl Into<String>, count: u64, checksum: impl Into<String>) -> Self {
        BackupCheck {
            subject: subject.into(),
            count,
            checksum: checksum.into(),
        }
    }
}

/// Records backups and restores in memory; can be told to fail, and can enforce a
/// [`Retention`] as the real providers do.
#[derive(Debug, Clone, Default)]
pub struct InMemoryBackup {
    inner: Arc<Mutex<BackupLog>>,
    retention: Option<Retention>,
}

#[derive(Debug, Default)]
struct BackupLog {
    next: u64,
    taken: Vec<(String, String, String)>,
    infos: Vec<BackupInfo>,
    restored: Vec<String>,
    fail_next: Option<String>,
    fail_next_list: Option<String>,
}

impl InMemoryBackup {
    /// An empty provider.
    pub fn new() -> Self {
        Self::default()
    }

    /// Deletes the backups of a service beyond `retention` after each backup.
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = Some(retention);
        self
    }

    /// The next backup fails with `reason`.
    pub fn fail_next(&self, reason: impl Into<String>) {
        lock(&self.inner).fail_next = Some(reason.into());
    }

    /// The next listing fails with `reason`.
    pub fn fail_next_list(&self, reason: impl Into<String>) {
        lock(&self.inner).fail_next_list = Some(reason.into());
    }

    /// Backups taken: (id, service, label), including those deleted since.
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
        log.next += 1;
        let id = format!("backup-{}-{service}", log.next);
        log.taken
            .push((id.clone(), service.to_owned(), label.to_owned()));
        // Backups taken in memory are ordered by number; the timestamp says so.
        let info = BackupInfo::new(id.clone(), service, label, Timestamp::from_millis(log.next));
        log.infos.push(info);
        if let Some(retention) = self.retention {
            let of_service: Vec<BackupInfo> = log
                .infos
                .iter()
                .filter(|i| i.service == service)
                .cloned()
                .collect();
            let expired: Vec<String> = retention
                .expired(&of_service)
                .into_iter()
                .map(|i| i.id.clone())
                .collect();
            log.infos.retain(|i| !expired.contains(&i.id));
        }
        Ok(id)
    }

    async fn restore(&self, id: &str) -> Result<()> {
        let mut log = lock(&self.inner);
        if !log.infos.iter().any(|i| i.id == id) {
            return Err(Error::not_found("backup", id));
        }
        log.restored.push(id.to_owned());
        Ok(())
    }

    async fn info(&self, id: &str) -> Result<BackupInfo> {
        lock(&self.inner)
            .infos
            .iter()
            .find(|i| i.id == id)
            .cloned()
            .ok_or_else(|| Error::not_found("backup", id))
    }

    async fn list(&self, service: &str) -> Result<Vec<BackupInfo>> {
        let mut log = lock(&self.inner);
        if let Some(reason) = log.fail_next_list.take() {
            return Err(Error::backend("backup", "in-memory", reason));
        }
        Ok(log
            .infos
            .iter()
            .filter(|i| i.service == service)
            .cloned()
            .collect())
    }

    fn retention(&self) -> Option<Retention> {
        self.retention
    }

    async fn delete(&self, id: &str) -> Result<()> {
        let mut log = lock(&self.inner);
        let before = log.infos.len();
        log.infos.retain(|i| i.id != id);
        if log.infos.len() == before {
            return Err(Error::not_found("backup", id));
        }
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
///
/// A call is bounded, as Helm bounds its hooks: it may last until the deployment's deadline
/// (`maxDeploymentDuration`) at most, and an operator's abort ends it at once. Either way the
/// orchestrator drops the call's future, which cancels it at its next `.await`; a runner that
/// spawns a process should tie the process to the future (`kill_on_drop`), so a cancelled
/// migration tool does not run on. What the step did until then is not undone: it is marked
/// failed, with evidence naming the deadline or the abort and warning that it may be partly
/// carried out. A step whose turn comes after the deadline, or after an abort cancelled an
/// earlier step of the completion, is not started. The deployment's commands (pause, resume,
/// promote) are served while a step runs.
///
/// The conformance suite in [`step_testkit`](crate::step_testkit) (feature `testkit`) checks
/// the answers the orchestrator relies on.
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
