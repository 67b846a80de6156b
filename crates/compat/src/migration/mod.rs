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
//! (see [`analyze`]).

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use sqlparser::ast::{
    AlterColumnOperation, AlterTableOperation, AlterTypeOperation, AlterViewOperation,
    ColumnOption, DataType, Expr, FunctionDesc, LockTableMode, ObjectType, Set, Statement,
    TableConstraint,
};

use crate::error::Result;
use crate::validation::Severity;

mod read;

use read::{AlterByWords, Parsed, Written, parse};

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

fn finding(
    rule: &str,
    severity: Severity,
    safety: Safety,
    message: String,
    recipe: &str,
) -> SqlFinding {
    SqlFinding {
        rule: rule.to_owned(),
        severity,
        safety,
        message,
        recipe: recipe.to_owned(),
        ignored: false,
    }
}

const RECIPE_INDEX: &str = "CREATE INDEX CONCURRENTLY (outside a transaction), so writes continue";
const RECIPE_DROP_INDEX: &str = "DROP INDEX CONCURRENTLY (outside a transaction)";
const RECIPE_DROP_COLUMN: &str = "stop reading and writing the column, deploy, then drop it in \
    the contract phase after the old version is retired";
const RECIPE_RENAME: &str = "expand/contract: add the new name, write both, backfill, move \
    reads, stop old writes, then drop the old one";
const RECIPE_NOT_NULL: &str = "add CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT, then \
    SET NOT NULL (no scan) and drop the check";
const RECIPE_REQUIRED: &str = "add the column nullable (or with a constant default), backfill in \
    batches, then enforce NOT NULL with a validated check";
const RECIPE_VOLATILE: &str = "add the column without a default, set the default for new rows, \
    and backfill existing rows in batches";
const RECIPE_NOT_VALID: &str = "add the constraint with NOT VALID, then VALIDATE CONSTRAINT in a \
    separate statement (it takes a weaker lock)";
const RECIPE_UNIQUE: &str = "CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT ... UNIQUE \
    USING INDEX";
const RECIPE_TYPE: &str = "expand/contract: add a column of the new type, write both, backfill, \
    move reads, drop the old column (only varchar widening or varchar->text is free)";
const RECIPE_LOCK_TIMEOUT: &str = "start the migration with SET lock_timeout = '1s' (and a \
    statement_timeout) and retry on timeout, so a waiting DDL never queues all traffic";
const RECIPE_REPACK: &str = "pg_repack (or pg_squeeze) rebuilds the table online; a plain \
    VACUUM makes the space reusable without blocking reads or writes";
const RECIPE_BACKFILL: &str = "backfill in small batches outside the DDL transaction, throttled";

const VOLATILE: &[&str] = &[
    "random",
    "gen_random_uuid",
    "uuid_generate_v1",
    "uuid_generate_v1mc",
    "uuid_generate_v4",
    "clock_timestamp",
    "timeofday",
    "nextval",
    "txid_current",
];
const STABLE: &[&str] = &[
    "now",
    "current_timestamp",
    "current_date",
    "current_time",
    "localtimestamp",
    "localtime",
    "transaction_timestamp",
    "statement_timestamp",
    "current_user",
    "session_user",
];

/// `Some(true)` if the default is volatile, `Some(false)` if it is constant or stable,
/// `None` if unknown.
fn volatility(expr: &Expr) -> Option<bool> {
    match expr {
        Expr::Value(_) | Expr::TypedString { .. } => Some(false),
        Expr::Cast { expr, .. } | Expr::Nested(expr) | Expr::UnaryOp { expr, .. } => {
            volatility(expr)
        }
        Expr::Function(f) => {
            let name = f.name.to_string().to_lowercase();
            let base = name.rsplit('.').next().unwrap_or(&name);
            if VOLATILE.contains(&base) {
                Some(true)
            } else if STABLE.contains(&base) {
                Some(false)
            } else {
                None
            }
        }
        Expr::Identifier(id) => {
            let n = id.value.to_lowercase();
            (STABLE.contains(&n.as_str()) || n == "true" || n == "false" || n == "null")
                .then_some(false)
        }
        _ => None,
    }
}

fn free_retype(ty: &DataType) -> bool {
    matches!(
        ty,
        DataType::Text
            | DataType::Varchar(None)
            | DataType::CharacterVarying(None)
            | DataType::TimestampNtz(_)
    ) || matches!(ty, DataType::Timestamp(_, tz) if *tz == sqlparser::ast::TimezoneInfo::WithTimeZone)
}

