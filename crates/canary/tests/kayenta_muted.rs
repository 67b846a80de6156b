//! A muted metric in the Kayenta judge: classified and reported, never scored.

use serin_canary::judge::{Judge, Verdict};
use serin_canary::kayenta::{Direction, KayentaConfig, KayentaJudge, Quantity, RunConfig};
use serin_signals::{Metric, Timestamp};

fn config(muted: bool) -> KayentaConfig {
    let mut c = KayentaConfig::new(Metric::ErrorRate, Quantity::ErrorRate);
    c.metric_config.direction = Direction::Increase;
    c.metric_config.muted = muted;
    c
}

fn doubled(j: &mut KayentaJudge) {
    for i in 0..30 {
        let b = 0.010 + 0.001 * f64::from(i % 7);
        j.push_points(Some(b), Some(2.0 * b));
    }
}

#[test]
fn a_muted_metric_is_classified_but_decides_nothing() {
    let mut loud = KayentaJudge::new(config(false)).unwrap();
    doubled(&mut loud);
    assert!(loud.judgement(Timestamp::EPOCH).verdict.is_fail());

    // The same regression on a muted metric: reported as High, but it fails nothing.
    let mut muted = KayentaJudge::new(config(true)).unwrap();
    doubled(&mut muted);
    let j = muted.judgement(Timestamp::EPOCH);
    assert_eq!(j.verdict, Verdict::Inconclusive);
    assert!(
        j.evidence.summary.contains("label High"),
        "{}",
        j.evidence.summary
    );
    assert!(
        j.evidence.summary.contains("Muted"),
        "{}",
        j.evidence.summary
    );
    assert!(j.evidence.primary_effect().is_some());

    // Nor does a clean canary count as evidence for promotion.
    let mut clean = KayentaJudge::new(config(true)).unwrap();
    for i in 0..30 {
        let b = 0.010 + 0.001 * f64::from(i % 7);
        clean.push_points(Some(b), Some(b));
    }
    assert_eq!(
        clean.judgement(Timestamp::EPOCH).verdict,
        Verdict::Inconclusive
    );
}

#[test]
fn a_muted_metric_cannot_run_alone() {
    let e = KayentaJudge::new(config(true).with_run(RunConfig::new(60).every(1)))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("kayentaConfig.metricConfig.muted") && e.contains("true"),
        "{e}"
    );
}
