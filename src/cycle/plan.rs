//! The decision for one target: pure, over facts.
//!
//! [`plan`] takes what the target's file holds (through [`Branch`], the
//! branch with this cycle's earlier edits on top), what its repository's
//! listing holds, what git history says, and the clock, and returns a
//! [`Planned`]: keep, no candidate, wait, or change (with the new file's
//! bytes). With gates (`scan_max_severity`, `require_signature`) it walks
//! the policy's candidates best first over the gate facts it is given
//! ([`GateFacts`]), takes the first that passes, and names the facts it
//! still needs ([`Need`]) when a candidate's are missing: that step is
//! provisional, and the cycle fetches them and plans again.
//!
//! A DR target (a `region`/`registry_id` replica) is decided against its
//! replica's listing too: it takes the source env's image only once the
//! same digest is there, and every target's deployed image is looked up
//! in the listing it is served from ([`EcrNotes`]).
//!
//! It reads no file, calls no registry, logs nothing: the cycle fetches the
//! facts and carries the decision out. A new rule (a gate, a
//! hold) is one more input here and one more row in the tables of
//! `tests.rs`.

use std::collections::HashMap;

use time::OffsetDateTime;

use super::holds::{self, Denial, Holds};
use super::report::{EcrNotes, GateResult, Stage};
use super::source;
use crate::argocd::{AppStatus, ArgoError};
use crate::config::{App, Target};
use crate::format::Parts;
use crate::gate::Sample;
use crate::gate::{
    self, CosignSignature, Gate, Gates, Referrers, ScanFindings, SignatureKind, Verdict,
};
use crate::manifest;
use crate::policy::{Decision, Policy};
use crate::prometheus::PrometheusError;
use crate::registry::{Image, Listing, RegistryError};
use crate::trailers::Promotion;

/// What git knows that a decision needs: the branch's files (with this
/// cycle's earlier edits on top, so a chain and two targets in one file
/// see each other) and the promotion history. The cycle's implementation
/// reads the clone; the tests' is a few maps.
pub trait Branch {
    /// The file at `path`; `None` when the branch has no such file.
    fn read(&self, path: &crate::config::RepoPath) -> Result<Option<Vec<u8>>, Unreadable>;
    /// The tag the newest promotion of `app`/`env` that wrote `digest`
    /// named: how a digest-only value is tied back to its tag once no tag
    /// in the registry points at it.
    fn tag_of_digest(&self, app: &str, env: &str, digest: &str) -> Option<String>;
    /// Since when `env` of `app` holds `value` (a tag, or a digest for the
    /// digest strategy) in `path`; `None` when history cannot tell.
    fn held_since(
        &self,
        app: &str,
        env: &str,
        value: &str,
        path: &crate::config::RepoPath,
    ) -> Option<OffsetDateTime>;
    /// Whether `revision` (what an Argo CD Application runs) contains the
    /// commit that made `env` of `app` hold `value` in `path`: it is that
    /// commit or a descendant of it. `None` when history cannot tell (the
    /// revision is not in the clone, or no commit is found).
    fn contains_promotion(
        &self,
        _app: &str,
        _env: &str,
        _value: &str,
        _path: &crate::config::RepoPath,
        _revision: &str,
    ) -> Option<bool> {
        None
    }
    /// The rollback the target's proposal branch proposes, when its
    /// commits carry `Tagwatch-Rollback-Of` (a `tagwatch rollback` of a
    /// pull-request target, waiting for review): as long as it is open,
    /// the cycle keeps proposing it rather than closing it.
    fn proposed_rollback(&self, _app: &App, _target: &Target) -> Option<crate::rollback::Order> {
        None
    }
    /// The commits that changed the value `value_of` reads from `path`,
    /// oldest first: the history holds and denials are derived from.
    fn value_events(
        &self,
        _path: &crate::config::RepoPath,
        _value_of: &dyn Fn(&[u8]) -> Option<String>,
    ) -> Vec<crate::gitops::ValueEvent> {
        Vec::new()
    }
}

/// A file the branch has but could not be read (a damaged clone, a
/// symbolic link).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Unreadable(pub String);

/// What a target's file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    /// The scalar as written.
    pub value: String,
    /// What the policy compares: the tag (or the digest, for the digest
    /// strategy), read out of whatever the format wraps it in.
    pub tag: String,
}

/// A change one target needs.
#[derive(Clone, Debug)]
pub struct Change {
    /// From, to, image, digest: what the commit's trailers say.
    pub promotion: Promotion,
    /// The image chosen, as listed.
    pub image: Image,
    /// The registry must confirm `image` just before it is written: the
    /// strategy chose by what the tag points at, or the value pins the
    /// digest, and a tag can move between listing and writing.
    pub recheck: bool,
    /// The scalar's new value.
    pub value: String,
    /// The file before and after.
    pub old: Vec<u8>,
    pub content: Vec<u8>,
    /// With `promote_from`: the source env and since when it runs the tag.
    pub source: Option<(String, Option<OffsetDateTime>)>,
    /// The gates the image passed, each with what it found (for the pull
    /// request's body).
    pub passed: Vec<(Gate, String)>,
    /// A rollback, not a promotion: its trailers go on the commit.
    pub rollback: Option<crate::rollback::Order>,
}

/// What to do with one target.
#[derive(Clone, Debug)]
pub enum Step {
    /// The file holds the choice already (or something the guards keep).
    Keep,
    /// No tag passes the rules; `why` names the rule.
    NoCandidate {
        why: String,
    },
    /// A change is due but must wait (a soak); `candidate` is its value.
    Wait {
        reason: String,
        candidate: Option<String>,
    },
    /// Write this.
    Change(Box<Change>),
    /// The registry no longer serves the chosen image as listed (set by
    /// the cycle after its re-check, never by `plan`).
    Deferred {
        reason: String,
        candidate: String,
    },
    Fail {
        stage: Stage,
        error: String,
    },
}

