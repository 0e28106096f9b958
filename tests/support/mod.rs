//! Real peers for the integration tests, started on loopback: moto (through
//! `tests/moto_server.py`) as the ECR API, bare git repositories reached
//! over `file://` and `git daemon`, and the `tagwatch` binary itself.
//!
//! Every peer is owned by a guard that stops it on drop, so a failing test
//! leaves no process behind.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "eu-west-1";

/// The repository's root (where Cargo.toml is).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python with moto installed: `TAGWATCH_TEST_PYTHON`, else the venv
/// that `scripts/test` creates.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("TAGWATCH_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = root().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "{} is missing: run scripts/test, which creates the venv with moto",
        venv.display()
    );
    venv
}

/// A moto server with tagwatch's ECR fixes; killed on drop.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    /// Runs Python with boto3 against this server: `script` sees a client
    /// factory `client(service)` and prints its answer.
    pub fn boto3(&self, script: &str) -> String {
        let prelude = format!(
            "import boto3, json, sys\n\
             def client(service):\n    return boto3.client(service, endpoint_url={:?}, region_name={REGION:?}, aws_access_key_id='testing', aws_secret_access_key='testing')\n",
            self.endpoint
        );
        let out = Command::new(python())
            .arg("-c")
            .arg(format!("{prelude}{script}"))
            .output()
            .expect("run boto3");
        assert!(
            out.status.success(),
            "boto3 script failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn start() -> Moto {
        let mut child = Command::new(python())
            .arg(root().join("tests/moto_server.py"))
            .args(["--host", "127.0.0.1", "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read moto's READY line");
        let endpoint = line
            .trim()
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("moto did not start: {line:?}"))
            .to_string();
        Moto { child, endpoint }
    }

    /// Creates `repository` if needed and adds images: `(tag, pushed_at)`.
    pub fn seed(&self, repository: &str, images: &[(&str, i64)]) -> serde_json::Value {
        let images: Vec<_> = images
            .iter()
            .map(|(tag, at)| serde_json::json!({"tag": tag, "pushedAt": at}))
            .collect();
        let body =
            serde_json::json!({"region": REGION, "repositoryName": repository, "images": images});
        let (status, text) = http(&self.endpoint, "POST", "/_tagwatch/seed", &body.to_string());
        assert_eq!(status, 200, "seed failed: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// The ECR calls moto has answered so far.
    pub fn calls(&self) -> Vec<serde_json::Value> {
        let (status, text) = http(&self.endpoint, "GET", "/_tagwatch/calls", "");
        assert_eq!(status, 200, "{text}");
        serde_json::from_str(&text).unwrap()
    }

    /// The digest moto holds for `tag`.
    pub fn digest(&self, seeded: &serde_json::Value, tag: &str) -> String {
        seeded["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["imageTags"].as_array().unwrap().iter().any(|t| t == tag))
            .unwrap_or_else(|| panic!("{tag} not seeded"))["imageDigest"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 exchange for moto's control API; the AWS calls
/// themselves go through the real SDK inside tagwatch.
pub fn http(endpoint: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let host = endpoint.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    // The control API answers without chunking, so the body is as sent.
    (status, body)
}

/// Runs stock git in `dir` and returns stdout; panics with stderr on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A bare GitOps repository seeded with files, and a scratch working clone.
pub struct GitRemote {
    pub dir: tempfile::TempDir,
}

impl GitRemote {
    /// Creates `remote.git` with one commit on `main` holding `files`.
    pub fn new(files: &[(&str, &str)]) -> GitRemote {
        let dir = tempfile::tempdir().unwrap();
        let bare = dir.path().join("remote.git");
        git(
            dir.path(),
            &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
        );
        let work = dir.path().join("seed");
        git(dir.path(), &["clone", "-q", bare.to_str().unwrap(), "seed"]);
        for (path, text) in files {
            let path = work.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        git(&work, &["add", "-A"]);
        commit(&work, "seed");
        git(&work, &["push", "-q", "origin", "HEAD:main"]);
        GitRemote { dir }
    }

    pub fn bare(&self) -> PathBuf {
        self.dir.path().join("remote.git")
    }

    pub fn file_url(&self) -> String {
        format!("file://{}", self.bare().display())
    }

    /// `git log` of the remote's main branch, one subject per line, newest first.
    pub fn subjects(&self) -> Vec<String> {
        git(&self.bare(), &["log", "--format=%s", "main"])
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Waits until main holds `n` commits; panics with `what` at `deadline`.
    pub fn wait_for_commits(&self, n: usize, deadline: Instant, what: &str) {
        while self.subjects().len() < n {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A file's content at the remote's main branch.
    pub fn show(&self, path: &str) -> String {
        git(&self.bare(), &["show", &format!("main:{path}")])
    }
}

/// Commits in a work tree with a fixed identity.
pub fn commit(work: &Path, message: &str) {
    git(
        work,
        &[
            "-c",
            "user.name=Person",
            "-c",
            "user.email=person@acme.dev",
            "commit",
            "-q",
            "-m",
            message,
        ],
    );
}

/// `git daemon` serving every repository under `base`, read and write;
/// killed on drop.
pub struct GitDaemon {
    child: Child,
    pub port: u16,
}

impl GitDaemon {
    pub fn start(base: &Path) -> GitDaemon {
        let port = free_port();
        // Run git-daemon itself: `git daemon` forks it as a child, and
        // killing the wrapper would leave the daemon running.
        let exec_path = git(base, &["--exec-path"]);
        let child = Command::new(Path::new(exec_path.trim()).join("git-daemon"))
            .args([
                "--export-all",
                "--enable=receive-pack",
                "--reuseaddr",
                "--listen=127.0.0.1",
                &format!("--port={port}"),
                &format!("--base-path={}", base.display()),
                &base.display().to_string(),
            ])
            .stderr(Stdio::null())
            .spawn()
            .expect("start git daemon");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "git daemon did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        GitDaemon { child, port }
    }

    pub fn url(&self, repo: &str) -> String {
        format!("git://127.0.0.1:{}/{repo}", self.port)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs the real `tagwatch` binary in `cwd` (see [`tagwatch_command`]).
pub fn tagwatch(args: &[&str], cwd: &Path) -> Output {
    tagwatch_command()
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run tagwatch")
}

/// The real `tagwatch` binary with AWS credentials that moto accepts and
/// nothing from the developer's own AWS set-up.
pub fn tagwatch_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tagwatch"));
    cmd.env_remove("RUST_LOG")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_REGION")
        .env_remove("AWS_ENDPOINT_URL");
    cmd
}

/// Runs `cmd` to completion with its output captured, or kills it after
/// `limit` and returns `None`: a test of input that might hang fails
/// instead of hanging the suite.
pub fn output_within(cmd: &mut Command, limit: Duration) -> Option<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Read both pipes while waiting, so a chatty child never blocks on a
    // full pipe and looks hung.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    status.map(|status| Output {
        status,
        stdout,
        stderr,
    })
}

/// Asserts the exit status and that stdout holds each expected line.
pub fn expect(out: &Output, code: i32, lines: &[&str]) {
    assert_eq!(out.status.code(), Some(code), "{}", show(out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in lines {
        assert!(stdout.contains(line), "missing {line:?}\n{}", show(out));
    }
}

/// A scratch directory holding a config (see [`config`]) and the checkout.
pub struct Workdir {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Workdir {
    pub fn new(endpoint: &str, git_url: &str, apps: &[(&str, &str, &str, &str)]) -> Workdir {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("tagwatch.toml");
        // An existing empty checkout_dir, as a Kubernetes emptyDir gives.
        std::fs::create_dir(dir.path().join("checkout")).unwrap();
        let text = config(endpoint, git_url, &dir.path().join("checkout"), apps);
        std::fs::write(&config_path, text).unwrap();
        Workdir {
            dir,
            config: config_path,
        }
    }

    /// Replaces `from` with `to` in the config file.
    pub fn edit_config(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        assert!(text.contains(from), "{from:?} is not in the config");
        std::fs::write(&self.config, text.replace(from, to)).unwrap();
    }

    /// `tagwatch once` with this config and any extra flags.
    pub fn once(&self, extra: &[&str]) -> Output {
        let mut args = vec!["once", "--config", self.config.to_str().unwrap()];
        args.extend_from_slice(extra);
        tagwatch(&args, self.dir.path())
    }
}

/// Stdout and stderr, for assertion messages.
pub fn show(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A config for one or more apps, each `(name, repository, constraint, file)`
/// with env `dev` and key `image.tag`.
pub fn config(
    endpoint: &str,
    git_url: &str,
    checkout: &Path,
    apps: &[(&str, &str, &str, &str)],
) -> String {
    let mut text = format!(
        r#"interval = "2m"
listen = "127.0.0.1:0"

[aws]
region = "{REGION}"
endpoint_url = "{endpoint}"

[git]
url = "{git_url}"
branch = "main"
checkout_dir = "{}"
author = "tagwatch <tagwatch@acme.dev>"
"#,
        checkout.display()
    );
    for (name, repository, constraint, file) in apps {
        text.push_str(&format!(
            r#"
[[apps]]
name = "{name}"
repository = "{repository}"
constraint = "{constraint}"
ignore = ["*-debug", "1.4.9"]

[[apps.targets]]
env = "dev"
file = "{file}"
key = "image.tag"
"#
        ));
    }
    text
}

/// Smart HTTP with basic auth: nginx in front of fcgiwrap running
/// `git http-backend` (Python's CGI server cannot serve git: it drops
/// privileges). Serves every repository under `base`; user `git`,
/// password `password`. Both processes are killed on drop.
pub struct GitHttp {
    nginx: Child,
    fcgiwrap: Child,
    pub port: u16,
    scheme: &'static str,
    _dir: tempfile::TempDir,
}

impl GitHttp {
    pub fn start(base: &Path, password: &str) -> GitHttp {
        GitHttp::serve(base, "git", password, None)
    }

    /// The same with another basic-auth user (`x-access-token`, as GitHub
    /// takes an App installation token).
    pub fn start_as(base: &Path, user: &str, password: &str) -> GitHttp {
        GitHttp::serve(base, user, password, None)
    }

    /// The same over HTTPS, with a certificate from `tls`'s private CA.
    pub fn start_tls(base: &Path, password: &str, tls: &TestCa) -> GitHttp {
        GitHttp::serve(base, "git", password, Some(tls))
    }

    fn serve(base: &Path, user: &str, password: &str, tls: Option<&TestCa>) -> GitHttp {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let socket = d.join("fcgi.sock");
        let fcgiwrap = Command::new("fcgiwrap")
            .args(["-s", &format!("unix:{}", socket.display())])
            .stderr(Stdio::null())
            .spawn()
            .expect("start fcgiwrap (Debian package fcgiwrap; scripts/test installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(
                Instant::now() < deadline,
                "fcgiwrap did not create its socket"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::fs::write(d.join("htpasswd"), format!("{user}:{{PLAIN}}{password}\n")).unwrap();
        let exec_path = git(base, &["--exec-path"]);
        let port = free_port();
        // As root, nginx's workers would otherwise run as nobody and be
        // unable to reach fcgiwrap's socket.
        let user = if unsafe_is_root() { "user root;" } else { "" };
        let conf = format!(
            r#"{user}
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log {d}/access.log;
  client_body_temp_path {d}/body;
  fastcgi_temp_path {d}/fastcgi;
  proxy_temp_path {d}/proxy;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{port}{ssl};
    {certs}
    client_max_body_size 0;
    location / {{
      auth_basic "git";
      auth_basic_user_file {d}/htpasswd;
      include /etc/nginx/fastcgi_params;
      fastcgi_pass unix:{sock};
      fastcgi_param SCRIPT_FILENAME {exec}/git-http-backend;
      fastcgi_param GIT_PROJECT_ROOT {base};
      fastcgi_param GIT_HTTP_EXPORT_ALL "";
      fastcgi_param PATH_INFO $uri;
      fastcgi_param REMOTE_USER $remote_user;
    }}
  }}
}}
"#,
            d = d.display(),
            sock = socket.display(),
            exec = exec_path.trim(),
            base = base.display(),
            ssl = if tls.is_some() { " ssl" } else { "" },
            certs = tls.map_or_else(String::new, |ca| format!(
                "ssl_certificate {};\n    ssl_certificate_key {};",
                ca.server_cert.display(),
                ca.server_key.display()
            )),
        );
        std::fs::write(d.join("nginx.conf"), conf).unwrap();
        let nginx = Command::new("nginx")
            .args([
                "-c",
                &d.join("nginx.conf").display().to_string(),
                "-p",
                &d.display().to_string(),
            ])
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx (Debian package nginx; scripts/test installs it)");
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        GitHttp {
            nginx,
            fcgiwrap,
            port,
            scheme: if tls.is_some() { "https" } else { "http" },
            _dir: dir,
        }
    }

    pub fn url(&self, repo: &str) -> String {
        format!("{}://127.0.0.1:{}/{repo}", self.scheme, self.port)
    }
}

/// A throwaway private CA (made with the openssl command) and a server
/// certificate it signed for 127.0.0.1.
pub struct TestCa {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestCa {
    pub fn new() -> TestCa {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(d)
                .output()
                .expect("openssl (Debian package openssl)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=tagwatch test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(d.join("ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext",
            "-out",
            "server.pem",
        ]);
        TestCa {
            ca_cert: d.join("ca.pem"),
            server_cert: d.join("server.pem"),
            server_key: d.join("server.key"),
            _dir: dir,
        }
    }
}

impl Drop for GitHttp {
    fn drop(&mut self) {
        for child in [&mut self.nginx, &mut self.fcgiwrap] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether the tests run as root, read from `id -u` (no libc in tests).
fn unsafe_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// openssh-server on loopback with a throwaway host key, letting in one
/// client key. Serves repositories by absolute path. Killed on drop.
pub struct SshServer {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl SshServer {
    pub fn start() -> SshServer {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for name in ["host_key", "client_key", "other_key"] {
            let out = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(d.join(name))
                .output()
                .expect("ssh-keygen (Debian package openssh-client)");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        // sshd refuses to start without its privilege-separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let port = free_port();
        // Every session goes through git-shell, as on a real git host: the
        // key can run git's pack commands and nothing else.
        let git_shell = Path::new(git(d, &["--exec-path"]).trim()).join("git-shell");
        std::fs::write(
            d.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPermitRootLogin yes\n\
                 ForceCommand {shell} -c \"$SSH_ORIGINAL_COMMAND\"\n",
                d = d.display(),
                shell = git_shell.display(),
            ),
        )
        .unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stderr(Stdio::null())
            .spawn()
            .expect("start sshd (Debian package openssh-server; scripts/test installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "sshd did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        SshServer { child, port, dir }
    }

    pub fn url(&self, repo: &Path) -> String {
        let user = Command::new("id").arg("-un").output().unwrap().stdout;
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            String::from_utf8_lossy(&user).trim(),
            self.port,
            repo.display()
        )
    }

    /// A known_hosts line for this server, with `key` (`host_key` is the
    /// real one; `other_key` stands in for a changed host key).
    pub fn known_hosts_line(&self, key: &str) -> String {
        let public = std::fs::read_to_string(self.dir.path().join(format!("{key}.pub"))).unwrap();
        let mut fields = public.split_whitespace();
        format!(
            "[127.0.0.1]:{} {} {}\n",
            self.port,
            fields.next().unwrap(),
            fields.next().unwrap()
        )
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tagwatch run` in the background with JSON logs at debug level
/// (`RUST_LOG=tagwatch=debug`; stdout and stderr) going to a file, so a
/// long test can read them while it runs and show them when it fails.
/// Stopped with SIGTERM on drop (SIGKILL if it does not exit within 30 s).
pub struct Daemon {
    child: Option<Child>,
    pub log: PathBuf,
    /// When the process was spawned.
    pub started: Instant,
}

impl Daemon {
    /// Starts `tagwatch run --config CONFIG`, appending its output to `log`.
    pub fn start(config: &Path, log: &Path) -> Daemon {
        Daemon::start_with_env(config, log, &[])
    }

    /// [`Daemon::start`] with extra environment variables.
    pub fn start_with_env(config: &Path, log: &Path, env: &[(&str, &str)]) -> Daemon {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open the daemon's log");
        let child = tagwatch_command()
            .args(["run", "--log-format", "json", "--config"])
            .arg(config)
            .env("RUST_LOG", "tagwatch=debug")
            .envs(env.iter().copied())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start tagwatch run");
        Daemon {
            child: Some(child),
            log: log.to_path_buf(),
            started: Instant::now(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Everything logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Log lines whose `message` field is exactly `message`.
    pub fn count(&self, message: &str) -> usize {
        count_messages(&self.log_text(), message)
    }

    /// Panics (with the log) if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
            panic!(
                "tagwatch run exited early with {status}:\n{}",
                self.log_text()
            );
        }
    }

    /// SIGTERM, then waits for the exit (a cycle under way finishes first).
    pub fn stop(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        terminate(&mut child, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("tagwatch run ignored SIGTERM for 30 s"))
    }

    /// SIGKILL, as the OOM killer or a node failure would, and reap it.
    pub fn kill(mut self) {
        let mut child = self.child.take().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take()
            && terminate(&mut child, Duration::from_secs(30)).is_none()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends SIGTERM and waits up to `grace` for the exit; `None` if it did not.
fn terminate(child: &mut Child, grace: Duration) -> Option<std::process::ExitStatus> {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + grace;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// JSON log lines whose `message` field is exactly `message`.
pub fn count_messages(log: &str, message: &str) -> usize {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == message)
        .count()
}

/// A promotion commit on a branch, read back through git's own trailer
/// parser (`%(trailers:key=…)`), which is the contract src/trailers.rs
/// writes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Landed {
    pub commit: String,
    /// Committer time, seconds since the epoch.
    pub time: i64,
    pub subject: String,
    pub app: String,
    pub env: String,
    pub from: String,
    pub to: String,
}

/// The promotions on `branch` of the repository at `repo`, oldest first.
/// Commits without a `Tagwatch-App` trailer are skipped.
pub fn promotions(repo: &Path, branch: &str) -> Vec<Landed> {
    let field = |key: &str| format!("%(trailers:key={key},valueonly,separator=%x2C)");
    let format = format!(
        "--format=%H%x1f%ct%x1f%s%x1f{}%x1f{}%x1f{}%x1f{}%x1e",
        field("Tagwatch-App"),
        field("Tagwatch-Env"),
        field("Tagwatch-From"),
        field("Tagwatch-To"),
    );
    git(repo, &["log", "--reverse", &format, branch])
        .split('\x1e')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .filter_map(|record| {
            let f: Vec<&str> = record.split('\x1f').map(str::trim).collect();
            assert_eq!(f.len(), 7, "unexpected git log record {record:?}");
            (!f[3].is_empty()).then(|| Landed {
                commit: f[0].to_string(),
                time: f[1].parse().unwrap(),
                subject: f[2].to_string(),
                app: f[3].to_string(),
                env: f[4].to_string(),
                from: f[5].to_string(),
                to: f[6].to_string(),
            })
        })
        .collect()
}

/// `git fsck --full --strict` of `repo`: what it reports, if anything
/// (dangling objects, which a rejected push may leave on a server, are not
/// corruption and are not reported).
pub fn fsck(repo: &Path) -> Vec<String> {
    let out = Command::new("git")
        .args([
            "fsck",
            "--full",
            "--strict",
            "--no-dangling",
            "--no-progress",
        ])
        .current_dir(repo)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", repo)
        .output()
        .expect("run git fsck");
    if out.status.success() && out.stdout.is_empty() && out.stderr.is_empty() {
        Vec::new()
    } else {
        vec![format!("git fsck of {}: {}", repo.display(), show(&out))]
    }
}

/// [`fsck`] that panics on any report.
pub fn assert_fsck_clean(repo: &Path) {
    let reports = fsck(repo);
    assert!(reports.is_empty(), "{}", reports.join("\n"));
}

/// A scratch directory that is kept, and named, when the test fails: logs
/// and clones in it are what a failure needs looking at.
pub struct KeepOnFailure(pub tempfile::TempDir);

impl KeepOnFailure {
    pub fn new() -> KeepOnFailure {
        KeepOnFailure(tempfile::tempdir().unwrap())
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for KeepOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.disable_cleanup(true);
            eprintln!("kept for inspection: {}", self.0.path().display());
        }
    }
}

/// The sum of the samples of `name` in a `/metrics` text whose labels
/// include `labels` (0 when there are none).
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
