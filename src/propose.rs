//! Pull requests for targets with `update = "pull-request"`: which branch a
//! change goes on, what the request says, and bringing the forge in line.
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
//! This module owns that policy. Git mechanics are [`crate::gitops`]'s, the
//! forge's API is [`crate::forge`]'s, and deciding values is
//! [`crate::reconcile`]'s.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use time::OffsetDateTime;
use tracing::{info, warn};

use crate::config::{App, Config, ProposalOptions, Target};
use crate::forge::{Forge, Proposal, State};
use crate::gitops::{Checkout, PROPOSAL_PREFIX};
use crate::manifest;
use crate::metrics;
use crate::reconcile::{CycleReport, Outcome, Stage};
use crate::trailers::{Location, Promotion, format_time};

/// One target's change, bound for a proposal branch.
#[derive(Clone, Debug)]
pub struct Member {
    pub app: String,
    pub repository: String,
    pub target: Target,
    pub promotion: Promotion,
    /// The scalar's new value, as the target's format renders it.
    pub value: String,
    /// With `promote_from`: the source env and since when it runs the tag.
    pub source: Option<(String, Option<OffsetDateTime>)>,
    /// The target's place in the cycle report.
    pub report_index: usize,
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

/// The branch a target's proposal goes on.
pub fn branch(app: &str, target: &Target) -> String {
    let owner = target.group.as_deref().unwrap_or(app);
    format!("{PROPOSAL_PREFIX}{owner}/{}", target.env)
}

/// Collects a cycle's proposals while targets are decided.
#[derive(Default)]
pub struct Builder {
    members: BTreeMap<String, Vec<Member>>,
    /// Branch → why its targets need nothing.
    settled: BTreeMap<String, Vec<String>>,
}

impl Builder {
    pub fn add(&mut self, member: Member) {
        let branch = branch(&member.app, &member.target);
        self.members.entry(branch).or_default().push(member);
    }

    /// Notes that this target's file already holds `current`, the value it
    /// would propose (or something newer).
    pub fn settle(&mut self, app: &App, target: &Target, current: &str) {
        self.settled
            .entry(branch(&app.name, target))
            .or_default()
            .push(format!(
                "{} {} already runs {current}",
                app.name, target.env
            ));
    }

