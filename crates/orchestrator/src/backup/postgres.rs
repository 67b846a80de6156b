//! [`PostgresBackup`]: backups of one PostgreSQL database with `pg_dump`/`pg_restore` or a
//! template database, verified by row counts and checksums of chosen tables.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serin_signals::Timestamp;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::catalog::{
    Catalog, Claim, RestoreMark, Undo, cause, check_id, check_service, finish_interrupted_deletes,
    sweep_quietly,
};
use super::command::{Client, failed, tail};
use super::durable;
use super::retention::Retention;
use super::sql;
use super::tree::hex;
use crate::error::{Error, Result};
use crate::hooks::{BackupCheck, BackupInfo, BackupProvider};
use crate::orchestrator::Clock;

/// The subject of the check that records a dump file's size and SHA-256; its presence marks a
/// backup taken as a dump.
const DUMP_CHECK: &str = "dump";

/// How many ids a template-mode backup passes over because their snapshot database exists.
const MAX_SNAPSHOT_IDS_SKIPPED: usize = 16;

/// Where and as whom to connect. The password, if any, reaches the client programs only
/// through `PGPASSWORD` in their environment; it is never serialized, logged or shown by
/// `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PostgresConnection {
    /// Host name, IP address or socket directory.
    pub host: String,
    /// TCP port (5432 by default).
    #[serde(default = "default_port")]
    pub port: u16,
    /// The role to connect as; it must be allowed to read every table (and, to restore, to
    /// own or drop them; in template mode, to create and drop databases).
    pub user: String,
    /// The database to back up and restore.
    pub dbname: String,
    /// The password, if the server asks for one.
    #[serde(default, skip_serializing)]
    pub password: Option<String>,
}

fn default_port() -> u16 {
    5432
}

impl fmt::Debug for PostgresConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConnection")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("dbname", &self.dbname)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl PostgresConnection {
    /// A connection to `dbname` on `host:port` as `user`, without a password.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        user: impl Into<String>,
        dbname: impl Into<String>,
    ) -> Self {
        PostgresConnection {
            host: host.into(),
            port,
            user: user.into(),
            dbname: dbname.into(),
            password: None,
        }
    }

    /// With a password.
    pub fn with_password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Reads the `host`, `port`, `user`, `dbname` and `password` keys of a libpq key/value
    /// connection string (`host=127.0.0.1 port=55432 user=postgres`; values may be
    /// single-quoted, and a backslash takes the next character as it is, quoted or not).
    /// `dbname` defaults to `user`, like libpq. An error never shows the password, nor any
    /// part of the string that may hold it (a URI, which is not read).
    ///
    /// ```
    /// use serin_orchestrator::backup::PostgresConnection;
    ///
    /// let c = PostgresConnection::from_conninfo("host=127.0.0.1 port=55432 user=postgres password='a b'")?;
    /// assert_eq!((c.port, c.dbname.as_str()), (55432, "postgres"));
    /// assert!(!format!("{c:?}").contains("a b"));
    /// # Ok::<(), serin_orchestrator::Error>(())
    /// ```
    pub fn from_conninfo(conninfo: &str) -> Result<Self> {
        let pairs = parse_conninfo(conninfo)?;
        let mut c = PostgresConnection::new("", default_port(), "", "");
        let mut previous = None;
        for (key, value) in &pairs {
            match key.as_str() {
                "host" => c.host.clone_from(value),
                "port" => {
                    c.port = value.parse().map_err(|_| {
                        Error::invalid("conninfo.port", value, "must be a TCP port number")
                    })?;
                }
                "user" => c.user.clone_from(value),
                "dbname" => c.dbname.clone_from(value),
                "password" => c.password = Some(value.clone()),
                other => {
                    return Err(Error::invalid(
                        "conninfo",
                        shown_key(other, previous),
                        "unknown key: expected host, port, user, dbname or password",
                    ));
                }
            }
            previous = Some(key.as_str());
        }
        if c.dbname.is_empty() {
            c.dbname = c.user.clone();
        }
        c.validate("conninfo")?;
        Ok(c)
    }

    fn validate(&self, path: &str) -> Result<()> {
        for (field, value) in [
            ("host", &self.host),
            ("user", &self.user),
            ("dbname", &self.dbname),
        ] {
            if value.is_empty() {
                return Err(Error::invalid(
                    format!("{path}.{field}"),
                    value,
                    "must not be empty",
                ));
            }
            no_nul(&format!("{path}.{field}"), value)?;
        }
        if self.dbname.len() > 63 {
            return Err(Error::invalid(
                format!("{path}.dbname"),
                &self.dbname,
                "PostgreSQL names are at most 63 bytes",
            ));
        }
        if let Some(p) = &self.password
            && p.contains('\0')
        {
            return Err(Error::invalid(
                format!("{path}.password"),
                "<redacted>",
                "must not contain a NUL byte",
            ));
        }
        if self.port == 0 {
            return Err(Error::invalid(
                format!("{path}.port"),
                0,
                "must be a TCP port number (1 to 65535)",
            ));
        }
        Ok(())
    }
}

fn no_nul(field: &str, value: &str) -> Result<()> {
    if value.contains('\0') {
        return Err(Error::invalid(
            field,
            value.escape_debug(),
            "must not contain a NUL byte",
        ));
    }
    Ok(())
}

fn parse_conninfo(s: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            // After an unquoted password, this is likely the rest of it: never shown.
            return Err(match out.last() {
                Some((last, _)) if last == "password" => Error::invalid(
                    "conninfo",
                    "<redacted>",
                    "expected `key=value` after the password: a password holding spaces \
                     must be quoted ('…')",
                ),
                _ if key.contains("://") => Error::invalid(
                    "conninfo",
                    "<redacted>",
                    "a URI (postgresql://…) is not read: write `key=value` pairs",
                ),
                _ => Error::invalid("conninfo", shown_key(&key, None), "expected `key=value`"),
            });
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        // Quoted or not, a backslash takes the next character as it is, as libpq reads it.
        let quoted = chars.next_if_eq(&'\'').is_some();
        let mut value = String::new();
        let mut closed = !quoted;
        while let Some(c) = chars.next_if(|c| quoted || !c.is_whitespace()) {
            match c {
                '\\' => value.extend(chars.next()),
                '\'' if quoted => {
                    closed = true;
                    break;
                }
                c => value.push(c),
            }
        }
        if !closed {
            return Err(Error::invalid(
                "conninfo",
                shown_key(&key, out.last().map(|(k, _)| k.as_str())),
                "the quoted value is not closed",
            ));
        }
        out.push((key, value));
    }
}

/// A key of a connection string, following the key `previous`, as an error may show it: a
/// libpq keyword is lowercase letters, digits and `_`, and anything else may be part of a
/// password (a URI's `user:password@`), as may a key after a password (the rest of an
/// unquoted password holding a space).
fn shown_key<'a>(key: &'a str, previous: Option<&str>) -> &'a str {
    if previous != Some("password")
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        key
    } else {
        "<redacted>"
    }
}

/// How a backup is taken and restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
#[non_exhaustive]
pub enum PostgresMode {
    /// `pg_dump --format=custom` to a file in the store, taken in the same snapshot as the
    /// checksums, and read back with `pg_restore --list` before the backup is answered (a dump
    /// that cannot be read back fails the backup, naming the file); restored in place with `pg_restore --clean --if-exists --jobs N
    /// --exit-on-error`, then verified. The database stays online throughout; the restore
    /// replaces the objects in the dump (objects created after the backup, such as a new
    /// table, are left alone, and a restore fails if one of them depends on a dumped table).
    /// The database must exist (create it empty first if it was dropped). A dump that
    /// `pg_restore` cannot read, or one dumped from a newer major version than the server's,
    /// is refused before anything changes.
    /// A verification that fails after the restore is an error: the database then holds
    /// what `pg_restore` wrote, which does not match the backup.
    ///
    /// A restore holds the database's restore marker, as in template mode, and the server's
    /// restore lock of the database, so two restores of one database never run at once, from
    /// one store or from two: the second fails, changing nothing. A restore cancelled while
    /// `pg_restore` runs (its future dropped, say at a deadline) kills it and ends its
    /// sessions, those of its parallel workers too, before the drop returns. Written in place,
    /// a restore cut short (its process killed, or `pg_restore` failing part-way) cannot be
    /// undone, so the marker stays and records that the database may hold part of a backup:
    /// every [`PostgresBackup::sweep`] then answers an error saying so, after ending that
    /// restore's sessions (named `serin-restore-<token>`: a `pg_restore` whose process was
    /// killed goes on writing otherwise), and every backup is refused with an error naming
    /// the database, the backup and the marker: a backup of a half-restored database would
    /// later "restore" it half-restored. The next restore takes the marker over, and clears
    /// it once it finishes. A backup is refused while an in-place restore runs, too. The
    /// database is also marked on the server (its setting `serin.partial_restore`) until a
    /// restore finishes, so a backup through any other store of it is refused as well.
    ///
    /// `pg_restore --clean` drops each object it replaces, which waits for every lock other
    /// sessions hold on it (an application's open transaction, say). Before anything changes,
    /// each table of the database is locked as such a `DROP` locks it, and let go at once; a
    /// lock not granted within 10 s (`lock_timeout`) refuses the restore, naming the table,
    /// and the database is left unchanged and not marked. A lock taken after that check meets
    /// the same wait in `pg_restore`'s own sessions (their connection's `options`): the
    /// restore then fails with PostgreSQL's `canceling statement due to lock timeout` and the
    /// statement it ran, and as it may have dropped objects before, it is cut short as above.
    ///
    /// A backup cancelled (its future dropped) kills `pg_dump` and `psql`, then ends their
    /// server sessions (named `serin-backup-<token>`) and waits up to 5 s for them to end,
    /// before the drop returns: one waiting for a lock the application holds would otherwise
    /// stay on the server until the lock is granted. If the server cannot be reached, that is
    /// logged and the claim is left to the next sweep.
    Dump {
        /// Parallel jobs of `pg_restore` (at least 1).
        jobs: u32,
    },
    /// `CREATE DATABASE <snapshot> TEMPLATE <database>`: a file-level copy, fast to take and
    /// to restore. It needs an exclusive moment: PostgreSQL refuses to copy a database that
    /// has any other connection, so the service must be disconnected while the copy is taken.
    /// A restore copies the snapshot to a new database, verifies it, and only then swaps it
    /// in by renaming both databases in one transaction (connections to the old database are
    /// refused and ended first); a verification that fails changes nothing. A database that
    /// was dropped is simply recreated from the snapshot. Needs a role that
    /// may create databases, and a maintenance database to connect to.
    ///
    /// A backup copies the database under a name of its own claim (`serin_part_<token>`),
    /// then, in one transaction, renames the copy to the backup's snapshot database and marks
    /// it with a comment naming the claim. Another backup directory of the same database may
    /// hand out the same id at the same moment, so only a snapshot marked as this claim's is
    /// ever dropped by its cleanup: a cancelled copy never drops the other directory's
    /// snapshot.
    ///
    /// A backup or restore cancelled at an `.await` ends its own server sessions (found by
    /// their `application_name`: `serin-backup-<token>` for a backup, `serin-restore-<token>`
    /// for a restore) and waits up to 5 s for them to end, so that no statement of it commits
    /// after the cleanup, then drops the copies it made and, if it was swapping, lets
    /// connections into the database again. The wait is a loop over `pg_stat_activity`, which
    /// every supported server has (the two-argument `pg_terminate_backend` needs 14); a server
    /// must be at least 13 (`DROP DATABASE … WITH (FORCE)`).
    ///
    /// A backup whose process was killed leaves its claim; [`PostgresBackup::sweep`] (also run
    /// after every backup and delete) ends its sessions and drops its copy and its marked
    /// snapshot.
    ///
    /// A restore holds a locked marker in the store and the server's restore lock of the
    /// database (see [`PostgresBackup`]), so two restores of one database never run at
    /// once, from one store or from two: the second fails, changing nothing. A
    /// restore whose process was killed (its `psql` with it, or left running) may leave the
    /// database refusing connections, between `ALLOW_CONNECTIONS false` and the renames, for
    /// ever. The next restore, or [`PostgresBackup::sweep`], ends its sessions (a swap still
    /// running is rolled back), lets connections into whichever database holds the name
    /// again (the renames are one transaction: the old one, or the restored one if the swap
    /// committed), and drops its copy and the replaced database. It never touches a restore
    /// another process is running (its marker locked).
    Template,
}

impl Default for PostgresMode {
    fn default() -> Self {
        PostgresMode::Dump { jobs: 2 }
    }
}

/// A table whose row count and checksum are recorded with each backup and compared after a
/// restore.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TableName {
    /// The schema (`public` by default).
    #[serde(default = "public")]
    pub schema: String,
    /// The table's name, exactly as stored (case and any character kept).
    pub name: String,
}

fn public() -> String {
    "public".into()
}

impl TableName {
    /// The table `name` in schema `public`.
    pub fn new(name: impl Into<String>) -> Self {
        TableName {
            schema: public(),
            name: name.into(),
        }
    }

    /// The table `name` in `schema`.
    pub fn in_schema(schema: impl Into<String>, name: impl Into<String>) -> Self {
        TableName {
            schema: schema.into(),
            name: name.into(),
        }
    }

    fn subject(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// Everything a [`PostgresBackup`] needs, as it is written in config.
///
/// ```
/// use serin_orchestrator::backup::{PostgresMode, PostgresSettings};
///
/// let s: PostgresSettings = serde_json::from_str(r#"{
///     "connection": {"host": "127.0.0.1", "user": "app", "dbname": "shop"},
///     "store": "/var/backups/shop",
///     "mode": {"kind": "dump", "jobs": 4},
///     "verifyTables": [{"name": "orders"}, {"schema": "billing", "name": "invoices"}],
///     "retention": {"keepLast": 5}
/// }"#)?;
/// s.validate()?;
/// assert_eq!(s.mode, PostgresMode::Dump { jobs: 4 });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct PostgresSettings {
    /// Where and as whom to connect, and which database.
    pub connection: PostgresConnection,
    /// Dump files (dump mode) and the metadata of every backup go here (an absolute path).
    pub store: PathBuf,
    /// Dump (the default, 2 restore jobs) or template database.
    #[serde(default)]
    pub mode: PostgresMode,
    /// Tables whose row counts and checksums verify a restore. The checksum reads every row,
    /// so choose the tables that matter and are not huge.
    #[serde(default)]
    pub verify_tables: Vec<TableName>,
    /// Keep only the last backups of each service.
    #[serde(default)]
    pub retention: Option<Retention>,
    /// Where `psql`, `pg_dump` and `pg_restore` are (found on `PATH` when unset).
    #[serde(default)]
    pub bin_dir: Option<PathBuf>,
    /// The database to connect to for creating, renaming and dropping others (template
    /// mode), and, in both modes, for the server's restore lock of the database: stores of
    /// one database keep their restores apart only if they name the same one.
    #[serde(default = "postgres_db")]
    pub maintenance_database: String,
}

fn postgres_db() -> String {
    "postgres".into()
}

impl PostgresSettings {
    /// Dump-mode settings for `connection`, storing in `store`, verifying no table yet.
    pub fn new(connection: PostgresConnection, store: impl Into<PathBuf>) -> Self {
        PostgresSettings {
            connection,
            store: store.into(),
            mode: PostgresMode::default(),
            verify_tables: Vec::new(),
            retention: None,
            bin_dir: None,
            maintenance_database: postgres_db(),
        }
    }

    /// With `mode`.
    pub fn with_mode(mut self, mode: PostgresMode) -> Self {
        self.mode = mode;
        self
    }

    /// Also verifying `table`.
    pub fn verify_table(mut self, table: TableName) -> Self {
        self.verify_tables.push(table);
        self
    }

    /// With retention.
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = Some(retention);
        self
    }

