//! The command line: parse, validate, run, and map the result to an exit
//! status. 0 is success, 1 is a failed app, 64 (`EX_USAGE`) is a bad
//! configuration or bad arguments, reported before any network I/O.

pub mod demo;
mod ecr;
mod edit;
mod history;
mod import;
mod policy_test;
mod previews;
mod promote;
mod rollback;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config};
use crate::cycle::{CycleReport, Mode, Outcome};
use crate::daemon::{self, Context};
use crate::telemetry::{self, LogFormat};

/// Exit status for a bad configuration or bad arguments (sysexits' EX_USAGE).
pub const EXIT_USAGE: u8 = 64;
/// Exit status when an app could not be reconciled.
pub const EXIT_FAILED: u8 = 1;

const DEFAULT_CONFIG: &str = "/etc/tagwatch/tagwatch.toml";

#[derive(Parser, Debug)]
#[command(
    name = "tagwatch",
    version,
    about = "Promotes new ECR image tags into a GitOps repository"
)]
pub struct Cli {
    /// Log format: text on a terminal and JSON otherwise, unless set.
    #[arg(long, value_enum, default_value_t = LogFormat::Auto, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Validate a configuration file and print a one-line summary. With
    /// --online, also read ECR and the branch and report every deployed
    /// image ECR no longer serves (exit 1 when there is one).
    Check(ecr::CheckArgs),
    /// Read each repository's ECR lifecycle policy and report, per deployed
    /// image, whether a rule would expire it. Exits 1 when one would.
    LifecycleCheck(ConfigArg),
    /// Run one cycle and exit: 0 when every app was reconciled, 1 when any failed.
    Once {
        #[command(flatten)]
        config: ConfigArg,
        /// Print each change as a diff and write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Run as if it were this time (RFC 3339): `min_age`, soak times and
        /// commit dates use it. For drills and tests.
        #[arg(long, value_parser = parse_now, hide = true)]
        now: Option<time::OffsetDateTime>,
    },
    /// Run a cycle every `interval` until SIGTERM or SIGINT.
    Run(ConfigArg),
    /// Set one scalar in a YAML file in place, changing only its bytes.
    /// Exits 0 when the file changed or already held the value, 64 when refused.
    Set(edit::SetArgs),
    /// Print the scalar at KEY in a YAML file.
    Get(edit::GetArgs),
    /// Promote one tag into one env now, as the daemon would (for CI after a
    /// push). Prints the commit id or the pull request's URL; exits 64 when
    /// the tag does not exist or the policy refuses it.
    Promote(promote::PromoteArgs),
    /// Set one env back to an earlier tag now (by default the one it held
    /// before), and deny the tag it rolls back. Prints the commit id or the
    /// pull request's URL; exits 64 for bad arguments, 1 for a git failure.
    Rollback(rollback::RollbackArgs),
    /// Freeze an env (or every env of an app): no promotion while held.
    /// Commits `.tagwatch/holds.toml`; prints the commit id.
    Hold(rollback::HoldArgs),
    /// Lift a hold, and with --tag let a denied tag through again.
    Release(rollback::ReleaseArgs),
    /// List past promotions from the branch's commit trailers.
    History(history::HistoryArgs),
    /// List the live preview environments (one file per pull request):
    /// app, number, tag, file, age, pull-request state, and what the next
    /// cycle does with each. Writes nothing.
    Previews(previews::PreviewsArgs),
    /// Work with tag policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Print a tagwatch configuration translated from Argo CD Image Updater
    /// or Flux image automation; what does not translate exactly is warned
    /// about on stderr. Exits 64 for unreadable input, 1 with --strict and a warning.
    Import(import::ImportArgs),
    /// Walk through a promotion on loopback: a throwaway GitOps repository, a
    /// local ECR-compatible endpoint and a local GitHub-compatible one (dev by
    /// a commit, prod by a pull request); no AWS or GitHub needed.
    Demo {
        /// Keep the demo's files in this directory (new or empty) instead of a
        /// temporary one.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Choose among tags with a policy, as the daemon would, and print the choice.
    /// Exits 0 with a choice, 1 when no tag qualifies, 64 for an invalid policy.
    Test(policy_test::PolicyTestArgs),
}

#[derive(clap::Args, Debug)]
pub struct ConfigArg {
    /// The configuration file.
    #[arg(long, short, env = "TAGWATCH_CONFIG", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
}

/// The binary's entry point.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(EXIT_USAGE),
            };
        }
    };
    // The demo narrates on stdout; its logs would only interleave with that.
    let level = if matches!(cli.command, Command::Demo { .. }) {
        "warn"
    } else {
        "info"
    };
    telemetry::init(cli.log_format, level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tagwatch: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    ExitCode::from(runtime.block_on(run(cli.command)))
}

