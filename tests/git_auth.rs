//! HTTPS-style authentication against a real smart-HTTP git server (nginx,
//! fcgiwrap, git http-backend) with basic auth: the token comes from a
//! file, is re-read when it rotates, and never appears in any output.

mod support;

use support::*;

const TOKEN: &str = "tw-secret-token-1234";
const VALUES: &str = "image:\n  tag: 1.0.0\n";

fn setup(moto: &Moto, server: &GitHttp, remote: &GitRemote, token: &str) -> Workdir {
    let work = Workdir::new(
        &moto.endpoint,
        &server.url("remote.git"),
        &[("app", "app", "^1", "values.yaml")],
    );
    std::fs::write(work.dir.path().join("token"), format!("{token}\n")).unwrap();
    let text = std::fs::read_to_string(&work.config).unwrap().replace(
        "branch = \"main\"",
        "branch = \"main\"\ntoken_file = \"token\"\nusername = \"git\"",
    );
    std::fs::write(&work.config, text).unwrap();
    let _ = remote;
    work
}

#[test]
fn a_token_from_a_file_authenticates_over_http_and_rotates() {
    let moto = Moto::start();
    moto.seed("app", &[("1.0.0", 1), ("1.1.0", 2)]);
    let remote = GitRemote::new(&[("values.yaml", VALUES)]);
    git(&remote.bare(), &["config", "http.receivepack", "true"]);
    let server = GitHttp::start(remote.dir.path(), TOKEN);

    // Wrong token: one clear error naming the remote, exit 1, no secret.
    let work = setup(&moto, &server, &remote, "wrong-token-5678");
    let out = work.once(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let all = show(&out);
    assert!(all.contains("rejected the token from"), "{all}");
    assert!(
        !all.contains("wrong-token-5678"),
        "the token leaked:\n{all}"
    );
    assert_eq!(remote.subjects(), ["seed"]);

    // The Secret rotates to the right token: picked up without a restart.
    std::fs::write(work.dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
    let out = work.once(&[]);
    expect(&out, 0, &["app/dev: promoted 1.0.0 -> 1.1.0"]);
    assert!(
        !show(&out).contains(TOKEN),
        "the token leaked:\n{}",
        show(&out)
    );
    assert_eq!(remote.subjects(), ["app: dev 1.0.0 -> 1.1.0", "seed"]);

    // No token at all: the server's 401 gives the same kind of single error.
    let text = std::fs::read_to_string(&work.config)
        .unwrap()
        .replace("token_file = \"token\"\nusername = \"git\"\n", "");
    std::fs::write(&work.config, text).unwrap();
    std::fs::remove_dir_all(work.dir.path().join("checkout")).unwrap();
    let out = work.once(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        show(&out).contains("asks for credentials, and none are configured"),
        "{}",
        show(&out)
    );
}

#[test]
fn https_certificates_are_verified_and_ca_file_adds_a_private_ca() {
    let moto = Moto::start();
    moto.seed("app", &[("1.0.0", 1), ("1.1.0", 2)]);
    let remote = GitRemote::new(&[("values.yaml", VALUES)]);
    git(&remote.bare(), &["config", "http.receivepack", "true"]);
    let ca = TestCa::new();
    let server = GitHttp::start_tls(remote.dir.path(), TOKEN, &ca);
    let work = setup(&moto, &server, &remote, TOKEN);
    assert!(server.url("x").starts_with("https://"));

    // The system's roots do not know the private CA: refused.
    let out = work.once(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        show(&out).to_lowercase().contains("certificate"),
        "{}",
        show(&out)
    );

    // Another CA in ca_file vouches for nothing here: still refused, and
    // the error says what was tried.
    let stranger = TestCa::new();
    work.edit_config(
        "branch = \"main\"\n",
        &format!(
            "branch = \"main\"\nca_file = \"{}\"\n",
            stranger.ca_cert.display()
        ),
    );
    let out = work.once(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        show(&out).contains("not trusted by the system's roots or by ca_file"),
        "{}",
        show(&out)
    );
    assert_eq!(remote.subjects(), ["seed"]);

    // The server's own CA: fetch and push over HTTPS.
    work.edit_config(
        &stranger.ca_cert.display().to_string(),
        &ca.ca_cert.display().to_string(),
    );
    expect(&work.once(&[]), 0, &["app/dev: promoted 1.0.0 -> 1.1.0"]);
    assert_eq!(remote.subjects(), ["app: dev 1.0.0 -> 1.1.0", "seed"]);
}

/// A remote that is down, over each network transport: one error naming
/// the remote (without its secret), exit 1, quickly, and nothing written.
#[test]
fn a_server_that_is_down_is_one_clear_error_on_every_transport() {
    let moto = Moto::start();
    moto.seed("app", &[("1.0.0", 1), ("1.1.0", 2)]);
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("key"),
        "not read: the connection fails first",
    )
    .unwrap();
    std::fs::write(dir.path().join("known_hosts"), "").unwrap();
    for url in [
        format!("http://git:{TOKEN}@127.0.0.1:{port}/remote.git"),
        format!("https://127.0.0.1:{port}/remote.git"),
        format!("git://127.0.0.1:{port}/remote.git"),
        format!("ssh://git@127.0.0.1:{port}/srv/remote.git"),
    ] {
        let work = Workdir::new(&moto.endpoint, &url, &[("app", "app", "^1", "values.yaml")]);
        if url.starts_with("ssh") {
            work.edit_config(
                "branch = \"main\"\n",
                &format!(
                    "branch = \"main\"\nssh_key_file = \"{0}/key\"\nknown_hosts_file = \"{0}/known_hosts\"\n",
                    dir.path().display()
                ),
            );
        }
        let started = std::time::Instant::now();
        let out = work.once(&[]);
        let all = show(&out);
        assert_eq!(out.status.code(), Some(1), "{url}: {all}");
        assert!(
            all.contains(&format!("127.0.0.1:{port}")),
            "{url}: the error should name the remote: {all}"
        );
        assert!(!all.contains(TOKEN), "{url}: the token leaked: {all}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{url}: took {:?}",
            started.elapsed()
        );
        // One attempt, one error: no retry storm against a dead remote.
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.matches("fetch failed").count(), 1, "{url}: {all}");
        assert!(all.contains("Connection refused"), "{url}: {all}");
    }
}

