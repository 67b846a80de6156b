//! Which statements take a lock that blocks reads or writes of a table in use, as PostgreSQL
//! 15 takes them (each checked against `pg_locks` by `tests/postgres.rs`): what needs a
//! `lock_timeout` first, and what a transaction keeps blocked until it ends.

use sqlparser::ast::{
    AlterTableOperation, AlterTriggerOperation, AlterTypeOperation, AlterViewOperation, ColumnDef,
    ColumnOption, CreateTable, DropBehavior, LockTableMode, ObjectName, ObjectType,
    ReferentialAction, SqlOption, Statement, TableConstraint,
};

use super::read::Parsed;
use super::rules::Ctx;
use super::words::ByWords;

/// Whether `stmt` takes a lock that blocks reads or writes of a table in use (not one this
/// migration created).
pub(super) fn takes_lock(stmt: &Parsed, ctx: &Ctx) -> bool {
    match stmt {
        Parsed::DropIndexConcurrently { .. } | Parsed::Meta(_) | Parsed::Unreadable(_) => false,
        // SET STATISTICS and a column's options take SHARE UPDATE EXCLUSIVE, which blocks
        // neither reads nor writes.
        Parsed::ByWords(ByWords::ColumnSetting { table, setting, .. }) => {
            !matches!(setting.as_str(), "STATISTICS" | "OPTIONS") && ctx.in_use(table)
        }
        Parsed::ByWords(
            ByWords::SetSchema {
                table: relation, ..
            }
            | ByWords::SetTablespace { relation, .. }
            | ByWords::SetAccessMethod { relation, .. },
        ) => ctx.in_use(relation),
        // An ACCESS EXCLUSIVE lock of an index holds up every query that plans on its table.
        Parsed::ByWords(ByWords::IndexSetting { index, options }) => {
            options.iter().any(|o| blocking_option(o)) && ctx.in_use(index)
        }
        Parsed::ByWords(ByWords::Vacuum { full, .. }) => *full,
        // SHARE on the parent; ACCESS EXCLUSIVE on the partition's index.
        Parsed::ByWords(ByWords::IndexOnOnly { table }) => ctx.in_use(table),
        Parsed::ByWords(ByWords::AttachIndex) => true,
        Parsed::ByWords(ByWords::Domain {
            domain,
            checks_columns,
        }) => *checks_columns && ctx.in_use(domain),
        Parsed::ByWords(ByWords::LockedCatalog { table }) => ctx.in_use(table),
        // `nextval` waits for it, and so do the inserts that draw from the sequence.
        Parsed::ByWords(ByWords::Sequence { sequence, .. }) => ctx.in_use(sequence),
        Parsed::ByWords(ByWords::TypeAttributes { ty, .. }) => ctx.in_use(ty),
        Parsed::ByWords(ByWords::TypeOwner { ty }) => !ctx.schema.is_enum(ty) && ctx.in_use(ty),
        // Each table the role owns, under ACCESS EXCLUSIVE; a drop of each object it owns.
        Parsed::ByWords(
            ByWords::ReassignOwned | ByWords::DropOwned | ByWords::MoveTablespace { .. },
        ) => true,
        // A DO block's locks are those of its body, which is not read.
        Parsed::ByWords(
            ByWords::Statistics
            | ByWords::CreateTable { .. }
            | ByWords::Do
            | ByWords::Owner
            | ByWords::CreateMaterializedView { .. }
            | ByWords::ClusterMark
            | ByWords::Publication
            | ByWords::CatalogOnly
            | ByWords::ServerWide { .. }
            | ByWords::Renamed { .. }
            | ByWords::RoutineSetting,
        ) => false,
        // What the scripts lock is not known; the finding says they are not read.
        Parsed::ByWords(ByWords::ExtensionUpdate | ByWords::TextSearch) => false,
        // A routine locks no table; what its body does runs when it is called.
        Parsed::ByWords(ByWords::Routine { .. }) => false,
        Parsed::Reindex { concurrently, .. } => !concurrently,
        Parsed::Cluster { .. } => true,
        Parsed::Stmt(s) => match s.as_ref() {
            // Validating a constraint and most storage parameters take SHARE UPDATE EXCLUSIVE,
            // which lets reads and writes go on; every other change of a table blocks them.
            Statement::AlterTable(at) => {
                let refers = at.operations.iter().any(|op| match op {
                    AlterTableOperation::AddConstraint {
                        constraint: TableConstraint::ForeignKey(fk),
                        ..
                    } => ctx.in_use(&fk.foreign_table),
                    AlterTableOperation::AddColumn { column_def, .. } => {
                        referenced_by(column_def).any(|t| ctx.in_use(t))
                    }
                    _ => false,
                });
                refers
                    || ctx.in_use(&at.name)
                        && !at.operations.iter().all(|op| match op {
                            AlterTableOperation::ValidateConstraint { .. } => true,
                            AlterTableOperation::SetOptionsParens { options } => {
                                !sets_blocking(options)
                            }
                            AlterTableOperation::ResetOptions { options } => {
                                !resets_blocking(options)
                            }
                            _ => false,
                        })
            }
            // A view's every change takes ACCESS EXCLUSIVE, which its readers wait for; a
            // materialized view's storage parameters are a table's.
            Statement::AlterView(av) => {
                let weak = av.materialized
                    && match &av.operation {
                        AlterViewOperation::SetOptions { options } => !sets_blocking(options),
                        AlterViewOperation::ResetOptions { options } => !resets_blocking(options),
                        _ => false,
                    };
                !weak && ctx.in_use(&av.name)
            }
            // Triggers (SHARE ROW EXCLUSIVE to create) and policies (ACCESS EXCLUSIVE) change
            // how the table's rows are written or read.
            Statement::CreateTrigger(t) => ctx.in_use(&t.table_name),
            // Renaming a trigger takes ACCESS EXCLUSIVE; marking it as an extension's, ACCESS
            // SHARE.
            Statement::AlterTrigger(t) => {
                matches!(t.operation, AlterTriggerOperation::Rename { .. })
                    && ctx.in_use(&t.table_name)
            }
            Statement::DropTrigger(t) => t.table_name.as_ref().is_none_or(|n| ctx.in_use(n)),
            Statement::CreatePolicy(p) => ctx.in_use(&p.table_name),
            // A rule rewrites the table's queries: ACCESS EXCLUSIVE to create or drop.
            Statement::CreateRule(r) => ctx.in_use(&r.table_name),
            Statement::DropRule(r) => ctx.in_use(&r.table_name),
            Statement::AlterPolicy(p) => ctx.in_use(&p.table_name),
            Statement::DropPolicy(p) => ctx.in_use(&p.table_name),
            Statement::CreateIndex(ci) => !ci.concurrently && ctx.in_use(&ci.table_name),
            // A new table locks a table in use it refers to (SHARE ROW EXCLUSIVE, for the
            // foreign key's trigger) or is a partition of (ACCESS EXCLUSIVE).
            Statement::CreateTable(ct) => {
                ct.partition_of.as_ref().is_some_and(|p| ctx.in_use(p))
                    || foreign_tables(ct).any(|t| ctx.in_use(t))
            }
            // What this migration made is nobody's yet, but for a new table the tables its
            // foreign keys refer to (ACCESS EXCLUSIVE, to drop their triggers).
            Statement::Drop {
                object_type, names, ..
            } => {
                matches!(
                    object_type,
                    ObjectType::Table | ObjectType::Schema | ObjectType::Database
                ) || names.iter().any(|n| ctx.in_use(n))
            }
            // CASCADE drops what depends on the routine, domain or extension as well: a
            // trigger, a column of its type, a default or check that calls it, each under an
            // ACCESS EXCLUSIVE lock of its table (what depends on them is not known here).
            Statement::DropFunction(f) => {
                f.drop_behavior == Some(DropBehavior::Cascade)
                    && f.func_desc.iter().any(|d| ctx.routine_in_use(d))
            }
            Statement::DropDomain(d) => {
                d.drop_behavior == Some(DropBehavior::Cascade) && ctx.in_use(&d.name)
            }
            Statement::DropExtension(e) => {
                e.cascade_or_restrict == Some(ReferentialAction::Cascade)
            }
            Statement::Truncate(t) => t.table_names.iter().any(|t| ctx.in_use(&t.name)),
            // An enum's values and name: the type is locked, not the tables using it (checked
            // on PostgreSQL 15: their reads and writes go on meanwhile). A composite type's
            // name is changed under an ACCESS EXCLUSIVE lock of the type, which reads of the
            // tables using it wait for: any type not known to be an enum counts as one.
            Statement::AlterType(at) => {
                matches!(at.operation, AlterTypeOperation::Rename(_))
                    && !ctx.schema.is_enum(&at.name)
                    && ctx.in_use(&at.name)
            }
            Statement::Vacuum(v) => v.full,
            Statement::Lock(l) => {
                l.lock_mode.as_ref().is_none_or(|m| {
                    matches!(
                        m,
                        LockTableMode::Share
                            | LockTableMode::ShareRowExclusive
                            | LockTableMode::Exclusive
                            | LockTableMode::AccessExclusive
                    )
                }) && l.tables.iter().any(|t| ctx.in_use(&t.name))
            }
            Statement::RefreshMaterializedView(r) => !r.concurrently && ctx.in_use(&r.name),
            _ => false,
        },
    }
}

