//! Backups against a real PostgreSQL (and directory snapshots on the real file system).
//!
//! The PostgreSQL tests run when `SERIN_TEST_POSTGRES` holds a libpq connection string
//! (`host=127.0.0.1 port=25432 user=postgres`, as printed by `scripts/services/postgres.sh`);
//! otherwise they print `skipped: ...` and pass. Each test works in a database of its own,
//! created and dropped by the test.

use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use serin_orchestrator::backup::testkit::{self, BackedUpState};
use serin_orchestrator::backup::{
    DirectorySnapshot, PostgresBackup, PostgresConnection, PostgresMode, PostgresSettings,
    Retention, TableName,
};
use serin_orchestrator::{BackupProvider, Error};

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn literal(value: &str) -> String {
    format!("E'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// A quiet `psql` without a startup file, connected to `database` of `server` as its user.
fn psql(server: &PostgresConnection, database: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("psql");
    cmd.args(["-X", "-q", "-d"])
        .arg(format!(
            "dbname='{}'",
            database.replace('\\', "\\\\").replace('\'', "\\'")
        ))
        .env("PGHOST", &server.host)
        .env("PGPORT", server.port.to_string())
        .env("PGUSER", &server.user);
    if let Some(p) = &server.password {
        cmd.env("PGPASSWORD", p);
    }
    cmd
}

/// A database of the test's own, dropped when the test ends.
struct Db {
    server: PostgresConnection,
    name: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl Db {
    async fn create(server: &PostgresConnection, name: String) -> Db {
        let db = Db {
            server: server.clone(),
            name,
        };
        db.admin(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            ident(&db.name)
        ))
        .await;
        db.admin(&format!("CREATE DATABASE {}", ident(&db.name)))
            .await;
        db
    }

    async fn plain(server: &PostgresConnection, test: &str) -> Db {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Db::create(server, format!("serin_t_{test}_{}_{n}", std::process::id())).await
    }

    async fn run(&self, database: &str, sql: &str) -> String {
        let out = psql(&self.server, database)
            .args(["-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .await
            .expect("psql runs");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    async fn sql(&self, sql: &str) -> String {
        self.run(&self.name, sql).await
    }

    async fn admin(&self, sql: &str) -> String {
        self.run("postgres", sql).await
    }

    fn connection(&self) -> PostgresConnection {
        let mut c = self.server.clone();
        c.dbname = self.name.clone();
        c
    }

    async fn database_exists(&self, name: &str) -> bool {
        self.admin(&format!(
            "SELECT count(*) FROM pg_database WHERE datname = {}",
            literal(name)
        ))
        .await
            == "1"
    }

    async fn drop(self) {
        self.admin(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            ident(&self.name)
        ))
        .await;
    }
}

/// The conformance suite's state: one row in table `marker`.
struct Marker<'a>(&'a Db);

#[async_trait]
impl BackedUpState for Marker<'_> {
    async fn set(&self, marker: &str) {
        self.0
            .sql(&format!(
                "CREATE TABLE IF NOT EXISTS marker (v text); DELETE FROM marker; \
                 INSERT INTO marker VALUES ({})",
                literal(marker)
            ))
            .await;
    }

    async fn get(&self) -> String {
        self.0.sql("SELECT string_agg(v, ',') FROM marker").await
    }
}

async fn conformance(mode: PostgresMode, test: &str) {
    let Some(server) = testkit::postgres_from_env(test) else {
        return;
    };
    let db = Db::plain(&server, test).await;
    let store = tempfile::tempdir().unwrap();
    let pg = PostgresBackup::new(
        PostgresSettings::new(db.connection(), store.path())
            .with_mode(mode)
            .verify_table(TableName::new("marker")),
    )
    .unwrap();
    testkit::check_backup_provider(&pg, "shop", Some(&Marker(&db))).await;
    db.drop().await;
}

#[tokio::test]
async fn postgres_dump_mode_passes_the_conformance_suite() {
    conformance(PostgresMode::Dump { jobs: 2 }, "conf_dump").await;
}

#[tokio::test]
async fn postgres_template_mode_passes_the_conformance_suite() {
    conformance(PostgresMode::Template, "conf_template").await;
}

async fn orders(db: &Db) {
    db.sql(
        "CREATE TABLE orders (id int PRIMARY KEY, item text, qty int); \
         INSERT INTO orders SELECT g, 'item ' || g, g % 7 FROM generate_series(1, 5000) g; \
         CREATE TABLE audit (at timestamptz DEFAULT now(), note text); \
         INSERT INTO audit (note) VALUES ('created')",
    )
    .await;
}

async fn change(db: &Db) {
    db.sql(
        "DELETE FROM orders WHERE id % 3 = 0; UPDATE orders SET qty = qty + 1 WHERE id < 100; \
         INSERT INTO orders VALUES (9999, 'new', 1); TRUNCATE audit",
    )
    .await;
}

async fn fingerprint(db: &Db) -> String {
    db.sql("SELECT count(*) || ':' || md5(string_agg(o::text, ',' ORDER BY o.id)) FROM orders o")
        .await
}

/// A database of the test's own holding [`orders`], and an empty backup store.
async fn orders_db(server: &PostgresConnection, test: &str) -> (Db, tempfile::TempDir) {
    let db = Db::plain(server, test).await;
    orders(&db).await;
    (db, tempfile::tempdir().unwrap())
}

/// Backups of `db` into `store` in `mode`, verifying table `orders`.
fn verifying_orders(db: &Db, store: &std::path::Path, mode: PostgresMode) -> PostgresSettings {
    PostgresSettings::new(db.connection(), store)
        .with_mode(mode)
        .verify_table(TableName::new("orders"))
}

/// Each mode (a single dump job), with the name of the database its run works in.
fn each_mode(dump: &'static str, template: &'static str) -> [(PostgresMode, &'static str); 2] {
    [
        (PostgresMode::Dump { jobs: 1 }, dump),
        (PostgresMode::Template, template),
    ]
}

/// The names of the files in `dir`.
fn file_names(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

/// Where `tool` is found on the `PATH`.
fn real_tool(tool: &str) -> String {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&found.stdout).trim().to_owned()
}

/// Writes `script` to an executable file `name` in `dir`.
fn executable(dir: &std::path::Path, name: &str, script: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A directory of clients: the real `psql` and `pg_dump`, and a `pg_restore` that runs
/// `script` (a `/bin/sh` script), except to list a dump, which the real one does.
fn restoring_with(script: &str) -> tempfile::TempDir {
    let bin = tempfile::tempdir().unwrap();
    for tool in ["psql", "pg_dump"] {
        std::os::unix::fs::symlink(real_tool(tool), bin.path().join(tool)).unwrap();
    }
    let body = script.strip_prefix("#!/bin/sh\n").unwrap_or(script);
    let list = format!(
        "#!/bin/sh\ncase \"$1\" in --list) exec '{}' \"$@\";; esac\n",
        real_tool("pg_restore")
    );
    executable(bin.path(), "pg_restore", &format!("{list}{body}"));
    bin
}

async fn backup_change_restore(mode: PostgresMode, test: &str) {
    let Some(server) = testkit::postgres_from_env(test) else {
        return;
    };
    let (db, store) = orders_db(&server, test).await;
    let pg = PostgresBackup::new(
        verifying_orders(&db, store.path(), mode)
            .verify_table(TableName::in_schema("public", "audit")),
    )
    .unwrap();
    let before = fingerprint(&db).await;
    let id = pg.backup("shop", "before 1.0.0 -> 2.0.0").await.unwrap();
    let info = pg.info(&id).await.unwrap();
    assert!(info.size_bytes > 10_000, "size {}", info.size_bytes);
    assert!(!info.duration.is_zero());
    let orders_check = info
        .checks
        .iter()
        .find(|c| c.subject == "public.orders")
        .expect("orders are checked");
    assert_eq!(orders_check.count, 5000);
    assert_eq!(orders_check.checksum.len(), 32);
    assert!(
        info.checks
            .iter()
            .any(|c| c.subject == "public.audit" && c.count == 1)
    );

    change(&db).await;
    assert_ne!(fingerprint(&db).await, before);
    pg.restore(&id).await.unwrap();
    assert_eq!(fingerprint(&db).await, before);
    assert_eq!(db.sql("SELECT note FROM audit").await, "created");

    // A new process (a new provider on the same store) sees the same backup.
    let again = PostgresBackup::new(pg.settings().clone()).unwrap();
    assert_eq!(again.info(&id).await.unwrap(), info);
    change(&db).await;
    again.restore(&id).await.unwrap();
    assert_eq!(fingerprint(&db).await, before);
    // A provider of another database keeping its backups in the same store neither lists,
    // restores nor deletes this database's backups.
    let mut elsewhere = db.connection();
    elsewhere.dbname.push_str("_elsewhere");
    let other = PostgresBackup::new(PostgresSettings::new(elsewhere, store.path())).unwrap();
    assert!(other.list("shop").await.unwrap().is_empty());
    let err = other.restore(&id).await.unwrap_err().to_string();
    assert!(err.contains("not of postgres database"), "{err}");
    assert!(other.delete(&id).await.is_err());
    again.delete(&id).await.unwrap();
    db.drop().await;
}

#[tokio::test]
async fn a_dump_restore_brings_back_rows_and_is_verified() {
    backup_change_restore(PostgresMode::Dump { jobs: 4 }, "restore_dump").await;
}

#[tokio::test]
async fn a_template_restore_brings_back_rows_and_is_verified() {
    backup_change_restore(PostgresMode::Template, "restore_template").await;
}

/// Rewrites the recorded checksum of `subject` in the backup's metadata file, as if the
/// database had held other rows when the backup was taken.
fn forge_checksum(store: &std::path::Path, id: &str, subject: &str) {
    let path = store.join(format!("{id}.json"));
    let mut info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for check in info["checks"].as_array_mut().unwrap() {
        if check["subject"] == subject {
            check["checksum"] = "00000000000000000000000000000000".into();
        }
    }
    std::fs::write(&path, serde_json::to_vec(&info).unwrap()).unwrap();
}

#[tokio::test]
async fn a_failed_verification_is_an_error() {
    let Some(server) = testkit::postgres_from_env("failed_verification") else {
        return;
    };
    for (mode, name) in each_mode("verify_dump", "verify_template") {
        let (db, store) = orders_db(&server, name).await;
        let pg = PostgresBackup::new(verifying_orders(&db, store.path(), mode)).unwrap();
        let id = pg.backup("shop", "v1").await.unwrap();
        change(&db).await;
        let changed = fingerprint(&db).await;
        forge_checksum(store.path(), &id, "public.orders");
        let err = pg.restore(&id).await.unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Backend { .. }), "{msg}");
        assert!(msg.contains("did not verify"), "{msg}");
        assert!(msg.contains("public.orders"), "{msg}");
        if mode == PostgresMode::Template {
            // Verified before the swap: the database was not touched.
            assert!(msg.contains("left unchanged"), "{msg}");
            assert_eq!(fingerprint(&db).await, changed);
        }
        // A template-mode backup is a database of the server's: it goes with the backup.
        pg.delete(&id).await.unwrap();
        db.drop().await;
    }
}

#[tokio::test]
async fn a_damaged_dump_is_refused_before_the_database_is_touched() {
    let Some(server) = testkit::postgres_from_env("damaged_dump") else {
        return;
    };
    let (db, store) = orders_db(&server, "damaged").await;
    let pg = PostgresBackup::new(PostgresSettings::new(db.connection(), store.path())).unwrap();
    let id = pg.backup("shop", "v1").await.unwrap();
    change(&db).await;
    let changed = fingerprint(&db).await;
    let dump = store.path().join(format!("{id}.dump"));
    let mut bytes = std::fs::read(&dump).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&dump, bytes).unwrap();
    let err = pg.restore(&id).await.unwrap_err();
    assert!(err.to_string().contains("is damaged"), "{err}");
    assert_eq!(fingerprint(&db).await, changed);
    db.drop().await;
}

#[tokio::test]
async fn names_with_quotes_spaces_and_semicolons_cannot_inject() {
    let Some(server) = testkit::postgres_from_env("injection") else {
        return;
    };
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let sentinel = format!("sst_{}_{n}", std::process::id());
    let guard = Db::create(&server, sentinel.clone()).await;
    for mode in [PostgresMode::Dump { jobs: 2 }, PostgresMode::Template] {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // A database name that would end a quoted identifier, a literal or a connection-string
        // value, add connection settings, or run a statement, if it were not quoted.
        let name = format!("q{n} it's \"x\"; DROP DATABASE {sentinel}; host=x --");
        assert!(name.len() <= 63, "{}", name.len());
        let db = Db::create(&server, name).await;
        let table = "or\"ders'; DROP TABLE keep; --";
        db.sql(&format!(
            "CREATE TABLE keep (v int); INSERT INTO keep VALUES (1); \
             CREATE TABLE {} (v text); INSERT INTO {} VALUES ('a'), ('b')",
            ident(table),
            ident(table)
        ))
        .await;
        let store = tempfile::tempdir().unwrap();
        let pg = PostgresBackup::new(
            PostgresSettings::new(db.connection(), store.path())
                .with_mode(mode)
                .verify_table(TableName::new(table)),
        )
        .unwrap();
        let id = pg.backup("shop", "names").await.unwrap();
        let info = pg.info(&id).await.unwrap();
        let check = info
            .checks
            .iter()
            .find(|c| c.subject == format!("public.{table}"))
            .expect("the table is checked");
        assert_eq!(check.count, 2);
        db.sql(&format!("DELETE FROM {}", ident(table))).await;
        pg.restore(&id).await.unwrap();
        assert_eq!(
            db.sql(&format!(
                "SELECT string_agg(v, ',' ORDER BY v) FROM {}",
                ident(table)
            ))
            .await,
            "a,b"
        );
        assert_eq!(db.sql("SELECT count(*) FROM keep").await, "1");
        assert!(db.database_exists(&sentinel).await, "{mode:?}");
        pg.delete(&id).await.unwrap();
        db.drop().await;
    }
    guard.drop().await;
}

#[tokio::test]
async fn retention_keeps_the_last_backups_of_each_service() {
    let Some(server) = testkit::postgres_from_env("retention") else {
        return;
    };
    for (mode, test) in each_mode("keep_dump", "keep_template") {
        let (db, store) = orders_db(&server, test).await;
        let pg = PostgresBackup::new(
            PostgresSettings::new(db.connection(), store.path())
                .with_mode(mode)
                .with_retention(Retention::keep_last(2).unwrap()),
        )
        .unwrap();
        let mut ids = Vec::new();
        for i in 0..3 {
            ids.push(pg.backup("shop", &format!("v{i}")).await.unwrap());
        }
        let left: Vec<String> = pg
            .list("shop")
            .await
            .unwrap()
            .into_iter()
            .map(|b| b.id)
            .collect();
        assert_eq!(left, ids[1..].to_vec(), "{mode:?}");
        assert!(matches!(
            pg.info(&ids[0]).await,
            Err(Error::NotFound { .. })
        ));
        let files = file_names(store.path());
        assert!(
            !files.iter().any(|f| f.starts_with(&ids[0])),
            "{mode:?}: {files:?}"
        );
        if mode == PostgresMode::Template {
            // Template snapshots are databases: the expired one was dropped.
            assert!(!db.database_exists(&pg.snapshot_database(&ids[0])).await);
            assert!(db.database_exists(&pg.snapshot_database(&ids[2])).await);
        }
        for id in &ids[1..] {
            pg.delete(id).await.unwrap();
            assert!(!db.database_exists(&pg.snapshot_database(id)).await);
        }
        db.drop().await;
    }
}

#[tokio::test]
async fn template_mode_refuses_a_busy_database_and_says_why() {
    let Some(server) = testkit::postgres_from_env("busy") else {
        return;
    };
    let (db, store) = orders_db(&server, "busy").await;
    // A connection held open by "the service".
    let mut holder = psql(&server, &db.name)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Wait (bounded) until the connection shows up.
    let mut connected = false;
    for _ in 0..100 {
        let n = db
            .admin(&format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = {}",
                literal(&db.name)
            ))
            .await;
        if n != "0" {
            connected = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(connected, "the holding connection never appeared");
    let pg = PostgresBackup::new(
        PostgresSettings::new(db.connection(), store.path()).with_mode(PostgresMode::Template),
    )
    .unwrap();
    let err = pg.backup("shop", "v1").await.unwrap_err();
    assert!(
        err.to_string().contains("must have no other connection"),
        "{err}"
    );
    assert!(pg.list("shop").await.unwrap().is_empty());
    assert!(std::fs::read_dir(store.path()).unwrap().next().is_none());
    let _ = holder.kill().await;
    db.drop().await;
}

#[tokio::test]
async fn directory_snapshots_pass_the_conformance_suite_on_disk() {
    struct Tree(std::path::PathBuf);

    #[async_trait]
    impl BackedUpState for Tree {
        async fn set(&self, marker: &str) {
            let _ = std::fs::remove_dir_all(&self.0);
            std::fs::create_dir_all(self.0.join("data")).unwrap();
            std::fs::write(self.0.join("data/state"), marker).unwrap();
        }

        async fn get(&self) -> String {
            std::fs::read_to_string(self.0.join("data/state")).unwrap()
        }
    }

    let tmp = tempfile::tempdir().unwrap();
    let snapshots =
        DirectorySnapshot::new(tmp.path().join("state"), tmp.path().join("store")).unwrap();
    testkit::check_backup_provider(&snapshots, "files", Some(&Tree(tmp.path().join("state"))))
        .await;
}

#[tokio::test]
async fn a_template_restore_recreates_a_dropped_database() {
    let Some(server) = testkit::postgres_from_env("dropped") else {
        return;
    };
    let (db, store) = orders_db(&server, "dropped").await;
    let before = fingerprint(&db).await;
    let pg =
        PostgresBackup::new(verifying_orders(&db, store.path(), PostgresMode::Template)).unwrap();
    let id = pg.backup("shop", "v1").await.unwrap();
    db.admin(&format!("DROP DATABASE {} WITH (FORCE)", ident(&db.name)))
        .await;
    assert!(!db.database_exists(&db.name).await);
    pg.restore(&id).await.unwrap();
    assert_eq!(fingerprint(&db).await, before);
    pg.delete(&id).await.unwrap();
    db.drop().await;
}

/// Two backup directories of one database hand out the same ids at the same moment; in template
/// mode both backups' snapshot databases must still differ, and each restores its own state.
#[tokio::test(start_paused = true)]
async fn two_directories_of_one_database_do_not_collide_on_snapshot_names() {
    let Some(server) = testkit::postgres_from_env("two_directories") else {
        return;
    };
    let db = Db::plain(&server, "two_dirs").await;
    let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Paused time: both clocks read the same millisecond for every backup.
    let at = serin_signals::Timestamp::from_millis(1_800_000_000_000);
    let provider = |store: &std::path::Path| {
        PostgresBackup::new(
            PostgresSettings::new(db.connection(), store).with_mode(PostgresMode::Template),
        )
        .unwrap()
        .with_clock(serin_orchestrator::Clock::starting_at(at))
    };
    let (a, b) = (provider(first.path()), provider(second.path()));
    let marker = Marker(&db);
    marker.set("a").await;
    let id_a = a.backup("shop", "first directory").await.unwrap();
    marker.set("b").await;
    let id_b = b.backup("shop", "second directory").await.unwrap();
    // The second directory passed over the id whose snapshot the first one holds.
    assert_eq!(id_a, "shop-1800000000000-000");
    assert_eq!(id_b, "shop-1800000000000-001");
    assert_ne!(a.snapshot_database(&id_a), b.snapshot_database(&id_b));
    marker.set("c").await;
    b.restore(&id_b).await.unwrap();
    assert_eq!(marker.get().await, "b");
    a.restore(&id_a).await.unwrap();
    assert_eq!(marker.get().await, "a");
    // The id passed over is free again in the second directory's catalog, and nothing of it
    // was left there.
    assert_eq!(
        b.list("shop")
            .await
            .unwrap()
            .iter()
            .map(|i| i.id.as_str())
            .collect::<Vec<_>>(),
        [id_b.as_str()]
    );
    assert!(!second.path().join(format!("{id_a}.pending")).exists());
    a.delete(&id_a).await.unwrap();
    b.delete(&id_b).await.unwrap();
    assert!(!db.database_exists(&a.snapshot_database(&id_a)).await);
    db.drop().await;
}

/// A restore verifies the tables its backup recorded, whatever the settings list now: a table
/// dropped from `verifyTables` since the backup neither blocks the restore nor goes unchecked.
#[tokio::test]
async fn a_restore_verifies_the_tables_its_backup_recorded() {
    let Some(server) = testkit::postgres_from_env("recorded_tables") else {
        return;
    };
    for (mode, name) in each_mode("recorded_dump", "recorded_template") {
        let (db, store) = orders_db(&server, name).await;
        let both = verifying_orders(&db, store.path(), mode).verify_table(TableName::new("audit"));
        let pg = PostgresBackup::new(both).unwrap();
        let id = pg.backup("shop", "v1").await.unwrap();
        let before = fingerprint(&db).await;
        change(&db).await;
        // A later configuration verifies only `orders`.
        let fewer = PostgresBackup::new(verifying_orders(&db, store.path(), mode)).unwrap();
        fewer.restore(&id).await.unwrap();
        assert_eq!(fingerprint(&db).await, before, "{mode:?}");
        assert_eq!(db.sql("SELECT note FROM audit").await, "created");
        // `audit` is still checked: a forged record of it fails the restore.
        forge_checksum(store.path(), &id, "public.audit");
        let msg = fewer.restore(&id).await.unwrap_err().to_string();
        assert!(msg.contains("public.audit"), "{mode:?}: {msg}");
        fewer.delete(&id).await.unwrap();
        db.drop().await;
    }
}

/// `pg_restore --exit-on-error` stops at the first failure, but what it restored before stays:
/// the error says that the database may hold part of the backup.
#[tokio::test]
async fn a_restore_that_stops_part_way_says_the_database_may_hold_part_of_it() {
    let Some(server) = testkit::postgres_from_env("restore_part_way") else {
        return;
    };
    let (db, store) = orders_db(&server, "part_way").await;
    let settings = PostgresSettings::new(db.connection(), store.path());
    let id = PostgresBackup::new(settings.clone())
        .unwrap()
        .backup("shop", "v1")
        .await
        .unwrap();
    // The same store, read by clients whose pg_restore fails after restoring something.
    let bin = restoring_with(
        "#!/bin/sh\necho 'pg_restore: error: could not execute query: out of disk' >&2\nexit 1\n",
    );
    let failing = PostgresBackup::new(settings.clone().with_bin_dir(bin.path())).unwrap();
    let msg = failing.restore(&id).await.unwrap_err().to_string();
    assert!(
        msg.contains("stopped part-way")
            && msg.contains("out of disk")
            && msg.contains("may now hold part of the backup"),
        "{msg}"
    );
    // One whose statement gave up on a lock held too long says which wait ran out.
    let bin = restoring_with(
        "#!/bin/sh
echo 'pg_restore: error: could not execute query: ERROR:  canceling \
         statement due to lock timeout' >&2
echo 'Command was: DROP TABLE IF EXISTS \
         public.orders;' >&2
exit 1
",
    );
    let failing = PostgresBackup::new(settings.with_bin_dir(bin.path())).unwrap();
    let msg = failing.restore(&id).await.unwrap_err().to_string();
    assert!(
        msg.contains("DROP TABLE IF EXISTS public.orders")
            && msg.contains("another session of the database held a lock")
            && msg.contains("lock_timeout 10s")
            && msg.contains("may now hold part of the backup"),
        "{msg}"
    );
    db.drop().await;
}

/// Polls `fut` until `stop()` answers true before a poll, then drops it (a cancellation at an
/// `.await`); answers whether it was dropped before it finished.
async fn cancel_when<F, S>(fut: F, mut stop: impl FnMut() -> S) -> bool
where
    F: std::future::Future,
    S: std::future::Future<Output = bool>,
{
    let mut fut = std::pin::pin!(fut);
    loop {
        if stop().await {
            return true;
        }
        let polled = std::future::poll_fn(|cx| std::task::Poll::Ready(fut.as_mut().poll(cx))).await;
        if polled.is_ready() {
            return false;
        }
        tokio::task::yield_now().await;
    }
}

/// A template-mode backup cancelled once its snapshot database exists (say, by a timeout)
/// leaves neither the database nor anything in its directory.
#[tokio::test]
async fn a_template_backup_cancelled_after_the_copy_leaves_no_snapshot_database() {
    let Some(server) = testkit::postgres_from_env("cancelled_template") else {
        return;
    };
    let (db, store) = orders_db(&server, "cancel_tpl").await;
    let pg =
        PostgresBackup::new(verifying_orders(&db, store.path(), PostgresMode::Template)).unwrap();
    let claimed = || {
        std::fs::read_dir(store.path()).unwrap().find_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".pending").map(str::to_owned)
        })
    };
    let copied = || async {
        match claimed() {
            Some(id) => db.database_exists(&pg.snapshot_database(&id)).await,
            None => false,
        }
    };
    let mut id = None;
    let cancelled = cancel_when(pg.backup("shop", "v1"), || {
        id = id.take().or_else(claimed);
        copied()
    })
    .await;
    assert!(cancelled, "the backup ended before its copy was seen");
    let id = id.expect("a claim was seen");
    assert!(!db.database_exists(&pg.snapshot_database(&id)).await);
    let left: Vec<_> = std::fs::read_dir(store.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(pg.list("shop").await.unwrap().is_empty());
    db.drop().await;
}

