//! Splitting a migration into statements, reading each, and the `serin:ignore` comments.

use std::borrow::Cow;

use sqlparser::ast::{ObjectName, Statement};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Location, Span, Token, TokenWithSpan, Tokenizer, Whitespace};

use super::placeholder::{StandIn, stand_in};
use super::runner::{Layout, RunBy};
use super::words::{ByWords, Collations, Words, without_collations, without_trigger_arguments};
use crate::error::{Error, Result};

/// What the parser made of one statement.
pub(super) enum Parsed {
    Stmt(Box<Statement>),
    /// `DROP INDEX CONCURRENTLY`, which the parser does not know.
    DropIndexConcurrently {
        names: Vec<ObjectName>,
        if_exists: bool,
        cascade: bool,
    },
    /// `REINDEX ...`, which the parser does not know; `many` for `SCHEMA`, `DATABASE` and
    /// `SYSTEM`, which PostgreSQL refuses in a transaction block.
    Reindex {
        concurrently: bool,
        many: bool,
    },
    /// `CLUSTER ...`, which the parser does not know either; `every` without a table (every
    /// table clustered before), which PostgreSQL refuses in a transaction block.
    Cluster {
        every: bool,
    },
    /// A statement the parser does not know, read from its words.
    ByWords(ByWords),
    /// A psql meta-command (`\i file`), by its name (`i`).
    Meta(String),
    /// A statement the parser could not read, with its message.
    Unreadable(String),
}

impl Parsed {
    /// Whether this is psql's `\connect` (`\c`), which opens a new session.
    pub(super) fn reconnects(&self) -> bool {
        matches!(self, Self::Meta(command) if command == "c" || command == "connect")
    }
}

/// A `-- serin:ignore rule-a, rule-b` comment: the reviewer's word that the named rules do not
/// apply to the statement it precedes or sits in, or whose line it ends after the `;` (as
/// linters read an end-of-line comment); `serin:ignore-file`: to every statement.
#[derive(Debug, PartialEq)]
pub(super) struct Ignore {
    pub(super) line: u64,
    file_wide: bool,
    pub(super) rules: Vec<String>,
}

impl Ignore {
    fn read(comment: &str, line: u64) -> Option<Self> {
        let body = comment.trim();
        let (file_wide, rest) = match body.strip_prefix("serin:ignore-file") {
            Some(rest) => (true, rest),
            None => (false, body.strip_prefix("serin:ignore")?),
        };
        if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
            return None;
        }
        let rules = rest
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect();
        Some(Self {
            line,
            file_wide,
            rules,
        })
    }

    pub(super) fn covers(&self, rule: &str) -> bool {
        self.rules.iter().any(|r| r == rule)
    }
}

/// A migration read into statements.
pub(super) struct Script {
    pub(super) statements: Vec<Written>,
    /// The `serin:ignore-file` comments.
    pub(super) file_wide: Vec<Ignore>,
    /// The runner whose markers the file carries, if any.
    pub(super) layout: Option<Layout>,
    /// The placeholders read as names.
    pub(super) stand_ins: Vec<StandIn>,
}

/// One statement as written.
pub(super) struct Written {
    pub(super) line: u64,
    pub(super) column: u64,
    /// Its text, as written.
    pub(super) text: String,
    /// The `serin:ignore` comments before or in it.
    pub(super) ignores: Vec<Ignore>,
    pub(super) parsed: Parsed,
    /// The columns whose new type carries a `COLLATE` clause, which the parser lacks: the
    /// statement was parsed without the clauses.
    pub(super) collations: Collations,
}

