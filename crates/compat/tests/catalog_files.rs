//! A catalog whose migrations live in files next to it, as a repository keeps them.

use std::fs;
use std::path::Path;

use serin_compat::{Catalog, Fleet, Proposal, Verdict};

const CATALOG: &str = "\
registry:
  services:
    api:
      releases:
        - version: 1.0.0
          migrations:
            - file: migrations/0001_initial.sql
        - version: 1.1.0
          migrations:
            - file: migrations/0002_longer_name.sql
            - name: 0003_index
              sql: CREATE INDEX CONCURRENTLY customer_name ON customer (name);
";

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "catalog.yaml", CATALOG);
    write(
        dir.path(),
        "migrations/0001_initial.sql",
        "CREATE TABLE customer (id bigint PRIMARY KEY, name varchar(100) NOT NULL);\n",
    );
    write(
        dir.path(),
        "migrations/0002_longer_name.sql",
        "SET lock_timeout = '1s';\nALTER TABLE customer ALTER COLUMN name TYPE varchar(200);\n",
    );
    dir
}

#[test]
fn migration_files_are_read_next_to_the_catalog_and_named_by_their_stem() {
    let dir = project();
    let catalog = Catalog::load(&dir.path().join("catalog.yaml")).unwrap();
    let release = catalog
        .registry
        .release("api", &"1.1.0".parse().unwrap())
        .unwrap();
    let names: Vec<&str> = release.migrations.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["0002_longer_name", "0003_index"]);
    assert!(release.migrations[0].sql.contains("varchar(200)"));
    assert!(release.migrations.iter().all(|m| m.file.is_none()));
    // The file's widening is judged against the first file's table: nothing to report.
    let result = catalog
        .validator()
        .unwrap()
        .validate(
            &Fleet::new().with("api", "1.0.0".parse().unwrap()),
            &Proposal::new().with("api", "1.1.0".parse().unwrap()),
        )
        .unwrap();
    assert_eq!(result.verdict, Verdict::Ok, "{result}");
}

#[test]
fn a_migration_file_that_is_missing_or_never_read_is_an_error_naming_it() {
    let dir = project();
    fs::remove_file(dir.path().join("migrations/0002_longer_name.sql")).unwrap();
    let err = Catalog::load(&dir.path().join("catalog.yaml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("services.api.releases[1.1.0].migrations[0].file")
            && err.contains("0002_longer_name.sql")
            && err.contains("cannot read it"),
        "{err}"
    );
    // Parsed from text, with no directory to read files from, it is refused rather than
    // analysed as empty.
    let err = Catalog::parse(CATALOG, serin_compat::Format::Yaml)
        .unwrap_err()
        .to_string();
    assert!(err.contains("Catalog::load"), "{err}");
}

#[test]
fn a_migration_needs_sql_or_a_file_and_a_name() {
    for (entry, reason) in [
        (
            "{name: x}",
            "give its SQL as `sql`, or a `file` that holds it",
        ),
        ("{name: x, sql: SELECT 1, file: x.sql}", "not both"),
        ("{sql: SELECT 1}", "name it"),
    ] {
        let text = format!(
            "registry:\n  services:\n    api:\n      releases:\n        - version: 1.0.0\n          \
             migrations: [{entry}]\n"
        );
        let err = Catalog::parse(&text, serin_compat::Format::Yaml)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("services.api.releases[0].migrations[0]") && err.contains(reason),
            "{entry}: {err}"
        );
    }
}

#[test]
fn two_migrations_of_a_release_may_not_share_a_name() {
    // Named by a file's stem or written out, the checklist could not tell them apart.
    let text = "registry:\n  services:\n    api:\n      releases:\n        - version: 1.0.0\n          \
                migrations: [{name: '0001_a', sql: SELECT 1}, {file: sql/0001_a.sql}]\n";
    let err = Catalog::parse(text, serin_compat::Format::Yaml)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("services.api.releases[0].migrations[1].name: invalid value \"0001_a\""),
        "{err}"
    );
}

#[test]
fn a_migration_names_the_runner_its_file_does_not() {
    let catalog = |runner: &str| {
        format!(
            "registry:\n  services:\n    api:\n      releases:\n        - version: 1.0.0\n        \
             - version: 1.1.0\n          migrations:\n            - name: 0003_index\n              \
             sql: CREATE INDEX CONCURRENTLY customer_name ON customer (name);\n{runner}"
        )
    };
    let verdict = |text: &str| {
        Catalog::parse(text, serin_compat::Format::Yaml)
            .unwrap()
            .validator()
            .unwrap()
            .validate(
                &Fleet::new().with("api", "1.0.0".parse().unwrap()),
                &Proposal::new().with("api", "1.1.0".parse().unwrap()),
            )
            .unwrap()
    };
    // psql runs the statement on its own; sqlx runs the file in a transaction, where
    // PostgreSQL refuses it.
    assert_eq!(verdict(&catalog("")).verdict, Verdict::Ok);
    let result = verdict(&catalog("              runner: sqlx\n"));
    assert_eq!(result.verdict, Verdict::Blocked, "{result}");
    assert!(
        result
            .to_string()
            .contains("sqlx runs this migration in a transaction"),
        "{result}"
    );
    let err = Catalog::parse(
        &catalog("              runner: flyway\n"),
        serin_compat::Format::Yaml,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("flyway") && err.contains("golang-migrate"),
        "{err}"
    );
}

