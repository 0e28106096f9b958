//! One cycle: list each repository once, decide each app and env, commit
//! the changes, push once.
//!
//! ```text
//! registry (once per repository, concurrently)
//!   → policy::decide per app/env (pure)
//!   → manifest::set (byte-minimal splice)
//!   → Checkout::commit_file (one commit per app/env, Tagwatch-* trailers)
//!   → Checkout::push (one per cycle; on rejection: sync, rebuild, retry)
//!   → propose::settle (pull-request targets: branch pushed, forge told)
//! ```
//!
//! A target with `promote_from` takes its candidate from the env it names,
//! as that env's file holds it on the branch, once it has held it for
//! `soak` (from the promotion commit's time). Targets are ordered so that a
//! source is decided first in the same cycle.
//!
//! The desired state is recomputed from the registry listings and the
//! branch's current files on every attempt, never replayed as diffs, so a
//! person's commit to another line of the same file survives a retry. A
//! failure is confined to the app or repository it belongs to. This module
//! owns that orchestration and the per-target outcome; it delegates every
//! decision and mechanism to the modules named above.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::config::{App, Config, Target, Update};
use crate::forge::Forge;
use crate::format::Parts;
use crate::gitops::{Checkout, GitError};
use crate::manifest;
use crate::policy::{Decision, Strategy};
use crate::propose::{self, Member, Plan, Settled};
use crate::registry::{Image, Listing, Registry, RegistryError};
use crate::trailers::{Location, Promotion};

/// How far back the branch's history is searched for the promotion that
/// wrote a digest. Deep enough for months of promotions in a busy repo,
/// shallow enough to stay a few milliseconds.
const HISTORY_DEPTH: usize = 5_000;

/// Whether a cycle writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Commit and push.
    Apply,
    /// Compute everything, report diffs, write nothing.
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

/// What happened to one app/env in a cycle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The file already holds the policy's choice (or something newer).
    Unchanged { current: String },
    /// The registry holds nothing the policy accepts; nothing was written.
    NoCandidate { current: String },
    /// Committed and pushed.
    Promoted {
        from: String,
        to: String,
        commit: String,
        /// When the image was pushed to the registry.
        pushed_at: Option<OffsetDateTime>,
    },
    /// A pull request proposes the change (opened, updated or left as it
    /// was); the branch is unchanged until someone merges it.
    Proposed {
        from: String,
        to: String,
        url: String,
        pushed_at: Option<OffsetDateTime>,
    },
    /// The change waits: on the source env's soak time, or because a
    /// person declined the same proposal.
    Waiting { reason: String },
    /// Dry run: this change would be made.
    WouldPromote {
        from: String,
        to: String,
        diff: String,
    },
    /// The chosen tag moved or vanished between listing and writing; the
    /// next cycle decides again from a fresh listing.
    Deferred { reason: String },
    /// This target could not be reconciled; others were not affected.
    Failed { stage: Stage, error: String },
}

/// One app/env's result.
#[derive(Clone, Debug)]
pub struct TargetReport {
    pub app: String,
    pub env: String,
    pub outcome: Outcome,
    /// The value the branch holds for this target after the cycle, when
    /// it was read.
    pub current: Option<String>,
}

/// Everything a cycle did.
#[derive(Clone, Debug, Default)]
pub struct CycleReport {
    pub targets: Vec<TargetReport>,
    /// Push attempts made (0 when nothing needed pushing).
    pub push_attempts: u32,
    /// Registry pages read, summed over repositories.
    pub registry_pages: u32,
}

impl CycleReport {
    /// True when any target failed.
    pub fn any_failed(&self) -> bool {
        self.targets
            .iter()
            .any(|t| matches!(t.outcome, Outcome::Failed { .. }))
    }
}

/// The persistent clone, opened on first use. A std `Mutex`, because it is
/// only ever locked inside a blocking task, never across an `.await`.
pub type SharedCheckout = Arc<Mutex<Option<Checkout>>>;

