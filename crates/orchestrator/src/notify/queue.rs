//! The bounded delivery queue of each channel and the task that drains it.
//!
//! `notify` only pushes onto a [`Lane`] (never waits); one task per lane delivers its
//! messages in order, each with its retries, so a slow or failing receiver delays only its
//! own channel. When a lane is full, [`Overflow`] decides which message is dropped, and the
//! drop is counted and logged.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serin_signals::Timestamp;
use tokio::sync::{Notify, watch};

use super::settings::{NotifySettings, Overflow, Secret};
use super::{WallClock, email};
use crate::lock;

/// What was sent where, counted since the notifier was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct DeliveryStats {
    /// Messages accepted onto a queue. One that [`Overflow::DropNewest`] refuses from a full
    /// queue is counted in `dropped` only.
    pub queued: u64,
    /// Messages the receiver accepted.
    pub delivered: u64,
    /// Attempts repeated after a failure that may pass.
    pub retries: u64,
    /// Messages given up on (a permanent failure, or every attempt failed), or lost in
    /// flight when their delivery task's runtime shut down.
    pub failed: u64,
    /// Messages dropped because their queue was full.
    pub dropped: u64,
    /// Messages delivered (and counted in `delivered`) to some of their recipients while
    /// others refused them for good: an e-mail to a mailbox that no longer exists, say. The
    /// refused recipients are logged.
    pub partial: u64,
}

/// What one message carries to its receiver.
pub(super) enum Payload {
    Webhook {
        url: reqwest::Url,
        secret: Secret,
        body: Vec<u8>,
    },
    Slack {
        url: Secret,
        body: Vec<u8>,
    },
    PagerDuty {
        url: reqwest::Url,
        body: Vec<u8>,
    },
    Email {
        mailer: Arc<email::Mailer>,
        message: Box<lettre::Message>,
        recipients: Mutex<email::Recipients>,
    },
    /// A receiver's answers to successive attempts, scripted (then success): the retry
    /// schedule's tests, in paused time.
    #[cfg(test)]
    Scripted(Mutex<VecDeque<Failure>>),
}

/// One message: the event's id (`deployment-seq`) and its payload.
pub(super) struct Job {
    pub(super) id: String,
    pub(super) payload: Payload,
}

/// How an attempt failed.
pub(super) enum Failure {
    /// May pass on retry (timeout, connection, 5xx, 408, 429, transient SMTP reply).
    Transient(String),
    /// May pass on retry, but the receiver asked (`Retry-After` on a 503) to wait this long
    /// first.
    Busy(String, Duration),
    /// The receiver throttles us (429), asking (`Retry-After`) to wait so long, if it says:
    /// retried within [`RetryPolicy::throttled_budget`](super::RetryPolicy::throttled_budget),
    /// not counted against `maxAttempts`.
    Throttled(String, Option<Duration>),
    /// Will not pass (other 4xx, permanent SMTP reply, a bad message, a server certificate
    /// that does not verify).
    Permanent(String),
}

/// One channel's queue.
pub(super) struct Lane {
    label: String,
    queue: Mutex<VecDeque<Job>>,
    wake: Notify,
    closed: AtomicBool,
    /// An e-mail channel's client, kept with its open connection from message to message.
    mailer: Mutex<Option<Arc<email::Mailer>>>,
}

impl Lane {
    pub(super) fn new(label: String) -> Self {
        Lane {
            label,
            queue: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
            mailer: Mutex::new(None),
        }
    }

    /// The lane's mailer, built by `build` the first time and again only when the channel's
    /// password changed (its `secretEnv` variable was rotated).
    pub(super) fn mailer(
        &self,
        password: Option<&Secret>,
        build: impl FnOnce() -> crate::Result<email::Mailer>,
    ) -> crate::Result<Arc<email::Mailer>> {
        let mut slot = lock(&self.mailer);
        match slot.as_ref() {
            Some(m) if m.logs_in_with(password) => Ok(Arc::clone(m)),
            _ => {
                let m = Arc::new(build()?);
                *slot = Some(Arc::clone(&m));
                Ok(m)
            }
        }
    }