/// A delete that cannot drop a snapshot database still unlists the backup first (a listed
/// backup always has its data), says so, and is finished by deleting again or by the next
/// backup.
#[tokio::test]
async fn an_interrupted_delete_unlists_first_and_is_finished_later() {
    let Some(server) = testkit::postgres_from_env("interrupted_delete") else {
        return;
    };
    let (db, store) = orders_db(&server, "interrupted").await;
    let settings =
        PostgresSettings::new(db.connection(), store.path()).with_mode(PostgresMode::Template);
    let pg = PostgresBackup::new(settings.clone()).unwrap();
    let first = pg.backup("shop", "v1").await.unwrap();
    let second = pg.backup("shop", "v2").await.unwrap();
    // The same store, through a psql that cannot drop snapshot databases.
    let bin = tempfile::tempdir().unwrap();
    let real = real_tool("psql");
    executable(
        bin.path(),
        "psql",
        &format!(
            "#!/bin/sh\ncase \"$*\" in *'DROP DATABASE IF EXISTS \"serin_snap_'*) \
             echo 'ERROR:  refused by the test' >&2; exit 1;; esac\nexec '{real}' \"$@\"\n"
        ),
    );
    let failing = PostgresBackup::new(settings.with_bin_dir(bin.path())).unwrap();
    for id in [&first, &second] {
        let msg = failing.delete(id).await.unwrap_err().to_string();
        assert!(
            msg.contains(&format!("backup `{id}` is no longer listed"))
                && msg.contains("refused by the test")
                && msg.contains("deleting")
                && msg.contains("again"),
            "{msg}"
        );
        assert!(matches!(pg.info(id).await, Err(Error::NotFound { .. })));
        assert!(db.database_exists(&pg.snapshot_database(id)).await);
    }
    assert!(pg.list("shop").await.unwrap().is_empty());
    // Deleting again finishes it.
    pg.delete(&first).await.unwrap();
    assert!(!db.database_exists(&pg.snapshot_database(&first)).await);
    assert!(matches!(
        pg.delete(&first).await,
        Err(Error::NotFound { .. })
    ));
    // So does the next backup of the service.
    let third = pg.backup("shop", "v3").await.unwrap();
    assert!(!db.database_exists(&pg.snapshot_database(&second)).await);
    assert_eq!(file_names(store.path()), [format!("{third}.json")]);
    pg.delete(&third).await.unwrap();
    db.drop().await;
}