    /// With the client programs in `dir`.
    pub fn with_bin_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.bin_dir = Some(dir.into());
        self
    }

    /// With another maintenance database.
    pub fn with_maintenance_database(mut self, name: impl Into<String>) -> Self {
        self.maintenance_database = name.into();
        self
    }

    /// Checks every field; errors name the path (`postgresSettings.mode.jobs`).
    pub fn validate(&self) -> Result<()> {
        self.connection.validate("postgresSettings.connection")?;
        if !self.store.is_absolute() {
            return Err(Error::invalid(
                "postgresSettings.store",
                self.store.display(),
                "must be an absolute path",
            ));
        }
        if let PostgresMode::Dump { jobs } = self.mode
            && !(1..=64).contains(&jobs)
        {
            return Err(Error::invalid(
                "postgresSettings.mode.jobs",
                jobs,
                "must be between 1 and 64",
            ));
        }
        for (i, t) in self.verify_tables.iter().enumerate() {
            for (field, value) in [("schema", &t.schema), ("name", &t.name)] {
                let path = format!("postgresSettings.verifyTables[{i}].{field}");
                if value.is_empty() || value.len() > 63 {
                    return Err(Error::invalid(path, value, "must be 1 to 63 bytes long"));
                }
                no_nul(&path, value)?;
            }
            if self.verify_tables.iter().take(i).any(|o| o == t) {
                return Err(Error::invalid(
                    format!("postgresSettings.verifyTables[{i}]"),
                    t.subject(),
                    "is listed twice",
                ));
            }
        }
        let m = &self.maintenance_database;
        if m.is_empty() || m.len() > 63 {
            return Err(Error::invalid(
                "postgresSettings.maintenanceDatabase",
                m,
                "must be 1 to 63 bytes long",
            ));
        }
        no_nul("postgresSettings.maintenanceDatabase", m)?;
        if self.mode == PostgresMode::Template && *m == self.connection.dbname {
            return Err(Error::invalid(
                "postgresSettings.maintenanceDatabase",
                m,
                "must differ from the backed-up database: template mode copies and renames \
                 it from another database",
            ));
        }
        Ok(())
    }
}

/// Backs up and restores one PostgreSQL database (see [`PostgresMode`] for the two ways),
/// recording with each backup the row count and checksum (md5 of the sorted text of every
/// row) of each table in [`verify_tables`](PostgresSettings::verify_tables), and comparing
/// them after a restore. The size (dump file or snapshot database) and duration of each
/// backup are in its [`BackupInfo`].
///
/// One restore of a database runs at a time, whichever store it comes from: each store keeps
/// a marker (one restore per store, and a record of one cut short), and every restore also
/// holds the server's restore lock of the database, a session-level advisory lock keyed by
/// the database's name and held by a session on the
/// [maintenance database](PostgresSettings::maintenance_database). A second restore, through
/// another store or from another machine, waits 3 s for it (a cancelled restore's session
/// ends shortly after), then fails, changing nothing. The lock lives in the server because the
/// stores need not share a file system, and a store's marker cannot see another store's
/// restore. The lock ends with its session, so a restore whose process is killed holds it no
/// more. Backups do not take it; a backup is refused while this store's marker, or the
/// server's mark that every store sees (a setting of the database), says the database may
/// hold part of an in-place restore.
///
/// Client programs are started without a shell, with every name as its own argument; the
/// database name reaches libpq as a quoted connection-string value and SQL as a quoted
/// identifier or literal, so no name can inject settings or statements.
///
/// ```no_run
/// use serin_orchestrator::BackupProvider;
/// use serin_orchestrator::backup::{PostgresBackup, PostgresConnection, PostgresSettings, TableName};
///
/// # async fn demo() -> serin_orchestrator::Result<()> {
/// let connection = PostgresConnection::new("127.0.0.1", 5432, "app", "shop");
/// let pg = PostgresBackup::new(
///     PostgresSettings::new(connection, "/var/backups/shop").verify_table(TableName::new("orders")),
/// )?;
/// let id = pg.backup("shop", "before 2.0.0 -> 2.1.0").await?;
/// pg.restore(&id).await?; // verified: same row count and checksum of `orders`
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresBackup {
    settings: PostgresSettings,
    catalog: Catalog,
    client: ClientSettings,
    clock: Clock,
}

/// The client's environment, kept apart so `Debug` of the provider never shows the password.
#[derive(Clone)]
struct ClientSettings(Client);

impl fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSettings(..)")
    }
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

impl PostgresBackup {
    /// A provider with `settings`, validated.
    pub fn new(settings: PostgresSettings) -> Result<Self> {
        settings.validate()?;
        let c = &settings.connection;
        let mut env = vec![
            ("PGHOST", c.host.clone()),
            ("PGPORT", c.port.to_string()),
            ("PGUSER", c.user.clone()),
            ("PGAPPNAME", "serin-backup".to_owned()),
        ];
        if let Some(p) = &c.password {
            env.push(("PGPASSWORD", p.clone()));
        }
        Ok(PostgresBackup {
            catalog: Catalog::new(
                &settings.store,
                "postgres",
                format!("postgres database {} on {}:{}", c.dbname, c.host, c.port),
            ),
            client: ClientSettings(Client {
                bin_dir: settings.bin_dir.clone(),
                env,
            }),
            settings,
            clock: Clock::system(),
        })
    }

    /// Reads the time of each backup from `clock` (the system clock by default).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The settings.
    pub fn settings(&self) -> &PostgresSettings {
        &self.settings
    }

    /// The name of the snapshot database of template-mode backup `id` (`serin_snap_` and 20 hex
    /// digits of the SHA-256 of the source database's name and the id), for operators who look
    /// for it.
    pub fn snapshot_database(&self, id: &str) -> String {
        self.database_for("snap", id)
    }

    fn db(&self) -> &str {
        &self.settings.connection.dbname
    }

    fn failed(&self, reason: impl fmt::Display) -> Error {
        Error::backend("backup", "postgres", reason)
    }

