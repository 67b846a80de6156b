//! The conformance suite for [`Platform`] implementations (feature `testkit`).
//!
//! A platform's tests call [`check_all`] with the platform, a template [`TrackSpec`] it can run
//! (for a process platform, one with a command that serves readiness) and how long an instance
//! may take to become ready; or [`check_all_with`] and a [`PlatformFixture`] that can also make
//! an instance die (so that the suite sees it reported dead), keep a request in flight on a
//! track (so that the suite sees a retire let it finish), or that says the platform keeps no
//! deployment lock of its own or ends a drain once nothing is in flight. The `check_*`
//! functions run one check each. Every check uses its
//! own track names (`tk-up`, `tk-scale`, ...) derived from the template, retires what it
//! started, and panics with a message naming the platform and the broken promise.
//!
//! The suite waits with `tokio::time`: it runs under paused time (a simulated or in-memory
//! platform then takes no real time) as well as in real time (a process platform).
//!
//! ```
//! # #[cfg(feature = "testkit")] {
//! use std::time::Duration;
//! use serin_orchestrator::testkit::{self, Template};
//! use serin_orchestrator::{InMemoryPlatform, TrackSpec};
//! use serin_signals::Track;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
//! let template = TrackSpec::new("web", "1.0.0", Track::Stable, 1).unwrap();
//! // `check_all(&platform, &template, Duration::from_secs(5))` runs every check; the in-memory
//! // platform records its drains instead of waiting them, and says so with a fixture.
//! let fixture = Template::new(template, Duration::from_secs(5)).recording_drains();
//! let platform = InMemoryPlatform::new().with_ready_after(2);
//! testkit::check_all_with(&platform, &fixture).await;
//! # });
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use serin_signals::{ProbeStatus, Track};

use crate::error::{Error, Result};
use crate::platform::spec::TrackSpec;
use crate::platform::status::TrackStatus;
use crate::platform::{Platform, wait_ready};

const POLL: Duration = Duration::from_millis(20);

/// The drain [`check_retire`] asks for and measures.
const DRAIN: Duration = Duration::from_millis(200);

/// A request a fixture keeps in flight on a track ([`PlatformFixture::hold_request`]): it
/// resolves once the request has ended, to `true` if it was answered, `false` if it was cut off.
pub type HeldRequest = Pin<Box<dyn Future<Output = bool> + Send>>;

/// What the suite needs to know about a platform besides the platform itself.
#[async_trait]
pub trait PlatformFixture: Send + Sync {
    /// A spec the platform can run; each check runs it as tracks of its own.
    fn template(&self) -> TrackSpec;

    /// How long an instance may take to become ready.
    fn ready_timeout(&self) -> Duration;

    /// Whether the platform keeps a deployment lock of its own. The default, `true`, is what a
    /// platform several orchestrators share must do ([`Platform::lock`]); only a platform that
    /// one orchestrator alone ever uses may answer `false`, and [`check_lock`] is then skipped
    /// for a check that locking stays harmless.
    fn keeps_own_lock(&self) -> bool {
        true
    }

    /// Whether [`retire`](Platform::retire) waits the whole of its drain on a track with nothing
    /// in flight. The default, `true`, is what a platform that cannot see its in-flight
    /// requests must do. A platform that sees them ends the drain once none is left, as the
    /// contract allows, and answers `false`: one that keeps a proxy in step with it, or a
    /// bookkeeping platform that runs nothing, so has nothing in flight
    /// ([`InMemoryPlatform`](crate::InMemoryPlatform), which records the drain so that a
    /// deployment's timing is the orchestrator's alone). [`check_retire`]'s measure of the
    /// drain is then skipped; [`check_drain_lets_requests_finish`] checks, with a fixture that
    /// can [`hold_request`](PlatformFixture::hold_request), that it still waits for what is in
    /// flight.
    fn waits_drain(&self) -> bool {
        true
    }

    /// Sends the track a request that its instance answers only after `lasting`, the way the
    /// track's traffic reaches it (through the router a proxied platform keeps in step), and
    /// answers once the request is in flight, with what resolves when it ends. `Ok(None)`, the
    /// default, when the fixture cannot; [`check_drain_lets_requests_finish`] is then skipped.
    async fn hold_request(
        &self,
        service: &str,
        track: &Track,
        lasting: Duration,
    ) -> Result<Option<HeldRequest>> {
        let _ = (service, track, lasting);
        Ok(None)
    }

