//! A world's config written out reads back as the same world: load, write, load again gives an
//! equal config, in JSON and in YAML.

use std::time::Duration;

use proptest::prelude::*;
use serin_signals::{Probe, Timestamp, Track};
use serin_sim::{
    ErrorWander, Fault, LatencyProfile, Load, MAX_RPS, Point, Readiness, Schedule, SimConfig, Span,
    Unready, VersionProfile,
};

/// A scenario with every field set, as a suite would keep it in a file.
const SCENARIO: &str = r#"
seed: 18446744073709551615
start: 1700000000123
service: shop
load: {kind: diurnal, meanRps: 300.5, amplitude: 0.4, peakAt: 14h, period: 12h}
defaultProfile: {errorRate: 0.002, startup: 1500ms}
profiles:
  "2.0.0-rc.1+build.7":
    errorRate: [{at: 0s, value: 0.005}, {at: 10m, value: 0.005}, {at: 10m, value: 0.05}]
    errorWander: {sd: 0.5, rho: 0.6}
    latency: {medianMs: 70, sigma: 0.3}
    latencyFactor: [{at: 0s, value: 3}, {at: 2m, value: 1}]
    readiness: {kind: flapping, up: 30s, down: 5s}
    crashAfter: 1h30m
    cpuIdleCores: 0.1
    cpuMsPerRequest: 3.5
    memoryMib: [{at: 1m, value: 256}, {at: 1h, value: 1024}]
  "1.0.0": {readiness: {kind: never}}
dependencies: [postgres, redis]
unready: redistribute
faults:
  - {kind: crash, track: canary, instance: canary-1, at: 30m}
  - {kind: crash, service: api, track: stable, at: 40m}
  - {kind: slowStart, track: canary, span: {from: 0s, until: 5m}, extra: 1m}
  - {kind: slowStart, span: {from: 1h, until: 2h}, extra: 10s}
  - {kind: metricsOutage, span: {from: 1h, until: 1h5m}}
  - {kind: metricsGap, span: {from: 2h, until: 2h1m}}
  - {kind: routerErrors, span: {from: 3h, until: 3h1s}, message: "503 from the mesh"}
  - {kind: platformErrors, span: {from: 4h, until: 4h1m}, message: quota exceeded}
  - {kind: probeFailure, probe: {dependency: redis}, span: {from: 0s, until: 10m}}
  - {kind: probeFailure, track: shadow-1, probe: liveness, span: {from: 5m, until: 6m}}
  - {kind: healthOutage, span: {from: 5h, until: 5h30m}}
"#;

fn json_again(config: &SimConfig) -> SimConfig {
    let written = serde_json::to_string(config).expect("written as JSON");
    serde_json::from_str(&written).unwrap_or_else(|e| panic!("{e}: {written}"))
}

fn yaml_again(config: &SimConfig) -> SimConfig {
    let written = serde_yaml_ng::to_string(config).expect("written as YAML");
    serde_yaml_ng::from_str(&written).unwrap_or_else(|e| panic!("{e}: {written}"))
}

