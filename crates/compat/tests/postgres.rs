//! The analysis's claims about locks and rewrites against a real PostgreSQL.
//!
//! - Locks: for each statement, the locks PostgreSQL takes on the tables, read from `pg_locks`
//!   inside the statement's own (rolled back) transaction, against whether the analysis counts
//!   the statement as taking a lock that blocks writes: a `require-lock-timeout` finding when
//!   no timeout is set. A lock blocks writes from `SHARE` up; `SHARE UPDATE EXCLUSIVE` and
//!   weaker let reads and writes go on. A lock of an index counts as one of its table, whose
//!   queries open every index to plan. Every statement must be read, none reported unreadable.
//! - Rewrites: for each change of a column or table, whether PostgreSQL wrote the table anew
//!   (its `relfilenode` changed) against whether the analysis says it rewrites the table (an
//!   error of a rewriting rule), the schema before it known.
//! - Scans: whether `SET NOT NULL` verifies the table or finds a check that proves the column
//!   holds no NULL (PostgreSQL says which at `DEBUG1`), after fifteen histories of checks
//!   (names cut to 63 bytes and folded as PostgreSQL folds them among them), against whether
//!   the analysis reports `adding-not-nullable-field`, the check in the same migration or an
//!   earlier one; and, for tables and columns with long or non-ASCII names, whether the
//!   analysis follows the drop of each unnamed check by the name PostgreSQL gave it.
//! - Refusals: thirty-one migrations, run by psql statement by statement or as one query, that
//!   PostgreSQL refuses or runs (`VACUUM`, `DETACH PARTITION ... CONCURRENTLY`, `CREATE INDEX
//!   CONCURRENTLY`, `CREATE | DROP DATABASE`, `CREATE | DROP TABLESPACE`, `ALTER SYSTEM`,
//!   `REINDEX SCHEMA`, `CLUSTER` without a table and `DISCARD ALL` in a transaction block, also
//!   after a savepoint rolled back to or a `COMMIT AND CHAIN`; a new enum value used before
//!   its transaction commits, `CREATE INDEX CONCURRENTLY` on a partitioned table, `DROP INDEX
//!   CONCURRENTLY` of several indexes or with `CASCADE`), against whether the analysis reports
//!   a rule that says it refuses them.
//! - Primary keys made of an index: whether `ADD CONSTRAINT ... PRIMARY KEY USING INDEX`
//!   verifies the table (to set its columns `NOT NULL`) after nine histories of the index and
//!   its columns, against whether the analysis reports `adding-not-nullable-field`.
//! - Partitions: which tables PostgreSQL scans to check partition bounds when a partition is
//!   attached or created (the partition itself, the parent's default partition), after
//!   twenty-five histories of checks, defaults and keys, against the tables the analysis's
//!   `partition-bound-scan` findings name.
//! - Retries: five migrations whose concurrent index build fails on the table's data, run
//!   again once the data is mended: whether the second run succeeds and leaves the index
//!   invalid, against whether the analysis reports `concurrent-index-if-not-exists`.
//! - Timeouts: ten migrations whose last statement scans a table slowly (an index build,
//!   concurrent or not, a reindex, a validation, a backfill), run with the `statement_timeout`
//!   they set or reset,
//!   against whether the analysis reports `statement-timeout-cancels`; a cancelled concurrent
//!   build leaves its index invalid, as the finding says.
//! - Kept locks: for each migration whose last statement runs long (a backfill, a
//!   validation, an index build, a reindex), whether a write of the
//!   table from another session waits while that statement would run (it is replaced by a wait
//!   for an advisory lock the test holds), the migration run by psql statement by statement or
//!   as one query, against whether the analysis reports `lock-held-through-transaction`.
//! - Rollbacks and queries: for migrations that make a table or set `lock_timeout` and roll
//!   back (to a savepoint), or send several statements as one query (with `SET LOCAL`, a
//!   `COMMIT`, a `ROLLBACK` or a `BEGIN` in it), whether the table exists and `lock_timeout`
//!   is set afterwards, against whether the analysis counts the table as new and reports
//!   `require-lock-timeout` for an index built on it next.
//!
//! The tests run when `SERIN_TEST_POSTGRES` holds a libpq connection string (`host=127.0.0.1
//! port=25432 user=postgres`, as `scripts/services/postgres.sh` prints it) and `psql` is on
//! the path; otherwise each prints `skipped: ...` and passes. Each works in a database of its
//! own, created and dropped by the test.

use std::io::Write as _;
use std::process::{Command, Stdio};

use serin_compat::Severity;
use serin_compat::migration::{
    MigrationReport, Runner, Schema, analyze, analyze_after, analyze_as,
};

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

/// Runs `migration` as psql runs a file: statement by statement, stopping at the first error.
fn run_statements(conninfo: &str, migration: &str) -> std::process::Output {
    let mut run = Command::new("psql");
    run.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", conninfo]);
    for statement in migration.split_inclusive(';') {
        run.args(["-c", statement]);
    }
    run.output().expect("psql runs")
}

/// The analysis of `migration` (after `SET lock_timeout`, so that only what the test is about
/// is reported), run after what `schema` learned.
/// What the analysis knows after `sqls` ran, in order.
fn learned(sqls: &[&str]) -> Schema {
    let mut schema = Schema::default();
    for sql in sqls {
        schema.learn(sql);
    }
    schema
}

/// A database made of `setup` for `test`, and what the analysis learns of `setup`; `None`
/// when no server is configured.
fn database_and_schema(test: &str, setup: &str) -> Option<(Database, Schema)> {
    Some((Database::create(test, setup)?, learned(&[setup])))
}

fn analysed(migration: &str, schema: &Schema) -> MigrationReport {
    analyze_after(
        "m",
        &format!("SET lock_timeout = '1s'; {migration}"),
        schema,
    )
    .unwrap()
}

/// Why the analysis could not read a statement of `report`, if it could not.
fn unread(report: &MigrationReport) -> Option<&str> {
    report
        .findings()
        .find(|(_, f)| f.rule == "unparsable-statement")
        .map(|(_, f)| f.message.as_str())
}

