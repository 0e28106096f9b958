//! Issue 20: `--shard I/N` through the real binary.
//!
//! - `check --shard` names each app in exactly one shard, keeps a
//!   pull-request group that spans repositories whole, and refuses bad
//!   values (and an `auto/N` pod name without an ordinal below N) with 64;
//!   `TAGWATCH_SHARD` and `auto/N` from `HOSTNAME` / `POD_NAME` work.
//! - `once --shard` against moto lists only the shard's repositories and
//!   reports only its targets; the shards' runs together promote every
//!   app once.
//! - `run --shard` says which shard it is on `/status`, `/` and in the
//!   metrics (`tagwatch_shard_info`, `tagwatch_shard_apps`,
//!   `tagwatch_shard_repositories`).
//!
//! The four-shard soak with a person pushing is in tests/concurrency.rs;
//! the reduced fleet split over shards in tests/fleet.rs.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::*;

const APPS: usize = 12;

fn names() -> Vec<String> {
    (0..APPS).map(|i| format!("svc{i:02}")).collect()
}

/// `svc00` … `svc11`, each on its own repository; with `group`, the prod
/// targets of svc00 and svc01 form the pull-request group "platform".
fn write_config(dir: &std::path::Path, endpoint: &str, git_url: &str, group: bool) -> String {
    let apps: Vec<(String, String)> = names()
        .into_iter()
        .map(|n| (n.clone(), format!("{n}.yaml")))
        .collect();
    let refs: Vec<(&str, &str, &str, &str)> = apps
        .iter()
        .map(|(n, f)| (n.as_str(), n.as_str(), ">=1", f.as_str()))
        .collect();
    std::fs::create_dir_all(dir.join("checkout")).unwrap();
    let mut text = config(endpoint, git_url, &dir.join("checkout"), &refs);
    if group {
        for app in ["svc00", "svc01"] {
            text = text.replace(
                &format!("file = \"{app}.yaml\"\nkey = \"image.tag\"\n"),
                &format!(
                    "file = \"{app}.yaml\"\nkey = \"image.tag\"\n\n[[apps.targets]]\nenv = \"prod\"\n\
                     file = \"prod/{app}.yaml\"\nkey = \"image.tag\"\nupdate = \"pull-request\"\n\
                     group = \"platform\"\n"
                ),
            );
        }
        text.push_str(
            "\n[forge]\nkind = \"github\"\nrepository = \"acme/gitops\"\ntoken_file = \"forge-token\"\n",
        );
    }
    let path = dir.join("tagwatch.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// The apps `check --shard I/N` prints, and the groups it says it kept.
fn owned(config: &str, shard: &str, env: &[(&str, &str)]) -> (Vec<String>, Vec<String>) {
    let out = tagwatch_command()
        .args(["check", "--config", config, "--shard", shard])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut lines = text.lines();
    assert!(lines.next().unwrap().contains(": ok: "), "{text}");
    let head = lines.next().unwrap();
    assert!(head.starts_with(&format!("shard {shard}: ")), "{text}");
    let (mut apps, mut groups) = (Vec::new(), Vec::new());
    for l in lines {
        if l.trim_start().starts_with("group ") {
            groups.push(l.trim().to_string());
        } else {
            apps.push(l.trim().to_string());
        }
    }
    (apps, groups)
}

#[test]
fn check_shard_names_every_app_in_exactly_one_shard() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:9", "file:///nowhere", false);
    for n in [1, 2, 3, 5] {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for i in 0..n {
            let (apps, _) = owned(&config, &format!("{i}/{n}"), &[]);
            for app in apps {
                assert!(
                    seen.insert(app.clone(), i).is_none(),
                    "{app} twice at N={n}"
                );
            }
        }
        assert_eq!(
            seen.keys().cloned().collect::<Vec<_>>(),
            names(),
            "N={n}: every app"
        );
    }
    // The same assignment from the environment and from the pod's name.
    let by_flag = owned(&config, "1/3", &[]);
    let by_env = tagwatch_command()
        .args(["check", "--config", &config])
        .env("TAGWATCH_SHARD", "1/3")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&by_env.stdout).to_string();
    assert!(text.contains("shard 1/3: "), "{}", show(&by_env));
    for app in &by_flag.0 {
        assert!(text.contains(&format!("  {app}\n")), "{text}");
    }
    let auto = tagwatch_command()
        .args(["check", "--config", &config, "--shard", "auto/3"])
        .env("HOSTNAME", "tagwatch-1")
        .env_remove("POD_NAME")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&auto.stdout), text);
    let pod = tagwatch_command()
        .args(["check", "--config", &config, "--shard", "auto/3"])
        .env("HOSTNAME", "somewhere-else")
        .env("POD_NAME", "tagwatch-1")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&pod.stdout), text);
}

