//! Placeholders that a tool replaces with their values before PostgreSQL reads the file, each
//! read as something of the same length, so that the statement is analysed instead of reported
//! unreadable, with its lines and columns kept, and shown as written:
//!
//! - Flyway's (`${schema}`, `${flyway:defaultSchema}`). PostgreSQL has no `${` of its own, so
//!   one is always a placeholder; it is read as a name (most stand for a schema, a table or a
//!   role).
//! - psql's variables, outside quotes, dollar quotes and comments, as psql reads them: `:'v'`
//!   (the value as a string literal) is read as the string `':v'`, `:"v"` (as an identifier)
//!   as the identifier `":v"`, and `:v` (as written) as the name `_v`. A `::` cast is not one,
//!   nor a `:` right after a name, a number or a bracket (`a[1:n]`).

/// A placeholder and the name it is read as.
#[derive(Debug, PartialEq)]
pub(super) struct StandIn {
    pub(super) name: String,
    pub(super) written: String,
}

/// `text` with each Flyway placeholder read as a name of the same length and, when `psql`
/// runs it, each psql variable read as described above; and the placeholders replaced. `None`
/// when it holds none.
pub(super) fn stand_in(text: &str, psql: bool) -> Option<(String, Vec<StandIn>)> {
    let (text, mut stand_ins) = match flyway(text) {
        Some((read, found)) => (std::borrow::Cow::Owned(read), found),
        None => (std::borrow::Cow::Borrowed(text), Vec::new()),
    };
    let read = if psql {
        psql_variables(&text, &mut stand_ins)
    } else {
        None
    };
    match read {
        Some(read) => Some((read, stand_ins)),
        None if stand_ins.is_empty() => None,
        None => Some((text.into_owned(), stand_ins)),
    }
}

/// Records `name`, read for `written`, once.
fn record(stand_ins: &mut Vec<StandIn>, name: String, written: &str) {
    if !stand_ins.iter().any(|s| s.name == name) {
        stand_ins.push(StandIn {
            name,
            written: written.to_owned(),
        });
    }
}

/// `text` with psql's variables read as described in the module's documentation; `None`
/// when it holds none.
fn psql_variables(text: &str, stand_ins: &mut Vec<StandIn>) -> Option<String> {
    let bytes = text.as_bytes();
    let name_len = |from: usize| {
        bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
            .count()
    };
    let mut out = String::with_capacity(text.len());
    let mut found = false;
    let mut i = 0;
    while i < bytes.len() {
        let escapes = i > 0 && bytes[i - 1].eq_ignore_ascii_case(&b'e');
        let skip = match bytes[i] {
            b'\'' if escapes => Some(escaped_string_end(bytes, i + 1)),
            b'\'' | b'"' => Some(closing(bytes, i + 1, &[bytes[i]])),
            b'-' if bytes.get(i + 1) == Some(&b'-') => Some(closing(bytes, i, b"\n")),
            b'/' if bytes.get(i + 1) == Some(&b'*') => Some(closing(bytes, i + 2, b"*/")),
            b'$' => dollar_tag(bytes, i).map(|tag| closing(bytes, i + tag.len(), tag)),
            _ => None,
        };
        if let Some(end) = skip {
            out.push_str(&text[i..end]);
            i = end;
            continue;
        }
        if bytes[i] == b':' && bytes.get(i + 1) == Some(&b':') {
            out.push_str("::");
            i += 2;
            continue;
        }
        let after_word = i > 0 && {
            let prev = bytes[i - 1];
            prev.is_ascii_alphanumeric() || b"_])\"'".contains(&prev)
        };
        if bytes[i] == b':' && !after_word {
            let quote = bytes
                .get(i + 1)
                .copied()
                .filter(|q| *q == b'\'' || *q == b'"');
            let n = name_len(i + 1 + usize::from(quote.is_some()));
            let end = i + 1 + n + if quote.is_some() { 2 } else { 0 };
            let closed = quote.is_none_or(|q| bytes.get(end - 1) == Some(&q));
            let starts_name = bytes
                .get(i + 1 + usize::from(quote.is_some()))
                .is_some_and(|b| !b.is_ascii_digit());
            if n > 0 && closed && starts_name {
                let written = &text[i..end];
                let name = match quote {
                    // `:'v'` -> `':v'`, `:"v"` -> `":v"`.
                    Some(q) => format!("{}:{}{}", q as char, &written[2..end - i - 1], q as char),
                    None => format!("_{}", &written[1..]),
                };
                out.push_str(&name);
                record(stand_ins, name, written);
                found = true;
                i = end;
                continue;
            }
        }
        let ch = text[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&text[i..i + ch]);
        i += ch;
    }
    found.then_some(out)
}

/// The end (past it) of the text that `close` ends, searched from `from`; the text's end if
/// nothing does (the rest of the text is then left as it is).
fn closing(bytes: &[u8], from: usize, close: &[u8]) -> usize {
    let rest = bytes.get(from..).unwrap_or_default();
    rest.windows(close.len())
        .position(|w| w == close)
        .map_or(bytes.len(), |at| from + at + close.len())
}