/// The peers and the clock one cycle works with.
#[derive(Clone)]
pub struct Peers {
    pub registry: Arc<dyn Registry>,
    /// For `update = "pull-request"` targets; `None` without `[forge]`.
    pub forge: Option<Arc<dyn Forge>>,
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
    let registry = Arc::clone(&peers.registry);
    // The clone is brought up to date while the registry is listed: the
    // two wait on different peers, and the listing is the longer wait, so
    // the fetch (or the first clone) costs the cycle nothing extra.
    let synced = {
        let (config, checkout) = (Arc::clone(&config), Arc::clone(&checkout));
        tokio::task::spawn_blocking(move || {
            let mut guard = checkout.lock().unwrap_or_else(|e| e.into_inner());
            prepare(&config, &mut guard)
        })
    };
    // One clock reading for the whole cycle, taken before the listing so
    // that each repository's candidates can be chosen as soon as it is in.
    let now = peers.now.unwrap_or_else(OffsetDateTime::now_utc);
    let (listings, preferred) = list_repositories(&config, Arc::clone(&registry), now).await;
    let synced = match synced.await {
        Ok(synced) => synced,
        Err(e) => {
            error!(error = %e, "git task panicked");
            Err(no_checkout(&config, &format!("the git task panicked: {e}")))
        }
    };
    let registry_pages = pages_of(&listings);
    let runtime = tokio::runtime::Handle::current();
    let task = tokio::task::spawn_blocking(move || {
        let mut guard = checkout.lock().unwrap_or_else(|e| e.into_inner());
        let recheck = Recheck {
            registry: registry.as_ref(),
            runtime,
            seen: Default::default(),
        };
        let written = write(
            &config,
            &listings,
            &mut guard,
            synced,
            &Inputs {
                mode,
                now,
                recheck,
                preferred,
            },
        );
        // Discarded now rather than next cycle: `once` is a new process
        // each time, and only this one knows.
        if guard.as_ref().is_some_and(Checkout::is_damaged) {
            warn!("a lock file left in the clone by a killed process; cloning again next cycle");
            if let Some(damaged) = guard.take() {
                damaged.discard();
            }
        }
        written
    });
    let (mut report, plans, settled) = match task.await {
        Ok(written) => written,
        // A panic is a bug; report it as a failed cycle instead of taking
        // the daemon down with it.
        Err(e) => {
            error!(error = %e, "cycle task panicked");
            (CycleReport::default(), Vec::new(), Vec::new())
        }
    };
    report.registry_pages = registry_pages;
    if !plans.is_empty() || !settled.is_empty() {
        match &peers.forge {
            Some(forge) => propose::settle(forge.as_ref(), &plans, &settled, &mut report).await,
            None => error!("pull-request targets without a forge"),
        }
    }
    report
}

type Listings = HashMap<String, Result<Listing, RegistryError>>;

/// `DescribeImages` pages the successful listings took.
fn pages_of(listings: &Listings) -> u32 {
    listings
        .values()
        .filter_map(|l| l.as_ref().ok())
        .map(|l| l.pages)
        .sum()
}

/// Each policy's best image in its repository's listing, by index, chosen
/// while the other repositories are still being listed: the scan of every
/// tag is most of the CPU a cycle spends deciding, and the listing is a
/// wait. Keyed by app and, for a target with its own `constraint`, env.
type Preferred = HashMap<(String, Option<String>), Option<usize>>;

/// The policies that choose from `listing`, each once: every app on the
/// repository, and every target of those with its own policy.
fn prefer(config: &Config, listing: &Listing, now: OffsetDateTime, preferred: &mut Preferred) {
    let index = |policy: &crate::policy::Policy| {
        let best = policy.best(&listing.images, now)?;
        listing.images.iter().position(|i| std::ptr::eq(i, best))
    };
    for app in config
        .apps
        .iter()
        .filter(|a| a.repository == listing.repository)
    {
        preferred.insert((app.name.clone(), None), index(&app.policy));
        for target in &app.targets {
            if let Some(own) = &target.policy {
                preferred.insert((app.name.clone(), Some(target.env.clone())), index(own));
            }
        }
    }
}

