//! `[[apps]]` and their `[[apps.targets]]`: the validated [`App`] and
//! [`Target`], names, repository paths, policies, and the checks across apps
//! (duplicate names, two targets writing one scalar, `promote_from` chains).

use std::collections::HashSet;
use std::fmt;
use std::path::{Component, Path};
use std::time::Duration;

use toml::Spanned;

use crate::format::{Format, Formats};
use crate::gate::{Analysis, CosignKey, Gates, Pending, ScanGate, Severity, SignatureKind};
use crate::manifest::{Document, KeyPath};
use crate::policy::{Patterns, Policy, PolicySpec, Strategy};

use super::ConfigError;
use super::raw::{RawApp, RawDocument, RawGates, RawTarget};
use super::settings::{ForgeSettings, ProposalOptions};
use super::source::{Source, line_of};

/// How a target's change reaches the branch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Update {
    /// A commit straight onto the branch (dev).
    Commit,
    /// A pull request from `tagwatch/<app>/<env>` for someone to review (prod).
    PullRequest,
}

impl Update {
    pub fn as_str(self) -> &'static str {
        match self {
            Update::Commit => "commit",
            Update::PullRequest => "pull-request",
        }
    }
}

impl App {
    /// The listing the app's own candidates come from.
    pub fn list_key(&self) -> crate::image::ListKey {
        crate::image::ListKey {
            location: Default::default(),
            repository: self.repository.clone(),
            artifact: self.artifact,
        }
    }

    /// The policy that decides `target`: its own, else the app's.
    pub fn policy_for<'a>(&'a self, target: &'a Target) -> &'a Policy {
        target.policy.as_ref().unwrap_or(&self.policy)
    }
}

/// One watched image and where its tag is written.
#[derive(Clone, Debug)]
pub struct App {
    /// Unique name; used in commit subjects and trailers.
    pub name: String,
    /// The ECR repository name.
    pub repository: String,
    /// How a candidate tag is chosen.
    pub policy: Policy,
    /// Environments this app is promoted into.
    pub targets: Vec<Target>,
    /// `[[apps.previews]]`: one file per pull request with images.
    pub previews: Vec<super::Preview>,
    /// `image` or `helm-chart`: which of the repository's artifacts are
    /// candidates.
    pub artifact: crate::image::Artifact,
}

/// One environment of an app: a scalar in a file of the GitOps repository.
#[derive(Clone, Debug)]
pub struct Target {
    /// Environment name, unique within its app.
    pub env: String,
    /// Path relative to the repository root, never escaping it.
    pub file: RepoPath,
    /// Where in the YAML the value lives.
    pub key: KeyPath,
    /// Which document of a multi-document file.
    pub document: Document,
    /// What the scalar holds: a tag, a digest, a whole reference, ….
    pub format: Format,
    /// For `kind = "kustomize"`: the `images:` entry's name. The entry (or
    /// its field) is added when missing; `key` then names its field.
    pub kustomize: Option<Kustomize>,
    /// A commit or a pull request.
    pub update: Update,
    /// Take the value this env of the same app holds, not the registry's
    /// newest match. Targets are ordered so that a source comes first.
    pub promote_from: Option<String>,
    /// With `promote_from`: how long the source must have held the value.
    pub soak: Duration,
    /// Pull requests of targets with the same group and env are one.
    pub group: Option<String>,
    /// For pull requests: the forge's defaults with this target's settings.
    pub proposal: ProposalOptions,
    /// The app's policy with this env's own `constraint`, when it has one
    /// (prod on `^1` while dev takes anything).
    pub policy: Option<Policy>,
    /// What a candidate must pass besides the policy: scan findings, a
    /// signature (the app's keys, each replaced by the target's own).
    pub gates: Gates,
    /// `analysis`: a PromQL query over the source env that must return a
    /// sample before this target takes its version (with `promote_from`).
    pub analysis: Option<Analysis>,
    /// The Argo CD Application that deploys this env: a target that
    /// promotes from this env waits until it is Synced and Healthy at the
    /// promotion, and soaks from then.
    pub argocd_app: Option<String>,
    /// A DR target's replica repository (another region or account): the
    /// source env's value is taken only once the same digest is there.
    pub replica: Option<super::Replica>,
    /// Set this target back to a tag now: never read from the file, only
    /// set by `tagwatch rollback` on the one-target configuration it runs
    /// (as `promote` narrows it), and turned into a change by `cycle::plan`.
    pub rollback: Option<crate::rollback::Order>,
    /// `verify` / `verify_for`: watch the target after a promotion and
    /// roll it back if it goes bad.
    pub verify: Option<super::Verify>,
}

