//! [`ProcessPlatform`]: a [`Platform`] that runs each instance as a local process.

use std::collections::{BTreeMap, VecDeque};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use serin_orchestrator::{
    Error, InstanceStatus, Platform, Result, TrackKey, TrackSpec, TrackStatus,
};
use serin_signals::{ProbeStatus, Track};
use tokio::process::{Child, ChildStdin, Command};
use tokio::time::Instant;

use crate::logs::{LogRotation, Pump, RotatingFile};
use crate::probe;

/// How a [`ProcessPlatform`] runs and checks its processes. Serialized in camelCase (`logDir`,
/// `logRotation`, `readinessPath`, `probeTimeout`, `grace`, `lockDir`), durations as human
/// strings (`5s`) or integer milliseconds; only `logDir` is required. Checked on load, errors
/// naming the field (`processConfig.readinessPath`), and unknown fields are refused.
///
/// ```
/// use serin_local::ProcessConfig;
///
/// let c: ProcessConfig = serde_json::from_str(
///     r#"{"logDir": "/var/log/web", "grace": "10s", "logRotation": {"keep": 5}}"#,
/// )?;
/// assert_eq!(c.grace, std::time::Duration::from_secs(10));
/// assert_eq!(c.log_rotation.keep, 5);
/// assert!(serde_json::from_str::<ProcessConfig>(r#"{"logDir": "x", "readinessPath": "ready"}"#)
///     .unwrap_err().to_string().contains("processConfig.readinessPath"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawProcessConfig", into = "RawProcessConfig")]
#[non_exhaustive]
pub struct ProcessConfig {
    /// Where each process's standard output and error go: `{service}/{track}-{n}.log`, a
    /// directory per service (created when its first instance starts), since service and
    /// track names may both hold `-` and one flat name could belong to two instances.
    pub log_dir: PathBuf,
    /// When those logs are rotated (default at 16 MiB, keeping 3 rotated files).
    pub log_rotation: LogRotation,
    /// The HTTP path (and query) that answers 200 to 399 once an instance is ready, as a
    /// Kubernetes `httpGet` probe passes (default `/ready`); it must start with `/` and be a
    /// valid request target (no spaces).
    pub readiness_path: String,
    /// How long one readiness check may take (default 500 ms).
    pub probe_timeout: Duration,
    /// How long a process has after SIGTERM before SIGKILL (default 5 s).
    pub grace: Duration,
    /// Where deployment locks are kept as files (default none: each orchestrator locks
    /// in-process only). Give every process that deploys on this machine the same directory.
    pub lock_dir: Option<PathBuf>,
}

impl ProcessConfig {
    /// The defaults, with logs in `log_dir` (created if missing).
    pub fn new(log_dir: impl Into<PathBuf>) -> Self {
        ProcessConfig {
            log_dir: log_dir.into(),
            log_rotation: LogRotation::default(),
            readiness_path: "/ready".into(),
            probe_timeout: Duration::from_millis(500),
            grace: Duration::from_secs(5),
            lock_dir: None,
        }
    }

    /// With deployment locks kept as files in `dir` (see [`LockDir`](crate::LockDir)).
    pub fn with_lock_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.lock_dir = Some(dir.into());
        self
    }

    /// With logs rotated past `max_bytes` (at least 1 KiB), keeping `keep` rotated files.
    pub fn with_log_rotation(mut self, max_bytes: u64, keep: u32) -> Self {
        self.log_rotation = LogRotation { max_bytes, keep };
        self
    }

    /// With another readiness path (must start with `/` and be a valid request target).
    pub fn with_readiness_path(mut self, path: &str) -> Self {
        self.readiness_path = path.to_owned();
        self
    }

    /// With another SIGTERM grace period.
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// With another readiness check timeout.
    pub fn with_probe_timeout(mut self, timeout: Duration) -> Self {
        self.probe_timeout = timeout;
        self
    }

    fn validate(&self) -> Result<()> {
        // An empty path (an unset variable in a config template) names no directory: creating
        // it "succeeds", and the logs or locks land in whatever directory the process runs in,
        // where processes deploying from elsewhere never see the locks.
        for (field, dir) in [
            ("processConfig.logDir", Some(&self.log_dir)),
            ("processConfig.lockDir", self.lock_dir.as_ref()),
        ] {
            if dir.is_some_and(|d| d.as_os_str().is_empty()) {
                return Err(Error::invalid(field, "", "must name a directory"));
            }
        }
        self.log_rotation.validate()?;
        // A path no request can carry would fail every readiness check, reported as the
        // instances' fault rather than the configuration's.
        if let Some(reason) = probe::path_problem(&self.readiness_path) {
            return Err(Error::invalid(
                "processConfig.readinessPath",
                &self.readiness_path,
                reason,
            ));
        }
        if self.probe_timeout.is_zero() {
            return Err(Error::invalid(
                "processConfig.probeTimeout",
                format!("{:?}", self.probe_timeout),
                "must be more than zero",
            ));
        }
        Ok(())
    }
}

