//! [`FileJournal`]: the embedded default, an append-only file of JSON lines.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::Deserialize;

use super::{Journal, Record, first_appearances};
use crate::error::{Error, Result};
use crate::lock;

/// The embedded default: an append-only file of JSON lines, one record per line, synced to
/// disk (`fsync`) before `append` returns. A last line cut short by a crash is skipped, and
/// the next append cuts it off (it was never acknowledged). A journal saved by an editor reads
/// as it was written: a byte order mark before the first line and CRLF line ends are no part
/// of any record.
///
/// A line cut short in the *middle* of the file (left by versions that wrote on after a torn
/// line, or by damage) is skipped only when it cannot change what a resume does: when it names
/// its deployment and sequence number, and the next record of that deployment has the same
/// number or a smaller one, the record was written again after the crash (a resume starts
/// from the last record it could read), so the torn copy was never acknowledged; it is
/// skipped with a warning, and the next [`compact`](FileJournal::compact) leaves it out.
/// Any other line cut short may be a record that was acknowledged and acted on: the reads of
/// its deployment fail, naming the line, rather than replay around a gap (every read fails
/// if the line is cut before it names its deployment).
///
/// One file holds every deployment (a year of daily deployments is tens of megabytes), so a
/// read takes only each line's `deployment` field until a line of the deployment asked for
/// comes: the states of the others, the bulk of the file, are skipped over, not built, and
/// [`last_records`](Journal::last_records) and [`all_records`](Journal::all_records) read the
/// file once for all deployments. [`compact`](FileJournal::compact) reduces old finished
/// deployments to their last record.
///
/// The file's reads, writes and syncs run on Tokio's blocking pool, so an `fsync` on a slow
/// disk or a read of a large journal never stalls the runtime's other tasks (a proxy serving
/// requests on the same runtime, say). A call whose future is dropped still finishes its
/// write: an append is either whole or torn, never half-acknowledged.
#[derive(Debug)]
pub struct FileJournal {
    files: Arc<Files>,
    /// Compact once the file is past this many bytes, keeping this many finished deployments.
    auto_compact: Option<(u64, usize)>,
}

/// The journal's file and the blocking operations on it.
#[derive(Debug)]
struct Files {
    path: PathBuf,
    name: String,
    write: Mutex<()>,
    /// Whether this journal has synced the directory entry of its file: the process that
    /// created the file may have crashed before it did, and the records acknowledged here
    /// would be lost with the entry.
    dir_synced: std::sync::atomic::AtomicBool,
}

/// What [`FileJournal::compact`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Compacted {
    /// Deployments whose records were all kept.
    pub kept: usize,
    /// Finished deployments reduced to their last record.
    pub trimmed: usize,
    /// Records dropped.
    pub records_dropped: usize,
    /// The file's size before and after, in bytes.
    pub bytes_before: u64,
    /// See [`bytes_before`](Self::bytes_before).
    pub bytes_after: u64,
}

/// What is read of every line: whose record it is.
#[derive(Deserialize)]
struct Head {
    deployment: String,
}

/// The UTF-8 byte order mark that editors may put before the first line of a journal edited
/// by hand (to remove a damaged line, say); it is no part of the first record.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The sequence number of a line, read only to tell whether it replaces a line cut short.
#[derive(Deserialize)]
struct Seq {
    seq: u64,
}

/// The deployment and sequence number at the start of a line cut short, as this journal
/// writes them (`{"deployment":"…","seq":N,`); `None` if the cut came before both were whole.
fn torn_head(line: &[u8]) -> Option<(String, u64)> {
    let rest = line.strip_prefix(b"{\"deployment\":")?;
    let mut strings = serde_json::Deserializer::from_slice(rest).into_iter::<String>();
    let deployment = strings.next()?.ok()?;
    let rest = rest
        .get(strings.byte_offset()..)?
        .strip_prefix(b",\"seq\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    // Whole only if the next field follows: `"seq":1` may be the start of `"seq":12`.
    if digits == 0 || rest.get(digits) != Some(&b',') {
        return None;
    }
    let seq = std::str::from_utf8(rest.get(..digits)?)
        .ok()?
        .parse()
        .ok()?;
    Some((deployment, seq))
}

impl FileJournal {
    /// A journal in the file at `path`, created on the first append (its directory must exist).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        // Refused now rather than at the first append, which would leave a lock file beside
        // the directory and stop a deployment at its first step.
        if path.file_name().is_none() || path.is_dir() {
            return Err(Error::invalid(
                "journal.path",
                path.display(),
                "names a directory, not a file",
            ));
        }
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
            files: Arc::new(Files {
                name: path.display().to_string(),
                path,
                write: Mutex::new(()),
                dir_synced: std::sync::atomic::AtomicBool::new(false),
            }),
            auto_compact: None,
        })
    }

    /// Compacts the journal by itself (see [`compact`](Self::compact)): whenever a deployment
    /// finishes while the file is larger than `above_bytes`, the finished deployments before
    /// the last `keep_finished` are reduced to their last record. The deployment that just
    /// finished is kept whole, whatever `keep_finished`: its report is read from its records
    /// right after. The append that finished the deployment is durable first; a compaction
    /// that fails is logged and leaves the journal as it was.
    pub fn with_compaction(mut self, above_bytes: u64, keep_finished: usize) -> Self {
        self.auto_compact = Some((above_bytes, keep_finished));
        self
    }

    /// Rewrites the file with the finished deployments before the last `keep_finished` of them
    /// (in the order of their first record) reduced to their last record: a journal that only
    /// grows makes every question read years of deployments again. The last record holds a
    /// deployment's final state (its outcome, versions, backup and checklist), which is what
    /// `status`, [`Orchestrator::rollback`](crate::Orchestrator::rollback) and the restore
    /// point of [`rollback_to`](crate::Orchestrator::rollback_to) read, so those answer as
    /// before; the timelines of the trimmed deployments keep only their final events.
    /// Unfinished deployments keep every record (a resume starts from their last). Kept lines
    /// are copied byte for byte; lines torn by a crash and never acknowledged (a torn last
    /// line, or one whose record was written again after the crash) are left out.
    ///
    /// A crash at any point leaves either the old file or the new one: the kept lines are
    /// written to a temporary file beside the journal, synced, renamed over it, and the
    /// directory synced. Appends from this process and from others wait meanwhile (on a lock
    /// file `<journal>.lock` beside it, beside the file a symbolic link leads to, whichever
    /// path each opened), and readers holding the old file read it whole. A
    /// corrupt line, or one cut short that no later record replaces, stops the compaction
    /// before anything changes, as it stops the reads of its deployment. The
    /// temporary files of compactions a crash cut short are removed.
    pub async fn compact(&self, keep_finished: usize) -> Result<Compacted> {
        self.blocking(move |files| files.compact(keep_finished, None))
            .await
    }

    /// Runs `f` on the blocking pool. A panic in it is the caller's panic.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Files) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let files = Arc::clone(&self.files);
        match tokio::task::spawn_blocking(move || f(&files)).await {
            Ok(out) => out,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(self.files.failed(e)),
        }
    }
}

