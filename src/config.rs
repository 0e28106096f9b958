//! Configuration: the TOML file a user writes, and the validated [`Config`]
//! the rest of tagwatch runs on.
//!
//! Loading is two steps, as in ripgrep's `LowArgs` → `HiArgs`: serde reads
//! the file into `Raw*` structs that keep each value's byte span, then
//! [`validate`] turns them into types that cannot hold invalid state
//! (compiled ranges and globs, parsed key paths, typed durations, checked
//! repository paths). Every error names the file, the line and the key, so a
//! user can jump straight to it. Nothing here touches the network; the
//! caller may rely on that and validate before binding a port or calling AWS.
//!
//! This module owns the file format and its rules. It does not know how a
//! policy chooses a tag or how a file is edited; it only builds the values
//! those modules consume.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::format::Format;
use crate::manifest::{Document, KeyPath};
use crate::policy::{Patterns, Policy, PolicySpec, Strategy};

/// Default time between polls when `interval` is absent.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(120);
/// Default number of ECR repositories listed at the same time.
pub const DEFAULT_REGISTRY_CONCURRENCY: usize = 8;
/// Default bound on push attempts per cycle when the branch keeps moving.
pub const DEFAULT_PUSH_ATTEMPTS: u32 = 5;

/// A validated configuration. Every field holds a value that has already
/// passed its checks.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file this was loaded from; relative paths in it were resolved
    /// against its directory.
    pub source: PathBuf,
    /// Time between the starts of two polling cycles.
    pub interval: Duration,
    /// Address for the HTTP endpoints (metrics, health).
    pub listen: SocketAddr,
    /// How to reach ECR.
    pub aws: AwsSettings,
    /// How to reach the GitOps repository.
    pub git: GitSettings,
    /// The watched apps, from the main file and then each included file.
    pub apps: Vec<App>,
    /// Where pull requests are opened, for targets with
    /// `update = "pull-request"`.
    pub forge: Option<ForgeSettings>,
}

/// The `[forge]` section: the GitHub or GitLab project behind the GitOps
/// repository.
#[derive(Clone, Debug)]
pub struct ForgeSettings {
    pub kind: ForgeKind,
    /// `owner/repo` on GitHub, `group/sub/project` on GitLab.
    pub repository: String,
    /// A file holding the API token; read on every request, so a rotated
    /// Secret is picked up without a restart.
    pub token_file: PathBuf,
    /// The API's base URL, without a trailing slash.
    pub api_url: String,
    /// Defaults for every pull request; a target's own settings replace them.
    pub defaults: ProposalOptions,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForgeKind {
    GitHub,
    GitLab,
}

impl ForgeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ForgeKind::GitHub => "github",
            ForgeKind::GitLab => "gitlab",
        }
    }
}

/// What a pull request asks of people besides its content.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProposalOptions {
    pub labels: Vec<String>,
    /// Users asked to review. On GitHub, `org/team` names a team.
    pub reviewers: Vec<String>,
    pub assignees: Vec<String>,
    pub draft: bool,
    /// Merge on its own once approved and green, where the forge offers it.
    pub auto_merge: bool,
}

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

/// The `[aws]` section.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AwsSettings {
    /// Region of the registry. `None` defers to the SDK's chain
    /// (`AWS_REGION`, profile), which is what IRSA pods usually have.
    pub region: Option<String>,
    /// Another account's registry, for cross-account reads.
    pub registry_id: Option<String>,
    /// A role to assume (through STS) before calling ECR.
    pub assume_role_arn: Option<String>,
    /// An ECR-compatible endpoint instead of AWS's; used by tests and the demo.
    pub endpoint_url: Option<String>,
    /// At most this many repositories are listed at once.
    pub concurrency: usize,
    /// ECR push events through SQS, to react in seconds.
    pub events: Option<EventSettings>,
}

/// The `[aws.events]` section.
#[derive(Clone, Debug, PartialEq)]
pub struct EventSettings {
    pub sqs_queue_url: String,
    /// How long to gather a burst of pushes into one cycle.
    pub debounce: Duration,
}

/// The `[git]` section.
#[derive(Clone, Debug, PartialEq)]
pub struct GitSettings {
    /// The remote, in any form git accepts.
    pub url: String,
    /// The branch that commits go to.
    pub branch: String,
    /// Where the persistent clone lives. Its contents are a cache: deleting
    /// it loses nothing.
    pub checkout_dir: PathBuf,
    /// Author and committer of tagwatch's commits.
    pub author: Identity,
    /// How many times one cycle pushes before giving up when the branch
    /// keeps moving under it.
    pub push_attempts: u32,
    /// HTTPS authentication: a token read from a file (a mounted Secret),
    /// sent as the password of HTTP basic auth.
    pub token: Option<TokenAuth>,
    /// SSH authentication: a private key and the known hosts to check the
    /// server against.
    pub ssh: Option<SshAuth>,
    /// Sign every commit with this SSH private key (git's
    /// `gpg.format=ssh`), for branches that require signed commits.
    pub signing_key_file: Option<PathBuf>,
    /// PEM certificates trusted for HTTPS remotes in addition to the
    /// system's roots: a private CA, and any intermediates it needs.
    pub ca_file: Option<PathBuf>,
}

