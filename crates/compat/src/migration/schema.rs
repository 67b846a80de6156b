//! What earlier migrations built: each table's columns and their types, so that a change of
//! type can be told apart from a widening that PostgreSQL makes without a rewrite; and the
//! checks that prove a column holds no NULL, with which `SET NOT NULL` scans nothing.

use std::collections::{BTreeMap, BTreeSet};

use sqlparser::ast::{
    AlterColumnOperation, AlterTableOperation, BinaryOperator, CharacterLength, CheckConstraint,
    ColumnOption, DataType, ExactNumberInfo, Expr, Ident, ObjectName, ObjectNamePart, ObjectType,
    RenameTableNameKind, Statement, TableConstraint,
};

use super::read::{Parsed, parse};

/// A table's columns and their types, by normalized name.
type Columns = BTreeMap<String, DataType>;

/// A table's checks that prove a column holds no NULL (`CHECK (c IS NOT NULL)`), by constraint
/// name: the column, and whether the check is valid (added without `NOT VALID`, or validated).
type Proofs = BTreeMap<String, (String, bool)>;

/// The tables and column types that migrations already applied created, as far as their
/// statements say: `CREATE TABLE`, `ADD COLUMN`, `ALTER COLUMN ... TYPE`, renames and drops;
/// and the checks that prove a column holds no NULL, valid or not yet.
/// Names are compared as PostgreSQL does (unquoted names fold to lower case; `public.` is
/// the default schema).
///
/// ```
/// use serin_compat::migration::{Schema, analyze_after};
/// let mut schema = Schema::default();
/// schema.learn("CREATE TABLE shop_customer (id bigint, name varchar(100))");
/// // Widening a varchar is a change of the catalog only.
/// let report = analyze_after(
///     "0002",
///     "SET lock_timeout = '1s'; ALTER TABLE shop_customer ALTER COLUMN name TYPE varchar(200)",
///     &schema,
/// )
/// .unwrap();
/// assert_eq!(report.findings().count(), 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Schema {
    tables: BTreeMap<String, Columns>,
    /// The tables among them declared `PARTITION BY`.
    partitioned: BTreeSet<String>,
    proofs: BTreeMap<String, Proofs>,
}

impl Schema {
    /// Learns what a migration already applied did to tables and columns. Statements that
    /// cannot be read, and text that cannot be split into statements, teach nothing.
    pub fn learn(&mut self, sql: &str) {
        if let Ok(script) = parse("schema", sql, None) {
            for w in &script.statements {
                self.apply(&w.parsed);
            }
        }
    }

    /// The type of `table.column`, if an earlier statement said it.
    pub(super) fn column_type(&self, table: &ObjectName, column: &Ident) -> Option<&DataType> {
        self.tables.get(&table_key(table))?.get(&ident_key(column))
    }

    /// Whether `table` is known to be partitioned (`CREATE TABLE ... PARTITION BY`).
    pub(super) fn is_partitioned(&self, table: &ObjectName) -> bool {
        self.partitioned.contains(&table_key(table))
    }

    /// Whether `table` is known, and known not to be partitioned.
    pub(super) fn is_plain_table(&self, table: &ObjectName) -> bool {
        let key = table_key(table);
        self.tables.contains_key(&key) && !self.partitioned.contains(&key)
    }

    /// Whether a valid check proves that `table.column` holds no NULL, so that `SET NOT NULL`
    /// skips its scan of the table (PostgreSQL 12+).
    pub(super) fn proves_not_null(&self, table: &ObjectName, column: &Ident) -> bool {
        let column = ident_key(column);
        self.proofs
            .get(&table_key(table))
            .is_some_and(|p| p.values().any(|(c, valid)| *valid && *c == column))
    }

    /// Follows one statement.
    pub(super) fn apply(&mut self, parsed: &Parsed) {
        let Parsed::Stmt(statement) = parsed else {
            return;
        };
        match statement.as_ref() {
            Statement::CreateTable(ct) => {
                let columns = ct
                    .columns
                    .iter()
                    .map(|c| (ident_key(&c.name), c.data_type.clone()))
                    .collect();
                let key = table_key(&ct.name);
                self.tables.insert(key.clone(), columns);
                if ct.partition_by.is_some() {
                    self.partitioned.insert(key.clone());
                } else {
                    self.partitioned.remove(&key);
                }
                let checks = ct
                    .constraints
                    .iter()
                    .filter_map(|c| match c {
                        TableConstraint::Check(check) => Some(check),
                        _ => None,
                    })
                    .chain(ct.columns.iter().flat_map(|c| {
                        c.options.iter().filter_map(|o| match &o.option {
                            ColumnOption::Check(check) => Some(check),
                            _ => None,
                        })
                    }));
                let proofs: Proofs = checks.filter_map(|c| proof(c, true)).collect();
                self.proofs.insert(key, proofs);
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
                        if let Some(proofs) = self.proofs.remove(&key) {
                            self.proofs.insert(to.clone(), proofs);
                        }
                        if self.partitioned.remove(&key) {
                            self.partitioned.insert(to.clone());
                        }
                        key = to;
                    } else {
                        if let Some(columns) = self.tables.get_mut(&key) {
                            alter(columns, op);
                        }
                        follow_checks(self.proofs.entry(key.clone()).or_default(), op);
                    }
                }
            }
            Statement::Drop {
                object_type: ObjectType::Table,
                names,
                ..
            } => {
                for name in names {
                    self.tables.remove(&table_key(name));
                    self.proofs.remove(&table_key(name));
                    self.partitioned.remove(&table_key(name));
                }
            }
            _ => {}
        }
    }
}

