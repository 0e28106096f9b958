//! GitHub App authentication (issue 21, part 2): the real binary mints an
//! installation token from the app's key, uses it for the REST API and for
//! git over HTTP (user `x-access-token`), reuses it, and mints again near
//! its expiry. The GitHub fake verifies the JWT against the app's public
//! key and refuses expired tokens. Keys are made at test time by openssl.

#[path = "support/forge/mod.rs"]
mod forge;
mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use forge::{FakeApp, GitHubConfig, GitHubFake};
use support::*;
use tagwatch::ghapp::{AppTokens, Clock, TokenSource};
use time::OffsetDateTime;

const APP_ID: &str = "4242";
const INSTALLATION: u64 = 77;
/// The only PAT the fake takes; tagwatch never has it, so every API call
/// that succeeds used a minted token.
const UNUSED_PAT: &str = "ghp_never_given_to_tagwatch";

const FILES: &[(&str, &str)] = &[
    ("dev.yaml", "image:\n  tag: 1.0.0\n"),
    ("prod.yaml", "image:\n  tag: 1.0.0\n"),
    ("qa.yaml", "image:\n  tag: 1.0.0\n"),
];

/// An RSA key pair: (private PEM, public PEM).
fn keypair() -> (Vec<u8>, Vec<u8>) {
    let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
    (
        rsa.private_key_to_pem().unwrap(),
        rsa.public_key_to_pem().unwrap(),
    )
}

fn fake_with_app(bare: &std::path::Path, public: &[u8]) -> GitHubFake {
    let fake = GitHubFake::start(
        GitHubConfig::new("acme", "gitops")
            .token(UNUSED_PAT)
            .git_dir(bare),
    );
    fake.enable_app(FakeApp::new(APP_ID, INSTALLATION, public));
    fake
}

/// dev by commit, prod by pull request; `[forge]` as the app, `[git]` as
/// given (`git_url`, plus `git_extra` lines).
fn scene(moto: &Moto, git_url: &str, git_extra: &str, fake: &GitHubFake, key: &[u8]) -> Workdir {
    let work = Workdir::new(
        &moto.endpoint,
        git_url,
        &[("app", "app", ">=1.0.0", "dev.yaml")],
    );
    work.edit_config(
        "author = \"tagwatch <tagwatch@acme.dev>\"\n",
        &format!("author = \"tagwatch <tagwatch@acme.dev>\"\n{git_extra}"),
    );
    let text = std::fs::read_to_string(&work.config).unwrap();
    std::fs::write(
        &work.config,
        format!(
            "{text}\n[[apps.targets]]\nenv = \"prod\"\nfile = \"prod.yaml\"\nkey = \"image.tag\"\nupdate = \"pull-request\"\n\n[forge]\nkind = \"github\"\nrepository = \"acme/gitops\"\napi_url = \"{}\"\napp_id = {APP_ID}\ninstallation_id = {INSTALLATION}\nprivate_key_file = \"app.pem\"\n",
            fake.api_url()
        ),
    )
    .unwrap();
    std::fs::write(work.dir.path().join("app.pem"), key).unwrap();
    work
}

fn tokens(fake: &GitHubFake) -> Vec<String> {
    let s = fake.state();
    s.app
        .as_ref()
        .unwrap()
        .tokens
        .iter()
        .map(|(t, _)| t.clone())
        .collect()
}

fn assert_no_secret(all: &str, key: &[u8], tokens: &[String]) {
    let pem = String::from_utf8_lossy(key);
    let body = pem.lines().nth(1).unwrap();
    assert!(!all.contains(body), "the private key leaked:\n{all}");
    for t in tokens {
        assert!(!all.contains(t.as_str()), "token {t} leaked:\n{all}");
    }
}

