//! Listing: each repository the config names, once per cycle, at most
//! `aws.concurrency` at a time; and each policy's best image chosen as its
//! repository's listing arrives, while the others are still in flight.
//!
//! A repository is named by its location too (a DR target's replica in
//! another region or account is another repository), and read once per
//! (location, repository); each artifact kind its apps want (images,
//! Helm charts) is a view of that one read, keyed by [`ListKey`].

use std::collections::HashMap;
use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::config::Config;
use crate::registry::{
    Artifact, ErrorKind, Image, ListKey, Listing, Location, Registry, RegistryError,
};

pub type Listings = HashMap<ListKey, Result<Listing, RegistryError>>;

/// `DescribeImages` pages the successful listings took.
/// A repository read as two kinds (images and charts) counts once.
pub fn pages_of(listings: &Listings) -> u32 {
    let mut read = std::collections::HashSet::new();
    listings
        .iter()
        .filter(|(k, _)| read.insert((&k.location, &k.repository)))
        .filter_map(|(_, l)| l.as_ref().ok())
        .map(|l| l.pages)
        .sum()
}

/// Each policy's best image in its repository's listing, by index, chosen
/// while the other repositories are still being listed: the scan of every
/// tag is most of the CPU a cycle spends deciding, and the listing is a
/// wait. Keyed by app and, for a target with its own `constraint`, env.
pub type Preferred = HashMap<(String, Option<String>), Option<usize>>;

/// The policies that choose from `listing`, each once: every app on the
/// repository, and every target of those with its own policy.
fn prefer(
    config: &Config,
    key: &ListKey,
    listing: &Listing,
    now: OffsetDateTime,
    preferred: &mut Preferred,
) {
    let index = |policy: &crate::policy::Policy| policy.best_index(&listing.images, now);
    for app in config.apps.iter().filter(|a| a.list_key() == *key) {
        preferred.insert((app.name.clone(), None), index(&app.policy));
        for target in &app.targets {
            if let Some(own) = &target.policy {
                preferred.insert((app.name.clone(), Some(target.env.clone())), index(own));
            }
        }
    }
}

/// Lists every repository the config names, each exactly once, at most
/// `aws.concurrency` at a time.
pub async fn list_repositories(
    config: &Config,
    registry: Arc<dyn Registry>,
    now: OffsetDateTime,
) -> (Listings, Preferred) {
    let keys = keys_of(config);
    let mut repositories: Vec<(Location, String)> = keys
        .iter()
        .map(|k| (k.location.clone(), k.repository.clone()))
        .collect();
    repositories.dedup();

    let limit = Arc::new(Semaphore::new(config.aws.concurrency));
    let started = std::time::Instant::now();
    let mut tasks = JoinSet::new();
    for (location, repository) in repositories {
        let registry = Arc::clone(&registry);
        let limit = Arc::clone(&limit);
        let span = match &location.region {
            Some(region) => info_span!("list", repository = %repository, region = %region),
            None => info_span!("list", repository = %repository),
        };
        tasks.spawn(
            async move {
                let _permit = limit.acquire_owned().await;
                let started = std::time::Instant::now();
                let result = registry.list_at(&location, &repository).await;
                match &result {
                    Ok(l) => {
                        debug!(images = l.images.len(), pages = l.pages, elapsed = ?started.elapsed(), "listed");
                        warn_future_pushes(l);
                        warn_invalid_tags(l);
                        let m = crate::metrics::get();
                        m.repository_images.with_label_values(&[repository.as_str()]).set(l.images.len() as f64);
                        m.repository_last_success.with_label_values(&[repository.as_str()]).set(crate::metrics::unix_now());
                    }
                    Err(e) => warn!(kind = e.kind(), error = %e, "listing failed"),
                }
                (location, repository, result)
            }
            .instrument(span),
        );
    }
    let mut listings = HashMap::new();
    let mut preferred = Preferred::new();
    let mut read = 0;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((location, repository, mut result)) => {
                read += 1;
                // Each artifact kind wanted from this repository, as a
                // view of the one read; the usual single kind takes the
                // listing itself, uncopied.
                let wanted: Vec<&ListKey> = keys
                    .iter()
                    .filter(|k| k.location == location && k.repository == repository)
                    .collect();
                for (i, key) in wanted.iter().enumerate() {
                    let view = if i + 1 == wanted.len() && key.artifact == Artifact::Image {
                        std::mem::replace(&mut result, Err(moved(&repository)))
                    } else {
                        result
                            .as_ref()
                            .map(|l| l.of_artifact(key.artifact))
                            .map_err(Clone::clone)
                    };
                    if let Ok(listing) = &view {
                        prefer(config, key, listing, now, &mut preferred);
                    }
                    listings.insert((*key).clone(), view);
                }
            }
            Err(e) => error!(error = %e, "listing task panicked"),
        }
    }
    let failed = listings.values().filter(|l| l.is_err()).count();
    let pages = pages_of(&listings);
    info!(
        repositories = read,
        failed,
        pages,
        elapsed = ?started.elapsed(),
        "listing finished"
    );
    (listings, preferred)
}