/// An SSH key and the host keys the server must present. The host key is
/// always checked: an unknown or changed key is an error, never a prompt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshAuth {
    pub key_file: PathBuf,
    pub known_hosts_file: PathBuf,
}

/// A token for HTTPS remotes. Only the file's path is held: the token is
/// read when a remote asks for it, so a rotated Secret is picked up
/// without a restart, and the secret itself never sits in the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenAuth {
    pub file: PathBuf,
    /// The basic-auth user: `x-access-token` for GitHub Apps (default),
    /// `oauth2` for GitLab.
    pub username: String,
}

/// A git identity, parsed from `Name <email>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub email: String,
}

impl App {
    /// The policy that decides `target`: its own, else the app's.
    pub fn policy_for<'a>(&'a self, target: &'a Target) -> &'a Policy {
        target.policy.as_ref().unwrap_or(&self.policy)
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} <{}>", self.name, self.email)
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
    pub fn new(raw: &str) -> Result<RepoPath, String> {
        if raw.is_empty() {
            return Err("must not be empty".into());
        }
        if let Some(c) = raw.chars().find(|c| c.is_control()) {
            return Err(format!(
                "{raw:?} contains the control character {c:?}, which no file name in git can hold"
            ));
        }
        if raw.contains('\\') {
            return Err(format!(
                "{raw:?} contains a backslash; use / as the separator"
            ));
        }
        let path = Path::new(raw);
        let mut parts = Vec::new();
        for component in path.components() {
            match component {
                Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
                Component::CurDir => {}
                Component::ParentDir => {
                    return Err(format!("{raw:?} escapes the repository (\"..\")"));
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(format!(
                        "{raw:?} is absolute; give a path relative to the repository root"
                    ));
                }
            }
        }
        if parts.is_empty() {
            return Err(format!("{raw:?} names no file"));
        }
        if parts[0] == ".git" {
            return Err(format!("{raw:?} points into .git"));
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

/// A configuration problem, located as precisely as the file allows.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    /// The file the problem is in (the main file or an included one).
    pub file: PathBuf,
    /// 1-based line, when the problem has a place in the file.
    pub line: Option<usize>,
    /// Dotted key, e.g. `apps[0].constraint`; empty for whole-file problems.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

// ---- raw, as serde reads it -------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    interval: Option<Spanned<String>>,
    listen: Option<Spanned<String>>,
    #[serde(default)]
    include: Vec<Spanned<String>>,
    #[serde(default)]
    aws: RawAws,
    git: Option<Spanned<RawGit>>,
    forge: Option<Spanned<RawForge>>,
    #[serde(default)]
    apps: Vec<RawApp>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAws {
    region: Option<Spanned<String>>,
    registry_id: Option<Spanned<String>>,
    assume_role_arn: Option<Spanned<String>>,
    endpoint_url: Option<Spanned<String>>,
    concurrency: Option<Spanned<i64>>,
    events: Option<Spanned<RawEvents>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvents {
    sqs_queue_url: Option<Spanned<String>>,
    debounce: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGit {
    url: Option<Spanned<String>>,
    branch: Option<Spanned<String>>,
    checkout_dir: Option<Spanned<String>>,
    author: Option<Spanned<String>>,
    push_attempts: Option<Spanned<i64>>,
    token_file: Option<Spanned<String>>,
    username: Option<Spanned<String>>,
    ssh_key_file: Option<Spanned<String>>,
    known_hosts_file: Option<Spanned<String>>,
    signing_key_file: Option<Spanned<String>>,
    ca_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawForge {
    kind: Option<Spanned<String>>,
    repository: Option<Spanned<String>>,
    token_file: Option<Spanned<String>>,
    api_url: Option<Spanned<String>>,
    labels: Option<Vec<Spanned<String>>>,
    reviewers: Option<Vec<Spanned<String>>>,
    assignees: Option<Vec<Spanned<String>>>,
    draft: Option<Spanned<bool>>,
    auto_merge: Option<Spanned<bool>>,
}

/// Pull-request settings, in `[forge]` and in a target. (Written out in
/// both rather than `#[serde(flatten)]`ed: flatten loses the spans and
/// `deny_unknown_fields`.)
#[derive(Default)]
struct RawProposal {
    labels: Option<Vec<Spanned<String>>>,
    reviewers: Option<Vec<Spanned<String>>>,
    assignees: Option<Vec<Spanned<String>>>,
    draft: Option<Spanned<bool>>,
    auto_merge: Option<Spanned<bool>>,
}

impl RawProposal {
    /// The first setting present, and its span, to point an error at.
    fn first(&self) -> Option<(&'static str, Option<std::ops::Range<usize>>)> {
        let list =
            |l: &Option<Vec<Spanned<String>>>| l.as_ref().map(|v| v.first().map(|s| s.span()));
        None.or_else(|| list(&self.labels).map(|s| ("labels", s)))
            .or_else(|| list(&self.reviewers).map(|s| ("reviewers", s)))
            .or_else(|| list(&self.assignees).map(|s| ("assignees", s)))
            .or_else(|| self.draft.as_ref().map(|d| ("draft", Some(d.span()))))
            .or_else(|| {
                self.auto_merge
                    .as_ref()
                    .map(|d| ("auto_merge", Some(d.span())))
            })
    }

    /// These settings over `defaults`, each one replacing the default.
    fn over(&self, defaults: &ProposalOptions) -> ProposalOptions {
        let list = |l: &Option<Vec<Spanned<String>>>, d: &Vec<String>| {
            l.as_ref().map_or_else(
                || d.clone(),
                |v| v.iter().map(|s| s.get_ref().clone()).collect(),
            )
        };
        ProposalOptions {
            labels: list(&self.labels, &defaults.labels),
            reviewers: list(&self.reviewers, &defaults.reviewers),
            assignees: list(&self.assignees, &defaults.assignees),
            draft: self.draft.as_ref().map_or(defaults.draft, |d| *d.get_ref()),
            auto_merge: self
                .auto_merge
                .as_ref()
                .map_or(defaults.auto_merge, |d| *d.get_ref()),
        }
    }
}

/// `document = 1` or `document = "kind=Deployment,metadata.name=api"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawDocument {
    Index(i64),
    Select(String),
}

/// An included file holds only apps.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInclude {
    #[serde(default)]
    apps: Vec<RawApp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    name: Option<Spanned<String>>,
    repository: Option<Spanned<String>>,
    strategy: Option<Spanned<String>>,
    constraint: Option<Spanned<String>>,
    allow: Option<Spanned<String>>,
    extract: Option<Spanned<String>>,
    #[serde(default)]
    ignore: Vec<Spanned<String>>,
    min_age: Option<Spanned<String>>,
    #[serde(default)]
    targets: Vec<RawTarget>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    env: Option<Spanned<String>>,
    file: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
    document: Option<Spanned<RawDocument>>,
    format: Option<Spanned<String>>,
    kind: Option<Spanned<String>>,
    image: Option<Spanned<String>>,
    update: Option<Spanned<String>>,
    constraint: Option<Spanned<String>>,
    promote_from: Option<Spanned<String>>,
    soak: Option<Spanned<String>>,
    group: Option<Spanned<String>>,
    labels: Option<Vec<Spanned<String>>>,
    reviewers: Option<Vec<Spanned<String>>>,
    assignees: Option<Vec<Spanned<String>>>,
    draft: Option<Spanned<bool>>,
    auto_merge: Option<Spanned<bool>>,
}

impl RawTarget {
    fn proposal(&self) -> RawProposal {
        RawProposal {
            labels: self.labels.clone(),
            reviewers: self.reviewers.clone(),
            assignees: self.assignees.clone(),
            draft: self.draft.clone(),
            auto_merge: self.auto_merge.clone(),
        }
    }
}

impl RawForge {
    fn proposal(&self) -> RawProposal {
        RawProposal {
            labels: self.labels.clone(),
            reviewers: self.reviewers.clone(),
            assignees: self.assignees.clone(),
            draft: self.draft.clone(),
            auto_merge: self.auto_merge.clone(),
        }
    }
}

// ---- loading ----------------------------------------------------------------

/// Reads, parses and validates the configuration at `path`, including the
/// files named by `include`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = read(path)?;
    let raw: RawConfig = parse(path, &text)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let main = Source::new(path, &text);

    let forge = match &raw.forge {
        Some(forge) => Some(validate_forge(&main, base, forge.get_ref(), forge.span())?),
        None => None,
    };
    let mut apps = Vec::new();
    let mut seen = SeenApps {
        forge: forge.clone(),
        ..SeenApps::default()
    };
    for (i, app) in raw.apps.iter().enumerate() {
        apps.push(validate_app(&main, i, app, &mut seen)?);
    }
    let mut matched_nothing = Vec::new();
    for (i, pattern) in raw.include.iter().enumerate() {
        let key = format!("include[{i}]");
        let files = expand_include(&main, &key, path, base, pattern)?;
        if files.is_empty() {
            matched_nothing.push(format!("{:?}", pattern.get_ref()));
        }
        for included in files {
            let text = read(&included)?;
            let raw: RawInclude = parse(&included, &text)?;
            let source = Source::new(&included, &text);
            for (j, app) in raw.apps.iter().enumerate() {
                apps.push(validate_app(&source, j, app, &mut seen)?);
            }
        }
    }
    if apps.is_empty() {
        let hint = if matched_nothing.is_empty() {
            String::new()
        } else {
            format!(" (include {} matched no file)", matched_nothing.join(", "))
        };
        return Err(main.error(
            None,
            "apps",
            format!("no apps configured; add at least one [[apps]]{hint}"),
        ));
    }

    let interval = match &raw.interval {
        Some(v) => main.duration(v, "interval")?,
        None => DEFAULT_INTERVAL,
    };
    let listen = match &raw.listen {
        Some(v) => v.get_ref().parse().map_err(|e| {
            main.error(
                Some(v.span()),
                "listen",
                format!("invalid address {:?}: {e}", v.get_ref()),
            )
        })?,
        None => SocketAddr::from(([0, 0, 0, 0], 9090)),
    };
    if forge.is_none()
        && let Some(e) = seen.needs_forge.take()
    {
        return Err(e);
    }
    let aws = validate_aws(&main, &raw.aws)?;
    let git = match &raw.git {
        Some(git) => validate_git(&main, base, git.get_ref(), git.span())?,
        None => return Err(main.error(None, "git", "missing section [git]")),
    };

    Ok(Config {
        source: path.to_path_buf(),
        interval,
        listen,
        aws,
        git,
        apps,
        forge,
    })
}

fn validate_forge(
    src: &Source<'_>,
    base: &Path,
    raw: &RawForge,
    span: std::ops::Range<usize>,
) -> Result<ForgeSettings, ConfigError> {
    let kind = src.required(&raw.kind, Some(span.clone()), "forge.kind")?;
    let kind = match kind.get_ref().as_str() {
        "github" => ForgeKind::GitHub,
        "gitlab" => ForgeKind::GitLab,
        other => {
            return Err(src.error(
                Some(kind.span()),
                "forge.kind",
                format!("unknown forge {other:?}; expected \"github\" or \"gitlab\""),
            ));
        }
    };
    let repository = src.required(&raw.repository, Some(span.clone()), "forge.repository")?;
    let parts: Vec<&str> = repository.get_ref().split('/').collect();
    let shaped = match kind {
        ForgeKind::GitHub => parts.len() == 2,
        ForgeKind::GitLab => parts.len() >= 2,
    };
    if !shaped
        || parts
            .iter()
            .any(|p| p.is_empty() || p.contains(char::is_whitespace))
    {
        let want = match kind {
            ForgeKind::GitHub => "owner/repo",
            ForgeKind::GitLab => "group/project or group/sub/project",
        };
        return Err(src.error(
            Some(repository.span()),
            "forge.repository",
            format!("{:?} is not {want}", repository.get_ref()),
        ));
    }
    let token_file = src.required(&raw.token_file, Some(span.clone()), "forge.token_file")?;
    let api_url = match &raw.api_url {
        Some(url) => {
            let text = url.get_ref().trim().trim_end_matches('/');
            if !(text.starts_with("https://") || text.starts_with("http://")) {
                return Err(src.error(
                    Some(url.span()),
                    "forge.api_url",
                    format!("{:?} is not an http(s) URL", url.get_ref()),
                ));
            }
            text.to_string()
        }
        None => match kind {
            ForgeKind::GitHub => "https://api.github.com".to_string(),
            ForgeKind::GitLab => "https://gitlab.com/api/v4".to_string(),
        },
    };
    Ok(ForgeSettings {
        kind,
        repository: repository.get_ref().clone(),
        token_file: base.join(token_file.get_ref()),
        api_url,
        defaults: raw.proposal().over(&ProposalOptions::default()),
    })
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

fn read(path: &Path) -> Result<String, ConfigError> {
    let bytes = std::fs::read(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        line: None,
        key: String::new(),
        message: format!("cannot read: {e}"),
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        ConfigError {
            file: path.to_path_buf(),
            line: Some(good.iter().filter(|&&b| b == b'\n').count() + 1),
            key: String::new(),
            message: "not UTF-8 (TOML files are UTF-8; was it saved as Latin-1?)".into(),
        }
    })
}

/// serde's messages name Rust types (`struct RawAws`, `untagged enum
/// RawDocument`) that mean nothing to a user; say what the file needs.
fn plain(message: &str) -> String {
    if message.contains("untagged enum RawDocument") {
        return "expected an index (0, 1, …) or a \"path=value,…\" selector".into();
    }
    match message.split_once(", expected struct Raw") {
        Some((found, _)) if found.starts_with("invalid length") => {
            "expected a table, found an array".into()
        }
        Some((found, _)) => format!("{found}, expected a table"),
        None => message.to_string(),
    }
}

fn parse<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let offset = e.span().map(|s| s.start);
        let message = plain(e.message().trim());
        let mut key = offset.map(|o| key_at(text, o)).unwrap_or_default();
        // `[[apps.targets]]` with no `[[apps]]` above it makes `apps` a
        // table, and toml points at that header: the header's own array is
        // fine, the value of the wrong type is the table it hangs from.
        let at_array_header = offset.is_some_and(|o| {
            let start = text[..o.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
            text[start..].trim_start().starts_with("[[")
        });
        if at_array_header && message.starts_with("invalid type: map, expected a sequence") {
            key = key
                .rsplit_once('.')
                .map(|(parent, _)| parent.to_string())
                .unwrap_or(key);
        }
        ConfigError {
            file: path.to_path_buf(),
            line: offset.map(|o| line_of(text, o)),
            key,
            message,
        }
    })
}

/// The file an error is reported against, with its text for line numbers.
struct Source<'a> {
    file: &'a Path,
    text: &'a str,
    /// The last (offset, line) asked for: apps are validated in file order,
    /// so counting on from there keeps a thousand-app file linear.
    cursor: std::cell::Cell<(usize, usize)>,
}

