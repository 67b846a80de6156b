//! Migration files laid out for the tool that runs them.
//!
//! - goose, sql-migrate, dbmate, node-pg-migrate and tern keep a migration's up and down SQL
//!   in one file, between marker comments, and run the up part in a transaction unless a
//!   marker says otherwise.
//! - sqlx, diesel, refinery and golang-migrate send a whole file as one query: sqlx in a
//!   transaction unless the file begins `-- no-transaction`, diesel unless the migration's
//!   `metadata.toml` says `run_in_transaction = false`, refinery always, golang-migrate never.
//! - yoyo runs a file statement by statement in a transaction unless its leading comments say
//!   `transactional: false`.
//! - Liquibase runs each changeset of a formatted SQL file in a transaction of its own,
//!   statement by statement, unless the changeset says otherwise.
//! - drizzle-orm's `migrate()` runs every pending migration in one transaction, sending each
//!   stretch between `--> statement-breakpoint` comments as one query.
//!
//! Only the up part runs on deploy, so only it is analysed; and whether the runner opens a
//! transaction, or sends several statements as one query (which PostgreSQL runs as one
//! implicit transaction), decides whether `CREATE INDEX CONCURRENTLY` can run at all and how
//! long locks are kept. The markers are read as each tool reads them.

use std::fmt;
use std::ops::Range;

use serde::{Deserialize, Serialize};

/// A tool that runs migration files: recognised from the markers it reads, or named in the
/// catalog for files that carry none (sqlx's, diesel's, golang-migrate's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Runner {
    /// goose: `-- +goose Up`, `-- +goose Down`, `-- +goose NO TRANSACTION`.
    Goose,
    /// sql-migrate: `-- +migrate Up [notransaction]`, `-- +migrate Down`.
    SqlMigrate,
    /// dbmate: `-- migrate:up [transaction:false]`, `-- migrate:down`.
    Dbmate,
    /// node-pg-migrate's SQL migrations: `-- Up Migration`, `-- Down Migration`.
    NodePgMigrate,
    /// tern: `---- create above / drop below ----`, `---- tern: disable-tx ----`.
    Tern,
    /// sqlx (`sqlx migrate run`, `sqlx::migrate!`): a file is one query, in a transaction
    /// unless it begins `-- no-transaction`. Recognised from that line only.
    Sqlx,
    /// diesel (`diesel migration run`, `diesel_migrations`): `up.sql` is one query, in a
    /// transaction unless the migration's `metadata.toml` says `run_in_transaction = false`
    /// ([`RunBy::transaction`]). Never recognised: the file carries no marker.
    Diesel,
    /// yoyo: statement by statement in a transaction, unless the file's leading comments say
    /// `-- transactional: false`. Recognised from those comments' `transactional:` or
    /// `depends:` directive.
    Yoyo,
    /// refinery (0.10, `refinery migrate`, `embed_migrations!`): a file (`V1__name.sql`) is one
    /// query (`batch_execute`), always in a transaction of its own, or in one for all the
    /// migrations with `set_grouped(true)`. Never recognised: its files carry no marker.
    Refinery,
    /// Liquibase's formatted SQL (`--liquibase formatted sql`, then `--changeset author:id`
    /// lines): each changeset runs in a transaction of its own unless `runInTransaction:false`,
    /// statement by statement unless `splitStatements:false` (then as one query); a changeset
    /// whose `dbms:` leaves PostgreSQL out does not run.
    Liquibase,
    /// golang-migrate: a file is one query, outside a transaction (without
    /// `x-multi-statement`, which sends statements one by one as psql does). Never recognised:
    /// its files carry no markers.
    GolangMigrate,
    /// drizzle (drizzle-orm 0.45's `migrate()`, drizzle-kit's `migrate`): every pending
    /// migration runs in one transaction, so the locks one takes are kept until all have run;
    /// each stretch of a file between `--> statement-breakpoint` comments is one query.
    /// Recognised from those comments.
    Drizzle,
}