/// The decision and what it was made against.
#[derive(Clone, Debug)]
pub struct Planned {
    /// What the file holds, when it could be read.
    pub held: Option<Held>,
    pub step: Step,
    /// Gate facts the decision needs and `Input::gates` did not hold: the
    /// step is provisional until the cycle fetches them and plans again.
    pub needs: Vec<Need>,
    /// Every gate verdict the decision rests on, best candidate first.
    pub verdicts: Vec<GateResult>,
    /// Whether the deployed image is still served; a DR target's wait.
    pub ecr: EcrNotes,
    /// The tags this target may not take, and why (its own history and
    /// its sources').
    pub denials: Vec<Denial>,
    /// The hold in force on the target, described.
    pub hold: Option<String>,
}

impl Planned {
    fn fail(held: Option<Held>, stage: Stage, error: String) -> Planned {
        Planned::step(held, Step::Fail { stage, error })
    }

    fn step(held: Option<Held>, step: Step) -> Planned {
        Planned {
            held,
            step,
            needs: Vec::new(),
            verdicts: Vec::new(),
            ecr: EcrNotes::default(),
            denials: Vec::new(),
            hold: None,
        }
    }
}

/// The gate facts a cycle has fetched so far, by (repository, digest).
#[derive(Clone, Debug, Default)]
pub struct GateFacts {
    pub scans: HashMap<(String, String), Result<ScanFindings, RegistryError>>,
    pub referrers: HashMap<(String, String), Result<Referrers, RegistryError>>,
    pub cosign: HashMap<(String, String), Result<Vec<CosignSignature>, RegistryError>>,
    /// `analysis` answers, by the query as rendered (placeholders filled).
    pub analysis: HashMap<String, Result<Vec<Sample>, PrometheusError>>,
    /// Argo CD Applications, by name.
    pub argocd: HashMap<String, Result<AppStatus, ArgoError>>,
}

/// A gate fact a decision needs: which fact, about which image.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Need {
    pub fact: Fact,
    /// The ECR repository; for [`Fact::Argocd`], the Application's name.
    pub repository: String,
    /// The image's digest; empty for [`Fact::Argocd`].
    pub digest: String,
    /// For [`Fact::Analysis`]: the rendered PromQL query to evaluate.
    pub query: Option<String>,
}

/// What the registry is asked for an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fact {
    /// `DescribeImageScanFindings`.
    Scan,
    /// `ListImageReferrers`.
    Referrers,
    /// cosign's `.sig` image and its layers, to verify with a key.
    Cosign,
    /// Prometheus: the target's `analysis` query, at the end of the soak.
    Analysis,
    /// `GET /api/v1/applications/{name}` from Argo CD.
    Argocd,
}

/// The facts one target is decided on.
pub struct Input<'a> {
    pub app: &'a App,
    pub target: &'a Target,
    /// The app repository's listing; `None` when it was not listed.
    pub listing: Option<&'a Result<Listing, RegistryError>>,
    /// The policy's best image in `listing`, when the cycle chose it
    /// already (while other repositories were still listed).
    pub best: Option<Option<&'a Image>>,
    /// The gate facts fetched so far this cycle.
    pub gates: &'a GateFacts,
    pub now: OffsetDateTime,
    /// A DR target's replica listing (its region's repository); `None`
    /// for a target without `region`/`registry_id`, or when not listed.
    pub replica: Option<&'a Result<Listing, RegistryError>>,
}

/// Decides one target.
pub fn plan(input: &Input<'_>, branch: &dyn Branch) -> Planned {
    let mut walk = Walk::default();
    let mut planned = decide_target(input, branch, &mut walk);
    planned.needs = walk.needs;
    planned.verdicts = walk.verdicts;
    // Every DR target reports its wait, zero when it is not waiting.
    planned.ecr.replication_wait = walk.replication_wait.or(input
        .target
        .replica
        .as_ref()
        .map(|_| std::time::Duration::ZERO));
    // The image the file points at, checked against the listing the
    // target is served from (its replica's, for a DR target).
    let served = match (&input.target.replica, input.replica, input.listing) {
        (Some(_), Some(Ok(replica)), _) => Some(replica),
        (None, _, Some(Ok(listing))) => Some(listing),
        _ => None,
    };
    if let (Some(listing), Some(held)) = (served, &planned.held) {
        planned.ecr.missing = deployed_missing(input.target, listing, held);
    }
    planned.denials = walk.denials;
    planned.hold = walk.hold;
    planned
}

/// Why the image `held` names is not served by `listing`, or `None` when
/// it is (or the value names no tag to look for). The listing holds the
/// tagged `ACTIVE` images and, apart, the archived ones; a digest-only
/// value is not judged, as an untagged image is not listed.
pub fn deployed_missing(target: &Target, listing: &Listing, held: &Held) -> Option<String> {
    let tag = target.format.current_tag(&held.value)?;
    if tag.is_empty() || listing.images.iter().any(|i| i.tag == tag) {
        return None;
    }
    let repository = &listing.repository;
    Some(if listing.archived.iter().any(|i| i.tag == tag) {
        format!(
            "deployed image {repository}:{tag} is archived in ECR; a pull fails until it is restored"
        )
    } else {
        format!(
            "deployed image {repository}:{tag} is not in the registry (deleted, or expired by a lifecycle rule)"
        )
    })
}

/// What the gates found while one target was decided.
#[derive(Default)]
struct Walk {
    needs: Vec<Need>,
    verdicts: Vec<GateResult>,
    /// Candidates better than the choice that a gate kept out, best first.
    blocked: Vec<(String, Verdict)>,
    /// What the chosen image passed.
    passed: Vec<(Gate, String)>,
    /// A DR target waiting for replication: for how long.
    replication_wait: Option<std::time::Duration>,
    /// For the report: the target's denials and its hold.
    denials: Vec<Denial>,
    hold: Option<String>,
}

