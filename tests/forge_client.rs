//! tagwatch's forge client through the real binary (`tagwatch once` with a
//! `update = "pull-request"` target), against the GitHub and GitLab fakes
//! (tests/support/forge/): what it refuses (a redirect, an oversized
//! answer), how far it retries, and what it asks of the forge. Each
//! scenario is one function over [`ForgeFake`]; `both!` runs it on each
//! forge, as `scenario::github` and `scenario::gitlab`.

#[path = "support/forge/mod.rs"]
mod forge;
mod support;

use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use forge::{Fault, ForgeFake, GitHubConfig, GitHubFake, GitLabConfig, GitLabFake, Match};
use support::*;

const TOKEN: &str = "forge-token-5678";

/// A fake forge of each kind, serving the remote's bare repository.
fn github(bare: &std::path::Path) -> GitHubFake {
    GitHubFake::start(
        GitHubConfig::new("acme", "gitops")
            .token(TOKEN)
            .git_dir(bare),
    )
}

fn gitlab(bare: &std::path::Path) -> GitLabFake {
    GitLabFake::start(
        GitLabConfig::new("acme/platform/gitops")
            .token(TOKEN)
            .user(7, "alice")
            .user(8, "bob")
            .git_dir(bare),
    )
}

/// Runs a scenario `fn(&dyn ForgeFake, &GitRemote)` on each forge.
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[test]
            fn github() {
                let remote = super::remote();
                let fake = super::github(&remote.bare());
                super::$name(&fake, &remote);
            }

            #[test]
            fn gitlab() {
                let remote = super::remote();
                let fake = super::gitlab(&remote.bare());
                super::$name(&fake, &remote);
            }
        }
    };
}

fn remote() -> GitRemote {
    GitRemote::new(&[
        ("dev.yaml", "image:\n  tag: 1.0.0\n"),
        ("prod.yaml", "image:\n  tag: 1.0.0\n"),
    ])
}

/// ECR with `app` at 1.0.0 and 1.1.0, and a config whose dev target
/// commits and whose prod target opens a request (`prod` and `forge` are
/// extra lines for the target and the `[forge]` section).
struct Scene {
    moto: Moto,
    work: Workdir,
}

fn scene(fake: &dyn ForgeFake, remote: &GitRemote, prod: &str, forge: &str) -> Scene {
    let moto = Moto::start();
    moto.seed("app", &[("1.0.0", 1), ("1.1.0", 2)]);
    let work = Workdir::new(
        &moto.endpoint,
        &remote.file_url(),
        &[("app", "app", ">=1.0.0", "dev.yaml")],
    );
    let text = std::fs::read_to_string(&work.config).unwrap();
    std::fs::write(
        &work.config,
        format!(
            "{text}\n[[apps.targets]]\nenv = \"prod\"\nfile = \"prod.yaml\"\nkey = \"image.tag\"\nupdate = \"pull-request\"\n{prod}{}",
            fake.section("forge-token", forge)
        ),
    )
    .unwrap();
    std::fs::write(work.dir.path().join("forge-token"), format!("{TOKEN}\n")).unwrap();
    Scene { moto, work }
}

impl Scene {
    /// `tagwatch once`, failed if it takes longer than `limit`.
    fn once_within(&self, limit: Duration) -> (Output, Duration) {
        let started = Instant::now();
        let out = output_within(
            tagwatch_command()
                .args(["once", "--config"])
                .arg(&self.work.config)
                .current_dir(self.work.dir.path()),
            limit,
        )
        .unwrap_or_else(|| panic!("tagwatch once still running after {limit:?}"));
        (out, started.elapsed())
    }

    /// [`Scene::once_within`], also returning the process's peak resident
    /// memory in KiB (`VmHWM`, read from /proc until it exits).
    fn once_measured(&self, limit: Duration) -> (Output, u64) {
        let mut child = tagwatch_command()
            .args(["once", "--config"])
            .arg(&self.work.config)
            .current_dir(self.work.dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn tagwatch once");
        let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                if let Some(mut pipe) = pipe {
                    let _ = pipe.read_to_end(&mut bytes);
                }
                bytes
            })
        };
        let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
        let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
        let status_file = format!("/proc/{}/status", child.id());
        let deadline = Instant::now() + limit;
        let mut peak = 0;
        let status = loop {
            if let Ok(text) = std::fs::read_to_string(&status_file)
                && let Some(kib) = text
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak = peak.max(kib);
            }
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("tagwatch once still running after {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let out = Output {
            status,
            stdout: stdout.join().unwrap(),
            stderr: stderr.join().unwrap(),
        };
        (out, peak)
    }
}

