//! A guard for YAML input: flow collections (`[…]`, `{…}`) nested deeper than
//! [`MAX_YAML_NESTING`] are refused before the parser sees them.
//!
//! libyaml, which `serde_yaml_ng` parses with, takes time quadratic in that depth: 16,000 levels
//! take seconds and 100,000 (an 800 KB file) minutes, while `serde_yaml_ng` refuses anything
//! deeper than 128 levels anyway, but only after parsing all of it. A scan of the text is
//! linear, so every YAML reader of Serin runs it first.
//!
//! The scan follows libyaml's scanner where a bracket counts: only `[` and `{` that start a
//! token open a collection, not those in quoted or plain scalars, comments, tags or block
//! scalars. Where the text alone cannot tell (whether a line continues the plain scalar of the
//! line before, or still belongs to a block scalar, both of which hang on indentation), the scan
//! follows every reading at once and refuses the document if any of them nests too deeply, so
//! a quote misread as opening a scalar never hides the brackets after it.

/// The deepest nesting of flow collections accepted: `serde_yaml_ng`'s own recursion limit.
pub const MAX_YAML_NESTING: usize = 128;

/// The most readings of a document the scan follows at once; ordinary documents need two or
/// three, and only text built to be ambiguous (dozens of lines that may or may not belong to a
/// scalar, each opening a collection) needs more.
const MAX_READINGS: usize = 64;

/// Where a reading of the text is, as libyaml's scanner would be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Between tokens: the next character that is not a space starts one.
    Between,
    /// In a plain scalar.
    Plain,
    /// In a single-quoted scalar.
    Single,
    /// Just after the first `'` of a `''` in a single-quoted scalar.
    SingleQuote,
    /// In a double-quoted scalar.
    Double,
    /// Just after a `\` in a double-quoted scalar.
    DoubleEscape,
    /// In a comment, to the end of the line.
    Comment,
    /// In a tag (`!…`), whose characters may include brackets and quotes, to the next space.
    Tag,
    /// In an anchor or alias name.
    Anchor,
    /// On the line that starts a block scalar (`|`, `>`).
    BlockHeader,
    /// In the text of a block scalar.
    Block,
}

/// One reading: where it is, and how deeply its flow collections nest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reading {
    mode: Mode,
    depth: usize,
}

/// The character around the one read.
#[derive(Clone, Copy)]
struct Around {
    /// The next character.
    next: Option<char>,
    /// Whether the one before was a space or a line break (or there was none).
    blank_before: bool,
}

impl Around {
    fn blank_after(self) -> bool {
        self.next.is_none_or(char::is_whitespace)
    }
}

/// Why `text` is refused before it is parsed as YAML, if it is: its flow collections nest
/// deeper than [`MAX_YAML_NESTING`] (on some reading of it, see the module).
///
/// Brackets in quoted and plain scalars, comments and tags are not counted. Lines that may
/// belong to a block scalar (`|`, `>`) or continue a plain scalar are read both ways, so only
/// such lines that leave more than 128 brackets open could be refused.
///
/// ```
/// use serin_compat::yaml_nesting_problem;
///
/// assert_eq!(yaml_nesting_problem("services: {web: [1.0.0, '[not a list']}  # [["), None);
/// let deep = format!("x: {}1{}", "[".repeat(200), "]".repeat(200));
/// assert!(yaml_nesting_problem(&deep).unwrap().contains("line 1"));
/// // A quote inside a plain scalar opens nothing, even on the next line.
/// let hidden = format!("a: x, '\nb: {}1{}", "[".repeat(200), "]".repeat(200));
/// assert!(yaml_nesting_problem(&hidden).unwrap().contains("line 2"));
/// ```
pub fn yaml_nesting_problem(text: &str) -> Option<String> {
    let mut readings = vec![Reading {
        mode: Mode::Between,
        depth: 0,
    }];
    let mut next_readings = Vec::new();
    let mut line = 1usize;
    let mut blank_before = true;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let around = Around {
            next: chars.peek().copied(),
            blank_before,
        };
        next_readings.clear();
        for r in &readings {
            step(*r, c, around, &mut next_readings);
        }
        if next_readings.iter().any(|r| r.depth > MAX_YAML_NESTING) {
            return Some(format!(
                "line {line}: flow collections ([…], {{…}}) nest deeper than \
                 {MAX_YAML_NESTING} levels"
            ));
        }
        if next_readings.len() > MAX_READINGS {
            return Some(format!(
                "line {line}: the nesting of flow collections ([…], {{…}}) cannot be bounded: \
                 more than {MAX_READINGS} lines in a row may or may not belong to a scalar, \
                 each opening a collection"
            ));
        }
        std::mem::swap(&mut readings, &mut next_readings);
        if c == '\n' {
            line += 1;
        }
        blank_before = c.is_whitespace();
    }
    None
}

