//! The platform, health source and router calls a deployment makes before it moves anything
//! (its pre-checks), and those starting, resuming, abandoning or ending one makes, are bounded
//! by `maxDeploymentDuration` under paused time: one that never answers is dropped, and a
//! deployment's pre-check cut short fails it with nothing changed, at its deadline or at once
//! on an operator's abort. A deployment lock taken by a call that did not answer in time is
//! not left held, and a start refused after its first record is journalled as failed; freeing
//! that lock is given a short bound of its own, and a lock it does not free is named in the
//! refused start's end.
//!
//! So are the calls that carry a deployment's decisions out (bringing a track up, scaling it,
//! applying a split, retiring a track): by the deadline while it runs, by
//! `maxDeploymentDuration` per call (with a retire's drain) in a rollback or past it, each
//! timeout taking the error path a failed call takes. A resume whose router does not say
//! which split it holds applies the journalled one again, and an abort ends a watch's read
//! that never answers at once, before a trigger can act on the data the read left missing.
//! A deployment that ends failed after a dropped apply says the router's split is unknown,
//! even when a later apply (its rollback's) is refused. A journal that does not answer within
//! `maxDeploymentDuration` refuses a start, or stops a run as its failures do; outside a run
//! (a resume, an abandon, a status, a report, a listing, a rollback's check), within the
//! builder's journal timeout.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use serin_orchestrator::{
    DeploymentHandle, Effect, Error, EventKind, InMemoryJournal, InMemoryPlatform, Journal,
    Orchestrator, OrchestratorBuilder, Outcome, Platform, Record, Report, Result, ServiceBackends,
    Stage, TrackSpec, TrackStatus,
};
use serin_signals::Track;
use serin_traffic::{Capabilities, InMemoryRouter, TrafficRouter, TrafficSplit};
use support::{
    SERVICE, SilentHealth, SilentMetrics, Stall, World, abort_to_end, bounded, canary_within,
    crash_at, failed_reason, resume_to_end, rollback_reason, run_to_end, took, until_stage,
};

const MAX: Duration = Duration::from_secs(20 * 60);

/// The world's platform, but the calls cued on its stall never answer (`bring_up`, `scale`,
/// `list`, `lock`, `unlock`, or `status` or `retire` and a track): an API server that accepts
/// the connection and says nothing. Its `lock` takes the lock before it hangs.
struct Hanging {
    inner: Arc<InMemoryPlatform>,
    stall: Stall,
}

#[async_trait]
impl Platform for Hanging {
    fn name(&self) -> &str {
        "hanging"
    }
    async fn bring_up(&self, spec: &TrackSpec) -> Result<TrackStatus> {
        self.stall.if_cued("bring_up").await;
        self.inner.bring_up(spec).await
    }
    async fn status(&self, service: &str, track: &Track) -> Result<TrackStatus> {
        self.stall.if_cued(&format!("status {track}")).await;
        self.inner.status(service, track).await
    }
    async fn scale(&self, service: &str, track: &Track, instances: u32) -> Result<TrackStatus> {
        self.stall.if_cued("scale").await;
        self.inner.scale(service, track, instances).await
    }
    async fn retire(&self, service: &str, track: &Track, drain: Duration) -> Result<()> {
        self.stall.if_cued(&format!("retire {track}")).await;
        self.inner.retire(service, track, drain).await
    }
    async fn list(&self) -> Result<Vec<TrackStatus>> {
        self.stall.if_cued("list").await;
        self.inner.list().await
    }
    async fn lock(&self, service: &str, holder: &str) -> Result<()> {
        self.inner.lock(service, holder).await?;
        self.stall.if_cued("lock").await;
        Ok(())
    }
    async fn unlock(&self, service: &str, holder: &str) -> Result<()> {
        self.stall.if_cued("unlock").await;
        self.inner.unlock(service, holder).await
    }
    async fn lock_holder(&self, service: &str) -> Result<Option<String>> {
        self.stall.if_cued("lock_holder").await;
        self.inner.lock_holder(service).await
    }
}

/// The world's router, but reading its split (`current`) or applying one (`apply`) never
/// answers once cued on its stall.
struct SilentRouter {
    inner: Arc<InMemoryRouter>,
    stall: Stall,
}

