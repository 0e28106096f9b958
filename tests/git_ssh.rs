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

    // The real host key: fetch and push over SSH.
    std::fs::write(&known_hosts, server.known_hosts_line("host_key")).unwrap();
    expect(&work.once(&[]), 0, &["app/dev: promoted 1.0.0 -> 1.1.0"]);
    assert_eq!(remote.subjects(), ["app: dev 1.0.0 -> 1.1.0", "seed"]);

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