struct Ctx {
    created_tables: BTreeSet<String>,
    lock_timeout: bool,
    in_transaction: bool,
    lock_timeout_reported: bool,
}

fn alter_table(table: &str, op: &AlterTableOperation, created: bool, out: &mut Vec<SqlFinding>) {
    use Safety::{ExpandContract, Unsafe};
    use Severity::{Error as E, Warn as W};
    match op {
        AlterTableOperation::DropColumn { column_names, .. } => {
            let names: Vec<String> = column_names.iter().map(|c| c.value.clone()).collect();
            out.push(finding(
                "ban-drop-column",
                W,
                ExpandContract,
                format!(
                    "dropping column(s) {} of {table} breaks the old version, which still uses them",
                    names.join(", ")
                ),
                RECIPE_DROP_COLUMN,
            ));
        }
        AlterTableOperation::RenameColumn {
            old_column_name,
            new_column_name,
        } => out.push(renamed(
            "renaming-column",
            format!("renaming {table}.{old_column_name} to {new_column_name}"),
        )),
        AlterTableOperation::RenameTable { table_name } => out.push(renamed(
            "renaming-table",
            format!("renaming table {table} to {table_name}"),
        )),
        AlterTableOperation::AddColumn { column_def, .. } => {
            let col = &column_def.name.value;
            let mut not_null = false;
            let mut default = None;
            let mut fills_rows = column_def
                .data_type
                .to_string()
                .to_lowercase()
                .contains("serial");
            for opt in &column_def.options {
                match &opt.option {
                    ColumnOption::NotNull => not_null = true,
                    ColumnOption::Generated { .. } | ColumnOption::Identity(_) => fills_rows = true,
                    ColumnOption::Default(e) => default = Some(e),
                    ColumnOption::PrimaryKey(_) | ColumnOption::Unique(_) if !created => {
                        out.push(finding(
                            "disallowed-unique-constraint",
                            E,
                            Unsafe,
                            format!(
                                "adding {table}.{col} with a unique or primary key builds an \
                                 index under an ACCESS EXCLUSIVE lock"
                            ),
                            RECIPE_UNIQUE,
                        ));
                    }
                    ColumnOption::Check(_) if !created => out.push(finding(
                        "constraint-missing-not-valid",
                        E,
                        Unsafe,
                        format!(
                            "the CHECK on new column {table}.{col} scans every row under an \
                             ACCESS EXCLUSIVE lock"
                        ),
                        "add the column without it, then ADD CONSTRAINT ... CHECK (...) NOT \
                         VALID and VALIDATE CONSTRAINT in a statement of its own",
                    )),
                    ColumnOption::ForeignKey(_) if !created => out.push(finding(
                        "adding-foreign-key-constraint",
                        E,
                        Unsafe,
                        format!(
                            "{table}.{col} REFERENCES validates every row while locking both \
                             tables"
                        ),
                        RECIPE_NOT_VALID,
                    )),
                    _ => {}
                }
            }
            if created {
                return;
            }
            if fills_rows {
                out.push(finding(
                    "adding-field-with-default",
                    E,
                    Unsafe,
                    format!(
                        "{table}.{col} is serial, identity or generated: every existing row is \
                         filled, rewriting the table under an ACCESS EXCLUSIVE lock"
                    ),
                    RECIPE_VOLATILE,
                ));
                return;
            }
            match (not_null, default.map(volatility)) {
                (true, None) => out.push(finding(
                    "adding-required-field",
                    E,
                    ExpandContract,
                    format!(
                        "{table}.{col} is NOT NULL without a default: it fails on existing rows \
                         and the old version's inserts omit it"
                    ),
                    RECIPE_REQUIRED,
                )),
                (_, Some(Some(true))) => out.push(finding(
                    "adding-field-with-default",
                    E,
                    Unsafe,
                    format!(
                        "{table}.{col} has a volatile default: the table is rewritten under an \
                         ACCESS EXCLUSIVE lock"
                    ),
                    RECIPE_VOLATILE,
                )),
                (_, Some(None)) => out.push(finding(
                    "adding-field-with-default",
                    W,
                    Unsafe,
                    format!(
                        "{table}.{col} has a default that may be volatile; a volatile default \
                         rewrites the table"
                    ),
                    RECIPE_VOLATILE,
                )),
                _ => {}
            }
        }
        AlterTableOperation::AlterColumn { column_name, op } => match op {
            AlterColumnOperation::SetNotNull => out.push(finding(
                "adding-not-nullable-field",
                E,
                Unsafe,
                format!(
                    "SET NOT NULL on {table}.{column_name} scans the table under an ACCESS \
                     EXCLUSIVE lock"
                ),
                RECIPE_NOT_NULL,
            )),
            AlterColumnOperation::DropNotNull => out.push(finding(
                "ban-drop-not-null",
                W,
                ExpandContract,
                format!(
                    "{table}.{column_name} may now hold NULL, which the old version does not \
                     expect"
                ),
                "deploy readers that accept NULL first, then drop NOT NULL",
            )),
            AlterColumnOperation::SetDataType { data_type, .. } => {
                if free_retype(data_type) {
                    out.push(finding(
                        "changing-column-type",
                        W,
                        Unsafe,
                        format!(
                            "{table}.{column_name} changes type to {data_type}: free only when \
                             widening varchar (or timestamp -> timestamptz with UTC)"
                        ),
                        RECIPE_TYPE,
                    ));
                } else {
                    out.push(finding(
                        "changing-column-type",
                        E,
                        Unsafe,
                        format!(
                            "{table}.{column_name} changes type to {data_type}: the table is \
                             rewritten under an ACCESS EXCLUSIVE lock and the old version reads \
                             the old type"
                        ),
                        RECIPE_TYPE,
                    ));
                }
            }
            AlterColumnOperation::SetDefault { value } if volatility(value) == Some(true) => {
                out.push(finding(
                    "adding-field-with-default",
                    W,
                    Unsafe,
                    format!("{table}.{column_name} gets a volatile default"),
                    RECIPE_VOLATILE,
                ));
            }
            _ => {}
        },
        AlterTableOperation::SetLogged | AlterTableOperation::SetUnlogged if !created => {
            out.push(finding(
                "changing-table-logging",
                E,
                Unsafe,
                format!("SET LOGGED or UNLOGGED rewrites {table} under an ACCESS EXCLUSIVE lock"),
                "create the new table as wanted, copy the rows in batches, and swap the names in \
                 one short transaction",
            ));
        }
        AlterTableOperation::DetachPartitionOf { partition, mode } if mode.is_none() => {
            out.push(finding(
                "require-concurrent-partition-detach",
                E,
                Unsafe,
                format!("DETACH PARTITION {partition} locks {table} with ACCESS EXCLUSIVE"),
                "DETACH PARTITION ... CONCURRENTLY (PostgreSQL 14+), outside a transaction",
            ));
        }
        AlterTableOperation::AddConstraint {
            constraint,
            not_valid,
        } => {
            if created {
                return;
            }
            match constraint {
                TableConstraint::ForeignKey(fk) if !not_valid => out.push(finding(
                    "adding-foreign-key-constraint",
                    E,
                    Unsafe,
                    format!(
                        "foreign key from {table} to {} validates every row while locking both \
                         tables",
                        fk.foreign_table
                    ),
                    RECIPE_NOT_VALID,
                )),
                TableConstraint::Check(_) if !not_valid => out.push(finding(
                    "constraint-missing-not-valid",
                    E,
                    Unsafe,
                    format!("check constraint on {table} scans every row under a lock"),
                    RECIPE_NOT_VALID,
                )),
                TableConstraint::Exclude(_) => out.push(finding(
                    "adding-exclusion-constraint",
                    E,
                    Unsafe,
                    format!(
                        "exclusion constraint on {table} builds its index and checks every row \
                         under an ACCESS EXCLUSIVE lock"
                    ),
                    "there is no online form (an exclusion constraint can be neither NOT VALID \
                     nor built from a concurrent index): add it with the table, or in a \
                     maintenance window",
                )),
                TableConstraint::Unique(_) | TableConstraint::PrimaryKey(_) => out.push(finding(
                    "disallowed-unique-constraint",
                    E,
                    Unsafe,
                    format!(
                        "unique or primary key constraint on {table} builds an index under \
                             an ACCESS EXCLUSIVE lock"
                    ),
                    RECIPE_UNIQUE,
                )),
                _ => {}
            }
        }
        _ => {}
    }
}

