//! Real output of the tools that write migrations (`fixtures/migrations/`), analysed as
//! migrations: Django's `sqlmigrate`, Alembic's offline `upgrade --sql`, drizzle-kit's
//! `generate`, Knex's schema builder (`.toString()`), and `pg_dump`.
//!
//! The `pg_dump --schema-only` output (PostgreSQL 15.18) holds what dumps and schema files
//! hold: psql meta-commands
//! (`\restrict`), a dozen session settings, `ALTER SEQUENCE ... OWNED BY`, `OWNER TO` on
//! types, domains and statistics, identity columns with sequence options, a materialized view
//! `WITH NO DATA`, a SQL-standard function body and constraints added after each table.
//!
//! It was dumped from a database built by:
//!
//! ```sql
//! CREATE EXTENSION IF NOT EXISTS pgcrypto;
//! CREATE SCHEMA billing;
//! CREATE TYPE mood AS ENUM ('ok','sad');
//! CREATE DOMAIN posint AS int CHECK (VALUE > 0);
//! CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, m mood DEFAULT 'ok',
//!   n posint, created timestamptz DEFAULT now(), tags text[], uid uuid DEFAULT gen_random_uuid());
//! CREATE TABLE billing.invoices (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
//!   user_id bigint REFERENCES users(id) ON DELETE CASCADE, amount numeric(12,2)
//!   CHECK (amount >= 0), r int4range, EXCLUDE USING gist (r WITH &&));
//! CREATE INDEX ON users USING gin (tags);
//! CREATE UNIQUE INDEX users_lower_email ON users (lower(email)) WHERE email IS NOT NULL;
//! CREATE VIEW active AS SELECT * FROM users WHERE m = 'ok';
//! CREATE MATERIALIZED VIEW counts AS SELECT m, count(*) FROM users GROUP BY m;
//! CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql
//!   AS $$ BEGIN NEW.created := now(); RETURN NEW; END $$;
//! CREATE FUNCTION add(a int, b int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT a + b; END;
//! CREATE TRIGGER t BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION touch();
//! CREATE TABLE measurements (id int, at date) PARTITION BY RANGE (at);
//! CREATE TABLE m2025 PARTITION OF measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
//! CREATE POLICY p ON users USING (true);
//! ALTER TABLE users ENABLE ROW LEVEL SECURITY;
//! COMMENT ON TABLE users IS 'people';
//! CREATE SEQUENCE s;
//! CREATE STATISTICS st (dependencies) ON id, n FROM users;
//! ```

use std::path::Path;

use serin_compat::migration::{
    MigrationReport, Runner, Safety, Schema, analyze, analyze_after, analyze_as,
};
use serin_compat::{Catalog, Format, Severity};

const DUMP: &str = include_str!("../fixtures/migrations/pg_dump_15_schema.sql");

#[test]
fn a_schema_dump_is_read_whole_and_nothing_in_it_blocks() {
    let report = analyze("pg_dump_15_schema", DUMP).unwrap();
    // Every object it alters, it creates first, so nothing locks a table in use: at most
    // notes on what is not analysed (functions, triggers, policies).
    let loud: Vec<String> = report
        .findings()
        .filter(|(_, f)| f.severity != Severity::Info)
        .map(|(s, f)| format!("line {}: {} ({})", s.line, f.rule, s.sql))
        .collect();
    assert!(loud.is_empty(), "{loud:#?}");
    assert_eq!(report.safety(), Safety::Safe);
    let at = |line: u64| {
        report
            .statements
            .iter()
            .find(|s| s.line == line)
            .unwrap_or_else(|| panic!("no statement at line {line}"))
    };
    // The meta-command is a statement of its own; the first SET is another.
    assert!(at(5).sql.starts_with("\\restrict "), "{}", at(5).sql);
    assert_eq!(at(10).sql, "SET statement_timeout = 0");
    assert!(
        report
            .statements
            .last()
            .unwrap()
            .sql
            .starts_with("\\unrestrict ")
    );
    // The SQL-standard body is one statement, through its END.
    let add = at(70);
    assert!(
        add.sql.starts_with("CREATE FUNCTION public.add") && add.sql.ends_with("END"),
        "{}",
        add.sql
    );
    // A new function: nothing running calls it yet.
    assert!(add.findings.is_empty(), "{:?}", add.findings);
}

/// The warnings and errors of a report, as (line, rule).
fn loud(report: &MigrationReport) -> Vec<(u64, &str)> {
    report
        .findings()
        .filter(|(_, f)| f.severity >= Severity::Warn)
        .map(|(s, f)| (s.line, f.rule.as_str()))
        .collect()
}