    /// Makes `instance` of the track die as a crash would (the process exits, the container
    /// fails), without telling the platform. `Ok(false)`, the default, when the fixture cannot;
    /// [`check_dead_reported`] is then skipped.
    async fn kill(&self, service: &str, track: &Track, instance: &str) -> Result<bool> {
        let _ = (service, track, instance);
        Ok(false)
    }
}

/// The plain [`PlatformFixture`]: a template and a readiness timeout, a lock of the platform's
/// own expected, no way to make an instance die.
#[derive(Debug, Clone)]
pub struct Template {
    spec: TrackSpec,
    ready_timeout: Duration,
    own_lock: bool,
    waits_drain: bool,
}

impl Template {
    /// The fixture of `spec`, with `ready_timeout` bounding each wait for readiness.
    pub fn new(spec: TrackSpec, ready_timeout: Duration) -> Self {
        Template {
            spec,
            ready_timeout,
            own_lock: true,
            waits_drain: true,
        }
    }

    /// Says the platform keeps no deployment lock of its own (see
    /// [`PlatformFixture::keeps_own_lock`]).
    pub fn without_own_lock(mut self) -> Self {
        self.own_lock = false;
        self
    }

    /// Says the platform does not wait the whole drain on a track with nothing in flight: it
    /// records drains instead of waiting them, or ends them once nothing is in flight (see
    /// [`PlatformFixture::waits_drain`]).
    pub fn recording_drains(mut self) -> Self {
        self.waits_drain = false;
        self
    }
}

#[async_trait]
impl PlatformFixture for Template {
    fn template(&self) -> TrackSpec {
        self.spec.clone()
    }

    fn ready_timeout(&self) -> Duration {
        self.ready_timeout
    }

    fn keeps_own_lock(&self) -> bool {
        self.own_lock
    }

    fn waits_drain(&self) -> bool {
        self.waits_drain
    }
}

/// Runs every check of the suite on `platform`; `ready_timeout` bounds each wait for readiness.
/// The platform must wait its drains and keep a deployment lock of its own; no instance is made
/// to die (see [`check_all_with`] for all three).
pub async fn check_all(platform: &dyn Platform, template: &TrackSpec, ready_timeout: Duration) {
    check_all_with(platform, &Template::new(template.clone(), ready_timeout)).await;
}

/// Runs every check of the suite on `platform`, with what `fixture` says and can do.
pub async fn check_all_with(platform: &dyn Platform, fixture: &dyn PlatformFixture) {
    let (template, ready_timeout) = (fixture.template(), fixture.ready_timeout());
    check_bring_up_and_list(platform, &template, ready_timeout).await;
    check_list_ordered(platform, &template).await;
    check_duplicate_refused(platform, &template).await;
    check_unknown_track_not_found(platform, &template).await;
    check_scale(platform, &template, ready_timeout).await;
    check_scale_down(platform, &template, ready_timeout).await;
    retire_check(platform, &template, ready_timeout, fixture.waits_drain()).await;
    check_drain_lets_requests_finish(platform, fixture).await;
    check_dead_reported(platform, fixture).await;
    if fixture.keeps_own_lock() {
        check_lock(platform, &template).await;
    } else {
        check_lock_harmless(platform, &template).await;
    }
}

