//! [`HttpHealth`]: probe results from HTTP GETs against instances, as a [`HealthSource`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serin_orchestrator::{Error, Platform, Result, TrackStatus};
use serin_signals::{
    HealthSignal, HealthSource, InMemoryHealth, Probe, ProbeStatus, Timestamp, Track,
};

use crate::probe;

/// One HTTP probe: `GET path` on `addr`, reported as `probe` of `track` (and `instance`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpProbe {
    /// The track reported.
    pub track: Track,
    /// Which probe this is (readiness, liveness, startup or a dependency).
    pub probe: Probe,
    /// The instance reported, if the probe is per instance.
    pub instance: Option<String>,
    /// Where to send the GET.
    pub addr: SocketAddr,
    /// The path (`/ready`).
    pub path: String,
}

/// A [`HealthSource`] named `local-http` that runs HTTP probes when told to
/// ([`check`](HttpHealth::check)) and reports the latest result of each.
///
/// Results are counted as the kubelet counts an HTTP probe:
///
/// - a status from 200 to 399 is `Pass` (a redirect is not followed: the instance answered, and
///   a path that redirects to a login page or adds a slash belongs to a service that runs);
/// - every other status is `Fail` — a 5xx, and a 4xx too: a new version that answers its
///   health path with 404 (the path was removed or renamed) or 401 is not healthy, the
///   platform's own readiness probe already counts it so, and reading it as `Unknown` would let
///   a broken version hold a deployment until its deadline instead of failing its probes;
/// - a refused connection, a closed one or no answer within the timeout is `Fail`, as the
///   kubelet turns every request error into a failure: the probe ran, on loopback, and the
///   instance did not answer. An instance still starting reads as failing too, as a kubelet
///   counts a container not yet listening; what gives it time is the platform's readiness
///   wait before it gets traffic and the health triggers' `for` duration, as
///   `initialDelaySeconds` and `failureThreshold` do for the kubelet;
/// - `Unknown` is kept for what says nothing about the instance: a path no request can carry
///   (`ready`, `/re ady`), which is the probe's fault and is not sent (the kubelet answers
///   unknown when it cannot build the request), and a probe never run (no result at all).
///
/// Results carry the `now` given to `check`, so a caller in virtual time gets consistent
/// timestamps, and the reason as detail.
///
/// What to probe is either set by hand ([`watch`](Self::watch), [`watch_track`](Self::watch_track))
/// or followed from a [`Platform`]: [`refresh`](Self::refresh) watches the readiness and
/// liveness of every instance the platform runs for a service and checks them, and
/// [`spawn_refresh`](Self::spawn_refresh) does so periodically, as a kubelet probes the pods
/// it runs. That is what gives the orchestrator's health-check triggers results on the
/// embedded backend: a source nobody refreshes answers no result, and such a trigger would
/// only ever see missing data.
#[derive(Debug)]
pub struct HttpHealth {
    timeout: Duration,
    probes: Mutex<Vec<HttpProbe>>,
    results: InMemoryHealth,
    /// The tracks [`refresh`](Self::refresh) watches, to forget those the platform no longer
    /// runs.
    followed: Mutex<Vec<Track>>,
}

/// Where [`HttpHealth::refresh`] sends an instance's readiness and liveness probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbePaths {
    /// The readiness path (`/ready`).
    pub readiness: String,
    /// The liveness path (`/live`).
    pub liveness: String,
}

impl ProbePaths {
    /// Readiness at `readiness`, liveness at `liveness`.
    pub fn new(readiness: &str, liveness: &str) -> Self {
        ProbePaths {
            readiness: readiness.to_owned(),
            liveness: liveness.to_owned(),
        }
    }
}

impl HttpHealth {
    /// A source with no probe yet; each GET is bounded by `timeout`, which must be longer than
    /// zero: a GET that may take no time fails every probe, and healthy instances would read as
    /// failing.
    pub fn new(timeout: Duration) -> Result<Self> {
        if timeout.is_zero() {
            return Err(Error::invalid(
                "httpHealth.timeout",
                "0s",
                "must be longer than zero, or every probe fails",
            ));
        }
        Ok(HttpHealth {
            timeout,
            probes: Mutex::new(Vec::new()),
            results: InMemoryHealth::named("local-http"),
            followed: Mutex::new(Vec::new()),
        })
    }

