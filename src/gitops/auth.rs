//! What a transport needs to trust the remote and be trusted by it: the
//! credentials callback (a secret only for the configured host and port),
//! TLS verification against `ca_file`, SSH host keys checked against
//! `known_hosts`, and the SSH signature of a signed commit. The checkout
//! ([`super::Checkout`]) decides when to fetch and push.

use std::path::{Path, PathBuf};

use git2::RemoteCallbacks;

use super::url::{host_port, redact};
use crate::config::GitSettings;

/// Why a remote's identity, its certificate or a signing key was not
/// accepted. Each names the file involved, never a secret's content.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read known_hosts_file {}: {source}", path.display())]
    KnownHostsUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{host}: the host key is marked @revoked in {}; refusing to connect", path.display())]
    RevokedHostKey { host: String, path: PathBuf },
    #[error("{host}: the host key does not match {} (changed host key); refusing to connect", path.display())]
    ChangedHostKey { host: String, path: PathBuf },
    #[error("{host}: unknown host; add its key to {} (never accepted blindly)", path.display())]
    UnknownHost { host: String, path: PathBuf },
    #[error("cannot read ca_file {}: {source}", path.display())]
    CaFileUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("ca_file {} holds no PEM certificate", path.display())]
    NoCertificate { path: PathBuf },
    #[error(
        "{host}: the TLS certificate is not trusted by the system's roots or by ca_file {}: {detail}",
        path.display()
    )]
    Untrusted {
        host: String,
        path: PathBuf,
        detail: String,
    },
    #[error("cannot read signing_key_file {}: {source}", path.display())]
    SigningKeyUnreadable {
        path: PathBuf,
        #[source]
        source: ssh_key::Error,
    },
    #[error("cannot sign with {}: {source}", path.display())]
    Sign {
        path: PathBuf,
        #[source]
        source: ssh_key::Error,
    },
    #[error("cannot encode the signature: {source}")]
    Encode {
        #[source]
        source: ssh_key::Error,
    },
}