    /// The snapshot database of template-mode backup `id` (and its restore and swap names):
    /// derived from the source database and the id, so nothing else needs recording. Ids are
    /// unique only within one catalog, and providers of other databases on the same server
    /// hand out the same ids in the same millisecond; the source database in the name keeps
    /// their snapshots apart.
    fn database_for(&self, what: &str, id: &str) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.db().as_bytes());
        hasher.update([0]);
        hasher.update(id.as_bytes());
        let digest = hex(&hasher.finalize());
        format!("serin_{what}_{}", digest.get(..20).unwrap_or(&digest))
    }

    /// Runs SQL `statements` in order in one `psql` session on `database`, stopping at the
    /// first error; returns the unaligned, tuples-only output.
    async fn psql(&self, database: &str, statements: &[String]) -> Result<String> {
        self.client
            .0
            .run("psql", &psql_args(database, statements))
            .await
    }

    /// This provider with its sessions named `name`.
    fn named(&self, name: &str) -> PostgresBackup {
        let mut named = self.clone();
        named.client = ClientSettings(self.client.0.named(name));
        named
    }

    /// A cleanup for a drop (which cannot wait): it ends the sessions named `sessions`
    /// (waiting up to 5 s for them to end, so that no statement they started still runs,
    /// say a `CREATE DATABASE` that would otherwise commit after the cleanup), then runs
    /// `statements` on the maintenance database, on the dropping thread.
    fn cleanup(&self, what: String, sessions: &str, statements: Vec<String>) -> Undo {
        let client = self.client.0.clone();
        let maintenance = self.settings.maintenance_database.clone();
        let mut all = vec![end_sessions(sessions)];
        all.extend(statements);
        Box::new(
            move || match client.run_blocking("psql", &psql_args(&maintenance, &all)) {
                Ok(_) => true,
                Err(e) => {
                    tracing::warn!("cannot clean up after {what}: {e}");
                    false
                }
            },
        )
    }

    /// A cleanup for a drop (which cannot wait) that ends the sessions named `sessions` and
    /// waits up to 5 s for them to end, on the database itself or, if it cannot be reached,
    /// on the maintenance database (as [`put_back`](Self::put_back) does), on the dropping
    /// thread.
    fn end_sessions_on_drop(&self, what: String, sessions: &str) -> Undo {
        let client = self.client.0.clone();
        let databases = [
            self.db().to_owned(),
            self.settings.maintenance_database.clone(),
        ];
        let end = [end_sessions(sessions)];
        Box::new(move || {
            let mut failure = None;
            for database in &databases {
                match client.run_blocking("psql", &psql_args(database, &end)) {
                    Ok(_) => return true,
                    Err(e) => failure = Some(e),
                }
            }
            if let Some(e) = failure {
                tracing::warn!("cannot end the sessions of {what}, left to the next sweep: {e}");
            }
            false
        })
    }

    /// What the template-mode backup `id` of the claim with `token` makes on the server.
    fn leftovers(&self, id: &str, token: &str) -> Leftovers {
        Leftovers {
            sessions: backup_sessions(token),
            part: format!("serin_part_{token}"),
            snap: self.database_for("snap", id),
            mark: format!("serin-backup claim {token}"),
        }
    }

    /// Removes what a template-mode backup left on the server (see [`Leftovers`]).
    async fn remove_leftovers(&self, leftovers: &Leftovers) -> Result<()> {
        let maintenance = &self.settings.maintenance_database;
        let out = self.psql(maintenance, &leftovers.first()).await?;
        if Leftovers::marked(&out) {
            self.psql(maintenance, &[leftovers.drop_snap()]).await?;
        }
        Ok(())
    }

    /// [`remove_leftovers`](Self::remove_leftovers) for a drop (which cannot wait), on the
    /// dropping thread.
    fn remove_leftovers_on_drop(&self, what: String, leftovers: Leftovers) -> Undo {
        let client = self.client.0.clone();
        let maintenance = self.settings.maintenance_database.clone();
        Box::new(move || {
            let run = |statements: &[String]| {
                client.run_blocking("psql", &psql_args(&maintenance, statements))
            };
            let removed = run(&leftovers.first()).and_then(|out| {
                if Leftovers::marked(&out) {
                    run(&[leftovers.drop_snap()])?;
                }
                Ok(())
            });
            match removed {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!("cannot clean up after {what}, left to the next sweep: {e}");
                    false
                }
            }
        })
    }

    /// Removes what backups of this provider whose process is gone (killed while they ran)
    /// left behind, and answers how many there were. Safe beside backups that other processes
    /// are taking: only a claim whose owner is gone is swept (its lock released by the kernel
    /// when its process ended; see the store layout in [`backup`](crate::backup)). Of each:
    /// the partial dump, and in template mode its sessions (ended, waited for), its copy and
    /// its snapshot database if marked as its own (never another directory's of the same id),
    /// then its claim. Of a template-mode restore whose process is gone, it puts the database
    /// back in service (see [`PostgresMode::Template`]). Also run, best effort, before every
    /// backup and after every delete; every restore first settles what a restore whose process
    /// is gone left.
    ///
    /// A dump restore that did not finish cannot be undone (see [`PostgresMode::Dump`]): the
    /// sweep ends its sessions, then answers an error saying that the database may hold part
    /// of a backup, and does so on every sweep until a restore finishes.
    pub async fn sweep(&self) -> Result<usize> {
        let mut swept = 0;
        for abandoned in self.catalog.abandoned().await? {
            self.remove_data(abandoned.id(), false).await?;
            // A claim taken in template mode is swept as such, even once the mode changed.
            if self.settings.mode == PostgresMode::Template || abandoned.outside() {
                self.remove_leftovers(&self.leftovers(abandoned.id(), abandoned.token()))
                    .await?;
            }
            self.catalog.forget(abandoned).await?;
            swept += 1;
        }
        // Whatever the mode now: the marker records how its restore ran.
        if let Some(mut mark) = self.catalog.interrupted_restore().await? {
            // Putting back a template restore drops copies named by its backup's id and lets
            // connections in: never while a restore of the database runs through another
            // store, which may use the same names (ids are unique per store only).
            let lock = if mark.in_place() {
                None
            } else {
                match self.lock_restores().await {
                    Ok(lock) => Some(lock),
                    Err(e) => {
                        mark.leave_to_sweep();
                        return Err(e);
                    }
                }
            };
            let put = self.put_back(&mut mark).await;
            if let Some(lock) = lock {
                lock.release().await;
            }
            put?;
            if mark.partial() {
                // Nothing puts it back: said on every sweep until a restore finishes.
                return Err(self.partial(&mark));
            }
            swept += 1;
        }
        Ok(swept)
    }

    /// The statements that put the database back in service after the template-mode restore
    /// of `id` whose sessions are named `sessions`, wherever it stopped: its sessions end
    /// (waited for; a swap still running rolls back), its copy is dropped, the database
    /// holding the name takes connections again, and the replaced one is dropped.
    fn put_back_statements(&self, id: &str, sessions: &str) -> Vec<String> {
        let drop_database =
            |name: &str| format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", sql::ident(name));
        let db = sql::literal(self.db());
        vec![
            end_sessions(sessions),
            drop_database(&self.database_for("restore", id)),
            format!(
                "DO $serin$ BEGIN \
                 IF EXISTS (SELECT 1 FROM pg_database WHERE datname = {db} AND NOT datallowconn) \
                 THEN EXECUTE format('ALTER DATABASE %I ALLOW_CONNECTIONS true', {db}); \
                 END IF; END $serin$"
            ),
            drop_database(&self.database_for("old", id)),
        ]
    }

    /// The name of the sessions of the restore holding `mark`.
    fn restore_sessions(mark: &RestoreMark) -> String {
        format!("serin-restore-{}", mark.token())
    }

    /// Puts back what the restore of `mark`, whose process is gone, left: a template-mode
    /// restore's database back in service; of an in-place (dump) restore, its sessions are
    /// ended (a `pg_restore` its killed process left running would go on writing), as
    /// nothing can put the database back. Dropped next, the mark removes the marker, unless
    /// it is [partial](RestoreMark::partial); a server that cannot be reached keeps the
    /// marker for the next sweep.
    async fn put_back(&self, mark: &mut RestoreMark) -> Result<()> {
        let sessions = Self::restore_sessions(mark);
        let put = if mark.in_place() {
            // On the database itself, which a dump restore needs anyway; or, if it cannot be
            // reached (dropped since, say), on the maintenance database.
            let end = [end_sessions(&sessions)];
            match self.psql(self.db(), &end).await {
                Ok(out) => Ok(out),
                Err(_) => self.psql(&self.settings.maintenance_database, &end).await,
            }
        } else {
            let statements = self.put_back_statements(mark.id(), &sessions);
            self.psql(&self.settings.maintenance_database, &statements)
                .await
        };
        match put {
            Ok(_) => {
                tracing::info!(backup = %mark.id(), "settled what a restore of `{}` whose process is gone left", self.db());
                Ok(())
            }
            Err(e) => {
                mark.leave_to_sweep();
                Err(self.failed(format!(
                    "cannot put `{}` back in service after the interrupted restore of backup \
                     `{}` (left to the next sweep): {e}",
                    self.db(),
                    mark.id()
                )))
            }
        }
    }

    /// The error that says the database may hold part of an in-place restore that did not
    /// finish (see [`PostgresMode::Dump`]).
    fn partial(&self, mark: &RestoreMark) -> Error {
        self.failed(format!(
            "database `{}` may hold part of a backup: an in-place restore (`pg_restore \
             --clean`, which cannot be undone) did not finish (its process was killed, or it \
             failed part-way), nor did any restore since; the last was of backup `{}`. Restore \
             a backup again: one that finishes clears this (marker `{}`)",
            self.db(),
            mark.id(),
            mark.path().display()
        ))
    }

    /// Takes the server's restore lock of the database: a session-level advisory lock,
    /// keyed by the database's name ([`restore_lock_key`]), held by a session on the
    /// maintenance database for as long as the returned lock lives. The store's marker keeps
    /// apart the restores of one store; this keeps apart those of every store of the database
    /// (two deployments with stores of their own, a second machine), which would otherwise
    /// run `pg_restore --clean` into the same database at once, or put back or drop what
    /// another's template restore is swapping in. Waits [`RESTORE_LOCK_WAIT`] for it, then
    /// fails, changing nothing. Stores of one database share the lock when they name the same
    /// maintenance database (`postgres` by default), as advisory locks are kept per database.
    async fn lock_restores(&self) -> Result<RestoreLock> {
        let maintenance = &self.settings.maintenance_database;
        let key = restore_lock_key(self.db());
        let args = psql_args(maintenance, &[]);
        let mut child = self
            .client
            .0
            .named("serin-restore-lock")
            .command("psql", &args)
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|e| failed("psql", &args, &format!("cannot start it: {e}")))?;
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(self.failed("psql holding the restore lock has no stdin or stdout"));
        };
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        let ask = format!(
            "SET lock_timeout = '{RESTORE_LOCK_WAIT}';\nSELECT 'locked' FROM pg_advisory_lock({key});\n"
        );
        let asked = async {
            stdin.write_all(ask.as_bytes()).await?;
            stdin.flush().await?;
            stdout.read_line(&mut line).await
        }
        .await;
        if asked.is_ok() && line.trim() == "locked" {
            return Ok(RestoreLock {
                child,
                stdin: Some(stdin),
                stdout,
                key,
            });
        }
        // Its input closed, `psql` ends (it stops at an error anyway).
        drop(stdin);
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut stderr).await;
        }
        let _ = child.wait().await;
        let c = &self.settings.connection;
        let lock = format!("advisory lock {key} in database `{maintenance}`");
        let reason = if stderr.contains("lock timeout") {
            format!(
                "cannot restore database `{}` on {}:{}: another restore of it is running \
                 (through another backup store, or another process) and holds the server's \
                 restore lock ({lock}); try again once it has finished",
                self.db(),
                c.host,
                c.port
            )
        } else {
            let why = asked.err().map(|e| e.to_string()).unwrap_or_default();
            format!(
                "cannot take the server's restore lock of database `{}` ({lock}): {why} {}",
                self.db(),
                tail(&stderr)
            )
        };
        Err(self.failed(reason))
    }

    /// Refuses a backup of `service` while the database may hold part of an in-place
    /// restore, one running or one cut short ([`RestoreMark::partial`]): such a backup would
    /// be listed, verified against what it read, and later "restored" to that half-restored
    /// state, and its retention could expire the backups taken before. A restore that
    /// finishes lifts this. This store's marker says so for its own restores, the server's
    /// mark ([`mark_partial`](Self::mark_partial)) for those of every store of the database;
    /// a mark that cannot be read refuses the backup too.
    async fn refuse_partial(&self, service: &str) -> Result<()> {
        if let Some((id, true)) = self.catalog.marked_restore().await? {
            return Err(self.failed(format!(
                "cannot back up `{service}`: database `{}` may hold part of backup `{id}`, as \
                 an in-place restore of it (`pg_restore --clean`) is running or did not finish \
                 (marker `{}`), and a backup of it would later restore that half-restored \
                 state; finish that restore, or restore a backup again, then back up",
                self.db(),
                self.catalog.restore_marker().display()
            )));
        }
        match self.partial_on_server().await {
            Ok(None) => Ok(()),
            Ok(Some(id)) => Err(self.failed(format!(
                "cannot back up `{service}`: database `{}` may hold part of backup `{id}`, as \
                 an in-place restore of it (`pg_restore --clean`) through another backup store \
                 is running or did not finish (the database's setting `{PARTIAL_SETTING}` on \
                 the server says so), and a backup of it would later restore that \
                 half-restored state; finish that restore, or restore a backup again, then \
                 back up",
                self.db()
            ))),
            Err(e) => Err(self.failed(format!(
                "cannot back up `{service}`: whether database `{}` may hold part of a restore \
                 (its setting `{PARTIAL_SETTING}`) cannot be read: {e}",
                self.db()
            ))),
        }
    }

    /// Marks the database, on the server, as possibly holding part of the in-place restore of
    /// backup `id`, before that restore changes anything: a store's marker is seen by that
    /// store alone, this mark by every store of the database (other directories, other
    /// machines). It is a setting of the database itself (`ALTER DATABASE … SET
    /// serin.partial_restore`), rather than a comment (which would replace the user's) or a
    /// row in a table of the maintenance database (which would need the right to create one
    /// there): it lives and dies with the database, is not copied to a database made from it
    /// (so a template restore's swap, which replaces the database, leaves none), survives
    /// restarts, is written in one committed statement, is read by any role from the catalog
    /// `pg_db_role_setting`, and no dump carries it. Lifted by the restore that finishes
    /// ([`clear_partial`](Self::clear_partial)).
    async fn mark_partial(&self, id: &str) -> Result<()> {
        let db = sql::ident(self.db());
        let set = format!(
            "ALTER DATABASE {db} SET {PARTIAL_SETTING} = {}",
            sql::literal(id)
        );
        self.psql(&self.settings.maintenance_database, &[set])
            .await
            .map(drop)
    }

    /// Lifts the server's [mark](Self::mark_partial): a restore finished.
    async fn clear_partial(&self) -> Result<()> {
        let db = sql::ident(self.db());
        let reset = format!("ALTER DATABASE {db} RESET {PARTIAL_SETTING}");
        self.psql(&self.settings.maintenance_database, &[reset])
            .await
            .map(drop)
    }

    /// The backup whose in-place restore the server's [mark](Self::mark_partial) says the
    /// database may hold part of, if any.
    async fn partial_on_server(&self) -> Result<Option<String>> {
        let query = format!(
            "SELECT s FROM pg_db_role_setting r JOIN pg_database d ON d.oid = r.setdatabase, \
             unnest(r.setconfig) s WHERE r.setrole = 0 AND d.datname = {}",
            sql::literal(self.db())
        );
        let prefix = format!("{PARTIAL_SETTING}=");
        let out = self
            .psql(&self.settings.maintenance_database, &[query])
            .await?;
        Ok(out
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(str::to_owned))
    }

    /// Starts a restore of backup `id` (`in_place` for a dump restore), holding the
    /// database's restore marker, so that no other restore of the database runs meanwhile.
    /// What a restore whose process is gone left is settled first; if the database may hold
    /// part of an in-place restore, this restore takes the marker over and the database stays
    /// marked so until a restore finishes.
    async fn start_restore(&self, id: &str, in_place: bool) -> Result<RestoreMark> {
        let Some(mut interrupted) = self.catalog.interrupted_restore().await? else {
            return self.catalog.begin_restore(id, in_place).await;
        };
        self.put_back(&mut interrupted).await?;
        if !interrupted.partial() {
            drop(interrupted);
            return self.catalog.begin_restore(id, in_place).await;
        }
        tracing::warn!(backup = %id, "{}; restoring now", self.partial(&interrupted));
        self.catalog
            .take_over_restore(interrupted, id, in_place)
            .await
    }

    /// Row counts and checksums of `tables` in `database`, in the exported `snapshot` if
    /// given.
    async fn checksums(
        &self,
        database: &str,
        tables: &[TableName],
        snapshot: Option<&str>,
    ) -> Result<Vec<BackupCheck>> {
        if tables.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<(String, String)> = tables
            .iter()
            .map(|t| (t.schema.clone(), t.name.clone()))
            .collect();
        let query = sql::checksum_query(&names);
        let statements = match snapshot {
            Some(id) => vec![
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY".to_owned(),
                format!("SET TRANSACTION SNAPSHOT {}", sql::literal(id)),
                query,
                "COMMIT".to_owned(),
            ],
            None => vec![query],
        };
        let out = self.psql(database, &statements).await?;
        let sums = sql::parse_checksums(&out, tables.len()).map_err(|e| {
            self.failed(format!(
                "cannot read the checksums of database `{database}`: {e}"
            ))
        })?;
        Ok(tables
            .iter()
            .zip(sums)
            .map(|(t, (rows, md5))| BackupCheck::new(t.subject(), rows, md5))
            .collect())
    }

    /// Compares the table checks of `expected` with `actual`: the differences, empty if none.
    fn compare(expected: &[BackupCheck], actual: &[BackupCheck]) -> Vec<String> {
        let mut out = Vec::new();
        for e in expected.iter().filter(|c| c.subject != DUMP_CHECK) {
            match actual.iter().find(|a| a.subject == e.subject) {
                Some(a) if a == e => {}
                Some(a) => out.push(format!(
                    "{}: {} rows (md5 {}) restored, the backup recorded {} rows (md5 {})",
                    e.subject, a.count, a.checksum, e.count, e.checksum
                )),
                None => out.push(format!("{}: not checked after the restore", e.subject)),
            }
        }
        out
    }

    /// The table checks `info` recorded.
    fn recorded_checks(info: &BackupInfo) -> Vec<BackupCheck> {
        info.checks
            .iter()
            .filter(|c| c.subject != DUMP_CHECK)
            .cloned()
            .collect()
    }

    /// The tables `info` recorded checks of, which a restore verifies whatever the settings
    /// list now (they can change between a backup and its restore): each is the table of the
    /// settings with the same subject, or else the subject read as `schema.name`, split at
    /// its first dot.
    fn recorded_tables(&self, info: &BackupInfo) -> Vec<TableName> {
        Self::recorded_checks(info)
            .iter()
            .map(|c| {
                let listed = self
                    .settings
                    .verify_tables
                    .iter()
                    .find(|t| t.subject() == c.subject);
                match (listed, c.subject.split_once('.')) {
                    (Some(t), _) => t.clone(),
                    (None, Some((schema, name))) => TableName::in_schema(schema, name),
                    (None, None) => TableName::new(c.subject.as_str()),
                }
            })
            .collect()
    }

    /// Dumps the database to the file of `claim`'s backup; answers the checksums of the
    /// verified tables, taken in the dump's snapshot, and the dump's own.
    ///
    /// Its sessions bear the claim's name: cancelled (its client programs killed), it ends
    /// them before the drop returns, as one waiting for a lock the application holds would
    /// otherwise wait on the server until the lock is granted.
    async fn take_dump(&self, claim: &mut Claim) -> Result<Vec<BackupCheck>> {
        let sessions = backup_sessions(claim.token());
        claim.undo_on_drop(Some(self.end_sessions_on_drop(
            format!("cancelled backup `{}`", claim.id()),
            &sessions,
        )));
        let file = self.catalog.data_path(claim.id(), ".dump");
        let dumped = self.named(&sessions).dump(file).await;
        // Over, well or not: its programs have ended, and their sessions with them.
        claim.undo_on_drop(None);
        dumped
    }

    /// [`take_dump`](Self::take_dump) to `file`, its sessions named as this provider's.
    async fn dump(&self, file: PathBuf) -> Result<Vec<BackupCheck>> {
        // A session that holds a snapshot open, so the checksums and the dump see the same
        // data however busy the database is.
        let holder_args = psql_args(self.db(), &[]);
        let mut holder = self
            .client
            .0
            .command("psql", &holder_args)
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|e| failed("psql", &holder_args, &format!("cannot start it: {e}")))?;
        let snapshot = async {
            let mut stdin = holder.stdin.take().ok_or_else(|| {
                self.failed("psql holding the snapshot has no stdin")
            })?;
            let stdout = holder.stdout.take().ok_or_else(|| {
                self.failed("psql holding the snapshot has no stdout")
            })?;
            stdin
                .write_all(
                    b"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\nSELECT pg_export_snapshot();\n",
                )
                .await
                .map_err(|e| self.failed(format!("cannot talk to psql: {e}")))?;
            stdin
                .flush()
                .await
                .map_err(|e| self.failed(format!("cannot talk to psql: {e}")))?;
            let mut line = String::new();
            BufReader::new(stdout)
                .read_line(&mut line)
                .await
                .map_err(|e| self.failed(format!("cannot read from psql: {e}")))?;
            Ok::<_, Error>((stdin, line.trim().to_owned()))
        }
        .await;
        let (stdin, snapshot) = match snapshot {
            Ok((stdin, s)) if !s.is_empty() => (stdin, s),
            Ok(_) | Err(_) => {
                let mut stderr = String::new();
                if let Some(mut e) = holder.stderr.take() {
                    let _ = holder.kill().await;
                    let _ = e.read_to_string(&mut stderr).await;
                }
                let why = snapshot.err().map(|e| e.to_string()).unwrap_or_default();
                return Err(failed(
                    "psql",
                    &holder_args,
                    &format!(
                        "could not export a snapshot of `{}`: {why} {}",
                        self.db(),
                        tail(&stderr)
                    ),
                ));
            }
        };
        let result = async {
            let checks = self
                .checksums(self.db(), &self.settings.verify_tables, Some(&snapshot))
                .await?;
            let mut args = os(&["--format=custom", "--no-password", "--file"]);
            args.push(file.clone().into());
            args.push(format!("--snapshot={snapshot}").into());
            args.push("--dbname".into());
            args.push(sql::dbname_conninfo(self.db()).into());
            self.client.0.run("pg_dump", &args).await?;
            Ok::<_, Error>(checks)
        }
        .await;
        // Ending the session ends its transaction and releases the snapshot.
        drop(stdin);
        let _ = holder.wait().await;
        let mut checks = result?;
        // On disk before the metadata says the backup exists (the catalog syncs its name).
        durable::sync_file(&file)
            .await
            .map_err(|e| self.failed(format!("cannot sync `{}`: {e}", file.display())))?;
        self.check_dump(&file).await?;
        let (size, sha) = file_digest(&file)
            .await
            .map_err(|e| self.failed(format!("cannot read `{}`: {e}", file.display())))?;
        checks.push(BackupCheck::new(DUMP_CHECK, size, sha));
        Ok(checks)
    }

    /// Checks that `pg_restore` reads the dump `file` just written as a restore will read it:
    /// its table of contents (`pg_restore --list`, which connects to no server) must list
    /// something. A dump that is damaged or cut short on its way to disk is then refused now,
    /// as no backup, rather than found when a rollback needs it; the error names the file and
    /// why. Whether the restored data matches is verified by the restore, against the checks
    /// recorded with the backup.
    async fn check_dump(&self, file: &Path) -> Result<()> {
        let mut args = os(&["--list", "--no-password"]);
        args.push(file.into());
        let why = match self.client.0.run("pg_restore", &args).await {
            Ok(toc) if !toc.trim().is_empty() => return Ok(()),
            Ok(_) => "`pg_restore --list` lists nothing in it".to_owned(),
            Err(e) => cause(e),
        };
        Err(self.failed(format!(
            "the dump `{}` of database `{}` cannot be read back: {why}; no backup was taken",
            file.display(),
            self.db()
        )))
    }

    /// Copies the database to the snapshot database of `claim`'s backup, whose drop then
    /// drops the snapshot too. PostgreSQL makes a committed `CREATE DATABASE` durable, so
    /// there is nothing to sync.
    ///
    /// The copy is made under the claim's own name, then renamed to the snapshot's name and
    /// marked as the claim's in one transaction: cancelled at any point, the cleanup drops
    /// the copy by its own name and the snapshot only if it bears the mark, so a snapshot that
    /// another directory of the database made under the same name at the same moment stays.
    async fn take_template(&self, claim: &mut Claim) -> Result<Vec<BackupCheck>> {
        let id = claim.id().to_owned();
        let snap = self.database_for("snap", &id);
        let leftovers = self.leftovers(&id, claim.token());
        let named = self.named(&leftovers.sessions);
        // Cancelled during the copy, the copy may be running or committed on the server:
        // its session is ended first, then what it made is dropped.
        claim.undo_on_drop(Some(self.remove_leftovers_on_drop(
            format!("cancelled backup `{id}`"),
            leftovers.clone(),
        )));
        let maintenance = &self.settings.maintenance_database;
        let copied = named
            .psql(
                maintenance,
                &[
                    format!(
                        "CREATE DATABASE {} TEMPLATE {}",
                        sql::ident(&leftovers.part),
                        sql::ident(self.db())
                    ),
                    "BEGIN".to_owned(),
                    format!(
                        "ALTER DATABASE {} RENAME TO {}",
                        sql::ident(&leftovers.part),
                        sql::ident(&snap)
                    ),
                    format!(
                        "COMMENT ON DATABASE {} IS {}",
                        sql::ident(&snap),
                        sql::literal(&leftovers.mark)
                    ),
                    "COMMIT".to_owned(),
                ],
            )
            .await;
        if let Err(e) = copied {
            // The copy may be made under the claim's name; the snapshot's name is another
            // directory's if the rename found it taken.
            self.abandon(claim).await;
            // `claim` passed over the ids whose snapshots existed; one that appeared since
            // (another directory of the same database, at the same moment) is in the way.
            let reason = if e.to_string().contains("already exists") {
                format!(
                    "snapshot database `{snap}` of backup `{id}` already exists: another backup \
                     directory of database `{}` took the same id at the same moment; try \
                     again: {e}",
                    self.db()
                )
            } else {
                format!(
                    "cannot copy database `{}` as a template (it must have no other connection \
                     while the copy is taken): {e}",
                    self.db()
                )
            };
            return Err(self.failed(reason));
        }
        let rest = async {
            let checks = named
                .checksums(&snap, &self.settings.verify_tables, None)
                .await?;
            named
                .psql(
                    maintenance,
                    &[format!(
                        "ALTER DATABASE {} ALLOW_CONNECTIONS false",
                        sql::ident(&snap)
                    )],
                )
                .await?;
            Ok::<_, Error>(checks)
        }
        .await;
        if rest.is_err() {
            self.abandon(claim).await;
        }
        rest
    }

    /// Removes what `claim`'s failed template-mode backup made on the server without
    /// blocking (best effort: the error that matters is the one that stopped the backup); if
    /// that fails too, the claim is left for the next sweep.
    async fn abandon(&self, claim: &mut Claim) {
        let leftovers = self.leftovers(claim.id(), claim.token());
        match self.remove_leftovers(&leftovers).await {
            Ok(()) => claim.undo_on_drop(None),
            Err(e) => {
                tracing::warn!(backup = %claim.id(), "left to the next sweep: {e}");
                claim.leave_to_sweep();
            }
        }
    }

    async fn drop_database(&self, name: &str) -> Result<String> {
        self.psql(
            &self.settings.maintenance_database,
            &[format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                sql::ident(name)
            )],
        )
        .await
    }

    async fn database_exists(&self, name: &str) -> Result<bool> {
        let out = self
            .psql(
                &self.settings.maintenance_database,
                &[format!(
                    "SELECT count(*) FROM pg_database WHERE datname = {}",
                    sql::literal(name)
                )],
            )
            .await?;
        Ok(out.trim() != "0")
    }

    /// Claims an id for a backup of `service` taken at `at`. In template mode the id must also
    /// name a snapshot database that does not exist yet: ids are unique within one backup
    /// directory, and another directory of the same database hands out the same ones, so its
    /// snapshot may hold the name. Such ids stay claimed until a free one is found, so that the
    /// catalog hands out the next.
    async fn claim(&self, service: &str, at: Timestamp, template: bool) -> Result<Claim> {
        // Dropped at the end, which gives their ids back (also if this is cancelled).
        let mut passed = Vec::new();
        loop {
            let claim = self.catalog.claim_for(service, at, template).await?;
            if !template || passed.len() == MAX_SNAPSHOT_IDS_SKIPPED {
                return Ok(claim);
            }
            // A check that fails leaves the copy itself to fail, with the server's reason.
            match self
                .database_exists(&self.database_for("snap", claim.id()))
                .await
            {
                Ok(true) => passed.push(claim),
                Ok(false) | Err(_) => return Ok(claim),
            }
        }
    }

    async fn database_size(&self, name: &str) -> Result<u64> {
        let out = self
            .psql(
                &self.settings.maintenance_database,
                &[format!("SELECT pg_database_size({})", sql::literal(name))],
            )
            .await?;
        out.trim()
            .parse()
            .map_err(|e| self.failed(format!("size of database `{name}`: `{}`: {e}", out.trim())))
    }

    async fn restore_dump(&self, info: &BackupInfo, dump: &BackupCheck) -> Result<()> {
        let file = self.catalog.data_path(&info.id, ".dump");
        let (size, sha) = file_digest(&file)
            .await
            .map_err(|e| self.failed(format!("cannot read `{}`: {e}", file.display())))?;
        if (size, sha.as_str()) != (dump.count, dump.checksum.as_str()) {
            return Err(self.failed(format!(
                "backup `{}` is damaged: its dump has {size} bytes (sha256 {sha}), {} bytes \
                 (sha256 {}) were recorded; the database was left unchanged",
                info.id, dump.count, dump.checksum
            )));
        }
        self.check_archive(&info.id, &file).await?;
        self.refuse_locked(&info.id).await?;
        let jobs = match self.settings.mode {
            PostgresMode::Dump { jobs } => jobs,
            PostgresMode::Template => 1,
        };
        // One restore of the database at a time, marked partial until this one finishes: a
        // kill part-way cannot be undone, and the next restore or sweep says so. Its sessions
        // bear the marker's token, so that they can be ended if its process dies.
        let mark = self.start_restore(&info.id, true).await?;
        // Marked on the server too, before anything changes: every store of the database
        // refuses a backup of it until a restore finishes.
        self.mark_partial(&info.id).await?;
        let sessions = Self::restore_sessions(&mark);
        let named = self.named(&sessions);
        // Cancelled while `pg_restore` runs (its future dropped, say at a deadline), the
        // restore is ended before the drop returns, not left writing: `pg_restore` itself is
        // killed, but its parallel workers and their server sessions would outlive it (until
        // the next sweep). Its sessions are ended and waited for; the marker stays partial.
        let mut cancelled = OnDrop {
            undo: Some(self.end_sessions_on_drop(
                format!("the cancelled restore of backup `{}`", info.id),
                &sessions,
            )),
            mark: Some(mark),
        };
        let mut args = os(&["--clean", "--if-exists", "--exit-on-error", "--no-password"]);
        args.push(format!("--jobs={jobs}").into());
        args.push("--dbname".into());
        // Its workers connect with the same string, so the wait bounds theirs too.
        let options = sql::conninfo_value(&format!("-c lock_timeout={APPLICATION_LOCK_WAIT}"));
        args.push(format!("{} options={options}", sql::dbname_conninfo(self.db())).into());
        args.push(file.into());
        let restored = named.client.0.run("pg_restore", &args).await;
        // Ended, well or not: `pg_restore` waits for its workers before it exits.
        cancelled.undo = None;
        // `--exit-on-error` stops at the first failure, but without one transaction for the
        // whole restore (which `--jobs` rules out) what ran before it stays: say so.
        restored.map_err(|e| {
            let mut cause = cause(e);
            if cause.contains("lock timeout") {
                cause.push_str(&format!(
                    "; another session of the database held a lock the statement above waits \
                     for longer than lock_timeout {APPLICATION_LOCK_WAIT}"
                ));
            }
            self.failed(format!(
                "restore of backup `{}` into `{}` stopped part-way ({cause}); the database may \
                 now hold part of the backup: restore it again once the cause is fixed",
                info.id,
                self.db()
            ))
        })?;
        let actual = named
            .checksums(self.db(), &self.recorded_tables(info), None)
            .await?;
        let expected = Self::recorded_checks(info);
        let differences = Self::compare(&expected, &actual);
        if !differences.is_empty() {
            return Err(self.failed(format!(
                "restore of backup `{}` into `{}` did not verify: {}",
                info.id,
                self.db(),
                differences.join("; ")
            )));
        }
        // The server's mark goes first: lifting it may fail, and the store's marker then
        // still says to restore again.
        self.clear_partial().await?;
        if let Some(mark) = &mut cancelled.mark {
            mark.finish();
        }
        Ok(())
    }

    /// Refuses the dump restore of backup `id`, before anything changes, while another
    /// session holds a lock on a table of the database that `pg_restore --clean`'s `DROP`
    /// would wait for: each table is locked as that `DROP` locks it, waiting up to
    /// [`APPLICATION_LOCK_WAIT`], in a subtransaction rolled back at once, so that the check
    /// holds up the application's sessions for one table at a time, and only briefly. A table
    /// the restore's role may not lock is passed over: `pg_restore` could not drop it either.
    async fn refuse_locked(&self, id: &str) -> Result<()> {
        let probe = format!(
            "DO $serin$ DECLARE t regclass; BEGIN \
             FOR t IN SELECT c.oid FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND n.nspname NOT LIKE 'pg\\_%' \
             AND n.nspname <> 'information_schema' ORDER BY 1 LOOP \
             BEGIN \
             EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', t); \
             RAISE SQLSTATE 'SR001'; \
             EXCEPTION \
             WHEN lock_not_available THEN RAISE EXCEPTION 'another session holds a lock on \
             table % and did not let go of it within lock_timeout {APPLICATION_LOCK_WAIT} \
             (an open transaction of the application?)', t; \
             WHEN SQLSTATE 'SR001' OR insufficient_privilege THEN NULL; \
             END; \
             END LOOP; END $serin$"
        );
        let wait = format!("SET lock_timeout = '{APPLICATION_LOCK_WAIT}'");
        self.psql(self.db(), &[wait, probe]).await.map_err(|e| {
            self.failed(format!(
                "backup `{id}` cannot be restored into `{}` now: {}; the database was \
                 left unchanged: end that transaction, or stop the application, and restore \
                 again",
                self.db(),
                cause(e)
            ))
        })?;
        Ok(())
    }

    /// Refuses, before anything changes, the dump `file` of backup `id` if `pg_restore` cannot
    /// read it (a newer `pg_dump` wrote it) or if it was dumped from a newer major version than
    /// the server's, whose statements the server may not know: either restore would stop
    /// part-way, and one that has not started need not leave the database marked partial.
    async fn check_archive(&self, id: &str, file: &Path) -> Result<()> {
        let unchanged = |why: String| {
            self.failed(format!(
                "backup `{id}` cannot be restored into `{}`: {why}; the database was left \
                 unchanged",
                self.db()
            ))
        };
        let mut args = os(&["--list", "--no-password"]);
        args.push(file.into());
        let toc = self
            .client
            .0
            .run("pg_restore", &args)
            .await
            .map_err(|e| unchanged(e.to_string()))?;
        let Some(dumped) = toc.lines().find_map(|l| {
            l.trim_start_matches([';', ' '])
                .strip_prefix("Dumped from database version: ")
        }) else {
            return Ok(());
        };
        let server = self
            .psql(
                &self.settings.maintenance_database,
                &["SHOW server_version".to_owned()],
            )
            .await?;
        let server = server.trim();
        if let (Some(from), Some(to)) = (major_version(dumped), major_version(server))
            && from > to
        {
            return Err(unchanged(format!(
                "it was dumped from PostgreSQL {dumped}, newer than the server's {server}"
            )));
        }
        Ok(())
    }

    /// Restores `info` in template mode. Cancelled at an `.await` (its future dropped), the
    /// restore's own session is ended first, so that no statement of it still runs; then,
    /// before the swap, its copy is dropped and the database is as it was; during the swap,
    /// the database takes connections again (whichever copy holds its name: the renames are
    /// one transaction) and what is left of the other copy is dropped.
    async fn restore_template(&self, info: &BackupInfo) -> Result<()> {
        // A restore of this database that was killed is put back first.
        let mark = self.start_restore(&info.id, false).await?;
        let sessions = Self::restore_sessions(&mark);
        let named = self.named(&sessions);
        let staging = self.database_for("restore", &info.id);
        let what = format!("the cancelled restore of backup `{}`", info.id);
        let mut cancelled = OnDrop {
            undo: Some(self.cleanup(
                what.clone(),
                &sessions,
                vec![format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    sql::ident(&staging)
                )],
            )),
            mark: Some(mark),
        };
        // `cleanup` ends the sessions itself: the statements' own first one is not needed.
        let mut statements = self.put_back_statements(&info.id, &sessions);
        statements.remove(0);
        let swap = self.cleanup(what, &sessions, statements);
        let restored = named.copy_and_swap(info, &mut cancelled, swap).await;
        // Finished, or failed and cleaned up: nothing is left running.
        cancelled.undo = None;
        if restored.is_ok()
            && let Some(mark) = &mut cancelled.mark
        {
            // The whole database was replaced: no part of an in-place restore is left.
            mark.finish();
        }
        restored
    }

    /// [`restore_template`](Self::restore_template) but for what a cancellation does: `swap`
    /// replaces the cleanup in `cancelled` once the swap begins.
    async fn copy_and_swap(
        &self,
        info: &BackupInfo,
        cancelled: &mut OnDrop,
        swap: Undo,
    ) -> Result<()> {
        let snap = self.database_for("snap", &info.id);
        let staging = self.database_for("restore", &info.id);
        let aside = self.database_for("old", &info.id);
        let maintenance = self.settings.maintenance_database.clone();
        // Leftovers of an earlier restore of this backup: a copy that was never swapped in,
        // and a replaced database that could not be dropped (it would block the rename).
        self.drop_database(&staging).await?;
        self.drop_database(&aside).await?;
        self.psql(
            &maintenance,
            &[format!(
                "CREATE DATABASE {} TEMPLATE {}",
                sql::ident(&staging),
                sql::ident(&snap)
            )],
        )
        .await
        .map_err(|e| {
            self.failed(format!(
                "cannot copy the snapshot of backup `{}`: {e}",
                info.id
            ))
        })?;
        let expected = Self::recorded_checks(info);
        let verified = match self
            .checksums(&staging, &self.recorded_tables(info), None)
            .await
        {
            Ok(actual) => Ok(Self::compare(&expected, &actual)),
            Err(e) => Err(e),
        };
        match verified {
            Ok(d) if d.is_empty() => {}
            other => {
                let _ = self.drop_database(&staging).await;
                let why = match other {
                    Ok(d) => d.join("; "),
                    Err(e) => e.to_string(),
                };
                return Err(self.failed(format!(
                    "restore of backup `{}` did not verify; `{}` was left unchanged: {why}",
                    info.id,
                    self.db()
                )));
            }
        }
        let db = sql::ident(self.db());
        if !self.database_exists(self.db()).await? {
            // Nothing to replace (the database was dropped): the restored copy takes its name.
            return self
                .psql(
                    &maintenance,
                    &[format!(
                        "ALTER DATABASE {} RENAME TO {db}",
                        sql::ident(&staging)
                    )],
                )
                .await
                .map(|_| ());
        }
        cancelled.undo = Some(swap);
        let swapped = self
            .psql(
                &maintenance,
                &[
                    format!("ALTER DATABASE {db} ALLOW_CONNECTIONS false"),
                    format!(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                         WHERE datname = {} AND pid <> pg_backend_pid()",
                        sql::literal(self.db())
                    ),
                    "BEGIN".to_owned(),
                    format!("ALTER DATABASE {db} RENAME TO {}", sql::ident(&aside)),
                    format!("ALTER DATABASE {} RENAME TO {db}", sql::ident(&staging)),
                    "COMMIT".to_owned(),
                ],
            )
            .await;
        if let Err(e) = swapped {
            // The renames are one transaction: either both happened or neither did.
            let allowed = self
                .psql(
                    &maintenance,
                    &[format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true")],
                )
                .await;
            if allowed.is_err() {
                // Still refusing connections: the next sweep or restore lets them in.
                cancelled.leave_to_sweep();
            }
            let _ = self.drop_database(&staging).await;
            return Err(self.failed(format!(
                "cannot swap the restored copy of backup `{}` in for `{}` (it was left as it \
                 was): {e}",
                info.id,
                self.db()
            )));
        }
        if let Err(e) = self.drop_database(&aside).await {
            tracing::warn!(backup = %info.id, "restored, but the replaced database `{aside}` stays: {e}");
        }
        Ok(())
    }
}