#[test]
fn one_minted_token_serves_the_api_and_git_over_http() {
    let moto = Moto::start();
    moto.seed("app", &[("1.0.0", 1), ("1.1.0", 2)]);
    let remote = GitRemote::new(FILES);
    git(&remote.bare(), &["config", "http.receivepack", "true"]);
    // The git server knows only the token the fake will mint first.
    let server = GitHttp::start_as(remote.dir.path(), "x-access-token", "ghs_first_token");
    let (key, public) = keypair();
    let fake = fake_with_app(&remote.bare(), &public);
    fake.state().app.as_mut().unwrap().next_tokens = vec!["ghs_first_token".into()];
    let work = scene(
        &moto,
        &server.url("remote.git"),
        "auth = \"github-app\"\n",
        &fake,
        &key,
    );

    let out = work.once(&[]);
    expect(&out, 0, &["app/dev: promoted 1.0.0 -> 1.1.0"]);
    assert!(show(&out).contains("app/prod: proposed"), "{}", show(&out));
    // Pushed over HTTP with the token, and the request opened with it.
    assert_eq!(remote.subjects().len(), 2, "{}", show(&out));
    assert_eq!(fake.open_pulls().len(), 1);
    // One mint for the fetch, the push, the branch push and every API call.
    assert_eq!(tokens(&fake), ["ghs_first_token"]);
    let api_calls: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/repos/"))
        .collect();
    assert!(api_calls.len() >= 2, "{api_calls:?}");
    for r in &api_calls {
        assert_eq!(
            r.header("authorization"),
            Some("Bearer ghs_first_token"),
            "{r:?}"
        );
    }
    let mint = fake
        .requests()
        .into_iter()
        .find(|r| r.path == "/app/installations/77/access_tokens")
        .expect("a mint");
    assert_eq!(mint.method, "POST");
    assert_eq!(mint.header("accept"), Some("application/vnd.github+json"));
    assert_no_secret(&show(&out), &key, &tokens(&fake));
    fake.assert_no_client_errors();
}

