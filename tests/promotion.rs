//! Promotion between environments, through the real binary: dev commits
//! straight to main, prod goes through a pull request on the GitHub and
//! GitLab fakes (tests/support/forge/), after dev has soaked. Time is
//! injected with `once --now`, never slept.

#[path = "support/forge/mod.rs"]
mod forge;
mod support;

use forge::{Fault, GitHubConfig, GitHubFake, GitLabConfig, GitLabFake, Match};
use support::*;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const TOKEN: &str = "forge-token-5678";

/// One fake forge, seen the same way whichever it is.
enum Fake {
    Hub(GitHubFake),
    Lab(GitLabFake),
}

/// A pull or merge request as a test needs it.
#[derive(Debug)]
struct Pr {
    title: String,
    body: String,
    open: bool,
    branch: String,
    comments: Vec<String>,
    labels: Vec<String>,
    url_number: u64,
}

impl Fake {
    fn github(bare: &std::path::Path) -> Fake {
        Fake::Hub(GitHubFake::start(
            GitHubConfig::new("acme", "gitops")
                .token(TOKEN)
                .git_dir(bare),
        ))
    }

    fn gitlab(bare: &std::path::Path) -> Fake {
        Fake::Lab(GitLabFake::start(
            GitLabConfig::new("acme/platform/gitops")
                .token(TOKEN)
                .user(7, "alice")
                .git_dir(bare),
        ))
    }

    /// The `[forge]` section pointing at this fake.
    fn section(&self) -> String {
        let (kind, repository, url) = match self {
            Fake::Hub(f) => ("github", "acme/gitops", f.api_url()),
            Fake::Lab(f) => ("gitlab", "acme/platform/gitops", f.api_url()),
        };
        format!(
            "\n[forge]\nkind = \"{kind}\"\nrepository = \"{repository}\"\ntoken_file = \"forge-token\"\napi_url = \"{url}\"\nlabels = [\"tagwatch\"]\n"
        )
    }

    fn prs(&self) -> Vec<Pr> {
        match self {
            Fake::Hub(f) => f
                .pulls()
                .into_iter()
                .map(|p| Pr {
                    open: p.is_open(),
                    title: p.title,
                    body: p.body.unwrap_or_default(),
                    branch: p.head_ref,
                    comments: p.comments.into_iter().map(|c| c.body).collect(),
                    labels: p.labels,
                    url_number: p.number,
                })
                .collect(),
            Fake::Lab(f) => f
                .merge_requests()
                .into_iter()
                .map(|m| Pr {
                    open: m.is_open(),
                    title: m.title,
                    body: m.description.unwrap_or_default(),
                    branch: m.source_branch,
                    comments: m.notes.into_iter().map(|c| c.body).collect(),
                    labels: m.labels,
                    url_number: m.iid,
                })
                .collect(),
        }
    }

    /// The fake answered no 4xx of its own accord: option failures are only
    /// logged, so a happy path that sent a bad request shows up only here.
    fn assert_no_client_errors(&self) {
        match self {
            Fake::Hub(f) => f.assert_no_client_errors(),
            Fake::Lab(f) => f.assert_no_client_errors(),
        }
    }

    fn creates(&self) -> usize {
        match self {
            Fake::Hub(f) => f.create_calls(),
            Fake::Lab(f) => f.create_calls(),
        }
    }
}

/// `app` with dev (commit) and prod (pull request from dev after `soak`),
/// both files at 1.0.0, and the forge's token in place.
fn scene(moto: &Moto, remote: &GitRemote, fake: &Fake, prod: &str) -> Workdir {
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
            fake.section()
        ),
    )
    .unwrap();
    std::fs::write(work.dir.path().join("forge-token"), format!("{TOKEN}\n")).unwrap();
    work
}