/// The deployment lock goes to one holder at a time, again to the same holder, and is free
/// once its holder unlocks it; unlocking someone else's lock changes nothing. Each service has
/// a lock of its own: another service's is taken and freed meanwhile, leaving this one held.
/// A lock held by another is [`Error::Conflict`] whose message names the holder (the trait
/// leaves the field to the platform: the check reads the whole message). A platform that
/// grants the lock to two holders at once fails: one with no lock of its own runs
/// [`check_all_with`] and a fixture that says so. [`lock_holder`](Platform::lock_holder) reads
/// the holder back after each step: none while free, the holder once taken, unchanged by a
/// refused `lock` or a non-holder's `unlock`.
pub async fn check_lock(platform: &dyn Platform, template: &TrackSpec) {
    let name = platform.name();
    let service = format!("{}-tk-lock", template.service());
    expect_holder(platform, &service, None, "before any lock").await;
    if let Err(e) = platform.lock(&service, "tk-a").await {
        panic!("{name}: a free lock was refused: {e}");
    }
    if let Err(e) = platform.lock(&service, "tk-a").await {
        panic!("{name}: the holder was refused its own lock: {e}");
    }
    match platform.lock(&service, "tk-b").await {
        Ok(()) => panic!(
            "{name}: the lock of {service} went to tk-b while tk-a held it; a platform keeps \
             a service's deployment lock for one holder at a time (a platform that keeps no \
             lock of its own says so with `PlatformFixture::keeps_own_lock`)"
        ),
        Err(e @ Error::Conflict { .. }) => {
            let message = e.to_string();
            assert!(
                message.contains("tk-a"),
                "{name}: the refusal should name the holder tk-a: {message}"
            );
            expect_holder(platform, &service, Some("tk-a"), "after tk-b was refused").await;
            if let Err(e) = platform.unlock(&service, "tk-b").await {
                panic!("{name}: unlocking another's lock should do nothing, got {e}");
            }
            expect_holder(platform, &service, Some("tk-a"), "after tk-b's unlock").await;
            if platform.lock(&service, "tk-b").await.is_ok() {
                panic!("{name}: unlocking by a non-holder freed the lock");
            }
            if let Err(e) = platform.unlock(&service, "tk-a").await {
                panic!("{name}: unlock by the holder failed: {e}");
            }
            expect_holder(platform, &service, None, "after tk-a freed it").await;
            if let Err(e) = platform.lock(&service, "tk-b").await {
                panic!("{name}: a freed lock was refused: {e}");
            }
            expect_holder(platform, &service, Some("tk-b"), "after tk-b took it").await;
        }
        Err(e) => panic!("{name}: lock held by another should be a conflict, got {e}"),
    }
    if let Err(e) = platform.unlock(&service, "tk-b").await {
        panic!("{name}: unlock failed: {e}");
    }
    expect_holder(platform, &service, None, "after tk-b freed it").await;
    // The lock is the service's own: a deployment of another service goes ahead meanwhile.
    if let Err(e) = platform.lock(&service, "tk-a").await {
        panic!("{name}: a free lock was refused: {e}");
    }
    let other = format!("{}-tk-lock-other", template.service());
    if let Err(e) = platform.lock(&other, "tk-b").await {
        panic!(
            "{name}: tk-b was refused the lock of {other} while tk-a held that of {service}; \
             a deployment of one service must not hold back another's: {e}"
        );
    }
    expect_holder(platform, &other, Some("tk-b"), "after tk-b took it").await;
    if let Err(e) = platform.unlock(&other, "tk-b").await {
        panic!("{name}: unlock of {other} by its holder failed: {e}");
    }
    expect_holder(platform, &other, None, "after tk-b freed it").await;
    expect_holder(
        platform,
        &service,
        Some("tk-a"),
        "after another service's lock came and went",
    )
    .await;
    if let Err(e) = platform.unlock(&service, "tk-a").await {
        panic!("{name}: unlock failed: {e}");
    }
}

/// A platform without a lock of its own grants every lock and unlock, stays harmless, and
/// reports no holder: its `lock` would grant anyone.
async fn check_lock_harmless(platform: &dyn Platform, template: &TrackSpec) {
    let name = platform.name();
    let service = format!("{}-tk-lock", template.service());
    if let Err(e) = platform.lock(&service, "tk-a").await {
        panic!("{name}: lock by tk-a failed: {e}");
    }
    expect_holder(platform, &service, None, "with no lock of its own").await;
    if let Err(e) = platform.unlock(&service, "tk-a").await {
        panic!("{name}: unlock by tk-a failed: {e}");
    }
}

/// Asserts that [`lock_holder`](Platform::lock_holder) of `service` answers `want`, `when`
/// (a step of the check, for the message).
async fn expect_holder(platform: &dyn Platform, service: &str, want: Option<&str>, when: &str) {
    let name = platform.name();
    match platform.lock_holder(service).await {
        Ok(holder) => assert_eq!(
            holder.as_deref(),
            want,
            "{name}: the holder of the lock of {service} read {when}"
        ),
        Err(e) => panic!("{name}: reading the holder of the lock of {service} {when} failed: {e}"),
    }
}

