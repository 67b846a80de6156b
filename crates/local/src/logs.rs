//! Instance logs: each process's standard output and error go through one pipe to a thread that
//! appends them to the instance's log file and rotates that file at a size limit, so that an
//! instance that runs for months, or one that writes a line per request, cannot fill the disk.
//!
//! The rotation is a chain of renames (`web/green-0.log` → `.log.1` → `.log.2` …), written here
//! rather than taken from `file-rotate`: that crate panics when its directory cannot be created,
//! drops writes silently when its file cannot be opened, and brings `chrono` and `flate2` for
//! time-based names and compression that instance logs do not need.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, PipeReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serin_orchestrator::{Error, Result};
use tokio::sync::watch;

/// When an instance's log is rotated and how many rotated files are kept. Serialized in
/// camelCase (`maxBytes`, `keep`), each field defaulted; checked on load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawRotation", into = "RawRotation")]
pub struct LogRotation {
    /// The size past which the log is rotated, at the start of the next write the process makes
    /// (a write is never split, so a file may end up to one pipe read, 64 KiB, beyond it).
    /// Default 16 MiB; at least 1 KiB.
    pub max_bytes: u64,
    /// Rotated files kept (`.log.1` is the newest); the oldest beyond them is deleted. `0`
    /// starts the log over at the limit. Default 3, so an instance holds at most about
    /// `(keep + 1) × max_bytes` = 64 MiB of logs; at most [`MAX_KEEP`](Self::MAX_KEEP).
    pub keep: u32,
}

impl Default for LogRotation {
    fn default() -> Self {
        LogRotation {
            max_bytes: 16 * 1024 * 1024,
            keep: 3,
        }
    }
}

impl LogRotation {
    /// The least `max_bytes`: below it a log would rotate every few lines.
    pub const MIN_BYTES: u64 = 1024;

    /// The most rotated files kept: every rotation renames each of them, on the thread that
    /// drains the process's output, so a huge count would stall that output.
    pub const MAX_KEEP: u32 = 100;

    pub(crate) fn validate(&self) -> Result<()> {
        if self.max_bytes < Self::MIN_BYTES {
            return Err(Error::invalid(
                "processConfig.logRotation.maxBytes",
                self.max_bytes,
                format!("must be at least {} bytes", Self::MIN_BYTES),
            ));
        }
        if self.keep > Self::MAX_KEEP {
            return Err(Error::invalid(
                "processConfig.logRotation.keep",
                self.keep,
                format!("must be at most {} rotated files", Self::MAX_KEEP),
            ));
        }
        Ok(())
    }
}

/// The serialized form of [`LogRotation`].
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawRotation {
    #[serde(default = "default_max_bytes")]
    max_bytes: u64,
    #[serde(default = "default_keep")]
    keep: u32,
}

fn default_max_bytes() -> u64 {
    LogRotation::default().max_bytes
}
fn default_keep() -> u32 {
    LogRotation::default().keep
}

impl TryFrom<RawRotation> for LogRotation {
    type Error = Error;
    fn try_from(r: RawRotation) -> Result<Self> {
        let rotation = LogRotation {
            max_bytes: r.max_bytes,
            keep: r.keep,
        };
        rotation.validate()?;
        Ok(rotation)
    }
}

impl From<LogRotation> for RawRotation {
    fn from(r: LogRotation) -> Self {
        RawRotation {
            max_bytes: r.max_bytes,
            keep: r.keep,
        }
    }
}

