//! A table's check constraints, as far as two questions need them: does a valid check prove
//! that a column holds no NULL (then `SET NOT NULL` scans nothing), and does one imply a
//! partition's bound (then `ATTACH PARTITION` scans nothing). PostgreSQL proves a bound from
//! comparisons of the key with constants, so those are what is kept of a check.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use sqlparser::ast::{
    AlterTableOperation, BinaryOperator, CheckConstraint, Expr, ForValues, InTarget,
    PartitionBoundValue, TableConstraint, UnaryOperator, Value,
};

use super::schema::{MAX_NAME_BYTES, clip, ident_key};

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
    /// Its conjuncts that compare a column with constants.
    pub(super) terms: Vec<Term>,
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
        terms: Vec::new(),
        valid,
    };
    for conjunct in conjuncts(&c.expr) {
        match not_null_column(conjunct) {
            Some(column) => check.not_null.extend(columns(column)),
            None => {
                check.bounds.extend(columns(conjunct));
                check.terms.extend(terms(conjunct));
            }
        }
    }
    let name = c.name.as_ref().map_or_else(
        || {
            let relation = table.rsplit('.').next().unwrap_or(table);
            let read: BTreeSet<&String> = check.not_null.iter().chain(&check.bounds).collect();
            let column = match read.into_iter().collect::<Vec<_>>().as_slice() {
                [column] => Some(column.as_str()),
                _ => None,
            };
            std::iter::once("check".to_owned())
                .chain((1..).map(|n| format!("check{n}")))
                .map(|label| object_name(relation, column, &label))
                .find(|name| !taken.contains_key(name))
                .unwrap_or_default()
        },
        ident_key,
    );
    (name, check)
}

/// The column that `conjunct` proves holds no NULL: `c IS NOT NULL`, or `NOT (c IS NULL)`,
/// which PostgreSQL folds into it before it proves anything.
fn not_null_column(conjunct: &Expr) -> Option<&Expr> {
    let inner = match conjunct {
        Expr::IsNotNull(inner) => inner,
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => {
            let negated = match expr.as_ref() {
                Expr::Nested(nested) => nested.as_ref(),
                other => other,
            };
            let Expr::IsNull(inner) = negated else {
                return None;
            };
            inner
        }
        _ => return None,
    };
    matches!(inner.as_ref(), Expr::Identifier(_)).then_some(inner)
}

/// The name PostgreSQL makes for a constraint from its table's name, its column's and a
/// label (`makeObjectName`): `table_column_label`, the longer of the two names shortened a
/// byte at a time until the whole fits in 63 bytes.
fn object_name(table: &str, column: Option<&str>, label: &str) -> String {
    let overhead = label.len() + 1 + usize::from(column.is_some());
    let room = MAX_NAME_BYTES.saturating_sub(overhead);
    let (mut first, mut second) = (table.len(), column.map_or(0, str::len));
    while first + second > room {
        if first > second {
            first -= 1;
        } else {
            second -= 1;
        }
    }
    let table = clip(table, first);
    match column {
        Some(column) => format!("{table}_{}_{label}", clip(column, second)),
        None => format!("{table}_{label}"),
    }
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

/// A constant a check or a bound compares a column with. Dates and times without a zone are
/// compared as moments, whichever way they are written (`'2025-1-1'`, `'2025-01-01
/// 00:00:00'`); other strings as text, by their bytes.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Literal {
    Number(f64),
    /// A date or time without a zone, as `YYYY-MM-DD HH:MM:SS.ffffff`.
    Moment(String),
    Text(String),
}

impl Literal {
    /// The constant `expr` is (through casts: `'2025-01-01'::date`, `DATE '2025-01-01'`).
    fn of(expr: &Expr) -> Option<Self> {
        match expr {
            Expr::Nested(inner) | Expr::Cast { expr: inner, .. } => Self::of(inner),
            Expr::TypedString(t) => Self::of_value(&t.value.value),
            Expr::Value(v) => Self::of_value(&v.value),
            Expr::UnaryOp {
                op: UnaryOperator::Minus,
                expr,
            } => match Self::of(expr)? {
                Self::Number(n) => Some(Self::Number(-n)),
                Self::Moment(_) | Self::Text(_) => None,
            },
            _ => None,
        }
    }

    fn of_value(value: &Value) -> Option<Self> {
        match value {
            Value::Number(n, _) => n.parse().ok().map(Self::Number),
            Value::SingleQuotedString(s) => {
                Some(moment(s).map_or_else(|| Self::Text(s.clone()), Self::Moment))
            }
            _ => None,
        }
    }

