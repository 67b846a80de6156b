//! The sequential tests as [`Judge`]s: fed paired observations, answering with evidence.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serin_signals::{Counts, LatencySketch, Measurement, Metric, Timestamp, Window};

use super::batch::{BatchCountConfig, BatchCountTest};
use super::counts::{CountTest, CountTestConfig};
use super::latency::{LatencyTest, LatencyTestConfig, LatencyVariance};
use super::onset_clock::OnsetClock;
use super::settings::Sides;
use super::starts::LateStart;
use crate::judge::{
    ArmValues, Effect, Evidence, Interval, Judge, Judgement, Sample, Severity, Statistic, Verdict,
    check_metric,
};
use crate::severity::SeverityBands;
use crate::{Error, Result};

/// Which count test a [`SequentialCountJudge`] runs: a map with one key, `{"perRequest": {...}}`
/// or `{"batched": {...}}`, in YAML `batched: {alpha: 0.01}`. (Serde's own form of an enum in
/// YAML, a tag such as `!batched {alpha: 0.01}`, is read too.)
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CountMode {
    /// The per-request e-process ([`CountTest`]): fastest, exact for independent requests.
    PerRequest(CountTestConfig),
    /// The batch t-test ([`BatchCountTest`]): robust to error rates that wander over time.
    Batched(BatchCountConfig),
}

/// The names of [`CountMode`]'s kinds, as written.
const COUNT_MODES: &[&str] = &["perRequest", "batched"];

impl Serialize for CountMode {
    /// A map with one key where people read it, serde's own variant in compact binary forms.
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use crate::one_key::{OneKey as _, write};
        match self {
            CountMode::PerRequest(c) => write(s, Self::NAME, Self::KINDS, 0, c),
            CountMode::Batched(c) => write(s, Self::NAME, Self::KINDS, 1, c),
        }
    }
}

impl<'de> Deserialize<'de> for CountMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        crate::one_key::read(d)
    }
}

impl crate::one_key::OneKey for CountMode {
    const NAME: &'static str = "CountMode";
    const KINDS: &'static [&'static str] = COUNT_MODES;
    const WHAT: &'static str = "a count mode";

    fn value<'de, V: crate::one_key::Value<'de>>(
        index: usize,
        value: V,
    ) -> std::result::Result<Self, V::Error> {
        Ok(match index {
            0 => CountMode::PerRequest(value.read()?),
            _ => CountMode::Batched(value.read()?),
        })
    }
}

/// The test a count judge runs, with its state: saved as a map with one key, as [`CountMode`].
#[derive(Debug, Clone, PartialEq)]
enum CountEngine {
    PerRequest(Box<CountTest>),
    Batched(BatchCountTest),
}

impl Serialize for CountEngine {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use crate::one_key::{OneKey as _, write};
        match self {
            CountEngine::PerRequest(t) => write(s, Self::NAME, Self::KINDS, 0, t),
            CountEngine::Batched(t) => write(s, Self::NAME, Self::KINDS, 1, t),
        }
    }
}

impl<'de> Deserialize<'de> for CountEngine {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        crate::one_key::read(d)
    }
}

impl crate::one_key::OneKey for CountEngine {
    const NAME: &'static str = "CountEngine";
    const KINDS: &'static [&'static str] = COUNT_MODES;
    const WHAT: &'static str = "a count test";

    fn value<'de, V: crate::one_key::Value<'de>>(
        index: usize,
        value: V,
    ) -> std::result::Result<Self, V::Error> {
        Ok(match index {
            0 => CountEngine::PerRequest(value.read()?),
            _ => CountEngine::Batched(value.read()?),
        })
    }
}

impl CountEngine {
    /// Marks a change of the stated split (see each test's `start_segment`).
    fn start_segment(&mut self) {
        match self {
            CountEngine::PerRequest(t) => t.start_segment(),
            CountEngine::Batched(t) => t.start_segment(),
        }
    }

    fn update(&mut self, br: u64, be: u64, cr: u64, ce: u64) {
        match self {
            CountEngine::PerRequest(t) => {
                t.update(br, be, cr, ce);
            }
            CountEngine::Batched(t) => {
                t.update(br, be, cr, ce);
            }
        }
    }
    fn rejected_worse(&self) -> Option<bool> {
        match self {
            CountEngine::PerRequest(t) => t.rejected_worse(),
            CountEngine::Batched(t) => t.rejected_worse(),
        }
    }
    fn e_value(&self) -> f64 {
        match self {
            CountEngine::PerRequest(t) => t.e_value(),
            CountEngine::Batched(t) => t.e_value(),
        }
    }
    fn threshold(&self) -> f64 {
        match self {
            CountEngine::PerRequest(t) => t.threshold(),
            CountEngine::Batched(t) => t.threshold(),
        }
    }
    fn margin(&self) -> f64 {
        match self {
            CountEngine::PerRequest(t) => t.config().margin,
            CountEngine::Batched(t) => t.config().margin,
        }
    }
    fn sides(&self) -> Sides {
        match self {
            CountEngine::PerRequest(t) => t.config().sides,
            CountEngine::Batched(t) => t.config().sides,
        }
    }
    fn ratio(&self) -> (f64, Option<Interval>) {
        match self {
            CountEngine::PerRequest(t) => (t.ratio_estimate(), t.ratio_interval()),
            CountEngine::Batched(t) => (t.ratio_estimate(), t.ratio_interval()),
        }
    }
    fn reset(&mut self) {
        match self {
            CountEngine::PerRequest(t) => t.reset(),
            CountEngine::Batched(t) => t.reset(),
        }
    }

