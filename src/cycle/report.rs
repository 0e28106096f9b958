//! What a cycle did, per target: the one report every surface reads.
//!
//! `once` prints it, the daemon exports it to metrics ([`super::export`])
//! and folds it into the `/status` board, `promote` turns it into an exit
//! code. Each reads it through the methods here (`kind`, `Display`,
//! `candidate`, `reason`, …) instead of matching every variant again, so a
//! new outcome is one new arm in this file.

use std::collections::BTreeMap;
use std::fmt;

use time::OffsetDateTime;

use crate::gate::{Gate, Verdict};

/// Whether a cycle writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Commit and push.
    Apply,
    /// Decide everything exactly as `Apply` would, report it, write nothing.
    DryRun,
}

/// The stage a target failed in; a fixed set for logs and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Registry,
    Policy,
    Manifest,
    Git,
    Forge,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Registry => "registry",
            Stage::Policy => "policy",
            Stage::Manifest => "manifest",
            Stage::Git => "git",
            Stage::Forge => "forge",
        }
    }
}

/// How a change reaches its env: a commit on the branch, or a pull request
/// on a proposal branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum How {
    Commit,
    PullRequest { branch: String },
}

impl How {
    pub fn as_str(&self) -> &'static str {
        match self {
            How::Commit => "commit",
            How::PullRequest { .. } => "pull-request",
        }
    }
}

/// What the forge was asked this cycle for a proposal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestAction {
    Opened,
    Updated,
    /// Already open and saying the right thing: left alone.
    Kept,
}

impl RequestAction {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestAction::Opened => "opened",
            RequestAction::Updated => "updated",
            RequestAction::Kept => "kept",
        }
    }
}

/// What happened to one app/env in a cycle. What the env holds is the
/// report's `current`, not repeated here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The file already holds the policy's choice (or something newer).
    Unchanged,
    /// Nothing the rules accept; nothing was written. `why` names the rule.
    NoCandidate { why: String },
    /// Committed and pushed.
    Promoted {
        from: String,
        to: String,
        commit: String,
        /// When the image was pushed to the registry.
        pushed_at: Option<OffsetDateTime>,
        /// A rollback, and what caused it.
        rollback: Option<crate::rollback::Cause>,
    },
    /// A pull request proposes the change; the branch is unchanged until
    /// someone merges it.
    Proposed {
        from: String,
        to: String,
        url: String,
        pushed_at: Option<OffsetDateTime>,
        action: RequestAction,
    },
    /// The change waits: on the source env's soak time, or because a
    /// person declined the same proposal. `candidate` is what it waits to
    /// take, when one is known.
    Waiting {
        reason: String,
        candidate: Option<String>,
    },
    /// Dry run: this change would be made, this way.
    WouldPromote {
        from: String,
        to: String,
        how: How,
        diff: String,
        /// A rollback, and what caused it.
        rollback: Option<crate::rollback::Cause>,
    },
    /// The chosen tag moved or vanished between listing and writing; the
    /// next cycle decides again from a fresh listing.
    Deferred { reason: String, candidate: String },
    /// This target could not be reconciled; others were not affected.
    Failed { stage: Stage, error: String },
}

