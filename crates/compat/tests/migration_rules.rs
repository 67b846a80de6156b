//! The analysis of migrations judged by what PostgreSQL does and what a reviewer reads:
//! objects a migration makes and then drops, refreshes or empties are nobody's yet; a `NOT
//! NULL` column whose default is `NULL` has no default; the seconds' precision of times and
//! timestamps widens in the catalog only; a required column added keeps its default while the
//! old version runs; placeholders are shown as written; statements end where psql ends them;
//! names are read as PostgreSQL reads them (quoted, cut at 63 bytes, types under any of their
//! spellings); what PostgreSQL refuses or does beyond the statement's own tables (a column
//! assigned twice, `TRUNCATE ... CASCADE`) is reported; a data change is one however written.

use serin_compat::Severity;
use serin_compat::migration::{Phase, Safety, Schema, analyze, analyze_after};

/// The notes on column types (`migration_types`), left out here: the types of these tests'
/// columns only serve their statements.
const TYPE_NOTES: [&str; 6] = [
    "ban-char-field",
    "prefer-bigint-over-int",
    "prefer-bigint-over-smallint",
    "prefer-identity",
    "prefer-text-field",
    "prefer-timestamptz",
];

/// The rules each statement after the leading `SET lock_timeout` reports, by statement, but
/// for the [`TYPE_NOTES`].
fn rules_after(schema: &Schema, sql: &str) -> Vec<Vec<String>> {
    let report = analyze_after("m", &format!("SET lock_timeout = '1s';\n{sql}"), schema).unwrap();
    report.statements[1..]
        .iter()
        .map(|s| {
            s.findings
                .iter()
                .filter(|f| !TYPE_NOTES.contains(&f.rule.as_str()))
                .map(|f| f.rule.clone())
                .collect()
        })
        .collect()
}

fn rules(sql: &str) -> Vec<Vec<String>> {
    rules_after(&Schema::default(), sql)
}

#[test]
fn what_a_migration_made_it_drops_without_breaking_the_old_version() {
    for (made, dropped) in [
        ("CREATE VIEW v AS SELECT 1", "DROP VIEW v"),
        (
            "CREATE MATERIALIZED VIEW mv AS SELECT 1",
            "DROP MATERIALIZED VIEW mv",
        ),
        ("CREATE SEQUENCE s", "DROP SEQUENCE IF EXISTS s"),
        ("CREATE TYPE tmp AS ENUM ('a')", "DROP TYPE tmp"),
        ("CREATE DOMAIN d AS int", "DROP DOMAIN d"),
        (
            "CREATE PROCEDURE backfill() LANGUAGE sql AS $$ SELECT 1 $$",
            "DROP PROCEDURE backfill",
        ),
        ("CREATE SCHEMA staging", "DROP SCHEMA staging CASCADE"),
        (
            "CREATE TABLE n (id int); CREATE INDEX n_id ON n (id)",
            "DROP INDEX n_id",
        ),
        ("CREATE TABLE n (id int)", "TRUNCATE n"),
    ] {
        let found = rules(&format!("{made};\n{dropped};"));
        let last = found.last().unwrap();
        assert!(last.is_empty(), "{made}; {dropped}: {last:?}");
    }
    // What the old version may use is still reported, alone in the message.
    let report = analyze(
        "m",
        "SET lock_timeout = '1s'; CREATE VIEW v AS SELECT 1; DROP VIEW v, w;",
    )
    .unwrap();
    let (_, f) = report.findings().next().unwrap();
    assert_eq!(f.rule, "ban-drop-object");
    assert!(f.message.contains("view(s) w "), "{}", f.message);
    for sql in [
        "DROP PROCEDURE p",
        "DROP DOMAIN d",
        "DROP SCHEMA s",
        "DROP INDEX i",
        "TRUNCATE t",
        "CREATE TABLE n (id int); TRUNCATE n, t",
        "CREATE INDEX CONCURRENTLY j ON t (c); DROP INDEX j",
    ] {
        let found = rules(sql);
        assert!(!found.last().unwrap().is_empty(), "{sql}: {found:?}");
    }
}

#[test]
fn a_materialized_view_made_empty_is_filled_without_concurrently() {
    // PostgreSQL refuses CONCURRENTLY on a view never filled, and nothing reads it yet.
    let found = rules(
        "CREATE MATERIALIZED VIEW mv AS SELECT 1 AS x WITH NO DATA;\n\
         REFRESH MATERIALIZED VIEW mv;",
    );
    assert_eq!(found, [Vec::<String>::new(), Vec::new()]);
    let found = rules("REFRESH MATERIALIZED VIEW mv;");
    assert_eq!(found, [["require-concurrent-refresh"]]);
}

#[test]
fn a_not_null_column_whose_default_is_null_is_required() {
    for sql in [
        "ALTER TABLE t ADD COLUMN c int NOT NULL DEFAULT NULL",
        "ALTER TABLE t ADD COLUMN c int DEFAULT (NULL::integer) NOT NULL",
    ] {
        assert_eq!(rules(sql), [["adding-required-field"]], "{sql}");
    }
    assert_eq!(
        rules("ALTER TABLE t ADD COLUMN c int DEFAULT NULL"),
        [Vec::<String>::new()]
    );
}

