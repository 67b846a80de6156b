//! [`Condition`]: an Argo Rollouts `successCondition` or `failureCondition`, written as bounds
//! or as the expression of an `AnalysisTemplate` (`result[0] <= 0.01`).
//!
//! Argo evaluates its conditions with expr-lang over the provider's `result`. Serin reads the
//! part of that language a condition on one measurement needs, and refuses the rest with the
//! position and the reason, so that a template copied over either means here what it meant
//! there or does not load. No expression crate reads it as Argo does: general evaluators
//! (evalexpr and the like) have no `result[0]` indexing or `isNaN`, spell their operators
//! otherwise and would accept far more than a condition can honour here.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::threshold::bounds::Range;
use crate::{Error, Result};

/// A condition on a measurement's `result`, as Argo Rollouts' `successCondition` or
/// `failureCondition`: inclusive bounds (`{"max": 0.01}`), or an expression as written in an
/// Argo `AnalysisTemplate` (`"result[0] <= 0.01"`).
///
/// An expression may compare `result` or `result[0]` (both stand for the measurement: the
/// judge is fed one value) with numbers, with `<`, `<=`, `>`, `>=`, `==` and `!=`, compute with
/// `+`, `-`, `*` and `/`, and join comparisons with `&&`/`and`, `||`/`or`, `!`/`not` and
/// parentheses (`!` applies to what follows it alone, as in expr-lang: `!(result[0] > 2)`).
/// `isNaN(result)`, `isInf(result)` and `len(result)` are read too, but a condition is only
/// ever evaluated on a finite measurement: no data, NaN and infinities are an `Error`
/// measurement before any condition is asked (missing evidence is inconclusive in every Serin
/// judge), so `isNaN(result) || result[0] < 0.01` holds exactly when `result[0] < 0.01`,
/// `len(result)` is 1 and `default(result, 0)` is `result`. Anything else (`asInt(…)`,
/// `result[1]`, strings, `!result[0] > 2`, a number expr-lang cannot hold such as `1e400`), and
/// a condition longer than 1,000 characters or nested deeper than 32 levels, is refused when the
/// config is read.
///
/// ```
/// use serin_canary::threshold::Condition;
///
/// let c: Condition = serde_json::from_str(r#""result[0] >= 0.95 && result[0] <= 1""#)?;
/// assert!(c.holds(0.97) && !c.holds(0.9));
/// let bounds: Condition = serde_json::from_str(r#"{"max": 0.01}"#)?;
/// assert!(bounds.holds(0.01) && !bounds.holds(0.02));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `min ≤ result ≤ max`.
    Bounds(Range),
    /// An Argo expression, kept as written.
    Expression(Expression),
}

impl Condition {
    /// Whether the condition holds for the measurement `value` (NaN never passes bounds; the
    /// Argo judge never asks with a value that is not finite).
    pub fn holds(&self, value: f64) -> bool {
        match self {
            Condition::Bounds(r) => r.contains(value),
            Condition::Expression(e) => e.holds(value),
        }
    }

    /// Checks bounds, naming `path` in errors (an expression was checked when it was parsed).
    pub fn validate(&self, path: &str) -> Result<()> {
        match self {
            Condition::Bounds(r) => r.validate(path),
            Condition::Expression(_) => Ok(()),
        }
    }
}

impl From<Range> for Condition {
    fn from(r: Range) -> Self {
        Condition::Bounds(r)
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::Bounds(r) => r.fmt(f),
            Condition::Expression(e) => f.write_str(e.source()),
        }
    }
}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Condition::Bounds(r) => r.serialize(s),
            Condition::Expression(e) => s.serialize_str(e.source()),
        }
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct ConditionVisitor;

        impl<'de> Visitor<'de> for ConditionVisitor {
            type Value = Condition;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bounds ({min, max}) or an Argo expression such as `result[0] <= 0.01`")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Condition, E> {
                Expression::parse(v)
                    .map(Condition::Expression)
                    .map_err(E::custom)
            }

            fn visit_map<A: MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<Condition, A::Error> {
                Range::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(Condition::Bounds)
            }
        }

        d.deserialize_any(ConditionVisitor)
    }
}

