//! The demo service stops at SIGTERM as its documentation says (drains, exits 0), also while
//! the platform that started it still holds its lifeline (its stdin) open, as it always does.

use crate::support;

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serin_local::{ProcessConfig, ProcessPlatform};
use serin_orchestrator::{Platform, wait_ready};
use serin_signals::Track;
use support::{DEMO, demo_spec, free_port};
use tokio::net::TcpStream;
use tokio::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_demo_with_its_lifeline_still_open() {
    let port = free_port();
    let mut child = Command::new(DEMO)
        .env("PORT", port.to_string())
        .env("SERIN_LIFELINE", "stdin")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Held open, as a platform holds it.
    let _lifeline = child.stdin.take();
    let mut listening = false;
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            listening = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(listening, "the demo did not listen on {port}");
    let pid = i32::try_from(child.id().unwrap()).unwrap();
    kill(Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the demo still runs 10 s after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
}

/// So a retire takes as long as the instances need to drain, not the whole grace period
/// followed by SIGKILL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retiring_demo_instances_takes_less_than_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let grace = Duration::from_secs(30);
    let platform = ProcessPlatform::new(ProcessConfig::new(dir.path()).with_grace(grace)).unwrap();
    platform
        .bring_up(&demo_spec("web", "1.0.0", Track::Blue, 2))
        .await
        .unwrap();
    wait_ready(
        &platform,
        "web",
        &Track::Blue,
        Duration::from_millis(50),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let started = tokio::time::Instant::now();
    platform
        .retire("web", &Track::Blue, Duration::ZERO)
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(took < grace / 3, "the retire took {took:?}");
    for i in 0..2 {
        let log = std::fs::read_to_string(platform.log_path("web", &format!("blue-{i}"))).unwrap();
        assert!(log.trim_end().ends_with("drained; exiting"), "{log}");
    }
}
