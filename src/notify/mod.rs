//! Notifications: each cycle's promotions, proposals, merges and failures
//! announced to Slack or to a webhook (`[[notify]]`).
//!
//! The daemon (and `once`) hands the cycle's report to [`Notifier::cycle`]
//! after the cycle; that turns it into events ([`event`]) and puts them on
//! a bounded queue without waiting. One background task drains the queue,
//! delivering to every sink side by side, each POST with a timeout and
//! retried with backoff on a 5xx, a 429 (after its `retry-after`) or no
//! answer. A cycle never waits on a receiver: when the queue is full (a
//! receiver down for many cycles) the cycle's events are dropped and
//! counted in `tagwatch_notifications_total{outcome="dropped"}`.
//!
//! URLs and the webhook secret are secrets: read from their files on each
//! delivery, never logged (a sink is named `slack notify[0]`).
//!
//! Layout: `event` (report → events, pure), `slack` and `webhook` (the
//! payloads, pure), this file (the queue and delivery).

pub mod event;
pub mod slack;
pub mod webhook;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::config::{Config, NotifyKind, NotifySettings};
use crate::cycle::{CycleReport, Mode};
use event::{Event, Links, Memory};

/// Cycles' worth of events waiting for delivery. A receiver that is down
/// fills this in a few cycles; then cycles' events are dropped (counted),
/// never queued without bound.
pub const QUEUE_CYCLES: usize = 16;
/// One POST's limit, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts per POST, the first included.
pub const ATTEMPTS: u32 = 4;
/// The first retry's wait; doubled each time.
pub const BACKOFF: Duration = Duration::from_millis(500);
/// The longest `retry-after` obeyed; a longer one is capped to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// How long `once` waits for its notifications before exiting.
pub const ONCE_GRACE: Duration = Duration::from_secs(10);
/// How long the daemon waits for queued notifications after a shutdown
/// signal: a slice of Kubernetes' 30-second termination grace.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// One cycle's events, on the queue.
struct Batch {
    events: Vec<Event>,
    sinks: Arc<Vec<NotifySettings>>,
}

/// One sink's deliveries since the process started, for `/status` and
/// `once`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SinkStatus {
    /// `slack notify[0]`: the kind and the block's place, never the URL.
    pub sink: String,
    pub sent: u64,
    pub failed: u64,
    pub dropped: u64,
    /// Why the last POST that was given up failed (`answered 400`).
    pub last_error: Option<String>,
    /// When a POST last succeeded (RFC 3339).
    pub last_sent: Option<String>,
}

/// Every sink's [`SinkStatus`], shared with the delivery task.
pub type Stats = Arc<Mutex<std::collections::BTreeMap<String, SinkStatus>>>;

/// The queue's sending end and what the events are built with.
pub struct Notifier {
    stats: Stats,
    tx: Mutex<Option<mpsc::Sender<Batch>>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    memory: Mutex<Memory>,
    /// Replaced on reload.
    state: Mutex<(Arc<Vec<NotifySettings>>, Links)>,
}

impl Notifier {
    /// Starts the delivery task (on the current runtime).
    pub fn start(config: &Config) -> Notifier {
        Notifier::with(config.notify.clone(), Links::from_config(config))
    }

    /// [`Notifier::start`] with the sinks and links given.
    pub fn with(sinks: Vec<NotifySettings>, links: Links) -> Notifier {
        let (tx, rx) = mpsc::channel(QUEUE_CYCLES);
        let stats = Stats::default();
        let task = tokio::spawn(drain(rx, Arc::clone(&stats)));
        Notifier {
            stats,
            tx: Mutex::new(Some(tx)),
            task: Mutex::new(Some(task)),
            memory: Mutex::default(),
            state: Mutex::new((Arc::new(sinks), links)),
        }
    }

    /// Every sink's deliveries so far, in sink order.
    pub fn status(&self) -> Vec<SinkStatus> {
        lock(&self.stats).values().cloned().collect()
    }

    /// The live statistics, for a page that renders them later.
    pub fn stats(&self) -> Stats {
        Arc::clone(&self.stats)
    }

    /// Takes a reloaded configuration's sinks and links.
    pub fn reconfigure(&self, config: &Config) {
        *lock(&self.state) = (Arc::new(config.notify.clone()), Links::from_config(config));
    }

