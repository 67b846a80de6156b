//! The [`Journal`]: every state change of a deployment is written here **before** it is
//! carried out, so a process killed at any point can resume from the last record.
//!
//! [`FileJournal`] is the embedded default (an append-only file of JSON lines, synced to disk
//! after every record); [`InMemoryJournal`] serves tests and can simulate a crash right after a
//! given write.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serin_signals::Timestamp;

use crate::error::{Error, Result};
use crate::event::Event;
use crate::sample::Sample;
use crate::state::{DeploymentState, Effect, MAX_SEQ};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

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
/// ignored, never half-read.
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
        let mut out: Vec<String> = Vec::new();
        for r in &lock(&self.inner).records {
            if !out.contains(&r.deployment) {
                out.push(r.deployment.clone());
            }
        }
        Ok(out)
    }
}

/// The embedded default: an append-only file of JSON lines, one record per line, synced to
/// disk (`fsync`) before `append` returns. A last line cut short by a crash is skipped.
#[derive(Debug)]
pub struct FileJournal {
    path: PathBuf,
    name: String,
    write: Mutex<()>,
}

impl FileJournal {
    /// A journal in the file at `path`, created on the first append (its directory must exist).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => {
                return Err(Error::invalid(
                    "journal.path",
                    path.display(),
                    "its directory does not exist",
                ));
            }
            _ => {}
        }
        Ok(FileJournal {
            name: path.display().to_string(),
            path,
            write: Mutex::new(()),
        })
    }

    fn read_all(&self) -> Result<Vec<Record>> {
        let file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::backend("journal", &self.name, e)),
        };
        let mut out = Vec::new();
        for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| Error::backend("journal", &self.name, e))?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Record>(&line) {
                Ok(r) => out.push(r),
                // A torn write (a crash mid-line) ends early and was never acknowledged: skip
                // it. Anything else is corruption, and replaying around it would be a lie.
                Err(e) if e.is_eof() => {}
                Err(e) => {
                    return Err(Error::backend(
                        "journal",
                        &self.name,
                        format!("line {} is corrupt: {e}", n + 1),
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// Whether the file's last byte is not a newline (a write cut short by a crash).
fn ends_torn(file: &mut std::fs::File) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    if file.metadata()?.len() == 0 {
        return Ok(false);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

#[async_trait]
impl Journal for FileJournal {
    fn name(&self) -> &str {
        &self.name
    }

    async fn append(&self, record: &Record) -> Result<()> {
        let mut line =
            serde_json::to_vec(record).map_err(|e| Error::backend("journal", &self.name, e))?;
        // A record that would not read back is refused before anything acts on it: a journal
        // that cannot be replayed is no journal.
        serde_json::from_slice::<Record>(&line).map_err(|e| {
            Error::backend(
                "journal",
                &self.name,
                format!(
                    "record {} of {} would not read back: {e}",
                    record.seq, record.deployment
                ),
            )
        })?;
        line.push(b'\n');
        let _guard = lock(&self.write);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&self.path)
            .map_err(|e| Error::backend("journal", &self.name, e))?;
        if ends_torn(&mut file).map_err(|e| Error::backend("journal", &self.name, e))? {
            // A crash left a partial last line: end it, so this record starts a line of its own.
            line.insert(0, b'\n');
        }
        file.write_all(&line)
            .and_then(|()| file.sync_data())
            .map_err(|e| Error::backend("journal", &self.name, e))
    }

    async fn records(&self, deployment: &str) -> Result<Vec<Record>> {
        Ok(self
            .read_all()?
            .into_iter()
            .filter(|r| r.deployment == deployment)
            .collect())
    }

    async fn deployments(&self) -> Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        for r in self.read_all()? {
            if !out.contains(&r.deployment) {
                out.push(r.deployment);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;
    use crate::state::tests::sample_state;

    fn record(seq: u64) -> Record {
        let state = sample_state();
        Record {
            deployment: state.id.clone(),
            seq,
            at: Timestamp::from_millis(1_000 + seq),
            events: vec![Event {
                deployment: state.id.clone(),
                service: state.service.clone(),
                seq,
                at: Timestamp::from_millis(1_000 + seq),
                kind: EventKind::Paused,
            }],
            state,
            effects: vec![Effect::retire(
                serin_signals::Track::Canary,
                std::time::Duration::ZERO,
            )],
            sample: None,
        }
    }

    #[tokio::test]
    async fn the_file_journal_reads_back_what_it_synced_and_skips_a_torn_line() {
        let dir = std::env::temp_dir().join(format!("serin-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("journal.jsonl");
        let _ = std::fs::remove_file(&path);
        let j = FileJournal::open(&path).expect("open");
        assert!(j.records("web-1.1.0-1000").await.expect("empty").is_empty());
        j.append(&record(0)).await.expect("append");
        j.append(&record(1)).await.expect("append");
        // A crash in the middle of a write leaves a partial line.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"{\"deployment\":\"web-1.1"))
            .expect("torn write");
        let back = FileJournal::open(&path).expect("reopen");
        let records = back.records("web-1.1.0-1000").await.expect("records");
        assert_eq!(
            records.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![0, 1]
        );
        assert_eq!(records[1].effects, record(1).effects);
        assert_eq!(records[1].events, record(1).events);
        assert_eq!(
            back.deployments().await.expect("ids"),
            vec!["web-1.1.0-1000".to_owned()]
        );
        assert!(back.records("other").await.expect("none").is_empty());
        // Writing on after the crash: the new record starts its own line, the torn one stays
        // skipped.
        back.append(&record(2))
            .await
            .expect("append after a torn write");
        let seqs: Vec<u64> = back
            .records("web-1.1.0-1000")
            .await
            .expect("records")
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(seqs, vec![0, 1, 2]);
        // A line that is complete but wrong is corruption: an error naming the line, never a
        // silent gap in the replay.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"{\"deployment\": 7}\n"))
            .expect("corrupt line");
        back.append(&record(3)).await.expect("append");
        let err = back
            .records("web-1.1.0-1000")
            .await
            .expect_err("corrupt")
            .to_string();
        assert!(err.contains("line 5 is corrupt"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_journal_in_a_missing_directory_is_refused() {
        let err = FileJournal::open("/nonexistent-serin-dir/journal.jsonl").expect_err("refused");
        assert!(err.to_string().contains("journal.path"), "{err}");
    }

    #[tokio::test]
    async fn the_in_memory_journal_can_stall_after_a_write() {
        let j = InMemoryJournal::new();
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