fn spec(template: &TrackSpec, track: &str, instances: u32) -> TrackSpec {
    let track = match Track::named(track) {
        Ok(t) => t,
        Err(e) => panic!("testkit: track name {track}: {e}"),
    };
    match template
        .clone()
        .as_track(track)
        .and_then(|s| s.with_instances(instances))
    {
        Ok(s) => s,
        Err(e) => panic!("testkit: template with {instances} instances: {e}"),
    }
}

async fn up(platform: &dyn Platform, spec: &TrackSpec) -> TrackStatus {
    match platform.bring_up(spec).await {
        Ok(s) => s,
        Err(e) => panic!("{}: bring_up {} failed: {e}", platform.name(), spec.key()),
    }
}

async fn ready(platform: &dyn Platform, spec: &TrackSpec, timeout: Duration) -> TrackStatus {
    match wait_ready(platform, spec.service(), spec.track(), POLL, timeout).await {
        Ok(s) => s,
        Err(e) => panic!(
            "{}: {} never became ready: {e}",
            platform.name(),
            spec.key()
        ),
    }
}

async fn retire(platform: &dyn Platform, spec: &TrackSpec) {
    if let Err(e) = platform
        .retire(spec.service(), spec.track(), Duration::ZERO)
        .await
    {
        panic!("{}: retire {} failed: {e}", platform.name(), spec.key());
    }
}

/// A track brought up reports its instances with unique ids and its version, becomes ready, and
/// is listed.
pub async fn check_bring_up_and_list(
    platform: &dyn Platform,
    template: &TrackSpec,
    ready_timeout: Duration,
) {
    let spec = spec(template, "tk-up", 2);
    let started = up(platform, &spec).await;
    assert!(
        started.service == spec.service()
            && &started.track == spec.track()
            && &started.version == spec.version()
            && started.instances.len() == 2,
        "{}: bring_up must report the spec's track with its two instances, got {started:?}",
        platform.name()
    );
    let status = ready(platform, &spec, ready_timeout).await;
    let mut ids: Vec<&str> = status.instances.iter().map(|i| i.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        2,
        "{}: instance ids must be unique",
        platform.name()
    );
    let listed = match platform.list().await {
        Ok(l) => l,
        Err(e) => panic!("{}: list failed: {e}", platform.name()),
    };
    assert!(
        listed
            .iter()
            .any(|t| t.key() == spec.key() && t.instances.len() == 2),
        "{}: list must show {}, got {listed:?}",
        platform.name(),
        spec.key()
    );
    retire(platform, &spec).await;
}

/// Bringing up a track that already runs is [`Error::AlreadyExists`], and the running one is
/// left as it was.
pub async fn check_duplicate_refused(platform: &dyn Platform, template: &TrackSpec) {
    let spec = spec(template, "tk-dup", 1);
    up(platform, &spec).await;
    let twice = spec
        .clone()
        .with_instances(3)
        .unwrap_or_else(|_| spec.clone());
    let err = platform.bring_up(&twice).await;
    assert!(
        matches!(err, Err(Error::AlreadyExists { .. })),
        "{}: a second bring_up of {} must be AlreadyExists, got {err:?}",
        platform.name(),
        spec.key()
    );
    match platform.status(spec.service(), spec.track()).await {
        Ok(s) => assert_eq!(
            s.instances.len(),
            1,
            "{}: a refused bring_up must change nothing",
            platform.name()
        ),
        Err(e) => panic!("{}: status of {} failed: {e}", platform.name(), spec.key()),
    }
    retire(platform, &spec).await;
}

/// Every call about a track that does not run is [`Error::NotFound`]; an invalid instance count
/// is [`Error::InvalidField`].
pub async fn check_unknown_track_not_found(platform: &dyn Platform, template: &TrackSpec) {
    let spec = spec(template, "tk-missing", 1);
    let (service, track) = (spec.service(), spec.track());
    let name = platform.name();
    let status = platform.status(service, track).await;
    assert!(
        matches!(status, Err(Error::NotFound { .. })),
        "{name}: status: {status:?}"
    );
    let scale = platform.scale(service, track, 2).await;
    assert!(
        matches!(scale, Err(Error::NotFound { .. })),
        "{name}: scale: {scale:?}"
    );
    let gone = platform.retire(service, track, Duration::ZERO).await;
    assert!(
        matches!(gone, Err(Error::NotFound { .. })),
        "{name}: retire: {gone:?}"
    );
    up(platform, &spec).await;
    for bad in [0, TrackSpec::MAX_INSTANCES + 1] {
        let r = platform.scale(service, track, bad).await;
        assert!(
            matches!(r, Err(Error::InvalidField { .. })),
            "{name}: scale to {bad} must be InvalidField, got {r:?}"
        );
    }
    retire(platform, &spec).await;
}