/// The serialized form of [`ProcessConfig`].
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawProcessConfig {
    log_dir: PathBuf,
    #[serde(default)]
    log_rotation: LogRotation,
    #[serde(default = "default_readiness_path")]
    readiness_path: String,
    #[serde(default = "default_probe_timeout", with = "serin_signals::duration")]
    probe_timeout: Duration,
    #[serde(default = "default_grace", with = "serin_signals::duration")]
    grace: Duration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lock_dir: Option<PathBuf>,
}

fn default_readiness_path() -> String {
    ProcessConfig::new("").readiness_path
}
fn default_probe_timeout() -> Duration {
    ProcessConfig::new("").probe_timeout
}
fn default_grace() -> Duration {
    ProcessConfig::new("").grace
}

impl TryFrom<RawProcessConfig> for ProcessConfig {
    type Error = Error;
    fn try_from(r: RawProcessConfig) -> Result<Self> {
        let c = ProcessConfig {
            log_dir: r.log_dir,
            log_rotation: r.log_rotation,
            readiness_path: r.readiness_path,
            probe_timeout: r.probe_timeout,
            grace: r.grace,
            lock_dir: r.lock_dir,
        };
        c.validate()?;
        Ok(c)
    }
}

impl From<ProcessConfig> for RawProcessConfig {
    fn from(c: ProcessConfig) -> Self {
        RawProcessConfig {
            log_dir: c.log_dir,
            log_rotation: c.log_rotation,
            readiness_path: c.readiness_path,
            probe_timeout: c.probe_timeout,
            grace: c.grace,
            lock_dir: c.lock_dir,
        }
    }
}

#[derive(Debug)]
struct Proc {
    id: String,
    addr: SocketAddr,
    child: Child,
    /// The write end of the process's stdin, held open for as long as the platform lives.
    _lifeline: Option<ChildStdin>,
    /// The thread that writes the process's output to `log`.
    pump: Pump,
    exited: Option<String>,
}

/// Kills the process's group if the process was not stopped: when the platform is dropped, and
/// when a call that was stopping it (a retire, a scale-down) is dropped before it finished, as a
/// caller's timeout or `select!` does. The process's own `kill_on_drop` reaches only the process,
/// not what a wrapper (`sh -c ./web`) started. A process that was stopped has been reaped and
/// has no id left: nothing is signalled.
impl Drop for Proc {
    fn drop(&mut self) {
        signal_group(&self.child, Signal::SIGKILL);
    }
}

/// An instance's id, address and, if its process exited, why.
type Census = (String, SocketAddr, Option<String>);

#[derive(Debug)]
struct Running {
    spec: TrackSpec,
    next_index: u32,
    procs: Vec<Proc>,
    /// Taken for the whole of a `scale`, so that two scales of one track run one after the
    /// other and the second sees what the first left: two `scale(3)` end at three instances.
    scaling: Arc<tokio::sync::Mutex<()>>,
}

/// Runs each instance of a track as a process of the spec's command, with `PORT` (a free
/// loopback port it picks), `VERSION` and `INSTANCE` (`green-0`) added to the spec's environment,
/// and its output appended to a log file that is rotated at a size limit
/// ([`LogRotation`]).
///
/// - An instance is **ready** when `GET {readiness_path}` on its port answers a status from 200
///   to 399 (as the kubelet counts an HTTP probe; a redirect is not followed), checked on each
///   [`status`](Platform::status); **live** while its process runs.
/// - A process that exits is reported dead (with its exit status and the last lines it wrote)
///   and is **never restarted silently**: the caller decides (roll back, scale, retire).
/// - Each process leads a process group of its own, and stopping signals the whole group, so a
///   wrapper (`sh -c ./web`) stops together with the service it started. Stopping sends SIGTERM,
///   then SIGKILL after the grace period to whatever is left of the group, even once the
///   wrapper has exited; the instances of a retire or a scale-down are stopped together, within
///   one grace period. Processes are killed when the platform is dropped.
/// - Run as a container's first process (PID 1) or as a subreaper, the platform is handed what
///   a wrapper leaves behind when it exits; a stop reaps those processes of the instance's
///   group, so they neither hold the stop until the grace period runs out nor stay as zombies.
///   It reaps nothing else: other orphans of a container (from processes it did not start) are
///   an init's job (`docker run --init`, tini), and reaping any child would take the exit
///   status the platform waits for from under it.
/// - A platform killed outright (SIGKILL) cannot stop its processes, so it hands each one a
///   lifeline: its stdin is a pipe whose write end the platform holds, and `SERIN_LIFELINE=stdin`
///   says so. When the platform's process dies, however it dies, the pipe closes and the
///   process reads end-of-file on stdin; a service that should not outlive the platform (the
///   demo service does) stops then. Its output goes through the platform too (see
///   [`LogRotation`]): once the platform is gone, writing it fails with a broken pipe.
/// - Scaling down stops exited instances first, then unready ones, then ready ones, newest
///   first within each (readiness checked then), as a Kubernetes ReplicaSet chooses; they are
///   stopped at once. [`scale_down`](Platform::scale_down) stops the instances it names
///   instead. Behind the proxy, wrap the platform in a
///   [`ProxiedPlatform`](crate::ProxiedPlatform): it takes them out of the proxy, waits for
///   their in-flight requests, and then has exactly those stopped by name.
pub struct ProcessPlatform {
    config: ProcessConfig,
    tracks: Mutex<BTreeMap<TrackKey, Running>>,
    locks: Option<crate::LockDir>,
    /// Held while a start makes (or finds) its service's log directory and opens its log
    /// there, and while a failed start takes back the log and the directory it made: a start
    /// of another track of the same service never has the directory it found removed before
    /// its log is in it.
    log_dirs: Mutex<()>,
}