impl Runner {
    /// How to have a statement run outside a transaction, as this runner allows.
    pub(super) fn without_transaction(self) -> &'static str {
        match self {
            Self::Goose => "add `-- +goose NO TRANSACTION` to the file",
            Self::SqlMigrate => "mark the file `-- +migrate Up notransaction`",
            Self::Dbmate => {
                "move it to a migration of its own, alone, under `-- migrate:up \
                 transaction:false` (dbmate sends a section as one query)"
            }
            Self::NodePgMigrate => {
                "node-pg-migrate runs SQL migrations in a transaction: write this one in \
                 JavaScript and call `pgm.noTransaction()`"
            }
            Self::Tern => "add `---- tern: disable-tx ----` to the file",
            Self::Sqlx => {
                "move it to a migration of its own, alone, that begins `-- no-transaction` \
                 (sqlx sends a file as one query)"
            }
            Self::GolangMigrate => {
                "move it to a migration file of its own, alone (golang-migrate sends a file as \
                 one query)"
            }
            Self::Yoyo => "add `-- transactional: false` to the file's leading comments",
            Self::Diesel => {
                "move it to a migration of its own, alone in its `up.sql`, with \
                 `run_in_transaction = false` in its `metadata.toml` (diesel sends a file as one \
                 query)"
            }
            Self::Liquibase => {
                "add `runInTransaction:false` to its `--changeset` line (in a changeset of its \
                 own, so that the rest keeps its transaction)"
            }
            Self::Refinery => {
                "refinery 0.10 runs every migration in a transaction and has no way out: run it \
                 outside refinery, alone, after the migrations (psql, or the application's \
                 own connection)"
            }
            Self::Drizzle => {
                "drizzle runs all pending migrations in one transaction and has no way out: run \
                 it outside drizzle, alone, after the migrations (psql, or the application's \
                 own connection)"
            }
        }
    }

    /// What a file of its holds: a migration, or (Liquibase) a changelog.
    pub(crate) fn file_kind(self) -> &'static str {
        match self {
            Self::Liquibase => "changelog",
            _ => "migration",
        }
    }

    /// What it runs as one: a migration, or (Liquibase) a changeset.
    pub(super) fn unit(self) -> &'static str {
        match self {
            Self::Liquibase => "changeset",
            _ => "migration",
        }
    }

    /// How to send a statement to PostgreSQL on its own, not in one query with others.
    pub(super) fn alone(self) -> &'static str {
        match self {
            Self::Goose | Self::SqlMigrate => {
                "send it on its own: outside the `StatementBegin` ... `StatementEnd` block"
            }
            Self::Liquibase => {
                "drop `splitStatements:false` from its changeset, so that Liquibase sends the \
                 statements one by one"
            }
            other => other.without_transaction(),
        }
    }
}

impl fmt::Display for Runner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Goose => "goose",
            Self::SqlMigrate => "sql-migrate",
            Self::Dbmate => "dbmate",
            Self::NodePgMigrate => "node-pg-migrate",
            Self::Tern => "tern",
            Self::Sqlx => "sqlx",
            Self::Yoyo => "yoyo",
            Self::Diesel => "diesel",
            Self::Refinery => "refinery",
            Self::Liquibase => "Liquibase",
            Self::GolangMigrate => "golang-migrate",
            Self::Drizzle => "drizzle",
        })
    }
}

/// Who runs a migration, and whether in a transaction where its file does not say.
///
/// ```
/// use serin_compat::migration::{RunBy, Runner};
/// // A diesel migration whose `metadata.toml` says `run_in_transaction = false`.
/// let run = RunBy::from(Runner::Diesel).in_transaction(false);
/// assert_eq!(run.transaction, Some(false));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunBy {
    /// The tool.
    pub runner: Runner,
    /// Whether it wraps the migration in a transaction, as configured outside the file
    /// (diesel's `metadata.toml`); it overrides what the file's markers and the runner's
    /// default say. `None`: as they say.
    pub transaction: Option<bool>,
}

impl RunBy {
    /// The same runner, configured to run the migration in a transaction or not.
    #[must_use]
    pub fn in_transaction(self, transaction: bool) -> Self {
        Self {
            transaction: Some(transaction),
            ..self
        }
    }
}

impl From<Runner> for RunBy {
    fn from(runner: Runner) -> Self {
        Self {
            runner,
            transaction: None,
        }
    }
}

/// What a runner makes of a file.
#[derive(Debug, PartialEq)]
pub(super) struct Layout {
    pub(super) runner: Runner,
    /// What runs on the way up, as byte ranges of the file.
    pub(super) up: Vec<Range<usize>>,
    /// Whether the runner wraps what runs in a transaction.
    pub(super) transaction: bool,
    /// Where the runner commits and begins anew (Liquibase's changesets): the first line of
    /// each part it runs on its own, and whether in a transaction. Empty: the file is one part,
    /// in a transaction if `transaction` says so.
    pub(super) parts: Vec<(u64, bool)>,
    /// Lines (1-based, end excluded) whose statements the runner sends as one query.
    pub(super) together: Vec<Range<u64>>,
}

impl Layout {
    /// Recognises the runner whose markers the file carries, if any.
    pub(super) fn recognise(sql: &str) -> Option<Self> {
        let lines = Line::split(sql);
        liquibase(&lines)
            .or_else(|| goose(&lines))
            .or_else(|| sql_migrate(&lines))
            .or_else(|| dbmate(&lines, sql.len()))
            .or_else(|| tern(&lines, sql))
            .or_else(|| node_pg_migrate(&lines, sql.len()))
            .or_else(|| sql.starts_with(SQLX_NO_TX).then(|| sqlx(&lines, sql)))
            .or_else(|| yoyo(&lines, sql.len()))
            .or_else(|| {
                sql.contains(DRIZZLE_BREAKPOINT)
                    .then(|| drizzle(&lines, sql))
            })
    }