fn push(out: &mut Vec<Reading>, r: Reading) {
    if !out.contains(&r) {
        out.push(r);
    }
}

/// Reads `c` in reading `r`, adding the readings it leads to to `out`.
fn step(r: Reading, c: char, around: Around, out: &mut Vec<Reading>) {
    let flow = r.depth > 0;
    let to = |mode| Reading {
        mode,
        depth: r.depth,
    };
    if c == '\n' {
        match r.mode {
            // Whether the next line continues a plain scalar hangs on its indentation in block
            // context (in flow context it always does), whether it belongs to a block scalar
            // always does: both readings.
            Mode::Plain if !flow => {
                push(out, r);
                push(out, to(Mode::Between));
            }
            Mode::BlockHeader | Mode::Block => {
                push(out, to(Mode::Block));
                push(out, to(Mode::Between));
            }
            Mode::Plain | Mode::Single | Mode::Double => push(out, r),
            Mode::SingleQuote => push(out, to(Mode::Single)),
            Mode::DoubleEscape => push(out, to(Mode::Double)),
            Mode::Comment | Mode::Tag | Mode::Anchor | Mode::Between => {
                push(out, to(Mode::Between));
            }
        }
        return;
    }
    if c.is_whitespace() {
        match r.mode {
            Mode::Tag | Mode::Anchor => push(out, to(Mode::Between)),
            Mode::SingleQuote => push(out, to(Mode::Single)),
            Mode::DoubleEscape => push(out, to(Mode::Double)),
            _ => push(out, r),
        }
        return;
    }
    match r.mode {
        Mode::Comment | Mode::Block | Mode::BlockHeader => push(out, r),
        Mode::SingleQuote => push(out, to(Mode::Single)),
        Mode::DoubleEscape => push(out, to(Mode::Double)),
        Mode::Single => push(
            out,
            to(match c {
                '\'' if around.next == Some('\'') => Mode::SingleQuote,
                '\'' => Mode::Between,
                _ => Mode::Single,
            }),
        ),
        Mode::Double => push(
            out,
            to(match c {
                '\\' => Mode::DoubleEscape,
                '"' => Mode::Between,
                _ => Mode::Double,
            }),
        ),
        // Whether a tag ends at a flow indicator differs between versions of libyaml.
        Mode::Tag if flow && matches!(c, ',' | '[' | ']' | '{' | '}') => {
            push(out, r);
            token(r.depth, c, around, out);
        }
        Mode::Tag => push(out, r),
        Mode::Anchor if c.is_alphanumeric() || c == '-' || c == '_' => push(out, r),
        Mode::Anchor | Mode::Between => token(r.depth, c, around, out),
        Mode::Plain => match c {
            '#' if around.blank_before => push(out, to(Mode::Comment)),
            ':' if around.blank_after() => push(out, to(Mode::Between)),
            ':' if flow && around.next.is_some_and(|n| ",[]{}?".contains(n)) => {
                push(out, r);
                push(out, to(Mode::Between));
            }
            ',' | '[' | ']' | '{' | '}' if flow => token(r.depth, c, around, out),
            _ => push(out, r),
        },
    }
}

