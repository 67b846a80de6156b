//! Where probe results come from: the [`HealthSource`] trait and [`InMemoryHealth`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::error::Result;
use crate::health::{HealthSignal, Probe, ProbeStatus};
use crate::memory::{Faults, lock};
use crate::track::Track;

/// A source of readiness, liveness, startup and dependency probe results.
///
/// It reports the **latest** result it holds, by the time the probe completed (`at`), not by
/// when the result reached it: a late older result never replaces a newer one. It never invents
/// one. A probe that was never run has no result (`None`), which callers treat as unknown,
/// never healthy.
///
/// # Freshness
///
/// A source keeps its results current **by itself**. The orchestrator reads
/// [`signals`](HealthSource::signals) of both tracks at every analysis and monitoring check
/// and does not ask its platform for status in between, so nothing else refreshes them: a
/// source that probes only when asked, or only when the platform is asked, goes stale. Probe
/// each instance on the source's own schedule, at least once per `checkInterval` of the
/// `healthCheck` triggers that read it (5 s by default), and stamp each result with the time
/// the probe completed, on the clock the orchestrator reads `now` from (its `Clock`: wall
/// time in production, the virtual clock under paused time). A trigger that
/// sees no result newer than its `staleAfter` (three `checkInterval`s by default) goes stale
/// and acts on its `onMissingData` (by default it holds: no promotion until fresh results come
/// back, or `maxDeploymentDuration` rolls the deployment back). Results are read under the
/// platform's track names (`blue`, `green`, `stable`, `canary`), the same names the platform
/// runs them under; results of another track than the one asked for are left out, never taken
/// for its own, and a result dated after it was answered is taken as of the answer (a clock
/// ahead cannot make one pass stand for the time ahead).
///
/// The conformance suite in `testkit` (feature `testkit`) checks these promises against a
/// fixture that arranges results; it arranges them out of order too.
///
/// Object-safe; `Arc<T>` and `Box<T>` forward to `T`.
#[async_trait]
pub trait HealthSource: Send + Sync {
    /// A short name for errors and evidence.
    fn name(&self) -> &str;

    /// The latest result of `probe` on `track`, summarised over instances: among the latest
    /// result of each instance, the worst one (`Fail`, then `Unknown`, then `Pass`; the most
    /// recent on a tie). `None` when the probe never ran on that track.
    async fn probe(&self, track: &Track, probe: &Probe) -> Result<Option<HealthSignal>>;

    /// The latest result of every probe (readiness, liveness, startup, each dependency) and
    /// every instance of `track`, ordered by probe then instance. Empty for an unknown track.
    async fn signals(&self, track: &Track) -> Result<Vec<HealthSignal>>;
}

#[async_trait]
impl<T: HealthSource + ?Sized> HealthSource for Arc<T> {
    fn name(&self) -> &str {
        (**self).name()
    }

    async fn probe(&self, track: &Track, probe: &Probe) -> Result<Option<HealthSignal>> {
        (**self).probe(track, probe).await
    }

    async fn signals(&self, track: &Track) -> Result<Vec<HealthSignal>> {
        (**self).signals(track).await
    }
}

#[async_trait]
impl<T: HealthSource + ?Sized> HealthSource for Box<T> {
    fn name(&self) -> &str {
        (**self).name()
    }

    async fn probe(&self, track: &Track, probe: &Probe) -> Result<Option<HealthSignal>> {
        (**self).probe(track, probe).await
    }

    async fn signals(&self, track: &Track) -> Result<Vec<HealthSignal>> {
        (**self).signals(track).await
    }
}

/// How bad a status is, for picking the worst instance.
fn severity(status: ProbeStatus) -> u8 {
    match status {
        ProbeStatus::Pass => 0,
        ProbeStatus::Unknown => 1,
        ProbeStatus::Fail => 2,
    }
}

/// A sort key for a probe giving the order [`HealthSource::signals`] lists probes in:
/// readiness, liveness, startup, then dependencies by name. Shared so that every source lists
/// them alike (the probe type itself is not `Ord`).
pub fn probe_key(probe: &Probe) -> (u8, String) {
    match probe {
        Probe::Readiness => (0, String::new()),
        Probe::Liveness => (1, String::new()),
        Probe::Startup => (2, String::new()),
        Probe::Dependency(name) => (3, name.clone()),
    }
}

/// The summary [`HealthSource::probe`] gives of one probe's latest results over instances: the
/// worst (`Fail`, then `Unknown`, then `Pass`), the most recent on a tie, the last given on a
/// full tie. Shared so that every source summarises alike and a failing instance is never
/// hidden by a passing one.
pub fn worst_signal<'a>(
    signals: impl IntoIterator<Item = &'a HealthSignal>,
) -> Option<&'a HealthSignal> {
    signals
        .into_iter()
        .max_by_key(|s| (severity(s.status), s.at))
}