impl<'a> Source<'a> {
    fn new(file: &'a Path, text: &'a str) -> Source<'a> {
        Source {
            file,
            text,
            cursor: std::cell::Cell::new((0, 1)),
        }
    }

    /// 1-based line of `offset`, like [`line_of`], counting on from the
    /// previous call when it lies further on.
    fn line(&self, offset: usize) -> usize {
        let (from, line) = self.cursor.get();
        let offset = offset.min(self.text.len());
        let line = if offset >= from {
            line + self.text.as_bytes()[from..offset]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
        } else {
            line_of(self.text, offset)
        };
        self.cursor.set((offset, line));
        line
    }

    fn error(
        &self,
        span: Option<std::ops::Range<usize>>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            line: span.map(|s| line_of(self.text, s.start)),
            key: key.into(),
            message: message.into(),
        }
    }

    fn duration(&self, v: &Spanned<String>, key: &str) -> Result<Duration, ConfigError> {
        let d = humantime::parse_duration(v.get_ref()).map_err(|e| {
            self.error(
                Some(v.span()),
                key,
                format!("invalid duration {:?}: {e}", v.get_ref()),
            )
        })?;
        if d.is_zero() {
            return Err(self.error(Some(v.span()), key, "must be greater than zero"));
        }
        Ok(d)
    }

    /// A string that must be present and non-empty.
    fn required<'v>(
        &self,
        v: &'v Option<Spanned<String>>,
        section_span: Option<std::ops::Range<usize>>,
        key: &str,
    ) -> Result<&'v Spanned<String>, ConfigError> {
        match v {
            Some(s) if !s.get_ref().trim().is_empty() => Ok(s),
            Some(s) => Err(self.error(Some(s.span()), key, "must not be empty")),
            None => Err(self.error(section_span, key, "is required")),
        }
    }
}

