//! What the analysis of a migration carries from one statement to the next, judged by what
//! PostgreSQL does: tables that `SELECT ... INTO` and `CREATE TABLE ... AS` make are new;
//! settings follow `ROLLBACK`, savepoints and `SET LOCAL` as the server keeps them; a new table
//! renamed stays new, until it takes over a name the running version uses; and a routine
//! dropped and made again with the same arguments in one transaction is replaced, never missing.

use serin_compat::Severity;
use serin_compat::migration::{Phase, Safety, Schema, analyze, analyze_after};

/// The rules each statement reports, at warn or above, by statement.
fn rules_after(schema: &Schema, sql: &str) -> Vec<Vec<String>> {
    analyze_after("m", sql, schema)
        .unwrap()
        .statements
        .iter()
        .map(|s| {
            s.findings
                .iter()
                .filter(|f| f.severity != Severity::Info)
                .map(|f| f.rule.clone())
                .collect()
        })
        .collect()
}

fn rules(sql: &str) -> Vec<Vec<String>> {
    rules_after(&Schema::default(), sql)
}

fn none() -> Vec<String> {
    Vec::new()
}

fn one(rule: &str) -> Vec<String> {
    vec![rule.to_owned()]
}

#[test]
fn tables_made_by_select_into_or_create_table_as_are_new() {
    for made in [
        "SELECT a, b INTO n FROM t",
        "SELECT a, b INTO TABLE public.n FROM t WHERE a > 0",
        "SELECT a, b INTO UNLOGGED n FROM t UNION SELECT a, b FROM u",
        "CREATE TABLE n AS SELECT a, b FROM t",
        "CREATE UNLOGGED TABLE n AS SELECT a, b FROM t WITH NO DATA",
    ] {
        let sql = format!(
            "SET lock_timeout = '1s';\n{made};\nALTER TABLE n DROP COLUMN a;\n\
             CREATE INDEX n_b ON n (b);\nALTER TABLE n ADD CONSTRAINT n_u UNIQUE (b);\n\
             ALTER TABLE n ALTER COLUMN b SET NOT NULL;\nDROP TABLE n;"
        );
        assert!(
            rules(&sql).iter().all(Vec::is_empty),
            "{made}: {:?}",
            rules(&sql)
        );
    }
    // A query without INTO makes nothing: the table it names is the one in use.
    let found = rules("SET lock_timeout = '1s'; SELECT a INTO n FROM t; CREATE INDEX i ON t (a);");
    assert_eq!(found[2], one("require-concurrent-index-creation"));
    // A table an earlier migration made with SELECT ... INTO is known, and in use:
    // `IF NOT EXISTS` leaves it as it is.
    let mut schema = Schema::default();
    schema.learn("SELECT a INTO n FROM t;");
    let found = rules_after(
        &schema,
        "SET lock_timeout = '1s'; CREATE TABLE IF NOT EXISTS n (a int); \
         CREATE INDEX i ON n (a);",
    );
    assert_eq!(found[2], one("require-concurrent-index-creation"));
    let found = rules_after(
        &schema,
        "SET lock_timeout = '1s'; CREATE TABLE IF NOT EXISTS n AS SELECT 1 AS a; \
         CREATE INDEX i ON n (a);",
    );
    assert_eq!(found[2], one("require-concurrent-index-creation"));
}

