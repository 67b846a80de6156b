//! Error spikes: the [`Cusum`] detector and the [`ErrorSpikeTrigger`].
//!
//! Two detectors are offered, compared in the `spike_quality` benchmark:
//!
//! - **Ratio rule** (the brief's rule): the error rate over `windowSize` is above
//!   `baseline × (1 + increasePercentage / 100)` with at least `minErrorCount` errors. Simple, but
//!   its false-alarm rate depends on traffic volume and is not stated by its parameters.
//! - **Bernoulli CUSUM** (the default): each observation's counts add the log-likelihood ratio of
//!   the spike rate `p1` against the baseline `p0`; the statistic `S = max(0, S + llr)` alarms at
//!   `h = ln(averageRunLength)`. By Lorden (1971) the average run length to a false alarm when the
//!   error rate is truly `p0` is at least `e^h = averageRunLength` observations, whatever the
//!   traffic per observation. The bound assumes independent requests at a known `p0`: with a
//!   learned baseline it holds only as far as the estimate is right, and overdispersed traffic
//!   (rates that wander between windows) shortens it.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use serin_signals::{Counts, HealthSignal, Measurement, Metric, Observation, Timestamp};

use crate::buckets::{BUCKETS, CountRing};
use crate::config::{Detector, ErrorSpikeConfig};
use crate::error::{Error, Result};
use crate::evidence::{Evidence, TriggerKind};
use crate::lifecycle::{Verdict, not_after};
use crate::operator::Operator;
use crate::trigger::{Trigger, found, track_heap};

/// A one-sided Bernoulli CUSUM for an increase of an error rate from `p0` to `p1`.
///
/// Each observation of `e` errors in `n` requests adds its log-likelihood ratio
/// `e·ln(p1/p0) + (n−e)·ln((1−p1)/(1−p0))` to `S = max(0, S + llr)`; the alarm is `S ≥ h` with
/// `h = ln(averageRunLength)`. By Lorden (1971), when the error rate truly is `p0` the average
/// number of observations before a false alarm is at least `e^h = averageRunLength`, whatever the
/// traffic per observation. The bound assumes independent requests at a known `p0`: with a learned
/// baseline it holds as far as the estimate is right, and overdispersed traffic (rates that wander
/// between windows) shortens it — unless the dispersion is given
/// ([`with_dispersion`](Cusum::with_dispersion)), which makes the promise approximately right
/// again at the cost of slower detection.
///
/// ```
/// use serin_triggers::Cusum;
///
/// let mut cusum = Cusum::with_average_run_length(10_000.0)?;
/// // 1,000 requests per observation; the rate jumps from 2% to 4%.
/// assert!(!cusum.update(20, 1_000, 0.02, 0.03));
/// let mut steps = 0;
/// while !cusum.update(40, 1_000, 0.02, 0.03) {
///     steps += 1;
/// }
/// assert!(steps < 5, "a doubled error rate is found within a few observations");
/// # Ok::<(), serin_triggers::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    deny_unknown_fields,
    try_from = "WrittenCusum"
)]
pub struct Cusum {
    threshold: f64,
    statistic: f64,
    dispersion: f64,
}

/// A [`Cusum`] as read back, before it is checked: a damaged one (a threshold that is not
/// positive, a statistic outside where updates keep it) is refused rather than left to
/// misjudge, or to panic in [`Cusum::update`].
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WrittenCusum {
    threshold: f64,
    statistic: f64,
    #[serde(default = "one")]
    dispersion: f64,
}

fn one() -> f64 {
    1.0
}

impl TryFrom<WrittenCusum> for Cusum {
    type Error = Error;

    fn try_from(w: WrittenCusum) -> Result<Self> {
        if !(w.threshold.is_finite() && w.threshold > 0.0) {
            return Err(Error::config(
                "cusum.threshold",
                w.threshold,
                "must be a finite positive log run length",
            ));
        }
        // The tolerance allows for the last digit of a statistic capped at `2h` read back.
        if !(0.0..=2.0 * w.threshold + 1e-9).contains(&w.statistic) {
            return Err(Error::config(
                "cusum.statistic",
                w.statistic,
                "must lie in [0, 2 × threshold], where updates keep it",
            ));
        }
        Cusum {
            threshold: w.threshold,
            statistic: w.statistic,
            dispersion: 1.0,
        }
        .with_dispersion(w.dispersion)
    }
}

impl Cusum {
    /// A CUSUM whose average run length to a false alarm is at least `arl` observations
    /// (threshold `ln(arl)`); `arl` must be finite and above 1.
    pub fn with_average_run_length(arl: f64) -> Result<Self> {
        if !(arl.is_finite() && arl > 1.0) {
            return Err(Error::config(
                "averageRunLength",
                arl,
                "must be a finite number of observations above 1",
            ));
        }
        Ok(Cusum {
            threshold: arl.ln(),
            statistic: 0.0,
            dispersion: 1.0,
        })
    }

