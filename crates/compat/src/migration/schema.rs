//! What earlier migrations built: each table's columns and their types, so that a change of
//! type can be told apart from a widening that PostgreSQL makes without a rewrite; the columns
//! declared `NOT NULL` and the checks that prove a column holds no NULL, with which `SET NOT
//! NULL` (and a primary key made of an index) scans nothing; which columns each index covers;
//! and how partitioned tables split their rows, with the checks that let a partition be
//! attached without a scan.

use std::collections::{BTreeMap, BTreeSet};

use sqlparser::ast::{
    AlterColumnOperation, AlterIndexOperation, AlterTableOperation, AlterType, AlterTypeOperation,
    CharacterLength, ColumnDef, ColumnOption, CreateIndex, DataType, ExactNumberInfo, Expr,
    ForValues, Ident, IndexColumn, ObjectName, ObjectNamePart, ObjectType, Query,
    RenameTableNameKind, SetExpr, Statement, TableConstraint, TimezoneInfo,
    UserDefinedTypeRepresentation,
};

use super::checks::{self, Check, Checks, check, follow_checks, implies_bound};
use super::read::{Parsed, Written, parse};

/// A table's columns, by normalized name.
type Columns = BTreeMap<String, Column>;

/// What a column is known to be.
#[derive(Debug, Clone, PartialEq)]
struct Column {
    data_type: DataType,
    /// Declared `NOT NULL` (or part of the primary key).
    not_null: bool,
    /// Its collation (see [`collation_key`]); `None` for the type's default.
    collation: Option<String>,
}

/// An index whose keys are plain columns: its table's key and the columns, in order.
#[derive(Debug, Clone, PartialEq)]
struct Index {
    table: String,
    columns: Vec<String>,
}

/// How a partitioned table splits its rows.
#[derive(Debug, Clone, Default, PartialEq)]
struct Partitioning {
    /// The columns its partition key reads.
    key: BTreeSet<String>,
    /// Its default partition (by key), if it has one.
    default: Option<String>,
}

/// The tables and column types that migrations already applied created, as far as their
/// statements say: `CREATE TABLE`, `ADD COLUMN`, `ALTER COLUMN ... TYPE`, renames and drops;
/// the columns declared `NOT NULL` and every check, valid or not yet; the indexes on plain
/// columns; and each partitioned table's key and default partition.
/// Names are compared as PostgreSQL does (unquoted names fold to lower case; `public.` is
/// the default schema).
///
/// ```
/// use serin_compat::migration::{Schema, analyze_after};
/// let mut schema = Schema::default();
/// schema.learn("CREATE TABLE shop_customer (id bigint, name varchar(100))");
/// // Widening a varchar is a change of the catalog only: what is left is a note that text
/// // would keep the limit in a constraint instead.
/// let report = analyze_after(
///     "0002",
///     "SET lock_timeout = '1s'; ALTER TABLE shop_customer ALTER COLUMN name TYPE varchar(200)",
///     &schema,
/// )
/// .unwrap();
/// let rules: Vec<_> = report.findings().map(|(_, f)| f.rule.as_str()).collect();
/// assert_eq!(rules, ["prefer-text-field"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Schema {
    tables: BTreeMap<String, Columns>,
    /// The tables declared `PARTITION BY`.
    partitioned: BTreeMap<String, Partitioning>,
    /// Each table's checks, valid or not yet (known also of tables whose creation was not seen).
    checks: BTreeMap<String, Checks>,
    /// By normalized name, in the schema of its table (as `table_key` names tables).
    indexes: BTreeMap<String, Index>,
    /// The enum types (`CREATE TYPE ... AS ENUM`), whose changes lock no table.
    enums: BTreeSet<String>,
}

impl Schema {
    /// Learns what a migration already applied did to tables and columns. Statements that
    /// cannot be read, and text that cannot be split into statements, teach nothing. What a
    /// `ROLLBACK` undoes (since `BEGIN`, or since the savepoint a `ROLLBACK TO` names), or a
    /// transaction left open when psql's `\connect` or the file ends, PostgreSQL never
    /// applied, so it teaches nothing either: a check validated and rolled back proves
    /// nothing to a later `SET NOT NULL`.
    pub fn learn(&mut self, sql: &str) {
        let Ok(script) = parse("schema", sql, None) else {
            return;
        };
        // What the schema was at the transaction's start, then at each savepoint (by name).
        let mut saved: Vec<(Option<String>, Schema)> = Vec::new();
        for w in &script.statements {
            if w.parsed.reconnects()
                && let Some((_, before)) = saved.drain(..).next()
            {
                *self = before;
            }
            let Parsed::Stmt(statement) = &w.parsed else {
                self.apply(w);
                continue;
            };
            let named = |saved: &[(Option<String>, Schema)], name: &Ident| {
                let name = ident_key(name);
                saved
                    .iter()
                    .rposition(|(n, _)| n.as_deref() == Some(name.as_str()))
            };
            match statement.as_ref() {
                Statement::StartTransaction { .. } if saved.is_empty() => {
                    saved.push((None, self.clone()));
                }
                Statement::Savepoint { name } if !saved.is_empty() => {
                    saved.push((Some(ident_key(name)), self.clone()));
                }
                Statement::ReleaseSavepoint { name } => {
                    if let Some(at) = named(&saved, name) {
                        saved.truncate(at);
                    }
                }
                Statement::Rollback {
                    savepoint: Some(name),
                    ..
                } => {
                    if let Some(at) = named(&saved, name) {
                        saved.truncate(at + 1);
                        self.clone_from(&saved[at].1);
                    }
                }
                Statement::Commit { chain, .. } | Statement::Rollback { chain, .. } => {
                    let rolled_back = matches!(statement.as_ref(), Statement::Rollback { .. });
                    let Some((_, before)) = saved.drain(..).next() else {
                        // Outside a transaction, `AND CHAIN` is an error, which starts none.
                        continue;
                    };
                    if rolled_back {
                        *self = before;
                    }
                    if *chain {
                        saved.push((None, self.clone()));
                    }
                }
                _ => self.apply(w),
            }
        }
        if let Some((_, before)) = saved.into_iter().next() {
            *self = before;
        }
    }

