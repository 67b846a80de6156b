//! Fault tests: an instance that crashes, hangs, pauses through a readiness probe or refuses
//! connections; a readiness path that never turns green; a port already in use; a platform gone without stopping its instances; a
//! drain timeout too long for the clock; a client that never finishes its headers; an instance
//! that writes far more output than its log may hold.
//! Each gets a clear error or event, and no request that another ready instance could serve is
//! lost.

use crate::support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper::StatusCode;
use serin_local::{
    Error, ProcessConfig, ProcessPlatform, ProxiedPlatform, ProxyConfig, ProxyRouter,
};
use serin_orchestrator::{Platform, wait_ready};
use serin_signals::{Metric, MetricQuery, MetricsSource, ProbeStatus, Timestamp, Track, Window};
use serin_traffic::{TrafficRouter, TrafficSplit};
use support::{Tally, counter, demo_spec, free_port, get, start_demo, start_load};

const POLL: Duration = Duration::from_millis(20);

/// Brings `spec` up and waits for its readiness, which must not come within `within`: the
/// error and its message.
async fn never_ready(
    p: &ProcessPlatform,
    spec: &serin_orchestrator::TrackSpec,
    within: Duration,
) -> (serin_orchestrator::Error, String) {
    p.bring_up(spec).await.unwrap();
    let err = wait_ready(p, spec.service(), spec.track(), POLL, within)
        .await
        .unwrap_err();
    let msg = err.to_string();
    (err, msg)
}

/// A directory of its own for the test `name`, removed when dropped.
fn test_dir(name: &str) -> tempfile::TempDir {
    support::scratch(&format!("faults-{name}"))
}

