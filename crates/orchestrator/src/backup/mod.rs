//! Real [`BackupProvider`](crate::BackupProvider)s (feature `backup`) and the backup
//! conformance suite (feature `testkit`).
//!
//! - `PostgresBackup`: a PostgreSQL database, either dumped with `pg_dump --format=custom`
//!   and restored with `pg_restore --clean --if-exists --jobs N`, or copied to a template
//!   database (`CREATE DATABASE … TEMPLATE …`) for a fast restore. Restores are verified by the
//!   row counts and checksums of chosen tables, taken in the same snapshot as the dump.
//! - `DirectorySnapshot`: a directory tree (files, permissions, symlinks as symlinks) for
//!   services with local state, restored by building the tree beside the original and
//!   renaming it into place, verified by per-file SHA-256.
//! - [`Retention`] (always compiled): keep the last N backups of each service; both providers
//!   and [`InMemoryBackup`](crate::InMemoryBackup) enforce it after every successful backup,
//!   and a rollback is refused when the backup it takes first would expire the one it
//!   restores.
//!
//! Each provider writes one small JSON file per backup ([`BackupInfo`](crate::BackupInfo)) in
//! its directory, so `list` and `info` answer across processes: the process that rolls back
//! need not be the one that took the backup.
//!
//! A listed backup always has all its data, whatever is interrupted and when:
//! - **Backup**: the data is synced to disk (files, then the directories naming them) before
//!   the metadata is written, so a backup reported taken survives a power loss. A backup that
//!   fails, or is cancelled at an `.await` (its future dropped, say by a timeout), leaves
//!   nothing behind: no partial dump, snapshot tree or snapshot database, and no claim on its
//!   id. The cleanup of a cancelled backup is done by the drop, so it is complete when the
//!   drop returns (a retry or an exit next finds nothing), at the price of the dropping
//!   thread waiting for it (removing files, or `psql` sessions).
//! - **Killed**: a backup whose process dies (killed, out of memory, power lost) cannot clean
//!   up. Its claim records whose it is, and is locked while its process lives; the next
//!   backup or delete of the provider, or its `sweep()`, removes what such a claim left (the
//!   partial dump or snapshot tree; in template mode the copy, and the snapshot database if
//!   it bears the claim's mark), and never touches a backup that another process is still
//!   taking.
//! - **Delete**: the metadata goes first (renamed to `<id>.deleting`, which is never listed),
//!   then the data. A delete that is interrupted or fails to remove the data leaves the
//!   backup unlisted and its id reserved; deleting the id again, or the next backup of the
//!   service, finishes it.
//! - **Restore**: a directory snapshot or a template-mode database is copied and verified
//!   before it replaces anything; a restore cancelled before the swap changes nothing, and
//!   the swap itself is never left half-done (see each provider).
//! - **Killed restore**: a directory or template-mode restore holds a locked, recorded marker
//!   in the store (`restore-<hash of the source>.restoring`: one restore of a directory or
//!   database at a time; a second fails, changing nothing). It also holds a lock that every
//!   store of the same directory or database sees (a `flock`ed file beside the directory;
//!   the server's advisory lock keyed by the database's name), so restores through two
//!   stores exclude each other too, and a sweep puts back a killed restore only under it.
//!   A restore whose process dies
//!   leaves the marker unlocked; the next restore, or the provider's `sweep()`, puts what it
//!   left back in one piece, never touching a restore another process is running: the
//!   directory moved aside between the two renames is moved back, a database left refusing
//!   connections takes them again, and the copies and the replaced tree or database are
//!   removed. A swap that was done stays done; one that was not is undone (the restore was
//!   never reported done, and whoever asked for it retries from a whole, known state).
//! - **Dump restore**: `pg_restore --clean` writes into the database in place, so one cut
//!   short cannot be undone. It holds the same marker (one restore of a database at a time),
//!   which records that the database may hold part of a backup and stays until a restore
//!   finishes: every sweep ends the cut-short restore's sessions and answers an error saying
//!   so, every backup of the database is refused (it would later "restore" the half-restored
//!   state), and the next restore takes the marker over. The database is marked on the server
//!   too (a setting of the database), so that backups through every other store of it are
//!   refused until a restore, through any store, finishes. A directory restore is never left
//!   half done (see above), so it needs no such mark.
//!
//! Every external program is started with `tokio::process::Command` and separate arguments,
//! never through a shell; names that reach SQL are quoted as identifiers or literals, and the
//! database name reaches libpq as a quoted connection-string value.

#[cfg(feature = "backup")]
mod catalog;
#[cfg(feature = "backup")]
mod command;
#[cfg(feature = "backup")]
mod durable;
#[cfg(feature = "backup")]
mod files;
#[cfg(feature = "backup")]
mod postgres;
mod retention;
#[cfg(feature = "backup")]
mod sql;
#[cfg(any(feature = "testkit", test))]
pub mod testkit;
#[cfg(feature = "backup")]
mod tree;

#[cfg(feature = "backup")]
pub use files::DirectorySnapshot;
#[cfg(feature = "backup")]
pub use postgres::{PostgresBackup, PostgresConnection, PostgresMode, PostgresSettings, TableName};
pub use retention::Retention;