    /// Queues `report`'s events; never waits.
    pub fn cycle(&self, report: &CycleReport, now: OffsetDateTime) {
        let (sinks, links) = lock(&self.state).clone();
        if sinks.is_empty() {
            return;
        }
        let events = event::events(report, Mode::Apply, &mut lock(&self.memory), &links, now);
        if !sinks
            .iter()
            .any(|s| events.iter().any(|e| s.wants(e.event, &e.app, &e.env)))
        {
            return;
        }
        let Some(tx) = lock(&self.tx).clone() else {
            return;
        };
        if let Err(e) = tx.try_send(Batch {
            events,
            sinks: Arc::clone(&sinks),
        }) {
            let batch = match e {
                mpsc::error::TrySendError::Full(b) | mpsc::error::TrySendError::Closed(b) => b,
            };
            for (i, sink) in batch.sinks.iter().enumerate() {
                if batch
                    .events
                    .iter()
                    .any(|e| sink.wants(e.event, &e.app, &e.env))
                {
                    record(&self.stats, sink, i, "dropped", None);
                    warn!(sink = %name(sink, i), "notification queue full (receiver down?); dropped this cycle's events");
                }
            }
        }
    }

    /// Closes the queue and waits up to `grace` for it to drain (`once`,
    /// and the daemon at shutdown). What is left is dropped.
    pub async fn finish(&self, grace: Duration) {
        lock(&self.tx).take();
        let task = lock(&self.task).take();
        if let Some(task) = task
            && tokio::time::timeout(grace, task).await.is_err()
        {
            warn!(
                grace_secs = grace.as_secs(),
                "notifications still undelivered at exit; dropped"
            );
        }
    }
}

/// What one sink would get from `report`, for `once --dry-run`: one line
/// per sink with events.
pub fn preview(config: &Config, report: &CycleReport, now: OffsetDateTime) -> Vec<String> {
    let links = Links::from_config(config);
    let events = event::events(report, Mode::DryRun, &mut Memory::default(), &links, now);
    let mut lines = Vec::new();
    for (i, sink) in config.notify.iter().enumerate() {
        let mine: Vec<&Event> = events
            .iter()
            .filter(|e| sink.wants(e.event, &e.app, &e.env))
            .collect();
        if mine.is_empty() {
            continue;
        }
        let how = match sink.kind {
            NotifyKind::Slack if mine.len() > slack::SUMMARY_OVER => {
                "1 summary message".to_string()
            }
            NotifyKind::Slack if mine.len() == 1 => "1 message".to_string(),
            NotifyKind::Slack => format!("{} messages", mine.len()),
            NotifyKind::Webhook => "1 POST".to_string(),
        };
        let list: Vec<String> = mine
            .iter()
            .map(|e| format!("{} {}/{}", e.event.as_str(), e.app, e.env))
            .collect();
        lines.push(format!(
            "would notify {}: {how} ({})",
            name(sink, i),
            list.join(", ")
        ));
    }
    lines
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn name(sink: &NotifySettings, i: usize) -> String {
    format!("{} notify[{i}]", sink.kind.as_str())
}

/// Counts one delivery outcome in the metric and the sink's status.
fn record(stats: &Stats, sink: &NotifySettings, i: usize, outcome: &str, error: Option<&str>) {
    crate::metrics::get()
        .notifications
        .with_label_values(&[sink.kind.as_str(), outcome])
        .inc();
    let key = name(sink, i);
    let mut stats = lock(stats);
    let s = stats.entry(key.clone()).or_insert_with(|| SinkStatus {
        sink: key,
        ..SinkStatus::default()
    });
    match outcome {
        "sent" => {
            s.sent += 1;
            s.last_sent = OffsetDateTime::now_utc()
                .replace_nanosecond(0)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                });
        }
        "failed" => {
            s.failed += 1;
            s.last_error = error.map(str::to_string);
        }
        "dropped" => s.dropped += 1,
        _ => {}
    }
}

/// The background task: each batch to every sink, side by side.
async fn drain(mut rx: mpsc::Receiver<Batch>, stats: Stats) {
    let client = match reqwest::Client::builder()
        .user_agent(concat!("tagwatch/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(REQUEST_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        // A redirect would send the body (and the signature) elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "cannot build the notification client; notifications are off");
            return;
        }
    };
    while let Some(batch) = rx.recv().await {
        let mut all = tokio::task::JoinSet::new();
        for (i, sink) in batch.sinks.iter().enumerate() {
            let mine: Vec<Event> = batch
                .events
                .iter()
                .filter(|e| sink.wants(e.event, &e.app, &e.env))
                .cloned()
                .collect();
            if mine.is_empty() {
                continue;
            }
            let (client, sink, stats) = (client.clone(), sink.clone(), Arc::clone(&stats));
            all.spawn(async move { deliver(&client, &stats, &sink, i, &mine).await });
        }
        while all.join_next().await.is_some() {}
    }
}

