//! `tagwatch history`: past promotions, read from the GitOps branch's
//! `Tagwatch-*` trailers — the only record there is, and the one a
//! rollback starts from. `--at` answers "what did prod run at 14:00".

use std::collections::HashSet;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{ConfigArg, EXIT_FAILED, EXIT_USAGE, load};
use crate::gitops::{Checkout, Recorded};
use crate::trailers::format_time;

/// How far back the branch is read: far enough for years of promotions in
/// most repositories, bounded so a huge history cannot stall the command.
const MAX_COMMITS: usize = 100_000;

#[derive(clap::Args, Debug)]
pub struct HistoryArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Only this app.
    #[arg(long)]
    app: Option<String>,
    /// Only this environment.
    #[arg(long)]
    env: Option<String>,
    /// At most this many promotions, newest first.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// What each app/env ran at this time (RFC 3339): its latest promotion
    /// at or before it.
    #[arg(long, value_parser = parse_time)]
    at: Option<OffsetDateTime>,
    /// JSON lines instead of a table, for scripts.
    #[arg(long)]
    json: bool,
}

fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| format!("{s:?} is not RFC 3339 (2026-11-21T14:00:00Z): {e}"))
}

pub async fn run(args: HistoryArgs) -> u8 {
    let config = match load(&args.config) {
        Ok(config) => config,
        Err(code) => return code,
    };
    if let Some(app) = &args.app
        && !config.apps.iter().any(|a| &a.name == app)
    {
        eprintln!("{}: no app named {app:?}", config.source.display());
        return EXIT_USAGE;
    }
    let git = config.git.clone();
    let read = tokio::task::spawn_blocking(move || {
        let mut checkout = Checkout::open_or_create(&git)?;
        // Fetch only: a daemon may be using this clone right now.
        let head = checkout.fetch()?;
        Ok::<_, crate::gitops::GitError>(checkout.promotions(head, MAX_COMMITS).collect::<Vec<_>>())
    })
    .await;
    let all = match read {
        Ok(Ok(all)) => all,
        Ok(Err(e)) => {
            eprintln!("{e}");
            return EXIT_FAILED;
        }
        Err(e) => {
            eprintln!("reading history failed: {e}");
            return EXIT_FAILED;
        }
    };
    let wanted = |r: &&Recorded| {
        args.app.as_ref().is_none_or(|a| &r.promotion.app == a)
            && args.env.as_ref().is_none_or(|e| &r.promotion.env == e)
    };
    let shown: Vec<&Recorded> = match args.at {
        // Newest first, so the first one seen per app/env at or before the
        // time is what it ran then.
        Some(at) => {
            let mut seen = HashSet::new();
            all.iter()
                .filter(wanted)
                .filter(|r| r.at <= at)
                .filter(|r| seen.insert((r.promotion.app.clone(), r.promotion.env.clone())))
                .collect()
        }
        None => all.iter().filter(wanted).take(args.limit).collect(),
    };
    for r in shown {
        let p = &r.promotion;
        if args.json {
            let line = serde_json::json!({
                "time": format_time(r.at), "app": p.app, "env": p.env, "from": p.from, "to": p.to,
                "digest": p.digest, "image": p.image, "commit": r.commit,
                "pushed_at": p.pushed_at.map(format_time),
            });
            println!("{line}");
        } else {
            println!(
                "{}  {}  {}  {} -> {}  {}  {}",
                format_time(r.at),
                p.app,
                p.env,
                p.from,
                p.to,
                short(&p.digest, 19),
                short(&r.commit, 12)
            );
        }
    }
    0
}

fn short(s: &str, n: usize) -> &str {
    s.get(..n).unwrap_or(s)
}
