//! What a rollback and a query of several statements do to what the analysis knows, as
//! PostgreSQL does it: a rollback undoes the objects made, the constraints validated and the
//! locks taken since `BEGIN` (or the savepoint), as it undoes settings; a query of several
//! statements is a transaction of its own for `SET LOCAL` and `ROLLBACK`; and a sequence or a
//! procedure renamed keeps what is known of it under its new name.

use serin_compat::Severity;
use serin_compat::migration::{Runner, Schema, analyze, analyze_as};

/// The rules each statement reports, at warn or above, by statement.
fn rules(sql: &str) -> Vec<Vec<String>> {
    loud(&analyze("m", sql).unwrap().statements)
}

fn loud(statements: &[serin_compat::migration::StatementReport]) -> Vec<Vec<String>> {
    statements
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

fn all(found: &[Vec<String>]) -> Vec<&str> {
    found.iter().flatten().map(String::as_str).collect()
}

#[test]
fn a_table_made_and_rolled_back_is_the_one_in_use_again() {
    let index = "CREATE INDEX t_a ON t (a)";
    // Committed, the table is new and its index holds up nobody.
    let committed =
        format!("SET lock_timeout = '1s'; BEGIN; CREATE TABLE t (a int); COMMIT; {index};");
    assert!(all(&rules(&committed)).is_empty(), "{committed}");
    for undone in [
        format!("SET lock_timeout = '1s'; BEGIN; CREATE TABLE t (a int); ROLLBACK; {index};"),
        format!(
            "SET lock_timeout = '1s'; BEGIN; SAVEPOINT s; CREATE TABLE t (a int); \
             ROLLBACK TO SAVEPOINT s; {index}; COMMIT;"
        ),
        format!(
            "SET lock_timeout = '1s'; BEGIN; CREATE TABLE t (a int); ROLLBACK AND CHAIN; \
             {index}; COMMIT;"
        ),
    ] {
        let found = rules(&undone);
        let last_index = found.len() - if undone.ends_with("COMMIT;") { 2 } else { 1 };
        assert_eq!(
            found[last_index],
            ["require-concurrent-index-creation"],
            "{undone}: {found:?}"
        );
    }
}

#[test]
fn a_rollback_to_a_savepoint_keeps_what_came_before_it() {
    let sql = "SET lock_timeout = '1s'; BEGIN; CREATE TABLE t (a int); SAVEPOINT s; \
               CREATE TABLE u (a int); ROLLBACK TO s; CREATE INDEX t_a ON t (a); \
               CREATE INDEX u_a ON u (a); COMMIT;";
    let found = rules(sql);
    assert!(found[6].is_empty(), "{found:?}");
    assert_eq!(found[7], ["require-concurrent-index-creation"], "{found:?}");
    // The savepoint stays: a second rollback to it undoes what came after the first.
    let again = "SET lock_timeout = '1s'; BEGIN; SAVEPOINT s; CREATE TABLE u (a int); \
                 ROLLBACK TO s; CREATE TABLE u (a int); ROLLBACK TO s; \
                 CREATE INDEX u_a ON u (a); COMMIT;";
    let found = rules(again);
    assert_eq!(found[7], ["require-concurrent-index-creation"], "{found:?}");
}

#[test]
fn a_validation_rolled_back_proves_nothing() {
    let sql = "SET lock_timeout = '1s';\n\
               ALTER TABLE t ADD CONSTRAINT t_c_nn CHECK (c IS NOT NULL) NOT VALID;\n\
               BEGIN;\n\
               ALTER TABLE t VALIDATE CONSTRAINT t_c_nn;\n\
               ROLLBACK;\n\
               ALTER TABLE t ALTER COLUMN c SET NOT NULL;\n";
    assert_eq!(
        rules(sql)[5],
        ["adding-not-nullable-field"],
        "{:?}",
        rules(sql)
    );
    // Committed, the check proves the column and the scan is skipped.
    assert!(rules(&sql.replace("ROLLBACK", "COMMIT"))[5].is_empty());
}

#[test]
fn a_lock_taken_after_a_savepoint_is_released_by_a_rollback_to_it() {
    let sql = "SET lock_timeout = '1s'; BEGIN; SAVEPOINT s; ALTER TABLE t ADD COLUMN b int; \
               ROLLBACK TO SAVEPOINT s; UPDATE u SET a = 1; COMMIT;";
    let held = |sql: &str| rules(sql)[5].contains(&"lock-held-through-transaction".to_owned());
    assert!(!held(sql), "{:?}", rules(sql));
    // Released, not rolled back: the lock is kept until the commit.
    assert!(held(
        &sql.replace("ROLLBACK TO SAVEPOINT s", "RELEASE SAVEPOINT s")
    ));
}

/// Liquibase changesets that run outside a transaction, each sent as one query.
fn one_query_changesets(first: &str) -> Vec<Vec<String>> {
    let sql = format!(
        "--liquibase formatted sql\n\n\
         --changeset serin:1 runInTransaction:false splitStatements:false\n\
         {first}\n\
         ALTER TABLE users ALTER COLUMN email SET DEFAULT 'x';\n\n\
         --changeset serin:2 runInTransaction:false\n\
         ALTER TABLE users ALTER COLUMN name SET DEFAULT 'y';\n"
    );
    let report = analyze_as("m", &sql, &Schema::default(), Runner::Liquibase).unwrap();
    loud(&report.statements)
}

#[test]
fn set_local_in_a_query_of_several_statements_lasts_until_the_query_ends() {
    // PostgreSQL runs the query as one transaction: SET LOCAL holds for the statement after
    // it, and is gone in the next changeset's query.
    let found = one_query_changesets("SET LOCAL lock_timeout = '1s';");
    assert_eq!(
        found,
        [vec![], vec![], vec!["require-lock-timeout".to_owned()]]
    );
    let found = one_query_changesets("SELECT set_config('lock_timeout', '1s', true);");
    assert_eq!(
        found,
        [vec![], vec![], vec!["require-lock-timeout".to_owned()]]
    );
    // A plain SET outlives the query.
    let found = one_query_changesets("SET lock_timeout = '1s';");
    assert!(all(&found).is_empty(), "{found:?}");
}

#[test]
fn a_rollback_in_a_query_of_several_statements_undoes_its_set() {
    let found = one_query_changesets("SET lock_timeout = '1s'; ROLLBACK;");
    assert_eq!(found[2], ["require-lock-timeout"], "{found:?}");
    // Committed, it stays.
    let found = one_query_changesets("SET lock_timeout = '1s'; COMMIT;");
    assert!(!all(&found).contains(&"require-lock-timeout"), "{found:?}");
    // BEGIN in the query takes in what ran before it, and its ROLLBACK undoes that too.
    let found = one_query_changesets("SET lock_timeout = '1s'; BEGIN; ROLLBACK;");
    assert_eq!(found[3], ["require-lock-timeout"], "{found:?}");
}

#[test]
fn a_begin_inside_a_query_keeps_what_the_query_locked_and_added_before_it() {
    // golang-migrate sends the file as one query: BEGIN turns its implicit transaction into
    // the file's own, so the ALTER's lock of t is kept through the UPDATE (PostgreSQL 15's
    // pg_locks shows it after the BEGIN).
    let file = "SET lock_timeout = '1s';\nALTER TABLE t ADD COLUMN c int;\nBEGIN;\n\
                UPDATE t SET c = 0;\nCOMMIT;\n";
    let report = analyze_as("m", file, &Schema::default(), Runner::GolangMigrate).unwrap();
    let found = loud(&report.statements);
    assert_eq!(
        found[3],
        ["lock-held-through-transaction", "backfill"],
        "{found:?}"
    );
    assert!(
        report.statements[3].findings[0]
            .message
            .starts_with("statement 2 (line 2) took a lock that blocks writes"),
        "{:?}",
        report.statements[3].findings
    );
    // An enum value added before the BEGIN is refused in the same way ("unsafe use of new
    // value").
    let file = "ALTER TYPE mood ADD VALUE 'calm';\nBEGIN;\n\
                INSERT INTO moods (m) VALUES ('calm');\nCOMMIT;\n";
    let report = analyze_as("m", file, &Schema::default(), Runner::GolangMigrate).unwrap();
    assert!(
        all(&loud(&report.statements)).contains(&"new-enum-value-used-in-transaction"),
        "{:?}",
        loud(&report.statements)
    );
    // psql sends them one by one: the value is committed before the BEGIN.
    assert!(!all(&rules(file)).contains(&"new-enum-value-used-in-transaction"));
}

#[test]
fn a_commit_inside_a_query_releases_what_the_query_locked_and_added_before_it() {
    // PostgreSQL ends the query's implicit transaction at COMMIT and starts another for the
    // statements after it: the ALTER's lock is gone, the enum value committed.
    let file = "SET lock_timeout = '1s';\nALTER TABLE t ADD COLUMN c int;\nCOMMIT;\n\
                UPDATE t SET c = 0;\n";
    let report = analyze_as("m", file, &Schema::default(), Runner::GolangMigrate).unwrap();
    let found = loud(&report.statements);
    assert_eq!(found[3], ["backfill"], "{found:?}");
    let file = "ALTER TYPE mood ADD VALUE 'calm';\nCOMMIT;\n\
                INSERT INTO moods (m) VALUES ('calm');\n";
    let report = analyze_as("m", file, &Schema::default(), Runner::GolangMigrate).unwrap();
    let found = loud(&report.statements);
    assert!(
        !all(&found).contains(&"new-enum-value-used-in-transaction"),
        "{found:?}"
    );
    // Without the COMMIT both are kept to the end of the query.
    let kept = analyze_as(
        "m",
        &file.replace("COMMIT;\n", ""),
        &Schema::default(),
        Runner::GolangMigrate,
    )
    .unwrap();
    assert!(all(&loud(&kept.statements)).contains(&"new-enum-value-used-in-transaction"));
}

#[test]
fn a_sequence_made_here_and_renamed_stays_new() {
    let sql = "SET lock_timeout = '1s'; CREATE SEQUENCE s; ALTER SEQUENCE s RENAME TO s2; \
               ALTER SEQUENCE s2 RENAME TO s3; ALTER SEQUENCE s3 SET SCHEMA archive; \
               ALTER SEQUENCE archive.s3 RENAME TO s4; DROP SEQUENCE archive.s4;";
    assert!(all(&rules(sql)).is_empty(), "{:?}", rules(sql));
    // One in use is renamed, whatever name it had before.
    let found = rules("SET lock_timeout = '1s'; ALTER SEQUENCE s RENAME TO s2;");
    assert_eq!(found[1], ["renaming-sequence"]);
    // Renamed away, its old name is free: a sequence made under it is new.
    let sql = "SET lock_timeout = '1s'; CREATE SEQUENCE n; ALTER SEQUENCE n RENAME TO m; \
               ALTER SEQUENCE m RENAME TO n; ALTER SEQUENCE n RENAME TO k;";
    assert!(all(&rules(sql)).is_empty(), "{:?}", rules(sql));
}

#[test]
fn a_procedure_made_here_and_renamed_stays_new() {
    let sql = "SET lock_timeout = '1s';\n\
               CREATE PROCEDURE p(a int) LANGUAGE sql AS $$ SELECT 1 $$;\n\
               ALTER PROCEDURE p(int) RENAME TO q;\n\
               ALTER PROCEDURE q(integer) SET SCHEMA archive;\n\
               DROP PROCEDURE archive.q(int);\n";
    assert!(all(&rules(sql)).is_empty(), "{:?}", rules(sql));
    // Another overload of the name is the running version's.
    let other = sql.replace("DROP PROCEDURE archive.q(int)", "DROP PROCEDURE p(text)");
    assert_eq!(rules(&other)[4], ["ban-drop-object"], "{:?}", rules(&other));
}

#[test]
fn an_index_of_a_new_table_renamed_stays_new() {
    let sql = "SET lock_timeout = '1s'; CREATE TABLE n (a int); CREATE INDEX n_a ON n (a); \
               ALTER INDEX n_a RENAME TO n_b; DROP INDEX n_b;";
    assert!(all(&rules(sql)).is_empty(), "{:?}", rules(sql));
    // An index of a table in use is the running version's under any name.
    let found = rules("SET lock_timeout = '1s'; ALTER INDEX t_a RENAME TO t_b; DROP INDEX t_b;");
    assert_eq!(found[2], ["require-concurrent-index-deletion"], "{found:?}");
}
