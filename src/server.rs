//! The HTTP endpoints on `listen`: `/metrics`, `/healthz`, `/readyz`,
//! `/status` (JSON) and `/` (the same, as a page a person reads).
//!
//! The server is small on purpose and defends itself, because anyone who
//! can reach the port could otherwise get the pod restarted: a liveness
//! probe that waits behind other clients fails, and the kubelet kills a
//! healthy daemon. So (see [`serve`]):
//!
//! - a connection's first request line is read before it counts against
//!   any limit, and the probes (`/healthz`, `/readyz`) are served from
//!   their own [`PROBE_CONNECTIONS`] slots, one request per connection,
//!   so no number of other clients can starve them;
//! - every other connection takes one of [`MAX_CONNECTIONS`] slots, at
//!   most [`MAX_CONNECTIONS_PER_CLIENT`] per client address, and is
//!   answered 503 at once when none is free (not parked in the backlog);
//! - a connection must send each request's headers within
//!   [`HEADER_TIMEOUT`], which is also how long a kept-alive connection
//!   may sit idle, and lives at most [`CONNECTION_TIMEOUT`];
//! - at most [`MAX_OPEN`] sockets are open in any stage (more wait in the
//!   kernel's backlog), which bounds file descriptors.
//!
//! Nothing here can block a cycle. manifests/networkpolicy.yaml keeps all
//! but the scraper and the kubelet off the port in a cluster.
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

use crate::cycle::{CycleReport, Outcome};
use crate::metrics;
use crate::trailers::format_time;

mod listener;
pub use listener::serve;

/// How long a client may take to send a request's headers, and so how
/// long a kept-alive connection may sit idle: hyper starts this timer
/// whenever it waits for a request head, the first or the next.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest any connection lives, however busy.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once, probes aside.
pub const MAX_CONNECTIONS: usize = 64;
/// Of those, how many one client address may hold: a single scraper or
/// browser needs one or two, and one address cannot take them all.
pub const MAX_CONNECTIONS_PER_CLIENT: usize = 8;
/// Slots kept for `/healthz` and `/readyz` alone. The kubelet opens a
/// connection per probe and there are two probes; the rest is headroom.
pub const PROBE_CONNECTIONS: usize = 8;
/// Of those, how many one address may hold, so that a client sending
/// probe paths slowly cannot take the kubelet's slots either.
pub const PROBE_CONNECTIONS_PER_CLIENT: usize = 4;
/// Sockets open in any stage, including those whose request line is
/// still being read; bounds file descriptors.
pub const MAX_OPEN: usize = 256;
/// A request line longer than this is not a probe's (it is still served,
/// as an ordinary connection).
const REQUEST_LINE_LIMIT: usize = 1024;

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
    /// The image the file points at is not served by ECR (deleted,
    /// expired, archived): why. Kept while the listing cannot be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployed_image_missing: Option<String>,
    /// The hold in force (`held by alice until …: why`).
    pub held: Option<String>,
    /// Tags the target may not take, each with why (`1.4.5 denied: rolled
    /// back by Alice in 1a2b3c4d5e6f`).
    pub denied: Vec<String>,
}

/// One preview environment as the last cycle left it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PreviewRow {
    pub app: String,
    pub pr: u64,
    pub file: String,
    /// The newest image's tag.
    pub tag: Option<String>,
    /// When that image was pushed (RFC 3339).
    pub pushed_at: Option<String>,
    /// `open`, `closed`, `merged`; absent without `[forge]`.
    pub pr_state: Option<String>,
    /// Whether its file is on the branch.
    pub live: bool,
    /// The last cycle's action: created, updated, unchanged, skipped, failed.
    pub action: String,
    /// Why it was skipped or failed (`max_previews (20) reached`, …).
    pub reason: Option<String>,
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
    /// (app, number) → its preview; a removed preview leaves the board.
    previews: BTreeMap<(String, u64), PreviewRow>,
    /// When the last cycle finished.
    last_cycle: Option<OffsetDateTime>,
    interval: Duration,
    /// The extra pause the daemon takes before its next cycle because the
    /// registry throttled (0 when it is not backing off): the readiness
    /// window stretches by as much, so a daemon that backs off on purpose
    /// is not reported as stalled.
    backoff: Duration,
    /// With `[[notify]]`: each sink's deliveries, updated as they happen.
    notify: Option<crate::notify::Stats>,
}