/// Whether the analysis of `migration` reports `rule`.
fn reports(migration: &str, schema: &Schema, rule: &str) -> bool {
    analysed(migration, schema)
        .findings()
        .any(|(_, f)| f.rule == rule)
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
    CREATE UNIQUE INDEX t_c_u ON t (id);
    ALTER TABLE t ADD CONSTRAINT t_u_fk FOREIGN KEY (c) REFERENCES u (id) NOT VALID;
    CREATE SEQUENCE t_id_seq;
    CREATE RULE t_r AS ON DELETE TO t DO ALSO NOTHING;
    CREATE DOMAIN posint AS int; ALTER TABLE t ADD COLUMN pi posint;
    ALTER DOMAIN posint ADD CONSTRAINT posint_nv CHECK (VALUE > 0) NOT VALID;
    CREATE TABLE gi (id int GENERATED ALWAYS AS IDENTITY, g int GENERATED ALWAYS AS (id * 2) STORED);
    CREATE INDEX p_at ON ONLY p (at);
    CREATE INDEX p2025_at ON p2025 (at);
    CREATE INDEX tv_c ON tv (c);
    CREATE INDEX t_c_brin ON t USING brin (c);
    CREATE TYPE pair AS (id bigint);
    CREATE TYPE duo AS (id bigint, n int); CREATE TABLE du (d duo);
    CREATE TYPE kt AS (id bigint); CREATE TABLE ko OF kt;
    CREATE TABLE ch () INHERITS (u);
    CREATE STATISTICS st_c ON c, s FROM t;
";

/// Statements a migration runs inside a transaction, on tables in use.
const STATEMENTS: &[&str] = &[
    "ALTER DOMAIN posint ADD CONSTRAINT pos CHECK (VALUE < 100)",
    "ALTER DOMAIN posint ADD CONSTRAINT pos CHECK (VALUE < 100) NOT VALID",
    "ALTER DOMAIN posint VALIDATE CONSTRAINT posint_nv",
    "ALTER DOMAIN posint SET NOT NULL",
    "ALTER DOMAIN posint SET DEFAULT 1",
    "ALTER DOMAIN posint DROP CONSTRAINT posint_nv",
    "ALTER TABLE gi ALTER COLUMN g DROP EXPRESSION",
    "ALTER TABLE gi ALTER COLUMN id DROP IDENTITY IF EXISTS",
    "ALTER TABLE gi ALTER COLUMN id SET GENERATED BY DEFAULT",
    "ALTER TABLE gi ALTER COLUMN id RESTART WITH 100",
    "ALTER INDEX t_c SET (fillfactor = 80)",
    "ALTER INDEX t_c RESET (fillfactor)",
    "CREATE PROCEDURE pr() LANGUAGE sql AS $$ SELECT 1 $$",
    "CREATE OR REPLACE PROCEDURE pr() LANGUAGE plpgsql AS $$ BEGIN COMMIT; END $$",
    "CREATE TABLE k (id bigint, u_id bigint REFERENCES u (id))",
    "CREATE TABLE k (id bigint, u_id bigint, FOREIGN KEY (u_id) REFERENCES u (id))",
    "CREATE TABLE k (id bigint, c int)",
    "CREATE TABLE p2026 PARTITION OF p FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
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
    "CREATE INDEX p_at2 ON ONLY p (at)",
    "CREATE INDEX t_c2 ON ONLY t (c)",
    "ALTER INDEX p_at ATTACH PARTITION p2025_at",
    "ALTER TABLE u ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY",
    "ALTER TABLE t DISABLE TRIGGER ALL",
    "ALTER TABLE t ALTER COLUMN c DROP NOT NULL",
    "COMMENT ON TABLE t IS 'x'",
    "GRANT SELECT ON t TO PUBLIC",
    "REVOKE SELECT ON t FROM PUBLIC",
    "ALTER INDEX t_c RENAME TO t_c_renamed",
    "ALTER INDEX t_c SET (fillfactor = 70)",
    "ALTER SEQUENCE t_id_seq OWNED BY t.id",
    "ALTER SEQUENCE t_id_seq INCREMENT BY 2",
    "ALTER SEQUENCE IF EXISTS t_id_seq RESTART WITH 10",
    "ALTER SEQUENCE t_id_seq RENAME TO t_id_seq2",
    "ALTER SEQUENCE t_id_seq OWNER TO CURRENT_USER",
    "ALTER TYPE duo ADD ATTRIBUTE m int",
    "ALTER TYPE duo RENAME ATTRIBUTE n TO n2",
    "ALTER TYPE duo DROP ATTRIBUTE n, ADD ATTRIBUTE m text",
    "ALTER TYPE duo RENAME TO couple",
    "ALTER TYPE mood RENAME TO feeling",
    // A new owner (roles are transactional: this one is gone with the rollback).
    "CREATE ROLE serin_owner; ALTER TYPE duo OWNER TO serin_owner",
    "CREATE ROLE serin_owner; ALTER TYPE mood OWNER TO serin_owner",
    "ALTER DOMAIN posint RENAME TO pint",
    "ALTER FUNCTION touch() RENAME TO touch2",
    "ALTER SCHEMA public RENAME TO main",
    "CREATE RULE r AS ON INSERT TO t DO INSTEAD NOTHING",
    "DROP RULE t_r ON t",
    "ALTER TABLE t ALTER CONSTRAINT t_u_fk DEFERRABLE",
    "ALTER TABLE t DROP CONSTRAINT t_u_fk",
    "ANALYZE t",
    "CREATE PUBLICATION pub FOR TABLE t",
    "ALTER TABLE t REPLICA IDENTITY FULL",
    "ALTER TABLE t CLUSTER ON t_c",
    "ALTER TABLE t ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE t FORCE ROW LEVEL SECURITY",
    "ALTER TABLE t OWNER TO CURRENT_USER",
    "ALTER TABLE t RENAME CONSTRAINT t_c_positive TO t_c_pos",
    "ALTER TABLE t ALTER COLUMN s SET COMPRESSION pglz",
    // What the migration made and then drops, empties or fills locks nothing in use, but for
    // the table a new table's foreign key refers to.
    "CREATE VIEW nv AS SELECT * FROM t; DROP VIEW nv",
    "CREATE TABLE k (id bigint); CREATE INDEX k_id ON k (id); DROP INDEX k_id",
    "CREATE TABLE k (id bigint); TRUNCATE k",
    "CREATE SEQUENCE ns; DROP SEQUENCE ns",
    "CREATE MATERIALIZED VIEW nmv AS SELECT * FROM t WITH NO DATA; REFRESH MATERIALIZED VIEW nmv",
    "CREATE TABLE k (id bigint, u_id bigint REFERENCES u (id)); DROP TABLE k",
    "ALTER TABLE t ALTER COLUMN s SET STORAGE EXTERNAL",
    "ALTER TABLE t INHERIT u",
    "CREATE STATISTICS st ON c, s FROM t",
    "ALTER TABLE t ADD CONSTRAINT t_u_fk2 FOREIGN KEY (c) REFERENCES u (id) NOT VALID",
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
    "ALTER TABLE t RESET (fillfactor)",
    "ALTER TABLE t SET (autovacuum_enabled = false, parallel_workers = 2)",
    "ALTER TABLE t SET (toast_tuple_target = 256)",
    "ALTER TABLE t SET (user_catalog_table = false)",
    "ALTER TABLE t ALTER COLUMN c RESET (n_distinct)",
    "ALTER TABLE t ALTER c SET (n_distinct_inherited = -0.5)",
    "ALTER TABLE t SET TABLESPACE pg_default",
    "ALTER INDEX t_c SET TABLESPACE pg_default",
    "ALTER INDEX t_c_brin SET (pages_per_range = 64)",
    "ALTER INDEX t_c_brin RESET (autosummarize)",
    "ALTER INDEX t_c RESET (deduplicate_items)",
    "ALTER MATERIALIZED VIEW tv SET TABLESPACE pg_default",
    "ALTER TABLE t SET ACCESS METHOD heap",
    "ALTER MATERIALIZED VIEW tv SET ACCESS METHOD heap",
    "ALTER TABLE t SET UNLOGGED",
    "ALTER TABLE ch NO INHERIT u",
    "ALTER TABLE t ENABLE REPLICA TRIGGER t_touch",
    "ALTER TABLE t SET WITHOUT CLUSTER",
    "ALTER MATERIALIZED VIEW tv RENAME TO tv2",
    "ALTER MATERIALIZED VIEW tv SET (fillfactor = 50)",
    "ALTER MATERIALIZED VIEW tv CLUSTER ON tv_c",
    "DROP MATERIALIZED VIEW tv",
    "CREATE INDEX tv_c2 ON tv (c)",
    "COMMENT ON COLUMN t.c IS 'count'",
    "ALTER TABLE u OF pair",
    "ALTER TABLE ko NOT OF",
    "COMMENT ON FUNCTION touch() IS 'keeps rows touched'",
    "ALTER STATISTICS st_c SET STATISTICS 200",
    "ANALYZE VERBOSE t",
    "ANALYZE (SKIP_LOCKED) t (c, s), u",
    "SET CONSTRAINTS ALL DEFERRED",
    "ALTER ROLE CURRENT_USER SET search_path = public, pg_catalog",
    "SAVEPOINT s",
    "CREATE TRIGGER t_touch3 AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION touch('a', 'b')",
    "SET ROLE NONE",
    "CREATE FUNCTION f2(a bigint) RETURNS int LANGUAGE sql STABLE COST 1 PARALLEL SAFE \
     AS $$ SELECT 1 $$",
    "ALTER TABLE t ALTER COLUMN s TYPE text COLLATE \"C\"",
    "NOTIFY reload, 'schema'",
    "DROP EVENT TRIGGER IF EXISTS none_here",
    // A trigger's new name is taken under an ACCESS EXCLUSIVE lock of its table.
    "ALTER TRIGGER t_touch ON t RENAME TO t_touch2",
    "ALTER TRIGGER t_touch ON t DEPENDS ON EXTENSION plpgsql",
    "CREATE TABLE k (id bigint); CREATE TRIGGER k_touch BEFORE UPDATE ON k FOR EACH ROW \
     EXECUTE FUNCTION touch(); ALTER TRIGGER k_touch ON k RENAME TO k_touch2",
    // A lock of a table the migration made holds up nobody.
    "CREATE TABLE k (id bigint); LOCK TABLE k",
    "LOCK TABLE t",
    "LOCK TABLE t IN SHARE UPDATE EXCLUSIVE MODE",
    // CASCADE drops the trigger that calls the function, the column of the domain's type.
    "DROP FUNCTION touch() CASCADE",
    "DROP DOMAIN posint CASCADE",
    "CREATE FUNCTION f9() RETURNS int LANGUAGE sql AS 'SELECT 1'; DROP FUNCTION f9() CASCADE",
    "ALTER RULE t_r ON t RENAME TO t_r2",
    "DROP STATISTICS st_c",
];

/// A database of its own on the server `SERIN_TEST_POSTGRES` names, with `schema` in it,
/// dropped when the value is dropped; `None` (and a line saying so) without a server.
struct Database {
    server: String,
    name: String,
}

impl Database {
    fn create(test: &str, schema: &str) -> Option<Self> {
        let Some(server) = std::env::var("SERIN_TEST_POSTGRES")
            .ok()
            .filter(|s| !s.trim().is_empty())
        else {
            let _ = writeln!(
                std::io::stderr(),
                "skipped: the {test} test against PostgreSQL needs SERIN_TEST_POSTGRES (run \
                 scripts/services/postgres.sh)"
            );
            return None;
        };
        let name = format!("serin_compat_{test}_{}", std::process::id());
        psql(
            &format!("{server} dbname=postgres"),
            &format!("DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name};"),
        );
        let db = Self { server, name };
        psql(&db.conninfo(), schema);
        Some(db)
    }

    fn conninfo(&self) -> String {
        format!("{} dbname={}", self.server, self.name)
    }

    /// The lines `script` prints that start with `prefix`, without it.
    fn answer(&self, script: &str, prefix: &str) -> String {
        let out = psql(&self.conninfo(), script);
        out.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix} line from:\n{script}\n{out}"))
            .to_owned()
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        psql(
            &format!("{} dbname=postgres", self.server),
            &format!("DROP DATABASE {} WITH (FORCE);", self.name),
        );
    }
}

