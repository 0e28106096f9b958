//! Reading a configuration file and locating problems in it: UTF-8 and TOML
//! errors in the user's words, byte offsets to lines, and the dotted key
//! (`apps[1].targets[0].file`) at an offset. Owns [`Source`], which every
//! validation step reports its errors through.

use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::ConfigError;

pub(super) fn read(path: &Path) -> Result<String, ConfigError> {
    let bytes = std::fs::read(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        line: None,
        key: String::new(),
        message: format!("cannot read: {e}"),
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        ConfigError {
            file: path.to_path_buf(),
            line: Some(good.iter().filter(|&&b| b == b'\n').count() + 1),
            key: String::new(),
            message: "not UTF-8 (TOML files are UTF-8; was it saved as Latin-1?)".into(),
        }
    })
}

/// serde's messages name Rust types (`struct RawAws`, `untagged enum
/// RawDocument`) that mean nothing to a user; say what the file needs.
fn plain(message: &str) -> String {
    if message.contains("untagged enum RawDocument") {
        return "expected an index (0, 1, …) or a \"path=value,…\" selector".into();
    }
    match message.split_once(", expected struct Raw") {
        Some((found, _)) if found.starts_with("invalid length") => {
            "expected a table, found an array".into()
        }
        Some((found, _)) => format!("{found}, expected a table"),
        None => message.to_string(),
    }
}

pub(super) fn parse<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let offset = e.span().map(|s| s.start);
        let message = plain(e.message().trim());
        let mut key = offset.map(|o| key_at(text, o)).unwrap_or_default();
        // `[[apps.targets]]` with no `[[apps]]` above it makes `apps` a
        // table, and toml points at that header: the header's own array is
        // fine, the value of the wrong type is the table it hangs from.
        let at_array_header = offset.is_some_and(|o| {
            let start = text[..o.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
            text[start..].trim_start().starts_with("[[")
        });
        if at_array_header && message.starts_with("invalid type: map, expected a sequence") {
            key = key
                .rsplit_once('.')
                .map(|(parent, _)| parent.to_string())
                .unwrap_or(key);
        }
        ConfigError {
            file: path.to_path_buf(),
            line: offset.map(|o| line_of(text, o)),
            key,
            message,
        }
    })
}

/// The file an error is reported against, with its text for line numbers.
pub(super) struct Source<'a> {
    pub(super) file: &'a Path,
    pub(super) text: &'a str,
    /// The last (offset, line) asked for: apps are validated in file order,
    /// so counting on from there keeps a thousand-app file linear.
    cursor: std::cell::Cell<(usize, usize)>,
}

impl<'a> Source<'a> {
    pub(super) fn new(file: &'a Path, text: &'a str) -> Source<'a> {
        Source {
            file,
            text,
            cursor: std::cell::Cell::new((0, 1)),
        }
    }

    /// 1-based line of `offset`, like [`line_of`], counting on from the
    /// previous call when it lies further on.
    pub(super) fn line(&self, offset: usize) -> usize {
        let (from, line) = self.cursor.get();
        let offset = offset.min(self.text.len());
        let line = if offset >= from {
            line + self.text.as_bytes()[from..offset]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
        } else {
            line_of(self.text, offset)
        };
        self.cursor.set((offset, line));
        line
    }

    pub(super) fn error(
        &self,
        span: Option<std::ops::Range<usize>>,
        key: impl Into<String>,
        message: impl std::fmt::Display,
    ) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            line: span.map(|s| line_of(self.text, s.start)),
            key: key.into(),
            message: message.to_string(),
        }
    }

    /// A duration in humantime syntax; zero is allowed (`soak = "0s"` is
    /// the documented default, so writing it out must be accepted).
    pub(super) fn duration(&self, v: &Spanned<String>, key: &str) -> Result<Duration, ConfigError> {
        humantime::parse_duration(v.get_ref()).map_err(|e| {
            self.error(
                Some(v.span()),
                key,
                format!("invalid duration {:?}: {e}", v.get_ref()),
            )
        })
    }

    /// A duration that must be more than zero: a period (`interval`) or a
    /// wait (`debounce`) of zero would spin.
    pub(super) fn positive_duration(
        &self,
        v: &Spanned<String>,
        key: &str,
    ) -> Result<Duration, ConfigError> {
        let d = self.duration(v, key)?;
        if d.is_zero() {
            return Err(self.error(Some(v.span()), key, "must be greater than zero"));
        }
        Ok(d)
    }

    /// A string that must be present and non-empty.
    pub(super) fn required<'v>(
        &self,
        v: &'v Option<Spanned<String>>,
        section_span: Option<std::ops::Range<usize>>,
        key: &str,
    ) -> Result<&'v Spanned<String>, ConfigError> {
        match v {
            Some(s) if !s.get_ref().trim().is_empty() => Ok(s),
            Some(s) => Err(self.error(Some(s.span()), key, "must not be empty")),
            None => Err(self.error(section_span, key, "is required")),
        }
    }
}

