//! Bringing the forge in line with the cycle's proposal branches: a
//! request per branch (found by branch name, opened if missing, retitled
//! when rebuilt), and obsolete requests closed.

use tracing::{info, warn};

use super::{Plan, Settled, TargetId};
use crate::cycle::report::RequestAction;
use crate::forge::{Forge, ForgeError, State};

/// How one proposal went.
#[derive(Clone, Debug)]
pub enum Request {
    /// The request exists and says what the branch proposes.
    Open {
        url: String,
        action: RequestAction,
    },
    /// A person closed exactly this proposal: declined until a newer
    /// candidate rebuilds the branch.
    Declined {
        reason: String,
    },
    Failed {
        error: String,
    },
    /// The proposal branch could not be built or pushed (git), so the
    /// forge was not asked.
    NotBuilt {
        error: String,
    },
}

/// What the forge stage did, per target.
#[derive(Debug, Default)]
pub struct Settlement {
    pub requests: Vec<(TargetId, Request)>,
    /// Requests closed because the base already holds what they proposed.
    pub closed: u32,
}

/// Asks the forge about each plan's branch and makes it so; closes the
/// requests of settled branches.
pub async fn settle(forge: &dyn Forge, plans: &[Plan], settled: &[Settled]) -> Settlement {
    let mut out = Settlement::default();
    for plan in plans {
        let request = match request(forge, plan).await {
            Ok(request) => request,
            Err(e) => {
                warn!(error = %e, branch = %plan.proposal.branch, "forge");
                Request::Failed {
                    error: e.to_string(),
                }
            }
        };
        for m in &plan.members {
            out.requests.push((m.id(), request.clone()));
        }
    }
    for s in settled {
        match close(forge, s).await {
            Ok(true) => out.closed += 1,
            Ok(false) => {}
            Err(e) => {
                warn!(error = %e, branch = %s.branch, "could not close a superseded pull request")
            }
        }
    }
    out
}

async fn request(forge: &dyn Forge, plan: &Plan) -> Result<Request, ForgeError> {
    let p = &plan.proposal;
    Ok(match forge.find(&p.branch, &p.base).await? {
        Some(pr) if pr.state == State::Open => {
            // Opened, but its create answer was lost: decorate now.
            if !p.options.labels.iter().all(|l| pr.labels.contains(l)) {
                forge.decorate(&pr, p).await?;
            }
            // Rebuilt now, or rebuilt by a run that died before
            // retitling: the title names the versions, so a stale one
            // would tell the reviewer the wrong thing.
            let action = if plan.rebuilt || pr.title != p.title {
                forge.update(&pr, p).await?;
                info!(pr = %pr.url, branch = %p.branch, "updated pull request");
                RequestAction::Updated
            } else {
                RequestAction::Kept
            };
            Request::Open {
                url: pr.url,
                action,
            }
        }
        Some(pr) if is_declined(&pr, plan) => Request::Declined {
            reason: declined_reason(&pr),
        },
        _ => {
            let pr = forge.open(p).await?;
            info!(pr = %pr.url, branch = %p.branch, "opened pull request");
            Request::Open {
                url: pr.url,
                action: RequestAction::Opened,
            }
        }
    })
}

/// Closed by a person with exactly this content: declined. A newer
/// candidate rebuilds the branch and asks again.
fn is_declined(pr: &crate::forge::PullRequest, plan: &Plan) -> bool {
    !plan.rebuilt && pr.state == State::Closed && pr.head_sha.is_some() && pr.head_sha == plan.tip
}

fn declined_reason(pr: &crate::forge::PullRequest) -> String {
    format!(
        "declined: {} was closed without merging; waiting for a newer candidate",
        pr.url
    )
}

/// For a dry run: which plans' requests a person declined, asked of the
/// forge read-only, so the dry run says "waiting" where the real run
/// would. A forge that cannot answer is taken as not declined.
pub async fn declined(forge: &dyn Forge, plans: &[Plan]) -> Vec<(TargetId, String)> {
    let mut out = Vec::new();
    for plan in plans {
        let p = &plan.proposal;
        match forge.find(&p.branch, &p.base).await {
            Ok(Some(pr)) if is_declined(&pr, plan) => {
                let reason = declined_reason(&pr);
                out.extend(plan.members.iter().map(|m| (m.id(), reason.clone())));
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, branch = %p.branch, "dry run: could not ask the forge"),
        }
    }
    out
}

/// Closes `s`'s request if one is open; whether it did.
async fn close(forge: &dyn Forge, s: &Settled) -> Result<bool, ForgeError> {
    match forge.find(&s.branch, &s.base).await? {
        Some(pr) if pr.state == State::Open => {
            let comment = format!(
                "Closed by tagwatch: `{}` already holds what this proposed ({}).",
                s.base, s.why
            );
            forge.close(&pr, &comment).await?;
            info!(pr = %pr.url, why = %s.why, "closed superseded pull request");
            Ok(true)
        }
        _ => Ok(false),
    }
}
