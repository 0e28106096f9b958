//! `tagwatch rollback`, `tagwatch hold` and `tagwatch release`: the
//! commands that stop or reverse promotions, each a commit on the GitOps
//! branch so every replica (and a person reading the repository) sees it.
//!
//! `rollback` goes through the daemon's own path, as `promote` does: a
//! cycle over the one target, narrowed, with a rollback order on it, so
//! the byte-minimal edit, the trailers (plus `Tagwatch-Rollback-Of`) and
//! the commit or pull request are the daemon's. `hold` and `release` edit
//! `.tagwatch/holds.toml` (see `cycle::holds`) in one commit each, pushed
//! with the same compare-and-swap as a cycle's, retried on a moved branch.
//! Bad arguments exit 64 before anything is written; a git failure exits 1.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{ConfigArg, EXIT_FAILED, EXIT_USAGE, context, load};
use crate::config::{App, Config, RepoPath, Update};
use crate::cycle::holds::{self, HOLDS_FILE, Hold, Holds, Release};
use crate::cycle::{Mode, Outcome};
use crate::gitops::{Checkout, CommitId, GitError};
use crate::rollback::{Cause, Order};
use crate::trailers::{format_time, one_line};

#[derive(clap::Args, Debug)]
pub struct RollbackArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The app, as named in the configuration.
    #[arg(long)]
    app: String,
    /// The env of the app to roll back.
    #[arg(long)]
    env: String,
    /// The tag to set the env to; by default, the value it held before the
    /// current one (from the branch's history). It must exist in ECR.
    #[arg(long)]
    to: Option<String>,
    /// Why, for the commit's `Tagwatch-Reason` trailer.
    #[arg(long, default_value = "rolled back by hand")]
    reason: String,
    /// For a pull-request target: commit straight to the branch (an
    /// emergency should not wait for review).
    #[arg(long)]
    direct: bool,
}

#[derive(clap::Args, Debug)]
pub struct HoldArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[arg(long)]
    app: String,
    /// The env to hold; without it, every env of the app.
    #[arg(long)]
    env: Option<String>,
    /// When the hold lapses by itself: an RFC 3339 time, or a duration
    /// from now (`2h`, `30m`). Without it, until released.
    #[arg(long)]
    until: Option<String>,
    /// Why; shown wherever the hold is.
    #[arg(long)]
    reason: String,
    /// Who holds it; by default `$USER`.
    #[arg(long)]
    by: Option<String>,
    /// Run as if it were this time (RFC 3339), for `--until DURATION`.
    #[arg(long, value_parser = super::parse_now, hide = true)]
    now: Option<OffsetDateTime>,
}

#[derive(clap::Args, Debug)]
pub struct ReleaseArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[arg(long)]
    app: String,
    /// The env to release; without it, every env of the app.
    #[arg(long)]
    env: Option<String>,
    /// Also let this denied tag through again.
    #[arg(long)]
    tag: Option<String>,
}

fn usage(command: &str, message: impl std::fmt::Display) -> u8 {
    eprintln!("tagwatch {command}: {message}");
    EXIT_USAGE
}

/// The app named `name`, or the 64 to exit with.
fn find_app<'a>(command: &str, config: &'a Config, name: &str) -> Result<&'a App, u8> {
    config.apps.iter().find(|a| a.name == name).ok_or_else(|| {
        usage(
            command,
            format!("no app {name:?} in {}", config.source.display()),
        )
    })
}

/// The configuration, the app's name and the envs `--app`/`--env` name
/// (every env of the app without `--env`), or the 64 to exit with.
fn targets(
    command: &str,
    config: &ConfigArg,
    app: &str,
    env: Option<&str>,
) -> Result<(Config, String, Vec<String>), u8> {
    let config = load(config)?;
    let app = find_app(command, &config, app)?;
    let envs = envs_of(command, app, env)?;
    let name = app.name.clone();
    Ok((config, name, envs))
}

/// The envs of `app` that `env` names (all of them without one).
fn envs_of(command: &str, app: &App, env: Option<&str>) -> Result<Vec<String>, u8> {
    match env {
        Some(env) if app.targets.iter().any(|t| t.env == env) => Ok(vec![env.to_string()]),
        Some(env) => Err(usage(
            command,
            format!("app {:?} has no env {env:?}", app.name),
        )),
        None => Ok(app.targets.iter().map(|t| t.env.clone()).collect()),
    }
}

/// `--until`: an RFC 3339 time, or a duration from `now`.
fn parse_until(text: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(at);
    }
    let duration = humantime::parse_duration(text).map_err(|_| {
        format!("--until {text:?} is neither an RFC 3339 time nor a duration (2h, 30m)")
    })?;
    let duration = time::Duration::try_from(duration).map_err(|e| e.to_string())?;
    now.checked_add(duration)
        .ok_or_else(|| format!("--until {text:?} is too far away"))
}

