//! The Argo CD health gate (issue 15, part 3) end to end: the real
//! `tagwatch` binary against moto's ECR, a real bare git repository and a
//! stateful fake of Argo CD's API (tests/support/argocd.rs), whose own
//! tests come first.

#[path = "support/argocd.rs"]
mod argocd_fake;
#[path = "support/forge/mod.rs"]
mod forge;
mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use forge::{GitHubConfig, GitHubFake};

use argocd_fake::{AppState, ArgoFake};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use support::*;

const TOKEN: &str = "argocd-token-1";

/// A raw HTTP/1.1 request, so the fake is tested without tagwatch's client.
fn raw(url: &str, method: &str, path: &str, auth: Option<&str>, body: &str) -> (u16, String) {
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text[9..12].parse().unwrap();
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (code, body)
}

fn healthy_at(revision: &str, finished_at: &str) -> AppState<'static> {
    AppState {
        sync: "Synced",
        health: "Healthy",
        revision: Box::leak(revision.to_string().into_boxed_str()),
        message: None,
        finished_at: Box::leak(finished_at.to_string().into_boxed_str()),
    }
}

#[test]
fn the_fake_checks_method_path_auth_and_body() {
    let fake = ArgoFake::start(TOKEN);
    fake.set("payments-dev", &healthy_at("abc", "2026-11-21T10:00:00Z"));
    let bearer = format!("Bearer {TOKEN}");

    let (code, body) = raw(
        &fake.url,
        "GET",
        "/api/v1/applications/payments-dev",
        Some(&bearer),
        "",
    );
    assert_eq!(code, 200, "{body}");
    let app: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(app["metadata"]["name"], "payments-dev");
    assert_eq!(app["status"]["sync"]["status"], "Synced");
    assert_eq!(app["status"]["health"]["status"], "Healthy");
    assert_eq!(
        app["status"]["operationState"]["syncResult"]["revision"],
        "abc"
    );

    let (code, body) = raw(
        &fake.url,
        "GET",
        "/api/v1/applications/payments-dev",
        None,
        "",
    );
    assert_eq!(code, 401);
    assert!(body.contains("\"code\":16"), "{body}");
    let (code, _) = raw(
        &fake.url,
        "GET",
        "/api/v1/applications/payments-dev",
        Some("Bearer wrong"),
        "",
    );
    assert_eq!(code, 401);
    let (code, body) = raw(
        &fake.url,
        "GET",
        "/api/v1/applications/nope",
        Some(&bearer),
        "",
    );
    assert_eq!(code, 404);
    assert!(
        body.contains(r#"applications.argoproj.io \"nope\" not found"#),
        "{body}"
    );
    let (code, _) = raw(
        &fake.url,
        "DELETE",
        "/api/v1/applications/payments-dev",
        Some(&bearer),
        "",
    );
    assert_eq!(code, 501);
    raw(
        &fake.url,
        "GET",
        "/api/v1/applications/payments-dev",
        Some(&bearer),
        "{}",
    );

    let log = fake.requests();
    assert_eq!(log.len(), 6);
    assert_eq!(log[0].method, "GET");
    assert_eq!(log[0].path, "/api/v1/applications/payments-dev");
    assert_eq!(log[0].authorization.as_deref(), Some(bearer.as_str()));
    assert_eq!(log[0].body, "");
    assert_eq!(
        log[5].body, "{}",
        "a body is logged, so a test can see one was sent"
    );
}

/// `app` with dev (commit, deployed by Argo CD Application payments-dev)
/// and prod (commit, promoted from dev after a 5-minute soak).
fn scene(moto: &Moto, remote: &GitRemote, argocd: &str) -> Workdir {
    let work = Workdir::new(
        &moto.endpoint,
        &remote.file_url(),
        &[("app", "app", ">=1.0.0", "dev.yaml")],
    );
    let text = std::fs::read_to_string(&work.config).unwrap();
    std::fs::write(
        &work.config,
        format!(
            "{text}argocd_app = \"payments-dev\"\n\n[[apps.targets]]\nenv = \"prod\"\nfile = \"prod.yaml\"\nkey = \"image.tag\"\npromote_from = \"dev\"\nsoak = \"5m\"\n\n[argocd]\nurl = \"{argocd}\"\ntoken_file = \"argocd-token\"\n"
        ),
    )
    .unwrap();
    std::fs::write(work.dir.path().join("argocd-token"), format!("{TOKEN}\n")).unwrap();
    work
}

const FILES: &[(&str, &str)] = &[
    ("dev.yaml", "image:\n  tag: 1.0.0\n"),
    ("prod.yaml", "image:\n  tag: 1.0.0\n"),
];

fn at(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

fn head(remote: &GitRemote) -> String {
    git(&remote.bare(), &["rev-parse", "main"])
        .trim()
        .to_string()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn degraded_waits_with_the_message_old_revision_waits_healthy_for_the_soak_promotes() {
    let moto = Moto::start();
    moto.seed("app", &[("1.0.0", 1), ("1.1.0", 2)]);
    let remote = GitRemote::new(FILES);
    let seed = head(&remote);
    let fake = ArgoFake::start(TOKEN);
    fake.set("payments-dev", &healthy_at(&seed, "2026-01-01T00:00:00Z"));
    let work = scene(&moto, &remote, &fake.url);
    let t0 = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let minutes = time::Duration::minutes;

    // dev takes 1.1.0; Argo CD still runs the seed: prod waits on it.
    let out = work.once(&["--now", &at(t0)]);
    let short = &seed[..12];
    expect(
        &out,
        0,
        &[
            "app/dev: promoted 1.0.0 -> 1.1.0",
            &format!(
                "app/prod: waiting: from dev: argocd payments-dev is Synced and Healthy at {short}, which does not contain the commit that gave dev 1.1.0"
            ),
        ],
    );
    let promoted = head(&remote);

    // Healthy at an old revision, a cycle later: still waiting, however
    // long ago the commit was.
    let out = work.once(&["--now", &at(t0 + minutes(60))]);
    assert!(
        stdout(&out).contains(&format!("at {short}, which does not contain")),
        "{}",
        show(&out)
    );

    // Degraded at the promotion: waits with Argo CD's message.
    fake.set(
        "payments-dev",
        &AppState {
            sync: "Synced",
            health: "Degraded",
            revision: &promoted,
            message: Some("Deployment \"api\" exceeded its progress deadline"),
            finished_at: &at(t0 + minutes(1)),
        },
    );
    let out = work.once(&["--now", &at(t0 + minutes(60))]);
    expect(
        &out,
        0,
        &[
            "app/prod: waiting: from dev: argocd payments-dev is Synced and Degraded: Deployment \"api\" exceeded its progress deadline",
        ],
    );
    assert_eq!(remote.subjects().len(), 2, "prod never moved");

    // Healthy at the promotion since t0+2m: the soak counts from then, not
    // from the commit (t0), so at t0+6m it has soaked 4 minutes.
    fake.set("payments-dev", &healthy_at(&promoted, &at(t0 + minutes(2))));
    let out = work.once(&["--now", &at(t0 + minutes(6))]);
    expect(
        &out,
        0,
        &["app/prod: waiting: dev has run 1.1.0 for 4m; soak is 5m"],
    );
    let out = work.once(&["--now", &at(t0 + minutes(7)), "--dry-run"]);
    expect(&out, 0, &["app/prod: would promote 1.0.0 -> 1.1.0"]);
    let out = work.once(&["--now", &at(t0 + minutes(7))]);
    expect(&out, 0, &["app/prod: promoted 1.0.0 -> 1.1.0"]);
    assert_eq!(remote.subjects()[0], "app: prod 1.0.0 -> 1.1.0");

    // Every read was a bodiless GET of the one Application, with the token.
    let log = fake.requests();
    assert!(!log.is_empty());
    for r in &log {
        assert_eq!(
            (
                r.method.as_str(),
                r.path.as_str(),
                r.body.as_str(),
                r.status
            ),
            ("GET", "/api/v1/applications/payments-dev", "", 200)
        );
        assert_eq!(
            r.authorization.as_deref(),
            Some(format!("Bearer {TOKEN}").as_str())
        );
    }
}

#[test]
fn argocd_down_waits_with_the_error_and_never_promotes() {
    let moto = Moto::start();
    moto.seed("app", &[("1.0.0", 1), ("1.1.0", 2)]);
    let remote = GitRemote::new(FILES);
    let work = scene(&moto, &remote, &format!("http://127.0.0.1:{}", free_port()));
    let t0 = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    work.once(&["--now", &at(t0)]);
    let out = work.once(&["--now", &at(t0 + time::Duration::days(30))]);
    expect(
        &out,
        0,
        &["app/prod: waiting: from dev: argocd payments-dev: GET http://127.0.0.1:"],
    );
    assert_eq!(remote.subjects().len(), 2, "only dev's promotion");
}

#[test]
fn argocd_app_without_an_argocd_section_exits_64_naming_file_line_and_key() {
    let moto = Moto::start();
    let remote = GitRemote::new(FILES);
    let work = scene(&moto, &remote, "http://127.0.0.1:1");
    let text = std::fs::read_to_string(&work.config).unwrap();
    let cut = text.find("\n[argocd]").unwrap();
    std::fs::write(&work.config, &text[..cut]).unwrap();
    let out = work.once(&["--dry-run"]);
    assert_eq!(out.status.code(), Some(64), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = text[..cut]
        .lines()
        .position(|l| l.starts_with("argocd_app"))
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!("tagwatch.toml:{line}:"))
            && err
                .contains(": apps[0].targets[0].argocd_app: argocd_app needs an [argocd] section"),
        "{err}"
    );
}

#[test]
fn the_pull_request_body_says_the_argocd_gate_passed() {
    let moto = Moto::start();
    moto.seed("app", &[("1.0.0", 1), ("1.1.0", 2)]);
    let remote = GitRemote::new(FILES);
    let argocd = ArgoFake::start(TOKEN);
    let work = scene(&moto, &remote, &argocd.url);
    let github = GitHubFake::start(
        GitHubConfig::new("acme", "gitops")
            .token("forge-token-1")
            .git_dir(&remote.bare()),
    );
    work.edit_config(
        "soak = \"5m\"\n",
        &format!(
            "soak = \"5m\"\nupdate = \"pull-request\"\n\n[forge]\nkind = \"github\"\nrepository = \"acme/gitops\"\ntoken_file = \"forge-token\"\napi_url = \"{}\"\n",
            github.api_url()
        ),
    );
    std::fs::write(work.dir.path().join("forge-token"), "forge-token-1\n").unwrap();
    let t0 = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let out = work.once(&["--now", &at(t0)]);
    // No such Application yet: Argo CD's 404 is the reason.
    expect(
        &out,
        0,
        &[
            "app/dev: promoted 1.0.0 -> 1.1.0",
            "app/prod: waiting: from dev: argocd payments-dev: GET ",
            "404 Not Found applications.argoproj.io \"payments-dev\" not found",
        ],
    );
    let promoted = head(&remote);
    argocd.set("payments-dev", &healthy_at(&promoted, &at(t0)));
    let out = work.once(&["--now", &at(t0 + time::Duration::minutes(10))]);
    expect(&out, 0, &["app/prod: proposed 1.0.0 -> 1.1.0"]);
    let pulls = github.pulls();
    let body = pulls[0].body.clone().unwrap_or_default();
    assert!(
        body.contains(&format!(
            "gate argocd passed: argocd payments-dev Synced and Healthy at {}",
            &promoted[..12]
        )),
        "{body}"
    );
}

#[test]
fn status_and_metrics_name_a_degraded_source() {
    let moto = Moto::start();
    moto.seed("app", &[("1.0.0", 1), ("1.1.0", 2)]);
    // dev runs 1.1.0 already (written by hand, in the seed commit).
    let remote = GitRemote::new(&[
        ("dev.yaml", "image:\n  tag: 1.1.0\n"),
        ("prod.yaml", "image:\n  tag: 1.0.0\n"),
    ]);
    let argocd = ArgoFake::start(TOKEN);
    argocd.set(
        "payments-dev",
        &AppState {
            sync: "OutOfSync",
            health: "Degraded",
            revision: &head(&remote),
            message: Some("Back-off pulling image"),
            finished_at: "2026-01-01T00:00:00Z",
        },
    );
    let work = scene(&moto, &remote, &argocd.url);
    let port = free_port();
    work.edit_config("interval = \"2m\"", "interval = \"1h\"");
    work.edit_config(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    let log = work.dir.path().join("daemon.log");
    let daemon = Daemon::start(&work.config, &log);
    let deadline = Instant::now() + Duration::from_secs(30);
    while daemon.count("cycle finished") == 0 {
        assert!(
            Instant::now() < deadline,
            "no cycle:\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let base = format!("http://127.0.0.1:{port}");
    let (code, status) = http(&base, "GET", "/status", "");
    assert_eq!(code, 200);
    assert!(
        status.contains(
            "from dev: argocd payments-dev is OutOfSync and Degraded: Back-off pulling image"
        ),
        "/status names the gate: {status}"
    );
    let (_, metrics) = http(&base, "GET", "/metrics", "");
    assert!(
        metrics.contains("tagwatch_gate_results_total{gate=\"argocd\",outcome=\"fail\"} 1"),
        "{metrics}"
    );
    assert_eq!(remote.subjects(), ["seed"], "prod never moved");
    drop(daemon);
}

#[test]
fn a_bad_argocd_section_exits_64_naming_the_key() {
    let moto = Moto::start();
    let remote = GitRemote::new(FILES);
    for (url, extra, says) in [
        (
            "http://argocd.example.com",
            "",
            "argocd.url: \"http://argocd.example.com\" would send the Argo CD token in clear",
        ),
        (
            "https://argocd.example.com",
            "ca_file = \"no-such-ca.pem\"\n",
            "argocd.ca_file: cannot read ",
        ),
    ] {
        let work = scene(&moto, &remote, url);
        work.edit_config(
            "token_file = \"argocd-token\"\n",
            &format!("token_file = \"argocd-token\"\n{extra}"),
        );
        let out = work.once(&["--dry-run"]);
        assert_eq!(out.status.code(), Some(64), "{}", show(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("tagwatch.toml:") && err.contains(says),
            "{err}"
        );
    }
}
