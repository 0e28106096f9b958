//! The HTTP client GitHub and GitLab share: JSON in and out, the token read
//! from its file on every request, bounded retries for server errors and
//! dropped connections, and rate limits obeyed by waiting as the response
//! says (`retry-after`, or the reset time), never by looping. Redirects are
//! never followed and answers are read up to [`MAX_BODY`], so neither a
//! misconfigured nor a hostile `api_url` can take the token elsewhere or
//! exhaust memory.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tracing::warn;

use super::{ErrorKind, ForgeError};
use crate::ghapp::{Secret, TokenError};

/// Attempts per call, the first included.
const ATTEMPTS: u32 = 4;
/// The longest a rate limit is waited out inside a cycle. Longer, and the
/// call fails with the reset time; the next cycle tries again.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// What a 429 without any timing header waits.
const DEFAULT_WAIT: Duration = Duration::from_secs(10);
/// The largest answer read. The biggest documented answer tagwatch asks
/// for is a list of ten pull requests (tens of KiB); anything near this is
/// not the API answering, and reading it whole would let whoever answers
/// `api_url` grow the daemon's memory without bound.
pub const MAX_BODY: usize = 4 << 20;

/// How the token travels.
#[derive(Clone, Copy, Debug)]
pub enum Auth {
    /// `Authorization: Bearer …` (GitHub).
    Bearer,
    /// `PRIVATE-TOKEN: …` (GitLab).
    PrivateToken,
}

/// Where the token comes from.
#[derive(Clone)]
pub enum Credential {
    /// A file, read on every request.
    File(PathBuf),
    /// Minted and cached elsewhere (a GitHub App installation).
    Source(std::sync::Arc<dyn crate::ghapp::TokenSource>),
}

/// One forge's API at a base URL.
pub struct Api {
    client: reqwest::Client,
    base: String,
    /// Names the forge in errors: `github acme/gitops`.
    pub name: String,
    credential: Credential,
    auth: Auth,
    headers: &'static [(&'static str, &'static str)],
}

/// A final answer: 2xx, or an error status the caller may care about.
pub struct Response {
    pub status: StatusCode,
    pub body: Value,
}

impl Response {
    /// The body of a 2xx; any other status becomes an error naming `what`.
    pub fn ok(self, api: &Api, what: &str) -> Result<Value, ForgeError> {
        if self.status.is_success() {
            return Ok(self.body);
        }
        let kind = match self.status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ErrorKind::Auth,
            s if s.is_server_error() => ErrorKind::Server,
            _ => ErrorKind::Rejected,
        };
        Err(api.error(
            kind,
            format!("{what}: {} {}", self.status, summary(&self.body)),
        ))
    }
}

