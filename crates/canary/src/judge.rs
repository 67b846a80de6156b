//! The [`Judge`] trait and the values every judge shares: what it is fed ([`Sample`]), what it
//! answers ([`Judgement`] = [`Verdict`] + [`Evidence`]), and how bad a failure is ([`Severity`]).
//!
//! A judge is a stateful, synchronous analysis of **one metric**: it is fed a paired sample of the
//! baseline and the canary over the same window, with `now`, and answers at once. It never reads a
//! clock or does I/O, so a run can be replayed exactly from its inputs. Missing evidence (no data,
//! NaN, a source error) is always [`Verdict::Inconclusive`], never a pass.

use std::fmt;

use serde::{Deserialize, Serialize};
use serin_signals::{Metric, Observation, Timestamp, Window};

use crate::{Error, Result};

/// How bad a detected anomaly is. Ordered: `Info < Warning < Critical`.
///
/// Severity comes from configurable effect-size bands (see the `severity` module); a `Critical`
/// failure asks the controller for an immediate rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Severity {
    /// Statistically real but below the warning band: worth reporting, not worth acting on alone.
    Info,
    /// A regression large enough to stop the rollout.
    Warning,
    /// A regression so large that traffic must go back to the baseline immediately.
    Critical,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        })
    }
}

/// What a judge answers about the canary after the samples it has seen so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Verdict {
    /// The canary is not worse than the baseline by more than the judge's margin.
    ///
    /// Sequential judges answer `Pass` only once they have enough evidence of that (for example a
    /// confidence interval that excludes the margin); until then they answer `Inconclusive`.
    Pass,
    /// The canary is worse, with the given severity.
    Fail(Severity),
    /// Not enough evidence either way (including no data, NaN or a source error).
    Inconclusive,
}

impl Verdict {
    /// Whether this verdict is a failure of any severity.
    pub fn is_fail(&self) -> bool {
        matches!(self, Verdict::Fail(_))
    }

    /// The severity of a failure, if this is one.
    pub fn severity(&self) -> Option<Severity> {
        match self {
            Verdict::Fail(s) => Some(*s),
            _ => None,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Pass => f.write_str("pass"),
            Verdict::Fail(s) => write!(f, "fail ({s})"),
            Verdict::Inconclusive => f.write_str("inconclusive"),
        }
    }
}

/// A pair of values, one per arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArmValues<T> {
    /// The baseline arm's value.
    pub baseline: T,
    /// The canary arm's value.
    pub canary: T,
}

impl<T> ArmValues<T> {
    /// Both values.
    pub fn new(baseline: T, canary: T) -> Self {
        ArmValues { baseline, canary }
    }
}

/// A two-sided interval `[lower, upper]` at a stated confidence `level` (for example `0.95`).
///
/// For sequential judges the interval is a *confidence sequence*: it covers the true value at
/// every time simultaneously with the stated probability, so it may be read after any sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Interval {
    /// Lower bound (may be `-inf` when unbounded).
    #[serde(with = "serin_signals::float")]
    pub lower: f64,
    /// Upper bound (may be `+inf` when unbounded).
    #[serde(with = "serin_signals::float")]
    pub upper: f64,
    /// Coverage probability, in `(0, 1)`.
    #[serde(with = "serin_signals::float")]
    pub level: f64,
}

impl Interval {
    /// Whether `x` lies in `[lower, upper]`.
    pub fn contains(&self, x: f64) -> bool {
        self.lower <= x && x <= self.upper
    }
}

/// An estimated effect of the canary relative to the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Effect {
    /// What is estimated, in camelCase: `errorRateRatio`, `medianShift`, `p99Shift`, `meanRatio`,
    /// `hodgesLehmannShift`, `cles`, ...
    pub name: String,
    /// The point estimate (`NaN` when it cannot be computed, for example a ratio over zero).
    #[serde(with = "serin_signals::float")]
    pub estimate: f64,
    /// Its interval, when the judge has one.
    pub interval: Option<Interval>,
}

