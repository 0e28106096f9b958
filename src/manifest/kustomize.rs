//! Kustomize `images:` lists: the one shape where an edit may add a field or a whole entry
//! (or the `images:` key) instead of replacing a scalar. Owns where new lines go and in which
//! style (indentation, list style, line endings); rendering the values is `quoting`'s.

use saphyr_parser::ScalarStyle;

use super::locate::{alias_uses, anchor_name, scalar_end, skip_properties, source, target_at};
use super::path::KeyPath;
use super::quoting::{render_in, rendered_style};
use super::resolve::{describe, find_key, join_numbers, resolve, select};
use super::roundtrip::{After, Expect, Splice, reparse};
use super::tree::{Kind, Positions, Tree};
use super::{Document, EditError, Style, internal};

/// The path `images[name=<image>].<field>`, the name quoted when the path syntax needs it.
/// The key path of a Kustomize `images:` entry's field, as
/// [`set_kustomize_image`] reads and writes it.
pub fn kustomize_path(image: &str, field: &str) -> Result<KeyPath, EditError> {
    let name = if image.is_empty() || image.contains(['[', ']', '"']) {
        format!("\"{}\"", image.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        image.to_string()
    };
    KeyPath::parse(&format!("images[name={name}].{field}")).map_err(|e| EditError::Unsupported {
        reason: format!("image name {image:?}: {}", e.reason),
    })
}

/// What [`set_kustomize_image`] adds.
pub(super) struct NewValues<'a> {
    pub(super) image: &'a str,
    pub(super) field: &'a str,
    pub(super) value: &'a str,
}

/// Text to insert, and the events it must add to the stream.
pub(super) struct Insertion<'a> {
    /// Byte offset where `text` goes: the start of a line, or the end of the file.
    pub(super) at: usize,
    pub(super) text: String,
    /// The new events replace the original's `splice_at..splice_at + removed`.
    splice_at: usize,
    removed: usize,
    expect: Vec<Expect<'a>>,
}

/// The file's line break: that of its first line; `\n` when it has none.
pub(super) fn newline(text: &str) -> &'static str {
    match text.find(['\n', '\r']) {
        Some(i) if text[i..].starts_with("\r\n") => "\r\n",
        Some(i) if text.as_bytes()[i] == b'\r' => "\r",
        _ => "\n",
    }
}

/// Byte offset where the line holding byte `at` starts.
fn line_start(text: &str, at: usize) -> usize {
    text.get(..at)
        .and_then(|t| t.rfind(['\n', '\r']))
        .map_or(0, |i| i + 1)
}

/// Column of byte `at`, in characters; a byte order mark does not count.
pub(super) fn column(text: &str, at: usize) -> usize {
    let prefix = text.get(line_start(text, at)..at).unwrap_or("");
    prefix.trim_start_matches('\u{feff}').chars().count()
}

fn spaces(n: usize) -> String {
    " ".repeat(n)
}

/// The `-` that introduces a list item starting at byte `item`, if only spaces precede it on its
/// line, and whether the item starts on the same line (`- name: x`, not `-` then `name: x`).
pub(super) fn dash_before(text: &str, item: usize) -> Option<(usize, bool)> {
    let bytes = text.as_bytes();
    let mut i = item;
    let mut same_line = true;
    while i > 0 && matches!(bytes[i - 1], b' ' | b'\n' | b'\r') {
        same_line &= bytes[i - 1] == b' ';
        i -= 1;
    }
    // (`i == item` is an empty item, whose span starts right after its `-`.)
    if i == 0 || bytes[i - 1] != b'-' {
        return None;
    }
    let dash = i - 1;
    let start = line_start(text, dash);
    bytes[start..dash]
        .iter()
        .all(|&b| b == b' ')
        .then_some((dash, same_line))
}

/// How a file writes block lists: the columns between the key that holds a list and its `-`
/// (0 for `key:\n- a`, 2 for `key:\n  - a`), and between a `-` and the keys of a mapping item
/// (2 for `- name: x`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ListStyle {
    pub(super) indent: usize,
    pub(super) gap: usize,
}

/// What `kustomize edit set image` writes, for files with no block list to copy.
pub(super) const KUSTOMIZE_LIST_STYLE: ListStyle = ListStyle { indent: 0, gap: 2 };

