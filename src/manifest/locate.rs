//! Locating the target scalar's bytes: from the node a path resolved to, the exact byte range
//! of the scalar itself (past `&anchor`/`!tag` properties, up to the closing quote), checked
//! against the parsed value, and refused when an alias would silently share the edit.

use std::ops::Range;

use saphyr_parser::ScalarStyle;

use super::path::KeyPath;
use super::resolve::{Hit, describe, join_numbers, resolve};
use super::tree::{Kind, Node, Positions, Tree};
use super::{Document, EditError, Scalar, Style, internal};

/// The target scalar plus what `set` needs to edit it safely.
pub(super) struct Target {
    pub(super) scalar: Scalar,
    pub(super) in_flow: bool,
    pub(super) event_index: usize,
}

pub(super) fn locate(
    text: &str,
    tree: &Tree,
    path: &KeyPath,
    doc: &Document,
) -> Result<Target, EditError> {
    let hit = resolve(tree, path, doc)?;
    target_at(text, tree, &hit)
}

/// Checks that the node a path resolved to is an editable scalar and finds its bytes.
pub(super) fn target_at(text: &str, tree: &Tree, hit: &Hit) -> Result<Target, EditError> {
    let pos = Positions::new(text);
    let node = tree.node(hit.node)?;
    let line = node.line as usize;
    let style = match node.kind {
        Kind::Scalar(style) => style,
        Kind::Alias => {
            return Err(EditError::Alias {
                alias: source(text, &pos, node).to_string(),
                line,
            });
        }
        kind => {
            return Err(EditError::NotScalar {
                what: describe(kind),
                line,
            });
        }
    };
    let value = tree.value(node);
    check_anchors(text, &pos, tree, hit)?;
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
            return Err(EditError::BlockScalar { indicator, line });
        }
        Style::Plain if value.is_empty() => return Err(EditError::EmptyValue { line }),
        _ => {}
    }
    // An explicit tag other than a string's beats the quotes a reader sees:
    // `!!float "1.10"` is the number 1.1. Writing under it would change what
    // the value means, so only untagged, `!` and `!!str` scalars are edited.
    if let Some(tag) = tree.tag(node) {
        let is_str = (tag.is_yaml_core_schema() || tag.handle == "!!") && tag.suffix == "str";
        let non_specific = tag.handle == "!" && tag.suffix.is_empty();
        if !(is_str || non_specific) {
            let shown = if tag.is_yaml_core_schema() {
                format!("!!{}", tag.suffix)
            } else {
                format!("{}{}", tag.handle, tag.suffix)
            };
            return Err(EditError::Unsupported {
                reason: format!(
                    "the value carries the explicit tag {shown} (line {line}); tagwatch writes strings, and under {shown} a reader would not read one; remove the tag"
                ),
            });
        }
    }
    // The parent comes before the node in the file: converting it first keeps the position
    // lookups moving forward.
    let in_flow = match hit.trail.last() {
        Some(&parent) => tree.is_flow(text, &pos, parent)?,
        None => false,
    };
    let span = pos.span(node)?;
    let start = skip_properties(text, span.clone(), node.has_props, line)?;
    let line = line + count_breaks(text.get(span.start..start).unwrap_or(""));
    let end = scalar_end(text, start, span.end, style)?;
    verify_source(text, start..end, value, style, line)?;
    Ok(Target {
        scalar: Scalar {
            value: value.to_string(),
            byte_range: start..end,
            line,
            style: style_out,
        },
        in_flow,
        event_index: hit.node,
    })
}

/// The source text of a node's span, for messages.
pub(super) fn source<'t>(text: &'t str, pos: &Positions<'_>, node: &Node) -> &'t str {
    pos.span(node).ok().and_then(|r| text.get(r)).unwrap_or("?")
}

/// Refuses when the target, or a collection it sits in, carries an anchor that an alias uses:
/// editing it would silently change every place the alias appears.
fn check_anchors(text: &str, pos: &Positions<'_>, tree: &Tree, hit: &Hit) -> Result<(), EditError> {
    for (i, &id) in hit
        .trail
        .iter()
        .chain(std::iter::once(&hit.node))
        .enumerate()
    {
        let node = tree.node(id)?;
        if node.anchor == 0 || node.kind == Kind::Alias {
            continue;
        }
        let uses = alias_uses(tree, node);
        let Some(first) = uses.first() else {
            continue;
        };
        let lines: Vec<usize> = uses.iter().map(|a| a.line as usize).collect();
        let subject = if id == hit.node {
            "the value".to_string()
        } else if i == 0 {
            "the document's root".to_string()
        } else {
            "an enclosing node".to_string()
        };
        return Err(EditError::Anchored {
            subject,
            anchor: anchor_name(source(text, pos, node)),
            line: node.line as usize,
            uses: format!(
                "{} alias(es) ({}) at line(s) {}",
                uses.len(),
                source(text, pos, first),
                join_numbers(&lines)
            ),
        });
    }
    Ok(())
}

/// The aliases that refer to `node`'s anchor.
pub(super) fn alias_uses<'t>(tree: &'t Tree, node: &Node) -> Vec<&'t Node> {
    if node.anchor == 0 || node.kind == Kind::Alias {
        return Vec::new();
    }
    tree.aliases
        .iter()
        .filter_map(|&a| tree.nodes.get(a))
        .filter(|a| a.anchor == node.anchor)
        .collect()
}

/// The `&name` in a node's source text, for messages.
pub(super) fn anchor_name(props: &str) -> String {
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
pub(super) fn skip_properties(
    text: &str,
    span: Range<usize>,
    has_props: bool,
    line: usize,
) -> Result<usize, EditError> {
    let mut pos = span.start;
    if !has_props {
        return Ok(pos);
    }
    let bytes = text.as_bytes();
    if !matches!(bytes.get(pos), Some(b'&' | b'!')) {
        return Err(internal(format!(
            "a node with an anchor or tag does not start with '&' or '!' (line {line})"
        )));
    }
    let is_blank = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    // Anchor names and tag shorthands end at a blank or a flow indicator; a verbatim tag
    // `!<...>` ends at its `>`.
    let ends_property = |b: &u8| is_blank(b) || matches!(b, b',' | b'[' | b']' | b'{' | b'}');
    while pos < span.end {
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
    if pos > span.end || !text.is_char_boundary(pos) {
        return Err(internal(format!(
            "could not find the scalar after its anchor/tag (line {line})"
        )));
    }
    Ok(pos)
}

/// The byte just past the scalar. Quoted scalars are lexed here because saphyr's span may run
/// past the closing quote (over trailing blanks and comments).
pub(super) fn scalar_end(
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
