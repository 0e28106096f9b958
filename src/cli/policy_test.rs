//! `tagwatch policy test`: the daemon's policy engine on tags from the
//! command line, stdin, or an app's real ECR repository, so a user can see
//! what a policy would choose, and why, before deploying it.

use std::io::BufRead;
use std::path::PathBuf;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{ConfigArg, EXIT_FAILED, EXIT_USAGE, load};
use crate::cycle::Worktree;
use crate::cycle::holds::Denial;
use crate::cycle::plan::{self, Fact, GateFacts, gate_verdicts};
use crate::gate::Gates;
use crate::gitops::Checkout;
use crate::policy::{Policy, PolicySpec};
use crate::registry::ecr::EcrRegistry;
use crate::registry::{Image, Listing, Registry};
use crate::trailers::one_line;

#[derive(clap::Args, Debug)]
pub struct PolicyTestArgs {
    /// semver (default), newest, alphabetical, numeric or digest.
    #[arg(long)]
    strategy: Option<String>,
    /// The range for semver, or the followed tag for digest.
    #[arg(long)]
    constraint: Option<String>,
    /// A regex a tag must match (searched as written; anchor with ^…$).
    #[arg(long)]
    allow: Option<String>,
    /// Order by this capture of --allow: $name or $1.
    #[arg(long)]
    extract: Option<String>,
    /// A glob; a matching tag is never chosen. Repeatable.
    #[arg(long)]
    ignore: Vec<String>,
    /// A tag must have been pushed at least this long ago.
    #[arg(long)]
    min_age: Option<String>,
    /// Print every tag's verdict and the reason for it.
    #[arg(long)]
    explain: bool,
    /// The configuration for --app; defaults to TAGWATCH_CONFIG. (Without
    /// --app it is refused by `Source::from_args`, with a clearer message
    /// than clap's.)
    #[arg(long)]
    config: Option<PathBuf>,
    /// Use this app's policy (needs --config or TAGWATCH_CONFIG) on the
    /// tags given, or, with none, on its repository's real tags in ECR.
    #[arg(
        long,
        conflicts_with_all = ["strategy", "constraint", "allow", "extract", "ignore", "min_age"]
    )]
    app: Option<String>,
    /// With --app: use this env's own policy (its `constraint`) instead of
    /// the app's.
    #[arg(long)]
    env: Option<String>,
    /// Tags, each optionally with a push time: TAG@2026-11-21T10:00:00Z.
    /// `-` reads them from stdin, one per line.
    #[arg(required_unless_present = "app")]
    tags: Vec<String>,
}