    /// The confidence of the ratio's interval at `level`, as evidence writes it: the per-request
    /// test's interval restarts at each new split and spends that split's share of `α`; the
    /// batched test's runs over the whole analysis at `1 − α`.
    fn confidence_text(&self, level: f64) -> String {
        match self {
            CountEngine::PerRequest(t) => format!(
                "{} (traffic split {}'s share of alpha = {})",
                level_text(level),
                t.segments(),
                t.config().alpha
            ),
            CountEngine::Batched(_) => level_text(level),
        }
    }

    /// The start the per-request test's start-time mixture rejected for; the batched test has
    /// no such mixture.
    fn late_start(&self) -> Option<LateStart> {
        match self {
            CountEngine::PerRequest(t) => t.late_start(),
            CountEngine::Batched(_) => None,
        }
    }

    /// The per-request test's followed candidate starts and its samples so far; the batched
    /// test has no start-time mixture.
    fn followed_starts(&self) -> Option<([u64; 3], u64)> {
        match self {
            CountEngine::PerRequest(t) => Some((t.followed_starts(), t.updates())),
            CountEngine::Batched(_) => None,
        }
    }

    /// The per-request test's note of excess scatter; the batched test estimates that scatter.
    fn excess_scatter(&self) -> Option<f64> {
        match self {
            CountEngine::PerRequest(t) => t.excess_scatter(),
            CountEngine::Batched(_) => None,
        }
    }
}

/// An error-rate ratio as a summary writes it: an infinite ratio (only the canary has erred)
/// and an undefined one (no errors yet) in words.
fn ratio_text(ratio: f64) -> String {
    if ratio.is_nan() {
        "undefined: no errors yet".to_owned()
    } else if ratio.is_infinite() {
        "unbounded: no baseline errors yet".to_owned()
    } else {
        format!("{ratio:.3}")
    }
}

/// `1/α` (or any threshold of an e-value) as evidence writes it: to one decimal, two below 10,
/// without trailing zeros. Rounded to a whole number, `α = 0.03` would read 33 where the test
/// needs 33.3; a round `α` keeps its round threshold (`0.05` reads 20, not 20.0). From a
/// million on, three significant digits with an exponent (`4.21e34`): an e-value that has
/// long passed its threshold would otherwise print dozens of digits.
pub(crate) fn threshold_text(threshold: f64) -> String {
    if threshold.abs() >= 1e6 {
        return format!("{threshold:.2e}");
    }
    let decimals = if threshold.abs() < 10.0 { 2 } else { 1 };
    without_trailing_zeros(format!("{threshold:.decimals$}"))
}

/// A confidence level as evidence writes it: to three significant digits of the chance it
/// leaves (`0.9696`, `0.99662`), so that a split's small share of `α` does not read as a
/// level of 1.000; at most 17 decimals, which a double holds.
fn level_text(level: f64) -> String {
    let decimals = (2.0 - (1.0 - level).log10().floor()).clamp(3.0, 17.0) as usize;
    without_trailing_zeros(format!("{level:.decimals$}"))
}

fn without_trailing_zeros(text: String) -> String {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// What a failure's summary adds when the start-time mixture decided it: the start it weighs
/// most among the `samples` so far (and when it began, `onset`, where the judge saw it taken),
/// the effect since then (`since`, which `what` introduces) and the figure the judge states for
/// the longer period (`longer`), so that a failure beside a whole-run estimate near 0 reads as
/// the late regression it is.
fn late_start_text(
    late: &LateStart,
    onset: Option<Timestamp>,
    samples: u64,
    what: &str,
    since: String,
    longer: String,
) -> String {
    let confidence = late
        .interval
        .map(|i| format!(" at confidence {}", level_text(i.level)))
        .unwrap_or_default();
    let start = match onset {
        Some(at) => format!("{at} (sample {} of {samples})", late.after + 1),
        None => format!("sample {} (of {samples})", late.after + 1),
    };
    format!(
        " Decided by the start-time mixture, a change that began late: since {start}, the start \
         it weighs most, {what} {since}{confidence}, against {longer}."
    )
}

/// The effect `name` since a late start, for the evidence's effects.
fn since_effect(name: &str, late: &LateStart) -> Effect {
    Effect {
        name: name.into(),
        estimate: late.estimate,
        interval: late.interval,
    }
}

/// Reads a count judge's last stated split (see [`stated_share`]).
fn count_stated_share<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<f64>, D::Error> {
    stated_share(d, "sequentialCountJudge.lastStatedShare")
}

/// Reads a latency judge's last stated split (see [`stated_share`]).
fn latency_stated_share<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<f64>, D::Error> {
    stated_share(d, "sequentialLatencyJudge.lastStatedShare")
}

/// Reads a judge's last stated split, the field at `path`, as a sample states it: strictly
/// between 0 and 1. An edited or damaged journal with a share no sample can state (or NaN,
/// which YAML writes) is refused on load.
fn stated_share<'de, D: serde::Deserializer<'de>>(
    d: D,
    path: &str,
) -> std::result::Result<Option<f64>, D::Error> {
    let share = Option::<f64>::deserialize(d)?;
    if let Some(v) = share
        && !(v > 0.0 && v < 1.0)
    {
        return Err(serde::de::Error::custom(Error::invalid_input(
            path,
            v,
            "must be a fraction strictly between 0 and 1, as a sample's stated share is",
        )));
    }
    Ok(share)
}

/// Totals and time span shared by both sequential judges.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Seen {
    span: Option<Window>,
    units: ArmValues<u64>,
    errors: ArmValues<u64>,
    samples: u64,
}

