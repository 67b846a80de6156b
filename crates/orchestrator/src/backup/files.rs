//! [`DirectorySnapshot`]: backups of a directory tree, for services with local state.

use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;

use super::catalog::{Catalog, check_id};
use super::retention::Retention;
use super::tree::{self, Manifest, TreeError};
use crate::error::{Error, Result};
use crate::hooks::{BackupCheck, BackupInfo, BackupProvider};
use crate::orchestrator::Clock;

/// The subject of the one check a snapshot records: the whole tree.
const TREE_CHECK: &str = "files";

/// Snapshots a directory tree into a store directory and restores it in place.
///
/// - **Backup** copies the tree (relative paths, permission bits, symbolic links kept as links)
///   into `<store>/<id>/tree`, hashing every file with SHA-256 as it is read, and writes the
///   per-file manifest to `<store>/<id>/manifest.json` and the metadata to `<store>/<id>.json`.
///   Sockets, FIFOs and devices are refused. Files written while the copy runs may be caught
///   half-way: stop writers first (or snapshot a directory the service only writes to
///   atomically).
/// - **Restore** copies the snapshot into a hidden sibling of the directory
///   (`.<name>.serin-restore-<id>`), verifies it against the manifest (every path, kind, mode,
///   size and SHA-256), and only then swaps it in with two renames: the current directory moves
///   aside, the restored one takes its name, and the old one is deleted. A verification that
///   fails changes nothing. Between the two renames (microseconds, same file system) the path
///   does not exist; a process that opens files by path at that instant sees them missing.
///
/// ```no_run
/// use serin_orchestrator::BackupProvider;
/// use serin_orchestrator::backup::{DirectorySnapshot, Retention};
///
/// # async fn demo() -> serin_orchestrator::Result<()> {
/// let snapshots = DirectorySnapshot::new("/var/lib/web", "/var/backups/web")?
///     .with_retention(Retention::keep_last(5)?);
/// let id = snapshots.backup("web", "before 1.2.0 -> 1.3.0").await?;
/// let info = snapshots.info(&id).await?;
/// println!("{} bytes in {:?}", info.size_bytes, info.duration);
/// snapshots.restore(&id).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct DirectorySnapshot {
    source: PathBuf,
    catalog: Catalog,
    clock: Clock,
    retention: Option<Retention>,
}

fn absolute(field: &str, path: &Path) -> Result<PathBuf> {
    if !path.is_absolute() {
        return Err(Error::invalid(
            field,
            path.display(),
            "must be an absolute path",
        ));
    }
    if path
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(Error::invalid(
            field,
            path.display(),
            "must not contain `.` or `..` components",
        ));
    }
    if path.file_name().is_none() {
        return Err(Error::invalid(
            field,
            path.display(),
            "must name a directory below the root",
        ));
    }
    Ok(path.to_owned())
}

impl DirectorySnapshot {
    /// Snapshots of the directory `source`, stored in `store`. Both must be absolute, and
    /// neither may contain the other (a snapshot would copy itself, or a restore replace the
    /// store).
    pub fn new(source: impl AsRef<Path>, store: impl AsRef<Path>) -> Result<Self> {
        let source = absolute("directorySnapshot.source", source.as_ref())?;
        let store = absolute("directorySnapshot.store", store.as_ref())?;
        if store.starts_with(&source) || source.starts_with(&store) {
            return Err(Error::invalid(
                "directorySnapshot.store",
                store.display(),
                format!(
                    "must be outside the snapshotted directory `{}` and not contain it",
                    source.display()
                ),
            ));
        }
        Ok(DirectorySnapshot {
            catalog: Catalog::new(
                store,
                "directory",
                format!("directory {}", source.display()),
            ),
            source,
            clock: Clock::system(),
            retention: None,
        })
    }

