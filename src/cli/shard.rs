//! `--shard` on `check`, `once` and `run` (and `TAGWATCH_SHARD`): reading
//! the flag, resolving `auto/N` from the pod's name, keeping the shard's
//! apps, and saying which shard this process is — on stdout for `check`,
//! in the logs, in `/status` and in the metrics. The assignment itself is
//! `crate::shard`.

use std::collections::BTreeSet;

use tracing::{info, warn};

use crate::config::Config;
use crate::daemon::Context;
use crate::shard::{Owned, Shard, ShardSpec};

use super::EXIT_USAGE;

#[derive(clap::Args, Debug, Default)]
pub struct ShardArg {
    /// Own only shard I of N of the apps (0-based): `I/N`, or `auto/N` in a
    /// StatefulSet (I is the ordinal suffix of POD_NAME, else HOSTNAME).
    /// Apps are assigned by a stable hash of their ECR repository; every
    /// process of the N computes the same assignment.
    #[arg(long, env = "TAGWATCH_SHARD", value_parser = parse_spec)]
    pub shard: Option<ShardSpec>,
}

/// Both `check` and `run` take a configuration and a shard.
#[derive(clap::Args, Debug)]
pub struct ShardedConfig {
    #[command(flatten)]
    pub config: super::ConfigArg,
    #[command(flatten)]
    pub shard: ShardArg,
}

fn parse_spec(text: &str) -> Result<ShardSpec, crate::shard::ShardError> {
    text.parse()
}

/// Keeps only this shard's apps of `config` (all of them without
/// `--shard`). An `auto/N` that cannot be resolved is a usage error.
pub fn apply(config: Config, arg: &ShardArg) -> Result<(Config, Option<Owned>), u8> {
    let Some(spec) = arg.shard else {
        return Ok((config, None));
    };
    let env = |name: &str| std::env::var(name).ok();
    let shard = spec
        .resolve(env("POD_NAME").as_deref(), env("HOSTNAME").as_deref())
        .map_err(|e| {
            eprintln!("tagwatch: --shard: {e}");
            EXIT_USAGE
        })?;
    let (config, owned) = crate::shard::select(config, shard);
    Ok((config, Some(owned)))
}

/// Tells the logs, the board and the metrics which shard `ctx` runs as.
pub fn attach(ctx: &mut Context, owned: Option<&Owned>) {
    match owned {
        Some(owned) => {
            ctx.shard = Some(owned.shard);
            ctx.board.set_shard(owned);
            crate::shard::export(owned.shard, owned.apps.len(), owned.repositories);
            if owned.apps.is_empty() {
                warn!(
                    shard = %owned.shard,
                    total_apps = owned.total_apps,
                    "this shard owns no app; it will list and write nothing"
                );
            } else {
                info!(
                    shard = %owned.shard,
                    apps = owned.apps.len(),
                    total_apps = owned.total_apps,
                    repositories = owned.repositories,
                    "shard"
                );
            }
        }
        None => {
            let repositories: BTreeSet<&str> = ctx
                .config
                .apps
                .iter()
                .map(|a| a.repository.as_str())
                .collect();
            crate::shard::export(
                Shard { index: 0, count: 1 },
                ctx.config.apps.len(),
                repositories.len(),
            );
        }
    }
}

/// The span a sharded process's cycles run in, so their log lines say
/// which shard wrote them; none without `--shard`.
pub fn span(owned: Option<&Owned>) -> tracing::Span {
    match owned {
        Some(owned) => tracing::info_span!("shard", shard = %owned.shard),
        None => tracing::Span::none(),
    }
}

/// `check --shard`: the shard's apps, one a line, after the summary.
pub fn print_owned(owned: &Owned) {
    println!(
        "shard {}: {} of {} apps, {}",
        owned.shard,
        owned.apps.len(),
        owned.total_apps,
        super::count(owned.repositories, "repository", "repositories"),
    );
    for (group, apps) in &owned.kept_together {
        println!(
            "  group {group:?} spans repositories; its apps stay together here: {}",
            apps.join(", ")
        );
    }
    for app in &owned.apps {
        println!("  {app}");
    }
}
