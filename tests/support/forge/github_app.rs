//! The GitHub fake's App authentication: `POST
//! /app/installations/{id}/access_tokens` verifies the JWT (RS256, against
//! the app's public key; `iss`, `iat`, `exp` as GitHub checks them) and
//! issues installation tokens that expire; the REST routes then accept
//! such a token until its `expires_at`. The fake's clock can be moved.

use std::sync::{Arc, Mutex};

use axum::response::Response;
use base64::Engine as _;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::github::GitHubState;
use super::server::*;

const GH_DOC_TOKEN: &str =
    "https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app";

/// The app side of the fake.
pub struct FakeApp {
    pub app_id: String,
    pub installation_id: u64,
    /// The app's public key (PEM), which verifies its JWTs.
    pub public_key_pem: Vec<u8>,
    /// How long an issued token lives (GitHub: an hour).
    pub token_ttl: time::Duration,
    /// Uninstalled: minting answers 404.
    pub revoked: bool,
    /// Tokens issued: (token, expires_at).
    pub tokens: Vec<(String, OffsetDateTime)>,
    /// Added to the system clock: the fake's "now".
    pub clock_offset: time::Duration,
    /// Why each refused mint was refused, in order.
    pub refusals: Vec<String>,
    /// The next token's value, if the test fixes it (for a git server's
    /// password file); else `ghs_fake_N`.
    pub next_tokens: Vec<String>,
}

impl FakeApp {
    pub fn new(app_id: &str, installation_id: u64, public_key_pem: &[u8]) -> FakeApp {
        FakeApp {
            app_id: app_id.to_string(),
            installation_id,
            public_key_pem: public_key_pem.to_vec(),
            token_ttl: time::Duration::hours(1),
            revoked: false,
            tokens: Vec::new(),
            clock_offset: time::Duration::ZERO,
            refusals: Vec::new(),
            next_tokens: Vec::new(),
        }
    }

    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.clock_offset
    }

    /// Whether `token` was issued here and has not expired.
    pub fn accepts(&self, token: &str) -> bool {
        let now = self.now();
        self.tokens.iter().any(|(t, exp)| t == token && now < *exp)
    }

    /// Checks a JWT as GitHub does; the reason it is refused, if it is.
    fn verify(&self, jwt: &str) -> Result<(), String> {
        use openssl::{hash::MessageDigest, pkey::PKey, sign::Verifier};
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let parts: Vec<&str> = jwt.split('.').collect();
        let [header, claims, signature] = parts[..] else {
            return Err("A JSON web token could not be decoded".into());
        };
        let decode = |part: &str| -> Result<Value, String> {
            let bytes = b64
                .decode(part)
                .map_err(|_| "A JSON web token could not be decoded".to_string())?;
            serde_json::from_slice(&bytes)
                .map_err(|_| "A JSON web token could not be decoded".to_string())
        };
        let header = decode(header)?;
        if header["alg"] != "RS256" {
            return Err(format!("fake: alg must be RS256, got {}", header["alg"]));
        }
        let key = PKey::public_key_from_pem(&self.public_key_pem).expect("public key");
        let signature = b64
            .decode(signature)
            .map_err(|_| "A JSON web token could not be decoded".to_string())?;
        let mut verifier = Verifier::new(MessageDigest::sha256(), &key).unwrap();
        let signed = &jwt[..jwt.rfind('.').unwrap()];
        verifier.update(signed.as_bytes()).unwrap();
        if !verifier.verify(&signature).unwrap_or(false) {
            // What GitHub answers for a JWT signed by another key.
            return Err("A JSON web token could not be decoded".into());
        }
        let claims = decode(claims)?;
        let iss = match &claims["iss"] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return Err("'Issuer' claim ('iss') must be a String or Integer".into()),
        };
        if iss != self.app_id {
            return Err(format!("fake: no app {iss}"));
        }
        let now = self.now().unix_timestamp();
        let (Some(iat), Some(exp)) = (claims["iat"].as_i64(), claims["exp"].as_i64()) else {
            return Err("'Issued at' and 'Expiration time' claims must be Integers".into());
        };
        if iat > now {
            return Err(
                "'Issued at' claim ('iat') must be an Integer representing a time in the past"
                    .into(),
            );
        }
        if exp <= now {
            return Err("'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires".into());
        }
        if exp > now + 600 {
            return Err("'Expiration time' claim ('exp') is too far in the future".into());
        }
        Ok(())
    }
}

/// `POST /app/installations/{id}/access_tokens`.
pub(super) fn mint(state: &Arc<Mutex<GitHubState>>, inc: &Incoming, id: &str) -> Response {
    let mut s = lock(state);
    let Some(app) = s.app.as_mut() else {
        return gh_app_error(404, "Not Found");
    };
    let jwt = inc
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .trim()
        .to_string();
    if let Err(reason) = app.verify(&jwt) {
        app.refusals.push(reason.clone());
        return gh_app_error(401, &reason);
    }
    if app.revoked || id != app.installation_id.to_string() {
        app.refusals.push("no such installation".into());
        return gh_app_error(404, "Not Found");
    }
    let token = if app.next_tokens.is_empty() {
        format!("ghs_fake_{}", app.tokens.len() + 1)
    } else {
        app.next_tokens.remove(0)
    };
    let expires_at = app.now() + app.token_ttl;
    app.tokens.push((token.clone(), expires_at));
    let body = json!({
        "token": token,
        "expires_at": expires_at.replace_nanosecond(0).unwrap().format(&Rfc3339).unwrap(),
        "permissions": { "contents": "write", "pull_requests": "write" },
        "repository_selection": "selected",
    });
    respond(
        201,
        Vec::new(),
        "application/json; charset=utf-8",
        body.to_string(),
    )
}

fn gh_app_error(status: u16, message: &str) -> Response {
    respond(
        status,
        Vec::new(),
        "application/json; charset=utf-8",
        json!({
            "message": message,
            "documentation_url": GH_DOC_TOKEN,
            "status": status.to_string(),
        })
        .to_string(),
    )
}
