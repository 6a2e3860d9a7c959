//! A YAML tree that remembers where every key and value was written.
//!
//! Recipes are parsed with `saphyr-parser` (a maintained, pure-Rust YAML 1.2 parser that reports a
//! position for every event) into [`Node`]s carrying [`Span`]s. We build our own tree instead of going
//! through serde because checking must report *every* problem with its `file:line:col`, and a serde
//! deserializer stops at the first. Scalars are typed with the YAML 1.2 core schema (plain `true`,
//! `12`, `1.0e-3`, `.nan`, `~`; quoted scalars are always strings). Anchors and aliases are expanded.
//!
//! Hostile input is bounded before it costs memory or stack: nesting deeper than [`MAX_DEPTH`]
//! levels and anchors/aliases that would copy more than [`MAX_COPIED`] nodes and bytes (a "billion
//! laughs" alias bomb: 9 levels of 10 aliases is 10^9 nodes from 545 bytes) stop parsing with a
//! diagnostic at the node that crossed the limit. Everything else the tree holds was written out in
//! the file, so a recipe's tree is at most a small multiple of its size plus [`MAX_COPIED`].
//!
//! [`merge`] implements recipe and stage inheritance: maps merge key by key, anything else (lists
//! included) is replaced by the overriding value, which keeps the overriding node's span, so errors in
//! inherited fields still point at the file that wrote them.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span as YamlSpan};

use crate::diag::{Diagnostic, FileId, Span};

/// Deepest nesting of maps and lists accepted. Recipes use about 5 levels; the tree is built (and
/// dropped, and merged) recursively, so without a bound 10,000 nested `- ` lines overflow the stack.
pub const MAX_DEPTH: usize = 64;

/// Most nodes plus scalar bytes that anchors and aliases may copy in one file. A copy is made when
/// an anchored node is remembered and each time an alias expands it; a recipe sharing a few image or
/// train settings copies hundreds. The bound keeps an alias bomb to about 20 MB and 10 ms of work.
pub const MAX_COPIED: u64 = 200_000;

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

/// A mapping key (always a string in recipes) with its position.
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    pub name: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
}

impl Node {
    /// The entries of a map node.
    pub fn entries(&self) -> Option<&[(Key, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The value under `key` in a map node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entries()?
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }

    /// The key (with its span) under which `key` is stored.
    pub fn key(&self, key: &str) -> Option<&Key> {
        self.entries()?
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(k, _)| k)
    }

    /// A copy of a map without the given keys.
    pub fn without(&self, keys: &[&str]) -> Node {
        match &self.value {
            Value::Map(entries) => Node {
                value: Value::Map(
                    entries
                        .iter()
                        .filter(|(k, _)| !keys.contains(&k.name.as_str()))
                        .cloned()
                        .collect(),
                ),
                span: self.span,
            },
            _ => self.clone(),
        }
    }

    /// A short description of the node's type for "expected X, found Y" messages.
    pub fn type_name(&self) -> &'static str {
        match &self.value {
            Value::Null => "nothing",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a map",
        }
    }
}

/// Parses one YAML document. An empty document yields `Ok(None)`. Syntax errors and duplicate keys are
/// returned as diagnostics (the first syntax error ends parsing; YAML cannot be resynchronised).
pub fn parse(text: &str, file: FileId) -> Result<Option<Node>, Vec<Diagnostic>> {
    let mut builder = Builder {
        file,
        anchors: HashMap::new(),
        diagnostics: Vec::new(),
        text_lines: text.lines().collect(),
        depth: 0,
        copied: 0,
    };
    let mut parser = Parser::new_from_str(text);
    let mut root = None;
    let mut documents = 0;
    loop {
        let (event, span) = match parser.next_event() {
            None => break,
            Some(Ok(ev)) => ev,
            Some(Err(err)) => {
                let m = err.marker();
                let span = Span {
                    file,
                    line: m.line() as u32,
                    col: m.col() as u32 + 1,
                    len: 1,
                };
                builder.diagnostics.push(Diagnostic::error(
                    span,
                    format!("invalid YAML: {}", err.info()),
                ));
                return Err(builder.diagnostics);
            }
        };
        match event {
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
            Event::StreamEnd => break,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    builder.diagnostics.push(
                        Diagnostic::error(builder.span(span), "a recipe file holds one YAML document, found a second")
                            .with_hint("remove the `---` line, or split the documents into separate recipe files"),
                    );
                    return Err(builder.diagnostics);
                }
            }
            other => match builder.node(other, span, &mut parser) {
                Ok(node) => root = Some(node),
                Err(()) => return Err(builder.diagnostics),
            },
        }
    }
    if builder.diagnostics.is_empty() {
        Ok(root)
    } else {
        Err(builder.diagnostics)
    }
}

