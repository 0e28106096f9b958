//! Promotion between environments, through the real binary: dev commits
//! straight to main, prod goes through a pull request on the GitHub and
//! GitLab fakes (tests/support/forge.rs), after dev has soaked. Time is
//! injected with `once --now`, never slept.

#[path = "support/forge.rs"]
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
}

#[test]
fn dev_commits_at_once_and_prod_gets_one_pull_request_after_the_soak_on_github() {
    dev_then_prod_after_soak(Fake::github);
}

#[test]
fn dev_commits_at_once_and_prod_gets_one_merge_request_after_the_soak_on_gitlab() {
    dev_then_prod_after_soak(Fake::gitlab);
}