impl Walk {
    /// The step for candidates the gates kept out: waiting on the best one
    /// still pending, else no candidate; each named with its reason.
    fn blocked_step(&self, prefix: &str) -> Option<Step> {
        if self.blocked.is_empty() {
            return None;
        }
        let list: Vec<String> = self
            .blocked
            .iter()
            .map(|(tag, v)| format!("{tag}: {}", v.text()))
            .collect();
        let list = list.join("; ");
        Some(
            match self
                .blocked
                .iter()
                .find(|(_, v)| matches!(v, Verdict::Pending(_)))
            {
                Some((tag, _)) => Step::Wait {
                    reason: format!("{prefix}{list}"),
                    candidate: Some(tag.clone()),
                },
                None => Step::NoCandidate {
                    why: format!("in the registry ({prefix}{list})"),
                },
            },
        )
    }
}

/// One image through every gate of `gates`.
enum Checked {
    Pass(Vec<(Gate, String)>),
    /// The first gate that kept it out.
    Blocked(Verdict),
    /// Facts still to fetch.
    Unknown(Vec<Need>),
}

fn check(
    gates: &Gates,
    listing: &Listing,
    image: &Image,
    facts: &GateFacts,
    walk: &mut Walk,
) -> Checked {
    let (verdicts, needs) = gate_verdicts(gates, listing, image, facts);
    // A gate that failed already decides: nothing more is fetched for it.
    let failed = verdicts.iter().find(|(_, v)| !v.passes()).cloned();
    for (gate, verdict) in &verdicts {
        walk.verdicts.push(GateResult {
            gate: *gate,
            tag: image.tag.clone(),
            verdict: verdict.clone(),
        });
    }
    match failed {
        Some((_, verdict)) => Checked::Blocked(verdict),
        None if needs.is_empty() => Checked::Pass(
            verdicts
                .into_iter()
                .map(|(g, v)| (g, v.text().to_string()))
                .collect(),
        ),
        None => Checked::Unknown(needs),
    }
}

/// Every gate's verdict on `image` that `facts` can decide, and the facts
/// still needed for the others. `policy test --explain` shows the same.
pub fn gate_verdicts(
    gates: &Gates,
    listing: &Listing,
    image: &Image,
    facts: &GateFacts,
) -> (Vec<(Gate, Verdict)>, Vec<Need>) {
    let key = (listing.repository.clone(), image.digest.clone());
    let need = |fact| Need {
        fact,
        repository: key.0.clone(),
        digest: key.1.clone(),
        query: None,
    };
    let mut needs = Vec::new();
    let mut verdicts = Vec::new();
    if let Some(scan) = &gates.scan {
        match facts.scans.get(&key) {
            None => needs.push(need(Fact::Scan)),
            Some(Err(e)) => verdicts.push((Gate::Scan, Verdict::Error(format!("scan: {e}")))),
            Some(Ok(found)) => verdicts.push((Gate::Scan, gate::scan_verdict(scan, found))),
        }
    }
    if let Some(kind) = gates.signature {
        let legacy_tag = gate::cosign_tag(&image.digest);
        let legacy = listing.images.iter().any(|i| i.tag == legacy_tag);
        // With a key, only a legacy `.sig` signature that verifies counts
        // (config allows a key only with "cosign").
        let verdict = match (&gates.cosign_key, kind) {
            (Some(_), SignatureKind::Cosign) if !legacy => Some(Verdict::Fail(format!(
                "no cosign signature tag {legacy_tag} to verify"
            ))),
            (Some(k), SignatureKind::Cosign) => match facts.cosign.get(&key) {
                None => {
                    needs.push(need(Fact::Cosign));
                    None
                }
                Some(Ok(found)) => Some(gate::cosign_verdict(k, &image.digest, found)),
                Some(Err(e)) => Some(Verdict::Error(format!("signature: {e}"))),
            },
            _ => {
                let verdict = match facts.referrers.get(&key) {
                    None => gate::signature_verdict(kind, legacy, None),
                    Some(Ok(types)) => gate::signature_verdict(kind, legacy, Some(types)),
                    Some(Err(e)) => Some(Verdict::Error(format!("signature: {e}"))),
                };
                if verdict.is_none() {
                    needs.push(need(Fact::Referrers));
                }
                verdict
            }
        };
        if let Some(v) = verdict {
            verdicts.push((Gate::Signature, v));
        }
    }
    (verdicts, needs)
}

/// The gated choice among `ranked` (best first): the first candidate that
/// passes every gate. `stop_at`, the tag the file holds, ends the walk
/// (nothing below it would be written anyway); the caller leaves it `None`
/// when the format pins a digest (the same tag may point at a new image,
/// which must pass). `Err`
/// is the step when the walk cannot choose yet, or nothing passed.
fn walk_gates<'a>(
    gates: &Gates,
    listing: &Listing,
    ranked: &[&'a Image],
    stop_at: Option<&str>,
    facts: &GateFacts,
    walk: &mut Walk,
    prefix: &str,
) -> Result<Option<&'a Image>, Step> {
    for &image in ranked {
        if stop_at == Some(image.tag.as_str()) {
            return Ok(Some(image));
        }
        match check(gates, listing, image, facts, walk) {
            Checked::Pass(passed) => {
                walk.passed = passed;
                return Ok(Some(image));
            }
            Checked::Blocked(verdict) => walk.blocked.push((image.tag.clone(), verdict)),
            Checked::Unknown(needs) => {
                walk.needs = needs;
                // Provisional: the cycle asks the registry and plans again.
                return Err(Step::Wait {
                    reason: format!("{prefix}the gates of {} are not checked yet", image.tag),
                    candidate: Some(image.tag.clone()),
                });
            }
        }
    }
    match walk.blocked_step(prefix) {
        Some(step) => Err(step),
        None => Ok(None),
    }
}