/// A process platform for the test `name`, and its directory (keep it while the platform runs).
fn platform(name: &str) -> (ProcessPlatform, tempfile::TempDir) {
    let dir = test_dir(name);
    let platform = ProcessPlatform::new(
        ProcessConfig::new(dir.path())
            .with_grace(Duration::from_secs(2))
            .with_probe_timeout(Duration::from_millis(300)),
    )
    .unwrap();
    (platform, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_instance_is_reported_dead_and_its_requests_go_elsewhere() {
    let (p, _dir) = platform("crash");
    let status = support::up(&p, Track::Stable, 2).await;
    let router = ProxyRouter::bind(ProxyConfig::default()).await.unwrap();
    router.sync_track(&status);
    router
        .apply(&TrafficSplit::all_to("stable", &[]).unwrap())
        .await
        .unwrap();
    let tally = Arc::new(Tally::default());
    let load = start_load(router.local_addr(), 4, tally.clone());
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Instance 0 crashes; the proxy still lists it (nobody told it yet).
    let victim = status.instances[0].address.unwrap();
    // The crash ends the connection without an answer: the helper panics in its own task.
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::spawn(get(victim, "/crash", &[])),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    tally.stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    let failures = tally.failures.lock().unwrap().clone();
    assert_eq!(
        tally.failed(),
        0,
        "requests lost although instance 1 was ready: {failures:?}"
    );
    assert!(tally.ok() > 50);

    // The platform reports the death, with the exit status, and restarts nothing.
    let after = p.status("web", &Track::Stable).await.unwrap();
    let dead = after
        .dead_instance()
        .expect("instance 0 must be reported dead");
    assert_eq!(dead.id, "stable-0");
    assert!(
        dead.detail
            .as_deref()
            .unwrap_or("")
            .contains("exit status: 3"),
        "{dead:?}"
    );
    assert_eq!(after.ready_count(), 1);
    let text = router.metrics().prometheus_text();
    assert!(
        text.contains("serin_proxy_connect_errors_total{backend=\"stable\"}"),
        "{text}"
    );
    p.retire("web", &Track::Stable, Duration::ZERO)
        .await
        .unwrap();
    router.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_refusing_connections_costs_no_request() {
    let good = start_demo("1.0.0", &[]).await;
    let refusing = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let router = ProxyRouter::bind(ProxyConfig::default()).await.unwrap();
    router.set_endpoints("stable", &[refusing, good.addr]);
    router
        .apply(&TrafficSplit::all_to("stable", &[]).unwrap())
        .await
        .unwrap();
    for _ in 0..20 {
        let (status, version, _) = get(router.local_addr(), "/", &[]).await;
        assert_eq!((status, version.as_str()), (StatusCode::OK, "1.0.0"));
    }
    // A whole backend refusing: its share is retried on the other backend of the split.
    router.set_endpoints("stable", &[good.addr]);
    router.set_endpoints("canary", &[refusing]);
    router
        .apply(&TrafficSplit::from_percents([("stable", 50), ("canary", 50)]).unwrap())
        .await
        .unwrap();
    for _ in 0..20 {
        let (status, _, _) = get(router.local_addr(), "/", &[]).await;
        assert_eq!(status, StatusCode::OK);
    }
    // With nothing else ready, the client gets a clear 502, counted as an error.
    router.set_endpoints("stable", &[]);
    let (status, _, body) = get(router.local_addr(), "/", &[]).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    let end = Timestamp::from_millis(u64::MAX / 2);
    let q = MetricQuery::new(
        Metric::ErrorRate,
        Track::Canary,
        Window::new(Timestamp::EPOCH, end).unwrap(),
    );
    let o = router.metrics().query(&q).await.unwrap();
    assert_eq!(o.error_rate(), Some(1.0), "{o:?}");
    // Every failed connection but the last was retried elsewhere; the last had nowhere to go.
    let text = router.metrics().prometheus_text();
    let connects = counter(&text, "serin_proxy_connect_errors_total", "canary");
    let retries = counter(&text, "serin_proxy_retries_total", "canary");
    assert_eq!(retries + 1.0, connects, "{text}");
    router.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_and_never_ready_instances_time_out_naming_them() {
    let (p, _dir) = platform("never");
    let never = demo_spec("web", "1.0.0", Track::Canary, 1)
        .with_env("DEMO_NEVER_READY", "1")
        .unwrap();
    let (err, msg) = never_ready(&p, &never, Duration::from_secs(1)).await;
    assert!(
        matches!(err, serin_orchestrator::Error::Timeout { .. }),
        "{msg}"
    );
    assert!(msg.contains("canary-0") && msg.contains("503"), "{msg}");
    p.retire("web", &Track::Canary, Duration::ZERO)
        .await
        .unwrap();

    // A readiness delay past what the clock can hold is a service that is never ready, not one
    // that fails to start.
    let forever = start_demo("1.0.0", &[("DEMO_READY_AFTER_MS", &u64::MAX.to_string())]).await;
    assert_eq!(
        get(forever.addr, "/ready", &[]).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(get(forever.addr, "/", &[]).await.1, "1.0.0");

    // A process that never listens at all (hangs before serving): readiness fails, liveness holds.
    let hang = serin_orchestrator::TrackSpec::new("web", "1.0.0", Track::Green, 1)
        .unwrap()
        .with_command(["sleep", "30"])
        .unwrap();
    p.bring_up(&hang).await.unwrap();
    let s = p.status("web", &Track::Green).await.unwrap();
    let i = &s.instances[0];
    assert_eq!(
        (i.readiness, i.liveness),
        (ProbeStatus::Fail, ProbeStatus::Pass),
        "{i:?}"
    );
    let err = wait_ready(&p, "web", &Track::Green, POLL, Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("green-0"), "{err}");
    // SIGTERM ends `sleep` at once; retire returns well within the grace period.
    let started = std::time::Instant::now();
    p.retire("web", &Track::Green, Duration::ZERO)
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = ProxyRouter::bind(ProxyConfig::listening_on(addr))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Bind { .. }), "{err}");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");

    // An instance whose port is taken dies at start; the platform says why.
    let (p, _dir) = platform("port");
    let spec = serin_orchestrator::TrackSpec::new("web", "1.0.0", Track::Blue, 1)
        .unwrap()
        .with_command([
            "sh",
            "-c",
            &format!("PORT={} exec {}", addr.port(), support::DEMO),
        ])
        .unwrap();
    let (err, msg) = never_ready(&p, &spec, Duration::from_secs(10)).await;
    assert!(
        matches!(err, serin_orchestrator::Error::Platform { .. }),
        "{msg}"
    );
    assert!(
        msg.contains("blue-0") && msg.to_lowercase().contains("in use"),
        "{msg}"
    );
    p.retire("web", &Track::Blue, Duration::ZERO).await.unwrap();
    drop(taken);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chatty_instance_log_is_rotated_and_its_last_words_are_reported() {
    let dir = test_dir("chatty");
    let p = ProcessPlatform::new(
        ProcessConfig::new(dir.path())
            .with_grace(Duration::from_secs(2))
            .with_log_rotation(16 * 1024, 2),
    )
    .unwrap();
    // 1 MB of output, then a last line, then an exit: 64 times the limit.
    let spec = serin_orchestrator::TrackSpec::new("web", "1.0.0", Track::Blue, 1)
        .unwrap()
        .with_command([
            "sh",
            "-c",
            "head -c 1000000 /dev/zero | tr '\\0' 'x'; echo; echo 'fatal: the last words' >&2; exit 3",
        ])
        .unwrap();
    let (_, msg) = never_ready(&p, &spec, Duration::from_secs(10)).await;
    assert!(
        msg.contains("exit status: 3")
            && msg.contains("last log lines: ")
            && msg.ends_with("fatal: the last words"),
        "{msg}"
    );
    let log = p.log_path("web", "blue-0");
    let mut total = 0;
    for name in ["", ".1", ".2"] {
        let path = format!("{}{name}", log.display());
        let len = std::fs::metadata(&path).unwrap().len();
        // Rotated at 16 KiB, a file may exceed it by at most one pipe read (64 KiB).
        assert!(len <= (16 + 64) * 1024, "{path}: {len} bytes");
        total += len;
    }
    assert!(
        total < 1_000_000,
        "only the newest output is kept: {total} bytes"
    );
    assert!(!std::path::Path::new(&format!("{}.3", log.display())).exists());
    p.retire("web", &Track::Blue, Duration::ZERO).await.unwrap();
}

/// A service that fails at start reports why on several lines, the cause first and a hint
/// after (a Rust panic ends with the `RUST_BACKTRACE` note, a Go one with a stack): its death is
/// reported with the tail of its log, which holds the cause, not with the hint alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_exits_at_start_is_reported_with_its_log_tail() {
    let (p, _dir) = platform("exits-at-start");
    let spec = serin_orchestrator::TrackSpec::new("web", "1.0.0", Track::Blue, 1)
        .unwrap()
        .with_command([
            "sh",
            "-c",
            "echo starting; echo 'panicked at src/main.rs:9:5:' >&2; \
             echo 'config file /etc/web.toml not found' >&2; \
             echo 'note: run with `RUST_BACKTRACE=1` to display a backtrace' >&2; exit 101",
        ])
        .unwrap();
    let (_, msg) = never_ready(&p, &spec, Duration::from_secs(10)).await;
    assert!(
        msg.contains("died while starting")
            && msg.contains("exit status: 101")
            && msg.contains("config file /etc/web.toml not found")
            && msg.contains("RUST_BACKTRACE"),
        "{msg}"
    );
    p.retire("web", &Track::Blue, Duration::ZERO).await.unwrap();
}

/// An instance's log file outlives its process and is continued by the next one of the same
/// id: a process that dies without a word is reported with no log lines, not with the last
/// words of the one before it, which would blame the new version for the old one's output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_death_is_not_reported_with_an_earlier_process_s_output() {
    let (p, _dir) = platform("silent-death");
    let spec = |script: &str| {
        serin_orchestrator::TrackSpec::new("web", "1.0.0", Track::Blue, 1)
            .unwrap()
            .with_command(["sh", "-c", script])
            .unwrap()
    };
    let (_, first) = never_ready(
        &p,
        &spec("echo 'the old version says goodbye'; exit 1"),
        Duration::from_secs(10),
    )
    .await;
    assert!(first.contains("the old version says goodbye"), "{first}");
    p.retire("web", &Track::Blue, Duration::ZERO).await.unwrap();
    let (_, second) = never_ready(&p, &spec("kill -KILL $$"), Duration::from_secs(10)).await;
    assert!(
        second.contains("signal: 9") && !second.contains("goodbye"),
        "{second}"
    );
    p.retire("web", &Track::Blue, Duration::ZERO).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_stream_and_routes_sticky_and_mirror_work_end_to_end() {
    let stable = start_demo("1.0.0", &[]).await;
    let canary = start_demo("2.0.0", &[]).await;
    let shadow = start_demo("9.9.9", &[]).await;
    let router = ProxyRouter::bind(ProxyConfig::default()).await.unwrap();
    router.set_endpoints("stable", &[stable.addr]);
    router.set_endpoints("canary", &[canary.addr]);
    router.set_endpoints("shadow", &[shadow.addr]);
    let split = TrafficSplit::from_percents([("stable", 100), ("canary", 0), ("shadow", 0)])
        .unwrap()
        .with_route(
            serin_traffic::MatchRoute::cookie(
                "beta",
                serin_traffic::ValueMatch::Exact("1".into()),
                "canary",
            )
            .unwrap(),
        )
        .unwrap()
        .with_mirror(serin_traffic::Mirror::new("shadow", serin_traffic::Weight::FULL).unwrap())
        .with_sticky(serin_traffic::StickySession::new("srn", Duration::from_secs(60)).unwrap());
    router.apply(&split).await.unwrap();
    let proxy = router.local_addr();
    assert_eq!(get(proxy, "/", &[("cookie", "beta=1")]).await.1, "2.0.0");
    assert_eq!(get(proxy, "/", &[]).await.1, "1.0.0");
    // Every bodyless request was mirrored to the shadow, whose answers were discarded.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let text = router.metrics().prometheus_text();
    assert!(
        text.contains("serin_proxy_requests_total{backend=\"shadow\"} 2"),
        "{text}"
    );

    // A streamed body goes through unchanged (and is not mirrored).
    let stream = tokio::net::TcpStream::connect(proxy).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let payload = "x".repeat(256 * 1024);
    let req = hyper::Request::post("/echo")
        .header("host", "serin.test")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            payload.clone(),
        )))
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let sticky = res
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(sticky.starts_with("srn=stable"), "{sticky}");
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(body.len(), payload.len());
    router.shutdown();
}