/// Analyses the fixtures `files` (in `fixtures/migrations/`, without `.sql`) in order, each
/// after the ones before.
fn in_order(files: &[&str]) -> Vec<MigrationReport> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/migrations");
    let mut schema = Schema::default();
    files
        .iter()
        .map(|name| {
            let sql = std::fs::read_to_string(format!("{dir}/{name}.sql")).expect("fixture");
            let report = analyze_after(name, &sql, &schema).unwrap();
            schema.learn(&sql);
            report
        })
        .collect()
}

/// Django 5.2 `sqlmigrate` for a model created, then changed (a field renamed and widened,
/// fields added with defaults, a check constraint, a field removed, indexes, a `RunSQL`
/// update), then indexed with `AddIndexConcurrently` in a non-atomic migration.
#[test]
fn django_migrations_get_the_findings_their_operations_deserve() {
    let reports = in_order(&[
        "django_5.2_0001_initial",
        "django_5.2_0002_changes",
        "django_5.2_0003_concurrent",
    ]);
    // Tables it creates take no care.
    assert_eq!(loud(&reports[0]), []);
    assert_eq!(
        loud(&reports[1]),
        [
            (5, "require-lock-timeout"),
            (5, "renaming-column"),
            // 9: `name` (now `full_name`) widened from varchar(100) to varchar(200), and
            // 18: numeric(10, 2) to (12, 2): the catalog only.
            // Fields added NOT NULL lose the default the old version's inserts rely on.
            (14, "adding-required-field"),
            // The index builds run in the migration's transaction too, while it holds the
            // rename's ACCESS EXCLUSIVE lock: reads of the table wait for them.
            (22, "lock-held-through-transaction"),
            (22, "require-concurrent-index-creation"),
            (27, "adding-required-field"),
            (35, "constraint-missing-not-valid"),
            // 39: `note` was added at line 31, so no running version uses it.
            (43, "lock-held-through-transaction"),
            (43, "require-concurrent-index-creation"),
            // The `RunSQL` update runs in the migration's transaction, which still holds the
            // rename's ACCESS EXCLUSIVE lock (line 5).
            (47, "lock-held-through-transaction"),
            (47, "backfill"),
        ]
    );
    let held: Vec<&str> = reports[1]
        .findings()
        .filter(|(_, f)| f.rule == "lock-held-through-transaction")
        .map(|(_, f)| f.message.as_str())
        .collect();
    let kept = "statement 2 (line 5) took a lock that blocks writes, and the transaction keeps \
                it until COMMIT: what it locked waits as long as this";
    assert_eq!(
        held,
        [
            format!("{kept} index build runs"),
            format!("{kept} index build runs"),
            format!("{kept} data change runs"),
        ]
    );
    assert_eq!(loud(&reports[2]), []);
}

/// Alembic 1.20 `upgrade --sql` (offline) for a table created, then a column added, another
/// widened, and an index built `postgresql_concurrently=True`, which offline mode still wraps
/// in the migration's transaction, where PostgreSQL refuses it.
#[test]
fn alembic_offline_sql_gets_the_findings_its_operations_deserve() {
    let reports = in_order(&["alembic_1.20_a1", "alembic_1.20_b2"]);
    // Its own `alembic_version` rows are no backfill.
    assert_eq!(loud(&reports[0]), []);
    assert_eq!(
        loud(&reports[1]),
        [
            (5, "require-lock-timeout"),
            (9, "ban-concurrent-index-creation-in-transaction"),
        ]
    );
}

/// drizzle-kit 0.31 `generate` for a schema created, then changed: an enum value added, a
/// numeric and a varchar widened, a column added with a default and one `NOT NULL` without,
/// an index, a column dropped. Its statements are separated by `--> statement-breakpoint`
/// comments, which name drizzle as the runner.
#[test]
fn drizzle_migrations_get_the_findings_their_changes_deserve() {
    let reports = in_order(&["drizzle_0.31_0000_initial", "drizzle_0.31_0001_changes"]);
    assert_eq!(loud(&reports[0]), []);
    assert_eq!(reports[1].statements.len(), 7);
    assert_eq!(
        loud(&reports[1]),
        [
            // 1: a new enum value locks the type, not the tables that use it. 2 and 3:
            // numeric(10, 2) to (12, 2) and varchar(100) to (200), the catalog only, but under
            // an ACCESS EXCLUSIVE lock, which wants a timeout.
            (2, "require-lock-timeout"),
            (5, "adding-required-field"),
            // drizzle runs it all in one transaction, which keeps the ACCESS EXCLUSIVE lock
            // of `posts` (statement 2) while the index of `users` builds.
            (6, "lock-held-through-transaction"),
            (6, "require-concurrent-index-creation"),
            (7, "ban-drop-column"),
        ]
    );
}

