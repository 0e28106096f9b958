//! Signed commits for branches that require them: every commit tagwatch
//! makes carries an SSH signature that stock git verifies.

mod support;

use std::process::Command;

use support::*;

/// One app whose registry holds a newer tag than its values file.
fn scene() -> (Moto, GitRemote, Workdir) {
    let moto = Moto::start();
    moto.seed("app", &[("1.0.0", 1), ("1.1.0", 2)]);
    let remote = GitRemote::new(&[("values.yaml", "image:\n  tag: 1.0.0\n")]);
    let work = Workdir::new(
        &moto.endpoint,
        &remote.file_url(),
        &[("app", "app", "^1", "values.yaml")],
    );
    (moto, remote, work)
}

#[test]
fn every_commit_is_signed_and_git_verifies_it() {
    let (_moto, remote, work) = scene();
    let key = work.dir.path().join("signing_key");
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "tagwatch", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    work.edit_config(
        "branch = \"main\"\n",
        "branch = \"main\"\nsigning_key_file = \"signing_key\"\n",
    );

    expect(&work.once(&[]), 0, &["app/dev: promoted 1.0.0 -> 1.1.0"]);

    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let allowed = work.dir.path().join("allowed_signers");
    std::fs::write(&allowed, format!("tagwatch@acme.dev {public}")).unwrap();
    let verify = Command::new("git")
        .args(["-c", "gpg.format=ssh", "-c"])
        .arg(format!("gpg.ssh.allowedSignersFile={}", allowed.display()))
        .args(["verify-commit", "main"])
        .current_dir(remote.bare())
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "git verify-commit failed: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(
        String::from_utf8_lossy(&verify.stderr)
            .contains("Good \"git\" signature for tagwatch@acme.dev"),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );

    // The seed commit is unsigned, so verification is not vacuous.
    let seed = Command::new("git")
        .args(["-c", "gpg.format=ssh", "-c"])
        .arg(format!("gpg.ssh.allowedSignersFile={}", allowed.display()))
        .args(["verify-commit", "main~1"])
        .current_dir(remote.bare())
        .output()
        .unwrap();
    assert!(!seed.status.success(), "an unsigned commit verified");
    // The trailers are intact in the signed commit.
    let message = git(&remote.bare(), &["log", "-1", "--format=%B", "main"]);
    assert!(message.contains("Tagwatch-To: 1.1.0"), "{message}");
}

#[test]
fn an_unreadable_signing_key_fails_the_target_and_writes_nothing() {
    let (_moto, remote, work) = scene();
    work.edit_config(
        "branch = \"main\"\n",
        "branch = \"main\"\nsigning_key_file = \"missing_key\"\n",
    );
    let out = work.once(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        show(&out).contains("cannot read signing_key_file"),
        "{}",
        show(&out)
    );
    assert_eq!(remote.subjects(), ["seed"]);
}