struct Builder<'t> {
    file: FileId,
    /// Anchored nodes with their [`weight`].
    anchors: HashMap<usize, (Node, u64)>,
    diagnostics: Vec<Diagnostic>,
    text_lines: Vec<&'t str>,
    /// Maps and lists open around the node being built.
    depth: usize,
    /// Nodes and bytes copied for anchors and aliases so far, against [`MAX_COPIED`].
    copied: u64,
}

impl Builder<'_> {
    fn span(&self, span: YamlSpan) -> Span {
        let start = span.start;
        let line = start.line() as u32;
        let col = start.col() as u32 + 1;
        let len = if span.end.line() == start.line() {
            span.end.col().saturating_sub(start.col()) as u32
        } else {
            // Multi-line values underline to the end of their first line.
            self.text_lines
                .get(start.line().saturating_sub(1))
                .map(|l| l.chars().count().saturating_sub(start.col()) as u32)
                .unwrap_or(1)
        };
        Span {
            file: self.file,
            line,
            col,
            len: len.max(1),
        }
    }

    fn node<'i>(
        &mut self,
        event: Event<'i>,
        span: YamlSpan,
        parser: &mut Parser<'i, saphyr_parser::StrInput<'i>>,
    ) -> Result<Node, ()> {
        let span = self.span(span);
        let (node, anchor) = match event {
            Event::Scalar(text, style, anchor, _tag) => {
                let value = if style == ScalarStyle::Plain {
                    plain_scalar(&text)
                } else {
                    Value::Str(text.into_owned())
                };
                (Node { value, span }, anchor)
            }
            Event::Alias(id) => {
                return match self.anchors.get(&id).map(|(_, weight)| *weight) {
                    Some(weight) => {
                        self.copy(weight, span)?;
                        let (node, _) = &self.anchors[&id];
                        Ok(Node {
                            value: node.value.clone(),
                            span,
                        })
                    }
                    None => {
                        self.diagnostics
                            .push(Diagnostic::error(span, "alias refers to an unknown anchor"));
                        Err(())
                    }
                };
            }
            Event::SequenceStart(anchor, _) => {
                self.enter(span)?;
                let mut items = Vec::new();
                loop {
                    let (ev, sp) = self.next(parser)?;
                    if matches!(ev, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(ev, sp, parser)?);
                }
                self.depth -= 1;
                (
                    Node {
                        value: Value::Seq(items),
                        span,
                    },
                    anchor,
                )
            }
            Event::MappingStart(anchor, _) => {
                self.enter(span)?;
                let mut entries: Vec<(Key, Node)> = Vec::new();
                loop {
                    let (ev, sp) = self.next(parser)?;
                    if matches!(ev, Event::MappingEnd) {
                        break;
                    }
                    let key_node = self.node(ev, sp, parser)?;
                    let key = match key_node.value {
                        Value::Str(s) => Key {
                            name: s,
                            span: key_node.span,
                        },
                        Value::Int(i) => Key {
                            name: i.to_string(),
                            span: key_node.span,
                        },
                        Value::Bool(b) => Key {
                            name: b.to_string(),
                            span: key_node.span,
                        },
                        Value::Float(f) => Key {
                            name: f.to_string(),
                            span: key_node.span,
                        },
                        _ => {
                            self.diagnostics.push(Diagnostic::error(
                                key_node.span,
                                format!(
                                    "map keys must be plain names, found {}",
                                    key_node.type_name()
                                ),
                            ));
                            return Err(());
                        }
                    };
                    let (ev, sp) = self.next(parser)?;
                    let value = self.node(ev, sp, parser)?;
                    if let Some((first, _)) = entries.iter().find(|(k, _)| k.name == key.name) {
                        self.diagnostics.push(
                            Diagnostic::error(key.span, format!("duplicate key `{}`", key.name))
                                .with_hint(format!(
                                    "`{}` is already set at line {}; keep one of them",
                                    key.name, first.span.line
                                )),
                        );
                    } else {
                        entries.push((key, value));
                    }
                }
                self.depth -= 1;
                (
                    Node {
                        value: Value::Map(entries),
                        span,
                    },
                    anchor,
                )
            }
            Event::SequenceEnd | Event::MappingEnd | Event::StreamStart | Event::StreamEnd => {
                self.diagnostics
                    .push(Diagnostic::error(span, "unexpected end of YAML structure"));
                return Err(());
            }
            Event::DocumentStart(_) | Event::DocumentEnd | Event::Nothing => {
                self.diagnostics
                    .push(Diagnostic::error(span, "unexpected YAML document marker"));
                return Err(());
            }
        };
        if anchor > 0 {
            let weight = weight(&node);
            self.copy(weight, span)?;
            self.anchors.insert(anchor, (node.clone(), weight));
        }
        Ok(node)
    }

    /// Opens a map or list, refusing to nest deeper than [`MAX_DEPTH`].
    fn enter(&mut self, span: Span) -> Result<(), ()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            self.diagnostics.push(
                Diagnostic::error(span, format!("YAML nested deeper than {MAX_DEPTH} levels"))
                    .with_hint("a recipe needs a handful of levels; check the indentation or the brackets here"),
            );
            return Err(());
        }
        Ok(())
    }

    /// Accounts for copying `weight` nodes and bytes (an anchor remembered or an alias expanded).
    fn copy(&mut self, weight: u64, span: Span) -> Result<(), ()> {
        self.copied = self.copied.saturating_add(weight);
        if self.copied > MAX_COPIED {
            self.diagnostics.push(
                Diagnostic::error(
                    span,
                    format!("anchors and aliases expand this recipe past {MAX_COPIED} copied nodes and bytes"),
                )
                .with_hint("aliases of aliases multiply (an alias bomb); write the shared settings out, or alias smaller pieces"),
            );
            return Err(());
        }
        Ok(())
    }

    fn next<'i>(
        &mut self,
        parser: &mut Parser<'i, saphyr_parser::StrInput<'i>>,
    ) -> Result<(Event<'i>, YamlSpan), ()> {
        match parser.next_event() {
            Some(Ok(ev)) => Ok(ev),
            Some(Err(err)) => {
                let m = err.marker();
                let span = Span {
                    file: self.file,
                    line: m.line() as u32,
                    col: m.col() as u32 + 1,
                    len: 1,
                };
                self.diagnostics.push(Diagnostic::error(
                    span,
                    format!("invalid YAML: {}", err.info()),
                ));
                Err(())
            }
            None => {
                let span = Span {
                    file: self.file,
                    line: self.text_lines.len().max(1) as u32,
                    col: 1,
                    len: 1,
                };
                self.diagnostics.push(Diagnostic::error(
                    span,
                    "invalid YAML: unexpected end of file",
                ));
                Err(())
            }
        }
    }
}