    /// The type of `table.column`, if an earlier statement said it.
    pub(super) fn column_type(&self, table: &ObjectName, column: &Ident) -> Option<&DataType> {
        let column = self
            .tables
            .get(&table_key(table))?
            .get(&ident_key(column))?;
        Some(&column.data_type)
    }

    /// Whether `ty` is known to be an enum type, not a composite one.
    pub(super) fn is_enum(&self, ty: &ObjectName) -> bool {
        self.enums.contains(&table_key(ty))
    }

    /// Whether `table` is known to be partitioned (`CREATE TABLE ... PARTITION BY`).
    pub(super) fn is_partitioned(&self, table: &ObjectName) -> bool {
        self.partitioned.contains_key(&table_key(table))
    }

    /// Whether an earlier statement created `table` (and none dropped it since).
    pub(super) fn has_table(&self, table: &ObjectName) -> bool {
        self.tables.contains_key(&table_key(table))
    }

    /// Whether `table` is known, and known not to be partitioned.
    pub(super) fn is_plain_table(&self, table: &ObjectName) -> bool {
        let key = table_key(table);
        self.tables.contains_key(&key) && !self.partitioned.contains_key(&key)
    }

    /// Whether `table.column` is known to hold no NULL: it is declared `NOT NULL`, or a valid
    /// check proves it, so that `SET NOT NULL` skips its scan of the table (PostgreSQL 12+).
    pub(super) fn proves_not_null(&self, table: &ObjectName, column: &Ident) -> bool {
        self.holds_no_null(&table_key(table), &ident_key(column))
    }

    /// The schema as the other actions of `ALTER TABLE table` see it, when some of them drop
    /// constraints: PostgreSQL runs every drop of an `ALTER TABLE` before its other actions,
    /// whatever their order, so a check dropped beside `SET NOT NULL` no longer spares its
    /// scan. `None` when no action drops a constraint.
    pub(super) fn with_dropped_checks(
        &self,
        table: &ObjectName,
        operations: &[AlterTableOperation],
    ) -> Option<Schema> {
        let key = table_key(table);
        let mut after = None;
        for op in operations {
            if let AlterTableOperation::DropConstraint { .. } = op {
                let schema: &mut Schema = after.get_or_insert_with(|| self.clone());
                if let Some(checks) = schema.checks.get_mut(&key) {
                    follow_checks(&key, checks, op);
                }
            }
        }
        after
    }

    fn holds_no_null(&self, table: &str, column: &str) -> bool {
        let declared = self
            .tables
            .get(table)
            .and_then(|columns| columns.get(column))
            .is_some_and(|c| c.not_null);
        declared
            || self
                .valid_checks(table)
                .any(|c| c.not_null.contains(column))
    }

    fn valid_checks(&self, table: &str) -> impl Iterator<Item = &Check> {
        self.checks
            .get(table)
            .into_iter()
            .flat_map(BTreeMap::values)
            .filter(|c| c.valid)
    }

    /// Whether a valid check of `table` bounds every column of `key` (with no key known: any
    /// column), as a check must for PostgreSQL to find a partition bound proven by it.
    fn bounds(&self, table: &str, key: &BTreeSet<String>) -> bool {
        self.valid_checks(table)
            .any(|c| !c.bounds.is_empty() && c.bounds.is_superset(key))
    }

