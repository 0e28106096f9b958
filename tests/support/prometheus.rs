//! A real Prometheus (Debian's package, unpacked by scripts/test into
//! .tools/) scraping an exporter whose text the test sets: the peer for
//! PromQL rules (`verify`). Both stop when dropped.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{free_port, http, root};

/// A `/metrics` endpoint whose text the test sets; one thread, for the
/// life of the test process.
pub struct Exporter {
    pub port: u16,
    text: Arc<Mutex<String>>,
}

impl Exporter {
    pub fn start() -> Exporter {
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

    /// What the next scrape returns.
    pub fn set(&self, text: &str) {
        *self.text.lock().unwrap() = text.to_string();
    }
}

/// A real Prometheus on loopback, scraping one target every second.
pub struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    pub fn start(target: u16) -> Prometheus {
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
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
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

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Waits until `query`'s answer contains `needle` (a value as
    /// Prometheus prints it, `"1"`, or `[]` for an empty vector).
    pub fn wait_for(&self, query: &str, needle: &str) {
        let path = format!("/api/v1/query?query={}", encode(query));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, body) = http(&self.url(), "GET", &path, "");
            if body.contains(needle) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{query} never gave {needle}: {body}"
            );
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
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}