    /// The same CUSUM for counts whose variance is `dispersion` times the binomial variance
    /// (at least 1): each log-likelihood ratio is divided by it, a quasi-binomial CUSUM whose
    /// run-length promise holds approximately for such overdispersed counts.
    pub fn with_dispersion(mut self, dispersion: f64) -> Result<Self> {
        if !(dispersion.is_finite() && dispersion >= 1.0) {
            return Err(Error::config(
                "dispersion",
                dispersion,
                "must be a finite variance ratio of at least 1",
            ));
        }
        self.dispersion = dispersion;
        Ok(self)
    }

    /// Adds one observation of `errors` out of `requests` and answers whether the statistic is at
    /// or above the threshold. Rates must satisfy `0 < p0 < p1 < 1`; other rates leave the
    /// statistic unchanged.
    pub fn update(&mut self, errors: u64, requests: u64, p0: f64, p1: f64) -> bool {
        if !(p0 > 0.0 && p0 < p1 && p1 < 1.0) {
            return self.alarmed();
        }
        let errors = errors.min(requests);
        let up = (p1 / p0).ln();
        let down = ((1.0 - p1) / (1.0 - p0)).ln();
        let llr = (errors as f64 * up + (requests - errors) as f64 * down) / self.dispersion;
        // Capped so that a long incident does not delay the all-clear; the cap is above the
        // threshold, so it never changes when the alarm is raised.
        self.statistic = (self.statistic + llr).clamp(0.0, 2.0 * self.threshold);
        self.alarmed()
    }

    /// The current statistic.
    pub fn statistic(&self) -> f64 {
        self.statistic
    }

    /// The alarm threshold `h`.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// Whether the statistic is at or above the threshold.
    pub fn alarmed(&self) -> bool {
        self.statistic >= self.threshold
    }

    /// Starts over (after an alarm has been handled).
    pub fn reset(&mut self) {
        self.statistic = 0.0;
    }
}

/// One window of the baseline track, kept exactly.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BaselineWindow {
    end: Timestamp,
    counts: Counts,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Learning {
    started: Timestamp,
    counts: Counts,
}

/// The runtime state of an error-spike trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct SpikeState {
    window: CountRing,
    baseline: Option<CountRing>,
    /// The baseline track's latest windows (at most [`BUCKETS`]), for the span of each watched
    /// window. The ring's buckets are a twelfth of `windowSize`, often longer than a window
    /// (25 s for 5m, against 5 s windows), so a span read from them would mostly find no bucket
    /// of its own and fall back to the whole window: a shared outage would then be compared
    /// with the minutes before it and taken for a spike.
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    recent_baseline: VecDeque<BaselineWindow>,
    learning: Option<Learning>,
    cusum: Cusum,
    last_rate: Option<f64>,
    last_p0: Option<f64>,
    last_window: Counts,
    /// The end of the last window taken of the watched track and of the baseline track: a
    /// window that does not end later is one already counted (sent again) or a late one, and is
    /// not added to the counts a second time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_watched: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_baseline: Option<Timestamp>,
    /// The end of the last watched window with requests the CUSUM took: after a gap longer than
    /// `staleAfter` since then, the statistic starts over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_judged: Option<Timestamp>,
}

/// Error rate of the watched track above a baseline.
///
/// Two detectors, compared in the `spike_quality` benchmark: the **ratio rule** (the error rate
/// over `windowSize` above `baseline × (1 + increasePercentage / 100)`; simple, but its
/// false-alarm rate depends on traffic and is not stated by its parameters) and the Bernoulli
/// [`Cusum`] (the default), whose average run length to a false alarm is at least
/// `averageRunLength` observations. Either fires only with at least `minErrorCount` errors in the
/// window.
///
/// With a `baselineTrack`, the CUSUM compares each observation with the baseline's counts over
/// the same span (when that span has `minBaselineRequests`), so a change both tracks see at once
/// is not a spike; feed the baseline's observation of a window before the watched track's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErrorSpikeTrigger {
    config: ErrorSpikeConfig,
    state: SpikeState,
}

impl ErrorSpikeTrigger {
    /// A trigger for a validated config (validation runs again here).
    pub fn new(config: ErrorSpikeConfig) -> Result<Self> {
        crate::TriggerConfig::ErrorSpike(config.clone()).validate("errorSpike")?;
        let cusum = Cusum::with_average_run_length(config.average_run_length)?
            .with_dispersion(config.dispersion)?;
        let state = SpikeState {
            window: CountRing::new(config.window_size),
            baseline: config
                .baseline_track
                .as_ref()
                .map(|_| CountRing::new(config.window_size)),
            recent_baseline: VecDeque::new(),
            learning: None,
            cusum,
            last_rate: None,
            last_p0: None,
            last_window: Counts::default(),
            last_watched: None,
            last_baseline: None,
            last_judged: None,
        };
        Ok(ErrorSpikeTrigger { config, state })
    }