#[test]
fn settings_follow_rollbacks_savepoints_and_set_local_as_postgresql_keeps_them() {
    let add = "ALTER TABLE t ADD COLUMN c int";
    let timeout_missing = |sql: &str| {
        let report = analyze("m", &format!("{sql} {add};")).unwrap();
        let last = report.statements.last().unwrap();
        last.findings
            .iter()
            .any(|f| f.rule == "require-lock-timeout")
    };
    // Each checked on PostgreSQL 15 with SHOW lock_timeout before the last statement.
    for (sql, missing) in [
        // A rollback undoes a SET made in its transaction.
        ("BEGIN; SET lock_timeout = '1s'; ROLLBACK;", true),
        ("BEGIN; SET lock_timeout = '1s'; COMMIT;", false),
        (
            "BEGIN; SET lock_timeout = '1s'; ROLLBACK AND CHAIN; COMMIT;",
            true,
        ),
        // A rollback to a savepoint undoes what was set after it, and only that.
        (
            "BEGIN; SAVEPOINT a; SET lock_timeout = '1s'; ROLLBACK TO SAVEPOINT a;",
            true,
        ),
        (
            "BEGIN; SET lock_timeout = '1s'; SAVEPOINT a; SET lock_timeout = 0; \
             ROLLBACK TO a;",
            false,
        ),
        (
            "BEGIN; SAVEPOINT a; SET lock_timeout = '1s'; RELEASE SAVEPOINT a; COMMIT;",
            false,
        ),
        // SET LOCAL ends with its transaction, and the session's value comes back.
        (
            "SET lock_timeout = '1s'; BEGIN; SET LOCAL lock_timeout = 0; COMMIT;",
            false,
        ),
        (
            "SET lock_timeout = '1s'; BEGIN; SET LOCAL lock_timeout = '2s'; COMMIT;",
            false,
        ),
        ("BEGIN; SET LOCAL lock_timeout = '2s'; COMMIT;", true),
        (
            "BEGIN; SET LOCAL lock_timeout = '2s'; SET lock_timeout = '1s'; COMMIT;",
            false,
        ),
        (
            "BEGIN; SET lock_timeout = '1s'; SET LOCAL lock_timeout = 0; COMMIT;",
            false,
        ),
        // Inside the transaction, SET LOCAL is in force.
        (
            "SET lock_timeout = 0; BEGIN; SET LOCAL lock_timeout = '1s';",
            false,
        ),
    ] {
        assert_eq!(timeout_missing(sql), missing, "{sql} {add}");
    }
    // statement_timeout follows the same rules: rolled back, it cancels nothing.
    let report = analyze(
        "m",
        "SET lock_timeout = '1s'; BEGIN; SET statement_timeout = '5s'; ROLLBACK; \
         CREATE INDEX CONCURRENTLY i ON t (c);",
    )
    .unwrap();
    assert_eq!(report.findings().count(), 0, "{report:?}");
}

#[test]
fn a_new_table_renamed_stays_new_until_it_takes_over_a_name_in_use() {
    let changes = "ALTER TABLE m DROP COLUMN a;\nCREATE INDEX m_a ON m (a);";
    // Renamed, or moved to another schema, a new table is still nobody's.
    for rename in [
        "ALTER TABLE n RENAME TO m",
        "ALTER TABLE IF EXISTS n RENAME TO m",
        "ALTER TABLE n SET SCHEMA app; ALTER TABLE app.n RENAME TO m; \
         ALTER TABLE app.m SET SCHEMA public",
    ] {
        let sql =
            format!("SET lock_timeout = '1s';\nCREATE TABLE n (a int);\n{rename};\n{changes}");
        assert!(
            rules(&sql).iter().all(Vec::is_empty),
            "{sql}: {:?}",
            rules(&sql)
        );
    }
    // A table in use renamed to a name the migration made and dropped stays in use.
    let found = rules(&format!(
        "SET lock_timeout = '1s';\nCREATE TABLE m (a int);\nDROP TABLE m;\n\
         -- serin:ignore renaming-table\nALTER TABLE t RENAME TO m;\n{changes}"
    ));
    assert_eq!(
        found[4..],
        [
            one("ban-drop-column"),
            one("require-concurrent-index-creation")
        ]
    );

    // A new table swapped in for one in use: nobody sees it before the commit, and the
    // running version reads and writes it from then on.
    let swap = "SET lock_timeout = '1s';\nBEGIN;\nCREATE TABLE t_new (a int);\n\
                ALTER TABLE t RENAME TO t_old;\nALTER TABLE t_new RENAME TO t;\n\
                CREATE INDEX t_a ON t (a);\nCOMMIT;\nCREATE INDEX t_b ON t (a);\n\
                ALTER TABLE t DROP COLUMN a;";
    let found = rules(swap);
    assert_eq!(found[5], none(), "{found:?}");
    assert_eq!(
        found[7..],
        [
            one("require-concurrent-index-creation"),
            one("ban-drop-column")
        ]
    );
    // Rolled back, the old table has its name again.
    let found = rules(&swap.replace("COMMIT", "ROLLBACK"));
    assert_eq!(
        found[7..],
        [
            one("require-concurrent-index-creation"),
            one("ban-drop-column")
        ]
    );
    // Without a transaction, the name is the running version's table at once.
    let found = rules(
        "SET lock_timeout = '1s'; CREATE TABLE t_new (a int); ALTER TABLE t RENAME TO t_old; \
         ALTER TABLE t_new RENAME TO t; ALTER TABLE t DROP COLUMN a;",
    );
    assert_eq!(found[4], one("ban-drop-column"));
    // A view made again after a drop is the running version's from the commit on.
    let found = rules(
        "SET lock_timeout = '1s'; BEGIN; DROP VIEW v; CREATE VIEW v AS SELECT 1 AS a; COMMIT; \
         DROP VIEW v;",
    );
    assert_eq!(found[5], one("ban-drop-object"));
    // And so is a view taking over the name of a table moved away.
    let found = rules(
        "SET lock_timeout = '1s'; BEGIN; ALTER TABLE t SET SCHEMA archive; \
         CREATE VIEW t AS SELECT * FROM archive.t; COMMIT; DROP VIEW t;",
    );
    assert_eq!(found[2], none(), "{found:?}");
    assert_eq!(found[5], one("ban-drop-object"));
}

