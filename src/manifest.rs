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

use std::cell::Cell;
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span, Tag};

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

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
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
    /// The path's steps without the way they were written, so `image.tag`
    /// and `"image".tag` compare equal: one scalar, one path.
    pub fn steps_eq(&self, other: &KeyPath) -> bool {
        self.steps == other.steps
    }

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
    pub fn parse(s: &str) -> Result<Document, String> {
        if let Ok(n) = s.trim().parse::<usize>() {
            return Ok(Document::Index(n));
        }
        let mut conditions = Vec::new();
        for part in s.split(',') {
            let Some((path, value)) = part.split_once('=') else {
                return Err(format!(
                    "document {s:?}: expected an index or path=value pairs, e.g. \"kind=Deployment,metadata.name=api\""
                ));
            };
            let path = KeyPath::parse(path.trim()).map_err(|e| format!("document {s:?}: {e}"))?;
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

// ---------------------------------------------------------------------------------------------
// Character index -> byte offset
// ---------------------------------------------------------------------------------------------

/// Converts saphyr's character indices to byte offsets, on demand.
///
/// Only a handful of positions are converted per operation (the target, the collection it sits
/// in, aliases named in messages), so nothing is precomputed: a lookup scans forward from the
/// previous one, or from the start when asked for an earlier position, counting UTF-8 lead
/// bytes a 64-byte block at a time. That scan runs at memory speed (about a millisecond for
/// 10 MiB), cheaper than building any index of a large file would be.
struct Positions<'a> {
    bytes: &'a [u8],
    /// `(c, b)`: character number `c` starts at byte `b`.
    cursor: Cell<(usize, usize)>,
}

/// Bytes counted at once when skipping ahead: 128 eight-byte words, few enough that the
/// per-byte counters in `count_leads` cannot overflow.
const BLOCK: usize = 1024;

/// A byte that starts a character (anything but a UTF-8 continuation byte `10xxxxxx`).
fn is_lead(b: u8) -> bool {
    (b as i8) >= -0x40
}

/// The number of characters starting in `block` (at most `BLOCK` bytes long), eight bytes at a
/// time: a continuation byte has its top bit set and the next one clear. Each byte lane of
/// `sum` counts the continuation bytes seen in that lane (at most 128).
fn count_leads(block: &[u8]) -> usize {
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
    fn new(text: &'a str) -> Self {
        Positions {
            bytes: text.as_bytes(),
            cursor: Cell::new((0, 0)),
        }
    }

    /// Byte offset of character `index`; `index == number of characters` maps to the end.
    fn byte(&self, index: usize) -> Option<usize> {
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
    fn span(&self, node: &Node) -> Result<Range<usize>, EditError> {
        let bad_span = || internal("the parser reported a position outside the file");
        let start = self.byte(node.start as usize).ok_or_else(bad_span)?;
        let end = self.byte(node.end as usize).ok_or_else(bad_span)?;
        Ok(start..end.max(start))
    }
}

// ---------------------------------------------------------------------------------------------
// The parsed document: the event stream, flat
// ---------------------------------------------------------------------------------------------

/// What an event is, without its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
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
struct Node {
    kind: Kind,
    /// Whether the node has an anchor or a tag in front of it.
    has_props: bool,
    /// The event's span in characters (see [`Positions`]): properties included; a quoted
    /// scalar's may run long.
    start: u32,
    end: u32,
    /// 1-based line where the span starts, as counted by the parser.
    line: u32,
    /// saphyr's anchor id, 0 when there is none; for an alias, the id it refers to.
    anchor: u32,
    /// 1 + the index of the node's tag in `Tree::tags`; 0 when it has no tag.
    tag: u32,
    /// A scalar's value is `Tree::arena[value..value + len]`.
    value: u32,
    len: u32,
    /// For a collection start, the index of its end event; for any other event, its own. The
    /// next sibling of node `i` is therefore `close + 1`.
    close: u32,
}

struct Tree {
    nodes: Vec<Node>,
    /// Every scalar value, concatenated: one allocation instead of one per scalar.
    arena: String,
    tags: Vec<Tag>,
    /// Root node of each document; `None` should not happen but is tolerated.
    docs: Vec<Option<usize>>,
    /// The alias events, for the anchor check.
    aliases: Vec<usize>,
}

fn scan_error(e: &ScanError) -> EditError {
    EditError::InvalidYaml {
        message: e.info().to_string(),
        line: e.marker().line(),
        column: e.marker().col() + 1,
    }
}

/// Narrows a position or count for storage in a [`Node`].
fn small(n: usize) -> Result<u32, EditError> {
    u32::try_from(n).map_err(|_| internal("a position does not fit in 32 bits"))
}

impl Tree {
    fn with_capacity(text_len: usize) -> Tree {
        Tree {
            nodes: Vec::new(),
            // Keys and values make up most of a YAML file's text.
            arena: String::with_capacity(text_len / 2),
            tags: Vec::new(),
            docs: Vec::new(),
            aliases: Vec::new(),
        }
    }

    fn parse(text: &str) -> Result<Tree, EditError> {
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
    fn push(
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

    fn node(&self, id: usize) -> Result<&Node, EditError> {
        self.nodes
            .get(id)
            .ok_or_else(|| internal("dangling node reference"))
    }

    fn value(&self, node: &Node) -> &str {
        let start = node.value as usize;
        self.arena
            .get(start..start + node.len as usize)
            .unwrap_or("")
    }

    fn tag(&self, node: &Node) -> Option<&Tag> {
        (node.tag as usize)
            .checked_sub(1)
            .and_then(|i| self.tags.get(i))
    }

    /// The value of node `id` if it is a scalar.
    fn scalar(&self, id: usize) -> Option<&str> {
        let node = self.nodes.get(id)?;
        matches!(node.kind, Kind::Scalar(_)).then(|| self.value(node))
    }

    /// The children of collection `id` (a mapping's alternate key, value); none for others.
    fn children(&self, id: usize) -> impl Iterator<Item = usize> + '_ {
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
    fn pairs(&self, id: usize) -> impl Iterator<Item = (usize, Option<usize>)> + '_ {
        let mut children = self.children(id);
        std::iter::from_fn(move || {
            let key = children.next()?;
            Some((key, children.next()))
        })
    }

    /// Whether collection node `id` is written in flow style: a flow collection's start event
    /// ends with its `{` / `[`; a block one's is empty or covers only its properties.
    fn is_flow(&self, text: &str, pos: &Positions<'_>, id: usize) -> Result<bool, EditError> {
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

fn describe(kind: Kind) -> &'static str {
    match kind {
        Kind::Scalar(_) => "a scalar",
        Kind::MappingStart => "a mapping",
        Kind::SequenceStart => "a list",
        Kind::Alias => "an alias",
        _ => "not a node",
    }
}

fn walk(tree: &Tree, root: usize, path: &KeyPath) -> Result<Walk, EditError> {
    let mut current = root;
    let mut trail = vec![root];
    for (i, step) in path.steps.iter().enumerate() {
        let node = tree.node(current)?;
        let line = node.line as usize;
        let next = match (step, node.kind) {
            (Step::Key(key), Kind::MappingStart) => find_key(tree, current, key, path, i, line)?,
            (Step::Index(n), Kind::SequenceStart) => {
                tree.children(current).nth(*n).ok_or_else(|| {
                    format!(
                        "{} has {} item(s); index [{n}] is out of range (line {line})",
                        quoted_prefix(path, i),
                        tree.children(current).count(),
                    )
                })
            }
            (Step::Select { field, value }, Kind::SequenceStart) => {
                select(tree, current, field, value, path, i, line)?
            }
            (step, kind) => Err(format!(
                "expected {} {} but found {} (line {line})",
                expected(step),
                under(path, i),
                describe(kind),
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

fn node_lines(tree: &Tree, ids: impl Iterator<Item = usize>) -> Vec<usize> {
    ids.filter_map(|id| tree.nodes.get(id).map(|n| n.line as usize))
        .collect()
}

/// Finds the value of `key` in mapping node `mapping`. `Ok(Err(reason))` is "not here";
/// `Err` is a hard failure (a duplicate key makes the path ambiguous).
fn find_key(
    tree: &Tree,
    mapping: usize,
    key: &str,
    path: &KeyPath,
    i: usize,
    line: usize,
) -> Result<Result<usize, String>, EditError> {
    let mut hits = Vec::new();
    let mut has_merge = false;
    for (k, v) in tree.pairs(mapping) {
        let Some(v) = v else { continue };
        match tree.scalar(k) {
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
        many => Err(EditError::Ambiguous {
            count: many.len(),
            places: format!(
                "lines {}",
                join_numbers(&node_lines(tree, many.iter().map(|(k, _)| *k)))
            ),
            hint: format!(
                "the key {key:?} appears {} times {}",
                many.len(),
                under(path, i)
            ),
        }),
    }
}

/// Finds the one element of list node `list` that is a mapping whose `field` holds `value`.
fn select(
    tree: &Tree,
    list: usize,
    field: &str,
    value: &str,
    path: &KeyPath,
    i: usize,
    line: usize,
) -> Result<Result<usize, String>, EditError> {
    let matches_field = |element: usize| -> bool {
        tree.nodes
            .get(element)
            .is_some_and(|n| n.kind == Kind::MappingStart)
            && tree.pairs(element).any(|(k, v)| {
                tree.scalar(k) == Some(field) && v.and_then(|v| tree.scalar(v)) == Some(value)
            })
    };
    let hits: Vec<usize> = tree.children(list).filter(|&c| matches_field(c)).collect();
    match hits.as_slice() {
        [] => Ok(Err(format!(
            "no element of {} has {field} = {value:?} (line {line})",
            quoted_prefix(path, i)
        ))),
        [one] => Ok(Ok(*one)),
        many => Err(EditError::Ambiguous {
            count: many.len(),
            places: format!(
                "lines {}",
                join_numbers(&node_lines(tree, many.iter().copied()))
            ),
            hint: format!(
                "{} elements of {} have {field} = {value:?}",
                many.len(),
                quoted_prefix(path, i)
            ),
        }),
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
        Document::Select(conditions) => {
            let chosen: Vec<usize> = (0..tree.docs.len())
                .filter(|&d| {
                    let Some(Some(root)) = tree.docs.get(d).copied() else {
                        return false;
                    };
                    conditions
                        .iter()
                        .all(|(path, want)| match walk(tree, root, path) {
                            Ok(Walk::Found { node, .. }) => tree.node(node).is_ok_and(|n| {
                                matches!(n.kind, Kind::Scalar(_)) && tree.value(n) == want
                            }),
                            _ => false,
                        })
                })
                .collect();
            if chosen.is_empty() {
                let wanted: Vec<String> =
                    conditions.iter().map(|(p, v)| format!("{p}={v}")).collect();
                return Err(EditError::NotFound {
                    reason: format!("no document has {}", wanted.join(", ")),
                });
            }
            chosen
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
                let line = tree.nodes.get(h.node).map_or(0, |n| n.line as usize);
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
    target_at(text, tree, &hit)
}

/// Checks that the node a path resolved to is an editable scalar and finds its bytes.
fn target_at(text: &str, tree: &Tree, hit: &Hit) -> Result<Target, EditError> {
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
fn source<'t>(text: &'t str, pos: &Positions<'_>, node: &Node) -> &'t str {
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
fn alias_uses<'t>(tree: &'t Tree, node: &Node) -> Vec<&'t Node> {
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
fn anchor_name(props: &str) -> String {
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
fn skip_properties(
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

/// How the edited file's event stream must differ from the original's: events
/// `at..at + removed` are replaced by `inserted`; every other event is unchanged.
struct Splice<'a> {
    at: usize,
    removed: usize,
    inserted: &'a [Expect<'a>],
}

/// An event the edit is meant to produce.
enum Expect<'a> {
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

/// What to do with the edited file's tree.
enum After<'t> {
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
fn reparse(
    before: &mut Tree,
    out: &str,
    splice: &Splice<'_>,
    mut after: After<'_>,
) -> Result<(), String> {
    let (at, removed, inserted) = (splice.at, splice.removed, splice.inserted.len());
    if at + removed > before.nodes.len() {
        return Err("internal error: the splice lies outside the document".to_string());
    }
    if matches!(after, After::Patch) && removed != inserted {
        return Err("internal error: only a one-for-one splice can patch the tree".to_string());
    }
    let expected_len = before.nodes.len() - removed + inserted;
    let mut open = Vec::new();
    let mut parser = Parser::new_from_str(out);
    let mut j = 0;
    while let Some(next) = parser.next_event() {
        let (event, span) =
            next.map_err(|e| format!("the edited file does not parse: {}", scan_error(&e)))?;
        if j >= expected_len {
            return Err(format!(
                "the edit changed the document's structure (an extra {})",
                show_event(&event, &span)
            ));
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
            return Err(format!(
                "the edit changed the document: found {} where {wanted} was expected",
                show_event(&event, &span)
            ));
        }
        match &mut after {
            After::Build(tree) => tree
                .push(event, span, &mut open)
                .map_err(|e| e.to_string())?,
            After::Patch => {
                let replaced = (at..at + inserted).contains(&j);
                before
                    .patch(j, &event, &span, replaced)
                    .map_err(|e| e.to_string())?
            }
        }
        j += 1;
    }
    if j != expected_len {
        return Err(format!(
            "the edit changed the document's structure ({expected_len} events expected, {j} found)"
        ));
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
fn reparse_scalar_swap(
    tree: &mut Tree,
    out: &str,
    target: &Target,
    value: &str,
) -> Result<(), String> {
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
fn roundtrip_check(
    mut tree: Tree,
    target: &Target,
    out: &str,
    path: &KeyPath,
    doc: &Document,
    value: &str,
) -> Result<(), EditError> {
    let fail = |reason: String| EditError::Roundtrip { reason };
    reparse_scalar_swap(&mut tree, out, target, value).map_err(fail)?;
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

// ---------------------------------------------------------------------------------------------
// Kustomize images: adding a field or an entry
// ---------------------------------------------------------------------------------------------

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
struct NewValues<'a> {
    image: &'a str,
    field: &'a str,
    value: &'a str,
}

/// Text to insert, and the events it must add to the stream.
struct Insertion<'a> {
    /// Byte offset where `text` goes: the start of a line, or the end of the file.
    at: usize,
    text: String,
    /// The new events replace the original's `splice_at..splice_at + removed`.
    splice_at: usize,
    removed: usize,
    expect: Vec<Expect<'a>>,
}

/// The file's line break: that of its first line; `\n` when it has none.
fn newline(text: &str) -> &'static str {
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
fn column(text: &str, at: usize) -> usize {
    let prefix = text.get(line_start(text, at)..at).unwrap_or("");
    prefix.trim_start_matches('\u{feff}').chars().count()
}

fn spaces(n: usize) -> String {
    " ".repeat(n)
}

/// The `-` that introduces a list item starting at byte `item`, if only spaces precede it on its
/// line, and whether the item starts on the same line (`- name: x`, not `-` then `name: x`).
fn dash_before(text: &str, item: usize) -> Option<(usize, bool)> {
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
struct ListStyle {
    indent: usize,
    gap: usize,
}

/// What `kustomize edit set image` writes, for files with no block list to copy.
const KUSTOMIZE_LIST_STYLE: ListStyle = ListStyle { indent: 0, gap: 2 };

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
fn list_style(
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
fn after_line(text: &str, at: usize) -> (usize, bool) {
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
fn plan_insertion<'a>(
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
fn check_insertion(
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
    reparse(&mut before, out, &splice, After::Build(&mut after)).map_err(fail)?;
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
        let map = Positions::new(src);
        assert_eq!(map.byte(start), Some(byte));
        assert_eq!(map.byte(src.chars().count()), Some(src.len()));
        assert_eq!(map.byte(src.chars().count() + 1), None);
        // Backwards after forwards restarts from the beginning.
        assert_eq!(map.byte(0), Some(0));
        assert_eq!(map.byte(start), Some(byte));
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
    fn count_leads_matches_chars() {
        let s = "aé☃😀".repeat(BLOCK / 10 + 1);
        for len in [0, 1, 7, 8, 9, 63, 64, 65, BLOCK - 1, BLOCK] {
            let block = &s.as_bytes()[..len];
            let want = block.iter().filter(|&&b| is_lead(b)).count();
            assert_eq!(count_leads(block), want, "{len}");
        }
        // All continuation bytes: every lane of the sum reaches its maximum.
        assert_eq!(count_leads(&[0x80; BLOCK]), 0);
        assert_eq!(count_leads(&[b'a'; BLOCK]), BLOCK);
    }

    #[test]
    fn positions_skip_blocks_and_go_back() {
        // Characters of 1 to 4 bytes, so that block boundaries fall inside characters.
        let src: String = (0..5000)
            .map(|i| match i % 11 {
                0 => 'é',
                3 => '☃',
                7 => '😀',
                _ => 'a',
            })
            .collect();
        let all: Vec<usize> = src.char_indices().map(|(b, _)| b).collect();
        let map = Positions::new(&src);
        for (ci, &bi) in all.iter().enumerate() {
            assert_eq!(map.byte(ci), Some(bi));
        }
        assert_eq!(map.byte(all.len()), Some(src.len()));
        assert_eq!(map.byte(all.len() + 1), None);
        // Out of order, with jumps of more than a block in both directions.
        let fresh = Positions::new(&src);
        for ci in [4500, 3, 4999, 0, 1024, 1025, 1023, 3000, 2999, 5000] {
            let want = all.get(ci).copied().unwrap_or(src.len());
            assert_eq!(fresh.byte(ci), Some(want), "char {ci}");
        }
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
        let check = |out: &str, value: &str| {
            let tree = Tree::parse(src).unwrap();
            let target = locate(src, &tree, &kp("a"), &Document::Any).unwrap();
            roundtrip_check(tree, &target, out, &kp("a"), &Document::Any, value)
        };
        // The stream is compared as it is parsed, so a mismatch may be found before the error.
        let err = check("a: x\nb: [y\n", "x").unwrap_err();
        assert_eq!(err.kind(), "roundtrip");
        let err = check("a: z\nb: y\n]\n", "z").unwrap_err();
        assert!(err.to_string().contains("does not parse"), "{err}");
        let err = check("a: z\nb: q\n", "z").unwrap_err();
        assert!(err.to_string().contains("\"q\""), "{err}");
        let err = check("a: z\nb: y\nc: 1\n", "z").unwrap_err();
        assert!(err.to_string().contains("changed the document"), "{err}");
        let err = check("a: 'z'\nb: y\n", "z").unwrap_err();
        assert!(err.to_string().contains("SingleQuoted"), "{err}");
        let err = check("a:\n- z\nb: y\n", "z").unwrap_err();
        assert_eq!(err.kind(), "roundtrip");
        check("a: z\nb: y\n", "z").unwrap();
        // The tree becomes the edited file's: positions after the edit move.
        let mut tree = Tree::parse(src).unwrap();
        let target = locate(src, &tree, &kp("a"), &Document::Any).unwrap();
        let out = "a: longer\nb: y\n";
        let inserted = [Expect::Scalar {
            value: "longer",
            style: Style::Plain,
            like: Some(target.event_index),
        }];
        let splice = Splice {
            at: target.event_index,
            removed: 1,
            inserted: &inserted,
        };
        reparse(&mut tree, out, &splice, After::Patch).unwrap();
        let b = locate(out, &tree, &kp("b"), &Document::Any).unwrap();
        assert_eq!(&out[b.scalar.byte_range], "y");
    }

    /// The patched tree `set` re-reads the path in must be exactly the tree of the edited file.
    #[test]
    fn patched_tree_is_the_edited_files_tree() {
        let cases: &[(&str, &str, &str)] = &[
            ("a: x\nb: [y, z]\n", "a", "longer-value"),
            (
                "# é ☃\nimage:\n  tag: &t !!str '1.0'  # c\n  r: *t\nz: \"é\"\n",
                "z",
                "1.10",
            ),
            ("a: foo\n  bar\n\n  baz\nb: {c: d}\n---\nc: 1\n", "a", "v"),
            (
                "\u{feff}x:\r\n- k: 1\r\n- k: 2\r\n  j: v\r\n",
                "x[k=2].j",
                "☃ w",
            ),
        ];
        for (src, path, value) in cases {
            let tree = Tree::parse(src).unwrap();
            let target = locate(src, &tree, &kp(path), &Document::Any).unwrap();
            let out = String::from_utf8(
                set(src.as_bytes(), &kp(path), &Document::Any, value)
                    .unwrap()
                    .unwrap(),
            )
            .unwrap();
            let mut patched = tree;
            reparse_scalar_swap(&mut patched, &out, &target, value).unwrap();
            let fresh = Tree::parse(&out).unwrap();
            assert_eq!(patched.nodes.len(), fresh.nodes.len());
            for (p, f) in patched.nodes.iter().zip(&fresh.nodes) {
                let key = |t: &Tree, n: &Node| {
                    let value = t.value(n).to_string();
                    let tag = t.tag(n).cloned();
                    (
                        n.kind,
                        n.has_props,
                        n.start,
                        n.end,
                        n.line,
                        n.anchor,
                        n.close,
                        value,
                        tag,
                    )
                };
                assert_eq!(key(&patched, p), key(&fresh, f), "{src:?}");
            }
            assert_eq!(patched.docs, fresh.docs);
            assert_eq!(patched.aliases, fresh.aliases);
        }
    }

    #[test]
    fn layout_helpers() {
        assert_eq!(newline("a: 1\r\nb: 2\n"), "\r\n");
        assert_eq!(newline("a: 1\nb: 2\r\n"), "\n");
        assert_eq!(newline("a: 1\rb: 2"), "\r");
        assert_eq!(newline("a: 1"), "\n");
        let text = "\u{feff}k:\n  - é: 1\n-   x\n - \n";
        assert_eq!(column(text, text.find('k').unwrap()), 0);
        assert_eq!(column(text, text.find('é').unwrap()), 4);
        let at = |s: &str| text.find(s).unwrap();
        assert_eq!(dash_before(text, at("é")), Some((at("- é"), true)));
        assert_eq!(dash_before(text, at("x")), Some((at("-   x"), true)));
        assert_eq!(dash_before(text, at("k")), None);
        assert_eq!(dash_before("-\n  a", 4), Some((0, false)));
        assert_eq!(dash_before("a-  b", 4), None);
        assert_eq!(after_line("a: 1 # c\r\nb", 4), (10, false));
        assert_eq!(after_line("a: 1 # c", 4), (8, true));
        let style = |src: &str| {
            let tree = Tree::parse(src).unwrap();
            let root = tree.docs[0].unwrap();
            list_style(src, &Positions::new(src), &tree, root).unwrap()
        };
        assert_eq!(style("a: 1\n"), KUSTOMIZE_LIST_STYLE);
        assert_eq!(
            style("a: [1]\nb:\n  - 1\n"),
            ListStyle { indent: 2, gap: 2 }
        );
        assert_eq!(style("b:\n- x: 1\n"), ListStyle { indent: 0, gap: 2 });
        assert_eq!(style("b:\n    -   x: 1\n"), ListStyle { indent: 4, gap: 4 });
        assert_eq!(style("- a\n"), KUSTOMIZE_LIST_STYLE);
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
