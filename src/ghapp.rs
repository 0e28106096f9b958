//! GitHub App authentication: from the app's private key to an
//! installation access token, and the cache that keeps it until shortly
//! before it expires.
//!
//! A token is minted by signing a JWT (RS256; `iat` 60 s in the past
//! against clock drift, `exp` nine minutes on, inside GitHub's ten) and
//! exchanging it at `POST /app/installations/{id}/access_tokens`, which
//! answers with the token and its `expires_at` (an hour on). The private
//! key is read from its file on every mint, so a rotated Secret is used
//! without a restart; it and the tokens never reach a log (see [`Secret`]).
//!
//! [`TokenSource`] is the boundary: the forge client ([`crate::forge`])
//! asks it for a bearer token, and git ([`crate::gitops`], on a blocking
//! thread) for the password of user `x-access-token`. Both get the same
//! cache through [`shared`], so one cycle mints at most once. This module
//! owns minting and caching; which requests carry the token is theirs.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use serde_json::json;
use time::OffsetDateTime;

use crate::config::GitHubApp;

/// A token is replaced this long before GitHub's `expires_at`, so a cycle
/// that starts with it (a clone, several API calls, a push) never sees it
/// expire half-way.
pub const REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);
/// The JWT's `iat` is backdated this much, as GitHub recommends, so a
/// server clock slightly ahead of GitHub's is not refused.
pub const JWT_BACKDATE: Duration = Duration::from_secs(60);
/// The JWT's lifetime from `iat`. GitHub refuses an `exp` more than ten
/// minutes ahead; with the backdating this ends nine minutes from now.
pub const JWT_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// After a mint GitHub refused (wrong key, revoked installation), the
/// same answer is given for this long without asking again, unless the
/// key file changed: every forge call of a cycle would otherwise mint,
/// and fail, once each.
pub const REFUSAL_HOLD: Duration = Duration::from_secs(60);

/// A secret string: its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: String) -> Secret {
        Secret(text)
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

/// Why no installation token could be had. Messages name the app, the
/// installation and the key file, never the key, the JWT or a token.
#[derive(Clone, Debug, thiserror::Error)]
pub enum TokenError {
    #[error("GitHub App {app_id}: cannot read private_key_file {}: {message}", path.display())]
    KeyUnreadable {
        app_id: String,
        path: PathBuf,
        message: String,
    },
    #[error("GitHub App {app_id}: private_key_file {} holds no RSA private key in PEM form", path.display())]
    KeyInvalid { app_id: String, path: PathBuf },
    #[error("GitHub App {app_id}: cannot sign the JWT: {message}")]
    Sign { app_id: String, message: String },
    #[error(
        "GitHub App {app_id}: GitHub refused the app's JWT ({status}: {message}); is private_key_file {} this app's key, and the clock right?",
        path.display()
    )]
    Refused {
        app_id: String,
        path: PathBuf,
        status: u16,
        message: String,
    },
    #[error(
        "GitHub App {app_id}: installation {installation_id} not found (404); was the app uninstalled, or is installation_id wrong?"
    )]
    NoInstallation {
        app_id: String,
        installation_id: u64,
    },
    #[error("GitHub App {app_id}: minting an installation token: {message}")]
    Transport { app_id: String, message: String },
    #[error("GitHub App {app_id}: minting an installation token: {message}")]
    Protocol { app_id: String, message: String },
}

impl TokenError {
    /// A fixed label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            TokenError::KeyUnreadable { .. } | TokenError::KeyInvalid { .. } => "key",
            TokenError::Sign { .. } => "sign",
            TokenError::Refused { .. } => "refused",
            TokenError::NoInstallation { .. } => "no_installation",
            TokenError::Transport { .. } => "transport",
            TokenError::Protocol { .. } => "protocol",
        }
    }

    /// GitHub answered, and said no: asking again at once would get the
    /// same answer.
    fn is_refusal(&self) -> bool {
        matches!(
            self,
            TokenError::Refused { .. } | TokenError::NoInstallation { .. }
        )
    }
}

pub type TokenFuture<'a> = Pin<Box<dyn Future<Output = Result<Secret, TokenError>> + Send + 'a>>;

