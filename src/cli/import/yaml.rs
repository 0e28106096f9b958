//! Reading Kubernetes manifests for `tagwatch import`: multi-document YAML
//! into a small owned tree whose every node remembers its 1-based line, so a
//! warning can point at `FILE:LINE`. Owns nothing about Argo CD or Flux.
//!
//! saphyr-parser is already the manifest editor's parser; reusing it here
//! keeps one YAML reading in the binary. Its spans count characters, but
//! only lines are used here, and those it counts correctly.

use saphyr_parser::{Event, Parser, Span};

/// Deeper nesting than this is refused instead of recursing further: a
/// Kubernetes object is a few levels deep, and hostile input must not
/// overflow the stack.
const MAX_DEPTH: usize = 128;

/// One YAML node and the line it starts on.
#[derive(Clone, Debug)]
pub struct Node {
    pub value: Value,
    /// 1-based, as the parser counts.
    pub line: usize,
}

#[derive(Clone, Debug)]
pub enum Value {
    Scalar(String),
    Map(Vec<(String, Node)>),
    Seq(Vec<Node>),
}

/// Why a file could not be read as YAML.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct YamlError {
    pub line: usize,
    pub message: String,
}

impl Node {
    /// The child at `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The node at a dotted path of mapping keys (`spec.source.path`).
    pub fn at(&self, path: &str) -> Option<&Node> {
        path.split('.').try_fold(self, |node, key| node.get(key))
    }

    /// A scalar's text; `None` for a collection.
    pub fn str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// The scalar at `path`, when there is one and it is not empty.
    pub fn str_at(&self, path: &str) -> Option<&str> {
        self.at(path).and_then(Node::str).filter(|s| !s.is_empty())
    }

    /// A mapping's entries (empty for anything else).
    pub fn entries(&self) -> &[(String, Node)] {
        match &self.value {
            Value::Map(entries) => entries,
            _ => &[],
        }
    }

    /// A sequence's items (empty for anything else).
    pub fn items(&self) -> &[Node] {
        match &self.value {
            Value::Seq(items) => items,
            _ => &[],
        }
    }
}

/// Every document of `text`, in order. An empty document is kept as an
/// empty scalar, so indexes match the `document` numbers of tagwatch's
/// targets.
pub fn parse(text: &str) -> Result<Vec<Node>, YamlError> {
    let mut reader = Reader {
        parser: Parser::new_from_str(text),
        anchors: Vec::new(),
    };
    let mut docs = Vec::new();
    loop {
        let (event, _) = reader.next()?;
        match event {
            Event::StreamEnd => return Ok(docs),
            Event::DocumentStart(_) => {
                let (event, span) = reader.next()?;
                if matches!(event, Event::DocumentEnd) {
                    docs.push(Node {
                        value: Value::Scalar(String::new()),
                        line: span.start.line(),
                    });
                } else {
                    docs.push(reader.node(event, span, 0)?);
                    reader.next()?; // DocumentEnd
                }
            }
            _ => {}
        }
    }
}

struct Reader<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    /// Anchored nodes by saphyr's anchor id, for aliases.
    anchors: Vec<(usize, Node)>,
}

impl<'a> Reader<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), YamlError> {
        match self.parser.next_event() {
            Some(Ok(next)) => Ok(next),
            Some(Err(e)) => Err(YamlError {
                line: e.marker().line(),
                message: e.info().to_string(),
            }),
            None => Ok((Event::StreamEnd, Span::default())),
        }
    }

    fn node(&mut self, event: Event<'a>, span: Span, depth: usize) -> Result<Node, YamlError> {
        let line = span.start.line();
        if depth > MAX_DEPTH {
            return Err(YamlError {
                line,
                message: format!("nested deeper than {MAX_DEPTH} levels"),
            });
        }
        let (value, anchor) = match event {
            Event::Scalar(text, _, anchor, _) => (Value::Scalar(text.into_owned()), anchor),
            Event::Alias(id) => {
                let found = self.anchors.iter().rev().find(|(a, _)| *a == id);
                let value = found.map_or(Value::Scalar(String::new()), |(_, n)| n.value.clone());
                (value, 0)
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    match event {
                        Event::SequenceEnd => break,
                        Event::StreamEnd => return Err(truncated(line)),
                        event => items.push(self.node(event, span, depth + 1)?),
                    }
                }
                (Value::Seq(items), anchor)
            }
            Event::MappingStart(anchor, _) => {
                let mut entries = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    let key = match event {
                        Event::MappingEnd => break,
                        Event::StreamEnd => return Err(truncated(line)),
                        event => self.node(event, span, depth + 1)?,
                    };
                    let (event, span) = self.next()?;
                    let mut value = self.node(event, span, depth + 1)?;
                    // A block scalar (`key: >-`) starts on the next line, but
                    // a warning about it should point at its key.
                    if matches!(value.value, Value::Scalar(_)) {
                        value.line = value.line.min(key.line);
                    }
                    // A collection as a key is legal YAML and meaningless in a
                    // Kubernetes object; it can never be looked up, so it is kept
                    // under an empty name.
                    entries.push((key.str().unwrap_or_default().to_string(), value));
                }
                (Value::Map(entries), anchor)
            }
            _ => return Err(truncated(line)),
        };
        let node = Node { value, line };
        if anchor != 0 {
            self.anchors.push((anchor, node.clone()));
        }
        Ok(node)
    }
}

fn truncated(line: usize) -> YamlError {
    YamlError {
        line,
        message: "the document ends in the middle of a collection".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_documents_with_lines() {
        let docs = parse("a: 1\n---\nkind: X\nspec:\n  path: p\n  list: [x, y]\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].str_at("kind"), Some("X"));
        assert_eq!(docs[1].at("spec.path").unwrap().line, 5);
        assert_eq!(docs[1].at("spec.list").unwrap().items().len(), 2);
    }

    #[test]
    fn a_broken_document_names_its_line() {
        let e = parse("a: 1\nb: [\n").unwrap_err();
        assert!(e.line >= 2, "{e}");
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let text = "[".repeat(10_000);
        assert!(parse(&text).is_err());
    }
}
