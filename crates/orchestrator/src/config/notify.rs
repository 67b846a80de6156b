//! `notificationChannels`: where events go, and which.

use serde::{Deserialize, Serialize};

/// Where notifications go (`notificationChannels[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotificationChannel {
    /// The kind of channel.
    #[serde(rename = "type")]
    pub kind: ChannelKind,
    /// Address, URL or channel name.
    pub destination: String,
    /// Which events go there (all when empty).
    #[serde(default)]
    pub events: Vec<NotifyOn>,
    /// The name of an environment variable holding the channel's secret (the webhook's
    /// signing secret, the Slack incoming-webhook URL, the PagerDuty routing key, the SMTP
    /// password). Only the name is configured, so the secret never lands in a config file,
    /// the journal or a report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
}

impl NotificationChannel {
    /// The destination as logs and errors may show it: a URL cut to its scheme and host (the
    /// paths and queries of webhook URLs often carry tokens), anything else as written.
    pub fn redacted_destination(&self) -> String {
        redact_url(self.destination.trim())
    }
}

/// `scheme://host/***` for a URL (user info dropped), the value itself otherwise.
pub(crate) fn redact_url(value: &str) -> String {
    let Some((scheme, rest)) = value.split_once("://") else {
        return value.to_owned();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    format!("{scheme}://{host}/***")
}

/// The kinds of notification channel the brief names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    /// E-mail.
    Email,
    /// Slack.
    Slack,
    /// PagerDuty.
    Pagerduty,
    /// An HTTP webhook.
    Webhook,
}

/// The events a channel can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyOn {
    /// The deployment started.
    Started,
    /// The deployment completed.
    Completed,
    /// The deployment failed.
    Failed,
    /// A judge or trigger saw an anomaly.
    Anomaly,
    /// The deployment rolled back.
    Rollback,
    /// The deployment entered a phase (validation, preparation, deployment, ...).
    Phase,
}
