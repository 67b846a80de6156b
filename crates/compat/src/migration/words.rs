//! Statements the parser does not know, read from their words so that they are classified
//! rather than reported unreadable; and statements read again without a clause the parser
//! lacks (`COLLATE` in a change of type, a trigger function's arguments).

use std::fmt;

use sqlparser::ast::{ObjectName, OperateFunctionArg, Statement};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Span, Token, TokenWithSpan};

use super::schema::ident_key;

/// Statements that PostgreSQL migrations (and `pg_dump`) use but the parser does not know,
/// recognised from their words so that they are classified rather than reported unreadable.
#[derive(Debug, PartialEq)]
pub(super) enum ByWords {
    /// `SET SCHEMA s`: versions that name the table by its old schema lose it.
    SetSchema {
        table: ObjectName,
        schema: ObjectName,
    },
    /// `SET TABLESPACE ts` of a table, materialized view or index: its files are copied under
    /// an ACCESS EXCLUSIVE lock (of an index, one that its table's queries wait for).
    SetTablespace {
        relation: ObjectName,
        kind: Relation,
    },
    /// `SET ACCESS METHOD am` of a table or materialized view: rewritten under an ACCESS
    /// EXCLUSIVE lock.
    SetAccessMethod {
        relation: ObjectName,
        kind: Relation,
    },
    /// `ALTER TABLE | INDEX | MATERIALIZED VIEW ALL IN TABLESPACE a ... SET TABLESPACE b`: each
    /// relation of the kind in `a` copied, all of them locked first (ACCESS EXCLUSIVE).
    MoveTablespace { kind: Relation, from: ObjectName },
    /// `ALTER [COLUMN] c SET STATISTICS | STORAGE | COMPRESSION ...`, `SET | RESET (options)`
    /// (`OPTIONS`) or `ADD GENERATED ... AS IDENTITY (...)`: the catalog only. `setting` ends
    /// in `ALWAYS` for `ADD GENERATED ALWAYS` and `SET GENERATED ALWAYS`.
    ColumnSetting {
        table: ObjectName,
        column: ObjectName,
        setting: String,
    },
    /// `ALTER SEQUENCE name ...`: every clause locks the sequence against `nextval` (SHARE ROW
    /// EXCLUSIVE, or ACCESS EXCLUSIVE), so the inserts that draw from it wait, and the lock
    /// waits for every open transaction that drew from it. `renamed` says how `RENAME TO` or
    /// `SET SCHEMA` names it anew, and the name it takes.
    Sequence {
        sequence: ObjectName,
        renamed: Option<(String, ObjectName)>,
    },
    /// `ALTER TYPE t ADD | DROP | ALTER | RENAME ATTRIBUTE ...`: a composite type's attributes,
    /// under an ACCESS EXCLUSIVE lock of the type, which reads of the tables using it wait for.
    TypeAttributes {
        ty: ObjectName,
        dropped: Vec<String>,
        renamed: Option<(String, String)>,
    },
    /// `ALTER TYPE t OWNER TO r`: the catalog only for an enum, but ACCESS EXCLUSIVE on a
    /// composite type, which reads of the tables using it wait for.
    TypeOwner { ty: ObjectName },
    /// `ALTER TYPE | DOMAIN | PROCEDURE | ROUTINE name ... RENAME TO | SET SCHEMA` in forms the
    /// parser lacks: a new name for an object a running version may name (`rule`, what
    /// changes, the name it takes and, for a routine, its arguments when they are written).
    Renamed {
        rule: &'static str,
        name: ObjectName,
        change: String,
        to: ObjectName,
        args: Option<Vec<OperateFunctionArg>>,
    },
    /// `ALTER PROCEDURE | ROUTINE name ...` with another clause: how it runs, for every version.
    RoutineSetting,
    /// `REASSIGN OWNED BY r TO s`: every object `r` owns changes owner, each table under an
    /// ACCESS EXCLUSIVE lock, and `r` keeps only the privileges granted to it.
    ReassignOwned,
    /// `DROP OWNED BY r`: drops every object `r` owns and revokes its privileges.
    DropOwned,
    /// `CREATE | DROP STATISTICS ...`: planner statistics, SHARE UPDATE EXCLUSIVE on the table.
    Statistics,
    /// `CREATE TABLE [IF NOT EXISTS] name (...)` with a clause the parser lacks (`LIKE t
    /// INCLUDING ALL`).
    CreateTable {
        table: ObjectName,
        if_not_exists: bool,
    },
    /// `VACUUM` with options the parser lacks (`VACUUM ANALYZE t`, `VACUUM (FULL) t`).
    Vacuum { full: bool, tables: Vec<ObjectName> },
    /// `DO [LANGUAGE l] $$ ... $$`: an anonymous code block, whose body is not analysed.
    Do,
    /// `ALTER <object> name OWNER TO role` for objects the parser does not alter (types,
    /// domains, statistics): the catalog only.
    Owner,
    /// `CREATE [UNIQUE] INDEX ... ON ONLY table ...`: on a partitioned table, an index of the
    /// parent alone (its partitions are indexed, each concurrently, and attached after).
    IndexOnOnly { table: ObjectName },
    /// `ALTER TABLE t ALTER CONSTRAINT c [NOT] DEFERRABLE ...`, `OF type` or `NOT OF`, and
    /// `ALTER RULE r ON t RENAME TO s`: the catalog only, under an ACCESS EXCLUSIVE lock.
    LockedCatalog { table: ObjectName },
    /// `ALTER TABLE t CLUSTER ON index` or `SET WITHOUT CLUSTER`: which index a later `CLUSTER`
    /// follows; the catalog only, under SHARE UPDATE EXCLUSIVE.
    ClusterMark,
    /// `CREATE PUBLICATION ...`, `ALTER PUBLICATION ...`: logical replication's catalog.
    Publication,
    /// `ALTER INDEX parent ATTACH PARTITION child`: the catalog only, but an ACCESS EXCLUSIVE
    /// lock on the partition's index, which its table's queries wait for.
    AttachIndex,
    /// `ALTER DOMAIN d ...`: `ADD ... CHECK` without `NOT VALID`, `VALIDATE CONSTRAINT` and
    /// `SET NOT NULL` check every column of the domain under a SHARE lock on its tables, which
    /// blocks their writes; the rest (`NOT VALID`, drops, defaults, renames) is the catalog only.
    Domain {
        domain: ObjectName,
        checks_columns: bool,
    },
    /// `ALTER INDEX i SET (...)` or `RESET (...)`: storage parameters, by name; the lock of
    /// the index depends on which (see `rules::blocking_option`).
    IndexSetting {
        index: ObjectName,
        options: Vec<String>,
    },
    /// `CREATE [OR REPLACE] FUNCTION | PROCEDURE name (args) ... AS '...'` in forms the parser
    /// lacks (procedures, `COST n`): its body is not read; its arguments are, as `DROP FUNCTION`
    /// reads them (`None` if they cannot be).
    Routine {
        name: ObjectName,
        args: Option<Vec<OperateFunctionArg>>,
        or_replace: bool,
    },
    /// Statements that lock no table in use and change nothing a running version reads: new
    /// catalog objects (`CREATE EVENT TRIGGER`, `CREATE CAST`, `IMPORT FOREIGN SCHEMA`), comments and labels (`COMMENT ON FUNCTION f(int) ...`,
    /// `SECURITY LABEL`), settings of a database or role (`ALTER DATABASE d SET ...`, `ALTER
    /// ROLE r SET ...`), an extension's members or schema, `SET CONSTRAINTS`, `ALTER
    /// STATISTICS`, `ALTER TABLESPACE`, `ANALYZE` with options, and `CHECKPOINT`.
    CatalogOnly,
    /// Statements about the whole server, which PostgreSQL refuses in a transaction block:
    /// `CREATE TABLESPACE`, `DROP TABLESPACE`, `ALTER SYSTEM`, `ALTER DATABASE ... SET
    /// TABLESPACE`. They lock no table in use.
    ServerWide { what: &'static str },
    /// `ALTER EXTENSION e UPDATE [TO v]`: runs the extension's upgrade scripts, which are not
    /// read.
    ExtensionUpdate,
    /// `ALTER TEXT SEARCH CONFIGURATION | DICTIONARY ...`: how full-text search reads text,
    /// for every version running.
    TextSearch,
    /// `CREATE MATERIALIZED VIEW ...` in forms the parser lacks (`pg_dump`'s `WITH NO DATA`): a
    /// new object, which nothing uses yet.
    CreateMaterializedView { view: ObjectName },
}

impl ByWords {
    /// Reads one of the forms, or gives up.
    pub(super) fn read(tokens: &[TokenWithSpan]) -> Option<Self> {
        let mut w = Words { tokens, at: 0 };
        if w.keyword("ALTER") {
            // A sequence's every clause, its owner's included, holds up `nextval`.
            if w.keyword("SEQUENCE") {
                return Self::sequence(w);
            }
            // A composite type's owner is changed under a lock of the type.
            if w.keyword("TYPE") {
                return Self::alter_type(w);
            }
            if changes_owner(tokens) {
                return Some(Self::Owner);
            }
            if w.keyword("PROCEDURE") || w.keyword("ROUTINE") {
                return Self::alter_routine(w);
            }
            if w.keyword("PUBLICATION") {
                return Some(Self::Publication);
            }
            if w.keyword("DOMAIN") {
                return Self::domain(w);
            }
            if w.keyword("SYSTEM") {
                return Some(Self::ServerWide {
                    what: "ALTER SYSTEM",
                });
            }
            if w.keyword("RULE") {
                w.name()?;
                if !w.keyword("ON") {
                    return None;
                }
                let table = w.name()?;
                let renamed = w.keyword("RENAME") && w.keyword("TO") && w.name().is_some();
                return (renamed && w.done()).then_some(Self::LockedCatalog { table });
            }
            if w.keyword("DATABASE") {
                w.name()?;
                if w.keyword("RESET") {
                    return Some(Self::CatalogOnly);
                }
                if !w.keyword("SET") {
                    return None;
                }
                if w.keyword("TABLESPACE") {
                    return Some(Self::ServerWide {
                        what: "ALTER DATABASE ... SET TABLESPACE",
                    });
                }
                return Some(Self::CatalogOnly);
            }
            if w.keyword("ROLE") || w.keyword("USER") {
                w.name()?;
                if w.keyword("IN") && !(w.keyword("DATABASE") && w.name().is_some()) {
                    return None;
                }
                return (w.keyword("SET") || w.keyword("RESET")).then_some(Self::CatalogOnly);
            }
            if w.keyword("EXTENSION") {
                w.name()?;
                if w.keyword("UPDATE") {
                    return Some(Self::ExtensionUpdate);
                }
                return (w.keyword("ADD")
                    || w.keyword("DROP")
                    || (w.keyword("SET") && w.keyword("SCHEMA")))
                .then_some(Self::CatalogOnly);
            }
            if w.keyword("STATISTICS") || w.keyword("TABLESPACE") {
                return Some(Self::CatalogOnly);
            }
            if w.keyword("EVENT") && w.keyword("TRIGGER") {
                return Some(Self::CatalogOnly);
            }
            if w.keyword("TEXT") && w.keyword("SEARCH") {
                return (w.keyword("CONFIGURATION") || w.keyword("DICTIONARY"))
                    .then_some(Self::TextSearch);
            }
            let at = w.at;
            let kind = if w.keyword("TABLE") {
                Some(Relation::Table)
            } else if w.keyword("INDEX") {
                Some(Relation::Index)
            } else if w.keyword("MATERIALIZED") && w.keyword("VIEW") {
                Some(Relation::MaterializedView)
            } else {
                None
            };
            if let Some(kind) = kind
                && w.keyword("ALL")
            {
                return Self::move_tablespace(w, kind);
            }
            w.at = at;
            if w.keyword("INDEX") {
                let _ = w.keyword("IF") && w.keyword("EXISTS");
                let index = w.name()?;
                if w.keyword("SET") {
                    if w.keyword("TABLESPACE") {
                        w.name()?;
                        return w.done().then_some(Self::SetTablespace {
                            relation: index,
                            kind: Relation::Index,
                        });
                    }
                    let options = w.options()?;
                    return w.done().then_some(Self::IndexSetting { index, options });
                }
                if w.keyword("RESET") {
                    let options = w.options()?;
                    return w.done().then_some(Self::IndexSetting { index, options });
                }
                return (w.keyword("ATTACH") && w.keyword("PARTITION") && w.name().is_some())
                    .then_some(Self::AttachIndex);
            }
            if w.keyword("TABLE") {
                return Self::alter_table(w, Relation::Table);
            }
            if w.keyword("MATERIALIZED") && w.keyword("VIEW") {
                return Self::alter_table(w, Relation::MaterializedView);
            }
            return None;
        }
        if w.keyword("CREATE") {
            let or_replace = w.keyword("OR") && w.keyword("REPLACE");
            // A routine whose body is a string (`AS $$ ... $$`), in forms the parser lacks
            // (procedures, `COST n`).
            if w.keyword("PROCEDURE") || w.keyword("FUNCTION") {
                let name = w.name()?;
                let args = w.routine_args();
                let quoted_body = tokens.windows(2).any(|t| {
                    matches!(&t[0].token, Token::Word(word) if word.value.eq_ignore_ascii_case("AS"))
                        && matches!(
                            t[1].token,
                            Token::DollarQuotedString(_) | Token::SingleQuotedString(_)
                        )
                });
                return quoted_body.then_some(Self::Routine {
                    name,
                    args,
                    or_replace,
                });
            }
            if w.keyword("TABLESPACE") {
                return Some(Self::ServerWide {
                    what: "CREATE TABLESPACE",
                });
            }
            // Roles in forms the parser lacks (`CREATE USER u WITH LOGIN REPLICATION`).
            if w.keyword("ROLE") || w.keyword("USER") || w.keyword("GROUP") {
                return w.name().map(|_| Self::CatalogOnly);
            }
            if w.keyword("CAST") || (w.keyword("EVENT") && w.keyword("TRIGGER")) {
                return Some(Self::CatalogOnly);
            }
            if w.keyword("STATISTICS") {
                return Some(Self::Statistics);
            }
            if w.keyword("PUBLICATION") {
                return Some(Self::Publication);
            }
            if w.keyword("MATERIALIZED") && w.keyword("VIEW") {
                let _ = w.keyword("IF") && w.keyword("NOT") && w.keyword("EXISTS");
                return Some(Self::CreateMaterializedView { view: w.name()? });
            }
            let _ = w.keyword("UNIQUE");
            if w.keyword("INDEX") {
                return Self::index_on_only(w);
            }
            return Self::create_table(w);
        }
        if w.keyword("VACUUM") {
            return Self::vacuum(w);
        }
        if w.keyword("ANALYZE") || w.keyword("ANALYSE") {
            // `ANALYZE [VERBOSE | (options)] [table [(columns)], ...]`: SHARE UPDATE EXCLUSIVE.
            return Self::vacuum(w).map(|_| Self::CatalogOnly);
        }
        if w.keyword("REASSIGN") {
            return (w.keyword("OWNED") && w.keyword("BY")).then_some(Self::ReassignOwned);
        }
        if w.keyword("DROP") {
            if w.keyword("OWNED") {
                return w.keyword("BY").then_some(Self::DropOwned);
            }
            if w.keyword("TABLESPACE") {
                return Some(Self::ServerWide {
                    what: "DROP TABLESPACE",
                });
            }
            if w.keyword("PUBLICATION") {
                return Some(Self::Publication);
            }
            if w.keyword("STATISTICS") {
                return Some(Self::Statistics);
            }
            if w.keyword("EVENT") && w.keyword("TRIGGER") {
                return Some(Self::CatalogOnly);
            }
        }
        w.at = 0;
        if (w.keyword("COMMENT") && w.keyword("ON"))
            && matches!(
                tokens.iter().rev().map(|t| &t.token).filter(|t| **t != Token::EOF).nth(1),
                Some(Token::Word(is)) if is.value.eq_ignore_ascii_case("IS")
            )
        {
            return Some(Self::CatalogOnly);
        }
        w.at = 0;
        if w.keyword("SET") && (w.keyword("CONSTRAINTS") || w.keyword("ROLE")) {
            return Some(Self::CatalogOnly);
        }
        w.at = 0;
        if (w.keyword("SECURITY") && w.keyword("LABEL"))
            || (w.keyword("IMPORT") && w.keyword("FOREIGN") && w.keyword("SCHEMA"))
            || (w.keyword("CHECKPOINT") && w.done())
        {
            return Some(Self::CatalogOnly);
        }
        if w.keyword("DO") {
            let _ = w.keyword("LANGUAGE") && w.name().is_some();
            if !matches!(
                w.next(),
                Some(Token::DollarQuotedString(_) | Token::SingleQuotedString(_))
            ) {
                return None;
            }
            let _ = w.keyword("LANGUAGE") && w.name().is_some();
            return w.done().then_some(Self::Do);
        }
        None
    }

