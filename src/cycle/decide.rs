//! Deciding every target of a cycle, in order, against the branch as the
//! cycle leaves it: the one pass that both `once --dry-run` and a real
//! cycle make, so what a dry run prints is what a real run does.
//!
//! Each target is planned ([`plan::plan`], pure) against a [`Worktree`]:
//! the clone's branch with the edits of the targets decided before it on
//! top. A commit-target's change is applied to the worktree at once, so a
//! second target in the same file and an env promoted from this one see
//! it; a pull-request target's change is not (it is not on the branch
//! until someone merges it). Nothing is written here.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use time::OffsetDateTime;

use super::list::{Listings, Preferred};
use super::plan::{self, Branch, GateFacts, Held, Input, Need, Step, Unreadable};
use super::report::GateResult;
use crate::config::{App, Config, RepoPath, Target, Update};
use crate::gitops::Checkout;
use crate::registry::Image;

/// How far back the branch's history is searched for the promotion that
/// wrote a digest or a value. Deep enough for months of promotions in a
/// busy repo, shallow enough to stay a few milliseconds.
const HISTORY_DEPTH: usize = 5_000;

/// How far back a target's value history is read for reverts and
/// rollbacks: each commit that touched the file costs a blob read, so
/// this is shallower than [`HISTORY_DEPTH`]; a revert older than this many
/// commits has long been overtaken by newer tags.
const DENIAL_DEPTH: usize = 1_000;

/// One target's decision, in config order.
#[derive(Clone, Debug)]
pub struct Decision {
    /// Where the target is in the config: (app, target) indices.
    pub at: (usize, usize),
    pub app: String,
    pub env: String,
    /// The app's ECR repository.
    pub repository: String,
    /// The target's file, for the dry run's diff.
    pub file: String,
    pub update: Update,
    /// The proposal branch, for a pull-request target.
    pub branch: Option<String>,
    pub held: Option<Held>,
    pub step: Step,
    /// The gate verdicts the step rests on.
    pub gates: Vec<GateResult>,
    /// The deployed image's presence; a DR target's replication wait.
    pub ecr: super::report::EcrNotes,
    /// The tags the target may not take, and the hold on it.
    pub denials: Vec<super::holds::Denial>,
    pub hold: Option<String>,
}

/// An image the registry must confirm before it is written: repository,
/// tag, digest.
pub type Ask = (String, String, String);

/// The registry's answers to [`Ask`]s this cycle: `None` when the tag still
/// points at the digest, otherwise why not.
pub type Answers = HashMap<Ask, Option<String>>;

/// Every target decided.
pub struct Decided {
    pub decisions: Vec<Decision>,
    /// Images a change needs confirmed that `answers` did not cover; the
    /// cycle asks the registry and decides again.
    pub asks: BTreeSet<Ask>,
    /// Gate facts a decision needs that `gates` did not hold; the cycle
    /// fetches them and decides again.
    pub needs: BTreeSet<Need>,
}

/// Decides every target of `config` in order (sources before the envs
/// promoted from them: the config orders them so).
pub fn decide(
    config: &Config,
    listings: &Listings,
    preferred: &Preferred,
    checkout: &Checkout,
    answers: &Answers,
    gates: &GateFacts,
    now: OffsetDateTime,
) -> Decided {
    let tree = Worktree::new(checkout, now);
    let mut decisions = Vec::new();
    let mut asks = BTreeSet::new();
    let mut needs = BTreeSet::new();
    for (a, app) in config.apps.iter().enumerate() {
        for (t, target) in app.targets.iter().enumerate() {
            let input = Input {
                app,
                target,
                listing: listings.get(&app.list_key()),
                best: best_of(preferred, listings, app, target),
                gates,
                now,
                replica: target
                    .replica
                    .as_ref()
                    .and_then(|r| listings.get(&r.key(app.artifact))),
            };
            let mut planned = plan::plan(&input, &tree);
            needs.extend(planned.needs.drain(..));
            if let Step::Change(change) = &planned.step
                && change.recheck
            {
                let ask = ask(&app.repository, &change.image);
                match answers.get(&ask) {
                    Some(None) => {}
                    Some(Some(reason)) => {
                        planned.step = Step::Deferred {
                            reason: reason.clone(),
                            candidate: change.promotion.to.clone(),
                        }
                    }
                    // Provisionally a change, so the envs after it are
                    // decided as they will be if the registry confirms it.
                    None => {
                        asks.insert(ask);
                    }
                }
            }
            if let (Step::Change(change), Update::Commit) = (&planned.step, target.update) {
                tree.apply(app, target, &change.content, &change.promotion.to);
            }
            decisions.push(Decision {
                at: (a, t),
                app: app.name.clone(),
                env: target.env.clone(),
                repository: app.repository.clone(),
                file: target.file.to_string(),
                update: target.update,
                branch: (target.update == Update::PullRequest)
                    .then(|| super::propose::branch(&app.name, target)),
                held: planned.held,
                step: planned.step,
                gates: planned.verdicts,
                ecr: planned.ecr,
                denials: planned.denials,
                hold: planned.hold,
            });
        }
    }
    Decided {
        decisions,
        asks,
        needs,
    }
}