#[test]
fn the_daemon_reuses_its_token_and_mints_again_near_expiry() {
    let moto = Moto::start();
    moto.seed("app", &[("1.0.0", 1)]);
    let remote = GitRemote::new(FILES);
    git(&remote.bare(), &["config", "http.receivepack", "true"]);
    let server = GitHttp::start_as(remote.dir.path(), "x-access-token", "ghs_same");
    let (key, public) = keypair();
    let fake = fake_with_app(&remote.bare(), &public);
    {
        let mut s = fake.state();
        let app = s.app.as_mut().unwrap();
        // Good for two seconds past tagwatch's refresh margin (five
        // minutes): the first cycles reuse it, a later one mints again.
        app.token_ttl = time::Duration::seconds(5 * 60 + 2);
        // The git server's one password, whichever mint it is.
        app.next_tokens = vec!["ghs_same".into(); 50];
    }
    let work = scene(
        &moto,
        &server.url("remote.git"),
        "auth = \"github-app\"\n",
        &fake,
        &key,
    );
    work.edit_config("interval = \"2m\"", "interval = \"300ms\"");
    let port = free_port();
    work.edit_config(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    let log = work.dir.path().join("daemon.log");
    let daemon = Daemon::start(&work.config, &log);
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokens(&fake).len() < 2 {
        assert!(Instant::now() < deadline, "{}", daemon.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    // The fake counts a token when it answers; tagwatch logs it a moment
    // later.
    while daemon.count("minted a GitHub App installation token") < 2 {
        assert!(Instant::now() < deadline, "{}", daemon.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    let logged = daemon.count("minted a GitHub App installation token");
    let cycles = daemon.count("cycle finished");
    let minted = tokens(&fake).len();
    assert!(
        cycles > logged,
        "each token serves several cycles' fetches: {cycles} cycles, {logged} mints"
    );
    assert!(
        logged <= minted && minted <= logged + 1,
        "{logged} logged, {minted} minted"
    );
    // /status and the page show the token's state, never the token.
    let endpoint = format!("http://127.0.0.1:{port}");
    let (_, body) = http(&endpoint, "GET", "/status", "");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    let app = &status["github_apps"][0];
    assert_eq!(app["app_id"], APP_ID, "{status}");
    assert_eq!(app["installation_id"], INSTALLATION);
    assert!(app["mints"].as_u64().unwrap() >= 2, "{status}");
    assert!(app["token_expires_at"].is_string(), "{status}");
    let (_, page) = http(&endpoint, "GET", "/", "");
    assert!(page.contains("<h2>GitHub App</h2>"), "{page}");
    let (_, metrics) = http(&endpoint, "GET", "/metrics", "");
    assert!(
        metric(
            &metrics,
            "tagwatch_github_app_tokens_total",
            &[("outcome", "minted")]
        ) >= 2.0,
        "{metrics}"
    );
    let text = daemon.log_text();
    daemon.stop();
    assert_no_secret(&format!("{text}{body}{page}"), &key, &tokens(&fake));
    fake.assert_no_client_errors();
}

/// A clock a test moves.
struct Manual(Mutex<OffsetDateTime>);

impl Clock for Manual {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_is_refreshed_after_expiry_on_the_injected_clock_and_the_old_one_is_refused() {
    let remote = GitRemote::new(FILES);
    let (key, public) = keypair();
    let fake = fake_with_app(&remote.bare(), &public);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.pem"), &key).unwrap();
    let app = tagwatch::config::GitHubApp {
        app_id: APP_ID.into(),
        installation_id: INSTALLATION,
        private_key_file: dir.path().join("app.pem"),
        api_url: fake.api_url(),
    };
    let clock = Arc::new(Manual(Mutex::new(OffsetDateTime::now_utc())));
    let source = AppTokens::with_clock(app, clock.clone());

    let first = source.token().await.unwrap();
    let again = source.token().await.unwrap();
    assert_eq!(first, again);
    assert_eq!(source.mints(), 1);

    // 61 minutes on, for tagwatch and for the fake alike.
    let later = time::Duration::minutes(61);
    *clock.0.lock().unwrap() += later;
    fake.state().app.as_mut().unwrap().clock_offset = later;
    let (code, _) = get_pulls(&fake, first.expose());
    assert_eq!(code, 401, "the fake refuses an expired token");
    let second = source.token().await.unwrap();
    assert_ne!(first, second);
    assert_eq!(source.mints(), 2);
    let (code, body) = get_pulls(&fake, second.expose());
    assert_eq!(code, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_is_not_asked_again_until_the_key_file_changes() {
    let remote = GitRemote::new(FILES);
    let (key, public) = keypair();
    let (stranger, _) = keypair();
    let fake = fake_with_app(&remote.bare(), &public);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.pem");
    std::fs::write(&path, &stranger).unwrap();
    let app = tagwatch::config::GitHubApp {
        app_id: APP_ID.into(),
        installation_id: INSTALLATION,
        private_key_file: path.clone(),
        api_url: fake.api_url(),
    };
    let source = AppTokens::new(app);
    let refusals = || fake.state().app.as_ref().unwrap().refusals.len();
    for _ in 0..3 {
        let e = source.token().await.unwrap_err();
        assert_eq!(e.kind(), "refused", "{e}");
        assert!(!format!("{e:?}").contains("PRIVATE KEY"));
    }
    assert_eq!(refusals(), 1, "held, not asked again");
    // The Secret is rotated to the right key: used at once, no restart.
    std::fs::write(&path, &key).unwrap();
    let token = source.token().await.unwrap();
    assert_eq!(format!("{token:?}"), "Secret(redacted)");
    assert_eq!(source.mints(), 1);
}

fn get_pulls(fake: &GitHubFake, token: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let url = fake.api_url();
    let host = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "GET /repos/acme/gitops/pulls HTTP/1.1\r\nHost: {host}\r\nUser-Agent: test\r\nAuthorization: Bearer {token}\r\nAccept: application/vnd.github+json\r\nX-GitHub-Api-Version: 2022-11-28\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let code = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

#[test]
fn a_wrong_key_is_one_clear_error_and_a_revoked_installation_a_404() {
    let moto = Moto::start();
    moto.seed("app", &[("1.0.0", 1), ("1.1.0", 2)]);
    let remote = GitRemote::new(FILES);
    let (_, public) = keypair();
    let (stranger, _) = keypair();
    let fake = fake_with_app(&remote.bare(), &public);
    // Two requests to open, so a naive client would mint (and fail) twice.
    let work = scene(&moto, &remote.file_url(), "", &fake, &stranger);
    work.edit_config(
        "update = \"pull-request\"\n",
        "update = \"pull-request\"\n\n[[apps.targets]]\nenv = \"qa\"\nfile = \"qa.yaml\"\nkey = \"image.tag\"\nupdate = \"pull-request\"\n",
    );
    let out = work.once(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let all = show(&out);
    assert!(
        all.contains("GitHub App 4242: GitHub refused the app's JWT (401"),
        "{all}"
    );
    assert!(all.contains("is private_key_file"), "{all}");
    let refusals = fake.state().app.as_ref().unwrap().refusals.clone();
    assert_eq!(
        refusals.len(),
        1,
        "asked once, not per request: {refusals:?}"
    );
    assert!(tokens(&fake).is_empty());
    assert!(fake.open_pulls().is_empty());
    assert_no_secret(&all, &stranger, &[]);

    // The right key, but the app was uninstalled.
    let (key, public) = keypair();
    {
        let mut s = fake.state();
        let app = s.app.as_mut().unwrap();
        app.public_key_pem = public;
        app.revoked = true;
    }
    std::fs::write(work.dir.path().join("app.pem"), &key).unwrap();
    let out = work.once(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        show(&out).contains("installation 77 not found (404)"),
        "{}",
        show(&out)
    );

    // Reinstalled: the same key works, no restart of anything.
    fake.state().app.as_mut().unwrap().revoked = false;
    let out = work.once(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(fake.open_pulls().len(), 2);
}

#[test]
fn app_settings_are_validated_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let base = config(
        "http://127.0.0.1:1",
        "file:///nowhere",
        dir.path(),
        &[("app", "app", "^1", "dev.yaml")],
    );
    let cases: &[(&str, &str, &str)] = &[
        (
            "[forge]\nkind = \"github\"\nrepository = \"a/b\"\ntoken_file = \"t\"\napp_id = 1\ninstallation_id = 2\nprivate_key_file = \"k.pem\"\n",
            "forge.token_file",
            "not both",
        ),
        (
            "[forge]\nkind = \"gitlab\"\nrepository = \"a/b\"\napp_id = 1\ninstallation_id = 2\nprivate_key_file = \"k.pem\"\n",
            "forge.app_id",
            "needs kind = \"github\"",
        ),
        (
            "[forge]\nkind = \"github\"\nrepository = \"a/b\"\napp_id = 1\nprivate_key_file = \"k.pem\"\n",
            "forge.installation_id",
            "is required",
        ),
        (
            "[forge]\nkind = \"github\"\nrepository = \"a/b\"\napp_id = -3\ninstallation_id = 2\nprivate_key_file = \"k.pem\"\n",
            "forge.app_id",
            "positive numeric id",
        ),
        (
            "[forge]\nkind = \"github\"\nrepository = \"a/b\"\n",
            "forge.token_file",
            "or app_id, installation_id and private_key_file",
        ),
    ];
    for (forge, key, message) in cases {
        let path = dir.path().join("tagwatch.toml");
        std::fs::write(&path, format!("{base}\n{forge}")).unwrap();
        let out = tagwatch(&["check", "--config", path.to_str().unwrap()], dir.path());
        assert_eq!(out.status.code(), Some(64), "{forge}\n{}", show(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("tagwatch.toml:"), "{err}");
        assert!(err.contains(&format!(": {key}: ")), "{key}: {err}");
        assert!(err.contains(message), "{message}: {err}");
    }

    // `[git] auth = "github-app"` needs the app in [forge].
    let text = base.replace(
        "author = \"tagwatch <tagwatch@acme.dev>\"\n",
        "author = \"tagwatch <tagwatch@acme.dev>\"\nauth = \"github-app\"\n",
    );
    let path = dir.path().join("tagwatch.toml");
    std::fs::write(&path, &text).unwrap();
    let out = tagwatch(&["check", "--config", path.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(64), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = text.lines().position(|l| l.starts_with("auth =")).unwrap() + 1;
    assert!(
        err.contains(&format!("tagwatch.toml:{line}: git.auth: ")),
        "{err}"
    );
    assert!(
        err.contains("needs [forge] kind = \"github\" with app_id"),
        "{err}"
    );

    // …and an HTTPS remote: the file:// one here is not.
    let text = format!(
        "{text}\n[forge]\nkind = \"github\"\nrepository = \"a/b\"\napp_id = 1\ninstallation_id = 2\nprivate_key_file = \"k.pem\"\n"
    );
    std::fs::write(&path, &text).unwrap();
    let out = tagwatch(&["check", "--config", path.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(64), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(": git.url: "), "{err}");
    assert!(err.contains("authenticates HTTPS remotes"), "{err}");
}