/// Lists every repository the config names, each exactly once, at most
/// `aws.concurrency` at a time.
async fn list_repositories(
    config: &Config,
    registry: Arc<dyn Registry>,
    now: OffsetDateTime,
) -> (Listings, Preferred) {
    let mut repositories: Vec<&str> = config.apps.iter().map(|a| a.repository.as_str()).collect();
    repositories.sort_unstable();
    repositories.dedup();

    let limit = Arc::new(Semaphore::new(config.aws.concurrency));
    let started = std::time::Instant::now();
    let mut tasks = JoinSet::new();
    for repository in repositories {
        let repository = repository.to_string();
        let registry = Arc::clone(&registry);
        let limit = Arc::clone(&limit);
        let span = info_span!("list", repository = %repository);
        tasks.spawn(
            async move {
                let _permit = limit.acquire_owned().await;
                let started = std::time::Instant::now();
                let result = registry.list(&repository).await;
                match &result {
                    Ok(l) => {
                        debug!(images = l.images.len(), pages = l.pages, elapsed = ?started.elapsed(), "listed");
                        warn_future_pushes(l);
                        let m = crate::metrics::get();
                        m.repository_images.with_label_values(&[repository.as_str()]).set(l.images.len() as f64);
                        m.repository_last_success.with_label_values(&[repository.as_str()]).set(crate::metrics::unix_now());
                    }
                    Err(e) => warn!(kind = e.kind(), error = %e, "listing failed"),
                }
                (repository, result)
            }
            .instrument(span),
        );
    }
    let mut listings = HashMap::new();
    let mut preferred = Preferred::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((repository, result)) => {
                if let Ok(listing) = &result {
                    prefer(config, listing, now, &mut preferred);
                }
                listings.insert(repository, result);
            }
            Err(e) => error!(error = %e, "listing task panicked"),
        }
    }
    let failed = listings.values().filter(|l| l.is_err()).count();
    let pages = pages_of(&listings);
    info!(
        repositories = listings.len(),
        failed,
        pages,
        elapsed = ?started.elapsed(),
        "listing finished"
    );
    (listings, preferred)
}

/// Says so when the registry dates images in the future (a skewed clock
/// here or there): such images are never old enough for `min_age`, so the
/// policy skips them rather than promoting them early, and an operator
/// should know why they wait. A minute of skew is tolerated silently.
fn warn_future_pushes(listing: &Listing) {
    let now = OffsetDateTime::now_utc();
    let ahead: Vec<&Image> = listing
        .images
        .iter()
        .filter(|i| {
            i.pushed_at
                .is_some_and(|p| p - now > time::Duration::minutes(1))
        })
        .collect();
    if let Some(first) = ahead.first() {
        warn!(
            images = ahead.len(),
            tag = %first.tag,
            pushed_at = %first.pushed_at.map(crate::trailers::format_time).unwrap_or_default(),
            "imagePushedAt is in the future (clock skew?); min_age treats these images as too young"
        );
    }
}

/// A change one target needs.
struct Change {
    promotion: Promotion,
    /// The image chosen, as listed; re-checked before writing when the
    /// strategy or the written value depends on what its tag points at.
    image: Image,
    /// The new value pins the image's digest.
    pins_digest: bool,
    content: Vec<u8>,
    old: Vec<u8>,
    /// The scalar's new value, to apply again on a proposal branch.
    value: String,
}

/// Re-reads a chosen tag from the registry just before it is written.
/// Only `newest` and `digest` need it, and only for an actual promotion, so
/// a quiet cycle still makes one listing per repository and nothing else.
struct Recheck<'a> {
    registry: &'a dyn Registry,
    /// The blocking half calls into async code through this handle; it runs
    /// on a blocking thread, where `block_on` is allowed.
    runtime: tokio::runtime::Handle,
    /// Answers already read this cycle, by repository, tag and digest: dev
    /// and prod of one app (and apps sharing a repository) usually re-check
    /// the same tag moments apart, and one read answers them all.
    seen: std::cell::RefCell<HashMap<(String, String, String), Option<String>>>,
}