    /// How `self` compares with `other`; `None` for constants of different kinds.
    fn cmp(&self, other: &Self) -> Option<Ordering> {
        match (self, other) {
            (Self::Number(a), Self::Number(b)) => a.partial_cmp(b),
            (Self::Moment(a), Self::Moment(b)) | (Self::Text(a), Self::Text(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

/// A date, or a date and time, without a zone (`2025-1-1`, `2025-01-01 08:30`,
/// `2025-01-01T08:30:00.5`), as `YYYY-MM-DD HH:MM:SS.ffffff`; `None` for anything else
/// (a zone, another form, a field out of range).
fn moment(s: &str) -> Option<String> {
    let number = |part: &str, max: u32| {
        (!part.is_empty() && part.len() <= 4 && part.bytes().all(|b| b.is_ascii_digit()))
            .then(|| part.parse::<u32>().ok())
            .flatten()
            .filter(|n| *n <= max)
    };
    let (date, time) = s.trim().split_once([' ', 'T']).unwrap_or((s.trim(), ""));
    let mut ymd = date.split('-');
    let (y, m, d) = (ymd.next()?, ymd.next()?, ymd.next()?);
    if ymd.next().is_some() || y.len() != 4 {
        return None;
    }
    let (y, m, d) = (number(y, 9999)?, number(m, 12)?, number(d, 31)?);
    if m == 0 || d == 0 {
        return None;
    }
    let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut hms = if clock.is_empty() {
        Vec::new()
    } else {
        clock.split(':').collect()
    };
    let seconds = hms.len() == 3;
    if hms.len() == 1 || hms.len() > 3 || fraction.len() > 6 {
        return None;
    }
    hms.resize(3, "0");
    let (h, mi, sec) = (
        number(hms[0], 24)?,
        number(hms[1], 59)?,
        number(hms[2], 60)?,
    );
    if !fraction.bytes().all(|b| b.is_ascii_digit()) || (!fraction.is_empty() && !seconds) {
        return None;
    }
    Some(format!(
        "{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{sec:02}.{fraction:0<6}"
    ))
}

/// A conjunct of a check that compares a column with constants.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Term {
    /// `c > x` (`strict`) or `c >= x`.
    Above {
        column: String,
        value: Literal,
        strict: bool,
    },
    /// `c < x` (`strict`) or `c <= x`.
    Below {
        column: String,
        value: Literal,
        strict: bool,
    },
    /// `c = x`, `c IN (x, y)`.
    OneOf {
        column: String,
        values: Vec<Literal>,
    },
}

impl Term {
    fn column(&self) -> &str {
        match self {
            Self::Above { column, .. }
            | Self::Below { column, .. }
            | Self::OneOf { column, .. } => column,
        }
    }
}

/// The comparisons with constants that `conjunct` makes: `c > 1`, `'a' = c`, `c BETWEEN x AND
/// y`, `c IN (x, y)`.
fn terms(conjunct: &Expr) -> Vec<Term> {
    let column = |e: &Expr| match e {
        Expr::Identifier(c) => Some(ident_key(c)),
        Expr::CompoundIdentifier(parts) => parts.last().map(ident_key),
        _ => None,
    };
    match conjunct {
        Expr::Nested(inner) => terms(inner),
        Expr::BinaryOp { left, op, right } => {
            // `c op x`, or `x op c` read as `c (op flipped) x`.
            let (c, value, flipped) = match (column(left), Literal::of(right)) {
                (Some(c), Some(v)) => (c, v, false),
                _ => match (Literal::of(left), column(right)) {
                    (Some(v), Some(c)) => (c, v, true),
                    _ => return Vec::new(),
                },
            };
            let above = |strict| Term::Above {
                column: c.clone(),
                value: value.clone(),
                strict,
            };
            let below = |strict| Term::Below {
                column: c.clone(),
                value: value.clone(),
                strict,
            };
            let term = match (op, flipped) {
                (BinaryOperator::Gt, false) | (BinaryOperator::Lt, true) => above(true),
                (BinaryOperator::GtEq, false) | (BinaryOperator::LtEq, true) => above(false),
                (BinaryOperator::Lt, false) | (BinaryOperator::Gt, true) => below(true),
                (BinaryOperator::LtEq, false) | (BinaryOperator::GtEq, true) => below(false),
                (BinaryOperator::Eq, _) => Term::OneOf {
                    column: c.clone(),
                    values: vec![value.clone()],
                },
                _ => return Vec::new(),
            };
            vec![term]
        }
        Expr::Between {
            expr,
            negated: false,
            low,
            high,
        } => match (column(expr), Literal::of(low), Literal::of(high)) {
            (Some(c), Some(low), Some(high)) => vec![
                Term::Above {
                    column: c.clone(),
                    value: low,
                    strict: false,
                },
                Term::Below {
                    column: c,
                    value: high,
                    strict: false,
                },
            ],
            _ => Vec::new(),
        },
        Expr::In {
            expr,
            target: InTarget::List(list),
            negated: false,
            ..
        } => {
            let values: Option<Vec<Literal>> = list.iter().map(Literal::of).collect();
            match (column(expr), values) {
                (Some(column), Some(values)) => vec![Term::OneOf { column, values }],
                _ => Vec::new(),
            }
        }
        _ => Vec::new(),
    }
}

/// Whether `check`'s comparisons with constants keep `column` within `bound` (a range or list
/// partition's, on that one column), as PostgreSQL must find to skip the scan. A bound of
/// another kind, or of several columns, is `None`: not answered here.
pub(super) fn implies_bound(check: &Check, column: &str, bound: &ForValues) -> Option<bool> {
    let terms: Vec<&Term> = check
        .terms
        .iter()
        .filter(|t| t.column() == column)
        .collect();
    let at_least = |v: &Literal, low: &Literal| v.cmp(low).is_some_and(Ordering::is_ge);
    Some(match bound {
        ForValues::From { from, to } => {
            let ([from], [to]) = (from.as_slice(), to.as_slice()) else {
                return None;
            };
            let lower = match from {
                PartitionBoundValue::MinValue => true,
                PartitionBoundValue::MaxValue => false,
                PartitionBoundValue::Expr(e) => Literal::of(e).is_some_and(|low| {
                    terms.iter().any(|t| match t {
                        Term::Above { value, .. } => at_least(value, &low),
                        Term::OneOf { values, .. } => values.iter().all(|v| at_least(v, &low)),
                        Term::Below { .. } => false,
                    })
                }),
            };
            // The upper bound is exclusive.
            let upper = match to {
                PartitionBoundValue::MaxValue => true,
                PartitionBoundValue::MinValue => false,
                PartitionBoundValue::Expr(e) => Literal::of(e).is_some_and(|high| {
                    let under = |v: &Literal, strict: bool| {
                        v.cmp(&high)
                            .is_some_and(|o| o.is_lt() || (strict && o.is_eq()))
                    };
                    terms.iter().any(|t| match t {
                        Term::Below { value, strict, .. } => under(value, *strict),
                        Term::OneOf { values, .. } => values.iter().all(|v| under(v, false)),
                        Term::Above { .. } => false,
                    })
                }),
            };
            lower && upper
        }
        ForValues::In(list) => {
            let allowed: Vec<Literal> = list.iter().map(Literal::of).collect::<Option<_>>()?;
            terms.iter().any(|t| match t {
                Term::OneOf { values, .. } => values.iter().all(|v| allowed.contains(v)),
                _ => false,
            })
        }
        ForValues::With { .. } | ForValues::Default => return None,
    })
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
    fn dates_and_times_compare_as_moments_however_written() {
        for (written, read) in [
            ("2025-01-01", Some("2025-01-01 00:00:00.000000")),
            ("2025-1-1", Some("2025-01-01 00:00:00.000000")),
            (" 2025-01-01 00:00 ", Some("2025-01-01 00:00:00.000000")),
            ("2025-12-31T23:59:59.5", Some("2025-12-31 23:59:59.500000")),
            ("2025-01-01 00:00:00+00", None),
            ("2025-01-01 08:30.5", None),
            ("2025-13-01", None),
            ("25-01-01", None),
            ("2025-01", None),
            ("infinity", None),
            ("a-b-c", None),
        ] {
            assert_eq!(moment(written).as_deref(), read, "{written}");
        }
        let of = |s: &str| Literal::of_value(&Value::SingleQuotedString(s.into())).unwrap();
        assert_eq!(
            of("2025-1-1").cmp(&of("2025-01-01 00:00")),
            Some(Ordering::Equal)
        );
        assert_eq!(of("2025-1-2").cmp(&of("2025-01-10")), Some(Ordering::Less));
        assert_eq!(of("2025-01-01").cmp(&of("a")), None);
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

    fn bound(sql: &str) -> ForValues {
        let stmt = format!("CREATE TABLE x PARTITION OF p {sql}");
        let parsed = sqlparser::parser::Parser::parse_sql(&PostgreSqlDialect {}, &stmt);
        match parsed.expect("a partition").remove(0) {
            sqlparser::ast::Statement::CreateTable(ct) => ct.for_values.expect("a bound"),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn a_bound_is_implied_by_comparisons_with_constants_within_it() {
        let range = bound("FOR VALUES FROM (10) TO (20)");
        for (sql, implied) in [
            ("k >= 10 AND k < 20", Some(true)),
            ("k > 12 AND 19 >= k", Some(true)),
            ("k BETWEEN 10 AND 19.5", Some(true)),
            ("k IN (10, 15)", Some(true)),
            ("k = 20", Some(false)),
            ("k >= 10 AND k <= 20", Some(false)),
            ("k > 9 AND k < 20", Some(false)),
            ("k >= 10", Some(false)),
            ("k >= '10' AND k < '20'", Some(false)),
            ("abs(k) < 20", Some(false)),
        ] {
            assert_eq!(implies_bound(&read(sql).1, "k", &range), implied, "{sql}");
        }
        let open = bound("FOR VALUES FROM (MINVALUE) TO (-5)");
        assert_eq!(implies_bound(&read("k < -6").1, "k", &open), Some(true));
        let list = bound("FOR VALUES IN ('a', 'b')");
        assert_eq!(implies_bound(&read("k = 'b'").1, "k", &list), Some(true));
        assert_eq!(
            implies_bound(&read("k IN ('a', 'c')").1, "k", &list),
            Some(false)
        );
        let hash = bound("FOR VALUES WITH (MODULUS 2, REMAINDER 0)");
        assert_eq!(implies_bound(&read("k > 0").1, "k", &hash), None);
    }
}
