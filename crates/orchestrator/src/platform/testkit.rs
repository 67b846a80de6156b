//! The conformance suite for [`Platform`] implementations (feature `testkit`).
//!
//! Every platform's tests call [`check_all`] (or the `check_*` functions one by one) with a
//! template [`TrackSpec`] the platform can run (for a process platform, one with a command that
//! serves readiness); each check uses its own track name (`tk-up`, `tk-scale`, ...) derived from
//! the template, retires what it started, and panics with a message on failure.
//!
//! ```
//! # #[cfg(feature = "testkit")] {
//! use std::time::Duration;
//! use serin_orchestrator::{InMemoryPlatform, TrackSpec};
//! use serin_signals::Track;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let template = TrackSpec::new("web", "1.0.0", Track::Stable, 1).unwrap();
//! let platform = InMemoryPlatform::new().with_ready_after(2);
//! serin_orchestrator::testkit::check_all(&platform, &template, Duration::from_secs(5)).await;
//! # });
//! # }
//! ```

use std::time::Duration;

use serin_signals::Track;

use crate::error::Error;
use crate::platform::spec::TrackSpec;
use crate::platform::status::TrackStatus;
use crate::platform::{Platform, wait_ready};

const POLL: Duration = Duration::from_millis(20);

/// Runs every check of the suite on `platform`; `ready_timeout` bounds each wait for readiness.
pub async fn check_all(platform: &dyn Platform, template: &TrackSpec, ready_timeout: Duration) {
    check_bring_up_and_list(platform, template, ready_timeout).await;
    check_duplicate_refused(platform, template).await;
    check_unknown_track_not_found(platform, template).await;
    check_scale(platform, template, ready_timeout).await;
    check_retire(platform, template, ready_timeout).await;
    check_lock(platform, template).await;
}

/// The deployment lock goes to one holder at a time, again to the same holder, and is free
/// once its holder unlocks it; unlocking someone else's lock changes nothing. (A platform
/// without a lock of its own grants every request: then only the first part is checked.)
pub async fn check_lock(platform: &dyn Platform, template: &TrackSpec) {
    let name = platform.name();
    let service = format!("{}-tk-lock", template.service());
    if let Err(e) = platform.lock(&service, "tk-a").await {
        panic!("{name}: a free lock was refused: {e}");
    }
    if let Err(e) = platform.lock(&service, "tk-a").await {
        panic!("{name}: the holder was refused its own lock: {e}");
    }
    match platform.lock(&service, "tk-b").await {
        Ok(()) => {
            // No lock of its own: nothing more to check, but it must stay harmless.
            if let Err(e) = platform.unlock(&service, "tk-b").await {
                panic!("{name}: unlock failed: {e}");
            }
        }
        Err(Error::Conflict { reason, .. }) => {
            assert!(
                reason.contains("tk-a"),
                "{name}: the refusal should name the holder: {reason}"
            );
            if let Err(e) = platform.unlock(&service, "tk-b").await {
                panic!("{name}: unlocking another's lock should do nothing, got {e}");
            }
            if platform.lock(&service, "tk-b").await.is_ok() {
                panic!("{name}: unlocking by a non-holder freed the lock");
            }
            if let Err(e) = platform.unlock(&service, "tk-a").await {
                panic!("{name}: unlock by the holder failed: {e}");
            }
            if let Err(e) = platform.lock(&service, "tk-b").await {
                panic!("{name}: a freed lock was refused: {e}");
            }
        }
        Err(e) => panic!("{name}: lock held by another should be a conflict, got {e}"),
    }
    if let Err(e) = platform.unlock(&service, "tk-b").await {
        panic!("{name}: unlock failed: {e}");
    }
}

fn spec(template: &TrackSpec, track: &str, instances: u32) -> TrackSpec {
    let track = match Track::named(track) {
        Ok(t) => t,
        Err(e) => panic!("testkit: track name {track}: {e}"),
    };
    match template.clone().as_track(track).with_instances(instances) {
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

/// A retired track is gone from the listing and from status.
pub async fn check_retire(platform: &dyn Platform, template: &TrackSpec, ready_timeout: Duration) {
    let spec = spec(template, "tk-retire", 1);
    up(platform, &spec).await;
    ready(platform, &spec, ready_timeout).await;
    if let Err(e) = platform
        .retire(spec.service(), spec.track(), Duration::from_millis(10))
        .await
    {
        panic!("{}: retire failed: {e}", platform.name());
    }
    let name = platform.name();
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
}
