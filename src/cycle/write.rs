//! Carrying a cycle's decisions out on the branch: decide, confirm the
//! images that need it and fetch the gate facts the decisions ask for,
//! commit, push once; on a rejected push, sync and
//! start over from the new head. The retry policy lives here and only here.
//!
//! The desired state is recomputed from the listings and the branch's
//! files on every attempt, never replayed as diffs, so a person's commit
//! to another line of the same file survives a retry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tracing::{error, info, warn};

use super::decide::{self, Answers, Ask, Decided, Decision};
use super::list::{Listings, Preferred};
use super::plan::{Fact, GateFacts, Need, Step};
use super::preview::Planned;
use super::preview_facts;
use super::report::Mode;
use crate::argocd::{ArgoCd, ArgoError, ErrorKind as ArgoErrorKind};
use crate::config::{Config, Update};
use crate::gitops::{Checkout, GitError};
use crate::prometheus::{Prometheus, PrometheusError};
use crate::registry::{Registry, scan_cache};
use crate::trailers::Location;

/// The persistent clone, opened on first use. A std `Mutex`, because it is
/// only ever locked inside a blocking task, never across an `.await`.
pub type SharedCheckout = Arc<Mutex<Option<Checkout>>>;

/// Decide passes per attempt: the first finds the images to confirm, the
/// second decides with the answers. A third covers a chain whose source
/// was deferred; anything still unconfirmed after it waits a cycle.
const DECIDE_PASSES: usize = 3;
/// Extra passes for the gates: each walks every gated target one
/// candidate further (its best candidate failed; the next is asked about).
/// A target whose gates are still undecided after them waits a cycle.
const GATE_PASSES: usize = 8;

/// What the cycle's inputs are, shared by every attempt.
pub struct Inputs {
    pub config: Arc<Config>,
    pub listings: Arc<Listings>,
    pub preferred: Arc<Preferred>,
    pub registry: Arc<dyn Registry>,
    /// For `analysis` gates; `None` without `[prometheus]`.
    pub prometheus: Option<Arc<dyn Prometheus>>,
    pub argocd: Option<Arc<dyn ArgoCd>>,
    pub checkout: SharedCheckout,
    pub mode: Mode,
    pub now: OffsetDateTime,
    /// For preview environments' pull-request states; `None` without `[forge]`.
    pub forge: Option<Arc<dyn crate::forge::Forge>>,
}

/// How the branch went.
pub struct Written {
    pub decisions: Vec<Decision>,
    /// The pushed commit of each decision that made one, by index.
    pub commits: HashMap<usize, String>,
    /// Why the decisions' commits did not land, when they did not.
    pub unpushed: Option<GitError>,
    pub push_attempts: u32,
    pub push_conflicts: u32,
    /// Every preview decision, in config order.
    pub previews: Vec<Planned>,
    /// The pushed commit of each preview change, by index.
    pub preview_commits: HashMap<usize, String>,
}

