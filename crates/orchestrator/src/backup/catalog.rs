//! One JSON file per backup in a provider's directory, so `list` and `info` answer across
//! processes.
//!
//! Layout: `<dir>/<id>.json` holds the [`BackupInfo`]; while a backup is being taken,
//! `<dir>/<id>.pending` claims its id (created exclusively, so two processes never take the
//! same id) and the provider's data sits beside it under the id. Only `.json` files are listed,
//! so a backup that is still running or was interrupted is never offered for a restore.
//!
//! Several providers may share a directory: each backup records its provider's source (see
//! [`BackupInfo::source`]), and a catalog lists and reads only its own source's backups.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serin_signals::{Timestamp, dns_label_problem};
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};
use crate::hooks::BackupInfo;

/// How many ids one millisecond can hand out to one service.
const IDS_PER_MILLI: u32 = 1000;

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

    /// Claims a new id for a backup of `service` taken at `now`; the caller must
    /// [`commit`](Self::commit) or [`release`](Self::release) it.
    pub(crate) async fn claim(&self, service: &str, now: Timestamp) -> Result<String> {
        check_service(service)?;
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| self.io_error("create the backup directory", &self.dir, e))?;
        for n in 0..IDS_PER_MILLI {
            let id = format!("{service}-{}-{n:03}", now.as_millis());
            if tokio::fs::try_exists(self.data_path(&id, ".json"))
                .await
                .unwrap_or(true)
            {
                continue;
            }
            let pending = self.data_path(&id, ".pending");
            match tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&pending)
                .await
            {
                Ok(_) => return Ok(id),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(self.io_error("claim a backup id at", &pending, e)),
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

    /// Records `info` (written beside, then renamed into place) and drops the claim.
    pub(crate) async fn commit(&self, info: &BackupInfo) -> Result<()> {
        let path = self.data_path(&info.id, ".json");
        let tmp = self.data_path(&info.id, ".json.tmp");
        let body = serde_json::to_vec_pretty(info).map_err(|e| {
            Error::backend(
                "backup",
                self.provider.as_str(),
                format!("cannot encode the metadata of `{}`: {e}", info.id),
            )
        })?;
        // On disk before the rename, and the rename itself after it: a power loss leaves the
        // old state or the whole new file, never an empty one that no listing could read.
        let write = async {
            let mut file = tokio::fs::File::create(&tmp).await?;
            file.write_all(&body).await?;
            file.sync_all().await
        };
        write.await.map_err(|e| self.io_error("write", &tmp, e))?;
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(|e| self.io_error("write", &path, e))?;
        if let Some(dir) = path.parent() {
            // Best effort: a file system that cannot sync a directory still renamed the file.
            if let Ok(dir) = tokio::fs::File::open(dir).await {
                let _ = dir.sync_all().await;
            }
        }
        self.release(&info.id).await;
        Ok(())
    }

    /// A guard over the claimed `id` whose backup writes `files`: dropped before it is
    /// [`finished`](Unfinished::finished) (the backup was cancelled or timed out at an
    /// `.await`), it removes them and the claim, unless the metadata was already committed.
    pub(crate) fn unfinished(&self, id: &str, files: Vec<PathBuf>) -> Unfinished {
        Unfinished {
            metadata: self.data_path(id, ".json"),
            pending: self.data_path(id, ".pending"),
            files,
            armed: true,
        }
    }

    /// Drops the claim on `id` (after a failed backup, or once committed).
    pub(crate) async fn release(&self, id: &str) {
        // A claim that is already gone is what was wanted.
        let _ = tokio::fs::remove_file(self.data_path(id, ".pending")).await;
    }

    /// The metadata of backup `id`.
    pub(crate) async fn read(&self, id: &str) -> Result<BackupInfo> {
        check_id(id)?;
        let path = self.data_path(id, ".json");
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

    /// The backups of `service`, oldest first.
    pub(crate) async fn list(&self, service: &str) -> Result<Vec<BackupInfo>> {
        check_service(service)?;
        let mut entries = match tokio::fs::read_dir(&self.dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io_error("list", &self.dir, e)),
        };
        let prefix = format!("{service}-");
        let mut found = Vec::new();
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| self.io_error("list", &self.dir, e))?
        {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !(name.starts_with(&prefix) && name.ends_with(".json")) {
                continue;
            }
            let path = entry.path();
            let body = match tokio::fs::read(&path).await {
                Ok(body) => body,
                // Deleted by another process since the directory was read.
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(self.io_error("read", &path, e)),
            };
            let info = self.decode(&path, &body)?;
            // A service whose name extends this one (`web` and `web-api`) shares the prefix.
            if info.service == service && self.owns(&info) {
                found.push(info);
            }
        }
        found.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(found)
    }

    /// Forgets backup `id` (its data must already be gone).
    pub(crate) async fn remove(&self, id: &str) -> Result<()> {
        check_id(id)?;
        let path = self.data_path(id, ".json");
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(Error::not_found("backup", id)),
            Err(e) => Err(self.io_error("remove", &path, e)),
        }
    }
}