fn decide_target(input: &Input<'_>, branch: &dyn Branch, walk: &mut Walk) -> Planned {
    let Input {
        app, target, now, ..
    } = *input;
    let at = |e: &dyn std::fmt::Display| format!("{}: {}: {e}", target.file, target.key);
    // The file first, so that what the env runs is known (and shown) even
    // when the registry failed; the registry's failure still comes first.
    let read = match branch.read(&target.file) {
        Ok(Some(bytes)) => match manifest::get(&bytes, &target.key, &target.document) {
            Ok(scalar) => Ok((bytes, Some(scalar.value))),
            // A Kustomize entry, or its field, that is not there yet is added.
            Err(manifest::EditError::NotFound { .. }) if target.kustomize.is_some() => {
                Ok((bytes, None))
            }
            Err(e) => Err((Stage::Manifest, at(&e))),
        },
        Ok(None) => Err((
            Stage::Manifest,
            format!("{}: no such file on the branch", target.file),
        )),
        Err(e) => Err((Stage::Git, e.to_string())),
    };
    let listing = match listing_of(app, input.listing) {
        Ok(listing) => listing,
        Err(error) => {
            // Without the listing, the value is read through the format only.
            let held = read.ok().and_then(|(_, value)| value).map(|value| Held {
                tag: target
                    .format
                    .current_tag(&value)
                    .unwrap_or(&value)
                    .to_string(),
                value,
            });
            return Planned::fail(held, Stage::Registry, error.to_string());
        }
    };
    let (file, current) = match read {
        Ok(read) => read,
        Err((stage, error)) => return Planned::fail(None, stage, error),
    };
    let policy = app.policy_for(target);
    // A DR target is served from its replica: what it holds is read, and
    // its value written, against that listing; its candidate still comes
    // from the source env, as listed in the primary.
    let own = match (&target.replica, input.replica) {
        (None, _) => Ok(listing),
        (Some(_), Some(Ok(replica))) => Ok(replica),
        (Some(r), Some(Err(e))) => Err(format!("replica in {}: {e}", r.location.label())),
        (Some(r), None) => Err(format!(
            "replica {} in {} was not listed",
            r.repository,
            r.location.label()
        )),
    };
    let unfiltered = listing;
    let held = current.as_ref().map(|value| Held {
        tag: held_tag(
            app,
            target,
            policy,
            own.as_ref().copied().unwrap_or(listing),
            value,
            now,
            branch,
        ),
        value: value.clone(),
    });
    let own = match own {
        Ok(own) => own,
        Err(error) => return Planned::fail(held, Stage::Registry, error),
    };

    // A rollback ordered now, or one a pull request still proposes while
    // the env still runs the tag it rolls back.
    let proposed = match target.update {
        crate::config::Update::PullRequest if target.rollback.is_none() => branch
            .proposed_rollback(app, target)
            .filter(|o| held.as_ref().is_some_and(|h| h.tag == o.of)),
        _ => None,
    };
    if let Some(order) = target.rollback.as_ref().or(proposed.as_ref()) {
        let step = rollback_step(app, target, own, held.as_ref(), &file, order);
        return Planned::step(held, step);
    }
    // A promotion that goes bad inside its verify window is rolled back,
    // held or not: a hold stops promotions, not their repair.
    if let Some(step) = verify_step(input, held.as_ref(), own, &file, branch, walk) {
        return Planned::step(held, step);
    }
    // Holds and denials are facts git holds: a held target takes nothing,
    // and a denied tag is no candidate, here or downstream of where it was
    // denied. Newer tags still flow.
    let holds = match read_holds(branch) {
        Ok(holds) => holds,
        Err(e) => return Planned::fail(held, Stage::Manifest, e.to_string()),
    };
    if let Some(hold) = holds.hold_on(&app.name, &target.env, now) {
        walk.hold = Some(hold.describe());
        return Planned::step(
            held,
            Step::Wait {
                reason: hold.describe(),
                candidate: None,
            },
        );
    }
    let denied = denials_for(app, target, &holds, listing, now, branch);
    walk.denials = denied.clone();
    let filtered;
    let listing = if denied.is_empty() {
        listing
    } else {
        let mut narrowed = listing.clone();
        narrowed
            .images
            .retain(|i| !denied.iter().any(|d| d.tag == policy.value_of(i)));
        filtered = narrowed;
        &filtered
    };

    // With `promote_from`, the only image there is to choose is the one
    // the source env runs.
    let source = match &target.promote_from {
        Some(env) => match source::resolve(app, env, unfiltered, branch, now) {
            Ok(source) => {
                if let Some(d) = denied.iter().find(|d| d.tag == source.held) {
                    let why = format!("from {env}: it runs {}", d.describe());
                    return Planned::step(held, Step::NoCandidate { why });
                }
                Some(source)
            }
            Err(step) => return Planned::step(held, step),
        },
        None => None,
    };
    let best = match (&source, input.best) {
        (Some(source), _) => match policy.judge(&source.image, now) {
            Ok(_) => Some(&source.image),
            Err(reason) => {
                let why = format!(
                    "from {}: it runs {}, which {}'s policy refuses ({reason})",
                    source.env, source.held, target.env
                );
                return Planned::step(held, Step::NoCandidate { why });
            }
        },
        // The cycle chose before denials were known; choose again.
        (None, Some(best)) if denied.is_empty() => best,
        (None, _) => policy.best(&listing.images, now),
    };
    let candidates: &[Image] = match &source {
        Some(source) => std::slice::from_ref(&source.image),
        None => &listing.images,
    };
    // The gates walk the policy's candidates best first and take the first
    // that passes; they are facts like the listing, fetched by the cycle
    // for exactly the images this walk asks about.
    let gates = &target.gates;
    let best = if gates.any() {
        let (ranked, prefix) = match &source {
            Some(source) => (vec![&source.image], format!("from {}: ", source.env)),
            None => (policy.ranked(&listing.images, now), String::new()),
        };
        let stop_at = held
            .as_ref()
            .filter(|h| !target.format.pins_digest(&h.value))
            .map(|h| h.tag.as_str());
        match walk_gates(gates, listing, &ranked, stop_at, input.gates, walk, &prefix) {
            Ok(best) => best,
            Err(step) => return Planned::step(held, step),
        }
    } else {
        best
    };

    let chosen = held
        .as_ref()
        .map(|h| (h, choose(policy, target, candidates, best, h, now)));
    let (image, from) = match chosen {
        Some((h, Ok(Chosen::Image(image)))) => (image, h.tag.clone()),
        Some((h, Ok(Chosen::Keep))) => {
            // Kept because every better candidate failed a gate, or was
            // denied: say so.
            let step = walk
                .blocked_step("")
                // With promote_from the only candidate is the source's
                // value, and that one is not denied.
                .or_else(|| {
                    source
                        .is_none()
                        .then(|| denied_step(policy, unfiltered, &denied, &h.tag, now))
                        .flatten()
                })
                .unwrap_or(Step::Keep);
            return Planned::step(held, step);
        }
        Some((_, Ok(Chosen::Nothing(why)))) => {
            return Planned::step(held, Step::NoCandidate { why });
        }
        Some((_, Err(e))) => {
            let error = at(&e);
            return Planned::fail(held, Stage::Policy, error);
        }
        None => match best {
            Some(best) => (best, "(none)".to_string()),
            None => {
                return Planned::step(
                    held,
                    Step::NoCandidate {
                        why: "in the registry; the entry stays absent".into(),
                    },
                );
            }
        },
    };
    let (value, content) = match rewrite(target, own, image, held.as_ref(), &file) {
        Ok(Some(written)) => written,
        Ok(None) => return Planned::step(held, Step::Keep),
        Err(step) => return Planned::step(held, step),
    };
    let to = policy.value_of(image).to_string();

    // A DR target takes the source's image only once ECR has replicated
    // the same digest into its region; the same tag on another digest
    // there is refused, never written.
    // (`tagwatch promote` into a DR target has no source: the tag it names
    // is held to the same rule.)
    if let Some(replica) = &target.replica {
        let region = replica.location.label();
        let (tag, digest) = (&image.tag, &image.digest);
        let runs = match &source {
            Some(source) => format!("which {} runs", source.env),
            None => "which the primary region lists".to_string(),
        };
        match own.images.iter().find(|i| &i.tag == tag) {
            Some(there) if &there.digest == digest => {}
            Some(there) => {
                let why = format!(
                    "refused: {region} has {}:{tag} at digest {}, not {digest}, {runs}",
                    own.repository, there.digest
                );
                return Planned::step(held, Step::NoCandidate { why });
            }
            None => {
                walk.replication_wait = Some(
                    source
                        .as_ref()
                        .and_then(|s| s.since)
                        .map(|since| (now - since).try_into().unwrap_or_default())
                        .unwrap_or_default(),
                );
                return Planned::step(
                    held,
                    Step::Wait {
                        reason: format!("not yet replicated to {region} (digest {digest})"),
                        candidate: Some(to),
                    },
                );
            }
        }
    }

    // The soak is the last rule: a target that holds its source's value
    // already, or that its own policy keeps, is not "waiting". With an
    // Argo CD Application on the source env, the soak counts from when
    // Argo CD reports it running the promotion healthily.
    let mut soaked_since = source.as_ref().and_then(|s| s.since);
    if let Some(source) = &source {
        let mut soaked = source.clone();
        if let Some(name) = source_argocd_app(app, &source.env) {
            match argocd_gate(app, name, source, input.gates, branch, walk) {
                Ok(since) => {
                    soaked.since = since;
                    soaked_since = since;
                }
                Err(reason) => {
                    return Planned::step(
                        held,
                        Step::Wait {
                            reason,
                            candidate: Some(to),
                        },
                    );
                }
            }
        }
        if let Some(reason) = source::soaking(&soaked, target.soak, now) {
            return Planned::step(
                held,
                Step::Wait {
                    reason,
                    candidate: Some(to),
                },
            );
        }
    }
    // `analysis` is the soak's last word: asked only once the soak is over,
    // and a query that cannot be answered keeps the target waiting.
    if let Some(source) = &source
        && let Some(analysis) = &target.analysis
    {
        let query = analysis.render(&app.name, &source.env, &source.image.tag);
        let verdict = match input.gates.analysis.get(&query) {
            None => {
                walk.needs.push(Need {
                    fact: Fact::Analysis,
                    repository: listing.repository.clone(),
                    digest: image.digest.clone(),
                    query: Some(query.clone()),
                });
                // Provisional: the cycle asks Prometheus and plans again.
                let reason = format!("from {}: analysis `{query}` is not checked yet", source.env);
                return Planned::step(
                    held,
                    Step::Wait {
                        reason,
                        candidate: Some(to),
                    },
                );
            }
            Some(Ok(samples)) => gate::analysis_verdict(&query, samples),
            Some(Err(e)) => Verdict::Error(format!("analysis `{query}`: {e}")),
        };
        walk.verdicts.push(GateResult {
            gate: Gate::Analysis,
            tag: image.tag.clone(),
            verdict: verdict.clone(),
        });
        if !verdict.passes() {
            let reason = format!("from {}: {}", source.env, verdict.text());
            return Planned::step(
                held,
                Step::Wait {
                    reason,
                    candidate: Some(to),
                },
            );
        }
        walk.passed
            .push((Gate::Analysis, verdict.text().to_string()));
    }

    Planned::step(
        held,
        Step::Change(Box::new(Change {
            // The trailers speak in tags (or digests, for the digest
            // strategy), whatever the file's format wraps them in.
            promotion: Promotion {
                app: app.name.clone(),
                env: target.env.clone(),
                image: own.image_name(),
                from,
                to,
                digest: image.digest.clone(),
                pushed_at: image.pushed_at,
            },
            image: image.clone(),
            recheck: policy.needs_recheck() || target.format.pins_digest(&value),
            value,
            old: file,
            content,
            // Since when the soak counted (Argo CD's moment, with a gate).
            source: source.map(|s| (s.env, soaked_since)),
            passed: std::mem::take(&mut walk.passed),
            rollback: None,
        })),
    )
}