    /// One pass over what `platform` runs for `service`: each of its tracks is watched as
    /// [`watch_track`](Self::watch_track) watches it (instances added, gone or moved since the
    /// last pass are followed), a track watched by an earlier pass that the platform no longer
    /// runs (retired) is forgotten, and every probe is checked at `now`.
    ///
    /// A platform that cannot list its tracks is an error and changes nothing: its tracks'
    /// last results stay, stamped with when they were taken, so a reader sees them age rather
    /// than vanish.
    pub async fn refresh(
        &self,
        platform: &dyn Platform,
        service: &str,
        paths: &ProbePaths,
        now: Timestamp,
    ) -> Result<()> {
        let tracks: Vec<TrackStatus> = platform
            .list()
            .await?
            .into_iter()
            .filter(|t| t.service == service)
            .collect();
        // Every track is checked first, so that a refused one changes nothing.
        for t in &tracks {
            check_track(&t.track)?;
        }
        for t in &tracks {
            self.watch_track(t, &paths.readiness, &paths.liveness)?;
        }
        let gone: Vec<Track> = {
            let mut followed = self
                .followed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now_run: Vec<Track> = tracks.iter().map(|t| t.track.clone()).collect();
            let gone = followed
                .iter()
                .filter(|t| !now_run.contains(t))
                .cloned()
                .collect();
            *followed = now_run;
            gone
        };
        for t in &gone {
            self.forget(t);
        }
        self.check(now).await;
        Ok(())
    }

    /// Runs [`refresh`](Self::refresh) every `every` on the tokio runtime, stamping results
    /// with the system clock, until this source is dropped (the task holds only a weak
    /// reference). A failed pass is logged and the next one tries again. A period under 1 ms
    /// is taken as 1 ms, so that passes never run back to back.
    pub fn spawn_refresh(
        self: &Arc<Self>,
        platform: Arc<dyn Platform>,
        service: &str,
        paths: ProbePaths,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        let service = service.to_owned();
        let every = every.max(crate::MIN_PERIOD);
        tokio::spawn(async move {
            while let Some(health) = weak.upgrade() {
                let now = Timestamp::from_system_time(SystemTime::now());
                if let Err(e) = health
                    .refresh(platform.as_ref(), &service, &paths, now)
                    .await
                {
                    tracing::warn!(service = %service, "health probes not refreshed: {e}");
                }
                drop(health);
                tokio::time::sleep(every).await;
            }
        })
    }

    fn lock(&self) -> MutexGuard<'_, Vec<HttpProbe>> {
        self.probes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds `probe`, replacing one for the same track, probe and instance. The result of a
    /// probe replaced by one at another address or path is dropped (it says nothing of what the
    /// new one reaches), so the probe has none until the next [`check`](Self::check); watched
    /// again unchanged, it keeps its result. A track built around its name check
    /// ([`Track::validate`]) is refused, naming `httpProbe.track`, and nothing changes: its
    /// results could never be recorded nor asked for.
    pub fn watch(&self, probe: HttpProbe) -> Result<()> {
        check_track(&probe.track)?;
        // Under the probes' lock, as in `forget`: a check in flight records nothing dropped.
        let mut probes = self.lock();
        if !probes.contains(&probe) {
            self.results.retain(&probe.track, |s| !reports(&probe, s));
        }
        probes.retain(|p| {
            !(p.track == probe.track && p.probe == probe.probe && p.instance == probe.instance)
        });
        probes.push(probe);
        Ok(())
    }

