//! Real notification channels (feature `notify`): signed webhooks, Slack, PagerDuty and SMTP
//! e-mail, behind one [`ChannelNotifier`] that implements [`Notifier`].
//!
//! The orchestrator awaits [`Notifier::notify_in`] inline while it emits an event, so a
//! receiver must never be able to hold up a rollback. [`ChannelNotifier::notify_in`] (and
//! `notify`, which calls it) therefore only checks the channel, renders the message and puts
//! it on that channel's bounded queue; a background task per channel delivers it, with
//! retries and exponential backoff, in order. A full queue drops a message ([`Overflow`]) and
//! counts it ([`DeliveryStats::dropped`]) instead of waiting.
//!
//! The queues live in memory only. Across a crash, delivery is at most once, except for the
//! events of the deployment's last journal record, which
//! [`Orchestrator::resume`](crate::Orchestrator::resume) announces again (a receiver may get
//! those twice, with the same id): messages still queued or waiting for a retry when the process
//! died are lost. The deployment's report, read from the journal, keeps every event.
//!
//! | `type` | `destination` | secret (`secretEnv`, or the [`NotifySettings`] default) |
//! |---|---|---|
//! | `webhook` | the receiver's `http(s)` URL | the HMAC-SHA256 signing secret (required) |
//! | `slack` | a channel name (`#deploys`), or the incoming-webhook URL itself (then it is in the journalled config: prefer `secretEnv`) | the incoming-webhook URL |
//! | `pagerduty` | the Events API v2 URL, or a label (then [`NotifySettings::pagerduty_events_url`]); a bare host name is refused, not taken for a label | the integration's routing key |
//! | `email` | recipients, comma-separated | the SMTP password ([`SmtpSettings`]) |
//!
//! Each message names where the deployment runs, from the [`NotifyContext`] the orchestrator
//! passes to [`Notifier::notify_in`] (the config's `environment` and `namespace`), so a reader
//! tells `prod` from `staging` at a glance: the webhook's CloudEvents extension attributes
//! [`serinenvironment`](ENVIRONMENT_ATTRIBUTE) and [`serinnamespace`](NAMESPACE_ATTRIBUTE),
//! Slack's header (`prod/web: rolled back`), fallback text and context line, PagerDuty's
//! summary, `payload.group` and `custom_details`, and the e-mail's subject
//! (`[serin] prod/web: ...`) and body. A deployment that names neither gets the messages it
//! always got.
//!
//! PagerDuty gets only what opens or closes the deployment's alerts: a failure
//! (`critical`), a blocked upgrade, a trigger firing for a rollback and the rollback (`error`),
//! an anomaly at its own severity (`critical`, `error`, else `warning`: a trigger's `warn` or
//! `hold` included); completion resolves them. Each severity is an alert of its own (its own
//! `dedup_key`), so that a rollback after a warning, or a failure after an acknowledged
//! rollback, pages anew rather than add a line to the earlier alert (see the `pagerduty`
//! module). An `info` anomaly pages nobody: every `trigger` notifies the on-call at the
//! service's urgency, whatever its severity, and an observation the canary could not use is
//! no incident. The other channels get it.
//!
//! A URL is written whole, `https://` included: a destination that looks like a URL without
//! its scheme (`hooks.slack.com/services/...`) is refused, not taken for a channel name or a
//! label, which would post its token as a Slack channel's name or page through the default
//! endpoint.
//!
//! Secrets are held in [`Secret`], whose `Debug` and `Display` print `***`; error messages
//! and logs name the channel and the environment variable, never the value. Only the
//! protocol that needs a secret sees it (PagerDuty's body carries its routing key; a webhook
//! receives a signature, never the secret).
//!
//! ```no_run
//! use std::sync::Arc;
//! use serin_orchestrator::notify::{ChannelNotifier, NotifySettings, Secret};
//!
//! # fn main() -> serin_orchestrator::Result<()> {
//! let mut settings = NotifySettings::default();
//! settings.webhook_secret = Some(Secret::new("shared-with-the-receiver"));
//! let notifier = Arc::new(ChannelNotifier::new(settings)?);
//! // Orchestrator::builder(platform, journal).notifier(notifier.clone()) ...
//! # let _ = notifier;
//! # Ok(())
//! # }
//! ```

mod email;
mod pagerduty;
mod queue;
mod settings;
mod slack;
mod webhook;

#[cfg(any(feature = "testkit", test))]
pub mod testkit;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serin_signals::Timestamp;

use crate::config::{ChannelKind, NotificationChannel};
use crate::error::{Error, Result};
use crate::event::{Event, EventKind};
use crate::hooks::Notifier;
use crate::lock;