#[test]
fn bad_shard_values_exit_64_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:9", "file:///nowhere", false);
    for (args, env, says) in [
        (vec!["--shard", "4/4"], vec![], "I must be below N"),
        (vec!["--shard", "0/0"], vec![], "N must be between 1 and"),
        (vec!["--shard", "two/4"], vec![], "is not I/N or auto/N"),
        (
            vec![],
            vec![("TAGWATCH_SHARD", "1")],
            "is not I/N or auto/N",
        ),
        (
            vec!["--shard", "auto/4"],
            vec![("HOSTNAME", "tagwatch-4")],
            "does not end in -ORDINAL below 4",
        ),
        (
            vec!["--shard", "auto/4"],
            vec![("HOSTNAME", "tagwatch-7f9c-abcde")],
            "does not end in -ORDINAL below 4",
        ),
    ] {
        for command in ["check", "once", "run"] {
            let out = tagwatch_command()
                .args([command, "--config", &config])
                .args(&args)
                .env_remove("POD_NAME")
                .envs(env.iter().copied())
                .output()
                .unwrap();
            assert_eq!(
                out.status.code(),
                Some(64),
                "{command} {args:?}: {}",
                show(&out)
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains(says), "{command} {args:?}: {stderr}");
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
    }
}

/// A pull-request group is one request, which one process must build: its
/// apps stay on one shard even when their repositories hash apart, and
/// `check --shard` says so.
#[test]
fn a_group_spanning_repositories_is_kept_on_one_shard() {
    let dir = tempfile::tempdir().unwrap();
    let plain = write_config(dir.path(), "http://127.0.0.1:9", "file:///nowhere", false);
    let shard_of = |config: &str, n: usize| -> BTreeMap<String, usize> {
        (0..n)
            .flat_map(|i| {
                let (apps, _) = owned(config, &format!("{i}/{n}"), &[]);
                apps.into_iter().map(move |a| (a, i))
            })
            .collect()
    };
    // Without the group, svc00 and svc01 fall apart at some N (the test
    // would prove nothing otherwise).
    let n = (2..8)
        .find(|n| {
            let s = shard_of(&plain, *n);
            s["svc00"] != s["svc01"]
        })
        .expect("svc00 and svc01 hash apart at some N below 8");
    let grouped_dir = tempfile::tempdir().unwrap();
    let grouped = write_config(
        grouped_dir.path(),
        "http://127.0.0.1:9",
        "file:///nowhere",
        true,
    );
    let s = shard_of(&grouped, n);
    assert_eq!(s["svc00"], s["svc01"], "the group was split at N={n}");
    let (_, groups) = owned(&grouped, &format!("{}/{n}", s["svc00"]), &[]);
    assert_eq!(
        groups,
        ["group \"platform\" spans repositories; its apps stay together here: svc00, svc01"]
    );
}

