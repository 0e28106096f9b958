//! Finding and replacing one scalar in YAML text, byte-minimally.
//!
//! A GitOps repository is read by people and diffed in review, so the promise of this module is:
//! **the only bytes that change are the value's.** Comments, blank lines, key order, indentation,
//! the scalar's quoting style, CRLF line endings, a BOM, `---` markers, the trailing newline (or
//! its absence), anchors, aliases, flow collections and block scalars elsewhere all stay
//! byte-identical, because we never re-serialise the document: we locate the target scalar's
//! bytes with `saphyr-parser`'s event stream and splice new bytes into exactly that range.
//!
//! This module does no file I/O (the caller reads and writes files atomically) and knows nothing
//! about images or tags: it edits "the scalar at this key path".
//!
//! Facts about `saphyr-parser` 0.3 that this code relies on (verified by tests in this module):
//! - `Marker::index()` counts *characters* (a BOM counts as one, `\r\n` as two), so every span is
//!   converted to byte offsets before slicing.
//! - A scalar event's span starts at its first property (`&anchor` or `!tag`) when it has one,
//!   so properties are skipped to find the scalar's own first byte.
//! - A quoted scalar's span includes its quotes but its end may run past the closing quote over
//!   trailing blanks and even a trailing `# comment` (the scanner looks ahead for a `:`), so the
//!   closing quote is found by lexing the quoted text ourselves.
//! - A plain scalar's span ends exactly at its last character.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span};

/// Files larger than this are refused: a values file this big is almost certainly a mistake,
/// and the limit bounds the memory and time one edit can take.
pub const MAX_FILE_BYTES: usize = 10 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Key paths
// ---------------------------------------------------------------------------------------------

/// A parsed target path, e.g. `image.tag`, `spec.template.spec.containers[name=web].image`,
/// `sidecars[0].image`, `annotations."app.kubernetes.io/version"`, `images[name=payments-api].newTag`.
///
/// Grammar: segments separated by `.`; a segment is a bare key (no `.`, `[`, `]`, `"`, no
/// surrounding whitespace) or a double-quoted key (`\"` and `\\` escapes), followed by any number
/// of selectors: `[N]` (list index, 0-based) or `[field=value]` (the list element that is a
/// mapping whose `field` holds the scalar `value`; the value may be double-quoted to contain `]`).
/// The path may start with selectors when the document's root is a list (`[0].image`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPath {
    text: String,
    steps: Vec<Step>,
    /// `ends[i]` is the byte offset in `text` where step `i` ends, so error messages can quote
    /// the prefix of the path exactly as the user wrote it.
    ends: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
    Select { field: String, value: String },
}

/// A key path that could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("invalid key path {input:?}: {reason}")]
pub struct PathError {
    pub input: String,
    pub reason: String,
}

impl KeyPath {
    /// Parses a key path; see the type's documentation for the grammar.
    pub fn parse(s: &str) -> Result<KeyPath, PathError> {
        PathParser { src: s, pos: 0 }
            .parse()
            .map_err(|reason| PathError {
                input: s.to_string(),
                reason,
            })
    }

    /// The path as written up to and including step `i`, for error messages.
    fn prefix(&self, i: usize) -> &str {
        let end = self.ends.get(i).copied().unwrap_or(self.text.len());
        self.text.get(..end).unwrap_or(&self.text)
    }
}

impl FromStr for KeyPath {
    type Err = PathError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyPath::parse(s)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A small hand-written recursive-descent parser; the grammar is too small for a dependency.
struct PathParser<'a> {
    src: &'a str,
    pos: usize,
}

impl PathParser<'_> {
    fn peek(&self) -> Option<char> {
        self.src
            .get(self.pos..)
            .and_then(|rest| rest.chars().next())
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn parse(mut self) -> Result<KeyPath, String> {
        if self.src.is_empty() {
            return Err("the path is empty".into());
        }
        let mut steps = Vec::new();
        let mut ends = Vec::new();
        let mut first = true;
        loop {
            // Only the very first segment may omit its key (a document whose root is a list).
            if !(first && self.peek() == Some('[')) {
                let key = self.key()?;
                steps.push(Step::Key(key));
                ends.push(self.pos);
            }
            first = false;
            while self.peek() == Some('[') {
                steps.push(self.selector()?);
                ends.push(self.pos);
            }
            match self.bump() {
                None => break,
                Some('.') if self.peek().is_none() => {
                    return Err("the path ends with '.'".into());
                }
                Some('.') => {}
                Some(c) => {
                    return Err(format!(
                        "unexpected {c:?} at offset {}; expected '.', '[' or the end",
                        self.pos - c.len_utf8()
                    ));
                }
            }
        }
        Ok(KeyPath {
            text: self.src.to_string(),
            steps,
            ends,
        })
    }

    fn key(&mut self) -> Result<String, String> {
        if self.peek() == Some('"') {
            return self.quoted();
        }
        let start = self.pos;
        while let Some(c) = self.peek() {
            match c {
                '.' | '[' => break,
                ']' | '"' => {
                    return Err(format!(
                        "unexpected {c:?} in key at offset {}; quote the key (\"...\") if it contains it",
                        self.pos
                    ));
                }
                c if c.is_control() => {
                    return Err(format!("control character in key at offset {}", self.pos));
                }
                _ => {
                    self.bump();
                }
            }
        }
        let key = &self.src[start..self.pos];
        if key.is_empty() {
            return Err(format!("empty key at offset {start}"));
        }
        if key.trim() != key {
            return Err(format!(
                "key {key:?} has leading or trailing whitespace; quote it if that is intended"
            ));
        }
        Ok(key.to_string())
    }

    /// A double-quoted string with `\"` and `\\` escapes; the opening quote is next.
    fn quoted(&mut self) -> Result<String, String> {
        let start = self.pos;
        self.bump();
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err(format!("unterminated quote starting at offset {start}")),
                Some('"') => return Ok(out),
                Some('\\') => match self.bump() {
                    Some(c @ ('"' | '\\')) => out.push(c),
                    Some(c) => {
                        return Err(format!(
                            "unsupported escape \\{c} at offset {}; only \\\" and \\\\ are allowed",
                            self.pos - c.len_utf8() - 1
                        ));
                    }
                    None => return Err(format!("unterminated quote starting at offset {start}")),
                },
                Some(c) => out.push(c),
            }
        }
    }

    /// `[N]` or `[field=value]`; the `[` is next.
    fn selector(&mut self) -> Result<Step, String> {
        let open = self.pos;
        self.bump();
        let body_start = self.pos;
        while let Some(c) = self.peek() {
            if c == ']' || c == '=' || c == '"' || c == '[' {
                break;
            }
            self.bump();
        }
        let head = &self.src[body_start..self.pos];
        match self.peek() {
            Some(']') => {
                self.bump();
                Self::index(head, open)
            }
            Some('=') => {
                self.bump();
                Self::check_field(head, open)?;
                let value = self.selector_value(open)?;
                Ok(Step::Select {
                    field: head.to_string(),
                    value,
                })
            }
            Some(c) => Err(format!(
                "unexpected {c:?} in selector at offset {}; expected [N] or [field=value]",
                self.pos
            )),
            None => Err(format!("unclosed '[' at offset {open}")),
        }
    }

    fn index(head: &str, open: usize) -> Result<Step, String> {
        if head.is_empty() || !head.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "selector [{head}] at offset {open} is neither [N] (a list index) nor [field=value]"
            ));
        }
        head.parse::<usize>()
            .map(Step::Index)
            .map_err(|_| format!("list index {head} at offset {open} is too large"))
    }

    fn check_field(field: &str, open: usize) -> Result<(), String> {
        if field.is_empty() {
            return Err(format!("selector at offset {open} has an empty field name"));
        }
        if field.trim() != field || field.chars().any(char::is_control) {
            return Err(format!(
                "selector field {field:?} at offset {open} has whitespace or control characters"
            ));
        }
        Ok(())
    }

    /// The value part of `[field=value]`, through the closing `]`.
    fn selector_value(&mut self, open: usize) -> Result<String, String> {
        let value = if self.peek() == Some('"') {
            self.quoted()?
        } else {
            let start = self.pos;
            while let Some(c) = self.peek() {
                if c == ']' || c == '[' || c == '"' {
                    break;
                }
                self.bump();
            }
            let v = &self.src[start..self.pos];
            if v.is_empty() {
                return Err(format!(
                    "selector at offset {open} has an empty value; write [field=\"\"] to match an empty string"
                ));
            }
            v.to_string()
        };
        match self.bump() {
            Some(']') => Ok(value),
            _ => Err(format!("unclosed '[' at offset {open}")),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

/// Which YAML document of a multi-document file (`---`) to look in. `Any` searches all documents
/// and requires exactly one match across them. `Index` is 0-based and counts every document the
/// YAML parser sees, including empty ones.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum Document {
    #[default]
    Any,
    Index(usize),
}

/// Where a scalar sits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scalar {
    /// The scalar's value after YAML unescaping/folding.
    pub value: String,
    /// The bytes of the scalar itself in the source: quotes included, `&anchor`/`!tag`
    /// properties and trailing comments excluded.
    pub byte_range: Range<usize>,
    /// 1-based line of the scalar's first byte.
    pub line: usize,
    pub style: Style,
}

