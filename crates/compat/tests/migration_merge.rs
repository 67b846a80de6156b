//! Statements whose effect the statement's kind does not show: `MERGE` changes rows as
//! `UPDATE`, `INSERT` and `DELETE` do, and a function called by `SELECT` or by a data change
//! may change data or the schema, unless it is a built-in that only reads or one that
//! `pg_dump` writes.

use serin_compat::Severity;
use serin_compat::migration::{Schema, analyze_after};

/// The rules each statement after the leading `SET lock_timeout` reports, by statement.
fn rules(sql: &str) -> Vec<Vec<String>> {
    let report = analyze_after(
        "m",
        &format!("SET lock_timeout = '1s';\n{sql}"),
        &Schema::default(),
    )
    .unwrap();
    report.statements[1..]
        .iter()
        .map(|s| s.findings.iter().map(|f| f.rule.clone()).collect())
        .collect()
}

const MERGE: &str = "MERGE INTO users u USING staged s ON u.id = s.id \
                     WHEN MATCHED THEN UPDATE SET c = s.c \
                     WHEN NOT MATCHED THEN INSERT (id, c) VALUES (s.id, s.c)";

#[test]
fn merge_is_a_data_change() {
    assert_eq!(rules(&format!("{MERGE};")), [["backfill"]]);
    // After a lock in the same transaction, it keeps the table blocked while it runs.
    let found = rules(&format!(
        "BEGIN; ALTER TABLE users ADD COLUMN c int; {MERGE}; COMMIT;"
    ));
    assert_eq!(found[2], ["lock-held-through-transaction", "backfill"]);
    // Into a table the migration made, it changes no rows in use.
    let found = rules(&format!("CREATE TABLE users (id int, c int); {MERGE};"));
    assert_eq!(found[1], Vec::<String>::new());
}

#[test]
fn a_column_merge_assigns_twice_fails_the_migration() {
    for clause in [
        "WHEN MATCHED THEN UPDATE SET c = 1, C = 2",
        "WHEN NOT MATCHED THEN INSERT (c, c) VALUES (1, 2)",
    ] {
        let sql = format!("MERGE INTO users USING staged s ON users.id = s.id {clause};");
        let report = analyze_after(
            "m",
            &format!("SET lock_timeout = '1s';\n{sql}"),
            &Schema::default(),
        )
        .unwrap();
        let (_, f) = report.findings().next().unwrap();
        assert_eq!(
            (f.rule.as_str(), f.severity),
            ("ban-duplicate-column-assignments", Severity::Error),
            "{clause}"
        );
        // Named as written where it comes again.
        assert!(
            f.message
                .to_lowercase()
                .starts_with("users.c is assigned twice"),
            "{}",
            f.message
        );
    }
    // Each WHEN clause assigns its own columns.
    let found = rules(
        "MERGE INTO users USING staged s ON users.id = s.id \
         WHEN MATCHED AND s.c IS NULL THEN UPDATE SET c = 0 \
         WHEN MATCHED THEN UPDATE SET c = s.c;",
    );
    assert_eq!(found, [["backfill"]]);
}

#[test]
fn a_function_called_by_select_is_not_analysed() {
    let report = analyze_after(
        "m",
        "SET lock_timeout = '1s';\nSELECT app.backfill_accounts(1000);",
        &Schema::default(),
    )
    .unwrap();
    let (_, f) = report.findings().next().unwrap();
    assert_eq!(
        (f.rule.as_str(), f.severity),
        ("function-not-analysed", Severity::Info)
    );
    assert!(f.message.contains("app.backfill_accounts"), "{}", f.message);
    // Called anywhere in the query, each once.
    let found = rules("SELECT count(*) FROM t WHERE migrate(t.id) AND migrate(t.id + 1);");
    assert_eq!(found, [["function-not-analysed"]]);
    // A function read as a table is called as well.
    let found = rules("SELECT * FROM app.rebuild_search();");
    assert_eq!(found, [["function-not-analysed"]]);
}

#[test]
fn built_ins_and_what_pg_dump_writes_are_no_finding() {
    for sql in [
        "SELECT pg_catalog.set_config('search_path', '', false)",
        "SELECT pg_catalog.setval('public.users_id_seq', 42, true)",
        "SELECT setval('users_id_seq', 1)",
        "SELECT count(*), max(id), now(), coalesce(sum(id), 0) FROM users",
        "SELECT lower(name), length(name), to_char(now(), 'YYYY') FROM users",
        "SELECT 1",
        "SELECT n FROM generate_series(1, 10) AS n",
        // A helper this migration made shows its body in it.
        "CREATE FUNCTION app.init() RETURNS void LANGUAGE sql AS $$ SELECT 1 $$; \
         SELECT app.init()",
    ] {
        let found = rules(&format!("{sql};"));
        assert!(
            !found.is_empty() && found.iter().all(Vec::is_empty),
            "{sql}: {found:?}"
        );
    }
}

#[test]
fn a_function_called_by_a_data_change_is_not_analysed_either() {
    for sql in [
        "INSERT INTO audit (n) SELECT app.count_rows('users');",
        "UPDATE users SET c = app.normalise(c);",
        "DELETE FROM users WHERE app.is_stale(id);",
        "MERGE INTO users u USING staged s ON u.id = s.id \
         WHEN MATCHED THEN UPDATE SET c = app.normalise(s.c);",
    ] {
        let report = analyze_after(
            "m",
            &format!("SET lock_timeout = '1s';\n{sql}"),
            &Schema::default(),
        )
        .unwrap();
        let notes: Vec<(&str, Severity, &str)> = report.statements[1]
            .findings
            .iter()
            .filter(|f| f.rule == "function-not-analysed")
            .map(|f| (f.rule.as_str(), f.severity, f.message.as_str()))
            .collect();
        assert_eq!(notes.len(), 1, "{sql}: {:?}", report.statements[1].findings);
        assert_eq!(notes[0].1, Severity::Info, "{sql}");
        assert!(notes[0].2.contains("app."), "{sql}: {}", notes[0].2);
    }
    // The same calls are exempt as in a query: built-ins, pg_catalog's, the migration's own.
    for sql in [
        "UPDATE users SET c = lower(c), at = now() WHERE id = abs(id);",
        "INSERT INTO users (id) VALUES (nextval('users_id_seq'));",
        "DELETE FROM users WHERE pg_catalog.length(c) > 10;",
        "CREATE FUNCTION app.norm(t text) RETURNS text LANGUAGE sql AS $$ SELECT t $$; \
         UPDATE users SET c = app.norm(c);",
    ] {
        let found = rules(sql);
        assert!(
            found.iter().flatten().all(|r| r != "function-not-analysed"),
            "{sql}: {found:?}"
        );
    }
}