impl Api {
    pub fn new(
        base: &str,
        name: String,
        credential: Credential,
        auth: Auth,
        headers: &'static [(&'static str, &'static str)],
    ) -> Result<Api, ForgeError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("tagwatch/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            // reqwest drops `Authorization` on a redirect to another host,
            // but not GitLab's `PRIVATE-TOKEN`: following one would hand the
            // token to whichever host `api_url` points at. The APIs do not
            // redirect, so a redirect is an error (see `call`).
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ForgeError {
                forge: name.clone(),
                kind: ErrorKind::Transport,
                message: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(Api {
            client,
            base: base.trim_end_matches('/').to_string(),
            name,
            credential,
            auth,
            headers,
        })
    }

    pub fn error(&self, kind: ErrorKind, message: String) -> ForgeError {
        ForgeError {
            forge: self.name.clone(),
            kind,
            message,
        }
    }

    /// The base URL, for endpoints outside it (GitHub's GraphQL).
    pub fn base(&self) -> &str {
        &self.base
    }

    async fn token(&self) -> Result<Secret, ForgeError> {
        let token_file = match &self.credential {
            Credential::File(path) => path,
            Credential::Source(source) => {
                return source.token().await.map_err(|e| {
                    let kind = match &e {
                        TokenError::Refused { .. } | TokenError::NoInstallation { .. } => {
                            ErrorKind::Auth
                        }
                        TokenError::Transport { .. } => ErrorKind::Transport,
                        TokenError::Protocol { .. } => ErrorKind::Protocol,
                        _ => ErrorKind::Token,
                    };
                    self.error(kind, e.to_string())
                });
            }
        };
        let token = std::fs::read_to_string(token_file).map_err(|e| {
            self.error(
                ErrorKind::Token,
                format!("cannot read token_file {}: {e}", token_file.display()),
            )
        })?;
        let token = token.trim();
        if token.is_empty() {
            return Err(self.error(
                ErrorKind::Token,
                format!("token_file {} is empty", token_file.display()),
            ));
        }
        Ok(Secret::new(token.to_string()))
    }

    /// `method path?query` with an optional JSON body, retried as the
    /// module header says. `path` is appended to the base URL as given
    /// (already percent-encoded where needed).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Response, ForgeError> {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        let what = format!("{method} {}", path.split('?').next().unwrap_or(path));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= ATTEMPTS;
            let token = self.token().await?;
            let mut request = self.client.request(method.clone(), &url).query(query);
            request = match self.auth {
                Auth::Bearer => request.bearer_auth(token.expose()),
                Auth::PrivateToken => request.header("PRIVATE-TOKEN", token.expose()),
            };
            for (name, value) in self.headers {
                request = request.header(*name, *value);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) if !last => {
                    warn!(forge = %self.name, request = %what, attempt, error = %without_url(&e), "forge unreachable; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
                Err(e) => {
                    return Err(
                        self.error(ErrorKind::Transport, format!("{what}: {}", without_url(&e)))
                    );
                }
            };
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED
                && let Credential::Source(source) = &self.credential
            {
                // Revoked before its expiry: the next call mints another.
                source.refused(&token);
            }
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .map(|l| shorten(String::from_utf8_lossy(l.as_bytes()).into_owned()))
                    .unwrap_or_else(|| "nowhere (no location header)".to_string());
                return Err(self.error(
                    ErrorKind::Protocol,
                    format!(
                        "{what}: the forge answered {} redirecting to {location}; tagwatch does not follow redirects with credentials (check api_url)",
                        status.as_u16()
                    ),
                ));
            }
            let wait = rate_limit_wait(status, response.headers());
            // A body cut off mid-way is a transport failure, not an empty
            // answer: retried like one, and reported as one.
            let text = match read_capped(response).await {
                Ok(text) => text,
                Err(Read::TooLarge) => {
                    return Err(self.error(
                        ErrorKind::Protocol,
                        format!(
                            "{what}: the answer is larger than {} MiB; tagwatch stops reading there (is api_url the forge's API?)",
                            MAX_BODY >> 20
                        ),
                    ));
                }
                Err(Read::Cut(e)) if !last => {
                    warn!(forge = %self.name, request = %what, attempt, error = %without_url(&e), "answer cut off; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
                Err(Read::Cut(e)) => {
                    return Err(self.error(
                        ErrorKind::Transport,
                        format!("{what}: the answer was cut off: {}", without_url(&e)),
                    ));
                }
            };
            let body: Value = if text.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or(Value::String(text))
            };
            if let Some(wait) = wait {
                if wait > MAX_WAIT || last {
                    return Err(self.error(
                        ErrorKind::RateLimited,
                        format!(
                            "{what}: rate limited for another {}s; the next cycle tries again",
                            wait.as_secs()
                        ),
                    ));
                }
                warn!(forge = %self.name, request = %what, wait_secs = wait.as_secs_f64(), "rate limited; waiting as the forge asked");
                tokio::time::sleep(wait).await;
                continue;
            }
            if status.is_server_error() && !last {
                warn!(forge = %self.name, request = %what, %status, attempt, "forge error; retrying");
                tokio::time::sleep(backoff(attempt)).await;
                continue;
            }
            return Ok(Response { status, body });
        }
    }
}

