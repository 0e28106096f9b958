//! `tagwatch previews`: the live preview environments, one per pull
//! request, as the branch holds them: app, number, tag, file, age of the
//! image, the pull request's state, and what the next cycle will do. It
//! runs a dry-run cycle, so it reads the same facts the daemon decides on
//! and writes nothing.

use time::OffsetDateTime;

use super::{ConfigArg, EXIT_FAILED, EXIT_USAGE, context, load};
use crate::cycle::Mode;
use crate::cycle::preview::Report;

#[derive(clap::Args, Debug)]
pub struct PreviewsArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// One JSON array instead of a table, for scripts.
    #[arg(long)]
    json: bool,
    /// Run as if it were this time (RFC 3339), for `ttl` and ages. For
    /// drills and tests.
    #[arg(long, value_parser = super::parse_now, hide = true)]
    now: Option<OffsetDateTime>,
}

pub async fn run(args: PreviewsArgs) -> u8 {
    let Ok(config) = load(&args.config) else {
        return EXIT_USAGE;
    };
    let Some(mut ctx) = context(config).await else {
        return EXIT_USAGE;
    };
    ctx.now = args.now;
    let now = args.now.unwrap_or_else(OffsetDateTime::now_utc);
    let report = ctx.cycle(Mode::DryRun).await;
    let live: Vec<&Report> = report.previews.iter().filter(|p| p.existed).collect();
    if args.json {
        let rows: Vec<serde_json::Value> = live
            .iter()
            .map(|p| {
                serde_json::json!({
                    "app": p.app,
                    "pr": p.pr,
                    "tag": p.tag,
                    "file": p.file,
                    "pushed_at": p.pushed_at.map(crate::trailers::format_time),
                    "age_seconds": p.pushed_at.map(|at| (now - at).whole_seconds()),
                    "pr_state": p.state,
                    "next": next(p),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        );
    } else if live.is_empty() {
        println!("no live previews");
    } else {
        println!("APP\tPR\tTAG\tFILE\tAGE\tPR STATE\tNEXT");
        for p in &live {
            let age = p.pushed_at.map_or_else(
                || "-".to_string(),
                |at| {
                    let secs = (now - at).whole_seconds().max(0) as u64;
                    // Whole minutes: seconds are noise in a list of days.
                    humantime::format_duration(std::time::Duration::from_secs(secs / 60 * 60))
                        .to_string()
                },
            );
            println!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                p.app,
                p.pr,
                p.tag.as_deref().unwrap_or("-"),
                p.file,
                if age.is_empty() { "0m".into() } else { age },
                p.state.unwrap_or("-"),
                next(p),
            );
        }
    }
    if report.any_failed() { EXIT_FAILED } else { 0 }
}

/// What the next cycle does with a live preview.
fn next(p: &Report) -> String {
    match (p.action, &p.reason) {
        ("updated", _) => format!("update to {}", p.tag.as_deref().unwrap_or("-")),
        ("removed", Some(why)) => format!("remove ({why})"),
        ("skipped", Some(why)) | ("failed", Some(why)) => format!("{}: {why}", p.action),
        _ => "keep".into(),
    }
}
