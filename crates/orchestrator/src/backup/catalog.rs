//! One JSON file per backup in a provider's directory, so `list` and `info` answer across
//! processes.
//!
//! Layout: `<dir>/<id>.json` holds the [`BackupInfo`]; while a backup is being taken,
//! `<dir>/<id>.pending` claims its id (created exclusively, so two processes never take the
//! same id) and the provider's data sits beside it under the id. Only `.json` files are listed,
//! so a backup that is still running or was interrupted is never offered for a restore.
//!
//! The metadata is the last thing a backup writes and the first thing a delete removes, so a
//! listed backup always has all its data:
//! - a backup syncs its data, then the directory, and only then commits the metadata;
//! - a delete first renames the metadata to `<dir>/<id>.deleting` (the backup is no longer
//!   listed, read or restored from that moment), then removes the data, then that file. A
//!   delete that was interrupted leaves the `.deleting` file, which keeps the id from being
//!   handed out again while data of it may remain; deleting the id again, or the next backup of
//!   the service, finishes it.
//!
//! A metadata file that cannot be read or decoded is left out of listings, with a warning
//! naming it and why: the service's other backups stay listed for retention and for the
//! choice of a backup to restore, and the damaged one is neither restored nor deleted by
//! retention (nothing proves what it held) but kept for an operator to look at.
//!
//! Several providers may share a directory: each backup records its provider's source (see
//! [`BackupInfo::source`]), and a catalog lists and reads only its own source's backups.
//!
//! A process killed while it takes a backup leaves its claim and part of the data. A claim's
//! `.pending` file records its source and a token unique to the claim (which names whatever
//! the backup makes outside the directory, such as a database), and its owner holds an
//! exclusive lock (`flock`) on it for as long as the claim lives; the kernel releases the lock
//! when the owner dies, however it dies. A sweep ([`Catalog::abandoned`]) takes only claims it
//! can lock, so it never touches a backup that another process is still taking: the provider
//! removes what such a claim left, then the claim. A claim is written whole under a name of its
//! own (`<id>.pending.<token>.new`) and only then linked into place, so a process killed while
//! it writes one leaves no claim, or a whole one: a claim without a record can only have been
//! written by a version that did not record one, and is left alone (nothing proves its owner
//! gone). What a kill left under the claim's own name is removed by the next sweep. The store
//! must be on a local file system: `flock` locks are held per open file there, so even a sweep
//! in the claim's own process sees them, while NFS emulates them with per-process POSIX locks,
//! which that sweep would take and release.

use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use serin_signals::{Timestamp, dns_label_problem};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{durable, tree};
use crate::error::{Error, Result};
use crate::hooks::{BackupInfo, BackupProvider};

/// How many ids one millisecond can hand out to one service.
const IDS_PER_MILLI: u32 = 1000;

/// The metadata of a backup.
const LISTED: &str = ".json";
/// The metadata of a backup being deleted.
const DELETING: &str = ".deleting";
/// The claim on the id of a backup being taken.
const PENDING: &str = ".pending";

/// What a claim's `.pending` file records, for a sweep of claims whose owner is gone.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Note {
    /// The catalog's source: only its own provider sweeps the claim.
    source: String,
    /// Unique to the claim (see [`Claim::token`]).
    token: String,
    /// Whether the backup makes something outside the directory (a database), which a sweep
    /// removes whatever the provider's settings are by then. Absent in claims of versions
    /// that did not record it: their provider's settings tell.
    #[serde(default)]
    outside: bool,
}

/// A token no other claim, in this directory or any other, is given: 20 hex digits of the
/// SHA-256 of the process, the time, a counter, the claim's path and a random key.
fn new_token(pending: &Path) -> String {
    use std::hash::{BuildHasher, Hasher};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut random = std::collections::hash_map::RandomState::new().build_hasher();
    random.write_u64(NEXT.fetch_add(1, Ordering::Relaxed));
    let mut hasher = Sha256::new();
    hasher.update(std::process::id().to_le_bytes());
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    hasher.update(since.as_nanos().to_le_bytes());
    hasher.update(random.finish().to_le_bytes());
    hasher.update(pending.as_os_str().as_encoded_bytes());
    let digest = tree::hex(&hasher.finalize());
    digest.get(..20).unwrap_or(&digest).to_owned()
}

/// The marker of a restore in progress (see [`Catalog::begin_restore`]).
const RESTORING: &str = ".restoring";

/// What a restore marker records, for a sweep of a restore whose process is gone.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RestoreNote {
    /// The catalog's source, which the marker's name is derived from.
    source: String,
    /// The backup being restored: it names what the restore makes beside the original.
    id: String,
    /// Unique to the restore: it names the restore's server sessions.
    token: String,
    /// Whether the restore writes into the source in place (`pg_restore --clean`), which
    /// nothing can undo, rather than building a copy beside it and swapping it in.
    #[serde(default)]
    in_place: bool,
    /// Whether the source may hold part of an in-place restore: set before such a restore
    /// changes anything, kept by every restore that takes the marker over until one finishes,
    /// and never cleared by a sweep, which cannot put the source back.
    #[serde(default)]
    partial: bool,
}

/// A provider's directory of backup metadata.
#[derive(Debug, Clone)]
pub(crate) struct Catalog {
    dir: PathBuf,
    provider: String,
    source: String,
}

impl Catalog {
    /// The catalog in `dir` of the backups of `source`, speaking as `provider` in errors.
    pub(crate) fn new(
        dir: impl Into<PathBuf>,
        provider: impl Into<String>,
        source: impl Into<String>,
    ) -> Self {
        Catalog {
            dir: dir.into(),
            provider: provider.into(),
            source: source.into(),
        }
    }

    /// The metadata of a new backup `id` of this catalog's source.
    pub(crate) fn info(
        &self,
        id: &str,
        service: &str,
        label: &str,
        created_at: Timestamp,
    ) -> BackupInfo {
        BackupInfo::new(id, service, label, created_at).with_source(&self.source)
    }

    /// Whether `info` is of this catalog's source (or older than sources).
    fn owns(&self, info: &BackupInfo) -> bool {
        info.source.as_deref().is_none_or(|s| s == self.source)
    }

    /// The directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the provider keeps the data of backup `id` (with `suffix`, possibly empty).
    pub(crate) fn data_path(&self, id: &str, suffix: &str) -> PathBuf {
        self.dir.join(format!("{id}{suffix}"))
    }

    fn io_error(&self, doing: &str, path: &Path, e: std::io::Error) -> Error {
        Error::backend(
            "backup",
            self.provider.as_str(),
            format!("cannot {doing} `{}`: {e}", path.display()),
        )
    }

    /// Claims a new id for a backup of `service` taken at `now`. The claim is held until it
    /// is [`commit`](Self::commit)ted or dropped; dropped, it removes what the backup wrote.
    pub(crate) async fn claim(&self, service: &str, now: Timestamp) -> Result<Claim> {
        self.claim_for(service, now, false).await
    }

