//! Argo CD's REST API, read only: what one Application reports about
//! itself (`GET /api/v1/applications/{name}`), reduced to the facts the
//! Argo CD health gate decides on ([`AppStatus`]).
//!
//! Behind the [`ArgoCd`] trait, so the cycle fetches the fact between
//! decide passes as it fetches scan findings, and a test can hand in
//! another implementation. The rule itself (Synced, Healthy, at a
//! revision that contains the promotion, for the soak) lives in
//! `cycle::plan`; this module only asks and parses.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use time::OffsetDateTime;

use crate::config::ArgoSettings;

/// The largest answer read. One Application with its resource tree is tens
/// of KiB; a body near this is not Argo CD answering, and reading it whole
/// would let whoever answers `url` grow the daemon's memory without bound.
pub const MAX_BODY: usize = 4 << 20;

/// What one Application reports, as the gate needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppStatus {
    /// `status.sync.status`: `Synced`, `OutOfSync` or `Unknown`.
    pub sync: String,
    /// `status.sync.revision`: the commit the live state was compared to.
    pub revision: Option<String>,
    /// `status.health.status`: `Healthy`, `Progressing`, `Degraded`, …
    pub health: String,
    /// Why it is not healthy or not synced, in Argo CD's words: the health
    /// message, else the last operation's message, else the first
    /// condition's.
    pub message: Option<String>,
    /// Since when it runs `revision` healthily, as far as Argo CD says: the
    /// later of the finish of the sync operation to `revision`
    /// (`operationState.finishedAt`) and the health's last transition
    /// (`health.lastTransitionTime`, Argo CD 2.11 and later). Not
    /// `reconciledAt`: that moves on every refresh, so a soak measured from
    /// it would never end.
    pub since: Option<OffsetDateTime>,
}

impl AppStatus {
    pub fn synced_and_healthy(&self) -> bool {
        self.sync == "Synced" && self.health == "Healthy"
    }
}

/// Why an Application could not be read.
#[derive(Clone, Debug, thiserror::Error)]
#[error("argocd {app}: {message}")]
pub struct ArgoError {
    pub app: String,
    pub kind: ErrorKind,
    pub message: String,
}

/// The failure's class, for logs (a fixed set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Connection refused, timeout, TLS.
    Transport,
    /// 401 or 403: the token.
    Auth,
    /// 404: no such Application (or no permission to see it).
    NotFound,
    /// Any other status, or a body that is not an Application.
    Rejected,
    /// The token file could not be read.
    Token,
}

/// A read under way.
pub type AppFuture<'a> = Pin<Box<dyn Future<Output = Result<AppStatus, ArgoError>> + Send + 'a>>;

/// Reads Applications.
pub trait ArgoCd: Send + Sync {
    fn application<'a>(&'a self, name: &'a str) -> AppFuture<'a>;
}

/// The real client: reqwest with rustls, a bearer token read from its file
/// on every request (a rotated Secret is picked up without a restart), no
/// redirects (the token must not follow one), timeouts, a bounded body.
pub struct HttpArgoCd {
    client: reqwest::Client,
    base: String,
    token_file: PathBuf,
}

/// Builds the client `settings` names.
pub fn connect(settings: &ArgoSettings) -> Result<Arc<dyn ArgoCd>, ArgoError> {
    Ok(Arc::new(HttpArgoCd::new(settings)?))
}

impl HttpArgoCd {
    pub fn new(settings: &ArgoSettings) -> Result<HttpArgoCd, ArgoError> {
        let fail = |message: String| ArgoError {
            app: String::new(),
            kind: ErrorKind::Transport,
            message,
        };
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("tagwatch/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(ca) = &settings.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| fail(format!("cannot read {}: {e}", ca.display())))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| fail(format!("{}: {e}", ca.display())))?;
            builder = builder.add_root_certificate(cert);
        }
        let client = builder
            .build()
            .map_err(|e| fail(format!("cannot build the HTTP client: {e}")))?;
        Ok(HttpArgoCd {
            client,
            base: settings.url.trim_end_matches('/').to_string(),
            token_file: settings.token_file.clone(),
        })
    }

