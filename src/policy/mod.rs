//! Tag policy: given the images a repository holds and the value a file
//! holds now, decide what the file should hold.
//!
//! Pure logic with no I/O (the clock is an argument), so every rule is
//! table-tested. The range syntax lives in [`range`] (Masterminds/semver
//! v3, as Argo CD Image Updater and Flux read it). This module owns:
//!
//! - the filters, applied in this order to every tag: the OCI tag grammar,
//!   signature and attestation tags, `allow` (with `extract`), `ignore`,
//!   `min_age`;
//! - the strategies that order the survivors: `semver`, `newest`,
//!   `alphabetical`, `numeric`, `digest`;
//! - the guards that hold whatever the registry says: never downgrade, and
//!   never choose a value the registry does not hold right now.
//!
//! [`Policy::judge`] is the single place a tag's fate is decided; choosing
//! ([`Policy::best`]) and explaining ([`Policy::explain`]) both use it, so
//! `tagwatch policy test --explain` can never disagree with the daemon.

pub mod range;

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use semver::Version;
use time::OffsetDateTime;

use crate::image::Image;
use range::{Range, parse_version};

/// How candidates are ordered.
#[derive(Clone, Debug)]
pub enum Strategy {
    /// The highest version inside the range.
    Semver(Range),
    /// The most recently pushed (`imagePushedAt`); ties go to the greater tag.
    Newest,
    /// The last in byte order.
    Alphabetical,
    /// The greatest integer or decimal.
    Numeric,
    /// Follows one named tag and writes its digest.
    Digest { tag: String },
}

impl Strategy {
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Semver(_) => "semver",
            Strategy::Newest => "newest",
            Strategy::Alphabetical => "alphabetical",
            Strategy::Numeric => "numeric",
            Strategy::Digest { .. } => "digest",
        }
    }
}

/// Which capture group of `allow` orders the tags (Flux's `extract`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Group {
    Index(usize),
    Name(String),
}

/// One app's validated policy. Built only through [`Policy::from_spec`].
#[derive(Clone, Debug)]
pub struct Policy {
    pub strategy: Strategy,
    /// A tag must match this (searched as written; anchor it with `^…$`).
    /// Shared between every policy written with the same pattern: a fleet
    /// repeats a handful of patterns across hundreds of apps, and each
    /// compiled `Regex` with its search cache costs tens of kilobytes
    /// (`\d` is Unicode-aware).
    pub allow: Option<Arc<Regex>>,
    /// Order by this capture of `allow` instead of the whole tag.
    pub extract: Option<Group>,
    /// A tag matching any of these is never chosen.
    pub ignore: Vec<glob::Pattern>,
    /// A tag must have been pushed at least this long ago.
    pub min_age: Option<Duration>,
    /// The app's `[[apps.previews]]` patterns: a preview tag is never a
    /// candidate for the app's targets. Set by the config, empty otherwise.
    pub previews: Vec<Arc<Regex>>,
    /// `extract` resolved to a group index once, so the hot loop over
    /// 100,000 tags never looks a group up by name.
    extract_index: Option<usize>,
}

/// Compiled `allow` patterns by their text, so one config compiles each
/// distinct pattern once. A `Regex` clone would share the program but not
/// the search cache pool; an `Arc` shares both.
#[derive(Default)]
pub struct Patterns(HashMap<String, Arc<Regex>>);

impl Patterns {
    fn compile(&mut self, pattern: &str) -> Result<Arc<Regex>, SpecError> {
        if let Some(re) = self.0.get(pattern) {
            return Ok(Arc::clone(re));
        }
        let re = Regex::new(pattern)
            .map_err(|e| spec_error("allow", format!("invalid regex {pattern:?}: {e}")))?;
        let re = Arc::new(re);
        self.0.insert(pattern.to_string(), Arc::clone(&re));
        Ok(re)
    }
}

/// A policy as written, in config or on the command line.
#[derive(Clone, Debug, Default)]
pub struct PolicySpec {
    pub strategy: Option<String>,
    pub constraint: Option<String>,
    pub allow: Option<String>,
    pub extract: Option<String>,
    pub ignore: Vec<String>,
    pub min_age: Option<String>,
}

/// A policy field that does not validate. The caller adds where it was.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{message}")]
pub struct SpecError {
    /// `strategy`, `constraint`, `allow`, `extract`, `ignore` or `min_age`.
    pub field: &'static str,
    /// For `ignore`, which entry.
    pub index: Option<usize>,
    pub message: String,
}

