//! Deployment locks as files, so several processes on one machine (two runs of a deploy tool,
//! a tool and an operator's shell) never deploy one service at once.
//!
//! A lock is the file `{dir}/{service}.lock` holding its holder's name (a deployment id). It is
//! taken by linking a file that already holds the name as the lock (`link` fails if the lock
//! exists and is atomic on a local file system), taken again by the same holder, and freed by
//! removing the file. Taking and freeing hold an advisory lock on `{dir}/.guard` (`flock`,
//! released by the kernel if the process dies) while they look at the lock and change it: an
//! unlock reads the holder's name and then removes the file, and without the guard a lock
//! freed and taken by another deployment between the two (a retried unlock racing the first)
//! would be the one removed. It deliberately survives the
//! death of the process that took it: the deployment it names is unfinished in the journal and
//! must be resumed (or rolled back) before another one starts, as the `Platform` contract says.
//! An operator who knows better removes the file; the refusal names it.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serin_orchestrator::{Error, Result};

/// The file whose advisory lock taking and freeing a lock hold (never a lock: those end in
/// `.lock`).
const GUARD: &str = ".guard";

/// Deployment locks kept as files in one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockDir {
    dir: PathBuf,
}

impl LockDir {
    /// Locks in `dir`, created if missing.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| {
            Error::invalid(
                "processConfig.lockDir",
                dir.display(),
                format!("cannot be created: {e}"),
            )
        })?;
        Ok(LockDir { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, service: &str) -> Result<PathBuf> {
        let safe = !service.is_empty()
            && service
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            && !service.starts_with('.');
        if !safe {
            return Err(Error::invalid(
                "service",
                service,
                "a lock needs a service name of letters, digits, '-', '_' and '.'",
            ));
        }
        Ok(self.dir.join(format!("{service}.lock")))
    }

    /// Waits for the guard (see the module docs): the returned file holds it until dropped.
    fn guard(&self) -> Result<File> {
        // Opened for reading where it exists, so that users who share the directory but not
        // the file's ownership can all take it.
        if let Some(guard) = self.existing_guard()? {
            return Ok(guard);
        }
        let path = self.dir.join(GUARD);
        File::create(&path)
            .and_then(|f| f.lock().map(|()| f))
            .map_err(|e| Error::platform("process", format!("lock {}: {e}", path.display())))
    }

    /// Takes the lock of `service` for `holder`, or answers who holds it.
    pub fn lock(&self, service: &str, holder: &str) -> Result<()> {
        let path = self.path(service)?;
        let _guard = self.guard()?;
        let io =
            |e: std::io::Error| Error::platform("process", format!("lock {}: {e}", path.display()));
        // A lock removed between the attempt and the look at its holder (by hand, as unlocks
        // wait for the guard) is tried again: it is free to take, not an error.
        let current = loop {
            match self.create(&path, holder) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    match std::fs::read_to_string(&path) {
                        Ok(current) => break current,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io(e)),
                    }
                }
                Err(e) => return Err(io(e)),
            }
        };
        if current == holder {
            Ok(())
        } else {
            Err(Error::conflict(
                "lock",
                service,
                format!(
                    "deployment {current} holds the lock of this service ({})",
                    path.display()
                ),
            ))
        }
    }

    /// The guard if it exists, waited for (see [`guard`](Self::guard)); none where no lock was
    /// ever taken in the directory, as every taker makes it first.
    fn existing_guard(&self) -> Result<Option<File>> {
        let path = self.dir.join(GUARD);
        match File::open(&path) {
            Ok(f) => f.lock().map(|()| Some(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
        .map_err(|e| Error::platform("process", format!("lock {}: {e}", path.display())))
    }

    /// The holder of the lock of `service`, if it is taken, read without taking it and with
    /// read access to the directory only: an observer who may not take locks can still ask
    /// who holds one. The read holds the guard where there is one, so a lock being created
    /// where the file system has no hard links (it is then created empty and written) is not
    /// read before its holder's name is in it.
    pub fn holder(&self, service: &str) -> Result<Option<String>> {
        let path = self.path(service)?;
        let guard = self.existing_guard()?;
        let holder = read_holder(&path)?;
        if guard.is_none() && holder.as_deref() == Some("") {
            // An empty lock may be one being written by a taker that made the guard after the
            // look for it: read it again under that guard.
            let _guard = self.existing_guard()?;
            return read_holder(&path);
        }
        Ok(holder)
    }

    /// Creates the lock file `path` holding `holder`, or fails with `AlreadyExists`.
    ///
    /// The name is written to a file of its own first and then linked as the lock: a link is
    /// made at once or not at all and never replaces a file, so a lock is never seen without
    /// its holder's name (by another process asking who holds it), nor left without it by a
    /// crash. Where the file system has no hard links, the lock is created empty and then
    /// written, as the only way left.
    fn create(&self, path: &Path, holder: &str) -> std::io::Result<()> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let staged = path.with_extension(format!(
            "lock.{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let written = write_synced(
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true),
            &staged,
            holder,
        );
        let linked = written.and_then(|()| std::fs::hard_link(&staged, path));
        let _ = std::fs::remove_file(&staged);
        match linked {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::Unsupported | std::io::ErrorKind::PermissionDenied
                ) =>
            {
                write_synced(
                    std::fs::OpenOptions::new().write(true).create_new(true),
                    path,
                    holder,
                )
            }
            other => other,
        }
    }

    /// Frees the lock of `service` if `holder` holds it.
    pub fn unlock(&self, service: &str, holder: &str) -> Result<()> {
        let path = self.path(service)?;
        let _guard = self.guard()?;
        if read_holder(&path)?.as_deref() != Some(holder) {
            return Ok(());
        }
        #[cfg(test)]
        tests::before_freeing();
        std::fs::remove_file(&path)
            .or_else(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Ok(()),
                _ => Err(e),
            })
            .map_err(|e| Error::platform("process", format!("unlock {}: {e}", path.display())))
    }
}

