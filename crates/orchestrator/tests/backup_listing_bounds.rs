//! Listing a backup provider's backups is bounded as its backups and restores are, under
//! paused time: in preparation (the listing before the backup, and the one a resumed
//! deployment looks for its backup in) at the deployment's deadline or an operator's abort,
//! with nothing deployed; before a rollback (its retention check) at the config's
//! `maxDeploymentDuration`, with nothing started.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serin_orchestrator::backup::Retention;
use serin_orchestrator::{
    BackupInfo, BackupProvider, EventKind, InMemoryBackup, InMemoryStepRunner, Journal,
    Orchestrator, Result,
};
use serin_signals::Track;
use support::{
    SERVICE, Stall, World, abort_to_end, bounded, canary_within, checklist_validator,
    failed_reason, took, v,
};

/// An in-memory provider whose listings, lookups or backups never answer on cue (a catalog
/// on a hung network share).
struct Silent {
    inner: InMemoryBackup,
    hang_list: AtomicBool,
    hang_info: AtomicBool,
    hang_backup: AtomicBool,
    stall: Stall,
}

impl Silent {
    fn new(inner: InMemoryBackup) -> Arc<Self> {
        Arc::new(Silent {
            inner,
            hang_list: AtomicBool::new(false),
            hang_info: AtomicBool::new(false),
            hang_backup: AtomicBool::new(false),
            stall: Stall::default(),
        })
    }
}

#[async_trait]
impl BackupProvider for Silent {
    fn name(&self) -> &str {
        "silent"
    }

    async fn backup(&self, service: &str, label: &str) -> Result<String> {
        if self.hang_backup.load(Ordering::SeqCst) {
            self.stall.now::<()>().await;
        }
        self.inner.backup(service, label).await
    }

    async fn restore(&self, id: &str) -> Result<()> {
        self.inner.restore(id).await
    }

    async fn info(&self, id: &str) -> Result<BackupInfo> {
        if self.hang_info.load(Ordering::SeqCst) {
            self.stall.now::<()>().await;
        }
        self.inner.info(id).await
    }

    fn retention(&self) -> Option<Retention> {
        self.inner.retention()
    }

    async fn list(&self, service: &str) -> Result<Vec<BackupInfo>> {
        if self.hang_list.load(Ordering::SeqCst) {
            self.stall.now::<()>().await;
        }
        self.inner.list(service).await
    }
}

/// 1.0.0 serving, and an orchestrator backing up through `provider`.
async fn backing_up(provider: Arc<Silent>) -> (Arc<World>, Orchestrator) {
    let world = Arc::new(World::new());
    world.set_rate("1.0.0", 0.005);
    world.set_rate("1.1.0", 0.005);
    world.install("1.0.0").await;
    let o = world
        .builder(world.journal.clone())
        .backup(provider)
        .build();
    (world, o)
}

/// Asserts that nothing was deployed and that the last record of `id` leaves nothing in
/// flight.
async fn assert_nothing_deployed(world: &World, id: &str) {
    assert!(!world.has_track(&Track::Canary).await);
    world.assert_live(Track::Stable, "1.0.0").await;
    let records = world.journal.records(id).await.expect("records");
    let last = records.last().expect("a record");
    assert_eq!(last.state.in_flight, None, "{:?}", last.state.in_flight);
}

#[tokio::test(start_paused = true)]
async fn a_listing_before_the_backup_that_never_answers_ends_at_the_deadline() {
    let provider = Silent::new(InMemoryBackup::new());
    let (world, o) = backing_up(provider.clone()).await;
    provider.hang_list.store(true, Ordering::SeqCst);
    let max = Duration::from_secs(20 * 60);
    let h = o.start(&canary_within(max), SERVICE).await.expect("start");
    let id = h.id().to_owned();
    let report = bounded("the deployment", h.wait()).await.expect("report");
    println!("{report}");
    let reason = failed_reason(&report);
    assert!(
        reason.contains("was not started: listing the backups of web")
            && reason.contains("did not finish within maxDeploymentDuration (20m)")
            && reason.contains("nothing was deployed"),
        "{reason}"
    );
    assert_eq!(took(&report), max, "cancelled at the deadline");
    assert_eq!(provider.stall.dropped(), 1, "the call was dropped");
    assert!(provider.inner.taken().is_empty(), "no backup was taken");
    assert_nothing_deployed(&world, &id).await;
}

#[tokio::test(start_paused = true)]
async fn an_abort_during_a_listing_that_never_answers_ends_it_at_once() {
    let provider = Silent::new(InMemoryBackup::new());
    let (world, o) = backing_up(provider.clone()).await;
    provider.hang_list.store(true, Ordering::SeqCst);
    let h = o
        .start(&canary_within(Duration::from_secs(2 * 3_600)), SERVICE)
        .await
        .expect("start");
    let id = h.id().to_owned();
    provider.stall.until_hung().await;
    let (asked, report) = abort_to_end(&o, h).await;
    assert_eq!(report.last_at, asked, "the abort is served at once");
    let reason = failed_reason(&report);
    assert!(
        reason.contains("listing the backups of web") && reason.contains("aborted by an operator"),
        "{reason}"
    );
    assert_eq!(provider.stall.dropped(), 1, "the call was dropped");
    assert!(provider.inner.taken().is_empty(), "no backup was taken");
    assert_nothing_deployed(&world, &id).await;
}