/// Scaling up adds ready instances with new ids, never one an instance had before (metrics,
/// health and logs are kept by instance id); scaling down keeps the oldest.
pub async fn check_scale(platform: &dyn Platform, template: &TrackSpec, ready_timeout: Duration) {
    let spec = spec(template, "tk-scale", 1);
    up(platform, &spec).await;
    let first = ready(platform, &spec, ready_timeout).await;
    let first_id = first.instances.first().map(|i| i.id.clone());
    let name = platform.name();
    match platform.scale(spec.service(), spec.track(), 3).await {
        Ok(s) => assert_eq!(s.instances.len(), 3, "{name}: scale up to 3"),
        Err(e) => panic!("{name}: scale up failed: {e}"),
    }
    let three = ready(platform, &spec, ready_timeout).await;
    assert_eq!(three.instances.len(), 3, "{name}: three ready instances");
    let seen: Vec<String> = three.instances.iter().map(|i| i.id.clone()).collect();
    match platform.scale(spec.service(), spec.track(), 1).await {
        Ok(s) => {
            assert_eq!(s.instances.len(), 1, "{name}: scale down to 1");
            assert_eq!(
                s.instances.first().map(|i| i.id.clone()),
                first_id,
                "{name}: scaling down must keep the oldest instance"
            );
        }
        Err(e) => panic!("{name}: scale down failed: {e}"),
    }
    match platform.scale(spec.service(), spec.track(), 2).await {
        Ok(s) => {
            let added: Vec<&str> = s
                .instances
                .iter()
                .map(|i| i.id.as_str())
                .filter(|id| Some(*id) != first_id.as_deref())
                .collect();
            assert!(
                added.len() == 1 && !seen.iter().any(|id| id == added[0]),
                "{name}: scaling up again must add one instance with a new id, not one of \
                 {seen:?}; got {added:?}"
            );
        }
        Err(e) => panic!("{name}: scale up again failed: {e}"),
    }
    let two = ready(platform, &spec, ready_timeout).await;
    assert_eq!(two.instances.len(), 2, "{name}: two ready instances");
    retire(platform, &spec).await;
}

/// A scale-down of named instances stops those and keeps the others under their ids; one that
/// names an instance the track does not run, or every instance, is refused and changes
/// nothing. The instance named is the one a [`scale`](Platform::scale) would stop, which a
/// platform that scales by a count alone (the trait's default) stops as well: what a caller
/// draining the platform's own choice relies on.
pub async fn check_scale_down(
    platform: &dyn Platform,
    template: &TrackSpec,
    ready_timeout: Duration,
) {
    let name = platform.name();
    let spec = spec(template, "tk-scale-down", 3);
    up(platform, &spec).await;
    let three = ready(platform, &spec, ready_timeout).await;
    let ids =
        |s: &TrackStatus| -> Vec<String> { s.instances.iter().map(|i| i.id.clone()).collect() };
    let stopping: Vec<String> = three
        .scale_down_choice(2)
        .into_iter()
        .map(|i| i.id.clone())
        .collect();
    let kept: Vec<String> = ids(&three)
        .into_iter()
        .filter(|id| !stopping.contains(id))
        .collect();
    match platform
        .scale_down(spec.service(), spec.track(), &stopping)
        .await
    {
        Ok(s) => assert_eq!(
            ids(&s),
            kept,
            "{name}: a scale-down of {stopping:?} must stop those alone"
        ),
        Err(e) => panic!("{name}: scale-down of {stopping:?} failed: {e}"),
    }
    let unknown = vec![format!("{}-nope", spec.track())];
    let every = kept.clone();
    for (refused, what) in [
        (unknown, "an instance it does not run"),
        (every, "every instance"),
    ] {
        let result = platform
            .scale_down(spec.service(), spec.track(), &refused)
            .await;
        assert!(
            result.is_err(),
            "{name}: a scale-down of {what} ({refused:?}) must be refused; got {result:?}"
        );
        match platform.status(spec.service(), spec.track()).await {
            Ok(s) => assert_eq!(
                ids(&s),
                kept,
                "{name}: a refused scale-down of {what} must change nothing"
            ),
            Err(e) => panic!("{name}: status of {} failed: {e}", spec.key()),
        }
    }
    retire(platform, &spec).await;
}

