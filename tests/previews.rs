//! Preview environments (`[[apps.previews]]`) through the real binary:
//! moto as ECR, a real bare git repository, the GitHub fake for pull
//! request states. Time is injected with `once --now`, never slept.

#[path = "support/forge/mod.rs"]
mod forge;
mod support;

use forge::{GitHubConfig, GitHubFake, GitLabConfig, GitLabFake};
use support::*;

const TOKEN: &str = "forge-token-5678";
const DEV: &str = "envs/dev/payments/values.yaml";
const DEV_VALUES: &str = "image:\n  tag: 1.0.0 # dev\n";
const TEMPLATE_PATH: &str = "previews/payments/_template.yaml";
const TEMPLATE: &str = "\
# A preview of payments; tagwatch copies this file per pull request.
replicaCount: 1
image:
  repository: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/payments-api
  tag: \"placeholder\"   # set by tagwatch
ingress:
  host: preview.example.com
";
/// 2026-11-21T10:00:00Z
const PUSHED: i64 = 1_795_255_200;
/// The clock every cycle runs at unless a row says otherwise: an hour
/// after PUSHED.
const NOW: &str = "2026-11-21T11:00:00Z";

fn preview_file(n: u64) -> String {
    format!("previews/payments/pr-{n}.yaml")
}

/// A scratch directory with the config; `preview` is the body of the
/// `[[apps.previews]]` block(s), `forge` an optional `[forge]` section.
struct Scene {
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
}

impl Scene {
    fn new(moto: &Moto, remote: &GitRemote, previews: &str, forge: &str) -> Scene {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("checkout")).unwrap();
        let text = format!(
            r#"listen = "127.0.0.1:0"

[aws]
region = "{REGION}"
endpoint_url = "{endpoint}"

[git]
url = "{url}"
branch = "main"
checkout_dir = "{checkout}"
author = "tagwatch <tagwatch@acme.dev>"
{forge}
[[apps]]
name = "payments"
repository = "payments-api"
# newest would take a pull request's image if previews did not exclude it
strategy = "newest"

[[apps.targets]]
env = "dev"
file = "{DEV}"
key = "image.tag"
{previews}"#,
            endpoint = moto.endpoint,
            url = remote.file_url(),
            checkout = dir.path().join("checkout").display(),
        );
        let config = dir.path().join("tagwatch.toml");
        std::fs::write(&config, text).unwrap();
        std::fs::write(dir.path().join("forge-token"), TOKEN).unwrap();
        Scene { dir, config }
    }

    fn once_at(&self, now: &str) -> std::process::Output {
        tagwatch(
            &[
                "once",
                "--config",
                self.config.to_str().unwrap(),
                "--now",
                now,
            ],
            self.dir.path(),
        )
    }

    fn once(&self) -> std::process::Output {
        self.once_at(NOW)
    }
}

const BLOCK: &str = r#"
[[apps.previews]]
allow = '^pr-(?P<pr>\d+)-[0-9a-f]{7,40}$'
file = "previews/{app}/pr-{pr}.yaml"
template = "previews/{app}/_template.yaml"
key = "image.tag"
ttl = "72h"
"#;

fn remote() -> GitRemote {
    GitRemote::new(&[(DEV, DEV_VALUES), (TEMPLATE_PATH, TEMPLATE)])
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exactly one push, carrying `commits` commits.
fn one_push(out: &std::process::Output, commits: u64) {
    let log = stderr(out);
    let pushes: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "pushed")
        .collect();
    assert_eq!(pushes.len(), 1, "{}", show(out));
    assert_eq!(pushes[0]["commits"], commits, "{}", show(out));
}

fn delete_tags(moto: &Moto, tags: &[&str]) {
    let ids: Vec<String> = tags
        .iter()
        .map(|t| format!("{{'imageTag': '{t}'}}"))
        .collect();
    let answer = moto.boto3(&format!(
        "r = client('ecr').batch_delete_image(repositoryName='payments-api', imageIds=[{}])\nprint(len(r['imageIds']), len(r['failures']))",
        ids.join(", ")
    ));
    assert_eq!(answer, format!("{} 0", tags.len()));
}