/// The name in the lock file `path`, if there is one.
fn read_holder(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(holder) => Ok(Some(holder)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::platform(
            "process",
            format!("read lock {}: {e}", path.display()),
        )),
    }
}

/// Opens `path` with `options` and writes `text` to disk.
fn write_synced(options: &std::fs::OpenOptions, path: &Path, text: &str) -> std::io::Result<()> {
    let mut f = options.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_across_handles_and_a_bad_name_is_refused() {
        let dir = std::env::temp_dir().join(format!("serin-locks-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (a, b) = (LockDir::new(&dir).unwrap(), LockDir::new(&dir).unwrap());
        a.lock("web", "d-1").unwrap();
        a.lock("web", "d-1").unwrap();
        let err = b.lock("web", "d-2").unwrap_err().to_string();
        assert!(err.contains("d-1") && err.contains("web.lock"), "{err}");
        b.unlock("web", "d-2").unwrap();
        assert!(b.lock("web", "d-2").is_err(), "a non-holder cannot free it");
        a.unlock("web", "d-1").unwrap();
        b.lock("web", "d-2").unwrap();
        b.lock("api", "d-3").unwrap();
        for bad in ["", "../etc", ".hidden", "a/b"] {
            assert!(a.lock(bad, "x").is_err(), "{bad}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The holder is read by any handle without taking or changing the lock; a bad name is
    /// refused as `lock` refuses it.
    #[test]
    fn the_holder_is_read_without_taking_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (
            LockDir::new(dir.path()).unwrap(),
            LockDir::new(dir.path()).unwrap(),
        );
        assert_eq!(b.holder("web").unwrap(), None);
        a.lock("web", "d-1").unwrap();
        assert_eq!(b.holder("web").unwrap().as_deref(), Some("d-1"));
        assert!(b.lock("web", "d-2").is_err());
        assert_eq!(b.holder("web").unwrap().as_deref(), Some("d-1"));
        a.unlock("web", "d-1").unwrap();
        assert_eq!(b.holder("web").unwrap(), None);
        let err = b.holder("../etc").unwrap_err().to_string();
        assert!(err.contains("../etc"), "{err}");
    }

    /// Reading the holder changes nothing in the directory, so that an observer with read
    /// access only (an operator's status command) can read it: where no lock was ever taken
    /// there is no guard, and the read creates none.
    #[test]
    fn reading_the_holder_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let locks = LockDir::new(dir.path()).unwrap();
        let listing = || {
            let mut names: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            names
        };
        assert_eq!(locks.holder("web").unwrap(), None);
        assert_eq!(listing(), Vec::<std::ffi::OsString>::new());
        // A lock file made by hand, with no guard beside it, is read all the same.
        std::fs::write(dir.path().join("web.lock"), "d-1").unwrap();
        assert_eq!(locks.holder("web").unwrap().as_deref(), Some("d-1"));
        assert_eq!(listing(), ["web.lock"]);
    }

    /// A lock freed between a taker's attempt and its look at the holder is taken, or refused
    /// naming a holder: never an error about a file that vanished.
    #[test]
    fn a_lock_freed_while_it_is_being_taken_is_no_error() {
        let dir = tempfile::tempdir().unwrap();
        let locks = LockDir::new(dir.path()).unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                for _ in 0..3_000 {
                    if locks.lock("web", "d-1").is_ok() {
                        locks.unlock("web", "d-1").unwrap();
                    }
                }
            });
            for _ in 0..3_000 {
                match locks.lock("web", "d-2") {
                    Ok(()) => locks.unlock("web", "d-2").unwrap(),
                    Err(Error::Conflict { .. }) => {}
                    Err(e) => panic!("{e}"),
                }
            }
        });
    }

    thread_local! {
        /// Run by [`LockDir::unlock`] once it has found its holder's name, before it frees.
        static BEFORE_FREEING: std::cell::RefCell<Option<Box<dyn FnOnce()>>> =
            std::cell::RefCell::new(None);
    }

    pub(super) fn before_freeing() {
        if let Some(run) = BEFORE_FREEING.take() {
            run();
        }
    }

    /// An unlock that found its holder's name is not joined, before it frees the lock, by
    /// another unlock of that holder (a retried release) and a taker of the freed lock: the
    /// taker's lock would be the one removed.
    #[test]
    fn an_unlock_never_frees_a_lock_another_holder_took() {
        let dir = tempfile::tempdir().unwrap();
        let locks = LockDir::new(dir.path()).unwrap();
        locks.lock("web", "d-1").unwrap();
        let others_went_first = std::rc::Rc::new(std::cell::Cell::new(false));
        let (others, went_first) = (locks.clone(), others_went_first.clone());
        let guard = dir.path().join(GUARD);
        BEFORE_FREEING.set(Some(Box::new(move || {
            let excluded = std::fs::File::create(&guard).unwrap().try_lock().is_err();
            if !excluded {
                others.unlock("web", "d-1").unwrap();
                others.lock("web", "d-2").unwrap();
                went_first.set(true);
            }
        })));
        locks.unlock("web", "d-1").unwrap();
        if !others_went_first.get() {
            locks.unlock("web", "d-1").unwrap();
            locks.lock("web", "d-2").unwrap();
        }
        let held = std::fs::read_to_string(dir.path().join("web.lock"));
        assert_eq!(
            held.ok().as_deref(),
            Some("d-2"),
            "the taker's lock was removed"
        );
    }

    #[test]
    fn a_lock_being_taken_already_names_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let locks = LockDir::new(dir.path()).unwrap();
        for round in 0..100 {
            let service = format!("web-{round}");
            let outcomes: Vec<Result<()>> = std::thread::scope(|s| {
                let racers: Vec<_> = (0..4)
                    .map(|i| {
                        let (locks, service) = (&locks, &service);
                        s.spawn(move || locks.lock(service, &format!("deployment-{i}")))
                    })
                    .collect();
                racers.into_iter().map(|r| r.join().unwrap()).collect()
            });
            assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1);
            for refused in outcomes.into_iter().filter_map(|o| o.err()) {
                let msg = refused.to_string();
                assert!(
                    msg.contains("deployment deployment-"),
                    "round {round}: {msg}"
                );
            }
        }
    }
}
