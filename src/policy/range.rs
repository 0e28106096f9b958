//! Version ranges with the meaning Masterminds/semver v3 gives them.
//!
//! Users come to tagwatch from Argo CD Image Updater and Flux, which both hand
//! their `constraint` to Go's `github.com/Masterminds/semver/v3`. The `semver`
//! crate's `VersionReq` follows Cargo and disagrees in ways that would quietly
//! promote other tags (a bare `1.2` is `^1.2` in Cargo but `~1.2` here, `>1.1`
//! rejects `1.1.5` here, pre-releases are opted into per `||` alternative here),
//! so this module re-implements Masterminds' tested behaviour as of v3.4.0 on top
//! of `semver::Version`. It owns:
//!
//! - [`Range`]: parsing a constraint, with errors a person can act on, and
//!   deciding whether a version satisfies it, pre-release rule included;
//! - [`parse_version`]: reading a tag the way Masterminds' lenient `NewVersion`
//!   does.
//!
//! Where Masterminds' regex-based parser misreads text, the documented meaning
//! wins: `>=1.0 1.2 - 1.4` is accepted (Masterminds' hyphen rewrite eats the
//! space and rejects it), `1.2||1.4 - 1.6` keeps `1.2` as its own alternative
//! (Masterminds folds it into the lower bound), blank text means any release,
//! and junk it lets through (`x.1x`, `1 - 2>=3`) is an error here.
//!
//! Choosing among tags, ignore globs, downgrade guards and config files belong
//! to the callers.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use semver::{BuildMetadata, Prerelease, Version};

/// A range the user wrote could not be understood.
#[derive(Debug, thiserror::Error)]
#[error("invalid range {input:?}: {reason}")]
pub struct RangeError {
    /// The range exactly as written.
    pub input: String,
    /// What is wrong with it, phrased for the person who wrote it.
    pub reason: String,
}

/// A parsed range such as `^1.2`, `>=1.0 <2 || 3.x` or `1.2 - 1.4.5`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    text: String,
    alternatives: Vec<Alternative>,
}

/// The comparators between two `||`; all of them must hold.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Alternative {
    comparators: Vec<Comparator>,
    /// Since Masterminds v3.4.0 one pre-release comparator opens its whole
    /// alternative to pre-releases: `>=1.0.0-0 <2.0.0` admits `1.5.0-rc.1`.
    allows_prerelease: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Comparator {
    op: Op,
    /// Wildcarded and missing numbers are zero; build metadata is dropped.
    version: Version,
    pinned: Pinned,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Exact,
    NotEqual,
    Greater,
    Less,
    GreaterEq,
    LessEq,
    Tilde,
    Caret,
}

/// How many leading numbers were written before a wildcard or the end.
/// Masterminds widens several operators over the rest: `>1.1` means `>=1.2.0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pinned {
    Nothing,
    Major,
    Minor,
    All,
}

impl Range {
    /// Parses a Masterminds-style range. Empty or blank text means any release.
    pub fn parse(input: &str) -> Result<Range, RangeError> {
        let body = input.trim_matches(is_space);
        let alternatives = if body.is_empty() {
            // Masterminds rejects "", but a missing constraint reads best as "any release".
            vec![Alternative::new(Vec::new())]
        } else {
            body.split("||")
                .map(parse_alternative)
                .collect::<Result<_, _>>()
                .map_err(|reason| RangeError {
                    input: input.to_owned(),
                    reason,
                })?
        };
        Ok(Range {
            text: input.to_owned(),
            alternatives,
        })
    }

    /// True when `v` satisfies the range, including the pre-release rule.
    pub fn matches(&self, v: &Version) -> bool {
        self.alternatives.iter().any(|alt| alt.matches(v))
    }

    /// True when `v` is kept out only by the pre-release rule: some
    /// alternative's comparators all accept it, but that alternative names
    /// no pre-release. `--explain` says "pre-release" for exactly these.
    pub fn excludes_only_as_prerelease(&self, v: &Version) -> bool {
        !v.pre.is_empty()
            && !self.matches(v)
            && self
                .alternatives
                .iter()
                .any(|alt| alt.comparators.iter().all(|c| c.matches(v)))
    }