pub fn ask(repository: &str, image: &Image) -> Ask {
    (
        repository.to_string(),
        image.tag.clone(),
        image.digest.clone(),
    )
}

/// The policy's best image chosen while listing, by index into the listing.
fn best_of<'a>(
    preferred: &Preferred,
    listings: &'a Listings,
    app: &App,
    target: &Target,
) -> Option<Option<&'a Image>> {
    let listing = listings.get(&app.list_key())?.as_ref().ok()?;
    let key = (
        app.name.clone(),
        target.policy.as_ref().map(|_| target.env.clone()),
    );
    preferred
        .get(&key)
        .map(|i| i.and_then(|i| listing.images.get(i)))
}

/// The branch as this cycle leaves it: the clone's head, with the changes
/// decided so far on top.
pub struct Worktree<'a> {
    checkout: &'a Checkout,
    now: OffsetDateTime,
    edits: RefCell<HashMap<RepoPath, Vec<u8>>>,
    /// (app, env) → the value this cycle wrote there.
    written: RefCell<HashMap<(String, String), String>>,
}

impl<'a> Worktree<'a> {
    pub fn new(checkout: &'a Checkout, now: OffsetDateTime) -> Worktree<'a> {
        Worktree {
            checkout,
            now,
            edits: Default::default(),
            written: Default::default(),
        }
    }

    fn apply(&self, app: &App, target: &Target, content: &[u8], to: &str) {
        self.edits
            .borrow_mut()
            .insert(target.file.clone(), content.to_vec());
        self.written
            .borrow_mut()
            .insert((app.name.clone(), target.env.clone()), to.to_string());
    }
}

impl Branch for Worktree<'_> {
    fn read(&self, path: &RepoPath) -> Result<Option<Vec<u8>>, Unreadable> {
        if let Some(edited) = self.edits.borrow().get(path) {
            return Ok(Some(edited.clone()));
        }
        self.checkout
            .read(path)
            .map_err(|e| Unreadable(e.to_string()))
    }

    fn tag_of_digest(&self, app: &str, env: &str, digest: &str) -> Option<String> {
        self.checkout
            .promotion_with_digest(app, env, digest, HISTORY_DEPTH)
            .map(|p| p.to)
    }

    fn held_since(
        &self,
        app: &str,
        env: &str,
        value: &str,
        path: &RepoPath,
    ) -> Option<OffsetDateTime> {
        // Written by this cycle: it will have run it for no time at all.
        if let Some(written) = self
            .written
            .borrow()
            .get(&(app.to_string(), env.to_string()))
        {
            return (written == value).then_some(self.now);
        }
        self.checkout
            .held_since(app, env, value, path, HISTORY_DEPTH)
    }

    fn contains_promotion(
        &self,
        app: &str,
        env: &str,
        value: &str,
        path: &RepoPath,
        revision: &str,
    ) -> Option<bool> {
        // Written by this cycle: not pushed yet, so nothing runs it.
        if self
            .written
            .borrow()
            .contains_key(&(app.to_string(), env.to_string()))
        {
            return Some(false);
        }
        let (commit, _) = self
            .checkout
            .held_by(app, env, value, path, HISTORY_DEPTH)?;
        self.checkout.is_ancestor(&commit, revision)
    }

    fn proposed_rollback(&self, app: &App, target: &Target) -> Option<crate::rollback::Order> {
        let branch = super::propose::branch(&app.name, target);
        let tip = self.checkout.remote_branch(&branch)?;
        let head = self.checkout.head().ok()?;
        let message = self
            .checkout
            .proposed_messages(tip, head)
            .into_iter()
            .find(|m| {
                crate::trailers::Promotion::parse(m)
                    .is_some_and(|p| p.app == app.name && p.env == target.env)
            })?;
        let promotion = crate::trailers::Promotion::parse(&message)?;
        let trailer = |key| super::holds::trailer(&message, key);
        Some(crate::rollback::Order {
            to: promotion.to,
            of: trailer(crate::rollback::ROLLBACK_OF)?,
            cause: trailer(crate::rollback::CAUSE)
                .and_then(|c| crate::rollback::Cause::parse(&c))
                .unwrap_or(crate::rollback::Cause::Command),
            reason: trailer(crate::rollback::REASON).unwrap_or_default(),
        })
    }

    fn value_events(
        &self,
        path: &RepoPath,
        value_of: &dyn Fn(&[u8]) -> Option<String>,
    ) -> Vec<crate::gitops::ValueEvent> {
        // The branch as pushed: this cycle's own edits are promotions, and
        // a promotion denies nothing.
        self.checkout.value_events(path, DENIAL_DEPTH, value_of)
    }
}
