//! Stateful fakes of GitHub (REST v3 plus one GraphQL mutation) and GitLab
//! (REST v4), for driving tagwatch's forge client on loopback. Each fake
//! runs axum on its own tokio runtime on a background thread, bound to
//! `127.0.0.1:0`, and stops when it is dropped. Its state sits behind an
//! `Arc<Mutex<…>>` that a synchronous test reads through `state()` or the
//! convenience accessors.
//!
//! # Where each behaviour comes from
//!
//! GitHub (docs.github.com, API version 2022-11-28):
//! - `rest/pulls/pulls`: list (`state` open|closed|all, default open;
//!   `head` as `user:ref-name`; `base`; `sort`; `direction`; `per_page` ≤ 100,
//!   default 30; `page`), create (`title`, `head`, `base` required, `body`,
//!   `draft`, `maintainer_can_modify`; 201; 422), get, update (`title`, `body`,
//!   `state` open|closed, `base`, `maintainer_can_modify`; 200; 422).
//! - `rest/issues/comments` (create: `body`; 201), `rest/issues/labels` (add:
//!   `{labels: [..]}`; 200 with every label on the issue; an empty array
//!   removes them all), `rest/issues/assignees` (add: `{assignees: [..]}`;
//!   201; users without push access are silently ignored),
//!   `rest/pulls/review-requests` (`reviewers`, `team_reviewers`; 201; 422).
//! - `graphql/reference/mutations#enablepullrequestautomerge`
//!   (`pullRequestId` is the PR's `node_id`; `mergeMethod` MERGE|SQUASH|REBASE).
//! - `rest/using-the-rest-api/troubleshooting-the-rest-api`: 400 "Problems
//!   parsing JSON" / "Body should be a JSON object"; 422 "Invalid request"
//!   for a missing parameter or a wrong type; 422 "Validation Failed" with
//!   `errors[].code` (missing_field, invalid, custom…); requests without a
//!   `User-Agent` are rejected (403).
//! - `rest/using-the-rest-api/rate-limits-for-the-rest-api`: primary limit =
//!   403 or 429 with `x-ratelimit-remaining: 0` and `x-ratelimit-reset` in UTC
//!   epoch seconds; secondary limit = 403 or 429, a message naming the
//!   secondary limit, and `retry-after` seconds when present.
//! - Real-service behaviour documented only in issue trackers, reproduced here
//!   because a client must cope with it: a duplicate PR is 422 `custom`
//!   "A pull request already exists for owner:branch."; a missing head branch
//!   is 422 `{resource: PullRequest, field: head, code: invalid}`; `head`
//!   without the `owner:` prefix is *silently ignored* by the list endpoint
//!   (every open PR comes back); "Review cannot be requested from pull request
//!   author."; the auto-merge mutation answers HTTP 200 with an `errors`
//!   array (e.g. "Pull request Pull request is in clean status").
//!
//! GitLab (docs.gitlab.com/api):
//! - `merge_requests`: list (`state` opened|closed|locked|merged|all,
//!   **default all**; `source_branch`; `target_branch`; `labels`; `order_by`;
//!   `sort`; `page`; `per_page` default 20), create (`source_branch`,
//!   `target_branch`, `title` required; `description`, `labels` comma-separated,
//!   `assignee_id`, `assignee_ids`, `reviewer_ids`, `remove_source_branch`,
//!   `squash`, `allow_collaboration`; 201), update (at least one of the
//!   attributes; `state_event` close|reopen; `labels`, `add_labels`,
//!   `remove_labels`; 200), merge (`auto_merge`, added in 17.11, replaces the
//!   deprecated `merge_when_pipeline_succeeds`; 405 when the MR cannot be
//!   merged; 409 when `sha` is not the source branch's head).
//!   `draft` is true when the title starts with `Draft:`, `[Draft]` or
//!   `(Draft)`.
//! - `notes` (create on a merge request: `body`; 201), `users` (`username`
//!   exact lookup; returns an array).
//! - `rest/troubleshooting`: 400 for a missing required attribute, 401
//!   `{"message":"401 Unauthorized"}`, 404, 405, 409 conflict, 422, 429.
//! - `rest/authentication`: `PRIVATE-TOKEN` or `Authorization: Bearer`.
//!   `rest/index`: a project is named by id or by its URL-encoded path
//!   (`group%2Fsub%2Fproject`).
//! - Rate limits (`security/rate_limits`, `user/gitlab_com`): 429 with
//!   `Retry-After`, `RateLimit-Limit`, `-Observed`, `-Remaining`, `-Reset`
//!   (epoch seconds), `-ResetTime` (HTTP date); the body is the plain text
//!   "Retry later".
//! - From GitLab's source (`lib/api/merge_requests.rb`, `MergeRequest`
//!   validation): a duplicate (same source *and* target branch, opened) is
//!   409 `{"message":["Another open merge request already exists for this
//!   source branch: !N"]}`; the same source and target is 422; parameter
//!   errors from Grape are `{"error":"title is missing"}` (the docs' own
//!   example body is `{"message":"400 (Bad request) \"title\" not given"}`);
//!   model errors are `{"message":{"source_branch":["does not exist"]}}`.
//!
//! # Where the fakes are stricter than the services, on purpose
//!
//! To catch typos in our client:
//! - An unknown field in a JSON body, or a query parameter the fake does not
//!   know, is 422 naming it (both services ignore unknown fields). A field the
//!   docs list but the fake does not implement is 422 saying so.
//! - Writes must send JSON with `Content-Type: application/json` (415
//!   otherwise); parameters of a write in the query string are rejected.
//! - GitHub REST requests must send `Accept: application/vnd.github+json` (415
//!   otherwise) and `X-GitHub-Api-Version: 2022-11-28` (400 otherwise). The
//!   GraphQL endpoint needs only `User-Agent` and the token.
//! - A wrong method on a known route is 405 with an `Allow` header (GitHub
//!   answers 404 there, GitLab 404 or 405).
//! - Integers must be JSON numbers and booleans JSON booleans (GitLab would
//!   coerce `"5"` and `"true"`).
//!
//! # Where they are simpler
//!
//! - One repository (GitHub) or project (GitLab); no forks; PR numbers are
//!   not shared with plain issues. GitHub `labels` accepts only the
//!   documented `{labels: [names]}` form.
//! - Branch checks need a bare repository (`git_dir`); without one every
//!   branch exists and has commits.
//! - GraphQL is not parsed: the query must contain `mutation` and
//!   `enablePullRequestAutoMerge`, and the id must come in
//!   `variables.pullRequestId`. The response shape is fixed.
//! - GitLab auto-merge is recorded and answered 200 whatever the pipeline
//!   (the real service may answer 405 or 422 when there is no pipeline); a
//!   merge without `auto_merge` merges at once.
//!
//! # Fault injection
//!
//! `fail_next(Match, n, Fault)` queues a fault for the next `n` requests that
//! match; faults apply before any other handling (before authentication).
//! Every request is logged with its arrival `Instant`, so a test can check
//! that a client waited as `retry-after` told it to.
#![allow(dead_code)]

use std::future::IntoFuture;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;

/// The REST API version the GitHub fake requires in `X-GitHub-Api-Version`.
pub const GITHUB_API_VERSION: &str = "2022-11-28";

// ---------------------------------------------------------------------------
// Request log and fault injection (shared by both fakes)
// ---------------------------------------------------------------------------

/// One request as the fake received it.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    /// When the request arrived, for checking that a client waited.
    pub at: Instant,
    pub method: String,
    /// The path as sent, still percent-encoded.
    pub path: String,
    /// The path relative to the API root (without `/api/v3` or `/api/v4`).
    pub api_path: String,
    /// Decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    /// Every header, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON, when it was JSON.
    pub body: Option<Value>,
    pub raw_body: String,
    /// The route the fake resolved, e.g. `pulls.create` or `mr.update`;
    /// `not_found` or `method_not_allowed` otherwise. Route names:
    /// GitHub `pulls.list`, `pulls.create`, `pulls.get`, `pulls.update`,
    /// `pulls.reviewers`, `issues.comment`, `issues.labels`,
    /// `issues.assignees`, `graphql`; GitLab `mr.list`, `mr.create`,
    /// `mr.get`, `mr.update`, `mr.note`, `mr.merge`, `users.list`.
    pub route: &'static str,
    /// The status the fake answered.
    pub status: u16,
    /// Whether the answer was an injected fault.
    pub injected: bool,
}

impl RequestRecord {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Time from `earlier` to this request.
    pub fn since(&self, earlier: &RequestRecord) -> Duration {
        self.at.saturating_duration_since(earlier.at)
    }
}

type Predicate = Arc<dyn Fn(&RequestRecord) -> bool + Send + Sync>;

/// Which requests a fault applies to. All given conditions must hold.
#[derive(Clone, Default)]
pub struct Match {
    method: Option<String>,
    api_path_prefix: Option<String>,
    route: Option<String>,
    predicate: Option<Predicate>,
}

impl Match {
    /// Every request.
    pub fn any() -> Match {
        Match::default()
    }

    /// Requests resolved to `route` (see [`RequestRecord::route`]).
    pub fn route(route: &str) -> Match {
        Match {
            route: Some(route.to_string()),
            ..Match::default()
        }
    }

    /// Requests with this method whose API path (relative to the API root,
    /// still percent-encoded) starts with `api_path_prefix`.
    pub fn request(method: &str, api_path_prefix: &str) -> Match {
        Match {
            method: Some(method.to_ascii_uppercase()),
            api_path_prefix: Some(api_path_prefix.to_string()),
            ..Match::default()
        }
    }

    /// Requests for which `f` holds.
    pub fn when(f: impl Fn(&RequestRecord) -> bool + Send + Sync + 'static) -> Match {
        Match {
            predicate: Some(Arc::new(f)),
            ..Match::default()
        }
    }

    fn matches(&self, r: &RequestRecord) -> bool {
        self.method.as_ref().is_none_or(|m| *m == r.method)
            && self
                .api_path_prefix
                .as_ref()
                .is_none_or(|p| r.api_path.starts_with(p.as_str()))
            && self.route.as_ref().is_none_or(|x| x == r.route)
            && self.predicate.as_ref().is_none_or(|f| f(r))
    }
}

/// An injected answer.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Primary rate limit. GitHub: 403, `x-ratelimit-remaining: 0`,
    /// `x-ratelimit-reset` = now + `reset_in_secs` (epoch seconds, rounded
    /// up). GitLab: 429 with `Retry-After: reset_in_secs` and `RateLimit-*`.
    RateLimit { reset_in_secs: u64 },
    /// Secondary rate limit: `status` (403 or 429 on GitHub) with
    /// `retry-after: retry_after_secs`; on GitLab a 429-style answer with
    /// `Retry-After` only.
    SecondaryRateLimit { status: u16, retry_after_secs: u64 },
    /// This status with the service's usual error body.
    Status(u16),
    /// Exactly this answer.
    Response {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Wait, then handle the request normally (for client timeouts).
    Delay(Duration),
}

struct FaultRule {
    matcher: Match,
    remaining: usize,
    fault: Fault,
}

fn take_fault(rules: &mut Vec<FaultRule>, record: &RequestRecord) -> Option<Fault> {
    let found = rules
        .iter_mut()
        .find(|r| r.remaining > 0 && r.matcher.matches(record))
        .map(|r| {
            r.remaining -= 1;
            r.fault.clone()
        });
    rules.retain(|r| r.remaining > 0);
    found
}

// ---------------------------------------------------------------------------
// HTTP plumbing
// ---------------------------------------------------------------------------

/// The background thread and runtime serving one fake; stopped on drop.
struct Server {
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

fn bind() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    let root = format!("http://{}", listener.local_addr().expect("local address"));
    (listener, root)
}