    /// After `ALTER DOMAIN`: a name and one of its clauses, of which three check the columns.
    fn domain(mut w: Words<'_>) -> Option<Self> {
        let domain = w.name()?;
        if let Some((change, to)) = w.new_name(&domain, "domain") {
            return Some(Self::Renamed {
                rule: "renaming-type",
                name: domain,
                change,
                to,
                args: None,
            });
        }
        let checks_columns = if w.keyword("ADD") {
            let rest: Vec<&Token> = w.tokens[w.at..]
                .iter()
                .map(|t| &t.token)
                .filter(|t| **t != Token::EOF)
                .collect();
            let word =
                |t: &Token, k: &str| matches!(t, Token::Word(x) if x.value.eq_ignore_ascii_case(k));
            !matches!(rest.as_slice(), [.., not, valid] if word(not, "NOT") && word(valid, "VALID"))
        } else {
            w.keyword("VALIDATE") || (w.keyword("SET") && w.keyword("NOT"))
        };
        Some(Self::Domain {
            domain,
            checks_columns,
        })
    }

    /// After `ALTER SEQUENCE`: a name and one of its clauses.
    fn sequence(mut w: Words<'_>) -> Option<Self> {
        let _ = w.keyword("IF") && w.keyword("EXISTS");
        let sequence = w.name()?;
        if let Some(renamed) = w.new_name(&sequence, "sequence") {
            return Some(Self::Sequence {
                sequence,
                renamed: Some(renamed),
            });
        }
        const CLAUSES: [&str; 12] = [
            "AS",
            "INCREMENT",
            "MINVALUE",
            "MAXVALUE",
            "NO",
            "START",
            "RESTART",
            "CACHE",
            "CYCLE",
            "OWNED",
            "OWNER",
            "SET",
        ];
        CLAUSES
            .iter()
            .any(|c| w.keyword(c))
            .then_some(Self::Sequence {
                sequence,
                renamed: None,
            })
    }

