//! Table tests for [`plan`]: one row per rule a user would recognise,
//! each deciding one target from facts (the app as config TOML, what the
//! files hold, the listing, what history says, the fixed clock) and
//! naming the rule it proves. A failing row prints its rule, the expected
//! and the actual step; all failures of a table are reported at once.

use super::*;

use crate::cycle::table_facts as facts;

use facts::{Facts, HOST, NOW, app, images, values};

use crate::gate::Severity;

/// What the registry said about repository `web`.
#[derive(Clone, Copy)]
enum Listed {
    /// `(tag, digest, pushed seconds before NOW)`.
    Images(&'static [(&'static str, &'static str, i64)]),
    /// The listing failed.
    Error,
    /// The cycle did not list it.
    Not,
}

/// What a row expects [`plan`] to return.
#[derive(Clone, Copy, Debug)]
enum Want {
    Keep,
    /// The why contains each of these.
    NoCandidate(&'static [&'static str]),
    Wait {
        reason: &'static [&'static str],
        candidate: Option<&'static str>,
    },
    Change {
        from: &'static str,
        to: &'static str,
        value: &'static str,
        recheck: bool,
        /// The exact new file; `None` is [`values`] of `value`.
        content: Option<&'static str>,
    },
    /// The stage, and text the error contains.
    Fail(Stage, &'static [&'static str]),
    /// Provisional: the gate facts of these digests are needed first.
    Asks(&'static [&'static str]),
}

/// What the registry says about one digest, for the gates.
#[derive(Clone, Copy)]
enum GateFact {
    /// A scan: its status and `(severity, count)`; UNDEFINED as `None`.
    Scan(&'static str, &'static [(Option<Severity>, u32)]),
    /// The scan findings could not be read.
    ScanError,
    /// The referrers' artifact types.
    Referrers(&'static [&'static str]),
}

struct Row {
    rule: &'static str,
    /// The app's keys, as in `[[apps]]`.
    app: &'static str,
    /// Each target's keys, as in `[[apps.targets]]`.
    targets: &'static [&'static str],
    /// The env decided.
    decide: &'static str,
    /// `(env, value)`: `{env}.yaml` holds the value at `image.tag`.
    holds: &'static [(&'static str, &'static str)],
    /// `(path, text)`: other files on the branch.
    files: &'static [(&'static str, &'static str)],
    unreadable: &'static [&'static str],
    listed: Listed,
    /// `(env, value, seconds before NOW)`: since when history says the env
    /// holds the value.
    since: &'static [(&'static str, &'static str, i64)],
    /// `(digest, tag)`: the tag the promotion that wrote the digest named.
    tag_of: &'static [(&'static str, &'static str)],
    /// The best image the cycle chose while listing, by tag (`Some(None)`:
    /// it found none); `None`: `plan` chooses.
    best: Option<Option<&'static str>>,
    /// `(digest, fact)`: what the cycle fetched for the gates so far.
    gates: &'static [(&'static str, GateFact)],
    want: Want,
}

const ROW: Row = Row {
    rule: "",
    app: "",
    targets: &[""],
    decide: "dev",
    holds: &[("dev", "1.4.2")],
    files: &[],
    unreadable: &[],
    listed: Listed::Images(&[]),
    since: &[],
    tag_of: &[],
    best: None,
    gates: &[],
    want: Want::Keep,
};

/// The registry of most rows: 1.4.2, 1.4.3 and a pre-release, a day old.
const REGISTRY: Listed = Listed::Images(&[
    ("1.4.2", "sha256:a1", 86_400),
    ("1.4.3", "sha256:b2", 86_400),
    ("1.5.0-rc.1", "sha256:c3", 86_400),
]);

/// dev (any release) and prod promoted from dev after an hour.
const CHAIN: &[&str] = &[
    r#"env = "dev""#,
    r#"env = "prod", promote_from = "dev", soak = "1h""#,
];

fn run(row: &Row) -> Result<(), String> {
    let app = app(row.app, row.targets);
    let target = app
        .targets
        .iter()
        .find(|t| t.env == row.decide)
        .unwrap_or_else(|| panic!("{}: no env {}", row.rule, row.decide));
    let mut branch = Facts::default();
    for (env, value) in row.holds {
        branch = branch.holds(env, value);
    }
    for (path, text) in row.files {
        branch = branch.file(path, text);
    }
    for path in row.unreadable {
        branch = branch.unreadable(path);
    }
    for (env, value, secs) in row.since {
        branch = branch.since(env, value, *secs);
    }
    for (digest, tag) in row.tag_of {
        branch = branch.tag_of(digest, tag);
    }
    let listing = match row.listed {
        Listed::Images(written) => Some(Ok(images(written))),
        Listed::Error => Some(Err(crate::registry::RegistryError {
            repository: "web".into(),
            kind: crate::registry::ErrorKind::AccessDenied,
            message: "not authorized to perform ecr:DescribeImages".into(),
        })),
        Listed::Not => None,
    };
    let mut gates = GateFacts::default();
    for &(digest, fact) in row.gates {
        let key = ("web".to_string(), digest.to_string());
        match fact {
            GateFact::Scan(status, counts) => {
                let mut scan = ScanFindings::with_status(crate::gate::ScanStatus::parse(status));
                for &(severity, n) in counts {
                    match severity {
                        Some(severity) => {
                            scan.counts.insert(severity, n);
                        }
                        None => scan.undefined += n,
                    }
                }
                gates.scans.insert(key, Ok(scan));
            }
            GateFact::ScanError => {
                let error = crate::registry::RegistryError {
                    repository: "web".into(),
                    kind: crate::registry::ErrorKind::AccessDenied,
                    message: "not authorized to perform ecr:DescribeImageScanFindings".into(),
                };
                gates.scans.insert(key, Err(error));
            }
            GateFact::Referrers(types) => {
                let types = types.iter().map(|t| t.to_string()).collect();
                gates.referrers.insert(key, Ok(types));
            }
        }
    }
    let input = Input {
        app: &app,
        target,
        listing: listing.as_ref(),
        best: row.best.map(|tag| {
            tag.map(|tag| {
                let listing = listing.as_ref().and_then(|l| l.as_ref().ok());
                let found = listing.and_then(|l| l.images.iter().find(|i| i.tag == tag));
                found.unwrap_or_else(|| panic!("{}: best {tag} is not listed", row.rule))
            })
        }),
        gates: &gates,
        now: NOW,
    };
    let planned = plan(&input, &branch);
    let asked: Vec<&str> = planned.needs.iter().map(|n| n.digest.as_str()).collect();
    let checked = match row.want {
        Want::Asks(want) if asked == want => Ok(()),
        Want::Asks(want) => Err(format!("asks about {asked:?}, want {want:?}")),
        _ if !asked.is_empty() => Err(format!("a final step that still asks about {asked:?}")),
        _ => Ok(()),
    };
    checked
        .and_then(|()| match row.want {
            Want::Asks(_) => Ok(()),
            _ => check(&row.want, &planned.step, &branch, target),
        })
        .map_err(|e| {
            format!(
                "{}: {e}\n    want {:?}\n    got  {:?}",
                row.rule, row.want, planned.step
            )
        })
}

