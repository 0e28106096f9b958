//! ECR push events from SQS: react to a push in seconds, with the periodic
//! poll as the backstop (EventBridge delivery is at least once, unordered,
//! and best effort).
//!
//! The queue is long-polled. A PUSH of a watched repository, or a finished
//! scan of one of its images (which also drops that image's kept scan
//! result, see `registry::scan_cache`), wakes a cycle
//! over just the apps that use it, after a short debounce so that a burst
//! of pushes (a monorepo build) gives one cycle. A message is deleted only
//! after the cycle it caused has finished, so a crash mid-cycle leaves it
//! for redelivery.
//!
//! Messages are untrusted input. One that is not JSON, or not an ECR event,
//! is logged once by message id, counted, and **left in the queue**: the
//! queue's redrive policy moves it to the dead-letter queue after its
//! receive count, so nothing is lost and nothing loops hot (the message is
//! invisible for the visibility timeout between receives). Both raw
//! EventBridge bodies and SNS-wrapped ones are accepted.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use tokio::sync::{mpsc, oneshot};

use crate::config::EventSettings;
use crate::daemon::Wake;
use crate::metrics;

/// The longest long poll SQS allows.
const WAIT_SECONDS: i32 = 20;
// A long poll is one attempt of the SDK: it must end, answered, well within
// the attempt timeout the SQS client shares with ECR, or every empty poll
// would be cut off as a stall.
const _: () = assert!(
    (WAIT_SECONDS as u64) + 5 <= crate::registry::ecr::ATTEMPT_TIMEOUT.as_secs(),
    "the SQS long poll must fit inside the attempt timeout"
);
/// A burst of pushes ends when the queue has been quiet this long.
const QUIET: Duration = Duration::from_millis(500);
/// How many invalid message ids are remembered, to log each once.
const REMEMBERED: usize = 10_000;

/// What a message says.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// A successful push to `repository`.
    Push {
        repository: String,
        tag: Option<String>,
    },
    /// A finished image scan ("ECR Image Scan"): the scan gate's verdict on
    /// `digest` may have changed, so its kept result is dropped and the
    /// repository's apps decide again (push → scan → promotion, each step
    /// event-driven).
    Scan { repository: String, digest: String },
    /// A valid ECR event that needs nothing (a delete, a failed push).
    Other,
}

/// Reads an SQS message body: an EventBridge event, raw or inside an SNS
/// notification. `Err` says why it is not one.
pub fn parse(body: &str) -> Result<Event, String> {
    let value: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    // SNS → SQS wraps the event as a string in `Message`.
    let value = match (
        value.get("Type").and_then(Value::as_str),
        value.get("Message"),
    ) {
        (Some("Notification"), Some(Value::String(inner))) => serde_json::from_str(inner)
            .map_err(|e| format!("an SNS notification whose Message is not JSON: {e}"))?,
        _ => value,
    };
    // Amazon Inspector (ECR enhanced scanning) reports a finished scan as
    // its own event, naming the repository by ARN.
    if value.get("source").and_then(Value::as_str) == Some("aws.inspector2")
        && value.get("detail-type").and_then(Value::as_str) == Some("Inspector2 Scan")
    {
        return inspector_scan(&value);
    }
    if value.get("source").and_then(Value::as_str) != Some("aws.ecr") {
        return Err("not an ECR event (source is not \"aws.ecr\")".into());
    }
    // Other ECR events (replication, …) are valid and need nothing; an
    // event without a detail-type is not in EventBridge's schema at all.
    let scan = match value.get("detail-type").and_then(Value::as_str) {
        Some("ECR Image Action") => false,
        Some("ECR Image Scan") => true,
        // An image arrived in a DR region: a target waiting on it can go.
        Some("ECR Replication Action") => return replication(&value),
        Some(_) => return Ok(Event::Other),
        None => return Err("an ECR event without a detail-type string".into()),
    };
    let detail = value
        .get("detail")
        .and_then(Value::as_object)
        .ok_or("an ECR event without a detail object")?;
    let text = |key: &str| {
        detail
            .get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("an ECR event without {key}"))
    };
    let repository = text("repository-name")?;
    if scan {
        // ECR always names the scanned digest; a scan event without one
        // says nothing tagwatch can act on, and is not worth a cycle.
        return Ok(match text("image-digest") {
            Ok(digest) => Event::Scan {
                repository: repository.to_string(),
                digest: digest.to_string(),
            },
            Err(_) => Event::Other,
        });
    }
    // A push in another shape would otherwise be deleted as "needs
    // nothing", and every push silently dropped; refusing it sends it to
    // the dead-letter queue, where someone notices.
    if text("action-type")? != "PUSH" || text("result")? != "SUCCESS" {
        return Ok(Event::Other);
    }
    Ok(Event::Push {
        repository: repository.to_string(),
        tag: text("image-tag").ok().map(str::to_string),
    })
}

