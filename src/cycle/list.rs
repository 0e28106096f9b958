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
use crate::policy::{Policy, Strategy};
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

/// Which scans of a listing a cycle makes, planned once before the listing
/// from the config: per listing (repository and artifact kind), each distinct policy that chooses from
/// it (an app's, or a target's own `constraint`) with every key of
/// [`Preferred`] it answers. Apps that share a repository and an equivalent
/// policy share one scan of its tags, so the deciding cost grows with
/// distinct (repository, policy) pairs, not with apps; and a landed listing
/// finds its policies by one lookup, not by a pass over every app. Owned
/// (each distinct policy cloned once), so each listing task scans its own
/// listing as soon as it lands, on whichever worker thread it runs.
#[derive(Default)]
struct ScanPlan {
    by_key: HashMap<ListKey, Vec<Scan>>,
}

/// One scan of one repository's tags, and the keys that take its answer.
struct Scan {
    policy: Policy,
    keys: Vec<(String, Option<String>)>,
}

impl ScanPlan {
    fn new(config: &Config) -> ScanPlan {
        let mut plan = ScanPlan::default();
        for app in &config.apps {
            let scans = plan.by_key.entry(app.list_key()).or_default();
            let mut add = |policy: &Policy, key: (String, Option<String>)| match scans
                .iter_mut()
                .find(|s| same_choice(&s.policy, policy))
            {
                Some(scan) => scan.keys.push(key),
                None => scans.push(Scan {
                    policy: policy.clone(),
                    keys: vec![key],
                }),
            };
            add(&app.policy, (app.name.clone(), None));
            for target in &app.targets {
                if let Some(own) = &target.policy {
                    add(own, (app.name.clone(), Some(target.env.clone())));
                }
            }
        }
        plan
    }

    /// Scans `listing` once per distinct policy; returns how many scans.
    fn prefer(
        &self,
        key: &ListKey,
        listing: &Listing,
        now: OffsetDateTime,
        preferred: &mut Preferred,
    ) -> usize {
        let Some(scans) = self.by_key.get(key) else {
            return 0;
        };
        for scan in scans {
            let best = scan.policy.best_index(&listing.images, now);
            for key in &scan.keys {
                preferred.insert(key.clone(), best);
            }
        }
        scans.len()
    }
}

/// Whether two policies choose the same image from every listing: the same
/// strategy (and range or followed tag), the same `allow` pattern and
/// `extract`, the same `ignore` globs and `min_age`. Conservative: two
/// policies written differently but equivalent (`^1` and `>=1 <2`) are
/// scanned twice, which costs time, never correctness.
fn same_choice(a: &Policy, b: &Policy) -> bool {
    let strategy = match (&a.strategy, &b.strategy) {
        (Strategy::Semver(x), Strategy::Semver(y)) => x == y,
        (Strategy::Digest { tag: x }, Strategy::Digest { tag: y }) => x == y,
        (Strategy::Newest, Strategy::Newest)
        | (Strategy::Alphabetical, Strategy::Alphabetical)
        | (Strategy::Numeric, Strategy::Numeric) => true,
        _ => false,
    };
    strategy
        && a.allow.as_ref().map(|r| r.as_str()) == b.allow.as_ref().map(|r| r.as_str())
        && a.extract == b.extract
        && a.ignore == b.ignore
        && a.min_age == b.min_age
}

