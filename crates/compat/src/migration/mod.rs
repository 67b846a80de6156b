//! Database-migration safety for PostgreSQL.
//!
//! Each statement of a migration is parsed (sqlparser, PostgreSQL dialect) and classified:
//! - **safe** while the old version still runs (runs in the *expand* phase, before deploy);
//! - **needs expand/contract**: it would break the old version. Drops run in the *contract*
//!   phase, once the old version is gone; renames and retypes must be rewritten as
//!   add-new / write-both / backfill / move-reads / drop-old;
//! - **unsafe**: it locks or rewrites a table while traffic runs.
//!
//! Rules follow squawk's and strong_migrations' families; each finding names the statement
//! (number, line, column), the rule and the safe recipe. A statement the parser cannot read is
//! itself a finding, and a reviewer silences a finding with a `-- serin:ignore <rule>` comment
//! (see [`analyze`]). Given the migrations that ran before ([`Schema`], [`analyze_after`]), a
//! change of a column's type is judged against its old type, so a widening passes. A file in a
//! migration runner's format (goose, dbmate, ...) is analysed as that runner runs it
//! ([`Runner`]).
//!
//! The facts are those of PostgreSQL 12 and later (checked against 15): before 11, adding a
//! column with a constant default rewrote the table; before 12, `SET NOT NULL` scanned the
//! table even with a validated `CHECK (col IS NOT NULL)`, and `ALTER TYPE ... ADD VALUE` was
//! refused inside a transaction. Older servers need a review by hand of those forms.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::validation::Severity;

mod checks;
mod locks;
mod opt_in;
mod placeholder;
mod read;
mod rules;
mod runner;
mod schema;
mod settings;
mod types;
mod words;

use placeholder::restore;
use read::{Script, parse};
use rules::{Ctx, analyse_one, finding};
pub use runner::{RunBy, Runner};
pub use schema::Schema;

/// Every rule a finding can name, for `serin:ignore` comments (one naming anything else is
/// itself reported).
pub const RULES: &[&str] = &[
    "adding-exclusion-constraint",
    "adding-field-with-default",
    "adding-foreign-key-constraint",
    "adding-generated-always",
    "adding-not-nullable-field",
    "adding-required-field",
    "adding-serial-primary-key-field",
    "backfill",
    "ban-char-field",
    "ban-concurrent-index-creation-in-transaction",
    "ban-concurrent-index-on-partitioned-table",
    "ban-drop-column",
    "ban-drop-database",
    "ban-drop-not-null",
    "ban-drop-object",
    "ban-drop-schema",
    "ban-drop-table",
    "ban-duplicate-column-assignments",
    "ban-truncate",
    "ban-truncate-cascade",
    "ban-uncommitted-transaction",
    "cannot-run-in-transaction",
    "changing-access-method",
    "changing-collation",
    "changing-column-type",
    "changing-table-logging",
    "changing-tablespace",
    "concurrent-index-if-not-exists",
    "constraint-missing-not-valid",
    "disallowed-unique-constraint",
    "domain-constraint-scan",
    "function-not-analysed",
    "identifier-too-long",
    "ignore-names-unknown-rule",
    "ignore-without-rules",
    "lock-held-through-transaction",
    "new-enum-value-used-in-transaction",
    "not-analysed",
    "partition-bound-scan",
    "prefer-bigint-over-int",
    "prefer-bigint-over-smallint",
    "prefer-identity",
    "prefer-repack",
    "prefer-robust-stmts",
    "prefer-text-field",
    "prefer-timestamptz",
    "renaming-column",
    "renaming-enum-value",
    "renaming-function",
    "renaming-schema",
    "renaming-sequence",
    "renaming-table",
    "renaming-type",
    "require-concurrent-index-creation",
    "require-concurrent-index-deletion",
    "require-concurrent-partition-detach",
    "require-concurrent-refresh",
    "require-concurrent-reindex",
    "require-enum-value-ordering",
    "require-lock-timeout",
    "require-statement-timeout",
    "require-table-schema",
    "revoking-privilege",
    "statement-timeout-cancels",
    "table-taken-as-new",
    "transaction-nesting",
    "unparsable-statement",
    "unsupported-concurrent-drop",
];

/// The rules that judge only when [`Options::enable`] names them: what they ask for depends on
/// how a team runs its migrations, not on what a statement does to the version still running.
/// `require-statement-timeout` wants a `statement_timeout` in force before a statement takes a
/// strong lock, so a statement that runs long ends instead of holding its lock, and the queue
/// behind it, with no bound (off by default, since such a timeout also cancels what must
/// outlast it: `statement-timeout-cancels`). `prefer-robust-stmts` wants each statement of a
/// migration that is not one transaction to succeed when run again (`IF NOT EXISTS`, `IF
/// EXISTS`): one that fails partway leaves the statements before the failure applied, and a
/// rerun stops at the first of them that fails when repeated (squawk has it on by default; it
/// is off here, since whether a tool wraps a file in a transaction, as Flyway does, the
/// analysis knows only from the runner's markers or [`analyze_as`]). `require-table-schema`
/// wants every table that `CREATE TABLE`, `ALTER TABLE` and `DROP TABLE` name qualified by its
/// schema, since a bare name means whichever table the `search_path` finds first.
pub const OPT_IN_RULES: &[&str] = &[
    "prefer-robust-stmts",
    "require-statement-timeout",
    "require-table-schema",
];

/// The rules whose finding says that a statement fails, or does other than it says, whatever
/// else runs: they stand on a first install too, when no old version reads the tables and no
/// traffic waits on their locks, and the findings of every other rule are moot. Two opt-in
/// rules are among them: a statement that fails when run again (`prefer-robust-stmts`) fails
/// the retry of a first install too, and a bare table name (`require-table-schema`) means
/// whichever table the `search_path` finds first whatever runs.
pub const FAILS_WHATEVER_RUNS: &[&str] = &[
    "ban-concurrent-index-creation-in-transaction",
    "ban-concurrent-index-on-partitioned-table",
    "ban-duplicate-column-assignments",
    "ban-uncommitted-transaction",
    "cannot-run-in-transaction",
    "concurrent-index-if-not-exists",
    "identifier-too-long",
    "ignore-names-unknown-rule",
    "ignore-without-rules",
    "new-enum-value-used-in-transaction",
    "prefer-robust-stmts",
    "require-table-schema",
    "statement-timeout-cancels",
    "transaction-nesting",
    "unparsable-statement",
    "unsupported-concurrent-drop",
];

/// squawk's name for `require-lock-timeout` and `require-statement-timeout` together; the first
/// is always on here, so it turns on the second.
const TIMEOUT_SETTINGS: &str = "require-timeout-settings";

/// What an analysis applies beyond the rules that are always on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Options {
    /// Opt-in rules to apply, by name: any of [`OPT_IN_RULES`], or `require-timeout-settings`
    /// (squawk's name for both timeout rules).
    #[serde(default)]
    pub enable: Vec<String>,
}

impl Options {
    /// Options that apply the opt-in rules named in `enable`.
    pub fn enabling<S: Into<String>>(enable: impl IntoIterator<Item = S>) -> Self {
        Options {
            enable: enable.into_iter().map(Into::into).collect(),
        }
    }

    /// Checks that every name in [`Self::enable`] is an opt-in rule, naming the first that is
    /// not as `{path}[i]`.
    pub fn check(&self, path: &str) -> Result<()> {
        self.rules(path).map(drop)
    }

    /// The opt-in rules [`Self::enable`] names; a name that is none is an error naming it as
    /// `{path}[i]`, so a misspelt rule is not silently left off.
    fn rules(&self, path: &str) -> Result<BTreeSet<&'static str>> {
        let mut rules = BTreeSet::new();
        for (i, name) in self.enable.iter().enumerate() {
            if name == TIMEOUT_SETTINGS {
                rules.insert("require-statement-timeout");
            } else if let Some(rule) = OPT_IN_RULES.iter().find(|r| **r == name) {
                rules.insert(*rule);
            } else {
                let reason = if RULES.contains(&name.as_str()) {
                    "the rule is always on (a `-- serin:ignore` comment silences it)"
                } else {
                    "no opt-in rule has this name"
                };
                return Err(Error::InvalidValue {
                    path: format!("{path}[{i}]"),
                    value: name.clone(),
                    reason: format!(
                        "{reason}; the opt-in rules are {} and {TIMEOUT_SETTINGS}",
                        OPT_IN_RULES.join(", ")
                    ),
                });
            }
        }
        Ok(rules)
    }
}

/// How a statement behaves while the old version keeps running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Safety {
    /// Safe while the old version still runs.
    Safe,
    /// Breaks the old version: needs expand/contract.
    ExpandContract,
    /// Locks or rewrites a table.
    Unsafe,
}

impl fmt::Display for Safety {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Safe => "safe",
            Self::ExpandContract => "needs expand/contract",
            Self::Unsafe => "unsafe",
        })
    }
}

/// When a statement may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    /// Before the new version is deployed, while the old one still runs.
    Expand,
    /// After the old version is retired.
    Contract,
}

/// One rule violation in one statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SqlFinding {
    /// The rule (`require-concurrent-index-creation`).
    pub rule: String,
    /// How serious.
    pub severity: Severity,
    /// The class it puts the statement in.
    pub safety: Safety,
    /// What is wrong.
    pub message: String,
    /// The safe way.
    pub recipe: String,
    /// Set when a `serin:ignore` comment names the rule; the severity is then `info`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignored: bool,
}

/// One analysed statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatementReport {
    /// 1-based statement number.
    pub number: usize,
    /// 1-based line of its first token.
    pub line: u64,
    /// 1-based column of its first token.
    pub column: u64,
    /// The statement, normalised.
    pub sql: String,
    /// The worst class of its findings (safe without findings).
    pub safety: Safety,
    /// When it may run; `None` when it must be rewritten first.
    pub phase: Option<Phase>,
    /// What is wrong with it.
    pub findings: Vec<SqlFinding>,
}

/// The analysis of one migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationReport {
    /// The migration's name.
    pub name: String,
    /// The tool whose markers the file carries (`-- +goose Up`, `-- migrate:up`): only the
    /// part it runs on the way up was analysed, knowing whether it opens a transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<Runner>,
    /// Every statement, in order.
    pub statements: Vec<StatementReport>,
}

impl MigrationReport {
    /// The worst class over all statements.
    pub fn safety(&self) -> Safety {
        self.statements
            .iter()
            .map(|s| s.safety)
            .max()
            .unwrap_or(Safety::Safe)
    }

    /// Statements that may run in `phase`.
    pub fn in_phase(&self, phase: Phase) -> impl Iterator<Item = &StatementReport> {
        self.statements
            .iter()
            .filter(move |s| s.phase == Some(phase))
    }

    /// Every finding with its statement.
    pub fn findings(&self) -> impl Iterator<Item = (&StatementReport, &SqlFinding)> {
        self.statements
            .iter()
            .flat_map(|s| s.findings.iter().map(move |f| (s, f)))
    }
}

