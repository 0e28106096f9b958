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
//! about registries or tags: it edits "the scalar at this key path". The one shape it knows is a
//! Kustomize `images:` list, where [`set_kustomize_image`] may also have to *add* a field or an
//! entry; it then inserts whole lines in the file's own style and changes nothing else.
//!
//! Cost: an edit is two full parses (the input, then the output for the round-trip check) and
//! little else, because the parsed document is the event stream stored flat, with no allocation
//! per event, byte offsets are computed only for the few nodes that need them, and the output's
//! events are compared with the input's as they are parsed, without building a second tree.
//! saphyr-parser's own speed (roughly 60-70 MB/s here) is the floor.
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
//!
//! Layout: this file holds the public types and operations; `path` parses key paths,
//! `tree` parses YAML into the flat event tree, `resolve` walks a path to one node, `locate`
//! finds that scalar's bytes, `roundtrip` re-parses the edited text, `kustomize` inserts
//! fields and entries into `images:` lists, and `quoting` renders values and judges plain
//! scalars. An edit flows: check_input → tree → resolve → locate → quoting → splice →
//! roundtrip.

use std::ops::Range;

use saphyr_parser::ScalarStyle;

/// Files larger than this are refused: a values file this big is almost certainly a mistake,
/// and the limit bounds the memory and time one edit can take.
pub const MAX_FILE_BYTES: usize = 10 * 1024 * 1024;

pub use kustomize::kustomize_path;
pub use path::{KeyPath, PathError, PathProblem};

use kustomize::{NewValues, check_insertion, plan_insertion};
use locate::{locate, target_at};
use quoting::{plain_is_safe_in, render_in};
use resolve::{Hit, resolve};
use roundtrip::roundtrip_check;
use tree::Tree;

mod kustomize;
mod locate;
mod path;
mod quoting;
mod resolve;
mod roundtrip;
#[cfg(test)]
mod tests;
mod tree;

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

/// Which YAML document of a multi-document file (`---`) to look in. `Any` searches all documents
/// and requires exactly one match across them. `Index` is 0-based and counts every document the
/// YAML parser sees, including empty ones.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Document {
    #[default]
    Any,
    Index(usize),
    /// The documents whose scalars at these paths hold these values, e.g.
    /// `kind=Deployment,metadata.name=api`. The target path must then
    /// match in exactly one of them.
    Select(Vec<(KeyPath, String)>),
}

impl Document {
    /// Parses `N` or `path=value[,path=value…]`.
    pub fn parse(s: &str) -> Result<Document, DocumentError> {
        if let Ok(n) = s.trim().parse::<usize>() {
            return Ok(Document::Index(n));
        }
        let mut conditions = Vec::new();
        for part in s.split(',') {
            let Some((path, value)) = part.split_once('=') else {
                return Err(DocumentError::NotASelector {
                    input: s.to_string(),
                });
            };
            let path = KeyPath::parse(path.trim()).map_err(|e| DocumentError::Path {
                input: s.to_string(),
                error: e,
            })?;
            conditions.push((path, value.trim().to_string()));
        }
        Ok(Document::Select(conditions))
    }

    /// Whether two selections could name the same document.
    pub fn overlaps(&self, other: &Document) -> bool {
        match (self, other) {
            (Document::Index(a), Document::Index(b)) => a == b,
            // Selectors are matched against content, which config
            // validation cannot see: assume they may overlap.
            _ => true,
        }
    }
}

/// A `document` selector that could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error(
        "document {input:?}: expected an index or path=value pairs, e.g. \"kind=Deployment,metadata.name=api\""
    )]
    NotASelector { input: String },
    /// One of the `path=value` pairs has a path that does not parse. The
    /// path's error is part of the message, not a `source`, so a chain of
    /// causes does not print it twice.
    #[error("document {input:?}: {error}")]
    Path { input: String, error: PathError },
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
        "has no value (an empty/null node at line {line}); write the value it should start from (the tag deployed now) so there are bytes to replace"
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
    #[error("not supported: {reason}")]
    Unsupported { reason: String },
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
            EditError::Unsupported { .. } => "unsupported",
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
    let hit = resolve(&tree, path, doc)?;
    replace(text, tree, &hit, path, doc, value)
}