/// Why a sink could not be reached; names the sink, never its URL.
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("cannot read {what} {}: {source}", path.display())]
    File {
        what: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot sign: {0}")]
    Sign(#[from] openssl::error::ErrorStack),
}

/// A POST's body and its signature header, if signed.
type Post = (Vec<u8>, Option<String>);

async fn deliver(
    client: &reqwest::Client,
    stats: &Stats,
    sink: &NotifySettings,
    i: usize,
    events: &[Event],
) {
    let refs: Vec<&Event> = events.iter().collect();
    let read = |what: &'static str, path: &std::path::Path| {
        std::fs::read_to_string(path)
            .map(|s| s.trim().to_string())
            .map_err(|source| SendError::File {
                what,
                path: path.to_path_buf(),
                source,
            })
    };
    let prepared = (|| -> Result<(String, Vec<Post>), SendError> {
        let url = read("url_file", &sink.url_file)?;
        let posts = match sink.kind {
            NotifyKind::Slack => slack::messages(&refs)
                .into_iter()
                .map(|m| (m.to_string().into_bytes(), None))
                .collect(),
            NotifyKind::Webhook => {
                let body = webhook::body(&refs);
                let signature = match &sink.secret_file {
                    Some(f) => Some(webhook::signature(
                        read("secret_file", f)?.as_bytes(),
                        &body,
                    )?),
                    None => None,
                };
                vec![(body, signature)]
            }
        };
        Ok((url, posts))
    })();
    let (url, posts) = match prepared {
        Ok(p) => p,
        Err(e) => {
            record(stats, sink, i, "failed", Some(&e.to_string()));
            warn!(sink = %name(sink, i), error = %e, "notification not sent");
            return;
        }
    };
    for (body, signature) in posts {
        post(client, stats, sink, i, &url, body, signature).await;
    }
}

/// One POST, retried as the module header says.
async fn post(
    client: &reqwest::Client,
    stats: &Stats,
    sink: &NotifySettings,
    i: usize,
    url: &str,
    body: Vec<u8>,
    signature: Option<String>,
) {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut request = client
            .post(url)
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(s) = &signature {
            request = request.header(webhook::SIGNATURE_HEADER, s);
        }
        let (retry, wait, why) = match request.send().await {
            Ok(r) if r.status().is_success() => {
                record(stats, sink, i, "sent", None);
                info!(sink = %name(sink, i), "notification sent");
                return;
            }
            Ok(r) => {
                let status = r.status();
                let after = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
                let retry = status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
                (retry, after, format!("answered {}", status.as_u16()))
            }
            // Without the URL: it is the secret.
            Err(e) => (true, None, e.without_url().to_string()),
        };
        if !retry || attempt >= ATTEMPTS {
            record(stats, sink, i, "failed", Some(&why));
            warn!(sink = %name(sink, i), attempt, error = %why, "notification not delivered");
            return;
        }
        record(stats, sink, i, "retried", None);
        let wait = wait.unwrap_or(BACKOFF * 2u32.pow(attempt - 1));
        warn!(sink = %name(sink, i), attempt, error = %why, wait_ms = wait.as_millis() as u64, "notification failed; retrying");
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EventKind;
    use crate::cycle::{Outcome, TargetReport};

    fn promoted(n: usize) -> CycleReport {
        CycleReport {
            targets: vec![TargetReport {
                app: "web".into(),
                env: "dev".into(),
                outcome: Outcome::Promoted {
                    from: format!("1.{n}.0"),
                    to: format!("1.{}.0", n + 1),
                    commit: format!("{n:040}"),
                    pushed_at: None,
                    rollback: None,
                },
                current: None,
                value: None,
                gates: Vec::new(),
                ecr: Default::default(),
                denials: Vec::new(),
                hold: None,
            }],
            ..CycleReport::default()
        }
    }

    /// A receiver that reads and never answers.
    fn hanging() -> (std::net::TcpListener, String) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        (l, url)
    }

    #[tokio::test]
    async fn a_receiver_that_stays_down_fills_the_queue_and_the_rest_is_dropped_and_counted() {
        let (_listener, url) = hanging();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("url"), url).unwrap();
        let sink = NotifySettings {
            kind: NotifyKind::Webhook,
            url_file: dir.path().join("url"),
            secret_file: None,
            events: EventKind::DEFAULT.into_iter().collect(),
            apps: Vec::new(),
            envs: Vec::new(),
        };
        let dropped = || {
            crate::metrics::get()
                .notifications
                .with_label_values(&["webhook", "dropped"])
                .get()
        };
        let before = dropped();
        let notifier = Notifier::with(vec![sink], Links::default());
        let started = std::time::Instant::now();
        for n in 0..QUEUE_CYCLES + 5 {
            notifier.cycle(&promoted(n), OffsetDateTime::UNIX_EPOCH);
        }
        // Queuing never waited on the receiver.
        assert!(started.elapsed() < Duration::from_secs(1));
        let lost = dropped() - before;
        assert!((4..=5).contains(&lost), "{lost} dropped");
        notifier.finish(Duration::from_millis(100)).await;
    }
}
