//! The one-off ECR audits: `check --online` (every deployed image still
//! served by ECR?) and `lifecycle-check` (would a lifecycle rule expire a
//! deployed image?).
//!
//! Both read what a dry-run cycle reads (the listings and the branch), so
//! what they report is what the daemon's `tagwatch_deployed_image_missing`
//! and `/status` say; `lifecycle-check` adds `GetLifecyclePolicy` per
//! repository and evaluates it with [`crate::lifecycle`].

use std::collections::BTreeMap;

use super::{ConfigArg, EXIT_FAILED, EXIT_USAGE, context};
use crate::config::{Config, Target};
use crate::cycle::{Mode, Outcome, Stage};
use crate::lifecycle::{Fate, LifecyclePolicy};
use crate::registry::Location;

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(flatten)]
    pub shard: super::shard::ShardArg,
    /// Also read ECR and the GitOps branch: report each target whose
    /// deployed image ECR no longer serves (deleted, expired, archived).
    #[arg(long)]
    pub online: bool,
}

/// `check --online`: 0 when every deployed image is served, 1 when one is
/// not or cannot be checked, 64 when the peers cannot be set up.
pub async fn check_online(config: Config) -> u8 {
    let summary = super::summary(&config);
    let Some(ctx) = context(config).await else {
        return EXIT_USAGE;
    };
    let report = ctx.cycle(Mode::DryRun).await;
    println!("{summary}");
    let (mut missing, mut unknown) = (0, 0);
    for t in &report.targets {
        match (&t.ecr.missing, &t.outcome) {
            (Some(why), _) => {
                missing += 1;
                println!("{}/{}: ALERT: {why}", t.app, t.env);
            }
            (None, Outcome::Failed { stage, error })
                if matches!(stage, Stage::Registry | Stage::Git) || t.current.is_none() =>
            {
                unknown += 1;
                println!("{}/{}: cannot check: {error}", t.app, t.env);
            }
            (None, _) => {}
        }
    }
    let checked = report.targets.len() - unknown;
    println!(
        "deployed images: {checked} checked, {missing} not served by ECR, {unknown} not checked"
    );
    if missing + unknown > 0 {
        EXIT_FAILED
    } else {
        0
    }
}

/// `lifecycle-check`: 0 when no rule would expire a deployed image, 1 when
/// one would (or a repository or its policy could not be read).
pub async fn lifecycle_check(config: Config) -> u8 {
    let Some(ctx) = context(config).await else {
        return EXIT_USAGE;
    };
    // What each env runs, read as the daemon reads it.
    let report = ctx.cycle(Mode::DryRun).await;
    let deployed: BTreeMap<(&str, &str), &str> = report
        .targets
        .iter()
        .filter_map(|t| Some(((t.app.as_str(), t.env.as_str()), t.current.as_deref()?)))
        .collect();
    let now = ctx.now.unwrap_or_else(time::OffsetDateTime::now_utc);
    let mut code = 0;
    // Targets by the repository they are served from: the app's, or a DR
    // target's replica (its own region's policy expires its images).
    let mut served: BTreeMap<(Location, &str), Vec<(&str, &Target)>> = BTreeMap::new();
    for app in &ctx.config.apps {
        for target in &app.targets {
            let key = match &target.replica {
                Some(r) => (r.location.clone(), r.repository.as_str()),
                None => (Location::default(), app.repository.as_str()),
            };
            served.entry(key).or_default().push((&app.name, target));
        }
    }
    for ((location, repository), targets) in served {
        let name = match &location.region {
            Some(region) => format!("{repository} ({region})"),
            None => repository.to_string(),
        };
        let policy = match ctx
            .registry
            .lifecycle_policy_at(&location, repository)
            .await
        {
            Ok(Some(text)) => match LifecyclePolicy::parse(&text) {
                Ok(policy) => policy,
                Err(e) => {
                    println!("{name}: {e}");
                    code = EXIT_FAILED;
                    continue;
                }
            },
            Ok(None) => {
                println!("{name}: no lifecycle policy; nothing expires");
                continue;
            }
            Err(e) => {
                println!("{name}: cannot read the lifecycle policy: {e}");
                code = EXIT_FAILED;
                continue;
            }
        };
        let listing = match ctx.registry.list_at(&location, repository).await {
            Ok(listing) => listing,
            Err(e) => {
                println!("{name}: cannot list: {e}");
                code = EXIT_FAILED;
                continue;
            }
        };
        // ECR's rules count every image of the repository, charts and
        // images alike.
        let mut all = listing.images.clone();
        all.extend(listing.charts.iter().cloned());
        let fates = crate::lifecycle::evaluate(&policy, &all, now);
        for (app, target) in targets {
            let env = target.env.as_str();
            let Some(held) = deployed.get(&(app, env)) else {
                println!("{app}/{env}: what it runs could not be read");
                code = EXIT_FAILED;
                continue;
            };
            let image = all.iter().find(|i| i.tag == *held || i.digest == *held);
            match image.and_then(|i| fates.get(&i.digest)) {
                None => println!("{app}/{env}: {held} is not in {name} already"),
                Some(Fate::Untouched) => println!("{app}/{env}: {held}: no rule selects it"),
                Some(Fate::Kept { rule }) => println!("{app}/{env}: {held}: kept by rule {rule}"),
                Some(Fate::Expired { why, .. }) => {
                    code = EXIT_FAILED;
                    println!("{app}/{env}: {held}: WOULD BE EXPIRED in {name}: {why}");
                }
                Some(Fate::Unknown { why, .. }) => {
                    code = EXIT_FAILED;
                    println!("{app}/{env}: {held}: NOT EVALUATED in {name}: {why}");
                }
            }
        }
    }
    code
}
