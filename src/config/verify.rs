//! The target keys `verify` (a PromQL query, with the `analysis` gate's
//! syntax and placeholders) and `verify_for` (how long after a promotion
//! it is watched): validated here into [`Verify`]. What a failing check
//! does (a rollback) is `cycle::plan`'s rule.

use std::time::Duration;

use toml::Spanned;

use super::ConfigError;
use super::source::Source;
use crate::gate::Analysis;

/// How long a promotion is watched when `verify_for` is not set.
pub const DEFAULT_VERIFY_FOR: Duration = Duration::from_secs(15 * 60);

/// Watch a target after tagwatch promotes it, and roll it back if it goes
/// bad within the window.
#[derive(Clone, Debug)]
pub struct Verify {
    /// Must return a sample each cycle of the window; an empty vector rolls
    /// the target back. `None`: only the Argo CD Application is watched.
    pub query: Option<Analysis>,
    /// The window after the promotion commit.
    pub window: Duration,
}

/// `verify` and `verify_for` of one target. `verify_for` alone watches the
/// target's `argocd_app` (so it needs one); `verify` needs `[prometheus]`,
/// which the caller checks as it does for `analysis`.
pub(super) fn target_verify(
    src: &Source<'_>,
    at: &str,
    query: &Option<Spanned<String>>,
    window: &Option<Spanned<String>>,
    has_argocd_app: bool,
) -> Result<Option<Verify>, ConfigError> {
    let window_key = format!("{at}.verify_for");
    let window = match window {
        Some(w) => {
            let d = src.duration(w, &window_key)?;
            if d.is_zero() {
                return Err(src.error(Some(w.span()), window_key, "must be more than zero"));
            }
            Some((d, w.span()))
        }
        None => None,
    };
    let query = match query {
        Some(q) => Some(
            Analysis::parse(q.get_ref())
                .map_err(|e| src.error(Some(q.span()), format!("{at}.verify"), e.to_string()))?,
        ),
        None => None,
    };
    match (query, window) {
        (None, None) => Ok(None),
        (None, Some((_, span))) if !has_argocd_app => Err(src.error(
            Some(span),
            window_key,
            "verify_for watches the verify query or the target's argocd_app; set either",
        )),
        (query, window) => Ok(Some(Verify {
            query,
            window: window.map_or(DEFAULT_VERIFY_FOR, |(d, _)| d),
        })),
    }
}
