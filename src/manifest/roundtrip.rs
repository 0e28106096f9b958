//! The round-trip check: the edited text is parsed again in full and its event stream must be
//! the original's changed exactly as the edit intended. This is what makes an edit safe to
//! write; it owns no editing itself.

use saphyr_parser::{Event, Parser, Span, Tag};

use super::locate::{Target, locate};
use super::path::KeyPath;
use super::quoting::rendered_style;
use super::tree::{Kind, Node, Tree, scan_error, small};
use super::{Document, EditError, Style, internal};

/// How the edited file's event stream must differ from the original's: events
/// `at..at + removed` are replaced by `inserted`; every other event is unchanged.
pub(super) struct Splice<'a> {
    pub(super) at: usize,
    pub(super) removed: usize,
    pub(super) inserted: &'a [Expect<'a>],
}

/// An event the edit is meant to produce.
pub(super) enum Expect<'a> {
    /// A scalar with this value and style, carrying the anchor and tag of the original's node
    /// `like` (or none).
    Scalar {
        value: &'a str,
        style: Style,
        like: Option<usize>,
    },
    MappingStart,
    MappingEnd,
    SequenceStart,
    SequenceEnd,
}

/// Describes node `id` for a round-trip message.
fn show(tree: &Tree, id: usize) -> String {
    match tree.nodes.get(id) {
        Some(
            n @ Node {
                kind: Kind::Scalar(style),
                ..
            },
        ) => format!("{style:?} scalar {:?} (line {})", tree.value(n), n.line),
        Some(n) => format!("{:?} (line {})", n.kind, n.line),
        None => "nothing".to_string(),
    }
}

fn show_event(event: &Event<'_>, span: &Span) -> String {
    let what = match event {
        Event::Scalar(v, style, ..) => format!("{style:?} scalar {v:?}"),
        other => format!("{other:?}"),
    };
    format!("{what} (line {})", span.start.line())
}

/// Whether `event` is the event node `node` of `tree` records: kind, style, value, anchor and
/// tag. Positions are not compared: the edit shifts everything after it.
fn same_event(tree: &Tree, node: &Node, event: &Event<'_>) -> bool {
    let props = |anchor: usize, tag: &Option<std::borrow::Cow<'_, Tag>>| {
        node.anchor as usize == anchor && tree.tag(node) == tag.as_deref()
    };
    match (node.kind, event) {
        (Kind::Scalar(s), Event::Scalar(v, style, anchor, tag)) => {
            s == *style && tree.value(node) == v.as_ref() && props(*anchor, tag)
        }
        (Kind::MappingStart, Event::MappingStart(anchor, tag))
        | (Kind::SequenceStart, Event::SequenceStart(anchor, tag)) => props(*anchor, tag),
        (Kind::Alias, Event::Alias(anchor)) => node.anchor as usize == *anchor,
        (Kind::DocumentStart { explicit }, Event::DocumentStart(e)) => explicit == *e,
        (Kind::MappingEnd, Event::MappingEnd)
        | (Kind::SequenceEnd, Event::SequenceEnd)
        | (Kind::DocumentEnd, Event::DocumentEnd)
        | (Kind::StreamStart, Event::StreamStart)
        | (Kind::StreamEnd, Event::StreamEnd)
        | (Kind::Nothing, Event::Nothing) => true,
        _ => false,
    }
}

/// Whether `event` is the event `expect` describes (`before` holds the node it imitates).
fn expected_event(before: &Tree, expect: &Expect<'_>, event: &Event<'_>) -> bool {
    match (expect, event) {
        (Expect::Scalar { value, style, like }, Event::Scalar(v, s, anchor, tag)) => {
            let like = like.and_then(|l| before.nodes.get(l));
            Style::from(*s) == *style
                && v.as_ref() == *value
                && *anchor == like.map_or(0, |l| l.anchor as usize)
                && tag.as_deref() == like.and_then(|l| before.tag(l))
        }
        (Expect::MappingStart, Event::MappingStart(anchor, tag))
        | (Expect::SequenceStart, Event::SequenceStart(anchor, tag)) => {
            *anchor == 0 && tag.is_none()
        }
        (Expect::MappingEnd, Event::MappingEnd) | (Expect::SequenceEnd, Event::SequenceEnd) => true,
        _ => false,
    }
}

/// How the edited file's event stream differs from what the edit intended. Each becomes an
/// [`EditError::Roundtrip`], so nothing is written.
#[derive(Debug, thiserror::Error)]
pub(super) enum Mismatch {
    #[error("internal error: the splice lies outside the document")]
    SpliceOutside,
    #[error("internal error: only a one-for-one splice can patch the tree")]
    NotOneForOne,
    #[error("the edited file does not parse: {0}")]
    DoesNotParse(EditError),
    #[error("the edit changed the document's structure (an extra {extra})")]
    Extra { extra: String },
    #[error("the edit changed the document: found {found} where {wanted} was expected")]
    Changed { found: String, wanted: String },
    #[error(
        "the edit changed the document's structure ({expected} events expected, {found} found)"
    )]
    Count { expected: usize, found: usize },
    /// Storing the edited file's events failed (positions too large, unbalanced collections).
    #[error(transparent)]
    Tree(EditError),
}

/// What to do with the edited file's tree.
pub(super) enum After<'t> {
    /// The splice replaces events one for one: update `before` in place (positions, lines and
    /// the new values), so that afterwards it *is* the tree of the edited file. This spares
    /// building a second tree of a large file.
    Patch,
    /// Build the edited file's tree here.
    Build(&'t mut Tree),
}