    /// What `run` makes of the file, or why its runner refuses to run it.
    pub(super) fn run_by(sql: &str, run: RunBy) -> Result<Self, String> {
        let mut layout = Self::for_runner(sql, run.runner)?;
        if let Some(transaction) = run.transaction {
            layout.transaction = transaction;
            for part in &mut layout.parts {
                part.1 = transaction;
            }
        }
        Ok(layout)
    }

    /// What `runner` makes of the file by its markers and its defaults.
    fn for_runner(sql: &str, runner: Runner) -> Result<Self, String> {
        let lines = Line::split(sql);
        let whole = |transaction| Self::whole(runner, &lines, sql.len(), transaction);
        match runner {
            Runner::Goose => {
                goose(&lines).ok_or_else(|| "goose runs no file without `-- +goose Up`".into())
            }
            Runner::SqlMigrate => sql_migrate(&lines).ok_or_else(|| {
                "sql-migrate runs no file without `-- +migrate Up` or `-- +migrate Down`".into()
            }),
            Runner::Dbmate => dbmate(&lines, sql.len())
                .ok_or_else(|| "dbmate runs no file without `-- migrate:up`".into()),
            Runner::NodePgMigrate => Ok(node_pg_migrate(&lines, sql.len()).unwrap_or(whole(true))),
            Runner::Tern => Ok(tern(&lines, sql).unwrap_or(whole(true))),
            Runner::Sqlx => Ok(sqlx(&lines, sql)),
            Runner::GolangMigrate => Ok(whole(false)),
            Runner::Diesel | Runner::Refinery => Ok(whole(true)),
            Runner::Drizzle => Ok(drizzle(&lines, sql)),
            Runner::Liquibase => liquibase(&lines).ok_or_else(|| {
                "Liquibase reads no SQL file as a changelog without `--liquibase formatted sql` \
                 on its first line"
                    .into()
            }),
            Runner::Yoyo => Ok(yoyo(&lines, sql.len()).unwrap_or(Self::one_part(
                runner,
                0..sql.len(),
                true,
                None,
            ))),
        }
    }

    /// The whole file runs as one query.
    fn whole(runner: Runner, lines: &[Line], len: usize, transaction: bool) -> Self {
        let last = lines.last().map_or(1, |l| l.number);
        Self::one_part(runner, 0..len, transaction, Some(1..last + 1))
    }

    /// A layout whose up part is one stretch of the file, sent as one query if `together`.
    fn one_part(
        runner: Runner,
        up: Range<usize>,
        transaction: bool,
        together: Option<Range<u64>>,
    ) -> Self {
        Self {
            runner,
            up: vec![up],
            transaction,
            parts: Vec::new(),
            together: together.into_iter().collect(),
        }
    }

    /// `sql` with everything that does not run on the way up blanked: each character but a
    /// line break becomes a space, so lines and columns stay those of the file.
    pub(super) fn blank_the_rest(&self, sql: &str) -> String {
        let mut out = String::with_capacity(sql.len());
        let mut at = 0;
        for r in &self.up {
            blank(&sql[at..r.start], &mut out);
            out.push_str(&sql[r.clone()]);
            at = r.end;
        }
        blank(&sql[at..], &mut out);
        out
    }

    /// The lines of the query that sends the statement starting on `line` with another of
    /// `starts` (the lines every statement starts on), if one does.
    pub(super) fn query_of(&self, line: u64, starts: &[u64]) -> Option<Range<u64>> {
        self.together
            .iter()
            .find(|g| g.contains(&line))
            .filter(|g| starts.iter().filter(|s| g.contains(s)).count() > 1)
            .cloned()
    }
}

fn blank(text: &str, out: &mut String) {
    out.extend(text.chars().map(|c| if c == '\n' { c } else { ' ' }));
}

/// One line of the file.
struct Line<'a> {
    /// Without its line break.
    text: &'a str,
    /// Byte offset of its start.
    start: usize,
    /// Byte offset after its line break.
    end: usize,
    /// 1-based.
    number: u64,
}

impl<'a> Line<'a> {
    fn split(sql: &'a str) -> Vec<Self> {
        let mut start = 0;
        sql.split_inclusive('\n')
            .zip(1..)
            .map(|(raw, number)| {
                let line = Line {
                    text: raw.trim_end_matches(['\n', '\r']),
                    start,
                    end: start + raw.len(),
                    number,
                };
                start = line.end;
                line
            })
            .collect()
    }
}

/// What drizzle splits a migration at, wherever it stands.
const DRIZZLE_BREAKPOINT: &str = "--> statement-breakpoint";