    /// The config.
    pub fn config(&self) -> &ErrorSpikeConfig {
        &self.config
    }

    /// The CUSUM statistic (also advanced when the ratio rule is the detector, for evidence).
    pub fn cusum(&self) -> &Cusum {
        &self.state.cusum
    }

    /// Checks a deserialized state against its config and the `clock` of its lifecycle: no time
    /// of the watched track lies past the clock (a learning window begun ahead would judge every
    /// window healthy by definition, and a window end or bucket dated ahead would make real
    /// windows look already counted), and the CUSUM statistic lies within `[0, 2h]`, where
    /// `update` keeps it.
    pub(crate) fn check_state(&self, clock: Timestamp) -> std::result::Result<(), String> {
        let s = &self.state;
        if !s.window.fits(self.config.window_size) {
            return Err("window does not match windowSize".into());
        }
        match (&s.baseline, &self.config.baseline_track) {
            (Some(b), Some(_)) if b.fits(self.config.window_size) => {}
            (None, None) => {}
            _ => return Err("baseline window does not match baselineTrack".into()),
        }
        if s.recent_baseline.len() > BUCKETS
            || (s.baseline.is_none() && !s.recent_baseline.is_empty())
        {
            return Err(format!(
                "recentBaseline holds {} windows: at most {BUCKETS}, and none without baselineTrack",
                s.recent_baseline.len()
            ));
        }
        // The baseline track's windows are left out: they do not move the clock, and the
        // baseline's window of a span comes before the watched track's.
        s.window.check_state("window", clock)?;
        not_after(
            "learning.started",
            s.learning.as_ref().map(|l| l.started),
            clock,
        )?;
        not_after("lastWatched", s.last_watched, clock)?;
        not_after("lastJudged", s.last_judged, clock)?;
        if (s.cusum.threshold - self.config.cusum_threshold()).abs() > 1e-9 {
            return Err("cusum threshold does not match averageRunLength".into());
        }
        if s.cusum.dispersion != self.config.dispersion {
            return Err("cusum dispersion does not match dispersion".into());
        }
        // The tolerance allows for the last digit of a statistic capped at `2h` read back.
        let cap = 2.0 * s.cusum.threshold + 1e-9;
        if !(0.0..=cap).contains(&s.cusum.statistic) {
            return Err(format!(
                "cusum statistic {} is outside [0, {cap}], where updates keep it",
                s.cusum.statistic
            ));
        }
        Ok(())
    }

    fn counts<'a>(&self, obs: &'a Observation) -> Result<Option<&'a Counts>> {
        match &obs.measurement {
            Measurement::Counts(c) => Ok(Some(c)),
            Measurement::NoData => Ok(None),
            other => Err(Error::MeasurementMismatch {
                trigger: self.config.id.clone(),
                metric: obs.metric.to_string(),
                track: obs.track.to_string(),
                expected: "counts",
                found: found(other),
            }),
        }
    }

    fn watches(&self, obs: &Observation) -> Option<bool> {
        if obs.metric != Metric::ErrorRate {
            return None;
        }
        if obs.track == self.config.track {
            Some(true)
        } else if self.config.baseline_track.as_ref() == Some(&obs.track) {
            Some(false)
        } else {
            None
        }
    }

    /// A learned rate, smoothed away from 0 so that a clean baseline still leaves a finite
    /// likelihood ratio; `None` with fewer than `minBaselineRequests` requests.
    fn learned(&self, c: Counts) -> Option<f64> {
        (c.requests() >= self.config.min_baseline_requests)
            .then(|| (c.errors() as f64 + 0.5) / (c.requests() as f64 + 1.0))
    }

    /// The baseline rate over the window ending at `at`; `None` when it is not known yet.
    fn baseline(&self, at: Timestamp) -> Option<f64> {
        if let Some(p0) = self.config.baseline_error_rate {
            return Some(p0);
        }
        if let Some(ring) = &self.state.baseline {
            return self.learned(ring.sum(at));
        }
        self.state
            .learning
            .as_ref()
            .and_then(|l| self.learned(l.counts))
    }

    /// The baseline rate for one observation: with a baseline track, its rate over the same span
    /// as the observation (the baseline windows ending within it) when it has enough requests
    /// there (so a change both tracks see at once, such as a shared outage, is not a spike),
    /// else over the whole window.
    fn baseline_for(&self, obs: &Observation) -> Option<f64> {
        let (start, at) = (obs.window.start(), obs.window.end());
        let span = self
            .state
            .recent_baseline
            .iter()
            .filter(|w| w.end > start && w.end <= at)
            .fold(Counts::default(), |sum, w| sum.saturating_add(w.counts));
        self.learned(span).or_else(|| self.baseline(at))
    }

    /// The error rate that is a spike over the baseline `p0`: `p0 × (1 + increasePercentage /
    /// 100)`. It is not capped below 1: at or above 1, no error rate is a spike over this
    /// baseline (a failure the baseline shares, such as a total outage of both tracks), so the
    /// ratio rule answers healthy and the CUSUM takes no step. A level capped just below 1
    /// would make every window at 100% errors a spike over a baseline at 99.9%.
    fn spike_level(&self, p0: f64) -> f64 {
        p0 * (1.0 + self.config.increase_percentage / 100.0)
    }

    /// Whether a watched observation goes to the learned baseline: `Some(true)` within
    /// `learnFor` (healthy by definition), `Some(false)` past it when the baseline learned
    /// there has fewer than `minBaselineRequests` requests (no verdict, and nothing learned),
    /// `None` once learned.
    ///
    /// Nothing past `learnFor` is learned: that data is the one under judgment, and a spike
    /// taken into the baseline would raise it until the spike no longer stood out (a baseline
    /// of 5% that absorbs a window at 50% reads 40% as healthy). A baseline short of its
    /// requests stays unknown, which is inconclusive: the trigger goes stale and asks for its
    /// `onMissingData` action, as it does for any missing evidence.
    fn is_learning(&self, obs: &Observation) -> Option<bool> {
        let d = self.config.learn_for?;
        let Some(l) = &self.state.learning else {
            return Some(true);
        };
        if obs.window.end() <= l.started.saturating_add(d) {
            Some(true)
        } else if l.counts.requests() < self.config.min_baseline_requests {
            Some(false)
        } else {
            None
        }
    }
}