/// Where a bearer token comes from.
pub trait TokenSource: Send + Sync {
    /// A token that is valid now (a cached one, or a new one).
    fn token(&self) -> TokenFuture<'_>;

    /// `token` was refused by the server (revoked before it expired):
    /// forget it, so the next call mints another.
    fn refused(&self, token: &Secret);

    /// [`TokenSource::token`] for a blocking thread (git's credential
    /// callback): blocks the calling thread until a token is had.
    fn token_blocking(&self) -> Result<Secret, TokenError> {
        blocking(self)
    }
}

/// "Now", injectable so tests can move past a token's expiry.
pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

struct Cached {
    token: Secret,
    expires_at: OffsetDateTime,
}

/// A refused mint, kept for [`REFUSAL_HOLD`] against the key it used.
struct Refusal {
    error: TokenError,
    at: OffsetDateTime,
    key_digest: [u8; 32],
}

#[derive(Default)]
struct State {
    cached: Option<Cached>,
    refusal: Option<Refusal>,
    /// Mints so far (for `tagwatch_github_app_tokens_total` and tests).
    mints: u64,
    /// The last mint's failure, until one succeeds (for `/status`).
    last_error: Option<String>,
}

/// One app installation's tokens, minted on demand and cached.
pub struct AppTokens {
    app: GitHubApp,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    /// Held across a mint, so concurrent callers wait for one mint instead
    /// of each making their own.
    minting: tokio::sync::Mutex<()>,
}

impl AppTokens {
    pub fn new(app: GitHubApp) -> AppTokens {
        AppTokens::with_clock(app, Arc::new(SystemClock))
    }

    pub fn with_clock(app: GitHubApp, clock: Arc<dyn Clock>) -> AppTokens {
        AppTokens {
            app,
            clock,
            state: Mutex::default(),
            minting: tokio::sync::Mutex::new(()),
        }
    }