    /// [`claim`](Self::claim) for a backup that makes something `outside` the directory (a
    /// database), recorded for a sweep (see [`Abandoned::outside`]).
    pub(crate) async fn claim_for(
        &self,
        service: &str,
        now: Timestamp,
        outside: bool,
    ) -> Result<Claim> {
        check_service(service)?;
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| self.io_error("create the backup directory", &self.dir, e))?;
        for n in 0..IDS_PER_MILLI {
            let id = format!("{service}-{}-{n:03}", now.as_millis());
            let pending = self.data_path(&id, PENDING);
            let token = new_token(&pending);
            let note = Note {
                source: self.source.clone(),
                token: token.clone(),
                outside,
            };
            let (path, dir) = (pending.clone(), self.dir.clone());
            let created = tokio::task::spawn_blocking(move || {
                let file = create_claim(&path, &note.token, &note)?;
                // The claim's name must outlive a power loss too: in template mode it is all
                // that leads a sweep to the copy on the server.
                if let Err(e) = durable::sync_dir_blocking(&dir) {
                    let _ = std::fs::remove_file(&path);
                    return Err(e);
                }
                Ok(file)
            })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            let lock = match created {
                Ok(file) => file,
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(self.io_error("claim a backup id at", &pending, e)),
            };
            let claim = Claim {
                metadata: self.data_path(&id, LISTED),
                pending,
                id,
                token,
                lock: Some(lock),
                data: Vec::new(),
                undo: None,
                work: Work::default(),
                armed: true,
                leave: false,
            };
            // A listed backup, or one whose delete has not finished, still holds the id.
            // Checked after the claim is made: a commit drops its claim only once its
            // metadata exists, so a backup committed at this very moment is seen here,
            // where a check before the claim could have missed it.
            let mut taken = false;
            for suffix in [LISTED, DELETING] {
                taken = taken
                    || tokio::fs::try_exists(self.data_path(&claim.id, suffix))
                        .await
                        .unwrap_or(true);
            }
            if !taken {
                return Ok(claim);
            }
        }
        Err(Error::backend(
            "backup",
            self.provider.as_str(),
            format!(
                "{IDS_PER_MILLI} backups of `{service}` were already taken at {} ms; try again",
                now.as_millis()
            ),
        ))
    }

    /// Records `info`, the metadata of the backup `claim` was taken for, and drops the claim.
    /// The caller has synced the data; the directory holding its names is synced here, before
    /// the metadata is written beside and renamed into place. On an error, the claim is
    /// dropped and the data with it, and what was written of the metadata (a full disk, a
    /// cancellation).
    pub(crate) async fn commit(&self, info: &BackupInfo, mut claim: Claim) -> Result<()> {
        debug_assert_eq!(info.id, claim.id);
        let path = self.data_path(&info.id, LISTED);
        let tmp = self.data_path(&info.id, ".json.tmp");
        claim.remove_on_drop(tmp.clone());
        let body = serde_json::to_vec_pretty(info).map_err(|e| {
            Error::backend(
                "backup",
                self.provider.as_str(),
                format!("cannot encode the metadata of `{}`: {e}", info.id),
            )
        })?;
        durable::sync_dir(&self.dir)
            .await
            .map_err(|e| self.io_error("sync", &self.dir, e))?;
        // On disk before the rename, and the rename itself after it: a power loss leaves the
        // old state or the whole new file, never an empty one that no listing could read.
        let write = async {
            let mut file = tokio::fs::File::create(&tmp).await?;
            file.write_all(&body).await?;
            file.sync_all().await?;
            durable::synced(&tmp);
            Ok::<_, std::io::Error>(())
        };
        write.await.map_err(|e| self.io_error("write", &tmp, e))?;
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(|e| self.io_error("write", &path, e))?;
        // Listed from here on, whatever happens next: the claim keeps the data.
        claim.finish();
        durable::sync_dir(&self.dir)
            .await
            .map_err(|e| self.io_error("sync", &self.dir, e))?;
        Ok(())
    }

    /// The metadata of backup `id`.
    pub(crate) async fn read(&self, id: &str) -> Result<BackupInfo> {
        self.read_as(id, LISTED).await
    }

    /// The metadata of backup `id` in its file with `suffix`.
    async fn read_as(&self, id: &str, suffix: &str) -> Result<BackupInfo> {
        check_id(id)?;
        let path = self.data_path(id, suffix);
        let body = match tokio::fs::read(&path).await {
            Ok(body) => body,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(Error::not_found("backup", id));
            }
            Err(e) => return Err(self.io_error("read", &path, e)),
        };
        let info = self.decode(&path, &body)?;
        if !self.owns(&info) {
            return Err(Error::invalid(
                "backup id",
                id,
                format!(
                    "is a backup of {}, not of {}: only its own provider restores or deletes it",
                    info.source.as_deref().unwrap_or_default(),
                    self.source
                ),
            ));
        }
        Ok(info)
    }

    fn decode(&self, path: &Path, body: &[u8]) -> Result<BackupInfo> {
        serde_json::from_slice(body).map_err(|e| {
            Error::backend(
                "backup",
                self.provider.as_str(),
                format!("backup metadata `{}` is unreadable: {e}", path.display()),
            )
        })
    }

    /// The backups of `service`, oldest first. A metadata file that cannot be read or
    /// decoded is left out with a warning naming it and why (see [`scan`](Self::scan)).
    pub(crate) async fn list(&self, service: &str) -> Result<Vec<BackupInfo>> {
        self.scan(service, LISTED).await
    }

    /// The backups of `service` whose delete was started and has not finished, oldest first.
    pub(crate) async fn interrupted_deletes(&self, service: &str) -> Result<Vec<BackupInfo>> {
        self.scan(service, DELETING).await
    }

    /// The metadata of `service`'s backups in files with `suffix`, oldest first.
    async fn scan(&self, service: &str, suffix: &str) -> Result<Vec<BackupInfo>> {
        check_service(service)?;
        let mut entries = match tokio::fs::read_dir(&self.dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io_error("list", &self.dir, e)),
        };
        let mut found = Vec::new();
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| self.io_error("list", &self.dir, e))?
        {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            // Only this service's files are read: another service's damaged metadata (even
            // of `web-api` beside `web`) must not stop this one's listing.
            if !name
                .strip_suffix(suffix)
                .is_some_and(|id| is_id_of(id, service))
            {
                continue;
            }
            let path = entry.path();
            let read = match tokio::fs::read(&path).await {
                Ok(body) => self.decode(&path, &body),
                // Deleted by another process since the directory was read.
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => Err(self.io_error("read", &path, e)),
            };
            // One damaged file must not hide the service's other backups, which retention
            // and the choice of a backup to restore depend on. It is left out, so it is never
            // restored nor deleted by retention (nothing proves what it held), and is kept
            // for an operator to look at.
            match read {
                Ok(info) if info.service == service && self.owns(&info) => found.push(info),
                Ok(_) => {}
                Err(e) => tracing::warn!(service, "left out of the backups listed: {e}"),
            }
        }
        found.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(found)
    }

    /// Starts deleting backup `id`: its metadata moves aside (durably) so that it is no
    /// longer listed, read or restored, and is returned for the provider to remove the data
    /// it describes, then [`finish_delete`](Self::finish_delete). Of a backup whose delete
    /// was interrupted, the metadata that was moved aside is returned: the delete resumes.
    pub(crate) async fn start_delete(&self, id: &str) -> Result<BackupInfo> {
        match self.read(id).await {
            Ok(info) => {
                let (from, to) = (self.data_path(id, LISTED), self.data_path(id, DELETING));
                match tokio::fs::rename(&from, &to).await {
                    Ok(()) => {
                        durable::sync_dir(&self.dir)
                            .await
                            .map_err(|e| self.io_error("sync", &self.dir, e))?;
                        Ok(info)
                    }
                    // Another delete of it moved it first: resume that one.
                    Err(e) if e.kind() == ErrorKind::NotFound => self.read_as(id, DELETING).await,
                    Err(e) => Err(self.io_error("move aside", &from, e)),
                }
            }
            Err(Error::NotFound { .. }) => self.read_as(id, DELETING).await,
            Err(e) => Err(e),
        }
    }

    /// The error of a delete that unlisted backup `info` but could not remove its data (`e`).
    pub(crate) fn unlisted_but_kept(&self, info: &BackupInfo, e: Error) -> Error {
        let cause = cause(e);
        Error::backend(
            "backup",
            self.provider.as_str(),
            format!(
                "backup `{}` is no longer listed, but its data could not be removed ({cause}); \
                 deleting `{}` again, or the next backup of `{}`, removes it",
                info.id, info.id, info.service
            ),
        )
    }

    /// Forgets backup `id` once its data is gone.
    pub(crate) async fn finish_delete(&self, id: &str) -> Result<()> {
        let path = self.data_path(id, DELETING);
        match tokio::fs::remove_file(&path).await {
            // Finished by a delete running beside this one.
            Err(e) if e.kind() != ErrorKind::NotFound => Err(self.io_error("remove", &path, e)),
            _ => Ok(()),
        }
    }

    /// The claims of this catalog's source whose owner is gone (a process killed while it
    /// took a backup), each locked by the caller until it is [`forget`](Self::forget)ten or
    /// dropped, so that no other sweep works on it meanwhile. A claim whose backup was
    /// committed (the crash came between the metadata and the removal of the claim) is
    /// removed here, its data kept. A claim another process still holds is never returned.
    pub(crate) async fn abandoned(&self) -> Result<Vec<Abandoned>> {
        let catalog = self.clone();
        tokio::task::spawn_blocking(move || catalog.abandoned_blocking())
            .await
            .unwrap_or_else(|e| Err(self.io_error("sweep", &self.dir, std::io::Error::other(e))))
    }

    fn abandoned_blocking(&self) -> Result<Vec<Abandoned>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io_error("list", &self.dir, e)),
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| self.io_error("list", &self.dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some((id, _)) = unlinked_claim(name)
                && check_id(id).is_ok()
            {
                // Never linked into place (its process killed first): nothing was claimed.
                let path = entry.path();
                if locked_claim::<serde::de::IgnoredAny>(&path)
                    .map_err(|e| self.io_error("sweep the claim", &path, e))?
                    .is_some()
                {
                    remove_file(&path).map_err(|e| self.io_error("remove", &path, e))?;
                }
                continue;
            }
            let Some(id) = name.strip_suffix(PENDING) else {
                continue;
            };
            if check_id(id).is_err() {
                continue;
            }
            let pending = entry.path();
            let Some((lock, Some(note))) = locked_claim::<Note>(&pending)
                .map_err(|e| self.io_error("sweep the claim", &pending, e))?
            else {
                continue;
            };
            if note.source != self.source {
                continue;
            }
            let committed = [LISTED, DELETING]
                .iter()
                .any(|suffix| self.data_path(id, suffix).exists());
            let abandoned = Abandoned {
                id: id.to_owned(),
                token: note.token,
                outside: note.outside,
                pending,
                tmp: self.data_path(id, ".json.tmp"),
                _lock: lock,
            };
            if committed {
                // Its data is the listed backup's: only the claim goes.
                remove_file(&abandoned.pending)
                    .map_err(|e| self.io_error("remove", &abandoned.pending, e))?;
                continue;
            }
            found.push(abandoned);
        }
        found.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(found)
    }

    /// Removes the claim `abandoned` once its provider removed the data it left.
    pub(crate) async fn forget(&self, abandoned: Abandoned) -> Result<()> {
        let catalog = self.clone();
        tokio::task::spawn_blocking(move || {
            for path in [&abandoned.tmp, &abandoned.pending] {
                remove_file(path).map_err(|e| catalog.io_error("remove", path, e))?;
            }
            tracing::info!(backup = %abandoned.id, "removed what a backup whose process is gone left");
            Ok(())
        })
        .await
        .unwrap_or_else(|e| Err(self.io_error("sweep", &self.dir, std::io::Error::other(e))))
    }
}