impl std::fmt::Debug for ProcessPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessPlatform")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Sends `signal` to the process group `child` leads (the platform starts each process in a
/// group of its own), so a wrapper and the processes it started get it together. Only while the
/// child has not been reaped (it has an id): until then its id cannot name another group. The
/// platform reaps a leader only when it stops it (see [`leader_exit`]), so the group of one
/// that exited by itself (a wrapper that left its service running) is still reached.
fn signal_group(child: &Child, signal: Signal) {
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        let _ = kill(Pid::from_raw(-pid), signal);
    }
}

/// How often a stop looks whether what a reaped leader started has exited.
const GROUP_POLL: Duration = Duration::from_millis(20);

/// Waits until process group `pgid`, whose leader was just reaped, has no process left, or
/// until `deadline`; answers whether it emptied. Signalling the group afterwards is safe only
/// while it has a member: the kernel hands out no process id still in use as a group's id, so
/// a signal sent right after a look that found a member reaches this group and no other.
///
/// A member that exited stays in the group until its parent reaps it. The processes a leader
/// started are handed, once the leader is gone, to the nearest subreaper, or to process 1: the
/// platform itself when it runs as a container's first process (or as a subreaper). Nobody
/// else would reap them then, and a group of such zombies would look running until the grace
/// period ran out, and stay in the process table after. So each look first reaps the members
/// handed to this process (`waitpid` on the group alone, never on any child: the platform's
/// other processes are each reaped by the task that waits for it).
async fn group_emptied(pgid: i32, deadline: Option<Instant>) -> bool {
    loop {
        if !group_has_member(pgid) {
            return true;
        }
        reap_handed_over(pgid);
        if !group_has_member(pgid) {
            return true;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        tokio::time::sleep(GROUP_POLL).await;
    }
}

/// Whether process group `pgid` has a process left (a zombie counts until it is reaped).
fn group_has_member(pgid: i32) -> bool {
    // An error other than "no such group" is a member this process may not signal: nothing to
    // wait for that it could end.
    kill(Pid::from_raw(-pgid), None).is_ok()
}

/// Reaps the members of group `pgid` that exited and whose parent is this process. Called only
/// right after a look found the group, so `pgid` names it and no group started since.
fn reap_handed_over(pgid: i32) {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    // Ends when none is left to reap (no child in the group: `ECHILD`) or none has exited yet.
    while let Ok(status) = waitpid(Pid::from_raw(-pgid), Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

/// How long a stop waits, after SIGKILL, for what is left of a group to be gone (and reaped,
/// when it was handed to this process).
const AFTER_KILL: Duration = Duration::from_secs(1);

/// How `child` ended, if it has, leaving it unreaped where the system allows (`WNOWAIT`): an
/// unreaped leader keeps its process id, and with it its group's, from being handed to another
/// process, so a later stop can still signal what is left of its group.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
fn leader_exit(child: &mut Child) -> Option<std::process::ExitStatus> {
    use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
    use std::os::unix::process::ExitStatusExt;
    let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) else {
        // Reaped already: the status is kept.
        return child.try_wait().ok().flatten();
    };
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    match waitid(Id::Pid(Pid::from_raw(pid)), flags) {
        Ok(WaitStatus::Exited(_, code)) => Some(ExitStatusExt::from_raw((code & 0xff) << 8)),
        Ok(WaitStatus::Signaled(_, signal, core)) => Some(ExitStatusExt::from_raw(
            signal as i32 | if core { 0x80 } else { 0 },
        )),
        _ => None,
    }
}

/// How `child` ended, if it has (reaped: this system has no `WNOWAIT` probe).
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
fn leader_exit(child: &mut Child) -> Option<std::process::ExitStatus> {
    child.try_wait().ok().flatten()
}

/// A free loopback port for a process that will bind it itself a moment later (the platform's
/// instances, or any service a caller starts with a `PORT`).
///
/// The port is not asked of the kernel (port 0): those come from its ephemeral range, which is
/// also where outgoing connections take their local ports, so under load (clients, the proxy's
/// connections to its backends) one of them can take the port before the instance binds it.
/// So it is drawn at random from the half below that range, where only a listener asking for
/// that very number can collide, and checked free; the kernel's choice is the fallback.
///
/// A port is checked free and then released for its process to bind, so two draws in that
/// moment could both find the same one free: a scale-up of ten instances at once draws 45
/// pairs, which collide about once in 360 such deployments. So the last 4,096 ports handed out
/// by this process (a quarter of the 16,384 it draws from on Linux's default range) are not
/// handed out again.
pub fn free_loopback_port() -> std::io::Result<u16> {
    static RECENT: Mutex<VecDeque<u16>> = Mutex::new(VecDeque::new());
    let mut recent = RECENT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let low = ephemeral_low().unwrap_or(32_768);
    let drawn = (low >= 2_048)
        .then(|| {
            (0..32)
                .map(|_| rand::random_range(low / 2..low))
                .find(|p| !recent.contains(p) && TcpListener::bind(("127.0.0.1", *p)).is_ok())
        })
        .flatten();
    let port = match drawn {
        Some(port) => port,
        None => TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port(),
    };
    if recent.len() >= RECENT_PORTS {
        recent.pop_front();
    }
    recent.push_back(port);
    Ok(port)
}

/// How many of the ports [`free_loopback_port`] handed out it keeps from handing out again.
const RECENT_PORTS: usize = 4_096;

/// The lowest port of the kernel's ephemeral range, where Linux says.
fn ephemeral_low() -> Option<u16> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    range.split_whitespace().next()?.parse().ok()
}

/// Creates `dir` with its missing parents, as `create_dir_all` does, and answers the topmost
/// directory it made (none if `dir` was there), for [`remove_made`] to take back. What it made
/// before failing partway is taken back at once.
fn create_dirs(dir: &Path) -> std::io::Result<Option<PathBuf>> {
    let top = dir
        .ancestors()
        .take_while(|a| !a.as_os_str().is_empty() && std::fs::symlink_metadata(a).is_err())
        .last()
        .map(Path::to_path_buf);
    if let Err(e) = std::fs::create_dir_all(dir) {
        remove_made(dir, top.as_deref());
        return Err(e);
    }
    Ok(top)
}

/// Removes the directories [`create_dirs`] made for `dir`, up to `top`, each only while empty:
/// anything another process put there meanwhile stays.
fn remove_made(dir: &Path, top: Option<&Path>) {
    let Some(top) = top else {
        return;
    };
    // Every directory from `dir` up to `top` was missing: none is another's.
    for a in dir.ancestors() {
        let _ = std::fs::remove_dir(a);
        if a == top {
            break;
        }
    }
}

impl ProcessPlatform {
    /// A platform with `config`; creates the log directory (and the lock directory). A
    /// platform refused leaves no directory it made: a lock directory that cannot be made
    /// takes back the log directory made just before it.
    pub fn new(config: ProcessConfig) -> Result<Self> {
        config.validate()?;
        let made = create_dirs(&config.log_dir).map_err(|e| {
            Error::invalid(
                "processConfig.logDir",
                config.log_dir.display(),
                format!("cannot be created: {e}"),
            )
        })?;
        let locks = match config
            .lock_dir
            .as_ref()
            .map(crate::LockDir::new)
            .transpose()
        {
            Ok(locks) => locks,
            Err(e) => {
                remove_made(&config.log_dir, made.as_deref());
                return Err(e);
            }
        };
        Ok(ProcessPlatform {
            config,
            tracks: Mutex::new(BTreeMap::new()),
            locks,
            log_dirs: Mutex::new(()),
        })
    }

    /// The log file of `instance` (`green-0`) of `service`: `{logDir}/{service}/green-0.log`.
    pub fn log_path(&self, service: &str, instance: &str) -> PathBuf {
        self.config
            .log_dir
            .join(service)
            .join(format!("{instance}.log"))
    }

    fn running(&self) -> MutexGuard<'_, BTreeMap<TrackKey, Running>> {
        self.tracks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn spawn(&self, spec: &TrackSpec, index: u32) -> Result<Proc> {
        let fail = |reason: String| Error::platform("process", reason);
        let id = format!("{}-{index}", spec.track());
        let port = free_loopback_port()
            .map_err(|e| fail(format!("no free loopback port for {id}: {e}")))?;
        let log = self.log_path(spec.service(), &id);
        let dir = self.config.log_dir.join(spec.service());
        let cannot_log = |e: std::io::Error| fail(format!("cannot log to {}: {e}", log.display()));
        // A log and a service directory this start makes are taken back if the process does
        // not start: an empty file, or an empty directory, would say an instance ran that
        // never did. A log an earlier process wrote stays, and so does a directory another
        // instance logs in (removed only while empty).
        let dirs = self.log_dirs();
        let made = create_dirs(&dir).map_err(cannot_log)?;
        let new_log = std::fs::symlink_metadata(&log).is_err();
        let take_back = || {
            if new_log {
                let _ = std::fs::remove_file(&log);
            }
            remove_made(&dir, made.as_deref());
        };
        let file = match RotatingFile::open(&log, self.config.log_rotation) {
            Ok(file) => file,
            Err(e) => {
                take_back();
                return Err(cannot_log(e));
            }
        };
        drop(dirs);
        let started = self.start(spec, id, port, &log, file);
        if started.is_err() {
            let _dirs = self.log_dirs();
            take_back();
        }
        started
    }

    fn log_dirs(&self) -> MutexGuard<'_, ()> {
        self.log_dirs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts instance `id` of `spec` on `port`, its output going to `file`, the log at `log`
    /// (see [`spawn`](Self::spawn)).
    fn start(
        &self,
        spec: &TrackSpec,
        id: String,
        port: u16,
        log: &Path,
        file: RotatingFile,
    ) -> Result<Proc> {
        let fail = |reason: String| Error::platform("process", reason);
        let cannot_log = |e: std::io::Error| fail(format!("cannot log to {}: {e}", log.display()));
        let (reader, out) = std::io::pipe().map_err(cannot_log)?;
        let err = out.try_clone().map_err(cannot_log)?;
        let pump = Pump::start(&id, reader, file).map_err(cannot_log)?;
        let Some((program, args)) = spec.command().split_first() else {
            return Err(Error::invalid(
                "trackSpec.command",
                "[]",
                "the process platform needs a command to run",
            ));
        };
        let mut child = Command::new(program)
            .args(args)
            .envs(spec.env())
            .env("PORT", port.to_string())
            .env("VERSION", spec.version().to_string())
            .env("INSTANCE", &id)
            .env("SERIN_LIFELINE", "stdin")
            .stdin(Stdio::piped())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| fail(format!("cannot start `{program}` for {id}: {e}")))?;
        Ok(Proc {
            id,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _lifeline: child.stdin.take(),
            child,
            pump,
            exited: None,
        })
    }

    /// Stops `procs` together: SIGTERM to every one's process group, one grace period shared by
    /// all of them, then SIGKILL to the groups still running. Stopping several instances that
    /// ignore SIGTERM takes one grace period, not one each. A group counts as running while
    /// any process is left in it: a wrapper that exits on SIGTERM does not leave behind a
    /// service that ignores it, and neither does one that exited earlier by itself.
    async fn stop(&self, mut stopping: Vec<Proc>) {
        for p in &stopping {
            signal_group(&p.child, Signal::SIGTERM);
        }
        // A grace period past what the clock holds waits as long as it takes.
        let deadline = Instant::now().checked_add(self.config.grace);
        for p in &mut stopping {
            let pgid = p.child.id().and_then(|id| i32::try_from(id).ok());
            let exited = match deadline {
                Some(d) => tokio::time::timeout_at(d, p.child.wait()).await.is_ok(),
                None => {
                    let _ = p.child.wait().await;
                    true
                }
            };
            let killed = if !exited {
                tracing::warn!(instance = %p.id, "no exit within the grace period; killing");
                signal_group(&p.child, Signal::SIGKILL);
                // The leader may have left its group; it is killed all the same.
                let _ = p.child.start_kill();
                let _ = p.child.wait().await;
                true
            } else if let Some(pgid) = pgid
                && !group_emptied(pgid, deadline).await
            {
                tracing::warn!(
                    instance = %p.id,
                    "processes its leader started did not exit within the grace period; killing"
                );
                let _ = kill(Pid::from_raw(-pgid), Signal::SIGKILL);
                true
            } else {
                false
            };
            // What the kill ended is reaped too, if it was handed to this process.
            if killed && let Some(pgid) = pgid {
                let _ = group_emptied(pgid, Instant::now().checked_add(AFTER_KILL)).await;
            }
        }
        // The processes' last words ("drained; exiting") reach their logs before the caller
        // moves on (and perhaps exits, taking the logs' threads with it); waited for together.
        let drains: Vec<_> = stopping
            .iter()
            .map(|p| tokio::spawn(p.pump.drained()))
            .collect();
        for d in drains {
            let _ = d.await;
        }
    }

    /// Checks every process of `key`: which exited, and each one's address. A process found
    /// exited is described with the last lines it wrote once its output is all written; that
    /// wait (up to 200 ms) happens with the platform's lock released, so no other call waits.
    async fn census(&self, key: &TrackKey) -> Result<(TrackSpec, Vec<Census>)> {
        let mut ended = Vec::new();
        let (spec, mut out) = {
            let mut tracks = self.running();
            let running = tracks
                .get_mut(key)
                .ok_or_else(|| Error::not_found("track", key))?;
            let mut out: Vec<Census> = Vec::with_capacity(running.procs.len());
            for p in &mut running.procs {
                if p.exited.is_none()
                    && let Some(status) = leader_exit(&mut p.child)
                {
                    let drained = tokio::spawn(p.pump.drained());
                    ended.push((out.len(), status, drained, p.pump.clone()));
                }
                out.push((p.id.clone(), p.addr, p.exited.clone()));
            }
            (running.spec.clone(), out)
        };
        for (i, status, drained, pump) in ended {
            let _ = drained.await;
            let tail = pump.tail();
            let tail = if tail.is_empty() {
                String::new()
            } else {
                format!("; last log lines: {}", tail.join(" | "))
            };
            let why = format!("exited with {status}{tail}");
            let Some((id, _, exited)) = out.get_mut(i) else {
                continue;
            };
            // The first description found is kept, so every later report says the same.
            let mut tracks = self.running();
            let kept = tracks
                .get_mut(key)
                .and_then(|r| r.procs.iter_mut().find(|p| p.id == *id))
                .map(|p| p.exited.get_or_insert(why.clone()).clone());
            *exited = Some(kept.unwrap_or(why));
        }
        Ok((spec, out))
    }

    /// The turn of track `key`'s scale-ups and scale-downs, which run one at a time.
    fn scaling(&self, key: &TrackKey) -> Result<Arc<tokio::sync::Mutex<()>>> {
        self.running()
            .get(key)
            .map(|r| Arc::clone(&r.scaling))
            .ok_or_else(|| Error::not_found("track", key))
    }

    /// Stops the instances of `key` named by `ids`, after checking them as
    /// [`Platform::scale_down`] says (an unknown id, or all of them, stops nothing). Called
    /// with the track's `scaling` turn held.
    async fn stop_named(&self, key: &TrackKey, ids: &[String]) -> Result<()> {
        let removed: Vec<Proc> = {
            let mut tracks = self.running();
            let r = tracks
                .get_mut(key)
                .ok_or_else(|| Error::not_found("track", key))?;
            let running: Vec<&str> = r.procs.iter().map(|p| p.id.as_str()).collect();
            serin_orchestrator::check_scale_down(key, &running, ids)?;
            r.procs.extract_if(.., |p| ids.contains(&p.id)).collect()
        };
        self.stop(removed).await;
        Ok(())
    }

    async fn report(&self, key: &TrackKey) -> Result<TrackStatus> {
        let (spec, census) = self.census(key).await?;
        let mut checks = Vec::with_capacity(census.len());
        for (id, addr, exited) in census {
            let path = self.config.readiness_path.clone();
            let timeout = self.config.probe_timeout;
            checks.push(tokio::spawn(async move {
                let (readiness, liveness, detail) = match exited {
                    Some(why) => (ProbeStatus::Fail, ProbeStatus::Fail, Some(why)),
                    None => match probe::get(addr, &path, timeout).await {
                        Ok(s) if probe::passes(s) => (ProbeStatus::Pass, ProbeStatus::Pass, None),
                        Ok(s) => (
                            ProbeStatus::Fail,
                            ProbeStatus::Pass,
                            Some(format!("readiness {path} answered {s}")),
                        ),
                        Err(e) => (ProbeStatus::Fail, ProbeStatus::Pass, Some(e)),
                    },
                };
                let mut i = InstanceStatus::new(id, readiness, liveness).with_address(addr);
                i.detail = detail;
                i
            }));
        }
        let mut instances = Vec::with_capacity(checks.len());
        for c in checks {
            instances.push(
                c.await.map_err(|e| {
                    Error::platform("process", format!("readiness check failed: {e}"))
                })?,
            );
        }
        Ok(TrackStatus::new(
            spec.service(),
            spec.version().clone(),
            spec.track().clone(),
            instances,
        ))
    }
}

