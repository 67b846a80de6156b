//! Quoting of names for SQL and for libpq connection strings, and the verification query.
//!
//! Names never reach a shell (programs get separate arguments), but they do reach SQL text and
//! libpq's connection string. These functions make any name (quotes, spaces, `;`, backslashes)
//! a single identifier, literal or value; a NUL byte is refused earlier, when settings are
//! validated, because no C string can hold it.

/// `name` as an SQL identifier: in double quotes, with inner double quotes doubled.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `value` as an SQL string literal in escape-string form (`E'…'`), which means the same
/// whatever `standard_conforming_strings` is set to.
pub(crate) fn literal(value: &str) -> String {
    format!("E'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// `value` as a value in a libpq connection string: in single quotes, with backslashes and
/// single quotes escaped by a backslash.
pub(crate) fn conninfo_value(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A connection string naming only the database (the rest comes from the environment), so a
/// database name holding `=` or spaces is never read as further settings.
pub(crate) fn dbname_conninfo(dbname: &str) -> String {
    format!("dbname={}", conninfo_value(dbname))
}

/// One query answering, for each table in order, `index|row count|md5` of its rows' text,
/// sorted, so that the answer does not depend on the physical order of the rows.
pub(crate) fn checksum_query(tables: &[(String, String)]) -> String {
    let parts: Vec<String> = tables
        .iter()
        .enumerate()
        .map(|(i, (schema, name))| {
            format!(
                "(SELECT {i}, count(*), md5(coalesce(string_agg(ROW(serin_row.*)::text, ',' \
                 ORDER BY ROW(serin_row.*)::text), '')) FROM {}.{} AS serin_row)",
                ident(schema),
                ident(name)
            )
        })
        .collect();
    format!("{} ORDER BY 1", parts.join(" UNION ALL "))
}

/// Reads the answer of [`checksum_query`] for `n` tables: (rows, md5) per table, in order.
pub(crate) fn parse_checksums(output: &str, n: usize) -> Result<Vec<(u64, String)>, String> {
    let mut out = Vec::with_capacity(n);
    for line in output.lines().filter(|l| !l.trim().is_empty()) {
        let mut fields = line.trim().split('|');
        let (Some(index), Some(rows), Some(md5), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(format!("unexpected line `{line}`"));
        };
        if index.parse::<usize>().ok() != Some(out.len()) {
            return Err(format!("line `{line}` is out of order"));
        }
        let rows = rows
            .parse::<u64>()
            .map_err(|e| format!("row count in `{line}`: {e}"))?;
        if md5.len() != 32 || !md5.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("checksum in `{line}` is not an md5"));
        }
        out.push((rows, md5.to_owned()));
    }
    if out.len() != n {
        return Err(format!("{} answers for {n} tables", out.len()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_literals_and_values_are_closed_whatever_they_hold() {
        assert_eq!(ident("orders"), r#""orders""#);
        assert_eq!(
            ident(r#"a"; DROP TABLE x; --"#),
            r#""a""; DROP TABLE x; --""#
        );
        assert_eq!(literal("it's"), "E'it''s'");
        assert_eq!(literal(r"a\'; x"), r"E'a\\''; x'");
        assert_eq!(conninfo_value("my db"), "'my db'");
        assert_eq!(conninfo_value(r"a'b\c"), r"'a\'b\\c'");
        assert_eq!(
            dbname_conninfo("x host=evil.example"),
            "dbname='x host=evil.example'"
        );
    }

    #[test]
    fn the_checksum_query_names_each_table_once_quoted() {
        let q = checksum_query(&[
            ("public".into(), "orders".into()),
            ("app".into(), r#"we"ird"#.into()),
        ]);
        assert!(q.contains(r#"FROM "public"."orders" AS serin_row"#), "{q}");
        assert!(q.contains(r#"FROM "app"."we""ird" AS serin_row"#), "{q}");
        assert!(q.contains("(SELECT 1, count(*)"), "{q}");
        assert!(q.ends_with("ORDER BY 1"), "{q}");
    }

    #[test]
    fn checksum_answers_are_parsed_strictly() {
        let md5 = "d41d8cd98f00b204e9800998ecf8427e";
        let ok = format!("0|3|{md5}\n1|0|{md5}\n");
        assert_eq!(
            parse_checksums(&ok, 2).unwrap(),
            vec![(3, md5.to_owned()), (0, md5.to_owned())]
        );
        assert!(parse_checksums(&ok, 3).is_err());
        assert!(parse_checksums(&format!("1|3|{md5}"), 1).is_err());
        assert!(parse_checksums("0|x|abc", 1).is_err());
        assert!(parse_checksums(&format!("0|3|{md5}|extra"), 1).is_err());
        assert!(parse_checksums("0|3|nothex", 1).is_err());
        assert!(parse_checksums("", 0).unwrap().is_empty());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Reads back a double-quoted identifier the way the SQL lexer does; `None` when
        /// the quoted part ends before the end of the text (anything could follow it).
        fn unquote_ident(s: &str) -> Option<String> {
            let inner = s.strip_prefix('"')?.strip_suffix('"')?;
            let mut out = String::new();
            let mut chars = inner.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '"' && chars.next() != Some('"') {
                    return None;
                }
                out.push(c);
            }
            Some(out)
        }

        fn unquote_literal(s: &str) -> Option<String> {
            let inner = s.strip_prefix("E'")?.strip_suffix('\'')?;
            let mut out = String::new();
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => out.push(chars.next()?),
                    '\'' => {
                        if chars.next() != Some('\'') {
                            return None;
                        }
                        out.push('\'');
                    }
                    c => out.push(c),
                }
            }
            Some(out)
        }

        proptest! {
            #[test]
            fn quoting_round_trips_and_never_ends_early(name in "[a-z\"'\\\\; =-]{0,16}") {
                prop_assert_eq!(unquote_ident(&ident(&name)), Some(name.clone()));
                prop_assert_eq!(unquote_literal(&literal(&name)), Some(name.clone()));
            }
        }
    }
}