/// What is left of a listing handed on to its last view: never read, as
/// no view comes after the last.
fn moved(repository: &str) -> RegistryError {
    RegistryError {
        repository: repository.to_string(),
        kind: ErrorKind::Other,
        message: "listing already handed on".into(),
    }
}

/// Every listing the config needs, sorted so that one repository's kinds
/// are next to each other: each app's own, and each DR target's replica.
pub fn keys_of(config: &Config) -> Vec<ListKey> {
    let mut keys: Vec<ListKey> = config
        .apps
        .iter()
        .flat_map(|app| {
            std::iter::once(app.list_key()).chain(
                app.targets
                    .iter()
                    .filter_map(|t| t.replica.as_ref().map(|r| r.key(app.artifact))),
            )
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Tags outside the OCI grammar are never candidates (a newline in one
/// could otherwise reach a commit message or a file). Each is logged once
/// per process, not once per cycle, and the listing's count is a gauge.
fn warn_invalid_tags(listing: &Listing) {
    /// Enough to name every odd tag of a real estate; a registry full of
    /// junk stops being logged tag by tag rather than growing without end.
    const REMEMBERED: usize = 10_000;
    static LOGGED: std::sync::LazyLock<
        std::sync::Mutex<std::collections::HashSet<(String, String)>>,
    > = std::sync::LazyLock::new(Default::default);
    let invalid: Vec<&Image> = crate::policy::invalid_tags(&listing.images).collect();
    crate::metrics::get()
        .repository_invalid_tags
        .with_label_values(&[listing.repository.as_str()])
        .set(invalid.len() as f64);
    let mut logged = LOGGED.lock().unwrap_or_else(|e| e.into_inner());
    for image in invalid {
        let key = (listing.repository.clone(), image.tag.clone());
        if logged.len() < REMEMBERED && logged.insert(key) {
            warn!(
                repository = %listing.repository,
                tag = ?image.tag,
                digest = %image.digest,
                "a tag outside the OCI tag grammar is never a candidate"
            );
        }
    }
}

/// Says so when the registry dates images in the future (a skewed clock
/// here or there): such images are never old enough for `min_age`, so the
/// policy skips them rather than promoting them early, and an operator
/// should know why they wait. A minute of skew is tolerated silently.
fn warn_future_pushes(listing: &Listing) {
    let now = OffsetDateTime::now_utc();
    let ahead: Vec<&Image> = listing
        .images
        .iter()
        .filter(|i| {
            i.pushed_at
                .is_some_and(|p| p - now > time::Duration::minutes(1))
        })
        .collect();
    if let Some(first) = ahead.first() {
        warn!(
            images = ahead.len(),
            tag = %first.tag,
            pushed_at = %first.pushed_at.map(crate::trailers::format_time).unwrap_or_default(),
            "imagePushedAt is in the future (clock skew?); min_age treats these images as too young"
        );
    }
}
