//! Holds and denied tags: what stops a target from taking a tag it would
//! otherwise take. Pure: it parses `.tagwatch/holds.toml` (a file the
//! GitOps repository holds and people may edit) into typed holds and
//! releases, and derives denials from a target's value history as git
//! records it. Fetching the file and the history is the cycle's job
//! (through [`super::plan::Branch`]); deciding what to do with a hold or a
//! denial is [`super::plan::plan`]'s.
//!
//! Why state lives here and in history rather than anywhere else: every
//! replica, a restarted process and a fresh clone read the same branch,
//! so they all see the same holds and the same denials, and a person can
//! read (and edit, through a normal commit or pull request) exactly what
//! tagwatch obeys. A denial is never written down: it is derived each
//! cycle from the commits that caused it (a person's revert, a commit with
//! `Tagwatch-Rollback-Of:`), minus the releases the holds file records.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::gitops::ValueEvent;
pub use crate::rollback::Cause;
use crate::rollback::{CAUSE, ROLLBACK_OF};
use crate::trailers::Promotion;

/// Where the holds file lives in the GitOps repository.
pub const HOLDS_FILE: &str = ".tagwatch/holds.toml";

/// The trailers of `tagwatch hold` and `tagwatch release` commits: `app/env`.
pub const HOLD: &str = "Tagwatch-Hold";
pub const RELEASE: &str = "Tagwatch-Release";

/// The holds file as written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Holds {
    /// Targets frozen: no promotion at all while held.
    #[serde(default, rename = "hold", skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<Hold>,
    /// Denied tags a person let through again.
    #[serde(default, rename = "release", skip_serializing_if = "Vec::is_empty")]
    pub releases: Vec<Release>,
}

/// One held target.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Hold {
    pub app: String,
    pub env: String,
    pub reason: String,
    /// Who asked for it (the commit's author, for `tagwatch hold`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// When it lapses by itself (RFC 3339); `None` holds until released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

/// One denied tag let through again.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    pub app: String,
    pub env: String,
    pub tag: String,
}

/// A holds file that cannot be read: every target waits rather than
/// ignore a hold it cannot see.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HoldsError {
    #[error("{HOLDS_FILE}: {0}")]
    Syntax(String),
    #[error("{HOLDS_FILE}: hold of {app}/{env}: until {until:?} is not an RFC 3339 time")]
    Until {
        app: String,
        env: String,
        until: String,
    },
}

impl Holds {
    /// Parses the file; every `until` is checked here, so a hold in force
    /// can always be told from one that lapsed.
    pub fn parse(text: &str) -> Result<Holds, HoldsError> {
        let holds: Holds = toml::from_str(text)
            .map_err(|e| HoldsError::Syntax(e.to_string().lines().collect::<Vec<_>>().join(" ")))?;
        for h in &holds.holds {
            if let Some(until) = &h.until
                && OffsetDateTime::parse(until, &Rfc3339).is_err()
            {
                return Err(HoldsError::Until {
                    app: h.app.clone(),
                    env: h.env.clone(),
                    until: until.clone(),
                });
            }
        }
        Ok(holds)
    }

    /// The file's text, as `tagwatch hold` and `release` write it.
    pub fn render(&self) -> String {
        let body = toml::to_string(self).unwrap_or_default();
        format!(
            "# Holds and released denials, read by tagwatch every cycle.\n\
             # Edit by hand or with `tagwatch hold` / `tagwatch release`.\n\n{body}"
        )
    }

    /// The hold in force on `app`/`env` at `now`.
    pub fn hold_on(&self, app: &str, env: &str, now: OffsetDateTime) -> Option<&Hold> {
        self.holds
            .iter()
            .filter(|h| h.app == app && h.env == env)
            .find(|h| h.until_time().is_none_or(|until| now < until))
    }

    /// Whether a person let `tag` through again for `app`/`env`.
    pub fn released(&self, app: &str, env: &str, tag: &str) -> bool {
        self.releases
            .iter()
            .any(|r| r.app == app && r.env == env && r.tag == tag)
    }
}

impl Hold {
    pub fn until_time(&self) -> Option<OffsetDateTime> {
        self.until
            .as_deref()
            .and_then(|u| OffsetDateTime::parse(u, &Rfc3339).ok())
    }