/// An "ECR Replication Action" event: a successful replication wakes the
/// apps of the replica repository (which a DR target may name apart from
/// its app's), as a push does.
fn replication(value: &Value) -> Result<Event, String> {
    let detail = value
        .get("detail")
        .and_then(Value::as_object)
        .ok_or("an ECR event without a detail object")?;
    let text = |key: &str| detail.get(key).and_then(Value::as_str);
    let repository = text("repository-name").ok_or("an ECR event without repository-name")?;
    if text("result") != Some("SUCCESS") {
        return Ok(Event::Other);
    }
    Ok(Event::Push {
        repository: repository.to_string(),
        tag: text("image-tag").map(str::to_string),
    })
}

/// An "Inspector2 Scan" event: `repository-name` is the repository's ARN
/// (`arn:aws:ecr:REGION:ACCOUNT:repository/NAME`).
fn inspector_scan(value: &Value) -> Result<Event, String> {
    let detail = value
        .get("detail")
        .and_then(Value::as_object)
        .ok_or("an Inspector scan event without a detail object")?;
    let text = |key: &str| {
        detail
            .get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("an Inspector scan event without {key}"))
    };
    let arn = text("repository-name")?;
    let repository = arn.split_once(":repository/").map_or(arn, |(_, name)| name);
    Ok(Event::Scan {
        repository: repository.to_string(),
        digest: text("image-digest")?.to_string(),
    })
}

/// The queue, read with the pod's own credentials (the queue lives in the
/// account tagwatch runs in, not the registry's).
pub struct Queue {
    client: aws_sdk_sqs::Client,
    url: String,
    debounce: Duration,
}

impl Queue {
    pub async fn connect(settings: &EventSettings, region: Option<&str>) -> Queue {
        // The ECR client's timeouts: a stalled long poll ends at the
        // attempt timeout instead of holding event handling for ever.
        let mut loader = crate::registry::ecr::sdk_loader();
        if let Some(region) = region {
            loader = loader.region(aws_config::Region::new(region.to_string()));
        }
        let sdk = loader.load().await;
        Queue {
            client: aws_sdk_sqs::Client::new(&sdk),
            url: settings.sqs_queue_url.clone(),
            debounce: settings.debounce,
        }
    }

    async fn receive(&self, wait: i32) -> Result<Vec<aws_sdk_sqs::types::Message>, String> {
        self.client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(10)
            .wait_time_seconds(wait)
            // One attempt: the loop in `run` is the retry (after 5 s, and
            // watching for shutdown), so a stalled poll costs one attempt
            // timeout, not the SDK's three.
            .customize()
            .config_override(
                aws_sdk_sqs::config::Builder::default()
                    .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1)),
            )
            .send()
            .await
            .map(|out| out.messages.unwrap_or_default())
            .map_err(|e| crate::telemetry::error_chain(&e))
    }

    async fn delete(&self, handles: &[String]) {
        for handle in handles {
            let deleted = self
                .client
                .delete_message()
                .queue_url(&self.url)
                .receipt_handle(handle)
                .send()
                .await;
            if let Err(e) = deleted {
                // Redelivered later; the cycle it causes finds nothing new.
                warn!(error = %crate::telemetry::error_chain(&e), "could not delete an event message");
            }
        }
    }
}