/// Callbacks shared by fetch and push.
///
/// Credentials are offered once per operation. libgit2 asks again after a
/// rejection, and answering again with the same secret would only loop;
/// the second request becomes one clear error naming the remote instead. A
/// remote that asks when nothing is configured gets that error at once.
///
/// libgit2 replaces a callback's error with a generic message ("invalid or
/// unknown remote ssh hostkey"), so each refusal is also written to `why`,
/// and the caller reports that instead.
pub(super) fn callbacks<'a>(
    settings: &'a GitSettings,
    why: &'a std::cell::RefCell<Option<String>>,
) -> RemoteCallbacks<'a> {
    let refuse = move |reason: String| {
        *why.borrow_mut() = Some(reason.clone());
        git2::Error::from_str(&reason)
    };
    let mut cbs = RemoteCallbacks::new();
    let mut asked = false;
    let mut offered: Option<crate::ghapp::Secret> = None;
    let configured = host_port(&settings.url);
    cbs.credentials(move |url, username, allowed| {
        let remote = redact(url);
        // Only the configured remote's host and port get a secret. libgit2
        // refuses a redirect to another host (see `follow_redirects`) but
        // follows one to another port or path of the same host, which may
        // be someone else's server.
        let asking = host_port(url);
        if asking.is_none() || asking != configured {
            return Err(refuse(format!(
                "{remote} asks for credentials, but it is not the configured remote {} \
                 (redirected?); refusing to send them",
                redact(&settings.url)
            )));
        }
        let again = std::mem::replace(&mut asked, true);
        if let Some(ssh) = settings.ssh.as_ref().filter(|_| allowed.is_ssh_key()) {
            if again {
                return Err(refuse(format!(
                    "{remote} rejected the SSH key {}",
                    ssh.key_file.display()
                )));
            }
            return git2::Cred::ssh_key(username.unwrap_or("git"), None, &ssh.key_file, None);
        }
        if let Some(app) = settings
            .github_app
            .as_ref()
            .filter(|_| allowed.is_user_pass_plaintext())
        {
            use crate::ghapp::TokenSource as _;
            let tokens = crate::ghapp::shared(app);
            if again {
                // Revoked early: the next operation mints another.
                if let Some(token) = offered.take() {
                    tokens.refused(&token);
                }
                return Err(refuse(format!(
                    "{remote} rejected the GitHub App installation token (app {}, installation {}); \
                     does the app have contents: write on the repository?",
                    app.app_id, app.installation_id
                )));
            }
            // Cached across operations and shared with the forge client;
            // minted (on this blocking thread) only when near its expiry.
            let token = tokens
                .token_blocking()
                .map_err(|e| refuse(e.to_string()))?;
            let cred = git2::Cred::userpass_plaintext("x-access-token", token.expose());
            offered = Some(token);
            return cred;
        }
        let Some(token) = settings
            .token
            .as_ref()
            .filter(|_| allowed.is_user_pass_plaintext())
        else {
            return Err(refuse(format!(
                "{remote} asks for credentials, and none are configured"
            )));
        };
        if again {
            return Err(refuse(format!(
                "{remote} rejected the token from {} (user {:?})",
                token.file.display(),
                token.username
            )));
        }
        // Read on every operation: a Kubernetes Secret rotates in place.
        let secret = std::fs::read_to_string(&token.file).map_err(|e| {
            refuse(format!(
                "cannot read token_file {}: {e}",
                token.file.display()
            ))
        })?;
        git2::Cred::userpass_plaintext(&token.username, secret.trim())
    });
    cbs.certificate_check(move |cert, host| {
        if let Some(x509) = cert.as_x509() {
            // libgit2 has verified the chain against the system's roots, but
            // its verdict is not visible here. Passing through keeps it;
            // answering Ok overrides a failure, so that is done only when
            // the configured ca_file vouches for this certificate and host.
            let Some(ca_file) = &settings.ca_file else {
                return Ok(git2::CertificateCheckStatus::CertificatePassthrough);
            };
            return match trusted_by(ca_file, host, x509.data()) {
                Ok(()) => Ok(git2::CertificateCheckStatus::CertificateOk),
                Err(reason) => {
                    // Reported only if libgit2 refuses the certificate too.
                    *why.borrow_mut() = Some(reason.to_string());
                    Ok(git2::CertificateCheckStatus::CertificatePassthrough)
                }
            };
        }
        let Some(hostkey) = cert.as_hostkey() else {
            return Ok(git2::CertificateCheckStatus::CertificatePassthrough);
        };
        let Some(ssh) = &settings.ssh else {
            return Err(refuse(format!(
                "{host}: an SSH remote needs git.known_hosts_file (and git.ssh_key_file)"
            )));
        };
        let key = hostkey.hostkey().unwrap_or_default();
        let port = ssh_port(&settings.url);
        known_host(&ssh.known_hosts_file, host, port, key)
            .map(|()| git2::CertificateCheckStatus::CertificateOk)
            .map_err(|e| refuse(e.to_string()))
    });
    cbs
}

/// An SSH signature over `data` in git's armored form (`-----BEGIN SSH
/// SIGNATURE-----`). The key is read on every call, so a rotated Secret is
/// picked up; errors name the file, never its content.
pub(super) fn ssh_signature(key_file: &Path, data: &[u8]) -> Result<String, AuthError> {
    let key = ssh_key::PrivateKey::read_openssh_file(key_file).map_err(|source| {
        AuthError::SigningKeyUnreadable {
            path: key_file.to_path_buf(),
            source,
        }
    })?;
    let signature = key
        .sign("git", ssh_key::HashAlg::Sha512, data)
        .map_err(|source| AuthError::Sign {
            path: key_file.to_path_buf(),
            source,
        })?;
    signature
        .to_pem(ssh_key::LineEnding::LF)
        .map_err(|source| AuthError::Encode { source })
}

