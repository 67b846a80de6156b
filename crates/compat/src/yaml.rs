//! A guard for YAML input: flow collections (`[…]`, `{…}`) nested deeper than
//! [`MAX_YAML_NESTING`] are refused before the parser sees them.
//!
//! libyaml, which `serde_yaml_ng` parses with, takes time quadratic in that depth: 16,000 levels
//! take seconds and 100,000 (an 800 KB file) minutes, while `serde_yaml_ng` refuses anything
//! deeper than 128 levels anyway, but only after parsing all of it. A scan for brackets is
//! linear, so every YAML reader of Serin runs it first.

/// The deepest nesting of flow collections accepted: `serde_yaml_ng`'s own recursion limit.
pub const MAX_YAML_NESTING: usize = 128;

/// Why `text` is refused before it is parsed as YAML, if it is: its flow collections nest
/// deeper than [`MAX_YAML_NESTING`].
///
/// Brackets in quoted scalars and comments are not counted. The scan does not follow block
/// scalars (`|`, `>`), so their text counts too; only one that leaves more than 128 brackets
/// open could be refused.
///
/// ```
/// use serin_compat::yaml_nesting_problem;
///
/// assert_eq!(yaml_nesting_problem("services: {web: [1.0.0, '[not a list']}  # [["), None);
/// let deep = format!("x: {}1{}", "[".repeat(200), "]".repeat(200));
/// assert!(yaml_nesting_problem(&deep).unwrap().contains("line 1"));
/// ```
pub fn yaml_nesting_problem(text: &str) -> Option<String> {
    #[derive(Clone, Copy, PartialEq)]
    enum In {
        Plain,
        Single,
        Double,
        Comment,
    }
    let mut state = In::Plain;
    let (mut depth, mut line) = (0usize, 1usize);
    // On the current line: the character just before, and the last one that is not a space.
    // A quote only opens a scalar at its start (after `: `, `- `, `, `, `[` or `{`), never
    // inside a plain one (`don't`); a `#` only starts a comment after a space (not in `a#b`).
    let (mut prev, mut last): (Option<char>, Option<char>) = (None, None);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\n' {
            line += 1;
            (prev, last) = (None, None);
            if state == In::Comment {
                state = In::Plain;
            }
            continue;
        }
        match state {
            In::Comment => {}
            In::Single if c == '\'' => {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                } else {
                    state = In::Plain;
                }
            }
            In::Double if c == '\\' => {
                // An escaped character; an escaped line break still ends a line.
                if chars.next() == Some('\n') {
                    line += 1;
                }
            }
            In::Double if c == '"' => state = In::Plain,
            In::Single | In::Double => {}
            In::Plain => {
                let scalar_start = matches!(last, None | Some(':' | ',' | '[' | '{' | '-' | '?'));
                match c {
                    '#' if prev.is_none_or(char::is_whitespace) => state = In::Comment,
                    '\'' if scalar_start => state = In::Single,
                    '"' if scalar_start => state = In::Double,
                    '[' | '{' => {
                        depth += 1;
                        if depth > MAX_YAML_NESTING {
                            return Some(format!(
                                "line {line}: flow collections ([…], {{…}}) nest deeper than \
                                 {MAX_YAML_NESTING} levels"
                            ));
                        }
                    }
                    ']' | '}' => depth = depth.saturating_sub(1),
                    _ => {}
                }
            }
        }
        prev = Some(c);
        if !c.is_whitespace() {
            last = Some(c);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_brackets_of_flow_collections() {
        let nested = |n: usize| format!("x: {}1{}\n", "{a: ".repeat(n), "}".repeat(n));
        assert_eq!(yaml_nesting_problem(&nested(MAX_YAML_NESTING)), None);
        let e = yaml_nesting_problem(&format!("a: \"b\\\nc\"\n{}", nested(MAX_YAML_NESTING + 1)));
        assert!(e.expect("refused").starts_with("line 3:"));
        // In quotes (with their escapes), comments and plain scalars, brackets do not count.
        let open = "[".repeat(300);
        for text in [
            format!("x: '{open}'"),
            format!("x: 'it''s {open}'"),
            format!("x: \"\\\" {open}\""),
            format!("x: 1 # {open}"),
            format!("- \"{open}\"\n- [a, b]"),
        ] {
            assert_eq!(yaml_nesting_problem(&text), None, "{text}");
        }
        // A quote inside a plain scalar opens nothing: the brackets after it count.
        assert!(yaml_nesting_problem(&format!("x: don't {open}")).is_some());
        // Nor does a `#` inside a plain scalar start a comment.
        assert!(yaml_nesting_problem(&format!("x: a#{open}")).is_some());
    }
}
