//! `tagwatch history`: past promotions, read from the GitOps branch's
//! `Tagwatch-*` trailers — the only record there is, and the one a
//! rollback starts from. `--at` answers "what did prod run at 14:00",
//! including values a person committed by hand, read from the file as the
//! branch held it then.

use std::collections::HashSet;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{ConfigArg, EXIT_FAILED, EXIT_USAGE, load};
use crate::config::Target;
use crate::cycle::holds;
use crate::gitops::{Checkout, CommitId, Recorded};
use crate::manifest;
use crate::rollback;
use crate::trailers::{format_time, one_line};

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
    // The targets `--at` reads the files of: (app, env, target).
    let targets: Vec<(String, Target)> = config
        .apps
        .iter()
        .filter(|a| args.app.as_ref().is_none_or(|n| &a.name == n))
        .flat_map(|a| {
            a.targets
                .iter()
                .filter(|t| args.env.as_ref().is_none_or(|e| &t.env == e))
                .map(|t| (a.name.clone(), t.clone()))
        })
        .collect();
    let (at, app, env, limit) = (args.at, args.app.clone(), args.env.clone(), args.limit);
    let read = tokio::task::spawn_blocking(move || {
        let mut checkout = Checkout::open_or_create(&git)?;
        // Fetch only: a daemon may be using this clone right now.
        let head = checkout.fetch()?;
        let all: Vec<Recorded> = checkout.promotions(head, MAX_COMMITS).collect();
        let wanted = |r: &&Recorded| {
            app.as_ref().is_none_or(|a| &r.promotion.app == a)
                && env.as_ref().is_none_or(|e| &r.promotion.env == e)
        };
        let rows = match at {
            Some(at) => what_ran_at(&checkout, head, &all, &targets, at, wanted),
            None => {
                let mut rows: Vec<Row> = all
                    .iter()
                    .filter(wanted)
                    .take(limit)
                    .map(|r| Row::promoted(r).with_kind(checkout.message_of(&r.commit)))
                    .collect();
                rows.extend(holds_rows(&checkout, head, app.as_deref(), env.as_deref()));
                // Branch order, newest first (commit times may be a drill's
                // injected clock, not the order things happened in).
                let keys = ["Tagwatch-App", holds::HOLD, holds::RELEASE];
                let order: std::collections::HashMap<String, usize> = checkout
                    .commits_with_trailers(head, MAX_COMMITS, &keys)
                    .into_iter()
                    .enumerate()
                    .map(|(i, (commit, ..))| (commit, i))
                    .collect();
                rows.sort_by_key(|r| order.get(&r.commit).copied().unwrap_or(usize::MAX));
                rows.truncate(limit);
                rows
            }
        };
        Ok::<_, crate::gitops::GitError>(rows)
    })
    .await;
    let rows = match read {
        Ok(Ok(rows)) => rows,
        Ok(Err(e)) => {
            eprintln!("{e}");
            return EXIT_FAILED;
        }
        Err(e) => {
            eprintln!("reading history failed: {e}");
            return EXIT_FAILED;
        }
    };
    if args.json {
        for r in &rows {
            println!("{}", r.json());
        }
    } else {
        print!("{}", table(&rows, args.at.is_some()));
    }
    0
}

/// One line of output: a promotion from the trailers, or (for `--at`) a
/// value a person wrote into the file.
struct Row {
    time: OffsetDateTime,
    app: String,
    env: String,
    from: String,
    to: String,
    digest: String,
    image: String,
    commit: String,
    pushed_at: Option<OffsetDateTime>,
    /// Set by a commit that is not a promotion of this app and env.
    by_hand: bool,
    /// `promotion`, `rollback`, `hold` or `release`.
    kind: &'static str,
    /// A rollback's or a hold's `Tagwatch-Reason`.
    reason: Option<String>,
}

impl Row {
    fn promoted(r: &Recorded) -> Row {
        let p = &r.promotion;
        Row {
            time: r.at,
            app: p.app.clone(),
            env: p.env.clone(),
            from: p.from.clone(),
            to: p.to.clone(),
            digest: p.digest.clone(),
            image: p.image.clone(),
            commit: r.commit.clone(),
            pushed_at: p.pushed_at,
            by_hand: false,
            kind: "promotion",
            reason: None,
        }
    }

    /// A promotion whose commit message carries `Tagwatch-Rollback-Of` is
    /// a rollback.
    fn with_kind(mut self, message: Option<String>) -> Row {
        let message = message.unwrap_or_default();
        if holds::trailer(&message, rollback::ROLLBACK_OF).is_some() {
            self.kind = "rollback";
            self.reason = holds::trailer(&message, rollback::REASON);
        }
        self
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "time": format_time(self.time), "app": self.app, "env": self.env,
            "from": self.from, "to": self.to, "digest": self.digest, "image": self.image,
            "commit": self.commit, "pushed_at": self.pushed_at.map(format_time),
            "set_by": if self.by_hand { "hand" } else { "tagwatch" },
            "kind": self.kind, "reason": self.reason,
        })
    }
}