    /// Whether the lane was closed (its notifier dropped).
    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Whether messages wait on the lane.
    pub(super) fn has_queued(&self) -> bool {
        !lock(&self.queue).is_empty()
    }

    /// The lane's mailer while it holds a connection open.
    fn open_mailer(&self) -> Option<Arc<email::Mailer>> {
        lock(&self.mailer).as_ref().filter(|m| m.is_open()).cloned()
    }

    /// Lets the task finish what is queued, then stop.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }
}

/// What every lane's task shares: settings, clients, counters.
pub(super) struct Shared {
    pub(super) settings: NotifySettings,
    http: reqwest::Client,
    clock: Mutex<WallClock>,
    queued: AtomicU64,
    delivered: AtomicU64,
    retries: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    partial: AtomicU64,
    /// Messages queued or in flight, over all lanes.
    pending: watch::Sender<u64>,
}

impl Shared {
    pub(super) fn new(settings: NotifySettings, http: reqwest::Client, clock: WallClock) -> Self {
        Shared {
            settings,
            http,
            clock: Mutex::new(clock),
            queued: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            partial: AtomicU64::new(0),
            pending: watch::Sender::new(0),
        }
    }

    pub(super) fn set_clock(&self, clock: WallClock) {
        *lock(&self.clock) = clock;
    }

    pub(super) fn stats(&self) -> DeliveryStats {
        DeliveryStats {
            queued: self.queued.load(Ordering::SeqCst),
            delivered: self.delivered.load(Ordering::SeqCst),
            retries: self.retries.load(Ordering::SeqCst),
            failed: self.failed.load(Ordering::SeqCst),
            dropped: self.dropped.load(Ordering::SeqCst),
            partial: self.partial.load(Ordering::SeqCst),
        }
    }

    /// Waits until nothing is pending or some lane's task ended (its runtime may have shut
    /// down with messages still queued): `true` when nothing is pending.
    pub(super) async fn settled_or_ended(&self, mut rx: watch::Receiver<u64>) -> bool {
        if *rx.borrow_and_update() == 0 {
            return true;
        }
        // The sender lives as long as `self`, so `changed` only fails if `self` is gone.
        let _ = rx.changed().await;
        *rx.borrow() == 0
    }

    /// A view of the pending count, subscribed now.
    pub(super) fn watch_pending(&self) -> watch::Receiver<u64> {
        self.pending.subscribe()
    }

    /// Puts `job` on `lane` without waiting; a full lane drops per [`Overflow`].
    pub(super) fn enqueue(&self, lane: &Lane, job: Job) {
        let (accepted, dropped) = {
            let mut q = lock(&lane.queue);
            if q.len() < self.settings.queue_capacity {
                q.push_back(job);
                self.pending.send_modify(|n| *n += 1);
                (true, None)
            } else {
                match self.settings.overflow {
                    Overflow::DropOldest => {
                        let old = q.pop_front().map(|j| j.id);
                        q.push_back(job);
                        (true, old)
                    }
                    Overflow::DropNewest => (false, Some(job.id)),
                }
            }
        };
        if accepted {
            self.queued.fetch_add(1, Ordering::SeqCst);
        }
        if let Some(id) = dropped {
            self.dropped.fetch_add(1, Ordering::SeqCst);
            tracing::warn!(
                channel = %lane.label,
                event = %id,
                "notification queue full ({} messages): dropped event {id}",
                self.settings.queue_capacity
            );
        }
        lane.wake.notify_one();
    }

    /// Gives up on every message still queued on `lane` (no runtime is left to run its
    /// task), counting each as failed; returns how many.
    pub(super) fn abandon(&self, lane: &Lane) -> usize {
        let lost: Vec<Job> = lock(&lane.queue).drain(..).collect();
        for job in &lost {
            self.failed.fetch_add(1, Ordering::SeqCst);
            self.done();
            tracing::warn!(channel = %lane.label, event = %job.id, "notification not delivered: the runtime of its deliveries has shut down");
        }
        lost.len()
    }

    fn done(&self) {
        self.pending.send_modify(|n| *n = n.saturating_sub(1));
    }

