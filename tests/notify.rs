//! Notifications (issue 21, part 3) through the real binary to a real
//! HTTP receiver on loopback: Slack messages, the signed webhook (the
//! signature checked with the openssl command, not tagwatch's code),
//! retries on 503 and 429, one summary for a 200-app cycle, a receiver
//! that hangs while cycles go on, and no URL or secret in any output.

#[path = "support/forge/mod.rs"]
mod forge;
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

/// One request the receiver read.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// How the receiver answers, in order; then 200.
#[derive(Clone, Debug)]
enum Answer {
    Status(u16, Option<u64>),
    /// Read the request, never answer.
    Hang,
}

/// A plain HTTP/1.1 receiver, one thread per connection.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start(script: Vec<Answer>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script));
        let (g, s) = (Arc::clone(&got), Arc::clone(&script));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (g, s) = (Arc::clone(&g), Arc::clone(&s));
                std::thread::spawn(move || serve(stream, &g, &s));
            }
        });
        Receiver { port, got }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn got(&self, path: &str) -> Vec<Received> {
        let got = self.got.lock().unwrap();
        got.iter().filter(|r| r.path == path).cloned().collect()
    }

    fn wait_for(&self, path: &str, n: usize, limit: Duration) -> Vec<Received> {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.got(path);
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn serve(stream: TcpStream, got: &Mutex<Vec<Received>>, script: &Mutex<Vec<Answer>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let len = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().unwrap());
        let mut body = vec![0; len];
        reader.read_exact(&mut body).unwrap();
        got.lock().unwrap().push(Received {
            path,
            headers,
            body,
        });
        let answer = {
            let mut s = script.lock().unwrap();
            if s.is_empty() {
                Answer::Status(200, None)
            } else {
                s.remove(0)
            }
        };
        match answer {
            Answer::Hang => {
                std::thread::sleep(Duration::from_secs(120));
                return;
            }
            Answer::Status(code, retry_after) => {
                let extra = retry_after
                    .map(|s| format!("Retry-After: {s}\r\n"))
                    .unwrap_or_default();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {code} X\r\n{extra}Content-Length: 2\r\n\r\nok"
                );
            }
        }
    }
}

const SECRET: &str = "whsec-0123456789abcdef";

/// `apps` apps on one repository, each with a dev target in its own file;
/// `notify` appended as given. URL files hold the receiver's URLs.
fn scene(moto: &Moto, apps: usize, receiver: &Receiver, notify: &str) -> (Workdir, GitRemote) {
    let files: Vec<(String, String)> = (0..apps)
        .map(|i| (format!("app{i}.yaml"), "image:\n  tag: 1.0.0\n".to_string()))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let remote = GitRemote::new(&refs);
    let names: Vec<(String, String)> = (0..apps)
        .map(|i| (format!("app{i}"), format!("app{i}.yaml")))
        .collect();
    let list: Vec<(&str, &str, &str, &str)> = names
        .iter()
        .map(|(n, f)| (n.as_str(), "shared", ">=1.0.0", f.as_str()))
        .collect();
    let work = Workdir::new(&moto.endpoint, &remote.file_url(), &list);
    let text = std::fs::read_to_string(&work.config).unwrap();
    std::fs::write(&work.config, format!("{text}\n{notify}")).unwrap();
    let d = work.dir.path();
    std::fs::write(
        d.join("slack-url"),
        receiver.url("/services/T000/B000/slacksecretpath\n"),
    )
    .unwrap();
    std::fs::write(
        d.join("hook-url"),
        receiver.url("/hook?token=hooksecretquery"),
    )
    .unwrap();
    std::fs::write(d.join("hook-secret"), format!("{SECRET}\n")).unwrap();
    (work, remote)
}

const SLACK: &str = "[[notify]]\nkind = \"slack\"\nurl_file = \"slack-url\"\n";
const WEBHOOK: &str =
    "[[notify]]\nkind = \"webhook\"\nurl_file = \"hook-url\"\nsecret_file = \"hook-secret\"\n";
const SLACK_PATH: &str = "/services/T000/B000/slacksecretpath";
const HOOK_PATH: &str = "/hook?token=hooksecretquery";

