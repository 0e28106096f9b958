//! `[argocd]` (where Argo CD's API is, and the token to read it with) and
//! the target key `argocd_app` (the Application that deploys that target's
//! env). Validated here, into [`ArgoSettings`]; the client is `crate::argocd`
//! and the rule is `cycle::plan`'s.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;
use super::source::Source;

/// How to reach Argo CD's API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgoSettings {
    /// The API server's base URL (`https://argocd.example.com`), without a
    /// trailing slash.
    pub url: String,
    /// A file holding the bearer token (an Argo CD account or project
    /// token); read on every request, so a rotated Secret is picked up.
    pub token_file: PathBuf,
    /// A PEM bundle to trust besides the system roots, for an API server
    /// behind a private CA.
    pub ca_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawArgo {
    url: Option<Spanned<String>>,
    token_file: Option<Spanned<String>>,
    ca_file: Option<Spanned<String>>,
}

pub(super) fn validate_argocd(
    src: &Source<'_>,
    base: &Path,
    raw: &RawArgo,
    span: std::ops::Range<usize>,
) -> Result<ArgoSettings, ConfigError> {
    let url = src.required(&raw.url, Some(span.clone()), "argocd.url")?;
    let text = url.get_ref().trim().trim_end_matches('/');
    if !(text.starts_with("https://") || text.starts_with("http://")) {
        return Err(src.error(
            Some(url.span()),
            "argocd.url",
            format!("{:?} is not an http(s) URL", url.get_ref()),
        ));
    }
    if super::settings::sends_in_clear(text) {
        return Err(src.error(
            Some(url.span()),
            "argocd.url",
            format!(
                "{:?} would send the Argo CD token in clear; use https:// (http:// is allowed only for loopback addresses)",
                url.get_ref()
            ),
        ));
    }
    let token_file = src.required(&raw.token_file, Some(span), "argocd.token_file")?;
    let ca_file = match &raw.ca_file {
        Some(ca) => {
            let path = base.join(ca.get_ref());
            // Read now, so a wrong path is a config error, not a failed
            // cycle an hour later.
            let pem = std::fs::read(&path).map_err(|e| {
                src.error(
                    Some(ca.span()),
                    "argocd.ca_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            if reqwest::Certificate::from_pem(&pem).is_err() {
                return Err(src.error(
                    Some(ca.span()),
                    "argocd.ca_file",
                    format!("{} is not a PEM certificate", path.display()),
                ));
            }
            Some(path)
        }
        None => None,
    };
    Ok(ArgoSettings {
        url: text.to_string(),
        token_file: base.join(token_file.get_ref()),
        ca_file,
    })
}

/// A target's `argocd_app`: an Application name (a Kubernetes object
/// name), allowed only with `[argocd]`.
pub(super) fn target_app(
    src: &Source<'_>,
    key: &str,
    raw: &Option<Spanned<String>>,
    have_argocd: bool,
) -> Result<Option<String>, ConfigError> {
    let Some(name) = raw else {
        return Ok(None);
    };
    if !have_argocd {
        return Err(src.error(
            Some(name.span()),
            key,
            "argocd_app needs an [argocd] section (url, token_file) to read the Application from",
        ));
    }
    let ok = !name.get_ref().is_empty()
        && name.get_ref().len() <= 253
        && name
            .get_ref()
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !ok {
        return Err(src.error(
            Some(name.span()),
            key,
            format!(
                "{:?} is not an Application name (lowercase letters, digits, '-' and '.')",
                name.get_ref()
            ),
        ));
    }
    Ok(Some(name.get_ref().clone()))
}
