//! Unit tests of the helpers behind config validation.

use super::apps::RepoPath;
use super::settings::{Identity, looks_like_local_path, parse_identity};
use super::source::key_at;

#[test]
fn repo_paths_that_escape_are_refused() {
    for bad in [
        "../x.yaml",
        "a/../../x",
        "/etc/passwd",
        "",
        ".git/config",
        "a\\b",
    ] {
        assert!(RepoPath::new(bad).is_err(), "{bad:?} accepted");
    }
    assert_eq!(
        RepoPath::new("./envs//dev/values.yaml").unwrap().as_str(),
        "envs/dev/values.yaml"
    );
}

#[test]
fn identity_parses_name_and_email() {
    let id = parse_identity("tagwatch <tagwatch@acme.dev>").unwrap();
    assert_eq!(
        id,
        Identity {
            name: "tagwatch".into(),
            email: "tagwatch@acme.dev".into()
        }
    );
    assert!(parse_identity("tagwatch").is_err());
    assert!(parse_identity("<a@b>").is_err());
}

#[test]
fn key_at_names_nested_array_tables() {
    let text = "[git]\nurl = 'x'\n[[apps]]\nname='a'\n[[apps]]\nname='b'\n[[apps.targets]]\nenv='dev'\n[[apps.targets]]\nfiel='x'\n";
    let offset = text.find("fiel").unwrap();
    assert_eq!(key_at(text, offset), "apps[1].targets[1].fiel");
    assert_eq!(key_at(text, text.find("url").unwrap()), "git.url");
}

#[test]
fn local_paths_are_told_from_remotes() {
    assert!(looks_like_local_path("../gitops.git"));
    assert!(looks_like_local_path("/srv/git/gitops"));
    assert!(!looks_like_local_path("git@github.com:acme/gitops.git"));
    assert!(!looks_like_local_path("https://github.com/acme/gitops.git"));
    assert!(!looks_like_local_path("file:///srv/git/gitops"));
}