/// Runs a subcommand and returns its exit status.
pub async fn run(command: Command) -> u8 {
    match command {
        Command::Check(args) => match load(&args.config) {
            Ok(config) if args.online => ecr::check_online(config).await,
            Ok(config) => {
                println!("{}", summary(&config));
                0
            }
            Err(code) => code,
        },
        Command::LifecycleCheck(arg) => match load(&arg) {
            Ok(config) => ecr::lifecycle_check(config).await,
            Err(code) => code,
        },
        Command::Once {
            config,
            dry_run,
            now,
        } => {
            let Ok(config) = load(&config) else {
                return EXIT_USAGE;
            };
            let Some(mut ctx) = context(config).await else {
                return EXIT_USAGE;
            };
            ctx.now = now;
            let report = ctx
                .cycle(if dry_run { Mode::DryRun } else { Mode::Apply })
                .await;
            print_report(&report);
            if dry_run {
                let now = now.unwrap_or_else(time::OffsetDateTime::now_utc);
                for line in crate::notify::preview(&ctx.config, &report, now) {
                    println!("{line}");
                }
            }
            if let Some(notifier) = &ctx.notifier {
                notifier.finish(crate::notify::ONCE_GRACE).await;
                for n in notifier.status() {
                    let error = n
                        .last_error
                        .map(|e| format!(" (last error: {e})"))
                        .unwrap_or_default();
                    println!(
                        "notified {}: {} sent, {} failed{error}",
                        n.sink, n.sent, n.failed
                    );
                }
            }
            if report.any_failed() { EXIT_FAILED } else { 0 }
        }
        Command::Run(arg) => {
            let Ok(config) = load(&arg) else {
                return EXIT_USAGE;
            };
            let Some(ctx) = context(config).await else {
                return EXIT_USAGE;
            };
            let listener = match crate::server::bind(ctx.config.listen).await {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("tagwatch: cannot listen on {}: {e}", ctx.config.listen);
                    return EXIT_FAILED;
                }
            };
            let shutdown = CancellationToken::new();
            daemon::cancel_on_signal(shutdown.clone());
            let server = tokio::spawn(crate::server::serve(
                listener,
                std::sync::Arc::clone(&ctx.board),
                shutdown.clone(),
            ));
            let (wake, wakes) = tokio::sync::mpsc::channel(16);
            if let Some(events) = &ctx.config.aws.events {
                let queue =
                    crate::events::Queue::connect(events, ctx.config.aws.region.as_deref()).await;
                tokio::spawn(crate::events::run(queue, wake, shutdown.clone()));
            }
            let notifier = ctx.notifier.clone();
            daemon::run(ctx, wakes, shutdown).await;
            if let Some(notifier) = notifier {
                notifier.finish(crate::notify::SHUTDOWN_GRACE).await;
            }
            let _ = server.await;
            0
        }
        Command::Set(args) => edit::set(args),
        Command::History(args) => history::run(args).await,
        Command::Previews(args) => previews::run(args).await,
        Command::Promote(args) => promote::run(args).await,
        Command::Rollback(args) => rollback::rollback(args).await,
        Command::Hold(args) => rollback::hold(args).await,
        Command::Release(args) => rollback::release(args).await,
        Command::Get(args) => edit::get(args),
        Command::Policy(PolicyCommand::Test(args)) => policy_test::run(args).await,
        Command::Import(args) => import::run(args),
        Command::Demo { dir } => match demo::run(dir).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("tagwatch demo: {e:#}");
                EXIT_FAILED
            }
        },
    }
}

pub(crate) fn load(arg: &ConfigArg) -> Result<Config, u8> {
    config::load(&arg.config).map_err(|e| {
        eprintln!("{e}");
        EXIT_USAGE
    })
}

pub(crate) async fn context(config: Config) -> Option<Context> {
    match crate::app::connect(&crate::app::Real, &config).await {
        Ok(peers) => {
            let mut ctx = Context::new(config, peers.registry, peers.forge);
            ctx.prometheus = peers.prometheus;
            ctx.argocd = peers.argocd;
            let notifier = crate::notify::Notifier::start(&ctx.config);
            ctx.board.set_notifications(notifier.stats());
            ctx.notifier = Some(std::sync::Arc::new(notifier));
            Some(ctx)
        }
        Err(e) => {
            eprintln!("{}: {e}", config.source.display());
            None
        }
    }
}

fn parse_now(text: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("not an RFC 3339 time ({e}); e.g. 2026-11-22T14:00:00Z"))
}

/// `3 apps, 5 targets, 2 repositories (interval 2m, branch main)`, or
/// `1 app, 1 target, 1 repository`.
pub fn summary(config: &Config) -> String {
    let targets: usize = config.apps.iter().map(|a| a.targets.len()).sum();
    let mut repositories: Vec<&str> = config.apps.iter().map(|a| a.repository.as_str()).collect();
    repositories.sort_unstable();
    repositories.dedup();
    let notify = if config.notify.is_empty() {
        String::new()
    } else {
        let kinds: Vec<&str> = config.notify.iter().map(|n| n.kind.as_str()).collect();
        format!(", notify {}", kinds.join(", "))
    };
    format!(
        "{}: ok: {}, {}, {} (interval {}, branch {}{notify})",
        config.source.display(),
        count(config.apps.len(), "app", "apps"),
        count(targets, "target", "targets"),
        count(repositories.len(), "repository", "repositories"),
        humantime::format_duration(config.interval),
        config.git.branch,
    )
}

/// `1 app`, `2 apps`: a number and its noun in the right form.
pub(crate) fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// One line per target on stdout, plus the diff in a dry run.
pub fn print_report(report: &CycleReport) {
    for t in &report.targets {
        println!("{t}");
        if let Outcome::WouldPromote { diff, .. } = &t.outcome {
            print!("{diff}");
        }
        if let Some(missing) = &t.ecr.missing {
            println!("{}/{}: ALERT: {missing}", t.app, t.env);
        }
    }
    for p in &report.previews {
        println!("{p}");
        print!("{}", p.diff);
    }
}
