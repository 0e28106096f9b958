//! What both fakes share: the request log, fault injection, the serve
//! path (one [`Fake`] handle, one [`handle`] that logs a request, applies
//! a queued fault or hands it to the service, and records the status), the
//! HTTP plumbing, and request-body validation. The GitHub and GitLab
//! services ([`super::github`], [`super::gitlab`]) supply only their
//! routes, their handlers and how each fault looks on their wire.

use std::future::{Future, IntoFuture};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value};
use tokio::sync::oneshot;

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

pub(super) type Predicate = Arc<dyn Fn(&RequestRecord) -> bool + Send + Sync>;

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
    /// A 200 whose body has no length and does not end (up to 4 GiB),
    /// produced lazily; `sent` counts the bytes handed to the connection.
    Endless { sent: Arc<AtomicUsize> },
    /// Handle the request normally (a create does create), then lose the
    /// answer: its head goes out, its body breaks off, the connection
    /// closes. What a client sees when a proxy or the network drops it.
    LoseAnswer,
}

struct FaultRule {
    matcher: Match,
    remaining: usize,
    fault: Fault,
}

/// Every request a fake received and the faults still queued: the part of
/// a fake's state that [`handle`] owns.
#[derive(Default)]
pub struct Log {
    pub requests: Vec<RequestRecord>,
    faults: Vec<FaultRule>,
}

impl Log {
    /// Logs `record`; returns its index and the fault it takes, if any.
    fn arrive(&mut self, record: RequestRecord) -> (usize, Option<Fault>) {
        self.requests.push(record);
        let idx = self.requests.len() - 1;
        let record = &self.requests[idx];
        let found = self
            .faults
            .iter_mut()
            .find(|r| r.remaining > 0 && r.matcher.matches(record))
            .map(|r| {
                r.remaining -= 1;
                r.fault.clone()
            });
        self.faults.retain(|r| r.remaining > 0);
        (idx, found)
    }
}

/// One fake API: how it resolves paths, serves a request, and dresses a
/// fault. Everything else (logging, faults, delays, the server thread) is
/// [`handle`] and [`Fake`], written once.
pub(super) trait Service: Send + 'static {
    /// The server thread's name.
    const THREAD: &'static str;
    fn log(&mut self) -> &mut Log;
    /// The API path (relative to the API root) and the route.
    fn resolve(&self, inc: &Incoming) -> (String, Resolved);
    /// `fault` as this service would answer it.
    fn fault(fault: &Fault) -> Response;
    fn serve<'a>(
        state: &'a Arc<Mutex<Self>>,
        inc: &'a Incoming,
        resolved: Resolved,
    ) -> Pin<Box<dyn Future<Output = Response> + Send + 'a>>;
}

/// The one serve path: log, apply a queued fault or serve, record the
/// status answered.
async fn handle<S: Service>(state: Arc<Mutex<S>>, req: Request) -> Response {
    let inc = Incoming::read(req).await;
    let (api_path, resolved) = lock(&state).resolve(&inc);
    let (idx, fault) = lock(&state)
        .log()
        .arrive(inc.record(&api_path, resolved.name()));
    let (response, injected) = match fault {
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            (S::serve(&state, &inc, resolved).await, false)
        }
        Some(Fault::Endless { sent }) => (endless(sent), true),
        Some(Fault::LoseAnswer) => {
            let served = S::serve(&state, &inc, resolved).await;
            let status = served.status().as_u16();
            (
                respond(status, Vec::new(), "application/json", Body::new(Broken)),
                true,
            )
        }
        Some(f) => (S::fault(&f), true),
        None => (S::serve(&state, &inc, resolved).await, false),
    };
    if let Some(r) = lock(&state).log().requests.get_mut(idx) {
        r.status = response.status().as_u16();
        r.injected = injected;
    }
    response
}

/// A 200 whose JSON-looking body never ends and has no length, counting in
/// `sent` what it produced: a client that reads answers whole would never
/// finish. Produced lazily from one static chunk, so the fake's own memory
/// stays flat.
fn endless(sent: Arc<AtomicUsize>) -> Response {
    respond(
        200,
        Vec::new(),
        "application/json",
        Body::new(Endless {
            // 4 GiB at most, so a runaway client still ends.
            left: 1 << 16,
            sent,
        }),
    )
}

