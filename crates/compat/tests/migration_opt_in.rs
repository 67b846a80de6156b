//! The rules a caller turns on ([`Options`]): squawk's `require-statement-timeout` (or its alias
//! `require-timeout-settings`), `prefer-robust-stmts` and `require-table-schema`. Off by
//! default, they change nothing of a report; a name that is no opt-in rule is refused, naming
//! it.

use serin_compat::Severity;
use serin_compat::migration::{
    OPT_IN_RULES, Options, RunBy, Runner, Safety, Schema, SqlFinding, analyze, analyze_with,
};

fn enabled(rules: &[&str]) -> Options {
    Options {
        enable: rules.iter().map(|r| (*r).to_owned()).collect(),
    }
}

/// The findings of `rule` in each statement of `sql`, analysed with `options`.
fn found(sql: &str, options: &Options, rule: &str) -> Vec<Vec<SqlFinding>> {
    found_by(sql, None, options, rule)
}

fn found_by(sql: &str, run: Option<RunBy>, options: &Options, rule: &str) -> Vec<Vec<SqlFinding>> {
    let report = analyze_with("m", sql, &Schema::default(), run, options).unwrap();
    report
        .statements
        .iter()
        .map(|s| {
            s.findings
                .iter()
                .filter(|f| f.rule == rule)
                .cloned()
                .collect()
        })
        .collect()
}

#[test]
fn without_options_the_report_is_the_same() {
    let sql = "SET lock_timeout = '1s';\nALTER TABLE items ADD COLUMN c text;\nDROP TABLE old;";
    assert_eq!(
        analyze_with("m", sql, &Schema::default(), None, &Options::default()).unwrap(),
        analyze("m", sql).unwrap()
    );
    for rule in OPT_IN_RULES {
        assert!(
            found(sql, &Options::default(), rule)
                .iter()
                .all(Vec::is_empty),
            "{rule}"
        );
    }
}

#[test]
fn a_strong_lock_without_a_statement_timeout_is_reported_once() {
    let rule = "require-statement-timeout";
    for options in [enabled(&[rule]), enabled(&["require-timeout-settings"])] {
        let got = found(
            "SET lock_timeout = '1s';\n\
             ALTER TABLE items ALTER COLUMN c SET DEFAULT 0;\n\
             ALTER TABLE items ADD COLUMN d text;",
            &options,
            rule,
        );
        assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), [0, 1, 0]);
        let f = &got[1][0];
        assert_eq!((f.severity, f.safety), (Severity::Warn, Safety::Safe));
        assert!(f.message.contains("statement_timeout"), "{}", f.message);
        assert!(f.recipe.contains("SET statement_timeout"), "{}", f.recipe);
    }
}

#[test]
fn a_statement_timeout_set_first_passes_and_one_turned_off_is_required_again() {
    let options = enabled(&["require-statement-timeout"]);
    let got = found(
        "SET lock_timeout = '1s';\n\
         ALTER TABLE items ADD COLUMN c text;\n\
         SET statement_timeout = '5s';\n\
         ALTER TABLE items ADD COLUMN d text;\n\
         SET statement_timeout = 0;\n\
         CREATE INDEX CONCURRENTLY items_d ON items (d);\n\
         ALTER TABLE items ADD COLUMN e text;",
        &options,
        "require-statement-timeout",
    );
    // The concurrent build takes no strong lock; the ALTER after the timeout is off does.
    assert_eq!(
        got.iter().map(Vec::len).collect::<Vec<_>>(),
        [0, 1, 0, 0, 0, 0, 1]
    );
    // `SET LOCAL` in a transaction lasts until it ends.
    let got = found(
        "SET lock_timeout = '1s';\n\
         BEGIN;\n\
         SET LOCAL statement_timeout = '5s';\n\
         ALTER TABLE items ADD COLUMN d text;\n\
         COMMIT;\n\
         ALTER TABLE items ADD COLUMN e text;",
        &options,
        "require-statement-timeout",
    );
    assert_eq!(
        got.iter().map(Vec::len).collect::<Vec<_>>(),
        [0, 0, 0, 0, 0, 1]
    );
}

