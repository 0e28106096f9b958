//! Table tests for holds and denials in [`plan`]: the holds file and the
//! value history are facts like the listing, so each rule is one row.

use super::*;

use crate::cycle::table_facts as facts;
use crate::gitops::ValueEvent;
use crate::trailers::Location;

use facts::{Facts, NOW, app, check_table, contains_all, images};

/// The branch of [`Facts`], with a value history per file.
struct History {
    facts: Facts,
    /// `(file, from, to, who)`, oldest first; who is `tagwatch` (a
    /// promotion), `rollback` (tagwatch's rollback) or `person`.
    events: &'static [(&'static str, &'static str, &'static str, &'static str)],
    /// How long ago every event was committed.
    ago: i64,
}

impl Branch for History {
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
    fn value_events(
        &self,
        path: &crate::config::RepoPath,
        _value_of: &dyn Fn(&[u8]) -> Option<String>,
    ) -> Vec<ValueEvent> {
        self.events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.0 == path.as_str())
            .map(|(i, &(file, from, to, who))| {
                let env = file.trim_end_matches(".yaml");
                let mut message = if who != "person" {
                    Promotion {
                        app: "web".into(),
                        env: env.into(),
                        image: "reg/web".into(),
                        from: from.into(),
                        to: to.into(),
                        digest: String::new(),
                        pushed_at: None,
                    }
                    .message(&Location { file, key: "k" })
                } else {
                    "revert\n".into()
                };
                if who == "rollback" {
                    message.push_str(
                        &crate::rollback::Order {
                            to: to.into(),
                            of: from.into(),
                            cause: crate::rollback::Cause::Command,
                            reason: "r".into(),
                        }
                        .trailers(),
                    );
                }
                ValueEvent {
                    commit: format!("c{i}"),
                    author: "Person".into(),
                    at: facts::ago(self.ago),
                    from: Some(from.into()),
                    to: Some(to.into()),
                    message,
                }
            })
            .collect()
    }
}

struct Row {
    rule: &'static str,
    decide: &'static str,
    holds: &'static [(&'static str, &'static str)],
    holds_file: Option<&'static str>,
    events: &'static [(&'static str, &'static str, &'static str, &'static str)],
    listed: &'static [&'static str],
    /// Seconds before NOW the events were committed.
    ago: i64,
    /// dev's `verify` answer: `None` not fetched, `Some(true)` a sample,
    /// `Some(false)` an empty vector.
    verify: Option<bool>,
    /// A `tagwatch rollback` order on dev, to this tag.
    order: Option<&'static str>,
    /// `Ok(to)`: a change to it; `Err(parts)`: a step whose text says these
    /// (`keep` for Keep).
    want: Result<&'static str, &'static [&'static str]>,
}

const REVERTED: &[(&str, &str, &str, &str)] = &[
    ("dev.yaml", "1.4.4", "1.4.5", "tagwatch"),
    ("dev.yaml", "1.4.5", "1.4.4", "person"),
];
const PROMOTED: &[(&str, &str, &str, &str)] = &[("dev.yaml", "1.4.4", "1.4.5", "tagwatch")];

const ROW: Row = Row {
    rule: "",
    decide: "dev",
    holds: &[("dev", "1.4.4")],
    holds_file: None,
    events: &[],
    listed: &["1.4.4", "1.4.5"],
    ago: 0,
    verify: None,
    order: None,
    want: Ok(""),
};

const HOLD: &str = "[[hold]]\napp = \"web\"\nenv = \"dev\"\nreason = \"incident 42\"\nby = \"alice\"\nuntil = \"2026-11-21T11:00:00Z\"\n";
const LAPSED: &str = "[[hold]]\napp = \"web\"\nenv = \"dev\"\nreason = \"incident 42\"\nuntil = \"2026-11-21T09:00:00Z\"\n";
const RELEASED: &str = "[[release]]\napp = \"web\"\nenv = \"dev\"\ntag = \"1.4.5\"\n";

