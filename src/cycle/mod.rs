//! One cycle: list each repository once, decide every app and env, carry
//! the decisions out (one push), propose what goes by pull request, and
//! report.
//!
//! ```text
//! list     registry, once per repository, concurrently   (list.rs)
//!   ║ sync the clone meanwhile                            (write::prepare)
//! decide   plan each target, pure, in chain order         (decide.rs → plan.rs, source.rs)
//!   ↻ confirm moved tags, fetch the gate facts plan asked
//!     for (scans, signatures), decide again               (write.rs)
//! write    commit each change, push once; rejected → sync and decide again
//! propose  build proposal branches, then the forge        (propose/)
//! report   one outcome per target                          (report.rs)
//! ```
//!
//! Each step only fetches facts for the next or carries a decision out:
//! `plan` is the one place a target is decided, and a dry run runs every
//! step up to writing, so it reports exactly what a real cycle would do.

mod decide;
mod export;
pub mod holds;
mod list;
pub mod plan;
pub mod preview;
mod preview_facts;
pub mod propose;
pub mod report;
pub mod source;
#[cfg(test)]
mod table_facts;
mod write;

use std::collections::HashMap;
use std::sync::Arc;

use time::OffsetDateTime;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::forge::Forge;
use crate::prometheus::Prometheus;
use crate::registry::Registry;
use decide::Decision;
use plan::Step;
use propose::settle::Request;

pub use decide::Worktree;
pub use export::export;
pub use report::{
    CycleReport, EcrNotes, GateResult, How, Mode, Outcome, RequestAction, Stage, TargetReport,
};
pub use write::SharedCheckout;

/// The peers and the clock one cycle works with.
#[derive(Clone)]
pub struct Peers {
    pub registry: Arc<dyn Registry>,
    /// For `update = "pull-request"` targets; `None` without `[forge]`.
    pub forge: Option<Arc<dyn Forge>>,
    /// For `analysis` gates; `None` without `[prometheus]`.
    pub prometheus: Option<Arc<dyn Prometheus>>,
    /// For the Argo CD health gate; `None` without `[argocd]`.
    pub argocd: Option<Arc<dyn crate::argocd::ArgoCd>>,
    /// "Now" for `min_age`, soak times and commit dates; `None` is the
    /// system clock. Fixed by tests and by `--now` drills.
    pub now: Option<OffsetDateTime>,
}

/// Runs one cycle over every app in `config`.
pub async fn run_cycle(
    config: Arc<Config>,
    peers: Peers,
    checkout: SharedCheckout,
    mode: Mode,
) -> CycleReport {
    // The clone is brought up to date while the registry is listed: the
    // two wait on different peers, and the listing is the longer wait, so
    // the fetch (or the first clone) costs the cycle nothing extra.
    let synced = {
        let (config, checkout) = (Arc::clone(&config), Arc::clone(&checkout));
        tokio::task::spawn_blocking(move || {
            let mut guard = checkout.lock().unwrap_or_else(|e| e.into_inner());
            write::prepare(&config, &mut guard)
        })
    };
    // One clock reading for the whole cycle, taken before the listing so
    // that each repository's candidates can be chosen as soon as it is in.
    let now = peers.now.unwrap_or_else(OffsetDateTime::now_utc);
    let (listings, preferred) =
        list::list_repositories(&config, Arc::clone(&peers.registry), now).await;
    let registry_pages = list::pages_of(&listings);
    let synced = synced.await.unwrap_or_else(|e| {
        Err(crate::gitops::GitError::Local {
            path: config.git.checkout_dir.clone(),
            message: format!("the git task panicked: {e}"),
        })
    });
    let inputs = write::Inputs {
        config: Arc::clone(&config),
        listings: Arc::new(listings),
        preferred: Arc::new(preferred),
        registry: Arc::clone(&peers.registry),
        prometheus: peers.prometheus.clone(),
        argocd: peers.argocd.clone(),
        checkout: Arc::clone(&checkout),
        mode,
        now,
        forge: peers.forge.clone(),
    };
    let written = write::write(&inputs, synced).await;

    let mut report = CycleReport {
        registry_pages,
        ..CycleReport::default()
    };
    let written = match written {
        Ok(written) => written,
        Err(e) => {
            warn!(kind = e.kind(), error = %e, "git");
            report.targets = all_failed(&config, &e.to_string());
            discard_if_damaged(&checkout).await;
            return report;
        }
    };
    report.push_attempts = written.push_attempts;
    report.push_conflicts = written.push_conflicts;
    report.preview_apps = config
        .apps
        .iter()
        .filter(|a| !a.previews.is_empty())
        .filter(|a| matches!(inputs.listings.get(&a.list_key()), Some(Ok(_))))
        .map(|a| a.name.clone())
        .collect();
    report.previews = written
        .previews
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let commit = written.preview_commits.get(&i).cloned();
            let unpushed = written.unpushed.as_ref().map(|e| e.to_string());
            let mut report = preview::Report::of(p, mode == Mode::DryRun, commit, unpushed);
            if let (Mode::DryRun, Some(new)) = (mode, p.new_content()) {
                report.diff = unified_diff(&p.old, new, p.file.as_str());
            }
            report
        })
        .collect();

    // Proposals are built on the pushed head, so only when the push went.
    let mut proposals = Proposals::default();
    let proposing = written.decisions.iter().any(|d| d.branch.is_some());
    if mode == Mode::Apply && written.unpushed.is_none() && proposing {
        proposals = propose(&config, &peers, &checkout, &written.decisions, now).await;
        report.requests_closed = proposals.closed;
    }
    if mode == Mode::DryRun && proposing {
        proposals = preview(&config, &peers, &checkout, &written.decisions, now).await;
    }
    discard_if_damaged(&checkout).await;
    report.targets = written
        .decisions
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            let commit = written.commits.get(&i).cloned();
            let unpushed = written.unpushed.as_ref().map(|e| e.to_string());
            outcome_of(d, mode, commit, unpushed, &mut proposals)
        })
        .collect();
    report
}