#[test]
fn a_diesel_migration_is_named_by_its_directory_and_runs_as_its_metadata_says() {
    let dir = tempfile::tempdir().unwrap();
    let up = "CREATE INDEX CONCURRENTLY customer_name ON customer (name);\n";
    write(dir.path(), "m/2026-01-01-000000_index/up.sql", up);
    write(dir.path(), "m/0002_index.up.sql", up);
    let load = |entry: &str| {
        let text = format!(
            "registry:\n  services:\n    api:\n      releases:\n        - version: 1.0.0\n          \
             migrations: [{entry}]\n"
        );
        Catalog::parse_in(&text, serin_compat::Format::Yaml, dir.path())
    };
    let names = |entry: &str| {
        let catalog = load(entry).unwrap();
        let release = catalog.registry.releases("api").next().unwrap();
        let m = &release.migrations[0];
        (m.name.clone(), m.transaction)
    };
    let diesel = "{file: m/2026-01-01-000000_index/up.sql, runner: diesel}";
    assert_eq!(names(diesel), ("2026-01-01-000000_index".into(), None));
    assert_eq!(
        names("{file: m/0002_index.up.sql, runner: golang-migrate}"),
        ("0002_index".into(), None)
    );
    write(
        dir.path(),
        "m/2026-01-01-000000_index/metadata.toml",
        "run_in_transaction = false\n",
    );
    assert_eq!(names(diesel).1, Some(false));
    // The catalog may not contradict the file diesel follows.
    let contradicting =
        "{file: m/2026-01-01-000000_index/up.sql, runner: diesel, transaction: true}";
    let err = load(contradicting).unwrap_err().to_string();
    assert!(
        err.contains("metadata.toml") && err.contains("diesel follows the file"),
        "{err}"
    );
    write(
        dir.path(),
        "m/2026-01-01-000000_index/metadata.toml",
        "run_in_transaction = 0\n",
    );
    let err = load(diesel).unwrap_err().to_string();
    assert!(
        err.contains("metadata.toml") && err.contains("cannot parse it"),
        "{err}"
    );
    // A transaction is a runner's.
    let err = load("{name: x, sql: SELECT 1, transaction: false}")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("migrations[0].transaction") && err.contains("name the runner"),
        "{err}"
    );
}

/// A migration's `enableRules` turns opt-in rules on for it in a catalog's validation; a name
/// that is no opt-in rule is refused on load, naming where it stands.
#[test]
fn a_migration_enables_opt_in_rules_by_name() {
    let catalog = |rules: &str| {
        format!(
            "registry:\n  services:\n    api:\n      releases:\n        - version: 1.0.0\n        \
             - version: 1.1.0\n          migrations:\n            - name: 0004_orders\n              \
             sql: CREATE TABLE orders (id bigint);\n{rules}"
        )
    };
    let validate = |text: &str| {
        Catalog::parse(text, serin_compat::Format::Yaml)
            .unwrap()
            .validator()
            .unwrap()
            .validate(
                &Fleet::new().with("api", "1.0.0".parse().unwrap()),
                &Proposal::new().with("api", "1.1.0".parse().unwrap()),
            )
            .unwrap()
            .to_string()
    };
    assert!(!validate(&catalog("")).contains("require-table-schema"));
    let text = validate(&catalog(
        "              enableRules: [require-table-schema]\n",
    ));
    assert!(
        text.contains("sql.require-table-schema") && text.contains("table orders is named"),
        "{text}"
    );
    for (name, reason) in [
        ("require-table-shema", "no opt-in rule has this name"),
        ("require-lock-timeout", "the rule is always on"),
    ] {
        let err = Catalog::parse(
            &catalog(&format!("              enableRules: [{name}]\n")),
            serin_compat::Format::Yaml,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("services.api.releases[1.1.0].migrations[0].enableRules[0]")
                || err.contains("services.api.releases[1].migrations[0].enableRules[0]"),
            "{err}"
        );
        assert!(err.contains(name) && err.contains(reason), "{err}");
    }
}