/// Retiring waits its drain before it returns (in-flight requests finish: the router has
/// already stopped sending new ones), the track still running meanwhile; then the track is gone
/// from the listing and from status, and can be brought up again at once. The drain is
/// measured on `tokio::time`'s clock, for a platform that cannot see its in-flight requests
/// (one that ends the drain once none is left runs [`check_all_with`] and a fixture that
/// says so, and [`check_drain_lets_requests_finish`]).
pub async fn check_retire(platform: &dyn Platform, template: &TrackSpec, ready_timeout: Duration) {
    retire_check(platform, template, ready_timeout, true).await;
}

/// [`check_retire`], measuring the drain only if the platform `waits_drain`.
async fn retire_check(
    platform: &dyn Platform,
    template: &TrackSpec,
    ready_timeout: Duration,
    waits_drain: bool,
) {
    let spec = spec(template, "tk-retire", 1);
    up(platform, &spec).await;
    ready(platform, &spec, ready_timeout).await;
    let name = platform.name();
    if waits_drain {
        assert_drained(platform, &spec).await;
    } else if let Err(e) = platform.retire(spec.service(), spec.track(), DRAIN).await {
        panic!("{name}: retire failed: {e}");
    }
    let status = platform.status(spec.service(), spec.track()).await;
    assert!(
        matches!(status, Err(Error::NotFound { .. })),
        "{name}: a retired track must be NotFound, got {status:?}"
    );
    match platform.list().await {
        Ok(l) => assert!(
            l.iter().all(|t| t.key() != spec.key()),
            "{name}: a retired track must not be listed: {l:?}"
        ),
        Err(e) => panic!("{name}: list failed: {e}"),
    }
    // Gone means gone for the next deployment too: blue-green alternates two tracks, so every
    // other deployment brings up the track retired before it. A platform still tearing the
    // track down waits for that in `retire` rather than refuse the next `bring_up`.
    if let Err(e) = platform.bring_up(&spec).await {
        panic!(
            "{name}: {} could not be brought up again right after it was retired: {e}",
            spec.key()
        );
    }
    retire(platform, &spec).await;
}

/// Retires `spec`'s track with [`DRAIN`] and checks that the call took the drain, the track
/// still running meanwhile.
async fn assert_drained(platform: &dyn Platform, spec: &TrackSpec) {
    let name = platform.name();
    let started = tokio::time::Instant::now();
    let retiring = platform.retire(spec.service(), spec.track(), DRAIN);
    let during = async {
        tokio::time::sleep(DRAIN / 4).await;
        platform.status(spec.service(), spec.track()).await
    };
    let (retired, during) = tokio::join!(retiring, during);
    if let Err(e) = retired {
        panic!("{name}: retire failed: {e}");
    }
    let took = started.elapsed();
    assert!(
        took >= DRAIN,
        "{name}: retire with a drain of {DRAIN:?} returned after {took:?}; it must wait the \
         drain before it stops the instances (a platform that ends the drain once nothing is \
         in flight says so with `PlatformFixture::waits_drain`)"
    );
    match during {
        Ok(s) => assert!(
            s.instances.iter().all(|i| i.liveness != ProbeStatus::Fail),
            "{name}: {} must keep running during its drain, got {s:?}",
            spec.key()
        ),
        Err(e) => panic!(
            "{name}: {} must still run during its drain, but status failed: {e}",
            spec.key()
        ),
    }
}