pub async fn hold(args: HoldArgs) -> u8 {
    let (config, name, envs) = match targets("hold", &args.config, &args.app, args.env.as_deref()) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let now = args.now.unwrap_or_else(|| {
        OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or(OffsetDateTime::now_utc())
    });
    let until = match args.until.as_deref().map(|u| parse_until(u, now)) {
        None => None,
        Some(Ok(at)) if at > now => Some(format_time(at)),
        Some(Ok(at)) => {
            return usage(
                "hold",
                format!("--until {} is not in the future", format_time(at)),
            );
        }
        Some(Err(e)) => return usage("hold", e),
    };
    if args.reason.trim().is_empty() {
        return usage("hold", "--reason must say why");
    }
    let by = args
        .by
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into());
    let edit = move |holds: &mut Holds| {
        for env in &envs {
            holds.holds.retain(|h| !(h.app == name && &h.env == env));
            holds.holds.push(Hold {
                app: name.clone(),
                env: env.clone(),
                reason: args.reason.clone(),
                by: Some(by.clone()),
                until: until.clone(),
            });
        }
        let what = envs
            .iter()
            .map(|e| format!("{name}/{e}"))
            .collect::<Vec<_>>()
            .join(", ");
        let trailers: String = envs
            .iter()
            .map(|e| format!("{}: {}/{}\n", holds::HOLD, one_line(&name), one_line(e)))
            .collect();
        let until = until
            .as_deref()
            .map(|u| format!(" until {u}"))
            .unwrap_or_default();
        Some(format!(
            "tagwatch: hold {what}\n\nHeld by {}{until}: {}\n\n{trailers}{}: {}\n",
            one_line(&by),
            one_line(&args.reason),
            crate::rollback::REASON,
            one_line(&args.reason)
        ))
    };
    finish("hold", commit_holds(&config, now, edit).await)
}

pub async fn release(args: ReleaseArgs) -> u8 {
    let (config, name, envs) =
        match targets("release", &args.config, &args.app, args.env.as_deref()) {
            Ok(found) => found,
            Err(code) => return code,
        };
    let edit = move |holds: &mut Holds| {
        let before = holds.clone();
        holds
            .holds
            .retain(|h| !(h.app == name && envs.contains(&h.env)));
        let mut trailers = String::new();
        for env in &envs {
            if before
                .hold_on(&name, env, OffsetDateTime::UNIX_EPOCH)
                .is_some()
            {
                trailers.push_str(&format!(
                    "{}: {}/{}\n",
                    holds::RELEASE,
                    one_line(&name),
                    one_line(env)
                ));
            }
            if let Some(tag) = &args.tag
                && !holds.released(&name, env, tag)
            {
                holds.releases.push(Release {
                    app: name.clone(),
                    env: env.clone(),
                    tag: tag.clone(),
                });
                trailers.push_str(&format!(
                    "{}: {}/{} {}\n",
                    holds::RELEASE,
                    one_line(&name),
                    one_line(env),
                    one_line(tag)
                ));
            }
        }
        if *holds == before {
            return None;
        }
        let what = envs
            .iter()
            .map(|e| format!("{name}/{e}"))
            .collect::<Vec<_>>()
            .join(", ");
        let tag = args
            .tag
            .as_deref()
            .map(|t| format!(" and let {} through", one_line(t)))
            .unwrap_or_default();
        Some(format!("tagwatch: release {what}{tag}\n\n{trailers}"))
    };
    let now = OffsetDateTime::now_utc();
    finish("release", commit_holds(&config, now, edit).await)
}

fn finish(command: &str, result: Result<Option<CommitId>, GitError>) -> u8 {
    match result {
        Ok(Some(commit)) => {
            println!("{commit}");
            0
        }
        Ok(None) => {
            println!("nothing to change; nothing written");
            0
        }
        Err(e) => {
            eprintln!("tagwatch {command}: {e}");
            EXIT_FAILED
        }
    }
}

/// The clone, synced with the remote. A lock file in it can only be left by
/// a killed command (the clone is this process's alone, as a cycle's is),
/// and a one-shot command has no next cycle to clone again in: such a clone
/// is a cache, so it is discarded and cloned again, once, now.
fn open_synced(settings: &crate::config::GitSettings) -> Result<Checkout, GitError> {
    let attempt = || -> Result<Checkout, GitError> {
        let mut checkout = Checkout::open_or_create(settings)?;
        checkout.sync()?;
        Ok(checkout)
    };
    match attempt() {
        Err(GitError::Busy { .. }) => {
            tracing::warn!("a lock file left in the clone by a killed command; cloning again");
            Checkout::open_or_create(settings)?.discard();
            attempt()
        }
        other => other,
    }
}