#[derive(Serialize)]
struct StatusJson<'a> {
    ready: bool,
    last_cycle: Option<String>,
    interval_seconds: u64,
    targets: Vec<&'a Row>,
    previews: Vec<&'a PreviewRow>,
    /// Each `[[notify]]` sink's deliveries (empty without any).
    notifications: Vec<crate::notify::SinkStatus>,
    /// With a GitHub App in `[forge]`: its installation token's state.
    github_apps: Vec<crate::ghapp::AppStatus>,
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
            if !matches!(
                t.outcome,
                Outcome::Failed {
                    stage: crate::cycle::Stage::Registry,
                    ..
                }
            ) {
                row.deployed_image_missing = t.ecr.missing.clone();
            }
            if !matches!(t.outcome, Outcome::Failed { .. }) {
                row.held = t.hold.clone();
                row.denied = t.denials.iter().map(|d| d.describe()).collect();
            }
        }
        // Each app's previews are decided whole each cycle: what the
        // report does not name for an app it covers is gone.
        let apps: std::collections::BTreeSet<&str> =
            report.preview_apps.iter().map(String::as_str).collect();
        let named: std::collections::BTreeSet<(String, u64)> = report
            .previews
            .iter()
            .map(|p| (p.app.clone(), p.pr))
            .collect();
        s.previews
            .retain(|k, _| !apps.contains(k.0.as_str()) || named.contains(k));
        for p in &report.previews {
            let key = (p.app.clone(), p.pr);
            if p.action == "removed" || (!p.live && p.action == "skipped" && p.tag.is_none()) {
                s.previews.remove(&key);
                continue;
            }
            s.previews.insert(
                key,
                PreviewRow {
                    app: p.app.clone(),
                    pr: p.pr,
                    file: p.file.clone(),
                    tag: p.tag.clone(),
                    pushed_at: p.pushed_at.map(format_time),
                    pr_state: p.state.map(str::to_string),
                    live: p.live,
                    action: p.action.to_string(),
                    reason: p.reason.clone(),
                    updated: format_time(now),
                },
            );
        }
    }

    /// Shows these notification statistics on `/status` and `/`.
    pub fn set_notifications(&self, stats: crate::notify::Stats) {
        let mut s = self.inner.write().unwrap_or_else(|e| e.into_inner());
        s.notify = Some(stats);
    }

    fn notifications(s: &BoardState) -> Vec<crate::notify::SinkStatus> {
        s.notify
            .as_ref()
            .map(|n| {
                n.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .values()
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Sets the pause the daemon takes before its next cycle beyond the
    /// interval (see [`Board::ready`]).
    pub fn set_backoff(&self, pause: Duration) {
        let mut s = self.inner.write().unwrap_or_else(|e| e.into_inner());
        s.backoff = pause;
    }

    /// Ready means "this pod can do its job": a cycle has finished within
    /// three intervals plus the current throttling backoff. What the cycle
    /// found does not matter. A target that fails every cycle (a missing
    /// repository, a token that cannot push) is for the alerts and
    /// `/status`: it is nearly always outside the pod, so a new pod would
    /// fail it too, and holding readiness back would only block the
    /// rollout that might fix it, while a not-ready daemon gains nothing
    /// (it serves no traffic; the Service publishes it regardless). A
    /// daemon whose cycles stop finishing, or hang, is not ready.
    fn ready(&self) -> Result<(), String> {
        let s = self.inner.read().unwrap_or_else(|e| e.into_inner());
        match s.last_cycle {
            None => Err("no cycle has finished yet".into()),
            Some(at) => {
                let age = OffsetDateTime::now_utc() - at;
                let window = s.interval.saturating_mul(3).saturating_add(s.backoff);
                if age.unsigned_abs() <= window {
                    Ok(())
                } else if s.backoff.is_zero() {
                    Err(format!(
                        "the last cycle finished {}s ago, more than 3 intervals",
                        age.whole_seconds()
                    ))
                } else {
                    Err(format!(
                        "the last cycle finished {}s ago, more than 3 intervals and the {}s \
                         throttling backoff",
                        age.whole_seconds(),
                        s.backoff.as_secs()
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
            previews: s.previews.values().collect(),
            notifications: Board::notifications(&s),
            github_apps: crate::ghapp::statuses(),
        })
        .unwrap_or_default()
    }

    fn html(&self) -> String {
        let ready = self.ready();
        let s = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let mut page = String::from(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>tagwatch</title>\
             <link rel=\"stylesheet\" href=\"/style.css\"></head><body>",
        );
        page.push_str(&format!(
            "<h1>tagwatch</h1><p>{} · last cycle: {} · <a href=\"/status\">JSON</a> · <a href=\"/metrics\">metrics</a></p>",
            match &ready {
                Ok(()) => "ready".to_string(),
                Err(why) => format!("not ready: {}", escape(why)),
            },
            s.last_cycle.map(format_time).unwrap_or_else(|| "none yet".into()),
        ));
        page.push_str("<table><tr><th>app</th><th>env</th><th>current</th><th>candidate</th><th>waiting on</th><th>pull request</th><th>last error</th><th>updated</th><th>held / denied</th></tr>");
        let cell = |v: &Option<String>| v.as_deref().map(escape).unwrap_or_default();
        for r in s.rows.values() {
            let pr = r.pull_request.as_deref().map(pr_link).unwrap_or_default();
            page.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td class=\"wait\">{}</td><td>{pr}</td><td class=\"err\">{}</td><td>{}</td><td class=\"wait\">{}</td></tr>",
                escape(&r.app),
                escape(&r.env),
                cell(&r.current),
                cell(&r.candidate),
                cell(&r.waiting),
                cell(&r.last_error),
                escape(&r.updated),
                r.held
                    .iter()
                    .chain(&r.denied)
                    .map(|s| escape(s))
                    .collect::<Vec<_>>()
                    .join("<br>"),
            ));
        }
        page.push_str("</table>");
        if !s.previews.is_empty() {
            page.push_str("<h2>previews</h2><table><tr><th>app</th><th>pull request</th><th>tag</th><th>file</th><th>live</th><th>PR state</th><th>last action</th><th>why</th><th>updated</th></tr>");
            for p in s.previews.values() {
                page.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td class=\"wait\">{}</td><td>{}</td></tr>",
                    escape(&p.app),
                    p.pr,
                    cell(&p.tag),
                    escape(&p.file),
                    if p.live { "yes" } else { "no" },
                    cell(&p.pr_state),
                    escape(&p.action),
                    cell(&p.reason),
                    escape(&p.updated),
                ));
            }
            page.push_str("</table>");
        }
        let notifications = Board::notifications(&s);
        if !notifications.is_empty() {
            page.push_str("<h2>notifications</h2><table><tr><th>sink</th><th>sent</th><th>failed</th><th>dropped</th><th>last sent</th><th>last error</th></tr>");
            for n in &notifications {
                page.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"err\">{}</td></tr>",
                    escape(&n.sink),
                    n.sent,
                    n.failed,
                    n.dropped,
                    cell(&n.last_sent),
                    cell(&n.last_error),
                ));
            }
            page.push_str("</table>");
        }
        let apps = crate::ghapp::statuses();
        if !apps.is_empty() {
            page.push_str("<h2>GitHub App</h2><table><tr><th>app</th><th>installation</th><th>tokens minted</th><th>token expires</th><th>last error</th></tr>");
            for a in &apps {
                page.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"err\">{}</td></tr>",
                    escape(&a.app_id),
                    a.installation_id,
                    a.mints,
                    cell(&a.token_expires_at),
                    cell(&a.last_error),
                ));
            }
            page.push_str("</table>");
        }
        // An outage in waiting, under the table where it cannot be missed.
        let missing: Vec<&Row> = s
            .rows
            .values()
            .filter(|r| r.deployed_image_missing.is_some())
            .collect();
        if !missing.is_empty() {
            page.push_str("<h2>Deployed images ECR does not serve</h2><ul>");
            for r in missing {
                page.push_str(&format!(
                    "<li class=\"err\">{}/{}: {}</li>",
                    escape(&r.app),
                    escape(&r.env),
                    cell(&r.deployed_image_missing),
                ));
            }
            page.push_str("</ul>");
        }
        page.push_str("</body></html>\n");
        page
    }
}