// ---------------------------------------------------------------------------
// Issue 13 item 11: no redirects with credentials
// ---------------------------------------------------------------------------

/// An `api_url` answering 307 to another host must not hand that host the
/// token (reqwest strips `Authorization` on such a redirect, but not
/// GitLab's `PRIVATE-TOKEN`): tagwatch follows no redirect, and the
/// target's error names where it was sent.
fn forge_token_does_not_follow_a_cross_host_redirect(fake: &dyn ForgeFake, remote: &GitRemote) {
    // The second listener: another fake, which logs every request with its
    // headers.
    let elsewhere = GitLabFake::start(GitLabConfig::new("thief/loot").token("unused"));
    let location = format!(
        "{}/projects/thief%2Floot/merge_requests",
        elsewhere.api_url()
    );
    let s = scene(fake, remote, "", "");
    fake.fail_next(
        Match::any(),
        100,
        Fault::Response {
            status: 307,
            headers: vec![("location".into(), location.clone())],
            body: String::new(),
        },
    );
    let (out, _) = s.once_within(Duration::from_secs(60));
    expect(&out, 1, &["app/dev: promoted 1.0.0 -> 1.1.0"]);
    let stolen = elsewhere.requests();
    for r in &stolen {
        assert!(
            !r.headers.iter().any(|(_, v)| v.contains(TOKEN)),
            "the token reached the other host: {} {} {:?}",
            r.method,
            r.path,
            r.headers
        );
    }
    assert!(
        stolen.is_empty(),
        "the redirect was followed: {:?}",
        stolen
            .iter()
            .map(|r| (&r.method, &r.path, &r.headers))
            .collect::<Vec<_>>()
    );
    let text = show(&out);
    assert!(
        text.contains(&format!(
            "app/prod: failed (forge): {} {}",
            fake.kind(),
            fake.repository()
        )) && text.contains(&format!("answered 307 redirecting to {location}"))
            && text.contains("does not follow redirects with credentials"),
        "{text}"
    );
    assert_eq!(fake.requests().len(), 1, "a redirect is not retried");
    assert!(!text.contains(TOKEN));
}
both!(forge_token_does_not_follow_a_cross_host_redirect);

// ---------------------------------------------------------------------------
// Issue 13 item 17: bounded reads
// ---------------------------------------------------------------------------

/// A 10 MB answer (with its length) and an endless one (without) both fail
/// the target with a clear error, and the endless one is abandoned after a
/// few MiB: the client never holds more than its cap.
fn an_oversized_forge_answer_fails_clearly_without_reading_it_all(
    fake: &dyn ForgeFake,
    remote: &GitRemote,
) {
    let s = scene(fake, remote, "", "");
    fake.fail_next(
        Match::any(),
        1,
        Fault::Response {
            status: 200,
            headers: Vec::new(),
            body: format!("[{}]", " ".repeat(10 << 20)),
        },
    );
    let (out, _) = s.once_within(Duration::from_secs(60));
    expect(&out, 1, &[]);
    assert!(
        show(&out).contains("the answer is larger than 4 MiB"),
        "{}",
        show(&out)
    );

    // The same run answered normally, for the memory it needs anyway.
    let (_, baseline) = s.once_measured(Duration::from_secs(60));

    let sent = Arc::new(AtomicUsize::new(0));
    fake.fail_next(Match::any(), 1, Fault::Endless { sent: sent.clone() });
    let started = Instant::now();
    let (out, peak) = s.once_measured(Duration::from_secs(60));
    let took = started.elapsed();
    expect(&out, 1, &[]);
    assert!(
        show(&out).contains("the answer is larger than 4 MiB"),
        "{}",
        show(&out)
    );
    // What the fake produced: the 4 MiB read plus what the socket buffers
    // held when the client hung up; never the 4 GiB on offer.
    let sent = sent.load(Ordering::Relaxed);
    assert!(sent < 32 << 20, "{sent} bytes streamed in {took:?}");
    // And the process: its peak within a few MiB of a normal run's.
    eprintln!("peak RSS: normal run {baseline} KiB, endless answer {peak} KiB");
    assert!(
        peak < baseline + (16 << 10),
        "peak RSS {peak} KiB against {baseline} KiB for a normal run"
    );
    // 1 oversized, the normal run's (the request opens), 1 endless.
    assert_eq!(
        fake.requests().iter().filter(|r| r.injected).count(),
        2,
        "an oversized answer is not retried"
    );
    drop(s.moto);
}
both!(an_oversized_forge_answer_fails_clearly_without_reading_it_all);