/// Reads the queue until `shutdown`, asking the daemon for a cycle over the
/// apps of each burst of pushes and deleting the messages once it is done.
/// Pushes of repositories no app watches wake nothing (the daemon filters).
pub async fn run(queue: Queue, wake: mpsc::Sender<Wake>, shutdown: CancellationToken) {
    info!(queue = %queue.url, "listening for ECR push events");
    let mut invalid_seen: HashSet<String> = HashSet::new();
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = queue.receive(WAIT_SECONDS) => r,
        };
        let mut messages = match first {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "cannot receive from the event queue; retrying in 5 s");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        // Debounce: gather the rest of a burst. The burst is over once the
        // queue has been quiet for QUIET, or after `debounce` at most, so a
        // lone push waits half a second and a monorepo build's dozens of
        // pushes still make one cycle.
        let started = Instant::now();
        let until = started + queue.debounce;
        let mut last = started;
        while Instant::now() < until && last.elapsed() < QUIET.min(queue.debounce) {
            let more = tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(QUIET / 4) => queue.receive(0).await,
            };
            match more {
                Ok(more) if !more.is_empty() => {
                    messages.extend(more);
                    last = Instant::now();
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let mut repositories = BTreeSet::new();
        let mut done = Vec::new();
        for message in messages {
            let id = message.message_id.clone().unwrap_or_default();
            let handle = message.receipt_handle.clone().unwrap_or_default();
            match parse(message.body.as_deref().unwrap_or_default()) {
                Ok(Event::Push { repository, tag }) => {
                    metrics::get()
                        .events
                        .with_label_values(&["sqs", "accepted"])
                        .inc();
                    debug!(%id, %repository, ?tag, "push event");
                    repositories.insert(repository);
                    done.push(handle);
                }
                Ok(Event::Scan { repository, digest }) => {
                    metrics::get()
                        .events
                        .with_label_values(&["sqs", "accepted"])
                        .inc();
                    debug!(%id, %repository, %digest, "scan event");
                    crate::registry::scan_cache::forget(&repository, &digest);
                    repositories.insert(repository);
                    done.push(handle);
                }
                Ok(Event::Other) => {
                    metrics::get()
                        .events
                        .with_label_values(&["sqs", "ignored"])
                        .inc();
                    done.push(handle);
                }
                Err(why) => {
                    metrics::get()
                        .events
                        .with_label_values(&["sqs", "invalid"])
                        .inc();
                    // Left undeleted for the dead-letter queue; logged once.
                    if invalid_seen.len() >= REMEMBERED {
                        invalid_seen.clear();
                    }
                    if invalid_seen.insert(id.clone()) {
                        warn!(message_id = %id, %why, "invalid event message; leaving it for the dead-letter queue");
                    }
                }
            }
        }
        if !repositories.is_empty() {
            let (finished, cycle_done) = oneshot::channel();
            let asked = wake
                .send(Wake {
                    repositories,
                    done: finished,
                })
                .await;
            // The daemon stopped: keep the messages for the next start.
            if asked.is_err() || cycle_done.await.is_err() {
                return;
            }
        }
        queue.delete(&done).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: &str = r#"{"version":"0","id":"1","detail-type":"ECR Image Action","source":"aws.ecr","account":"123456789012","time":"2026-11-21T10:00:00Z","region":"eu-west-1","resources":[],"detail":{"result":"SUCCESS","repository-name":"payments-api","image-digest":"sha256:ab","action-type":"PUSH","image-tag":"1.4.3"}}"#;

    #[test]
    fn a_replication_wakes_the_replica_repository() {
        let replicated = r#"{"version":"0","id":"4","detail-type":"ECR Replication Action","source":"aws.ecr","account":"123456789012","time":"2026-11-21T10:03:00Z","region":"us-west-2","resources":["arn:aws:ecr:us-west-2:123456789012:repository/payments-api"],"detail":{"result":"SUCCESS","repository-name":"payments-api","image-digest":"sha256:ab","source-account":"123456789012","action-type":"REPLICATE","source-region":"us-east-1","image-tag":"1.4.3"}}"#;
        assert_eq!(
            parse(replicated),
            Ok(Event::Push {
                repository: "payments-api".into(),
                tag: Some("1.4.3".into())
            })
        );
        let failed = replicated.replace("\"SUCCESS\"", "\"FAILURE\"");
        assert_eq!(parse(&failed), Ok(Event::Other));
    }

    #[test]
    fn raw_and_sns_wrapped_pushes_are_read() {
        let push = Event::Push {
            repository: "payments-api".into(),
            tag: Some("1.4.3".into()),
        };
        assert_eq!(parse(RAW), Ok(push));
        let sns = serde_json::json!({"Type": "Notification", "MessageId": "m", "Message": RAW})
            .to_string();
        assert!(matches!(parse(&sns), Ok(Event::Push { .. })));
    }

    #[test]
    fn a_scan_event_names_its_repository_and_digest() {
        let scan = r#"{"version":"0","id":"2","detail-type":"ECR Image Scan","source":"aws.ecr","account":"123456789012","time":"2026-11-21T10:01:00Z","region":"eu-west-1","resources":[],"detail":{"scan-status":"COMPLETE","repository-name":"payments-api","finding-severity-counts":{"CRITICAL":1},"image-digest":"sha256:ab","image-tags":["1.4.3"]}}"#;
        assert_eq!(
            parse(scan),
            Ok(Event::Scan {
                repository: "payments-api".into(),
                digest: "sha256:ab".into(),
            })
        );
        assert_eq!(
            parse(&scan.replace("image-digest", "other")),
            Ok(Event::Other)
        );
        // Amazon Inspector (enhanced scanning) names the repository by ARN.
        let inspector = r#"{"version":"0","id":"3","detail-type":"Inspector2 Scan","source":"aws.inspector2","account":"123456789012","time":"2026-11-21T10:02:00Z","region":"eu-west-1","resources":["arn:aws:ecr:eu-west-1:123456789012:repository/team/payments-api"],"detail":{"scan-status":"INITIAL_SCAN_COMPLETE","repository-name":"arn:aws:ecr:eu-west-1:123456789012:repository/team/payments-api","finding-severity-counts":{"CRITICAL":1,"TOTAL":1},"image-digest":"sha256:cd","image-tags":["1.4.3"]}}"#;
        assert_eq!(
            parse(inspector),
            Ok(Event::Scan {
                repository: "team/payments-api".into(),
                digest: "sha256:cd".into(),
            })
        );
    }

    #[test]
    fn other_events_and_garbage_are_told_apart() {
        assert_eq!(parse(&RAW.replace("PUSH", "DELETE")), Ok(Event::Other));
        assert_eq!(parse(&RAW.replace("SUCCESS", "FAILURE")), Ok(Event::Other));
        assert!(parse("{not json").unwrap_err().starts_with("not JSON"));
        assert!(parse(&RAW.replace("aws.ecr", "aws.s3")).is_err());
        assert!(
            parse(r#"{"source":"aws.ecr","detail-type":"ECR Image Action","detail":{}}"#).is_err()
        );
        assert!(parse(r#"[1,2]"#).is_err());
        assert!(parse(r#"{"Type":"Notification","Message":"{oops"}"#).is_err());
    }
}