/// Holds and releases (`tagwatch hold` / `release` commits), one row per
/// app/env their trailers name, filtered like promotions.
fn holds_rows(
    checkout: &Checkout,
    head: CommitId,
    app: Option<&str>,
    env: Option<&str>,
) -> Vec<Row> {
    let keys = [holds::HOLD, holds::RELEASE];
    let mut rows = Vec::new();
    for (commit, at, message) in checkout.commits_with_trailers(head, MAX_COMMITS, &keys) {
        let last = message.trim_end().rsplit("\n\n").next().unwrap_or_default();
        for line in last.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let kind = match key.trim() {
                k if k == holds::HOLD => "hold",
                k if k == holds::RELEASE => "release",
                _ => continue,
            };
            // `app/env`, and for a released tag `app/env tag`.
            let value = value.trim();
            let (target, tag) = value.split_once(' ').unwrap_or((value, ""));
            let Some((a, e)) = target.split_once('/') else {
                continue;
            };
            if app.is_some_and(|x| x != a) || env.is_some_and(|x| x != e) {
                continue;
            }
            rows.push(Row {
                time: at,
                app: a.to_string(),
                env: e.to_string(),
                from: String::new(),
                to: tag.to_string(),
                digest: String::new(),
                image: String::new(),
                commit: commit.clone(),
                pushed_at: None,
                by_hand: false,
                kind,
                reason: holds::trailer(&message, rollback::REASON),
            });
        }
    }
    rows
}

/// A header and aligned columns. `--at` adds SET BY: `tagwatch` for a
/// promotion, `hand` for a value a person committed.
fn table(rows: &[Row], set_by: bool) -> String {
    let mut lines: Vec<Vec<String>> = vec![
        ["TIME", "APP", "ENV", "CHANGE", "DIGEST", "COMMIT", "SET BY"]
            .map(String::from)
            .to_vec(),
    ];
    for r in rows {
        let change = if r.by_hand {
            one_line(&r.to).into_owned()
        } else if matches!(r.kind, "hold" | "release") {
            let why = r.reason.as_deref().map(|w| format!(": {}", one_line(w)));
            format!("{}{}", r.kind, why.unwrap_or_default())
        } else if r.kind == "rollback" {
            format!("{} -> {} (rollback)", one_line(&r.from), one_line(&r.to))
        } else {
            format!("{} -> {}", one_line(&r.from), one_line(&r.to))
        };
        lines.push(vec![
            format_time(r.time),
            one_line(&r.app).into_owned(),
            one_line(&r.env).into_owned(),
            change,
            short(&r.digest, 19).to_string(),
            short(&r.commit, 12).to_string(),
            (if r.by_hand { "hand" } else { "tagwatch" }).to_string(),
        ]);
    }
    let columns = if set_by { 7 } else { 6 };
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for line in &lines {
        let cells: Vec<String> = (0..columns)
            .map(|c| format!("{:w$}", line[c], w = widths[c]))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// What each target ran at `at`: the value its file held on the branch
/// then, and the commit that set it. That commit is a promotion of the
/// target (the usual case), a merge that brought one in from a pull
/// request, or a person's commit, shown as set by hand. Promotions of
/// apps or envs no longer in the configuration are listed as before: the
/// latest at or before `at`.
fn what_ran_at(
    checkout: &Checkout,
    head: CommitId,
    all: &[Recorded],
    targets: &[(String, Target)],
    at: OffsetDateTime,
    wanted: impl Fn(&&Recorded) -> bool,
) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut seen = HashSet::new();
    let then = checkout.first_parent_at(head, at, MAX_COMMITS);
    for (app, target) in targets {
        seen.insert((app.clone(), target.env.clone()));
        let Some(then) = then else { continue };
        let value_of = |bytes: &[u8]| {
            manifest::get(bytes, &target.key, &target.document)
                .ok()
                .map(|s| s.value)
        };
        let Some(set) = checkout.value_setter(then, &target.file, MAX_COMMITS, value_of) else {
            continue;
        };
        let (value, commit) = (set.value, set.commit.to_string());
        let tag = target
            .format
            .current_tag(&value)
            .unwrap_or(&value)
            .to_string();
        let ours = |r: &&Recorded| r.promotion.app == *app && r.promotion.env == target.env;
        let own = all
            .iter()
            .filter(ours)
            .find(|r| r.commit == commit)
            .cloned();
        // Or a pull request's commit that a merge brought in.
        let merged = match set.parents.as_slice() {
            [base, side, ..] => checkout
                .proposed(*side, *base)
                .into_iter()
                .find(|p| p.app == *app && p.env == target.env && (p.to == tag || p.to == value))
                .map(|promotion| Recorded {
                    promotion,
                    at: set.at,
                    commit: commit.clone(),
                }),
            _ => None,
        };
        rows.push(match own.or(merged) {
            Some(r) => Row::promoted(&r),
            None => Row {
                time: set.at,
                app: app.clone(),
                env: target.env.clone(),
                from: String::new(),
                to: value,
                digest: String::new(),
                image: String::new(),
                commit,
                pushed_at: None,
                by_hand: true,
                kind: "promotion",
                reason: None,
            },
        });
    }
    // Apps and envs no longer configured: their latest promotion then.
    for r in all.iter().filter(&wanted).filter(|r| r.at <= at) {
        if seen.insert((r.promotion.app.clone(), r.promotion.env.clone())) {
            rows.push(Row::promoted(r));
        }
    }
    rows
}

fn short(s: &str, n: usize) -> &str {
    s.get(..n).unwrap_or(s)
}