/// The `-` column of list item `item`, and for a block mapping on the `-`'s line, the gap.
fn item_layout(
    text: &str,
    pos: &Positions<'_>,
    tree: &Tree,
    item: usize,
) -> Result<Option<(usize, Option<usize>)>, EditError> {
    let start = pos.span(tree.node(item)?)?.start;
    let Some((dash, same_line)) = dash_before(text, start) else {
        return Ok(None);
    };
    let dash_col = column(text, dash);
    let block_mapping =
        tree.node(item)?.kind == Kind::MappingStart && !tree.is_flow(text, pos, item)?;
    let gap = (same_line && block_mapping).then(|| column(text, start).saturating_sub(dash_col));
    Ok(Some((dash_col, gap.filter(|&g| g >= 2))))
}

/// The style of the first block list held by a block mapping in the document under `root`.
pub(super) fn list_style(
    text: &str,
    pos: &Positions<'_>,
    tree: &Tree,
    root: usize,
) -> Result<ListStyle, EditError> {
    let close = tree.node(root)?.close as usize;
    let mut open: Vec<usize> = Vec::new();
    for id in root..=close {
        match tree.node(id)?.kind {
            Kind::MappingStart | Kind::SequenceStart => {
                let parent = open.last().copied();
                open.push(id);
                let Some(parent) = parent else { continue };
                if tree.node(id)?.kind != Kind::SequenceStart
                    || tree.node(parent)?.kind != Kind::MappingStart
                    || tree.is_flow(text, pos, parent)?
                    || tree.is_flow(text, pos, id)?
                {
                    continue;
                }
                let key_col = column(text, pos.span(tree.node(parent)?)?.start);
                if let Some((dash_col, gap)) = item_layout(text, pos, tree, id + 1)?
                    && dash_col >= key_col
                {
                    return Ok(ListStyle {
                        indent: dash_col - key_col,
                        gap: gap.unwrap_or(KUSTOMIZE_LIST_STYLE.gap),
                    });
                }
            }
            Kind::MappingEnd | Kind::SequenceEnd => {
                open.pop();
            }
            _ => {}
        }
    }
    Ok(KUSTOMIZE_LIST_STYLE)
}

/// Where the source text of node `id` ends, when its event says so exactly: plain scalars,
/// quoted scalars (lexed, since their spans may run on), aliases and the brackets closing flow
/// collections (a block collection's end event sits at whatever token follows it). `Err(line)`
/// for a block scalar, whose span runs on over the blank lines after it.
fn content_end(
    text: &str,
    pos: &Positions<'_>,
    tree: &Tree,
    id: usize,
) -> Result<Option<Result<usize, usize>>, EditError> {
    let node = tree.node(id)?;
    let end = match node.kind {
        // An empty plain scalar (`key:`, a bare `-`) has an empty span just after its `:` or
        // `-`, which is on the line it ends, too.
        Kind::Scalar(ScalarStyle::Plain) | Kind::Alias => Some(Ok(pos.span(node)?.end)),
        Kind::Scalar(style @ (ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted)) => {
            let span = pos.span(node)?;
            let start = skip_properties(text, span.clone(), node.has_props, node.line as usize)?;
            Some(Ok(scalar_end(text, start, span.end, style)?))
        }
        Kind::Scalar(_) => Some(Err(node.line as usize)),
        Kind::MappingEnd | Kind::SequenceEnd if node.end > node.start => {
            Some(Ok(pos.span(node)?.end))
        }
        _ => None,
    };
    Ok(end)
}

/// Where the last line of collection `id`'s content ends: new lines for it go there.
fn last_content_end(
    text: &str,
    pos: &Positions<'_>,
    tree: &Tree,
    id: usize,
    what: &str,
) -> Result<usize, EditError> {
    let close = tree.node(id)?.close as usize;
    let mut last = None;
    for j in id + 1..close {
        if let Some(end) = content_end(text, pos, tree, j)? {
            last = Some(end);
        }
    }
    match last {
        Some(Ok(end)) => Ok(end),
        Some(Err(line)) => Err(EditError::Unsupported {
            reason: format!(
                "{what} ends with a |/> block scalar (line {line}), after which tagwatch does not insert lines"
            ),
        }),
        None => Err(internal(format!("could not find where {what} ends"))),
    }
}

/// The insertion point after the line holding byte `at` (its line break included), and
/// whether that is the end of a file without a final line break.
pub(super) fn after_line(text: &str, at: usize) -> (usize, bool) {
    match text.get(at..).and_then(|t| t.find(['\n', '\r'])) {
        Some(i) => {
            let i = at + i;
            let len = if text[i..].starts_with("\r\n") { 2 } else { 1 };
            (i + len, false)
        }
        None => (text.len(), true),
    }
}