/// drizzle: the whole file runs, in the transaction of the run; each stretch between
/// breakpoints is sent as one query (from its first line that holds more than blanks).
fn drizzle(lines: &[Line], sql: &str) -> Layout {
    let line_of = |at: usize| {
        lines
            .iter()
            .find(|l| at < l.end)
            .or(lines.last())
            .map_or(1, |l| l.number)
    };
    let mut together = Vec::new();
    let mut start = 0;
    for stretch in sql.split(DRIZZLE_BREAKPOINT) {
        let blank = stretch.len() - stretch.trim_start().len();
        if !stretch.trim().is_empty() {
            let end = start + stretch.trim_end().len();
            together.push(line_of(start + blank)..line_of(end.saturating_sub(1)) + 1);
        }
        start += stretch.len() + DRIZZLE_BREAKPOINT.len();
    }
    Layout {
        together,
        ..Layout::one_part(Runner::Drizzle, 0..sql.len(), true, None)
    }
}

/// goose: an annotation is a line that starts with `--` and names `+goose`; its command is
/// matched without regard to case. The up part runs from `Up` to `Down`; `NO TRANSACTION`
/// anywhere runs it statement by statement outside a transaction; the lines between
/// `StatementBegin` and `StatementEnd` are sent as one query.
fn goose(lines: &[Line]) -> Option<Layout> {
    let mut up: Option<Range<usize>> = None;
    let mut transaction = true;
    let mut together = Vec::new();
    let mut block = None;
    for l in lines {
        if !l.text.starts_with("--") || !l.text.contains("+goose") {
            continue;
        }
        let command = l.text.replace("--", "").replacen("+goose", "", 1);
        match command.trim().to_ascii_lowercase().as_str() {
            "up" if up.is_none() => up = Some(l.end..usize::MAX),
            "down" => {
                if let Some(u) = up.as_mut().filter(|u| u.end == usize::MAX) {
                    u.end = l.start;
                }
            }
            "statementbegin" => block = Some(l.number + 1),
            "statementend" => together.extend(block.take().map(|b| b..l.number)),
            "no transaction" => transaction = false,
            _ => {}
        }
    }
    let mut up = up?;
    up.end = up.end.min(lines.last().map_or(0, |l| l.end));
    Some(Layout {
        together,
        ..Layout::one_part(Runner::Goose, up, transaction, None)
    })
}

/// sql-migrate: a command is a line that starts `-- +migrate `; what follows each `Up` runs,
/// up to the next `Down` (a file may hold several of each). `notransaction` on an `Up` line
/// runs the up part outside a transaction; `StatementBegin` ... `StatementEnd` is one query.
fn sql_migrate(lines: &[Line]) -> Option<Layout> {
    let mut up = Vec::new();
    let mut open: Option<usize> = None;
    let mut transaction = true;
    let mut together = Vec::new();
    let mut block = None;
    for l in lines {
        let Some(command) = l.text.strip_prefix("-- +migrate ") else {
            continue;
        };
        let mut words = command.split_whitespace();
        match words.next() {
            Some("Up") => {
                open = open.or(Some(l.end));
                if words.any(|w| w == "notransaction") {
                    transaction = false;
                }
            }
            Some("Down") => up.extend(open.take().map(|s| s..l.start)),
            Some("StatementBegin") => block = Some(l.number + 1),
            Some("StatementEnd") => together.extend(block.take().map(|b| b..l.number)),
            _ => {}
        }
    }
    let end = lines.last().map_or(0, |l| l.end);
    up.extend(open.map(|s| s..end));
    if up.is_empty() && !lines.iter().any(|l| l.text.starts_with("-- +migrate Down")) {
        return None;
    }
    Some(Layout {
        runner: Runner::SqlMigrate,
        up,
        transaction,
        parts: Vec::new(),
        together,
    })
}

/// dbmate: the up part runs from the first `-- migrate:up` line to the first
/// `-- migrate:down` line, sent as one query; `transaction:false` among the words of the up
/// line sends it outside a transaction.
fn dbmate(lines: &[Line], len: usize) -> Option<Layout> {
    let directive = |l: &Line, name: &str| {
        l.text
            .strip_prefix("--")
            .map(str::trim_start)
            .and_then(|t| t.strip_prefix(name))
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
    };
    let up_line = lines.iter().find(|l| directive(l, "migrate:up"))?;
    let end = lines
        .iter()
        .find(|l| directive(l, "migrate:down"))
        .map_or(len, |l| l.start)
        .max(up_line.end);
    let transaction = !up_line
        .text
        .split_whitespace()
        .any(|w| w == "transaction:false");
    let last = lines
        .iter()
        .rfind(|l| l.start < end)
        .map_or(up_line.number, |l| l.number);
    Some(Layout::one_part(
        Runner::Dbmate,
        up_line.end..end,
        transaction,
        Some(up_line.number..last + 1),
    ))
}