/// Why `policy test` cannot start; each is a usage error (exit 64).
#[derive(Debug, thiserror::Error)]
enum UsageError {
    #[error("--app {app:?} needs a configuration: pass --config FILE or set TAGWATCH_CONFIG")]
    NoConfig { app: String },
    #[error("--{flag} needs --app")]
    NeedsApp { flag: &'static str },
}

/// Where the policy comes from, once the flags are validated.
enum Source {
    /// An app (and optionally one of its envs) in a configuration file.
    App {
        config: PathBuf,
        app: String,
        env: Option<String>,
    },
    /// Policy flags and tags on the command line.
    Args,
}

impl Source {
    /// `--app` takes its config from `--config`, else `TAGWATCH_CONFIG`;
    /// `--config` and `--env` mean nothing without `--app`. Checked here
    /// rather than trusted to clap: an ignored `--app` once meant the
    /// default policy was tested in silence.
    fn from_args(args: &PolicyTestArgs, env_config: Option<PathBuf>) -> Result<Source, UsageError> {
        let Some(app) = &args.app else {
            if args.config.is_some() {
                return Err(UsageError::NeedsApp { flag: "config" });
            }
            if args.env.is_some() {
                return Err(UsageError::NeedsApp { flag: "env" });
            }
            return Ok(Source::Args);
        };
        let config = args
            .config
            .clone()
            .or(env_config)
            .ok_or_else(|| UsageError::NoConfig { app: app.clone() })?;
        Ok(Source::App {
            config,
            app: app.clone(),
            env: args.env.clone(),
        })
    }
}

pub async fn run(args: PolicyTestArgs) -> u8 {
    let env_config = std::env::var_os("TAGWATCH_CONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let source = match Source::from_args(&args, env_config) {
        Ok(source) => source,
        Err(e) => {
            eprintln!("tagwatch policy test: {e}");
            return EXIT_USAGE;
        }
    };
    let (policy, mut images, mut gated, denied) = match source {
        Source::App { config, app, env } => {
            match from_config(&config, &app, env.as_deref(), &args.tags).await {
                Ok(found) => found,
                Err(code) => return code,
            }
        }
        Source::Args => match from_args(&args) {
            Ok((policy, images)) => (policy, images, None, Vec::new()),
            Err(message) => {
                eprintln!("tagwatch policy test: {message}");
                return EXIT_USAGE;
            }
        },
    };
    let now = OffsetDateTime::now_utc();
    // A denied tag is no candidate, as in the cycle.
    let is_denied = |tag: &str| denied.iter().find(|d| d.tag == tag);
    if args.explain {
        for image in images
            .iter()
            .filter(|i| is_denied(policy.value_of(i)).is_some())
        {
            if let Some(d) = is_denied(policy.value_of(image)) {
                println!("{}  {}", one_line(&image.tag), one_line(&d.describe()));
            }
        }
    }
    images.retain(|i| is_denied(policy.value_of(i)).is_none());
    if let Some(gated) = &mut gated {
        gated
            .listing
            .images
            .retain(|i| is_denied(policy.value_of(i)).is_none());
    }
    if args.explain {
        let verdicts = policy.explain(&images, now);
        // A tag outside the grammar may hold a newline; print it escaped so
        // each verdict stays on its own line.
        let shown: Vec<_> = verdicts.iter().map(|(i, _)| one_line(&i.tag)).collect();
        let width = shown.iter().map(|t| t.chars().count()).max().unwrap_or(0);
        for (tag, (_, verdict)) in shown.iter().zip(&verdicts) {
            println!("{tag:width$}  {verdict}");
        }
        // ECR lists archived images too; a pull of one fails.
        for image in gated.iter().flat_map(|g| &g.listing.archived) {
            let tag = one_line(&image.tag);
            println!("{tag:width$}  archived in ECR (imageStatus ARCHIVED): never a candidate");
        }
        // On stderr: stdout stays the verdicts and the choice, for scripts.
        if gated.is_none() {
            eprintln!(
                "gates: not checked offline (with --config and --app, scan findings and signatures are read from ECR)"
            );
        }
    }
    let best = match &gated {
        Some(gated) if gated.gates.any() => match gated.choose(&policy, now, args.explain).await {
            Ok(best) => best,
            Err(why) => {
                eprintln!("no tag passes the gates: {why}");
                return EXIT_FAILED;
            }
        },
        _ => policy.best(&images, now).cloned(),
    };
    match best.as_ref() {
        Some(image) => {
            let value = policy.value_of(image);
            // Tags from the command line carry no digest.
            println!("{}", if value.is_empty() { &image.tag } else { value });
            0
        }
        None => {
            eprintln!("no tag qualifies");
            EXIT_FAILED
        }
    }
}

fn from_args(args: &PolicyTestArgs) -> Result<(Policy, Vec<Image>), String> {
    let spec = PolicySpec {
        strategy: args.strategy.clone(),
        constraint: args.constraint.clone(),
        allow: args.allow.clone(),
        extract: args.extract.clone(),
        ignore: args.ignore.clone(),
        min_age: args.min_age.clone(),
    };
    let policy =
        Policy::from_spec(&spec).map_err(|e| format!("--{}: {e}", e.field.replace('_', "-")))?;
    Ok((policy, read_tags(&args.tags)?))
}

/// The tags given: each argument, or with `-` the lines of stdin.
fn read_tags(tags: &[String]) -> Result<Vec<Image>, String> {
    let mut images = Vec::new();
    for arg in tags {
        if arg == "-" {
            for line in std::io::stdin().lock().lines() {
                let line = line.map_err(|e| format!("reading stdin: {e}"))?;
                let line = line.trim();
                if !line.is_empty() {
                    images.push(parse_tag(line)?);
                }
            }
        } else {
            images.push(parse_tag(arg)?);
        }
    }
    Ok(images)
}

/// `TAG` or `TAG@RFC3339`. OCI tags cannot contain `@`, so the split is
/// unambiguous.
fn parse_tag(arg: &str) -> Result<Image, String> {
    let (tag, pushed_at) = match arg.split_once('@') {
        Some((tag, at)) => {
            let at = OffsetDateTime::parse(at, &Rfc3339)
                .map_err(|e| format!("{arg:?}: push time {at:?} is not RFC 3339 ({e})"))?;
            (tag, Some(at))
        }
        None => (arg, None),
    };
    if tag.is_empty() {
        return Err(format!("{arg:?}: empty tag"));
    }
    Ok(Image {
        tag: tag.to_string(),
        digest: String::new(),
        pushed_at,
    })
}

/// An app's gates with what they are read from.
struct Gated {
    gates: Gates,
    listing: Listing,
    registry: EcrRegistry,
}

impl Gated {
    /// The cycle's walk: the policy's candidates best first, each gate read
    /// from ECR, until one passes. Its verdicts are printed under --explain.
    async fn choose(
        &self,
        policy: &Policy,
        now: OffsetDateTime,
        explain: bool,
    ) -> Result<Option<Image>, String> {
        let mut blocked = Vec::new();
        for image in policy.ranked(&self.listing.images, now) {
            let mut facts = GateFacts::default();
            let key = (self.listing.repository.clone(), image.digest.clone());
            let (_, needs) = gate_verdicts(&self.gates, &self.listing, image, &facts);
            for need in needs {
                match need.fact {
                    Fact::Scan => {
                        let scan = self.registry.scan_findings(&key.0, &key.1).await;
                        facts.scans.insert(key.clone(), scan);
                    }
                    Fact::Referrers => {
                        let types = self.registry.referrers(&key.0, &key.1).await;
                        facts.referrers.insert(key.clone(), types);
                    }
                    Fact::Cosign => {
                        let found = self.registry.cosign_signatures(&key.0, &key.1).await;
                        facts.cosign.insert(key.clone(), found);
                    }
                    // A soak-time gate of a `promote_from` target, asked
                    // by the cycle only; `gate_verdicts` never needs it.
                    Fact::Analysis => {}
                    // The Argo CD gate is on the source env's Application
                    // at the soak, not on a tag: `gate_verdicts` never
                    // asks for it.
                    Fact::Argocd => {}
                }
            }
            let (verdicts, _) = gate_verdicts(&self.gates, &self.listing, image, &facts);
            for (gate, verdict) in &verdicts {
                if explain {
                    println!(
                        "gate {} on {}: {} ({})",
                        gate.as_str(),
                        one_line(&image.tag),
                        verdict.outcome(),
                        verdict.text()
                    );
                }
            }
            match verdicts.iter().find(|(_, v)| !v.passes()) {
                None => return Ok(Some(image.clone())),
                Some((_, v)) => blocked.push(format!("{}: {}", image.tag, v.text())),
            }
        }
        if blocked.is_empty() {
            Ok(None)
        } else {
            Err(blocked.join("; "))
        }
    }
}

async fn from_config(
    path: &std::path::Path,
    app: &str,
    env: Option<&str>,
    tags: &[String],
) -> Result<(Policy, Vec<Image>, Option<Gated>, Vec<Denial>), u8> {
    let config = load(&ConfigArg {
        config: path.to_path_buf(),
    })?;
    let Some(found) = config.apps.iter().find(|a| a.name == app) else {
        let names: Vec<&str> = config.apps.iter().map(|a| a.name.as_str()).collect();
        eprintln!(
            "{}: no app named {app:?}; apps: {}",
            path.display(),
            names.join(", ")
        );
        return Err(EXIT_USAGE);
    };
    // Gates are set per target; without --env, the first target's (the
    // config orders sources first, so usually the first env promoted).
    let gates = found
        .targets
        .first()
        .map(|t| t.gates.clone())
        .unwrap_or_default();
    let (policy, gates) = match env {
        None => (found.policy.clone(), gates),
        Some(env) => match found.targets.iter().find(|t| t.env == env) {
            Some(target) => (found.policy_for(target).clone(), target.gates.clone()),
            None => {
                let envs: Vec<&str> = found.targets.iter().map(|t| t.env.as_str()).collect();
                eprintln!(
                    "{}: app {app:?} has no env {env:?}; envs: {}",
                    path.display(),
                    envs.join(", ")
                );
                return Err(EXIT_USAGE);
            }
        },
    };
    // Tags on the command line: the app's policy, offline (but for the
    // env's denied tags, which the branch's history holds).
    if !tags.is_empty() {
        let images = read_tags(tags).map_err(|message| {
            eprintln!("tagwatch policy test: {message}");
            EXIT_USAGE
        })?;
        let listing = Listing {
            repository: found.repository.clone(),
            registry_id: String::new(),
            region: String::new(),
            images: images.clone(),
            pages: 1,
            ..Listing::default()
        };
        let denied = denied_of(&config, found, env, &listing).await;
        return Ok((policy, images, None, denied));
    }
    let registry = EcrRegistry::connect(&config.aws, None).await.map_err(|e| {
        eprintln!("{}: {e}", path.display());
        EXIT_USAGE
    })?;
    let listing = registry.list(&found.repository).await.map_err(|e| {
        eprintln!("{e}");
        EXIT_FAILED
    })?;
    // A helm-chart app's candidates are the repository's charts.
    let listing = listing.of_artifact(found.artifact);
    let images = listing.images.clone();
    let denied = denied_of(&config, found, env, &listing).await;
    Ok((
        policy,
        images,
        Some(Gated {
            gates,
            listing,
            registry,
        }),
        denied,
    ))
}

/// With `--env`: the tags the env may not take, as the cycle derives them
/// from the branch (fetched into the daemon's clone). Without `--env`, or
/// when git cannot be read, none (said on stderr).
async fn denied_of(
    config: &crate::config::Config,
    app: &crate::config::App,
    env: Option<&str>,
    listing: &Listing,
) -> Vec<Denial> {
    let Some(target) = env.and_then(|e| app.targets.iter().find(|t| t.env == e)) else {
        return Vec::new();
    };
    let (settings, app, target, listing) = (
        config.git.clone(),
        app.clone(),
        target.clone(),
        listing.clone(),
    );
    let read = tokio::task::spawn_blocking(move || {
        let mut checkout = Checkout::open_or_create(&settings).map_err(|e| e.to_string())?;
        checkout.sync().map_err(|e| e.to_string())?;
        let now = OffsetDateTime::now_utc();
        let branch = Worktree::new(&checkout, now);
        plan::denied(&app, &target, &listing, now, &branch).map_err(|e| e.to_string())
    })
    .await;
    match read {
        Ok(Ok(denied)) => denied,
        Ok(Err(e)) => {
            eprintln!("denials: not checked ({e})");
            Vec::new()
        }
        Err(e) => {
            eprintln!("denials: not checked ({e})");
            Vec::new()
        }
    }
}
