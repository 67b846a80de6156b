//! `HttpHealth` counts an answer as the kubelet counts an HTTP probe: a status from 200 to 399
//! passes, every other status fails, and so does an instance that refuses the connection or
//! does not answer in time. Only what says nothing about the instance is unknown.

use std::net::SocketAddr;
use std::time::Duration;

use serin_local::{HttpHealth, HttpProbe};
use serin_signals::{HealthSource, Probe, ProbeStatus, Timestamp, Track};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A server that answers `GET /status/NNN` with status NNN and no body.
async fn status_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let request = String::from_utf8_lossy(&request);
                let code = request
                    .split(' ')
                    .nth(1)
                    .and_then(|path| path.strip_prefix("/status/"))
                    .unwrap_or("500");
                let answer = format!(
                    "HTTP/1.1 {code} Status\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    addr
}

fn probe(instance: &str, addr: SocketAddr, path: &str) -> HttpProbe {
    HttpProbe {
        track: Track::Canary,
        probe: Probe::Readiness,
        instance: Some(instance.to_owned()),
        addr,
        path: path.to_owned(),
    }
}

/// Checks every case once and compares each instance's result with what it should be.
async fn assert_results(health: &HttpHealth, cases: &[(&str, ProbeStatus)]) {
    health.check(Timestamp::from_millis(1_000)).await;
    let signals = health.signals(&Track::Canary).await.unwrap();
    assert_eq!(signals.len(), cases.len(), "{signals:?}");
    for (instance, want) in cases {
        let got = signals
            .iter()
            .find(|s| s.instance.as_deref() == Some(*instance))
            .unwrap_or_else(|| panic!("{instance}: no result in {signals:?}"));
        assert_eq!(got.status, *want, "{instance}: {got:?}");
        assert_eq!(got.at, Timestamp::from_millis(1_000), "{got:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_error_status_fails_the_probe_as_the_kubelet_counts() {
    let addr = status_server().await;
    let health = HttpHealth::new(Duration::from_secs(10)).unwrap();
    let cases = [
        ("200", ProbeStatus::Pass),
        ("204", ProbeStatus::Pass),
        ("302", ProbeStatus::Pass),
        ("399", ProbeStatus::Pass),
        ("400", ProbeStatus::Fail),
        ("401", ProbeStatus::Fail),
        ("404", ProbeStatus::Fail),
        ("429", ProbeStatus::Fail),
        ("499", ProbeStatus::Fail),
        ("500", ProbeStatus::Fail),
        ("503", ProbeStatus::Fail),
        ("599", ProbeStatus::Fail),
    ];
    for (code, _) in cases {
        health
            .watch(probe(code, addr, &format!("/status/{code}")))
            .unwrap();
    }
    assert_results(&health, &cases).await;
    let worst = health
        .probe(&Track::Canary, &Probe::Readiness)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(worst.status, ProbeStatus::Fail, "{worst:?}");
    for s in health.signals(&Track::Canary).await.unwrap() {
        let detail = s.detail.unwrap_or_default();
        let code = s.instance.unwrap_or_default();
        assert!(
            detail.starts_with(&format!("/status/{code} answered {code}")),
            "{detail}"
        );
    }
}

/// A refused connection fails (the instance does not listen), while a path no request can
/// carry stays unknown: it is the probe's fault, and nothing was asked of the instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_fails_and_an_unsendable_path_is_unknown() {
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let health = HttpHealth::new(Duration::from_secs(10)).unwrap();
    health.watch(probe("refused", refused, "/ready")).unwrap();
    health.watch(probe("bad-path", refused, "ready")).unwrap();
    assert_results(
        &health,
        &[
            ("refused", ProbeStatus::Fail),
            ("bad-path", ProbeStatus::Unknown),
        ],
    )
    .await;
}

/// An instance that accepts the connection and never answers fails once the timeout passes.
#[tokio::test(start_paused = true)]
async fn no_answer_within_the_timeout_fails() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let health = HttpHealth::new(Duration::from_secs(2)).unwrap();
    health.watch(probe("silent", addr, "/ready")).unwrap();
    assert_results(&health, &[("silent", ProbeStatus::Fail)]).await;
    drop(listener);
}
