//! Pull requests for targets with `update = "pull-request"`: which branch a
//! change goes on, building and pushing that branch, and (in [`settle`])
//! bringing the forge in line.
//!
//! One branch per app and env (`tagwatch/<app>/<env>`), or per group and
//! env, always cut from the base branch's head. The branch is rebuilt from
//! the desired state, and force-pushed, only when what it proposes differs
//! from what it should propose; a base branch that moved on is not a reason
//! to churn a request under review. Whether a request exists is asked of
//! the forge by branch name, never remembered, so a restart cannot open a
//! duplicate. When the base branch already holds every value a branch
//! proposes (someone merged, or edited by hand), its open request is closed
//! with a comment saying so.
//!
//! The input is the cycle's decisions; the output is a result per target,
//! keyed by app and env, that the cycle folds into its report. Nothing
//! here decides a value or writes the report.

pub mod settle;
mod text;

use std::collections::{BTreeMap, BTreeSet};

use time::OffsetDateTime;
use tracing::{info, warn};

use super::decide::Decision;
use super::plan::Step;
use crate::config::{Config, Target};
use crate::forge::Proposal;
use crate::gitops::{Checkout, GitError};
use crate::manifest;
use crate::trailers::{Location, Promotion};

pub use settle::{Settlement, declined, settle};
pub use text::{body, console_url, title};

/// A target: app and env.
pub type TargetId = (String, String);

/// One target's change, bound for a proposal branch.
#[derive(Clone, Debug)]
pub struct Member {
    pub app: String,
    pub target: Target,
    pub promotion: Promotion,
    /// The scalar's new value, as the target's format renders it.
    pub value: String,
    /// With `promote_from`: the source env and since when it runs the tag.
    pub source: Option<(String, Option<OffsetDateTime>)>,
    /// The gates the proposed image passed, with what each found.
    pub passed: Vec<(crate::gate::Gate, String)>,
    /// A rollback, not a promotion: its trailers go on the commit.
    pub rollback: Option<crate::rollback::Order>,
}

impl Member {
    fn id(&self) -> TargetId {
        (self.app.clone(), self.target.env.clone())
    }
}

/// A branch whose request must exist and say what its members propose.
#[derive(Debug)]
pub struct Plan {
    pub proposal: Proposal,
    /// The branch was (re)built this cycle, so an open request's text is
    /// stale and a closed one was about other values.
    pub rebuilt: bool,
    /// The branch's commit on the remote after this cycle.
    pub tip: Option<String>,
    pub members: Vec<Member>,
}

/// A branch whose targets all hold their candidate already: any open
/// request on it is obsolete.
#[derive(Debug)]
pub struct Settled {
    pub branch: String,
    pub base: String,
    pub why: String,
}

/// What [`build`] made of a cycle's pull-request decisions.
#[derive(Debug, Default)]
pub struct Built {
    pub plans: Vec<Plan>,
    pub settled: Vec<Settled>,
    /// Targets whose branch could not be built or pushed, and why.
    pub failed: Vec<(TargetId, String)>,
}

/// Why a proposal branch could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("{file}: no such file on the branch")]
    Missing { file: String },
    #[error("{file}: {key}: {source}")]
    Edit {
        file: String,
        key: String,
        #[source]
        source: Box<manifest::EditError>,
    },
}

/// The branch a target's proposal goes on.
pub fn branch(app: &str, target: &Target) -> String {
    crate::config::proposal_branch(app, target)
}