/// Parses and classifies a migration.
///
/// The migration is read as psql runs it: statements end at `;`, except inside a routine's
/// `BEGIN ATOMIC ... END` body, and a meta-command (`\i other.sql`, `pg_dump`'s `\restrict`)
/// is a statement of its own, reported as not analysed when it runs SQL from elsewhere (`\i`,
/// `\gexec`); `\connect` opens a new session, so what follows is analysed afresh and a
/// transaction left open before it is rolled back (`ban-uncommitted-transaction`). Each statement is read on its own. Forms that `pg_dump` and migration tools
/// write but the parser lacks (`ALTER SEQUENCE`, `OWNER TO`, identity options, `VACUUM
/// ANALYZE`, `CREATE TABLE ... (LIKE ...)`, `DO` blocks, whose bodies are reported as not
/// analysed) are recognised from their words; any other statement the parser does not know is
/// reported (`unparsable-statement`, an error) and the others are still analysed. Text that
/// cannot be split into statements at all (an unterminated string or comment) is an error
/// naming the migration and the line and column.
///
/// A file that carries a runner's markers (goose's `-- +goose Up`, sql-migrate's `-- +migrate
/// Up`, dbmate's `-- migrate:up`, node-pg-migrate's `-- Up Migration`, tern's `---- create
/// above / drop below ----`, sqlx's `-- no-transaction`, yoyo's `-- depends:`, Liquibase's
/// `--liquibase formatted sql`, drizzle's `--> statement-breakpoint`) is read as that runner
/// reads it: only the part that runs on the
/// way up is analysed (the report names the [`Runner`]; for Liquibase, the changesets that run
/// on PostgreSQL, each committed before the next), inside the transaction the runner opens
/// unless a marker says otherwise, and statements the runner sends as one query run as one
/// implicit transaction. So `CREATE INDEX
/// CONCURRENTLY`, which PostgreSQL refuses in a transaction, is an error there, with the marker
/// that lets it run. For files that carry no marker, name the runner with [`analyze_as`].
///
/// A transaction keeps the locks its statements take until it ends. A data change, a copy of
/// a table in use into a new one (`INSERT ... SELECT`, `CREATE TABLE ... AS`, `SELECT ...
/// INTO`), a constraint's validation, an index built with a lock or a materialized view
/// refreshed without `CONCURRENTLY` that runs after a statement took a lock that blocks
/// writes, in the same transaction (the file's own, the runner's, or one query of several
/// statements), keeps that table blocked as long as it runs: `lock-held-through-transaction`,
/// an error. In the
/// same transaction, an enum value added is not usable before it commits (a statement that
/// names it as a literal: `new-enum-value-used-in-transaction`, a warning), and `VACUUM`,
/// `DETACH PARTITION ... CONCURRENTLY`, `CREATE | DROP DATABASE`, `CREATE | DROP TABLESPACE`,
/// `ALTER SYSTEM`, `REINDEX SCHEMA | DATABASE | SYSTEM`, `CLUSTER` without a table and
/// `DISCARD ALL` are refused (`cannot-run-in-transaction`, an error). A savepoint, or a
/// rollback to one, leaves the transaction open; `COMMIT AND CHAIN` starts the next at once.
/// `lock_timeout` and `statement_timeout` follow transactions as PostgreSQL keeps them: a
/// `ROLLBACK` undoes a `SET` made since `BEGIN` (a `ROLLBACK TO SAVEPOINT`, one made since the
/// savepoint), and a `SET LOCAL` ends with its transaction, giving back the session's value;
/// `SELECT set_config('lock_timeout', '1s', false)` is a `SET` (`true`: a `SET LOCAL`). A
/// rollback undoes as well what the analysis learned since: the tables and other objects made,
/// renamed or dropped, the checks validated, the locks taken. A query of several statements
/// that a runner sends is a transaction of its own unless one is open: a `SET LOCAL` in it
/// lasts until the query ends, and a `ROLLBACK` in it undoes what it did.
///
/// What the migration makes (`CREATE TABLE`, `CREATE TABLE ... AS`, `SELECT ... INTO`, views,
/// sequences, types, routines) no running version uses yet: changing or dropping it breaks
/// nothing and waits for nothing, and renamed it stays new. Made under a name that an object
/// in use gave up (renamed away, or a view dropped), it is the running version's from the
/// commit on. Routines are told apart by their arguments' types, as PostgreSQL tells overloads
/// apart. `CREATE TABLE IF NOT EXISTS` of a table an earlier migration made does nothing: the
/// table stays in use. Of one no earlier migration made, it counts as new, since the initial
/// migrations of knex, drizzle and most ORMs write their tables so and taking each as possibly
/// in use would flag every index and constraint they add; a note (`table-taken-as-new`, info)
/// says so, for a table made outside the migrations given (by hand, by another tool).
///
/// A data change is `INSERT`, `UPDATE`, `DELETE` or `MERGE`, alone or under `WITH`. A function
/// that a query or a data change calls may change data or the schema, which the analysis does
/// not follow: a note (`function-not-analysed`, info) names it, unless it is in `pg_catalog`
/// (as `pg_dump` writes `set_config` and `setval`), a well-known built-in that changes neither,
/// called by its bare name, or one the migration made, whose body it shows.
///
/// A table that earlier statements declared `PARTITION BY` is indexed partition by partition
/// (`CREATE INDEX ... ON ONLY`, then each partition concurrently, then `ALTER INDEX ... ATTACH
/// PARTITION`): PostgreSQL refuses `CREATE INDEX CONCURRENTLY` on it.
///
/// A `statement_timeout` in force cancels what lasts as long as its table is big (a concurrent
/// index build, which then leaves an invalid index, a reindex, a validation, a backfill):
/// `statement-timeout-cancels`, a warning. Adding a partition scans a partition in use, and
/// the parent's default partition, unless a validated check proves the bound
/// (`partition-bound-scan`); a domain's check scans every column of the domain under a lock
/// that blocks writes (`domain-constraint-scan`).
///
/// A column type that makes the schema harder to keep, as squawk's type rules name them, gets a
/// note (info) where `CREATE TABLE`, `ADD COLUMN` or `ALTER ... TYPE` gives it, naming the type
/// to prefer: `int` and `smallint`, which run out (`prefer-bigint-over-int`,
/// `prefer-bigint-over-smallint`: bigint), `serial`, whose sequence is an object apart
/// (`prefer-identity`), `varchar(n)`, whose limit only an `ALTER ... TYPE` changes
/// (`prefer-text-field`: text with a check), `timestamp` without a time zone
/// (`prefer-timestamptz`) and the blank-padded `char(n)` (`ban-char-field`: text); so does an
/// enum value added without `BEFORE` or `AFTER`, which sorts last
/// (`require-enum-value-ordering`). They say nothing of a deployment's safety, so they block
/// nothing.
///
/// Flyway's placeholders (`${schema}`) are read as names, and psql's variables (`:'v'`,
/// `:"v"`, `:v`) in a file psql runs as what they stand for, so the statements that hold them
/// are analysed, and shown as written.
///
/// A reviewer who has checked a finding by hand silences it with a comment naming its rule:
/// `-- serin:ignore rule-a, rule-b` before (or inside) the statement, or at the end of the
/// line it ends on, or
/// `-- serin:ignore-file rule-a` anywhere for every statement. The finding stays in the report,
/// marked `ignored`, at severity `info`, so it neither blocks the migration nor holds the
/// statement back to the contract phase.
///
/// ```
/// use serin_compat::migration::{analyze, Safety, Phase};
/// let report = analyze("0012", "SET lock_timeout = '1s';\n\
///     ALTER TABLE users ADD COLUMN email text;\n\
///     CREATE INDEX idx_email ON users (email);").unwrap();
/// assert_eq!(report.statements[1].safety, Safety::Safe);
/// assert_eq!(report.statements[2].findings[0].rule, "require-concurrent-index-creation");
/// assert_eq!(report.statements[2].line, 3);
///
/// // The table is empty in this release, so its index may be built with a lock.
/// let report = analyze("0013", "SET lock_timeout = '1s';\n\
///     -- serin:ignore require-concurrent-index-creation\n\
///     CREATE INDEX idx_tag ON tags (name);").unwrap();
/// assert!(report.statements[1].findings[0].ignored);
/// assert_eq!(report.safety(), Safety::Safe);
/// ```
pub fn analyze(name: &str, sql: &str) -> Result<MigrationReport> {
    analyze_after(name, sql, &Schema::default())
}

/// [`analyze`] a migration that runs after the ones `schema` learned: where it changes the
/// type of a column whose type they gave, a widening that keeps every value (a longer
/// varchar, more numeric precision or fractional seconds) is no finding (but for the note
/// on a varchar's limit, `prefer-text-field`), and any other change is an error that names
/// both types. A `USING` that only restates the cast (`USING (c::varchar(255))`)
/// converts nothing; any other `USING` rewrites.
pub fn analyze_after(name: &str, sql: &str, schema: &Schema) -> Result<MigrationReport> {
    analyse(name, sql, schema, None, BTreeSet::new())
}

/// [`analyze_after`] a migration that `run`'s runner runs, for files that do not carry its
/// markers: a sqlx migration runs in a transaction unless it begins `-- no-transaction`, a
/// diesel one unless its `metadata.toml` says otherwise ([`RunBy::in_transaction`]), a
/// refinery one always; and sqlx, diesel, refinery and golang-migrate send a whole file as one
/// query, so `CREATE INDEX CONCURRENTLY` must be alone in a file that runs outside a
/// transaction. A file the runner refuses to run (goose's without `-- +goose Up`) is an error.
///
/// ```
/// use serin_compat::migration::{analyze_as, Runner, Schema};
/// let sql = "CREATE INDEX CONCURRENTLY idx_email ON users (email);";
/// let report = analyze_as("0012", sql, &Schema::default(), Runner::Sqlx).unwrap();
/// let (_, finding) = report.findings().next().unwrap();
/// assert_eq!(finding.rule, "ban-concurrent-index-creation-in-transaction");
///
/// let sql = format!("-- no-transaction\n{sql}");
/// let report = analyze_as("0012", &sql, &Schema::default(), Runner::Sqlx).unwrap();
/// assert_eq!(report.findings().count(), 0);
/// ```
pub fn analyze_as(
    name: &str,
    sql: &str,
    schema: &Schema,
    run: impl Into<RunBy>,
) -> Result<MigrationReport> {
    analyse(name, sql, schema, Some(run.into()), BTreeSet::new())
}

/// [`analyze_after`] (or, given `run`, [`analyze_as`]) a migration, applying the opt-in rules
/// that `options` names besides the rules that are always on. A name in `options` that is no
/// opt-in rule is an error naming it, and nothing is analysed.
///
/// ```
/// use serin_compat::migration::{analyze_with, Options, Schema};
/// let options = Options { enable: vec!["require-table-schema".into()] };
/// let sql = "CREATE TABLE posts (id bigint);";
/// let report = analyze_with("0012", sql, &Schema::default(), None, &options).unwrap();
/// assert_eq!(report.statements[0].findings[0].rule, "require-table-schema");
/// ```
pub fn analyze_with(
    name: &str,
    sql: &str,
    schema: &Schema,
    run: Option<RunBy>,
    options: &Options,
) -> Result<MigrationReport> {
    analyse(name, sql, schema, run, options.rules("enable")?)
}

/// A transaction that `end` (the session, or what ends it) rolls back, never committed.
fn uncommitted(end: &str) -> SqlFinding {
    finding(
        "ban-uncommitted-transaction",
        Severity::Error,
        Safety::Unsafe,
        format!(
            "this transaction is never committed: when {end} ends it, everything after it is \
             rolled back"
        ),
        "end the transaction with COMMIT",
    )
}

fn analyse(
    name: &str,
    sql: &str,
    schema: &Schema,
    run: Option<RunBy>,
    opted_in: BTreeSet<&'static str>,
) -> Result<MigrationReport> {
    let Script {
        statements: written,
        file_wide,
        layout,
        stand_ins,
    } = parse(name, sql, run)?;
    let mut ctx = Ctx::after(schema, opted_in);
    ctx.alone = written.len() < 2;
    if let Some(l) = layout.as_ref().filter(|l| l.transaction) {
        ctx.begun_by(l.runner);
    }
    let starts: Vec<u64> = written.iter().map(|w| w.line).collect();
    let mut analysed: Vec<(String, Vec<SqlFinding>)> = Vec::with_capacity(written.len());
    // The statement that opened the transaction still open, if one is.
    let mut opened: Option<usize> = None;
    // Whether a transaction is open after each statement.
    let mut in_transaction = Vec::with_capacity(written.len());
    // The part of the file the runner runs on its own that the statement is in.
    let mut part = None;
    for (i, w) in written.iter().enumerate() {
        if let Some(l) = &layout {
            let now = l.parts.iter().rposition(|(first, _)| *first <= w.line);
            if now != part {
                ctx.runner_commits();
                if let Some((_, true)) = now.map(|p| l.parts[p]) {
                    ctx.begun_by(l.runner);
                }
                part = now;
            }
        }
        ctx.enter_query(
            layout
                .as_ref()
                .and_then(|l| Some((l.runner, l.query_of(w.line, &starts)?))),
        );
        // psql's `\connect` ends the session, and with it a transaction still open.
        if w.parsed.reconnects()
            && let Some(o) = opened.take()
        {
            analysed[o]
                .1
                .push(uncommitted(&format!("the \\connect at line {}", w.line)));
        }
        analysed.push(analyse_one(w, &mut ctx));
        ctx.schema.apply(w);
        opened = ctx.opened_by_statement().then(|| opened.unwrap_or(i));
        in_transaction.push(ctx.in_transaction());
    }
    refilled(&written, &in_transaction, &mut analysed);
    if let Some(i) = opened {
        analysed[i].1.push(uncommitted("the session"));
    }
    let statements = written
        .iter()
        .zip(analysed)
        .enumerate()
        .map(|(i, (w, (sql, mut findings)))| {
            for f in &mut findings {
                if w.ignores
                    .iter()
                    .chain(&file_wide)
                    .any(|g| g.covers(&f.rule))
                {
                    f.severity = Severity::Info;
                    f.ignored = true;
                }
            }
            // A file-wide comment is reported once, on the first statement.
            let reported = file_wide.iter().filter(|_| i == 0);
            for g in w.ignores.iter().chain(reported) {
                if g.rules.is_empty() {
                    findings.push(finding(
                        "ignore-without-rules",
                        Severity::Warn,
                        Safety::Safe,
                        format!(
                            "the serin:ignore comment on line {} names no rule, so it ignores \
                             nothing",
                            g.line
                        ),
                        "name the rules it is meant to silence: `-- serin:ignore rule-a, rule-b`",
                    ));
                }
                for rule in g.rules.iter().filter(|r| !RULES.contains(&r.as_str())) {
                    findings.push(finding(
                        "ignore-names-unknown-rule",
                        Severity::Warn,
                        Safety::Safe,
                        format!(
                            "the serin:ignore comment on line {} names {rule:?}, which is no \
                             rule, so it silences nothing",
                            g.line
                        ),
                        "copy the rule's name from its finding (the rules are listed in \
                         `serin_compat::migration::RULES`)",
                    ));
                }
            }
            // What a finding says of the statement names its placeholders as written too.
            for f in &mut findings {
                f.message = restore(std::mem::take(&mut f.message), &stand_ins);
                f.recipe = restore(std::mem::take(&mut f.recipe), &stand_ins);
            }
            let (safety, phase) = classify(&findings);
            StatementReport {
                number: i + 1,
                line: w.line,
                column: w.column,
                sql: restore(sql, &stand_ins),
                safety,
                phase,
                findings,
            }
        })
        .collect();
    Ok(MigrationReport {
        name: name.to_owned(),
        runner: layout.map(|l| l.runner),
        statements,
    })
}

