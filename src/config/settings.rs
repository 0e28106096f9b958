//! The process-wide sections: `[aws]` (with `[aws.events]`), `[git]` and
//! `[forge]`, their validated types and their checks. Per-app settings are
//! `apps`'s.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use crate::aws::{AwsSettings, EventSettings};

use super::raw::{RawAws, RawForge, RawGit};
use super::source::Source;
use super::{ConfigError, DEFAULT_PUSH_ATTEMPTS, DEFAULT_REGISTRY_CONCURRENCY};

/// The `[forge]` section: the GitHub or GitLab project behind the GitOps
/// repository.
#[derive(Clone, Debug)]
pub struct ForgeSettings {
    pub kind: ForgeKind,
    /// `owner/repo` on GitHub, `group/sub/project` on GitLab.
    pub repository: String,
    /// How tagwatch authenticates: a token file, or a GitHub App.
    pub auth: ForgeAuth,
    /// The API's base URL, without a trailing slash.
    pub api_url: String,
    /// Defaults for every pull request; a target's own settings replace them.
    pub defaults: ProposalOptions,
}

/// The forge's credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForgeAuth {
    /// A file holding the API token; read on every request, so a rotated
    /// Secret is picked up without a restart.
    Token(PathBuf),
    /// A GitHub App installation: tokens are minted and refreshed.
    App(super::github_app::GitHubApp),
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
    /// `auth = "github-app"`: HTTPS remotes get `[forge]`'s GitHub App
    /// installation token as user `x-access-token`. Set by `config::load`
    /// once both sections are validated.
    pub github_app: Option<super::github_app::GitHubApp>,
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

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} <{}>", self.name, self.email)
    }
}

pub(super) fn validate_forge(
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
            if sends_in_clear(text) {
                return Err(src.error(
                    Some(url.span()),
                    "forge.api_url",
                    format!(
                        "{:?} would send the forge token in clear; use https:// (http:// is allowed only for loopback addresses)",
                        url.get_ref()
                    ),
                ));
            }
            text.to_string()
        }
        None => match kind {
            ForgeKind::GitHub => "https://api.github.com".to_string(),
            ForgeKind::GitLab => "https://gitlab.com/api/v4".to_string(),
        },
    };
    let auth = super::github_app::validate_forge_auth(src, base, raw, kind, &api_url, span)?;
    Ok(ForgeSettings {
        kind,
        repository: repository.get_ref().clone(),
        auth,
        api_url,
        defaults: raw.proposal().over(&ProposalOptions::default()),
    })
}

pub(super) fn validate_aws(src: &Source<'_>, raw: &RawAws) -> Result<AwsSettings, ConfigError> {
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
                Some(d) => src.positive_duration(d, "aws.events.debounce")?,
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

pub(super) fn validate_git(
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
    // Basic auth over plain HTTP hands the token to anyone on the path.
    // Loopback stays allowed: nothing leaves the machine, and tests use it.
    let inline_password = reqwest::Url::parse(url.get_ref().trim())
        .is_ok_and(|u| u.password().is_some_and(|p| !p.is_empty()));
    if (token.is_some() || inline_password) && sends_in_clear(url.get_ref().trim()) {
        let what = if token.is_some() {
            "the token from token_file"
        } else {
            "the password in the URL"
        };
        return Err(src.error(
            Some(url.span()),
            "git.url",
            format!(
                "an http:// remote would send {what} in clear; use https:// (http:// is allowed only for loopback addresses)"
            ),
        ));
    }
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
        github_app: None,
    })
}

/// A `git.author` that is not `Name <email>`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not of the form \"Name <email>\"")]
pub(super) struct IdentityError(String);

/// True for an `http://` URL to a host other than this machine's loopback
/// (`localhost`, 127.0.0.0/8, `::1`): credentials sent to it travel in
/// clear. Anything that is not an `http://` URL is not this check's concern.
pub(super) fn sends_in_clear(url: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(url) else {
        return false;
    };
    if url.scheme() != "http" {
        return false;
    }
    let Some(host) = url.host_str() else {
        return true;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => !ip.is_loopback(),
        Err(_) => !host.eq_ignore_ascii_case("localhost"),
    }
}

/// True for remotes git treats as a path on this machine: not a URL with a
/// scheme, and not scp-like `user@host:path`.
pub(super) fn looks_like_local_path(url: &str) -> bool {
    if url.contains("://") {
        return false;
    }
    match url.find(':') {
        Some(colon) => url[..colon].contains('/'),
        None => true,
    }
}

pub(super) fn parse_identity(s: &str) -> Result<Identity, IdentityError> {
    let err = || IdentityError(s.to_string());
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