use crate::hooks::NotifyContext;
pub use queue::DeliveryStats;
pub use settings::{NotifySettings, Overflow, RetryPolicy, Secret, SmtpSettings, StartTls};
pub use webhook::{
    ENVIRONMENT_ATTRIBUTE, NAMESPACE_ATTRIBUTE, SIGNATURE_HEADER, TIMESTAMP_HEADER, cloud_event,
    cloud_event_in, signature, verify_signature,
};

use queue::{Job, Lane, Payload, Shared};

/// The event's type as its JSON names it (`started`, `phaseChanged`, `rolledBack`, ...): the
/// suffix of the CloudEvents `type` and the `class` of a PagerDuty event.
pub fn event_type(kind: &EventKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Reads an environment variable named by a channel's `secretEnv`.
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Reads the wall clock for webhook signature timestamps (receivers compare them with theirs).
pub type WallClock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// A [`Notifier`] that delivers to real channels, dispatching on [`ChannelKind`].
///
/// Each distinct channel (kind, destination, `secretEnv`) gets its own bounded queue and
/// delivery task, started on first use on the current tokio runtime (or the one given to
/// [`on_runtime`](Self::on_runtime)), so a slow webhook never delays a page; if that runtime
/// shuts down, the next `notify` starts the task again on its own runtime. Dropping the
/// notifier lets each task finish what is queued and stop.
pub struct ChannelNotifier {
    shared: Arc<Shared>,
    env: EnvLookup,
    runtime: Option<tokio::runtime::Handle>,
    lanes: Mutex<BTreeMap<String, Running>>,
}

/// A channel's lane and the task delivering from it.
type Running = (Arc<Lane>, tokio::task::JoinHandle<()>);

impl fmt::Debug for ChannelNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelNotifier")
            .field("settings", &self.shared.settings)
            .field("channels", &lock(&self.lanes).len())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl ChannelNotifier {
    /// A notifier with validated `settings`, reading `secretEnv` variables from the process
    /// environment and signing with the wall clock.
    pub fn new(settings: NotifySettings) -> Result<Self> {
        settings.validate()?;
        let http = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("serin-orchestrator/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::backend("notifier", "http client", e.without_url()))?;
        let clock: WallClock =
            Arc::new(|| Timestamp::from_system_time(std::time::SystemTime::now()));
        Ok(ChannelNotifier {
            shared: Arc::new(Shared::new(settings, http, clock)),
            env: Arc::new(|name| std::env::var(name).ok()),
            runtime: None,
            lanes: Mutex::new(BTreeMap::new()),
        })
    }

    /// Reads `secretEnv` variables through `lookup` instead of the process environment (a
    /// secret store, or a test's map).
    pub fn with_env(
        mut self,
        lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.env = Arc::new(lookup);
        self
    }

    /// Signs webhook deliveries with timestamps from `clock` instead of the wall clock.
    pub fn with_clock(self, clock: impl Fn() -> Timestamp + Send + Sync + 'static) -> Self {
        self.shared.set_clock(Arc::new(clock));
        self
    }

    /// Runs the delivery tasks on `runtime` instead of the runtime that first calls
    /// [`notify`](Notifier::notify) (useful when the orchestrator runs in paused time: the
    /// deliveries then keep real time).
    pub fn on_runtime(mut self, runtime: tokio::runtime::Handle) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// The settings, secrets masked in `Debug`.
    pub fn settings(&self) -> &NotifySettings {
        &self.shared.settings
    }

    /// Counts of what was queued, delivered, retried, dropped and given up on.
    pub fn stats(&self) -> DeliveryStats {
        self.shared.stats()
    }

    /// Waits until every queued message was delivered, given up on or dropped.
    ///
    /// Messages left queued by a runtime that shut down are delivered by a task started
    /// again on the current runtime; when the runtime given to
    /// [`on_runtime`](Self::on_runtime) has shut down, nothing can deliver them, so they are
    /// given up on (counted in [`DeliveryStats::failed`] and logged) and `flush` returns
    /// rather than wait for ever.
    pub async fn flush(&self) {
        loop {
            let pending = self.shared.watch_pending();
            self.restart_ended_lanes();
            if self.shared.settled_or_ended(pending).await {
                return;
            }
        }
    }

    /// Checks every channel as [`notify`](Notifier::notify) would (destination, secret,
    /// settings for its kind) without sending anything; errors name
    /// `notificationChannels[i].field`.
    pub fn check_channels(&self, channels: &[NotificationChannel]) -> Result<()> {
        for (i, ch) in channels.iter().enumerate() {
            let path = format!("notificationChannels[{i}]");
            if let Target::Email { password, .. } = self.target(ch, &path)? {
                // Sets up TLS for the server, as the first message to the channel will.
                self.mailer(password)?;
            }
        }
        Ok(())
    }

    /// Resolves where and how `channel` delivers: its URL or recipients and its secret.
    fn target(&self, channel: &NotificationChannel, path: &str) -> Result<Target> {
        let settings = &self.shared.settings;
        let dest = channel.destination.trim();
        match channel.kind {
            ChannelKind::Webhook => {
                let url = http_url(&format!("{path}.destination"), dest)?;
                let secret = self
                    .secret(channel, path, settings.webhook_secret.as_ref())?
                    .ok_or_else(|| {
                        Error::invalid(
                            format!("{path}.secretEnv"),
                            "(none)",
                            "a webhook is signed: name the variable holding its secret, or set notifySettings.webhookSecret",
                        )
                    })?;
                Ok(Target::Webhook { url, secret })
            }
            ChannelKind::Slack => {
                if !is_url(dest) {
                    refuse_url_as_name(&format!("{path}.destination"), dest)?;
                }
                // A destination that is the webhook URL itself names where this channel posts:
                // the settings' default URL is for channels that give only a channel name.
                let fallback = if is_url(dest) {
                    None
                } else {
                    settings.slack_webhook_url.as_ref()
                };
                let secret = self.secret(channel, path, fallback)?;
                let (url, name) = match secret {
                    Some(s) => {
                        let url =
                            http_url(&format!("{path}.secretEnv"), s.expose()).map_err(|_| {
                                Error::invalid(
                                    format!("{path}.secretEnv"),
                                    channel
                                        .secret_env
                                        .as_deref()
                                        .unwrap_or("notifySettings.slackWebhookUrl"),
                                    "must hold the incoming webhook's http(s) URL",
                                )
                            })?;
                        let name = (!is_url(dest)).then(|| dest.to_owned());
                        (Secret::new(url.to_string()), name)
                    }
                    None if is_url(dest) => {
                        let url = http_url(&format!("{path}.destination"), dest)?;
                        (Secret::new(url.to_string()), None)
                    }
                    None => {
                        return Err(Error::invalid(
                            format!("{path}.secretEnv"),
                            "(none)",
                            "a Slack channel needs its incoming-webhook URL: in the variable named here, in notifySettings.slackWebhookUrl, or as the destination",
                        ));
                    }
                };
                Ok(Target::Slack { url, channel: name })
            }
            ChannelKind::Pagerduty => {
                let url = if is_url(dest) {
                    http_url(&format!("{path}.destination"), dest)?
                } else {
                    refuse_url_as_name(&format!("{path}.destination"), dest)?;
                    http_url(
                        "notifySettings.pagerdutyEventsUrl",
                        &settings.pagerduty_events_url,
                    )?
                };
                let key = self
                    .secret(channel, path, settings.pagerduty_routing_key.as_ref())?
                    .ok_or_else(|| {
                        Error::invalid(
                            format!("{path}.secretEnv"),
                            "(none)",
                            "PagerDuty needs the integration's routing key: name the variable holding it, or set notifySettings.pagerdutyRoutingKey",
                        )
                    })?;
                Ok(Target::PagerDuty { url, key })
            }
            ChannelKind::Email => {
                let smtp = settings.smtp.as_ref().ok_or_else(|| {
                    Error::invalid(
                        "notifySettings.smtp",
                        "(none)",
                        format!("{path} is an email channel: configure the SMTP server"),
                    )
                })?;
                let to = email::recipients(&format!("{path}.destination"), dest)?;
                let password = self.secret(channel, path, smtp.password.as_ref())?;
                // A login needs both halves: without this check a username would log in with
                // an empty password, and a channel's password without a user would go unused.
                match (&smtp.username, &password, &channel.secret_env) {
                    (Some(_), None, _) => {
                        return Err(Error::invalid(
                            format!("{path}.secretEnv"),
                            "(none)",
                            "notifySettings.smtp.username is set: name the variable holding the SMTP password, or set notifySettings.smtp.password",
                        ));
                    }
                    (None, Some(_), Some(name)) => {
                        return Err(Error::invalid(
                            format!("{path}.secretEnv"),
                            name,
                            "holds an SMTP password, but notifySettings.smtp.username is not set: name the user it logs in as",
                        ));
                    }
                    _ => {}
                }
                Ok(Target::Email { password, to })
            }
        }
    }

    /// The e-mail client of the configured SMTP server, logging in with `password`.
    fn mailer(&self, password: Option<Secret>) -> Result<email::Mailer> {
        let settings = &self.shared.settings;
        let smtp = settings.smtp.as_ref().ok_or_else(|| {
            Error::invalid(
                "notifySettings.smtp",
                "(none)",
                "an email channel needs the SMTP server",
            )
        })?;
        email::Mailer::new(smtp, password, settings.request_timeout)
    }

    /// Queues `payload`, the message of `event`, on `lane`.
    fn enqueue(&self, lane: &Lane, event: &Event, payload: Payload) {
        self.shared.enqueue(
            lane,
            Job {
                id: format!("{}-{}", event.deployment, event.seq),
                payload,
            },
        );
    }

    /// The channel's secret: from the variable its `secretEnv` names, else `fallback`.
    fn secret(
        &self,
        channel: &NotificationChannel,
        path: &str,
        fallback: Option<&Secret>,
    ) -> Result<Option<Secret>> {
        match &channel.secret_env {
            Some(name) => match (self.env)(name) {
                Some(v) if !v.trim().is_empty() => Ok(Some(Secret::new(v))),
                _ => Err(Error::invalid(
                    format!("{path}.secretEnv"),
                    name,
                    "names an environment variable that is not set or is empty",
                )),
            },
            None => Ok(fallback.cloned()),
        }
    }

    /// The lane of channel `key`, with a delivery task running for it. A task that ended
    /// while the notifier lives (its runtime shut down) is started again on the current
    /// runtime, so what is queued is still delivered; on the runtime given to
    /// [`on_runtime`](Self::on_runtime), if that one is alive.
    fn lane(&self, key: &str, label: &str) -> Result<Arc<Lane>> {
        let mut lanes = lock(&self.lanes);
        let existing = match lanes.get(key) {
            Some((lane, task)) if !task.is_finished() => return Ok(Arc::clone(lane)),
            Some((lane, _)) => Some(Arc::clone(lane)),
            None => None,
        };
        let lane = existing.unwrap_or_else(|| Arc::new(Lane::new(label.to_owned())));
        match self.start(&lane) {
            Started::Running(task) => {
                lanes.insert(key.to_owned(), (Arc::clone(&lane), task));
                Ok(lane)
            }
            Started::NoRuntime => Err(Error::backend(
                "notifier",
                label,
                "no tokio runtime to run deliveries on: call notify from a runtime or use on_runtime",
            )),
            Started::RuntimeGone => {
                let lost = self.shared.abandon(&lane);
                Err(Error::backend(
                    "notifier",
                    label,
                    format!(
                        "the runtime that runs its deliveries has shut down: this event is not sent, and {lost} queued message(s) were given up; give on_runtime a runtime that outlives the notifier"
                    ),
                ))
            }
        }
    }

    /// Starts `lane`'s delivery task on the runtime given to [`on_runtime`](Self::on_runtime),
    /// else on the current one.
    fn start(&self, lane: &Arc<Lane>) -> Started {
        let runtime = match &self.runtime {
            Some(h) => h.clone(),
            None => match tokio::runtime::Handle::try_current() {
                Ok(h) => h,
                Err(_) => return Started::NoRuntime,
            },
        };
        let task = runtime.spawn(queue::work(Arc::clone(&self.shared), Arc::clone(lane)));
        // A runtime that has shut down drops a new task at once, unstarted; on a live one the
        // task runs until its lane is closed, which only dropping the notifier does.
        if task.is_finished() {
            Started::RuntimeGone
        } else {
            Started::Running(task)
        }
    }

    /// Restarts the task of each lane that still holds messages but whose task ended (its
    /// runtime shut down), or gives those messages up when no runtime is left to run it.
    fn restart_ended_lanes(&self) {
        let mut lanes = lock(&self.lanes);
        for (lane, task) in lanes.values_mut() {
            if !task.is_finished() || lane.is_closed() || !lane.has_queued() {
                continue;
            }
            match self.start(lane) {
                Started::Running(t) => *task = t,
                Started::NoRuntime | Started::RuntimeGone => {
                    self.shared.abandon(lane);
                }
            }
        }
    }
}

/// How starting a lane's task went.
enum Started {
    Running(tokio::task::JoinHandle<()>),
    /// Neither [`ChannelNotifier::on_runtime`] nor a current runtime.
    NoRuntime,
    /// The runtime has shut down.
    RuntimeGone,
}

impl Drop for ChannelNotifier {
    fn drop(&mut self) {
        for (lane, _) in lock(&self.lanes).values() {
            lane.close();
        }
    }
}

#[async_trait]
impl Notifier for ChannelNotifier {
    /// Delivers as [`notify_in`](Notifier::notify_in) does, in a context that names no
    /// environment or namespace.
    async fn notify(&self, channel: &NotificationChannel, event: &Event) -> Result<()> {
        self.notify_in(&NotifyContext::default(), channel, event)
            .await
    }

    /// Renders `event` for `channel`, naming the environment and namespace of `ctx` where the
    /// channel's readers look first (see the [module docs](crate::notify)), and queues it.
    async fn notify_in(
        &self,
        ctx: &NotifyContext,
        channel: &NotificationChannel,
        event: &Event,
    ) -> Result<()> {
        let label = label(channel);
        let path = format!("notificationChannel({label})");
        let target = self.target(channel, &path)?;
        let settings = &self.shared.settings;
        let key = lane_key(channel);
        let payload = match target {
            Target::Webhook { url, secret } => Payload::Webhook {
                url,
                secret,
                body: webhook::body(&settings.source, ctx, event)?,
            },
            Target::Slack { url, channel } => Payload::Slack {
                url,
                body: slack::body(event, ctx, channel.as_deref())?,
            },
            Target::PagerDuty {
                url,
                key: routing_key,
            } => {
                // PagerDuty is for incidents: starts, phase changes and `info` anomalies open
                // none and send nothing; the end of a deployment sends a body per alert it
                // resolves, each a message of its own.
                let bodies = pagerduty::bodies(event, ctx, &routing_key)?;
                if bodies.is_empty() {
                    return Ok(());
                }
                let lane = self.lane(&key, &label)?;
                for body in bodies {
                    let url = url.clone();
                    self.enqueue(&lane, event, Payload::PagerDuty { url, body });
                }
                return Ok(());
            }
            Target::Email { password, to } => {
                let from = settings
                    .smtp
                    .as_ref()
                    .map(|s| s.from.as_str())
                    .unwrap_or_default();
                let message = Box::new(email::message(from, &to, ctx, event)?);
                // The channel's client lives with its lane, so its connection serves the
                // channel's later messages too.
                let lane = self.lane(&key, &label)?;
                let mailer = lane.mailer(password.as_ref(), || self.mailer(password.clone()))?;
                let recipients = email::Recipients::of(&message);
                self.enqueue(
                    &lane,
                    event,
                    Payload::Email {
                        mailer,
                        message,
                        recipients,
                    },
                );
                return Ok(());
            }
        };
        let lane = self.lane(&key, &label)?;
        self.enqueue(&lane, event, payload);
        Ok(())
    }
}

enum Target {
    Webhook {
        url: reqwest::Url,
        secret: Secret,
    },
    Slack {
        url: Secret,
        channel: Option<String>,
    },
    PagerDuty {
        url: reqwest::Url,
        key: Secret,
    },
    Email {
        password: Option<Secret>,
        to: Vec<lettre::message::Mailbox>,
    },
}

fn kind_name(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Email => "email",
        ChannelKind::Slack => "slack",
        ChannelKind::Pagerduty => "pagerduty",
        ChannelKind::Webhook => "webhook",
    }
}

/// How logs and errors name a channel: its kind and
/// [redacted destination](NotificationChannel::redacted_destination), and the `secretEnv` it
/// reads, if any. Channels with one destination and different variables (one channel name in
/// two Slack workspaces) deliver apart, each on its own queue, and fail apart: the variable's
/// name, never its value, tells which one a failure is about.
fn label(channel: &NotificationChannel) -> String {
    let shown = format!(
        "{} `{}`",
        kind_name(channel.kind),
        channel.redacted_destination()
    );
    match &channel.secret_env {
        Some(name) => format!("{shown} (secretEnv {name})"),
        None => shown,
    }
}

/// Whether `s` is an `http(s)` URL rather than a name; the scheme is case-insensitive, as URL
/// parsing treats it.
fn is_url(s: &str) -> bool {
    s.split_once("://").is_some_and(|(scheme, _)| {
        scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")
    })
}

/// Parses an `http(s)` URL; the error names `field` and never repeats a URL that may hold a
/// token, only its scheme and host.
/// The delivery queue of `channel`: one per receiver, so that its messages arrive in the order
/// of their events. The destination is taken trimmed, as delivery takes it: two entries that
/// differ only by padding reach the same receiver and must share its queue.
fn lane_key(channel: &NotificationChannel) -> String {
    format!(
        "{}|{}|{}",
        kind_name(channel.kind),
        channel.destination.trim(),
        channel.secret_env.as_deref().unwrap_or_default()
    )
}

/// Checks what a channel's destination can be judged on alone, before any secret or setting
/// is read: a webhook's URL, a Slack or PagerDuty URL (or a label that is in fact one), e-mail
/// addresses. A config is checked so when it is loaded: a destination that fails here would
/// fail every message sent to it, and only the logs would say so.
pub(crate) fn check_destination(kind: ChannelKind, path: &str, destination: &str) -> Result<()> {
    let field = format!("{path}.destination");
    let dest = destination.trim();
    match kind {
        ChannelKind::Webhook => http_url(&field, dest).map(drop),
        ChannelKind::Slack | ChannelKind::Pagerduty if is_url(dest) => {
            http_url(&field, dest).map(drop)
        }
        ChannelKind::Slack | ChannelKind::Pagerduty => refuse_url_as_name(&field, dest),
        ChannelKind::Email => email::recipients(&field, dest).map(drop),
    }
}

fn http_url(field: &str, value: &str) -> Result<reqwest::Url> {
    let url = match reqwest::Url::parse(value) {
        Ok(url) => url,
        Err(_) if is_schemeless_url(value) => return Err(schemeless(field, value)),
        Err(e) => {
            return Err(Error::invalid(
                field,
                redact_url(value),
                format!("is not a URL: {e}"),
            ));
        }
    };
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(Error::invalid(
            field,
            redact_url(value),
            "must be an http:// or https:// URL with a host",
        ));
    }
    Ok(url)
}

