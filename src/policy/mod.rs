//! Tag policy: given the images a repository holds and the value a file
//! holds now, decide what the file should hold.
//!
//! Pure logic with no I/O, so every rule is table-tested. The range syntax
//! lives in [`range`] (Masterminds/semver v3, as Argo CD Image Updater and
//! Flux read it). This module owns the filters (ignore globs, pre-releases),
//! the choice among the survivors, and the guards that hold whatever the
//! registry says: never downgrade, and never choose a tag the registry does
//! not hold right now.

pub mod range;

use std::fmt;
use std::str::FromStr;

use semver::Version;

use crate::registry::Image;
use range::{Range, parse_version};

/// How a candidate is chosen among a repository's tags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Strategy {
    /// The highest version inside the app's `constraint`.
    #[default]
    Semver,
}

impl FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "semver" => Ok(Strategy::Semver),
            other => Err(format!("unknown strategy {other:?}; expected \"semver\"")),
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Strategy::Semver => "semver",
        })
    }
}

/// One app's validated policy.
#[derive(Clone, Debug)]
pub struct Policy {
    pub strategy: Strategy,
    /// Versions outside this range are never chosen.
    pub constraint: Range,
    /// A tag matching any of these is never chosen.
    pub ignore: Vec<glob::Pattern>,
}

/// What the policy decided for one target.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Write this image's tag: it is newer than what the file holds.
    Promote(&'a Image),
    /// The file already holds the best choice, or something newer than any
    /// candidate (never downgrade).
    Keep { best: Option<&'a Image> },
    /// No tag survived the filters. Nothing is written: an empty or fully
    /// filtered registry must never blank a file.
    NoCandidate,
}

/// Why a target cannot be decided; the app is skipped, not the cycle.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error(
        "the file holds {current:?}, which is not a version; the semver strategy cannot tell whether a candidate would be a downgrade, so it writes nothing"
    )]
    CurrentNotVersion { current: String },
}

impl Policy {
    /// The best image under this policy, ignoring what the file holds.
    pub fn best<'a>(&self, images: &'a [Image]) -> Option<&'a Image> {
        match self.strategy {
            Strategy::Semver => images
                .iter()
                .filter(|image| !self.is_ignored(&image.tag))
                .filter_map(|image| Some((parse_version(&image.tag)?, image)))
                .filter(|(version, _)| self.constraint.matches(version))
                // Ties (`v1.2.3` and `1.2.3`, or build metadata, which
                // Masterminds ignores) go to the greater tag name, so the
                // choice never depends on the registry's listing order.
                .max_by(|(va, a), (vb, b)| {
                    cmp_ignoring_build(va, vb).then_with(|| a.tag.cmp(&b.tag))
                })
                .map(|(_, image)| image),
        }
    }

    /// Decides what a file holding `current` should hold.
    pub fn decide<'a>(
        &self,
        images: &'a [Image],
        current: &str,
    ) -> Result<Decision<'a>, PolicyError> {
        let Some(best) = self.best(images) else {
            return Ok(Decision::NoCandidate);
        };
        if best.tag == current {
            return Ok(Decision::Keep { best: Some(best) });
        }
        let Some(current_version) = parse_version(current) else {
            return Err(PolicyError::CurrentNotVersion {
                current: current.to_string(),
            });
        };
        let best_version = parse_version(&best.tag).expect("best() only returns versions");
        if cmp_ignoring_build(&best_version, &current_version).is_gt() {
            Ok(Decision::Promote(best))
        } else {
            Ok(Decision::Keep { best: Some(best) })
        }
    }

    fn is_ignored(&self, tag: &str) -> bool {
        self.ignore.iter().any(|g| g.matches(tag))
    }
}

