//! [`DirectorySnapshot`]: backups of a directory tree, for services with local state.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;

use super::catalog::{
    Catalog, HeldLock, RestoreMark, Work, check_id, check_service, finish_interrupted_deletes,
    sweep_quietly,
};
use super::durable;
use super::retention::Retention;
use super::tree::{self, Manifest, TreeError};
use crate::error::{Error, Result};
use crate::hooks::{BackupCheck, BackupInfo, BackupProvider};
use crate::orchestrator::Clock;

/// Refuses a `source` that is a mount point (a volume of its own): a restore swaps the tree in
/// by renaming the directory, which a mount point cannot be (`EBUSY`), so its backups could be
/// taken but never restored. A directory inside the volume can be.
fn refuse_mount_point(source: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        let (Some(parent), Ok(own)) = (source.parent(), std::fs::metadata(source)) else {
            return Ok(());
        };
        if let Ok(above) = std::fs::metadata(parent)
            && above.dev() != own.dev()
        {
            return Err(Error::invalid(
                "directorySnapshot.source",
                source.display(),
                "is a mount point (a file system of its own), which a restore cannot rename \
                 aside to swap the restored tree in: snapshot a directory inside it",
            ));
        }
    }
    Ok(())
}

/// The subject of the one check a snapshot records: the whole tree.
const TREE_CHECK: &str = "files";