impl Recheck<'_> {
    /// `None` when the image still is what the listing said; otherwise why not.
    fn moved(&self, repository: &str, image: &Image) -> Option<String> {
        let key = (
            repository.to_string(),
            image.tag.clone(),
            image.digest.clone(),
        );
        if let Some(answer) = self.seen.borrow().get(&key) {
            return answer.clone();
        }
        let (answer, certain) = self.read(repository, image);
        // A failed read is not an answer: the next target asks again.
        if certain {
            self.seen.borrow_mut().insert(key, answer.clone());
        }
        answer
    }

    /// Forgets the answers, so a write attempt after a rejected push (and
    /// its backoff) re-reads the registry.
    fn forget(&self) {
        self.seen.borrow_mut().clear();
    }

    /// The answer, and whether the registry gave one.
    fn read(&self, repository: &str, image: &Image) -> (Option<String>, bool) {
        let fresh = self
            .runtime
            .block_on(self.registry.describe(repository, &image.tag));
        match fresh {
            Ok(Some(now)) if now.digest == image.digest => (None, true),
            Ok(Some(now)) => (
                Some(format!(
                    "tag {} moved from {} to {} while deciding",
                    image.tag, image.digest, now.digest
                )),
                true,
            ),
            Ok(None) => (
                Some(format!("tag {} disappeared while deciding", image.tag)),
                true,
            ),
            Err(e) => (
                Some(format!("could not re-check tag {}: {e}", image.tag)),
                false,
            ),
        }
    }
}

/// What every target of a cycle shares.
struct Inputs<'a> {
    mode: Mode,
    /// One clock reading per cycle, so every app sees the same `min_age` cut.
    now: OffsetDateTime,
    recheck: Recheck<'a>,
    preferred: Preferred,
}

/// What the blocking half hands to the forge stage.
type Written = (CycleReport, Vec<Plan>, Vec<Settled>);

/// A local failure that stands in for a checkout the cycle does not have.
fn no_checkout(config: &Config, message: &str) -> GitError {
    GitError::Local {
        path: config.git.checkout_dir.clone(),
        message: message.to_string(),
    }
}

