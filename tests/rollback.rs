//! Rollbacks that stick, through the real binary against moto and a real
//! git remote: a person's revert is respected, holds freeze a target, and
//! `tagwatch rollback` sets a target back and denies the tag. Time is
//! injected with `once --now`, never slept.

#[allow(dead_code)]
#[path = "support/argocd.rs"]
mod argocd_fake;
#[path = "support/forge/mod.rs"]
mod forge;
#[path = "support/prometheus.rs"]
mod prometheus;
mod support;

use forge::{GitHubConfig, GitHubFake};
use support::*;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const FILES: &[(&str, &str)] = &[
    ("dev.yaml", "image:\n  tag: 1.4.4\n"),
    ("prod.yaml", "image:\n  tag: 1.4.4\n"),
];

fn at(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
}

/// `app` with dev (commit) and prod (commit, promote_from dev after a
/// one-hour soak), both at 1.4.4.
fn scene(moto: &Moto, remote: &GitRemote) -> Workdir {
    let work = Workdir::new(
        &moto.endpoint,
        &remote.file_url(),
        &[("app", "app", ">=1.0.0", "dev.yaml")],
    );
    let text = std::fs::read_to_string(&work.config).unwrap();
    std::fs::write(
        &work.config,
        format!(
            "{text}\n[[apps.targets]]\nenv = \"prod\"\nfile = \"prod.yaml\"\nkey = \"image.tag\"\npromote_from = \"dev\"\nsoak = \"1h\"\n"
        ),
    )
    .unwrap();
    work
}

