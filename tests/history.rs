//! `tagwatch history`: past promotions from the branch's trailers, as a
//! table, as JSON lines, filtered, and "what ran at time T".

mod support;

use std::time::Duration;

use support::*;

#[test]
fn lists_promotions_and_answers_what_ran_at_a_time() {
    let moto = Moto::start();
    moto.seed("payments-api", &[("1.4.2", 1), ("1.4.3", 2)]);
    let remote = GitRemote::new(&[
        ("values.yaml", "image:\n  tag: 1.4.2\n"),
        ("other.yaml", "image:\n  tag: 0.1.0\n"),
    ]);
    // A person's commit in between is not a promotion and is not listed.
    let work = Workdir::new(
        &moto.endpoint,
        &remote.file_url(),
        &[
            ("payments", "payments-api", "^1.4", "values.yaml"),
            ("other", "payments-api", "^0.1", "other.yaml"),
        ],
    );
    expect(
        &work.once(&[]),
        0,
        &["payments/dev: promoted 1.4.2 -> 1.4.3"],
    );
    // Commit times have whole-second resolution; keep the two apart.
    std::thread::sleep(Duration::from_millis(2100));
    let between = time::OffsetDateTime::now_utc() - Duration::from_secs(1);
    moto.seed("payments-api", &[("1.4.4", 3)]);
    expect(
        &work.once(&[]),
        0,
        &["payments/dev: promoted 1.4.3 -> 1.4.4"],
    );

    let config = work.config.to_str().unwrap();
    let out = tagwatch(&["history", "--config", config], work.dir.path());
    expect(&out, 0, &[]);
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].contains("  payments  dev  1.4.3 -> 1.4.4  sha256:"),
        "{lines:?}"
    );
    assert!(
        lines[1].contains("  payments  dev  1.4.2 -> 1.4.3  sha256:"),
        "{lines:?}"
    );

    let out = tagwatch(
        &["history", "--config", config, "--json", "--limit", "1"],
        work.dir.path(),
    );
    expect(&out, 0, &[]);
    let json: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(json.len(), 1);
    assert_eq!(
        (
            json[0]["app"].as_str(),
            json[0]["from"].as_str(),
            json[0]["to"].as_str()
        ),
        (Some("payments"), Some("1.4.3"), Some("1.4.4"))
    );
    let head = git(&remote.bare(), &["rev-parse", "main"]);
    assert_eq!(json[0]["commit"].as_str(), Some(head.trim()));

    // What did dev run between the two promotions? One line.
    let at = between
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let out = tagwatch(
        &[
            "history", "--config", config, "--app", "payments", "--env", "dev", "--at", &at,
        ],
        work.dir.path(),
    );
    expect(&out, 0, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.contains("1.4.2 -> 1.4.3"), "{stdout}");

    let out = tagwatch(
        &["history", "--config", config, "--app", "nope"],
        work.dir.path(),
    );
    assert_eq!(out.status.code(), Some(64), "{}", show(&out));
    let out = tagwatch(
        &["history", "--config", config, "--at", "yesterday"],
        work.dir.path(),
    );
    assert_eq!(out.status.code(), Some(64), "{}", show(&out));
}