/// Opens (or clones) the checkout and brings it up to the remote's branch.
/// A clone whose own storage failed is a cache: it is discarded, and the
/// next cycle clones again.
fn prepare(config: &Config, slot: &mut Option<Checkout>) -> Result<(), GitError> {
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

/// The blocking half of a cycle: decide every target on the synced
/// checkout (`synced` is how [`prepare`] went), commit, push, and build
/// the proposal branches. A rejected push syncs again and starts over.
fn write(
    config: &Config,
    listings: &Listings,
    slot: &mut Option<Checkout>,
    synced: Result<(), GitError>,
    inputs: &Inputs<'_>,
) -> Written {
    let mode = inputs.mode;
    let mut report = CycleReport::default();
    let mut synced = Some(synced);
    for attempt in 1..=config.git.push_attempts.max(1) {
        inputs.recheck.forget();
        let sync = match synced.take() {
            Some(first) => first,
            None => prepare(config, slot),
        };
        let checkout = match (sync, slot.as_mut()) {
            (Ok(()), Some(checkout)) => checkout,
            (Err(e), _) => return (fail_all(config, &e, report), Vec::new(), Vec::new()),
            // prepare() leaves a checkout in the slot whenever it succeeds.
            (Ok(()), None) => {
                let e = no_checkout(config, "no checkout after a successful sync");
                return (fail_all(config, &e, report), Vec::new(), Vec::new());
            }
        };
        let writing = std::time::Instant::now();
        let mut targets = Vec::new();
        let mut committed = 0;
        let mut proposals = propose::Builder::default();
        for app in &config.apps {
            for target in &app.targets {
                let span = info_span!("target", app = %app.name, env = %target.env, repository = %app.repository);
                let _enter = span.enter();
                let mut sink = Sink {
                    committed: &mut committed,
                    proposals: &mut proposals,
                    index: targets.len(),
                };
                let outcome = reconcile_target(app, target, listings, checkout, inputs, &mut sink);
                let current = held_value(&outcome).or_else(|| read_value(checkout, target));
                targets.push(TargetReport {
                    app: app.name.clone(),
                    env: target.env.clone(),
                    outcome,
                    current,
                });
            }
        }
        if mode == Mode::DryRun {
            report.targets = targets;
            return (report, Vec::new(), Vec::new());
        }
        if committed == 0 {
            report.targets = targets;
            return proposals.build(config, checkout, inputs.now, report);
        }
        report.push_attempts = attempt;
        match checkout.push() {
            Ok(()) => {
                info!(commits = committed, attempt, write_elapsed = ?writing.elapsed(), "pushed");
                report.targets = targets;
                return proposals.build(config, checkout, inputs.now, report);
            }
            Err(GitError::Rejected { message, .. }) if attempt < config.git.push_attempts => {
                crate::metrics::get().git_push_conflicts.inc();
                warn!(attempt, reason = %message, "push rejected; the branch moved, rebuilding on the new head");
                std::thread::sleep(backoff(attempt));
            }
            Err(e) => {
                error!(error = %e, "push failed");
                report.targets = targets.into_iter().map(|t| unpushed(t, &e)).collect();
                return (report, Vec::new(), Vec::new());
            }
        }
    }
    unreachable!("the last attempt always returns")
}

/// The value a target holds after the cycle, as far as its outcome says.
fn held_value(outcome: &Outcome) -> Option<String> {
    match outcome {
        Outcome::Unchanged { current } | Outcome::NoCandidate { current } => Some(current.clone()),
        Outcome::Promoted { to, .. } => Some(to.clone()),
        Outcome::Proposed { from, .. } | Outcome::WouldPromote { from, .. } => Some(from.clone()),
        _ => None,
    }
}

/// The target's scalar as the branch holds it, for outcomes that do not
/// say (waiting, deferred, failed).
fn read_value(checkout: &Checkout, target: &Target) -> Option<String> {
    let bytes = checkout.read(&target.file).ok()??;
    manifest::get(&bytes, &target.key, &target.document)
        .ok()
        .map(|s| s.value)
}

/// A commit that was never pushed did not happen: its target failed. So
/// did a proposal, whose branch is built only after the push.
fn unpushed(t: TargetReport, e: &GitError) -> TargetReport {
    match t.outcome {
        Outcome::Promoted { .. } | Outcome::Proposed { .. } => TargetReport {
            outcome: Outcome::Failed {
                stage: Stage::Git,
                error: e.to_string(),
            },
            ..t
        },
        _ => t,
    }
}

fn fail_all(config: &Config, e: &GitError, mut report: CycleReport) -> CycleReport {
    error!(kind = e.kind(), error = %e, "git");
    report.targets = config
        .apps
        .iter()
        .flat_map(|app| app.targets.iter().map(move |t| (app, t)))
        .map(|(app, t)| TargetReport {
            app: app.name.clone(),
            env: t.env.clone(),
            current: None,
            outcome: Outcome::Failed {
                stage: Stage::Git,
                error: e.to_string(),
            },
        })
        .collect();
    report
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

/// Where a target's change goes: a commit on the branch, or a proposal.
struct Sink<'a> {
    committed: &'a mut usize,
    proposals: &'a mut propose::Builder,
    /// This target's place in the report, for the forge stage to fill in.
    index: usize,
}

fn reconcile_target(
    app: &App,
    target: &Target,
    listings: &Listings,
    checkout: &mut Checkout,
    inputs: &Inputs<'_>,
    sink: &mut Sink<'_>,
) -> Outcome {
    let source = match &target.promote_from {
        Some(env) => match from_source(app, target, env, listings, checkout, inputs.now) {
            Ok(Ok(source)) => Some(source),
            Ok(Err(waiting)) => return waiting,
            Err(outcome) => return outcome,
        },
        None => None,
    };
    let narrowed;
    let listing = match (&source, listings.get(&app.repository)) {
        (Some(source), Some(Ok(listing))) => {
            narrowed = Ok(Listing {
                repository: listing.repository.clone(),
                registry_id: listing.registry_id.clone(),
                region: listing.region.clone(),
                images: vec![source.image.clone()],
                pages: listing.pages,
            });
            Some(&narrowed)
        }
        (_, listing) => listing,
    };
    let file = match checkout.read(&target.file) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => {
            return failed(
                Stage::Manifest,
                format!("{}: no such file on the branch", target.file),
            );
        }
        Err(e) => return failed(Stage::Git, e.to_string()),
    };
    let history = |digest: &str| {
        checkout
            .promotion_with_digest(&app.name, &target.env, digest, HISTORY_DEPTH)
            .map(|p| p.to)
    };
    // Chosen during the listing, unless the listing was narrowed to the
    // source env's image above.
    let preferred = match (&source, listing) {
        (None, Some(Ok(listing))) => {
            let key = (
                app.name.clone(),
                target.policy.as_ref().map(|_| target.env.clone()),
            );
            inputs
                .preferred
                .get(&key)
                .map(|i| i.and_then(|i| listing.images.get(i)))
        }
        _ => None,
    };
    let change = match plan(app, target, listing, preferred, &file, inputs.now, &history) {
        Ok(Planned::Change(change)) => change,
        Ok(Planned::Unchanged(current)) => {
            debug!(%current, "up to date");
            if target.update == Update::PullRequest {
                sink.proposals.settle(app, target, &current);
            }
            return Outcome::Unchanged { current };
        }
        Ok(Planned::NoCandidate(current)) => return Outcome::NoCandidate { current },
        Err(outcome) => return outcome,
    };
    if (app.policy_for(target).needs_recheck() || change.pins_digest)
        && let Some(reason) = inputs.recheck.moved(&app.repository, &change.image)
    {
        info!(%reason, "deferred to the next cycle");
        return Outcome::Deferred { reason };
    }
    let Promotion { from, to, .. } = change.promotion.clone();
    if inputs.mode == Mode::DryRun {
        return Outcome::WouldPromote {
            from,
            to,
            diff: unified_diff(target, &change.old, &change.content),
        };
    }
    if target.update == Update::PullRequest {
        sink.proposals.add(Member {
            app: app.name.clone(),
            repository: app.repository.clone(),
            target: target.clone(),
            promotion: change.promotion,
            value: change.value,
            source: source.map(|s| (s.env, s.since)),
            report_index: sink.index,
        });
        return Outcome::Proposed {
            from,
            to,
            url: String::new(),
            pushed_at: change.image.pushed_at,
        };
    }
    let message = change.promotion.message(&Location {
        file: target.file.as_str(),
        key: &target.key.to_string(),
    });
    match checkout.commit_file(&target.file, &change.content, &message, inputs.now) {
        Ok(oid) => {
            *sink.committed += 1;
            info!(%from, %to, commit = %oid, "committed");
            Outcome::Promoted {
                from,
                to,
                commit: oid.to_string(),
                pushed_at: change.image.pushed_at,
            }
        }
        Err(e) => failed(Stage::Git, e.to_string()),
    }
}