#[test]
fn the_locks_the_analysis_counts_are_the_ones_postgresql_takes() {
    // Analysed as a catalog would, after what the schema's own statements taught it (which
    // types are enums, for one).
    let Some((db, schema)) = database_and_schema("locks", SCHEMA) else {
        return;
    };
    let mut wrong = Vec::new();
    for statement in STATEMENTS {
        // The tables' locks held by this session right after the statement, by the oids
        // the tables had before it (a rename keeps the oid); those of indexes, which their
        // table's reads and writes wait for (planning a query opens every index); of a
        // sequence, which `nextval` waits for; and of a composite type, which reads of the
        // tables using it wait for.
        let script = format!(
            "CREATE TEMP TABLE watched AS SELECT oid FROM pg_class WHERE relname IN ('t', 'u', 'm', 'tv', 'p', 'p2025', 'p2025_at', 'gi', 'ko', 'ch', 't_c', 't_c_brin', 't_id_seq', 'duo', 'du');
             BEGIN;
             {statement};
             SELECT 'modes:' || coalesce(string_agg(DISTINCT mode, ','), '') FROM pg_locks
               WHERE locktype = 'relation' AND pid = pg_backend_pid()
               AND relation IN (SELECT oid FROM watched);
             ROLLBACK;"
        );
        let modes = db.answer(&script, "modes:");
        let blocks = modes.split(',').any(|m| BLOCKING.contains(&m));
        let report = analyze_after("m", statement, &schema).unwrap();
        if let Some(why) = unread(&report) {
            wrong.push(format!(
                "{statement}: PostgreSQL takes [{modes}], the analysis cannot read it ({why})"
            ));
            continue;
        }
        let counted = report
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
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

const TABLE: &str = "
    CREATE EXTENSION IF NOT EXISTS citext;
    CREATE TABLE r (id bigint PRIMARY KEY, v varchar(10), n numeric(10, 2), tx text, ip cidr,
                    i int, ts timestamp, js json, cs citext, vc varchar(10) COLLATE \"C\",
                    t3 timestamp(3), tz3 timestamptz(3), tm2 time(2),
                    iv interval day to second(2));
    INSERT INTO r VALUES (1, 'a', 1.5, 'b', '10.0.0.0/8', 2, now(), '{}', 'C', 'c', now(), now(),
                          now(), '1 day 0.25 seconds');
    CREATE INDEX r_v ON r (v);
    CREATE INDEX r_vc ON r (vc);
";

/// Changes of a column or table in use.
const CHANGES: &[&str] = &[
    "ALTER TABLE r ALTER COLUMN v TYPE varchar(20)",
    "ALTER TABLE r ALTER COLUMN v TYPE varchar(5)",
    "ALTER TABLE r ALTER COLUMN v TYPE text",
    "ALTER TABLE r ALTER COLUMN tx TYPE varchar",
    "ALTER TABLE r ALTER COLUMN tx TYPE varchar(50)",
    "ALTER TABLE r ALTER COLUMN n TYPE numeric(12, 2)",
    "ALTER TABLE r ALTER COLUMN n TYPE numeric(12, 3)",
    "ALTER TABLE r ALTER COLUMN n TYPE numeric",
    "ALTER TABLE r ALTER COLUMN ip TYPE inet",
    "ALTER TABLE r ALTER COLUMN i TYPE bigint",
    "ALTER TABLE r ALTER COLUMN v TYPE varchar(20) USING (v::varchar(20))",
    "ALTER TABLE r ALTER COLUMN v TYPE varchar(20) USING upper(v)",
    "ALTER TABLE r ADD COLUMN a int NOT NULL DEFAULT 0",
    "ALTER TABLE r ADD COLUMN a timestamptz DEFAULT now()",
    "ALTER TABLE r ADD COLUMN a timestamptz DEFAULT clock_timestamp()",
    "ALTER TABLE r ADD COLUMN a uuid DEFAULT gen_random_uuid()",
    "ALTER TABLE r ADD COLUMN a bigserial",
    "ALTER TABLE r ADD COLUMN a int GENERATED ALWAYS AS (i * 2) STORED",
    "ALTER TABLE r ALTER COLUMN i SET NOT NULL",
    "ALTER TABLE r SET UNLOGGED",
    "CLUSTER r USING r_pkey",
    "ALTER TABLE r ADD COLUMN a int GENERATED ALWAYS AS IDENTITY",
    "ALTER TABLE r ADD COLUMN a int GENERATED BY DEFAULT AS IDENTITY",
    "ALTER TABLE r ALTER COLUMN v TYPE varchar(10) COLLATE \"C\"",
    "ALTER TABLE r ALTER COLUMN i TYPE text",
    "ALTER TABLE r ALTER COLUMN tx TYPE int USING length(tx)",
    "ALTER TABLE r ALTER COLUMN ts TYPE timestamptz",
    "ALTER TABLE r ALTER COLUMN ts TYPE timestamp(3)",
    "ALTER TABLE r ALTER COLUMN v TYPE varchar(10)",
    "ALTER TABLE r ALTER COLUMN tx TYPE citext",
    "ALTER TABLE r ALTER COLUMN v TYPE citext",
    "ALTER TABLE r ALTER COLUMN cs TYPE text",
    "ALTER TABLE r ALTER COLUMN cs TYPE varchar(20)",
    "ALTER TABLE r ADD COLUMN a text DEFAULT 'x' NOT NULL",
    "ALTER TABLE r ADD COLUMN a int DEFAULT random()::int",
    "ALTER TABLE r ADD COLUMN a jsonb DEFAULT '{}'::jsonb",
    "ALTER TABLE r ADD COLUMN a text[] DEFAULT ARRAY[]::text[]",
    "ALTER TABLE r ADD COLUMN a text DEFAULT md5(random()::text)",
    "ALTER TABLE r ADD COLUMN a timestamp DEFAULT timezone('utc'::text, now())",
    "ALTER TABLE r ADD COLUMN a timestamp DEFAULT (now() AT TIME ZONE 'utc')",
    "ALTER TABLE r ADD COLUMN a date DEFAULT CURRENT_DATE",
    "ALTER TABLE r ALTER COLUMN i TYPE smallint",
    "ALTER TABLE r ALTER COLUMN js TYPE jsonb",
    "ALTER TABLE r ALTER COLUMN v SET DATA TYPE varchar(20) COLLATE \"C\"",
    "ALTER TABLE r ALTER COLUMN v TYPE varchar(10) COLLATE pg_catalog.\"default\"",
    "ALTER TABLE r ALTER COLUMN v TYPE text COLLATE \"default\"",
    "ALTER TABLE r ALTER COLUMN vc TYPE varchar(20)",
    "ALTER TABLE r ALTER COLUMN vc TYPE varchar(20) COLLATE \"C\"",
    "ALTER TABLE r ALTER COLUMN vc TYPE text COLLATE \"POSIX\"",
    "ALTER TABLE r ALTER COLUMN vc TYPE int USING length(vc)",
    "ALTER TABLE r ALTER COLUMN t3 TYPE timestamp(6)",
    "ALTER TABLE r ALTER COLUMN t3 TYPE timestamp",
    "ALTER TABLE r ALTER COLUMN t3 TYPE timestamp(2)",
    "ALTER TABLE r ALTER COLUMN ts TYPE timestamp(6)",
    "ALTER TABLE r ALTER COLUMN ts TYPE timestamp without time zone",
    "ALTER TABLE r ALTER COLUMN tz3 TYPE timestamptz(4)",
    "ALTER TABLE r ALTER COLUMN tz3 TYPE timestamp(6) with time zone",
    "ALTER TABLE r ALTER COLUMN tm2 TYPE time(4)",
    "ALTER TABLE r ALTER COLUMN tm2 TYPE time(1)",
    "ALTER TABLE r ALTER COLUMN iv TYPE interval",
    "ALTER TABLE r ALTER COLUMN iv TYPE interval day to second(4)",
    "ALTER TABLE r ALTER COLUMN iv TYPE interval day to second(1)",
];

/// The rules that say a statement writes the table anew.
const REWRITING: [&str; 4] = [
    "changing-column-type",
    "adding-field-with-default",
    "changing-table-logging",
    "prefer-repack",
];

#[test]
fn the_rewrites_the_analysis_claims_are_the_ones_postgresql_makes() {
    let Some((db, schema)) = database_and_schema("rewrites", TABLE) else {
        return;
    };
    let mut wrong = Vec::new();
    for change in CHANGES {
        let script = format!(
            "BEGIN;
             CREATE TEMP TABLE before AS SELECT relname, relfilenode FROM pg_class
               WHERE relname IN ('r', 'r_v', 'r_vc');
             {change};
             SELECT 'rewritten:' || (c.relfilenode <> b.relfilenode)
               FROM pg_class c JOIN before b USING (relname) WHERE relname = 'r';
             SELECT 'reindexed:' || bool_or(c.relfilenode <> b.relfilenode)
               FROM pg_class c JOIN before b USING (relname) WHERE relname <> 'r';
             ROLLBACK;"
        );
        let rewritten = db.answer(&script, "rewritten:") == "true";
        let reindexed = db.answer(&script, "reindexed:") == "true";
        let report = analysed(change, &schema);
        if let Some(why) = unread(&report) {
            wrong.push(format!("{change}: the analysis cannot read it ({why})"));
            continue;
        }
        let claimed = report
            .findings()
            .any(|(_, f)| REWRITING.contains(&f.rule.as_str()) && f.severity == Severity::Error);
        if rewritten != claimed {
            wrong.push(format!(
                "{change}: PostgreSQL {} the table, the analysis says it {}",
                if rewritten { "rewrote" } else { "kept" },
                if claimed { "rewrites it" } else { "does not" }
            ));
        }
        // Without a rewrite, an index of the column (`v` and `vc` have one) is rebuilt only
        // when the way its values compare changes.
        let recollated = report
            .findings()
            .any(|(_, f)| f.rule == "changing-collation");
        let indexed = [" v ", " vc "].iter().any(|c| change.contains(c));
        if indexed && !rewritten && reindexed != recollated {
            wrong.push(format!(
                "{change}: PostgreSQL {} the column's index, the analysis says its collation {}",
                if reindexed { "rebuilt" } else { "kept" },
                if recollated { "changes" } else { "stays" }
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Migrations whose last statement runs long (`UPDATE` or `VALIDATE CONSTRAINT` of `k`), after
/// statements that may take a lock on `k` and keep it: each as psql runs the file, or as one
/// query (golang-migrate, sqlx, dbmate send a file or section so).
const KEPT: [(&str, bool); 18] = [
    (
        "BEGIN; ALTER TABLE k ADD COLUMN d int; UPDATE k SET c = 1; COMMIT;",
        false,
    ),
    (
        "BEGIN; ALTER TABLE k ADD COLUMN d int; COMMIT; UPDATE k SET c = 1;",
        false,
    ),
    ("ALTER TABLE k ADD COLUMN d int; UPDATE k SET c = 1;", false),
    ("ALTER TABLE k ADD COLUMN d int; UPDATE k SET c = 1;", true),
    // A COMMIT in the query ends its implicit transaction and releases the lock.
    (
        "ALTER TABLE k ADD COLUMN d int; COMMIT; UPDATE k SET c = 1;",
        true,
    ),
    // A rollback to a savepoint releases what was locked after it, and only that.
    (
        "BEGIN; SAVEPOINT s; ALTER TABLE k ADD COLUMN d int; ROLLBACK TO s; \
         UPDATE k SET c = 1; COMMIT;",
        true,
    ),
    (
        "BEGIN; CREATE INDEX k_c ON k (c); SAVEPOINT s; ALTER TABLE k ADD COLUMN d int; \
         ROLLBACK TO s; UPDATE k SET c = 1; COMMIT;",
        false,
    ),
    // BEGIN in the query makes its implicit transaction the file's own, with the lock in it.
    (
        "ALTER TABLE k ADD COLUMN d int; BEGIN; UPDATE k SET c = 1; COMMIT;",
        true,
    ),
    (
        "BEGIN; ALTER TABLE k ADD CONSTRAINT k_c CHECK (c > 0) NOT VALID; \
         ALTER TABLE k VALIDATE CONSTRAINT k_c; COMMIT;",
        false,
    ),
    (
        "BEGIN; ALTER TABLE k VALIDATE CONSTRAINT k_pos; UPDATE k SET c = 1; COMMIT;",
        false,
    ),
    (
        "BEGIN; CREATE INDEX k_c ON k (c); UPDATE k SET c = 1; COMMIT;",
        false,
    ),
    (
        "BEGIN; CREATE INDEX k_c ON k (c); UPDATE k SET c = 1; COMMIT;",
        true,
    ),
    // An index build after a lock: ADD COLUMN's ACCESS EXCLUSIVE is kept while it builds.
    (
        "BEGIN; ALTER TABLE k ADD COLUMN d int; CREATE INDEX k_id ON k (id); COMMIT;",
        false,
    ),
    (
        "ALTER TABLE k ADD COLUMN d int; CREATE INDEX k_id ON k (id);",
        false,
    ),
    (
        "ALTER TABLE k ADD COLUMN d int; CREATE INDEX k_id ON k (id);",
        true,
    ),
    (
        "BEGIN; ALTER TABLE k ADD COLUMN d int; REINDEX TABLE k; COMMIT;",
        false,
    ),
    // A sequence's lock, kept: the inserts that draw from it wait for the data change.
    (
        "BEGIN; ALTER SEQUENCE k_seq RESTART WITH 1000; UPDATE k SET c = 1; COMMIT;",
        false,
    ),
    (
        "BEGIN; ALTER SEQUENCE k_seq RESTART WITH 1000; COMMIT; UPDATE k SET c = 1;",
        false,
    ),
];

/// Whether a write of `k` from another session (an insert, which draws its id from `k_seq`) waits, while `migration` runs with its long
/// statement (`long`) replaced by a wait for an advisory lock this test holds: psql runs it
/// statement by statement, or as one query.
fn write_waits(db: &Database, migration: &str, long: &str, one_query: bool) -> bool {
    let count = |condition: &str| {
        db.answer(
            &format!(
                "SELECT 'n:' || count(*) FROM pg_locks WHERE locktype = 'advisory' AND {condition};"
            ),
            "n:",
        )
    };
    let until = |condition: &str| {
        let reached = (0..500).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            count(condition) == "1"
        });
        assert!(reached, "{migration}: no advisory lock {condition}");
    };
    let mut holder = Command::new("psql")
        .args(["-X", "-q", "-d", &db.conninfo(), "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("psql runs");
    let mut hold = holder.stdin.take().expect("stdin");
    hold.write_all(b"SELECT pg_advisory_lock(42);\n")
        .expect("written");
    hold.flush().expect("flushed");
    until("granted");
    let waiting = migration.replacen(long, "SELECT pg_advisory_lock(42)", 1);
    let mut runner = Command::new("psql");
    runner.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &db.conninfo()]);
    if one_query {
        runner.args(["-c", &waiting]);
    } else {
        for statement in waiting.split_inclusive(';') {
            runner.args(["-c", statement]);
        }
    }
    let running = runner
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psql runs");
    // Every statement before the wait holds what it took.
    until("NOT granted");
    let write = Command::new("psql")
        .args(["-X", "-q", "-d", &db.conninfo(), "-v", "ON_ERROR_STOP=1"])
        .args(["-c", "SET lock_timeout = '200ms'", "-c"])
        .arg("INSERT INTO k (c) VALUES (1)")
        .output()
        .expect("psql runs");
    drop(hold);
    holder.wait().expect("the holder ends");
    let ended = running.wait_with_output().expect("psql ends");
    assert!(
        ended.status.success(),
        "{migration}: {}",
        String::from_utf8_lossy(&ended.stderr)
    );
    let waited = String::from_utf8_lossy(&write.stderr).contains("lock timeout");
    assert!(write.status.success() || waited, "{write:?}");
    waited
}

#[test]
fn the_locks_the_analysis_says_a_transaction_keeps_are_kept() {
    let table = "CREATE SEQUENCE k_seq;
                 CREATE TABLE k (id bigint PRIMARY KEY DEFAULT nextval('k_seq'), c int);
                 ALTER TABLE k ADD CONSTRAINT k_pos CHECK (c > 0) NOT VALID;";
    let Some(db) = Database::create("kept", table) else {
        return;
    };
    let mut wrong = Vec::new();
    for (migration, one_query) in KEPT {
        psql(
            &db.conninfo(),
            &format!("DROP TABLE k; DROP SEQUENCE k_seq; {table}"),
        );
        let long = if migration.contains("VALIDATE CONSTRAINT k_c") {
            "ALTER TABLE k VALIDATE CONSTRAINT k_c"
        } else if migration.contains("k_id") {
            "CREATE INDEX k_id ON k (id)"
        } else if migration.contains("REINDEX") {
            "REINDEX TABLE k"
        } else {
            "UPDATE k SET c = 1"
        };
        let sql = format!("SET lock_timeout = '1s'; {migration}");
        let report = if one_query {
            analyze_as("m", &sql, &Schema::default(), Runner::GolangMigrate)
        } else {
            analyze("m", &sql)
        }
        .unwrap();
        let claimed = report.findings().any(|(s, f)| {
            f.rule == "lock-held-through-transaction" && s.sql.starts_with(&long[..12])
        });
        let waited = write_waits(&db, migration, long, one_query);
        if waited != claimed {
            wrong.push(format!(
                "{migration} (one query: {one_query}): a write of k {}, the analysis says it {}",
                if waited { "waited" } else { "went on" },
                if claimed { "waits" } else { "does not" }
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// What psql prints (the rows of `before`'s last query) and what PostgreSQL says at `DEBUG1`
/// while it runs `statement` after `before`, in a transaction rolled back after.
fn debug_said(db: &Database, before: &str, statement: &str) -> (String, String) {
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            &db.conninfo(),
        ])
        .args(["-c", &format!("BEGIN; {before}")])
        .args(["-c", "SET client_min_messages = debug1"])
        .args(["-c", statement])
        .args(["-c", "ROLLBACK"])
        .output()
        .expect("psql runs");
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{before} {statement}: {said}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), said)
}

/// What comes before `SET NOT NULL` on `n.c`, and which statements of it ran in earlier
/// migrations (the rest in the same one).
const BEFORE_SET_NOT_NULL: [&str; 15] = [
    "",
    "ALTER TABLE n ADD CONSTRAINT n_c CHECK (c IS NOT NULL) NOT VALID;",
    "ALTER TABLE n ADD CONSTRAINT n_c CHECK (c IS NOT NULL) NOT VALID; \
     ALTER TABLE n VALIDATE CONSTRAINT n_c;",
    "ALTER TABLE n ADD CONSTRAINT n_c CHECK (c IS NOT NULL);",
    "ALTER TABLE n ADD CONSTRAINT n_c CHECK (c > 0);",
    "ALTER TABLE n ADD CONSTRAINT n_c CHECK (c > 0 AND c IS NOT NULL);",
    "ALTER TABLE n ADD CONSTRAINT n_c CHECK (c IS NOT NULL); ALTER TABLE n DROP CONSTRAINT n_c;",
    "ALTER TABLE n ADD CONSTRAINT n_c CHECK (c IS NOT NULL); \
     ALTER TABLE n RENAME CONSTRAINT n_c TO n_c2; ALTER TABLE n RENAME COLUMN c TO d; \
     ALTER TABLE n RENAME COLUMN d TO c;",
    "DROP TABLE n; CREATE TABLE n (id bigint, c int CHECK (c IS NOT NULL));",
    // Unnamed checks, dropped by the names PostgreSQL gave them.
    "ALTER TABLE n ADD CHECK (c IS NOT NULL); ALTER TABLE n DROP CONSTRAINT n_c_check;",
    "DROP TABLE n; CREATE TABLE n (id bigint, c int CHECK (c IS NOT NULL), CHECK (c > 0)); \
     ALTER TABLE n DROP CONSTRAINT n_c_check;",
    "DROP TABLE n; CREATE TABLE n (id bigint, c int CHECK (c IS NOT NULL), CHECK (c > 0)); \
     ALTER TABLE n DROP CONSTRAINT n_c_check1;",
    // Names as PostgreSQL keeps them: cut to 63 bytes, and only ASCII folded to lower case.
    "ALTER TABLE n ADD CONSTRAINT \
     n_c_is_never_null_and_this_name_goes_on_for_longer_than_postgresql_keeps_of_it \
     CHECK (c IS NOT NULL); \
     ALTER TABLE n DROP CONSTRAINT n_c_is_never_null_and_this_name_goes_on_for_longer_than_postgre;",
    "ALTER TABLE n ADD CONSTRAINT Ärger CHECK (c IS NOT NULL); \
     ALTER TABLE n DROP CONSTRAINT \"Ärger\";",
    "ALTER TABLE n ADD CONSTRAINT ÄRGER CHECK (c IS NOT NULL); \
     ALTER TABLE n DROP CONSTRAINT \"Ärger\";",
];

#[test]
fn set_not_null_scans_the_table_when_the_analysis_says_it_does() {
    let table = "CREATE TABLE n (id bigint, c int); INSERT INTO n VALUES (1, 1);";
    let Some(db) = Database::create("scans", table) else {
        return;
    };
    let mut wrong = Vec::new();
    for before in BEFORE_SET_NOT_NULL {
        // PostgreSQL says at DEBUG1 whether it verifies the table or finds a check that proves
        // the column holds no NULL.
        let (_, said) = debug_said(&db, before, "ALTER TABLE n ALTER COLUMN c SET NOT NULL");
        let scanned = said.contains("verifying table \"n\"");
        assert!(
            scanned || said.contains("sufficient to prove"),
            "{before}: {said}"
        );
        // The same statements in an earlier migration, and in the same one.
        let set = "SET lock_timeout = '1s'; ALTER TABLE n ALTER COLUMN c SET NOT NULL";
        let mut schema = learned(&[table]);
        let claims = [analyze_after("m", &format!("{before} {set}"), &schema), {
            schema.learn(before);
            analyze_after("m", set, &schema)
        }]
        .map(|r| {
            r.unwrap()
                .findings()
                .any(|(_, f)| f.rule == "adding-not-nullable-field")
        });
        // A table the same migration made again is new to every running version: making its
        // column required breaks nothing, whether or not PostgreSQL scans the (empty) table.
        let remade = before.contains("CREATE TABLE n ");
        for (claimed, when) in claims.into_iter().zip(["same", "earlier"]) {
            if claimed != (scanned && !(remade && when == "same")) {
                wrong.push(format!(
                    "{before:?} ({when} migration): PostgreSQL {} the table, the analysis says \
                     it {}",
                    if scanned { "scanned" } else { "did not scan" },
                    if claimed { "scans it" } else { "does not" }
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Tables with names long enough that PostgreSQL cuts the names it gives their unnamed checks:
/// the table as written, its column, and the unnamed checks a migration adds.
const LONG_NAMES: [(&str, &str, &str); 4] = [
    (
        "orders_archived_by_the_nightly_job_and_kept_for_seven_years",
        "customer_reference_number_as_given",
        "CHECK (customer_reference_number_as_given IS NOT NULL)",
    ),
    (
        "orders_archived_by_the_nightly_job_and_kept_for_seven_years",
        "customer_reference_number_as_given",
        "CHECK (customer_reference_number_as_given IS NOT NULL), \
         ADD CHECK (customer_reference_number_as_given IS NOT NULL)",
    ),
    (
        "an_events_table_whose_name_uses_nearly_all_of_the_63_bytes_allowed",
        "c",
        "CHECK (c IS NOT NULL AND id > 0)",
    ),
    (
        "\"Größenangaben_der_Bestellungen_für_das_Lager_in_Österreich\"",
        "\"Maße\"",
        "CHECK (\"Maße\" IS NOT NULL), ADD CHECK (\"Maße\" IS NOT NULL)",
    ),
];

#[test]
fn unnamed_checks_of_long_names_are_known_by_the_names_postgresql_gives_them() {
    let Some(db) = Database::create("names", "") else {
        return;
    };
    let mut wrong = Vec::new();
    for (table, column, checks) in LONG_NAMES {
        let create = format!("CREATE TABLE {table} (id bigint, {column} int);");
        psql(
            &db.conninfo(),
            &format!("DROP SCHEMA public CASCADE; CREATE SCHEMA public; {create}"),
        );
        let adds = format!("ALTER TABLE {table} ADD {checks};");
        let names = db.answer(
            &format!(
                "BEGIN; {adds} SELECT 'names:' || string_agg(quote_ident(conname), ',') \
                 FROM pg_constraint WHERE conrelid = '{table}'::regclass; ROLLBACK;"
            ),
            "names:",
        );
        // Every proof dropped by the name PostgreSQL gave it, SET NOT NULL scans the table.
        let drops: String = names
            .split(',')
            .map(|n| format!(" ALTER TABLE {table} DROP CONSTRAINT {n};"))
            .collect();
        let before = format!("{adds}{drops}");
        let set = format!("ALTER TABLE {table} ALTER COLUMN {column} SET NOT NULL");
        let (_, said) = debug_said(&db, &before, &set);
        assert!(said.contains("verifying table"), "{before}: {said}");
        let mut schema = learned(&[&create]);
        let same = analysed(&format!("{before} {set}"), &schema);
        schema.learn(&before);
        let earlier = analysed(&set, &schema);
        for (report, when) in [(same, "same"), (earlier, "earlier")] {
            if !report
                .findings()
                .any(|(_, f)| f.rule == "adding-not-nullable-field")
            {
                wrong.push(format!(
                    "{before} ({when} migration): PostgreSQL named the checks {names} and \
                     scanned the table once they were dropped; the analysis still sees a proof"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Migrations PostgreSQL may refuse to run, as psql runs them (statement by statement) or as
/// one query (`true`).
#[rustfmt::skip]
const REFUSED: [(&str, bool); 31] = [
    ("BEGIN; VACUUM t; COMMIT;", false),
    ("VACUUM t;", false),
    ("SET lock_timeout = '1s'; VACUUM t;", true),
    ("BEGIN; ALTER TABLE p DETACH PARTITION p1 CONCURRENTLY; COMMIT;", false),
    ("ALTER TABLE p DETACH PARTITION p1 CONCURRENTLY;", false),
    ("BEGIN; ALTER TYPE st ADD VALUE 'b'; INSERT INTO e VALUES ('b'); COMMIT;", false),
    ("ALTER TYPE st ADD VALUE 'b'; INSERT INTO e VALUES ('b');", false),
    ("ALTER TYPE st ADD VALUE 'b'; UPDATE e SET s = 'b';", true),
    ("BEGIN; ALTER TYPE st ADD VALUE 'b'; INSERT INTO e VALUES ('a'); COMMIT;", false),
    ("BEGIN; CREATE INDEX CONCURRENTLY i ON t (c); COMMIT;", false),
    ("CREATE INDEX CONCURRENTLY i ON t (c);", true),
    ("SET lock_timeout = '1s'; CREATE INDEX CONCURRENTLY i ON t (c);", true),
    ("CREATE INDEX CONCURRENTLY pa ON p (at);", false),
    ("DROP INDEX CONCURRENTLY t_c, t_id;", false),
    ("DROP INDEX CONCURRENTLY t_c CASCADE;", false),
    ("DROP INDEX CONCURRENTLY IF EXISTS t_c RESTRICT;", false),
    ("CREATE INDEX pa ON ONLY p (at); CREATE INDEX CONCURRENTLY p1a ON p1 (at); \
      ALTER INDEX pa ATTACH PARTITION p1a;", false),
    // Statements about the whole server or database.
    ("BEGIN; CREATE DATABASE serin_compat_refused_new; COMMIT;", false),
    ("DROP DATABASE IF EXISTS serin_compat_refused_new; \
      CREATE DATABASE serin_compat_refused_new; DROP DATABASE serin_compat_refused_new;", false),
    ("BEGIN; DROP DATABASE IF EXISTS serin_compat_refused_none; COMMIT;", false),
    ("BEGIN; CREATE TABLESPACE ts LOCATION '/nonexistent'; COMMIT;", false),
    ("BEGIN; DROP TABLESPACE IF EXISTS ts; COMMIT;", false),
    ("BEGIN; ALTER SYSTEM RESET serin_compat.none; COMMIT;", false),
    ("BEGIN; REINDEX SCHEMA public; COMMIT;", false),
    ("REINDEX SCHEMA public;", false),
    ("BEGIN; CLUSTER; COMMIT;", false),
    ("BEGIN; CLUSTER t USING t_c; COMMIT;", false),
    ("BEGIN; DISCARD ALL; COMMIT;", false),
    // What ends a transaction, and what does not.
    ("BEGIN; SAVEPOINT s; ROLLBACK TO SAVEPOINT s; CREATE INDEX CONCURRENTLY i ON t (c); \
      COMMIT;", false),
    ("BEGIN; COMMIT AND CHAIN; CREATE INDEX CONCURRENTLY i ON t (c); COMMIT;", false),
    ("BEGIN; SAVEPOINT s; RELEASE SAVEPOINT s; END; CREATE INDEX CONCURRENTLY i ON t (c);",
     false),
];

/// The rules that say PostgreSQL refuses a statement where it stands.
const REFUSING: [&str; 5] = [
    "ban-concurrent-index-creation-in-transaction",
    "ban-concurrent-index-on-partitioned-table",
    "cannot-run-in-transaction",
    "new-enum-value-used-in-transaction",
    "unsupported-concurrent-drop",
];

#[test]
fn postgresql_refuses_the_statements_the_analysis_says_it_refuses() {
    let setup = "CREATE TABLE t (id bigint PRIMARY KEY, c int);
                 CREATE INDEX t_c ON t (c); CREATE INDEX t_id ON t (id);
                 CREATE TYPE st AS ENUM ('a'); CREATE TABLE e (s st);
                 CREATE TABLE p (at date) PARTITION BY RANGE (at);
                 CREATE TABLE p1 PARTITION OF p FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');";
    let Some((db, schema)) = database_and_schema("refused", setup) else {
        return;
    };
    let mut wrong = Vec::new();
    for (migration, one_query) in REFUSED {
        psql(
            &db.conninfo(),
            &format!("DROP SCHEMA public CASCADE; CREATE SCHEMA public; {setup}"),
        );
        let out = if one_query {
            Command::new("psql")
                .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &db.conninfo()])
                .args(["-c", migration])
                .output()
                .expect("psql runs")
        } else {
            run_statements(&db.conninfo(), migration)
        };
        let refused = !out.status.success();
        let report = if one_query {
            analyze_as("m", migration, &schema, Runner::GolangMigrate)
        } else {
            analyze_after("m", migration, &schema)
        }
        .unwrap();
        let claimed = report
            .findings()
            .any(|(_, f)| REFUSING.contains(&f.rule.as_str()));
        if refused != claimed {
            wrong.push(format!(
                "{migration} (one query: {one_query}): PostgreSQL {}, the analysis says it {}",
                if refused {
                    format!(
                        "refused it ({})",
                        String::from_utf8_lossy(&out.stderr).trim()
                    )
                } else {
                    "ran it".into()
                },
                if claimed { "refuses it" } else { "runs it" }
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// What earlier migrations did before `ADD CONSTRAINT n_pk PRIMARY KEY USING INDEX n_i` on
/// `n (id, c, d NOT NULL)`.
const BEFORE_PRIMARY_KEY: [&str; 9] = [
    "CREATE UNIQUE INDEX n_i ON n (c);",
    "CREATE UNIQUE INDEX n_i ON n (d);",
    "CREATE UNIQUE INDEX n_i ON n (d, c);",
    "ALTER TABLE n ADD CONSTRAINT n_c CHECK (c IS NOT NULL) NOT VALID; \
     ALTER TABLE n VALIDATE CONSTRAINT n_c; CREATE UNIQUE INDEX n_i ON n (c);",
    "ALTER TABLE n ADD CONSTRAINT n_c CHECK (c IS NOT NULL) NOT VALID; \
     CREATE UNIQUE INDEX n_i ON n (c);",
    "ALTER TABLE n ALTER COLUMN c SET NOT NULL; CREATE UNIQUE INDEX n_i ON n (c);",
    "ALTER TABLE n ALTER COLUMN d DROP NOT NULL; CREATE UNIQUE INDEX n_i ON n (d);",
    "CREATE UNIQUE INDEX n_x ON n (c); ALTER INDEX n_x RENAME TO n_i;",
    "CREATE UNIQUE INDEX n_i ON n (c); ALTER TABLE n RENAME COLUMN c TO e; \
     ALTER TABLE n RENAME COLUMN d TO c;",
];

#[test]
fn a_primary_key_made_of_an_index_scans_the_table_when_the_analysis_says_it_does() {
    let table =
        "CREATE TABLE n (id bigint, c int, d int NOT NULL); INSERT INTO n VALUES (1, 1, 1);";
    let Some(db) = Database::create("primary", table) else {
        return;
    };
    let primary_key = "ALTER TABLE n ADD CONSTRAINT n_pk PRIMARY KEY USING INDEX n_i";
    let mut wrong = Vec::new();
    for before in BEFORE_PRIMARY_KEY {
        let scanned = debug_said(&db, before, primary_key)
            .1
            .contains("verifying table \"n\"");
        let schema = learned(&[table, before]);
        let claimed = reports(primary_key, &schema, "adding-not-nullable-field");
        if claimed != scanned {
            wrong.push(format!(
                "{before:?}: PostgreSQL {} the table, the analysis says it {}",
                if scanned { "scanned" } else { "did not scan" },
                if claimed { "scans it" } else { "does not" }
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Migrations whose concurrent index build fails on the table's data (a duplicate key, a
/// division by zero), run again once the data is mended.
const RETRIED: [&str; 5] = [
    "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS u ON t (c);",
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS u ON t ((100 / c));",
    "DROP INDEX CONCURRENTLY IF EXISTS u; CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS u ON t (c);",
    "DROP INDEX IF EXISTS u; CREATE INDEX CONCURRENTLY IF NOT EXISTS u ON t ((100 / c));",
    "CREATE UNIQUE INDEX CONCURRENTLY u ON t (c);",
];

#[test]
fn a_retried_concurrent_index_stays_invalid_when_the_analysis_says_it_does() {
    let setup = "CREATE TABLE t (id bigint PRIMARY KEY, c int);
                 INSERT INTO t VALUES (1, 0), (2, 0), (3, 1);";
    let Some((db, schema)) = database_and_schema("retried", setup) else {
        return;
    };
    let mut wrong = Vec::new();
    for migration in RETRIED {
        psql(
            &db.conninfo(),
            &format!("DROP SCHEMA public CASCADE; CREATE SCHEMA public; {setup}"),
        );
        // As psql runs a file, statement by statement: the first run fails at the build.
        let run = || run_statements(&db.conninfo(), migration).status.success();
        assert!(!run(), "{migration} ran on data it cannot index");
        psql(
            &db.conninfo(),
            "DELETE FROM t WHERE c = 0 AND id = 1; UPDATE t SET c = 2 WHERE c = 0;",
        );
        let retried = run();
        let valid = db.answer(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'u'::regclass;",
            "",
        );
        // Run again without a word, yet the index is unusable.
        let kept_invalid = retried && valid.trim() == "f";
        let claimed = reports(migration, &schema, "concurrent-index-if-not-exists");
        if claimed != kept_invalid {
            wrong.push(format!(
                "{migration}: run again {}, the index valid: {valid:?}; the analysis says it {}",
                if retried { "without error" } else { "failed" },
                if claimed { "stays invalid" } else { "does not" }
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

const PARTITIONED: &str = "
    CREATE TABLE p (at date, v int) PARTITION BY RANGE (at);
    CREATE TABLE p1 PARTITION OF p FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
    CREATE TABLE s (at date, v int); INSERT INTO s VALUES ('2025-02-01', 1);
    CREATE TABLE l (r text) PARTITION BY LIST (r); CREATE TABLE ls (r text);
    CREATE TABLE h (id int) PARTITION BY HASH (id); CREATE TABLE hs (id int);
";

const ATTACH_S: &str =
    "ALTER TABLE p ATTACH PARTITION s FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')";
const PROVE_S: &str = "ALTER TABLE s ADD CONSTRAINT s_b \
    CHECK (at IS NOT NULL AND at >= '2025-01-01' AND at < '2026-01-01') NOT VALID; \
    ALTER TABLE s VALIDATE CONSTRAINT s_b;";
const DEFAULT_PD: &str = "CREATE TABLE pd PARTITION OF p DEFAULT;";

/// A partition added after what earlier migrations did, and the tables PostgreSQL scans
/// (`verifying table`) to check the bounds.
fn partition_cases() -> Vec<(String, &'static str, &'static [&'static str])> {
    let bounded = "CHECK (at >= '2025-01-01' AND at < '2026-01-01')";
    let p3 = "CREATE TABLE p3 PARTITION OF p FOR VALUES FROM ('2027-01-01') TO ('2028-01-01')";
    let pd_proof = "ALTER TABLE pd ADD CONSTRAINT pd_x \
                    CHECK (NOT (at >= '2025-01-01' AND at < '2026-01-01'));";
    vec![
        (String::new(), ATTACH_S, &["s"]),
        (PROVE_S.into(), ATTACH_S, &[]),
        (
            PROVE_S.replace("ALTER TABLE s VALIDATE CONSTRAINT s_b;", ""),
            ATTACH_S,
            &["s"],
        ),
        (
            format!("ALTER TABLE s ADD CONSTRAINT s_b {bounded};"),
            ATTACH_S,
            &["s"],
        ),
        (
            format!("ALTER TABLE s ALTER COLUMN at SET NOT NULL; ALTER TABLE s ADD {bounded};"),
            ATTACH_S,
            &[],
        ),
        (
            "ALTER TABLE s ADD CONSTRAINT s_v CHECK (v IS NOT NULL AND v > 0);".into(),
            ATTACH_S,
            &["s"],
        ),
        // Only a check that keeps the key within the bound proves it.
        (
            "ALTER TABLE s ADD CONSTRAINT s_b CHECK (at IS NOT NULL AND at > '2000-01-01');".into(),
            ATTACH_S,
            &["s"],
        ),
        (
            "ALTER TABLE s ADD CONSTRAINT s_b \
             CHECK (at IS NOT NULL AND at >= '2025-02-01' AND at < '2025-03-01');"
                .into(),
            ATTACH_S,
            &[],
        ),
        (
            "ALTER TABLE s ADD CONSTRAINT s_b \
             CHECK (at IS NOT NULL AND at BETWEEN '2025-01-01' AND '2025-12-31');"
                .into(),
            ATTACH_S,
            &[],
        ),
        (
            "ALTER TABLE s ADD CONSTRAINT s_b CHECK \
             (at IS NOT NULL AND at >= DATE '2025-01-01' AND at < '2026-01-01'::date);"
                .into(),
            ATTACH_S,
            &[],
        ),
        (
            "ALTER TABLE s ADD CONSTRAINT s_b \
             CHECK (at IS NOT NULL AND extract(year FROM at) = 2025);"
                .into(),
            ATTACH_S,
            &["s"],
        ),
        // Dates written another way are the same dates.
        (
            "ALTER TABLE s ADD CONSTRAINT s_b \
             CHECK (at IS NOT NULL AND at >= '2025-1-1' AND at < '2026-01-01 00:00');"
                .into(),
            ATTACH_S,
            &[],
        ),
        (
            "ALTER TABLE s ADD CONSTRAINT s_b \
             CHECK (at IS NOT NULL AND at >= '2025-01-01' AND at <= '2026-1-1');"
                .into(),
            ATTACH_S,
            &["s"],
        ),
        (
            "ALTER TABLE s ADD CONSTRAINT s_b \
             CHECK (at IS NOT NULL AND at IN ('2025-2-1', '2025-12-31'));"
                .into(),
            ATTACH_S,
            &[],
        ),
        (DEFAULT_PD.into(), ATTACH_S, &["s", "pd"]),
        (format!("{DEFAULT_PD} {PROVE_S} {pd_proof}"), ATTACH_S, &[]),
        (
            format!("{DEFAULT_PD} ALTER TABLE p DETACH PARTITION pd; {PROVE_S}"),
            ATTACH_S,
            &[],
        ),
        (DEFAULT_PD.into(), p3, &["pd"]),
        (String::new(), p3, &[]),
        (
            String::new(),
            "ALTER TABLE p ATTACH PARTITION s DEFAULT",
            &["s"],
        ),
        (
            "ALTER TABLE ls ADD CONSTRAINT ls_c CHECK (r IN ('a', 'b'));".into(),
            "ALTER TABLE l ATTACH PARTITION ls FOR VALUES IN ('a', 'b')",
            &["ls"],
        ),
        (
            "ALTER TABLE ls ADD CONSTRAINT ls_c CHECK (r IS NOT NULL AND r IN ('a', 'b'));".into(),
            "ALTER TABLE l ATTACH PARTITION ls FOR VALUES IN ('a', 'b')",
            &[],
        ),
        (
            "ALTER TABLE ls ADD CONSTRAINT ls_c CHECK (r IS NOT NULL AND r IN ('a', 'c'));".into(),
            "ALTER TABLE l ATTACH PARTITION ls FOR VALUES IN ('a', 'b')",
            &["ls"],
        ),
        (
            "ALTER TABLE ls ADD CONSTRAINT ls_c CHECK (r IS NOT NULL AND r = 'a');".into(),
            "ALTER TABLE l ATTACH PARTITION ls FOR VALUES IN ('a', 'b')",
            &[],
        ),
        (
            "ALTER TABLE hs ADD CONSTRAINT hs_c CHECK (id IS NOT NULL AND id > 0);".into(),
            "ALTER TABLE h ATTACH PARTITION hs FOR VALUES WITH (MODULUS 2, REMAINDER 0)",
            &["hs"],
        ),
    ]
}

/// The tables PostgreSQL scans to check partition bounds while it runs `statement` after
/// `before` (in a transaction rolled back after): at `DEBUG1` it names the tables it verifies
/// by `ALTER TABLE`, and says when a check spares it the scan of `p`'s default partition,
/// which adding a partition otherwise makes (`CREATE TABLE ... PARTITION OF` without a word).
fn scans_to_add_partition(db: &Database, before: &str, statement: &str) -> Vec<String> {
    let default = "SELECT 'default:' || partdefid::regclass FROM pg_partitioned_table \
                   WHERE partrelid = 'p'::regclass AND partdefid <> 0";
    let (stdout, said) = debug_said(db, &format!("{before}; {default}"), statement);
    let mut scanned: Vec<String> = said
        .lines()
        .filter_map(|l| l.strip_prefix("DEBUG:  verifying table \""))
        .filter_map(|l| l.strip_suffix('"'))
        .map(str::to_owned)
        .collect();
    let default = stdout.lines().find_map(|l| l.strip_prefix("default:"));
    if let Some(d) = default {
        let spared = format!("default partition \"{d}\" is implied by existing constraints");
        if !said.contains(&spared) && !scanned.iter().any(|s| s == d) {
            scanned.push(d.to_owned());
        }
    }
    scanned
}

#[test]
fn adding_a_partition_scans_the_tables_the_analysis_says_it_scans() {
    let Some(db) = Database::create("partitions", PARTITIONED) else {
        return;
    };
    let mut wrong = Vec::new();
    for (before, statement, expected) in partition_cases() {
        let mut scanned = scans_to_add_partition(&db, &before, statement);
        scanned.sort_unstable();
        let schema = learned(&[PARTITIONED, &before]);
        let mut claimed: Vec<String> = analysed(statement, &schema)
            .findings()
            .filter(|(_, f)| f.rule == "partition-bound-scan")
            .filter_map(|(_, f)| {
                f.message
                    .split(" scans ")
                    .nth(1)?
                    .split([' ', ','])
                    .next()
                    .map(str::to_owned)
            })
            .collect();
        claimed.sort_unstable();
        let mut expected: Vec<String> = expected.iter().map(|e| (*e).to_owned()).collect();
        expected.sort_unstable();
        assert_eq!(
            scanned, expected,
            "{before} {statement}: what this test expects of PostgreSQL"
        );
        if claimed != scanned {
            wrong.push(format!(
                "{before:?} then {statement}: PostgreSQL scanned {scanned:?}, the analysis says {claimed:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Migrations whose last statement scans a table of ten rows, slowly (each row costs 50 ms
/// through `slow`), run by psql statement by statement with whatever `statement_timeout` they
/// set (100 ms), and the setting in force before them.
const TIMED: [&str; 10] = [
    "SET statement_timeout = '100ms'; CREATE INDEX CONCURRENTLY i ON t ((slow(c)));",
    "SET statement_timeout = '100ms'; SET statement_timeout = 0; \
     CREATE INDEX CONCURRENTLY i ON t ((slow(c)));",
    "SET statement_timeout = '100ms'; ALTER TABLE t VALIDATE CONSTRAINT t_slow;",
    "SET statement_timeout = '100ms'; RESET statement_timeout; \
     ALTER TABLE t VALIDATE CONSTRAINT t_slow;",
    "BEGIN; SET LOCAL statement_timeout = '100ms'; COMMIT; UPDATE t SET c = slow(c);",
    "SET statement_timeout = '100ms'; UPDATE t SET c = slow(c);",
    "SET statement_timeout = '100ms'; RESET ALL; UPDATE t SET c = slow(c);",
    "SET statement_timeout = DEFAULT; CREATE INDEX CONCURRENTLY i ON t ((slow(c)));",
    "SET lock_timeout = '1s'; SET statement_timeout = '100ms'; CREATE INDEX i ON t ((slow(c)));",
    "CREATE INDEX i ON t ((slow(c))); SET statement_timeout = '100ms'; REINDEX TABLE t;",
];

#[test]
fn a_statement_timeout_cancels_the_long_statements_the_analysis_says_it_cancels() {
    let setup = "CREATE FUNCTION slow(v int) RETURNS int LANGUAGE sql IMMUTABLE
                   AS $$ SELECT v FROM (SELECT pg_sleep(0.05)) AS s $$;
                 CREATE TABLE t (id bigint PRIMARY KEY, c int);
                 INSERT INTO t SELECT g, g FROM generate_series(1, 10) AS g;
                 ALTER TABLE t ADD CONSTRAINT t_slow CHECK (slow(c) > 0) NOT VALID;";
    let Some((db, schema)) = database_and_schema("timed", setup) else {
        return;
    };
    let mut wrong = Vec::new();
    for migration in TIMED {
        psql(
            &db.conninfo(),
            &format!("DROP SCHEMA public CASCADE; CREATE SCHEMA public; {setup}"),
        );
        let out = run_statements(&db.conninfo(), migration);
        let said = String::from_utf8_lossy(&out.stderr);
        let cancelled = said.contains("canceling statement due to statement timeout");
        assert!(out.status.success() || cancelled, "{migration}: {said}");
        if cancelled && migration.contains("CREATE INDEX CONCURRENTLY") {
            // What the finding says of the index a cancelled build leaves.
            let valid = db.answer(
                "SELECT indisvalid FROM pg_index WHERE indexrelid = 'i'::regclass;",
                "",
            );
            assert_eq!(valid.trim(), "f", "{migration}");
        }
        let claimed = reports(migration, &schema, "statement-timeout-cancels");
        if claimed != cancelled {
            wrong.push(format!(
                "{migration}: PostgreSQL {} it, the analysis says it {}",
                if cancelled { "cancelled" } else { "ran" },
                if claimed { "is cancelled" } else { "runs" }
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Migrations, and whether their statements are sent as one query (psql joins them with `\;`;
/// the analysis reads them as a Liquibase changeset sent as one query) or one by one.
#[rustfmt::skip]
const AFTERWARDS: [(&str, bool); 12] = [
    ("BEGIN; CREATE TABLE n (a int); ROLLBACK;", false),
    ("BEGIN; SAVEPOINT s; CREATE TABLE n (a int); ROLLBACK TO SAVEPOINT s; COMMIT;", false),
    ("BEGIN; CREATE TABLE n (a int); SAVEPOINT s; ROLLBACK TO s; COMMIT;", false),
    ("BEGIN; CREATE TABLE n (a int); ROLLBACK AND CHAIN; COMMIT;", false),
    ("BEGIN; SET lock_timeout = '1s'; SAVEPOINT s; SET lock_timeout = 0; ROLLBACK TO s; COMMIT;", false),
    ("BEGIN; SAVEPOINT s; SET lock_timeout = '1s'; ROLLBACK TO s; COMMIT;", false),
    ("SET LOCAL lock_timeout = '1s'; SELECT 1;", true),
    ("SET lock_timeout = '1s'; SELECT 1;", true),
    ("SET lock_timeout = '1s'; CREATE TABLE n (a int); ROLLBACK;", true),
    ("SET lock_timeout = '1s'; COMMIT; SET LOCAL lock_timeout = 0; SELECT 1;", true),
    ("SET lock_timeout = '1s'; BEGIN; CREATE TABLE n (a int); ROLLBACK;", true),
    ("CREATE TABLE n (a int); COMMIT; SELECT set_config('lock_timeout', '1s', true);", true),
];

#[test]
fn what_a_rollback_or_a_query_leaves_is_what_the_analysis_follows() {
    let Some(db) = Database::create("afterwards", "CREATE TABLE t (a int);") else {
        return;
    };
    let mut wrong = Vec::new();
    for (migration, one_query) in AFTERWARDS {
        let sent = if one_query {
            migration.trim_end_matches(';').replace("; ", "\\; ") + ";"
        } else {
            migration.to_owned()
        };
        let script = format!(
            "{sent}\nSELECT 'made:' || (to_regclass('n') IS NOT NULL);\n\
             SELECT 'timeout:' || current_setting('lock_timeout');\nDROP TABLE IF EXISTS n;"
        );
        let made = db.answer(&script, "made:") == "true";
        let timeout = db.answer(&script, "timeout:") != "0";
        // Then an index of `n`: of a new table if PostgreSQL kept the one the migration made,
        // else of one in use (as if earlier migrations had made it), whose lock blocks writes
        // and is reported without a timeout.
        let next = "CREATE INDEX ON n (a);";
        let report = if one_query {
            let file = format!(
                "--liquibase formatted sql\n\n\
                 --changeset serin:1 runInTransaction:false splitStatements:false\n\
                 {migration}\n\n\
                 --changeset serin:2 runInTransaction:false\n{next}\n"
            );
            analyze_as("m", &file, &Schema::default(), Runner::Liquibase).unwrap()
        } else {
            analyze("m", &format!("{migration}\n{next}")).unwrap()
        };
        let Some(last) = report.statements.last() else {
            wrong.push(format!("{migration}: nothing analysed"));
            continue;
        };
        let rules: Vec<&str> = last.findings.iter().map(|f| f.rule.as_str()).collect();
        let new = !rules.contains(&"require-concurrent-index-creation");
        let claimed_timeout = !rules.contains(&"require-lock-timeout");
        if new != made {
            wrong.push(format!(
                "{migration}: PostgreSQL {} table n, the analysis says it {}",
                if made { "kept" } else { "has no" },
                if new { "is new" } else { "is in use" }
            ));
        }
        if !new && claimed_timeout != timeout {
            wrong.push(format!(
                "{migration}: PostgreSQL {} lock_timeout, the analysis says it {}",
                if timeout { "kept" } else { "has no" },
                if claimed_timeout { "is set" } else { "is not" }
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