impl Api {
    /// [`Api::call`] that wants a 2xx: its body, else an error naming `what`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: &Value,
        what: &str,
    ) -> Result<Value, ForgeError> {
        self.call(method, path, &[], Some(body))
            .await?
            .ok(self, what)
    }
}

/// Why an answer's body could not be read.
enum Read {
    /// The connection failed part-way.
    Cut(reqwest::Error),
    /// It went past [`MAX_BODY`].
    TooLarge,
}

/// The body as text, read chunk by chunk so that no more than
/// [`MAX_BODY`] is ever held: a `content-length` over the cap is refused
/// before reading, and a body without one is cut off at the cap.
async fn read_capped(mut response: reqwest::Response) -> Result<String, Read> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY as u64)
    {
        return Err(Read::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(Read::Cut)? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(Read::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// How long a rate-limited response asks to wait, or `None` if it is not
/// a rate limit. GitHub: 403 or 429 with `retry-after` (secondary limits),
/// or `x-ratelimit-remaining: 0` with `x-ratelimit-reset` (epoch seconds).
/// GitLab: 429 with `retry-after` or `ratelimit-reset`.
fn rate_limit_wait(status: StatusCode, headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let number =
        |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
    let exhausted = number("x-ratelimit-remaining") == Some(0);
    let limited = status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::FORBIDDEN && (headers.contains_key("retry-after") || exhausted));
    if !limited {
        return None;
    }
    if let Some(secs) = number("retry-after") {
        return Some(Duration::from_secs(secs.max(1)));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if let Some(reset) = number("x-ratelimit-reset").or_else(|| number("ratelimit-reset")) {
        // GitHub's reset is an epoch time; anything small is a delay.
        let secs = if reset > 1_000_000_000 {
            reset.saturating_sub(now)
        } else {
            reset
        };
        return Some(Duration::from_secs(secs.max(1)));
    }
    Some(DEFAULT_WAIT)
}

/// Jittered exponential backoff: about 0.5 s, 1 s, 2 s.
fn backoff(attempt: u32) -> Duration {
    let base = 250u64 << attempt.min(5);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or(0);
    Duration::from_millis(base + nanos % base)
}

/// reqwest's errors print the URL, which is fine (no secret is in it), but
/// the cause chain says more than the top line.
fn without_url(e: &reqwest::Error) -> String {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// The `message` of an API error body, or the body itself, shortened.
fn summary(body: &Value) -> String {
    let text = match body.get("message").or_else(|| body.get("error")) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => body.to_string(),
    };
    let errors = body
        .get("errors")
        .map(|e| format!(" {e}"))
        .unwrap_or_default();
    shorten(format!("{text}{errors}"))
}

/// `text` cut to 300 bytes (on a character boundary) with `…`: what the
/// forge or whoever answers `api_url` says goes into one log line.
fn shorten(mut text: String) -> String {
    if text.len() > 300 {
        let mut cut = 300;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn rate_limits_are_told_from_refusals() {
        let forbidden = StatusCode::FORBIDDEN;
        // A plain 403 is a permission problem, not something to wait out.
        assert_eq!(rate_limit_wait(forbidden, &headers(&[])), None);
        assert_eq!(
            rate_limit_wait(forbidden, &headers(&[("retry-after", "7")])),
            Some(Duration::from_secs(7))
        );
        let soon = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 20;
        let wait = rate_limit_wait(
            forbidden,
            &headers(&[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", &soon.to_string()),
            ]),
        )
        .unwrap();
        assert!(
            wait <= Duration::from_secs(20) && wait >= Duration::from_secs(18),
            "{wait:?}"
        );
        assert_eq!(
            rate_limit_wait(StatusCode::TOO_MANY_REQUESTS, &headers(&[])),
            Some(DEFAULT_WAIT)
        );
        assert_eq!(
            rate_limit_wait(
                StatusCode::TOO_MANY_REQUESTS,
                &headers(&[("ratelimit-reset", "3")])
            ),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            rate_limit_wait(StatusCode::INTERNAL_SERVER_ERROR, &headers(&[])),
            None
        );
    }
}