impl Seen {
    fn add_window(&mut self, w: Window) {
        self.span = Some(match self.span {
            None => w,
            Some(s) => Window::new(s.start().min(w.start()), s.end().max(w.end())).unwrap_or(s),
        });
        self.samples = self.samples.saturating_add(1);
    }
}

/// The default judge for counts (errors, 5xx, crashes): the anytime-valid sequential count test
/// on a metric observed as [`serin_signals::Counts`].
///
/// Verdicts: `Fail(severity)` once the e-value has reached `1/α` (the severity from the
/// effect-size bands on the estimated ratio − 1, since the start the start-time mixture weighs
/// most when it decided a late regression; a two-sided failure because the canary has
/// *fewer* errors is at most a warning, see [`SeverityBands::classify_failure`]); `Pass` once
/// the confidence sequence of the ratio lies entirely below `1 + margin` (two-sided, also above
/// `1/(1 + margin)`, so a two-sided judge passes only with a margin above 0); otherwise
/// `Inconclusive`. The per-request test's sequence restarts when the stated split changes, and
/// the `k`-th split's runs at level `1 − α·6/(π²k²)` ([`CountTest::ratio_interval`]), so that
/// a canary worse than the limit passes at any split of the rollout with probability at most
/// `α`; the batched test's runs over the whole analysis at `1 − α`. The evidence states the
/// level in the interval and in its summary. A sample with no data is `Inconclusive` (a
/// failure already established stays a failure). A failure that the per-request test's
/// start-time mixture decided ([`CountTest::late_start`]) also names the start it weighs most
/// (the end of the sample after which it began, and its number) and the ratio since then (the effect `errorRateRatioSinceOnset`), beside the current split's:
/// a regression that began late fails while the split's ratio may still sit near 1.
///
/// ```
/// use serin_canary::judge::{Judge, Sample, Verdict};
/// use serin_canary::sequential::SequentialCountJudge;
/// use serin_signals::{Counts, Measurement, Metric, Observation, Timestamp, Track, Window};
///
/// let mut judge = SequentialCountJudge::new(Metric::ErrorRate, 0.05, 0.0)?;
/// let mut verdict = Verdict::Inconclusive;
/// for s in 0..300u64 {
///     let w = Window::new(Timestamp::from_millis(s * 1000), Timestamp::from_millis((s + 1) * 1000))?;
///     let base = Observation::new(Metric::ErrorRate, Track::Stable, w,
///         Measurement::Counts(Counts::new(450, 2 + s % 2)?));
///     let can = Observation::new(Metric::ErrorRate, Track::Canary, w,
///         Measurement::Counts(Counts::new(50, 1)?)); // ~4 times the baseline's rate
///     let sample = Sample::new(&base, &can, Some(0.1), w.end())?;
///     verdict = judge.observe(&sample)?.verdict;
///     if verdict.is_fail() { break; }
/// }
/// assert!(verdict.is_fail());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SequentialCountJudge {
    metric: Metric,
    severity: SeverityBands,
    engine: CountEngine,
    seen: Seen,
    #[serde(default, deserialize_with = "count_stated_share")]
    last_stated_share: Option<f64>,
    /// The failure's severity, from the ratio when the test rejected: later segments of the
    /// ratio (a new split) must not reclassify a failure already reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rejected_severity: Option<Severity>,
    /// When the candidate starts the test follows began.
    #[serde(default, skip_serializing_if = "OnsetClock::is_empty")]
    onsets: OnsetClock,
}

/// A rejection's effect as its direction reads it: the part on the side the test found
/// (`worse`: above no change, else below it), 0 for an estimate on the other side (a diluted
/// whole-run estimate, say), which would otherwise be graded by the size of a change the test
/// did not find. NaN stays NaN (graded critical).
fn directed(effect: f64, worse: bool) -> f64 {
    match (effect.is_nan(), worse) {
        (true, _) => effect,
        (false, true) => effect.max(0.0),
        (false, false) => effect.min(0.0),
    }
}

impl SequentialCountJudge {
    /// The judge's name in evidence.
    pub const NAME: &'static str = "sequential-counts";

    /// The ratio a rejection is graded by: since the start the start-time mixture weighed most
    /// when a late regression decided it, else over the run: across every split once errors
    /// came in more than one (the current split's ratio, just after a change, rests on a few
    /// errors: ten gave 6 for a 1.4x regression), else the one split's, which the evidence
    /// states. A regression that began after a good hour is as severe as its ratio since
    /// then; the run's, diluted by that hour, would grade a fivefold regression a warning.
    fn graded_ratio(&self) -> f64 {
        self.engine.late_start().map_or_else(
            || match &self.engine {
                CountEngine::PerRequest(t)
                    if t.segments() > 1 && !t.run_ratio_estimate().is_nan() =>
                {
                    t.run_ratio_estimate()
                }
                _ => self.engine.ratio().0,
            },
            |late| late.estimate,
        )
    }