/// Knex 3.3's schema builder (`knex.schema.alterTable(...).toString()`) for a table created,
/// then changed: a column added with a default, a `varchar` widened by `.alter()` (which
/// drops and sets `NOT NULL` around a `TYPE ... USING ("email"::varchar(255))`), an index, a
/// rename and a drop.
#[test]
fn knex_migrations_get_the_findings_their_changes_deserve() {
    let reports = in_order(&["knex_3.3_initial", "knex_3.3_changes"]);
    assert_eq!(loud(&reports[0]), []);
    assert_eq!(
        loud(&reports[1]),
        [
            (1, "require-lock-timeout"),
            (3, "ban-drop-not-null"),
            // 4: the widening; its USING only restates the cast PostgreSQL would make.
            // 5: `.alter()` sets NOT NULL again, which scans the whole table.
            (5, "adding-not-nullable-field"),
            (6, "require-concurrent-index-creation"),
            (7, "renaming-column"),
            (8, "ban-drop-column"),
        ]
    );
}

/// Files in the formats of eight migration runners, each run by the runner itself against
/// PostgreSQL 15 after the first file of its directory (`runners/<tool>/`): dbmate 2.36 (npm),
/// sql-migrate (Debian 12's package), node-pg-migrate 9.0 (npm), sqlx-cli 0.8.6 and
/// refinery_cli 0.10 (crates.io), yoyo-migrations 9.0 (PyPI), Liquibase 4.28 (npm's
/// `liquibase`, on Debian 12's OpenJDK 17) and drizzle-orm 0.45.4's `migrate()` (npm, with
/// node-postgres, each file listed in the journal after the first). `refused` is what the
/// runner did: it stopped with "CREATE INDEX CONCURRENTLY cannot run inside a transaction
/// block", having wrapped the file (Liquibase: the changeset) in a transaction (refinery and
/// drizzle always do; drizzle one for all the pending migrations, and a refusal undid the
/// first file too when both were pending), or (dbmate's
/// `transaction:false`, sqlx's `-- no-transaction`) sent it as one query of two statements
/// (Liquibase's `splitStatements:false`: "cannot be executed within a pipeline", as pgJDBC
/// sends them). Liquibase committed each changeset before the next, and ran none for other
/// databases (`dbms:mysql,mariadb`). The runners ran no down part: each first file's `DROP TABLE users`
/// left the table in place. `marked` is whether the file names its runner (sqlx's only with
/// `-- no-transaction`).
#[rustfmt::skip]
const RUNS: &[(&str, Runner, bool, bool)] = &[
    // file                                          runner                 marked refused
    ("dbmate/20261129000001_users",                  Runner::Dbmate,        true,  false),
    ("dbmate/20261129000002_users_email",            Runner::Dbmate,        true,  true),
    ("dbmate/20261129000003_users_email_no_tx",      Runner::Dbmate,        true,  true),
    ("dbmate/20261129000004_users_email_alone",      Runner::Dbmate,        true,  false),
    ("sql-migrate/1_users",                          Runner::SqlMigrate,    true,  false),
    ("sql-migrate/2_users_email",                    Runner::SqlMigrate,    true,  true),
    ("sql-migrate/3_users_email_notransaction",      Runner::SqlMigrate,    true,  false),
    ("node-pg-migrate/1795961814135_users",          Runner::NodePgMigrate, true,  false),
    ("node-pg-migrate/1795961814136_users-email",    Runner::NodePgMigrate, true,  true),
    ("sqlx/20261129000001_users",                    Runner::Sqlx,          false, false),
    ("sqlx/20261129000002_users_email",              Runner::Sqlx,          false, true),
    ("sqlx/20261129000003_users_email_no_tx",        Runner::Sqlx,          true,  true),
    ("sqlx/20261129000004_users_email_alone",        Runner::Sqlx,          true,  false),
    ("liquibase/1_users",                            Runner::Liquibase,     true,  false),
    ("liquibase/2_users_email",                      Runner::Liquibase,     true,  true),
    ("liquibase/3_users_email_no_tx",                Runner::Liquibase,     true,  false),
    ("liquibase/4_users_email_one_query",            Runner::Liquibase,     true,  true),
    ("liquibase/5_changesets_commit",                Runner::Liquibase,     true,  false),
    ("liquibase/6_other_dbms",                       Runner::Liquibase,     true,  false),
    ("liquibase/7_users_email_alone_one_query",      Runner::Liquibase,     true,  true),
    ("refinery/V1__users",                           Runner::Refinery,      false, false),
    ("refinery/V2__users_email",                     Runner::Refinery,      false, true),
    ("refinery/V3__users_email_alone",               Runner::Refinery,      false, true),
    ("refinery/V4__users_name",                      Runner::Refinery,      false, false),
    ("yoyo/0001_users",                              Runner::Yoyo,          true,  false),
    ("yoyo/0002_users_email",                        Runner::Yoyo,          true,  true),
    ("yoyo/0003_users_email_no_tx",                  Runner::Yoyo,          true,  false),
    ("drizzle/0000_users",                           Runner::Drizzle,       false, false),
    ("drizzle/0001_users_email",                     Runner::Drizzle,       true,  true),
    ("drizzle/0002_users_email_alone",               Runner::Drizzle,       false, true),
    ("drizzle/0003_users_name",                      Runner::Drizzle,       true,  false),
];