/// A person's plain commit (no trailers) that sets `file` to `text`.
fn person_commits(remote: &GitRemote, file: &str, text: &str, message: &str) {
    let work = remote.dir.path().join("person");
    if !work.exists() {
        git(
            remote.dir.path(),
            &["clone", "-q", remote.bare().to_str().unwrap(), "person"],
        );
    }
    git(&work, &["pull", "-q", "--ff-only", "origin", "main"]);
    std::fs::write(work.join(file), text).unwrap();
    git(&work, &["add", "-A"]);
    commit(&work, message);
    git(&work, &["push", "-q", "origin", "HEAD:main"]);
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Argo CD Image Updater #1249: a person rolls dev back in git and the
/// updater puts the broken tag straight back. Here the revert sticks for
/// ten cycles, a newer tag still flows, and prod never takes the reverted
/// tag.
#[test]
fn a_persons_revert_sticks_and_newer_tags_still_flow() {
    let moto = Moto::start();
    moto.seed("app", &[("1.4.4", 1), ("1.4.5", 2)]);
    let remote = GitRemote::new(FILES);
    let work = scene(&moto, &remote);
    let t0 = now();

    expect(
        &work.once(&["--now", &at(t0)]),
        0,
        &[
            "app/dev: promoted 1.4.4 -> 1.4.5",
            "app/prod: waiting: dev has run 1.4.5",
        ],
    );
    person_commits(
        &remote,
        "dev.yaml",
        "image:\n  tag: 1.4.4\n",
        "dev: back to 1.4.4, 1.4.5 is broken",
    );
    let revert = git(&remote.bare(), &["rev-parse", "main"]);
    let short = &revert.trim()[..12];

    for i in 1..=10 {
        let out = work.once(&["--now", &at(t0 + time::Duration::minutes(10 * i))]);
        expect(
            &out,
            0,
            &[
                &format!(
                    "app/dev: no candidate in the registry (1.4.5 denied: rolled back by Person in {short}); keeping 1.4.4"
                ),
                "app/prod: up to date at 1.4.4",
            ],
        );
    }
    assert_eq!(remote.show("dev.yaml"), "image:\n  tag: 1.4.4\n");
    assert_eq!(remote.show("prod.yaml"), "image:\n  tag: 1.4.4\n");
    // policy test --explain says why 1.4.5 is not chosen, for dev and for
    // prod downstream of it.
    for env in ["dev", "prod"] {
        let out = tagwatch(
            &[
                "policy",
                "test",
                "--explain",
                "--config",
                work.config.to_str().unwrap(),
                "--app",
                "app",
                "--env",
                env,
            ],
            work.dir.path(),
        );
        expect(
            &out,
            0,
            &[
                &format!("1.4.5  1.4.5 denied: rolled back by Person in {short}"),
                "\n1.4.4\n",
            ],
        );
    }
    // Past the soak of the original promotion too: prod never took 1.4.5.
    moto.seed("app", &[("1.4.6", 3)]);
    let t1 = t0 + time::Duration::hours(2);
    expect(
        &work.once(&["--now", &at(t1)]),
        0,
        &[
            "app/dev: promoted 1.4.4 -> 1.4.6",
            "app/prod: waiting: dev has run 1.4.6",
        ],
    );
    expect(
        &work.once(&["--now", &at(t1 + time::Duration::hours(2))]),
        0,
        &["app/prod: promoted 1.4.4 -> 1.4.6"],
    );
    let subjects = remote.subjects();
    assert!(
        !subjects
            .iter()
            .any(|s| s.contains("prod") && s.contains("1.4.5")),
        "{subjects:?}"
    );
    // A dry run says the same as a real run would.
    let out = work.once(&["--dry-run", "--now", &at(t1 + time::Duration::hours(3))]);
    expect(&out, 0, &["app/dev: up to date at 1.4.6"]);
}

/// `tagwatch CMD --config … ARGS` in the scene's directory.
fn run(work: &Workdir, command: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec![command, "--config", work.config.to_str().unwrap()];
    all.extend_from_slice(args);
    tagwatch(&all, work.dir.path())
}

/// `command` with `args` exits 64, says `says` on stderr, and writes
/// nothing to the remote.
fn refused(work: &Workdir, remote: &GitRemote, command: &str, args: &[&str], says: &str) {
    let before = head(remote);
    let out = run(work, command, args);
    assert_eq!(out.status.code(), Some(64), "{args:?}\n{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(says), "{says:?}: {}", show(&out));
    assert_eq!(head(remote), before, "{command} {args:?} wrote");
}

fn head(remote: &GitRemote) -> String {
    git(&remote.bare(), &["rev-parse", "main"])
        .trim()
        .to_string()
}

#[test]
fn hold_freezes_a_target_until_released_or_until_it_lapses() {
    let moto = Moto::start();
    moto.seed("app", &[("1.4.4", 1), ("1.4.5", 2)]);
    let remote = GitRemote::new(FILES);
    let work = scene(&moto, &remote);
    let t0 = now();

    // Bad arguments: 64, and nothing written.
    for (args, says) in [
        (&["--app", "nope", "--reason", "r"][..], "no app \"nope\""),
        (
            &["--app", "app", "--env", "qa", "--reason", "r"][..],
            "has no env \"qa\"",
        ),
        (
            &["--app", "app", "--until", "soon", "--reason", "r"][..],
            "--until \"soon\"",
        ),
        (
            &[
                "--app",
                "app",
                "--until",
                "2020-01-01T00:00:00Z",
                "--reason",
                "r",
            ][..],
            "not in the future",
        ),
        (
            &["--app", "app", "--reason", " "][..],
            "--reason must say why",
        ),
    ] {
        refused(&work, &remote, "hold", args, says);
    }

    // Held for 30 minutes on the injected clock.
    let out = run(
        &work,
        "hold",
        &[
            "--app",
            "app",
            "--env",
            "dev",
            "--until",
            "30m",
            "--reason",
            "incident 42",
            "--by",
            "alice",
            "--now",
            &at(t0),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(stdout(&out).trim(), head(&remote));
    assert_eq!(remote.subjects()[0], "tagwatch: hold app/dev");
    let trailers = git(
        &remote.bare(),
        &["log", "-1", "--format=%(trailers)", "main"],
    );
    assert!(trailers.contains("Tagwatch-Hold: app/dev"), "{trailers}");
    assert!(
        trailers.contains("Tagwatch-Reason: incident 42"),
        "{trailers}"
    );
    let until = at(t0 + time::Duration::minutes(30));
    assert!(remote.show(".tagwatch/holds.toml").contains(&until));

    let held = format!("app/dev: waiting: held by alice until {until}: incident 42");
    for extra in [&[][..], &["--dry-run"][..]] {
        let mut args = vec!["--now".to_string(), at(t0 + time::Duration::minutes(29))];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        expect(&work.once(&args), 0, &[&held]);
    }
    assert_eq!(remote.show("dev.yaml"), "image:\n  tag: 1.4.4\n");
    // Lapsed: dev takes 1.4.5 at once.
    expect(
        &work.once(&["--now", &at(t0 + time::Duration::minutes(30))]),
        0,
        &["app/dev: promoted 1.4.4 -> 1.4.5"],
    );

    // The whole app, until released; releasing dev leaves prod held.
    let out = run(
        &work,
        "hold",
        &["--app", "app", "--reason", "freeze", "--by", "bob"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(remote.subjects()[0], "tagwatch: hold app/dev, app/prod");
    let t1 = t0 + time::Duration::hours(3);
    expect(
        &work.once(&["--now", &at(t1)]),
        0,
        &[
            "app/dev: waiting: held by bob: freeze",
            "app/prod: waiting: held by bob: freeze",
        ],
    );
    let out = run(&work, "release", &["--app", "app", "--env", "prod"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(remote.subjects()[0], "tagwatch: release app/prod");
    expect(
        &work.once(&["--now", &at(t1)]),
        0,
        &[
            "app/dev: waiting: held by bob: freeze",
            "app/prod: promoted 1.4.4 -> 1.4.5",
        ],
    );
    // history shows holds and releases as events, with their kind.
    let out = run(&work, "history", &["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let events: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap(),
                e["env"].as_str().unwrap(),
                e["reason"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("promotion", "prod", ""),
            ("release", "prod", ""),
            ("hold", "dev", "freeze"),
            ("hold", "prod", "freeze"),
            ("promotion", "dev", ""),
            ("hold", "dev", "incident 42"),
        ],
        "{events:?}"
    );
    // Releasing what is not held writes nothing.
    let before = head(&remote);
    let out = run(&work, "release", &["--app", "app", "--env", "prod"]);
    expect(&out, 0, &["nothing to change; nothing written"]);
    assert_eq!(head(&remote), before);
}

#[test]
fn rollback_sets_a_commit_target_back_and_denies_the_tag() {
    let moto = Moto::start();
    moto.seed("app", &[("1.4.3", 1), ("1.4.4", 2), ("1.4.5", 3)]);
    let remote = GitRemote::new(FILES);
    let work = scene(&moto, &remote);
    let t0 = now();
    expect(
        &work.once(&["--now", &at(t0)]),
        0,
        &["app/dev: promoted 1.4.4 -> 1.4.5"],
    );

    // Bad arguments: 64, and nothing written.
    for (args, says) in [
        (&["--app", "nope", "--env", "dev"][..], "no app \"nope\""),
        (&["--app", "app", "--env", "qa"][..], "has no env \"qa\""),
        (
            &["--app", "app", "--env", "dev", "--to", "9.9.9"][..],
            "tag \"9.9.9\" does not exist",
        ),
        // prod has only ever held its seeded value.
        (
            &["--app", "app", "--env", "prod"][..],
            "no earlier value to roll back to",
        ),
    ] {
        refused(&work, &remote, "rollback", args, says);
    }

    // Asking for what it holds already is done already: 0, nothing written.
    let before = head(&remote);
    let out = run(
        &work,
        "rollback",
        &["--app", "app", "--env", "dev", "--to", "1.4.5"],
    );
    expect(&out, 0, &["app/dev already holds 1.4.5; nothing written"]);
    assert_eq!(head(&remote), before);

    // By default, back to what dev held before.
    let out = run(
        &work,
        "rollback",
        &[
            "--app",
            "app",
            "--env",
            "dev",
            "--reason",
            "500s on checkout",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let commit = head(&remote);
    assert_eq!(stdout(&out).trim(), commit);
    assert_eq!(remote.show("dev.yaml"), "image:\n  tag: 1.4.4\n");
    assert_eq!(remote.subjects()[0], "app: dev 1.4.5 -> 1.4.4");
    let trailers = git(
        &remote.bare(),
        &["log", "-1", "--format=%(trailers)", "main"],
    );
    for t in [
        "Tagwatch-To: 1.4.4",
        "Tagwatch-Rollback-Of: 1.4.5",
        "Tagwatch-Rollback-Cause: command",
        "Tagwatch-Reason: 500s on checkout",
    ] {
        assert!(trailers.contains(t), "{t} not in {trailers}");
    }
    // The tag stays denied, for dev and downstream.
    for i in 1..=3 {
        expect(
            &work.once(&["--now", &at(t0 + time::Duration::hours(i))]),
            0,
            &[
                &format!(
                    "app/dev: no candidate in the registry (1.4.5 denied: rolled back by tagwatch rollback in {}); keeping 1.4.4",
                    &commit[..12]
                ),
                "app/prod: up to date at 1.4.4",
            ],
        );
    }
    let out = run(&work, "history", &["--json", "--env", "dev"]);
    let first: serde_json::Value =
        serde_json::from_str(stdout(&out).lines().next().unwrap()).unwrap();
    assert_eq!(first["kind"], "rollback", "{first}");
    assert_eq!(first["reason"], "500s on checkout", "{first}");
    assert_eq!(
        (first["from"].as_str(), first["to"].as_str()),
        (Some("1.4.5"), Some("1.4.4"))
    );
    // --to: further back.
    let out = run(
        &work,
        "rollback",
        &["--app", "app", "--env", "dev", "--to", "1.4.3"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(remote.show("dev.yaml"), "image:\n  tag: 1.4.3\n");
    let trailers = git(
        &remote.bare(),
        &["log", "-1", "--format=%(trailers)", "main"],
    );
    assert!(
        trailers.contains("Tagwatch-Rollback-Of: 1.4.4"),
        "{trailers}"
    );
    assert!(
        trailers.contains("Tagwatch-Reason: rolled back by hand"),
        "{trailers}"
    );
    // release --tag lets 1.4.5 through again; 1.4.4 stays denied.
    let out = run(
        &work,
        "release",
        &["--app", "app", "--env", "dev", "--tag", "1.4.5"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    expect(
        &work.once(&["--now", &at(t0 + time::Duration::hours(5))]),
        0,
        &["app/dev: promoted 1.4.3 -> 1.4.5"],
    );

    // A git failure (the remote is gone) exits 1 for each command.
    work.edit_config(&remote.file_url(), &format!("{}-gone", remote.file_url()));
    for (command, args) in [
        (
            "rollback",
            &["--app", "app", "--env", "dev", "--to", "1.4.4"][..],
        ),
        ("hold", &["--app", "app", "--reason", "r"][..]),
        ("release", &["--app", "app"][..]),
    ] {
        let out = run(&work, command, args);
        assert_eq!(out.status.code(), Some(1), "{command}: {}", show(&out));
    }
}

#[test]
fn rollback_of_a_pull_request_target_opens_a_request_unless_direct() {
    let moto = Moto::start();
    moto.seed("app", &[("1.4.4", 1), ("1.4.5", 2)]);
    let remote = GitRemote::new(FILES);
    let fake = GitHubFake::start(
        GitHubConfig::new("acme", "gitops")
            .token("forge-token-5678")
            .git_dir(&remote.bare()),
    );
    let work = scene(&moto, &remote);
    work.edit_config(
        "promote_from = \"dev\"\nsoak = \"1h\"\n",
        "update = \"pull-request\"\n",
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
    std::fs::write(work.dir.path().join("forge-token"), "forge-token-5678\n").unwrap();
    person_commits(
        &remote,
        "prod.yaml",
        "image:\n  tag: 1.4.5\n",
        "prod: 1.4.5",
    );
    let before = head(&remote);

    let out = run(
        &work,
        "rollback",
        &["--app", "app", "--env", "prod", "--reason", "bad"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(stdout(&out).contains("/pull/"), "{}", show(&out));
    assert_eq!(head(&remote), before, "a pull request leaves main alone");
    let pulls = fake.pulls();
    assert_eq!(pulls.len(), 1);
    assert_eq!(pulls[0].head_ref, "tagwatch/app/prod");
    let trailers = git(
        &remote.bare(),
        &["log", "-1", "--format=%(trailers)", "tagwatch/app/prod"],
    );
    assert!(
        trailers.contains("Tagwatch-Rollback-Of: 1.4.5"),
        "{trailers}"
    );
    assert_eq!(pulls[0].title, "app: roll prod back to 1.4.4");
    let body = pulls[0].body.clone().unwrap_or_default();
    assert!(
        body.contains("a rollback of `1.4.5` (command): bad"),
        "{body}"
    );
    // The daemon's cycles keep the request open while prod still runs
    // 1.4.5: the proposal branch says a rollback is pending.
    for _ in 0..2 {
        expect(&work.once(&[]), 0, &["app/prod: proposed 1.4.5 -> 1.4.4 ("]);
    }
    assert_eq!(fake.open_pulls().len(), 1);
    assert_eq!(fake.create_calls(), 1);

    let out = run(
        &work,
        "rollback",
        &[
            "--app", "app", "--env", "prod", "--direct", "--reason", "now",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(stdout(&out).trim(), head(&remote));
    assert_eq!(remote.show("prod.yaml"), "image:\n  tag: 1.4.4\n");
    let trailers = git(
        &remote.bare(),
        &["log", "-1", "--format=%(trailers)", "main"],
    );
    assert!(
        trailers.contains("Tagwatch-Rollback-Of: 1.4.5"),
        "{trailers}"
    );
    // Rolled back on main: the request has nothing left to do, and 1.4.5
    // stays out of prod.
    expect(
        &work.once(&[]),
        0,
        &[
            "app/prod: no candidate in the registry (1.4.5 denied: rolled back by tagwatch rollback in",
        ],
    );
    assert!(fake.open_pulls().is_empty(), "{:?}", fake.pulls());
    fake.assert_no_client_errors();
}

/// dev's health, as the exporter serves it for app/dev/<tag>.
const VERIFY: &str = r#"healthy{app="{{app}}",env="{{env}}",tag="{{tag}}"} == 1"#;
const RENDERED: &str = r#"healthy{app="app",env="dev",tag="1.4.5"} == 1"#;

fn healthy(value: u8) -> String {
    format!("# TYPE healthy gauge\nhealthy{{app=\"app\",env=\"dev\",tag=\"1.4.5\"}} {value}\n")
}

/// `verify` with a real Prometheus: dev is healthy after its promotion,
/// then fails a second later; the next cycle rolls it back, the tag stays
/// denied, and prod (promote_from dev) never takes it. A value a person set
/// is never rolled back.
#[test]
fn verify_rolls_back_a_promotion_that_goes_bad() {
    let exporter = prometheus::Exporter::start();
    exporter.set(&healthy(1));
    let prom = prometheus::Prometheus::start(exporter.port);
    let moto = Moto::start();
    moto.seed("app", &[("1.4.4", 1), ("1.4.5", 2)]);
    let remote = GitRemote::new(FILES);
    let work = scene(&moto, &remote);
    work.edit_config(
        "key = \"image.tag\"\n\n[[apps.targets]]",
        &format!(
            "key = \"image.tag\"\nverify = '{VERIFY}'\nverify_for = \"10m\"\n\n[[apps.targets]]"
        ),
    );
    let text = std::fs::read_to_string(&work.config).unwrap();
    std::fs::write(
        &work.config,
        format!("{text}\n[prometheus]\nurl = \"{}\"\n", prom.url()),
    )
    .unwrap();
    prom.wait_for(RENDERED, "\"1\"");
    let t0 = now();

    expect(
        &work.once(&["--now", &at(t0)]),
        0,
        &["app/dev: promoted 1.4.4 -> 1.4.5"],
    );
    expect(
        &work.once(&["--now", &at(t0 + time::Duration::minutes(1))]),
        0,
        &[
            "app/dev: up to date at 1.4.5",
            "app/prod: waiting: dev has run 1.4.5",
        ],
    );

    // dev goes bad; the next cycle inside the window rolls it back.
    std::thread::sleep(std::time::Duration::from_secs(1));
    exporter.set(&healthy(0));
    prom.wait_for(RENDERED, "\"result\":[]");
    let out = work.once(&["--dry-run", "--now", &at(t0 + time::Duration::minutes(2))]);
    expect(
        &out,
        0,
        &["app/dev: would roll back 1.4.5 -> 1.4.4 (verify)"],
    );
    let out = work.once(&["--now", &at(t0 + time::Duration::minutes(2))]);
    expect(
        &out,
        0,
        &["app/dev: rolled back 1.4.5 -> 1.4.4 (verify) (commit"],
    );
    assert_eq!(remote.show("dev.yaml"), "image:\n  tag: 1.4.4\n");
    let trailers = git(
        &remote.bare(),
        &["log", "-1", "--format=%(trailers)", "main"],
    );
    for t in [
        "Tagwatch-Rollback-Of: 1.4.5",
        "Tagwatch-Rollback-Cause: verify",
        &format!("Tagwatch-Reason: verify `{RENDERED}` returned an empty vector"),
    ] {
        assert!(trailers.contains(t), "{t} not in {trailers}");
    }
    let rollback = head(&remote);

    // Denied from then on, past prod's soak too.
    for h in [1, 3] {
        expect(
            &work.once(&["--now", &at(t0 + time::Duration::hours(h))]),
            0,
            &[
                &format!(
                    "app/dev: no candidate in the registry (1.4.5 denied: rolled back by verify in {}); keeping 1.4.4",
                    &rollback[..12]
                ),
                "app/prod: up to date at 1.4.4",
            ],
        );
    }
    assert_eq!(remote.show("prod.yaml"), "image:\n  tag: 1.4.4\n");

    // A person sets 1.4.5 by hand (the query still fails): not rolled back.
    person_commits(
        &remote,
        "dev.yaml",
        "image:\n  tag: 1.4.5\n",
        "dev: 1.4.5 by hand",
    );
    let before = head(&remote);
    expect(
        &work.once(&["--now", &at(now() + time::Duration::minutes(1))]),
        0,
        &["app/dev: up to date at 1.4.5"],
    );
    assert_eq!(head(&remote), before);
}

/// `verify_for` with `argocd_app`: an Application that goes Degraded at the
/// promotion's revision inside the window and stays Degraded for the
/// window is rolled back; before that, it is left alone.
#[test]
fn an_application_degraded_for_verify_for_is_rolled_back() {
    let argo = argocd_fake::ArgoFake::start("argo-token-1234");
    let moto = Moto::start();
    moto.seed("app", &[("1.4.4", 1), ("1.4.5", 2)]);
    let remote = GitRemote::new(FILES);
    let work = scene(&moto, &remote);
    work.edit_config(
        "key = \"image.tag\"\n\n[[apps.targets]]",
        "key = \"image.tag\"\nargocd_app = \"payments-dev\"\nverify_for = \"5m\"\n\n[[apps.targets]]",
    );
    let text = std::fs::read_to_string(&work.config).unwrap();
    std::fs::write(
        &work.config,
        format!(
            "{text}\n[argocd]\nurl = \"{}\"\ntoken_file = \"argocd-token\"\n",
            argo.url
        ),
    )
    .unwrap();
    std::fs::write(work.dir.path().join("argocd-token"), "argo-token-1234\n").unwrap();
    let t0 = now();
    expect(
        &work.once(&["--now", &at(t0)]),
        0,
        &["app/dev: promoted 1.4.4 -> 1.4.5"],
    );
    let promoted = head(&remote);
    let degraded = at(t0 + time::Duration::minutes(1));
    argo.set(
        "payments-dev",
        &argocd_fake::AppState {
            sync: "Synced",
            health: "Degraded",
            revision: &promoted,
            message: Some("Deployment \"api\" exceeded its progress deadline"),
            finished_at: &degraded,
        },
    );
    // Degraded for 4 minutes: not yet.
    expect(
        &work.once(&["--now", &at(t0 + time::Duration::minutes(5))]),
        0,
        &["app/dev: up to date at 1.4.5"],
    );
    assert_eq!(head(&remote), promoted);
    // Degraded for the whole 5 minutes: rolled back.
    expect(
        &work.once(&["--now", &at(t0 + time::Duration::minutes(6))]),
        0,
        &["app/dev: rolled back 1.4.5 -> 1.4.4 (argocd)"],
    );
    let trailers = git(
        &remote.bare(),
        &["log", "-1", "--format=%(trailers)", "main"],
    );
    assert!(
        trailers.contains("Tagwatch-Rollback-Cause: argocd"),
        "{trailers}"
    );
    assert!(
        trailers.contains(&format!("Tagwatch-Reason: argocd payments-dev Degraded since {degraded}: Deployment \"api\" exceeded its progress deadline")),
        "{trailers}"
    );
    expect(
        &work.once(&["--now", &at(t0 + time::Duration::minutes(7))]),
        0,
        &["app/dev: no candidate in the registry (1.4.5 denied: rolled back: Argo CD Degraded in"],
    );
}

/// A replica: the scene's config with its own clone, port and a short
/// interval, run as `tagwatch run`.
fn replica(work: &Workdir, name: &str) -> (Daemon, u16) {
    let port = free_port();
    let text = std::fs::read_to_string(&work.config)
        .unwrap()
        .replace("interval = \"2m\"", "interval = \"1s\"")
        .replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        )
        .replace(
            &work.dir.path().join("checkout").display().to_string(),
            &work.dir.path().join(name).display().to_string(),
        );
    let config = work.dir.path().join(format!("{name}.toml"));
    std::fs::write(&config, text).unwrap();
    let log = work.dir.path().join(format!("{name}.log"));
    (Daemon::start(&config, &log), port)
}

/// Commits on main carrying `Tagwatch-Rollback-Of`, newest first.
fn rollbacks(remote: &GitRemote) -> Vec<String> {
    git(
        &remote.bare(),
        &[
            "log",
            "--format=%(trailers:key=Tagwatch-Rollback-Of,valueonly)",
            "main",
        ],
    )
    .lines()
    .filter(|l| !l.trim().is_empty())
    .map(str::to_string)
    .collect()
}

/// Waits until `daemon` has finished `n` more cycles than it had.
fn cycles_after(daemon: &mut Daemon, n: usize) {
    let start = daemon.count("cycle finished") + daemon.count("cycle finished with failures");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while daemon.count("cycle finished") + daemon.count("cycle finished with failures") < start + n
    {
        daemon.assert_running();
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            daemon.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Two replicas cycling every second on one branch while `tagwatch
/// rollback` is SIGKILLed at points through its run and then run to the
/// end: the branch ends as one uninterrupted rollback leaves it (one
/// rollback commit, dev on 1.4.4, 1.4.5 denied), neither replica puts
/// 1.4.5 back, prod never takes it, and both replicas' `/status` and
/// metrics say so.
#[test]
fn two_replicas_and_a_sigkill_mid_rollback_end_as_one_rollback() {
    let moto = Moto::start();
    moto.seed("app", &[("1.4.4", 1), ("1.4.5", 2)]);
    let remote = GitRemote::new(FILES);
    let work = scene(&moto, &remote);
    expect(&work.once(&[]), 0, &["app/dev: promoted 1.4.4 -> 1.4.5"]);
    let (mut a, port_a) = replica(&work, "replica-a");
    let (mut b, port_b) = replica(&work, "replica-b");
    cycles_after(&mut a, 1);
    cycles_after(&mut b, 1);

    let args = [
        "rollback",
        "--config",
        work.config.to_str().unwrap(),
        "--app",
        "app",
        "--env",
        "dev",
        "--to",
        "1.4.4",
        "--reason",
        "bad release",
    ];
    for ms in [0, 40, 80, 120, 160, 200, 250, 300, 400, 600] {
        let mut child = tagwatch_command()
            .args(args)
            .current_dir(work.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(ms));
        let _ = child.kill();
        let _ = child.wait();
        let landed = rollbacks(&remote).len();
        assert!(landed <= 1, "killed at {ms} ms: {:?}", remote.subjects());
        // Which kills landed before the push and which after: both must
        // end the same.
        eprintln!("rollback killed at {ms} ms: {landed} rollback commit(s) on main");
    }
    let out = tagwatch(&args, work.dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    cycles_after(&mut a, 3);
    cycles_after(&mut b, 3);

    assert_eq!(rollbacks(&remote), ["1.4.5"], "{:?}", remote.subjects());
    assert_eq!(remote.show("dev.yaml"), "image:\n  tag: 1.4.4\n");
    assert_eq!(remote.show("prod.yaml"), "image:\n  tag: 1.4.4\n");
    let subjects = remote.subjects();
    assert_eq!(
        subjects
            .iter()
            .filter(|s| s.as_str() == "app: dev 1.4.4 -> 1.4.5")
            .count(),
        1,
        "1.4.5 was put back: {subjects:?}"
    );
    assert!(
        !subjects.iter().any(|s| s.starts_with("app: prod")),
        "{subjects:?}"
    );
    assert_fsck_clean(&remote.bare());

    // Both replicas show the denial; a hold shows as held, with its metric.
    let out = run(
        &work,
        "hold",
        &[
            "--app", "app", "--env", "prod", "--reason", "freeze", "--by", "carol",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    cycles_after(&mut a, 2);
    cycles_after(&mut b, 2);
    for port in [port_a, port_b] {
        let url = format!("http://127.0.0.1:{port}");
        let (_, status) = http(&url, "GET", "/status", "");
        let status: serde_json::Value = serde_json::from_str(&status).unwrap();
        let row = |env: &str| {
            status["targets"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["env"] == env)
                .unwrap()
                .clone()
        };
        let denied = row("dev")["denied"][0].as_str().unwrap().to_string();
        assert!(
            denied.starts_with("1.4.5 denied: rolled back by tagwatch rollback in "),
            "{status}"
        );
        assert_eq!(row("prod")["held"], "held by carol: freeze", "{status}");
        let (_, page) = http(&url, "GET", "/", "");
        assert!(
            page.contains("1.4.5 denied: rolled back by tagwatch rollback in "),
            "{page}"
        );
        let (_, metrics) = http(&url, "GET", "/metrics", "");
        assert_eq!(
            metric(
                &metrics,
                "tagwatch_target_held",
                &[("app", "app"), ("env", "prod")]
            ),
            1.0
        );
        assert_eq!(
            metric(
                &metrics,
                "tagwatch_target_held",
                &[("app", "app"), ("env", "dev")]
            ),
            0.0
        );
        let counted = |cause| {
            metric(
                &metrics,
                "tagwatch_rollbacks_total",
                &[("app", "app"), ("env", "dev"), ("cause", cause)],
            )
        };
        assert_eq!(counted("command"), 1.0, "{metrics}");
    }
    a.stop();
    b.stop();
}

/// Bad `verify` settings exit 64 from `check`, naming file, line and key,
/// before any network I/O.
#[test]
fn bad_verify_settings_exit_64_naming_the_key() {
    let base = "interval = \"2m\"\n\n[aws]\nregion = \"eu-west-1\"\nendpoint_url = \"http://127.0.0.1:9\"\n\n[git]\nurl = \"git://127.0.0.1:9/none.git\"\ncheckout_dir = \"co\"\nauthor = \"tagwatch <tagwatch@acme.dev>\"\n\n[[apps]]\nname = \"app\"\nrepository = \"app\"\n\n[[apps.targets]]\nenv = \"dev\"\nfile = \"dev.yaml\"\nkey = \"image.tag\"\n";
    let prometheus = "\n[prometheus]\nurl = \"http://127.0.0.1:9\"\n";
    for (target, extra, says) in [
        (
            "verify = 'up == 1'\n",
            "",
            "tagwatch.toml:20: apps[0].targets[0].verify: verify needs a [prometheus] section",
        ),
        (
            "verify = 'up{env=\"{{stage}}\"}'\n",
            prometheus,
            "tagwatch.toml:20: apps[0].targets[0].verify: unknown placeholder {{stage}}",
        ),
        (
            "verify_for = \"10m\"\n",
            "",
            "tagwatch.toml:20: apps[0].targets[0].verify_for: verify_for watches the verify query or the target's argocd_app",
        ),
        (
            "verify = 'up == 1'\nverify_for = \"0s\"\n",
            prometheus,
            "tagwatch.toml:21: apps[0].targets[0].verify_for: must be more than zero",
        ),
        (
            "verify = 'up == 1'\nverify_for = \"soon\"\n",
            prometheus,
            "tagwatch.toml:21: apps[0].targets[0].verify_for: invalid duration",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tagwatch.toml");
        std::fs::write(&path, format!("{base}{target}{extra}")).unwrap();
        let out = tagwatch(&["check", "--config", path.to_str().unwrap()], dir.path());
        assert_eq!(out.status.code(), Some(64), "{target}: {}", show(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(says),
            "{target}: want {says:?}\n{}",
            show(&out)
        );
    }
}