    /// After `ALTER TABLE | INDEX | MATERIALIZED VIEW ALL`: `IN TABLESPACE a [OWNED BY r, ...]
    /// SET TABLESPACE b [NOWAIT]`.
    fn move_tablespace(mut w: Words<'_>, kind: Relation) -> Option<Self> {
        if !(w.keyword("IN") && w.keyword("TABLESPACE")) {
            return None;
        }
        let from = w.name()?;
        if w.keyword("OWNED") {
            if !w.keyword("BY") {
                return None;
            }
            w.name()?;
            while w.next_is(&Token::Comma) {
                w.name()?;
            }
        }
        if !(w.keyword("SET") && w.keyword("TABLESPACE")) {
            return None;
        }
        w.name()?;
        let _ = w.keyword("NOWAIT");
        w.done().then_some(Self::MoveTablespace { kind, from })
    }

    /// After `ALTER TYPE`, the forms the parser lacks: `OWNER TO`, `SET SCHEMA`, and a
    /// composite type's attribute actions, separated by commas.
    fn alter_type(mut w: Words<'_>) -> Option<Self> {
        let ty = w.name()?;
        if w.keyword("OWNER") {
            return (w.keyword("TO") && w.name().is_some() && w.done())
                .then_some(Self::TypeOwner { ty });
        }
        if let Some((change, to)) = w.new_name(&ty, "type") {
            return Some(Self::Renamed {
                rule: "renaming-type",
                name: ty,
                change,
                to,
                args: None,
            });
        }
        if w.keyword("RENAME") {
            if !w.keyword("ATTRIBUTE") {
                return None;
            }
            let from = w.name()?.to_string();
            if !w.keyword("TO") {
                return None;
            }
            let to = w.name()?.to_string();
            let _ = w.keyword("CASCADE") || w.keyword("RESTRICT");
            return w.done().then_some(Self::TypeAttributes {
                ty,
                dropped: Vec::new(),
                renamed: Some((from, to)),
            });
        }
        let mut dropped = Vec::new();
        loop {
            if w.keyword("DROP") {
                if !w.keyword("ATTRIBUTE") {
                    return None;
                }
                let _ = w.keyword("IF") && w.keyword("EXISTS");
                dropped.push(w.name()?.to_string());
            } else if !((w.keyword("ADD") || w.keyword("ALTER")) && w.keyword("ATTRIBUTE")) {
                return None;
            }
            // The rest of the action: a type, `SET DATA TYPE ...`, `COLLATE`, `CASCADE`.
            let mut depth = 0usize;
            while let Some(t) = w.peek() {
                match t {
                    Token::Comma if depth == 0 => break,
                    Token::LParen => depth += 1,
                    Token::RParen => depth = depth.saturating_sub(1),
                    _ => {}
                }
                w.at += 1;
            }
            if !w.next_is(&Token::Comma) {
                return Some(Self::TypeAttributes {
                    ty,
                    dropped,
                    renamed: None,
                });
            }
        }
    }