impl SilentRouter {
    fn new(inner: Arc<InMemoryRouter>) -> Self {
        SilentRouter {
            inner,
            stall: Stall::default(),
        }
    }
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
        self.stall.if_cued("apply").await;
        self.inner.apply(split).await
    }
    async fn current(&self) -> serin_traffic::Result<Option<TrafficSplit>> {
        self.stall.if_cued("current").await;
        self.inner.current().await
    }
}

/// The world's journal, but listing its deployments (`deployments`) or reading a deployment's
/// records (`records`) never answers once cued on its stall.
struct SilentJournal {
    inner: Arc<InMemoryJournal>,
    stall: Stall,
}

#[async_trait]
impl Journal for SilentJournal {
    fn name(&self) -> &str {
        "silent-journal"
    }
    async fn append(&self, record: &Record) -> Result<()> {
        self.inner.append(record).await
    }
    async fn records(&self, deployment: &str) -> Result<Vec<Record>> {
        self.stall.if_cued("records").await;
        self.inner.records(deployment).await
    }
    async fn deployments(&self) -> Result<Vec<String>> {
        self.stall.if_cued("deployments").await;
        self.inner.deployments().await
    }
}

struct Setup {
    world: Arc<World>,
    platform: Arc<Hanging>,
    router: Arc<SilentRouter>,
    metrics: Arc<SilentMetrics>,
    health: Arc<SilentHealth>,
    o: Orchestrator,
}

/// An orchestrator on the world's backends but the [`Hanging`] platform, the
/// [`SilentRouter`] and the silent metrics and health sources, with 1.0.0 serving when
/// `installed`.
async fn setup(installed: bool) -> Setup {
    let world = Arc::new(World::new());
    if installed {
        world.install("1.0.0").await;
    }
    let platform = Arc::new(Hanging {
        inner: world.platform.clone(),
        stall: Stall::default(),
    });
    let health = Arc::new(SilentHealth::new(world.health.clone()));
    let mut s = Setup {
        o: world.orchestrator(),
        router: Arc::new(SilentRouter::new(world.router.clone())),
        metrics: Arc::new(SilentMetrics::new(world.source.clone())),
        world,
        platform,
        health,
    };
    s.o = s.orchestrator();
    s
}

impl Setup {
    /// Starts the canary of 1.1.0 bounded by [`MAX`].
    async fn start(&self) -> DeploymentHandle {
        self.o
            .start(&canary_within(MAX), SERVICE)
            .await
            .expect("start")
    }

    /// Spawns traffic both versions serve well; it runs as long as the handle is kept.
    fn serve_traffic(&self) -> tokio::task::JoinHandle<()> {
        self.world.set_rate("1.0.0", 0.005);
        self.world.set_rate("1.1.0", 0.005);
        self.world.spawn_traffic()
    }

    /// A fresh orchestrator (a process started afresh) on the setup's backends.
    fn orchestrator(&self) -> Orchestrator {
        self.orchestrator_over(self.world.journal.clone())
    }

    /// [`Setup::orchestrator`] over `journal`.
    fn orchestrator_over(&self, journal: Arc<dyn Journal>) -> Orchestrator {
        self.builder_over(journal).build()
    }

    /// The builder of [`Setup::orchestrator_over`], for the settings a test adds.
    fn builder_over(&self, journal: Arc<dyn Journal>) -> OrchestratorBuilder {
        let backends = ServiceBackends::new(
            self.router.clone(),
            self.metrics.clone(),
            self.health.clone(),
        );
        self.world
            .builder_on(self.platform.clone(), backends, journal)
    }
}

/// Asserts that nothing moved: 1.0.0 serves all traffic on the stable track, no canary runs.
async fn unchanged(world: &World) {
    world.assert_live(Track::Stable, "1.0.0").await;
    assert!(!world.has_track(&Track::Canary).await);
}

/// Makes one of a deployment's pre-check calls never answer; answers the stall it hangs on.
type Hang = fn(&Setup) -> &Stall;

/// The platform's status of the stable track never answers.
fn stable_status(s: &Setup) -> &Stall {
    s.platform.stall.cue("status stable");
    &s.platform.stall
}

/// The health source's signals never answer.
fn health_signals(s: &Setup) -> &Stall {
    s.health.hang.store(true, Ordering::SeqCst);
    &s.health.stall
}

