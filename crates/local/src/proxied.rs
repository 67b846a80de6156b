//! [`ProxiedPlatform`]: a [`Platform`] whose tracks the [`ProxyRouter`] follows, so that bringing
//! tracks up and retiring them can never fail a request.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use serin_orchestrator::{Error, InstanceStatus, Platform, TrackSpec, TrackStatus};
use serin_signals::{ProbeStatus, Track};

use crate::process::ProcessPlatform;
use crate::proxy::ProxyRouter;

/// A platform with the proxy kept in step with it.
///
/// The proxy routes only to the instances it is given. This wrapper gives it, for each track,
/// the instances the platform reports ready — at every bring-up, status read and scale, and on
/// each pass of [`sync`](ProxiedPlatform::sync) — and retires a track in the only order that
/// drops nothing: take the track's instances out of the proxy, wait until no request is in
/// flight on them (at most the drain the retire is given), and only then stop the processes.
///
/// **Readiness, as Kubernetes counts it.** One readiness check that fails (a probe that timed
/// out during a pause of the collector, a burst of load) says little about an instance that
/// still runs: taking it out of the proxy at once would answer every request of a track with
/// one instance with a 503 until the next read. So, as the kubelet removes a pod from its
/// Service only after `failureThreshold` failed probes in a row (3 by default) and adds it
/// back after one that passes, an instance the proxy routes to stays there until that many
/// reads in a row found it unready
/// ([`with_failure_threshold`](ProxiedPlatform::with_failure_threshold)), and joins it again
/// at the first read that finds it ready. An instance that died (its liveness failed: the
/// process exited) leaves at once, and one never yet found ready is not given to the proxy.
/// The status the wrapper answers is the platform's, unchanged: a track that
/// [`wait_ready`](serin_orchestrator::wait_ready) finds all ready is, from that read, all in
/// the proxy, so a switch the orchestrator makes then finds every instance routed.
///
/// A status read that started before a bring-up or retire of the same track is never given to
/// the proxy after it (each track carries a generation number), so a retired track cannot come
/// back into the proxy from a stale read.
///
/// **Concurrent calls.** A [`bring_up`](Platform::bring_up), [`scale`](Platform::scale) or
/// [`retire`](Platform::retire) of a track waits for the one already running on the same track
/// to finish, as a controller handles one change of an object at a time: each of them reads the
/// platform, changes the proxy and then the platform, and two interleaved would act on what the
/// other is about to change (a scale-down would drain the instances a concurrent scale-up keeps,
/// and stop others undrained; a bring-up refused because a retire still runs would give the
/// retiring instances back to the proxy). Calls on different tracks do not wait for each other
/// (the proxy keeps each track's instances apart), and status reads and
/// [`sync`](ProxiedPlatform::sync) never wait: a retire's drain must not hold up the readiness
/// polls of the track taking its traffic.
///
/// Scaling a track down drains the same way: the instances the platform is about to remove
/// (dead ones first, then unready ones, then the newest ready ones, as the [`Platform`]
/// contract says, judged by its status) leave the proxy first and are withheld from it while
/// their in-flight requests finish (at most the
/// [drain timeout](ProxiedPlatform::with_drain_timeout)); only then does the platform stop them,
/// named ([`Platform::scale_down`]): a scale by count would choose again on a read of the
/// platform's own, and could stop an instance that went unready for a moment since, still in
/// the proxy and undrained, while the drained one kept running withheld.
/// One that dies or goes unready during that drain is then the platform's choice, and is
/// drained as well before the platform is asked to scale; one it no longer chooses goes back
/// to the proxy at once, before the new choice drains, so the track keeps the instances it
/// keeps in the proxy throughout.
///
/// **One service.** The proxy names its backends by track alone (`green`), so it fronts one
/// service: two services' `green` tracks would overwrite each other's instances. The wrapper
/// therefore follows one service, the one its first successful
/// [`bring_up`](Platform::bring_up), [`status`](Platform::status), [`scale`](Platform::scale)
/// or [`retire`](Platform::retire) names: [`sync`](ProxiedPlatform::sync) gives the proxy that
/// service's tracks only (none before that first call), and a call about another service is
/// refused with [`Error::InvalidField`] naming both, changing nothing. Give each service a proxy
/// and a wrapper of its own. [`list`](Platform::list), [`lock`](Platform::lock),
/// [`unlock`](Platform::unlock) and [`lock_holder`](Platform::lock_holder) are the platform's,
/// for every service.
pub struct ProxiedPlatform<P = ProcessPlatform> {
    platform: P,
    router: ProxyRouter,
    /// The longest a scale-down waits for the leaving instances' requests.
    drain: Duration,
    /// How many reads in a row must find a routed instance unready before it leaves the proxy.
    failure_threshold: u32,
    /// The service the proxy fronts, once a call has named it.
    service: OnceLock<String>,
    tracks: Mutex<BTreeMap<String, TrackState>>,
}

/// What the wrapper knows of one track.
#[derive(Debug, Clone, Default)]
struct TrackState {
    /// Bumped at every bring-up, retire and scale-down, so a status read that started before
    /// one is not given to the proxy after it.
    generation: u64,
    /// Retired: withheld from the proxy.
    retired: bool,
    /// Instances a scale-down is draining: withheld from the proxy until they are stopped.
    leaving: BTreeSet<SocketAddr>,
    /// What the reads so far say of each running instance's place in the proxy.
    readiness: BTreeMap<SocketAddr, Readiness>,
    /// Held for the whole of a bring-up, scale or retire of the track, so they run one at a time.
    turn: Arc<tokio::sync::Mutex<()>>,
}

/// One instance's place in the proxy, as its readiness reads so far decide it.
#[derive(Debug, Clone, Copy, Default)]
struct Readiness {
    /// Given to the proxy: found ready, and not unready at enough reads in a row since.
    listed: bool,
    /// Reads in a row that found it alive but unready.
    failures: u32,
}