// ---------------------------------------------------------------------------
// Pull-request options, as the forge stored them
// ---------------------------------------------------------------------------

/// Labels, reviewers (a user and a team), assignees and auto-merge reach
/// the forge as its API documents them: GitHub `POST …/issues/N/labels`,
/// `…/issues/N/assignees`, `…/pulls/N/requested_reviewers` with
/// `reviewers` and `team_reviewers` (the team's slug), and the GraphQL
/// `enablePullRequestAutoMerge`; GitLab `labels`, `assignee_ids` and
/// `reviewer_ids` (user ids looked up by name) in the create, and
/// `PUT …/merge` with `merge_when_pipeline_succeeds`. GitLab has no team
/// reviewers: `acme/sre` is looked up as a user, found missing and
/// skipped. Option failures are only logged, so the fake's log must show
/// no 4xx.
fn pull_request_options_reach_the_forge(fake: &dyn ForgeFake, remote: &GitRemote) {
    let s = scene(
        fake,
        remote,
        "labels = [\"tagwatch\", \"prod\"]\nreviewers = [\"alice\", \"acme/sre\"]\nassignees = [\"bob\"]\nauto_merge = true\n",
        "",
    );
    let (out, _) = s.once_within(Duration::from_secs(60));
    expect(&out, 0, &["app/prod: proposed 1.0.0 -> 1.1.0 ("]);
    let prs = fake.prs();
    assert_eq!(prs.len(), 1, "{prs:#?}");
    let pr = &prs[0];
    assert!(pr.open && !pr.draft, "{pr:#?}");
    assert_eq!(pr.branch, "tagwatch/app/prod");
    assert_eq!(pr.labels, ["tagwatch", "prod"]);
    assert_eq!(pr.reviewers, ["alice"]);
    let teams: &[&str] = match fake.kind() {
        "github" => &["sre"],
        _ => &[],
    };
    assert_eq!(pr.teams, teams);
    assert_eq!(pr.assignees, ["bob"]);
    assert!(pr.auto_merge, "auto-merge was not enabled: {pr:#?}");
    let auto_merge_route = match fake.kind() {
        "github" => "graphql",
        _ => "mr.merge",
    };
    assert_eq!(fake.count(auto_merge_route), 1);
    fake.assert_no_client_errors();

    // The next cycle finds the request decorated and asks nothing again
    // that the forge would refuse.
    let (out, _) = s.once_within(Duration::from_secs(60));
    expect(&out, 0, &["app/prod: proposed 1.0.0 -> 1.1.0 ("]);
    assert_eq!((fake.prs().len(), fake.create_calls()), (1, 1));
    fake.assert_no_client_errors();
}
both!(pull_request_options_reach_the_forge);

/// `draft = true`: GitHub's `draft` in the create, GitLab's `Draft:` title
/// prefix; either way the forge holds a draft.
fn a_draft_request_opens_as_a_draft(fake: &dyn ForgeFake, remote: &GitRemote) {
    let s = scene(fake, remote, "draft = true\n", "labels = [\"tagwatch\"]\n");
    let (out, _) = s.once_within(Duration::from_secs(60));
    expect(&out, 0, &["app/prod: proposed 1.0.0 -> 1.1.0 ("]);
    let prs = fake.prs();
    assert_eq!(prs.len(), 1, "{prs:#?}");
    assert!(prs[0].draft, "{:#?}", prs[0]);
    assert_eq!(prs[0].labels, ["tagwatch"]);
    fake.assert_no_client_errors();
}
both!(a_draft_request_opens_as_a_draft);