/// Starts a deployment whose pre-check `hang`s: it fails at its deadline, naming `who`, with
/// nothing changed.
async fn pre_check_given_up_at_the_deadline(hang: Hang, who: &str) {
    let s = setup(true).await;
    let h = s.start().await;
    let stall = hang(&s);
    let report = bounded("the deployment", h.wait()).await.expect("report");
    println!("{report}");
    let reason = failed_reason(&report);
    assert!(
        reason.contains("pre-check")
            && reason.contains(who)
            && reason.contains("maxDeploymentDuration (20m)")
            && reason.contains("nothing was changed"),
        "{reason}"
    );
    assert_eq!(took(&report), MAX, "given up at the deadline");
    assert_eq!(stall.dropped(), 1);
    unchanged(&s.world).await;
}

/// Starts a deployment whose pre-check `hang`s and aborts it once hung: it ends at once, with
/// nothing changed.
async fn pre_check_cut_short_by_an_abort(hang: Hang) {
    let s = setup(true).await;
    let h = s.start().await;
    let stall = hang(&s);
    stall.until_hung().await;
    let (asked, report) = abort_to_end(&s.o, h).await;
    assert_eq!(report.last_at, asked, "the abort is served at once");
    let reason = failed_reason(&report);
    assert!(reason.contains("aborted by an operator"), "{reason}");
    assert_eq!(stall.dropped(), 1);
    unchanged(&s.world).await;
}

#[tokio::test(start_paused = true)]
async fn a_pre_check_status_that_never_answers_fails_the_deployment_at_its_deadline() {
    pre_check_given_up_at_the_deadline(stable_status, "hanging").await;
}

#[tokio::test(start_paused = true)]
async fn an_abort_while_the_pre_check_status_never_answers_ends_it_at_once() {
    pre_check_cut_short_by_an_abort(stable_status).await;
}

#[tokio::test(start_paused = true)]
async fn pre_check_health_signals_that_never_answer_fail_the_deployment_at_its_deadline() {
    pre_check_given_up_at_the_deadline(health_signals, "silent-health").await;
}

#[tokio::test(start_paused = true)]
async fn an_abort_while_pre_check_health_signals_never_answer_ends_it_at_once() {
    pre_check_cut_short_by_an_abort(health_signals).await;
}

/// Starts the canary of 1.1.0 on `o`, over `world`'s journal, which it must refuse at [`MAX`]
/// with nothing journalled, for the timeout of `call` into `who`.
async fn refused_start_at_the_bound(world: &World, o: &Orchestrator, who: &str, call: &str) {
    let records = world.journal.len();
    let began = tokio::time::Instant::now();
    let started = bounded("the start", o.start(&canary_within(MAX), SERVICE)).await;
    let e = started.expect_err("a start whose call never answered");
    assert_eq!(world.journal.len(), records, "nothing journalled");
    timed_out(&e, who, call);
    assert_eq!(began.elapsed(), MAX);
}

/// Starts the canary of 1.1.0 on `o`, over `world`'s journal, which it must refuse at [`MAX`]
/// for the timeout of `call` into `who`, a call made after the deployment's first record: the
/// deployment is journalled as failed for it, so that none is left unfinished.
async fn refused_start_journalled_at_the_bound(
    world: &World,
    o: &Orchestrator,
    who: &str,
    call: &str,
) {
    let records = world.journal.len();
    let began = tokio::time::Instant::now();
    let started = bounded("the start", o.start(&canary_within(MAX), SERVICE)).await;
    let e = started.expect_err("a start whose call never answered");
    timed_out(&e, who, call);
    assert_eq!(began.elapsed(), MAX);
    let all = world.journal.all();
    assert_eq!(all.len(), records + 2, "the first record and the end");
    let end = &all.last().expect("records").state;
    let Some(Outcome::Failed { reason }) = &end.outcome else {
        panic!("{end:?}");
    };
    assert!(reason.contains(call), "{reason}");
    assert!(o.unfinished().await.expect("unfinished").is_empty());
}

/// Takes the service's lock for another deployment on `world`'s platform.
async fn lock_for_another(world: &World) -> Result<()> {
    world.platform.lock(SERVICE, "another-deployment").await
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
    s.platform.stall.cue("list");
    refused_start_at_the_bound(&s.world, &s.o, "platform `hanging`", "listing").await;
}

