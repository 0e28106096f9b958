//! The parsed document: saphyr-parser's event stream stored flat ([`Tree`]), and the
//! conversion of saphyr's character indices to byte offsets ([`Positions`]). Owns parsing and
//! the facts about saphyr's spans; walking a path through the tree is `resolve`'s business.

use std::cell::Cell;
use std::ops::Range;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span, Tag};

use super::{EditError, internal};

/// Converts saphyr's character indices to byte offsets, on demand.
///
/// Only a handful of positions are converted per operation (the target, the collection it sits
/// in, aliases named in messages), so nothing is precomputed: a lookup scans forward from the
/// previous one, or from the start when asked for an earlier position, counting UTF-8 lead
/// bytes a 64-byte block at a time. That scan runs at memory speed (about a millisecond for
/// 10 MiB), cheaper than building any index of a large file would be.
pub(super) struct Positions<'a> {
    bytes: &'a [u8],
    /// `(c, b)`: character number `c` starts at byte `b`.
    cursor: Cell<(usize, usize)>,
}

/// Bytes counted at once when skipping ahead: 128 eight-byte words, few enough that the
/// per-byte counters in `count_leads` cannot overflow.
pub(super) const BLOCK: usize = 1024;

/// A byte that starts a character (anything but a UTF-8 continuation byte `10xxxxxx`).
pub(super) fn is_lead(b: u8) -> bool {
    (b as i8) >= -0x40
}

/// The number of characters starting in `block` (at most `BLOCK` bytes long), eight bytes at a
/// time: a continuation byte has its top bit set and the next one clear. Each byte lane of
/// `sum` counts the continuation bytes seen in that lane (at most 128).
pub(super) fn count_leads(block: &[u8]) -> usize {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut words = block.chunks_exact(8);
    let mut sum = 0u64;
    for w in &mut words {
        let w = u64::from_le_bytes(w.try_into().unwrap_or([0; 8]));
        sum += (w & !(w << 1) & HIGH) >> 7;
    }
    // Pairs of byte lanes into 16-bit lanes (the total may exceed 255), then add those up.
    let pairs = (sum & 0x00FF_00FF_00FF_00FF) + ((sum >> 8) & 0x00FF_00FF_00FF_00FF);
    let continuations = (pairs.wrapping_mul(0x0001_0001_0001_0001) >> 48) as usize;
    let rest = words.remainder();
    block.len() - rest.len() - continuations + rest.iter().filter(|&&b| is_lead(b)).count()
}

impl<'a> Positions<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Positions {
            bytes: text.as_bytes(),
            cursor: Cell::new((0, 0)),
        }
    }

    /// Byte offset of character `index`; `index == number of characters` maps to the end.
    pub(super) fn byte(&self, index: usize) -> Option<usize> {
        let (mut c, mut b) = self.cursor.get();
        if index < c {
            (c, b) = (0, 0);
        }
        let bytes = self.bytes;
        // Invariant: `c` is the number of lead bytes in `bytes[..b]`. Skip whole blocks while
        // character `index` starts after them (`b` may then land inside a character).
        while let Some(block) = bytes.get(b..b + BLOCK) {
            let leads = count_leads(block);
            if c + leads > index {
                break;
            }
            c += leads;
            b += BLOCK;
        }
        while let Some(&x) = bytes.get(b) {
            if is_lead(x) {
                if c == index {
                    self.cursor.set((c, b));
                    return Some(b);
                }
                c += 1;
            }
            b += 1;
        }
        (c == index).then_some(bytes.len())
    }

    /// Byte range of a node's span (an end before the start is clamped to the start).
    pub(super) fn span(&self, node: &Node) -> Result<Range<usize>, EditError> {
        let bad_span = || internal("the parser reported a position outside the file");
        let start = self.byte(node.start as usize).ok_or_else(bad_span)?;
        let end = self.byte(node.end as usize).ok_or_else(bad_span)?;
        Ok(start..end.max(start))
    }
}

// ----- The parsed document: the event stream, flat -----

/// What an event is, without its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    StreamStart,
    StreamEnd,
    DocumentStart { explicit: bool },
    DocumentEnd,
    Scalar(ScalarStyle),
    MappingStart,
    MappingEnd,
    SequenceStart,
    SequenceEnd,
    Alias,
    Nothing,
}