    /// Whether `ATTACH PARTITION partition` with `bound` scans `partition` (under an ACCESS
    /// EXCLUSIVE lock on it) to check that its rows fit: unless a valid check implies the bound
    /// and the key's columns hold no NULL (a range or list bound excludes NULL, and a check
    /// lets NULL through). On a key of one column, the check's comparisons with constants must
    /// keep it within the bound, as PostgreSQL's proof needs; on a key of several columns, or
    /// one not known, a check that reads every column of it is taken for the bound's. A hash
    /// bound no check proves.
    pub(super) fn attach_scans(
        &self,
        parent: &ObjectName,
        partition: &ObjectName,
        bound: &ForValues,
    ) -> bool {
        let key = self
            .partitioned
            .get(&table_key(parent))
            .map(|p| p.key.clone())
            .unwrap_or_default();
        let partition = table_key(partition);
        let implied = || match key.iter().collect::<Vec<_>>().as_slice() {
            [column] => self
                .valid_checks(&partition)
                .any(|c| implies_bound(c, column, bound) == Some(true)),
            _ => self.bounds(&partition, &key),
        };
        let proven = match bound {
            ForValues::With { .. } => false,
            ForValues::Default => self.bounds(&partition, &key),
            ForValues::In(_) | ForValues::From { .. } => {
                implied() && key.iter().all(|c| self.holds_no_null(&partition, c))
            }
        };
        !proven
    }

    /// The default partition of `parent` (by key) that adding a partition with `bound`
    /// scans, under an ACCESS EXCLUSIVE lock, for rows the new bound takes: unless a valid
    /// check of it bounds the partition key.
    pub(super) fn default_scanned(&self, parent: &ObjectName, bound: &ForValues) -> Option<String> {
        let parent = self.partitioned.get(&table_key(parent))?;
        let default = parent.default.as_ref()?;
        (!matches!(bound, ForValues::Default) && !self.bounds(default, &parent.key))
            .then(|| default.clone())
    }

    /// The columns of `index` on `table` that are known to exist and known to allow NULL, so
    /// that making a primary key of the index scans the table to set them `NOT NULL`. Empty
    /// when the index, the table or a column is not known.
    pub(super) fn nullable_keys(&self, table: &ObjectName, index: &Ident) -> Vec<String> {
        let table = table_key(table);
        let Some(index) = self.indexes.get(&index_key(&table, index)) else {
            return Vec::new();
        };
        let Some(columns) = self.tables.get(&table).filter(|_| index.table == table) else {
            return Vec::new();
        };
        index
            .columns
            .iter()
            .filter(|c| columns.contains_key(*c) && !self.holds_no_null(&table, c))
            .cloned()
            .collect()
    }

    /// The collation of `table.column` (see [`collation_key`]), if an earlier statement
    /// declared the column: `None` inside for the type's default.
    pub(super) fn column_collation(
        &self,
        table: &ObjectName,
        column: &Ident,
    ) -> Option<Option<&str>> {
        let column = self
            .tables
            .get(&table_key(table))?
            .get(&ident_key(column))?;
        Some(column.collation.as_deref())
    }

