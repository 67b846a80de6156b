//! The opt-in rules that look at how a migration runs rather than at what a statement does to
//! the version still running: `prefer-robust-stmts` (each statement of a migration that is not
//! one transaction succeeds when run again) and `require-table-schema` (every table named with
//! its schema). See [`OPT_IN_RULES`](super::OPT_IN_RULES).

use sqlparser::ast::{
    AlterTableOperation, Ident, ObjectName, ObjectType, OnCommit, Statement, TableConstraint,
};

use super::read::Parsed;
use super::rules::{Ctx, finding};
use super::schema::{ident_key, new_index_key, table_key};
use super::words::{ByWords, Relation};
use super::{Safety, SqlFinding};
use crate::validation::Severity;

/// What a rerun meets, outside a transaction: the statements before a failure stayed applied.
const RERUN: &str = "outside a transaction, what ran before a failure stays applied, so when the \
    migration runs again";

/// `prefer-robust-stmts`: the parts of `stmt` that fail when the migration runs again after
/// failing partway, with their guard, as squawk names them: outside a transaction, in a
/// migration of more than one statement, `CREATE TABLE` and `ADD COLUMN` without `IF NOT
/// EXISTS`; `DROP TABLE | INDEX | TYPE`, `DROP COLUMN` and `DROP CONSTRAINT` without `IF
/// EXISTS`; `ADD CONSTRAINT` but the first after a `DROP CONSTRAINT IF EXISTS` of its name;
/// and, wherever it stands, a named `CREATE INDEX CONCURRENTLY`, which leaves its index behind
/// when it fails. What runs again as it is (`SET DEFAULT`, `VALIDATE CONSTRAINT`) is no
/// finding, nor is a table or index made again after this migration dropped it.
pub(super) fn fails_when_run_again(stmt: &Parsed, ctx: &mut Ctx) -> Vec<SqlFinding> {
    let outside = !ctx.undone_on_failure() && !ctx.alone;
    let robust = |what: String, fix: String| {
        finding(
            "prefer-robust-stmts",
            Severity::Warn,
            Safety::Safe,
            what,
            &format!("{fix}, or run the whole migration in one transaction"),
        )
    };
    let dropped = |ctx: &Ctx, name: &ObjectName| ctx.dropped_relations.contains(&table_key(name));
    let mut out = Vec::new();
    match stmt {
        // It runs outside a transaction or not at all.
        Parsed::DropIndexConcurrently {
            names,
            if_exists: false,
            ..
        } if outside => {
            let list: Vec<String> = names.iter().map(ToString::to_string).collect();
            let list = list.join(", ");
            out.push(finding(
                "prefer-robust-stmts",
                Severity::Warn,
                Safety::Safe,
                format!("{RERUN}, DROP INDEX CONCURRENTLY {list} fails: the index is gone"),
                &format!("DROP INDEX CONCURRENTLY IF EXISTS {list}"),
            ));
        }
        Parsed::ByWords(ByWords::CreateTable {
            table,
            if_not_exists: false,
        }) if outside && !dropped(ctx, table) => out.push(robust(
            format!("{RERUN}, CREATE TABLE {table} fails: the table exists"),
            format!("CREATE TABLE IF NOT EXISTS {table}"),
        )),
        Parsed::Stmt(s) => match s.as_ref() {
            // A temporary table dropped at the commit is gone before any rerun.
            Statement::CreateTable(ct)
                if outside
                    && !ct.if_not_exists
                    && (!ct.temporary || ct.on_commit != Some(OnCommit::Drop))
                    && !dropped(ctx, &ct.name) =>
            {
                out.push(robust(
                    format!("{RERUN}, CREATE TABLE {} fails: the table exists", ct.name),
                    format!("CREATE TABLE IF NOT EXISTS {}", ct.name),
                ));
            }
            // A failed concurrent build leaves an invalid index under the name, which `IF NOT
            // EXISTS` would keep: dropping it first builds it afresh. So a named concurrent build
            // is reported wherever it stands, even alone.
            Statement::CreateIndex(ci)
                if (ci.concurrently || outside)
                    && !ci.if_not_exists
                    && new_index_key(ci).is_some_and(|k| !ctx.dropped_relations.contains(&k)) =>
            {
                let index = ci
                    .name
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                out.push(if ci.concurrently {
                    finding(
                        "prefer-robust-stmts",
                        Severity::Warn,
                        Safety::Safe,
                        format!(
                            "a CREATE INDEX CONCURRENTLY that fails leaves {index} behind, \
                             invalid, so when the migration runs again it fails: the index exists"
                        ),
                        &format!(
                            "DROP INDEX CONCURRENTLY IF EXISTS {index} just before it, so that a \
                             rerun builds it afresh"
                        ),
                    )
                } else {
                    robust(
                        format!("{RERUN}, CREATE INDEX {index} fails: the index exists"),
                        format!("CREATE INDEX IF NOT EXISTS {index}"),
                    )
                });
            }
            Statement::Drop {
                object_type: kind @ (ObjectType::Table | ObjectType::Index | ObjectType::Type),
                if_exists: false,
                names,
                ..
            } if outside => {
                let list: Vec<String> = names.iter().map(ToString::to_string).collect();
                let list = list.join(", ");
                out.push(robust(
                    format!("{RERUN}, DROP {kind} {list} fails: it is gone"),
                    format!("DROP {kind} IF EXISTS {list}"),
                ));
            }
            Statement::AlterTable(at) => {
                let table = &at.name;
                for op in &at.operations {
                    match op {
                        AlterTableOperation::AddColumn {
                            if_not_exists: false,
                            column_def,
                            ..
                        } if outside => out.push(robust(
                            format!(
                                "{RERUN}, ADD COLUMN {table}.{} fails: the column exists",
                                column_def.name
                            ),
                            format!(
                                "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {}",
                                column_def.name
                            ),
                        )),
                        AlterTableOperation::DropColumn {
                            if_exists: false,
                            column_names,
                            ..
                        } if outside => {
                            let list: Vec<String> =
                                column_names.iter().map(ToString::to_string).collect();
                            out.push(robust(
                                format!(
                                    "{RERUN}, DROP COLUMN {} of {table} fails: it is gone",
                                    list.join(", ")
                                ),
                                format!(
                                    "ALTER TABLE {table} DROP COLUMN IF EXISTS {}",
                                    list.join(", DROP COLUMN IF EXISTS ")
                                ),
                            ));
                        }
                        AlterTableOperation::DropConstraint {
                            if_exists, name, ..
                        } => {
                            let key = (table_key(table), ident_key(name));
                            if *if_exists {
                                ctx.constraints_dropped.insert(key, false);
                            } else if outside {
                                out.push(robust(
                                    format!(
                                        "{RERUN}, DROP CONSTRAINT {name} of {table} fails: it is \
                                         gone"
                                    ),
                                    format!("ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}"),
                                ));
                            }
                        }
                        AlterTableOperation::AddConstraint { constraint, .. } => {
                            let name = constraint_name(constraint);
                            let added_back = name.and_then(|n| {
                                ctx.constraints_dropped
                                    .get_mut(&(table_key(table), ident_key(n)))
                                    .filter(|added| !**added)
                            });
                            if let Some(added) = added_back {
                                *added = true;
                            } else if outside {
                                let (what, fix) = match name {
                                    Some(n) => (
                                        format!("constraint {n} on {table}"),
                                        format!(
                                            "ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {n} \
                                             just before it"
                                        ),
                                    ),
                                    None => (
                                        format!("a constraint on {table}"),
                                        "name the constraint, and ALTER TABLE ... DROP \
                                         CONSTRAINT IF EXISTS it just before"
                                            .to_owned(),
                                    ),
                                };
                                out.push(robust(
                                    format!(
                                        "{RERUN}, ADD CONSTRAINT adds {what} again: it fails, \
                                         or doubles the constraint"
                                    ),
                                    fix,
                                ));
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        },
        _ => {}
    }
    out
}

/// The name a table constraint is given, if any.
fn constraint_name(constraint: &TableConstraint) -> Option<&Ident> {
    match constraint {
        TableConstraint::Unique(c) => c.name.as_ref(),
        TableConstraint::PrimaryKey(c) => c.name.as_ref(),
        TableConstraint::ForeignKey(c) => c.name.as_ref(),
        TableConstraint::Check(c) => c.name.as_ref(),
        TableConstraint::Exclude(c) => c.name.as_ref(),
        TableConstraint::PrimaryKeyUsingIndex(c) | TableConstraint::UniqueUsingIndex(c) => {
            c.name.as_ref()
        }
        _ => None,
    }
}

/// The tables that `CREATE TABLE` (but a temporary one), `CREATE TABLE ... AS`, `ALTER TABLE`
/// and `DROP TABLE` name without a schema (`require-table-schema`), as written.
pub(super) fn unqualified_tables(stmt: &Parsed) -> Vec<String> {
    let names: Vec<&ObjectName> = match stmt {
        Parsed::Stmt(s) => match s.as_ref() {
            Statement::CreateTable(ct) if !ct.temporary => vec![&ct.name],
            Statement::AlterTable(at) => vec![&at.name],
            Statement::Drop {
                object_type: ObjectType::Table,
                names,
                temporary: false,
                ..
            } => names.iter().collect(),
            _ => Vec::new(),
        },
        Parsed::ByWords(
            ByWords::CreateTable { table, .. }
            | ByWords::ColumnSetting { table, .. }
            | ByWords::LockedCatalog { table },
        ) => vec![table],
        Parsed::ByWords(
            ByWords::SetTablespace {
                relation,
                kind: Relation::Table,
            }
            | ByWords::SetAccessMethod {
                relation,
                kind: Relation::Table,
            },
        ) => vec![relation],
        _ => Vec::new(),
    };
    names
        .into_iter()
        .filter(|name| name.0.len() == 1)
        .map(ToString::to_string)
        .collect()
}
