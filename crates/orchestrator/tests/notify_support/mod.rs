//! A recording HTTP receiver on loopback (it verifies webhook signatures and can answer a
//! scripted sequence of statuses, hang, or wait for a permit) and the settings, channels and
//! events the notification tests share.

pub mod smtp;

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use serin_orchestrator::notify::{
    ChannelNotifier, NotifySettings, RetryPolicy, Secret, verify_signature,
};
use serin_orchestrator::{Event, EventKind, NotificationChannel, Notifier};
use serin_signals::Timestamp;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub const SECRET: &str = "wh-s3cr3t-7f1d";
pub const ROUTING_KEY: &str = "pd-r0ut1ng-k3y-55";
pub const SLACK_TOKEN: &str = "XXslackT0kenXX";

pub fn wall_now() -> Timestamp {
    Timestamp::from_system_time(std::time::SystemTime::now())
}

// ---------------------------------------------------------------------------------------------
// A recording HTTP receiver.

#[derive(Debug, Clone)]
pub struct Request_ {
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: Bytes,
    /// When it arrived.
    pub at: std::time::Instant,
}

impl Request_ {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct ReceiverState {
    /// Every attempt, in arrival order.
    attempts: Vec<Request_>,
    /// Deliveries answered with success (and, for signed receivers, correctly signed).
    accepted: Vec<Request_>,
    /// Statuses to answer before answering `ok`.
    script: VecDeque<u16>,
    /// Requests whose signature did not verify.
    rejected: Vec<String>,
    /// The `Retry-After` header sent with scripted statuses.
    retry_after: Option<String>,
}

#[derive(Clone)]
pub enum Mode {
    /// Answer (after the script) with this success status.
    Answer(u16),
    /// Never answer.
    Hang,
    /// Wait for a permit, then answer 200.
    Gate(Arc<Semaphore>),
}

#[derive(Clone)]
pub struct Receiver {
    addr: SocketAddr,
    state: Arc<Mutex<ReceiverState>>,
}

impl Receiver {
    pub async fn start(mode: Mode, verify_with: Option<&str>, script: &[u16]) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(ReceiverState {
            script: script.iter().copied().collect(),
            ..ReceiverState::default()
        }));
        let secret = verify_with.map(str::to_owned);
        let st = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let st = Arc::clone(&st);
                let mode = mode.clone();
                let secret = secret.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let st = Arc::clone(&st);
                        let mode = mode.clone();
                        let secret = secret.clone();
                        async move { Ok::<_, Infallible>(handle(req, st, mode, secret).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Receiver { addr, state }
    }

    /// Scripted statuses from now on carry `Retry-After: value`.
    pub fn set_retry_after(&self, value: &str) {
        self.state.lock().expect("state").retry_after = Some(value.to_owned());
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn attempts(&self) -> Vec<Request_> {
        self.state.lock().expect("state").attempts.clone()
    }

    pub fn accepted(&self) -> Vec<Request_> {
        self.state.lock().expect("state").accepted.clone()
    }

    pub fn rejected(&self) -> Vec<String> {
        self.state.lock().expect("state").rejected.clone()
    }
}

async fn handle(
    req: Request<Incoming>,
    st: Arc<Mutex<ReceiverState>>,
    mode: Mode,
    secret: Option<String>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect::<BTreeMap<_, _>>();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let r = Request_ {
        path,
        headers,
        body,
        at: std::time::Instant::now(),
    };
    let (scripted, retry_after) = {
        let mut s = st.lock().expect("state");
        s.attempts.push(r.clone());
        (s.script.pop_front(), s.retry_after.clone())
    };
    let reply = |code: u16, text: &str| {
        let mut resp = Response::new(Full::new(Bytes::from(text.to_owned())));
        *resp.status_mut() = StatusCode::from_u16(code).expect("status");
        resp
    };
    if let Some(code) = scripted {
        let mut resp = reply(code, "scripted failure");
        if let Some(value) = retry_after {
            resp.headers_mut().insert(
                hyper::header::RETRY_AFTER,
                value.parse().expect("a header value"),
            );
        }
        return resp;
    }
    if let Some(secret) = secret {
        let ts = r
            .headers
            .get("x-serin-timestamp")
            .cloned()
            .unwrap_or_default();
        let sig = r
            .headers
            .get("x-serin-signature")
            .cloned()
            .unwrap_or_default();
        if let Err(e) = verify_signature(
            secret.as_bytes(),
            &ts,
            &r.body,
            &sig,
            wall_now(),
            Duration::from_secs(300),
        ) {
            st.lock().expect("state").rejected.push(e.to_string());
            return reply(401, "bad signature");
        }
    }
    let code = match mode {
        Mode::Answer(code) => code,
        Mode::Hang => {
            std::future::pending::<()>().await;
            500
        }
        Mode::Gate(gate) => {
            let _permit = gate.acquire().await.expect("gate");
            200
        }
    };
    st.lock().expect("state").accepted.push(r);
    reply(code, "ok")
}

// ---------------------------------------------------------------------------------------------
// Helpers.

pub fn fast_settings() -> NotifySettings {
    NotifySettings {
        request_timeout: Duration::from_secs(2),
        retry: RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            throttled_backoff: Duration::from_millis(50),
            throttled_budget: Duration::from_secs(2),
        },
        webhook_secret: Some(Secret::new(SECRET)),
        ..NotifySettings::default()
    }
}

pub fn env() -> impl Fn(&str) -> Option<String> + Send + Sync + 'static {
    |name: &str| match name {
        "SERIN_WEBHOOK_SECRET" => Some(SECRET.to_owned()),
        "SERIN_PD_KEY" => Some(ROUTING_KEY.to_owned()),
        "SERIN_SMTP_PASSWORD" => Some("smtp-pa55w0rd".to_owned()),
        _ => None,
    }
}

