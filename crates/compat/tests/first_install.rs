//! A first install: nothing of the service runs, so no old version reads its tables and no
//! traffic waits on their locks. Its migration history is judged for what fails whatever runs
//! (a statement its runner cannot run, say); what would hurt a running version or its traffic is
//! reported as a note, not a block.

use crate::catalog_support;

use catalog_support::{check, load};
use serin_compat::{Severity, Verdict};

fn catalog(index: &str) -> String {
    format!(
        "registry:\n  services:\n    api:\n      releases:\n\
\x20       - {{version: 1.0.0, migrations: [{{name: '0001', sql: 'CREATE TABLE t (id bigint, name text);'}}]}}\n\
\x20       - {{version: 1.1.0, migrations: [{index}]}}\n"
    )
}

#[test]
fn a_history_of_locking_migrations_does_not_block_a_first_install() {
    let validator = load(&catalog(
        "{name: '0002', sql: \"SET lock_timeout = '1s'; CREATE INDEX t_name ON t (name);\"}",
    ));
    let result = check(&validator, "{}", &[("api", "1.1.0")]);
    assert_eq!(result.verdict, Verdict::Ok, "{result}");
    let lock = result
        .findings
        .iter()
        .find(|f| f.code == "sql.require-concurrent-index-creation")
        .unwrap_or_else(|| panic!("{result}"));
    assert_eq!(lock.severity, Severity::Info, "{result}");
    assert!(lock.message.contains("nothing of api runs yet"), "{lock:?}");
    // Upgrading from 1.0.0, the same migration runs under traffic: it blocks.
    let result = check(&validator, "api: 1.0.0", &[("api", "1.1.0")]);
    assert_eq!(result.verdict, Verdict::Blocked, "{result}");
}

#[test]
fn a_statement_that_fails_whatever_runs_still_blocks_a_first_install() {
    let validator = load(&catalog(
        "{name: '0002', runner: sqlx, sql: 'CREATE INDEX CONCURRENTLY t_name ON t (name);'}",
    ));
    let result = check(&validator, "{}", &[("api", "1.1.0")]);
    assert_eq!(result.verdict, Verdict::Blocked, "{result}");
    assert!(
        result.findings.iter().any(|f| f.code
            == "sql.ban-concurrent-index-creation-in-transaction"
            && f.severity == Severity::Error),
        "{result}"
    );
}

/// The opt-in rules a catalog turns on for a migration say what goes wrong whatever runs (a
/// statement that fails when the migration is run again, a table the `search_path` picks):
/// they are not downgraded to notes on a first install.
#[test]
fn opt_in_rules_a_migration_turns_on_keep_their_severity_on_a_first_install() {
    let validator = load(&catalog(
        "{name: '0002', enableRules: [prefer-robust-stmts, require-table-schema], \
         sql: 'CREATE TABLE u (id bigint); ALTER TABLE u ADD COLUMN name text;'}",
    ));
    let result = check(&validator, "{}", &[("api", "1.1.0")]);
    for rule in ["sql.prefer-robust-stmts", "sql.require-table-schema"] {
        let finding = result
            .findings
            .iter()
            .find(|f| f.code == rule)
            .unwrap_or_else(|| panic!("{rule}: {result}"));
        assert!(finding.severity > Severity::Info, "{finding:?}");
        assert!(!finding.message.contains("runs yet"), "{finding:?}");
    }
}