/// Builds and pushes the proposal branches the decisions need, on the
/// local branch's head (which the cycle has just pushed). With `write`
/// false (a dry run), only works out what it would build: each plan says
/// whether its branch would be rebuilt, and nothing is written.
pub fn build(
    config: &Config,
    checkout: &mut Checkout,
    decisions: &[Decision],
    now: OffsetDateTime,
    write: bool,
) -> Built {
    let base = config.git.branch.clone();
    let mut members: BTreeMap<String, Vec<Member>> = BTreeMap::new();
    // Branch → why its targets need nothing.
    let mut settled: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for d in decisions {
        let Some(branch) = &d.branch else { continue };
        let target = &config.apps[d.at.0].targets[d.at.1];
        match &d.step {
            Step::Change(change) => members.entry(branch.clone()).or_default().push(Member {
                app: d.app.clone(),
                target: target.clone(),
                promotion: change.promotion.clone(),
                value: change.value.clone(),
                source: change.source.clone(),
                passed: change.passed.clone(),
                rollback: change.rollback.clone(),
            }),
            Step::Keep => {
                let current = d.held.as_ref().map(|h| h.tag.as_str()).unwrap_or_default();
                settled
                    .entry(branch.clone())
                    .or_default()
                    .push(format!("{} {} already runs {current}", d.app, d.env));
            }
            // No candidate because the better tag is denied, while the
            // request proposes what the env runs now (a rollback made on
            // the branch directly): nothing is left for it to do.
            Step::NoCandidate { .. } if !d.denials.is_empty() => {
                let current = d.held.as_ref().map(|h| h.tag.as_str()).unwrap_or_default();
                let proposed = match (checkout.remote_branch(branch), checkout.head()) {
                    (Some(tip), Ok(head)) => checkout.proposed(tip, head),
                    _ => Vec::new(),
                };
                if !proposed.is_empty() && proposed.iter().all(|p| p.to == current) {
                    settled
                        .entry(branch.clone())
                        .or_default()
                        .push(format!("{} {} already runs {current}", d.app, d.env));
                }
            }
            _ => {}
        }
    }
    let mut built = Built {
        settled: settled
            .into_iter()
            .filter(|(b, _)| !members.contains_key(b))
            .filter(|(b, _)| checkout.remote_branch(b).is_some())
            .map(|(branch, why)| Settled {
                branch,
                base: base.clone(),
                why: why.join("; "),
            })
            .collect(),
        ..Built::default()
    };
    let head = match checkout.head() {
        Ok(head) => head,
        Err(e) => {
            for m in members.into_values().flatten() {
                built.failed.push((m.id(), e.to_string()));
            }
            return built;
        }
    };
    let mut rebuilt = Vec::new();
    for (branch, members) in members {
        let wanted: BTreeSet<(String, String, String)> = members
            .iter()
            .map(|m| (m.app.clone(), m.target.env.clone(), m.promotion.to.clone()))
            .collect();
        let tip = checkout.remote_branch(&branch);
        let proposed: BTreeSet<(String, String, String)> = tip
            .map(|t| checkout.proposed(t, head))
            .unwrap_or_default()
            .into_iter()
            .map(|p| (p.app, p.env, p.to))
            .collect();
        let needs_build = proposed != wanted;
        if needs_build && write {
            if let Err(e) = rebuild(checkout, &branch, head, &members, now) {
                warn!(%branch, error = %e, "could not build the proposal branch");
                built
                    .failed
                    .extend(members.iter().map(|m| (m.id(), e.to_string())));
                continue;
            }
            rebuilt.push(branch.clone());
        }
        built.plans.push(Plan {
            proposal: Proposal {
                title: title(&members),
                body: body(&members, &base, now),
                options: text::options(&members),
                branch,
                base: base.clone(),
            },
            rebuilt: needs_build,
            tip: tip.map(|t| t.to_string()),
            members,
        });
    }
    if !rebuilt.is_empty() {
        match checkout.push_proposals(&rebuilt, &[]) {
            Ok(()) => info!(branches = rebuilt.len(), "pushed proposal branches"),
            Err(e) => {
                warn!(error = %e, "could not push proposal branches");
                let (failed, kept): (Vec<Plan>, Vec<Plan>) =
                    built.plans.into_iter().partition(|p| p.rebuilt);
                for plan in failed {
                    built
                        .failed
                        .extend(plan.members.iter().map(|m| (m.id(), e.to_string())));
                }
                built.plans = kept;
            }
        }
    }
    for plan in built.plans.iter_mut().filter(|p| p.rebuilt) {
        plan.tip = checkout
            .start_branch_tip(&plan.proposal.branch)
            .map(|t| t.to_string());
    }
    built
}

/// Cuts `branch` from `head` and commits each member's change on it, each
/// applied to the file as the branch holds it (two apps may share a file).
fn rebuild(
    checkout: &mut Checkout,
    branch: &str,
    head: crate::gitops::CommitId,
    members: &[Member],
    now: OffsetDateTime,
) -> Result<(), BuildError> {
    let refname = checkout.start_branch(branch, head)?;
    for m in members {
        let t = &m.target;
        let file = checkout
            .read_at(&refname, &t.file)?
            .ok_or_else(|| BuildError::Missing {
                file: t.file.to_string(),
            })?;
        let edited = match &t.kustomize {
            Some(k) => manifest::set_kustomize_image(&file, &k.image, k.field, &m.value),
            None => manifest::set(&file, &t.key, &t.document, &m.value),
        }
        .map_err(|source| BuildError::Edit {
            file: t.file.to_string(),
            key: t.key.to_string(),
            source: Box::new(source),
        })?;
        let Some(content) = edited else { continue };
        let mut message = m.promotion.message(&Location {
            file: t.file.as_str(),
            key: &t.key.to_string(),
        });
        if let Some(order) = &m.rollback {
            message.push_str(&order.trailers());
        }
        checkout.commit_on(&refname, &t.file, &content, &message, now)?;
    }
    Ok(())
}