/// The forge stage's results, by target.
#[derive(Default)]
struct Proposals {
    results: HashMap<propose::TargetId, Request>,
    closed: u32,
}

async fn propose(
    config: &Arc<Config>,
    peers: &Peers,
    checkout: &SharedCheckout,
    decisions: &[Decision],
    now: OffsetDateTime,
) -> Proposals {
    let built = build(config, checkout, decisions, now, true).await;
    let mut out = Proposals::default();
    for (id, error) in built.failed {
        out.results.insert(id, Request::NotBuilt { error });
    }
    if built.plans.is_empty() && built.settled.is_empty() {
        return out;
    }
    let Some(forge) = &peers.forge else {
        // Refused at load; a config built in code could still get here.
        for plan in &built.plans {
            for m in &plan.members {
                out.results.insert(
                    (m.app.clone(), m.target.env.clone()),
                    Request::Failed {
                        error: "pull-request targets without a [forge]".into(),
                    },
                );
            }
        }
        return out;
    };
    let settlement = propose::settle(forge.as_ref(), &built.plans, &built.settled).await;
    out.closed = settlement.closed;
    out.results.extend(settlement.requests);
    out
}

/// [`propose::build`] on a blocking thread with the clone locked; with
/// `write` false only works out what it would build.
async fn build(
    config: &Arc<Config>,
    checkout: &SharedCheckout,
    decisions: &[Decision],
    now: OffsetDateTime,
    write: bool,
) -> propose::Built {
    let (config, checkout) = (Arc::clone(config), Arc::clone(checkout));
    let decisions = decisions.to_vec();
    tokio::task::spawn_blocking(move || {
        let mut guard = checkout.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_mut() {
            Some(checkout) => propose::build(&config, checkout, &decisions, now, write),
            None => propose::Built::default(),
        }
    })
    .await
    .unwrap_or_default()
}

/// For a dry run: the requests a person declined, as the real run would
/// find them (read-only: nothing is built, pushed or sent).
async fn preview(
    config: &Arc<Config>,
    peers: &Peers,
    checkout: &SharedCheckout,
    decisions: &[Decision],
    now: OffsetDateTime,
) -> Proposals {
    let Some(forge) = &peers.forge else {
        return Proposals::default();
    };
    let built = build(config, checkout, decisions, now, false).await;
    let mut out = Proposals::default();
    for (id, reason) in propose::declined(forge.as_ref(), &built.plans).await {
        out.results.insert(id, Request::Declined { reason });
    }
    out
}