/// `set` once the path has been resolved to `hit`.
fn replace(
    text: &str,
    tree: Tree,
    hit: &Hit,
    path: &KeyPath,
    doc: &Document,
    value: &str,
) -> Result<Option<Vec<u8>>, EditError> {
    let target = target_at(text, &tree, hit)?;
    if target.scalar.value == value {
        return Ok(None);
    }
    let new_text = render_in(value, target.scalar.style, target.in_flow);
    let range = target.scalar.byte_range.clone();
    let mut out = String::with_capacity(text.len() + new_text.len());
    out.push_str(&text[..range.start]);
    out.push_str(&new_text);
    out.push_str(&text[range.end..]);
    roundtrip_check(tree, &target, &out, path, doc, value)?;
    Ok(Some(out.into_bytes()))
}

/// The fields of a Kustomize `images:` entry that [`set_kustomize_image`] writes. `name` is
/// what selects the entry, so it is not among them.
pub const KUSTOMIZE_IMAGE_FIELDS: [&str; 3] = ["newTag", "digest", "newName"];

/// Sets `field` (`"newTag"`, `"digest"` or `"newName"`) of the `images:` entry whose `name` is
/// `image` in a kustomization file:
/// - replaces the scalar if present, exactly as [`set`] does at
///   `images[name=<image>].<field>`;
/// - adds `<field>: <value>` to the entry if the entry exists without it;
/// - appends a new entry `- name: <image>` / `<field>: <value>` to the list if there is none;
/// - adds `images:` with that entry at the end of the document if it has no `images` key (or
///   an empty one).
///
/// New lines follow the file's own style: the column of the sibling keys or entries, indented
/// (`images:\n  - name:`) or non-indented (`images:\n- name:`) lists as the file already
/// writes them (Kustomize's own non-indented style when it has no block list to copy), and the
/// file's line ending. New lines go after the last line of the entry, list or document; when
/// that is the end of a file without a final line break, the file still ends without one.
/// New scalars are plain when that is safe (see [`plain_is_safe`]), double-quoted otherwise.
///
/// Refuses what `set` refuses, plus: a `field` not in [`KUSTOMIZE_IMAGE_FIELDS`], `images`
/// that is not a block list (a flow list `[...]`, a mapping, a scalar), two entries with that
/// name, an entry written as a flow mapping, a root that is not a block mapping, a file with
/// several documents when an insertion is needed, and an insertion point after a `|`/`>` block
/// scalar. The result is re-parsed in full: its event stream must be the original's plus
/// exactly the inserted events, and `images[name=<image>].<field>` must read back as `value`.
pub fn set_kustomize_image(
    src: &[u8],
    image: &str,
    field: &str,
    value: &str,
) -> Result<Option<Vec<u8>>, EditError> {
    let text = check_input(src)?;
    if !KUSTOMIZE_IMAGE_FIELDS.contains(&field) {
        return Err(EditError::Unsupported {
            reason: format!(
                "{field:?} is not a Kustomize image field tagwatch sets (one of {})",
                KUSTOMIZE_IMAGE_FIELDS.join(", ")
            ),
        });
    }
    let path = kustomize_path(image, field)?;
    let tree = Tree::parse(text)?;
    let doc = Document::Any;
    let missing = match resolve(&tree, &path, &doc) {
        Ok(hit) => return replace(text, tree, &hit, &path, &doc, value),
        Err(EditError::NotFound { reason }) => reason,
        Err(e) => return Err(e),
    };
    let values = NewValues {
        image,
        field,
        value,
    };
    let insertion = plan_insertion(text, &tree, &path, &values, missing)?;
    let mut out = String::with_capacity(text.len() + insertion.text.len());
    out.push_str(&text[..insertion.at]);
    out.push_str(&insertion.text);
    out.push_str(&text[insertion.at..]);
    check_insertion(tree, &insertion, &out, &path, value)?;
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