/// A table, view or type renamed, or a view dropped, and its name taken by another in the same
/// transaction is never missing for the versions running: other sessions see the swap at
/// once, on commit. So is a function or procedure dropped (without `CASCADE`, which would drop
/// what depends on it) and made again with the same arguments: within one transaction that is
/// what `CREATE OR REPLACE` does, and it is the only way to change a routine's result type or
/// argument names. The finding becomes a note that the old version will use the other object.
fn refilled(
    written: &[read::Written],
    in_transaction: &[bool],
    analysed: &mut [(String, Vec<SqlFinding>)],
) {
    let moved: Vec<_> = written
        .iter()
        .map(|w| rules::names_moved(&w.parsed))
        .collect();
    for (i, (vacated, _)) in moved.iter().enumerate() {
        let Some(name) = vacated else { continue };
        let taken = (i + 1..written.len())
            .take_while(|k| in_transaction[*k - 1])
            .find(|j| moved[*j].1.as_ref() == Some(name));
        let Some(j) = taken else { continue };
        let findings = &mut analysed[i].1;
        let Some(at) = findings.iter().position(|f| {
            ["renaming-table", "renaming-type", "ban-drop-object"].contains(&f.rule.as_str())
        }) else {
            continue;
        };
        let rule = findings.remove(at).rule;
        let (message, recipe) = if name.starts_with("routine ") {
            (
                format!(
                    "statement {} makes it again with the same arguments in the same \
                     transaction, so no running version finds it missing, as with CREATE OR \
                     REPLACE: the old version calls the new one from the commit on",
                    j + 1
                ),
                "check that the version still running works with the new routine (same \
                 result type, same behaviour), and review what it runs by hand",
            )
        } else {
            (
                format!(
                    "the name is taken again by statement {} in the same transaction, so no \
                     running version finds it missing: the old version uses that object under \
                     it from the commit on",
                    j + 1
                ),
                "check that the object taking the name serves the old version as well",
            )
        };
        findings.push(finding(
            &rule,
            Severity::Info,
            Safety::Safe,
            message,
            recipe,
        ));
    }
}