#[test]
fn a_wider_precision_of_seconds_changes_the_catalog_only() {
    let mut schema = Schema::default();
    schema.learn(
        "CREATE TABLE r (t3 timestamp(3), ts timestamp, tz3 timestamptz(3), tm2 time(2), \
         tt2 timetz(2), iv interval day to second(2), i2 interval(2));",
    );
    for change in [
        "t3 TYPE timestamp(6)",
        "t3 TYPE timestamp",
        "t3 TYPE timestamp(3) without time zone",
        "ts TYPE timestamp(6)",
        "tz3 TYPE timestamptz(4)",
        "tz3 TYPE timestamp with time zone",
        "tm2 TYPE time(4)",
        "tm2 TYPE time",
        "tt2 TYPE timetz(5)",
        "iv TYPE interval",
        "iv TYPE interval day to second(4)",
        "i2 TYPE interval(6)",
    ] {
        let found = rules_after(&schema, &format!("ALTER TABLE r ALTER COLUMN {change};"));
        assert_eq!(found, [Vec::<String>::new()], "{change}");
    }
    for change in [
        "t3 TYPE timestamp(2)",
        "ts TYPE timestamp(3)",
        "tz3 TYPE timestamp(6)",
        "tm2 TYPE time(1)",
        "tm2 TYPE timestamp",
        "iv TYPE interval day to second(1)",
        "i2 TYPE interval(1)",
        "t3 TYPE interval",
    ] {
        let found = rules_after(&schema, &format!("ALTER TABLE r ALTER COLUMN {change};"));
        assert_eq!(found, [["changing-column-type"]], "{change}");
    }
}

#[test]
fn create_table_if_not_exists_of_a_table_in_use_leaves_it_in_use() {
    let mut schema = Schema::default();
    schema.learn("CREATE TABLE users (id bigint, name varchar(50), email text);");
    let found = rules_after(
        &schema,
        "CREATE TABLE IF NOT EXISTS users (id bigint, name text);\n\
         ALTER TABLE users DROP COLUMN email;\n\
         ALTER TABLE users ALTER COLUMN name TYPE varchar(100);\n\
         CREATE INDEX users_name ON users (name);",
    );
    assert_eq!(
        found,
        [
            vec![],
            vec!["ban-drop-column".to_owned()],
            vec![],
            vec!["require-concurrent-index-creation".to_owned()],
        ]
    );
    let found = rules_after(
        &schema,
        "CREATE TABLE IF NOT EXISTS users (LIKE template INCLUDING ALL);\n\
         ALTER TABLE users DROP COLUMN email;",
    );
    assert_eq!(found, [vec![], vec!["ban-drop-column".to_owned()]]);
    // A table no earlier migration made is new, with the columns this statement gives it.
    let found = rules(
        "CREATE TABLE IF NOT EXISTS audit (id bigint, note varchar(10));\n\
         ALTER TABLE audit DROP COLUMN note;\n\
         CREATE INDEX audit_id ON audit (id);",
    );
    assert_eq!(
        found,
        [vec!["table-taken-as-new".to_owned()], vec![], vec![]]
    );
}

#[test]
fn create_table_if_not_exists_of_an_unknown_table_says_it_is_taken_as_new() {
    for sql in [
        "CREATE TABLE IF NOT EXISTS audit (id bigint);",
        "CREATE TABLE IF NOT EXISTS audit (LIKE template INCLUDING ALL);",
    ] {
        let report = analyze("m", &format!("SET lock_timeout = '1s';\n{sql}")).unwrap();
        let note = &report.statements[1].findings[0];
        assert_eq!(
            (note.rule.as_str(), note.severity),
            ("table-taken-as-new", Severity::Info),
            "{sql}"
        );
        assert!(
            note.message
                .starts_with("no earlier migration made audit, so it is taken as new")
                && note.message.contains("if audit exists already"),
            "{}",
            note.message
        );
        assert!(note.recipe.contains("analyze_after"), "{}", note.recipe);
        // A note: the statement is safe and runs in the expand phase.
        assert_eq!(report.statements[1].safety, Safety::Safe);
        assert_eq!(report.statements[1].phase, Some(Phase::Expand));
    }
    // Nothing is assumed of a table this migration dropped, renamed away or made before, nor
    // of one written without IF NOT EXISTS (PostgreSQL fails it if the table exists).
    for sql in [
        "DROP TABLE IF EXISTS audit;\nCREATE TABLE IF NOT EXISTS audit (id bigint);",
        "ALTER TABLE audit RENAME TO audit_old;\nCREATE TABLE IF NOT EXISTS audit (id bigint);",
        "CREATE TABLE audit (id bigint);\nCREATE TABLE IF NOT EXISTS audit (id bigint);",
        "CREATE TABLE audit (id bigint);",
    ] {
        let found = rules(sql);
        assert!(
            !found.concat().contains(&"table-taken-as-new".to_owned()),
            "{sql}: {found:?}"
        );
    }
}