#[test]
fn runner_files_are_analysed_as_their_runners_run_them() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/migrations/runners");
    let mut wrong = Vec::new();
    for &(file, runner, marked, refused) in RUNS {
        let sql = std::fs::read_to_string(format!("{dir}/{file}.sql")).expect("fixture");
        let report = analyze_as(file, &sql, &Schema::default(), runner).unwrap();
        assert_eq!(report.runner, Some(runner), "{file}");
        // Its markers name the runner: read the same without being told.
        let recognised = analyze(file, &sql).unwrap();
        assert_eq!(recognised == report, marked, "{file}");
        // Only the up part is analysed: no down part's DROP.
        assert!(
            report.statements.iter().all(|s| !s.sql.starts_with("DROP")),
            "{file}: {:#?}",
            report.statements
        );
        let says_refused = report
            .findings()
            .any(|(_, f)| f.rule == "ban-concurrent-index-creation-in-transaction");
        if says_refused != refused {
            wrong.push(format!("{file}: the runner refused it: {refused}"));
        }
        // Nothing else is wrong with these files.
        let others: Vec<_> = loud(&report)
            .into_iter()
            .filter(|(_, r)| *r != "ban-concurrent-index-creation-in-transaction")
            .collect();
        assert_eq!(others, [], "{file}");
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// diesel's migrations as diesel lays them out (`diesel_cli` 2.2.12, crates.io): a directory
/// each, holding `up.sql`, `down.sql` and, for the last two, a `metadata.toml` that says
/// `run_in_transaction = false`. `diesel setup` wrote the first. Run by diesel against
/// PostgreSQL 15, each `users_email` one alone after `users`, the first two were refused
/// ("CREATE INDEX CONCURRENTLY cannot run inside a transaction block": in diesel's
/// transaction, then in one query of two statements) and the last ran.
#[test]
fn diesel_migrations_are_read_with_their_metadata() {
    const MIGRATIONS: [(&str, Option<bool>, bool); 5] = [
        ("00000000000000_diesel_initial_setup", None, false),
        ("2026-11-29-143139_users", None, false),
        ("2026-11-29-150000_users_email", None, true),
        ("2026-11-29-150001_users_email_no_tx", Some(false), true),
        ("2026-11-29-150002_users_email_alone", Some(false), false),
    ];
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/migrations/runners/diesel"
    );
    let entries: String = MIGRATIONS
        .iter()
        .map(|(d, _, _)| format!("            - {{file: {d}/up.sql, runner: diesel}}\n"))
        .collect();
    let text = format!(
        "registry:\n  services:\n    api:\n      releases:\n        - version: 1.0.0\n          \
         migrations:\n{entries}"
    );
    let catalog = Catalog::parse_in(&text, Format::Yaml, Path::new(dir)).unwrap();
    let release = catalog
        .registry
        .release("api", &"1.0.0".parse().unwrap())
        .unwrap();
    let mut schema = Schema::default();
    for (m, &(dir, transaction, refused)) in release.migrations.iter().zip(&MIGRATIONS) {
        // Named by their directories, with the transaction their metadata gives.
        assert_eq!((m.name.as_str(), m.transaction), (dir, transaction));
        let report = analyze_as(&m.name, &m.sql, &schema, m.run_by().unwrap()).unwrap();
        schema.learn(&m.sql);
        let rules: Vec<_> = loud(&report).into_iter().map(|(_, r)| r).collect();
        let expected: &[&str] = if refused {
            &["ban-concurrent-index-creation-in-transaction"]
        } else {
            &[]
        };
        assert_eq!(rules, expected, "{dir}");
    }
}