/// Refuses to add to collection `id` when an alias uses its anchor: the addition would show up
/// wherever the alias does.
fn check_no_alias_users(
    text: &str,
    pos: &Positions<'_>,
    tree: &Tree,
    id: usize,
) -> Result<(), EditError> {
    let node = tree.node(id)?;
    let uses = alias_uses(tree, node);
    let Some(first) = uses.first() else {
        return Ok(());
    };
    let lines: Vec<usize> = uses.iter().map(|a| a.line as usize).collect();
    Err(EditError::Anchored {
        subject: format!(
            "{} tagwatch would add to",
            describe(node.kind).trim_start_matches("a ")
        ),
        anchor: anchor_name(source(text, pos, node)),
        line: node.line as usize,
        uses: format!(
            "{} alias(es) ({}) at line(s) {}",
            uses.len(),
            source(text, pos, first),
            join_numbers(&lines)
        ),
    })
}

/// Works out the lines to add, and where, for a kustomization without the field or the entry.
pub(super) fn plan_insertion<'a>(
    text: &str,
    tree: &Tree,
    path: &KeyPath,
    new: &NewValues<'a>,
    missing: String,
) -> Result<Insertion<'a>, EditError> {
    let unsupported = |reason: String| EditError::Unsupported { reason };
    let roots: Vec<usize> = tree.docs.iter().filter_map(|r| *r).collect();
    let root = match roots.as_slice() {
        [one] => *one,
        [] => return Err(EditError::NotFound { reason: missing }),
        many => {
            return Err(unsupported(format!(
                "{missing}; the file has {} documents, and tagwatch adds image entries only to a single-document kustomization",
                many.len()
            )));
        }
    };
    let pos = Positions::new(text);
    let root_node = tree.node(root)?;
    let root_line = root_node.line as usize;
    if root_node.kind != Kind::MappingStart || tree.is_flow(text, &pos, root)? {
        let what = match root_node.kind {
            Kind::MappingStart => "a flow mapping",
            kind => describe(kind),
        };
        return Err(unsupported(format!(
            "the document's root is {what} (line {root_line}); tagwatch adds images: only to a block mapping"
        )));
    }
    let key_col = column(text, pos.span(root_node)?.start);
    let name_text = render_in(new.image, Style::Plain, false);
    let value_text = render_in(new.value, Style::Plain, false);
    let key = |k: &'a str| Expect::Scalar {
        value: k,
        style: Style::Plain,
        like: None,
    };
    let plain = |v: &'a str| Expect::Scalar {
        value: v,
        style: rendered_style(v, Style::Plain, false),
        like: None,
    };
    let field_line = |col: usize| format!("{}{}: {value_text}", spaces(col), new.field);
    let entry_lines = |dash_col: usize, gap: usize| {
        vec![
            format!("{}-{}name: {name_text}", spaces(dash_col), spaces(gap - 1)),
            field_line(dash_col + gap),
        ]
    };
    let entry_events = || {
        vec![
            Expect::MappingStart,
            key("name"),
            plain(new.image),
            key(new.field),
            plain(new.value),
            Expect::MappingEnd,
        ]
    };
    check_no_alias_users(text, &pos, tree, root)?;
    let images = find_key(tree, root, "images", path, 0, root_line)?.ok();
    // (byte after which the new lines go, new lines, splice)
    let (content, lines, splice_at, removed, expect) = match images {
        None => {
            let style = list_style(text, &pos, tree, root)?;
            let mut lines = vec![format!("{}images:", spaces(key_col))];
            lines.extend(entry_lines(key_col + style.indent, style.gap));
            let mut expect = vec![key("images"), Expect::SequenceStart];
            expect.extend(entry_events());
            expect.push(Expect::SequenceEnd);
            let content = last_content_end(text, &pos, tree, root, "the document")?;
            (content, lines, root_node.close as usize, 0, expect)
        }
        Some(list) => {
            let node = tree.node(list)?;
            let line = node.line as usize;
            match node.kind {
                // `images:` with nothing after it: the list goes under the key.
                Kind::Scalar(ScalarStyle::Plain) if node.len == 0 && !node.has_props => {
                    let style = list_style(text, &pos, tree, root)?;
                    let lines = entry_lines(key_col + style.indent, style.gap);
                    let mut expect = vec![Expect::SequenceStart];
                    expect.extend(entry_events());
                    expect.push(Expect::SequenceEnd);
                    // The key is the event before its value.
                    let content = match content_end(text, &pos, tree, list - 1)? {
                        Some(Ok(end)) => end,
                        _ => return Err(internal("could not find where the images key ends")),
                    };
                    (content, lines, list, 1, expect)
                }
                Kind::SequenceStart if tree.is_flow(text, &pos, list)? => {
                    return Err(unsupported(format!(
                        "images is a flow list ([...], line {line}); tagwatch adds entries only to a block list (one `- name: ...` item per line)"
                    )));
                }
                Kind::SequenceStart => {
                    check_no_alias_users(text, &pos, tree, list)?;
                    match select(tree, list, "name", new.image, path, 1, line)? {
                        Ok(entry) => {
                            let entry_node = tree.node(entry)?;
                            if tree.is_flow(text, &pos, entry)? {
                                return Err(unsupported(format!(
                                    "the images entry for {:?} is a flow mapping ({{...}}, line {}); tagwatch adds fields only to a block mapping",
                                    new.image, entry_node.line
                                )));
                            }
                            check_no_alias_users(text, &pos, tree, entry)?;
                            if find_key(tree, entry, new.field, path, 2, line)?.is_ok() {
                                return Err(internal(
                                    "the entry has the field, yet the path did not resolve",
                                ));
                            }
                            let col = column(text, pos.span(entry_node)?.start);
                            let content =
                                last_content_end(text, &pos, tree, entry, "the images entry")?;
                            let expect = vec![key(new.field), plain(new.value)];
                            (
                                content,
                                vec![field_line(col)],
                                entry_node.close as usize,
                                0,
                                expect,
                            )
                        }
                        Err(_) => {
                            // Copy the items already there: the first with its `-` found gives
                            // the column, the first block mapping on its `-`'s line the gap.
                            let mut dash_col = None;
                            let mut gap = None;
                            for item in tree.children(list) {
                                if let Some((col, g)) = item_layout(text, &pos, tree, item)? {
                                    dash_col = dash_col.or(Some(col));
                                    gap = gap.or(g);
                                }
                            }
                            let Some(dash_col) = dash_col else {
                                return Err(unsupported(format!(
                                    "could not tell the column of the images list's '-' (line {line})"
                                )));
                            };
                            let gap = gap.unwrap_or(KUSTOMIZE_LIST_STYLE.gap);
                            let content =
                                last_content_end(text, &pos, tree, list, "the images list")?;
                            (
                                content,
                                entry_lines(dash_col, gap),
                                node.close as usize,
                                0,
                                entry_events(),
                            )
                        }
                    }
                }
                kind => {
                    return Err(unsupported(format!(
                        "images is {} (line {line}), not a list of image entries",
                        describe(kind)
                    )));
                }
            }
        }
    };
    let nl = newline(text);
    let (at, at_unterminated_end) = after_line(text, content);
    // At the end of a file that has no final line break, the new lines go after a break and
    // the file still ends without one; anywhere else they end with the file's line break.
    let text = if at_unterminated_end {
        format!("{nl}{}", lines.join(nl))
    } else {
        format!("{}{nl}", lines.join(nl))
    };
    Ok(Insertion {
        at,
        text,
        splice_at,
        removed,
        expect,
    })
}

/// The round-trip check of an insertion: the edited file parses in full, its event stream is
/// the original's with exactly the planned events added, and the path reads back `value`.
pub(super) fn check_insertion(
    mut before: Tree,
    insertion: &Insertion<'_>,
    out: &str,
    path: &KeyPath,
    value: &str,
) -> Result<(), EditError> {
    let fail = |reason: String| EditError::Roundtrip { reason };
    let splice = Splice {
        at: insertion.splice_at,
        removed: insertion.removed,
        inserted: &insertion.expect,
    };
    let mut after = Tree::with_capacity(out.len());
    reparse(&mut before, out, &splice, After::Build(&mut after))
        .map_err(|e| fail(e.to_string()))?;
    let reread = resolve(&after, path, &Document::Any)
        .and_then(|hit| target_at(out, &after, &hit))
        .map_err(|e| fail(format!("re-reading: {e}")))?;
    if reread.scalar.value != value {
        return Err(fail(format!(
            "re-reading the path found {:?} at line {}",
            reread.scalar.value, reread.scalar.line
        )));
    }
    Ok(())
}