#[test]
fn pr_7_is_created_updated_and_removed_in_single_pushes_beside_promotions() {
    let moto = Moto::start();
    let remote = remote();
    let scene = Scene::new(&moto, &remote, BLOCK, "");
    moto.seed(
        "payments-api",
        &[("1.0.1", PUSHED - 600), ("pr-7-aaaaaaa", PUSHED - 300)],
    );

    // The image exists: the preview is created, dev promoted, one push.
    let out = scene.once();
    expect(
        &out,
        0,
        &[
            "payments/dev: promoted 1.0.0 -> 1.0.1",
            "payments/preview pr-7: created previews/payments/pr-7.yaml at pr-7-aaaaaaa (commit",
        ],
    );
    one_push(&out, 2);
    assert_eq!(
        remote.show(&preview_file(7)),
        TEMPLATE.replace("\"placeholder\"", "\"pr-7-aaaaaaa\"")
    );
    let subjects = remote.subjects();
    assert!(
        subjects.contains(&"payments: preview pr-7 -> pr-7-aaaaaaa".to_string()),
        "{subjects:?}"
    );
    let message = git(
        &remote.bare(),
        &["log", "-1", "--format=%B", "main", "--", &preview_file(7)],
    );
    assert!(message.contains("\nTagwatch-App: payments\n"), "{message}");
    assert!(
        message.contains("\nTagwatch-To: pr-7-aaaaaaa\n"),
        "{message}"
    );
    assert!(
        message.trim_end().ends_with("Tagwatch-Preview: 7"),
        "{message}"
    );

    // A newer image of the same pull request: updated in place, one line.
    moto.seed(
        "payments-api",
        &[("1.0.2", PUSHED - 200), ("pr-7-bbbbbbb", PUSHED - 100)],
    );
    let out = scene.once();
    expect(
        &out,
        0,
        &[
            "payments/dev: promoted 1.0.1 -> 1.0.2",
            "payments/preview pr-7: updated to pr-7-bbbbbbb",
        ],
    );
    one_push(&out, 2);
    assert_eq!(
        remote.show(&preview_file(7)),
        TEMPLATE.replace("\"placeholder\"", "\"pr-7-bbbbbbb\"")
    );
    let stat = git(
        &remote.bare(),
        &["diff", "--numstat", "main~2", "main", "--", "previews"],
    );
    assert_eq!(stat.trim(), format!("1\t1\t{}", preview_file(7)));
    // dev never took the pull request's image, though it is the newest.
    assert_eq!(remote.show(DEV), "image:\n  tag: 1.0.2 # dev\n");

    // A quiet cycle writes nothing.
    let out = scene.once();
    expect(
        &out,
        0,
        &["payments/preview pr-7: up to date at pr-7-bbbbbbb"],
    );
    assert_eq!(count_messages(&stderr(&out), "pushed"), 0, "{}", show(&out));

    // Both images deleted from ECR: the file is removed, beside a promotion.
    delete_tags(&moto, &["pr-7-aaaaaaa", "pr-7-bbbbbbb"]);
    moto.seed("payments-api", &[("1.0.3", PUSHED - 50)]);
    let out = scene.once();
    expect(
        &out,
        0,
        &[
            "payments/dev: promoted 1.0.2 -> 1.0.3",
            "payments/preview pr-7: removed previews/payments/pr-7.yaml (no image left)",
        ],
    );
    one_push(&out, 2);
    let tree = git(&remote.bare(), &["ls-tree", "-r", "--name-only", "main"]);
    assert!(!tree.contains("pr-7.yaml"), "{tree}");
    assert!(tree.contains(TEMPLATE_PATH), "{tree}");
    assert!(
        remote
            .subjects()
            .contains(&"payments: remove preview pr-7 (no image left)".to_string())
    );
}