/// The number a judge compared against its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Statistic {
    /// An e-value (the value of a test supermartingale); the judge fails at `e >= 1/alpha`.
    EValue(#[serde(with = "serin_signals::float")] f64),
    /// A p-value (anytime-valid for sequential judges); the judge fails at `p <= alpha`.
    PValue(#[serde(with = "serin_signals::float")] f64),
    /// A score (Kayenta's 0..100 canary score, a count of failed checks, a measured value).
    Score(#[serde(with = "serin_signals::float")] f64),
}

/// Why a judge answered what it answered: everything a promotion or rollback must carry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Evidence {
    /// The judge's name (`sequential-counts`, `kayenta`, `argo`, ...).
    pub judge: String,
    /// The metric judged.
    pub metric: Metric,
    /// When the judgement was made.
    pub at: Timestamp,
    /// The window of data the judgement covers (first sample's start to last sample's end), if
    /// any data was seen.
    pub window: Option<Window>,
    /// How many units of data each arm contributed (requests, errors, latency values or points;
    /// the judge's docs say which).
    pub sample_size: ArmValues<u64>,
    /// Arm-level estimates (error rate, median latency, mean, ...), `None` when an arm has no data.
    pub estimates: ArmValues<Option<f64>>,
    /// Effect estimates, the primary one first.
    pub effects: Vec<Effect>,
    /// The test statistic, if one was computed.
    pub statistic: Option<Statistic>,
    /// The threshold the statistic was compared with (`1/alpha` for an e-value, `alpha` for a
    /// p-value, the pass score, the limit).
    #[serde(with = "serin_signals::float::option")]
    pub threshold: Option<f64>,
    /// One human sentence: what was found and why the verdict follows.
    pub summary: String,
}

impl Evidence {
    /// Evidence with no data yet: sizes zero, no estimates, no statistic.
    pub fn empty(judge: impl Into<String>, metric: Metric, at: Timestamp) -> Self {
        Evidence {
            judge: judge.into(),
            metric,
            at,
            window: None,
            sample_size: ArmValues::default(),
            estimates: ArmValues::default(),
            effects: Vec::new(),
            statistic: None,
            threshold: None,
            summary: String::new(),
        }
    }

    /// The primary effect, if any.
    pub fn primary_effect(&self) -> Option<&Effect> {
        self.effects.first()
    }
}

/// A verdict with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Judgement {
    /// What the judge answers.
    pub verdict: Verdict,
    /// Why.
    pub evidence: Evidence,
}

impl Judgement {
    /// An inconclusive judgement whose summary says why.
    pub fn inconclusive(mut evidence: Evidence, summary: impl Into<String>) -> Self {
        evidence.summary = summary.into();
        Judgement {
            verdict: Verdict::Inconclusive,
            evidence,
        }
    }
}

/// What a judge is fed: the baseline's and the canary's observation of one metric over the same
/// window, the canary's share of the traffic the two arms received, and `now`.
///
/// Construct it with [`Sample::new`], which checks that the two observations agree (same metric,
/// the baseline and canary windows equal) and that the share is a fraction in `(0, 1)`.
///
/// ```
/// use serin_canary::judge::Sample;
/// use serin_signals::{Counts, Measurement, Metric, Observation, Timestamp, Track, Window};
///
/// let w = Window::new(Timestamp::from_millis(0), Timestamp::from_millis(1_000))?;
/// let base = Observation::new(Metric::ErrorRate, Track::Stable, w,
///     Measurement::Counts(Counts::new(950, 5)?));
/// let can = Observation::new(Metric::ErrorRate, Track::Canary, w,
///     Measurement::Counts(Counts::new(50, 1)?));
/// let sample = Sample::new(&base, &can, Some(0.05), Timestamp::from_millis(1_000))?;
/// assert_eq!(sample.metric(), &Metric::ErrorRate);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample<'a> {
    baseline: &'a Observation,
    canary: &'a Observation,
    canary_share: Option<f64>,
    now: Timestamp,
}

impl<'a> Sample<'a> {
    /// A paired sample. `canary_share` is the fraction of the two arms' traffic routed to the
    /// canary by the current split (`0.05` for a 5% canary against a 95% baseline), or `None`
    /// when unknown. Judges that need the share per sample prefer the observed request counts
    /// when the measurement has them; the sequential count judge uses the stated share to notice
    /// a change of split.
    ///
    /// Errors if the tracks are the same (a track compared with itself passes any canary),
    /// the metrics differ, the windows differ, or the share is not in `(0, 1)`.
    pub fn new(
        baseline: &'a Observation,
        canary: &'a Observation,
        canary_share: Option<f64>,
        now: Timestamp,
    ) -> Result<Self> {
        if baseline.track == canary.track {
            return Err(Error::invalid_input(
                "sample.canary.track",
                &canary.track,
                "is also sample.baseline.track: a sample compares two tracks",
            ));
        }
        if baseline.metric != canary.metric {
            return Err(Error::invalid_input(
                "sample.canary.metric",
                &canary.metric,
                format!("differs from sample.baseline.metric `{}`", baseline.metric),
            ));
        }
        if baseline.window != canary.window {
            return Err(Error::invalid_input(
                "sample.canary.window",
                canary.window,
                format!("differs from sample.baseline.window {}", baseline.window),
            ));
        }
        if let Some(share) = canary_share
            && !(share > 0.0 && share < 1.0)
        {
            return Err(Error::invalid_input(
                "sample.canaryShare",
                share,
                "must be a fraction strictly between 0 and 1",
            ));
        }
        Ok(Sample {
            baseline,
            canary,
            canary_share,
            now,
        })
    }