type Key = (Track, (u8, String), Option<String>);

#[derive(Debug, Default)]
struct HealthState {
    latest: BTreeMap<Key, HealthSignal>,
    faults: Faults,
}

/// A [`HealthSource`] whose results are scripted by pushing signals in.
///
/// For each track, probe and instance it keeps the result with the latest `at` (the later push on
/// a tie), so results that arrive out of order never roll the state back.
///
/// Like every source, it refuses a [`Track::Named`] built around its name check
/// ([`Track::validate`]) where it enters, in a recording or a query, with
/// [`Error::InvalidField`](crate::Error::InvalidField): such a track could never be reported
/// under the name it was recorded by (`Named("stable")` is not [`Track::Stable`]), so accepting
/// it would hide a result, or answer "never probed" for a track that was.
///
/// ```
/// use serin_signals::{HealthSignal, HealthSource, InMemoryHealth, Probe, ProbeStatus, Timestamp, Track};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let health = InMemoryHealth::new();
/// let at = Timestamp::from_millis;
/// health.record(HealthSignal::new(Track::Green, Probe::Readiness, ProbeStatus::Pass, at(10)).with_instance("green-0"))?;
/// health.record(HealthSignal::new(Track::Green, Probe::Readiness, ProbeStatus::Fail, at(12)).with_instance("green-1"))?;
///
/// let worst = health.probe(&Track::Green, &Probe::Readiness).await?.unwrap();
/// assert_eq!(worst.status, ProbeStatus::Fail);
/// assert_eq!(health.probe(&Track::Blue, &Probe::Readiness).await?, None);
/// # Ok::<(), serin_signals::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct InMemoryHealth {
    name: String,
    state: Mutex<HealthState>,
}

impl Default for InMemoryHealth {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryHealth {
    /// An empty source named `in-memory-health`.
    pub fn new() -> Self {
        Self::named("in-memory-health")
    }

    /// An empty source with its own name.
    pub fn named(name: impl Into<String>) -> Self {
        InMemoryHealth {
            name: name.into(),
            state: Mutex::new(HealthState::default()),
        }
    }

    /// Records a probe result; an older result than the one held for the same track, probe and
    /// instance is ignored. A signal [`HealthSignal::validate`] refuses (a track built around its
    /// name check, a blank instance or dependency name) is an error naming `signal.track`,
    /// `signal.instance` or `signal.probe.dependency`, and changes nothing.
    pub fn record(&self, signal: HealthSignal) -> Result<()> {
        signal.validate("signal")?;
        let key = (
            signal.track.clone(),
            probe_key(&signal.probe),
            signal.instance.clone(),
        );
        let mut state = lock(&self.state);
        match state.latest.get(&key) {
            Some(held) if held.at > signal.at => {}
            _ => {
                state.latest.insert(key, signal);
            }
        }
        Ok(())
    }

    /// Forgets every result of `track` (a retired track).
    pub fn forget(&self, track: &Track) {
        lock(&self.state).latest.retain(|(t, _, _), _| t != track);
    }

    /// Keeps, of the results of `track`, only those `keep` accepts; other tracks' results stay.
    ///
    /// The source does not know which instances a track has (whoever probes pushes the
    /// results), so it keeps every instance's latest result until told otherwise. When the
    /// instances of a track are replaced (a scale-down, an instance restarted under a new id or
    /// at a new address), drop the results of those that are gone: [`probe`](HealthSource::probe)
    /// answers the worst result over every instance held, so a failing result of an instance
    /// that no longer exists would keep the whole track failing, and a passing one would stand
    /// for an instance nobody probes any more. [`forget`](Self::forget) drops the track's
    /// results whole, the healthy instances' too, which would leave the track unknown until
    /// they are probed again.
    ///
    /// ```
    /// use serin_signals::{HealthSignal, HealthSource, InMemoryHealth, Probe, ProbeStatus, Timestamp, Track};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let health = InMemoryHealth::new();
    /// let ready = |instance: &str, status| {
    ///     HealthSignal::new(Track::Green, Probe::Readiness, status, Timestamp::from_millis(10))
    ///         .with_instance(instance)
    /// };
    /// health.record(ready("green-0", ProbeStatus::Pass))?;
    /// health.record(ready("green-1", ProbeStatus::Fail))?;
    /// // green-1 was scaled away.
    /// health.retain(&Track::Green, |s| s.instance.as_deref() == Some("green-0"));
    /// let worst = health.probe(&Track::Green, &Probe::Readiness).await?.unwrap();
    /// assert_eq!(worst.status, ProbeStatus::Pass);
    /// # Ok::<(), serin_signals::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn retain(&self, track: &Track, mut keep: impl FnMut(&HealthSignal) -> bool) {
        lock(&self.state)
            .latest
            .retain(|(t, _, _), signal| t != track || keep(signal));
    }