fn validate_aws(src: &Source<'_>, raw: &RawAws) -> Result<AwsSettings, ConfigError> {
    let text = |v: &Option<Spanned<String>>| v.as_ref().map(|s| s.get_ref().trim().to_string());
    if let Some(id) = &raw.registry_id {
        let s = id.get_ref();
        if s.len() != 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(src.error(
                Some(id.span()),
                "aws.registry_id",
                format!("{s:?} is not a 12-digit AWS account id"),
            ));
        }
    }
    if let Some(arn) = &raw.assume_role_arn {
        let s = arn.get_ref();
        if !(s.starts_with("arn:") && s.contains(":role/")) {
            return Err(src.error(
                Some(arn.span()),
                "aws.assume_role_arn",
                format!("{s:?} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)"),
            ));
        }
    }
    if let Some(url) = &raw.endpoint_url {
        let s = url.get_ref();
        if !(s.starts_with("http://") || s.starts_with("https://")) {
            return Err(src.error(
                Some(url.span()),
                "aws.endpoint_url",
                format!("{s:?} must start with http:// or https://"),
            ));
        }
    }
    let concurrency = match &raw.concurrency {
        Some(n) => positive(src, n, "aws.concurrency", 256)? as usize,
        None => DEFAULT_REGISTRY_CONCURRENCY,
    };
    let events = match &raw.events {
        Some(events) => {
            let raw = events.get_ref();
            let url = src.required(
                &raw.sqs_queue_url,
                Some(events.span()),
                "aws.events.sqs_queue_url",
            )?;
            if !(url.get_ref().starts_with("https://") || url.get_ref().starts_with("http://")) {
                return Err(src.error(
                    Some(url.span()),
                    "aws.events.sqs_queue_url",
                    format!(
                        "{:?} is not a queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)",
                        url.get_ref()
                    ),
                ));
            }
            let debounce = match &raw.debounce {
                Some(d) => src.duration(d, "aws.events.debounce")?,
                None => Duration::from_secs(2),
            };
            Some(EventSettings {
                sqs_queue_url: url.get_ref().trim().to_string(),
                debounce,
            })
        }
        None => None,
    };
    Ok(AwsSettings {
        region: text(&raw.region).filter(|s| !s.is_empty()),
        registry_id: text(&raw.registry_id),
        assume_role_arn: text(&raw.assume_role_arn),
        endpoint_url: text(&raw.endpoint_url),
        concurrency,
        events,
    })
}