    /// Builds and pushes the branches that need it, on the local branch's
    /// head (which the cycle has just pushed). Failures land in `report`.
    pub fn build(
        self,
        config: &Config,
        checkout: &mut Checkout,
        now: OffsetDateTime,
        mut report: CycleReport,
    ) -> (CycleReport, Vec<Plan>, Vec<Settled>) {
        let base = config.git.branch.clone();
        let settled = self
            .settled
            .into_iter()
            .filter(|(b, _)| !self.members.contains_key(b))
            .filter(|(b, _)| checkout.remote_branch(b).is_some())
            .map(|(branch, why)| Settled {
                branch,
                base: base.clone(),
                why: why.join("; "),
            })
            .collect();
        let head = match checkout.head() {
            Ok(head) => head,
            Err(e) => {
                let all: Vec<Member> = self.members.into_values().flatten().collect();
                fail(&mut report, &all, Stage::Git, &e.to_string());
                return (report, Vec::new(), settled);
            }
        };
        let mut plans = Vec::new();
        let mut rebuilt = Vec::new();
        for (branch, members) in self.members {
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
            if needs_build {
                if let Err(e) = rebuild(checkout, &branch, head, &members, now) {
                    fail(&mut report, &members, Stage::Git, &e);
                    continue;
                }
                rebuilt.push(branch.clone());
            }
            plans.push(Plan {
                proposal: Proposal {
                    title: title(&members),
                    body: body(&members, &base, now),
                    options: options(&members),
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
                        plans.into_iter().partition(|p| p.rebuilt);
                    for plan in failed {
                        fail(&mut report, &plan.members, Stage::Git, &e.to_string());
                    }
                    plans = kept;
                }
            }
        }
        for plan in plans.iter_mut().filter(|p| p.rebuilt) {
            plan.tip = checkout
                .start_branch_tip(&plan.proposal.branch)
                .map(|t| t.to_string());
        }
        (report, plans, settled)
    }
}

/// Cuts `branch` from `head` and commits each member's change on it, each
/// applied to the file as the branch holds it (two apps may share a file).
fn rebuild(
    checkout: &mut Checkout,
    branch: &str,
    head: crate::gitops::CommitId,
    members: &[Member],
    now: OffsetDateTime,
) -> Result<(), String> {
    let refname = checkout
        .start_branch(branch, head)
        .map_err(|e| e.to_string())?;
    for m in members {
        let t = &m.target;
        let file = checkout
            .read_at(&refname, &t.file)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{}: no such file on the branch", t.file))?;
        let edited = match &t.kustomize {
            Some(k) => manifest::set_kustomize_image(&file, &k.image, k.field, &m.value),
            None => manifest::set(&file, &t.key, &t.document, &m.value),
        }
        .map_err(|e| format!("{}: {}: {e}", t.file, t.key))?;
        let Some(content) = edited else { continue };
        let message = m.promotion.message(&Location {
            file: t.file.as_str(),
            key: &t.key.to_string(),
        });
        checkout
            .commit_on(&refname, &t.file, &content, &message, now)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn fail(report: &mut CycleReport, members: &[Member], stage: Stage, error: &str) {
    for m in members {
        warn!(app = %m.app, env = %m.target.env, stage = stage.as_str(), %error, "target failed");
        if let Some(t) = report.targets.get_mut(m.report_index) {
            t.outcome = Outcome::Failed {
                stage,
                error: error.to_string(),
            };
        }
    }
}

/// `payments: promote prod to 1.4.3`, or for a group
/// `backend: promote prod (payments 1.4.3, orders 2.0.1)`.
pub fn title(members: &[Member]) -> String {
    match members {
        [one] => format!(
            "{}: promote {} to {}",
            one.app, one.target.env, one.promotion.to
        ),
        many => {
            let group = many[0].target.group.as_deref().unwrap_or(&many[0].app);
            let list: Vec<String> = many
                .iter()
                .map(|m| format!("{} {}", m.app, m.promotion.to))
                .collect();
            format!(
                "{group}: promote {} ({})",
                many[0].target.env,
                list.join(", ")
            )
        }
    }
}

/// The request's Markdown: a table of the changes, where each value comes
/// from and how long it has run there, and a link to each image.
pub fn body(members: &[Member], base: &str, now: OffsetDateTime) -> String {
    let mut b = String::new();
    let _ = writeln!(
        b,
        "tagwatch proposes this promotion. Merging it deploys it; closing it declines these versions (a newer candidate opens a new request).\n"
    );
    let _ = writeln!(b, "| app | env | file | from | to | digest | pushed at |");
    let _ = writeln!(b, "|---|---|---|---|---|---|---|");
    for m in members {
        let p = &m.promotion;
        let _ = writeln!(
            b,
            "| {} | {} | `{}` | `{}` | `{}` | `{}` | {} |",
            p.app,
            p.env,
            m.target.file,
            p.from,
            p.to,
            p.digest,
            p.pushed_at
                .map(format_time)
                .unwrap_or_else(|| "unknown".into()),
        );
    }
    let _ = writeln!(b);
    for m in members {
        let p = &m.promotion;
        let origin = match &m.source {
            Some((env, Some(since))) => {
                let ran =
                    std::time::Duration::from_secs((now - *since).whole_seconds().max(0) as u64);
                format!(
                    "{env} has run `{}` for {} (since {})",
                    p.to,
                    humantime::format_duration(ran),
                    format_time(*since)
                )
            }
            Some((env, None)) => format!("taken from {env}"),
            None => "the registry's newest match for the policy".to_string(),
        };
        let _ = writeln!(
            b,
            "- **{}**: {origin}. [The image in the ECR console]({})",
            p.app,
            console_url(&p.image, &p.digest)
        );
    }
    let _ = writeln!(
        b,
        "\nEach commit carries the `Tagwatch-*` trailers, so once merged into `{base}`, `tagwatch history` lists it."
    );
    b
}

/// The union of the members' labels, reviewers and assignees; draft or
/// auto-merge if any member asks for it.
fn options(members: &[Member]) -> ProposalOptions {
    let mut o = ProposalOptions::default();
    for m in members {
        let p = &m.target.proposal;
        for (all, more) in [
            (&mut o.labels, &p.labels),
            (&mut o.reviewers, &p.reviewers),
            (&mut o.assignees, &p.assignees),
        ] {
            for item in more {
                if !all.contains(item) {
                    all.push(item.clone());
                }
            }
        }
        o.draft |= p.draft;
        o.auto_merge |= p.auto_merge;
    }
    o
}

/// The ECR console page of an image, from its registry host
/// (`ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO`) and digest.
pub fn console_url(image: &str, digest: &str) -> String {
    let (host, repository) = image.split_once('/').unwrap_or((image, ""));
    let mut parts = host.split('.');
    let account = parts.next().unwrap_or_default();
    let region = parts.nth(2).unwrap_or_default();
    format!(
        "https://{region}.console.aws.amazon.com/ecr/repositories/private/{account}/{repository}/_/image/{digest}/details?region={region}"
    )
}

/// Counts a request opened or updated: each member's promotion was
/// proposed now.
fn proposed(plan: &Plan, action: &str) {
    let m = metrics::get();
    m.pull_requests.with_label_values(&[action]).inc();
    for member in &plan.members {
        let env = member.target.env.as_str();
        m.promotions
            .with_label_values(&[member.app.as_str(), env, "pull-request"])
            .inc();
        if let Some(pushed) = member.promotion.pushed_at {
            let latency = (OffsetDateTime::now_utc() - pushed).as_seconds_f64();
            if latency >= 0.0 {
                m.push_to_promotion
                    .with_label_values(&[env])
                    .observe(latency);
            }
        }
    }
}

/// Brings the forge in line with the plans: a request per plan (found by
/// branch, opened if missing, retitled if rebuilt), and obsolete requests
/// closed. Fills each member's outcome with its request's URL.
pub async fn settle(
    forge: &dyn Forge,
    plans: &[Plan],
    settled: &[Settled],
    report: &mut CycleReport,
) {
    for plan in plans {
        let p = &plan.proposal;
        let outcome = async {
            let found = forge.find(&p.branch, &p.base).await?;
            Ok::<_, crate::forge::ForgeError>(match found {
                Some(pr) if pr.state == State::Open => {
                    // Opened, but its create answer was lost: decorate now.
                    if !p.options.labels.iter().all(|l| pr.labels.contains(l)) {
                        forge.decorate(&pr, p).await?;
                    }
                    // Rebuilt now, or rebuilt by a run that died before
                    // retitling: the title names the versions, so a stale
                    // one would tell the reviewer the wrong thing.
                    if plan.rebuilt || pr.title != p.title {
                        forge.update(&pr, p).await?;
                        info!(pr = %pr.url, branch = %p.branch, "updated pull request");
                        proposed(plan, "updated");
                    }
                    Ok(pr.url)
                }
                // Closed by a person with exactly this content: declined.
                // A newer candidate rebuilds the branch and asks again.
                Some(pr)
                    if !plan.rebuilt
                        && pr.state == State::Closed
                        && pr.head_sha.is_some()
                        && pr.head_sha == plan.tip =>
                {
                    Err(format!(
                        "declined: {} was closed without merging; waiting for a newer candidate",
                        pr.url
                    ))
                }
                _ => {
                    let pr = forge.open(p).await?;
                    info!(pr = %pr.url, branch = %p.branch, "opened pull request");
                    proposed(plan, "opened");
                    Ok(pr.url)
                }
            })
        }
        .await;
        for m in &plan.members {
            let Some(t) = report.targets.get_mut(m.report_index) else {
                continue;
            };
            t.outcome = match &outcome {
                Ok(Ok(url)) => Outcome::Proposed {
                    from: m.promotion.from.clone(),
                    to: m.promotion.to.clone(),
                    url: url.clone(),
                    pushed_at: m.promotion.pushed_at,
                },
                Ok(Err(reason)) => Outcome::Waiting {
                    reason: reason.clone(),
                },
                Err(e) => {
                    warn!(error = %e, branch = %p.branch, "forge");
                    Outcome::Failed {
                        stage: Stage::Forge,
                        error: e.to_string(),
                    }
                }
            };
        }
    }
    for s in settled {
        let closed = async {
            match forge.find(&s.branch, &s.base).await? {
                Some(pr) if pr.state == State::Open => {
                    let comment = format!(
                        "Closed by tagwatch: `{}` already holds what this proposed ({}).",
                        s.base, s.why
                    );
                    forge.close(&pr, &comment).await?;
                    info!(pr = %pr.url, why = %s.why, "closed superseded pull request");
                    metrics::get()
                        .pull_requests
                        .with_label_values(&["closed"])
                        .inc();
                    Ok(Some(pr.url))
                }
                _ => Ok::<_, crate::forge::ForgeError>(None),
            }
        }
        .await;
        if let Err(e) = closed {
            warn!(error = %e, branch = %s.branch, "could not close a superseded pull request");
        }
    }
}