fn at(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

fn minutes(n: i64) -> time::Duration {
    time::Duration::minutes(n)
}

const FILES: &[(&str, &str)] = &[
    ("dev.yaml", "image:\n  tag: 1.0.0\n"),
    ("prod.yaml", "image:\n  tag: 1.0.0\n"),
];

/// The "done when", step by step, on one forge.
fn dev_then_prod_after_soak(fake_for: fn(&std::path::Path) -> Fake) {
    let moto = Moto::start();
    moto.seed("app", &[("1.0.0", 1)]);
    let remote = GitRemote::new(FILES);
    let fake = fake_for(&remote.bare());
    let work = scene(
        &moto,
        &remote,
        &fake,
        "promote_from = \"dev\"\nsoak = \"5m\"\n",
    );
    let t0 = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();

    // A new tag lands in dev at once; prod waits on the soak.
    moto.seed("app", &[("1.1.0", 2)]);
    let out = work.once(&["--now", &at(t0)]);
    expect(
        &out,
        0,
        &[
            "app/dev: promoted 1.0.0 -> 1.1.0",
            "app/prod: waiting: dev has run 1.1.0 for 0s; soak is 5m",
        ],
    );
    assert_eq!(remote.subjects(), ["app: dev 1.0.0 -> 1.1.0", "seed"]);
    assert!(fake.prs().is_empty());

    // One second short of five minutes: still waiting, nothing opened.
    let out = work.once(&["--now", &at(t0 + minutes(5) - time::Duration::seconds(1))]);
    expect(
        &out,
        0,
        &["app/prod: waiting: dev has run 1.1.0 for 4m 59s"],
    );
    assert!(fake.prs().is_empty());

    // Five minutes: exactly one request, main untouched for prod.
    let out = work.once(&["--now", &at(t0 + minutes(5))]);
    expect(&out, 0, &["app/prod: proposed 1.0.0 -> 1.1.0 ("]);
    let prs = fake.prs();
    assert_eq!(prs.len(), 1, "{prs:?}");
    let pr = &prs[0];
    assert!(pr.open);
    assert_eq!(pr.branch, "tagwatch/app/prod");
    assert_eq!(pr.title, "app: promote prod to 1.1.0");
    assert_eq!(pr.labels, ["tagwatch"]);
    for needle in [
        "| app | env | file | from | to | digest | pushed at |",
        "| app | prod | `prod.yaml` | `1.0.0` | `1.1.0` | `sha256:",
        "dev has run `1.1.0` for 5m",
        ".console.aws.amazon.com/ecr/repositories/private/",
    ] {
        assert!(pr.body.contains(needle), "{needle:?} not in\n{}", pr.body);
    }
    assert_eq!(remote.show("prod.yaml"), "image:\n  tag: 1.0.0\n");
    // The branch: main plus one commit with the usual trailers.
    let bare = remote.bare();
    assert_eq!(
        git(&bare, &["log", "--format=%s", "main..tagwatch/app/prod"]).trim(),
        "app: prod 1.0.0 -> 1.1.0"
    );
    let trailers = git(
        &bare,
        &[
            "log",
            "-1",
            "--format=%(trailers:key=Tagwatch-To,valueonly)",
            "tagwatch/app/prod",
        ],
    );
    assert_eq!(trailers.trim(), "1.1.0");
    assert_eq!(
        git(&bare, &["show", "tagwatch/app/prod:prod.yaml"]),
        "image:\n  tag: 1.1.0\n"
    );
    let tip = git(&bare, &["rev-parse", "tagwatch/app/prod"]);

    // Again, and after losing the clone (a restart on a new pod): the same
    // request is found by its branch; no duplicate, no force-push.
    expect(
        &work.once(&["--now", &at(t0 + minutes(6))]),
        0,
        &["app/prod: proposed"],
    );
    std::fs::remove_dir_all(work.dir.path().join("checkout")).unwrap();
    std::fs::create_dir(work.dir.path().join("checkout")).unwrap();
    expect(
        &work.once(&["--now", &at(t0 + minutes(7))]),
        0,
        &["app/prod: proposed"],
    );
    assert_eq!(fake.creates(), 1);
    assert_eq!(git(&bare, &["rev-parse", "tagwatch/app/prod"]), tip);

    // A newer tag: dev at once; after its soak, the same request is rebuilt
    // from main with the new value and retitled.
    moto.seed("app", &[("1.2.0", 3)]);
    let t1 = t0 + minutes(10);
    expect(
        &work.once(&["--now", &at(t1)]),
        0,
        &["app/dev: promoted 1.1.0 -> 1.2.0"],
    );
    assert_eq!(fake.prs()[0].title, "app: promote prod to 1.1.0");
    expect(
        &work.once(&["--now", &at(t1 + minutes(5))]),
        0,
        &["app/prod: proposed 1.0.0 -> 1.2.0"],
    );
    let prs = fake.prs();
    assert_eq!((prs.len(), fake.creates()), (1, 1), "{prs:?}");
    assert_eq!(prs[0].title, "app: promote prod to 1.2.0");
    assert_eq!(
        git(&bare, &["log", "--format=%s", "main..tagwatch/app/prod"]).trim(),
        "app: prod 1.0.0 -> 1.2.0"
    );

    // Someone sets prod by hand on main: the request is obsolete and is
    // closed with a comment saying why.
    let clone = remote.dir.path().join("person");
    git(
        remote.dir.path(),
        &["clone", "-q", bare.to_str().unwrap(), "person"],
    );
    std::fs::write(clone.join("prod.yaml"), "image:\n  tag: 1.2.0\n").unwrap();
    git(&clone, &["add", "-A"]);
    commit(&clone, "prod: 1.2.0 by hand");
    git(&clone, &["push", "-q", "origin", "HEAD:main"]);
    expect(
        &work.once(&["--now", &at(t1 + minutes(6))]),
        0,
        &["app/prod: up to date at 1.2.0"],
    );
    let prs = fake.prs();
    assert!(!prs[0].open, "{prs:?}");
    assert!(
        prs[0].comments.iter().any(|c| c.contains("already holds")),
        "{prs:?}"
    );
    assert_eq!(fake.creates(), 1);
    let _ = prs[0].url_number;
    fake.assert_no_client_errors();
}

#[test]
fn dev_commits_at_once_and_prod_gets_one_pull_request_after_the_soak_on_github() {
    dev_then_prod_after_soak(Fake::github);
}

#[test]
fn dev_commits_at_once_and_prod_gets_one_merge_request_after_the_soak_on_gitlab() {
    dev_then_prod_after_soak(Fake::gitlab);
}

/// dev → staging → prod with no soak: one cycle carries a new tag down the
/// chain, and prod's own constraint stops a major version that dev takes.
#[test]
fn a_chain_flows_in_one_cycle_and_the_prod_range_blocks_a_major() {
    let moto = Moto::start();
    moto.seed("app", &[("1.0.0", 1)]);
    let mut files = FILES.to_vec();
    files.push(("staging.yaml", "image:\n  tag: 1.0.0\n"));
    let remote = GitRemote::new(&files);
    let fake = Fake::github(&remote.bare());
    let work = scene(
        &moto,
        &remote,
        &fake,
        "promote_from = \"staging\"\nconstraint = \"^1\"\n",
    );
    // staging sits between; listed after prod, to show order is by chain.
    let text = std::fs::read_to_string(&work.config).unwrap().replace(
        "\n[forge]",
        "\n[[apps.targets]]\nenv = \"staging\"\nfile = \"staging.yaml\"\nkey = \"image.tag\"\npromote_from = \"dev\"\n\n[forge]",
    );
    std::fs::write(&work.config, text).unwrap();

    moto.seed("app", &[("1.1.0", 2)]);
    let out = work.once(&[]);
    expect(
        &out,
        0,
        &[
            "app/dev: promoted 1.0.0 -> 1.1.0",
            "app/staging: promoted 1.0.0 -> 1.1.0",
            "app/prod: proposed 1.0.0 -> 1.1.0",
        ],
    );
    assert_eq!(
        remote.subjects(),
        [
            "app: staging 1.0.0 -> 1.1.0",
            "app: dev 1.0.0 -> 1.1.0",
            "seed"
        ]
    );
    assert_eq!(fake.prs().len(), 1);

    // 2.0.0: dev and staging take it; prod's "^1" does not, so its request
    // still proposes 1.1.0.
    moto.seed("app", &[("2.0.0", 3)]);
    let out = work.once(&[]);
    expect(
        &out,
        0,
        &[
            "app/dev: promoted 1.1.0 -> 2.0.0",
            "app/staging: promoted 1.1.0 -> 2.0.0",
            // Names the rule that blocked it (issue 13, item 7).
            "app/prod: no candidate from staging: it runs 2.0.0, which prod's policy refuses (outside the range); keeping 1.0.0",
        ],
    );
    let prs = fake.prs();
    assert_eq!((prs.len(), fake.creates()), (1, 1));
    assert_eq!(prs[0].title, "app: promote prod to 1.1.0");
    assert!(!prs[0].body.contains("2.0.0"), "{}", prs[0].body);
    fake.assert_no_client_errors();
}

/// Two apps whose prod targets share `group`: one request with a commit
/// per app, on `tagwatch/<group>/prod`.
#[test]
fn grouped_targets_share_one_pull_request() {
    let moto = Moto::start();
    moto.seed("api", &[("1.0.0", 1), ("1.1.0", 2)]);
    moto.seed("web", &[("3.0.0", 1), ("3.0.1", 2)]);
    let remote = GitRemote::new(&[
        ("api.yaml", "image:\n  tag: 1.0.0\n"),
        ("web.yaml", "image:\n  tag: 3.0.0\n"),
        ("prod.yaml", "api:\n  tag: 1.0.0\nweb:\n  tag: 3.0.0\n"),
    ]);
    let fake = Fake::gitlab(&remote.bare());
    let work = Workdir::new(
        &moto.endpoint,
        &remote.file_url(),
        &[
            ("api", "api", ">=1", "api.yaml"),
            ("web", "web", ">=1", "web.yaml"),
        ],
    );
    let mut text = std::fs::read_to_string(&work.config).unwrap();
    for app in ["api", "web"] {
        // Each app's prod target goes right after its dev target.
        text = text.replace(
            &format!("file = \"{app}.yaml\"\nkey = \"image.tag\"\n"),
            &format!(
                "file = \"{app}.yaml\"\nkey = \"image.tag\"\n\n[[apps.targets]]\nenv = \"prod\"\nfile = \"prod.yaml\"\nkey = \"{app}.tag\"\nupdate = \"pull-request\"\npromote_from = \"dev\"\ngroup = \"backend\"\nreviewers = [\"alice\"]\n"
            ),
        );
    }
    std::fs::write(&work.config, format!("{text}{}", fake.section())).unwrap();
    std::fs::write(work.dir.path().join("forge-token"), TOKEN).unwrap();

    let out = work.once(&[]);
    expect(
        &out,
        0,
        &[
            "api/prod: proposed 1.0.0 -> 1.1.0",
            "web/prod: proposed 3.0.0 -> 3.0.1",
        ],
    );
    let Fake::Lab(lab) = &fake else {
        unreachable!()
    };
    let mrs = lab.merge_requests();
    assert_eq!(mrs.len(), 1, "{mrs:?}");
    assert_eq!(mrs[0].source_branch, "tagwatch/backend/prod");
    assert_eq!(mrs[0].title, "backend: promote prod (api 1.1.0, web 3.0.1)");
    assert_eq!(mrs[0].reviewer_ids, [7], "alice's id, looked up by name");
    assert_eq!(mrs[0].labels, ["tagwatch"]);
    let bare = remote.bare();
    assert_eq!(
        git(
            &bare,
            &["log", "--format=%s", "main..tagwatch/backend/prod"]
        ),
        "web: prod 3.0.0 -> 3.0.1\napi: prod 1.0.0 -> 1.1.0\n"
    );
    assert_eq!(
        git(&bare, &["show", "tagwatch/backend/prod:prod.yaml"]),
        "api:\n  tag: 1.1.0\nweb:\n  tag: 3.0.1\n"
    );
    // The project path went out encoded once, as GitLab requires.
    assert!(lab.requests().iter().any(|r| {
        r.path
            .contains("/projects/acme%2Fplatform%2Fgitops/merge_requests")
    }));
    fake.assert_no_client_errors();
}

/// Rate limits and server errors while opening: waited out as told, then
/// exactly one request exists.
#[test]
fn a_rate_limited_or_failing_forge_is_retried_without_duplicates() {
    let moto = Moto::start();
    moto.seed("app", &[("1.0.0", 1), ("1.1.0", 2)]);
    let remote = GitRemote::new(FILES);
    let fake = Fake::github(&remote.bare());
    let work = scene(&moto, &remote, &fake, "promote_from = \"dev\"\n");
    let Fake::Hub(hub) = &fake else {
        unreachable!()
    };
    hub.fail_next(
        Match::route("pulls.create"),
        1,
        Fault::SecondaryRateLimit {
            status: 429,
            retry_after_secs: 1,
        },
    );
    hub.fail_next(Match::route("pulls.create"), 1, Fault::Status(500));
    let out = work.once(&[]);
    expect(&out, 0, &["app/prod: proposed 1.0.0 -> 1.1.0"]);
    assert_eq!(hub.pulls().len(), 1);
    let creates: Vec<_> = hub
        .requests()
        .into_iter()
        .filter(|r| r.route == "pulls.create")
        .collect();
    assert_eq!(creates.len(), 3, "429, 500, then 201");
    assert!(
        creates[1].since(&creates[0]) >= std::time::Duration::from_secs(1),
        "retry-after was not obeyed"
    );
    // Every request carried what GitHub's docs ask for; the token, never
    // printed.
    for r in hub.requests() {
        assert_eq!(r.header("x-github-api-version"), Some("2022-11-28"));
        assert!(
            r.header("user-agent")
                .is_some_and(|u| u.starts_with("tagwatch/"))
        );
    }
    assert!(!show(&out).contains(TOKEN));
    fake.assert_no_client_errors();

    // A wrong token: one clear error for the target, exit 1.
    std::fs::write(work.dir.path().join("forge-token"), "wrong").unwrap();
    moto.seed("app", &[("1.2.0", 3)]);
    let out = work.once(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        show(&out).contains("app/prod: failed (forge): github acme/gitops"),
        "{}",
        show(&out)
    );
    assert!(show(&out).contains("401"), "{}", show(&out));
}

/// A person closes the request without merging: tagwatch does not reopen
/// it for the same version; a newer one opens a new request.
#[test]
fn a_declined_request_is_not_reopened_until_a_newer_candidate() {
    let moto = Moto::start();
    moto.seed("app", &[("1.0.0", 1), ("1.1.0", 2)]);
    let remote = GitRemote::new(FILES);
    let fake = Fake::github(&remote.bare());
    let work = scene(&moto, &remote, &fake, "promote_from = \"dev\"\n");
    expect(&work.once(&[]), 0, &["app/prod: proposed 1.0.0 -> 1.1.0"]);
    let Fake::Hub(hub) = &fake else {
        unreachable!()
    };
    hub.state().pulls[0].state = "closed".into();

    // The dry run asks the forge (read only) and says what the real run
    // then does: waiting, not "would open a pull request".
    expect(
        &work.once(&["--dry-run"]),
        0,
        &["app/prod: waiting: declined:"],
    );
    expect(&work.once(&[]), 0, &["app/prod: waiting: declined:"]);
    assert_eq!(hub.create_calls(), 1);

    moto.seed("app", &[("1.2.0", 3)]);
    expect(
        &work.once(&["--dry-run"]),
        0,
        &["app/prod: would open a pull request 1.0.0 -> 1.2.0 (branch tagwatch/app/prod)"],
    );
    assert_eq!(hub.create_calls(), 1, "a dry run opens nothing");
    expect(&work.once(&[]), 0, &["app/prod: proposed 1.0.0 -> 1.2.0"]);
    assert_eq!(hub.create_calls(), 2);
    assert_eq!(hub.open_pulls().len(), 1);
    fake.assert_no_client_errors();
}

/// `tagwatch promote` for CI: the daemon's path for one tag, now.
#[test]
fn promote_goes_through_the_daemon_path_and_refuses_bad_tags() {
    let moto = Moto::start();
    moto.seed(
        "app",
        &[("1.0.0", 1), ("1.1.0", 2), ("1.2.0", 3), ("2.0.0", 4)],
    );
    let remote = GitRemote::new(FILES);
    let fake = Fake::gitlab(&remote.bare());
    let work = scene(
        &moto,
        &remote,
        &fake,
        "promote_from = \"dev\"\nsoak = \"1h\"\nconstraint = \"^1\"\n",
    );
    let config = work.config.to_str().unwrap();
    let promote = |env: &str, tag: &str| {
        tagwatch(
            &[
                "promote", "--config", config, "--app", "app", "--env", env, "--tag", tag,
            ],
            work.dir.path(),
        )
    };

    // dev, a commit: prints its id; the tag chosen is the one asked for,
    // not the newest.
    let out = promote("dev", "1.1.0");
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(printed, git(&remote.bare(), &["rev-parse", "main"]).trim());
    assert_eq!(remote.show("dev.yaml"), "image:\n  tag: 1.1.0\n");

    // prod, a pull request: prints its URL; the soak does not apply to an
    // explicit tag.
    let out = promote("prod", "1.2.0");
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let prs = fake.prs();
    assert_eq!(prs.len(), 1);
    assert!(
        url.ends_with(&format!("/-/merge_requests/{}", prs[0].url_number)),
        "{url}"
    );
    assert_eq!(prs[0].title, "app: promote prod to 1.2.0");

    // Refusals exit 64 and write nothing.
    let before = remote.subjects();
    for (env, tag, says) in [
        ("dev", "9.9.9", "does not exist"),
        ("prod", "2.0.0", "breaks app \"app\"'s policy"),
        ("dev", "1.0.0", "never downgrades"),
        ("qa", "1.1.0", "has no env \"qa\""),
    ] {
        let out = promote(env, tag);
        assert_eq!(out.status.code(), Some(64), "{env} {tag}: {}", show(&out));
        assert!(show(&out).contains(says), "{env} {tag}: {}", show(&out));
    }
    assert_eq!(remote.subjects(), before);
    assert_eq!(fake.creates(), 1);
    fake.assert_no_client_errors();
}

/// A process killed while it rebuilt a proposal branch leaves that ref's
/// lock file in the clone, and every later rebuild of the branch would
/// fail on it. The next cycle must clone again and update the request.
#[test]
fn a_lock_left_on_a_proposal_branch_by_a_kill_does_not_wedge_the_request() {
    let (moto, remote, fake, work) = one_request_open();

    let checkout = work.dir.path().join("checkout");
    let clone = std::fs::read_dir(&checkout)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "git"))
        .expect("a clone in checkout_dir");
    let lock = clone.join("refs/heads/tagwatch/app/prod.lock");
    assert!(lock.parent().unwrap().is_dir(), "no local proposal branch");
    std::fs::write(&lock, "").unwrap();
    moto.seed("app", &[("1.2.0", 3)]);

    // A fresh lock may be held by a live process (`tagwatch history` or
    // `promote` on the same clone): the target waits, the clone stays.
    let held = work.once(&[]);
    expect(
        &held,
        1,
        &[
            "app/prod: failed (git): ",
            "held by another process; retrying next cycle",
        ],
    );
    assert!(
        lock.exists() && clone.is_dir(),
        "a live lock's clone was discarded"
    );

    // Ten seconds on, no live process holds a ref lock: it was left by a
    // kill. The run that meets it may fail the target (and says why); the
    // one after it must have cloned again and updated the request.
    let file = std::fs::File::options().write(true).open(&lock).unwrap();
    file.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(60))
        .unwrap();
    drop(file);
    let first = work.once(&[]);
    let mut runs = vec![show(&first)];
    if !show(&first).contains("app/prod: proposed 1.0.0 -> 1.2.0") {
        assert!(
            show(&first).contains("lock"),
            "the failure does not say why: {}",
            show(&first)
        );
        let second = work.once(&[]);
        runs.push(show(&second));
        expect(&second, 0, &["app/prod: proposed 1.0.0 -> 1.2.0 ("]);
    }
    let prs = fake.prs();
    assert_eq!(prs.len(), 1, "{prs:?}\n{}", runs.join("\n---\n"));
    assert_eq!(prs[0].title, "app: promote prod to 1.2.0");
    assert_eq!(
        git(
            &remote.bare(),
            &["log", "--format=%s", "main..tagwatch/app/prod"]
        )
        .trim(),
        "app: prod 1.0.0 -> 1.2.0"
    );
    assert!(
        !lock.exists(),
        "the clone with the stale lock is still there"
    );
    fake.assert_no_client_errors();
}