#[async_trait]
impl Platform for ProcessPlatform {
    fn name(&self) -> &str {
        "process"
    }

    async fn bring_up(&self, spec: &TrackSpec) -> Result<TrackStatus> {
        let key = spec.key();
        if spec.command().is_empty() {
            return Err(Error::invalid(
                "trackSpec.command",
                "[]",
                "the process platform needs a command to run",
            ));
        }
        if self.running().contains_key(&key) {
            return Err(Error::AlreadyExists {
                what: "track".into(),
                name: key.to_string(),
                reason: "retire it first, or bring the version up as another track".into(),
            });
        }
        let mut procs = Vec::new();
        for i in 0..spec.instances() {
            match self.spawn(spec, i) {
                Ok(p) => procs.push(p),
                Err(e) => {
                    self.stop(procs).await;
                    return Err(e);
                }
            }
        }
        let refused = {
            let mut tracks = self.running();
            if tracks.contains_key(&key) {
                Some(procs)
            } else {
                tracks.insert(
                    key.clone(),
                    Running {
                        spec: spec.clone(),
                        next_index: spec.instances(),
                        procs,
                        scaling: Arc::default(),
                    },
                );
                None
            }
        };
        if let Some(procs) = refused {
            self.stop(procs).await;
            return Err(Error::AlreadyExists {
                what: "track".into(),
                name: key.to_string(),
                reason: "it was brought up concurrently".into(),
            });
        }
        self.report(&key).await
    }