/// Refuses a channel name or label (a Slack channel, a PagerDuty service) that is in fact a
/// URL: one with another scheme than `http(s)`, or one whose scheme was left off
/// (`hooks.slack.com/services/...`). Taken for a name, the first would post to the default
/// webhook with its token as the channel name, the second page through the default endpoint.
///
/// A bare host name (`events.eu.pagerduty.com`, `localhost:8080`) is refused as well: it names
/// a server, not a label, and taken for a label it would page through the default endpoint (in
/// another region, perhaps) rather than the one it names. Guessing the URL's path instead would
/// guess wrong for any server but PagerDuty's own.
fn refuse_url_as_name(field: &str, value: &str) -> Result<()> {
    let lower = value.to_ascii_lowercase();
    if value.contains("://") {
        http_url(field, value).map(drop)
    } else if lower.starts_with("http:") || lower.starts_with("https:") {
        // `https:/hooks.slack.com/...`: a URL with a slash lost, not a name.
        Err(Error::invalid(
            field,
            redact_url(value),
            "is a URL missing the `//` after its scheme: write it whole (https://...)",
        ))
    } else if is_schemeless_url(value) {
        Err(schemeless(field, value))
    } else if is_host(value) && value.contains(['.', ':']) {
        Err(Error::invalid(
            field,
            value,
            "is a host name, not a name or label: write the whole URL, with https:// and its path (https://events.eu.pagerduty.com/v2/enqueue), or give a name without dots",
        ))
    } else {
        Ok(())
    }
}