impl Catalog {
    /// The marker of a restore of this catalog's source: one name per source, so that two
    /// restores of the same directory or database never run at once.
    pub(crate) fn restore_marker(&self) -> PathBuf {
        self.dir
            .join(format!("{}{RESTORING}", self.restore_marker_stem()))
    }

    /// `restore-<20 hex digits of the SHA-256 of the source>`.
    fn restore_marker_stem(&self) -> String {
        let digest = tree::hex(&Sha256::digest(self.source.as_bytes()));
        format!("restore-{}", digest.get(..20).unwrap_or(&digest))
    }

    /// Starts a restore of backup `id`: a marker, recorded (the id and a token) and locked
    /// for as long as the returned [`RestoreMark`] lives, says a restore of this source runs.
    /// A process killed during the restore leaves the marker unlocked, and
    /// [`interrupted_restore`](Self::interrupted_restore) hands it to the provider, which
    /// puts back in one piece what the restore left. Fails, changing nothing, while another
    /// restore of the same source runs (its marker locked), or while one that was killed has
    /// not been swept: the provider sweeps first.
    ///
    /// The marker is written and locked under a name of its own, then linked to its place,
    /// so that nobody ever finds it empty or unlocked while its restore lives.
    ///
    /// An `in_place` restore (one that nothing can undo) marks the source
    /// [partial](RestoreMark::partial) until it [finishes](RestoreMark::finish).
    pub(crate) async fn begin_restore(&self, id: &str, in_place: bool) -> Result<RestoreMark> {
        check_id(id)?;
        let catalog = self.clone();
        let id = id.to_owned();
        tokio::task::spawn_blocking(move || catalog.begin_restore_blocking(id, in_place))
            .await
            .unwrap_or_else(|e| {
                Err(self.io_error("restore from", &self.dir, std::io::Error::other(e)))
            })
    }

    fn begin_restore_blocking(&self, id: String, in_place: bool) -> Result<RestoreMark> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| self.io_error("create the backup directory", &self.dir, e))?;
        let path = self.restore_marker();
        let token = new_token(&path);
        let note = RestoreNote {
            source: self.source.clone(),
            id: id.clone(),
            token: token.clone(),
            in_place,
            partial: in_place,
        };
        let lock = match create_claim(&path, &token, &note) {
            Ok(lock) => lock,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                let running = std::fs::read(&path)
                    .ok()
                    .and_then(|body| serde_json::from_slice::<RestoreNote>(&body).ok())
                    .map(|note| format!(" (of backup `{}`)", note.id))
                    .unwrap_or_default();
                return Err(Error::backend(
                    "backup",
                    self.provider.as_str(),
                    format!(
                        "cannot restore backup `{id}`: another restore of {}{running} is \
                         running, or was interrupted and not yet swept (marker `{}`); try \
                         again once it has finished",
                        self.source,
                        path.display()
                    ),
                ));
            }
            Err(e) => return Err(self.io_error("create", &path, e)),
        };
        durable::sync_dir_blocking(&self.dir).map_err(|e| self.io_error("sync", &self.dir, e))?;
        Ok(RestoreMark::held(note, path, lock))
    }

    /// Starts a restore of backup `id` in the place of the restore of `interrupted` (whose
    /// process is gone, and whose marker is [partial](RestoreMark::partial)): the marker is
    /// replaced in one rename by one of this restore, still partial, so that the source stays
    /// marked as holding part of an in-place restore until a restore finishes, whatever
    /// happens to this one. `in_place` as for [`begin_restore`](Self::begin_restore).
    pub(crate) async fn take_over_restore(
        &self,
        interrupted: RestoreMark,
        id: &str,
        in_place: bool,
    ) -> Result<RestoreMark> {
        check_id(id)?;
        let catalog = self.clone();
        let id = id.to_owned();
        tokio::task::spawn_blocking(move || catalog.take_over_blocking(interrupted, id, in_place))
            .await
            .unwrap_or_else(|e| {
                Err(self.io_error("restore from", &self.dir, std::io::Error::other(e)))
            })
    }

    fn take_over_blocking(
        &self,
        mut interrupted: RestoreMark,
        id: String,
        in_place: bool,
    ) -> Result<RestoreMark> {
        // Whatever happens now, the marker stays: the interrupted restore's, or this one's.
        interrupted.leave = true;
        let path = interrupted.path.clone();
        let token = new_token(&path);
        let note = RestoreNote {
            source: self.source.clone(),
            id,
            token: token.clone(),
            in_place,
            partial: true,
        };
        let mut fresh = path.as_os_str().to_owned();
        fresh.push(format!(".{token}.new"));
        let fresh = PathBuf::from(fresh);
        let body = serde_json::to_vec(&note)
            .map_err(|e| self.io_error("create", &fresh, std::io::Error::other(e)))?;
        let lock = write_locked(&fresh, &body).map_err(|e| self.io_error("create", &fresh, e))?;
        if let Err(e) = std::fs::rename(&fresh, &path) {
            let _ = std::fs::remove_file(&fresh);
            return Err(self.io_error("replace", &path, e));
        }
        durable::sync_dir_blocking(&self.dir).map_err(|e| self.io_error("sync", &self.dir, e))?;
        // Only now, with the marker this restore's, is the interrupted one's lock let go.
        drop(interrupted);
        Ok(RestoreMark::held(note, path, lock))
    }

    /// The marker of a restore of this source whose process is gone (killed during the
    /// restore, or unable to clean up after it), locked by the caller; `None` if there is
    /// none, or if its restore is still running (its marker locked by its process). The
    /// provider puts back what the restore left, then drops the mark, which removes it, or
    /// [leaves](RestoreMark::leave_to_sweep) it for the next sweep.
    pub(crate) async fn interrupted_restore(&self) -> Result<Option<RestoreMark>> {
        let catalog = self.clone();
        tokio::task::spawn_blocking(move || catalog.interrupted_restore_blocking())
            .await
            .unwrap_or_else(|e| Err(self.io_error("sweep", &self.dir, std::io::Error::other(e))))
    }

    fn interrupted_restore_blocking(&self) -> Result<Option<RestoreMark>> {
        self.remove_unlinked_markers()?;
        let path = self.restore_marker();
        let Some((lock, note)) = locked_claim::<RestoreNote>(&path)
            .map_err(|e| self.io_error("sweep the restore marker", &path, e))?
        else {
            return Ok(None);
        };
        // A marker is only ever linked into place whole, so an unreadable one was damaged:
        // what its restore left is unknown, and only a person can tell.
        let note = note.filter(|n| n.source == self.source && check_id(&n.id).is_ok());
        let Some(note) = note else {
            return Err(Error::backend(
                "backup",
                self.provider.as_str(),
                format!(
                    "the restore marker `{}` is unreadable or not {}'s: check that the restored \
                     directory or database is whole, then remove the marker",
                    path.display(),
                    self.source
                ),
            ));
        };
        Ok(Some(RestoreMark::held(note, path, lock)))
    }
}