/// The `n`-th rotated file of `log` (`web/green-0.log.1` is the newest); `n = 0` is `log`.
pub(crate) fn rotated(log: &Path, n: u32) -> PathBuf {
    if n == 0 {
        return log.to_path_buf();
    }
    let mut name = log.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// A log file that rotates itself at [`LogRotation::max_bytes`].
#[derive(Debug)]
pub(crate) struct RotatingFile {
    path: PathBuf,
    file: File,
    size: u64,
    rotation: LogRotation,
    /// The log was renamed to `.log.1` but its new file did not open: writes go on into the
    /// renamed one, and the next rotation only opens the new file. Shifting the files again
    /// would push the one being written toward the oldest, and delete it there.
    reopen: bool,
}

impl RotatingFile {
    /// Opens `path` for appending (an existing log is continued, its size counted).
    pub(crate) fn open(path: &Path, rotation: LogRotation) -> std::io::Result<Self> {
        let file = Self::append(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_path_buf(),
            file,
            size,
            rotation,
            reopen: false,
        })
    }

    fn append(path: &Path) -> std::io::Result<File> {
        #[cfg(test)]
        if tests::OPEN_FAILS.with(std::cell::Cell::get) {
            return Err(std::io::Error::other("too many open files"));
        }
        OpenOptions::new().create(true).append(true).open(path)
    }

    /// Appends `chunk`, rotating first if the file is past its limit. If rotating fails, the
    /// chunk is still appended to the file as it is, and the error returned.
    pub(crate) fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        let rotated = if self.size >= self.rotation.max_bytes {
            self.rotate()
        } else {
            Ok(())
        };
        self.file.write_all(chunk)?;
        self.size = self.size.saturating_add(chunk.len() as u64);
        rotated
    }

    /// Shifts `.log.k` to `.log.k+1` (dropping the oldest), the log to `.log.1`, and starts a new
    /// log. With `keep = 0` the log is emptied in place.
    fn rotate(&mut self) -> std::io::Result<()> {
        let keep = self.rotation.keep;
        if keep == 0 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        if !self.reopen {
            match std::fs::remove_file(rotated(&self.path, keep)) {
                Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            for n in (1..keep).rev() {
                match std::fs::rename(rotated(&self.path, n), rotated(&self.path, n + 1)) {
                    Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            std::fs::rename(&self.path, rotated(&self.path, 1))?;
            self.reopen = true;
        }
        // Until the new file opens, writes go on into the renamed one (its handle still works).
        self.file = Self::append(&self.path)?;
        self.reopen = false;
        self.size = 0;
        Ok(())
    }
}

/// How long [`Pump::drained`] waits for the last of a process's output once the process exited.
const DRAIN_WAIT: Duration = Duration::from_millis(200);

/// The thread that copies one process's output into its log; a clone is another handle to it.
#[derive(Debug, Clone)]
pub(crate) struct Pump {
    /// Closed when the thread has written everything the pipe held and ended (nothing is ever
    /// sent on it).
    done: watch::Receiver<()>,
    /// The last lines of this process's output (not of the log file, which an earlier process
    /// of the same instance id may have written).
    tail: Arc<Mutex<Tail>>,
}

impl Pump {
    /// Starts copying `pipe` into `log` until every copy of the pipe's write end is closed (the
    /// process and any child it left behind have exited). A failed write or rotation is logged
    /// once and the output still drained, so that the process never blocks on a full pipe.
    pub(crate) fn start(
        instance: &str,
        mut pipe: PipeReader,
        mut log: RotatingFile,
    ) -> std::io::Result<Self> {
        let (tx, done) = watch::channel(());
        let tail = Arc::new(Mutex::new(Tail::default()));
        let kept = Arc::clone(&tail);
        let id = instance.to_owned();
        std::thread::Builder::new()
            .name(format!("serin-log-{instance}"))
            .spawn(move || {
                let _tx = tx;
                let mut buf = vec![0u8; 64 * 1024];
                let mut warned = false;
                loop {
                    let n = match pipe.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(e) => {
                            tracing::warn!(instance = %id, "cannot read the output: {e}");
                            break;
                        }
                    };
                    lock(&kept).push(&buf[..n]);
                    if let Err(e) = log.write(&buf[..n])
                        && !std::mem::replace(&mut warned, true)
                    {
                        tracing::warn!(
                            instance = %id, log = %log.path.display(),
                            "cannot write or rotate the log (later failures are not repeated): {e}"
                        );
                    }
                }
            })?;
        Ok(Pump { done, tail })
    }

    /// The last non-empty lines of the process's output so far, oldest first (see [`Tail`]).
    pub(crate) fn tail(&self) -> Vec<String> {
        lock(&self.tail).lines()
    }

    /// Waits, at most [`DRAIN_WAIT`], for the thread to write the last of the output (called once
    /// the process has exited, before its [`tail`](Self::tail) is read). A child the process left
    /// behind may hold the pipe open for longer; its output then lands later.
    ///
    /// The wait owns what it needs, so a caller can take it while holding a lock and wait
    /// after releasing it: no other call waits on this process's output.
    pub(crate) fn drained(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut done = self.done.clone();
        async move {
            let _ = tokio::time::timeout(DRAIN_WAIT, done.changed()).await;
        }
    }
}

/// How many lines a [`Tail`] keeps: a process that fails often says why on one line and adds a
/// hint or a stack after it (a Rust panic ends with its `RUST_BACKTRACE` note), so the last line
/// alone rarely holds the cause.
const TAIL_LINES: usize = 5;

/// The most characters of a line a [`Tail`] keeps.
const TAIL_LINE_CHARS: usize = 300;

/// The last non-empty lines of one process's output, kept as the output goes by, to describe
/// the process once it exits. Bounded: [`TAIL_LINES`] lines of at most [`TAIL_LINE_CHARS`]
/// characters each. Bytes that are not UTF-8 (a binary dump, a cut character) are replaced.
#[derive(Debug, Default)]
struct Tail {
    lines: VecDeque<String>,
    /// The start of the line being written (up to four bytes a character, so the kept
    /// characters are whole).
    partial: Vec<u8>,
}

impl Tail {
    fn push(&mut self, mut chunk: &[u8]) {
        while let Some(end) = chunk.iter().position(|&b| b == b'\n') {
            self.extend_partial(&chunk[..end]);
            let line = tail_line(&self.partial);
            self.partial.clear();
            if let Some(line) = line {
                if self.lines.len() == TAIL_LINES {
                    self.lines.pop_front();
                }
                self.lines.push_back(line);
            }
            chunk = &chunk[end + 1..];
        }
        self.extend_partial(chunk);
    }

    fn extend_partial(&mut self, bytes: &[u8]) {
        let room = (TAIL_LINE_CHARS * 4).saturating_sub(self.partial.len());
        self.partial
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// The kept lines, the unfinished last one included, oldest first.
    fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.lines.iter().cloned().collect();
        if let Some(last) = tail_line(&self.partial) {
            if lines.len() == TAIL_LINES {
                lines.remove(0);
            }
            lines.push(last);
        }
        lines
    }
}

/// `bytes` as a line of a [`Tail`], or `None` if blank.
fn tail_line(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let text = text.strip_suffix('\r').unwrap_or(&text);
    (!text.trim().is_empty()).then(|| text.chars().take(TAIL_LINE_CHARS).collect())
}

fn lock(tail: &Mutex<Tail>) -> MutexGuard<'_, Tail> {
    tail.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// Makes opening a log fail on this thread (as running out of file descriptors does).
        pub(super) static OPEN_FAILS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    #[test]
    fn a_log_whose_new_file_does_not_open_keeps_its_output() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("web-green-0.log");
        let mut file = RotatingFile::open(&log, rotation(100, 2)).unwrap();
        let line = |i: usize| format!("{i:0>49}\n");
        for i in 0..2 {
            file.write(line(i).as_bytes()).unwrap();
        }
        OPEN_FAILS.with(|f| f.set(true));
        // Each write past the limit fails to open the new log but keeps its line.
        for i in 2..8 {
            assert!(file.write(line(i).as_bytes()).is_err());
        }
        OPEN_FAILS.with(|f| f.set(false));
        file.write(line(8).as_bytes()).unwrap();
        assert_eq!(
            read(&rotated(&log, 1)),
            (0..8).map(line).collect::<String>()
        );
        assert_eq!(read(&log), line(8));
        assert!(!rotated(&log, 2).exists());
    }

    fn rotation(max_bytes: u64, keep: u32) -> LogRotation {
        LogRotation { max_bytes, keep }
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }

    #[test]
    fn a_log_rotates_past_its_limit_and_keeps_the_newest_files() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("web-green-0.log");
        let mut file = RotatingFile::open(&log, rotation(1024, 2)).unwrap();
        let line = |i: usize| format!("{i:0>99}\n");
        // 100-byte lines: a file takes 11 of them (the 11th crosses 1,024 bytes).
        for i in 0..50 {
            file.write(line(i).as_bytes()).unwrap();
        }
        assert_eq!(read(&log), (44..50).map(line).collect::<String>());
        assert_eq!(
            read(&rotated(&log, 1)),
            (33..44).map(line).collect::<String>()
        );
        assert_eq!(
            read(&rotated(&log, 2)),
            (22..33).map(line).collect::<String>()
        );
        assert!(!rotated(&log, 3).exists());
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["web-green-0.log", "web-green-0.log.1", "web-green-0.log.2"]
        );
    }

    #[test]
    fn keeping_more_rotated_files_than_the_most_is_refused() {
        assert!(rotation(1024, LogRotation::MAX_KEEP).validate().is_ok());
        for keep in [LogRotation::MAX_KEEP + 1, u32::MAX] {
            let err = rotation(1024, keep).validate().unwrap_err().to_string();
            assert!(
                err.contains("processConfig.logRotation.keep") && err.contains(&keep.to_string()),
                "{err}"
            );
        }
    }

    #[test]
    fn a_continued_log_counts_what_it_already_holds() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("web-green-0.log");
        std::fs::write(&log, vec![b'x'; 2000]).unwrap();
        let mut file = RotatingFile::open(&log, rotation(1024, 1)).unwrap();
        file.write(b"next\n").unwrap();
        assert_eq!(read(&log), "next\n");
        assert_eq!(read(&rotated(&log, 1)).len(), 2000);
    }

    #[test]
    fn keeping_nothing_starts_the_log_over() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("web-green-0.log");
        let mut file = RotatingFile::open(&log, rotation(1024, 0)).unwrap();
        file.write(&[b'a'; 1500]).unwrap();
        file.write(b"after\n").unwrap();
        assert_eq!(read(&log), "after\n");
        assert!(!rotated(&log, 1).exists());
    }

    #[test]
    fn a_failed_rotation_keeps_the_output() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("web-green-0.log");
        let mut file = RotatingFile::open(&log, rotation(1024, 1)).unwrap();
        file.write(&[b'a'; 1500]).unwrap();
        // A directory where the rotated file should go: the rename fails.
        std::fs::create_dir(rotated(&log, 1)).unwrap();
        std::fs::write(rotated(&log, 1).join("x"), "x").unwrap();
        assert!(file.write(b"kept\n").is_err());
        assert!(read(&log).ends_with("kept\n"));
    }

    #[test]
    fn the_tail_keeps_the_last_lines_however_the_output_is_cut() {
        let mut tail = Tail::default();
        let mut text = b"starting\n".repeat(20_000);
        text.extend_from_slice(b"\xff\xfe binary noise\r\n");
        text.extend_from_slice(b"fatal: address already in use\n\n  \n");
        text.extend_from_slice(&b"x".repeat(100_000));
        text.extend_from_slice(b"\nnote: a hint");
        for piece in text.chunks(7) {
            tail.push(piece);
        }
        assert_eq!(
            tail.lines(),
            [
                "starting".to_owned(),
                "\u{fffd}\u{fffd} binary noise".to_owned(),
                "fatal: address already in use".to_owned(),
                "x".repeat(TAIL_LINE_CHARS),
                "note: a hint".to_owned(),
            ]
        );
        tail.push(format!("\n{}", "é".repeat(1_000)).as_bytes());
        assert_eq!(tail.lines().last(), Some(&"é".repeat(TAIL_LINE_CHARS)));
        assert!(Tail::default().lines().is_empty());
    }

    #[tokio::test]
    async fn the_pump_copies_a_pipe_until_it_closes() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("web-green-0.log");
        let (reader, mut writer) = std::io::pipe().unwrap();
        let pump = Pump::start(
            "green-0",
            reader,
            RotatingFile::open(&log, rotation(16 * 1024, 50)).unwrap(),
        )
        .unwrap();
        // 200 KB, more than a pipe holds: the pump reads it in several pieces and rotates.
        for i in 0..5_000 {
            writeln!(writer, "line {i:04} of the instance's output").unwrap();
        }
        drop(writer);
        let mut done = pump.done.clone();
        let ended = tokio::time::timeout(Duration::from_secs(10), done.changed()).await;
        assert!(ended.expect("the pump ends").is_err(), "nothing is sent");
        assert!(rotated(&log, 1).exists());
        assert!(!rotated(&log, 50).exists());
        let all: String = (0..50).rev().map(|n| read(&rotated(&log, n))).collect();
        let expected: String = (0..5_000)
            .map(|i| format!("line {i:04} of the instance's output\n"))
            .collect();
        assert_eq!(all, expected, "read back in order, nothing is lost");
        let last: Vec<String> = (4_995..5_000)
            .map(|i| format!("line {i:04} of the instance's output"))
            .collect();
        assert_eq!(pump.tail(), last);
    }
}