impl TrackState {
    /// Counts the readiness of each instance of `status` (a fresh read) and answers the
    /// addresses to give the proxy, in the status's order: the listed instances, which are the
    /// ready ones and those alive but unready at fewer than `failure_threshold` reads in a
    /// row. Instances no longer running are forgotten.
    fn follow(&mut self, status: &TrackStatus, failure_threshold: u32) -> Vec<SocketAddr> {
        let mut read = BTreeMap::new();
        let mut listed = Vec::new();
        for i in &status.instances {
            let Some(addr) = i.address else { continue };
            let mut r = self.readiness.get(&addr).copied().unwrap_or_default();
            if i.is_ready() {
                r = Readiness {
                    listed: true,
                    failures: 0,
                };
            } else if i.liveness == ProbeStatus::Fail {
                // Dead: it will not answer again, so waiting for more reads only fails requests.
                r = Readiness::default();
            } else {
                r.failures = r.failures.saturating_add(1);
                r.listed &= r.failures < failure_threshold;
            }
            if r.listed {
                listed.push(addr);
            }
            read.insert(addr, r);
        }
        self.readiness = read;
        listed
    }
}

/// How long a scale-down waits, by default, for the leaving instances' requests to finish.
const DEFAULT_DRAIN: Duration = Duration::from_secs(30);

/// How many reads in a row must find a routed instance unready, by default, before it leaves
/// the proxy: the kubelet's default `failureThreshold`.
const DEFAULT_FAILURE_THRESHOLD: u32 = 3;

impl<P: Platform> ProxiedPlatform<P> {
    /// Wraps `platform` so that `router` follows it.
    pub fn new(platform: P, router: ProxyRouter) -> Self {
        ProxiedPlatform {
            platform,
            router,
            drain: DEFAULT_DRAIN,
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
            service: OnceLock::new(),
            tracks: Mutex::new(BTreeMap::new()),
        }
    }

    /// With another bound on how long a scale-down waits for the requests in flight on the
    /// instances it removes (default 30 s); they are stopped when it passes.
    pub fn with_drain_timeout(mut self, drain: Duration) -> Self {
        self.drain = drain;
        self
    }

    /// With another count of reads in a row that must find an instance the proxy routes to
    /// unready before it leaves the proxy (default 3, as Kubernetes' `failureThreshold`); 1
    /// takes it out at the first. An instance that died leaves at once whatever the count.
    /// Refused unless at least 1, naming `proxiedPlatform.failureThreshold`.
    pub fn with_failure_threshold(mut self, reads: u32) -> crate::Result<Self> {
        if reads == 0 {
            return Err(crate::Error::invalid(
                "proxiedPlatform.failureThreshold",
                reads,
                "must be at least 1 (1 takes an instance out of the proxy at its first \
                 failed readiness read)",
            ));
        }
        self.failure_threshold = reads;
        Ok(self)
    }

    /// The wrapped platform.
    pub fn inner(&self) -> &P {
        &self.platform
    }