    /// After `ALTER PROCEDURE | ROUTINE`: a name, its arguments, and a rename or a setting.
    fn alter_routine(mut w: Words<'_>) -> Option<Self> {
        let name = w.name()?;
        let args = w.routine_args();
        if args.is_none() && w.next_is(&Token::LParen) && !w.skip_to_close() {
            return None;
        }
        if let Some((change, to)) = w.new_name(&name, "procedure") {
            return Some(Self::Renamed {
                rule: "renaming-function",
                name,
                change,
                to,
                args,
            });
        }
        (!w.done()).then_some(Self::RoutineSetting)
    }

    /// After `CREATE [UNIQUE] INDEX`: `[IF NOT EXISTS] [name] ON ONLY table`.
    fn index_on_only(mut w: Words<'_>) -> Option<Self> {
        let _ = w.keyword("IF") && w.keyword("NOT") && w.keyword("EXISTS");
        if !w.keyword("ON") {
            w.name()?;
            if !w.keyword("ON") {
                return None;
            }
        }
        if !w.keyword("ONLY") {
            return None;
        }
        Some(Self::IndexOnOnly { table: w.name()? })
    }

    /// After `CREATE`: `[TEMP | UNLOGGED ...] TABLE [IF NOT EXISTS] name (`.
    fn create_table(mut w: Words<'_>) -> Option<Self> {
        for k in ["GLOBAL", "LOCAL", "TEMPORARY", "TEMP", "UNLOGGED"] {
            let _ = w.keyword(k);
        }
        if !w.keyword("TABLE") {
            return None;
        }
        let if_not_exists = w.keyword("IF") && w.keyword("NOT") && w.keyword("EXISTS");
        let table = w.name()?;
        w.next_is(&Token::LParen).then_some(Self::CreateTable {
            table,
            if_not_exists,
        })
    }

    /// After `VACUUM`: `FULL` among its words, or `FULL` (not `FULL false | off | 0`) among
    /// its parenthesised options.
    fn vacuum(mut w: Words<'_>) -> Option<Self> {
        let mut full = false;
        if w.next_is(&Token::LParen) {
            loop {
                let option = w.name()?;
                let value = match w.peek() {
                    Some(Token::Word(v)) => Some(v.value.to_ascii_lowercase()),
                    Some(Token::Number(n, _)) => Some(n.clone()),
                    _ => None,
                };
                if value.is_some() {
                    w.next();
                }
                let off = matches!(value.as_deref(), Some("false" | "off" | "0"));
                full |= option.to_string().eq_ignore_ascii_case("FULL") && !off;
                if w.next_is(&Token::RParen) {
                    break;
                }
                if !w.next_is(&Token::Comma) {
                    return None;
                }
            }
        } else {
            full = w.keyword("FULL");
            for k in ["FREEZE", "VERBOSE", "ANALYZE", "ANALYSE"] {
                let _ = w.keyword(k);
            }
        }
        // The tables, each with its columns for ANALYZE, or none for the whole database.
        let mut tables = Vec::new();
        while !w.done() {
            tables.push(w.name()?);
            if w.next_is(&Token::LParen) {
                while !w.next_is(&Token::RParen) {
                    w.name()?;
                    let _ = w.next_is(&Token::Comma);
                }
            }
            if !w.done() && !w.next_is(&Token::Comma) {
                return None;
            }
        }
        Some(Self::Vacuum { full, tables })
    }

    /// After `ALTER TABLE` or `ALTER MATERIALIZED VIEW`: `[IF EXISTS] [ONLY] name` and one of
    /// their forms.
    fn alter_table(mut w: Words<'_>, kind: Relation) -> Option<Self> {
        let _ = w.keyword("IF") && w.keyword("EXISTS");
        let _ = w.keyword("ONLY");
        let table = w.name()?;
        let form = if w.keyword("SET") {
            if w.keyword("SCHEMA") {
                Self::SetSchema {
                    table,
                    schema: w.name()?,
                }
            } else if w.keyword("TABLESPACE") {
                w.name()?;
                Self::SetTablespace {
                    relation: table,
                    kind,
                }
            } else if w.keyword("ACCESS") && w.keyword("METHOD") {
                w.name()?;
                Self::SetAccessMethod {
                    relation: table,
                    kind,
                }
            } else if w.keyword("WITHOUT") && w.keyword("CLUSTER") {
                Self::ClusterMark
            } else {
                return None;
            }
        } else if kind == Relation::Table && w.keyword("OF") {
            w.name()?;
            Self::LockedCatalog { table }
        } else if kind == Relation::Table && w.keyword("NOT") {
            if !w.keyword("OF") {
                return None;
            }
            Self::LockedCatalog { table }
        } else if w.keyword("CLUSTER") {
            if !w.keyword("ON") {
                return None;
            }
            w.name()?;
            Self::ClusterMark
        } else if w.keyword("ALTER") {
            if w.keyword("CONSTRAINT") {
                w.name()?;
                const ATTRIBUTES: [&str; 6] = [
                    "NOT",
                    "DEFERRABLE",
                    "INITIALLY",
                    "DEFERRED",
                    "IMMEDIATE",
                    "ENFORCED",
                ];
                let mut any = false;
                while ATTRIBUTES.iter().any(|a| w.keyword(a)) {
                    any = true;
                }
                if !any {
                    return None;
                }
                Self::LockedCatalog { table }
            } else {
                return Self::alter_column(table, w);
            }
        } else {
            return None;
        };
        w.done().then_some(form)
    }