/// Three `once --shard I/3` against moto, one after the other: each lists
/// only its own repositories and reports only its own targets; together
/// they promote every app exactly once, each shard with changes in one push.
#[test]
fn once_per_shard_lists_only_its_repositories_and_together_promotes_every_app() {
    let moto = Moto::start();
    let mut files: Vec<(String, String)> = Vec::new();
    for app in names() {
        moto.seed(&app, &[("1.0.0", 1_700_000_000), ("1.1.0", 1_700_000_100)]);
        files.push((format!("{app}.yaml"), "image:\n  tag: 1.0.0\n".into()));
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let remote = GitRemote::new(&refs);
    // Each push the server accepts leaves one reflog line.
    git(
        &remote.bare(),
        &["config", "core.logAllRefUpdates", "always"],
    );
    let server = GitDaemon::start(remote.dir.path());
    let url = server.url("remote.git");
    let pushes = || {
        std::fs::read_to_string(remote.bare().join("logs/refs/heads/main"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    let mut promoted: BTreeSet<String> = BTreeSet::new();
    let mut listed_by: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &moto.endpoint, &url, false);
        let (apps, _) = owned(&config, &format!("{i}/3"), &[]);
        http(&moto.endpoint, "DELETE", "/_tagwatch/calls", "");
        let pushes_before = pushes();
        let out = tagwatch(
            &["once", "--config", &config, "--shard", &format!("{i}/3")],
            dir.path(),
        );
        assert!(out.status.success(), "{}", show(&out));
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let reported: Vec<String> = stdout
            .lines()
            .map(|l| l.split('/').next().unwrap().to_string())
            .collect();
        assert_eq!(reported, apps, "shard {i} reports only its targets");
        for line in stdout.lines() {
            assert!(line.contains(": promoted 1.0.0 -> 1.1.0"), "{line}");
            assert!(promoted.insert(line.split('/').next().unwrap().to_string()));
        }
        let listed: BTreeSet<String> = moto
            .calls()
            .iter()
            .filter(|c| c["operation"] == "DescribeImages" && c["imageIds"].is_null())
            .map(|c| c["repositoryName"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            listed,
            apps.iter().cloned().collect::<BTreeSet<_>>(),
            "shard {i} lists exactly its own repositories"
        );
        for r in listed {
            assert!(listed_by.insert(r, i).is_none());
        }
        let pushes = pushes() - pushes_before;
        assert_eq!(pushes, usize::from(!apps.is_empty()), "shard {i}: one push");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("\"shard\":\"{i}/3\"")),
            "the log says which shard: {stderr}"
        );
    }
    assert_eq!(promoted.into_iter().collect::<Vec<_>>(), names());
    assert_eq!(listed_by.len(), APPS);
    assert_fsck_clean(&remote.bare());
}

/// `run --shard 1/3` says which shard it is: `/status` JSON and page, and
/// the metrics, with the counts of what it owns.
#[test]
fn run_shard_shows_on_status_and_in_the_metrics() {
    let moto = Moto::start();
    for app in names() {
        moto.seed(&app, &[("1.0.0", 1_700_000_000)]);
    }
    let files: Vec<(String, String)> = names()
        .into_iter()
        .map(|a| (format!("{a}.yaml"), "image:\n  tag: 1.0.0\n".to_string()))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let remote = GitRemote::new(&refs);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &moto.endpoint, &remote.file_url(), false);
    let (apps, _) = owned(&config, "1/3", &[]);
    let port = free_port();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    std::fs::write(&config, text).unwrap();
    let mut child = tagwatch_command()
        .args([
            "run",
            "--log-format",
            "json",
            "--config",
            &config,
            "--shard",
            "1/3",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let endpoint = format!("http://127.0.0.1:{port}");
    let (status, body) = http(&endpoint, "GET", "/status", "");
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let shard = &json["shard"];
    assert_eq!(
        (shard["index"].as_u64(), shard["count"].as_u64()),
        (Some(1), Some(3)),
        "{body}"
    );
    assert_eq!(shard["apps"].as_u64(), Some(apps.len() as u64));
    assert_eq!(shard["repositories"].as_u64(), Some(apps.len() as u64));
    assert_eq!(shard["total_apps"].as_u64(), Some(APPS as u64));
    let rows: Vec<&str> = json["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["app"].as_str().unwrap())
        .collect();
    assert_eq!(rows, apps, "/status shows only the shard's targets");
    let (_, page) = http(&endpoint, "GET", "/", "");
    assert!(
        page.contains(&format!("shard 1/3: {} of {APPS} apps", apps.len())),
        "{page}"
    );
    let (_, metrics) = http(&endpoint, "GET", "/metrics", "");
    assert_eq!(
        metric(
            &metrics,
            "tagwatch_shard_info",
            &[("shard", "1"), ("shards", "3")]
        ),
        1.0
    );
    assert_eq!(
        metric(&metrics, "tagwatch_shard_apps", &[("shard", "1")]),
        apps.len() as f64
    );
    assert_eq!(
        metric(&metrics, "tagwatch_shard_repositories", &[("shard", "1")]),
        apps.len() as f64
    );
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
