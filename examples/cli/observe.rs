//! The verbs that watch what runs under the built-in load: `metrics`, `monitor` and
//! `health-check`.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::json;
use serin_orchestrator::MonitoringConfig;
use serin_signals::{Timestamp, Window};

use crate::cli::args::{MetricsArgs, MonitorArgs, parse_duration};
use crate::cli::backend::{TrackHealth, TrackMetrics};
use crate::cli::context::{Ctx, deployed};
use crate::cli::exit::{CliError, Exit};
use crate::cli::settings::{EnvLookup, service_of};
use crate::cli::state::StateDir;

/// The first edge of a one-second bucket counted from `origin` at or after `t`.
fn second_at_or_after(t: Timestamp, origin: Timestamp) -> Timestamp {
    let since = t.saturating_duration_since(origin).as_millis();
    let whole = u64::try_from(since.div_ceil(1_000) * 1_000).unwrap_or(u64::MAX);
    origin.saturating_add(Duration::from_millis(whole))
}

/// `[start, end)` shrunk to whole seconds of the backend's one-second buckets, which count
/// from `origin` (see [`Stack::bucket_origin`](crate::cli::backend::Stack::bucket_origin)).
/// The proxy counts a bucket in the window it ends in, so a partial second at either edge
/// would be miscounted; the simulated fleet draws each second of its traffic by its place
/// from its start, so an edge inside one would cut it at a millisecond that differs from run
/// to run, and the same `--seed` would measure other requests. A window shorter than a whole
/// second is kept as it is.
fn whole_seconds(start: Timestamp, end: Timestamp, origin: Timestamp) -> Result<Window, CliError> {
    let first = second_at_or_after(start, origin);
    let last = match second_at_or_after(end, origin) {
        edge if edge > end => edge.saturating_sub(Duration::from_secs(1)),
        edge => edge,
    };
    let (a, b) = if last > first {
        (first, last)
    } else {
        (start, end)
    };
    Window::new(a, b).map_err(|e| CliError::backend(e.to_string()))
}

/// The window a `monitor` sample taken at `end` measures: the last `span` (whole seconds, at
/// least one) before it, never reaching back before `began`, when the load started. A window
/// opened earlier divides the requests of its part with load by the whole of it: the first
/// sample read a fraction of the rate (a few requests a second out of a hundred on the
/// simulated fleet). The seconds are those of the backend's buckets, counted from `origin`.
fn sample_window(
    began: Timestamp,
    end: Timestamp,
    span: Duration,
    origin: Timestamp,
) -> Result<Window, CliError> {
    let start = end
        .saturating_sub(span.saturating_add(Duration::from_secs(1)))
        .max(began);
    whole_seconds(start, end, origin)
}

fn metrics_text(tracks: &[TrackMetrics]) -> String {
    let mut text = String::new();
    for t in tracks {
        let _ = writeln!(
            text,
            "{:<8} {:<8} {:>5.1}%  {:>7} req  {:>6.1} req/s  errors {:>5} ({})  p50 {}  p99 {}",
            t.track,
            t.version,
            t.weight,
            t.requests,
            t.throughput,
            t.errors,
            t.error_rate
                .map_or("-".to_owned(), |r| format!("{:.2}%", r * 100.0)),
            t.p50_ms.map_or("-".to_owned(), |v| format!("{v:.1}ms")),
            t.p99_ms.map_or("-".to_owned(), |v| format!("{v:.1}ms")),
        );
    }
    text
}

/// `metrics`: what runs, measured under the built-in load for `--duration`.
pub async fn metrics(ctx: &Ctx, args: &MetricsArgs) -> Result<Exit, CliError> {
    let (config, _) = ctx.config()?;
    let service = service_of(&config).to_owned();
    let states = StateDir::existing(&ctx.global.state_dir);
    states.refuse_while_held("metrics")?;
    let state = deployed(ctx, &states, &service)?;
    let mut stack = ctx.stack(&states, &state, &config, "metrics").await?;
    let result = async {
        stack.start_load().await?;
        // From the next whole second of the backend's buckets, for all of `--duration`: a
        // partial first second left out would leave the window up to a second short.
        let origin = stack.bucket_origin();
        let start = second_at_or_after(stack.now(), origin);
        tokio::time::sleep(start.saturating_duration_since(stack.now())).await;
        let bar = ctx.ui.bar(
            args.duration.as_secs().max(1),
            "{spinner} measuring {elapsed}/{len}s {bar:30}",
        );
        let step = Duration::from_secs(1).min(args.duration);
        let deadline = tokio::time::Instant::now().checked_add(args.duration);
        while deadline.is_none_or(|d| tokio::time::Instant::now() < d) {
            tokio::time::sleep(step).await;
            bar.inc(1);
        }
        bar.finish_and_clear();
        let window = whole_seconds(start, start.saturating_add(args.duration), origin)?;
        Ok::<_, CliError>((window, stack.measure(window).await?))
    }
    .await;
    stack.shutdown().await;
    let (window, tracks) = result?;
    let text = format!("{window}\n{}", metrics_text(&tracks));
    ctx.ui
        .result(&text, &json!({ "window": window, "tracks": tracks }))?;
    Ok(Exit::Success)
}