/// Byte offsets of 1-based line/column positions (columns count characters, as the tokenizer's).
struct Positions<'a> {
    sql: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Positions<'a> {
    fn new(sql: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self { sql, line_starts }
    }

    fn offset(&self, at: Location) -> usize {
        let Some(&start) = usize::try_from(at.line)
            .ok()
            .and_then(|l| self.line_starts.get(l.saturating_sub(1)))
        else {
            return self.sql.len();
        };
        let column = usize::try_from(at.column).unwrap_or(usize::MAX);
        self.sql[start..]
            .char_indices()
            .nth(column.saturating_sub(1))
            .map_or(self.sql.len(), |(i, _)| start + i)
    }

    /// The text from `at` to the end of its line, as written.
    fn rest_of_line(&self, at: Location) -> String {
        let rest = &self.sql[self.offset(at)..];
        rest[..rest.find('\n').unwrap_or(rest.len())]
            .trim_end()
            .to_owned()
    }

    fn text(&self, tokens: &[TokenWithSpan]) -> String {
        match (tokens.first(), tokens.last()) {
            (Some(first), Some(last)) => {
                let (from, to) = (self.offset(first.span.start), self.offset(last.span.end));
                self.sql
                    .get(from..to.max(from))
                    .unwrap_or_default()
                    .to_owned()
            }
            _ => String::new(),
        }
    }
}

/// Reads one statement from its own tokens (no `;`).
fn read_statement(parser: &mut Parser<'_>) -> std::result::Result<Parsed, ParserError> {
    let parsed = if parser.parse_keywords(&[Keyword::DROP, Keyword::INDEX, Keyword::CONCURRENTLY]) {
        let if_exists = parser.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
        let names = parser.parse_comma_separated(|p| p.parse_object_name(false))?;
        let cascade = parser.parse_one_of_keywords(&[Keyword::CASCADE, Keyword::RESTRICT])
            == Some(Keyword::CASCADE);
        Parsed::DropIndexConcurrently {
            names,
            if_exists,
            cascade,
        }
    } else if parser.parse_keyword(Keyword::REINDEX) {
        // `REINDEX [(options)] {INDEX | TABLE | SCHEMA | DATABASE | SYSTEM} [CONCURRENTLY] name`.
        let (mut concurrently, mut kind, mut depth) = (false, None, 0);
        loop {
            match parser.next_token().token {
                Token::EOF => break,
                Token::LParen => depth += 1,
                Token::RParen => depth -= 1,
                Token::Word(w) if depth == 0 => {
                    concurrently |= w.keyword == Keyword::CONCURRENTLY;
                    kind = kind.or(Some(w.keyword));
                }
                _ => {}
            }
        }
        let many = matches!(
            kind,
            Some(Keyword::SCHEMA | Keyword::DATABASE | Keyword::SYSTEM)
        );
        Parsed::Reindex { concurrently, many }
    } else if parser.parse_keyword(Keyword::CLUSTER) {
        // `CLUSTER [VERBOSE | (options)] [table [USING index]]`.
        if !parser.parse_keyword(Keyword::VERBOSE) && parser.consume_token(&Token::LParen) {
            while !matches!(parser.next_token().token, Token::RParen | Token::EOF) {}
        }
        let every = parser.peek_token().token == Token::EOF;
        while parser.next_token().token != Token::EOF {}
        Parsed::Cluster { every }
    } else {
        Parsed::Stmt(Box::new(parser.parse_statement()?))
    };
    let after = parser.peek_token();
    if after.token != Token::EOF {
        return Err(ParserError::ParserError(format!(
            "expected ';' or end of input, found {} at Line: {}, Column: {}",
            after.token, after.span.start.line, after.span.start.column
        )));
    }
    Ok(parsed)
}

/// Follows a statement's words to tell whether a `;` ends it: not inside parentheses, nor
/// inside the SQL-standard body of a routine (`CREATE FUNCTION ... BEGIN ATOMIC ...; ...;
/// END`, PostgreSQL 14+). The rule is psql's, so statements end where they end when psql runs
/// the file: in a statement that defines a function or procedure, outside parentheses, `BEGIN`
/// opens a block, `CASE` opens one inside a block (it ends with `END` too) and `END` closes
/// one.
#[derive(Default)]
struct Boundary {
    parens: usize,
    blocks: usize,
}