fn contains_all(text: &str, parts: &[&str]) -> Result<(), String> {
    match parts.iter().find(|p| !text.contains(**p)) {
        Some(missing) => Err(format!("{text:?} does not say {missing:?}")),
        None => Ok(()),
    }
}

fn check(
    want: &Want,
    got: &Step,
    branch: &Facts,
    target: &crate::config::Target,
) -> Result<(), String> {
    match (want, got) {
        (Want::Keep, Step::Keep) => Ok(()),
        (Want::NoCandidate(parts), Step::NoCandidate { why }) => contains_all(why, parts),
        (
            Want::Wait {
                reason: parts,
                candidate: want,
            },
            Step::Wait { reason, candidate },
        ) => {
            contains_all(reason, parts)?;
            if candidate.as_deref() != *want {
                return Err(format!("candidate {candidate:?}, want {want:?}"));
            }
            Ok(())
        }
        (
            Want::Change {
                from,
                to,
                value,
                recheck,
                content,
            },
            Step::Change(change),
        ) => {
            let p = &change.promotion;
            if (p.from.as_str(), p.to.as_str(), change.value.as_str()) != (from, to, value) {
                return Err(format!(
                    "from {} to {} value {}, want from {from} to {to} value {value}",
                    p.from, p.to, change.value
                ));
            }
            if change.recheck != *recheck {
                return Err(format!("recheck {}, want {recheck}", change.recheck));
            }
            let want = content.map_or_else(|| values(value), str::to_string);
            let got = String::from_utf8_lossy(&change.content);
            if got != want {
                return Err(format!("new file {got:?}, want {want:?}"));
            }
            let old = branch.read(&target.file).ok().flatten().unwrap_or_default();
            if change.old != old {
                return Err("old is not the file as the branch holds it".into());
            }
            if p.digest != change.image.digest
                || p.to != change.image.tag && p.to != change.image.digest
            {
                return Err(format!(
                    "trailers {p:?} disagree with the image {:?}",
                    change.image
                ));
            }
            Ok(())
        }
        (Want::Fail(stage, parts), Step::Fail { stage: s, error }) if s == stage => {
            contains_all(error, parts)
        }
        _ => Err("another step".into()),
    }
}

fn check_rows(what: &str, rows: &[Row]) {
    // A row that panics (an `unreachable!` reached by a broken rule) is
    // one failure among the others, not the end of the table.
    let failures: Vec<String> = rows
        .iter()
        .filter_map(|row| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(row)))
                .unwrap_or_else(|_| Err(format!("{}: panicked", row.rule)))
                .err()
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} {what} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

