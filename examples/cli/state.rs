//! The state directory: the event journal (`journal.jsonl`, a `FileJournal`), the record of
//! what runs (`state.json`), the lock a command that changes it holds (`lock`) and the demo
//! processes' logs (`logs/`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serin_orchestrator::Outcome;
use serin_signals::Track;

use crate::cli::args::BackendKind;
use crate::cli::exit::CliError;

/// What runs: the version serving all traffic, on which track, with how many instances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Running {
    /// The version.
    pub version: semver::Version,
    /// The track it runs on.
    pub track: Track,
    /// Its instances.
    pub instances: u32,
}

/// How the demo service behaves for one version (what `--error-rate` and `--latency-ms` said).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Behaviour {
    /// Share of requests answered 500.
    pub error_rate: f64,
    /// Delay added to each answer, in milliseconds.
    pub latency_ms: u64,
}

/// `state.json`: what the last command left running, so the next invocation can bring it
/// back up, roll back from it and report on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunState {
    /// The service.
    pub service: String,
    /// The backend it runs on.
    pub backend: BackendKind,
    /// What serves all traffic (none before the first install).
    pub current: Option<Running>,
    /// The versions that ran before, oldest first; `rollback` goes back to the last one.
    #[serde(default)]
    pub previous: Vec<semver::Version>,
    /// Each version's demo behaviour, by version.
    #[serde(default)]
    pub behaviours: BTreeMap<String, Behaviour>,
    /// The id of the last deployment in the journal.
    #[serde(default)]
    pub last_deployment: Option<String>,
    /// How the last deployment ended.
    #[serde(default)]
    pub last_outcome: Option<Outcome>,
    /// A deployment a command started and has not seen end (the command was stopped).
    #[serde(default)]
    pub in_progress: Option<String>,
}

impl RunState {
    /// Nothing deployed yet.
    pub fn new(service: &str, backend: BackendKind) -> Self {
        RunState {
            service: service.to_owned(),
            backend,
            current: None,
            previous: Vec::new(),
            behaviours: BTreeMap::new(),
            last_deployment: None,
            last_outcome: None,
            in_progress: None,
        }
    }

    /// How `version` behaves (healthy unless told otherwise).
    pub fn behaviour(&self, version: &semver::Version) -> Behaviour {
        self.behaviours
            .get(&version.to_string())
            .copied()
            .unwrap_or_default()
    }

    /// Every version deployed from this state directory, lowest first: what runs, what ran
    /// before, and each version of which a deployment started a track (its behaviour is
    /// recorded when the deployment starts, and taken back when no track of it started: see
    /// [`forget_behaviour`](Self::forget_behaviour)).
    pub fn known_versions(&self) -> BTreeSet<semver::Version> {
        let recorded = self
            .behaviours
            .keys()
            .filter_map(|v| semver::Version::parse(v).ok());
        let current = self.current.as_ref().map(|r| r.version.clone());
        recorded
            .chain(self.previous.iter().cloned())
            .chain(current)
            .collect()
    }

    /// Takes back the behaviour a deployment recorded for `version` when no track of it
    /// started (validation blocked it, its start was refused): the version never ran, and
    /// `rollback --to-version` would switch all traffic to it at once, with none of a
    /// deployment's checks. `replaced`, what was recorded for it before, is put back.
    pub fn forget_behaviour(&mut self, version: &semver::Version, replaced: Option<Behaviour>) {
        match replaced {
            Some(b) => self.behaviours.insert(version.to_string(), b),
            None => self.behaviours.remove(&version.to_string()),
        };
    }

    /// Records what runs after a deployment (or, with `rollback`, a rollback) to `target`: a
    /// new current version pushes the old one on `previous`, as a deployment of a version
    /// that ran before does too — unless a rollback went back to a version found there, which
    /// is then taken off it with the versions after it, so that the next rollback goes on back.
    pub fn record_running(
        &mut self,
        now: Option<Running>,
        target: &semver::Version,
        rollback: bool,
    ) {
        let before = self.current.as_ref().map(|r| r.version.clone());
        let after = now.as_ref().map(|r| r.version.clone());
        if after != before
            && let Some(after) = &after
        {
            if rollback
                && after == target
                && let Some(at) = self.previous.iter().rposition(|v| v == after)
            {
                self.previous.truncate(at);
            } else if let Some(before) = before {
                self.previous.push(before);
            }
        }
        self.current = now;
    }
}

