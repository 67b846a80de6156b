//! Retention keeps the backup a provider has just taken, whatever the clock said when it was
//! taken: the wall clock may have been stepped back since the service's other backups were
//! taken (an NTP correction, a VM restored from a snapshot, another process reading a clock
//! that ran ahead), and ordered by time alone, the new backup would be the oldest one and
//! deleted at once, leaving the deployment without the backup it was told it has.
#![cfg(feature = "backup")]

use std::fs;
use std::time::Duration;

use serin_orchestrator::backup::{DirectorySnapshot, Retention};
use serin_orchestrator::{BackupProvider, Clock};
use serin_signals::Timestamp;

const NOW: u64 = 1_700_000_000_000;

#[tokio::test(start_paused = true)]
async fn a_backup_taken_with_the_clock_behind_the_others_is_kept_and_the_oldest_goes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (source, store) = (tmp.path().join("data"), tmp.path().join("store"));
    fs::create_dir_all(&source).expect("source");
    fs::write(source.join("f"), "v1").expect("file");
    let keep_two = Retention::keep_last(2).expect("retention");
    let at = |millis: u64| {
        DirectorySnapshot::new(&source, &store)
            .expect("provider")
            .with_clock(Clock::starting_at(Timestamp::from_millis(millis)))
            .with_retention(keep_two)
    };
    // Two backups taken while the clock read an hour ahead.
    let ahead = at(NOW + 3_600_000);
    let older = ahead.backup("web", "before 1.1.0").await.expect("backup");
    tokio::time::advance(Duration::from_secs(60)).await;
    let newer = ahead.backup("web", "before 1.2.0").await.expect("backup");
    // The clock stepped back an hour: the next backup is dated before both.
    let fresh = at(NOW).backup("web", "before 1.3.0").await.expect("backup");
    let info = at(NOW)
        .info(&fresh)
        .await
        .expect("the backup just taken is still there");
    assert_eq!(info.label, "before 1.3.0");
    let mut kept: Vec<String> = at(NOW)
        .list("web")
        .await
        .expect("list")
        .into_iter()
        .map(|b| b.id)
        .collect();
    kept.sort();
    let mut want = vec![fresh.clone(), newer.clone()];
    want.sort();
    assert_eq!(kept, want, "the oldest of the others, {older}, goes");
    assert!(!store.join(&older).exists());
    fs::write(source.join("f"), "v2").expect("file");
    at(NOW).restore(&fresh).await.expect("restore");
    assert_eq!(fs::read_to_string(source.join("f")).expect("file"), "v1");
}

#[test]
fn the_backup_just_taken_counts_as_the_newest() {
    let keep_two = Retention::keep_last(2).expect("retention");
    let info = |id: &str, at: u64| {
        serin_orchestrator::BackupInfo::new(id, "web", "x", Timestamp::from_millis(at))
    };
    let backups = [info("a", 30), info("b", 20), info("fresh", 10)];
    let ids = |expired: Vec<&serin_orchestrator::BackupInfo>| {
        expired.iter().map(|b| b.id.clone()).collect::<Vec<_>>()
    };
    assert_eq!(ids(keep_two.expired_after(&backups, "fresh")), ["b"]);
    // By time alone, the backup just taken would go.
    assert_eq!(ids(keep_two.expired(&backups)), ["fresh"]);
    // A backup no longer listed (deleted meanwhile) leaves the rule by time.
    assert_eq!(ids(keep_two.expired_after(&backups, "gone")), ["fresh"]);
}