    /// After `ALTER TABLE t ALTER`: `[COLUMN] c` and a setting of the catalog only.
    fn alter_column(table: ObjectName, mut w: Words<'_>) -> Option<Self> {
        let _ = w.keyword("COLUMN");
        let column = w.name()?;
        if w.keyword("ADD") {
            // `ADD GENERATED ... AS IDENTITY (sequence options)`, as `pg_dump` writes it.
            let generated = w.keyword("GENERATED");
            let always = generated && w.keyword("ALWAYS");
            let identity = generated
                && (always || (w.keyword("BY") && w.keyword("DEFAULT")))
                && w.keyword("AS")
                && w.keyword("IDENTITY");
            if !identity || (w.next_is(&Token::LParen) && !w.skip_to_close()) {
                return None;
            }
            return w.done().then(|| Self::ColumnSetting {
                table,
                column,
                setting: if always {
                    "IDENTITY ALWAYS"
                } else {
                    "IDENTITY"
                }
                .to_owned(),
            });
        }
        // An identity or generated column's settings: `DROP EXPRESSION`, `DROP IDENTITY`,
        // `RESTART [WITH n]`, `SET GENERATED ALWAYS | BY DEFAULT`.
        let setting = if w.keyword("DROP") {
            let s = ["EXPRESSION", "IDENTITY"]
                .into_iter()
                .find(|s| w.keyword(s))?;
            let _ = w.keyword("IF") && w.keyword("EXISTS");
            Some(s)
        } else if w.keyword("RESTART") {
            let _ = w.keyword("WITH");
            let _ = matches!(w.peek(), Some(Token::Number(..))) && w.next().is_some();
            Some("RESTART")
        } else {
            None
        };
        if let Some(setting) = setting {
            return w.done().then(|| Self::ColumnSetting {
                table,
                column,
                setting: setting.to_owned(),
            });
        }
        if w.keyword("RESET") {
            return Self::column_options(table, column, w);
        }
        if !w.keyword("SET") {
            return None;
        }
        if w.keyword("GENERATED") {
            let always = w.keyword("ALWAYS");
            let generated = always || (w.keyword("BY") && w.keyword("DEFAULT"));
            return (generated && w.done()).then(|| Self::ColumnSetting {
                table,
                column,
                setting: if always {
                    "GENERATED ALWAYS"
                } else {
                    "GENERATED"
                }
                .to_owned(),
            });
        }
        if w.peek() == Some(&Token::LParen) {
            return Self::column_options(table, column, w);
        }
        let setting = ["STATISTICS", "STORAGE", "COMPRESSION"]
            .into_iter()
            .find(|s| w.keyword(s))?;
        // Its value: one word or number, possibly negative.
        let _ = w.next_is(&Token::Minus);
        match w.next()? {
            Token::Word(_) | Token::Number(..) => {}
            _ => return None,
        }
        w.done().then(|| Self::ColumnSetting {
            table,
            column,
            setting: setting.to_owned(),
        })
    }

    /// After `ALTER TABLE t ALTER [COLUMN] c SET | RESET`: the column's options
    /// (`n_distinct`, `n_distinct_inherited`), which only the planner reads.
    fn column_options(table: ObjectName, column: ObjectName, mut w: Words<'_>) -> Option<Self> {
        w.options()?;
        w.done().then(|| Self::ColumnSetting {
            table,
            column,
            setting: "OPTIONS".to_owned(),
        })
    }
}

/// What kind of relation a statement alters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Relation {
    Table,
    MaterializedView,
    Index,
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Relation::Table => "table",
            Relation::MaterializedView => "materialized view",
            Relation::Index => "index",
        })
    }
}

/// Whether an `ALTER` statement ends `OWNER TO role`.
fn changes_owner(tokens: &[TokenWithSpan]) -> bool {
    let body: Vec<&Token> = tokens
        .iter()
        .map(|t| &t.token)
        .filter(|t| **t != Token::EOF)
        .collect();
    let is = |t: &Token, k: &str| matches!(t, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(k));
    matches!(
        body.as_slice(),
        [_, _, .., owner, to, Token::Word(_)] if is(owner, "OWNER") && is(to, "TO")
    )
}

/// A cursor over a statement's tokens (its end marker excluded).
pub(super) struct Words<'a> {
    tokens: &'a [TokenWithSpan],
    at: usize,
}

impl<'a> Words<'a> {
    /// A cursor at the first of `tokens`.
    pub(super) fn new(tokens: &'a [TokenWithSpan]) -> Self {
        Words { tokens, at: 0 }
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens
            .get(self.at)
            .map(|t| &t.token)
            .filter(|t| **t != Token::EOF)
    }

    fn next(&mut self) -> Option<&Token> {
        let t = self.tokens.get(self.at).map(|t| &t.token)?;
        self.at += 1;
        (*t != Token::EOF).then_some(t)
    }

    fn next_is(&mut self, token: &Token) -> bool {
        let hit = self.peek() == Some(token);
        self.at += usize::from(hit);
        hit
    }

    /// Takes the unquoted keyword `k` if it comes next.
    pub(super) fn keyword(&mut self, k: &str) -> bool {
        let hit = matches!(self.peek(), Some(Token::Word(w))
            if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(k));
        self.at += usize::from(hit);
        hit
    }

    /// A possibly qualified name, as written (`"Sales".orders`).
    fn name(&mut self) -> Option<ObjectName> {
        let mut parts = Vec::new();
        loop {
            match self.next()? {
                Token::Word(w) => parts.push(w.to_ident(Span::empty())),
                _ => return None,
            }
            if !self.next_is(&Token::Period) {
                return Some(ObjectName::from(parts));
            }
        }
    }

    /// Passes the rest of a parenthesised list whose `(` was taken, through its `)`.
    fn skip_to_close(&mut self) -> bool {
        let mut depth = 1;
        while let Some(t) = self.next() {
            match t {
                Token::LParen => depth += 1,
                Token::RParen if depth == 1 => return true,
                Token::RParen => depth -= 1,
                _ => {}
            }
        }
        false
    }

    fn done(&self) -> bool {
        self.peek().is_none()
    }

    /// A routine's parenthesised arguments, read by the parser as those of a `DROP FUNCTION`
    /// (modes, names, types, defaults); `None`, with nothing taken, when there are none or the
    /// parser cannot read them.
    fn routine_args(&mut self) -> Option<Vec<OperateFunctionArg>> {
        let start = self.at;
        if !(self.next_is(&Token::LParen) && self.skip_to_close()) {
            self.at = start;
            return None;
        }
        let written: Vec<String> = self.tokens[start..self.at]
            .iter()
            .map(|t| t.token.to_string())
            .collect();
        let sql = format!("DROP FUNCTION f {}", written.join(" "));
        let parsed = Parser::parse_sql(&PostgreSqlDialect {}, &sql).unwrap_or_default();
        let args = match parsed.as_slice() {
            [Statement::DropFunction(drop)] => drop.func_desc.first().and_then(|d| d.args.clone()),
            _ => None,
        };
        if args.is_none() {
            self.at = start;
        }
        args
    }