    /// Delivers one job, retrying what may pass, and counts the outcome. Failures count
    /// against `retry.maxAttempts`; 429 answers against `retry.throttledBudget` instead.
    async fn deliver(&self, label: &str, job: &Job) {
        let policy = self.settings.retry;
        let mut attempt = 1;
        let mut failures = 0;
        let mut throttled = 0;
        let mut waited_throttled = Duration::ZERO;
        loop {
            let failures_before = failures;
            let (reason, wait) = match self.attempt(&job.payload).await {
                Ok(()) => {
                    self.delivered.fetch_add(1, Ordering::SeqCst);
                    tracing::debug!(channel = %label, event = %job.id, attempt, "notification delivered");
                    if let Payload::Email { recipients, .. } = &job.payload {
                        let refused = lock(recipients).refused().join("; ");
                        if !refused.is_empty() {
                            self.partial.fetch_add(1, Ordering::SeqCst);
                            tracing::warn!(channel = %label, event = %job.id, attempt, "notification delivered, but not to every recipient (refused, not retried): {refused}");
                        }
                    }
                    return;
                }
                Err(Failure::Permanent(reason)) => {
                    self.failed.fetch_add(1, Ordering::SeqCst);
                    tracing::warn!(channel = %label, event = %job.id, attempt, "notification not delivered (not retried): {reason}");
                    return;
                }
                Err(Failure::Throttled(reason, asked)) => {
                    throttled += 1;
                    match policy.throttled_wait(throttled, asked, waited_throttled) {
                        Some(wait) => {
                            waited_throttled += wait;
                            (reason, wait)
                        }
                        None => {
                            self.failed.fetch_add(1, Ordering::SeqCst);
                            tracing::warn!(channel = %label, event = %job.id, attempt, "notification not delivered: still throttled after waiting {waited_throttled:?} (retry.throttledBudget): {reason}");
                            return;
                        }
                    }
                }
                Err(Failure::Transient(reason)) => {
                    failures += 1;
                    (reason, policy.backoff(failures))
                }
                Err(Failure::Busy(reason, asked)) => {
                    failures += 1;
                    (reason, policy.wait(failures, asked))
                }
            };
            // A 429 leaves `failures` as it was: its budget was checked above.
            if failures >= policy.max_attempts && failures_before < failures {
                self.failed.fetch_add(1, Ordering::SeqCst);
                tracing::warn!(channel = %label, event = %job.id, attempt, "notification not delivered after {attempt} attempt(s): {reason}");
                return;
            }
            tracing::info!(channel = %label, event = %job.id, attempt, "notification attempt failed, retrying in {wait:?}: {reason}");
            self.retries.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn attempt(&self, payload: &Payload) -> Result<(), Failure> {
        let now = (lock(&self.clock))();
        match payload {
            Payload::Webhook { url, secret, body } => {
                super::webhook::send(&self.http, url, secret, body, now).await
            }
            Payload::Slack { url, body } => {
                let url = reqwest::Url::parse(url.expose()).map_err(|_| {
                    Failure::Permanent("the Slack webhook URL does not parse".into())
                })?;
                post_json(&self.http, url, body.clone(), &[], now).await
            }
            Payload::PagerDuty { url, body } => {
                post_json(&self.http, url.clone(), body.clone(), &[], now).await
            }
            Payload::Email {
                mailer,
                message,
                recipients,
            } => mailer.send(message, recipients).await,
            #[cfg(test)]
            Payload::Scripted(answers) => lock(answers).pop_front().map_or(Ok(()), Err),
        }
    }
}

/// POSTs `body` as JSON with `headers`; classifies the outcome (`now` reads a `Retry-After`
/// date). Errors never carry the URL (a Slack URL is itself a secret).
pub(super) async fn post_json(
    http: &reqwest::Client,
    url: reqwest::Url,
    body: Vec<u8>,
    headers: &[(&str, String)],
    now: Timestamp,
) -> Result<(), Failure> {
    let mut req = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    classify(req.send().await, now).await
}

/// How long the receiver asks to be left alone (`Retry-After`: a number of seconds or an HTTP
/// date, from `now`); `None` when it does not say, or says something unreadable.
fn retry_after(headers: &reqwest::header::HeaderMap, now: Timestamp) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = Timestamp::from_system_time(httpdate::parse_http_date(value).ok()?);
    Some(at.saturating_duration_since(now))
}

/// The most of a refusal's body that is read: its reason is cut to 200 characters anyway, and a
/// receiver that streams a long (or endless) body must not hold the delivery until its timeout.
const REFUSAL_BYTES: usize = 4096;

/// The start of a refusal's body, as text.
async fn refusal_text(mut resp: reqwest::Response) -> String {
    let mut body = Vec::new();
    while body.len() < REFUSAL_BYTES {
        match resp.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    body.truncate(REFUSAL_BYTES);
    String::from_utf8_lossy(&body).into_owned()
}

/// Sorts an HTTP outcome into delivered, throttled (429, with the `Retry-After` it asks for,
/// read at `now`), worth retrying (after the `Retry-After` a 503 asks for), or not (a 4xx, a
/// server certificate that does not verify).
pub(super) async fn classify(
    outcome: reqwest::Result<reqwest::Response>,
    now: Timestamp,
) -> Result<(), Failure> {
    match outcome {
        Ok(resp) => {
            let status = resp.status();
            if status.is_success() {
                return Ok(());
            }
            let asked = retry_after(resp.headers(), now);
            let text = refusal_text(resp).await;
            let reason = format!(
                "the receiver answered {status}: {}",
                crate::truncate(text.trim(), 200)
            );
            if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                Err(Failure::Throttled(reason, asked))
            } else if let (reqwest::StatusCode::SERVICE_UNAVAILABLE, Some(asked)) = (status, asked)
            {
                Err(Failure::Busy(reason, asked))
            } else if status.is_server_error() || status == reqwest::StatusCode::REQUEST_TIMEOUT {
                Err(Failure::Transient(reason))
            } else {
                Err(Failure::Permanent(reason))
            }
        }
        Err(e) => {
            let what = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "could not connect"
            } else {
                "failed"
            };
            let why = causes(&e.without_url());
            // A certificate that does not verify (self-signed, expired, for another name)
            // will not verify on the next attempt either.
            if why.contains(UNVERIFIED_CERTIFICATE) {
                return Err(Failure::Permanent(format!(
                    "the receiver's TLS certificate does not verify, which no retry changes: {why}"
                )));
            }
            Err(Failure::Transient(format!("the request {what}: {why}")))
        }
    }
}

