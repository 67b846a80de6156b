//! Flyway's placeholders (`${schema}`, `${flyway:defaultSchema}`), which Flyway replaces with
//! their values before PostgreSQL reads the file. PostgreSQL has no `${` of its own, so one is
//! always a placeholder: each is read as a name of the same length (most stand for a schema, a
//! table or a role), so the statement is analysed instead of reported unreadable, with its
//! lines and columns kept, and shown as written.

/// A placeholder and the name it is read as.
#[derive(Debug, PartialEq)]
pub(super) struct StandIn {
    pub(super) name: String,
    pub(super) written: String,
}

/// `text` with each `${name}` (letters, digits, `_`, `.`, `:`, `-`) read as a name of the
/// same length, and the placeholders replaced; `None` when it holds none.
pub(super) fn stand_in(text: &str) -> Option<(String, Vec<StandIn>)> {
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
        if !stand_ins.iter().any(|s| s.name == name) {
            stand_ins.push(StandIn {
                name,
                written: written.to_owned(),
            });
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some((out, stand_ins))
}

/// `sql` (a statement as the parser prints it) with the placeholders written again.
pub(super) fn restore(sql: String, stand_ins: &[StandIn]) -> String {
    stand_ins
        .iter()
        .fold(sql, |sql, s| sql.replace(&s.name, &s.written))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_read_as_names_of_the_same_length() {
        let text = "CREATE TABLE ${schema}.t (a int);\nGRANT SELECT ON t TO ${flyway:user};";
        let (read, stand_ins) = stand_in(text).unwrap();
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
    fn only_whole_placeholders_are_read() {
        assert_eq!(stand_in("SELECT $1, $$ x $$"), None);
        let (read, stand_ins) = stand_in("SELECT '${', '${}', '${a b}', ${").unwrap();
        assert_eq!(read, "SELECT '${', '${}', '${a b}', ${");
        assert!(stand_ins.is_empty());
    }
}
