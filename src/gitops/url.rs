//! Remote URLs: the clone's directory name, secrets redacted from a URL
//! or a peer's message, which remotes libgit2 reaches through its local
//! transport, and the host and port a remote connects to. Pure text, no
//! I/O beyond asking whether a local path is a directory.

use std::path::{Path, PathBuf};

/// The repository directory of a remote that libgit2 would reach through
/// its local transport: a `file://` URL, or a path to a directory that
/// exists (libgit2 tries a path before the scp-like `host:path` form).
pub(super) fn local_path(url: &str) -> Option<PathBuf> {
    if let Some(rest) = url.strip_prefix("file://") {
        let rest = rest.strip_prefix("localhost").unwrap_or(rest);
        return Some(PathBuf::from(percent_decode(rest)));
    }
    if url.contains("://") {
        return None;
    }
    let path = Path::new(url);
    path.is_dir().then(|| path.to_path_buf())
}

/// The host (lowercased, without brackets) and port a remote URL connects
/// to, with the scheme's default port: `https://h/…` is `(h, 443)`,
/// `ssh://git@h:2222/…` is `(h, 2222)`, scp-like `git@h:path` is
/// `(h, 22)`. `None` for a local path or an unparsable URL.
pub(super) fn host_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None if local_path(url).is_none() => {
            // scp-like: [user@]host:path
            let (authority, _) = url.split_once(':')?;
            let host = authority.rsplit('@').next()?;
            return (!host.is_empty() && !host.contains('/'))
                .then(|| (host.to_ascii_lowercase(), 22));
        }
        None => return None,
    };
    let default = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        "ssh" | "git+ssh" | "ssh+git" => 22,
        "git" => 9418,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let hostport = authority.rsplit('@').next()?;
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    let port = match port {
        Some(p) if !p.is_empty() => p.parse().ok()?,
        _ => default,
    };
    (!host.is_empty()).then(|| (host.to_ascii_lowercase(), port))
}

/// `%XX` escapes decoded, as libgit2 does for a `file://` URL's path.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|b| hex(*b)),
                bytes.get(i + 2).and_then(|b| hex(*b)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The directory name of the clone of `url` at `branch`: readable (the
/// repository's name and the branch) and unique (a hash of both), so two
/// remotes that share a name never share a clone.
pub fn clone_name(url: &str, branch: &str) -> String {
    let name = url
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or("repo");
    let name = name.strip_suffix(".git").unwrap_or(name);
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    // FNV-1a: stable across releases and platforms, unlike std's hasher.
    let mut hash: u64 = 0xcbf29ce484222325;
    for b in url.bytes().chain([0]).chain(branch.bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    format!("{}@{}-{:08x}.git", safe(name), safe(branch), hash as u32)
}

/// Removes the URL's secret from a message a peer or libgit2 wrote, which
/// may quote the URL.
pub(super) fn scrub(message: &str, url: &str) -> String {
    let mut out = message.replace(url, &redact(url));
    if let Some((_, rest)) = url.split_once("://")
        && let Some((userinfo, _)) = rest.split('/').next().unwrap_or("").rsplit_once('@')
    {
        let secret = userinfo.split_once(':').map_or(userinfo, |(_, p)| p);
        if secret.len() >= 4 {
            out = out.replace(secret, "***");
        }
    }
    out
}

/// Removes a password or token from a URL before it reaches a log line or
/// an error. In `https://user:pass@host` the password goes; in
/// `https://TOKEN@host` (a form GitHub documents) the whole user part goes.
/// An ssh user (`ssh://git@host`) is not a secret and stays.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_string();
    };
    let user = match userinfo.split_once(':') {
        Some((user, _password)) => format!("{user}:***"),
        None if scheme.starts_with("ssh") => userinfo.to_string(),
        None => "***".to_string(),
    };
    format!("{scheme}://{user}@{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::{clone_name, redact};

    #[test]
    fn clone_names_are_readable_and_distinct() {
        let a = clone_name("https://github.com/acme/gitops.git", "main");
        assert!(a.starts_with("gitops@main-") && a.ends_with(".git"), "{a}");
        assert_ne!(a, clone_name("https://github.com/other/gitops.git", "main"));
        assert_ne!(
            a,
            clone_name("https://github.com/acme/gitops.git", "release")
        );
        assert!(clone_name("git@host:team/x y.git", "feat/a").starts_with("x_y@feat_a-"));
    }

    #[test]
    fn local_remotes_are_recognised() {
        use std::path::PathBuf;
        assert_eq!(
            super::local_path("file:///srv/git/a%20b.git"),
            Some(PathBuf::from("/srv/git/a b.git"))
        );
        assert_eq!(
            super::local_path("file://localhost/srv/x.git"),
            Some(PathBuf::from("/srv/x.git"))
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap();
        assert_eq!(super::local_path(path), Some(dir.path().to_path_buf()));
        assert_eq!(super::local_path("https://github.com/a/b.git"), None);
        assert_eq!(super::local_path("git@github.com:a/b.git"), None);
        assert_eq!(super::local_path("/no/such/repository.git"), None);
    }

    #[test]
    fn credentials_go_only_to_the_configured_host_and_port() {
        use super::host_port;
        let h = |host: &str, port| Some((host.to_string(), port));
        assert_eq!(
            host_port("https://GitHub.com/a/b.git"),
            h("github.com", 443)
        );
        assert_eq!(
            host_port("http://127.0.0.1:8080/r.git"),
            h("127.0.0.1", 8080)
        );
        assert_eq!(host_port("https://u:p@host:8443/r"), h("host", 8443));
        assert_eq!(host_port("ssh://git@host:2222/r.git"), h("host", 2222));
        assert_eq!(host_port("git@host:team/r.git"), h("host", 22));
        assert_eq!(host_port("http://[::1]:9/r.git"), h("::1", 9));
        // What a redirect to another port or host would ask from.
        assert_ne!(
            host_port("http://127.0.0.1:8080/r.git"),
            host_port("http://127.0.0.1:8081/r.git/info/refs?service=git-upload-pack")
        );
        assert_ne!(
            host_port("https://github.com/a/b.git"),
            host_port("https://github.com.evil.example/a/b.git")
        );
        assert_eq!(host_port("file:///srv/r.git"), None);
    }

    #[test]
    fn secrets_are_scrubbed_from_peer_messages() {
        let url = "https://ghp_SECRET1234@github.com/a/b.git";
        assert_eq!(
            super::scrub(
                "could not reach https://ghp_SECRET1234@github.com/a/b.git (ghp_SECRET1234)",
                url
            ),
            "could not reach https://***@github.com/a/b.git (***)"
        );
    }

    #[test]
    fn tokens_in_urls_are_redacted() {
        assert_eq!(
            redact("https://x-access-token:ghp_secret@github.com/a/b.git"),
            "https://x-access-token:***@github.com/a/b.git"
        );
        assert_eq!(
            redact("https://github.com/a/b.git"),
            "https://github.com/a/b.git"
        );
        assert_eq!(redact("git@github.com:a/b.git"), "git@github.com:a/b.git");
        assert_eq!(
            redact("https://ghp_SECRET@github.com/a/b.git"),
            "https://***@github.com/a/b.git"
        );
        assert_eq!(
            redact("https://u:p@ss@host/a@b.git"),
            "https://u:***@host/a@b.git"
        );
        assert_eq!(
            redact("ssh://git@github.com/a/b.git"),
            "ssh://git@github.com/a/b.git"
        );
        assert_eq!(
            redact("https://host/path@with-at.git"),
            "https://host/path@with-at.git"
        );
    }
}
