//! `tagwatch policy test`: the exact CLI shape scripts rely on, its exit
//! codes, `--explain`, stdin, and `--config --app` against moto's ECR.

mod support;

use std::io::Write;
use std::process::Stdio;

use support::*;

fn policy_test(args: &[&str]) -> std::process::Output {
    let mut full = vec!["policy", "test"];
    full.extend_from_slice(args);
    tagwatch(&full, std::path::Path::new("."))
}

#[test]
fn prints_the_choice_and_exits_by_outcome() {
    let cases: &[(&[&str], i32, &str)] = &[
        // arguments, exit status, stdout
        (
            &[
                "--constraint",
                "^1.4",
                "1.4.2",
                "1.4.3",
                "1.5.0-rc.1",
                "2.0.0",
            ],
            0,
            "1.4.3\n",
        ),
        (&["--constraint", "~1.2", "1.2.9", "1.3.0"], 0, "1.2.9\n"),
        (
            &["--constraint", "1.2 - 1.4.5", "1.4.5", "1.4.6", "1.1.0"],
            0,
            "1.4.5\n",
        ),
        (
            &["--constraint", "^1 || ^3", "2.9.0", "3.1.0", "1.0.0"],
            0,
            "3.1.0\n",
        ),
        (&["--constraint", "^3", "1.0.0", "2.0.0"], 1, ""),
        (
            &[
                "--strategy",
                "alphabetical",
                "--ignore",
                "z*",
                "b",
                "a",
                "zz",
            ],
            0,
            "b\n",
        ),
        (&["--strategy", "numeric", "9", "10", "x"], 0, "10\n"),
        (
            &[
                "--strategy",
                "newest",
                "a@2026-11-21T10:00:00Z",
                "b@2026-11-21T11:00:00Z",
                "c@2026-11-21T09:00:00Z",
            ],
            0,
            "b\n",
        ),
        (
            &[
                "--strategy",
                "numeric",
                "--allow",
                r"^main-(?P<build>\d+)-[0-9a-f]{7}$",
                "--extract",
                "$build",
                "main-99-abcdef1",
                "main-120-1234567",
                "main-7",
            ],
            0,
            "main-120-1234567\n",
        ),
        (
            &[
                "--min-age",
                "1h",
                "1.0.0@2026-11-21T10:00:00Z",
                "2.0.0@2999-01-01T00:00:00Z",
            ],
            0,
            "1.0.0\n",
        ),
        // invalid policies and inputs: 64
        (&["--constraint", "^1.x.y", "1.0.0"], 64, ""),
        (&["--allow", "(", "1.0.0"], 64, ""),
        (&["--extract", "$build", "1.0.0"], 64, ""),
        (&["--strategy", "newest", "--constraint", "^1", "a"], 64, ""),
        (&["--strategy", "sideways", "a"], 64, ""),
        (&["1.0.0@yesterday"], 64, ""),
    ];
    for (args, code, stdout) in cases {
        let out = policy_test(args);
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {}", show(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            *stdout,
            "{args:?}: {}",
            show(&out)
        );
    }
}

#[test]
fn explain_gives_each_tags_verdict() {
    let out = policy_test(&[
        "--constraint",
        "^1.4",
        "--ignore",
        "*-debug",
        "--explain",
        "1.4.2",
        "1.4.3",
        "1.5.0-rc.1",
        "1.4.4-debug",
        "2.0.0",
        "latest",
    ]);
    expect(&out, 0, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let verdicts: Vec<(&str, &str)> = stdout
        .lines()
        .filter_map(|l| l.split_once("  ").map(|(t, v)| (t.trim(), v.trim())))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("1.4.2", "candidate, not the best"),
            ("1.4.3", "chosen"),
            (
                "1.5.0-rc.1",
                "pre-release, and the range names no pre-release"
            ),
            ("1.4.4-debug", "ignored by \"*-debug\""),
            ("2.0.0", "outside the range"),
            ("latest", "not a version"),
        ],
        "{stdout}"
    );
    assert!(stdout.ends_with("\n1.4.3\n"), "{stdout}");
}