/// A body that fails at once: hyper drops the connection mid-answer.
struct Broken;

impl hyper::body::Body for Broken {
    type Data = axum::body::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::task::Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "fake: the answer was lost",
        ))))
    }
}

static SPACES: [u8; 64 << 10] = [b' '; 64 << 10];

struct Endless {
    left: usize,
    sent: Arc<AtomicUsize>,
}

impl hyper::body::Body for Endless {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if this.left == 0 {
            return std::task::Poll::Ready(None);
        }
        this.left -= 1;
        this.sent.fetch_add(SPACES.len(), Ordering::Relaxed);
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(
            axum::body::Bytes::from_static(&SPACES),
        ))))
    }
}

/// A running fake: its state and the server thread serving it; stopped on
/// drop. `GitHubFake` and `GitLabFake` are this over their state.
pub struct Fake<S> {
    state: Arc<Mutex<S>>,
    _server: Server,
}

// `Service` names the fakes' internals (`Incoming`, `Resolved`), so it stays
// private to the fakes; tests only ever see `GitHubFake` and `GitLabFake`.
#[allow(private_bounds)]
impl<S: Service> Fake<S> {
    pub(super) fn serve(listener: std::net::TcpListener, state: S) -> Fake<S> {
        let state = Arc::new(Mutex::new(state));
        let shared = state.clone();
        let app = Router::new().fallback(move |req: Request| {
            let shared = shared.clone();
            async move { handle(shared, req).await }
        });
        Fake {
            state,
            _server: Server::run(listener, S::THREAD, app),
        }
    }

    /// The state, locked. Do not hold it across a request to the fake.
    pub fn state(&self) -> MutexGuard<'_, S> {
        lock(&self.state)
    }

    /// Answers the next `n` requests matching `matcher` with `fault`.
    pub fn fail_next(&self, matcher: Match, n: usize, fault: Fault) {
        self.state().log().faults.push(FaultRule {
            matcher,
            remaining: n,
            fault,
        });
    }

    pub fn clear_faults(&self) {
        self.state().log().faults.clear();
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state().log().requests.clone()
    }

    /// Requests resolved to `route` (whatever they were answered).
    pub fn count(&self, route: &str) -> usize {
        self.state()
            .log()
            .requests
            .iter()
            .filter(|r| r.route == route)
            .count()
    }

    /// The answers with a 4xx status the fake gave of its own accord (an
    /// injected fault is the test's doing), as `METHOD path status body`.
    pub fn client_errors(&self) -> Vec<String> {
        self.state()
            .log()
            .requests
            .iter()
            .filter(|r| (400..500).contains(&r.status) && !r.injected)
            .map(|r| format!("{} {} {} {}", r.method, r.path, r.status, r.raw_body))
            .collect()
    }

    /// Panics unless every answer was below 400 or a server error: pull
    /// request options that the forge refuses are only logged by tagwatch,
    /// so a happy path that silently sent a bad request shows up only here.
    pub fn assert_no_client_errors(&self) {
        let errors = self.client_errors();
        assert!(
            errors.is_empty(),
            "the fake answered 4xx:\n{}",
            errors.join("\n")
        );
    }
}

// ---------------------------------------------------------------------------
// HTTP plumbing
// ---------------------------------------------------------------------------

