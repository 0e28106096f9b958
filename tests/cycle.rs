//! End to end: the real `tagwatch` binary against moto's ECR API (through
//! aws-sdk-ecr over HTTP) and real bare git repositories over `file://` and
//! `git daemon`.

mod support;

use support::*;

const VALUES: &str = "\
# Helm values for payments (dev)
replicaCount: 2   # keep two

image:
  repository: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/payments-api
  tag: 1.4.2 # bumped by tagwatch
  pullPolicy: IfNotPresent
";

const FILE: &str = "envs/dev/payments/values.yaml";
/// 2026-11-21T10:00:00Z
const PUSHED: i64 = 1_795_255_200;

/// A new matching tag gives exactly one commit whose diff is the one
/// scalar and whose trailers git reads back; a second cycle is a no-op.
/// Run over both transports the issue names.
fn promotes_one_scalar_then_is_a_noop(url_of: impl Fn(&GitRemote) -> (String, Option<GitDaemon>)) {
    let moto = Moto::start();
    let seeded = moto.seed(
        "payments-api",
        &[
            ("1.4.2", PUSHED - 3600),
            ("1.4.1", PUSHED - 7200),
            ("1.4.3", PUSHED),
            ("1.4.4-debug", PUSHED + 10), // ignored by glob (and a pre-release)
            ("1.5.0-rc.1", PUSHED + 20),  // pre-release
            ("2.0.0", PUSHED + 30),       // outside ^1.4
        ],
    );
    let remote = GitRemote::new(&[(FILE, VALUES), ("README.md", "gitops\n")]);
    let (url, _daemon) = url_of(&remote);
    let work = Workdir::new(
        &moto.endpoint,
        &url,
        &[("payments", "payments-api", "^1.4", FILE)],
    );

    let out = work.once(&[]);
    expect(&out, 0, &["payments/dev: promoted 1.4.2 -> 1.4.3"]);

    assert_eq!(remote.subjects(), ["payments: dev 1.4.2 -> 1.4.3", "seed"]);
    // Byte-minimal: the new file is the old one with exactly the scalar replaced.
    assert_eq!(
        remote.show(FILE),
        VALUES.replace("tag: 1.4.2 #", "tag: 1.4.3 #")
    );
    let stat = git(&remote.bare(), &["diff", "--numstat", "main~1", "main"]);
    assert_eq!(stat.trim(), format!("1\t1\t{FILE}"));

    let message = git(&remote.bare(), &["log", "-1", "--format=%B", "main"]);
    assert!(
        message.contains(&format!("Set image.tag in {FILE} to 1.4.3.")),
        "{message}"
    );
    let mut parse = std::process::Command::new("git")
        .args(["interpret-trailers", "--parse"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    parse
        .stdin
        .take()
        .unwrap()
        .write_all(message.as_bytes())
        .unwrap();
    let trailers = String::from_utf8(parse.wait_with_output().unwrap().stdout).unwrap();
    assert_eq!(
        trailers,
        format!(
            "Tagwatch-App: payments\n\
             Tagwatch-Env: dev\n\
             Tagwatch-Image: {ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/payments-api\n\
             Tagwatch-From: 1.4.2\n\
             Tagwatch-To: 1.4.3\n\
             Tagwatch-Digest: {}\n\
             Tagwatch-Pushed-At: 2026-11-21T10:00:00Z\n",
            moto.digest(&seeded, "1.4.3")
        )
    );
    let author = git(&remote.bare(), &["log", "-1", "--format=%an <%ae>", "main"]);
    assert_eq!(author.trim(), "tagwatch <tagwatch@acme.dev>");

    // Second cycle, nothing new: no commit.
    let out = work.once(&[]);
    expect(&out, 0, &["payments/dev: up to date at 1.4.3"]);
    assert_eq!(remote.subjects().len(), 2);

    // One listing per cycle, with the page size and filter ECR needs.
    let describes: Vec<_> = moto
        .calls()
        .into_iter()
        .filter(|c| c["operation"] == "DescribeImages")
        .collect();
    assert_eq!(describes.len(), 2, "{describes:?}");
    assert!(
        describes
            .iter()
            .all(|c| c["maxResults"] == 1000 && c["tagStatus"] == "TAGGED"),
        "{describes:?}"
    );
}

#[test]
fn promotes_over_file_url() {
    promotes_one_scalar_then_is_a_noop(|r| (r.file_url(), None));
}

#[test]
fn promotes_over_git_daemon() {
    promotes_one_scalar_then_is_a_noop(|r| {
        let daemon = GitDaemon::start(r.dir.path());
        (daemon.url("remote.git"), Some(daemon))
    });
}

#[test]
fn never_downgrades_and_never_picks_prerelease_or_ignored() {
    let moto = Moto::start();
    moto.seed(
        "payments-api",
        &[
            ("1.4.1", PUSHED),
            ("1.5.0-rc.1", PUSHED),
            ("1.4.9-debug", PUSHED),
            ("1.4.9", PUSHED), // a release, but ignored by the glob "1.4.9"
            ("latest", PUSHED),
        ],
    );
    let remote = GitRemote::new(&[(FILE, VALUES)]);
    let work = Workdir::new(
        &moto.endpoint,
        &remote.file_url(),
        &[("payments", "payments-api", "^1.4", FILE)],
    );
    let out = work.once(&[]);
    expect(&out, 0, &["payments/dev: up to date at 1.4.2"]);
    assert_eq!(remote.subjects(), ["seed"]);
}

#[test]
fn reads_every_page_of_a_2500_image_repository() {
    let moto = Moto::start();
    // 2,500 versions. The moto wrapper orders pages by digest, so the
    // highest version gets the greatest digest and can only be on page 3.
    let mut images: Vec<serde_json::Value> = (0..2499)
        .map(|i| serde_json::json!({"tag": format!("1.0.{i}"), "pushedAt": PUSHED}))
        .collect();
    images.push(serde_json::json!({"tag": "1.0.2499", "pushedAt": PUSHED, "digest": format!("sha256:{}", "f".repeat(64))}));
    let body = serde_json::json!({"region": REGION, "repositoryName": "big", "images": images});
    let (status, text) = http(&moto.endpoint, "POST", "/_tagwatch/seed", &body.to_string());
    assert_eq!(status, 200, "{text}");

    let remote = GitRemote::new(&[("values.yaml", "image:\n  tag: 1.0.0\n")]);
    let work = Workdir::new(
        &moto.endpoint,
        &remote.file_url(),
        &[("big", "big", "^1", "values.yaml")],
    );
    expect(&work.once(&[]), 0, &["big/dev: promoted 1.0.0 -> 1.0.2499"]);
    assert_eq!(remote.show("values.yaml"), "image:\n  tag: 1.0.2499\n");
    let pages: Vec<_> = moto
        .calls()
        .into_iter()
        .filter(|c| c["operation"] == "DescribeImages")
        .collect();
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert_eq!(pages[0]["nextToken"], false);
    assert!(
        pages[1..].iter().all(|p| p["nextToken"] == true),
        "{pages:?}"
    );
}

#[test]
fn a_repository_shared_by_apps_is_listed_once_per_cycle() {
    let moto = Moto::start();
    moto.seed(
        "payments-api",
        &[("1.4.2", PUSHED), ("1.4.3", PUSHED), ("1.5.0", PUSHED)],
    );
    let remote = GitRemote::new(&[(FILE, VALUES), ("envs/dev/canary/values.yaml", VALUES)]);
    let work = Workdir::new(
        &moto.endpoint,
        &remote.file_url(),
        &[
            ("payments", "payments-api", "~1.4", FILE),
            (
                "canary",
                "payments-api",
                "^1",
                "envs/dev/canary/values.yaml",
            ),
        ],
    );
    expect(
        &work.once(&[]),
        0,
        &[
            "payments/dev: promoted 1.4.2 -> 1.4.3",
            "canary/dev: promoted 1.4.2 -> 1.5.0",
        ],
    );
    let listings = moto
        .calls()
        .into_iter()
        .filter(|c| c["operation"] == "DescribeImages")
        .count();
    assert_eq!(listings, 1, "one listing for two apps on one repository");
    // Two commits, one push: both land, in config order.
    assert_eq!(
        remote.subjects(),
        [
            "canary: dev 1.4.2 -> 1.5.0",
            "payments: dev 1.4.2 -> 1.4.3",
            "seed"
        ]
    );
}

#[test]
fn a_missing_repository_fails_only_its_app() {
    let moto = Moto::start();
    moto.seed("payments-api", &[("1.4.3", PUSHED)]);
    let remote = GitRemote::new(&[
        (FILE, VALUES),
        ("envs/dev/ghost/values.yaml", "image:\n  tag: 1.0.0\n"),
    ]);
    let work = Workdir::new(
        &moto.endpoint,
        &remote.file_url(),
        &[
            (
                "ghost",
                "does-not-exist",
                "^1",
                "envs/dev/ghost/values.yaml",
            ),
            ("payments", "payments-api", "^1.4", FILE),
        ],
    );
    let out = work.once(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ghost/dev: failed (registry)"),
        "{}",
        show(&out)
    );
    assert!(stdout.contains("does-not-exist"), "{}", show(&out));
    assert!(
        stdout.contains("payments/dev: promoted 1.4.2 -> 1.4.3"),
        "{}",
        show(&out)
    );
    assert_eq!(remote.subjects(), ["payments: dev 1.4.2 -> 1.4.3", "seed"]);
}

/// Between tagwatch's fetch and its push, a person pushes to the same
/// branch. The server-side hook makes that happen at the worst moment: it
/// pushes from another clone while tagwatch's push is being received, so
/// tagwatch's ref update loses the race. tagwatch must fetch, rebuild on
/// the new head and push again, keeping the person's commit.
#[test]
fn survives_a_concurrent_push_between_fetch_and_push() {
    let moto = Moto::start();
    moto.seed("payments-api", &[("1.4.3", PUSHED)]);
    let remote = GitRemote::new(&[(FILE, VALUES), ("README.md", "gitops\n")]);
    let daemon = GitDaemon::start(remote.dir.path());

    // The person's clone, with a commit ready to push.
    let person = remote.dir.path().join("person");
    git(
        remote.dir.path(),
        &["clone", "-q", remote.bare().to_str().unwrap(), "person"],
    );
    std::fs::write(person.join("README.md"), "gitops, edited by a person\n").unwrap();
    git(&person, &["add", "-A"]);
    commit(&person, "docs: a person's edit");

    let marker = remote.dir.path().join("raced");
    let hook = remote.bare().join("hooks/pre-receive");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\n\
             # Once only: push the person's commit while this push is in flight.\n\
             if [ ! -e '{marker}' ]; then\n\
               touch '{marker}'\n\
               cat >/dev/null\n\
               env -i PATH=\"$PATH\" HOME='{home}' git -C '{person}' push -q origin HEAD:main >/dev/null 2>&1\n\
             fi\n\
             exit 0\n",
            marker = marker.display(),
            home = remote.dir.path().display(),
            person = person.display(),
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();

    let work = Workdir::new(
        &moto.endpoint,
        &daemon.url("remote.git"),
        &[("payments", "payments-api", "^1.4", FILE)],
    );
    let out = work.once(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(marker.exists(), "the hook never raced");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("push rejected"),
        "{}",
        show(&out)
    );
    assert_eq!(
        remote.subjects(),
        [
            "payments: dev 1.4.2 -> 1.4.3",
            "docs: a person's edit",
            "seed"
        ],
        "{}",
        show(&out)
    );
    assert_eq!(remote.show("README.md"), "gitops, edited by a person\n");
    assert_eq!(remote.show(FILE), VALUES.replace("1.4.2", "1.4.3"));
    git(&remote.bare(), &["fsck", "--no-progress"]);
}

#[test]
fn dry_run_prints_the_diff_and_writes_nothing() {
    let moto = Moto::start();
    moto.seed("payments-api", &[("1.4.3", PUSHED)]);
    let remote = GitRemote::new(&[(FILE, VALUES)]);
    let work = Workdir::new(
        &moto.endpoint,
        &remote.file_url(),
        &[("payments", "payments-api", "^1.4", FILE)],
    );
    let out = work.once(&["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("payments/dev: would promote 1.4.2 -> 1.4.3"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("--- a/{FILE}\n+++ b/{FILE}")),
        "{stdout}"
    );
    assert!(
        stdout.contains("-  tag: 1.4.2 # bumped by tagwatch\n+  tag: 1.4.3 # bumped by tagwatch\n"),
        "{stdout}"
    );
    assert_eq!(remote.subjects(), ["seed"]);
}

/// The clone is a cache: if it is damaged (a crash, a full disk), the next
/// cycle clones again and carries on.
#[test]
fn a_damaged_clone_is_cloned_again() {
    let moto = Moto::start();
    moto.seed("payments-api", &[("1.4.3", PUSHED)]);
    let remote = GitRemote::new(&[(FILE, VALUES)]);
    let work = Workdir::new(
        &moto.endpoint,
        &remote.file_url(),
        &[("payments", "payments-api", "^1.4", FILE)],
    );
    expect(
        &work.once(&[]),
        0,
        &["payments/dev: promoted 1.4.2 -> 1.4.3"],
    );

    let clones: Vec<_> = std::fs::read_dir(work.dir.path().join("checkout"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        clones.len(),
        1,
        "one clone per remote and branch, no leftovers: {clones:?}"
    );
    std::fs::remove_file(clones[0].join("HEAD")).unwrap();
    std::fs::write(clones[0].join("config"), "not a git config [").unwrap();

    moto.seed("payments-api", &[("1.4.4", PUSHED + 60)]);
    let out = work.once(&[]);
    expect(&out, 0, &["payments/dev: promoted 1.4.3 -> 1.4.4"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cloning again"),
        "{}",
        show(&out)
    );
    assert_eq!(
        remote.subjects(),
        [
            "payments: dev 1.4.3 -> 1.4.4",
            "payments: dev 1.4.2 -> 1.4.3",
            "seed"
        ]
    );
}

/// Each `format` writes its shape, reads the current tag back out of it
/// for the never-downgrade guard, and follows a re-pushed tag's digest
/// where the value pins one.
#[test]
fn formats_write_tag_digest_image_and_template() {
    let moto = Moto::start();
    let seeded = moto.seed("payments-api", &[("1.4.2", PUSHED), ("1.4.3", PUSHED)]);
    let digest = moto.digest(&seeded, "1.4.3");
    let host = format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com");
    let old = moto.digest(&seeded, "1.4.2");
    let files = [
        ("pinned.yaml", format!("image: \"1.4.2@{old}\"\n")),
        (
            "ref.yaml",
            "spec:\n  image: ghcr.io/acme/payments:1.4.2  # mirrored\n".to_string(),
        ),
        ("tpl.yaml", format!("image: {host}/payments-api:v1.4.2\n")),
        ("digest.yaml", format!("digest: {old}\n")),
        (
            "pinnedref.yaml",
            format!("image: reg.io/acme/payments:1.4.2@{old}\n"),
        ),
    ];
    let remote = GitRemote::new(
        &files
            .iter()
            .map(|(p, t)| (*p, t.as_str()))
            .collect::<Vec<_>>(),
    );
    let work = Workdir::new(
        &moto.endpoint,
        &remote.file_url(),
        &[("payments", "payments-api", "^1.4", "pinned.yaml")],
    );
    let mut text = std::fs::read_to_string(&work.config).unwrap().replace(
        "key = \"image.tag\"\n",
        "key = \"image\"\nformat = \"tag@digest\"\n",
    );
    for (env, file, key, format) in [
        ("staging", "ref.yaml", "spec.image", "image"),
        (
            "prod",
            "tpl.yaml",
            "image",
            "{registry}/{repository}:v{tag}",
        ),
        ("qa", "digest.yaml", "digest", "digest"),
        ("canary", "pinnedref.yaml", "image", "image"),
    ] {
        text.push_str(&format!("\n[[apps.targets]]\nenv = \"{env}\"\nfile = \"{file}\"\nkey = \"{key}\"\nformat = \"{format}\"\n"));
    }
    std::fs::write(&work.config, text).unwrap();

    expect(
        &work.once(&[]),
        0,
        &[
            "payments/dev: promoted 1.4.2 -> 1.4.3",
            "payments/staging: promoted 1.4.2 -> 1.4.3",
            "payments/prod: promoted 1.4.2 -> 1.4.3",
            "payments/qa: promoted 1.4.2 -> 1.4.3",
        ],
    );
    assert_eq!(
        remote.show("pinned.yaml"),
        format!("image: \"1.4.3@{digest}\"\n")
    );
    assert_eq!(
        remote.show("ref.yaml"),
        "spec:\n  image: ghcr.io/acme/payments:1.4.3  # mirrored\n"
    );
    assert_eq!(
        remote.show("tpl.yaml"),
        format!("image: {host}/payments-api:v1.4.3\n")
    );
    assert_eq!(remote.show("digest.yaml"), format!("digest: {digest}\n"));
    assert_eq!(
        remote.show("pinnedref.yaml"),
        format!("image: reg.io/acme/payments:1.4.3@{digest}\n")
    );

    // CI pushes 1.4.3 again: a new image under the same tag. The pinned
    // formats follow it; the tag-only ones have nothing to change.
    let repushed = moto.seed("payments-api", &[("1.4.3", PUSHED + 60)]);
    let new_digest = moto.digest(&repushed, "1.4.3");
    assert_ne!(new_digest, digest);
    expect(
        &work.once(&[]),
        0,
        &[
            "payments/dev: promoted 1.4.3 -> 1.4.3",
            // The tag, whatever the format wraps it in (issue 13, item 4).
            "payments/staging: up to date at 1.4.3",
            "payments/qa: promoted 1.4.3 -> 1.4.3",
        ],
    );
    assert_eq!(
        remote.show("pinned.yaml"),
        format!("image: \"1.4.3@{new_digest}\"\n")
    );
    assert_eq!(
        remote.show("digest.yaml"),
        format!("digest: {new_digest}\n")
    );
}

/// `kind = "kustomize"` targets: an existing `images:` entry gets its
/// newTag replaced; a missing entry is added in the file's own style.
#[test]
fn kustomize_targets_update_or_add_the_images_entry() {
    let moto = Moto::start();
    moto.seed("payments-api", &[("1.4.2", PUSHED), ("1.4.3", PUSHED)]);
    moto.seed("ledger", &[("2.0.0", PUSHED)]);
    let kustomization = "\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base
images:
  - name: payments-api  # the API
    newName: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/payments-api
    newTag: 1.4.2
";
    let remote = GitRemote::new(&[("overlays/dev/kustomization.yaml", kustomization)]);
    let work = Workdir::new(
        &moto.endpoint,
        &remote.file_url(),
        &[
            (
                "payments",
                "payments-api",
                "^1.4",
                "overlays/dev/kustomization.yaml",
            ),
            ("ledger", "ledger", "^2", "overlays/dev/kustomization.yaml"),
        ],
    );
    let text = std::fs::read_to_string(&work.config).unwrap().replace(
        "key = \"image.tag\"",
        "kind = \"kustomize\"\nimage = \"IMAGE\"",
    );
    // Each app's target names its own entry.
    let text = text
        .replacen("image = \"IMAGE\"", "image = \"payments-api\"", 1)
        .replacen("image = \"IMAGE\"", "image = \"ledger\"", 1);
    std::fs::write(&work.config, text).unwrap();

    expect(
        &work.once(&[]),
        0,
        &[
            "payments/dev: promoted 1.4.2 -> 1.4.3",
            "ledger/dev: promoted (none) -> 2.0.0",
        ],
    );
    assert_eq!(
        remote.show("overlays/dev/kustomization.yaml"),
        format!(
            "{}  - name: ledger\n    newTag: 2.0.0\n",
            kustomization.replace("newTag: 1.4.2", "newTag: 1.4.3")
        )
    );
    expect(
        &work.once(&[]),
        0,
        &[
            "payments/dev: up to date at 1.4.3",
            "ledger/dev: up to date at 2.0.0",
        ],
    );
}

/// `tagwatch demo --dir D` (issue 13, first contact): it says what it is
/// doing before it does it, shows prod's pull-request path against its
/// in-process GitHub endpoint (opened once, rebuilt for the newer tag),
/// keeps D and says so, and ends with where to go next.
#[test]
fn demo_opens_a_pull_request_and_keeps_its_dir() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("demo");
    let out = tagwatch_command()
        .args(["demo", "--dir", dir.to_str().unwrap()])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("tagwatch demo: starting "),
        "the first line should say what is coming:\n{stdout}"
    );
    for expected in [
        "payments/prod: proposed 1.4.1 -> 1.4.2 (http://127.0.0.1:",
        "/acme/gitops/pull/1)",
        "#1 (open) payments: promote prod to 1.4.2",
        "#1 (open, updated once) payments: promote prod to 1.4.3",
        "tagwatch/payments/prod -> main",
        "| payments | prod | `envs/prod/payments/values.yaml` | `1.4.1` | `1.4.3` |",
        &format!("The demo's files are kept in {}", dir.display()),
        "== Where to go next",
        "docs/promotion.md",
        "manifests/, Dockerfile",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    assert!(
        !stdout.contains("pull/2"),
        "one pull request, not two:\n{stdout}"
    );
    assert!(
        stdout
            .trim_end()
            .lines()
            .last()
            .unwrap()
            .contains("tagwatch policy test"),
        "it should end with where to go next:\n{stdout}"
    );
    // The directory is kept: its config still checks, and the remote holds
    // prod's proposal branch while main keeps prod at 1.4.1.
    let config = dir.join("tagwatch.toml");
    let out = tagwatch(&["check", "--config", config.to_str().unwrap()], &dir);
    expect(&out, 0, &["ok: 2 apps, 3 targets"]);
    let remote = dir.join("gitops.git");
    assert_eq!(
        git(
            &remote,
            &["log", "--format=%s", "tagwatch/payments/prod", "-1"]
        )
        .trim(),
        "payments: prod 1.4.1 -> 1.4.3"
    );
    assert!(
        git(&remote, &["show", "main:envs/prod/payments/values.yaml"]).contains("tag: 1.4.1 "),
        "main's prod must wait for the merge"
    );
    // A second run into the same directory is refused, not mixed in.
    let out = tagwatch_command()
        .args(["demo", "--dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not empty"),
        "{}",
        show(&out)
    );
}

/// Issue 13: `check` said "1 apps, 1 targets, 1 repositories".
#[test]
fn check_says_one_app_not_one_apps() {
    let work = Workdir::new(
        "http://127.0.0.1:9",
        "file:///nonexistent",
        &[("payments", "payments-api", "^1", "values.yaml")],
    );
    let out = tagwatch(
        &["check", "--config", work.config.to_str().unwrap()],
        work.dir.path(),
    );
    expect(
        &out,
        0,
        &["ok: 1 app, 1 target, 1 repository (interval 2m, branch main)"],
    );
}

/// Issue 13, first contact: with no AWS credentials at all, each target's
/// failure was the SDK's six-line account of every provider it tried. It
/// is one line saying what to set.
#[test]
fn no_aws_credentials_is_one_short_line_not_an_sdk_dump() {
    let remote = GitRemote::new(&[
        ("values.yaml", "image:\n  tag: 1.4.2\n"),
        ("other.yaml", "image:\n  tag: 0.1.0\n"),
    ]);
    // Nothing answers here; the request is never signed, so never sent.
    let work = Workdir::new(
        "http://127.0.0.1:9",
        &remote.file_url(),
        &[
            ("payments", "payments-api", "^1.4", "values.yaml"),
            ("other", "other-api", "^0.1", "other.yaml"),
        ],
    );
    let out = tagwatch_command()
        .args(["once", "--config", work.config.to_str().unwrap()])
        .args(["--log-format", "json"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
        .env_remove("AWS_ROLE_ARN")
        .env_remove("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        .env_remove("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        .current_dir(work.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "one line per target:\n{}", show(&out));
    for (line, name, repository) in [
        (lines[0], "payments/dev", "payments-api"),
        (lines[1], "other/dev", "other-api"),
    ] {
        assert_eq!(
            line,
            format!(
                "{name}: failed (registry): repository \"{repository}\": no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile with AWS_PROFILE, or IRSA on EKS; against a local endpoint any values will do)"
            ),
            "{}",
            show(&out)
        );
    }
    // The logs too: every line is a JSON object, none the SDK's provider list.
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in stderr.lines() {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not one JSON line: {line:?}\n{stderr}"
        );
        assert!(
            !line.contains("Ec2InstanceMetadata") && !line.contains("Attempted"),
            "{stderr}"
        );
    }
}
