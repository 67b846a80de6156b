//! Keep the last N backups of each service.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::hooks::{BackupInfo, BackupProvider};

/// How many backups of each service to keep: after a successful backup, the provider deletes
/// the oldest ones beyond the last `keepLast`, never the backup it has just taken, which counts
/// as the newest whatever time the clock gave it (see [`expired_after`](Self::expired_after)).
///
/// Choose N with rollbacks in mind: a rollback across a destructive migration restores the
/// backup taken before the first deployment it undoes, and takes a fresh backup first (so the
/// rollback itself can be undone). To roll back across `k` deployments, keep at least `k + 1`
/// backups, or the fresh backup's retention would delete the one to restore (the orchestrator
/// then refuses the rollback up front, and nothing is deleted). `keepLast` must therefore be at
/// least 2: with 1, no rollback could restore even the last deployment's backup.
///
/// ```
/// use serin_orchestrator::backup::Retention;
///
/// let r: Retention = serde_json::from_str(r#"{"keepLast":3}"#)?;
/// assert_eq!(r.keep(), 3);
/// let err = serde_json::from_str::<Retention>(r#"{"keepLast":1}"#).unwrap_err();
/// assert!(err.to_string().contains("retention.keepLast"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    deny_unknown_fields,
    try_from = "RetentionRepr",
    into = "RetentionRepr"
)]
pub struct Retention {
    keep_last: usize,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RetentionRepr {
    keep_last: usize,
}

impl TryFrom<RetentionRepr> for Retention {
    type Error = Error;

    fn try_from(r: RetentionRepr) -> Result<Self> {
        Retention::keep_last(r.keep_last)
    }
}

impl From<Retention> for RetentionRepr {
    fn from(r: Retention) -> Self {
        RetentionRepr {
            keep_last: r.keep_last,
        }
    }
}

impl Retention {
    /// Keep the last `n` backups of each service (`n` ≥ 2).
    pub fn keep_last(n: usize) -> Result<Self> {
        if n < 2 {
            return Err(Error::invalid(
                "retention.keepLast",
                n,
                "must be at least 2: a rollback takes a fresh backup before it restores the \
                 one taken before the deployment, and keeping one would delete the backup it \
                 restores",
            ));
        }
        Ok(Retention { keep_last: n })
    }

    /// How many backups of each service are kept.
    pub fn keep(&self) -> usize {
        self.keep_last
    }

    /// The backups to delete from `backups` (one service's, in any order): all but the newest
    /// `keep`, oldest first.
    pub fn expired<'a>(&self, backups: &'a [BackupInfo]) -> Vec<&'a BackupInfo> {
        oldest_beyond(backups.iter().collect(), self.keep_last)
    }

    /// [`expired`](Self::expired), once the backup `taken` (one of `backups`) was just taken:
    /// it counts as the newest, whatever time it bears, and is never expired. Times come from
    /// the wall clock, which may have been stepped back since the others were taken (an NTP
    /// correction, a VM restored from a snapshot), and ordered by time alone the backup just
    /// taken would be the oldest, deleted before whoever took it could restore it. When
    /// `taken` is not among `backups` (deleted meanwhile), this is `expired`.
    pub fn expired_after<'a>(&self, backups: &'a [BackupInfo], taken: &str) -> Vec<&'a BackupInfo> {
        let others: Vec<&BackupInfo> = backups.iter().filter(|b| b.id != taken).collect();
        if others.len() == backups.len() {
            return self.expired(backups);
        }
        oldest_beyond(others, self.keep_last - 1)
    }

    /// Deletes the backups of `service` beyond the last `keep` through `provider`; returns the
    /// ids deleted. A backup already deleted by someone else is skipped. A provider enforcing
    /// its retention after a backup uses [`enforce_after`](Self::enforce_after).
    pub async fn enforce(
        &self,
        provider: &dyn BackupProvider,
        service: &str,
    ) -> Result<Vec<String>> {
        let backups = provider.list(service).await?;
        self.delete(provider, self.expired(&backups)).await
    }

    /// [`enforce`](Self::enforce) after the backup `taken` of `service`: it is kept whatever
    /// time it bears (see [`expired_after`](Self::expired_after)).
    pub async fn enforce_after(
        &self,
        provider: &dyn BackupProvider,
        service: &str,
        taken: &str,
    ) -> Result<Vec<String>> {
        let backups = provider.list(service).await?;
        self.delete(provider, self.expired_after(&backups, taken))
            .await
    }

    /// Deletes `expired` through `provider`, skipping what someone else deleted first.
    async fn delete(
        &self,
        provider: &dyn BackupProvider,
        expired: Vec<&BackupInfo>,
    ) -> Result<Vec<String>> {
        let mut deleted = Vec::new();
        for old in expired {
            match provider.delete(&old.id).await {
                Ok(()) | Err(Error::NotFound { .. }) => deleted.push(old.id.clone()),
                Err(e) => return Err(e),
            }
        }
        Ok(deleted)
    }
}