#[test]
fn the_volatile_defaults_of_recent_postgresql_rewrite_the_table() {
    for default in [
        "uuidv7()",
        "uuidv4()",
        "uuid_generate_v7()",
        "random_normal()",
    ] {
        let report = analyze(
            "m",
            &format!("SET lock_timeout = '1s'; ALTER TABLE t ADD COLUMN d uuid DEFAULT {default};"),
        )
        .unwrap();
        let (_, f) = report.findings().next().unwrap();
        assert_eq!(f.rule, "adding-field-with-default", "{default}");
        assert_eq!(
            f.severity,
            serin_compat::validation::Severity::Error,
            "{default}"
        );
    }
}

#[test]
fn placeholders_are_shown_as_written_in_statements_and_findings() {
    let report = analyze(
        "m",
        "\\set n 10\n\
         SET lock_timeout = '1s';\n\
         UPDATE users SET user_name = 'x' WHERE id < :n;\n\
         CREATE INDEX CONCURRENTLY idx_name ON users (user_name);\n\
         ALTER TABLE ${schema}.users DROP COLUMN email;\n\
         ALTER TABLE :\"tbl\" RENAME COLUMN a TO b;",
    )
    .unwrap();
    let sql: Vec<&str> = report.statements.iter().map(|s| s.sql.as_str()).collect();
    assert_eq!(
        sql[2..4],
        [
            "UPDATE users SET user_name = 'x' WHERE id < :n",
            "CREATE INDEX CONCURRENTLY idx_name ON users(user_name)",
        ]
    );
    let messages: Vec<&str> = report.findings().map(|(_, f)| f.message.as_str()).collect();
    assert!(
        messages[1].contains("email of ${schema}.users "),
        "{}",
        messages[1]
    );
    assert!(
        messages[2].contains("renaming :\"tbl\".a to b"),
        "{}",
        messages[2]
    );
}

#[test]
fn a_required_column_added_keeps_its_default_while_the_old_version_runs() {
    // As Django writes a field added with a default: the old version's inserts leave the
    // column out, and fail once the default is gone.
    let report = analyze(
        "0002_add_x",
        "BEGIN;\n\
         SET LOCAL lock_timeout = '1s';\n\
         ALTER TABLE \"app_model\" ADD COLUMN \"x\" integer DEFAULT 0 NOT NULL;\n\
         ALTER TABLE \"app_model\" ALTER COLUMN \"x\" DROP DEFAULT;\n\
         COMMIT;",
    )
    .unwrap();
    let dropped = &report.statements[3];
    assert_eq!(dropped.findings[0].rule, "adding-required-field");
    assert_eq!(dropped.phase, Some(Phase::Contract));
    assert_eq!(report.statements[2].phase, Some(Phase::Expand));
    assert_eq!(
        rules("ALTER TABLE t ADD COLUMN x int NOT NULL DEFAULT 0, ALTER COLUMN x DROP DEFAULT;"),
        [["adding-required-field"]]
    );
    // A nullable column, one the old version may fill itself, and one of a new table: no
    // insert of the old version depends on their default.
    for sql in [
        "ALTER TABLE t ADD COLUMN y int DEFAULT 0; ALTER TABLE t ALTER COLUMN y DROP DEFAULT;",
        "ALTER TABLE t ALTER COLUMN z DROP DEFAULT; SELECT 1;",
        "CREATE TABLE n (id int); ALTER TABLE n ADD COLUMN x int NOT NULL DEFAULT 0; \
         ALTER TABLE n ALTER COLUMN x DROP DEFAULT;",
    ] {
        assert!(rules(sql).iter().all(Vec::is_empty), "{sql}");
    }
}

#[test]
fn dropping_what_the_migration_made_keeps_no_lock_through_its_transaction() {
    let report = analyze(
        "m",
        "SET lock_timeout = '1s';\n\
         BEGIN;\n\
         CREATE VIEW pending AS SELECT id FROM orders WHERE state = 'new';\n\
         CREATE TABLE batch (id bigint); CREATE INDEX batch_id ON batch (id);\n\
         DROP VIEW pending; DROP INDEX batch_id; TRUNCATE batch;\n\
         UPDATE orders SET state = 'queued' WHERE state = 'new';\n\
         COMMIT;",
    )
    .unwrap();
    let rules: Vec<&str> = report.findings().map(|(_, f)| f.rule.as_str()).collect();
    assert_eq!(rules, ["backfill"]);
}

#[test]
fn a_semicolon_inside_parentheses_ends_no_statement_as_psql_reads_it() {
    let report = analyze(
        "m",
        "SET lock_timeout = '1s';\n\
         CREATE RULE audit AS ON INSERT TO orders DO ALSO\n\
           (INSERT INTO log VALUES (NEW.id); INSERT INTO log VALUES (NEW.id + 1));\n\
         ALTER TABLE orders ADD COLUMN note text;",
    )
    .unwrap();
    let lines: Vec<u64> = report.statements.iter().map(|s| s.line).collect();
    assert_eq!(lines, [1, 2, 4]);
    assert!(
        report.statements[1].sql.ends_with("VALUES (NEW.id + 1))"),
        "{}",
        report.statements[1].sql
    );
    assert!(
        report
            .findings()
            .all(|(_, f)| f.rule != "unparsable-statement")
    );
}