#[test]
fn policy_rules() {
    check_rows(
        "policy",
        &[
            Row {
                rule: "semver: the highest release is promoted, the pre-release is not",
                listed: REGISTRY,
                want: Want::Change {
                    from: "1.4.2",
                    to: "1.4.3",
                    value: "1.4.3",
                    recheck: false,
                    content: None,
                },
                ..ROW
            },
            Row {
                rule: "unchanged: the file holds the best already",
                holds: &[("dev", "1.4.3")],
                listed: REGISTRY,
                want: Want::Keep,
                ..ROW
            },
            Row {
                rule: "never downgrade: a file above every listed tag is kept",
                holds: &[("dev", "1.6.0")],
                listed: REGISTRY,
                want: Want::Keep,
                ..ROW
            },
            Row {
                rule: "pre-releases: taken when the range names one",
                app: r#"constraint = ">=1.5.0-0""#,
                holds: &[("dev", "1.4.3")],
                listed: REGISTRY,
                want: Want::Change {
                    from: "1.4.3",
                    to: "1.5.0-rc.1",
                    value: "1.5.0-rc.1",
                    recheck: false,
                    content: None,
                },
                ..ROW
            },
            Row {
                rule: "constraint: a tag outside the range is no candidate, and the why says so",
                app: r#"constraint = "^2""#,
                listed: REGISTRY,
                want: Want::NoCandidate(&[
                    "in the registry",
                    "none of 3 tags qualifies",
                    "outside",
                ]),
                ..ROW
            },
            Row {
                rule: "per-env constraint: prod on ^1 never takes 2.0.0",
                targets: &[r#"constraint = "^1""#],
                listed: Listed::Images(&[
                    ("1.4.3", "sha256:b2", 86_400),
                    ("2.0.0", "sha256:d4", 86_400),
                ]),
                want: Want::Change {
                    from: "1.4.2",
                    to: "1.4.3",
                    value: "1.4.3",
                    recheck: false,
                    content: None,
                },
                ..ROW
            },
            Row {
                rule: "the best the cycle chose while listing is the one taken",
                listed: REGISTRY,
                best: Some(Some("1.4.2")),
                want: Want::Keep,
                ..ROW
            },
            Row {
                rule: "the cycle found no candidate while listing: no candidate",
                listed: REGISTRY,
                best: Some(None),
                want: Want::NoCandidate(&["in the registry"]),
                ..ROW
            },
            Row {
                rule: "empty repository: nothing is written",
                listed: Listed::Images(&[]),
                want: Want::NoCandidate(&["holds no tagged images"]),
                ..ROW
            },
            Row {
                rule: "ignore: an ignored tag is never chosen",
                app: r#"ignore = ["1.4.3"]"#,
                holds: &[("dev", "1.4.1")],
                listed: REGISTRY,
                want: Want::Change {
                    from: "1.4.1",
                    to: "1.4.2",
                    value: "1.4.2",
                    recheck: false,
                    content: None,
                },
                ..ROW
            },
            Row {
                rule: "allow: only tags the regex matches are candidates",
                app: r#"allow = '^1\.4\.2$'"#,
                holds: &[("dev", "1.4.1")],
                listed: REGISTRY,
                want: Want::Change {
                    from: "1.4.1",
                    to: "1.4.2",
                    value: "1.4.2",
                    recheck: false,
                    content: None,
                },
                ..ROW
            },
            Row {
                rule: "min_age: a tag younger than min_age is passed over",
                app: r#"min_age = "1h""#,
                listed: Listed::Images(&[
                    ("1.4.2", "sha256:a1", 7_200),
                    ("1.4.3", "sha256:b2", 3_599),
                ]),
                want: Want::Keep,
                ..ROW
            },
            Row {
                rule: "min_age: a tag exactly min_age old is a candidate",
                app: r#"min_age = "1h""#,
                listed: Listed::Images(&[
                    ("1.4.2", "sha256:a1", 7_200),
                    ("1.4.3", "sha256:b2", 3_600),
                ]),
                want: Want::Change {
                    from: "1.4.2",
                    to: "1.4.3",
                    value: "1.4.3",
                    recheck: false,
                    content: None,
                },
                ..ROW
            },
            Row {
                rule: "min_age: only young tags is no candidate, the why says too young",
                app: r#"min_age = "1h""#,
                listed: Listed::Images(&[("1.4.3", "sha256:b2", 60)]),
                want: Want::NoCandidate(&["in the registry", "too young"]),
                ..ROW
            },
            Row {
                rule: "min_age: a push time in the future is no candidate (clock skew)",
                app: r#"min_age = "1h""#,
                listed: Listed::Images(&[("1.4.3", "sha256:b2", -7_200)]),
                want: Want::NoCandidate(&["in the registry", "1 pushed in the future"]),
                ..ROW
            },
            Row {
                rule: "CurrentUnordered: semver over a file holding latest fails, writes nothing",
                holds: &[("dev", "latest")],
                listed: REGISTRY,
                want: Want::Fail(
                    Stage::Policy,
                    &["dev.yaml", "image.tag", "\"latest\"", "not a version"],
                ),
                ..ROW
            },
            Row {
                rule: "numeric: the greatest number, compared as numbers",
                app: r#"strategy = "numeric""#,
                holds: &[("dev", "12")],
                listed: Listed::Images(&[
                    ("9", "sha256:a1", 600),
                    ("100", "sha256:b2", 7_200),
                    ("12", "sha256:c3", 600),
                ]),
                want: Want::Change {
                    from: "12",
                    to: "100",
                    value: "100",
                    recheck: false,
                    // YAML would read a bare 100 as a number.
                    content: Some("# web\nimage:\n  repository: web\n  tag: \"100\"\n"),
                },
                ..ROW
            },
            Row {
                rule: "numeric with extract: ordered by the build number",
                app: r#"strategy = "numeric", allow = '^main-(?P<build>\d+)-[0-9a-f]{7}$', extract = "$build""#,
                holds: &[("dev", "main-99-aaaaaaa")],
                listed: Listed::Images(&[
                    ("main-98-ccccccc", "sha256:c3", 60),
                    ("main-100-bbbbbbb", "sha256:b2", 600),
                    ("feature-7", "sha256:d4", 10),
                ]),
                want: Want::Change {
                    from: "main-99-aaaaaaa",
                    to: "main-100-bbbbbbb",
                    value: "main-100-bbbbbbb",
                    recheck: false,
                    content: None,
                },
                ..ROW
            },
            Row {
                rule: "never downgrade, numeric: 200 stays above 100",
                app: r#"strategy = "numeric""#,
                holds: &[("dev", "200")],
                listed: Listed::Images(&[("100", "sha256:b2", 600)]),
                want: Want::Keep,
                ..ROW
            },
            Row {
                rule: "CurrentUnordered: numeric over a file that is not a number fails",
                app: r#"strategy = "numeric""#,
                holds: &[("dev", "abc")],
                listed: Listed::Images(&[("100", "sha256:b2", 600)]),
                want: Want::Fail(Stage::Policy, &["\"abc\"", "not a number"]),
                ..ROW
            },
            Row {
                rule: "newest: the most recently pushed tag, re-checked before writing",
                app: r#"strategy = "newest""#,
                holds: &[("dev", "main-a")],
                listed: Listed::Images(&[
                    ("main-a", "sha256:a1", 7_200),
                    ("main-b", "sha256:b2", 60),
                ]),
                want: Want::Change {
                    from: "main-a",
                    to: "main-b",
                    value: "main-b",
                    recheck: true,
                    content: None,
                },
                ..ROW
            },
            Row {
                rule: "never downgrade, newest: a file pushed after the best candidate is kept",
                app: r#"strategy = "newest", ignore = ["hotfix-*"]"#,
                holds: &[("dev", "hotfix-1")],
                listed: Listed::Images(&[
                    ("main-a", "sha256:a1", 7_200),
                    ("hotfix-1", "sha256:b2", 60),
                ]),
                want: Want::Keep,
                ..ROW
            },
            Row {
                rule: "alphabetical: the last tag in byte order",
                app: r#"strategy = "alphabetical""#,
                holds: &[("dev", "20261101T000000")],
                listed: Listed::Images(&[
                    ("20261120T000000", "sha256:b2", 7_200),
                    ("20261101T000000", "sha256:a1", 60),
                ]),
                want: Want::Change {
                    from: "20261101T000000",
                    to: "20261120T000000",
                    value: "20261120T000000",
                    recheck: false,
                    content: None,
                },
                ..ROW
            },
            Row {
                rule: "digest: follows the tag's digest, re-checked before writing",
                app: r#"strategy = "digest", constraint = "stable""#,
                holds: &[("dev", "sha256:a1")],
                listed: Listed::Images(&[("1.0", "sha256:a1", 7_200), ("stable", "sha256:b2", 60)]),
                want: Want::Change {
                    from: "sha256:a1",
                    to: "sha256:b2",
                    value: "sha256:b2",
                    recheck: true,
                    content: None,
                },
                ..ROW
            },
            Row {
                rule: "digest: the file on the followed tag's digest is kept",
                app: r#"strategy = "digest", constraint = "stable""#,
                holds: &[("dev", "sha256:b2")],
                listed: Listed::Images(&[("stable", "sha256:b2", 60)]),
                want: Want::Keep,
                ..ROW
            },
            Row {
                rule: "digest: the followed tag not listed is no candidate",
                app: r#"strategy = "digest", constraint = "stable""#,
                holds: &[("dev", "sha256:a1")],
                listed: Listed::Images(&[("1.0", "sha256:a1", 60)]),
                want: Want::NoCandidate(&["in the registry", "the one tag does not qualify"]),
                ..ROW
            },
        ],
    );
}

#[test]
fn format_rules() {
    check_rows(
        "format",
        &[
            Row {
                rule: "tag@digest: the digest is pinned and re-checked",
                targets: &[r#"format = "tag@digest""#],
                holds: &[("dev", "1.4.2@sha256:a1")],
                listed: REGISTRY,
                want: Want::Change {
                    from: "1.4.2",
                    to: "1.4.3",
                    value: "1.4.3@sha256:b2",
                    recheck: true,
                    content: None,
                },
                ..ROW
            },
            Row {
                rule: "image: the registry and repository in the file are kept",
                targets: &[r#"format = "image""#],
                holds: &[("dev", "registry.example.com/team/web:1.4.2")],
                listed: REGISTRY,
                want: Want::Change {
                    from: "1.4.2",
                    to: "1.4.3",
                    value: "registry.example.com/team/web:1.4.3",
                    recheck: false,
                    content: None,
                },
                ..ROW
            },
            Row {
                rule: "image: a pinned digest is replaced too, and re-checked",
                targets: &[r#"format = "image""#],
                holds: &[("dev", "localhost:5000/web:1.4.2@sha256:a1")],
                listed: REGISTRY,
                want: Want::Change {
                    from: "1.4.2",
                    to: "1.4.3",
                    value: "localhost:5000/web:1.4.3@sha256:b2",
                    recheck: true,
                    content: None,
                },
                ..ROW
            },
            Row {
                rule: "image: a file holding no image reference fails as a manifest problem",
                app: r#"strategy = "alphabetical""#,
                targets: &[r#"format = "image""#],
                holds: &[("dev", "not a reference")],
                listed: REGISTRY,
                want: Want::Fail(
                    Stage::Manifest,
                    &["dev.yaml: image.tag", "not an image reference"],
                ),
                ..ROW
            },
            Row {
                rule: "template: the tag is read back through the template",
                targets: &[r#"format = "{registry}/{repository}:v{tag}""#],
                holds: &[(
                    "dev",
                    "123456789012.dkr.ecr.eu-west-1.amazonaws.com/web:v1.4.2",
                )],
                listed: REGISTRY,
                want: Want::Change {
                    from: "1.4.2",
                    to: "1.4.3",
                    value: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/web:v1.4.3",
                    recheck: false,
                    content: None,
                },
                ..ROW
            },
            Row {
                rule: "digest-only value: tied back to its tag through the listing",
                targets: &[r#"format = "digest""#],
                holds: &[("dev", "sha256:a1")],
                listed: REGISTRY,
                want: Want::Change {
                    from: "1.4.2",
                    to: "1.4.3",
                    value: "sha256:b2",
                    recheck: true,
                    content: None,
                },
                ..ROW
            },
            Row {
                rule: "digest-only value: the greatest tag on the digest, whatever the listing's order",
                targets: &[r#"format = "digest""#],
                holds: &[("dev", "sha256:b2")],
                listed: Listed::Images(&[
                    ("latest", "sha256:b2", 600),
                    ("1.4.2", "sha256:b2", 600),
                    ("1.4.3", "sha256:b2", 600),
                ]),
                want: Want::Keep,
                ..ROW
            },
            Row {
                rule: "digest-only value: tied back through tag_of_digest once the tag moved",
                targets: &[r#"format = "digest""#],
                holds: &[("dev", "sha256:0ld")],
                listed: REGISTRY,
                tag_of: &[("sha256:0ld", "1.4.2")],
                want: Want::Change {
                    from: "1.4.2",
                    to: "1.4.3",
                    value: "sha256:b2",
                    recheck: true,
                    content: None,
                },
                ..ROW
            },
            Row {
                rule: "digest-only value: history's tag still guards against a downgrade",
                targets: &[r#"format = "digest""#],
                holds: &[("dev", "sha256:0ld")],
                listed: REGISTRY,
                tag_of: &[("sha256:0ld", "1.6.0")],
                want: Want::Keep,
                ..ROW
            },
            Row {
                rule: "digest-only value: neither listing nor history knows it: CurrentUnordered",
                targets: &[r#"format = "digest""#],
                holds: &[("dev", "sha256:0ld")],
                listed: REGISTRY,
                want: Want::Fail(Stage::Policy, &["\"sha256:0ld\"", "cannot tell"]),
                ..ROW
            },
            Row {
                rule: "repushed tag, digest-pinning format: the same tag on its new digest",
                targets: &[r#"format = "tag@digest""#],
                holds: &[("dev", "1.4.3@sha256:a1")],
                listed: Listed::Images(&[("1.4.3", "sha256:b2", 60)]),
                want: Want::Change {
                    from: "1.4.3",
                    to: "1.4.3",
                    value: "1.4.3@sha256:b2",
                    recheck: true,
                    content: None,
                },
                ..ROW
            },
            Row {
                rule: "repushed tag, tag format: nothing to write",
                holds: &[("dev", "1.4.3")],
                listed: Listed::Images(&[("1.4.3", "sha256:b2", 60)]),
                want: Want::Keep,
                ..ROW
            },
            Row {
                rule: "repushed tag, image format without a digest: nothing to write",
                targets: &[r#"format = "image""#],
                holds: &[("dev", "localhost:5000/web:1.4.3")],
                listed: Listed::Images(&[("1.4.3", "sha256:b2", 60)]),
                want: Want::Keep,
                ..ROW
            },
        ],
    );
}

const KUSTOMIZATION: &str = "\
resources:
  - deployment.yaml
images:
  - name: ledger
    newTag: 2.0.0
";

#[test]
fn stage_rules() {
    check_rows(
        "stage",
        &[
            Row {
                rule: "registry: a failed listing fails the target at the registry stage",
                listed: Listed::Error,
                want: Want::Fail(Stage::Registry, &["\"web\"", "not authorized"]),
                ..ROW
            },
            Row {
                rule: "registry: a repository the cycle did not list",
                listed: Listed::Not,
                want: Want::Fail(Stage::Registry, &["\"web\" was not listed"]),
                ..ROW
            },
            Row {
                rule: "manifest: the file is not on the branch",
                holds: &[],
                listed: REGISTRY,
                want: Want::Fail(Stage::Manifest, &["dev.yaml: no such file on the branch"]),
                ..ROW
            },
            Row {
                rule: "manifest: the key is not in the file",
                holds: &[],
                files: &[("dev.yaml", "image:\n  repository: web\n")],
                listed: REGISTRY,
                want: Want::Fail(Stage::Manifest, &["dev.yaml: image.tag"]),
                ..ROW
            },
            Row {
                rule: "git: a file the branch cannot read",
                unreadable: &["dev.yaml"],
                listed: REGISTRY,
                want: Want::Fail(Stage::Git, &["dev.yaml: is a symbolic link"]),
                ..ROW
            },
            Row {
                rule: "kustomize: an absent images entry is added, from (none)",
                targets: &[r#"kind = "kustomize", image = "web", file = "kustomization.yaml""#],
                holds: &[],
                files: &[("kustomization.yaml", KUSTOMIZATION)],
                listed: REGISTRY,
                want: Want::Change {
                    from: "(none)",
                    to: "1.4.3",
                    value: "1.4.3",
                    recheck: false,
                    content: Some(
                        "resources:\n  - deployment.yaml\nimages:\n  - name: ledger\n    newTag: 2.0.0\n  - name: web\n    newTag: 1.4.3\n",
                    ),
                },
                ..ROW
            },
            Row {
                rule: "kustomize: an absent entry stays absent when nothing qualifies",
                targets: &[r#"kind = "kustomize", image = "web", file = "kustomization.yaml""#],
                holds: &[],
                files: &[("kustomization.yaml", KUSTOMIZATION)],
                listed: Listed::Images(&[]),
                want: Want::NoCandidate(&["the entry stays absent"]),
                ..ROW
            },
            Row {
                rule: "kustomize: an entry's newTag is replaced in place",
                targets: &[r#"kind = "kustomize", image = "ledger", file = "kustomization.yaml""#],
                holds: &[],
                files: &[("kustomization.yaml", KUSTOMIZATION)],
                listed: Listed::Images(&[("2.1.0", "sha256:b2", 600)]),
                want: Want::Change {
                    from: "2.0.0",
                    to: "2.1.0",
                    value: "2.1.0",
                    recheck: false,
                    content: Some(
                        "resources:\n  - deployment.yaml\nimages:\n  - name: ledger\n    newTag: 2.1.0\n",
                    ),
                },
                ..ROW
            },
        ],
    );
}

#[test]
fn chain_rules() {
    check_rows(
        "chain",
        &[
            Row {
                rule: "promote_from: prod takes what dev runs once the soak is over",
                targets: CHAIN,
                decide: "prod",
                holds: &[("dev", "1.4.3"), ("prod", "1.4.2")],
                listed: REGISTRY,
                since: &[("dev", "1.4.3", 3_601)],
                want: Want::Change {
                    from: "1.4.2",
                    to: "1.4.3",
                    value: "1.4.3",
                    recheck: false,
                    content: None,
                },
                ..ROW
            },
            Row {
                rule: "soak: exactly the soak is long enough",
                targets: CHAIN,
                decide: "prod",
                holds: &[("dev", "1.4.3"), ("prod", "1.4.2")],
                listed: REGISTRY,
                since: &[("dev", "1.4.3", 3_600)],
                want: Want::Change {
                    from: "1.4.2",
                    to: "1.4.3",
                    value: "1.4.3",
                    recheck: false,
                    content: None,
                },
                ..ROW
            },
            Row {
                rule: "soak (issue 13 item 5): not over yet: waits, with the source's tag as candidate",
                targets: CHAIN,
                decide: "prod",
                holds: &[("dev", "1.4.3"), ("prod", "1.4.2")],
                listed: REGISTRY,
                since: &[("dev", "1.4.3", 600)],
                want: Want::Wait {
                    reason: &["dev has run 1.4.3 for 10m; soak is 1h"],
                    candidate: Some("1.4.3"),
                },
                ..ROW
            },
            Row {
                rule: "soak: history cannot tell since when: waits",
                targets: CHAIN,
                decide: "prod",
                holds: &[("dev", "1.4.3"), ("prod", "1.4.2")],
                listed: REGISTRY,
                want: Want::Wait {
                    reason: &["cannot tell since when dev runs 1.4.3", "soak is 1h"],
                    candidate: Some("1.4.3"),
                },
                ..ROW
            },
            Row {
                rule: "soak left out (0s): promoted at once, history or not",
                targets: &[r#"env = "dev""#, r#"env = "prod", promote_from = "dev""#],
                decide: "prod",
                holds: &[("dev", "1.4.3"), ("prod", "1.4.2")],
                listed: REGISTRY,
                want: Want::Change {
                    from: "1.4.2",
                    to: "1.4.3",
                    value: "1.4.3",
                    recheck: false,
                    content: None,
                },
                ..ROW
            },
            Row {
                rule: "soak (issue 13 item 3): a target already at its source's value is kept, not waiting",
                targets: CHAIN,
                decide: "prod",
                holds: &[("dev", "1.4.3"), ("prod", "1.4.3")],
                listed: REGISTRY,
                since: &[("dev", "1.4.3", 0)],
                want: Want::Keep,
                ..ROW
            },
            Row {
                rule: "never downgrade: a source behind its target is kept, soak or not",
                targets: CHAIN,
                decide: "prod",
                holds: &[("dev", "1.4.2"), ("prod", "1.4.3")],
                listed: REGISTRY,
                want: Want::Keep,
                ..ROW
            },
            Row {
                rule: "promote_from: the source's value, not the registry's best",
                targets: CHAIN,
                decide: "prod",
                holds: &[("dev", "1.4.2"), ("prod", "1.4.1")],
                listed: REGISTRY,
                since: &[("dev", "1.4.2", 86_400)],
                want: Want::Change {
                    from: "1.4.1",
                    to: "1.4.2",
                    value: "1.4.2",
                    recheck: false,
                    content: None,
                },
                ..ROW
            },
            Row {
                rule: "promote_from: a source the registry does not list waits, with no candidate",
                targets: CHAIN,
                decide: "prod",
                holds: &[("dev", "1.9.9"), ("prod", "1.4.2")],
                listed: REGISTRY,
                want: Want::Wait {
                    reason: &["dev runs 1.9.9, which the registry does not list"],
                    candidate: None,
                },
                ..ROW
            },
            Row {
                rule: "per-env constraint (issue 13 item 7): the why names the source, its value and the rule",
                targets: &[
                    r#"env = "dev""#,
                    r#"env = "prod", promote_from = "dev", constraint = "^1""#,
                ],
                decide: "prod",
                holds: &[("dev", "2.0.0"), ("prod", "1.4.2")],
                listed: Listed::Images(&[
                    ("1.4.2", "sha256:a1", 86_400),
                    ("2.0.0", "sha256:d4", 86_400),
                ]),
                want: Want::NoCandidate(&[
                    "from dev",
                    "runs 2.0.0",
                    "prod's policy refuses",
                    "outside",
                ]),
                ..ROW
            },
            Row {
                rule: "promote_from: the target's own min_age still applies to the source's tag",
                app: r#"min_age = "1h""#,
                targets: &[r#"env = "dev""#, r#"env = "prod", promote_from = "dev""#],
                decide: "prod",
                holds: &[("dev", "1.4.3"), ("prod", "1.4.2")],
                listed: Listed::Images(&[
                    ("1.4.2", "sha256:a1", 86_400),
                    ("1.4.3", "sha256:b2", 60),
                ]),
                want: Want::NoCandidate(&["from dev", "runs 1.4.3", "too young"]),
                ..ROW
            },
            Row {
                rule: "promote_from: the source read through its own format (image → tag)",
                targets: &[
                    r#"env = "dev", format = "image""#,
                    r#"env = "prod", promote_from = "dev""#,
                ],
                decide: "prod",
                holds: &[("dev", "localhost:5000/web:1.4.3"), ("prod", "1.4.2")],
                listed: REGISTRY,
                want: Want::Change {
                    from: "1.4.2",
                    to: "1.4.3",
                    value: "1.4.3",
                    recheck: false,
                    content: None,
                },
                ..ROW
            },
            Row {
                rule: "promote_from: a digest-pinning target takes the source's exact image",
                targets: &[
                    r#"env = "dev""#,
                    r#"env = "prod", promote_from = "dev", format = "tag@digest""#,
                ],
                decide: "prod",
                holds: &[("dev", "1.4.3"), ("prod", "1.4.2@sha256:a1")],
                listed: REGISTRY,
                want: Want::Change {
                    from: "1.4.2",
                    to: "1.4.3",
                    value: "1.4.3@sha256:b2",
                    recheck: true,
                    content: None,
                },
                ..ROW
            },
            Row {
                rule: "chain of three: prod takes staging's value, not dev's",
                targets: &[
                    r#"env = "dev""#,
                    r#"env = "staging", promote_from = "dev""#,
                    r#"env = "prod", promote_from = "staging""#,
                ],
                decide: "prod",
                holds: &[("dev", "1.4.3"), ("staging", "1.4.2"), ("prod", "1.4.1")],
                listed: Listed::Images(&[
                    ("1.4.1", "sha256:f6", 86_400),
                    ("1.4.2", "sha256:a1", 86_400),
                    ("1.4.3", "sha256:b2", 86_400),
                ]),
                want: Want::Change {
                    from: "1.4.1",
                    to: "1.4.2",
                    value: "1.4.2",
                    recheck: false,
                    content: None,
                },
                ..ROW
            },
            Row {
                rule: "promote_from: the source's file missing fails at the manifest stage, naming the env",
                targets: CHAIN,
                decide: "prod",
                holds: &[("prod", "1.4.2")],
                listed: REGISTRY,
                want: Want::Fail(Stage::Manifest, &["dev.yaml: no such file", "(env dev)"]),
                ..ROW
            },
            Row {
                rule: "promote_from: the source's file unreadable fails at the git stage",
                targets: CHAIN,
                decide: "prod",
                holds: &[("dev", "1.4.3"), ("prod", "1.4.2")],
                unreadable: &["dev.yaml"],
                listed: REGISTRY,
                want: Want::Fail(Stage::Git, &["dev.yaml"]),
                ..ROW
            },
        ],
    );
}

/// Every strategy with every format: the file holds the image of tag `1`
/// (digest `sha256:a1`), the registry also has `2` (`sha256:b2`, pushed
/// later), which every strategy ranks higher. `recheck` is true exactly for
/// `newest` and `digest` and for values that pin a digest. The digest
/// strategy needs a format that writes a digest (the loader refuses `tag`
/// and `image`), so its template names `{digest}`.
#[test]
fn every_strategy_with_every_format() {
    const LISTED: Listed = Listed::Images(&[("1", "sha256:a1", 7_200), ("2", "sha256:b2", 60)]);
    let template = "{registry}/{repository}:v{tag}";
    let pinned = "{registry}/{repository}:v{tag}@{digest}";
    let at = |tag: &str| format!("{HOST}/web:v{tag}");
    // (format, what the file holds for tag 1 on a1, what it holds for 2 on b2, pins a digest)
    let common: Vec<(&str, String, String, bool)> = vec![
        ("digest", "sha256:a1".into(), "sha256:b2".into(), true),
        (
            "tag@digest",
            "1@sha256:a1".into(),
            "2@sha256:b2".into(),
            true,
        ),
    ];
    let mut by_tag = vec![("tag", "1".to_string(), "2".to_string(), false)];
    by_tag.extend(common.clone());
    by_tag.extend([
        (
            "image",
            "localhost:5000/web:1".into(),
            "localhost:5000/web:2".into(),
            false,
        ),
        (
            "image",
            "localhost:5000/web:1@sha256:a1".into(),
            "localhost:5000/web:2@sha256:b2".into(),
            true,
        ),
        (template, at("1"), at("2"), false),
        (pinned, at("1@sha256:a1"), at("2@sha256:b2"), true),
    ]);
    // The loader refuses `tag` and `image` with the digest strategy.
    let mut by_digest = common;
    by_digest.push((pinned, at("1@sha256:a1"), at("2@sha256:b2"), true));
    let strategies = [
        ("semver", "strategy = \"semver\"", false, &by_tag),
        ("numeric", "strategy = \"numeric\"", false, &by_tag),
        (
            "alphabetical",
            "strategy = \"alphabetical\"",
            false,
            &by_tag,
        ),
        ("newest", "strategy = \"newest\"", true, &by_tag),
        (
            "digest",
            "strategy = \"digest\", constraint = \"2\"",
            true,
            &by_digest,
        ),
    ];
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let mut rows = Vec::new();
    for (strategy, keys, rechecks, formats) in strategies {
        for (format, old, new, pins) in formats {
            // The digest strategy compares and reports digests.
            let (from, to) = if strategy == "digest" {
                ("sha256:a1", "sha256:b2")
            } else {
                ("1", "2")
            };
            // A value YAML would read as a number is written quoted.
            let content = (new == "2").then_some(values("\"2\""));
            rows.push(Row {
                rule: leak(format!("{strategy} × {format} holding {old}")),
                app: keys,
                targets: Box::leak(Box::new([leak(format!("format = {format:?}"))])),
                holds: Box::leak(Box::new([("dev", leak(old.clone()))])),
                listed: LISTED,
                want: Want::Change {
                    from,
                    to,
                    value: leak(new.clone()),
                    recheck: rechecks || *pins,
                    content: content.map(leak),
                },
                ..ROW
            });
        }
    }
    assert_eq!(rows.len(), 4 * 7 + 3, "every strategy with every format");
    check_rows("strategy × format", &rows);
}

/// Rows that expose a bug outside these tables' reach; each names it.
/// Run with `cargo test --lib cycle -- --ignored`.
#[test]
fn image_target_holding_a_bare_tag_is_not_rewritten_to_garbage() {
    check_rows(
        "bug",
        &[Row {
            rule: "image: a file holding a bare tag fails as a manifest problem",
            targets: &[r#"format = "image""#],
            holds: &[("dev", "1.4.2")],
            listed: REGISTRY,
            want: Want::Fail(Stage::Manifest, &["dev.yaml", "not an image reference"]),
            ..ROW
        }],
    );
}

#[test]
fn soak_zero_promotes_at_once() {
    check_rows(
        "bug",
        &[Row {
            rule: "soak \"0s\": promoted at once, history or not",
            targets: &[
                r#"env = "dev""#,
                r#"env = "prod", promote_from = "dev", soak = "0s""#,
            ],
            decide: "prod",
            holds: &[("dev", "1.4.3"), ("prod", "1.4.2")],
            listed: REGISTRY,
            want: Want::Change {
                from: "1.4.2",
                to: "1.4.3",
                value: "1.4.3",
                recheck: false,
                content: None,
            },
            ..ROW
        }],
    );
}

/// dev on 1.4.1; 1.4.2 and 1.4.3 above it (and a pre-release the policy
/// refuses anyway).
const GATED: Listed = Listed::Images(&[
    ("1.4.1", "sha256:a0", 86_400),
    ("1.4.2", "sha256:a1", 86_400),
    ("1.4.3", "sha256:b2", 86_400),
    ("1.5.0-rc.1", "sha256:c3", 86_400),
]);
const SCAN_HIGH: &str = r#"scan_max_severity = "HIGH""#;
const CLEAN: GateFact = GateFact::Scan("COMPLETE", &[(Some(Severity::High), 3)]);
const CRITICAL: GateFact = GateFact::Scan("COMPLETE", &[(Some(Severity::Critical), 2)]);
const SCANNING: GateFact = GateFact::Scan("IN_PROGRESS", &[]);

#[test]
fn gate_rules() {
    let from_141 = |to: &'static str| Want::Change {
        from: "1.4.1",
        to,
        value: to,
        recheck: false,
        content: None,
    };
    check_rows(
        "gate",
        &[
            Row {
                rule: "scan: the best candidate's findings are asked for first, and only its",
                app: SCAN_HIGH,
                holds: &[("dev", "1.4.1")],
                listed: GATED,
                want: Want::Asks(&["sha256:b2"]),
                ..ROW
            },
            Row {
                rule: "scan: the best candidate passes: promoted, nothing else asked",
                app: SCAN_HIGH,
                holds: &[("dev", "1.4.1")],
                listed: GATED,
                gates: &[("sha256:b2", CLEAN)],
                want: from_141("1.4.3"),
                ..ROW
            },
            Row {
                rule: "scan: a CRITICAL above HIGH skips the best; the next is asked for",
                app: SCAN_HIGH,
                holds: &[("dev", "1.4.1")],
                listed: GATED,
                gates: &[("sha256:b2", CRITICAL)],
                want: Want::Asks(&["sha256:a1"]),
                ..ROW
            },
            Row {
                rule: "scan: a CRITICAL above HIGH skips the best; the one below passes and is promoted",
                app: SCAN_HIGH,
                holds: &[("dev", "1.4.1")],
                listed: GATED,
                gates: &[("sha256:b2", CRITICAL), ("sha256:a1", CLEAN)],
                want: from_141("1.4.2"),
                ..ROW
            },
            Row {
                rule: "scan: every better candidate fails: no candidate, each named with its findings",
                app: SCAN_HIGH,
                holds: &[("dev", "1.4.1")],
                listed: GATED,
                gates: &[
                    ("sha256:b2", CRITICAL),
                    ("sha256:a1", GateFact::Scan("FAILED", &[])),
                ],
                want: Want::NoCandidate(&[
                    "1.4.3: 2 CRITICAL findings above HIGH",
                    "1.4.2: scan FAILED",
                ]),
                ..ROW
            },
            Row {
                rule: "scan: the file's own tag ends the walk; nothing below it is asked about",
                app: SCAN_HIGH,
                holds: &[("dev", "1.4.3")],
                listed: GATED,
                want: Want::Keep,
                ..ROW
            },
            Row {
                rule: "scan: the only newer image's scan is pending: waits for it, naming it",
                app: SCAN_HIGH,
                holds: &[("dev", "1.4.2")],
                listed: GATED,
                gates: &[("sha256:b2", SCANNING)],
                want: Want::Wait {
                    reason: &["1.4.3: scan pending"],
                    candidate: Some("1.4.3"),
                },
                ..ROW
            },
            Row {
                rule: "scan: a missing scan is pending too",
                app: SCAN_HIGH,
                holds: &[("dev", "1.4.2")],
                listed: GATED,
                gates: &[("sha256:b2", GateFact::Scan("missing", &[]))],
                want: Want::Wait {
                    reason: &["1.4.3: scan pending"],
                    candidate: Some("1.4.3"),
                },
                ..ROW
            },
            Row {
                rule: "scan: a pending best is skipped under \"wait\"; the scanned one below is promoted",
                app: SCAN_HIGH,
                holds: &[("dev", "1.4.1")],
                listed: GATED,
                gates: &[("sha256:b2", SCANNING), ("sha256:a1", CLEAN)],
                want: from_141("1.4.2"),
                ..ROW
            },
            Row {
                rule: "scan: scan_pending = \"allow\" takes a pending scan",
                app: r#"scan_max_severity = "HIGH", scan_pending = "allow""#,
                holds: &[("dev", "1.4.1")],
                listed: GATED,
                gates: &[("sha256:b2", SCANNING)],
                want: from_141("1.4.3"),
                ..ROW
            },
            Row {
                rule: "scan: UNDEFINED counts as LOW by default",
                app: r#"scan_max_severity = "LOW""#,
                holds: &[("dev", "1.4.1")],
                listed: GATED,
                gates: &[("sha256:b2", GateFact::Scan("COMPLETE", &[(None, 4)]))],
                want: from_141("1.4.3"),
                ..ROW
            },
            Row {
                rule: "scan: UNDEFINED counts as scan_undefined_as",
                app: r#"scan_max_severity = "LOW", scan_undefined_as = "MEDIUM""#,
                holds: &[("dev", "1.4.2")],
                listed: GATED,
                gates: &[("sha256:b2", GateFact::Scan("COMPLETE", &[(None, 4)]))],
                want: Want::NoCandidate(&["1.4.3: 4 MEDIUM findings above LOW"]),
                ..ROW
            },
            Row {
                rule: "scan: a target's own key replaces the app's",
                app: r#"scan_max_severity = "LOW""#,
                targets: &[r#"env = "dev", scan_max_severity = "CRITICAL""#],
                holds: &[("dev", "1.4.1")],
                listed: GATED,
                gates: &[("sha256:b2", CRITICAL)],
                want: from_141("1.4.3"),
                ..ROW
            },
            Row {
                rule: "scan: findings that cannot be read keep the image out, with the error",
                app: SCAN_HIGH,
                holds: &[("dev", "1.4.2")],
                listed: GATED,
                gates: &[("sha256:b2", GateFact::ScanError)],
                want: Want::NoCandidate(&["1.4.3: scan:", "DescribeImageScanFindings"]),
                ..ROW
            },
            Row {
                rule: "scan: promote_from gates the source's image",
                app: SCAN_HIGH,
                targets: CHAIN,
                decide: "prod",
                holds: &[("dev", "1.4.3"), ("prod", "1.4.2")],
                since: &[("dev", "1.4.3", 7_200)],
                listed: GATED,
                gates: &[("sha256:b2", CRITICAL)],
                want: Want::NoCandidate(&["from dev: 1.4.3: 2 CRITICAL findings above HIGH"]),
                ..ROW
            },
            Row {
                rule: "signature: cosign's legacy .sig tag signs without asking for referrers",
                app: r#"require_signature = "cosign""#,
                holds: &[("dev", "1.4.1")],
                listed: Listed::Images(&[
                    ("1.4.1", "sha256:a0", 86_400),
                    ("1.4.3", "sha256:b2", 86_400),
                    ("sha256-b2.sig", "sha256:51", 86_400),
                ]),
                want: from_141("1.4.3"),
                ..ROW
            },
            Row {
                rule: "signature: without a .sig tag the referrers are asked for",
                app: r#"require_signature = "cosign""#,
                holds: &[("dev", "1.4.1")],
                listed: GATED,
                want: Want::Asks(&["sha256:b2"]),
                ..ROW
            },
            Row {
                rule: "signature: an unsigned newest is skipped for a signed older one",
                app: r#"require_signature = "cosign""#,
                holds: &[("dev", "1.4.1")],
                listed: Listed::Images(&[
                    ("1.4.1", "sha256:a0", 86_400),
                    ("1.4.2", "sha256:a1", 86_400),
                    ("1.4.3", "sha256:b2", 86_400),
                    ("sha256-a1.sig", "sha256:51", 86_400),
                ]),
                gates: &[("sha256:b2", GateFact::Referrers(&[]))],
                want: from_141("1.4.2"),
                ..ROW
            },
            Row {
                rule: "signature: a cosign v3 bundle referrer signs for cosign",
                app: r#"require_signature = "cosign""#,
                holds: &[("dev", "1.4.1")],
                listed: GATED,
                gates: &[(
                    "sha256:b2",
                    GateFact::Referrers(&["application/vnd.dev.sigstore.bundle.v0.3+json"]),
                )],
                want: from_141("1.4.3"),
                ..ROW
            },
            Row {
                rule: "signature: a notation signature does not satisfy cosign",
                app: r#"require_signature = "cosign""#,
                holds: &[("dev", "1.4.2")],
                listed: GATED,
                gates: &[(
                    "sha256:b2",
                    GateFact::Referrers(&["application/vnd.cncf.notary.signature"]),
                )],
                want: Want::NoCandidate(&["1.4.3: not signed with cosign"]),
                ..ROW
            },
            Row {
                rule: "signature: \"any\" takes a notation signature",
                app: r#"require_signature = "any""#,
                holds: &[("dev", "1.4.1")],
                listed: GATED,
                gates: &[(
                    "sha256:b2",
                    GateFact::Referrers(&["application/vnd.cncf.notary.signature"]),
                )],
                want: from_141("1.4.3"),
                ..ROW
            },
            Row {
                rule: "both gates: a scan failure decides without the signature's verdict",
                app: r#"scan_max_severity = "HIGH", require_signature = "notation""#,
                holds: &[("dev", "1.4.2")],
                listed: GATED,
                gates: &[("sha256:b2", CRITICAL)],
                want: Want::NoCandidate(&["1.4.3: 2 CRITICAL findings above HIGH"]),
                ..ROW
            },
            Row {
                rule: "both gates: both facts of one image are asked for at once",
                app: r#"scan_max_severity = "HIGH", require_signature = "notation""#,
                holds: &[("dev", "1.4.2")],
                listed: GATED,
                want: Want::Asks(&["sha256:b2", "sha256:b2"]),
                ..ROW
            },
        ],
    );
}