/// Semver precedence: build metadata does not order versions (SemVer 2.0
/// §10), though the `semver` crate's `Ord` uses it as a tie-breaker.
fn cmp_ignoring_build(a: &Version, b: &Version) -> std::cmp::Ordering {
    (a.major, a.minor, a.patch, &a.pre).cmp(&(b.major, b.minor, b.patch, &b.pre))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images(tags: &[&str]) -> Vec<Image> {
        tags.iter()
            .map(|t| Image {
                tag: t.to_string(),
                digest: format!("sha256:{t}"),
                pushed_at: None,
            })
            .collect()
    }

    fn policy(constraint: &str, ignore: &[&str]) -> Policy {
        Policy {
            strategy: Strategy::Semver,
            constraint: Range::parse(constraint).unwrap(),
            ignore: ignore
                .iter()
                .map(|g| glob::Pattern::new(g).unwrap())
                .collect(),
        }
    }

    fn chosen(constraint: &str, ignore: &[&str], tags: &[&str], current: &str) -> String {
        let imgs = images(tags);
        match policy(constraint, ignore).decide(&imgs, current).unwrap() {
            Decision::Promote(i) => format!("promote {}", i.tag),
            Decision::Keep { .. } => "keep".into(),
            Decision::NoCandidate => "none".into(),
        }
    }

    /// constraint, ignore globs, registry tags, file holds, expected.
    type Case<'a> = (&'a str, &'a [&'a str], &'a [&'a str], &'a str, &'a str);

    #[test]
    fn semver_decisions_a_user_would_expect() {
        let cases: &[Case] = &[
            (
                "^1.4",
                &[],
                &["1.4.2", "1.4.3", "1.3.9"],
                "1.4.2",
                "promote 1.4.3",
            ),
            (
                "^1.4",
                &[],
                &["1.4.2", "1.4.3", "2.0.0"],
                "1.4.2",
                "promote 1.4.3",
            ),
            ("^1.4", &[], &["1.4.2", "1.5.0-rc.1"], "1.4.2", "keep"),
            (
                "^1.4",
                &["*-debug"],
                &["1.4.2", "1.4.9-debug"],
                "1.4.2",
                "keep",
            ),
            ("^1.4", &["1.4.3"], &["1.4.2", "1.4.3"], "1.4.2", "keep"),
            ("^1.4", &[], &["1.4.1"], "1.4.2", "keep"),
            ("^1.4", &[], &["1.4.2"], "1.4.2", "keep"),
            ("^1.4", &[], &[], "1.4.2", "none"),
            ("^1.4", &[], &["latest", "main-abc"], "1.4.2", "none"),
            ("^1.4", &[], &["v1.4.3", "1.4.2"], "1.4.2", "promote v1.4.3"),
            ("^1.4", &[], &["v1.4.3", "1.4.3"], "1.4.2", "promote v1.4.3"),
            ("^1.4", &[], &["1.4.3"], "v1.4.3", "keep"),
            (
                "",
                &[],
                &["1.4.3", "3.0.0", "3.1.0-beta.1"],
                "1.4.2",
                "promote 3.0.0",
            ),
            (
                "^1.4.0-0",
                &[],
                &["1.4.2", "1.5.0-rc.1"],
                "1.4.2",
                "promote 1.5.0-rc.1",
            ),
        ];
        for (constraint, ignore, tags, current, expected) in cases {
            assert_eq!(
                &chosen(constraint, ignore, tags, current),
                expected,
                "constraint {constraint:?} ignore {ignore:?} tags {tags:?} current {current:?}"
            );
        }
    }

    #[test]
    fn a_file_holding_a_non_version_is_skipped_not_overwritten() {
        let imgs = images(&["1.4.3"]);
        let err = policy("^1.4", &[]).decide(&imgs, "latest").unwrap_err();
        assert_eq!(
            err,
            PolicyError::CurrentNotVersion {
                current: "latest".into()
            }
        );
    }

    #[test]
    fn listing_order_never_changes_the_choice() {
        let mut tags = vec!["1.4.3", "v1.4.3", "1.4.3+build.2", "1.4.3+build.1", "1.4.0"];
        let first = policy("^1.4", &[])
            .best(&images(&tags))
            .unwrap()
            .tag
            .clone();
        for _ in 0..tags.len() {
            tags.rotate_left(1);
            assert_eq!(policy("^1.4", &[]).best(&images(&tags)).unwrap().tag, first);
            tags.reverse();
            assert_eq!(policy("^1.4", &[]).best(&images(&tags)).unwrap().tag, first);
        }
    }
}