#[tokio::test(start_paused = true)]
async fn a_router_that_never_answers_refuses_the_start_at_the_bound() {
    let world = World::new();
    world.install("1.0.0").await;
    let router = Arc::new(SilentRouter::new(world.router.clone()));
    router.stall.cue("current");
    let o = world.orchestrator_routing(router.clone());
    refused_start_at_the_bound(&world, &o, "router `silent-router`", "split").await;
    assert_eq!(router.stall.dropped(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_lock_that_never_answers_refuses_the_start_and_is_not_left_held() {
    let s = setup(true).await;
    s.platform.stall.cue("lock");
    refused_start_journalled_at_the_bound(&s.world, &s.o, "platform `hanging`", "lock").await;
    lock_for_another(&s.world)
        .await
        .expect("the lock taken by the call that timed out is freed");
}

#[tokio::test(start_paused = true)]
async fn a_status_of_the_new_track_that_never_answers_refuses_the_start_and_frees_the_lock() {
    let s = setup(true).await;
    s.platform.stall.cue("status canary");
    refused_start_journalled_at_the_bound(
        &s.world,
        &s.o,
        "platform `hanging`",
        "status of web/canary",
    )
    .await;
    lock_for_another(&s.world).await.expect("the lock is freed");
}

#[tokio::test(start_paused = true)]
async fn a_platform_that_stops_answering_refuses_the_start_soon_after_the_bound() {
    let s = setup(true).await;
    s.platform.stall.cue("lock");
    s.platform.stall.cue("unlock");
    let records = s.world.journal.len();
    let began = tokio::time::Instant::now();
    let started = bounded("the start", s.o.start(&canary_within(MAX), SERVICE)).await;
    let e = started.expect_err("a start whose lock never answered");
    timed_out(&e, "platform `hanging`", "lock");
    // The lock's bound, and a short one for freeing it: not a second `maxDeploymentDuration`.
    let took = began.elapsed();
    assert!(
        took >= MAX && took <= MAX + Duration::from_secs(60),
        "{took:?}"
    );
    assert!(s.o.unfinished().await.expect("unfinished").is_empty());

    // The deployment's end says the lock may still be held, and which resume frees it.
    let all = s.world.journal.all();
    assert_eq!(all.len(), records + 2, "the first record and the end");
    let end = all.last().expect("records");
    let id = end.deployment.clone();
    let Some(Outcome::Failed { reason }) = &end.state.outcome else {
        panic!("{:?}", end.state);
    };
    assert!(reason.contains("lock"), "{reason}");
    let report = s.o.report(&id).await.expect("report");
    let anomalies: Vec<&String> = report
        .timeline
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Anomaly { summary, .. } => Some(summary),
            _ => None,
        })
        .collect();
    assert!(
        matches!(anomalies.as_slice(), [a] if a.contains("may still be held")
            && a.contains(&format!("resume deployment {id}"))),
        "{report}"
    );
    assert!(
        lock_for_another(&s.world).await.is_err(),
        "the lock was taken"
    );
    // Once the platform answers again, that resume frees it.
    resume_to_end(&s.world.orchestrator(), &id).await;
    lock_for_another(&s.world).await.expect("the lock is freed");
}

#[tokio::test(start_paused = true)]
async fn a_lock_that_never_answers_refuses_a_resume_and_an_abandon_and_keeps_the_lock() {
    let s = setup(true).await;
    let last = crash_at(&s.world, s.o.clone(), canary_within(MAX), 4).await;
    let id = last.deployment.clone();
    s.platform.stall.cue("lock");
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
    let held = lock_for_another(&s.world).await;
    assert!(matches!(held, Err(Error::Conflict { .. })), "{held:?}");
}

#[tokio::test(start_paused = true)]
async fn an_unlock_that_never_answers_does_not_hold_up_the_end_of_a_deployment() {
    let s = setup(true).await;
    let h = s.start().await;
    s.platform.stall.cue("unlock");
    let report = bounded("the deployment", h.wait()).await.expect("report");
    assert!(report.outcome.is_some(), "{report}");
    assert_eq!(s.platform.stall.dropped(), 1);
}

/// The drain a canary's retire is given (`canaryConfig.drain`'s default).
const DRAIN: Duration = Duration::from_secs(10);

impl Setup {
    /// Runs the canary of 1.1.0 bounded by [`MAX`] to its end, under traffic both versions
    /// serve well.
    async fn deploy_under_traffic(&self) -> Report {
        let _traffic = self.serve_traffic();
        let report = bounded("the deployment", run_to_end(&self.o, &canary_within(MAX))).await;
        println!("{report}");
        report
    }
}

/// Asserts that `reason` names the timeout of `call` into `who`, after `after`.
fn names_timeout(reason: &str, who: &str, call: &str, after: Duration) {
    assert!(
        reason.contains(who)
            && reason.contains(call)
            && reason.contains(&format!("did not happen within {after:?}"))
            && reason.contains("maxDeploymentDuration (20m)"),
        "{reason}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_bring_up_that_never_answers_rolls_back_at_the_deadline() {
    let s = setup(true).await;
    s.platform.stall.cue("bring_up");
    let report = s.deploy_under_traffic().await;
    let reason = rollback_reason(&report);
    names_timeout(reason, "platform `hanging`", "bringing up web/canary", MAX);
    assert_eq!(took(&report), MAX, "given up at the deadline");
    assert_eq!(s.platform.stall.dropped(), 1);
    unchanged(&s.world).await;
}

#[tokio::test(start_paused = true)]
async fn a_promotion_scale_that_never_answers_rolls_back_at_the_deadline() {
    let s = setup(true).await;
    s.platform.stall.cue("scale");
    let report = s.deploy_under_traffic().await;
    let reason = rollback_reason(&report);
    assert!(
        reason.contains("scaling web/canary to 2 instances"),
        "{reason}"
    );
    assert!(
        reason.contains("maxDeploymentDuration (20m) ran out"),
        "{reason}"
    );
    assert_eq!(took(&report), MAX, "given up at the deadline");
    assert_eq!(s.platform.stall.dropped(), 1);
    unchanged(&s.world).await;
}

#[tokio::test(start_paused = true)]
async fn applies_that_never_answer_end_the_run_and_its_rollback_each_within_its_bound() {
    let s = setup(true).await;
    s.router.stall.cue("apply");
    let report = s.deploy_under_traffic().await;
    let reason = failed_reason(&report);
    // The first weight is given up at the deadline; the rollback's switch back, tried when it
    // starts and again by the rolling-back stage, is given maxDeploymentDuration each time.
    assert!(reason.starts_with("rolling back (error: "), "{reason}");
    names_timeout(reason, "router `silent-router`", "applying the split", MAX);
    // A dropped apply may still have reached the router: where traffic goes is not known.
    assert!(
        reason.contains("which split the router holds is unknown"),
        "{reason}"
    );
    assert!(!reason.contains("gets no traffic"), "{reason}");
    assert_eq!(took(&report), 3 * MAX);
    assert_eq!(s.router.stall.dropped(), 3);
    s.world.assert_live(Track::Stable, "1.0.0").await;
}

#[tokio::test(start_paused = true)]
async fn a_first_weight_that_never_answers_leaves_the_split_unknown_without_a_rollback() {
    let s = setup(true).await;
    let _traffic = s.serve_traffic();
    s.router.stall.cue("apply");
    let mut config = canary_within(MAX);
    config.rollback_on_error = false;
    let report = bounded("the deployment", run_to_end(&s.o, &config)).await;
    println!("{report}");
    let reason = failed_reason(&report);
    assert!(reason.contains("not rolled back"), "{reason}");
    // The 10% the router never confirmed may be in force, or not.
    assert!(
        reason.contains("which split the router holds is unknown")
            && reason.contains("may give 1.1.0 on canary any share of traffic"),
        "{reason}"
    );
    assert_eq!(took(&report), MAX);
}

#[tokio::test(start_paused = true)]
async fn a_retire_at_completion_that_never_answers_fails_it_at_the_deadline_and_its_drain() {
    let s = setup(true).await;
    s.platform.stall.cue("retire stable");
    let report = s.deploy_under_traffic().await;
    let reason = failed_reason(&report);
    assert!(reason.contains("at completion failed"), "{reason}");
    assert!(reason.contains("retiring web/stable"), "{reason}");
    assert!(
        reason.contains("maxDeploymentDuration (20m) ran out"),
        "{reason}"
    );
    assert!(reason.contains("drain (10s)"), "{reason}");
    assert_eq!(took(&report), MAX + DRAIN);
    assert_eq!(s.platform.stall.dropped(), 1);
    s.world.assert_live(Track::Canary, "1.1.0").await;
}

#[tokio::test(start_paused = true)]
async fn a_retire_in_a_rollback_that_never_answers_fails_it_within_its_bound() {
    let s = setup(true).await;
    s.platform.stall.cue("retire canary");
    let h = s.start().await;
    until_stage(&h, Stage::Canary).await;
    let (asked, report) = abort_to_end(&s.o, h).await;
    let reason = failed_reason(&report);
    assert!(
        reason.starts_with("rolling back (aborted by an operator) failed"),
        "{reason}"
    );
    names_timeout(
        reason,
        "platform `hanging`",
        "retiring web/canary",
        MAX + DRAIN,
    );
    assert!(reason.contains("drain (10s)"), "{reason}");
    assert_eq!(report.last_at.saturating_duration_since(asked), MAX + DRAIN);
    assert_eq!(s.platform.stall.dropped(), 1);
    s.world.assert_live(Track::Stable, "1.0.0").await;
}

#[tokio::test(start_paused = true)]
async fn a_resume_whose_router_never_says_its_split_applies_the_journalled_one_again() {
    let s = setup(true).await;
    // Cut short right after the new track's bring-up was journalled, under the split the
    // deployment started with.
    let records = s.world.journal.len() + 4;
    let last = crash_at(&s.world, s.o.clone(), canary_within(MAX), records).await;
    assert!(
        matches!(last.effects[..], [Effect::BringUp { .. }]),
        "{last:?}"
    );
    // The router's split drifted meanwhile, which the resume cannot read back.
    let drifted = TrafficSplit::from_percents([("stable", 50), ("canary", 50)]).expect("split");
    s.world.router.apply(&drifted).await.expect("apply");
    let applied = s.world.router.history().len();
    s.router.stall.cue("current");
    let report = bounded(
        "the resumed deployment",
        resume_to_end(&s.orchestrator(), &last.deployment),
    )
    .await;
    println!("{report}");
    assert_eq!(s.router.stall.dropped(), 1);
    // The read was given what was left until the deadline, which then rolled back.
    assert_eq!(took(&report), MAX);
    assert!(rollback_reason(&report).contains("did not finish within"));
    let journalled = TrafficSplit::all_to("stable", &[]).expect("split");
    assert_eq!(
        s.world.router.history().get(applied),
        Some(&journalled),
        "the journalled split is applied again first"
    );
    s.world.assert_live(Track::Stable, "1.0.0").await;
}

#[tokio::test(start_paused = true)]
async fn an_abort_while_the_canary_metrics_never_answer_rolls_back_at_once() {
    let s = setup(true).await;
    let h =
        s.o.start(&canary_within(Duration::from_secs(10 * 60)), SERVICE)
            .await
            .expect("start");
    until_stage(&h, Stage::Canary).await;
    s.metrics.hang.store(true, Ordering::SeqCst);
    s.metrics.stall.until_hung().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (asked, report) = abort_to_end(&s.o, h).await;
    assert_eq!(report.last_at, asked, "the abort is served at once");
    let reason = rollback_reason(&report);
    assert!(reason.contains("aborted by an operator"), "{reason}");
    assert!(s.metrics.stall.dropped() >= 1);
    unchanged(&s.world).await;
}

/// Aborts a deployment in `stage` while its metrics never answer, with a trigger that would
/// roll back on the window the abort cuts short, for the data it has not read: the abort wins.
async fn abort_during_a_hung_read_with_a_trigger_on_missing_data(stage: Stage) {
    let s = setup(true).await;
    let _traffic = s.serve_traffic();
    let mut config = canary_within(MAX);
    config.triggers = vec![support::errors_or_missing_data_trigger()];
    config.validate().expect("valid");
    let h = s.o.start(&config, SERVICE).await.expect("start");
    until_stage(&h, stage).await;
    s.metrics.hang.store(true, Ordering::SeqCst);
    s.metrics.stall.until_hung().await;
    // Long past the trigger's staleAfter: the window's data is missing for good.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let (asked, report) = abort_to_end(&s.o, h).await;
    assert_eq!(report.last_at, asked, "the abort is served at once");
    assert_eq!(rollback_reason(&report), "aborted by an operator");
    s.world.assert_live(Track::Stable, "1.0.0").await;
}

#[tokio::test(start_paused = true)]
async fn an_abort_that_cuts_a_canary_read_short_wins_over_a_trigger_on_the_missing_data() {
    abort_during_a_hung_read_with_a_trigger_on_missing_data(Stage::Canary).await;
}

#[tokio::test(start_paused = true)]
async fn an_abort_that_cuts_a_watch_read_short_wins_over_a_trigger_on_the_missing_data() {
    abort_during_a_hung_read_with_a_trigger_on_missing_data(Stage::Monitoring).await;
}

#[tokio::test(start_paused = true)]
async fn an_abort_while_the_watch_health_signals_never_answer_rolls_back_at_once() {
    let s = setup(true).await;
    let _traffic = s.serve_traffic();
    let h = s.start().await;
    until_stage(&h, Stage::Monitoring).await;
    s.health.hang.store(true, Ordering::SeqCst);
    s.health.stall.until_hung().await;
    let (asked, report) = abort_to_end(&s.o, h).await;
    assert_eq!(report.last_at, asked, "the abort is served at once");
    let reason = rollback_reason(&report);
    assert!(reason.contains("aborted by an operator"), "{reason}");
    assert!(s.health.stall.dropped() >= 1);
    s.world.assert_live(Track::Stable, "1.0.0").await;
}

#[tokio::test(start_paused = true)]
async fn a_journal_append_that_never_answers_stops_the_run_within_its_bound() {
    let s = setup(true).await;
    s.world.journal.stall_after(Some(s.world.journal.len() + 3));
    let h = s.start().await;
    let began = tokio::time::Instant::now();
    let e = bounded("the deployment", h.wait())
        .await
        .expect_err("a run whose journal never answered");
    s.world.journal.stall_after(None);
    // Stopped as by any journal failure: from its last record, for a resume to pick up.
    assert!(
        matches!(&e, Error::Backend { backend, .. } if backend == "journal"),
        "{e}"
    );
    assert!(
        e.to_string().contains("appending record 2")
            && e.to_string().contains("maxDeploymentDuration (20m)"),
        "{e}"
    );
    assert_eq!(began.elapsed(), MAX);
    let held = lock_for_another(&s.world).await;
    assert!(matches!(held, Err(Error::Conflict { .. })), "{held:?}");
}

impl Setup {
    /// A journal that wraps the world's and hangs on `call`.
    fn silent_journal(&self, call: &str) -> Arc<SilentJournal> {
        let journal = Arc::new(SilentJournal {
            inner: self.world.journal.clone(),
            stall: Stall::default(),
        });
        journal.stall.cue(call);
        journal
    }

    /// An orchestrator over [`Setup::silent_journal`].
    fn over_silent_journal(&self, call: &str) -> Orchestrator {
        self.orchestrator_over(self.silent_journal(call))
    }
}

#[tokio::test(start_paused = true)]
async fn a_listing_of_the_deployments_that_never_answers_refuses_the_start_at_the_bound() {
    let s = setup(true).await;
    let o = s.over_silent_journal("deployments");
    refused_start_at_the_bound(
        &s.world,
        &o,
        "journal `silent-journal`",
        "listing the deployments",
    )
    .await;
    lock_for_another(&s.world).await.expect("no lock was taken");
}

#[tokio::test(start_paused = true)]
async fn a_report_the_journal_never_reads_back_ends_the_run_within_its_bound() {
    let s = setup(true).await;
    let o = s.over_silent_journal("records");
    let h = o.start(&canary_within(MAX), SERVICE).await.expect("start");
    let id = h.id().to_owned();
    let began = tokio::time::Instant::now();
    let e = bounded("the deployment", h.wait())
        .await
        .expect_err("a report never read back");
    assert!(
        matches!(&e, Error::Backend { backend, .. } if backend == "journal"),
        "{e}"
    );
    assert!(
        e.to_string().contains("reading the records")
            && e.to_string().contains("maxDeploymentDuration (20m)"),
        "{e}"
    );
    let report = s.orchestrator().report(&id).await.expect("report");
    assert!(report.outcome.is_some(), "it ended before: {report}");
    assert_eq!(
        began.elapsed(),
        took(&report) + MAX,
        "given up after the bound"
    );
}

/// The world's router, but its first apply never answers and every later one fails: a router
/// that hung, then refuses.
struct HangsThenRefuses {
    inner: Arc<InMemoryRouter>,
    stall: Stall,
}

#[async_trait]
impl TrafficRouter for HangsThenRefuses {
    fn name(&self) -> &str {
        "hangs-then-refuses"
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn apply(&self, _split: &TrafficSplit) -> serin_traffic::Result<()> {
        if self.stall.hung() == 0 {
            return self.stall.now().await;
        }
        Err(serin_traffic::Error::Backend {
            router: self.name().to_owned(),
            message: "connection refused".into(),
        })
    }
    async fn current(&self) -> serin_traffic::Result<Option<TrafficSplit>> {
        self.inner.current().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_rollback_refused_after_a_dropped_apply_leaves_the_split_unknown() {
    let world = Arc::new(World::new());
    world.install("1.0.0").await;
    world.set_rate("1.0.0", 0.005);
    world.set_rate("1.1.0", 0.005);
    let _traffic = world.spawn_traffic();
    let router = Arc::new(HangsThenRefuses {
        inner: world.router.clone(),
        stall: Stall::default(),
    });
    let o = world.orchestrator_routing(router.clone());
    let report = bounded("the deployment", run_to_end(&o, &canary_within(MAX))).await;
    println!("{report}");
    let reason = failed_reason(&report);
    assert!(reason.starts_with("rolling back (error: "), "{reason}");
    assert!(reason.contains("connection refused"), "{reason}");
    // The switch back failed, but the first weight, dropped unanswered, may be in force.
    assert!(
        reason.contains("which split the router holds is unknown"),
        "{reason}"
    );
    assert!(!reason.contains("gets no traffic"), "{reason}");
    assert_eq!(router.stall.dropped(), 1);
}

/// The bound a journal call outside a run is given by default.
const JOURNAL_TIMEOUT: Duration = Duration::from_secs(60);

/// Asserts that `e`, which took `took`, is the timeout of `call` into the silent journal, the
/// bound named as `bound` and given `after`, as long as it took.
fn journal_timed_out((e, took): (Error, Duration), call: &str, bound: &str, after: Duration) {
    let Error::Timeout {
        what,
        after: waited,
        reason,
    } = &e
    else {
        panic!("expected a timeout, got {e}");
    };
    assert!(
        what.contains("journal `silent-journal`") && what.contains(call),
        "{e}"
    );
    assert!(
        reason.contains(&format!("journal timeout ({bound})")),
        "{e}"
    );
    assert_eq!(*waited, after, "{e}");
    assert_eq!(took, after);
}

/// `call`, which must fail; answers its error and how long it took.
async fn refused<T>(what: &str, call: impl Future<Output = Result<T>>) -> (Error, Duration) {
    let began = tokio::time::Instant::now();
    let e = bounded(what, call).await.err().expect(what);
    (e, began.elapsed())
}

#[tokio::test(start_paused = true)]
async fn journal_reads_outside_a_run_that_never_answer_fail_at_the_journal_timeout() {
    let s = setup(true).await;
    let id = "web-1.1.0-0";
    let o = s.over_silent_journal("records");
    let reading = format!("reading the records of {id}");
    let at_the_default = |refusal| journal_timed_out(refusal, &reading, "1m", JOURNAL_TIMEOUT);
    at_the_default(refused("the resume", o.resume(id)).await);
    at_the_default(refused("the abandon", o.abandon(id, "gone")).await);
    at_the_default(refused("the status", o.status(id)).await);
    at_the_default(refused("the report", o.report(id)).await);
    unchanged(&s.world).await;
}

#[tokio::test(start_paused = true)]
async fn journal_listings_outside_a_run_that_never_answer_fail_at_the_journal_timeout() {
    let s = setup(true).await;
    let o = s.over_silent_journal("deployments");
    let records = s.world.journal.len();
    let listing = "the last record of every deployment";
    let at_the_default = |refusal| journal_timed_out(refusal, listing, "1m", JOURNAL_TIMEOUT);
    at_the_default(refused("the listing", o.unfinished()).await);
    let config = canary_within(MAX);
    at_the_default(refused("the rollback", o.rollback(&config, SERVICE)).await);
    let v = semver::Version::new(0, 9, 0);
    at_the_default(refused("the rollback", o.rollback_to(&config, SERVICE, v)).await);
    assert_eq!(s.world.journal.len(), records, "nothing journalled");
    unchanged(&s.world).await;
}

#[tokio::test(start_paused = true)]
async fn the_journal_timeout_is_the_builders() {
    let s = setup(true).await;
    let bound = Duration::from_secs(5);
    let o = s
        .builder_over(s.silent_journal("records"))
        .journal_timeout(bound)
        .build();
    let refusal = refused("the status", o.status("web-1.1.0-0")).await;
    journal_timed_out(refusal, "reading the records", "5s", bound);
}