#[test]
fn dry_run_decides_the_same_and_writes_nothing() {
    let moto = Moto::start();
    let remote = remote();
    let scene = Scene::new(&moto, &remote, BLOCK, "");
    moto.seed("payments-api", &[("pr-7-aaaaaaa", PUSHED - 300)]);
    let out = tagwatch(
        &[
            "once",
            "--config",
            scene.config.to_str().unwrap(),
            "--now",
            NOW,
            "--dry-run",
        ],
        scene.dir.path(),
    );
    expect(
        &out,
        0,
        &[
            "payments/preview pr-7: would create previews/payments/pr-7.yaml at pr-7-aaaaaaa",
            "+++ b/previews/payments/pr-7.yaml",
            "+  tag: \"pr-7-aaaaaaa\"   # set by tagwatch",
        ],
    );
    assert_eq!(remote.subjects(), ["seed"]);
}

#[test]
fn a_closed_pull_request_removes_its_preview_and_ttl_removes_an_old_one() {
    let moto = Moto::start();
    let remote = remote();
    let fake = GitHubFake::start(GitHubConfig::new("acme", "gitops").token(TOKEN));
    let first = fake.seed_pull("alice", "feature-a", "main", "Feature A");
    let second = fake.seed_pull("bob", "feature-b", "main", "Feature B");
    let forge = format!(
        "\n[forge]\nkind = \"github\"\nrepository = \"acme/gitops\"\ntoken_file = \"forge-token\"\napi_url = \"{}\"\n",
        fake.api_url()
    );
    let scene = Scene::new(&moto, &remote, BLOCK, &forge);
    moto.seed(
        "payments-api",
        &[
            (&format!("pr-{first}-aaaaaaa"), PUSHED - 300),
            (&format!("pr-{second}-bbbbbbb"), PUSHED - 200),
        ],
    );
    let out = scene.once();
    expect(
        &out,
        0,
        &[
            &format!("payments/preview pr-{first}: created"),
            &format!("payments/preview pr-{second}: created"),
        ],
    );

    // Someone closes the first pull request; its image is still in ECR.
    fake.state()
        .pulls
        .iter_mut()
        .find(|p| p.number == first)
        .unwrap()
        .state = "closed".into();

    // `tagwatch previews` lists both live previews, and what comes next.
    let listed = tagwatch(
        &[
            "previews",
            "--config",
            scene.config.to_str().unwrap(),
            "--now",
            NOW,
            "--json",
        ],
        scene.dir.path(),
    );
    assert_eq!(listed.status.code(), Some(0), "{}", show(&listed));
    let rows: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(rows.as_array().map(Vec::len), Some(2), "{rows}");
    assert_eq!(rows[0]["pr"], first, "{rows}");
    assert_eq!(rows[0]["tag"], format!("pr-{first}-aaaaaaa"), "{rows}");
    assert_eq!(rows[0]["file"], preview_file(first), "{rows}");
    assert_eq!(rows[0]["age_seconds"], 3600 + 300, "{rows}");
    assert_eq!(rows[0]["pr_state"], "closed", "{rows}");
    assert_eq!(rows[0]["next"], "remove (pull request closed)", "{rows}");
    assert_eq!(rows[1]["pr_state"], "open", "{rows}");
    assert_eq!(rows[1]["next"], "keep", "{rows}");
    let table = tagwatch(
        &[
            "previews",
            "--config",
            scene.config.to_str().unwrap(),
            "--now",
            NOW,
        ],
        scene.dir.path(),
    );
    expect(
        &table,
        0,
        &[
            "APP\tPR\tTAG\tFILE\tAGE\tPR STATE\tNEXT",
            &format!(
                "payments\t{second}\tpr-{second}-bbbbbbb\t{}\t1h 3m\topen\tkeep",
                preview_file(second)
            ),
        ],
    );
    assert_eq!(remote.subjects().len(), 3, "the listing wrote nothing");
    let out = scene.once();
    expect(
        &out,
        0,
        &[
            &format!(
                "payments/preview pr-{first}: removed {} (pull request closed)",
                preview_file(first)
            ),
            &format!("payments/preview pr-{second}: up to date"),
        ],
    );
    one_push(&out, 1);
    // The forge was asked through the documented endpoint.
    assert!(fake.requests().iter().any(|e| e.route == "pulls.get"
        && e.status == 200
        && e.api_path == format!("/repos/acme/gitops/pulls/{second}")),);

    // Seventy-three hours after the second image was pushed: past the ttl.
    let out = scene.once_at("2026-11-24T11:00:00Z");
    expect(
        &out,
        0,
        &[&format!(
            "payments/preview pr-{second}: removed {} (older than ttl)",
            preview_file(second)
        )],
    );
    let tree = git(&remote.bare(), &["ls-tree", "-r", "--name-only", "main"]);
    assert!(!tree.contains("pr-"), "{tree}");
}

