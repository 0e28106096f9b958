//! `tagwatch demo`: a promotion from start to finish on loopback.
//!
//! It makes a throwaway GitOps repository (a bare git repository on disk),
//! starts a small ECR-compatible endpoint ([`fake_ecr`]), writes a config
//! pointing at both, and then runs real cycles through the same code as
//! `tagwatch once`: the same config loader, the same aws-sdk-ecr client,
//! the same policy, splice and commit. Between cycles it "pushes" tags the
//! way CI would, and prints each commit tagwatch makes.

pub mod fake_ecr;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use git2::{DiffFormat, Oid, Repository, Signature, build::TreeUpdateBuilder};
use tokio_util::sync::CancellationToken;

use super::print_report;
use crate::daemon::Context;
use crate::reconcile::Mode;
use crate::registry::ecr::EcrRegistry;
use fake_ecr::FakeEcr;

const PAYMENTS_VALUES: &str = "\
# Helm values for payments in dev.
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

[[apps]]
name = "payments"
repository = "payments-api"
constraint = "^1.4"
ignore = ["*-debug"]

[[apps.targets]]
env = "dev"
file = "envs/dev/payments/values.yaml"
key = "image.tag"

[[apps]]
name = "ledger"
repository = "ledger"
constraint = "~1"

[[apps.targets]]
env = "dev"
file = "envs/dev/ledger/values.yaml"
key = "image.tag"
"#;

/// Runs the walkthrough in `dir`, or in a temporary directory removed at
/// the end.
pub async fn run(dir: Option<PathBuf>) -> Result<()> {
    let temp;
    let dir = match dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            dir
        }
        None => {
            temp = tempfile::tempdir().context("creating a temporary directory")?;
            temp.path().to_path_buf()
        }
    };
    let stop = CancellationToken::new();
    let result = walkthrough(&dir, stop.clone()).await;
    stop.cancel();
    result
}

async fn walkthrough(dir: &Path, stop: CancellationToken) -> Result<()> {
    let remote = dir.join("gitops.git");
    seed_gitops(&remote)?;
    let ecr = FakeEcr::default();
    ecr.push("payments-api", "1.4.1");
    ecr.push("payments-api", "1.4.2");
    ecr.push("ledger", "1.9");
    let addr = ecr
        .serve(stop)
        .await
        .context("starting the demo ECR endpoint")?;

    let config_path = dir.join("tagwatch.toml");
    std::fs::write(
        &config_path,
        CONFIG.replace("ENDPOINT", &format!("http://{addr}")),
    )?;
    let config = crate::config::load(&config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("== tagwatch demo in {}", dir.display());
    println!("{}", super::summary(&config));
    println!(
        "   GitOps remote: {}   ECR endpoint: http://{addr}\n",
        remote.display()
    );

    let credentials = Credentials::new("demo", "demo", None, None, "tagwatch-demo");
    let registry = EcrRegistry::connect(
        &config.aws,
        Some(SharedCredentialsProvider::new(credentials)),
    )
    .await?;
    let ctx = Context::new(config, Arc::new(registry), None);

    let mut seen = head(&remote)?;
    step("cycle 1: the registry has payments-api 1.4.1, 1.4.2 and ledger 1.9");
    print_report(&ctx.cycle(Mode::Apply).await);
    seen = show_new_commits(&remote, seen)?;

    step("CI pushes payments-api 1.4.3, 1.4.4-debug, 1.5.0-rc.1, 2.0.0 and ledger 1.10");
    for tag in ["1.4.3", "1.4.4-debug", "1.5.0-rc.1", "2.0.0"] {
        ecr.push("payments-api", tag);
    }
    ecr.push("ledger", "1.10");
    step("dry run: what would change");
    print_report(&ctx.cycle(Mode::DryRun).await);
    step(
        "cycle 2: 1.4.3 is the highest in ^1.4 (pre-releases, ignored tags and 2.0.0 are not); ledger gets a quoted \"1.10\"",
    );
    print_report(&ctx.cycle(Mode::Apply).await);
    seen = show_new_commits(&remote, seen)?;

    step("cycle 3: nothing new, so no commit");
    print_report(&ctx.cycle(Mode::Apply).await);
    if head(&remote)? != seen {
        anyhow::bail!("cycle 3 made a commit, but nothing had changed");
    }
    println!("\nThe GitOps remote still holds the same head: {seen}");
    Ok(())
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
        ("envs/dev/payments/values.yaml", PAYMENTS_VALUES),
        ("envs/dev/ledger/values.yaml", LEDGER_VALUES),
        (
            "README.md",
            "# gitops\n\nArgo CD syncs envs/ into the clusters.\n",
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