/// How long a restore waits for the server's restore lock of its database: long enough for
/// the server to see the session of a restore just cancelled end (it lets go of the lock
/// then), short enough that a restore running elsewhere is reported rather than waited for.
const RESTORE_LOCK_WAIT: &str = "3s";

/// How long a dump restore waits for a lock other sessions hold on what it replaces (see
/// [`PostgresMode::Dump`]): long enough for an application's short transactions to end,
/// short enough that one left open is reported rather than waited for.
const APPLICATION_LOCK_WAIT: &str = "10s";

/// The setting of a database that marks it, on the server, as possibly holding part of an
/// in-place restore (see [`PostgresBackup::mark_partial`]).
const PARTIAL_SETTING: &str = "serin.partial_restore";

/// The key of the advisory lock held by the one restore of `database` that runs at a time:
/// the first 8 bytes of the SHA-256 of `serin restore`, a NUL and the database's name.
fn restore_lock_key(database: &str) -> i64 {
    let mut hasher = Sha256::new();
    hasher.update(b"serin restore\0");
    hasher.update(database.as_bytes());
    let digest = hasher.finalize();
    let mut key = [0u8; 8];
    key.copy_from_slice(digest.get(..8).unwrap_or(&[0; 8]));
    i64::from_be_bytes(key)
}