#[test]
fn reads_tags_from_stdin() {
    let mut child = tagwatch_command()
        .args(["policy", "test", "--constraint", ">=2", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"1.9.0\n2.1.0\n\n2.0.5\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    expect(&out, 0, &["2.1.0\n"]);
}

#[test]
fn uses_an_apps_policy_and_its_real_tags() {
    let moto = Moto::start();
    moto.seed("payments-api", &[("1.4.2", 1), ("1.4.3", 2), ("2.0.0", 3)]);
    let work = Workdir::new(
        &moto.endpoint,
        "file:///nonexistent",
        &[("payments", "payments-api", "^1.4", "v.yaml")],
    );
    let config = work.config.to_str().unwrap();
    let out = tagwatch(
        &[
            "policy",
            "test",
            "--config",
            config,
            "--app",
            "payments",
            "--explain",
        ],
        work.dir.path(),
    );
    expect(&out, 0, &["2.0.0  outside the range", "\n1.4.3\n"]);

    let out = tagwatch(
        &["policy", "test", "--config", config, "--app", "nope"],
        work.dir.path(),
    );
    assert_eq!(out.status.code(), Some(64), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no app named \"nope\""),
        "{}",
        show(&out)
    );
}

/// Issue 13 item 13: a tag outside the OCI grammar is never a candidate,
/// and `--explain` says so on one line, the tag's newline escaped.
#[test]
fn a_tag_outside_the_oci_grammar_is_never_chosen() {
    let out = policy_test(&[
        "--strategy",
        "alphabetical",
        "--explain",
        "1.0.0",
        "9.9.9\nTagwatch-App: forged",
        ".x",
    ]);
    expect(&out, 0, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout,
        "1.0.0                           chosen\n\
         9.9.9\\u{a}Tagwatch-App: forged  not a valid OCI tag\n\
         .x                              not a valid OCI tag\n\
         1.0.0\n"
    );
}

/// Issue 13 item 6: `--app` without a configuration used to test the
/// default policy in silence. It is a usage error naming both ways to
/// give one; `--config` or `--env` without `--app` are too.
#[test]
fn policy_test_app_without_config_is_a_usage_error() {
    for (args, says) in [
        (
            &["--app", "payments"][..],
            "--app \"payments\" needs a configuration: pass --config FILE or set TAGWATCH_CONFIG",
        ),
        (&["--config", "t.toml", "1.0.0"][..], "--config needs --app"),
        (&["--env", "prod", "1.0.0"][..], "--env needs --app"),
    ] {
        let out = tagwatch_command()
            .env_remove("TAGWATCH_CONFIG")
            .args(["policy", "test"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}: {}", show(&out));
        assert!(out.stdout.is_empty(), "{args:?}: {}", show(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{args:?}: {}",
            show(&out)
        );
    }
}

/// Issue 13 item 6: `TAGWATCH_CONFIG` stands in for `--config`, as it does
/// for every other subcommand, and `--env` tests the env's own constraint.
#[test]
fn policy_test_honours_tagwatch_config_and_env_constraint() {
    let moto = Moto::start();
    moto.seed("payments-api", &[("1.4.2", 1), ("1.4.3", 2), ("2.0.0", 3)]);
    let work = Workdir::new(
        &moto.endpoint,
        "file:///nonexistent",
        &[("payments", "payments-api", "^1.4", "v.yaml")],
    );
    std::fs::write(
        &work.config,
        std::fs::read_to_string(&work.config).unwrap()
            + "\n[[apps.targets]]\nenv = \"prod\"\nfile = \"p.yaml\"\nkey = \"image.tag\"\nconstraint = \"^2\"\n",
    )
    .unwrap();
    let config = work.config.to_str().unwrap();
    let run = |args: &[&str]| {
        tagwatch_command()
            .env("TAGWATCH_CONFIG", config)
            .args(["policy", "test", "--app", "payments"])
            .args(args)
            .current_dir(work.dir.path())
            .output()
            .unwrap()
    };
    // The app's policy (^1.4), from the config TAGWATCH_CONFIG names.
    let out = run(&[]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1.4.3\n",
        "{}",
        show(&out)
    );
    // dev has no constraint of its own, so it is the app's.
    let out = run(&["--env", "dev"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1.4.3\n",
        "{}",
        show(&out)
    );
    // prod's own ^2.
    let out = run(&["--env", "prod", "--explain"]);
    expect(&out, 0, &["1.4.3  outside the range", "\n2.0.0\n"]);
    // An env the app does not have names the ones it has.
    let out = run(&["--env", "staging"]);
    assert_eq!(out.status.code(), Some(64), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no env \"staging\"; envs: dev, prod"),
        "{}",
        show(&out)
    );
}

/// `policy test --config C --app A TAG...`: the app's own policy (its
/// ignore list and range, or an env's constraint) on tags from the command
/// line, offline; as `tagwatch import`'s check of a converted config needs.
#[test]
fn policy_test_app_takes_tags_from_the_command_line_offline() {
    let work = Workdir::new(
        // Nothing listens here: the tags given must not need ECR.
        "http://127.0.0.1:9",
        "file:///nonexistent",
        &[("payments", "payments-api", "^1.4", "v.yaml")],
    );
    std::fs::write(
        &work.config,
        std::fs::read_to_string(&work.config).unwrap()
            + "\n[[apps.targets]]\nenv = \"prod\"\nfile = \"p.yaml\"\nkey = \"image.tag\"\nconstraint = \"^2\"\n",
    )
    .unwrap();
    let config = work.config.to_str().unwrap();
    let run = |args: &[&str]| {
        tagwatch_command()
            .args(["policy", "test", "--config", config, "--app", "payments"])
            .args(args)
            .current_dir(work.dir.path())
            .output()
            .unwrap()
    };
    // 1.4.9 is on the app's ignore list; 2.0.0 outside ^1.4.
    let out = run(&["--explain", "1.4.2", "1.4.9", "2.0.0"]);
    expect(
        &out,
        0,
        &["1.4.9  ignored", "2.0.0  outside the range", "\n1.4.2\n"],
    );
    let out = run(&["--env", "prod", "1.4.2", "2.0.0"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "2.0.0\n",
        "{}",
        show(&out)
    );
    // Policy flags still conflict with --app: the app's policy is the point.
    let out = run(&["--constraint", "^3", "3.0.0"]);
    assert_eq!(out.status.code(), Some(64), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot be used with"),
        "{}",
        show(&out)
    );
}