    /// The text the user wrote.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for Range {
    type Err = RangeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Range::parse(s)
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Reads a tag as a version the way Masterminds' NewVersion does. None when it is not a version.
///
/// That means an optional lowercase `v`, one to three numbers (missing ones are
/// zero, leading zeros are allowed so CalVer tags like `2024.01.15` work), then
/// an optional pre-release and build metadata. `1.2.3.4`, `latest` or `1.x` are not versions.
pub fn parse_version(tag: &str) -> Option<Version> {
    let written = read_version(tag).ok()?;
    // A wildcard makes a range, not a version.
    let numbers: Option<Vec<u64>> = written.numbers.into_iter().collect();
    let numbers = numbers?;
    let number = |i: usize| numbers.get(i).copied().unwrap_or(0);
    let mut version = Version::new(number(0), number(1), number(2));
    version.pre = Prerelease::new(written.pre).ok()?;
    version.build = BuildMetadata::new(written.build).ok()?;
    Some(version)
}

impl Alternative {
    fn new(comparators: Vec<Comparator>) -> Self {
        let allows_prerelease = comparators.iter().any(|c| !c.version.pre.is_empty());
        Alternative {
            comparators,
            allows_prerelease,
        }
    }

    fn matches(&self, v: &Version) -> bool {
        (v.pre.is_empty() || self.allows_prerelease)
            && self.comparators.iter().all(|c| c.matches(v))
    }
}

impl Comparator {
    fn parse(op: Op, text: &str) -> Result<Comparator, String> {
        let written = read_version(text)?;
        // Masterminds zeroes everything after the first wildcard: `1.x.3` is `1.x`.
        let pinned: Vec<u64> = written.numbers.iter().map_while(|n| *n).collect();
        let number = |i: usize| pinned.get(i).copied().unwrap_or(0);
        let mut version = Version::new(number(0), number(1), number(2));
        version.pre = Prerelease::new(written.pre)
            .map_err(|e| format!("pre-release {:?} in {text:?}: {e}", written.pre))?;
        let pinned = match pinned.len() {
            0 => Pinned::Nothing,
            1 => Pinned::Major,
            2 => Pinned::Minor,
            _ => Pinned::All,
        };
        Ok(Comparator {
            op,
            version,
            pinned,
        })
    }

    /// Pre-releases are gated per alternative, before this is asked.
    fn matches(&self, v: &Version) -> bool {
        let c = &self.version;
        let order = precedence(v, c);
        match self.op {
            Op::Exact if self.pinned == Pinned::All => order == Ordering::Equal,
            Op::Exact | Op::Tilde => self.tilde(v, order),
            Op::NotEqual => self.not_equal(v, order),
            Op::Greater => match self.pinned {
                Pinned::Nothing | Pinned::All => order == Ordering::Greater,
                Pinned::Major => v.major > c.major,
                Pinned::Minor => (v.major, v.minor) > (c.major, c.minor),
            },
            Op::Less => order == Ordering::Less,
            Op::GreaterEq => order != Ordering::Less,
            Op::LessEq => match self.pinned {
                Pinned::All => order != Ordering::Greater,
                Pinned::Major => v.major <= c.major,
                // `<=*` lands here with 0.0.0 and so only admits 0.0.x, as in Masterminds.
                Pinned::Minor | Pinned::Nothing => (v.major, v.minor) <= (c.major, c.minor),
            },
            Op::Caret => self.caret(v, order),
        }
    }

    fn tilde(&self, v: &Version, order: Ordering) -> bool {
        let c = &self.version;
        if order == Ordering::Less {
            return false;
        }
        // `*` and `~0.0.0` mean "anything"; `~0` and `0.0.x` keep their bounds.
        if (c.major, c.minor, c.patch) == (0, 0, 0)
            && matches!(self.pinned, Pinned::Nothing | Pinned::All)
        {
            return true;
        }
        v.major == c.major && (self.pinned == Pinned::Major || v.minor == c.minor)
    }

    /// Below 1.0.0 the leftmost non-zero number that was written is the one held fixed.
    fn caret(&self, v: &Version, order: Ordering) -> bool {
        let c = &self.version;
        if order == Ordering::Less {
            return false;
        }
        if c.major > 0 || self.pinned == Pinned::Major {
            return v.major == c.major;
        }
        // Masterminds documents `^*` as "any" but its code gets here and so
        // only admits 0.0.0; configs that work there must work the same here.
        if v.major > 0 {
            return false;
        }
        if c.minor > 0 || self.pinned == Pinned::Minor {
            return v.minor == c.minor;
        }
        v.minor == 0 && v.patch == c.patch
    }

