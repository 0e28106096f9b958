//! A stateful fake of Argo CD's API server, as much of it as tagwatch
//! reads: `GET /api/v1/applications/{name}` with a bearer token. It runs
//! axum on its own tokio runtime on a background thread, bound to
//! `127.0.0.1:0`, and stops when dropped.
//!
//! # Where each behaviour comes from
//!
//! - Argo CD's REST API (the grpc-gateway in front of its gRPC services,
//!   `server/application/application.proto`, `ApplicationService.Get` is
//!   `GET /api/v1/applications/{name}`): the answer is a `v1alpha1Application`
//!   with `metadata`, `spec` and `status`.
//! - `v1alpha1ApplicationStatus`: `sync.status` (Synced, OutOfSync,
//!   Unknown) and `sync.revision` (the commit compared against);
//!   `health.status` (Healthy, Progressing, Degraded, Suspended, Missing,
//!   Unknown), `health.message`, `health.lastTransitionTime`;
//!   `operationState` (`phase` Running|Failed|Succeeded|Error|Terminating,
//!   `message`, `startedAt`, `finishedAt`, `syncResult.revision`);
//!   `reconciledAt`; `conditions[]` (`type`, `message`).
//! - Errors are grpc-gateway's JSON `{"error", "code", "message"}`: an
//!   absent or wrong token is 401 with gRPC code 16 (Unauthenticated)
//!   "invalid session: …"; an unknown Application is 404 with code 5
//!   (NotFound) `applications.argoproj.io "x" not found` (Argo CD answers
//!   403 "permission denied" instead when RBAC hides it; this fake answers
//!   404, the case RBAC allows).
//! - A `GET` carries no body; a request with one is logged as such, so a
//!   test can assert the client sends none.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// One request as the fake received it.
#[derive(Clone, Debug)]
pub struct ArgoRequest {
    pub method: String,
    /// The path as sent, still percent-encoded.
    pub path: String,
    /// The `Authorization` header, when sent.
    pub authorization: Option<String>,
    /// The body, as sent (empty for a well-formed GET).
    pub body: String,
    /// The status answered.
    pub status: u16,
}

#[derive(Default)]
struct Inner {
    apps: HashMap<String, Value>,
    requests: Vec<ArgoRequest>,
}

type Shared = Arc<(String, Mutex<Inner>)>;

/// The fake Argo CD API server.
pub struct ArgoFake {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    state: Shared,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// How an Application should look.
#[derive(Clone, Debug)]
pub struct AppState<'a> {
    pub sync: &'a str,
    pub health: &'a str,
    pub revision: &'a str,
    pub message: Option<&'a str>,
    /// RFC 3339: when the sync operation to `revision` finished.
    pub finished_at: &'a str,
}

impl ArgoFake {
    pub fn start(token: &str) -> ArgoFake {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener.set_nonblocking(true).expect("non-blocking");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state: Shared = Arc::new((token.to_string(), Mutex::new(Inner::default())));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&state));
        let (tx, rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("argocd-fake".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .expect("tokio runtime for the Argo CD fake");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    tokio::select! {
                        _ = axum::serve(listener, app).into_future() => {}
                        _ = rx => {}
                    }
                });
                rt.shutdown_timeout(Duration::from_secs(1));
            })
            .expect("spawn the Argo CD fake");
        ArgoFake {
            url,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// Sets (or replaces) Application `name`, shaped as Argo CD answers it.
    pub fn set(&self, name: &str, s: &AppState<'_>) {
        let mut health = json!({"status": s.health, "lastTransitionTime": s.finished_at});
        if let Some(m) = s.message {
            health["message"] = json!(m);
        }
        let app = json!({
            "metadata": {"name": name, "namespace": "argocd"},
            "spec": {
                "project": "default",
                "source": {"repoURL": "https://git.example/gitops.git", "path": ".", "targetRevision": "main"},
                "destination": {"server": "https://kubernetes.default.svc", "namespace": name}
            },
            "status": {
                "sync": {"status": s.sync, "revision": s.revision},
                "health": health,
                "operationState": {
                    "phase": "Succeeded",
                    "message": "successfully synced (all tasks run)",
                    "startedAt": s.finished_at,
                    "finishedAt": s.finished_at,
                    "syncResult": {"revision": s.revision}
                },
                // Moves on every refresh: never the start of a soak.
                "reconciledAt": "2099-01-01T00:00:00Z",
                "resources": []
            }
        });
        lock(&self.state).apps.insert(name.to_string(), app);
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<ArgoRequest> {
        lock(&self.state).requests.clone()
    }
}

impl Drop for ArgoFake {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lock(state: &Shared) -> std::sync::MutexGuard<'_, Inner> {
    state.1.lock().unwrap_or_else(|e| e.into_inner())
}

fn grpc_error(status: StatusCode, code: u32, message: &str) -> (StatusCode, Value) {
    (
        status,
        json!({"error": message, "code": code, "message": message}),
    )
}

async fn handle(State(state): State<Shared>, request: Request) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let authorization = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let (status, answer) = {
        let inner = lock(&state);
        let name = path.strip_prefix("/api/v1/applications/");
        if authorization.as_deref() != Some(&format!("Bearer {}", state.0)) {
            grpc_error(
                StatusCode::UNAUTHORIZED,
                16,
                "invalid session: token signature is invalid",
            )
        } else if method != "GET" || name.is_none() {
            grpc_error(StatusCode::NOT_IMPLEMENTED, 12, "Method Not Allowed")
        } else {
            let name = name.unwrap_or_default();
            match inner.apps.get(name) {
                Some(app) => (StatusCode::OK, app.clone()),
                None => grpc_error(
                    StatusCode::NOT_FOUND,
                    5,
                    &format!("applications.argoproj.io \"{name}\" not found"),
                ),
            }
        }
    };
    lock(&state).requests.push(ArgoRequest {
        method,
        path,
        authorization,
        body,
        status: status.as_u16(),
    });
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(answer.to_string()))
        .unwrap()
}