#[test]
fn a_routine_dropped_and_made_again_in_one_transaction_is_replaced() {
    let report = analyze(
        "m",
        "SET lock_timeout = '1s';\nBEGIN;\nDROP FUNCTION IF EXISTS total(int, varchar);\n\
         CREATE FUNCTION total(n integer, label varchar(20)) RETURNS bigint LANGUAGE sql \
         AS 'SELECT 1';\nCOMMIT;",
    )
    .unwrap();
    let dropped = &report.statements[2];
    assert_eq!(
        (dropped.safety, dropped.phase),
        (Safety::Safe, Some(Phase::Expand))
    );
    let f = &dropped.findings[0];
    assert_eq!(
        (f.rule.as_str(), f.severity),
        ("ban-drop-object", Severity::Info)
    );
    assert!(
        f.message.contains("as with CREATE OR REPLACE"),
        "{}",
        f.message
    );
    assert_eq!(report.safety(), Safety::Safe);

    for same in [
        // Forms the parser lacks, read from their words; OUT arguments are no part of it.
        "DROP FUNCTION f(bigint, OUT text); CREATE FUNCTION f(a int8) RETURNS t LANGUAGE \
         plpgsql STABLE COST 1 AS $$ BEGIN RETURN NULL; END $$",
        "DROP PROCEDURE p(varchar(10)); CREATE PROCEDURE p(a character varying) LANGUAGE sql \
         AS $$ SELECT 1 $$",
        "DROP FUNCTION app.f(int[]); CREATE OR REPLACE FUNCTION app.f(a int4[]) RETURNS int \
         LANGUAGE sql AS 'SELECT 1'",
    ] {
        let found = rules(&format!("SET lock_timeout = '1s'; BEGIN; {same}; COMMIT;"));
        assert!(found.iter().all(Vec::is_empty), "{same}: {found:?}");
    }
    for missing in [
        // Other arguments: the old version's calls find nothing.
        "BEGIN; DROP FUNCTION f(int); CREATE FUNCTION f(text) RETURNS int LANGUAGE sql AS \
         'SELECT 1'; COMMIT",
        // CASCADE drops the views, triggers and defaults that use it.
        "BEGIN; DROP FUNCTION f(int) CASCADE; CREATE FUNCTION f(int) RETURNS int LANGUAGE sql \
         AS 'SELECT 1'; COMMIT",
        // Outside a transaction, it is missing in between.
        "DROP FUNCTION f(int); CREATE FUNCTION f(int) RETURNS int LANGUAGE sql AS 'SELECT 1'",
        // Arguments not written: which one is dropped is not known.
        "BEGIN; DROP FUNCTION f; CREATE FUNCTION f(int) RETURNS int LANGUAGE sql AS \
         'SELECT 1'; COMMIT",
    ] {
        let found = rules(&format!("SET lock_timeout = '1s'; {missing};"));
        assert!(
            found.iter().any(|r| r == &one("ban-drop-object")),
            "{missing}: {found:?}"
        );
    }
    // Made again, it is the running version's routine: dropping it later breaks it.
    let found = rules(
        "SET lock_timeout = '1s'; BEGIN; DROP FUNCTION f(int); CREATE FUNCTION f(int) \
         RETURNS int LANGUAGE sql AS 'SELECT 1'; COMMIT; DROP FUNCTION f(int);",
    );
    assert_eq!(found[5], one("ban-drop-object"));
}