fn spec_error(field: &'static str, message: impl Into<String>) -> SpecError {
    SpecError {
        field,
        index: None,
        message: message.into(),
    }
}

impl Policy {
    /// Validates a written policy. Combinations that would silently do
    /// nothing (an `extract` without `allow`, a `constraint` the strategy
    /// ignores) are errors, so a typo cannot quietly turn a policy off.
    pub fn from_spec(spec: &PolicySpec) -> Result<Policy, SpecError> {
        Policy::from_spec_in(spec, &mut Patterns::default())
    }

    /// [`Policy::from_spec`], compiling `allow` through `patterns` so that
    /// policies with the same pattern share one compiled regex.
    pub fn from_spec_in(spec: &PolicySpec, patterns: &mut Patterns) -> Result<Policy, SpecError> {
        let constraint = spec.constraint.as_deref();
        let strategy = match spec.strategy.as_deref().unwrap_or("semver") {
            "semver" => Strategy::Semver(
                Range::parse(constraint.unwrap_or(""))
                    .map_err(|e| spec_error("constraint", e.to_string()))?,
            ),
            "digest" => match constraint.map(str::trim) {
                Some(tag) if !tag.is_empty() => Strategy::Digest {
                    tag: tag.to_string(),
                },
                _ => {
                    return Err(spec_error(
                        "constraint",
                        "the digest strategy follows one tag: set constraint to it, e.g. \"stable\"",
                    ));
                }
            },
            other @ ("newest" | "alphabetical" | "numeric") => {
                if constraint.is_some() {
                    return Err(spec_error(
                        "constraint",
                        format!(
                            "the {other} strategy takes no constraint; filter with allow and ignore"
                        ),
                    ));
                }
                match other {
                    "newest" => Strategy::Newest,
                    "alphabetical" => Strategy::Alphabetical,
                    _ => Strategy::Numeric,
                }
            }
            other => {
                return Err(spec_error(
                    "strategy",
                    format!(
                        "unknown strategy {other:?}; expected one of semver, newest, alphabetical, numeric, digest"
                    ),
                ));
            }
        };
        let allow = match &spec.allow {
            Some(re) => Some(patterns.compile(re)?),
            None => None,
        };
        let extract = match &spec.extract {
            Some(x) => Some(parse_extract(x, allow.as_deref())?),
            None => None,
        };
        if extract.is_some() && matches!(strategy, Strategy::Newest | Strategy::Digest { .. }) {
            return Err(spec_error(
                "extract",
                format!(
                    "the {} strategy does not order by tag text, so extract would do nothing",
                    strategy.name()
                ),
            ));
        }
        let mut ignore = Vec::with_capacity(spec.ignore.len());
        for (i, g) in spec.ignore.iter().enumerate() {
            ignore.push(glob::Pattern::new(g).map_err(|e| SpecError {
                field: "ignore",
                index: Some(i),
                message: format!("invalid glob {g:?}: {e}"),
            })?);
        }
        let min_age = match &spec.min_age {
            Some(d) => Some(
                humantime::parse_duration(d)
                    .map_err(|e| spec_error("min_age", format!("invalid duration {d:?}: {e}")))?,
            ),
            None => None,
        };
        let extract_index = match (&extract, &allow) {
            (Some(Group::Index(i)), _) => Some(*i),
            (Some(Group::Name(n)), Some(re)) => {
                re.capture_names().position(|c| c == Some(n.as_str()))
            }
            _ => None,
        };
        Ok(Policy {
            strategy,
            allow,
            extract,
            ignore,
            min_age,
            previews: Vec::new(),
            extract_index,
        })
    }

    /// Whether a tag chosen by this policy must be re-read from the
    /// registry before it is written: `newest` and `digest` choose by what a
    /// tag points at, and a tag can move between listing and writing.
    pub fn needs_recheck(&self) -> bool {
        matches!(self.strategy, Strategy::Newest | Strategy::Digest { .. })
    }

    /// Whether the policy follows a tag's digest (the `digest` strategy),
    /// so a file's value is compared by digest rather than by tag.
    pub fn follows_digest(&self) -> bool {
        matches!(self.strategy, Strategy::Digest { .. })
    }

