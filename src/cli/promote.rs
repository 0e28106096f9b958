//! `tagwatch promote`: one tag, into one env, now — for the CI job that
//! just pushed the image.
//!
//! It goes through exactly the daemon's path: a cycle over the one target,
//! with the repository's listing narrowed to the one tag. So the policy's
//! guards, the byte-minimal edit, the trailers, and the commit or pull
//! request (the env's `update`) are the daemon's own. An explicit tag
//! replaces the env's `promote_from` source and its soak: the caller is the
//! source. A tag that does not exist or that the policy refuses (including
//! a downgrade) exits 64 before anything is written.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use super::{ConfigArg, EXIT_FAILED, EXIT_USAGE, context, load};
use crate::cycle::{Mode, Outcome};
use crate::forge::State;
use crate::registry::{
    CosignFuture, DescribeFuture, ListFuture, Listing, ReferrersFuture, Registry, ScanFuture,
};

#[derive(clap::Args, Debug)]
pub struct PromoteArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The app, as named in the configuration.
    #[arg(long)]
    app: String,
    /// The env of the app to promote into.
    #[arg(long)]
    env: String,
    /// The tag to promote; it must exist in the app's ECR repository.
    #[arg(long)]
    tag: String,
    /// For a pull request: wait until it is merged (exit 0) or closed
    /// without merging (exit 1).
    #[arg(long)]
    wait: bool,
    /// How long `--wait` waits at most.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// A registry that lists one image: the cycle can then only choose it.
/// The gates' questions (scan findings, signatures) go to the real
/// registry: an explicit tag is still only promoted if it passes them.
struct Pinned {
    listing: Listing,
    real: Arc<dyn Registry>,
}

impl Registry for Pinned {
    fn list(&self, _repository: &str) -> ListFuture<'_> {
        let listing = self.listing.clone();
        Box::pin(async move { Ok(listing) })
    }

    fn describe(&self, _repository: &str, tag: &str) -> DescribeFuture<'_> {
        let image = self.listing.images.iter().find(|i| i.tag == tag).cloned();
        Box::pin(async move { Ok(image) })
    }

    fn scan_findings(&self, repository: &str, digest: &str) -> ScanFuture<'_> {
        self.real.scan_findings(repository, digest)
    }

    fn referrers(&self, repository: &str, digest: &str) -> ReferrersFuture<'_> {
        self.real.referrers(repository, digest)
    }

    fn cosign_signatures(&self, repository: &str, digest: &str) -> CosignFuture<'_> {
        self.real.cosign_signatures(repository, digest)
    }
}

pub async fn run(args: PromoteArgs) -> u8 {
    let Ok(mut config) = load(&args.config) else {
        return EXIT_USAGE;
    };
    let usage = |message: String| {
        eprintln!("tagwatch promote: {message}");
        EXIT_USAGE
    };
    let Some(mut app) = config.apps.iter().find(|a| a.name == args.app).cloned() else {
        return usage(format!(
            "no app {:?} in {}",
            args.app,
            config.source.display()
        ));
    };
    let Some(mut target) = app.targets.iter().find(|t| t.env == args.env).cloned() else {
        return usage(format!("app {:?} has no env {:?}", args.app, args.env));
    };
    target.promote_from = None;
    target.soak = Duration::ZERO;
    app.targets = vec![target];
    config.apps = vec![app.clone()];
    let Some(mut ctx) = context(config).await else {
        return EXIT_USAGE;
    };

    // The real registry, read once: the tag must exist and pass the policy.
    let mut listing = match ctx.registry.list(&app.repository).await {
        Ok(listing) => listing.of_artifact(app.artifact),
        Err(e) => {
            eprintln!("tagwatch promote: {e}");
            return EXIT_FAILED;
        }
    };
    let Some(digest) = listing
        .images
        .iter()
        .find(|i| i.tag == args.tag)
        .map(|i| i.digest.clone())
    else {
        return usage(format!(
            "tag {:?} does not exist in repository {:?}",
            args.tag, app.repository
        ));
    };
    // The tag, and cosign's `sha256-<hex>.sig` (and .att, .sbom) tags of its
    // digest, which a signature gate looks for in the listing.
    let attached = digest.replace(':', "-");
    listing.images.retain(|i| {
        i.tag == args.tag
            || i.tag
                .strip_prefix(attached.as_str())
                .is_some_and(|rest| matches!(rest, ".sig" | ".att" | ".sbom"))
    });
    let Some(image) = listing.images.iter().find(|i| i.tag == args.tag) else {
        return EXIT_FAILED;
    };
    let now = OffsetDateTime::now_utc();
    if let Err(reason) = app.policy_for(&app.targets[0]).judge(image, now) {
        return usage(format!(
            "tag {:?} breaks app {:?}'s policy: {reason}",
            args.tag, app.name
        ));
    }
    ctx.registry = Arc::new(Pinned {
        listing,
        real: Arc::clone(&ctx.registry),
    });

    let report = ctx.cycle(Mode::Apply).await;
    let Some(result) = report.targets.first() else {
        eprintln!("tagwatch promote: the cycle did nothing");
        return EXIT_FAILED;
    };
    let name = format!("{}/{}", app.name, args.env);
    let current = result.current.as_deref().unwrap_or("(unknown)");
    match &result.outcome {
        Outcome::Promoted { commit, .. } => {
            println!("{commit}");
            0
        }
        Outcome::Proposed { url, .. } => {
            println!("{url}");
            if args.wait {
                wait_for_merge(&ctx, &app.name, args.timeout).await
            } else {
                0
            }
        }
        Outcome::Unchanged if current == args.tag => {
            println!("{name} already runs {current}");
            0
        }
        Outcome::Unchanged => usage(format!(
            "{name} runs {current}, and {} is not newer: tagwatch never downgrades",
            args.tag
        )),
        Outcome::NoCandidate { why } => usage(format!(
            "{name} keeps {current}: the policy refuses {} ({why})",
            args.tag
        )),
        Outcome::Failed { stage, error } => {
            eprintln!("tagwatch promote: failed ({}): {error}", stage.as_str());
            EXIT_FAILED
        }
        Outcome::Deferred { reason, .. } | Outcome::Waiting { reason, .. } => {
            eprintln!("tagwatch promote: not promoted: {reason}");
            EXIT_FAILED
        }
        Outcome::WouldPromote { .. } => EXIT_FAILED,
    }
}

/// Polls the forge until the request is merged or closed.
async fn wait_for_merge(ctx: &crate::daemon::Context, app: &str, timeout: Duration) -> u8 {
    let Some(forge) = &ctx.forge else {
        return EXIT_FAILED;
    };
    let target = &ctx.config.apps[0].targets[0];
    let branch = crate::cycle::propose::branch(app, target);
    let base = &ctx.config.git.branch;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match forge.find(&branch, base).await {
            Ok(Some(pr)) if pr.state == State::Merged => {
                eprintln!("merged: {}", pr.url);
                return 0;
            }
            Ok(Some(pr)) if pr.state == State::Closed => {
                eprintln!("closed without merging: {}", pr.url);
                return EXIT_FAILED;
            }
            Ok(_) => {}
            Err(e) => eprintln!("tagwatch promote: {e}; still waiting"),
        }
        if tokio::time::Instant::now() >= deadline {
            eprintln!(
                "tagwatch promote: not merged within {}",
                humantime::format_duration(timeout)
            );
            return EXIT_FAILED;
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}
