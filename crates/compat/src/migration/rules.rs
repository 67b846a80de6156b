//! The rules: what each statement does to a table while the old version runs.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::{ControlFlow, Range};

use sqlparser::ast::{
    AlterColumnOperation, AlterFunction, AlterFunctionOperation, AlterIndexOperation,
    AlterSchemaOperation, AlterTableOperation, AlterTypeOperation, AlterViewOperation, ArgMode,
    Assignment, AssignmentTarget, CascadeOption, ColumnOption, ContextModifier, DataType,
    DetachPartitionMode, DiscardObject, DropBehavior, DropFunction, Expr, ForValues, FromTable,
    FunctionArg, FunctionArgExpr, FunctionArguments, FunctionDesc, GeneratedAs, GrantObjects,
    Ident, MergeAction, MergeUpdateExpr, MergeUpdateKind, ObjectName, ObjectNamePart, ObjectType,
    OnConflict, OnConflictAction, OnInsert, OperateFunctionArg, Query, RenameTableNameKind, Reset,
    SchemaName, SelectItem, Set, SetExpr, Statement, TableConstraint, TableFactor, TableObject,
    TimezoneInfo, Value, Visit, Visitor, visit_relations,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

use super::locks::takes_lock;
use super::read::{Parsed, Written};
use super::runner::Runner;
use super::schema::{
    MAX_NAME_BYTES, Schema, clip, ident_key, is_citext, keeps_values, new_collation, new_index_key,
    part_key, restates_column, select_into, table_key,
};
use super::settings::{Event, Setting};
use super::types::{alter_table_note, create_table_notes, enum_value_note};
use super::words::{ByWords, Relation};
use super::{Safety, SqlFinding};
use crate::validation::Severity;

pub(super) fn finding(
    rule: &str,
    severity: Severity,
    safety: Safety,
    message: String,
    recipe: &str,
) -> SqlFinding {
    debug_assert!(super::RULES.contains(&rule), "{rule} is missing from RULES");
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
const RECIPE_PARTITIONED_INDEX: &str = "CREATE INDEX ... ON ONLY the partitioned table (no \
    build), CREATE INDEX CONCURRENTLY on each partition, then ALTER INDEX ... ATTACH PARTITION \
    each (the parent's index is valid once all are attached)";
const RECIPE_DROP_INDEX: &str = "DROP INDEX CONCURRENTLY (outside a transaction)";
const RECIPE_DROP_COLUMN: &str = "stop reading and writing the column, deploy, then drop it in \
    the contract phase after the old version is retired";
const RECIPE_RENAME: &str = "expand/contract: add the new name, write both, backfill, move \
    reads, stop old writes, then drop the old one";
const RECIPE_RENAME_OBJECT: &str = "expand/contract: create the object under the new name \
    beside the old one (a function or type can be copied, a schema can hold views), deploy the \
    version that uses it, then drop the old one once no running version does";
const RECIPE_NOT_NULL: &str = "add CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT, then \
    SET NOT NULL (no scan) and drop the check";
const RECIPE_REQUIRED: &str = "add the column nullable (or with a constant default), backfill in \
    batches, then enforce NOT NULL with a validated check";
const RECIPE_VOLATILE: &str = "add the column without a default, set the default for new rows, \
    and backfill existing rows in batches";
const RECIPE_NOT_VALID: &str = "add the constraint with NOT VALID, then VALIDATE CONSTRAINT in a \
    separate statement (it takes a weaker lock)";
const RECIPE_UNIQUE: &str = "CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT ... UNIQUE \
    USING INDEX (or PRIMARY KEY USING INDEX, once its columns are NOT NULL or a validated CHECK \
    (col IS NOT NULL) proves them so)";
const RECIPE_ADD_PRIMARY_KEY: &str = "CREATE UNIQUE INDEX CONCURRENTLY on the key's columns \
    (outside a transaction), make them NOT NULL or prove them so with a validated CHECK (col IS \
    NOT NULL), then ADD CONSTRAINT ... PRIMARY KEY USING INDEX, which holds the lock a moment";
const RECIPE_PRIMARY_KEY: &str = "first prove each column holds no NULL: ADD CONSTRAINT ... \
    CHECK (col IS NOT NULL) NOT VALID, then VALIDATE CONSTRAINT (writes go on); the primary key \
    then scans nothing";
const RECIPE_TYPE: &str = "expand/contract: add a column of the new type, write both, backfill, \
    move reads, drop the old column (only a widening is free: a longer varchar, varchar to \
    text, more numeric precision or fractional seconds)";
const RECIPE_LOCK_TIMEOUT: &str = "start the migration with SET lock_timeout = '1s' and retry on \
    timeout, so a waiting DDL never queues all traffic";
const RECIPE_STATEMENT_TIMEOUT: &str = "start the migration with SET statement_timeout = '5s' \
    as well, so a statement that runs long ends instead of holding its lock; set it to 0 just \
    around a concurrent index build or a validation, which must outlast it";
const RECIPE_REPACK: &str = "pg_repack (or pg_squeeze) rebuilds the table online; a plain \
    VACUUM makes the space reusable without blocking reads or writes";
const RECIPE_BACKFILL: &str = "backfill in small batches outside the DDL transaction, throttled";

/// Built-ins PostgreSQL marks volatile: a default that calls one (or is computed from one) is
/// evaluated anew for each row. `nextval`, `currval`, `lastval`, `setval` and `set_config`
/// read or change a session's state.
const VOLATILE: &[&str] = &[
    "random",
    "random_normal",
    "gen_random_uuid",
    "gen_random_bytes",
    "uuidv4",
    "uuidv7",
    "uuid_generate_v7",
    "uuid_generate_v1",
    "uuid_generate_v1mc",
    "uuid_generate_v4",
    "clock_timestamp",
    "timeofday",
    "nextval",
    "currval",
    "lastval",
    "setval",
    "set_config",
    "txid_current",
];
/// What a default may name bare, without brackets, as well as call: the time of the
/// transaction and the session's user, stable in PostgreSQL.
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
    "timezone",
];

/// Built-in scalar functions PostgreSQL marks immutable or stable (text, numbers, times, JSON,
/// what a session reads about itself): of constant or stable arguments, a default that calls
/// them is evaluated once and kept in the catalog, as `now()` is.
const SCALAR: &[&str] = &[
    "coalesce",
    "nullif",
    "greatest",
    "least",
    "lower",
    "upper",
    "initcap",
    "length",
    "char_length",
    "octet_length",
    "substr",
    "btrim",
    "ltrim",
    "rtrim",
    "lpad",
    "rpad",
    "repeat",
    "reverse",
    "replace",
    "translate",
    "concat",
    "concat_ws",
    "format",
    "left",
    "right",
    "strpos",
    "split_part",
    "chr",
    "ascii",
    "regexp_replace",
    "regexp_match",
    "md5",
    "sha256",
    "encode",
    "decode",
    "to_char",
    "to_date",
    "to_timestamp",
    "to_number",
    "date_trunc",
    "date_part",
    "date_bin",
    "make_date",
    "make_time",
    "make_timestamp",
    "make_timestamptz",
    "make_interval",
    "age",
    "abs",
    "sign",
    "round",
    "ceil",
    "ceiling",
    "floor",
    "trunc",
    "mod",
    "power",
    "sqrt",
    "exp",
    "ln",
    "log",
    "pi",
    "array_length",
    "cardinality",
    "array_append",
    "array_prepend",
    "array_cat",
    "to_json",
    "to_jsonb",
    "json_build_object",
    "jsonb_build_object",
    "json_build_array",
    "jsonb_build_array",
    "jsonb_set",
    "version",
    "current_setting",
    "current_schema",
    "current_database",
    "pg_typeof",
];

/// Built-ins, called by their bare name, that change no table's rows and no schema object
/// (besides [`SCALAR`], [`STABLE`] and [`VOLATILE`]): aggregates, windows and functions that
/// return sets, which no default may call.
const BUILT_IN: &[&str] = &[
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "array_agg",
    "string_agg",
    "bool_and",
    "bool_or",
    "every",
    "json_agg",
    "jsonb_agg",
    "json_object_agg",
    "jsonb_object_agg",
    "row_number",
    "rank",
    "dense_rank",
    "lag",
    "lead",
    "first_value",
    "last_value",
    "regexp_matches",
    "generate_series",
    "unnest",
    "jsonb_array_elements",
    "json_array_elements",
];

/// `Some(true)` if the default is volatile, `Some(false)` if it is constant or stable,
/// `None` if unknown.
fn volatility(expr: &Expr) -> Option<bool> {
    match expr {
        Expr::Value(_) | Expr::TypedString { .. } | Expr::Interval(_) => Some(false),
        Expr::Cast { expr, .. } | Expr::Nested(expr) | Expr::UnaryOp { expr, .. } => {
            volatility(expr)
        }
        // The built-in operators are immutable or stable (`now() + interval '1 day'`): the
        // result is as volatile as the operands.
        Expr::BinaryOp { left, right, .. } => volatility_of([&**left, &**right]),
        Expr::AtTimeZone {
            timestamp,
            time_zone,
        } => volatility_of([&**timestamp, &**time_zone]),
        Expr::Array(array) => volatility_of(&array.elem),
        // The SQL-standard functions the parser reads as forms of their own (`substr(..)`,
        // `floor(..)`, `extract(.. FROM ..)`) are immutable or stable: as volatile as their
        // operands, so `substr(md5(random()::text), 1, 8)` is evaluated anew for each row.
        Expr::Ceil { expr, .. } | Expr::Floor { expr, .. } | Expr::Extract { expr, .. } => {
            volatility(expr)
        }
        Expr::Position { expr, r#in } => volatility_of([&**expr, &**r#in]),
        Expr::Substring {
            expr,
            substring_from,
            substring_for,
            ..
        } => volatility_of(
            std::iter::once(&**expr).chain(
                substring_from
                    .iter()
                    .chain(substring_for)
                    .map(AsRef::as_ref),
            ),
        ),
        Expr::Trim {
            expr,
            trim_what,
            trim_characters,
            ..
        } => volatility_of(
            std::iter::once(&**expr)
                .chain(trim_what.iter().map(AsRef::as_ref))
                .chain(trim_characters.iter().flatten()),
        ),
        Expr::Overlay {
            expr,
            overlay_what,
            overlay_from,
            overlay_for,
        } => volatility_of(
            [&**expr, &**overlay_what, &**overlay_from]
                .into_iter()
                .chain(overlay_for.iter().map(AsRef::as_ref)),
        ),
        // Each row takes a branch of its own: volatile if a condition or a result is.
        Expr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => volatility_of(
            operand
                .iter()
                .chain(else_result)
                .map(AsRef::as_ref)
                .chain(conditions.iter().flat_map(|w| [&w.condition, &w.result])),
        ),
        Expr::Function(f) => {
            // Named as PostgreSQL reads it: `"gen_random_uuid"()` is gen_random_uuid().
            let name = table_key(&f.name);
            let base = name.rsplit('.').next().unwrap_or(&name);
            // A function of a volatile value is evaluated anew for each row, whatever it is
            // (`encode(gen_random_bytes(16), 'hex')`).
            let volatile_argument = match &f.args {
                FunctionArguments::List(list) => list.args.iter().any(|a| match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e))
                    | FunctionArg::Named {
                        arg: FunctionArgExpr::Expr(e),
                        ..
                    } => volatility(e) == Some(true),
                    _ => false,
                }),
                _ => false,
            };
            if volatile_argument || VOLATILE.contains(&base) {
                Some(true)
            } else if STABLE.contains(&base) || SCALAR.contains(&base) {
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

/// The volatility of what combines `parts` with built-in operators: volatile if one part is,
/// constant or stable if every part is, unknown otherwise.
fn volatility_of<'a>(parts: impl IntoIterator<Item = &'a Expr>) -> Option<bool> {
    let mut known = Some(false);
    for part in parts {
        match volatility(part) {
            Some(true) => return Some(true),
            Some(false) => {}
            None => known = None,
        }
    }
    known
}

/// Whether `expr` is `NULL`, cast or in brackets (`DEFAULT NULL::integer`, as `pg_dump`
/// writes it).
fn is_null(expr: &Expr) -> bool {
    match expr {
        Expr::Value(v) => v.value == Value::Null,
        Expr::Cast { expr, .. } | Expr::Nested(expr) => is_null(expr),
        _ => false,
    }
}

/// The old types from which a change to `ty` keeps every value without a rewrite, for a
/// message, if there are any: a shorter varchar (to a longer one), a varchar (to text or an
/// unbounded varchar), or `timestamp` in a UTC session (to `timestamptz`).
fn free_from(ty: &DataType) -> Option<&'static str> {
    match ty {
        DataType::Text | DataType::Varchar(None) | DataType::CharacterVarying(None) => {
            Some("a varchar")
        }
        DataType::Varchar(Some(_)) | DataType::CharacterVarying(Some(_)) => {
            Some("a shorter varchar")
        }
        DataType::Timestamp(_, TimezoneInfo::WithTimeZone | TimezoneInfo::Tz) => {
            Some("timestamp, in a session whose TimeZone is UTC,")
        }
        _ => None,
    }
}

/// Who opened a transaction.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Opened {
    /// A `BEGIN` in the migration.
    ByStatement,
    /// The tool that runs the migration, around all of it.
    ByRunner(Runner),
}

/// What keeps the locks a statement takes after it ends: a transaction, or a query of several
/// statements (the lines it spans), which PostgreSQL runs as one transaction.
#[derive(Debug, Clone, PartialEq)]
enum Keeper {
    Transaction(Opened),
    Query(Runner, Range<u64>),
}

/// A lock that blocks writes, kept after the statement that took it (by `Ctx::scope`).
struct Held {
    /// The statement that took it (1-based) and its line.
    statement: usize,
    line: u64,
}