/// The background thread and runtime serving one fake; stopped on drop.
struct Server {
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

pub(super) fn bind() -> (std::net::TcpListener, String) {
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

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking handler must not hide the log from the test.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(super) struct Incoming {
    pub(super) at: Instant,
    pub(super) method: String,
    pub(super) path: String,
    pub(super) query: Vec<(String, String)>,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
}

impl Incoming {
    pub(super) async fn read(req: Request) -> Incoming {
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

    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn record(&self, api_path: &str, route: &'static str) -> RequestRecord {
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

    pub(super) fn is_write(&self) -> bool {
        matches!(self.method.as_str(), "POST" | "PUT" | "PATCH")
    }
}

pub(super) fn hex_digit(c: u8) -> Option<u8> {
    (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

pub(super) fn percent_decode(s: &str, plus_is_space: bool) -> String {
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

pub(super) fn percent_encode(s: &str) -> String {
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

pub(super) fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

/// Splits an API path into decoded segments; `None` unless it starts with `/`.
pub(super) fn segments(api_path: &str) -> Option<Vec<String>> {
    let rest = api_path.strip_prefix('/')?;
    Some(rest.split('/').map(|s| percent_decode(s, false)).collect())
}

pub(super) enum Resolved {
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

pub(super) fn by_method(
    method: &str,
    table: &[(&'static str, &'static str)],
    params: Vec<String>,
) -> Resolved {
    match table.iter().find(|(m, _)| *m == method) {
        Some((_, name)) => Resolved::Route { name, params },
        None => Resolved::WrongMethod(table.iter().map(|(m, _)| *m).collect()),
    }
}

pub(super) fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

pub(super) fn respond(
    status: u16,
    headers: Vec<(String, String)>,
    content_type: &str,
    body: impl Into<Body>,
) -> Response {
    let mut b = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", content_type);
    for (k, v) in &headers {
        b = b.header(k.as_str(), v.as_str());
    }
    b.body(body.into()).expect("a valid response")
}

pub(super) fn reason(status: u16) -> &'static str {
    StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
}

/// Epoch seconds `secs` from now, rounded up so that waiting until then
/// waits at least `secs`.
pub(super) fn epoch_in(secs: u64) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let sub = u64::from(now.subsec_nanos() > 0);
    now.as_secs() + sub + secs
}

pub(super) fn now_rfc3339() -> String {
    let t = time::OffsetDateTime::now_utc();
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub(super) fn http_date(epoch: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(i64::try_from(epoch).unwrap_or(0))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.format(&fmt).unwrap_or_default()
}

/// `a` with the fields of `b` added.
pub(super) fn merge_objects(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

pub(super) fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

pub(super) fn fake_sha(seed: &str) -> String {
    format!(
        "{:016x}{:016x}{:08x}",
        fnv(seed),
        fnv(&format!("{seed}#")),
        fnv(seed) >> 32
    )
}

pub(super) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("a blocking task of the fake forge")
}

/// The commit `refs/heads/<branch>` points at in a bare repository.
pub(super) fn git_branch(git_dir: &Path, branch: &str) -> Option<String> {
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
pub(super) fn git_is_ancestor(git_dir: &Path, a: &str, b: &str) -> bool {
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
pub(super) struct Branches {
    pub(super) head_sha: Option<String>,
    pub(super) base_sha: Option<String>,
    /// Whether head has commits that base lacks.
    pub(super) ahead: bool,
}

pub(super) async fn inspect_branches(
    git_dir: Option<PathBuf>,
    head: String,
    base: String,
) -> Branches {
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
pub(super) enum Ty {
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

pub(super) struct Field {
    pub(super) name: &'static str,
    pub(super) ty: Ty,
    pub(super) required: bool,
}

pub(super) const fn req(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        ty,
        required: true,
    }
}

pub(super) const fn opt(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        ty,
        required: false,
    }
}

pub(super) enum FieldError {
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

pub(super) fn check_fields(
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

pub(super) enum BodyProblem {
    ContentType(Option<String>),
    NotJson,
    NotObject,
}

/// The JSON object in the body; an empty body is an empty object.
pub(super) fn json_object(inc: &Incoming) -> Result<Map<String, Value>, BodyProblem> {
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

pub(super) fn unknown_query<'a>(
    query: &'a [(String, String)],
    allowed: &[&str],
) -> Option<&'a str> {
    query
        .iter()
        .map(|(k, _)| k.as_str())
        .find(|k| !allowed.contains(k))
}

pub(super) fn str_list(v: &Value) -> Vec<String> {
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

pub(super) fn push_unique(list: &mut Vec<String>, items: impl IntoIterator<Item = String>) {
    for item in items {
        if !list.contains(&item) {
            list.push(item);
        }
    }
}

pub(super) fn page_params(
    inc: &Incoming,
    default_per_page: usize,
) -> Result<(usize, usize), &'static str> {
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

pub(super) fn paginate<T>(items: Vec<T>, page: usize, per_page: usize) -> (Vec<T>, usize) {
    let total_pages = items.len().div_ceil(per_page).max(1);
    let items = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    (items, total_pages)
}

/// A comment on a PR (GitHub) or a note on an MR (GitLab).
#[derive(Clone, Debug, PartialEq)]
pub struct Comment {
    pub id: u64,
    pub author: String,
    pub body: String,
    pub created_at: String,
}
