//! Questions answered from the branch's history: the promotions recorded
//! in commit trailers, when the branch came to hold a value, which
//! promotion wrote a digest, and what a proposal branch proposes. Read
//! only; the checkout ([`super::Checkout`]) owns writing.

use std::path::Path;

use super::{Checkout, CommitId};
use crate::config::RepoPath;
use crate::trailers::Promotion;

/// A promotion as the branch records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub promotion: Promotion,
    /// The commit time: when the promotion reached the branch.
    pub at: time::OffsetDateTime,
    pub commit: String,
}

impl Checkout {
    /// The promotions reachable from `from`, newest first, read from the
    /// commits' trailers along the first-parent line (what the branch ran,
    /// not what a merged side branch did). Looks at most `limit` commits back.
    pub fn promotions(&self, from: CommitId, limit: usize) -> impl Iterator<Item = Recorded> + '_ {
        let walk = self.repo.revwalk().ok().and_then(|mut walk| {
            walk.push(from.0).ok()?;
            walk.simplify_first_parent().ok()?;
            Some(walk)
        });
        walk.into_iter()
            .flatten()
            .take(limit)
            .filter_map(Result::ok)
            .filter_map(|oid| {
                let commit = self.repo.find_commit(oid).ok()?;
                let promotion = Promotion::parse(commit.message().ok()?)?;
                let at = time::OffsetDateTime::from_unix_timestamp(commit.time().seconds()).ok()?;
                Some(Recorded {
                    promotion,
                    at,
                    commit: oid.to_string(),
                })
            })
    }

    /// The promotions on `tip` that `base` does not have: what a proposal
    /// branch proposes.
    pub fn proposed(&self, tip: CommitId, base: CommitId) -> Vec<Promotion> {
        let Ok(mut walk) = self.repo.revwalk() else {
            return Vec::new();
        };
        if walk.push(tip.0).is_err() {
            return Vec::new();
        }
        if let Ok(fork) = self.repo.merge_base(tip.0, base.0) {
            let _ = walk.hide(fork);
        }
        walk.filter_map(Result::ok)
            .take(1_000)
            .filter_map(|oid| Promotion::parse(self.repo.find_commit(oid).ok()?.message().ok()?))
            .collect()
    }

    /// When the branch came to hold `value` for `app`/`env`: the commit time
    /// of the newest promotion commit that wrote it. Without one (the value
    /// was written by hand), the newest commit that changed `path` stands
    /// in: that is no earlier than the value's arrival, so a soak measured
    /// from it never ends early.
    pub fn held_since(
        &self,
        app: &str,
        env: &str,
        value: &str,
        path: &RepoPath,
        limit: usize,
    ) -> Option<time::OffsetDateTime> {
        let head = self.head().ok()?;
        if let Some(r) = self
            .promotions(head, limit)
            .find(|r| r.promotion.app == app && r.promotion.env == env)
            .filter(|r| r.promotion.to == value)
        {
            return Some(r.at);
        }
        let mut walk = self.repo.revwalk().ok()?;
        walk.push(head.0).ok()?;
        walk.simplify_first_parent().ok()?;
        let blob_at = |commit: &git2::Commit<'_>| {
            commit
                .tree()
                .ok()
                .and_then(|t| t.get_path(Path::new(path.as_str())).ok())
                .map(|e| e.id())
        };
        for oid in walk.take(limit).filter_map(Result::ok) {
            let commit = self.repo.find_commit(oid).ok()?;
            let parent_blob = commit.parent(0).ok().and_then(|p| blob_at(&p));
            if blob_at(&commit) != parent_blob {
                return time::OffsetDateTime::from_unix_timestamp(commit.time().seconds()).ok();
            }
        }
        None
    }

    /// The most recent promotion of `app`/`env` that wrote `digest`. This is
    /// how a digest-only value is tied back to its tag once the registry no
    /// longer has a tag on that digest.
    pub fn promotion_with_digest(
        &self,
        app: &str,
        env: &str,
        digest: &str,
        limit: usize,
    ) -> Option<Promotion> {
        self.promotions(self.head().ok()?, limit)
            .map(|r| r.promotion)
            .find(|p| p.app == app && p.env == env && p.digest == digest)
    }
}

/// The commit that gave a file's value the content it held at some time.
#[derive(Clone, Debug)]
pub struct ValueSetter {
    /// The value as the file held it then.
    pub value: String,
    /// The newest first-parent commit at or before that time that changed
    /// the value.
    pub commit: String,
    pub at: time::OffsetDateTime,
    /// For a merge: the promotions its merged side brought in.
    pub merged: Vec<Promotion>,
}

impl Checkout {
    /// What `path` held at `at` on the branch (first parents from `head`,
    /// what the branch itself held), read through `value_of`, and the
    /// commit that set it. `None` when the file, or the value in it, is not
    /// there. Looks at most `limit` commits back.
    pub fn value_setter(
        &self,
        head: CommitId,
        at: time::OffsetDateTime,
        path: &RepoPath,
        value_of: &dyn Fn(&[u8]) -> Option<String>,
        limit: usize,
    ) -> Option<ValueSetter> {
        let time_of = |c: &git2::Commit<'_>| {
            time::OffsetDateTime::from_unix_timestamp(c.time().seconds())
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        };
        let then = std::iter::successors(self.repo.find_commit(head.0).ok(), |c| c.parent(0).ok())
            .take(limit)
            .find(|c| time_of(c) <= at)?;
        let blob_in = |commit: &git2::Commit<'_>| {
            commit
                .tree()
                .ok()?
                .get_path(Path::new(path.as_str()))
                .ok()
                .map(|e| e.id())
        };
        let read = |blob: Option<git2::Oid>| -> Option<String> {
            value_of(self.repo.find_blob(blob?).ok()?.content())
        };
        let mut blob = blob_in(&then);
        let value = read(blob)?;
        let mut setter = then;
        // Parse only where the file's blob changed: most commits touch
        // other files, and comparing two ids is cheap.
        for _ in 0..limit {
            let Ok(parent) = setter.parent(0) else { break };
            let parent_blob = blob_in(&parent);
            if parent_blob != blob {
                if read(parent_blob).as_ref() != Some(&value) {
                    break;
                }
                blob = parent_blob;
            }
            setter = parent;
        }
        let merged = match (setter.parent_id(1), setter.parent_id(0)) {
            (Ok(side), Ok(base)) => self.proposed(CommitId(side), CommitId(base)),
            _ => Vec::new(),
        };
        Some(ValueSetter {
            value,
            commit: setter.id().to_string(),
            at: time_of(&setter),
            merged,
        })
    }
}