/// Snapshots a directory tree into a store directory and restores it in place.
///
/// - **Backup** copies the tree (relative paths, permission bits, symbolic links kept as links)
///   into `<store>/<id>/tree`, hashing every file with SHA-256 as it is read, and writes the
///   per-file manifest to `<store>/<id>/manifest.json` and the metadata to `<store>/<id>.json`.
///   Everything is synced before the metadata is written, so a backup reported taken
///   survives a power loss. Sockets, FIFOs and devices are refused. Files written while the
///   copy runs may be caught half-way: stop writers first (or snapshot a directory the service
///   only writes to atomically). A backup that is cancelled (its future dropped, say by a
///   timeout) stops copying and leaves nothing behind: the drop waits until the copy has
///   stopped and the partial snapshot is removed.
/// - **Restore** copies the snapshot into a hidden sibling of the directory
///   (`.<name>.serin-restore-<id>`), verifies it against the manifest (every path, kind, mode,
///   size and SHA-256), syncs it, and only then swaps it in with two renames: the current
///   directory moves aside, the restored one takes its name, and the old one is deleted. A
///   verification that fails changes nothing. Between the two renames (microseconds, same file
///   system) the path does not exist; a process that opens files by path at that instant sees
///   them missing. A restore cancelled before the swap changes nothing (its copy is removed);
///   once the swap has begun it runs to its end, so the directory is never left missing.
/// - **One at a time**: a restore holds a locked marker in the store, and an exclusive lock on
///   the file `.<name>.serin-restore.lock` beside the directory (left there, empty), so two
///   restores of one directory never run at once, through one store or through two (whose
///   ids, and so the names of their copies beside the directory, may be the same): the
///   second fails, changing nothing.
/// - **Killed restore**: a process killed during a restore leaves the marker unlocked, and
///   perhaps the copy, the
///   replaced tree, or, between the two renames, the directory moved aside. The next
///   restore, or [`sweep`](Self::sweep), puts the directory back in one piece: a directory
///   moved aside is moved back (the restore is undone: it was never reported done, and the
///   caller retries it from a known state), the copy is removed, and a replaced tree that was
///   not yet removed is (the swap was done). It never touches a restore another process is
///   running (its marker locked).
/// - **Delete** removes the metadata first, then the snapshot (see the catalog layout in
///   [`backup`](crate::backup)): a listed backup always has its data.
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
    /// store). `source` may not be a mount point, which a restore could not rename aside:
    /// name a directory inside the volume instead.
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
        refuse_mount_point(&source)?;
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
        failed(doing, e)
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

    /// Takes the restore lock of the source: an exclusive `flock` on the file
    /// `.<name>.serin-restore.lock` beside it, held until the returned file is dropped. The
    /// store's marker keeps apart the restores of one store; this keeps apart those of every
    /// store of the directory (two deployments with stores of their own), which would
    /// otherwise swap trees in at once, or settle, move back and remove what another's
    /// restore is swapping in (its sibling names are made of its backup's id, and ids are
    /// unique per store only). The lock is beside the source, not in a store, so that every
    /// store sees it; the kernel lets go of it when its holder dies, however it dies, so the
    /// file is left in place (removing it would let two holders lock two files). Fails at
    /// once, changing nothing, while another restore holds it (blocking).
    fn lock_restores(&self) -> Result<HeldLock> {
        let name = self
            .source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let path = self
            .source
            .with_file_name(format!(".{name}.serin-restore.lock"));
        let doing = format!("cannot restore `{}`", self.source.display());
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| failed(&format!("{doing}: cannot open `{}`", path.display()), e))?;
        match file.try_lock() {
            Ok(()) => Ok(HeldLock::new(file)),
            Err(std::fs::TryLockError::WouldBlock) => Err(failed(
                &doing,
                format!(
                    "another restore of it is running (through another backup store, or \
                     another process) and holds its restore lock `{}`; try again once it has \
                     finished",
                    path.display()
                ),
            )),
            Err(std::fs::TryLockError::Error(e)) => Err(failed(
                &format!("{doing}: cannot lock `{}`", path.display()),
                e,
            )),
        }
    }

    /// Runs `f` on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        doing: &str,
        f: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        tokio::task::spawn_blocking(f)
            .await
            .unwrap_or_else(|e| Err(self.failed(doing, e)))
    }

    /// Snapshots the source into `data` as `work`; a snapshot that fails or is cancelled
    /// removes what it wrote.
    async fn take(&self, data: PathBuf, work: Work) -> Result<(Manifest, std::time::Duration)> {
        let started = tokio::time::Instant::now();
        let doing = format!("cannot snapshot `{}`", self.source.display());
        let source = self.source.clone();
        let manifest = self
            .blocking(&doing.clone(), move || {
                let _busy = work.busy();
                let taken = snapshot(&source, &data, work.cancelled());
                if taken.is_err() {
                    // Best effort: the error that matters is the one that stopped the backup.
                    let _ = tree::remove_tree(&data);
                }
                taken.map_err(|e| failed(&doing, e))
            })
            .await?;
        Ok((manifest, started.elapsed()))
    }

    /// Removes the partial snapshots of backups whose process is gone (killed while they
    /// copied), puts the directory back in one piece after a restore whose process is gone
    /// (see the restore above), and answers how many of them there were. Safe beside backups
    /// and restores that other processes are running: only a claim or marker whose owner is
    /// gone is swept (its lock released by the kernel when its process ended; see the store
    /// layout in [`backup`](crate::backup)). Also run, best effort, before every backup and
    /// after every delete; every restore first puts back what a restore whose process is gone
    /// left.
    pub async fn sweep(&self) -> Result<usize> {
        let mut swept = 0;
        for abandoned in self.catalog.abandoned().await? {
            self.remove_data(abandoned.id()).await?;
            self.catalog.forget(abandoned).await?;
            swept += 1;
        }
        if let Some(mut mark) = self.catalog.interrupted_restore().await? {
            // Never while a restore of the directory runs through another store.
            let this = self.clone();
            let lock = self
                .blocking("cannot sweep", move || this.lock_restores())
                .await;
            match lock {
                Ok(lock) => self.put_back(mark, Arc::new(lock)).await?,
                Err(e) => {
                    mark.leave_to_sweep();
                    return Err(e);
                }
            }
            swept += 1;
        }
        Ok(swept)
    }

    /// The restore of backup `id` into the source.
    fn restore_of(&self, id: &str) -> Restore {
        Restore {
            source: self.source.clone(),
            stored: self.catalog.data_path(id, "").join("tree"),
            staging: self.sibling("restore", id),
            aside: self.sibling("old", id),
            id: id.to_owned(),
        }
    }

    /// Puts back what the restore of `mark`, whose process is gone, left (see
    /// [`Restore::settle`]), then removes the marker; one that cannot be put back now keeps
    /// its marker for the next sweep. `lock` is the source's [restore
    /// lock](Self::lock_restores), held until then.
    async fn put_back(&self, mut mark: RestoreMark, lock: Arc<HeldLock>) -> Result<()> {
        let restore = self.restore_of(mark.id());
        let doing = format!("cannot sweep the interrupted restore of `{}`", mark.id());
        self.blocking(&doing, move || {
            let settled = restore.settle();
            match &settled {
                Ok(()) => tracing::info!(backup = %restore.id, "put back what a restore whose process is gone left"),
                Err(_) => mark.leave_to_sweep(),
            }
            drop(mark);
            drop(lock);
            settled
        })
        .await
    }

    async fn remove_data(&self, id: &str) -> Result<()> {
        let data = self.catalog.data_path(id, "");
        let doing = format!("cannot remove `{}`", data.display());
        self.blocking(&doing.clone(), move || {
            tree::remove_tree(&data).map_err(|e| failed(&doing, e))
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
        // A name that is refused changes nothing, not even what a sweep would.
        check_service(service)?;
        // What killed backups and restores left is swept first, not once this backup is
        // listed: a cancellation during the sweep then loses no backup whose id the caller
        // never received.
        sweep_quietly(self.sweep().await);
        let created_at = self.clock.now();
        let mut claim = self.catalog.claim(service, created_at).await?;
        let id = claim.id().to_owned();
        let data = self.catalog.data_path(&id, "");
        claim.remove_on_drop(data.clone());
        // An error or a cancellation from here on drops the claim, which removes the data.
        let (manifest, duration) = self.take(data, claim.work()).await?;
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
        self.catalog.commit(&info, claim).await?;
        tracing::info!(
            backup = %id, service, bytes = info.size_bytes, ?duration,
            "directory snapshot taken of {}", self.source.display()
        );
        finish_interrupted_deletes(&self.catalog, self, service).await;
        if let Some(retention) = self.retention
            && let Err(e) = retention.enforce_after(self, service, &id).await
        {
            tracing::warn!(service, "retention of directory snapshots failed: {e}");
        }
        Ok(id)
    }

    async fn restore(&self, id: &str) -> Result<()> {
        let info = self.catalog.read(id).await?;
        let expected = self.manifest(&info).await?;
        // Held on the blocking thread until the restore's work there is over, even if this
        // future is dropped first (the settling after a cancelled copy goes on there).
        let this = self.clone();
        let lock = Arc::new(
            self.blocking("cannot restore", move || this.lock_restores())
                .await?,
        );
        // A restore of this directory that was killed is put back first.
        if let Some(mark) = self.catalog.interrupted_restore().await? {
            self.put_back(mark, Arc::clone(&lock)).await?;
        }
        let mut mark = self.catalog.begin_restore(id, false).await?;
        let restore = self.restore_of(id);
        let work = Work::default();
        // Dropped (the restore cancelled), it stops the copy, or waits for a swap that began.
        let _stop = StopOnDrop(work.clone());
        self.blocking(&format!("cannot restore backup `{id}`"), move || {
            let ran = {
                let _busy = work.busy();
                restore.run(&expected, work.cancelled())
            };
            // Whatever happened, the directory is whole: the replaced tree (no longer needed,
            // however long it takes to remove) and any copy go. What cannot be put back or
            // removed now is the next sweep's, which finds the marker.
            if let Err(e) = restore.settle() {
                tracing::warn!(backup = %restore.id, "restore left work to the next sweep: {e}");
                mark.leave_to_sweep();
            }
            drop(mark);
            drop(lock);
            ran
        })
        .await?;
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
        let info = self.catalog.start_delete(id).await?;
        self.remove_data(id)
            .await
            .map_err(|e| self.catalog.unlisted_but_kept(&info, e))?;
        self.catalog.finish_delete(id).await?;
        sweep_quietly(self.sweep().await);
        Ok(())
    }
}

/// The error of a backup `failed` at `doing`.
fn failed(doing: &str, e: impl std::fmt::Display) -> Error {
    Error::backend("backup", "directory", format!("{doing}: {e}"))
}

/// Snapshots `source` into `data` (which must not exist): the tree, then its manifest, all
/// synced. Nothing is written once `cancelled` is set.
fn snapshot(source: &Path, data: &Path, cancelled: &AtomicBool) -> Result<Manifest, TreeError> {
    let at = |path: &Path| {
        let path = path.to_owned();
        move |e: std::io::Error| TreeError {
            path,
            reason: e.to_string(),
        }
    };
    if cancelled.load(Ordering::Relaxed) {
        return Err(TreeError {
            path: data.to_owned(),
            reason: "the snapshot was cancelled".into(),
        });
    }
    std::fs::create_dir(data).map_err(at(data))?;
    let manifest = tree::copy_tree(source, &data.join("tree"), cancelled)?;
    let path = data.join("manifest.json");
    let body = serde_json::to_vec(&manifest).map_err(|e| TreeError {
        path: path.clone(),
        reason: format!("cannot encode the manifest: {e}"),
    })?;
    std::fs::write(&path, body).map_err(at(&path))?;
    durable::sync_file_blocking(&path).map_err(at(&path))?;
    durable::sync_dir_blocking(data).map_err(at(data))?;
    Ok(manifest)
}

/// One restore of a snapshot, run on a blocking thread.
struct Restore {
    source: PathBuf,
    stored: PathBuf,
    staging: PathBuf,
    aside: PathBuf,
    id: String,
}

impl Restore {
    /// Copies the stored tree beside the source, verifies the copy against `expected` and
    /// syncs it, then swaps it in, unless `cancelled` was set before the swap began. The
    /// replaced tree is left aside, for [`settle`](Self::settle).
    fn run(&self, expected: &Manifest, cancelled: &AtomicBool) -> Result<()> {
        let (id, source, staging) = (&self.id, &self.source, &self.staging);
        // Leftovers of an earlier restore of this backup, put back, never removed, if the
        // source is missing.
        self.settle()?;
        let restored = tree::copy_tree(&self.stored, staging, cancelled);
        let differences = match &restored {
            Ok(restored) => expected.differences(restored, 5),
            Err(_) => Vec::new(),
        };
        if restored.is_err() || !differences.is_empty() {
            let _ = tree::remove_tree(staging);
            restored.map_err(|e| {
                failed(
                    &format!("cannot restore backup `{id}` into `{}`", staging.display()),
                    e,
                )
            })?;
            return Err(failed(
                &format!(
                    "restore of backup `{id}` did not verify; `{}` was left unchanged",
                    source.display()
                ),
                differences.join("; "),
            ));
        }
        let parent = source.parent().unwrap_or(Path::new("/"));
        let sync_parent = || {
            durable::sync_dir_blocking(parent)
                .map_err(|e| failed(&format!("cannot sync `{}`", parent.display()), e))
        };
        // The copy is on disk, its name too, before it replaces anything.
        if let Err(e) = sync_parent() {
            let _ = tree::remove_tree(staging);
            return Err(e);
        }
        if cancelled.load(Ordering::Relaxed) {
            let _ = tree::remove_tree(staging);
            return Err(failed(
                &format!("restore of backup `{id}` was cancelled"),
                format!("`{}` was left unchanged", source.display()),
            ));
        }
        // From here on the swap runs to its end, cancelled or not.
        let had_source = std::fs::symlink_metadata(source).is_ok();
        if had_source && let Err(e) = std::fs::rename(source, &self.aside) {
            let _ = tree::remove_tree(staging);
            return Err(failed(
                &format!("cannot move `{}` aside", source.display()),
                e,
            ));
        }
        if let Err(e) = std::fs::rename(staging, source) {
            if had_source {
                let _ = std::fs::rename(&self.aside, source);
            }
            let _ = tree::remove_tree(staging);
            return Err(failed(
                &format!("cannot move the restored tree to `{}`", source.display()),
                e,
            ));
        }
        sync_parent()?;
        Ok(())
    }

    /// Puts the source back in one piece after this restore, wherever it stopped (killed,
    /// failed or done): if the source is missing and its replaced tree is aside (a kill
    /// between the two renames), the tree is moved back, undoing the restore, which was never
    /// reported done; then the copy and a replaced tree that is aside beside a whole source
    /// (the swap was done) are removed. Never leaves the source missing where it was not.
    fn settle(&self) -> Result<()> {
        let (source, aside) = (&self.source, &self.aside);
        let missing = |path: &Path| match std::fs::symlink_metadata(path) {
            Ok(_) => Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(failed(&format!("cannot read `{}`", path.display()), e)),
        };
        if missing(source)? && !missing(aside)? {
            std::fs::rename(aside, source).map_err(|e| {
                failed(
                    &format!(
                        "cannot move `{}` back to `{}`",
                        aside.display(),
                        source.display()
                    ),
                    e,
                )
            })?;
            let parent = source.parent().unwrap_or(Path::new("/"));
            durable::sync_dir_blocking(parent)
                .map_err(|e| failed(&format!("cannot sync `{}`", parent.display()), e))?;
            tracing::warn!(
                backup = %self.id,
                "an interrupted restore left `{}` moved aside; it was moved back",
                source.display()
            );
        }
        for leftover in [&self.staging, aside] {
            tree::remove_tree(leftover)
                .map_err(|e| failed(&format!("cannot remove `{}`", leftover.display()), e))?;
        }
        Ok(())
    }
}

/// Stops blocking work when dropped: a restore cancelled at its `.await`.
struct StopOnDrop(Work);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _stopped = self.0.stop();
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::{PermissionsExt, symlink};

    use serin_signals::Timestamp;

    use super::*;
    use crate::backup::testkit::{self, BackedUpState};

    #[cfg(target_os = "linux")]
    #[test]
    fn a_mount_point_is_refused_as_a_source_and_a_directory_inside_one_is_not() {
        // `/proc` is a file system of its own on every Linux.
        let err = refuse_mount_point(Path::new("/proc"))
            .expect_err("a mount point")
            .to_string();
        assert!(
            err.contains("directorySnapshot.source") && err.contains("mount point"),
            "{err}"
        );
        refuse_mount_point(Path::new("/proc/self")).expect("inside it");
        let dir = tempfile::tempdir().expect("tempdir");
        refuse_mount_point(dir.path()).expect("a plain directory");
    }

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

    /// Polls `fut` until `stop()` holds before a poll, then drops it (a cancellation at an
    /// `.await`); answers whether it was dropped before it finished.
    async fn cancel_when<F: std::future::Future>(fut: F, mut stop: impl FnMut() -> bool) -> bool {
        let mut fut = std::pin::pin!(fut);
        loop {
            if stop() {
                return true;
            }
            let polled =
                std::future::poll_fn(|cx| std::task::Poll::Ready(fut.as_mut().poll(cx))).await;
            if polled.is_ready() {
                return false;
            }
            tokio::task::yield_now().await;
        }
    }

    /// Many files of a few blocks each, so that a copy takes a while.
    fn many_files(dir: &Path, marker: &str) {
        fs::create_dir_all(dir.join("sub")).unwrap();
        for i in 0..200 {
            fs::write(dir.join(format!("sub/f{i}")), vec![b'x'; 70_000]).unwrap();
        }
        fs::write(dir.join("marker"), marker).unwrap();
    }

    fn names(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn a_snapshot_is_on_disk_before_its_metadata() {
        let (tmp, p) = setup();
        let state = tmp.path().join("state");
        fs::create_dir_all(state.join("a/b")).unwrap();
        fs::write(state.join("a/b/f"), b"x").unwrap();
        symlink("a/b/f", state.join("link")).unwrap();
        let id = p.backup("web", "v1").await.unwrap();
        let synced = durable::log::synced_under(tmp.path());
        let metadata = synced
            .iter()
            .position(|s| *s == p.store().join(format!("{id}.json.tmp")))
            .unwrap();
        let data = p.store().join(&id);
        let mut must = vec![p.store().to_owned(), data.join("manifest.json")];
        let mut dirs = vec![data.clone()];
        while let Some(dir) = dirs.pop() {
            must.push(dir.clone());
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let meta = fs::symlink_metadata(&path).unwrap();
                if meta.is_dir() {
                    dirs.push(path);
                } else if meta.is_file() {
                    must.push(path);
                }
            }
        }
        for path in must {
            let at = synced.iter().position(|s| *s == path);
            assert!(
                at.is_some_and(|at| at < metadata),
                "`{}` must be synced before the metadata: {synced:?}",
                path.display()
            );
        }
    }

    #[tokio::test]
    async fn a_backup_cancelled_half_way_leaves_nothing_behind() {
        let (tmp, p) = setup();
        many_files(&tmp.path().join("state"), "one");
        let store = p.store().to_owned();
        // Dropped once the copy has begun: the snapshot's directory exists.
        let copying = || {
            fs::read_dir(&store)
                .map(|mut d| d.any(|e| e.unwrap().path().is_dir()))
                .unwrap_or(false)
        };
        assert!(cancel_when(p.backup("web", "v1"), copying).await);
        assert!(names(&store).is_empty(), "{:?}", names(&store));
        assert!(p.list("web").await.unwrap().is_empty());
        // And the next backup takes the id back.
        let id = p.backup("web", "v1").await.unwrap();
        assert!(id.ends_with("-000"), "{id}");
    }

    #[tokio::test]
    async fn a_restore_cancelled_before_the_swap_changes_nothing() {
        let (tmp, p) = setup();
        let state = tmp.path().join("state");
        many_files(&state, "one");
        let id = p.backup("web", "v1").await.unwrap();
        fs::write(state.join("marker"), "two").unwrap();
        let staging = p.sibling("restore", &id);
        assert!(cancel_when(p.restore(&id), || staging.exists()).await);
        // Once the drop returns, the copy has stopped and is gone.
        let hidden: Vec<String> = names(tmp.path())
            .into_iter()
            .filter(|n| n.starts_with('.') && !is_restore_lock(n))
            .collect();
        assert!(hidden.is_empty(), "{hidden:?}");
        assert_eq!(fs::read_to_string(state.join("marker")).unwrap(), "two");
    }

    #[tokio::test]
    async fn a_restore_cancelled_during_the_swap_never_leaves_the_directory_missing() {
        let (tmp, p) = setup();
        let state = tmp.path().join("state");
        many_files(&state, "one");
        let id = p.backup("web", "v1").await.unwrap();
        fs::write(state.join("marker"), "two").unwrap();
        // Dropped once the current tree has moved aside, if that is ever seen between polls.
        let aside = p.sibling("old", &id);
        cancel_when(p.restore(&id), || aside.exists()).await;
        let marker = fs::read_to_string(state.join("marker"));
        assert!(
            marker.as_deref().is_ok_and(|m| m == "one" || m == "two"),
            "{marker:?}"
        );
    }

    #[tokio::test]
    async fn a_delete_cancelled_once_the_data_is_gone_leaves_no_listed_backup() {
        let (tmp, p) = setup();
        many_files(&tmp.path().join("state"), "one");
        let id = p.backup("web", "v1").await.unwrap();
        let data = p.store().join(&id);
        // Polled only when woken: the removal of the data wakes the delete once it is over, so
        // the data is seen gone after it and before the delete goes on, and it is dropped there.
        // (Polling in a loop could see the data still there, then let the delete run to its end.)
        let mut delete = std::pin::pin!(p.delete(&id));
        let dropped = std::future::poll_fn(|cx| {
            if !data.exists() {
                return std::task::Poll::Ready(true);
            }
            delete.as_mut().poll(cx).map(|_| false)
        })
        .await;
        assert!(dropped, "the delete finished before its data was seen gone");
        // Whatever is listed can be restored: here, nothing is.
        assert!(p.list("web").await.unwrap().is_empty());
        assert!(matches!(p.restore(&id).await, Err(Error::NotFound { .. })));
        // The next backup finishes the delete.
        let next = p.backup("web", "v2").await.unwrap();
        assert_ne!(next, id);
        assert_eq!(names(p.store()).len(), 2, "{:?}", names(p.store()));
        assert!(matches!(p.delete(&id).await, Err(Error::NotFound { .. })));
    }

    #[tokio::test]
    async fn the_next_backup_sweeps_what_a_killed_backup_left_but_not_a_running_one() {
        let (tmp, p) = setup();
        fs::create_dir_all(tmp.path().join("state")).unwrap();
        let at = Timestamp::from_millis(1_700_000_000_000);
        let partial = |id: &str| {
            let data = p.store().join(id);
            fs::create_dir_all(data.join("tree/sub")).unwrap();
            fs::write(data.join("tree/sub/f"), b"part").unwrap();
            data
        };
        let killed = p.catalog.claim("web", at).await.unwrap();
        let left = partial(killed.id());
        let claim = p.store().join(format!("{}.pending", killed.id()));
        killed.die();
        let mut running = p.catalog.claim("web", at).await.unwrap();
        let copying = partial(running.id());
        running.remove_on_drop(copying.clone());
        let id = p.backup("web", "v1").await.unwrap();
        assert!(!left.exists() && !claim.exists());
        assert!(copying.exists());
        assert!(p.store().join(format!("{}.pending", running.id())).exists());
        assert_eq!(p.sweep().await.unwrap(), 0);
        drop(running);
        let mut kept = names(p.store());
        kept.sort();
        assert_eq!(kept, [id.clone(), format!("{id}.json")]);
    }

    #[tokio::test]
    async fn a_refused_service_name_changes_nothing_not_even_a_sweep() {
        let (tmp, p) = setup();
        fs::create_dir_all(tmp.path().join("state")).unwrap();
        let killed = p
            .catalog
            .claim("web", Timestamp::from_millis(1_700_000_000_000))
            .await
            .unwrap();
        let claim = p.store().join(format!("{}.pending", killed.id()));
        killed.die();
        let err = p.backup("Web_1", "v1").await.unwrap_err().to_string();
        assert!(
            err.contains("backup.service") && err.contains("Web_1"),
            "{err}"
        );
        assert!(claim.exists());
        assert_eq!(names(p.store()).len(), 1, "{:?}", names(p.store()));
        assert_eq!(p.sweep().await.unwrap(), 1);
    }

    /// What a process killed during a restore of `id` leaves: its marker, unlocked, the
    /// verified copy beside the directory, and, if `renamed` of the two renames were done, the
    /// directory moved aside (1) or the swap done with the old tree still aside (2).
    async fn kill_restore(p: &DirectorySnapshot, id: &str, renamed: usize) {
        let mark = p.catalog.begin_restore(id, false).await.unwrap();
        let restore = p.restore_of(id);
        tree::copy_tree(&restore.stored, &restore.staging, &AtomicBool::new(false)).unwrap();
        if renamed >= 1 {
            fs::rename(&restore.source, &restore.aside).unwrap();
        }
        if renamed >= 2 {
            fs::rename(&restore.staging, &restore.source).unwrap();
        }
        mark.die();
    }

    /// Whether `name` is the restore lock of directory `state`, which stays beside it.
    fn is_restore_lock(name: &str) -> bool {
        name == ".state.serin-restore.lock"
    }

    /// The siblings of the directory and the store's files other than the backups.
    fn leftovers(tmp: &Path, p: &DirectorySnapshot) -> Vec<String> {
        let mut left = names(tmp);
        left.retain(|n| n != "state" && n != "store" && !is_restore_lock(n));
        left.extend(
            names(p.store())
                .into_iter()
                .filter(|n| !n.starts_with("web-")),
        );
        left
    }

    fn assert_no_leftovers(tmp: &Path, p: &DirectorySnapshot) {
        let left = leftovers(tmp, p);
        assert!(left.is_empty(), "{left:?}");
    }

    /// The directory `state` beside the store, backed up as "one" (the id returned), then
    /// changed to "two".
    async fn backed_up_then_changed(tmp: &Path, p: &DirectorySnapshot) -> (Dir, String) {
        let state = Dir(tmp.join("state"));
        state.set("one").await;
        let id = p.backup("web", "v1").await.unwrap();
        state.set("two").await;
        (state, id)
    }

    #[tokio::test]
    async fn a_sweep_moves_back_a_directory_a_restore_killed_between_its_renames_moved_aside() {
        let (tmp, p) = setup();
        let (state, id) = backed_up_then_changed(tmp.path(), &p).await;
        kill_restore(&p, &id, 1).await;
        assert!(!state.0.exists());
        assert_eq!(p.sweep().await.unwrap(), 1);
        // The restore is undone: the directory is whole, as it was before it.
        assert_eq!(state.get().await, "two");
        assert_no_leftovers(tmp.path(), &p);
        assert_eq!(p.sweep().await.unwrap(), 0);
        p.restore(&id).await.unwrap();
        assert_eq!(state.get().await, "one");
    }

    #[tokio::test]
    async fn a_sweep_keeps_a_whole_directory_after_a_restore_killed_before_or_after_the_swap() {
        let (tmp, p) = setup();
        let (state, id) = backed_up_then_changed(tmp.path(), &p).await;
        // Killed while it copied: the directory was never touched, the copy goes.
        kill_restore(&p, &id, 0).await;
        assert_eq!(p.sweep().await.unwrap(), 1);
        assert_eq!(state.get().await, "two");
        assert_no_leftovers(tmp.path(), &p);
        // Killed once the swap was done: the restored directory stays, the old tree goes.
        kill_restore(&p, &id, 2).await;
        assert_eq!(p.sweep().await.unwrap(), 1);
        assert_eq!(state.get().await, "one");
        assert_no_leftovers(tmp.path(), &p);
    }

    #[tokio::test]
    async fn the_next_restore_first_puts_back_what_a_killed_restore_left() {
        let (tmp, p) = setup();
        let state = Dir(tmp.path().join("state"));
        state.set("one").await;
        let first = p.backup("web", "v1").await.unwrap();
        state.set("two").await;
        let second = p.backup("web", "v2").await.unwrap();
        kill_restore(&p, &first, 1).await;
        p.restore(&second).await.unwrap();
        assert_eq!(state.get().await, "two");
        // Nothing of the killed restore stays: not its marker, copy, or the tree moved aside.
        assert_no_leftovers(tmp.path(), &p);
    }

    #[tokio::test]
    async fn a_restore_another_process_is_running_is_left_alone() {
        let (tmp, p) = setup();
        let (state, id) = backed_up_then_changed(tmp.path(), &p).await;
        // Another process is between its two renames, its marker locked.
        let running = p.catalog.begin_restore(&id, false).await.unwrap();
        let restore = p.restore_of(&id);
        tree::copy_tree(&restore.stored, &restore.staging, &AtomicBool::new(false)).unwrap();
        fs::rename(&restore.source, &restore.aside).unwrap();
        assert_eq!(p.sweep().await.unwrap(), 0);
        let err = p.restore(&id).await.unwrap_err().to_string();
        assert!(err.contains("another restore of directory"), "{err}");
        assert!(!state.0.exists() && restore.staging.exists() && restore.aside.exists());
        // It finishes its swap.
        fs::rename(&restore.staging, &restore.source).unwrap();
        tree::remove_tree(&restore.aside).unwrap();
        drop(running);
        assert_eq!(state.get().await, "one");
        assert_no_leftovers(tmp.path(), &p);
    }

    /// Two stores of one directory (two deployments with stores of their own) hand out the
    /// same ids, and a restore's sibling names are made of its backup's id. A restore through
    /// one store is refused while a restore through the other runs (here between its two
    /// renames), changing nothing: it would otherwise move the other's replaced tree back and
    /// remove its copy. A sweep likewise leaves a killed restore alone meanwhile.
    #[tokio::test(start_paused = true)]
    async fn restores_through_two_stores_of_one_directory_exclude_each_other() {
        let (tmp, p) = setup();
        let other = DirectorySnapshot::new(tmp.path().join("state"), tmp.path().join("other"))
            .unwrap()
            .with_clock(Clock::starting_at(Timestamp::from_millis(
                1_700_000_000_000,
            )));
        let (state, id) = backed_up_then_changed(tmp.path(), &p).await;
        let theirs = other.backup("web", "v2").await.unwrap();
        assert_eq!(theirs, id);
        // A restore through the first store, between its two renames.
        let lock = p.lock_restores().unwrap();
        let running = p.catalog.begin_restore(&id, false).await.unwrap();
        let restore = p.restore_of(&id);
        tree::copy_tree(&restore.stored, &restore.staging, &AtomicBool::new(false)).unwrap();
        fs::rename(&restore.source, &restore.aside).unwrap();
        let err = other.restore(&theirs).await.unwrap_err().to_string();
        assert!(
            err.contains("another restore of it is running") && err.contains("restore lock"),
            "{err}"
        );
        assert!(!state.0.exists() && restore.staging.exists() && restore.aside.exists());
        // It finishes its swap; then the other store restores.
        fs::rename(&restore.staging, &restore.source).unwrap();
        tree::remove_tree(&restore.aside).unwrap();
        drop((running, lock));
        assert_eq!(state.get().await, "one");
        other.restore(&theirs).await.unwrap();
        assert_eq!(state.get().await, "two");
        // A killed restore of the first store is not swept while the other restores.
        kill_restore(&p, &id, 1).await;
        let restoring = other.lock_restores().unwrap();
        let err = p.sweep().await.unwrap_err().to_string();
        assert!(err.contains("another restore of it is running"), "{err}");
        assert!(!state.0.exists() && restore.aside.exists());
        drop(restoring);
        assert_eq!(p.sweep().await.unwrap(), 1);
        assert_eq!(state.get().await, "two");
        let mut left = leftovers(tmp.path(), &p);
        left.retain(|n| n != "other");
        assert!(left.is_empty(), "{left:?}");
    }

    /// A directory restore is never left half done, so no store needs a mark of one: a
    /// restore killed through one store between its renames leaves the directory missing
    /// (its tree aside), and a backup through another store of it fails, listing nothing,
    /// rather than take the missing directory for an empty one; once the first store's sweep
    /// has moved it back, the backup takes it whole.
    #[tokio::test(start_paused = true)]
    async fn a_backup_through_another_store_never_takes_a_directory_a_killed_restore_left() {
        let (tmp, p) = setup();
        let other =
            DirectorySnapshot::new(tmp.path().join("state"), tmp.path().join("other")).unwrap();
        let (state, id) = backed_up_then_changed(tmp.path(), &p).await;
        kill_restore(&p, &id, 1).await;
        let err = other.backup("web", "v2").await.unwrap_err().to_string();
        assert!(err.contains("cannot snapshot"), "{err}");
        assert!(other.list("web").await.unwrap().is_empty());
        assert_eq!(p.sweep().await.unwrap(), 1);
        let theirs = other.backup("web", "v2").await.unwrap();
        state.set("three").await;
        other.restore(&theirs).await.unwrap();
        assert_eq!(state.get().await, "two");
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
            .filter(|n| n.starts_with('.') && !is_restore_lock(n))
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
        // Unreadable metadata is neither counted nor deleted: nothing proves what it was.
        fs::create_dir_all(p.store()).unwrap();
        let corrupt = p.store().join("web-1-000.json");
        fs::write(&corrupt, b"{not json").unwrap();
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
        assert!(corrupt.exists());
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