    fn not_equal(&self, v: &Version, order: Ordering) -> bool {
        let c = &self.version;
        match self.pinned {
            Pinned::All => order != Ordering::Equal,
            _ if v.major != c.major => true,
            Pinned::Major => false,
            _ if v.minor != c.minor => true,
            // `!=4.1-alpha` excludes every 4.1.z-alpha but nothing else in 4.1.
            Pinned::Minor => v.pre != c.pre,
            Pinned::Nothing => v.patch != c.patch || order != Ordering::Equal,
        }
    }
}

/// SemVer precedence as Masterminds computes it: build metadata never counts.
fn precedence(a: &Version, b: &Version) -> Ordering {
    (a.major, a.minor, a.patch)
        .cmp(&(b.major, b.minor, b.patch))
        .then_with(|| compare_prerelease(a.pre.as_str(), b.pre.as_str()))
}

/// Written out rather than `Prerelease::cmp` so that numeric identifiers too
/// large for a u64 compare as text, as they do in Go.
fn compare_prerelease(a: &str, b: &str) -> Ordering {
    if a.is_empty() || b.is_empty() {
        // A release sorts after its own pre-releases.
        return a.is_empty().cmp(&b.is_empty());
    }
    a.split('.')
        .map(identifier_key)
        .cmp(b.split('.').map(identifier_key))
}

/// Numbers sort numerically and before text; text sorts by ASCII.
fn identifier_key(id: &str) -> (bool, u64, &str) {
    match id.parse() {
        Ok(n) if id.bytes().all(|b| b.is_ascii_digit()) => (false, n, ""),
        _ => (true, 0, id),
    }
}

/// Go's `\s`, which is what Masterminds splits on.
fn is_space(c: char) -> bool {
    c.is_ascii_whitespace()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Op(Op),
    Version,
    Hyphen,
    Comma,
}

struct Token<'a> {
    kind: Kind,
    text: &'a str,
    /// Whitespace came before it; Masterminds needs a space or comma between comparators.
    spaced: bool,
}

fn parse_alternative(text: &str) -> Result<Alternative, String> {
    let text = text.trim_matches(is_space);
    if text.is_empty() {
        return Err("empty alternative: \"||\" needs a range on each side".to_owned());
    }
    let mut tokens = tokenize(text)?.into_iter().peekable();
    let mut comparators = Vec::new();
    let mut after_comparator = false;
    while let Some(token) = tokens.next() {
        match token.kind {
            Kind::Comma if after_comparator => {
                after_comparator = false;
                continue;
            }
            Kind::Comma => {
                return Err(r#"unexpected ",": it goes between two comparators"#.to_owned());
            }
            _ if after_comparator && !token.spaced => {
                return Err(format!("missing space or comma before {:?}", token.text));
            }
            Kind::Op(op) => {
                let Some(version) = tokens.next_if(|t| t.kind == Kind::Version) else {
                    return Err(format!(
                        "operator {:?} is not followed by a version",
                        token.text
                    ));
                };
                comparators.push(Comparator::parse(op, version.text)?);
            }
            Kind::Version if tokens.next_if(|t| t.kind == Kind::Hyphen).is_some() => {
                let Some(upper) = tokens.next_if(|t| t.kind == Kind::Version) else {
                    return Err(format!(
                        "hyphen range \"{} -\" has no upper bound",
                        token.text
                    ));
                };
                comparators.push(Comparator::parse(Op::GreaterEq, token.text)?);
                comparators.push(Comparator::parse(Op::LessEq, upper.text)?);
            }
            Kind::Version => comparators.push(Comparator::parse(Op::Exact, token.text)?),
            Kind::Hyphen => return Err(r#""-" must stand between two plain versions"#.to_owned()),
        }
        after_comparator = true;
    }
    if !after_comparator {
        return Err("trailing \",\" with no comparator after it".to_owned());
    }
    Ok(Alternative::new(comparators))
}

fn tokenize(text: &str) -> Result<Vec<Token<'_>>, String> {
    let bytes = text.as_bytes();
    let run = |from: usize, keep: fn(u8) -> bool| {
        from + bytes[from..].iter().take_while(|&&b| keep(b)).count()
    };
    let mut tokens = Vec::new();
    let mut spaced = false;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let start = i;
        let kind = match b {
            b if b.is_ascii_whitespace() => {
                spaced = true;
                i += 1;
                continue;
            }
            b',' => {
                i += 1;
                Kind::Comma
            }
            b if is_operator_byte(b) => {
                i = run(i, is_operator_byte);
                Kind::Op(operator(&text[start..i])?)
            }
            b'-' if bytes.get(i + 1).is_none_or(u8::is_ascii_whitespace) => {
                i += 1;
                Kind::Hyphen
            }
            b'-' => {
                let word = &text[start..run(i + 1, is_version_byte)];
                return Err(format!(
                    r#"{word:?} is not a version; a hyphen range needs " - ""#
                ));
            }
            b if is_version_byte(b) => {
                i = run(i, is_version_byte);
                Kind::Version
            }
            b'|' => return Err("a single \"|\" means nothing; use \"||\" for OR".to_owned()),
            _ => {
                // Only ASCII has been skipped so far, so `i` is on a char boundary.
                let c = text[i..].chars().next().unwrap_or('?');
                return Err(format!("unexpected character {c:?}"));
            }
        };
        tokens.push(Token {
            kind,
            text: &text[start..i],
            spaced,
        });
        spaced = false;
    }
    Ok(tokens)
}