const ROWS: &[Row] = &[
    Row {
        rule: "a held target takes nothing, and says who held it until when",
        decide: "dev",
        holds: &[("dev", "1.4.4")],
        holds_file: Some(HOLD),
        events: &[],
        listed: &["1.4.4", "1.4.5"],
        want: Err(&["held by alice until 2026-11-21T11:00:00Z: incident 42"]),
        ..ROW
    },
    Row {
        rule: "a hold whose until has passed holds nothing",
        decide: "dev",
        holds: &[("dev", "1.4.4")],
        holds_file: Some(LAPSED),
        events: &[],
        listed: &["1.4.4", "1.4.5"],
        want: Ok("1.4.5"),
        ..ROW
    },
    Row {
        rule: "a hold on another env does not hold this one",
        decide: "prod",
        holds: &[("dev", "1.4.5"), ("prod", "1.4.4")],
        holds_file: Some(HOLD),
        events: &[],
        listed: &["1.4.4", "1.4.5"],
        want: Ok("1.4.5"),
        ..ROW
    },
    Row {
        rule: "a bad holds file fails the target rather than ignore a hold",
        decide: "dev",
        holds: &[("dev", "1.4.4")],
        holds_file: Some("[[hold]]\napp = 1\n"),
        events: &[],
        listed: &["1.4.4", "1.4.5"],
        want: Err(&["fail", ".tagwatch/holds.toml"]),
        ..ROW
    },
    Row {
        rule: "a person's revert denies the reverted tag (#1249)",
        decide: "dev",
        holds: &[("dev", "1.4.4")],
        holds_file: None,
        events: REVERTED,
        listed: &["1.4.4", "1.4.5"],
        want: Err(&["no candidate", "1.4.5 denied: rolled back by Person in c1"]),
        ..ROW
    },
    Row {
        rule: "a newer tag than the denied one still flows",
        decide: "dev",
        holds: &[("dev", "1.4.4")],
        holds_file: None,
        events: REVERTED,
        listed: &["1.4.4", "1.4.5", "1.4.6"],
        want: Ok("1.4.6"),
        ..ROW
    },
    Row {
        rule: "a released denial flows again",
        decide: "dev",
        holds: &[("dev", "1.4.4")],
        holds_file: Some(RELEASED),
        events: REVERTED,
        listed: &["1.4.4", "1.4.5"],
        want: Ok("1.4.5"),
        ..ROW
    },
    Row {
        rule: "a tag denied upstream is refused downstream even if the source runs it",
        decide: "prod",
        holds: &[("dev", "1.4.5"), ("prod", "1.4.4")],
        holds_file: None,
        events: &[
            ("dev.yaml", "1.4.4", "1.4.5", "tagwatch"),
            ("dev.yaml", "1.4.5", "1.4.4", "person"),
            ("dev.yaml", "1.4.4", "1.4.5", "person"),
        ],
        listed: &["1.4.4", "1.4.5"],
        want: Err(&["no candidate", "from dev: it runs 1.4.5 denied"]),
        ..ROW
    },
    Row {
        rule: "a person moving the value up is not a revert",
        decide: "dev",
        holds: &[("dev", "1.4.6")],
        holds_file: None,
        events: &[
            ("dev.yaml", "1.4.4", "1.4.5", "tagwatch"),
            ("dev.yaml", "1.4.5", "1.4.6", "person"),
        ],
        listed: &["1.4.4", "1.4.5", "1.4.6", "1.4.7"],
        want: Ok("1.4.7"),
        ..ROW
    },
    Row {
        rule: "verify: an empty vector inside the window rolls back to the value before",
        holds: &[("dev", "1.4.5")],
        events: PROMOTED,
        ago: 60,
        verify: Some(false),
        want: Ok("1.4.4 (rollback: verify)"),
        ..ROW
    },
    Row {
        rule: "verify: a sample keeps the promotion",
        holds: &[("dev", "1.4.5")],
        events: PROMOTED,
        ago: 60,
        verify: Some(true),
        want: Err(&["keep"]),
        ..ROW
    },
    Row {
        rule: "verify: the query is asked for first (provisional)",
        holds: &[("dev", "1.4.5")],
        events: PROMOTED,
        ago: 60,
        want: Err(&["wait verify `up{tag=\"1.4.5\"} == 1` is not checked yet"]),
        ..ROW
    },
    Row {
        rule: "verify: after verify_for nothing is rolled back",
        holds: &[("dev", "1.4.5")],
        events: PROMOTED,
        ago: 600,
        verify: Some(false),
        want: Err(&["keep"]),
        ..ROW
    },
    Row {
        rule: "verify: never a value a person set",
        holds: &[("dev", "1.4.5")],
        events: &[("dev.yaml", "1.4.4", "1.4.5", "person")],
        ago: 60,
        verify: Some(false),
        want: Err(&["keep"]),
        ..ROW
    },
    Row {
        rule: "verify: never a rollback of a rollback",
        holds: &[("dev", "1.4.4")],
        events: &[
            ("dev.yaml", "1.4.3", "1.4.5", "tagwatch"),
            ("dev.yaml", "1.4.5", "1.4.4", "rollback"),
        ],
        listed: &["1.4.3", "1.4.4", "1.4.5"],
        ago: 60,
        verify: Some(false),
        want: Err(&[
            "no candidate",
            "1.4.5 denied: rolled back by tagwatch rollback in c1",
        ]),
        ..ROW
    },
    Row {
        rule: "a rollback order goes back past holds and never-downgrade",
        holds: &[("dev", "1.4.5")],
        holds_file: Some(HOLD),
        order: Some("1.4.4"),
        want: Ok("1.4.4 (rollback: command)"),
        ..ROW
    },
    Row {
        rule: "a rollback order to a tag the registry lacks changes nothing",
        holds: &[("dev", "1.4.5")],
        order: Some("1.4.1"),
        want: Err(&["no candidate", "no image 1.4.1 to roll back to"]),
        ..ROW
    },
];