#[test]
fn a_trigger_renamed_locks_its_table_and_a_lock_of_a_new_table_holds_up_nobody() {
    let timeout = |sql: &str| -> Vec<String> {
        analyze("m", sql)
            .unwrap()
            .findings()
            .filter(|(_, f)| f.severity != Severity::Info)
            .map(|(_, f)| f.rule.clone())
            .collect()
    };
    // PostgreSQL 15 renames a trigger under an ACCESS EXCLUSIVE lock of its table.
    assert_eq!(
        timeout("ALTER TRIGGER t_touch ON t RENAME TO t_touched"),
        ["require-lock-timeout"]
    );
    assert_eq!(
        timeout("ALTER TRIGGER t_touch ON t DEPENDS ON EXTENSION plpgsql"),
        Vec::<String>::new()
    );
    let kept = analyze(
        "m",
        "SET lock_timeout = '1s'; BEGIN; ALTER TRIGGER t_touch ON t RENAME TO t_touched; \
         UPDATE t SET c = 1; COMMIT;",
    )
    .unwrap();
    assert_eq!(
        kept.statements[3].findings[0].rule,
        "lock-held-through-transaction"
    );
    // What this migration made nobody uses yet.
    assert_eq!(
        timeout("CREATE TABLE k (id bigint); LOCK TABLE k IN ACCESS EXCLUSIVE MODE"),
        Vec::<String>::new()
    );
    assert_eq!(timeout("LOCK TABLE t"), ["require-lock-timeout"]);
}

#[test]
fn a_cascading_drop_locks_the_tables_of_what_depends_on_it() {
    let timeout = |sql: &str| {
        analyze("m", sql)
            .unwrap()
            .findings()
            .any(|(_, f)| f.rule == "require-lock-timeout")
    };
    // PostgreSQL 15 drops the trigger that calls the function, the column of the domain's or
    // the extension's type, each under an ACCESS EXCLUSIVE lock of its table.
    for sql in [
        "DROP FUNCTION touch() CASCADE",
        "DROP DOMAIN posint CASCADE",
        "DROP EXTENSION citext CASCADE",
    ] {
        assert!(timeout(sql), "{sql}");
        // Without CASCADE, PostgreSQL refuses the drop while anything depends on it.
        assert!(!timeout(&sql.replace(" CASCADE", "")), "{sql}");
    }
    // A function this migration made has nothing in use depending on it.
    assert!(!timeout(
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'; DROP FUNCTION f() CASCADE"
    ));
}

/// A column added with `default` rewrites the table: an error that holds the statement back
/// from every phase.
fn assert_rewrites_the_table(default: &str) {
    let report = analyze(
        "m",
        &format!("SET lock_timeout = '1s'; ALTER TABLE t ADD COLUMN d text DEFAULT {default};"),
    )
    .unwrap();
    let (s, f) = report.findings().next().unwrap();
    assert_eq!(f.rule, "adding-field-with-default", "{default}");
    assert_eq!(f.severity, Severity::Error, "{default}");
    assert_eq!(s.phase, None, "{default}");
}

/// A column of `ty` added with `default` is stored once, in the catalog: no finding.
fn assert_stored_once(ty: &str, default: &str) {
    let found = rules(&format!(
        "ALTER TABLE t ADD COLUMN d {ty} DEFAULT {default};"
    ));
    assert!(found.concat().is_empty(), "{default}: {found:?}");
}

#[test]
fn a_default_computed_from_a_volatile_value_rewrites_the_table() {
    // PostgreSQL evaluates the whole default once per row when any part of it is volatile.
    for default in [
        "encode(gen_random_bytes(16), 'hex')",
        "md5(random()::text)",
        "lpad(nextval('order_no')::text, 8, '0')",
    ] {
        assert_rewrites_the_table(default);
    }
    // Built of constants and stable values, a default is stored once, in the catalog.
    for default in [
        "ARRAY[]::text[]",
        "ARRAY['a', 'b']",
        "timezone('utc'::text, now())",
        "(now() AT TIME ZONE 'utc')",
    ] {
        assert_stored_once("text", default);
    }
}

#[test]
fn a_default_through_substring_floor_or_extract_is_as_volatile_as_its_operands() {
    // The parser reads these SQL-standard functions as forms of their own, not as calls.
    for default in [
        "substr(md5(random()::text), 1, 8)",
        "substring(md5(random()::text) from 1 for 8)",
        "floor(random() * 10)",
        "ceil(random() * 10)",
        "trim(both from gen_random_uuid()::text)",
        "overlay(md5(random()::text) placing 'x' from 1 for 1)",
    ] {
        assert_rewrites_the_table(default);
    }
    // Of stable operands, such a default is stored once, in the catalog.
    for default in [
        "extract(epoch from now())",
        "(extract(epoch from now()) * 1000)::bigint",
        "substring('abcdef' from 2 for 3)",
        "position('a' in 'abc')",
    ] {
        assert_stored_once("bigint", default);
    }
}