    /// How many tokens this cache has minted.
    pub fn mints(&self) -> u64 {
        self.lock().mints
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached token if it is good for another [`REFRESH_BEFORE`].
    fn fresh(&self, now: OffsetDateTime) -> Option<Secret> {
        let state = self.lock();
        let cached = state.cached.as_ref()?;
        (now + REFRESH_BEFORE < cached.expires_at).then(|| cached.token.clone())
    }

    async fn get(&self) -> Result<Secret, TokenError> {
        if let Some(token) = self.fresh(self.clock.now()) {
            return Ok(token);
        }
        let _one = self.minting.lock().await;
        let now = self.clock.now();
        // Another caller may have minted while this one waited.
        if let Some(token) = self.fresh(now) {
            return Ok(token);
        }
        let pem = self.read_key()?;
        let digest = openssl::sha::sha256(&pem);
        if let Some(r) = &self.lock().refusal
            && r.key_digest == digest
            && now < r.at + REFUSAL_HOLD
        {
            return Err(r.error.clone());
        }
        match self.mint(&pem, now).await {
            Ok(cached) => {
                let token = cached.token.clone();
                let mut state = self.lock();
                state.mints += 1;
                state.cached = Some(cached);
                state.refusal = None;
                state.last_error = None;
                crate::metrics::get()
                    .github_app_tokens
                    .with_label_values(&["minted"])
                    .inc();
                tracing::info!(
                    app_id = %self.app.app_id,
                    installation_id = self.app.installation_id,
                    "minted a GitHub App installation token"
                );
                Ok(token)
            }
            Err(error) => {
                crate::metrics::get()
                    .github_app_tokens
                    .with_label_values(&[error.kind()])
                    .inc();
                tracing::warn!(kind = error.kind(), %error, "could not mint a GitHub App installation token");
                self.lock().last_error = Some(error.to_string());
                if error.is_refusal() {
                    self.lock().refusal = Some(Refusal {
                        error: error.clone(),
                        at: now,
                        key_digest: digest,
                    });
                }
                Err(error)
            }
        }
    }

    fn read_key(&self) -> Result<Vec<u8>, TokenError> {
        let path = &self.app.private_key_file;
        std::fs::read(path).map_err(|e| TokenError::KeyUnreadable {
            app_id: self.app.app_id.clone(),
            path: path.clone(),
            message: e.to_string(),
        })
    }

    /// Signs a JWT with the key in `pem` and exchanges it for a token.
    async fn mint(&self, pem: &[u8], now: OffsetDateTime) -> Result<Cached, TokenError> {
        let app_id = &self.app.app_id;
        let jwt = sign_jwt(app_id, pem, now).map_err(|e| match e {
            JwtError::Key => TokenError::KeyInvalid {
                app_id: app_id.clone(),
                path: self.app.private_key_file.clone(),
            },
            JwtError::Sign(message) => TokenError::Sign {
                app_id: app_id.clone(),
                message,
            },
        })?;
        let transport = |message: String| TokenError::Transport {
            app_id: app_id.clone(),
            message,
        };
        let protocol = |message: String| TokenError::Protocol {
            app_id: app_id.clone(),
            message,
        };
        // A client per mint (one an hour): it then belongs to whichever
        // runtime is minting, the daemon's or `token_blocking`'s own.
        let client = reqwest::Client::builder()
            .user_agent(concat!("tagwatch/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| transport(format!("cannot build the HTTP client: {e}")))?;
        let url = format!(
            "{}/app/installations/{}/access_tokens",
            self.app.api_url.trim_end_matches('/'),
            self.app.installation_id
        );
        let response = client
            .post(&url)
            .bearer_auth(&jwt)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
            .send()
            .await
            .map_err(|e| transport(e.without_url().to_string()))?;
        let status = response.status();
        let mut body = Vec::new();
        let mut response = response;
        // Bounded: the answer is a few hundred bytes.
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| transport(e.without_url().to_string()))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > 64 << 10 {
                return Err(protocol("the answer is larger than 64 KiB".into()));
            }
        }
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let message = value["message"].as_str().unwrap_or("").to_string();
        match status.as_u16() {
            200 | 201 => {}
            401 | 403 => {
                return Err(TokenError::Refused {
                    app_id: app_id.clone(),
                    path: self.app.private_key_file.clone(),
                    status: status.as_u16(),
                    message,
                });
            }
            404 => {
                return Err(TokenError::NoInstallation {
                    app_id: app_id.clone(),
                    installation_id: self.app.installation_id,
                });
            }
            s => return Err(protocol(format!("POST {url} answered {s}: {message}"))),
        }
        let token = value["token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| protocol("the answer has no token".into()))?;
        let expires_at = value["expires_at"]
            .as_str()
            .and_then(|t| {
                OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
            .ok_or_else(|| protocol("the answer has no RFC 3339 expires_at".into()))?;
        Ok(Cached {
            token: Secret(token.to_string()),
            expires_at,
        })
    }
}

impl TokenSource for AppTokens {
    fn token(&self) -> TokenFuture<'_> {
        Box::pin(self.get())
    }

    fn refused(&self, token: &Secret) {
        let mut state = self.lock();
        if state.cached.as_ref().is_some_and(|c| &c.token == token) {
            state.cached = None;
        }
    }

    fn token_blocking(&self) -> Result<Secret, TokenError> {
        // The common case, every fetch and push of the hour: no thread, no
        // runtime, just the cache.
        if let Some(token) = self.fresh(self.clock.now()) {
            return Ok(token);
        }
        blocking(self)
    }
}

/// [`TokenSource::token`] on a thread and a runtime of its own.
fn blocking(source: &(impl TokenSource + ?Sized)) -> Result<Secret, TokenError> {
    // The caller may or may not be inside a runtime, and blocking on this
    // future from one of its worker threads would stall it.
    std::thread::scope(|s| {
        s.spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| TokenError::Transport {
                    app_id: String::new(),
                    message: format!("cannot start a runtime: {e}"),
                })?;
            runtime.block_on(source.token())
        })
        .join()
        .unwrap_or_else(|_| {
            Err(TokenError::Protocol {
                app_id: String::new(),
                message: "the token task panicked".into(),
            })
        })
    })
}

enum JwtError {
    Key,
    Sign(String),
}