/// How a scalar is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
    Folded,
}

impl From<ScalarStyle> for Style {
    fn from(s: ScalarStyle) -> Self {
        match s {
            ScalarStyle::Plain => Style::Plain,
            ScalarStyle::SingleQuoted => Style::SingleQuoted,
            ScalarStyle::DoubleQuoted => Style::DoubleQuoted,
            ScalarStyle::Literal => Style::Literal,
            ScalarStyle::Folded => Style::Folded,
        }
    }
}

/// Why a scalar could not be read or replaced. The caller prints `<file>: <path>: <Display>`,
/// so messages start with the problem, not with the path.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("path not found ({reason})")]
    NotFound { reason: String },
    #[error("matches {count} places ({places}); {hint}")]
    Ambiguous {
        count: usize,
        places: String,
        hint: String,
    },
    #[error("is {what}, not a scalar (line {line})")]
    NotScalar { what: &'static str, line: usize },
    #[error(
        "is a {indicator} block scalar (line {line}); tagwatch only edits plain and quoted scalars"
    )]
    BlockScalar {
        indicator: &'static str,
        line: usize,
    },
    #[error(
        "has no value (an empty/null node at line {line}); write a placeholder such as \"\" so there are bytes to replace"
    )]
    EmptyValue { line: usize },
    #[error(
        "is an alias ({alias}) at line {line}; editing it would change every user of the anchor"
    )]
    Alias { alias: String, line: usize },
    #[error(
        "{subject} carries anchor {anchor} (line {line}), which is used by {uses}; editing it would change those too"
    )]
    Anchored {
        subject: String,
        anchor: String,
        line: usize,
        uses: String,
    },
    #[error("not valid YAML: {message} at line {line} column {column}")]
    InvalidYaml {
        message: String,
        line: usize,
        column: usize,
    },
    #[error("file is {size} bytes; the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("file is not UTF-8 (invalid byte at offset {offset})")]
    NotUtf8 { offset: usize },
    #[error("round-trip check failed: {reason}; nothing was changed")]
    Roundtrip { reason: String },
    #[error("internal error: {reason}; refusing to edit")]
    Internal { reason: String },
}

impl EditError {
    /// A fixed short name per variant, for logs and metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            EditError::NotFound { .. } => "not_found",
            EditError::Ambiguous { .. } => "ambiguous",
            EditError::NotScalar { .. } => "not_scalar",
            EditError::BlockScalar { .. } => "block_scalar",
            EditError::EmptyValue { .. } => "empty_value",
            EditError::Alias { .. } => "alias",
            EditError::Anchored { .. } => "anchored",
            EditError::InvalidYaml { .. } => "invalid_yaml",
            EditError::TooLarge { .. } => "too_large",
            EditError::NotUtf8 { .. } => "not_utf8",
            EditError::Roundtrip { .. } => "roundtrip",
            EditError::Internal { .. } => "internal",
        }
    }
}