/// The app's listing, or the failure that stands in for it.
fn listing_of<'a>(
    app: &App,
    listing: Option<&'a Result<Listing, RegistryError>>,
) -> Result<&'a Listing, Outcome> {
    match listing {
        Some(Ok(listing)) => Ok(listing),
        Some(Err(e)) => Err(failed(Stage::Registry, e.to_string())),
        None => Err(failed(
            Stage::Registry,
            format!("repository {:?} was not listed", app.repository),
        )),
    }
}

/// What a `promote_from` target may take: the image its source env runs.
struct Source {
    env: String,
    image: Image,
    /// When the source came to run it, from the branch's history.
    since: Option<OffsetDateTime>,
}

/// The source env's image, once it has run it for the target's `soak`.
/// `Ok(Err(outcome))` is a reason to wait, not a failure.
fn from_source(
    app: &App,
    target: &Target,
    env: &str,
    listings: &Listings,
    checkout: &Checkout,
    now: OffsetDateTime,
) -> Result<Result<Source, Outcome>, Outcome> {
    let Some(source) = app.targets.iter().find(|t| t.env == env) else {
        return Err(failed(
            Stage::Policy,
            format!("no env {env:?} to promote from"),
        ));
    };
    let listing = listing_of(app, listings.get(&app.repository))?;
    let bytes = match checkout.read(&source.file) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => {
            return Err(failed(
                Stage::Manifest,
                format!("{}: no such file on the branch (env {env})", source.file),
            ));
        }
        Err(e) => return Err(failed(Stage::Git, e.to_string())),
    };
    let value = match manifest::get(&bytes, &source.key, &source.document) {
        Ok(scalar) => scalar.value,
        Err(e) => {
            return Err(failed(
                Stage::Manifest,
                format!("{}: {}: {e} (env {env})", source.file, source.key),
            ));
        }
    };
    // The tag the source runs, read through its format; a pinned digest
    // must match too, so the exact image the source tested is promoted.
    let format = &source.format;
    let digest = format.current_digest(&value);
    let image = match format.current_tag(&value) {
        Some(tag) => listing
            .images
            .iter()
            .find(|i| i.tag == tag && digest.is_none_or(|d| d == i.digest)),
        None => digest.and_then(|d| listing.images.iter().find(|i| i.digest == d)),
    };
    let Some(image) = image else {
        return Ok(Err(Outcome::Waiting {
            reason: format!("{env} runs {value}, which the registry does not list"),
        }));
    };
    let held = app.policy_for(target).value_of(image);
    let since = checkout.held_since(&app.name, env, held, &source.file, HISTORY_DEPTH);
    if !target.soak.is_zero() {
        let soak = humantime::format_duration(target.soak);
        let ran = since.map(|t| now - t);
        match ran {
            Some(ran) if ran >= target.soak => {}
            Some(ran) => {
                // A commit dated in the future (clock skew) has run for
                // less than nothing: it waits, it never fires early.
                let ran = Duration::from_secs(ran.whole_seconds().max(0) as u64);
                return Ok(Err(Outcome::Waiting {
                    reason: format!(
                        "{env} has run {held} for {}; soak is {soak}",
                        humantime::format_duration(ran)
                    ),
                }));
            }
            None => {
                return Ok(Err(Outcome::Waiting {
                    reason: format!(
                        "cannot tell since when {env} runs {held} (no commit found); soak is {soak}"
                    ),
                }));
            }
        }
    }
    Ok(Ok(Source {
        env: env.to_string(),
        image: image.clone(),
        since,
    }))
}