#[test]
fn a_default_of_immutable_or_stable_built_ins_is_stored_once() {
    // PostgreSQL marks these immutable or stable: of constant or stable arguments, the default
    // is evaluated once and kept in the catalog, with no rewrite and nothing to warn about.
    for (ty, default) in [
        ("timestamptz", "date_trunc('day', now())"),
        ("text", "to_char(now(), 'YYYY')"),
        ("text", "lower('ABC')"),
        ("text", "lpad('7', 8, '0')"),
        ("text", "md5('x')"),
        ("text", "concat('a', 'b')"),
        ("text", "current_setting('app.region')"),
        ("numeric", "round(1.25, 1)"),
        ("jsonb", "jsonb_build_object('a', 1)"),
        ("date", "make_date(2024, 1, 1)"),
    ] {
        assert_stored_once(ty, default);
    }
    // Built-ins that change something are volatile, and so is what they are given to.
    for default in [
        "set_config('a.b', 'c', false)",
        "lower(set_config('a.b', 'c', false))",
        "currval('s')::text",
    ] {
        assert_rewrites_the_table(default);
    }
}

#[test]
fn a_validation_in_the_alter_table_that_takes_a_lock_scans_under_that_lock() {
    // PostgreSQL validates in the same command, while the lock the other actions took is held.
    for sql in [
        "ALTER TABLE users ADD CONSTRAINT c CHECK (age > 0) NOT VALID, VALIDATE CONSTRAINT c;",
        "ALTER TABLE users ADD CONSTRAINT fk FOREIGN KEY (org_id) REFERENCES orgs (id) NOT VALID, \
         VALIDATE CONSTRAINT fk;",
        "ALTER TABLE users ADD COLUMN note text, VALIDATE CONSTRAINT c;",
    ] {
        assert_eq!(rules(sql), [["constraint-missing-not-valid"]], "{sql}");
        let report = analyze("m", &format!("SET lock_timeout = '1s'; {sql}")).unwrap();
        assert_eq!(report.safety(), Safety::Unsafe, "{sql}");
    }
    // Alone, or with what takes the same weak lock, the validation lets reads and writes go on.
    for sql in [
        "ALTER TABLE users VALIDATE CONSTRAINT c;",
        "ALTER TABLE users VALIDATE CONSTRAINT c, VALIDATE CONSTRAINT d;",
        "ALTER TABLE users VALIDATE CONSTRAINT c, SET (autovacuum_enabled = false);",
        "CREATE TABLE n (a int); ALTER TABLE n ADD CONSTRAINT c CHECK (a > 0) NOT VALID, \
         VALIDATE CONSTRAINT c;",
    ] {
        assert!(rules(sql).concat().is_empty(), "{sql}: {:?}", rules(sql));
    }
}

#[test]
fn a_lock_timeout_set_under_a_quoted_name_counts() {
    for set in ["SET \"lock_timeout\" = '1s'", "SET LOCK_TIMEOUT TO '1s'"] {
        let report = analyze("m", &format!("{set}; ALTER TABLE t ADD COLUMN c bigint;")).unwrap();
        let found: Vec<_> = report.findings().map(|(_, f)| f.rule.clone()).collect();
        assert!(found.is_empty(), "{set}: {found:?}");
    }
}