impl Catalog {
    /// The restore the marker of this source records, read without taking the marker (its
    /// restore may be running): the backup it restores, and whether the source may hold part
    /// of an in-place restore ([`RestoreMark::partial`]); `None` without a marker. A marker
    /// that cannot be read is an error: what its restore did is unknown.
    pub(crate) async fn marked_restore(&self) -> Result<Option<(String, bool)>> {
        let path = self.restore_marker();
        let body = match tokio::fs::read(&path).await {
            Ok(body) => body,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io_error("read the restore marker", &path, e)),
        };
        match serde_json::from_slice::<RestoreNote>(&body) {
            Ok(note) if note.source == self.source => Ok(Some((note.id, note.partial))),
            _ => Err(Error::backend(
                "backup",
                self.provider.as_str(),
                format!(
                    "the restore marker `{}` is unreadable or not {}'s: check that the restored \
                     directory or database is whole, then remove the marker",
                    path.display(),
                    self.source
                ),
            )),
        }
    }
}

impl Catalog {
    /// Removes the markers that a process killed between writing them and linking them into
    /// place left under their own names (`<stem>.<token>.new`), unless another process still
    /// holds one (it is starting a restore).
    fn remove_unlinked_markers(&self) -> Result<()> {
        let prefix = format!("{}.", self.restore_marker_stem());
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.io_error("list", &self.dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| self.io_error("list", &self.dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !(name.starts_with(&prefix) && name.ends_with(".new")) {
                continue;
            }
            let path = entry.path();
            let held = locked_claim::<RestoreNote>(&path)
                .map_err(|e| self.io_error("sweep the restore marker", &path, e))?;
            if held.is_some() {
                remove_file(&path).map_err(|e| self.io_error("remove", &path, e))?;
            }
        }
        Ok(())
    }
}

/// The locked marker of a restore (see [`Catalog::begin_restore`]). Dropped, it is removed,
/// unless it was [left](Self::leave_to_sweep) for the next sweep; a process killed before
/// that leaves it unlocked, for the next sweep or restore.
#[derive(Debug)]
pub(crate) struct RestoreMark {
    id: String,
    token: String,
    path: PathBuf,
    lock: Option<HeldLock>,
    leave: bool,
    in_place: bool,
    partial: bool,
    finished: bool,
}

impl RestoreMark {
    /// The mark of the marker at `path` recording `note`, locked by `lock`.
    fn held(note: RestoreNote, path: PathBuf, lock: HeldLock) -> Self {
        RestoreMark {
            id: note.id,
            token: note.token,
            path,
            lock: Some(lock),
            leave: false,
            in_place: note.in_place,
            partial: note.partial,
            finished: false,
        }
    }

    /// Whether the restore writes into the source in place, with nothing to put back.
    pub(crate) fn in_place(&self) -> bool {
        self.in_place
    }

    /// Whether the source may hold part of an in-place restore that did not finish: the
    /// marker then stays, whatever is dropped, until a restore [finishes](Self::finish).
    pub(crate) fn partial(&self) -> bool {
        self.partial
    }

    /// The restore finished: dropped, the marker goes, partial or not.
    pub(crate) fn finish(&mut self) {
        self.finished = true;
    }

    /// The marker's file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The backup being restored.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// Unique to the restore: what it starts outside the store (server sessions) is named
    /// with it, so that a sweep ends only this restore's.
    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// Dropped, the marker stays (unlocked) for the next sweep: what the restore left could
    /// not be put back now.
    pub(crate) fn leave_to_sweep(&mut self) {
        self.leave = true;
    }

