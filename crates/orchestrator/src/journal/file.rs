//! [`FileJournal`]: the embedded default, an append-only file of JSON lines.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use serde::Deserialize;

use super::{Journal, Record, first_appearances, lock};
use crate::error::{Error, Result};

/// The embedded default: an append-only file of JSON lines, one record per line, synced to
/// disk (`fsync`) before `append` returns. A last line cut short by a crash is skipped.
///
/// One file holds every deployment (a year of daily deployments is tens of megabytes), so a
/// read takes only each line's `deployment` field until a line of the deployment asked for
/// comes: the states of the others, the bulk of the file, are skipped over, not built, and
/// [`last_records`](Journal::last_records) and [`all_records`](Journal::all_records) read the
/// file once for all deployments.
#[derive(Debug)]
pub struct FileJournal {
    path: PathBuf,
    name: String,
    write: Mutex<()>,
}

/// What is read of every line: whose record it is.
#[derive(Deserialize)]
struct Head {
    deployment: String,
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

    fn corrupt(&self, line: usize, e: &serde_json::Error) -> Error {
        Error::backend(
            "journal",
            &self.name,
            format!("line {line} is corrupt: {e}"),
        )
    }

    /// Calls `each` with every record line's number, deployment and text, in order. A torn
    /// line (a crash mid-write: it ends early and was never acknowledged) is skipped; a line
    /// that is complete but does not name its deployment is corruption, and replaying around
    /// it would be a lie.
    fn scan(&self, mut each: impl FnMut(usize, String, String) -> Result<()>) -> Result<()> {
        let file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::backend("journal", &self.name, e)),
        };
        for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| Error::backend("journal", &self.name, e))?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Head>(&line) {
                Ok(head) => each(n + 1, head.deployment, line)?,
                Err(e) if e.is_eof() => {}
                Err(e) => return Err(self.corrupt(n + 1, &e)),
            }
        }
        Ok(())
    }

    /// The record on line `number`, which [`scan`](Self::scan) found complete.
    fn parse(&self, number: usize, line: &str) -> Result<Record> {
        serde_json::from_str::<Record>(line).map_err(|e| self.corrupt(number, &e))
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
        let mut out = Vec::new();
        self.scan(|number, whose, line| {
            if whose == deployment {
                out.push(self.parse(number, &line)?);
            }
            Ok(())
        })?;
        Ok(out)
    }

    async fn deployments(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        self.scan(|_, whose, _| {
            names.push(whose);
            Ok(())
        })?;
        Ok(first_appearances(names.iter().map(String::as_str)))
    }

    async fn last_records(&self) -> Result<Vec<Record>> {
        let mut order = Vec::new();
        let mut last: HashMap<String, (usize, String)> = HashMap::new();
        self.scan(|number, whose, line| {
            if !last.contains_key(&whose) {
                order.push(whose.clone());
            }
            last.insert(whose, (number, line));
            Ok(())
        })?;
        let mut out = Vec::with_capacity(order.len());
        for whose in order {
            if let Some((number, line)) = last.remove(&whose) {
                out.push(self.parse(number, &line)?);
            }
        }
        Ok(out)
    }

    async fn all_records(&self) -> Result<Vec<Record>> {
        let mut order: Vec<Vec<Record>> = Vec::new();
        let mut place: HashMap<String, usize> = HashMap::new();
        self.scan(|number, whose, line| {
            let record = self.parse(number, &line)?;
            let at = *place.entry(whose).or_insert_with(|| {
                order.push(Vec::new());
                order.len() - 1
            });
            order[at].push(record);
            Ok(())
        })?;
        Ok(order.into_iter().flatten().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, sample_record};
    use super::*;

    /// A journal file of its own in a fresh directory.
    fn fresh() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("journal.jsonl");
        (dir, path)
    }

    fn append_raw(path: &Path, bytes: &[u8]) {
        std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(bytes))
            .expect("raw write");
    }

    #[tokio::test]
    async fn the_file_journal_passes_the_conformance_suite() {
        let (_dir, path) = fresh();
        testkit::check_journal(&FileJournal::open(&path).expect("open")).await;
        // Again, over what the first run left, and from a journal opened anew.
        testkit::check_journal(&FileJournal::open(&path).expect("reopen")).await;
    }

    #[tokio::test]
    async fn the_file_journal_reads_back_what_it_synced_and_skips_a_torn_line() {
        let (_dir, path) = fresh();
        let id = "web-1.1.0-1000";
        let j = FileJournal::open(&path).expect("open");
        assert!(j.records(id).await.expect("empty").is_empty());
        j.append(&sample_record(id, 0)).await.expect("append");
        j.append(&sample_record(id, 1)).await.expect("append");
        // A crash in the middle of a write leaves a partial line.
        append_raw(&path, b"{\"deployment\":\"web-1.1");
        let back = FileJournal::open(&path).expect("reopen");
        let seqs = |records: Vec<Record>| records.iter().map(|r| r.seq).collect::<Vec<_>>();
        assert_eq!(seqs(back.records(id).await.expect("records")), vec![0, 1]);
        assert_eq!(back.deployments().await.expect("ids"), vec![id.to_owned()]);
        assert_eq!(seqs(back.last_records().await.expect("last")), vec![1]);
        // A line torn after its deployment's name is skipped too.
        append_raw(
            &path,
            b"\n{\"deployment\":\"web-1.1.0-1000\",\"seq\":2,\"at\":",
        );
        assert_eq!(seqs(back.records(id).await.expect("records")), vec![0, 1]);
        assert_eq!(seqs(back.last_records().await.expect("last")), vec![1]);
        // Writing on after the crash: the new record starts its own line, the torn ones stay
        // skipped.
        back.append(&sample_record(id, 2))
            .await
            .expect("append after a torn write");
        assert_eq!(
            seqs(back.records(id).await.expect("records")),
            vec![0, 1, 2]
        );
        assert_eq!(seqs(back.last_records().await.expect("last")), vec![2]);
    }

    #[tokio::test]
    async fn a_complete_but_wrong_line_is_corruption_named_by_its_line() {
        let (_dir, path) = fresh();
        let j = FileJournal::open(&path).expect("open");
        j.append(&sample_record("web-1", 0)).await.expect("append");
        // A line that names no deployment fails every read: whose it was is unknown.
        append_raw(&path, b"{\"deployment\": 7}\n");
        j.append(&sample_record("web-1", 1)).await.expect("append");
        for err in [
            j.records("web-1").await.expect_err("corrupt"),
            j.records("web-2").await.expect_err("corrupt"),
            j.deployments().await.expect_err("corrupt"),
            j.last_records().await.expect_err("corrupt"),
            j.all_records().await.expect_err("corrupt"),
        ] {
            assert!(err.to_string().contains("line 2 is corrupt"), "{err}");
        }
        // A line of one deployment that is not a record fails that deployment's reads, never a
        // silent gap in its replay; another deployment's records are read around it.
        let (_dir, path) = fresh();
        let j = FileJournal::open(&path).expect("open");
        j.append(&sample_record("web-1", 0)).await.expect("append");
        append_raw(&path, b"{\"deployment\":\"web-2\",\"seq\":\"first\"}\n");
        let err = j.records("web-2").await.expect_err("corrupt").to_string();
        assert!(err.contains("line 2 is corrupt"), "{err}");
        for err in [
            j.last_records().await.expect_err("corrupt"),
            j.all_records().await.expect_err("corrupt"),
        ] {
            assert!(err.to_string().contains("line 2 is corrupt"), "{err}");
        }
        assert_eq!(j.records("web-1").await.expect("records").len(), 1);
    }

    #[test]
    fn a_journal_in_a_missing_directory_is_refused() {
        let err = FileJournal::open("/nonexistent-serin-dir/journal.jsonl").expect_err("refused");
        assert!(err.to_string().contains("journal.path"), "{err}");
    }
}