/// Decides, commits and pushes; `synced` is how the first sync went. An
/// `Err` is a git failure before anything could be decided.
pub async fn write(inputs: &Inputs, synced: Result<(), GitError>) -> Result<Written, GitError> {
    synced?;
    let attempts = inputs.config.git.push_attempts.max(1);
    let mut conflicts = 0;
    let mut attempt = 0;
    // Asked once per cycle: a retried push does not ask the forge again.
    let mut states = preview_facts::States::new();
    loop {
        attempt += 1;
        if attempt > 1 {
            blocking(inputs, |config, slot, _| prepare(config, slot)).await?;
        }
        // The write phase, as benchmarks measure it: from the first file
        // read to the push returned.
        let writing = std::time::Instant::now();
        let decided = decide_confirmed(inputs).await?;
        let previews = decide_previews(inputs, &mut states).await?;
        if inputs.mode == Mode::DryRun {
            return Ok(Written {
                decisions: decided,
                commits: HashMap::new(),
                unpushed: None,
                push_attempts: 0,
                push_conflicts: 0,
                previews,
                preview_commits: HashMap::new(),
            });
        }
        let listings = Arc::clone(&inputs.listings);
        let (decided, previews, committed) = blocking(inputs, move |config, slot, now| {
            let checkout = slot.as_mut().ok_or_else(|| no_checkout(config))?;
            // One batch: the commits are built in memory and the branch
            // moves once, after they are stored (see gitops' `batch`).
            let committed = checkout.batched(|checkout| {
                let commits = commit(config, checkout, &decided, now)?;
                preview_facts::commit(config, checkout, &listings, &previews, now)
                    .map(|p| (commits, p))
            });
            Ok((decided, previews, committed))
        })
        .await?;
        let mut written = Written {
            decisions: decided,
            commits: HashMap::new(),
            unpushed: None,
            push_attempts: 0,
            push_conflicts: conflicts,
            previews,
            preview_commits: HashMap::new(),
        };
        let (commits, preview_commits) = match committed {
            Ok((commits, p)) if commits.is_empty() && p.is_empty() => return Ok(written),
            Ok(both) => both,
            Err(e) => {
                written.unpushed = Some(e);
                return Ok(written);
            }
        };
        written.push_attempts = attempt;
        let pushed = blocking(inputs, |config, slot, _| {
            slot.as_mut().ok_or_else(|| no_checkout(config))?.push()
        })
        .await;
        match pushed {
            Ok(()) => {
                info!(commits = commits.len() + preview_commits.len(), attempt, write_elapsed = ?writing.elapsed(), "pushed");
                written.commits = commits;
                written.preview_commits = preview_commits;
                return Ok(written);
            }
            Err(GitError::Rejected { message, .. }) if attempt < attempts => {
                conflicts += 1;
                warn!(attempt, reason = %message, "push rejected; the branch moved, rebuilding on the new head");
                tokio::time::sleep(backoff(attempt)).await;
            }
            Err(e) => {
                if matches!(e, GitError::Rejected { .. }) {
                    written.push_conflicts += 1;
                }
                error!(error = %e, attempt, "push failed");
                written.unpushed = Some(e);
                return Ok(written);
            }
        }
    }
}

/// Decides every preview block: the branch's preview files (blocking),
/// the forge's word on the numbers not asked yet, then the pure plan.
async fn decide_previews(
    inputs: &Inputs,
    states: &mut preview_facts::States,
) -> Result<Vec<Planned>, GitError> {
    if inputs.config.apps.iter().all(|a| a.previews.is_empty()) {
        return Ok(Vec::new());
    }
    let blocks = blocking(inputs, |config, slot, _| {
        let checkout = slot.as_ref().ok_or_else(|| no_checkout(config))?;
        Ok(preview_facts::read_branch(config, checkout))
    })
    .await?;
    preview_facts::fetch_states(
        &inputs.config,
        inputs.forge.as_ref(),
        &inputs.listings,
        &blocks,
        states,
    )
    .await;
    Ok(preview_facts::decide(
        &inputs.config,
        &inputs.listings,
        &blocks,
        states,
        inputs.now,
    ))
}

/// Decides every target, asking the registry to confirm the images that
/// need it between passes (concurrently, never from a blocking thread).
///
/// Gate facts are fetched the same way: only for the images a decision
/// asks about (best first, one further per pass), never for the whole
/// listing. A target still asking after the last pass waits a cycle.
async fn decide_confirmed(inputs: &Inputs) -> Result<Vec<Decision>, GitError> {
    let mut answers = Answers::new();
    let gates = Arc::new(std::sync::RwLock::new(GateFacts::default()));
    let mut pass = 0;
    let mut confirm_passes = 0;
    loop {
        pass += 1;
        let given = answers.clone();
        let (listings, preferred) = (Arc::clone(&inputs.listings), Arc::clone(&inputs.preferred));
        let facts = Arc::clone(&gates);
        let decided: Decided = blocking(inputs, move |config, slot, now| {
            let checkout = slot.as_ref().ok_or_else(|| no_checkout(config))?;
            let facts = facts.read().unwrap_or_else(|e| e.into_inner());
            Ok(decide::decide(
                config, &listings, &preferred, checkout, &given, &facts, now,
            ))
        })
        .await?;
        if decided.asks.is_empty() && decided.needs.is_empty() {
            return Ok(decided.decisions);
        }
        if pass >= DECIDE_PASSES + GATE_PASSES
            || (decided.needs.is_empty() && confirm_passes == DECIDE_PASSES - 1)
        {
            return Ok(unconfirmed(decided.decisions, &answers));
        }
        if !decided.asks.is_empty() {
            confirm_passes += 1;
            answers.extend(confirm(&inputs.registry, decided.asks).await);
        }
        let fetched = fetch_gates(
            &inputs.registry,
            &inputs.prometheus,
            inputs.argocd.as_ref(),
            decided.needs,
        )
        .await;
        let mut facts = gates.write().unwrap_or_else(|e| e.into_inner());
        facts.scans.extend(fetched.scans);
        facts.referrers.extend(fetched.referrers);
        facts.cosign.extend(fetched.cosign);
        facts.analysis.extend(fetched.analysis);
        facts.argocd.extend(fetched.argocd);
    }
}