/// The value `image` renders to in the target's format and the file with
/// it written; `None` when the file holds it already.
fn rewrite(
    target: &Target,
    listing: &Listing,
    image: &Image,
    held: Option<&Held>,
    file: &[u8],
) -> Result<Option<(String, Vec<u8>)>, Step> {
    let fail = |e: &dyn std::fmt::Display| Step::Fail {
        stage: Stage::Manifest,
        error: format!("{}: {}: {e}", target.file, target.key),
    };
    let current = held.map(|h| h.value.as_str()).unwrap_or_default();
    let host = listing.registry_host();
    let parts = Parts {
        registry: &host,
        repository: &listing.repository,
        tag: &image.tag,
        digest: &image.digest,
    };
    let value = target
        .format
        .render(current, &parts)
        .map_err(|e| fail(&e))?;
    if value == current {
        return Ok(None);
    }
    let written = match &target.kustomize {
        Some(k) => manifest::set_kustomize_image(file, &k.image, k.field, &value),
        None => manifest::set(file, &target.key, &target.document, &value),
    };
    Ok(written
        .map_err(|e| fail(&e))?
        .map(|content| (value, content)))
}

/// A rollback of `target` to `order.to`: a change with the order's
/// trailers, past every rule a promotion obeys (holds, denials, never
/// downgrade): going back is the point.
fn rollback_step(
    app: &App,
    target: &Target,
    listing: &Listing,
    held: Option<&Held>,
    file: &[u8],
    order: &crate::rollback::Order,
) -> Step {
    let policy = app.policy_for(target);
    let Some(image) = listing
        .images
        .iter()
        .find(|i| policy.value_of(i) == order.to)
    else {
        return Step::NoCandidate {
            why: format!("in the registry (no image {} to roll back to)", order.to),
        };
    };
    let (value, content) = match rewrite(target, listing, image, held, file) {
        Ok(Some(written)) => written,
        Ok(None) => return Step::Keep,
        Err(step) => return step,
    };
    Step::Change(Box::new(Change {
        promotion: Promotion {
            app: app.name.clone(),
            env: target.env.clone(),
            image: listing.image_name(),
            from: held
                .map(|h| h.tag.clone())
                .unwrap_or_else(|| "(none)".into()),
            to: order.to.clone(),
            digest: image.digest.clone(),
            pushed_at: image.pushed_at,
        },
        image: image.clone(),
        recheck: false,
        value,
        old: file.to_vec(),
        content,
        source: None,
        passed: Vec::new(),
        rollback: Some(order.clone()),
    }))
}

