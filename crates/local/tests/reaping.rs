//! A platform run as a container's first process (PID 1), or as a subreaper, is handed what a
//! wrapper leaves behind when it exits. A stop reaps those processes: it does not wait out the
//! grace period on zombies nobody else would reap, nor leave them in the process table.
//!
//! This test makes its own process a subreaper, which is why it has a file of its own.

#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use serin_local::{ProcessConfig, ProcessPlatform};
use serin_orchestrator::{Platform, TrackSpec};
use serin_signals::Track;

use crate::support;

/// The parent of process `pid`, while it exists.
fn parent_of(pid: i32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_wrapper_left_behind_is_reaped_by_a_stop_that_inherited_it() {
    // As PID 1 is, this process becomes the parent of the orphans among its descendants.
    nix::sys::prctl::set_child_subreaper(true).unwrap();
    let dir = support::scratch("reaping");
    let grace = Duration::from_secs(10);
    let p = ProcessPlatform::new(ProcessConfig::new(dir.path()).with_grace(grace)).unwrap();
    let pid_file = dir.path().join("left.pid");
    // The wrapper starts the service and exits; the service writes its process id to `$0`
    // and stops on SIGTERM.
    let spec = TrackSpec::new("web", "1.0.0", Track::Blue, 1)
        .unwrap()
        .with_command([
            "sh",
            "-c",
            "sh -c 'echo $$ > \"$0\"; exec sleep 600' \"$0\" &",
            &pid_file.display().to_string(),
        ])
        .unwrap();
    p.bring_up(&spec).await.unwrap();
    let me = std::process::id();
    let mut pid = None;
    for _ in 0..500 {
        pid = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .filter(|pid| parent_of(*pid) == Some(me));
        if pid.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pid = pid.expect("the service, its wrapper gone, was handed to this process");

    let started = Instant::now();
    p.retire("web", &Track::Blue, Duration::ZERO).await.unwrap();
    let took = started.elapsed();
    let left = parent_of(pid).is_some();
    if left {
        let service = nix::unistd::Pid::from_raw(pid);
        let _ = nix::sys::signal::kill(service, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(service, None);
    }
    assert!(!left, "the service is left in the process table");
    assert!(
        took < grace / 2,
        "the stop waited {took:?} on what had exited"
    );
}
