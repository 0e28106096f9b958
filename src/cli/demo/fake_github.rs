//! A tiny GitHub-compatible endpoint for `tagwatch demo`'s pull-request
//! path: the REST calls tagwatch's GitHub client makes to find, open,
//! update and close a pull request, and nothing else, on loopback.
//!
//! Like [`super::fake_ecr`], it exists so the demo needs no account: the
//! daemon reaches it through the production [`crate::forge::github`]
//! client, with `api_url` pointing here. It keeps requests in memory and
//! reads each request's head commit from the demo's bare GitOps repository,
//! so what it answers is what GitHub would. Labels, reviewers, assignees
//! and auto-merge are not served (the demo's config sets none); the test
//! suite's stateful fake in `tests/support` covers those.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// One pull request as the demo's forge holds it.
#[derive(Clone, Debug)]
pub struct Pull {
    pub number: u64,
    pub title: String,
    /// Markdown, as tagwatch wrote it.
    pub body: String,
    /// The branch, e.g. `tagwatch/payments/prod`.
    pub head: String,
    pub base: String,
    pub open: bool,
    /// How many times tagwatch replaced its title and body.
    pub updates: u32,
}

#[derive(Default)]
struct Pulls {
    list: Vec<Pull>,
    /// Set once serving starts; pages link to it.
    addr: Option<SocketAddr>,
}

/// The requests of one repository, shared with the demo that prints them.
#[derive(Clone)]
pub struct FakeGitHub {
    /// `owner/repo`; any other repository is a 404, as on GitHub.
    repository: String,
    /// The bare GitOps repository, where each request's head commit is read.
    remote: PathBuf,
    pulls: Arc<Mutex<Pulls>>,
}

impl FakeGitHub {
    pub fn new(repository: &str, remote: PathBuf) -> FakeGitHub {
        FakeGitHub {
            repository: repository.to_string(),
            remote,
            pulls: Arc::default(),
        }
    }

    /// The requests so far, oldest first.
    pub fn pulls(&self) -> Vec<Pull> {
        self.lock().list.clone()
    }