/// The app's JWT at `now`: RS256 over `{"iat","exp","iss"}`.
fn sign_jwt(app_id: &str, pem: &[u8], now: OffsetDateTime) -> Result<String, JwtError> {
    use openssl::{hash::MessageDigest, pkey::PKey, sign::Signer};
    let key = PKey::private_key_from_pem(pem).map_err(|_| JwtError::Key)?;
    if key.rsa().is_err() {
        return Err(JwtError::Key);
    }
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let iat = now.unix_timestamp() - JWT_BACKDATE.as_secs() as i64;
    let claims = json!({
        "iat": iat,
        "exp": iat + JWT_LIFETIME.as_secs() as i64,
        "iss": app_id,
    });
    let header = json!({ "alg": "RS256", "typ": "JWT" });
    let input = format!(
        "{}.{}",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string())
    );
    let sign = |e: openssl::error::ErrorStack| JwtError::Sign(e.to_string());
    let mut signer = Signer::new(MessageDigest::sha256(), &key).map_err(sign)?;
    signer.update(input.as_bytes()).map_err(sign)?;
    let signature = signer.sign_to_vec().map_err(sign)?;
    Ok(format!("{input}.{}", b64.encode(signature)))
}

/// The process's one cache for `app`: the forge client and git's
/// credential callback both take it from here, so they share the token.
/// (Git's settings reach the clone deep inside a cycle, where no handle
/// to the forge client is; a process-wide table keyed by the app's
/// settings is the one place both can find.)
pub fn shared(app: &GitHubApp) -> Arc<AppTokens> {
    let mut table = table();
    Arc::clone(
        table
            .entry(app.clone())
            .or_insert_with(|| Arc::new(AppTokens::new(app.clone()))),
    )
}

type Table = HashMap<GitHubApp, Arc<AppTokens>>;

fn table() -> std::sync::MutexGuard<'static, Table> {
    static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();
    TABLE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// One app's token as `/status` shows it: never the token itself.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AppStatus {
    pub app_id: String,
    pub installation_id: u64,
    /// Tokens minted by this process.
    pub mints: u64,
    /// When the cached token expires (RFC 3339); `None` before the first.
    pub token_expires_at: Option<String>,
    /// Why the last mint failed, until one succeeds.
    pub last_error: Option<String>,
}

/// Every app this process has used, for `/status`.
pub fn statuses() -> Vec<AppStatus> {
    let mut out: Vec<AppStatus> = table()
        .values()
        .map(|t| {
            let state = t.lock();
            AppStatus {
                app_id: t.app.app_id.clone(),
                installation_id: t.app.installation_id,
                mints: state.mints,
                token_expires_at: state.cached.as_ref().and_then(|c| {
                    c.expires_at
                        .format(&time::format_description::well_known::Rfc3339)
                        .ok()
                }),
                last_error: state.last_error.clone(),
            }
        })
        .collect();
    out.sort_by(|a, b| (&a.app_id, a.installation_id).cmp(&(&b.app_id, b.installation_id)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Vec<u8> {
        let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
        rsa.private_key_to_pem().unwrap()
    }

    #[test]
    fn jwt_claims_are_backdated_and_expire_within_ten_minutes() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let Ok(jwt) = sign_jwt("12345", &key(), now) else {
            panic!("sign");
        };
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header: serde_json::Value =
            serde_json::from_slice(&b64.decode(parts[0]).unwrap()).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(header["alg"], "RS256");
        assert_eq!(claims["iss"], "12345");
        assert_eq!(claims["iat"], 1_800_000_000 - 60);
        let exp = claims["exp"].as_i64().unwrap();
        assert!(exp > 1_800_000_000 && exp <= 1_800_000_000 + 600, "{exp}");
    }

    #[test]
    fn a_key_that_is_not_rsa_pem_is_a_key_error() {
        let now = OffsetDateTime::now_utc();
        assert!(matches!(
            sign_jwt("1", b"not a key", now),
            Err(JwtError::Key)
        ));
        let ec = openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
        )
        .unwrap();
        let pem = openssl::pkey::PKey::from_ec_key(ec)
            .unwrap()
            .private_key_to_pem_pkcs8()
            .unwrap();
        assert!(matches!(sign_jwt("1", &pem, now), Err(JwtError::Key)));
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let s = Secret::new("ghs_supersecret".into());
        assert_eq!(format!("{s:?}"), "Secret(redacted)");
    }
}