fn schemeless(field: &str, value: &str) -> Error {
    Error::invalid(
        field,
        crate::config::redact_url(value),
        "looks like a URL without its scheme: write it whole, with https:// (or http://), or give a name without `/` or `?`",
    )
}

/// Whether `s` is a host name (with a dot, or `localhost`), an optional port, then a path or
/// query: a URL written without its scheme.
fn is_schemeless_url(s: &str) -> bool {
    if s.contains("://") {
        return false;
    }
    // `\` ends the host too, as in a URL with its scheme (see `redact_url`).
    let Some(end) = s.find(['/', '?', '\\']) else {
        return false;
    };
    is_host(&s[..end])
}

/// Whether `authority` is a host name (with a dot, or `localhost`) and an optional port.
fn is_host(authority: &str) -> bool {
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    };
    host.eq_ignore_ascii_case("localhost")
        || (host.contains('.')
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }))
}

/// The scheme and host of a URL, the rest masked (paths and queries of webhook URLs often
/// carry tokens); a value that is not a URL at all is masked whole.
fn redact_url(value: &str) -> String {
    if value.contains("://") {
        crate::config::redact_url(value)
    } else {
        "***".to_owned()
    }
}

/// The environment `ctx` names, if any (a blank name is none).
fn environment(ctx: &NotifyContext) -> Option<&str> {
    ctx.environment.as_deref().filter(|s| !s.trim().is_empty())
}