    /// Reads the time of each backup from `clock` (the system clock by default).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Keeps only the last backups of each service, deleting older ones after each backup.
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = Some(retention);
        self
    }

    /// The directory that is snapshotted and restored.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The directory snapshots are stored in.
    pub fn store(&self) -> &Path {
        self.catalog.dir()
    }

    fn failed(&self, doing: &str, e: impl std::fmt::Display) -> Error {
        Error::backend("backup", "directory", format!("{doing}: {e}"))
    }

    /// The sibling of the source named `.<name>.serin-<what>-<id>`.
    fn sibling(&self, what: &str, id: &str) -> PathBuf {
        let name = self
            .source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.source
            .with_file_name(format!(".{name}.serin-{what}-{id}"))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        doing: String,
        f: impl FnOnce() -> Result<T, TreeError> + Send + 'static,
    ) -> Result<T> {
        match tokio::task::spawn_blocking(f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.failed(&doing, e)),
            Err(e) => Err(self.failed(&doing, e)),
        }
    }

    async fn take(&self, id: &str) -> Result<(Manifest, std::time::Duration)> {
        let started = tokio::time::Instant::now();
        let data = self.catalog.data_path(id, "");
        tokio::fs::create_dir(&data)
            .await
            .map_err(|e| self.failed(&format!("cannot create `{}`", data.display()), e))?;
        let (from, to) = (self.source.clone(), data.join("tree"));
        let manifest = self
            .blocking(
                format!("cannot snapshot `{}`", self.source.display()),
                move || tree::copy_tree(&from, &to),
            )
            .await?;
        let path = data.join("manifest.json");
        let body = serde_json::to_vec(&manifest)
            .map_err(|e| self.failed("cannot encode the manifest", e))?;
        tokio::fs::write(&path, body)
            .await
            .map_err(|e| self.failed(&format!("cannot write `{}`", path.display()), e))?;
        Ok((manifest, started.elapsed()))
    }

    async fn remove_data(&self, id: &str) -> Result<()> {
        let data = self.catalog.data_path(id, "");
        self.blocking(format!("cannot remove `{}`", data.display()), move || {
            tree::remove_tree(&data)
        })
        .await
    }

    async fn manifest(&self, info: &BackupInfo) -> Result<Manifest> {
        let path = self.catalog.data_path(&info.id, "").join("manifest.json");
        let body = tokio::fs::read(&path)
            .await
            .map_err(|e| self.failed(&format!("cannot read `{}`", path.display()), e))?;
        let manifest: Manifest = serde_json::from_slice(&body).map_err(|e| {
            self.failed(
                &format!("the manifest `{}` is unreadable", path.display()),
                e,
            )
        })?;
        let recorded = info
            .checks
            .iter()
            .find(|c| c.subject == TREE_CHECK)
            .ok_or_else(|| {
                self.failed(
                    &format!("backup `{}` cannot be verified", info.id),
                    "its metadata records no check of the files",
                )
            })?;
        if recorded.checksum != manifest.digest() {
            return Err(self.failed(
                &format!("backup `{}` is damaged", info.id),
                format!(
                    "its manifest hashes to {}, the metadata recorded {}",
                    manifest.digest(),
                    recorded.checksum
                ),
            ));
        }
        Ok(manifest)
    }
}

#[async_trait]
impl BackupProvider for DirectorySnapshot {
    fn name(&self) -> &str {
        "directory"
    }

    async fn backup(&self, service: &str, label: &str) -> Result<String> {
        let created_at = self.clock.now();
        let id = self.catalog.claim(service, created_at).await?;
        let taken = match self.take(&id).await {
            Ok(taken) => taken,
            Err(e) => {
                // Best effort: the error that matters is the one that stopped the backup.
                let _ = self.remove_data(&id).await;
                self.catalog.release(&id).await;
                return Err(e);
            }
        };
        let (manifest, duration) = taken;
        let info = self
            .catalog
            .info(&id, service, label, created_at)
            .with_size(manifest.size())
            .with_duration(duration)
            .with_checks(vec![BackupCheck::new(
                TREE_CHECK,
                manifest.entries.len() as u64,
                manifest.digest(),
            )]);
        if let Err(e) = self.catalog.commit(&info).await {
            let _ = self.remove_data(&id).await;
            self.catalog.release(&id).await;
            return Err(e);
        }
        tracing::info!(
            backup = %id, service, bytes = info.size_bytes, ?duration,
            "directory snapshot taken of {}", self.source.display()
        );
        if let Some(retention) = self.retention
            && let Err(e) = retention.enforce(self, service).await
        {
            tracing::warn!(service, "retention of directory snapshots failed: {e}");
        }
        Ok(id)
    }