    /// The baseline's observation.
    pub fn baseline(&self) -> &'a Observation {
        self.baseline
    }

    /// The canary's observation.
    pub fn canary(&self) -> &'a Observation {
        self.canary
    }

    /// The canary's share of the two arms' traffic, if the caller stated it.
    pub fn canary_share(&self) -> Option<f64> {
        self.canary_share
    }

    /// The time of the judgement.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// The metric both observations measure.
    pub fn metric(&self) -> &'a Metric {
        &self.baseline.metric
    }

    /// The window both observations cover.
    pub fn window(&self) -> Window {
        self.baseline.window
    }
}

/// A stateful, synchronous analysis of one metric of the canary against the baseline.
///
/// Feed it every paired sample as it arrives with [`Judge::observe`]; each call updates the state
/// and answers the current [`Judgement`]. A judge never reads a clock, sleeps or does I/O, and
/// bad input (a sample of another metric, a measurement of the wrong kind) returns an error and
/// leaves the state unchanged. No data is [`Verdict::Inconclusive`], never a pass.
///
/// The trait is object-safe and `Send`, so a controller can hold `Box<dyn Judge>`s of different
/// kinds. Implementations in this crate derive `serde` traits on their concrete types, so their
/// state can be journalled and an interrupted analysis resumed exactly.
pub trait Judge: Send + fmt::Debug {
    /// A short stable name for evidence and logs (`sequential-counts`, `kayenta`, ...).
    fn name(&self) -> &str;

    /// The metric this judge analyses; samples of other metrics are rejected. A judge of
    /// several metrics names the first, for evidence (see [`analyses`](Self::analyses)).
    fn metric(&self) -> &Metric;

    /// Whether samples of `metric` are for this judge: the default, its own
    /// [`metric`](Self::metric). A judge that analyses several metrics together answers for
    /// each of them, and the controller feeds it every one (Flagger's analysis keeps one
    /// failed-check counter for all its metrics:
    /// [`FlaggerAnalysis`](crate::threshold::FlaggerAnalysis)).
    fn analyses(&self, metric: &Metric) -> bool {
        self.metric() == metric
    }

    /// Every metric the judge [analyses](Self::analyses), once each, [`metric`](Self::metric)
    /// first: what a caller must read to feed it. The default is the one metric; a judge of
    /// several metrics lists them all.
    fn analysed_metrics(&self) -> Vec<Metric> {
        vec![self.metric().clone()]
    }