impl Outcome {
    /// A fixed label, for counts, logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Unchanged => "unchanged",
            Outcome::NoCandidate { .. } => "no_candidate",
            Outcome::Promoted { .. } => "promoted",
            Outcome::Proposed { .. } => "proposed",
            Outcome::Waiting { .. } => "waiting",
            Outcome::WouldPromote { .. } => "would_promote",
            Outcome::Deferred { .. } => "deferred",
            Outcome::Failed { .. } => "failed",
        }
    }

    /// The value the target is on its way to, when it is not there yet.
    pub fn candidate(&self) -> Option<&str> {
        match self {
            Outcome::Proposed { to, .. } | Outcome::WouldPromote { to, .. } => Some(to),
            Outcome::Waiting { candidate, .. } => candidate.as_deref(),
            Outcome::Deferred { candidate, .. } => Some(candidate),
            _ => None,
        }
    }

    /// Why the candidate (or any) is not on the branch yet.
    pub fn reason(&self) -> Option<String> {
        match self {
            Outcome::NoCandidate { why } => Some(why.clone()),
            Outcome::Proposed { .. } => Some("pull request open".into()),
            Outcome::Waiting { reason, .. } | Outcome::Deferred { reason, .. } => {
                Some(reason.clone())
            }
            Outcome::WouldPromote { .. } => Some("dry run".into()),
            _ => None,
        }
    }

    /// The request a proposal is in.
    pub fn pull_request(&self) -> Option<&str> {
        match self {
            Outcome::Proposed { url, .. } => Some(url),
            _ => None,
        }
    }

    /// A promotion decided but not on the branch: it waits on a soak, a
    /// person, or a review.
    pub fn pending(&self) -> bool {
        matches!(self, Outcome::Proposed { .. } | Outcome::Waiting { .. })
    }

    /// The (from, to, how) of a change made or, in a dry run, to be made.
    pub fn change(&self) -> Option<(&str, &str, &'static str)> {
        match self {
            Outcome::Promoted { from, to, .. } => Some((from, to, How::Commit.as_str())),
            Outcome::Proposed { from, to, .. } => Some((from, to, "pull-request")),
            Outcome::WouldPromote { from, to, how, .. } => Some((from, to, how.as_str())),
            _ => None,
        }
    }
}

/// One app/env's result.
#[derive(Clone, Debug)]
pub struct TargetReport {
    pub app: String,
    pub env: String,
    pub outcome: Outcome,
    /// What the env runs after the cycle, normalised to the tag (or the
    /// digest, for the digest strategy) whatever the file's format wraps
    /// it in; `None` when the file could not be read.
    pub current: Option<String>,
    /// The scalar as the file holds it (`reg/web:1.4.3`, `1.4.3@sha256:…`).
    pub value: Option<String>,
    /// The gate verdicts the decision rests on, best candidate first
    /// (empty for a target without gates).
    pub gates: Vec<GateResult>,
    /// The deployed image's presence and a DR target's replication wait.
    pub ecr: EcrNotes,
    /// The tags the target may not take (rolled back here or upstream).
    pub denials: Vec<super::holds::Denial>,
    /// The hold in force, described (`held by alice until …: why`).
    pub hold: Option<String>,
}

/// What ECR itself says about a target, beside its outcome: the image its
/// file points at is no longer served, or (a DR target) how long it has
/// waited for its image to be replicated. Read from the listings the
/// cycle has anyway; no extra call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EcrNotes {
    /// The deployed image is gone from the repository (deleted, expired by
    /// a lifecycle rule) or archived: why, in one line.
    pub missing: Option<String>,
    /// A DR target's wait for the source env's image to appear in its
    /// region, since the source came to run it; zero when not waiting,
    /// `None` for a target without a replica.
    pub replication_wait: Option<std::time::Duration>,
}

/// One gate's verdict on one candidate tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GateResult {
    pub gate: Gate,
    pub tag: String,
    pub verdict: Verdict,
}