fn takes_lock(stmt: &Parsed) -> bool {
    match stmt {
        Parsed::DropIndexConcurrently(_) | Parsed::Unreadable(_) => false,
        // SET STATISTICS takes SHARE UPDATE EXCLUSIVE, which blocks neither reads nor writes.
        Parsed::AlterByWords(AlterByWords::ColumnSetting { setting, .. }) => {
            setting != "STATISTICS"
        }
        Parsed::AlterByWords(_) => true,
        Parsed::Reindex { concurrently } => !concurrently,
        Parsed::Cluster => true,
        Parsed::Stmt(s) => match s.as_ref() {
            Statement::AlterTable(_)
            | Statement::Drop { .. }
            | Statement::Truncate(_)
            | Statement::AlterType(_) => true,
            Statement::CreateIndex(ci) => !ci.concurrently,
            Statement::Vacuum(v) => v.full,
            Statement::Lock(l) => l.lock_mode.as_ref().is_none_or(|m| {
                matches!(
                    m,
                    LockTableMode::Share
                        | LockTableMode::ShareRowExclusive
                        | LockTableMode::Exclusive
                        | LockTableMode::AccessExclusive
                )
            }),
            Statement::RefreshMaterializedView(r) => !r.concurrently,
            _ => false,
        },
    }
}