/// A dump restore writes into the database in place: one cut short cannot be undone. One
/// cancelled (its future dropped, say at a deadline) ends its sessions before the drop
/// returns, even those of a child of `pg_restore` that outlives it (as parallel workers do).
/// Every sweep says the database may hold part of a backup, and every backup is refused,
/// until a restore finishes; the next restore takes over, and finishes.
#[tokio::test]
async fn a_dump_restore_cut_short_is_ended_and_said_until_a_restore_finishes() {
    let Some(server) = testkit::postgres_from_env("dump_cut_short") else {
        return;
    };
    let (db, store) = orders_db(&server, "cut_short").await;
    let settings = verifying_orders(&db, store.path(), PostgresMode::Dump { jobs: 1 });
    let pg = PostgresBackup::new(settings.clone()).unwrap();
    let before = fingerprint(&db).await;
    let id = pg.backup("shop", "v1").await.unwrap();
    change(&db).await;
    // A pg_restore whose session locks a table and goes on, and outlives its parent.
    let bin = restoring_with(&format!(
        "#!/bin/sh\nfor a in \"$@\"; do\n  [ \"$next\" = db ] && db=\"$a\"\n  next=\n  \
         [ \"$a\" = --dbname ] && next=db\ndone\n'{}' -X -q -d \"$db\" -c \
         'LOCK TABLE orders IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(600)' &\nwait\n",
        real_tool("psql")
    ));
    let cut_short = PostgresBackup::new(settings.with_bin_dir(bin.path())).unwrap();
    let restoring = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = {} \
         AND application_name LIKE 'serin-restore-%' AND query LIKE '%pg_sleep%'",
        literal(&db.name)
    );
    let running = || async { db.admin(&restoring).await != "0" };
    assert!(cancel_when(cut_short.restore(&id), running).await);
    assert!(
        !running().await,
        "the cancelled restore ends the session its program's child left"
    );
    // Its marker's lock outlives it while a child process started meanwhile (another test's)
    // holds a copy of the descriptor, until that child execs.
    let marker = file_names(store.path())
        .into_iter()
        .find(|n| n.ends_with(".restoring"))
        .expect("the restore's marker stays");
    let _ = std::fs::File::open(store.path().join(marker))
        .unwrap()
        .lock();
    for _ in 0..2 {
        let msg = pg.sweep().await.unwrap_err().to_string();
        assert!(
            msg.contains(&format!("database `{}` may hold part of a backup", db.name))
                && msg.contains(&format!("backup `{id}`"))
                && msg.contains("Restore a backup again"),
            "{msg}"
        );
        let msg = pg.backup("shop", "v2").await.unwrap_err().to_string();
        assert!(
            msg.contains(&format!(
                "database `{}` may hold part of backup `{id}`",
                db.name
            )) && msg.contains(".restoring")
                && msg.contains("restore a backup again"),
            "{msg}"
        );
    }
    assert_eq!(pg.list("shop").await.unwrap().len(), 1);
    pg.restore(&id).await.unwrap();
    assert_eq!(fingerprint(&db).await, before);
    assert_eq!(pg.sweep().await.unwrap(), 0);
    let mut left = file_names(store.path());
    left.sort();
    assert_eq!(left, [format!("{id}.dump"), format!("{id}.json")]);
    db.drop().await;
}