/// A run that rebuilt and pushed a proposal branch but died before it
/// retitled the request leaves the branch right and the title stale. The
/// next cycle finds nothing to rebuild, and must still retitle.
#[test]
fn a_stale_title_left_by_a_killed_run_is_corrected() {
    let (_moto, remote, fake, work) = one_request_open();
    let Fake::Hub(hub) = &fake else {
        unreachable!()
    };
    hub.state().pulls[0].title = "app: promote prod to 1.0.9".into();
    let tip = git(&remote.bare(), &["rev-parse", "tagwatch/app/prod"]);

    expect(&work.once(&[]), 0, &["app/prod: proposed 1.0.0 -> 1.1.0 ("]);
    let prs = fake.prs();
    assert_eq!(prs.len(), 1);
    assert_eq!(prs[0].title, "app: promote prod to 1.1.0");
    assert_eq!(fake.creates(), 1);
    // Retitled only: the branch was right and is not pushed again.
    assert_eq!(
        git(&remote.bare(), &["rev-parse", "tagwatch/app/prod"]),
        tip
    );
    fake.assert_no_client_errors();
}

/// `app` on GitHub with prod by pull request and no soak, after the run
/// that opened its request for 1.1.0.
fn one_request_open() -> (Moto, GitRemote, Fake, Workdir) {
    let moto = Moto::start();
    moto.seed("app", &[("1.0.0", 1)]);
    let remote = GitRemote::new(FILES);
    let fake = Fake::github(&remote.bare());
    let work = scene(&moto, &remote, &fake, "");
    moto.seed("app", &[("1.1.0", 2)]);
    expect(&work.once(&[]), 0, &["app/prod: proposed 1.0.0 -> 1.1.0 ("]);
    (moto, remote, fake, work)
}