impl Server {
    fn run(listener: std::net::TcpListener, name: &str, app: Router) -> Server {
        let (tx, rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("tokio runtime for a fake forge");
                rt.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    let serve = axum::serve(listener, app).into_future();
                    tokio::select! {
                        _ = serve => {}
                        _ = rx => {}
                    }
                });
                // Connections still open (a client's keep-alive, a delayed
                // request) are dropped rather than waited for.
                rt.shutdown_timeout(Duration::from_secs(1));
            })
            .expect("spawn a fake forge thread");
        Server {
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking handler must not hide the log from the test.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Incoming {
    at: Instant,
    method: String,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Incoming {
    async fn read(req: Request) -> Incoming {
        let at = Instant::now();
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, 16 << 20)
            .await
            .map(|b| b.to_vec())
            .unwrap_or_default();
        Incoming {
            at,
            method: parts.method.as_str().to_string(),
            path: parts.uri.path().to_string(),
            query: parts.uri.query().map(parse_query).unwrap_or_default(),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn record(&self, api_path: &str, route: &'static str) -> RequestRecord {
        RequestRecord {
            at: self.at,
            method: self.method.clone(),
            path: self.path.clone(),
            api_path: api_path.to_string(),
            query: self.query.clone(),
            headers: self.headers.clone(),
            body: serde_json::from_slice(&self.body).ok(),
            raw_body: String::from_utf8_lossy(&self.body).into_owned(),
            route,
            status: 0,
            injected: false,
        }
    }

    fn is_write(&self) -> bool {
        matches!(self.method.as_str(), "POST" | "PUT" | "PATCH")
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex_digit(b[i + 1]), hex_digit(b[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(if plus_is_space && b[i] == b'+' {
            b' '
        } else {
            b[i]
        });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

/// Splits an API path into decoded segments; `None` unless it starts with `/`.
fn segments(api_path: &str) -> Option<Vec<String>> {
    let rest = api_path.strip_prefix('/')?;
    Some(rest.split('/').map(|s| percent_decode(s, false)).collect())
}

enum Resolved {
    NotFound,
    WrongMethod(Vec<&'static str>),
    Route {
        name: &'static str,
        params: Vec<String>,
    },
}

impl Resolved {
    fn name(&self) -> &'static str {
        match self {
            Resolved::NotFound => "not_found",
            Resolved::WrongMethod(_) => "method_not_allowed",
            Resolved::Route { name, .. } => name,
        }
    }
}

fn by_method(
    method: &str,
    table: &[(&'static str, &'static str)],
    params: Vec<String>,
) -> Resolved {
    match table.iter().find(|(m, _)| *m == method) {
        Some((_, name)) => Resolved::Route { name, params },
        None => Resolved::WrongMethod(table.iter().map(|(m, _)| *m).collect()),
    }
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn respond(
    status: u16,
    headers: Vec<(String, String)>,
    content_type: &str,
    body: String,
) -> Response {
    let mut b = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", content_type);
    for (k, v) in &headers {
        b = b.header(k.as_str(), v.as_str());
    }
    b.body(Body::from(body)).expect("a valid response")
}

fn reason(status: u16) -> &'static str {
    StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
}

/// Epoch seconds `secs` from now, rounded up so that waiting until then
/// waits at least `secs`.
fn epoch_in(secs: u64) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let sub = u64::from(now.subsec_nanos() > 0);
    now.as_secs() + sub + secs
}

fn now_rfc3339() -> String {
    let t = time::OffsetDateTime::now_utc();
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn http_date(epoch: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(i64::try_from(epoch).unwrap_or(0))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.format(&fmt).unwrap_or_default()
}

/// `a` with the fields of `b` added.
fn merge_objects(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn fake_sha(seed: &str) -> String {
    format!(
        "{:016x}{:016x}{:08x}",
        fnv(seed),
        fnv(&format!("{seed}#")),
        fnv(seed) >> 32
    )
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("a blocking task of the fake forge")
}

/// The commit `refs/heads/<branch>` points at in a bare repository.
fn git_branch(git_dir: &Path, branch: &str) -> Option<String> {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(["rev-parse", "--verify", "--quiet"])
        .arg(format!("refs/heads/{branch}^{{commit}}"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Whether `a` is an ancestor of (or equal to) `b`.
fn git_is_ancestor(git_dir: &Path, a: &str, b: &str) -> bool {
    Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(["merge-base", "--is-ancestor", a, b])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// What the repository says about a head/base (source/target) pair.
#[derive(Default)]
struct Branches {
    head_sha: Option<String>,
    base_sha: Option<String>,
    /// Whether head has commits that base lacks.
    ahead: bool,
}

async fn inspect_branches(git_dir: Option<PathBuf>, head: String, base: String) -> Branches {
    match git_dir {
        None => Branches {
            head_sha: Some(fake_sha(&head)),
            base_sha: Some(fake_sha(&base)),
            ahead: true,
        },
        Some(dir) => {
            blocking(move || {
                let head_sha = git_branch(&dir, &head);
                let base_sha = git_branch(&dir, &base);
                let ahead = match (&head_sha, &base_sha) {
                    (Some(h), Some(b)) => !git_is_ancestor(&dir, h, b),
                    _ => false,
                };
                Branches {
                    head_sha,
                    base_sha,
                    ahead,
                }
            })
            .await
        }
    }
}

// ---------------------------------------------------------------------------
// Request body validation
// ---------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Ty {
    Str,
    Bool,
    Int,
    StrList,
    IntList,
    StrOrStrList,
    Object,
}

impl Ty {
    fn accepts(self, v: &Value) -> bool {
        match self {
            Ty::Str => v.is_string(),
            Ty::Bool => v.is_boolean(),
            Ty::Int => v.is_u64() || v.is_i64(),
            Ty::StrList => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
            Ty::IntList => v
                .as_array()
                .is_some_and(|a| a.iter().all(|x| x.is_u64() || x.is_i64())),
            Ty::StrOrStrList => v.is_string() || Ty::StrList.accepts(v),
            Ty::Object => v.is_object(),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Ty::Str => "a string",
            Ty::Bool => "a boolean",
            Ty::Int => "an integer",
            Ty::StrList => "an array of strings",
            Ty::IntList => "an array of integers",
            Ty::StrOrStrList => "a string or an array of strings",
            Ty::Object => "an object",
        }
    }
}

struct Field {
    name: &'static str,
    ty: Ty,
    required: bool,
}

const fn req(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        ty,
        required: true,
    }
}

const fn opt(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        ty,
        required: false,
    }
}

enum FieldError {
    /// Not documented for this endpoint.
    Unknown(String),
    /// Documented, but the fake does not implement it.
    Unsupported(String),
    Missing(Vec<&'static str>),
    WrongType {
        field: &'static str,
        value: Value,
        expected: &'static str,
    },
}

fn check_fields(
    obj: &Map<String, Value>,
    fields: &[Field],
    unsupported: &[&str],
) -> Result<(), FieldError> {
    for key in obj.keys() {
        if unsupported.contains(&key.as_str()) {
            return Err(FieldError::Unsupported(key.clone()));
        }
        if !fields.iter().any(|f| f.name == key) {
            return Err(FieldError::Unknown(key.clone()));
        }
    }
    let missing: Vec<_> = fields
        .iter()
        .filter(|f| f.required && !obj.contains_key(f.name))
        .map(|f| f.name)
        .collect();
    if !missing.is_empty() {
        return Err(FieldError::Missing(missing));
    }
    for f in fields {
        if let Some(v) = obj.get(f.name)
            && !f.ty.accepts(v)
        {
            return Err(FieldError::WrongType {
                field: f.name,
                value: v.clone(),
                expected: f.ty.describe(),
            });
        }
    }
    Ok(())
}

enum BodyProblem {
    ContentType(Option<String>),
    NotJson,
    NotObject,
}

/// The JSON object in the body; an empty body is an empty object.
fn json_object(inc: &Incoming) -> Result<Map<String, Value>, BodyProblem> {
    if inc.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let ct = inc.header("content-type");
    let is_json = ct.is_some_and(|c| {
        c.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("application/json")
    });
    if !is_json {
        return Err(BodyProblem::ContentType(ct.map(str::to_string)));
    }
    match serde_json::from_slice::<Value>(&inc.body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(BodyProblem::NotObject),
        Err(_) => Err(BodyProblem::NotJson),
    }
}

fn unknown_query<'a>(query: &'a [(String, String)], allowed: &[&str]) -> Option<&'a str> {
    query
        .iter()
        .map(|(k, _)| k.as_str())
        .find(|k| !allowed.contains(k))
}

fn str_list(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

fn push_unique(list: &mut Vec<String>, items: impl IntoIterator<Item = String>) {
    for item in items {
        if !list.contains(&item) {
            list.push(item);
        }
    }
}

fn page_params(inc: &Incoming, default_per_page: usize) -> Result<(usize, usize), &'static str> {
    let page = match inc.query_param("page") {
        None => 1,
        Some(p) => p.parse::<usize>().map_err(|_| "page")?.max(1),
    };
    let per_page = match inc.query_param("per_page") {
        None => default_per_page,
        Some(p) => p.parse::<usize>().map_err(|_| "per_page")?.clamp(1, 100),
    };
    Ok((page, per_page))
}

fn paginate<T>(items: Vec<T>, page: usize, per_page: usize) -> (Vec<T>, usize) {
    let total_pages = items.len().div_ceil(per_page).max(1);
    let items = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    (items, total_pages)
}

// ---------------------------------------------------------------------------
// GitHub
// ---------------------------------------------------------------------------

const GH_DOCS: &str = "https://docs.github.com/rest";
const GH_DOC_LIST: &str = "https://docs.github.com/rest/pulls/pulls#list-pull-requests";
const GH_DOC_CREATE: &str = "https://docs.github.com/rest/pulls/pulls#create-a-pull-request";
const GH_DOC_GET: &str = "https://docs.github.com/rest/pulls/pulls#get-a-pull-request";
const GH_DOC_UPDATE: &str = "https://docs.github.com/rest/pulls/pulls#update-a-pull-request";
const GH_DOC_COMMENT: &str = "https://docs.github.com/rest/issues/comments#create-an-issue-comment";
const GH_DOC_LABELS: &str = "https://docs.github.com/rest/issues/labels#add-labels-to-an-issue";
const GH_DOC_ASSIGNEES: &str =
    "https://docs.github.com/rest/issues/assignees#add-assignees-to-an-issue";
const GH_DOC_REVIEWERS: &str =
    "https://docs.github.com/rest/pulls/review-requests#request-reviewers-for-a-pull-request";
const GH_DOC_GRAPHQL: &str = "https://docs.github.com/graphql";
const GH_DOC_RATE: &str = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api";

/// How a [`GitHubFake`] starts.
#[derive(Clone, Debug)]
pub struct GitHubConfig {
    pub owner: String,
    pub repo: String,
    pub token: String,
    /// The login the token belongs to: the author of created PRs.
    pub login: String,
    /// `""` for api.github.com, `/api/v3` for GitHub Enterprise Server.
    pub path_prefix: String,
    /// A bare repository whose `refs/heads/*` decide which branches exist.
    pub git_dir: Option<PathBuf>,
}

impl GitHubConfig {
    pub fn new(owner: &str, repo: &str) -> GitHubConfig {
        GitHubConfig {
            owner: owner.to_string(),
            repo: repo.to_string(),
            token: "ghp_faketoken".to_string(),
            login: "tagwatch-bot".to_string(),
            path_prefix: String::new(),
            git_dir: None,
        }
    }

    pub fn token(mut self, token: &str) -> Self {
        self.token = token.to_string();
        self
    }

    pub fn login(mut self, login: &str) -> Self {
        self.login = login.to_string();
        self
    }

    /// Serve under `/api/v3` (REST) and `/api/graphql`, as GitHub
    /// Enterprise Server does.
    pub fn enterprise(mut self) -> Self {
        self.path_prefix = "/api/v3".to_string();
        self
    }

    pub fn path_prefix(mut self, prefix: &str) -> Self {
        self.path_prefix = prefix.trim_end_matches('/').to_string();
        self
    }

    pub fn git_dir(mut self, dir: &Path) -> Self {
        self.git_dir = Some(dir.to_path_buf());
        self
    }
}

/// A comment on a PR (GitHub) or a note on an MR (GitLab).
#[derive(Clone, Debug, PartialEq)]
pub struct Comment {
    pub id: u64,
    pub author: String,
    pub body: String,
    pub created_at: String,
}

/// Auto-merge as enabled through GraphQL.
#[derive(Clone, Debug, PartialEq)]
pub struct AutoMerge {
    /// `MERGE`, `SQUASH` or `REBASE`.
    pub merge_method: String,
    pub enabled_by: String,
    pub enabled_at: String,
}

/// A pull request in the GitHub fake, with everything done to it.
#[derive(Clone, Debug, PartialEq)]
pub struct PullRequest {
    pub number: u64,
    pub node_id: String,
    pub author: String,
    pub title: String,
    pub body: Option<String>,
    /// `open` or `closed`.
    pub state: String,
    pub draft: bool,
    pub merged: bool,
    pub maintainer_can_modify: bool,
    pub head_owner: String,
    pub head_ref: String,
    pub head_sha: String,
    pub base_ref: String,
    pub base_sha: String,
    pub labels: Vec<String>,
    pub assignees: Vec<String>,
    pub requested_reviewers: Vec<String>,
    pub requested_teams: Vec<String>,
    pub auto_merge: Option<AutoMerge>,
    pub comments: Vec<Comment>,
    pub created_at: String,
    pub updated_at: String,
    pub closed_at: Option<String>,
}

impl PullRequest {
    pub fn is_open(&self) -> bool {
        self.state == "open"
    }

    /// `owner:branch`, as GitHub's `head.label`.
    pub fn head_label(&self) -> String {
        format!("{}:{}", self.head_owner, self.head_ref)
    }
}

/// Everything the GitHub fake holds; tests may read and change it.
pub struct GitHubState {
    pub owner: String,
    pub repo: String,
    pub token: String,
    pub login: String,
    pub git_dir: Option<PathBuf>,
    /// Users with push access; `None` means everyone. Assignees outside it
    /// are silently dropped, reviewers outside it are a 422.
    pub collaborators: Option<Vec<String>>,
    /// When set, the auto-merge mutation answers with this GraphQL error,
    /// e.g. "Pull request Pull request is in clean status".
    pub auto_merge_error: Option<String>,
    pub pulls: Vec<PullRequest>,
    pub requests: Vec<RequestRecord>,
    faults: Vec<FaultRule>,
    root_url: String,
    path_prefix: String,
    next_comment_id: u64,
}

impl GitHubState {
    pub fn api_url(&self) -> String {
        format!("{}{}", self.root_url, self.path_prefix)
    }

    /// Where HTML pages live: the root for both github.com-style and
    /// Enterprise-style prefixes (`https://host/owner/repo/pull/1`).
    pub fn web_url(&self) -> String {
        self.root_url.clone()
    }

    fn graphql_path(&self) -> String {
        match self.path_prefix.strip_suffix("/v3") {
            Some(api) => format!("{api}/graphql"),
            None => format!("{}/graphql", self.path_prefix),
        }
    }

    fn is_collaborator(&self, login: &str) -> bool {
        self.collaborators
            .as_ref()
            .is_none_or(|c| c.iter().any(|x| x.eq_ignore_ascii_case(login)))
    }

    fn pull_index(&self, number: u64) -> Option<usize> {
        self.pulls.iter().position(|p| p.number == number)
    }

    fn open_duplicate(&self, head_owner: &str, head_ref: &str, base_ref: &str, not: u64) -> bool {
        self.pulls.iter().any(|p| {
            p.number != not
                && p.is_open()
                && p.head_owner.eq_ignore_ascii_case(head_owner)
                && p.head_ref == head_ref
                && p.base_ref == base_ref
        })
    }

    fn user_json(&self, login: &str) -> Value {
        let id = 1000 + fnv(&login.to_ascii_lowercase()) % 9_000_000;
        json!({
            "login": login,
            "id": id,
            "node_id": format!("U_fake{id}"),
            "url": format!("{}/users/{login}", self.api_url()),
            "html_url": format!("{}/{login}", self.web_url()),
            "type": "User",
            "site_admin": false,
        })
    }

    fn label_json(&self, name: &str) -> Value {
        let id = fnv(name) % 1_000_000_000;
        json!({
            "id": id,
            "node_id": format!("LA_fake{id}"),
            "url": format!("{}/repos/{}/{}/labels/{name}", self.api_url(), self.owner, self.repo),
            "name": name,
            "color": "ededed",
            "default": false,
            "description": null,
        })
    }

    fn repo_json(&self) -> Value {
        json!({
            "id": 4242,
            "node_id": "R_fake4242",
            "name": self.repo,
            "full_name": format!("{}/{}", self.owner, self.repo),
            "owner": self.user_json(&self.owner),
            "private": true,
            "html_url": format!("{}/{}/{}", self.web_url(), self.owner, self.repo),
            "url": format!("{}/repos/{}/{}", self.api_url(), self.owner, self.repo),
        })
    }

    fn html_url(&self, number: u64) -> String {
        format!(
            "{}/{}/{}/pull/{number}",
            self.web_url(),
            self.owner,
            self.repo
        )
    }

    fn pull_json(&self, p: &PullRequest) -> Value {
        let repo_api = format!("{}/repos/{}/{}", self.api_url(), self.owner, self.repo);
        let users =
            |list: &[String]| -> Vec<Value> { list.iter().map(|u| self.user_json(u)).collect() };
        json!({
            "url": format!("{repo_api}/pulls/{}", p.number),
            "id": 100_000 + p.number,
            "node_id": p.node_id,
            "html_url": self.html_url(p.number),
            "issue_url": format!("{repo_api}/issues/{}", p.number),
            "comments_url": format!("{repo_api}/issues/{}/comments", p.number),
            "number": p.number,
            "state": p.state,
            "locked": false,
            "title": p.title,
            "user": self.user_json(&p.author),
            "body": p.body,
            "labels": p.labels.iter().map(|l| self.label_json(l)).collect::<Vec<_>>(),
            "milestone": null,
            "draft": p.draft,
            "head": {
                "label": p.head_label(),
                "ref": p.head_ref,
                "sha": p.head_sha,
                "user": self.user_json(&p.head_owner),
                "repo": self.repo_json(),
            },
            "base": {
                "label": format!("{}:{}", self.owner, p.base_ref),
                "ref": p.base_ref,
                "sha": p.base_sha,
                "user": self.user_json(&self.owner),
                "repo": self.repo_json(),
            },
            "assignee": p.assignees.first().map(|a| self.user_json(a)),
            "assignees": users(&p.assignees),
            "requested_reviewers": users(&p.requested_reviewers),
            "requested_teams": p.requested_teams.iter().map(|t| json!({
                "id": fnv(t) % 1_000_000,
                "slug": t,
                "name": t,
            })).collect::<Vec<_>>(),
            "auto_merge": p.auto_merge.as_ref().map(|a| json!({
                "enabled_by": self.user_json(&a.enabled_by),
                "merge_method": a.merge_method.to_ascii_lowercase(),
                "commit_title": null,
                "commit_message": null,
            })),
            "merged": p.merged,
            "mergeable": null,
            "maintainer_can_modify": p.maintainer_can_modify,
            "author_association": "MEMBER",
            "created_at": p.created_at,
            "updated_at": p.updated_at,
            "closed_at": p.closed_at,
            "merged_at": if p.merged { json!(p.closed_at) } else { Value::Null },
        })
    }

    /// A PR seen through the issues API (the assignees endpoint answers so).
    fn issue_json(&self, p: &PullRequest) -> Value {
        let repo_api = format!("{}/repos/{}/{}", self.api_url(), self.owner, self.repo);
        json!({
            "url": format!("{repo_api}/issues/{}", p.number),
            "id": 200_000 + p.number,
            "node_id": format!("I_fake{}", p.number),
            "number": p.number,
            "html_url": self.html_url(p.number),
            "title": p.title,
            "state": p.state,
            "user": self.user_json(&p.author),
            "body": p.body,
            "labels": p.labels.iter().map(|l| self.label_json(l)).collect::<Vec<_>>(),
            "assignee": p.assignees.first().map(|a| self.user_json(a)),
            "assignees": p.assignees.iter().map(|a| self.user_json(a)).collect::<Vec<_>>(),
            "comments": p.comments.len(),
            "pull_request": {
                "url": format!("{repo_api}/pulls/{}", p.number),
                "html_url": self.html_url(p.number),
            },
            "created_at": p.created_at,
            "updated_at": p.updated_at,
            "closed_at": p.closed_at,
        })
    }

    fn comment_json(&self, number: u64, c: &Comment) -> Value {
        let repo_api = format!("{}/repos/{}/{}", self.api_url(), self.owner, self.repo);
        json!({
            "id": c.id,
            "node_id": format!("IC_fake{}", c.id),
            "url": format!("{repo_api}/issues/comments/{}", c.id),
            "html_url": format!("{}#issuecomment-{}", self.html_url(number), c.id),
            "issue_url": format!("{repo_api}/issues/{number}"),
            "body": c.body,
            "user": self.user_json(&c.author),
            "created_at": c.created_at,
            "updated_at": c.created_at,
            "author_association": "MEMBER",
        })
    }

    fn new_pull(
        &mut self,
        author: &str,
        title: &str,
        head_ref: &str,
        base_ref: &str,
        shas: (String, String),
    ) -> u64 {
        let number = self.pulls.iter().map(|p| p.number).max().unwrap_or(0) + 1;
        let now = now_rfc3339();
        self.pulls.push(PullRequest {
            number,
            node_id: format!("PR_kwDOfake{number:06}"),
            author: author.to_string(),
            title: title.to_string(),
            body: None,
            state: "open".to_string(),
            draft: false,
            merged: false,
            maintainer_can_modify: false,
            head_owner: self.owner.clone(),
            head_ref: head_ref.to_string(),
            head_sha: shas.0,
            base_ref: base_ref.to_string(),
            base_sha: shas.1,
            labels: Vec::new(),
            assignees: Vec::new(),
            requested_reviewers: Vec::new(),
            requested_teams: Vec::new(),
            auto_merge: None,
            comments: Vec::new(),
            created_at: now.clone(),
            updated_at: now,
            closed_at: None,
        });
        number
    }
}

/// A stateful fake of the GitHub REST API (and the auto-merge mutation).
pub struct GitHubFake {
    state: Arc<Mutex<GitHubState>>,
    _server: Server,
}

impl GitHubFake {
    pub fn start(config: GitHubConfig) -> GitHubFake {
        let (listener, root_url) = bind();
        let state = Arc::new(Mutex::new(GitHubState {
            owner: config.owner,
            repo: config.repo,
            token: config.token,
            login: config.login,
            git_dir: config.git_dir,
            collaborators: None,
            auto_merge_error: None,
            pulls: Vec::new(),
            requests: Vec::new(),
            faults: Vec::new(),
            root_url,
            path_prefix: config.path_prefix,
            next_comment_id: 1,
        }));
        let shared = state.clone();
        let app = Router::new().fallback(move |req: Request| {
            let shared = shared.clone();
            async move { github_handle(shared, req).await }
        });
        GitHubFake {
            state,
            _server: Server::run(listener, "fake-github", app),
        }
    }

    /// The `api_url` to configure: `http://127.0.0.1:PORT` or
    /// `http://127.0.0.1:PORT/api/v3`.
    pub fn api_url(&self) -> String {
        self.state().api_url()
    }

    /// `…/graphql`, or `…/api/graphql` under the Enterprise prefix.
    pub fn graphql_url(&self) -> String {
        let s = self.state();
        format!("{}{}", s.root_url, s.graphql_path())
    }

    /// The state, locked. Do not hold it across a request to the fake.
    pub fn state(&self) -> MutexGuard<'_, GitHubState> {
        lock(&self.state)
    }

    pub fn set_token(&self, token: &str) {
        self.state().token = token.to_string();
    }

    pub fn set_git_dir(&self, dir: Option<&Path>) {
        self.state().git_dir = dir.map(Path::to_path_buf);
    }

    pub fn set_collaborators(&self, logins: Option<&[&str]>) {
        self.state().collaborators = logins.map(|l| l.iter().map(|s| s.to_string()).collect());
    }

    pub fn set_auto_merge_error(&self, message: Option<&str>) {
        self.state().auto_merge_error = message.map(str::to_string);
    }

    /// Answers the next `n` requests matching `matcher` with `fault`.
    pub fn fail_next(&self, matcher: Match, n: usize, fault: Fault) {
        self.state().faults.push(FaultRule {
            matcher,
            remaining: n,
            fault,
        });
    }

    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    /// An open PR that someone else opened, from `head_ref` into `base_ref`.
    pub fn seed_pull(&self, author: &str, head_ref: &str, base_ref: &str, title: &str) -> u64 {
        let mut s = self.state();
        let shas = (fake_sha(head_ref), fake_sha(base_ref));
        s.new_pull(author, title, head_ref, base_ref, shas)
    }

    pub fn pulls(&self) -> Vec<PullRequest> {
        self.state().pulls.clone()
    }

    pub fn pull(&self, number: u64) -> Option<PullRequest> {
        self.state()
            .pulls
            .iter()
            .find(|p| p.number == number)
            .cloned()
    }

    pub fn open_pulls(&self) -> Vec<PullRequest> {
        self.state()
            .pulls
            .iter()
            .filter(|p| p.is_open())
            .cloned()
            .collect()
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state().requests.clone()
    }

    /// Requests resolved to `route` (whatever they were answered).
    pub fn count(&self, route: &str) -> usize {
        self.state()
            .requests
            .iter()
            .filter(|r| r.route == route)
            .count()
    }

    pub fn create_calls(&self) -> usize {
        self.count("pulls.create")
    }
}

fn gh_headers() -> Vec<(String, String)> {
    vec![
        (
            "x-github-api-version-selected".to_string(),
            GITHUB_API_VERSION.to_string(),
        ),
        ("x-ratelimit-limit".to_string(), "5000".to_string()),
        ("x-ratelimit-remaining".to_string(), "4999".to_string()),
        ("x-ratelimit-used".to_string(), "1".to_string()),
        ("x-ratelimit-reset".to_string(), epoch_in(3600).to_string()),
        ("x-ratelimit-resource".to_string(), "core".to_string()),
    ]
}

fn gh_json(status: u16, body: Value) -> Response {
    respond(
        status,
        gh_headers(),
        "application/json; charset=utf-8",
        body.to_string(),
    )
}

fn gh_error(status: u16, message: &str, docs: &str) -> Response {
    gh_json(
        status,
        json!({"message": message, "documentation_url": docs, "status": status.to_string()}),
    )
}

fn gh_validation(docs: &str, errors: Value) -> Response {
    gh_json(
        422,
        json!({
            "message": "Validation Failed",
            "errors": errors,
            "documentation_url": docs,
            "status": "422",
        }),
    )
}

fn gh_invalid(docs: &str, detail: &str) -> Response {
    gh_error(422, &format!("Invalid request.\n\n{detail}"), docs)
}

fn gh_field_error(docs: &str, e: FieldError) -> Response {
    match e {
        FieldError::Unknown(k) => gh_invalid(docs, &format!("\"{k}\" is not a permitted key.")),
        FieldError::Unsupported(k) => gh_invalid(
            docs,
            &format!("\"{k}\" is documented but not implemented by the fake."),
        ),
        FieldError::Missing(m) => gh_invalid(docs, &format!("\"{}\" wasn't supplied.", m[0])),
        FieldError::WrongType {
            field,
            value,
            expected,
        } => gh_invalid(
            docs,
            &format!("For 'properties/{field}', {value} is not {expected}."),
        ),
    }
}

fn gh_body_problem(docs: &str, p: BodyProblem) -> Response {
    match p {
        BodyProblem::ContentType(ct) => gh_error(
            415,
            &format!(
                "fake: a JSON body needs Content-Type: application/json (got {})",
                ct.as_deref().unwrap_or("none")
            ),
            docs,
        ),
        BodyProblem::NotJson => gh_error(400, "Problems parsing JSON", docs),
        BodyProblem::NotObject => gh_error(400, "Body should be a JSON object", docs),
    }
}

fn gh_fault(f: &Fault) -> Response {
    match f {
        Fault::RateLimit { reset_in_secs } => {
            let mut h = gh_headers();
            h.retain(|(k, _)| !k.starts_with("x-ratelimit"));
            h.extend([
                ("x-ratelimit-limit".to_string(), "5000".to_string()),
                ("x-ratelimit-remaining".to_string(), "0".to_string()),
                ("x-ratelimit-used".to_string(), "5000".to_string()),
                (
                    "x-ratelimit-reset".to_string(),
                    epoch_in(*reset_in_secs).to_string(),
                ),
                ("x-ratelimit-resource".to_string(), "core".to_string()),
            ]);
            let body = json!({
                "message": "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, please include the request ID FAKE:0000:0000.",
                "documentation_url": GH_DOC_RATE,
                "status": "403",
            });
            respond(403, h, "application/json; charset=utf-8", body.to_string())
        }
        Fault::SecondaryRateLimit {
            status,
            retry_after_secs,
        } => {
            let mut h = gh_headers();
            h.push(("retry-after".to_string(), retry_after_secs.to_string()));
            let body = json!({
                "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID FAKE:0000:0000.",
                "documentation_url": format!("{GH_DOC_RATE}#about-secondary-rate-limits"),
                "status": status.to_string(),
            });
            respond(
                *status,
                h,
                "application/json; charset=utf-8",
                body.to_string(),
            )
        }
        Fault::Status(status) => gh_error(*status, reason(*status), GH_DOCS),
        Fault::Response {
            status,
            headers,
            body,
        } => {
            let ct = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| "application/json; charset=utf-8".to_string());
            let rest = headers
                .iter()
                .filter(|(k, _)| !k.eq_ignore_ascii_case("content-type"))
                .cloned()
                .collect();
            respond(*status, rest, &ct, body.clone())
        }
        Fault::Delay(_) => unreachable!("a delay is handled before answering"),
    }
}

const GH_PULLS: &[(&str, &str)] = &[("GET", "pulls.list"), ("POST", "pulls.create")];
const GH_PULL: &[(&str, &str)] = &[("GET", "pulls.get"), ("PATCH", "pulls.update")];
const GH_REVIEWERS: &[(&str, &str)] = &[("POST", "pulls.reviewers")];
const GH_COMMENTS: &[(&str, &str)] = &[("POST", "issues.comment")];
const GH_LABELS: &[(&str, &str)] = &[("POST", "issues.labels")];
const GH_ASSIGNEES: &[(&str, &str)] = &[("POST", "issues.assignees")];
const GH_GRAPHQL: &[(&str, &str)] = &[("POST", "graphql")];

/// Resolves a request to a route; returns the API path too.
fn github_resolve(
    prefix: &str,
    graphql_path: &str,
    method: &str,
    path: &str,
) -> (String, Resolved) {
    if path == graphql_path {
        return (path.to_string(), by_method(method, GH_GRAPHQL, Vec::new()));
    }
    let Some(api_path) = path.strip_prefix(prefix).filter(|r| r.starts_with('/')) else {
        return (path.to_string(), Resolved::NotFound);
    };
    let Some(segs) = segments(api_path) else {
        return (api_path.to_string(), Resolved::NotFound);
    };
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let p = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let resolved = match s.as_slice() {
        ["repos", o, r, "pulls"] => by_method(method, GH_PULLS, p(&[o, r])),
        ["repos", o, r, "pulls", n] if is_number(n) => by_method(method, GH_PULL, p(&[o, r, n])),
        ["repos", o, r, "pulls", n, "requested_reviewers"] if is_number(n) => {
            by_method(method, GH_REVIEWERS, p(&[o, r, n]))
        }
        ["repos", o, r, "issues", n, "comments"] if is_number(n) => {
            by_method(method, GH_COMMENTS, p(&[o, r, n]))
        }
        ["repos", o, r, "issues", n, "labels"] if is_number(n) => {
            by_method(method, GH_LABELS, p(&[o, r, n]))
        }
        ["repos", o, r, "issues", n, "assignees"] if is_number(n) => {
            by_method(method, GH_ASSIGNEES, p(&[o, r, n]))
        }
        _ => Resolved::NotFound,
    };
    (api_path.to_string(), resolved)
}

async fn github_handle(state: Arc<Mutex<GitHubState>>, req: Request) -> Response {
    let inc = Incoming::read(req).await;
    let (prefix, graphql_path) = {
        let s = lock(&state);
        (s.path_prefix.clone(), s.graphql_path())
    };
    let (api_path, resolved) = github_resolve(&prefix, &graphql_path, &inc.method, &inc.path);
    let (idx, fault) = {
        let mut guard = lock(&state);
        let s = &mut *guard;
        s.requests.push(inc.record(&api_path, resolved.name()));
        let idx = s.requests.len() - 1;
        (idx, take_fault(&mut s.faults, &s.requests[idx]))
    };
    let (response, injected) = match fault {
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            (github_serve(&state, &inc, resolved).await, false)
        }
        Some(f) => (gh_fault(&f), true),
        None => (github_serve(&state, &inc, resolved).await, false),
    };
    if let Some(r) = lock(&state).requests.get_mut(idx) {
        r.status = response.status().as_u16();
        r.injected = injected;
    }
    response
}

/// The token from `Authorization: Bearer …` or `token …`; `Some("")` for
/// another scheme.
fn bearer_or_token(inc: &Incoming) -> Option<String> {
    let v = inc.header("authorization")?.trim();
    let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
    if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token") {
        Some(rest.trim().to_string())
    } else {
        Some(String::new())
    }
}

async fn github_serve(
    state: &Arc<Mutex<GitHubState>>,
    inc: &Incoming,
    resolved: Resolved,
) -> Response {
    if inc.header("user-agent").is_none_or(|u| u.trim().is_empty()) {
        return respond(
            403,
            Vec::new(),
            "text/plain; charset=utf-8",
            "Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). Check https://developer.github.com for other possible causes.\n".to_string(),
        );
    }
    let token = lock(state).token.clone();
    match bearer_or_token(inc) {
        None => return gh_error(401, "Requires authentication", GH_DOCS),
        Some(t) if t != token => return gh_error(401, "Bad credentials", GH_DOCS),
        Some(_) => {}
    }
    let (name, params) = match resolved {
        Resolved::NotFound => return gh_error(404, "Not Found", GH_DOCS),
        Resolved::WrongMethod(allowed) => {
            let allow = allowed.join(", ");
            return respond(
                405,
                vec![("allow".to_string(), allow.clone())],
                "application/json; charset=utf-8",
                json!({
                    "message": format!("fake: {} is not allowed here; use {allow} (GitHub itself answers 404)", inc.method),
                    "documentation_url": GH_DOCS,
                    "status": "405",
                })
                .to_string(),
            );
        }
        Resolved::Route { name, params } => (name, params),
    };
    if name == "graphql" {
        return github_graphql(state, inc);
    }
    let docs = match name {
        "pulls.list" => GH_DOC_LIST,
        "pulls.create" => GH_DOC_CREATE,
        "pulls.get" => GH_DOC_GET,
        "pulls.update" => GH_DOC_UPDATE,
        "pulls.reviewers" => GH_DOC_REVIEWERS,
        "issues.comment" => GH_DOC_COMMENT,
        "issues.labels" => GH_DOC_LABELS,
        _ => GH_DOC_ASSIGNEES,
    };
    let accept_ok = inc.header("accept").is_some_and(|a| {
        a.split(',')
            .any(|m| m.split(';').next().unwrap_or("").trim() == "application/vnd.github+json")
    });
    if !accept_ok {
        return gh_error(
            415,
            &format!(
                "fake: send Accept: application/vnd.github+json (got {})",
                inc.header("accept").unwrap_or("none")
            ),
            docs,
        );
    }
    match inc.header("x-github-api-version") {
        Some(GITHUB_API_VERSION) => {}
        Some(other) => {
            return gh_error(
                400,
                &format!("Unsupported 'X-GitHub-Api-Version': {other}"),
                docs,
            );
        }
        None => {
            return gh_error(400, "fake: send X-GitHub-Api-Version: 2022-11-28", docs);
        }
    }
    {
        let s = lock(state);
        if !params[0].eq_ignore_ascii_case(&s.owner) || !params[1].eq_ignore_ascii_case(&s.repo) {
            return gh_error(404, "Not Found", docs);
        }
    }
    let number = params.get(2).and_then(|n| n.parse::<u64>().ok());
    if inc.is_write()
        && let Some((k, _)) = inc.query.first()
    {
        return gh_invalid(
            docs,
            &format!(
                "fake: \"{k}\" was sent in the query string; send the parameters of a write in the JSON body."
            ),
        );
    }
    let body = if inc.is_write() {
        match json_object(inc) {
            Ok(b) => b,
            Err(p) => return gh_body_problem(docs, p),
        }
    } else {
        Map::new()
    };
    if let Some(n) = number
        && lock(state).pull_index(n).is_none()
    {
        return gh_error(404, "Not Found", docs);
    }
    match (name, number) {
        ("pulls.list", _) => gh_list(state, inc),
        ("pulls.create", _) => gh_create(state, body).await,
        ("pulls.get", Some(n)) => {
            let s = lock(state);
            let p = &s.pulls[s.pull_index(n).expect("checked")];
            gh_json(200, s.pull_json(p))
        }
        ("pulls.update", Some(n)) => gh_update(state, n, body).await,
        ("issues.comment", Some(n)) => gh_comment(state, n, body),
        ("issues.labels", Some(n)) => gh_labels(state, n, body),
        ("issues.assignees", Some(n)) => gh_assignees(state, n, body),
        ("pulls.reviewers", Some(n)) => gh_reviewers(state, n, body),
        _ => gh_error(404, "Not Found", docs),
    }
}

fn gh_list(state: &Arc<Mutex<GitHubState>>, inc: &Incoming) -> Response {
    let docs = GH_DOC_LIST;
    if let Some(k) = unknown_query(
        &inc.query,
        &[
            "state",
            "head",
            "base",
            "sort",
            "direction",
            "per_page",
            "page",
        ],
    ) {
        return gh_invalid(docs, &format!("\"{k}\" is not a permitted key."));
    }
    let want_state = inc.query_param("state").unwrap_or("open");
    if !["open", "closed", "all"].contains(&want_state) {
        return gh_invalid(
            docs,
            &format!(
                "For 'state', \"{want_state}\" is not one of [\"open\", \"closed\", \"all\"]."
            ),
        );
    }
    let sort = inc.query_param("sort").unwrap_or("created");
    if !["created", "updated", "popularity", "long-running"].contains(&sort) {
        return gh_invalid(
            docs,
            &format!("For 'sort', \"{sort}\" is not a valid value."),
        );
    }
    let direction = inc.query_param("direction").unwrap_or("desc");
    if !["asc", "desc"].contains(&direction) {
        return gh_invalid(
            docs,
            &format!("For 'direction', \"{direction}\" is not a valid value."),
        );
    }
    let (page, per_page) = match page_params(inc, 30) {
        Ok(x) => x,
        Err(k) => return gh_invalid(docs, &format!("For '{k}', the value is not an integer.")),
    };
    // GitHub silently ignores a `head` without the `owner:` prefix.
    let head = inc.query_param("head").and_then(|h| h.split_once(':'));
    let base = inc.query_param("base");
    let s = lock(state);
    let mut pulls: Vec<&PullRequest> = s
        .pulls
        .iter()
        .filter(|p| want_state == "all" || p.state == want_state)
        .filter(|p| {
            head.is_none_or(|(o, r)| p.head_owner.eq_ignore_ascii_case(o) && p.head_ref == r)
        })
        .filter(|p| base.is_none_or(|b| p.base_ref == b))
        .collect();
    if sort == "updated" {
        pulls.sort_by(|a, b| {
            a.updated_at
                .cmp(&b.updated_at)
                .then(a.number.cmp(&b.number))
        });
    } else {
        pulls.sort_by_key(|p| p.number);
    }
    if direction == "desc" {
        pulls.reverse();
    }
    let (items, total_pages) = paginate(pulls, page, per_page);
    let body: Vec<Value> = items.iter().map(|p| s.pull_json(p)).collect();
    let mut headers = gh_headers();
    if page < total_pages {
        let base_url = format!("{}/repos/{}/{}/pulls", s.api_url(), s.owner, s.repo);
        let mut q: Vec<(String, String)> = inc
            .query
            .iter()
            .filter(|(k, _)| k != "page")
            .cloned()
            .collect();
        let link = |n: usize, q: &mut Vec<(String, String)>| {
            q.push(("page".to_string(), n.to_string()));
            let qs: Vec<String> = q
                .iter()
                .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
                .collect();
            q.pop();
            format!("{base_url}?{}", qs.join("&"))
        };
        let next = link(page + 1, &mut q);
        let last = link(total_pages, &mut q);
        headers.push((
            "link".to_string(),
            format!("<{next}>; rel=\"next\", <{last}>; rel=\"last\""),
        ));
    }
    respond(
        200,
        headers,
        "application/json; charset=utf-8",
        Value::Array(body).to_string(),
    )
}

async fn gh_create(state: &Arc<Mutex<GitHubState>>, body: Map<String, Value>) -> Response {
    let docs = GH_DOC_CREATE;
    let fields = [
        opt("title", Ty::Str),
        req("head", Ty::Str),
        req("base", Ty::Str),
        opt("body", Ty::Str),
        opt("draft", Ty::Bool),
        opt("maintainer_can_modify", Ty::Bool),
    ];
    if let Err(e) = check_fields(&body, &fields, &["head_repo", "issue"]) {
        return gh_field_error(docs, e);
    }
    let Some(title) = body.get("title").and_then(Value::as_str) else {
        return gh_validation(
            docs,
            json!([{"resource": "PullRequest", "code": "missing_field", "field": "title"}]),
        );
    };
    let head = body["head"].as_str().unwrap_or_default();
    let base = body["base"].as_str().unwrap_or_default().to_string();
    let (owner, git_dir) = {
        let s = lock(state);
        (s.owner.clone(), s.git_dir.clone())
    };
    let head_ref = match head.split_once(':') {
        Some((o, r)) if o.eq_ignore_ascii_case(&owner) => r.to_string(),
        Some(_) => {
            // A fork: the fake has one repository, so the head cannot exist.
            return gh_validation(
                docs,
                json!([{"resource": "PullRequest", "field": "head", "code": "invalid"}]),
            );
        }
        None => head.to_string(),
    };
    let branches = inspect_branches(git_dir, head_ref.clone(), base.clone()).await;
    let (Some(head_sha), Some(base_sha)) = (branches.head_sha.clone(), branches.base_sha.clone())
    else {
        let mut errors = Vec::new();
        if branches.base_sha.is_none() {
            errors.push(json!({"resource": "PullRequest", "field": "base", "code": "invalid"}));
        }
        if branches.head_sha.is_none() {
            errors.push(json!({"resource": "PullRequest", "field": "head", "code": "invalid"}));
        }
        return gh_validation(docs, Value::Array(errors));
    };
    let mut s = lock(state);
    if s.open_duplicate(&owner, &head_ref, &base, 0) {
        return gh_validation(
            docs,
            json!([{
                "resource": "PullRequest",
                "code": "custom",
                "message": format!("A pull request already exists for {owner}:{head_ref}."),
            }]),
        );
    }
    if !branches.ahead {
        return gh_validation(
            docs,
            json!([{
                "resource": "PullRequest",
                "code": "custom",
                "message": format!("No commits between {base} and {head_ref}"),
            }]),
        );
    }
    let login = s.login.clone();
    let number = s.new_pull(&login, title, &head_ref, &base, (head_sha, base_sha));
    let idx = s.pull_index(number).expect("just created");
    {
        let p = &mut s.pulls[idx];
        p.body = body.get("body").and_then(Value::as_str).map(str::to_string);
        p.draft = body.get("draft").and_then(Value::as_bool).unwrap_or(false);
        p.maintainer_can_modify = body
            .get("maintainer_can_modify")
            .and_then(Value::as_bool)
            .unwrap_or(false);
    }
    let location = format!(
        "{}/repos/{}/{}/pulls/{number}",
        s.api_url(),
        s.owner,
        s.repo
    );
    let json = s.pull_json(&s.pulls[idx]);
    let mut headers = gh_headers();
    headers.push(("location".to_string(), location));
    respond(
        201,
        headers,
        "application/json; charset=utf-8",
        json.to_string(),
    )
}

async fn gh_update(
    state: &Arc<Mutex<GitHubState>>,
    number: u64,
    body: Map<String, Value>,
) -> Response {
    let docs = GH_DOC_UPDATE;
    let fields = [
        opt("title", Ty::Str),
        opt("body", Ty::Str),
        opt("state", Ty::Str),
        opt("base", Ty::Str),
        opt("maintainer_can_modify", Ty::Bool),
    ];
    if let Err(e) = check_fields(&body, &fields, &[]) {
        return gh_field_error(docs, e);
    }
    let new_state = body.get("state").and_then(Value::as_str);
    if let Some(st) = new_state
        && st != "open"
        && st != "closed"
    {
        return gh_invalid(
            docs,
            &format!("For 'properties/state', \"{st}\" is not one of [\"open\", \"closed\"]."),
        );
    }
    let new_base = body.get("base").and_then(Value::as_str).map(str::to_string);
    let mut base_sha = None;
    if let Some(b) = &new_base {
        let git_dir = lock(state).git_dir.clone();
        let found = inspect_branches(git_dir, b.clone(), b.clone()).await;
        match found.base_sha {
            Some(sha) => base_sha = Some(sha),
            None => {
                return gh_validation(
                    docs,
                    json!([{"resource": "PullRequest", "field": "base", "code": "invalid"}]),
                );
            }
        }
    }
    let mut s = lock(state);
    let idx = s.pull_index(number).expect("checked");
    let p = s.pulls[idx].clone();
    let target_base = new_base.clone().unwrap_or_else(|| p.base_ref.clone());
    let reopening = new_state == Some("open") && !p.is_open();
    if (reopening || (p.is_open() && new_base.is_some() && new_state != Some("closed")))
        && s.open_duplicate(&p.head_owner, &p.head_ref, &target_base, number)
    {
        return gh_validation(
            docs,
            json!([{
                "resource": "PullRequest",
                "code": "custom",
                "message": format!("A pull request already exists for {}.", p.head_label()),
            }]),
        );
    }
    let now = now_rfc3339();
    let p = &mut s.pulls[idx];
    if let Some(t) = body.get("title").and_then(Value::as_str) {
        p.title = t.to_string();
    }
    if let Some(b) = body.get("body").and_then(Value::as_str) {
        p.body = Some(b.to_string());
    }
    if let Some(m) = body.get("maintainer_can_modify").and_then(Value::as_bool) {
        p.maintainer_can_modify = m;
    }
    if let Some(b) = new_base {
        p.base_ref = b;
        p.base_sha = base_sha.unwrap_or_default();
    }
    match new_state {
        Some("closed") if p.is_open() => {
            p.state = "closed".to_string();
            p.closed_at = Some(now.clone());
            p.auto_merge = None;
        }
        Some("open") if !p.is_open() => {
            p.state = "open".to_string();
            p.closed_at = None;
        }
        _ => {}
    }
    p.updated_at = now;
    let json = s.pull_json(&s.pulls[idx]);
    gh_json(200, json)
}

fn gh_comment(state: &Arc<Mutex<GitHubState>>, number: u64, body: Map<String, Value>) -> Response {
    if let Err(e) = check_fields(&body, &[req("body", Ty::Str)], &[]) {
        return gh_field_error(GH_DOC_COMMENT, e);
    }
    let mut s = lock(state);
    let id = s.next_comment_id;
    s.next_comment_id += 1;
    let comment = Comment {
        id: 900_000 + id,
        author: s.login.clone(),
        body: body["body"].as_str().unwrap_or_default().to_string(),
        created_at: now_rfc3339(),
    };
    let idx = s.pull_index(number).expect("checked");
    s.pulls[idx].comments.push(comment.clone());
    let json = s.comment_json(number, &comment);
    gh_json(201, json)
}

fn gh_labels(state: &Arc<Mutex<GitHubState>>, number: u64, body: Map<String, Value>) -> Response {
    if let Err(e) = check_fields(&body, &[req("labels", Ty::StrList)], &[]) {
        return gh_field_error(GH_DOC_LABELS, e);
    }
    let labels = str_list(&body["labels"]);
    if labels.iter().any(|l| l.trim().is_empty()) {
        return gh_validation(
            GH_DOC_LABELS,
            json!([{"resource": "Label", "field": "name", "code": "missing_field"}]),
        );
    }
    let mut s = lock(state);
    let idx = s.pull_index(number).expect("checked");
    let p = &mut s.pulls[idx];
    if labels.is_empty() {
        p.labels.clear();
    } else {
        push_unique(&mut p.labels, labels);
    }
    p.updated_at = now_rfc3339();
    let json: Vec<Value> = s.pulls[idx]
        .labels
        .iter()
        .map(|l| s.label_json(l))
        .collect();
    gh_json(200, Value::Array(json))
}

fn gh_assignees(
    state: &Arc<Mutex<GitHubState>>,
    number: u64,
    body: Map<String, Value>,
) -> Response {
    if let Err(e) = check_fields(&body, &[opt("assignees", Ty::StrList)], &[]) {
        return gh_field_error(GH_DOC_ASSIGNEES, e);
    }
    let mut s = lock(state);
    // Users without push access are silently ignored, as on GitHub.
    let wanted: Vec<String> = body
        .get("assignees")
        .map(str_list)
        .unwrap_or_default()
        .into_iter()
        .filter(|a| s.is_collaborator(a))
        .collect();
    let idx = s.pull_index(number).expect("checked");
    let p = &mut s.pulls[idx];
    push_unique(&mut p.assignees, wanted);
    p.updated_at = now_rfc3339();
    let json = s.issue_json(&s.pulls[idx]);
    gh_json(201, json)
}

fn gh_reviewers(
    state: &Arc<Mutex<GitHubState>>,
    number: u64,
    body: Map<String, Value>,
) -> Response {
    let docs = GH_DOC_REVIEWERS;
    let fields = [
        opt("reviewers", Ty::StrList),
        opt("team_reviewers", Ty::StrList),
    ];
    if let Err(e) = check_fields(&body, &fields, &[]) {
        return gh_field_error(docs, e);
    }
    if !body.contains_key("reviewers") && !body.contains_key("team_reviewers") {
        return gh_invalid(docs, "\"reviewers\" or \"team_reviewers\" wasn't supplied.");
    }
    let reviewers = body.get("reviewers").map(str_list).unwrap_or_default();
    let teams = body.get("team_reviewers").map(str_list).unwrap_or_default();
    let mut s = lock(state);
    let idx = s.pull_index(number).expect("checked");
    let author = s.pulls[idx].author.clone();
    if reviewers.iter().any(|r| r.eq_ignore_ascii_case(&author)) {
        return gh_validation(
            docs,
            json!([{"resource": "PullRequest", "code": "custom", "message": "Review cannot be requested from pull request author."}]),
        );
    }
    if reviewers.iter().any(|r| !s.is_collaborator(r)) {
        let message = format!(
            "Reviews may only be requested from collaborators. One or more of the users or teams you specified is not a collaborator of the {}/{} repository.",
            s.owner, s.repo
        );
        return gh_error(422, &message, docs);
    }
    let p = &mut s.pulls[idx];
    push_unique(&mut p.requested_reviewers, reviewers);
    push_unique(&mut p.requested_teams, teams);
    p.updated_at = now_rfc3339();
    let json = s.pull_json(&s.pulls[idx]);
    gh_json(201, json)
}

fn graphql_error(kind: &str, message: &str) -> Response {
    gh_json(
        200,
        json!({
            "data": {"enablePullRequestAutoMerge": null},
            "errors": [{
                "type": kind,
                "path": ["enablePullRequestAutoMerge"],
                "locations": [{"line": 2, "column": 3}],
                "message": message,
            }],
        }),
    )
}

fn github_graphql(state: &Arc<Mutex<GitHubState>>, inc: &Incoming) -> Response {
    let body = match json_object(inc) {
        Ok(b) => b,
        Err(p) => return gh_body_problem(GH_DOC_GRAPHQL, p),
    };
    let fields = [
        req("query", Ty::Str),
        opt("variables", Ty::Object),
        opt("operationName", Ty::Str),
    ];
    if let Err(e) = check_fields(&body, &fields, &[]) {
        return gh_field_error(GH_DOC_GRAPHQL, e);
    }
    let query = body["query"].as_str().unwrap_or_default();
    if !query.contains("enablePullRequestAutoMerge") {
        return gh_json(
            200,
            json!({"errors": [{"message": "fake: only the enablePullRequestAutoMerge mutation is implemented"}]}),
        );
    }
    if !query.trim_start().starts_with("mutation") {
        return gh_json(
            200,
            json!({"errors": [{"message": "fake: enablePullRequestAutoMerge must be sent as a mutation"}]}),
        );
    }
    let vars = body
        .get("variables")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let Some(id) = vars.get("pullRequestId").and_then(Value::as_str) else {
        return graphql_error(
            "FAKE",
            "fake: pass the pull request's node_id as variables.pullRequestId",
        );
    };
    let method = match vars.get("mergeMethod") {
        Some(Value::String(m)) => m.clone(),
        Some(_) => return graphql_error("INVALID", "mergeMethod must be a string"),
        None => ["MERGE", "SQUASH", "REBASE"]
            .iter()
            .find(|m| {
                query.contains(&format!("mergeMethod: {m}"))
                    || query.contains(&format!("mergeMethod:{m}"))
            })
            .map_or_else(|| "MERGE".to_string(), |m| m.to_string()),
    };
    if !["MERGE", "SQUASH", "REBASE"].contains(&method.as_str()) {
        return graphql_error(
            "INVALID",
            &format!("Argument 'mergeMethod' has an invalid value ({method})."),
        );
    }
    let mut s = lock(state);
    let Some(idx) = s.pulls.iter().position(|p| p.node_id == id) else {
        return graphql_error(
            "NOT_FOUND",
            &format!("Could not resolve to a node with the global id of '{id}'"),
        );
    };
    if let Some(message) = s.auto_merge_error.clone() {
        return graphql_error("UNPROCESSABLE", &message);
    }
    if !s.pulls[idx].is_open() {
        return graphql_error(
            "UNPROCESSABLE",
            "Pull request is not in the correct state to enable auto-merge",
        );
    }
    let login = s.login.clone();
    let now = now_rfc3339();
    s.pulls[idx].auto_merge = Some(AutoMerge {
        merge_method: method.clone(),
        enabled_by: login.clone(),
        enabled_at: now.clone(),
    });
    let p = &s.pulls[idx];
    gh_json(
        200,
        json!({
            "data": {
                "enablePullRequestAutoMerge": {
                    "clientMutationId": vars.get("clientMutationId").cloned().unwrap_or(Value::Null),
                    "pullRequest": {
                        "id": p.node_id,
                        "number": p.number,
                        "url": s.html_url(p.number),
                        "autoMergeRequest": {
                            "enabledAt": now,
                            "mergeMethod": method,
                            "enabledBy": {"login": login},
                        },
                    },
                },
            },
        }),
    )
}

// ---------------------------------------------------------------------------
// GitLab
// ---------------------------------------------------------------------------

/// A GitLab user, as `GET /users` answers.
#[derive(Clone, Debug, PartialEq)]
pub struct GitLabUser {
    pub id: u64,
    pub username: String,
    pub name: String,
}

impl GitLabUser {
    pub fn new(id: u64, username: &str) -> GitLabUser {
        GitLabUser {
            id,
            username: username.to_string(),
            name: username.to_string(),
        }
    }
}

/// How a [`GitLabFake`] starts.
#[derive(Clone, Debug)]
pub struct GitLabConfig {
    /// The full path, e.g. `acme/platform/gitops`.
    pub project_path: String,
    pub project_id: u64,
    pub token: String,
    /// The user the token belongs to: the author of created MRs.
    pub me: GitLabUser,
    /// Every user `GET /users?username=` can find; `me` is added.
    pub users: Vec<GitLabUser>,
    pub git_dir: Option<PathBuf>,
}

impl GitLabConfig {
    pub fn new(project_path: &str) -> GitLabConfig {
        GitLabConfig {
            project_path: project_path.to_string(),
            project_id: 42,
            token: "glpat-faketoken".to_string(),
            me: GitLabUser::new(1, "tagwatch-bot"),
            users: Vec::new(),
            git_dir: None,
        }
    }

    pub fn token(mut self, token: &str) -> Self {
        self.token = token.to_string();
        self
    }

    pub fn project_id(mut self, id: u64) -> Self {
        self.project_id = id;
        self
    }

    pub fn user(mut self, id: u64, username: &str) -> Self {
        self.users.push(GitLabUser::new(id, username));
        self
    }

    pub fn git_dir(mut self, dir: &Path) -> Self {
        self.git_dir = Some(dir.to_path_buf());
        self
    }
}

/// A merge request in the GitLab fake, with everything done to it.
#[derive(Clone, Debug, PartialEq)]
pub struct MergeRequest {
    pub id: u64,
    pub iid: u64,
    pub author_id: u64,
    pub title: String,
    pub description: Option<String>,
    /// `opened`, `closed` or `merged`.
    pub state: String,
    pub source_branch: String,
    pub target_branch: String,
    pub sha: String,
    pub labels: Vec<String>,
    pub assignee_ids: Vec<u64>,
    pub reviewer_ids: Vec<u64>,
    pub remove_source_branch: Option<bool>,
    pub squash: bool,
    pub allow_collaboration: bool,
    pub discussion_locked: Option<bool>,
    /// Auto-merge (merge when the pipeline succeeds) was set.
    pub auto_merge: bool,
    /// Which parameter set it: `auto_merge` or `merge_when_pipeline_succeeds`.
    pub auto_merge_param: Option<String>,
    pub notes: Vec<Comment>,
    pub created_at: String,
    pub updated_at: String,
    pub closed_at: Option<String>,
    pub merged_at: Option<String>,
}

impl MergeRequest {
    /// GitLab's rule: the title starts with `Draft:`, `[Draft]` or `(Draft)`,
    /// in any case.
    pub fn draft(&self) -> bool {
        let t = self.title.trim_start().to_ascii_lowercase();
        t.starts_with("draft:") || t.starts_with("[draft]") || t.starts_with("(draft)")
    }

    pub fn is_open(&self) -> bool {
        self.state == "opened"
    }
}

/// Everything the GitLab fake holds; tests may read and change it.
pub struct GitLabState {
    pub project_path: String,
    pub project_id: u64,
    pub token: String,
    pub me: GitLabUser,
    pub users: Vec<GitLabUser>,
    pub git_dir: Option<PathBuf>,
    pub merge_requests: Vec<MergeRequest>,
    pub requests: Vec<RequestRecord>,
    faults: Vec<FaultRule>,
    root_url: String,
    next_note_id: u64,
}

impl GitLabState {
    pub fn api_url(&self) -> String {
        format!("{}/api/v4", self.root_url)
    }

    pub fn web_url(&self) -> String {
        self.root_url.clone()
    }

    fn user(&self, id: u64) -> Option<&GitLabUser> {
        self.users.iter().find(|u| u.id == id)
    }

    fn user_json(&self, u: &GitLabUser) -> Value {
        json!({
            "id": u.id,
            "username": u.username,
            "name": u.name,
            "state": "active",
            "locked": false,
            "avatar_url": null,
            "web_url": format!("{}/{}", self.web_url(), u.username),
        })
    }

    fn mr_index(&self, iid: u64) -> Option<usize> {
        self.merge_requests.iter().position(|m| m.iid == iid)
    }

    fn open_duplicate(&self, source: &str, target: &str, not: u64) -> Option<u64> {
        self.merge_requests
            .iter()
            .find(|m| {
                m.iid != not
                    && m.is_open()
                    && m.source_branch == source
                    && m.target_branch == target
            })
            .map(|m| m.iid)
    }

    /// Known users among `ids`; `0` (or nothing) unassigns, as on GitLab.
    fn known_ids(&self, ids: &[u64]) -> Vec<u64> {
        let mut out = Vec::new();
        for id in ids {
            if *id != 0 && self.user(*id).is_some() && !out.contains(id) {
                out.push(*id);
            }
        }
        out
    }

    fn mr_json(&self, m: &MergeRequest) -> Value {
        let users = |ids: &[u64]| -> Vec<Value> {
            ids.iter()
                .filter_map(|id| self.user(*id))
                .map(|u| self.user_json(u))
                .collect()
        };
        let author = self
            .user(m.author_id)
            .map(|u| self.user_json(u))
            .unwrap_or(Value::Null);
        let head = json!({
            "id": m.id,
            "iid": m.iid,
            "project_id": self.project_id,
            "title": m.title,
            "description": m.description,
            "state": m.state,
            "created_at": m.created_at,
            "updated_at": m.updated_at,
            "merged_at": m.merged_at,
            "closed_at": m.closed_at,
            "target_branch": m.target_branch,
            "source_branch": m.source_branch,
            "source_project_id": self.project_id,
            "target_project_id": self.project_id,
            "upvotes": 0,
            "downvotes": 0,
        });
        // Two halves: one `json!` this large exceeds the macro recursion limit.
        let rest = json!({
            "author": author,
            "assignee": users(&m.assignee_ids).into_iter().next(),
            "assignees": users(&m.assignee_ids),
            "reviewers": users(&m.reviewer_ids),
            "labels": m.labels,
            "draft": m.draft(),
            "work_in_progress": m.draft(),
            "milestone": null,
            "merge_when_pipeline_succeeds": m.auto_merge,
            "merge_status": "can_be_merged",
            "detailed_merge_status": if m.draft() { "draft_status" } else { "mergeable" },
            "sha": m.sha,
            "merge_commit_sha": null,
            "squash_commit_sha": null,
            "user_notes_count": m.notes.len(),
            "discussion_locked": m.discussion_locked,
            "should_remove_source_branch": null,
            "force_remove_source_branch": m.remove_source_branch,
            "allow_collaboration": m.allow_collaboration,
            "squash": m.squash,
            "has_conflicts": false,
            "blocking_discussions_resolved": true,
            "web_url": format!("{}/{}/-/merge_requests/{}", self.web_url(), self.project_path, m.iid),
            "references": {
                "short": format!("!{}", m.iid),
                "relative": format!("!{}", m.iid),
                "full": format!("{}!{}", self.project_path, m.iid),
            },
        });
        merge_objects(head, rest)
    }

    fn note_json(&self, m: &MergeRequest, n: &Comment) -> Value {
        let author = self
            .users
            .iter()
            .find(|u| u.username == n.author)
            .map(|u| self.user_json(u))
            .unwrap_or(Value::Null);
        json!({
            "id": n.id,
            "type": null,
            "body": n.body,
            "author": author,
            "created_at": n.created_at,
            "updated_at": n.created_at,
            "system": false,
            "noteable_id": m.id,
            "noteable_type": "MergeRequest",
            "noteable_iid": m.iid,
            "project_id": self.project_id,
            "resolvable": false,
            "confidential": false,
            "internal": false,
        })
    }

    fn new_mr(
        &mut self,
        author_id: u64,
        title: &str,
        source: &str,
        target: &str,
        sha: String,
    ) -> u64 {
        let iid = self.merge_requests.iter().map(|m| m.iid).max().unwrap_or(0) + 1;
        let now = now_rfc3339();
        self.merge_requests.push(MergeRequest {
            id: 50_000 + iid,
            iid,
            author_id,
            title: title.to_string(),
            description: None,
            state: "opened".to_string(),
            source_branch: source.to_string(),
            target_branch: target.to_string(),
            sha,
            labels: Vec::new(),
            assignee_ids: Vec::new(),
            reviewer_ids: Vec::new(),
            remove_source_branch: None,
            squash: false,
            allow_collaboration: false,
            discussion_locked: None,
            auto_merge: false,
            auto_merge_param: None,
            notes: Vec::new(),
            created_at: now.clone(),
            updated_at: now,
            closed_at: None,
            merged_at: None,
        });
        iid
    }
}

/// A stateful fake of the GitLab REST API v4.
pub struct GitLabFake {
    state: Arc<Mutex<GitLabState>>,
    _server: Server,
}

impl GitLabFake {
    pub fn start(config: GitLabConfig) -> GitLabFake {
        let (listener, root_url) = bind();
        let mut users = vec![config.me.clone()];
        for u in config.users {
            if !users.iter().any(|x| x.id == u.id) {
                users.push(u);
            }
        }
        let state = Arc::new(Mutex::new(GitLabState {
            project_path: config.project_path,
            project_id: config.project_id,
            token: config.token,
            me: config.me,
            users,
            git_dir: config.git_dir,
            merge_requests: Vec::new(),
            requests: Vec::new(),
            faults: Vec::new(),
            root_url,
            next_note_id: 1,
        }));
        let shared = state.clone();
        let app = Router::new().fallback(move |req: Request| {
            let shared = shared.clone();
            async move { gitlab_handle(shared, req).await }
        });
        GitLabFake {
            state,
            _server: Server::run(listener, "fake-gitlab", app),
        }
    }

    /// The `api_url` to configure: `http://127.0.0.1:PORT/api/v4`.
    pub fn api_url(&self) -> String {
        self.state().api_url()
    }

    /// The state, locked. Do not hold it across a request to the fake.
    pub fn state(&self) -> MutexGuard<'_, GitLabState> {
        lock(&self.state)
    }

    pub fn set_token(&self, token: &str) {
        self.state().token = token.to_string();
    }

    pub fn set_git_dir(&self, dir: Option<&Path>) {
        self.state().git_dir = dir.map(Path::to_path_buf);
    }

    /// Adds (or renames) a user `GET /users?username=` can find.
    pub fn add_user(&self, id: u64, username: &str) {
        let mut s = self.state();
        s.users.retain(|u| u.id != id);
        s.users.push(GitLabUser::new(id, username));
    }

    pub fn fail_next(&self, matcher: Match, n: usize, fault: Fault) {
        self.state().faults.push(FaultRule {
            matcher,
            remaining: n,
            fault,
        });
    }

    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    /// An open MR that someone else opened.
    pub fn seed_merge_request(
        &self,
        author_id: u64,
        source: &str,
        target: &str,
        title: &str,
    ) -> u64 {
        let mut s = self.state();
        s.new_mr(author_id, title, source, target, fake_sha(source))
    }

    pub fn merge_requests(&self) -> Vec<MergeRequest> {
        self.state().merge_requests.clone()
    }

    pub fn merge_request(&self, iid: u64) -> Option<MergeRequest> {
        self.state()
            .merge_requests
            .iter()
            .find(|m| m.iid == iid)
            .cloned()
    }

    pub fn open_merge_requests(&self) -> Vec<MergeRequest> {
        self.state()
            .merge_requests
            .iter()
            .filter(|m| m.is_open())
            .cloned()
            .collect()
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state().requests.clone()
    }

    pub fn count(&self, route: &str) -> usize {
        self.state()
            .requests
            .iter()
            .filter(|r| r.route == route)
            .count()
    }

    pub fn create_calls(&self) -> usize {
        self.count("mr.create")
    }
}

fn gl_json(status: u16, body: Value) -> Response {
    respond(status, Vec::new(), "application/json", body.to_string())
}

/// Grape's parameter errors: `{"error": "..."}`.
fn gl_param_error(status: u16, error: &str) -> Response {
    gl_json(status, json!({ "error": error }))
}

fn gl_field_error(e: FieldError) -> Response {
    match e {
        FieldError::Unknown(k) => gl_param_error(
            422,
            &format!(
                "{k} is not a parameter of this endpoint (fake: unknown fields are rejected; GitLab ignores them)"
            ),
        ),
        FieldError::Unsupported(k) => gl_param_error(
            422,
            &format!("{k} is documented by GitLab but not implemented by the fake"),
        ),
        FieldError::Missing(m) => {
            let list: Vec<String> = m.iter().map(|f| format!("{f} is missing")).collect();
            gl_param_error(400, &list.join(", "))
        }
        FieldError::WrongType { field, .. } => gl_param_error(400, &format!("{field} is invalid")),
    }
}

fn gl_body_problem(p: BodyProblem) -> Response {
    match p {
        BodyProblem::ContentType(ct) => gl_param_error(
            415,
            &format!(
                "fake: a JSON body needs Content-Type: application/json (got {})",
                ct.as_deref().unwrap_or("none")
            ),
        ),
        BodyProblem::NotJson => gl_json(
            400,
            json!({"message": "400 Bad request - body is not valid JSON"}),
        ),
        BodyProblem::NotObject => gl_json(
            400,
            json!({"message": "400 Bad request - body should be a JSON object"}),
        ),
    }
}

fn gl_fault(f: &Fault) -> Response {
    match f {
        Fault::RateLimit { reset_in_secs } => {
            let reset = epoch_in(*reset_in_secs);
            respond(
                429,
                vec![
                    ("retry-after".to_string(), reset_in_secs.to_string()),
                    (
                        "ratelimit-name".to_string(),
                        "throttle_authenticated_api".to_string(),
                    ),
                    ("ratelimit-limit".to_string(), "2000".to_string()),
                    ("ratelimit-observed".to_string(), "2001".to_string()),
                    ("ratelimit-remaining".to_string(), "0".to_string()),
                    ("ratelimit-reset".to_string(), reset.to_string()),
                    ("ratelimit-resettime".to_string(), http_date(reset)),
                ],
                "text/plain",
                "Retry later\n".to_string(),
            )
        }
        Fault::SecondaryRateLimit {
            status,
            retry_after_secs,
        } => respond(
            *status,
            vec![("retry-after".to_string(), retry_after_secs.to_string())],
            "text/plain",
            "Retry later\n".to_string(),
        ),
        Fault::Status(status) => gl_json(
            *status,
            json!({"message": format!("{status} {}", reason(*status))}),
        ),
        Fault::Response {
            status,
            headers,
            body,
        } => {
            let ct = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| "application/json".to_string());
            let rest = headers
                .iter()
                .filter(|(k, _)| !k.eq_ignore_ascii_case("content-type"))
                .cloned()
                .collect();
            respond(*status, rest, &ct, body.clone())
        }
        Fault::Delay(_) => unreachable!("a delay is handled before answering"),
    }
}

const GL_MRS: &[(&str, &str)] = &[("GET", "mr.list"), ("POST", "mr.create")];
const GL_MR: &[(&str, &str)] = &[("GET", "mr.get"), ("PUT", "mr.update")];
const GL_NOTES: &[(&str, &str)] = &[("POST", "mr.note")];
const GL_MERGE: &[(&str, &str)] = &[("PUT", "mr.merge")];
const GL_USERS: &[(&str, &str)] = &[("GET", "users.list")];

fn gitlab_resolve(method: &str, path: &str) -> (String, Resolved) {
    let Some(api_path) = path.strip_prefix("/api/v4").filter(|r| r.starts_with('/')) else {
        return (path.to_string(), Resolved::NotFound);
    };
    let Some(segs) = segments(api_path) else {
        return (api_path.to_string(), Resolved::NotFound);
    };
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let p = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let resolved = match s.as_slice() {
        ["projects", id, "merge_requests"] if !id.is_empty() => by_method(method, GL_MRS, p(&[id])),
        ["projects", id, "merge_requests", iid] if is_number(iid) => {
            by_method(method, GL_MR, p(&[id, iid]))
        }
        ["projects", id, "merge_requests", iid, "notes"] if is_number(iid) => {
            by_method(method, GL_NOTES, p(&[id, iid]))
        }
        ["projects", id, "merge_requests", iid, "merge"] if is_number(iid) => {
            by_method(method, GL_MERGE, p(&[id, iid]))
        }
        ["users"] => by_method(method, GL_USERS, Vec::new()),
        _ => Resolved::NotFound,
    };
    (api_path.to_string(), resolved)
}

async fn gitlab_handle(state: Arc<Mutex<GitLabState>>, req: Request) -> Response {
    let inc = Incoming::read(req).await;
    let (api_path, resolved) = gitlab_resolve(&inc.method, &inc.path);
    let (idx, fault) = {
        let mut guard = lock(&state);
        let s = &mut *guard;
        s.requests.push(inc.record(&api_path, resolved.name()));
        let idx = s.requests.len() - 1;
        (idx, take_fault(&mut s.faults, &s.requests[idx]))
    };
    let (response, injected) = match fault {
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            (gitlab_serve(&state, &inc, resolved).await, false)
        }
        Some(f) => (gl_fault(&f), true),
        None => (gitlab_serve(&state, &inc, resolved).await, false),
    };
    if let Some(r) = lock(&state).requests.get_mut(idx) {
        r.status = response.status().as_u16();
        r.injected = injected;
    }
    response
}

async fn gitlab_serve(
    state: &Arc<Mutex<GitLabState>>,
    inc: &Incoming,
    resolved: Resolved,
) -> Response {
    let token = lock(state).token.clone();
    let sent = inc.header("private-token").map(str::to_string).or_else(|| {
        let v = inc.header("authorization")?.trim();
        let (scheme, rest) = v.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| rest.trim().to_string())
    });
    if sent.as_deref() != Some(token.as_str()) {
        return gl_json(401, json!({"message": "401 Unauthorized"}));
    }
    let (name, params) = match resolved {
        Resolved::NotFound => return gl_json(404, json!({"error": "404 Not Found"})),
        Resolved::WrongMethod(allowed) => {
            let allow = allowed.join(", ");
            return respond(
                405,
                vec![("allow".to_string(), allow.clone())],
                "application/json",
                json!({"error": format!("405 Not Allowed (fake: use {allow})")}).to_string(),
            );
        }
        Resolved::Route { name, params } => (name, params),
    };
    if name == "users.list" {
        return gl_users(state, inc);
    }
    {
        let s = lock(state);
        let id = &params[0];
        let ours = id.eq_ignore_ascii_case(&s.project_path) || *id == s.project_id.to_string();
        if !ours {
            return gl_json(404, json!({"message": "404 Project Not Found"}));
        }
    }
    if inc.is_write()
        && let Some((k, _)) = inc.query.first()
    {
        return gl_param_error(
            422,
            &format!(
                "fake: {k} was sent in the query string; send the parameters of a write in the JSON body"
            ),
        );
    }
    let body = if inc.is_write() {
        match json_object(inc) {
            Ok(b) => b,
            Err(p) => return gl_body_problem(p),
        }
    } else {
        Map::new()
    };
    let iid = params.get(1).and_then(|n| n.parse::<u64>().ok());
    if let Some(iid) = iid
        && lock(state).mr_index(iid).is_none()
    {
        return gl_json(404, json!({"message": "404 Not found"}));
    }
    match (name, iid) {
        ("mr.list", _) => gl_list(state, inc),
        ("mr.create", _) => gl_create(state, body).await,
        ("mr.get", Some(iid)) => {
            let s = lock(state);
            let m = &s.merge_requests[s.mr_index(iid).expect("checked")];
            gl_json(200, s.mr_json(m))
        }
        ("mr.update", Some(iid)) => gl_update(state, iid, body).await,
        ("mr.note", Some(iid)) => gl_note(state, iid, body),
        ("mr.merge", Some(iid)) => gl_merge(state, iid, body).await,
        _ => gl_json(404, json!({"error": "404 Not Found"})),
    }
}

