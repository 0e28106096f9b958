//! Table tests for [`plan`], continued from `plan_tests.rs` (whose harness,
//! `Row` and `check_rows` these use): chains, every strategy with every
//! format, and the promotion gates.

use super::*;

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

/// Rows that exposed bugs when the tables were written (both fixed since);
/// kept as regressions.
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

/// `analysis` after the soak: the query is a fact like a scan; asked for
/// once the soak is over, it keeps the target waiting unless it returned
/// a sample, and a passing answer is named in what the change passed.
#[test]
fn analysis_rules() {
    use crate::gate::{Analysis, Sample};
    use crate::prometheus::PrometheusError;

    let mut app = app(
        "",
        &[
            r#"env = "dev""#,
            r#"env = "prod", promote_from = "dev", soak = "1h""#,
        ],
    );
    app.targets[1].analysis =
        Some(Analysis::parse(r#"up{app="{{app}}",env="{{ env }}",tag="{{tag}}"} == 1"#).unwrap());
    let query = r#"up{app="web",env="dev",tag="1.4.3"} == 1"#;
    let listing = Ok(images(&[
        ("1.4.2", "sha256:a1", 86_400),
        ("1.4.3", "sha256:b2", 86_400),
    ]));
    let decide = |branch: &Facts, answer: Option<Result<Vec<Sample>, PrometheusError>>| {
        let mut gates = GateFacts::default();
        if let Some(answer) = answer {
            gates.analysis.insert(query.to_string(), answer);
        }
        plan(
            &Input {
                app: &app,
                target: &app.targets[1],
                listing: Some(&listing),
                best: None,
                gates: &gates,
                now: NOW,
                replica: None,
            },
            branch,
        )
    };
    let soaked = Facts::default()
        .holds("dev", "1.4.3")
        .holds("prod", "1.4.2")
        .since("dev", "1.4.3", 7_200);
    let wait = |p: &Planned| match &p.step {
        Step::Wait { reason, .. } => reason.clone(),
        other => panic!("want a wait, got {other:?}"),
    };

    // Still soaking: Prometheus is not asked.
    let soaking = Facts::default()
        .holds("dev", "1.4.3")
        .holds("prod", "1.4.2")
        .since("dev", "1.4.3", 60);
    let p = decide(&soaking, None);
    assert!(p.needs.is_empty(), "{:?}", p.needs);
    assert!(wait(&p).contains("soak is 1h"));

    // Soaked: the rendered query is asked for, provisionally waiting.
    let p = decide(&soaked, None);
    assert_eq!(p.needs.len(), 1);
    assert_eq!(p.needs[0].fact, Fact::Analysis);
    assert_eq!(p.needs[0].query.as_deref(), Some(query));
    assert!(wait(&p).contains("not checked yet"));

    // No sample: waits, with the query named; recorded as a fail.
    let p = decide(&soaked, Some(Ok(vec![])));
    assert!(p.needs.is_empty());
    assert_eq!(
        wait(&p),
        format!("from dev: analysis `{query}` returned no sample")
    );
    assert_eq!(p.verdicts[0].verdict.outcome(), "fail");
    assert_eq!(p.verdicts[0].gate.as_str(), "analysis");

    // Prometheus down: waits with the error, never promotes.
    let down = PrometheusError::Unreachable {
        url: "http://prometheus:9090".into(),
        message: "connection refused".into(),
    };
    let p = decide(&soaked, Some(Err(down)));
    assert!(wait(&p).contains("is unreachable: connection refused"));
    assert_eq!(p.verdicts[0].verdict.outcome(), "error");

    // A sample: promoted, and the change says what the analysis found.
    let sample = Sample {
        metric: r#"{app="web"}"#.into(),
        value: "1".into(),
    };
    let p = decide(&soaked, Some(Ok(vec![sample])));
    let Step::Change(change) = &p.step else {
        panic!("want a change, got {:?}", p.step);
    };
    assert_eq!(change.promotion.to, "1.4.3");
    assert_eq!(
        change.passed,
        [(
            Gate::Analysis,
            format!(r#"analysis `{query}` = 1 {{app="web"}}"#)
        )]
    );
}

/// prod, and its DR twin in us-west-2 that takes prod's value once ECR
/// has replicated the same digest there (issue 18 item 1).
const DR: &[&str] = &[
    r#"env = "prod""#,
    r#"env = "dr", promote_from = "prod", region = "us-west-2", format = "image""#,
];
const DR_HOST: &str = "123456789012.dkr.ecr.us-west-2.amazonaws.com/web";

#[test]
fn replica_rules() {
    check_rows(
        "replica",
        &[
            Row {
                rule: "DR: an image in the primary region only waits, naming region and digest",
                targets: DR,
                decide: "dr",
                holds: &[
                    ("prod", "1.4.3"),
                    (
                        "dr",
                        "123456789012.dkr.ecr.us-west-2.amazonaws.com/web:1.4.2",
                    ),
                ],
                listed: REGISTRY,
                replica: Listed::Images(&[("1.4.2", "sha256:a1", 86_400)]),
                want: Want::Wait {
                    reason: &["not yet replicated to us-west-2 (digest sha256:b2)"],
                    candidate: Some("1.4.3"),
                },
                ..ROW
            },
            Row {
                rule: "DR: the same digest in the replica is promoted, with the replica region's host",
                targets: DR,
                decide: "dr",
                holds: &[
                    ("prod", "1.4.3"),
                    (
                        "dr",
                        "123456789012.dkr.ecr.us-west-2.amazonaws.com/web:1.4.2",
                    ),
                ],
                listed: REGISTRY,
                replica: Listed::Images(&[
                    ("1.4.2", "sha256:a1", 86_400),
                    ("1.4.3", "sha256:b2", 60),
                ]),
                want: Want::Change {
                    from: "1.4.2",
                    to: "1.4.3",
                    value: "123456789012.dkr.ecr.us-west-2.amazonaws.com/web:1.4.3",
                    recheck: false,
                    content: None,
                },
                ..ROW
            },
            Row {
                rule: "DR: the same tag on another digest in the replica is refused, never written",
                targets: DR,
                decide: "dr",
                holds: &[
                    ("prod", "1.4.3"),
                    (
                        "dr",
                        "123456789012.dkr.ecr.us-west-2.amazonaws.com/web:1.4.2",
                    ),
                ],
                listed: REGISTRY,
                replica: Listed::Images(&[("1.4.3", "sha256:ff", 60)]),
                want: Want::NoCandidate(&[
                    "refused: us-west-2 has web:1.4.3 at digest sha256:ff, not sha256:b2, which prod runs",
                ]),
                ..ROW
            },
            Row {
                rule: "DR: a replica that cannot be listed fails the target, not the primary",
                targets: DR,
                decide: "dr",
                holds: &[("prod", "1.4.3"), ("dr", "x/web:1.4.2")],
                listed: REGISTRY,
                replica: Listed::Error,
                want: Want::Fail(Stage::Registry, &["replica in us-west-2"]),
                ..ROW
            },
            Row {
                rule: "DR: already at prod's value is kept, replicated or not",
                targets: DR,
                decide: "dr",
                holds: &[
                    ("prod", "1.4.3"),
                    (
                        "dr",
                        "123456789012.dkr.ecr.us-west-2.amazonaws.com/web:1.4.3",
                    ),
                ],
                listed: REGISTRY,
                replica: Listed::Images(&[("1.4.3", "sha256:b2", 60)]),
                want: Want::Keep,
                ..ROW
            },
        ],
    );
    assert!(DR_HOST.ends_with("/web"));
}

/// The deployed image is checked against the listing the target is served
/// from, every cycle (issue 18 item 3); the DR target's wait is reported.
#[test]
fn deployed_image_and_replication_wait() {
    let app = app("", DR);
    let listing = Ok(images(&[("1.4.2", "sha256:a1", 86_400)]));
    let decide = |target: usize, branch: &Facts, listing: &Result<Listing, RegistryError>| {
        let replica = Ok(Listing {
            region: "us-west-2".into(),
            ..images(&[("1.4.2", "sha256:a1", 86_400)])
        });
        plan(
            &Input {
                app: &app,
                target: &app.targets[target],
                listing: Some(listing),
                best: None,
                gates: &GateFacts::default(),
                now: NOW,
                replica: Some(&replica),
            },
            branch,
        )
    };
    // prod runs 1.4.1, which the listing no longer has.
    let gone = Facts::default().holds("prod", "1.4.1");
    let p = decide(0, &gone, &listing);
    let missing = p.ecr.missing.expect("1.4.1 is gone");
    assert!(
        missing.contains("web:1.4.1 is not in the registry"),
        "{missing}"
    );
    assert_eq!(p.ecr.replication_wait, None, "prod has no replica");

    // Archived: said so.
    let mut archived = images(&[("1.4.2", "sha256:a1", 86_400)]);
    archived.archived = images(&[("1.4.1", "sha256:00", 90_000)]).images;
    let p = decide(0, &gone, &Ok(archived));
    assert!(p.ecr.missing.unwrap().contains("archived"));

    // Present: nothing to say.
    let fine = Facts::default().holds("prod", "1.4.2");
    assert_eq!(decide(0, &fine, &listing).ecr.missing, None);

    // The DR target waits on 1.4.3 (not replicated) for as long as prod
    // has run it, and its own value is checked against the replica.
    let with_new = Ok(images(&[
        ("1.4.2", "sha256:a1", 86_400),
        ("1.4.3", "sha256:b2", 7_200),
    ]));
    let dr = Facts::default()
        .holds("prod", "1.4.3")
        .holds(
            "dr",
            "123456789012.dkr.ecr.us-west-2.amazonaws.com/web:1.4.2",
        )
        .since("prod", "1.4.3", 1_800);
    let p = decide(1, &dr, &with_new);
    assert!(matches!(p.step, Step::Wait { .. }), "{:?}", p.step);
    assert_eq!(
        p.ecr.replication_wait,
        Some(std::time::Duration::from_secs(1_800))
    );
    assert_eq!(p.ecr.missing, None);
}