impl Trigger for ErrorSpikeTrigger {
    fn id(&self) -> &str {
        &self.config.id
    }

    fn kind(&self) -> TriggerKind {
        TriggerKind::ErrorSpike
    }

    fn check(&self, obs: &Observation) -> Result<()> {
        if self.watches(obs).is_some() {
            self.counts(obs)?;
        }
        Ok(())
    }

    fn observe(&mut self, obs: &Observation) -> Result<Option<Verdict>> {
        let Some(watched) = self.watches(obs) else {
            return Ok(None);
        };
        let Some(&c) = self.counts(obs)? else {
            return Ok(watched.then_some(Verdict::NoData));
        };
        let at = obs.window.end();
        let last = if watched {
            &mut self.state.last_watched
        } else {
            &mut self.state.last_baseline
        };
        if last.is_some_and(|last| at <= last) {
            return Ok(None);
        }
        *last = Some(at);
        if !watched {
            if let Some(ring) = &mut self.state.baseline {
                ring.add(at, c);
                let recent = &mut self.state.recent_baseline;
                if recent.len() >= BUCKETS {
                    recent.pop_front();
                }
                recent.push_back(BaselineWindow { end: at, counts: c });
            }
            return Ok(None);
        }
        if let Some(within) = self.is_learning(obs) {
            if !within {
                return Ok(Some(Verdict::NoData));
            }
            let l = self.state.learning.get_or_insert(Learning {
                started: obs.window.start(),
                counts: Counts::default(),
            });
            l.counts = l.counts.saturating_add(c);
            // Healthy by definition are the requests served, not a window without any.
            return Ok(Some(if c.requests() == 0 {
                Verdict::NoData
            } else {
                Verdict::Ok
            }));
        }
        let gap = c.requests() > 0
            && self
                .state
                .last_judged
                .is_some_and(|l| at.saturating_duration_since(l) > self.config.stale_after);
        if gap {
            self.state.window = CountRing::new(self.config.window_size);
        }
        self.state.window.add(at, c);
        let window = self.state.window.sum(at);
        self.state.last_window = window;
        self.state.last_rate = window.error_rate();
        let (Some(p0_window), Some(p0_span)) = (self.baseline(at), self.baseline_for(obs)) else {
            self.state.last_p0 = None;
            return Ok(Some(Verdict::NoData));
        };
        // A gap in the data longer than `staleAfter` ends a breach, and so it ends the evidence
        // the statistic holds: kept, a spike from before a silence (the canary rolled back)
        // would make the first healthy window after it breach, and fire again.
        if c.requests() > 0 {
            if gap {
                self.state.cusum.reset();
            }
            self.state.last_judged = Some(at);
        }
        // `update` leaves the statistic as it is when the spike level reaches 1.
        let cusum_alarm =
            self.state
                .cusum
                .update(c.errors(), c.requests(), p0_span, self.spike_level(p0_span));
        let alarm = match self.config.detector {
            Detector::Cusum => {
                self.state.last_p0 = Some(p0_span);
                cusum_alarm
            }
            Detector::Ratio => {
                self.state.last_p0 = Some(p0_window);
                window
                    .error_rate()
                    .is_some_and(|r| r > self.spike_level(p0_window))
            }
        };
        let enough = window.errors() >= self.config.min_error_count;
        // A window without requests is no data, whatever the detectors hold: their state (the
        // sliding window, the CUSUM statistic) is what earlier windows left, and answering it
        // again would count an empty window as breaching, so that a spike followed by silence
        // would fire once its `duration` had passed without a single new error.
        Ok(Some(if c.requests() == 0 {
            Verdict::NoData
        } else if alarm && enough {
            Verdict::Breach(self.config.action)
        } else {
            Verdict::Ok
        }))
    }