/// See [`Catalog::unfinished`]. Its removals are synchronous, as a drop cannot wait: a few
/// files, not trees.
#[derive(Debug)]
pub(crate) struct Unfinished {
    metadata: PathBuf,
    pending: PathBuf,
    files: Vec<PathBuf>,
    armed: bool,
}

impl Unfinished {
    /// The backup was committed, or its failure cleaned up: nothing is left to remove.
    pub(crate) fn finished(mut self) {
        self.armed = false;
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // Committed but not yet told so (cancelled while the claim was being released): the
        // backup is listed, so its data stays.
        if !self.metadata.exists() {
            for file in &self.files {
                let _ = std::fs::remove_file(file);
            }
        }
        let _ = std::fs::remove_file(&self.pending);
    }
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

    #[tokio::test]
    async fn ids_are_unique_listed_oldest_first_and_pending_ones_are_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::new(dir.path(), "test", "test a");
        let at = Timestamp::from_millis(1_000);
        let a = catalog.claim("web", at).await.unwrap();
        let b = catalog.claim("web", at).await.unwrap();
        assert_ne!(a, b);
        assert_eq!(a, "web-1000-000");
        assert_eq!(b, "web-1000-001");
        assert!(catalog.list("web").await.unwrap().is_empty());

        let info_b = catalog
            .info(&b, "web", "second", at)
            .with_checks(vec![BackupCheck::new("files", 2, "ab")]);
        catalog.commit(&info_b).await.unwrap();
        let info_a = catalog.info(&a, "web", "first", at);
        catalog.commit(&info_a).await.unwrap();
        let other = catalog.claim("web-api", at).await.unwrap();
        catalog
            .commit(&catalog.info(&other, "web-api", "x", at))
            .await
            .unwrap();

        let listed = catalog.list("web").await.unwrap();
        assert_eq!(listed, vec![info_a.clone(), info_b.clone()]);
        assert_eq!(catalog.read(&b).await.unwrap(), info_b);
        assert!(!catalog.data_path(&b, ".pending").exists());

        catalog.remove(&a).await.unwrap();
        assert!(matches!(
            catalog.read(&a).await,
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(
            catalog.remove(&a).await,
            Err(Error::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn catalogs_sharing_a_directory_see_only_their_own_source() {
        let dir = tempfile::tempdir().unwrap();
        let a = Catalog::new(dir.path(), "test", "test a");
        let b = Catalog::new(dir.path(), "test", "test b");
        let at = Timestamp::from_millis(1_000);
        let id_a = a.claim("web", at).await.unwrap();
        let info_a = a.info(&id_a, "web", "of a", at);
        a.commit(&info_a).await.unwrap();
        // Ids stay unique across the two.
        let id_b = b.claim("web", at).await.unwrap();
        assert_ne!(id_a, id_b);
        b.commit(&b.info(&id_b, "web", "of b", at)).await.unwrap();
        // Metadata from before sources were recorded belongs to everyone.
        let id_old = a.claim("web", at).await.unwrap();
        let old = BackupInfo::new(&id_old, "web", "old", at);
        a.commit(&old).await.unwrap();

        let labels = |list: Vec<BackupInfo>| list.into_iter().map(|i| i.label).collect::<Vec<_>>();
        assert_eq!(labels(a.list("web").await.unwrap()), ["of a", "old"]);
        assert_eq!(labels(b.list("web").await.unwrap()), ["of b", "old"]);
        assert_eq!(a.read(&id_a).await.unwrap(), info_a);
        assert_eq!(b.read(&id_old).await.unwrap(), old);
        let err = b.read(&id_a).await.unwrap_err().to_string();
        assert!(
            err.contains(&id_a) && err.contains("test a") && err.contains("not of test b"),
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
        }
        assert!(!dir.path().join("never").exists());
    }

    #[tokio::test]
    async fn unreadable_metadata_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("web-1-000.json"), b"{not json").unwrap();
        let catalog = Catalog::new(dir.path(), "test", "test a");
        let err = catalog.list("web").await.unwrap_err();
        assert!(err.to_string().contains("web-1-000.json"), "{err}");
    }
}