/// A statement's class and phase from its findings: the worst class of those that count (not
/// `info`); no phase while an error blocks it, the contract phase when it breaks the old
/// version, else the expand phase.
fn classify(findings: &[SqlFinding]) -> (Safety, Option<Phase>) {
    let safety = findings
        .iter()
        .filter(|f| f.severity != Severity::Info)
        .map(|f| f.safety)
        .max()
        .unwrap_or(Safety::Safe);
    let breaks_old = findings
        .iter()
        .any(|f| f.safety == Safety::ExpandContract && f.severity >= Severity::Warn);
    let phase = if findings.iter().any(|f| f.severity == Severity::Error) {
        None
    } else if breaks_old {
        Some(Phase::Contract)
    } else {
        Some(Phase::Expand)
    };
    (safety, phase)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(sql: &str) -> Vec<String> {
        let r = analyze("t", &format!("SET lock_timeout = '1s'; {sql}")).unwrap();
        r.findings().map(|(_, f)| f.rule.clone()).collect()
    }

    #[test]
    fn safe_additions() {
        assert!(rules("ALTER TABLE t ADD COLUMN c text").is_empty());
        assert!(rules("ALTER TABLE t ADD COLUMN c bigint NOT NULL DEFAULT 0").is_empty());
        assert!(rules("ALTER TABLE t ADD COLUMN c timestamptz DEFAULT now()").is_empty());
        assert!(rules("CREATE INDEX CONCURRENTLY i ON t (c)").is_empty());
        assert!(rules("DROP INDEX CONCURRENTLY IF EXISTS i").is_empty());
        assert!(rules("ALTER TABLE t VALIDATE CONSTRAINT c").is_empty());
        assert!(
            rules("ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES u (id) NOT VALID")
                .is_empty()
        );
        assert!(rules("CREATE TABLE n (id bigint); CREATE INDEX i ON n (id)").is_empty());
        assert!(rules("REINDEX INDEX CONCURRENTLY i").is_empty());
        assert!(rules("ALTER TABLE t DETACH PARTITION p CONCURRENTLY").is_empty());
        assert!(rules("ALTER TABLE t ADD CONSTRAINT u UNIQUE USING INDEX idx").is_empty());
    }

    #[test]
    fn each_rule_fires() {
        let cases = [
            ("ALTER TABLE t DROP COLUMN c", "ban-drop-column"),
            ("DROP TABLE t", "ban-drop-table"),
            ("ALTER TABLE t RENAME COLUMN a TO b", "renaming-column"),
            ("ALTER TABLE t RENAME TO u", "renaming-table"),
            (
                "ALTER TABLE t ALTER COLUMN c TYPE bigint",
                "changing-column-type",
            ),
            (
                "ALTER TABLE t ADD COLUMN c int NOT NULL",
                "adding-required-field",
            ),
            (
                "ALTER TABLE t ALTER COLUMN c SET NOT NULL",
                "adding-not-nullable-field",
            ),
            (
                "ALTER TABLE t ADD COLUMN c uuid DEFAULT gen_random_uuid()",
                "adding-field-with-default",
            ),
            (
                "CREATE INDEX i ON t (c)",
                "require-concurrent-index-creation",
            ),
            ("DROP INDEX i", "require-concurrent-index-deletion"),
            (
                "ALTER TABLE t ADD CONSTRAINT k CHECK (c > 0)",
                "constraint-missing-not-valid",
            ),
            (
                "ALTER TABLE t ADD CONSTRAINT u UNIQUE (c)",
                "disallowed-unique-constraint",
            ),
            (
                "ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES u (id)",
                "adding-foreign-key-constraint",
            ),
            (
                "ALTER TABLE t ALTER COLUMN c DROP NOT NULL",
                "ban-drop-not-null",
            ),
            (
                "BEGIN; CREATE INDEX CONCURRENTLY i ON t (c); COMMIT",
                "ban-concurrent-index-creation-in-transaction",
            ),
            ("UPDATE t SET c = 1", "backfill"),
            ("REINDEX INDEX i", "require-concurrent-reindex"),
            (
                "BEGIN; REINDEX INDEX CONCURRENTLY i; COMMIT",
                "ban-concurrent-index-creation-in-transaction",
            ),
            (
                "ALTER TABLE t ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY",
                "adding-field-with-default",
            ),
            (
                "ALTER TABLE t ADD COLUMN id bigserial",
                "adding-field-with-default",
            ),
            (
                "ALTER TABLE t DETACH PARTITION p",
                "require-concurrent-partition-detach",
            ),
            (
                "ALTER TABLE t ADD CONSTRAINT x EXCLUDE USING gist (r WITH &&)",
                "adding-exclusion-constraint",
            ),
            ("ALTER TABLE t SET UNLOGGED", "changing-table-logging"),
            (
                "DROP INDEX CONCURRENTLY a, b",
                "unsupported-concurrent-drop",
            ),
            (
                "DROP INDEX CONCURRENTLY IF EXISTS a CASCADE",
                "unsupported-concurrent-drop",
            ),
            (
                "ALTER DOMAIN d VALIDATE CONSTRAINT c",
                "domain-constraint-scan",
            ),
            ("ALTER DOMAIN d SET NOT NULL", "domain-constraint-scan"),
            ("VACUUM FULL t", "prefer-repack"),
            ("CLUSTER t USING i", "prefer-repack"),
            ("REFRESH MATERIALIZED VIEW v", "require-concurrent-refresh"),
            (
                "ALTER TYPE mood RENAME VALUE 'sad' TO 'blue'",
                "renaming-enum-value",
            ),
            ("DROP SCHEMA s CASCADE", "ban-drop-schema"),
            (
                "ALTER TABLE t ADD COLUMN c int CHECK (c > 0)",
                "constraint-missing-not-valid",
            ),
            ("DROP VIEW v", "ban-drop-object"),
            ("DROP MATERIALIZED VIEW v", "ban-drop-object"),
            ("DROP SEQUENCE s", "ban-drop-object"),
            ("DROP TYPE mood", "ban-drop-object"),
            ("DROP FUNCTION f(int)", "ban-drop-object"),
            ("DROP PROCEDURE p", "ban-drop-object"),
            ("DROP DOMAIN d", "ban-drop-object"),
            ("ALTER VIEW v RENAME TO w", "renaming-table"),
            ("ALTER MATERIALIZED VIEW v SET SCHEMA s", "renaming-table"),
            ("ALTER VIEW v RENAME COLUMN a TO b", "renaming-column"),
            ("ALTER TABLE s.t SET SCHEMA archive", "renaming-table"),
            ("ALTER SCHEMA app RENAME TO app2", "renaming-schema"),
            ("ALTER FUNCTION f(int) RENAME TO g", "renaming-function"),
            ("ALTER AGGREGATE a(int) SET SCHEMA s", "renaming-function"),
            (
                "ALTER PROCEDURE p(int, text) RENAME TO q",
                "renaming-function",
            ),
            ("ALTER ROUTINE p SET SCHEMA s", "renaming-function"),
            ("ALTER PROCEDURE p() SET search_path = a", "not-analysed"),
            ("ALTER TYPE mood RENAME TO feeling", "renaming-type"),
            ("ALTER TYPE mood SET SCHEMA s", "renaming-type"),
            ("ALTER DOMAIN d RENAME TO e", "renaming-type"),
            ("ALTER SEQUENCE s RENAME TO s2", "renaming-sequence"),
            ("ALTER SEQUENCE s SET SCHEMA archive", "renaming-sequence"),
            ("ALTER TYPE pair RENAME ATTRIBUTE a TO b", "renaming-column"),
            (
                "ALTER TYPE pair DROP ATTRIBUTE IF EXISTS a",
                "ban-drop-column",
            ),
            ("REASSIGN OWNED BY app TO admin", "revoking-privilege"),
            ("DROP OWNED BY app", "ban-drop-object"),
            (
                "ALTER TABLE IF EXISTS ONLY t SET TABLESPACE fast",
                "changing-tablespace",
            ),
            ("ALTER INDEX i SET TABLESPACE fast", "changing-tablespace"),
            ("ALTER EXTENSION postgis UPDATE", "not-analysed"),
            (
                "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 2 $$",
                "not-analysed",
            ),
            (
                "CREATE OR REPLACE PROCEDURE p() LANGUAGE sql AS $$ SELECT 1 $$",
                "not-analysed",
            ),
            (
                "CREATE TRIGGER g AFTER INSERT ON t FOR EACH ROW \
                 EXECUTE PROCEDURE audit('added', (2))",
                "not-analysed",
            ),
            (
                "BEGIN; CREATE DATABASE d; COMMIT",
                "cannot-run-in-transaction",
            ),
            ("BEGIN; CLUSTER; COMMIT", "cannot-run-in-transaction"),
            (
                "BEGIN; SAVEPOINT s; ROLLBACK TO s; REINDEX DATABASE d; COMMIT",
                "cannot-run-in-transaction",
            ),
            (
                "ALTER MATERIALIZED VIEW IF EXISTS v SET TABLESPACE fast",
                "changing-tablespace",
            ),
            (
                "ALTER TABLE t SET ACCESS METHOD heap2",
                "changing-access-method",
            ),
            (
                "ALTER MATERIALIZED VIEW v SET ACCESS METHOD heap2",
                "changing-access-method",
            ),
            ("VACUUM (FULL, ANALYZE) t", "prefer-repack"),
            ("UPDATE t SET c = 1", "backfill"),
            ("DELETE FROM t WHERE c IS NULL", "backfill"),
            ("INSERT INTO t (c) SELECT c FROM u", "backfill"),
            ("VACUUM FULL ANALYZE t (a, b)", "prefer-repack"),
            ("DO $$ BEGIN UPDATE t SET c = 1; END $$", "not-analysed"),
        ];
        for (sql, rule) in cases {
            let got = rules(sql);
            assert!(
                got.iter().any(|r| r == rule),
                "{sql}: expected {rule}, got {got:?}"
            );
        }
    }

    #[test]
    fn a_name_given_up_and_taken_again_in_one_transaction_is_never_missing() {
        let errors = |sql: &str| -> Vec<String> {
            analyze("t", &format!("SET lock_timeout = '1s'; {sql}"))
                .unwrap()
                .findings()
                .filter(|(_, f)| f.severity == Severity::Error)
                .map(|(_, f)| f.rule.clone())
                .collect()
        };
        // Prisma's migration for an enum that loses a value, and a table swap.
        let swaps = [
            "CREATE TYPE \"Role_new\" AS ENUM ('USER'); \
             ALTER TYPE \"Role\" RENAME TO \"Role_old\"; \
             ALTER TYPE \"Role_new\" RENAME TO \"Role\"; DROP TYPE \"Role_old\";",
            "CREATE TABLE t_new (id int); ALTER TABLE t RENAME TO t_old; \
             ALTER TABLE t_new RENAME TO t;",
            "ALTER TABLE app.t RENAME TO t_old; CREATE VIEW app.t AS SELECT * FROM app.t_old;",
        ];
        // A view made again with other columns.
        let remade = analyze(
            "t",
            "SET lock_timeout = '1s'; BEGIN; DROP VIEW v; CREATE VIEW v AS SELECT 1 AS a, 2 AS b; \
             COMMIT;",
        )
        .unwrap();
        assert!(
            remade.findings().all(|(_, f)| f.severity == Severity::Info),
            "{remade:?}"
        );
        for sql in swaps {
            assert!(errors(&format!("BEGIN; {sql} COMMIT;")).is_empty(), "{sql}");
            let notes = analyze("t", &format!("BEGIN; {sql} COMMIT;")).unwrap();
            assert!(
                notes
                    .findings()
                    .any(|(_, f)| f.severity == Severity::Info && f.rule.starts_with("renaming-")),
                "{sql}"
            );
            // Statement by statement, the name is missing in between.
            assert!(!errors(sql).is_empty(), "{sql}");
        }
        // Taken again only after the commit: missing in between.
        assert!(
            !errors("BEGIN; ALTER TABLE t RENAME TO t_old; COMMIT; CREATE TABLE t (id int);")
                .is_empty()
        );
    }

    #[test]
    fn a_sequence_or_a_composite_type_in_use_is_locked_while_it_changes() {
        // Checked against PostgreSQL by `tests/postgres.rs`: `nextval` waits for the first,
        // reads of the tables using a composite type for the second.
        for sql in [
            "ALTER SEQUENCE s INCREMENT BY 2",
            "ALTER SEQUENCE s OWNER TO app",
            "ALTER TYPE pair ADD ATTRIBUTE m int",
            "ALTER TYPE pair RENAME TO couple",
        ] {
            let r = analyze("t", sql).unwrap();
            assert!(
                r.findings().any(|(_, f)| f.rule == "require-lock-timeout"),
                "{sql}"
            );
        }
        // An enum known from earlier migrations locks no table when renamed.
        let mut schema = Schema::default();
        schema.learn("CREATE TYPE mood AS ENUM ('ok')");
        let r = analyze_after("t", "ALTER TYPE mood RENAME TO feeling", &schema).unwrap();
        assert!(!r.findings().any(|(_, f)| f.rule == "require-lock-timeout"));
    }

    #[test]
    fn changes_to_a_table_made_in_the_same_migration_break_nothing() {
        for change in [
            "ALTER TABLE n ALTER c SET NOT NULL",
            "ALTER TABLE n ALTER COLUMN c DROP NOT NULL",
            "ALTER TABLE n ALTER c TYPE bigint",
            "ALTER TABLE n ALTER COLUMN c TYPE text",
            "ALTER TABLE n RENAME COLUMN c TO d",
            "ALTER TABLE n DROP COLUMN c",
            "ALTER TABLE n SET SCHEMA archive",
            "DROP TABLE n",
        ] {
            let sql = format!("CREATE TABLE n (c bigint); {change}");
            assert_eq!(rules(&sql), Vec::<String>::new(), "{sql}");
            // The same change to a table the running version knows is still reported.
            assert!(!rules(&change.replace(" n ", " t ")).is_empty(), "{change}");
        }
        let r = analyze(
            "t",
            "SET lock_timeout = '1s'; CREATE TABLE n (c bigint); DROP TABLE n, t",
        )
        .unwrap();
        let messages: Vec<&str> = r.findings().map(|(_, f)| f.message.as_str()).collect();
        assert_eq!(
            messages,
            ["dropping table(s) t breaks the old version, which still uses them"]
        );
    }

    #[test]
    fn their_online_forms_pass() {
        for sql in [
            "VACUUM t",
            "REFRESH MATERIALIZED VIEW CONCURRENTLY v",
            "ALTER TYPE mood ADD VALUE 'meh' AFTER 'ok'",
            "CREATE TABLE t (id bigint, r bigint); ALTER TABLE t SET LOGGED",
            "CREATE TABLE n (id bigint); ALTER TABLE n ADD COLUMN c bigint CHECK (c > 0)",
            "LOCK TABLE t IN ACCESS EXCLUSIVE MODE",
            "ALTER TABLE t ALTER COLUMN c SET STATISTICS 500",
            "ALTER TABLE \"T\" ALTER c SET STATISTICS -1",
            "ALTER TABLE t ALTER COLUMN c SET STORAGE EXTERNAL",
            "ALTER TABLE ONLY t ALTER COLUMN c SET COMPRESSION lz4",
            "ALTER TABLE t ALTER COLUMN c SET (n_distinct = -0.5, n_distinct_inherited = 100)",
            "ALTER TABLE t ALTER c RESET (n_distinct)",
            "ALTER TABLE t SET (fillfactor = 70, toast.autovacuum_enabled = false)",
            "ALTER TABLE t RESET (parallel_workers, autovacuum_vacuum_scale_factor)",
            "ALTER MATERIALIZED VIEW v SET (fillfactor = 50)",
            "ALTER MATERIALIZED VIEW v CLUSTER ON v_i",
            "ALTER INDEX i SET (fillfactor = 70)",
            "ALTER INDEX IF EXISTS i RESET (deduplicate_items)",
            "CREATE TABLE n (c bigint); CREATE INDEX n_c ON n USING brin (c); \
             ALTER INDEX n_c SET (pages_per_range = 64); ALTER INDEX n_c SET TABLESPACE fast",
            // Forms `pg_dump` writes, read from their words.
            "CREATE SEQUENCE public.t_id_seq; ALTER SEQUENCE public.t_id_seq OWNED BY public.t.id",
            // A sequence in use holds up `nextval` while it changes: after a lock_timeout.
            "SET lock_timeout = '1s'; ALTER SEQUENCE IF EXISTS s RESTART WITH 100",
            // Objects this migration made are renamed before anything uses them.
            "CREATE SCHEMA a; ALTER SCHEMA a RENAME TO b",
            "CREATE SCHEMA AUTHORIZATION app; ALTER SCHEMA app RENAME TO b",
            "CREATE TYPE t AS (a int); ALTER TYPE t ADD ATTRIBUTE b int; ALTER TYPE t RENAME TO u",
            "CREATE DOMAIN d AS int; ALTER DOMAIN d RENAME TO e",
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'; ALTER FUNCTION f() \
             RENAME TO g",
            "ALTER TABLE ONLY t ALTER COLUMN id SET DEFAULT nextval('t_id_seq'::regclass)",
            "CREATE STATISTICS s (dependencies) ON a, b FROM t",
            "VACUUM ANALYZE t",
            "VACUUM (FULL false, PARALLEL 4) t, u",
            "CREATE TABLE c (LIKE t INCLUDING ALL); CREATE INDEX i ON c (a)",
            // Names as PostgreSQL resolves them: unquoted ones fold, `public` is the default.
            "CREATE TABLE public.n (id bigint); CREATE INDEX i ON \"n\" (id); \
             ALTER TABLE N ADD COLUMN c bigint CHECK (c > 0)",
            "SET statement_timeout = 0; SET client_encoding = 'UTF8'; SET search_path TO public",
            // Seed rows, and the rows migration tools keep about themselves (Alembic's --sql).
            "INSERT INTO roles (name) VALUES ('admin'), ('reader')",
            "INSERT INTO alembic_version (version_num) VALUES ('a1') RETURNING \
             alembic_version.version_num",
            "UPDATE alembic_version SET version_num='b2' WHERE alembic_version.version_num = 'a1'",
            "DELETE FROM public.schema_migrations WHERE version = '20260101'",
            // Transactions, sessions, databases, roles and extensions.
            "BEGIN; SAVEPOINT s; ROLLBACK TO SAVEPOINT s; RELEASE SAVEPOINT s; COMMIT",
            "DISCARD ALL; SET lock_timeout = '1s'; CREATE DATABASE d",
            "ALTER DATABASE d SET timezone TO 'UTC'; ALTER ROLE r SET search_path = a, b",
            "ALTER EXTENSION e ADD FUNCTION f(int); COMMENT ON FUNCTION f(int) IS 'x'",
            "SET CONSTRAINTS ALL DEFERRED; ANALYZE VERBOSE t",
            "CREATE TABLESPACE ts LOCATION '/x'; ALTER SYSTEM SET work_mem = '8MB'",
            // New functions, roles and privileges for objects made later.
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$; \
             CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 2 $$",
            "CREATE ROLE anon NOLOGIN; CREATE USER app WITH PASSWORD 'x'",
            "CREATE FUNCTION f(a bigint) RETURNS t LANGUAGE plpgsql STABLE COST 1 \
             AS $$ BEGIN RETURN NULL; END $$; CREATE OR REPLACE FUNCTION f(a bigint) \
             RETURNS t LANGUAGE plpgsql COST 5 AS $$ BEGIN RETURN NULL; END $$",
            "DROP PUBLICATION IF EXISTS realtime",
            // A helper made, run and dropped by the migration itself.
            "CREATE FUNCTION init() RETURNS void LANGUAGE sql AS $$ SELECT 1 $$; \
             SELECT init(); DROP FUNCTION init()",
            "NOTIFY pgrst, 'reload schema'; ALTER SCHEMA app OWNER TO app",
            "ALTER FUNCTION public.handle_new_user() OWNER TO postgres",
            "CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw OPTIONS (dbname 'x'); \
             CREATE USER MAPPING FOR postgres SERVER s OPTIONS (user 'u')",
            "DROP EVENT TRIGGER IF EXISTS guard",
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO anon",
            "CREATE TEXT SEARCH CONFIGURATION fr (COPY = french)",
        ] {
            let r = analyze("m", &format!("SET lock_timeout = '1s'; {sql}")).unwrap();
            assert_eq!(r.findings().count(), 0, "{sql}: {r:?}");
        }
        // A DO block's body is not read: a warning that says so, which blocks nothing.
        let r = analyze("m", "DO LANGUAGE plpgsql $$ BEGIN PERFORM 1; END $$").unwrap();
        let f = &r.statements[0].findings[0];
        assert_eq!(
            (f.rule.as_str(), f.severity),
            ("not-analysed", Severity::Warn)
        );
        // CLUSTER, which the parser does not know, is one statement of its own.
        let r = analyze("m", "CLUSTER t;\nALTER TABLE t ADD COLUMN c text;").unwrap();
        assert_eq!(r.statements.len(), 2);
        assert_eq!(r.statements[0].sql, "CLUSTER t");
        assert_eq!(
            (r.statements[1].line, r.statements[1].safety),
            (2, Safety::Safe)
        );
    }

    #[test]
    fn missing_lock_timeout_reported_once() {
        let r = analyze(
            "m",
            "ALTER TABLE t ADD COLUMN a text; ALTER TABLE t ADD COLUMN b text",
        )
        .unwrap();
        let n = r
            .findings()
            .filter(|(_, f)| f.rule == "require-lock-timeout")
            .count();
        assert_eq!(n, 1);
        assert_eq!(r.statements[0].phase, Some(Phase::Expand));
        // An explicit lock counts when it blocks writes.
        let timeouts = |sql: &str| {
            analyze("m", sql)
                .unwrap()
                .findings()
                .filter(|(_, f)| f.rule == "require-lock-timeout")
                .count()
        };
        assert_eq!(timeouts("LOCK TABLE t"), 1);
        assert_eq!(timeouts("LOCK TABLE t IN SHARE MODE"), 1);
        assert_eq!(timeouts("LOCK TABLE t IN ROW EXCLUSIVE MODE"), 0);
        assert_eq!(timeouts("ALTER TABLE t SET TABLESPACE fast"), 1);
        assert_eq!(timeouts("ALTER TABLE t ALTER c SET STORAGE MAIN"), 1);
        assert_eq!(timeouts("ALTER TABLE t ALTER c SET STATISTICS 100"), 0);
        assert_eq!(timeouts("ALTER TYPE mood ADD VALUE 'meh'"), 0);
        // As PostgreSQL takes them (tests/postgres.rs checks each against a server).
        assert_eq!(timeouts("ALTER TABLE t VALIDATE CONSTRAINT c"), 0);
        assert_eq!(timeouts("ALTER TABLE t SET (fillfactor = 70)"), 0);
        assert_eq!(timeouts("ALTER TABLE t RESET (fillfactor)"), 0);
        // A function of the same name is not the table.
        assert_eq!(
            timeouts(
                "CREATE FUNCTION t() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$; \
                 ALTER TABLE t ADD COLUMN d int"
            ),
            1
        );
        assert_eq!(
            timeouts("SET lock_timeout = '1s'; DISCARD ALL; ALTER TABLE t ADD COLUMN c int"),
            1
        );
        assert_eq!(
            timeouts("ALTER TABLE t SET (user_catalog_table = false)"),
            1
        );
        assert_eq!(
            timeouts("ALTER TABLE t RESET (fillfactor, User_Catalog_Table)"),
            1
        );
        assert_eq!(timeouts("ALTER INDEX i SET (fastupdate = off)"), 1);
        assert_eq!(timeouts("ALTER INDEX i RESET (pages_per_range)"), 1);
        assert_eq!(timeouts("ALTER INDEX i SET TABLESPACE fast"), 1);
        assert_eq!(timeouts("ALTER VIEW v SET (security_barrier = true)"), 1);
        assert_eq!(timeouts("ALTER VIEW v OWNER TO app"), 1);
        assert_eq!(timeouts("ALTER MATERIALIZED VIEW v RENAME TO w"), 1);
        assert_eq!(
            timeouts("ALTER MATERIALIZED VIEW v SET (fillfactor = 50)"),
            0
        );
        assert_eq!(timeouts("ALTER TABLE t OF pair"), 1);
        assert_eq!(timeouts("ALTER TABLE t NOT OF"), 1);
        assert_eq!(
            timeouts("CREATE TRIGGER g BEFORE INSERT ON t EXECUTE FUNCTION f()"),
            1
        );
        assert_eq!(timeouts("DROP TRIGGER g ON t"), 1);
        assert_eq!(timeouts("CREATE POLICY p ON t USING (true)"), 1);
        assert_eq!(
            timeouts("CREATE TABLE n (id int); CREATE POLICY p ON n USING (true)"),
            0
        );
        // What this migration created, nothing else waits for.
        assert_eq!(
            timeouts(
                "CREATE TABLE n (id int); CREATE VIEW v AS SELECT 1; CREATE SEQUENCE s; \
                 ALTER TABLE n OWNER TO app; ALTER TABLE v OWNER TO app; ALTER TABLE s OWNER TO \
                 app; CREATE INDEX i ON n (id); ALTER TABLE n ALTER id ADD GENERATED ALWAYS AS \
                 IDENTITY (START WITH 1)"
            ),
            0
        );
        assert_eq!(
            timeouts("CREATE OR REPLACE VIEW v AS SELECT 1; ALTER TABLE v OWNER TO app"),
            1
        );
        // A timeout turned off, reset, or set only for a transaction that ended is no timeout;
        // each stretch without one is reported once.
        let drop = "ALTER TABLE t DROP COLUMN c";
        for (sql, n) in [
            (format!("SET lock_timeout = 0; {drop}"), 1),
            (format!("SET lock_timeout = '0s'; {drop}"), 1),
            (format!("SET lock_timeout TO DEFAULT; {drop}"), 1),
            (format!("SET lock_timeout = '2s'; {drop}"), 0),
            (
                format!("SET lock_timeout = '2s'; RESET lock_timeout; {drop}"),
                1,
            ),
            (format!("SET lock_timeout = '2s'; RESET ALL; {drop}"), 1),
            (
                format!("BEGIN; SET LOCAL lock_timeout = '1s'; {drop}; COMMIT"),
                0,
            ),
            (
                format!("BEGIN; SET LOCAL lock_timeout = '1s'; COMMIT; {drop}"),
                1,
            ),
            (format!("SET LOCAL lock_timeout = '1s'; {drop}"), 1),
            (
                format!("{drop}; SET lock_timeout = '1s'; RESET lock_timeout; {drop}"),
                2,
            ),
            (format!("{drop}; {drop}"), 1),
        ] {
            assert_eq!(timeouts(&sql), n, "{sql}");
        }
    }

    #[test]
    fn a_transaction_left_open_or_begun_twice_is_reported() {
        let rule = |sql: &str| -> Vec<(usize, String)> {
            analyze("m", &format!("SET lock_timeout = '1s'; {sql}"))
                .unwrap()
                .findings()
                .map(|(s, f)| (s.number, f.rule.clone()))
                .collect()
        };
        let open = |n| vec![(n, "ban-uncommitted-transaction".to_owned())];
        assert_eq!(rule("BEGIN; ALTER TABLE t ADD COLUMN c text"), open(2));
        assert_eq!(
            rule("BEGIN; SELECT 1; COMMIT; BEGIN; SELECT 1; BEGIN; SELECT 2"),
            [
                (5, "ban-uncommitted-transaction".to_owned()),
                (7, "transaction-nesting".to_owned())
            ]
        );
        assert!(rule("BEGIN; ALTER TABLE t ADD COLUMN c text; COMMIT").is_empty());
        assert!(rule("START TRANSACTION; SELECT 1; ROLLBACK").is_empty());
    }

    #[test]
    fn a_runners_file_is_analysed_up_part_only_in_the_transaction_it_opens() {
        let goose = "-- +goose Up\nSET lock_timeout = '1s';\n\
                     CREATE INDEX CONCURRENTLY i ON t (a);\n\
                     -- +goose Down\nDROP INDEX i;\nDROP TABLE t;\n";
        let report = analyze("m", goose).unwrap();
        assert_eq!(report.runner, Some(Runner::Goose));
        let found: Vec<_> = report.findings().map(|(s, f)| (s.line, f)).collect();
        assert_eq!(found.len(), 1, "{found:#?}");
        let (line, f) = found[0];
        assert_eq!(line, 3);
        assert_eq!(f.rule, "ban-concurrent-index-creation-in-transaction");
        assert_eq!(
            f.message,
            "goose runs this migration in a transaction, and CREATE INDEX CONCURRENTLY cannot \
             run inside one"
        );
        assert_eq!(f.recipe, "add `-- +goose NO TRANSACTION` to the file");
        let outside = goose.replace("-- +goose Up\n", "-- +goose Up\n-- +goose NO TRANSACTION\n");
        assert_eq!(analyze("m", &outside).unwrap().findings().count(), 0);
        // Statements between StatementBegin and StatementEnd go as one query, which
        // PostgreSQL runs as one transaction.
        let block = outside.replace(
            "SET lock_timeout = '1s';\n",
            "-- +goose StatementBegin\nSET lock_timeout = '1s';\n",
        );
        let block = block.replace("(a);\n", "(a);\n-- +goose StatementEnd\n");
        let report = analyze("m", &block).unwrap();
        let (_, f) = report.findings().next().expect("a finding");
        assert!(
            f.message
                .starts_with("goose sends this statement in one query with others")
        );
        // A recipe that runs only outside a transaction says how to get there.
        let plain = goose.replace("CONCURRENTLY ", "");
        let report = analyze("m", &plain).unwrap();
        let (_, f) = report.findings().next().expect("a finding");
        assert_eq!(f.rule, "require-concurrent-index-creation");
        assert!(
            f.recipe
                .ends_with("; here: add `-- +goose NO TRANSACTION` to the file"),
            "{}",
            f.recipe
        );
        let report = analyze("m", "SET lock_timeout = '1s'; BEGIN; DROP INDEX i; COMMIT;").unwrap();
        let (_, f) = report.findings().next().expect("a finding");
        assert!(
            f.recipe
                .ends_with("; here: outside the migration's BEGIN ... COMMIT"),
            "{}",
            f.recipe
        );
        // The runner's transaction needs no COMMIT; a BEGIN of the file's own inside it does
        // nothing.
        let begun = "-- +goose Up\nBEGIN;\nCREATE TABLE n (id bigint);\n";
        let report = analyze("m", begun).unwrap();
        let rules: Vec<_> = report.findings().map(|(_, f)| f.rule.as_str()).collect();
        assert_eq!(rules, ["transaction-nesting"]);
        // golang-migrate opens no transaction but sends the file as one query.
        let file = "SET lock_timeout = '1s';\nCREATE INDEX CONCURRENTLY i ON t (a);\n";
        let as_golang = |sql| analyze_as("m", sql, &Schema::default(), Runner::GolangMigrate);
        let report = as_golang(file).unwrap();
        let (_, f) = report.findings().next().expect("a finding");
        assert!(
            f.message
                .starts_with("golang-migrate sends this statement in one query")
        );
        assert_eq!(as_golang(&file[25..]).unwrap().findings().count(), 0);
        let err = analyze_as("m", file, &Schema::default(), Runner::Goose).unwrap_err();
        assert!(
            err.to_string().contains("goose runs no file without"),
            "{err}"
        );
    }

    #[test]
    fn a_lock_kept_through_a_long_statement_is_reported() {
        let held = |report: &MigrationReport| -> Vec<(usize, String, String)> {
            report
                .findings()
                .filter(|(_, f)| f.rule == "lock-held-through-transaction")
                .map(|(s, f)| (s.number, f.message.clone(), f.recipe.clone()))
                .collect()
        };
        let sql = |body: &str| analyze("m", &format!("SET lock_timeout = '1s';\n{body}")).unwrap();
        let found = held(&sql(
            "BEGIN;\nALTER TABLE t ADD COLUMN c int;\nUPDATE t SET c = 0;\nCOMMIT;",
        ));
        assert_eq!(found.len(), 1, "{found:#?}");
        let (number, message, recipe) = &found[0];
        assert_eq!(*number, 4);
        assert_eq!(
            message,
            "statement 3 (line 3) took a lock that blocks writes, and the transaction keeps it \
             until COMMIT: what it locked waits as long as this data change runs"
        );
        assert_eq!(
            recipe,
            "COMMIT after statement 3, so its lock is released before this runs"
        );
        // NOT VALID then VALIDATE in one transaction keeps the first lock through the scan.
        let found = held(&sql(
            "BEGIN;\nALTER TABLE t ADD CONSTRAINT p CHECK (a > 0) NOT VALID;\n\
             ALTER TABLE t VALIDATE CONSTRAINT p;\nCOMMIT;",
        ));
        assert!(
            found[0].1.ends_with("this validation of every row runs"),
            "{found:#?}"
        );
        // Committed first, outside a transaction, or a table this migration created: no
        // lock is kept.
        for body in [
            "BEGIN;\nALTER TABLE t ADD COLUMN c int;\nCOMMIT;\nUPDATE t SET c = 0;",
            "ALTER TABLE t ADD COLUMN c int;\nUPDATE t SET c = 0;",
            "BEGIN;\nCREATE TABLE n (a int);\nALTER TABLE t ADD COLUMN c int;\n\
             INSERT INTO n SELECT generate_series(1, 10);\nINSERT INTO t (a) VALUES (1);\n\
             COMMIT;",
        ] {
            let report = sql(body);
            assert_eq!(held(&report), [], "{body}");
            if body.contains("CREATE TABLE n") {
                assert!(
                    report.findings().all(|(_, f)| f.rule != "backfill"),
                    "{body}"
                );
            }
        }
        // A runner's transaction, or one query of several statements.
        let goose = "-- +goose Up\nSET lock_timeout = '1s';\nALTER TABLE t ADD COLUMN c int;\n\
                     UPDATE t SET c = 0;\n";
        let found = held(&analyze("m", goose).unwrap());
        assert!(
            found[0]
                .1
                .contains("goose's transaction keeps it until the migration ends")
        );
        assert_eq!(
            found[0].2,
            "move this statement to a migration of its own, so goose commits statement 2's \
             lock first"
        );
        let file = "SET lock_timeout = '1s';\nALTER TABLE t ADD COLUMN c int;\nUPDATE t SET c = 0;";
        let report = analyze_as("m", file, &Schema::default(), Runner::GolangMigrate).unwrap();
        assert!(
            held(&report)[0]
                .1
                .contains("golang-migrate sends both in one query")
        );
        // Liquibase commits each changeset: a lock is kept to the end of its own only.
        let changesets = "--liquibase formatted sql\n--changeset a:1\nSET lock_timeout = '1s';\n\
                          ALTER TABLE t ADD COLUMN c int;\n--changeset a:2\nUPDATE t SET c = 0;\n";
        assert_eq!(held(&analyze("m", changesets).unwrap()), []);
        let one = changesets.replace("--changeset a:2\n", "");
        let found = held(&analyze("m", &one).unwrap());
        assert!(
            found[0]
                .1
                .contains("Liquibase's transaction keeps it until the changeset ends")
        );
        assert!(
            found[0]
                .2
                .starts_with("move this statement to a changeset of its own")
        );
        // Outside goose's transaction, a StatementBegin ... StatementEnd block is one query;
        // what follows it is another.
        let blocks = "-- +goose Up\n-- +goose NO TRANSACTION\n-- +goose StatementBegin\n\
                      SET lock_timeout = '1s';\nALTER TABLE t ADD COLUMN c int;\n\
                      -- +goose StatementEnd\nUPDATE t SET c = 0;\n";
        assert_eq!(held(&analyze("m", blocks).unwrap()), []);
    }

    #[test]
    fn flyway_placeholders_are_read_as_names_and_shown_as_written() {
        let sql = "SET lock_timeout = '1s';\n\
                   CREATE TABLE ${schema}.users (id bigint, email varchar(100));\n\
                   CREATE INDEX users_email ON ${schema}.users (email);\n\
                   ALTER TABLE ${flyway:defaultSchema}.orders ADD COLUMN note text;\n";
        // Nothing but the notes on varchar's limit, which name the table as written.
        let notes = |report: &MigrationReport| -> Vec<String> {
            report.findings().map(|(_, f)| f.message.clone()).collect()
        };
        let report = analyze("V2__users", sql).unwrap();
        let found = notes(&report);
        assert!(
            found.len() == 1 && found[0].starts_with("${schema}.users.email is VARCHAR(100)"),
            "{report:#?}"
        );
        assert_eq!(
            report.statements[2].sql,
            "CREATE INDEX users_email ON ${schema}.users(email)"
        );
        // The schema they build is learned under the same names.
        let mut schema = Schema::default();
        schema.learn(sql);
        let widen = "SET lock_timeout = '1s';\n\
                     ALTER TABLE ${schema}.users ALTER COLUMN email TYPE varchar(200);";
        let report = analyze_after("V3__wider", widen, &schema).unwrap();
        let found = notes(&report);
        assert!(
            found.len() == 1 && found[0].starts_with("${schema}.users.email is VARCHAR(200)"),
            "{report:#?}"
        );
    }

    #[test]
    fn psql_variables_are_read_and_shown_as_written() {
        let sql = "\\set ON_ERROR_STOP on\nSET lock_timeout = :'timeout';\n\
                   ALTER TABLE :\"schema\".users ADD COLUMN note text DEFAULT :'note';\n\
                   CREATE INDEX :idx ON :\"schema\".users (note);\n\
                   UPDATE users SET n = a[1:2]::int;\n";
        let report = analyze("0002", sql).unwrap();
        let shown: Vec<_> = report.statements.iter().map(|s| s.sql.as_str()).collect();
        assert_eq!(
            shown[1..4],
            [
                "SET lock_timeout = :'timeout'",
                "ALTER TABLE :\"schema\".users ADD COLUMN note TEXT DEFAULT :'note'",
                "CREATE INDEX :idx ON :\"schema\".users(note)",
            ]
        );
        let rules: Vec<_> = report
            .findings()
            .map(|(s, f)| (s.number, f.rule.as_str()))
            .collect();
        assert_eq!(
            rules,
            [(4, "require-concurrent-index-creation"), (5, "backfill")]
        );
    }

    #[test]
    fn a_statement_timeout_is_reported_before_statements_that_outlast_it() {
        let found = |sql: &str| -> Vec<(usize, String)> {
            analyze("m", &format!("SET lock_timeout = '1s';\n{sql}"))
                .unwrap()
                .findings()
                .filter(|(_, f)| f.rule == "statement-timeout-cancels")
                .map(|(s, f)| (s.number, f.message.clone()))
                .collect()
        };
        let cic = "CREATE INDEX CONCURRENTLY i ON t (c);";
        let hit = found(&format!("SET statement_timeout = '5s';\n{cic}"));
        assert_eq!(hit.len(), 1);
        assert!(hit[0].1.starts_with("statement_timeout = '5s' is in force"));
        assert!(hit[0].1.ends_with("leaves its index behind, invalid"));
        for long in [
            "ALTER TABLE t VALIDATE CONSTRAINT c;",
            "REINDEX INDEX CONCURRENTLY i;",
        ] {
            assert_eq!(
                found(&format!("SET statement_timeout TO 5000;\n{long}")).len(),
                1
            );
        }
        for off in [
            "SET statement_timeout = '5s';\nSET statement_timeout = 0;",
            "SET statement_timeout = '5s';\nRESET statement_timeout;",
            "BEGIN;\nSET LOCAL statement_timeout = '5s';\nCOMMIT;",
            "SET LOCAL statement_timeout = '5s';",
        ] {
            assert!(found(&format!("{off}\n{cic}")).is_empty(), "{off}");
        }
        // Short statements, and a table this migration created, are not at risk.
        let short = "SET statement_timeout = '5s';\nALTER TABLE t ADD COLUMN n int;\n\
                     CREATE TABLE n (a int);\nCREATE INDEX CONCURRENTLY j ON n (a);";
        assert!(found(short).is_empty());
    }

    #[test]
    fn set_not_null_after_a_validated_check_scans_nothing() {
        // The recipe the rule gives, in one migration: the last step passes.
        let recipe = "SET lock_timeout = '1s';\n\
                      ALTER TABLE t ADD CONSTRAINT t_c_nn CHECK (c IS NOT NULL) NOT VALID;\n\
                      ALTER TABLE t VALIDATE CONSTRAINT t_c_nn;\n\
                      ALTER TABLE t ALTER COLUMN c SET NOT NULL;\n\
                      ALTER TABLE t DROP CONSTRAINT t_c_nn;\n";
        assert_eq!(analyze("m", recipe).unwrap().findings().count(), 0);
        // Not yet validated, or another column: the scan stays.
        let unvalidated = recipe.replace("ALTER TABLE t VALIDATE CONSTRAINT t_c_nn;\n", "");
        let other = recipe.replace("SET NOT NULL", "SET NOT NULL, ALTER COLUMN d SET NOT NULL");
        for sql in [unvalidated, other] {
            let rules: Vec<_> = analyze("m", &sql)
                .unwrap()
                .findings()
                .map(|(_, f)| f.rule.clone())
                .collect();
            assert_eq!(rules, ["adding-not-nullable-field"], "{sql}");
        }
    }

    #[test]
    fn a_primary_key_made_of_an_index_scans_only_for_nullable_columns() {
        let mut schema = Schema::default();
        schema.learn(
            "CREATE TABLE t (id int, k bigint NOT NULL, j int, PRIMARY KEY (j));\n\
             ALTER TABLE t ADD COLUMN id_new bigint;\n\
             CREATE UNIQUE INDEX CONCURRENTLY t_id_new ON t (id_new);\n\
             CREATE UNIQUE INDEX CONCURRENTLY t_k ON t (k, j);\n\
             CREATE UNIQUE INDEX CONCURRENTLY t_id ON t (id);\n\
             ALTER INDEX t_id RENAME TO t_id_unique;",
        );
        let found = |sql: &str| -> Vec<(String, String)> {
            analyze_after("m", &format!("SET lock_timeout = '1s';\n{sql}"), &schema)
                .unwrap()
                .findings()
                .map(|(_, f)| (f.rule.clone(), f.message.clone()))
                .collect()
        };
        let pk = "ALTER TABLE t ADD CONSTRAINT t_pk PRIMARY KEY USING INDEX";
        assert_eq!(
            found(&format!("{pk} t_id_new;")),
            [(
                "adding-not-nullable-field".to_owned(),
                "PRIMARY KEY USING INDEX t_id_new sets t.id_new NOT NULL, which scans the table \
                 under an ACCESS EXCLUSIVE lock"
                    .to_owned()
            )]
        );
        assert_eq!(found(&format!("{pk} t_id_unique;")).len(), 1);
        // Declared NOT NULL (or in the old primary key), proven by a validated check, set NOT
        // NULL first (which reports its own scan), or not known: nothing more to report.
        assert!(found(&format!("{pk} t_k;")).is_empty());
        let proven = "ALTER TABLE t ADD CONSTRAINT nn CHECK (id_new IS NOT NULL) NOT VALID;\n\
                      ALTER TABLE t VALIDATE CONSTRAINT nn;\n";
        assert!(found(&format!("{proven}{pk} t_id_new;")).is_empty());
        let set = "ALTER TABLE t ALTER COLUMN id_new SET NOT NULL;\n";
        assert_eq!(found(&format!("{set}{pk} t_id_new;")).len(), 1);
        assert!(found(&format!("{pk} t_unknown;")).is_empty());
        assert!(found(&format!("{pk} t_id;")).is_empty());
        // A unique constraint sets nothing NOT NULL.
        let unique = "ALTER TABLE t ADD CONSTRAINT t_u UNIQUE USING INDEX t_id_new;";
        assert!(found(unique).is_empty());
        // Renamed with the table or column, dropped with either.
        let renamed = "ALTER TABLE t RENAME TO u;\nALTER TABLE u RENAME COLUMN id_new TO n;\n\
                       ALTER TABLE u ADD CONSTRAINT u_pk PRIMARY KEY USING INDEX t_id_new;";
        assert_eq!(found(renamed).len(), 3, "{:?}", found(renamed));
        assert!(found(renamed)[2].1.contains("sets u.n NOT NULL"));
        for dropped in [
            "DROP INDEX CONCURRENTLY t_id_new;\n",
            "ALTER TABLE t DROP COLUMN id_new;\n",
        ] {
            let rules: Vec<_> = found(&format!("{dropped}{pk} t_id_new;"));
            assert!(
                rules.iter().all(|(r, _)| r != "adding-not-nullable-field"),
                "{rules:?}"
            );
        }
    }

    #[test]
    fn a_concurrent_index_if_not_exists_is_warned_unless_dropped_first() {
        let rules_of = |sql: &str| rules(sql).join(" ");
        assert_eq!(
            rules_of("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON t (c)"),
            "concurrent-index-if-not-exists"
        );
        let r = analyze("m", "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON s.t (c)").unwrap();
        let (_, f) = r.findings().next().unwrap();
        assert!(
            f.message
                .ends_with("no query uses it, yet every write keeps it up to date")
        );
        assert_eq!(
            f.recipe,
            "DROP INDEX CONCURRENTLY IF EXISTS i just before it, so that a retry builds what a \
             failed run left"
        );
        for ok in [
            "DROP INDEX CONCURRENTLY IF EXISTS i; CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (c)",
            "DROP INDEX IF EXISTS s.i; CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON s.t (c)",
            "CREATE INDEX CONCURRENTLY i ON t (c)",
            "CREATE TABLE n (c int); CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON n (c)",
        ] {
            assert!(
                !rules(ok).contains(&"concurrent-index-if-not-exists".to_owned()),
                "{ok}"
            );
        }
        // Dropped in another schema: not the same index.
        assert!(
            rules("DROP INDEX IF EXISTS i; CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON s.t (c)")
                .contains(&"concurrent-index-if-not-exists".to_owned())
        );
    }

    #[test]
    fn adding_a_partition_reports_the_scans_of_tables_in_use() {
        let mut schema = Schema::default();
        schema.learn(
            "CREATE TABLE p (at date NOT NULL, v int) PARTITION BY RANGE (at);\n\
             CREATE TABLE pd PARTITION OF p DEFAULT;\n\
             CREATE TABLE s (at date, v int);",
        );
        let scanned = |sql: &str| -> Vec<String> {
            analyze_after("m", &format!("SET lock_timeout = '1s';\n{sql}"), &schema)
                .unwrap()
                .findings()
                .filter(|(_, f)| f.rule == "partition-bound-scan")
                .filter_map(|(_, f)| f.message.split(" scans ").nth(1)?.split([' ', ',']).next())
                .map(str::to_owned)
                .collect()
        };
        let attach = "ALTER TABLE p ATTACH PARTITION s FOR VALUES FROM ('2025-01-01') TO \
                      ('2026-01-01');";
        assert_eq!(scanned(attach), ["s", "pd"]);
        // A partition of p has p's NOT NULL key: a validated bound on it proves it.
        let create = "CREATE TABLE p3 PARTITION OF p FOR VALUES FROM ('2027-01-01') TO \
                      ('2028-01-01');";
        assert_eq!(scanned(create), ["pd"]);
        let proven = "ALTER TABLE pd ADD CONSTRAINT x CHECK (at < '2027-01-01') NOT VALID;\n\
                      ALTER TABLE pd VALIDATE CONSTRAINT x;\n";
        assert!(scanned(&format!("{proven}{create}")).is_empty());
        // The default partition renamed, detached, dropped or new, the table new: no scan of it.
        let renamed = format!("ALTER TABLE pd RENAME TO pd2;\n{create}");
        assert_eq!(scanned(&renamed), ["pd2"]);
        for gone in [
            "ALTER TABLE p DETACH PARTITION pd;",
            "DROP TABLE pd;",
            "ALTER TABLE p DETACH PARTITION pd; CREATE TABLE pd2 PARTITION OF p DEFAULT;",
        ] {
            assert!(scanned(&format!("{gone}\n{create}")).is_empty(), "{gone}");
        }
        let new = attach.replace(" s ", " n ");
        assert_eq!(
            scanned(&format!("CREATE TABLE n (at date);\n{new}")),
            ["pd"]
        );
        // Creating a partition, or a table that refers to one in use, locks the table in use.
        for sql in [create, "CREATE TABLE k (id int REFERENCES s (v))"] {
            let r = analyze("m", sql).unwrap();
            let rules: Vec<_> = r.findings().map(|(_, f)| f.rule.as_str()).collect();
            assert!(rules.contains(&"require-lock-timeout"), "{sql}: {rules:?}");
        }
        assert_eq!(
            rules(
                "CREATE TABLE u (id bigint PRIMARY KEY); CREATE TABLE k (u_id bigint REFERENCES u)"
            ),
            Vec::<String>::new()
        );
    }

    #[test]
    fn what_postgresql_refuses_in_a_transaction_is_reported() {
        let found = |sql: &str| -> Vec<(usize, String, String)> {
            analyze("m", &format!("SET lock_timeout = '1s';\n{sql}"))
                .unwrap()
                .findings()
                .map(|(s, f)| (s.number, f.rule.clone(), f.recipe.clone()))
                .collect()
        };
        let used = found(
            "BEGIN;\nALTER TYPE mood ADD VALUE 'meh' AFTER 'ok';\n\
             UPDATE t SET m = 'meh' WHERE m = 'ok';\n\
             COMMIT;\nUPDATE t SET m = 'meh';",
        );
        let rules: Vec<_> = used.iter().map(|(n, r, _)| (*n, r.as_str())).collect();
        assert_eq!(
            rules,
            [
                (4, "new-enum-value-used-in-transaction"),
                (4, "backfill"),
                (6, "backfill")
            ]
        );
        assert_eq!(
            used[0].2,
            "COMMIT after statement 3, before the value is used"
        );
        // Used where it was not added, or not used: nothing.
        assert!(
            found("ALTER TYPE mood ADD VALUE 'meh' AFTER 'ok';\nINSERT INTO t (m) VALUES ('meh');")
                .is_empty()
        );
        assert!(found("BEGIN;\nALTER TYPE mood ADD VALUE 'meh' AFTER 'ok';\nCOMMIT;").is_empty());
        for sql in [
            "BEGIN;\nVACUUM t;\nCOMMIT;",
            "BEGIN;\nVACUUM ANALYZE t;\nCOMMIT;",
            "BEGIN;\nALTER TABLE p DETACH PARTITION p1 CONCURRENTLY;\nCOMMIT;",
        ] {
            let rules: Vec<_> = found(sql).into_iter().map(|(n, r, _)| (n, r)).collect();
            assert_eq!(
                rules,
                [(3, "cannot-run-in-transaction".to_owned())],
                "{sql}"
            );
        }
        assert!(found("VACUUM t;\nALTER TABLE p DETACH PARTITION p1 CONCURRENTLY;").is_empty());
    }

    #[test]
    fn a_partitioned_table_is_indexed_partition_by_partition() {
        let mut schema = Schema::default();
        schema.learn(
            "CREATE TABLE p (at date, c int) PARTITION BY RANGE (at);\n\
             CREATE TABLE p1 PARTITION OF p FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');\n\
             CREATE TABLE t (c int);",
        );
        let rules = |sql: &str| -> Vec<(String, String)> {
            analyze_after("m", &format!("SET lock_timeout = '1s';\n{sql}"), &schema)
                .unwrap()
                .findings()
                .map(|(_, f)| (f.rule.clone(), f.recipe.clone()))
                .collect()
        };
        // PostgreSQL refuses the concurrent build; the plain one locks every partition.
        let on_only = |recipe: &str| recipe.starts_with("CREATE INDEX ... ON ONLY");
        let refused = rules("CREATE INDEX CONCURRENTLY pc ON p (c);");
        assert_eq!(refused[0].0, "ban-concurrent-index-on-partitioned-table");
        assert!(on_only(&refused[0].1));
        let plain = rules("CREATE INDEX pc ON p (c);");
        assert_eq!(plain.len(), 1);
        assert_eq!(plain[0].0, "require-concurrent-index-creation");
        assert!(on_only(&plain[0].1));
        // The recipe passes.
        assert_eq!(
            rules(
                "CREATE INDEX pc ON ONLY p (c);\nCREATE INDEX CONCURRENTLY p1c ON p1 (c);\n\
                 ALTER INDEX pc ATTACH PARTITION p1c;"
            ),
            []
        );
        // ONLY on a table known not to be partitioned builds the whole index.
        assert_eq!(
            rules("CREATE UNIQUE INDEX tc ON ONLY t (c);")[0].0,
            "require-concurrent-index-creation"
        );
        // Attaching locks the partition's index: a lock timeout first.
        let found: Vec<_> = analyze("m", "ALTER INDEX pc ATTACH PARTITION p1c;")
            .unwrap()
            .findings()
            .map(|(_, f)| f.rule.clone())
            .collect();
        assert_eq!(found, ["require-lock-timeout"]);
    }

    #[test]
    fn privileges_given_pass_and_privileges_taken_wait_for_the_contract_phase() {
        let report = analyze(
            "m",
            "GRANT SELECT ON t TO reader;\nANALYZE t;\nALTER INDEX t_a RENAME TO t_a_old;\n\
             REVOKE UPDATE ON t FROM app;\nCREATE TABLE n (a bigint);\nREVOKE ALL ON n FROM PUBLIC;",
        )
        .unwrap();
        let found: Vec<_> = report
            .findings()
            .map(|(s, f)| (s.number, f.rule.as_str()))
            .collect();
        assert_eq!(found, [(4, "revoking-privilege")]);
        assert_eq!(report.statements[3].phase, Some(Phase::Contract));
        // A trigger's note says what it changes.
        let report = analyze(
            "m",
            "SET lock_timeout = '1s'; CREATE TRIGGER g BEFORE UPDATE ON t FOR EACH ROW \
             EXECUTE FUNCTION f();",
        )
        .unwrap();
        let (_, note) = report.findings().next().unwrap();
        assert!(
            note.message
                .starts_with("a trigger changes what reads or writes")
        );
    }

    #[test]
    fn what_a_runners_file_teaches_is_its_up_part() {
        let mut schema = Schema::default();
        schema.learn(
            "-- migrate:up\nCREATE TABLE t (a varchar(10));\n-- migrate:down\nDROP TABLE t;\n",
        );
        // The table is known, so its widening is no finding, but for the note on the limit.
        let widen = "SET lock_timeout = '1s'; ALTER TABLE t ALTER COLUMN a TYPE varchar(20)";
        let report = analyze_after("m", widen, &schema).unwrap();
        let rules: Vec<_> = report.findings().map(|(_, f)| f.rule.as_str()).collect();
        assert_eq!(rules, ["prefer-text-field"]);
    }
    #[test]
    fn a_collation_or_citext_changes_how_values_compare() {
        let mut schema = Schema::default();
        schema.learn(
            "CREATE TABLE t (c varchar(10) COLLATE \"C\", d text, e varchar(5) COLLATE \
             pg_catalog.\"POSIX\"); ALTER TABLE t ALTER e TYPE varchar(6) COLLATE \"default\"",
        );
        let compares = |sql: &str| -> Vec<String> {
            analyze_after("m", &format!("SET lock_timeout = '1s'; {sql}"), &schema)
                .unwrap()
                .findings()
                .filter(|(_, f)| f.severity != Severity::Info)
                .map(|(_, f)| f.message.clone())
                .collect()
        };
        // Without COLLATE, a widening takes the new type's default collation.
        let got = compares("ALTER TABLE t ALTER COLUMN c TYPE varchar(20)");
        assert!(
            got.len() == 1 && got[0].contains("t.c changes collation to the default"),
            "{got:?}"
        );
        let got = compares("ALTER TABLE t ALTER d SET DATA TYPE varchar COLLATE pg_catalog.\"C\"");
        assert!(
            got.len() == 1 && got[0].contains("t.d changes collation to \"C\""),
            "{got:?}"
        );
        let got = compares("ALTER TABLE t ALTER d TYPE citext");
        assert!(
            got.len() == 1 && got[0].contains("compares case-insensitively"),
            "{got:?}"
        );
        for same in [
            "ALTER TABLE t ALTER COLUMN c TYPE varchar(20) COLLATE \"C\"",
            "ALTER TABLE t ALTER COLUMN d TYPE text COLLATE \"default\"",
            "ALTER TABLE t ALTER COLUMN e TYPE text",
            "ALTER TABLE t ALTER COLUMN c TYPE varchar(20) COLLATE \"C\", \
             ALTER COLUMN d TYPE varchar",
            "CREATE TABLE n (c text); ALTER TABLE n ALTER c TYPE text COLLATE \"C\"",
        ] {
            assert_eq!(compares(same), Vec::<String>::new(), "{same}");
        }
        // A change of type as well is reported as one.
        let got = compares("ALTER TABLE t ALTER c TYPE int USING length(c)");
        assert!(got[0].contains("changes type"), "{got:?}");
        // A bounded varchar over a type no migration declared may be a widening, or not.
        let got = compares("ALTER TABLE u ALTER c TYPE varchar(512)");
        assert!(
            got.len() == 1 && got[0].contains("from a type no earlier migration declared"),
            "{got:?}"
        );
    }

    #[test]
    fn drizzle_keeps_locks_across_its_pending_migrations() {
        let sql = "SET lock_timeout = '1s';--> statement-breakpoint\n\
                   ALTER TABLE t ADD COLUMN a int;--> statement-breakpoint\n\
                   CREATE INDEX i ON t (a);";
        let r = analyze("0002_a", sql).unwrap();
        assert_eq!(r.runner, Some(Runner::Drizzle));
        let (_, held) = r
            .findings()
            .find(|(_, f)| f.rule == "lock-held-through-transaction")
            .expect("the index builds while the column's lock is kept");
        assert!(
            held.message
                .contains("until every pending migration has run")
                && held.recipe.contains("in an earlier deploy"),
            "{held:?}"
        );
    }

    #[test]
    fn drops_and_renames_name_what_they_touch() {
        let r = analyze(
            "m",
            "SET lock_timeout = '1s';\n\
             CREATE FUNCTION init() RETURNS void LANGUAGE sql AS $$ SELECT 1 $$;\n\
             DROP FUNCTION init(), old_helper(int);\nALTER TABLE audit RENAME TO audit_old;",
        )
        .unwrap();
        let messages: Vec<&str> = r.findings().map(|(_, f)| f.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "dropping function(s) old_helper breaks the old version if it still uses them",
                "renaming table audit to audit_old breaks whichever version uses the other name"
            ],
            "{messages:?}"
        );
    }

    #[test]
    fn the_rule_list_is_sorted_and_whole() {
        assert!(
            RULES.windows(2).all(|w| w[0] < w[1]),
            "sorted, no duplicates"
        );
        // `finding` asserts (in debug builds) that each rule it is given is listed, so every
        // test that reaches a rule checks the list.
        let got = rules("ALTER TABLE t DROP COLUMN c; UPDATE t SET c = 1");
        assert!(got.iter().all(|r| RULES.contains(&r.as_str())), "{got:?}");
        assert!(
            FAILS_WHATEVER_RUNS.iter().all(|r| RULES.contains(r)),
            "{FAILS_WHATEVER_RUNS:?}"
        );
    }

    #[test]
    fn phases() {
        let r = analyze(
            "m",
            "SET lock_timeout = '1s'; ALTER TABLE t ADD COLUMN a text; ALTER TABLE t DROP COLUMN b; \
             ALTER TABLE t RENAME COLUMN c TO d",
        )
        .unwrap();
        assert_eq!(r.statements[1].phase, Some(Phase::Expand));
        assert_eq!(r.statements[2].phase, Some(Phase::Contract));
        assert_eq!(r.statements[2].safety, Safety::ExpandContract);
        assert_eq!(r.statements[3].phase, None);
        assert_eq!(r.safety(), Safety::ExpandContract);
    }

    #[test]
    fn an_unreadable_statement_is_reported_and_the_others_analysed() {
        let r = analyze(
            "0007_frobnicate",
            "SET lock_timeout = '1s';\nALTER TABLE t FROBNICATE ALL;\n\
             ALTER TABLE t DROP COLUMN d;\nALTER TABLE ;",
        )
        .unwrap();
        assert_eq!(r.statements.len(), 4);
        let unread = &r.statements[1];
        assert_eq!(unread.sql, "ALTER TABLE t FROBNICATE ALL");
        assert_eq!((unread.line, unread.phase), (2, None));
        assert_eq!(unread.findings[0].rule, "unparsable-statement");
        assert_eq!(unread.findings[0].severity, Severity::Error);
        assert_eq!(r.statements[2].findings[0].rule, "ban-drop-column");
        assert_eq!(r.statements[2].line, 3);
        let broken = &r.statements[3].findings[0];
        assert!(broken.message.contains("Line: 4"), "{}", broken.message);
        assert_eq!(r.safety(), Safety::Unsafe);
        // Its text is cut from the source by character positions.
        let r = analyze(
            "m",
            "SELECT 'ü';\n  ALTER TABLE \"größe\" ALTER c SET STATISTICS 1 ;",
        )
        .unwrap();
        assert_eq!(
            r.statements[1].sql,
            "ALTER TABLE \"größe\" ALTER c SET STATISTICS 1"
        );
    }

    #[test]
    fn a_routine_body_is_one_statement_and_its_end_no_commit() {
        let sql = "SET lock_timeout = '1s';\nBEGIN;\n\
                   CREATE OR REPLACE FUNCTION f(a int) RETURNS int LANGUAGE SQL\nBEGIN ATOMIC\n  \
                   SELECT CASE WHEN a > 0 THEN a END;\n  SELECT (CASE a WHEN 1 THEN 2 END);\nEND;\n\
                   CREATE INDEX CONCURRENTLY i ON t (c);\nCOMMIT;";
        let r = analyze("m", sql).unwrap();
        let texts: Vec<&str> = r.statements.iter().map(|s| s.sql.as_str()).collect();
        assert_eq!(texts.len(), 5, "{texts:?}");
        assert!(
            texts[2].starts_with("CREATE OR REPLACE FUNCTION") && texts[2].ends_with("END"),
            "{texts:?}"
        );
        assert_eq!(r.statements[2].findings[0].rule, "not-analysed");
        // The body's END did not end the transaction the file began.
        assert_eq!(
            r.statements[3].findings[0].rule,
            "ban-concurrent-index-creation-in-transaction"
        );
        assert!(r.statements[4].findings.is_empty());
        // A body left open runs to the end of the file, as psql reads it.
        let r = analyze(
            "m",
            "CREATE PROCEDURE p() BEGIN ATOMIC SELECT 1; DROP TABLE t;",
        )
        .unwrap();
        assert_eq!(r.statements.len(), 1);
        assert_eq!(r.statements[0].findings[0].rule, "unparsable-statement");
        // Outside a routine, BEGIN is a transaction and `;` ends statements as before.
        assert_eq!(
            analyze("m", "BEGIN; SELECT 1; END;")
                .unwrap()
                .statements
                .len(),
            3
        );
    }

    #[test]
    fn a_retype_after_known_migrations_is_judged_by_both_types() {
        let mut schema = Schema::default();
        schema.learn(
            "CREATE TABLE \"shop_customer\" (\"id\" bigint, \"name\" varchar(100) NOT NULL, \
             born timestamp, total numeric(10, 2))",
        );
        // What counts: the note on a varchar's limit (`prefer-text-field`) blocks nothing.
        let retype = |sql: &str| -> Vec<(String, Severity, String)> {
            analyze_after("0002", &format!("SET lock_timeout = '1s'; {sql}"), &schema)
                .unwrap()
                .findings()
                .filter(|(_, f)| f.severity != Severity::Info)
                .map(|(_, f)| (f.rule.clone(), f.severity, f.message.clone()))
                .collect()
        };
        assert_eq!(
            retype("ALTER TABLE shop_customer ALTER COLUMN name TYPE varchar(200)"),
            []
        );
        assert_eq!(
            retype("ALTER TABLE public.shop_customer ALTER total TYPE numeric(12,2)"),
            []
        );
        let narrowed = retype("ALTER TABLE shop_customer ALTER COLUMN name TYPE varchar(50)");
        assert_eq!(
            (narrowed[0].0.as_str(), narrowed[0].1),
            ("changing-column-type", Severity::Error)
        );
        assert!(
            narrowed[0].2.contains("from VARCHAR(100) to VARCHAR(50)"),
            "{}",
            narrowed[0].2
        );
        // A conversion rewrites, whatever the types; a USING that restates the cast does not.
        let using =
            retype("ALTER TABLE shop_customer ALTER name TYPE varchar(200) USING upper(name)");
        assert_eq!(using[0].1, Severity::Error);
        assert_eq!(
            retype(
                "ALTER TABLE shop_customer ALTER name TYPE varchar(200) \
                 USING (\"name\"::varchar(200))"
            ),
            []
        );
        let other_column = retype(
            "ALTER TABLE shop_customer ALTER name TYPE varchar(200) USING born::varchar(200)",
        );
        assert_eq!(other_column[0].1, Severity::Error);
        // timestamp to timestamptz keeps the values only in a UTC session.
        let tz = retype("ALTER TABLE shop_customer ALTER born TYPE timestamptz");
        assert_eq!(tz[0].1, Severity::Warn);
        assert!(tz[0].2.contains("TimeZone is UTC"), "{tz:?}");
        // Unless it converts the values.
        assert_eq!(
            retype(
                "ALTER TABLE shop_customer ALTER born TYPE timestamptz \
                 USING born AT TIME ZONE 'Europe/Paris'"
            )[0]
            .1,
            Severity::Error
        );
        // The migration's own earlier statements count too.
        let rules: Vec<String> = retype(
            "ALTER TABLE shop_customer RENAME COLUMN name TO full_name; \
             ALTER TABLE shop_customer ALTER full_name TYPE text",
        )
        .into_iter()
        .map(|f| f.0)
        .collect();
        assert_eq!(rules, ["renaming-column"]);
        // Without the earlier migrations the widening is judged on the new type alone.
        let alone = analyze(
            "0002",
            "SET lock_timeout = '1s'; ALTER TABLE shop_customer ALTER name TYPE varchar(200)",
        )
        .unwrap();
        assert_eq!(alone.findings().next().unwrap().1.severity, Severity::Error);
        // So is any retype that may or may not be a widening: to text it is one from a varchar
        // and a rewrite from an int.
        for (to, free_from) in [
            ("text", "from a varchar the catalog only changes"),
            ("varchar", "from a varchar the catalog only changes"),
            ("varchar(200)", "from a shorter varchar"),
            (
                "timestamptz",
                "from timestamp, in a session whose TimeZone is UTC,",
            ),
        ] {
            let alone = analyze(
                "0002",
                &format!("SET lock_timeout = '1s'; ALTER TABLE shop_customer ALTER c TYPE {to}"),
            )
            .unwrap();
            let (_, f) = alone.findings().next().unwrap();
            assert_eq!(f.severity, Severity::Error, "{to}");
            assert!(
                f.message.contains("no earlier migration declared")
                    && f.message.contains(free_from),
                "{to}: {}",
                f.message
            );
        }
    }

    #[test]
    fn psql_meta_commands_are_statements_of_their_own() {
        let r = analyze(
            "m",
            "\\set ON_ERROR_STOP on\nSET lock_timeout = '1s';\n\\i 0002_more.sql\n\
             SELECT format('DROP TABLE %I', t) FROM old_tables \\gexec\n\
             -- serin:ignore not-analysed\n\\ir reviewed.sql\nALTER TABLE t ADD COLUMN c text;",
        )
        .unwrap();
        let got: Vec<(u64, Vec<(&str, bool)>)> = r
            .statements
            .iter()
            .map(|s| (s.line, rules_and_ignored(s)))
            .collect();
        let warn = vec![("not-analysed", false)];
        assert_eq!(
            got,
            [
                (1, vec![]),
                (2, vec![]),
                (3, warn.clone()),
                (4, vec![]),
                (4, warn),
                (6, vec![("not-analysed", true)]),
                (7, vec![])
            ]
        );
        assert_eq!(r.statements[0].sql, "\\set ON_ERROR_STOP on");
        assert_eq!(r.statements[4].sql, "\\gexec");
        // A comment at the end of a meta-command's line is the command's.
        let r = analyze(
            "m",
            "\\ir reviewed.sql -- serin:ignore not-analysed\nSELECT 1;",
        )
        .unwrap();
        assert_eq!(
            rules_and_ignored(&r.statements[0]),
            [("not-analysed", true)]
        );
        // Also when its arguments are not SQL; a `--` quoted in them starts no comment.
        for line in [
            "\\i 0002_more.sql -- serin:ignore not-analysed",
            "\\ir '--' 0002_more.sql -- serin:ignore not-analysed",
        ] {
            let r = analyze("m", &format!("{line}\nSELECT 1;")).unwrap();
            assert_eq!(r.statements[0].sql, line);
            assert_eq!(
                rules_and_ignored(&r.statements[0]),
                [("not-analysed", true)],
                "{line}"
            );
        }
        let r = analyze("m", "\\echo '-- 0002_more' it's\nSELECT 1;").unwrap();
        assert_eq!(r.statements[0].sql, "\\echo '-- 0002_more' it's");
        // One inside a statement runs first: psql sends the statement at its `;`.
        let r = analyze("m", "SELECT 1\n\\echo hi\n+ 1;").unwrap();
        let texts: Vec<&str> = r.statements.iter().map(|s| s.sql.as_str()).collect();
        assert_eq!(texts, ["\\echo hi", "SELECT 1 + 1"]);
        // Arguments that are not SQL are kept as written and stop nothing.
        let r = analyze("m", "\\echo it's 0002_done\nDROP TABLE t;").unwrap();
        assert_eq!(r.statements[0].sql, "\\echo it's 0002_done");
        assert_eq!(r.statements[1].findings[1].rule, "ban-drop-table");
        // A new session knows nothing of the one before: its tables, its lock_timeout.
        let r = analyze(
            "m",
            "SET lock_timeout = '1s';\nBEGIN;\nCREATE TABLE n (c bigint);\n\\connect other\n\
             ALTER TABLE n ADD COLUMN d bigint;\nCREATE INDEX CONCURRENTLY i ON n (c);",
        )
        .unwrap();
        let got: Vec<Vec<(&str, bool)>> = r.statements.iter().map(rules_and_ignored).collect();
        assert_eq!(
            got[1..],
            [
                vec![("ban-uncommitted-transaction", false)],
                vec![],
                vec![("not-analysed", false)],
                vec![("require-lock-timeout", false)],
                vec![]
            ]
        );
        assert!(
            r.statements[1].findings[0]
                .message
                .contains("the \\connect at line 4 ends it"),
            "{:?}",
            r.statements[1].findings
        );
    }

    #[test]
    fn text_that_cannot_be_split_names_migration_and_position() {
        let err = analyze(
            "0007_bad",
            "ALTER TABLE t ADD COLUMN c text;\nSELECT 'open;",
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("0007_bad") && text.contains("Line: 2"),
            "{text}"
        );
    }

    /// Each finding of `s` as its rule and whether a comment ignored it.
    fn rules_and_ignored(s: &StatementReport) -> Vec<(&str, bool)> {
        s.findings
            .iter()
            .map(|f| (f.rule.as_str(), f.ignored))
            .collect()
    }

    #[test]
    fn ignore_comments_silence_the_named_rules_of_their_statement() {
        let sql = "SET lock_timeout = '1s';
            -- serin:ignore require-concurrent-index-creation, ban-drop-column
            CREATE INDEX i ON t (c);
            CREATE INDEX j ON t (d);
            ALTER TABLE t /* serin:ignore ban-drop-column */ DROP COLUMN e; -- serin:ignore
            ALTER TABLE t DROP COLUMN f; -- serin:ignore ban-drop-column
            -- serin:ignored ban-drop-column
            ALTER TABLE t DROP COLUMN g; /* serin:ignore require-concurrent-index-deletion */ DROP INDEX i;";
        let r = analyze("m", sql).unwrap();
        let index = &r.statements[1].findings[0];
        assert!(
            index.ignored && index.severity == Severity::Info,
            "{index:?}"
        );
        assert_eq!(r.statements[1].phase, Some(Phase::Expand));
        assert!(
            !r.statements[2].findings[0].ignored,
            "the next statement is not covered"
        );
        assert_eq!(r.statements[2].phase, None);
        let drop = &r.statements[3];
        assert!(drop.findings[0].ignored);
        assert_eq!(
            (drop.safety, drop.phase),
            (Safety::Safe, Some(Phase::Expand))
        );
        // A `--` comment after `;` ends the statement's line, so it is that statement's.
        assert_eq!(
            rules_and_ignored(drop),
            [("ban-drop-column", true), ("ignore-without-rules", false)]
        );
        assert!(drop.findings[1].message.contains("line 5"));
        assert_eq!(
            rules_and_ignored(&r.statements[4]),
            [("ban-drop-column", true)]
        );
        assert!(
            !r.statements[5].findings[0].ignored,
            "not a serin:ignore comment"
        );
        // A block comment before the next statement on the line is the next statement's.
        assert_eq!(
            rules_and_ignored(&r.statements[6]),
            [("require-concurrent-index-deletion", true)]
        );
        // A rule name that is no rule is reported, and silences nothing.
        let r = analyze(
            "m",
            "SET lock_timeout = '1s';\n-- serin:ignore ban-drop-colum\nALTER TABLE t DROP COLUMN c",
        )
        .unwrap();
        assert_eq!(
            rules_and_ignored(&r.statements[1]),
            [
                ("ban-drop-column", false),
                ("ignore-names-unknown-rule", false)
            ]
        );
        assert!(
            r.statements[1].findings[1]
                .message
                .contains("\"ban-drop-colum\"")
        );
    }

    #[test]
    fn a_file_wide_ignore_covers_every_statement() {
        let r = analyze(
            "m",
            "ALTER TABLE t ADD CONSTRAINT k CHECK (c > 0);\nDROP INDEX i;\n\
             -- serin:ignore-file require-lock-timeout, constraint-missing-not-valid",
        )
        .unwrap();
        let rules: Vec<_> = r
            .findings()
            .map(|(_, f)| (f.rule.as_str(), f.ignored))
            .collect();
        assert_eq!(
            rules,
            [
                ("require-lock-timeout", true),
                ("constraint-missing-not-valid", true),
                ("require-concurrent-index-deletion", false)
            ]
        );
        let empty = analyze("m", "-- serin:ignore-file\nDROP INDEX i; DROP INDEX j").unwrap();
        let warnings = empty
            .findings()
            .filter(|(_, f)| f.rule == "ignore-without-rules")
            .count();
        assert_eq!(warnings, 1);
    }
}
