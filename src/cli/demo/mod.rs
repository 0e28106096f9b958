//! `tagwatch demo`: a promotion from start to finish on loopback.
//!
//! It makes a throwaway GitOps repository (a bare git repository on disk),
//! starts a small ECR-compatible endpoint ([`fake_ecr`]) and a small
//! GitHub-compatible one ([`fake_github`]), writes a config pointing at
//! them, and then runs real cycles through the same code as `tagwatch
//! once`: the same config loader, the same aws-sdk-ecr client, the same
//! GitHub client, policy, splice, commit and pull request. dev takes each
//! new tag by a commit, prod by a pull request. Between cycles it "pushes"
//! tags the way CI would, and prints each commit and pull request tagwatch
//! makes. It ends with where to go next.

pub mod fake_ecr;
pub mod fake_github;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use git2::{DiffFormat, Oid, Repository, Signature, build::TreeUpdateBuilder};
use tokio_util::sync::CancellationToken;

use super::{count, print_report};
use crate::cycle::Mode;
use crate::daemon::Context;
use crate::registry::ecr::EcrRegistry;
use fake_ecr::FakeEcr;
use fake_github::FakeGitHub;

const PAYMENTS_VALUES: &str = "\
# Helm values for payments in ENV.
# Owned by the payments team; tagwatch updates image.tag only.

replicaCount: 2

image:
  repository: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/payments-api
  tag: 1.4.1   # bumped by tagwatch
  pullPolicy: IfNotPresent

resources:
  limits: {cpu: 500m, memory: 256Mi}
";

const LEDGER_VALUES: &str = "\
image:
  repository: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/ledger
  # Helm reads YAML 1.1: an unquoted 1.10 would become the number 1.1.
  tag: 1.9
";

/// The GitHub repository the demo's forge serves.
const FORGE_REPOSITORY: &str = "acme/gitops";

const CONFIG: &str = r#"interval = "2m"
listen = "127.0.0.1:9090"

[aws]
region = "eu-west-1"
endpoint_url = "ENDPOINT"

[git]
url = "gitops.git"
branch = "main"
checkout_dir = "checkout"
author = "tagwatch <tagwatch@acme.dev>"

# prod changes need a reviewer: they arrive as pull requests.
[forge]
kind = "github"
repository = "REPOSITORY"
api_url = "FORGE"
token_file = "forge-token"

[[apps]]
name = "payments"
repository = "payments-api"
constraint = "^1.4"
ignore = ["*-debug"]

[[apps.targets]]
env = "dev"
file = "envs/dev/payments/values.yaml"
key = "image.tag"

[[apps.targets]]
env = "prod"
file = "envs/prod/payments/values.yaml"
key = "image.tag"
update = "pull-request"

[[apps]]
name = "ledger"
repository = "ledger"
constraint = "~1"

[[apps.targets]]
env = "dev"
file = "envs/dev/ledger/values.yaml"
key = "image.tag"
"#;

/// Runs the walkthrough in `dir`, kept afterwards, or in a temporary
/// directory removed at the end.
pub async fn run(dir: Option<PathBuf>) -> Result<()> {
    // First, before anything that can take a moment: say what is coming.
    println!(
        "tagwatch demo: starting a throwaway GitOps repository, an ECR-compatible endpoint and a \
         GitHub-compatible endpoint on loopback (no AWS or GitHub account needed)..."
    );
    let temp;
    let (dir, kept) = match dir {
        Some(dir) => {
            if std::fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_some()) {
                anyhow::bail!(
                    "{} is not empty; give --dir a new or empty directory",
                    dir.display()
                );
            }
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            (std::fs::canonicalize(&dir).unwrap_or(dir), true)
        }
        None => {
            temp = tempfile::tempdir().context("creating a temporary directory")?;
            (temp.path().to_path_buf(), false)
        }
    };
    let stop = CancellationToken::new();
    let result = walkthrough(&dir, stop.clone()).await;
    stop.cancel();
    if kept {
        println!(
            "\nThe demo's files are kept in {0}:\n   \
             {0}/tagwatch.toml         the configuration it ran with\n   \
             {0}/gitops.git            the GitOps remote: git --git-dir {0}/gitops.git log --stat --all\n   \
             {0}/checkout              tagwatch's own clone",
            dir.display()
        );
    } else {
        println!(
            "\nThe demo's files were in a temporary directory, now removed; \
             `tagwatch demo --dir DIR` keeps them."
        );
    }
    result?;
    next_steps(kept.then_some(dir.as_path()));
    Ok(())
}

