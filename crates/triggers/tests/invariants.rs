//! Property tests: the `for` duration and the cooldown hold on arbitrary streams, and no trigger
//! fires on a stream that stays on the healthy side of its bound.

use std::time::Duration;

use proptest::prelude::*;
use serin_signals::{
    Counts, Gauge, HealthSignal, Measurement, Metric, Observation, Probe, ProbeStatus, Timestamp,
    Track, Window,
};
use serin_triggers::{Action, Engine, EngineConfig, Event};

const WARN: f64 = 50.0;
const ROLLBACK: f64 = 80.0;

fn threshold_engine(duration_ms: u64, cooldown_ms: u64) -> Engine {
    let json = format!(
        r#"{{"triggers": [{{"kind":"metricThreshold","id":"t","metric":"queue_depth",
            "operator":"gt","value":{ROLLBACK},"warnValue":{WARN},
            "duration":{duration_ms},"cooldown":{cooldown_ms},"staleAfter":"1000h"}}]}}"#
    );
    let config: EngineConfig = serde_json::from_str(&json).unwrap();
    Engine::new(config, Timestamp::EPOCH).unwrap()
}

fn gauge(at: u64, value: Option<f64>) -> Observation {
    Observation::new(
        Metric::named("queue_depth").unwrap(),
        Track::Canary,
        Window::ending_at(Timestamp::from_millis(at), Duration::from_millis(1)),
        value.map_or(Measurement::NoData, |v| {
            Measurement::Gauge(Gauge::new(v).unwrap())
        }),
    )
}

fn level(v: f64) -> u8 {
    if v > ROLLBACK {
        2
    } else if v > WARN {
        1
    } else {
        0
    }
}

fn action_level(a: Action) -> u8 {
    match a {
        Action::Warn => 1,
        Action::Hold => 1,
        Action::Rollback => 2,
    }
}

/// Gaps in milliseconds and values (`None` = no data).
fn stream() -> impl Strategy<Value = Vec<(u64, Option<f64>)>> {
    prop::collection::vec(
        (1u64..20_000, prop::option::weighted(0.9, 0.0f64..100.0)),
        1..200,
    )
}

/// Feeds the stream; returns the events and the timed readings.
/// A count or a time in milliseconds, often at an end of its range.
fn extreme() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0),
        Just(u64::MAX),
        Just(1 << 53),
        0u64..100_000,
        any::<u64>(),
    ]
}

/// A gauge reading, often at an end of the finite range.
fn extreme_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(f64::MAX),
        Just(-f64::MAX),
        Just(f64::MIN_POSITIVE),
        -1e6..1e6f64,
    ]
}