impl Files {
    fn failed(&self, e: impl std::fmt::Display) -> Error {
        Error::backend("journal", &self.name, e)
    }

    /// The lock file beside the journal: appends hold it shared, a compaction exclusively, so
    /// that no append from another process lands in a file that a compaction is replacing.
    fn lock_file(&self, exclusive: bool) -> Result<std::fs::File> {
        let path = self.lock_path();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| self.failed(format!("cannot open `{}`: {e}", path.display())))?;
        let locked = if exclusive {
            file.lock()
        } else {
            file.lock_shared()
        };
        locked.map_err(|e| self.failed(format!("cannot lock `{}`: {e}", path.display())))?;
        Ok(file)
    }

    /// `<journal>.lock`, beside the file the journal's path leads to: a journal opened through
    /// a symbolic link and one opened through the file itself (two processes configured with
    /// either path) must lock one file, or a compaction by one would replace the file under an
    /// append by the other and lose its record. That holds before the file exists too (a
    /// link to where it will be made), since the first append makes it under its lock.
    fn lock_path(&self) -> PathBuf {
        let mut path = resolved(&self.path).into_os_string();
        path.push(".lock");
        PathBuf::from(path)
    }

    /// See [`FileJournal::compact`]; `spare` names a deployment never trimmed.
    fn compact(&self, keep_finished: usize, spare: Option<&str>) -> Result<Compacted> {
        let _guard = lock(&self.write);
        let _lock = self.lock_file(true)?;
        let bytes_before = match std::fs::metadata(&self.path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Compacted {
                    kept: 0,
                    trimmed: 0,
                    records_dropped: 0,
                    bytes_before: 0,
                    bytes_after: 0,
                });
            }
            Err(e) => return Err(self.failed(e)),
        };
        // Which deployments are finished (their last record says so), and where that record is.
        let lasts = self.last_of_each()?;
        let finished: Vec<(&str, usize)> = lasts
            .iter()
            .filter(|(_, r)| r.state.is_done())
            .map(|(number, r)| (r.deployment.as_str(), *number))
            .collect();
        // Deployments to trim, with the line of the record each keeps.
        let trim: HashMap<&str, usize> = finished
            .iter()
            .take(finished.len().saturating_sub(keep_finished))
            .filter(|(deployment, _)| Some(*deployment) != spare)
            .copied()
            .collect();
        // A journal reached through a symbolic link is replaced where it lives: renamed over
        // the link, it would live on beside the link, and the file the link points to (on a
        // volume of its own, say) would be left behind.
        let real = std::fs::canonicalize(&self.path).map_err(|e| self.failed(e))?;
        self.remove_leftovers(&real);
        let temp = sibling_temp(&real);
        let written = self.write_kept(&temp, &trim);
        let (bytes_after, records_dropped) =
            match written.and_then(|out| self.replace_with(&temp, &real).map(|()| out)) {
                Ok(out) => out,
                Err(e) => {
                    let _ = std::fs::remove_file(&temp);
                    return Err(e);
                }
            };
        tracing::info!(
            journal = %self.name, trimmed = trim.len(), records_dropped, bytes_before,
            bytes_after, "journal compacted"
        );
        Ok(Compacted {
            kept: lasts.len() - trim.len(),
            trimmed: trim.len(),
            records_dropped,
            bytes_before,
            bytes_after,
        })
    }

    /// Removes the temporary files of compactions of the journal file `real` that a crash cut
    /// short. Called under the exclusive lock, so no compaction is writing one.
    fn remove_leftovers(&self, real: &Path) {
        let prefix = temp_prefix(real);
        let Ok(entries) = std::fs::read_dir(dir_of(real)) else {
            return;
        };
        for entry in entries.flatten() {
            // `<prefix><pid>` only: another journal's name may start with this one's.
            let name = entry.file_name();
            let pid = name
                .to_string_lossy()
                .strip_prefix(&prefix)
                .map(str::to_owned);
            if pid.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) {
                let path = entry.path();
                match std::fs::remove_file(&path) {
                    Ok(()) => tracing::info!(
                        journal = %self.name, path = %path.display(),
                        "removed an interrupted compaction's file"
                    ),
                    Err(e) => tracing::warn!(
                        journal = %self.name, path = %path.display(), error = %e,
                        "cannot remove an interrupted compaction's file"
                    ),
                }
            }
        }
    }

    /// Writes to `temp` (synced, with the journal's permissions) every complete line except
    /// those of a deployment in `trim` other than the one line it keeps; returns the bytes
    /// written and the records left out.
    fn write_kept(&self, temp: &Path, trim: &HashMap<&str, usize>) -> Result<(u64, usize)> {
        let cannot =
            |e: std::io::Error| self.failed(format!("cannot write `{}`: {e}", temp.display()));
        let file = std::fs::File::create(temp).map_err(cannot)?;
        if let Ok(meta) = std::fs::metadata(&self.path) {
            file.set_permissions(meta.permissions()).map_err(cannot)?;
        }
        let mut out = std::io::BufWriter::new(file);
        let (mut bytes, mut dropped) = (0u64, 0usize);
        self.scan_lines(|number, whose, line, whole| {
            // A line cut short that no record replaces stops the compaction, as every read
            // of its deployment stops at it, even where the compaction would drop it: it
            // may hold a record that was acknowledged and lost, which an operator checks.
            if !whole {
                self.parse(number, &line)?;
            }
            if trim.get(whose.as_str()).is_some_and(|keep| *keep != number) {
                dropped += 1;
                return Ok(());
            }
            out.write_all(&line)
                .and_then(|()| out.write_all(b"\n"))
                .map_err(cannot)?;
            bytes += line.len() as u64 + 1;
            Ok(())
        })?;
        let file = out.into_inner().map_err(|e| cannot(e.into_error()))?;
        file.sync_all().map_err(cannot)?;
        Ok((bytes, dropped))
    }

    /// Renames `temp` over the journal file `real` and syncs its directory, so that the rename
    /// outlives a crash.
    fn replace_with(&self, temp: &Path, real: &Path) -> Result<()> {
        std::fs::rename(temp, real)
            .map_err(|e| self.failed(format!("cannot replace the journal: {e}")))?;
        self.sync_dir(dir_of(real))
    }

    /// Syncs `dir`, so that a file created or renamed in it outlives a crash.
    fn sync_dir(&self, dir: &Path) -> Result<()> {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.failed(format!("cannot sync `{}`: {e}", dir.display())))
    }

    fn corrupt(&self, line: usize, e: &serde_json::Error) -> Error {
        self.failed(format!("line {line} is corrupt: {e}"))
    }

    /// Calls `each` with every record line's number, deployment and bytes (without the
    /// newline), in order for each deployment. A last line without its newline that does not
    /// decode is skipped (a crash mid-write: it was never acknowledged); lines are read as
    /// bytes, since a write cut inside a multi-byte character leaves no valid UTF-8 to read as
    /// text. A line that is complete but does not name its deployment is corruption, and
    /// replaying around it would be a lie.
    ///
    /// A line cut short before the last waits for the next line of its deployment: if that one
    /// has the same sequence number or a smaller one, the record was written again after the
    /// crash and the torn copy is skipped with a warning; otherwise (or at the end of the file)
    /// it is handed to `each` just before that line, and [`parse`](Self::parse) refuses it. A
    /// line cut before it names its deployment fails the scan.
    fn scan(&self, mut each: impl FnMut(usize, String, Vec<u8>) -> Result<()>) -> Result<()> {
        self.scan_lines(|number, whose, line, _| each(number, whose, line))
    }

    /// [`scan`](Self::scan), telling `each` also whether the line is whole (it decoded as the
    /// JSON it must be) or one cut short.
    fn scan_lines(
        &self,
        mut each: impl FnMut(usize, String, Vec<u8>, bool) -> Result<()>,
    ) -> Result<()> {
        let file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.failed(e)),
        };
        let mut reader = std::io::BufReader::new(file);
        let mut line = Vec::new();
        // Lines cut short, waiting for the next line of their deployment:
        // (line number, deployment, sequence number, bytes).
        let mut waiting: Vec<(usize, String, u64, Vec<u8>)> = Vec::new();
        for n in 1usize.. {
            line.clear();
            let read = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| self.failed(e))?;
            if read == 0 {
                break;
            }
            // Only the last line can lack its newline.
            let unterminated = line.last() != Some(&b'\n');
            if !unterminated {
                line.pop();
            }
            if n == 1 && line.starts_with(BOM) {
                line.drain(..BOM.len());
            }
            if line.trim_ascii().is_empty() {
                continue;
            }
            match serde_json::from_slice::<Head>(&line) {
                Ok(head) => {
                    if waiting.iter().any(|w| w.1 == head.deployment) {
                        let next = serde_json::from_slice::<Seq>(&line).ok().map(|s| s.seq);
                        let (theirs, others) = std::mem::take(&mut waiting)
                            .into_iter()
                            .partition(|w| w.1 == head.deployment);
                        waiting = others;
                        for (number, whose, seq, torn) in theirs {
                            if next.is_some_and(|next| next <= seq) {
                                self.replaced(number, &whose, seq, n);
                            } else {
                                each(number, whose, torn, false)?;
                            }
                        }
                    }
                    each(n, head.deployment, std::mem::take(&mut line), true)?;
                }
                Err(_) if unterminated => {}
                Err(e) if e.is_eof() => match torn_head(&line) {
                    Some((whose, seq)) => waiting.push((n, whose, seq, std::mem::take(&mut line))),
                    None => return Err(self.unreadable(n, &line, &e)),
                },
                Err(e) => return Err(self.corrupt(n, &e)),
            }
        }
        // Cut short and never written again: possibly acknowledged, so never skipped.
        for (number, whose, _, torn) in waiting {
            each(number, whose, torn, false)?;
        }
        Ok(())
    }

    /// Notes that line `number`, record `seq` of `whose` cut short by a crash, is skipped
    /// because line `by` wrote that record again.
    fn replaced(&self, number: usize, whose: &str, seq: u64, by: usize) {
        tracing::warn!(
            journal = %self.name, line = number, deployment = whose, seq,
            "skipped line {number}: record {seq} of `{whose}` cut short by a crash, never \
             acknowledged, and written again on line {by}"
        );
    }

    /// The error of line `number`, which does not decode (`e`): cut short in the middle of
    /// the journal, or corrupt.
    fn unreadable(&self, number: usize, line: &[u8], e: &serde_json::Error) -> Error {
        if !e.is_eof() {
            return self.corrupt(number, e);
        }
        let what = match torn_head(line) {
            Some((whose, seq)) => format!(
                "it is record {seq} of deployment `{whose}`, and no later record of it writes \
                 it again, so it may have been acknowledged and acted on"
            ),
            None => {
                "it ends before it names its deployment, so whose record it was is unknown".into()
            }
        };
        self.failed(format!(
            "line {number} is cut short ({e}) in the middle of the journal: {what}; \
             replaying around it could repeat or skip what it did, so check that deployment's \
             state, then remove the line or restore the journal"
        ))
    }

    /// The last record of every deployment with its line number, in the order of their first
    /// record: one pass, parsing only those records.
    fn last_of_each(&self) -> Result<Vec<(usize, Record)>> {
        let mut order = Vec::new();
        let mut last: HashMap<String, (usize, Vec<u8>)> = HashMap::new();
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
                out.push((number, self.parse(number, &line)?));
            }
        }
        Ok(out)
    }

    /// The record on line `number`, which [`scan`](Self::scan) found complete.
    fn parse(&self, number: usize, line: &[u8]) -> Result<Record> {
        serde_json::from_slice::<Record>(line).map_err(|e| self.unreadable(number, line, &e))
    }
}

