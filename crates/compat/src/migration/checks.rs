//! A table's check constraints, as far as two questions need them: does a valid check prove
//! that a column holds no NULL (then `SET NOT NULL` scans nothing), and does one bound the
//! columns a partition key reads (then `ATTACH PARTITION` may find its bound proven).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use sqlparser::ast::{AlterTableOperation, BinaryOperator, CheckConstraint, Expr, TableConstraint};

use super::schema::ident_key;

/// A table's checks, by normalized constraint name.
pub(super) type Checks = BTreeMap<String, Check>;

/// What a check says.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Check {
    /// The columns it proves hold no NULL: its `c IS NOT NULL` conjuncts. (Any other check
    /// passes on NULL, so it proves nothing of the kind.)
    pub(super) not_null: BTreeSet<String>,
    /// The columns the rest of it reads: what it bounds.
    pub(super) bounds: BTreeSet<String>,
    /// Added without `NOT VALID`, or validated since: PostgreSQL relies only on such checks.
    pub(super) valid: bool,
}

/// A check of `table` as declared, under its name: for an unnamed one, the name PostgreSQL
/// gives it (`<table>_<column>_check` when it reads one column, else `<table>_check`, and a
/// number after it when `taken` holds that name already), so that dropping it by that name is
/// followed.
pub(super) fn check(
    c: &CheckConstraint,
    valid: bool,
    table: &str,
    taken: &Checks,
) -> (String, Check) {
    let mut check = Check {
        not_null: BTreeSet::new(),
        bounds: BTreeSet::new(),
        valid,
    };
    for conjunct in conjuncts(&c.expr) {
        match conjunct {
            Expr::IsNotNull(inner) if matches!(inner.as_ref(), Expr::Identifier(_)) => {
                check.not_null.extend(columns(inner));
            }
            other => check.bounds.extend(columns(other)),
        }
    }
    let name = c.name.as_ref().map_or_else(
        || {
            let relation = table.rsplit('.').next().unwrap_or(table);
            let read: BTreeSet<&String> = check.not_null.iter().chain(&check.bounds).collect();
            let base = match read.into_iter().collect::<Vec<_>>().as_slice() {
                [column] => format!("{relation}_{column}_check"),
                _ => format!("{relation}_check"),
            };
            std::iter::once(base.clone())
                .chain((1..).map(|n| format!("{base}{n}")))
                .find(|name| !taken.contains_key(name))
                .unwrap_or(base)
        },
        ident_key,
    );
    (name, check)
}

/// The terms of a conjunction (`a AND (b AND c)`), or the expression itself.
fn conjuncts(expr: &Expr) -> Vec<&Expr> {
    match expr {
        Expr::Nested(inner) => conjuncts(inner),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            let mut terms = conjuncts(left);
            terms.extend(conjuncts(right));
            terms
        }
        other => vec![other],
    }
}

/// The columns `expr` reads, by normalized name.
pub(super) fn columns(expr: &Expr) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let _ = sqlparser::ast::visit_expressions(expr, |e| {
        match e {
            Expr::Identifier(column) => {
                out.insert(ident_key(column));
            }
            Expr::CompoundIdentifier(parts) => out.extend(parts.last().map(ident_key)),
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    out
}

/// Follows one `ALTER TABLE` operation's effect on the checks of `table`.
pub(super) fn follow_checks(table: &str, checks: &mut Checks, op: &AlterTableOperation) {
    match op {
        AlterTableOperation::AddConstraint {
            constraint: TableConstraint::Check(c),
            not_valid,
        } => {
            let (name, c) = check(c, !not_valid, table, checks);
            checks.insert(name, c);
        }
        AlterTableOperation::ValidateConstraint { name } => {
            if let Some(c) = checks.get_mut(&ident_key(name)) {
                c.valid = true;
            }
        }
        AlterTableOperation::DropConstraint { name, .. } => {
            checks.remove(&ident_key(name));
        }
        AlterTableOperation::RenameConstraint { old_name, new_name } => {
            if let Some(c) = checks.remove(&ident_key(old_name)) {
                checks.insert(ident_key(new_name), c);
            }
        }
        AlterTableOperation::RenameColumn {
            old_column_name,
            new_column_name,
        } => {
            let (old, new) = (ident_key(old_column_name), ident_key(new_column_name));
            for c in checks.values_mut() {
                for set in [&mut c.not_null, &mut c.bounds] {
                    if set.remove(&old) {
                        set.insert(new.clone());
                    }
                }
            }
        }
        // PostgreSQL drops the checks that read a dropped column.
        AlterTableOperation::DropColumn { column_names, .. } => {
            let dropped: BTreeSet<String> = column_names.iter().map(ident_key).collect();
            checks
                .retain(|_, c| c.not_null.is_disjoint(&dropped) && c.bounds.is_disjoint(&dropped));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn read(sql: &str) -> (String, Check) {
        let expr = Parser::new(&PostgreSqlDialect {})
            .try_with_sql(sql)
            .and_then(|mut p| p.parse_expr())
            .expect("an expression");
        let c = CheckConstraint {
            name: None,
            expr: Box::new(expr),
            no_inherit: false,
            enforced: None,
        };
        check(&c, true, "public.t", &Checks::new())
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn a_check_proves_not_null_columns_and_bounds_the_rest() {
        let (name, c) =
            read("\"At\" IS NOT NULL AND (\"At\" >= '2025-01-01' AND t.\"At\" < now())");
        assert_eq!(name, "t_At_check");
        assert_eq!((c.not_null, c.bounds), (set(&["At"]), set(&["At"])));
        let (name, c) = read("lower(region) IN ('eu', 'us') OR Kind = 2");
        assert_eq!(name, "t_check");
        assert_eq!((c.not_null, c.bounds), (set(&[]), set(&["kind", "region"])));
        // A NOT NULL of an expression, or under OR, proves nothing.
        let (_, c) = read("(a + b) IS NOT NULL OR c IS NOT NULL");
        assert_eq!((c.not_null, c.bounds), (set(&[]), set(&["a", "b", "c"])));
    }
}