    /// Of the images on `digest`, the one this policy ranks highest (a
    /// non-candidate only when no candidate is on it), so the listing's
    /// order never decides which tag a digest-pinned value is taken to hold.
    pub fn greatest_on_digest<'a>(
        &self,
        images: &'a [Image],
        digest: &str,
        now: OffsetDateTime,
    ) -> Option<&'a Image> {
        let on = images.iter().filter(|i| i.digest == digest);
        on.clone()
            .filter_map(|i| Some((self.judge(i, now).ok()?, i)))
            .max_by(|(ka, a), (kb, b)| ka.cmp(kb).then_with(|| a.tag.cmp(&b.tag)))
            .map(|(_, i)| i)
            .or_else(|| on.clone().next())
    }

    /// The value written into the file for a chosen image.
    pub fn value_of<'a>(&self, image: &'a Image) -> &'a str {
        match self.strategy {
            Strategy::Digest { .. } => &image.digest,
            _ => &image.tag,
        }
    }

    /// Decides one tag: `Ok` with its ordering key when it is a candidate,
    /// `Err` with the reason when it is not.
    pub fn judge<'a>(&self, image: &'a Image, now: OffsetDateTime) -> Result<Key<'a>, Reason> {
        self.judge_with(image, now, &mut self.scratch())
    }

    /// Capture slots for `allow`, allocated once per pass over the tags
    /// rather than once per tag.
    fn scratch(&self) -> Option<regex::CaptureLocations> {
        self.allow.as_deref().map(Regex::capture_locations)
    }

    fn judge_with<'a>(
        &self,
        image: &'a Image,
        now: OffsetDateTime,
        scratch: &mut Option<regex::CaptureLocations>,
    ) -> Result<Key<'a>, Reason> {
        let tag = image.tag.as_str();
        // First, before any pattern sees it: a tag outside the grammar
        // (moto, or a registry less strict than ECR, will hold one with a
        // newline) must never reach a file, a commit message or a trailer.
        if !is_valid_tag(tag) {
            return Err(Reason::InvalidTag);
        }
        if is_signature(tag) {
            return Err(Reason::Signature);
        }
        if let Strategy::Digest { tag: followed } = &self.strategy
            && tag != followed
        {
            return Err(Reason::NotFollowed);
        }
        if self.previews.iter().any(|re| re.is_match(tag)) {
            return Err(Reason::Preview);
        }
        let value = self.ordering_text(tag, scratch)?;
        if let Some(glob) = self.ignore.iter().find(|g| g.matches(tag)) {
            return Err(Reason::Ignored(glob.as_str().to_string()));
        }
        if let Some(min_age) = self.min_age {
            let Some(pushed) = image.pushed_at else {
                return Err(Reason::NoPushTime);
            };
            let age = now - pushed;
            if age.is_negative() {
                return Err(Reason::InTheFuture);
            }
            if age < min_age {
                return Err(Reason::TooYoung {
                    age: age.unsigned_abs(),
                });
            }
        }
        match &self.strategy {
            Strategy::Semver(range) => {
                let v = parse_version(value).ok_or(Reason::NotVersion)?;
                if range.matches(&v) {
                    Ok(Key::Version(v))
                } else if range.excludes_only_as_prerelease(&v) {
                    Err(Reason::Prerelease)
                } else {
                    Err(Reason::OutsideRange)
                }
            }
            Strategy::Numeric => Decimal::parse(value)
                .map(Key::Number)
                .ok_or(Reason::NotNumber),
            Strategy::Alphabetical => Ok(Key::Text(value)),
            Strategy::Newest => image.pushed_at.map(Key::Time).ok_or(Reason::NoPushTime),
            Strategy::Digest { .. } => Ok(Key::Text(value)),
        }
    }

    /// The text a tag is ordered by: the whole tag, or `extract`'s capture.
    fn ordering_text<'t>(
        &self,
        tag: &'t str,
        scratch: &mut Option<regex::CaptureLocations>,
    ) -> Result<&'t str, Reason> {
        let Some(allow) = &self.allow else {
            return Ok(tag);
        };
        let (Some(index), Some(locations)) = (self.extract_index, scratch.as_mut()) else {
            return if allow.is_match(tag) {
                Ok(tag)
            } else {
                Err(Reason::NotAllowed)
            };
        };
        allow
            .captures_read(locations, tag)
            .ok_or(Reason::NotAllowed)?;
        let (start, end) = locations.get(index).ok_or(Reason::NotAllowed)?;
        Ok(&tag[start..end])
    }

    /// The text the file's current value is ordered by. A value that
    /// `allow` does not match is read whole when there is no `extract`
    /// (the file may predate the filter); with `extract` it cannot be.
    fn current_text<'t>(&self, current: &'t str) -> Option<&'t str> {
        match self.ordering_text(current, &mut self.scratch()) {
            Ok(text) => Some(text),
            Err(_) if self.extract.is_none() => Some(current),
            Err(_) => None,
        }
    }

    /// The best image under this policy, ignoring what the file holds.
    pub fn best<'a>(&self, images: &'a [Image], now: OffsetDateTime) -> Option<&'a Image> {
        self.best_index(images, now).map(|i| &images[i])
    }

    /// [`Policy::best`] as an index into `images`, for a caller that keeps
    /// the choice apart from the slice it was made in.
    pub fn best_index(&self, images: &[Image], now: OffsetDateTime) -> Option<usize> {
        images
            .iter()
            .enumerate()
            .filter_map({
                let mut scratch = self.scratch();
                move |(i, image)| Some((self.judge_with(image, now, &mut scratch).ok()?, i, image))
            })
            .max_by(|(ka, _, a), (kb, _, b)| ka.cmp(kb).then_with(|| a.tag.cmp(&b.tag)))
            .map(|(_, i, _)| i)
    }

    /// Every candidate in `images`, best first: what a gate walks, taking
    /// the first that passes. Its first is [`Policy::best`].
    pub fn ranked<'a>(&self, images: &'a [Image], now: OffsetDateTime) -> Vec<&'a Image> {
        let mut scratch = self.scratch();
        let mut judged: Vec<(Key<'a>, &'a Image)> = images
            .iter()
            .filter_map(|image| Some((self.judge_with(image, now, &mut scratch).ok()?, image)))
            .collect();
        // `best` takes the greatest (key, tag): the same order, reversed.
        judged.sort_by(|(ka, a), (kb, b)| kb.cmp(ka).then_with(|| b.tag.cmp(&a.tag)));
        judged.into_iter().map(|(_, image)| image).collect()
    }

    /// Every tag's verdict, in input order, and the chosen one.
    pub fn explain<'a>(
        &self,
        images: &'a [Image],
        now: OffsetDateTime,
    ) -> Vec<(&'a Image, Verdict)> {
        let best = self.best(images, now).map(|b| &b.tag);
        images
            .iter()
            .map(|image| {
                let verdict = match self.judge(image, now) {
                    Ok(_) if Some(&image.tag) == best => Verdict::Chosen,
                    Ok(_) => Verdict::Candidate,
                    Err(reason) => Verdict::Rejected(reason),
                };
                (image, verdict)
            })
            .collect()
    }

    /// Decides what a file holding `current` should hold.
    pub fn decide<'a>(
        &self,
        images: &'a [Image],
        current: &str,
        now: OffsetDateTime,
    ) -> Result<Decision<'a>, PolicyError> {
        self.decide_given(self.best(images, now), images, current, now)
    }

    /// [`Policy::decide`] with `best` already chosen from `images` at `now`
    /// (the cycle chooses while other repositories are still being listed).
    pub fn decide_given<'a>(
        &self,
        best: Option<&'a Image>,
        images: &'a [Image],
        current: &str,
        now: OffsetDateTime,
    ) -> Result<Decision<'a>, PolicyError> {
        let Some(best) = best else {
            return Ok(Decision::NoCandidate {
                why: self.why_none(images, now),
            });
        };
        let value = self.value_of(best);
        if value == current {
            return Ok(Decision::Keep);
        }
        let newer = match &self.strategy {
            Strategy::Semver(_) => {
                let cur = self
                    .current_text(current)
                    .and_then(parse_version)
                    .ok_or_else(|| PolicyError::CurrentUnordered {
                        current: current.into(),
                        kind: "version",
                    })?;
                let Ok(Key::Version(new)) = self.judge(best, now) else {
                    unreachable!("best() judged it")
                };
                cmp_versions(&new, &cur).is_gt()
            }
            Strategy::Numeric => {
                let cur = self
                    .current_text(current)
                    .and_then(Decimal::parse)
                    .ok_or_else(|| PolicyError::CurrentUnordered {
                        current: current.into(),
                        kind: "number",
                    })?;
                let Ok(Key::Number(new)) = self.judge(best, now) else {
                    unreachable!("best() judged it")
                };
                new > cur
            }
            // Going back in time is a downgrade too: keep a value the
            // registry says was pushed after the candidate.
            Strategy::Newest => !images
                .iter()
                .any(|i| i.tag == current && i.pushed_at > best.pushed_at),
            Strategy::Alphabetical | Strategy::Digest { .. } => true,
        };
        Ok(if newer {
            Decision::Promote(best)
        } else {
            Decision::Keep
        })
    }

    /// A one-line account of why no tag qualified, for the info log: a
    /// filter that removes everything must never do so in silence.
    fn why_none(&self, images: &[Image], now: OffsetDateTime) -> String {
        if images.is_empty() {
            return "the repository holds no tagged images".into();
        }
        let mut counts: Vec<(String, usize)> = Vec::new();
        for image in images {
            if let Err(reason) = self.judge(image, now) {
                let label = reason.label().to_string();
                match counts.iter_mut().find(|(l, _)| *l == label) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((label, 1)),
                }
            }
        }
        let parts: Vec<String> = counts.iter().map(|(l, n)| format!("{n} {l}")).collect();
        let none = match images.len() {
            1 => "the one tag does not qualify".to_string(),
            n => format!("none of {n} tags qualifies"),
        };
        format!("{none}: {}", parts.join(", "))
    }
}