    /// Refuses `service` if the wrapper follows another one.
    fn check(&self, service: &str) -> serin_orchestrator::Result<()> {
        match self.service.get() {
            Some(fronted) if fronted != service => Err(Error::invalid(
                "service",
                service,
                format!(
                    "this proxied platform fronts service `{fronted}` (its proxy names backends \
                     by track alone); give `{service}` a proxy and a proxied platform of its own"
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Follows `service` from now on, if no call named one before: called once the platform
    /// has accepted a call about it, so a call that fails (a mistyped service) binds nothing.
    /// Of two first calls about different services at once, the later one is refused here.
    fn bind(&self, service: &str) -> serin_orchestrator::Result<()> {
        self.service.get_or_init(|| service.to_owned());
        self.check(service)
    }

    fn tracks(&self) -> MutexGuard<'_, BTreeMap<String, TrackState>> {
        self.tracks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until no other bring-up, scale or retire of `track` runs; it holds the track until
    /// the guard is dropped.
    async fn turn(&self, track: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let turn = Arc::clone(&self.tracks().entry(track.to_owned()).or_default().turn);
        turn.lock_owned().await
    }

    fn generation(&self, track: &str) -> u64 {
        self.tracks().get(track).map_or(0, |t| t.generation)
    }

    /// Counts the readiness read in `status` and gives the proxy the instances it lists (see
    /// [`TrackState::follow`]; but those a scale-down is draining), unless the track was
    /// brought up, retired or scaled down since `generation` was read, or is retired.
    fn offer(&self, status: &TrackStatus, generation: u64) {
        let mut tracks = self.tracks();
        let name = status.track.as_str();
        let fresh = tracks.get(name).map_or(generation == 0, |t| {
            t.generation == generation && !t.retired
        });
        if !fresh {
            return;
        }
        let t = tracks.entry(name.to_owned()).or_default();
        let listed: Vec<SocketAddr> = t
            .follow(status, self.failure_threshold)
            .into_iter()
            .filter(|a| !t.leaving.contains(a))
            .collect();
        self.router.set_endpoints(name, &listed);
    }

    /// Takes `leaving` out of the proxy's instances of `track` and withholds them until
    /// [`left`](Self::left); a status read from before is not given to the proxy.
    fn leave(&self, track: &str, leaving: &[SocketAddr]) {
        let mut tracks = self.tracks();
        let t = tracks.entry(track.to_owned()).or_default();
        t.generation += 1;
        t.leaving.extend(leaving.iter().copied());
        let keep: Vec<SocketAddr> = self
            .router
            .endpoints(track)
            .into_iter()
            .filter(|a| !leaving.contains(a))
            .collect();
        self.router.set_endpoints(track, &keep);
    }

    /// `leaving` are stopped (or stay, if the scale failed): stop withholding them. A status
    /// read from while they ran is not given to the proxy. The generation to offer with.
    fn left(&self, track: &str, leaving: &[SocketAddr]) -> u64 {
        let mut tracks = self.tracks();
        let t = tracks.entry(track.to_owned()).or_default();
        t.generation += 1;
        for a in leaving {
            t.leaving.remove(a);
        }
        t.generation
    }

    /// Takes `draining` out of the proxy's instances of `track` (withheld until
    /// [`left`](Self::left)) and waits until nothing is in flight on them, at most the drain
    /// timeout.
    async fn drain(&self, track: &str, draining: &[SocketAddr]) {
        self.leave(track, draining);
        if !self.router.wait_drained(draining, self.drain).await {
            tracing::warn!(
                track = %track,
                drain = ?self.drain,
                "requests still in flight on instances being removed; stopping them anyway"
            );
        }
    }

    /// Drains `chosen`, the instances a scale-down of `track` to `instances` stops as the
    /// platform's status showed them. The platform's choice is then read again: one that
    /// died or went unready meanwhile is the platform's choice by now, and is drained too; one
    /// no longer chosen goes back to the proxy at once, before that drain (a healthy instance
    /// the scale-down keeps must not wait out another's drain withheld, leaving the track with
    /// nothing in the proxy). A choice that keeps changing (an instance whose readiness comes
    /// and goes) is read again at most `passes` times (the track's instance count: enough for
    /// its instances to die one after another), then the last one drained stands. Answers
    /// that last choice, every instance of it drained and withheld: what to stop.
    async fn drain_leaving(
        &self,
        service: &str,
        track: &Track,
        instances: u32,
        mut chosen: Vec<InstanceStatus>,
        passes: usize,
    ) -> Vec<InstanceStatus> {
        let name = track.as_str();
        let mut withheld: Vec<SocketAddr> = Vec::new();
        for pass in 1..=passes.max(1) {
            let draining: Vec<SocketAddr> = addresses(&chosen)
                .into_iter()
                .filter(|a| !withheld.contains(a))
                .collect();
            if draining.is_empty() {
                break;
            }
            withheld.extend(&draining);
            self.drain(name, &draining).await;
            // Here `withheld` is `chosen`, all drained: what stands if nothing changes.
            if pass == passes {
                break;
            }
            let Ok(now) = self.platform.status(service, track).await else {
                break;
            };
            chosen = leaving_at(&now, instances);
            let still = addresses(&chosen);
            let back: Vec<SocketAddr> = withheld
                .iter()
                .filter(|a| !still.contains(a))
                .copied()
                .collect();
            if !back.is_empty() {
                let g = self.left(name, &back);
                self.offer(&now, g);
                withheld.retain(|a| still.contains(a));
            }
        }
        chosen
    }

    /// Has the platform stop `leaving`, drained and withheld from the proxy, by name (so that
    /// it stops those and no other), then stops withholding them and gives the proxy the
    /// status the platform answers.
    async fn stop(
        &self,
        service: &str,
        track: &Track,
        leaving: &[InstanceStatus],
    ) -> serin_orchestrator::Result<TrackStatus> {
        let ids: Vec<String> = leaving.iter().map(|i| i.id.clone()).collect();
        let stopped = self.platform.scale_down(service, track, &ids).await;
        let g = self.left(track.as_str(), &addresses(leaving));
        let status = stopped?;
        self.offer(&status, g);
        Ok(status)
    }

    /// One pass over every track of the service the proxy fronts: instances that became ready or
    /// died since the last read reach the proxy. A platform error leaves the proxy as it was
    /// (the next pass tries again). Before a call has named the service, it does nothing.
    pub async fn sync(&self) {
        let Some(service) = self.service.get() else {
            return;
        };
        let before: BTreeMap<String, u64> = self
            .tracks()
            .iter()
            .map(|(name, t)| (name.clone(), t.generation))
            .collect();
        if let Ok(tracks) = self.platform.list().await {
            for t in tracks.iter().filter(|t| t.service == *service) {
                let g = before.get(t.track.as_str()).copied().unwrap_or(0);
                self.offer(t, g);
            }
        }
    }
}

impl<P: Platform + 'static> ProxiedPlatform<P> {
    /// Runs [`sync`](ProxiedPlatform::sync) every `every` on the tokio runtime, until the
    /// platform is dropped (the task holds only a weak reference). A period under 1 ms is taken
    /// as 1 ms, so that passes never run back to back.
    pub fn spawn_sync(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        let every = every.max(crate::MIN_PERIOD);
        tokio::spawn(async move {
            while let Some(platform) = weak.upgrade() {
                platform.sync().await;
                drop(platform);
                tokio::time::sleep(every).await;
            }
        })
    }
}

/// The instances of `status` that scaling it down to `instances` stops.
fn leaving_at(status: &TrackStatus, instances: u32) -> Vec<InstanceStatus> {
    status
        .scale_down_choice(instances)
        .into_iter()
        .cloned()
        .collect()
}

/// The addresses of `instances` (those the proxy can route to).
fn addresses(instances: &[InstanceStatus]) -> Vec<SocketAddr> {
    instances.iter().filter_map(|i| i.address).collect()
}

#[async_trait]
impl<P: Platform> Platform for ProxiedPlatform<P> {
    fn name(&self) -> &str {
        self.platform.name()
    }

    async fn bring_up(&self, spec: &TrackSpec) -> serin_orchestrator::Result<TrackStatus> {
        self.check(spec.service())?;
        let _turn = self.turn(spec.track().as_str()).await;
        let g = {
            let mut tracks = self.tracks();
            let t = tracks.entry(spec.track().to_string()).or_default();
            t.generation += 1;
            t.generation
        };
        // The track's state changes only once the platform has brought it up: a bring-up it
        // refuses (the track runs already) must leave the running instances their readiness
        // counts, and a retired track withheld.
        let status = self.platform.bring_up(spec).await?;
        if let Some(t) = self.tracks().get_mut(spec.track().as_str()) {
            t.retired = false;
            // New instances: none is listed before a read finds it ready.
            t.readiness.clear();
        }
        self.bind(spec.service())?;
        self.offer(&status, g);
        Ok(status)
    }

    async fn status(
        &self,
        service: &str,
        track: &Track,
    ) -> serin_orchestrator::Result<TrackStatus> {
        self.check(service)?;
        let g = self.generation(track.as_str());
        let status = self.platform.status(service, track).await?;
        self.bind(service)?;
        self.offer(&status, g);
        Ok(status)
    }

    /// Scaling up gives the proxy the new instances once they are ready (at this or a later
    /// status read). Scaling down first takes the instances to be removed — dead, then unready,
    /// then the newest ready ones in the platform's status — out of the proxy, waits until
    /// nothing is in flight on them (at most the drain timeout), and only then has the platform
    /// stop them, by name ([`scale_down`](Platform::scale_down)).
    async fn scale(
        &self,
        service: &str,
        track: &Track,
        instances: u32,
    ) -> serin_orchestrator::Result<TrackStatus> {
        self.check(service)?;
        let name = track.as_str();
        let _turn = self.turn(name).await;
        let g = self.generation(name);
        // Bad counts are the platform's to refuse, before anything leaves the proxy.
        let (leaving, passes) = if (1..=TrackSpec::MAX_INSTANCES).contains(&instances) {
            let before = self.platform.status(service, track).await?;
            self.bind(service)?;
            (leaving_at(&before, instances), before.instances.len())
        } else {
            (Vec::new(), 0)
        };
        // Nothing the proxy routes to leaves: the platform scales as it chooses.
        if addresses(&leaving).is_empty() {
            let status = self.platform.scale(service, track, instances).await?;
            self.bind(service)?;
            self.offer(&status, g);
            return Ok(status);
        }
        let leaving = self
            .drain_leaving(service, track, instances, leaving, passes)
            .await;
        self.stop(service, track, &leaving).await
    }

    /// Takes the instances named out of the proxy, waits until nothing is in flight on them (at
    /// most the drain timeout), and only then has the platform stop them. Ids the platform
    /// would refuse (see [`check_scale_down`](serin_orchestrator::check_scale_down)) are
    /// refused before anything leaves the proxy.
    async fn scale_down(
        &self,
        service: &str,
        track: &Track,
        ids: &[String],
    ) -> serin_orchestrator::Result<TrackStatus> {
        self.check(service)?;
        let name = track.as_str();
        let _turn = self.turn(name).await;
        let before = self.platform.status(service, track).await?;
        self.bind(service)?;
        let running: Vec<&str> = before.instances.iter().map(|i| i.id.as_str()).collect();
        serin_orchestrator::check_scale_down(&before.key(), &running, ids)?;
        let leaving: Vec<InstanceStatus> = before
            .instances
            .iter()
            .filter(|i| ids.contains(&i.id))
            .cloned()
            .collect();
        self.drain(name, &addresses(&leaving)).await;
        self.stop(service, track, &leaving).await
    }

    /// Takes the track out of the proxy, waits until nothing is in flight on it or `drain` has
    /// passed, whichever comes first, then has the platform stop it at once. An idle track is
    /// retired without waiting out the drain; a request that outlasts the drain is left to the
    /// platform's stop (a process platform's SIGTERM lets a service finish it within its grace
    /// period), as the [`Platform`] contract says: the drain the deployment was configured with
    /// bounds the wait, whatever it is.
    async fn retire(
        &self,
        service: &str,
        track: &Track,
        drain: Duration,
    ) -> serin_orchestrator::Result<()> {
        self.check(service)?;
        let _turn = self.turn(track.as_str()).await;
        let endpoints = {
            let mut tracks = self.tracks();
            let t = tracks.entry(track.to_string()).or_default();
            t.generation += 1;
            t.retired = true;
            t.readiness.clear();
            let endpoints = self.router.endpoints(track.as_str());
            self.router.set_endpoints(track.as_str(), &[]);
            endpoints
        };
        // Every instance the platform still runs, listed or not: one taken out of the proxy
        // earlier (it went unready for a moment) may still be answering requests it had then,
        // and retiring stops it. As `scale` drains every instance it removes.
        let mut draining = endpoints;
        if let Ok(status) = self.platform.status(service, track).await {
            for addr in status.instances.iter().filter_map(|i| i.address) {
                if !draining.contains(&addr) {
                    draining.push(addr);
                }
            }
        }
        if !self.router.wait_drained(&draining, drain).await {
            tracing::warn!(
                track = %track,
                drain = ?drain,
                "requests still in flight on a track being retired; stopping it anyway"
            );
        }
        self.platform.retire(service, track, Duration::ZERO).await?;
        self.bind(service)
    }

    async fn list(&self) -> serin_orchestrator::Result<Vec<TrackStatus>> {
        self.platform.list().await
    }

    async fn lock(&self, service: &str, holder: &str) -> serin_orchestrator::Result<()> {
        self.platform.lock(service, holder).await
    }

    async fn unlock(&self, service: &str, holder: &str) -> serin_orchestrator::Result<()> {
        self.platform.unlock(service, holder).await
    }

    async fn lock_holder(&self, service: &str) -> serin_orchestrator::Result<Option<String>> {
        self.platform.lock_holder(service).await
    }
}

#[cfg(test)]
mod tests {
    use serin_orchestrator::{InstanceStatus, Result, TrackKey};
    use serin_signals::ProbeStatus;
    use serin_traffic::{TrafficRouter, TrafficSplit};

    use super::*;
    use crate::ProxyConfig;

    /// A platform whose tracks run already, each with one ready instance at a fixed address.
    #[derive(Default)]
    struct Running(Mutex<Vec<TrackStatus>>);

    impl Running {
        fn with(self, service: &str, track: Track, addr: SocketAddr) -> Self {
            self.run(service, track, addr);
            self
        }

        fn run(&self, service: &str, track: Track, addr: SocketAddr) {
            let instance =
                InstanceStatus::new(format!("{track}-0"), ProbeStatus::Pass, ProbeStatus::Pass)
                    .with_address(addr);
            self.0.lock().unwrap().push(TrackStatus::new(
                service,
                "1.0.0".parse().unwrap(),
                track,
                vec![instance],
            ));
        }

        fn find(&self, service: &str, track: &Track) -> Result<TrackStatus> {
            self.0
                .lock()
                .unwrap()
                .iter()
                .find(|t| t.service == service && t.track == *track)
                .cloned()
                .ok_or_else(|| Error::not_found("track", TrackKey::new(service, track)))
        }
    }

    #[async_trait]
    impl Platform for Running {
        fn name(&self) -> &str {
            "running"
        }
        async fn bring_up(&self, spec: &TrackSpec) -> Result<TrackStatus> {
            self.find(spec.service(), spec.track())
        }
        async fn status(&self, service: &str, track: &Track) -> Result<TrackStatus> {
            self.find(service, track)
        }
        async fn scale(&self, service: &str, track: &Track, _: u32) -> Result<TrackStatus> {
            self.find(service, track)
        }
        async fn retire(&self, service: &str, track: &Track, _: Duration) -> Result<()> {
            self.find(service, track).map(drop)
        }
        async fn list(&self) -> Result<Vec<TrackStatus>> {
            Ok(self.0.lock().unwrap().clone())
        }
    }

    /// A platform that runs one track at most once, each instance of it at `addr`, and takes
    /// `retiring` to retire one, during which the track still runs (as a platform that reports a
    /// track until its instances are gone does).
    struct SlowRetire {
        addr: SocketAddr,
        retiring: Duration,
        running: Running,
    }

    #[async_trait]
    impl Platform for SlowRetire {
        fn name(&self) -> &str {
            "slow-retire"
        }
        async fn bring_up(&self, spec: &TrackSpec) -> Result<TrackStatus> {
            if self.running.find(spec.service(), spec.track()).is_ok() {
                return Err(Error::AlreadyExists {
                    what: "track".into(),
                    name: spec.key().to_string(),
                    reason: "it runs".into(),
                });
            }
            self.running
                .run(spec.service(), spec.track().clone(), self.addr);
            self.running.find(spec.service(), spec.track())
        }
        async fn status(&self, service: &str, track: &Track) -> Result<TrackStatus> {
            self.running.find(service, track)
        }
        async fn scale(&self, service: &str, track: &Track, _: u32) -> Result<TrackStatus> {
            self.running.find(service, track)
        }
        async fn retire(&self, service: &str, track: &Track, _: Duration) -> Result<()> {
            self.running.find(service, track)?;
            tokio::time::sleep(self.retiring).await;
            self.running.0.lock().unwrap().retain(|t| t.track != *track);
            Ok(())
        }
        async fn list(&self) -> Result<Vec<TrackStatus>> {
            self.running.list().await
        }
    }

    /// A platform running what `running` holds that notes, at each scale, which instances the
    /// proxy routes to then; its first instance dies at the `dies_at_read`th status read.
    struct Watched {
        running: Running,
        router: ProxyRouter,
        routed_at_scale: Mutex<Vec<SocketAddr>>,
        reads: std::sync::atomic::AtomicUsize,
        dies_at_read: usize,
    }

    impl Watched {
        fn new(running: Running, router: &ProxyRouter, dies_at_read: usize) -> Self {
            Watched {
                running,
                router: router.clone(),
                routed_at_scale: Mutex::default(),
                reads: Default::default(),
                dies_at_read,
            }
        }
    }

    #[async_trait]
    impl Platform for Watched {
        fn name(&self) -> &str {
            "watched"
        }
        async fn bring_up(&self, spec: &TrackSpec) -> Result<TrackStatus> {
            self.running.bring_up(spec).await
        }
        async fn status(&self, service: &str, track: &Track) -> Result<TrackStatus> {
            let read = 1 + self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if read == self.dies_at_read {
                let first = &mut self.running.0.lock().unwrap()[0].instances[0];
                (first.readiness, first.liveness) = (ProbeStatus::Fail, ProbeStatus::Fail);
            }
            self.running.status(service, track).await
        }
        async fn scale(&self, service: &str, track: &Track, n: u32) -> Result<TrackStatus> {
            *self.routed_at_scale.lock().unwrap() = self.router.endpoints(track.as_str());
            self.running.scale(service, track, n).await
        }
        async fn retire(&self, service: &str, track: &Track, drain: Duration) -> Result<()> {
            self.running.retire(service, track, drain).await
        }
        async fn list(&self) -> Result<Vec<TrackStatus>> {
            self.running.list().await
        }
    }

    /// A platform running what `running` holds whose first instance goes unready (alive,
    /// readiness failing) at the `unready_at`th status read; it notes which instances the
    /// proxy routes to at each read, and, when it stops instances, which it stops and which
    /// the proxy routes to then. Its scale chooses on a status read of its own, as
    /// [`ProcessPlatform`] does.
    struct Flapping {
        running: Running,
        router: ProxyRouter,
        reads: std::sync::atomic::AtomicUsize,
        unready_at: usize,
        routed_at_read: Mutex<Vec<Vec<SocketAddr>>>,
        routed_at_stop: Mutex<Vec<SocketAddr>>,
        stopped: Mutex<Vec<SocketAddr>>,
    }

    impl Flapping {
        /// Two ready instances of `web`'s green track, and their addresses.
        fn new(router: &ProxyRouter, unready_at: usize) -> (Self, SocketAddr, SocketAddr) {
            let addr = |port| SocketAddr::from(([127, 0, 0, 1], port));
            let (a, b) = (addr(10_031), addr(10_032));
            let running = Running::default().with("web", Track::Green, a);
            running.0.lock().unwrap()[0].instances.push(
                InstanceStatus::new("green-1", ProbeStatus::Pass, ProbeStatus::Pass)
                    .with_address(b),
            );
            let platform = Flapping {
                running,
                router: router.clone(),
                reads: Default::default(),
                unready_at,
                routed_at_read: Mutex::default(),
                routed_at_stop: Mutex::default(),
                stopped: Mutex::default(),
            };
            (platform, a, b)
        }
    }

    #[async_trait]
    impl Platform for Flapping {
        fn name(&self) -> &str {
            "flapping"
        }
        async fn bring_up(&self, spec: &TrackSpec) -> Result<TrackStatus> {
            self.running.bring_up(spec).await
        }
        async fn status(&self, service: &str, track: &Track) -> Result<TrackStatus> {
            let read = 1 + self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let routed = self.router.endpoints(track.as_str());
            self.routed_at_read.lock().unwrap().push(routed);
            if read == self.unready_at {
                self.running.0.lock().unwrap()[0].instances[0].readiness = ProbeStatus::Fail;
            }
            self.running.status(service, track).await
        }
        async fn scale(&self, service: &str, track: &Track, n: u32) -> Result<TrackStatus> {
            *self.routed_at_stop.lock().unwrap() = self.router.endpoints(track.as_str());
            let now = self.status(service, track).await?;
            *self.stopped.lock().unwrap() = addresses(&leaving_at(&now, n));
            Ok(now)
        }
        async fn scale_down(
            &self,
            service: &str,
            track: &Track,
            ids: &[String],
        ) -> Result<TrackStatus> {
            *self.routed_at_stop.lock().unwrap() = self.router.endpoints(track.as_str());
            let now = self.status(service, track).await?;
            *self.stopped.lock().unwrap() = now
                .instances
                .iter()
                .filter(|i| ids.contains(&i.id))
                .filter_map(|i| i.address)
                .collect();
            Ok(now)
        }
        async fn retire(&self, service: &str, track: &Track, drain: Duration) -> Result<()> {
            self.running.retire(service, track, drain).await
        }
        async fn list(&self) -> Result<Vec<TrackStatus>> {
            self.running.list().await
        }
    }

    /// The drain's last read finds both instances ready and keeps the choice of the newest;
    /// the oldest goes unready for one read just as the instances are stopped. The platform
    /// stops the drained instance, out of the proxy, not the one now unready, which is still
    /// routed and undrained.
    #[tokio::test(start_paused = true)]
    async fn a_scale_down_stops_only_an_instance_out_of_the_proxy() {
        let router = ProxyRouter::bind(ProxyConfig::default()).await.unwrap();
        // Read 1 gives the proxy both; read 2 chooses green-1; read 3 (after the drain) agrees;
        // green-0 is unready from read 4, when the platform stops instances.
        let (platform, a, b) = Flapping::new(&router, 4);
        let proxied = ProxiedPlatform::new(platform, router.clone());
        proxied.status("web", &Track::Green).await.unwrap();
        proxied.scale("web", &Track::Green, 1).await.unwrap();
        let routed = proxied.inner().routed_at_stop.lock().unwrap().clone();
        let stopped = proxied.inner().stopped.lock().unwrap().clone();
        assert_eq!(routed, [a], "green-0 keeps its traffic while green-1 stops");
        assert_eq!(
            stopped,
            [b],
            "the platform stopped {stopped:?} while the proxy still routed to {routed:?}"
        );
        router.shutdown();
    }

    /// While a scale-down from two instances to one drains the newest, the oldest fails a
    /// readiness read and becomes the platform's choice: the newest, which the scale-down now
    /// keeps, is back in the proxy before the oldest leaves it, so the track is never without
    /// an instance in the proxy.
    #[tokio::test(start_paused = true)]
    async fn a_scale_down_never_leaves_the_track_without_its_healthy_instance() {
        let router = ProxyRouter::bind(ProxyConfig::default()).await.unwrap();
        // Read 1 gives the proxy both; read 2 chooses green-1; green-0 is unready at read 3.
        let (platform, a, b) = Flapping::new(&router, 3);
        let proxied = ProxiedPlatform::new(platform, router.clone());
        proxied.status("web", &Track::Green).await.unwrap();
        assert_eq!(router.endpoints("green"), [a, b]);
        proxied.scale("web", &Track::Green, 1).await.unwrap();
        // Read 1 came before the proxy had anything; every later one is mid-scale.
        let seen = proxied.inner().routed_at_read.lock().unwrap()[1..].to_vec();
        assert!(
            seen.iter().all(|routed| !routed.is_empty()),
            "the proxy routed to no instance of the track during the scale-down, while {b} \
             (healthy, kept) ran; routed at each read: {seen:?}"
        );
        router.shutdown();
    }

    /// A routed instance found unready stays in the proxy until as many reads in a row as the
    /// failure threshold found it so, and is back at the first read that finds it ready; one
    /// never found ready is not given to the proxy, and a dead one leaves at once.
    #[tokio::test(start_paused = true)]
    async fn a_routed_instance_leaves_the_proxy_after_failure_threshold_unready_reads() {
        let addr = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let (a, b) = (addr(10_041), addr(10_042));
        let running = Running::default().with("web", Track::Green, a);
        running.0.lock().unwrap()[0].instances.push(
            InstanceStatus::new("green-1", ProbeStatus::Fail, ProbeStatus::Pass).with_address(b),
        );
        let router = ProxyRouter::bind(ProxyConfig::default()).await.unwrap();
        let proxied = ProxiedPlatform::new(running, router.clone());
        let set = |at: usize, readiness, liveness| {
            let i = &mut proxied.inner().0.lock().unwrap()[0].instances[at];
            (i.readiness, i.liveness) = (readiness, liveness);
        };
        let read = || async {
            proxied.status("web", &Track::Green).await.unwrap();
            router.endpoints("green")
        };
        assert_eq!(read().await, [a], "green-1 was never ready");
        set(0, ProbeStatus::Fail, ProbeStatus::Pass);
        assert_eq!(read().await, [a], "one unready read");
        assert_eq!(read().await, [a], "two unready reads");
        set(0, ProbeStatus::Pass, ProbeStatus::Pass);
        assert_eq!(read().await, [a], "a ready read starts the count again");
        set(0, ProbeStatus::Fail, ProbeStatus::Pass);
        read().await;
        read().await;
        assert_eq!(read().await, [], "three unready reads in a row");
        set(0, ProbeStatus::Pass, ProbeStatus::Pass);
        set(1, ProbeStatus::Pass, ProbeStatus::Pass);
        assert_eq!(read().await, [a, b], "ready again at the first ready read");
        set(0, ProbeStatus::Fail, ProbeStatus::Fail);
        assert_eq!(read().await, [b], "a dead instance leaves at once");
        router.shutdown();
    }

    #[tokio::test(start_paused = true)]
    async fn the_failure_threshold_is_at_least_one() {
        let a = SocketAddr::from(([127, 0, 0, 1], 10_043));
        let router = ProxyRouter::bind(ProxyConfig::default()).await.unwrap();
        let running = || Running::default().with("web", Track::Green, a);
        let err = ProxiedPlatform::new(running(), router.clone())
            .with_failure_threshold(0)
            .err()
            .expect("a threshold of 0 is refused")
            .to_string();
        assert!(
            err.contains("proxiedPlatform.failureThreshold") && err.contains("`0`"),
            "{err}"
        );
        let proxied = ProxiedPlatform::new(running(), router.clone())
            .with_failure_threshold(1)
            .unwrap();
        proxied.status("web", &Track::Green).await.unwrap();
        proxied.inner().0.lock().unwrap()[0].instances[0].readiness = ProbeStatus::Fail;
        proxied.status("web", &Track::Green).await.unwrap();
        assert!(router.endpoints("green").is_empty(), "1 withholds at once");
        router.shutdown();
    }

    /// A bring-up the platform refuses (the track runs already) changes nothing: the running
    /// instance keeps its count of readiness reads, so one unready read after it does not take
    /// the track's only instance out of the proxy.
    #[tokio::test(start_paused = true)]
    async fn a_refused_bring_up_keeps_the_running_track_s_readiness_count() {
        let a = SocketAddr::from(([127, 0, 0, 1], 10_051));
        let router = ProxyRouter::bind(ProxyConfig::default()).await.unwrap();
        let platform = SlowRetire {
            addr: a,
            retiring: Duration::ZERO,
            running: Running::default(),
        };
        let proxied = ProxiedPlatform::new(platform, router.clone());
        let spec = TrackSpec::new("web", "1.0.0", Track::Green, 1).unwrap();
        proxied.bring_up(&spec).await.unwrap();
        assert_eq!(router.endpoints("green"), [a]);
        assert!(proxied.bring_up(&spec).await.is_err(), "the track runs");
        proxied.inner().running.0.lock().unwrap()[0].instances[0].readiness = ProbeStatus::Fail;
        proxied.status("web", &Track::Green).await.unwrap();
        assert_eq!(router.endpoints("green"), [a], "one unready read");
        router.shutdown();
    }

    /// A scale-down drains the instance the platform stops (an unready one before the newest
    /// ready one), so the ready instances keep their traffic while it runs.
    #[tokio::test(start_paused = true)]
    async fn a_scale_down_drains_the_instance_the_platform_stops_not_the_newest() {
        let addr = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let (a, b, c) = (addr(10_011), addr(10_012), addr(10_013));
        let running = Running::default().with("web", Track::Green, a);
        running.0.lock().unwrap()[0].instances.extend([
            InstanceStatus::new("green-1", ProbeStatus::Fail, ProbeStatus::Pass).with_address(b),
            InstanceStatus::new("green-2", ProbeStatus::Pass, ProbeStatus::Pass).with_address(c),
        ]);
        let router = ProxyRouter::bind(ProxyConfig::default()).await.unwrap();
        let proxied = ProxiedPlatform::new(Watched::new(running, &router, 0), router.clone());
        proxied.status("web", &Track::Green).await.unwrap();
        assert_eq!(router.endpoints("green"), [a, c]);
        proxied.scale("web", &Track::Green, 2).await.unwrap();
        assert_eq!(
            *proxied.inner().routed_at_scale.lock().unwrap(),
            [a, c],
            "a ready instance left the proxy while an unready one was stopped"
        );
        router.shutdown();
    }

    /// An instance that dies while a scale-down drains the newest one is the platform's choice
    /// by the time it scales: it is out of the proxy then, and the newest one is back in.
    #[tokio::test(start_paused = true)]
    async fn an_instance_dying_during_a_scale_down_s_drain_is_drained_too() {
        let addr = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let (a, b) = (addr(10_021), addr(10_022));
        let running = Running::default().with("web", Track::Green, a);
        running.0.lock().unwrap()[0].instances.push(
            InstanceStatus::new("green-1", ProbeStatus::Pass, ProbeStatus::Pass).with_address(b),
        );
        let router = ProxyRouter::bind(ProxyConfig::default()).await.unwrap();
        // Read 1 gives the proxy both; read 2 picks green-1; green-0 dies before read 3.
        let proxied = ProxiedPlatform::new(Watched::new(running, &router, 3), router.clone());
        proxied.status("web", &Track::Green).await.unwrap();
        assert_eq!(router.endpoints("green"), [a, b]);
        proxied.scale("web", &Track::Green, 1).await.unwrap();
        assert_eq!(
            *proxied.inner().routed_at_scale.lock().unwrap(),
            [b],
            "the dead instance the platform stops must be out of the proxy, the one it keeps in"
        );
        router.shutdown();
    }

    /// A bring-up that comes while a retire of the same track still runs waits for it: it is
    /// not refused (the track still ran) in a way that gives the retiring instances back to the
    /// proxy at the next status read.
    #[tokio::test(start_paused = true)]
    async fn a_bring_up_during_a_retire_waits_and_the_retiring_instances_stay_out() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 10_003));
        let platform = SlowRetire {
            addr,
            retiring: Duration::from_secs(10),
            running: Running::default(),
        };
        let router = ProxyRouter::bind(ProxyConfig::default()).await.unwrap();
        let proxied = Arc::new(ProxiedPlatform::new(platform, router.clone()));
        let spec = TrackSpec::new("web", "1.0.0", Track::Green, 1).unwrap();
        proxied.bring_up(&spec).await.unwrap();
        assert_eq!(router.endpoints("green"), [addr]);

        let retire = tokio::spawn({
            let proxied = Arc::clone(&proxied);
            async move { proxied.retire("web", &Track::Green, Duration::ZERO).await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(router.endpoints("green").is_empty(), "out while it retires");
        let bring_up = tokio::spawn({
            let proxied = Arc::clone(&proxied);
            async move { proxied.bring_up(&spec).await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        // The track still runs, retiring: a status read must not give it back to the proxy.
        proxied.status("web", &Track::Green).await.unwrap();
        proxied.sync().await;
        assert!(
            router.endpoints("green").is_empty(),
            "a retiring instance came back into the proxy"
        );

        retire.await.unwrap().unwrap();
        let status = bring_up.await.unwrap().unwrap();
        assert_eq!(status.ready_addresses(), [addr]);
        assert_eq!(router.endpoints("green"), [addr]);
        router.shutdown();
    }

    /// An instance that answers each request it reads `after` it read it.
    async fn answering_after(after: Duration) -> SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !seen.ends_with(b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    tokio::time::sleep(after).await;
                    let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    let _ = stream.write_all(ok).await;
                    let _ = stream.read(&mut buf).await;
                });
            }
        });
        addr
    }

    /// A proxy sending all of `web`'s traffic to `green` of `platform`, and the platform it fronts.
    async fn fronting_green(platform: Running) -> (ProxyRouter, ProxiedPlatform<Running>) {
        let router = ProxyRouter::bind(ProxyConfig::default().with_workers(0))
            .await
            .unwrap();
        let proxied = ProxiedPlatform::new(platform, router.clone());
        proxied.status("web", &Track::Green).await.unwrap();
        router
            .apply(&TrafficSplit::all_to("green", &[]).unwrap())
            .await
            .unwrap();
        (router, proxied)
    }

    /// A client whose request through `router` is in flight on the instance at `slow`.
    async fn request_in_flight(router: &ProxyRouter, slow: SocketAddr) -> tokio::net::TcpStream {
        use tokio::io::AsyncWriteExt;
        let mut client = tokio::net::TcpStream::connect(router.local_addr())
            .await
            .unwrap();
        client
            .write_all(b"GET / HTTP/1.1\r\nhost: web\r\n\r\n")
            .await
            .unwrap();
        while router.in_flight(slow) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        client
    }

    #[tokio::test]
    async fn a_retire_waits_for_an_instance_taken_out_of_the_proxy_before() {
        use tokio::io::AsyncReadExt;
        let listed = SocketAddr::from(([127, 0, 0, 1], 10_004));
        let slow = answering_after(Duration::from_millis(400)).await;
        let platform = Running::default().with("web", Track::Green, listed);
        platform.0.lock().unwrap()[0].instances.push(
            InstanceStatus::new("green-1", ProbeStatus::Pass, ProbeStatus::Pass).with_address(slow),
        );
        let (router, proxied) = fronting_green(platform).await;
        // A request on the slow instance, which then leaves the proxy (unready for a moment).
        router.set_endpoints("green", &[slow]);
        let mut client = request_in_flight(&router, slow).await;
        router.set_endpoints("green", &[listed]);
        proxied
            .retire("web", &Track::Green, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(
            router.in_flight(slow),
            0,
            "retired with a request in flight"
        );
        let mut answer = [0u8; 12];
        client.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"HTTP/1.1 200");
        router.shutdown();
    }

    /// The drain bounds the wait for in-flight requests, as the [`Platform`] contract says: a
    /// request that outlasts it is left to the platform's stop, and the retire does not wait
    /// for it.
    #[tokio::test]
    async fn a_retire_waits_for_in_flight_requests_at_most_its_drain() {
        let slow = answering_after(Duration::from_secs(3)).await;
        let platform = Running::default().with("web", Track::Green, slow);
        let (router, proxied) = fronting_green(platform).await;
        // Held open, so that the request stays in flight.
        let _client = request_in_flight(&router, slow).await;
        proxied
            .retire("web", &Track::Green, Duration::from_millis(100))
            .await
            .unwrap();
        assert_eq!(
            router.in_flight(slow),
            1,
            "a retire with a drain of 100ms waited for a request of 3s"
        );
        router.shutdown();
    }

    #[tokio::test]
    async fn the_proxy_follows_one_service_and_refuses_another() {
        let web = SocketAddr::from(([127, 0, 0, 1], 10_001));
        let api = SocketAddr::from(([127, 0, 0, 1], 10_002));
        let platform =
            Running::default()
                .with("web", Track::Green, web)
                .with("api", Track::Green, api);
        let router = ProxyRouter::bind(ProxyConfig::default()).await.unwrap();
        let proxied = ProxiedPlatform::new(platform, router.clone());

        // No service named yet: a sync cannot tell whose `green` the proxy fronts.
        proxied.sync().await;
        assert!(router.endpoints("green").is_empty());
        // A call the platform refuses names no service.
        assert!(proxied.status("wbe", &Track::Green).await.is_err());
        proxied.status("web", &Track::Green).await.unwrap();
        assert_eq!(router.endpoints("green"), [web]);

        let refused = |e: Error| {
            let msg = e.to_string();
            assert!(
                msg.contains("`api`") && msg.contains("`web`") && msg.contains("service"),
                "{msg}"
            );
        };
        let spec = TrackSpec::new("api", "1.0.0", Track::Green, 1).unwrap();
        refused(proxied.bring_up(&spec).await.unwrap_err());
        refused(proxied.status("api", &Track::Green).await.unwrap_err());
        refused(proxied.scale("api", &Track::Green, 1).await.unwrap_err());
        refused(
            proxied
                .retire("api", &Track::Green, Duration::ZERO)
                .await
                .unwrap_err(),
        );
        assert_eq!(router.endpoints("green"), [web]);

        // A sync passes over the other service's tracks.
        proxied.sync().await;
        assert_eq!(router.endpoints("green"), [web]);
        router.shutdown();
    }

    /// The deployment lock is the platform's, for every service: taken, read and freed through
    /// the wrapper as on the platform itself.
    #[tokio::test]
    async fn the_lock_and_its_holder_are_the_platform_s() {
        let router = ProxyRouter::bind(ProxyConfig::default()).await.unwrap();
        let proxied = ProxiedPlatform::new(serin_orchestrator::InMemoryPlatform::new(), router);
        for service in ["web", "api"] {
            proxied.lock(service, "d-1").await.unwrap();
            assert!(proxied.lock(service, "d-2").await.is_err());
            assert_eq!(
                proxied.lock_holder(service).await.unwrap().as_deref(),
                Some("d-1")
            );
            proxied.unlock(service, "d-1").await.unwrap();
            assert_eq!(proxied.lock_holder(service).await.unwrap(), None);
        }
        proxied.router.shutdown();
    }
}