/// A Kustomize `images:` entry as a target.
#[derive(Clone, Debug)]
pub struct Kustomize {
    /// The entry's `name`.
    pub image: String,
    /// `newTag` or `digest`, from the target's format.
    pub field: &'static str,
}

/// A path inside the GitOps repository: relative, normalised, and never
/// escaping the root. Constructed only through [`RepoPath::new`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoPath(String);

impl RepoPath {
    /// Checks that `raw` stays inside the repository. `..`, absolute paths
    /// and paths into `.git` are refused, because a config file is not a
    /// reason to write outside the repository or into its internals.
    pub fn new(raw: &str) -> Result<RepoPath, RepoPathError> {
        if raw.is_empty() {
            return Err(RepoPathError::Empty);
        }
        let bad = |kind| RepoPathError::Invalid {
            path: raw.to_string(),
            kind,
        };
        if let Some(c) = raw.chars().find(|c| c.is_control()) {
            return Err(bad(RepoPathProblem::ControlCharacter(c)));
        }
        if raw.contains('\\') {
            return Err(bad(RepoPathProblem::Backslash));
        }
        let path = Path::new(raw);
        let mut parts = Vec::new();
        for component in path.components() {
            match component {
                Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
                Component::CurDir => {}
                Component::ParentDir => {
                    return Err(bad(RepoPathProblem::Escapes));
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(bad(RepoPathProblem::Absolute));
                }
            }
        }
        if parts.is_empty() {
            return Err(bad(RepoPathProblem::NoFile));
        }
        if parts[0] == ".git" {
            return Err(bad(RepoPathProblem::GitDir));
        }
        Ok(RepoPath(parts.join("/")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepoPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a `file` is not a [`RepoPath`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RepoPathError {
    #[error("must not be empty")]
    Empty,
    #[error("{path:?} {kind}")]
    Invalid { path: String, kind: RepoPathProblem },
}

/// What is wrong with a non-empty `file`, phrased to follow the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RepoPathProblem {
    #[error("contains the control character {0:?}, which no file name in git can hold")]
    ControlCharacter(char),
    #[error("contains a backslash; use / as the separator")]
    Backslash,
    #[error("escapes the repository (\"..\")")]
    Escapes,
    #[error("is absolute; give a path relative to the repository root")]
    Absolute,
    #[error("names no file")]
    NoFile,
    #[error("points into .git")]
    GitDir,
}

/// An app, env or group name outside the characters `check_name` allows.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} must start with a letter or digit and use only letters, digits, '.', '_' and '-' (at most 63)"
)]
pub(super) struct NameError(String);

/// An app's `repository` that ECR would not accept as a repository name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a valid ECR repository name (lowercase letters, digits, '.', '_', '-', '/')")]
pub(super) struct RepositoryNameError(String);

/// Names end up in commit subjects, trailers and (later) branch names, so
/// they are kept to characters that are safe in all three.
fn check_name(s: &str) -> Result<(), NameError> {
    let ok = s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && s.len() <= 63;
    if ok {
        Ok(())
    } else {
        Err(NameError(s.to_string()))
    }
}

/// The prefix of every proposal branch; tagwatch force-pushes only these.
pub const PROPOSAL_PREFIX: &str = "tagwatch/";

/// Where a pull-request target's branch lives: `tagwatch/<group or app>/<env>`.
/// Defined here, the lowest layer that knows targets, so that the cycle
/// and this load-time check cannot disagree on its shape.
pub fn proposal_branch(app: &str, target: &Target) -> String {
    proposal_branch_of(target.group.as_deref().unwrap_or(app), &target.env)
}

fn proposal_branch_of(owner: &str, env: &str) -> String {
    format!("{PROPOSAL_PREFIX}{owner}/{env}")
}

/// `check_name` keeps names to `[A-Za-z0-9._-]`, but git's ref rules refuse
/// more: a component ending in `.lock`, a `..`, a `.` at the very end. git2's
/// `is_valid_name` on the full ref is the authority; the error blames the
/// name that breaks it (the group or app, else the env).
fn check_proposal_branch(
    src: &Source<'_>,
    app: usize,
    index: usize,
    name: &Spanned<String>,
    raw: &RawTarget,
    target: &Target,
) -> Result<(), ConfigError> {
    if target.update != Update::PullRequest {
        return Ok(());
    }
    let owner = target.group.as_deref().unwrap_or(name.get_ref());
    let valid = |branch: String| git2::Reference::is_valid_name(&format!("refs/heads/{branch}"));
    let branch = proposal_branch(name.get_ref(), target);
    if valid(branch.clone()) {
        return Ok(());
    }
    let owner_is_bad = !valid(proposal_branch_of(owner, "env"));
    let (span, key, what) = match (&raw.group, owner_is_bad) {
        (Some(g), true) => (
            g.span(),
            format!("apps[{app}].targets[{index}].group"),
            "group",
        ),
        (None, true) => (name.span(), format!("apps[{app}].name"), "app name"),
        (_, false) => (
            raw.env.as_ref().map_or(name.span(), |e| e.span()),
            format!("apps[{app}].targets[{index}].env"),
            "env",
        ),
    };
    let shown = branch.as_str();
    Err(src.error(
        Some(span),
        key,
        format!(
            "the {what} makes the pull-request branch {shown:?}, which git refuses (a part ending in \".lock\", a \"..\", or a \".\" at the end)"
        ),
    ))
}

/// What earlier apps claimed, to point at both sides of a duplicate.
#[derive(Default)]
pub(super) struct SeenApps {
    /// App name → where it was first defined.
    pub(super) names: std::collections::HashMap<String, String>,
    /// Every target so far by file: key, document, and the `app/env` that
    /// writes it. Two targets on one scalar would fight each cycle, each
    /// undoing the other's commit. By file, because a fleet has thousands
    /// of targets but only a few in any one file.
    pub(super) scalars: std::collections::HashMap<RepoPath, Vec<(KeyPath, Document, String)>>,
    /// The validated `[forge]`, whose settings are every PR's defaults.
    pub(super) forge: Option<ForgeSettings>,
    /// The first pull-request target, reported if there is no `[forge]`.
    pub(super) needs_forge: Option<ConfigError>,
    /// The first `analysis`, reported if there is no `[prometheus]`.
    pub(super) needs_prometheus: Option<ConfigError>,
    /// Whether `[argocd]` is configured (validated before the apps).
    pub(super) argocd: bool,
    /// Every `allow` compiled so far, shared by the apps that repeat it.
    pub(super) patterns: Patterns,
    /// Every `format` parsed so far, so targets that repeat a template
    /// share its compiled reader.
    pub(super) formats: Formats,
}

pub(super) fn validate_app(
    src: &Source<'_>,
    index: usize,
    raw: &RawApp,
    seen: &mut SeenApps,
) -> Result<App, ConfigError> {
    let at = |field: &str| format!("apps[{index}].{field}");
    // An app table without a name has no span of its own; point at its first
    // field that has one.
    let app_span = [&raw.repository, &raw.strategy, &raw.constraint]
        .into_iter()
        .flatten()
        .map(|s| s.span())
        .next();

    let name = src.required(&raw.name, app_span.clone(), &at("name"))?;
    check_name(name.get_ref()).map_err(|m| src.error(Some(name.span()), at("name"), m))?;
    let here = format!("{}:{}", src.file.display(), src.line(name.span().start));
    if let Some(first) = seen.names.get(name.get_ref()) {
        return Err(src.error(
            Some(name.span()),
            at("name"),
            format!(
                "duplicate app name {:?} (first defined at {first})",
                name.get_ref()
            ),
        ));
    }
    seen.names.insert(name.get_ref().clone(), here);

    let repository = src.required(&raw.repository, Some(name.span()), &at("repository"))?;
    check_repository(repository.get_ref())
        .map_err(|m| src.error(Some(repository.span()), at("repository"), m))?;

    let policy = validate_policy(src, index, raw, None, &mut seen.patterns)?;
    let artifact = super::replica::app_artifact(src, index, &raw.artifact)?;

    if raw.targets.is_empty() {
        return Err(src.error(
            Some(name.span()),
            at("targets"),
            format!("app {:?} has no [[apps.targets]]", name.get_ref()),
        ));
    }
    let mut envs = HashSet::new();
    let mut targets = Vec::with_capacity(raw.targets.len());
    for (t, target) in raw.targets.iter().enumerate() {
        let raw_target = target;
        let mut target = validate_target(src, index, t, raw_target, name.span(), &policy, seen)?;
        check_proposal_branch(src, index, t, name, raw_target, &target)?;
        target.gates = target_gates(src, index, t, &raw.gates(), &raw_target.gates())?;
        target.analysis = target_analysis(src, index, t, raw_target)?;
        if target.analysis.is_some() && seen.needs_prometheus.is_none() {
            seen.needs_prometheus = Some(src.error(
                raw_target.analysis.as_ref().map(|a| a.span()),
                format!("apps[{index}].targets[{t}].analysis"),
                "analysis needs a [prometheus] section (url) to run its query",
            ));
        }
        target.replica =
            super::replica::target_replica(src, index, t, raw_target, repository.get_ref())?;
        target.argocd_app = super::argocd::target_app(
            src,
            &format!("apps[{index}].targets[{t}].argocd_app"),
            &raw_target.argocd_app,
            seen.argocd,
        )?;
        target.verify = super::verify::target_verify(
            src,
            &format!("apps[{index}].targets[{t}]"),
            &raw_target.verify,
            &raw_target.verify_for,
            target.argocd_app.is_some(),
        )?;
        if let Some(verify) = &raw_target.verify
            && seen.needs_prometheus.is_none()
        {
            seen.needs_prometheus = Some(src.error(
                Some(verify.span()),
                format!("apps[{index}].targets[{t}].verify"),
                "verify needs a [prometheus] section (url) to run its query",
            ));
        }
        if let Some(constraint) = &raw_target.constraint {
            let own = validate_policy(src, index, raw, Some(constraint), &mut seen.patterns)
                .map_err(|mut e| {
                    if e.key.ends_with(".constraint") {
                        e.key = format!("apps[{index}].targets[{t}].constraint");
                        e.line = Some(line_of(src.text, constraint.span().start));
                    }
                    e
                })?;
            target.policy = Some(own);
        }
        // The same steps however they were written (`image.tag` and
        // `"image".tag`), and `document` unset overlaps every index.
        let overlaps = |d: &Document| d.overlaps(&target.document);
        let in_file = seen.scalars.entry(target.file.clone()).or_default();
        if let Some((.., first)) = in_file
            .iter()
            .find(|(key, doc, _)| key.steps_eq(&target.key) && overlaps(doc))
        {
            let span = raw_target
                .key
                .as_ref()
                .or(raw_target.image.as_ref())
                .map(|k| k.span());
            let field = if raw_target.key.is_some() {
                "key"
            } else {
                "image"
            };
            return Err(src.error(
                span,
                format!("apps[{index}].targets[{t}].{field}"),
                format!("{first} already writes {} in {}", target.key, target.file),
            ));
        }
        in_file.push((
            target.key.clone(),
            target.document.clone(),
            format!("{}/{}", name.get_ref(), target.env),
        ));
        if !envs.insert(target.env.clone()) {
            return Err(src.error(
                raw.targets[t].env.as_ref().map(|e| e.span()),
                format!("apps[{index}].targets[{t}].env"),
                format!("duplicate env {:?} in app {:?}", target.env, name.get_ref()),
            ));
        }
        targets.push(target);
    }
    let mut targets = order_chain(src, index, raw, targets)?;
    let previews = raw
        .previews
        .iter()
        .enumerate()
        .map(|(p, r)| {
            super::previews::validate(src, index, name.get_ref(), p, r, Some(name.span()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Preview tags are never candidates for the app's own targets, whatever
    // `ignore` says: a pull request's image must not reach dev by accident.
    let excluded: Vec<_> = previews
        .iter()
        .map(|p| std::sync::Arc::clone(&p.allow))
        .collect();
    let mut policy = policy;
    policy.previews.clone_from(&excluded);
    for target in &mut targets {
        if let Some(own) = &mut target.policy {
            own.previews.clone_from(&excluded);
        }
    }
    if seen.forge.is_none() && seen.needs_forge.is_none() {
        seen.needs_forge = raw
            .targets
            .iter()
            .enumerate()
            .find(|(_, r)| {
                r.update
                    .as_ref()
                    .is_some_and(|u| u.get_ref() == "pull-request")
            })
            .map(|(t, r)| {
                src.error(
                    r.update.as_ref().map(|u| u.span()),
                    format!("apps[{index}].targets[{t}].update"),
                    "pull requests need a [forge] section (kind, repository, token_file)",
                )
            });
    }

    Ok(App {
        name: name.get_ref().clone(),
        repository: repository.get_ref().clone(),
        policy,
        targets,
        previews,
        artifact,
    })
}

/// Builds the app's policy with the same validation `tagwatch policy test`
/// uses, and points an error at the field it is about.
fn validate_policy(
    src: &Source<'_>,
    index: usize,
    raw: &RawApp,
    constraint: Option<&Spanned<String>>,
    patterns: &mut Patterns,
) -> Result<Policy, ConfigError> {
    let text = |v: &Option<Spanned<String>>| v.as_ref().map(|s| s.get_ref().clone());
    let spec = PolicySpec {
        strategy: text(&raw.strategy),
        constraint: constraint
            .map(|c| c.get_ref().clone())
            .or_else(|| text(&raw.constraint)),
        allow: text(&raw.allow),
        extract: text(&raw.extract),
        ignore: raw.ignore.iter().map(|g| g.get_ref().clone()).collect(),
        min_age: text(&raw.min_age),
    };
    Policy::from_spec_in(&spec, patterns).map_err(|e| {
        let span = match (e.field, e.index) {
            ("ignore", Some(i)) => raw.ignore.get(i).map(|g| g.span()),
            ("strategy", _) => raw.strategy.as_ref().map(|s| s.span()),
            ("constraint", _) => raw
                .constraint
                .as_ref()
                .or(raw.strategy.as_ref())
                .map(|s| s.span()),
            ("allow", _) => raw.allow.as_ref().map(|s| s.span()),
            ("extract", _) => raw.extract.as_ref().map(|s| s.span()),
            ("min_age", _) => raw.min_age.as_ref().map(|s| s.span()),
            _ => None,
        };
        let key = match e.index {
            Some(i) => format!("apps[{index}].{}[{i}]", e.field),
            None => format!("apps[{index}].{}", e.field),
        };
        src.error(
            span.or_else(|| raw.name.as_ref().map(|n| n.span())),
            key,
            e.message,
        )
    })
}

/// ECR's own rule for repository names, so a typo fails at startup rather
/// than as a `RepositoryNotFoundException` every cycle.
pub(super) fn is_repository_name(s: &str) -> bool {
    check_repository(s).is_ok()
}

fn check_repository(s: &str) -> Result<(), RepositoryNameError> {
    let ok = s.len() >= 2
        && s.len() <= 256
        && s.split('/').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        });
    if ok {
        Ok(())
    } else {
        Err(RepositoryNameError(s.to_string()))
    }
}

/// Validates one `[[apps.targets]]`, one named step per concern, in the
/// order a user reads the table: what it is, where it writes, how it
/// updates, where it promotes from, what its pull requests look like. The
/// first error wins, so the order of the steps is part of the behaviour.
fn validate_target(
    src: &Source<'_>,
    app: usize,
    index: usize,
    raw: &RawTarget,
    app_span: std::ops::Range<usize>,
    policy: &Policy,
    seen: &mut SeenApps,
) -> Result<Target, ConfigError> {
    let at = |field: &str| format!("apps[{app}].targets[{index}].{field}");
    let first_span = [&raw.env, &raw.file, &raw.key]
        .into_iter()
        .flatten()
        .map(|s| s.span())
        .next()
        .unwrap_or(app_span);
    let env = src.required(&raw.env, Some(first_span.clone()), &at("env"))?;
    check_name(env.get_ref()).map_err(|m| src.error(Some(env.span()), at("env"), m))?;
    let file = src.required(&raw.file, Some(first_span.clone()), &at("file"))?;
    let file =
        RepoPath::new(file.get_ref()).map_err(|m| src.error(Some(file.span()), at("file"), m))?;
    let kustomize_image = target_kind(src, raw, &at, &first_span)?;
    let document = target_document(src, raw, &at)?;
    let format = target_format(src, raw, &at, policy, &mut seen.formats)?;
    let (key_path, kustomize) = target_key(src, raw, &at, kustomize_image, &format, first_span)?;
    let update = target_update(src, raw, &at)?;
    let (promote_from, soak) = target_promotion(src, raw, &at, env.get_ref())?;
    let (group, proposal) = target_proposal(src, raw, &at, update, seen.forge.as_ref())?;
    Ok(Target {
        env: env.get_ref().clone(),
        file,
        key: key_path,
        document,
        format,
        kustomize,
        update,
        promote_from,
        soak,
        group,
        proposal,
        policy: None,
        gates: Gates::default(),
        analysis: None,
        argocd_app: None,
        replica: None,
        rollback: None,
        verify: None,
    })
}

/// `analysis`: only where there is a source env to analyse, and with
/// placeholders tagwatch fills.
fn target_analysis(
    src: &Source<'_>,
    app: usize,
    index: usize,
    raw: &RawTarget,
) -> Result<Option<Analysis>, ConfigError> {
    let Some(query) = &raw.analysis else {
        return Ok(None);
    };
    let key = format!("apps[{app}].targets[{index}].analysis");
    if raw.promote_from.is_none() {
        return Err(src.error(
            Some(query.span()),
            key,
            "analysis is checked on the promote_from env at the end of the soak; set promote_from too",
        ));
    }
    Analysis::parse(query.get_ref())
        .map(Some)
        .map_err(|e| src.error(Some(query.span()), key, e.to_string()))
}

/// The gate keys: the target's own, else the app's. An error names the
/// key where it was written (`apps[0].scan_max_severity` or
/// `apps[0].targets[1].scan_max_severity`).
fn target_gates(
    src: &Source<'_>,
    app: usize,
    index: usize,
    on_app: &RawGates,
    on_target: &RawGates,
) -> Result<Gates, ConfigError> {
    let pick = |field: &str,
                get: fn(&RawGates) -> &Option<Spanned<String>>|
     -> Option<(Spanned<String>, String)> {
        match (get(on_target), get(on_app)) {
            (Some(v), _) => Some((v.clone(), format!("apps[{app}].targets[{index}].{field}"))),
            (None, Some(v)) => Some((v.clone(), format!("apps[{app}].{field}"))),
            (None, None) => None,
        }
    };
    let severity = |field: &str, get: fn(&RawGates) -> &Option<Spanned<String>>| {
        match pick(field, get) {
            None => Ok(None),
            Some((v, key)) => Severity::parse(v.get_ref()).map(Some).ok_or_else(|| {
                src.error(
                    Some(v.span()),
                    key,
                    format!(
                        "unknown severity {:?}; expected one of \"INFORMATIONAL\", \"LOW\", \"MEDIUM\", \"HIGH\", \"CRITICAL\"",
                        v.get_ref()
                    ),
                )
            }),
        }
    };
    let max = severity("scan_max_severity", |g| &g.scan_max_severity)?;
    let undefined_as =
        severity("scan_undefined_as", |g| &g.scan_undefined_as)?.unwrap_or(Severity::Low);
    let pending = match pick("scan_pending", |g| &g.scan_pending) {
        None => Pending::Wait,
        Some((v, key)) => {
            match v.get_ref().as_str() {
                "wait" => Pending::Wait,
                "allow" => Pending::Allow,
                other => {
                    return Err(src.error(
                    Some(v.span()),
                    key,
                    format!("unknown scan_pending {other:?}; expected \"wait\" (default) or \"allow\""),
                ));
                }
            }
        }
    };
    let signature = match pick("require_signature", |g| &g.require_signature) {
        None => None,
        Some((v, key)) => Some(SignatureKind::parse(v.get_ref()).ok_or_else(|| {
            src.error(
                Some(v.span()),
                key,
                format!(
                    "unknown require_signature {:?}; expected \"cosign\", \"notation\" or \"any\"",
                    v.get_ref()
                ),
            )
        })?),
    };
    // Read and parsed now, so a missing or wrong key stops the start (64),
    // not a promotion months later. Relative to the config file's folder.
    let cosign_key = match pick("cosign_public_key_file", |g| &g.cosign_public_key_file) {
        None => None,
        Some((v, key)) => {
            if signature != Some(SignatureKind::Cosign) {
                return Err(src.error(
                    Some(v.span()),
                    key,
                    "cosign_public_key_file verifies cosign signatures; set require_signature = \"cosign\" too",
                ));
            }
            let base = src.file.parent().unwrap_or(std::path::Path::new("."));
            let loaded = CosignKey::load(&base.join(v.get_ref()))
                .map_err(|e| src.error(Some(v.span()), key, e.to_string()))?;
            Some(std::sync::Arc::new(loaded))
        }
    };
    Ok(Gates {
        scan: max.map(|max| ScanGate {
            max,
            undefined_as,
            pending,
        }),
        signature,
        cosign_key,
    })
}

/// `kind`: a plain YAML target (no `image`), or a Kustomize `images:` entry
/// named by `image` (no `key`, no `document`). Returns that `image`.
fn target_kind<'r>(
    src: &Source<'_>,
    raw: &'r RawTarget,
    at: &impl Fn(&str) -> String,
    first_span: &std::ops::Range<usize>,
) -> Result<Option<&'r Spanned<String>>, ConfigError> {
    match raw.kind.as_ref().map(|k| (k, k.get_ref().as_str())) {
        None | Some((_, "yaml")) => {
            if let Some(image) = &raw.image {
                return Err(src.error(
                    Some(image.span()),
                    at("image"),
                    "image is for kind = \"kustomize\"",
                ));
            }
            Ok(None)
        }
        Some((_, "kustomize")) => {
            if let Some(key) = &raw.key {
                return Err(src.error(
                    Some(key.span()),
                    at("key"),
                    "a kustomize target names its entry with image, not key",
                ));
            }
            let image = src.required(&raw.image, Some(first_span.clone()), &at("image"))?;
            if let Some(d) = &raw.document {
                return Err(src.error(
                    Some(d.span()),
                    at("document"),
                    "a kustomize target edits the kustomization's one document; remove document",
                ));
            }
            Ok(Some(image))
        }
        Some((k, other)) => Err(src.error(
            Some(k.span()),
            at("kind"),
            format!("unknown kind {other:?}; expected \"yaml\" (default) or \"kustomize\""),
        )),
    }
}

/// `document`: an index, a `path=value,…` selector, or every document.
fn target_document(
    src: &Source<'_>,
    raw: &RawTarget,
    at: &impl Fn(&str) -> String,
) -> Result<Document, ConfigError> {
    Ok(match raw.document.as_ref().map(|d| (d, d.get_ref())) {
        Some((_, RawDocument::Index(n))) if *n >= 0 => Document::Index(*n as usize),
        Some((d, RawDocument::Index(_))) => {
            return Err(src.error(Some(d.span()), at("document"), "must be 0 or greater"));
        }
        Some((d, RawDocument::Select(text))) => {
            Document::parse(text).map_err(|m| src.error(Some(d.span()), at("document"), m))?
        }
        None => Document::Any,
    })
}

/// `format`, defaulting by strategy: the digest strategy writes a digest, so
/// its format must hold one.
fn target_format(
    src: &Source<'_>,
    raw: &RawTarget,
    at: &impl Fn(&str) -> String,
    policy: &Policy,
    formats: &mut Formats,
) -> Result<Format, ConfigError> {
    let follows_digest = matches!(policy.strategy, Strategy::Digest { .. });
    Ok(match &raw.format {
        Some(f) => {
            let format = formats
                .parse(f.get_ref())
                .map_err(|m| src.error(Some(f.span()), at("format"), m))?;
            if follows_digest && !format.always_pins_digest() {
                return Err(src.error(
                    Some(f.span()),
                    at("format"),
                    format!("the digest strategy writes a digest, and format {format} has none; use digest, tag@digest or a template with {{digest}}"),
                ));
            }
            format
        }
        None if follows_digest => Format::Digest,
        None => Format::Tag,
    })
}

/// The key path the target writes: `key` for a YAML target, or the
/// `images[name=…].newTag`/`.digest` path of a Kustomize entry.
fn target_key(
    src: &Source<'_>,
    raw: &RawTarget,
    at: &impl Fn(&str) -> String,
    kustomize_image: Option<&Spanned<String>>,
    format: &Format,
    first_span: std::ops::Range<usize>,
) -> Result<(KeyPath, Option<Kustomize>), ConfigError> {
    match kustomize_image {
        Some(image) => {
            let field = match format {
                Format::Tag => "newTag",
                Format::Digest => "digest",
                _ => {
                    return Err(src.error(
                        raw.format.as_ref().map(|f| f.span()),
                        at("format"),
                        "a kustomize target writes newTag (format = \"tag\") or digest (format = \"digest\")",
                    ));
                }
            };
            let key = crate::manifest::kustomize_path(image.get_ref(), field)
                .map_err(|e| src.error(Some(image.span()), at("image"), e.to_string()))?;
            Ok((
                key,
                Some(Kustomize {
                    image: image.get_ref().clone(),
                    field,
                }),
            ))
        }
        None => {
            let key = src.required(&raw.key, Some(first_span), &at("key"))?;
            let key_path = KeyPath::parse(key.get_ref())
                .map_err(|e| src.error(Some(key.span()), at("key"), e.to_string()))?;
            Ok((key_path, None))
        }
    }
}

/// `update`: a commit (default) or a pull request.
fn target_update(
    src: &Source<'_>,
    raw: &RawTarget,
    at: &impl Fn(&str) -> String,
) -> Result<Update, ConfigError> {
    match raw.update.as_ref().map(|u| (u, u.get_ref().as_str())) {
        None | Some((_, "commit")) => Ok(Update::Commit),
        Some((_, "pull-request")) => Ok(Update::PullRequest),
        Some((u, other)) => Err(src.error(
            Some(u.span()),
            at("update"),
            format!("unknown update {other:?}; expected \"commit\" (default) or \"pull-request\""),
        )),
    }
}

/// `promote_from` and `soak`. Whether the source env exists in the app is
/// checked later, across targets, by `order_chain`.
fn target_promotion(
    src: &Source<'_>,
    raw: &RawTarget,
    at: &impl Fn(&str) -> String,
    env: &str,
) -> Result<(Option<String>, Duration), ConfigError> {
    let promote_from = match &raw.promote_from {
        Some(from) => {
            check_name(from.get_ref())
                .map_err(|m| src.error(Some(from.span()), at("promote_from"), m))?;
            if from.get_ref() == env {
                return Err(src.error(
                    Some(from.span()),
                    at("promote_from"),
                    "an env cannot promote from itself",
                ));
            }
            Some(from.get_ref().clone())
        }
        None => None,
    };
    let soak = match (&raw.soak, &promote_from) {
        (Some(soak), Some(_)) => src.duration(soak, &at("soak"))?,
        (Some(soak), None) => {
            return Err(src.error(
                Some(soak.span()),
                at("soak"),
                "soak is how long the promote_from env must have run a tag; set promote_from too",
            ));
        }
        (None, _) => Duration::ZERO,
    };
    Ok((promote_from, soak))
}

/// `group` and the pull-request options, which only a pull-request target
/// may set; the options fall back to `[forge]`'s.
fn target_proposal(
    src: &Source<'_>,
    raw: &RawTarget,
    at: &impl Fn(&str) -> String,
    update: Update,
    forge: Option<&ForgeSettings>,
) -> Result<(Option<String>, ProposalOptions), ConfigError> {
    let pr_only = |span: Option<std::ops::Range<usize>>, field: &str| {
        src.error(
            span,
            at(field),
            format!("{field} applies to pull requests; set update = \"pull-request\""),
        )
    };
    let group = match &raw.group {
        Some(g) if update != Update::PullRequest => return Err(pr_only(Some(g.span()), "group")),
        Some(g) => {
            check_name(g.get_ref()).map_err(|m| src.error(Some(g.span()), at("group"), m))?;
            Some(g.get_ref().clone())
        }
        None => None,
    };
    let proposal = raw.proposal();
    if update != Update::PullRequest
        && let Some((field, span)) = proposal.first()
    {
        return Err(pr_only(span.or(raw.env.as_ref().map(|e| e.span())), field));
    }
    let defaults = forge.map(|f| f.defaults.clone()).unwrap_or_default();
    Ok((group, proposal.over(&defaults)))
}

/// Checks each target's `promote_from` names another env of the same app,
/// that the chain has no cycle, and orders the targets so every source
/// comes before the envs promoted from it (the order a cycle visits them).
fn order_chain(
    src: &Source<'_>,
    index: usize,
    raw: &RawApp,
    targets: Vec<Target>,
) -> Result<Vec<Target>, ConfigError> {
    let position = |env: &str| targets.iter().position(|t| t.env == env);
    let mut depth = vec![0usize; targets.len()];
    for (t, target) in targets.iter().enumerate() {
        let Some(from) = &target.promote_from else {
            continue;
        };
        let span = raw.targets[t].promote_from.as_ref().map(|f| f.span());
        let key = format!("apps[{index}].targets[{t}].promote_from");
        let mut path = vec![target.env.as_str()];
        let mut next = Some(from.as_str());
        while let Some(env) = next {
            let Some(source) = position(env) else {
                return Err(src.error(
                    span,
                    key,
                    format!("no env {env:?} in this app to promote from"),
                ));
            };
            if path.contains(&env) {
                path.push(env);
                return Err(src.error(
                    span,
                    key,
                    format!("promote_from makes a cycle: {}", path.join(" <- ")),
                ));
            }
            path.push(env);
            next = targets[source].promote_from.as_deref();
        }
        depth[t] = path.len() - 1;
    }
    let mut ordered: Vec<(usize, Target)> = depth.into_iter().zip(targets).collect();
    ordered.sort_by_key(|(d, _)| *d);
    Ok(ordered.into_iter().map(|(_, t)| t).collect())
}