impl Boundary {
    /// Follows `token`, which comes after the statement's tokens so far (`before`).
    fn follow(&mut self, before: &[TokenWithSpan], token: &Token) {
        match token {
            Token::LParen => self.parens += 1,
            Token::RParen => self.parens = self.parens.saturating_sub(1),
            Token::Word(w) if self.parens == 0 && defines_routine(before) => match w.keyword {
                Keyword::BEGIN => self.blocks += 1,
                Keyword::CASE if self.blocks > 0 => self.blocks += 1,
                Keyword::END => self.blocks = self.blocks.saturating_sub(1),
                _ => {}
            },
            _ => {}
        }
    }

    /// Whether a `;` here is part of the statement: psql ends one only outside parentheses
    /// (a rule's actions, `DO ALSO (INSERT ...; INSERT ...)`) and outside a routine's body.
    fn inside_body(&self) -> bool {
        self.blocks > 0 || self.parens > 0
    }
}

/// Whether a statement starts `CREATE [OR REPLACE] FUNCTION | PROCEDURE`.
fn defines_routine(tokens: &[TokenWithSpan]) -> bool {
    let mut w = Words::new(tokens);
    w.keyword("CREATE")
        && (!w.keyword("OR") || w.keyword("REPLACE"))
        && (w.keyword("FUNCTION") || w.keyword("PROCEDURE"))
}

/// Splits a migration into statements at its `;` tokens (except inside a routine's body, see
/// [`Boundary`]) and reads each on its own, so a statement the parser does not know leaves the
/// others analysed. A psql meta-command (`\i file`, `\set ...`, `pg_dump`'s `\restrict`)
/// runs from its backslash to the end of its line and is a statement of its own. Only text that
/// cannot be tokenized at all (an unterminated string or comment) is an error. In a file laid
/// out for a runner ([`Layout`]), `run`'s or the one its markers name, only what runs on the
/// way up is read; a file the runner refuses to run is an error.
pub(super) fn parse(name: &str, sql: &str, run: Option<RunBy>) -> Result<Script> {
    // In a file laid out for a runner (goose, dbmate, ...), only the up part runs: the rest is
    // blanked, lines and columns kept.
    let layout = match run {
        Some(r) => Some(Layout::run_by(sql, r).map_err(|reason| Error::Parse {
            format: "SQL",
            reason: format!("migration {name:?}: {reason}"),
        })?),
        None => Layout::recognise(sql),
    };
    let mut text = match &layout {
        Some(l) => Cow::Owned(l.blank_the_rest(sql)),
        None => Cow::Borrowed(sql),
    };
    // Flyway's placeholders, and psql's variables in a file psql runs, are read as text of the
    // same length.
    let mut stand_ins = Vec::new();
    if let Some((read, found)) = stand_in(&text, layout.is_none()) {
        text = Cow::Owned(read);
        stand_ins = found;
    }
    // A meta-command's arguments are not SQL (`\i 0002_add.sql`): where they stop the
    // tokenizer, they are blanked (columns kept) and the text tokenized again.
    let tokens = loop {
        match Tokenizer::new(&PostgreSqlDialect {}, &text).tokenize_with_location() {
            Ok(tokens) => break tokens,
            Err(e) => match blank_meta_arguments(&text, e.location.line) {
                Some(blanked) => text = Cow::Owned(blanked),
                None => {
                    return Err(Error::Parse {
                        format: "SQL",
                        reason: format!("migration {name:?}: {e}"),
                    });
                }
            },
        }
    };
    // The parser's end of input takes the position of the `;` (or of the text's end), so its
    // messages about a statement cut short say where.
    let text_end = tokens.last().map_or(Location::new(1, 1), |t| t.span.end);
    let end = TokenWithSpan::new(Token::EOF, Span::new(text_end, text_end));
    let mut splitter = Splitter {
        positions: Positions::new(sql),
        statements: Vec::new(),
        file_wide: Vec::new(),
        chunk: Vec::new(),
        ignores: Vec::new(),
        boundary: Boundary::default(),
        ended_on: None,
        meta: Vec::new(),
    };
    for t in tokens.into_iter().chain(std::iter::once(end)) {
        splitter.take(t);
    }
    Ok(Script {
        statements: splitter.statements,
        file_wide: splitter.file_wide,
        layout,
        stand_ins,
    })
}

