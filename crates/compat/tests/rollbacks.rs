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

/// `api` 1.1.0 adds endpoint `list` to `orders`; `web`, with `consumer`, calls `orders` at the
/// version it names.
fn endpoints(consumer: Option<&str>) -> String {
    let web = consumer.map_or_else(String::new, |req| {
        format!(
            "    web:\n      releases:\n\
             \x20       - {{version: 1.0.0, consumes: [{{api: orders, version: \"{req}\"}}]}}\n"
        )
    });
    format!(
        "registry:\n  services:\n    api:\n      releases:\n\
         \x20       - {{version: 1.0.0, provides: [{{name: orders, version: 1.0.0, endpoints: [{{name: get}}]}}]}}\n\
         \x20       - {{version: 1.1.0, provides: [{{name: orders, version: 1.1.0, endpoints: [{{name: get}}, {{name: list}}]}}]}}\n\
         {web}"
    )
}

#[test]
fn a_rollback_warns_of_what_the_newer_version_added_and_blocks_only_for_consumers_that_need_it() {
    // No consumer the registry knows needs `list`: going back takes it from the clients that
    // began to use it since 1.1.0, which is a warning, not a reason to keep a bad version up.
    let validator = load(&endpoints(None));
    let result = check(&validator, "api: 1.1.0", &[("api", "1.0.0")]);
    assert_eq!(result.verdict, Verdict::OkWithWarnings, "{result}");
    assert_eq!(codes(&result), ["breaking.endpoint-removed"], "{result}");
    assert!(
        result.findings[0]
            .message
            .contains("a rollback from 1.1.0 to 1.0.0"),
        "{result}"
    );
    // A consumer that needs orders 1.1 is still protected: the rollback is blocked.
    let validator = load(&endpoints(Some("^1.1")));
    let result = check(&validator, "api: 1.1.0\nweb: 1.0.0", &[("api", "1.0.0")]);
    assert_eq!(result.verdict, Verdict::Blocked, "{result}");
    // One that works with orders 1.0 is not.
    let validator = load(&endpoints(Some("^1.0")));
    let result = check(&validator, "api: 1.1.0\nweb: 1.0.0", &[("api", "1.0.0")]);
    assert_eq!(result.verdict, Verdict::OkWithWarnings, "{result}");
}