// ---------------------------------------------------------------------------
// Adoption: "already exists" and the lost answer
// ---------------------------------------------------------------------------

/// Another writer opened the request between tagwatch's look and its
/// create (the look is made to miss it): GitHub answers 422 "already
/// exists", GitLab 409. tagwatch adopts the open request, decorates it and
/// opens no second one.
fn opening_adopts_the_request_another_writer_opened(fake: &dyn ForgeFake, remote: &GitRemote) {
    let s = scene(fake, remote, "", "labels = [\"tagwatch\"]\n");
    fake.seed("tagwatch/app/prod", "main", "someone else's promotion");
    fake.fail_next(
        Match::when(|r| r.route == "pulls.list" || r.route == "mr.list"),
        1,
        Fault::Response {
            status: 200,
            headers: Vec::new(),
            body: "[]".into(),
        },
    );
    let (out, _) = s.once_within(Duration::from_secs(60));
    expect(&out, 0, &["app/prod: proposed 1.0.0 -> 1.1.0 ("]);
    let creates: Vec<u16> = fake
        .requests()
        .iter()
        .filter(|r| r.route == fake.create_route())
        .map(|r| r.status)
        .collect();
    let refused = match fake.kind() {
        "github" => 422,
        _ => 409,
    };
    assert_eq!(creates, [refused], "one create, refused as a duplicate");
    let prs = fake.prs();
    assert_eq!(prs.len(), 1, "{prs:#?}");
    assert!(prs[0].open);
    assert_eq!(prs[0].labels, ["tagwatch"], "adopted but not decorated");
}
both!(opening_adopts_the_request_another_writer_opened);

/// The create reaches the forge (the request exists) but its answer is
/// lost. The client retries, meets "already exists" (GitLab's 409,
/// GitHub's 422), and adopts the request it made: one request, labelled.
fn a_lost_answer_to_the_create_leaves_one_labelled_request(
    fake: &dyn ForgeFake,
    remote: &GitRemote,
) {
    let s = scene(fake, remote, "", "labels = [\"tagwatch\"]\n");
    fake.fail_next(Match::route(fake.create_route()), 1, Fault::LoseAnswer);
    let (out, _) = s.once_within(Duration::from_secs(60));
    expect(&out, 0, &["app/prod: proposed 1.0.0 -> 1.1.0 ("]);
    let creates: Vec<(u16, bool)> = fake
        .requests()
        .iter()
        .filter(|r| r.route == fake.create_route())
        .map(|r| (r.status, r.injected))
        .collect();
    let refused = match fake.kind() {
        "github" => 422,
        _ => 409,
    };
    assert_eq!(
        creates,
        [(201, true), (refused, false)],
        "a create whose answer was lost, then its retry refused as a duplicate"
    );
    let prs = fake.prs();
    assert_eq!(prs.len(), 1, "{prs:#?}");
    assert!(prs[0].open);
    assert_eq!(prs[0].title, "app: promote prod to 1.1.0");
    assert_eq!(prs[0].labels, ["tagwatch"]);

    let (out, _) = s.once_within(Duration::from_secs(60));
    expect(&out, 0, &["app/prod: proposed 1.0.0 -> 1.1.0 ("]);
    assert_eq!(fake.prs().len(), 1);
}
both!(a_lost_answer_to_the_create_leaves_one_labelled_request);

// ---------------------------------------------------------------------------
// Retry limits
// ---------------------------------------------------------------------------

/// Ten 500s in a row: exactly 4 attempts (the first and three retries),
/// then the target fails naming the status.
fn ten_server_errors_give_exactly_four_attempts(fake: &dyn ForgeFake, remote: &GitRemote) {
    let s = scene(fake, remote, "", "");
    fake.fail_next(Match::any(), 10, Fault::Status(500));
    let (out, _) = s.once_within(Duration::from_secs(60));
    expect(&out, 1, &["app/dev: promoted 1.0.0 -> 1.1.0"]);
    let text = show(&out);
    assert!(
        text.contains(&format!(
            "app/prod: failed (forge): {} {}",
            fake.kind(),
            fake.repository()
        )) && text.contains("500 Internal Server Error"),
        "{text}"
    );
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500; 4], "attempts");
}
both!(ten_server_errors_give_exactly_four_attempts);