    /// `RENAME TO name` or `SET SCHEMA schema`, ending the statement: how `old` (a `kind`) is
    /// named anew, and its new name. A new name stays in the old one's schema, as PostgreSQL
    /// keeps it; a new schema keeps the name.
    fn new_name(&mut self, old: &ObjectName, kind: &str) -> Option<(String, ObjectName)> {
        let at = self.at;
        let change = if self.keyword("RENAME") && self.keyword("TO") {
            self.name().map(|n| {
                let mut to = old.clone();
                match (to.0.last_mut(), n.0.as_slice()) {
                    (Some(last), [part]) => *last = part.clone(),
                    _ => to = n.clone(),
                }
                (format!("renaming {kind} {old} to {n}"), to)
            })
        } else {
            self.at = at;
            (self.keyword("SET") && self.keyword("SCHEMA"))
                .then(|| self.name())
                .flatten()
                .map(|s| {
                    let mut to = s.clone();
                    to.0.extend(old.0.last().cloned());
                    (format!("moving {kind} {old} to schema {s}"), to)
                })
        };
        if change.is_none() || !self.done() {
            self.at = at;
            return None;
        }
        change
    }

    /// A parenthesised list of storage parameters, `(name [= value], ...)` (`RESET` lists
    /// names only): their names in lower case, `toast.` kept.
    fn options(&mut self) -> Option<Vec<String>> {
        if !self.next_is(&Token::LParen) {
            return None;
        }
        let mut names = Vec::new();
        loop {
            let name = self.name()?;
            names.push(name.to_string().to_ascii_lowercase());
            if self.next_is(&Token::Eq) {
                // The value: a word, a number or a string, possibly signed.
                let _ = self.next_is(&Token::Minus) || self.next_is(&Token::Plus);
                match self.next()? {
                    Token::Word(_) | Token::Number(..) | Token::SingleQuotedString(_) => {}
                    _ => return None,
                }
            }
            if self.next_is(&Token::RParen) {
                return Some(names);
            }
            if !self.next_is(&Token::Comma) {
                return None;
            }
        }
    }
}

/// Columns (as keys) whose new type carries `COLLATE`, with the collation as written.
pub(super) type Collations = Vec<(String, String)>;

/// An `ALTER TABLE` whose `ALTER [COLUMN] c [SET DATA] TYPE t COLLATE x` clauses the parser
/// cannot read: its tokens without the `COLLATE x`, and each clause's column (as a key) and
/// collation; `None` when it has no such clause.
pub(super) fn without_collations(
    tokens: &[TokenWithSpan],
) -> Option<(Vec<TokenWithSpan>, Collations)> {
    let word = |t: &TokenWithSpan, k: &str| matches!(&t.token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(k));
    if !(tokens.len() > 2 && word(&tokens[0], "ALTER") && word(&tokens[1], "TABLE")) {
        return None;
    }
    let (mut kept, mut found) = (Vec::with_capacity(tokens.len()), Vec::new());
    let (mut depth, mut column) = (0usize, None);
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        match &t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth == 0 && word(t, "TYPE") {
            // The column is the word before `TYPE`, or before `SET DATA TYPE`.
            let before: Vec<&TokenWithSpan> = kept.iter().rev().take(3).collect();
            let at = if before.len() == 3 && word(before[0], "DATA") && word(before[1], "SET") {
                before.get(2)
            } else {
                before.first()
            };
            column = at.and_then(|c| match &c.token {
                Token::Word(w) => Some(ident_key(&w.to_ident(Span::empty()))),
                _ => None,
            });
        }
        if depth == 0 && word(t, "COLLATE") {
            let name = column.take()?;
            let mut collation = String::new();
            i += 1;
            while let Some(Token::Word(w)) = tokens.get(i).map(|t| &t.token) {
                collation.push_str(&w.to_string());
                i += 1;
                if tokens.get(i).map(|t| &t.token) != Some(&Token::Period) {
                    break;
                }
                collation.push('.');
                i += 1;
            }
            if collation.is_empty() {
                return None;
            }
            found.push((name, collation));
            continue;
        }
        kept.push(t.clone());
        i += 1;
    }
    (!found.is_empty()).then_some((kept, found))
}

/// A `CREATE TRIGGER` whose function is given arguments (`EXECUTE FUNCTION f('a', 'b')`),
/// which the parser lacks: its tokens without the arguments, which the analysis does not
/// need; `None` when it has none.
pub(super) fn without_trigger_arguments(tokens: &[TokenWithSpan]) -> Option<Vec<TokenWithSpan>> {
    let word = |t: &TokenWithSpan, k: &str| matches!(&t.token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(k));
    let trigger = tokens.iter().take(5).position(|t| word(t, "TRIGGER"))?;
    if !word(&tokens[0], "CREATE") {
        return None;
    }
    let execute = (trigger..tokens.len().saturating_sub(1)).find(|&i| {
        word(&tokens[i], "EXECUTE")
            && (word(&tokens[i + 1], "FUNCTION") || word(&tokens[i + 1], "PROCEDURE"))
    })?;
    let open = (execute..tokens.len()).find(|&i| tokens[i].token == Token::LParen)?;
    let mut depth = 0;
    let close = (open..tokens.len()).find(|&i| {
        match tokens[i].token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            _ => {}
        }
        depth == 0
    })?;
    if close == open + 1 {
        return None;
    }
    Some([&tokens[..=open], &tokens[close..]].concat())
}

#[cfg(test)]
mod tests {
    use sqlparser::ast::{ArgMode, DataType};
    use sqlparser::tokenizer::Tokenizer;

    use super::*;

    /// A name as the parser reads it.
    fn n(name: &str) -> ObjectName {
        Parser::new(&PostgreSqlDialect {})
            .try_with_sql(name)
            .and_then(|mut p| p.parse_object_name(false))
            .expect("a name")
    }

    fn words(sql: &str) -> Option<ByWords> {
        let tokens: Vec<TokenWithSpan> = Tokenizer::new(&PostgreSqlDialect {}, sql)
            .tokenize_with_location()
            .expect("tokens")
            .into_iter()
            .filter(|t| !matches!(t.token, Token::Whitespace(_)))
            .collect();
        ByWords::read(&tokens)
    }