/// Parses the edited text `out` in full and checks, event by event as the parser produces them,
/// that its stream is the original's (`before`) changed exactly as `splice` says. Nothing of
/// the edited file is stored except through `after`.
pub(super) fn reparse(
    before: &mut Tree,
    out: &str,
    splice: &Splice<'_>,
    mut after: After<'_>,
) -> Result<(), Mismatch> {
    let (at, removed, inserted) = (splice.at, splice.removed, splice.inserted.len());
    if at + removed > before.nodes.len() {
        return Err(Mismatch::SpliceOutside);
    }
    if matches!(after, After::Patch) && removed != inserted {
        return Err(Mismatch::NotOneForOne);
    }
    let expected_len = before.nodes.len() - removed + inserted;
    let mut open = Vec::new();
    let mut parser = Parser::new_from_str(out);
    let mut j = 0;
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| Mismatch::DoesNotParse(scan_error(&e)))?;
        if j >= expected_len {
            return Err(Mismatch::Extra {
                extra: show_event(&event, &span),
            });
        }
        let ok = if j < at {
            same_event(before, &before.nodes[j], &event)
        } else if j < at + inserted {
            expected_event(before, &splice.inserted[j - at], &event)
        } else {
            let i = j - inserted + removed;
            same_event(before, &before.nodes[i], &event)
        };
        if !ok {
            let wanted = if (at..at + inserted).contains(&j) {
                match &splice.inserted[j - at] {
                    Expect::Scalar { value, style, .. } => format!("{style:?} scalar {value:?}"),
                    Expect::MappingStart => "a mapping".into(),
                    Expect::MappingEnd => "the mapping's end".into(),
                    Expect::SequenceStart => "a list".into(),
                    Expect::SequenceEnd => "the list's end".into(),
                }
            } else {
                show(before, if j < at { j } else { j - inserted + removed })
            };
            return Err(Mismatch::Changed {
                found: show_event(&event, &span),
                wanted,
            });
        }
        match &mut after {
            After::Build(tree) => tree.push(event, span, &mut open).map_err(Mismatch::Tree)?,
            After::Patch => {
                let replaced = (at..at + inserted).contains(&j);
                before
                    .patch(j, &event, &span, replaced)
                    .map_err(Mismatch::Tree)?
            }
        }
        j += 1;
    }
    if j != expected_len {
        return Err(Mismatch::Count {
            expected: expected_len,
            found: j,
        });
    }
    Ok(())
}

impl Tree {
    /// Makes node `id` describe `event` at `span` of the edited file: its new position, and for
    /// the `replaced` scalar its new value and style (every other event was checked equal).
    fn patch(
        &mut self,
        id: usize,
        event: &Event<'_>,
        span: &Span,
        replaced: bool,
    ) -> Result<(), EditError> {
        let start = small(span.start.index())?;
        let end = small(span.end.index())?.max(start);
        let line = small(span.start.line())?;
        let value = match event {
            Event::Scalar(v, style, ..) if replaced => {
                let at = small(self.arena.len())?;
                self.arena.push_str(v);
                Some((at, small(v.len())?, *style))
            }
            _ => None,
        };
        let node = self
            .nodes
            .get_mut(id)
            .ok_or_else(|| internal("dangling node reference"))?;
        node.start = start;
        node.end = end;
        node.line = line;
        if let Some((at, len, style)) = value {
            node.value = at;
            node.len = len;
            node.kind = Kind::Scalar(style);
        }
        Ok(())
    }
}

/// Re-parses `out`, expecting the events of `tree` with the target scalar
/// replaced one-for-one by `value`, and patches `tree` to match `out`.
pub(super) fn reparse_scalar_swap(
    tree: &mut Tree,
    out: &str,
    target: &Target,
    value: &str,
) -> Result<(), Mismatch> {
    let style = rendered_style(value, target.scalar.style, target.in_flow);
    let inserted = [Expect::Scalar {
        value,
        style,
        like: Some(target.event_index),
    }];
    let splice = Splice {
        at: target.event_index,
        removed: 1,
        inserted: &inserted,
    };
    reparse(tree, out, &splice, After::Patch)
}

/// The round-trip check of [`set`]: re-parses the edited text in full and checks that (1) it
/// parses, (2) its event stream equals the original's except for the target scalar, which (3)
/// holds `value` in the style we rendered, with its anchor and tag, and (4) the path, resolved
/// again in the edited file, leads to it. (2) catches any edit that changed the document's
/// structure, even one that happens to leave the path intact. `tree` is consumed: it becomes
/// the edited file's tree.
pub(super) fn roundtrip_check(
    mut tree: Tree,
    target: &Target,
    out: &str,
    path: &KeyPath,
    doc: &Document,
    value: &str,
) -> Result<(), EditError> {
    let fail = |reason: String| EditError::Roundtrip { reason };
    reparse_scalar_swap(&mut tree, out, target, value).map_err(|e| fail(e.to_string()))?;
    let reread = locate(out, &tree, path, doc).map_err(|e| fail(format!("re-reading: {e}")))?;
    if reread.event_index != target.event_index
        || reread.scalar.value != value
        || reread.scalar.byte_range.start != target.scalar.byte_range.start
    {
        return Err(fail(format!(
            "re-reading the path found {:?} at line {}",
            reread.scalar.value, reread.scalar.line
        )));
    }
    Ok(())
}
