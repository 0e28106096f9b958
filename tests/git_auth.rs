//! HTTPS-style authentication against a real smart-HTTP git server (nginx,
//! fcgiwrap, git http-backend) with basic auth: the token comes from a
//! file, is re-read when it rotates, and never appears in any output.

mod support;

use support::*;

const TOKEN: &str = "tw-secret-token-1234";
const VALUES: &str = "image:\n  tag: 1.0.0\n";

fn setup(moto: &Moto, server: &GitHttp, remote: &GitRemote, token: &str) -> Workdir {
    let work = Workdir::new(
        &moto.endpoint,
        &server.url("remote.git"),
        &[("app", "app", "^1", "values.yaml")],
    );
    std::fs::write(work.dir.path().join("token"), format!("{token}\n")).unwrap();
    let text = std::fs::read_to_string(&work.config).unwrap().replace(
        "branch = \"main\"",
        "branch = \"main\"\ntoken_file = \"token\"\nusername = \"git\"",
    );
    std::fs::write(&work.config, text).unwrap();
    let _ = remote;
    work
}

#[test]
fn a_token_from_a_file_authenticates_over_http_and_rotates() {
    let moto = Moto::start();
    moto.seed("app", &[("1.0.0", 1), ("1.1.0", 2)]);
    let remote = GitRemote::new(&[("values.yaml", VALUES)]);
    git(&remote.bare(), &["config", "http.receivepack", "true"]);
    let server = GitHttp::start(remote.dir.path(), TOKEN);

    // Wrong token: one clear error naming the remote, exit 1, no secret.
    let work = setup(&moto, &server, &remote, "wrong-token-5678");
    let out = work.once(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let all = show(&out);
    assert!(all.contains("rejected the token from"), "{all}");
    assert!(
        !all.contains("wrong-token-5678"),
        "the token leaked:\n{all}"
    );
    assert_eq!(remote.subjects(), ["seed"]);

    // The Secret rotates to the right token: picked up without a restart.
    std::fs::write(work.dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
    let out = work.once(&[]);
    expect(&out, 0, &["app/dev: promoted 1.0.0 -> 1.1.0"]);
    assert!(
        !show(&out).contains(TOKEN),
        "the token leaked:\n{}",
        show(&out)
    );
    assert_eq!(remote.subjects(), ["app: dev 1.0.0 -> 1.1.0", "seed"]);

    // No token at all: the server's 401 gives the same kind of single error.
    let text = std::fs::read_to_string(&work.config)
        .unwrap()
        .replace("token_file = \"token\"\nusername = \"git\"\n", "");
    std::fs::write(&work.config, text).unwrap();
    std::fs::remove_dir_all(work.dir.path().join("checkout")).unwrap();
    let out = work.once(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        show(&out).contains("asks for credentials, and none are configured"),
        "{}",
        show(&out)
    );
}
