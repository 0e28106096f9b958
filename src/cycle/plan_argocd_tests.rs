//! Table tests for the Argo CD health gate in [`plan`]: prod promotes from
//! dev, whose Application is `web-dev`; each row gives what Argo CD said
//! (or nothing yet), whether its revision contains the promotion, and the
//! step and verdict it must lead to. Pure: facts in, decision out.

use super::*;

use crate::cycle::table_facts::{Facts, NOW, ago, app, images};

/// The table's branch: [`Facts`], and what history says about revisions.
struct Tree {
    facts: Facts,
    /// What `contains_promotion` answers.
    contains: Option<bool>,
}

impl Branch for Tree {
    fn read(&self, path: &crate::config::RepoPath) -> Result<Option<Vec<u8>>, Unreadable> {
        self.facts.read(path)
    }
    fn tag_of_digest(&self, app: &str, env: &str, digest: &str) -> Option<String> {
        self.facts.tag_of_digest(app, env, digest)
    }
    fn held_since(
        &self,
        app: &str,
        env: &str,
        value: &str,
        path: &crate::config::RepoPath,
    ) -> Option<OffsetDateTime> {
        self.facts.held_since(app, env, value, path)
    }
    fn contains_promotion(
        &self,
        app: &str,
        env: &str,
        value: &str,
        path: &crate::config::RepoPath,
        revision: &str,
    ) -> Option<bool> {
        assert_eq!(
            (app, env, value, path.as_str()),
            ("web", "dev", "1.4.3", "dev.yaml")
        );
        assert_eq!(
            revision, "0123456789abcdef",
            "the Application's sync.revision"
        );
        self.contains
    }
}

/// What Argo CD said about `web-dev`.
enum Said {
    Nothing,
    Error,
    App {
        sync: &'static str,
        health: &'static str,
        message: Option<&'static str>,
        /// Seconds before NOW.
        since: Option<i64>,
    },
}

const fn healthy(since: Option<i64>) -> Said {
    Said::App {
        sync: "Synced",
        health: "Healthy",
        message: None,
        since,
    }
}

struct Row {
    rule: &'static str,
    /// prod's file.
    prod: &'static str,
    said: Said,
    contains: Option<bool>,
    /// The step: "change", or text the wait's reason contains.
    want: &'static str,
    /// The argocd verdict's outcome; `None`: no verdict, and `Some("need")`:
    /// provisional, Argo CD is to be asked.
    verdict: Option<&'static str>,
}

fn run(row: &Row) -> Result<(), String> {
    let mut app = app(
        "",
        &[
            r#"env = "dev""#,
            r#"env = "prod", promote_from = "dev", soak = "1h""#,
        ],
    );
    app.targets[0].argocd_app = Some("web-dev".into());
    let target = &app.targets[1];
    // The commit gave dev 1.4.3 two hours ago.
    let branch = Tree {
        facts: Facts::default()
            .holds("dev", "1.4.3")
            .holds("prod", row.prod)
            .since("dev", "1.4.3", 7_200),
        contains: row.contains,
    };
    let listing = Ok(images(&[
        ("1.4.2", "sha256:a1", 86_400),
        ("1.4.3", "sha256:b2", 86_400),
    ]));
    let mut gates = GateFacts::default();
    match row.said {
        Said::Nothing => {}
        Said::Error => {
            gates.argocd.insert(
                "web-dev".into(),
                Err(ArgoError {
                    app: "web-dev".into(),
                    kind: crate::argocd::ErrorKind::Auth,
                    message: "GET …: 401 Unauthorized invalid session".into(),
                }),
            );
        }
        Said::App {
            sync,
            health,
            message,
            since,
        } => {
            gates.argocd.insert(
                "web-dev".into(),
                Ok(AppStatus {
                    sync: sync.into(),
                    health: health.into(),
                    revision: Some("0123456789abcdef".into()),
                    message: message.map(str::to_string),
                    since: since.map(ago),
                }),
            );
        }
    }
    let input = Input {
        app: &app,
        target,
        listing: Some(&listing),
        best: None,
        gates: &gates,
        now: NOW,
        replica: None,
    };
    let planned = plan(&input, &branch);
    let verdict = planned
        .verdicts
        .iter()
        .find(|v| v.gate == Gate::Argocd)
        .map(|v| v.verdict.outcome());
    let asked = planned.needs.iter().any(|n| n.fact == Fact::Argocd);
    let verdict = if asked { Some("need") } else { verdict };
    if verdict != row.verdict {
        return Err(format!("verdict {verdict:?}, want {:?}", row.verdict));
    }
    match (&planned.step, row.want) {
        (Step::Change(change), "change") => {
            if change.passed.iter().any(|(g, _)| *g == Gate::Argocd) {
                Ok(())
            } else {
                Err(format!("passed {:?} does not name argocd", change.passed))
            }
        }
        (Step::Keep, "keep") => Ok(()),
        (Step::Wait { reason, .. }, want) if reason.contains(want) => Ok(()),
        (step, want) => Err(format!("{step:?}, want {want:?}")),
    }
}