fn positive(src: &Source<'_>, v: &Spanned<i64>, key: &str, max: i64) -> Result<i64, ConfigError> {
    let n = *v.get_ref();
    if !(1..=max).contains(&n) {
        return Err(src.error(Some(v.span()), key, format!("{n} is outside 1..={max}")));
    }
    Ok(n)
}

fn validate_git(
    src: &Source<'_>,
    base: &Path,
    raw: &RawGit,
    section: std::ops::Range<usize>,
) -> Result<GitSettings, ConfigError> {
    let url = src.required(&raw.url, Some(section.clone()), "git.url")?;
    let checkout = src.required(&raw.checkout_dir, Some(section.clone()), "git.checkout_dir")?;
    let author = src.required(&raw.author, Some(section), "git.author")?;
    let branch = match &raw.branch {
        Some(b) => {
            let name = b.get_ref();
            if !git2::Reference::is_valid_name(&format!("refs/heads/{name}")) {
                return Err(src.error(
                    Some(b.span()),
                    "git.branch",
                    format!("{name:?} is not a valid branch name"),
                ));
            }
            name.clone()
        }
        None => "main".to_string(),
    };
    let author = parse_identity(author.get_ref())
        .map_err(|m| src.error(Some(author.span()), "git.author", m))?;
    if let Some(user) = &raw.username
        && raw.token_file.is_none()
    {
        return Err(src.error(
            Some(user.span()),
            "git.username",
            "username is used with token_file; set token_file too",
        ));
    }
    let token = match &raw.token_file {
        Some(f) if f.get_ref().trim().is_empty() => {
            return Err(src.error(Some(f.span()), "git.token_file", "must not be empty"));
        }
        Some(f) => Some(TokenAuth {
            file: base.join(f.get_ref()),
            username: raw
                .username
                .as_ref()
                .map_or_else(|| "x-access-token".to_string(), |u| u.get_ref().clone()),
        }),
        None => None,
    };
    let ssh = match (&raw.ssh_key_file, &raw.known_hosts_file) {
        (Some(key), Some(hosts)) => Some(SshAuth {
            key_file: base.join(key.get_ref()),
            known_hosts_file: base.join(hosts.get_ref()),
        }),
        (Some(key), None) => {
            return Err(src.error(
                Some(key.span()),
                "git.known_hosts_file",
                "is required with ssh_key_file: the server's host key is always checked",
            ));
        }
        (None, Some(hosts)) => {
            return Err(src.error(
                Some(hosts.span()),
                "git.ssh_key_file",
                "is required with known_hosts_file",
            ));
        }
        (None, None) => None,
    };
    if let Some(f) = raw
        .ca_file
        .as_ref()
        .filter(|f| f.get_ref().trim().is_empty())
    {
        return Err(src.error(Some(f.span()), "git.ca_file", "must not be empty"));
    }
    let push_attempts = match &raw.push_attempts {
        Some(n) => positive(src, n, "git.push_attempts", 100)? as u32,
        None => DEFAULT_PUSH_ATTEMPTS,
    };
    // A local-path remote is relative to the config file, like `include`.
    let url = url.get_ref().trim().to_string();
    let url = if looks_like_local_path(&url) && Path::new(&url).is_relative() {
        base.join(&url).to_string_lossy().into_owned()
    } else {
        url
    };
    Ok(GitSettings {
        url,
        branch,
        checkout_dir: base.join(checkout.get_ref()),
        author,
        push_attempts,
        token,
        ssh,
        signing_key_file: raw
            .signing_key_file
            .as_ref()
            .map(|f| base.join(f.get_ref())),
        ca_file: raw.ca_file.as_ref().map(|f| base.join(f.get_ref())),
    })
}

