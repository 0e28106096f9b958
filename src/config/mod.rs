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
//!
//! Layout: this file holds [`Config`], [`ConfigError`] and [`load`], which
//! drives the steps; `raw` is the serde shape, `source` reads files and turns
//! byte offsets into lines and keys, `settings` validates `[aws]`, `[git]`
//! and `[forge]`, `apps` validates `[[apps]]` and their targets, and
//! `include` expands `include` globs.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::aws::{AwsSettings, EventSettings};
pub use apps::{
    App, Kustomize, PROPOSAL_PREFIX, RepoPath, RepoPathError, RepoPathProblem, Target, Update,
    proposal_branch,
};
pub use argocd::ArgoSettings;
pub use github_app::GitHubApp;
pub use notify::{EventKind, NotifyKind, NotifySettings};
pub use previews::{DEFAULT_MAX_PREVIEWS, Preview};
pub use prometheus::PrometheusSettings;
pub use replica::{Replica, is_region};
pub use settings::{
    ForgeAuth, ForgeKind, ForgeSettings, GitSettings, Identity, ProposalOptions, SshAuth, TokenAuth,
};
pub use verify::{DEFAULT_VERIFY_FOR, Verify};

use apps::{SeenApps, validate_app};
use include::expand_include;
use raw::{RawConfig, RawInclude};
use settings::{validate_aws, validate_forge, validate_git};
use source::{Source, parse, read};

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
    /// Where `analysis` queries are evaluated; required by any target
    /// with `analysis`.
    pub prometheus: Option<PrometheusSettings>,
    /// Where `argocd_app` targets' Applications are read.
    pub argocd: Option<ArgoSettings>,
    /// `[[notify]]`: where each cycle's events are announced.
    pub notify: Vec<NotifySettings>,
}

mod apps;
mod argocd;
mod github_app;
mod include;
mod notify;
mod previews;
mod prometheus;
mod raw;
mod replica;
mod settings;
mod source;
#[cfg(test)]
mod tests;
mod verify;

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

// ---- loading ----------------------------------------------------------------

/// Reads, parses and validates the configuration at `path`, including the
/// files named by `include`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = read(path)?;
    let mut raw: RawConfig = parse(path, &text)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let main = Source::new(path, &text);

    let forge = match &raw.forge {
        Some(forge) => Some(validate_forge(&main, base, forge.get_ref(), forge.span())?),
        None => None,
    };
    let argocd = match &raw.argocd {
        Some(a) => Some(argocd::validate_argocd(&main, base, a.get_ref(), a.span())?),
        None => None,
    };
    let mut apps = Vec::with_capacity(raw.apps.len());
    let mut seen = SeenApps {
        forge: forge.clone(),
        argocd: argocd.is_some(),
        ..SeenApps::default()
    };
    // Each raw app is dropped as soon as it is validated: at 10,000 apps
    // the spanned raw structs are about as large as the validated ones,
    // and keeping both until the end was the load's peak (issue 20).
    for (i, app) in std::mem::take(&mut raw.apps).into_iter().enumerate() {
        apps.push(validate_app(&main, i, &app, &mut seen)?);
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
            for (j, app) in raw.apps.into_iter().enumerate() {
                apps.push(validate_app(&source, j, &app, &mut seen)?);
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
        Some(v) => main.positive_duration(v, "interval")?,
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
    let prometheus = match &raw.prometheus {
        Some(p) => Some(prometheus::validate_prometheus(
            &main,
            base,
            p.get_ref(),
            p.span(),
        )?),
        None => None,
    };
    if prometheus.is_none()
        && let Some(e) = seen.needs_prometheus.take()
    {
        return Err(e);
    }
    let aws = validate_aws(&main, &raw.aws)?;
    let git = match &raw.git {
        Some(git) => validate_git(&main, base, git.get_ref(), git.span())?,
        None => return Err(main.error(None, "git", "missing section [git]")),
    };
    let notify = notify::validate_notify(&main, base, &raw.notify, &apps)?;
    let mut git = git;
    if let Some(raw_git) = &raw.git {
        git.github_app = github_app::validate_git_auth(&main, raw_git.get_ref(), forge.as_ref())?;
    }

    Ok(Config {
        source: path.to_path_buf(),
        interval,
        listen,
        aws,
        git,
        apps,
        forge,
        prometheus,
        argocd,
        notify,
    })
}