    async fn status(&self, service: &str, track: &Track) -> Result<TrackStatus> {
        self.report(&TrackKey::new(service, track)).await
    }

    async fn scale(&self, service: &str, track: &Track, instances: u32) -> Result<TrackStatus> {
        let key = TrackKey::new(service, track);
        if instances == 0 || instances > TrackSpec::MAX_INSTANCES {
            return Err(Error::invalid(
                "instances",
                instances,
                format!(
                    "must be between 1 and {} (retire the track to run none)",
                    TrackSpec::MAX_INSTANCES
                ),
            ));
        }
        let want = instances as usize;
        let scaling = self.scaling(&key)?;
        let _turn = scaling.lock().await;
        let (spec, first_new, have) = {
            let mut tracks = self.running();
            let r = tracks
                .get_mut(&key)
                .ok_or_else(|| Error::not_found("track", &key))?;
            let have = r.procs.len();
            let first_new = r.next_index;
            // The new ids are taken before the lock is released: a concurrent scale-up starts
            // others, each with a log file of its own. Ids of a failed start are not reused.
            if want > have {
                let adding = u32::try_from(want - have).unwrap_or(u32::MAX);
                r.next_index = first_new.saturating_add(adding);
            }
            (r.spec.clone(), first_new, have)
        };
        if want > have {
            let mut added = Vec::new();
            for i in 0..(want - have) {
                let index = first_new.saturating_add(u32::try_from(i).unwrap_or(u32::MAX));
                match self.spawn(&spec, index) {
                    Ok(p) => added.push(p),
                    Err(e) => {
                        self.stop(added).await;
                        return Err(e);
                    }
                }
            }
            let orphans = {
                let mut tracks = self.running();
                match tracks.get_mut(&key) {
                    Some(r) => {
                        r.procs.extend(added);
                        None
                    }
                    None => Some(added),
                }
            };
            if let Some(orphans) = orphans {
                self.stop(orphans).await;
                return Err(Error::not_found("track", &key));
            }
        } else if want < have {
            let now = self.report(&key).await?;
            let doomed: Vec<String> = now
                .scale_down_choice(instances)
                .into_iter()
                .map(|i| i.id.clone())
                .collect();
            self.stop_named(&key, &doomed).await?;
        }
        self.report(&key).await
    }