fn gl_users(state: &Arc<Mutex<GitLabState>>, inc: &Incoming) -> Response {
    if let Some(k) = unknown_query(&inc.query, &["username", "page", "per_page"]) {
        return gl_param_error(
            422,
            &format!("{k} is not implemented by the fake (use username)"),
        );
    }
    let s = lock(state);
    let found: Vec<Value> = match inc.query_param("username") {
        Some(name) => s
            .users
            .iter()
            .filter(|u| u.username.eq_ignore_ascii_case(name))
            .map(|u| s.user_json(u))
            .collect(),
        None => s.users.iter().map(|u| s.user_json(u)).collect(),
    };
    gl_json(200, Value::Array(found))
}

fn gl_list(state: &Arc<Mutex<GitLabState>>, inc: &Incoming) -> Response {
    let allowed = [
        "state",
        "source_branch",
        "target_branch",
        "labels",
        "order_by",
        "sort",
        "page",
        "per_page",
    ];
    if let Some(k) = unknown_query(&inc.query, &allowed) {
        return gl_param_error(
            422,
            &format!("{k} is not a parameter the fake implements for this endpoint"),
        );
    }
    // GitLab's default is `all`, not `opened`.
    let want = inc.query_param("state").unwrap_or("all");
    if !["opened", "closed", "locked", "merged", "all"].contains(&want) {
        return gl_param_error(400, "state does not have a valid value");
    }
    let order_by = inc.query_param("order_by").unwrap_or("created_at");
    if !["created_at", "updated_at"].contains(&order_by) {
        return gl_param_error(400, "order_by does not have a valid value");
    }
    let sort = inc.query_param("sort").unwrap_or("desc");
    if !["asc", "desc"].contains(&sort) {
        return gl_param_error(400, "sort does not have a valid value");
    }
    let (page, per_page) = match page_params(inc, 20) {
        Ok(x) => x,
        Err(k) => return gl_param_error(400, &format!("{k} is invalid")),
    };
    let labels: Vec<String> = inc
        .query_param("labels")
        .map(|l| str_list(&Value::String(l.to_string())))
        .unwrap_or_default();
    let s = lock(state);
    let mut mrs: Vec<&MergeRequest> = s
        .merge_requests
        .iter()
        .filter(|m| want == "all" || m.state == want)
        .filter(|m| {
            inc.query_param("source_branch")
                .is_none_or(|b| m.source_branch == b)
        })
        .filter(|m| {
            inc.query_param("target_branch")
                .is_none_or(|b| m.target_branch == b)
        })
        .filter(|m| labels.iter().all(|l| m.labels.contains(l)))
        .collect();
    if order_by == "updated_at" {
        mrs.sort_by(|a, b| a.updated_at.cmp(&b.updated_at).then(a.iid.cmp(&b.iid)));
    } else {
        mrs.sort_by_key(|m| m.iid);
    }
    if sort == "desc" {
        mrs.reverse();
    }
    let total = mrs.len();
    let (items, total_pages) = paginate(mrs, page, per_page);
    let body: Vec<Value> = items.iter().map(|m| s.mr_json(m)).collect();
    let mut headers = vec![
        ("x-page".to_string(), page.to_string()),
        ("x-per-page".to_string(), per_page.to_string()),
        ("x-total".to_string(), total.to_string()),
        ("x-total-pages".to_string(), total_pages.to_string()),
    ];
    headers.push((
        "x-next-page".to_string(),
        if page < total_pages {
            (page + 1).to_string()
        } else {
            String::new()
        },
    ));
    respond(
        200,
        headers,
        "application/json",
        Value::Array(body).to_string(),
    )
}