/// Verifies a TLS server's certificate (DER) for `host` against the PEM
/// certificates in `ca_file`, hostname or IP address included. libgit2
/// hands over only the server's own certificate, so any intermediate CA
/// must be in the file as well.
fn trusted_by(ca_file: &Path, host: &str, der: &[u8]) -> Result<(), AuthError> {
    use openssl::x509::{X509, X509StoreContext, store::X509StoreBuilder, verify::X509VerifyParam};
    let refused = |detail: String| AuthError::Untrusted {
        host: host.to_string(),
        path: ca_file.to_path_buf(),
        detail,
    };
    let pem = std::fs::read(ca_file).map_err(|source| AuthError::CaFileUnreadable {
        path: ca_file.to_path_buf(),
        source,
    })?;
    let authorities = X509::stack_from_pem(&pem)
        .ok()
        .filter(|certs| !certs.is_empty())
        .ok_or_else(|| AuthError::NoCertificate {
            path: ca_file.to_path_buf(),
        })?;
    let ssl = |e: openssl::error::ErrorStack| refused(e.to_string());
    let mut store = X509StoreBuilder::new().map_err(ssl)?;
    for authority in authorities {
        store.add_cert(authority).map_err(ssl)?;
    }
    let mut param = X509VerifyParam::new().map_err(ssl)?;
    match host.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
        Ok(ip) => param.set_ip(ip),
        Err(_) => param.set_host(host),
    }
    .map_err(ssl)?;
    store.set_param(&param).map_err(ssl)?;
    let store = store.build();
    let server = X509::from_der(der).map_err(ssl)?;
    let chain = openssl::stack::Stack::new().map_err(ssl)?;
    let mut context = X509StoreContext::new().map_err(ssl)?;
    let verdict = context
        .init(&store, &server, &chain, |c| {
            Ok(c.verify_cert()?.then_some(()).ok_or(c.error()))
        })
        .map_err(ssl)?;
    verdict.map_err(|e| refused(e.error_string().to_string()))
}

/// The port of an SSH remote (`ssh://host:2222/…`); scp-like remotes
/// (`git@host:path`) always use 22.
fn ssh_port(url: &str) -> u16 {
    url.strip_prefix("ssh://")
        .and_then(|rest| rest.split('/').next())
        .map(|authority| authority.rsplit('@').next().unwrap_or(authority))
        .and_then(|host| host.rsplit_once(':'))
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or(22)
}

/// Checks the key an SSH server presented against `known_hosts`, as
/// OpenSSH does: entries name the host plainly (`host`, or `[host]:port`
/// off port 22) or hashed (`|1|salt|hash`, from `ssh-keyscan -H`). A
/// matching `@revoked` key is refused. A different key under the host's
/// name is a changed host key, which could be an attacker, so it is
/// refused too. `@cert-authority` lines are not supported and are skipped.
fn known_host(path: &Path, host: &str, port: u16, presented: &[u8]) -> Result<(), AuthError> {
    use base64::Engine as _;
    let text = std::fs::read_to_string(path).map_err(|source| AuthError::KnownHostsUnreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let name = if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    };
    let mut known_for_host = false;
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let mut fields = line.split_whitespace().peekable();
        let marker = fields.next_if(|f| f.starts_with('@'));
        let (Some(hosts), Some(_kind), Some(blob)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if !hosts.split(',').any(|pattern| names(pattern, &name)) {
            continue;
        }
        let same_key = base64::engine::general_purpose::STANDARD
            .decode(blob)
            .is_ok_and(|k| k == presented);
        match marker {
            Some("@revoked") if same_key => {
                return Err(AuthError::RevokedHostKey {
                    host: host.to_string(),
                    path: path.to_path_buf(),
                });
            }
            Some(_) => continue,
            None if same_key => return Ok(()),
            None => known_for_host = true,
        }
    }
    let (host, path) = (host.to_string(), path.to_path_buf());
    Err(if known_for_host {
        AuthError::ChangedHostKey { host, path }
    } else {
        AuthError::UnknownHost { host, path }
    })
}

/// Whether one known_hosts host pattern names `name` (`host` or
/// `[host]:port`). Hashed patterns are HMAC-SHA1 of the name, keyed by
/// their salt. Wildcards and negations are not supported: a pattern with
/// them matches nothing, which fails closed.
fn names(pattern: &str, name: &str) -> bool {
    use base64::Engine as _;
    use hmac::Mac as _;
    let Some(hashed) = pattern.strip_prefix("|1|") else {
        return pattern == name;
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let Some((Ok(salt), Ok(hash))) = hashed
        .split_once('|')
        .map(|(salt, hash)| (b64.decode(salt), b64.decode(hash)))
    else {
        return false;
    };
    let Ok(mut mac) = hmac::Hmac::<sha1::Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}
