//! The `analysis` gate end to end: the real `tagwatch` binary, moto's ECR,
//! a real bare git repository, and a real Prometheus (Debian's package,
//! unpacked by scripts/test into .tools/) scraping an exporter this test
//! controls, so the query sees a healthy dev and then a failing one.

#[path = "support/forge/mod.rs"]
mod forge;
mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use forge::{GitHubConfig, GitHubFake};
use support::*;

/// dev's error ratio, as the exporter serves it for app/dev/1.1.0.
const QUERY: &str = r#"errors_ratio{app="{{app}}",env="{{env}}",tag="{{tag}}"} < 0.01"#;
const RENDERED: &str = r#"errors_ratio{app="app",env="dev",tag="1.1.0"} < 0.01"#;

/// A `/metrics` endpoint whose text the test sets; one thread, for the
/// life of the test process.
struct Exporter {
    port: u16,
    text: Arc<Mutex<String>>,
}

impl Exporter {
    fn start() -> Exporter {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let text = Arc::new(Mutex::new(String::new()));
        let served = Arc::clone(&text);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let body = served.lock().unwrap().clone();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Exporter { port, text }
    }

    fn ratio(&self, value: f64) {
        *self.text.lock().unwrap() = format!(
            "# TYPE errors_ratio gauge\nerrors_ratio{{app=\"app\",env=\"dev\",tag=\"1.1.0\"}} {value}\n"
        );
    }
}