/// The end (past its quote) of an `E'...'` string whose text starts at `from`, where a
/// backslash escapes the next character.
fn escaped_string_end(bytes: &[u8], from: usize) -> usize {
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'\'' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The tag of a dollar quote starting at `at` (`$$`, `$body$`), if one does.
fn dollar_tag(bytes: &[u8], at: usize) -> Option<&[u8]> {
    let rest = &bytes[at + 1..];
    let n = rest
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
        .count();
    let starts_well = rest.first().is_some_and(|b| !b.is_ascii_digit());
    (rest.get(n) == Some(&b'$') && (n == 0 || starts_well)).then(|| &bytes[at..at + n + 2])
}

/// `text` with each `${name}` (letters, digits, `_`, `.`, `:`, `-`) read as a name of the
/// same length; `None` when it holds none.
fn flyway(text: &str) -> Option<(String, Vec<StandIn>)> {
    if !text.contains("${") {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut stand_ins: Vec<StandIn> = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || "_.:-".contains(c)))
            .unwrap_or(after.len());
        if end == 0 || !after[end..].starts_with('}') {
            out.push_str("${");
            rest = after;
            continue;
        }
        let written = &rest[at..at + end + 3];
        // `_` + the name's letters and digits (others become `_`) + `__`: as long as `${name}`.
        let name: String = std::iter::once('_')
            .chain(
                after[..end]
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
            )
            .chain("__".chars())
            .collect();
        out.push_str(&name);
        record(&mut stand_ins, name, written);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some((out, stand_ins))
}

/// `text` (a statement as the parser prints it, or what a finding says of it) with the
/// placeholders written again: each stand-in that is a whole name, not a part of a longer one
/// (`_n`, read for `:n`, is left alone in `user_name`).
pub(super) fn restore(text: String, stand_ins: &[StandIn]) -> String {
    stand_ins.iter().fold(text, |text, s| {
        whole_names_replaced(&text, &s.name, &s.written)
    })
}

/// `text` with each `name` that is not a part of a longer name replaced by `with`.
fn whole_names_replaced(text: &str, name: &str, with: &str) -> String {
    let in_name = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$');
    let (first, last) = (name.chars().next(), name.chars().next_back());
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (at, _) in text.match_indices(name) {
        let end = at + name.len();
        let joined_before = in_name(first) && in_name(text[..at].chars().next_back());
        let joined_after = in_name(last) && in_name(text[end..].chars().next());
        if at < copied || joined_before || joined_after {
            continue;
        }
        out.push_str(&text[copied..at]);
        out.push_str(with);
        copied = end;
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_read_as_names_of_the_same_length() {
        let text = "CREATE TABLE ${schema}.t (a int);\nGRANT SELECT ON t TO ${flyway:user};";
        let (read, stand_ins) = stand_in(text, false).unwrap();
        assert_eq!(
            read,
            "CREATE TABLE _schema__.t (a int);\nGRANT SELECT ON t TO _flyway_user__;"
        );
        assert_eq!(read.len(), text.len());
        assert_eq!(
            stand_ins,
            [
                StandIn {
                    name: "_schema__".into(),
                    written: "${schema}".into()
                },
                StandIn {
                    name: "_flyway_user__".into(),
                    written: "${flyway:user}".into()
                }
            ]
        );
        assert_eq!(
            restore("CREATE TABLE _schema__.t (a INT)".into(), &stand_ins),
            "CREATE TABLE ${schema}.t (a INT)"
        );
    }

    #[test]
    fn only_whole_stand_ins_are_written_again() {
        let (_, stand_ins) = stand_in("UPDATE t SET a = :n, b = ${n}", true).unwrap();
        assert_eq!(
            restore(
                "UPDATE t SET user_name = _n, _n_x = _n__ WHERE my_n__ = 1 AND _n=_n".into(),
                &stand_ins
            ),
            "UPDATE t SET user_name = :n, _n_x = ${n} WHERE my_n__ = 1 AND :n=:n"
        );
    }

    #[test]
    fn only_whole_placeholders_are_read() {
        assert_eq!(stand_in("SELECT $1, $$ x $$", true), None);
        assert_eq!(stand_in("SELECT '${', '${}', '${a b}', ${", false), None);
    }
}

#[cfg(test)]
mod psql_tests {
    use super::*;

    #[test]
    fn psql_variables_are_read_as_what_they_stand_for() {
        let text = "ALTER TABLE :\"schema\".users ADD note text DEFAULT :'note';\n\
                    UPDATE :tbl SET n = :n::int WHERE x = 1;";
        let (read, stand_ins) = stand_in(text, true).unwrap();
        assert_eq!(
            read,
            "ALTER TABLE \":schema\".users ADD note text DEFAULT ':note';\n\
             UPDATE _tbl SET n = _n::int WHERE x = 1;"
        );
        assert_eq!(read.len(), text.len());
        let written: Vec<_> = stand_ins.iter().map(|s| s.written.as_str()).collect();
        assert_eq!(written, [":\"schema\"", ":'note'", ":tbl", ":n"]);
        // Not read by other runners than psql.
        assert_eq!(stand_in(text, false), None);
    }

    #[test]
    fn what_psql_does_not_read_as_a_variable_is_left_alone() {
        for text in [
            "SELECT a::text, b[1:n], c[lo:hi], f(x := 1)",
            "SELECT ':v', \":v\", $$ :v $$, $body$ :v $body$ -- :v\n",
            "SELECT 1 /* :v */, E'it\\'s :v', :1, :'1'",
            "SELECT 'unterminated :v",
        ] {
            assert_eq!(stand_in(text, true), None, "{text}");
        }
    }
}