/// One parser event. The tree is the event stream itself, stored flat: node `i` is event `i`,
/// and a collection's start event knows where its end event is, so children are found by
/// skipping subtrees. Nothing recurses (input may nest a million levels deep) and nothing is
/// allocated per event: a 5 MB file has half a million events, and one allocation each was
/// most of the cost of an edit. Positions fit in `u32` because input is at most
/// [`MAX_FILE_BYTES`].
#[derive(Clone, Copy, Debug)]
pub(super) struct Node {
    pub(super) kind: Kind,
    /// Whether the node has an anchor or a tag in front of it.
    pub(super) has_props: bool,
    /// The event's span in characters (see [`Positions`]): properties included; a quoted
    /// scalar's may run long.
    pub(super) start: u32,
    pub(super) end: u32,
    /// 1-based line where the span starts, as counted by the parser.
    pub(super) line: u32,
    /// saphyr's anchor id, 0 when there is none; for an alias, the id it refers to.
    pub(super) anchor: u32,
    /// 1 + the index of the node's tag in `Tree::tags`; 0 when it has no tag.
    tag: u32,
    /// A scalar's value is `Tree::arena[value..value + len]`.
    pub(super) value: u32,
    pub(super) len: u32,
    /// For a collection start, the index of its end event; for any other event, its own. The
    /// next sibling of node `i` is therefore `close + 1`.
    pub(super) close: u32,
}

pub(super) struct Tree {
    pub(super) nodes: Vec<Node>,
    /// Every scalar value, concatenated: one allocation instead of one per scalar.
    pub(super) arena: String,
    tags: Vec<Tag>,
    /// Root node of each document; `None` should not happen but is tolerated.
    pub(super) docs: Vec<Option<usize>>,
    /// The alias events, for the anchor check.
    pub(super) aliases: Vec<usize>,
}

pub(super) fn scan_error(e: &ScanError) -> EditError {
    EditError::InvalidYaml {
        message: e.info().to_string(),
        line: e.marker().line(),
        column: e.marker().col() + 1,
    }
}

/// Narrows a position or count for storage in a [`Node`].
pub(super) fn small(n: usize) -> Result<u32, EditError> {
    u32::try_from(n).map_err(|_| internal("a position does not fit in 32 bits"))
}

impl Tree {
    pub(super) fn with_capacity(text_len: usize) -> Tree {
        Tree {
            nodes: Vec::new(),
            // Keys and values make up most of a YAML file's text.
            arena: String::with_capacity(text_len / 2),
            tags: Vec::new(),
            docs: Vec::new(),
            aliases: Vec::new(),
        }
    }

    pub(super) fn parse(text: &str) -> Result<Tree, EditError> {
        let mut tree = Tree::with_capacity(text.len());
        // Open collections, innermost last.
        let mut open: Vec<usize> = Vec::new();
        let mut parser = Parser::new_from_str(text);
        while let Some(next) = parser.next_event() {
            let (event, span) = next.map_err(|e| scan_error(&e))?;
            tree.push(event, span, &mut open)?;
        }
        Ok(tree)
    }