fn next_steps(dir: Option<&Path>) {
    println!(
        "\n== Where to go next\n   \
         README.md                 install, and the commands below\n   \
         docs/configuration.md     every key: policies, formats, targets, [forge]\n   \
         docs/promotion.md         promotion paths: promote_from, soak, pull requests\n   \
         docs/operations.md        running it in a cluster: metrics, /status, alerts\n   \
         manifests/, Dockerfile    the Kubernetes install"
    );
    // These two read only files and git, so they work on the kept
    // directory after the demo's endpoints are gone.
    if let Some(dir) = dir {
        let config = dir.join("tagwatch.toml");
        println!(
            "\n   On what the demo left:\n   \
             tagwatch check --config {0}      validate a configuration\n   \
             tagwatch history --config {0}    what was promoted, from the trailers",
            config.display()
        );
    }
    println!(
        "\n   With your own tagwatch.toml:\n   \
         tagwatch check --config tagwatch.toml                 validate it, before any network I/O\n   \
         tagwatch once --config tagwatch.toml --dry-run        see what one cycle would change\n   \
         tagwatch policy test --constraint '^1.4' 1.4.2 2.0.0  try a policy on tags"
    );
}

async fn walkthrough(dir: &Path, stop: CancellationToken) -> Result<()> {
    let remote = dir.join("gitops.git");
    seed_gitops(&remote)?;
    let ecr = FakeEcr::default();
    ecr.push("payments-api", "1.4.1");
    ecr.push("payments-api", "1.4.2");
    ecr.push("ledger", "1.9");
    let addr = ecr
        .serve(stop.clone())
        .await
        .context("starting the demo ECR endpoint")?;
    let github = FakeGitHub::new(FORGE_REPOSITORY, remote.clone());
    let forge_addr = github
        .serve(stop)
        .await
        .context("starting the demo GitHub endpoint")?;

    let config_path = dir.join("tagwatch.toml");
    std::fs::write(dir.join("forge-token"), "demo-token\n")?;
    std::fs::write(
        &config_path,
        CONFIG
            .replace("ENDPOINT", &format!("http://{addr}"))
            .replace("FORGE", &format!("http://{forge_addr}"))
            .replace("REPOSITORY", FORGE_REPOSITORY),
    )?;
    let config = crate::config::load(&config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("\n== tagwatch demo in {}", dir.display());
    println!("{}", super::summary(&config));
    println!(
        "   GitOps remote: {}\n   ECR endpoint: http://{addr}   GitHub endpoint: http://{forge_addr} ({FORGE_REPOSITORY})\n   \
         dev takes each new tag by a commit; prod by a pull request.",
        remote.display()
    );

    let credentials = Credentials::new("demo", "demo", None, None, "tagwatch-demo");
    let registry = EcrRegistry::connect(
        &config.aws,
        Some(SharedCredentialsProvider::new(credentials)),
    )
    .await?;
    let forge = config
        .forge
        .as_ref()
        .map(crate::forge::connect)
        .transpose()?;
    let ctx = Context::new(config, Arc::new(registry), forge);

    let mut seen = head(&remote)?;
    step(
        "cycle 1: the registry has payments-api 1.4.1, 1.4.2 and ledger 1.9; dev is committed, prod is proposed",
    );
    print_report(&ctx.cycle(Mode::Apply).await);
    seen = show_new_commits(&remote, seen)?;
    show_pulls(&github);

    step("CI pushes payments-api 1.4.3, 1.4.4-debug, 1.5.0-rc.1, 2.0.0 and ledger 1.10");
    for tag in ["1.4.3", "1.4.4-debug", "1.5.0-rc.1", "2.0.0"] {
        ecr.push("payments-api", tag);
    }
    ecr.push("ledger", "1.10");
    step("dry run: what would change");
    print_report(&ctx.cycle(Mode::DryRun).await);
    step(
        "cycle 2: 1.4.3 is the highest in ^1.4 (pre-releases, ignored tags and 2.0.0 are not); ledger gets a quoted \"1.10\"; prod's pull request is rebuilt for 1.4.3, not opened twice",
    );
    print_report(&ctx.cycle(Mode::Apply).await);
    seen = show_new_commits(&remote, seen)?;
    show_pulls(&github);

    step("cycle 3: nothing new, so no commit and no new pull request");
    print_report(&ctx.cycle(Mode::Apply).await);
    if head(&remote)? != seen {
        anyhow::bail!("cycle 3 made a commit, but nothing had changed");
    }
    let pulls = github.pulls();
    if pulls.len() != 1 {
        anyhow::bail!(
            "expected one pull request for prod, the forge holds {}",
            pulls.len()
        );
    }
    println!("\nThe GitOps remote still holds the same head: {seen}");
    println!(
        "prod changes when a person merges pull request #{}; tagwatch then finds prod at the new tag and leaves it.",
        pulls[0].number
    );
    Ok(())
}

/// Prints the pull requests the demo's forge holds, with their Markdown.
fn show_pulls(github: &FakeGitHub) {
    let pulls = github.pulls();
    println!(
        "\nThe GitHub endpoint holds {}:",
        count(pulls.len(), "pull request", "pull requests")
    );
    for p in pulls {
        let state = if p.open { "open" } else { "closed" };
        let updated = match p.updates {
            0 => String::new(),
            1 => ", updated once".to_string(),
            n => format!(", updated {n} times"),
        };
        println!(
            "\n#{} ({state}{updated}) {}\n   {} -> {}\n",
            p.number, p.title, p.head, p.base
        );
        for line in p.body.lines() {
            println!("    {line}");
        }
    }
}

fn step(title: &str) {
    println!("\n== {title}");
}

/// Creates the bare "remote" with one commit holding the values files.
fn seed_gitops(path: &Path) -> Result<()> {
    let repo =
        Repository::init_bare(path).with_context(|| format!("creating {}", path.display()))?;
    let empty = repo.treebuilder(None)?.write()?;
    let empty = repo.find_tree(empty)?;
    let mut update = TreeUpdateBuilder::new();
    for (file, text) in [
        (
            "envs/dev/payments/values.yaml",
            PAYMENTS_VALUES.replace("ENV", "dev"),
        ),
        (
            "envs/prod/payments/values.yaml",
            PAYMENTS_VALUES.replace("ENV", "prod"),
        ),
        ("envs/dev/ledger/values.yaml", LEDGER_VALUES.to_string()),
        (
            "README.md",
            "# gitops\n\nArgo CD syncs envs/ into the clusters.\n".to_string(),
        ),
    ] {
        let blob = repo.blob(text.as_bytes())?;
        update.upsert(file, blob, git2::FileMode::Blob);
    }
    let tree = repo.find_tree(update.create_updated(&repo, &empty)?)?;
    let me = Signature::now("Platform Team", "platform@acme.dev")?;
    repo.commit(
        Some("refs/heads/main"),
        &me,
        &me,
        "Add dev values",
        &tree,
        &[],
    )?;
    repo.set_head("refs/heads/main")?;
    Ok(())
}

fn head(remote: &Path) -> Result<Oid> {
    Ok(Repository::open_bare(remote)?.refname_to_id("refs/heads/main")?)
}

/// Prints the commits after `since` on the remote, oldest first, as
/// `git log -p` would, and returns the new head.
fn show_new_commits(remote: &Path, since: Oid) -> Result<Oid> {
    let repo = Repository::open_bare(remote)?;
    let head = repo.refname_to_id("refs/heads/main")?;
    let mut walk = repo.revwalk()?;
    walk.push(head)?;
    walk.hide(since)?;
    walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)?;
    for oid in walk {
        let commit = repo.find_commit(oid?)?;
        println!("\ncommit {}\nAuthor: {}\n", commit.id(), commit.author());
        for line in commit.message().unwrap_or("").lines() {
            println!("    {line}");
        }
        let parent = commit.parent(0)?.tree()?;
        let diff = repo.diff_tree_to_tree(Some(&parent), Some(&commit.tree()?), None)?;
        println!();
        diff.print(DiffFormat::Patch, |_, _, line| {
            let prefix = match line.origin() {
                '+' | '-' | ' ' => line.origin().to_string(),
                _ => String::new(),
            };
            print!("{prefix}{}", String::from_utf8_lossy(line.content()));
            true
        })?;
    }
    Ok(head)
}