fn assert_no_secret(text: &str) {
    for secret in ["slacksecretpath", "hooksecretquery", SECRET] {
        assert!(!text.contains(secret), "{secret} leaked:\n{text}");
    }
}

/// HMAC-SHA256 by the openssl command: independent of tagwatch's code.
fn openssl_hmac(key: &str, body: &[u8]) -> String {
    let mut child = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", key, "-r"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl (scripts/deps.sh installs it)");
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    format!("sha256={}", text.split_whitespace().next().unwrap())
}

#[test]
fn slack_gets_a_message_per_event_and_the_webhook_one_signed_post() {
    let moto = Moto::start();
    moto.seed("shared", &[("1.0.0", 1), ("1.1.0", 2)]);
    let receiver = Receiver::start(Vec::new());
    let (work, remote) = scene(&moto, 2, &receiver, &format!("{SLACK}\n{WEBHOOK}"));
    // With the account known, Slack links the image's ECR console page.
    work.edit_config("[aws]\n", &format!("[aws]\nregistry_id = \"{ACCOUNT}\"\n"));

    // The dry run says what it would send, and sends nothing.
    let out = work.once(&["--dry-run"]);
    expect(
        &out,
        0,
        &[
            "would notify slack notify[0]: 2 messages (promoted app0/dev, promoted app1/dev)",
            "would notify webhook notify[1]: 1 POST (promoted app0/dev, promoted app1/dev)",
        ],
    );
    assert!(receiver.got(SLACK_PATH).is_empty());

    let out = work.once(&[]);
    expect(
        &out,
        0,
        &[
            "app0/dev: promoted 1.0.0 -> 1.1.0",
            "notified slack notify[0]: 2 sent, 0 failed",
            "notified webhook notify[1]: 1 sent, 0 failed",
        ],
    );
    assert_no_secret(&show(&out));
    let commits = remote.subjects();
    assert_eq!(commits.len(), 3);

    let slack = receiver.got(SLACK_PATH);
    assert_eq!(slack.len(), 2, "{slack:?}");
    let texts: Vec<String> = slack
        .iter()
        .map(|r| r.json()["text"].as_str().unwrap().to_string())
        .collect();
    for app in ["app0", "app1"] {
        assert!(
            texts.iter().any(|t| t.starts_with(&format!(
                ":white_check_mark: *{app}/dev* promoted `1.0.0` → `1.1.0` · commit `"
            ))),
            "{texts:?}"
        );
    }
    let ecr = format!(
        " · <https://{REGION}.console.aws.amazon.com/ecr/repositories/private/{ACCOUNT}/shared?region={REGION}|ECR>"
    );
    assert!(texts.iter().all(|t| t.ends_with(&ecr)), "{texts:?}");

    let hooks = receiver.got(HOOK_PATH);
    assert_eq!(hooks.len(), 1, "one POST per cycle");
    let hook = &hooks[0];
    assert_eq!(hook.header("content-type"), Some("application/json"));
    assert_eq!(
        hook.header("x-tagwatch-signature"),
        Some(openssl_hmac(SECRET, &hook.body).as_str())
    );
    let body = hook.json();
    let events = body["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    let e = &events[0];
    let mut keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "app", "commit", "env", "event", "from", "reason", "time", "to", "url"
        ]
    );
    assert_eq!(e["event"], "promoted");
    assert_eq!(e["env"], "dev");
    assert_eq!(e["from"], "1.0.0");
    assert_eq!(e["to"], "1.1.0");
    assert_eq!(e["commit"].as_str().unwrap().len(), 40);
    assert!(e["reason"].is_null());
    time::OffsetDateTime::parse(
        e["time"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();

    // A quiet cycle announces nothing.
    let out = work.once(&[]);
    expect(&out, 0, &["app0/dev: up to date at 1.1.0"]);
    assert_eq!(receiver.got(HOOK_PATH).len(), 1);
    assert_eq!(receiver.got(SLACK_PATH).len(), 2);

    // A failure carries its reason, and the webhook event its stage.
    work.edit_config("file = \"app1.yaml\"", "file = \"gone.yaml\"");
    let out = work.once(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let slack = receiver.got(SLACK_PATH);
    assert_eq!(slack.len(), 3);
    let text = slack[2].json()["text"].as_str().unwrap().to_string();
    assert!(text.starts_with(":x: *app1/dev* failed"), "{text}");
    assert!(
        text.contains(": manifest: ") && text.contains("gone.yaml"),
        "{text}"
    );
    let hook = receiver.got(HOOK_PATH)[1].json();
    assert_eq!(hook["events"][0]["event"], "failed");
    assert!(
        hook["events"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("manifest: "),
        "{hook}"
    );
}

#[test]
fn server_errors_and_rate_limits_are_retried_with_backoff() {
    let moto = Moto::start();
    moto.seed("shared", &[("1.0.0", 1), ("1.1.0", 2)]);
    let receiver = Receiver::start(vec![
        Answer::Status(503, None),
        Answer::Status(429, Some(1)),
    ]);
    let (work, _remote) = scene(&moto, 1, &receiver, WEBHOOK);
    let started = Instant::now();
    let out = work.once(&[]);
    expect(
        &out,
        0,
        &[
            "app0/dev: promoted 1.0.0 -> 1.1.0",
            "notified webhook notify[0]: 1 sent, 0 failed",
        ],
    );
    let hooks = receiver.got(HOOK_PATH);
    assert_eq!(hooks.len(), 3, "503, 429, then 200");
    assert!(hooks.iter().all(|h| h.body == hooks[0].body));
    // 0.5 s backoff after the 503, then the 429's one-second retry-after.
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert_no_secret(&show(&out));

    // A 400 is the receiver refusing this body: not retried.
    let receiver = Receiver::start(vec![Answer::Status(400, None)]);
    let (work, _remote) = scene(&moto, 1, &receiver, WEBHOOK);
    moto.seed("shared", &[("1.2.0", 3)]);
    let out = work.once(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(receiver.got(HOOK_PATH).len(), 1);
    expect(
        &out,
        0,
        &["notified webhook notify[0]: 0 sent, 1 failed (last error: answered 400)"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("notification not delivered"), "{err}");
    assert!(err.contains("answered 400"), "{err}");
    assert_no_secret(&show(&out));
}

#[test]
fn a_two_hundred_app_cycle_is_one_slack_summary_and_one_webhook_post() {
    let moto = Moto::start();
    moto.seed("shared", &[("1.0.0", 1), ("1.1.0", 2)]);
    let receiver = Receiver::start(Vec::new());
    let (work, _remote) = scene(&moto, 200, &receiver, &format!("{SLACK}\n{WEBHOOK}"));
    let out = work.once(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let slack = receiver.got(SLACK_PATH);
    assert_eq!(slack.len(), 1, "one summary, not 200 messages");
    let text = slack[0].json()["text"].as_str().unwrap().to_string();
    assert!(
        text.starts_with(":package: tagwatch: 200 events this cycle (200 promoted)"),
        "{text}"
    );
    assert!(text.ends_with("…and 190 more"), "{text}");
    let hooks = receiver.got(HOOK_PATH);
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].json()["events"].as_array().unwrap().len(), 200);
}

#[test]
fn a_receiver_that_hangs_never_holds_up_a_cycle() {
    let moto = Moto::start();
    moto.seed("shared", &[("1.0.0", 1), ("1.1.0", 2)]);
    let receiver = Receiver::start(vec![Answer::Hang; 100]);
    let (work, _remote) = scene(&moto, 1, &receiver, WEBHOOK);
    work.edit_config("interval = \"2m\"", "interval = \"300ms\"");
    let log = work.dir.path().join("daemon.log");
    let daemon = Daemon::start(&work.config, &log);
    receiver.wait_for(HOOK_PATH, 1, Duration::from_secs(10));
    let hung_at = Instant::now();
    // Cycles go on at their interval while the POST hangs (its timeout
    // is ten seconds).
    let before = daemon.count("cycle finished");
    while daemon.count("cycle finished") < before + 5 {
        assert!(
            hung_at.elapsed() < Duration::from_secs(5),
            "cycles stalled behind the hanging receiver:\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = daemon.log_text();
    daemon.stop();
    assert_no_secret(&text);
}

#[test]
fn the_daemon_shows_each_sink_on_status_and_in_metrics() {
    let moto = Moto::start();
    moto.seed("shared", &[("1.0.0", 1), ("1.1.0", 2)]);
    let receiver = Receiver::start(Vec::new());
    let (work, _remote) = scene(&moto, 1, &receiver, WEBHOOK);
    let port = free_port();
    work.edit_config(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    let log = work.dir.path().join("daemon.log");
    let daemon = Daemon::start(&work.config, &log);
    assert_eq!(
        receiver
            .wait_for(HOOK_PATH, 1, Duration::from_secs(10))
            .len(),
        1
    );
    let endpoint = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        let (_, body) = http(&endpoint, "GET", "/status", "");
        let status: Value = serde_json::from_str(&body).unwrap_or_default();
        if status["notifications"][0]["sent"] == 1 || Instant::now() > deadline {
            break status;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        status["notifications"][0]["sink"], "webhook notify[0]",
        "{status}"
    );
    assert_eq!(status["notifications"][0]["sent"], 1, "{status}");
    let (_, page) = http(&endpoint, "GET", "/", "");
    assert!(page.contains("<h2>notifications</h2>"), "{page}");
    assert!(
        page.contains("<td>webhook notify[0]</td><td>1</td>"),
        "{page}"
    );
    let (_, metrics) = http(&endpoint, "GET", "/metrics", "");
    assert_eq!(
        metric(
            &metrics,
            "tagwatch_notifications_total",
            &[("kind", "webhook"), ("outcome", "sent")]
        ),
        1.0
    );
    let text = daemon.log_text();
    daemon.stop();
    assert_no_secret(&format!("{text}{page}{status}{metrics}"));
}

#[test]
fn a_proposal_that_reaches_the_branch_is_announced_as_merged() {
    let moto = Moto::start();
    moto.seed("shared", &[("1.0.0", 1), ("1.1.0", 2)]);
    let receiver = Receiver::start(Vec::new());
    let notify = format!("{WEBHOOK}events = [\"proposed\", \"merged\"]\n");
    let (work, remote) = scene(&moto, 1, &receiver, &notify);
    let fake = forge::GitHubFake::start(
        forge::GitHubConfig::new("acme", "gitops")
            .token("forge-token-1")
            .git_dir(&remote.bare()),
    );
    work.edit_config(
        "key = \"image.tag\"\n",
        "key = \"image.tag\"\nupdate = \"pull-request\"\n",
    );
    let text = std::fs::read_to_string(&work.config).unwrap();
    std::fs::write(
        &work.config,
        format!(
            "{text}\n[forge]\nkind = \"github\"\nrepository = \"acme/gitops\"\ntoken_file = \"forge-token\"\napi_url = \"{}\"\n",
            fake.api_url()
        ),
    )
    .unwrap();
    std::fs::write(work.dir.path().join("forge-token"), "forge-token-1\n").unwrap();
    work.edit_config("interval = \"2m\"", "interval = \"300ms\"");
    let log = work.dir.path().join("daemon.log");
    let daemon = Daemon::start(&work.config, &log);
    let first = receiver.wait_for(HOOK_PATH, 1, Duration::from_secs(10));
    assert_eq!(first.len(), 1, "{}", daemon.log_text());
    let proposed = &first[0].json()["events"][0];
    assert_eq!(proposed["event"], "proposed");
    assert!(
        proposed["url"].as_str().unwrap().contains("/pull/"),
        "{proposed}"
    );

    // Someone merges: the value reaches main.
    let seed = remote.dir.path().join("seed");
    git(&seed, &["pull", "-q", "origin", "main"]);
    std::fs::write(seed.join("app0.yaml"), "image:\n  tag: 1.1.0\n").unwrap();
    git(&seed, &["add", "-A"]);
    commit(&seed, "merge the promotion");
    git(&seed, &["push", "-q", "origin", "HEAD:main"]);

    let hooks = receiver.wait_for(HOOK_PATH, 2, Duration::from_secs(10));
    assert_eq!(hooks.len(), 2, "{}", daemon.log_text());
    let merged = &hooks[1].json()["events"][0];
    assert_eq!(merged["event"], "merged", "{merged}");
    assert_eq!(merged["from"], "1.0.0");
    assert_eq!(merged["to"], "1.1.0");
    // Announced once, not every cycle after.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(receiver.got(HOOK_PATH).len(), 2);
    daemon.stop();
}

#[test]
fn a_notify_block_added_by_a_reload_is_used_from_the_next_cycle() {
    let moto = Moto::start();
    moto.seed("shared", &[("1.0.0", 1)]);
    let receiver = Receiver::start(Vec::new());
    let (work, _remote) = scene(&moto, 1, &receiver, "");
    work.edit_config("interval = \"2m\"", "interval = \"300ms\"");
    let log = work.dir.path().join("daemon.log");
    let daemon = Daemon::start(&work.config, &log);
    let deadline = Instant::now() + Duration::from_secs(10);
    while daemon.count("cycle finished") < 1 {
        assert!(Instant::now() < deadline, "{}", daemon.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(&work.config).unwrap();
    std::fs::write(&work.config, format!("{text}\n{WEBHOOK}")).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &daemon.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    while daemon.count("configuration reloaded") < 1 {
        assert!(Instant::now() < deadline, "{}", daemon.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    moto.seed("shared", &[("1.1.0", 2)]);
    let hooks = receiver.wait_for(HOOK_PATH, 1, Duration::from_secs(10));
    assert_eq!(hooks.len(), 1, "{}", daemon.log_text());
    assert_eq!(hooks[0].json()["events"][0]["to"], "1.1.0");
    let text = daemon.log_text();
    daemon.stop();
    assert_no_secret(&text);
}

#[test]
fn notify_blocks_are_validated_with_file_line_and_key() {
    let moto_endpoint = "http://127.0.0.1:1";
    let dir = tempfile::tempdir().unwrap();
    let base = config(
        moto_endpoint,
        "file:///nowhere",
        dir.path(),
        &[("web", "web", "^1", "dev.yaml")],
    );
    let cases: &[(&str, &str, &str)] = &[
        (
            "[[notify]]\nkind = \"teams\"\nurl_file = \"u\"\n",
            "notify[0].kind",
            "expected \"slack\" or \"webhook\"",
        ),
        (
            "[[notify]]\nkind = \"slack\"\n",
            "notify[0].url_file",
            "is required",
        ),
        (
            "[[notify]]\nkind = \"slack\"\nurl_file = \"u\"\nevents = [\"promoted\", \"deployed\"]\n",
            "notify[0].events",
            "unknown event \"deployed\"",
        ),
        (
            "[[notify]]\nkind = \"slack\"\nurl_file = \"u\"\nsecret_file = \"s\"\n",
            "notify[0].secret_file",
            "is for kind = \"webhook\"",
        ),
        (
            "[[notify]]\nkind = \"webhook\"\nurl_file = \"u\"\napps = [\"wbe\"]\n",
            "notify[0].apps",
            "no configured app is named \"wbe\"",
        ),
        (
            "[[notify]]\nkind = \"webhook\"\nurl_file = \"u\"\nenvs = [\"prd\"]\n",
            "notify[0].envs",
            "no configured env is named \"prd\"",
        ),
        (
            "[[notify]]\nkind = \"webhook\"\nurl_file = \"u\"\nevents = []\n",
            "notify[0].events",
            "at least one event",
        ),
    ];
    let path = dir.path().join("tagwatch.toml");
    for (notify, key, message) in cases {
        let text = format!("{base}\n{notify}");
        std::fs::write(&path, &text).unwrap();
        let out = tagwatch(&["check", "--config", path.to_str().unwrap()], dir.path());
        assert_eq!(out.status.code(), Some(64), "{notify}\n{}", show(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("tagwatch.toml:"), "{err}");
        assert!(err.contains(&format!(": {key}: ")), "{key}: {err}");
        assert!(err.contains(message), "{message}: {err}");
    }
    let text = format!(
        "{base}\n[[notify]]\nkind = \"webhook\"\nurl_file = \"u\"\nevents = [\"promoted\", \"merged\", \"waiting\", \"rolled_back\", \"held\"]\napps = [\"web\"]\nenvs = [\"dev\"]\n"
    );
    std::fs::write(&path, &text).unwrap();
    let out = tagwatch(&["check", "--config", path.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(show(&out).contains("notify webhook"), "{}", show(&out));
}