/// tern: the up part is everything before `---- create above / drop below ----`, sent as one
/// query in a transaction, unless a line `---- tern: disable-tx ----` in it asks for its
/// statements one by one outside a transaction.
fn tern(lines: &[Line], sql: &str) -> Option<Layout> {
    const DIVIDER: &str = "---- create above / drop below ----";
    const DISABLE_TX: &str = "---- tern: disable-tx ----";
    let end = sql.find(DIVIDER);
    let end_len = end.unwrap_or(sql.len());
    let disable_tx = lines
        .iter()
        .any(|l| l.start < end_len && l.text == DISABLE_TX);
    if end.is_none() && !disable_tx {
        return None;
    }
    let last = lines
        .iter()
        .rfind(|l| l.start < end_len)
        .map_or(1, |l| l.number);
    Some(Layout::one_part(
        Runner::Tern,
        0..end_len,
        !disable_tx,
        (!disable_tx).then_some(1..last + 1),
    ))
}

/// What begins a sqlx migration that runs outside a transaction.
const SQLX_NO_TX: &str = "-- no-transaction";

/// sqlx: the whole file is one query, in a transaction unless it begins `-- no-transaction`.
fn sqlx(lines: &[Line], sql: &str) -> Layout {
    Layout::whole(Runner::Sqlx, lines, sql.len(), !sql.starts_with(SQLX_NO_TX))
}

/// yoyo: the file's leading lines, blank or comments, may hold directives (`-- depends: 0001`,
/// `-- transactional: false`); the whole file runs, statement by statement, in a transaction
/// unless `transactional` is `false`. `None` without a directive.
fn yoyo(lines: &[Line], len: usize) -> Option<Layout> {
    let mut directive = false;
    let mut transaction = true;
    for l in lines {
        let text = l.text.trim();
        let Some(comment) = text.strip_prefix("--") else {
            if text.is_empty() {
                continue;
            }
            break;
        };
        let Some((key, value)) = comment.split_once(':') else {
            continue;
        };
        match key.trim() {
            "depends" => directive = true,
            "transactional" => {
                directive = true;
                transaction = !value.trim().eq_ignore_ascii_case("false");
            }
            _ => {}
        }
    }
    directive.then(|| Layout::one_part(Runner::Yoyo, 0..len, transaction, None))
}

/// node-pg-migrate: the up part runs from the `-- Up Migration` line to the `-- Down
/// Migration` line (the whole file when it has only the latter), always in a transaction and
/// as one query. A marker is read only as the template writes it, alone on its line, so that a
/// comment that merely begins with the words is not taken for one.
fn node_pg_migrate(lines: &[Line], len: usize) -> Option<Layout> {
    let marker = |l: &Line, word: &str| {
        let t = l.text.trim();
        let Some(rest) = t.strip_prefix("--") else {
            return false;
        };
        let rest = rest.trim_start_matches(|c: char| c == '-' || c.is_whitespace());
        let mut words = rest.split_whitespace();
        words.next().is_some_and(|w| w.eq_ignore_ascii_case(word))
            && words
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case("migration"))
            && words.next().is_none()
    };
    let up = lines.iter().find(|l| marker(l, "up"));
    let down = lines.iter().find(|l| marker(l, "down"));
    let range = match (up, down) {
        (None, None) => return None,
        (Some(u), Some(d)) if d.start > u.start => u.start..d.start,
        (Some(u), _) => u.start..len,
        (None, Some(_)) => 0..len,
    };
    let first = up.map_or(1, |u| u.number);
    let last = lines
        .iter()
        .rfind(|l| l.start < range.end)
        .map_or(first, |l| l.number);
    Some(Layout::one_part(
        Runner::NodePgMigrate,
        range,
        true,
        Some(first..last + 1),
    ))
}