/// The user ids in `list`, or the single id in `single`.
fn id_list(body: &Map<String, Value>, list: &str, single: Option<&str>) -> Option<Vec<u64>> {
    if let Some(v) = body.get(list).and_then(Value::as_array) {
        return Some(v.iter().filter_map(Value::as_u64).collect());
    }
    single
        .and_then(|k| body.get(k))
        .and_then(Value::as_u64)
        .map(|id| vec![id])
}

async fn gl_create(state: &Arc<Mutex<GitLabState>>, body: Map<String, Value>) -> Response {
    let fields = [
        req("source_branch", Ty::Str),
        req("target_branch", Ty::Str),
        req("title", Ty::Str),
        opt("description", Ty::Str),
        opt("labels", Ty::StrOrStrList),
        opt("assignee_id", Ty::Int),
        opt("assignee_ids", Ty::IntList),
        opt("reviewer_ids", Ty::IntList),
        opt("remove_source_branch", Ty::Bool),
        opt("squash", Ty::Bool),
        opt("allow_collaboration", Ty::Bool),
    ];
    let unsupported = [
        "target_project_id",
        "milestone_id",
        "merge_after",
        "approvals_before_merge",
        "allow_maintainer_to_push",
    ];
    if let Err(e) = check_fields(&body, &fields, &unsupported) {
        return gl_field_error(e);
    }
    let source = body["source_branch"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let target = body["target_branch"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let title = body["title"].as_str().unwrap_or_default().to_string();
    if title.trim().is_empty() {
        return gl_param_error(400, "title is empty");
    }
    if source == target {
        return gl_json(
            422,
            json!({"message": ["You can't use same project/branch for source and target"]}),
        );
    }
    let git_dir = lock(state).git_dir.clone();
    let branches = inspect_branches(git_dir, source.clone(), target.clone()).await;
    if branches.head_sha.is_none() {
        return gl_json(
            400,
            json!({"message": {"source_branch": ["does not exist"]}}),
        );
    }
    if branches.base_sha.is_none() {
        return gl_json(
            400,
            json!({"message": {"target_branch": ["does not exist"]}}),
        );
    }
    let mut s = lock(state);
    if let Some(other) = s.open_duplicate(&source, &target, 0) {
        return gl_json(
            409,
            json!({"message": [format!("Another open merge request already exists for this source branch: !{other}")]}),
        );
    }
    let assignees = id_list(&body, "assignee_ids", Some("assignee_id"))
        .map(|ids| s.known_ids(&ids))
        .unwrap_or_default();
    let reviewers = id_list(&body, "reviewer_ids", None)
        .map(|ids| s.known_ids(&ids))
        .unwrap_or_default();
    let me = s.me.id;
    let iid = s.new_mr(
        me,
        &title,
        &source,
        &target,
        branches.head_sha.unwrap_or_default(),
    );
    let idx = s.mr_index(iid).expect("just created");
    let m = &mut s.merge_requests[idx];
    m.description = body
        .get("description")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(l) = body.get("labels") {
        push_unique(&mut m.labels, str_list(l));
    }
    m.assignee_ids = assignees;
    m.reviewer_ids = reviewers;
    m.remove_source_branch = body.get("remove_source_branch").and_then(Value::as_bool);
    m.squash = body.get("squash").and_then(Value::as_bool).unwrap_or(false);
    m.allow_collaboration = body
        .get("allow_collaboration")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let json = s.mr_json(&s.merge_requests[idx]);
    gl_json(201, json)
}

async fn gl_update(
    state: &Arc<Mutex<GitLabState>>,
    iid: u64,
    body: Map<String, Value>,
) -> Response {
    let fields = [
        opt("title", Ty::Str),
        opt("description", Ty::Str),
        opt("state_event", Ty::Str),
        opt("labels", Ty::StrOrStrList),
        opt("add_labels", Ty::StrOrStrList),
        opt("remove_labels", Ty::StrOrStrList),
        opt("assignee_id", Ty::Int),
        opt("assignee_ids", Ty::IntList),
        opt("reviewer_ids", Ty::IntList),
        opt("remove_source_branch", Ty::Bool),
        opt("squash", Ty::Bool),
        opt("target_branch", Ty::Str),
        opt("discussion_locked", Ty::Bool),
        opt("allow_collaboration", Ty::Bool),
    ];
    let unsupported = ["milestone_id", "merge_after", "allow_maintainer_to_push"];
    if let Err(e) = check_fields(&body, &fields, &unsupported) {
        return gl_field_error(e);
    }
    if body.is_empty() {
        let names: Vec<&str> = fields.iter().map(|f| f.name).collect();
        return gl_param_error(
            400,
            &format!(
                "{} are missing, at least one parameter must be provided",
                names.join(", ")
            ),
        );
    }
    let state_event = body.get("state_event").and_then(Value::as_str);
    if state_event.is_some_and(|e| e != "close" && e != "reopen") {
        return gl_param_error(400, "state_event does not have a valid value");
    }
    if body
        .get("title")
        .and_then(Value::as_str)
        .is_some_and(|t| t.trim().is_empty())
    {
        return gl_param_error(400, "title is empty");
    }
    let new_target = body
        .get("target_branch")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(t) = &new_target {
        let git_dir = lock(state).git_dir.clone();
        if inspect_branches(git_dir, t.clone(), t.clone())
            .await
            .base_sha
            .is_none()
        {
            return gl_json(
                400,
                json!({"message": {"target_branch": ["does not exist"]}}),
            );
        }
    }
    let mut s = lock(state);
    let idx = s.mr_index(iid).expect("checked");
    let current = s.merge_requests[idx].clone();
    let target = new_target
        .clone()
        .unwrap_or_else(|| current.target_branch.clone());
    let will_be_open = match state_event {
        Some("reopen") => current.state != "merged",
        Some("close") => false,
        _ => current.is_open(),
    };
    if will_be_open && let Some(other) = s.open_duplicate(&current.source_branch, &target, iid) {
        return gl_json(
            409,
            json!({"message": [format!("Another open merge request already exists for this source branch: !{other}")]}),
        );
    }
    let assignees =
        id_list(&body, "assignee_ids", Some("assignee_id")).map(|ids| s.known_ids(&ids));
    let reviewers = id_list(&body, "reviewer_ids", None).map(|ids| s.known_ids(&ids));
    let now = now_rfc3339();
    let m = &mut s.merge_requests[idx];
    if let Some(t) = body.get("title").and_then(Value::as_str) {
        m.title = t.to_string();
    }
    if let Some(d) = body.get("description").and_then(Value::as_str) {
        m.description = Some(d.to_string());
    }
    if let Some(l) = body.get("labels") {
        m.labels.clear();
        push_unique(&mut m.labels, str_list(l));
    }
    if let Some(l) = body.get("add_labels") {
        push_unique(&mut m.labels, str_list(l));
    }
    if let Some(l) = body.get("remove_labels") {
        let gone = str_list(l);
        m.labels.retain(|x| !gone.contains(x));
    }
    if let Some(a) = assignees {
        m.assignee_ids = a;
    }
    if let Some(r) = reviewers {
        m.reviewer_ids = r;
    }
    if let Some(b) = body.get("remove_source_branch").and_then(Value::as_bool) {
        m.remove_source_branch = Some(b);
    }
    if let Some(b) = body.get("squash").and_then(Value::as_bool) {
        m.squash = b;
    }
    if let Some(b) = body.get("discussion_locked").and_then(Value::as_bool) {
        m.discussion_locked = Some(b);
    }
    if let Some(b) = body.get("allow_collaboration").and_then(Value::as_bool) {
        m.allow_collaboration = b;
    }
    if let Some(t) = new_target {
        m.target_branch = t;
    }
    match state_event {
        Some("close") if m.is_open() => {
            m.state = "closed".to_string();
            m.closed_at = Some(now.clone());
            m.auto_merge = false;
        }
        Some("reopen") if m.state == "closed" => {
            m.state = "opened".to_string();
            m.closed_at = None;
        }
        _ => {}
    }
    m.updated_at = now;
    let json = s.mr_json(&s.merge_requests[idx]);
    gl_json(200, json)
}

fn gl_note(state: &Arc<Mutex<GitLabState>>, iid: u64, body: Map<String, Value>) -> Response {
    let fields = [req("body", Ty::Str), opt("internal", Ty::Bool)];
    if let Err(e) = check_fields(
        &body,
        &fields,
        &["created_at", "merge_request_diff_head_sha"],
    ) {
        return gl_field_error(e);
    }
    let text = body["body"].as_str().unwrap_or_default().to_string();
    if text.trim().is_empty() {
        return gl_param_error(400, "body is empty");
    }
    let mut s = lock(state);
    let id = s.next_note_id;
    s.next_note_id += 1;
    let note = Comment {
        id: 700_000 + id,
        author: s.me.username.clone(),
        body: text,
        created_at: now_rfc3339(),
    };
    let idx = s.mr_index(iid).expect("checked");
    s.merge_requests[idx].notes.push(note.clone());
    let json = s.note_json(&s.merge_requests[idx], &note);
    gl_json(201, json)
}

async fn gl_merge(state: &Arc<Mutex<GitLabState>>, iid: u64, body: Map<String, Value>) -> Response {
    let fields = [
        opt("merge_commit_message", Ty::Str),
        opt("squash_commit_message", Ty::Str),
        opt("squash", Ty::Bool),
        opt("should_remove_source_branch", Ty::Bool),
        opt("merge_when_pipeline_succeeds", Ty::Bool),
        opt("auto_merge", Ty::Bool),
        opt("sha", Ty::Str),
    ];
    if let Err(e) = check_fields(&body, &fields, &[]) {
        return gl_field_error(e);
    }
    let (source, git_dir, open) = {
        let s = lock(state);
        let m = &s.merge_requests[s.mr_index(iid).expect("checked")];
        (m.source_branch.clone(), s.git_dir.clone(), m.is_open())
    };
    if !open {
        return gl_json(405, json!({"message": "405 Method Not Allowed"}));
    }
    if let (Some(sha), Some(_)) = (body.get("sha").and_then(Value::as_str), &git_dir) {
        let head = inspect_branches(git_dir, source.clone(), source)
            .await
            .head_sha
            .unwrap_or_default();
        if head != sha {
            return gl_json(
                409,
                json!({"message": format!("SHA does not match HEAD of source branch: {head}")}),
            );
        }
    }
    let param = ["auto_merge", "merge_when_pipeline_succeeds"]
        .into_iter()
        .find(|k| body.get(*k).and_then(Value::as_bool) == Some(true));
    let mut s = lock(state);
    let idx = s.mr_index(iid).expect("checked");
    let now = now_rfc3339();
    let m = &mut s.merge_requests[idx];
    if let Some(b) = body.get("squash").and_then(Value::as_bool) {
        m.squash = b;
    }
    match param {
        Some(p) => {
            m.auto_merge = true;
            m.auto_merge_param = Some(p.to_string());
        }
        None => {
            m.state = "merged".to_string();
            m.merged_at = Some(now.clone());
        }
    }
    m.updated_at = now;
    let json = s.mr_json(&s.merge_requests[idx]);
    gl_json(200, json)
}
