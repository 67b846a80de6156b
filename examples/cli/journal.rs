//! The journal of the state directory, read back faithfully.
//!
//! `FileJournal` skips a line it cannot parse (a write torn by a crash). A record whose
//! analysis evidence holds a `NaN` estimate (an error-rate ratio over two arms without errors)
//! is written with `null` there and cannot be parsed back as a number, so it is skipped too.
//! [`Overlay`] keeps what this process wrote in memory as well and answers from there, so the
//! report of a deployment run by this command is always whole; [`events`] reads every
//! event of the file as JSON, parsed or not.

use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::Path;
use std::sync::Mutex;

use async_trait::async_trait;
use serin_orchestrator::{FileJournal, InMemoryJournal, Journal, Record, Result};

use crate::cli::exit::CliError;

/// A file journal with this process's records also kept in memory.
pub struct Overlay {
    file: FileJournal,
    memory: InMemoryJournal,
    written: Mutex<BTreeSet<String>>,
}

impl Overlay {
    /// Over the journal file at `path` (created if missing).
    pub fn open(path: &Path) -> Result<Self> {
        Ok(Overlay {
            file: FileJournal::open(path)?,
            memory: InMemoryJournal::new(),
            written: Mutex::new(BTreeSet::new()),
        })
    }

    fn wrote(&self, deployment: &str) -> bool {
        self.written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(deployment)
    }
}

#[async_trait]
impl Journal for Overlay {
    fn name(&self) -> &str {
        self.file.name()
    }

    async fn append(&self, record: &Record) -> Result<()> {
        self.file.append(record).await?;
        self.memory.append(record).await?;
        self.written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(record.deployment.clone());
        Ok(())
    }

    async fn records(&self, deployment: &str) -> Result<Vec<Record>> {
        if self.wrote(deployment) {
            self.memory.records(deployment).await
        } else {
            self.file.records(deployment).await
        }
    }

    async fn deployments(&self) -> Result<Vec<String>> {
        self.file.deployments().await
    }
}

/// Every event in the journal file at `path`, oldest first, as JSON (a line cut short by a
/// crash is skipped).
pub fn events(path: &Path) -> std::result::Result<Vec<serde_json::Value>, CliError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(CliError::backend(format!(
                "cannot read the journal {}: {e}",
                path.display()
            )));
        }
    };
    let mut out = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line.map_err(|e| {
            CliError::backend(format!("cannot read the journal {}: {e}", path.display()))
        })?;
        let Ok(mut record) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if let Some(serde_json::Value::Array(events)) =
            record.get_mut("events").map(serde_json::Value::take)
        {
            out.extend(events);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_from_every_whole_line_and_a_torn_one_is_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("journal.jsonl");
        assert!(events(&path).expect("no file").is_empty());
        std::fs::write(
            &path,
            "{\"deployment\":\"a\",\"events\":[{\"seq\":0},{\"seq\":1}]}\n\
             {\"deployment\":\"a\",\"events\":[{\"seq\":2,\"x\":null}]}\n\
             {\"deployment\":\"a\",\"eve",
        )
        .expect("write");
        let seqs: Vec<u64> = events(&path)
            .expect("events")
            .iter()
            .filter_map(|e| e["seq"].as_u64())
            .collect();
        assert_eq!(seqs, vec![0, 1, 2]);
    }
}