    async fn get(&self, name: &str) -> Result<AppStatus, ArgoError> {
        let fail = |kind, message: String| ArgoError {
            app: name.to_string(),
            kind,
            message,
        };
        let token = std::fs::read_to_string(&self.token_file).map_err(|e| {
            fail(
                ErrorKind::Token,
                format!("cannot read {}: {e}", self.token_file.display()),
            )
        })?;
        let url = format!("{}/api/v1/applications/{}", self.base, encode(name));
        let mut response = self
            .client
            .get(&url)
            .bearer_auth(token.trim())
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| fail(ErrorKind::Transport, format!("GET {url}: {e}")))?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| fail(ErrorKind::Transport, format!("GET {url}: {e}")))?
        {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(fail(
                    ErrorKind::Rejected,
                    format!("GET {url}: the answer is over {MAX_BODY} bytes"),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        if !status.is_success() {
            let kind = match status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ErrorKind::Auth,
                StatusCode::NOT_FOUND => ErrorKind::NotFound,
                _ => ErrorKind::Rejected,
            };
            let said = json["message"].as_str().unwrap_or_default();
            return Err(fail(kind, format!("GET {url}: {status} {said}")));
        }
        parse_application(&json).ok_or_else(|| {
            fail(
                ErrorKind::Rejected,
                format!("GET {url}: the answer is not an Application with a status"),
            )
        })
    }
}

impl ArgoCd for HttpArgoCd {
    fn application<'a>(&'a self, name: &'a str) -> AppFuture<'a> {
        Box::pin(self.get(name))
    }
}