/// True for remotes git treats as a path on this machine: not a URL with a
/// scheme, and not scp-like `user@host:path`.
fn looks_like_local_path(url: &str) -> bool {
    if url.contains("://") {
        return false;
    }
    match url.find(':') {
        Some(colon) => url[..colon].contains('/'),
        None => true,
    }
}

fn parse_identity(s: &str) -> Result<Identity, String> {
    let err = || format!("{s:?} is not of the form \"Name <email>\"");
    let (name, rest) = s.split_once('<').ok_or_else(err)?;
    let email = rest.strip_suffix('>').ok_or_else(err)?;
    let (name, email) = (name.trim(), email.trim());
    if name.is_empty() || email.is_empty() || email.contains(['<', '>']) {
        return Err(err());
    }
    Ok(Identity {
        name: name.to_string(),
        email: email.to_string(),
    })
}

/// Names end up in commit subjects, trailers and (later) branch names, so
/// they are kept to characters that are safe in all three.
fn check_name(s: &str) -> Result<(), String> {
    let ok = s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && s.len() <= 63;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} must start with a letter or digit and use only letters, digits, '.', '_' and '-' (at most 63)"
        ))
    }
}

/// What earlier apps claimed, to point at both sides of a duplicate.
#[derive(Default)]
struct SeenApps {
    /// App name → where it was first defined.
    names: std::collections::HashMap<String, String>,
    /// Every target so far by file: key, document, and the `app/env` that
    /// writes it. Two targets on one scalar would fight each cycle, each
    /// undoing the other's commit. By file, because a fleet has thousands
    /// of targets but only a few in any one file.
    scalars: std::collections::HashMap<RepoPath, Vec<(KeyPath, Document, String)>>,
    /// The validated `[forge]`, whose settings are every PR's defaults.
    forge: Option<ForgeSettings>,
    /// The first pull-request target, reported if there is no `[forge]`.
    needs_forge: Option<ConfigError>,
    /// Every `allow` compiled so far, shared by the apps that repeat it.
    patterns: Patterns,
}