/// Reads the holds file at the branch's head, lets `edit` change it (it
/// returns the commit message, or `None` for no change), commits and
/// pushes; a moved branch is synced and edited again, as a cycle's push is.
async fn commit_holds(
    config: &Config,
    now: OffsetDateTime,
    edit: impl Fn(&mut Holds) -> Option<String> + Send + 'static,
) -> Result<Option<CommitId>, GitError> {
    let settings = config.git.clone();
    let attempts = config.git.push_attempts.max(1);
    tokio::task::spawn_blocking(move || {
        let path = RepoPath::new(HOLDS_FILE).map_err(|e| GitError::Local {
            path: settings.checkout_dir.clone(),
            message: e.to_string(),
        })?;
        let mut checkout = open_synced(&settings)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            checkout.sync()?;
            let mut holds = match checkout.read(&path)? {
                Some(bytes) => {
                    Holds::parse(&String::from_utf8_lossy(&bytes)).map_err(|e| GitError::Local {
                        path: settings.checkout_dir.clone(),
                        message: e.to_string(),
                    })?
                }
                None => Holds::default(),
            };
            let Some(message) = edit(&mut holds) else {
                return Ok(None);
            };
            let id = checkout.commit_file(&path, holds.render().as_bytes(), &message, now)?;
            match checkout.push() {
                Ok(()) => return Ok(Some(id)),
                Err(GitError::Rejected { .. }) if attempt < attempts => continue,
                Err(e) => return Err(e),
            }
        }
    })
    .await
    .unwrap_or_else(|e| {
        Err(GitError::Local {
            path: config.git.checkout_dir.clone(),
            message: format!("the git task panicked: {e}"),
        })
    })
}

pub async fn rollback(args: RollbackArgs) -> u8 {
    let Ok(mut config) = load(&args.config) else {
        return EXIT_USAGE;
    };
    let mut app = match find_app("rollback", &config, &args.app) {
        Ok(app) => app.clone(),
        Err(code) => return code,
    };
    let Some(mut target) = app.targets.iter().find(|t| t.env == args.env).cloned() else {
        return usage(
            "rollback",
            format!("app {:?} has no env {:?}", args.app, args.env),
        );
    };
    if args.reason.trim().is_empty() {
        return usage("rollback", "--reason must say why");
    }
    let Some(mut ctx) = context(config.clone()).await else {
        return EXIT_USAGE;
    };
    let listing = match ctx.registry.list(&app.repository).await {
        Ok(listing) => listing,
        Err(e) => {
            eprintln!("tagwatch rollback: {e}");
            return EXIT_FAILED;
        }
    };

    // What the env holds, and (without --to) what it held before, from the
    // branch as the remote has it now.
    let (current, previous) = {
        let settings = config.git.clone();
        let t = target.clone();
        let read = tokio::task::spawn_blocking(move || {
            let checkout = open_synced(&settings)?;
            let value_of = |bytes: &[u8]| crate::cycle::plan::tag_in(&t, bytes);
            let current = checkout.read(&t.file)?.and_then(|b| value_of(&b));
            let events = checkout.value_events(&t.file, 1_000, &value_of);
            Ok::<_, GitError>((current, events))
        })
        .await;
        match read {
            Ok(Ok((Some(current), events))) => {
                let previous = events
                    .iter()
                    .rev()
                    .find(|e| e.to.as_deref() == Some(current.as_str()))
                    .and_then(|e| e.from.clone());
                (current, previous)
            }
            Ok(Ok((None, _))) => {
                return usage(
                    "rollback",
                    format!(
                        "{}: {} holds no value to roll back",
                        target.file, target.key
                    ),
                );
            }
            Ok(Err(e)) => {
                eprintln!("tagwatch rollback: {e}");
                return EXIT_FAILED;
            }
            Err(e) => {
                eprintln!("tagwatch rollback: the git task panicked: {e}");
                return EXIT_FAILED;
            }
        }
    };
    let Some(to) = args.to.clone().or(previous) else {
        return usage(
            "rollback",
            format!(
                "{}/{} holds {current}, and history shows no earlier value to roll back to; pass --to",
                app.name, target.env
            ),
        );
    };
    if to == current {
        // Done already (a retry after a crash, or a second replica's run):
        // the same result as one uninterrupted rollback.
        println!(
            "{}/{} already holds {to}; nothing written",
            app.name, target.env
        );
        return 0;
    }
    let policy = app.policy_for(&target);
    if !listing.images.iter().any(|i| policy.value_of(i) == to) {
        return usage(
            "rollback",
            format!(
                "tag {to:?} does not exist in repository {:?}",
                app.repository
            ),
        );
    }

    target.rollback = Some(Order {
        to: to.clone(),
        of: current,
        cause: Cause::Command,
        reason: args.reason.clone(),
    });
    target.promote_from = None;
    target.soak = Duration::ZERO;
    if args.direct {
        target.update = Update::Commit;
    }
    app.targets = vec![target];
    config.apps = vec![app];
    ctx.config = Arc::new(config);
    let report = ctx.cycle(Mode::Apply).await;
    let Some(result) = report.targets.first() else {
        eprintln!("tagwatch rollback: the cycle did nothing");
        return EXIT_FAILED;
    };
    match &result.outcome {
        Outcome::Promoted { commit, .. } => {
            println!("{commit}");
            0
        }
        Outcome::Proposed { url, .. } => {
            println!("{url}");
            0
        }
        Outcome::Failed { stage, error } => {
            eprintln!("tagwatch rollback: failed ({}): {error}", stage.as_str());
            EXIT_FAILED
        }
        other => {
            eprintln!("tagwatch rollback: not rolled back: {result}");
            let _ = other;
            EXIT_FAILED
        }
    }
}