/// The `verify` rule: while the target holds what tagwatch last promoted
/// there (not a person's value, not a rollback), the promotion is watched.
/// Inside `verify_for` the query must return a sample each cycle; an empty
/// vector rolls the target back to the value before. With `argocd_app`, an
/// Application that went Degraded inside `verify_for` (at a revision that
/// contains the promotion) and has stayed Degraded for `verify_for` does
/// the same. The query is an `analysis` fact (the same client, keyed by the
/// rendered query), the Application an `argocd` fact. `None` is "no verify
/// rule rolls back now".
fn verify_step(
    input: &Input<'_>,
    held: Option<&Held>,
    listing: &Listing,
    file: &[u8],
    branch: &dyn Branch,
    walk: &mut Walk,
) -> Option<Step> {
    let Input { app, target, .. } = *input;
    let verify = target.verify.as_ref()?;
    let held = held?;
    let value_of = |bytes: &[u8]| tag_in(target, bytes);
    let events = branch.value_events(&target.file, &value_of);
    let last = events.last()?;
    let promotion =
        Promotion::parse(&last.message).filter(|p| p.app == app.name && p.env == target.env)?;
    // Never a rollback of a rollback: that would undo the repair.
    if promotion.to != held.tag
        || holds::trailer(&last.message, crate::rollback::ROLLBACK_OF).is_some()
    {
        return None;
    }
    let previous = last.from.clone()?;
    let window = time::Duration::try_from(verify.window).ok()?;
    let now = input.now;
    let rollback = |cause, reason| {
        let order = crate::rollback::Order {
            to: previous.clone(),
            of: held.tag.clone(),
            cause,
            reason,
        };
        rollback_step(app, target, listing, Some(held), file, &order)
    };
    if let Some(query) = &verify.query
        && now < last.at + window
    {
        let rendered = query.render(&app.name, &target.env, &held.tag);
        match input.gates.analysis.get(&rendered) {
            None => {
                walk.needs.push(Need {
                    fact: Fact::Analysis,
                    repository: listing.repository.clone(),
                    digest: String::new(),
                    query: Some(rendered.clone()),
                });
                // Provisional: the cycle asks Prometheus and plans again.
                return Some(Step::Wait {
                    reason: format!("verify `{rendered}` is not checked yet"),
                    candidate: None,
                });
            }
            Some(Ok(samples)) if samples.is_empty() => {
                let reason = format!("verify `{rendered}` returned an empty vector");
                return Some(rollback(crate::rollback::Cause::Verify, reason));
            }
            // A sample passes; an unanswered query is no reason to roll
            // back (a Prometheus outage must not undo every promotion).
            Some(_) => {}
        }
    }
    let name = target.argocd_app.as_deref()?;
    // Degraded from inside the window, for a whole window: watched until
    // two windows after the promotion.
    if now >= last.at + window + window {
        return None;
    }
    let status = match input.gates.argocd.get(name) {
        None => {
            walk.needs.push(Need {
                fact: Fact::Argocd,
                repository: name.to_string(),
                digest: String::new(),
                query: None,
            });
            return Some(Step::Wait {
                reason: format!("verify: Argo CD application {name} is not checked yet"),
                candidate: None,
            });
        }
        Some(Ok(status)) if status.health == "Degraded" => status,
        Some(_) => return None,
    };
    let revision = status.revision.as_deref()?;
    if branch.contains_promotion(&app.name, &target.env, &held.tag, &target.file, revision)
        != Some(true)
    {
        return None;
    }
    let since = status.since.map_or(last.at, |s| s.max(last.at));
    if since >= last.at + window || now - since < window {
        return None;
    }
    let said = status
        .message
        .as_deref()
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
    let reason = format!(
        "argocd {name} Degraded since {}{said}",
        crate::trailers::format_time(since)
    );
    Some(rollback(crate::rollback::Cause::Argocd, reason))
}