fn health_text(tracks: &[TrackHealth]) -> String {
    let mut text = String::new();
    for t in tracks {
        let _ = writeln!(
            text,
            "{} ({}): {}/{} ready — {}",
            t.track,
            t.version,
            t.ready,
            t.instances,
            if t.healthy() { "healthy" } else { "UNHEALTHY" }
        );
        for p in &t.probes {
            let _ = writeln!(
                text,
                "  {:?} {} {:?}{}",
                p.probe,
                p.instance.as_deref().unwrap_or("(track)"),
                p.status,
                p.detail
                    .as_deref()
                    .map_or(String::new(), |d| format!(": {d}"))
            );
        }
    }
    text
}

/// `health-check`: brings what runs up and probes it.
pub async fn health_check(ctx: &Ctx) -> Result<Exit, CliError> {
    let (config, _) = ctx.config()?;
    let service = service_of(&config).to_owned();
    let states = StateDir::existing(&ctx.global.state_dir);
    states.refuse_while_held("health-check")?;
    // Nothing deployed is nothing healthy: a readiness gate must not pass on it.
    let state = deployed(ctx, &states, &service)?;
    let stack = ctx.stack(&states, &state, &config, "health-check").await?;
    let result = stack.probe().await;
    stack.shutdown().await;
    let tracks = result?;
    let healthy = tracks.iter().all(TrackHealth::healthy);
    ctx.ui.result(
        &health_text(&tracks),
        &json!({ "healthy": healthy, "tracks": tracks }),
    )?;
    Ok(if healthy { Exit::Success } else { Exit::Failed })
}

/// What of `tracks` breaches the monitoring thresholds (`errorRateThreshold`,
/// `latencyThreshold`), as the deployment's own watch would read them; a track without
/// requests breaches nothing.
fn over_thresholds(tracks: &[TrackMetrics], limits: &MonitoringConfig) -> Vec<String> {
    let mut over = Vec::new();
    for t in tracks {
        if let (Some(rate), Some(limit)) = (t.error_rate, limits.error_rate_threshold)
            && rate > limit
        {
            over.push(format!(
                "{} error rate {:.2}% over errorRateThreshold {}%",
                t.version,
                rate * 100.0,
                percent(limit)
            ));
        }
        if let (Some(p99), Some(limit)) = (t.p99_ms, limits.latency_threshold)
            && p99 > limit
        {
            over.push(format!(
                "{} p99 {p99:.1}ms over latencyThreshold {limit}ms",
                t.version
            ));
        }
    }
    over
}

/// A configured fraction as the percentage its user wrote (`7` for 0.07), without the binary
/// rounding noise of `fraction · 100` (`7.000000000000001`), as the promotion gate's reasons
/// write theirs.
fn percent(fraction: f64) -> String {
    ((fraction * 100.0 * 1e9).round() / 1e9).to_string()
}

/// How long `monitor` watches when neither `--duration` nor `MONITORING_DURATION` says.
const MONITOR_DURATION: Duration = Duration::from_secs(300);
/// How often `monitor` samples when neither `--interval` nor `CHECK_INTERVAL` says.
const MONITOR_INTERVAL: Duration = Duration::from_secs(1);

/// How long `monitor` watches and how often it samples: the flags, else the brief's
/// `MONITORING_DURATION` and `CHECK_INTERVAL` (`MONITORING_DURATION=60 make monitor`), else
/// 5 minutes and 1 second.
pub fn monitor_span(args: &MonitorArgs, env: &EnvLookup) -> Result<(Duration, Duration), CliError> {
    let pick = |flag: Option<Duration>, var: &str, default: Duration| match flag {
        Some(d) => Ok(d),
        None => match env.get(var) {
            Some(text) => parse_duration(&text)
                .map_err(|e| CliError::usage(format!("invalid {var} `{text}`: {e}"))),
            None => Ok(default),
        },
    };
    Ok((
        pick(args.duration, "MONITORING_DURATION", MONITOR_DURATION)?,
        pick(args.interval, "CHECK_INTERVAL", MONITOR_INTERVAL)?,
    ))
}

