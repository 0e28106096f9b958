//! The HTTP endpoints of a running daemon: a live `/metrics` scrape that
//! promtool accepts, `/status` and `/` showing every target, readiness,
//! and a server that answers bad requests properly and outlasts a client
//! that sends nothing.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// A GET (or other method) on loopback; returns the status and body.
fn request(port: u16, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// promtool from PATH, or where scripts/test unpacks it.
fn promtool() -> Command {
    let local =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/prometheus/usr/bin/promtool");
    if local.exists() {
        Command::new(local)
    } else {
        Command::new("promtool")
    }
}

#[test]
fn a_live_scrape_passes_promtool_and_status_shows_every_target() {
    let moto = Moto::start();
    moto.seed("app", &[("1.0.0", 1), ("1.1.0", 2)]);
    let remote = GitRemote::new(&[
        ("dev.yaml", "image:\n  tag: 1.0.0\n"),
        ("prod.yaml", "image:\n  tag: 1.0.0\n"),
        ("gone.yaml", "image:\n  tag: 1.0.0\n"),
    ]);
    let port = free_port();
    let work = Workdir::new(
        &moto.endpoint,
        &remote.file_url(),
        &[
            ("app", "app", "^1", "dev.yaml"),
            ("gone", "no-such-repo", "^1", "gone.yaml"),
        ],
    );
    let text = std::fs::read_to_string(&work.config)
        .unwrap()
        .replace("interval = \"2m\"", "interval = \"1s\"")
        .replace("listen = \"127.0.0.1:0\"", &format!("listen = \"127.0.0.1:{port}\""))
        .replace(
            "file = \"dev.yaml\"\nkey = \"image.tag\"\n",
            "file = \"dev.yaml\"\nkey = \"image.tag\"\n\n[[apps.targets]]\nenv = \"prod\"\nfile = \"prod.yaml\"\nkey = \"image.tag\"\npromote_from = \"dev\"\nsoak = \"1h\"\n",
        );
    std::fs::write(&work.config, text).unwrap();
    let mut child = tagwatch_command()
        .args([
            "run",
            "--log-format",
            "json",
            "--config",
            work.config.to_str().unwrap(),
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
    // A client that connects and sends nothing holds one connection, not
    // the server.
    let idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert_eq!(request(port, "GET", "/healthz"), (200, "ok\n".to_string()));
    while request(port, "GET", "/readyz").0 != 200 {
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    remote.wait_for_commits(2, deadline, "dev was not promoted");

    let (status, json) = request(port, "GET", "/status");
    assert_eq!(status, 200);
    let status: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(status["ready"], true);
    let targets = status["targets"].as_array().unwrap();
    let row = |app: &str, env: &str| {
        targets
            .iter()
            .find(|t| t["app"] == app && t["env"] == env)
            .unwrap_or_else(|| panic!("{app}/{env} missing from {json}"))
            .clone()
    };
    assert_eq!(targets.len(), 3, "{json}");
    assert_eq!(row("app", "dev")["current"], "1.1.0");
    assert_eq!(row("app", "prod")["current"], "1.0.0");
    assert!(
        row("app", "prod")["waiting"]
            .as_str()
            .unwrap()
            .contains("soak is 1h"),
        "{json}"
    );
    assert!(
        row("gone", "dev")["last_error"]
            .as_str()
            .unwrap()
            .starts_with("registry: "),
        "{json}"
    );

    let (status, html) = request(port, "GET", "/");
    assert_eq!(status, 200);
    for needle in [
        "<td>app</td><td>dev</td>",
        "<td>app</td><td>prod</td>",
        "<td>gone</td><td>dev</td>",
        "soak is 1h",
    ] {
        assert!(html.contains(needle), "{needle:?} not in the page:\n{html}");
    }
    assert_eq!(request(port, "GET", "/nope").0, 404);
    assert_eq!(request(port, "POST", "/metrics").0, 405);

    let (status, scrape) = request(port, "GET", "/metrics");
    assert_eq!(status, 200);
    for needle in [
        "tagwatch_build_info{version=",
        "tagwatch_cycles_total{outcome=\"partial\"}",
        r#"tagwatch_target_info{app="app",env="dev",tag="1.1.0"} 1"#,
        r#"tagwatch_target_info{app="app",env="prod",tag="1.0.0"} 1"#,
        r#"tagwatch_promotions_total{app="app",env="dev",update="commit"} 1"#,
        r#"tagwatch_pending_promotions{app="app",env="prod"} 1"#,
        r#"tagwatch_app_errors_total{app="gone",kind="registry"}"#,
        r#"tagwatch_registry_requests_total{operation="DescribeImages",outcome="not_found"}"#,
        r#"tagwatch_repository_images{repository="app"} 2"#,
        "tagwatch_git_operation_duration_seconds_bucket{operation=\"push\"",
        "tagwatch_push_to_promotion_seconds_count{env=\"dev\"} 1",
    ] {
        assert!(
            scrape.contains(needle),
            "{needle:?} not in the scrape:\n{scrape}"
        );
    }
    // Exactly one target_info series per target.
    assert_eq!(
        scrape.matches("tagwatch_target_info{").count(),
        3,
        "{scrape}"
    );
    let mut check = promtool()
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (scripts/test unpacks Debian's prometheus package into .tools/)");
    check
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    drop(idle);

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

/// Starts `tagwatch run` on a free port with a 1 s interval and waits
/// until it listens; returns the child and the port.
fn start_daemon(work: &Workdir) -> (std::process::Child, u16) {
    let port = free_port();
    work.edit_config("interval = \"2m\"", "interval = \"1s\"");
    work.edit_config(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    let child = tagwatch_command()
        .args([
            "run",
            "--log-format",
            "json",
            "--config",
            work.config.to_str().unwrap(),
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
    (child, port)
}

/// Reads one HTTP/1.1 response (headers and a `Content-Length` body) from
/// a kept-alive connection; returns the status.
fn read_response(stream: &mut TcpStream) -> std::io::Result<u16> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body)?;
    Ok(head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0))
}

/// Issue 13 item 14: 64 kept-alive connections from one address, each
/// sending a request every 4 s, held every connection slot, and
/// `/healthz` took 29.7 s, so the kubelet's liveness probe (5 s timeout)
/// restarted a healthy pod. The probes now have their own slots, so they
/// answer at once; the attacker's address gets its share of connections
/// and 503 for the rest; and a kept-alive connection left idle is closed
/// within a few seconds.
#[test]
fn healthz_answers_at_once_under_64_kept_alive_connections_from_one_address() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let moto = Moto::start();
    moto.seed("app", &[("1.0.0", 1)]);
    let remote = GitRemote::new(&[("dev.yaml", "image:\n  tag: 1.0.0\n")]);
    let work = Workdir::new(
        &moto.endpoint,
        &remote.file_url(),
        &[("app", "app", "^1", "dev.yaml")],
    );
    let (mut child, port) = start_daemon(&work);

    let stop = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicUsize::new(0));
    let served = Arc::new(AtomicUsize::new(0));
    let attackers: Vec<_> = (0..64)
        .map(|_| {
            let (stop, refused, served) =
                (Arc::clone(&stop), Arc::clone(&refused), Arc::clone(&served));
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    };
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
                    // Keep-alive: a request every 4 s on one connection
                    // until the server closes it, then a new connection.
                    while !stop.load(Ordering::SeqCst) {
                        let sent =
                            stream.write_all(b"GET /status HTTP/1.1\r\nHost: localhost\r\n\r\n");
                        match sent.and_then(|()| read_response(&mut stream)) {
                            Ok(503) => {
                                refused.fetch_add(1, Ordering::SeqCst);
                                break;
                            }
                            Ok(_) => {
                                served.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(_) => break,
                        }
                        std::thread::sleep(Duration::from_secs(4));
                    }
                    // Refused or closed: the next request, 4 s later, on a
                    // new connection.
                    std::thread::sleep(Duration::from_secs(4));
                }
            })
        })
        .collect();

    // Let the attack take hold (every connection open and kept alive),
    // then probe as the kubelet does, a new connection each time.
    std::thread::sleep(Duration::from_secs(2));
    let mut slowest = Duration::ZERO;
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        let asked = Instant::now();
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let status = read_response(&mut stream);
        let took = asked.elapsed();
        assert!(
            matches!(status, Ok(200)),
            "/healthz answered {status:?} after {took:?} under the attack"
        );
        slowest = slowest.max(took);
        std::thread::sleep(Duration::from_millis(500));
    }
    stop.store(true, Ordering::SeqCst);
    assert!(
        slowest < Duration::from_secs(1),
        "/healthz took {slowest:?} under the attack"
    );
    // One address got its share of connections, and 503 for the rest.
    assert!(served.load(Ordering::SeqCst) > 0, "no attacker was served");
    assert!(
        refused.load(Ordering::SeqCst) > 0,
        "no attacker connection was refused: no per-address cap"
    );

    for attacker in attackers {
        attacker.join().unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));

    // An idle kept-alive connection is closed within a few seconds.
    let mut idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    idle.write_all(b"GET /status HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut idle).unwrap(), 200);
    let idle_since = Instant::now();
    let mut rest = Vec::new();
    let _ = idle.read_to_end(&mut rest);
    assert!(
        idle_since.elapsed() < Duration::from_secs(5),
        "an idle kept-alive connection stayed open {:?}",
        idle_since.elapsed()
    );

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

/// Issue 13 item 9: `/readyz` stayed 200 while a target failed every
/// cycle, and docs/operations.md said it would not. Readiness means the
/// daemon's cycles finish (docs/operations.md, "Endpoints"); a target that
/// fails every cycle shows in `/status`, the metrics and the alerts. Over
/// more than three intervals of failing cycles, `/readyz` stays 200 and
/// `/status` names the failure.
#[test]
fn readyz_stays_200_while_one_target_fails_every_cycle() {
    let moto = Moto::start();
    moto.seed("app", &[("1.0.0", 1)]);
    let remote = GitRemote::new(&[
        ("dev.yaml", "image:\n  tag: 1.0.0\n"),
        ("gone.yaml", "image:\n  tag: 1.0.0\n"),
    ]);
    let work = Workdir::new(
        &moto.endpoint,
        &remote.file_url(),
        &[
            ("app", "app", "^1", "dev.yaml"),
            ("gone", "no-such-repo", "^1", "gone.yaml"),
        ],
    );
    let (mut child, port) = start_daemon(&work);
    let deadline = Instant::now() + Duration::from_secs(30);
    while request(port, "GET", "/readyz").0 != 200 {
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Five intervals of cycles in which `gone` fails.
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        assert_eq!(request(port, "GET", "/readyz"), (200, "ready\n".into()));
        std::thread::sleep(Duration::from_millis(250));
    }
    let (_, json) = request(port, "GET", "/status");
    let status: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(status["ready"], true);
    let gone = status["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["app"] == "gone")
        .unwrap();
    assert!(
        gone["last_error"]
            .as_str()
            .is_some_and(|e| e.starts_with("registry: ")),
        "{json}"
    );
    let (_, scrape) = request(port, "GET", "/metrics");
    assert!(
        scrape.contains(r#"tagwatch_app_errors_total{app="gone",kind="registry"}"#),
        "{scrape}"
    );
    // Issue 13 item 19, through the binary: the page's policy and nosniff.
    for path in ["/", "/status", "/metrics", "/readyz"] {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        let head = text.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
        assert!(
            head.contains("\r\nx-content-type-options: nosniff"),
            "{path}: {head}"
        );
        assert_eq!(
            head.contains("\r\ncontent-security-policy: default-src 'none'; style-src 'self';"),
            path == "/",
            "{path}: {head}"
        );
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