    /// Stops the instances named, at once: a caller that drained them first (a
    /// [`ProxiedPlatform`](crate::ProxiedPlatform)) has them stopped and no other, whatever
    /// their readiness now.
    async fn scale_down(
        &self,
        service: &str,
        track: &Track,
        ids: &[String],
    ) -> Result<TrackStatus> {
        let key = TrackKey::new(service, track);
        let scaling = self.scaling(&key)?;
        let _turn = scaling.lock().await;
        self.stop_named(&key, ids).await?;
        self.report(&key).await
    }

    async fn retire(&self, service: &str, track: &Track, drain: Duration) -> Result<()> {
        let key = TrackKey::new(service, track);
        if !self.running().contains_key(&key) {
            return Err(Error::not_found("track", &key));
        }
        tokio::time::sleep(drain).await;
        let running = self
            .running()
            .remove(&key)
            .ok_or_else(|| Error::not_found("track", &key))?;
        self.stop(running.procs).await;
        Ok(())
    }

    async fn list(&self) -> Result<Vec<TrackStatus>> {
        let keys: Vec<TrackKey> = self.running().keys().cloned().collect();
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            match self.report(&k).await {
                Ok(s) => out.push(s),
                Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn lock(&self, service: &str, holder: &str) -> Result<()> {
        match &self.locks {
            Some(l) => l.lock(service, holder),
            None => Ok(()),
        }
    }

    async fn unlock(&self, service: &str, holder: &str) -> Result<()> {
        match &self.locks {
            Some(l) => l.unlock(service, holder),
            None => Ok(()),
        }
    }

    async fn lock_holder(&self, service: &str) -> Result<Option<String>> {
        match &self.locks {
            Some(l) => l.holder(service),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Service and track names may both hold `-`: `a-b`'s `c-0` and `a`'s `b-c-0` must not
    /// write one file, which would give one instance's death the other's last lines.
    #[test]
    fn instances_of_services_and_tracks_named_with_dashes_log_apart() {
        let dir = tempfile::tempdir().unwrap();
        let p = ProcessPlatform::new(ProcessConfig::new(dir.path())).unwrap();
        assert_ne!(p.log_path("a-b", "c-0"), p.log_path("a", "b-c-0"));
    }

    #[test]
    fn a_readiness_path_no_request_can_carry_is_refused_naming_it() {
        for bad in ["ready", "/re ady", "/ready\n", "/a\tb"] {
            let err = ProcessConfig::new("logs")
                .with_readiness_path(bad)
                .validate()
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("processConfig.readinessPath") && err.contains(bad.trim_end()),
                "{bad:?}: {err}"
            );
        }
        for good in ["/ready", "/health/ready?deep=1", "/%20"] {
            ProcessConfig::new("logs")
                .with_readiness_path(good)
                .validate()
                .unwrap();
        }
    }

    #[test]
    fn the_config_loads_in_camel_case_checked_and_round_trips() {
        let c: ProcessConfig = serde_json::from_str(
            r#"{"logDir": "/tmp/l", "logRotation": {"maxBytes": 4096}, "readinessPath": "/up",
                "probeTimeout": "1s", "grace": 3000, "lockDir": "/tmp/locks"}"#,
        )
        .unwrap();
        let expected = ProcessConfig::new("/tmp/l")
            .with_log_rotation(4096, LogRotation::default().keep)
            .with_readiness_path("/up")
            .with_probe_timeout(Duration::from_secs(1))
            .with_grace(Duration::from_secs(3))
            .with_lock_dir("/tmp/locks");
        assert_eq!(c, expected);
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<ProcessConfig>(&text).unwrap(), c);
        let defaults: ProcessConfig = serde_json::from_str(r#"{"logDir": "/tmp/l"}"#).unwrap();
        assert_eq!(defaults, ProcessConfig::new("/tmp/l"));
        for (json, named) in [
            (
                r#"{"logDir": "x", "probeTimeout": 0}"#,
                "processConfig.probeTimeout",
            ),
            (
                r#"{"logDir": "x", "readinessPath": "/a b"}"#,
                "processConfig.readinessPath",
            ),
            (
                r#"{"logDir": "x", "logRotation": {"maxBytes": 10}}"#,
                "processConfig.logRotation.maxBytes",
            ),
            (r#"{"logDir": "x", "gracePeriod": "5s"}"#, "gracePeriod"),
            (r#"{"logDir": "x", "logRotation": {"count": 2}}"#, "count"),
            (r#"{"grace": "5s"}"#, "logDir"),
        ] {
            let err = serde_json::from_str::<ProcessConfig>(json)
                .unwrap_err()
                .to_string();
            assert!(err.contains(named), "{json}: {err}");
        }
    }

    /// An empty directory (an unset variable in a config template) would put the logs, or the
    /// locks, in whatever directory the process runs in.
    #[test]
    fn an_empty_log_or_lock_directory_is_refused_naming_it() {
        for (json, named) in [
            (r#"{"logDir": ""}"#, "processConfig.logDir ``"),
            (
                r#"{"logDir": "x", "lockDir": ""}"#,
                "processConfig.lockDir ``",
            ),
        ] {
            let err = serde_json::from_str::<ProcessConfig>(json)
                .unwrap_err()
                .to_string();
            assert!(err.contains(named), "{json}: {err}");
        }
        let err = ProcessPlatform::new(ProcessConfig::new(""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("processConfig.logDir"), "{err}");
    }

    /// A lock directory that cannot be made (here under a regular file) refuses the platform
    /// and leaves no log directory behind: bad input changes nothing.
    #[test]
    fn a_lock_directory_that_cannot_be_made_leaves_no_log_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let logs = dir.path().join("logs").join("web");
        let err = ProcessPlatform::new(ProcessConfig::new(&logs).with_lock_dir(file.join("locks")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("processConfig.lockDir"), "{err}");
        assert!(!dir.path().join("logs").exists(), "log directory made");
        // An existing log directory stays.
        std::fs::create_dir(dir.path().join("logs")).unwrap();
        ProcessPlatform::new(ProcessConfig::new(&logs).with_lock_dir(file.join("locks")))
            .unwrap_err();
        assert!(dir.path().join("logs").is_dir());
        assert!(!logs.exists(), "log directory made");
    }

    /// A command that cannot start leaves no empty log file behind,
    /// but an earlier process's log stays.
    #[tokio::test]
    async fn a_command_that_cannot_start_leaves_no_log_behind() {
        let dir = tempfile::tempdir().unwrap();
        let p = ProcessPlatform::new(ProcessConfig::new(dir.path())).unwrap();
        let spec = TrackSpec::new("web", "1.0.0", Track::Green, 2)
            .unwrap()
            .with_command(["/no/such/command"])
            .unwrap();
        let err = p.bring_up(&spec).await.unwrap_err().to_string();
        assert!(err.contains("/no/such/command"), "{err}");
        assert!(!p.log_path("web", "green-0").exists(), "left behind");
        let earlier = p.log_path("web", "green-0");
        std::fs::create_dir_all(earlier.parent().unwrap()).unwrap();
        std::fs::write(&earlier, "earlier\n").unwrap();
        p.bring_up(&spec).await.unwrap_err();
        assert_eq!(std::fs::read_to_string(&earlier).unwrap(), "earlier\n");
        assert!(!p.log_path("web", "green-1").exists());
    }

    /// A start that fails takes back the service's log directory it made, but never one
    /// another track of the service logs in, nor one that starts meanwhile.
    #[tokio::test]
    async fn a_command_that_cannot_start_leaves_no_service_log_directory_behind() {
        let dir = tempfile::tempdir().unwrap();
        let p = ProcessPlatform::new(ProcessConfig::new(dir.path())).unwrap();
        let bad = TrackSpec::new("web", "1.0.0", Track::Green, 1)
            .unwrap()
            .with_command(["/no/such/command"])
            .unwrap();
        p.bring_up(&bad).await.unwrap_err();
        assert!(!dir.path().join("web").exists(), "service directory left");
        // Another track of the service starting at the same moment keeps its directory.
        let good = TrackSpec::new("web", "1.0.0", Track::Blue, 1)
            .unwrap()
            .with_command(["sleep", "30"])
            .unwrap();
        for _ in 0..50 {
            let rt = tokio::runtime::Handle::current();
            let (failed, started) = std::thread::scope(|s| {
                let failed = s.spawn(|| {
                    let _rt = rt.enter();
                    p.spawn(&bad, 0).is_err()
                });
                let started = s.spawn(|| {
                    let _rt = rt.enter();
                    p.spawn(&good, 0).map_err(|e| e.to_string())
                });
                (failed.join().unwrap(), started.join().unwrap())
            });
            assert!(failed);
            let started = started.expect("the other track's start failed");
            assert!(p.log_path("web", "blue-0").exists(), "its log went");
            drop(started);
            std::fs::remove_file(p.log_path("web", "blue-0")).unwrap();
            std::fs::remove_dir(dir.path().join("web")).unwrap();
        }
    }

    #[test]
    fn instance_ports_come_from_below_the_ephemeral_range() {
        let low = ephemeral_low().unwrap_or(32_768);
        for _ in 0..20 {
            let port = free_loopback_port().unwrap();
            if low >= 2_048 {
                assert!((low / 2..low).contains(&port), "{port}, range from {low}");
            }
            assert!(TcpListener::bind(("127.0.0.1", port)).is_ok(), "{port}");
        }
    }

    #[test]
    fn a_port_handed_out_is_not_handed_out_again_soon() {
        // 2,000 draws from 16,384 ports would repeat one almost surely (the chance of none is
        // about e^-122) if each draw forgot the others.
        let ports: Vec<u16> = (0..2_000).map(|_| free_loopback_port().unwrap()).collect();
        let distinct: std::collections::BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
    }
}