/// Reads the gate facts asked for, all at once. A final scan result is
/// kept for the life of the process ([`scan_cache`]); a pending one is
/// asked again next time.
async fn fetch_gates(
    registry: &Arc<dyn Registry>,
    prometheus: &Option<Arc<dyn Prometheus>>,
    argocd: Option<&Arc<dyn ArgoCd>>,
    needs: impl IntoIterator<Item = Need>,
) -> GateFacts {
    let mut reads = tokio::task::JoinSet::new();
    let mut facts = GateFacts::default();
    for need in needs {
        let key = (need.repository.clone(), need.digest.clone());
        if need.fact == Fact::Scan
            && let Some(scan) = scan_cache::get(&key.0, &key.1)
        {
            facts.scans.insert(key, Ok(scan));
            continue;
        }
        let registry = Arc::clone(registry);
        let prometheus = prometheus.clone();
        let argocd = argocd.cloned();
        reads.spawn(async move {
            let mut one = GateFacts::default();
            match need.fact {
                Fact::Scan => {
                    let scan = registry.scan_findings(&key.0, &key.1).await;
                    if let Ok(found) = &scan
                        && found.is_final()
                    {
                        scan_cache::put(&key.0, &key.1, found.clone());
                    }
                    one.scans.insert(key, scan);
                }
                Fact::Referrers => {
                    let referrers = registry.referrers(&key.0, &key.1).await;
                    one.referrers.insert(key, referrers);
                }
                Fact::Cosign => {
                    let signatures = registry.cosign_signatures(&key.0, &key.1).await;
                    one.cosign.insert(key, signatures);
                }
                Fact::Analysis => {
                    let query = need.query.unwrap_or_default();
                    let answer = match &prometheus {
                        Some(p) => p.query(&query).await,
                        None => Err(PrometheusError::NotConfigured),
                    };
                    if let Err(e) = &answer {
                        warn!(kind = e.kind(), error = %e, "analysis query");
                    }
                    one.analysis.insert(query, answer);
                }
                Fact::Argocd => {
                    let status = match &argocd {
                        Some(argocd) => argocd.application(&key.0).await,
                        // Config allows `argocd_app` only with `[argocd]`.
                        None => Err(ArgoError {
                            app: key.0.clone(),
                            kind: ArgoErrorKind::Transport,
                            message: "no [argocd] configured".into(),
                        }),
                    };
                    one.argocd.insert(key.0, status);
                }
            }
            one
        });
    }
    while let Some(joined) = reads.join_next().await {
        match joined {
            Ok(one) => {
                facts.scans.extend(one.scans);
                facts.referrers.extend(one.referrers);
                facts.cosign.extend(one.cosign);
                facts.analysis.extend(one.analysis);
                facts.argocd.extend(one.argocd);
            }
            Err(e) => error!(error = %e, "gate task panicked"),
        }
    }
    facts
}

/// Changes whose image the passes could not confirm wait a cycle.
fn unconfirmed(mut decisions: Vec<Decision>, answers: &Answers) -> Vec<Decision> {
    for d in &mut decisions {
        if let Step::Change(change) = &d.step
            && change.recheck
            && !answers.contains_key(&decide::ask(&d.repository, &change.image))
        {
            d.step = Step::Deferred {
                reason: format!(
                    "tag {} could not be re-checked this cycle",
                    change.image.tag
                ),
                candidate: change.promotion.to.clone(),
            };
        }
    }
    decisions
}

/// Reads each asked tag again, all at once: `None` when it still points
/// at the digest the listing said, otherwise why not.
async fn confirm(
    registry: &Arc<dyn Registry>,
    asks: impl IntoIterator<Item = Ask>,
) -> Vec<(Ask, Option<String>)> {
    let mut reads = tokio::task::JoinSet::new();
    for (repository, tag, digest) in asks {
        let registry = Arc::clone(registry);
        reads.spawn(async move {
            // An IMMUTABLE repository's tag cannot have moved: confirmed
            // without reading it (its mutability is read once, cached).
            if registry.tags_immutable(&repository).await {
                return ((repository, tag, digest), None);
            }
            let answer = match registry.describe(&repository, &tag).await {
                Ok(Some(now)) if now.digest == digest => None,
                Ok(Some(now)) => Some(format!(
                    "tag {tag} moved from {digest} to {} while deciding",
                    now.digest
                )),
                Ok(None) => Some(format!("tag {tag} disappeared while deciding")),
                Err(e) => Some(format!("could not re-check tag {tag}: {e}")),
            };
            ((repository, tag, digest), answer)
        });
    }
    let mut answers = Vec::new();
    while let Some(joined) = reads.join_next().await {
        match joined {
            Ok(answer) => answers.push(answer),
            Err(e) => error!(error = %e, "re-check task panicked"),
        }
    }
    answers
}