    /// Serves on a free loopback port until `stop` is cancelled.
    pub async fn serve(&self, stop: CancellationToken) -> std::io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        self.lock().addr = Some(addr);
        let app = Router::new()
            .route("/repos/{owner}/{repo}/pulls", get(list).post(open))
            .route(
                "/repos/{owner}/{repo}/pulls/{number}",
                get(show).patch(update),
            )
            .route(
                "/repos/{owner}/{repo}/issues/{number}/comments",
                post(comment),
            )
            .fallback(|| async { not_found() })
            .with_state(self.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
        Ok(addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pulls> {
        self.pulls.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_ours(&self, owner: &str, repo: &str) -> bool {
        self.repository == format!("{owner}/{repo}")
    }

    /// A request as GitHub's REST API renders it, with the fields
    /// tagwatch's client reads.
    fn render(&self, pull: &Pull, addr: Option<SocketAddr>) -> Value {
        let sha = git2::Repository::open_bare(&self.remote)
            .and_then(|r| r.refname_to_id(&format!("refs/heads/{}", pull.head)))
            .map(|oid| oid.to_string())
            .ok();
        let page = addr.map_or_else(String::new, |a| {
            format!("http://{a}/{}/pull/{}", self.repository, pull.number)
        });
        json!({
            "number": pull.number,
            "node_id": format!("PR_demo{}", pull.number),
            "html_url": page,
            "state": if pull.open { "open" } else { "closed" },
            "merged": false,
            "merged_at": null,
            "title": pull.title,
            "body": pull.body,
            "head": { "ref": pull.head, "sha": sha },
            "base": { "ref": pull.base },
            "labels": [],
        })
    }
}

type Repo = Path<(String, String)>;
type Numbered = Path<(String, String, u64)>;

/// `GET /repos/{owner}/{repo}/pulls?state=all&head=owner:branch&base=…`,
/// newest first.
async fn list(State(gh): State<FakeGitHub>, Path((owner, repo)): Repo, uri: Uri) -> Response {
    if !gh.is_ours(&owner, &repo) {
        return not_found();
    }
    let query: Vec<(String, String)> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let head = param("head").map(|h| h.split_once(':').map_or(h, |(_, b)| b));
    let base = param("base");
    let pulls = gh.lock();
    let found: Vec<Value> = pulls
        .list
        .iter()
        .rev()
        .filter(|p| head.is_none_or(|h| p.head == h) && base.is_none_or(|b| p.base == b))
        .map(|p| gh.render(p, pulls.addr))
        .collect();
    (StatusCode::OK, axum::Json(Value::Array(found))).into_response()
}

/// `POST /repos/{owner}/{repo}/pulls`: one open request per head branch,
/// as GitHub enforces ("A pull request already exists").
async fn open(
    State(gh): State<FakeGitHub>,
    Path((owner, repo)): Repo,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if !gh.is_ours(&owner, &repo) {
        return not_found();
    }
    let text = |key: &str| body[key].as_str().unwrap_or_default().to_string();
    let (head, base) = (text("head"), text("base"));
    if head.is_empty() || base.is_empty() || text("title").is_empty() {
        return invalid("head, base and title are required");
    }
    let mut pulls = gh.lock();
    if pulls.list.iter().any(|p| p.open && p.head == head) {
        return invalid(&format!(
            "A pull request already exists for {owner}:{head}."
        ));
    }
    let pull = Pull {
        number: pulls.list.len() as u64 + 1,
        title: text("title"),
        body: text("body"),
        head,
        base,
        open: true,
        updates: 0,
    };
    let rendered = gh.render(&pull, pulls.addr);
    pulls.list.push(pull);
    (StatusCode::CREATED, axum::Json(rendered)).into_response()
}

async fn show(State(gh): State<FakeGitHub>, Path((owner, repo, number)): Numbered) -> Response {
    let pulls = gh.lock();
    match pulls.list.iter().find(|p| p.number == number) {
        Some(p) if gh.is_ours(&owner, &repo) => {
            (StatusCode::OK, axum::Json(gh.render(p, pulls.addr))).into_response()
        }
        _ => not_found(),
    }
}

/// `PATCH /repos/{owner}/{repo}/pulls/{number}`: a new title and body, or
/// `state: closed`.
async fn update(
    State(gh): State<FakeGitHub>,
    Path((owner, repo, number)): Numbered,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut pulls = gh.lock();
    let addr = pulls.addr;
    let Some(pull) = pulls.list.iter_mut().find(|p| p.number == number) else {
        return not_found();
    };
    if !gh.is_ours(&owner, &repo) {
        return not_found();
    }
    if let Some(title) = body["title"].as_str() {
        pull.title = title.to_string();
        pull.updates += 1;
    }
    if let Some(text) = body["body"].as_str() {
        pull.body = text.to_string();
    }
    if body["state"].as_str() == Some("closed") {
        pull.open = false;
    }
    let rendered = gh.render(pull, addr);
    (StatusCode::OK, axum::Json(rendered)).into_response()
}

/// `POST /repos/{owner}/{repo}/issues/{number}/comments`: accepted; the
/// demo has no page to show comments on.
async fn comment(State(gh): State<FakeGitHub>, Path((owner, repo, number)): Numbered) -> Response {
    let known = gh.lock().list.iter().any(|p| p.number == number);
    if !known || !gh.is_ours(&owner, &repo) {
        return not_found();
    }
    (StatusCode::CREATED, axum::Json(json!({ "id": number }))).into_response()
}

/// Percent-decoding for a query value (`acme%3Atagwatch%2Fpayments%2Fprod`);
/// a malformed escape is kept as written.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({ "message": "Not Found" })),
    )
        .into_response()
}

fn invalid(message: &str) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        axum::Json(json!({ "message": "Validation Failed", "errors": [{ "message": message }] })),
    )
        .into_response()
}
