//! From a cycle's report to the events worth announcing. Pure: the report,
//! what was announced before (to send `waiting` and `failed` once per
//! change, and to notice a proposal that reached the branch), and the
//! clock go in; events come out.

use std::collections::HashMap;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::config::{Config, EventKind};
use crate::cycle::{CycleReport, How, Mode, Outcome, RequestAction};

/// One thing that happened to one app/env. Serialised as the webhook's
/// event object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    #[serde(serialize_with = "kind_name")]
    pub event: EventKind,
    pub app: String,
    pub env: String,
    pub from: Option<String>,
    pub to: Option<String>,
    /// The commit on the branch (promoted).
    pub commit: Option<String>,
    /// The pull request (proposed), or the commit's web page.
    pub url: Option<String>,
    /// Why it waits or failed.
    pub reason: Option<String>,
    /// When the cycle ran (RFC 3339).
    pub time: String,
    /// The image's repository in the ECR console (Slack only).
    #[serde(skip)]
    pub ecr_url: Option<String>,
}

fn kind_name<S: serde::Serializer>(k: &EventKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(k.as_str())
}

/// Links the report does not carry, derived once from the configuration.
#[derive(Clone, Debug, Default)]
pub struct Links {
    /// `https://github.com/acme/gitops/commit/` or GitLab's `/-/commit/`.
    commit_base: Option<String>,
    /// app → its ECR console page.
    ecr: HashMap<String, String>,
}

impl Links {
    pub fn from_config(config: &Config) -> Links {
        let commit_base = config.forge.as_ref().map(|f| {
            let web = f
                .api_url
                .replace("://api.github.com", "://github.com")
                .trim_end_matches("/api/v3")
                .trim_end_matches("/api/v4")
                .to_string();
            let sep = match f.kind {
                crate::config::ForgeKind::GitHub => "/commit/",
                crate::config::ForgeKind::GitLab => "/-/commit/",
            };
            format!("{web}/{}{sep}", f.repository)
        });
        let mut ecr = HashMap::new();
        if let (Some(region), Some(account)) = (&config.aws.region, &config.aws.registry_id) {
            for app in &config.apps {
                ecr.insert(
                    app.name.clone(),
                    format!(
                        "https://{region}.console.aws.amazon.com/ecr/repositories/private/{account}/{}?region={region}",
                        app.repository
                    ),
                );
            }
        }
        Links { commit_base, ecr }
    }
}

/// What was announced per app/env, so a state that lasts is announced
/// once. Held in memory: a restart announces a lasting state once more.
#[derive(Debug, Default)]
pub struct Memory {
    last: HashMap<(String, String), Last>,
}

#[derive(Debug, Default)]
struct Last {
    /// `waiting` or `failed`, and what about, when last announced.
    lasting: Option<String>,
    /// The value a pull request proposed; seeing it on the branch later
    /// is `merged`.
    proposed: Option<(String, String)>,
}