#[test]
fn argocd_rules() {
    let rows = [
        Row {
            rule: "not read yet: provisional, Argo CD is asked",
            prod: "1.4.2",
            said: Said::Nothing,
            contains: Some(true),
            want: "Argo CD application web-dev is not checked yet",
            verdict: Some("need"),
        },
        Row {
            rule: "Argo CD cannot be read: waits with the error, never promotes",
            prod: "1.4.2",
            said: Said::Error,
            contains: Some(true),
            want: "from dev: argocd web-dev: GET …: 401 Unauthorized",
            verdict: Some("error"),
        },
        Row {
            rule: "Degraded: waits with Argo CD's message",
            prod: "1.4.2",
            said: Said::App {
                sync: "Synced",
                health: "Degraded",
                message: Some("Back-off pulling image"),
                since: Some(7_000),
            },
            contains: Some(true),
            want: "argocd web-dev is Synced and Degraded: Back-off pulling image",
            verdict: Some("fail"),
        },
        Row {
            rule: "OutOfSync but Healthy: waits",
            prod: "1.4.2",
            said: Said::App {
                sync: "OutOfSync",
                health: "Healthy",
                message: None,
                since: Some(7_000),
            },
            contains: Some(true),
            want: "argocd web-dev is OutOfSync and Healthy",
            verdict: Some("fail"),
        },
        Row {
            rule: "Progressing: pending",
            prod: "1.4.2",
            said: Said::App {
                sync: "Synced",
                health: "Progressing",
                message: None,
                since: None,
            },
            contains: Some(true),
            want: "is Synced and Progressing",
            verdict: Some("pending"),
        },
        Row {
            rule: "Healthy at a revision without the promotion: waits",
            prod: "1.4.2",
            said: healthy(Some(7_000)),
            contains: Some(false),
            want: "at 0123456789ab, which does not contain the commit that gave dev 1.4.3",
            verdict: Some("pending"),
        },
        Row {
            rule: "Healthy at a revision history cannot place: waits",
            prod: "1.4.2",
            said: healthy(Some(7_000)),
            contains: None,
            want: "which cannot be told to contain",
            verdict: Some("pending"),
        },
        Row {
            rule: "Healthy for 30m of a 1h soak (the commit is 2h old): the soak counts from Argo CD",
            prod: "1.4.2",
            said: healthy(Some(1_800)),
            contains: Some(true),
            want: "dev has run 1.4.3 for 30m; soak is 1h",
            verdict: Some("pass"),
        },
        Row {
            rule: "Healthy without a time: the soak counts from the commit",
            prod: "1.4.2",
            said: healthy(None),
            contains: Some(true),
            want: "change",
            verdict: Some("pass"),
        },
        Row {
            rule: "Healthy at the promotion for the soak: promoted, and the change says it passed",
            prod: "1.4.2",
            said: healthy(Some(3_600)),
            contains: Some(true),
            want: "change",
            verdict: Some("pass"),
        },
        Row {
            rule: "prod holds dev's value already: up to date, Argo CD is not asked",
            prod: "1.4.3",
            said: Said::Nothing,
            contains: Some(true),
            want: "keep",
            verdict: None,
        },
    ];
    let failures: Vec<String> = rows
        .iter()
        .filter_map(|row| run(row).err().map(|e| format!("{}: {e}", row.rule)))
        .collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