/// The tags `target` may not take now (its own history and its sources'),
/// minus the releases the holds file records: what the cycle excludes,
/// for `policy test --explain`.
pub fn denied(
    app: &App,
    target: &Target,
    listing: &Listing,
    now: OffsetDateTime,
    branch: &dyn Branch,
) -> Result<Vec<Denial>, holds::HoldsError> {
    let holds = read_holds(branch)?;
    Ok(denials_for(app, target, &holds, listing, now, branch))
}

/// The holds file on the branch; none is no holds.
fn read_holds(branch: &dyn Branch) -> Result<Holds, holds::HoldsError> {
    let path = crate::config::RepoPath::new(holds::HOLDS_FILE).expect("a valid path");
    match branch.read(&path) {
        Ok(Some(bytes)) => Holds::parse(&String::from_utf8_lossy(&bytes)),
        Ok(None) => Ok(Holds::default()),
        Err(e) => Err(holds::HoldsError::Syntax(e.to_string())),
    }
}

/// The tags `target` must not take: denied in its own history or in the
/// history of any env up its `promote_from` chain.
pub fn denials_for(
    app: &App,
    target: &Target,
    holds: &Holds,
    listing: &Listing,
    now: OffsetDateTime,
    branch: &dyn Branch,
) -> Vec<Denial> {
    let policy = app.policy_for(target);
    let below = |a: &str, b: &str| orders_below(policy, listing, now, a, b);
    let mut out = Vec::new();
    let mut env = Some(target);
    // Bounded by the number of envs: config refuses a promote_from cycle,
    // and this stops even if one got through.
    for _ in 0..app.targets.len() {
        let Some(t) = env else { break };
        let value_of = |bytes: &[u8]| tag_in(t, bytes);
        let events = branch.value_events(&t.file, &value_of);
        out.extend(holds::denials(&app.name, &t.env, &events, &below, holds));
        env = t
            .promote_from
            .as_ref()
            .and_then(|from| app.targets.iter().find(|s| &s.env == from));
    }
    out
}

/// The tag (or digest) `target`'s scalar holds in a file's `bytes`, read
/// through its format: what value histories are told in.
pub fn tag_in(target: &Target, bytes: &[u8]) -> Option<String> {
    let value = manifest::get(bytes, &target.key, &target.document)
        .ok()?
        .value;
    Some(
        target
            .format
            .current_tag(&value)
            .unwrap_or(&value)
            .to_string(),
    )
}

/// Whether `lower` orders below `upper` under `policy` (never downgrade's
/// order). A tag the policy cannot order (not a version, filtered out)
/// is not below anything: a person's edit to it is not a revert.
fn orders_below(
    policy: &Policy,
    listing: &Listing,
    now: OffsetDateTime,
    lower: &str,
    upper: &str,
) -> bool {
    let synthetic = Image {
        tag: upper.to_string(),
        digest: String::new(),
        pushed_at: None,
    };
    let up = listing
        .images
        .iter()
        .find(|i| i.tag == upper)
        .unwrap_or(&synthetic);
    if policy.judge(up, now).is_err() {
        return false;
    }
    matches!(
        policy.decide_given(Some(up), &listing.images, lower, now),
        Ok(Decision::Promote(_))
    )
}

/// A target kept at `held` while a denied tag above it is listed: no
/// candidate, and why.
fn denied_step(
    policy: &Policy,
    listing: &Listing,
    denied: &[Denial],
    held: &str,
    now: OffsetDateTime,
) -> Option<Step> {
    let above: Vec<String> = denied
        .iter()
        .filter(|d| listing.images.iter().any(|i| policy.value_of(i) == d.tag))
        .filter(|d| orders_below(policy, listing, now, held, &d.tag))
        .map(Denial::describe)
        .collect();
    (!above.is_empty()).then(|| Step::NoCandidate {
        why: format!("in the registry ({})", above.join("; ")),
    })
}

/// The `argocd_app` of `env`, the env a target promotes from.
fn source_argocd_app<'a>(app: &'a App, env: &str) -> Option<&'a str> {
    app.targets
        .iter()
        .find(|t| t.env == env)
        .and_then(|t| t.argocd_app.as_deref())
}

