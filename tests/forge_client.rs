//! tagwatch's forge client through the real binary (`tagwatch once` with a
//! `update = "pull-request"` target), against the GitHub and GitLab fakes
//! (tests/support/forge/): what it refuses (a redirect, an oversized
//! answer), how far it retries, and what it asks of the forge. Each
//! scenario is one function over [`ForgeFake`]; `both!` runs it on each
//! forge, as `scenario::github` and `scenario::gitlab`.

#[path = "support/forge/mod.rs"]
mod forge;
mod support;

use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use forge::{Fault, ForgeFake, GitHubConfig, GitHubFake, GitLabConfig, GitLabFake, Match};
use support::*;

const TOKEN: &str = "forge-token-5678";

/// A fake forge of each kind, serving the remote's bare repository.
fn github(bare: &std::path::Path) -> GitHubFake {
    GitHubFake::start(
        GitHubConfig::new("acme", "gitops")
            .token(TOKEN)
            .git_dir(bare),
    )
}

fn gitlab(bare: &std::path::Path) -> GitLabFake {
    GitLabFake::start(
        GitLabConfig::new("acme/platform/gitops")
            .token(TOKEN)
            .user(7, "alice")
            .user(8, "bob")
            .git_dir(bare),
    )
}

/// Runs a scenario `fn(&dyn ForgeFake, &GitRemote)` on each forge.
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[test]
            fn github() {
                let remote = super::remote();
                let fake = super::github(&remote.bare());
                super::$name(&fake, &remote);
            }

            #[test]
            fn gitlab() {
                let remote = super::remote();
                let fake = super::gitlab(&remote.bare());
                super::$name(&fake, &remote);
            }
        }
    };
}

fn remote() -> GitRemote {
    GitRemote::new(&[
        ("dev.yaml", "image:\n  tag: 1.0.0\n"),
        ("prod.yaml", "image:\n  tag: 1.0.0\n"),
    ])
}

/// ECR with `app` at 1.0.0 and 1.1.0, and a config whose dev target
/// commits and whose prod target opens a request (`prod` and `forge` are
/// extra lines for the target and the `[forge]` section).
struct Scene {
    moto: Moto,
    work: Workdir,
}

fn scene(fake: &dyn ForgeFake, remote: &GitRemote, prod: &str, forge: &str) -> Scene {
    let moto = Moto::start();
    moto.seed("app", &[("1.0.0", 1), ("1.1.0", 2)]);
    let work = Workdir::new(
        &moto.endpoint,
        &remote.file_url(),
        &[("app", "app", ">=1.0.0", "dev.yaml")],
    );
    let text = std::fs::read_to_string(&work.config).unwrap();
    std::fs::write(
        &work.config,
        format!(
            "{text}\n[[apps.targets]]\nenv = \"prod\"\nfile = \"prod.yaml\"\nkey = \"image.tag\"\nupdate = \"pull-request\"\n{prod}{}",
            fake.section("forge-token", forge)
        ),
    )
    .unwrap();
    std::fs::write(work.dir.path().join("forge-token"), format!("{TOKEN}\n")).unwrap();
    Scene { moto, work }
}

impl Scene {
    /// `tagwatch once`, failed if it takes longer than `limit`.
    fn once_within(&self, limit: Duration) -> (Output, Duration) {
        let started = Instant::now();
        let out = output_within(
            tagwatch_command()
                .args(["once", "--config"])
                .arg(&self.work.config)
                .current_dir(self.work.dir.path()),
            limit,
        )
        .unwrap_or_else(|| panic!("tagwatch once still running after {limit:?}"));
        (out, started.elapsed())
    }
}

// ---------------------------------------------------------------------------
// Issue 13 item 11: no redirects with credentials
// ---------------------------------------------------------------------------

/// An `api_url` answering 307 to another host must not hand that host the
/// token (reqwest strips `Authorization` on such a redirect, but not
/// GitLab's `PRIVATE-TOKEN`): tagwatch follows no redirect, and the
/// target's error names where it was sent.
fn forge_token_does_not_follow_a_cross_host_redirect(fake: &dyn ForgeFake, remote: &GitRemote) {
    // The second listener: another fake, which logs every request with its
    // headers.
    let elsewhere = GitLabFake::start(GitLabConfig::new("thief/loot").token("unused"));
    let location = format!(
        "{}/projects/thief%2Floot/merge_requests",
        elsewhere.api_url()
    );
    let s = scene(fake, remote, "", "");
    fake.fail_next(
        Match::any(),
        100,
        Fault::Response {
            status: 307,
            headers: vec![("location".into(), location.clone())],
            body: String::new(),
        },
    );
    let (out, _) = s.once_within(Duration::from_secs(60));
    expect(&out, 1, &["app/dev: promoted 1.0.0 -> 1.1.0"]);
    let stolen = elsewhere.requests();
    for r in &stolen {
        assert!(
            !r.headers.iter().any(|(_, v)| v.contains(TOKEN)),
            "the token reached the other host: {} {} {:?}",
            r.method,
            r.path,
            r.headers
        );
    }
    assert!(
        stolen.is_empty(),
        "the redirect was followed: {:?}",
        stolen
            .iter()
            .map(|r| (&r.method, &r.path, &r.headers))
            .collect::<Vec<_>>()
    );
    let text = show(&out);
    assert!(
        text.contains(&format!(
            "app/prod: failed (forge): {} {}",
            fake.kind(),
            fake.repository()
        )) && text.contains(&format!("answered 307 redirecting to {location}"))
            && text.contains("does not follow redirects with credentials"),
        "{text}"
    );
    assert_eq!(fake.requests().len(), 1, "a redirect is not retried");
    assert!(!text.contains(TOKEN));
}
both!(forge_token_does_not_follow_a_cross_host_redirect);

// ---------------------------------------------------------------------------
// Issue 13 item 17: bounded reads
// ---------------------------------------------------------------------------

/// A 10 MB answer (with its length) and an endless one (without) both fail
/// the target with a clear error, and the endless one is abandoned after a
/// few MiB: the client never holds more than its cap.
fn an_oversized_forge_answer_fails_clearly_without_reading_it_all(
    fake: &dyn ForgeFake,
    remote: &GitRemote,
) {
    let s = scene(fake, remote, "", "");
    fake.fail_next(
        Match::any(),
        1,
        Fault::Response {
            status: 200,
            headers: Vec::new(),
            body: format!("[{}]", " ".repeat(10 << 20)),
        },
    );
    let (out, _) = s.once_within(Duration::from_secs(60));
    expect(&out, 1, &[]);
    assert!(
        show(&out).contains("the answer is larger than 4 MiB"),
        "{}",
        show(&out)
    );

    let sent = Arc::new(AtomicUsize::new(0));
    fake.fail_next(Match::any(), 1, Fault::Endless { sent: sent.clone() });
    let (out, took) = s.once_within(Duration::from_secs(60));
    expect(&out, 1, &[]);
    assert!(
        show(&out).contains("the answer is larger than 4 MiB"),
        "{}",
        show(&out)
    );
    // What the fake produced: the 4 MiB read plus what the socket buffers
    // held when the client hung up; never the 4 GiB on offer.
    let sent = sent.load(Ordering::Relaxed);
    assert!(sent < 32 << 20, "{sent} bytes streamed in {took:?}");
    assert_eq!(
        fake.requests().len(),
        2,
        "an oversized answer is not retried"
    );
    drop(s.moto);
}
both!(an_oversized_forge_answer_fails_clearly_without_reading_it_all);