    /// Makes the next `n` calls fail with [`Error::Unavailable`](crate::Error::Unavailable).
    pub fn fail_next(&self, n: u64) {
        lock(&self.state).faults.fail_next(n);
    }

    /// While `true`, every call fails with [`Error::Unavailable`](crate::Error::Unavailable).
    pub fn set_unavailable(&self, unavailable: bool) {
        lock(&self.state).faults.set_unavailable(unavailable);
    }
}

#[async_trait]
impl HealthSource for InMemoryHealth {
    fn name(&self) -> &str {
        &self.name
    }

    async fn probe(&self, track: &Track, probe: &Probe) -> Result<Option<HealthSignal>> {
        track.validate("track")?;
        let mut state = lock(&self.state);
        state.faults.check(&self.name)?;
        let wanted = probe_key(probe);
        Ok(worst_signal(
            state
                .latest
                .iter()
                .filter(|((t, p, _), _)| t == track && *p == wanted)
                .map(|(_, s)| s),
        )
        .cloned())
    }

    async fn signals(&self, track: &Track) -> Result<Vec<HealthSignal>> {
        track.validate("track")?;
        let mut state = lock(&self.state);
        state.faults.check(&self.name)?;
        Ok(state
            .latest
            .iter()
            .filter(|((t, _, _), _)| t == track)
            .map(|(_, s)| s.clone())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::time::Timestamp;

    fn sig(track: Track, probe: Probe, status: ProbeStatus, at: u64) -> HealthSignal {
        HealthSignal::new(track, probe, status, Timestamp::from_millis(at))
    }

    #[test]
    fn the_worst_result_wins_and_the_latest_breaks_ties() {
        let s = |status, at, instance| {
            sig(Track::Blue, Probe::Readiness, status, at).with_instance(instance)
        };
        let all = [
            s(ProbeStatus::Unknown, 30, "a"),
            s(ProbeStatus::Fail, 10, "b"),
            s(ProbeStatus::Fail, 20, "c"),
            s(ProbeStatus::Pass, 40, "d"),
        ];
        let worst = |from: &[HealthSignal]| worst_signal(from).and_then(|w| w.instance.clone());
        assert_eq!(worst(&all), Some("c".to_owned()));
        assert_eq!(
            worst(&[all[0].clone(), all[3].clone()]),
            Some("a".to_owned())
        );
        assert_eq!(worst(&[]), None);
        let mut probes = vec![
            Probe::Dependency("db".into()),
            Probe::Startup,
            Probe::Dependency("cache".into()),
            Probe::Readiness,
            Probe::Liveness,
        ];
        probes.sort_by_key(probe_key);
        assert_eq!(
            probes,
            vec![
                Probe::Readiness,
                Probe::Liveness,
                Probe::Startup,
                Probe::Dependency("cache".into()),
                Probe::Dependency("db".into()),
            ]
        );
    }

    #[tokio::test]
    async fn older_results_never_replace_newer_ones() {
        let h = InMemoryHealth::new();
        h.record(sig(Track::Blue, Probe::Liveness, ProbeStatus::Fail, 20))
            .unwrap();
        h.record(sig(Track::Blue, Probe::Liveness, ProbeStatus::Pass, 10))
            .unwrap();
        let got = h
            .probe(&Track::Blue, &Probe::Liveness)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (got.status, got.at),
            (ProbeStatus::Fail, Timestamp::from_millis(20))
        );
        h.record(sig(Track::Blue, Probe::Liveness, ProbeStatus::Pass, 30))
            .unwrap();
        let got = h
            .probe(&Track::Blue, &Probe::Liveness)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.status, ProbeStatus::Pass);
    }

    #[tokio::test]
    async fn signals_list_dependencies_and_forget_clears_a_track() {
        let h = InMemoryHealth::new();
        h.record(sig(
            Track::Canary,
            Probe::Dependency("db".into()),
            ProbeStatus::Unknown,
            5,
        ))
        .unwrap();
        h.record(sig(Track::Canary, Probe::Readiness, ProbeStatus::Pass, 5))
            .unwrap();
        h.record(sig(Track::Stable, Probe::Readiness, ProbeStatus::Pass, 5))
            .unwrap();
        let got = h.signals(&Track::Canary).await.unwrap();
        let probes: Vec<Probe> = got.into_iter().map(|s| s.probe).collect();
        assert_eq!(
            probes,
            vec![Probe::Readiness, Probe::Dependency("db".into())]
        );
        h.forget(&Track::Canary);
        assert!(h.signals(&Track::Canary).await.unwrap().is_empty());
        assert_eq!(h.signals(&Track::Stable).await.unwrap().len(), 1);
    }

