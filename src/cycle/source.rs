//! `promote_from` and `soak`: which image a target may take from its
//! source env, and whether the source has run it long enough. Pure over
//! [`Branch`] facts and the clock.
//!
//! The source's value is read from the branch as this cycle leaves it, so
//! a chain (dev → staging → prod) flows in one cycle, in a dry run exactly
//! as in a real one; the value's age comes from history, or is zero when
//! this cycle wrote it.

use std::time::Duration;

use time::OffsetDateTime;

use super::plan::{Branch, Step};
use super::report::Stage;
use crate::config::App;
use crate::manifest;
use crate::registry::{Image, Listing};

/// What a `promote_from` target may take: the image its source env runs.
#[derive(Clone, Debug)]
pub struct Source {
    pub env: String,
    pub image: Image,
    /// The source's value as the policy compares it (tag, or digest).
    pub held: String,
    /// When the source came to run it, from the branch's history.
    pub since: Option<OffsetDateTime>,
}

/// The image `env` of `app` runs, as listed. A source the registry does
/// not list makes the target wait; a source that cannot be read fails it.
pub fn resolve(
    app: &App,
    env: &str,
    listing: &Listing,
    branch: &dyn Branch,
    now: OffsetDateTime,
) -> Result<Source, Step> {
    let fail = |stage, error| Step::Fail { stage, error };
    let Some(source) = app.targets.iter().find(|t| t.env == env) else {
        return Err(fail(
            Stage::Policy,
            format!("no env {env:?} to promote from"),
        ));
    };
    let bytes = match branch.read(&source.file) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => {
            return Err(fail(
                Stage::Manifest,
                format!("{}: no such file on the branch (env {env})", source.file),
            ));
        }
        Err(e) => return Err(fail(Stage::Git, e.to_string())),
    };
    let value = match manifest::get(&bytes, &source.key, &source.document) {
        Ok(scalar) => scalar.value,
        Err(e) => {
            return Err(fail(
                Stage::Manifest,
                format!("{}: {}: {e} (env {env})", source.file, source.key),
            ));
        }
    };
    // The tag the source runs, read through its format; a pinned digest
    // must match too, so the exact image the source tested is promoted.
    let format = &source.format;
    let digest = format.current_digest(&value);
    let image = match format.current_tag(&value) {
        Some(tag) => listing
            .images
            .iter()
            .find(|i| i.tag == tag && digest.is_none_or(|d| d == i.digest)),
        // Several tags can point at the digest: the one the policy ranks
        // highest, so the listing's order never decides (as for a
        // target's own value in `plan::held_tag`).
        None => digest.and_then(|d| app.policy.greatest_on_digest(&listing.images, d, now)),
    };
    let Some(image) = image else {
        return Err(Step::Wait {
            reason: format!("{env} runs {value}, which the registry does not list"),
            candidate: None,
        });
    };
    let held = app.policy.value_of(image).to_string();
    let since = branch.held_since(&app.name, env, &held, &source.file);
    Ok(Source {
        env: env.to_string(),
        image: image.clone(),
        held,
        since,
    })
}

/// Why `source` has not run long enough for `soak`; `None` once it has.
pub fn soaking(source: &Source, soak: Duration, now: OffsetDateTime) -> Option<String> {
    if soak.is_zero() {
        return None;
    }
    let (env, held) = (&source.env, &source.held);
    let ran = source.since.map(|t| now - t);
    if ran.is_some_and(|ran| ran >= soak) {
        return None;
    }
    let soak = humantime::format_duration(soak);
    match ran {
        Some(ran) => {
            // A commit dated in the future (clock skew) has run for less
            // than nothing: it waits, it never fires early.
            let ran = Duration::from_secs(ran.whole_seconds().max(0) as u64);
            Some(format!(
                "{env} has run {held} for {}; soak is {soak}",
                humantime::format_duration(ran)
            ))
        }
        None => Some(format!(
            "cannot tell since when {env} runs {held} (no commit found); soak is {soak}"
        )),
    }
}

#[cfg(test)]
#[path = "source_tests.rs"]
mod tests;