fn analyse_one(written: &Written, ctx: &mut Ctx) -> (String, Vec<SqlFinding>) {
    use Safety::{ExpandContract, Safe, Unsafe};
    use Severity::{Error as E, Warn as W};
    let stmt = &written.parsed;
    let mut out = Vec::new();
    if takes_lock(stmt) && !ctx.lock_timeout && !ctx.lock_timeout_reported {
        ctx.lock_timeout_reported = true;
        out.push(finding(
            "require-lock-timeout",
            W,
            Safe,
            "this statement takes a strong lock but no lock_timeout was set first".into(),
            RECIPE_LOCK_TIMEOUT,
        ));
    }
    let sql = match stmt {
        Parsed::DropIndexConcurrently(names) => {
            let names: Vec<String> = names.iter().map(ToString::to_string).collect();
            if ctx.in_transaction {
                out.push(finding(
                    "ban-concurrent-index-creation-in-transaction",
                    E,
                    Unsafe,
                    "DROP INDEX CONCURRENTLY cannot run inside a transaction".into(),
                    "run it on its own, outside BEGIN ... COMMIT",
                ));
            }
            return (format!("DROP INDEX CONCURRENTLY {}", names.join(", ")), out);
        }
        Parsed::Reindex { concurrently } => {
            if *concurrently && ctx.in_transaction {
                out.push(finding(
                    "ban-concurrent-index-creation-in-transaction",
                    E,
                    Unsafe,
                    "REINDEX CONCURRENTLY cannot run inside a transaction".into(),
                    "run it on its own, outside BEGIN ... COMMIT",
                ));
            } else if !concurrently {
                out.push(finding(
                    "require-concurrent-reindex",
                    E,
                    Unsafe,
                    "REINDEX without CONCURRENTLY blocks writes (and reads through the index)"
                        .into(),
                    "REINDEX ... CONCURRENTLY (PostgreSQL 12+), outside a transaction",
                ));
            }
            return (written.text.clone(), out);
        }
        Parsed::Cluster => {
            out.push(finding(
                "prefer-repack",
                E,
                Unsafe,
                "CLUSTER rewrites the table under an ACCESS EXCLUSIVE lock, blocking reads and \
                 writes"
                    .into(),
                RECIPE_REPACK,
            ));
            return (written.text.clone(), out);
        }
        Parsed::AlterByWords(form) => {
            match form {
                AlterByWords::SetSchema { table, schema } => out.push(renamed(
                    "renaming-table",
                    format!("moving {table} to schema {schema}"),
                )),
                AlterByWords::SetTablespace { table } => out.push(finding(
                    "changing-tablespace",
                    E,
                    Unsafe,
                    format!(
                        "SET TABLESPACE copies {table} under an ACCESS EXCLUSIVE lock, blocking \
                         reads and writes"
                    ),
                    "move it online with pg_repack --tablespace, or in a maintenance window",
                )),
                // Planner statistics, TOAST storage and compression of new values: catalog
                // changes only, no rewrite.
                AlterByWords::ColumnSetting { .. } => {}
            }
            return (written.text.clone(), out);
        }
        Parsed::Unreadable(reason) => {
            out.push(finding(
                "unparsable-statement",
                E,
                Unsafe,
                format!("the parser cannot read this statement, so it is not analysed: {reason}"),
                "fix the statement if PostgreSQL would refuse it too; if not, review its locks \
                 by hand and put `-- serin:ignore unparsable-statement` above it",
            ));
            return (written.text.clone(), out);
        }
        Parsed::Stmt(s) => s.as_ref(),
    };
    match sql {
        Statement::Set(Set::SingleAssignment { variable, .. }) => {
            if variable.to_string().eq_ignore_ascii_case("lock_timeout") {
                ctx.lock_timeout = true;
            }
        }
        Statement::StartTransaction { .. } => ctx.in_transaction = true,
        Statement::Commit { .. } | Statement::Rollback { .. } => ctx.in_transaction = false,
        Statement::CreateTable(ct) => {
            ctx.created_tables.insert(ct.name.to_string());
        }
        Statement::CreateIndex(ci) => {
            let table = ci.table_name.to_string();
            if ci.concurrently && ctx.in_transaction {
                out.push(finding(
                    "ban-concurrent-index-creation-in-transaction",
                    E,
                    Unsafe,
                    "CREATE INDEX CONCURRENTLY cannot run inside a transaction".into(),
                    "run it on its own, outside BEGIN ... COMMIT",
                ));
            } else if !ci.concurrently && !ctx.created_tables.contains(&table) {
                out.push(finding(
                    "require-concurrent-index-creation",
                    E,
                    Unsafe,
                    format!(
                        "CREATE INDEX on {table} without CONCURRENTLY blocks writes while it builds"
                    ),
                    RECIPE_INDEX,
                ));
            }
        }
        Statement::AlterTable(at) => {
            let table = at.name.to_string();
            let created = ctx.created_tables.contains(&table);
            for op in &at.operations {
                alter_table(&table, op, created, &mut out);
            }
        }
        Statement::Drop {
            object_type, names, ..
        } => {
            let names: Vec<String> = names.iter().map(ToString::to_string).collect();
            let list = names.join(", ");
            match object_type {
                ObjectType::Table => out.push(finding(
                    "ban-drop-table",
                    W,
                    ExpandContract,
                    format!("dropping table(s) {list} breaks the old version, which still uses them"),
                    "stop using the table, deploy, then drop it in the contract phase",
                )),
                ObjectType::Schema => out.push(finding(
                    "ban-drop-schema",
                    W,
                    ExpandContract,
                    format!(
                        "dropping schema(s) {list} (with CASCADE, every table in them) breaks \
                         the old version, which still uses them"
                    ),
                    "stop using the schema's objects, deploy, then drop it in the contract phase",
                )),
                ObjectType::Index => out.push(finding(
                    "require-concurrent-index-deletion",
                    E,
                    Unsafe,
                    format!("DROP INDEX {list} without CONCURRENTLY blocks reads and writes of its table"),
                    RECIPE_DROP_INDEX,
                )),
                ObjectType::Database => out.push(finding(
                    "ban-drop-database",
                    E,
                    Unsafe,
                    format!("dropping database(s) {list} in a migration"),
                    "never drop a database from an application migration",
                )),
                ObjectType::View => out.push(drop_in_use("view(s)", &list)),
                ObjectType::MaterializedView => {
                    out.push(drop_in_use("materialized view(s)", &list));
                }
                ObjectType::Sequence => out.push(drop_in_use("sequence(s)", &list)),
                ObjectType::Type => out.push(drop_in_use("type(s)", &list)),
                _ => {}
            }
        }
        Statement::DropFunction(f) => {
            out.push(drop_in_use("function(s)", &functions(&f.func_desc)))
        }
        Statement::DropProcedure { proc_desc, .. } => {
            out.push(drop_in_use("procedure(s)", &functions(proc_desc)));
        }
        Statement::DropDomain(d) => out.push(drop_in_use("domain", &d.name.to_string())),
        Statement::AlterView(av) => match &av.operation {
            AlterViewOperation::RenameTo { .. } | AlterViewOperation::SetSchema { .. } => {
                out.push(renamed(
                    "renaming-table",
                    format!("moving or renaming view {}", av.name),
                ))
            }
            AlterViewOperation::RenameColumn {
                old_column_name,
                new_column_name,
            } => out.push(renamed(
                "renaming-column",
                format!(
                    "renaming {}.{old_column_name} to {new_column_name}",
                    av.name
                ),
            )),
            _ => out.push(not_analysed()),
        },
        // Its lock is the statement's whole effect; `takes_lock` asks for a lock_timeout first.
        Statement::Lock(_) => {}
        Statement::AlterType(at) => match &at.operation {
            AlterTypeOperation::RenameValue(v) => out.push(finding(
                "renaming-enum-value",
                E,
                ExpandContract,
                format!(
                    "renaming value {} of type {} to {} breaks whichever version uses the other \
                     label",
                    v.from, at.name, v.to
                ),
                "expand/contract: ADD VALUE the new label, write it and move the rows in \
                 batches, then stop using the old one (PostgreSQL cannot drop an enum value)",
            )),
            // Adding a value is quick (PostgreSQL 12+) and breaks nobody.
            AlterTypeOperation::AddValue(_) => {}
            AlterTypeOperation::Rename(_) => out.push(not_analysed()),
        },
        Statement::Vacuum(v) if v.full => out.push(finding(
            "prefer-repack",
            E,
            Unsafe,
            format!(
                "VACUUM FULL rewrites {} under an ACCESS EXCLUSIVE lock, blocking reads and writes",
                v.table_name
                    .as_ref()
                    .map_or_else(|| "every table".to_owned(), ToString::to_string)
            ),
            RECIPE_REPACK,
        )),
        Statement::Vacuum(_) => {}
        Statement::RefreshMaterializedView(r) if !r.concurrently => out.push(finding(
            "require-concurrent-refresh",
            E,
            Unsafe,
            format!(
                "REFRESH MATERIALIZED VIEW {} without CONCURRENTLY blocks its readers until the \
                 refresh ends",
                r.name
            ),
            "REFRESH MATERIALIZED VIEW CONCURRENTLY (the view needs a unique index)",
        )),
        Statement::RefreshMaterializedView(_) => {}
        Statement::Update(_) | Statement::Delete(_) | Statement::Insert(_) => out.push(finding(
            "backfill",
            W,
            Safe,
            "data change inside a migration: one large transaction holds row locks".into(),
            RECIPE_BACKFILL,
        )),
        Statement::Truncate(_) => out.push(finding(
            "ban-truncate",
            E,
            ExpandContract,
            "TRUNCATE takes an ACCESS EXCLUSIVE lock and removes data the old version reads".into(),
            "delete in batches, after the old version no longer needs the rows",
        )),
        Statement::Query(_) | Statement::CreateSequence { .. } | Statement::CreateView(_) => {}
        Statement::CreateType { .. }
        | Statement::CreateExtension(_)
        | Statement::Comment { .. } => {}
        _ => out.push(not_analysed()),
    }
    (sql.to_string(), out)
}

