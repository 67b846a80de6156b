//! The conformance suite for [`BackupProvider`] implementations (feature `testkit`).
//!
//! Each check starts from a service with no backups, panics with a message on the first
//! violation, and leaves the backups it took deleted. Run them on a provider without
//! retention (retention would delete the backups the checks look for). The state the provider
//! protects is reached through [`BackedUpState`]; a provider that protects nothing real (the
//! in-memory one) passes `None`, and the restore check then only checks the bookkeeping.
//!
//! ```
//! # #[cfg(feature = "testkit")] {
//! use serin_orchestrator::InMemoryBackup;
//! use serin_orchestrator::backup::testkit;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! testkit::check_backup_provider(&InMemoryBackup::new(), "web", None).await;
//! # });
//! # }
//! ```

use async_trait::async_trait;

use crate::error::Error;
use crate::hooks::BackupProvider;

/// The PostgreSQL server that `SERIN_TEST_POSTGRES` names (a connection string, as
/// `scripts/services/postgres.sh` prints it), or `None` once `test` has said on stderr that it
/// is skipped: tests that need a real server skip, and say so, where none is given.
#[cfg(feature = "backup")]
pub fn postgres_from_env(test: &str) -> Option<crate::backup::PostgresConnection> {
    use std::io::Write as _;
    match std::env::var("SERIN_TEST_POSTGRES") {
        Ok(conninfo) if !conninfo.trim().is_empty() => Some(
            crate::backup::PostgresConnection::from_conninfo(&conninfo)
                .expect("SERIN_TEST_POSTGRES is a connection string"),
        ),
        _ => {
            let _ = writeln!(
                std::io::stderr(),
                "skipped: {test} needs SERIN_TEST_POSTGRES (run scripts/services/postgres.sh)"
            );
            None
        }
    }
}

/// The state a provider backs up (a database, a directory), as seen by the suite: it can be
/// set to a state named by a marker and read back.
#[async_trait]
pub trait BackedUpState: Send + Sync {
    /// Puts the state into the one named `marker`, replacing what was there.
    async fn set(&self, marker: &str);

    /// The marker of the current state.
    async fn get(&self) -> String;
}

/// An id no provider hands out.
const UNKNOWN: &str = "no-such-backup-0";

/// Runs every check on `provider` for `service` (which must have no backups yet), after
/// putting `state` (if any) into a first state.
pub async fn check_backup_provider(
    provider: &dyn BackupProvider,
    service: &str,
    state: Option<&dyn BackedUpState>,
) {
    if let Some(s) = state {
        s.set("zero").await;
    }
    check_backup_and_describe(provider, service).await;
    check_unknown_ids(provider).await;
    check_restore(provider, service, state).await;
    check_delete(provider, service).await;
    assert!(
        provider.list(service).await.is_ok_and(|l| l.is_empty()),
        "testkit: the checks leave no backup of `{service}` behind"
    );
}

fn name(p: &dyn BackupProvider) -> String {
    p.name().to_owned()
}

async fn ids(provider: &dyn BackupProvider, service: &str) -> Vec<String> {
    match provider.list(service).await {
        Ok(list) => list.into_iter().map(|b| b.id).collect(),
        Err(e) => panic!("testkit {}: list({service}) failed: {e}", name(provider)),
    }
}

async fn take(provider: &dyn BackupProvider, service: &str, label: &str) -> String {
    match provider.backup(service, label).await {
        Ok(id) => id,
        Err(e) => panic!(
            "testkit {}: backup({service}, {label}) failed: {e}",
            name(provider)
        ),
    }
}

async fn delete(provider: &dyn BackupProvider, id: &str) {
    if let Err(e) = provider.delete(id).await {
        panic!("testkit {}: delete({id}) failed: {e}", name(provider));
    }
}

/// Two backups get distinct ids; `info` and `list` describe them (oldest first) and only for
/// their own service.
pub async fn check_backup_and_describe(provider: &dyn BackupProvider, service: &str) {
    let p = name(provider);
    assert!(
        ids(provider, service).await.is_empty(),
        "testkit {p}: `{service}` must start with no backups"
    );
    let first = take(provider, service, "before 1.0.0 -> 1.1.0").await;
    let second = take(provider, service, "before 1.1.0 -> 1.2.0").await;
    assert_ne!(first, second, "testkit {p}: two backups got the same id");

    let info = match provider.info(&first).await {
        Ok(info) => info,
        Err(e) => panic!("testkit {p}: info({first}) failed: {e}"),
    };
    assert_eq!(info.id, first, "testkit {p}: info names its backup");
    assert_eq!(info.service, service, "testkit {p}: info names the service");
    assert_eq!(
        info.label, "before 1.0.0 -> 1.1.0",
        "testkit {p}: info keeps the label"
    );
    let later = match provider.info(&second).await {
        Ok(info) => info,
        Err(e) => panic!("testkit {p}: info({second}) failed: {e}"),
    };
    assert!(
        later.created_at >= info.created_at,
        "testkit {p}: a later backup is not older ({} < {})",
        later.created_at.as_millis(),
        info.created_at.as_millis()
    );
    assert_eq!(
        ids(provider, service).await,
        vec![first.clone(), second.clone()],
        "testkit {p}: list is oldest first"
    );
    let other = format!("{service}-other");
    assert!(
        ids(provider, &other).await.is_empty(),
        "testkit {p}: another service's list does not show `{service}`'s backups"
    );
    delete(provider, &first).await;
    delete(provider, &second).await;
}