    /// Watches readiness (`readiness_path`) and liveness (`liveness_path`) of every instance of
    /// a platform's track that has an address, replacing what was watched on that track.
    ///
    /// Results of a probe watched exactly as before (same instance id, address and path) stay,
    /// so watching a track again at every status read does not leave it unknown until the next
    /// [`check`](Self::check); those of instances gone, or of probes sent elsewhere now (a new
    /// process under a reused id listens on another port, the path changed), are dropped, so
    /// they never count in the track's worst result.
    ///
    /// A track built around its name check is refused as in [`watch`](Self::watch), and
    /// nothing changes: a platform's status is taken as it is, and such a track's results
    /// could never be recorded nor asked for.
    pub fn watch_track(
        &self,
        status: &TrackStatus,
        readiness_path: &str,
        liveness_path: &str,
    ) -> Result<()> {
        check_track(&status.track)?;
        let wanted: Vec<HttpProbe> = status
            .instances
            .iter()
            .filter_map(|i| Some((i, i.address?)))
            .flat_map(|(i, addr)| {
                [
                    (Probe::Readiness, readiness_path),
                    (Probe::Liveness, liveness_path),
                ]
                .map(|(probe, path)| HttpProbe {
                    track: status.track.clone(),
                    probe,
                    instance: Some(i.id.clone()),
                    addr,
                    path: path.to_owned(),
                })
            })
            .collect();
        let track = &status.track;
        // Under the probes' lock, as in `forget`: a check in flight records nothing dropped.
        let mut probes = self.lock();
        let unchanged: Vec<HttpProbe> = wanted
            .iter()
            .filter(|p| probes.contains(p))
            .cloned()
            .collect();
        probes.retain(|p| &p.track != track);
        probes.extend(wanted);
        self.results
            .retain(track, |s| unchanged.iter().any(|p| reports(p, s)));
        Ok(())
    }

    /// Stops probing `track` and forgets its results (a retired track).
    pub fn forget(&self, track: &Track) {
        // Under the probes' lock, so that a check in flight records nothing of the track after
        // its results are forgotten (see `check`).
        let mut probes = self.lock();
        probes.retain(|p| &p.track != track);
        self.results.forget(track);
    }

    /// Runs every probe now, concurrently, and records the results at `now`. A probe forgotten
    /// or replaced while it ran has its result dropped: it would describe an instance no longer
    /// watched (retired, or removed by a scale-down), and no later check would replace it.
    pub async fn check(&self, now: Timestamp) {
        let probes = self.lock().clone();
        let mut running = Vec::with_capacity(probes.len());
        for p in probes {
            let timeout = self.timeout;
            running.push(tokio::spawn(async move {
                let answer = match probe::path_problem(&p.path) {
                    Some(reason) => Err(Err(format!("probe path `{}` {reason}", p.path))),
                    None => probe::get(p.addr, &p.path, timeout).await.map_err(Ok),
                };
                let (status, detail) = match answer {
                    Ok(s) if probe::passes(s) => {
                        (ProbeStatus::Pass, format!("{} answered {s}", p.path))
                    }
                    Ok(s) => (ProbeStatus::Fail, format!("{} answered {s}", p.path)),
                    Err(Ok(no_answer)) => (ProbeStatus::Fail, no_answer),
                    Err(Err(bad_path)) => (ProbeStatus::Unknown, bad_path),
                };
                let mut signal = HealthSignal::new(p.track.clone(), p.probe.clone(), status, now)
                    .with_detail(detail);
                signal.instance = p.instance.clone();
                (p, signal)
            }));
        }
        for r in running {
            if let Ok((probe, signal)) = r.await {
                let probes = self.lock();
                if probes.contains(&probe) {
                    // Refused only for a track built around its name check or a blank
                    // instance name, which `watch` and `watch_track` never take.
                    let _ = self.results.record(signal);
                }
            }
        }
    }
}

/// Whether `signal` is a result of `probe` (of its track: the caller's to match).
fn reports(probe: &HttpProbe, signal: &HealthSignal) -> bool {
    probe.probe == signal.probe && probe.instance == signal.instance
}

/// Refuses a track built around its name check ([`Track::validate`]), naming
/// `httpProbe.track`.
fn check_track(track: &Track) -> Result<()> {
    match track.validate("httpProbe.track") {
        Ok(()) => Ok(()),
        Err(serin_signals::Error::InvalidField {
            field,
            value,
            reason,
        }) => Err(Error::invalid(field, value, reason)),
        Err(other) => Err(Error::invalid("httpProbe.track", track, other.to_string())),
    }
}

#[async_trait]
impl HealthSource for HttpHealth {
    fn name(&self) -> &str {
        "local-http"
    }

    async fn probe(
        &self,
        track: &Track,
        probe: &Probe,
    ) -> serin_signals::Result<Option<HealthSignal>> {
        self.results.probe(track, probe).await
    }