/// What copying a node costs: one per node and per byte of scalar text or key.
fn weight(node: &Node) -> u64 {
    1 + match &node.value {
        Value::Str(s) => s.len() as u64,
        Value::Seq(items) => items.iter().map(weight).sum(),
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| k.name.len() as u64 + weight(v))
            .sum(),
        _ => 0,
    }
}

/// YAML 1.2 core schema resolution of a plain scalar.
fn plain_scalar(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        _ => {}
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && let Ok(i) = text.parse::<i64>()
    {
        return Value::Int(i);
    }
    if let Some(hex) = text.strip_prefix("0x")
        && let Ok(i) = i64::from_str_radix(hex, 16)
    {
        return Value::Int(i);
    }
    let looks_numeric = digits.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
    if looks_numeric && let Ok(f) = text.parse::<f64>() {
        return Value::Float(f);
    }
    Value::Str(text.to_owned())
}

/// Deep merge for inheritance: maps merge key by key (base order first, new keys appended), any other
/// value in `over` replaces the one in `base`.
pub fn merge(base: &Node, over: &Node) -> Node {
    match (&base.value, &over.value) {
        (Value::Map(base_entries), Value::Map(over_entries)) => {
            let mut entries = base_entries.clone();
            for (key, value) in over_entries {
                match entries.iter_mut().find(|(k, _)| k.name == key.name) {
                    Some((k, existing)) => {
                        *existing = merge(existing, value);
                        *k = key.clone();
                    }
                    None => entries.push((key.clone(), value.clone())),
                }
            }
            Node {
                value: Value::Map(entries),
                span: over.span,
            }
        }
        _ => over.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Location;

    fn parse_ok(text: &str) -> Node {
        parse(text, 0).expect("valid yaml").expect("non-empty")
    }

    #[test]
    fn scalars_follow_the_core_schema() {
        let n = parse_ok(
            "a: 12\nb: 1.0e-3\nc: '12'\nd: true\ne: ~\nf: .nan\ng: hello\nh: -3\ni: 2e6\n",
        );
        assert_eq!(n.get("a").unwrap().value, Value::Int(12));
        assert_eq!(n.get("b").unwrap().value, Value::Float(1.0e-3));
        assert_eq!(n.get("c").unwrap().value, Value::Str("12".into()));
        assert_eq!(n.get("d").unwrap().value, Value::Bool(true));
        assert_eq!(n.get("e").unwrap().value, Value::Null);
        assert!(matches!(n.get("f").unwrap().value, Value::Float(f) if f.is_nan()));
        assert_eq!(n.get("g").unwrap().value, Value::Str("hello".into()));
        assert_eq!(n.get("h").unwrap().value, Value::Int(-3));
        assert_eq!(n.get("i").unwrap().value, Value::Float(2e6));
    }

    #[test]
    fn keys_and_values_know_their_line_and_column() {
        let n = parse_ok("version: 1\nstages:\n  - name: warmup\n    seq_len: 4096\n");
        let stage = match &n.get("stages").unwrap().value {
            Value::Seq(items) => items[0].clone(),
            _ => panic!("not a list"),
        };
        let key = stage.key("seq_len").unwrap();
        assert_eq!((key.span.line, key.span.col, key.span.len), (4, 5, 7));
        let value = stage.get("seq_len").unwrap();
        assert_eq!(
            (value.span.line, value.span.col, value.span.len),
            (4, 14, 4)
        );
    }

    #[test]
    fn flow_maps_have_spans_too() {
        let n = parse_ok("image: {max_pixels: 500, min_pixels: 3136}\n");
        let v = n.get("image").unwrap().get("max_pixels").unwrap();
        assert_eq!((v.span.line, v.span.col), (1, 21));
    }

    #[test]
    fn duplicate_keys_and_syntax_errors_are_diagnostics() {
        let errs = parse("a: 1\na: 2\n", 0).unwrap_err();
        assert!(errs[0].message.contains("duplicate key `a`"));
        let errs = parse("a: [1, 2\n", 0).unwrap_err();
        assert!(errs[0].message.starts_with("invalid YAML"));
    }

    #[test]
    fn aliases_expand() {
        let n = parse_ok("base: &b {x: 1}\nother: *b\n");
        assert_eq!(
            n.get("other").unwrap().get("x").unwrap().value,
            Value::Int(1)
        );
    }

    #[test]
    fn an_alias_bomb_stops_at_the_alias_that_crosses_the_budget() {
        // The classic: 9 levels of 10 aliases, 545 bytes, 10^9 nodes if expanded.
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let errs = parse(&text, 0).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0]
                .message
                .contains("past 200000 copied nodes and bytes"),
            "{}",
            errs[0].message
        );
        let Location::Span(span) = errs[0].location else {
            panic!("no span")
        };
        assert!((5..=7).contains(&span.line), "blamed line {}", span.line);
    }

    #[test]
    fn a_few_aliases_of_shared_settings_are_fine() {
        let mut text = String::from("img: &img {max_pixels: 1003520, min_pixels: 3136}\nstages:\n");
        for i in 0..200 {
            text.push_str(&format!("  - {{name: s{i}, image: *img}}\n"));
        }
        let n = parse_ok(&text);
        assert!(matches!(&n.get("stages").unwrap().value, Value::Seq(items) if items.len() == 200));
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_an_error_at_the_level_that_crosses_it() {
        let deep: String = (0..10_000)
            .map(|i| format!("{}- \n", "  ".repeat(i)))
            .collect();
        let errs = parse(&deep, 0).unwrap_err();
        assert!(
            errs[0].message.contains("nested deeper than 64 levels"),
            "{}",
            errs[0].message
        );
        let Location::Span(span) = errs[0].location else {
            panic!("no span")
        };
        assert_eq!(span.line, 65);
        let flow = format!("a: {}{}", "[".repeat(200), "]".repeat(200));
        assert!(
            parse(&flow, 0).unwrap_err()[0]
                .message
                .contains("nested deeper than 64 levels")
        );
        let ok = format!(
            "a: {}{}",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        assert!(parse(&ok, 0).is_ok());
    }

    #[test]
    fn merge_merges_maps_and_replaces_lists() {
        let base = parse_ok("a: {x: 1, y: 2}\nl: [1, 2]\n");
        let over = parse_ok("a: {y: 3, z: 4}\nl: [9]\n");
        let m = merge(&base, &over);
        let a = m.get("a").unwrap();
        assert_eq!(a.get("x").unwrap().value, Value::Int(1));
        assert_eq!(a.get("y").unwrap().value, Value::Int(3));
        assert_eq!(a.get("z").unwrap().value, Value::Int(4));
        assert!(matches!(&m.get("l").unwrap().value, Value::Seq(items) if items.len() == 1));
    }
}
