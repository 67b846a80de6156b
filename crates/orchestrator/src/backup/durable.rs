//! Putting what a backup wrote on disk before its metadata says it exists.
//!
//! A backup is reported taken once its metadata is committed; if a power loss could still
//! lose its data, the catalog would list a backup that cannot be restored. So every file of
//! the data is synced, then every directory that holds one of its entries (a new file's name
//! is durable only once its directory is synced), and only then is the metadata written.
//!
//! A directory that cannot be synced at all (`EINVAL`: some network and virtual file
//! systems) is passed over: there is nothing more to do for it. Any other failure is an
//! error, and the backup is not recorded.

use std::io;
use std::path::Path;

/// Whether a directory sync failed only because the file system cannot sync directories.
fn unsupported(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported
    )
}

/// Syncs the file at `path` (blocking).
pub(crate) fn sync_file_blocking(path: &Path) -> io::Result<()> {
    std::fs::File::open(path)?.sync_all()?;
    synced(path);
    Ok(())
}

/// Syncs the directory at `path`, so that the names in it are durable (blocking).
pub(crate) fn sync_dir_blocking(path: &Path) -> io::Result<()> {
    match std::fs::File::open(path)?.sync_all() {
        Ok(()) => {}
        Err(e) if unsupported(&e) => {}
        Err(e) => return Err(e),
    }
    synced(path);
    Ok(())
}

/// Syncs the file at `path`.
pub(crate) async fn sync_file(path: &Path) -> io::Result<()> {
    tokio::fs::File::open(path).await?.sync_all().await?;
    synced(path);
    Ok(())
}

/// Syncs the directory at `path`, so that the names in it are durable.
pub(crate) async fn sync_dir(path: &Path) -> io::Result<()> {
    match tokio::fs::File::open(path).await?.sync_all().await {
        Ok(()) => {}
        Err(e) if unsupported(&e) => {}
        Err(e) => return Err(e),
    }
    synced(path);
    Ok(())
}

/// Notes that `path` was synced through a handle already open on it.
#[cfg(not(test))]
pub(crate) fn synced(_path: &Path) {}

/// Notes that `path` was synced through a handle already open on it (tests read the order).
#[cfg(test)]
pub(crate) fn synced(path: &Path) {
    log::LOG
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(path.to_owned());
}

#[cfg(test)]
pub(crate) mod log {
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    /// Every path synced by this process's tests, in order.
    pub(super) static LOG: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

    /// The paths under `root` synced so far, in order (tests run in parallel, each in a
    /// directory of its own).
    pub(crate) fn synced_under(root: &Path) -> Vec<PathBuf> {
        LOG.lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|p| p.starts_with(root))
            .cloned()
            .collect()
    }
}