/// A session on the maintenance database holding the server's restore lock of one database
/// (see [`PostgresBackup::lock_restores`]). [Released](Self::release), the session lets go
/// of the lock and ends. Dropped (a restore cancelled), its `psql` is killed, and the server
/// lets go of the lock as soon as it sees the session end; a process killed outright closes
/// the `psql`'s input, which ends the session the same way.
struct RestoreLock {
    child: tokio::process::Child,
    stdin: Option<tokio::process::ChildStdin>,
    stdout: BufReader<tokio::process::ChildStdout>,
    key: i64,
}

impl RestoreLock {
    /// Lets go of the lock, and waits for the session to end.
    async fn release(mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let mut line = String::new();
            let unlock = format!("SELECT pg_advisory_unlock({});\n", self.key);
            let unlocked = async {
                stdin.write_all(unlock.as_bytes()).await?;
                stdin.flush().await?;
                self.stdout.read_line(&mut line).await
            }
            .await;
            if let Err(e) = unlocked {
                // The session ends next anyway, and the server lets go of the lock then.
                tracing::warn!("cannot let go of the restore lock, ending its session: {e}");
            }
        }
        let _ = self.child.wait().await;
    }
}

/// Runs its cleanup when dropped, unless it was taken out first (a restore cancelled at an
/// `.await`), then drops the restore's marker: removed, unless the cleanup failed or the
/// restore [left work](Self::leave_to_sweep) to the next sweep.
struct OnDrop {
    undo: Option<Undo>,
    mark: Option<RestoreMark>,
}

impl OnDrop {
    /// The marker stays for the next sweep, which puts the database back in service.
    fn leave_to_sweep(&mut self) {
        if let Some(mark) = &mut self.mark {
            mark.leave_to_sweep();
        }
    }
}

impl Drop for OnDrop {
    fn drop(&mut self) {
        if let Some(undo) = self.undo.take()
            && !undo()
        {
            // The failure was logged; the sweep finds the marker.
            self.leave_to_sweep();
        }
    }
}

/// What a template-mode backup makes on the server, all named or marked with its claim's
/// token, so that a cleanup or a sweep never touches another backup's: the sessions that
/// copy, the copy under the claim's own name, and the snapshot database, which bears the
/// claim's mark once the copy took its name.
#[derive(Debug, Clone)]
struct Leftovers {
    sessions: String,
    part: String,
    snap: String,
    mark: String,
}

impl Leftovers {
    /// Ends the sessions (waiting for them), drops the copy, and answers whether the
    /// snapshot bears the mark (`1` as the last line).
    fn first(&self) -> Vec<String> {
        vec![
            end_sessions(&self.sessions),
            format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                sql::ident(&self.part)
            ),
            format!(
                "SELECT count(*) FROM pg_database d JOIN pg_shdescription c \
                 ON c.objoid = d.oid AND c.classoid = 'pg_database'::regclass \
                 WHERE d.datname = {} AND c.description = {}",
                sql::literal(&self.snap),
                sql::literal(&self.mark)
            ),
        ]
    }

    /// Whether the answer of [`first`](Self::first) says the snapshot is the claim's. Once
    /// it is, no other backup can take its name, so dropping it next is safe.
    fn marked(out: &str) -> bool {
        out.lines().rev().map(str::trim).find(|l| !l.is_empty()) == Some("1")
    }

    fn drop_snap(&self) -> String {
        format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            sql::ident(&self.snap)
        )
    }
}

/// The name of the server sessions of the backup whose claim has `token`.
fn backup_sessions(token: &str) -> String {
    format!("serin-backup-{token}")
}

/// A statement that ends the server sessions named `sessions` other than its own and waits
/// up to 5 s for them to be gone. A loop rather than `pg_terminate_backend(pid, timeout)`,
/// which PostgreSQL 13 lacks; the activity view is re-read on each turn (a transaction
/// otherwise sees its first reading).
fn end_sessions(sessions: &str) -> String {
    let name = sql::literal(sessions);
    format!(
        "DO $serin$ BEGIN \
         PERFORM pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = {name} AND pid <> pg_backend_pid(); \
         FOR i IN 1..50 LOOP \
         PERFORM pg_stat_clear_snapshot(); \
         EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_stat_activity \
         WHERE application_name = {name} AND pid <> pg_backend_pid()); \
         PERFORM pg_sleep(0.1); \
         END LOOP; END $serin$"
    )
}

/// The arguments of `psql` running SQL `statements` in order in one session on `database`,
/// stopping at the first error, answering unaligned and tuples only. It never asks for a
/// password: asked for one that it lacks, it would wait at the terminal, if any, for ever.
fn psql_args(database: &str, statements: &[String]) -> Vec<OsString> {
    let mut args = os(&[
        "-X",
        "--no-password",
        "-q",
        "-A",
        "-t",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
    ]);
    args.push(sql::dbname_conninfo(database).into());
    for s in statements {
        args.push("-c".into());
        args.push(s.into());
    }
    args
}

/// The major version of a PostgreSQL version string (`15` of `15.18 (Debian 15.18-0+deb12u1)`).
fn major_version(version: &str) -> Option<u32> {
    version
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The size and SHA-256 of a file.
async fn file_digest(path: &Path) -> std::io::Result<(u64, String)> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(buf.get(..n).unwrap_or_default());
        size += n as u64;
    }
    Ok((size, hex(&hasher.finalize())))
}

#[async_trait]
impl BackupProvider for PostgresBackup {
    fn name(&self) -> &str {
        "postgres"
    }

    async fn backup(&self, service: &str, label: &str) -> Result<String> {
        // A name that is refused changes nothing, not even what a sweep would.
        check_service(service)?;
        // What killed backups and restores left is swept first, not once this backup is
        // listed: a cancellation during the sweep then loses no backup whose id the caller
        // never received.
        let swept = self.sweep().await;
        self.refuse_partial(service).await?;
        sweep_quietly(swept);
        let created_at = self.clock.now();
        let template = self.settings.mode == PostgresMode::Template;
        let mut claim = self.claim(service, created_at, template).await?;
        let id = claim.id().to_owned();
        // From here on, an error or a cancellation drops the claim, which removes what the
        // backup made: the dump file, or the snapshot database.
        let started = tokio::time::Instant::now();
        let checks = if template {
            self.take_template(&mut claim).await?
        } else {
            claim.remove_on_drop(self.catalog.data_path(&id, ".dump"));
            self.take_dump(&mut claim).await?
        };
        let duration: Duration = started.elapsed();
        let size = if template {
            match self.database_size(&self.database_for("snap", &id)).await {
                Ok(size) => size,
                Err(e) => {
                    self.abandon(&mut claim).await;
                    return Err(e);
                }
            }
        } else {
            checks
                .iter()
                .find(|c| c.subject == DUMP_CHECK)
                .map_or(0, |c| c.count)
        };
        let info = self
            .catalog
            .info(&id, service, label, created_at)
            .with_size(size)
            .with_duration(duration)
            .with_checks(checks);
        self.catalog.commit(&info, claim).await?;
        tracing::info!(
            backup = %id, service, bytes = info.size_bytes, ?duration,
            "postgres backup of database `{}` taken", self.db()
        );
        finish_interrupted_deletes(&self.catalog, self, service).await;
        if let Some(retention) = self.settings.retention
            && let Err(e) = retention.enforce_after(self, service, &id).await
        {
            tracing::warn!(service, "retention of postgres backups failed: {e}");
        }
        Ok(id)
    }

    async fn restore(&self, id: &str) -> Result<()> {
        let info = self.catalog.read(id).await?;
        // Held until the restore, or the cleanup of one cancelled, is over: dropped last.
        let lock = self.lock_restores().await?;
        let restored = match info.checks.iter().find(|c| c.subject == DUMP_CHECK) {
            Some(dump) => self.restore_dump(&info, dump).await,
            None => self.restore_template(&info).await,
        };
        lock.release().await;
        restored?;
        tracing::info!(backup = %id, "restored database `{}`", self.db());
        Ok(())
    }

    async fn info(&self, id: &str) -> Result<BackupInfo> {
        self.catalog.read(id).await
    }

    fn retention(&self) -> Option<Retention> {
        self.settings.retention
    }

    async fn list(&self, service: &str) -> Result<Vec<BackupInfo>> {
        self.catalog.list(service).await
    }

    async fn delete(&self, id: &str) -> Result<()> {
        check_id(id)?;
        let info = self.catalog.start_delete(id).await?;
        let template = !info.checks.iter().any(|c| c.subject == DUMP_CHECK);
        self.remove_data(id, template)
            .await
            .map_err(|e| self.catalog.unlisted_but_kept(&info, e))?;
        self.catalog.finish_delete(id).await?;
        sweep_quietly(self.sweep().await);
        Ok(())
    }
}