    /// An instance replaced by a scale-down no longer counts: its failing result goes, the
    /// remaining instances' results and other tracks' stay.
    #[tokio::test]
    async fn results_of_instances_no_longer_kept_leave_the_summary() {
        let h = InMemoryHealth::new();
        let ready = |track: Track, instance: &str, status| {
            sig(track, Probe::Readiness, status, 5).with_instance(instance)
        };
        h.record(ready(Track::Canary, "canary-0", ProbeStatus::Pass))
            .unwrap();
        h.record(ready(Track::Canary, "canary-1", ProbeStatus::Fail))
            .unwrap();
        h.record(ready(Track::Stable, "canary-1", ProbeStatus::Fail))
            .unwrap();
        async fn status(h: &InMemoryHealth, track: Track) -> Option<ProbeStatus> {
            let worst = h.probe(&track, &Probe::Readiness).await.unwrap();
            worst.map(|s| s.status)
        }
        assert_eq!(status(&h, Track::Canary).await, Some(ProbeStatus::Fail));
        h.retain(&Track::Canary, |s| {
            s.instance.as_deref() == Some("canary-0")
        });
        assert_eq!(status(&h, Track::Canary).await, Some(ProbeStatus::Pass));
        assert_eq!(h.signals(&Track::Canary).await.unwrap().len(), 1);
        assert_eq!(status(&h, Track::Stable).await, Some(ProbeStatus::Fail));
    }

    /// A track built around its name check is refused where it enters, naming the field, and
    /// a refused recording changes nothing.
    #[tokio::test]
    async fn tracks_built_around_their_check_are_refused() {
        let h = InMemoryHealth::new();
        h.record(sig(Track::Stable, Probe::Readiness, ProbeStatus::Fail, 5))
            .unwrap();
        for name in ["stable", "Shadow 1"] {
            let track = Track::Named(name.to_owned());
            let err = h
                .record(sig(track.clone(), Probe::Readiness, ProbeStatus::Pass, 9))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("signal.track") && err.contains(&format!("`{name}`")),
                "{err}"
            );
            let err = h.probe(&track, &Probe::Readiness).await.unwrap_err();
            assert!(matches!(err, Error::InvalidField { ref field, .. } if field == "track"));
            let err = h.signals(&track).await.unwrap_err();
            assert!(matches!(err, Error::InvalidField { ref field, .. } if field == "track"));
        }
        let held = h.signals(&Track::Stable).await.unwrap();
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].status, ProbeStatus::Fail);
    }

    /// A blank instance name, or a dependency with no name, would be held apart from the
    /// result it was meant for (a blank instance is not the whole track) and could not be
    /// told apart in evidence: refused, naming the field, and nothing changes.
    #[tokio::test]
    async fn unnamed_instances_and_dependencies_are_refused() {
        let h = InMemoryHealth::new();
        let bad = [
            (
                sig(Track::Blue, Probe::Readiness, ProbeStatus::Pass, 5).with_instance(""),
                "signal.instance",
            ),
            (
                sig(Track::Blue, Probe::Liveness, ProbeStatus::Pass, 5).with_instance("  "),
                "signal.instance",
            ),
            (
                sig(
                    Track::Blue,
                    Probe::Dependency(String::new()),
                    ProbeStatus::Fail,
                    5,
                ),
                "signal.probe.dependency",
            ),
        ];
        for (signal, field) in bad {
            let err = h.record(signal).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidField { field: f, reason, .. }
                    if f == field && reason.contains("empty")),
                "{err}"
            );
        }
        assert!(h.signals(&Track::Blue).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn injected_outage_is_unavailable() {
        let h = InMemoryHealth::named("probes");
        h.fail_next(1);
        let err = h.signals(&Track::Blue).await.unwrap_err();
        assert!(
            matches!(err, Error::Unavailable { ref source_name, .. } if source_name == "probes")
        );
        assert!(h.signals(&Track::Blue).await.is_ok());
        h.set_unavailable(true);
        assert!(h.probe(&Track::Blue, &Probe::Startup).await.is_err());
    }

    #[tokio::test]
    async fn conformance() {
        let fixture = crate::testkit::InMemoryHealthFixture::new();
        crate::testkit::check_health_source_all(fixture.source().as_ref(), &fixture).await;
    }
}