/// The demo service as a platform starts it, with stdin a pipe the test holds.
async fn demo_with_stdin(lifeline: bool) -> (tokio::process::Child, SocketAddr) {
    let port = free_port();
    let mut cmd = tokio::process::Command::new(support::DEMO);
    cmd.env("PORT", port.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true);
    if lifeline {
        cmd.env("SERIN_LIFELINE", "stdin");
    }
    let child = cmd.spawn().unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return (child, addr);
        }
        tokio::time::sleep(POLL).await;
    }
    panic!("demo service on {addr} did not start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_service_stops_when_its_platform_is_gone() {
    // A platform killed outright closes the pipe on its instances' stdin.
    let (mut child, addr) = demo_with_stdin(true).await;
    assert_eq!(get(addr, "/live", &[]).await.0, StatusCode::OK);
    drop(child.stdin.take());
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("exits once stdin closes")
        .unwrap();
    assert!(status.success(), "{status}");

    // Started by hand (no lifeline), it ignores its stdin.
    let (mut child, addr) = demo_with_stdin(false).await;
    drop(child.stdin.take());
    for _ in 0..5 {
        tokio::time::sleep(POLL).await;
        assert_eq!(get(addr, "/live", &[]).await.0, StatusCode::OK);
    }
    assert!(child.try_wait().unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_service_drains_when_its_platform_is_gone_with_its_output() {
    // A platform killed outright closes both ends it held: the demo's stdin and the reading end
    // of its output. The demo still drains its request in flight and exits cleanly.
    let port = free_port();
    let mut child = tokio::process::Command::new(support::DEMO)
        .env("PORT", port.to_string())
        .env("SERIN_LIFELINE", "stdin")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut up = false;
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    assert!(up, "demo service on {addr} did not start");
    let in_flight = tokio::spawn(get(addr, "/delay/300", &[]));
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(child.stdout.take());
    drop(child.stderr.take());
    drop(child.stdin.take());
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("exits once stdin closes")
        .unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(in_flight.await.unwrap().0, StatusCode::OK);
}

#[tokio::test]
async fn the_demo_service_names_a_bad_setting_and_its_value() {
    for (name, value) in [
        ("PORT", "80a"),
        ("PORT", "70000"),
        ("DEMO_ERROR_RATE", "1.5"),
        ("DEMO_LATENCY_MS", "-3"),
    ] {
        let mut cmd = tokio::process::Command::new(support::DEMO);
        cmd.env("PORT", "0").env(name, value);
        let out = cmd.output().await.unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}={value}: {err}");
        assert!(
            err.contains(name) && err.contains(&format!("`{value}`")),
            "{name}={value}: {err}"
        );
    }
}

#[tokio::test]
async fn a_drain_timeout_past_what_the_clock_holds_does_not_panic() {
    let router = ProxyRouter::bind(ProxyConfig::default()).await.unwrap();
    let idle = SocketAddr::from(([127, 0, 0, 1], free_port()));
    assert!(router.wait_drained(&[idle], Duration::MAX).await);
    router.shutdown();
}

// These two tests wait in real time, for limits far below the defaults: paused time skips
// ahead whenever the runtime is idle, and with other tests loading the machine it skipped past
// the test's guard before the proxy had read the connection.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let limit = Duration::from_millis(200);
    let router = ProxyRouter::bind(ProxyConfig::default().with_header_read_timeout(limit))
        .await
        .unwrap();
    // Timed from before the connection: the proxy's limit runs from when it accepted it.
    let started = std::time::Instant::now();
    let mut slow = tokio::net::TcpStream::connect(router.local_addr())
        .await
        .unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: shop\r\nX-Slow: ")
        .await
        .unwrap();
    // Without a limit the proxy would wait for the rest of the headers forever.
    let answer = tokio::time::timeout(Duration::from_secs(10), async {
        let mut answer = Vec::new();
        let mut buf = [0u8; 256];
        loop {
            match slow.read(&mut buf).await {
                Ok(0) | Err(_) => break answer,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the proxy closes the connection");
    assert!(started.elapsed() >= limit, "{:?}", started.elapsed());
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    router.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_never_answers_is_a_timed_out_error_of_its_backend() {
    let (silent, held) = support::start_silent().await;
    let (answering, _seen) = support::start_recorder().await;
    let limit = Duration::from_secs(1);
    let router = ProxyRouter::bind(ProxyConfig::default().with_response_timeout(limit))
        .await
        .unwrap();
    let counts = |track: Track| {
        let q = MetricQuery::new(
            Metric::ErrorRate,
            track,
            Window::new(Timestamp::EPOCH, Timestamp::from_millis(u64::MAX / 2)).unwrap(),
        );
        let metrics = router.metrics();
        async move {
            match metrics.query(&q).await.unwrap().measurement {
                serin_signals::Measurement::Counts(c) => (c.requests(), c.errors()),
                other => panic!("{other:?}"),
            }
        }
    };
    // Without the limit, a request sent to the silent instance would wait forever.
    let answered = || async {
        tokio::time::timeout(Duration::from_secs(10), get(router.local_addr(), "/", &[]))
            .await
            .expect("an answer within 10 s")
    };
    // One instance of the canary hangs. Round-robin sends each GET to it first: the GET waits
    // out the limit, counts as the canary's error, and is answered by the other instance.
    router.set_endpoints("canary", &[silent, answering]);
    router
        .apply(&TrafficSplit::all_to("canary", &[]).unwrap())
        .await
        .unwrap();
    let started = std::time::Instant::now();
    for _ in 0..3 {
        let (status, _, body) = answered().await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
    assert!(started.elapsed() >= limit * 3, "{:?}", started.elapsed());
    assert_eq!(counts(Track::Canary).await, (6, 3));
    // With nowhere else to go, the client gets a 504, counted once.
    router.set_endpoints("canary", &[silent]);
    let (status, _, body) = answered().await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(counts(Track::Canary).await, (7, 4));
    router.shutdown();
    held.abort();
}

/// A bodyless request's response timeout starts once it has a connection: a connect that
/// takes longer than the response timeout, yet within the connect timeout, is no timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_connect_takes_nothing_from_the_wait_for_the_answer() {
    // An instance whose accept queue is full: a new connection's SYN is dropped, and the
    // connect completes only at its retransmission (about 1 s on Linux), once the instance
    // starts accepting at 200 ms.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    while let Ok(Ok(stream)) = tokio::time::timeout(
        Duration::from_millis(100),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    {
        fillers.push(stream);
        assert!(fillers.len() < 64, "the accept queue never filled");
    }
    let served = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        while let Ok((stream, _)) = listener.accept().await {
            let svc = hyper::service::service_fn(|_req| async {
                Ok::<_, hyper::Error>(hyper::Response::new(
                    http_body_util::Empty::<bytes::Bytes>::new(),
                ))
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc),
            );
        }
    });
    let router = ProxyRouter::bind(
        ProxyConfig::default()
            .with_connect_timeout(Duration::from_secs(5))
            .with_response_timeout(Duration::from_millis(500)),
    )
    .await
    .unwrap();
    router.set_endpoints("stable", &[addr]);
    router
        .apply(&TrafficSplit::all_to("stable", &[]).unwrap())
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let (status, _, body) = get(router.local_addr(), "/", &[]).await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::OK, "after {took:?}: {body}");
    router.shutdown();
    served.abort();
    drop(fillers);
}

/// A request body whose chunks come from a channel, as slowly as they are sent.
struct Trickle(tokio::sync::mpsc::Receiver<bytes::Bytes>);

impl hyper::body::Body for Trickle {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(hyper::body::Frame::data(c))))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_slower_than_the_response_timeout_is_not_the_instance_s_delay() {
    let (answering, mut seen) = support::start_recorder().await;
    let limit = Duration::from_millis(200);
    let router = ProxyRouter::bind(ProxyConfig::default().with_response_timeout(limit))
        .await
        .unwrap();
    router.set_endpoints("stable", &[answering]);
    router
        .apply(&TrafficSplit::all_to("stable", &[]).unwrap())
        .await
        .unwrap();
    // The client takes twice the limit to send its body; the instance answers once it has
    // read it all.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        for chunk in ["one ", "two ", "three ", "four"] {
            tokio::time::sleep(limit / 2).await;
            let _ = tx.send(bytes::Bytes::from_static(chunk.as_bytes())).await;
        }
    });
    let started = std::time::Instant::now();
    let (status, body) = tokio::time::timeout(
        Duration::from_secs(10),
        support::post(router.local_addr(), "/upload", Trickle(rx)),
    )
    .await
    .expect("an answer within 10 s");
    assert_eq!(status, StatusCode::NO_CONTENT, "{body:?}");
    assert!(started.elapsed() >= limit * 2, "{:?}", started.elapsed());
    let (_, path, copy) = seen.recv().await.unwrap();
    assert_eq!(
        (path.as_str(), &copy[..]),
        ("/upload", &b"one two three four"[..])
    );
    let q = MetricQuery::new(
        Metric::ErrorRate,
        Track::Stable,
        Window::new(Timestamp::EPOCH, Timestamp::from_millis(u64::MAX / 2)).unwrap(),
    );
    let o = router.metrics().query(&q).await.unwrap();
    assert_eq!(o.error_rate(), Some(0.0), "{o:?}");
    router.shutdown();
}