/// All of `backups` but the newest `keep`, oldest first.
fn oldest_beyond(mut backups: Vec<&BackupInfo>, keep: usize) -> Vec<&BackupInfo> {
    backups.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let excess = backups.len().saturating_sub(keep);
    backups.truncate(excess);
    backups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::InMemoryBackup;
    use serin_signals::Timestamp;

    fn info(id: &str, at: u64) -> BackupInfo {
        BackupInfo::new(id, "web", "x", Timestamp::from_millis(at))
    }

    #[test]
    fn all_but_the_newest_n_expire_oldest_first() {
        let backups = vec![info("c", 30), info("a", 10), info("d", 30), info("b", 20)];
        let r = Retention::keep_last(2).unwrap();
        let ids: Vec<&str> = r.expired(&backups).iter().map(|b| b.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert!(
            Retention::keep_last(4)
                .unwrap()
                .expired(&backups)
                .is_empty()
        );
        assert!(Retention::keep_last(9).unwrap().expired(&[]).is_empty());
        for n in [0, 1] {
            let err = Retention::keep_last(n).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "invalid retention.keepLast `{n}`: must be at least 2: a rollback takes a \
                     fresh backup before it restores the one taken before the deployment, and \
                     keeping one would delete the backup it restores"
                )
            );
        }
    }

    /// The ids of `service`'s backups that `p` still holds.
    async fn listed(p: &InMemoryBackup, service: &str) -> Vec<String> {
        let backups = p.list(service).await.unwrap();
        backups.into_iter().map(|b| b.id).collect()
    }

    #[tokio::test]
    async fn enforce_deletes_through_the_provider() {
        let p = InMemoryBackup::new();
        let mut ids = Vec::new();
        for i in 0..4 {
            ids.push(p.backup("web", &format!("v{i}")).await.unwrap());
        }
        p.backup("api", "other").await.unwrap();
        let deleted = Retention::keep_last(2)
            .unwrap()
            .enforce(&p, "web")
            .await
            .unwrap();
        assert_eq!(deleted, ids[..2].to_vec());
        let left = listed(&p, "web").await;
        assert_eq!(left, ids[2..].to_vec());
        assert_eq!(p.list("api").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn the_in_memory_provider_enforces_its_retention_after_each_backup() {
        let keep = Retention::keep_last(2).unwrap();
        let p = InMemoryBackup::new().with_retention(keep);
        assert_eq!(p.retention(), Some(keep));
        let mut ids = Vec::new();
        for i in 0..3 {
            ids.push(p.backup("web", &format!("v{i}")).await.unwrap());
        }
        p.backup("api", "other").await.unwrap();
        let left = listed(&p, "web").await;
        assert_eq!(left, ids[1..].to_vec());
        assert_eq!(InMemoryBackup::new().retention(), None);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use serin_signals::Timestamp;

    proptest! {
        #[test]
        fn expired_and_kept_partition_the_backups(
            times in proptest::collection::vec(0u64..50, 0..20),
            keep in 2usize..8,
        ) {
            let backups: Vec<BackupInfo> = times
                .iter()
                .enumerate()
                .map(|(i, t)| BackupInfo::new(format!("b{i:02}"), "web", "x", Timestamp::from_millis(*t)))
                .collect();
            let expired = Retention::keep_last(keep).unwrap().expired(&backups);
            prop_assert_eq!(expired.len(), backups.len().saturating_sub(keep));
            // Every kept backup is at least as new as every expired one.
            for e in &expired {
                for k in backups.iter().filter(|b| !expired.iter().any(|x| x.id == b.id)) {
                    prop_assert!((e.created_at, &e.id) < (k.created_at, &k.id));
                }
            }
        }
    }
}
