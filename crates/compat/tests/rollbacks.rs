//! Moves back to an older release: what the state after them needs.

use crate::catalog_support;

use catalog_support::{check, codes, load};
use serin_compat::Verdict;
use serin_compat::steps::StepKind;

const SCHEMAS: &str = "registry:\n  services:\n    api:\n      releases:\n\
\x20       - {version: 1.0.0, schemaVersion: 4, migrations: [{name: '0004', sql: 'CREATE TABLE t (id bigint);'}]}\n\
\x20       - {version: 2.0.0, schemaVersion: 5, migrations: [{name: '0005', sql: \"SET lock_timeout = '1s'; ALTER TABLE t ADD COLUMN b text;\"}]}\n";

#[test]
fn a_rollback_to_an_older_schema_says_the_database_stays_ahead() {
    let validator = load(SCHEMAS);
    let result = check(&validator, "api: 2.0.0", &[("api", "1.0.0")]);
    assert_eq!(result.verdict, Verdict::OkWithWarnings, "{result}");
    assert_eq!(codes(&result), ["registry.schema-rollback"], "{result}");
    assert_eq!(
        result.findings[0].message,
        "api 1.0.0 needs schema version 4, but the database is at 5: a rollback does not undo \
         migrations, so 1.0.0 must work on schema 5, or the database be restored from a backup \
         taken before it moved to 5"
    );
    assert!(
        result.steps.iter().any(|s| s.kind == StepKind::Backup),
        "{result}"
    );
}
