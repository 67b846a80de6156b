//! The platform, health source and router calls a deployment makes before it moves anything
//! (its pre-checks), and those starting, resuming, abandoning or ending one makes, are bounded
//! by `maxDeploymentDuration` under paused time: one that never answers is dropped, and a
//! deployment's pre-check cut short fails it with nothing changed, at its deadline or at once
//! on an operator's abort. A deployment lock taken by a call that did not answer in time is
//! not left held.

mod support;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serin_orchestrator::{
    Error, InMemoryPlatform, Orchestrator, Platform, Result, ServiceBackends, TrackSpec,
    TrackStatus,
};
use serin_signals::Track;
use serin_traffic::{Capabilities, InMemoryRouter, TrafficRouter, TrafficSplit};
use support::{
    SERVICE, SilentHealth, Stall, World, abort_to_end, bounded, canary_within, crash_at,
    failed_reason, took,
};

const MAX: Duration = Duration::from_secs(20 * 60);

/// The world's platform, but the calls named in `hang` never answer (`list`, `lock`,
/// `unlock`, or `status` and a track): an API server that accepts the connection and says
/// nothing. Its `lock` takes the lock before it hangs.
struct Hanging {
    inner: Arc<InMemoryPlatform>,
    hang: Mutex<Vec<String>>,
    stall: Stall,
}

impl Hanging {
    fn hang(&self, call: &str) {
        self.hang.lock().unwrap().push(call.to_owned());
    }

    async fn maybe_hang(&self, call: &str) {
        if self.hang.lock().unwrap().iter().any(|c| c == call) {
            self.stall.now::<()>().await;
        }
    }
}

#[async_trait]
impl Platform for Hanging {
    fn name(&self) -> &str {
        "hanging"
    }
    async fn bring_up(&self, spec: &TrackSpec) -> Result<TrackStatus> {
        self.inner.bring_up(spec).await
    }
    async fn status(&self, service: &str, track: &Track) -> Result<TrackStatus> {
        self.maybe_hang(&format!("status {track}")).await;
        self.inner.status(service, track).await
    }
    async fn scale(&self, service: &str, track: &Track, instances: u32) -> Result<TrackStatus> {
        self.inner.scale(service, track, instances).await
    }
    async fn retire(&self, service: &str, track: &Track, drain: Duration) -> Result<()> {
        self.inner.retire(service, track, drain).await
    }
    async fn list(&self) -> Result<Vec<TrackStatus>> {
        self.maybe_hang("list").await;
        self.inner.list().await
    }
    async fn lock(&self, service: &str, holder: &str) -> Result<()> {
        self.inner.lock(service, holder).await?;
        self.maybe_hang("lock").await;
        Ok(())
    }
    async fn unlock(&self, service: &str, holder: &str) -> Result<()> {
        self.maybe_hang("unlock").await;
        self.inner.unlock(service, holder).await
    }
}

/// The world's router, but reading its split never answers.
struct SilentRouter {
    inner: Arc<InMemoryRouter>,
    stall: Stall,
}