enum Planned {
    Change(Box<Change>),
    Unchanged(String),
    NoCandidate(String),
}

fn failed(stage: Stage, error: String) -> Outcome {
    warn!(stage = stage.as_str(), %error, "target failed");
    Outcome::Failed { stage, error }
}

/// Decides one target from its registry listing and its file's bytes.
fn plan<'a>(
    app: &App,
    target: &Target,
    listing: Option<&'a Result<Listing, RegistryError>>,
    preferred: Option<Option<&'a Image>>,
    file: &[u8],
    now: OffsetDateTime,
    history: &dyn Fn(&str) -> Option<String>,
) -> Result<Planned, Outcome> {
    let listing = listing_of(app, listing)?;
    let at = |e: &dyn std::fmt::Display| format!("{}: {}: {e}", target.file, target.key);
    let current = match manifest::get(file, &target.key, &target.document) {
        Ok(scalar) => Some(scalar.value),
        // A Kustomize entry, or its field, that is not there yet is added.
        Err(e) if target.kustomize.is_some() && e.kind() == "not_found" => None,
        Err(e) => return Err(failed(Stage::Manifest, at(&e))),
    };
    let format = &target.format;
    let policy = app.policy_for(target);
    let best = preferred.unwrap_or_else(|| policy.best(&listing.images, now));
    let (image, held) = match &current {
        Some(current) => match choose(app, target, listing, best, current, now, history) {
            Ok(Chosen::Image(image, held)) => (image, held),
            Ok(Chosen::Keep) => return Ok(Planned::Unchanged(current.clone())),
            Ok(Chosen::Nothing) => return Ok(Planned::NoCandidate(current.clone())),
            Err(e) => return Err(failed(Stage::Policy, at(&e))),
        },
        None => match best {
            Some(best) => (best, "(none)".to_string()),
            None => {
                info!(repository = %app.repository, "no tag passes the policy; the entry stays absent");
                return Ok(Planned::NoCandidate("(none)".to_string()));
            }
        },
    };
    let current = current.unwrap_or_default();
    let host = listing.registry_host();
    let parts = Parts {
        registry: &host,
        repository: &listing.repository,
        tag: &image.tag,
        digest: &image.digest,
    };
    let value = format
        .render(&current, &parts)
        .map_err(|e| failed(Stage::Manifest, at(&e)))?;
    if value == current {
        return Ok(Planned::Unchanged(current));
    }
    let written = match &target.kustomize {
        Some(k) => manifest::set_kustomize_image(file, &k.image, k.field, &value),
        None => manifest::set(file, &target.key, &target.document, &value),
    };
    let content = match written {
        Ok(Some(content)) => content,
        Ok(None) => return Ok(Planned::Unchanged(current)),
        Err(e) => return Err(failed(Stage::Manifest, at(&e))),
    };
    // The trailers speak in tags (or digests, for the digest strategy),
    // whatever the file's format wraps them in.
    let (from, to) = (held, policy.value_of(image).to_string());
    Ok(Planned::Change(Box::new(Change {
        promotion: Promotion {
            app: app.name.clone(),
            env: target.env.clone(),
            image: listing.image_name(),
            from,
            to,
            digest: image.digest.clone(),
            pushed_at: image.pushed_at,
        },
        content,
        old: file.to_vec(),
        pins_digest: format.pins_digest(&value),
        value,
        image: image.clone(),
    })))
}