/// What one decision came to, once written (or not) and proposed (or not).
fn outcome_of(
    d: Decision,
    mode: Mode,
    commit: Option<String>,
    unpushed: Option<String>,
    proposals: &mut Proposals,
) -> TargetReport {
    // The target's span, as every per-target line has carried it: log
    // queries select on `span.app` and `span.env`.
    let span =
        tracing::info_span!("target", app = %d.app, env = %d.env, repository = %d.repository);
    let _entered = span.enter();
    let held = d.held.clone();
    let gates = d.gates.clone();
    let mut ecr = d.ecr.clone();
    let (mut current, mut value) = (
        held.as_ref().map(|h| h.tag.clone()),
        held.as_ref().map(|h| h.value.clone()),
    );
    let failed = |stage, error: String| {
        // A failed listing was logged once, for its repository; its
        // targets repeat it only at debug.
        if stage == Stage::Registry {
            debug!(stage = Stage::as_str(stage), %error, "target failed");
        } else {
            warn!(stage = Stage::as_str(stage), %error, "target failed");
        }
        Outcome::Failed { stage, error }
    };
    let outcome = match d.step {
        Step::Keep => {
            debug!(current = ?current, "up to date");
            Outcome::Unchanged
        }
        Step::NoCandidate { why } => {
            info!(%why, "no candidate; nothing written");
            Outcome::NoCandidate { why }
        }
        Step::Wait { reason, candidate } => Outcome::Waiting { reason, candidate },
        Step::Deferred { reason, candidate } => {
            info!(%reason, "deferred to the next cycle");
            Outcome::Deferred { reason, candidate }
        }
        Step::Fail { stage, error } => failed(stage, error),
        Step::Change(change) => {
            let (from, to) = (change.promotion.from, change.promotion.to);
            let pushed_at = change.image.pushed_at;
            match (mode, d.branch) {
                (Mode::DryRun, branch) => {
                    match proposals.results.remove(&(d.app.clone(), d.env.clone())) {
                        Some(Request::Declined { reason }) => Outcome::Waiting {
                            reason,
                            candidate: Some(to),
                        },
                        _ => Outcome::WouldPromote {
                            how: branch.map_or(How::Commit, |branch| How::PullRequest { branch }),
                            diff: unified_diff(&change.old, &change.content, &d.file),
                            from,
                            to,
                            rollback: change.rollback.as_ref().map(|r| r.cause),
                        },
                    }
                }
                (Mode::Apply, None) => match (commit, unpushed) {
                    (Some(commit), None) => {
                        current = Some(to.clone());
                        value = Some(change.value);
                        // It points at the image just chosen from the listing.
                        ecr.missing = None;
                        Outcome::Promoted {
                            from,
                            to,
                            commit,
                            pushed_at,
                            rollback: change.rollback.as_ref().map(|r| r.cause),
                        }
                    }
                    (_, Some(error)) => failed(Stage::Git, error),
                    (None, None) => failed(Stage::Git, "the change was not committed".into()),
                },
                // A proposal is built only after the branch was pushed.
                (Mode::Apply, Some(_)) if unpushed.is_some() => {
                    failed(Stage::Git, unpushed.unwrap_or_default())
                }
                (Mode::Apply, Some(_)) => {
                    match proposals.results.remove(&(d.app.clone(), d.env.clone())) {
                        Some(Request::Open { url, action }) => Outcome::Proposed {
                            from,
                            to,
                            url,
                            pushed_at,
                            action,
                        },
                        Some(Request::Declined { reason }) => Outcome::Waiting {
                            reason,
                            candidate: Some(to),
                        },
                        Some(Request::Failed { error }) => failed(Stage::Forge, error),
                        Some(Request::NotBuilt { error }) => failed(Stage::Git, error),
                        None => failed(Stage::Forge, "no pull request was asked for".into()),
                    }
                }
            }
        }
    };
    TargetReport {
        app: d.app,
        env: d.env,
        outcome,
        current,
        value,
        gates,
        ecr,
        denials: d.denials,
        hold: d.hold,
    }
}

fn all_failed(config: &Config, error: &str) -> Vec<TargetReport> {
    config
        .apps
        .iter()
        .flat_map(|app| app.targets.iter().map(move |t| (app, t)))
        .map(|(app, t)| TargetReport {
            app: app.name.clone(),
            env: t.env.clone(),
            current: None,
            value: None,
            gates: Vec::new(),
            ecr: EcrNotes::default(),
            denials: Vec::new(),
            hold: None,
            outcome: Outcome::Failed {
                stage: Stage::Git,
                error: error.to_string(),
            },
        })
        .collect()
}

async fn discard_if_damaged(checkout: &SharedCheckout) {
    let checkout = Arc::clone(checkout);
    let _ = tokio::task::spawn_blocking(move || {
        let mut guard = checkout.lock().unwrap_or_else(|e| e.into_inner());
        write::discard_if_damaged(&mut guard);
    })
    .await;
}

fn unified_diff(old: &[u8], new: &[u8], file: &str) -> String {
    let old = String::from_utf8_lossy(old);
    let new = String::from_utf8_lossy(new);
    similar::TextDiff::from_lines(old.as_ref(), new.as_ref())
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{file}"), &format!("b/{file}"))
        .to_string()
}