    /// What a process killed during the restore leaves: the marker, unlocked.
    #[cfg(test)]
    pub(crate) fn die(mut self) {
        self.leave = true;
        self.lock = None;
        wait_unlocked(&self.path);
    }
}

impl Drop for RestoreMark {
    fn drop(&mut self) {
        if !self.leave && (self.finished || !self.partial) {
            let _ = std::fs::remove_file(&self.path);
        }
        // Only now, with the marker gone or left whole, may a sweep take it.
        drop(self.lock.take());
    }
}

/// Removes the file at `path`, if it is there.
fn remove_file(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// A file this process holds locked: unlocked explicitly when dropped, before it is closed.
///
/// A `flock` belongs to the open file, and a child process being started at that moment (any
/// command this process runs: `psql`, `pg_dump`) shares it until it execs. Closing only our
/// descriptor would leave the lock held through that copy for as long, and a sweep or a
/// restore right after would find it taken; unlocking releases it for every copy.
#[derive(Debug)]
pub(crate) struct HeldLock(std::fs::File);

impl HeldLock {
    /// `file`, which this process has locked.
    pub(crate) fn new(file: std::fs::File) -> Self {
        HeldLock(file)
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// Creates the claim file at `path` whole, failing if it exists: `note` is written, locked for
/// this process and synced under a name of its own (`<path>.<token>.new`), which is then
/// linked to `path`. A sweep that finds the claim locked leaves it, and one that finds it
/// unlocked reads whose it was: a process killed at any point leaves either no file at `path`
/// or a whole, recorded one, so an empty claim can only be an older version's. What a kill
/// leaves under the file's own name is removed by the next sweep, once nobody holds it.
fn create_claim(path: &Path, token: &str, note: &impl Serialize) -> std::io::Result<HeldLock> {
    let mut fresh = path.as_os_str().to_owned();
    fresh.push(format!(".{token}.new"));
    let fresh = PathBuf::from(fresh);
    let body = serde_json::to_vec(note).map_err(std::io::Error::other)?;
    let mut retries = 0;
    loop {
        let file = write_locked(&fresh, &body)?;
        killed_after("written")?;
        let linked = std::fs::hard_link(&fresh, path);
        killed_after("linked")?;
        let _ = std::fs::remove_file(&fresh);
        match linked {
            Ok(()) => return Ok(file),
            // A sweep took the file for a dead process's between its creation and its lock,
            // and removed it: it is made again.
            Err(e) if e.kind() == ErrorKind::NotFound && retries < 3 => retries += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Creates the file `fresh` (failing if it exists), locks it for this process and writes
/// `body` to it, synced; removes it on an error.
fn write_locked(fresh: &Path, body: &[u8]) -> std::io::Result<HeldLock> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(fresh)?;
    killed_after("created")?;
    let written = file
        .lock()
        .and_then(|()| file.write_all(body))
        .and_then(|()| file.sync_all());
    let file = HeldLock::new(file);
    if let Err(e) = written {
        let _ = std::fs::remove_file(fresh);
        return Err(e);
    }
    Ok(file)
}

/// The name a claim file has before it is linked into place: `(<id>, <token>)` of
/// `<id>.pending.<token>.new`.
fn unlinked_claim(name: &str) -> Option<(&str, &str)> {
    name.strip_suffix(".new")?.split_once(".pending.")
}

/// Stops [`create_claim`] after `step` as a kill would, leaving what it wrote (tests).
#[cfg(test)]
fn killed_after(step: &str) -> std::io::Result<()> {
    if tests::KILLED_AFTER.with(|k| k.get()) == Some(step) {
        return Err(std::io::Error::other(format!("killed after {step}")));
    }
    Ok(())
}

#[cfg(not(test))]
fn killed_after(_step: &str) -> std::io::Result<()> {
    Ok(())
}

/// The claim file at `path`, locked for this process, and its note (`None` if it records
/// none, or one this version cannot read: written by another version, as a claim is linked
/// into place whole); `None` if another process holds it (a backup being taken), or if it is
/// gone or was replaced since.
fn locked_claim<N: serde::de::DeserializeOwned>(
    path: &Path,
) -> std::io::Result<Option<(HeldLock, Option<N>)>> {
    use std::os::unix::fs::MetadataExt;
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
        Err(std::fs::TryLockError::Error(e)) => return Err(e),
    }
    let mut file = HeldLock::new(file);
    // Locked, but perhaps a file its owner removed before another claim took the name.
    let held = file.0.metadata()?;
    match std::fs::metadata(path) {
        Ok(now) if (now.dev(), now.ino()) == (held.dev(), held.ino()) => {}
        Ok(_) => return Ok(None),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut body = Vec::new();
    file.0.read_to_end(&mut body)?;
    Ok(Some((file, serde_json::from_slice(&body).ok())))
}

/// A claim whose owner is gone, locked by the sweep that found it (see [`Catalog::abandoned`]).
#[derive(Debug)]
pub(crate) struct Abandoned {
    id: String,
    token: String,
    outside: bool,
    pending: PathBuf,
    tmp: PathBuf,
    _lock: HeldLock,
}

impl Abandoned {
    /// The id it claimed.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// Its claim's [token](Claim::token).
    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// Whether its backup recorded making something outside the directory (a database).
    pub(crate) fn outside(&self) -> bool {
        self.outside
    }
}

/// Finishes the deletes of `service`'s backups in `catalog` that were interrupted, through
/// `provider` (whose `delete` resumes them). Best effort: a failure is logged, and the next
/// backup tries again.
pub(crate) async fn finish_interrupted_deletes(
    catalog: &Catalog,
    provider: &dyn BackupProvider,
    service: &str,
) {
    let interrupted = match catalog.interrupted_deletes(service).await {
        Ok(interrupted) => interrupted,
        Err(e) => {
            tracing::warn!(service, "cannot look for interrupted deletes: {e}");
            return;
        }
    };
    for info in interrupted {
        match provider.delete(&info.id).await {
            // Finished by a delete running beside this one.
            Ok(()) | Err(Error::NotFound { .. }) => {
                tracing::info!(backup = %info.id, service, "finished an interrupted delete");
            }
            Err(e) => tracing::warn!(backup = %info.id, service, "{e}"),
        }
    }
}

/// The reason of error `e`, to be quoted in another error without repeating its backend.
pub(crate) fn cause(e: Error) -> String {
    match e {
        Error::Backend { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// Logs the outcome of a sweep run before a backup or after a delete: best effort, as the next one
/// tries again.
pub(crate) fn sweep_quietly(swept: Result<usize>) {
    match swept {
        Ok(0) => {}
        Ok(n) => tracing::info!(claims = n, "swept what backups whose process is gone left"),
        Err(e) => tracing::warn!("cannot sweep what backups whose process is gone left: {e}"),
    }
}

/// Work on a backup's data that runs on a blocking thread, and the way to stop it: the work
/// holds [`busy`](Self::busy) while it writes and reads [`cancelled`](Self::cancelled) as it
/// goes; whoever stops it sets the flag and waits for the lock, after which nothing writes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Work {
    cancelled: Arc<AtomicBool>,
    busy: Arc<Mutex<()>>,
}

impl Work {
    /// Set once the work must stop.
    pub(crate) fn cancelled(&self) -> &AtomicBool {
        &self.cancelled
    }

    /// Held while the work writes.
    pub(crate) fn busy(&self) -> MutexGuard<'_, ()> {
        self.busy.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops the work: once this returns, it writes no more until the guard is dropped.
    pub(crate) fn stop(&self) -> MutexGuard<'_, ()> {
        self.cancelled.store(true, Ordering::Relaxed);
        self.busy()
    }
}

/// A cleanup that needs more than removing files (a database to drop); answers whether it
/// finished (if not, a claim is left for the next sweep).
pub(crate) type Undo = Box<dyn FnOnce() -> bool + Send + Sync>;

/// The claim on the id of a backup being taken (see [`Catalog::claim`]).
///
/// Dropped before it is committed (the backup failed, or was cancelled or timed out at an
/// `.await`), it stops the backup's [`work`](Self::work), removes the data
/// [registered](Self::remove_on_drop) and runs its [undo](Self::undo_on_drop), unless the
/// metadata was already committed, and then drops the claim. All of it is done before the drop
/// returns, so a caller that retries or exits next finds nothing left behind; the thread
/// that drops it waits for that (removing files, or one client session for a database).
pub(crate) struct Claim {
    id: String,
    token: String,
    metadata: PathBuf,
    pending: PathBuf,
    /// The claim file, locked while the claim lives: its owner is alive.
    lock: Option<HeldLock>,
    data: Vec<PathBuf>,
    undo: Option<Undo>,
    work: Work,
    armed: bool,
    /// Whether a drop leaves the claim (unlocked) for the next sweep.
    leave: bool,
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claim")
            .field("id", &self.id)
            .field("data", &self.data)
            .field("undo", &self.undo.is_some())
            .field("armed", &self.armed)
            .finish()
    }
}

impl Claim {
    /// The id claimed.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// A token no other claim is given, in this directory or any other: what the backup makes
    /// outside the directory is named or marked with it, so that a cleanup or a sweep
    /// removes only what this claim made, never what another directory's backup of the same
    /// id made at the same moment.
    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// The file or tree at `path` is data of this backup.
    pub(crate) fn remove_on_drop(&mut self, path: PathBuf) {
        self.data.push(path);
    }

    /// What else undoes this backup if it is dropped unfinished; `None` once there is
    /// nothing more to undo (or it was undone another way).
    pub(crate) fn undo_on_drop(&mut self, undo: Option<Undo>) {
        self.undo = undo;
    }

    /// Dropped unfinished, the claim stays (unlocked) for the next sweep, which removes what
    /// the backup left: for a cleanup that could not be done now (its server unreachable).
    pub(crate) fn leave_to_sweep(&mut self) {
        self.undo = None;
        self.leave = true;
    }

    /// The work writing this backup's data on a blocking thread.
    pub(crate) fn work(&self) -> Work {
        self.work.clone()
    }

    /// The backup was committed: its data stays, and the claim is dropped.
    fn finish(mut self) {
        self.armed = false;
        // A claim that is already gone is what was wanted.
        let _ = std::fs::remove_file(&self.pending);
    }

    /// What a process killed while it takes the backup leaves: the claim, unlocked, and the
    /// data, with nothing undone.
    #[cfg(test)]
    pub(crate) fn die(mut self) {
        self.armed = false;
        self.undo = None;
        self.lock = None;
        wait_unlocked(&self.pending);
    }
}

/// Waits until no process holds the lock on the file at `path` (tests). A lock outlives the
/// descriptor closed by a kill for as long as a child process that was being started in the
/// meantime (another test's, here) holds a copy of it, which it does until it execs.
#[cfg(test)]
pub(crate) fn wait_unlocked(path: &Path) {
    if let Ok(file) = std::fs::File::open(path) {
        let _ = file.lock();
        // Released for every copy: a child another test starts meanwhile shares this one.
        let _ = file.unlock();
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let _stopped = self.work.stop();
        // Committed but not yet told so (cancelled while the directory was being synced):
        // the backup is listed, so its data stays.
        let mut clean = !self.leave;
        if !self.metadata.exists() {
            for path in &self.data {
                if let Err(e) = tree::remove_tree(path) {
                    tracing::warn!(backup = %self.id, "an unfinished backup left data: {e}");
                    clean = false;
                }
            }
            if let Some(undo) = self.undo.take() {
                clean &= undo();
            }
        }
        // What could not be removed now is the next sweep's, which finds the claim.
        if clean {
            let _ = std::fs::remove_file(&self.pending);
        }
        // Only now, with nothing left of it, may a sweep take the claim.
        drop(self.lock.take());
    }
}

/// Whether `id` is one [`Catalog::claim`] hands out to `service`: `<service>-<ms>-<n>`.
fn is_id_of(id: &str, service: &str) -> bool {
    let numbers = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    id.strip_prefix(service)
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|rest| rest.split_once('-'))
        .is_some_and(|(ms, n)| numbers(ms) && numbers(n))
}

/// A service name becomes part of file names: it must be a DNS label, like every service name.
pub(crate) fn check_service(service: &str) -> Result<()> {
    match dns_label_problem(service) {
        Some(reason) => Err(Error::invalid("backup.service", service, reason)),
        None => Ok(()),
    }
}

/// Ids are file names: an id holding anything but lowercase letters, digits and '-' was never
/// handed out, and must not reach the file system (`../`).
pub(crate) fn check_id(id: &str) -> Result<()> {
    if id.is_empty()
        || id.len() > 128
        || !id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(Error::invalid(
            "backup id",
            id,
            "not an id this provider hands out (1 to 128 of a-z, 0-9 and '-')",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::BackupCheck;

    thread_local! {
        /// The step after which [`create_claim`] stops on this thread, as a kill would.
        pub(super) static KILLED_AFTER: std::cell::Cell<Option<&'static str>> =
            const { std::cell::Cell::new(None) };
    }

    #[tokio::test]
    async fn a_claim_killed_while_it_is_written_leaves_nothing_a_sweep_cannot_remove() {
        let at = Timestamp::from_millis(1_000);
        for step in ["created", "written", "linked"] {
            let dir = tempfile::tempdir().unwrap();
            let catalog = Catalog::new(dir.path(), "test", "test a");
            let pending = catalog.data_path("web-1000-000", PENDING);
            let note = Note {
                source: "test a".into(),
                token: "0123".into(),
                outside: false,
            };
            KILLED_AFTER.with(|k| k.set(Some(step)));
            let killed = create_claim(&pending, "0123", &note);
            KILLED_AFTER.with(|k| k.set(None));
            assert!(killed.is_err(), "{step}");
            // No claim, or a whole one: never an empty one that no sweep could tell from an
            // older version's.
            if let Ok(body) = std::fs::read(&pending) {
                let note: Note = serde_json::from_slice(&body).unwrap();
                assert_eq!(note.token, "0123", "{step}");
            }
            // A claim being written by a live process is left alone.
            let live = catalog.data_path("web-1000-001", PENDING);
            let mut writing = live.as_os_str().to_owned();
            writing.push(".4567.new");
            let held = std::fs::File::create(&writing).unwrap();
            held.lock().unwrap();
            for abandoned in catalog.abandoned().await.unwrap() {
                catalog.forget(abandoned).await.unwrap();
            }
            assert!(std::path::Path::new(&writing).exists(), "{step}");
            drop(held);
            std::fs::remove_file(&writing).unwrap();
            let left: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert!(left.is_empty(), "killed after {step}: {left:?}");
            let again = catalog.claim("web", at).await.unwrap();
            assert_eq!(again.id(), "web-1000-000", "{step}");
        }
    }

    /// Commits a backup of `service` at `at` labelled `label`; its id.
    async fn take(catalog: &Catalog, service: &str, label: &str, at: Timestamp) -> String {
        let claim = catalog.claim(service, at).await.unwrap();
        let id = claim.id().to_owned();
        catalog
            .commit(&catalog.info(&id, service, label, at), claim)
            .await
            .unwrap();
        id
    }

    #[tokio::test]
    async fn ids_are_unique_listed_oldest_first_and_pending_ones_are_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::new(dir.path(), "test", "test a");
        let at = Timestamp::from_millis(1_000);
        let a = catalog.claim("web", at).await.unwrap();
        let b = catalog.claim("web", at).await.unwrap();
        assert_eq!(a.id(), "web-1000-000");
        assert_eq!(b.id(), "web-1000-001");
        assert!(catalog.list("web").await.unwrap().is_empty());

        let info_b = catalog
            .info(b.id(), "web", "second", at)
            .with_checks(vec![BackupCheck::new("files", 2, "ab")]);
        catalog.commit(&info_b, b).await.unwrap();
        let info_a = catalog.info(a.id(), "web", "first", at);
        catalog.commit(&info_a, a).await.unwrap();
        take(&catalog, "web-api", "x", at).await;

        let listed = catalog.list("web").await.unwrap();
        assert_eq!(listed, vec![info_a.clone(), info_b.clone()]);
        assert_eq!(catalog.read(&info_b.id).await.unwrap(), info_b);
        assert!(!catalog.data_path(&info_b.id, ".pending").exists());

        let a = &info_a.id;
        assert_eq!(catalog.start_delete(a).await.unwrap(), info_a);
        catalog.finish_delete(a).await.unwrap();
        assert!(matches!(catalog.read(a).await, Err(Error::NotFound { .. })));
        assert!(matches!(
            catalog.start_delete(a).await,
            Err(Error::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn a_delete_unlists_the_backup_before_its_data_goes_and_holds_the_id_until_done() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::new(dir.path(), "test", "test a");
        let at = Timestamp::from_millis(1_000);
        let id = take(&catalog, "web", "v1", at).await;
        let data = catalog.data_path(&id, ".dump");
        std::fs::write(&data, b"data").unwrap();

        // Interrupted after the metadata moved aside: not listed, its data still there.
        let info = catalog.start_delete(&id).await.unwrap();
        assert!(catalog.list("web").await.unwrap().is_empty());
        assert!(matches!(
            catalog.read(&id).await,
            Err(Error::NotFound { .. })
        ));
        assert!(data.exists());
        assert_eq!(
            catalog.interrupted_deletes("web").await.unwrap(),
            std::slice::from_ref(&info)
        );
        assert!(
            catalog
                .interrupted_deletes("web-api")
                .await
                .unwrap()
                .is_empty()
        );
        // Its id is not handed out again while its data may remain.
        let next = catalog.claim("web", at).await.unwrap();
        assert_eq!(next.id(), "web-1000-001");
        drop(next);
        // Deleting it again resumes the delete.
        assert_eq!(catalog.start_delete(&id).await.unwrap(), info);
        std::fs::remove_file(&data).unwrap();
        catalog.finish_delete(&id).await.unwrap();
        catalog.finish_delete(&id).await.unwrap();
        assert!(catalog.interrupted_deletes("web").await.unwrap().is_empty());
        assert_eq!(catalog.claim("web", at).await.unwrap().id(), id);
        // Another source's backup is neither deleted nor resumed.
        let other = Catalog::new(dir.path(), "test", "test b");
        let theirs = take(&other, "web", "v1", at).await;
        let err = catalog.start_delete(&theirs).await.unwrap_err();
        assert!(err.to_string().contains("not of test a"), "{err}");
        other.start_delete(&theirs).await.unwrap();
        let err = catalog.start_delete(&theirs).await.unwrap_err();
        assert!(err.to_string().contains("not of test a"), "{err}");
        assert!(catalog.interrupted_deletes("web").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_claim_dropped_unfinished_removes_its_data_but_never_a_committed_backup() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::new(dir.path(), "test", "test a");
        let at = Timestamp::from_millis(1_000);
        let undone = Arc::new(AtomicBool::new(false));
        let mut claim = catalog.claim("web", at).await.unwrap();
        let (file, tree) = (
            catalog.data_path(claim.id(), ".dump"),
            catalog.data_path(claim.id(), ""),
        );
        std::fs::write(&file, b"part").unwrap();
        std::fs::create_dir_all(tree.join("a/b")).unwrap();
        claim.remove_on_drop(file.clone());
        claim.remove_on_drop(tree.clone());
        let flag = undone.clone();
        claim.undo_on_drop(Some(Box::new(move || {
            flag.store(true, Ordering::SeqCst);
            true
        })));
        let work = claim.work();
        drop(claim);
        assert!(work.cancelled().load(Ordering::SeqCst));
        assert!(undone.load(Ordering::SeqCst));
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");

        // Committed: the data is the backup's, whatever the claim does after.
        let mut claim = catalog.claim("web", at).await.unwrap();
        let id = claim.id().to_owned();
        let file = catalog.data_path(&id, ".dump");
        std::fs::write(&file, b"whole").unwrap();
        claim.remove_on_drop(file.clone());
        catalog
            .commit(&catalog.info(&id, "web", "v1", at), claim)
            .await
            .unwrap();
        assert!(file.exists());
        assert_eq!(catalog.list("web").await.unwrap().len(), 1);
        assert!(!catalog.data_path(&id, ".pending").exists());
    }

    #[tokio::test]
    async fn a_sweep_takes_only_claims_whose_owner_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::new(dir.path(), "test", "test a");
        let at = Timestamp::from_millis(1_000);
        // A backup still being taken, one whose process was killed, one killed once its
        // metadata was committed, another source's killed one, and a claim written before
        // claims recorded their owner.
        let running = catalog.claim("web", at).await.unwrap();
        let killed = catalog.claim("web", at).await.unwrap();
        let (id, token) = (killed.id().to_owned(), killed.token().to_owned());
        std::fs::write(catalog.data_path(&id, ".dump"), b"part").unwrap();
        std::fs::write(catalog.data_path(&id, ".json.tmp"), b"{").unwrap();
        killed.die();
        let committed = catalog.claim("web", at).await.unwrap();
        let info = catalog.info(committed.id(), "web", "v1", at);
        let listed = catalog.data_path(committed.id(), ".json");
        std::fs::write(&listed, serde_json::to_vec(&info).unwrap()).unwrap();
        committed.die();
        let other = Catalog::new(dir.path(), "test", "test b");
        let theirs = other.claim("web", at).await.unwrap();
        let their_claim = other.data_path(theirs.id(), PENDING);
        theirs.die();
        let older = dir.path().join("web-2000-000.pending");
        std::fs::write(&older, b"").unwrap();

        let found = catalog.abandoned().await.unwrap();
        let found_ids: Vec<(&str, &str)> = found.iter().map(|a| (a.id(), a.token())).collect();
        assert_eq!(found_ids, [(id.as_str(), token.as_str())]);
        // Another sweep meanwhile does not take it.
        assert!(catalog.abandoned().await.unwrap().is_empty());
        // The committed backup keeps its data and loses its claim.
        assert!(!catalog.data_path(&info.id, PENDING).exists());
        assert_eq!(catalog.list("web").await.unwrap(), [info]);
        for abandoned in found {
            catalog.forget(abandoned).await.unwrap();
        }
        for suffix in [PENDING, ".json.tmp"] {
            assert!(!catalog.data_path(&id, suffix).exists(), "{suffix}");
        }
        assert!(catalog.abandoned().await.unwrap().is_empty());
        assert!(catalog.data_path(running.id(), PENDING).exists());
        assert!(their_claim.exists() && older.exists());
        // Their own provider sweeps the other source's.
        assert_eq!(other.abandoned().await.unwrap().len(), 1);
        // A new claim takes the swept id again.
        drop(running);
        assert_eq!(catalog.claim("web", at).await.unwrap().id(), "web-1000-000");
    }

    #[tokio::test]
    async fn a_claim_whose_cleanup_failed_is_left_to_the_next_sweep() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::new(dir.path(), "test", "test a");
        let mut claim = catalog.claim("web", Timestamp::EPOCH).await.unwrap();
        let id = claim.id().to_owned();
        claim.undo_on_drop(Some(Box::new(|| false)));
        drop(claim);
        let found = catalog.abandoned().await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id(), id);
    }

    /// A waker that notes it was woken.
    struct Woken(AtomicBool);

    impl std::task::Wake for Woken {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn an_id_committed_while_another_claim_looks_at_it_is_not_handed_out_twice() {
        use std::future::Future;
        let at = Timestamp::from_millis(1_000);
        let woken = Arc::new(Woken(AtomicBool::new(false)));
        let waker = std::task::Waker::from(woken.clone());
        let mut cx = std::task::Context::from_waker(&waker);
        // A second claim takes a few steps on the blocking pool, looking at the first id;
        // the first backup is committed (and its claim dropped) after each number of them,
        // several times over, as a step may end before it is waited for.
        for steps in (1..=5).cycle().take(50) {
            let dir = tempfile::tempdir().unwrap();
            let catalog = Catalog::new(dir.path(), "test", "test a");
            let first = catalog.claim("web", at).await.unwrap();
            let info = catalog.info(first.id(), "web", "first", at);
            let mut second = Box::pin(catalog.claim("web", at));
            let mut claimed = None;
            for _ in 0..steps {
                woken.0.store(false, Ordering::SeqCst);
                if let std::task::Poll::Ready(claim) = second.as_mut().poll(&mut cx) {
                    claimed = Some(claim);
                    break;
                }
                while !woken.0.load(Ordering::SeqCst) {
                    tokio::task::yield_now().await;
                }
            }
            catalog.commit(&info, first).await.unwrap();
            let second = match claimed {
                Some(claim) => claim,
                None => second.await,
            };
            assert_eq!(second.unwrap().id(), "web-1000-001", "after {steps} steps");
        }
    }

    /// A disk that fills up as the metadata is written fails the backup, and what was
    /// written of the metadata goes with the rest: nothing is left behind.
    #[tokio::test]
    async fn a_commit_that_cannot_write_its_metadata_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::new(dir.path(), "test", "test a");
        let at = Timestamp::from_millis(1_000);
        let claim = catalog.claim("web", at).await.unwrap();
        let id = claim.id().to_owned();
        std::os::unix::fs::symlink("/dev/full", catalog.data_path(&id, ".json.tmp")).unwrap();
        let info = catalog.info(&id, "web", "v1", at);
        let err = catalog.commit(&info, claim).await.unwrap_err().to_string();
        assert!(err.contains(".json.tmp"), "{err}");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{left:?}");
        assert!(catalog.list("web").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_directory_is_synced_before_the_metadata_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::new(dir.path(), "test", "test a");
        let at = Timestamp::from_millis(1_000);
        let id = take(&catalog, "web", "v1", at).await;
        let synced = durable::log::synced_under(dir.path());
        let tmp = catalog.data_path(&id, ".json.tmp");
        let dir = dir.path().to_owned();
        // The claim's name, then the data's, then the metadata.
        assert_eq!(synced, [dir.clone(), dir.clone(), tmp, dir]);
    }

    #[tokio::test]
    async fn a_claim_is_durable_before_it_is_handed_out() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::new(dir.path(), "test", "test a");
        let claim = catalog
            .claim("web", Timestamp::from_millis(1_000))
            .await
            .unwrap();
        assert_eq!(durable::log::synced_under(dir.path()), [dir.path()]);
        drop(claim);
    }

    #[tokio::test]
    async fn catalogs_sharing_a_directory_see_only_their_own_source() {
        let dir = tempfile::tempdir().unwrap();
        let a = Catalog::new(dir.path(), "test", "test a");
        let b = Catalog::new(dir.path(), "test", "test b");
        let at = Timestamp::from_millis(1_000);
        let claim = a.claim("web", at).await.unwrap();
        let info_a = a.info(claim.id(), "web", "of a", at);
        a.commit(&info_a, claim).await.unwrap();
        // Ids stay unique across the two.
        let id_b = take(&b, "web", "of b", at).await;
        assert_ne!(info_a.id, id_b);
        // Metadata from before sources were recorded belongs to everyone.
        let claim = a.claim("web", at).await.unwrap();
        let old = BackupInfo::new(claim.id(), "web", "old", at);
        a.commit(&old, claim).await.unwrap();

        let labels = |list: Vec<BackupInfo>| list.into_iter().map(|i| i.label).collect::<Vec<_>>();
        assert_eq!(labels(a.list("web").await.unwrap()), ["of a", "old"]);
        assert_eq!(labels(b.list("web").await.unwrap()), ["of b", "old"]);
        assert_eq!(a.read(&info_a.id).await.unwrap(), info_a);
        assert_eq!(b.read(&old.id).await.unwrap(), old);
        let err = b.read(&info_a.id).await.unwrap_err().to_string();
        assert!(
            err.contains(&info_a.id) && err.contains("test a") && err.contains("not of test b"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn bad_service_names_and_ids_are_refused_before_touching_files() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::new(dir.path().join("never"), "test", "test a");
        let err = catalog.claim("../etc", Timestamp::EPOCH).await.unwrap_err();
        assert!(err.to_string().contains("backup.service"), "{err}");
        for id in ["", "../x", "a/b", "A", "x.json"] {
            let err = catalog.read(id).await.unwrap_err();
            assert!(err.to_string().contains("backup id"), "{id}: {err}");
            let err = catalog.start_delete(id).await.unwrap_err();
            assert!(err.to_string().contains("backup id"), "{id}: {err}");
        }
        assert!(!dir.path().join("never").exists());
    }

    #[tokio::test]
    async fn unreadable_metadata_is_skipped_by_a_listing_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::new(dir.path(), "test", "test a");
        let old = take(&catalog, "web", "old", Timestamp::from_millis(1_000)).await;
        let corrupt = dir.path().join("web-2000-000.json");
        std::fs::write(&corrupt, b"{not json").unwrap();
        let new = take(&catalog, "web", "new", Timestamp::from_millis(3_000)).await;
        let ids: Vec<_> = catalog.list("web").await.unwrap();
        let ids: Vec<_> = ids.into_iter().map(|i| i.id).collect();
        assert_eq!(ids, [old, new]);
        assert!(corrupt.exists());
        // Reading it by its id still says why it cannot be used.
        let err = catalog.read("web-2000-000").await.unwrap_err();
        assert!(err.to_string().contains("web-2000-000.json"), "{err}");
    }

    #[tokio::test]
    async fn another_services_damaged_metadata_does_not_stop_a_listing() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::new(dir.path(), "test", "test a");
        let at = Timestamp::from_millis(1_000);
        let id = take(&catalog, "web", "v1", at).await;
        for name in ["web-api-1-000.json", "web-1-1000-000.json"] {
            std::fs::write(dir.path().join(name), b"{not json").unwrap();
        }
        let listed = catalog.list("web").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, id);
        assert!(catalog.list("web-api").await.unwrap().is_empty());
        assert!(is_id_of("web-1-000", "web"));
        for (id, service) in [
            ("web-api-1-000", "web"),
            ("web-1", "web"),
            ("web-1-", "web"),
        ] {
            assert!(!is_id_of(id, service), "{id}");
        }
    }

    #[tokio::test]
    async fn an_in_place_restore_marks_the_source_partial_until_a_restore_finishes() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::new(dir.path(), "test", "test a");
        let mut done = catalog.begin_restore("web-1-000", true).await.unwrap();
        assert!(done.in_place() && done.partial());
        done.finish();
        drop(done);
        assert!(catalog.interrupted_restore().await.unwrap().is_none());
        // Cut short: the marker stays, and no sweep clears it.
        drop(catalog.begin_restore("web-1-000", true).await.unwrap());
        for _ in 0..2 {
            let found = catalog.interrupted_restore().await.unwrap().unwrap();
            assert_eq!(
                (found.id(), found.in_place(), found.partial()),
                ("web-1-000", true, true)
            );
        }
        // Taken over by a restore that swaps a copy in: held, still partial, and so while
        // it has not finished.
        let found = catalog.interrupted_restore().await.unwrap().unwrap();
        let next = catalog
            .take_over_restore(found, "web-2-000", false)
            .await
            .unwrap();
        assert!(!next.in_place() && next.partial());
        assert!(catalog.interrupted_restore().await.unwrap().is_none());
        let err = catalog.begin_restore("web-3-000", true).await.unwrap_err();
        assert!(err.to_string().contains("of backup `web-2-000`"), "{err}");
        drop(next);
        let found = catalog.interrupted_restore().await.unwrap().unwrap();
        assert_eq!(
            (found.id(), found.in_place(), found.partial()),
            ("web-2-000", false, true)
        );
        let mut last = catalog
            .take_over_restore(found, "web-3-000", true)
            .await
            .unwrap();
        last.finish();
        drop(last);
        assert!(catalog.interrupted_restore().await.unwrap().is_none());
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[tokio::test]
    async fn a_restore_marker_is_held_while_its_restore_lives_and_handed_to_a_sweep_once_gone() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::new(dir.path(), "test", "test a");
        let other = Catalog::new(dir.path(), "test", "test b");
        let running = catalog.begin_restore("web-1-000", false).await.unwrap();
        // One restore of a source at a time; another source's restores are apart.
        let second = catalog
            .begin_restore("web-2-000", false)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            second.contains("another restore of test a (of backup `web-1-000`)"),
            "{second}"
        );
        let theirs = other.begin_restore("web-2-000", false).await.unwrap();
        // A live restore is never handed to a sweep.
        assert!(catalog.interrupted_restore().await.unwrap().is_none());
        drop(running);
        assert!(catalog.interrupted_restore().await.unwrap().is_none());

        let killed = catalog.begin_restore("web-3-000", false).await.unwrap();
        let token = killed.token().to_owned();
        killed.die();
        assert!(catalog.begin_restore("web-4-000", false).await.is_err());
        let found = catalog.interrupted_restore().await.unwrap().unwrap();
        assert_eq!((found.id(), found.token()), ("web-3-000", token.as_str()));
        // Locked by the sweep that holds it.
        assert!(catalog.interrupted_restore().await.unwrap().is_none());
        let mut left = found;
        left.leave_to_sweep();
        drop(left);
        let found = catalog.interrupted_restore().await.unwrap().unwrap();
        drop(found);
        assert!(catalog.interrupted_restore().await.unwrap().is_none());
        drop(catalog.begin_restore("web-4-000", false).await.unwrap());
        drop(theirs);
        // Killed before its marker was linked into place: the marker under its own name goes,
        // unless its process still holds it.
        let stem = catalog.restore_marker_stem();
        let unlinked = dir.path().join(format!("{stem}.0123.new"));
        let starting = dir.path().join(format!("{stem}.4567.new"));
        let note = RestoreNote {
            source: "test a".into(),
            id: "web-5-000".into(),
            token: "4567".into(),
            in_place: false,
            partial: false,
        };
        drop(create_claim(&unlinked, "0123", &note).unwrap());
        let held = create_claim(&starting, "4567", &note).unwrap();
        assert!(catalog.interrupted_restore().await.unwrap().is_none());
        assert!(!unlinked.exists() && starting.exists());
        drop(held);
        std::fs::remove_file(&starting).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert!(names.is_empty(), "{names:?}");
    }
}