    /// Why the target waits: `held by alice until …: incident 42`.
    pub fn describe(&self) -> String {
        let by = self.by.as_deref().unwrap_or("a person");
        match &self.until {
            Some(until) => format!("held by {by} until {until}: {}", self.reason),
            None => format!("held by {by}: {}", self.reason),
        }
    }
}

/// A tag a target must not take again, and the commit that says so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    /// The env whose history denied it (the target's, or one upstream).
    pub env: String,
    pub tag: String,
    pub cause: Cause,
    pub commit: String,
    pub by: String,
    pub at: OffsetDateTime,
}

impl Denial {
    /// `1.4.5 denied: rolled back by Person in 1a2b3c4d5e6f`.
    pub fn describe(&self) -> String {
        let short = &self.commit[..self.commit.len().min(12)];
        let how = match self.cause {
            Cause::Person => format!("rolled back by {}", self.by),
            Cause::Command => "rolled back by tagwatch rollback".to_string(),
            Cause::Verify => "rolled back by verify".to_string(),
            Cause::Argocd => "rolled back: Argo CD Degraded".to_string(),
        };
        format!("{} denied: {how} in {short}", self.tag)
    }
}

/// The value of a trailer `key` in the message's last paragraph.
pub fn trailer(message: &str, key: &str) -> Option<String> {
    let last = message.trim_end().rsplit("\n\n").next()?;
    last.split('\n').find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == key && !v.chars().any(char::is_control)).then(|| v.trim().to_string())
    })
}