/// The directory of the file at `path`.
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// What the temporary files of compactions of the journal file at `path` are named, before
/// the process id.
fn temp_prefix(path: &Path) -> String {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    format!(".{name}.compact-")
}

/// The temporary file beside the journal file at `path` that this process compacts into.
fn sibling_temp(path: &Path) -> PathBuf {
    path.with_file_name(format!("{}{}", temp_prefix(path), std::process::id()))
}

/// Whether the file's last byte is not a newline: a write cut short by a crash, or one that
/// another process is making right now.
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

/// The file's last line (after its last newline) and the offset it starts at.
fn last_line(file: &mut std::fs::File) -> std::io::Result<(u64, Vec<u8>)> {
    use std::io::{Read, Seek, SeekFrom};
    const CHUNK: u64 = 64 * 1024;
    let mut start = file.metadata()?.len();
    let mut tail = Vec::new();
    while start > 0 {
        let from = start.saturating_sub(CHUNK);
        let mut chunk = vec![0u8; usize::try_from(start - from).unwrap_or(0)];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut chunk)?;
        let newline = chunk.iter().rposition(|b| *b == b'\n');
        if let Some(at) = newline {
            chunk.drain(..=at);
        }
        chunk.append(&mut tail);
        tail = chunk;
        if let Some(at) = newline {
            return Ok((from + at as u64 + 1, tail));
        }
        start = from;
    }
    Ok((0, tail))
}