/// GitLab keeps a draft's title as `Draft: …`. Read back, that prefix must
/// not look like a stale title, or every cycle would retitle the request
/// (and count another update).
#[test]
fn a_gitlab_draft_is_not_retitled_every_cycle() {
    let moto = Moto::start();
    moto.seed("app", &[("1.0.0", 1)]);
    let remote = GitRemote::new(FILES);
    let fake = Fake::gitlab(&remote.bare());
    let work = scene(&moto, &remote, &fake, "draft = true\n");
    moto.seed("app", &[("1.1.0", 2)]);
    expect(&work.once(&[]), 0, &["app/prod: proposed 1.0.0 -> 1.1.0 ("]);
    let Fake::Lab(lab) = &fake else {
        unreachable!()
    };
    assert_eq!(
        lab.merge_requests()[0].title,
        "Draft: app: promote prod to 1.1.0"
    );
    for _ in 0..2 {
        expect(&work.once(&[]), 0, &["app/prod: proposed 1.0.0 -> 1.1.0 ("]);
    }
    assert_eq!(
        lab.count("mr.update"),
        0,
        "a draft was retitled with nothing new"
    );
    assert_eq!(fake.creates(), 1);
    fake.assert_no_client_errors();
}

/// The (app/env, from, to, how) of every change a `once` run printed: a
/// dry run's "would …" lines and a real run's "promoted"/"proposed" lines
/// in one shape, so the two can be compared as sets.
fn changes(
    out: &std::process::Output,
) -> std::collections::BTreeSet<(String, String, String, &'static str)> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut set = std::collections::BTreeSet::new();
    for line in stdout.lines() {
        let Some((name, rest)) = line.split_once(": ") else {
            continue;
        };
        let (how, rest) = if let Some(r) = rest.strip_prefix("would promote ") {
            ("commit", r)
        } else if let Some(r) = rest.strip_prefix("promoted ") {
            ("commit", r)
        } else if let Some(r) = rest.strip_prefix("would open a pull request ") {
            ("pull-request", r)
        } else if let Some(r) = rest.strip_prefix("proposed ") {
            ("pull-request", r)
        } else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let (from, arrow, to) = (words.next(), words.next(), words.next());
        assert_eq!(arrow, Some("->"), "{line}");
        set.insert((
            name.to_string(),
            from.unwrap().to_string(),
            to.unwrap().to_string(),
            how,
        ));
    }
    set
}

