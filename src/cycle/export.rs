//! A cycle's report as metrics: every per-target family is recorded here,
//! from the report alone, so each is counted once and the same way for a
//! commit and a pull request. Peer layers record only their own request
//! timings.
//!
//! This lives with the report rather than in [`crate::metrics`] so that
//! `metrics` stays a leaf every layer can record into without importing
//! the cycle that imports it.

use time::OffsetDateTime;

use super::report::{CycleReport, Outcome, RequestAction, Stage};
use crate::metrics;

/// Records `report`, a cycle that took `elapsed`.
pub fn export(report: &CycleReport, elapsed: std::time::Duration) {
    let m = metrics::get();
    let failed = report
        .targets
        .iter()
        .filter(|t| matches!(t.outcome, Outcome::Failed { .. }))
        .count();
    let outcome = match failed {
        0 => "success",
        n if n == report.targets.len() => "failure",
        _ => "partial",
    };
    m.cycles.with_label_values(&[outcome]).inc();
    m.cycle_duration.observe(elapsed.as_secs_f64());
    if failed == 0 {
        m.cycle_last_success.set(metrics::unix_now());
    }
    m.git_push_conflicts
        .inc_by(u64::from(report.push_conflicts));
    if report.requests_closed > 0 {
        m.pull_requests
            .with_label_values(&["closed"])
            .inc_by(u64::from(report.requests_closed));
    }
    let mut live: std::collections::BTreeMap<&str, u32> = Default::default();
    for p in &report.previews {
        *live.entry(p.app.as_str()).or_default() += u32::from(p.live);
        if !p.dry_run && matches!(p.action, "created" | "updated" | "removed") {
            m.preview_changes
                .with_label_values(&[p.app.as_str(), p.action])
                .inc();
        }
    }
    for (app, n) in live {
        m.previews.with_label_values(&[app]).set(f64::from(n));
    }
    let now = OffsetDateTime::now_utc();
    for t in &report.targets {
        let (app, env) = (t.app.as_str(), t.env.as_str());
        for g in &t.gates {
            m.gate_results
                .with_label_values(&[g.gate.as_str(), g.verdict.outcome()])
                .inc();
        }
        if let Some(current) = &t.current {
            m.set_target_tag(app, env, current);
        }
        m.pending_promotions
            .with_label_values(&[app, env])
            .set(if t.outcome.pending() { 1.0 } else { 0.0 });
        // Without a listing nothing is known about the deployed image: the
        // gauge keeps what the last listing said.
        if !matches!(
            t.outcome,
            Outcome::Failed {
                stage: Stage::Registry,
                ..
            }
        ) {
            m.deployed_image_missing
                .with_label_values(&[app, env])
                .set(if t.ecr.missing.is_some() { 1.0 } else { 0.0 });
        }
        // Only DR targets have the series (0 while not waiting).
        if let Some(wait) = t.ecr.replication_wait {
            m.replication_wait
                .with_label_values(&[app, env])
                .set(wait.as_secs_f64());
        }
        m.target_held
            .with_label_values(&[app, env])
            .set(if t.hold.is_some() { 1.0 } else { 0.0 });
        // Every rollback once, whoever made it (this process, another
        // replica, `tagwatch rollback`, a person): counted where it was
        // made, not again for each env downstream that inherits it.
        if let Outcome::Promoted {
            rollback: Some(cause),
            commit,
            ..
        } = &t.outcome
        {
            m.count_rollback(app, env, cause.as_str(), commit, now.unix_timestamp());
        }
        for d in t.denials.iter().filter(|d| d.env == t.env) {
            let at = d.at.unix_timestamp();
            if m.count_rollback(app, env, d.cause.as_str(), &d.commit, at) {
                tracing::info!(app, env, tag = %d.tag, commit = %d.commit, by = %d.by, cause = d.cause.as_str(), "rolled back; the tag is denied");
            }
        }
        let promoted = match &t.outcome {
            Outcome::Failed { stage, .. } => {
                m.app_errors.with_label_values(&[app, stage.as_str()]).inc();
                None
            }
            Outcome::Promoted { pushed_at, .. } => Some(("commit", pushed_at)),
            Outcome::Proposed {
                pushed_at, action, ..
            } if *action != RequestAction::Kept => {
                // One request count per request, not per member of a group.
                if t.outcome.pull_request().is_some() && first_member(report, t) {
                    m.pull_requests.with_label_values(&[action.as_str()]).inc();
                }
                Some(("pull-request", pushed_at))
            }
            _ => None,
        };
        if let Some((how, pushed_at)) = promoted {
            m.promotions.with_label_values(&[app, env, how]).inc();
            if let Some(pushed) = pushed_at {
                let latency = (now - *pushed).as_seconds_f64();
                // An image dated in the future (clock skew) says nothing.
                if latency >= 0.0 {
                    m.push_to_promotion
                        .with_label_values(&[env])
                        .observe(latency);
                }
            }
        }
    }
}

/// Whether `t` is the first target in the report proposed in its request.
fn first_member(report: &CycleReport, t: &super::report::TargetReport) -> bool {
    let url = t.outcome.pull_request();
    report
        .targets
        .iter()
        .find(|o| o.outcome.pull_request() == url)
        .is_some_and(|first| first.app == t.app && first.env == t.env)
}