/// A rename (`what`) that breaks whichever version uses the other name.
fn renamed(rule: &str, what: String) -> SqlFinding {
    finding(
        rule,
        Severity::Error,
        Safety::ExpandContract,
        format!("{what} breaks whichever version uses the other name"),
        RECIPE_RENAME,
    )
}

/// Dropping something other than a table that the old version may still use.
fn drop_in_use(kind: &str, list: &str) -> SqlFinding {
    finding(
        "ban-drop-object",
        Severity::Warn,
        Safety::ExpandContract,
        format!("dropping {kind} {list} breaks the old version if it still uses them"),
        "stop using it, deploy, then drop it in the contract phase",
    )
}

fn functions(descs: &[FunctionDesc]) -> String {
    descs
        .iter()
        .map(|d| d.name.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn not_analysed() -> SqlFinding {
    finding(
        "not-analysed",
        Severity::Info,
        Safety::Safe,
        "this kind of statement is not analysed; review it by hand".into(),
        "check its locks in the PostgreSQL documentation before running it with traffic",
    )
}

/// Parses and classifies a migration.
///
/// Each statement is read on its own, so one the parser does not know is reported
/// (`unparsable-statement`, an error) and the others are still analysed. Text that cannot be
/// split into statements at all (an unterminated string or comment) is an error naming the
/// migration and the line and column.
///
/// A reviewer who has checked a finding by hand silences it with a comment naming its rule:
/// `-- serin:ignore rule-a, rule-b` before (or inside) the statement, or
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
    let (written, file_wide) = parse(name, sql)?;
    let mut ctx = Ctx {
        created_tables: BTreeSet::new(),
        lock_timeout: false,
        in_transaction: false,
        lock_timeout_reported: false,
    };
    let mut statements = Vec::with_capacity(written.len());
    for (i, w) in written.iter().enumerate() {
        let (sql, mut findings) = analyse_one(w, &mut ctx);
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
                        "the serin:ignore comment on line {} names no rule, so it ignores nothing",
                        g.line
                    ),
                    "name the rules it is meant to silence: `-- serin:ignore rule-a, rule-b`",
                ));
            }
        }
        let safety = findings
            .iter()
            .filter(|f| f.severity != Severity::Info)
            .map(|f| f.safety)
            .max()
            .unwrap_or(Safety::Safe);
        let breaks_old = findings
            .iter()
            .any(|f| f.safety == Safety::ExpandContract && f.severity >= Severity::Warn);
        let blocking = findings.iter().any(|f| f.severity == Severity::Error);
        let phase = if blocking {
            None
        } else if breaks_old {
            Some(Phase::Contract)
        } else {
            Some(Phase::Expand)
        };
        statements.push(StatementReport {
            number: i + 1,
            line: w.line,
            column: w.column,
            sql,
            safety,
            phase,
            findings,
        });
    }
    Ok(MigrationReport {
        name: name.to_owned(),
        statements,
    })
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
        assert!(rules("ALTER TABLE t ADD COLUMN c int NOT NULL DEFAULT 0").is_empty());
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
            (
                "ALTER TABLE IF EXISTS ONLY t SET TABLESPACE fast",
                "changing-tablespace",
            ),
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
    fn their_online_forms_pass() {
        for sql in [
            "VACUUM t",
            "REFRESH MATERIALIZED VIEW CONCURRENTLY v",
            "ALTER TYPE mood ADD VALUE 'meh'",
            "CREATE TABLE t (id int, r int); ALTER TABLE t SET LOGGED",
            "CREATE TABLE n (id int); ALTER TABLE n ADD COLUMN c int CHECK (c > 0)",
            "LOCK TABLE t IN ACCESS EXCLUSIVE MODE",
            "ALTER TABLE t ALTER COLUMN c SET STATISTICS 500",
            "ALTER TABLE \"T\" ALTER c SET STATISTICS -1",
            "ALTER TABLE t ALTER COLUMN c SET STORAGE EXTERNAL",
            "ALTER TABLE ONLY t ALTER COLUMN c SET COMPRESSION lz4",
        ] {
            let r = analyze("m", &format!("SET lock_timeout = '1s'; {sql}")).unwrap();
            assert_eq!(r.findings().count(), 0, "{sql}: {r:?}");
        }
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
        let timeouts = |sql| {
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
            "0007_stats",
            "SET lock_timeout = '1s';\nALTER TABLE t ALTER COLUMN c SET (n_distinct = 100);\n\
             ALTER TABLE t DROP COLUMN d;\nALTER TABLE ;",
        )
        .unwrap();
        assert_eq!(r.statements.len(), 4);
        let stats = &r.statements[1];
        assert_eq!(
            stats.sql,
            "ALTER TABLE t ALTER COLUMN c SET (n_distinct = 100)"
        );
        assert_eq!((stats.line, stats.phase), (2, None));
        assert_eq!(stats.findings[0].rule, "unparsable-statement");
        assert_eq!(stats.findings[0].severity, Severity::Error);
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

    #[test]
    fn ignore_comments_silence_the_named_rules_of_their_statement() {
        let sql = "SET lock_timeout = '1s';
            -- serin:ignore require-concurrent-index-creation, ban-drop-column
            CREATE INDEX i ON t (c);
            CREATE INDEX j ON t (d);
            ALTER TABLE t /* serin:ignore ban-drop-column */ DROP COLUMN e; -- serin:ignore
            ALTER TABLE t DROP COLUMN f;
            -- serin:ignored ban-drop-column
            ALTER TABLE t DROP COLUMN g;";
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
        // The comment after `;` belongs to the next statement, and names nothing.
        let rules: Vec<_> = r.statements[4]
            .findings
            .iter()
            .map(|f| (f.rule.as_str(), f.ignored))
            .collect();
        assert_eq!(
            rules,
            [("ban-drop-column", false), ("ignore-without-rules", false)]
        );
        assert!(r.statements[4].findings[1].message.contains("line 5"));
        assert!(
            !r.statements[5].findings[0].ignored,
            "not a serin:ignore comment"
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
