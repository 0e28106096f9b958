//! GitHub App authentication settings: `[forge]`'s `app_id`,
//! `installation_id` and `private_key_file` (instead of `token_file`), and
//! `[git]`'s `auth = "github-app"`, which sends the same installation token
//! to an HTTPS remote. Validated into [`GitHubApp`]; minting and caching
//! the token is `crate::ghapp`'s.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;
use super::raw::{RawForge, RawGit};
use super::settings::{ForgeAuth, ForgeKind, ForgeSettings};
use super::source::Source;

/// A GitHub App installation tagwatch acts as.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GitHubApp {
    /// The JWT's issuer: the app's numeric id, or its client id (`Iv1.…`),
    /// which GitHub now recommends. Both are accepted as given.
    pub app_id: String,
    /// The installation on the organisation or account that owns the
    /// GitOps repository.
    pub installation_id: u64,
    /// The app's PEM private key; read on every mint, so a rotated Secret
    /// is used without a restart. Never read at validation.
    pub private_key_file: PathBuf,
    /// The API base (`[forge] api_url`), where tokens are minted.
    pub api_url: String,
}

/// `app_id = 12345` or `app_id = "Iv1.0123456789abcdef"`.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
pub(super) enum RawAppId {
    Number(i64),
    Text(String),
}

/// The forge's credentials: exactly one of `token_file` or the three
/// GitHub App keys.
pub(super) fn validate_forge_auth(
    src: &Source<'_>,
    base: &Path,
    raw: &RawForge,
    kind: ForgeKind,
    api_url: &str,
    span: std::ops::Range<usize>,
) -> Result<ForgeAuth, ConfigError> {
    let app_key = raw
        .app_id
        .as_ref()
        .map(|v| ("forge.app_id", v.span()))
        .or_else(|| {
            raw.installation_id
                .as_ref()
                .map(|v| ("forge.installation_id", v.span()))
        })
        .or_else(|| {
            raw.private_key_file
                .as_ref()
                .map(|v| ("forge.private_key_file", v.span()))
        });
    let Some((key, key_span)) = app_key else {
        if raw.token_file.is_none() && kind == ForgeKind::GitHub {
            return Err(src.error(
                Some(span),
                "forge.token_file",
                "is required, or app_id, installation_id and private_key_file for a GitHub App",
            ));
        }
        let token_file = src.required(&raw.token_file, Some(span), "forge.token_file")?;
        return Ok(ForgeAuth::Token(base.join(token_file.get_ref())));
    };
    if kind != ForgeKind::GitHub {
        return Err(src.error(
            Some(key_span),
            key,
            "GitHub App authentication needs kind = \"github\"; GitLab uses token_file",
        ));
    }
    if let Some(t) = &raw.token_file {
        return Err(src.error(
            Some(t.span()),
            "forge.token_file",
            "set either token_file or the GitHub App keys (app_id, installation_id, private_key_file), not both",
        ));
    }
    let app_id = match &raw.app_id {
        Some(v) => match v.get_ref() {
            RawAppId::Number(n) if *n > 0 => n.to_string(),
            RawAppId::Text(s) if valid_client_id(s.trim()) => s.trim().to_string(),
            _ => {
                return Err(src.error(
                    Some(v.span()),
                    "forge.app_id",
                    "must be the app's positive numeric id or its client id (letters, digits, '.', '_', '-')",
                ));
            }
        },
        None => {
            return Err(src.error(
                Some(span),
                "forge.app_id",
                "is required with installation_id and private_key_file",
            ));
        }
    };
    let installation_id = match &raw.installation_id {
        Some(v) if *v.get_ref() > 0 => *v.get_ref() as u64,
        Some(v) => {
            return Err(src.error(
                Some(v.span()),
                "forge.installation_id",
                "must be a positive number",
            ));
        }
        None => {
            return Err(src.error(
                Some(span),
                "forge.installation_id",
                "is required with app_id and private_key_file",
            ));
        }
    };
    let key_file = match &raw.private_key_file {
        Some(f) if f.get_ref().trim().is_empty() => {
            return Err(src.error(
                Some(f.span()),
                "forge.private_key_file",
                "must not be empty",
            ));
        }
        Some(f) => base.join(f.get_ref()),
        None => {
            return Err(src.error(
                Some(span),
                "forge.private_key_file",
                "is required with app_id and installation_id",
            ));
        }
    };
    Ok(ForgeAuth::App(GitHubApp {
        app_id,
        installation_id,
        private_key_file: key_file,
        api_url: api_url.to_string(),
    }))
}

/// A client id is printable and short; anything else is a typo (or a key
/// pasted into the wrong place, which must not end up in a JWT header).
fn valid_client_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// `[git] auth`: `"github-app"` uses `[forge]`'s app for HTTPS remotes.
pub(super) fn validate_git_auth(
    src: &Source<'_>,
    raw: &RawGit,
    forge: Option<&ForgeSettings>,
) -> Result<Option<GitHubApp>, ConfigError> {
    let Some(auth) = &raw.auth else {
        return Ok(None);
    };
    if auth.get_ref() != "github-app" {
        return Err(src.error(
            Some(auth.span()),
            "git.auth",
            format!(
                "unknown auth {:?}; expected \"github-app\" (or leave it out and use token_file or ssh_key_file)",
                auth.get_ref()
            ),
        ));
    }
    let conflicting: Option<&Spanned<String>> = raw
        .token_file
        .as_ref()
        .or(raw.username.as_ref())
        .or(raw.ssh_key_file.as_ref());
    if let Some(c) = conflicting {
        return Err(src.error(
            Some(c.span()),
            "git.auth",
            "auth = \"github-app\" sends the app's installation token; remove token_file, username and ssh_key_file",
        ));
    }
    let app = match forge.map(|f| &f.auth) {
        Some(ForgeAuth::App(app)) => app.clone(),
        _ => {
            return Err(src.error(
                Some(auth.span()),
                "git.auth",
                "auth = \"github-app\" needs [forge] kind = \"github\" with app_id, installation_id and private_key_file",
            ));
        }
    };
    if let Some(url) = &raw.url
        && !(url.get_ref().trim().starts_with("https://")
            || url.get_ref().trim().starts_with("http://"))
    {
        return Err(src.error(
            Some(url.span()),
            "git.url",
            "auth = \"github-app\" authenticates HTTPS remotes; use the repository's https:// URL",
        ));
    }
    if let Some(url) = &raw.url
        && super::settings::sends_in_clear(url.get_ref().trim())
    {
        return Err(src.error(
            Some(url.span()),
            "git.url",
            "an http:// remote would send the GitHub App's installation token in clear; use https:// (http:// is allowed only for loopback addresses)",
        ));
    }
    Ok(Some(app))
}
