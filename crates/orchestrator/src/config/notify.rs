//! `notificationChannels`: where events go, and which.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Where notifications go (`notificationChannels[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotificationChannel {
    /// The kind of channel.
    #[serde(rename = "type")]
    pub kind: ChannelKind,
    /// Address, URL or channel name.
    pub destination: String,
    /// Which categories of events go there. All when empty: every event the timeline records,
    /// each weight change and analysis result (`progress`) and upgrade step (`step`) included,
    /// so a channel that should hear less (an e-mail list, a pager) lists what it wants.
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
    /// Whether events of `category` go to this channel: all do when `events` is empty.
    pub fn takes(&self, category: NotifyOn) -> bool {
        self.events.is_empty() || self.events.contains(&category)
    }

    /// The destination as logs and errors may show it: a URL cut to its scheme and host (the
    /// paths and queries of webhook URLs often carry tokens), a URL written without its scheme
    /// cut to its host likewise, anything else (a channel name, e-mail addresses) as written.
    pub fn redacted_destination(&self) -> String {
        redact_url(self.destination.trim())
    }

    /// When `other` delivers to the same receiver (the same type, destination and
    /// `secretEnv`), the categories both take, as an error names them (`every event`, or
    /// `` `rollback`, `failed` ``); `None` when the receivers differ or no category is shared.
    pub(super) fn shared_events(&self, other: &NotificationChannel) -> Option<String> {
        if self.kind != other.kind
            || self.destination.trim() != other.destination.trim()
            || self.secret_env != other.secret_env
        {
            return None;
        }
        if self.events.is_empty() && other.events.is_empty() {
            return Some("every event".to_owned());
        }
        let mine = if self.events.is_empty() {
            &other.events
        } else {
            &self.events
        };
        let shared: Vec<String> = mine
            .iter()
            .filter(|on| self.takes(**on) && other.takes(**on))
            .map(|on| format!("`{}`", on.as_str()))
            .collect();
        (!shared.is_empty()).then(|| shared.join(", "))
    }

    /// Refuses a PagerDuty channel that would open alerts it is never sent the resolve of.
    /// An anomaly opens an alert (`warning`, `error` or `critical`) that only the deployment's
    /// end resolves: its completion resolves every alert, its rollback or failure the warning
    /// (see the `notify` module). Events a channel does not take are not sent to it, resolves
    /// included, so a channel taking `anomaly` without each of those ends would leave the
    /// alert open, and the on-call it paged waiting, after a deployment that ended well.
    /// PagerDuty is sent nothing else for them: a completion sends only resolves, and a
    /// rollback or failure pages as an anomaly does.
    pub(super) fn check_resolves_what_it_opens(&self, path: &str) -> Result<()> {
        if self.kind != ChannelKind::Pagerduty || !self.takes(NotifyOn::Anomaly) {
            return Ok(());
        }
        let missing: Vec<String> = [NotifyOn::Completed, NotifyOn::Failed, NotifyOn::Rollback]
            .into_iter()
            .filter(|on| !self.takes(*on))
            .map(|on| format!("`{}`", on.as_str()))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let written: Vec<&str> = self.events.iter().map(|on| on.as_str()).collect();
        Err(Error::invalid(
            format!("{path}.events"),
            format!("[{}]", written.join(", ")),
            format!(
                "must take {} too: a PagerDuty channel taking `anomaly` opens alerts that only \
                 the deployment's end resolves (its completion, rollback or failure), and the \
                 resolve of an end it does not take is never sent, leaving the alert open; add \
                 them, or leave events empty",
                missing.join(", ")
            ),
        ))
    }
}

/// `scheme://host/***` for a URL (user info dropped), `host/***` for one written without its
/// scheme (a path or query follows the first word), the value itself otherwise.
pub(crate) fn redact_url(value: &str) -> String {
    // Without a scheme, `#` starts a Slack channel name rather than a fragment. A `\\` ends
    // the host too: URL parsing reads it as `/` in an http(s) URL, so the channel delivers to
    // what follows it, and that is what must not be shown.
    let (scheme, rest, ends) = match value.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest, &['/', '?', '#', '\\'][..]),
        None => (None, value, &['/', '?', '\\'][..]),
    };
    let authority = rest.split(ends).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    match scheme {
        Some(scheme) => format!("{scheme}://{host}/***"),
        None if authority.len() < rest.len() => format!("{host}/***"),
        None => value.to_owned(),
    }
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
    /// An operator paused or resumed the deployment.
    Paused,
    /// A deadline ran out (`maxDeploymentDuration`, `canaryConfig.maxDuration`); what follows
    /// it (a rollback, a failure) is announced in its own category.
    Deadline,
    /// The rollout moved on: the upgrade validated, a backup was taken or restored, the new
    /// track started or became ready, the split changed, the canary controller decided (with
    /// its evidence). The chat-room view of a rollout, as Flagger's weight announcements are.
    Progress,
    /// An upgrade step of the validated checklist was carried out, failed, or is due for an
    /// operator (a contract migration no step runner carries out, say): the channel of whoever
    /// runs the database.
    Step,
}

impl NotifyOn {
    /// The name as written in config (`rollback`).
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyOn::Started => "started",
            NotifyOn::Completed => "completed",
            NotifyOn::Failed => "failed",
            NotifyOn::Anomaly => "anomaly",
            NotifyOn::Rollback => "rollback",
            NotifyOn::Phase => "phase",
            NotifyOn::Paused => "paused",
            NotifyOn::Deadline => "deadline",
            NotifyOn::Progress => "progress",
            NotifyOn::Step => "step",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_written_without_its_scheme_is_cut_to_its_host() {
        let ch = |kind, destination: &str| NotificationChannel {
            kind,
            destination: destination.to_owned(),
            events: Vec::new(),
            secret_env: None,
        };
        let hook = ch(ChannelKind::Webhook, "hooks.example/T0/B0/tok3n");
        assert_eq!(hook.redacted_destination(), "hooks.example/***");
        let hook = ch(ChannelKind::Webhook, "hooks.example?token=tok3n");
        assert_eq!(hook.redacted_destination(), "hooks.example/***");
        let hook = ch(ChannelKind::Webhook, "HTTPS://hooks.example/T0/B0/tok3n");
        assert_eq!(hook.redacted_destination(), "HTTPS://hooks.example/***");
        assert_eq!(
            ch(ChannelKind::Slack, "#deploys").redacted_destination(),
            "#deploys"
        );
    }
}
