//! [`HttpHealth`]: probe results from HTTP GETs against instances, as a [`HealthSource`].

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use serin_orchestrator::TrackStatus;
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
/// A 2xx answer is `Pass`; a 5xx, a refused connection or no answer within the timeout is
/// `Fail`; any other status (a 404 from a wrong path) is `Unknown` — never a pass. Results carry
/// the `now` given to `check`, so a caller in virtual time gets consistent timestamps, and the
/// reason as detail.
#[derive(Debug)]
pub struct HttpHealth {
    timeout: Duration,
    probes: Mutex<Vec<HttpProbe>>,
    results: InMemoryHealth,
}

impl HttpHealth {
    /// A source with no probe yet; each GET is bounded by `timeout`.
    pub fn new(timeout: Duration) -> Self {
        HttpHealth {
            timeout,
            probes: Mutex::new(Vec::new()),
            results: InMemoryHealth::named("local-http"),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<HttpProbe>> {
        self.probes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds `probe`, replacing one for the same track, probe and instance.
    pub fn watch(&self, probe: HttpProbe) {
        let mut probes = self.lock();
        probes.retain(|p| {
            !(p.track == probe.track && p.probe == probe.probe && p.instance == probe.instance)
        });
        probes.push(probe);
    }

    /// Watches readiness (`readiness_path`) and liveness (`liveness_path`) of every instance of
    /// a platform's track that has an address, replacing what was watched on that track.
    pub fn watch_track(&self, status: &TrackStatus, readiness_path: &str, liveness_path: &str) {
        self.forget(&status.track);
        for i in &status.instances {
            let Some(addr) = i.address else { continue };
            for (probe, path) in [
                (Probe::Readiness, readiness_path),
                (Probe::Liveness, liveness_path),
            ] {
                self.watch(HttpProbe {
                    track: status.track.clone(),
                    probe,
                    instance: Some(i.id.clone()),
                    addr,
                    path: path.to_owned(),
                });
            }
        }
    }

    /// Stops probing `track` and forgets its results (a retired track).
    pub fn forget(&self, track: &Track) {
        self.lock().retain(|p| &p.track != track);
        self.results.forget(track);
    }

    /// Runs every probe now, concurrently, and records the results at `now`.
    pub async fn check(&self, now: Timestamp) {
        let probes = self.lock().clone();
        let mut running = Vec::with_capacity(probes.len());
        for p in probes {
            let timeout = self.timeout;
            running.push(tokio::spawn(async move {
                let (status, detail) = match probe::get(p.addr, &p.path, timeout).await {
                    Ok(s) if s.is_success() => {
                        (ProbeStatus::Pass, format!("{} answered {s}", p.path))
                    }
                    Ok(s) if s.is_server_error() => {
                        (ProbeStatus::Fail, format!("{} answered {s}", p.path))
                    }
                    Ok(s) => (ProbeStatus::Unknown, format!("{} answered {s}", p.path)),
                    Err(e) => (ProbeStatus::Fail, e),
                };
                let mut signal =
                    HealthSignal::new(p.track, p.probe, status, now).with_detail(detail);
                signal.instance = p.instance;
                signal
            }));
        }
        for r in running {
            if let Ok(signal) = r.await {
                self.results.record(signal);
            }
        }
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