fn parse_extract(x: &str, allow: Option<&Regex>) -> Result<Group, SpecError> {
    let Some(allow) = allow else {
        return Err(spec_error(
            "extract",
            "extract needs an allow regex to capture from",
        ));
    };
    let name = x.trim().strip_prefix('$').unwrap_or(x.trim());
    let name = name
        .strip_prefix('{')
        .and_then(|n| n.strip_suffix('}'))
        .unwrap_or(name);
    let group = match name.parse::<usize>() {
        Ok(i) if i >= 1 && i < allow.captures_len() => Group::Index(i),
        Ok(i) => {
            return Err(spec_error(
                "extract",
                match allow.captures_len() - 1 {
                    1 => format!("allow has 1 capture group, so ${i} does not exist"),
                    n => format!("allow has {n} capture groups, so ${i} does not exist"),
                },
            ));
        }
        Err(_) if allow.capture_names().flatten().any(|n| n == name) => {
            Group::Name(name.to_string())
        }
        Err(_) => {
            return Err(spec_error(
                "extract",
                format!("allow has no capture group named {name:?}; write it as (?P<{name}>…)"),
            ));
        }
    };
    Ok(group)
}

/// Whether `tag` is in the OCI distribution spec's tag grammar,
/// `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`, which ECR enforces. A tag outside
/// it is never a candidate ([`Reason::InvalidTag`]); the cycle uses this to
/// count and log such tags once per listing rather than once per policy.
pub fn is_valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    let Some((&first, rest)) = bytes.split_first() else {
        return false;
    };
    bytes.len() <= 128
        && (first.is_ascii_alphanumeric() || first == b'_')
        && rest
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The images of a listing whose tags are outside the OCI tag grammar
/// ([`is_valid_tag`]), for the cycle to count and log.
pub fn invalid_tags(images: &[Image]) -> impl Iterator<Item = &Image> {
    images.iter().filter(|i| !is_valid_tag(&i.tag))
}