/// `text` with the arguments of the meta-command on line `line` (1-based) replaced by spaces,
/// up to a `--` comment that ends the line (it may say `serin:ignore`), or `None` if that line
/// holds no meta-command with arguments left.
fn blank_meta_arguments(text: &str, line: u64) -> Option<String> {
    let start = text
        .split_inclusive('\n')
        .take(usize::try_from(line).ok()?.checked_sub(1)?)
        .map(str::len)
        .sum::<usize>();
    let rest = text.get(start..)?;
    let end = start + rest.find('\n').unwrap_or(rest.len());
    let line_text = &text[start..end];
    let command = start + line_text.len() - line_text.trim_start().len();
    if !text[command..end].starts_with('\\') {
        return None;
    }
    let name = &text[command + 1..end];
    let args = command
        + 1
        + name
            .find(|c: char| !c.is_alphanumeric() && c != '_')
            .unwrap_or(name.len());
    let end = args + comment_start(&text[args..end]);
    if text[args..end].trim().is_empty() {
        return None;
    }
    let blank: String = text[args..end]
        .chars()
        .map(|c| if c == '\r' { c } else { ' ' })
        .collect();
    Some(format!("{}{blank}{}", &text[..args], &text[end..]))
}

/// Where a `--` comment starts in a meta-command's `args` (outside quotes), or their length.
fn comment_start(args: &str) -> usize {
    let mut quote = None;
    for (i, c) in args.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if args[i..].starts_with("--") => return i,
            None => {}
        }
    }
    args.len()
}

/// A migration being cut into statements, token by token.
struct Splitter<'a> {
    positions: Positions<'a>,
    statements: Vec<Written>,
    file_wide: Vec<Ignore>,
    /// The statement being read: its tokens, its `serin:ignore` comments so far, and whether
    /// a `;` would end it.
    chunk: Vec<TokenWithSpan>,
    ignores: Vec<Ignore>,
    boundary: Boundary,
    /// The line the last statement ended on, with its `;` or as a meta-command: a `--`
    /// comment after it on that line, before anything else, is that statement's.
    ended_on: Option<u64>,
    /// The psql meta-command being read, if one is.
    meta: Vec<TokenWithSpan>,
}

