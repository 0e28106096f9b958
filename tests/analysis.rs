//! The `analysis` gate end to end: the real `tagwatch` binary, moto's ECR,
//! a real bare git repository, and a real Prometheus (Debian's package,
//! unpacked by scripts/test into .tools/) scraping an exporter this test
//! controls, so the query sees a healthy dev and then a failing one.

#[path = "support/forge/mod.rs"]
mod forge;
#[path = "support/prometheus.rs"]
mod prometheus;
mod support;

use std::time::{Duration, Instant};

use forge::{GitHubConfig, GitHubFake};
use prometheus::{Exporter, Prometheus};
use support::*;

/// dev's error ratio, as the exporter serves it for app/dev/1.1.0.
const QUERY: &str = r#"errors_ratio{app="{{app}}",env="{{env}}",tag="{{tag}}"} < 0.01"#;
const RENDERED: &str = r#"errors_ratio{app="app",env="dev",tag="1.1.0"} < 0.01"#;

/// The exporter's text: the one series the query reads, at `value`.
fn ratio(exporter: &Exporter, value: f64) {
    exporter.set(&format!(
        "# TYPE errors_ratio gauge\nerrors_ratio{{app=\"app\",env=\"dev\",tag=\"1.1.0\"}} {value}\n"
    ));
}

/// Waits until Prometheus has scraped `value` for dev.
fn scraped(prometheus: &Prometheus, value: &str) {
    prometheus.wait_for(
        r#"errors_ratio{app="app",env="dev",tag="1.1.0"}"#,
        &format!("\"{value}\""),
    );
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
    ratio(&exporter, 0.5);
    let prometheus = Prometheus::start(exporter.port);
    scraped(&prometheus, "0.5");
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

    ratio(&exporter, 0.001);
    scraped(&prometheus, "0.001");
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
    ratio(&exporter, 0.001);
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
    scraped(&prometheus, "0.001");
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