/// The application's session, holding a lock on table `orders` in a transaction that stays
/// open.
struct Application<'a> {
    db: &'a Db,
    psql: tokio::process::Child,
}

/// Starts the application's session (named `the-application`), locking table `orders` of
/// `db` in `mode`, and waits until it runs.
async fn application_locking_orders<'a>(db: &'a Db, mode: &str) -> Application<'a> {
    let psql = psql(&db.server, &db.name)
        .args([
            "-c",
            &format!("BEGIN; LOCK TABLE orders IN {mode} MODE; SELECT pg_sleep(600)"),
        ])
        .env("PGAPPNAME", "the-application")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let app = Application { db, psql };
    // Bounded, so that an application that cannot connect fails the test rather than hang it.
    for _ in 0..600 {
        if db.admin(&app.sessions("count(*)")).await != "0" {
            return app;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the application's session did not appear within 30 s");
}

impl Application<'_> {
    /// Selects `what` of the application's sessions.
    fn sessions(&self, what: &str) -> String {
        format!(
            "SELECT {what} FROM pg_stat_activity WHERE datname = {} \
             AND application_name = 'the-application' AND query LIKE '%pg_sleep%'",
            literal(&self.db.name)
        )
    }

    /// Ends the session: its `psql` killed, and its server session too, which outlives a
    /// killed `psql` while it sleeps.
    async fn end(mut self) {
        let _ = self.psql.kill().await;
        self.db
            .admin(&self.sessions("pg_terminate_backend(pid)"))
            .await;
    }
}