/// `retry-after: 120` is longer than a cycle waits (30 s): the call fails
/// at once, naming the wait, instead of sleeping two minutes or retrying.
fn a_long_retry_after_fails_promptly_naming_the_wait(fake: &dyn ForgeFake, remote: &GitRemote) {
    let s = scene(fake, remote, "", "");
    fake.fail_next(
        Match::any(),
        10,
        Fault::SecondaryRateLimit {
            status: 429,
            retry_after_secs: 120,
        },
    );
    let (out, took) = s.once_within(Duration::from_secs(60));
    expect(&out, 1, &["app/dev: promoted 1.0.0 -> 1.1.0"]);
    assert!(
        show(&out).contains("rate limited for another 120s"),
        "{}",
        show(&out)
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_eq!(fake.requests().len(), 1, "a long wait is not retried");
}
both!(a_long_retry_after_fails_promptly_naming_the_wait);

// ---------------------------------------------------------------------------
// tagwatch_pull_requests_total
// ---------------------------------------------------------------------------

/// `tagwatch_pull_requests_total{action}` by value from a running daemon:
/// 1 opened; a newer tag, 1 updated; prod set by hand on main, 1 closed;
/// and nothing counted twice by the idle cycles in between.
fn pull_request_actions_are_counted_by_value(fake: &dyn ForgeFake, remote: &GitRemote) {
    let s = scene(fake, remote, "", "labels = [\"tagwatch\"]\n");
    let port = free_port();
    s.work.edit_config("interval = \"2m\"", "interval = \"1s\"");
    s.work.edit_config(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    let mut daemon = Daemon::start(&s.work.config, &s.work.dir.path().join("daemon.log"));
    let counts = || {
        let (status, text) = http(&format!("http://127.0.0.1:{port}"), "GET", "/metrics", "");
        assert_eq!(status, 200, "{text}");
        ["opened", "updated", "closed"]
            .map(|a| metric(&text, "tagwatch_pull_requests_total", &[("action", a)]) as u64)
    };
    let wait_for = |what: &str, daemon: &mut Daemon, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() {
            daemon.assert_running();
            assert!(
                Instant::now() < deadline,
                "{what}\n{}",
                tail(&daemon.log_text())
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // Two more cycles: an idle cycle must count nothing.
        std::thread::sleep(Duration::from_millis(2500));
    };

    wait_for("the request was not opened", &mut daemon, &|| {
        fake.prs().len() == 1 && counts()[0] >= 1
    });
    assert_eq!(counts(), [1, 0, 0], "after opening");

    s.moto.seed("app", &[("1.2.0", 3)]);
    wait_for("the request was not updated", &mut daemon, &|| {
        fake.prs()[0].title.ends_with("1.2.0") && counts()[1] >= 1
    });
    assert_eq!(counts(), [1, 1, 0], "after updating");

    let bare = remote.bare();
    git(
        remote.dir.path(),
        &["clone", "-q", bare.to_str().unwrap(), "person"],
    );
    let clone = remote.dir.path().join("person");
    std::fs::write(clone.join("prod.yaml"), "image:\n  tag: 1.2.0\n").unwrap();
    git(&clone, &["add", "-A"]);
    commit(&clone, "prod: 1.2.0 by hand");
    git(&clone, &["push", "-q", "origin", "HEAD:main"]);
    wait_for("the request was not closed", &mut daemon, &|| {
        !fake.prs()[0].open && counts()[2] >= 1
    });
    assert_eq!(counts(), [1, 1, 1], "after closing");
    assert_eq!(fake.create_calls(), 1);
    fake.assert_no_client_errors();
    daemon.stop();
}
both!(pull_request_actions_are_counted_by_value);

/// The last lines of a log, for a failure message.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