/// The Argo CD health gate on the source env: its Application must be
/// Synced and Healthy at a revision that contains the promotion. `Ok` is
/// since when the source runs the value as far as the soak is concerned
/// (the later of the commit and Argo CD's moment); `Err` is why the target
/// waits. The verdict is recorded in `walk` (and, once it passes, in what
/// the change passed).
fn argocd_gate(
    app: &App,
    name: &str,
    source: &source::Source,
    facts: &GateFacts,
    branch: &dyn Branch,
    walk: &mut Walk,
) -> Result<Option<OffsetDateTime>, String> {
    let env = &source.env;
    let mut record = |verdict: Verdict| {
        walk.verdicts.push(GateResult {
            gate: Gate::Argocd,
            tag: source.held.clone(),
            verdict: verdict.clone(),
        });
        verdict
    };
    let status = match facts.argocd.get(name) {
        None => {
            // Provisional: the cycle asks Argo CD and plans again.
            walk.needs.push(Need {
                fact: Fact::Argocd,
                repository: name.to_string(),
                digest: String::new(),
                query: None,
            });
            return Err(format!(
                "from {env}: Argo CD application {name} is not checked yet"
            ));
        }
        Some(Err(e)) => {
            let v = record(Verdict::Error(format!("{e}")));
            return Err(format!("from {env}: {}", v.text()));
        }
        Some(Ok(status)) => status,
    };
    let revision = status.revision.as_deref().unwrap_or("");
    let short = &revision[..revision.len().min(12)];
    if !status.synced_and_healthy() {
        let said = status
            .message
            .as_deref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        let text = format!(
            "argocd {name} is {} and {}{said}",
            status.sync, status.health
        );
        let v = record(if status.health == "Progressing" {
            Verdict::Pending(text)
        } else {
            Verdict::Fail(text)
        });
        return Err(format!("from {env}: {}", v.text()));
    }
    let source_target = app.targets.iter().find(|t| &t.env == env);
    let contains = match (source_target, revision.is_empty()) {
        (Some(t), false) => {
            branch.contains_promotion(&app.name, env, &source.held, &t.file, revision)
        }
        _ => None,
    };
    if contains != Some(true) {
        let why = match contains {
            Some(_) => "which does not contain",
            None => "which cannot be told to contain",
        };
        let v = record(Verdict::Pending(format!(
            "argocd {name} is Synced and Healthy at {short}, {why} the commit that gave {env} {}",
            source.held
        )));
        return Err(format!("from {env}: {}", v.text()));
    }
    let since = source.since.into_iter().chain(status.since).max();
    let text = format!("argocd {name} Synced and Healthy at {short}");
    record(Verdict::Pass(text.clone()));
    walk.passed.push((Gate::Argocd, text));
    Ok(since)
}

/// Why a target has no listing to choose from.
#[derive(Debug, thiserror::Error)]
pub enum NoListing<'a> {
    #[error("{0}")]
    Failed(&'a RegistryError),
    #[error("repository {0:?} was not listed")]
    NotListed(&'a str),
}

/// The app's listing, or why there is none.
pub(super) fn listing_of<'a>(
    app: &'a App,
    listing: Option<&'a Result<Listing, RegistryError>>,
) -> Result<&'a Listing, NoListing<'a>> {
    match listing {
        Some(Ok(listing)) => Ok(listing),
        Some(Err(e)) => Err(NoListing::Failed(e)),
        None => Err(NoListing::NotListed(&app.repository)),
    }
}

/// What the policy compares a file's value by: the digest it pins for the
/// digest strategy, otherwise the tag it holds, read out of whatever shape
/// the format gives it, or found by digest in the listing or in history.
pub(super) fn held_tag(
    app: &App,
    target: &Target,
    policy: &Policy,
    listing: &Listing,
    value: &str,
    now: OffsetDateTime,
    branch: &dyn Branch,
) -> String {
    let format = &target.format;
    let held = if policy.follows_digest() {
        format.current_digest(value).map(str::to_string)
    } else {
        format.current_tag(value).map(str::to_string).or_else(|| {
            let digest = format.current_digest(value)?;
            // The greatest candidate on that digest, so the listing's order
            // never decides which tag the file is taken to hold.
            policy
                .greatest_on_digest(&listing.images, digest, now)
                .map(|i| i.tag.clone())
                // No tag points at it any more (the tag was pushed again):
                // the promotion commit that wrote it says which tag it was.
                .or_else(|| branch.tag_of_digest(&app.name, &target.env, digest))
        })
    };
    held.unwrap_or_else(|| value.to_string())
}

/// What the policy chose for a file that holds `held`.
enum Chosen<'a> {
    Image(&'a Image),
    Keep,
    Nothing(String),
}

fn choose<'a>(
    policy: &Policy,
    target: &Target,
    images: &'a [Image],
    best: Option<&'a Image>,
    held: &Held,
    now: OffsetDateTime,
) -> Result<Chosen<'a>, crate::policy::PolicyError> {
    Ok(match policy.decide_given(best, images, &held.tag, now)? {
        Decision::Promote(image) => Chosen::Image(image),
        // The same tag can point at a new image (it was pushed again); a
        // format that pins the digest must follow it.
        Decision::Keep if target.format.pins_digest(&held.value) => match best {
            Some(best) if best.tag == held.tag => Chosen::Image(best),
            _ => Chosen::Keep,
        },
        Decision::Keep => Chosen::Keep,
        Decision::NoCandidate { why } => Chosen::Nothing(format!("in the registry ({why})")),
    })
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "plan_argocd_tests.rs"]
mod argocd_tests;

#[cfg(test)]
#[path = "plan_hold_tests.rs"]
mod hold_tests;