/// The error counts of `track` since start: (requests, errors).
async fn error_counts(router: &ProxyRouter, track: Track) -> (u64, u64) {
    let q = MetricQuery::new(
        Metric::ErrorRate,
        track,
        Window::new(Timestamp::EPOCH, Timestamp::from_millis(u64::MAX / 2)).unwrap(),
    );
    match router.metrics().query(&q).await.unwrap().measurement {
        serin_signals::Measurement::Counts(c) => (c.requests(), c.errors()),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_crashes_on_a_replayed_request_is_charged_with_the_error() {
    let (crasher, crashing) = support::start_crasher().await;
    let (answering, _seen) = support::start_recorder().await;
    let router = ProxyRouter::bind(ProxyConfig::default()).await.unwrap();
    router.set_endpoints("canary", &[crasher, answering]);
    router
        .apply(&TrafficSplit::all_to("canary", &[]).unwrap())
        .await
        .unwrap();
    // Round-robin gives each GET to the crashing instance first; the answering one serves the
    // replay. The client sees no failure, and the canary's analysis sees the crashes.
    for _ in 0..2 {
        let (status, _, body) = get(router.local_addr(), "/", &[]).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
    assert_eq!(error_counts(&router, Track::Canary).await, (4, 2));
    let text = router.metrics().prometheus_text();
    assert_eq!(
        counter(&text, "serin_proxy_retries_total", "canary"),
        2.0,
        "{text}"
    );
    router.shutdown();
    crashing.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_goes_to_the_instances_listed_when_it_is_made() {
    let (silent, held) = support::start_silent().await;
    let (answering, _seen) = support::start_recorder().await;
    let router =
        ProxyRouter::bind(ProxyConfig::default().with_response_timeout(Duration::from_secs(1)))
            .await
            .unwrap();
    router.set_endpoints("stable", &[silent]);
    router
        .apply(&TrafficSplit::all_to("stable", &[]).unwrap())
        .await
        .unwrap();
    let proxy = router.local_addr();
    let request = tokio::spawn(async move { get(proxy, "/", &[]).await });
    for _ in 0..500 {
        if router.in_flight(silent) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        router.in_flight(silent),
        1,
        "the GET waits on the silent instance"
    );
    // While it waits, the silent instance is replaced (and could be stopped once drained):
    // the replay goes to the instance listed now, not to one listed when the GET came in.
    router.set_endpoints("stable", &[answering]);
    let (status, _, body) = tokio::time::timeout(Duration::from_secs(10), request)
        .await
        .expect("an answer within 10 s")
        .unwrap();
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    router.shutdown();
    held.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_scraper_s_keep_alive_connection_ends_at_shutdown() {
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let router = ProxyRouter::bind(ProxyConfig::default().with_admin(admin))
        .await
        .unwrap();
    let admin = router.admin_addr().unwrap();
    let stream = tokio::net::TcpStream::connect(admin).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<
        _,
        http_body_util::Empty<bytes::Bytes>,
    >(hyper_util::rt::TokioIo::new(stream))
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    let scrape = || {
        hyper::Request::get("/metrics")
            .header("host", admin.to_string())
            .body(http_body_util::Empty::new())
            .unwrap()
    };
    let res = sender.send_request(scrape()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let _ = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap();
    router.shutdown();
    // The idle keep-alive connection is closed, not served on.
    tokio::time::timeout(Duration::from_secs(10), conn)
        .await
        .expect("the admin connection closes at shutdown")
        .unwrap()
        .unwrap();
    assert!(sender.send_request(scrape()).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_started_by_a_wrapper_stops_with_it() {
    let dir = test_dir("wrapper");
    let p = ProcessPlatform::new(
        ProcessConfig::new(dir.path())
            .with_grace(Duration::from_secs(5))
            .with_probe_timeout(Duration::from_millis(300)),
    )
    .unwrap();
    let pid_file = dir.path().join("service.pid");
    let _ = std::fs::remove_file(&pid_file);
    // The shell stays, as the parent of the service, and passes no signal on. Without the
    // lifeline the service would only stop if signalled itself.
    let spec = serin_orchestrator::TrackSpec::new("web", "1.0.0", Track::Blue, 1)
        .unwrap()
        .with_command([
            "sh",
            "-c",
            "unset SERIN_LIFELINE; \"$0\" & echo $! > \"$1\"; wait",
            support::DEMO,
            &pid_file.display().to_string(),
        ])
        .unwrap();
    p.bring_up(&spec).await.unwrap();
    let status = wait_ready(&p, "web", &Track::Blue, POLL, Duration::from_secs(10))
        .await
        .unwrap();
    let addr = status.instances[0].address.unwrap();
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    p.retire("web", &Track::Blue, Duration::ZERO).await.unwrap();
    // The service drains and exits on its SIGTERM: its last words reach the log.
    let log = p.log_path("web", "blue-0");
    let exited =
        || std::fs::read_to_string(&log).is_ok_and(|l| l.trim_end().ends_with("drained; exiting"));
    for _ in 0..500 {
        if exited() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if !exited() {
        kill(pid);
        panic!("the wrapped service still runs on {addr}");
    }
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

/// Whether process `pid` has ended: it is gone, or a zombie its new parent has not reaped yet.
fn ended(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'))
    })
}

/// Kills process `pid`, which a test left running.
fn kill(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// Asserts that process `pid` ends within 2 s, and kills it if it does not.
fn assert_ends(pid: i32, what: &str) {
    let gone = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        ended(pid)
    });
    if !gone {
        kill(pid);
    }
    assert!(gone, "{what}");
}

/// Reads the process id a service wrote to `pid_file`, once it has.
async fn written_pid(pid_file: &std::path::Path) -> i32 {
    for _ in 0..500 {
        if let Some(pid) = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no process id in {}", pid_file.display());
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_wrapper_leaves_behind_is_stopped_with_its_group() {
    let dir = test_dir("orphans");
    let grace = Duration::from_millis(500);
    let p = ProcessPlatform::new(ProcessConfig::new(dir.path()).with_grace(grace)).unwrap();
    // `$0` is the file the service writes its process id to, then it becomes `sleep`.
    let service = |ignores_term: bool| {
        format!(
            "sh -c '{}echo $$ > \"$0\"; exec sleep 600' \"$0\"",
            if ignores_term { "trap \"\" TERM; " } else { "" }
        )
    };
    let cases = [
        // The wrapper waits and dies of SIGTERM; the service ignores SIGTERM.
        ("stubborn", format!("{} & wait", service(true))),
        // The wrapper exited long before the stop, leaving the service running.
        ("left", format!("{} &", service(false))),
    ];
    for (name, script) in cases {
        let pid_file = dir.path().join(format!("{name}.pid"));
        let _ = std::fs::remove_file(&pid_file);
        let spec = serin_orchestrator::TrackSpec::new(name, "1.0.0", Track::Blue, 1)
            .unwrap()
            .with_command(["sh", "-c", &script, &pid_file.display().to_string()])
            .unwrap();
        p.bring_up(&spec).await.unwrap();
        let pid = written_pid(&pid_file).await;
        if name == "left" {
            // The wrapper is reported dead; its group still holds the service.
            let mut dead = false;
            for _ in 0..500 {
                let status = p.status(name, &Track::Blue).await.unwrap();
                if status.instances[0].liveness == ProbeStatus::Fail {
                    dead = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(dead, "the wrapper's exit is reported");
        }
        assert!(!ended(pid), "{name}: the service runs");
        p.retire(name, &Track::Blue, Duration::ZERO).await.unwrap();
        assert_ends(pid, &format!("{name}: the service outlived its retire"));
    }
}

#[tokio::test(start_paused = true)]
async fn instances_that_ignore_sigterm_share_one_grace_period() {
    let dir = test_dir("stubborn");
    let grace = Duration::from_secs(10);
    let p = ProcessPlatform::new(ProcessConfig::new(dir.path()).with_grace(grace)).unwrap();
    let spec = serin_orchestrator::TrackSpec::new("web", "1.0.0", Track::Blue, 3)
        .unwrap()
        .with_command(["sh", "-c", "trap '' TERM; echo armed; exec sleep 600"])
        .unwrap();
    p.bring_up(&spec).await.unwrap();
    // The processes start in real time; the test's clock stands still meanwhile.
    for i in 0..3 {
        let log = p.log_path("web", &format!("blue-{i}"));
        let armed = (0..500).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains("armed"))
        });
        assert!(armed, "blue-{i} set its trap");
    }
    let started = tokio::time::Instant::now();
    p.retire("web", &Track::Blue, Duration::ZERO).await.unwrap();
    let took = started.elapsed();
    assert!(took >= grace && took < grace * 2, "{took:?}");
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_cut_short_still_ends_what_a_wrapper_started() {
    let dir = test_dir("cancelled");
    // A long grace, so the retire below is still waiting in it when it is given up.
    let p =
        ProcessPlatform::new(ProcessConfig::new(dir.path()).with_grace(Duration::from_secs(30)))
            .unwrap();
    let pid_file = dir.path().join("cancelled.pid");
    let _ = std::fs::remove_file(&pid_file);
    // The wrapper and its service ignore SIGTERM; the service writes its process id.
    let spec = serin_orchestrator::TrackSpec::new("web", "1.0.0", Track::Blue, 1)
        .unwrap()
        .with_command([
            "sh",
            "-c",
            "trap '' TERM; sh -c 'echo $$ > \"$0\"; exec sleep 600' \"$0\" & wait",
            &pid_file.display().to_string(),
        ])
        .unwrap();
    p.bring_up(&spec).await.unwrap();
    let pid = written_pid(&pid_file).await;
    assert!(!ended(pid), "the service runs");
    // The caller gives up on the retire (a timeout, a select!) while it waits for the grace.
    let retire = p.retire("web", &Track::Blue, Duration::ZERO);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), retire)
            .await
            .is_err(),
        "the retire was still waiting"
    );
    assert_ends(pid, "the service outlived its platform's retire");
    assert!(
        p.status("web", &Track::Blue).await.is_err(),
        "the track is gone"
    );
}

/// The process of the instance `instance` listening on `port`, found by its environment.
#[cfg(target_os = "linux")]
fn pid_of(instance: &str, port: u16) -> nix::unistd::Pid {
    let want = [format!("INSTANCE={instance}"), format!("PORT={port}")];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let vars: Vec<String> = env
            .split(|b| *b == 0)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        if want.iter().all(|w| vars.contains(w)) {
            return nix::unistd::Pid::from_raw(pid);
        }
    }
    panic!("no process for {instance} on {port}");
}

/// An instance that pauses through one readiness probe (a collector pause, a CPU spike), so
/// that the probe times out, keeps its place in the proxy: it answers again at once, and a
/// track whose only instance it is must not answer 503 until a later read finds it ready.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_slow_readiness_probe_does_not_take_the_only_instance_out() {
    use nix::sys::signal::{Signal, kill};
    let router = ProxyRouter::bind(ProxyConfig::default()).await.unwrap();
    let (processes, _dir) = platform("slow-probe");
    let proxied = Arc::new(ProxiedPlatform::new(processes, router.clone()));
    let status = support::up(&*proxied, Track::Stable, 1).await;
    let addr = status.ready_addresses()[0];
    router
        .apply(&TrafficSplit::all_to("stable", &[]).unwrap())
        .await
        .unwrap();
    let proxy = router.local_addr();
    assert_eq!(get(proxy, "/", &[]).await.0, StatusCode::OK);

    // Paused for 400 ms while one sync pass probes it (the probe gives up after 300 ms).
    let pid = pid_of("stable-0", addr.port());
    kill(pid, Signal::SIGSTOP).unwrap();
    let pass = tokio::spawn({
        let proxied = proxied.clone();
        async move { proxied.sync().await }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    kill(pid, Signal::SIGCONT).unwrap();
    pass.await.unwrap();
    assert_eq!(
        get(addr, "/", &[]).await.0,
        StatusCode::OK,
        "answers directly"
    );

    let (through_proxy, _, body) = get(proxy, "/", &[]).await;
    proxied
        .retire("web", &Track::Stable, Duration::ZERO)
        .await
        .unwrap();
    router.shutdown();
    assert_eq!(
        through_proxy,
        StatusCode::OK,
        "one timed-out readiness probe emptied the track: {body:?}"
    );
}