/// A request in flight when its track is retired, answered well within the drain, is answered,
/// and the retire returns only after it: the drain lets in-flight requests finish, whether the
/// platform waits the whole drain or until nothing is in flight, before any instance stops.
/// Needs a fixture that can [`hold_request`](PlatformFixture::hold_request); skipped otherwise.
pub async fn check_drain_lets_requests_finish(
    platform: &dyn Platform,
    fixture: &dyn PlatformFixture,
) {
    let name = platform.name();
    let spec = spec(&fixture.template(), "tk-drain", 1);
    up(platform, &spec).await;
    ready(platform, &spec, fixture.ready_timeout()).await;
    let lasting = DRAIN / 2;
    let mut held = match fixture
        .hold_request(spec.service(), spec.track(), lasting)
        .await
    {
        Ok(Some(held)) => held,
        Ok(None) => {
            retire(platform, &spec).await;
            return;
        }
        Err(e) => panic!("fixture: holding a request on {} failed: {e}", spec.key()),
    };
    let retiring = platform.retire(spec.service(), spec.track(), DRAIN);
    tokio::pin!(retiring);
    let mut answered = None;
    let retired = loop {
        tokio::select! {
            biased;
            a = &mut held, if answered.is_none() => answered = Some(a),
            r = &mut retiring => break r,
        }
    };
    if let Err(e) = retired {
        panic!("{name}: retire of {} failed: {e}", spec.key());
    }
    // Its answer may have come in as the retire ended: one more look, without waiting.
    if answered.is_none() {
        answered = tokio::time::timeout(Duration::ZERO, &mut held).await.ok();
    }
    match answered {
        Some(true) => {}
        Some(false) => panic!(
            "{name}: a request of {lasting:?} in flight on {} was cut off by its retire with \
             a drain of {DRAIN:?}; the drain must let it finish before the instances stop",
            spec.key()
        ),
        None => panic!(
            "{name}: the retire of {} with a drain of {DRAIN:?} returned before a request of \
             {lasting:?} in flight on it was answered",
            spec.key()
        ),
    }
}

/// [`list`](Platform::list) orders tracks by service, then track, whatever order they were
/// brought up in.
pub async fn check_list_ordered(platform: &dyn Platform, template: &TrackSpec) {
    let name = platform.name();
    let later = spec(template, "tk-list-b", 1);
    let earlier = spec(template, "tk-list-a", 1);
    up(platform, &later).await;
    up(platform, &earlier).await;
    let listed = match platform.list().await {
        Ok(l) => l,
        Err(e) => panic!("{name}: list failed: {e}"),
    };
    let keys: Vec<_> = listed.iter().map(TrackStatus::key).collect();
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "{name}: list must be ordered by service then track, each once, got {}",
        keys.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    for s in [&later, &earlier] {
        assert!(
            keys.contains(&s.key()),
            "{name}: list must show {}",
            s.key()
        );
        retire(platform, s).await;
    }
}