    /// The severity of a rejection that found the canary `worse` (or better).
    fn failure_severity(&self, worse: bool) -> Severity {
        self.severity
            .classify_failure(directed(self.graded_ratio() - 1.0, worse), worse)
    }

    /// A per-request judge of `metric` at level `alpha`, failing only if the canary's rate is
    /// more than `(1 + margin)` times the baseline's, with the default severity bands, for
    /// per-second samples (its prior on when a late regression began spans
    /// [`CountTestConfig::restart_horizon`] of them; [`with_mode`](Self::with_mode) sets
    /// another span).
    pub fn new(metric: Metric, alpha: f64, margin: f64) -> Result<Self> {
        Self::with_mode(
            metric,
            CountMode::PerRequest(CountTestConfig::new(alpha).with_margin(margin)),
            SeverityBands::default(),
        )
    }

    /// A judge with a chosen test and severity bands.
    pub fn with_mode(metric: Metric, mode: CountMode, severity: SeverityBands) -> Result<Self> {
        let engine = match mode {
            CountMode::PerRequest(c) => CountEngine::PerRequest(Box::new(CountTest::new(c)?)),
            CountMode::Batched(c) => CountEngine::Batched(BatchCountTest::new(c)?),
        };
        Ok(SequentialCountJudge {
            metric,
            severity,
            engine,
            seen: Seen::default(),
            last_stated_share: None,
            rejected_severity: None,
            onsets: OnsetClock::default(),
        })
    }

    /// A robust (batched) judge of `metric` at level `alpha` with the given margin, for
    /// per-second samples (a batch spans at least [`BatchCountConfig::min_samples`] of them;
    /// [`with_mode`](Self::with_mode) sets another span).
    pub fn robust(metric: Metric, alpha: f64, margin: f64) -> Result<Self> {
        Self::with_mode(
            metric,
            CountMode::Batched(BatchCountConfig::new(alpha).with_margin(margin)),
            SeverityBands::default(),
        )
    }

    /// The test this judge runs, with its settings.
    pub fn mode(&self) -> CountMode {
        match &self.engine {
            CountEngine::PerRequest(t) => CountMode::PerRequest(*t.config()),
            CountEngine::Batched(t) => CountMode::Batched(*t.config()),
        }
    }

    /// With one- or two-sided testing (a two-sided judge also fails a canary that is *better*
    /// beyond the margin, for counts where fewer is suspicious).
    pub fn with_sides(mut self, sides: Sides) -> Result<Self> {
        let mode = match self.mode() {
            CountMode::PerRequest(c) => CountMode::PerRequest(c.with_sides(sides)),
            CountMode::Batched(c) => CountMode::Batched(BatchCountConfig { sides, ..c }),
        };
        self = Self::with_mode(self.metric, mode, self.severity)?;
        Ok(self)
    }
}

fn no_data_judgement(sample: &Sample<'_>, current: Judgement, what: &str) -> Judgement {
    if current.verdict.is_fail() {
        return current;
    }
    let mut evidence = current.evidence;
    evidence.at = sample.now();
    Judgement::inconclusive(
        evidence,
        format!(
            "{what} over {}: inconclusive, never a pass.",
            sample.window()
        ),
    )
}

fn arm_no_data(sample: &Sample<'_>) -> Option<&'static str> {
    which_arms(
        sample.baseline().measurement.is_no_data(),
        sample.canary().measurement.is_no_data(),
    )
}

/// The judgement of a sample read in full in which an arm served nothing (counts of no requests,
/// a sketch of no values): such a window adds to the totals but weighs nothing, so it is no
/// more a pass than a window without data (a judge that has failed keeps its failure). `None`
/// if both arms served something.
fn empty_arm_judgement(judge: &impl Judge, sample: &Sample<'_>) -> Option<Judgement> {
    let which = which_arms(
        sample.baseline().measurement.is_empty(),
        sample.canary().measurement.is_empty(),
    )?;
    Some(no_data_judgement(
        sample,
        judge.judgement(sample.now()),
        &format!("Nothing served by the {which}"),
    ))
}

fn which_arms(baseline: bool, canary: bool) -> Option<&'static str> {
    match (baseline, canary) {
        (true, true) => Some("baseline and the canary"),
        (true, false) => Some("baseline"),
        (false, true) => Some("canary"),
        (false, false) => None,
    }
}

fn wrong_kind(judge: &str, arm: &str, m: &Measurement, expected: &str) -> Error {
    let kind = match m {
        Measurement::Counts(_) => "counts",
        Measurement::Latency(_) => "latency",
        Measurement::Gauge(_) => "gauge",
        Measurement::NoData => "noData",
    };
    Error::invalid_input(
        format!("sample.{arm}.measurement"),
        kind,
        format!("judge `{judge}` needs {expected}"),
    )
}

/// What a judge answers before it reads a sample: an error if the sample is of another metric,
/// and its current judgement (inconclusive, unless it has failed) if an arm has no data;
/// `None` to read the sample.
fn answer_without_data(judge: &impl Judge, sample: &Sample<'_>) -> Result<Option<Judgement>> {
    check_metric(judge.name(), judge.metric(), sample)?;
    Ok(arm_no_data(sample).map(|which| {
        no_data_judgement(
            sample,
            judge.judgement(sample.now()),
            &format!("No data for the {which}"),
        )
    }))
}

