//! The sequential tests at the edges of their inputs: error volumes that run their wealth far
//! below 1, counts near `u64::MAX`, and moments no latencies have. Every number stays finite and
//! meaningful, and every state saves and resumes exactly.

use rand::SeedableRng;
use rand_distr::{Binomial, Distribution};
use serin_canary::sequential::{
    CountTest, CountTestConfig, LatencyTest, LatencyTestConfig, LogMoments, Sides,
};
use serin_signals::LatencySketch;

/// `t` saved as JSON and read back.
fn restored<T: serde::Serialize + serde::de::DeserializeOwned>(t: &T) -> T {
    let json = serde_json::to_string(t).unwrap();
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}\n{json}"))
}

/// A good canary at 100,000 requests/s with 5% errors in each arm loses its bets by thousands
/// of nats within the hour; the state still saves, and resumes as the original continues.
#[test]
fn a_count_test_that_lost_thousands_of_nats_saves_and_resumes_exactly() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let arm = Binomial::new(50_000, 0.05).unwrap();
    for sides in [Sides::CanaryWorse, Sides::TwoSided] {
        let mut t = CountTest::new(CountTestConfig::new(0.05).with_sides(sides)).unwrap();
        for s in 0..3_000u64 {
            t.update(50_000, arm.sample(&mut rng), 50_000, arm.sample(&mut rng));
            if s % 250 == 0 {
                assert_eq!(restored(&t), t, "{sides:?}, second {s}");
            }
        }
        let mut back = restored(&t);
        for _ in 0..100 {
            let (b, c) = (arm.sample(&mut rng), arm.sample(&mut rng));
            assert_eq!(
                t.update(50_000, b, 50_000, c),
                back.update(50_000, b, 50_000, c)
            );
        }
        assert_eq!(back, t);
        assert!(
            !t.rejected() && t.e_value() < 1.0,
            "{sides:?}: {}",
            t.e_value()
        );
    }
}

/// Counts near `u64::MAX` move the logarithms of the wealth by about 10¹⁹, where a double
/// resolves only thousands of nats; identical arms must still show no evidence.
#[test]
fn identical_arms_with_counts_near_the_limit_show_no_evidence() {
    for sides in [Sides::CanaryWorse, Sides::TwoSided] {
        for k in [u64::MAX, u64::MAX / 3, 1 << 50] {
            let mut t = CountTest::new(CountTestConfig::new(0.05).with_sides(sides)).unwrap();
            for i in 0..10 {
                t.update(k, k / 3 + i % 2, k, k / 3 + i % 2);
            }
            assert!(t.e_value() < 1.0, "{sides:?}, {k}: {}", t.e_value());
            assert!(
                t.max_e_value() <= 1.0,
                "{sides:?}, {k}: {}",
                t.max_e_value()
            );
            assert_eq!(restored(&t), t, "{sides:?}, {k}");
        }
    }
}

/// `state` as YAML with the number at `pointer` written as `.nan`, read back as a `T`: the
/// error, or `None` if the state was taken.
fn read_with_nan<T: serde::Serialize + serde::de::DeserializeOwned>(
    state: &T,
    pointer: &str,
) -> Option<String> {
    let mut v = serde_json::to_value(state).unwrap();
    *v.pointer_mut(pointer).expect(pointer) = serde_json::json!("NAN_HERE");
    let yaml = serde_yaml_ng::to_string(&v)
        .unwrap()
        .replace("NAN_HERE", ".nan");
    serde_yaml_ng::from_str::<T>(&yaml)
        .err()
        .map(|e| e.to_string())
}

/// YAML carries NaN where JSON cannot; a logarithm of wealth read back as NaN would leave the
/// e-value NaN, a test that can never reject, so it is refused naming the field.
#[test]
fn a_count_test_read_back_with_a_logarithm_that_is_not_a_number_is_refused() {
    let mut t = CountTest::new(CountTestConfig::new(0.05).with_sides(Sides::TwoSided)).unwrap();
    for i in 0..300u64 {
        t.update(900, 5, 100, i % 2);
    }
    let yaml = serde_yaml_ng::to_string(&t).unwrap();
    assert_eq!(serde_yaml_ng::from_str::<CountTest>(&yaml).unwrap(), t);
    for (pointer, field) in [
        ("/worse/logPlug", "countTest.worse.logPlug"),
        ("/better/logGrid/2", "countTest.better.logGrid[2]"),
        ("/worse/logStarts/0", "countTest.worse.logStarts[0]"),
        ("/maxLogE", "countTest.maxLogE"),
    ] {
        let e = read_with_nan(&t, pointer).unwrap_or_else(|| panic!("{pointer} = NaN was taken"));
        assert!(e.contains(field), "{pointer}: {e}");
    }
}

/// The same for the latency test's start-time mixture.
#[test]
fn a_latency_test_read_back_with_a_start_mixture_that_is_not_a_number_is_refused() {
    let mut t = LatencyTest::new(LatencyTestConfig::new(0.05)).unwrap();
    for i in 0..200u32 {
        let mut b = LatencySketch::new();
        let mut c = LatencySketch::new();
        for k in 0..20u32 {
            b.add(10.0 + f64::from((k * 7 + i) % 11)).unwrap();
            c.add(10.0 + f64::from((k * 5 + i) % 11)).unwrap();
        }
        t.update(&b, &c);
    }
    let yaml = serde_yaml_ng::to_string(&t).unwrap();
    assert_eq!(serde_yaml_ng::from_str::<LatencyTest>(&yaml).unwrap(), t);
    for (pointer, field) in [
        ("/starts/logUp/0", "latencyTest.starts.logUp[0]"),
        ("/starts/logDown/2", "latencyTest.starts.logDown[2]"),
        ("/starts/nextAt/1", "latencyTest.starts.nextAt[1]"),
    ] {
        let e = read_with_nan(&t, pointer).unwrap_or_else(|| panic!("{pointer} = NaN was taken"));
        assert!(e.contains(field), "{pointer}: {e}");
    }
    // A bet with no candidate started would spend the first one's weight twice.
    let mut v = serde_json::to_value(&t).unwrap();
    v["starts"]["started"][1] = serde_json::json!(0);
    let e = serde_json::from_value::<LatencyTest>(v).unwrap_err();
    assert!(
        e.to_string().contains("latencyTest.starts.started[1]"),
        "{e}"
    );
}