    async fn restore(&self, id: &str) -> Result<()> {
        let info = self.catalog.read(id).await?;
        let expected = self.manifest(&info).await?;
        let staging = self.sibling("restore", id);
        let aside = self.sibling("old", id);
        for leftover in [&staging, &aside] {
            let path = leftover.clone();
            self.blocking(
                format!("cannot remove `{}`", leftover.display()),
                move || tree::remove_tree(&path),
            )
            .await?;
        }
        let (from, to) = (self.catalog.data_path(id, "").join("tree"), staging.clone());
        let restored = self
            .blocking(
                format!("cannot restore backup `{id}` into `{}`", staging.display()),
                move || tree::copy_tree(&from, &to),
            )
            .await;
        let differences = match &restored {
            Ok(restored) => expected.differences(restored, 5),
            Err(_) => Vec::new(),
        };
        if restored.is_err() || !differences.is_empty() {
            let path = staging.clone();
            let _ = self
                .blocking(String::new(), move || tree::remove_tree(&path))
                .await;
            restored?;
            return Err(self.failed(
                &format!(
                    "restore of backup `{id}` did not verify; `{}` was left unchanged",
                    self.source.display()
                ),
                differences.join("; "),
            ));
        }
        let had_source = tokio::fs::symlink_metadata(&self.source).await.is_ok();
        if had_source {
            tokio::fs::rename(&self.source, &aside).await.map_err(|e| {
                self.failed(&format!("cannot move `{}` aside", self.source.display()), e)
            })?;
        }
        if let Err(e) = tokio::fs::rename(&staging, &self.source).await {
            if had_source {
                let _ = tokio::fs::rename(&aside, &self.source).await;
            }
            return Err(self.failed(
                &format!(
                    "cannot move the restored tree to `{}`",
                    self.source.display()
                ),
                e,
            ));
        }
        if had_source {
            let path = aside.clone();
            if let Err(e) = self
                .blocking(format!("cannot remove `{}`", aside.display()), move || {
                    tree::remove_tree(&path)
                })
                .await
            {
                tracing::warn!(backup = %id, "restored, but the replaced tree stays: {e}");
            }
        }
        tracing::info!(backup = %id, "restored `{}`", self.source.display());
        Ok(())
    }

    async fn info(&self, id: &str) -> Result<BackupInfo> {
        self.catalog.read(id).await
    }

    fn retention(&self) -> Option<Retention> {
        self.retention
    }

    async fn list(&self, service: &str) -> Result<Vec<BackupInfo>> {
        self.catalog.list(service).await
    }

    async fn delete(&self, id: &str) -> Result<()> {
        check_id(id)?;
        // Make sure it exists before removing anything.
        self.catalog.read(id).await?;
        self.remove_data(id).await?;
        self.catalog.remove(id).await
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::{PermissionsExt, symlink};

    use serin_signals::Timestamp;

    use super::*;
    use crate::backup::testkit::{self, BackedUpState};

    struct Dir(PathBuf);

    #[async_trait]
    impl BackedUpState for Dir {
        async fn set(&self, marker: &str) {
            let _ = fs::remove_dir_all(&self.0);
            fs::create_dir_all(self.0.join("sub")).unwrap();
            fs::write(self.0.join("sub/marker"), marker).unwrap();
            symlink("sub/marker", self.0.join("link")).unwrap();
        }

        async fn get(&self) -> String {
            assert_eq!(
                fs::read_link(self.0.join("link")).unwrap(),
                PathBuf::from("sub/marker")
            );
            fs::read_to_string(self.0.join("sub/marker")).unwrap()
        }
    }

    fn setup() -> (tempfile::TempDir, DirectorySnapshot) {
        let tmp = tempfile::tempdir().unwrap();
        let p = DirectorySnapshot::new(tmp.path().join("state"), tmp.path().join("store"))
            .unwrap()
            .with_clock(Clock::starting_at(Timestamp::from_millis(
                1_700_000_000_000,
            )));
        (tmp, p)
    }

    #[tokio::test]
    async fn passes_the_conformance_suite() {
        let (tmp, p) = setup();
        let state = Dir(tmp.path().join("state"));
        testkit::check_backup_provider(&p, "web", Some(&state)).await;
    }

    #[tokio::test]
    async fn paths_must_be_absolute_and_apart() {
        let err = DirectorySnapshot::new("state", "/store").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid directorySnapshot.source `state`: must be an absolute path"
        );
        let err = DirectorySnapshot::new("/srv/state", "/srv/state/backups").unwrap_err();
        assert!(err.to_string().contains("directorySnapshot.store"), "{err}");
        assert!(DirectorySnapshot::new("/srv/state", "/srv").is_err());
        assert!(DirectorySnapshot::new("/srv/../state", "/b").is_err());
        assert!(DirectorySnapshot::new("/", "/b").is_err());
    }

