//! How a push ends, through the real binary against `git daemon`, whose
//! receive-pack runs the bare repository's hooks: a branch that moves under
//! every push (a pre-receive hook that commits to it first, so
//! receive-pack's compare-and-swap fails), a hook that refuses the push, and
//! a token in the remote's URL, which must never be printed. The hooks count
//! the pushes that reach the server.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::*;

const VALUES: &str = "image:\n  tag: 1.0.0\n";

/// A remote with `values.yaml` at 1.0.0, served by `git daemon`, and moto
/// with 1.0.0 and 1.1.0: every cycle has a promotion to push.
struct Scene {
    moto: Moto,
    remote: GitRemote,
    server: GitDaemon,
}

impl Scene {
    fn new() -> Scene {
        let moto = Moto::start();
        moto.seed("app", &[("1.0.0", 1), ("1.1.0", 2)]);
        let remote = GitRemote::new(&[("values.yaml", VALUES)]);
        let server = GitDaemon::start(remote.dir.path());
        Scene {
            moto,
            remote,
            server,
        }
    }

    /// Installs `pre-receive`: it appends a line to the count file, then
    /// runs `body` (sh, with the count in `$n`).
    fn pre_receive(&self, body: &str) {
        let hook = self.remote.bare().join("hooks/pre-receive");
        let count = self.count_file();
        std::fs::write(
            &hook,
            format!(
                "#!/bin/sh\necho push >> '{}'\nn=$(wc -l < '{}')\n{body}\n",
                count.display(),
                count.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn count_file(&self) -> PathBuf {
        self.remote.dir.path().join("pushes")
    }

    /// How many pushes reached the server's hook.
    fn pushes(&self) -> usize {
        std::fs::read_to_string(self.count_file())
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    fn workdir(&self, push_attempts: u32) -> Workdir {
        let work = Workdir::new(
            &self.moto.endpoint,
            &self.server.url("remote.git"),
            &[("app", "app", "^1", "values.yaml")],
        );
        work.edit_config(
            "branch = \"main\"\n",
            &format!("branch = \"main\"\npush_attempts = {push_attempts}\n"),
        );
        work
    }
}

/// A pre-receive body that commits to main before receive-pack moves it,
/// for the first `races` pushes (all of them when `None`): receive-pack's
/// compare-and-swap then finds main moved and refuses ("failed to update
/// ref"), exactly as when a person pushes first. The hook runs in git's
/// object quarantine, so it writes outside it.
fn race(races: Option<usize>) -> String {
    let limit = races.map_or(String::new(), |n| format!("[ \"$n\" -gt {n} ] && exit 0\n"));
    format!(
        "{limit}unset GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES\n\
         while read old new ref; do\n\
           [ \"$ref\" = refs/heads/main ] || continue\n\
           c=$(echo \"a person's commit $n\" | GIT_AUTHOR_NAME=Person GIT_AUTHOR_EMAIL=p@acme.dev \
               GIT_COMMITTER_NAME=Person GIT_COMMITTER_EMAIL=p@acme.dev git commit-tree \"$old^{{tree}}\" -p \"$old\")\n\
           git update-ref refs/heads/main \"$c\" \"$old\" || exit 1\n\
         done\n\
         exit 0"
    )
}

/// `push_attempts = 2` and a branch that moves under every push: the cycle
/// gives up after exactly two pushes and `once` exits 1, naming the lost
/// race; the person's commits are all there and nothing of tagwatch's.
#[test]
fn running_out_of_push_attempts_fails_after_exactly_that_many_pushes() {
    let scene = Scene::new();
    scene.pre_receive(&race(None));
    let work = scene.workdir(2);

    let out = work.once(&[]);
    let all = show(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert_eq!(scene.pushes(), 2, "pushes that reached the server: {all}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("app/dev: failed (git)") && stdout.contains("rejected"),
        "{all}"
    );
    assert!(!all.contains("panicked"), "{all}");
    assert_eq!(
        scene.remote.subjects(),
        ["a person's commit 2", "a person's commit 1", "seed"]
    );
}

/// The branch moves under the first two pushes and then stands still: the
/// third lands, and `tagwatch_git_push_conflicts_total` is exactly 2.
#[test]
fn push_conflicts_are_counted_by_value() {
    let scene = Scene::new();
    scene.pre_receive(&race(Some(2)));
    let work = scene.workdir(5);
    let (daemon, metrics) = one_cycle(&work, "cycle finished");
    assert_eq!(scene.pushes(), 3, "{}", daemon.log_text());
    assert_eq!(
        metric(&metrics, "tagwatch_git_push_conflicts_total"),
        Some(2.0),
        "tagwatch_git_push_conflicts_total"
    );
    assert_eq!(
        scene.remote.subjects(),
        [
            "app: dev 1.0.0 -> 1.1.0",
            "a person's commit 2",
            "a person's commit 1",
            "seed"
        ]
    );
}

/// Every lost race is a conflict, the last one too: with `push_attempts =
/// 2` and a branch that always moves, the counter says 2 (the cycle
/// before src/cycle counted only the conflicts it retried: 1 here).
#[test]
fn every_push_conflict_is_counted_when_attempts_run_out() {
    let scene = Scene::new();
    scene.pre_receive(&race(None));
    let work = scene.workdir(2);
    let (daemon, metrics) = one_cycle(&work, "cycle finished with failures");
    assert_eq!(scene.pushes(), 2, "{}", daemon.log_text());
    assert_eq!(
        metric(&metrics, "tagwatch_git_push_conflicts_total"),
        Some(2.0),
        "tagwatch_git_push_conflicts_total"
    );
}

/// A hook (or branch protection) saying no would say no again: one push,
/// no retry, and the output says the server refused the update and why.
#[test]
fn a_hook_refusing_the_push_is_one_push_and_names_the_refusal() {
    let scene = Scene::new();
    scene.pre_receive("echo 'protected branch: pushes need a review' >&2\nexit 1");
    let work = scene.workdir(5);

    let out = work.once(&[]);
    let all = show(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert_eq!(scene.pushes(), 1, "pushes that reached the server: {all}");
    assert!(
        all.contains("the server refused the update: pre-receive hook declined"),
        "{all}"
    );
    assert_eq!(scene.remote.subjects(), ["seed"]);
}

/// A token in the remote's URL (`http://git:TOKEN@…`, with the server
/// checking it) through a whole successful cycle and an up-to-date one,
/// with text logs and JSON logs at debug level: no line the process
/// printed holds the token.
#[test]
fn a_token_in_the_url_is_never_printed() {
    const TOKEN: &str = "tw-url-token-8642";
    let moto = Moto::start();
    moto.seed("app", &[("1.0.0", 1), ("1.1.0", 2)]);
    let remote = GitRemote::new(&[("values.yaml", VALUES)]);
    git(&remote.bare(), &["config", "http.receivepack", "true"]);
    let server = GitHttp::start(remote.dir.path(), TOKEN);
    let url = server
        .url("remote.git")
        .replace("http://", &format!("http://git:{TOKEN}@"));
    let work = Workdir::new(&moto.endpoint, &url, &[("app", "app", "^1", "values.yaml")]);

    let mut printed = String::new();
    for (format, expected) in [
        ("text", "app/dev: promoted 1.0.0 -> 1.1.0"),
        ("json", "app/dev: up to date at 1.1.0"),
    ] {
        let out = tagwatch_command()
            .args(["--log-format", format, "once", "--config"])
            .arg(&work.config)
            .current_dir(work.dir.path())
            .env("RUST_LOG", "tagwatch=debug")
            .output()
            .expect("run tagwatch");
        expect(&out, 0, &[expected]);
        printed.push_str(&String::from_utf8_lossy(&out.stdout));
        printed.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(remote.subjects(), ["app: dev 1.0.0 -> 1.1.0", "seed"]);
    // The commands that print the remote itself, and history from the clone.
    for args in [&["check"][..], &["history"][..]] {
        let out = tagwatch_command()
            .args(args)
            .arg("--config")
            .arg(&work.config)
            .current_dir(work.dir.path())
            .env("RUST_LOG", "tagwatch=debug")
            .output()
            .expect("run tagwatch");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", show(&out));
        printed.push_str(&String::from_utf8_lossy(&out.stdout));
        printed.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    // The debug logs name the remote, redacted: a leak had every chance.
    assert!(printed.contains("http://git:***@127.0.0.1:"), "{printed}");
    let leaks: Vec<&str> = printed.lines().filter(|l| l.contains(TOKEN)).collect();
    assert!(leaks.is_empty(), "the token was printed: {leaks:#?}");
}

/// Starts `tagwatch run` on `work`'s config, waits for the first cycle to
/// end with `message`, and returns the daemon and its /metrics text.
fn one_cycle(work: &Workdir, message: &str) -> (Daemon, String) {
    let log = work.dir.path().join("daemon.log");
    let daemon = Daemon::start(&work.config, &log);
    let deadline = Instant::now() + Duration::from_secs(60);
    while daemon.count(message) == 0 {
        assert!(
            Instant::now() < deadline,
            "no {message:?}: {}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let addr =
        listen_addr(&log).unwrap_or_else(|| panic!("no listen address: {}", daemon.log_text()));
    let (status, metrics) = http(&format!("http://{addr}"), "GET", "/metrics", "");
    assert_eq!(status, 200, "{metrics}");
    (daemon, metrics)
}

/// The address `tagwatch run` says it serves /metrics on.
fn listen_addr(log: &Path) -> Option<String> {
    std::fs::read_to_string(log)
        .ok()?
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == "serving /metrics, /healthz, /readyz, /status")
        .and_then(|v| v["addr"].as_str().map(str::to_string))
}

/// The value of an unlabelled sample in Prometheus text.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}