impl Held {
    /// The finding for a statement that runs long (`what`, e.g. "data change") while the lock
    /// is held.
    fn through(&self, keeper: &Keeper, what: &str) -> SqlFinding {
        let n = self.statement;
        let (keeps, recipe) = match keeper {
            Keeper::Transaction(Opened::ByStatement) => (
                "the transaction keeps it until COMMIT".to_owned(),
                format!("COMMIT after statement {n}, so its lock is released before this runs"),
            ),
            Keeper::Transaction(Opened::ByRunner(r @ Runner::Drizzle)) => (
                format!("{r}'s transaction keeps it until every pending migration has run"),
                format!(
                    "{r} runs all pending migrations in one transaction: apply statement {n}'s \
                     migration in an earlier deploy, or run this statement outside {r}"
                ),
            ),
            Keeper::Transaction(Opened::ByRunner(r)) => (
                format!("{r}'s transaction keeps it until the {} ends", r.unit()),
                format!(
                    "move this statement to a {} of its own, so {r} commits statement {n}'s \
                     lock first",
                    r.unit()
                ),
            ),
            Keeper::Query(r, _) => (
                format!(
                    "{r} sends both in one query, which PostgreSQL runs as one transaction, so \
                     it is kept until the query ends"
                ),
                format!(
                    "move this statement to a {} of its own, so statement {n}'s lock is \
                     released first",
                    r.unit()
                ),
            ),
        };
        finding(
            "lock-held-through-transaction",
            Severity::Error,
            Safety::Unsafe,
            format!(
                "statement {n} (line {}) took a lock that blocks writes, and {keeps}: what it \
                 locked waits as long as this {what} runs",
                self.line
            ),
            &recipe,
        )
    }
}

/// An enum value added in the transaction in force, which PostgreSQL refuses to use before
/// the transaction commits.
struct AddedValue {
    value: String,
    ty: String,
    /// The statement that added it (1-based).
    statement: usize,
}

impl AddedValue {
    /// Whether `text` holds the value as a literal.
    fn used_in(&self, text: &str) -> bool {
        text.contains(&format!("'{}'", self.value.replace('\'', "''")))
    }

    fn finding(&self, keeper: &Keeper) -> SqlFinding {
        let (n, value, ty) = (self.statement, &self.value, &self.ty);
        let recipe = match keeper {
            Keeper::Transaction(Opened::ByStatement) => {
                format!("COMMIT after statement {n}, before the value is used")
            }
            Keeper::Transaction(Opened::ByRunner(r @ Runner::Drizzle)) => format!(
                "{r} runs all pending migrations in one transaction: use the value in a \
                 migration deployed after this one is applied"
            ),
            Keeper::Transaction(Opened::ByRunner(r)) => {
                format!("use the value in a migration of its own, after {r} commits this one")
            }
            Keeper::Query(r, _) => {
                format!("use the value in a migration of its own, which {r} sends apart")
            }
        };
        finding(
            "new-enum-value-used-in-transaction",
            Severity::Warn,
            Safety::Unsafe,
            format!(
                "statement {n} added '{value}' to {ty} in this transaction, and PostgreSQL \
                 refuses a new enum value until the transaction commits: this statement fails \
                 if it uses '{value}' as a {ty}"
            ),
            &recipe,
        )
    }
}

/// What the migration's earlier statements established.
#[derive(Default)]
pub(super) struct Ctx {
    /// The tables and column types known so far, from earlier migrations and statements.
    pub(super) schema: Schema,
    /// Tables, views, sequences and types this migration created: nothing uses them yet.
    created: BTreeSet<String>,
    /// Names that relations and types in use gave up (renamed away, or a view or type
    /// dropped): the running version still looks them up.
    vacated: BTreeSet<String>,
    /// What this migration made under a vacated name in the transaction in force: nobody else
    /// sees it before the commit, and from then on the running version uses it.
    taken_over: BTreeSet<String>,
    /// Functions and procedures this migration created (routines have names of their own).
    routines: BTreeSet<RoutineKey>,
    /// The names of routines in use that this migration dropped or renamed away: a routine
    /// it makes again under such a name replaces one the running version calls.
    replaced_routines: BTreeSet<String>,
    /// Schemas this migration created (schemas have names of their own too).
    schemas: BTreeSet<String>,
    /// Whether a non-zero `lock_timeout` is in force.
    lock_timeout: Setting<bool>,
    /// The non-zero `statement_timeout` in force, as written.
    statement_timeout: Setting<Option<String>>,
    /// The transaction in force, and who opened it.
    transaction: Option<Opened>,
    /// Set while the statement being analysed is sent in one query with others by this
    /// runner (the query's lines): PostgreSQL runs such a query as one implicit transaction.
    shared_query: Option<(Runner, Range<u64>)>,
    /// The lines of the query whose implicit transaction is in force, when no other is:
    /// settings and a rollback follow it as they follow `BEGIN ... COMMIT`.
    implicit: Option<Range<u64>>,
    /// Statements analysed so far.
    number: usize,
    /// What keeps locks for the statement analysed last: while it stays, `held` and `added`
    /// stay in force.
    scope: Option<Keeper>,
    /// The first lock that blocks writes kept by the transaction or query in force.
    held: Option<Held>,
    /// Enum values added in the transaction or query in force.
    added: Vec<AddedValue>,
    /// Its absence was reported since it was last in force: once is enough.
    lock_timeout_reported: bool,
    /// The same, for `statement_timeout` (`require-statement-timeout`).
    statement_timeout_reported: bool,
    /// The opt-in rules the caller asked for ([`super::OPT_IN_RULES`]).
    opted_in: BTreeSet<&'static str>,
    /// The migration is one statement, which fails whole: it runs again as it is, but for a
    /// concurrent index build (`prefer-robust-stmts`).
    pub(super) alone: bool,
    /// Constraints (`table_key`, `ident_key`) this migration dropped with `IF EXISTS`, and
    /// whether it added one of the name back since: that first add runs again as it is.
    pub(super) constraints_dropped: BTreeMap<(String, String), bool>,
    /// Indexes and tables this migration dropped (by `table_key` of their names, which share
    /// one namespace): one it then creates again is made afresh on every run.
    pub(super) dropped_relations: BTreeSet<String>,
    /// Columns this migration added `NOT NULL` to tables in use (`table_key`, `ident_key`):
    /// the old version's inserts leave them out.
    required_added: BTreeSet<(String, String)>,
    /// Columns this migration added (`table_key`, `ident_key`), under their names now: no
    /// running version uses them, so renaming or dropping them breaks nothing.
    added_columns: BTreeSet<(String, String)>,
    /// What the transaction in force saw at its start, then at each of its savepoints (by
    /// name), for a rollback to bring back.
    saved: Vec<(Option<String>, Saved)>,
}

/// What a rollback brings back: PostgreSQL undoes the objects a transaction (or the part after
/// a savepoint) made, renamed or dropped as it undoes its settings, and releases the locks
/// taken and the enum values added since. Without it, a table made and rolled back would still
/// count as new, and later statements on the table of that name in use would pass unchecked.
/// Checked against PostgreSQL 15 (`to_regclass`, `pg_locks` after each form).
#[derive(Clone)]
struct Saved {
    schema: Schema,
    created: BTreeSet<String>,
    vacated: BTreeSet<String>,
    taken_over: BTreeSet<String>,
    routines: BTreeSet<RoutineKey>,
    replaced_routines: BTreeSet<String>,
    schemas: BTreeSet<String>,
    dropped_relations: BTreeSet<String>,
    required_added: BTreeSet<(String, String)>,
    added_columns: BTreeSet<(String, String)>,
    /// Whether a lock that blocks writes was held, and how many enum values were added.
    held: bool,
    added: usize,
}

impl Ctx {
    /// The start of a migration that runs after the ones `schema` learned, judged by the
    /// rules always on and the opt-in ones named in `opted_in`.
    pub(super) fn after(schema: &Schema, opted_in: BTreeSet<&'static str>) -> Self {
        Self {
            schema: schema.clone(),
            opted_in,
            ..Self::default()
        }
    }

    /// Records a table, view or sequence this migration creates.
    fn create(&mut self, name: &ObjectName) {
        self.made(table_key(name));
    }

    /// Records an object this migration made (or renamed) under `key`. Under a name an object
    /// in use gave up, it is the running version's as soon as other sessions see it: at once
    /// outside a transaction, at the commit inside one.
    fn made(&mut self, key: String) {
        if !self.vacated.remove(&key) {
            self.created.insert(key);
        } else if self.transaction.is_some() || self.implicit.is_some() {
            self.taken_over.insert(key.clone());
            self.created.insert(key);
        } else {
            self.created.remove(&key);
        }
    }

    /// Whether this migration made the routine `key` names (any of the name's when `key` has
    /// no arguments, or the routine was made in a form whose arguments are not read).
    fn made_routine(&self, key: &RoutineKey) -> bool {
        self.routines.iter().any(|made| same_routine(made, key))
    }

    /// Whether the routine `desc` names may be one a running version uses: this migration did
    /// not make it.
    pub(super) fn routine_in_use(&self, desc: &FunctionDesc) -> bool {
        !self.made_routine(&routine_key(&desc.name, desc.args.as_deref()))
    }

    /// Forgets the routines this migration made that `key` names (it drops or renames them),
    /// and answers them.
    fn forget_routine(&mut self, key: &RoutineKey) -> Vec<RoutineKey> {
        let (gone, kept): (BTreeSet<_>, BTreeSet<_>) = std::mem::take(&mut self.routines)
            .into_iter()
            .partition(|made| same_routine(made, key));
        self.routines = kept;
        gone.into_iter().collect()
    }

    /// Follows `ALTER FUNCTION ... RENAME TO | SET SCHEMA`.
    fn follow_routine_rename(&mut self, f: &AlterFunction) {
        let mut to = f.function.name.clone();
        match &f.operation {
            AlterFunctionOperation::RenameTo { new_name } => {
                if let Some(last) = to.0.last_mut() {
                    *last = ObjectNamePart::Identifier(new_name.clone());
                }
            }
            AlterFunctionOperation::SetSchema { schema_name } => {
                to = schema_name.clone();
                to.0.extend(f.function.name.0.last().cloned());
            }
            _ => return,
        }
        self.move_routine(&f.function.name, f.function.args.as_deref(), &to);
    }

    /// Follows a routine (`name` with `args`) named anew `to`, as `ALTER FUNCTION | PROCEDURE
    /// ... RENAME TO | SET SCHEMA` does: a routine this migration made is still its own under
    /// the new name; one in use leaves its name to be replaced, and takes the new one from
    /// anything made under it.
    fn move_routine(
        &mut self,
        name: &ObjectName,
        args: Option<&[OperateFunctionArg]>,
        to: &ObjectName,
    ) {
        let from = routine_key(name, args);
        let gone = self.forget_routine(&from);
        if !gone.is_empty() {
            let to = table_key(to);
            self.routines
                .extend(gone.into_iter().map(|(_, args)| (to.clone(), args)));
        } else {
            self.forget_routine(&routine_key(to, args));
            self.replaced_routines.insert(from.0);
        }
    }

    /// Follows a relation or type renamed (or moved to another schema), as `names_moved`
    /// reads it: one this migration made stays new under its new name, unless that name is
    /// one the running version uses; one in use stays in use, and leaves its old name vacated.
    /// The columns known of a table go with it.
    fn follow_renames(&mut self, parsed: &Parsed) {
        let (Some(from), Some(to)) = names_moved(parsed) else {
            return;
        };
        if from == to {
            return;
        }
        move_columns(&mut self.added_columns, &from, &to);
        move_columns(&mut self.required_added, &from, &to);
        if self.created.remove(&from) {
            self.taken_over.remove(&from);
            self.made(to);
        } else {
            self.created.remove(&to);
            self.taken_over.remove(&to);
            self.vacated.remove(&to);
            self.vacated.insert(from);
        }
    }

    /// The transaction in force ended: what it made under names in use is the running
    /// version's from now on (committed), or gone and the old objects back (rolled back).
    fn transaction_ended(&mut self) {
        for key in std::mem::take(&mut self.taken_over) {
            self.created.remove(&key);
        }
    }

    /// Whether `name` existed before this migration, so running versions may use it.
    pub(super) fn in_use(&self, name: &ObjectName) -> bool {
        !self.created.contains(&table_key(name))
    }

    /// The statement about to be analysed is sent in `query` (the runner and the query's
    /// lines) with others, or alone (`None`). PostgreSQL runs a query of several statements
    /// as one implicit transaction unless one is open: a `SET LOCAL` in it lasts until the
    /// query ends, a `ROLLBACK` in it undoes what it did so far (a `SET` too), a `COMMIT`
    /// commits it and starts the next, and a `BEGIN` makes it a transaction of the file's
    /// own, started with the query (checked against PostgreSQL 15 with `SHOW`).
    pub(super) fn enter_query(&mut self, query: Option<(Runner, Range<u64>)>) {
        let lines = query.as_ref().map(|(_, lines)| lines.clone());
        if self.implicit.is_some() && self.implicit != lines {
            self.implicit = None;
            self.follow(Event::Commit);
            self.transaction_ended();
        }
        if self.implicit.is_none() && self.transaction.is_none() && lines.is_some() {
            self.implicit = lines;
            self.follow(Event::Begin);
        }
        self.shared_query = query;
    }

    /// The runner opens a transaction around the whole migration.
    pub(super) fn begun_by(&mut self, runner: Runner) {
        self.transaction = Some(Opened::ByRunner(runner));
        self.follow(Event::Begin);
    }

    /// The runner commits the transaction it opened (at the end of a Liquibase changeset),
    /// and with it the locks it kept.
    pub(super) fn runner_commits(&mut self) {
        if let Some(Opened::ByRunner(_)) = self.transaction {
            self.transaction = None;
            self.follow(Event::Commit);
            self.transaction_ended();
        }
        self.scope = None;
        self.held = None;
        self.added.clear();
    }

    /// Whether a transaction is open, opened by a statement or by the runner.
    pub(super) fn in_transaction(&self) -> bool {
        self.transaction.is_some()
    }

    /// Whether a statement of the migration opened the transaction in force.
    pub(super) fn opened_by_statement(&self) -> bool {
        matches!(self.transaction, Some(Opened::ByStatement))
    }

    /// Why `what`, which PostgreSQL refuses to run inside a transaction block, would be in
    /// one here, and the way out; `None` when it runs on its own.
    fn transaction_block(&self, what: &str) -> Option<(String, String)> {
        Some(match self.keeper()? {
            Keeper::Transaction(Opened::ByStatement) => (
                format!("{what} cannot run inside a transaction"),
                "run it on its own, outside BEGIN ... COMMIT".into(),
            ),
            Keeper::Transaction(Opened::ByRunner(r)) => (
                format!(
                    "{r} runs this {} in a transaction, and {what} cannot run inside one",
                    r.unit()
                ),
                r.without_transaction().into(),
            ),
            Keeper::Query(r, _) => (
                format!(
                    "{r} sends this statement in one query with others, which PostgreSQL runs as \
                     one transaction, and {what} cannot run inside one"
                ),
                r.alone().into(),
            ),
        })
    }