#[async_trait]
impl TrafficRouter for SilentRouter {
    fn name(&self) -> &str {
        "silent-router"
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn apply(&self, split: &TrafficSplit) -> serin_traffic::Result<()> {
        self.inner.apply(split).await
    }
    async fn current(&self) -> serin_traffic::Result<Option<TrafficSplit>> {
        self.stall.now::<()>().await;
        self.inner.current().await
    }
}

struct Setup {
    world: Arc<World>,
    platform: Arc<Hanging>,
    health: Arc<SilentHealth>,
    o: Orchestrator,
}

/// An orchestrator on the world's backends but the [`Hanging`] platform and the
/// [`SilentHealth`] source, with 1.0.0 serving when `installed`.
async fn setup(installed: bool) -> Setup {
    let world = Arc::new(World::new());
    if installed {
        world.install("1.0.0").await;
    }
    let platform = Arc::new(Hanging {
        inner: world.platform.clone(),
        hang: Mutex::new(Vec::new()),
        stall: Stall::default(),
    });
    let health = Arc::new(SilentHealth::new(world.health.clone()));
    let mut s = Setup {
        o: world.orchestrator(),
        world,
        platform,
        health,
    };
    s.o = s.orchestrator();
    s
}

impl Setup {
    /// A fresh orchestrator (a process started afresh) on the setup's backends.
    fn orchestrator(&self) -> Orchestrator {
        let w = &self.world;
        let backends =
            ServiceBackends::new(w.router.clone(), w.source.clone(), self.health.clone());
        Orchestrator::builder(self.platform.clone(), w.journal.clone())
            .service(SERVICE, backends)
            .clock(w.clock)
            .build()
    }
}

/// Asserts that nothing moved: 1.0.0 serves all traffic on the stable track, no canary runs.
async fn unchanged(world: &World) {
    world.assert_live(Track::Stable, "1.0.0").await;
    assert!(!world.has_track(&Track::Canary).await);
}

#[tokio::test(start_paused = true)]
async fn a_pre_check_status_that_never_answers_fails_the_deployment_at_its_deadline() {
    let s = setup(true).await;
    let h =
        s.o.start(&canary_within(MAX), SERVICE)
            .await
            .expect("start");
    s.platform.hang("status stable");
    let report = bounded("the deployment", h.wait()).await.expect("report");
    println!("{report}");
    let reason = failed_reason(&report);
    assert!(
        reason.contains("pre-check")
            && reason.contains("hanging")
            && reason.contains("maxDeploymentDuration (20m)")
            && reason.contains("nothing was changed"),
        "{reason}"
    );
    assert_eq!(took(&report), MAX, "given up at the deadline");
    assert_eq!(s.platform.stall.dropped(), 1);
    unchanged(&s.world).await;
}

#[tokio::test(start_paused = true)]
async fn an_abort_while_the_pre_check_status_never_answers_ends_it_at_once() {
    let s = setup(true).await;
    let h =
        s.o.start(&canary_within(MAX), SERVICE)
            .await
            .expect("start");
    s.platform.hang("status stable");
    s.platform.stall.until_hung().await;
    let (asked, report) = abort_to_end(&s.o, h).await;
    assert_eq!(report.last_at, asked, "the abort is served at once");
    let reason = failed_reason(&report);
    assert!(reason.contains("aborted by an operator"), "{reason}");
    assert_eq!(s.platform.stall.dropped(), 1);
    unchanged(&s.world).await;
}

#[tokio::test(start_paused = true)]
async fn pre_check_health_signals_that_never_answer_fail_the_deployment_at_its_deadline() {
    let s = setup(true).await;
    let h =
        s.o.start(&canary_within(MAX), SERVICE)
            .await
            .expect("start");
    s.health.hang.store(true, Ordering::SeqCst);
    let report = bounded("the deployment", h.wait()).await.expect("report");
    println!("{report}");
    let reason = failed_reason(&report);
    assert!(
        reason.contains("pre-check")
            && reason.contains("silent-health")
            && reason.contains("maxDeploymentDuration (20m)")
            && reason.contains("nothing was changed"),
        "{reason}"
    );
    assert_eq!(took(&report), MAX, "given up at the deadline");
    assert_eq!(s.health.stall.dropped(), 1);
    unchanged(&s.world).await;
}

#[tokio::test(start_paused = true)]
async fn an_abort_while_pre_check_health_signals_never_answer_ends_it_at_once() {
    let s = setup(true).await;
    let h =
        s.o.start(&canary_within(MAX), SERVICE)
            .await
            .expect("start");
    s.health.hang.store(true, Ordering::SeqCst);
    s.health.stall.until_hung().await;
    let (asked, report) = abort_to_end(&s.o, h).await;
    assert_eq!(report.last_at, asked, "the abort is served at once");
    let reason = failed_reason(&report);
    assert!(reason.contains("aborted by an operator"), "{reason}");
    assert_eq!(s.health.stall.dropped(), 1);
    unchanged(&s.world).await;
}

/// Starts the canary of 1.1.0 on `o`, over `world`'s journal, which it must refuse with
/// nothing journalled; answers the error, and how long the refusal took.
async fn refused_start(world: &World, o: &Orchestrator) -> (Error, Duration) {
    let records = world.journal.len();
    let began = tokio::time::Instant::now();
    let started = bounded("the start", o.start(&canary_within(MAX), SERVICE)).await;
    let e = started.expect_err("a start whose call never answered");
    assert_eq!(world.journal.len(), records, "nothing journalled");
    (e, began.elapsed())
}

/// Asserts that `e` is the timeout of `call`, the bound named.
fn timed_out(e: &Error, who: &str, call: &str) {
    let Error::Timeout { what, reason, .. } = e else {
        panic!("expected a timeout, got {e}");
    };
    assert!(
        what.contains(who) && what.contains(call) && reason.contains("maxDeploymentDuration (20m)"),
        "{e}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_listing_that_never_answers_refuses_the_start_at_the_bound() {
    let s = setup(false).await;
    s.platform.hang("list");
    let (e, after) = refused_start(&s.world, &s.o).await;
    timed_out(&e, "platform `hanging`", "listing");
    assert_eq!(after, MAX);
}

#[tokio::test(start_paused = true)]
async fn a_router_that_never_answers_refuses_the_start_at_the_bound() {
    let world = World::new();
    world.install("1.0.0").await;
    let router = Arc::new(SilentRouter {
        inner: world.router.clone(),
        stall: Stall::default(),
    });
    let o = world.orchestrator_routing(router.clone());
    let (e, after) = refused_start(&world, &o).await;
    timed_out(&e, "router `silent-router`", "split");
    assert_eq!(after, MAX);
    assert_eq!(router.stall.dropped(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_lock_that_never_answers_refuses_the_start_and_is_not_left_held() {
    let s = setup(true).await;
    s.platform.hang("lock");
    let (e, after) = refused_start(&s.world, &s.o).await;
    timed_out(&e, "platform `hanging`", "lock");
    assert_eq!(after, MAX);
    s.world
        .platform
        .lock(SERVICE, "another-deployment")
        .await
        .expect("the lock taken by the call that timed out is freed");
}

#[tokio::test(start_paused = true)]
async fn a_status_of_the_new_track_that_never_answers_refuses_the_start_and_frees_the_lock() {
    let s = setup(true).await;
    s.platform.hang("status canary");
    let (e, after) = refused_start(&s.world, &s.o).await;
    timed_out(&e, "platform `hanging`", "status of web/canary");
    assert_eq!(after, MAX);
    s.world
        .platform
        .lock(SERVICE, "another-deployment")
        .await
        .expect("the lock is freed");
}

#[tokio::test(start_paused = true)]
async fn a_lock_that_never_answers_refuses_a_resume_and_an_abandon_and_keeps_the_lock() {
    let s = setup(true).await;
    let last = crash_at(&s.world, s.o.clone(), canary_within(MAX), 4).await;
    let id = last.deployment.clone();
    s.platform.hang("lock");
    let o = s.orchestrator();
    let began = tokio::time::Instant::now();
    let e = bounded("the resume", o.resume(&id))
        .await
        .expect_err("a resume whose lock never answered");
    timed_out(&e, "platform `hanging`", "lock");
    assert_eq!(began.elapsed(), MAX);
    let e = bounded("the abandon", o.abandon(&id, "gone"))
        .await
        .expect_err("an abandon whose lock never answered");
    timed_out(&e, "platform `hanging`", "lock");
    // The lock a deployment cut short keeps until it is resumed stays its own.
    let held = s.world.platform.lock(SERVICE, "another-deployment").await;
    assert!(matches!(held, Err(Error::Conflict { .. })), "{held:?}");
}

#[tokio::test(start_paused = true)]
async fn an_unlock_that_never_answers_does_not_hold_up_the_end_of_a_deployment() {
    let s = setup(true).await;
    let h =
        s.o.start(&canary_within(MAX), SERVICE)
            .await
            .expect("start");
    s.platform.hang("unlock");
    let report = bounded("the deployment", h.wait()).await.expect("report");
    assert!(report.outcome.is_some(), "{report}");
    assert_eq!(s.platform.stall.dropped(), 1);
}