/// Moments no latencies a double can hold have (a mean log of 10³⁰⁸, a variance whose sum of
/// squares overflows) are refused naming the field; the most extreme ones they can have leave
/// every number finite and the state restorable.
#[test]
fn moments_beyond_any_latency_are_refused_and_the_most_extreme_ones_keep_the_state_finite() {
    for (mean, variance, field) in [
        (1e308, 0.0, "logMoments.meanLog"),
        (-1e4, 0.0, "logMoments.meanLog"),
        (0.0, 1e300, "logMoments.varianceLog"),
    ] {
        let e = LogMoments::from_parts(u64::MAX, mean, variance).unwrap_err();
        assert!(e.to_string().contains(field), "{mean} {variance}: {e}");
    }
    let extreme = |mean: f64| LogMoments::from_parts(u64::MAX, mean, 2.0 * mean * mean).unwrap();
    // The logs of the smallest and the largest positive doubles.
    let (lowest, highest) = ((f64::MIN_POSITIVE * f64::EPSILON).ln(), f64::MAX.ln());
    let mut t = LatencyTest::new(LatencyTestConfig::new(0.05)).unwrap();
    for (b, c) in [(lowest, highest), (highest, lowest), (lowest, lowest)] {
        t.update_log_moments(extreme(b), extreme(c));
        t.update_log_moments(extreme(c), extreme(b));
        assert!(
            !t.e_value().is_nan() && !t.median_shift().is_nan(),
            "{b} {c}"
        );
        assert_eq!(restored(&t), t);
    }
}

/// A saved state can carry a finite mean log no latencies have, 10³⁰⁸: merged with the next
/// sample's, it makes the moments NaN and the state unsaveable. It is refused, naming the field,
/// as from the parts.
#[test]
fn a_latency_test_read_back_with_moments_no_latencies_have_is_refused() {
    let mut t = LatencyTest::new(LatencyTestConfig::new(0.05)).unwrap();
    for i in 0..30u32 {
        let mut b = LatencySketch::new();
        let mut c = LatencySketch::new();
        for k in 0..(20 + i % 7) {
            b.add(10.0 + f64::from((k * 7 + i) % 11)).unwrap();
        }
        for k in 0..5 {
            c.add(10.0 + f64::from((k * 5 + i) % 11)).unwrap();
        }
        t.update(&b, &c);
    }
    let saved = serde_json::to_value(&t).unwrap();
    assert_eq!(
        serde_json::from_value::<LatencyTest>(saved.clone()).unwrap(),
        t
    );
    for (pointer, field, v) in [
        ("/openBaseline/mean", "latencyTest.openBaseline.mean", 1e308),
        ("/openCanary/mean", "latencyTest.openCanary.mean", -1e4),
    ] {
        let mut state = saved.clone();
        *state.pointer_mut(pointer).expect(pointer) = serde_json::json!(v);
        let e = serde_json::from_value::<LatencyTest>(state)
            .expect_err(&format!("{pointer} = {v} was taken"))
            .to_string();
        assert!(e.contains(field), "{pointer}: {e}");
    }
}

/// Errors near `u64::MAX` in a sample whose canary holds nearly all the traffic, after one
/// that left the scatter diagnostic's batch open: the canary errors it expects, summed in
/// floats, must not outgrow the errors it holds, summed in integers, or the state it saves is
/// one its own check refuses.
#[test]
fn a_count_test_fed_errors_near_the_limit_restores_its_scatter() {
    let mut t = CountTest::new(CountTestConfig::new(0.05)).unwrap();
    for (br, be, cr, ce) in [
        (2_496_368, 2_496_368, u64::MAX, 1),
        (181_746, 181_746, u64::MAX - 283, u64::MAX - 283),
        (181_746, 181_746, u64::MAX, u64::MAX),
    ] {
        t.update(br, be, cr, ce);
        assert_eq!(restored(&t), t, "{br} {be} {cr} {ce}");
    }
}

/// The ratio's confidence sequence after 10¹⁵ errors and more: the log-likelihoods are about
/// 10¹⁷ nats, where `ln Γ` of the counts no longer resolves the few nats the interval is drawn
/// at; it must still hold the estimate, and the true ratio of a stream that errs exactly twice
/// as often in the canary.
#[test]
fn the_ratio_interval_after_astronomical_error_counts_holds_the_estimate() {
    for (requests, errors) in [
        (1u64 << 60, 1_000_000_000_000_007),
        (u64::MAX / 2, 3_333_333_333_333_333_333),
        (u64::MAX / 2, 123_456_789_012_345),
    ] {
        let mut t = CountTest::new(CountTestConfig::new(0.05)).unwrap();
        t.update(requests, errors, requests, 2 * errors);
        let (r, i) = (t.ratio_estimate(), t.ratio_interval().unwrap());
        assert!((r - 2.0).abs() < 1e-12, "{r}");
        assert!(
            i.lower <= r && r <= i.upper && i.upper - i.lower < 1e-3,
            "{i:?}"
        );
    }
}
