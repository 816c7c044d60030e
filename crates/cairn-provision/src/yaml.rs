//! YAML documents as trees that remember where each node was written (line, column), so
//! that every error can point at the user's file.
//!
//! Built from `yaml-rust2`'s event parser. Scalars are resolved the way Butane's YAML
//! library resolves them: plain `true`/`false`, `null`/`~`/empty, integers (decimal,
//! `0o17`, `0x1f`, and `0644` as octal, so that modes read as people write them), floats;
//! quoted scalars are always strings. Anchors and aliases are expanded; duplicate keys
//! are an error.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A position in a source file, 1-based.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mark {
    pub line: usize,
    pub column: usize,
}

impl From<Marker> for Mark {
    fn from(m: Marker) -> Mark {
        Mark {
            line: m.line(),
            column: m.col() + 1,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Keys in document order, each with the mark of the key itself.
    Map(Vec<(String, Mark, Node)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Value,
    pub mark: Mark,
    /// The text of a plain (unquoted) scalar, for reading it as the type a field
    /// expects, as Butane's YAML library does (`inline: 1` is the string "1").
    pub plain: Option<String>,
}

impl Node {
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _, _)| k == key).map(|(_, _, n)| n),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// What kind of value this is, for messages ("a string", "a list", …).
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The node as JSON (keys unchanged).
    pub fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::Seq(items) => items.iter().map(Node::to_json).collect(),
            Value::Map(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|(k, _, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// A YAML syntax error, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub mark: Mark,
    pub message: String,
}

/// YAML merge keys (`<<: *base`, `<<: [*a, *b]`): the merged mappings' keys that the
/// mapping does not set itself are added, the first merged mapping winning.
fn expand_merge_keys(entries: &mut Vec<(String, Mark, Node)>) {
    let Some(at) = entries.iter().position(|(k, _, _)| k == "<<") else {
        return;
    };
    let (_, _, merged) = entries.remove(at);
    let sources = match merged.value {
        Value::Map(_) => vec![merged],
        Value::Seq(items) => items,
        _ => Vec::new(),
    };
    for source in sources {
        if let Value::Map(extra) = source.value {
            for entry in extra {
                if !entries.iter().any(|(k, _, _)| *k == entry.0) {
                    entries.push(entry);
                }
            }
        }
    }
}

/// Resolves a plain scalar to its type.
fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => (-1i64, rest),
        None => (1, text.strip_prefix('+').unwrap_or(text)),
    };
    let radix = |prefix: &str, radix: u32| {
        digits
            .strip_prefix(prefix)
            .filter(|d| !d.is_empty())
            .and_then(|d| i64::from_str_radix(&d.replace('_', ""), radix).ok())
    };
    if let Some(n) = radix("0o", 8).or_else(|| radix("0x", 16)) {
        return Value::Int(sign * n);
    }
    if digits.len() > 1 && digits.starts_with('0') && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(n) = i64::from_str_radix(digits, 8) {
            return Value::Int(sign * n);
        }
    }
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(n) = digits.parse::<i64>() {
            return Value::Int(sign * n);
        }
    }
    let looks_numeric = text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        && text.bytes().any(|b| b.is_ascii_digit());
    if looks_numeric {
        if let Ok(f) = text.parse::<f64>() {
            return Value::Float(f);
        }
    }
    match text {
        ".inf" | ".Inf" | "+.inf" => Value::Float(f64::INFINITY),
        "-.inf" | "-.Inf" => Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" => Value::Float(f64::NAN),
        _ => Value::Str(text.to_owned()),
    }
}

enum Frame {
    Seq(Vec<Node>, Mark, usize),
    Map(
        Vec<(String, Mark, Node)>,
        Mark,
        usize,
        Option<(String, Mark)>,
    ),
}

/// Nodes a document may hold once aliases are expanded: a "billion laughs" document
/// of a few lines must not exhaust memory.
const MAX_NODES: usize = 1_000_000;