/// cosign and similar tools store signatures, attestations and SBOMs as
/// tags named after the image digest. They are never deployable images.
fn is_signature(tag: &str) -> bool {
    let Some(rest) = tag.strip_prefix("sha256-") else {
        return false;
    };
    let Some((hex, ext)) = rest.split_once('.') else {
        return false;
    };
    hex.len() == 64
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
        && matches!(ext, "sig" | "att" | "sbom")
}

/// Semver precedence: build metadata does not order versions (SemVer 2.0
/// §10), though the `semver` crate's `Ord` uses it as a tie-breaker.
fn cmp_versions(a: &Version, b: &Version) -> Ordering {
    (a.major, a.minor, a.patch, &a.pre).cmp(&(b.major, b.minor, b.patch, &b.pre))
}

/// What a candidate is ordered by. All candidates of one policy have the
/// same kind of key. Equality is the ordering's (build metadata does not
/// count), so `==` and `cmp` never disagree.
#[derive(Clone, Debug)]
pub enum Key<'a> {
    Version(Version),
    Number(Decimal<'a>),
    Text(&'a str),
    Time(OffsetDateTime),
}

impl PartialEq for Key<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Key<'_> {}

impl PartialOrd for Key<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Key::Version(a), Key::Version(b)) => cmp_versions(a, b),
            (Key::Number(a), Key::Number(b)) => a.cmp(b),
            (Key::Text(a), Key::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Key::Time(a), Key::Time(b)) => a.cmp(b),
            // One policy yields one kind of key; order kinds arbitrarily
            // but consistently so `Ord` stays total.
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl Key<'_> {
    fn rank(&self) -> u8 {
        match self {
            Key::Version(_) => 0,
            Key::Number(_) => 1,
            Key::Text(_) => 2,
            Key::Time(_) => 3,
        }
    }
}