fn validate_app(
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
        let mut target = validate_target(
            src,
            index,
            t,
            raw_target,
            name.span(),
            &policy,
            seen.forge.as_ref(),
        )?;
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
    let targets = order_chain(src, index, raw, targets)?;
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
fn check_repository(s: &str) -> Result<(), String> {
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
        Err(format!(
            "{s:?} is not a valid ECR repository name (lowercase letters, digits, '.', '_', '-', '/')"
        ))
    }
}

fn validate_target(
    src: &Source<'_>,
    app: usize,
    index: usize,
    raw: &RawTarget,
    app_span: std::ops::Range<usize>,
    policy: &Policy,
    forge: Option<&ForgeSettings>,
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
    let kustomize_image = match raw.kind.as_ref().map(|k| (k, k.get_ref().as_str())) {
        None | Some((_, "yaml")) => {
            if let Some(image) = &raw.image {
                return Err(src.error(
                    Some(image.span()),
                    at("image"),
                    "image is for kind = \"kustomize\"",
                ));
            }
            None
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
            Some(image)
        }
        Some((k, other)) => {
            return Err(src.error(
                Some(k.span()),
                at("kind"),
                format!("unknown kind {other:?}; expected \"yaml\" (default) or \"kustomize\""),
            ));
        }
    };
    let document = match raw.document.as_ref().map(|d| (d, d.get_ref())) {
        Some((_, RawDocument::Index(n))) if *n >= 0 => Document::Index(*n as usize),
        Some((d, RawDocument::Index(_))) => {
            return Err(src.error(Some(d.span()), at("document"), "must be 0 or greater"));
        }
        Some((d, RawDocument::Select(text))) => {
            Document::parse(text).map_err(|m| src.error(Some(d.span()), at("document"), m))?
        }
        None => Document::Any,
    };
    let follows_digest = matches!(policy.strategy, Strategy::Digest { .. });
    let format = match &raw.format {
        Some(f) => {
            let format = Format::parse(f.get_ref())
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
    };
    let (key_path, kustomize) = match kustomize_image {
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
            (
                key,
                Some(Kustomize {
                    image: image.get_ref().clone(),
                    field,
                }),
            )
        }
        None => {
            let key = src.required(&raw.key, Some(first_span), &at("key"))?;
            let key_path = KeyPath::parse(key.get_ref())
                .map_err(|e| src.error(Some(key.span()), at("key"), e.to_string()))?;
            (key_path, None)
        }
    };
    let update = match raw.update.as_ref().map(|u| (u, u.get_ref().as_str())) {
        None | Some((_, "commit")) => Update::Commit,
        Some((_, "pull-request")) => Update::PullRequest,
        Some((u, other)) => {
            return Err(src.error(
                Some(u.span()),
                at("update"),
                format!(
                    "unknown update {other:?}; expected \"commit\" (default) or \"pull-request\""
                ),
            ));
        }
    };
    let promote_from = match &raw.promote_from {
        Some(from) => {
            check_name(from.get_ref())
                .map_err(|m| src.error(Some(from.span()), at("promote_from"), m))?;
            if from.get_ref() == env.get_ref() {
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
        proposal: proposal.over(&defaults),
        policy: None,
    })
}

fn expand_include(
    src: &Source<'_>,
    key: &str,
    main: &Path,
    base: &Path,
    pattern: &Spanned<String>,
) -> Result<Vec<PathBuf>, ConfigError> {
    let raw = pattern.get_ref();
    if Path::new(raw).is_absolute() {
        return Err(src.error(
            Some(pattern.span()),
            key,
            "must be relative to the config file",
        ));
    }
    // Checked alone first, so a syntax error's position counts in what the
    // user wrote, not in the config directory joined to it.
    if let Err(e) = glob::Pattern::new(raw) {
        return Err(src.error(
            Some(pattern.span()),
            key,
            format!("invalid glob {raw:?}: {e}"),
        ));
    }
    let full = base.join(raw);
    let paths = glob::glob(&full.to_string_lossy()).map_err(|e| {
        src.error(
            Some(pattern.span()),
            key,
            format!("invalid glob {raw:?}: {e}"),
        )
    })?;
    let main = std::fs::canonicalize(main).ok();
    let mut files = Vec::new();
    for entry in paths {
        let path = entry.map_err(|e| src.error(Some(pattern.span()), key, e.to_string()))?;
        if path.is_dir() {
            let shown = path
                .strip_prefix(base)
                .unwrap_or(&path)
                .display()
                .to_string();
            return Err(src.error(
                Some(pattern.span()),
                key,
                format!("{shown:?} is a directory; include its files, e.g. \"{shown}/*.toml\""),
            ));
        }
        if main.is_some() && std::fs::canonicalize(&path).ok() == main {
            return Err(src.error(
                Some(pattern.span()),
                key,
                format!(
                    "{raw:?} matches the config file itself ({}); narrow it, e.g. \"apps.d/*.toml\"",
                    path.file_name().unwrap_or_default().to_string_lossy()
                ),
            ));
        }
        if path.is_file() {
            files.push(path);
        }
    }
    // glob yields sorted paths already; sorting again makes the order an
    // explicit promise (app order decides which duplicate is reported).
    files.sort();
    Ok(files)
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The dotted key at a byte offset, reconstructed from the table headers
/// above it. serde's errors for unknown fields and wrong types carry only a
/// span, and users need the key (`apps[1].targets[0].fiel`) to find it.
fn key_at(text: &str, offset: usize) -> String {
    let mut table: Vec<String> = Vec::new();
    let mut counts: std::collections::HashMap<String, usize> = Default::default();
    let mut key = String::new();
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        pos += line.len();
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("[[") {
            // `[[a.b]]` starts a new element; `[[a.b]` (unclosed) names the
            // array without one.
            let (name, closed) = match rest.split_once("]]") {
                Some((name, _)) => (name, true),
                None => (rest.split(']').next().unwrap_or(rest), false),
            };
            table = indexed_path(name.trim(), &mut counts, closed);
            key.clear();
        } else if let Some(header) = trimmed.strip_prefix('[').and_then(|h| h.split(']').next()) {
            table = indexed_path(header.trim(), &mut counts, false);
            key.clear();
        } else if !trimmed.is_empty() && !trimmed.starts_with('#') {
            // `key = value`, or a line missing its `=` (`key "value"`), if
            // what starts it could be a key at all (not YAML's `key:`).
            let k = match trimmed.split_once('=') {
                Some((k, _)) => k,
                None => trimmed
                    .split_whitespace()
                    .next()
                    .filter(|t| {
                        t.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_-.\"".contains(c))
                    })
                    .unwrap_or(""),
            };
            key = k.trim().trim_matches('"').to_string();
        }
        if offset < pos {
            break;
        }
    }
    let mut parts = table;
    if !key.is_empty() {
        parts.push(key);
    }
    parts.join(".")
}