    /// Follows one statement.
    pub(super) fn apply(&mut self, written: &Written) {
        let statement = match &written.parsed {
            Parsed::Stmt(statement) => statement,
            Parsed::DropIndexConcurrently { names, .. } => {
                for name in names {
                    self.indexes.remove(&table_key(name));
                }
                return;
            }
            _ => return,
        };
        match statement.as_ref() {
            // A table made of a query's rows: its columns' types are not written out.
            Statement::Query(query) => {
                if let Some(table) = select_into(query) {
                    let key = table_key(&table);
                    self.forget_table(&key);
                    self.tables.insert(key, Columns::new());
                }
            }
            // PostgreSQL leaves a table that is there already as it is.
            Statement::CreateTable(ct) if ct.if_not_exists && self.has_table(&ct.name) => {}
            Statement::CreateTable(ct) => {
                let mut columns: Columns = ct
                    .columns
                    .iter()
                    .map(|c| (ident_key(&c.name), column(c)))
                    .collect();
                for c in &ct.constraints {
                    if let TableConstraint::PrimaryKey(pk) = c {
                        set_not_null(&mut columns, pk.columns.iter().filter_map(plain_column));
                    }
                }
                let key = table_key(&ct.name);
                if let Some(parent) = &ct.partition_of {
                    let parent = table_key(parent);
                    // A partition has its parent's columns.
                    if let Some(inherited) = self.tables.get(&parent) {
                        for (name, c) in inherited {
                            columns.entry(name.clone()).or_insert_with(|| c.clone());
                        }
                    }
                    if ct.for_values == Some(ForValues::Default)
                        && let Some(p) = self.partitioned.get_mut(&parent)
                    {
                        p.default = Some(key.clone());
                    }
                }
                self.tables.insert(key.clone(), columns);
                match &ct.partition_by {
                    Some(by) => {
                        let key_columns = checks::columns(by);
                        let partitioning = Partitioning {
                            key: key_columns,
                            default: None,
                        };
                        self.partitioned.insert(key.clone(), partitioning);
                    }
                    None => {
                        self.partitioned.remove(&key);
                    }
                }
                // Named as PostgreSQL names them: the columns' checks first, then the table's.
                let declared = ct
                    .columns
                    .iter()
                    .flat_map(|c| {
                        c.options.iter().filter_map(|o| match &o.option {
                            ColumnOption::Check(check) => Some(check),
                            _ => None,
                        })
                    })
                    .chain(ct.constraints.iter().filter_map(|c| match c {
                        TableConstraint::Check(check) => Some(check),
                        _ => None,
                    }));
                let mut checks = Checks::new();
                for c in declared {
                    let (name, c) = check(c, true, &key, &checks);
                    checks.insert(name, c);
                }
                self.checks.insert(key.clone(), checks);
                self.indexes.retain(|_, index| index.table != key);
            }
            Statement::CreateIndex(ci) => {
                let columns: Option<Vec<String>> = ci.columns.iter().map(plain_column).collect();
                if let (Some(key), Some(columns)) = (new_index_key(ci), columns) {
                    let table = table_key(&ci.table_name);
                    self.indexes.entry(key).or_insert(Index { table, columns });
                }
            }
            Statement::AlterIndex {
                name,
                operation: AlterIndexOperation::RenameIndex { index_name },
            } => {
                let from = table_key(name);
                let to = index_name.0.last().and_then(ObjectNamePart::as_ident);
                if let (Some(index), Some(to)) = (self.indexes.remove(&from), to) {
                    self.indexes.insert(index_key(&index.table, to), index);
                }
            }
            Statement::Drop {
                object_type: ObjectType::Index,
                names,
                ..
            } => {
                for name in names {
                    self.indexes.remove(&table_key(name));
                }
            }
            Statement::CreateType {
                name,
                representation: Some(UserDefinedTypeRepresentation::Enum { .. }),
            } => {
                self.enums.insert(table_key(name));
            }
            Statement::AlterType(AlterType {
                name,
                operation: AlterTypeOperation::Rename(r),
            }) if self.enums.contains(&table_key(name)) => {
                self.enums.remove(&table_key(name));
                // The new name stays in the old one's schema.
                let mut to = name.clone();
                if let Some(last) = to.0.last_mut() {
                    *last = ObjectNamePart::Identifier(r.new_name.clone());
                }
                self.enums.insert(table_key(&to));
            }
            Statement::Drop {
                object_type: ObjectType::Type,
                names,
                ..
            } => {
                for name in names {
                    self.enums.remove(&table_key(name));
                }
            }
            Statement::AlterTable(at) => {
                let mut key = table_key(&at.name);
                for op in &at.operations {
                    if let AlterTableOperation::RenameTable { table_name } = op {
                        let (RenameTableNameKind::As(to) | RenameTableNameKind::To(to)) =
                            table_name;
                        // The new name stays in the old one's schema.
                        let to = match key.rsplit_once('.') {
                            Some((schema, _)) if to.0.len() == 1 => {
                                format!("{schema}.{}", table_key(to))
                            }
                            _ => table_key(to),
                        };
                        if let Some(columns) = self.tables.remove(&key) {
                            self.tables.insert(to.clone(), columns);
                        }
                        if let Some(checks) = self.checks.remove(&key) {
                            self.checks.insert(to.clone(), checks);
                        }
                        if let Some(p) = self.partitioned.remove(&key) {
                            self.partitioned.insert(to.clone(), p);
                        }
                        for p in self.partitioned.values_mut() {
                            if p.default.as_ref() == Some(&key) {
                                p.default = Some(to.clone());
                            }
                        }
                        for index in self.indexes.values_mut().filter(|i| i.table == key) {
                            index.table.clone_from(&to);
                        }
                        key = to;
                    } else {
                        self.follow_indexes(&key, op);
                        self.follow_partitions(&key, op);
                        if let Some(columns) = self.tables.get_mut(&key) {
                            alter(columns, op, &written.collations);
                        }
                        follow_checks(&key, self.checks.entry(key.clone()).or_default(), op);
                    }
                }
            }
            Statement::Drop {
                object_type: ObjectType::Table,
                names,
                ..
            } => {
                for name in names {
                    self.forget_table(&table_key(name));
                }
            }
            _ => {}
        }
    }

    /// Forgets what was known of the table `key`: it is dropped, or made anew.
    fn forget_table(&mut self, key: &str) {
        self.tables.remove(key);
        self.checks.remove(key);
        self.partitioned.remove(key);
        for p in self.partitioned.values_mut() {
            if p.default.as_deref() == Some(key) {
                p.default = None;
            }
        }
        self.indexes.retain(|_, index| index.table != key);
    }

    /// Follows a partition attached to or detached from `table`: which is its default.
    fn follow_partitions(&mut self, table: &str, op: &AlterTableOperation) {
        let Some(p) = self.partitioned.get_mut(table) else {
            return;
        };
        match op {
            AlterTableOperation::AttachPartitionOf {
                partition,
                for_values: ForValues::Default,
            } => p.default = Some(table_key(partition)),
            AlterTableOperation::DetachPartitionOf { partition, .. }
                if p.default == Some(table_key(partition)) =>
            {
                p.default = None;
            }
            _ => {}
        }
    }