/// An Argo condition expression, parsed (see [`Condition`] for what it may hold).
#[derive(Debug, Clone, PartialEq)]
pub struct Expression {
    source: String,
    tree: Bool,
}

impl Expression {
    /// Parses `source`, or says where and why it cannot be read.
    pub fn parse(source: &str) -> Result<Self> {
        let length = source.chars().count();
        if length > MAX_LENGTH {
            let start: String = source.chars().take(40).collect();
            return Err(Error::invalid_config(
                "condition",
                format!("{start}…"),
                format!("is {length} characters long, more than the {MAX_LENGTH} read"),
            ));
        }
        let tokens = lex(source)?;
        let mut p = Parser {
            source,
            tokens,
            at: 0,
            depth: 0,
        };
        let tree = match p.expr()? {
            Node::Bool(b) => b,
            Node::Num(_) => {
                return Err(p.refuse(
                    0,
                    "is a number, not a condition: compare it (`result[0] <= 0.01`)",
                ));
            }
        };
        if p.at < p.tokens.len() {
            return Err(p.refuse(p.at, "is not expected here"));
        }
        Ok(Expression {
            source: source.to_owned(),
            tree,
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the expression holds for the measurement `value`.
    pub fn holds(&self, value: f64) -> bool {
        self.tree.eval(value)
    }
}

/// A boolean node.
#[derive(Debug, Clone, PartialEq)]
enum Bool {
    Const(bool),
    Not(Box<Bool>),
    And(Box<Bool>, Box<Bool>),
    Or(Box<Bool>, Box<Bool>),
    Compare(Box<Num>, Cmp, Box<Num>),
    /// `isNaN(result)`, `isInf(result)`: false for the finite values a condition is asked about.
    NotFinite,
}

/// A numeric node.
#[derive(Debug, Clone, PartialEq)]
enum Num {
    Const(f64),
    /// `result`, `result[0]`.
    Result,
    Neg(Box<Num>),
    Arith(Box<Num>, Op, Box<Num>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
}

impl Bool {
    fn eval(&self, v: f64) -> bool {
        match self {
            Bool::Const(b) => *b,
            Bool::Not(b) => !b.eval(v),
            Bool::And(a, b) => a.eval(v) && b.eval(v),
            Bool::Or(a, b) => a.eval(v) || b.eval(v),
            Bool::NotFinite => !v.is_finite(),
            Bool::Compare(a, cmp, b) => {
                let (a, b) = (a.eval(v), b.eval(v));
                match cmp {
                    Cmp::Lt => a < b,
                    Cmp::Le => a <= b,
                    Cmp::Gt => a > b,
                    Cmp::Ge => a >= b,
                    Cmp::Eq => a == b,
                    Cmp::Ne => a != b,
                }
            }
        }
    }
}

impl Num {
    fn eval(&self, v: f64) -> f64 {
        match self {
            Num::Const(c) => *c,
            Num::Result => v,
            Num::Neg(n) => -n.eval(v),
            Num::Arith(a, op, b) => {
                let (a, b) = (a.eval(v), b.eval(v));
                match op {
                    Op::Add => a + b,
                    Op::Sub => a - b,
                    Op::Mul => a * b,
                    Op::Div => a / b,
                }
            }
        }
    }
}

/// A token of a condition.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Number(f64),
    Word(String),
    Symbol(&'static str),
}

/// Longest first where one begins another (`<=` before `<`). A comma is read only so that a
/// call of two arguments is refused by its name.
const SYMBOLS: [&str; 18] = [
    "&&", "||", "<=", ">=", "==", "!=", "<", ">", "!", "(", ")", "[", "]", "+", "-", "*", "/", ",",
];

fn lex(source: &str) -> Result<Vec<(usize, Token)>> {
    let mut tokens = Vec::new();
    let mut at = 0;
    while let Some(c) = source[at..].chars().next() {
        at = if c.is_whitespace() {
            at + c.len_utf8()
        } else if c.is_ascii_digit() || c == '.' {
            let end = number_end(source, at);
            let text = &source[at..end];
            tokens.push((at, Token::Number(number(source, at, text)?)));
            end
        } else if c.is_ascii_alphabetic() || c == '_' {
            let end = source[at..]
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                .map_or(source.len(), |n| at + n);
            tokens.push((at, Token::Word(source[at..end].to_owned())));
            end
        } else if let Some(sym) = SYMBOLS.iter().find(|s| source[at..].starts_with(**s)) {
            tokens.push((at, Token::Symbol(sym)));
            at + sym.len()
        } else {
            let text = &source[at..at + c.len_utf8()];
            return Err(refusal(
                source,
                at,
                text,
                "is not part of a condition Serin reads",
            ));
        };
    }
    Ok(tokens)
}

/// The number `text` (at `at` in `source`) stands for, refused where expr-lang refuses it: a
/// literal beyond the largest float (`1e400`) or, written without a point or exponent, beyond
/// the largest 64-bit integer. Argo would error on every measurement; read as infinity, it
/// would make `result < 1e400` hold for every value.
fn number(source: &str, at: usize, text: &str) -> Result<f64> {
    let n: f64 = text
        .parse()
        .map_err(|_| refusal(source, at, text, "is not a number"))?;
    if !n.is_finite() {
        return Err(refusal(
            source,
            at,
            text,
            "is beyond the largest number expr-lang reads",
        ));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) && text.parse::<i64>().is_err() {
        return Err(refusal(
            source,
            at,
            text,
            "is beyond the largest integer expr-lang reads (2^63 − 1); write a decimal point \
             to make it a float",
        ));
    }
    Ok(n)
}

/// Where the number starting at `at` ends: digits, one point, and an exponent.
fn number_end(source: &str, at: usize) -> usize {
    let bytes = source.as_bytes();
    let mut i = at;
    while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
        i += 1;
    }
    if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
        let mut j = i + 1;
        if j < bytes.len() && (bytes[j] == b'+' || bytes[j] == b'-') {
            j += 1;
        }
        if j < bytes.len() && bytes[j].is_ascii_digit() {
            i = j;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
        }
    }
    i
}

fn refusal(source: &str, at: usize, text: &str, reason: &str) -> Error {
    Error::invalid_config(
        "condition",
        source,
        format!(
            "`{text}` at character {} {reason}",
            source[..at].chars().count() + 1
        ),
    )
}

/// A parsed node of either type, checked as it is built.
enum Node {
    Bool(Bool),
    Num(Num),
}

/// Recursive descent, lowest precedence first: `||`, `&&`, `!`, comparisons, `+ -`, `* /`,
/// unary minus, then numbers, `result`, calls and parentheses.
struct Parser<'a> {
    source: &'a str,
    tokens: Vec<(usize, Token)>,
    at: usize,
    /// Parentheses, `!` and unary minus open around the token at `at`.
    depth: usize,
}

/// The longest condition read, in characters: a condition on one value is a line.
const MAX_LENGTH: usize = 1_000;

/// The deepest nesting read: the parser recurses once per level, and a condition on one value
/// needs few.
const MAX_DEPTH: usize = 32;

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|(_, t)| t)
    }

    fn is(&self, symbol: &str, word: &str) -> bool {
        match self.peek() {
            Some(Token::Symbol(s)) => *s == symbol,
            Some(Token::Word(w)) => !word.is_empty() && w == word,
            _ => false,
        }
    }

    /// An error about the token at index `i` (or the end).
    fn refuse(&self, i: usize, reason: &str) -> Error {
        match self.tokens.get(i) {
            Some((at, t)) => {
                let text = match t {
                    Token::Number(_) => &self.source[*at..number_end(self.source, *at)],
                    Token::Word(w) => w.as_str(),
                    Token::Symbol(s) => s,
                };
                refusal(self.source, *at, text, reason)
            }
            None => Error::invalid_config("condition", self.source, "ends before it is complete"),
        }
    }

    fn expect(&mut self, symbol: &str, what: &str) -> Result<()> {
        if self.is(symbol, "") {
            self.at += 1;
            Ok(())
        } else {
            Err(self.refuse(self.at, &format!("is not {what}")))
        }
    }

    fn boolean(&self, start: usize, node: Node) -> Result<Bool> {
        match node {
            Node::Bool(b) => Ok(b),
            Node::Num(_) => Err(self.refuse(start, "starts a number where a condition is needed")),
        }
    }

    fn number(&self, start: usize, node: Node) -> Result<Num> {
        match node {
            Node::Num(n) => Ok(n),
            Node::Bool(_) => Err(self.refuse(start, "starts a condition where a number is needed")),
        }
    }

    fn expr(&mut self) -> Result<Node> {
        self.logic(("||", "or"), Bool::Or, Self::and)
    }

    fn and(&mut self) -> Result<Node> {
        self.logic(("&&", "and"), Bool::And, Self::not)
    }

    /// Operands joined by a logical operator, written as a symbol or a word.
    fn logic(
        &mut self,
        (symbol, word): (&str, &str),
        join: fn(Box<Bool>, Box<Bool>) -> Bool,
        operand: fn(&mut Self) -> Result<Node>,
    ) -> Result<Node> {
        let start = self.at;
        let mut left = operand(self)?;
        while self.is(symbol, word) {
            self.at += 1;
            let rhs_at = self.at;
            let right = operand(self)?;
            let l = self.boolean(start, left)?;
            let r = self.boolean(rhs_at, right)?;
            left = Node::Bool(join(Box::new(l), Box::new(r)));
        }
        Ok(left)
    }

    /// One level deeper, or a refusal past [`MAX_DEPTH`]; the caller steps back out.
    fn deeper(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.refuse(
                self.at,
                &format!("nests deeper than {MAX_DEPTH} parentheses, `!` and `-` together"),
            ));
        }
        Ok(())
    }

    /// A comparison, or `!`/`not` of what follows it. As in expr-lang, `!` binds tighter than
    /// a comparison or `+` and `-` (only `*` and `/` bind tighter still), so `!result[0] > 2` is
    /// `(!result[0]) > 2`, a negated number, which Argo errors on: refused here, not read as
    /// `!(result[0] > 2)`.
    fn not(&mut self) -> Result<Node> {
        if !self.is("!", "not") {
            return self.comparison();
        }
        self.at += 1;
        let start = self.at;
        self.deeper()?;
        let inner = if self.is("!", "not") {
            self.not()
        } else {
            self.product()
        }?;
        self.depth -= 1;
        match inner {
            Node::Bool(b) => Ok(Node::Bool(Bool::Not(Box::new(b)))),
            Node::Num(_) => Err(self.refuse(
                start,
                "starts a number where `!` needs a condition: `!` applies to what follows it \
                 alone, so write `!(…)` around a comparison",
            )),
        }
    }

    fn comparison(&mut self) -> Result<Node> {
        let start = self.at;
        let left = self.sum()?;
        let cmp = match self.peek() {
            Some(Token::Symbol("<")) => Cmp::Lt,
            Some(Token::Symbol("<=")) => Cmp::Le,
            Some(Token::Symbol(">")) => Cmp::Gt,
            Some(Token::Symbol(">=")) => Cmp::Ge,
            Some(Token::Symbol("==")) => Cmp::Eq,
            Some(Token::Symbol("!=")) => Cmp::Ne,
            _ => return Ok(left),
        };
        self.at += 1;
        let rhs_at = self.at;
        let right = self.sum()?;
        let l = self.number(start, left)?;
        let r = self.number(rhs_at, right)?;
        Ok(Node::Bool(Bool::Compare(Box::new(l), cmp, Box::new(r))))
    }

    fn sum(&mut self) -> Result<Node> {
        self.arith(&[("+", Op::Add), ("-", Op::Sub)], Self::product)
    }

    fn product(&mut self) -> Result<Node> {
        self.arith(&[("*", Op::Mul), ("/", Op::Div)], Self::unary)
    }

    fn arith(
        &mut self,
        ops: &[(&str, Op)],
        operand: fn(&mut Self) -> Result<Node>,
    ) -> Result<Node> {
        let start = self.at;
        let mut left = operand(self)?;
        while let Some(&(_, op)) = ops.iter().find(|(s, _)| self.is(s, "")) {
            self.at += 1;
            let rhs_at = self.at;
            let right = operand(self)?;
            let l = self.number(start, left)?;
            let r = self.number(rhs_at, right)?;
            left = Node::Num(Num::Arith(Box::new(l), op, Box::new(r)));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Node> {
        if self.is("-", "") {
            self.at += 1;
            let start = self.at;
            self.deeper()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Node::Num(Num::Neg(Box::new(self.number(start, inner)?))));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Node> {
        let start = self.at;
        let token = self.peek().cloned();
        match token {
            Some(Token::Number(n)) => {
                self.at += 1;
                Ok(Node::Num(Num::Const(n)))
            }
            Some(Token::Symbol("(")) => {
                self.at += 1;
                self.deeper()?;
                let inner = self.expr()?;
                self.depth -= 1;
                self.expect(")", "a closing `)`")?;
                Ok(inner)
            }
            Some(Token::Word(w)) => {
                self.at += 1;
                match w.as_str() {
                    "true" => Ok(Node::Bool(Bool::Const(true))),
                    "false" => Ok(Node::Bool(Bool::Const(false))),
                    "result" => {
                        self.index()?;
                        Ok(Node::Num(Num::Result))
                    }
                    "isNaN" | "isInf" => {
                        self.argument()?;
                        Ok(Node::Bool(Bool::NotFinite))
                    }
                    "len" => {
                        self.argument()?;
                        Ok(Node::Num(Num::Const(1.0)))
                    }
                    "default" => {
                        // `default(result, x)`: the fallback is for no data, which never
                        // reaches a condition; it must still be a number.
                        self.open_result()?;
                        self.expect(",", "a comma before the fallback")?;
                        let at = self.at;
                        let fallback = self.sum()?;
                        self.number(at, fallback)?;
                        self.expect(")", "a closing `)`")?;
                        Ok(Node::Num(Num::Result))
                    }
                    _ => Err(self.refuse(
                        start,
                        "is not read here: a condition may use `result`, `result[0]`, \
                         `isNaN(…)`, `isInf(…)`, `len(result)`, `default(result, …)`, `true` \
                         and `false`",
                    )),
                }
            }
            _ => Err(self.refuse(start, "is not a number, `result` or `(`")),
        }
    }

    /// An optional `[0]` after `result`: the judge's one value.
    fn index(&mut self) -> Result<()> {
        if !self.is("[", "") {
            return Ok(());
        }
        self.at += 1;
        match self.peek() {
            Some(Token::Number(n)) if *n == 0.0 => self.at += 1,
            _ => {
                return Err(self.refuse(
                    self.at,
                    "is not an index Serin reads: a measurement is one value, `result[0]`",
                ));
            }
        }
        self.expect("]", "a closing `]`")
    }

    /// `(result)` or `(result[0])`, the one argument of `isNaN`, `isInf` and `len`.
    fn argument(&mut self) -> Result<()> {
        self.open_result()?;
        self.expect(")", "a closing `)`")
    }

    /// `(result` or `(result[0]`, a call's first argument.
    fn open_result(&mut self) -> Result<()> {
        self.expect("(", "an opening `(`")?;
        if !self.is("", "result") {
            return Err(self.refuse(self.at, "is not `result`, the only argument read here"));
        }
        self.at += 1;
        self.index()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn holds(source: &str, v: f64) -> bool {
        Expression::parse(source).unwrap().holds(v)
    }

    #[test]
    fn argo_template_conditions_read_as_argo_evaluates_them() {
        assert!(holds("result[0] <= 0.01", 0.01) && !holds("result[0] <= 0.01", 0.011));
        assert!(!holds("result[0] < 0.01", 0.01) && holds("result < 0.01", 0.009));
        assert!(holds("result[0] >= 0.95", 0.95) && !holds("result[0] > 0.95", 0.95));
        assert!(holds("0.95 <= result[0]", 0.96) && !holds("0.95 <= result[0]", 0.94));
        assert!(holds("result[0] == 0", 0.0) && holds("result[0] != 0", 1e-9));
        let range = "result[0] >= 0.9 and result[0] <= 1.0";
        assert!(holds(range, 0.95) && !holds(range, 0.85) && !holds(range, 1.1));
        let either = "result[0] < 1 || result[0] > 5";
        assert!(holds(either, 0.5) && holds(either, 6.0) && !holds(either, 3.0));
        assert!(holds("!(result[0] > 2)", 1.0) && !holds("not (result[0] > 2)", 3.0));
    }

    #[test]
    fn arithmetic_and_precedence_follow_expr_lang() {
        assert!(holds("result[0] * 100 >= 95", 0.951));
        assert!(!holds("result[0] * 100 >= 95", 0.949));
        assert!(holds("1 + 2 * result == 7", 3.0));
        assert!(holds("(1 + 2) * result == 9", 3.0));
        assert!(holds("result / 1e3 < 0.5", 499.0) && holds("-result < -1", 2.0));
        assert!(holds("false || true && result > 1", 2.0));
        assert!(!holds("false || true && result > 1", 0.5));
        assert!(holds("result > 1.5e-3", 0.002) && holds("result < 2E2", 199.0));
        let nested = format!("{}result > 1{}", "(".repeat(32), ")".repeat(32));
        assert!(holds(&nested, 2.0), "32 levels are read");
    }

    #[test]
    fn no_data_guards_read_on_the_finite_values_conditions_see() {
        let guarded = "isNaN(result) || result[0] < 0.01";
        assert!(holds(guarded, 0.005) && !holds(guarded, 0.5));
        assert!(holds("len(result) == 0 || result[0] < 0.01", 0.005));
        assert!(!holds("len(result) > 0 && result[0] >= 1", 0.5));
        let defaulted = "default(result, 0) < 0.01";
        assert!(holds(defaulted, 0.005) && !holds(defaulted, 0.02));
        assert!(holds("default(result[0], -1.5e-3) >= 1", 1.0));
        assert!(holds("!isInf(result[0]) && result[0] >= 1", 2.0));
    }

    #[test]
    fn negation_takes_what_follows_it_alone() {
        assert!(holds("!isNaN(result) && result[0] < 1", 0.5));
        assert!(!holds("!isNaN(result) && result[0] < 1", 1.5));
        assert!(holds("!!(result > 1)", 2.0) && holds("not not (result > 1)", 2.0));
        assert!(holds("!false && result > 1", 2.0) && !holds("!true || result > 1", 0.5));
        assert!(holds("result < 9223372036854775807", 1e18));
        assert!(holds("result < 99999999999999999999.0", 1e19));
    }

    #[test]
    fn what_cannot_be_honoured_is_refused_with_its_position() {
        let deep = format!("{}result > 1{}", "(".repeat(33), ")".repeat(33));
        let negated = format!("{}result > 1", "!".repeat(40));
        let long = format!("{}result > 1", "(".repeat(10_000));
        for (source, names) in [
            ("asInt(result) < 1", "`asInt` at character 1"),
            ("default(result, true) < 1", "`true` at character 17"),
            ("default(result) < 1", "`)` at character 15 is not a comma"),
            ("result[1] > 0", "`1` at character 8"),
            ("result[0] <= ", "ends before"),
            ("result[0] <= 0.01 &&", "ends before"),
            ("result[0]", "is a number, not a condition"),
            ("result[0] < 1 result", "`result` at character 15"),
            ("result > 'a'", "`'` at character 10"),
            ("(result > 1", "ends before"),
            ("result && result[0] < 1", "`result` at character 1"),
            ("result < (1 > 0)", "`(` at character 10"),
            ("1.2.3 > result", "`1.2.3` at character 1 is not a number"),
            ("isNaN(x)", "`x` at character 7"),
            ("", "ends before"),
            (&deep, "nests deeper than 32"),
            (&negated, "nests deeper than 32"),
            (&long, "is 10010 characters long, more than the 1000 read"),
            // `!` binds tighter than a comparison, as in expr-lang: these negate a number.
            (
                "!result[0] > 2",
                "`result` at character 2 starts a number where `!` needs",
            ),
            (
                "not result > 0.5",
                "`result` at character 5 starts a number where `!` needs",
            ),
            ("!result * 2 < 1", "write `!(…)`"),
            // Literals expr-lang cannot hold: Argo errors on them.
            (
                "result < 1e400",
                "`1e400` at character 10 is beyond the largest number",
            ),
            (
                "result < 99999999999999999999",
                "is beyond the largest integer",
            ),
        ] {
            let err = Expression::parse(source).unwrap_err().to_string();
            assert!(err.contains(names) && err.len() < 2_000, "{err}");
            assert!(err.contains("condition"), "{err}");
        }
    }

    #[test]
    fn serde_reads_bounds_or_an_expression_and_writes_them_back_as_written() {
        let e: Condition = serde_json::from_str(r#""result[0] <= 0.01""#).unwrap();
        assert_eq!(serde_json::to_string(&e).unwrap(), r#""result[0] <= 0.01""#);
        assert_eq!(e.to_string(), "result[0] <= 0.01");
        let b: Condition = serde_json::from_str(r#"{"min": 99}"#).unwrap();
        assert_eq!(b, Condition::Bounds(Range::at_least(99.0)));
        assert_eq!(
            serde_json::to_string(&b).unwrap(),
            r#"{"min":99.0,"max":null}"#
        );
        let y: Condition = serde_yaml_ng::from_str("result[0] >= 0.95").unwrap();
        assert!(y.holds(0.96));
        let bad = serde_json::from_str::<Condition>(r#""result[0] <= ""#).unwrap_err();
        assert!(bad.to_string().contains("ends before"), "{bad}");
        let unknown = serde_json::from_str::<Condition>(r#"{"maximum": 1}"#).unwrap_err();
        assert!(unknown.to_string().contains("maximum"), "{unknown}");
        assert!(serde_json::from_str::<Condition>("3").is_err());
    }

    proptest! {
        /// Whatever is written, reading it answers (a condition or a refusal) and never panics.
        #[test]
        fn any_text_is_read_or_refused(source in "\\PC{0,40}") {
            let _ = Expression::parse(&source);
        }

        /// Text made of the language's own pieces, in any order, is read or refused too.
        #[test]
        fn any_sequence_of_pieces_is_read_or_refused(pieces in proptest::collection::vec(
            prop::sample::select(vec![
                "result", "result[0]", "[", "]", "0", "1.5e-2", "(", ")", "&&", "||", "!",
                "and", "not", "<", "<=", "==", "+", "-", "*", "/", "isNaN(", "len(", ",", "true",
            ]),
            0..12,
        )) {
            let _ = Expression::parse(&pieces.join(" "));
        }

        /// A pair of inclusive comparisons holds exactly where the bounds they spell contain
        /// the value.
        #[test]
        fn comparisons_agree_with_the_bounds_they_spell(
            lo in -1e3f64..1e3,
            width in 0f64..1e3,
            v in -2e3f64..2e3,
        ) {
            let hi = lo + width;
            let e = Expression::parse(&format!("result[0] >= {lo:?} && {hi:?} >= result")).unwrap();
            let bounds = Range { min: Some(lo), max: Some(hi) };
            prop_assert_eq!(e.holds(v), bounds.contains(v));
        }
    }
}