fn run(row: &Row) -> Result<(), String> {
    let mut app = app(
        "",
        &[r#"env = "dev""#, r#"env = "prod", promote_from = "dev""#],
    );
    // As `verify = 'up{tag="{{tag}}"} == 1'`, `verify_for = "5m"` would
    // load (the loader also wants a [prometheus] section).
    app.targets[0].verify = Some(crate::config::Verify {
        query: crate::gate::Analysis::parse(r#"up{tag="{{tag}}"} == 1"#).ok(),
        window: std::time::Duration::from_secs(300),
    });
    app.targets[0].rollback = row.order.map(|to| crate::rollback::Order {
        to: to.into(),
        of: "1.4.5".into(),
        cause: crate::rollback::Cause::Command,
        reason: "r".into(),
    });
    let target = app.targets.iter().find(|t| t.env == row.decide).unwrap();
    let mut facts = Facts::default();
    for (env, value) in row.holds {
        facts = facts.holds(env, value);
    }
    if let Some(text) = row.holds_file {
        facts = facts.file(".tagwatch/holds.toml", text);
    }
    let listed: Vec<(&str, &str, i64)> = row.listed.iter().map(|t| (*t, &t[..], 86_400)).collect();
    let listing = Ok(images(&listed));
    let mut gates = GateFacts::default();
    if let Some(sample) = row.verify {
        let samples = match sample {
            true => vec![crate::gate::Sample {
                metric: "{}".into(),
                value: "1".into(),
            }],
            false => Vec::new(),
        };
        gates
            .analysis
            .insert(r#"up{tag="1.4.5"} == 1"#.to_string(), Ok(samples));
    }
    let input = Input {
        app: &app,
        target,
        listing: Some(&listing),
        replica: None,
        best: None,
        gates: &gates,
        now: NOW,
    };
    let branch = History {
        facts,
        events: row.events,
        ago: row.ago,
    };
    let step = plan(&input, &branch).step;
    let text = match &step {
        Step::Keep => "keep".to_string(),
        Step::NoCandidate { why } => format!("no candidate {why}"),
        Step::Wait { reason, .. } => format!("wait {reason}"),
        Step::Fail { error, .. } => format!("fail {error}"),
        Step::Change(c) => match &c.rollback {
            Some(r) => format!(
                "change to {} (rollback: {})",
                c.promotion.to,
                r.cause.as_str()
            ),
            None => format!("change to {}", c.promotion.to),
        },
        Step::Deferred { reason, .. } => format!("deferred {reason}"),
    };
    match row.want {
        Ok(to) => (text == format!("change to {to}"))
            .then_some(())
            .ok_or_else(|| format!("{}: want a change to {to}, got {text}", row.rule)),
        Err(parts) => contains_all(&text, parts).map_err(|e| format!("{}: {e}", row.rule)),
    }
}

#[test]
fn hold_and_denial_rules() {
    check_table("hold", ROWS, |r| r.rule, run);
}
