//! Table tests for `promote_from` and `soak`: [`resolve`] over the shapes
//! a source env's value takes, and [`soaking`] at its boundaries. Rows
//! name their rule; all failures of a table are reported at once.

use std::time::Duration;

use super::*;

use crate::cycle::table_facts as facts;

use facts::{Facts, NOW, ago, app, contains_all, images};

/// The registry of every resolve row.
const LISTED: &[(&str, &str, i64)] = &[
    ("1.4.2", "sha256:a1", 86_400),
    ("1.4.3", "sha256:b2", 86_400),
];

/// What [`resolve`] should give.
#[derive(Debug)]
enum Want {
    /// The image (tag, digest), the value as the policy compares it, and
    /// since when (seconds before NOW) the source holds it.
    Source {
        tag: &'static str,
        digest: &'static str,
        held: &'static str,
        since: Option<i64>,
    },
    /// Waits with no candidate; the reason says each of these.
    Wait(&'static [&'static str]),
    Fail(Stage, &'static [&'static str]),
}

struct Row {
    rule: &'static str,
    app: &'static str,
    /// The source env `dev`'s keys, as in `[[apps.targets]]`.
    dev: &'static str,
    /// The env asked for.
    env: &'static str,
    /// What `dev.yaml` holds at `image.tag`; `None`: no such file.
    holds: Option<&'static str>,
    files: &'static [(&'static str, &'static str)],
    unreadable: bool,
    listed: &'static [(&'static str, &'static str, i64)],
    /// `(value, seconds before NOW)`: since when history says dev holds it.
    since: &'static [(&'static str, i64)],
    want: Want,
}

const ROW: Row = Row {
    rule: "",
    app: "",
    dev: r#"env = "dev""#,
    env: "dev",
    holds: Some("1.4.3"),
    files: &[],
    unreadable: false,
    listed: LISTED,
    since: &[],
    want: Want::Wait(&[]),
};