/// Lists every repository the config names, each exactly once, at most
/// `aws.concurrency` at a time.
pub async fn list_repositories(
    config: &Config,
    registry: Arc<dyn Registry>,
    now: OffsetDateTime,
) -> (Listings, Preferred) {
    let keys = keys_of(config);
    // Each (location, repository) read once, with the listing keys (one per
    // artifact kind wanted) that are views of that read.
    let mut repositories: Vec<((Location, String), Vec<ListKey>)> = Vec::new();
    for key in keys {
        match repositories.last_mut() {
            Some(((l, r), wanted)) if *l == key.location && *r == key.repository => {
                wanted.push(key)
            }
            _ => repositories.push(((key.location.clone(), key.repository.clone()), vec![key])),
        }
    }

    let plan = Arc::new(ScanPlan::new(config));
    let limit = Arc::new(Semaphore::new(config.aws.concurrency));
    let started = std::time::Instant::now();
    let mut tasks = JoinSet::new();
    for ((location, repository), wanted) in repositories {
        let registry = Arc::clone(&registry);
        let limit = Arc::clone(&limit);
        let plan = Arc::clone(&plan);
        let span = match &location.region {
            Some(region) => info_span!("list", repository = %repository, region = %region),
            None => info_span!("list", repository = %repository),
        };
        tasks.spawn(
            async move {
                let _permit = limit.acquire_owned().await;
                let started = std::time::Instant::now();
                let mut result = registry.list_at(&location, &repository).await;
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
                // Each artifact kind wanted from this repository, as a view
                // of the one read (the usual single kind takes the listing
                // itself, uncopied); and each policy's best in it, chosen
                // here while other listings are still in flight, in
                // parallel across the runtime's workers.
                let scanning = std::time::Instant::now();
                let mut chosen = Preferred::new();
                let mut scans = 0;
                let mut views = Vec::with_capacity(wanted.len());
                let last = wanted.len().saturating_sub(1);
                for (i, key) in wanted.into_iter().enumerate() {
                    let view = if i == last && key.artifact == Artifact::Image {
                        std::mem::replace(&mut result, Err(moved(&repository)))
                    } else {
                        result
                            .as_ref()
                            .map(|l| l.of_artifact(key.artifact))
                            .map_err(Clone::clone)
                    };
                    if let Ok(listing) = &view {
                        scans += plan.prefer(&key, listing, now, &mut chosen);
                    }
                    views.push((key, view));
                }
                (views, chosen, scans, scanning.elapsed())
            }
            .instrument(span),
        );
    }
    let mut listings = HashMap::new();
    let mut preferred = Preferred::new();
    let mut read = 0;
    // Profile counters for the `listing finished` line: how many scans of
    // a listing's tags were made for how many policy choices, and the time
    // they took in all (summed over the listing tasks, which overlap).
    let (mut scans, mut scanning) = (0, std::time::Duration::ZERO);
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((views, chosen, n, took)) => {
                read += 1;
                preferred.extend(chosen);
                scans += n;
                scanning += took;
                listings.extend(views);
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
        scans,
        choices = preferred.len(),
        scanning = ?scanning,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cycle::table_facts::{NOW, images};

    /// The image listing key of a test listing's repository.
    fn key_of(listing: &Listing) -> ListKey {
        ListKey {
            location: Location::default(),
            repository: listing.repository.clone(),
            artifact: Artifact::Image,
        }
    }

    /// One app of a test config: `(name, repository, policy keys, targets)`
    /// where a target is `(env, its own keys)`.
    type Row<'a> = (&'a str, &'a str, &'a str, &'a [(&'a str, &'a str)]);

    /// A config of `apps`.
    fn config(apps: &[Row]) -> Config {
        let mut text = String::from(
            "[aws]\nregion = \"eu-west-1\"\n[git]\nurl = \"https://git.example.com/g.git\"\n\
             branch = \"main\"\ncheckout_dir = \"checkout\"\nauthor = \"t <t@acme.dev>\"\n",
        );
        for (name, repository, policy, targets) in apps {
            text.push_str(&format!(
                "\n[[apps]]\nname = \"{name}\"\nrepository = \"{repository}\"\n{policy}\n"
            ));
            for (env, own) in *targets {
                text.push_str(&format!(
                    "\n[[apps.targets]]\nenv = \"{env}\"\nfile = \"{name}/{env}.yaml\"\n\
                     key = \"image.tag\"\n{own}\n"
                ));
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tagwatch.toml");
        std::fs::write(&path, &text).unwrap();
        crate::config::load(&path).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    const DEV: &[(&str, &str)] = &[("dev", "")];

    /// Issue 20: equivalent policies on one repository share one scan;
    /// anything that can change the choice does not.
    #[test]
    fn apps_with_an_equivalent_policy_on_one_repository_share_one_scan() {
        let cases: &[(&str, &str, &str, usize)] = &[
            (
                "constraint = \"^1\"",
                "constraint = \"^1\"",
                "same range",
                1,
            ),
            (
                "constraint = \"^1\"",
                "constraint = \"^2\"",
                "other range",
                2,
            ),
            (
                "constraint = \"^1\"\nignore = [\"*-rc*\"]",
                "constraint = \"^1\"\nignore = [\"*-rc*\"]",
                "same ignore",
                1,
            ),
            (
                "constraint = \"^1\"",
                "constraint = \"^1\"\nignore = [\"*-rc*\"]",
                "an ignore more",
                2,
            ),
            (
                "strategy = \"newest\"\nallow = '^main-'\nmin_age = \"1h\"",
                "strategy = \"newest\"\nallow = '^main-'\nmin_age = \"1h\"",
                "same allow and min_age",
                1,
            ),
            (
                "strategy = \"newest\"\nallow = '^main-'\nmin_age = \"1h\"",
                "strategy = \"newest\"\nallow = '^main-'\nmin_age = \"2h\"",
                "other min_age",
                2,
            ),
            (
                "strategy = \"newest\"\nallow = '^main-'",
                "strategy = \"alphabetical\"\nallow = '^main-'",
                "other strategy",
                2,
            ),
            (
                "strategy = \"digest\"\nconstraint = \"stable\"",
                "strategy = \"digest\"\nconstraint = \"latest\"",
                "other followed tag",
                2,
            ),
            (
                "strategy = \"numeric\"\nallow = '^b(?P<n>\\d+)$'\nextract = \"$n\"",
                "strategy = \"numeric\"\nallow = '^b(?P<n>\\d+)$'\nextract = \"$n\"",
                "same extract",
                1,
            ),
        ];
        let listing = images(&[("1.0.0", "sha256:a", 7200), ("2.0.0", "sha256:b", 3600)]);
        for (a, b, why, want) in cases {
            let config = config(&[("a", "web", a, DEV), ("b", "web", b, DEV)]);
            let plan = ScanPlan::new(&config);
            let mut preferred = Preferred::new();
            let scans = plan.prefer(&key_of(&listing), &listing, NOW, &mut preferred);
            assert_eq!(scans, *want, "{why}");
            assert_eq!(preferred.len(), 2, "{why}: both apps answered");
        }
    }

    /// The shared answer is each policy's own: the plan's choices equal
    /// `best_index` per app and per target with its own constraint, other
    /// repositories' policies are not scanned, and a listing of a
    /// repository no app names costs nothing.
    #[test]
    fn a_shared_scan_gives_every_app_its_own_policy_s_answer() {
        let config = config(&[
            (
                "a",
                "web",
                "constraint = \"^1\"",
                &[("dev", ""), ("prod", "constraint = \"~1.0\"")],
            ),
            ("b", "web", "constraint = \"^1\"", DEV),
            ("c", "web", "constraint = \"~1.0\"", DEV),
            ("d", "web", "strategy = \"newest\"", DEV),
            ("e", "api", "constraint = \"^1\"", DEV),
        ]);
        let listing = images(&[
            ("1.0.0", "sha256:a", 9000),
            ("1.0.5", "sha256:b", 7200),
            ("1.2.0", "sha256:c", 3600),
            ("2.0.0", "sha256:d", 1800),
        ]);
        let plan = ScanPlan::new(&config);
        let mut preferred = Preferred::new();
        // ^1 (a, b), ~1.0 (a/prod, c), newest (d): three scans for five choices.
        assert_eq!(
            plan.prefer(&key_of(&listing), &listing, NOW, &mut preferred),
            3
        );
        let key = |app: &str, env: Option<&str>| (app.to_string(), env.map(str::to_string));
        let tag = |k| preferred[&k].map(|i| listing.images[i].tag.as_str());
        assert_eq!(tag(key("a", None)), Some("1.2.0"));
        assert_eq!(tag(key("b", None)), Some("1.2.0"));
        assert_eq!(tag(key("a", Some("prod"))), Some("1.0.5"));
        assert_eq!(tag(key("c", None)), Some("1.0.5"));
        assert_eq!(tag(key("d", None)), Some("2.0.0"));
        assert!(!preferred.contains_key(&key("e", None)));
        for app in &config.apps {
            if app.repository != "web" {
                continue;
            }
            let own = app.policy.best_index(&listing.images, NOW);
            assert_eq!(preferred[&key(&app.name, None)], own, "{}", app.name);
        }
        let mut other = listing.clone();
        other.repository = "nobody".into();
        assert_eq!(
            plan.prefer(&key_of(&other), &other, NOW, &mut Preferred::new()),
            0
        );
    }
}