    async fn signals(&self, track: &Track) -> serin_signals::Result<Vec<HealthSignal>> {
        self.results.signals(track).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_of_zero_is_refused_naming_it() {
        let err = HttpHealth::new(Duration::ZERO).unwrap_err().to_string();
        assert!(err.contains("httpHealth.timeout `0s`"), "{err}");
        assert!(HttpHealth::new(Duration::from_millis(1)).is_ok());
    }

    #[tokio::test]
    async fn a_probe_of_a_track_built_around_its_check_is_refused() {
        let health = HttpHealth::new(Duration::from_secs(1)).unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], 9));
        let probe = |track| HttpProbe {
            track,
            probe: Probe::Readiness,
            instance: None,
            addr,
            path: "/ready".into(),
        };
        let err = health
            .watch(probe(Track::Named("stable".into())))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("httpProbe.track") && err.contains("`stable`"),
            "{err}"
        );
        assert!(health.lock().is_empty(), "nothing is watched");
        assert!(
            health
                .signals(&Track::Named("stable".into()))
                .await
                .is_err()
        );
        health.watch(probe(Track::Stable)).unwrap();
        assert_eq!(health.lock().len(), 1);
    }

    #[tokio::test]
    async fn a_path_no_request_can_carry_is_unknown_not_a_failed_instance() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let health = HttpHealth::new(Duration::from_secs(1)).unwrap();
        for (instance, path) in [("blue-0", "/re ady"), ("blue-1", "ready")] {
            health
                .watch(HttpProbe {
                    track: Track::Blue,
                    probe: Probe::Readiness,
                    instance: Some(instance.to_owned()),
                    addr,
                    path: path.to_owned(),
                })
                .unwrap();
        }
        health.check(Timestamp::from_millis(1_000)).await;
        let signals = health.signals(&Track::Blue).await.unwrap();
        assert_eq!(signals.len(), 2, "{signals:?}");
        for s in signals {
            assert_eq!(s.status, ProbeStatus::Unknown, "{s:?}");
            let detail = s.detail.unwrap_or_default();
            assert!(detail.contains("probe path"), "{detail}");
        }
    }

    /// Watching a track again keeps the results of the instances watched as before, and drops
    /// those of an instance gone and of one now at another address.
    #[tokio::test]
    async fn watching_a_track_again_keeps_only_the_results_of_unchanged_instances() {
        use serin_orchestrator::InstanceStatus;
        let refused = || {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let instance = |id: &str, addr| {
            InstanceStatus::new(id, ProbeStatus::Pass, ProbeStatus::Pass).with_address(addr)
        };
        let track =
            |instances| TrackStatus::new("web", "1.0.0".parse().unwrap(), Track::Green, instances);
        let (a, b, c) = (refused(), refused(), refused());
        let health = HttpHealth::new(Duration::from_secs(1)).unwrap();
        health
            .watch_track(
                &track(vec![instance("green-0", a), instance("green-1", b)]),
                "/ready",
                "/live",
            )
            .unwrap();
        health.check(Timestamp::from_millis(1_000)).await;
        assert_eq!(health.signals(&Track::Green).await.unwrap().len(), 4);
        // The same instances: nothing is lost until the next check.
        health
            .watch_track(
                &track(vec![instance("green-0", a), instance("green-1", b)]),
                "/ready",
                "/live",
            )
            .unwrap();
        assert_eq!(health.signals(&Track::Green).await.unwrap().len(), 4);
        // green-1 is gone; green-0 was restarted elsewhere; green-2 is new.
        health
            .watch_track(
                &track(vec![instance("green-0", c), instance("green-2", b)]),
                "/ready",
                "/live",
            )
            .unwrap();
        assert!(health.signals(&Track::Green).await.unwrap().is_empty());
        health
            .watch_track(&track(vec![instance("green-2", b)]), "/ready", "/live")
            .unwrap();
        health.check(Timestamp::from_millis(2_000)).await;
        let instances: Vec<_> = health
            .signals(&Track::Green)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.instance.unwrap())
            .collect();
        assert_eq!(instances, ["green-2", "green-2"]);
    }

    /// A probe watched again at another address or path has no result until it is checked
    /// there: the one it had describes what the old probe reached. Watched again unchanged, it
    /// keeps its result.
    #[tokio::test]
    async fn a_probe_watched_elsewhere_has_no_result_until_checked_there() {
        let refused = || {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let (a, b) = (refused(), refused());
        let probe = |addr, path: &str| HttpProbe {
            track: Track::Blue,
            probe: Probe::Readiness,
            instance: Some("blue-0".into()),
            addr,
            path: path.into(),
        };
        let health = HttpHealth::new(Duration::from_secs(1)).unwrap();
        let result = async || {
            health
                .probe(&Track::Blue, &Probe::Readiness)
                .await
                .unwrap()
                .map(|s| s.status)
        };
        health.watch(probe(a, "/ready")).unwrap();
        health.check(Timestamp::from_millis(1_000)).await;
        assert_eq!(result().await, Some(ProbeStatus::Fail));
        health.watch(probe(a, "/ready")).unwrap();
        assert_eq!(result().await, Some(ProbeStatus::Fail), "unchanged: kept");
        health.watch(probe(b, "/ready")).unwrap();
        assert_eq!(result().await, None, "another address");
        health.check(Timestamp::from_millis(2_000)).await;
        assert_eq!(result().await, Some(ProbeStatus::Fail));
        health.watch(probe(b, "/health")).unwrap();
        assert_eq!(result().await, None, "another path");
    }

    /// Watching a track again at another readiness path drops the readiness results only: the
    /// liveness probes are watched as before and keep theirs.
    #[tokio::test]
    async fn watching_a_track_at_another_path_keeps_the_results_of_unchanged_probes() {
        use serin_orchestrator::InstanceStatus;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let status = TrackStatus::new(
            "web",
            "1.0.0".parse().unwrap(),
            Track::Green,
            vec![
                InstanceStatus::new("green-0", ProbeStatus::Pass, ProbeStatus::Pass)
                    .with_address(addr),
            ],
        );
        let health = HttpHealth::new(Duration::from_secs(1)).unwrap();
        health.watch_track(&status, "/ready", "/live").unwrap();
        health.check(Timestamp::from_millis(1_000)).await;
        health.watch_track(&status, "/ready2", "/live").unwrap();
        let probes: Vec<Probe> = health
            .signals(&Track::Green)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.probe)
            .collect();
        assert_eq!(probes, [Probe::Liveness]);
    }

    /// A platform's track built around its name check is refused naming it, and what was
    /// watched stays.
    #[tokio::test]
    async fn watching_a_track_built_around_its_check_is_refused() {
        use serin_orchestrator::InstanceStatus;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let status = |track| {
            TrackStatus::new(
                "web",
                "1.0.0".parse().unwrap(),
                track,
                vec![
                    InstanceStatus::new("i-0", ProbeStatus::Pass, ProbeStatus::Pass)
                        .with_address(addr),
                ],
            )
        };
        let health = HttpHealth::new(Duration::from_secs(1)).unwrap();
        health
            .watch_track(&status(Track::Blue), "/ready", "/live")
            .unwrap();
        let err = health
            .watch_track(&status(Track::Named("stable".into())), "/ready", "/live")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("httpProbe.track") && err.contains("`stable`"),
            "{err}"
        );
        let watched = health.lock().clone();
        assert_eq!(watched.len(), 2, "{watched:?}");
        assert!(
            watched.iter().all(|p| p.track == Track::Blue),
            "{watched:?}"
        );
    }

    /// A track forgotten while a check of it is in flight (retired, or watched anew after a
    /// scale-down) gets none of that check's results: they describe instances no longer
    /// watched, and nothing would ever replace them.
    #[tokio::test]
    async fn a_result_of_a_forgotten_probe_is_not_recorded() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (asked, mut was_asked) = tokio::sync::mpsc::channel::<()>(1);
        let answer = std::sync::Arc::new(tokio::sync::Notify::new());
        let release = std::sync::Arc::clone(&answer);
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf).await.unwrap();
            asked.send(()).await.unwrap();
            release.notified().await;
            let _ = stream
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
                .await;
        });
        let health = std::sync::Arc::new(HttpHealth::new(Duration::from_secs(10)).unwrap());
        health
            .watch(HttpProbe {
                track: Track::Blue,
                probe: Probe::Readiness,
                instance: Some("blue-1".into()),
                addr,
                path: "/ready".into(),
            })
            .unwrap();
        let checking = {
            let health = std::sync::Arc::clone(&health);
            tokio::spawn(async move { health.check(Timestamp::from_millis(1_000)).await })
        };
        was_asked.recv().await.unwrap();
        health.forget(&Track::Blue);
        answer.notify_one();
        checking.await.unwrap();
        server.await.unwrap();
        let signals = health.signals(&Track::Blue).await.unwrap();
        assert!(signals.is_empty(), "{signals:?}");
    }
}
