//! `[prometheus]`: where the `analysis` gate's queries go. Validates the
//! section into [`PrometheusSettings`]; the client is `crate::prometheus`'s.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;
use super::settings::sends_in_clear;
use super::source::Source;

/// `[prometheus]` as serde reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPrometheus {
    url: Option<Spanned<String>>,
    token_file: Option<Spanned<String>>,
    ca_file: Option<Spanned<String>>,
}

/// How to reach the Prometheus the `analysis` queries are evaluated by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrometheusSettings {
    /// The server's base URL (`/api/v1/query` is appended), no trailing `/`.
    pub url: String,
    /// A bearer token, read on every query so a rotated Secret is picked
    /// up without a restart.
    pub token_file: Option<PathBuf>,
    /// A PEM bundle trusted besides the system roots.
    pub ca_file: Option<PathBuf>,
}

pub(super) fn validate_prometheus(
    src: &Source<'_>,
    base: &Path,
    raw: &RawPrometheus,
    span: std::ops::Range<usize>,
) -> Result<PrometheusSettings, ConfigError> {
    let url = src.required(&raw.url, Some(span), "prometheus.url")?;
    let text = url.get_ref().trim().trim_end_matches('/');
    if reqwest::Url::parse(text).map_or(true, |u| !matches!(u.scheme(), "http" | "https")) {
        return Err(src.error(
            Some(url.span()),
            "prometheus.url",
            format!("{:?} is not an http(s) URL", url.get_ref()),
        ));
    }
    if raw.token_file.is_some() && sends_in_clear(text) {
        return Err(src.error(
            Some(url.span()),
            "prometheus.url",
            format!(
                "{:?} would send the token in clear; use https:// (http:// is allowed only for loopback addresses)",
                url.get_ref()
            ),
        ));
    }
    let file = |f: &Option<Spanned<String>>, key: &str| match f {
        Some(f) if f.get_ref().trim().is_empty() => {
            Err(src.error(Some(f.span()), key, "must not be empty"))
        }
        Some(f) => Ok(Some(base.join(f.get_ref()))),
        None => Ok(None),
    };
    Ok(PrometheusSettings {
        url: text.to_string(),
        token_file: file(&raw.token_file, "prometheus.token_file")?,
        ca_file: file(&raw.ca_file, "prometheus.ca_file")?,
    })
}