/// Liquibase's formatted SQL: the first line says `--liquibase formatted sql`; each
/// `--changeset author:id` line begins a changeset, which runs up to the next one in a
/// transaction of its own unless `runInTransaction:false`, statement by statement unless
/// `splitStatements:false` (then as one query). A changeset whose `dbms:` leaves PostgreSQL out
/// does not run, nor do the lines between `--ignoreLines:start` and `--ignoreLines:end`, nor
/// what comes before the first changeset. Directives are read without regard to case.
fn liquibase(lines: &[Line]) -> Option<Layout> {
    let first = lines.first()?;
    let formatted = liquibase_directive(first.text, "liquibase")
        .is_some_and(|rest| rest.to_ascii_lowercase().starts_with("formatted"));
    if !formatted {
        return None;
    }
    let end = lines.last().map_or(0, |l| l.end);
    let mut layout = Layout {
        runner: Runner::Liquibase,
        up: Vec::new(),
        transaction: false,
        parts: Vec::new(),
        together: Vec::new(),
    };
    // The running changeset: where its text resumes (`None` while lines are ignored), and
    // its first line when it is sent as one query.
    let mut open: Option<(Option<usize>, Option<u64>)> = None;
    for l in lines {
        let Some(rest) = liquibase_directive(l.text, "changeset") else {
            let ignore = liquibase_directive(l.text, "ignorelines:");
            match (
                open.as_mut(),
                ignore.map(str::to_ascii_lowercase).as_deref(),
            ) {
                (Some((at, _)), Some("start")) => layout.up.extend(at.take().map(|a| a..l.start)),
                (Some((at, _)), Some("end")) => *at = Some(l.end),
                _ => {}
            }
            continue;
        };
        if let Some((at, one_query)) = open.take() {
            layout.up.extend(at.map(|a| a..l.start));
            layout.together.extend(one_query.map(|f| f..l.number));
        }
        // After `author:id`.
        let attribute = |name: &str| {
            rest.split_whitespace().skip(1).find_map(|w| {
                let (key, value) = w.split_once(':')?;
                key.eq_ignore_ascii_case(name).then_some(value)
            })
        };
        let off = |name: &str| attribute(name).is_some_and(|v| v.eq_ignore_ascii_case("false"));
        if attribute("dbms").is_none_or(runs_on_postgresql) {
            layout.parts.push((l.number + 1, !off("runInTransaction")));
            let one_query = off("splitStatements").then_some(l.number + 1);
            open = Some((Some(l.end), one_query));
        }
    }
    if let Some((at, one_query)) = open {
        layout.up.extend(at.map(|a| a..end));
        let last = lines.last().map_or(1, |l| l.number);
        layout.together.extend(one_query.map(|f| f..last + 1));
    }
    Some(layout)
}

/// What follows `--name` (with any spaces after the dashes) at the start of a line.
fn liquibase_directive<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let rest = line.trim_start().strip_prefix("--")?.trim_start();
    let head = rest.get(..name.len())?;
    head.eq_ignore_ascii_case(name)
        .then(|| rest[name.len()..].trim())
        .filter(|_| name.ends_with(':') || rest[name.len()..].starts_with(char::is_whitespace))
}