/// An Application name in a path segment (names are DNS labels, but a
/// config typo must not turn into another path).
fn encode(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// The gate's facts out of a `v1alpha1Application` JSON body; `None` when
/// it has no `status.sync` or `status.health`.
pub fn parse_application(app: &serde_json::Value) -> Option<AppStatus> {
    let status = &app["status"];
    let sync = status["sync"]["status"].as_str()?.to_string();
    let health = status["health"]["status"].as_str()?.to_string();
    let revision = status["sync"]["revision"].as_str().map(str::to_string);
    let text = |v: &serde_json::Value| {
        v.as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    // Argo CD 3 no longer fills the Application's own health message; the
    // unhealthy resource's is where the reason is then. A succeeded
    // operation's message ("successfully synced") explains nothing.
    let resource = status["resources"].as_array().and_then(|rs| {
        rs.iter().find_map(|r| {
            let health = &r["health"];
            if health["status"] == "Healthy" {
                return None;
            }
            let m = text(&health["message"])?;
            Some(format!(
                "{} {}: {m}",
                r["kind"].as_str().unwrap_or("resource"),
                r["name"].as_str().unwrap_or("?")
            ))
        })
    });
    let failed_op = matches!(
        status["operationState"]["phase"].as_str(),
        Some("Failed" | "Error")
    );
    let message = text(&status["health"]["message"])
        .or(resource)
        .or_else(|| {
            failed_op
                .then(|| text(&status["operationState"]["message"]))
                .flatten()
        })
        .or_else(|| text(&status["conditions"][0]["message"]));
    let time = |v: &serde_json::Value| {
        v.as_str().and_then(|s| {
            OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
        })
    };
    // The sync operation counts only when it was to the revision running
    // now and it succeeded; an older operation says nothing about it.
    let op = &status["operationState"];
    let op_revision = op["syncResult"]["revision"].as_str();
    let finished =
        (op["phase"] == "Succeeded" && op_revision.is_some() && op_revision == revision.as_deref())
            .then(|| time(&op["finishedAt"]))
            .flatten();
    let transition = time(&status["health"]["lastTransitionTime"]);
    let since = finished.into_iter().chain(transition).max();
    Some(AppStatus {
        sync,
        revision,
        health,
        message,
        since,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A one-shot HTTP server answering `answer` to the first request;
    /// returns its URL and the request it received.
    fn serve_once(answer: Vec<u8>) -> (String, std::thread::JoinHandle<String>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let thread = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap();
            let _ = s.write_all(&answer);
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        (url, thread)
    }

    fn client(url: &str, dir: &std::path::Path) -> HttpArgoCd {
        let token_file = dir.join("token");
        std::fs::write(&token_file, "t0ken\n").unwrap();
        HttpArgoCd::new(&ArgoSettings {
            url: url.to_string(),
            token_file,
            ca_file: None,
        })
        .unwrap()
    }

    fn get(c: &HttpArgoCd, name: &str) -> Result<AppStatus, ArgoError> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(c.application(name))
    }

    #[test]
    fn a_redirect_is_not_followed_with_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let answer = b"HTTP/1.1 302 Found\r\nLocation: http://evil.example/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        let (url, server) = serve_once(answer.to_vec());
        let e = get(&client(&url, dir.path()), "payments-dev").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Rejected, "{e}");
        assert!(e.to_string().contains("302"), "{e}");
        let request = server.join().unwrap();
        assert!(request.starts_with("GET /api/v1/applications/payments-dev HTTP/1.1"));
        assert!(
            request
                .to_ascii_lowercase()
                .contains("authorization: bearer t0ken\r\n")
        );
    }

    #[test]
    fn an_answer_over_the_bound_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let mut answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            MAX_BODY + 1
        )
        .into_bytes();
        answer.extend(std::iter::repeat_n(b' ', MAX_BODY + 1));
        let (url, _server) = serve_once(answer);
        let e = get(&client(&url, dir.path()), "payments-dev").unwrap_err();
        assert!(e.to_string().contains("over 4194304 bytes"), "{e}");
    }

    #[test]
    fn reads_an_application() {
        let body = serde_json::json!({
            "metadata": {"name": "payments-dev"},
            "status": {
                "sync": {"status": "Synced", "revision": "abc"},
                "health": {"status": "Degraded", "message": "Back-off pulling image",
                           "lastTransitionTime": "2026-11-21T10:05:00Z"},
                "operationState": {"phase": "Succeeded", "finishedAt": "2026-11-21T10:01:00Z",
                                   "syncResult": {"revision": "abc"}},
                "reconciledAt": "2026-11-21T11:00:00Z"
            }
        });
        let s = parse_application(&body).unwrap();
        assert_eq!(s.health, "Degraded");
        assert_eq!(s.message.as_deref(), Some("Back-off pulling image"));
        assert_eq!(
            s.since,
            Some(time::macros::datetime!(2026-11-21 10:05:00 UTC)),
            "the later of finishedAt and lastTransitionTime, never reconciledAt"
        );
        assert!(!s.synced_and_healthy());
        assert_eq!(parse_application(&serde_json::json!({"status": {}})), None);

        // Argo CD 3: no app-level message; the Degraded resource's is used,
        // and a succeeded sync's "successfully synced" never is.
        let v3 = serde_json::json!({"status": {
            "sync": {"status": "Synced", "revision": "abc"},
            "health": {"status": "Degraded"},
            "operationState": {"phase": "Succeeded", "message": "successfully synced (all tasks run)"},
            "resources": [
                {"kind": "Service", "name": "api", "health": {"status": "Healthy"}},
                {"kind": "Deployment", "name": "api",
                 "health": {"status": "Degraded", "message": "Deployment \"api\" exceeded its progress deadline"}}
            ]
        }});
        assert_eq!(
            parse_application(&v3).unwrap().message.as_deref(),
            Some("Deployment api: Deployment \"api\" exceeded its progress deadline")
        );
        assert_eq!(encode("a/b"), "a%2Fb");
    }
}