fn run(
    duration: u64,
    cooldown: u64,
    s: &[(u64, Option<f64>)],
) -> (Vec<Event>, Vec<(u64, Option<f64>)>) {
    let mut e = threshold_engine(duration, cooldown);
    let mut at = 0u64;
    let mut timed = Vec::new();
    let mut events = Vec::new();
    for &(gap, v) in s {
        at += gap;
        e.observe(&gauge(at, v)).unwrap();
        timed.push((at, v));
        events.extend(e.drain_events());
    }
    (events, timed)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every fire of level L at t is preceded by readings all at or above L covering
    /// `[t - duration, t]` (no-data readings neither break nor extend the run).
    #[test]
    fn fires_only_after_the_duration(duration in 0u64..60_000, cooldown in 0u64..120_000, s in stream()) {
        let (events, timed) = run(duration, cooldown, &s);
        for ev in events.iter().filter(|e| e.action.is_some()) {
            let t = ev.at.as_millis();
            let l = action_level(ev.action.unwrap_or(Action::Warn));
            let mut start = None;
            for &(at, v) in timed.iter().rev().skip_while(|(at, _)| *at > t) {
                match v {
                    None => continue,
                    Some(v) if level(v) >= l => start = Some(at),
                    Some(_) => break,
                }
            }
            let start = start.expect("a fire needs a breaching reading");
            prop_assert!(t - start >= duration, "fired at {t} after a breach from {start}, duration {duration}");
            prop_assert_eq!(ev.evidence.since.map(|s| s.as_millis()), Some(start));
        }
    }

    /// After a fire, no fire of the same or a lower level within the cooldown.
    #[test]
    fn cooldown_suppresses_repeats(duration in 0u64..30_000, cooldown in 0u64..300_000, s in stream()) {
        let (events, _) = run(duration, cooldown, &s);
        let fires: Vec<(u64, Action)> = events
            .iter()
            .filter_map(|e| e.action.map(|a| (e.at.as_millis(), a)))
            .collect();
        for (i, &(t1, a1)) in fires.iter().enumerate() {
            for &(t2, a2) in &fires[i + 1..] {
                if a2 <= a1 {
                    prop_assert!(t2 - t1 >= cooldown, "{a1} at {t1} then {a2} at {t2}, cooldown {cooldown}");
                }
            }
        }
    }

    /// Streams on the healthy side of every bound never make any trigger fire.
    #[test]
    fn healthy_streams_never_fire(
        s in prop::collection::vec((1u64..10_000, 0.0f64..=WARN, 1u64..5_000, 0.0f64..=1.0, any::<bool>()), 1..150)
    ) {
        let config: EngineConfig = serde_json::from_str(&format!(r#"{{"triggers": [
            {{"kind":"metricThreshold","id":"t","metric":"queue_depth","operator":"gt",
              "value":{ROLLBACK},"warnValue":{WARN},"staleAfter":"1000h"}},
            {{"kind":"errorSpike","id":"cusum","baselineErrorRate":0.02,"minErrorCount":1,
              "averageRunLength":10,"staleAfter":"1000h"}},
            {{"kind":"errorSpike","id":"ratio","baselineErrorRate":0.02,"minErrorCount":1,
              "detector":"ratio","staleAfter":"1000h"}},
            {{"kind":"resourceUsage","id":"mem","resource":"memory","capacity":100,
              "warnPercent":{WARN},"staleAfter":"1000h"}},
            {{"kind":"healthCheck","id":"live","checkType":"liveness","failureThreshold":1,
              "staleAfter":"1000h"}},
            {{"kind":"dependencyFailure","id":"db","dependency":"db","failureThreshold":1,
              "staleAfter":"1000h"}}
        ]}}"#)).unwrap();
        let mut e = Engine::new(config, Timestamp::EPOCH).unwrap();
        let mut at = 0u64;
        for (gap, v, requests, share, instance) in s {
            at += gap;
            let w = Window::ending_at(Timestamp::from_millis(at), Duration::from_millis(gap));
            e.observe(&gauge(at, Some(v))).unwrap();
            e.observe(&Observation::new(Metric::Memory, Track::Canary, w,
                Measurement::Gauge(Gauge::new(v).unwrap()))).unwrap();
            // At most the baseline rate of errors.
            let errors = ((requests as f64) * 0.02 * share).floor() as u64;
            e.observe(&Observation::new(Metric::ErrorRate, Track::Canary, w,
                Measurement::Counts(Counts::new(requests, errors).unwrap()))).unwrap();
            let mut live = HealthSignal::new(Track::Canary, Probe::Liveness, ProbeStatus::Pass, Timestamp::from_millis(at));
            if instance {
                live = live.with_instance("i-0");
            }
            e.observe_health(&live).unwrap();
            e.observe_health(&HealthSignal::new(Track::Canary, Probe::Dependency("db".into()), ProbeStatus::Pass, Timestamp::from_millis(at))).unwrap();
            e.tick(Timestamp::from_millis(at));
            for ev in e.drain_events() {
                prop_assert!(ev.action.is_none(), "{ev:?}");
            }
        }
    }

    /// Saving and restoring at any point changes nothing that follows.
    #[test]
    fn resume_anywhere_is_exact(s in stream(), cut in 0usize..200, gap_ticks in any::<bool>()) {
        let config: EngineConfig = serde_json::from_str(&format!(r#"{{"triggers": [
            {{"kind":"metricThreshold","id":"t","metric":"queue_depth","operator":"gt",
              "value":{ROLLBACK},"warnValue":{WARN},"duration":"20s","cooldown":"1m","staleAfter":"30s"}},
            {{"kind":"errorSpike","id":"s","track":"stable","learnFor":"1m","minErrorCount":1,"minBaselineRequests":1}}
        ]}}"#)).unwrap();
        let inputs: Vec<(u64, Option<f64>)> = s
            .iter()
            .scan(0u64, |at, &(gap, v)| {
                *at += gap;
                Some((*at, v))
            })
            .collect();
        let feed = |e: &mut Engine, part: &[(u64, Option<f64>)]| -> Vec<Event> {
            for &(at, v) in part {
                e.observe(&gauge(at, v)).unwrap();
                let w = Window::ending_at(Timestamp::from_millis(at), Duration::from_secs(1));
                let errors = v.map_or(0, |v| v as u64);
                e.observe(&Observation::new(Metric::ErrorRate, Track::Stable, w,
                    Measurement::Counts(Counts::new(100, errors).unwrap()))).unwrap();
                if gap_ticks {
                    e.tick(Timestamp::from_millis(at + 45_000));
                }
            }
            e.drain_events().collect()
        };
        let cut = cut.min(inputs.len());
        let mut straight = Engine::new(config.clone(), Timestamp::EPOCH).unwrap();
        let all = feed(&mut straight, &inputs);
        let mut first = Engine::new(config, Timestamp::EPOCH).unwrap();
        let mut got = feed(&mut first, &inputs[..cut]);
        let mut resumed: Engine = serde_json::from_str(&serde_json::to_string(&first).unwrap()).unwrap();
        got.extend(feed(&mut resumed, &inputs[cut..]));
        prop_assert_eq!(got, all);
    }

    /// Arbitrary inputs never panic, even at the ends of the ranges (counts and times up to
    /// `u64::MAX`, windows of any length, gauges up to `f64::MAX`); a rejected input leaves the
    /// engine as it was; every event's evidence renders, and the engine survives a journal.
    #[test]
    fn arbitrary_inputs_never_panic(
        s in prop::collection::vec((0u64..4, 0u64..3, 0u64..5, extreme(), extreme(), extreme(), extreme(), extreme_f64()), 1..100)
    ) {
        let config: EngineConfig = serde_json::from_str(r#"{"triggers": [
            {"kind":"errorSpike","id":"s","baselineTrack":"stable"},
            {"kind":"resourceUsage","id":"cpu","resource":"cpu","capacity":1,"rollbackPercent":90},
            {"kind":"metricThreshold","id":"lat","metric":"latency","operator":"gt","value":10},
            {"kind":"dependencyFailure","id":"d","dependency":"db","callMetric":"cpu","maxCallErrorRate":0.1},
            {"kind":"healthCheck","id":"h","serviceName":"app","checkType":"readiness","failureThreshold":3,"checkInterval":5000}
        ]}"#).unwrap();
        let mut e = Engine::new(config, Timestamp::EPOCH).unwrap();
        for (m, t, kind, at, a, b, len, f) in s {
            let metric = [Metric::ErrorRate, Metric::Cpu, Metric::Latency, Metric::Throughput][m as usize].clone();
            let track = [Track::Canary, Track::Stable, Track::Blue][t as usize].clone();
            let measurement = match kind {
                0 => Measurement::Counts(Counts::new(a.max(b), a.min(b)).unwrap()),
                1 => Measurement::Gauge(Gauge::new(f).unwrap()),
                2 => {
                    let mut sk = serin_signals::LatencySketch::new();
                    // Past `LatencySketch::MAX_VALUES` the sketch refuses and stays empty.
                    let _ = sk.add_n(f.abs(), b);
                    Measurement::Latency(sk)
                }
                3 => {
                    let status = if a % 2 == 0 { ProbeStatus::Fail } else { ProbeStatus::Pass };
                    let before = serde_json::to_string(&e).unwrap();
                    if e.observe_health(&HealthSignal::new(track.clone(), Probe::Readiness, status, Timestamp::from_millis(at))).is_err() {
                        prop_assert_eq!(serde_json::to_string(&e).unwrap(), before);
                    }
                    Measurement::NoData
                }
                _ => Measurement::NoData,
            };
            let w = Window::ending_at(Timestamp::from_millis(at), Duration::from_millis(len));
            let before = serde_json::to_string(&e).unwrap();
            if e.observe(&Observation::new(metric, track, w, measurement)).is_err() {
                prop_assert_eq!(serde_json::to_string(&e).unwrap(), before);
            }
            e.tick(Timestamp::from_millis(at));
            for event in e.drain_events() {
                let _ = event.evidence.to_string();
            }
            e = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        }
    }
}