    /// Whether the statement being analysed runs in a transaction, the file's, the runner's or
    /// that of one query of several statements: a failure then undoes what ran before it.
    pub(super) fn undone_on_failure(&self) -> bool {
        self.keeper().is_some()
    }

    /// What keeps the locks of the statement being analysed after it ends, if anything does.
    fn keeper(&self) -> Option<Keeper> {
        self.transaction.map(Keeper::Transaction).or_else(|| {
            self.shared_query
                .clone()
                .map(|(r, lines)| Keeper::Query(r, lines))
        })
    }

    /// The settings and the record of what the migration made follow `event` of the
    /// transaction: a commit ends what `SET LOCAL` set, a rollback undoes every `SET` since
    /// `BEGIN` (or since the savepoint), and every object made, renamed or dropped since.
    fn follow(&mut self, event: Event<'_>) {
        let was = *self.lock_timeout.get();
        let statement_was = self.statement_timeout.get().is_some();
        self.lock_timeout.follow(event);
        self.statement_timeout.follow(event);
        self.lock_timeout_changed(was);
        self.statement_timeout_changed(statement_was);
        let named = |saved: &[(Option<String>, Saved)], name: &str| {
            saved.iter().rposition(|(n, _)| n.as_deref() == Some(name))
        };
        match event {
            Event::Begin => self.saved = vec![(None, self.saved())],
            Event::Commit => self.saved.clear(),
            Event::Rollback => {
                if let Some((_, saved)) = std::mem::take(&mut self.saved).into_iter().next() {
                    self.restore(saved);
                }
            }
            Event::Savepoint(name) => {
                let saved = self.saved();
                self.saved.push((Some(name.to_owned()), saved));
            }
            // The savepoint stays, for another rollback to it.
            Event::RollbackTo(name) => {
                if let Some(at) = named(&self.saved, name) {
                    self.saved.truncate(at + 1);
                    let (_, saved) = self.saved[at].clone();
                    self.restore(saved);
                }
            }
            Event::Release(name) => {
                if let Some(at) = named(&self.saved, name) {
                    self.saved.truncate(at);
                }
            }
        }
    }

    fn saved(&self) -> Saved {
        Saved {
            schema: self.schema.clone(),
            created: self.created.clone(),
            vacated: self.vacated.clone(),
            taken_over: self.taken_over.clone(),
            routines: self.routines.clone(),
            replaced_routines: self.replaced_routines.clone(),
            schemas: self.schemas.clone(),
            dropped_relations: self.dropped_relations.clone(),
            required_added: self.required_added.clone(),
            added_columns: self.added_columns.clone(),
            held: self.held.is_some(),
            added: self.added.len(),
        }
    }

    fn restore(&mut self, saved: Saved) {
        self.schema = saved.schema;
        self.created = saved.created;
        self.vacated = saved.vacated;
        self.taken_over = saved.taken_over;
        self.routines = saved.routines;
        self.replaced_routines = saved.replaced_routines;
        self.schemas = saved.schemas;
        self.dropped_relations = saved.dropped_relations;
        self.required_added = saved.required_added;
        self.added_columns = saved.added_columns;
        if !saved.held {
            self.held = None;
        }
        self.added.truncate(saved.added);
    }

    /// Whether `op` on `table` only renames or drops columns this migration added.
    fn only_added_columns(&self, table: &str, op: &AlterTableOperation) -> bool {
        let added = |c: &Ident| {
            self.added_columns
                .contains(&(table.to_owned(), ident_key(c)))
        };
        match op {
            AlterTableOperation::DropColumn { column_names, .. } => column_names.iter().all(added),
            AlterTableOperation::RenameColumn {
                old_column_name, ..
            } => added(old_column_name),
            _ => false,
        }
    }

    /// Follows the columns this migration added to `table` through `op`.
    fn follow_columns(&mut self, table: &str, op: &AlterTableOperation) {
        let key = |c: &Ident| (table.to_owned(), ident_key(c));
        match op {
            AlterTableOperation::AddColumn { column_def, .. } => {
                self.added_columns.insert(key(&column_def.name));
            }
            AlterTableOperation::DropColumn { column_names, .. } => {
                for c in column_names {
                    self.added_columns.remove(&key(c));
                }
            }
            // A column in use keeps being one under its new name.
            AlterTableOperation::RenameColumn {
                old_column_name,
                new_column_name,
            } if self.added_columns.remove(&key(old_column_name)) => {
                self.added_columns.insert(key(new_column_name));
            }
            _ => {}
        }
    }

    fn set_lock_timeout(&mut self, on: bool, local: bool) {
        let was = *self.lock_timeout.get();
        self.lock_timeout.set(on, local);
        self.lock_timeout_changed(was);
    }

    /// A `lock_timeout` no longer in force is reported again at the next strong lock.
    fn lock_timeout_changed(&mut self, was: bool) {
        if was && !*self.lock_timeout.get() {
            self.lock_timeout_reported = false;
        }
    }

    fn set_statement_timeout(&mut self, timeout: Option<String>, local: bool) {
        let was = self.statement_timeout.get().is_some();
        self.statement_timeout.set(timeout, local);
        self.statement_timeout_changed(was);
    }

    /// A `statement_timeout` no longer in force is reported again at the next strong lock.
    fn statement_timeout_changed(&mut self, was: bool) {
        if was && self.statement_timeout.get().is_none() {
            self.statement_timeout_reported = false;
        }
    }
}

/// Moves the `columns` (`table_key`, `ident_key`) of table `from` to `to`, its new name.
/// PostgreSQL renames only to a name no relation has, so any known under `to` were of a table
/// dropped or renamed away since.
fn move_columns(columns: &mut BTreeSet<(String, String)>, from: &str, to: &str) {
    *columns = std::mem::take(columns)
        .into_iter()
        .filter(|(table, _)| table != to)
        .map(|(table, column)| (if table == from { to.to_owned() } else { table }, column))
        .collect();
}

/// `SET [LOCAL] name = values` of `lock_timeout` or `statement_timeout` (any other `name` is
/// left alone); a `lock_timeout` too long to protect traffic is reported.
fn set_timeout(ctx: &mut Ctx, name: &str, values: &[Expr], local: bool, out: &mut Vec<SqlFinding>) {
    // SET LOCAL outside a transaction does nothing (PostgreSQL only warns); a query of
    // several statements is one.
    if local && ctx.transaction.is_none() && ctx.implicit.is_none() {
        return;
    }
    if name.eq_ignore_ascii_case("lock_timeout") {
        if let [value] = values
            && timeout_ms(value).is_some_and(|ms| ms > MAX_LOCK_TIMEOUT_MS)
        {
            out.push(finding(
                "require-lock-timeout",
                Severity::Warn,
                Safety::Safe,
                format!(
                    "lock_timeout = {value} lets a statement that waits for a strong lock \
                     queue every later query on its table for up to that long: more than 10s \
                     is an outage, not a timeout"
                ),
                RECIPE_LOCK_TIMEOUT,
            ));
        }
        ctx.set_lock_timeout(sets_a_timeout(values), local);
    } else if name.eq_ignore_ascii_case("statement_timeout") {
        let timeout = sets_a_timeout(values).then(|| {
            let written: Vec<String> = values.iter().map(ToString::to_string).collect();
            written.join(", ")
        });
        ctx.set_statement_timeout(timeout, local);
    }
}

/// The settings a `SELECT [pg_catalog.]set_config('name', value, is_local), ...` without a
/// `FROM` makes, as `SET [LOCAL]` would: each name, value and whether it is local. A call whose
/// name or `is_local` is not a literal is left out.
fn set_configs(query: &Query) -> Vec<(String, &Expr, bool)> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return Vec::new();
    };
    if !select.from.is_empty() {
        return Vec::new();
    }
    select
        .projection
        .iter()
        .filter_map(|item| {
            let (SelectItem::UnnamedExpr(Expr::Function(f))
            | SelectItem::ExprWithAlias {
                expr: Expr::Function(f),
                ..
            }) = item
            else {
                return None;
            };
            let called = f.name.0.last()?.as_ident()?;
            if !called.value.eq_ignore_ascii_case("set_config") {
                return None;
            }
            let FunctionArguments::List(list) = &f.args else {
                return None;
            };
            let args: Vec<&Expr> = list
                .args
                .iter()
                .filter_map(|a| match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                    _ => None,
                })
                .collect();
            let [Expr::Value(name), value, Expr::Value(local)] = args.as_slice() else {
                return None;
            };
            let (Value::SingleQuotedString(name), Value::Boolean(local)) =
                (&name.value, &local.value)
            else {
                return None;
            };
            Some((name.clone(), *value, *local))
        })
        .collect()
}

/// The name of a setting as PostgreSQL looks it up: quotes left out, letters in any case
/// (`SET "lock_timeout"` is `SET lock_timeout`).
fn setting_name(name: &ObjectName) -> String {
    let parts: Vec<&str> = name
        .0
        .iter()
        .filter_map(|p| p.as_ident().map(|i| i.value.as_str()))
        .collect();
    parts.join(".").to_ascii_lowercase()
}

fn is_lock_timeout(name: &ObjectName) -> bool {
    setting_name(name) == "lock_timeout"
}

fn is_statement_timeout(name: &ObjectName) -> bool {
    setting_name(name) == "statement_timeout"
}

/// The longest `lock_timeout` that still protects traffic: every query on the table queues
/// behind a statement waiting for its lock, for as long as the timeout lets it wait. Ten
/// seconds is strong_migrations' default; squawk suggests shorter still.
const MAX_LOCK_TIMEOUT_MS: f64 = 10_000.0;

/// Whether `SET lock_timeout` to `values` sets a timeout: `0` (in any unit) and `DEFAULT`
/// (0 unless the server says otherwise) turn it off. A value not read (a placeholder) is
/// taken to set one.
fn sets_a_timeout(values: &[Expr]) -> bool {
    let [value] = values else {
        return true;
    };
    if value
        .to_string()
        .trim_matches(['\'', '"'])
        .trim()
        .eq_ignore_ascii_case("default")
    {
        return false;
    }
    timeout_ms(value).is_none_or(|ms| ms != 0.0)
}

/// A timeout's value in milliseconds, read as PostgreSQL reads it: a number, with a unit
/// (`us`, `ms`, `s`, `min`, `h`, `d`) or without (milliseconds). `None` if it is not one.
fn timeout_ms(value: &Expr) -> Option<f64> {
    let text = value.to_string();
    let text = text.trim_matches(['\'', '"']).trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let per_unit = match unit.trim() {
        "" | "ms" => 1.0,
        "us" => 0.001,
        "s" => 1_000.0,
        "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        _ => return None,
    };
    Some(number.parse::<f64>().ok()? * per_unit)
}