#[test]
fn a_table_named_without_its_schema_is_reported_where_it_is_named() {
    let rule = "require-table-schema";
    let options = enabled(&[rule]);
    let got = found(
        "CREATE TABLE posts (id bigint);\n\
         ALTER TABLE posts ADD COLUMN name text;\n\
         CREATE TABLE copy AS SELECT 1;\n\
         DROP TABLE public.old, posts;\n\
         CREATE TEMP TABLE scratch (id int);\n\
         CREATE TABLE public.ok (id bigint);\n\
         ALTER TABLE public.ok ADD COLUMN c text;",
        &options,
        rule,
    );
    assert_eq!(
        got.iter().map(Vec::len).collect::<Vec<_>>(),
        [1, 1, 1, 1, 0, 0, 0]
    );
    for (f, table) in got
        .iter()
        .flatten()
        .zip(["posts", "posts", "copy", "posts"])
    {
        assert_eq!((f.severity, f.safety), (Severity::Warn, Safety::Safe));
        assert!(
            f.message.contains(&format!("{table} ")) && f.message.contains("search_path"),
            "{}",
            f.message
        );
        assert!(
            f.recipe.contains(&format!("public.{table}")),
            "{}",
            f.recipe
        );
    }
}

#[test]
fn an_opt_in_rule_reviewed_by_hand_is_silenced_by_its_name() {
    let report = analyze_with(
        "m",
        "-- serin:ignore-file require-table-schema\nCREATE TABLE posts (id bigint);",
        &Schema::default(),
        None,
        &enabled(&["require-table-schema"]),
    )
    .unwrap();
    let (_, f) = report.findings().next().unwrap();
    assert!(f.ignored, "{f:?}");
    assert_eq!(report.findings().count(), 1);
}