#[test]
fn routines_are_told_apart_by_their_arguments() {
    // An overload this migration made is not the one in use of the same name.
    let found = rules(
        "SET lock_timeout = '1s'; CREATE FUNCTION f(int) RETURNS int LANGUAGE sql AS \
         'SELECT 1'; DROP FUNCTION f(text); DROP FUNCTION f(integer);",
    );
    assert_eq!(found[2..], [one("ban-drop-object"), none()]);
    // A routine this migration made, renamed, is still its own; a procedure too.
    let found = rules(
        "SET lock_timeout = '1s'; CREATE FUNCTION f(int) RETURNS int LANGUAGE sql AS \
         'SELECT 1'; ALTER FUNCTION f(int) RENAME TO g; DROP FUNCTION g(int); \
         CREATE PROCEDURE p() LANGUAGE sql AS $$ SELECT 1 $$; ALTER PROCEDURE p() RENAME TO q;",
    );
    assert!(found.iter().all(Vec::is_empty), "{found:?}");
    let found = rules("SET lock_timeout = '1s'; ALTER PROCEDURE p() RENAME TO q;");
    assert_eq!(found[1], one("renaming-function"));
}

#[test]
fn set_config_sets_a_timeout_as_set_does() {
    let missing = |sql: &str| {
        analyze("m", &format!("{sql} ALTER TABLE t ADD COLUMN c int;"))
            .unwrap()
            .findings()
            .any(|(_, f)| f.rule == "require-lock-timeout")
    };
    for (sql, missing_timeout) in [
        ("SELECT set_config('lock_timeout', '1s', false);", false),
        (
            "SELECT pg_catalog.set_config('lock_timeout', '1s', false) AS lt;",
            false,
        ),
        ("SELECT set_config('lock_timeout', '0', false);", true),
        // is_local: for the transaction only, as SET LOCAL.
        (
            "BEGIN; SELECT set_config('lock_timeout', '1s', true); COMMIT;",
            true,
        ),
        (
            "BEGIN; SELECT set_config('lock_timeout', '1s', true);",
            false,
        ),
        ("SELECT set_config('search_path', '', false);", true),
    ] {
        assert_eq!(missing(sql), missing_timeout, "{sql}");
    }
    // A statement_timeout set this way is in force too.
    let report = analyze(
        "m",
        "SELECT set_config('lock_timeout', '1s', false), set_config('statement_timeout', '5s', \
         false); CREATE INDEX CONCURRENTLY i ON t (c);",
    )
    .unwrap();
    let rules: Vec<&str> = report.findings().map(|(_, f)| f.rule.as_str()).collect();
    assert_eq!(rules, ["statement-timeout-cancels"]);
}

#[test]
fn a_default_made_of_constants_and_operators_rewrites_nothing() {
    for column in [
        "c int DEFAULT 1 + 1",
        "c text DEFAULT 'x' || 'y'",
        "c timestamptz DEFAULT now() + interval '1 day'",
        "c int DEFAULT -1",
        "c bigint DEFAULT (2 * 3)::bigint",
    ] {
        let found = rules(&format!(
            "SET lock_timeout = '1s'; ALTER TABLE t ADD COLUMN {column};"
        ));
        assert_eq!(found[1], none(), "{column}");
    }
    let found =
        rules("SET lock_timeout = '1s'; ALTER TABLE t ADD COLUMN c text DEFAULT 'x' || random();");
    assert_eq!(found[1], one("adding-field-with-default"));
}

#[test]
fn a_copy_of_a_table_in_use_keeps_a_lock_held_as_long_as_it_runs() {
    for copy in [
        "INSERT INTO n SELECT a FROM t",
        "SELECT a INTO m FROM t",
        "CREATE TABLE m AS SELECT a FROM u JOIN t USING (a)",
    ] {
        let found = rules(&format!(
            "SET lock_timeout = '1s'; BEGIN; CREATE TABLE n (a int); \
             ALTER TABLE t ADD COLUMN c int; {copy}; COMMIT;"
        ));
        assert_eq!(found[4], one("lock-held-through-transaction"), "{copy}");
    }
    // Rows written out, rows of new tables, or no rows at all take no time.
    for copy in [
        "INSERT INTO n VALUES (1)",
        "INSERT INTO n SELECT generate_series(1, 10)",
        "WITH s AS (SELECT 1 AS a) INSERT INTO n SELECT a FROM s",
        "CREATE TABLE m AS SELECT a FROM n",
        "CREATE TABLE m AS SELECT a FROM t WITH NO DATA",
    ] {
        let found = rules(&format!(
            "SET lock_timeout = '1s'; BEGIN; CREATE TABLE n (a int); \
             ALTER TABLE t ADD COLUMN c int; {copy}; COMMIT;"
        ));
        assert_eq!(found[4], none(), "{copy}");
    }
}