fn run(row: &Row) -> Result<(), String> {
    let app = app(row.app, &[row.dev, r#"env = "prod", promote_from = "dev""#]);
    let mut branch = Facts::default();
    if let Some(value) = row.holds {
        branch = branch.holds("dev", value);
    }
    for (path, text) in row.files {
        branch = branch.file(path, text);
    }
    if row.unreadable {
        branch = branch.unreadable("dev.yaml");
    }
    for (value, secs) in row.since {
        branch = branch.since("dev", value, *secs);
    }
    let got = resolve(&app, row.env, &images(row.listed), &branch, NOW);
    let checked = match (&row.want, &got) {
        (
            Want::Source {
                tag,
                digest,
                held,
                since,
            },
            Ok(source),
        ) => {
            let want = (row.env, *tag, *digest, *held, since.map(ago));
            let got = (
                source.env.as_str(),
                source.image.tag.as_str(),
                source.image.digest.as_str(),
                source.held.as_str(),
                source.since,
            );
            if got == want {
                Ok(())
            } else {
                Err(format!("{got:?}, want {want:?}"))
            }
        }
        (Want::Wait(parts), Err(Step::Wait { reason, candidate })) => contains_all(reason, parts)
            .and_then(|()| match candidate {
                None => Ok(()),
                Some(c) => Err(format!("candidate {c:?}, want none")),
            }),
        (Want::Fail(stage, parts), Err(Step::Fail { stage: s, error })) if s == stage => {
            contains_all(error, parts)
        }
        _ => Err("another outcome".into()),
    };
    checked.map_err(|e| {
        format!(
            "{}: {e}\n    want {:?}\n    got  {got:?}",
            row.rule, row.want
        )
    })
}

fn check_rows(what: &str, rows: &[Row]) {
    facts::check_table(what, rows, |row| row.rule, run);
}

#[test]
fn resolve_rules() {
    check_rows(
        "resolve",
        &[
            Row {
                rule: "tag: the listed image of the tag dev holds, and since when",
                since: &[("1.4.3", 600)],
                want: Want::Source {
                    tag: "1.4.3",
                    digest: "sha256:b2",
                    held: "1.4.3",
                    since: Some(600),
                },
                ..ROW
            },
            Row {
                rule: "history cannot tell: since is unknown, resolve still succeeds",
                want: Want::Source {
                    tag: "1.4.3",
                    digest: "sha256:b2",
                    held: "1.4.3",
                    since: None,
                },
                ..ROW
            },
            Row {
                rule: "image: the tag is read out of the reference",
                dev: r#"env = "dev", format = "image""#,
                holds: Some("localhost:5000/team/web:1.4.3"),
                since: &[("1.4.3", 60)],
                want: Want::Source {
                    tag: "1.4.3",
                    digest: "sha256:b2",
                    held: "1.4.3",
                    since: Some(60),
                },
                ..ROW
            },
            Row {
                rule: "template: the tag is read back through the template",
                dev: r#"env = "dev", format = "{registry}/{repository}:v{tag}""#,
                holds: Some("123456789012.dkr.ecr.eu-west-1.amazonaws.com/web:v1.4.3"),
                want: Want::Source {
                    tag: "1.4.3",
                    digest: "sha256:b2",
                    held: "1.4.3",
                    since: None,
                },
                ..ROW
            },
            Row {
                rule: "tag@digest: the pinned digest matches the listing",
                dev: r#"env = "dev", format = "tag@digest""#,
                holds: Some("1.4.3@sha256:b2"),
                want: Want::Source {
                    tag: "1.4.3",
                    digest: "sha256:b2",
                    held: "1.4.3",
                    since: None,
                },
                ..ROW
            },
            Row {
                rule: "tag@digest: the tag moved since dev pinned it: the exact image dev tested is gone, wait",
                dev: r#"env = "dev", format = "tag@digest""#,
                holds: Some("1.4.3@sha256:a1"),
                want: Want::Wait(&["dev runs 1.4.3@sha256:a1, which the registry does not list"]),
                ..ROW
            },
            Row {
                rule: "image with a pinned digest that moved: wait",
                dev: r#"env = "dev", format = "image""#,
                holds: Some("localhost:5000/web:1.4.3@sha256:0ld"),
                want: Want::Wait(&[
                    "dev runs localhost:5000/web:1.4.3@sha256:0ld",
                    "does not list",
                ]),
                ..ROW
            },
            Row {
                rule: "digest-only: the image is found by digest",
                dev: r#"env = "dev", format = "digest""#,
                holds: Some("sha256:b2"),
                since: &[("1.4.3", 60)],
                want: Want::Source {
                    tag: "1.4.3",
                    digest: "sha256:b2",
                    held: "1.4.3",
                    since: Some(60),
                },
                ..ROW
            },
            Row {
                rule: "digest-only: a digest the registry no longer lists: wait",
                dev: r#"env = "dev", format = "digest""#,
                holds: Some("sha256:0ld"),
                want: Want::Wait(&["dev runs sha256:0ld, which the registry does not list"]),
                ..ROW
            },
            Row {
                rule: "tag not listed: wait, with no candidate",
                holds: Some("1.9.9"),
                want: Want::Wait(&["dev runs 1.9.9, which the registry does not list"]),
                ..ROW
            },
            Row {
                rule: "digest strategy: the value compared (and looked up in history) is the digest",
                app: r#"strategy = "digest", constraint = "1.4.3""#,
                dev: r#"env = "dev", format = "tag@digest""#,
                holds: Some("1.4.3@sha256:b2"),
                since: &[("sha256:b2", 120), ("1.4.3", 60)],
                want: Want::Source {
                    tag: "1.4.3",
                    digest: "sha256:b2",
                    held: "sha256:b2",
                    since: Some(120),
                },
                ..ROW
            },
            Row {
                rule: "no such env: fails at the policy stage",
                env: "qa",
                want: Want::Fail(Stage::Policy, &["no env \"qa\" to promote from"]),
                ..ROW
            },
            Row {
                rule: "source file missing: fails at the manifest stage, naming the env",
                holds: None,
                want: Want::Fail(
                    Stage::Manifest,
                    &["dev.yaml: no such file on the branch (env dev)"],
                ),
                ..ROW
            },
            Row {
                rule: "source key missing: fails at the manifest stage, naming file, key and env",
                holds: None,
                files: &[("dev.yaml", "image:\n  repository: web\n")],
                want: Want::Fail(Stage::Manifest, &["dev.yaml: image.tag", "(env dev)"]),
                ..ROW
            },
            Row {
                rule: "source file unreadable: fails at the git stage",
                unreadable: true,
                want: Want::Fail(Stage::Git, &["dev.yaml"]),
                ..ROW
            },
        ],
    );
}

/// A source that holds a digest two tags point at should resolve to the
/// tag the policy ranks highest, as `plan::held_tag` does for a target's own
/// value, never to whichever tag the listing happens to give first.
#[test]
fn digest_only_source_resolves_to_the_greatest_tag_on_its_digest() {
    check_rows(
        "bug",
        &[Row {
            rule: "digest-only: the greatest tag on the digest, whatever the listing's order",
            dev: r#"env = "dev", format = "digest""#,
            holds: Some("sha256:b2"),
            listed: &[
                ("latest", "sha256:b2", 60),
                ("1.4.3", "sha256:b2", 60),
                ("1.4.2", "sha256:a1", 600),
            ],
            want: Want::Source {
                tag: "1.4.3",
                digest: "sha256:b2",
                held: "1.4.3",
                since: None,
            },
            ..ROW
        }],
    );
}

/// (rule, soak in seconds, since: seconds before NOW, what `soaking` says)
type SoakRow = (&'static str, u64, Option<i64>, Option<&'static str>);

#[test]
fn soaking_rules() {
    let rows: &[SoakRow] = &[
        ("exactly the soak: ready", 3_600, Some(3_600), None),
        (
            "one second short: waits, saying how long it ran and the soak",
            3_600,
            Some(3_599),
            Some("dev has run 1.4.3 for 59m 59s; soak is 1h"),
        ),
        ("long over: ready", 3_600, Some(86_400), None),
        (
            "durations formatted as humantime",
            93_600,
            Some(5_400),
            Some("dev has run 1.4.3 for 1h 30m; soak is 1day 2h"),
        ),
        (
            "just written by this cycle: ran for no time",
            3_600,
            Some(0),
            Some("dev has run 1.4.3 for 0s; soak is 1h"),
        ),
        (
            "future-dated commit (clock skew): waits, ran for 0s, not negative",
            3_600,
            Some(-300),
            Some("dev has run 1.4.3 for 0s; soak is 1h"),
        ),
        (
            "future-dated by more than the soak: still waits, never fires early",
            3_600,
            Some(-7_200),
            Some("dev has run 1.4.3 for 0s; soak is 1h"),
        ),
        (
            "history cannot tell: waits, saying so",
            3_600,
            None,
            Some("cannot tell since when dev runs 1.4.3 (no commit found); soak is 1h"),
        ),
        ("zero soak: ready, even with no history", 0, None, None),
        (
            "zero soak: ready, even when future-dated",
            0,
            Some(-7_200),
            None,
        ),
    ];
    let failures: Vec<String> = rows
        .iter()
        .filter_map(|&(rule, soak, since, want)| {
            let source = Source {
                env: "dev".into(),
                image: images(LISTED).images[1].clone(),
                held: "1.4.3".into(),
                since: since.map(ago),
            };
            let got = soaking(&source, Duration::from_secs(soak), NOW);
            (got.as_deref() != want).then(|| format!("{rule}: got {got:?}, want {want:?}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} soaking rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}