#[test]
fn a_persons_file_at_a_preview_path_is_never_deleted() {
    let moto = Moto::start();
    let by_hand = "# written by a person\nimage:\n  tag: hand-made\n";
    let remote = GitRemote::new(&[
        (DEV, DEV_VALUES),
        (TEMPLATE_PATH, TEMPLATE),
        ("previews/payments/pr-5.yaml", by_hand),
        ("previews/payments/pr-6.yaml", by_hand),
    ]);
    let scene = Scene::new(&moto, &remote, BLOCK, "");
    // pr-5 has no image at all; pr-6 has a newer one.
    moto.seed("payments-api", &[("pr-6-aaaaaaa", PUSHED - 100)]);
    for _ in 0..2 {
        let out = scene.once();
        expect(
            &out,
            0,
            &[
                "payments/preview pr-5: skipped: previews/payments/pr-5.yaml was not created by tagwatch",
                "payments/preview pr-6: skipped: previews/payments/pr-6.yaml was not created by tagwatch",
            ],
        );
    }
    assert_eq!(remote.subjects(), ["seed"]);
    assert_eq!(remote.show("previews/payments/pr-5.yaml"), by_hand);
    assert_eq!(remote.show("previews/payments/pr-6.yaml"), by_hand);
}

#[test]
fn twenty_five_open_previews_with_max_previews_20() {
    let moto = Moto::start();
    let remote = remote();
    let scene = Scene::new(&moto, &remote, &format!("{BLOCK}max_previews = 20\n"), "");
    let tags: Vec<(String, i64)> = (1..=25)
        .map(|n| (format!("pr-{n}-aaaaaaa"), PUSHED - 3000 + n as i64 * 10))
        .collect();
    let seeded: Vec<(&str, i64)> = tags.iter().map(|(t, at)| (t.as_str(), *at)).collect();
    moto.seed("payments-api", &seeded);
    let out = scene.once();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    one_push(&out, 20);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The newest twenty exist; the five oldest wait for a slot and say why.
    for n in 1..=5 {
        assert!(
            stdout.contains(&format!(
                "payments/preview pr-{n}: skipped: max_previews (20) reached"
            )),
            "{stdout}"
        );
    }
    let tree = git(&remote.bare(), &["ls-tree", "-r", "--name-only", "main"]);
    let files = tree.lines().filter(|l| l.contains("/pr-")).count();
    assert_eq!(files, 20, "{tree}");
    for n in 6..=25 {
        assert!(tree.contains(&format!("pr-{n}.yaml")), "{tree}");
    }
}

#[test]
fn a_template_without_the_key_fails_that_preview_and_others_go_on() {
    let moto = Moto::start();
    let remote = GitRemote::new(&[
        (DEV, DEV_VALUES),
        (TEMPLATE_PATH, TEMPLATE),
        ("previews/worker/_template.yaml", "replicaCount: 1\n"),
    ]);
    let worker = BLOCK
        .replace("previews/{app}/", "previews/worker/")
        .replace("'^pr-", "'^wpr-");
    let scene = Scene::new(&moto, &remote, &format!("{BLOCK}{worker}"), "");
    moto.seed(
        "payments-api",
        &[
            ("pr-3-aaaaaaa", PUSHED - 100),
            ("wpr-3-aaaaaaa", PUSHED - 100),
        ],
    );
    let out = scene.once();
    expect(
        &out,
        1,
        &[
            "payments/preview pr-3: created previews/payments/pr-3.yaml",
            "payments/preview pr-3: failed: template previews/worker/_template.yaml: image.tag:",
        ],
    );
    assert!(remote.show(&preview_file(3)).contains("pr-3-aaaaaaa"));
}