/// Issue 13 item 12: the credentials callback ignored the URL it was asked
/// for, and libgit2 follows an off-site redirect on the first request, so
/// a remote answering `302` elsewhere handed the token to whoever was
/// there. Now an off-site redirect is refused outright (the other host is
/// never contacted), and a redirect libgit2 does follow (same host, another
/// port) gets no credentials: only the configured host and port do. The
/// other server asks for credentials as a real one would, and records
/// every request; no `Authorization` header ever reaches it.
#[test]
fn the_git_token_never_follows_a_redirect_to_another_host() {
    let moto = Moto::start();
    moto.seed("app", &[("1.0.0", 1), ("1.1.0", 2)]);
    for (case, elsewhere_ip) in [("another host", "127.0.0.2"), ("another port", "127.0.0.1")] {
        let elsewhere = HttpPeer::start(elsewhere_ip, |_| {
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
                .to_string()
        });
        let target = format!("http://{elsewhere_ip}:{}", elsewhere.port);
        let remote = HttpPeer::start("127.0.0.1", move |path| {
            format!(
                "HTTP/1.1 302 Found\r\nLocation: {target}{path}\r\n\
                 Content-Length: 0\r\nConnection: close\r\n\r\n"
            )
        });
        let work = Workdir::new(
            &moto.endpoint,
            &format!("http://127.0.0.1:{}/remote.git", remote.port),
            &[("app", "app", "^1", "values.yaml")],
        );
        std::fs::write(work.dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
        work.edit_config(
            "branch = \"main\"",
            "branch = \"main\"\ntoken_file = \"token\"\nusername = \"git\"",
        );

        let out = work.once(&[]);
        let all = show(&out);
        assert_eq!(out.status.code(), Some(1), "{case}: {all}");
        assert!(
            !remote.requests().is_empty(),
            "{case}: the configured remote was never asked: {all}"
        );
        let leaked: Vec<String> = elsewhere
            .requests()
            .into_iter()
            .filter(|r| r.to_ascii_lowercase().contains("authorization:"))
            .collect();
        assert!(
            leaked.is_empty(),
            "{case}: the other server got credentials: {leaked:?}"
        );
        if case == "another host" {
            assert_eq!(
                elsewhere.requests(),
                Vec::<String>::new(),
                "{case}: the redirect was followed"
            );
        }
        assert!(
            all.contains("redirect"),
            "{case}: the error should name the redirect: {all}"
        );
        assert!(!all.contains(TOKEN), "{case}: the token leaked: {all}");
        eprintln!("{case}: {}", String::from_utf8_lossy(&out.stdout).trim());
    }
}

/// A small HTTP/1.1 peer on loopback: answers every request with what
/// `answer` makes of its path, and keeps each request's head.
struct HttpPeer {
    port: u16,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl HttpPeer {
    fn start(ip: &str, answer: impl Fn(&str) -> String + Send + 'static) -> HttpPeer {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind((ip, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        // Detached: it ends with the test process.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut head = String::new();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                log.lock().unwrap().push(head);
                let _ = stream.write_all(answer(&path).as_bytes());
            }
        });
        HttpPeer { port, seen }
    }

    fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}