/// A dump backup cancelled while its sessions wait for a lock the application holds (its
/// client programs killed) ends those server sessions too, rather than leaving them waiting
/// until the lock is granted.
#[tokio::test]
async fn a_dump_backup_cancelled_while_waiting_for_a_lock_ends_its_sessions() {
    let Some(server) = testkit::postgres_from_env("dump_cancel_lock") else {
        return;
    };
    let (db, store) = orders_db(&server, "cancel_lock").await;
    let pg = PostgresBackup::new(verifying_orders(
        &db,
        store.path(),
        PostgresMode::Dump { jobs: 1 },
    ))
    .unwrap();
    let app = application_locking_orders(&db, "ACCESS EXCLUSIVE").await;
    let waiting = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = {} \
         AND application_name LIKE 'serin-backup%' AND wait_event_type = 'Lock'",
        literal(&db.name)
    );
    let blocked = || async { db.admin(&waiting).await != "0" };
    assert!(cancel_when(pg.backup("shop", "v1"), blocked).await);
    assert!(
        !blocked().await,
        "the cancelled backup ends its sessions waiting for the lock"
    );
    app.end().await;
    assert!(pg.list("shop").await.unwrap().is_empty());
    db.drop().await;
}

/// A dump restore blocked by a lock the application holds gives up after the restore's lock
/// wait instead of waiting for ever, before anything changes, naming the locked table; once
/// the lock is gone, the next restore finishes.
#[tokio::test]
async fn a_dump_restore_blocked_by_the_applications_lock_gives_up_and_says_so() {
    let Some(server) = testkit::postgres_from_env("dump_lock_wait") else {
        return;
    };
    let (db, store) = orders_db(&server, "lock_wait").await;
    let pg = PostgresBackup::new(verifying_orders(
        &db,
        store.path(),
        PostgresMode::Dump { jobs: 2 },
    ))
    .unwrap();
    let before = fingerprint(&db).await;
    let id = pg.backup("shop", "v1").await.unwrap();
    change(&db).await;
    // The application reads the table in a transaction that stays open.
    let app = application_locking_orders(&db, "ACCESS SHARE").await;
    let restored = tokio::time::timeout(std::time::Duration::from_secs(40), pg.restore(&id))
        .await
        .expect("the restore gives up on the lock by itself");
    let msg = restored.unwrap_err().to_string();
    assert!(
        msg.contains("lock on table orders")
            && msg.contains("lock_timeout 10s")
            && msg.contains("the database was left unchanged"),
        "{msg}"
    );
    assert_ne!(fingerprint(&db).await, before);
    // Nothing changed, so nothing is marked partial.
    assert_eq!(pg.sweep().await.unwrap(), 0);
    app.end().await;
    pg.restore(&id).await.unwrap();
    assert_eq!(fingerprint(&db).await, before);
    db.drop().await;
}