/// How many more times [`StateDir::lock`] tries a held lock, and how long it waits between.
const LOCK_TRIES: u32 = 3;
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(50);

/// A command's hold on the state directory, released when dropped (or when the process ends).
///
/// Until the command starts changing what runs ([`StateLock::keep`]), what taking the lock
/// created is removed on release: the lock file, and the directory if it was missing and is
/// empty again. So a command refused after it took the lock (a bad flag, a missing secret, a
/// backend that cannot start) leaves no file behind.
#[derive(Debug)]
pub struct StateLock {
    _file: std::fs::File,
    /// What to remove on release: the lock file and, when taking the lock created it, the
    /// directory.
    created: Option<(PathBuf, Option<PathBuf>)>,
}

impl StateLock {
    /// The command changes what runs from here on: the lock file stays after it.
    pub fn keep(&mut self) {
        self.created = None;
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        // Removed while still held: a command that opened the file meanwhile finds, once it
        // holds it, that the path no longer names it, and starts over (see `StateDir::lock`).
        if let Some((file, dir)) = self.created.take() {
            let _ = std::fs::remove_file(file);
            if let Some(dir) = dir {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
}

/// The state directory's files.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// The directory, created if missing.
    pub fn open(dir: &Path) -> Result<Self, CliError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            CliError::backend(format!(
                "cannot create state directory {}: {e}",
                dir.display()
            ))
        })?;
        Ok(StateDir {
            dir: dir.to_path_buf(),
        })
    }

    /// Refuses a `--state-dir` that cannot be a directory (a file, or a path under one) as the
    /// bad flag it is, before any command looks in it.
    pub fn check(dir: &Path) -> Result<(), CliError> {
        let why = match std::fs::metadata(dir) {
            Ok(m) if !m.is_dir() => "it is a file, not a directory".to_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
                format!("a file is in its way: {e}")
            }
            _ => return Ok(()),
        };
        Err(CliError::usage(format!(
            "invalid --state-dir `{}`: {why}",
            dir.display()
        )))
    }

    /// The directory, which must exist already (for commands that only read).
    pub fn existing(dir: &Path) -> StateDir {
        StateDir {
            dir: dir.to_path_buf(),
        }
    }

    /// The event journal.
    pub fn journal(&self) -> PathBuf {
        self.dir.join("journal.jsonl")
    }

    /// Where the backups of `--backup-dir` and `--backup-postgres` are kept.
    pub fn backups(&self) -> PathBuf {
        self.dir.join("backups")
    }

    /// Where the demo processes write their output.
    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }

    fn state_file(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    fn lock_file(&self) -> PathBuf {
        self.dir.join("lock")
    }

    /// Holds the state directory for one command that changes what runs (`deploy`,
    /// `rollback`): an exclusive lock on `lock` in the directory (both created if missing), so
    /// that two commands never deploy from one record at once (each would write back its own
    /// view of what runs, and the last to finish would win). The system releases it when the
    /// command ends, however it ends. The file names the holder (its process and `what` it
    /// does, `deploy of 1.2.0`), and a directory held by another command is an error naming it.
    pub fn lock(&self, what: &str) -> Result<StateLock, CliError> {
        let failed = |e| self.lock_failed(e);
        let new_dir = !self.dir.is_dir();
        loop {
            StateDir::open(&self.dir)?;
            // Missing again: a command that held it gave it up unused and removed it.
            let (mut file, new_file) = match self.open_lock_file() {
                Ok(opened) => opened,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(failed(e)),
            };
            self.take(&file)?;
            // Held, but perhaps removed meanwhile by such a command: then start over.
            if !self.names(&file).map_err(failed)? {
                continue;
            }
            // Who holds it, for the error of the next command that tries.
            let holder = format!("{}: {what}", std::process::id());
            file.set_len(0)
                .and_then(|()| file.write_all(holder.as_bytes()))
                .map_err(failed)?;
            let created = new_file.then(|| (self.lock_file(), new_dir.then(|| self.dir.clone())));
            return Ok(StateLock {
                _file: file,
                created,
            });
        }
    }

    /// The lock file, and whether this opening created it.
    fn open_lock_file(&self) -> std::io::Result<(std::fs::File, bool)> {
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true);
        match options.clone().create_new(true).open(self.lock_file()) {
            Ok(file) => Ok((file, true)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                options.open(self.lock_file()).map(|file| (file, false))
            }
            Err(e) => Err(e),
        }
    }

    fn lock_failed(&self, e: std::io::Error) -> CliError {
        CliError::backend(format!("cannot lock {}: {e}", self.lock_file().display()))
    }

    /// Locks `file`, or fails naming the command that holds it.
    fn take(&self, file: &std::fs::File) -> Result<(), CliError> {
        // `status` takes the lock for an instant to see whether it is held: a few tries
        // (in real time: the clock of the simulated fleet may be virtual) let that pass.
        let mut tries = 0;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(()),
                Err(std::fs::TryLockError::WouldBlock) if tries < LOCK_TRIES => {
                    tries += 1;
                    std::thread::sleep(LOCK_RETRY);
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(CliError::backend(self.in_use()));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(self.lock_failed(e)),
            }
        }
    }

    /// Why a command that changes what runs is refused while the directory is held: by whom,
    /// and what to do instead.
    pub fn in_use(&self) -> String {
        format!(
            "state directory {} is in use by another command{}: wait for its end, or use \
             another --state-dir",
            self.dir.display(),
            self.holder_text()
        )
    }

    /// Whether `file` is still the directory's lock file.
    fn names(&self, file: &std::fs::File) -> std::io::Result<bool> {
        use std::os::unix::fs::MetadataExt as _;
        let held = file.metadata()?;
        match std::fs::metadata(self.lock_file()) {
            Ok(now) => Ok(now.dev() == held.dev() && now.ino() == held.ino()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// ` (process 4242: deploy of 1.2.0)`, as the lock file names its holder, or nothing.
    fn holder_text(&self) -> String {
        let holder = std::fs::read_to_string(self.lock_file()).unwrap_or_default();
        match holder.trim() {
            "" => String::new(),
            h => format!(" (process {h})"),
        }
    }

    /// The command that holds the directory now, as `` `deploy of 1.2.0` (process 4242) ``, or
    /// `None` when none does.
    pub fn holder(&self) -> Option<String> {
        if !self.is_locked() {
            return None;
        }
        let holder = std::fs::read_to_string(self.lock_file()).unwrap_or_default();
        Some(match holder.trim().split_once(": ") {
            Some((pid, what)) => format!("`{what}` (process {pid})"),
            None => "of another command".to_owned(),
        })
    }

    /// Whether a command holds the directory now (see [`lock`](Self::lock)).
    pub fn is_locked(&self) -> bool {
        match std::fs::File::open(self.lock_file()) {
            Ok(file) => matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
            Err(_) => false,
        }
    }

    /// Refuses `verb` (`monitor`, `metrics`, `health-check`) while a `deploy` or `rollback`
    /// holds the directory, with an error (exit 4) naming the holder.
    ///
    /// Those verbs bring up their own copy of the version `state.json` records. During a
    /// deployment that record is about to change, and the copy would be a second service
    /// beside the one being deployed, on a proxy of its own, measured under a load of its own:
    /// its numbers would describe neither. Attaching to the running deployment instead would
    /// need a channel to that command, which a one-shot CLI does not keep; its own output
    /// already shows the deployment's progress, and `status` and `logs` read its record.
    pub fn refuse_while_held(&self, verb: &str) -> Result<(), CliError> {
        if !self.is_locked() {
            return Ok(());
        }
        Err(CliError::backend(format!(
            "state directory {} is in use by another command{}: `{verb}` would start a second \
             copy of what that command is changing; follow that command's output, or `status` \
             and `logs`, and run `{verb}` once it has ended",
            self.dir.display(),
            self.holder_text()
        )))
    }

    /// The recorded state, or `None` before the first deployment.
    pub fn load(&self) -> Result<Option<RunState>, CliError> {
        let path = self.state_file();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(CliError::backend(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
        };
        serde_json::from_str(&text).map(Some).map_err(|e| {
            CliError::backend(format!(
                "{} is not a valid state file ({e}); remove it to start over",
                path.display()
            ))
        })
    }

    /// Writes `state` whole: to a temporary file, synced, then renamed over the old one, and
    /// the rename synced with the directory. So a crash or a power loss leaves the old state or
    /// the new one, never half of one nor an empty file; a save that fails leaves the old state
    /// and no temporary file, and names the path that failed.
    pub fn save(&self, state: &RunState) -> Result<(), CliError> {
        let path = self.state_file();
        let tmp = self.dir.join("state.json.tmp");
        let text = serde_json::to_string_pretty(state)
            .map_err(|e| CliError::backend(format!("cannot encode the state: {e}")))?;
        let failed = |at: &Path, e: std::io::Error| {
            CliError::backend(format!("cannot write {}: {e}", at.display()))
        };
        let mut file = std::fs::File::create(&tmp).map_err(|e| failed(&tmp, e))?;
        if let Err(e) = file
            .write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
        {
            let _ = std::fs::remove_file(&tmp);
            return Err(failed(&tmp, e));
        }
        if let Err(e) = std::fs::rename(&tmp, &path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(failed(&path, e));
        }
        std::fs::File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| CliError::backend(format!("cannot sync {}: {e}", self.dir.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> semver::Version {
        semver::Version::parse(s).expect("version")
    }

    fn running(s: &str) -> Option<Running> {
        Some(Running {
            version: v(s),
            track: Track::Stable,
            instances: 2,
        })
    }

    #[test]
    fn deployments_push_previous_versions_and_rollbacks_pop_them() {
        let mut s = RunState::new("demo", BackendKind::Sim);
        s.record_running(running("1.0.0"), &v("1.0.0"), false);
        assert!(s.previous.is_empty());
        s.record_running(running("1.1.0"), &v("1.1.0"), false);
        s.record_running(running("1.2.0"), &v("1.2.0"), false);
        assert_eq!(s.previous, vec![v("1.0.0"), v("1.1.0")]);
        // A rolled-back deployment leaves what ran.
        s.record_running(running("1.2.0"), &v("1.3.0"), false);
        assert_eq!(s.previous, vec![v("1.0.0"), v("1.1.0")]);
        // Rolling back to 1.1.0 takes it off the list.
        s.record_running(running("1.1.0"), &v("1.1.0"), true);
        assert_eq!(s.previous, vec![v("1.0.0")]);
        assert_eq!(
            s.current.as_ref().map(|r| r.version.clone()),
            Some(v("1.1.0"))
        );
    }

    #[test]
    fn deploying_a_version_that_ran_before_keeps_what_it_replaced() {
        let mut s = RunState::new("demo", BackendKind::Sim);
        for version in ["1.0.0", "1.1.0", "1.2.0", "1.1.0"] {
            s.record_running(running(version), &v(version), false);
        }
        assert_eq!(s.previous, vec![v("1.0.0"), v("1.1.0"), v("1.2.0")]);
        // So a rollback goes back to 1.2.0, the version the last deployment replaced.
        s.record_running(running("1.2.0"), &v("1.2.0"), true);
        assert_eq!(s.previous, vec![v("1.0.0"), v("1.1.0")]);
    }

    #[test]
    fn one_command_at_a_time_holds_the_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let states = StateDir::open(dir.path()).expect("open");
        assert!(!states.is_locked());
        states.refuse_while_held("metrics").expect("free");
        let held = states.lock("deploy of 1.2.0").expect("first lock");
        assert!(states.is_locked());
        let e = states.lock("rollback").expect_err("held");
        assert_eq!(e.exit, crate::cli::exit::Exit::Backend);
        let holder = format!("(process {}: deploy of 1.2.0)", std::process::id());
        assert!(
            e.message.contains("in use by another command") && e.message.contains(&holder),
            "{e}"
        );
        let e = states.refuse_while_held("metrics").expect_err("held");
        assert_eq!(e.exit, crate::cli::exit::Exit::Backend);
        assert!(
            e.message.contains(&holder) && e.message.contains("`metrics`"),
            "{e}"
        );
        drop(held);
        assert!(!states.is_locked());
        states.refuse_while_held("metrics").expect("free again");
        states.lock("deploy of 1.3.0").expect("free again");
    }

    #[test]
    fn the_state_round_trips_and_a_bad_file_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let states = StateDir::open(dir.path()).expect("open");
        assert_eq!(states.load().expect("load"), None);
        let mut s = RunState::new("demo", BackendKind::Local);
        s.record_running(running("1.0.0"), &v("1.0.0"), false);
        s.behaviours.insert(
            "1.0.0".into(),
            Behaviour {
                error_rate: 0.01,
                latency_ms: 5,
            },
        );
        states.save(&s).expect("save");
        assert_eq!(states.load().expect("load"), Some(s));
        std::fs::write(dir.path().join("state.json"), "{\"service\":1}").expect("write");
        let err = states.load().unwrap_err();
        assert!(err.message.contains("state.json"), "{err}");
    }

    /// The names in `dir`, sorted.
    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_save_leaves_no_temporary_file_and_a_failed_one_leaves_the_old_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let states = StateDir::open(dir.path()).expect("open");
        let old = RunState::new("demo", BackendKind::Local);
        states.save(&old).expect("save");
        assert_eq!(names_in(dir.path()), ["state.json"]);
        let mut new = old.clone();
        new.record_running(running("1.0.0"), &v("1.0.0"), false);

        // The temporary file cannot be written: the error names it, the old state stays.
        let tmp = dir.path().join("state.json.tmp");
        std::fs::create_dir(&tmp).expect("mkdir");
        let e = states.save(&new).expect_err("temporary path taken");
        assert_eq!(e.exit, crate::cli::exit::Exit::Backend);
        assert!(e.message.contains(&tmp.display().to_string()), "{e}");
        assert_eq!(states.load().expect("load"), Some(old.clone()));
        std::fs::remove_dir(&tmp).expect("rmdir");

        // The rename fails: the error names the state file, and no temporary file is left.
        let occupied = tempfile::tempdir().expect("tempdir");
        let states = StateDir::open(occupied.path()).expect("open");
        let path = occupied.path().join("state.json");
        std::fs::create_dir(&path).expect("mkdir");
        std::fs::write(path.join("keep"), "").expect("write");
        let e = states.save(&new).expect_err("state file taken");
        assert!(e.message.contains(&path.display().to_string()), "{e}");
        assert_eq!(names_in(occupied.path()), ["state.json"]);
    }

    #[test]
    fn a_lock_given_up_unused_leaves_no_file_behind() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("state");
        let states = StateDir::existing(&dir);
        drop(states.lock("deploy of 1.0.0").expect("lock"));
        assert!(!dir.exists(), "the state directory stayed");

        // A directory that exists stays; so does a lock file that was there before.
        std::fs::create_dir(&dir).expect("mkdir");
        drop(states.lock("deploy of 1.0.0").expect("lock"));
        assert!(names_in(&dir).is_empty(), "{:?}", names_in(&dir));
        std::fs::write(dir.join("lock"), "").expect("write");
        drop(states.lock("deploy of 1.0.0").expect("lock"));
        assert_eq!(names_in(&dir), ["lock"]);
    }

    #[test]
    fn a_lock_kept_stays_and_one_removed_while_waited_on_is_not_held() {
        let root = tempfile::tempdir().expect("tempdir");
        let states = StateDir::existing(root.path());
        let mut held = states.lock("deploy of 1.0.0").expect("lock");
        held.keep();
        drop(held);
        assert_eq!(names_in(root.path()), ["lock"]);

        // A file opened before its holder removed it is locked in vain: the path names
        // another file by then.
        let stale = std::fs::File::open(root.path().join("lock")).expect("open");
        std::fs::remove_file(root.path().join("lock")).expect("remove");
        stale.lock().expect("lock");
        assert!(!states.names(&stale).expect("names"));
        let held = states.lock("deploy of 1.1.0").expect("a new lock file");
        assert!(states.is_locked());
        drop(held);
    }
}