#[test]
fn a_name_that_is_no_opt_in_rule_is_refused() {
    for (name, why) in [
        ("require-table-schemas", "no opt-in rule"),
        ("ban-drop-column", "always on"),
    ] {
        let err = analyze_with(
            "m",
            "SELECT 1",
            &Schema::default(),
            None,
            &enabled(&["require-table-schema", name]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("enable[1]"), "{err}");
        assert!(err.contains(name), "{err}");
        assert!(err.contains(why), "{err}");
    }
}

#[test]
fn options_are_read_from_their_documented_form_only() {
    let options: Options = serde_json::from_str(r#"{"enable": ["require-table-schema"]}"#).unwrap();
    assert_eq!(options, enabled(&["require-table-schema"]));
    let err = serde_json::from_str::<Options>(r#"{"enabled": []}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("enabled"), "{err}");
}

const ROBUST: &str = "prefer-robust-stmts";

#[test]
fn outside_a_transaction_a_statement_that_fails_when_run_again_is_reported() {
    let options = enabled(&[ROBUST]);
    let cases = [
        ("SET lock_timeout = '1s'", None),
        (
            "CREATE TABLE posts (id bigint)",
            Some("CREATE TABLE IF NOT EXISTS posts"),
        ),
        (
            "ALTER TABLE items ADD COLUMN email text",
            Some("ADD COLUMN IF NOT EXISTS email"),
        ),
        (
            "CREATE INDEX CONCURRENTLY items_email ON items (email)",
            Some("DROP INDEX CONCURRENTLY IF EXISTS items_email"),
        ),
        (
            "ALTER TABLE items DROP COLUMN old",
            Some("DROP COLUMN IF EXISTS old"),
        ),
        (
            "DROP INDEX CONCURRENTLY items_old",
            Some("DROP INDEX CONCURRENTLY IF EXISTS items_old"),
        ),
        ("DROP TABLE legacy", Some("DROP TABLE IF EXISTS legacy")),
        ("DROP TYPE mood", Some("DROP TYPE IF EXISTS mood")),
        (
            "ALTER TABLE items DROP CONSTRAINT items_c",
            Some("DROP CONSTRAINT IF EXISTS items_c"),
        ),
        (
            "ALTER TABLE items ADD CONSTRAINT items_fk FOREIGN KEY (u) REFERENCES u (id) NOT VALID",
            Some("DROP CONSTRAINT IF EXISTS items_fk"),
        ),
    ];
    let sql: Vec<&str> = cases.iter().map(|(sql, _)| *sql).collect();
    let got = found(&sql.join(";\n"), &options, ROBUST);
    for ((sql, fix), got) in cases.iter().zip(&got) {
        match fix {
            None => assert!(got.is_empty(), "{sql}: {got:?}"),
            Some(fix) => {
                let [f] = got.as_slice() else {
                    panic!("{sql}: {got:?}");
                };
                assert_eq!((f.severity, f.safety), (Severity::Warn, Safety::Safe));
                assert!(f.message.contains("runs again"), "{sql}: {}", f.message);
                assert!(f.recipe.contains(fix), "{sql}: {}", f.recipe);
            }
        }
    }
}

#[test]
fn statements_guarded_or_that_run_again_as_they_are_pass() {
    let got = found(
        "SET lock_timeout = '1s';\n\
         CREATE TABLE IF NOT EXISTS posts (id bigint);\n\
         ALTER TABLE items ADD COLUMN IF NOT EXISTS email text;\n\
         DROP INDEX CONCURRENTLY IF EXISTS items_email;\n\
         CREATE INDEX CONCURRENTLY items_email ON items (email);\n\
         CREATE INDEX CONCURRENTLY ON items (email);\n\
         ALTER TABLE items DROP COLUMN IF EXISTS old;\n\
         DROP TABLE IF EXISTS legacy;\n\
         DROP TYPE IF EXISTS mood;\n\
         ALTER TABLE items DROP CONSTRAINT IF EXISTS items_fk;\n\
         ALTER TABLE items ADD CONSTRAINT items_fk FOREIGN KEY (u) REFERENCES u (id) NOT VALID;\n\
         ALTER TABLE items VALIDATE CONSTRAINT items_fk;\n\
         ALTER TABLE items ALTER COLUMN c SET DEFAULT 0;\n\
         CREATE TEMP TABLE scratch (id int) ON COMMIT DROP;",
        &enabled(&[ROBUST]),
        ROBUST,
    );
    assert!(got.iter().all(Vec::is_empty), "{got:?}");
    // The constraint dropped once is added back once: a second add fails on a rerun.
    let got = found(
        "ALTER TABLE items DROP CONSTRAINT IF EXISTS items_u;\n\
         ALTER TABLE items ADD CONSTRAINT items_u UNIQUE USING INDEX items_u_i;\n\
         ALTER TABLE items ADD CONSTRAINT items_u UNIQUE USING INDEX items_u_i;",
        &enabled(&[ROBUST]),
        ROBUST,
    );
    assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), [0, 0, 1]);
}

#[test]
fn a_migration_in_one_transaction_or_of_one_statement_runs_again_whole() {
    let options = enabled(&[ROBUST]);
    let sql = "CREATE TABLE posts (id bigint);\nALTER TABLE items ADD COLUMN email text;";
    let wrapped = format!("BEGIN;\n{sql}\nCOMMIT;");
    assert!(found(&wrapped, &options, ROBUST).iter().all(Vec::is_empty));
    // The runner's own transaction counts as the file's.
    let by_sqlx = found_by(sql, Some(Runner::Sqlx.into()), &options, ROBUST);
    assert!(by_sqlx.iter().all(Vec::is_empty), "{by_sqlx:?}");
    // A statement alone is atomic, but for a concurrent index build, which leaves its index
    // behind when it fails.
    assert!(found("DROP TABLE legacy", &options, ROBUST)[0].is_empty());
    let alone = found("CREATE INDEX CONCURRENTLY i ON items (c)", &options, ROBUST);
    assert_eq!(alone[0].len(), 1, "{alone:?}");
    assert!(!alone[0][0].recipe.contains("transaction"), "{alone:?}");
    // After the commit, a failure leaves the transaction's work applied.
    let got = found(&format!("{wrapped}\nDROP TABLE legacy;"), &options, ROBUST);
    assert_eq!(
        got.iter().map(Vec::len).collect::<Vec<_>>(),
        [0, 0, 0, 0, 1]
    );
}
