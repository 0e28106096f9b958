//! Clock skew: an image ECR dates in the future is never old enough for
//! `min_age`, and a promotion commit dated in the future has not soaked.
//! Neither fires early, and the first is logged as a warning.

mod support;

use support::*;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[test]
fn future_push_times_and_commit_times_never_fire_early() {
    let moto = Moto::start();
    let future = OffsetDateTime::now_utc().unix_timestamp() + 3 * 3600;
    moto.seed("app", &[("1.0.0", 1), ("1.1.0", future)]);
    let remote = GitRemote::new(&[
        ("dev.yaml", "image:\n  tag: 1.0.0\n"),
        ("prod.yaml", "image:\n  tag: 1.0.0\n"),
    ]);
    let work = Workdir::new(
        &moto.endpoint,
        &remote.file_url(),
        &[("app", "app", "^1", "dev.yaml")],
    );
    work.edit_config("ignore = [", "min_age = \"10m\"\nignore = [");
    let out = work.once(&[]);
    expect(&out, 0, &["app/dev: up to date at 1.0.0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("imagePushedAt is in the future"),
        "{stderr}"
    );
    assert_eq!(remote.subjects(), ["seed"]);

    // A commit dated three hours ahead (a skewed writer): prod, soaking an
    // hour, waits rather than counting negative time as soaked.
    work.edit_config("min_age = \"10m\"\n", "");
    work.edit_config(
        "file = \"dev.yaml\"\nkey = \"image.tag\"\n",
        "file = \"dev.yaml\"\nkey = \"image.tag\"\n\n[[apps.targets]]\nenv = \"prod\"\nfile = \"prod.yaml\"\nkey = \"image.tag\"\npromote_from = \"dev\"\nsoak = \"1h\"\n",
    );
    let ahead = OffsetDateTime::from_unix_timestamp(future).unwrap();
    expect(
        &work.once(&["--now", &ahead.format(&Rfc3339).unwrap()]),
        0,
        &["app/dev: promoted 1.0.0 -> 1.1.0"],
    );
    expect(
        &work.once(&[]),
        0,
        &["app/prod: waiting: dev has run 1.1.0 for 0s; soak is 1h"],
    );
    assert_eq!(remote.show("prod.yaml"), "image:\n  tag: 1.0.0\n");
}