/// Two backup stores of one database (two deployments with stores of their own, or two
/// machines) never restore it at once: the server's restore lock keeps the second out while
/// the first runs, changing nothing, and lets it in once the first is gone (here cancelled,
/// its session ended by the server as it sees its `psql` killed).
#[tokio::test]
async fn restores_through_two_stores_of_one_database_exclude_each_other() {
    let Some(server) = testkit::postgres_from_env("two_stores") else {
        return;
    };
    let (db, store) = orders_db(&server, "two_stores").await;
    let other_store = tempfile::tempdir().unwrap();
    let mode = PostgresMode::Dump { jobs: 1 };
    let settings = verifying_orders(&db, store.path(), mode);
    let pg = PostgresBackup::new(settings.clone()).unwrap();
    let elsewhere = PostgresBackup::new(verifying_orders(&db, other_store.path(), mode)).unwrap();
    let before = fingerprint(&db).await;
    let id = pg.backup("shop", "v1").await.unwrap();
    let theirs = elsewhere.backup("shop", "v1").await.unwrap();
    change(&db).await;
    let changed = fingerprint(&db).await;
    // The first store's restore stalls in its `pg_restore`, saying so through a FIFO.
    let signal = tempfile::tempdir().unwrap();
    let fifo = signal.path().join("stalled");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let bin = restoring_with(&format!(
        "#!/bin/sh\necho stalled > '{}'\nexec sleep 600\n",
        fifo.display()
    ));
    let stalling = PostgresBackup::new(settings.with_bin_dir(bin.path())).unwrap();
    let beside = async {
        tokio::fs::read(&fifo).await.unwrap();
        elsewhere.restore(&theirs).await
    };
    let beside = tokio::select! {
        restored = stalling.restore(&id) => panic!("the restore ended: {restored:?}"),
        beside = beside => beside,
    };
    let msg = beside.unwrap_err().to_string();
    assert!(
        msg.contains(&format!("cannot restore database `{}`", db.name))
            && msg.contains("another restore of it is running")
            && msg.contains("restore lock"),
        "{msg}"
    );
    assert_eq!(fingerprint(&db).await, changed);
    elsewhere.restore(&theirs).await.unwrap();
    assert_eq!(fingerprint(&db).await, before);
    db.drop().await;
}