/// The namespace `ctx` names, if any (a blank name is none).
fn namespace(ctx: &NotifyContext) -> Option<&str> {
    ctx.namespace.as_deref().filter(|s| !s.trim().is_empty())
}

/// What a subject, a header or a summary says an event is about: `{environment}/{service}`
/// (`prod/web`), or the service alone when no environment is named.
fn scope(ctx: &NotifyContext, service: &str) -> String {
    match environment(ctx) {
        Some(env) => format!("{env}/{service}"),
        None => service.to_owned(),
    }
}

/// The evidence lines of an event: the decision's judges, the trigger's reading.
fn evidence(kind: &EventKind) -> Vec<String> {
    match kind {
        EventKind::AnalysisResult { decision } => decision
            .evidence
            .iter()
            .map(|e| e.summary.clone())
            .collect(),
        EventKind::TriggerFired { event } => vec![event.evidence.to_string()],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_are_the_json_tags() {
        assert_eq!(
            event_type(&EventKind::RolledBack { reason: "x".into() }),
            "rolledBack"
        );
        assert_eq!(event_type(&EventKind::Paused), "paused");
    }

    fn ch(json: &str) -> NotificationChannel {
        serde_json::from_str(json).expect("channel")
    }

    #[test]
    fn entries_that_differ_only_by_padding_share_their_receiver_s_queue() {
        let padded = ch(r##"{"type":"slack","destination":" #deploys ","events":["started"]}"##);
        let plain = ch(r##"{"type":"slack","destination":"#deploys","events":["failed"]}"##);
        assert_eq!(lane_key(&padded), lane_key(&plain));
        let other = ch(r##"{"type":"slack","destination":"#deploys","secretEnv":"TEAM_B"}"##);
        assert_ne!(lane_key(&other), lane_key(&plain));
    }

    #[test]
    fn a_slack_destination_url_is_where_the_channel_posts() {
        let settings = NotifySettings {
            slack_webhook_url: Some(Secret::new("https://hooks.example/T/B/default")),
            ..NotifySettings::default()
        };
        let n = ChannelNotifier::new(settings).expect("notifier");
        let url = |json: &str| match n.target(&ch(json), "p").expect("target") {
            Target::Slack { url, .. } => url.expose().to_owned(),
            _ => panic!("not a Slack target"),
        };
        assert_eq!(
            url(r#"{"type":"slack","destination":"https://hooks.example/T/B/own"}"#),
            "https://hooks.example/T/B/own"
        );
        assert_eq!(
            url(r##"{"type":"slack","destination":"#deploys"}"##),
            "https://hooks.example/T/B/default"
        );
    }

    #[test]
    fn url_schemes_are_case_insensitive_and_webhook_labels_never_show_a_path() {
        for json in [
            r#"{"type":"webhook","destination":"HTTPS://hooks.example/T/B/tok3n"}"#,
            r#"{"type":"webhook","destination":"hooks.example/T/B/tok3n"}"#,
            r#"{"type":"slack","destination":"Https://hooks.example/T/B/tok3n"}"#,
        ] {
            let shown = label(&ch(json));
            assert!(!shown.contains("tok3n"), "{json}: {shown}");
        }
        assert_eq!(
            label(&ch(r##"{"type":"slack","destination":"#deploys"}"##)),
            "slack `#deploys`"
        );
        let settings = NotifySettings {
            pagerduty_routing_key: Some(Secret::new("key")),
            ..NotifySettings::default()
        };
        let n = ChannelNotifier::new(settings).expect("notifier");
        let eu =
            r#"{"type":"pagerduty","destination":"HTTPS://events.eu.pagerduty.com/v2/enqueue"}"#;
        match n.target(&ch(eu), "p").expect("target") {
            Target::PagerDuty { url, .. } => {
                assert_eq!(url.host_str(), Some("events.eu.pagerduty.com"));
            }
            _ => panic!("not a PagerDuty target"),
        }
        let slack = r#"{"type":"slack","destination":"HTTPS://hooks.example/T/B/tok3n"}"#;
        assert!(matches!(
            n.target(&ch(slack), "p")
                .expect("a URL destination needs no default"),
            Target::Slack { channel: None, .. }
        ));
    }

    #[test]
    fn an_smtp_login_needs_both_its_user_and_its_password() {
        let smtp = |username: Option<&str>| {
            let mut smtp = SmtpSettings::new("127.0.0.1", 2525, "serin@example.org");
            smtp.starttls = StartTls::None;
            smtp.username = username.map(str::to_owned);
            smtp
        };
        let notifier = |username: Option<&str>| {
            ChannelNotifier::new(NotifySettings {
                smtp: Some(smtp(username)),
                ..NotifySettings::default()
            })
            .expect("notifier")
            .with_env(|name| (name == "SMTP_PW").then(|| "pw".to_owned()))
        };
        let plain = ch(r#"{"type":"email","destination":"ops@example.org"}"#);
        let with_pw =
            ch(r#"{"type":"email","destination":"ops@example.org","secretEnv":"SMTP_PW"}"#);
        let e = notifier(Some("serin"))
            .check_channels(std::slice::from_ref(&plain))
            .expect_err("a user without a password")
            .to_string();
        assert!(
            e.contains("notificationChannels[0].secretEnv") && e.contains("smtp.password"),
            "{e}"
        );
        let e = notifier(None)
            .check_channels(std::slice::from_ref(&with_pw))
            .expect_err("a password without a user")
            .to_string();
        assert!(e.contains("SMTP_PW") && e.contains("smtp.username"), "{e}");
        notifier(Some("serin"))
            .check_channels(&[with_pw])
            .expect("user and password");
        notifier(None).check_channels(&[plain]).expect("no login");
    }

    #[test]
    fn urls_without_their_scheme_are_told_from_names() {
        for url in [
            "hooks.slack.com/services/T0/B0/x",
            "HOOKS.Slack.com/x",
            "events.eu.pagerduty.com/v2/enqueue",
            "hooks.example.org:8443/h",
            "hooks.example.org?token=x",
            "localhost:8080/hook",
            r"hooks.slack.com\services\T0\B0\x",
        ] {
            assert!(is_schemeless_url(url), "{url}");
        }
        for name in [
            "#deploys",
            "deploys",
            "C024BE91L",
            "@oncall.web",
            "web on-call",
            "api.web team",
            "ops@example.org",
            "#team/web",
            "https://hooks.example.org/h",
            "a..b/c",
            "",
        ] {
            assert!(!is_schemeless_url(name), "{name}");
        }
    }

    #[test]
    fn a_bare_host_is_refused_as_a_pagerduty_label_or_a_slack_channel() {
        let settings = NotifySettings {
            pagerduty_routing_key: Some(Secret::new("key")),
            slack_webhook_url: Some(Secret::new("https://hooks.example/T/B/default")),
            ..NotifySettings::default()
        };
        let n = ChannelNotifier::new(settings).expect("notifier");
        for (kind, host) in [
            ("pagerduty", "events.eu.pagerduty.com"),
            ("pagerduty", "EVENTS.pagerduty.com:443"),
            ("pagerduty", "localhost:8080"),
            ("pagerduty", "10.0.0.7"),
            ("slack", "hooks.slack.com"),
        ] {
            let json = format!(r#"{{"type":"{kind}","destination":"{host}"}}"#);
            let e = n.check_channels(&[ch(&json)]).expect_err(&json).to_string();
            assert!(
                e.contains("notificationChannels[0].destination")
                    && e.contains(host)
                    && e.contains("is a host name"),
                "{json}: {e}"
            );
        }
        // A URL with a slash lost is no channel: its token would go out as the channel's name.
        for url in [
            "https:/hooks.slack.com/services/T0/B0/tok3n",
            "HTTPS:hooks.slack.com/services/T0/B0/tok3n",
        ] {
            let json = format!(r#"{{"type":"slack","destination":"{url}"}}"#);
            let e = n.check_channels(&[ch(&json)]).expect_err(&json).to_string();
            assert!(
                e.contains("notificationChannels[0].destination")
                    && e.contains("missing the `//`")
                    && !e.contains("tok3n"),
                "{json}: {e}"
            );
        }
        // Labels and names stay what they are.
        n.check_channels(&[
            ch(r#"{"type":"pagerduty","destination":"web on-call"}"#),
            ch(r#"{"type":"pagerduty","destination":"api.web team"}"#),
            ch(r#"{"type":"pagerduty","destination":"localhost"}"#),
            ch(r#"{"type":"slack","destination":"@oncall.web"}"#),
            ch(r##"{"type":"slack","destination":"#deploys"}"##),
        ])
        .expect("names");
    }

    #[test]
    fn bad_urls_are_named_and_masked() {
        let e = http_url(
            "x.destination",
            "https://hooks.example/T000/B000/tok3n?k=tok3n",
        )
        .map(|_| ())
        .and_then(|_| http_url("x.destination", "ftp://files.example/tok3n"))
        .expect_err("ftp")
        .to_string();
        assert!(e.contains("x.destination"), "{e}");
        assert!(!e.contains("tok3n"), "{e}");
        let e = http_url("x.destination", "not a url tok3n")
            .expect_err("garbage")
            .to_string();
        assert!(!e.contains("tok3n"), "{e}");
    }

    #[test]
    fn a_url_written_with_backslashes_shows_no_token_in_its_label() {
        // URL parsing reads `\` as `/` in an http(s) URL: the channel delivers to the path, so
        // the label must cut it as it cuts one written with slashes.
        let ch = ch(
            r#"{"type":"webhook","destination":"https://hooks.example\\services\\T0\\B0\\tok3n"}"#,
        );
        let url = http_url("d", ch.destination.trim()).expect("a URL the channel delivers to");
        assert_eq!(url.path(), "/services/T0/B0/tok3n");
        let shown = label(&ch);
        assert_eq!(shown, "webhook `https://hooks.example/***`");
        // Without its scheme it is refused as a URL, not taken as a channel name that would
        // carry the token to Slack, and the refusal cuts it at its host.
        let e = refuse_url_as_name("destination", r"hooks.slack.com\services\T0\B0\tok3n")
            .expect_err("a URL without its scheme")
            .to_string();
        assert!(
            e.contains("hooks.slack.com/***") && !e.contains("tok3n"),
            "{e}"
        );
    }
}