/// Nesting any real config stays far below; deeper input would only exhaust the stack.
const MAX_DEPTH: usize = 128;

fn count_nodes(node: &Node) -> usize {
    1 + match &node.value {
        Value::Seq(items) => items.iter().map(count_nodes).sum(),
        Value::Map(entries) => entries.iter().map(|(_, _, n)| count_nodes(n)).sum(),
        _ => 0,
    }
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    /// Anchored nodes with their size in nodes.
    anchors: HashMap<usize, (Node, usize)>,
    nodes: usize,
    documents: Vec<Node>,
    error: Option<SyntaxError>,
}

impl Builder {
    fn push_node(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            let size = count_nodes(&node);
            self.anchors.insert(anchor, (node.clone(), size));
        }
        match self.stack.last_mut() {
            None => self.documents.push(node),
            Some(Frame::Seq(items, _, _)) => items.push(node),
            Some(Frame::Map(entries, _, _, pending)) => match pending.take() {
                None => {
                    let key = match node.value {
                        Value::Str(s) => s,
                        Value::Int(i) => i.to_string(),
                        Value::Bool(b) => b.to_string(),
                        Value::Float(f) => f.to_string(),
                        Value::Null => "null".to_owned(),
                        Value::Seq(_) | Value::Map(_) => {
                            self.error.get_or_insert(SyntaxError {
                                mark: node.mark,
                                message: "a mapping key must be a scalar".into(),
                            });
                            return;
                        }
                    };
                    if entries.iter().any(|(k, _, _)| *k == key) {
                        self.error.get_or_insert(SyntaxError {
                            mark: node.mark,
                            message: format!("duplicate key {key:?}"),
                        });
                    }
                    *pending = Some((key, node.mark));
                }
                Some((key, mark)) => entries.push((key, mark, node)),
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, marker: Marker) {
        if self.error.is_some() {
            return;
        }
        let mark = Mark::from(marker);
        self.nodes += 1;
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                // `!!str 12` is the string "12".
                let tagged_str = tag
                    .as_ref()
                    .is_some_and(|t| t.suffix == "str" || t.suffix.ends_with(":str"));
                let (value, plain) = if style == TScalarStyle::Plain && !tagged_str {
                    (resolve_plain(&text), Some(text))
                } else {
                    (Value::Str(text), None)
                };
                self.push_node(Node { value, mark, plain }, anchor);
            }
            Event::SequenceStart(..) | Event::MappingStart(..) if self.stack.len() >= MAX_DEPTH => {
                self.error = Some(SyntaxError {
                    mark,
                    message: format!("nesting deeper than {MAX_DEPTH} levels"),
                });
            }
            Event::SequenceStart(anchor, _) => {
                self.stack.push(Frame::Seq(Vec::new(), mark, anchor))
            }
            Event::MappingStart(anchor, _) => {
                self.stack.push(Frame::Map(Vec::new(), mark, anchor, None))
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq(items, mark, anchor)) = self.stack.pop() {
                    self.push_node(
                        Node {
                            value: Value::Seq(items),
                            mark,
                            plain: None,
                        },
                        anchor,
                    );
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(mut entries, mark, anchor, _)) = self.stack.pop() {
                    expand_merge_keys(&mut entries);
                    // A block mapping's event comes after its first key; point at that key.
                    let mark = entries.first().map_or(mark, |(_, key_mark, _)| {
                        if (key_mark.line, key_mark.column) < (mark.line, mark.column) {
                            *key_mark
                        } else {
                            mark
                        }
                    });
                    self.push_node(
                        Node {
                            value: Value::Map(entries),
                            mark,
                            plain: None,
                        },
                        anchor,
                    );
                }
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some((_, size)) if self.nodes + size > MAX_NODES => {
                    self.error = Some(SyntaxError {
                        mark,
                        message: format!("aliases expand the document beyond {MAX_NODES} nodes"),
                    })
                }
                Some((node, size)) => {
                    let node = node.clone();
                    self.nodes += size;
                    self.push_node(node, 0)
                }
                None => {
                    self.error = Some(SyntaxError {
                        mark,
                        message: "unknown alias".into(),
                    })
                }
            },
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

/// Parses one YAML document (an empty file is a null document).
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    // Pull events one at a time: the parser's own `load` recurses once per nesting
    // level and overflows the stack on deep input before any limit could apply.
    loop {
        let (event, marker) = parser.next_token().map_err(|e| SyntaxError {
            mark: Mark::from(*e.marker()),
            message: e.info().to_owned(),
        })?;
        if event == Event::StreamEnd {
            break;
        }
        builder.on_event(event, marker);
        if builder.error.is_some() {
            break;
        }
    }
    if let Some(error) = builder.error {
        return Err(error);
    }
    match builder.documents.len() {
        0 => Ok(Node {
            value: Value::Null,
            mark: Mark { line: 1, column: 1 },
            plain: None,
        }),
        1 => Ok(builder.documents.remove(0)),
        _ => Err(SyntaxError {
            mark: builder.documents[1].mark,
            message: "more than one YAML document in the file".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_resolve_like_butane() {
        let doc =
            parse("a: 0644\nb: '0644'\nc: 0o755\nd: 12\ne: true\nf: ~\ng: 1.5\nh: text\ni: -3\n")
                .unwrap();
        let v = |k: &str| doc.get(k).unwrap().value.clone();
        assert_eq!(v("a"), Value::Int(0o644));
        assert_eq!(v("b"), Value::Str("0644".into()));
        assert_eq!(v("c"), Value::Int(0o755));
        assert_eq!(v("d"), Value::Int(12));
        assert_eq!(v("e"), Value::Bool(true));
        assert_eq!(v("f"), Value::Null);
        assert_eq!(v("g"), Value::Float(1.5));
        assert_eq!(v("h"), Value::Str("text".into()));
        assert_eq!(v("i"), Value::Int(-3));
    }

    #[test]
    fn marks_point_at_the_source() {
        let doc = parse("variant: fcos\nstorage:\n  files:\n    - path: /a\n").unwrap();
        let files = doc.get("storage").unwrap().get("files").unwrap();
        let Value::Seq(items) = &files.value else {
            panic!()
        };
        let path = items[0].get("path").unwrap();
        assert_eq!(
            path.mark,
            Mark {
                line: 4,
                column: 13
            }
        );
        let Value::Map(entries) = &items[0].value else {
            panic!()
        };
        assert_eq!(entries[0].1, Mark { line: 4, column: 7 });
    }

    #[test]
    fn errors_have_positions() {
        let e = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!(e.mark.line, 2);
        assert!(e.message.contains("duplicate key"));
        let e = parse("a: [1, 2\n").unwrap_err();
        assert!(e.mark.line >= 1, "{e:?}");
        let doc = parse("base: &b {a: 1, b: 2}\nx:\n  <<: *b\n  b: 3\ny: !!str 12\n").unwrap();
        let x = doc.get("x").unwrap();
        assert_eq!(x.get("a").unwrap().value, Value::Int(1));
        assert_eq!(x.get("b").unwrap().value, Value::Int(3));
        assert!(x.get("<<").is_none());
        assert_eq!(doc.get("y").unwrap().value, Value::Str("12".into()));
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            bomb.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 10].join(", ")));
        }
        let deep = format!("x:\n{}", "- ".repeat(10_000));
        assert!(parse(&deep).unwrap_err().message.contains("nesting deeper"));
        let e = parse(&bomb).unwrap_err();
        assert!(e.message.contains("aliases expand"), "{e:?}");
        let doc = parse("x: &a {k: 1}\ny: *a\n").unwrap();
        assert_eq!(doc.get("y").unwrap().get("k").unwrap().value, Value::Int(1));
    }
}