/// Whether a changeset's `dbms:` list (`postgresql,h2`, `!mysql`, `all`, `none`) lets it run
/// on PostgreSQL.
fn runs_on_postgresql(list: &str) -> bool {
    let items: Vec<String> = list
        .split(',')
        .map(|i| i.trim().to_ascii_lowercase())
        .collect();
    let has = |name: &str| items.iter().any(|i| i == name);
    if has("none") || has("!postgresql") {
        false
    } else if has("all") || has("postgresql") {
        true
    } else {
        items.iter().all(|i| i.starts_with('!'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up_text(sql: &str) -> (Layout, String) {
        let layout = Layout::recognise(sql).expect("a runner's markers");
        let text = layout
            .up
            .iter()
            .map(|r| &sql[r.clone()])
            .collect::<Vec<_>>()
            .join("|");
        (layout, text)
    }

    #[test]
    fn plain_sql_has_no_runner() {
        for sql in [
            "CREATE TABLE t (id int);",
            "-- up migration for users\nCREATE TABLE t (id int);",
            "-- migrate:upgrade the users\nSELECT 1;",
            "",
        ] {
            assert_eq!(Layout::recognise(sql), None, "{sql:?}");
        }
    }

    #[test]
    fn drizzle_sends_each_stretch_between_breakpoints_as_one_query() {
        let sql = "CREATE TABLE t (a int);--> statement-breakpoint\nSET lock_timeout = '1s';\n\
                   ALTER TABLE t ADD b int;--> statement-breakpoint\n\n  CREATE INDEX i ON t (a);\n";
        let (layout, text) = up_text(sql);
        assert_eq!((layout.runner, layout.transaction), (Runner::Drizzle, true));
        assert_eq!(text, sql);
        assert_eq!(layout.together, [1..2, 2..4, 5..6]);
        // The two statements of the second stretch go as one query; the others alone.
        let starts = [1, 2, 3, 5];
        assert_eq!(layout.query_of(2, &starts), Some(2..4));
        assert_eq!(layout.query_of(1, &starts), None);
        assert_eq!(layout.query_of(5, &starts), None);
        // A file without breakpoints is drizzle's only when the catalog says so.
        let one = "CREATE INDEX CONCURRENTLY i ON t (a);";
        assert_eq!(Layout::recognise(one), None);
        let layout = Layout::run_by(one, Runner::Drizzle.into()).unwrap();
        assert!(layout.transaction);
        assert_eq!(layout.together, std::iter::once(1..2).collect::<Vec<_>>());
    }

    #[test]
    fn liquibase_runs_each_changeset_on_its_own() {
        let sql = "--Liquibase formatted SQL\nSELECT 0;\n\
                   --changeset ana:1\nALTER TABLE t ADD c int;\n--rollback ALTER TABLE t DROP c;\n\
                   --  changeSet ana:2 runInTransaction:FALSE splitStatements:false\nSELECT 1;\nSELECT 2;\n\
                   --changeset ana:3 dbms:mysql\nSELECT 3;\n\
                   --changeset ana:4 dbms:!h2 runInTransaction:true\nSELECT 4;\n\
                   --ignoreLines:start\n\\set x 1\n--ignoreLines:end\nSELECT 5;\n";
        let (layout, up) = up_text(sql);
        assert_eq!(layout.runner, Runner::Liquibase);
        assert_eq!(
            up,
            "ALTER TABLE t ADD c int;\n--rollback ALTER TABLE t DROP c;\n|SELECT 1;\nSELECT 2;\n\
             |SELECT 4;\n|SELECT 5;\n"
        );
        assert_eq!(layout.parts, [(4, true), (7, false), (12, true)]);
        assert_eq!(layout.together, vec![Range { start: 7, end: 9 }]);
        // Not a changelog without the first line; a changeset word must stand alone.
        assert_eq!(
            Layout::recognise("\n--liquibase formatted sql\n--changeset a:1\n"),
            None
        );
        let (_, up) = up_text("--liquibase formatted sql\n--changesets a:1\nSELECT 1;\n");
        assert_eq!(up, "");
        // An author named like an attribute is an author.
        let (_, up) = up_text("--liquibase formatted sql\n--changeset dbms:1\nSELECT 1;\n");
        assert_eq!(up, "SELECT 1;\n");
        for (list, runs) in [
            ("postgresql", true),
            ("h2,PostgreSQL", true),
            ("all", true),
            ("!mysql", true),
            ("!postgresql", false),
            ("mysql,mariadb", false),
            ("none", false),
        ] {
            assert_eq!(runs_on_postgresql(list), runs, "{list}");
        }
    }

    #[test]
    fn goose_runs_from_up_to_down_in_a_transaction() {
        let sql = "-- +goose Up\nCREATE TABLE t (id int);\n-- +goose StatementBegin\n\
                   SELECT 1;\nSELECT 2;\n-- +goose StatementEnd\n\n-- +goose Down\nDROP TABLE t;\n";
        let (layout, up) = up_text(sql);
        assert_eq!(layout.runner, Runner::Goose);
        assert_eq!(
            up,
            "CREATE TABLE t (id int);\n-- +goose StatementBegin\nSELECT 1;\nSELECT 2;\n\
             -- +goose StatementEnd\n\n"
        );
        assert!(layout.transaction);
        assert_eq!(layout.together, vec![Range { start: 4, end: 6 }]);
        assert!(layout.query_of(4, &[2, 4, 5, 9]).is_some());
        assert!(layout.query_of(2, &[2, 4, 5, 9]).is_none());
    }

    #[test]
    fn goose_annotations_ignore_case_and_may_come_anywhere() {
        let sql = "-- +goose up\nCREATE INDEX CONCURRENTLY i ON t (a);\n-- +goose no transaction\n";
        let (layout, up) = up_text(sql);
        assert!(!layout.transaction);
        assert!(up.ends_with("-- +goose no transaction\n"), "{up:?}");
        // Without a Down annotation, the up part runs to the end.
        let (_, up) = up_text("--+goose Up\nSELECT 1;");
        assert_eq!(up, "SELECT 1;");
    }

    #[test]
    fn sql_migrate_may_hold_several_up_parts() {
        let sql = "-- +migrate Up notransaction\nSELECT 1;\n-- +migrate Down\nSELECT 2;\n\
                   -- +migrate Up\nSELECT 3;\n";
        let (layout, up) = up_text(sql);
        assert_eq!(layout.runner, Runner::SqlMigrate);
        assert_eq!(up, "SELECT 1;\n|SELECT 3;\n");
        assert!(!layout.transaction);
        // Its commands are case-sensitive, as sql-migrate reads them.
        let (layout, up) = up_text("-- +migrate up\nSELECT 1;\n-- +migrate Down\nSELECT 2;\n");
        assert_eq!((layout.runner, up.as_str()), (Runner::SqlMigrate, ""));
    }

    #[test]
    fn dbmate_reads_its_options_from_the_up_line() {
        let sql = "-- migrate:up transaction:false\nSET lock_timeout = '1s';\n\
                   CREATE INDEX CONCURRENTLY i ON t (a);\n\n-- migrate:down\nDROP INDEX i;\n";
        let (layout, up) = up_text(sql);
        assert_eq!(layout.runner, Runner::Dbmate);
        assert!(up.starts_with("SET") && !up.contains("DROP"), "{up:?}");
        assert!(!layout.transaction);
        assert!(layout.query_of(2, &[2, 3]).is_some());
        assert!(layout.query_of(3, &[3]).is_none());
        let (layout, _) = up_text("--migrate:up\nSELECT 1;\n");
        assert!(layout.transaction);
    }

    #[test]
    fn tern_runs_what_is_above_its_divider() {
        let sql = "CREATE TABLE t (id int);\n---- create above / drop below ----\nDROP TABLE t;\n";
        let (layout, up) = up_text(sql);
        assert_eq!(layout.runner, Runner::Tern);
        assert_eq!(up, "CREATE TABLE t (id int);\n");
        assert!(layout.transaction);
        let sql = "---- tern: disable-tx ----\nCREATE INDEX CONCURRENTLY i ON t (a);\n";
        let (layout, _) = up_text(sql);
        assert!(!layout.transaction);
        assert!(layout.together.is_empty());
    }

    #[test]
    fn node_pg_migrate_marks_are_read_as_its_template_writes_them() {
        let sql = "-- Up Migration\nCREATE TABLE t (id int);\n\n-- Down Migration\nDROP TABLE t;\n";
        let (layout, up) = up_text(sql);
        assert_eq!(layout.runner, Runner::NodePgMigrate);
        assert_eq!(up, "-- Up Migration\nCREATE TABLE t (id int);\n\n");
        assert!(layout.transaction);
        // Only a down marker: node-pg-migrate runs the whole file on the way up.
        let (_, up) = up_text("SELECT 1;\n--- down migration\nSELECT 2;\n");
        assert_eq!(up, "SELECT 1;\n--- down migration\nSELECT 2;\n");
    }

    #[test]
    fn a_named_runner_reads_files_without_its_markers() {
        let sql = "SELECT 1;\nSELECT 2;\n";
        let sqlx = Layout::for_runner(sql, Runner::Sqlx).unwrap();
        assert!(sqlx.transaction);
        assert!(sqlx.query_of(1, &[1, 2]).is_some());
        let golang = Layout::for_runner(sql, Runner::GolangMigrate).unwrap();
        assert!(!golang.transaction);
        assert!(golang.query_of(2, &[1, 2]).is_some());
        assert!(golang.query_of(1, &[1]).is_none());
        // diesel's transaction is configured beside the file; what is configured wins.
        let diesel = RunBy::from(Runner::Diesel);
        assert!(Layout::run_by(sql, diesel).unwrap().transaction);
        let outside = Layout::run_by(sql, diesel.in_transaction(false)).unwrap();
        assert!(!outside.transaction && outside.query_of(1, &[1, 2]).is_some());
        for runner in [Runner::Tern, Runner::NodePgMigrate] {
            let whole = Layout::for_runner(sql, runner).unwrap();
            let all = 0..sql.len();
            assert_eq!((whole.up, whole.transaction), (vec![all], true));
        }
        // sqlx's line counts at the very start of the file only, as sqlx reads it.
        let no_tx = format!("-- no-transaction\n{sql}");
        assert!(
            !Layout::for_runner(&no_tx, Runner::Sqlx)
                .unwrap()
                .transaction
        );
        assert_eq!(Layout::recognise(&no_tx).unwrap().runner, Runner::Sqlx);
        assert_eq!(Layout::recognise(&format!("\n{no_tx}")), None);
        // A file its runner refuses to run.
        for (runner, marker) in [
            (Runner::Goose, "-- +goose Up"),
            (Runner::SqlMigrate, "-- +migrate Up"),
            (Runner::Dbmate, "-- migrate:up"),
        ] {
            let err = Layout::for_runner(sql, runner).unwrap_err();
            assert!(err.contains(marker), "{err}");
        }
    }

    #[test]
    fn yoyo_reads_its_directives_from_the_leading_comments() {
        let sql = "-- Adds the index\n-- depends: 0001_users\n\nCREATE INDEX i ON t (a);\n";
        let layout = Layout::recognise(sql).unwrap();
        assert_eq!((layout.runner, layout.transaction), (Runner::Yoyo, true));
        assert!(layout.together.is_empty());
        let sql = "--transactional : FALSE\nCREATE INDEX CONCURRENTLY i ON t (a);\n";
        assert!(!Layout::recognise(sql).unwrap().transaction);
        // A directive after the first statement is no directive.
        let sql = "SELECT 1;\n-- depends: 0001_users\n";
        assert_eq!(Layout::recognise(sql), None);
    }

    #[test]
    fn blanking_keeps_lines_and_columns() {
        let sql = "-- +goose Up\nSELECT 'é';\n-- +goose Down\nDROP TABLE ü;\n";
        let layout = Layout::recognise(sql).unwrap();
        let blanked = layout.blank_the_rest(sql);
        assert_eq!(
            blanked,
            "            \nSELECT 'é';\n              \n             \n"
        );
        assert_eq!(blanked.lines().count(), sql.lines().count());
    }
}
