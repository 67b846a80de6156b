//! The conformance suite for [`Journal`] implementations (feature `testkit`).
//!
//! The checks write records of deployments named `conformance-…` and look only at those, so
//! they may run on a journal that holds other deployments, but not twice on one that holds
//! these (a journal is append-only). Each panics with a message on the first violation.
//!
//! ```
//! # #[cfg(feature = "testkit")] {
//! use serin_orchestrator::InMemoryJournal;
//! use serin_orchestrator::journal::testkit;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! testkit::check_journal(&InMemoryJournal::new()).await;
//! # });
//! # }
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serin_signals::{Timestamp, Track};
use serin_triggers::Engine;

use super::{Journal, Record};
use crate::config::{DeploymentConfig, StrategyKind};
use crate::event::{Event, EventKind};
use crate::state::{DeploymentState, Effect, Placement};

/// A record of `deployment` (a canary of `web` from 1.0.0 to 1.1.0, before validation) at
/// position `seq`, with one effect and one event, for journals to store.
pub fn sample_record(deployment: &str, seq: u64) -> Record {
    let now = Timestamp::from_millis(1_000);
    let config = DeploymentConfig::new(
        StrategyKind::Canary,
        semver::Version::new(1, 1, 0),
        &["web"],
    )
    .expect("a valid configuration");
    let triggers = Engine::new(config.trigger_config().expect("triggers"), now).expect("engine");
    let placement = |track, minor| Placement {
        track,
        version: semver::Version::new(1, minor, 0),
    };
    let state = DeploymentState::new(
        deployment.to_owned(),
        "web".to_owned(),
        config,
        Some(placement(Track::Stable, 0)),
        placement(Track::Canary, 1),
        triggers,
        now,
    );
    let at = now.saturating_add(Duration::from_millis(seq));
    Record {
        deployment: deployment.to_owned(),
        seq,
        at,
        events: vec![Event {
            deployment: deployment.to_owned(),
            service: state.service.clone(),
            seq,
            at,
            kind: EventKind::Paused,
        }],
        state,
        effects: vec![Effect::retire(Track::Canary, Duration::ZERO)],
        weight: None,
        sample: None,
    }
}

/// Runs every check.
pub async fn check_journal(journal: &dyn Journal) {
    check_unknown_deployment_has_no_records(journal).await;
    check_records_read_back_in_order(journal).await;
}

/// Deployment names unique to this run of the suite, so that a journal opened anew over the
/// same file may run it again.
fn names(count: usize) -> Vec<String> {
    static RUN: AtomicU64 = AtomicU64::new(0);
    let run = RUN.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    (0..count)
        .map(|i| format!("conformance-{nanos}-{run}-{i}"))
        .collect()
}

/// The records' JSON, which a journal must give back unchanged.
fn json(records: &[Record]) -> Vec<serde_json::Value> {
    records
        .iter()
        .map(|r| serde_json::to_value(r).expect("a record serializes"))
        .collect()
}

/// A deployment never appended has no records and is not listed.
pub async fn check_unknown_deployment_has_no_records(journal: &dyn Journal) {
    let [unknown] = <[String; 1]>::try_from(names(1)).expect("one name");
    let name = journal.name();
    assert!(
        journal.records(&unknown).await.expect("records").is_empty(),
        "{name}: records of a deployment never appended"
    );
    assert!(
        !journal
            .deployments()
            .await
            .expect("deployments")
            .contains(&unknown),
        "{name}: lists a deployment never appended"
    );
}

/// Records of three deployments appended interleaved come back per deployment, unchanged and
/// in the order appended; deployments are listed in the order of their first record; the last
/// record of each is the last appended; all records come back deployment by deployment.
pub async fn check_records_read_back_in_order(journal: &dyn Journal) {
    let name = journal.name().to_owned();
    let ids = names(3);
    // 120 records: the first deployment gets every other one, the others the rest in turn.
    let mut appended: Vec<Vec<Record>> = vec![Vec::new(); ids.len()];
    for n in 0..120u64 {
        let which = if n % 2 == 0 {
            0
        } else {
            1 + (n as usize / 2) % 2
        };
        let seq = appended[which].len() as u64;
        let record = sample_record(&ids[which], seq);
        journal.append(&record).await.expect("append");
        appended[which].push(record);
    }
    for (id, records) in ids.iter().zip(&appended) {
        let back = journal.records(id).await.expect("records");
        assert_eq!(
            json(&back),
            json(records),
            "{name}: the records of {id} differ from those appended, or their order does"
        );
    }
    let listed: Vec<String> = journal
        .deployments()
        .await
        .expect("deployments")
        .into_iter()
        .filter(|d| ids.contains(d))
        .collect();
    assert_eq!(
        listed, ids,
        "{name}: deployments not in the order of their first record"
    );
    // The records of this run's deployments among whatever else the journal holds.
    let ours = |records: Vec<Record>| {
        let ours: Vec<Record> = records
            .into_iter()
            .filter(|r| ids.contains(&r.deployment))
            .collect();
        json(&ours)
    };
    let want: Vec<Record> = appended
        .iter()
        .filter_map(|records| records.last().cloned())
        .collect();
    assert_eq!(
        ours(journal.last_records().await.expect("last records")),
        json(&want),
        "{name}: the last records are not each deployment's last appended, in order"
    );
    assert_eq!(
        ours(journal.all_records().await.expect("all records")),
        json(&appended.concat()),
        "{name}: all records are not deployment by deployment, each in the order appended"
    );
}