impl Files {
    fn open_for_append(&self) -> Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&self.path)
            .map_err(|e| self.failed(e))
    }

    /// Appends one encoded line (ending in a newline) and syncs it; answers the file's size
    /// after.
    fn append(&self, mut line: Vec<u8>) -> Result<u64> {
        let _guard = lock(&self.write);
        let mut held = self.lock_file(false)?;
        // The file's name must reach the disk too: synced once by each journal's first
        // append, whoever created the file.
        let mut file = self.open_for_append()?;
        if ends_torn(&mut file).map_err(|e| self.failed(e))? {
            // A crash left a partial last line, or another process is still writing its own:
            // look again alone. The file is opened anew, as a compaction may have replaced it.
            drop(held);
            held = self.lock_file(true)?;
            file = self.open_for_append()?;
            if self.settle_torn_end(&mut file)? {
                line.insert(0, b'\n');
            }
        }
        let size = file
            .write_all(&line)
            .and_then(|()| file.sync_data())
            .and_then(|()| file.metadata())
            .map(|m| m.len())
            .map_err(|e| self.failed(e))?;
        let synced = &self.dir_synced;
        if !synced.load(std::sync::atomic::Ordering::Acquire) {
            self.sync_dir(dir_of(&self.path))?;
            synced.store(true, std::sync::atomic::Ordering::Release);
        }
        drop(held);
        Ok(size)
    }

    /// Deals with a last line that lacks its newline, under the exclusive lock; answers whether
    /// the next line must first end it. A line that reads back (a crash came just before its
    /// newline) is kept and ended. Anything else, which every read skips as torn and which was
    /// never acknowledged, is cut off: ended by a newline it would become a complete line that
    /// does not decode, and every read of the journal would stop at it as corrupt.
    fn settle_torn_end(&self, file: &mut std::fs::File) -> Result<bool> {
        if !ends_torn(file).map_err(|e| self.failed(e))? {
            return Ok(false);
        }
        let (start, mut tail) = last_line(file).map_err(|e| self.failed(e))?;
        if start == 0 && tail.starts_with(BOM) {
            tail.drain(..BOM.len());
        }
        if tail.trim_ascii().is_empty() || serde_json::from_slice::<Head>(&tail).is_ok() {
            return Ok(true);
        }
        file.set_len(start)
            .and_then(|()| file.sync_data())
            .map_err(|e| self.failed(format!("cannot cut off a torn last line: {e}")))?;
        tracing::warn!(
            journal = %self.name, bytes = tail.len(),
            "cut off a last line torn by a crash (never acknowledged)"
        );
        Ok(false)
    }

    fn records(&self, deployment: &str) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        self.scan(|number, whose, line| {
            if whose == deployment {
                out.push(self.parse(number, &line)?);
            }
            Ok(())
        })?;
        Ok(out)
    }

    fn deployments(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        self.scan(|_, whose, _| {
            names.push(whose);
            Ok(())
        })?;
        Ok(first_appearances(names.iter().map(String::as_str)))
    }

    fn all_records(&self) -> Result<Vec<Record>> {
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

#[async_trait]
impl Journal for FileJournal {
    fn name(&self) -> &str {
        &self.files.name
    }

    async fn append(&self, record: &Record) -> Result<()> {
        let mut line = serde_json::to_vec(record).map_err(|e| self.files.failed(e))?;
        // A record that would not read back is refused before anything acts on it: a journal
        // that cannot be replayed is no journal.
        serde_json::from_slice::<Record>(&line).map_err(|e| {
            self.files.failed(format!(
                "record {} of {} would not read back: {e}",
                record.seq, record.deployment
            ))
        })?;
        line.push(b'\n');
        let size = self.blocking(move |files| files.append(line)).await?;
        if let Some((above_bytes, keep)) = self.auto_compact
            && record.state.is_done()
            && size > above_bytes
            && let Err(e) = {
                let finished = record.deployment.clone();
                self.blocking(move |files| files.compact(keep, Some(&finished)))
                    .await
            }
        {
            tracing::warn!(journal = %self.files.name, "the journal could not be compacted: {e}");
        }
        Ok(())
    }

    async fn records(&self, deployment: &str) -> Result<Vec<Record>> {
        let deployment = deployment.to_owned();
        self.blocking(move |files| files.records(&deployment)).await
    }

    async fn deployments(&self) -> Result<Vec<String>> {
        self.blocking(Files::deployments).await
    }

    async fn last_records(&self) -> Result<Vec<Record>> {
        self.blocking(|files| Ok(files.last_of_each()?.into_iter().map(|(_, r)| r).collect()))
            .await
    }

    async fn all_records(&self) -> Result<Vec<Record>> {
        self.blocking(Files::all_records).await
    }
}

/// Where `path` leads: its canonical form once the file exists; before, the directory it will
/// be made in, resolved, joined with the name the symbolic links along `path` lead to (at most
/// 40 of them, as the kernel follows).
fn resolved(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        let Ok(target) = std::fs::read_link(&p) else {
            break;
        };
        // A relative target is read from the link's directory; an absolute one replaces it.
        p = p
            .parent()
            .map_or_else(|| target.clone(), |dir| dir.join(&target));
    }
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match (std::fs::canonicalize(dir), p.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => p,
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
        // Writing on after the crash: the torn last line is cut off.
        back.append(&sample_record(id, 2))
            .await
            .expect("append after a torn write");
        assert_eq!(
            seqs(back.records(id).await.expect("records")),
            vec![0, 1, 2]
        );
        assert_eq!(seqs(back.last_records().await.expect("last")), vec![2]);
        let text = std::fs::read_to_string(&path).expect("text");
        assert_eq!(text.lines().count(), 3, "the torn line is gone: {text:?}");
    }

    #[tokio::test]
    async fn a_torn_last_line_that_does_not_decode_is_cut_off_by_the_next_append() {
        let (_dir, path) = fresh();
        let j = FileJournal::open(&path).expect("open");
        let seqs = |records: Vec<Record>| records.iter().map(|r| r.seq).collect::<Vec<_>>();
        j.append(&sample_record("web-1", 0)).await.expect("append");
        let whole = std::fs::read(&path).expect("read");
        // A crash left the file longer than what reached the disk: a tail of zeros, the start
        // of a record whose later part is zeros, or a long run of garbage. Reads skip such a
        // last line.
        for tail in [
            b"\0\0\0\0\0\0\0\0".to_vec(),
            b"{\"deployment\":\"web-1\",\"seq\":1\0\0\0\0".to_vec(),
            vec![b'x'; 150_000],
        ] {
            std::fs::write(&path, &whole).expect("reset");
            append_raw(&path, &tail);
            assert_eq!(seqs(j.records("web-1").await.expect("records")), vec![0]);
            // The next append leaves every read as it was, plus its own record.
            j.append(&sample_record("web-1", 1)).await.expect("append");
            assert_eq!(seqs(j.records("web-1").await.expect("records")), vec![0, 1]);
            assert_eq!(
                j.deployments().await.expect("ids"),
                vec!["web-1".to_owned()]
            );
            assert_eq!(seqs(j.all_records().await.expect("all")), vec![0, 1]);
            let text = std::fs::read_to_string(&path).expect("text");
            assert_eq!(text.lines().count(), 2, "the torn line is gone: {text:?}");
        }
        // A last line that reads back (the crash came just before its newline) is kept.
        std::fs::write(&path, &whole[..whole.len() - 1]).expect("cut the newline");
        j.append(&sample_record("web-1", 1)).await.expect("append");
        assert_eq!(seqs(j.records("web-1").await.expect("records")), vec![0, 1]);
    }

    #[tokio::test]
    async fn a_line_cut_inside_a_multi_byte_character_is_skipped_as_torn() {
        let (_dir, path) = fresh();
        let id = "web-1";
        let j = FileJournal::open(&path).expect("open");
        let with_reason = |seq| {
            let mut r = sample_record(id, seq);
            r.state.rollback_reason = Some("latence dégradée".into());
            r
        };
        j.append(&with_reason(0)).await.expect("append");
        j.append(&with_reason(1)).await.expect("append");
        // A crash cuts the last line after the first byte of its last `é`.
        let bytes = std::fs::read(&path).expect("read");
        let e_acute = "é".as_bytes();
        let at = bytes
            .windows(e_acute.len())
            .rposition(|w| w == e_acute)
            .expect("the reason is in the file");
        std::fs::write(&path, &bytes[..=at]).expect("truncate");
        let seqs = |records: Vec<Record>| records.iter().map(|r| r.seq).collect::<Vec<_>>();
        let back = FileJournal::open(&path).expect("reopen");
        let records = back.records(id).await.expect("records");
        assert_eq!(
            records[0].state.rollback_reason.as_deref(),
            Some("latence dégradée")
        );
        assert_eq!(seqs(records), vec![0]);
        assert_eq!(seqs(back.last_records().await.expect("last")), vec![0]);
        // A compaction leaves the torn line out.
        back.compact(0).await.expect("compact");
        let text = std::fs::read_to_string(&path).expect("whole characters only");
        assert_eq!(text.lines().count(), 1);
        // Writing on after another such crash: the torn line is cut off.
        std::fs::write(&path, &bytes[..=at]).expect("truncate");
        back.append(&with_reason(2)).await.expect("append");
        assert_eq!(seqs(back.all_records().await.expect("all")), vec![0, 2]);
        let text = std::fs::read_to_string(&path).expect("whole characters only");
        assert_eq!(text.lines().count(), 2);
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

    #[tokio::test]
    async fn a_journal_saved_by_an_editor_reads_as_it_was_written() {
        let (_dir, path) = fresh();
        let j = FileJournal::open(&path).expect("open");
        let seqs = |records: Vec<Record>| records.iter().map(|r| r.seq).collect::<Vec<_>>();
        // Empty, or blank lines only: no records.
        std::fs::write(&path, "").expect("write");
        assert!(j.deployments().await.expect("ids").is_empty());
        std::fs::write(&path, "\n \r\n\n").expect("write");
        assert!(j.all_records().await.expect("all").is_empty());
        // A line removed by hand in an editor that saves CRLF line ends and a byte order mark.
        j.append(&sample_record("web-1", 0)).await.expect("append");
        j.append(&sample_record("web-1", 1)).await.expect("append");
        let text = std::fs::read_to_string(&path).expect("text");
        let edited = format!("\u{feff}{}\r\n", text.trim_end().replace('\n', "\r\n"));
        std::fs::write(&path, edited).expect("write");
        assert_eq!(seqs(j.records("web-1").await.expect("records")), [0, 1]);
        assert_eq!(j.deployments().await.expect("ids"), ["web-1"]);
        j.append(&sample_record("web-1", 2)).await.expect("append");
        assert_eq!(seqs(j.all_records().await.expect("all")), [0, 1, 2]);
        // A compaction leaves the mark out and keeps every record.
        j.compact(0).await.expect("compact");
        let text = std::fs::read_to_string(&path).expect("text");
        assert!(!text.starts_with('\u{feff}') && text.lines().count() == 3);
        // Saved with a byte order mark and no newline at the end: the next append keeps it.
        let first = text.lines().next().expect("a line").to_owned();
        std::fs::write(&path, format!("\u{feff}{first}")).expect("write");
        j.append(&sample_record("web-1", 1)).await.expect("append");
        assert_eq!(seqs(j.records("web-1").await.expect("records")), [0, 1]);
    }

    /// Records 0 and 1 of `web-1`, then record 2 of it cut short by a crash and ended by a
    /// newline (as versions that wrote on after a crash did): line 3.
    async fn torn_in_the_middle(path: &Path, j: &FileJournal) {
        j.append(&sample_record("web-1", 0)).await.expect("append");
        j.append(&sample_record("web-1", 1)).await.expect("append");
        append_raw(path, b"{\"deployment\":\"web-1\",\"seq\":2,\"at\":17\n");
    }

    fn seqs(records: Vec<Record>) -> Vec<(String, u64)> {
        records.into_iter().map(|r| (r.deployment, r.seq)).collect()
    }

    #[tokio::test]
    async fn a_line_cut_short_in_the_middle_and_written_again_after_the_crash_is_skipped() {
        let (_dir, path) = fresh();
        let j = FileJournal::open(&path).expect("open");
        torn_in_the_middle(&path, &j).await;
        // Another deployment wrote on; then `web-1` resumed from record 1 and wrote 2 again.
        j.append(&sample_record("web-2", 0)).await.expect("append");
        j.append(&sample_record("web-1", 2)).await.expect("append");
        j.append(&sample_record("web-1", 3)).await.expect("append");
        let ours = |seqs: &[u64]| -> Vec<(String, u64)> {
            seqs.iter().map(|s| ("web-1".to_owned(), *s)).collect()
        };
        assert_eq!(
            seqs(j.records("web-1").await.expect("records")),
            ours(&[0, 1, 2, 3])
        );
        assert_eq!(j.records("web-2").await.expect("records").len(), 1);
        assert_eq!(
            seqs(j.last_records().await.expect("last")),
            [("web-1".to_owned(), 3), ("web-2".to_owned(), 0)]
        );
        assert_eq!(j.all_records().await.expect("all").len(), 5);
        // A compaction leaves the torn copy out and keeps every record.
        j.compact(10).await.expect("compact");
        let text = std::fs::read_to_string(&path).expect("text");
        assert_eq!(text.lines().count(), 5, "{text}");
        assert_eq!(
            seqs(j.records("web-1").await.expect("records")),
            ours(&[0, 1, 2, 3])
        );
    }

    #[tokio::test]
    async fn a_line_cut_short_in_the_middle_that_nothing_writes_again_fails_its_reads() {
        let (_dir, path) = fresh();
        let j = FileJournal::open(&path).expect("open");
        torn_in_the_middle(&path, &j).await;
        j.append(&sample_record("web-2", 0)).await.expect("append");
        // Record 2 may have been acknowledged and acted on: replaying `web-1` from record 1
        // would be a silent loss, so its reads name the line and why.
        for err in [
            j.records("web-1").await.expect_err("lost record"),
            j.last_records().await.expect_err("lost record"),
            j.all_records().await.expect_err("lost record"),
        ] {
            let err = err.to_string();
            assert!(
                err.contains("line 3 is cut short")
                    && err.contains("record 2 of deployment `web-1`")
                    && err.contains("acknowledged"),
                "{err}"
            );
        }
        // Another deployment's records are read around it, and the deployment is listed.
        assert_eq!(j.records("web-2").await.expect("records").len(), 1);
        assert_eq!(j.deployments().await.expect("ids"), ["web-1", "web-2"]);
        // A compaction changes nothing.
        let before = std::fs::read(&path).expect("read");
        let err = j.compact(0).await.expect_err("lost record").to_string();
        assert!(err.contains("line 3 is cut short"), "{err}");
        assert_eq!(std::fs::read(&path).expect("read"), before);

        // A later record numbered past it means record 2 was read back before it was lost:
        // the last record is whole, but the deployment's history has a hole.
        j.append(&sample_record("web-1", 3)).await.expect("append");
        let err = j
            .records("web-1")
            .await
            .expect_err("lost record")
            .to_string();
        assert!(err.contains("line 3 is cut short"), "{err}");
        assert_eq!(
            seqs(j.last_records().await.expect("last")),
            [("web-1".to_owned(), 3), ("web-2".to_owned(), 0)]
        );
        assert!(j.compact(10).await.is_err());
        // So does a compaction that would trim the deployment, finished now.
        j.append(&record("web-1", 4, true)).await.expect("append");
        let before = std::fs::read(&path).expect("read");
        let err = j.compact(0).await.expect_err("lost record").to_string();
        assert!(err.contains("line 3 is cut short"), "{err}");
        assert_eq!(std::fs::read(&path).expect("read"), before);
    }

    #[tokio::test]
    async fn a_line_cut_short_in_the_middle_before_its_deployment_fails_every_read() {
        let (_dir, path) = fresh();
        let j = FileJournal::open(&path).expect("open");
        j.append(&sample_record("web-1", 0)).await.expect("append");
        append_raw(&path, b"{\"deployment\":\"web-\n");
        j.append(&sample_record("web-2", 0)).await.expect("append");
        for err in [
            j.records("web-1").await.expect_err("unknown owner"),
            j.records("web-2").await.expect_err("unknown owner"),
            j.deployments().await.expect_err("unknown owner"),
            j.last_records().await.expect_err("unknown owner"),
            j.all_records().await.expect_err("unknown owner"),
        ] {
            let err = err.to_string();
            assert!(
                err.contains("line 2 is cut short") && err.contains("whose record it was"),
                "{err}"
            );
        }
    }

    #[test]
    fn the_head_of_a_torn_line_is_read_only_when_whole() {
        assert_eq!(
            torn_head(br#"{"deployment":"web-1","seq":12,"at":"#),
            Some(("web-1".to_owned(), 12))
        );
        assert_eq!(
            torn_head(br#"{"deployment":"we\"b","seq":0,"#),
            Some(("we\"b".to_owned(), 0))
        );
        for cut in [
            &br#"{"deployment":"web-1","seq":1"#[..],
            br#"{"deployment":"web-1","se"#,
            br#"{"deployment":"web-1"#,
            br#"{"seq":1,"deployment":"web-1","#,
        ] {
            assert_eq!(torn_head(cut), None, "{}", String::from_utf8_lossy(cut));
        }
    }

    /// A record of `deployment` whose state is finished (or not).
    fn record(deployment: &str, seq: u64, done: bool) -> Record {
        let mut r = sample_record(deployment, seq);
        if done {
            r.state.stage = crate::state::Stage::Done;
        }
        r
    }

    #[tokio::test]
    async fn compaction_trims_old_finished_deployments_and_keeps_the_rest_byte_for_byte() {
        let (_dir, path) = fresh();
        let j = FileJournal::open(&path).expect("open");
        // web-0 never finished (a crash); web-1..web-4 did; web-5 is running.
        j.append(&record("web-0", 0, false)).await.expect("append");
        for d in 1..=4 {
            let id = format!("web-{d}");
            j.append(&record(&id, 0, false)).await.expect("append");
            j.append(&record(&id, 1, true)).await.expect("append");
        }
        j.append(&record("web-5", 0, false)).await.expect("append");
        j.append(&record("web-5", 1, false)).await.expect("append");
        // A line torn by a crash, never acknowledged.
        append_raw(&path, b"{\"deployment\":\"web-5\",\"seq\":2");
        let before = std::fs::read_to_string(&path).expect("read");
        // A compaction a crash cut short left its file; another journal's is not ours.
        let dir = path.parent().expect("dir");
        std::fs::write(dir.join(".journal.jsonl.compact-4194999"), "partial").expect("write");
        std::fs::write(dir.join(".other.jsonl.compact-1"), "theirs").expect("write");
        std::fs::write(dir.join(".journal.jsonl.compact-x.compact-7"), "theirs").expect("write");

        let done = j.compact(2).await.expect("compact");
        assert_eq!((done.kept, done.trimmed, done.records_dropped), (4, 2, 2));
        assert_eq!(done.bytes_before, before.len() as u64);
        let after = std::fs::read_to_string(&path).expect("read");
        assert_eq!(done.bytes_after, after.len() as u64);
        // Gone: the first records of web-1 and web-2, and the torn line.
        let trimmed = |l: &str| {
            (l.contains("\"web-1\"") || l.contains("\"web-2\"")) && l.contains("\"seq\":0")
        };
        let kept: Vec<&str> = before
            .lines()
            .filter(|l| !trimmed(l) && !l.ends_with("\"seq\":2"))
            .collect();
        assert_eq!(after.lines().collect::<Vec<_>>(), kept);
        assert_eq!(j.deployments().await.expect("ids").len(), 6);
        // A trimmed deployment keeps its final state.
        let last = j.records("web-1").await.expect("records");
        assert_eq!(
            (last.len(), last[0].seq, last[0].state.is_done()),
            (1, 1, true)
        );
        assert_eq!(j.records("web-3").await.expect("records").len(), 2);
        assert_eq!(j.records("web-5").await.expect("records").len(), 2);
        // Appends go on after it, and nothing of its own is left beside the journal but its
        // lock file.
        j.append(&record("web-5", 2, true)).await.expect("append");
        assert_eq!(j.records("web-5").await.expect("records").len(), 3);
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                ".journal.jsonl.compact-x.compact-7",
                ".other.jsonl.compact-1",
                "journal.jsonl",
                "journal.jsonl.lock"
            ]
        );
        // Keeping more finished deployments than there are trims nothing.
        let again = j.compact(10).await.expect("compact");
        assert_eq!(
            (again.kept, again.trimmed, again.records_dropped),
            (6, 0, 0)
        );
    }

    #[tokio::test]
    async fn a_journal_compacts_itself_when_a_deployment_finishes_past_its_size() {
        let (_dir, path) = fresh();
        let j = FileJournal::open(&path).expect("open");
        j.append(&record("web-1", 0, false)).await.expect("append");
        let one = std::fs::metadata(&path).expect("journal").len();
        j.append(&record("web-1", 1, true)).await.expect("append");
        // Past four and a half records' worth, keep one finished deployment whole.
        let j = FileJournal::open(&path)
            .expect("open")
            .with_compaction(one * 9 / 2, 1);
        let counts = || async {
            let mut n = Vec::new();
            for id in ["web-1", "web-2", "web-3"] {
                n.push(j.records(id).await.expect("records").len());
            }
            n
        };
        j.append(&record("web-2", 0, false)).await.expect("append");
        j.append(&record("web-2", 1, true)).await.expect("append");
        assert_eq!(counts().await, [2, 2, 0], "not past the size yet");
        j.append(&record("web-3", 0, false)).await.expect("append");
        assert_eq!(counts().await, [2, 2, 1], "past it, but nothing finished");
        j.append(&record("web-3", 1, true)).await.expect("append");
        assert_eq!(counts().await, [1, 1, 2]);
        // With none to keep, the deployment that just finished still is: its report is read
        // from its records next, though it began before one that finished earlier.
        let j = j.with_compaction(0, 0);
        j.append(&record("web-4", 0, false)).await.expect("append");
        j.append(&record("web-5", 0, false)).await.expect("append");
        j.append(&record("web-5", 1, true)).await.expect("append");
        j.append(&record("web-4", 1, true)).await.expect("append");
        assert_eq!(j.records("web-4").await.expect("records").len(), 2);
        assert_eq!(j.records("web-5").await.expect("records").len(), 1);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn compaction_of_a_journal_behind_a_symbolic_link_replaces_the_file_it_points_to() {
        let (_dir, path) = fresh();
        // The journal lives on a volume of its own; the configured path links to it.
        let volume = tempfile::tempdir().expect("volume");
        let real = volume.path().join("journal.jsonl");
        std::fs::write(&real, "").expect("create");
        std::os::unix::fs::symlink(&real, &path).expect("link");
        let j = FileJournal::open(&path).expect("open");
        j.append(&record("web-1", 0, false)).await.expect("append");
        j.append(&record("web-1", 1, true)).await.expect("append");
        j.append(&record("web-2", 0, false)).await.expect("append");
        let done = j.compact(0).await.expect("compact");
        assert_eq!(done.records_dropped, 1);
        assert!(path.is_symlink(), "the link was replaced by a file");
        j.append(&record("web-2", 1, false)).await.expect("append");
        let back = FileJournal::open(&real).expect("open the file itself");
        assert_eq!(back.records("web-1").await.expect("records").len(), 1);
        assert_eq!(back.records("web-2").await.expect("records").len(), 2);
        let mut names: Vec<_> = std::fs::read_dir(volume.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        names.sort();
        // The lock file sits beside the file, where a journal opened on the file itself looks.
        assert_eq!(
            names,
            ["journal.jsonl", "journal.jsonl.lock"],
            "no compaction file is left behind"
        );
    }

    #[tokio::test]
    async fn compaction_of_a_corrupt_or_missing_journal_changes_nothing() {
        let (_dir, path) = fresh();
        let j = FileJournal::open(&path).expect("open");
        let nothing = j.compact(0).await.expect("no file yet");
        assert_eq!(
            (nothing.kept, nothing.trimmed, nothing.bytes_after),
            (0, 0, 0)
        );
        assert!(!path.exists());
        j.append(&record("web-1", 0, true)).await.expect("append");
        append_raw(&path, b"{\"deployment\": 7}\n");
        let before = std::fs::read(&path).expect("read");
        let err = j.compact(0).await.expect_err("corrupt");
        assert!(err.to_string().contains("line 2 is corrupt"), "{err}");
        assert_eq!(std::fs::read(&path).expect("read"), before);
        assert_eq!(
            std::fs::read_dir(path.parent().expect("dir"))
                .expect("list")
                .count(),
            2
        );
    }

    #[test]
    fn appends_from_another_journal_on_the_file_are_never_lost_to_a_compaction() {
        let (_dir, path) = fresh();
        let rt = || {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime")
        };
        // Two journals on one file stand for two processes: one appends while the other
        // compacts over and over.
        let writer = FileJournal::open(&path).expect("open");
        let compactor = FileJournal::open(&path).expect("open");
        let appends = std::thread::spawn(move || {
            rt().block_on(async {
                for seq in 0..100 {
                    writer
                        .append(&record("web-1", seq, false))
                        .await
                        .expect("append");
                }
            })
        });
        rt().block_on(async {
            while !appends.is_finished() {
                compactor.compact(0).await.expect("compact");
            }
        });
        appends.join().expect("appends");
        let back = FileJournal::open(&path).expect("reopen");
        let seqs: Vec<u64> = rt()
            .block_on(back.records("web-1"))
            .expect("records")
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(seqs, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn a_journal_waiting_on_its_file_leaves_the_runtime_to_other_tasks() {
        let (_dir, path) = fresh();
        let journal = std::sync::Arc::new(FileJournal::open(&path).expect("open"));
        // Another process compacting holds the lock file: appends wait for it.
        let compacting = journal.files.lock_file(true).expect("lock");
        let (ran, other_task_ran) = std::sync::mpsc::channel();
        let runtime = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let append = tokio::spawn({
                    let journal = std::sync::Arc::clone(&journal);
                    async move { journal.append(&record("web-1", 0, false)).await }
                });
                tokio::task::yield_now().await;
                ran.send(()).expect("send");
                append.await.expect("task").expect("append");
                journal.records("web-1").await.expect("records").len()
            })
        });
        let waited = other_task_ran.recv_timeout(std::time::Duration::from_secs(30));
        drop(compacting);
        assert!(
            waited.is_ok(),
            "the runtime's thread was stuck in the journal's wait for its lock"
        );
        assert_eq!(runtime.join().expect("runtime thread"), 1);
    }

    #[test]
    fn journals_through_a_symbolic_link_and_through_its_file_share_one_lock() {
        let (_dir, path) = fresh();
        let volume = tempfile::tempdir().expect("volume");
        let real = volume.path().join("journal.jsonl");
        std::os::unix::fs::symlink(&real, &path).expect("link");
        // One process is configured with the link, another (a compaction run by hand, say)
        // with the file itself.
        let via_link = FileJournal::open(&path).expect("open");
        // Before the file exists, the link and the file it will lead to name one lock too: the
        // first append makes the file under it.
        let direct = FileJournal::open(&real).expect("open the file itself");
        assert_eq!(via_link.files.lock_path(), direct.files.lock_path());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(via_link.append(&record("web-1", 0, false)))
            .expect("append");
        // An append through the link holds the lock shared: a compaction of the file must wait.
        let appending = via_link.files.lock_file(false).expect("lock");
        let compaction = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(direct.files.lock_path())
            .expect("lock file");
        assert!(
            compaction.try_lock().is_err(),
            "a compaction through the file took its lock while an append through the link held it"
        );
        drop(appending);
        compaction.try_lock().expect("free once the append is done");
    }

    #[test]
    fn a_journal_in_a_missing_directory_is_refused() {
        let err = FileJournal::open("/nonexistent-serin-dir/journal.jsonl").expect_err("refused");
        assert!(err.to_string().contains("journal.path"), "{err}");
    }

    #[test]
    fn a_journal_path_that_names_a_directory_is_refused_and_creates_nothing() {
        let dir = tempfile::tempdir().expect("dir");
        let inside = dir.path().join("state");
        std::fs::create_dir(&inside).expect("create");
        for path in [inside.clone(), inside.join(".."), PathBuf::new()] {
            let err = FileJournal::open(&path).expect_err("refused").to_string();
            assert!(
                err.contains("journal.path") && err.contains("not a file"),
                "{path:?}: {err}"
            );
        }
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 1);
    }
}
