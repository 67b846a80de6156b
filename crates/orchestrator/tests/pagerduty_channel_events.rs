//! A PagerDuty channel opens an alert for an anomaly, which only the deployment's end
//! resolves: its completion, its rollback or its failure (see the `notify` module). A channel
//! that takes `anomaly` but not every one of those ends is sent no resolve for some of them,
//! and an alert it opened, paging the on-call, stays open for ever after a deployment that
//! ended well: such a channel is refused when the config loads, naming what it lacks.

use serin_orchestrator::DeploymentConfig;

fn with_channel(channel: &str) -> serin_orchestrator::Result<DeploymentConfig> {
    DeploymentConfig::from_yaml(&format!(
        "strategy: canary\nversion: 1.1.0\ntargetServices: [web]\nnotificationChannels:\n  - {channel}\n"
    ))
}

#[test]
fn a_pagerduty_channel_taking_anomalies_must_take_every_end_that_resolves_them() {
    for (events, missing) in [
        ("[anomaly, failed, rollback]", "`completed`"),
        ("[anomaly, completed]", "`failed`, `rollback`"),
        ("[started, anomaly, completed, failed]", "`rollback`"),
    ] {
        let err = with_channel(&format!(
            "{{type: pagerduty, destination: web on-call, events: {events}}}"
        ))
        .expect_err(events)
        .to_string();
        assert!(
            err.contains("notificationChannels[0].events")
                && err.contains(&format!("must take {missing} too")),
            "{events}: {err}"
        );
    }
}

#[test]
fn channels_that_resolve_what_they_open_or_open_nothing_load() {
    for channel in [
        "{type: pagerduty, destination: web on-call}",
        "{type: pagerduty, destination: web on-call, events: []}",
        "{type: pagerduty, destination: web on-call, events: [failed, rollback]}",
        "{type: pagerduty, destination: web on-call, events: [anomaly, completed, failed, rollback]}",
        "{type: slack, destination: '#deploys', events: [anomaly]}",
        "{type: webhook, destination: 'https://hooks.example/h', events: [anomaly]}",
    ] {
        with_channel(channel).unwrap_or_else(|e| panic!("{channel}: {e}"));
    }
}