/// Each arm's measurement as `read` takes it, or an error naming the `judge` and the first arm
/// that holds another kind than the `expected` one.
fn arms<'s, T>(
    judge: &str,
    sample: &'s Sample<'_>,
    expected: &str,
    read: impl Fn(&'s Measurement) -> Option<T>,
) -> Result<(T, T)> {
    let (b, c) = (&sample.baseline().measurement, &sample.canary().measurement);
    match (read(b), read(c)) {
        (Some(b), Some(c)) => Ok((b, c)),
        (Some(_), None) => Err(wrong_kind(judge, "canary", c, expected)),
        (None, _) => Err(wrong_kind(judge, "baseline", b, expected)),
    }
}

/// What a sequential judge's `observe` rejects, checked without changing anything: a sample of
/// another metric, or one whose arms both have data and one of them another kind than the
/// `expected` one (an arm without data is judged as no data, whatever the other holds).
fn accepts_arms<'s, T>(
    judge: &impl Judge,
    sample: &'s Sample<'_>,
    expected: &str,
    read: impl Fn(&'s Measurement) -> Option<T>,
) -> Result<()> {
    check_metric(judge.name(), judge.metric(), sample)?;
    if arm_no_data(sample).is_none() {
        arms(judge.name(), sample, expected, read)?;
    }
    Ok(())
}

fn counts_of(m: &Measurement) -> Option<Counts> {
    match m {
        Measurement::Counts(c) => Some(*c),
        _ => None,
    }
}

fn sketch_of(m: &Measurement) -> Option<&LatencySketch> {
    match m {
        Measurement::Latency(s) => Some(s),
        _ => None,
    }
}

impl Judge for SequentialCountJudge {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn metric(&self) -> &Metric {
        &self.metric
    }

    fn observe(&mut self, sample: &Sample<'_>) -> Result<Judgement> {
        if let Some(answer) = answer_without_data(self, sample)? {
            return Ok(answer);
        }
        let (b, c) = arms(Self::NAME, sample, "counts", counts_of)?;
        // A new split starts a new segment of the ratio's confidence sequence, and a robust
        // batch open across it expects each split's errors at that split's share.
        if let Some(share) = sample.canary_share() {
            if self.last_stated_share.is_some_and(|s| s != share) {
                self.engine.start_segment();
            }
            self.last_stated_share = Some(share);
        }
        self.engine
            .update(b.requests(), b.errors(), c.requests(), c.errors());
        if let Some((followed, updates)) = self.engine.followed_starts() {
            self.onsets.note(&followed, updates, sample.window().end());
        }
        self.seen.add_window(sample.window());
        self.seen.units.baseline = self.seen.units.baseline.saturating_add(b.requests());
        self.seen.units.canary = self.seen.units.canary.saturating_add(c.requests());
        self.seen.errors.baseline = self.seen.errors.baseline.saturating_add(b.errors());
        self.seen.errors.canary = self.seen.errors.canary.saturating_add(c.errors());
        if self.rejected_severity.is_none()
            && let Some(worse) = self.engine.rejected_worse()
        {
            self.rejected_severity = Some(self.failure_severity(worse));
        }
        Ok(empty_arm_judgement(self, sample).unwrap_or_else(|| self.judgement(sample.now())))
    }

    fn accepts(&self, sample: &Sample<'_>) -> Result<()> {
        accepts_arms(self, sample, "counts", counts_of)
    }

