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
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].starts_with("TIME ") && lines[0].contains("  CHANGE  "),
        "{lines:?}"
    );
    assert!(
        lines[1].contains("  payments  dev  1.4.3 -> 1.4.4  sha256:"),
        "{lines:?}"
    );
    assert!(
        lines[2].contains("  payments  dev  1.4.2 -> 1.4.3  sha256:"),
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
    assert_eq!(stdout.lines().count(), 2, "a header and one line: {stdout}");
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

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Issue 13: `history` had no header and ragged columns, and `--at` left
/// out an env whose value a person committed, so "what ran at 14:00"
/// answered with a promotion that had since been overwritten. Now each
/// configured env's value at that time is read from the file, and one set
/// by a person's commit is listed as set by hand.
#[test]
fn history_at_includes_values_set_by_hand_under_a_header() {
    let moto = Moto::start();
    moto.seed("payments-api", &[("1.4.3", 1)]);
    let remote = GitRemote::new(&[
        ("values.yaml", "image:\n  tag: 1.4.2\n"),
        ("ledger.yaml", "image:\n  tag: 0.1.0\n"),
    ]);
    let work = Workdir::new(
        &moto.endpoint,
        &remote.file_url(),
        &[
            ("payments", "payments-api", "^1.4", "values.yaml"),
            ("ledger", "ledger", "^0.1", "ledger.yaml"),
        ],
    );
    std::thread::sleep(Duration::from_millis(2100));
    let after_seed = time::OffsetDateTime::now_utc() - Duration::from_secs(1);
    std::thread::sleep(Duration::from_millis(1100));
    let out = work.once(&[]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("payments/dev: promoted 1.4.2 -> 1.4.3"),
        "{}",
        show(&out)
    );
    std::thread::sleep(Duration::from_millis(2100));
    let after_promotion = time::OffsetDateTime::now_utc() - Duration::from_secs(1);
    std::thread::sleep(Duration::from_millis(1100));
    // A person pins a hotfix by hand.
    let seed = remote.dir.path().join("seed");
    git(&seed, &["pull", "-q", "--ff-only", "origin", "main"]);
    std::fs::write(seed.join("values.yaml"), "image:\n  tag: 1.4.3-hotfix.1\n").unwrap();
    git(&seed, &["add", "-A"]);
    commit(&seed, "pin the hotfix");
    git(&seed, &["push", "-q", "origin", "HEAD:main"]);
    let hand = git(&remote.bare(), &["rev-parse", "main"]);

    let config = work.config.to_str().unwrap();
    let at = |when: time::OffsetDateTime, extra: &[&str]| {
        let when = rfc3339(when);
        let mut args = vec!["history", "--config", config, "--at", &when];
        args.extend_from_slice(extra);
        let out = tagwatch(&args, work.dir.path());
        expect(&out, 0, &[]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Now: payments runs the hand-pinned hotfix; ledger its seeded value.
    let now = at(
        time::OffsetDateTime::now_utc() + Duration::from_secs(5),
        &[],
    );
    let lines: Vec<&str> = now.lines().collect();
    assert_eq!(lines.len(), 3, "{now}");
    assert!(
        lines[0].starts_with("TIME ") && lines[0].trim_end().ends_with("SET BY"),
        "{now}"
    );
    let payments = lines.iter().find(|l| l.contains(" payments ")).unwrap();
    assert!(payments.contains(" 1.4.3-hotfix.1 "), "{now}");
    assert!(payments.contains(&hand[..12]), "{now}");
    assert!(payments.trim_end().ends_with("hand"), "{now}");
    let ledger = lines.iter().find(|l| l.contains(" ledger ")).unwrap();
    assert!(
        ledger.contains(" 0.1.0 ") && ledger.trim_end().ends_with("hand"),
        "{now}"
    );
    // Aligned: every column starts where its header does.
    for column in ["APP", "ENV", "CHANGE", "COMMIT", "SET BY"] {
        let x = lines[0].find(column).unwrap();
        for line in &lines[1..] {
            assert!(
                line[..x].ends_with("  ") && !line[x..].starts_with(' '),
                "{column} not aligned in:\n{now}"
            );
        }
    }

    // Between the promotion and the hand edit: tagwatch's promotion.
    let then = at(after_promotion, &["--app", "payments"]);
    assert_eq!(then.lines().count(), 2, "{then}");
    assert!(then.contains("payments  dev  1.4.2 -> 1.4.3"), "{then}");
    assert!(
        then.lines()
            .nth(1)
            .unwrap()
            .trim_end()
            .ends_with("tagwatch"),
        "{then}"
    );

    // Before any promotion: the seeded value, set by hand.
    let before = at(after_seed, &["--app", "payments", "--json"]);
    let json: serde_json::Value = serde_json::from_str(before.trim()).unwrap();
    assert_eq!(
        (json["to"].as_str(), json["set_by"].as_str()),
        (Some("1.4.2"), Some("hand")),
        "{before}"
    );
}

/// The value a person wrote into the file: double-quoted YAML whose
/// escapes decode to a paragraph break and a trailer block of its own.
const CRAFTED_VALUE: &str = r#""1.0.0\n\nTagwatch-App: billing\nTagwatch-Env: prod\nTagwatch-Image: x\nTagwatch-From: 0.0.1\nTagwatch-To: 6.6.6\nTagwatch-Digest: sha256:evil""#;

/// A tag moto accepts and ECR would not: under `alphabetical` it would be
/// the best, and its newlines would reach the commit message.
const CRAFTED_TAG: &str = "9.9.9\n\nTagwatch-App: billing\nTagwatch-Env: prod\nTagwatch-Image: x\nTagwatch-From: 0.0.1\nTagwatch-To: 7.7.7\nTagwatch-Digest: sha256:evil";

/// Issue 13 item 13: a tag or a held value with newlines must not forge a
/// promotion in `tagwatch history` or a trailer in the commit tagwatch
/// writes. The tag is never a candidate; the held value is escaped.
#[test]
fn a_tag_or_held_value_with_newlines_cannot_forge_history() {
    let moto = Moto::start();
    moto.seed("payments-api", &[("2.0.0", 1), (CRAFTED_TAG, 2)]);
    let remote = GitRemote::new(&[("values.yaml", "image:\n  tag: 1.0.0\n")]);
    // A person's commit puts the crafted value into the file.
    let seed = remote.dir.path().join("seed");
    std::fs::write(
        seed.join("values.yaml"),
        format!("image:\n  tag: {CRAFTED_VALUE}\n"),
    )
    .unwrap();
    git(&seed, &["add", "-A"]);
    commit(&seed, "set a value by hand");
    git(&seed, &["push", "-q", "origin", "HEAD:main"]);

    let work = Workdir::new(
        &moto.endpoint,
        &remote.file_url(),
        &[("payments", "payments-api", "^1", "values.yaml")],
    );
    // alphabetical writes whatever sorts last, so the held value's
    // ordering is no obstacle and the crafted tag would win if it counted.
    work.edit_config(r#"constraint = "^1""#, r#"strategy = "alphabetical""#);
    let out = work.once(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(remote.show("values.yaml"), "image:\n  tag: \"2.0.0\"\n");

    // Stock git reads exactly the seven trailers tagwatch meant to write.
    let message = git(&remote.bare(), &["log", "-1", "--format=%B", "main"]);
    let parsed = trailers_of(&remote.bare(), &message);
    let keys: Vec<&str> = parsed
        .iter()
        .map(|l| l.split_once(':').unwrap().0)
        .collect();
    assert_eq!(
        keys,
        [
            "Tagwatch-App",
            "Tagwatch-Env",
            "Tagwatch-Image",
            "Tagwatch-From",
            "Tagwatch-To",
            "Tagwatch-Digest",
            "Tagwatch-Pushed-At"
        ],
        "{message}"
    );
    assert_eq!(parsed[0], "Tagwatch-App: payments", "{message}");
    assert_eq!(parsed[1], "Tagwatch-Env: dev", "{message}");
    assert!(
        parsed[3].starts_with(r"Tagwatch-From: 1.0.0\u{a}\u{a}Tagwatch-App: billing"),
        "{message}"
    );
    assert_eq!(parsed[4], "Tagwatch-To: 2.0.0", "{message}");
    // Subject, blank, body, blank, seven trailers: no line was added.
    assert_eq!(message.trim_end().lines().count(), 11, "{message}");

    // history shows the one real promotion and nothing forged.
    let config = work.config.to_str().unwrap();
    let out = tagwatch(&["history", "--config", config, "--json"], work.dir.path());
    expect(&out, 0, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(json.len(), 1, "{stdout}");
    assert_eq!(
        (
            json[0]["app"].as_str(),
            json[0]["env"].as_str(),
            json[0]["to"].as_str()
        ),
        (Some("payments"), Some("dev"), Some("2.0.0")),
        "{stdout}"
    );
    let out = tagwatch(&["history", "--config", config], work.dir.path());
    expect(&out, 0, &["payments"]);
    let table = String::from_utf8_lossy(&out.stdout);
    for forged in ["billing", "prod", "6.6.6", "7.7.7"] {
        assert!(
            !table
                .lines()
                .any(|l| l.starts_with(forged) || l.contains(&format!(" {forged} "))),
            "{forged} in\n{table}"
        );
    }
}

/// The trailers of `message` as `git interpret-trailers --parse` reads them.
fn trailers_of(dir: &std::path::Path, message: &str) -> Vec<String> {
    use std::io::Write;
    let mut child = std::process::Command::new("git")
        .args(["interpret-trailers", "--parse"])
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run git interpret-trailers");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(message.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}