/// A real Prometheus on loopback, scraping `target` every second; killed
/// on drop.
struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: u16) -> Prometheus {
        let bin = root().join(".tools/prometheus/usr/bin/prometheus");
        assert!(
            bin.exists(),
            "{} is missing: run scripts/test, which unpacks Debian's prometheus package",
            bin.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: dev\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        let prometheus = Prometheus {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
            || http(&prometheus.url(), "GET", "/-/ready", "").0 != 200
        {
            assert!(Instant::now() < deadline, "prometheus did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        prometheus
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Waits until Prometheus has scraped `value` for dev.
    fn wait_for(&self, value: &str) {
        let path = format!(
            "/api/v1/query?query={}",
            encode(r#"errors_ratio{app="app",env="dev",tag="1.1.0"}"#)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, body) = http(&self.url(), "GET", &path, "");
            if body.contains(&format!("\"{value}\"")) {
                return;
            }
            assert!(Instant::now() < deadline, "never scraped {value}: {body}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encoding for a query-string value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// `app` with dev on 1.1.0 and prod on 1.0.0, prod promoted from dev by
/// commit once `QUERY` returns a sample, Prometheus at `url`.
fn scene(url: &str) -> (Moto, GitRemote, Workdir) {
    let moto = Moto::start();
    moto.seed("app", &[("1.0.0", 1), ("1.1.0", 2)]);
    let remote = GitRemote::new(&[
        ("dev.yaml", "image:\n  tag: 1.1.0\n"),
        ("prod.yaml", "image:\n  tag: 1.0.0\n"),
    ]);
    let work = Workdir::new(
        &moto.endpoint,
        &remote.file_url(),
        &[("app", "app", ">=1.0.0", "dev.yaml")],
    );
    let text = std::fs::read_to_string(&work.config).unwrap();
    std::fs::write(
        &work.config,
        format!(
            "{text}\n[[apps.targets]]\nenv = \"prod\"\nfile = \"prod.yaml\"\nkey = \"image.tag\"\npromote_from = \"dev\"\nanalysis = '{QUERY}'\n\n[prometheus]\nurl = \"{url}\"\n"
        ),
    )
    .unwrap();
    (moto, remote, work)
}

#[test]
fn a_failing_analysis_waits_and_a_passing_one_promotes() {
    let exporter = Exporter::start();
    exporter.ratio(0.5);
    let prometheus = Prometheus::start(exporter.port);
    prometheus.wait_for("0.5");
    let (_moto, remote, work) = scene(&prometheus.url());

    let out = work.once(&[]);
    expect(
        &out,
        0,
        &[&format!(
            "app/prod: waiting: from dev: analysis `{RENDERED}` returned no sample"
        )],
    );
    assert_eq!(remote.show("prod.yaml"), "image:\n  tag: 1.0.0\n");

    exporter.ratio(0.001);
    prometheus.wait_for("0.001");
    let out = work.once(&[]);
    expect(&out, 0, &["app/prod: promoted 1.0.0 -> 1.1.0"]);
    assert_eq!(remote.show("prod.yaml"), "image:\n  tag: 1.1.0\n");
}

#[test]
fn an_unreachable_prometheus_keeps_the_target_waiting_never_promotes() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let (_moto, remote, work) = scene(&url);
    for _ in 0..2 {
        let out = work.once(&[]);
        expect(
            &out,
            0,
            &[&format!(
                "app/prod: waiting: from dev: analysis `{RENDERED}`: Prometheus at {url} is unreachable"
            )],
        );
        assert_eq!(remote.show("prod.yaml"), "image:\n  tag: 1.0.0\n");
    }
}

#[test]
fn a_bad_analysis_exits_64_naming_file_line_and_key() {
    let (_moto, _remote, work) = scene("http://127.0.0.1:9");
    let config = work.config.to_str().unwrap().to_string();
    let good = std::fs::read_to_string(&work.config).unwrap();
    let line = good
        .lines()
        .position(|l| l.starts_with("analysis"))
        .unwrap()
        + 1;
    let cases: &[(&str, &str, &str)] = &[
        (
            "{{tag}}\"}",
            "{{version}}\"}",
            "apps[0].targets[1].analysis: unknown placeholder {{version}}",
        ),
        (
            "promote_from = \"dev\"\n",
            "",
            "analysis is checked on the promote_from env",
        ),
        (
            "[prometheus]\nurl = \"http://127.0.0.1:9\"\n",
            "",
            "analysis needs a [prometheus] section",
        ),
    ];
    for (from, to, message) in cases {
        std::fs::write(&work.config, good.replacen(from, to, 1)).unwrap();
        let out = work.once(&[]);
        let text = show(&out);
        assert_eq!(out.status.code(), Some(64), "{text}");
        let at = format!(
            "{config}:{}:",
            if *from == "promote_from = \"dev\"\n" {
                line - 1
            } else {
                line
            }
        );
        assert!(text.contains(&at), "{at} not in {text}");
        assert!(text.contains(message), "{message} not in {text}");
    }
}

#[test]
fn a_pull_request_body_states_the_analysis_result() {
    let exporter = Exporter::start();
    exporter.ratio(0.001);
    let prometheus = Prometheus::start(exporter.port);
    let (_moto, remote, work) = scene(&prometheus.url());
    let fake = GitHubFake::start(
        GitHubConfig::new("acme", "gitops")
            .token("forge-token-1")
            .git_dir(&remote.bare()),
    );
    work.edit_config(
        "file = \"prod.yaml\"\n",
        "file = \"prod.yaml\"\nupdate = \"pull-request\"\n",
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
    prometheus.wait_for("0.001");
    let out = work.once(&[]);
    expect(&out, 0, &["app/prod: proposed 1.0.0 -> 1.1.0"]);
    let pulls = fake.pulls();
    let body = pulls[0].body.clone().unwrap_or_default();
    // The body escapes Markdown, so look for the parts around the query.
    for needle in ["gate analysis passed: analysis", "= 0.001"] {
        assert!(body.contains(needle), "{needle:?} not in {body}");
    }
}

/// GET `path` from the daemon's HTTP port; the body.
fn get(port: u16, path: &str) -> String {
    let (_, body) = http(&format!("http://127.0.0.1:{port}"), "GET", path, "");
    body
}

#[test]
fn status_and_metrics_name_the_analysis_that_keeps_a_target_waiting() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let (_moto, remote, work) = scene(&url);
    let port = free_port();
    let text = std::fs::read_to_string(&work.config)
        .unwrap()
        .replace("interval = \"2m\"", "interval = \"1s\"")
        .replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        );
    std::fs::write(&work.config, text).unwrap();
    let log = work.dir.path().join("daemon.log");
    let daemon = Daemon::start(&work.config, &log);
    let deadline = Instant::now() + Duration::from_secs(30);
    while daemon.count("cycle finished") < 2 {
        assert!(Instant::now() < deadline, "{}", daemon.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    let json = get(port, "/status");
    let status: serde_json::Value = serde_json::from_str(&json).unwrap();
    let prod = status["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["env"] == "prod")
        .unwrap()
        .clone();
    let waiting = prod["waiting"].as_str().unwrap_or_default();
    assert!(
        waiting.starts_with(&format!(
            "from dev: analysis `{RENDERED}`: Prometheus at {url} is unreachable"
        )),
        "{json}"
    );
    assert_eq!(prod["candidate"], "1.1.0", "{json}");
    let metrics = get(port, "/metrics");
    let errors = metric(
        &metrics,
        "tagwatch_gate_results_total",
        &[("gate", "analysis"), ("outcome", "error")],
    );
    assert!(errors >= 2.0, "{metrics}");
    daemon.stop();
    assert_eq!(remote.show("prod.yaml"), "image:\n  tag: 1.0.0\n");
}
