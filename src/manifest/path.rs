//! Key paths: the `image.tag` / `containers[name=web].image` / `[0].image` grammar, parsed
//! into [`KeyPath`] by a small recursive-descent parser. Owns the grammar and its error
//! messages; what a path means inside a document is `resolve`'s business.

use std::fmt;
use std::str::FromStr;

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
    pub(super) steps: Vec<Step>,
    /// `ends[i]` is the byte offset in `text` where step `i` ends, so error messages can quote
    /// the prefix of the path exactly as the user wrote it.
    ends: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum Step {
    Key(String),
    Index(usize),
    Select { field: String, value: String },
}

/// A key path that could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("invalid key path {input:?}: {reason}")]
pub struct PathError {
    pub input: String,
    pub reason: PathProblem,
}

/// What is wrong with a key path, and where (a byte offset into it).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathProblem {
    #[error("the path is empty")]
    Empty,
    #[error("the path ends with '.'")]
    TrailingDot,
    #[error("unexpected {found:?} at offset {at}; expected '.', '[' or the end")]
    Unexpected { found: char, at: usize },
    #[error(
        "unexpected {found:?} in key at offset {at}; quote the key (\"...\") if it contains it"
    )]
    UnquotedInKey { found: char, at: usize },
    #[error("control character in key at offset {at}")]
    ControlInKey { at: usize },
    #[error("empty key at offset {at}")]
    EmptyKey { at: usize },
    #[error("key {key:?} has leading or trailing whitespace; quote it if that is intended")]
    KeyWhitespace { key: String },
    #[error("unterminated quote starting at offset {at}")]
    UnterminatedQuote { at: usize },
    #[error("unsupported escape \\{found} at offset {at}; only \\\" and \\\\ are allowed")]
    UnsupportedEscape { found: char, at: usize },
    #[error("unexpected {found:?} in selector at offset {at}; expected [N] or [field=value]")]
    UnexpectedInSelector { found: char, at: usize },
    #[error("unclosed '[' at offset {at}")]
    UnclosedSelector { at: usize },
    #[error("selector [{head}] at offset {at} is neither [N] (a list index) nor [field=value]")]
    BadSelector { head: String, at: usize },
    #[error("list index {index} at offset {at} is too large")]
    IndexTooLarge { index: String, at: usize },
    #[error("selector at offset {at} has an empty field name")]
    EmptyField { at: usize },
    #[error("selector field {field:?} at offset {at} has whitespace or control characters")]
    FieldWhitespace { field: String, at: usize },
    #[error(
        "selector at offset {at} has an empty value; write [field=\"\"] to match an empty string"
    )]
    EmptyValue { at: usize },
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
    pub(super) fn prefix(&self, i: usize) -> &str {
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

    pub(super) fn parse(mut self) -> Result<KeyPath, PathProblem> {
        if self.src.is_empty() {
            return Err(PathProblem::Empty);
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
                    return Err(PathProblem::TrailingDot);
                }
                Some('.') => {}
                Some(c) => {
                    return Err(PathProblem::Unexpected {
                        found: c,
                        at: self.pos - c.len_utf8(),
                    });
                }
            }
        }
        Ok(KeyPath {
            text: self.src.to_string(),
            steps,
            ends,
        })
    }

    fn key(&mut self) -> Result<String, PathProblem> {
        if self.peek() == Some('"') {
            return self.quoted();
        }
        let start = self.pos;
        while let Some(c) = self.peek() {
            match c {
                '.' | '[' => break,
                ']' | '"' => {
                    return Err(PathProblem::UnquotedInKey {
                        found: c,
                        at: self.pos,
                    });
                }
                c if c.is_control() => {
                    return Err(PathProblem::ControlInKey { at: self.pos });
                }
                _ => {
                    self.bump();
                }
            }
        }
        let key = &self.src[start..self.pos];
        if key.is_empty() {
            return Err(PathProblem::EmptyKey { at: start });
        }
        if key.trim() != key {
            return Err(PathProblem::KeyWhitespace {
                key: key.to_string(),
            });
        }
        Ok(key.to_string())
    }

    /// A double-quoted string with `\"` and `\\` escapes; the opening quote is next.
    fn quoted(&mut self) -> Result<String, PathProblem> {
        let start = self.pos;
        self.bump();
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err(PathProblem::UnterminatedQuote { at: start }),
                Some('"') => return Ok(out),
                Some('\\') => match self.bump() {
                    Some(c @ ('"' | '\\')) => out.push(c),
                    Some(c) => {
                        return Err(PathProblem::UnsupportedEscape {
                            found: c,
                            at: self.pos - c.len_utf8() - 1,
                        });
                    }
                    None => return Err(PathProblem::UnterminatedQuote { at: start }),
                },
                Some(c) => out.push(c),
            }
        }
    }

    /// `[N]` or `[field=value]`; the `[` is next.
    fn selector(&mut self) -> Result<Step, PathProblem> {
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
            Some(c) => Err(PathProblem::UnexpectedInSelector {
                found: c,
                at: self.pos,
            }),
            None => Err(PathProblem::UnclosedSelector { at: open }),
        }
    }

    fn index(head: &str, open: usize) -> Result<Step, PathProblem> {
        if head.is_empty() || !head.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PathProblem::BadSelector {
                head: head.to_string(),
                at: open,
            });
        }
        head.parse::<usize>()
            .map(Step::Index)
            .map_err(|_| PathProblem::IndexTooLarge {
                index: head.to_string(),
                at: open,
            })
    }

    fn check_field(field: &str, open: usize) -> Result<(), PathProblem> {
        if field.is_empty() {
            return Err(PathProblem::EmptyField { at: open });
        }
        if field.trim() != field || field.chars().any(char::is_control) {
            return Err(PathProblem::FieldWhitespace {
                field: field.to_string(),
                at: open,
            });
        }
        Ok(())
    }

    /// The value part of `[field=value]`, through the closing `]`.
    fn selector_value(&mut self, open: usize) -> Result<String, PathProblem> {
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
                return Err(PathProblem::EmptyValue { at: open });
            }
            v.to_string()
        };
        match self.bump() {
            Some(']') => Ok(value),
            _ => Err(PathProblem::UnclosedSelector { at: open }),
        }
    }
}