/// 1-based line of a byte offset.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The dotted key at a byte offset, reconstructed from the table headers
/// above it. serde's errors for unknown fields and wrong types carry only a
/// span, and users need the key (`apps[1].targets[0].fiel`) to find it.
pub(super) fn key_at(text: &str, offset: usize) -> String {
    let mut table: Vec<String> = Vec::new();
    let mut counts: std::collections::HashMap<String, usize> = Default::default();
    let mut key = String::new();
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        pos += line.len();
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("[[") {
            // `[[a.b]]` starts a new element; `[[a.b]` (unclosed) names the
            // array without one.
            let (name, closed) = match rest.split_once("]]") {
                Some((name, _)) => (name, true),
                None => (rest.split(']').next().unwrap_or(rest), false),
            };
            table = indexed_path(name.trim(), &mut counts, closed);
            key.clear();
        } else if let Some(header) = trimmed.strip_prefix('[').and_then(|h| h.split(']').next()) {
            table = indexed_path(header.trim(), &mut counts, false);
            key.clear();
        } else if !trimmed.is_empty() && !trimmed.starts_with('#') {
            // `key = value`, or a line missing its `=` (`key "value"`), if
            // what starts it could be a key at all (not YAML's `key:`).
            let k = match trimmed.split_once('=') {
                Some((k, _)) => k,
                None => trimmed
                    .split_whitespace()
                    .next()
                    .filter(|t| {
                        t.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_-.\"".contains(c))
                    })
                    .unwrap_or(""),
            };
            key = k.trim().trim_matches('"').to_string();
        }
        if offset < pos {
            break;
        }
    }
    let mut parts = table;
    if !key.is_empty() {
        parts.push(key);
    }
    parts.join(".")
}

/// Turns `apps.targets` into `apps[N].targets[M]`, counting array-of-tables
/// headers seen so far. A parent that is an array gets the index of its
/// current element; the last segment gets a new element's index when
/// `new_element` (a `[[…]]` header), none otherwise (a `[…]` table).
fn indexed_path(
    name: &str,
    counts: &mut std::collections::HashMap<String, usize>,
    new_element: bool,
) -> Vec<String> {
    let segments: Vec<&str> = name.split('.').map(str::trim).collect();
    let mut out = Vec::new();
    let mut prefix = String::new();
    for (i, seg) in segments.iter().enumerate() {
        if !prefix.is_empty() {
            prefix.push('.');
        }
        prefix.push_str(seg);
        let last = i + 1 == segments.len();
        if last && new_element {
            // A new element of this array: count it, and forget the counts
            // of arrays nested in the previous element.
            let n = counts.entry(prefix.clone()).or_insert(0);
            *n += 1;
            let index = *n - 1;
            let nested = format!("{prefix}.");
            counts.retain(|k, _| !k.starts_with(&nested));
            out.push(format!("{seg}[{index}]"));
        } else {
            match counts.get(&prefix) {
                Some(n) if !last => out.push(format!("{seg}[{}]", n.saturating_sub(1))),
                _ => out.push(seg.to_string()),
            }
        }
    }
    out
}