    fn judgement(&self, now: Timestamp) -> Judgement {
        let mut ev = Evidence::empty(Self::NAME, self.metric.clone(), now);
        ev.window = self.seen.span;
        ev.sample_size = self.seen.units;
        let rate = |e: u64, n: u64| (n > 0).then(|| e as f64 / n as f64);
        ev.estimates = ArmValues::new(
            rate(self.seen.errors.baseline, self.seen.units.baseline),
            rate(self.seen.errors.canary, self.seen.units.canary),
        );
        let (ratio, interval) = self.engine.ratio();
        ev.effects.push(Effect {
            name: "errorRateRatio".into(),
            estimate: ratio,
            interval,
        });
        let e = self.engine.e_value();
        let threshold = self.engine.threshold();
        ev.statistic = Some(Statistic::EValue(e));
        ev.threshold = Some(threshold);
        let limit = 1.0 + self.engine.margin();
        let mut summary = String::new();
        let verdict = if self.seen.samples == 0 {
            summary.push_str("No samples yet: inconclusive.");
            Verdict::Inconclusive
        } else if let Some(worse) = self.engine.rejected_worse() {
            let sev = self
                .rejected_severity
                .unwrap_or_else(|| self.failure_severity(worse));
            let _ = write!(
                summary,
                "The canary's error rate is {} than the baseline's by more than the margin \
                 (ratio {}, e-value reached 1/alpha = {}); severity {sev}.",
                if worse { "higher" } else { "lower" },
                ratio_text(ratio),
                threshold_text(threshold)
            );
            let graded = self.graded_ratio();
            if self.engine.late_start().is_none() && graded.to_bits() != ratio.to_bits() {
                let _ = write!(
                    summary,
                    " Graded by the run's ratio across every traffic split, {}.",
                    ratio_text(graded)
                );
            }
            if let Some(late) = self.engine.late_start() {
                let text = |v: f64, i: Option<Interval>| match i {
                    Some(i) => format!("{} [{:.3}, {:.3}]", ratio_text(v), i.lower, i.upper),
                    None => ratio_text(v),
                };
                summary.push_str(&late_start_text(
                    &late,
                    self.onsets.time_of(late.after),
                    self.seen.samples,
                    "the error-rate ratio is",
                    text(late.estimate, late.interval),
                    format!("{} over the current traffic split", text(ratio, interval)),
                ));
                ev.effects
                    .push(since_effect("errorRateRatioSinceOnset", &late));
            }
            Verdict::Fail(sev)
        } else if let Some(i) = interval.filter(|i| {
            // Two-sided, a pass also rules out a canary better beyond the margin.
            i.upper < limit && (self.engine.sides() == Sides::CanaryWorse || i.lower > 1.0 / limit)
        }) {
            let _ = write!(
                summary,
                "The canary's error rate is at most {:.3} times the baseline's with confidence \
                 {}, below the limit {limit:.3}{}: pass.",
                i.upper,
                self.engine.confidence_text(i.level),
                if self.engine.sides() == Sides::TwoSided {
                    format!(
                        ", and at least {:.3} times, above {:.3}",
                        i.lower,
                        1.0 / limit
                    )
                } else {
                    String::new()
                }
            );
            Verdict::Pass
        } else {
            let needs = if self.engine.sides() == Sides::TwoSided {
                format!("within ({:.3}, {limit:.3})", 1.0 / limit)
            } else {
                format!("below {limit:.3}")
            };
            let _ = write!(
                summary,
                "Error-rate ratio {} with e-value {e:.3} below 1/alpha = {}, and {}: \
                 inconclusive.",
                ratio_text(ratio),
                threshold_text(threshold),
                match interval {
                    Some(i) => format!(
                        "the interval [{:.3}, {:.3}] is not yet {needs} at confidence {}",
                        i.lower,
                        i.upper,
                        self.engine.confidence_text(i.level)
                    ),
                    None => format!("no interval yet to lie {needs}"),
                }
            );
            Verdict::Inconclusive
        };
        if let Some(ratio) = self.engine.excess_scatter() {
            let _ = write!(
                summary,
                " Note: batches of these errors scatter {ratio:.1}× more than independent \
                 requests explain (error rates that wander on their own in each arm, or a ratio \
                 that changed during the analysis), so this e-value overstates the evidence; the \
                 robust (batched) mode estimates that scatter."
            );
        }
        ev.summary = summary;
        Judgement {
            verdict,
            evidence: ev,
        }
    }

    fn reset(&mut self) {
        self.engine.reset();
        self.seen = Seen::default();
        self.last_stated_share = None;
        self.rejected_severity = None;
        self.onsets.clear();
    }
}

/// The default judge for latency: the anytime-valid sequential test of the median shift on a
/// metric observed as [`serin_signals::LatencySketch`]es, reporting the median and p99 shifts
/// with their confidence sequences.
///
/// Verdicts: `Fail(severity)` once the median test's e-value has reached `1/α` (severity from
/// the bands on the median shift, since the start that decided a late regression; a two-sided
/// failure because the canary is *faster* is at most
/// a warning, see [`SeverityBands::classify_failure`]); `Pass` once the median shift's
/// confidence sequence lies below the margin (two-sided, also above `1/(1 + margin) − 1`, so a
/// two-sided judge passes only with a margin above 0); otherwise `Inconclusive`. No data is
/// `Inconclusive`. A failure that the start-time mixture decided ([`LatencyTest::late_start`])
/// also names the start it weighs most (the end of the sample after which it began, and its
/// number) and the median shift since then (the effect
/// `medianShiftSinceOnset`), beside the whole run's: a slowdown that began late fails while the
/// whole run's shift may still sit near 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SequentialLatencyJudge {
    metric: Metric,
    severity: SeverityBands,
    test: LatencyTest,
    seen: Seen,
    /// The canary's share stated with the last sample: a new one starts a segment of the
    /// test (see [`LatencyTest::start_segment`]). `None` in states saved before it was kept.
    #[serde(
        default,
        deserialize_with = "latency_stated_share",
        skip_serializing_if = "Option::is_none"
    )]
    last_stated_share: Option<f64>,
    /// The failure's severity, from the median shift when the test rejected: the batches that
    /// keep arriving after it move the estimate, and must not reclassify a failure already
    /// reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rejected_severity: Option<Severity>,
    /// When the candidate starts the test follows began.
    #[serde(default, skip_serializing_if = "OnsetClock::is_empty")]
    onsets: OnsetClock,
}

impl SequentialLatencyJudge {
    /// The judge's name in evidence.
    pub const NAME: &'static str = "sequential-latency";

    /// The median shift a rejection is graded by: since the start that decided a late
    /// regression, else over the run (see `SequentialCountJudge::graded_ratio`).
    fn graded_shift(&self) -> f64 {
        self.test
            .late_start()
            .map_or_else(|| self.test.median_shift(), |late| late.estimate)
    }

    /// The severity of a rejection that found the canary `worse` (or better).
    fn failure_severity(&self, worse: bool) -> Severity {
        self.severity
            .classify_failure(directed(self.graded_shift(), worse), worse)
    }