/// How rustls, reqwest's TLS, words a server certificate it refused, among the causes of the
/// request's error (reqwest does not expose rustls' error type to match on).
const UNVERIFIED_CERTIFICATE: &str = "invalid peer certificate";

/// `e` and its causes: reqwest's own message (`error sending request`) leaves why to them (a
/// refused connection, a failed name lookup, an expired certificate). None holds the URL, whose
/// path may be a token: `e` is taken [`without_url`](reqwest::Error::without_url).
fn causes(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Marks a taken job finished when dropped, also when its task is cancelled mid-delivery
/// (its runtime shut down): such a job counts as failed, and [`Shared::flush`] does not wait
/// for it forever.
struct Taken<'a> {
    shared: &'a Shared,
    settled: bool,
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.shared.failed.fetch_add(1, Ordering::SeqCst);
        }
        self.shared.done();
    }
}

/// Wakes [`ChannelNotifier::flush`](super::ChannelNotifier::flush) when a lane's task ends,
/// also when its runtime shut down and dropped it, started or not: a flush then looks again
/// at what is left on that lane.
struct Ended(Arc<Shared>);

impl Drop for Ended {
    fn drop(&mut self) {
        self.0.pending.send_modify(|_| {});
    }
}

/// A lane's task: delivers in order until the lane is closed and empty. Between messages it
/// closes an e-mail channel's connection once it has been idle for the mailer's idle timeout.
pub(super) fn work(shared: Arc<Shared>, lane: Arc<Lane>) -> impl Future<Output = ()> + Send {
    // Made before the task first runs, so that a task dropped unstarted signals its end too.
    let ended = Ended(shared);
    async move {
        let shared = &ended.0;
        loop {
            let job = lock(&lane.queue).pop_front();
            match job {
                Some(job) => {
                    let mut taken = Taken {
                        shared,
                        settled: false,
                    };
                    shared.deliver(&lane.label, &job).await;
                    taken.settled = true;
                }
                None if lane.is_closed() => {
                    if let Some(mailer) = lane.open_mailer() {
                        mailer.close().await;
                    }
                    return;
                }
                None => match lane.open_mailer() {
                    Some(mailer) => {
                        tokio::select! {
                            () = lane.wake.notified() => {}
                            () = tokio::time::sleep(mailer.idle_timeout()) => mailer.close().await,
                        }
                    }
                    None => lane.wake.notified().await,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn job(n: usize) -> Job {
        Job {
            id: n.to_string(),
            payload: Payload::PagerDuty {
                url: reqwest::Url::parse("http://127.0.0.1:9/").expect("url"),
                body: Vec::new(),
            },
        }
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_a_date() {
        use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
        let with = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert(RETRY_AFTER, HeaderValue::from_str(value).expect("value"));
            h
        };
        // Sun, 06 Nov 1994 08:49:37 GMT, RFC 9110's example date.
        let date = Timestamp::from_millis(784_111_777_000);
        let now = date.saturating_sub(Duration::from_secs(90));
        assert_eq!(
            retry_after(&with("120"), now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(retry_after(&with(" 7 "), now), Some(Duration::from_secs(7)));
        let at = "Sun, 06 Nov 1994 08:49:37 GMT";
        assert_eq!(retry_after(&with(at), now), Some(Duration::from_secs(90)));
        // A date already past asks for no wait.
        let later = date.saturating_add(Duration::from_secs(5));
        assert_eq!(retry_after(&with(at), later), Some(Duration::ZERO));
        for unreadable in ["-5", "soon", "1.5"] {
            assert_eq!(retry_after(&with(unreadable), now), None, "{unreadable}");
        }
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[tokio::test]
    async fn a_refusal_is_read_as_far_as_its_reason_and_no_further() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // A receiver that declares a gigabyte of error body, sends its reason and then stalls.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let head = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 1000000000\r\n\r\n";
            let reason = format!("overloaded, try later{}", " ".repeat(REFUSAL_BYTES));
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(reason.as_bytes()).await;
            std::future::pending::<()>().await;
        });
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(20))
            .build()
            .unwrap();
        // Reading the whole body would end only at the client's timeout, with no reason at all.
        let outcome = classify(client.get(&url).send().await, Timestamp::EPOCH).await;
        let Err(Failure::Transient(reason)) = outcome else {
            panic!("expected a transient failure");
        };
        assert!(reason.contains("503"), "{reason}");
        assert!(reason.contains("overloaded, try later"), "{reason}");
    }

    #[tokio::test]
    async fn a_failed_request_says_why_and_not_where() {
        // A port nobody listens on: the reason must say the connection was refused, which
        // reqwest's own message ("error sending request") leaves to its causes.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let url = format!("http://{addr}/services/T0/B0/tok3n");
        let outcome = classify(
            reqwest::Client::new().get(&url).send().await,
            Timestamp::EPOCH,
        )
        .await;
        let Err(Failure::Transient(reason)) = outcome else {
            panic!("expected a transient failure");
        };
        assert!(reason.to_lowercase().contains("refused"), "{reason}");
        assert!(!reason.contains("tok3n"), "{reason}");
    }

    /// A self-signed certificate for `localhost` (DER), as a receiver might present by mistake.
    const SELF_SIGNED: &str = concat!(
        "3082019230820138a00302010202146783fc1164e7bc74a8468f3650dcfd75b5ce537b300a06082a8648ce3d04030230",
        "143112301006035504030c096c6f63616c686f73743020170d3236313133303233323134335a180f3231323631313036",
        "3233323134335a30143112301006035504030c096c6f63616c686f73743059301306072a8648ce3d020106082a8648ce",
        "3d03010703420004443bddf47c229114c6a979fb8789c29c11057806b79a2951b5bafa3646a1ad8dc2378de8892a8857",
        "044c66159c06779d44deb9f5baca15decbdf927cec95b139a3663064301d0603551d0e04160414d5421c71866daa3eaf",
        "00b7e937a8bf2ecd6bb5a0301f0603551d23041830168014d5421c71866daa3eaf00b7e937a8bf2ecd6bb5a030140603",
        "551d11040d300b82096c6f63616c686f7374300c0603551d130101ff04023000300a06082a8648ce3d04030203480030",
        "45022100a4f5fdc23cc6c971dfdf9e8e02acfba508bfbe842b2718ce4ad0b25cccc1001802206b59ddc488976a5018c5",
        "3f33ac6cf8b28a57df72aa2f884935ea6857c6cf4459",
    );

    /// A TLS 1.2 handshake message of type `kind` with `body`, in a record of its own.
    fn handshake(kind: u8, body: &[u8]) -> Vec<u8> {
        let len = |n: usize, bytes: usize| n.to_be_bytes()[8 - bytes..].to_vec();
        let mut message = vec![kind];
        message.extend(len(body.len(), 3));
        message.extend_from_slice(body);
        let mut record = vec![22, 3, 3];
        record.extend(len(message.len(), 2));
        record.extend(message);
        record
    }

    #[tokio::test]
    async fn a_certificate_that_does_not_verify_is_not_retried() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // A receiver whose TLS 1.2 handshake presents a self-signed certificate: the client
        // checks it before anything the rest of the handshake would need a real key for.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "https://localhost:{}/hook",
            listener.local_addr().unwrap().port()
        );
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut head = [0u8; 5];
            let _ = stream.read_exact(&mut head).await;
            let mut hello = vec![0u8; usize::from(u16::from_be_bytes([head[3], head[4]]))];
            let _ = stream.read_exact(&mut hello).await;
            // TLS 1.2, a random, no session id, ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, no
            // compression.
            let mut server_hello = vec![3, 3];
            server_hello.extend([7u8; 32]);
            server_hello.extend([0, 0xc0, 0x2b, 0]);
            let der = hex::decode(SELF_SIGNED).unwrap();
            let mut chain = (der.len() + 3).to_be_bytes()[5..].to_vec();
            chain.extend(&der.len().to_be_bytes()[5..]);
            chain.extend(&der);
            // X25519 with a key of zeros, signed (rsa_pss_rsae_sha256) by nothing.
            let mut kx = vec![3, 0, 0x1d, 32];
            kx.extend([0u8; 32]);
            kx.extend([8, 4, 0, 1, 0]);
            let mut flight = handshake(2, &server_hello);
            flight.extend(handshake(11, &chain));
            flight.extend(handshake(12, &kx));
            flight.extend(handshake(14, &[]));
            let _ = stream.write_all(&flight).await;
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest).await;
        });
        let outcome = classify(
            reqwest::Client::new().post(&url).send().await,
            Timestamp::EPOCH,
        )
        .await;
        let Err(Failure::Permanent(reason)) = outcome else {
            panic!("expected a permanent failure");
        };
        assert!(reason.contains("invalid peer certificate"), "{reason}");
    }

    /// Delivers a job whose receiver answers `answers` (then success) with `policy`, in
    /// paused time; returns the stats, the answers left and the time it took.
    async fn scripted(
        policy: crate::notify::RetryPolicy,
        answers: Vec<Failure>,
    ) -> (DeliveryStats, usize, Duration) {
        let settings = NotifySettings {
            retry: policy,
            ..NotifySettings::default()
        };
        let clock: WallClock = Arc::new(|| Timestamp::EPOCH);
        let shared = Shared::new(settings, reqwest::Client::new(), clock);
        let job = Job {
            id: "web-1-0".into(),
            payload: Payload::Scripted(Mutex::new(answers.into())),
        };
        let started = tokio::time::Instant::now();
        shared.deliver("pagerduty `on-call`", &job).await;
        let Payload::Scripted(left) = &job.payload else {
            unreachable!("a scripted job")
        };
        let left = lock(left).len();
        (shared.stats(), left, started.elapsed())
    }

    fn too_many() -> Failure {
        Failure::Throttled("the receiver answered 429 Too Many Requests".into(), None)
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttled_page_waits_minutes_rather_than_being_dropped_in_seconds() {
        // PagerDuty answers 429 four times, with no Retry-After, then takes the page: the
        // ordinary backoff (0.5 + 1 + 2 + 4 s over five attempts) would have given it up.
        let policy = crate::notify::RetryPolicy::default();
        let (stats, left, took) = scripted(policy, (0..4).map(|_| too_many()).collect()).await;
        assert_eq!(left, 0, "every answer was used");
        assert_eq!(
            (stats.delivered, stats.retries, stats.failed),
            (1, 4, 0),
            "{stats:?}"
        );
        assert_eq!(took, Duration::from_secs(60 + 120 + 240 + 180));
        // Throttled for longer than the budget, it is given up, and no sooner.
        let (stats, left, took) = scripted(policy, (0..20).map(|_| too_many()).collect()).await;
        assert_eq!((stats.delivered, stats.failed), (0, 1), "{stats:?}");
        assert_eq!(left, 15, "five attempts: four waits fill the budget");
        assert_eq!(took, policy.throttled_budget);
        // A Retry-After is honoured, beyond maxBackoff.
        let asked = Failure::Throttled("429".into(), Some(Duration::from_secs(90)));
        let (stats, _, took) = scripted(policy, vec![asked]).await;
        assert_eq!(stats.delivered, 1);
        assert_eq!(took, Duration::from_secs(90));
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_does_not_use_up_the_attempts_of_real_failures() {
        let policy = crate::notify::RetryPolicy {
            max_attempts: 2,
            ..crate::notify::RetryPolicy::default()
        };
        let transient = || Failure::Transient("the request could not connect".into());
        // Two 429s and one failure: within both budgets.
        let (stats, _, _) = scripted(policy, vec![too_many(), transient(), too_many()]).await;
        assert_eq!((stats.delivered, stats.failed), (1, 0), "{stats:?}");
        // Two failures use up maxAttempts, 429s or not; a 503's Retry-After stays capped.
        let busy = Failure::Busy("503".into(), Duration::from_secs(3_600));
        let (stats, left, took) = scripted(policy, vec![busy, transient(), transient()]).await;
        assert_eq!(
            (stats.delivered, stats.failed, left),
            (0, 1, 1),
            "{stats:?}"
        );
        assert_eq!(took, policy.max_backoff);
    }

    proptest! {
        #[test]
        fn a_full_lane_keeps_its_bound_and_counts_every_drop(
            capacity in 1usize..6,
            pushes in 0usize..20,
            newest in any::<bool>(),
        ) {
            let settings = NotifySettings {
                queue_capacity: capacity,
                overflow: if newest { Overflow::DropNewest } else { Overflow::DropOldest },
                ..NotifySettings::default()
            };
            let clock: WallClock = Arc::new(|| serin_signals::Timestamp::EPOCH);
            let shared = Shared::new(settings, reqwest::Client::new(), clock);
            let lane = Lane::new("test".into());
            for n in 0..pushes {
                shared.enqueue(&lane, job(n));
            }
            let kept: Vec<String> = lock(&lane.queue).iter().map(|j| j.id.clone()).collect();
            let held = pushes.min(capacity);
            prop_assert_eq!(kept.len(), held);
            let stats = shared.stats();
            // Dropping the oldest accepts every message; dropping the newest refuses those past
            // the bound.
            prop_assert_eq!(stats.queued, if newest { held } else { pushes } as u64);
            prop_assert_eq!(stats.dropped, (pushes - held) as u64);
            prop_assert_eq!(*shared.pending.borrow(), held as u64);
            let want: Vec<String> = if newest {
                (0..held).map(|n| n.to_string()).collect()
            } else {
                (pushes - held..pushes).map(|n| n.to_string()).collect()
            };
            prop_assert_eq!(kept, want);
        }
    }
}
