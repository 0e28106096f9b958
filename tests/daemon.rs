//! The long-running modes: `run` until a signal, `demo`, cross-account
//! reads through an assumed role, and the log formats.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

const FILE: &str = "values.yaml";
const VALUES: &str = "image:\n  tag: 1.0.0\n";

/// `run` promotes on its first tick, keeps polling, and exits 0 soon
/// after SIGTERM.
#[test]
fn run_promotes_and_stops_cleanly_on_sigterm() {
    let moto = Moto::start();
    moto.seed("app", &[("1.0.0", 1), ("1.1.0", 2)]);
    let remote = GitRemote::new(&[(FILE, VALUES)]);
    let work = tempfile::tempdir().unwrap();
    let cfg = work.path().join("tagwatch.toml");
    let text = config(
        &moto.endpoint,
        &remote.file_url(),
        &work.path().join("co"),
        &[("app", "app", "^1", FILE)],
    )
    .replace("interval = \"2m\"", "interval = \"1s\"");
    std::fs::write(&cfg, text).unwrap();

    let child = tagwatch_command()
        .args([
            "run",
            "--log-format",
            "json",
            "--config",
            cfg.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    remote.wait_for_commits(2, deadline, "no promotion within 30 s");
    assert_eq!(remote.subjects()[0], "app: dev 1.0.0 -> 1.1.0");
    // A later push is picked up by a later tick.
    moto.seed("app", &[("1.2.0", 3)]);
    remote.wait_for_commits(3, deadline, "second promotion missing");

    let stopped = Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stopped.elapsed() < Duration::from_secs(10),
        "took {:?} to stop",
        stopped.elapsed()
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    // JSON logs: every line is an object with a level and a message.
    for line in stderr.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["message"].is_string(), "{line}");
    }
    assert!(stderr.contains("\"message\":\"shut down\""), "{stderr}");
    assert_eq!(
        remote.subjects().len(),
        3,
        "no duplicate promotion across ticks"
    );
}

/// Cross-account: the images live in another account's registry, reached
/// through an assumed role (moto's STS hands out that account's
/// credentials). Without the role the same repository does not exist.
#[test]
fn assume_role_reads_another_accounts_registry() {
    let moto = Moto::start();
    let body = serde_json::json!({
        "region": REGION, "repositoryName": "shared", "registryId": "111111111111",
        "images": [{"tag": "1.0.0", "pushedAt": 1}, {"tag": "1.3.0", "pushedAt": 2}],
    });
    let (status, text) = http(&moto.endpoint, "POST", "/_tagwatch/seed", &body.to_string());
    assert_eq!(status, 200, "{text}");
    let remote = GitRemote::new(&[(FILE, VALUES)]);
    let work = tempfile::tempdir().unwrap();
    let cfg = work.path().join("tagwatch.toml");
    let base = config(
        &moto.endpoint,
        &remote.file_url(),
        &work.path().join("co"),
        &[("shared", "shared", "^1", FILE)],
    );

    std::fs::write(&cfg, &base).unwrap();
    let out = tagwatch(&["once", "--config", cfg.to_str().unwrap()], work.path());
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("shared/dev: failed (registry)"),
        "{}",
        show(&out)
    );

    let with_role = base.replace(
        "[aws]\n",
        "[aws]\nassume_role_arn = \"arn:aws:iam::111111111111:role/tagwatch-ecr-read\"\nregistry_id = \"111111111111\"\n",
    );
    std::fs::write(&cfg, with_role).unwrap();
    // endpoint_url is ECR's only; STS is pointed at moto the way the SDK
    // documents for any service.
    let out = tagwatch_command()
        .args(["once", "--config", cfg.to_str().unwrap()])
        .env("AWS_ENDPOINT_URL_STS", &moto.endpoint)
        .current_dir(work.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(remote.subjects()[0], "shared: dev 1.0.0 -> 1.3.0");
    let message = git(&remote.bare(), &["log", "-1", "--format=%B", "main"]);
    assert!(
        message.contains("Tagwatch-Image: 111111111111.dkr.ecr.eu-west-1.amazonaws.com/shared"),
        "{message}"
    );
    // The configured registry id reaches ECR, so a role that can read
    // several accounts reads the one the config names.
    let with_id: Vec<_> = moto
        .calls()
        .into_iter()
        .filter(|c| c["registryId"] == "111111111111")
        .collect();
    assert!(!with_id.is_empty(), "{:?}", moto.calls());
}

/// The README's main-job command: the demo runs offline and shows each
/// promotion as a commit.
#[test]
fn demo_promotes_and_prints_commits() {
    let dir = tempfile::tempdir().unwrap();
    // No AWS credentials at all: the demo must not need them.
    let out = tagwatch_command()
        .args(["demo", "--dir", dir.path().to_str().unwrap()])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "payments/dev: promoted 1.4.1 -> 1.4.2",
        "payments/dev: would promote 1.4.2 -> 1.4.3",
        "payments/dev: promoted 1.4.2 -> 1.4.3",
        "ledger/dev: promoted 1.9 -> 1.10",
        "+  tag: \"1.10\"",
        "Tagwatch-To: 1.4.3",
        "payments/dev: up to date at 1.4.3",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    // The demo's own remote holds exactly the three promotions and the seed.
    let subjects = git(
        &dir.path().join("gitops.git"),
        &["log", "--format=%s", "main"],
    );
    assert_eq!(
        subjects.lines().collect::<Vec<_>>(),
        [
            "ledger: dev 1.9 -> 1.10",
            "payments: dev 1.4.2 -> 1.4.3",
            "payments: dev 1.4.1 -> 1.4.2",
            "Add dev values"
        ]
    );
}

/// A clone damaged under a running daemon (a full disk, a bad volume) is
/// discarded and cloned again; the daemon keeps promoting without a restart.
#[test]
fn a_clone_damaged_while_running_is_cloned_again() {
    let moto = Moto::start();
    moto.seed("app", &[("1.0.0", 1), ("1.1.0", 2)]);
    let remote = GitRemote::new(&[(FILE, VALUES)]);
    let work = Workdir::new(
        &moto.endpoint,
        &remote.file_url(),
        &[("app", "app", "^1", FILE)],
    );
    let text = std::fs::read_to_string(&work.config)
        .unwrap()
        .replace("interval = \"2m\"", "interval = \"1s\"");
    std::fs::write(&work.config, text).unwrap();
    let child = tagwatch_command()
        .args([
            "run",
            "--log-format",
            "text",
            "--config",
            work.config.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    remote.wait_for_commits(2, deadline, "no first promotion");
    let clone = std::fs::read_dir(work.dir.path().join("checkout"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::remove_dir_all(clone.join("objects")).unwrap();
    moto.seed("app", &[("1.2.0", 3)]);
    while remote.subjects().len() < 3 {
        if Instant::now() > deadline {
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "no promotion after the damage:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(remote.subjects()[0], "app: dev 1.1.0 -> 1.2.0");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cloning again"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
