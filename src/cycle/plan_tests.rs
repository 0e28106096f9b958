//! Table tests for [`plan`]: one row per rule a user would recognise,
//! each deciding one target from facts (the app as config TOML, what the
//! files hold, the listing, what history says, the fixed clock) and
//! naming the rule it proves. A failing row prints its rule, the expected
//! and the actual step; all failures of a table are reported at once.

use super::*;

use crate::cycle::table_facts as facts;

use facts::{Facts, HOST, NOW, app, contains_all, images, values};

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
    /// A DR target's replica repository `web` in us-west-2.
    replica: Listed,
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
    replica: Listed::Not,
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
    let replica = match row.replica {
        Listed::Images(written) => Some(Ok(Listing {
            region: "us-west-2".into(),
            ..images(written)
        })),
        Listed::Error => Some(Err(crate::registry::RegistryError {
            repository: "web".into(),
            kind: crate::registry::ErrorKind::NotFound,
            message: "repository does not exist in the registry".into(),
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
        replica: replica.as_ref(),
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
    facts::check_table(what, rows, |row| row.rule, run);
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

// Chains (promote_from, soak), every strategy with every format, and the
// gates: in their own file, so each stays readable.
#[path = "plan_chain_tests.rs"]
mod chains;
