//! What a running daemon says about its targets, on every surface at
//! once: `/status`, `/metrics` and the cycle it ran. Regression tests for
//! issue 13 items 3, 4 and 5, through the real binary.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::*;

fn get(port: u16, path: &str) -> String {
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
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// The `tagwatch_target_info` tag label of `app`/`env` in a scrape.
fn info_tag(metrics: &str, app: &str, env: &str) -> Vec<String> {
    let prefix = format!("tagwatch_target_info{{app=\"{app}\",env=\"{env}\",tag=\"");
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|rest| rest.split_once('"').map(|(tag, _)| tag.to_string()))
        .collect()
}

fn gauge(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// dev (an image reference) takes 1.1.0; prod (promote_from dev, soak 1h)
/// waits for it; qa (promote_from dev, soak 1h) already holds dev's old
/// value... until dev moves. Over several cycles every surface names the
/// tag, the same tag every cycle, and a waiting target shows its
/// candidate.
#[test]
fn every_surface_names_the_tag_and_a_waiting_target_its_candidate() {
    let moto = Moto::start();
    // A tag outside the OCI grammar (moto takes any string; ECR would
    // not): never a candidate, counted, logged once.
    moto.seed("web", &[("1.0.0", 1), ("9.9.9\nTagwatch-To: 9.9.9", 3)]);
    let image = |tag: &str| format!("image: reg.io/acme/web:{tag}\n");
    let remote = GitRemote::new(&[
        ("dev.yaml", image("1.0.0").as_str()),
        ("prod.yaml", image("1.0.0").as_str()),
    ]);
    let port = free_port();
    let work = Workdir::new(
        &moto.endpoint,
        &remote.file_url(),
        &[("web", "web", "^1", "dev.yaml")],
    );
    let text = std::fs::read_to_string(&work.config)
        .unwrap()
        .replace("interval = \"2m\"", "interval = \"1s\"")
        .replace("listen = \"127.0.0.1:0\"", &format!("listen = \"127.0.0.1:{port}\""))
        .replace(
            "file = \"dev.yaml\"\nkey = \"image.tag\"\n",
            "file = \"dev.yaml\"\nkey = \"image\"\nformat = \"image\"\n\n[[apps.targets]]\nenv = \"prod\"\nfile = \"prod.yaml\"\nkey = \"image\"\nformat = \"image\"\npromote_from = \"dev\"\nsoak = \"1h\"\n",
        );
    std::fs::write(&work.config, text).unwrap();
    let log = work.dir.path().join("daemon.log");
    let daemon = Daemon::start(&work.config, &log);
    let deadline = Instant::now() + Duration::from_secs(30);
    let cycles = |n: usize| {
        while daemon.count("cycle finished") < n {
            assert!(Instant::now() < deadline, "{}", daemon.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    // Both hold 1.0.0; prod holds its source's value: nothing is pending
    // (item 3), whatever the soak.
    cycles(2);
    let metrics = get(port, "/metrics");
    assert_eq!(
        gauge(
            &metrics,
            "tagwatch_pending_promotions{app=\"web\",env=\"prod\"}"
        ),
        Some(0.0),
        "{metrics}"
    );
    let status: serde_json::Value = serde_json::from_str(&get(port, "/status")).unwrap();
    let prod = status["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["env"] == "prod")
        .unwrap()
        .clone();
    assert_eq!(prod["waiting"], serde_json::Value::Null, "{status}");

    moto.seed("web", &[("1.1.0", 2)]);
    remote.wait_for_commits(2, deadline, "dev was not promoted");
    let after = daemon.count("cycle finished");
    // Sample three cycles after the promotion: the promoting cycle's value
    // and the later "up to date" cycles' must be the same tag (item 4).
    for n in 1..=3 {
        cycles(after + n);
        let metrics = get(port, "/metrics");
        assert_eq!(info_tag(&metrics, "web", "dev"), ["1.1.0"], "{metrics}");
        assert_eq!(info_tag(&metrics, "web", "prod"), ["1.0.0"], "{metrics}");
        assert_eq!(
            gauge(
                &metrics,
                "tagwatch_pending_promotions{app=\"web\",env=\"prod\"}"
            ),
            Some(1.0)
        );
        let json = get(port, "/status");
        let status: serde_json::Value = serde_json::from_str(&json).unwrap();
        let row = |env: &str| {
            status["targets"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["env"] == env)
                .unwrap()
                .clone()
        };
        assert_eq!(row("dev")["current"], "1.1.0", "{json}");
        assert_eq!(row("dev")["value"], "reg.io/acme/web:1.1.0", "{json}");
        // The candidate is shown while it soaks, with why (item 5).
        assert_eq!(row("prod")["current"], "1.0.0", "{json}");
        assert_eq!(row("prod")["candidate"], "1.1.0", "{json}");
        let waiting = row("prod")["waiting"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            waiting.starts_with("dev has run 1.1.0 for") && waiting.ends_with("soak is 1h"),
            "{json}"
        );
    }
    let metrics = get(port, "/metrics");
    assert_eq!(
        gauge(
            &metrics,
            "tagwatch_repository_invalid_tags{repository=\"web\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        daemon.count("a tag outside the OCI tag grammar is never a candidate"),
        1,
        "logged once, not once per cycle"
    );
    let page = get(port, "/");
    assert!(page.contains("1.1.0"), "{page}");
}