/// The events of `report`. A dry run's changes count as what they would
/// be (`promoted` or `proposed`) and leave `memory` untouched.
pub fn events(
    report: &CycleReport,
    mode: Mode,
    memory: &mut Memory,
    links: &Links,
    now: OffsetDateTime,
) -> Vec<Event> {
    let time = now
        .replace_nanosecond(0)
        .unwrap_or(now)
        .format(&Rfc3339)
        .unwrap_or_default();
    let mut scratch = Memory::default();
    let memory = if mode == Mode::DryRun {
        &mut scratch
    } else {
        memory
    };
    let mut out = Vec::new();
    for t in &report.targets {
        let last = memory
            .last
            .entry((t.app.clone(), t.env.clone()))
            .or_default();
        let event = |kind: EventKind| Event {
            event: kind,
            app: t.app.clone(),
            env: t.env.clone(),
            from: None,
            to: None,
            commit: None,
            url: None,
            reason: None,
            time: time.clone(),
            ecr_url: links.ecr.get(&t.app).cloned(),
        };
        // A hold stops every promotion of the target: it is announced once
        // (per hold: a new reason or end is news), instead of the waiting
        // it causes.
        if let Some(hold) = &t.hold {
            let key = format!("held {hold}");
            if last.lasting.as_ref() != Some(&key) {
                out.push(Event {
                    from: t.current.clone(),
                    reason: Some(hold.clone()),
                    ..event(EventKind::Held)
                });
            }
            last.lasting = Some(key);
            continue;
        }
        let mut lasting = None;
        match &t.outcome {
            Outcome::Promoted {
                from,
                to,
                commit,
                rollback,
                ..
            } => out.push(Event {
                from: Some(from.clone()),
                to: Some(to.clone()),
                commit: Some(commit.clone()),
                url: links.commit_base.as_ref().map(|b| format!("{b}{commit}")),
                reason: rollback.map(|c| format!("rollback ({})", c.as_str())),
                ..event(match rollback {
                    Some(_) => EventKind::RolledBack,
                    None => EventKind::Promoted,
                })
            }),
            Outcome::Proposed {
                from,
                to,
                url,
                action,
                ..
            } => {
                last.proposed = Some((from.clone(), to.clone()));
                if *action != RequestAction::Kept {
                    out.push(Event {
                        from: Some(from.clone()),
                        to: Some(to.clone()),
                        url: Some(url.clone()),
                        ..event(EventKind::Proposed)
                    });
                }
            }
            Outcome::WouldPromote {
                from,
                to,
                how,
                rollback,
                ..
            } => out.push(Event {
                from: Some(from.clone()),
                to: Some(to.clone()),
                reason: rollback.map(|c| format!("rollback ({})", c.as_str())),
                ..event(match (rollback, how) {
                    (Some(_), _) => EventKind::RolledBack,
                    (None, How::Commit) => EventKind::Promoted,
                    (None, How::PullRequest { .. }) => EventKind::Proposed,
                })
            }),
            Outcome::Waiting { reason, candidate } => {
                // The candidate, not the reason: a soak's reason counts
                // down every cycle.
                let key = format!("waiting {}", candidate.as_deref().unwrap_or(""));
                if last.lasting.as_ref() != Some(&key) {
                    out.push(Event {
                        to: candidate.clone(),
                        from: t.current.clone(),
                        reason: Some(reason.clone()),
                        ..event(EventKind::Waiting)
                    });
                }
                lasting = Some(key);
            }
            Outcome::Failed { stage, error } => {
                let key = format!("failed {} {error}", stage.as_str());
                if last.lasting.as_ref() != Some(&key) {
                    out.push(Event {
                        from: t.current.clone(),
                        reason: Some(format!("{}: {error}", stage.as_str())),
                        ..event(EventKind::Failed)
                    });
                }
                lasting = Some(key);
            }
            Outcome::Unchanged => {
                if let Some((from, to)) = &last.proposed
                    && t.current.as_ref() == Some(to)
                {
                    out.push(Event {
                        from: Some(from.clone()),
                        to: Some(to.clone()),
                        ..event(EventKind::Merged)
                    });
                    last.proposed = None;
                }
            }
            Outcome::NoCandidate { .. } | Outcome::Deferred { .. } => {}
        }
        last.lasting = lasting;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cycle::{Stage, TargetReport};

    fn target(env: &str, outcome: Outcome, current: &str) -> TargetReport {
        TargetReport {
            app: "web".into(),
            env: env.into(),
            outcome,
            current: Some(current.into()),
            value: None,
            gates: Vec::new(),
            ecr: Default::default(),
            denials: Vec::new(),
            hold: None,
        }
    }

    fn run(memory: &mut Memory, targets: Vec<TargetReport>) -> Vec<(EventKind, String)> {
        let report = CycleReport {
            targets,
            ..CycleReport::default()
        };
        events(
            &report,
            Mode::Apply,
            memory,
            &Links::default(),
            OffsetDateTime::UNIX_EPOCH,
        )
        .into_iter()
        .map(|e| (e.event, e.env))
        .collect()
    }

    #[test]
    fn lasting_states_are_announced_once_per_change_and_a_merge_is_noticed() {
        let mut m = Memory::default();
        let failed = |e: &str| Outcome::Failed {
            stage: Stage::Git,
            error: e.into(),
        };
        let waiting = |c: &str, r: &str| Outcome::Waiting {
            reason: r.into(),
            candidate: Some(c.into()),
        };
        let proposed = |action| Outcome::Proposed {
            from: "1.0.0".into(),
            to: "1.1.0".into(),
            url: "https://pr/1".into(),
            pushed_at: None,
            action,
        };
        let rolled_back = || Outcome::Promoted {
            from: "1.1.0".into(),
            to: "1.0.0".into(),
            commit: "c".repeat(40),
            pushed_at: None,
            rollback: Some(crate::rollback::Cause::Verify),
        };
        let held = |outcome, hold: &str| TargetReport {
            hold: Some(hold.into()),
            ..target("prod", outcome, "1.1.0")
        };
        type Case = (
            &'static str,
            Vec<TargetReport>,
            Vec<(EventKind, &'static str)>,
        );
        let cases: Vec<Case> = vec![
            (
                "a first failure is announced",
                vec![target("dev", failed("boom"), "1.0.0")],
                vec![(EventKind::Failed, "dev")],
            ),
            (
                "the same failure again is not",
                vec![target("dev", failed("boom"), "1.0.0")],
                vec![],
            ),
            (
                "a different failure is",
                vec![target("dev", failed("bang"), "1.0.0")],
                vec![(EventKind::Failed, "dev")],
            ),
            (
                "a soak counting down is announced once",
                vec![target("prod", waiting("1.1.0", "soak 50m left"), "1.0.0")],
                vec![(EventKind::Waiting, "prod")],
            ),
            (
                "…not again as it counts",
                vec![target("prod", waiting("1.1.0", "soak 40m left"), "1.0.0")],
                vec![],
            ),
            (
                "a request opened is announced",
                vec![target("prod", proposed(RequestAction::Opened), "1.0.0")],
                vec![(EventKind::Proposed, "prod")],
            ),
            (
                "a request kept is not",
                vec![target("prod", proposed(RequestAction::Kept), "1.0.0")],
                vec![],
            ),
            (
                "its value on the branch is a merge",
                vec![target("prod", Outcome::Unchanged, "1.1.0")],
                vec![(EventKind::Merged, "prod")],
            ),
            (
                "…announced once",
                vec![target("prod", Outcome::Unchanged, "1.1.0")],
                vec![],
            ),
            (
                "a rollback is rolled_back, not promoted",
                vec![target("dev", rolled_back(), "1.1.0")],
                vec![(EventKind::RolledBack, "dev")],
            ),
            (
                "a hold is announced instead of the waiting it causes",
                vec![held(waiting("1.2.0", "held"), "alice: incident")],
                vec![(EventKind::Held, "prod")],
            ),
            (
                "…once",
                vec![held(waiting("1.2.0", "held"), "alice: incident")],
                vec![],
            ),
            (
                "a new hold is news",
                vec![held(waiting("1.2.0", "held"), "bob: freeze")],
                vec![(EventKind::Held, "prod")],
            ),
        ];
        for (name, targets, want) in cases {
            let want: Vec<(EventKind, String)> =
                want.into_iter().map(|(k, e)| (k, e.to_string())).collect();
            assert_eq!(run(&mut m, targets), want, "{name}");
        }
    }
}