/// A non-negative integer or decimal, compared exactly: `0012` = `12`,
/// `1.50` = `1.5`, and `20241231235959` does not lose digits as an `f64`
/// would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decimal<'a> {
    /// Integer digits without leading zeros.
    int: &'a str,
    /// Fraction digits without trailing zeros.
    frac: &'a str,
}

impl<'a> Decimal<'a> {
    pub fn parse(s: &'a str) -> Option<Decimal<'a>> {
        let (int, frac) = match s.split_once('.') {
            Some((i, f)) => (i, f),
            None => (s, ""),
        };
        let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(int) || (s.contains('.') && !digits(frac)) {
            return None;
        }
        Some(Decimal {
            int: int.trim_start_matches('0'),
            frac: frac.trim_end_matches('0'),
        })
    }
}

impl PartialOrd for Decimal<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Decimal<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.int.len(), self.int)
            .cmp(&(other.int.len(), other.int))
            .then_with(|| self.frac.cmp(other.frac))
    }
}

/// Why a tag is not a candidate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Outside the OCI tag grammar ([`is_valid_tag`]).
    InvalidTag,
    Signature,
    NotFollowed,
    NotAllowed,
    /// Matched by an `[[apps.previews]]` pattern: a preview's, not the app's.
    Preview,
    Ignored(String),
    NoPushTime,
    InTheFuture,
    TooYoung {
        age: Duration,
    },
    NotVersion,
    Prerelease,
    OutsideRange,
    NotNumber,
}

impl Reason {
    /// A short fixed label, for counts and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Reason::InvalidTag => "not a valid OCI tag",
            Reason::Signature => "signature or attestation",
            Reason::NotFollowed => "not the followed tag",
            Reason::NotAllowed => "not matched by allow",
            Reason::Preview => "a preview tag ([[apps.previews]])",
            Reason::Ignored(_) => "ignored",
            Reason::NoPushTime => "without a push time",
            Reason::InTheFuture => "pushed in the future",
            Reason::TooYoung { .. } => "too young",
            Reason::NotVersion => "not a version",
            Reason::Prerelease => "pre-release",
            Reason::OutsideRange => "outside the range",
            Reason::NotNumber => "not a number",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Ignored(glob) => write!(f, "ignored by {glob:?}"),
            Reason::TooYoung { age } => {
                write!(
                    f,
                    "too young (pushed {} ago)",
                    humantime::format_duration(*age)
                )
            }
            Reason::InTheFuture => f.write_str("pushed in the future (clock skew?); too young"),
            Reason::Prerelease => f.write_str("pre-release, and the range names no pre-release"),
            other => f.write_str(other.label()),
        }
    }
}

/// A tag's verdict in `--explain` output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Chosen,
    Candidate,
    Rejected(Reason),
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Chosen => f.write_str("chosen"),
            Verdict::Candidate => f.write_str("candidate, not the best"),
            Verdict::Rejected(r) => write!(f, "{r}"),
        }
    }
}

/// What the policy decided for one target.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Write this image (its tag, or its digest for the digest strategy).
    Promote(&'a Image),
    /// The file already holds the best choice, or something the guards
    /// forbid replacing with it.
    Keep,
    /// No tag survived the filters. Nothing is written: an empty or fully
    /// filtered registry must never blank a file.
    NoCandidate { why: String },
}

/// Why a target cannot be decided; the app is skipped, not the cycle.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error(
        "the file holds {current:?}, which is not a {kind} under this policy; it cannot tell whether a candidate would be a downgrade, so it writes nothing"
    )]
    CurrentUnordered { current: String, kind: &'static str },
}

#[cfg(test)]
mod tests;