    /// Updates the state with one paired sample and answers the judgement after it.
    fn observe(&mut self, sample: &Sample<'_>) -> Result<Judgement>;

    /// Whether [`observe`](Self::observe) takes `sample`: `Ok` if it does, else the error it
    /// would answer. Changes nothing, so a caller that feeds one sample to several judges (the
    /// controller, to every judge of its metric) checks them all before feeding any, and bad
    /// input changes none of them.
    ///
    /// The default checks the metric ([`check_metric`]), which is all a judge of one metric
    /// that takes a measurement of any kind rejects; a judge whose `observe` rejects more, or
    /// that takes several metrics ([`analyses`](Self::analyses)), checks that here.
    fn accepts(&self, sample: &Sample<'_>) -> Result<()> {
        check_metric(self.name(), self.metric(), sample)
    }

    /// The judgement after the samples seen so far, stamped `now`, without new data.
    fn judgement(&self, now: Timestamp) -> Judgement;

    /// Forgets every sample seen (for example when a new analysis step starts from scratch);
    /// the configuration is kept.
    fn reset(&mut self);

    /// Whether the judge's analysis has ended: samples fed from now on change nothing, and its
    /// judgement is final until [`reset`](Self::reset). Parity judges with a bounded run end
    /// like their originals: an Argo Rollouts analysis run once it leaves `Running`, a Kayenta
    /// run once its last judgement is made, a Flagger analysis once it rolls back.
    ///
    /// A judge that has concluded while answering [`Verdict::Inconclusive`] will never pass:
    /// the controller does not wait it out, nor move past it as it moves past an analysis step
    /// whose time ran out, but applies the policy's `onInconclusive` at once (Argo Rollouts
    /// pauses a rollout whose run ended `Inconclusive` for a person to decide).
    ///
    /// The default is `false`, right for every judge that keeps going: the sequential judges
    /// are anytime-valid, so they may always be fed and read again, and never conclude.
    fn concluded(&self) -> bool {
        false
    }

    /// Whether the judge only advises: its verdict is recorded but never decides, as for a
    /// metric in Argo Rollouts' dry run. The controller feeds it and lists its evidence in
    /// every decision, marked as a dry run, but never waits for its samples or its pass, nor
    /// holds or rolls back for its failure.
    ///
    /// The default is `false`: a judge's verdict decides.
    fn advisory(&self) -> bool {
        false
    }
}

impl<J: Judge + ?Sized> Judge for Box<J> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn metric(&self) -> &Metric {
        (**self).metric()
    }
    fn analyses(&self, metric: &Metric) -> bool {
        (**self).analyses(metric)
    }
    fn analysed_metrics(&self) -> Vec<Metric> {
        (**self).analysed_metrics()
    }
    fn observe(&mut self, sample: &Sample<'_>) -> Result<Judgement> {
        (**self).observe(sample)
    }
    fn accepts(&self, sample: &Sample<'_>) -> Result<()> {
        (**self).accepts(sample)
    }
    fn judgement(&self, now: Timestamp) -> Judgement {
        (**self).judgement(now)
    }
    fn reset(&mut self) {
        (**self).reset()
    }
    fn concluded(&self) -> bool {
        (**self).concluded()
    }
    fn advisory(&self) -> bool {
        (**self).advisory()
    }
}

/// Checks that `sample` measures `metric`; the shared first step of every judge's `observe`.
pub fn check_metric(judge: &str, metric: &Metric, sample: &Sample<'_>) -> Result<()> {
    if sample.metric() != metric {
        return Err(Error::invalid_input(
            "sample.metric",
            sample.metric(),
            format!("judge `{judge}` analyses metric `{metric}`"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serin_signals::{Counts, Measurement, Track};

    fn obs(metric: Metric, track: Track, end: u64) -> Observation {
        let w = Window::new(Timestamp::from_millis(0), Timestamp::from_millis(end)).unwrap();
        Observation::new(
            metric,
            track,
            w,
            Measurement::Counts(Counts::new(10, 1).unwrap()),
        )
    }

    #[test]
    fn sample_rejects_mismatched_pairs_and_bad_shares() {
        let b = obs(Metric::ErrorRate, Track::Stable, 1_000);
        let now = Timestamp::from_millis(1_000);
        let other_metric = obs(Metric::Latency, Track::Canary, 1_000);
        let msg = Sample::new(&b, &other_metric, None, now)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("sample.canary.metric") && msg.contains("latency"),
            "{msg}"
        );
        let other_window = obs(Metric::ErrorRate, Track::Canary, 2_000);
        let msg = Sample::new(&b, &other_window, None, now)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("sample.canary.window"), "{msg}");
        let c = obs(Metric::ErrorRate, Track::Canary, 1_000);
        for bad in [0.0, 1.0, -0.1, f64::NAN] {
            let msg = Sample::new(&b, &c, Some(bad), now).unwrap_err().to_string();
            assert!(msg.contains("sample.canaryShare"), "{msg}");
        }
        let s = Sample::new(&b, &c, Some(0.2), now).unwrap();
        assert_eq!(s.canary_share(), Some(0.2));
        assert!(check_metric("j", &Metric::Latency, &s).is_err());
        assert!(check_metric("j", &Metric::ErrorRate, &s).is_ok());
    }

    #[test]
    fn verdicts_serialize_in_camel_case_and_order_severities() {
        assert!(Severity::Info < Severity::Warning && Severity::Warning < Severity::Critical);
        let v = Verdict::Fail(Severity::Critical);
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, r#"{"fail":"critical"}"#);
        assert_eq!(serde_json::from_str::<Verdict>(&json).unwrap(), v);
        assert_eq!(v.severity(), Some(Severity::Critical));
        assert_eq!(v.to_string(), "fail (critical)");
        assert!(!Verdict::Inconclusive.is_fail());
    }
}