    fn observe_health(&mut self, _signal: &HealthSignal) -> Option<Verdict> {
        None
    }

    fn evidence(&self, at: Timestamp, since: Option<Timestamp>) -> Evidence {
        let s = &self.state;
        let short = || {
            s.learning
                .as_ref()
                .zip(self.config.learn_for)
                .filter(|(l, d)| {
                    at > l.started.saturating_add(*d)
                        && l.counts.requests() < self.config.min_baseline_requests
                })
                .map(|(l, d)| {
                    format!(
                        "no baseline error rate: what {} served over learnFor ({d:?}) holds {} \
                     requests, fewer than minBaselineRequests {}, and later data is never \
                     learned (it is the data under judgment); lengthen learnFor or lower \
                     minBaselineRequests",
                        self.config.track,
                        l.counts.requests(),
                        self.config.min_baseline_requests
                    )
                })
        };
        let reason = match (s.last_p0, self.config.detector) {
            (None, _) => short().unwrap_or_else(|| "no baseline error rate yet".to_owned()),
            (Some(p0), Detector::Cusum) => format!(
                "CUSUM statistic {:.3} against threshold {:.3} (average run length {}, dispersion {}); baseline {:.5}, window {} errors of {} requests",
                s.cusum.statistic(),
                s.cusum.threshold(),
                self.config.average_run_length,
                self.config.dispersion,
                p0,
                s.last_window.errors(),
                s.last_window.requests()
            ),
            (Some(p0), Detector::Ratio) => format!(
                "window error rate against baseline {:.5} + {}%; window {} errors of {} requests",
                p0,
                self.config.increase_percentage,
                s.last_window.errors(),
                s.last_window.requests()
            ),
        };
        // Each detector names the comparison it makes: the CUSUM alarms on its statistic, which
        // can cross its threshold while the window's rate is still below the spike level.
        let track = &self.config.track;
        let (subject, observed, threshold, operator) = match self.config.detector {
            Detector::Cusum => (
                format!("CUSUM statistic of error_rate on {track}"),
                Some(s.cusum.statistic()),
                Some(s.cusum.threshold()),
                Operator::Ge,
            ),
            Detector::Ratio => (
                format!("error_rate on {track}"),
                s.last_rate,
                s.last_p0.map(|p0| self.spike_level(p0)),
                Operator::Gt,
            ),
        };
        Evidence {
            trigger: self.config.id.clone(),
            kind: TriggerKind::ErrorSpike,
            subject,
            observed,
            threshold,
            operator: Some(operator),
            since,
            at,
            reason,
        }
    }