/// What the policy chose for a file that holds `current`.
enum Chosen<'a> {
    /// Write this image; `String` is the tag (or digest) the file held.
    Image(&'a Image, String),
    Keep,
    Nothing,
}

fn choose<'a>(
    app: &App,
    target: &Target,
    listing: &'a Listing,
    best: Option<&'a Image>,
    current: &str,
    now: OffsetDateTime,
    history: &dyn Fn(&str) -> Option<String>,
) -> Result<Chosen<'a>, crate::policy::PolicyError> {
    let (policy, format) = (app.policy_for(target), &target.format);
    // What the policy compares against: the digest the file pins for the
    // digest strategy, otherwise the tag the file holds — read out of
    // whatever shape the format gives it, or found by digest in the listing.
    let held = if matches!(policy.strategy, Strategy::Digest { .. }) {
        format.current_digest(current).map(str::to_string)
    } else {
        format.current_tag(current).map(str::to_string).or_else(|| {
            let digest = format.current_digest(current)?;
            let tags = listing.images.iter().filter(|i| i.digest == digest);
            // The greatest candidate on that digest, so the listing's order
            // never decides which tag the file is taken to hold.
            let tagged = tags
                .clone()
                .filter_map(|i| Some((policy.judge(i, now).ok()?, i)))
                .max_by(|(ka, a), (kb, b)| ka.cmp(kb).then_with(|| a.tag.cmp(&b.tag)))
                .map(|(_, i)| i)
                .or(tags.clone().next());
            // No tag points at it any more (the tag was pushed again):
            // the promotion commit that wrote it says which tag it was.
            tagged.map(|i| i.tag.clone()).or_else(|| history(digest))
        })
    };
    let held = held.unwrap_or_else(|| current.to_string());
    Ok(
        match policy.decide_given(best, &listing.images, &held, now)? {
            Decision::Promote(image) => Chosen::Image(image, held),
            // The same tag can point at a new image (it was pushed again); a
            // format that pins the digest must follow it.
            Decision::Keep if format.pins_digest(current) => match best {
                Some(best) if best.tag == held => Chosen::Image(best, held),
                _ => Chosen::Keep,
            },
            Decision::Keep => Chosen::Keep,
            Decision::NoCandidate { why } => {
                info!(%current, repository = %app.repository, %why, "no tag passes the policy; nothing written");
                Chosen::Nothing
            }
        },
    )
}

fn unified_diff(target: &Target, old: &[u8], new: &[u8]) -> String {
    let old = String::from_utf8_lossy(old);
    let new = String::from_utf8_lossy(new);
    similar::TextDiff::from_lines(old.as_ref(), new.as_ref())
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{}", target.file), &format!("b/{}", target.file))
        .to_string()
}

/// Counts outcomes by kind, for the one-line summary after a cycle.
pub fn summarize(report: &CycleReport) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for t in &report.targets {
        let key = match t.outcome {
            Outcome::Unchanged { .. } => "unchanged",
            Outcome::NoCandidate { .. } => "no_candidate",
            Outcome::Promoted { .. } => "promoted",
            Outcome::WouldPromote { .. } => "would_promote",
            Outcome::Proposed { .. } => "proposed",
            Outcome::Waiting { .. } => "waiting",
            Outcome::Deferred { .. } => "deferred",
            Outcome::Failed { .. } => "failed",
        };
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}