    #[test]
    fn forms_the_parser_lacks_are_read_from_their_words() {
        for (sql, form) in [
            (
                "CREATE UNIQUE INDEX IF NOT EXISTS pc ON ONLY app.p (c)",
                Some(ByWords::IndexOnOnly { table: n("app.p") }),
            ),
            (
                "CREATE INDEX ON ONLY p USING btree (c)",
                Some(ByWords::IndexOnOnly { table: n("p") }),
            ),
            ("CREATE INDEX pc ON p (c) WITH (x = 1) x", None),
            (
                "ALTER INDEX IF EXISTS pc ATTACH PARTITION p1c",
                Some(ByWords::AttachIndex),
            ),
            (
                "ALTER RULE t_r ON app.t RENAME TO t_r2",
                Some(ByWords::LockedCatalog { table: n("app.t") }),
            ),
            ("ALTER RULE t_r ON t DISABLE", None),
            (
                "DROP STATISTICS IF EXISTS st_c, st_d CASCADE",
                Some(ByWords::Statistics),
            ),
            (
                "ALTER TABLE t ALTER CONSTRAINT fk NOT DEFERRABLE INITIALLY IMMEDIATE",
                Some(ByWords::LockedCatalog { table: n("t") }),
            ),
            ("ALTER TABLE t ALTER CONSTRAINT fk", None),
            (
                "ALTER SYSTEM SET work_mem = '1MB'",
                Some(ByWords::ServerWide {
                    what: "ALTER SYSTEM",
                }),
            ),
            (
                "CREATE TABLESPACE ts OWNER r LOCATION '/x'",
                Some(ByWords::ServerWide {
                    what: "CREATE TABLESPACE",
                }),
            ),
            (
                "DROP TABLESPACE IF EXISTS ts",
                Some(ByWords::ServerWide {
                    what: "DROP TABLESPACE",
                }),
            ),
            (
                "ALTER DATABASE d SET TABLESPACE x",
                Some(ByWords::ServerWide {
                    what: "ALTER DATABASE ... SET TABLESPACE",
                }),
            ),
            (
                "ALTER DATABASE d SET timezone TO 'UTC'",
                Some(ByWords::CatalogOnly),
            ),
            ("ALTER DATABASE d RESET ALL", Some(ByWords::CatalogOnly)),
            ("ALTER DATABASE d RENAME TO e", None),
            (
                "ALTER ROLE r IN DATABASE d SET search_path = a, b",
                Some(ByWords::CatalogOnly),
            ),
            ("ALTER USER r RESET work_mem", Some(ByWords::CatalogOnly)),
            ("ALTER ROLE r IN SCHEMA s SET x = 1", None),
            (
                "ALTER EXTENSION e UPDATE TO '2.0'",
                Some(ByWords::ExtensionUpdate),
            ),
            (
                "ALTER EXTENSION e ADD FUNCTION f(int)",
                Some(ByWords::CatalogOnly),
            ),
            ("ALTER EXTENSION e SET SCHEMA s", Some(ByWords::CatalogOnly)),
            ("ALTER EXTENSION e RENAME TO f", None),
            (
                "COMMENT ON FUNCTION f(int, text) IS 'x'",
                Some(ByWords::CatalogOnly),
            ),
            (
                "COMMENT ON AGGREGATE a(int) IS NULL",
                Some(ByWords::CatalogOnly),
            ),
            ("COMMENT ON FUNCTION f(int)", None),
            ("SET CONSTRAINTS ALL DEFERRED", Some(ByWords::CatalogOnly)),
            ("ANALYZE VERBOSE t", Some(ByWords::CatalogOnly)),
            (
                "ANALYZE (VERBOSE, SKIP_LOCKED) t (a, b), u",
                Some(ByWords::CatalogOnly),
            ),
            ("ANALYZE t u", None),
            (
                "CREATE FUNCTION f(a bigint) RETURNS t LANGUAGE plpgsql STABLE COST 1 \
                 PARALLEL SAFE AS $$ BEGIN RETURN NULL; END $$",
                Some(ByWords::Routine {
                    name: n("f"),
                    args: Some(vec![OperateFunctionArg::with_name(
                        "a",
                        DataType::BigInt(None),
                    )]),
                    or_replace: false,
                }),
            ),
            (
                "CREATE OR REPLACE PROCEDURE app.p() LANGUAGE sql AS 'SELECT 1'",
                Some(ByWords::Routine {
                    name: n("app.p"),
                    args: Some(vec![]),
                    or_replace: true,
                }),
            ),
            ("CREATE FUNCTION f() RETURNS int COST 1", None),
            (
                "DROP PUBLICATION IF EXISTS realtime",
                Some(ByWords::Publication),
            ),
            (
                "DROP EVENT TRIGGER IF EXISTS guard CASCADE",
                Some(ByWords::CatalogOnly),
            ),
            (
                "ALTER EVENT TRIGGER guard OWNER TO admin",
                Some(ByWords::Owner),
            ),
            (
                "ALTER EVENT TRIGGER guard DISABLE",
                Some(ByWords::CatalogOnly),
            ),
            (
                "create user replicator with login replication",
                Some(ByWords::CatalogOnly),
            ),
            (
                "CREATE USER authenticator NOINHERIT",
                Some(ByWords::CatalogOnly),
            ),
            ("SET ROLE TO app", Some(ByWords::CatalogOnly)),
            (
                "ALTER TEXT SEARCH CONFIGURATION fi ALTER MAPPING FOR word WITH unaccent, simple",
                Some(ByWords::TextSearch),
            ),
            ("ALTER TEXT SEARCH PARSER p RENAME TO q", None),
            (
                "ALTER TABLE t OF pair",
                Some(ByWords::LockedCatalog { table: n("t") }),
            ),
            (
                "ALTER TABLE ONLY t NOT OF",
                Some(ByWords::LockedCatalog { table: n("t") }),
            ),
            (
                "ALTER TABLE t ALTER COLUMN c SET (n_distinct = -0.5, n_distinct_inherited = 1)",
                Some(ByWords::ColumnSetting {
                    table: n("t"),
                    column: n("c"),
                    setting: "OPTIONS".into(),
                }),
            ),
            (
                "ALTER TABLE t ALTER c RESET (n_distinct)",
                Some(ByWords::ColumnSetting {
                    table: n("t"),
                    column: n("c"),
                    setting: "OPTIONS".into(),
                }),
            ),
            (
                "ALTER INDEX IF EXISTS app.i SET (FillFactor = 70, fastupdate = off, x = 'y')",
                Some(ByWords::IndexSetting {
                    index: n("app.i"),
                    options: vec!["fillfactor".into(), "fastupdate".into(), "x".into()],
                }),
            ),
            (
                "ALTER INDEX i RESET (toast.autovacuum_enabled)",
                Some(ByWords::IndexSetting {
                    index: n("i"),
                    options: vec!["toast.autovacuum_enabled".into()],
                }),
            ),
            (
                "ALTER INDEX i SET TABLESPACE fast",
                Some(ByWords::SetTablespace {
                    relation: n("i"),
                    kind: Relation::Index,
                }),
            ),
            (
                "ALTER MATERIALIZED VIEW IF EXISTS v SET TABLESPACE fast",
                Some(ByWords::SetTablespace {
                    relation: n("v"),
                    kind: Relation::MaterializedView,
                }),
            ),
            (
                "ALTER TABLE ONLY t SET ACCESS METHOD heap2",
                Some(ByWords::SetAccessMethod {
                    relation: n("t"),
                    kind: Relation::Table,
                }),
            ),
            (
                "ALTER MATERIALIZED VIEW v CLUSTER ON v_i",
                Some(ByWords::ClusterMark),
            ),
            ("ALTER TABLE t CLUSTER ON t_c", Some(ByWords::ClusterMark)),
            (
                "ALTER TABLE t SET WITHOUT CLUSTER",
                Some(ByWords::ClusterMark),
            ),
            (
                "CREATE PUBLICATION pub FOR TABLE t",
                Some(ByWords::Publication),
            ),
            (
                "ALTER PUBLICATION pub ADD TABLE u",
                Some(ByWords::Publication),
            ),
        ] {
            assert_eq!(words(sql), form, "{sql}");
        }
        assert_eq!(
            words(r#"ALTER TABLE IF EXISTS "Sales".orders SET SCHEMA archive"#),
            Some(ByWords::SetSchema {
                table: n(r#""Sales".orders"#),
                schema: n("archive")
            })
        );
        assert_eq!(
            words("alter table t alter c set statistics -1"),
            Some(ByWords::ColumnSetting {
                table: n("t"),
                column: n("c"),
                setting: "STATISTICS".into()
            })
        );
        assert_eq!(
            words("vacuum (verbose, full on) public.t, u (a, b)"),
            Some(ByWords::Vacuum {
                full: true,
                tables: vec![n("public.t"), n("u")]
            })
        );
        assert_eq!(
            words("CREATE UNLOGGED TABLE \"C\" (LIKE t INCLUDING ALL)"),
            Some(ByWords::CreateTable {
                table: n("\"C\""),
                if_not_exists: false
            })
        );
        assert_eq!(
            words("DO 'BEGIN NULL; END' LANGUAGE plpgsql"),
            Some(ByWords::Do)
        );
        assert_eq!(
            words("ALTER DOMAIN public.d OWNER TO app"),
            Some(ByWords::Owner)
        );
        assert_eq!(
            words("CREATE MATERIALIZED VIEW IF NOT EXISTS m AS SELECT 1 WITH NO DATA"),
            Some(ByWords::CreateMaterializedView { view: n("m") })
        );
        assert_eq!(
            words(
                "ALTER TABLE ONLY t ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY \
                 (SEQUENCE NAME s START WITH 1 CACHE (1))"
            ),
            Some(ByWords::ColumnSetting {
                table: n("t"),
                column: n("id"),
                setting: "IDENTITY".into()
            })
        );
        assert_eq!(
            words("ALTER SEQUENCE IF EXISTS app.s RENAME TO s2"),
            Some(ByWords::Sequence {
                sequence: n("app.s"),
                renamed: Some(("renaming sequence app.s to s2".into(), n("app.s2")))
            })
        );
        assert_eq!(
            words("ALTER SEQUENCE s OWNER TO app"),
            Some(ByWords::Sequence {
                sequence: n("s"),
                renamed: None
            })
        );
        assert_eq!(
            words(
                "ALTER TYPE pair ADD ATTRIBUTE m numeric(10, 2), DROP ATTRIBUTE IF EXISTS a, DROP ATTRIBUTE b CASCADE"
            ),
            Some(ByWords::TypeAttributes {
                ty: n("pair"),
                dropped: vec!["a".into(), "b".into()],
                renamed: None
            })
        );
        assert_eq!(
            words("ALTER TYPE pair RENAME ATTRIBUTE a TO b CASCADE"),
            Some(ByWords::TypeAttributes {
                ty: n("pair"),
                dropped: vec![],
                renamed: Some(("a".into(), "b".into()))
            })
        );
        assert_eq!(
            words("ALTER PROCEDURE app.p(IN a int, b text) SET SCHEMA archive"),
            Some(ByWords::Renamed {
                rule: "renaming-function",
                name: n("app.p"),
                change: "moving procedure app.p to schema archive".into(),
                to: n("archive.p"),
                args: Some(vec![
                    OperateFunctionArg {
                        mode: Some(ArgMode::In),
                        ..OperateFunctionArg::with_name("a", DataType::Int(None))
                    },
                    OperateFunctionArg::with_name("b", DataType::Text),
                ]),
            })
        );
        assert_eq!(
            words("ALTER ROUTINE p SECURITY DEFINER"),
            Some(ByWords::RoutineSetting)
        );
        assert_eq!(
            words("REASSIGN OWNED BY a, b TO c"),
            Some(ByWords::ReassignOwned)
        );
        assert_eq!(words("DROP OWNED BY a CASCADE"), Some(ByWords::DropOwned));
        assert_eq!(
            words("ALTER TABLE ALL IN TABLESPACE slow OWNED BY a, b SET TABLESPACE fast NOWAIT"),
            Some(ByWords::MoveTablespace {
                kind: Relation::Table,
                from: n("slow")
            })
        );
        assert_eq!(
            words("ALTER MATERIALIZED VIEW ALL IN TABLESPACE slow SET TABLESPACE fast"),
            Some(ByWords::MoveTablespace {
                kind: Relation::MaterializedView,
                from: n("slow")
            })
        );
        // Anything else, or more, is left to be reported unreadable.
        for sql in [
            "ALTER SEQUENCE s",
            "ALTER SEQUENCE s RENAME TO",
            "ALTER TYPE t RENAME ATTRIBUTE a",
            "ALTER TYPE t ADD VALUE 'x'",
            "ALTER TYPE t SET SCHEMA s x",
            "ALTER PROCEDURE p",
            "ALTER PROCEDURE p(int",
            "REASSIGN OWNED a TO b",
            "ALTER INDEX ALL IN TABLESPACE a SET TABLESPACE",
            "ALTER TABLE ALL IN TABLESPACE a OWNED b SET TABLESPACE c",
            "ALTER TYPE t OWNER TO",
            "ALTER TABLE t ALTER id ADD GENERATED ALWAYS AS IDENTITY (START 1",
            "ALTER TABLE t ALTER id ADD GENERATED AS IDENTITY",
            "ALTER SEQUENCE s DROP",
            "CREATE TABLE t AS",
            "VACUUM (FULL",
            "VACUUM t u",
            "VACUUM t (a",
            "DO",
            "DO $$ $$ extra",
            "ALTER TABLE t SET SCHEMA",
            "ALTER TABLE t SET TABLESPACE a b",
            "ALTER TABLE t ALTER COLUMN c SET STATISTICS 5, ALTER d SET STATISTICS 5",
            "ALTER TABLE t ALTER COLUMN c SET (n_distinct = 1",
            "ALTER TABLE t ALTER COLUMN c SET (n_distinct = 1) x",
            "ALTER TABLE t ALTER COLUMN c RESET n_distinct",
            "ALTER TABLE t ALTER COLUMN c SET (n_distinct 1)",
            "ALTER INDEX i SET (fillfactor = (70))",
            "ALTER INDEX i SET TABLESPACE",
            "ALTER INDEX i SET TABLESPACE a b",
            "ALTER TABLE t SET ACCESS heap",
            "ALTER TABLE t NOT OF a",
            "ALTER MATERIALIZED VIEW v OF a",
            r#"ALTER "TABLE" t SET SCHEMA s"#,
            "ALTER TABLE",
        ] {
            assert_eq!(words(sql), None, "{sql}");
        }
    }
}