/// A pull request's address as a link when it is `https:`, else as text:
/// it comes from the forge's answer, and a `javascript:` or `data:` link
/// on a page the team clicks through would run whatever a compromised or
/// fake forge put there.
fn pr_link(url: &str) -> String {
    let https = url
        .get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"));
    if https {
        format!("<a href=\"{0}\">{0}</a>", escape(url))
    } else {
        escape(url)
    }
}

/// The page's style, served as a file so that the page's Content Security
/// Policy can forbid every inline style and script.
const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}\
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#f4f4f4}\
.err{color:#b00}.wait{color:#a60}code{font-size:13px}\n";

/// The page needs no script at all, and only its own stylesheet. It may
/// not be framed (clickjacking), and forms and `<base>` are off.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; base-uri 'none'; \
form-action 'none'; frame-ancestors 'none'";

/// Every response: the browser must believe the content type it is given.
/// A page, JSON and metrics all carry text from peers (tags, errors, PR
/// titles); sniffed as HTML, that text would be markup.
async fn nosniff(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    response
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
            get(move || async move {
                (
                    [(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY)],
                    Html(b3.html()),
                )
                    .into_response()
            }),
        )
        .route(
            "/style.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE) }),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .layer(axum::middleware::map_response(nosniff))
}

/// Binds `addr`; an error here (port taken) is a start-up failure.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
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

    /// Issue 13 item 19: the page gets a Content Security Policy (no
    /// script, no inline style) and every response `nosniff`.
    #[tokio::test]
    async fn every_response_is_nosniff_and_the_page_has_a_strict_csp() {
        let board = Arc::new(Board::new(Duration::from_secs(60), std::iter::empty()));
        for path in [
            "/",
            "/status",
            "/metrics",
            "/healthz",
            "/readyz",
            "/style.css",
            "/nope",
        ] {
            let response = call(Arc::clone(&board), "GET", path).await;
            assert_eq!(
                response.headers()[header::X_CONTENT_TYPE_OPTIONS],
                "nosniff",
                "{path}"
            );
        }
        let page = call(Arc::clone(&board), "GET", "/").await;
        let csp = page.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(
            csp.starts_with("default-src 'none'; style-src 'self';"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        // The page must then hold no inline style or script to break.
        let html = board.html();
        for inline in ["<style", "<script", " style=", " onload=", " onclick="] {
            assert!(!html.contains(inline), "{inline:?} in the page:\n{html}");
        }
        let css = call(board, "GET", "/style.css").await;
        assert_eq!(css.status(), 200);
        assert_eq!(
            css.headers()[header::CONTENT_TYPE],
            "text/css; charset=utf-8"
        );
    }

    /// Issue 17: previews are listed while their file exists; a preview
    /// the cycle no longer names (its file deleted by hand, say) leaves the
    /// board, and a removal leaves it at once.
    #[test]
    fn previews_come_and_go_with_the_cycles_reports() {
        use crate::cycle::preview::Report;
        let board = Board::new(Duration::from_secs(60), std::iter::empty());
        let preview = |pr: u64, action: &'static str, live: bool| Report {
            app: "payments".into(),
            pr,
            file: format!("previews/payments/pr-{pr}.yaml"),
            tag: Some(format!("pr-{pr}-<b>")),
            pushed_at: None,
            state: Some("open"),
            action,
            reason: None,
            commit: None,
            dry_run: false,
            live,
            existed: live,
            diff: String::new(),
        };
        let cycle = |previews: Vec<Report>| CycleReport {
            previews,
            preview_apps: vec!["payments".into()],
            ..CycleReport::default()
        };
        board.record(&cycle(vec![
            preview(1, "created", true),
            preview(2, "skipped", true),
        ]));
        let json: serde_json::Value = serde_json::from_str(&board.json()).unwrap();
        assert_eq!(json["previews"].as_array().map(Vec::len), Some(2), "{json}");
        assert_eq!(json["previews"][0]["pr_state"], "open");
        let html = board.html();
        assert!(html.contains("<code>pr-1-&lt;b&gt;</code>"), "{html}");
        board.record(&cycle(vec![preview(1, "removed", false)]));
        let json: serde_json::Value = serde_json::from_str(&board.json()).unwrap();
        assert_eq!(json["previews"], serde_json::json!([]), "{json}");
        assert!(!board.html().contains("<h2>previews</h2>"));
    }

    /// Issue 13 item 19: a pull request's address is a link only when it
    /// is `https:`; anything else (`javascript:`, `data:`, `http:`) is text.
    #[test]
    fn pull_request_links_are_links_only_when_https() {
        let board = Board::new(
            Duration::from_secs(60),
            [
                ("a", "good"),
                ("a", "script"),
                ("a", "plain"),
                ("a", "upper"),
            ]
            .into_iter()
            .map(|(a, e)| (a.to_string(), e.to_string())),
        );
        {
            let mut s = board.inner.write().unwrap();
            for (env, url) in [
                ("good", "https://github.com/acme/gitops/pull/7"),
                ("script", "javascript:alert(document.domain)//https://x"),
                ("plain", "http://forge.internal/pr/1"),
                ("upper", "HTTPS://github.com/acme/gitops/pull/8"),
            ] {
                s.rows
                    .get_mut(&("a".into(), env.into()))
                    .unwrap()
                    .pull_request = Some(url.into());
            }
        }
        let html = board.html();
        assert!(html.contains(
            "<a href=\"https://github.com/acme/gitops/pull/7\">https://github.com/acme/gitops/pull/7</a>"
        ));
        assert!(html.contains("<a href=\"HTTPS://github.com/acme/gitops/pull/8\">"));
        assert!(
            html.contains("<td>javascript:alert(document.domain)//https://x</td>"),
            "{html}"
        );
        assert!(
            html.contains("<td>http://forge.internal/pr/1</td>"),
            "{html}"
        );
        // Two links: the https ones, whatever the scheme's case.
        let links = html.matches("<a href=\"").count() - 2; // JSON, metrics
        assert_eq!(links, 2, "{html}");
    }

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

    /// Issue 13: the pauses of the throttling backoff (up to 8 intervals)
    /// exceeded the three-interval window, so a daemon backing off on
    /// purpose was not ready.
    #[test]
    fn the_readiness_window_stretches_by_the_backoff() {
        let board = Board::new(Duration::from_secs(10), std::iter::empty());
        let finished_ago = |secs: i64| {
            board.inner.write().unwrap().last_cycle =
                Some(OffsetDateTime::now_utc() - time::Duration::seconds(secs));
        };
        finished_ago(25);
        assert!(board.ready().is_ok());
        finished_ago(35);
        let why = board.ready().unwrap_err();
        assert!(why.contains("more than 3 intervals"), "{why}");
        board.set_backoff(Duration::from_secs(80));
        finished_ago(105);
        assert!(board.ready().is_ok(), "within 3 intervals and the backoff");
        finished_ago(115);
        let why = board.ready().unwrap_err();
        assert!(why.contains("the 80s throttling backoff"), "{why}");
        board.set_backoff(Duration::ZERO);
        assert!(board.ready().is_err());
    }
}
