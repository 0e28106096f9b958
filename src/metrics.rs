//! Prometheus metrics: every family tagwatch exports, registered once, and
//! the text exposition for `/metrics`.
//!
//! The families live in one process-wide [`Metrics`] ([`get`]), because
//! they are recorded from deep inside the registry, git and forge layers,
//! and threading a handle through each would add an argument to every
//! boundary for no gain: a process runs one daemon. Label values are always
//! drawn from fixed sets (outcome, kind, operation) or from the
//! configuration (app, env, repository), never from peers' messages, so the
//! series count is bounded by the config.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    Opts, Registry, TextEncoder,
};

/// Every family, registered in one registry.
pub struct Metrics {
    registry: Registry,
    pub cycles: IntCounterVec,
    pub cycle_duration: Histogram,
    pub cycle_last_success: Gauge,
    pub cycle_backoff: Gauge,
    pub registry_requests: IntCounterVec,
    pub registry_request_duration: HistogramVec,
    pub repository_images: GaugeVec,
    pub repository_invalid_tags: GaugeVec,
    pub repository_last_success: GaugeVec,
    target_info: GaugeVec,
    /// (app, env) → the tag `target_info` currently shows, so the old series
    /// is removed when the tag changes: exactly one series per target.
    target_tags: Mutex<HashMap<(String, String), String>>,
    pub promotions: IntCounterVec,
    pub pending_promotions: GaugeVec,
    pub app_errors: IntCounterVec,
    pub git_duration: HistogramVec,
    pub git_push_conflicts: IntCounter,
    pub pull_requests: IntCounterVec,
    pub push_to_promotion: HistogramVec,
    pub events: IntCounterVec,
    pub config_reloads: IntCounterVec,
    pub gate_results: IntCounterVec,
    pub previews: GaugeVec,
    pub preview_changes: IntCounterVec,
    pub github_app_tokens: IntCounterVec,
    pub notifications: IntCounterVec,
    /// 1 while the image a target's file points at is not served by ECR.
    pub deployed_image_missing: GaugeVec,
    /// How long a DR target has waited for its image to be replicated.
    pub replication_wait: GaugeVec,
    pub rollbacks: IntCounterVec,
    pub target_held: GaugeVec,
    /// Rollbacks already counted in `rollbacks`, by (app, env, commit):
    /// they are derived from history every cycle, and counted once.
    seen_rollbacks: Mutex<std::collections::HashSet<(String, String, String)>>,
    /// When the process started: a rollback committed before it is
    /// history, not news, so a restart does not count it again.
    started: std::time::SystemTime,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

/// Seconds, for histograms of latencies from milliseconds to a minute.
const FAST: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Seconds from an image push to its promotion: a minute to a week.
const SLOW: &[f64] = &[
    5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0, 259200.0,
    604800.0,
];

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new();
        // Registration fails only for a duplicate or invalid name, which
        // is a bug caught by the tests on the first scrape.
        fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: T) -> T {
            let _ = r.register(Box::new(m.clone()));
            m
        }
        let counter = |name: &str, help: &str, labels: &[&str]| {
            reg(
                &registry,
                IntCounterVec::new(Opts::new(name, help), labels).expect(name),
            )
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            reg(
                &registry,
                GaugeVec::new(Opts::new(name, help), labels).expect(name),
            )
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: &[f64]| {
            reg(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                    labels,
                )
                .expect(name),
            )
        };
        let build = gauge(
            "tagwatch_build_info",
            "Always 1; the version in a label.",
            &["version"],
        );
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1.0);
        Metrics {
            cycles: counter(
                "tagwatch_cycles_total",
                "Cycles by outcome: success, partial (some targets failed), failure (all failed).",
                &["outcome"],
            ),
            cycle_duration: reg(
                &registry,
                Histogram::with_opts(
                    HistogramOpts::new("tagwatch_cycle_duration_seconds", "Wall time of a cycle.")
                        .buckets(FAST.to_vec()),
                )
                .expect("cycle"),
            ),
            cycle_last_success: reg(
                &registry,
                Gauge::new(
                    "tagwatch_cycle_last_success_timestamp_seconds",
                    "When the last cycle without failures finished (Unix time).",
                )
                .expect("last"),
            ),
            cycle_backoff: reg(
                &registry,
                Gauge::new(
                    "tagwatch_cycle_backoff_seconds",
                    "The pause before the next cycle because the registry throttled the last \
                     one; 0 when not backing off.",
                )
                .expect("backoff"),
            ),
            registry_requests: counter(
                "tagwatch_registry_requests_total",
                "ECR API calls by operation and outcome (success, throttled, not_found, access_denied, timeout, other).",
                &["operation", "outcome"],
            ),
            registry_request_duration: histogram(
                "tagwatch_registry_request_duration_seconds",
                "ECR API call latency.",
                &["operation"],
                FAST,
            ),
            repository_images: gauge(
                "tagwatch_repository_images",
                "Tagged images in the repository at its last listing.",
                &["repository"],
            ),
            repository_invalid_tags: gauge(
                "tagwatch_repository_invalid_tags",
                "Tags at the repository's last listing outside the OCI tag grammar; never candidates.",
                &["repository"],
            ),
            repository_last_success: gauge(
                "tagwatch_repository_last_success_timestamp_seconds",
                "When the repository was last listed successfully (Unix time).",
                &["repository"],
            ),
            target_info: gauge(
                "tagwatch_target_info",
                "Always 1; the tag (or digest) each app/env holds on the branch.",
                &["app", "env", "tag"],
            ),
            target_tags: Mutex::default(),
            promotions: counter(
                "tagwatch_promotions_total",
                "Promotions pushed (commit) or proposed (pull-request).",
                &["app", "env", "update"],
            ),
            pending_promotions: gauge(
                "tagwatch_pending_promotions",
                "1 while a promotion waits on a soak time or an open pull request.",
                &["app", "env"],
            ),
            app_errors: counter(
                "tagwatch_app_errors_total",
                "Failed targets by app and stage (registry, policy, manifest, git, forge).",
                &["app", "kind"],
            ),
            git_duration: histogram(
                "tagwatch_git_operation_duration_seconds",
                "Git operations on the GitOps repository.",
                &["operation"],
                FAST,
            ),
            git_push_conflicts: reg(
                &registry,
                IntCounter::new(
                    "tagwatch_git_push_conflicts_total",
                    "Pushes rejected because the branch moved; each is followed by a rebuild.",
                )
                .expect("conflicts"),
            ),
            pull_requests: counter(
                "tagwatch_pull_requests_total",
                "Pull requests by action: opened, updated, closed.",
                &["action"],
            ),
            push_to_promotion: histogram(
                "tagwatch_push_to_promotion_seconds",
                "From the image's push to ECR (imagePushedAt) to its promotion being pushed or proposed.",
                &["env"],
                SLOW,
            ),
            gate_results: counter(
                "tagwatch_gate_results_total",
                "Promotion gate verdicts on candidate images, by gate (scan, signature, argocd) and outcome (pass, fail, pending, error).",
                &["gate", "outcome"],
            ),
            rollbacks: counter(
                "tagwatch_rollbacks_total",
                "Rollbacks by app, env and cause: person (a revert in git), command (tagwatch rollback), verify, argocd.",
                &["app", "env", "cause"],
            ),
            target_held: gauge(
                "tagwatch_target_held",
                "1 while a hold in .tagwatch/holds.toml freezes the target, else 0.",
                &["app", "env"],
            ),
            seen_rollbacks: Mutex::default(),
            started: std::time::SystemTime::now(),
            events: counter(
                "tagwatch_events_total",
                "Registry events by source and outcome (accepted, ignored, invalid).",
                &["source", "outcome"],
            ),
            config_reloads: counter(
                "tagwatch_config_reloads_total",
                "Configuration reloads by outcome (success, failure).",
                &["outcome"],
            ),
            previews: gauge(
                "tagwatch_previews",
                "Preview environments whose file is on the branch, by app.",
                &["app"],
            ),
            preview_changes: counter(
                "tagwatch_preview_changes_total",
                "Preview files written, by app and action (created, updated, removed).",
                &["app", "action"],
            ),
            github_app_tokens: counter(
                "tagwatch_github_app_tokens_total",
                "GitHub App installation tokens minted, or why a mint failed (minted, key, sign, refused, no_installation, transport, protocol).",
                &["outcome"],
            ),
            notifications: counter(
                "tagwatch_notifications_total",
                "Notification deliveries by sink kind (slack, webhook) and outcome (sent, retried, failed, dropped).",
                &["kind", "outcome"],
            ),
            deployed_image_missing: gauge(
                "tagwatch_deployed_image_missing",
                "1 while the image a target's file points at is gone from ECR or archived (a pull would fail).",
                &["app", "env"],
            ),
            replication_wait: gauge(
                "tagwatch_replication_wait_seconds",
                "How long a DR target has waited for its source env's image to be replicated into its region (0 when not waiting).",
                &["app", "env"],
            ),
            registry,
        }
    }

    /// Sets the one `tagwatch_target_info` series of `app`/`env` to `tag`,
    /// removing the series of the tag it held before.
    pub fn set_target_tag(&self, app: &str, env: &str, tag: &str) {
        let mut tags = self.target_tags.lock().unwrap_or_else(|e| e.into_inner());
        let key = (app.to_string(), env.to_string());
        if let Some(old) = tags.get(&key) {
            if old == tag {
                return;
            }
            let _ = self.target_info.remove_label_values(&[app, env, old]);
        }
        self.target_info
            .with_label_values(&[app, env, tag])
            .set(1.0);
        tags.insert(key, tag.to_string());
    }

    /// Counts the rollback `commit` of `app`/`env` in
    /// `tagwatch_rollbacks_total` the first time this process sees it,
    /// unless it was committed (`at`, Unix seconds) before the process
    /// started (with a minute's slack for clock skew); `true` when counted.
    pub fn count_rollback(&self, app: &str, env: &str, cause: &str, commit: &str, at: i64) -> bool {
        let started = self
            .started
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let mut seen = self
            .seen_rollbacks
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !seen.insert((app.into(), env.into(), commit.into())) || at < started - 60 {
            return false;
        }
        self.rollbacks.with_label_values(&[app, env, cause]).inc();
        true
    }

    /// Forgets targets that are no longer configured (after a reload).
    pub fn retain_targets(&self, keep: &dyn Fn(&str, &str) -> bool) {
        let mut tags = self.target_tags.lock().unwrap_or_else(|e| e.into_inner());
        tags.retain(|(app, env), tag| {
            let kept = keep(app, env);
            if !kept {
                let _ = self.target_info.remove_label_values(&[app, env, tag]);
                let _ = self.pending_promotions.remove_label_values(&[app, env]);
                let _ = self.deployed_image_missing.remove_label_values(&[app, env]);
                let _ = self.replication_wait.remove_label_values(&[app, env]);
                let _ = self.target_held.remove_label_values(&[app, env]);
            }
            kept
        });
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }
}

/// Times `f` into `histogram` with `label`.
pub fn time<T>(histogram: &HistogramVec, label: &str, f: impl FnOnce() -> T) -> T {
    let started = std::time::Instant::now();
    let out = f();
    histogram
        .with_label_values(&[label])
        .observe(started.elapsed().as_secs_f64());
    out
}

/// Seconds since the Unix epoch, for timestamp gauges.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_has_exactly_one_info_series() {
        let m = get();
        m.set_target_tag("unit-app", "dev", "1.0.0");
        m.set_target_tag("unit-app", "dev", "1.1.0");
        let text = m.render();
        assert!(
            text.contains(r#"tagwatch_target_info{app="unit-app",env="dev",tag="1.1.0"} 1"#),
            "{text}"
        );
        assert!(!text.contains(r#"tag="1.0.0""#), "{text}");
        assert!(text.contains("tagwatch_build_info{version="));
    }
}