/// An instance that dies is reported dead (liveness `Fail`) under its own id, and stays so: the
/// platform never restarts it or replaces it silently (the orchestrator decides what to do
/// about it). A scale-down then stops it rather than a live instance, though it is the oldest.
/// Needs a fixture that can kill an instance; skipped otherwise.
pub async fn check_dead_reported(platform: &dyn Platform, fixture: &dyn PlatformFixture) {
    let name = platform.name();
    let timeout = fixture.ready_timeout();
    let spec = spec(&fixture.template(), "tk-dead", 2);
    up(platform, &spec).await;
    let before = ready(platform, &spec, timeout).await;
    let Some(victim) = before.instances.first().map(|i| i.id.clone()) else {
        panic!("{name}: {} has no instance", spec.key());
    };
    match fixture.kill(spec.service(), spec.track(), &victim).await {
        Ok(true) => {}
        Ok(false) => {
            retire(platform, &spec).await;
            return;
        }
        Err(e) => panic!("fixture: killing {}/{victim} failed: {e}", spec.key()),
    }
    let ids: Vec<&str> = before.instances.iter().map(|i| i.id.as_str()).collect();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut seen_dead = 0;
    // Once reported dead, it must stay dead over several more checks.
    while seen_dead < 5 {
        let status = match platform.status(spec.service(), spec.track()).await {
            Ok(s) => s,
            Err(e) => panic!("{name}: status of {} failed: {e}", spec.key()),
        };
        let now: Vec<&str> = status.instances.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(
            now,
            ids,
            "{name}: after {victim} died, {} must keep the same instances (none restarted or \
             replaced silently)",
            spec.key()
        );
        let dead = status
            .instances
            .iter()
            .any(|i| i.id == victim && i.liveness == ProbeStatus::Fail && !i.is_ready());
        if dead {
            seen_dead += 1;
        } else {
            assert!(
                seen_dead == 0,
                "{name}: {victim} was reported dead, then alive again: a platform never \
                 restarts a dead instance silently; got {status:?}"
            );
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name}: {victim} was killed but is still not reported dead after {timeout:?}: \
                 got {status:?}"
            );
        }
        tokio::time::sleep(POLL).await;
    }
    match platform.scale(spec.service(), spec.track(), 1).await {
        Ok(s) => {
            let kept: Vec<&str> = s.instances.iter().map(|i| i.id.as_str()).collect();
            assert!(
                kept.len() == 1 && !kept.contains(&victim.as_str()),
                "{name}: scaling {} down to 1 must stop the dead {victim} before a live \
                 instance; kept {kept:?}",
                spec.key()
            );
        }
        Err(e) => panic!("{name}: scale down of {} failed: {e}", spec.key()),
    }
    retire(platform, &spec).await;
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::InMemoryPlatform;

    /// How a [`Served`] platform retires a track.
    #[derive(Clone, Copy)]
    enum Retires {
        /// Stops the instances at once, whatever is in flight.
        AtOnce,
        /// Waits until nothing is in flight or the drain has passed.
        UntilIdle,
        /// Waits the whole drain.
        WholeDrain,
    }

    /// An in-memory platform whose instances serve the requests its fixture holds: one in
    /// flight when the instances stop is cut off.
    struct Served {
        inner: InMemoryPlatform,
        retires: Retires,
        in_flight: Arc<AtomicUsize>,
        stopped: tokio::sync::watch::Sender<bool>,
    }

    impl Served {
        fn new(retires: Retires) -> Self {
            Served {
                inner: InMemoryPlatform::new(),
                retires,
                in_flight: Arc::default(),
                stopped: tokio::sync::watch::Sender::new(false),
            }
        }
    }

    #[async_trait]
    impl Platform for Served {
        fn name(&self) -> &str {
            "served"
        }
        async fn bring_up(&self, spec: &TrackSpec) -> Result<TrackStatus> {
            self.stopped.send_replace(false);
            self.inner.bring_up(spec).await
        }
        async fn status(&self, service: &str, track: &Track) -> Result<TrackStatus> {
            self.inner.status(service, track).await
        }
        async fn scale(&self, service: &str, track: &Track, n: u32) -> Result<TrackStatus> {
            self.inner.scale(service, track, n).await
        }
        async fn retire(&self, service: &str, track: &Track, drain: Duration) -> Result<()> {
            match self.retires {
                Retires::AtOnce => {}
                Retires::UntilIdle => {
                    let until = tokio::time::Instant::now() + drain;
                    while self.in_flight.load(Ordering::SeqCst) > 0
                        && tokio::time::Instant::now() < until
                    {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                Retires::WholeDrain => tokio::time::sleep(drain).await,
            }
            self.stopped.send_replace(true);
            self.inner.retire(service, track, drain).await
        }
        async fn list(&self) -> Result<Vec<TrackStatus>> {
            self.inner.list().await
        }
    }

    #[async_trait]
    impl PlatformFixture for Served {
        fn template(&self) -> TrackSpec {
            TrackSpec::new("web", "1.0.0", Track::Stable, 1).unwrap()
        }
        fn ready_timeout(&self) -> Duration {
            Duration::from_secs(5)
        }
        async fn hold_request(
            &self,
            _service: &str,
            _track: &Track,
            lasting: Duration,
        ) -> Result<Option<HeldRequest>> {
            let in_flight = Arc::clone(&self.in_flight);
            let mut stopped = self.stopped.subscribe();
            in_flight.fetch_add(1, Ordering::SeqCst);
            Ok(Some(Box::pin(async move {
                let answered = tokio::select! {
                    () = tokio::time::sleep(lasting) => true,
                    _ = stopped.wait_for(|s| *s) => false,
                };
                in_flight.fetch_sub(1, Ordering::SeqCst);
                answered
            })))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_retire_that_waits_until_idle_or_the_whole_drain_lets_requests_finish() {
        for retires in [Retires::UntilIdle, Retires::WholeDrain] {
            let platform = Served::new(retires);
            check_drain_lets_requests_finish(&platform, &platform).await;
        }
    }

    #[tokio::test(start_paused = true)]
    #[should_panic(expected = "was cut off by its retire")]
    async fn a_retire_that_stops_instances_with_requests_in_flight_fails() {
        let platform = Served::new(Retires::AtOnce);
        check_drain_lets_requests_finish(&platform, &platform).await;
    }
}