/// Commits each commit-target's change on the local branch, in order; the
/// commit of each by decision index.
fn commit(
    config: &Config,
    checkout: &mut Checkout,
    decided: &[Decision],
    now: OffsetDateTime,
) -> Result<HashMap<usize, String>, GitError> {
    let mut commits = HashMap::new();
    for (i, d) in decided.iter().enumerate() {
        let (Step::Change(change), Update::Commit) = (&d.step, d.update) else {
            continue;
        };
        let target = &config.apps[d.at.0].targets[d.at.1];
        let mut message = change.promotion.message(&Location {
            file: target.file.as_str(),
            key: &target.key.to_string(),
        });
        if let Some(order) = &change.rollback {
            message.push_str(&order.trailers());
        }
        // A failure here is the clone's own storage: nothing after it can
        // be committed either, and nothing is pushed.
        let id = checkout.commit_file(&target.file, &change.content, &message, now)?;
        let span =
            tracing::info_span!("target", app = %d.app, env = %d.env, repository = %d.repository);
        let _entered = span.enter();
        info!(from = %change.promotion.from, to = %change.promotion.to, commit = %id, "committed");
        commits.insert(i, id.to_string());
    }
    Ok(commits)
}

/// Runs `f` on a blocking thread with the clone locked.
async fn blocking<T: Send + 'static>(
    inputs: &Inputs,
    f: impl FnOnce(&Config, &mut Option<Checkout>, OffsetDateTime) -> Result<T, GitError>
    + Send
    + 'static,
) -> Result<T, GitError> {
    let (config, checkout, now) = (
        Arc::clone(&inputs.config),
        Arc::clone(&inputs.checkout),
        inputs.now,
    );
    let task = tokio::task::spawn_blocking(move || {
        let mut guard = checkout.lock().unwrap_or_else(|e| e.into_inner());
        f(&config, &mut guard, now)
    });
    match task.await {
        Ok(result) => result,
        // A panic is a bug; report it as a failed cycle instead of taking
        // the daemon down with it.
        Err(e) => {
            error!(error = %e, "git task panicked");
            Err(GitError::Local {
                path: inputs.config.git.checkout_dir.clone(),
                message: format!("the git task panicked: {e}"),
            })
        }
    }
}

/// Opens (or clones) the checkout and brings it up to the remote's branch.
/// A clone whose own storage failed is a cache: it is discarded, and the
/// next cycle clones again.
pub fn prepare(config: &Config, slot: &mut Option<Checkout>) -> Result<(), GitError> {
    let checkout = match slot {
        Some(c) => c,
        None => slot.insert(Checkout::open_or_create(&config.git)?),
    };
    let synced = checkout.sync();
    if let Err(GitError::Local { .. }) = &synced {
        warn!("clone is damaged; cloning again next cycle");
        if let Some(damaged) = slot.take() {
            damaged.discard();
        }
    }
    synced.map(|_| ())
}

/// Discards a clone a killed process left a lock file in, now rather than
/// next cycle: `once` is a new process each time, and only this one knows.
pub fn discard_if_damaged(slot: &mut Option<Checkout>) {
    if slot.as_ref().is_some_and(Checkout::is_damaged) {
        warn!(
            "the clone is damaged (a lock file left by a killed process, or a missing object); cloning again next cycle"
        );
        if let Some(damaged) = slot.take() {
            damaged.discard();
        }
    }
}

fn no_checkout(config: &Config) -> GitError {
    GitError::Local {
        path: config.git.checkout_dir.clone(),
        message: "no checkout after a successful sync".into(),
    }
}

/// Jittered exponential backoff between push attempts, so two replicas
/// that collided once do not collide again in lockstep.
///
/// The first retry comes almost at once: against a person or a CI job
/// pushing now and then, the branch is most likely still between their
/// pushes; waiting longer only widens the window for the next one.
fn backoff(attempt: u32) -> Duration {
    let base = if attempt <= 1 {
        20
    } else {
        100u64 << attempt.min(6)
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    Duration::from_millis(base + nanos % base)
}