/// Issue 13, item 1: dev → staging (commit) → prod (pull request), with
/// and without a soak. At each step the dry run prints exactly the set of
/// changes the real run then makes, chains and pull requests included.
#[test]
fn dry_run_reports_exactly_what_the_real_run_does_down_a_chain() {
    for soak in ["", "soak = \"1h\"\n"] {
        let moto = Moto::start();
        moto.seed("app", &[("1.0.0", 1)]);
        let mut files = FILES.to_vec();
        files.push(("staging.yaml", "image:\n  tag: 1.0.0\n"));
        let remote = GitRemote::new(&files);
        let fake = Fake::github(&remote.bare());
        let work = scene(
            &moto,
            &remote,
            &fake,
            &format!("promote_from = \"staging\"\n{soak}"),
        );
        let text = std::fs::read_to_string(&work.config).unwrap().replace(
            "\n[forge]",
            &format!("\n[[apps.targets]]\nenv = \"staging\"\nfile = \"staging.yaml\"\nkey = \"image.tag\"\npromote_from = \"dev\"\n{soak}\n[forge]"),
        );
        std::fs::write(&work.config, text).unwrap();
        let t0 = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();

        // Every env already holds its source's value: nothing waits
        // (issue 13, item 3), soak or not.
        let out = work.once(&["--now", &at(t0)]);
        expect(
            &out,
            0,
            &[
                "app/dev: up to date at 1.0.0",
                "app/staging: up to date at 1.0.0",
                "app/prod: up to date at 1.0.0",
            ],
        );

        moto.seed("app", &[("1.1.0", 2)]);
        let mut all = std::collections::BTreeSet::new();
        for now in [t0, t0 + minutes(120), t0 + minutes(240)] {
            let dry = work.once(&["--dry-run", "--now", &at(now)]);
            assert_eq!(dry.status.code(), Some(0), "{}", show(&dry));
            let subjects = remote.subjects();
            let real = work.once(&["--now", &at(now)]);
            assert_eq!(real.status.code(), Some(0), "{}", show(&real));
            let (said, did) = (changes(&dry), changes(&real));
            assert_eq!(
                said,
                did,
                "soak {soak:?} at +{}m: dry run\n{}\nreal run\n{}",
                (now - t0).whole_minutes(),
                show(&dry),
                show(&real)
            );
            // What the real run said it did, it did: one commit per
            // commit change, one request per pull-request change.
            let commits = did.iter().filter(|c| c.3 == "commit").count();
            assert_eq!(remote.subjects().len() - subjects.len(), commits);
            all.extend(did);
        }
        assert_eq!(fake.prs().len(), 1, "soak {soak:?}");
        // Each env moved 1.0.0 -> 1.1.0 once (an open request is reported
        // as proposed every cycle it stays open).
        assert_eq!(all.len(), 3, "soak {soak:?}: {all:?}");
        let prs = fake.prs();
        assert_eq!(prs[0].title, "app: promote prod to 1.1.0");
    }
}
