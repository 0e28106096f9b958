//! The HTTP endpoints on `listen`: `/metrics`, `/healthz`, `/readyz`,
//! `/status` (JSON) and `/` (the same, as a page a person reads).
//!
//! The server is small on purpose and defends itself: a connection must
//! send its request headers within [`HEADER_TIMEOUT`], may live at most
//! [`CONNECTION_TIMEOUT`], and at most [`MAX_CONNECTIONS`] are served at
//! once (more wait in the kernel's backlog). A slow or hostile client
//! cannot hold the process, and nothing here can block a cycle.
//!
//! What the pages show is the [`Board`]: every target's last known state,
//! written by the daemon after each cycle. It is a view of the last
//! cycle's report, not state tagwatch depends on.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use serde::Serialize;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::cycle::{CycleReport, Outcome};
use crate::metrics;
use crate::trailers::format_time;

pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
pub const MAX_CONNECTIONS: usize = 64;

/// One app/env as the last cycles left it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Row {
    pub app: String,
    pub env: String,
    /// What the branch holds: the tag (or digest, for the digest
    /// strategy), whatever the file's format wraps it in.
    pub current: Option<String>,
    /// The scalar as the file holds it (`reg/web:1.4.3`).
    pub value: Option<String>,
    /// What the policy wants it to hold, when that differs or is pending.
    pub candidate: Option<String>,
    /// Why the candidate is not on the branch yet.
    pub waiting: Option<String>,
    pub last_error: Option<String>,
    pub pull_request: Option<String>,
    /// When this row last changed (RFC 3339).
    pub updated: String,
}

/// The daemon's state, as far as the endpoints show it.
#[derive(Default)]
pub struct Board {
    inner: RwLock<BoardState>,
}

#[derive(Default)]
struct BoardState {
    rows: BTreeMap<(String, String), Row>,
    /// When the last cycle finished.
    last_cycle: Option<OffsetDateTime>,
    interval: Duration,
}

#[derive(Serialize)]
struct StatusJson<'a> {
    ready: bool,
    last_cycle: Option<String>,
    interval_seconds: u64,
    targets: Vec<&'a Row>,
}

impl Board {
    pub fn new(interval: Duration, targets: impl Iterator<Item = (String, String)>) -> Board {
        let board = Board::default();
        board.configure(interval, targets);
        board
    }

    /// Sets the targets shown (after a reload): new ones appear empty,
    /// removed ones disappear, the others keep their state.
    pub fn configure(&self, interval: Duration, targets: impl Iterator<Item = (String, String)>) {
        let mut s = self.inner.write().unwrap_or_else(|e| e.into_inner());
        s.interval = interval;
        let mut rows = BTreeMap::new();
        for (app, env) in targets {
            let row = s.rows.remove(&(app.clone(), env.clone())).unwrap_or(Row {
                app: app.clone(),
                env: env.clone(),
                ..Row::default()
            });
            rows.insert((app, env), row);
        }
        s.rows = rows;
    }

    /// Folds a finished cycle in.
    pub fn record(&self, report: &CycleReport) {
        let now = OffsetDateTime::now_utc();
        let mut s = self.inner.write().unwrap_or_else(|e| e.into_inner());
        s.last_cycle = Some(now);
        for t in &report.targets {
            let Some(row) = s.rows.get_mut(&(t.app.clone(), t.env.clone())) else {
                continue;
            };
            if t.current.is_some() {
                row.current = t.current.clone();
                row.value = t.value.clone();
            }
            let (candidate, waiting, error, pr) = match &t.outcome {
                // A failure says nothing new about the candidate: keep the
                // last cycle's, and say what failed.
                Outcome::Failed { stage, error } => (
                    row.candidate.clone(),
                    row.waiting.clone(),
                    Some(format!("{}: {error}", stage.as_str())),
                    row.pull_request.clone(),
                ),
                other => (
                    other.candidate().map(str::to_string),
                    other.reason(),
                    None,
                    other.pull_request().map(str::to_string),
                ),
            };
            row.candidate = candidate;
            row.waiting = waiting;
            row.last_error = error;
            row.pull_request = pr;
            row.updated = format_time(now);
        }
    }

    /// Ready once a cycle has finished within three intervals.
    fn ready(&self) -> Result<(), String> {
        let s = self.inner.read().unwrap_or_else(|e| e.into_inner());
        match s.last_cycle {
            None => Err("no cycle has finished yet".into()),
            Some(at) => {
                let age = OffsetDateTime::now_utc() - at;
                if age.unsigned_abs() <= s.interval * 3 {
                    Ok(())
                } else {
                    Err(format!(
                        "the last cycle finished {}s ago, more than 3 intervals",
                        age.whole_seconds()
                    ))
                }
            }
        }
    }