    #[tokio::test]
    async fn a_damaged_snapshot_fails_verification_and_changes_nothing() {
        let (tmp, p) = setup();
        let state = tmp.path().join("state");
        fs::create_dir_all(&state).unwrap();
        fs::write(state.join("db"), b"v1").unwrap();
        let id = p.backup("web", "v1").await.unwrap();
        let info = p.info(&id).await.unwrap();
        assert_eq!(info.size_bytes, 2);
        assert_eq!(info.checks.len(), 1);
        assert_eq!(info.checks[0].count, 2, "the root and one file");

        fs::write(state.join("db"), b"v2").unwrap();
        // Someone edits the stored copy: the restore must notice and leave the state alone.
        let stored = p.store().join(&id).join("tree/db");
        fs::write(&stored, b"XX").unwrap();
        let err = p.restore(&id).await.unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("did not verify"), "{msg}");
        assert!(msg.contains("`db` differs"), "{msg}");
        assert_eq!(fs::read(state.join("db")).unwrap(), b"v2");
        let leftovers: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[tokio::test]
    async fn a_tampered_manifest_is_refused() {
        let (tmp, p) = setup();
        fs::create_dir_all(tmp.path().join("state")).unwrap();
        let id = p.backup("web", "v1").await.unwrap();
        let manifest = p.store().join(&id).join("manifest.json");
        fs::write(&manifest, br#"{"entries":[]}"#).unwrap();
        let err = p.restore(&id).await.unwrap_err();
        assert!(err.to_string().contains("is damaged"), "{err}");
    }

    #[tokio::test]
    async fn restore_recreates_a_deleted_directory_with_its_modes() {
        let (tmp, p) = setup();
        let state = tmp.path().join("state");
        fs::create_dir_all(state.join("ro")).unwrap();
        fs::write(state.join("ro/f"), b"x").unwrap();
        fs::set_permissions(state.join("ro/f"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(state.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
        let id = p.backup("web", "v1").await.unwrap();
        tree::remove_tree(&state).unwrap();
        p.restore(&id).await.unwrap();
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&state.join("ro")), 0o555);
        assert_eq!(mode(&state.join("ro/f")), 0o600);
        // A read-only tree can still be replaced and deleted.
        p.restore(&id).await.unwrap();
        p.delete(&id).await.unwrap();
        assert!(!p.store().join(&id).exists());
    }

    #[tokio::test]
    async fn a_failed_backup_leaves_nothing_behind() {
        let (tmp, p) = setup();
        let err = p.backup("web", "v1").await.unwrap_err();
        assert!(err.to_string().contains("cannot snapshot"), "{err}");
        assert!(p.list("web").await.unwrap().is_empty());
        let left: Vec<_> = fs::read_dir(tmp.path().join("store"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[tokio::test]
    async fn retention_keeps_the_last_n() {
        let (tmp, p) = setup();
        let p = p.with_retention(Retention::keep_last(2).unwrap());
        fs::create_dir_all(tmp.path().join("state")).unwrap();
        let mut ids = Vec::new();
        for i in 0..4 {
            ids.push(p.backup("web", &format!("v{i}")).await.unwrap());
        }
        let left: Vec<String> = p
            .list("web")
            .await
            .unwrap()
            .into_iter()
            .map(|b| b.id)
            .collect();
        assert_eq!(left, ids[2..].to_vec());
        assert!(!p.store().join(&ids[0]).exists());
    }

    #[tokio::test]
    async fn snapshots_of_two_directories_in_one_store_stay_apart() {
        let tmp = tempfile::tempdir().unwrap();
        let (uploads, state, store) = (
            tmp.path().join("uploads"),
            tmp.path().join("state"),
            tmp.path().join("store"),
        );
        let keep_two = Retention::keep_last(2).unwrap();
        let a = DirectorySnapshot::new(&uploads, &store)
            .unwrap()
            .with_retention(keep_two);
        let b = DirectorySnapshot::new(&state, &store)
            .unwrap()
            .with_retention(keep_two);
        fs::create_dir_all(&uploads).unwrap();
        fs::write(uploads.join("f"), "uploads").unwrap();
        fs::create_dir_all(&state).unwrap();
        fs::write(state.join("f"), "state").unwrap();
        let first = a.backup("web", "a").await.unwrap();
        let of_a = a.backup("web", "a").await.unwrap();
        // The second directory's retention keeps two backups: of its own, not the other's.
        let of_b = b.backup("web", "b").await.unwrap();
        let ids = |list: Vec<BackupInfo>| list.into_iter().map(|i| i.id).collect::<Vec<_>>();
        assert_eq!(
            ids(a.list("web").await.unwrap()),
            [first.clone(), of_a.clone()]
        );
        assert_eq!(ids(b.list("web").await.unwrap()), [of_b]);
        assert!(store.join(&first).exists());
        assert!(store.join(&of_a).exists());
        // Neither restores nor deletes the other's backup.
        let err = b.restore(&of_a).await.unwrap_err().to_string();
        assert!(err.contains("not of directory"), "{err}");
        assert_eq!(fs::read_to_string(state.join("f")).unwrap(), "state");
        assert!(b.delete(&of_a).await.is_err());
        assert!(store.join(&of_a).exists());
        a.restore(&of_a).await.unwrap();
        assert_eq!(fs::read_to_string(uploads.join("f")).unwrap(), "uploads");
    }
}
