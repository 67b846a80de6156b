//! The analysis's lock claims against a real PostgreSQL.
//!
//! For each statement, the locks PostgreSQL takes on the tables, read from `pg_locks` inside
//! the statement's own (rolled back) transaction, against whether the analysis counts the
//! statement as taking a lock that blocks writes: a `require-lock-timeout` finding when no
//! timeout is set. A lock blocks writes from `SHARE` up; `SHARE UPDATE EXCLUSIVE` and weaker
//! let reads and writes go on.
//!
//! Runs when `SERIN_TEST_POSTGRES` holds a libpq connection string (`host=127.0.0.1
//! port=55432 user=postgres`, as `scripts/services/postgres.sh` prints it) and `psql` is on
//! the path; otherwise it prints `skipped: ...` and passes. It works in a database of its own,
//! created and dropped by the test.

use std::io::Write as _;
use std::process::{Command, Stdio};

use serin_compat::migration::analyze;

/// Runs `script` through `psql` on `conninfo` and returns its output (tuples only, unaligned).
fn psql(conninfo: &str, script: &str) -> String {
    let mut child = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            conninfo,
            "-f",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psql runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("script written");
    let out = child.wait_with_output().expect("psql ends");
    assert!(
        out.status.success(),
        "psql failed on:\n{script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The lock modes that block writes (and, the last, reads).
const BLOCKING: [&str; 4] = [
    "ShareLock",
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
];

const SCHEMA: &str = "
    CREATE TABLE t (id bigint PRIMARY KEY, c int, s text, v varchar(10));
    CREATE TABLE u (id bigint PRIMARY KEY);
    CREATE INDEX t_c ON t (c);
    ALTER TABLE t ADD CONSTRAINT t_c_positive CHECK (c > 0) NOT VALID;
    CREATE TYPE mood AS ENUM ('ok');
    CREATE TABLE m (x mood);
    CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
    CREATE TRIGGER t_touch BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION touch();
    CREATE POLICY t_all ON t USING (true);
    CREATE MATERIALIZED VIEW tv AS SELECT c, count(*) FROM t GROUP BY c;
    CREATE TABLE p (at date) PARTITION BY RANGE (at);
    CREATE TABLE p2025 PARTITION OF p FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
";

/// Statements a migration runs inside a transaction, on tables in use.
const STATEMENTS: &[&str] = &[
    "ALTER TABLE t ADD COLUMN a text",
    "ALTER TABLE t ALTER COLUMN c SET DEFAULT 1",
    "ALTER TABLE t ALTER COLUMN v TYPE varchar(20)",
    "ALTER TABLE t ALTER COLUMN c SET STATISTICS 500",
    "ALTER TABLE t VALIDATE CONSTRAINT t_c_positive",
    "ALTER TABLE t SET (fillfactor = 70)",
    "ALTER TABLE t ADD CONSTRAINT t_u FOREIGN KEY (c) REFERENCES u (id) NOT VALID",
    "ALTER TABLE t DISABLE TRIGGER t_touch",
    "ALTER TABLE t ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE t OWNER TO CURRENT_USER",
    "ALTER TABLE t RENAME COLUMN s TO s2",
    "ALTER TABLE t RENAME TO orders",
    "ALTER TABLE t ALTER COLUMN c SET NOT NULL",
    "ALTER TABLE t ADD CONSTRAINT t_s_unique UNIQUE (s)",
    "ALTER TABLE t REPLICA IDENTITY FULL",
    "ALTER TABLE t ALTER COLUMN c SET (n_distinct = 100)",
    "ALTER TABLE t CLUSTER ON t_c",
    "ALTER TABLE p DETACH PARTITION p2025",
    "CREATE UNIQUE INDEX t_s_u ON t (s)",
    "ALTER INDEX t_c RENAME TO t_c2",
    "REFRESH MATERIALIZED VIEW tv",
    "CREATE INDEX t_s ON t (s)",
    "DROP INDEX t_c",
    "REINDEX INDEX t_c",
    "CLUSTER t USING t_c",
    "TRUNCATE t",
    "LOCK TABLE t IN ROW EXCLUSIVE MODE",
    "LOCK TABLE t IN SHARE MODE",
    "CREATE TRIGGER t_touch2 BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION touch()",
    "DROP TRIGGER t_touch ON t",
    "CREATE POLICY t_mine ON t USING (c > 0)",
    "DROP POLICY t_all ON t",
    "CREATE STATISTICS t_st (dependencies) ON c, s FROM t",
    "COMMENT ON TABLE t IS 'orders'",
    "GRANT SELECT ON t TO PUBLIC",
    "ANALYZE t",
    "CREATE VIEW t_view AS SELECT id FROM t",
    "ALTER TYPE mood ADD VALUE 'meh'",
    "ALTER TYPE mood RENAME VALUE 'ok' TO 'fine'",
    "UPDATE t SET c = 1",
];

#[test]
fn the_locks_the_analysis_counts_are_the_ones_postgresql_takes() {
    let Some(server) = std::env::var("SERIN_TEST_POSTGRES")
        .ok()
        .filter(|s| !s.trim().is_empty())
    else {
        let _ = writeln!(
            std::io::stderr(),
            "skipped: the_locks_the_analysis_counts_are_the_ones_postgresql_takes needs \
             SERIN_TEST_POSTGRES (run scripts/services/postgres.sh)"
        );
        return;
    };
    let db = format!("serin_compat_locks_{}", std::process::id());
    psql(
        &format!("{server} dbname=postgres"),
        &format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db};"),
    );
    let conninfo = format!("{server} dbname={db}");
    psql(&conninfo, SCHEMA);
    let mut wrong = Vec::new();
    for statement in STATEMENTS {
        // The tables' locks held by this session right after the statement, by the oids
        // the tables had before it (a rename keeps the oid).
        let script = format!(
            "CREATE TEMP TABLE watched AS SELECT oid FROM pg_class WHERE relname IN ('t', 'u', 'm', 'tv', 'p', 'p2025');
             BEGIN;
             {statement};
             SELECT 'modes:' || coalesce(string_agg(DISTINCT mode, ','), '') FROM pg_locks
               WHERE locktype = 'relation' AND pid = pg_backend_pid()
               AND relation IN (SELECT oid FROM watched);
             ROLLBACK;"
        );
        let out = psql(&conninfo, &script);
        let modes = out
            .lines()
            .find_map(|l| l.strip_prefix("modes:"))
            .unwrap_or_else(|| panic!("no modes for {statement}: {out}"));
        let blocks = modes.split(',').any(|m| BLOCKING.contains(&m));
        let counted = analyze("m", statement)
            .unwrap()
            .findings()
            .any(|(_, f)| f.rule == "require-lock-timeout");
        if blocks != counted {
            wrong.push(format!(
                "{statement}: PostgreSQL takes [{modes}], the analysis says {}",
                if counted {
                    "it blocks"
                } else {
                    "it does not block"
                }
            ));
        }
    }
    psql(
        &format!("{server} dbname=postgres"),
        &format!("DROP DATABASE {db} WITH (FORCE);"),
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