fn internal(reason: impl Into<String>) -> EditError {
    EditError::Internal {
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Public operations
// ---------------------------------------------------------------------------------------------

/// Reads the scalar at `path`.
pub fn get(src: &[u8], path: &KeyPath, doc: &Document) -> Result<Scalar, EditError> {
    let text = check_input(src)?;
    let tree = Tree::parse(text)?;
    Ok(locate(text, &tree, path, doc)?.scalar)
}

/// Returns the new file content with the scalar at `path` replaced by `value`, or `Ok(None)` when
/// it already holds `value`.
///
/// Performs the round-trip check: the result is re-parsed; it must parse, produce the same event
/// stream except for the target scalar, and hold `value` at `path` in the expected style.
/// Otherwise an error is returned and no content.
pub fn set(
    src: &[u8],
    path: &KeyPath,
    doc: &Document,
    value: &str,
) -> Result<Option<Vec<u8>>, EditError> {
    let text = check_input(src)?;
    let tree = Tree::parse(text)?;
    let target = locate(text, &tree, path, doc)?;
    if target.scalar.value == value {
        return Ok(None);
    }
    let new_text = render_in(value, target.scalar.style, target.in_flow);
    let range = target.scalar.byte_range.clone();
    let mut out = String::with_capacity(text.len() + new_text.len());
    out.push_str(&text[..range.start]);
    out.push_str(&new_text);
    out.push_str(&text[range.end..]);
    roundtrip_check(&tree, &target, &out, path, doc, value)?;
    Ok(Some(out.into_bytes()))
}

/// Renders `value` as YAML scalar text in the style of the scalar it replaces, for block context:
/// - `Plain`: the value itself when [`plain_is_safe`], otherwise double-quoted;
/// - `SingleQuoted`: `'...'` with `'` doubled, unless the value holds a line break or a
///   non-printable character, which single quotes cannot express: then double-quoted;
/// - `DoubleQuoted`: `"..."` with `\`, `"` and non-printable characters escaped;
/// - `Literal`/`Folded`: never edited by [`set`]; rendered double-quoted.
pub fn render(value: &str, style: Style) -> String {
    render_in(value, style, false)
}

/// True when a plain (unquoted) `value` reads back as the same string under both YAML 1.1 and
/// YAML 1.2 (core schema) resolution, in block context.
///
/// Deliberately conservative: Helm (go-yaml v2, YAML 1.1-ish), Kustomize and Argo CD read these
/// files with different YAML versions, so anything that any of them could resolve to a number,
/// boolean, null or timestamp, or parse as structure, is unsafe.
pub fn plain_is_safe(value: &str) -> bool {
    plain_is_safe_in(value, false)
}

// ---------------------------------------------------------------------------------------------
// Input validation
// ---------------------------------------------------------------------------------------------

fn check_input(src: &[u8]) -> Result<&str, EditError> {
    if src.len() > MAX_FILE_BYTES {
        return Err(EditError::TooLarge {
            size: src.len(),
            limit: MAX_FILE_BYTES,
        });
    }
    std::str::from_utf8(src).map_err(|e| EditError::NotUtf8 {
        offset: e.valid_up_to(),
    })
}

// ---------------------------------------------------------------------------------------------
// Character index -> byte offset
// ---------------------------------------------------------------------------------------------

/// Converts saphyr's character indices to byte offsets. Stores one checkpoint every
/// `CHECKPOINT` characters so that a 10 MiB file costs ~1 MiB instead of 8 bytes per character.
struct CharMap<'a> {
    text: &'a str,
    ascii: bool,
    chars: usize,
    checkpoints: Vec<usize>,
}

const CHECKPOINT: usize = 64;

impl<'a> CharMap<'a> {
    fn new(text: &'a str) -> Self {
        let ascii = text.is_ascii();
        let (chars, checkpoints) = if ascii {
            (text.len(), Vec::new())
        } else {
            let mut checkpoints = Vec::new();
            let mut chars = 0;
            for (i, (b, _)) in text.char_indices().enumerate() {
                if i % CHECKPOINT == 0 {
                    checkpoints.push(b);
                }
                chars += 1;
            }
            (chars, checkpoints)
        };
        CharMap {
            text,
            ascii,
            chars,
            checkpoints,
        }
    }

    /// Byte offset of character `index`; `index == number of chars` maps to the end.
    fn byte(&self, index: usize) -> Option<usize> {
        if index == self.chars {
            return Some(self.text.len());
        }
        if index > self.chars {
            return None;
        }
        if self.ascii {
            return Some(index);
        }
        let base = *self.checkpoints.get(index / CHECKPOINT)?;
        let (offset, _) = self
            .text
            .get(base..)?
            .char_indices()
            .nth(index % CHECKPOINT)?;
        Some(base + offset)
    }
}

// ---------------------------------------------------------------------------------------------
// The parsed document tree
// ---------------------------------------------------------------------------------------------

/// A node of the YAML tree, stored flat in an arena (`Tree::nodes`) so that neither building,
/// walking nor dropping it recurses: arbitrary input may nest a million levels deep.
struct Node {
    kind: NodeKind,
    /// Byte range of the event's span (properties included; quoted scalars may run long).
    span: Range<usize>,
    /// 1-based line where the span starts, as counted by the parser.
    line: usize,
    /// saphyr's anchor id; 0 when the node has no anchor.
    anchor: usize,
    /// Whether the node has an anchor or tag in front of it.
    has_props: bool,
    /// Position of the node's event in the stream, for the round-trip comparison.
    event_index: usize,
    /// Whether the node sits directly inside a flow collection.
    in_flow: bool,
}

enum NodeKind {
    Scalar {
        value: String,
        style: ScalarStyle,
    },
    /// Children alternate key, value.
    Mapping {
        flow: bool,
        children: Vec<usize>,
    },
    Sequence {
        flow: bool,
        children: Vec<usize>,
    },
    Alias {
        name: String,
    },
}

struct AliasUse {
    id: usize,
    line: usize,
    name: String,
}

struct Tree {
    nodes: Vec<Node>,
    /// Root node of each document; `None` should not happen but is tolerated.
    docs: Vec<Option<usize>>,
    aliases: Vec<AliasUse>,
    /// The full event stream without spans, for the round-trip comparison.
    events: Vec<Event<'static>>,
}

fn scan_error(e: &ScanError) -> EditError {
    EditError::InvalidYaml {
        message: e.info().to_string(),
        line: e.marker().line(),
        column: e.marker().col() + 1,
    }
}

fn owned_event(ev: Event<'_>) -> Event<'static> {
    use std::borrow::Cow;
    match ev {
        Event::Scalar(v, style, anchor, tag) => Event::Scalar(
            Cow::Owned(v.into_owned()),
            style,
            anchor,
            tag.map(|t| Cow::Owned(t.into_owned())),
        ),
        Event::SequenceStart(a, tag) => {
            Event::SequenceStart(a, tag.map(|t| Cow::Owned(t.into_owned())))
        }
        Event::MappingStart(a, tag) => {
            Event::MappingStart(a, tag.map(|t| Cow::Owned(t.into_owned())))
        }
        Event::Nothing => Event::Nothing,
        Event::StreamStart => Event::StreamStart,
        Event::StreamEnd => Event::StreamEnd,
        Event::DocumentStart(explicit) => Event::DocumentStart(explicit),
        Event::DocumentEnd => Event::DocumentEnd,
        Event::Alias(id) => Event::Alias(id),
        Event::SequenceEnd => Event::SequenceEnd,
        Event::MappingEnd => Event::MappingEnd,
    }
}

impl Tree {
    fn parse(text: &str) -> Result<Tree, EditError> {
        let map = CharMap::new(text);
        let mut tree = Tree {
            nodes: Vec::new(),
            docs: Vec::new(),
            aliases: Vec::new(),
            events: Vec::new(),
        };
        // Open collections, innermost last.
        let mut stack: Vec<usize> = Vec::new();
        let mut parser = Parser::new_from_str(text);
        while let Some(next) = parser.next_event() {
            let (event, span) = next.map_err(|e| scan_error(&e))?;
            let index = tree.events.len();
            tree.add(&map, text, &mut stack, &event, span, index)?;
            tree.events.push(owned_event(event));
        }
        Ok(tree)
    }

    /// Updates the tree with one event.
    fn add(
        &mut self,
        map: &CharMap<'_>,
        text: &str,
        stack: &mut Vec<usize>,
        event: &Event<'_>,
        span: Span,
        event_index: usize,
    ) -> Result<(), EditError> {
        let bad_span = || internal("the parser reported a position outside the file");
        let start = map.byte(span.start.index()).ok_or_else(bad_span)?;
        let end = map.byte(span.end.index()).ok_or_else(bad_span)?.max(start);
        let (kind, anchor, has_props) = match event {
            Event::DocumentStart(_) => {
                self.docs.push(None);
                return Ok(());
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
                return Ok(());
            }
            Event::Scalar(value, style, anchor, tag) => (
                NodeKind::Scalar {
                    value: value.to_string(),
                    style: *style,
                },
                *anchor,
                *anchor != 0 || tag.is_some(),
            ),
            Event::MappingStart(anchor, tag) | Event::SequenceStart(anchor, tag) => {
                // A flow collection's start event ends with its `{` / `[`; a block one is empty.
                let flow = text
                    .get(..end)
                    .and_then(|t| t.chars().next_back())
                    .is_some_and(|c| end > start && (c == '{' || c == '['));
                let children = Vec::new();
                let kind = if matches!(event, Event::MappingStart(..)) {
                    NodeKind::Mapping { flow, children }
                } else {
                    NodeKind::Sequence { flow, children }
                };
                (kind, *anchor, *anchor != 0 || tag.is_some())
            }
            Event::Alias(id) => {
                let name = text.get(start..end).unwrap_or("*?").to_string();
                self.aliases.push(AliasUse {
                    id: *id,
                    line: span.start.line(),
                    name: name.clone(),
                });
                (NodeKind::Alias { name }, 0, false)
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {
                return Ok(());
            }
        };
        let id = self.nodes.len();
        let in_flow = match stack.last() {
            Some(&parent) => self.attach(parent, id),
            None => {
                match self.docs.last_mut() {
                    Some(slot @ None) => *slot = Some(id),
                    _ => return Err(internal("a document has more than one root node")),
                }
                false
            }
        };
        let opens = matches!(kind, NodeKind::Mapping { .. } | NodeKind::Sequence { .. });
        self.nodes.push(Node {
            kind,
            span: start..end,
            line: span.start.line(),
            anchor,
            has_props,
            event_index,
            in_flow,
        });
        if opens {
            stack.push(id);
        }
        Ok(())
    }

    /// Adds `child` to collection `parent`; returns whether the parent is a flow collection.
    fn attach(&mut self, parent: usize, child: usize) -> bool {
        match self.nodes.get_mut(parent).map(|n| &mut n.kind) {
            Some(NodeKind::Mapping { flow, children } | NodeKind::Sequence { flow, children }) => {
                children.push(child);
                *flow
            }
            _ => false,
        }
    }

    fn node(&self, id: usize) -> Result<&Node, EditError> {
        self.nodes
            .get(id)
            .ok_or_else(|| internal("dangling node reference"))
    }
}

// ---------------------------------------------------------------------------------------------
// Path resolution
// ---------------------------------------------------------------------------------------------

/// The outcome of walking a path through one document.
enum Walk {
    /// The node the path leads to, and every node passed on the way (for the anchor check).
    Found { node: usize, trail: Vec<usize> },
    /// How many steps matched before the walk failed, and why it failed.
    Missing { depth: usize, reason: String },
}

/// Where in the path a walk is, for phrasing messages.
fn under(path: &KeyPath, i: usize) -> String {
    if i == 0 {
        "at the top level".to_string()
    } else {
        format!("under {:?}", path.prefix(i - 1))
    }
}

fn describe(kind: &NodeKind) -> &'static str {
    match kind {
        NodeKind::Scalar { .. } => "a scalar",
        NodeKind::Mapping { .. } => "a mapping",
        NodeKind::Sequence { .. } => "a list",
        NodeKind::Alias { .. } => "an alias",
    }
}

fn scalar_value(tree: &Tree, id: usize) -> Option<&str> {
    match &tree.nodes.get(id)?.kind {
        NodeKind::Scalar { value, .. } => Some(value),
        _ => None,
    }
}

fn walk(tree: &Tree, root: usize, path: &KeyPath) -> Result<Walk, EditError> {
    let mut current = root;
    let mut trail = vec![root];
    for (i, step) in path.steps.iter().enumerate() {
        let node = tree.node(current)?;
        let next = match (step, &node.kind) {
            (Step::Key(key), NodeKind::Mapping { children, .. }) => {
                find_key(tree, children, key, path, i, node.line)?
            }
            (Step::Index(n), NodeKind::Sequence { children, .. }) => {
                children.get(*n).copied().ok_or_else(|| {
                    format!(
                        "{} has {} item(s); index [{n}] is out of range (line {})",
                        quoted_prefix(path, i),
                        children.len(),
                        node.line
                    )
                })
            }
            (Step::Select { field, value }, NodeKind::Sequence { children, .. }) => {
                select(tree, children, field, value, path, i, node.line)?
            }
            (step, kind) => Err(format!(
                "expected {} {} but found {} (line {})",
                expected(step),
                under(path, i),
                describe(kind),
                node.line
            )),
        };
        match next {
            Ok(id) => {
                current = id;
                trail.push(id);
            }
            Err(reason) => return Ok(Walk::Missing { depth: i, reason }),
        }
    }
    trail.pop();
    Ok(Walk::Found {
        node: current,
        trail,
    })
}

fn expected(step: &Step) -> &'static str {
    match step {
        Step::Key(_) => "a mapping",
        Step::Index(_) | Step::Select { .. } => "a list",
    }
}

/// The list a selector applies to, named for messages.
fn quoted_prefix(path: &KeyPath, i: usize) -> String {
    if i == 0 {
        "the top-level list".to_string()
    } else {
        format!("{:?}", path.prefix(i - 1))
    }
}

/// Finds the value of `key` in a mapping's children. `Ok(Err(reason))` is "not here";
/// `Err` is a hard failure (a duplicate key makes the path ambiguous).
fn find_key(
    tree: &Tree,
    children: &[usize],
    key: &str,
    path: &KeyPath,
    i: usize,
    line: usize,
) -> Result<Result<usize, String>, EditError> {
    let mut hits = Vec::new();
    let mut has_merge = false;
    for pair in children.chunks(2) {
        let (&k, Some(&v)) = (&pair[0], pair.get(1)) else {
            continue;
        };
        match scalar_value(tree, k) {
            Some(name) if name == key => hits.push((k, v)),
            Some("<<") => has_merge = true,
            _ => {}
        }
    }
    match hits.as_slice() {
        [] => {
            let merge_note = if has_merge {
                "; the mapping has a merge key (<<), and values merged from an anchor are not edited"
            } else {
                ""
            };
            Ok(Err(format!(
                "no key {key:?} {} at line {line}{merge_note}",
                under(path, i)
            )))
        }
        [(_, v)] => Ok(Ok(*v)),
        many => {
            let lines: Vec<usize> = many
                .iter()
                .filter_map(|(k, _)| tree.nodes.get(*k).map(|n| n.line))
                .collect();
            Err(EditError::Ambiguous {
                count: many.len(),
                places: format!("lines {}", join_numbers(&lines)),
                hint: format!(
                    "the key {key:?} appears {} times {}",
                    many.len(),
                    under(path, i)
                ),
            })
        }
    }
}

/// Finds the one element of a list that is a mapping whose `field` holds `value`.
fn select(
    tree: &Tree,
    children: &[usize],
    field: &str,
    value: &str,
    path: &KeyPath,
    i: usize,
    line: usize,
) -> Result<Result<usize, String>, EditError> {
    let matches_field = |element: usize| -> bool {
        let Some(NodeKind::Mapping { children, .. }) = tree.nodes.get(element).map(|n| &n.kind)
        else {
            return false;
        };
        children.chunks(2).any(|pair| {
            scalar_value(tree, pair[0]) == Some(field)
                && pair.get(1).and_then(|&v| scalar_value(tree, v)) == Some(value)
        })
    };
    let hits: Vec<usize> = children
        .iter()
        .copied()
        .filter(|&c| matches_field(c))
        .collect();
    match hits.as_slice() {
        [] => Ok(Err(format!(
            "no element of {} has {field} = {value:?} (line {line})",
            quoted_prefix(path, i)
        ))),
        [one] => Ok(Ok(*one)),
        many => {
            let lines: Vec<usize> = many
                .iter()
                .filter_map(|&e| tree.nodes.get(e).map(|n| n.line))
                .collect();
            Err(EditError::Ambiguous {
                count: many.len(),
                places: format!("lines {}", join_numbers(&lines)),
                hint: format!(
                    "{} elements of {} have {field} = {value:?}",
                    many.len(),
                    quoted_prefix(path, i)
                ),
            })
        }
    }
}

/// "4", "4 and 9", "4, 9 and 12".
fn join_numbers(n: &[usize]) -> String {
    match n {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => {
            let init: Vec<String> = init.iter().map(usize::to_string).collect();
            format!("{} and {last}", init.join(", "))
        }
    }
}

/// A unique match of the path: the document it is in, the node, and the nodes passed on the way.
struct Hit {
    doc: usize,
    node: usize,
    trail: Vec<usize>,
}

/// Resolves `path` in the selected document(s) to exactly one node.
fn resolve(tree: &Tree, path: &KeyPath, doc: &Document) -> Result<Hit, EditError> {
    let candidates: Vec<usize> = match doc {
        Document::Any => (0..tree.docs.len()).collect(),
        Document::Index(n) if *n < tree.docs.len() => vec![*n],
        Document::Index(n) => {
            return Err(EditError::NotFound {
                reason: format!(
                    "no document {n}: the file has {} document(s), numbered from 0",
                    tree.docs.len()
                ),
            });
        }
    };
    let mut hits = Vec::new();
    let mut best_miss: Option<(usize, String)> = None;
    for d in candidates {
        let Some(Some(root)) = tree.docs.get(d).copied() else {
            continue;
        };
        match walk(tree, root, path)? {
            Walk::Found { node, trail } => hits.push(Hit {
                doc: d,
                node,
                trail,
            }),
            Walk::Missing { depth, reason } => {
                let reason = if tree.docs.len() > 1 {
                    format!("{reason} in document {d}")
                } else {
                    reason
                };
                if best_miss.as_ref().is_none_or(|(best, _)| depth > *best) {
                    best_miss = Some((depth, reason));
                }
            }
        }
    }
    if hits.len() > 1 {
        let places: Vec<String> = hits
            .iter()
            .map(|h| {
                let line = tree.nodes.get(h.node).map_or(0, |n| n.line);
                format!("document {} line {line}", h.doc)
            })
            .collect();
        return Err(EditError::Ambiguous {
            count: hits.len(),
            places: places.join(", "),
            hint: "use document = N to pick one".to_string(),
        });
    }
    hits.pop().ok_or_else(|| EditError::NotFound {
        reason: best_miss
            .map(|(_, r)| r)
            .unwrap_or_else(|| "the file holds no YAML document".to_string()),
    })
}

// ---------------------------------------------------------------------------------------------
// Locating the target scalar's bytes
// ---------------------------------------------------------------------------------------------

/// The target scalar plus what `set` needs to edit it safely.
struct Target {
    scalar: Scalar,
    in_flow: bool,
    event_index: usize,
}

fn locate(text: &str, tree: &Tree, path: &KeyPath, doc: &Document) -> Result<Target, EditError> {
    let hit = resolve(tree, path, doc)?;
    let node = tree.node(hit.node)?;
    let (value, style) = match &node.kind {
        NodeKind::Scalar { value, style } => (value, *style),
        NodeKind::Alias { name } => {
            return Err(EditError::Alias {
                alias: name.clone(),
                line: node.line,
            });
        }
        kind => {
            return Err(EditError::NotScalar {
                what: describe(kind),
                line: node.line,
            });
        }
    };
    check_anchors(text, tree, &hit)?;
    let style_out = Style::from(style);
    // Refuse what we do not edit before computing positions: an empty node's span may be just
    // its properties, and a block scalar's span starts at its content, not at `|`/`>`.
    match style_out {
        Style::Literal | Style::Folded => {
            let indicator = if style_out == Style::Literal {
                "|"
            } else {
                ">"
            };
            return Err(EditError::BlockScalar {
                indicator,
                line: node.line,
            });
        }
        Style::Plain if value.is_empty() => return Err(EditError::EmptyValue { line: node.line }),
        _ => {}
    }
    let start = skip_properties(text, node)?;
    let line = node.line + count_breaks(text.get(node.span.start..start).unwrap_or(""));
    let end = scalar_end(text, start, node.span.end, style)?;
    verify_source(text, start..end, value, style, line)?;
    Ok(Target {
        scalar: Scalar {
            value: value.clone(),
            byte_range: start..end,
            line,
            style: style_out,
        },
        in_flow: node.in_flow,
        event_index: node.event_index,
    })
}

/// Refuses when the target, or a collection it sits in, carries an anchor that an alias uses:
/// editing it would silently change every place the alias appears.
fn check_anchors(text: &str, tree: &Tree, hit: &Hit) -> Result<(), EditError> {
    for (pos, &id) in hit
        .trail
        .iter()
        .chain(std::iter::once(&hit.node))
        .enumerate()
    {
        let node = tree.node(id)?;
        if node.anchor == 0 {
            continue;
        }
        let uses: Vec<&AliasUse> = tree
            .aliases
            .iter()
            .filter(|a| a.id == node.anchor)
            .collect();
        if uses.is_empty() {
            continue;
        }
        let lines: Vec<usize> = uses.iter().map(|a| a.line).collect();
        let subject = if id == hit.node {
            "the value".to_string()
        } else if pos == 0 {
            "the document's root".to_string()
        } else {
            "an enclosing node".to_string()
        };
        return Err(EditError::Anchored {
            subject,
            anchor: anchor_name(text, node),
            line: node.line,
            uses: format!(
                "{} alias(es) ({}) at line(s) {}",
                uses.len(),
                uses[0].name,
                join_numbers(&lines)
            ),
        });
    }
    Ok(())
}

/// The `&name` text of a node's anchor, for messages.
fn anchor_name(text: &str, node: &Node) -> String {
    let props = text.get(node.span.clone()).unwrap_or("");
    props
        .split([' ', '\t', '\r', '\n'])
        .find(|p| p.starts_with('&'))
        .unwrap_or("&?")
        .to_string()
}

/// Counts line breaks (`\r\n`, `\n` and a lone `\r` each count once, as YAML does).
fn count_breaks(s: &str) -> usize {
    let b = s.as_bytes();
    b.iter()
        .enumerate()
        .filter(|&(i, &c)| c == b'\n' || (c == b'\r' && b.get(i + 1) != Some(&b'\n')))
        .count()
}

/// The byte where the scalar itself starts: after any `&anchor` / `!tag` properties and the
/// blanks, line breaks and comments that may separate them from the scalar.
fn skip_properties(text: &str, node: &Node) -> Result<usize, EditError> {
    let mut pos = node.span.start;
    if !node.has_props {
        return Ok(pos);
    }
    let bytes = text.as_bytes();
    if !matches!(bytes.get(pos), Some(b'&' | b'!')) {
        return Err(internal(format!(
            "a node with an anchor or tag does not start with '&' or '!' (line {})",
            node.line
        )));
    }
    let is_blank = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    // Anchor names and tag shorthands end at a blank or a flow indicator; a verbatim tag
    // `!<...>` ends at its `>`.
    let ends_property = |b: &u8| is_blank(b) || matches!(b, b',' | b'[' | b']' | b'{' | b'}');
    while pos < node.span.end {
        match bytes.get(pos) {
            Some(b'!') if bytes.get(pos + 1) == Some(&b'<') => {
                while bytes.get(pos).is_some_and(|&b| b != b'>') {
                    pos += 1;
                }
                pos += 1;
            }
            Some(b'&' | b'!') => {
                pos += 1;
                while bytes.get(pos).is_some_and(|b| !ends_property(b)) {
                    pos += 1;
                }
            }
            Some(b) if is_blank(b) => pos += 1,
            Some(b'#') => {
                while bytes.get(pos).is_some_and(|b| !matches!(b, b'\r' | b'\n')) {
                    pos += 1;
                }
            }
            _ => break,
        }
    }
    if pos > node.span.end || !text.is_char_boundary(pos) {
        return Err(internal(format!(
            "could not find the scalar after its anchor/tag (line {})",
            node.line
        )));
    }
    Ok(pos)
}

/// The byte just past the scalar. Quoted scalars are lexed here because saphyr's span may run
/// past the closing quote (over trailing blanks and comments).
fn scalar_end(
    text: &str,
    start: usize,
    span_end: usize,
    style: ScalarStyle,
) -> Result<usize, EditError> {
    let bytes = text.as_bytes();
    let closing = |quote: u8| -> Option<usize> {
        let mut i = start + 1;
        while let Some(&b) = bytes.get(i) {
            match b {
                b'\\' if quote == b'"' => i += 2,
                b'\'' if quote == b'\'' && bytes.get(i + 1) == Some(&b'\'') => i += 2,
                b if b == quote => return Some(i + 1),
                _ => i += 1,
            }
        }
        None
    };
    let end = match style {
        ScalarStyle::SingleQuoted => closing(b'\''),
        ScalarStyle::DoubleQuoted => closing(b'"'),
        _ => Some(span_end),
    };
    match end {
        Some(end) if end <= span_end && end > start => Ok(end),
        _ => Err(internal("could not find where the quoted scalar ends")),
    }
}

/// Defensive check that the bytes we are about to replace really are the parsed scalar, so a
/// mistake in position arithmetic refuses instead of writing garbage.
fn verify_source(
    text: &str,
    range: Range<usize>,
    value: &str,
    style: ScalarStyle,
    line: usize,
) -> Result<(), EditError> {
    let Some(raw) = text.get(range) else {
        return Err(internal(format!(
            "scalar bytes out of bounds (line {line})"
        )));
    };
    let ok = match style {
        ScalarStyle::Plain => fold_plain(raw) == value,
        ScalarStyle::SingleQuoted => {
            raw.len() >= 2
                && raw.starts_with('\'')
                && raw.ends_with('\'')
                && (count_breaks(raw) > 0 || raw[1..raw.len() - 1].replace("''", "'") == value)
        }
        ScalarStyle::DoubleQuoted => raw.len() >= 2 && raw.starts_with('"') && raw.ends_with('"'),
        ScalarStyle::Literal | ScalarStyle::Folded => false,
    };
    if ok {
        Ok(())
    } else {
        Err(internal(format!(
            "the source text at line {line} ({raw:?}) does not match the parsed value {value:?}"
        )))
    }
}

/// Applies YAML's line folding to the raw text of a (possibly multi-line) plain scalar:
/// lines are trimmed, a single break becomes a space, and each blank line becomes a newline.
fn fold_plain(raw: &str) -> String {
    let normalized = raw.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::new();
    let mut blanks = 0;
    for (i, line) in normalized.split('\n').enumerate() {
        let line = line.trim_matches([' ', '\t']);
        if i == 0 {
            out.push_str(line);
        } else if line.is_empty() {
            blanks += 1;
        } else {
            if blanks == 0 {
                out.push(' ');
            }
            out.extend(std::iter::repeat_n('\n', blanks));
            blanks = 0;
            out.push_str(line);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The round-trip check
// ---------------------------------------------------------------------------------------------

/// Re-parses the edited text and checks that (1) it parses, (2) its event stream equals the
/// original's except for the target scalar, which (3) holds `value` in the style we rendered, and
/// (4) the path still resolves to it. (2) catches any edit that changed the document's structure,
/// even one that happens to leave the path intact.
fn roundtrip_check(
    before: &Tree,
    target: &Target,
    out: &str,
    path: &KeyPath,
    doc: &Document,
    value: &str,
) -> Result<(), EditError> {
    let fail = |reason: String| EditError::Roundtrip { reason };
    let after = match Tree::parse(out) {
        Ok(t) => t,
        Err(e) => return Err(fail(format!("the edited file does not parse: {e}"))),
    };
    if after.events.len() != before.events.len() {
        return Err(fail(
            "the edit changed the document's structure".to_string(),
        ));
    }
    let expected_style = rendered_style(value, target.scalar.style, target.in_flow);
    for (i, (a, b)) in before.events.iter().zip(&after.events).enumerate() {
        if i == target.event_index {
            let ok = match (a, b) {
                (Event::Scalar(_, _, a_anchor, a_tag), Event::Scalar(v, s, b_anchor, b_tag)) => {
                    v == value
                        && Style::from(*s) == expected_style
                        && a_anchor == b_anchor
                        && a_tag == b_tag
                }
                _ => false,
            };
            if !ok {
                return Err(fail(format!(
                    "the edited scalar reads back as {b:?}, expected {value:?}"
                )));
            }
        } else if a != b {
            return Err(fail(format!(
                "the edit changed another part of the document ({a:?} became {b:?})"
            )));
        }
    }
    let text = out;
    let reread = locate(text, &after, path, doc).map_err(|e| fail(format!("re-reading: {e}")))?;
    if reread.scalar.value != value
        || reread.scalar.byte_range.start != target.scalar.byte_range.start
    {
        return Err(fail(format!(
            "re-reading the path found {:?} at line {}",
            reread.scalar.value, reread.scalar.line
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Rendering and plain-scalar safety
// ---------------------------------------------------------------------------------------------

/// The style `render_in` will produce for `value` replacing a scalar of style `style`.
fn rendered_style(value: &str, style: Style, in_flow: bool) -> Style {
    match style {
        Style::Plain if plain_is_safe_in(value, in_flow) => Style::Plain,
        Style::SingleQuoted if single_quotable(value) => Style::SingleQuoted,
        _ => Style::DoubleQuoted,
    }
}

fn render_in(value: &str, style: Style, in_flow: bool) -> String {
    match rendered_style(value, style, in_flow) {
        Style::Plain => value.to_string(),
        Style::SingleQuoted => format!("'{}'", value.replace('\'', "''")),
        _ => double_quote(value),
    }
}

/// Characters YAML allows unescaped in a document (c-printable), minus line breaks and the BOM.
/// YAML 1.1 parsers also treat NEL, LS and PS as line breaks, so those are excluded too.
fn is_inline_printable(c: char) -> bool {
    matches!(c, '\t' | '\u{20}'..='\u{7E}' | '\u{A0}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
        && !matches!(c, '\u{2028}' | '\u{2029}' | '\u{FEFF}')
}

/// Single quotes can express any printable, single-line text.
fn single_quotable(value: &str) -> bool {
    value.chars().all(is_inline_printable)
}

fn double_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if is_inline_printable(c) => out.push(c),
            c if (c as u32) <= 0xFF => out.push_str(&format!("\\x{:02X}", c as u32)),
            c if (c as u32) <= 0xFFFF => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push_str(&format!("\\U{:08X}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Whether `value` can be written unquoted and read back as the same string, in block context
/// or (when `in_flow`) inside a flow collection.
fn plain_is_safe_in(value: &str, in_flow: bool) -> bool {
    let Some(first) = value.chars().next() else {
        return false; // empty is null
    };
    if !value.chars().all(|c| is_inline_printable(c) && c != '\t') {
        return false;
    }
    if first == ' ' || value.ends_with(' ') {
        return false;
    }
    // Indicators cannot start a plain scalar (`-`, `?`, `:` can when followed by a non-space,
    // but YAML 1.1 parsers disagree on the details, so they are refused too).
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) {
        return false;
    }
    // `: ` starts a mapping value, ` #` a comment; a trailing `:` makes the value a key.
    if value.contains(": ") || value.contains(" #") || value.ends_with(':') {
        return false;
    }
    // In flow context `,[]{}` end the scalar; older YAML 1.1 parsers also reject any `:`.
    if in_flow && value.contains([',', '[', ']', '{', '}', ':']) {
        return false;
    }
    // Document markers.
    if value.starts_with("---") || value.starts_with("...") {
        return false;
    }
    !resolves_to_non_string(value)
}

/// Whether a plain scalar would resolve to something other than a string under YAML 1.1
/// (as implemented by PyYAML and go-yaml v2) or the YAML 1.2 core schema. Errs towards "yes".
fn resolves_to_non_string(v: &str) -> bool {
    const WORDS: [&str; 12] = [
        "y", "n", "yes", "no", "true", "false", "on", "off", "null", "~", "=", "<<",
    ];
    if WORDS.iter().any(|w| w.eq_ignore_ascii_case(v)) {
        return true;
    }
    let unsigned = v.strip_prefix(['-', '+']).unwrap_or(v);
    is_special_float(unsigned)
        || is_prefixed_int(unsigned)
        || is_decimal_number(unsigned)
        || is_sexagesimal(unsigned)
        || is_timestamp(v)
}

/// `.inf`, `.nan` in any case (1.2 core allows three spellings; be generous).
fn is_special_float(v: &str) -> bool {
    v.eq_ignore_ascii_case(".inf") || v.eq_ignore_ascii_case(".nan")
}

/// `0x1F`, `0o17`, `0b101` (1.1 allows `_` inside; so does Go's ParseInt with base 0).
fn is_prefixed_int(v: &str) -> bool {
    let (digits, ok): (&str, fn(char) -> bool) = if let Some(d) = v.strip_prefix("0x") {
        (d, |c| c.is_ascii_hexdigit() || c == '_')
    } else if let Some(d) = v.strip_prefix("0o") {
        (d, |c| matches!(c, '0'..='7' | '_'))
    } else if let Some(d) = v.strip_prefix("0b") {
        (d, |c| matches!(c, '0' | '1' | '_'))
    } else {
        return false;
    };
    !digits.is_empty() && digits.chars().all(ok)
}

/// Integers and floats without a base prefix: `12`, `012`, `1_000`, `1.10`, `1.`, `.5`, `1e3`,
/// `1.5E-3`. Digits may contain `_` (YAML 1.1). At most one `.`, so `1.4.3` is a string.
fn is_decimal_number(v: &str) -> bool {
    let (mantissa, exponent) = match v.find(['e', 'E']) {
        Some(i) => (&v[..i], Some(&v[i + 1..])),
        None => (v, None),
    };
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit() || c == '_');
    let has_digit = int_part.chars().any(|c| c.is_ascii_digit())
        || frac_part.is_some_and(|f| f.chars().any(|c| c.is_ascii_digit()));
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())
    });
    has_digit && digits(int_part) && frac_part.is_none_or(digits) && exponent_ok
}

/// YAML 1.1 base-60 numbers: `1:20`, `190:20:30`, `1:20.5`.
fn is_sexagesimal(v: &str) -> bool {
    let (whole, frac) = match v.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (v, None),
    };
    let parts: Vec<&str> = whole.split(':').collect();
    parts.len() >= 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit() || c == '_'))
        && frac.is_none_or(|f| f.chars().all(|c| c.is_ascii_digit() || c == '_'))
}

/// YAML 1.1 timestamps: `2001-12-14`, `2001-12-14t21:59:43.10-05:00`, `2001-12-14 21:59:43`.
/// A date followed by anything that could start a time counts, to stay on the safe side.
fn is_timestamp(v: &str) -> bool {
    let b = v.as_bytes();
    let digits = |from: usize, min: usize, max: usize| -> Option<usize> {
        let n = b
            .get(from..)?
            .iter()
            .take(max)
            .take_while(|c| c.is_ascii_digit())
            .count();
        (n >= min).then_some(from + n)
    };
    let date_end = (|| {
        let i = digits(0, 4, 4)?;
        (b.get(i) == Some(&b'-')).then_some(())?;
        let i = digits(i + 1, 1, 2)?;
        (b.get(i) == Some(&b'-')).then_some(())?;
        digits(i + 1, 1, 2)
    })();
    match date_end {
        None => false,
        Some(end) if end == b.len() => true,
        Some(end) => {
            matches!(b.get(end), Some(b'T' | b't' | b' ' | b'\t'))
                && b.get(end + 1..)
                    .is_some_and(|rest| rest.first().is_some_and(u8::is_ascii_digit))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn kp(s: &str) -> KeyPath {
        KeyPath::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    // ----- plain_is_safe / render tables -----

    const UNSAFE_PLAIN: &[&str] = &[
        "1.10",
        "1.0",
        "1e3",
        "1E3",
        "1.5e-3",
        "0x1F",
        "012",
        "0o17",
        "0b101",
        "1_000",
        "1:20",
        "190:20:30",
        "yes",
        "Yes",
        "YES",
        "no",
        "No",
        "on",
        "On",
        "off",
        "OFF",
        "y",
        "Y",
        "n",
        "N",
        "true",
        "True",
        "TRUE",
        "false",
        "FALSE",
        "null",
        "Null",
        "NULL",
        "~",
        "",
        ".inf",
        ".Inf",
        "-.inf",
        "+.INF",
        ".NaN",
        ".nan",
        "-1",
        "+1",
        "12",
        "0",
        ".5",
        "1.",
        " 1.0",
        "1.0 ",
        " lead",
        "trail ",
        "- item",
        "-dash",
        "?q",
        ":c",
        ",c",
        "[a",
        "]a",
        "{a",
        "}a",
        "#c",
        "&a",
        "*a",
        "!t",
        "|b",
        ">f",
        "'q",
        "\"q",
        "%d",
        "@a",
        "`b",
        "a: b",
        "a #b",
        "key:",
        "2001-12-14",
        "2001-1-4",
        "2001-12-14t21:59:43.10-05:00",
        "2001-12-14 21:59:43.10",
        "=",
        "<<",
        "---",
        "...",
        "a\nb",
        "tab\there",
        "bom\u{FEFF}",
        "nel\u{85}",
        "20240115",
        "ls\u{2028}",
        "ctrl\u{7}",
    ];

    const SAFE_PLAIN: &[&str] = &[
        "1.4.3",
        "v1.2.3",
        "latest",
        "main-123-abc1234",
        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "1.4.3@sha256:abcdef",
        "1.2.3-rc.1",
        "1.2.3+build.5",
        "2024-01-15-abc1234",
        "release_2024",
        "a#b",
        "a:b",
        "x",
        "yes-please",
        "nullable",
        "1e",
        "0xZZ",
        "1.0.0-alpha",
        "café",
        "☃",
        "v0.1",
        "3.2.1-debian-12-r4",
        "_underscore",
        "1:2:x",
    ];

    #[test]
    fn unsafe_values_are_not_plain() {
        for v in UNSAFE_PLAIN {
            assert!(!plain_is_safe(v), "{v:?} must not stay plain");
            let r = render(v, Style::Plain);
            assert!(
                r.starts_with('"') && r.ends_with('"'),
                "{v:?} rendered as {r:?}"
            );
        }
        assert!(UNSAFE_PLAIN.len() + SAFE_PLAIN.len() >= 40);
    }

    #[test]
    fn safe_values_stay_plain() {
        for v in SAFE_PLAIN {
            assert!(plain_is_safe(v), "{v:?} should stay plain");
            assert_eq!(render(v, Style::Plain), *v);
        }
    }

    #[test]
    fn flow_context_is_stricter() {
        for v in ["a,b", "a[b", "a]b", "a{b", "a}b", "sha256:abc"] {
            assert!(!plain_is_safe_in(v, true), "{v:?} in flow");
            assert!(render_in(v, Style::Plain, true).starts_with('"'));
        }
        assert!(plain_is_safe_in("1.4.3", true));
    }

    #[test]
    fn render_table() {
        let rows: &[(&str, Style, &str)] = &[
            ("1.4.3", Style::Plain, "1.4.3"),
            ("1.10", Style::Plain, "\"1.10\""),
            ("yes", Style::Plain, "\"yes\""),
            ("", Style::Plain, "\"\""),
            ("1.4.3", Style::SingleQuoted, "'1.4.3'"),
            ("it's", Style::SingleQuoted, "'it''s'"),
            ("''", Style::SingleQuoted, "''''''"),
            ("", Style::SingleQuoted, "''"),
            ("a\nb", Style::SingleQuoted, "\"a\\nb\""),
            ("1.4.3", Style::DoubleQuoted, "\"1.4.3\""),
            ("a\"b", Style::DoubleQuoted, "\"a\\\"b\""),
            ("a\\b", Style::DoubleQuoted, "\"a\\\\b\""),
            ("a\tb", Style::DoubleQuoted, "\"a\\tb\""),
            ("a\u{1}b", Style::DoubleQuoted, "\"a\\x01b\""),
            ("a\u{85}b", Style::DoubleQuoted, "\"a\\Nb\""),
            ("a\u{FEFF}", Style::DoubleQuoted, "\"a\\uFEFF\""),
            ("café ☃", Style::DoubleQuoted, "\"café ☃\""),
            ("x", Style::Literal, "\"x\""),
            ("x", Style::Folded, "\"x\""),
        ];
        for (value, style, want) in rows {
            assert_eq!(render(value, *style), *want, "render({value:?}, {style:?})");
        }
    }

    /// Every rendered value, in every style, must read back through a real parser as itself.
    #[test]
    fn rendered_values_read_back() {
        let extra = [
            "it's",
            "a\"b\\c",
            "a\nb",
            "\u{1}\u{7F}\u{9F}",
            "☃ 😀",
            "  x  ",
        ];
        let values = UNSAFE_PLAIN.iter().chain(SAFE_PLAIN).chain(extra.iter());
        for v in values {
            for style in [Style::Plain, Style::SingleQuoted, Style::DoubleQuoted] {
                let doc = format!("k: {}\n", render(v, style));
                let scalar = get(doc.as_bytes(), &kp("k"), &Document::Any);
                let scalar = scalar.unwrap_or_else(|e| panic!("{doc:?}: {e}"));
                assert_eq!(scalar.value, *v, "{doc:?}");
                let flow = format!("k: [{}]\n", render_in(v, style, true));
                assert_eq!(
                    get(flow.as_bytes(), &kp("k[0]"), &Document::Any)
                        .unwrap()
                        .value,
                    *v
                );
            }
        }
    }

    // ----- KeyPath -----

    #[test]
    fn key_paths_parse() {
        let ok: &[(&str, Vec<Step>)] = &[
            (
                "image.tag",
                vec![Step::Key("image".into()), Step::Key("tag".into())],
            ),
            ("tag", vec![Step::Key("tag".into())]),
            (
                "sidecars[0].image",
                vec![
                    Step::Key("sidecars".into()),
                    Step::Index(0),
                    Step::Key("image".into()),
                ],
            ),
            (
                "spec.containers[name=web].image",
                vec![
                    Step::Key("spec".into()),
                    Step::Key("containers".into()),
                    Step::Select {
                        field: "name".into(),
                        value: "web".into(),
                    },
                    Step::Key("image".into()),
                ],
            ),
            (
                "annotations.\"app.kubernetes.io/version\"",
                vec![
                    Step::Key("annotations".into()),
                    Step::Key("app.kubernetes.io/version".into()),
                ],
            ),
            (
                "images[name=\"a.b]c\"].newTag",
                vec![
                    Step::Key("images".into()),
                    Step::Select {
                        field: "name".into(),
                        value: "a.b]c".into(),
                    },
                    Step::Key("newTag".into()),
                ],
            ),
            ("[0].image", vec![Step::Index(0), Step::Key("image".into())]),
            (
                "m[1][2]",
                vec![Step::Key("m".into()), Step::Index(1), Step::Index(2)],
            ),
            ("\"\"", vec![Step::Key(String::new())]),
            ("\"q\\\"x\\\\\"", vec![Step::Key("q\"x\\".into())]),
            (
                "a[k=v=w]",
                vec![
                    Step::Key("a".into()),
                    Step::Select {
                        field: "k".into(),
                        value: "v=w".into(),
                    },
                ],
            ),
            (
                "my key.x",
                vec![Step::Key("my key".into()), Step::Key("x".into())],
            ),
        ];
        for (text, steps) in ok {
            let p = kp(text);
            assert_eq!(&p.steps, steps, "{text}");
            assert_eq!(p.to_string(), *text);
            assert_eq!(text.parse::<KeyPath>().unwrap(), p);
        }
    }

    #[test]
    fn bad_key_paths_are_rejected() {
        let bad = [
            "",
            ".",
            "a.",
            ".a",
            "a..b",
            "a[",
            "a[]",
            "a[-1]",
            "a[x]",
            "a[=v]",
            "a[k=]",
            "a]",
            "a\"b\"",
            "\"open",
            "a.[0]",
            "a[0]b",
            " a",
            "a ",
            "a[99999999999999999999999]",
            "a[k=\"v\"x]",
            "\"a\\n\"",
            "a[0",
            "a\tb",
        ];
        for text in bad {
            let err = KeyPath::parse(text).expect_err(text);
            assert_eq!(err.input, text);
            assert!(err.to_string().starts_with("invalid key path"), "{err}");
        }
    }

    // ----- saphyr-parser facts this module depends on -----

    fn first_scalar_span(src: &str, wanted: &str) -> (usize, usize) {
        let mut p = Parser::new_from_str(src);
        while let Some(Ok((ev, span))) = p.next_event() {
            if let Event::Scalar(v, ..) = ev
                && v == wanted
            {
                return (span.start.index(), span.end.index());
            }
        }
        panic!("no scalar {wanted:?}");
    }

    #[test]
    fn saphyr_indices_are_characters() {
        let src = "\u{FEFF}# café ☃ 😀\nimage:\n  tag: 1.0.0\n";
        let (start, end) = first_scalar_span(src, "1.0.0");
        let byte = src.find("1.0.0").unwrap();
        // The BOM, é, ☃ and 😀 are 1 character each but 3, 2, 3 and 4 bytes.
        assert_eq!(start, byte - 2 - 1 - 2 - 3);
        assert_eq!(end - start, 5);
        let map = CharMap::new(src);
        assert_eq!(map.byte(start), Some(byte));
        assert_eq!(map.byte(src.chars().count()), Some(src.len()));
        assert_eq!(map.byte(src.chars().count() + 1), None);
    }

    #[test]
    fn saphyr_quoted_spans_include_quotes_and_may_overrun() {
        let src = "a: 'x'\nb: \"y\"   # note\n";
        let (s, e) = first_scalar_span(src, "x");
        assert_eq!(&src[s..e], "'x'");
        let (s, e) = first_scalar_span(src, "y");
        // The span runs over the blanks and the comment after the closing quote.
        assert_eq!(&src[s..e], "\"y\"   # note");
        let target = locate(src, &Tree::parse(src).unwrap(), &kp("b"), &Document::Any).unwrap();
        assert_eq!(&src[target.scalar.byte_range], "\"y\"");
    }

    #[test]
    fn saphyr_spans_start_at_properties() {
        let src = "a: &t !!str 1.0\n";
        let (s, _) = first_scalar_span(src, "1.0");
        assert_eq!(&src[s..s + 2], "&t");
        let got = get(src.as_bytes(), &kp("a"), &Document::Any).unwrap();
        assert_eq!(&src[got.byte_range.clone()], "1.0");
    }

    #[test]
    fn char_map_checkpoints() {
        let src: String = (0..500)
            .map(|i| if i % 7 == 0 { 'é' } else { 'a' })
            .collect();
        let map = CharMap::new(&src);
        for (ci, (bi, _)) in src.char_indices().enumerate() {
            assert_eq!(map.byte(ci), Some(bi));
        }
        assert_eq!(map.byte(500), Some(src.len()));
        assert_eq!(map.byte(501), None);
    }

    // ----- behaviour details -----

    #[test]
    fn get_reports_value_range_line_style() {
        let src = "# c\nimage:\n  repository: x\n  tag: \"1.0\" # pinned\n";
        let s = get(src.as_bytes(), &kp("image.tag"), &Document::Any).unwrap();
        assert_eq!(s.value, "1.0");
        assert_eq!(s.line, 4);
        assert_eq!(s.style, Style::DoubleQuoted);
        assert_eq!(&src[s.byte_range], "\"1.0\"");
    }

    #[test]
    fn anchored_scalar_on_later_line_reports_scalar_line() {
        let src = "a: &x\n  # why\n  1.0.0\n";
        let s = get(src.as_bytes(), &kp("a"), &Document::Any).unwrap();
        assert_eq!(s.line, 3);
        let out = set(src.as_bytes(), &kp("a"), &Document::Any, "2.0.0")
            .unwrap()
            .unwrap();
        assert_eq!(out, b"a: &x\n  # why\n  2.0.0\n");
    }

    #[test]
    fn multi_line_plain_is_replaced_whole() {
        let src = "a: foo\n  bar\nb: 1\n";
        let out = set(src.as_bytes(), &kp("a"), &Document::Any, "v2")
            .unwrap()
            .unwrap();
        assert_eq!(out, b"a: v2\nb: 1\n");
    }

    #[test]
    fn same_value_is_no_change() {
        let src = b"image:\n  tag: '1.0'\n";
        assert_eq!(
            set(src, &kp("image.tag"), &Document::Any, "1.0").unwrap(),
            None
        );
    }

    #[test]
    fn error_messages_read_well() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "image:\n  repo: x\n",
                "image.tag",
                "path not found (no key \"tag\" under \"image\" at line 2)",
            ),
            (
                "image:\n  tag: 1\n  tag: 2\n",
                "image.tag",
                "matches 2 places (lines 2 and 3)",
            ),
            (
                "image:\n  tag:\n    x: 1\n",
                "image.tag",
                "is a mapping, not a scalar (line 3)",
            ),
            (
                "a: &r 1\nimage:\n  tag: *r\n",
                "image.tag",
                "is an alias (*r) at line 3; editing it would change every user of the anchor",
            ),
            ("a: [1\n", "a", "not valid YAML: "),
            ("a: |\n  x\n", "a", "is a | block scalar (line 2)"),
            ("a:\n", "a", "has no value"),
            (
                "a: &r 1\nb: *r\n",
                "a",
                "carries anchor &r (line 1), which is used by 1 alias(es) (*r) at line(s) 2",
            ),
            (
                "l: [1]\n",
                "l[3]",
                "\"l\" has 1 item(s); index [3] is out of range",
            ),
            (
                "a: 1\n---\na: 2\n",
                "a",
                "matches 2 places (document 0 line 1, document 1 line 3); use document = N to pick one",
            ),
        ];
        for (src, path, want) in cases {
            let err = get(src.as_bytes(), &kp(path), &Document::Any).expect_err(src);
            assert!(
                err.to_string().contains(want),
                "{src:?}: {err} (wanted {want:?})"
            );
        }
        let err = get(&[b'a', b':', b' ', 0xff], &kp("a"), &Document::Any).unwrap_err();
        assert_eq!(
            err.to_string(),
            "file is not UTF-8 (invalid byte at offset 3)"
        );
        let big = vec![b'#'; MAX_FILE_BYTES + 1];
        let err = get(&big, &kp("a"), &Document::Any).unwrap_err();
        assert_eq!(
            err.to_string(),
            "file is 10485761 bytes; the limit is 10485760"
        );
        assert_eq!(err.kind(), "too_large");
    }

    #[test]
    fn anchored_collection_used_by_alias_is_refused() {
        let src = "base: &b\n  image:\n    tag: 1\nother: *b\n";
        let err = set(src.as_bytes(), &kp("base.image.tag"), &Document::Any, "2").unwrap_err();
        assert_eq!(err.kind(), "anchored", "{err}");
        // An anchor nobody uses is harmless.
        let src = "base: &b\n  image:\n    tag: 1\n";
        let out = set(src.as_bytes(), &kp("base.image.tag"), &Document::Any, "v2").unwrap();
        assert_eq!(out.unwrap(), b"base: &b\n  image:\n    tag: v2\n");
    }

    #[test]
    fn merge_key_values_are_not_found_with_a_hint() {
        let src = "base: &b\n  tag: 1\nother:\n  <<: *b\n";
        let err = get(src.as_bytes(), &kp("other.tag"), &Document::Any).unwrap_err();
        assert_eq!(err.kind(), "not_found");
        assert!(err.to_string().contains("merge key"), "{err}");
    }

    #[test]
    fn document_index_out_of_range() {
        let err = get(b"a: 1\n", &kp("a"), &Document::Index(3)).unwrap_err();
        assert_eq!(err.kind(), "not_found");
        assert!(err.to_string().contains("no document 3"), "{err}");
        let err = get(b"", &kp("a"), &Document::Any).unwrap_err();
        assert_eq!(err.kind(), "not_found");
    }

    #[test]
    fn roundtrip_refuses_structure_changes() {
        // Simulate a rendering bug: a Target whose range is wrong must be caught by the check.
        let src = "a: x\nb: y\n";
        let tree = Tree::parse(src).unwrap();
        let target = locate(src, &tree, &kp("a"), &Document::Any).unwrap();
        let broken = "a: x\nb: [y\n";
        let err = roundtrip_check(&tree, &target, broken, &kp("a"), &Document::Any, "x");
        assert_eq!(err.unwrap_err().kind(), "roundtrip");
        let changed = "a: z\nb: q\n";
        let err = roundtrip_check(&tree, &target, changed, &kp("a"), &Document::Any, "z");
        assert_eq!(err.unwrap_err().kind(), "roundtrip");
        let ok = "a: z\nb: y\n";
        roundtrip_check(&tree, &target, ok, &kp("a"), &Document::Any, "z").unwrap();
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        // saphyr refuses very deep nesting itself; that must surface as an error, not a crash.
        let depth = 200_000;
        let src = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let err = get(src.as_bytes(), &kp("a"), &Document::Any).unwrap_err();
        assert_eq!(err.kind(), "invalid_yaml");
        let depth = 200;
        let src = format!("a: {}1{}\n", "[".repeat(depth), "]".repeat(depth));
        let path = format!("a{}", "[0]".repeat(depth));
        let s = get(src.as_bytes(), &kp(&path), &Document::Any).unwrap();
        assert_eq!(s.value, "1");
    }
}