#[test]
fn bad_preview_config_exits_64_naming_file_line_and_key() {
    let moto = Moto::start();
    let remote = remote();
    let cases = [
        (
            BLOCK.replace("(?P<pr>\\d+)", "\\d+"),
            "apps[0].previews[0].allow: needs the named group `pr`",
        ),
        (
            BLOCK.replace("pr-{pr}.yaml", "pr.yaml"),
            "apps[0].previews[0].file: must contain {pr}",
        ),
        (
            BLOCK.replace(
                "template = \"previews/{app}/_template.yaml\"",
                "template = \"../outside.yaml\"",
            ),
            "apps[0].previews[0].template: \"../outside.yaml\" escapes the repository",
        ),
        (
            BLOCK.replace("ttl = \"72h\"", "ttl = \"soon\""),
            "apps[0].previews[0].ttl: invalid duration",
        ),
        (
            format!("{BLOCK}max_previews = 0\n"),
            "apps[0].previews[0].max_previews: must be between 1 and 500",
        ),
    ];
    for (block, want) in cases {
        let scene = Scene::new(&moto, &remote, &block, "");
        let out = tagwatch(
            &["check", "--config", scene.config.to_str().unwrap()],
            scene.dir.path(),
        );
        assert_eq!(out.status.code(), Some(64), "{want}\n{}", show(&out));
        let err = stderr(&out);
        let at = format!("{}:", scene.config.display());
        assert!(err.contains(&at) && err.contains(want), "{want}\n{err}");
        // The line is the block's, after the app's target.
        let line: usize = err
            .split(&at)
            .nth(1)
            .and_then(|rest| rest.split(':').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no line in {err}"));
        assert!(line > 20, "{err}");
    }
}

/// promtool from PATH, or where scripts/test unpacks it.
fn promtool() -> std::process::Command {
    let local = root().join(".tools/prometheus/usr/bin/promtool");
    if local.exists() {
        std::process::Command::new(local)
    } else {
        std::process::Command::new("promtool")
    }
}

#[test]
fn the_daemon_shows_previews_on_status_the_page_and_metrics() {
    use std::io::Write;
    use std::time::{Duration, Instant};
    let moto = Moto::start();
    let remote = remote();
    // No ttl: the daemon runs on the real clock, and these images are old.
    let scene = Scene::new(&moto, &remote, &BLOCK.replace("ttl = \"72h\"\n", ""), "");
    let port = free_port();
    let text = std::fs::read_to_string(&scene.config).unwrap().replace(
        "listen = \"127.0.0.1:0\"",
        &format!("interval = \"1s\"\nlisten = \"127.0.0.1:{port}\""),
    );
    std::fs::write(&scene.config, text).unwrap();
    moto.seed("payments-api", &[("pr-7-aaaaaaa", PUSHED)]);
    let daemon = Daemon::start(&scene.config, &scene.dir.path().join("daemon.log"));
    let deadline = Instant::now() + Duration::from_secs(30);
    remote.wait_for_commits(2, deadline, "the preview was not created");
    let endpoint = format!("http://127.0.0.1:{port}");
    let status = loop {
        let (code, body) = http(&endpoint, "GET", "/status", "");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if code == 200 && json["previews"].as_array().is_some_and(|p| !p.is_empty()) {
            break json;
        }
        assert!(Instant::now() < deadline, "no previews on /status: {body}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let row = &status["previews"][0];
    assert_eq!(row["app"], "payments", "{status}");
    assert_eq!(row["pr"], 7, "{status}");
    assert_eq!(row["tag"], "pr-7-aaaaaaa", "{status}");
    assert_eq!(row["file"], preview_file(7), "{status}");
    assert_eq!(row["live"], true, "{status}");

    let (_, page) = http(&endpoint, "GET", "/", "");
    assert!(page.contains("<h2>previews</h2>"), "{page}");
    assert!(
        page.contains("<td>payments</td><td>7</td><td><code>pr-7-aaaaaaa</code></td>"),
        "{page}"
    );

    let (_, scrape) = http(&endpoint, "GET", "/metrics", "");
    for needle in [
        r#"tagwatch_previews{app="payments"} 1"#,
        r#"tagwatch_preview_changes_total{action="created",app="payments"} 1"#,
    ] {
        assert!(scrape.contains(needle), "{needle} not in\n{scrape}");
    }
    let mut check = promtool()
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (scripts/test unpacks it into .tools/)");
    check
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(daemon.stop().code(), Some(0));
}

#[test]
fn policy_test_explains_that_a_preview_tag_is_not_a_candidate() {
    let moto = Moto::start();
    let remote = remote();
    let scene = Scene::new(&moto, &remote, BLOCK, "");
    let out = tagwatch(
        &[
            "policy",
            "test",
            "--config",
            scene.config.to_str().unwrap(),
            "--app",
            "payments",
            "--explain",
            "1.0.0@2026-11-21T10:00:00Z",
            "pr-7-aaaaaaa@2026-11-21T11:00:00Z",
        ],
        scene.dir.path(),
    );
    expect(
        &out,
        0,
        &[
            "pr-7-aaaaaaa  a preview tag ([[apps.previews]])",
            "1.0.0         chosen",
        ],
    );
}

// --- The example ApplicationSet ---------------------------------------------

const APPLICATION_SET: &str = "manifests/examples/previews-applicationset.yaml";

/// Validates the JSON documents given on stdin (one array) with the Argo CD
/// CRD schemas of npm's @kubernetes-models/argo-cd; prints one verdict per
/// document.
const VALIDATE_APPLICATION_SET: &str = r#"
import { ApplicationSet } from '@kubernetes-models/argo-cd/argoproj.io/v1alpha1/ApplicationSet';
import { readFileSync } from 'node:fs';
for (const doc of JSON.parse(readFileSync(0, 'utf8'))) {
  try { new ApplicationSet(doc).validate(); console.log('valid'); }
  catch (e) { console.log('INVALID ' + e.message.split('\n')[0]); }
}
"#;

fn application_set() -> serde_json::Value {
    let text = std::fs::read_to_string(root().join(APPLICATION_SET)).unwrap();
    let yaml: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    serde_json::to_value(yaml).unwrap()
}

/// Each document's verdict from the schema, offline.
fn schema_verdicts(docs: &[serde_json::Value]) -> Vec<String> {
    use std::io::Write;
    let node_dir = root().join(".node");
    assert!(
        node_dir
            .join("node_modules/@kubernetes-models/argo-cd")
            .exists(),
        "@kubernetes-models/argo-cd is missing: run scripts/test, which installs it into .node/"
    );
    let mut child = std::process::Command::new("node")
        .args(["--input-type=module", "-e", VALIDATE_APPLICATION_SET])
        .current_dir(&node_dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node (scripts/test installs Debian's nodejs)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            serde_json::Value::from(docs.to_vec())
                .to_string()
                .as_bytes(),
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn the_example_application_set_validates_offline_and_matches_tagwatchs_files() {
    let set = application_set();
    // A copy the schema must refuse, so a validator that accepts anything
    // cannot pass this test.
    let mut broken = set.clone();
    broken["spec"]["generators"][0]["git"]["files"][0]["path"] = serde_json::json!(42);
    let verdicts = schema_verdicts(&[set.clone(), broken]);
    assert_eq!(verdicts[0], "valid", "{verdicts:?}");
    assert!(verdicts[1].starts_with("INVALID"), "{verdicts:?}");

    // The git files generator picks up exactly tagwatch's preview files:
    // the docs' `file = "previews/{app}/pr-{pr}.yaml"`, not the template.
    let files = set["spec"]["generators"][0]["git"]["files"]
        .as_array()
        .unwrap();
    let strict = glob::MatchOptions {
        require_literal_separator: true,
        ..Default::default()
    };
    let generated = |path: &str| {
        let matches = |f: &serde_json::Value| {
            glob::Pattern::new(f["path"].as_str().unwrap())
                .unwrap()
                .matches_with(path, strict)
        };
        let excluded = |f: &serde_json::Value| f["exclude"] == true;
        files.iter().any(|f| !excluded(f) && matches(f))
            && !files.iter().any(|f| excluded(f) && matches(f))
    };
    assert!(generated("previews/payments/pr-42.yaml"));
    assert!(!generated(TEMPLATE_PATH));
    assert!(!generated("envs/dev/payments/values.yaml"));

    // Rendered for previews/payments/pr-42.yaml, the Application's name and
    // namespace are valid DNS labels, and its values are that file.
    let render = |template: &str| {
        template
            .replace("{{ .path.basename }}", "payments")
            .replace("{{ trimSuffix \".yaml\" .path.filename }}", "pr-42")
            .replace("{{ .path.path }}", "previews/payments")
            .replace("{{ .path.filename }}", "pr-42.yaml")
    };
    let template = &set["spec"]["template"];
    let name = render(template["metadata"]["name"].as_str().unwrap());
    let namespace = render(
        template["spec"]["destination"]["namespace"]
            .as_str()
            .unwrap(),
    );
    let label = regex::Regex::new(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$").unwrap();
    assert_eq!(name, "preview-payments-pr-42");
    assert!(label.is_match(&namespace), "{namespace}");
    let values = render(
        template["spec"]["sources"][0]["helm"]["valueFiles"][0]
            .as_str()
            .unwrap(),
    );
    assert_eq!(values, "$values/previews/payments/pr-42.yaml");
    assert_eq!(set["spec"]["goTemplate"], true);
    // Nothing else of the Go template is left unrendered.
    let text = render(&std::fs::read_to_string(root().join(APPLICATION_SET)).unwrap());
    assert!(!text.contains("{{"), "{text}");
}

#[test]
fn a_merged_merge_request_on_gitlab_removes_its_preview() {
    let moto = Moto::start();
    let remote = remote();
    let fake = GitLabFake::start(
        GitLabConfig::new("acme/platform/payments")
            .token(TOKEN)
            .user(7, "alice"),
    );
    let iid = fake.seed_merge_request(7, "feature-a", "main", "Feature A");
    let forge = format!(
        "\n[forge]\nkind = \"gitlab\"\nrepository = \"acme/platform/gitops\"\ntoken_file = \"forge-token\"\napi_url = \"{}\"\n",
        fake.api_url()
    );
    // The merge requests live in the app's own project, not the GitOps one.
    let block = format!("{BLOCK}preview_repository = \"acme/platform/payments\"\n");
    let scene = Scene::new(&moto, &remote, &block, &forge);
    moto.seed(
        "payments-api",
        &[(&format!("pr-{iid}-aaaaaaa"), PUSHED - 300)],
    );
    let out = scene.once();
    expect(&out, 0, &[&format!("payments/preview pr-{iid}: created")]);

    {
        let mut state = fake.state();
        let mr = state
            .merge_requests
            .iter_mut()
            .find(|m| m.iid == iid)
            .unwrap();
        mr.state = "merged".into();
    }
    let out = scene.once();
    expect(
        &out,
        0,
        &[&format!(
            "payments/preview pr-{iid}: removed {} (pull request merged)",
            preview_file(iid)
        )],
    );
    assert!(
        fake.requests().iter().any(|r| r.route == "mr.get"
            && r.status == 200
            && r.path.ends_with(&format!(
                "/projects/acme%2Fplatform%2Fpayments/merge_requests/{iid}"
            ))),
        "{:?}",
        fake.requests()
            .iter()
            .map(|r| r.path.clone())
            .collect::<Vec<_>>()
    );
}