    fn json(&self) -> String {
        let ready = self.ready().is_ok();
        let s = self.inner.read().unwrap_or_else(|e| e.into_inner());
        serde_json::to_string_pretty(&StatusJson {
            ready,
            last_cycle: s.last_cycle.map(format_time),
            interval_seconds: s.interval.as_secs(),
            targets: s.rows.values().collect(),
        })
        .unwrap_or_default()
    }

    fn html(&self) -> String {
        let ready = self.ready();
        let s = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let mut page = String::from(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>tagwatch</title>\
             <style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}\
             td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#f4f4f4}\
             .err{color:#b00}.wait{color:#a60}code{font-size:13px}</style></head><body>",
        );
        page.push_str(&format!(
            "<h1>tagwatch</h1><p>{} · last cycle: {} · <a href=\"/status\">JSON</a> · <a href=\"/metrics\">metrics</a></p>",
            match &ready {
                Ok(()) => "ready".to_string(),
                Err(why) => format!("not ready: {}", escape(why)),
            },
            s.last_cycle.map(format_time).unwrap_or_else(|| "none yet".into()),
        ));
        page.push_str("<table><tr><th>app</th><th>env</th><th>current</th><th>candidate</th><th>waiting on</th><th>pull request</th><th>last error</th><th>updated</th></tr>");
        let cell = |v: &Option<String>| v.as_deref().map(escape).unwrap_or_default();
        for r in s.rows.values() {
            let pr = r
                .pull_request
                .as_deref()
                .map(|u| format!("<a href=\"{0}\">{0}</a>", escape(u)))
                .unwrap_or_default();
            page.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td class=\"wait\">{}</td><td>{pr}</td><td class=\"err\">{}</td><td>{}</td></tr>",
                escape(&r.app),
                escape(&r.env),
                cell(&r.current),
                cell(&r.candidate),
                cell(&r.waiting),
                cell(&r.last_error),
                escape(&r.updated),
            ));
        }
        page.push_str("</table></body></html>\n");
        page
    }
}

/// HTML-escapes text from the config, the registry or a peer.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn router(board: Arc<Board>) -> Router {
    let (b1, b2, b3) = (Arc::clone(&board), Arc::clone(&board), board);
    Router::new()
        .route(
            "/metrics",
            get(|| async {
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    metrics::get().render(),
                )
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || async move {
                match b1.ready() {
                    Ok(()) => (StatusCode::OK, "ready\n".to_string()).into_response(),
                    Err(why) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("not ready: {why}\n"),
                    )
                        .into_response(),
                }
            }),
        )
        .route(
            "/status",
            get(move || async move {
                ([(header::CONTENT_TYPE, "application/json")], b2.json()).into_response()
            }),
        )
        .route(
            "/",
            get(move || async move { Html(b3.html()).into_response() }),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
}

/// Binds `addr`; an error here (port taken) is a start-up failure.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves until `shutdown`.
pub async fn serve(listener: TcpListener, board: Arc<Board>, shutdown: CancellationToken) {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "serving /metrics, /healthz, /readyz, /status");
    }
    let app = router(board);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => return,
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            match tokio::time::timeout(CONNECTION_TIMEOUT, connection).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => debug!(%peer, error = %e, "connection ended"),
                Err(_) => debug!(%peer, "connection timed out"),
            }
        });
    }
}

/// A response for tests of the router without a socket.
#[cfg(test)]
async fn call(board: Arc<Board>, method: &str, path: &str) -> axum::response::Response {
    use tower::ServiceExt as _;
    let request = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .body(axum::body::Body::empty())
        .unwrap();
    router(board).oneshot(request).await.unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_peers_is_escaped() {
        assert_eq!(escape("<a href='x'>&"), "&lt;a href=&#39;x&#39;&gt;&amp;");
    }

    #[tokio::test]
    async fn bad_requests_get_404_or_405() {
        let board = Arc::new(Board::new(Duration::from_secs(60), std::iter::empty()));
        assert_eq!(call(Arc::clone(&board), "GET", "/nope").await.status(), 404);
        assert_eq!(
            call(Arc::clone(&board), "POST", "/metrics").await.status(),
            405
        );
        assert_eq!(
            call(Arc::clone(&board), "GET", "/readyz").await.status(),
            503
        );
        board.record(&CycleReport::default());
        assert_eq!(call(board, "GET", "/readyz").await.status(), 200);
    }
}