    /// Appends one event.
    pub(super) fn push(
        &mut self,
        event: Event<'_>,
        span: Span,
        open: &mut Vec<usize>,
    ) -> Result<(), EditError> {
        let id = self.nodes.len();
        let start = small(span.start.index())?;
        let mut node = Node {
            kind: Kind::Nothing,
            has_props: false,
            start,
            end: small(span.end.index())?.max(start),
            line: small(span.start.line())?,
            anchor: 0,
            tag: 0,
            value: 0,
            len: 0,
            close: small(id)?,
        };
        let mut content = true;
        node.kind = match event {
            Event::Scalar(value, style, anchor, tag) => {
                node.value = small(self.arena.len())?;
                node.len = small(value.len())?;
                self.arena.push_str(&value);
                self.set_props(&mut node, anchor, tag)?;
                Kind::Scalar(style)
            }
            Event::MappingStart(anchor, tag) => {
                self.set_props(&mut node, anchor, tag)?;
                Kind::MappingStart
            }
            Event::SequenceStart(anchor, tag) => {
                self.set_props(&mut node, anchor, tag)?;
                Kind::SequenceStart
            }
            Event::Alias(anchor) => {
                node.anchor = small(anchor)?;
                self.aliases.push(id);
                Kind::Alias
            }
            Event::MappingEnd | Event::SequenceEnd => {
                let (kind, opener) = if matches!(event, Event::MappingEnd) {
                    (Kind::MappingEnd, Kind::MappingStart)
                } else {
                    (Kind::SequenceEnd, Kind::SequenceStart)
                };
                let start = open.pop().and_then(|s| self.nodes.get_mut(s));
                match start {
                    Some(s) if s.kind == opener => s.close = node.close,
                    _ => return Err(internal("a collection end does not match its start")),
                }
                content = false;
                kind
            }
            Event::DocumentStart(explicit) => {
                self.docs.push(None);
                content = false;
                Kind::DocumentStart { explicit }
            }
            Event::DocumentEnd => {
                content = false;
                Kind::DocumentEnd
            }
            Event::StreamStart => {
                content = false;
                Kind::StreamStart
            }
            Event::StreamEnd => {
                content = false;
                Kind::StreamEnd
            }
            Event::Nothing => {
                content = false;
                Kind::Nothing
            }
        };
        if content && open.is_empty() {
            match self.docs.last_mut() {
                Some(slot @ None) => *slot = Some(id),
                _ => return Err(internal("a document has more than one root node")),
            }
        }
        if matches!(node.kind, Kind::MappingStart | Kind::SequenceStart) {
            open.push(id);
        }
        self.nodes.push(node);
        Ok(())
    }

    fn set_props(
        &mut self,
        node: &mut Node,
        anchor: usize,
        tag: Option<std::borrow::Cow<'_, Tag>>,
    ) -> Result<(), EditError> {
        node.anchor = small(anchor)?;
        node.has_props = anchor != 0 || tag.is_some();
        if let Some(tag) = tag {
            self.tags.push(tag.into_owned());
            node.tag = small(self.tags.len())?;
        }
        Ok(())
    }

    pub(super) fn node(&self, id: usize) -> Result<&Node, EditError> {
        self.nodes
            .get(id)
            .ok_or_else(|| internal("dangling node reference"))
    }

    pub(super) fn value(&self, node: &Node) -> &str {
        let start = node.value as usize;
        self.arena
            .get(start..start + node.len as usize)
            .unwrap_or("")
    }

    pub(super) fn tag(&self, node: &Node) -> Option<&Tag> {
        (node.tag as usize)
            .checked_sub(1)
            .and_then(|i| self.tags.get(i))
    }

    /// The value of node `id` if it is a scalar.
    pub(super) fn scalar(&self, id: usize) -> Option<&str> {
        let node = self.nodes.get(id)?;
        matches!(node.kind, Kind::Scalar(_)).then(|| self.value(node))
    }

    /// The children of collection `id` (a mapping's alternate key, value); none for others.
    pub(super) fn children(&self, id: usize) -> impl Iterator<Item = usize> + '_ {
        let close = self.nodes.get(id).map_or(0, |n| n.close as usize);
        let mut next = id + 1;
        std::iter::from_fn(move || {
            if next >= close {
                return None;
            }
            let child = next;
            next = self
                .nodes
                .get(child)
                .map_or(close, |n| n.close as usize + 1);
            Some(child)
        })
    }

    /// A mapping's `(key, value)` pairs.
    pub(super) fn pairs(&self, id: usize) -> impl Iterator<Item = (usize, Option<usize>)> + '_ {
        let mut children = self.children(id);
        std::iter::from_fn(move || {
            let key = children.next()?;
            Some((key, children.next()))
        })
    }

    /// Whether collection node `id` is written in flow style: a flow collection's start event
    /// ends with its `{` / `[`; a block one's is empty or covers only its properties.
    pub(super) fn is_flow(
        &self,
        text: &str,
        pos: &Positions<'_>,
        id: usize,
    ) -> Result<bool, EditError> {
        let node = self.node(id)?;
        if !matches!(node.kind, Kind::MappingStart | Kind::SequenceStart) || node.end == node.start
        {
            return Ok(false);
        }
        let span = pos.span(node)?;
        Ok(text
            .get(..span.end)
            .and_then(|t| t.chars().next_back())
            .is_some_and(|c| c == '{' || c == '['))
    }
}