/// The proof a check gives, if it proves a column holds no NULL: its name and the column.
fn proof(check: &CheckConstraint, valid: bool) -> Option<(String, (String, bool))> {
    let name = check.name.as_ref().map(ident_key).unwrap_or_default();
    Some((name, (not_null_column(&check.expr)?, valid)))
}

/// The column `expr` proves holds no NULL: `c IS NOT NULL`, alone or in a conjunction. (Any
/// other check passes on NULL, so it proves nothing.)
fn not_null_column(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Nested(inner) => not_null_column(inner),
        Expr::IsNotNull(inner) => match inner.as_ref() {
            Expr::Identifier(column) => Some(ident_key(column)),
            _ => None,
        },
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => not_null_column(left).or_else(|| not_null_column(right)),
        _ => None,
    }
}

/// Follows one `ALTER TABLE` operation's effect on a table's not-NULL proofs.
fn follow_checks(proofs: &mut Proofs, op: &AlterTableOperation) {
    match op {
        AlterTableOperation::AddConstraint {
            constraint: TableConstraint::Check(check),
            not_valid,
        } => proofs.extend(proof(check, !not_valid)),
        AlterTableOperation::ValidateConstraint { name } => {
            if let Some((_, valid)) = proofs.get_mut(&ident_key(name)) {
                *valid = true;
            }
        }
        AlterTableOperation::DropConstraint { name, .. } => {
            proofs.remove(&ident_key(name));
        }
        AlterTableOperation::RenameConstraint { old_name, new_name } => {
            if let Some(p) = proofs.remove(&ident_key(old_name)) {
                proofs.insert(ident_key(new_name), p);
            }
        }
        AlterTableOperation::RenameColumn {
            old_column_name,
            new_column_name,
        } => {
            let (old, new) = (ident_key(old_column_name), ident_key(new_column_name));
            for (column, _) in proofs.values_mut() {
                if *column == old {
                    column.clone_from(&new);
                }
            }
        }
        AlterTableOperation::DropColumn { column_names, .. } => {
            let dropped: Vec<String> = column_names.iter().map(ident_key).collect();
            proofs.retain(|_, (column, _)| !dropped.contains(column));
        }
        _ => {}
    }
}

/// Follows one `ALTER TABLE` operation on a known table.
fn alter(columns: &mut Columns, op: &AlterTableOperation) {
    match op {
        AlterTableOperation::AddColumn { column_def, .. } => {
            columns.insert(ident_key(&column_def.name), column_def.data_type.clone());
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
            if let Some(ty) = columns.remove(&ident_key(old_column_name)) {
                columns.insert(ident_key(new_column_name), ty);
            }
        }
        AlterTableOperation::AlterColumn {
            column_name,
            op: AlterColumnOperation::SetDataType { data_type, .. },
        } => {
            columns.insert(ident_key(column_name), data_type.clone());
        }
        _ => {}
    }
}

/// A name as PostgreSQL resolves it: unquoted parts fold to lower case, and `public` (the
/// default schema) is left out.
pub(super) fn table_key(name: &ObjectName) -> String {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => ident_key(i),
            other => other.to_string(),
        })
        .collect();
    match parts.as_slice() {
        [schema, table] if schema == "public" => table.clone(),
        _ => parts.join("."),
    }
}

fn ident_key(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
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
        } => data_type == new && restates_column(expr, column, new),
        _ => false,
    }
}

/// Whether changing a column from `old` to `new` (without `USING`) leaves every stored value
/// as it is, so PostgreSQL changes only the catalog: a varchar, varbit or numeric precision
/// widened or unbounded, varchar to text (or `citext`) and back to an unbounded varchar, `cidr`
/// to `inet`, or no change at all. (`timestamp` to `timestamptz` also qualifies, but only when the
/// session's time zone is UTC, which a migration cannot show.)
pub(super) fn keeps_values(old: &DataType, new: &DataType) -> bool {
    use DataType::{CharVarying, CharacterVarying, Custom, Decimal, Numeric, Text, Varchar};
    // A varchar's length limit (`None`: no limit).
    let varchar = |t: &DataType| match t {
        Varchar(n) | CharacterVarying(n) | CharVarying(n) => Some(match n {
            Some(CharacterLength::IntegerLength { length, .. }) => Some(*length),
            Some(CharacterLength::Max) | None => None,
        }),
        Text => Some(None),
        // The extension's case-insensitive text: an unbounded varchar on disk.
        Custom(name, args)
            if args.is_empty() && name.to_string().eq_ignore_ascii_case("citext") =>
        {
            Some(None)
        }
        _ => None,
    };
    let numeric = |t: &DataType| match t {
        Numeric(info) | Decimal(info) => Some(*info),
        _ => None,
    };
    let custom = |t: &DataType| match t {
        Custom(name, args) if args.is_empty() => Some(name.to_string().to_lowercase()),
        _ => None,
    };
    if old == new {
        return true;
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
    ) || matches!((old, new), (DataType::VarBit(Some(a)), DataType::VarBit(b)) if b.is_none_or(|b| b >= *a))
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
}