/// Turns `apps.targets` into `apps[N].targets[M]`, counting array-of-tables
/// headers seen so far. A parent that is an array gets the index of its
/// current element; the last segment gets a new element's index when
/// `new_element` (a `[[…]]` header), none otherwise (a `[…]` table).
fn indexed_path(
    name: &str,
    counts: &mut std::collections::HashMap<String, usize>,
    new_element: bool,
) -> Vec<String> {
    let segments: Vec<&str> = name.split('.').map(str::trim).collect();
    let mut out = Vec::new();
    let mut prefix = String::new();
    for (i, seg) in segments.iter().enumerate() {
        if !prefix.is_empty() {
            prefix.push('.');
        }
        prefix.push_str(seg);
        let last = i + 1 == segments.len();
        if last && new_element {
            // A new element of this array: count it, and forget the counts
            // of arrays nested in the previous element.
            let n = counts.entry(prefix.clone()).or_insert(0);
            *n += 1;
            let index = *n - 1;
            let nested = format!("{prefix}.");
            counts.retain(|k, _| !k.starts_with(&nested));
            out.push(format!("{seg}[{index}]"));
        } else {
            match counts.get(&prefix) {
                Some(n) if !last => out.push(format!("{seg}[{}]", n.saturating_sub(1))),
                _ => out.push(seg.to_string()),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_paths_that_escape_are_refused() {
        for bad in [
            "../x.yaml",
            "a/../../x",
            "/etc/passwd",
            "",
            ".git/config",
            "a\\b",
        ] {
            assert!(RepoPath::new(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            RepoPath::new("./envs//dev/values.yaml").unwrap().as_str(),
            "envs/dev/values.yaml"
        );
    }

    #[test]
    fn identity_parses_name_and_email() {
        let id = parse_identity("tagwatch <tagwatch@acme.dev>").unwrap();
        assert_eq!(
            id,
            Identity {
                name: "tagwatch".into(),
                email: "tagwatch@acme.dev".into()
            }
        );
        assert!(parse_identity("tagwatch").is_err());
        assert!(parse_identity("<a@b>").is_err());
    }

    #[test]
    fn key_at_names_nested_array_tables() {
        let text = "[git]\nurl = 'x'\n[[apps]]\nname='a'\n[[apps]]\nname='b'\n[[apps.targets]]\nenv='dev'\n[[apps.targets]]\nfiel='x'\n";
        let offset = text.find("fiel").unwrap();
        assert_eq!(key_at(text, offset), "apps[1].targets[1].fiel");
        assert_eq!(key_at(text, text.find("url").unwrap()), "git.url");
    }

    #[test]
    fn local_paths_are_told_from_remotes() {
        assert!(looks_like_local_path("../gitops.git"));
        assert!(looks_like_local_path("/srv/git/gitops"));
        assert!(!looks_like_local_path("git@github.com:acme/gitops.git"));
        assert!(!looks_like_local_path("https://github.com/acme/gitops.git"));
        assert!(!looks_like_local_path("file:///srv/git/gitops"));
    }
}