/// A notifier with `settings`, reading secrets from [`env`].
pub fn notifier(settings: NotifySettings) -> ChannelNotifier {
    ChannelNotifier::new(settings)
        .expect("notifier")
        .with_env(env())
}

/// A runtime on the current thread, with time and I/O.
pub fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A runtime with one worker thread, where receivers and deliveries keep real time.
pub fn io_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("io runtime")
}

/// Waits (in real time, for at most five seconds) until `rx` has seen a delivery attempt.
pub async fn until_attempted(rx: &Receiver, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while rx.attempts().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The sequence numbers of the events `rx` accepted, in the order it accepted them.
pub fn accepted_seqs(rx: &Receiver) -> Vec<u64> {
    rx.accepted()
        .iter()
        .map(|r| r.json()["data"]["seq"].as_u64().expect("seq"))
        .collect()
}

/// Notifies one rolled-back event of `web-1` to a webhook at `url`, then flushes.
pub async fn deliver_one(n: &ChannelNotifier, url: &str) {
    n.notify(&webhook(url), &event("web-1", 0, rolled_back()))
        .await
        .expect("queued");
    flush(n).await;
}

pub fn channel(json: &str) -> NotificationChannel {
    serde_json::from_str(json).expect("channel")
}

pub fn webhook(url: &str) -> NotificationChannel {
    channel(&format!(
        r#"{{"type":"webhook","destination":"{url}","secretEnv":"SERIN_WEBHOOK_SECRET"}}"#
    ))
}

pub fn event(deployment: &str, seq: u64, kind: EventKind) -> Event {
    Event {
        deployment: deployment.to_owned(),
        service: "web".to_owned(),
        seq,
        at: Timestamp::from_millis(1_700_000_000_000 + seq * 1_000),
        kind,
    }
}

pub fn rolled_back() -> EventKind {
    EventKind::RolledBack {
        reason: "error_rate on canary 9.8% > 5%".into(),
    }
}

pub async fn flush(n: &ChannelNotifier) {
    tokio::time::timeout(Duration::from_secs(20), n.flush())
        .await
        .expect("the queues drain");
}
