//! SSH remotes against a real openssh-server: the key authenticates, and
//! the server's host key is always checked against known_hosts — an
//! unknown or changed key is an error, never a prompt or a silent accept.

mod support;

use support::*;

#[test]
fn ssh_key_and_known_hosts_are_required_and_checked() {
    let moto = Moto::start();
    moto.seed("app", &[("1.0.0", 1), ("1.1.0", 2)]);
    let remote = GitRemote::new(&[("values.yaml", "image:\n  tag: 1.0.0\n")]);
    let server = SshServer::start();
    let work = Workdir::new(
        &moto.endpoint,
        &server.url(&remote.bare()),
        &[("app", "app", "^1", "values.yaml")],
    );
    let keys = server.dir.path();
    let text = std::fs::read_to_string(&work.config).unwrap().replace(
        "branch = \"main\"\n",
        &format!(
            "branch = \"main\"\nssh_key_file = \"{}\"\nknown_hosts_file = \"known_hosts\"\n",
            keys.join("client_key").display()
        ),
    );
    std::fs::write(&work.config, text).unwrap();
    let known_hosts = work.dir.path().join("known_hosts");

    // Unknown host: refused, nothing written.
    std::fs::write(&known_hosts, "").unwrap();
    let out = work.once(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(show(&out).contains("unknown host"), "{}", show(&out));

    // Changed host key: refused.
    std::fs::write(&known_hosts, server.known_hosts_line("other_key")).unwrap();
    let out = work.once(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(show(&out).contains("changed host key"), "{}", show(&out));
    assert_eq!(remote.subjects(), ["seed"]);

    // The real key, revoked: refused even though it matches.
    std::fs::write(
        &known_hosts,
        format!("@revoked {}", server.known_hosts_line("host_key")),
    )
    .unwrap();
    let out = work.once(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(show(&out).contains("@revoked"), "{}", show(&out));

    // The real host key, hashed the way `ssh-keyscan -H` writes it: fetch
    // and push over SSH, through git-shell.
    std::fs::write(&known_hosts, server.known_hosts_line("host_key")).unwrap();
    let hashed = std::process::Command::new("ssh-keygen")
        .args(["-H", "-f"])
        .arg(&known_hosts)
        .output()
        .unwrap();
    assert!(hashed.status.success(), "{hashed:?}");
    let text = std::fs::read_to_string(&known_hosts).unwrap();
    assert!(
        text.starts_with("|1|") && !text.contains("127.0.0.1"),
        "{text}"
    );
    let out = work.once(&[]);
    expect(&out, 0, &["app/dev: promoted 1.0.0 -> 1.1.0"]);
    assert_eq!(remote.subjects(), ["app: dev 1.0.0 -> 1.1.0", "seed"]);
    // The server only runs git: a shell command is refused by git-shell.
    let shell = std::process::Command::new("ssh")
        .args(["-o", "BatchMode=yes", "-o", "UserKnownHostsFile=/dev/null"])
        .args(["-o", "StrictHostKeyChecking=no", "-i"])
        .arg(keys.join("client_key"))
        .args(["-p", &server.port.to_string(), "127.0.0.1", "id"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&shell.stderr).contains("unrecognized command"),
        "git-shell should refuse a shell command: {shell:?}"
    );

    // The private key's content never appears in anything printed.
    let secret = std::fs::read_to_string(keys.join("client_key")).unwrap();
    for line in secret.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!show(&out).contains(line), "the SSH key leaked");
    }

    // A key the server does not accept: one clear error.
    let text = std::fs::read_to_string(&work.config)
        .unwrap()
        .replace("client_key", "other_key");
    std::fs::write(&work.config, text).unwrap();
    moto.seed("app", &[("1.2.0", 3)]);
    let out = work.once(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        show(&out).contains("rejected the SSH key"),
        "{}",
        show(&out)
    );
}