/// The findings of one operation of an `ALTER TABLE`; `collations` holds the columns whose
/// new type carries `COLLATE`, with the collation.
fn alter_table(
    name: &ObjectName,
    op: &AlterTableOperation,
    created: bool,
    schema: &Schema,
    collations: &[(String, String)],
    out: &mut Vec<SqlFinding>,
) {
    let table = &name.to_string();
    use Safety::{ExpandContract, Unsafe};
    use Severity::{Error as E, Warn as W};
    match op {
        // No running version knows a table this migration made: dropping, renaming or
        // retyping its columns, or making them required, breaks nothing and waits for nothing.
        AlterTableOperation::DropColumn { .. }
        | AlterTableOperation::RenameColumn { .. }
        | AlterTableOperation::AlterColumn {
            op:
                AlterColumnOperation::SetNotNull
                | AlterColumnOperation::DropNotNull
                | AlterColumnOperation::SetDataType { .. },
            ..
        } if created => {}
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
        // A table this migration made is renamed before anything uses it.
        AlterTableOperation::RenameTable {
            table_name: RenameTableNameKind::As(to) | RenameTableNameKind::To(to),
        } if !created => out.push(renamed(
            "renaming-table",
            format!("renaming table {table} to {to}"),
        )),
        AlterTableOperation::RenameTable { .. } => {}
        AlterTableOperation::AddColumn { column_def, .. } => {
            let col = &column_def.name.value;
            let mut not_null = false;
            let mut primary_key = false;
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
                    // `DEFAULT NULL` fills nothing: the column has no default to speak of.
                    ColumnOption::Default(e) if !is_null(e) => default = Some(e),
                    // A primary key's columns are NOT NULL, whether declared so or not.
                    ColumnOption::PrimaryKey(_) => {
                        not_null = true;
                        primary_key = true;
                        if !created {
                            out.push(finding(
                                "adding-serial-primary-key-field",
                                E,
                                Unsafe,
                                format!(
                                    "adding {table}.{col} as the primary key builds its unique \
                                     index under an ACCESS EXCLUSIVE lock: reads and writes of \
                                     {table} wait until the build ends"
                                ),
                                &format!(
                                    "add the column without PRIMARY KEY, fill it, then \
                                     {RECIPE_ADD_PRIMARY_KEY}"
                                ),
                            ));
                        }
                    }
                    ColumnOption::Unique(_) if !created => {
                        out.push(finding(
                            "disallowed-unique-constraint",
                            E,
                            Unsafe,
                            format!(
                                "adding {table}.{col} with a unique key builds an index under an \
                                 ACCESS EXCLUSIVE lock"
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
                        "{table}.{col} is NOT NULL{} without a default: it fails on existing \
                         rows and the old version's inserts omit it",
                        if primary_key {
                            " (as a primary key)"
                        } else {
                            ""
                        }
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
            // A valid `CHECK (c IS NOT NULL)` lets PostgreSQL skip the scan.
            AlterColumnOperation::SetNotNull if schema.proves_not_null(name, column_name) => {}
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
            AlterColumnOperation::SetDataType {
                data_type, using, ..
            } => {
                let old = schema.column_type(name, column_name);
                // timestamp to timestamptz keeps the values only in a UTC session.
                let conditional = |old: &&DataType| {
                    matches!(
                        old,
                        DataType::Timestamp(_, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone)
                    ) && matches!(
                        data_type,
                        DataType::Timestamp(_, TimezoneInfo::WithTimeZone | TimezoneInfo::Tz)
                    )
                };
                let converts = using
                    .as_ref()
                    .is_some_and(|u| !restates_column(u, column_name, data_type));
                if let Some(old) = old.filter(|old| !converts && keeps_values(old, data_type)) {
                    // A widening: the catalog only, unless the way values compare changes: to
                    // or from citext, or another collation (without `COLLATE`, the new type's
                    // default).
                    let new = new_collation(column_name, collations);
                    let now = schema.column_collation(name, column_name).flatten();
                    let change = if is_citext(old) != is_citext(data_type) {
                        Some(format!(
                            "changes from {old} to {data_type}, which compares {}",
                            if is_citext(data_type) {
                                "case-insensitively"
                            } else {
                                "case by case"
                            }
                        ))
                    } else if now != new.as_deref() {
                        Some(format!(
                            "changes collation to {}",
                            new.map_or_else(|| "the default".to_owned(), |c| format!("\"{c}\""))
                        ))
                    } else {
                        None
                    };
                    if let Some(change) = change {
                        out.push(finding(
                            "changing-collation",
                            E,
                            Unsafe,
                            format!(
                                "{table}.{column_name} {change}: every index on it is rebuilt \
                                 under the ACCESS EXCLUSIVE lock (a unique one fails on values \
                                 that now compare equal), and the old version's comparisons and \
                                 sort order of it change"
                            ),
                            "add an index that compares as wanted (CREATE INDEX CONCURRENTLY ... \
                             (col COLLATE ...) or (lower(col))) and use it in the queries that \
                             need it, or expand/contract through a new column",
                        ));
                    }
                } else if let Some(old) = old.filter(|old| conditional(old) && !converts) {
                    out.push(finding(
                        "changing-column-type",
                        W,
                        Unsafe,
                        format!(
                            "{table}.{column_name} changes type from {old} to {data_type}: the \
                             catalog only changes when the session's TimeZone is UTC; in any \
                             other the table is rewritten under an ACCESS EXCLUSIVE lock"
                        ),
                        "run it with SET TimeZone = 'UTC' first, or expand/contract: add a \
                         column of the new type, write both, backfill, move reads, drop the \
                         old column",
                    ));
                } else if let Some(old) = old {
                    out.push(finding(
                        "changing-column-type",
                        E,
                        Unsafe,
                        format!(
                            "{table}.{column_name} changes type from {old} to {data_type}: the \
                             table is rewritten under an ACCESS EXCLUSIVE lock and the old \
                             version reads the old type"
                        ),
                        RECIPE_TYPE,
                    ));
                } else if let Some(free_from) = free_from(data_type).filter(|_| !converts) {
                    // It may be a widening; the old type is not known.
                    out.push(finding(
                        "changing-column-type",
                        E,
                        Unsafe,
                        format!(
                            "{table}.{column_name} changes type to {data_type} from a type no \
                             earlier migration declared: from {free_from} the catalog only \
                             changes, from anything else the table is rewritten under an \
                             ACCESS EXCLUSIVE lock and the old version reads the old type"
                        ),
                        "if it is such a widening, say so with -- serin:ignore \
                         changing-column-type (or give the catalog the migration that made the \
                         column); otherwise expand/contract: add a column of the new type, \
                         write both, backfill, move reads, drop the old column",
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
            AlterColumnOperation::AddGenerated {
                generated_as: Some(GeneratedAs::Always),
                ..
            } if !created => out.push(generated_always(name, &column_name.to_string())),
            // SET DEFAULT applies to rows inserted later, whatever the default: no rewrite.
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
                TableConstraint::PrimaryKeyUsingIndex(using) => {
                    let nullable = schema.nullable_keys(name, &using.index_name);
                    if !nullable.is_empty() {
                        out.push(finding(
                            "adding-not-nullable-field",
                            E,
                            Unsafe,
                            format!(
                                "PRIMARY KEY USING INDEX {} sets {table}.{} NOT NULL, which scans \
                                 the table under an ACCESS EXCLUSIVE lock",
                                using.index_name,
                                nullable.join(", ")
                            ),
                            RECIPE_PRIMARY_KEY,
                        ));
                    }
                }
                TableConstraint::PrimaryKey(pk) => {
                    let columns: Vec<String> = pk.columns.iter().map(ToString::to_string).collect();
                    let name = pk
                        .name
                        .as_ref()
                        .map_or_else(String::new, |n| format!("{n} on "));
                    out.push(finding(
                        "adding-serial-primary-key-field",
                        E,
                        Unsafe,
                        format!(
                            "primary key {name}{table} ({}) builds its unique index under an \
                             ACCESS EXCLUSIVE lock: reads and writes of {table} wait until the \
                             build ends",
                            columns.join(", ")
                        ),
                        RECIPE_ADD_PRIMARY_KEY,
                    ));
                }
                TableConstraint::Unique(_) => out.push(finding(
                    "disallowed-unique-constraint",
                    E,
                    Unsafe,
                    format!(
                        "unique constraint on {table} builds an index under an ACCESS EXCLUSIVE \
                         lock"
                    ),
                    RECIPE_UNIQUE,
                )),
                _ => {}
            }
        }
        _ => {}
    }
}

/// A routine as PostgreSQL tells routines apart: its name (as `table_key` writes it) and the
/// types of its input arguments, `None` where a statement names it without them.
type RoutineKey = (String, Option<String>);

fn routine_key(name: &ObjectName, args: Option<&[OperateFunctionArg]>) -> RoutineKey {
    let types = args.map(|args| {
        args.iter()
            .filter(|a| a.mode != Some(ArgMode::Out))
            .map(|a| signature_type(&a.data_type))
            .collect::<Vec<_>>()
            .join(", ")
    });
    (table_key(name), types)
}

/// Whether two keys may name the same routine: the same name, and the same argument types
/// where both are known.
fn same_routine(a: &RoutineKey, b: &RoutineKey) -> bool {
    a.0 == b.0 && (a.1.is_none() || b.1.is_none() || a.1 == b.1)
}

/// A type as a routine's signature holds it: PostgreSQL drops type modifiers there
/// (`varchar(10)` is `varchar`) and knows each type by one name (`int`, `int4` and `integer`).
fn signature_type(ty: &DataType) -> String {
    let written = ty.to_string().to_ascii_lowercase();
    let mut depth = 0usize;
    let plain: String = written
        .chars()
        .filter(|c| match c {
            '(' => {
                depth += 1;
                false
            }
            ')' => {
                depth = depth.saturating_sub(1);
                false
            }
            _ => depth == 0,
        })
        .collect();
    let plain = plain.split_whitespace().collect::<Vec<_>>().join(" ");
    let plain = plain.strip_prefix("pg_catalog.").unwrap_or(&plain);
    let base = plain.trim_end_matches("[]").trim_end();
    let arrays = &plain[base.len()..];
    let base = match base {
        "int" | "int4" | "integer" => "integer",
        "int8" | "bigint" => "bigint",
        "int2" | "smallint" => "smallint",
        "bool" | "boolean" => "boolean",
        "float" | "float8" | "double precision" => "double precision",
        "float4" | "real" => "real",
        "varchar" | "character varying" => "character varying",
        "char" | "character" | "bpchar" => "character",
        "decimal" | "numeric" => "numeric",
        "timestamptz" | "timestamp with time zone" => "timestamp with time zone",
        "timestamp" | "timestamp without time zone" => "timestamp",
        "timetz" | "time with time zone" => "time with time zone",
        "time" | "time without time zone" => "time",
        "varbit" | "bit varying" => "bit varying",
        other => other,
    };
    format!("{base}{}", arrays.replace(' ', ""))
}

/// A new function or procedure is known from here on; replacing one this migration did not
/// make changes what it does for every version running.
fn create_routine(
    name: &ObjectName,
    args: Option<&[OperateFunctionArg]>,
    or_replace: bool,
    ctx: &mut Ctx,
) -> Option<SqlFinding> {
    let key = routine_key(name, args);
    if !or_replace || ctx.made_routine(&key) {
        // Made again where one in use was dropped, it is the running version's routine.
        if !ctx.replaced_routines.contains(&key.0) {
            ctx.routines.insert(key);
        }
        return None;
    }
    Some(finding(
        "not-analysed",
        Severity::Info,
        Safety::Safe,
        format!(
            "CREATE OR REPLACE of {name} changes what it does for every version running that \
             calls it (and for the triggers, defaults and views that use it); its body is not \
             analysed"
        ),
        "check that the version still running works with the new body (same arguments, same \
         result), and review what it runs by hand",
    ))
}

/// The rules whose recipe is a concurrent form, which runs only outside a transaction.
const CONCURRENT_RECIPES: [&str; 5] = [
    "require-concurrent-index-creation",
    "require-concurrent-index-deletion",
    "require-concurrent-reindex",
    "require-concurrent-partition-detach",
    "ban-concurrent-index-on-partitioned-table",
];

/// Analyses one statement: its SQL as the parser prints it, and its findings. Where the
/// statement stands in a transaction (the file's, the runner's, or a query of several), a
/// recipe that runs only outside one says how to get there.
pub(super) fn analyse_one(written: &Written, ctx: &mut Ctx) -> (String, Vec<SqlFinding>) {
    let keeper = ctx.keeper();
    let (sql, mut findings) = analyse_statement(written, ctx);
    ctx.follow_renames(&written.parsed);
    if let Some(keeper) = keeper {
        let how = match keeper {
            Keeper::Transaction(Opened::ByStatement) => {
                "outside the migration's BEGIN ... COMMIT".to_owned()
            }
            Keeper::Transaction(Opened::ByRunner(r)) => r.without_transaction().to_owned(),
            Keeper::Query(r, _) => r.alone().to_owned(),
        };
        for f in &mut findings {
            if CONCURRENT_RECIPES.contains(&f.rule.as_str()) {
                f.recipe = format!("{}; here: {how}", f.recipe);
            }
        }
    }
    (sql, findings)
}

fn analyse_statement(written: &Written, ctx: &mut Ctx) -> (String, Vec<SqlFinding>) {
    use Safety::{ExpandContract, Safe, Unsafe};
    use Severity::{Error as E, Warn as W};
    let stmt = &written.parsed;
    let mut out = Vec::new();
    ctx.number += 1;
    let locks = takes_lock(stmt, ctx);
    follow_transaction(written, locks, ctx, &mut out);
    if locks && !*ctx.lock_timeout.get() && !ctx.lock_timeout_reported {
        ctx.lock_timeout_reported = true;
        out.push(finding(
            "require-lock-timeout",
            W,
            Safe,
            "this statement takes a strong lock but no lock_timeout was set first".into(),
            RECIPE_LOCK_TIMEOUT,
        ));
    }
    if locks
        && ctx.opted_in.contains("require-statement-timeout")
        && ctx.statement_timeout.get().is_none()
        && !ctx.statement_timeout_reported
    {
        ctx.statement_timeout_reported = true;
        out.push(finding(
            "require-statement-timeout",
            W,
            Safe,
            "this statement takes a strong lock but no statement_timeout was set first: if it \
             runs long, nothing ends it, and every query on its table queues behind it"
                .into(),
            RECIPE_STATEMENT_TIMEOUT,
        ));
    }
    if ctx.opted_in.contains("prefer-robust-stmts") {
        out.extend(super::opt_in::fails_when_run_again(stmt, ctx));
    }
    if ctx.opted_in.contains("require-table-schema") {
        out.extend(
            super::opt_in::unqualified_tables(stmt)
                .into_iter()
                .map(|table| {
                    finding(
                        "require-table-schema",
                        W,
                        Safe,
                        format!(
                            "table {table} is named without its schema, so the statement acts on \
                     whichever {table} the session's search_path finds first"
                        ),
                        &format!(
                            "name it with its schema: public.{table} (or the schema it is in)"
                        ),
                    )
                }),
        );
    }
    if let (Some(timeout), Some(what)) = (ctx.statement_timeout.get(), takes_long(stmt, ctx)) {
        let invalid = if what == "concurrent index build" {
            ", and a cancelled one leaves its index behind, invalid"
        } else {
            ""
        };
        out.push(finding(
            "statement-timeout-cancels",
            W,
            Safe,
            format!(
                "statement_timeout = {timeout} is in force: this {what} lasts as long as its \
                 table is big, and is cancelled if it outlasts the timeout{invalid}"
            ),
            "SET statement_timeout = 0 just before it, and back after (lock_timeout still \
             bounds its wait for a lock)",
        ));
    }
    if !matches!(stmt, Parsed::Meta(_)) {
        out.extend(too_long_names(&written.text).into_iter().map(|name| {
            finding(
                "identifier-too-long",
                W,
                Safe,
                format!(
                    "{name} is longer than the {MAX_NAME_BYTES} bytes PostgreSQL keeps of a \
                     name: it is cut to {}, without an error, so names that start alike become \
                     one (and IF NOT EXISTS skips the second)",
                    clip(&name, MAX_NAME_BYTES)
                ),
                "choose a name of at most 63 bytes",
            )
        }));
    }
    let sql = match stmt {
        Parsed::DropIndexConcurrently {
            names,
            if_exists,
            cascade,
        } => {
            ctx.dropped_relations.extend(names.iter().map(table_key));
            let list: Vec<String> = names.iter().map(ToString::to_string).collect();
            if let Some((message, recipe)) = ctx.transaction_block("DROP INDEX CONCURRENTLY") {
                out.push(finding(
                    "ban-concurrent-index-creation-in-transaction",
                    E,
                    Unsafe,
                    message,
                    &recipe,
                ));
            }
            // PostgreSQL refuses both, wherever the statement stands.
            if names.len() > 1 || *cascade {
                let what = if *cascade {
                    "CASCADE"
                } else {
                    "dropping several indexes"
                };
                out.push(finding(
                    "unsupported-concurrent-drop",
                    E,
                    Unsafe,
                    format!("PostgreSQL refuses DROP INDEX CONCURRENTLY with {what}"),
                    "one DROP INDEX CONCURRENTLY per index, without CASCADE (drop what depends \
                     on the index first)",
                ));
            }
            let sql = format!(
                "DROP INDEX CONCURRENTLY {}{}{}",
                if *if_exists { "IF EXISTS " } else { "" },
                list.join(", "),
                if *cascade { " CASCADE" } else { "" }
            );
            return (sql, out);
        }
        Parsed::Reindex { concurrently, .. } => {
            let block = ctx.transaction_block("REINDEX CONCURRENTLY");
            if let Some((message, recipe)) = block.filter(|_| *concurrently) {
                out.push(finding(
                    "ban-concurrent-index-creation-in-transaction",
                    E,
                    Unsafe,
                    message,
                    &recipe,
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
        Parsed::Cluster { every } => {
            out.push(finding(
                "prefer-repack",
                E,
                Unsafe,
                if *every {
                    "CLUSTER without a table rewrites every table clustered before, each under \
                     an ACCESS EXCLUSIVE lock that blocks reads and writes"
                } else {
                    "CLUSTER rewrites the table under an ACCESS EXCLUSIVE lock, blocking reads \
                     and writes"
                }
                .into(),
                RECIPE_REPACK,
            ));
            return (written.text.clone(), out);
        }
        Parsed::ByWords(form) => {
            match form {
                // A new table is moved before anything uses it.
                ByWords::SetSchema { table, .. } if !ctx.in_use(table) => {}
                ByWords::SetSchema { table, schema } => out.push(renamed(
                    "renaming-table",
                    format!("moving {table} to schema {schema}"),
                )),
                // A new relation is moved before anything uses it.
                ByWords::SetTablespace { relation, .. }
                | ByWords::SetAccessMethod { relation, .. }
                    if !ctx.in_use(relation) => {}
                ByWords::SetTablespace { relation, kind } => out.push(finding(
                    "changing-tablespace",
                    E,
                    Unsafe,
                    format!(
                        "SET TABLESPACE copies {kind} {relation} under an ACCESS EXCLUSIVE lock, \
                         blocking {}",
                        if *kind == Relation::Index {
                            "reads and writes of its table"
                        } else {
                            "reads and writes"
                        }
                    ),
                    if *kind == Relation::Index {
                        "build a copy in the new tablespace with CREATE INDEX CONCURRENTLY ... \
                         TABLESPACE, then DROP INDEX CONCURRENTLY the old one"
                    } else {
                        "move it online with pg_repack --tablespace, or in a maintenance window"
                    },
                )),
                ByWords::MoveTablespace { kind, from } => out.push(finding(
                    "changing-tablespace",
                    E,
                    Unsafe,
                    format!(
                        "ALL IN TABLESPACE locks every {kind} in tablespace {from} (ACCESS \
                         EXCLUSIVE), then copies each, blocking reads and writes of them all \
                         until the last is moved"
                    ),
                    "move the tables one at a time online with pg_repack --tablespace, and \
                     the indexes with CREATE INDEX CONCURRENTLY ... TABLESPACE",
                )),
                ByWords::SetAccessMethod { relation, kind } => out.push(finding(
                    "changing-access-method",
                    E,
                    Unsafe,
                    format!(
                        "SET ACCESS METHOD rewrites {kind} {relation} under an ACCESS EXCLUSIVE \
                         lock, blocking reads and writes"
                    ),
                    "copy the rows online into a new table with the access method (batches or \
                     logical replication) and switch over, or do it in a maintenance window",
                )),
                // Planner statistics, TOAST storage and compression of new values, an identity,
                // a sequence's settings, an owner, a new view: catalog changes only, no rewrite.
                ByWords::Sequence {
                    sequence,
                    renamed: Some((change, _)),
                } if ctx.in_use(sequence) => {
                    out.push(renamed_object("renaming-sequence", change));
                }
                ByWords::TypeAttributes {
                    ty,
                    dropped,
                    renamed: new_name,
                } if ctx.in_use(ty) => {
                    if let Some((from, to)) = new_name {
                        out.push(renamed(
                            "renaming-column",
                            format!("renaming attribute {from} of type {ty} to {to}"),
                        ));
                    }
                    if !dropped.is_empty() {
                        out.push(finding(
                            "ban-drop-column",
                            W,
                            ExpandContract,
                            format!(
                                "dropping attribute(s) {} of type {ty} breaks the old version if \
                                 it reads them, and discards their values in every column of the \
                                 type",
                                dropped.join(", ")
                            ),
                            RECIPE_DROP_COLUMN,
                        ));
                    }
                }
                // A procedure this migration made is renamed before anything calls it, and
                // stays its own under the new name.
                ByWords::Renamed {
                    rule: rule @ "renaming-function",
                    name,
                    change,
                    to,
                    args,
                } => {
                    if !ctx.made_routine(&routine_key(name, args.as_deref())) {
                        out.push(renamed_object(rule, change));
                    }
                    ctx.move_routine(name, args.as_deref(), to);
                }
                ByWords::Renamed {
                    rule, name, change, ..
                } if ctx.in_use(name) => {
                    out.push(renamed_object(rule, change));
                }
                ByWords::Renamed { .. } => {}
                ByWords::RoutineSetting => out.push(not_analysed()),
                ByWords::ReassignOwned => out.push(finding(
                    "revoking-privilege",
                    W,
                    ExpandContract,
                    "REASSIGN OWNED moves every object the role owns to another role: a version \
                     connecting as that role keeps only the privileges granted to it explicitly"
                        .into(),
                    "grant the old owner what it needs on each object first, or move the \
                     objects after every version connecting as it is retired",
                )),
                ByWords::DropOwned => out.push(finding(
                    "ban-drop-object",
                    E,
                    ExpandContract,
                    "DROP OWNED drops every object the role owns, its tables included, and \
                     revokes its privileges everywhere"
                        .into(),
                    "drop each object by name in the contract phase, once no running version \
                     uses it",
                )),
                ByWords::Sequence { .. } | ByWords::TypeAttributes { .. } => {}
                ByWords::ColumnSetting {
                    table,
                    column,
                    setting,
                } if setting.ends_with("ALWAYS") && ctx.in_use(table) => {
                    out.push(generated_always(table, &column.to_string()));
                }
                ByWords::ColumnSetting { .. }
                | ByWords::TypeOwner { .. }
                | ByWords::Statistics
                | ByWords::Owner
                | ByWords::AttachIndex
                | ByWords::LockedCatalog { .. }
                | ByWords::ClusterMark
                | ByWords::Publication
                | ByWords::IndexSetting { .. }
                | ByWords::CatalogOnly
                | ByWords::ServerWide { .. } => {}
                ByWords::Domain {
                    domain,
                    checks_columns,
                } => {
                    if *checks_columns && ctx.in_use(domain) {
                        out.push(finding(
                            "domain-constraint-scan",
                            E,
                            Unsafe,
                            format!(
                                "ALTER DOMAIN {domain} checks every column of type {domain} \
                                 under a SHARE lock on its tables, which blocks their writes \
                                 while it scans (a domain's VALIDATE CONSTRAINT too, unlike a \
                                 table's)"
                            ),
                            "check the columns with table constraints instead (ADD CONSTRAINT \
                             ... CHECK (...) NOT VALID, then VALIDATE CONSTRAINT, which lets \
                             writes go on), or run it in a quiet window",
                        ));
                    }
                }
                // `ONLY` builds nothing on a partitioned table; on another, a whole index.
                ByWords::IndexOnOnly { table } => {
                    if ctx.in_use(table) && ctx.schema.is_plain_table(table) {
                        out.push(finding(
                            "require-concurrent-index-creation",
                            E,
                            Unsafe,
                            format!(
                                "{table} is not partitioned, so CREATE INDEX ... ON ONLY builds \
                                 the whole index and blocks writes while it builds"
                            ),
                            RECIPE_INDEX,
                        ));
                    }
                }
                ByWords::CreateMaterializedView { view } => {
                    ctx.create(view);
                }
                // `IF NOT EXISTS` leaves a table earlier migrations made as it is, in use.
                ByWords::CreateTable { table, .. } if ctx.schema.has_table(table) => {}
                ByWords::CreateTable {
                    table,
                    if_not_exists,
                } => {
                    out.extend(if_not_exists.then(|| taken_as_new(table, ctx)).flatten());
                    ctx.create(table);
                }
                ByWords::Vacuum { full, tables } => {
                    if *full {
                        let tables: Vec<String> = tables.iter().map(ToString::to_string).collect();
                        out.push(vacuum_full(&tables.join(", ")));
                    }
                }
                ByWords::Do => out.push(finding(
                    "not-analysed",
                    W,
                    Safe,
                    "the body of a DO block is not analysed: it runs as written, with whatever \
                     locks and data changes its statements make"
                        .into(),
                    "review its statements by hand as if they stood alone (better: write them \
                     as plain statements, which are analysed)",
                )),
                ByWords::Routine {
                    name,
                    args,
                    or_replace,
                } => {
                    out.extend(create_routine(name, args.as_deref(), *or_replace, ctx));
                }
                ByWords::TextSearch => out.push(finding(
                    "not-analysed",
                    Severity::Info,
                    Safe,
                    "a text search configuration changes how to_tsvector and to_tsquery read \
                     text, for every version running; what indexes and stored tsvectors hold \
                     was read the old way until they are rebuilt"
                        .into(),
                    "check that the version still running searches as it should, and rebuild \
                     the full-text indexes and stored tsvectors that use it",
                )),
                ByWords::ExtensionUpdate => out.push(finding(
                    "not-analysed",
                    W,
                    Safe,
                    "ALTER EXTENSION ... UPDATE runs the extension's upgrade scripts, which are \
                     not analysed: they may lock or rewrite the tables that use its types"
                        .into(),
                    "read the extension's release notes for what its upgrade locks, and run it \
                     in a quiet window if it rebuilds anything",
                )),
            }
            return (written.text.clone(), out);
        }
        Parsed::Meta(_) if stmt.reconnects() => {
            // A new session, perhaps of another database: nothing known carries over.
            *ctx = Ctx {
                number: ctx.number,
                ..Ctx::default()
            };
            out.push(finding(
                "not-analysed",
                Severity::Info,
                Safe,
                "psql opens a new session here, perhaps in another database: what follows is \
                 analysed without the schema learned so far, and settings such as lock_timeout \
                 start over"
                    .into(),
                "keep one database per migration where you can",
            ));
            return (written.text.clone(), out);
        }
        Parsed::Meta(command) => {
            let message = match command.as_str() {
                "i" | "ir" | "include" | "include_relative" => {
                    "psql runs the file this includes, whose statements are not analysed here"
                }
                "gexec" => {
                    "psql runs each value this query returns as a statement, and those are not \
                     analysed here"
                }
                // Settings and output of psql itself: no schema change.
                _ => return (written.text.clone(), out),
            };
            out.push(finding(
                "not-analysed",
                W,
                Safe,
                message.into(),
                "analyse that SQL as a migration of its own, or write it out here",
            ));
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
        Statement::Set(Set::SingleAssignment {
            scope,
            variable,
            values,
            ..
        }) if is_lock_timeout(variable) || is_statement_timeout(variable) => {
            let local = matches!(scope, Some(ContextModifier::Local));
            set_timeout(ctx, &setting_name(variable), values, local, &mut out);
        }
        // Other settings of the session (`pg_dump` starts with a dozen) change no schema.
        Statement::Set(_) => {}
        Statement::Reset(r) => match &r.reset {
            Reset::ALL => {
                ctx.set_lock_timeout(false, false);
                ctx.statement_timeout.set(None, false);
            }
            Reset::ConfigurationParameter(name) if is_lock_timeout(name) => {
                ctx.set_lock_timeout(false, false);
            }
            Reset::ConfigurationParameter(name) if is_statement_timeout(name) => {
                ctx.statement_timeout.set(None, false);
            }
            _ => {}
        },
        Statement::StartTransaction { .. } => match ctx.transaction {
            Some(Opened::ByStatement) => out.push(finding(
                "transaction-nesting",
                W,
                Safe,
                "BEGIN inside a transaction does nothing: the first COMMIT ends the \
                     transaction, and what follows it runs outside one"
                    .into(),
                "remove the inner BEGIN (or use SAVEPOINT)",
            )),
            Some(Opened::ByRunner(r)) => out.push(finding(
                "transaction-nesting",
                W,
                Safe,
                format!(
                    "{r} already runs this migration in a transaction: BEGIN does nothing, \
                         and the first COMMIT ends {r}'s transaction, so what follows it runs \
                         outside one"
                ),
                "remove the migration's own BEGIN and COMMIT",
            )),
            // In a query of several statements, BEGIN makes its implicit transaction one of
            // the file's own: what ran before BEGIN in the query is part of it, the locks it
            // took and the enum values it added too (checked on PostgreSQL 15 with `pg_locks`).
            None => {
                ctx.transaction = Some(Opened::ByStatement);
                if ctx.implicit.take().is_some() {
                    ctx.scope = ctx.keeper();
                } else {
                    ctx.follow(Event::Begin);
                }
            }
        },
        // A savepoint and a rollback to it leave the transaction open; the rollback undoes
        // the settings made since the savepoint.
        Statement::Savepoint { name } if ctx.transaction.is_some() => {
            ctx.follow(Event::Savepoint(&ident_key(name)));
        }
        Statement::ReleaseSavepoint { name } if ctx.transaction.is_some() => {
            ctx.follow(Event::Release(&ident_key(name)));
        }
        Statement::Rollback {
            savepoint: Some(name),
            ..
        } => {
            if ctx.transaction.is_some() {
                ctx.follow(Event::RollbackTo(&ident_key(name)));
            }
        }
        Statement::Savepoint { .. } | Statement::ReleaseSavepoint { .. } => {}
        // `AND CHAIN` ends the transaction and starts the next one at once.
        Statement::Commit { chain: true, .. } | Statement::Rollback { chain: true, .. } => {
            let rolled_back = matches!(sql, Statement::Rollback { .. });
            if ctx.transaction.is_some() {
                ctx.follow(if rolled_back {
                    Event::Rollback
                } else {
                    Event::Commit
                });
                ctx.transaction_ended();
                ctx.follow(Event::Begin);
            }
            ctx.held = None;
            ctx.added.clear();
        }
        // A rollback undoes every setting made in the transaction, `SET` as `SET LOCAL`; a
        // commit ends what `SET LOCAL` set. Either releases the locks the transaction took,
        // also in a query of several statements, whose next statement starts another.
        Statement::Commit { .. } | Statement::Rollback { .. } => {
            if ctx.transaction.take().is_some() || ctx.implicit.take().is_some() {
                ctx.follow(if matches!(sql, Statement::Rollback { .. }) {
                    Event::Rollback
                } else {
                    Event::Commit
                });
                ctx.transaction_ended();
                ctx.held = None;
                ctx.added.clear();
            }
        }
        // A new database, which nothing uses yet.
        Statement::CreateDatabase { .. } => {}
        // DISCARD ALL resets the session's settings, as RESET ALL does.
        Statement::Discard {
            object_type: DiscardObject::ALL,
        } => {
            ctx.set_lock_timeout(false, false);
            ctx.statement_timeout.set(None, false);
        }
        Statement::Discard { .. } => {}
        Statement::CreateDomain(d) => ctx.create(&d.name),
        // `IF NOT EXISTS` of a table earlier migrations made does nothing: the table stays
        // the one running versions use.
        Statement::CreateTable(ct) if ct.if_not_exists && ctx.schema.has_table(&ct.name) => {}
        Statement::CreateTable(ct) => {
            out.extend(
                ct.if_not_exists
                    .then(|| taken_as_new(&ct.name, ctx))
                    .flatten(),
            );
            ctx.create(&ct.name);
            out.extend(create_table_notes(&ct.name, &ct.columns));
            if let (Some(parent), Some(bound)) = (&ct.partition_of, &ct.for_values) {
                let what = format!("CREATE TABLE {} PARTITION OF {parent}", ct.name);
                out.extend(default_partition_scan(parent, bound, &what, ctx));
            }
        }
        Statement::CreateIndex(ci) => {
            // An index of a new table: altering it later holds up no query in use.
            if let Some(index) = ci.name.as_ref().filter(|_| !ctx.in_use(&ci.table_name)) {
                ctx.create(index);
            }
            let table = ci.table_name.to_string();
            let partitioned = ctx.schema.is_partitioned(&ci.table_name);
            let block = ctx.transaction_block("CREATE INDEX CONCURRENTLY");
            if let Some((message, recipe)) = block.filter(|_| ci.concurrently) {
                out.push(finding(
                    "ban-concurrent-index-creation-in-transaction",
                    E,
                    Unsafe,
                    message,
                    &recipe,
                ));
            } else if ci.concurrently && partitioned {
                out.push(finding(
                    "ban-concurrent-index-on-partitioned-table",
                    E,
                    Unsafe,
                    format!(
                        "PostgreSQL refuses CREATE INDEX CONCURRENTLY on {table}, a partitioned \
                         table"
                    ),
                    RECIPE_PARTITIONED_INDEX,
                ));
            } else if ci.concurrently
                && ci.if_not_exists
                && ctx.in_use(&ci.table_name)
                && new_index_key(ci).is_some_and(|key| !ctx.dropped_relations.contains(&key))
            {
                let index = ci
                    .name
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                let unique = if ci.unique {
                    " and it enforces no uniqueness"
                } else {
                    ""
                };
                out.push(finding(
                    "concurrent-index-if-not-exists",
                    W,
                    Safe,
                    format!(
                        "a CREATE INDEX CONCURRENTLY that fails partway (a deadlock, a cancel, a \
                         duplicate key) leaves {index} behind, invalid; when the migration runs \
                         again, IF NOT EXISTS skips it and {index} stays invalid: no query uses \
                         it{unique}, yet every write keeps it up to date"
                    ),
                    &format!(
                        "DROP INDEX CONCURRENTLY IF EXISTS {index} just before it, so that a \
                         retry builds what a failed run left"
                    ),
                ));
            } else if !ci.concurrently && ctx.in_use(&ci.table_name) {
                let (message, recipe) = if partitioned {
                    (
                        format!(
                            "CREATE INDEX on {table} builds an index on every partition and \
                             blocks writes to all of them while it builds"
                        ),
                        RECIPE_PARTITIONED_INDEX,
                    )
                } else {
                    (
                        format!(
                            "CREATE INDEX on {table} without CONCURRENTLY blocks writes while it \
                             builds"
                        ),
                        RECIPE_INDEX,
                    )
                };
                out.push(finding(
                    "require-concurrent-index-creation",
                    E,
                    Unsafe,
                    message,
                    recipe,
                ));
            }
        }
        Statement::AlterTable(at) => {
            let created = !ctx.in_use(&at.name);
            let table = table_key(&at.name);
            let dropped_first = ctx.schema.with_dropped_checks(&at.name, &at.operations);
            for op in &at.operations {
                // PostgreSQL leaves a column that is there already as it is.
                if let AlterTableOperation::AddColumn {
                    if_not_exists: true,
                    column_def,
                    ..
                } = op
                    && ctx.schema.column_type(&at.name, &column_def.name).is_some()
                {
                    continue;
                }
                alter_table(
                    &at.name,
                    op,
                    // No running version uses a column this migration added either.
                    created || ctx.only_added_columns(&table, op),
                    dropped_first.as_ref().unwrap_or(&ctx.schema),
                    &written.collations,
                    &mut out,
                );
                out.extend(alter_table_note(&at.name, op));
                match op {
                    AlterTableOperation::AttachPartitionOf {
                        partition,
                        for_values,
                    } => {
                        out.extend(attach_scan(&at.name, partition, for_values, ctx));
                        let what = format!("ATTACH PARTITION {partition}");
                        out.extend(default_partition_scan(&at.name, for_values, &what, ctx));
                    }
                    // The old version knows nothing of a column this migration adds, so its
                    // inserts leave it out: while it runs, a required one needs its default.
                    AlterTableOperation::AddColumn { column_def, .. } if !created => {
                        let column = (table.clone(), ident_key(&column_def.name));
                        if column_def.options.iter().any(|o| {
                            matches!(
                                o.option,
                                ColumnOption::NotNull | ColumnOption::PrimaryKey(_)
                            )
                        }) {
                            ctx.required_added.insert(column);
                        } else {
                            ctx.required_added.remove(&column);
                        }
                    }
                    AlterTableOperation::AlterColumn {
                        column_name,
                        op: AlterColumnOperation::DropDefault,
                    } if ctx
                        .required_added
                        .contains(&(table.clone(), ident_key(column_name))) =>
                    {
                        out.push(finding(
                            "adding-required-field",
                            W,
                            ExpandContract,
                            format!(
                                "{}.{column_name} was added NOT NULL by this migration, so the \
                                 old version's inserts leave it out: without its default they \
                                 fail",
                                at.name
                            ),
                            "keep the default while the old version runs, and drop it in the \
                             contract phase, once the old version is retired",
                        ));
                    }
                    _ => {}
                }
                ctx.follow_columns(&table, op);
            }
            // PostgreSQL validates in the same command, under the lock its other actions took.
            if locks
                && !created
                && at
                    .operations
                    .iter()
                    .any(|op| matches!(op, AlterTableOperation::ValidateConstraint { .. }))
            {
                out.push(finding(
                    "constraint-missing-not-valid",
                    E,
                    Unsafe,
                    format!(
                        "VALIDATE CONSTRAINT scans every row of {} while the lock that the \
                         other actions of its ALTER TABLE take blocks its writes",
                        at.name
                    ),
                    RECIPE_NOT_VALID,
                ));
            }
        }
        Statement::Drop {
            object_type, names, ..
        } => {
            if matches!(object_type, ObjectType::Index | ObjectType::Table) {
                ctx.dropped_relations.extend(names.iter().map(table_key));
            }
            let names: Vec<&ObjectName> = names
                .iter()
                // What this migration made (a table, view, sequence or type, an index of a
                // new table, a schema) is dropped before any running version knows it.
                .filter(|n| match object_type {
                    ObjectType::Schema => !ctx.schemas.contains(&table_key(n)),
                    ObjectType::Database => true,
                    _ => ctx.in_use(n),
                })
                .collect();
            // A view or type made again under the name is the running version's. A table or
            // sequence made again starts empty, so nothing waits long for it, and its drop is
            // reported already.
            if matches!(
                object_type,
                ObjectType::View | ObjectType::MaterializedView | ObjectType::Type
            ) {
                ctx.vacated.extend(names.iter().map(|n| table_key(n)));
            }
            let names: Vec<String> = names.iter().map(ToString::to_string).collect();
            let list = names.join(", ");
            match object_type {
                _ if names.is_empty() => {}
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
        // Functions this migration made (helpers run once, then dropped) are nobody's yet.
        Statement::DropFunction(f) => {
            let in_use = drop_routines(&f.func_desc, ctx);
            if !in_use.is_empty() {
                out.push(drop_in_use("function(s)", &functions(&in_use)));
            }
        }
        Statement::DropProcedure { proc_desc, .. } => {
            let in_use = drop_routines(proc_desc, ctx);
            if !in_use.is_empty() {
                out.push(drop_in_use("procedure(s)", &functions(&in_use)));
            }
        }
        Statement::DropDomain(d) if !ctx.in_use(&d.name) => {}
        Statement::DropDomain(d) => {
            ctx.vacated.insert(table_key(&d.name));
            out.push(drop_in_use("domain", &d.name.to_string()));
        }
        Statement::AlterView(av) => match &av.operation {
            AlterViewOperation::RenameTo { .. } | AlterViewOperation::SetSchema { .. } => {
                out.push(renamed(
                    "renaming-table",
                    format!("moving or renaming view {}", av.name),
                ))
            }
            // A materialized view's storage parameters, and an owner: the catalog only.
            AlterViewOperation::SetOptions { .. } | AlterViewOperation::ResetOptions { .. }
                if av.materialized => {}
            AlterViewOperation::OwnerTo(_) => {}
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
            AlterTypeOperation::RenameValue(v) if ctx.in_use(&at.name) => out.push(finding(
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
            // No running version knows the labels of a type this migration made; adding a
            // value is quick (PostgreSQL 12+) and breaks nobody.
            AlterTypeOperation::RenameValue(_) => {}
            AlterTypeOperation::AddValue(add) => out.extend(enum_value_note(&at.name, add)),
            AlterTypeOperation::Rename(r) if ctx.in_use(&at.name) => out.push(renamed_object(
                "renaming-type",
                &format!("renaming type {} to {}", at.name, r.new_name),
            )),
            AlterTypeOperation::Rename(_) => {}
        },
        Statement::Vacuum(v) if v.full => out.push(vacuum_full(
            &v.table_name
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
        )),
        Statement::Vacuum(_) => {}
        // A view this migration made is filled before anything reads it (and CONCURRENTLY
        // is refused on one never filled, as `WITH NO DATA` leaves it).
        Statement::RefreshMaterializedView(r) if !r.concurrently && ctx.in_use(&r.name) => {
            out.push(finding(
                "require-concurrent-refresh",
                E,
                Unsafe,
                format!(
                    "REFRESH MATERIALIZED VIEW {} without CONCURRENTLY blocks its readers until \
                     the refresh ends",
                    r.name
                ),
                "REFRESH MATERIALIZED VIEW CONCURRENTLY (the view needs a unique index)",
            ));
        }
        Statement::RefreshMaterializedView(_) => {}
        Statement::Update(_)
        | Statement::Delete(_)
        | Statement::Insert(_)
        | Statement::Merge(_) => {
            out.extend(data_change_findings(sql, ctx));
            out.extend(calls_not_analysed(sql, ctx));
        }
        Statement::Truncate(t) => {
            // Tables this migration made hold only what it wrote.
            if t.table_names.iter().any(|t| ctx.in_use(&t.name)) {
                out.push(finding(
                    "ban-truncate",
                    E,
                    ExpandContract,
                    "TRUNCATE takes an ACCESS EXCLUSIVE lock and removes data the old version \
                     reads"
                        .into(),
                    "delete in batches, after the old version no longer needs the rows",
                ));
            }
            // Even of a table this migration made: a table in use may refer to it, through a
            // foreign key this migration added.
            if t.cascade == Some(CascadeOption::Cascade) {
                out.push(finding(
                    "ban-truncate-cascade",
                    E,
                    ExpandContract,
                    "TRUNCATE ... CASCADE also empties every table with a foreign key to what it \
                     names, whichever version uses them"
                        .into(),
                    "name every table to empty and leave CASCADE out: PostgreSQL then refuses to \
                     empty a table that a table it does not name refers to",
                ));
            }
        }
        Statement::CreateSequence { name, .. } => {
            ctx.create(name);
        }
        Statement::CreateView(v) => {
            if !v.or_replace {
                ctx.create(&v.name);
            }
        }
        // `SELECT ... INTO` makes a table, as `CREATE TABLE ... AS` does: nothing uses it yet.
        // `SELECT set_config('lock_timeout', '1s', false)` is `SET` written as a function.
        // Any other function it calls may change data or the schema unseen: a note names it.
        Statement::Query(query) => {
            if let Some(table) = select_into(query) {
                ctx.create(&table);
            }
            for (name, value, local) in set_configs(query) {
                set_timeout(ctx, &name, std::slice::from_ref(value), local, &mut out);
            }
            out.extend(data_change_findings(sql, ctx));
            out.extend(calls_not_analysed(query, ctx));
        }
        // Privileges given, statistics gathered, an index renamed: nothing a running version
        // relies on changes (their locks are counted above).
        Statement::CreateType { name, .. } => ctx.create(name),
        Statement::CreateSchema { schema_name, .. } => {
            let name = match schema_name {
                SchemaName::Simple(n) | SchemaName::NamedAuthorization(n, _) => n.clone(),
                SchemaName::UnnamedAuthorization(role) => ObjectName::from(vec![role.clone()]),
            };
            ctx.schemas.insert(table_key(&name));
        }
        Statement::CreateExtension(_)
        | Statement::Comment { .. }
        | Statement::Grant(_)
        | Statement::GrantRole(_)
        | Statement::Analyze(_)
        | Statement::AlterIndex { .. } => {}
        // Taken from objects this migration created, before anything uses them.
        Statement::Revoke(r) if only_created(r.objects.as_ref(), ctx) => {}
        Statement::Revoke(_) | Statement::RevokeRole(_) => out.push(finding(
            "revoking-privilege",
            W,
            ExpandContract,
            "REVOKE takes away a privilege that the version still running may use".into(),
            "revoke in the contract phase, once no version that uses the privilege runs",
        )),
        Statement::CreateTrigger(_) | Statement::DropTrigger(_) => {
            out.push(behaviour_changes("a trigger"));
        }
        Statement::CreateRule(_) | Statement::DropRule(_) => out.push(behaviour_changes("a rule")),
        Statement::CreateFunction(f) => out.extend(create_routine(
            &f.name,
            f.args.as_deref(),
            f.or_replace,
            ctx,
        )),
        // New roles, collations, text search objects, operators, foreign servers and user
        // mappings, privileges for objects made later, a role's settings and a notification:
        // nothing running relies on them.
        Statement::CreateRole(_)
        | Statement::CreateUser(_)
        | Statement::CreateCollation(_)
        | Statement::CreateTextSearch(_)
        | Statement::CreateAggregate(_)
        | Statement::CreateOperator(_)
        | Statement::AlterDefaultPrivileges(_)
        | Statement::AlterRole { .. }
        | Statement::CreateServer(_)
        | Statement::CreateUserMapping(_)
        | Statement::NOTIFY { .. } => {}
        // A new owner: the catalog only. A schema renamed: every name qualified by it.
        Statement::AlterFunction(f)
            if matches!(f.operation, AlterFunctionOperation::OwnerTo(_)) => {}
        Statement::AlterSchema(a)
            if a.operations.iter().all(|op| {
                matches!(
                    op,
                    AlterSchemaOperation::OwnerTo { .. } | AlterSchemaOperation::Rename { .. }
                )
            }) =>
        {
            for op in &a.operations {
                if let AlterSchemaOperation::Rename { name } = op
                    && !ctx.schemas.contains(&table_key(&a.name))
                {
                    out.push(renamed_object(
                        "renaming-schema",
                        &format!(
                            "renaming schema {} to {name} (and so every name qualified by it)",
                            a.name
                        ),
                    ));
                }
            }
        }
        // A routine made by this migration is renamed before anything calls it.
        Statement::AlterFunction(f) => {
            let key = routine_key(&f.function.name, f.function.args.as_deref());
            match renamed_routine(f) {
                Some(_) if ctx.made_routine(&key) => {}
                Some(change) => out.push(renamed_object("renaming-function", &change)),
                None => out.push(not_analysed()),
            }
            ctx.follow_routine_rename(f);
        }
        Statement::CreatePolicy(_) | Statement::AlterPolicy(_) | Statement::DropPolicy(_) => {
            out.push(behaviour_changes("a row-level security policy"));
        }
        _ => out.push(not_analysed()),
    }
    (sql.to_string(), out)
}

/// The tables where migration tools record which migrations ran (Alembic, Rails, Django,
/// Flyway, Diesel, sqlx, SeaORM, Knex, goose): each migration writes one row there.
const BOOKKEEPING: [&str; 9] = [
    "alembic_version",
    "schema_migrations",
    "django_migrations",
    "flyway_schema_history",
    "__diesel_schema_migrations",
    "_sqlx_migrations",
    "seaql_migrations",
    "knex_migrations",
    "goose_db_version",
];

/// Whether `table` is a migration tool's own (see [`BOOKKEEPING`]).
pub(super) fn bookkeeping(table: &ObjectName) -> bool {
    table
        .0
        .last()
        .and_then(|part| part.as_ident())
        .is_some_and(|t| BOOKKEEPING.contains(&t.value.to_lowercase().as_str()))
}

/// The names in a statement longer than PostgreSQL keeps, each once, as written.
fn too_long_names(text: &str) -> Vec<String> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, text)
        .tokenize()
        .unwrap_or_default();
    let mut names: Vec<String> = Vec::new();
    for token in tokens {
        if let Token::Word(w) = token
            && w.value.len() > MAX_NAME_BYTES
            && !names.contains(&w.value)
        {
            names.push(w.value);
        }
    }
    names
}

/// What the data changes of `statement` (see [`data_changes`]) are reported for: a column
/// assigned twice, and a change of rows in use (a backfill).
fn data_change_findings(statement: &Statement, ctx: &Ctx) -> Vec<SqlFinding> {
    let changes = data_changes(statement);
    let twice = changes.iter().find_map(|c| assigned_twice(c)).map(|column| {
        finding(
            "ban-duplicate-column-assignments",
            Severity::Error,
            Safety::Unsafe,
            format!(
                "{column} is assigned twice: PostgreSQL refuses the statement, and the migration \
                 fails there"
            ),
            "assign each column once",
        )
    });
    let backfill = changes
        .iter()
        .any(|c| changes_rows_in_use(c, ctx))
        .then(|| {
            finding(
                "backfill",
                Severity::Warn,
                Safety::Safe,
                "data change inside a migration: one large transaction holds row locks".into(),
                RECIPE_BACKFILL,
            )
        });
    twice.into_iter().chain(backfill).collect()
}

/// The `INSERT`, `UPDATE`, `DELETE` and `MERGE` that `statement` runs: itself, or, for a
/// statement that begins `WITH` (which the parser reads as a query), its body and those of its
/// `WITH` queries (`WITH b AS (SELECT ...) UPDATE ...`, `WITH d AS (DELETE ... RETURNING ...)
/// SELECT ...`).
fn data_changes(statement: &Statement) -> Vec<&Statement> {
    fn of_query<'a>(query: &'a Query, out: &mut Vec<&'a Statement>) {
        for cte in query.with.iter().flat_map(|w| &w.cte_tables) {
            of_query(&cte.query, out);
        }
        match query.body.as_ref() {
            SetExpr::Insert(s) | SetExpr::Update(s) | SetExpr::Delete(s) | SetExpr::Merge(s) => {
                out.push(s);
            }
            SetExpr::Query(q) => of_query(q, out),
            _ => {}
        }
    }
    let mut out = Vec::new();
    match statement {
        Statement::Insert(_)
        | Statement::Update(_)
        | Statement::Delete(_)
        | Statement::Merge(_) => out.push(statement),
        Statement::Query(query) => of_query(query, &mut out),
        _ => {}
    }
    out
}

/// A note naming the functions that `statement` (a query, or a data change) calls that may
/// change data or the schema, which the analysis does not follow: any but those of
/// `pg_catalog` (as `pg_dump` writes its calls), the [`BUILT_IN`] ones called by their bare
/// name, and those this migration made, whose body it shows.
fn calls_not_analysed(statement: &impl Visit, ctx: &Ctx) -> Option<SqlFinding> {
    let mut calls = Calls(Vec::new());
    let _ = statement.visit(&mut calls);
    let mut names: Vec<String> = Vec::new();
    for name in calls.0.iter().filter(|name| !known_call(name, ctx)) {
        let written = name.to_string();
        if !names.contains(&written) {
            names.push(written);
        }
    }
    (!names.is_empty()).then(|| {
        finding(
            "function-not-analysed",
            Severity::Info,
            Safety::Safe,
            format!(
                "calls {}, which is not analysed: a function may change data or the schema",
                names.join(", ")
            ),
            "review what it runs by hand; if it changes rows in use or the schema, write those \
             statements in the migration instead",
        )
    })
}

/// The names of the functions a statement calls, in expressions and in `FROM`.
struct Calls(Vec<ObjectName>);

impl Visitor for Calls {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if let Expr::Function(f) = expr {
            self.0.push(f.name.clone());
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, table: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name,
            args: Some(_),
            ..
        } = table
        {
            self.0.push(name.clone());
        }
        ControlFlow::Continue(())
    }
}

/// Whether a call of `name` is known to change no data and no schema (see
/// [`calls_not_analysed`]).
fn known_call(name: &ObjectName, ctx: &Ctx) -> bool {
    let parts: Vec<String> = name.0.iter().map(part_key).collect();
    let built_in = match parts.as_slice() {
        [schema, _] => schema == "pg_catalog",
        [f] => [BUILT_IN, SCALAR, STABLE, VOLATILE]
            .iter()
            .any(|list| list.contains(&f.as_str())),
        _ => false,
    };
    built_in || ctx.made_routine(&routine_key(name, None))
}

/// The first column that a data change assigns twice (`UPDATE t SET a = 1, a = 2`, `INSERT
/// INTO t (a, a)`, or twice in `ON CONFLICT DO UPDATE SET` or in one `WHEN` clause of `MERGE`),
/// as `table.column`: PostgreSQL refuses such a statement. Columns compare as PostgreSQL names
/// them, so `a` and `"A"` differ.
fn assigned_twice(statement: &Statement) -> Option<String> {
    let targets = |assignments: &[Assignment]| -> Vec<ObjectName> {
        assignments
            .iter()
            .flat_map(|a| match &a.target {
                AssignmentTarget::ColumnName(c) => vec![c.clone()],
                AssignmentTarget::Tuple(cs) => cs.clone(),
            })
            .collect()
    };
    let named = |table: &TableFactor| match table {
        TableFactor::Table { name, .. } => name.to_string(),
        other => other.to_string(),
    };
    let (table, lists) = match statement {
        Statement::Update(u) => (named(&u.table.relation), vec![targets(&u.assignments)]),
        Statement::Merge(m) => (
            named(&m.table),
            m.clauses
                .iter()
                .filter_map(|c| match &c.action {
                    MergeAction::Update(MergeUpdateExpr {
                        kind: MergeUpdateKind::Set(assignments),
                        ..
                    }) => Some(targets(assignments)),
                    MergeAction::Insert(i) => Some(i.columns.clone()),
                    _ => None,
                })
                .collect(),
        ),
        Statement::Insert(i) => {
            let on_conflict = match &i.on {
                Some(OnInsert::OnConflict(OnConflict {
                    action: OnConflictAction::DoUpdate(d),
                    ..
                })) => targets(&d.assignments),
                _ => Vec::new(),
            };
            (i.table.to_string(), vec![i.columns.clone(), on_conflict])
        }
        _ => return None,
    };
    lists.iter().find_map(|list| {
        let mut seen = BTreeSet::new();
        list.iter()
            .find(|c| !seen.insert(c.0.iter().map(part_key).collect::<Vec<_>>()))
            .map(|c| format!("{table}.{c}"))
    })
}

/// Whether a data change touches rows that running versions use: not a migration tool's
/// bookkeeping row, not rows of a table this migration created, and not new rows written as
/// literal `VALUES` (seed data locks only the rows it adds).
fn changes_rows_in_use(statement: &Statement, ctx: &Ctx) -> bool {
    let untouched = |name: &ObjectName| !ctx.in_use(name) || bookkeeping(name);
    let relation = |t: &TableFactor| match t {
        TableFactor::Table { name, .. } => untouched(name),
        _ => false,
    };
    match statement {
        Statement::Insert(insert) => {
            let literal = insert
                .source
                .as_ref()
                .is_some_and(|q| matches!(q.body.as_ref(), SetExpr::Values(_)));
            let kept_apart = matches!(&insert.table, TableObject::TableName(n) if untouched(n));
            !(literal || kept_apart)
        }
        Statement::Update(update) => !relation(&update.table.relation),
        Statement::Merge(merge) => !relation(&merge.table),
        Statement::Delete(delete) => match &delete.from {
            FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from) => {
                !from.iter().all(|t| relation(&t.relation))
            }
        },
        _ => true,
    }
}

/// Whether `statement` copies the rows of a table in use into one this migration made: `INSERT
/// INTO new SELECT ...`, `CREATE TABLE new AS ...` (unless `WITH NO DATA`) or `SELECT ...
/// INTO new` reading it.
fn copies_rows_in_use(statement: &Statement, ctx: &Ctx) -> bool {
    let query = match statement {
        Statement::Insert(insert) => insert.source.as_deref(),
        Statement::CreateTable(ct) if ct.with_data.is_none_or(|w| w.data) => ct.query.as_deref(),
        Statement::Query(query) if select_into(query).is_some() => Some(query.as_ref()),
        _ => None,
    };
    let Some(query) = query else {
        return false;
    };
    // The query's own common table expressions are no tables.
    let ctes: BTreeSet<String> = query
        .with
        .iter()
        .flat_map(|w| &w.cte_tables)
        .map(|cte| ident_key(&cte.alias.name))
        .collect();
    visit_relations(query, |name| {
        let cte = match name.0.as_slice() {
            [part] => part
                .as_ident()
                .is_some_and(|i| ctes.contains(&ident_key(i))),
            _ => false,
        };
        if !cte && ctx.in_use(name) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .is_break()
}

/// Follows what the transaction (or query) in force keeps from one statement to the next, and
/// reports what it does to this one: the first lock that blocks writes, which keeps its table
/// blocked through a long statement; enum values added, which PostgreSQL refuses to use until
/// it commits; and statements PostgreSQL refuses to run inside one.
fn follow_transaction(written: &Written, locks: bool, ctx: &mut Ctx, out: &mut Vec<SqlFinding>) {
    let stmt = &written.parsed;
    let keeper = ctx.keeper();
    if ctx.scope != keeper {
        ctx.held = None;
        ctx.added.clear();
        ctx.scope.clone_from(&keeper);
    }
    let Some(keeper) = keeper else {
        return;
    };
    if let (Some(held), Some(what)) = (&ctx.held, runs_long(stmt, ctx)) {
        out.push(held.through(&keeper, what));
    }
    for added in ctx.added.iter().filter(|a| a.used_in(&written.text)) {
        out.push(added.finding(&keeper));
    }
    if let Some((message, recipe)) =
        refused_in_transaction(stmt).and_then(|w| ctx.transaction_block(w))
    {
        out.push(finding(
            "cannot-run-in-transaction",
            Severity::Error,
            Safety::Unsafe,
            message,
            &recipe,
        ));
    }
    if locks && ctx.held.is_none() {
        ctx.held = Some(Held {
            statement: ctx.number,
            line: written.line,
        });
    }
    if let Parsed::Stmt(s) = stmt
        && let Statement::AlterType(at) = s.as_ref()
        && let AlterTypeOperation::AddValue(v) = &at.operation
    {
        ctx.added.push(AddedValue {
            value: v.value.value.clone(),
            ty: at.name.to_string(),
            statement: ctx.number,
        });
    }
}

/// The scan of a partition in use that `ATTACH PARTITION` makes to check its rows fit `bound`.
fn attach_scan(
    parent: &ObjectName,
    partition: &ObjectName,
    bound: &ForValues,
    ctx: &Ctx,
) -> Option<SqlFinding> {
    if !ctx.in_use(partition) || !ctx.schema.attach_scans(parent, partition, bound) {
        return None;
    }
    let recipe = match bound {
        ForValues::With { .. } => "no check proves a hash bound: attach a hash partition while \
             it is new and empty"
            .to_owned(),
        ForValues::Default => format!(
            "first ADD CONSTRAINT ... CHECK (no row another partition of {parent} takes) NOT \
             VALID to {partition}, then VALIDATE CONSTRAINT (reads and writes go on): the \
             attach then finds the bound proven and scans nothing"
        ),
        ForValues::In(_) | ForValues::From { .. } => format!(
            "first ADD CONSTRAINT ... CHECK (the key IS NOT NULL AND within the bound) NOT \
             VALID to {partition}, then VALIDATE CONSTRAINT (reads and writes go on): the \
             attach then finds the bound proven and scans nothing; drop the check after"
        ),
    };
    Some(finding(
        "partition-bound-scan",
        Severity::Error,
        Safety::Unsafe,
        format!(
            "ATTACH PARTITION {partition} scans {partition} for rows outside the bound, under \
             an ACCESS EXCLUSIVE lock on it: its reads and writes wait"
        ),
        &recipe,
    ))
}

/// The scan of `parent`'s default partition, when it is in use, that adding a partition with
/// `bound` makes, for rows the new bound takes (`what` says how the partition is added).
fn default_partition_scan(
    parent: &ObjectName,
    bound: &ForValues,
    what: &str,
    ctx: &Ctx,
) -> Option<SqlFinding> {
    let default = ctx.schema.default_scanned(parent, bound)?;
    if ctx.created.contains(&default) {
        return None;
    }
    Some(finding(
        "partition-bound-scan",
        Severity::Error,
        Safety::Unsafe,
        format!(
            "{what} scans {default}, the default partition of {parent}, for rows the new bound \
             takes, under an ACCESS EXCLUSIVE lock on it: its reads and writes wait"
        ),
        &format!(
            "first ADD CONSTRAINT ... CHECK (NOT (the new bound)) NOT VALID to {default}, then \
             VALIDATE CONSTRAINT (reads and writes go on): PostgreSQL then skips the scan"
        ),
    ))
}

/// What PostgreSQL refuses to run inside a transaction block, besides the concurrent index
/// statements (which have a rule of their own): `VACUUM` and `DETACH PARTITION ...
/// CONCURRENTLY`.
fn refused_in_transaction(stmt: &Parsed) -> Option<&'static str> {
    match stmt {
        Parsed::ByWords(ByWords::Vacuum { .. }) => Some("VACUUM"),
        Parsed::ByWords(ByWords::ServerWide { what }) => Some(what),
        Parsed::Reindex { many: true, .. } => Some("REINDEX SCHEMA, DATABASE or SYSTEM"),
        Parsed::Cluster { every: true } => Some("CLUSTER without a table"),
        Parsed::Stmt(s) => match s.as_ref() {
            Statement::Vacuum(_) => Some("VACUUM"),
            Statement::CreateDatabase { .. } => Some("CREATE DATABASE"),
            Statement::Drop {
                object_type: ObjectType::Database,
                ..
            } => Some("DROP DATABASE"),
            Statement::Discard {
                object_type: DiscardObject::ALL,
            } => Some("DISCARD ALL"),
            Statement::AlterTable(at)
                if at.operations.iter().any(|op| {
                    matches!(
                        op,
                        AlterTableOperation::DetachPartitionOf {
                            mode: Some(DetachPartitionMode::Concurrently),
                            ..
                        }
                    )
                }) =>
            {
                Some("DETACH PARTITION ... CONCURRENTLY")
            }
            _ => None,
        },
        _ => None,
    }
}

/// What in `stmt` runs long on a table in use, if anything: a data change (a backfill), the
/// validation of a constraint, which reads every row, an index built (or rebuilt) with a
/// lock, or a materialized view filled anew. Each takes a lock weaker than an ACCESS
/// EXCLUSIVE kept from before, or none on that table.
fn runs_long(stmt: &Parsed, ctx: &Ctx) -> Option<&'static str> {
    let s = match stmt {
        Parsed::Stmt(s) => s,
        // A reindex takes SHARE on its table, so an earlier ACCESS EXCLUSIVE kept adds reads.
        Parsed::Reindex {
            concurrently: false,
            ..
        } => return Some("reindex"),
        _ => return None,
    };
    if data_changes(s).iter().any(|c| changes_rows_in_use(c, ctx)) {
        return Some("data change");
    }
    match s.as_ref() {
        // Rows of a table in use copied into a new one take as long as the table is big.
        _ if copies_rows_in_use(s, ctx) => Some("copy of rows"),
        Statement::AlterTable(at)
            if ctx.in_use(&at.name)
                && at
                    .operations
                    .iter()
                    .any(|op| matches!(op, AlterTableOperation::ValidateConstraint { .. })) =>
        {
            Some("validation of every row")
        }
        // An index built with a lock, or a view filled anew, takes as long as its table is big.
        Statement::CreateIndex(ci) if !ci.concurrently && ctx.in_use(&ci.table_name) => {
            Some("index build")
        }
        Statement::RefreshMaterializedView(r) if !r.concurrently && ctx.in_use(&r.name) => {
            Some("refresh")
        }
        _ => None,
    }
}

/// What a statement does that lasts as long as its table is big, which a `statement_timeout`
/// cancels on a big table: a concurrent index build, a reindex, or what [`runs_long`] names.
fn takes_long(stmt: &Parsed, ctx: &Ctx) -> Option<&'static str> {
    match stmt {
        Parsed::Reindex { .. } => Some("reindex"),
        Parsed::Stmt(s) => match s.as_ref() {
            Statement::CreateIndex(ci) if ci.concurrently && ctx.in_use(&ci.table_name) => {
                Some("concurrent index build")
            }
            _ => runs_long(stmt, ctx),
        },
        _ => None,
    }
}

/// The name of a relation or type a statement gives up by renaming it (or a view's, by
/// dropping it), and the one it takes by a rename or by creating it, as `table_key` writes
/// them: so that a name given up and taken again in one transaction is known never to have
/// been missing.
pub(super) fn names_moved(parsed: &Parsed) -> (Option<String>, Option<String>) {
    // A new name stays in the old one's schema.
    let moved = |from: &ObjectName, to: &ObjectName| {
        let mut name = from.clone();
        if let (Some(last), [to]) = (name.0.last_mut(), to.0.as_slice()) {
            *last = to.clone();
        } else {
            name = to.clone();
        }
        (Some(table_key(from)), Some(table_key(&name)))
    };
    match parsed {
        Parsed::Stmt(s) => match s.as_ref() {
            Statement::AlterTable(at) => at
                .operations
                .iter()
                .find_map(|op| match op {
                    AlterTableOperation::RenameTable {
                        table_name: RenameTableNameKind::As(to) | RenameTableNameKind::To(to),
                    } => Some(moved(&at.name, to)),
                    _ => None,
                })
                .unwrap_or((None, None)),
            Statement::AlterView(av) => match &av.operation {
                AlterViewOperation::RenameTo { new_name } => moved(&av.name, new_name),
                _ => (None, None),
            },
            // An index of a new table stays new under its new name.
            Statement::AlterIndex {
                name,
                operation: AlterIndexOperation::RenameIndex { index_name },
            } => moved(name, index_name),
            Statement::AlterType(at) => match &at.operation {
                AlterTypeOperation::Rename(r) => {
                    moved(&at.name, &ObjectName::from(vec![r.new_name.clone()]))
                }
                _ => (None, None),
            },
            // A view dropped to be made again (CREATE OR REPLACE cannot drop its columns).
            Statement::Drop {
                object_type: ObjectType::View | ObjectType::MaterializedView,
                names,
                ..
            } if names.len() == 1 => (names.first().map(table_key), None),
            Statement::CreateTable(ct) => (None, Some(table_key(&ct.name))),
            Statement::Query(query) => (None, select_into(query).map(|t| table_key(&t))),
            // A routine dropped and made again with the same arguments: as `CREATE OR REPLACE`
            // does, unless `CASCADE` drops what depends on it (views, triggers, defaults).
            Statement::DropFunction(DropFunction {
                func_desc,
                drop_behavior,
                ..
            })
            | Statement::DropProcedure {
                proc_desc: func_desc,
                drop_behavior,
                ..
            } => match func_desc.as_slice() {
                [desc] if *drop_behavior != Some(DropBehavior::Cascade) => {
                    (routine_name(&desc.name, desc.args.as_deref()), None)
                }
                _ => (None, None),
            },
            Statement::CreateFunction(f) => (None, routine_name(&f.name, f.args.as_deref())),
            Statement::CreateView(v) => (None, Some(table_key(&v.name))),
            Statement::CreateType { name, .. } => (None, Some(table_key(name))),
            Statement::CreateDomain(d) => (None, Some(table_key(&d.name))),
            _ => (None, None),
        },
        Parsed::ByWords(
            ByWords::CreateTable { table: name, .. }
            | ByWords::CreateMaterializedView { view: name },
        ) => (None, Some(table_key(name))),
        Parsed::ByWords(ByWords::Routine { name, args, .. }) => {
            (None, routine_name(name, args.as_deref()))
        }
        // A sequence, type or domain named anew (a procedure is a routine, which `Ctx` follows
        // apart).
        Parsed::ByWords(
            ByWords::Sequence {
                sequence: from,
                renamed: Some((_, to)),
            }
            | ByWords::Renamed {
                rule: "renaming-type",
                name: from,
                to,
                ..
            },
        ) => (Some(table_key(from)), Some(table_key(to))),
        // The name stays, in another schema.
        Parsed::ByWords(ByWords::SetSchema { table, schema }) => {
            let mut to = schema.clone();
            to.0.extend(table.0.last().cloned());
            (Some(table_key(table)), Some(table_key(&to)))
        }
        _ => (None, None),
    }
}

/// A routine's name and argument types, apart from the names of relations and types, when the
/// arguments are written.
fn routine_name(name: &ObjectName, args: Option<&[OperateFunctionArg]>) -> Option<String> {
    let (name, types) = routine_key(name, args);
    Some(format!("routine {name}({})", types?))
}

/// How `ALTER FUNCTION | AGGREGATE` names a routine anew, if it does.
fn renamed_routine(f: &AlterFunction) -> Option<String> {
    let (kind, name) = (f.kind.to_string().to_lowercase(), &f.function.name);
    match &f.operation {
        AlterFunctionOperation::RenameTo { new_name } => {
            Some(format!("renaming {kind} {name} to {new_name}"))
        }
        AlterFunctionOperation::SetSchema { schema_name } => {
            Some(format!("moving {kind} {name} to schema {schema_name}"))
        }
        _ => None,
    }
}

/// A new name for an object that is not a table's: a function, a type, a sequence or a schema.
/// Nothing keeps the old name alive beside it, as a view can for a table.
fn renamed_object(rule: &str, change: &str) -> SqlFinding {
    finding(
        rule,
        Severity::Error,
        Safety::ExpandContract,
        format!("{change} breaks whichever version uses the other name"),
        RECIPE_RENAME_OBJECT,
    )
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

/// `VACUUM FULL` of `tables` (none: every table).
fn vacuum_full(tables: &str) -> SqlFinding {
    let tables = if tables.is_empty() {
        "every table"
    } else {
        tables
    };
    finding(
        "prefer-repack",
        Severity::Error,
        Safety::Unsafe,
        format!(
            "VACUUM FULL rewrites {tables} under an ACCESS EXCLUSIVE lock, blocking reads and writes"
        ),
        RECIPE_REPACK,
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

/// Forgets the routines of `descs` this migration made, and answers the others: routines in
/// use, whose names are left to be replaced.
fn drop_routines(descs: &[FunctionDesc], ctx: &mut Ctx) -> Vec<FunctionDesc> {
    let in_use: Vec<FunctionDesc> = descs
        .iter()
        .filter(|d| {
            ctx.forget_routine(&routine_key(&d.name, d.args.as_deref()))
                .is_empty()
        })
        .cloned()
        .collect();
    ctx.replaced_routines
        .extend(in_use.iter().map(|d| table_key(&d.name)));
    in_use
}

fn functions(descs: &[FunctionDesc]) -> String {
    descs
        .iter()
        .map(|d| d.name.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `objects` (of a `GRANT` or `REVOKE`) are tables, views or sequences this migration
/// created.
fn only_created(objects: Option<&GrantObjects>, ctx: &Ctx) -> bool {
    match objects {
        Some(
            GrantObjects::Tables(names)
            | GrantObjects::Sequences(names)
            | GrantObjects::Views(names),
        ) => names.iter().all(|n| !ctx.in_use(n)),
        _ => false,
    }
}

/// The note on `CREATE TABLE IF NOT EXISTS name` of a table that no earlier migration made,
/// and this one neither made, dropped nor renamed away: it is taken as new, as the initial
/// migrations of knex, drizzle and most ORMs write their tables. Taking it as possibly in use
/// would flag every index and constraint such a file adds to its own tables; the note says
/// what is assumed instead, for the table made outside the migrations given.
fn taken_as_new(name: &ObjectName, ctx: &Ctx) -> Option<SqlFinding> {
    let key = table_key(name);
    let known = ctx.schema.has_table(name)
        || !ctx.in_use(name)
        || ctx.vacated.contains(&key)
        || ctx.dropped_relations.contains(&key);
    (!known).then(|| {
        finding(
            "table-taken-as-new",
            Severity::Info,
            Safety::Safe,
            format!(
                "no earlier migration made {name}, so it is taken as new and what this \
                 migration does to it next is judged as done to an empty table nobody uses; if \
                 {name} exists already (made by hand or by another tool), IF NOT EXISTS leaves \
                 it as it is, in use, and those statements lock or change a table in use \
                 unchecked"
            ),
            "analyse this migration after the ones that ran before it (analyze_after), so a \
             table they made counts as in use; for a table made outside them, review the \
             statements on it after this one as on a table in use",
        )
    })
}

/// A note on a statement that changes what the table's reads or writes do (`what`: "a
/// trigger"), whose code or condition the analysis does not follow.
/// `GENERATED ALWAYS` made of a column in use: PostgreSQL then refuses an insert that gives
/// the column a value, as the old version's inserts may.
fn generated_always(table: &ObjectName, column: &str) -> SqlFinding {
    finding(
        "adding-generated-always",
        Severity::Warn,
        Safety::ExpandContract,
        format!(
            "{table}.{column} becomes GENERATED ALWAYS: an insert that gives it a value fails \
             (cannot insert a non-DEFAULT value), and the old version's inserts may give one"
        ),
        "make it GENERATED BY DEFAULT while the old version runs, and SET GENERATED ALWAYS in \
         the contract phase, once the old version is retired",
    )
}

fn behaviour_changes(what: &str) -> SqlFinding {
    finding(
        "not-analysed",
        Severity::Info,
        Safety::Safe,
        format!(
            "{what} changes what reads or writes of the table do, for every version running; its \
             code and condition are not analysed"
        ),
        "check that the version still running works with it, and review what it runs by hand",
    )
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
