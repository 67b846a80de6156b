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