/// Reads `c`, which starts a token, at `depth`.
fn token(depth: usize, c: char, around: Around, out: &mut Vec<Reading>) {
    let at = |mode| Reading { mode, depth };
    match c {
        '[' | '{' => push(
            out,
            Reading {
                mode: Mode::Between,
                depth: depth + 1,
            },
        ),
        ']' | '}' => push(
            out,
            Reading {
                mode: Mode::Between,
                depth: depth.saturating_sub(1),
            },
        ),
        ',' => push(out, at(Mode::Between)),
        '\'' => push(out, at(Mode::Single)),
        '"' => push(out, at(Mode::Double)),
        '!' => push(out, at(Mode::Tag)),
        '&' | '*' => push(out, at(Mode::Anchor)),
        '|' | '>' if depth == 0 => push(out, at(Mode::BlockHeader)),
        '#' => {
            // YAML wants a space before a comment; libyaml takes one right after a token too.
            push(out, at(Mode::Comment));
            if !around.blank_before {
                push(out, at(Mode::Plain));
            }
        }
        '-' | '?' | ':' if around.blank_after() => push(out, at(Mode::Between)),
        // `-1` is a plain scalar, `---` a document marker, and `:` in a flow collection a
        // value indicator or not, depending on the version: both readings.
        '-' | '?' | ':' => {
            push(out, at(Mode::Between));
            push(out, at(Mode::Plain));
        }
        _ => push(out, at(Mode::Plain)),
    }
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
        // A quote inside a plain scalar opens nothing: the brackets after it count where they
        // open collections (in a flow collection, not in a plain scalar of a block).
        assert!(yaml_nesting_problem(&format!("x: [don't {open}")).is_some());
        assert_eq!(yaml_nesting_problem(&format!("x: don't {open}")), None);
        // Nor does a `#` inside a plain scalar start a comment.
        assert!(yaml_nesting_problem(&format!("x: [a#{open}")).is_some());
    }

    /// Brackets the scan does not count are indeed not collections to the parser.
    #[test]
    fn what_is_not_counted_is_no_collection() {
        let open = "[".repeat(300);
        for text in [
            format!("x: don't {open}"),
            format!("x: a#{open}"),
            format!("x: |\n  SELECT ARRAY{open}\ny: 1"),
            format!("x: [!!str '{open}']"),
        ] {
            assert_eq!(yaml_nesting_problem(&text), None, "{text}");
            let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect(&text);
            assert!(value.get("x").is_some(), "{text}");
        }
    }

    /// A quote that YAML reads as part of a plain scalar, and text after a tag or an anchor,
    /// hide no brackets, on the same line or the next.
    #[test]
    fn misread_quotes_hide_no_brackets() {
        let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        let close = "]".repeat(5);
        for text in [
            format!("a: x, '\nb: {}", deep(200)),
            format!("a: x, \"\nb: {}", deep(200)),
            format!("a: x\n  '\nb: {}", deep(200)),
            format!("a: [x\n '{}]", deep(200)),
            format!("a: [x\n'a' 'b, {}]", deep(200)),
            format!("a: {}", format!("[[[[[ !!str '{close}' , ").repeat(40)),
            format!("a: {}", format!("[[[[[ &x '{close}' , ").repeat(40)),
            format!("a: {}", format!("[[[[[ !x{close} , ").repeat(40)),
            format!("a: |\nb: {}", deep(200)),
        ] {
            assert!(yaml_nesting_problem(&text).is_some(), "{text}");
        }
    }

    #[test]
    fn the_scan_stays_linear() {
        // Many lines that may continue a plain scalar or start a key, each ambiguous, and a
        // long document: a few readings each, whatever its length.
        let text = "a: b\n  c: d\n".repeat(50_000);
        let started = std::time::Instant::now();
        assert_eq!(yaml_nesting_problem(&text), None);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        // Lines built to multiply the readings are refused.
        let text = format!("x: |\n{}", "  [a\n".repeat(200));
        assert!(yaml_nesting_problem(&text).is_some());
    }
}