impl PostgresBackup {
    async fn remove_data(&self, id: &str, template: bool) -> Result<()> {
        if template {
            self.drop_database(&self.database_for("snap", id)).await?;
        } else {
            let file = self.catalog.data_path(id, ".dump");
            match tokio::fs::remove_file(&file).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(self.failed(format!("cannot remove `{}`: {e}", file.display())));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::backup::catalog::wait_unlocked;

    fn conn() -> PostgresConnection {
        PostgresConnection::new("127.0.0.1", 5432, "app", "shop").with_password("s3cret-pw")
    }

    #[test]
    fn conninfo_is_read_with_quotes_and_escapes() {
        let c = PostgresConnection::from_conninfo(
            r"host=127.0.0.1 port = 55432 user=postgres dbname='my \'db\'' password=x",
        )
        .unwrap();
        assert_eq!(c.host, "127.0.0.1");
        assert_eq!(c.port, 55432);
        assert_eq!(c.dbname, "my 'db'");
        assert_eq!(c.password.as_deref(), Some("x"));
        let d = PostgresConnection::from_conninfo("host=h user=u").unwrap();
        assert_eq!((d.port, d.dbname.as_str()), (5432, "u"));
        for bad in [
            "host",
            "host=h user=u sslmode=require",
            "host=h user='u",
            "port=x host=h user=u",
            "user=u",
        ] {
            assert!(PostgresConnection::from_conninfo(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_password_is_never_shown_or_serialized() {
        let c = conn();
        assert!(!format!("{c:?}").contains("s3cret-pw"));
        assert!(!serde_json::to_string(&c).unwrap().contains("s3cret-pw"));
        let p = PostgresBackup::new(PostgresSettings::new(c, "/tmp/x")).unwrap();
        assert!(!format!("{p:?}").contains("s3cret-pw"));
        let err = PostgresConnection::from_conninfo("host=h user=u password='a\0b'").unwrap_err();
        assert!(!err.to_string().contains("a\0b"), "{err}");
        // An unquoted password holding a space: the rest is no key, and is not shown either.
        let err = PostgresConnection::from_conninfo("host=h user=u password=s3cret pw2 port=1")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("pw2"), "{err}");
        assert!(err.contains("password") && err.contains("quoted"), "{err}");
    }

    #[test]
    fn unquoted_conninfo_values_take_backslash_escapes_as_libpq_does() {
        let c =
            PostgresConnection::from_conninfo(r"host=h user=u password=a\ b\\c dbname=d").unwrap();
        assert_eq!(c.password.as_deref(), Some(r"a b\c"));
        assert_eq!(c.dbname, "d");
    }

    #[test]
    fn a_conninfo_that_is_not_key_value_never_shows_its_password() {
        for conninfo in [
            "postgresql://app:s3cret@db/shop",
            "postgres://app:s3cret@db/shop?sslmode=require",
            "host=h user=u password=s3cret pw2=x",
        ] {
            let err = PostgresConnection::from_conninfo(conninfo)
                .unwrap_err()
                .to_string();
            assert!(!err.contains("s3cret") && !err.contains("pw2"), "{err}");
            assert!(err.contains("conninfo"), "{err}");
        }
        let err = PostgresConnection::from_conninfo("postgresql://app:s3cret@db/shop")
            .unwrap_err()
            .to_string();
        assert!(err.contains("URI"), "{err}");
    }

    #[test]
    fn settings_are_validated_with_paths() {
        let ok = PostgresSettings::new(conn(), "/srv/backups");
        ok.validate().unwrap();
        let cases = [
            (
                PostgresSettings::new(conn(), "backups"),
                "postgresSettings.store",
            ),
            (
                ok.clone().with_mode(PostgresMode::Dump { jobs: 0 }),
                "postgresSettings.mode.jobs",
            ),
            (
                ok.clone().verify_table(TableName::new("")),
                "postgresSettings.verifyTables[0].name",
            ),
            (
                ok.clone()
                    .verify_table(TableName::new("a"))
                    .verify_table(TableName::new("a")),
                "postgresSettings.verifyTables[1]",
            ),
            (
                ok.clone().verify_table(TableName::in_schema("s\0", "a")),
                "postgresSettings.verifyTables[0].schema",
            ),
            (
                PostgresSettings::new(PostgresConnection::new("h", 5432, "u", "postgres"), "/srv")
                    .with_mode(PostgresMode::Template),
                "postgresSettings.maintenanceDatabase",
            ),
            (
                PostgresSettings::new(PostgresConnection::new("", 5432, "u", "d"), "/srv"),
                "postgresSettings.connection.host",
            ),
            (
                PostgresSettings::new(PostgresConnection::new("h", 0, "u", "d"), "/srv"),
                "postgresSettings.connection.port",
            ),
            (
                PostgresSettings::new(PostgresConnection::new("h", 1, "u", "d".repeat(64)), "/srv"),
                "postgresSettings.connection.dbname",
            ),
        ];
        for (settings, path) in cases {
            let err = PostgresBackup::new(settings).unwrap_err();
            assert!(err.to_string().contains(path), "{path}: {err}");
        }
    }

    #[test]
    fn settings_read_from_config_reject_unknown_fields() {
        let err = serde_json::from_str::<PostgresSettings>(
            r#"{"connection":{"host":"h","user":"u","dbname":"d"},"store":"/s","jobs":3}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("jobs"), "{err}");
        let s: PostgresSettings = serde_json::from_str(
            r#"{"connection":{"host":"h","user":"u","dbname":"d"},"store":"/s","mode":{"kind":"template"}}"#,
        )
        .unwrap();
        assert_eq!(s.mode, PostgresMode::Template);
        assert_eq!(s.maintenance_database, "postgres");
        assert_eq!(s.connection.port, 5432);
    }

    /// A stand-in for `psql` that records its arguments (one per line) and environment, then
    /// fails like a server that refuses the statement.
    fn fake_client(dir: &Path) {
        failing_client(dir, "refused by the test");
    }

    /// [`fake_client`] failing with server message `error`, except the cleanup's look for a
    /// snapshot marked as the claim's, which finds none, and the look for the server's mark
    /// of a partial restore, which finds none either (neither is recorded).
    fn failing_client(dir: &Path, error: &str) {
        use std::os::unix::fs::PermissionsExt;
        let script = format!(
            "#!/bin/sh\ncase \"$*\" in *pg_shdescription*) echo 0; exit 0;; \
             *pg_db_role_setting*) exit 0;; esac\n\
             for a in \"$@\"; do printf '%s\\n' \"$a\"; done > '{0}/args'\nenv > '{0}/env'\n\
             echo 'ERROR:  {error}' >&2\nexit 1\n",
            dir.display()
        );
        let path = dir.join("psql");
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[tokio::test]
    async fn names_reach_the_client_as_single_arguments_and_the_password_only_its_environment() {
        let bin = tempfile::tempdir().unwrap();
        fake_client(bin.path());
        let store = tempfile::tempdir().unwrap();
        let name = "we\"ird'; DROP DATABASE x; -- host=evil";
        let connection =
            PostgresConnection::new("127.0.0.1", 5432, "app", name).with_password("s3cret-pw");
        let pg = PostgresBackup::new(
            PostgresSettings::new(connection, store.path())
                .with_mode(PostgresMode::Template)
                .with_bin_dir(bin.path()),
        )
        .unwrap();
        let err = pg.backup("shop", "v1").await.unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("refused by the test"), "{msg}");
        assert!(msg.contains("must have no other connection"), "{msg}");
        assert!(!msg.contains("s3cret-pw"), "{msg}");

        let args = std::fs::read_to_string(bin.path().join("args")).unwrap();
        let args: Vec<&str> = args.lines().collect();
        assert_eq!(
            args[..9],
            [
                "-X",
                "--no-password",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                "dbname='postgres'"
            ]
        );
        assert_eq!(args[9], "-c");
        assert!(
            args[10].starts_with("CREATE DATABASE \"serin_part_")
                && args[10].ends_with(r#"TEMPLATE "we""ird'; DROP DATABASE x; -- host=evil""#),
            "{}",
            args[10]
        );
        // The copy takes the snapshot's name and the claim's mark in one transaction.
        assert_eq!((args[12], args[18]), ("BEGIN", "COMMIT"));
        assert!(
            args[14].starts_with("ALTER DATABASE \"serin_part_")
                && args[14].contains("RENAME TO \"serin_snap_")
                && args[16].starts_with("COMMENT ON DATABASE \"serin_snap_")
                && args[16].contains("IS E'serin-backup claim "),
            "{args:?}"
        );
        assert_eq!(args.len(), 19);
        let env = std::fs::read_to_string(bin.path().join("env")).unwrap();
        assert!(env.lines().any(|l| l == "PGPASSWORD=s3cret-pw"), "{env}");
        assert!(env.lines().any(|l| l == "PGHOST=127.0.0.1"), "{env}");
        assert!(env.lines().any(|l| l == "PGUSER=app"), "{env}");
        assert!(!env.lines().any(|l| l.starts_with("PGDATABASE=")), "{env}");
        // The parent's environment never held it.
        assert!(std::env::var("PGPASSWORD").map_or(true, |p| p != "s3cret-pw"));
        // Nothing was left behind by the failed backup.
        assert!(pg.list("shop").await.unwrap().is_empty());
        assert!(std::fs::read_dir(store.path()).unwrap().next().is_none());
    }

    /// A `psql` that holds a snapshot, and a `pg_dump` that writes part of a dump, says so
    /// through the FIFO `dir/stalled`, then stalls until it is killed.
    fn stalling_clients(dir: &Path) {
        script(dir, "psql", HOLD_SNAPSHOT);
        script(
            dir,
            "pg_dump",
            &format!(
                "{FIND_FILE}printf partial > \"$out\"\necho $$ > '{0}/pid'\n\
                 echo stalled > '{0}/stalled'\nexec sleep 600\n",
                dir.display()
            ),
        );
        make_stalled_fifo(dir);
    }

    /// The body of a `psql` that holds a snapshot: it reads the two statements that export
    /// one, answers with its name and waits until its input is closed; or, asked for the
    /// restore lock, holds it ([`HOLD_LOCK`]).
    const HOLD_SNAPSHOT: &str = "read a\nread b\n\
                                 case \"$b\" in *pg_advisory_lock*) echo locked; \
                                 while read c; do echo t; done; exit 0;; esac\n\
                                 echo 00000003-00000002-1\nexec cat >/dev/null\n";

    /// The start of a `psql`'s body that, started without statements (`-c`), holds the
    /// restore lock: it answers that it took it, then `t` to each statement (letting go of
    /// it) until its input is closed.
    const HOLD_LOCK: &str = "case \"$*\" in *' -c '*) ;; *) read a; read b; echo locked; \
                             while read c; do echo t; done; exit 0;; esac\n";

    /// The start of a `pg_dump`'s body that finds the file its `--file` names, as `$out`.
    const FIND_FILE: &str = "for a in \"$@\"; do\n  \
                             if [ \"$next\" = file ]; then out=\"$a\"; fi\n  \
                             next=; [ \"$a\" = --file ] && next=file\ndone\n";

    /// Makes the FIFO `dir/stalled`, through which a stand-in says it stalled.
    fn make_stalled_fifo(dir: &Path) {
        let made = std::process::Command::new("mkfifo")
            .arg(dir.join("stalled"))
            .status()
            .unwrap();
        assert!(made.success());
    }

    #[tokio::test]
    async fn a_dump_cancelled_half_way_leaves_nothing_behind() {
        let bin = tempfile::tempdir().unwrap();
        stalling_clients(bin.path());
        let store = tempfile::tempdir().unwrap();
        let pg = dump(bin.path(), store.path());
        // What the store holds while the dump runs; the backup is dropped once it is known.
        let stalled = async {
            tokio::fs::read(bin.path().join("stalled")).await.unwrap();
            let during: Vec<_> = std::fs::read_dir(store.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            during
        };
        let during = tokio::select! {
            taken = pg.backup("shop", "v1") => panic!("the backup ended: {taken:?}"),
            during = stalled => during,
        };
        assert_eq!(during.len(), 2, "a claim and a partial dump: {during:?}");
        // `pg_dump` was killed, not left writing.
        let pid = std::fs::read_to_string(bin.path().join("pid")).unwrap();
        assert_killed(pid.trim()).await;
        let left: Vec<_> = std::fs::read_dir(store.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
        assert!(pg.list("shop").await.unwrap().is_empty());
    }

    /// Asserts that the process `pid` was killed: it is gone, or a zombie until the runtime
    /// reaps it (the kernel ends a killed process shortly after the signal).
    async fn assert_killed(pid: &str) {
        let state = || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            stat.rsplit_once(") ")
                .and_then(|(_, rest)| rest.get(..1))
                .map(str::to_owned)
        };
        let mut turns = 0;
        while !matches!(state().as_deref(), None | Some("Z" | "X")) && turns < 100_000 {
            tokio::task::yield_now().await;
            turns += 1;
        }
        assert!(
            matches!(state().as_deref(), None | Some("Z" | "X")),
            "{pid}: {:?}",
            state()
        );
    }

    /// Writes the executable `dir/name` with `body`.
    fn script(dir: &Path, name: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A `psql` standing in for a server: it notes each call (its session name, `|`, its
    /// arguments) as a line of `dir/calls`; stalls at the first call whose arguments hold
    /// `stall_at`, saying so through the FIFO `dir/stalled`, until it is killed; refuses the
    /// two-argument `pg_terminate_backend` as PostgreSQL 13 does; answers that database
    /// `shop` exists and no other, that a snapshot bears its claim's mark (unless the file
    /// `dir/unmarked` exists), and a size; and succeeds at everything else.
    fn scripted_client(dir: &Path, stall_at: &str) {
        let d = dir.display();
        script(
            dir,
            "psql",
            &format!(
                "{HOLD_LOCK}printf '%s|%s\\n' \"$PGAPPNAME\" \"$*\" >> '{d}/calls'\n\
                 case \"$*\" in\n\
                 *'{stall_at}'*) echo stalled > '{d}/stalled'; exec sleep 600;;\n\
                 *'pg_terminate_backend(pid, '*) echo 'ERROR:  function \
                 pg_terminate_backend(integer, integer) does not exist' >&2; exit 1;;\n\
                 *pg_shdescription*) if [ -e '{d}/unmarked' ]; then echo 0; else echo 1; fi;;\n\
                 *\"datname = E'shop'\"*) echo 1;;\n\
                 *'FROM pg_database WHERE'*) echo 0;;\n\
                 *pg_database_size*) echo 4096;;\n\
                 esac\n"
            ),
        );
        if !dir.join("stalled").exists() {
            make_stalled_fifo(dir);
        }
    }

    /// The calls `scripted_client` noted: (session name, arguments).
    fn calls(dir: &Path) -> Vec<(String, String)> {
        std::fs::read_to_string(dir.join("calls"))
            .unwrap()
            .lines()
            .map(|l| {
                let (session, args) = l.split_once('|').unwrap();
                (session.to_owned(), args.to_owned())
            })
            .collect()
    }

    /// A dump-mode provider of `store` through the client programs in `bin`.
    fn dump(bin: &Path, store: &Path) -> PostgresBackup {
        PostgresBackup::new(PostgresSettings::new(conn(), store).with_bin_dir(bin)).unwrap()
    }

    fn template(bin: &Path, store: &Path) -> PostgresBackup {
        PostgresBackup::new(
            PostgresSettings::new(conn(), store)
                .with_mode(PostgresMode::Template)
                .with_bin_dir(bin),
        )
        .unwrap()
    }

    /// The server `SERIN_TEST_POSTGRES` names (`scripts/test.sh` sets it), or `None` after
    /// saying on stderr, past the test harness's capture, that `test` was skipped.
    fn names(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn a_template_backup_cancelled_after_the_copy_drops_its_snapshot() {
        let bin = tempfile::tempdir().unwrap();
        // The stand-in refuses `pg_terminate_backend(pid, timeout)`, as PostgreSQL 13 does.
        scripted_client(bin.path(), "ALLOW_CONNECTIONS false");
        let store = tempfile::tempdir().unwrap();
        let pg = template(bin.path(), store.path());
        let (id, calls) = cancel_at_the_stall(&pg, bin.path(), store.path()).await;
        let (copier, copy) = calls
            .iter()
            .find(|(_, args)| args.contains("CREATE DATABASE"))
            .unwrap();
        assert!(copier.starts_with("serin-backup-"), "{copier}");
        let part = copy
            .split('"')
            .nth(1)
            .filter(|p| p.starts_with("serin_part_"))
            .unwrap_or_else(|| panic!("{copy}"));
        // Once the drop returns, the session that copied was ended and waited for, then the
        // copy dropped; the snapshot, marked as the claim's, was dropped last.
        let [.., (_, ended), (_, dropped)] = &calls[..] else {
            panic!("{calls:?}")
        };
        let expected = [
            format!("application_name = E'{copier}' AND pid <> pg_backend_pid()"),
            "pg_sleep(0.1)".to_owned(),
            format!("-c DROP DATABASE IF EXISTS \"{part}\" WITH (FORCE)"),
            "pg_shdescription".to_owned(),
        ];
        for part in expected {
            assert!(ended.contains(&part), "{part} in {ended}");
        }
        assert!(!ended.contains("pg_terminate_backend(pid, "), "{ended}");
        assert!(
            dropped.ends_with(&format!(
                "-c DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                pg.snapshot_database(&id)
            )),
            "{dropped}"
        );
        assert!(names(store.path()).is_empty(), "{:?}", names(store.path()));
    }

    /// Runs a backup of `pg` until the stand-in in `bin` stalls, then drops it: the id it
    /// claimed, and the calls made (the cleanup's last).
    async fn cancel_at_the_stall(
        pg: &PostgresBackup,
        bin: &Path,
        store: &Path,
    ) -> (String, Vec<(String, String)>) {
        let stalled = async {
            tokio::fs::read(bin.join("stalled")).await.unwrap();
            names(store)
        };
        let during = tokio::select! {
            taken = pg.backup("shop", "v1") => panic!("the backup ended: {taken:?}"),
            during = stalled => during,
        };
        let id = during[0].strip_suffix(".pending").unwrap().to_owned();
        (id, calls(bin))
    }

    /// Another directory of the database may hand out the same id at the same moment and make
    /// its snapshot under the same name while this backup copies: cancelled then, this
    /// backup drops its own copy but never a snapshot it did not mark.
    #[tokio::test]
    async fn a_template_backup_cancelled_during_its_copy_never_drops_another_directorys_snapshot() {
        let bin = tempfile::tempdir().unwrap();
        scripted_client(bin.path(), "CREATE DATABASE");
        std::fs::write(bin.path().join("unmarked"), "").unwrap();
        let store = tempfile::tempdir().unwrap();
        let pg = template(bin.path(), store.path());
        let (id, calls) = cancel_at_the_stall(&pg, bin.path(), store.path()).await;
        let (_, cleanup) = calls.last().unwrap();
        assert!(
            cleanup.contains("-c DROP DATABASE IF EXISTS \"serin_part_")
                && cleanup.contains("pg_shdescription"),
            "{cleanup}"
        );
        let snap = pg.snapshot_database(&id);
        assert!(
            !calls
                .iter()
                .any(|(_, args)| args.contains(&format!("DROP DATABASE IF EXISTS \"{snap}\""))),
            "{calls:?}"
        );
        assert!(names(store.path()).is_empty(), "{:?}", names(store.path()));
    }

    #[tokio::test]
    async fn a_template_backup_cancelled_while_it_picks_an_id_gives_back_every_id() {
        let bin = tempfile::tempdir().unwrap();
        let d = bin.path().display();
        // No mark of a partial restore; the first snapshot name is taken; the check of the
        // second stalls.
        script(
            bin.path(),
            "psql",
            &format!(
                "case \"$*\" in *pg_db_role_setting*) exit 0;; esac\n\
                 [ -e '{d}/seen' ] && {{ echo stalled > '{d}/stalled'; exec sleep 600; }}\n\
                 touch '{d}/seen'; echo 1\n"
            ),
        );
        let made = std::process::Command::new("mkfifo")
            .arg(bin.path().join("stalled"))
            .status()
            .unwrap();
        assert!(made.success());
        let store = tempfile::tempdir().unwrap();
        let pg = template(bin.path(), store.path());
        let stalled = async {
            tokio::fs::read(bin.path().join("stalled")).await.unwrap();
            names(store.path())
        };
        let during = tokio::select! {
            taken = pg.backup("shop", "v1") => panic!("the backup ended: {taken:?}"),
            during = stalled => during,
        };
        assert_eq!(during.len(), 2, "two claims: {during:?}");
        assert!(names(store.path()).is_empty(), "{:?}", names(store.path()));
    }

    #[tokio::test]
    async fn a_template_restore_cancelled_during_the_swap_lets_connections_back_in() {
        let bin = tempfile::tempdir().unwrap();
        scripted_client(bin.path(), "no call holds this");
        let store = tempfile::tempdir().unwrap();
        let pg = template(bin.path(), store.path());
        let id = pg.backup("shop", "v1").await.unwrap();
        scripted_client(bin.path(), "RENAME TO");
        let stalled = tokio::fs::read(bin.path().join("stalled"));
        tokio::select! {
            restored = pg.restore(&id) => panic!("the restore ended: {restored:?}"),
            _ = stalled => {}
        }
        let calls = calls(bin.path());
        let (swapper, swap) = calls
            .iter()
            .rfind(|(_, args)| args.contains("RENAME TO"))
            .unwrap();
        assert!(
            swap.contains(r#"ALTER DATABASE "shop" ALLOW_CONNECTIONS false"#),
            "{swap}"
        );
        // The swap's session is ended first, so none of its statements runs after the cleanup.
        let (_, cleanup) = calls.last().unwrap();
        assert!(
            cleanup.contains(&format!("application_name = E'{swapper}'")),
            "{cleanup}"
        );
        let expected = format!(
            "pg_sleep(0.1); END LOOP; END $serin$ \
             -c DROP DATABASE IF EXISTS \"{}\" WITH (FORCE) \
             -c DO $serin$ BEGIN IF EXISTS (SELECT 1 FROM pg_database WHERE datname = E'shop' \
             AND NOT datallowconn) THEN EXECUTE format('ALTER DATABASE %I ALLOW_CONNECTIONS \
             true', E'shop'); END IF; END $serin$ \
             -c DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            pg.database_for("restore", &id),
            pg.database_for("old", &id)
        );
        assert!(cleanup.ends_with(&expected), "{cleanup}");
        // The backup is still there to restore.
        assert_eq!(pg.list("shop").await.unwrap().len(), 1);
    }

    /// The restore marker in `store`.
    fn marker(store: &Path) -> PathBuf {
        let name = names(store)
            .into_iter()
            .find(|n| n.ends_with(".restoring"))
            .expect("a restore marker");
        store.join(name)
    }

    /// Stand-ins for a dump-mode provider: a `psql` that holds a snapshot when asked for one,
    /// keeps no server's mark of a partial restore (a real server's is tested against one),
    /// and otherwise notes each call (its session name, `|`, its arguments) in `dir/calls`;
    /// a `pg_dump` that writes a dump; and a `pg_restore` that notes its session name in
    /// `dir/restored`, and, the first time after `dir/stall` is made, says so through the
    /// FIFO `dir/stalled` and stalls until it is killed.
    fn dump_clients(dir: &Path) {
        let d = dir.display();
        script(
            dir,
            "psql",
            &format!(
                "case \"$*\" in *pg_db_role_setting*|*serin.partial_restore*|*lock_not_available*) \
                 exit 0;; \
                 *' -c '*) printf '%s|%s\\n' \"$PGAPPNAME\" \"$*\" >> '{d}/calls'; \
                 exit 0;; esac\n{HOLD_SNAPSHOT}"
            ),
        );
        script(
            dir,
            "pg_dump",
            &format!("{FIND_FILE}printf dump > \"$out\"\n"),
        );
        script(
            dir,
            "pg_restore",
            &format!(
                "case \"$*\" in *--list*) echo ';     Archive created at 2025-01-01'; exit 0;; \
                 esac\n\
                 echo \"$PGAPPNAME\" >> '{d}/restored'\n\
                 printf '%s\\n' \"$*\" >> '{d}/restore_args'\n\
                 if [ -e '{d}/stall' ]; then rm '{d}/stall'; echo $$ > '{d}/pid'; \
                 echo stalled > '{d}/stalled'; exec sleep 600; fi\n"
            ),
        );
        make_stalled_fifo(dir);
    }

    /// A dump restore runs `pg_restore --clean` in place: one cut short cannot be undone. It
    /// holds the database's restore marker, so no other restore runs beside it, and one that
    /// did not finish is said by every sweep, and its sessions ended, until a restore finishes.
    #[tokio::test]
    async fn a_dump_restore_is_serialized_and_one_cut_short_is_said_until_a_restore_finishes() {
        let bin = tempfile::tempdir().unwrap();
        dump_clients(bin.path());
        let store = tempfile::tempdir().unwrap();
        let pg = dump(bin.path(), store.path());
        let id = pg.backup("shop", "v1").await.unwrap();
        // Another process restores while this restore's `pg_restore` runs: refused.
        let other = dump(bin.path(), store.path());
        std::fs::write(bin.path().join("stall"), "").unwrap();
        let beside = async {
            tokio::fs::read(bin.path().join("stalled")).await.unwrap();
            other.restore(&id).await
        };
        let beside = tokio::select! {
            restored = pg.restore(&id) => panic!("the restore ended: {restored:?}"),
            beside = beside => beside,
        };
        let err = beside.unwrap_err().to_string();
        assert!(
            err.contains("another restore of postgres database shop"),
            "{err}"
        );
        wait_unlocked(&marker(store.path()));
        let restored = std::fs::read_to_string(bin.path().join("restored")).unwrap();
        let sessions: Vec<&str> = restored.lines().collect();
        assert_eq!(sessions.len(), 1, "{sessions:?}");
        assert!(sessions[0].starts_with("serin-restore-"), "{sessions:?}");
        // Its sessions, and its workers', give up on a lock held too long.
        let args = std::fs::read_to_string(bin.path().join("restore_args")).unwrap();
        assert!(
            args.contains("dbname='shop' options='-c lock_timeout=10s'"),
            "{args}"
        );
        // The restore was cut short: every sweep says so, and ends its sessions.
        for _ in 0..2 {
            let err = pg.sweep().await.unwrap_err().to_string();
            assert!(
                err.contains("database `shop` may hold part of a backup")
                    && err.contains(&format!("backup `{id}`")),
                "{err}"
            );
        }
        let ended = calls(bin.path());
        assert!(
            ended.iter().all(|(_, args)| args
                .contains(&format!("application_name = E'{}'", sessions[0]))
                && args.contains("dbname='shop'")),
            "{ended:?}"
        );
        // One as the cancelled restore was dropped, one for each sweep.
        assert_eq!(ended.len(), 3, "{ended:?}");
        // A restore that finishes clears it.
        pg.restore(&id).await.unwrap();
        assert_eq!(pg.sweep().await.unwrap(), 0);
        let mut left = names(store.path());
        left.sort();
        assert_eq!(left, [format!("{id}.dump"), format!("{id}.json")]);
    }

    /// A dump that `pg_restore` cannot read (written by a newer `pg_dump`), or dumped from a
    /// newer server than the one restored into, is refused before anything changes: no
    /// `pg_restore` into the database, and no mark of a partial restore that would then
    /// refuse every backup.
    #[tokio::test]
    async fn a_dump_the_server_cannot_take_is_refused_before_the_database_is_touched() {
        let bin = tempfile::tempdir().unwrap();
        dump_clients(bin.path());
        let store = tempfile::tempdir().unwrap();
        let pg = dump(bin.path(), store.path());
        let id = pg.backup("shop", "v1").await.unwrap();
        let d = bin.path().display();
        std::fs::rename(bin.path().join("psql"), bin.path().join("psql.real")).unwrap();
        script(
            bin.path(),
            "psql",
            &format!(
                "case \"$*\" in *server_version*) echo '15.18 (Debian 15.18-0+deb12u1)'; \
                 exit 0;; esac\nexec '{d}/psql.real' \"$@\"\n"
            ),
        );
        for (listing, reason) in [
            (
                "echo ';     Dumped from database version: 17.2'",
                "dumped from PostgreSQL 17.2, newer than the server's 15.18",
            ),
            (
                "echo 'pg_restore: error: unsupported version (1.16) in file header' >&2; exit 1",
                "unsupported version (1.16) in file header",
            ),
        ] {
            script(
                bin.path(),
                "pg_restore",
                &format!(
                    "case \"$*\" in *--list*{id}.dump) {listing};; \
                     *--list*) echo ';     Archive created at 2025-01-01';; \
                     *) echo ran >> '{d}/restored';; esac\n"
                ),
            );
            let err = pg.restore(&id).await.unwrap_err().to_string();
            assert!(
                err.contains(reason)
                    && err.contains(&format!("backup `{id}`"))
                    && err.contains("left unchanged"),
                "{err}"
            );
            assert!(!bin.path().join("restored").exists());
            assert_eq!(pg.sweep().await.unwrap(), 0);
            pg.backup("shop", "v2").await.unwrap();
        }
    }

    /// A dump that `pg_restore` cannot read back (an empty file: `pg_dump` cut short, a full
    /// disk), or whose table of contents lists nothing, is no backup: the backup fails naming
    /// the file and why, and leaves nothing behind.
    #[tokio::test]
    async fn a_dump_that_cannot_be_read_back_is_no_backup() {
        let bin = tempfile::tempdir().unwrap();
        dump_clients(bin.path());
        script(bin.path(), "pg_dump", &format!("{FIND_FILE}: > \"$out\"\n"));
        let store = tempfile::tempdir().unwrap();
        let pg = dump(bin.path(), store.path());
        for (listing, reason) in [
            (
                "echo 'pg_restore: error: input file is too short (read 0, expected 5)' >&2; \
                 exit 1",
                "input file is too short",
            ),
            ("exit 0", "`pg_restore --list` lists nothing in it"),
        ] {
            script(
                bin.path(),
                "pg_restore",
                &format!("case \"$*\" in *--list*) {listing};; esac\n"),
            );
            let err = pg.backup("shop", "v1").await.unwrap_err().to_string();
            assert!(
                err.contains(reason)
                    && err.contains(".dump` of database `shop` cannot be read back")
                    && err.contains(&store.path().display().to_string())
                    && err.contains("no backup was taken"),
                "{err}"
            );
            assert!(pg.list("shop").await.unwrap().is_empty());
            assert!(names(store.path()).is_empty(), "{:?}", names(store.path()));
        }
    }

    /// No client program may ask for a password: `psql` would ask the terminal, if it has
    /// one, and wait there for ever (in a drop's cleanup too, which blocks its thread).
    #[tokio::test]
    async fn no_client_program_ever_asks_for_a_password() {
        let bin = tempfile::tempdir().unwrap();
        dump_clients(bin.path());
        let d = bin.path().display();
        for program in ["psql", "pg_dump", "pg_restore"] {
            std::fs::rename(
                bin.path().join(program),
                bin.path().join(format!("{program}.real")),
            )
            .unwrap();
            script(
                bin.path(),
                program,
                &format!(
                    "printf '%s %s\\n' {program} \"$*\" >> '{d}/every'\n\
                     exec '{d}/{program}.real' \"$@\"\n"
                ),
            );
        }
        let store = tempfile::tempdir().unwrap();
        let pg = dump(bin.path(), store.path());
        let id = pg.backup("shop", "v1").await.unwrap();
        pg.restore(&id).await.unwrap();
        let every = std::fs::read_to_string(bin.path().join("every")).unwrap();
        for program in ["psql", "pg_dump", "pg_restore"] {
            assert!(every.lines().any(|l| l.starts_with(program)), "{every}");
        }
        for call in every.lines() {
            assert!(call.contains(" --no-password "), "{call}");
        }
    }

    /// A database that may hold part of an in-place restore, one cut short or one running,
    /// is not backed up: the backup would later "restore" the half-restored state. The error
    /// names the database, the backup, the marker and what to do; nothing is written.
    #[tokio::test]
    async fn a_backup_is_refused_while_the_database_may_hold_part_of_a_restore() {
        let bin = tempfile::tempdir().unwrap();
        dump_clients(bin.path());
        let store = tempfile::tempdir().unwrap();
        let pg = dump(bin.path(), store.path());
        let id = pg.backup("shop", "v1").await.unwrap();
        let refused = |e: Error, marker: &Path| {
            let msg = e.to_string();
            assert!(
                msg.contains("cannot back up `shop`")
                    && msg.contains("database `shop` may hold part of backup")
                    && msg.contains(&format!("backup `{id}`"))
                    && msg.contains(&marker.display().to_string())
                    && msg.contains("restore a backup again"),
                "{msg}"
            );
        };
        let mut before = names(store.path());
        before.sort();
        // Cut short.
        pg.catalog.begin_restore(&id, true).await.unwrap().die();
        let marker = marker(store.path());
        for _ in 0..2 {
            refused(pg.backup("shop", "v2").await.unwrap_err(), &marker);
        }
        let mut after: Vec<_> = names(store.path());
        after.retain(|n| !n.ends_with(".restoring"));
        after.sort();
        assert_eq!(after, before);
        assert_eq!(pg.list("shop").await.unwrap().len(), 1);
        // Running: taken over by a restore that has not finished yet.
        let interrupted = pg.catalog.interrupted_restore().await.unwrap().unwrap();
        let running = pg
            .catalog
            .take_over_restore(interrupted, &id, true)
            .await
            .unwrap();
        refused(pg.backup("shop", "v2").await.unwrap_err(), &marker);
        drop(running);
        // A restore that finishes lifts it.
        pg.restore(&id).await.unwrap();
        pg.backup("shop", "v2").await.unwrap();
        assert_eq!(pg.list("shop").await.unwrap().len(), 2);
    }

    /// A dump restore cancelled while `pg_restore` runs (say at a deadline) is ended before
    /// the drop returns: `pg_restore` is killed, and its sessions on the server (those of the
    /// parallel workers it started, which would outlive it) are ended and waited for. The
    /// database stays marked partial, and the next restore takes the marker over.
    #[tokio::test]
    async fn a_dump_restore_cancelled_ends_its_program_and_its_sessions_before_the_drop_returns() {
        let bin = tempfile::tempdir().unwrap();
        dump_clients(bin.path());
        let store = tempfile::tempdir().unwrap();
        let pg = dump(bin.path(), store.path());
        let id = pg.backup("shop", "v1").await.unwrap();
        std::fs::write(bin.path().join("stall"), "").unwrap();
        let stalled = async {
            tokio::fs::read(bin.path().join("stalled")).await.unwrap();
            std::fs::read_to_string(bin.path().join("pid")).unwrap()
        };
        let pid = tokio::select! {
            restored = pg.restore(&id) => panic!("the restore ended: {restored:?}"),
            pid = stalled => pid.trim().to_owned(),
        };
        assert_killed(&pid).await;
        let session = std::fs::read_to_string(bin.path().join("restored")).unwrap();
        let session = session.trim();
        let ended = calls(bin.path());
        assert!(
            ended.iter().any(|(_, args)| args
                .contains(&format!("application_name = E'{session}'"))
                && args.contains("dbname='shop'")),
            "{ended:?}"
        );
        let err = pg.sweep().await.unwrap_err().to_string();
        assert!(err.contains("may hold part of a backup"), "{err}");
        pg.restore(&id).await.unwrap();
        assert_eq!(pg.sweep().await.unwrap(), 0);
    }

    /// A template restore replaces the whole database, so one that finishes clears the mark
    /// an in-place restore cut short left; one cut short itself keeps it.
    #[tokio::test]
    async fn a_template_restore_keeps_the_mark_of_a_cut_short_dump_restore_until_it_finishes() {
        let bin = tempfile::tempdir().unwrap();
        scripted_client(bin.path(), "no call holds this");
        let store = tempfile::tempdir().unwrap();
        let pg = template(bin.path(), store.path());
        let id = pg.backup("shop", "v1").await.unwrap();
        pg.catalog.begin_restore(&id, true).await.unwrap().die();
        let partial = |e: Error| e.to_string().contains("may hold part of a backup");
        assert!(pg.sweep().await.is_err_and(partial));
        // Cut short during its swap: still marked.
        scripted_client(bin.path(), "RENAME TO");
        tokio::select! {
            restored = pg.restore(&id) => panic!("the restore ended: {restored:?}"),
            _ = tokio::fs::read(bin.path().join("stalled")) => {}
        }
        wait_unlocked(&marker(store.path()));
        assert!(pg.sweep().await.is_err_and(partial));
        scripted_client(bin.path(), "no call holds this");
        pg.restore(&id).await.unwrap();
        assert_eq!(pg.sweep().await.unwrap(), 0);
        assert_eq!(names(store.path()), [format!("{id}.json")]);
    }

    /// A process killed during a template-mode backup leaves a copy on the server; a
    /// provider of the same store and database set to dump mode since still drops it.
    #[tokio::test]
    async fn a_claim_taken_in_template_mode_is_swept_as_such_once_the_mode_changed() {
        let bin = tempfile::tempdir().unwrap();
        scripted_client(bin.path(), "no call holds this");
        let store = tempfile::tempdir().unwrap();
        let at = Timestamp::from_millis(1_800_000_000_000);
        let killed = template(bin.path(), store.path())
            .claim("shop", at, true)
            .await
            .unwrap();
        let (id, token) = (killed.id().to_owned(), killed.token().to_owned());
        killed.die();
        let dump = dump(bin.path(), store.path());
        assert_eq!(dump.sweep().await.unwrap(), 1);
        let calls = calls(bin.path());
        let dropped = |name: &str| {
            calls.iter().any(|(_, args)| {
                args.contains(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            })
        };
        assert!(dropped(&format!("serin_part_{token}")), "{calls:?}");
        assert!(dropped(&dump.snapshot_database(&id)), "{calls:?}");
        assert!(names(store.path()).is_empty(), "{:?}", names(store.path()));
    }

    /// The sessions of a dump restore cut short are ended from the maintenance database when
    /// the restored one cannot be reached; the sweep then says what is left: part of a backup.
    #[tokio::test]
    async fn a_cut_short_dump_restore_is_settled_even_when_its_database_cannot_be_reached() {
        let bin = tempfile::tempdir().unwrap();
        let d = bin.path().display();
        script(
            bin.path(),
            "psql",
            &format!(
                "case \"$*\" in *\"dbname='shop'\"*) echo 'FATAL:  database \"shop\" does not \
                 exist' >&2; exit 1;; esac\nprintf '%s\\n' \"$*\" >> '{d}/calls'\n"
            ),
        );
        let store = tempfile::tempdir().unwrap();
        let pg = dump(bin.path(), store.path());
        let cut_short = pg.catalog.begin_restore("shop-1-000", true).await.unwrap();
        let sessions = PostgresBackup::restore_sessions(&cut_short);
        cut_short.die();
        let err = pg.sweep().await.unwrap_err().to_string();
        assert!(err.contains("may hold part of a backup"), "{err}");
        let calls = std::fs::read_to_string(bin.path().join("calls")).unwrap();
        assert!(
            calls.contains("dbname='postgres'")
                && calls.contains(&format!("application_name = E'{sessions}'")),
            "{calls}"
        );
    }

    #[tokio::test]
    async fn a_dump_is_on_disk_before_its_metadata() {
        let bin = tempfile::tempdir().unwrap();
        script(
            bin.path(),
            "psql",
            "read a\nread b\necho 00000003-00000002-1\nexec cat >/dev/null\n",
        );
        script(
            bin.path(),
            "pg_dump",
            &format!("{FIND_FILE}printf dump > \"$out\"\n"),
        );
        script(bin.path(), "pg_restore", "echo ';     Archive created'\n");
        let store = tempfile::tempdir().unwrap();
        let pg = dump(bin.path(), store.path());
        let id = pg.backup("shop", "v1").await.unwrap();
        let synced = durable::log::synced_under(store.path());
        let at = |path: PathBuf| synced.iter().position(|s| *s == path);
        let metadata = at(store.path().join(format!("{id}.json.tmp"))).unwrap();
        for data in [store.path().join(format!("{id}.dump")), store.path().into()] {
            assert!(
                at(data.clone()).is_some_and(|at| at < metadata),
                "`{}` must be synced before the metadata: {synced:?}",
                data.display()
            );
        }
    }

    #[tokio::test]
    async fn a_snapshot_name_taken_by_another_directory_is_named_as_the_cause() {
        let bin = tempfile::tempdir().unwrap();
        failing_client(bin.path(), r#"database \"serin_snap_0\" already exists"#);
        let store = tempfile::tempdir().unwrap();
        let pg = PostgresBackup::new(
            PostgresSettings::new(conn(), store.path())
                .with_mode(PostgresMode::Template)
                .with_bin_dir(bin.path()),
        )
        .unwrap();
        let msg = pg.backup("shop", "v1").await.unwrap_err().to_string();
        assert!(
            msg.contains("another backup directory of database `shop`")
                && msg.contains("serin_snap_")
                && !msg.contains("no other connection"),
            "{msg}"
        );
        assert!(pg.list("shop").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_dump_names_the_database_as_a_quoted_connection_value() {
        let bin = tempfile::tempdir().unwrap();
        fake_client(bin.path());
        let store = tempfile::tempdir().unwrap();
        let connection = PostgresConnection::new("h", 5432, "app", "x host=evil user='root'");
        let pg = PostgresBackup::new(
            PostgresSettings::new(connection, store.path())
                .verify_table(TableName::new("t"))
                .with_bin_dir(bin.path()),
        )
        .unwrap();
        let err = pg.backup("shop", "v1").await.unwrap_err();
        assert!(
            err.to_string().contains("could not export a snapshot"),
            "{err}"
        );
        let args = std::fs::read_to_string(bin.path().join("args")).unwrap();
        assert!(
            args.lines()
                .any(|l| l == r"dbname='x host=evil user=\'root\''"),
            "{args}"
        );
    }

    /// Creates the database of `pg` afresh (dropped first if a run left it), with a table `t`
    /// of one row.
    async fn recreate_with_one_row(pg: &PostgresBackup) {
        let db = sql::ident(pg.db());
        for statement in [
            format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
            format!("CREATE DATABASE {db}"),
        ] {
            pg.psql("postgres", &[statement]).await.unwrap();
        }
        pg.psql(
            pg.db(),
            &["CREATE TABLE t (v int); INSERT INTO t VALUES (1)".into()],
        )
        .await
        .unwrap();
    }

    /// A template restore whose replaced database could not be dropped leaves it under its
    /// `old` name; restoring the same backup again must not stumble over it.
    #[tokio::test]
    async fn a_template_restore_clears_what_an_earlier_restore_left_aside() {
        let Some(mut connection) =
            crate::backup::testkit::postgres_from_env("template_restore_left_aside")
        else {
            return;
        };
        connection.dbname = format!("serin_t_aside_{}", std::process::id());
        let store = tempfile::tempdir().unwrap();
        let pg = PostgresBackup::new(
            PostgresSettings::new(connection, store.path())
                .with_mode(PostgresMode::Template)
                .verify_table(TableName::new("t")),
        )
        .unwrap();
        let db = sql::ident(pg.db());
        let admin = |statement: String| {
            let pg = pg.clone();
            async move { pg.psql("postgres", &[statement]).await.unwrap() }
        };
        recreate_with_one_row(&pg).await;
        let id = pg.backup("shop", "v1").await.unwrap();
        let aside = pg.database_for("old", &id);
        admin(format!("CREATE DATABASE {}", sql::ident(&aside))).await;
        pg.psql(pg.db(), &["DELETE FROM t".into()]).await.unwrap();
        pg.restore(&id).await.unwrap();
        let rows = pg.psql(pg.db(), &["SELECT count(*) FROM t".into()]).await;
        assert_eq!(rows.unwrap().trim(), "1");
        assert!(!pg.database_exists(&aside).await.unwrap());
        pg.delete(&id).await.unwrap();
        admin(format!("DROP DATABASE {db} WITH (FORCE)")).await;
    }

    /// A process killed while it took template-mode backups leaves a snapshot marked as its
    /// claim's, or only its copy under the claim's name; the sweep drops both, and never the
    /// snapshot another directory of the database made since under the same name.
    #[tokio::test(start_paused = true)]
    async fn a_sweep_drops_what_killed_backups_made_and_nothing_of_another_directory() {
        let Some(mut connection) =
            crate::backup::testkit::postgres_from_env("sweep_of_killed_backups")
        else {
            return;
        };
        connection.dbname = format!("serin_t_sweep_{}", std::process::id());
        let (ours, theirs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let at = Timestamp::from_millis(1_800_000_000_000);
        let provider = |store: &Path| {
            PostgresBackup::new(
                PostgresSettings::new(connection.clone(), store)
                    .with_mode(PostgresMode::Template)
                    .verify_table(TableName::new("t")),
            )
            .unwrap()
            .with_clock(Clock::starting_at(at))
        };
        let (a, b) = (provider(ours.path()), provider(theirs.path()));
        let db = sql::ident(a.db());
        let admin = |statement: String| {
            let pg = a.clone();
            async move { pg.psql("postgres", &[statement]).await.unwrap() }
        };
        recreate_with_one_row(&a).await;
        // Killed once its copy took the snapshot's name.
        let mut copied = a.claim("shop", at, true).await.unwrap();
        let copied_id = copied.id().to_owned();
        a.take_template(&mut copied).await.unwrap();
        copied.die();
        // Killed while it copied, before the rename.
        let half = a.claim("shop", at, true).await.unwrap();
        let half_id = half.id().to_owned();
        let part = a.leftovers(&half_id, half.token()).part;
        admin(format!(
            "CREATE DATABASE {} TEMPLATE {db}",
            sql::ident(&part)
        ))
        .await;
        half.die();
        // Another directory hands out the same id (time is paused: the same millisecond) and
        // makes its snapshot.
        let b_id = b.backup("shop", "theirs").await.unwrap();
        assert_eq!(b_id, half_id);

        assert_eq!(a.sweep().await.unwrap(), 2);
        assert!(
            !a.database_exists(&a.snapshot_database(&copied_id))
                .await
                .unwrap()
        );
        assert!(!a.database_exists(&part).await.unwrap());
        assert!(names(ours.path()).is_empty(), "{:?}", names(ours.path()));
        assert!(
            b.database_exists(&b.snapshot_database(&b_id))
                .await
                .unwrap()
        );
        a.psql(a.db(), &["DELETE FROM t".into()]).await.unwrap();
        b.restore(&b_id).await.unwrap();
        let rows = a.psql(a.db(), &["SELECT count(*) FROM t".into()]).await;
        assert_eq!(rows.unwrap().trim(), "1");
        b.delete(&b_id).await.unwrap();
        admin(format!("DROP DATABASE {db} WITH (FORCE)")).await;
    }

    /// A restore killed between `ALLOW_CONNECTIONS false` and its renames leaves the database
    /// refusing connections for ever, and one killed once its renames committed leaves the
    /// replaced database; the sweep puts both right, but never touches a running restore.
    #[tokio::test(start_paused = true)]
    async fn a_sweep_lets_connections_back_in_after_a_killed_restore_but_not_a_running_one() {
        let Some(mut connection) =
            crate::backup::testkit::postgres_from_env("sweep_of_killed_restores")
        else {
            return;
        };
        connection.dbname = format!("serin_t_rsweep_{}", std::process::id());
        let store = tempfile::tempdir().unwrap();
        let pg = PostgresBackup::new(
            PostgresSettings::new(connection, store.path())
                .with_mode(PostgresMode::Template)
                .verify_table(TableName::new("t")),
        )
        .unwrap()
        .with_clock(Clock::starting_at(Timestamp::from_millis(
            1_800_000_000_000,
        )));
        async fn admin(pg: &PostgresBackup, statement: String) -> String {
            pg.psql("postgres", &[statement])
                .await
                .unwrap()
                .trim()
                .to_owned()
        }
        let db = sql::ident(pg.db());
        let allows = format!(
            "SELECT datallowconn FROM pg_database WHERE datname = {}",
            sql::literal(pg.db())
        );
        recreate_with_one_row(&pg).await;
        let rows = || async { pg.psql(pg.db(), &["SELECT count(*) FROM t".into()]).await };
        let id = pg.backup("shop", "v1").await.unwrap();
        pg.psql(pg.db(), &["INSERT INTO t VALUES (2)".into()])
            .await
            .unwrap();
        let (snap, staging, aside) = (
            sql::ident(&pg.snapshot_database(&id)),
            pg.database_for("restore", &id),
            pg.database_for("old", &id),
        );
        let copy = format!("CREATE DATABASE {} TEMPLATE {snap}", sql::ident(&staging));
        let refuse = format!("ALTER DATABASE {db} ALLOW_CONNECTIONS false");

        // Between `ALLOW_CONNECTIONS false` and the renames, its marker held: running.
        let running = pg.catalog.begin_restore(&id, false).await.unwrap();
        admin(&pg, copy.clone()).await;
        admin(&pg, refuse.clone()).await;
        assert_eq!(pg.sweep().await.unwrap(), 0);
        assert_eq!(admin(&pg, allows.clone()).await, "f");
        // Its process is killed, and its psql with it.
        running.die();
        assert_eq!(pg.sweep().await.unwrap(), 1);
        assert_eq!(admin(&pg, allows.clone()).await, "t");
        assert!(!pg.database_exists(&staging).await.unwrap());
        assert_eq!(rows().await.unwrap().trim(), "2", "the restore is undone");

        // Killed once its renames committed: the restored database keeps the name.
        let killed = pg.catalog.begin_restore(&id, false).await.unwrap();
        admin(&pg, copy).await;
        admin(&pg, refuse).await;
        admin(
            &pg,
            format!("ALTER DATABASE {db} RENAME TO {}", sql::ident(&aside)),
        )
        .await;
        admin(
            &pg,
            format!("ALTER DATABASE {} RENAME TO {db}", sql::ident(&staging)),
        )
        .await;
        killed.die();
        assert_eq!(pg.sweep().await.unwrap(), 1);
        assert_eq!(admin(&pg, allows).await, "t");
        assert!(!pg.database_exists(&aside).await.unwrap());
        assert_eq!(rows().await.unwrap().trim(), "1", "the swap was done");
        assert_eq!(pg.sweep().await.unwrap(), 0);
        pg.delete(&id).await.unwrap();
        assert!(names(store.path()).is_empty(), "{:?}", names(store.path()));
        admin(&pg, format!("DROP DATABASE {db} WITH (FORCE)")).await;
    }

    /// Putting back a killed template restore drops copies named by its backup's id and lets
    /// connections in: a sweep does it only under the server's restore lock, never while a
    /// restore of the database runs through another store (whose ids may be the same).
    #[tokio::test]
    async fn a_sweep_puts_back_a_killed_template_restore_only_under_the_servers_restore_lock() {
        let Some(mut connection) =
            crate::backup::testkit::postgres_from_env("sweep_under_restore_lock")
        else {
            return;
        };
        connection.dbname = format!("serin_t_sweeplock_{}", std::process::id());
        let (store, other_store) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let settings = |store: &Path| {
            PostgresSettings::new(connection.clone(), store).with_mode(PostgresMode::Template)
        };
        let pg = PostgresBackup::new(settings(store.path())).unwrap();
        let elsewhere = PostgresBackup::new(settings(other_store.path())).unwrap();
        recreate_with_one_row(&pg).await;
        pg.catalog
            .begin_restore("shop-1-000", false)
            .await
            .unwrap()
            .die();
        let restoring = elsewhere.lock_restores().await.unwrap();
        let err = pg.sweep().await.unwrap_err().to_string();
        assert!(
            err.contains("another restore of it is running") && err.contains("restore lock"),
            "{err}"
        );
        assert!(
            names(store.path())
                .iter()
                .any(|n| n.ends_with(".restoring"))
        );
        restoring.release().await;
        assert_eq!(pg.sweep().await.unwrap(), 1);
        assert!(names(store.path()).is_empty(), "{:?}", names(store.path()));
        let db = sql::ident(pg.db());
        pg.psql("postgres", &[format!("DROP DATABASE {db} WITH (FORCE)")])
            .await
            .unwrap();
    }

    /// A dump restore cut short through one store leaves the database marked on the server,
    /// so a backup of it through another store (another directory over the same database) is
    /// refused too, until a restore finishes, whichever store it comes through.
    #[tokio::test]
    async fn a_dump_restore_cut_short_through_one_store_refuses_backups_through_another() {
        let Some(mut connection) =
            crate::backup::testkit::postgres_from_env("dump_restore_cut_short")
        else {
            return;
        };
        connection.dbname = format!("serin_t_partial_{}", std::process::id());
        let (ours, theirs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let provider = |store: &Path| {
            PostgresBackup::new(
                PostgresSettings::new(connection.clone(), store).verify_table(TableName::new("t")),
            )
            .unwrap()
        };
        let (a, b) = (provider(ours.path()), provider(theirs.path()));
        recreate_with_one_row(&a).await;
        let of_a = a.backup("shop", "v1").await.unwrap();
        let of_b = b.backup("shop", "v1").await.unwrap();
        // Killed while `pg_restore --clean` wrote into the database through store `a`.
        let cut_short = a.start_restore(&of_a, true).await.unwrap();
        a.mark_partial(&of_a).await.unwrap();
        cut_short.die();
        let refused = b.backup("shop", "v2").await.unwrap_err().to_string();
        assert!(
            refused.contains(&format!("may hold part of backup `{of_a}`"))
                && refused.contains("through another backup store")
                && refused.contains(PARTIAL_SETTING),
            "{refused}"
        );
        assert_eq!(b.list("shop").await.unwrap().len(), 1, "nothing was taken");
        // A restore that finishes, through the other store, lifts the server's mark.
        b.restore(&of_b).await.unwrap();
        assert_eq!(b.partial_on_server().await.unwrap(), None);
        b.backup("shop", "v3").await.unwrap();
        // The store the restore was cut short through still says so, until a restore
        // through it finishes.
        let own = a.backup("shop", "v2").await.unwrap_err().to_string();
        assert!(own.contains("marker"), "{own}");
        a.restore(&of_a).await.unwrap();
        a.backup("shop", "v4").await.unwrap();
        let db = sql::ident(a.db());
        a.psql("postgres", &[format!("DROP DATABASE {db} WITH (FORCE)")])
            .await
            .unwrap();
    }

    #[test]
    fn snapshot_database_names_are_short_distinct_and_plain() {
        let p = PostgresBackup::new(PostgresSettings::new(conn(), "/tmp/x")).unwrap();
        let a = p.database_for("snap", "web-1-000");
        let b = p.database_for("snap", "web-1-001");
        assert_ne!(a, b);
        assert!(a.len() <= 63 && a.starts_with("serin_snap_"), "{a}");
        assert_ne!(a, p.database_for("restore", "web-1-000"));
        let other = PostgresBackup::new(PostgresSettings::new(
            PostgresConnection::new("127.0.0.1", 5432, "app", "billing"),
            "/tmp/y",
        ))
        .unwrap();
        assert_ne!(
            a,
            other.database_for("snap", "web-1-000"),
            "the same id from another database's catalog"
        );
    }

    #[test]
    fn comparison_names_each_table_that_differs() {
        let expected = vec![
            BackupCheck::new("public.a", 3, "x"),
            BackupCheck::new("public.b", 1, "y"),
            BackupCheck::new(DUMP_CHECK, 100, "z"),
        ];
        let actual = vec![
            BackupCheck::new("public.a", 3, "x"),
            BackupCheck::new("public.b", 2, "w"),
        ];
        let d = PostgresBackup::compare(&expected, &actual);
        assert_eq!(
            d,
            vec!["public.b: 2 rows (md5 w) restored, the backup recorded 1 rows (md5 y)"]
        );
        assert!(PostgresBackup::compare(&expected, &expected).is_empty());
        assert_eq!(
            PostgresBackup::compare(&expected, &[]).len(),
            2,
            "a table missing after the restore is a difference"
        );
    }
}