fn is_operator_byte(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'<' | b'>' | b'~' | b'^')
}

fn is_version_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+' | b'*')
}

/// `=>` and `=<` look like typos but Masterminds accepts them, so configs use them.
fn operator(text: &str) -> Result<Op, String> {
    Ok(match text {
        "=" => Op::Exact,
        "!=" => Op::NotEqual,
        ">" => Op::Greater,
        "<" => Op::Less,
        ">=" | "=>" => Op::GreaterEq,
        "<=" | "=<" => Op::LessEq,
        "~" | "~>" => Op::Tilde,
        "^" => Op::Caret,
        _ => {
            return Err(format!(
                "unexpected operator {text:?}; use =, !=, >, >=, <, <=, ~ or ^"
            ));
        }
    })
}

/// A version as written: up to three numbers (`None` for `x`, `X` or `*`),
/// then pre-release and build text, both already checked.
struct Written<'a> {
    numbers: Vec<Option<u64>>,
    pre: &'a str,
    build: &'a str,
}

fn read_version(text: &str) -> Result<Written<'_>, String> {
    let not_a_version = || format!("{text:?} is not a version");
    // Only lowercase: Masterminds rejects `V1.2`.
    let rest = text.strip_prefix('v').unwrap_or(text);
    let (rest, build) = rest
        .split_once('+')
        .map_or((rest, None), |(r, b)| (r, Some(b)));
    let (core, pre) = rest
        .split_once('-')
        .map_or((rest, None), |(c, p)| (c, Some(p)));
    let mut numbers = Vec::with_capacity(3);
    for (i, part) in core.split('.').enumerate() {
        let digits = !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        let number = match part {
            _ if i == 3 => return Err(format!("{text:?} has more than three numeric parts")),
            "x" | "X" | "*" => None,
            // Masterminds never reads the numbers after a wildcard, however large.
            _ if digits && numbers.contains(&None) => None,
            _ if digits => Some(
                part.parse()
                    .map_err(|_| format!("{part:?} is too large for a version number"))?,
            ),
            "" if i > 0 => return Err(format!("empty number in {text:?}")),
            _ if i == 0 => return Err(not_a_version()),
            _ => return Err(format!("{part:?} is not a number in {text:?}")),
        };
        numbers.push(number);
    }
    if let Some(pre) = pre {
        check_identifiers(pre, "pre-release", text)?;
        let leading_zero = pre.split('.').find(|id| {
            id.len() > 1 && id.starts_with('0') && id.bytes().all(|b| b.is_ascii_digit())
        });
        if let Some(id) = leading_zero {
            return Err(format!("{id:?} in {text:?} has a leading zero"));
        }
    }
    if let Some(build) = build {
        check_identifiers(build, "build metadata", text)?;
    }
    Ok(Written {
        numbers,
        pre: pre.unwrap_or(""),
        build: build.unwrap_or(""),
    })
}