    fn heap_bytes(&self) -> usize {
        self.config.id.capacity()
            + self.state.window.heap_bytes()
            + self
                .state
                .baseline
                .as_ref()
                .map_or(0, CountRing::heap_bytes)
            + self.state.recent_baseline.capacity() * std::mem::size_of::<BaselineWindow>()
            + track_heap(&self.config.track)
            + self.config.baseline_track.as_ref().map_or(0, track_heap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serin_signals::{Track, Window};
    use std::time::Duration;

    fn spike(json: &str) -> ErrorSpikeTrigger {
        let c: crate::TriggerConfig = serde_json::from_str(json).unwrap();
        let crate::TriggerConfig::ErrorSpike(c) = c else {
            panic!("kind")
        };
        ErrorSpikeTrigger::new(c).unwrap()
    }

    fn obs(track: Track, end_s: u64, requests: u64, errors: u64) -> Observation {
        let w = Window::ending_at(
            Timestamp::from_millis(end_s * 1_000),
            Duration::from_secs(10),
        );
        Observation::new(
            Metric::ErrorRate,
            track,
            w,
            Measurement::Counts(Counts::new(requests, errors).unwrap()),
        )
    }

    /// A damaged CUSUM read back is refused, naming the field, rather than left to panic in
    /// `update` (a negative threshold made its clamp's bounds cross); a sound one reads back.
    #[test]
    fn a_saved_cusum_is_checked_when_read() {
        for (json, field) in [
            (r#"{"threshold":-1.0,"statistic":0.0}"#, "cusum.threshold"),
            (r#"{"threshold":0.0,"statistic":0.0}"#, "cusum.threshold"),
            (r#"{"threshold":2.0,"statistic":4.5}"#, "cusum.statistic"),
            (r#"{"threshold":2.0,"statistic":-1.0}"#, "cusum.statistic"),
            (
                r#"{"threshold":2.0,"statistic":0.0,"dispersion":0.5}"#,
                "dispersion",
            ),
        ] {
            let msg = serde_json::from_str::<Cusum>(json).unwrap_err().to_string();
            assert!(msg.contains(field), "{json}: {msg}");
        }
        let mut c = Cusum::with_average_run_length(100.0).unwrap();
        c.update(10, 100, 0.02, 0.03);
        let back: Cusum = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn cusum_rejects_a_bad_run_length_and_ignores_bad_rates() {
        assert!(Cusum::with_average_run_length(1.0).is_err());
        assert!(Cusum::with_average_run_length(f64::NAN).is_err());
        let mut c = Cusum::with_average_run_length(100.0).unwrap();
        assert!(!c.update(1_000, 1_000, 0.0, 0.5));
        assert!(!c.update(1_000, 1_000, 0.5, 0.4));
        assert_eq!(c.statistic(), 0.0);
        assert!((c.threshold() - 100f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn cusum_stays_low_at_baseline_and_rises_on_a_step() {
        let mut c = Cusum::with_average_run_length(10_000.0).unwrap();
        for _ in 0..1_000 {
            assert!(!c.update(20, 1_000, 0.02, 0.03));
        }
        let mut n = 0;
        while !c.update(40, 1_000, 0.02, 0.03) {
            n += 1;
            assert!(n < 10);
        }
        assert!(c.statistic() <= 2.0 * c.threshold());
        c.reset();
        assert_eq!(c.statistic(), 0.0);
    }

    #[test]
    fn dispersion_scales_the_evidence_down() {
        assert!(
            Cusum::with_average_run_length(100.0)
                .unwrap()
                .with_dispersion(0.9)
                .is_err()
        );
        let mut plain = Cusum::with_average_run_length(1e6).unwrap();
        let mut wide = plain.with_dispersion(2.0).unwrap();
        plain.update(40, 1_000, 0.02, 0.03);
        wide.update(40, 1_000, 0.02, 0.03);
        assert!((plain.statistic() - 2.0 * wide.statistic()).abs() < 1e-9);
    }

    #[test]
    fn ratio_rule_needs_the_increase_and_the_minimum_errors() {
        let mut t = spike(
            r#"{"kind":"errorSpike","id":"s","baselineErrorRate":0.02,"increasePercentage":50,
                "detector":"ratio","minErrorCount":10}"#,
        );
        // 5% but only 5 errors: not enough evidence.
        assert_eq!(
            t.observe(&obs(Track::Canary, 10, 100, 5)).unwrap(),
            Some(Verdict::Ok)
        );
        // Window now 15 errors of 200 requests = 7.5% > 3%.
        assert_eq!(
            t.observe(&obs(Track::Canary, 20, 100, 10)).unwrap(),
            Some(Verdict::Breach(crate::Action::Rollback))
        );
        let e = t.evidence(Timestamp::from_millis(20_000), None);
        assert_eq!(e.observed, Some(0.075));
        assert!((e.threshold.unwrap() - 0.03).abs() < 1e-12);
    }

    #[test]
    fn a_cusum_fire_names_the_statistic_and_threshold_it_crossed() {
        let mut t = spike(r#"{"kind":"errorSpike","id":"s","baselineErrorRate":0.02}"#);
        // 2.8% over 10,000 requests: below the 3% spike level, yet strong evidence against 2%.
        assert_eq!(
            t.observe(&obs(Track::Canary, 10, 10_000, 280)).unwrap(),
            Some(Verdict::Breach(crate::Action::Rollback))
        );
        let e = t.evidence(Timestamp::from_millis(10_000), None);
        let (observed, threshold) = (t.cusum().statistic(), t.cusum().threshold());
        assert_eq!(
            (e.observed, e.threshold, e.operator),
            (Some(observed), Some(threshold), Some(Operator::Ge))
        );
        assert!(e.subject.contains("CUSUM"), "{}", e.subject);
        assert!(Operator::Ge.breached(observed, threshold));
    }

    #[test]
    fn a_window_without_requests_is_no_data_even_after_a_spike() {
        for detector in ["ratio", "cusum"] {
            let mut t = spike(&format!(
                r#"{{"kind":"errorSpike","id":"s","baselineErrorRate":0.02,"minErrorCount":1,
                    "averageRunLength":10,"detector":"{detector}"}}"#
            ));
            assert_eq!(
                t.observe(&obs(Track::Canary, 10, 1_000, 300)).unwrap(),
                Some(Verdict::Breach(crate::Action::Rollback)),
                "{detector}"
            );
            // The window and the statistic still hold the spike, but nothing new was seen.
            assert_eq!(
                t.observe(&obs(Track::Canary, 20, 0, 0)).unwrap(),
                Some(Verdict::NoData),
                "{detector}"
            );
        }
    }

    #[test]
    fn a_learned_baseline_comes_from_the_stable_track() {
        let mut t = spike(
            r#"{"kind":"errorSpike","id":"s","baselineTrack":"stable","detector":"ratio",
                "minBaselineRequests":100}"#,
        );
        // No baseline yet: no data, never healthy.
        assert_eq!(
            t.observe(&obs(Track::Canary, 10, 1_000, 100)).unwrap(),
            Some(Verdict::NoData)
        );
        assert_eq!(
            t.observe(&obs(Track::Stable, 10, 1_000, 100)).unwrap(),
            None
        );
        // Baseline ~10%: a canary at 10% is fine, at 20% it is a spike.
        assert_eq!(
            t.observe(&obs(Track::Canary, 11, 1_000, 100)).unwrap(),
            Some(Verdict::Ok)
        );
        assert_eq!(
            t.observe(&obs(Track::Canary, 12, 1_000, 400)).unwrap(),
            Some(Verdict::Breach(crate::Action::Rollback))
        );
    }

    #[test]
    fn a_change_both_tracks_see_at_once_is_not_a_spike() {
        let mut t = spike(
            r#"{"kind":"errorSpike","id":"s","baselineTrack":"stable","averageRunLength":100}"#,
        );
        for s in (10..=60).step_by(10) {
            t.observe(&obs(Track::Stable, s, 1_000, 10)).unwrap();
            t.observe(&obs(Track::Canary, s, 1_000, 10)).unwrap();
        }
        // Both jump to 30%: the CUSUM compares the canary with the stable's same span.
        for s in (70..=120).step_by(10) {
            t.observe(&obs(Track::Stable, s, 1_000, 300)).unwrap();
            assert_eq!(
                t.observe(&obs(Track::Canary, s, 1_000, 300)).unwrap(),
                Some(Verdict::Ok),
                "at {s}s"
            );
        }
        // Only the canary rises: a spike.
        t.observe(&obs(Track::Stable, 130, 1_000, 300)).unwrap();
        assert_eq!(
            t.observe(&obs(Track::Canary, 130, 1_000, 600)).unwrap(),
            Some(Verdict::Breach(crate::Action::Rollback))
        );
        assert!(t.cusum().alarmed());
    }

    #[test]
    fn a_shared_outage_is_not_a_spike_with_windows_shorter_than_a_bucket() {
        // A 5m window has 25 s buckets; the monitoring loop reads 5 s windows, so most of them
        // begin and end within one bucket.
        let mut t =
            spike(r#"{"kind":"errorSpike","id":"s","baselineTrack":"stable","windowSize":"5m"}"#);
        let five = |track, end_s: u64, errors| {
            let w = Window::ending_at(
                Timestamp::from_millis(end_s * 1_000),
                Duration::from_secs(5),
            );
            let counts = Counts::new(500, errors).unwrap();
            Observation::new(Metric::ErrorRate, track, w, Measurement::Counts(counts))
        };
        for s in (5..=300).step_by(5) {
            t.observe(&five(Track::Stable, s, 5)).unwrap();
            t.observe(&five(Track::Canary, s, 5)).unwrap();
        }
        // The dependency both use fails: both go from 1% to 30% in the same windows.
        for s in (305..=400).step_by(5) {
            t.observe(&five(Track::Stable, s, 150)).unwrap();
            assert_eq!(
                t.observe(&five(Track::Canary, s, 150)).unwrap(),
                Some(Verdict::Ok),
                "at {s}s: baseline {:?}",
                t.state.last_p0
            );
        }
        // Only the canary rises: a spike.
        t.observe(&five(Track::Stable, 405, 150)).unwrap();
        assert_eq!(
            t.observe(&five(Track::Canary, 405, 400)).unwrap(),
            Some(Verdict::Breach(crate::Action::Rollback))
        );
    }

    #[test]
    fn saved_baseline_windows_read_back_and_stay_bounded() {
        let mut t = spike(r#"{"kind":"errorSpike","id":"s","baselineTrack":"stable"}"#);
        for s in (10..=200).step_by(10) {
            t.observe(&obs(Track::Stable, s, 1_000, 10)).unwrap();
        }
        let clock = Timestamp::from_millis(200_000);
        let json = serde_json::to_value(&t).unwrap();
        let back: ErrorSpikeTrigger = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.check_state(clock), Ok(()));
        let mut bad = json;
        let windows = bad["state"]["recentBaseline"].as_array_mut().unwrap();
        assert_eq!(windows.len(), BUCKETS);
        windows.push(windows[0].clone());
        let bad: ErrorSpikeTrigger = serde_json::from_value(bad).unwrap();
        let msg = bad.check_state(clock).unwrap_err();
        assert!(msg.contains("recentBaseline holds 13 windows"), "{msg}");
    }

    #[test]
    fn a_pre_deploy_window_is_learned_then_judged() {
        let mut t = spike(
            r#"{"kind":"errorSpike","id":"s","track":"stable","learnFor":"30s","detector":"ratio",
                "windowSize":"10s","minErrorCount":1}"#,
        );
        for s in [10, 20, 30] {
            assert_eq!(
                t.observe(&obs(Track::Stable, s, 1_000, 10)).unwrap(),
                Some(Verdict::Ok)
            );
        }
        assert_eq!(
            t.observe(&obs(Track::Stable, 40, 1_000, 10)).unwrap(),
            Some(Verdict::Ok)
        );
        assert_eq!(
            t.observe(&obs(Track::Stable, 50, 1_000, 30)).unwrap(),
            Some(Verdict::Breach(crate::Action::Rollback))
        );
    }

    #[test]
    fn a_window_sent_again_is_not_counted_again() {
        let mut t = spike(
            r#"{"kind":"errorSpike","id":"s","baselineErrorRate":0.01,"detector":"ratio",
                "windowSize":"1m","minErrorCount":5}"#,
        );
        assert_eq!(
            t.observe(&obs(Track::Canary, 10, 100, 4)).unwrap(),
            Some(Verdict::Ok)
        );
        // 4% errors, but only four, below minErrorCount. The same window again, and a late
        // one: neither is new, so the window still holds four errors (counted twice, they
        // would be eight and a spike).
        assert_eq!(t.observe(&obs(Track::Canary, 10, 100, 4)).unwrap(), None);
        assert_eq!(t.observe(&obs(Track::Canary, 5, 100, 4)).unwrap(), None);
        assert_eq!(t.state.last_window, Counts::new(100, 4).unwrap());
        assert_eq!(
            t.observe(&obs(Track::Canary, 20, 100, 4)).unwrap(),
            Some(Verdict::Breach(crate::Action::Rollback))
        );
    }

    #[test]
    fn a_window_without_requests_is_no_data_while_learning() {
        let mut t = spike(r#"{"kind":"errorSpike","id":"s","track":"stable","learnFor":"1m"}"#);
        // Healthy by definition means the requests served meanwhile, not their absence.
        assert_eq!(
            t.observe(&obs(Track::Stable, 10, 0, 0)).unwrap(),
            Some(Verdict::NoData)
        );
        assert_eq!(
            t.observe(&obs(Track::Stable, 20, 1_000, 10)).unwrap(),
            Some(Verdict::Ok)
        );
        assert_eq!(
            t.observe(&obs(Track::Stable, 30, 0, 0)).unwrap(),
            Some(Verdict::NoData)
        );
    }

    /// A baseline short of its requests when `learnFor` ends is not completed from later data:
    /// that data is the one judged, and a spike taken in would mask itself.
    #[test]
    fn nothing_past_learn_for_is_learned() {
        let mut t = spike(
            r#"{"kind":"errorSpike","id":"s","track":"stable","learnFor":"30s","detector":"ratio",
                "windowSize":"10s","minErrorCount":1,"minBaselineRequests":100}"#,
        );
        // 60 requests at 5% in the first 30 s: not enough for a baseline.
        for s in [10, 20, 30] {
            assert_eq!(
                t.observe(&obs(Track::Stable, s, 20, 1)).unwrap(),
                Some(Verdict::Ok)
            );
        }
        // A spike to 50%, then 40%: had they been learned, the baseline would read 33% and
        // 40% would pass. No verdict instead, and the baseline stays as learned.
        for (s, errors) in [(40, 50), (50, 40), (60, 40)] {
            assert_eq!(
                t.observe(&obs(Track::Stable, s, 100, errors)).unwrap(),
                Some(Verdict::NoData),
                "at {s}s"
            );
        }
        let learned = t.state.learning.as_ref().map(|l| l.counts);
        assert_eq!(learned, Some(Counts::new(60, 3).unwrap()));
        let e = t.evidence(Timestamp::from_millis(60_000), None);
        assert!(
            e.reason.contains("60 requests")
                && e.reason.contains("minBaselineRequests 100")
                && e.reason.contains("learnFor"),
            "{}",
            e.reason
        );
    }

    #[test]
    fn a_gauge_on_the_error_rate_is_rejected_without_change() {
        let mut t = spike(r#"{"kind":"errorSpike","id":"s","baselineErrorRate":0.02}"#);
        let before = t.clone();
        let mut o = obs(Track::Canary, 10, 1, 1);
        o.measurement = Measurement::Gauge(serin_signals::Gauge::new(0.5).unwrap());
        let msg = t.observe(&o).unwrap_err().to_string();
        assert!(
            msg.contains("`s`") && msg.contains("counts") && msg.contains("gauge"),
            "{msg}"
        );
        assert_eq!(t, before);
    }
}