impl Splitter<'_> {
    fn take(&mut self, t: TokenWithSpan) {
        if !self.meta.is_empty() {
            match t.token {
                Token::Whitespace(Whitespace::Newline | Whitespace::SingleLineComment { .. })
                | Token::EOF => self.end_meta(),
                Token::Whitespace(_) => return,
                _ => return self.meta.push(t),
            }
        }
        match &t.token {
            Token::SemiColon | Token::EOF
                if t.token == Token::EOF || !self.boundary.inside_body() =>
            {
                self.end_statement(t.span);
            }
            Token::Backslash => self.meta.push(t),
            Token::Whitespace(
                Whitespace::SingleLineComment { comment, .. }
                | Whitespace::MultiLineComment(comment),
            ) => {
                let line = t.span.start.line;
                let Some(ignore) = Ignore::read(comment, line) else {
                    return;
                };
                let ends_line = matches!(
                    t.token,
                    Token::Whitespace(Whitespace::SingleLineComment { .. })
                ) && self.chunk.is_empty()
                    && self.ended_on == Some(line);
                match self.statements.last_mut() {
                    _ if ignore.file_wide => self.file_wide.push(ignore),
                    Some(ended) if ends_line => ended.ignores.push(ignore),
                    _ => self.ignores.push(ignore),
                }
            }
            Token::Whitespace(_) => {}
            _ => {
                self.boundary.follow(&self.chunk, &t.token);
                self.chunk.push(t);
            }
        }
    }

    /// Reads the statement gathered so far, which ends at `end`.
    fn end_statement(&mut self, end: Span) {
        let Some(first) = self.chunk.first() else {
            return;
        };
        let (line, column) = (first.span.start.line, first.span.start.column);
        let text = self.positions.text(&self.chunk);
        let mut chunk = std::mem::take(&mut self.chunk);
        chunk.push(TokenWithSpan::new(Token::EOF, end));
        let mut parser =
            Parser::new(&PostgreSqlDialect {}).with_tokens_with_locations(chunk.clone());
        let mut collations = Vec::new();
        let parsed = read_statement(&mut parser).unwrap_or_else(|e| {
            let retry = without_collations(&chunk)
                .or_else(|| without_trigger_arguments(&chunk).map(|t| (t, Vec::new())));
            if let Some((tokens, found)) = retry {
                let mut parser =
                    Parser::new(&PostgreSqlDialect {}).with_tokens_with_locations(tokens);
                if let Ok(parsed) = read_statement(&mut parser) {
                    collations = found;
                    return parsed;
                }
            }
            ByWords::read(&chunk).map_or_else(|| Parsed::Unreadable(e.to_string()), Parsed::ByWords)
        });
        self.statements.push(Written {
            line,
            column,
            text,
            ignores: std::mem::take(&mut self.ignores),
            parsed,
            collations,
        });
        self.ended_on = Some(end.start.line);
        self.boundary = Boundary::default();
    }

    /// Records the meta-command just read. psql runs it at once, before the statement it may
    /// interrupt, and the `\g` family sends the statement gathered so far, as `;` does.
    fn end_meta(&mut self) {
        let meta = std::mem::take(&mut self.meta);
        let command = match meta.get(1).map(|t| &t.token) {
            Some(Token::Word(w)) => w.value.clone(),
            _ => String::new(),
        };
        if ["g", "gx", "gexec", "gset", "gdesc"].contains(&command.as_str()) {
            self.end_statement(meta[0].span);
        }
        // Comments before a meta-command are its own, unless a statement is under way.
        let ignores = if self.chunk.is_empty() {
            std::mem::take(&mut self.ignores)
        } else {
            Vec::new()
        };
        self.statements.push(Written {
            line: meta[0].span.start.line,
            column: meta[0].span.start.column,
            text: self.positions.rest_of_line(meta[0].span.start),
            ignores,
            parsed: Parsed::Meta(command),
            collations: Vec::new(),
        });
        self.ended_on = Some(meta[0].span.start.line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reindex_and_cluster_say_whether_they_reach_many_tables() {
        let read = |sql: &str| {
            let mut parser = Parser::new(&PostgreSqlDialect {})
                .try_with_sql(sql)
                .expect("tokens");
            match read_statement(&mut parser).expect("read") {
                Parsed::Reindex { concurrently, many } => (concurrently, many),
                Parsed::Cluster { every } => (false, every),
                _ => panic!("{sql}: not REINDEX or CLUSTER"),
            }
        };
        assert_eq!(read("REINDEX INDEX CONCURRENTLY i"), (true, false));
        assert_eq!(read("REINDEX (VERBOSE) TABLE t"), (false, false));
        assert_eq!(read("REINDEX SCHEMA CONCURRENTLY s"), (true, true));
        assert_eq!(read("REINDEX DATABASE d"), (false, true));
        assert_eq!(read("REINDEX SYSTEM"), (false, true));
        assert_eq!(read("REINDEX TABLE database"), (false, false));
        assert_eq!(read("CLUSTER"), (false, true));
        assert_eq!(read("CLUSTER VERBOSE"), (false, true));
        assert_eq!(read("CLUSTER (VERBOSE)"), (false, true));
        assert_eq!(read("CLUSTER t USING i"), (false, false));
        assert_eq!(read("CLUSTER VERBOSE t"), (false, false));
        assert_eq!(read("CLUSTER (VERBOSE) t"), (false, false));
    }
}