fn check_identifiers(list: &str, what: &str, text: &str) -> Result<(), String> {
    if list.is_empty() {
        return Err(format!("empty {what} in {text:?}"));
    }
    for id in list.split('.') {
        if id.is_empty() {
            return Err(format!("empty {what} identifier in {text:?}"));
        }
        if let Some(c) = id.chars().find(|c| !c.is_ascii_alphanumeric() && *c != '-') {
            return Err(format!(
                "{what} {list:?} contains {c:?}; use letters, digits, '-', '.'"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (range, tag, satisfied?); tags are read with `parse_version`, as callers do.
    #[rustfmt::skip]
    const MATCHES: &[(&str, &str, bool)] = &[
        // Exact and bare versions; a partial bare version is a tilde range.
        ("=2.0.0", "2.0.0", true),   ("=2.0.0", "1.2.3", false),  ("2.0.0", "2.0.1", false),
        ("=2.0", "2.0.1", true),     ("= 2.0", "1.2.3", false),   ("4.1", "4.1.9", true),
        ("4.1", "4.2.0", false),     ("2", "2.1.1", true),        ("2", "3.4.5", false),
        ("=0", "1", false),          ("v1.2.3", "1.2.3", true),   ("1.2.3", "v1.2.3", true),
        ("01.02.03", "1.2.3", true),
        // Build metadata never counts.
        ("=1.2.3", "1.2.3+build.5", true),      ("1.2.3+build.1", "1.2.3+other", true),
        (">1.2.3", "1.2.3+build", false),       ("!=1.2.3", "1.2.3+meta", false),
        // Not equal, with wildcards and pre-releases.
        ("!=4.1.0", "4.1.0", false),           ("!=4.1.0", "4.1.1", true),
        ("!=4.1", "4.1.1", false),             ("!=4.1", "5.1.0", true),
        ("!=4.x", "4.1.0", false),             ("!=4.x", "5.1.0", true),
        ("!=4.1.x", "4.2.0", true),            ("!=4.2.x", "4.2.3", false),
        ("!=4.1-alpha", "4.1.0", true),        ("!=4.1-alpha", "4.1.1-alpha", false),
        ("!=4.1", "5.1.0-alpha.1", false),     ("!=1.2.3", "1.2.4-beta", false), ("!=*", "0.0.0", false), ("!=*", "0.0.1", true),
        // Greater than: a partial version is stepped over, not padded with zeros.
        (">1.1", "4.1.0", true),    (">1.1", "1.1.9", false),   (">1.1", "1.2.0", true),
        (">11", "11.1.0", false),   (">11", "12.0.0", true),    (">0", "0", false),
        (">0", "1", true),          (">1.2.3", "1.2.4", true),  (">1.2.3", "1.2.3", false),
        // Less than pads with zeros.
        ("<11", "0.1.0", true),       ("<11", "11.1.0", false),     ("<1.1", "1.0.9", true),
        ("<1.1", "1.1.0", false),     ("<1.x", "1.1.1", false),     ("<1.x", "0.1.1", true),
        ("<1.1.x", "1.1.500", false), ("<1.2.x", "1.1.1", true),
        // Greater or equal, also spelled `=>`.
        (">=1.1", "1.1.0", true),     (">=1.1", "0.0.9", false),    (">=11.1", "11.0.2", false),
        (">= 1.2", "1.2.0", true),    ("=>1.2", "1.2.0", true),     (">=v1.2.x", "1.1.9", false),
        // Less or equal covers the whole unwritten part.
        ("<=1.1", "1.1.1", true),      ("<=1.1", "1.2.0", false),
        ("<=11", "11.2.3", true),      ("<=11", "12.0.0", false),
        ("<=2.x", "2.9.9", true),      ("<=2.x", "3.0.0", false),
        ("<=1.1.x", "1.2.500", false), ("=<1.1", "1.1.5", true),
        ("<=1.2.3", "1.2.4", false),
        // Wildcards.
        ("*", "1", true),          ("*", "4.5.6", true),      ("x", "0.0.1", true),
        ("X", "9.9.9", true),      ("2.*", "2.1.1", true),    ("2.*", "3.4.5", false),
        ("2.1.*", "2.2.1", false), ("1.x", "1.4", true),      ("4.1.x", "4.1.3", true),
        ("0.x.x", "1.2.3", false), ("0.0.x", "0.0.7", true),  ("0.0.x", "0.1.0", false),
        ("1.x.3", "1.5.0", true),  ("1.x.99999999999999999999", "1.5.0", true),
        // Empty means any release.
        ("", "4.5.6", true),          ("   ", "0.0.1", true),       ("", "1.2.3-alpha.1", false),
        // Tilde: patch updates, or minor ones when only a major was written.
        ("~1.2.3", "1.2.4", true),    ("~1.2.3", "1.2.2", false),   ("~1.2.3", "1.3.4", false),
        ("~1.2", "1.2.4", true),      ("~1.2", "1.3.0", false),     ("~1", "1.9.4", true),
        ("~1", "2.0.0", false),       ("~1.x", "1.3.5", true),      ("~>1.2", "1.2.9", true),
        ("~> 1.2.3", "1.3.0", false), ("~0.2.3", "0.2.5", true),    ("~0.2.3", "0.3.5", false),
        ("~0", "0.9.0", true),        ("~0", "1.0.0", false),       ("~0.0.0", "1.2.3", true),
        ("~*", "2.1.1", true),
        // Caret, with the 0.x rules; `^*` admits only 0.0.0 in Masterminds' code.
        ("^1.2.3", "1.8.9", true),  ("^1.2.3", "2.0.0", false), ("^1.2.3", "1.2.1", false),
        ("^1.2", "1.8.9", true),    ("^1", "2.8.9", false),     ("^1.x", "1.1.1", true),
        ("^2.x", "1.1.1", false),   ("^0.2.3", "0.2.5", true),  ("^0.2.3", "0.3.0", false),
        ("^0.2", "0.5.6", false),   ("^0.0.3", "0.0.3", true),  ("^0.0.3", "0.0.4", false),
        ("^0.0", "0.0.9", true),    ("^0.0", "0.1.4", false),   ("^0", "0.2.3", true),
        ("^0", "1.1.4", false),     ("^0.0.0", "0.0.0", true),  ("^0.0.0", "0.0.1", false),
        ("^*", "0.0.0", true),      ("^*", "1.2.3", false),
        // Pre-releases only when their `||` alternative names one; then SemVer order applies.
        ("*", "1.2.3-alpha.1", false), ("*-0", "1.2.3-alpha.1", true),
        (">=1.1", "4.1.0-beta", false), ("~1.1", "1.1.1-alpha", false),
        ("^1.2.0", "1.2.1-alpha.1", false), ("^1.2.0-alpha.0", "1.2.1-alpha.1", true),
        ("^1.2.0-alpha.2", "1.2.0-alpha.1", false), ("^1.1.2-alpha", "1.2.1-beta1", true),
        ("~1.2.3-beta.2", "1.2.4-beta.2", true), ("~1.2.3-beta.2", "1.3.4-beta.2", false),
        (">=0.0.0-0", "3.4.5-beta.1", true), (">0", "0.0.1-alpha", false),
        (">=0-0", "0.0.1-alpha", true), ("<0-z", "0.0.0-alpha", true),
        ("1.2.3-alpha", "1.2.3-alpha", true), ("1.2.3-alpha", "1.2.3-beta", false),
        ("1.2.3", "1.2.3-alpha", false), (">1.2.3-alpha.1", "1.2.3-alpha.2", true),
        (">1.2.3-alpha.9", "1.2.3-alpha.10", true), (">1.2.3-alpha.1", "1.2.3-alpha", false),
        (">1.2.3-alpha.1", "1.2.3-alpha.beta", true), (">=1.2.3-BETA", "1.2.3-alpha", true),
        (">1.2.3-rc.1", "1.2.3", true), (">=1.0.0-0 <2.0.0", "1.5.0-rc.1", true),
        (">=1.0.0-0 <2.0.0", "2.0.0-rc.1", true), (">=1.0.0-0 <2.0.0 || >=3", "3.1.0-rc.1", false),
        ("1.0.0-0 - 2", "1.5.0-beta", true),
        // Hyphen ranges include both ends; a partial upper end covers its whole part.
        ("1.2 - 1.4.5", "1.4.5", true),            ("1.2 - 1.4.5", "1.4.6", false),
        ("1.2 - 1.4.5", "1.1.9", false),           ("1.2.3 - 1.4", "1.4.9", true),
        ("1.2.3 - 1.4", "1.5.0", false),           ("v1.2 - v1.4", "1.3.0", true),
        ("1.1-3", "4.3.2", false),                 ("1.0.0 - 2.0.0, <=2.0.0", "1.5.0", true),
        ("1.0.0 - 2.0.0 !=1.5.0", "1.5.0", false),
        // AND with spaces or commas, OR with `||`.
        (">1.1, <2", "1.1.1", false), (">1.1, <2", "1.2.1", true), (">1.1 <2", "1.2.1", true),
        (">1.1    <3", "4.3.2", false), ("> 1.1 , < 2", "1.5.0", true),
        (">=1.1, <2, !=1.2.3", "1.2.3", false), (">=1.1 <2 !=1.2.3 || > 3", "4.1.2", true),
        (">=1.1 <2 !=1.2.3 || > 3", "3.1.2", false), (">=1.1, <2, !=1.2.3 || >= 3", "3.0.0", true),
        ("~1.2 || ^3", "3.9.0", true), ("~1.2 || ^3", "2.0.0", false),
        // Where Masterminds' parser misreads text, the documented meaning wins.
        (">=1.0 1.2 - 1.4", "1.3.0", true), ("1.2||1.4 - 1.6", "1.9.0", false),
    ];

    /// (range, words its reason must contain)
    #[rustfmt::skip]
    const INVALID: &[(&str, &str)] = &[
        ("^1.x.y", r#""y" is not a number in "1.x.y""#),
        (">=", r#"operator ">=" is not followed by a version"#),
        ("^", r#"operator "^" is not followed by a version"#),
        ("~ >1", r#"operator "~" is not followed by a version"#),
        (">=,1", r#"operator ">=" is not followed by a version"#),
        (">>1", r#"unexpected operator ">>""#), ("==1.2", r#"unexpected operator "==""#),
        ("~=1.2", r#"unexpected operator "~=""#),
        ("1.2.3.4", r#""1.2.3.4" has more than three numeric parts"#),
        ("abc", r#""abc" is not a version"#), (">= bar", r#""bar" is not a version"#),
        ("BAR >= 1.2.3", r#""BAR" is not a version"#), ("V1.2", r#""V1.2" is not a version"#),
        ("vv1", r#""vv1" is not a version"#), ("1x", r#""1x" is not a version"#),
        ("1..2", r#"empty number in "1..2""#), ("1.2.", r#"empty number in "1.2.""#),
        ("99999999999999999999999", "too large for a version number"),
        ("1.2.3-", r#"empty pre-release in "1.2.3-""#),
        ("1.2.3-a..b", "empty pre-release identifier"),
        ("1.2.3-01", r#""01" in "1.2.3-01" has a leading zero"#), ("1.2.3-be*ta", "contains '*'"),
        ("1.2.3+", "empty build metadata"), (">1 ||", "empty alternative"),
        ("|| >1", "empty alternative"), (">1 || || <2", "empty alternative"),
        ("1.2 -", r#"hyphen range "1.2 -" has no upper bound"#), ("1.2 - >2", "has no upper bound"),
        ("- 1.2", r#""-" must stand between two plain versions"#),
        (">1.2 - 2", r#""-" must stand between two plain versions"#),
        ("1 - 2 - 3", r#""-" must stand between two plain versions"#),
        ("1.2 -1.4", r#""-1.4" is not a version; a hyphen range needs " - ""#),
        (">1<2", r#"missing space or comma before "<""#),
        ("12.3.34~ 1.2.3", r#"missing space or comma before "~""#), (">1,,<2", r#"unexpected ",""#),
        (",>1", r#"unexpected ",""#), (">1,", r#"trailing ",""#), (">1 | <2", r#"single "|""#),
        ("x.1x", r#""1x" is not a number in "x.1x""#),
        ("1 - 2>=3", r#"missing space or comma before ">=""#),
        ("1.2.3_4", "unexpected character '_'"), ("≥1.2", "unexpected character '≥'"),
    ];

    /// (tag, the version it reads as)
    #[rustfmt::skip]
    const VERSIONS: &[(&str, Option<&str>)] = &[
        ("1.2.3", Some("1.2.3")), ("v1.2.3", Some("1.2.3")), ("1.2", Some("1.2.0")),
        ("1", Some("1.0.0")), ("v2", Some("2.0.0")), ("01.02.03", Some("1.2.3")),
        ("2024.01.15", Some("2024.1.15")), ("1.2-beta", Some("1.2.0-beta")),
        ("1.2.3-rc.1", Some("1.2.3-rc.1")), ("1.2.3+build.5", Some("1.2.3+build.5")),
        ("1.2.3+001", Some("1.2.3+001")), ("1.0.0-x-y-z.--", Some("1.0.0-x-y-z.--")),
        ("v1.2.3-beta.1+exp.sha.5114f85", Some("1.2.3-beta.1+exp.sha.5114f85")),
        ("2.3.5-20161202202307-sha.e8fc5e5", Some("2.3.5-20161202202307-sha.e8fc5e5")),
        ("1.2.3.4", None), ("latest", None), ("stable-1.2", None), ("sha-1a2b3c", None), ("", None),
        ("v", None), ("V1.2.3", None), ("vv1.2.3", None), ("1.2.3-", None), ("1.2.3+", None),
        ("1.2.3-rc.01", None), ("1.2.3-alpha..1", None), ("1.x", None), ("*", None),
        (" 1.2.3", None), ("1.2.3 ", None), ("1..3", None), ("-1.2.3", None), ("1.2.3_4", None),
        ("1.2.3-beta_1", None), ("99999999999999999999999", None),
    ];

    fn version(tag: &str) -> Version {
        parse_version(tag).unwrap_or_else(|| panic!("table tag {tag:?} must be a version"))
    }

    #[test]
    fn ranges_match_as_masterminds_does() {
        let failures: Vec<String> = MATCHES
            .iter()
            .filter_map(|&(range, tag, want)| match Range::parse(range) {
                Err(e) => Some(e.to_string()),
                Ok(r) if r.matches(&version(tag)) != want => {
                    Some(format!("{range:?} on {tag:?}: want {want}"))
                }
                Ok(_) => None,
            })
            .collect();
        assert!(
            failures.is_empty(),
            "{} rows failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn invalid_ranges_say_why() {
        for &(range, words) in INVALID {
            match Range::parse(range) {
                Ok(r) => panic!("{range:?} was accepted as {r:?}"),
                Err(e) => {
                    assert_eq!(e.input, range);
                    assert!(
                        e.reason.contains(words),
                        "{range:?}: {:?} lacks {words:?}",
                        e.reason
                    );
                }
            }
        }
    }

    #[test]
    fn tags_read_as_masterminds_new_version_does() {
        for &(tag, want) in VERSIONS {
            assert_eq!(
                parse_version(tag).map(|v| v.to_string()).as_deref(),
                want,
                "tag {tag:?}"
            );
        }
    }

    #[test]
    fn error_message_names_the_input_and_the_reason() {
        let err = Range::parse("^1.x.y").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid range "^1.x.y": "y" is not a number in "1.x.y""#
        );
    }

    #[test]
    fn keeps_the_text_the_user_wrote() {
        let text = " >= 1.2,<2 || ~3 ";
        let range: Range = text.parse().unwrap();
        assert_eq!((range.as_str(), range.to_string().as_str()), (text, text));
        assert_ne!(range, Range::parse(">= 1.2,<2").unwrap());
    }

    #[test]
    fn matches_versions_built_outside_this_module() {
        let range = Range::parse("^1.2").unwrap();
        assert!(range.matches(&Version::parse("1.9.0+linux.amd64").unwrap()));
        assert!(!range.matches(&Version::parse("1.9.0-rc.1").unwrap()));
    }

    #[test]
    fn odd_input_never_panics() {
        let valid_ranges = ["", " ", "\t\n", "1.2.3-99999999999999999999999"];
        #[rustfmt::skip]
        let odd = [
            "", " ", "\t\n", "||", "|", "-", "1.2.3-", "^", "v", "1..2", ",", "- -", "1 - - 2",
            "=", "!", "+", "x.x.x.x", "1.2.3+build+more", "99999999999999999999999",
            "1.2.3-99999999999999999999999", "😀", "1.2.3\u{0}", "\u{a0}1.2", ">=\u{301}1",
        ];
        for text in odd {
            assert_eq!(
                Range::parse(text).is_ok(),
                valid_ranges.contains(&text),
                "range {text:?}"
            );
            let is_version = parse_version(text).is_some();
            assert_eq!(
                is_version,
                text == "1.2.3-99999999999999999999999",
                "tag {text:?}"
            );
        }
    }
}