/// `info`, `restore` and `delete` of an id never handed out are [`Error::NotFound`].
pub async fn check_unknown_ids(provider: &dyn BackupProvider) {
    let p = name(provider);
    let found = provider.info(UNKNOWN).await;
    assert!(
        matches!(found, Err(Error::NotFound { .. })),
        "testkit {p}: info of an unknown id is NotFound, got {found:?}"
    );
    let restored = provider.restore(UNKNOWN).await;
    assert!(
        matches!(restored, Err(Error::NotFound { .. })),
        "testkit {p}: restore of an unknown id is NotFound, got {restored:?}"
    );
    let deleted = provider.delete(UNKNOWN).await;
    assert!(
        matches!(deleted, Err(Error::NotFound { .. })),
        "testkit {p}: delete of an unknown id is NotFound, got {deleted:?}"
    );
}

/// A restore brings back the state as it was at the backup, and can be repeated; restoring
/// an older backup after a newer one goes back further.
pub async fn check_restore(
    provider: &dyn BackupProvider,
    service: &str,
    state: Option<&dyn BackedUpState>,
) {
    let p = name(provider);
    if let Some(s) = state {
        s.set("one").await;
    }
    let one = take(provider, service, "state one").await;
    if let Some(s) = state {
        s.set("two").await;
    }
    let two = take(provider, service, "state two").await;
    if let Some(s) = state {
        s.set("three").await;
    }
    for (id, marker) in [(&one, "one"), (&one, "one"), (&two, "two")] {
        if let Err(e) = provider.restore(id).await {
            panic!("testkit {p}: restore({id}) failed: {e}");
        }
        if let Some(s) = state {
            assert_eq!(
                s.get().await,
                marker,
                "testkit {p}: restore({id}) brings back state `{marker}`"
            );
        }
    }
    assert_eq!(
        ids(provider, service).await,
        vec![one.clone(), two.clone()],
        "testkit {p}: a restore keeps the backup"
    );
    delete(provider, &one).await;
    delete(provider, &two).await;
}

/// A deleted backup is gone from `info`, `list` and `restore`, and cannot be deleted twice;
/// the other backups stay.
pub async fn check_delete(provider: &dyn BackupProvider, service: &str) {
    let p = name(provider);
    let gone = take(provider, service, "to delete").await;
    let kept = take(provider, service, "to keep").await;
    delete(provider, &gone).await;
    assert!(
        matches!(provider.info(&gone).await, Err(Error::NotFound { .. })),
        "testkit {p}: info of a deleted backup is NotFound"
    );
    assert!(
        matches!(provider.restore(&gone).await, Err(Error::NotFound { .. })),
        "testkit {p}: restore of a deleted backup is NotFound"
    );
    assert!(
        matches!(provider.delete(&gone).await, Err(Error::NotFound { .. })),
        "testkit {p}: a second delete is NotFound"
    );
    assert_eq!(
        ids(provider, service).await,
        vec![kept.clone()],
        "testkit {p}: deleting one backup keeps the others"
    );
    delete(provider, &kept).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::InMemoryBackup;

    #[tokio::test]
    async fn the_in_memory_provider_passes() {
        check_backup_provider(&InMemoryBackup::new(), "web", None).await;
    }

    /// A provider that forgets its backups at once must fail the suite.
    struct Forgetful;

    #[async_trait]
    impl BackupProvider for Forgetful {
        fn name(&self) -> &str {
            "forgetful"
        }
        async fn backup(&self, _service: &str, _label: &str) -> crate::Result<String> {
            Ok("same".into())
        }
        async fn restore(&self, id: &str) -> crate::Result<()> {
            Err(Error::not_found("backup", id))
        }
        async fn list(&self, _service: &str) -> crate::Result<Vec<crate::BackupInfo>> {
            Ok(Vec::new())
        }
    }

    #[tokio::test]
    #[should_panic(expected = "two backups got the same id")]
    async fn a_provider_reusing_ids_fails() {
        check_backup_provider(&Forgetful, "web", None).await;
    }

    #[tokio::test]
    async fn providers_without_a_catalog_say_so() {
        let err = Forgetful.info("x").await.unwrap_err();
        assert!(err.to_string().contains("keeps no catalog"), "{err}");
        assert!(Forgetful.delete("x").await.is_err());
    }
}