    /// Follows one `ALTER TABLE` operation's effect on the indexes of `table`: a constraint
    /// made of an index takes the constraint's name (and a primary key's columns become `NOT
    /// NULL`); dropping a column drops the indexes on it; renaming one renames their key.
    fn follow_indexes(&mut self, table: &str, op: &AlterTableOperation) {
        match op {
            AlterTableOperation::AddConstraint {
                constraint:
                    c @ (TableConstraint::PrimaryKeyUsingIndex(using)
                    | TableConstraint::UniqueUsingIndex(using)),
                ..
            } => {
                let Some(index) = self.indexes.remove(&index_key(table, &using.index_name)) else {
                    return;
                };
                if matches!(c, TableConstraint::PrimaryKeyUsingIndex(_))
                    && let Some(columns) = self.tables.get_mut(table)
                {
                    set_not_null(columns, index.columns.iter().cloned());
                }
                let name = using.name.as_ref().unwrap_or(&using.index_name);
                self.indexes.insert(index_key(table, name), index);
            }
            AlterTableOperation::DropColumn { column_names, .. } => {
                let dropped: Vec<String> = column_names.iter().map(ident_key).collect();
                self.indexes.retain(|_, index| {
                    index.table != table || !index.columns.iter().any(|c| dropped.contains(c))
                });
            }
            AlterTableOperation::RenameColumn {
                old_column_name,
                new_column_name,
            } => {
                let (old, new) = (ident_key(old_column_name), ident_key(new_column_name));
                for index in self.indexes.values_mut().filter(|i| i.table == table) {
                    for c in index.columns.iter_mut().filter(|c| **c == old) {
                        c.clone_from(&new);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The table a `SELECT ... INTO` makes, which PostgreSQL reads from the first `SELECT` of
/// the query (`SELECT ... INTO new FROM a UNION SELECT ... FROM b`).
pub(super) fn select_into(query: &Query) -> Option<ObjectName> {
    let mut body = query.body.as_ref();
    loop {
        body = match body {
            SetExpr::Select(select) => {
                let into = select.into.as_ref()?;
                return match into.targets.as_slice() {
                    [Expr::Identifier(name)] => Some(ObjectName::from(vec![name.clone()])),
                    [Expr::CompoundIdentifier(parts)] => Some(ObjectName::from(parts.clone())),
                    _ => None,
                };
            }
            SetExpr::SetOperation { left, .. } => left,
            SetExpr::Query(query) => query.body.as_ref(),
            _ => return None,
        };
    }
}

/// A column as `CREATE TABLE` or `ADD COLUMN` declares it.
fn column(def: &ColumnDef) -> Column {
    Column {
        data_type: def.data_type.clone(),
        not_null: def.options.iter().any(|o| {
            matches!(
                o.option,
                ColumnOption::NotNull | ColumnOption::PrimaryKey(_)
            )
        }),
        collation: def.options.iter().find_map(|o| match &o.option {
            ColumnOption::Collation(name) => collation_key(&name.to_string()),
            _ => None,
        }),
    }
}

/// A collation as PostgreSQL finds it (`pg_catalog."C"` is `"C"`, an unquoted name folds to
/// lower case); `None` for `"default"`, the type's default collation.
pub(super) fn collation_key(written: &str) -> Option<String> {
    let name = written.strip_prefix("pg_catalog.").unwrap_or(written);
    let name = match name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
        Some(quoted) => quoted.to_owned(),
        None => name.to_ascii_lowercase(),
    };
    (name != "default").then_some(name)
}

/// Marks `names` `NOT NULL`, as a primary key does.
fn set_not_null(columns: &mut Columns, names: impl IntoIterator<Item = String>) {
    for name in names {
        if let Some(c) = columns.get_mut(&name) {
            c.not_null = true;
        }
    }
}

/// The column an index key names, if it is a plain column (not an expression).
fn plain_column(key: &IndexColumn) -> Option<String> {
    match &key.column.expr {
        Expr::Identifier(column) => Some(ident_key(column)),
        _ => None,
    }
}

/// The collation a change of `column`'s type gives it: the one its `COLLATE` names, or the
/// type's default (`None`).
pub(super) fn new_collation(column: &Ident, collations: &[(String, String)]) -> Option<String> {
    let column = ident_key(column);
    collations
        .iter()
        .find(|(c, _)| *c == column)
        .and_then(|(_, collation)| collation_key(collation))
}

/// The key of the index `CREATE INDEX` names (it may leave the name to PostgreSQL).
pub(super) fn new_index_key(ci: &CreateIndex) -> Option<String> {
    let name = ci.name.as_ref()?.0.last()?.as_ident()?;
    Some(index_key(&table_key(&ci.table_name), name))
}

/// An index's key: PostgreSQL keeps an index in its table's schema.
fn index_key(table: &str, index: &Ident) -> String {
    match table.rsplit_once('.') {
        Some((schema, _)) => format!("{schema}.{}", ident_key(index)),
        None => ident_key(index),
    }
}

/// Follows one `ALTER TABLE` operation on a known table; `collations` holds the columns whose
/// new type carries `COLLATE`.
fn alter(columns: &mut Columns, op: &AlterTableOperation, collations: &[(String, String)]) {
    match op {
        // PostgreSQL leaves a column that is there already as it is.
        AlterTableOperation::AddColumn {
            column_def,
            if_not_exists,
            ..
        } => {
            let key = ident_key(&column_def.name);
            if !(*if_not_exists && columns.contains_key(&key)) {
                columns.insert(key, column(column_def));
            }
        }
        AlterTableOperation::DropColumn { column_names, .. } => {
            for c in column_names {
                columns.remove(&ident_key(c));
            }
        }
        AlterTableOperation::RenameColumn {
            old_column_name,
            new_column_name,
        } => {
            if let Some(c) = columns.remove(&ident_key(old_column_name)) {
                columns.insert(ident_key(new_column_name), c);
            }
        }
        AlterTableOperation::AlterColumn { column_name, op } => {
            let Some(c) = columns.get_mut(&ident_key(column_name)) else {
                return;
            };
            match op {
                // Without `COLLATE`, the column takes the new type's default collation.
                AlterColumnOperation::SetDataType { data_type, .. } => {
                    c.data_type = data_type.clone();
                    c.collation = new_collation(column_name, collations);
                }
                AlterColumnOperation::SetNotNull => c.not_null = true,
                AlterColumnOperation::DropNotNull => c.not_null = false,
                _ => {}
            }
        }
        AlterTableOperation::AddConstraint {
            constraint: TableConstraint::PrimaryKey(pk),
            ..
        } => set_not_null(columns, pk.columns.iter().filter_map(plain_column)),
        _ => {}
    }
}

/// A name as PostgreSQL resolves it: unquoted parts fold to lower case, and `public` (the
/// default schema) is left out.
pub(super) fn table_key(name: &ObjectName) -> String {
    let parts: Vec<String> = name.0.iter().map(part_key).collect();
    match parts.as_slice() {
        [schema, table] if schema == "public" => table.clone(),
        _ => parts.join("."),
    }
}

/// A part of a dotted name as PostgreSQL keeps it (see [`ident_key`]).
pub(super) fn part_key(part: &ObjectNamePart) -> String {
    match part {
        ObjectNamePart::Identifier(i) => ident_key(i),
        other => other.to_string(),
    }
}

/// A name as PostgreSQL keeps it: unquoted, its ASCII letters fold to lower case (others stay
/// as written, as in a UTF-8 database), and any name is cut to [`MAX_NAME_BYTES`].
pub(super) fn ident_key(ident: &Ident) -> String {
    let name = if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_ascii_lowercase()
    };
    clip(&name, MAX_NAME_BYTES).to_owned()
}

/// The longest name PostgreSQL keeps, in bytes (`NAMEDATALEN - 1`); it cuts longer ones.
pub(super) const MAX_NAME_BYTES: usize = 63;

/// The longest start of `s` of at most `max` bytes that ends between characters, as
/// PostgreSQL cuts a name.
pub(super) fn clip(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Whether a `USING` expression only restates the conversion PostgreSQL makes without one:
/// the column itself, or the column cast to the new type (`USING ("email"::varchar(255))`, as
/// Knex writes every change of type).
pub(super) fn restates_column(using: &Expr, column: &Ident, new: &DataType) -> bool {
    match using {
        Expr::Nested(inner) => restates_column(inner, column, new),
        Expr::Identifier(id) => ident_key(id) == ident_key(column),
        Expr::Cast {
            expr, data_type, ..
        } => canonical(data_type) == canonical(new) && restates_column(expr, column, new),
        _ => false,
    }
}

/// `ty` under one of its names, so that the spellings of one type compare equal: `int` and
/// `int4` are `integer`, `int8` is `bigint`, `int2` `smallint`, `bool` `boolean`, `float4` and
/// `float(1)` to `float(24)` are `real`, `float8` and any other `float` `double precision`,
/// `char(n)` is `character(n)` and `decimal` `numeric`.
pub(super) fn canonical(ty: &DataType) -> DataType {
    use DataType as T;
    match ty {
        T::Int(None) | T::Int4(None) => T::Integer(None),
        T::Int8(None) => T::BigInt(None),
        T::Int2(None) => T::SmallInt(None),
        T::Bool => T::Boolean,
        T::Float4 => T::Real,
        T::Float(ExactNumberInfo::Precision(p)) if *p <= 24 => T::Real,
        T::Float8 | T::Float(_) => T::DoublePrecision,
        T::Char(n) => T::Character(*n),
        T::Decimal(info) | T::Dec(info) => T::Numeric(*info),
        other => other.clone(),
    }
}

/// The most digits of a second that a time, timestamp or interval keeps; the unbounded type
/// keeps as many.
const MAX_SECONDS_PRECISION: u64 = 6;

/// A time, timestamp or interval type apart from its precision (its kind, and whether it has a
/// time zone or which fields it keeps), and the precision of its seconds (`None`: unbounded).
fn temporal(ty: &DataType) -> Option<(String, Option<u64>)> {
    let zoned = |tz: &TimezoneInfo| matches!(tz, TimezoneInfo::WithTimeZone | TimezoneInfo::Tz);
    match ty {
        DataType::Timestamp(p, tz) => Some((format!("timestamp {}", zoned(tz)), *p)),
        DataType::Time(p, tz) => Some((format!("time {}", zoned(tz)), *p)),
        DataType::Interval { fields, precision } => Some((
            format!(
                "interval {}",
                fields.as_ref().map(ToString::to_string).unwrap_or_default()
            ),
            *precision,
        )),
        _ => None,
    }
}

/// Whether `ty` is the citext extension's case-insensitive text.
pub(super) fn is_citext(ty: &DataType) -> bool {
    matches!(ty, DataType::Custom(name, args) if args.is_empty() && name.to_string().eq_ignore_ascii_case("citext"))
}

/// Whether changing a column from `old` to `new` (without `USING`) leaves every stored value
/// as it is, so PostgreSQL changes only the catalog: a varchar, varbit or numeric precision
/// widened or unbounded, the fractional seconds of a `timestamp`, `timestamptz`, `time`,
/// `timetz` or `interval` widened or unbounded, varchar to text (or `citext`) and back to an
/// unbounded varchar, `cidr` to `inet`, or no change at all, however the types are spelled
/// (`int4` is `integer`). (`timestamp` to `timestamptz` also qualifies, but only when the
/// session's time zone is UTC, which a migration cannot show.)
pub(super) fn keeps_values(old: &DataType, new: &DataType) -> bool {
    use DataType::{CharVarying, CharacterVarying, Custom, Numeric, Text, Varchar};
    let (old, new) = (&canonical(old), &canonical(new));
    // A varchar's length limit (`None`: no limit).
    let varchar = |t: &DataType| match t {
        Varchar(n) | CharacterVarying(n) | CharVarying(n) => Some(match n {
            Some(CharacterLength::IntegerLength { length, .. }) => Some(*length),
            Some(CharacterLength::Max) | None => None,
        }),
        Text => Some(None),
        // The extension's case-insensitive text: an unbounded varchar on disk.
        t if is_citext(t) => Some(None),
        _ => None,
    };
    let numeric = |t: &DataType| match t {
        Numeric(info) => Some(*info),
        _ => None,
    };
    let custom = |t: &DataType| match t {
        Custom(name, args) if args.is_empty() => Some(name.to_string().to_lowercase()),
        _ => None,
    };
    if old == new {
        return true;
    }
    if let (Some((kind, a)), Some((to, b))) = (temporal(old), temporal(new)) {
        // An interval of no fields and no precision takes any interval as it is.
        let any_interval = matches!(old, DataType::Interval { .. })
            && matches!(
                new,
                DataType::Interval {
                    fields: None,
                    precision: None
                }
            );
        // Otherwise the values stay when the precision goes, becomes the most there is (what
        // an unbounded one keeps), or grows from a bound one.
        return any_interval
            || kind == to
                && match (a, b) {
                    (_, None) => true,
                    (_, Some(b)) if b >= MAX_SECONDS_PRECISION => true,
                    (Some(a), Some(b)) => b >= a,
                    (None, Some(_)) => false,
                };
    }
    if let (Some(old), Some(new)) = (varchar(old), varchar(new)) {
        return match (old, new) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(a), Some(b)) => b >= a,
        };
    }
    if let (Some(old), Some(new)) = (numeric(old), numeric(new)) {
        return match (old, new) {
            (_, ExactNumberInfo::None) => true,
            (ExactNumberInfo::Precision(a), ExactNumberInfo::Precision(b)) => b >= a,
            (
                ExactNumberInfo::PrecisionAndScale(a, s),
                ExactNumberInfo::PrecisionAndScale(b, t),
            ) => s == t && b >= a,
            _ => false,
        };
    }
    matches!(
        (custom(old).as_deref(), custom(new).as_deref()),
        (Some("cidr"), Some("inet"))
    ) || matches!(
        (old, new),
        (
            DataType::VarBit(Some(a)) | DataType::BitVarying(Some(a)),
            DataType::VarBit(b) | DataType::BitVarying(b),
        ) if b.is_none_or(|b| b >= *a)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn ty(sql: &str) -> DataType {
        Parser::new(&PostgreSqlDialect {})
            .try_with_sql(sql)
            .and_then(|mut p| p.parse_data_type())
            .expect("a type")
    }

    #[test]
    fn widenings_keep_values_and_the_rest_do_not() {
        for (old, new) in [
            ("varchar(100)", "varchar(200)"),
            ("varchar(100)", "varchar"),
            ("character varying(10)", "text"),
            ("text", "varchar"),
            ("numeric(10, 2)", "numeric(12, 2)"),
            ("numeric(10, 2)", "numeric"),
            ("decimal(5)", "decimal(9)"),
            ("cidr", "inet"),
            ("bigint", "bigint"),
            ("varchar(20)", "citext"),
            ("citext", "text"),
            ("varbit(5)", "varbit(10)"),
            ("bit varying(5)", "bit varying(10)"),
            ("bit varying(5)", "varbit"),
        ] {
            assert!(keeps_values(&ty(old), &ty(new)), "{old} -> {new}");
        }
        for (old, new) in [
            ("varchar(200)", "varchar(100)"),
            ("text", "varchar(50)"),
            ("numeric(10, 2)", "numeric(12, 3)"),
            ("numeric", "numeric(12, 2)"),
            ("int", "bigint"),
            ("timestamp", "timestamptz"),
            ("inet", "cidr"),
            ("char(10)", "text"),
            ("citext", "varchar(20)"),
            ("bit varying(10)", "bit varying(5)"),
        ] {
            assert!(!keeps_values(&ty(old), &ty(new)), "{old} -> {new}");
        }
    }

    #[test]
    fn columns_follow_creates_alters_renames_and_drops() {
        let mut s = Schema::default();
        s.learn(
            "CREATE TABLE public.\"Orders\" (id bigint, total numeric(10,2), note text);\n\
             ALTER TABLE \"Orders\" ALTER COLUMN total TYPE numeric(12,2), RENAME COLUMN note TO memo;\n\
             ALTER TABLE \"Orders\" RENAME TO orders_v2; CREATE TABLE gone (a int); DROP TABLE gone;\n\
             ALTER TABLE orders_v2 ADD COLUMN Status varchar(20), DROP COLUMN id;",
        );
        let name = |n: &str| ObjectName::from(vec![Ident::new(n)]);
        let col = |n: &str| Ident::new(n);
        let t = name("orders_v2");
        assert_eq!(s.column_type(&t, &col("total")), Some(&ty("numeric(12,2)")));
        assert_eq!(s.column_type(&t, &col("memo")), Some(&ty("text")));
        assert_eq!(s.column_type(&t, &col("STATUS")), Some(&ty("varchar(20)")));
        assert_eq!(s.column_type(&t, &col("note")), None);
        assert_eq!(s.column_type(&t, &col("id")), None);
        assert_eq!(s.column_type(&name("Orders"), &col("total")), None);
        assert_eq!(s.column_type(&name("gone"), &col("a")), None);
        // Text that cannot be read teaches nothing, and breaks nothing.
        let before = s.clone();
        s.learn("CREATE TABLE 'open");
        assert_eq!(s, before);
    }

    #[test]
    fn what_a_rollback_undoes_teaches_nothing() {
        let made = "CREATE TABLE t (c text);\n\
                    ALTER TABLE t ADD CONSTRAINT t_c_nn CHECK (c IS NOT NULL) NOT VALID;\n";
        let proves = |history: &str| {
            let mut s = Schema::default();
            s.learn(&format!("{made}{history}"));
            let name = ObjectName::from(vec![Ident::new("t")]);
            (
                s.proves_not_null(&name, &Ident::new("c")),
                s.column_type(&name, &Ident::new("c")).cloned(),
            )
        };
        let validate = "ALTER TABLE t VALIDATE CONSTRAINT t_c_nn;";
        let retype = "ALTER TABLE t ALTER COLUMN c TYPE varchar(10);";
        let text = Some(ty("text"));
        for (history, want) in [
            (
                format!("{validate} {retype}"),
                (true, Some(ty("varchar(10)"))),
            ),
            (
                format!("BEGIN; {validate} {retype} COMMIT;"),
                (true, Some(ty("varchar(10)"))),
            ),
            (
                format!("BEGIN; {validate} {retype} ROLLBACK;"),
                (false, text.clone()),
            ),
            (format!("BEGIN; {validate} {retype}"), (false, text.clone())),
            (
                format!("BEGIN; {validate} \\connect other\n"),
                (false, text.clone()),
            ),
            (
                format!("BEGIN; {validate} SAVEPOINT s; {retype} ROLLBACK TO SAVEPOINT s; COMMIT;"),
                (true, text.clone()),
            ),
            (
                format!("BEGIN; SAVEPOINT s; {validate} RELEASE SAVEPOINT s; ROLLBACK;"),
                (false, text.clone()),
            ),
            (
                format!("BEGIN; {validate} ROLLBACK AND CHAIN; {retype} COMMIT;"),
                (false, Some(ty("varchar(10)"))),
            ),
        ] {
            assert_eq!(proves(&history), want, "{history}");
        }
    }

    #[test]
    fn a_chain_outside_a_transaction_starts_none() {
        // PostgreSQL refuses `COMMIT AND CHAIN` outside a transaction: what follows runs on its
        // own and stays, though the file ends without a COMMIT.
        for chain in ["COMMIT AND CHAIN;", "ROLLBACK AND CHAIN;"] {
            let mut s = Schema::default();
            s.learn(&format!(
                "CREATE TABLE t (c text);\n{chain}\nALTER TABLE t ALTER COLUMN c TYPE int;\n"
            ));
            let name = ObjectName::from(vec![Ident::new("t")]);
            assert_eq!(
                s.column_type(&name, &Ident::new("c")),
                Some(&ty("int")),
                "{chain}"
            );
        }
    }
}