#[test]
fn a_scenario_file_reads_back_as_written() {
    let loaded: SimConfig = serde_yaml_ng::from_str(SCENARIO).unwrap();
    assert_eq!(json_again(&loaded), loaded);
    assert_eq!(yaml_again(&loaded), loaded);
    // Defaults are written out too, so the file says everything the world runs with.
    let minimal: SimConfig = serde_json::from_str(r#"{"seed": 3}"#).unwrap();
    let written = serde_json::to_value(&minimal).unwrap();
    for field in ["start", "service", "load", "defaultProfile", "unready"] {
        assert!(written.get(field).is_some(), "{field}: {written}");
    }
    assert_eq!(json_again(&minimal), minimal);
}

fn millis(max: u64) -> impl Strategy<Value = Duration> {
    (0..=max).prop_map(Duration::from_millis)
}

fn schedule(max: f64) -> impl Strategy<Value = Schedule> {
    prop_oneof![
        (0.0..=max).prop_map(Schedule::constant),
        proptest::collection::vec((millis(86_400_000), 0.0..=max), 1..5).prop_map(|mut points| {
            points.sort_by_key(|(at, _)| *at);
            Schedule::points(points.into_iter().map(|(at, value)| Point { at, value }))
        }),
    ]
}

fn profile() -> impl Strategy<Value = VersionProfile> {
    let readiness = prop_oneof![
        Just(Readiness::Ready),
        Just(Readiness::Never),
        (1u64..600_000, 1u64..600_000).prop_map(|(up, down)| Readiness::Flapping {
            up: Duration::from_millis(up),
            down: Duration::from_millis(down),
        }),
    ];
    (
        (
            schedule(1.0),
            proptest::option::of((0.0..=2.0, 0.0..=0.9)),
            (1e-3..3_600_000.0, 0.0..=4.0),
            schedule(1_000.0),
        ),
        (
            millis(600_000),
            readiness,
            proptest::option::of(millis(86_400_000)),
            (0.0..=1_024.0, 0.0..=60_000.0),
            schedule(1_048_576.0),
        ),
    )
        .prop_map(
            |(
                (error_rate, wander, (median, sigma), factor),
                (startup, readiness, crash, (idle, per_request), memory),
            )| {
                let mut p = VersionProfile::default()
                    .with_error_rate(error_rate)
                    .with_latency(LatencyProfile::new(median, sigma))
                    .with_latency_factor(factor)
                    .with_startup(startup)
                    .with_readiness(readiness)
                    .with_cpu(idle, per_request)
                    .with_memory_mib(memory);
                if let Some((sd, rho)) = wander {
                    p = p.with_error_wander(ErrorWander::new(sd, rho));
                }
                if let Some(after) = crash {
                    p = p.with_crash_after(after);
                }
                p
            },
        )
}

fn label() -> impl Strategy<Value = String> {
    "[a-z]([a-z0-9-]{0,10}[a-z0-9])?"
}

fn track() -> impl Strategy<Value = Track> {
    prop_oneof![
        Just(Track::Stable),
        Just(Track::Canary),
        Just(Track::Blue),
        Just(Track::Green),
        "shadow-[0-9]{1,3}".prop_map(|n| Track::named(&n).unwrap()),
    ]
}

fn span() -> impl Strategy<Value = Span> {
    (millis(86_400_000), 1u64..86_400_000)
        .prop_map(|(from, length)| Span::new(from, from + Duration::from_millis(length)))
}

/// A span of whole seconds, as a fault on traffic has.
fn seconds_span() -> impl Strategy<Value = Span> {
    (0u64..86_400, 1u64..86_400).prop_map(|(from, length)| {
        Span::new(
            Duration::from_secs(from),
            Duration::from_secs(from + length),
        )
    })
}

/// A fault valid in a world whose only dependency is `postgres`.
fn fault() -> impl Strategy<Value = Fault> {
    let crash = (
        proptest::option::of(label()),
        track(),
        proptest::option::of(0u32..20),
        millis(86_400_000),
    )
        .prop_map(|(service, track, n, at)| Fault::Crash {
            instance: n.map(|n| format!("{track}-{n}")),
            service,
            track,
            at,
        });
    let probe = prop_oneof![
        Just(Probe::Readiness),
        Just(Probe::Liveness),
        Just(Probe::Startup),
        Just(Probe::Dependency("postgres".into())),
    ];
    prop_oneof![
        crash,
        (proptest::option::of(track()), span(), millis(600_000))
            .prop_map(|(track, span, extra)| Fault::SlowStart { track, span, extra }),
        span().prop_map(|span| Fault::MetricsOutage { span }),
        seconds_span().prop_map(|span| Fault::MetricsGap { span }),
        (span(), "[ -~]{1,20}").prop_map(|(span, message)| Fault::RouterErrors { span, message }),
        (span(), "[ -~]{1,20}").prop_map(|(span, message)| Fault::PlatformErrors { span, message }),
        (proptest::option::of(track()), probe, span(), seconds_span()).prop_map(
            |(track, probe, span, seconds)| Fault::ProbeFailure {
                span: match probe {
                    Probe::Readiness | Probe::Liveness => seconds,
                    _ => span,
                },
                track,
                probe,
            }
        ),
        span().prop_map(|span| Fault::HealthOutage { span }),
        (
            proptest::option::of(track()),
            seconds_span(),
            1e-9..=1_000.0
        )
            .prop_map(|(track, span, factor)| Fault::Latency {
                track,
                span,
                factor
            }),
        (proptest::option::of(track()), seconds_span(), 0.0..=1.0)
            .prop_map(|(track, span, rate)| Fault::Errors { track, span, rate }),
    ]
}

fn config() -> impl Strategy<Value = SimConfig> {
    let load = prop_oneof![
        (0.0..=MAX_RPS).prop_map(Load::constant),
        (
            // At most half the limit, so that any amplitude keeps the peak within it.
            0.0..=MAX_RPS / 2.0,
            0.0..=1.0,
            millis(86_400_000),
            1_000u64..=604_800_000
        )
            .prop_map(|(mean_rps, amplitude, peak_at, period)| Load::Diurnal {
                mean_rps,
                amplitude,
                peak_at,
                period: Duration::from_millis(period),
            }),
    ];
    let versions = proptest::collection::btree_map(
        (
            0u64..5,
            0u64..5,
            0u64..5,
            proptest::option::of("rc\\.[0-9]"),
        ),
        profile(),
        0..3,
    );
    (
        (any::<u64>(), 0u64..=4_102_444_800_000, label(), load),
        (
            profile(),
            versions,
            any::<bool>(),
            prop_oneof![Just(Unready::Fail), Just(Unready::Redistribute)],
            proptest::collection::vec(fault(), 0..6),
        ),
    )
        .prop_map(
            |((seed, start, service, load), (default, versions, postgres, unready, faults))| {
                let mut c = SimConfig::new(seed)
                    .with_start(Timestamp::from_millis(start))
                    .with_service(service)
                    .with_load(load)
                    .with_default_profile(default)
                    .with_unready(unready)
                    .with_dependency("postgres");
                if postgres {
                    c = c.with_dependency("redis");
                }
                for ((major, minor, patch, pre), profile) in versions {
                    let mut v = semver::Version::new(major, minor, patch);
                    if let Some(pre) = pre {
                        v.pre = semver::Prerelease::new(&pre).unwrap();
                    }
                    c = c.with_profile(v, profile);
                }
                // Router or platform errors that overlap must give one message: each kind
                // keeps the message of its first.
                let (mut router, mut platform) = (None, None);
                for mut f in faults {
                    match &mut f {
                        Fault::RouterErrors { message, .. } => {
                            message.clone_from(router.get_or_insert_with(|| message.clone()));
                        }
                        Fault::PlatformErrors { message, .. } => {
                            message.clone_from(platform.get_or_insert_with(|| message.clone()));
                        }
                        _ => {}
                    }
                    c = c.with_fault(f);
                }
                c
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever a valid world holds, writing it and reading it back gives the same world.
    #[test]
    fn configs_round_trip(config in config()) {
        config.validate().unwrap();
        let loaded = json_again(&config);
        prop_assert_eq!(&loaded, &config);
        prop_assert_eq!(json_again(&loaded), loaded.clone());
        prop_assert_eq!(yaml_again(&loaded), loaded);
    }
}
