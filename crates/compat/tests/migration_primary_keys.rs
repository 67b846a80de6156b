//! A primary key added to a table in use, as squawk's `adding-serial-primary-key-field` judges
//! it: `ADD PRIMARY KEY (...)`, `ADD CONSTRAINT ... PRIMARY KEY (...)` and `ADD COLUMN ...
//! PRIMARY KEY` build the key's index under an ACCESS EXCLUSIVE lock, blocking reads and writes
//! for as long as the build takes; a key made `USING INDEX` of an index built concurrently
//! takes the lock only for a moment. A table the migration made is nobody's yet.

use serin_compat::Severity;
use serin_compat::migration::{Phase, Safety, Schema, SqlFinding, analyze, analyze_after};

const RULE: &str = "adding-serial-primary-key-field";

/// The findings of each statement after the leading `SET lock_timeout`, but for the notes on
/// column types.
fn findings(schema: &Schema, sql: &str) -> Vec<Vec<SqlFinding>> {
    let report = analyze_after("m", &format!("SET lock_timeout = '1s';\n{sql}"), schema).unwrap();
    report.statements[1..]
        .iter()
        .map(|s| {
            s.findings
                .iter()
                .filter(|f| f.severity != Severity::Info)
                .cloned()
                .collect()
        })
        .collect()
}

fn rules(findings: &[SqlFinding]) -> Vec<&str> {
    findings.iter().map(|f| f.rule.as_str()).collect()
}

#[test]
fn a_primary_key_added_to_a_table_in_use_builds_its_index_under_a_lock() {
    let schema = Schema::default();
    for (sql, names) in [
        ("ALTER TABLE items ADD PRIMARY KEY (id)", "items (id)"),
        (
            "ALTER TABLE ONLY public.items ADD CONSTRAINT items_pk PRIMARY KEY (shop, id)",
            "items_pk on public.items (shop, id)",
        ),
    ] {
        let found = findings(&schema, sql);
        let [f] = found[0].as_slice() else {
            panic!("{sql}: {found:?}");
        };
        assert_eq!(
            (f.rule.as_str(), f.severity, f.safety),
            (RULE, Severity::Error, Safety::Unsafe),
            "{sql}"
        );
        assert!(f.message.contains(names), "{sql}: {}", f.message);
        assert!(f.message.contains("ACCESS EXCLUSIVE"), "{}", f.message);
        for step in [
            "CREATE UNIQUE INDEX CONCURRENTLY",
            "PRIMARY KEY USING INDEX",
        ] {
            assert!(f.recipe.contains(step), "{sql}: {}", f.recipe);
        }
    }
}

#[test]
fn a_column_added_as_primary_key_builds_its_index_under_a_lock() {
    let found = findings(
        &Schema::default(),
        "ALTER TABLE items ADD COLUMN id serial PRIMARY KEY",
    );
    let mut got = rules(&found[0]);
    got.sort_unstable();
    // The serial fills every row (a rewrite) and the key builds its index.
    assert_eq!(got, ["adding-field-with-default", RULE]);
    let f = found[0].iter().find(|f| f.rule == RULE).unwrap();
    assert!(f.message.contains("items.id"), "{}", f.message);
}

#[test]
fn a_column_added_as_primary_key_without_a_value_fails_on_existing_rows() {
    // A primary key is NOT NULL: without a default the column is NULL in every row there is.
    let found = findings(
        &Schema::default(),
        "ALTER TABLE items ADD COLUMN id bigint PRIMARY KEY",
    );
    let mut got = rules(&found[0]);
    got.sort_unstable();
    assert_eq!(got, ["adding-required-field", RULE]);
}

#[test]
fn a_primary_key_made_of_an_index_built_concurrently_passes() {
    let mut schema = Schema::default();
    schema.learn("CREATE TABLE items (id bigint NOT NULL, name text)");
    let found = findings(
        &schema,
        "CREATE UNIQUE INDEX CONCURRENTLY items_pk_idx ON items (id);\n\
         ALTER TABLE items ADD CONSTRAINT items_pk PRIMARY KEY USING INDEX items_pk_idx;",
    );
    assert_eq!(found, [vec![], vec![]]);
}

#[test]
fn a_primary_key_of_a_table_the_migration_made_waits_for_nothing() {
    let found = findings(
        &Schema::default(),
        "CREATE TABLE n (id bigint, name text);\n\
         ALTER TABLE n ADD PRIMARY KEY (id);\n\
         ALTER TABLE n ADD COLUMN k serial PRIMARY KEY;",
    );
    assert_eq!(found, [vec![], vec![], vec![]]);
}

#[test]
fn a_unique_constraint_keeps_its_own_rule() {
    for sql in [
        "ALTER TABLE items ADD CONSTRAINT items_code UNIQUE (code)",
        "ALTER TABLE items ADD COLUMN code text UNIQUE",
    ] {
        let found = findings(&Schema::default(), sql);
        assert_eq!(rules(&found[0]), ["disallowed-unique-constraint"], "{sql}");
    }
}

#[test]
fn a_primary_key_reviewed_by_hand_is_silenced_by_its_rule_s_name() {
    let report = analyze(
        "m",
        "SET lock_timeout = '1s';\n\
         -- serin:ignore adding-serial-primary-key-field\n\
         ALTER TABLE items ADD PRIMARY KEY (id);",
    )
    .unwrap();
    let s = &report.statements[1];
    assert_eq!(rules(&s.findings), [RULE], "{s:?}");
    assert!(s.findings[0].ignored);
    assert_eq!(s.phase, Some(Phase::Expand));
}