    /// A judge of `metric` at level `alpha`, failing only if the canary's median is more than
    /// `(1 + margin)` times the baseline's, with the latency severity bands, for per-second
    /// samples (its prior on when a late regression began spans
    /// [`LatencyTestConfig::restart_horizon`] of them; [`with_config`](Self::with_config) sets
    /// another span).
    pub fn new(metric: Metric, alpha: f64, margin: f64) -> Result<Self> {
        Self::with_config(
            metric,
            LatencyTestConfig::new(alpha).with_margin(margin),
            SeverityBands::latency(),
        )
    }

    /// A robust judge (variance from the scatter between batches, see
    /// [`LatencyVariance::BetweenBatches`]) of `metric` at level `alpha` with the given margin,
    /// for per-second samples (a batch spans at least
    /// [`LatencyTestConfig::min_samples`] of them; [`with_config`](Self::with_config) sets
    /// another span).
    pub fn robust(metric: Metric, alpha: f64, margin: f64) -> Result<Self> {
        Self::with_config(
            metric,
            LatencyTestConfig {
                variance: LatencyVariance::BetweenBatches,
                ..LatencyTestConfig::new(alpha).with_margin(margin)
            },
            SeverityBands::latency(),
        )
    }

    /// A judge with chosen test settings and severity bands.
    pub fn with_config(
        metric: Metric,
        config: LatencyTestConfig,
        severity: SeverityBands,
    ) -> Result<Self> {
        Ok(SequentialLatencyJudge {
            metric,
            severity,
            test: LatencyTest::new(config)?,
            seen: Seen::default(),
            last_stated_share: None,
            rejected_severity: None,
            onsets: OnsetClock::default(),
        })
    }

    /// The settings of the test this judge runs.
    pub fn config(&self) -> &LatencyTestConfig {
        self.test.config()
    }
}

impl Judge for SequentialLatencyJudge {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn metric(&self) -> &Metric {
        &self.metric
    }

    fn observe(&mut self, sample: &Sample<'_>) -> Result<Judgement> {
        if let Some(answer) = answer_without_data(self, sample)? {
            return Ok(answer);
        }
        let (b, c) = arms(Self::NAME, sample, "latency sketches", sketch_of)?;
        // A batch's arms must not mix splits whose common latency differs.
        if let Some(share) = sample.canary_share() {
            if self.last_stated_share.is_some_and(|s| s != share) {
                self.test.start_segment();
            }
            self.last_stated_share = Some(share);
        }
        self.test.update(b, c);
        let (followed, updates) = self.test.followed_starts();
        self.onsets.note(&followed, updates, sample.window().end());
        self.seen.add_window(sample.window());
        let (nb, nc) = self.test.values();
        self.seen.units = ArmValues::new(nb, nc);
        if self.rejected_severity.is_none()
            && let Some(worse) = self.test.rejected_worse()
        {
            self.rejected_severity = Some(self.failure_severity(worse));
        }
        Ok(empty_arm_judgement(self, sample).unwrap_or_else(|| self.judgement(sample.now())))
    }

    fn accepts(&self, sample: &Sample<'_>) -> Result<()> {
        accepts_arms(self, sample, "latency sketches", sketch_of)
    }

    fn judgement(&self, now: Timestamp) -> Judgement {
        let mut ev = Evidence::empty(Self::NAME, self.metric.clone(), now);
        ev.window = self.seen.span;
        ev.sample_size = self.seen.units;
        let median = self.test.median_shift();
        let median_ci = self.test.median_shift_interval();
        ev.effects.push(Effect {
            name: "medianShift".into(),
            estimate: median,
            interval: median_ci,
        });
        ev.effects.push(Effect {
            name: "p99Shift".into(),
            estimate: self.test.p99_shift(),
            interval: self.test.p99_shift_interval(),
        });
        let e = self.test.e_value();
        let threshold = self.test.threshold();
        ev.statistic = Some(Statistic::EValue(e));
        ev.threshold = Some(threshold);
        let margin = self.test.config().margin;
        let mut summary = String::new();
        let verdict = if self.test.batches() == 0 {
            summary.push_str(
                "Not enough latency values for a first batch in both arms yet: inconclusive.",
            );
            Verdict::Inconclusive
        } else if let Some(worse) = self.test.rejected_worse() {
            let sev = self
                .rejected_severity
                .unwrap_or_else(|| self.failure_severity(worse));
            let _ = write!(
                summary,
                "The canary's median latency is {} than the baseline's by more than the margin \
                 (shift {:+.1}%, e-value reached 1/alpha = {}); severity {sev}.",
                if worse { "higher" } else { "lower" },
                median * 100.0,
                threshold_text(threshold)
            );
            if let Some(late) = self.test.late_start() {
                let text = |v: f64, i: Option<Interval>| match i {
                    Some(i) => format!(
                        "{:+.1}% [{:+.1}%, {:+.1}%]",
                        v * 100.0,
                        i.lower * 100.0,
                        i.upper * 100.0
                    ),
                    None => format!("{:+.1}%", v * 100.0),
                };
                summary.push_str(&late_start_text(
                    &late,
                    self.onsets.time_of(late.after),
                    self.seen.samples,
                    "the median shift is",
                    text(late.estimate, late.interval),
                    format!("{} over the whole run", text(median, median_ci)),
                ));
                ev.effects
                    .push(since_effect("medianShiftSinceOnset", &late));
            }
            Verdict::Fail(sev)
        } else if let Some(i) = median_ci.filter(|i| {
            // Two-sided, a pass also rules out a canary faster beyond the margin.
            let floor = 1.0 / (1.0 + margin) - 1.0;
            i.upper < margin && (self.test.config().sides == Sides::CanaryWorse || i.lower > floor)
        }) {
            let _ = write!(
                summary,
                "The canary's median is at most {:+.1}% off the baseline's{}, within the margin \
                 {:.1}%: pass.",
                i.upper * 100.0,
                if self.test.config().sides == Sides::TwoSided {
                    format!(" and at least {:+.1}%", i.lower * 100.0)
                } else {
                    String::new()
                },
                margin * 100.0
            );
            Verdict::Pass
        } else {
            let _ = write!(
                summary,
                "Median shift {:+.1}% with e-value {e:.3} below 1/alpha = {}: inconclusive.",
                median * 100.0,
                threshold_text(threshold)
            );
            Verdict::Inconclusive
        };
        let (clipped_b, clipped_c) = self.test.clipped();
        if clipped_b + clipped_c > 0 {
            let _ = write!(
                summary,
                " {clipped_b} baseline and {clipped_c} canary latencies lay beyond the outlier \
                 fences ({} interquartile ranges past the baseline's quartiles) and counted as \
                 the fence.",
                self.test.config().outlier_fence.unwrap_or(f64::NAN)
            );
        }
        if let Some(ratio) = self.test.excess_scatter() {
            let _ = write!(
                summary,
                " Note: the batch differences scatter {ratio:.1}× more than the latencies in \
                 them explain (a median that wanders on its own in each arm, or a shift that \
                 changed during the analysis), so this e-value overstates the evidence; the \
                 robust mode estimates that scatter."
            );
        }
        ev.summary = summary;
        Judgement {
            verdict,
            evidence: ev,
        }
    }