#[test]
fn a_lock_timeout_too_long_to_protect_traffic_is_reported_where_it_is_set() {
    for value in ["'1h'", "'11s'", "'2min'", "600000"] {
        let sql = format!("SET lock_timeout = {value}; ALTER TABLE t ADD COLUMN c bigint;");
        let report = analyze("m", &sql).unwrap();
        let found: Vec<_> = report
            .statements
            .iter()
            .map(|s| {
                s.findings
                    .iter()
                    .map(|f| f.rule.as_str())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(found, [vec!["require-lock-timeout"], vec![]], "{value}");
        let message = &report.statements[0].findings[0].message;
        assert!(message.contains(value), "{message}");
    }
    for value in ["'10s'", "'500ms'", "10000", "'0.1min'"] {
        let sql = format!("SET lock_timeout = {value}; ALTER TABLE t ADD COLUMN c bigint;");
        let report = analyze("m", &sql).unwrap();
        assert_eq!(report.findings().count(), 0, "{value}");
    }
}

#[test]
fn a_column_added_by_the_same_migration_is_renamed_or_dropped_freely() {
    for sql in [
        "ALTER TABLE t ADD COLUMN c int;\nALTER TABLE t RENAME COLUMN c TO d;",
        "ALTER TABLE t ADD COLUMN c int;\nALTER TABLE t DROP COLUMN c;",
        "ALTER TABLE t ADD COLUMN c int;\nALTER TABLE t RENAME c TO d;\nALTER TABLE t DROP d;",
    ] {
        let found = rules(sql);
        assert!(found[1..].iter().all(Vec::is_empty), "{sql}: {found:?}");
    }
    // A column in use among them, or one dropped and added again, is still reported.
    let found =
        rules("ALTER TABLE t ADD COLUMN c int;\nALTER TABLE t DROP COLUMN c, DROP COLUMN e;");
    assert_eq!(found[1], ["ban-drop-column"]);
    let found = rules("ALTER TABLE t ADD COLUMN c int;\nALTER TABLE u RENAME COLUMN c TO d;");
    assert_eq!(found[1], ["renaming-column"]);
    let found =
        rules("BEGIN;\nALTER TABLE t ADD COLUMN c int;\nROLLBACK;\nALTER TABLE t DROP COLUMN c;");
    assert_eq!(found[3], ["ban-drop-column"]);
}

#[test]
fn columns_added_by_the_same_migration_follow_their_table_s_rename() {
    for sql in [
        "ALTER TABLE t ADD COLUMN c int;\nALTER TABLE t RENAME TO u;\nALTER TABLE u RENAME c TO d;",
        "ALTER TABLE t ADD COLUMN c int;\nALTER TABLE t RENAME TO u;\nALTER TABLE u DROP c;",
        "CREATE TABLE n (c int);\nALTER TABLE n RENAME TO m;\nALTER TABLE m DROP c;",
        "ALTER TABLE t ADD COLUMN c int;\nALTER TABLE t SET SCHEMA s;\nALTER TABLE s.t DROP c;",
    ] {
        let found = rules(sql);
        assert_eq!(found[2], Vec::<String>::new(), "{sql}");
    }
    let found = rules(
        "ALTER TABLE t ADD COLUMN x int NOT NULL DEFAULT 0;\nALTER TABLE t RENAME TO u;\n\
         ALTER TABLE u ALTER COLUMN x DROP DEFAULT;",
    );
    assert_eq!(found[2], ["adding-required-field"]);
    // The table in use that takes the name afterwards has no such columns.
    for sql in [
        "ALTER TABLE t ADD COLUMN c int;\nALTER TABLE t RENAME TO u;\nALTER TABLE v RENAME TO t;\n\
         ALTER TABLE t DROP c;",
        "ALTER TABLE t ADD COLUMN c int;\nDROP TABLE t;\nALTER TABLE v RENAME TO t;\n\
         ALTER TABLE t DROP c;",
    ] {
        let found = rules(sql);
        assert_eq!(found[3], ["ban-drop-column"], "{sql}");
    }
    let found = rules(
        "ALTER TABLE t ADD COLUMN x int NOT NULL DEFAULT 0;\nALTER TABLE t RENAME TO u;\n\
         ALTER TABLE v RENAME TO t;\nALTER TABLE t ALTER COLUMN x DROP DEFAULT;",
    );
    assert_eq!(found[3], Vec::<String>::new());
}

#[test]
fn a_negated_is_null_check_proves_not_null() {
    let mut schema = Schema::default();
    schema.learn(
        "CREATE TABLE t (id int, c int);\n\
         ALTER TABLE t ADD CONSTRAINT c_set CHECK (NOT (c IS NULL));",
    );
    let found = rules_after(&schema, "ALTER TABLE t ALTER COLUMN c SET NOT NULL;");
    assert_eq!(found, [Vec::<String>::new()]);
}

#[test]
fn a_check_dropped_in_the_same_alter_table_no_longer_proves_not_null() {
    let mut schema = Schema::default();
    schema.learn(
        "CREATE TABLE t (id int, c int);\n\
         ALTER TABLE t ADD CONSTRAINT c_set CHECK (c IS NOT NULL) NOT VALID;\n\
         ALTER TABLE t VALIDATE CONSTRAINT c_set;",
    );
    // PostgreSQL runs an ALTER TABLE's drops before its other actions, whatever their order
    // (at DEBUG1 it says "verifying table" for both).
    for sql in [
        "ALTER TABLE t ALTER COLUMN c SET NOT NULL, DROP CONSTRAINT c_set;",
        "ALTER TABLE t DROP CONSTRAINT c_set, ALTER COLUMN c SET NOT NULL;",
    ] {
        assert_eq!(
            rules_after(&schema, sql),
            [["adding-not-nullable-field"]],
            "{sql}"
        );
    }
    // Another check dropped beside it leaves the proof standing.
    schema.learn("ALTER TABLE t ADD CONSTRAINT c_positive CHECK (c > 0);");
    let found = rules_after(
        &schema,
        "ALTER TABLE t ALTER COLUMN c SET NOT NULL, DROP CONSTRAINT c_positive;",
    );
    assert_eq!(found, [Vec::<String>::new()]);
}

#[test]
fn adding_a_column_that_exists_if_not_exists_does_nothing() {
    let mut schema = Schema::default();
    schema.learn("CREATE TABLE t (id int, c int)");
    let found = rules_after(
        &schema,
        "ALTER TABLE t ADD COLUMN IF NOT EXISTS c int NOT NULL DEFAULT random();",
    );
    assert_eq!(found, [Vec::<String>::new()]);
    // A column not known is added, and judged.
    let found = rules_after(
        &schema,
        "ALTER TABLE t ADD COLUMN IF NOT EXISTS d int NOT NULL DEFAULT random();",
    );
    assert_eq!(found, [["adding-field-with-default"]]);
}

#[test]
fn a_case_default_is_as_volatile_as_its_branches() {
    let report = analyze(
        "m",
        "SET lock_timeout = '1s';\n\
         ALTER TABLE t ADD COLUMN c text DEFAULT CASE WHEN random() < 0.5 THEN 'a' ELSE 'b' END;",
    )
    .unwrap();
    let (_, f) = report.findings().next().unwrap();
    assert_eq!(
        (f.rule.as_str(), f.severity),
        ("adding-field-with-default", Severity::Error)
    );
    let found = rules("ALTER TABLE t ADD COLUMN c text DEFAULT CASE WHEN 1 < 2 THEN 'a' END;");
    assert_eq!(found, [Vec::<String>::new()]);
}

#[test]
fn a_quoted_function_name_in_a_default_is_the_function_it_names() {
    // `"gen_random_uuid"()` calls gen_random_uuid(), as PostgreSQL folds only unquoted names.
    let report = analyze(
        "m",
        "SET lock_timeout = '1s';\n\
         ALTER TABLE t ADD COLUMN id uuid DEFAULT \"gen_random_uuid\"();",
    )
    .unwrap();
    let (s, f) = report.findings().next().unwrap();
    assert_eq!(
        (f.rule.as_str(), f.severity),
        ("adding-field-with-default", Severity::Error)
    );
    assert_eq!(s.phase, None);
    let found = rules("ALTER TABLE t ADD COLUMN at timestamptz DEFAULT pg_catalog.\"now\"();");
    assert_eq!(found, [Vec::<String>::new()]);
}

#[test]
fn truncate_cascade_empties_the_tables_that_reference_it() {
    // A table this migration made may still be referenced by one in use, through a foreign
    // key the migration added: CASCADE empties that one too.
    let found = rules(
        "CREATE TABLE n (id int PRIMARY KEY);\n\
         ALTER TABLE users ADD CONSTRAINT users_n FOREIGN KEY (n_id) REFERENCES n (id) NOT VALID;\n\
         TRUNCATE n CASCADE;",
    );
    assert_eq!(found.last().unwrap(), &["ban-truncate-cascade"]);
    let found = rules("TRUNCATE users CASCADE;");
    assert_eq!(found, [["ban-truncate", "ban-truncate-cascade"]]);
    // Without CASCADE, PostgreSQL refuses to empty a table that another references.
    let found = rules("CREATE TABLE n (id int); TRUNCATE n RESTRICT;");
    assert_eq!(found.last().unwrap(), &Vec::<String>::new());
}

#[test]
fn a_column_assigned_twice_fails_the_migration() {
    // PostgreSQL refuses the statement: "multiple assignments to same column".
    let report = analyze(
        "m",
        "SET lock_timeout = '1s';\n\
         CREATE TABLE n (a bigint, b bigint);\n\
         UPDATE n SET a = 1, \"b\" = 2, A = 3;",
    )
    .unwrap();
    let (s, f) = report.findings().next().unwrap();
    assert_eq!(
        (f.rule.as_str(), f.severity, s.number),
        ("ban-duplicate-column-assignments", Severity::Error, 3)
    );
    // Named as written where it comes again.
    assert!(
        f.message.starts_with("n.A is assigned twice"),
        "{}",
        f.message
    );
    let found = rules("CREATE TABLE n (a int); INSERT INTO n (a, \"a\") VALUES (1, 2);");
    assert_eq!(found.last().unwrap(), &["ban-duplicate-column-assignments"]);
    for sql in [
        "INSERT INTO n (a) VALUES (1) ON CONFLICT (a) DO UPDATE SET b = 1, b = 2",
        "UPDATE n SET (a, b) = (1, 2), b = 3",
    ] {
        let found = rules(&format!("CREATE TABLE n (a int UNIQUE, b int); {sql};"));
        assert_eq!(
            found.last().unwrap(),
            &["ban-duplicate-column-assignments"],
            "{sql}"
        );
    }
    // Quoted names that differ in case are different columns.
    let found = rules("CREATE TABLE n (a int, \"A\" int); UPDATE n SET a = 1, \"A\" = 2;");
    assert_eq!(found.last().unwrap(), &Vec::<String>::new());
}

#[test]
fn a_name_longer_than_postgresql_keeps_is_reported() {
    // PostgreSQL cuts names to 63 bytes without an error: these two become one index, and
    // IF NOT EXISTS skips the second.
    let long = "index_on_users_email_lower_where_deleted_at_is_null_for_login_v1";
    assert_eq!(long.len(), 64);
    let report = analyze(
        "m",
        &format!(
            "SET lock_timeout = '1s';\n\
             CREATE INDEX CONCURRENTLY IF NOT EXISTS {long} ON users (lower(email));\n\
             CREATE INDEX CONCURRENTLY IF NOT EXISTS \"{long}\" ON users (email);"
        ),
    )
    .unwrap();
    for s in &report.statements[1..] {
        let f = s
            .findings
            .iter()
            .find(|f| f.rule == "identifier-too-long")
            .unwrap_or_else(|| panic!("{s:?}"));
        assert_eq!(f.severity, Severity::Warn);
        assert!(f.message.contains(&long[..63]), "{}", f.message);
    }
    // 63 bytes is what PostgreSQL keeps whole.
    let found = rules(&format!(
        "CREATE INDEX CONCURRENTLY {} ON users (email);",
        &long[..63]
    ));
    assert_eq!(found, [Vec::<String>::new()]);
}

#[test]
fn a_type_spelled_another_way_is_no_change_of_type() {
    // pg_dump writes `integer`, `boolean` and `double precision`; a migration may write the
    // same types as `int4`, `bool` and `float8`, and ORMs restate a column's type with USING.
    let mut schema = Schema::default();
    schema.learn(
        "CREATE TABLE t (a integer, b bigint, c smallint, d boolean, e double precision, \
         f real, g character(2), h numeric(10, 2));",
    );
    for sql in [
        "ALTER TABLE t ALTER COLUMN a TYPE int4",
        "ALTER TABLE t ALTER COLUMN a TYPE int",
        "ALTER TABLE t ALTER COLUMN a TYPE int4 USING a::int",
        "ALTER TABLE t ALTER COLUMN b TYPE int8",
        "ALTER TABLE t ALTER COLUMN c TYPE int2",
        "ALTER TABLE t ALTER COLUMN d TYPE bool",
        "ALTER TABLE t ALTER COLUMN e TYPE float8",
        "ALTER TABLE t ALTER COLUMN e TYPE float",
        "ALTER TABLE t ALTER COLUMN f TYPE float4",
        "ALTER TABLE t ALTER COLUMN g TYPE char(2)",
        "ALTER TABLE t ALTER COLUMN h TYPE decimal(10, 2)",
    ] {
        let found = rules_after(&schema, &format!("{sql};"));
        assert_eq!(found, [Vec::<String>::new()], "{sql}");
    }
    // Another type still rewrites the table.
    for sql in [
        "ALTER TABLE t ALTER COLUMN a TYPE int8",
        "ALTER TABLE t ALTER COLUMN f TYPE float8",
        "ALTER TABLE t ALTER COLUMN g TYPE char(3)",
    ] {
        let found = rules_after(&schema, &format!("{sql};"));
        assert_eq!(found, [["changing-column-type"]], "{sql}");
    }
}

#[test]
fn a_data_change_written_with_a_with_clause_is_a_data_change() {
    // The parser reads a statement that begins WITH as a query, whatever its body does.
    for change in [
        "WITH b AS (SELECT id FROM users WHERE c IS NULL LIMIT 1000) \
         UPDATE users SET c = 1 FROM b WHERE users.id = b.id",
        "WITH d AS (DELETE FROM users WHERE id < 10 RETURNING 1) SELECT count(*) FROM d",
        "WITH u AS (UPDATE users SET c = 1 RETURNING id) SELECT count(*) FROM u",
    ] {
        let found = rules(&format!("{change};"));
        assert_eq!(found, [["backfill"]], "{change}");
        // After a lock in the same transaction, it keeps the table blocked while it runs.
        let found = rules(&format!(
            "BEGIN; ALTER TABLE users ADD COLUMN c int; {change}; COMMIT;"
        ));
        assert_eq!(
            found[2],
            ["lock-held-through-transaction", "backfill"],
            "{change}"
        );
    }
    let found = rules("WITH u AS (UPDATE users SET c = 1, c = 2 RETURNING id) SELECT 1 FROM u;");
    assert_eq!(found, [["ban-duplicate-column-assignments", "backfill"]]);
    // A plain query changes nothing.
    let found = rules("WITH n AS (SELECT count(*) FROM users) SELECT * FROM n;");
    assert_eq!(found, [Vec::<String>::new()]);
}

#[test]
fn a_value_of_an_enum_the_migration_made_is_renamed_freely() {
    let found = rules(
        "CREATE TYPE mood AS ENUM ('ok', 'sad');\n\
         ALTER TYPE mood RENAME VALUE 'ok' TO 'fine';",
    );
    assert_eq!(found.last().unwrap(), &Vec::<String>::new());
    let found = rules("ALTER TYPE mood RENAME VALUE 'ok' TO 'fine';");
    assert_eq!(found, [["renaming-enum-value"]]);
}

#[test]
fn generated_always_on_a_column_in_use_waits_for_the_old_versions_inserts_to_stop() {
    let mut schema = Schema::default();
    schema.learn("CREATE TABLE users (id bigint NOT NULL, email text);");
    for sql in [
        "ALTER TABLE users ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY;",
        "ALTER TABLE users ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (START WITH 1000);",
        "ALTER TABLE users ALTER COLUMN id SET GENERATED ALWAYS;",
    ] {
        let report =
            analyze_after("m", &format!("SET lock_timeout = '1s';\n{sql}"), &schema).unwrap();
        let statement = &report.statements[1];
        let finding = &statement.findings[0];
        assert_eq!(
            (finding.rule.as_str(), statement.phase),
            ("adding-generated-always", Some(Phase::Contract)),
            "{sql}: {report:?}"
        );
        assert!(
            finding
                .message
                .contains("users.id becomes GENERATED ALWAYS"),
            "{}",
            finding.message
        );
    }
    // BY DEFAULT takes the values given, and a new table's column is nobody's yet.
    for sql in [
        "ALTER TABLE users ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY;",
        "ALTER TABLE users ALTER COLUMN id SET GENERATED BY DEFAULT;",
        "CREATE TABLE t (id bigint NOT NULL); \
         ALTER TABLE t ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY;",
    ] {
        assert!(
            rules_after(&schema, sql).iter().all(Vec::is_empty),
            "{sql}: {:?}",
            rules_after(&schema, sql)
        );
    }
}