impl fmt::Display for TargetReport {
    /// One line, as `once` prints it: `payments/dev: promoted 1.4.2 -> 1.4.3 (commit …)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let current = self.current.as_deref().unwrap_or("(unknown)");
        write!(f, "{}/{}: ", self.app, self.env)?;
        match &self.outcome {
            Outcome::Unchanged => write!(f, "up to date at {current}"),
            Outcome::NoCandidate { why } => write!(f, "no candidate {why}; keeping {current}"),
            Outcome::Promoted {
                from,
                to,
                commit,
                rollback: Some(cause),
                ..
            } => write!(
                f,
                "rolled back {from} -> {to} ({}) (commit {})",
                cause.as_str(),
                &commit[..commit.len().min(12)]
            ),
            Outcome::WouldPromote {
                from,
                to,
                rollback: Some(cause),
                ..
            } => write!(f, "would roll back {from} -> {to} ({})", cause.as_str()),
            Outcome::Promoted {
                from, to, commit, ..
            } => write!(
                f,
                "promoted {from} -> {to} (commit {})",
                &commit[..commit.len().min(12)]
            ),
            Outcome::Proposed { from, to, url, .. } => write!(f, "proposed {from} -> {to} ({url})"),
            Outcome::Waiting { reason, .. } => write!(f, "waiting: {reason}"),
            Outcome::WouldPromote {
                from,
                to,
                how: How::Commit,
                ..
            } => write!(f, "would promote {from} -> {to}"),
            Outcome::WouldPromote {
                from,
                to,
                how: How::PullRequest { branch },
                ..
            } => write!(
                f,
                "would open a pull request {from} -> {to} (branch {branch})"
            ),
            Outcome::Deferred { reason, .. } => write!(f, "deferred to the next cycle: {reason}"),
            Outcome::Failed { stage, error } => write!(f, "failed ({}): {error}", stage.as_str()),
        }
    }
}

/// Everything a cycle did.
#[derive(Clone, Debug, Default)]
pub struct CycleReport {
    pub targets: Vec<TargetReport>,
    /// Push attempts made (0 when nothing needed pushing).
    pub push_attempts: u32,
    /// Pushes the remote rejected because the branch moved.
    pub push_conflicts: u32,
    /// Registry pages read, summed over repositories.
    pub registry_pages: u32,
    /// Pull requests closed because the base already holds their values.
    pub requests_closed: u32,
    /// Every preview environment's decision (`[[apps.previews]]`).
    pub previews: Vec<super::preview::Report>,
    /// The apps whose previews were decided this cycle (their listing was
    /// read): a preview of theirs missing from `previews` no longer exists.
    pub preview_apps: Vec<String>,
}

impl CycleReport {
    /// True when any target failed.
    pub fn any_failed(&self) -> bool {
        self.targets
            .iter()
            .any(|t| matches!(t.outcome, Outcome::Failed { .. }))
            || self.previews.iter().any(|p| p.action == "failed")
    }

    /// Outcomes counted by kind, for the one-line summary after a cycle.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for t in &self.targets {
            *counts.entry(t.outcome.kind()).or_insert(0) += 1;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(outcome: Outcome) -> TargetReport {
        TargetReport {
            app: "a".into(),
            env: "prod".into(),
            outcome,
            current: Some("1.0.0".into()),
            value: Some("reg/a:1.0.0".into()),
            gates: Vec::new(),
            ecr: EcrNotes::default(),
            denials: Vec::new(),
            hold: None,
        }
    }

    #[test]
    fn lines_name_the_tag_not_the_reference() {
        assert_eq!(
            report(Outcome::Unchanged).to_string(),
            "a/prod: up to date at 1.0.0"
        );
        let would = report(Outcome::WouldPromote {
            from: "1.0.0".into(),
            to: "1.1.0".into(),
            how: How::PullRequest {
                branch: "tagwatch/a/prod".into(),
            },
            diff: String::new(),
            rollback: None,
        });
        assert_eq!(
            would.to_string(),
            "a/prod: would open a pull request 1.0.0 -> 1.1.0 (branch tagwatch/a/prod)"
        );
        assert_eq!(
            would.outcome.change(),
            Some(("1.0.0", "1.1.0", "pull-request"))
        );
    }

    #[test]
    fn a_waiting_target_shows_its_candidate() {
        let waiting = Outcome::Waiting {
            reason: "soak".into(),
            candidate: Some("1.1.0".into()),
        };
        assert_eq!(waiting.candidate(), Some("1.1.0"));
        assert!(waiting.pending());
        assert_eq!(waiting.reason().as_deref(), Some("soak"));
    }
}