    fn reset(&mut self) {
        self.test.reset();
        self.seen = Seen::default();
        self.last_stated_share = None;
        self.rejected_severity = None;
        self.onsets.clear();
    }
}

/// Either sequential judge, as one serializable type: a controller of
/// `CanaryController<SequentialJudge>` can judge counts and latency together and still be
/// journalled whole (its judges serialize with serde).
///
/// Saved as a map with one key, `{"counts": {...}}` or `{"latency": {...}}`, in YAML too.
#[derive(Debug, Clone, PartialEq)]
pub enum SequentialJudge {
    /// A count judge.
    Counts(Box<SequentialCountJudge>),
    /// A latency judge (boxed: it holds the open sketches).
    Latency(Box<SequentialLatencyJudge>),
}

impl Serialize for SequentialJudge {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use crate::one_key::{OneKey as _, write};
        match self {
            SequentialJudge::Counts(j) => write(s, Self::NAME, Self::KINDS, 0, j),
            SequentialJudge::Latency(j) => write(s, Self::NAME, Self::KINDS, 1, j),
        }
    }
}

impl<'de> Deserialize<'de> for SequentialJudge {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        crate::one_key::read(d)
    }
}

impl crate::one_key::OneKey for SequentialJudge {
    const NAME: &'static str = "SequentialJudge";
    const KINDS: &'static [&'static str] = &["counts", "latency"];
    const WHAT: &'static str = "a sequential judge";

    fn value<'de, V: crate::one_key::Value<'de>>(
        index: usize,
        value: V,
    ) -> std::result::Result<Self, V::Error> {
        Ok(match index {
            0 => SequentialJudge::Counts(value.read()?),
            _ => SequentialJudge::Latency(value.read()?),
        })
    }
}

impl From<SequentialCountJudge> for SequentialJudge {
    fn from(j: SequentialCountJudge) -> Self {
        SequentialJudge::Counts(Box::new(j))
    }
}

impl From<SequentialLatencyJudge> for SequentialJudge {
    fn from(j: SequentialLatencyJudge) -> Self {
        SequentialJudge::Latency(Box::new(j))
    }
}

impl Judge for SequentialJudge {
    fn name(&self) -> &str {
        match self {
            SequentialJudge::Counts(j) => j.name(),
            SequentialJudge::Latency(j) => j.name(),
        }
    }

    fn metric(&self) -> &Metric {
        match self {
            SequentialJudge::Counts(j) => j.metric(),
            SequentialJudge::Latency(j) => j.metric(),
        }
    }

    fn observe(&mut self, sample: &Sample<'_>) -> Result<Judgement> {
        match self {
            SequentialJudge::Counts(j) => j.observe(sample),
            SequentialJudge::Latency(j) => j.observe(sample),
        }
    }

    fn accepts(&self, sample: &Sample<'_>) -> Result<()> {
        match self {
            SequentialJudge::Counts(j) => j.accepts(sample),
            SequentialJudge::Latency(j) => j.accepts(sample),
        }
    }

    fn judgement(&self, now: Timestamp) -> Judgement {
        match self {
            SequentialJudge::Counts(j) => j.judgement(now),
            SequentialJudge::Latency(j) => j.judgement(now),
        }
    }

    fn reset(&mut self) {
        match self {
            SequentialJudge::Counts(j) => j.reset(),
            SequentialJudge::Latency(j) => j.reset(),
        }
    }
}