/// Storage parameters whose change takes SHARE UPDATE EXCLUSIVE (reads and writes go on), as
/// PostgreSQL 15 declares them (checked against `pg_locks`): those of vacuum, of the fill
/// factor, of TOAST and of parallel plans. Any other (`user_catalog_table`, a view's
/// `security_barrier`, GIN's `fastupdate`, BRIN's `pages_per_range`, GiST's `buffering`) and
/// any unknown name takes ACCESS EXCLUSIVE.
const WEAK_OPTIONS: &[&str] = &[
    "fillfactor",
    "deduplicate_items",
    "toast_tuple_target",
    "parallel_workers",
    "vacuum_index_cleanup",
    "vacuum_truncate",
    "log_autovacuum_min_duration",
];

/// Whether changing the storage parameter `name` blocks reads and writes.
fn blocking_option(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let name = name.trim_start_matches("toast.");
    !(name.starts_with("autovacuum_") || WEAK_OPTIONS.contains(&name))
}

/// Whether `SET (...)` of these storage parameters blocks reads and writes (anything other
/// than a storage parameter counts as one that does).
fn sets_blocking(options: &[SqlOption]) -> bool {
    options.iter().any(|o| match o {
        SqlOption::KeyValue { key, .. } | SqlOption::Ident(key) => {
            blocking_option(&key.to_string())
        }
        _ => true,
    })
}

/// Whether `RESET (...)` of these storage parameters blocks reads and writes.
fn resets_blocking(names: &[impl ToString]) -> bool {
    names.iter().any(|n| blocking_option(&n.to_string()))
}

/// The tables a new table's foreign keys refer to.
fn foreign_tables(ct: &CreateTable) -> impl Iterator<Item = &ObjectName> {
    let of_table = ct.constraints.iter().filter_map(|c| match c {
        TableConstraint::ForeignKey(fk) => Some(&fk.foreign_table),
        _ => None,
    });
    ct.columns.iter().flat_map(referenced_by).chain(of_table)
}

/// The table a column's `REFERENCES` names, if it has one.
fn referenced_by(column: &ColumnDef) -> impl Iterator<Item = &ObjectName> {
    column.options.iter().filter_map(|o| match &o.option {
        ColumnOption::ForeignKey(fk) => Some(&fk.foreign_table),
        _ => None,
    })
}