/// The denials the value history of `app`/`env` holds, oldest first.
/// `events` are the commits that changed the value, oldest first, with the
/// value read as a tag; `below(a, b)` says whether tag `a` orders below
/// `b` under the target's policy.
///
/// A commit tagwatch did not make (no promotion trailers for this target)
/// that moves the value away from what tagwatch last promoted to a value
/// that orders below it denies the promoted tag: a person's revert. A
/// commit with `Tagwatch-Rollback-Of: T` for this target denies `T`.
/// Releases recorded in the holds file lift either.
pub fn denials(
    app: &str,
    env: &str,
    events: &[ValueEvent],
    below: &dyn Fn(&str, &str) -> bool,
    holds: &Holds,
) -> Vec<Denial> {
    let mut out: Vec<Denial> = Vec::new();
    let mut promoted: Option<String> = None;
    for e in events {
        let ours = Promotion::parse(&e.message).filter(|p| p.app == app && p.env == env);
        let deny = |tag: String, cause: Cause| Denial {
            env: env.to_string(),
            tag,
            cause,
            commit: e.commit.clone(),
            by: e.author.clone(),
            at: e.at,
        };
        match ours {
            Some(p) => {
                if let Some(of) = trailer(&e.message, ROLLBACK_OF) {
                    let cause = trailer(&e.message, CAUSE)
                        .and_then(|c| Cause::parse(&c))
                        .unwrap_or(Cause::Command);
                    out.push(deny(of, cause));
                }
                promoted = Some(p.to);
            }
            None => {
                let (Some(last), Some(to)) = (&promoted, &e.to) else {
                    promoted = None;
                    continue;
                };
                if e.from.as_ref() == Some(last) && below(to, last) {
                    out.push(deny(last.clone(), Cause::Person));
                }
                promoted = None;
            }
        }
    }
    out.retain(|d| !holds.released(app, env, &d.tag));
    // One denial per tag: the newest says why.
    let mut seen = std::collections::HashSet::new();
    let mut newest_first: Vec<Denial> = out
        .into_iter()
        .rev()
        .filter(|d| seen.insert(d.tag.clone()))
        .collect();
    newest_first.reverse();
    newest_first
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trailers;

    fn event(from: &str, to: &str, message: &str, commit: &str) -> ValueEvent {
        ValueEvent {
            commit: commit.into(),
            author: "Person".into(),
            at: OffsetDateTime::UNIX_EPOCH,
            from: Some(from.into()),
            to: Some(to.into()),
            message: message.into(),
        }
    }

    fn promotion(from: &str, to: &str) -> String {
        Promotion {
            app: "web".into(),
            env: "dev".into(),
            image: "reg/web".into(),
            from: from.into(),
            to: to.into(),
            digest: "sha256:x".into(),
            pushed_at: None,
        }
        .message(&trailers::Location {
            file: "dev.yaml",
            key: "image.tag",
        })
    }

    fn below(a: &str, b: &str) -> bool {
        semver::Version::parse(a).unwrap() < semver::Version::parse(b).unwrap()
    }

    fn tags(d: &[Denial]) -> Vec<(&str, Cause)> {
        d.iter().map(|d| (d.tag.as_str(), d.cause)).collect()
    }

    #[test]
    fn a_persons_revert_below_the_promotion_denies_the_promoted_tag() {
        let events = [
            event("1.4.4", "1.4.5", &promotion("1.4.4", "1.4.5"), "c1"),
            event("1.4.5", "1.4.4", "revert 1.4.5\n", "c2"),
        ];
        let got = denials("web", "dev", &events, &below, &Holds::default());
        assert_eq!(tags(&got), [("1.4.5", Cause::Person)]);
        assert_eq!(
            got[0].describe(),
            "1.4.5 denied: rolled back by Person in c2"
        );
    }

    #[test]
    fn a_person_moving_the_value_up_or_sideways_denies_nothing() {
        let events = [
            event("1.4.4", "1.4.5", &promotion("1.4.4", "1.4.5"), "c1"),
            event("1.4.5", "1.4.7", "pin 1.4.7\n", "c2"),
            event("1.4.7", "1.4.6", "and back\n", "c3"),
        ];
        assert_eq!(
            denials("web", "dev", &events, &below, &Holds::default()),
            []
        );
    }

    #[test]
    fn another_targets_promotion_is_a_persons_commit_for_this_one() {
        let mut other = promotion("1.4.5", "1.4.4");
        other = other.replace("Tagwatch-Env: dev", "Tagwatch-Env: prod");
        let events = [
            event("1.4.4", "1.4.5", &promotion("1.4.4", "1.4.5"), "c1"),
            event("1.4.5", "1.4.4", &other, "c2"),
        ];
        let got = denials("web", "dev", &events, &below, &Holds::default());
        assert_eq!(tags(&got), [("1.4.5", Cause::Person)]);
    }

    #[test]
    fn a_rollback_commit_denies_the_tag_it_names_with_its_cause() {
        let message = format!(
            "{}{}",
            promotion("1.4.5", "1.4.4"),
            crate::rollback::Order {
                to: "1.4.4".into(),
                of: "1.4.5".into(),
                cause: Cause::Verify,
                reason: "up == 0".into(),
            }
            .trailers()
        );
        let events = [
            event("1.4.4", "1.4.5", &promotion("1.4.4", "1.4.5"), "c1"),
            event("1.4.5", "1.4.4", &message, "c2"),
        ];
        let got = denials("web", "dev", &events, &below, &Holds::default());
        assert_eq!(tags(&got), [("1.4.5", Cause::Verify)]);
    }

    #[test]
    fn a_release_lifts_a_denial() {
        let events = [
            event("1.4.4", "1.4.5", &promotion("1.4.4", "1.4.5"), "c1"),
            event("1.4.5", "1.4.4", "revert\n", "c2"),
        ];
        let holds =
            Holds::parse("[[release]]\napp = \"web\"\nenv = \"dev\"\ntag = \"1.4.5\"\n").unwrap();
        assert_eq!(denials("web", "dev", &events, &below, &holds), []);
    }

    #[test]
    fn a_hold_lapses_at_its_until() {
        let holds = Holds::parse(
            "[[hold]]\napp = \"web\"\nenv = \"dev\"\nreason = \"incident\"\nby = \"alice\"\nuntil = \"2026-12-01T10:00:00Z\"\n",
        )
        .unwrap();
        let before = time::macros::datetime!(2026-12-01 09:59:59 UTC);
        let after = time::macros::datetime!(2026-12-01 10:00:00 UTC);
        let hold = holds.hold_on("web", "dev", before).unwrap();
        assert_eq!(
            hold.describe(),
            "held by alice until 2026-12-01T10:00:00Z: incident"
        );
        assert!(holds.hold_on("web", "dev", after).is_none());
        assert!(holds.hold_on("web", "prod", before).is_none());
        assert_eq!(Holds::parse(&holds.render()).unwrap(), holds);
    }

    #[test]
    fn a_bad_holds_file_is_an_error_naming_it() {
        let e = Holds::parse("[[hold]]\napp = \"web\"\n").unwrap_err();
        assert!(e.to_string().starts_with(".tagwatch/holds.toml: "), "{e}");
        let e = Holds::parse(
            "[[hold]]\napp = \"web\"\nenv = \"dev\"\nreason = \"r\"\nuntil = \"tomorrow\"\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("until \"tomorrow\""), "{e}");
    }
}