/// A deployment resumed with its backup started and not ended looks for it in the listing;
/// a listing that never answers ends at the deadline journalled at the start, the backup
/// left unconfirmed (and not taken again).
#[tokio::test(start_paused = true)]
async fn a_resumed_deployment_whose_listing_never_answers_ends_at_the_deadline() {
    let provider = Silent::new(InMemoryBackup::new());
    let (world, o) = backing_up(provider.clone()).await;
    provider.hang_backup.store(true, Ordering::SeqCst);
    let max = Duration::from_secs(20 * 60);
    let h = o.start(&canary_within(max), SERVICE).await.expect("start");
    let id = h.id().to_owned();
    provider.stall.until_hung().await;
    h.kill();
    provider.hang_backup.store(false, Ordering::SeqCst);
    provider.hang_list.store(true, Ordering::SeqCst);
    let resumed = world
        .builder(world.journal.clone())
        .backup(provider.clone())
        .build();
    let report = bounded(
        "the resumed deployment",
        support::resume_to_end(&resumed, &id),
    )
    .await;
    println!("{report}");
    let reason = failed_reason(&report);
    assert!(
        reason.contains("cannot be confirmed")
            && reason.contains("listing the backups of web")
            && reason.contains("maxDeploymentDuration (20m)")
            && reason.contains("nothing was deployed"),
        "{reason}"
    );
    assert!(
        support::kinds(&report)
            .iter()
            .any(|k| matches!(k, EventKind::Anomaly { summary, .. } if summary.contains("cannot be confirmed"))),
        "{report}"
    );
    assert_eq!(took(&report), max, "cancelled at the deadline");
    assert!(provider.inner.taken().is_empty(), "no backup was taken");
    assert_nothing_deployed(&world, &id).await;
}

/// A rollback to 1.0.0 must restore the backup taken before 1.1.0 (its contract migration
/// is destructive); the provider keeps the last 5 backups.
async fn upgraded(provider: Arc<Silent>, max: Duration) -> (Arc<World>, Orchestrator) {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let (validator, fleet) = checklist_validator();
    let o = world
        .builder(world.journal.clone())
        .validator(validator, fleet)
        .backup(provider)
        .step_runner(Arc::new(InMemoryStepRunner::new()))
        .build();
    let up = bounded("the upgrade", support::run_to_end(&o, &canary_within(max))).await;
    support::assert_succeeded(&up);
    (world, o)
}

#[tokio::test(start_paused = true)]
async fn a_rollback_whose_retention_check_never_answers_is_refused_at_the_deadline() {
    let retention = Retention::keep_last(5).expect("retention");
    let provider = Silent::new(InMemoryBackup::new().with_retention(retention));
    let max = Duration::from_secs(30 * 60);
    let (world, o) = upgraded(provider.clone(), max).await;
    provider.hang_list.store(true, Ordering::SeqCst);
    let asked = o.clock().now();
    let started = bounded(
        "the rollback",
        o.start_rollback_to(&canary_within(max), SERVICE, v("1.0.0")),
    )
    .await;
    let Err(refused) = started else {
        panic!("the rollback was not refused");
    };
    let msg = refused.to_string();
    assert!(
        msg.contains("cannot be checked")
            && msg.contains("listing the backups of web")
            && msg.contains("maxDeploymentDuration (30m) ran out"),
        "{msg}"
    );
    assert_eq!(o.clock().now().saturating_duration_since(asked), max);
    assert_eq!(provider.stall.dropped(), 1, "the call was dropped");
    assert_eq!(provider.inner.taken().len(), 1, "no backup was taken");
    assert_eq!(
        world.live_version().await.map(|l| l.1),
        Some("1.1.0".into())
    );
}

#[tokio::test(start_paused = true)]
async fn a_rollback_whose_restore_point_lookup_never_answers_is_refused_at_the_deadline() {
    let provider = Silent::new(InMemoryBackup::new());
    let max = Duration::from_secs(30 * 60);
    let (_world, o) = upgraded(provider.clone(), max).await;
    provider.hang_info.store(true, Ordering::SeqCst);
    let asked = o.clock().now();
    let started = bounded(
        "the rollback",
        o.start_rollback_to(&canary_within(max), SERVICE, v("1.0.0")),
    )
    .await;
    let Err(refused) = started else {
        panic!("the rollback was not refused");
    };
    let msg = refused.to_string();
    assert!(
        msg.contains("whether it exists cannot be checked")
            && msg.contains("maxDeploymentDuration (30m) ran out"),
        "{msg}"
    );
    assert_eq!(o.clock().now().saturating_duration_since(asked), max);
    assert_eq!(provider.stall.dropped(), 1, "the call was dropped");
}