/// `monitor`: samples health and metrics of what runs every `--interval` for `--duration`.
pub async fn monitor(ctx: &Ctx, args: &MonitorArgs) -> Result<Exit, CliError> {
    let (duration, interval) = monitor_span(args, &ctx.env)?;
    let (config, _) = ctx.config()?;
    let service = service_of(&config).to_owned();
    let states = StateDir::existing(&ctx.global.state_dir);
    states.refuse_while_held("monitor")?;
    let state = deployed(ctx, &states, &service)?;
    let mut stack = ctx.stack(&states, &state, &config, "monitor").await?;
    let interval = interval.min(duration);
    let hold = config.monitoring.consecutive_failures.max(1);
    let result = async {
        stack.start_load().await?;
        let began = stack.now();
        let origin = stack.bucket_origin();
        let steps = (duration.as_millis() / interval.as_millis().max(1)).max(1);
        // Each sample measures the last whole seconds (at least one) before it.
        let steps = u64::try_from(steps).unwrap_or(u64::MAX);
        let bar = ctx.ui.bar(
            steps,
            "{spinner} monitoring [{elapsed_precise}] {bar:30} {msg}",
        );
        let mut samples = Vec::new();
        let mut healthy = true;
        // A breach counts once it lasts `consecutiveFailures` samples, as the deployment's
        // watch counts it; a sample without requests neither extends nor ends it.
        let (mut run, mut breach) = (0_u32, None::<Vec<String>>);
        let span = Duration::from_secs(interval.as_secs().max(1));
        for _ in 0..steps {
            tokio::time::sleep(interval).await;
            let end = stack.now();
            let window = sample_window(began, end, span, origin)?;
            let tracks = stack.measure(window).await?;
            let health = stack.probe().await?;
            let ok = health.iter().all(TrackHealth::healthy);
            healthy &= ok;
            let over = over_thresholds(&tracks, &config.monitoring);
            if !over.is_empty() {
                run += 1;
                if run >= hold && breach.is_none() {
                    breach = Some(over.clone());
                }
            } else if tracks.iter().any(|t| t.requests > 0) {
                run = 0;
            }
            let summary: Vec<String> = tracks
                .iter()
                .map(|t| {
                    format!(
                        "{} {} {:.0}% {:.0} req/s err {}",
                        t.track,
                        t.version,
                        t.weight,
                        t.throughput,
                        t.error_rate
                            .map_or("-".to_owned(), |r| format!("{:.2}%", r * 100.0))
                    )
                })
                .collect();
            let line = format!(
                "{} {} | {}{}",
                window.end(),
                summary.join(" | "),
                if ok { "healthy" } else { "UNHEALTHY" },
                if over.is_empty() {
                    String::new()
                } else {
                    format!(" | {}", over.join(", "))
                }
            );
            bar.set_message(line.clone());
            ctx.ui.note(&bar, &line);
            bar.inc(1);
            samples.push(json!({
                "window": window,
                "tracks": tracks,
                "health": health,
                "healthy": ok,
                "overThresholds": over,
            }));
        }
        bar.finish_and_clear();
        Ok::<_, CliError>((samples, healthy, breach))
    }
    .await;
    let tally = stack.shutdown().await;
    let (samples, healthy, breach) = result?;
    let mut text = format!(
        "monitored {} for {}: {}\n",
        service,
        humantime::format_duration(duration),
        if healthy {
            "healthy throughout"
        } else {
            "UNHEALTHY at times"
        }
    );
    if let Some(over) = &breach {
        let _ = writeln!(
            text,
            "over its thresholds for {hold} samples in a row (monitoring.consecutiveFailures): {}",
            over.join(", "),
        );
    }
    if let Some(t) = &tally {
        let _ = writeln!(text, "load: {t}");
    }
    ctx.ui.result(
        &text,
        &json!({
            "healthy": healthy,
            "withinThresholds": breach.is_none(),
            "samples": samples,
            "load": tally,
        }),
    )?;
    Ok(if healthy && breach.is_none() {
        Exit::Success
    } else {
        Exit::Failed
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_takes_the_flags_then_the_brief_s_variables_then_its_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let none = MonitorArgs::default();
        assert_eq!(
            monitor_span(&none, &EnvLookup::default()).expect("defaults"),
            (MONITOR_DURATION, MONITOR_INTERVAL)
        );
        let file = dir.path().join(".env");
        std::fs::write(&file, "MONITORING_DURATION=60\nCHECK_INTERVAL=5s\n").expect("write");
        let env = EnvLookup::load(Some(&file)).expect("env file");
        assert_eq!(
            monitor_span(&none, &env).expect("variables"),
            (Duration::from_secs(60), Duration::from_secs(5))
        );
        let flags = MonitorArgs {
            duration: Some(Duration::from_secs(10)),
            interval: Some(Duration::from_secs(2)),
        };
        assert_eq!(
            monitor_span(&flags, &env).expect("flags"),
            (Duration::from_secs(10), Duration::from_secs(2))
        );
        std::fs::write(&file, "CHECK_INTERVAL=often\n").expect("write");
        let env = EnvLookup::load(Some(&file)).expect("env file");
        let e = monitor_span(&none, &env).expect_err("not a duration");
        assert!(e.message.contains("CHECK_INTERVAL `often`"), "{e}");
    }

    #[test]
    fn a_sample_is_over_the_thresholds_it_exceeds_and_nothing_without_requests() {
        let track = |error_rate, p99_ms| TrackMetrics {
            track: "blue".into(),
            version: "1.0.0".into(),
            weight: 100.0,
            requests: 100,
            errors: 0,
            error_rate,
            throughput: 100.0,
            p50_ms: p99_ms,
            p99_ms,
        };
        let limits = MonitoringConfig {
            latency_threshold: Some(500.0),
            ..MonitoringConfig::default()
        };
        assert!(over_thresholds(&[track(Some(0.1), Some(500.0))], &limits).is_empty());
        let over = over_thresholds(&[track(Some(0.25), Some(750.0))], &limits);
        assert_eq!(
            over,
            [
                "1.0.0 error rate 25.00% over errorRateThreshold 10%",
                "1.0.0 p99 750.0ms over latencyThreshold 500ms"
            ]
        );
        assert!(over_thresholds(&[track(None, None)], &limits).is_empty());
        let off = MonitoringConfig {
            error_rate_threshold: None,
            ..MonitoringConfig::default()
        };
        assert!(over_thresholds(&[track(Some(0.9), Some(1e6))], &off).is_empty());
    }

    #[test]
    fn a_threshold_is_written_as_configured_without_rounding_noise() {
        let track = TrackMetrics {
            track: "blue".into(),
            version: "1.0.0".into(),
            weight: 100.0,
            requests: 100,
            errors: 10,
            error_rate: Some(0.1),
            throughput: 100.0,
            p50_ms: None,
            p99_ms: None,
        };
        let limits = MonitoringConfig {
            error_rate_threshold: Some(0.07),
            ..MonitoringConfig::default()
        };
        assert_eq!(
            over_thresholds(&[track], &limits),
            ["1.0.0 error rate 10.00% over errorRateThreshold 7%"]
        );
    }

    #[test]
    fn a_sample_never_measures_from_before_the_load_started() {
        let t = Timestamp::from_millis;
        let second = Duration::from_secs(1);
        let epoch = Timestamp::EPOCH;
        // The first sample, a second after the load started a quarter into a second.
        let w = sample_window(t(10_250), t(11_250), second, epoch).expect("window");
        assert_eq!((w.start(), w.end()), (t(10_250), t(11_250)));
        // Later ones measure the last whole second.
        let w = sample_window(t(10_250), t(15_250), second, epoch).expect("window");
        assert_eq!((w.start(), w.end()), (t(14_000), t(15_000)));
        let two = Duration::from_secs(2);
        let w = sample_window(t(10_250), t(15_250), two, epoch).expect("window");
        assert_eq!((w.start(), w.end()), (t(13_000), t(15_000)));
        // Seconds counted from a simulated world's start, 600 ms into an epoch second.
        let w = sample_window(t(10_250), t(15_250), second, t(600)).expect("window");
        assert_eq!((w.start(), w.end()), (t(13_600), t(14_600)));
    }

    #[test]
    fn windows_shrink_to_whole_seconds_unless_shorter_than_one() {
        let t = Timestamp::from_millis;
        let epoch = Timestamp::EPOCH;
        let w = whole_seconds(t(10_250), t(13_900), epoch).expect("window");
        assert_eq!((w.start(), w.end()), (t(11_000), t(13_000)));
        let w = whole_seconds(t(10_000), t(12_000), epoch).expect("window");
        assert_eq!((w.start(), w.end()), (t(10_000), t(12_000)));
        let w = whole_seconds(t(10_250), t(10_900), epoch).expect("window");
        assert_eq!((w.start(), w.end()), (t(10_250), t(10_900)));
        // The seconds of buckets counted from 10_250.
        let w = whole_seconds(t(10_250), t(13_900), t(10_250)).expect("window");
        assert_eq!((w.start(), w.end()), (t(10_250), t(13_250)));
        let w = whole_seconds(t(10_300), t(13_900), t(10_250)).expect("window");
        assert_eq!((w.start(), w.end()), (t(11_250), t(13_250)));
    }
}
