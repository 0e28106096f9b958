//! Issue 18, through the real binary against moto (two regions on one
//! port: the region comes from the request's signature) and real git:
//! DR targets that wait for replication, Helm charts stored in ECR, a
//! deployed image ECR no longer serves, lifecycle-check, IMMUTABLE
//! repositories, and the config errors for the new keys.

#[path = "support/forge/mod.rs"]
mod forge;
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;

const DR_REGION: &str = "us-west-2";
const ACCOUNT: &str = "123456789012";
const HELM_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";

/// Seeds `images` (moto's seed specs) into `repository` in `region`.
fn seed(moto: &Moto, region: &str, repository: &str, images: Value) -> Value {
    let body = json!({"region": region, "repositoryName": repository, "images": images});
    let (status, text) = http(&moto.endpoint, "POST", "/_tagwatch/seed", &body.to_string());
    assert_eq!(status, 200, "seed failed: {text}");
    serde_json::from_str(&text).unwrap()
}

/// A test-chosen digest, so both regions can hold the same image.
fn digest(n: u32) -> String {
    format!("sha256:{n:064x}")
}

/// ECR listing calls (no imageIds) so far, as (region, repository).
fn listings(moto: &Moto) -> Vec<(String, String)> {
    let mut calls: Vec<(String, String)> = moto
        .calls()
        .iter()
        .filter(|c| c["operation"] == "DescribeImages" && c["imageIds"].is_null())
        .filter(|c| !c["nextToken"].as_bool().unwrap_or(false))
        .map(|c| {
            (
                c["region"].as_str().unwrap_or_default().to_string(),
                c["repositoryName"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    calls.sort();
    calls
}

fn clear_calls(moto: &Moto) {
    let (status, _) = http(&moto.endpoint, "DELETE", "/_tagwatch/calls", "");
    assert_eq!(status, 200);
}

/// A config with `[aws]` on moto in the primary region, `[git]` on
/// `remote`, then `apps` (TOML) as written.
fn write_config(dir: &Path, moto: &Moto, remote: &GitRemote, extra: &str, apps: &str) -> String {
    let checkout = dir.join("checkout");
    let _ = std::fs::create_dir(&checkout);
    let text = format!(
        r#"{extra}
[aws]
region = "{REGION}"
endpoint_url = "{endpoint}"

[git]
url = "{url}"
branch = "main"
checkout_dir = "{checkout}"
author = "tagwatch <tagwatch@acme.dev>"
{apps}"#,
        endpoint = moto.endpoint,
        url = remote.file_url(),
        checkout = checkout.display(),
    );
    let path = dir.join("tagwatch.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn run(args: &[&str], cwd: &Path) -> (i32, String) {
    let out = tagwatch(args, cwd);
    (out.status.code().unwrap_or(-1), show(&out))
}

/// Issue 18 part 1: the DR target waits until the same digest is in
/// us-west-2, then takes it with the us-west-2 host; the same tag on a
/// different digest there is refused and never written. Each (region,
/// repository) is listed once per cycle.
#[test]
fn dr_target_waits_for_the_replica_then_promotes_with_its_region_host() {
    let moto = Moto::start();
    let host = format!("{ACCOUNT}.dkr.ecr.{DR_REGION}.amazonaws.com");
    let remote = GitRemote::new(&[
        ("web/prod.yaml", "image:\n  tag: 1.4.3\n"),
        ("web/dr.yaml", &format!("image: {host}/web:1.4.2\n")),
        ("api/prod.yaml", "image:\n  tag: 2.0.0\n"),
        ("api/dr.yaml", &format!("image: {host}/api:1.0.0\n")),
    ]);
    seed(
        &moto,
        REGION,
        "web",
        json!([{"tag": "1.4.2", "digest": digest(142)}, {"tag": "1.4.3", "digest": digest(143)}]),
    );
    seed(
        &moto,
        DR_REGION,
        "web",
        json!([{"tag": "1.4.2", "digest": digest(142)}]),
    );
    seed(
        &moto,
        REGION,
        "api",
        json!([{"tag": "1.0.0", "digest": digest(100)}, {"tag": "2.0.0", "digest": digest(200)}]),
    );
    // The replica diverged: the same tag, another image.
    seed(
        &moto,
        DR_REGION,
        "api",
        json!([{"tag": "1.0.0", "digest": digest(100)}, {"tag": "2.0.0", "digest": digest(999)}]),
    );
    let dir = KeepOnFailure::new();
    let mut apps = String::new();
    for app in ["web", "api"] {
        apps.push_str(&format!(
            r#"
[[apps]]
name = "{app}"
repository = "{app}"

[[apps.targets]]
env = "prod"
file = "{app}/prod.yaml"
key = "image.tag"

[[apps.targets]]
env = "dr"
file = "{app}/dr.yaml"
key = "image"
format = "image"
promote_from = "prod"
region = "{DR_REGION}"
"#
        ));
    }
    let config = write_config(dir.path(), &moto, &remote, "", &apps);

    // Not replicated yet: the dry run and the real run both wait.
    let (code, out) = run(&["once", "--dry-run", "--config", &config], dir.path());
    assert_eq!(code, 0, "{out}");
    let waiting = format!(
        "web/dr: waiting: not yet replicated to {DR_REGION} (digest {})",
        digest(143)
    );
    assert!(out.contains(&waiting), "{out}");
    clear_calls(&moto);
    let (code, out) = run(&["once", "--config", &config], dir.path());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&waiting), "{out}");
    let refused = format!(
        "api/dr: no candidate refused: {DR_REGION} has api:2.0.0 at digest {}, not {}, which prod runs",
        digest(999),
        digest(200)
    );
    assert!(out.contains(&refused), "{out}");
    // One sweep per (region, repository), whatever the number of targets.
    assert_eq!(
        listings(&moto),
        [
            (REGION.to_string(), "api".to_string()),
            (REGION.to_string(), "web".to_string()),
            (DR_REGION.to_string(), "api".to_string()),
            (DR_REGION.to_string(), "web".to_string()),
        ],
    );
    assert_eq!(remote.subjects(), ["seed"], "nothing written while waiting");

    // The daemon shows the wait: the gauge (a series for DR targets only)
    // and the /status line.
    let port = free_port();
    let daemon_config = dir.path().join("daemon.toml");
    std::fs::write(
        &daemon_config,
        format!(
            "interval = \"1s\"\nlisten = \"127.0.0.1:{port}\"\n{}",
            std::fs::read_to_string(&config).unwrap()
        ),
    )
    .unwrap();
    let daemon = Daemon::start(&daemon_config, &dir.path().join("daemon.log"));
    wait_for(
        "the replication wait gauge",
        Duration::from_secs(20),
        || {
            get(port, "/metrics")
                .contains(r#"tagwatch_replication_wait_seconds{app="web",env="dr"}"#)
        },
    );
    let metrics = get(port, "/metrics");
    assert!(
        !metrics.contains(r#"tagwatch_replication_wait_seconds{app="web",env="prod"}"#),
        "{metrics}"
    );
    assert!(
        get(port, "/status").contains("not yet replicated to us-west-2"),
        "{}",
        get(port, "/status")
    );
    daemon.stop();

    // Replicated (the same digest): promoted, with the replica's host.
    seed(
        &moto,
        DR_REGION,
        "web",
        json!([{"tag": "1.4.3", "digest": digest(143)}]),
    );
    let (code, out) = run(&["once", "--config", &config], dir.path());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("web/dr: promoted 1.4.2 -> 1.4.3"), "{out}");
    assert_eq!(
        remote.show("web/dr.yaml"),
        format!("image: {host}/web:1.4.3\n")
    );
    assert_eq!(
        remote.show("api/dr.yaml"),
        format!("image: {host}/api:1.0.0\n"),
        "the divergent replica is never written"
    );
}

/// A Helm chart manifest (its config blob has Helm's media type).
fn chart(tag: &str, n: u32) -> Value {
    json!({"tag": tag, "manifest": {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": HELM_CONFIG, "digest": digest(n), "size": 117},
        "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
                    "digest": digest(n + 1), "size": 3000}]}})
}

/// Issue 18 part 2: one repository with images and charts; the chart app
/// sees only charts and writes an Argo CD `targetRevision`, a Chart.yaml
/// dependency and a Flux HelmRelease; the image app never sees charts.
#[test]
fn helm_chart_app_sees_only_charts_and_the_image_app_never_does() {
    let moto = Moto::start();
    let remote = GitRemote::new(&[
        (
            "argocd/platform.yaml",
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nspec:\n  source:\n    chart: platform\n    targetRevision: 0.3.0 # chart\n",
        ),
        (
            "umbrella/Chart.yaml",
            "apiVersion: v2\nname: umbrella\ndependencies:\n  - name: redis\n    version: 17.0.0\n  - name: platform\n    version: \"0.3.0\"\n",
        ),
        (
            "flux/platform.yaml",
            "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nspec:\n  chart:\n    spec:\n      chart: platform\n      version: 0.3.0\n",
        ),
        ("values/image.yaml", "image:\n  tag: 1.0.0\n"),
    ]);
    seed(
        &moto,
        REGION,
        "platform",
        json!([
            {"tag": "1.0.0"}, {"tag": "1.1.0"},
            chart("0.3.0", 30), chart("0.4.0", 40), chart("2.0.0", 200),
        ]),
    );
    let dir = KeepOnFailure::new();
    let apps = r#"
[[apps]]
name = "chart"
repository = "platform"
artifact = "helm-chart"
constraint = "<2"

[[apps.targets]]
env = "argocd"
file = "argocd/platform.yaml"
key = "spec.source.targetRevision"

[[apps.targets]]
env = "umbrella"
file = "umbrella/Chart.yaml"
key = "dependencies[name=platform].version"

[[apps.targets]]
env = "flux"
file = "flux/platform.yaml"
key = "spec.chart.spec.version"

[[apps]]
name = "image"
repository = "platform"

[[apps.targets]]
env = "dev"
file = "values/image.yaml"
key = "image.tag"
"#;
    let config = write_config(dir.path(), &moto, &remote, "", apps);
    clear_calls(&moto);
    let (code, out) = run(&["once", "--config", &config], dir.path());
    assert_eq!(code, 0, "{out}");
    // Unfiltered, the chart app (<2) would take image 1.1.0 and the image
    // app chart 2.0.0.
    for env in ["argocd", "umbrella", "flux"] {
        assert!(
            out.contains(&format!("chart/{env}: promoted 0.3.0 -> 0.4.0")),
            "{out}"
        );
    }
    assert!(out.contains("image/dev: promoted 1.0.0 -> 1.1.0"), "{out}");
    assert!(
        remote
            .show("argocd/platform.yaml")
            .ends_with("targetRevision: 0.4.0 # chart\n")
    );
    assert!(
        remote
            .show("umbrella/Chart.yaml")
            .ends_with("- name: platform\n    version: \"0.4.0\"\n")
    );
    assert!(
        remote
            .show("flux/platform.yaml")
            .ends_with("version: 0.4.0\n")
    );
    assert_eq!(
        listings(&moto),
        [(REGION.to_string(), "platform".to_string())],
        "images and charts come from one sweep"
    );

    // policy test --explain lists only charts for the chart app.
    let (code, out) = run(
        &[
            "policy",
            "test",
            "--config",
            &config,
            "--app",
            "chart",
            "--explain",
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0.4.0"), "{out}");
    assert!(!out.contains("1.1.0"), "an image is not a chart: {out}");
}

fn get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    );
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text
}

fn wait_for(what: &str, deadline: Duration, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + deadline;
    while !ok() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Issue 18 part 3: only ACTIVE images are candidates; a deployed tag
/// deleted with BatchDeleteImage is an alert (metric, /status, its page,
/// `check --online`, `once`) until it is pushed again.
#[test]
fn a_deleted_deployed_tag_is_an_alert_until_restored() {
    let moto = Moto::start();
    let remote = GitRemote::new(&[("prod.yaml", "image:\n  tag: 1.0.0\n")]);
    let seeded = seed(
        &moto,
        REGION,
        "web",
        json!([{"tag": "0.9.0"}, {"tag": "1.0.0", "digest": digest(100)}, {"tag": "1.1.0"}]),
    );
    assert_eq!(seeded["images"].as_array().unwrap().len(), 3);
    // 1.1.0 is archived: never a candidate, although it is the newest.
    let status = json!({"region": REGION, "repositoryName": "web", "imageTag": "1.1.0", "status": "ARCHIVED"});
    let (code, text) = http(
        &moto.endpoint,
        "POST",
        "/_tagwatch/status",
        &status.to_string(),
    );
    assert_eq!(code, 200, "{text}");
    let dir = KeepOnFailure::new();
    let port = free_port();
    let apps = r#"
[[apps]]
name = "web"
repository = "web"

[[apps.targets]]
env = "prod"
file = "prod.yaml"
key = "image.tag"
"#;
    let config = write_config(
        dir.path(),
        &moto,
        &remote,
        &format!("interval = \"1s\"\nlisten = \"127.0.0.1:{port}\"\n"),
        apps,
    );
    let (code, out) = run(&["check", "--online", "--config", &config], dir.path());
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("deployed images: 1 checked, 0 not served by ECR"),
        "{out}"
    );

    moto.boto3(
        "client('ecr').batch_delete_image(repositoryName='web', imageIds=[{'imageTag': '1.0.0'}])",
    );
    let (code, out) = run(&["check", "--online", "--config", &config], dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("web/prod: ALERT: deployed image web:1.0.0 is not in the registry"),
        "{out}"
    );
    let (code, out) = run(&["once", "--dry-run", "--config", &config], dir.path());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("web/prod: ALERT: deployed image"), "{out}");
    assert!(
        !out.contains("1.1.0"),
        "an archived image is never a candidate: {out}"
    );

    let (code, out) = run(
        &[
            "policy",
            "test",
            "--config",
            &config,
            "--app",
            "web",
            "--explain",
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("1.1.0  archived in ECR (imageStatus ARCHIVED): never a candidate"),
        "{out}"
    );

    let log = dir.path().join("daemon.log");
    let mut daemon = Daemon::start(Path::new(&config), &log);
    let missing = |port| {
        metric(
            &get(port, "/metrics"),
            "tagwatch_deployed_image_missing",
            &[("app", "web"), ("env", "prod")],
        )
    };
    wait_for("the missing-image gauge", Duration::from_secs(20), || {
        missing(port) == 1.0
    });
    daemon.assert_running();
    let status = get(port, "/status");
    assert!(
        status.contains(
            r#""deployed_image_missing": "deployed image web:1.0.0 is not in the registry"#
        ),
        "{status}"
    );
    let page = get(port, "/");
    assert!(
        page.contains("Deployed images ECR does not serve")
            && page.contains("web/prod: deployed image web:1.0.0"),
        "{page}"
    );

    // Pushed again: the alert clears.
    seed(
        &moto,
        REGION,
        "web",
        json!([{"tag": "1.0.0", "digest": digest(100)}]),
    );
    wait_for("the gauge to clear", Duration::from_secs(20), || {
        missing(port) == 0.0
    });
    assert!(!get(port, "/status").contains("deployed_image_missing"));
    daemon.stop();
    assert_eq!(
        remote.subjects(),
        ["seed"],
        "nothing promoted: 1.1.0 is archived"
    );
}

/// Issue 18 part 3: `lifecycle-check` against a policy that keeps the last
/// 3 images reports the deployed image that is 5th newest.
#[test]
fn lifecycle_check_reports_a_deployed_image_a_rule_would_expire() {
    let moto = Moto::start();
    let remote = GitRemote::new(&[
        ("dev.yaml", "image:\n  tag: 1.0.7\n"),
        ("prod.yaml", "image:\n  tag: 1.0.3\n"),
        ("dr.yaml", "image:\n  tag: 1.0.2\n"),
    ]);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let images: Vec<Value> = (1..=7)
        .map(|i| json!({"tag": format!("1.0.{i}"), "pushedAt": now - 3600 * (8 - i)}))
        .collect();
    seed(&moto, REGION, "web", Value::Array(images.clone()));
    // The DR region's replica has its own, stricter policy: keep 1.
    seed(&moto, DR_REGION, "web", Value::Array(images[..3].to_vec()));
    let keep_one = json!({"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any",
        "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}]});
    moto.boto3(&format!(
        "boto3.client('ecr', endpoint_url={:?}, region_name={DR_REGION:?}, aws_access_key_id='testing', aws_secret_access_key='testing').put_lifecycle_policy(repositoryName='web', lifecyclePolicyText={:?})",
        moto.endpoint,
        keep_one.to_string()
    ));
    let policy = json!({"rules": [{"rulePriority": 1, "description": "keep the last 3",
        "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 3},
        "action": {"type": "expire"}}]});
    moto.boto3(&format!(
        "client('ecr').put_lifecycle_policy(repositoryName='web', lifecyclePolicyText={:?})",
        policy.to_string()
    ));
    let dir = KeepOnFailure::new();
    let apps = r#"
[[apps]]
name = "web"
repository = "web"
constraint = "<1.0.0"

[[apps.targets]]
env = "dev"
file = "dev.yaml"
key = "image.tag"

[[apps.targets]]
env = "prod"
file = "prod.yaml"
key = "image.tag"

[[apps.targets]]
env = "dr"
file = "dr.yaml"
key = "image.tag"
promote_from = "prod"
region = "us-west-2"
"#;
    let config = write_config(dir.path(), &moto, &remote, "", apps);
    let (code, out) = run(&["lifecycle-check", "--config", &config], dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("web/prod: 1.0.3: WOULD BE EXPIRED in web: rule 1 keeps the newest 3 images (\"keep the last 3\"); this is number 5 of 7"),
        "{out}"
    );
    assert!(
        out.contains("web/dr: 1.0.2: WOULD BE EXPIRED in web (us-west-2): rule 1 keeps the newest 1 images; this is number 2 of 3"),
        "{out}"
    );
    assert!(out.contains("web/dev: 1.0.7: kept by rule 1"), "{out}");

    moto.boto3("client('ecr').delete_lifecycle_policy(repositoryName='web')");
    let (code, out) = run(&["lifecycle-check", "--config", &config], dir.path());
    assert_eq!(
        code, 1,
        "the replica's policy still expires dr's image: {out}"
    );
    assert!(out.contains("web: no lifecycle policy"), "{out}");
}

/// An IMMUTABLE repository's tags cannot move: the digest strategy's
/// re-check before the commit is skipped, and `DescribeRepositories` is
/// read once; a mutable repository is re-checked.
#[test]
fn an_immutable_repository_skips_the_recheck() {
    let moto = Moto::start();
    let remote = GitRemote::new(&[
        ("frozen.yaml", "image:\n  digest: sha256:old\n"),
        ("moving.yaml", "image:\n  digest: sha256:old\n"),
    ]);
    seed(&moto, REGION, "frozen", json!([{"tag": "stable"}]));
    seed(&moto, REGION, "moving", json!([{"tag": "stable"}]));
    moto.boto3(
        "client('ecr').put_image_tag_mutability(repositoryName='frozen', imageTagMutability='IMMUTABLE')",
    );
    let dir = KeepOnFailure::new();
    let mut apps = String::new();
    for app in ["frozen", "moving"] {
        apps.push_str(&format!(
            r#"
[[apps]]
name = "{app}"
repository = "{app}"
strategy = "digest"
constraint = "stable"

[[apps.targets]]
env = "dev"
file = "{app}.yaml"
key = "image.digest"
"#
        ));
    }
    let config = write_config(dir.path(), &moto, &remote, "", &apps);
    clear_calls(&moto);
    let (code, out) = run(&["once", "--config", &config], dir.path());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("frozen/dev: promoted"), "{out}");
    assert!(out.contains("moving/dev: promoted"), "{out}");
    let calls = moto.calls();
    let rechecked: Vec<&str> = calls
        .iter()
        .filter(|c| c["operation"] == "DescribeImages" && !c["imageIds"].is_null())
        .filter_map(|c| c["repositoryName"].as_str())
        .collect();
    assert_eq!(rechecked, ["moving"], "{calls:?}");
    let described = calls
        .iter()
        .filter(|c| c["operation"] == "DescribeRepositories")
        .count();
    assert_eq!(described, 2, "one per repository: {calls:?}");
}

/// The new keys' bad values exit 64 naming file, line and key.
#[test]
fn bad_region_artifact_and_dr_without_promote_from_exit_64() {
    let moto = Moto::start();
    let remote = GitRemote::new(&[("prod.yaml", "image:\n  tag: 1.0.0\n")]);
    let dir = KeepOnFailure::new();
    let cases = [
        (
            "artifact = \"helm\"\n",
            "",
            "apps[0].artifact",
            "unknown artifact \"helm\"",
        ),
        (
            "",
            "promote_from = \"prod\"\nregion = \"us-west-two\"\n",
            "apps[0].targets[1].region",
            "is not an AWS region name",
        ),
        (
            "",
            "region = \"us-west-2\"\n",
            "apps[0].targets[1].region",
            "set promote_from",
        ),
        (
            "",
            "promote_from = \"prod\"\nregistry_id = \"12345\"\n",
            "apps[0].targets[1].registry_id",
            "is not a 12-digit AWS account id",
        ),
        (
            "",
            "promote_from = \"prod\"\nassume_role_arn = \"dr-reader\"\n",
            "apps[0].targets[1].assume_role_arn",
            "is not an IAM role ARN",
        ),
    ];
    for (on_app, on_target, key, message) in cases {
        let apps = format!(
            r#"
[[apps]]
name = "web"
repository = "web"
{on_app}
[[apps.targets]]
env = "prod"
file = "prod.yaml"
key = "image.tag"

[[apps.targets]]
env = "dr"
file = "dr.yaml"
key = "image.tag"
{on_target}"#
        );
        let config = write_config(dir.path(), &moto, &remote, "", &apps);
        let (code, out) = run(&["check", "--config", &config], dir.path());
        assert_eq!(code, 64, "{out}");
        let text = std::fs::read_to_string(&config).unwrap();
        let bad = on_app.lines().chain(on_target.lines()).next_back().unwrap();
        let line = text.lines().position(|l| l == bad).unwrap() + 1;
        assert!(
            out.contains(&format!("{config}:{line}")) && out.contains(key) && out.contains(message),
            "want {config}:{line} {key} {message}: {out}"
        );
    }
}

/// An "ECR Replication Action" event naming the DR target's replica
/// repository (named apart from the app's) wakes a cycle: the target is
/// promoted in seconds, with the poll an hour away.
#[test]
fn a_replication_event_wakes_the_dr_target() {
    let moto = Moto::start();
    let host = format!("{ACCOUNT}.dkr.ecr.{DR_REGION}.amazonaws.com");
    let remote = GitRemote::new(&[
        ("prod.yaml", "image:\n  tag: 1.4.3\n"),
        ("dr.yaml", &format!("image: {host}/web-replica:1.4.2\n")),
    ]);
    seed(
        &moto,
        REGION,
        "web",
        json!([{"tag": "1.4.2", "digest": digest(142)}, {"tag": "1.4.3", "digest": digest(143)}]),
    );
    seed(
        &moto,
        DR_REGION,
        "web-replica",
        json!([{"tag": "1.4.2", "digest": digest(142)}]),
    );
    let queue = moto.boto3(
        "print(client('sqs').create_queue(QueueName='tagwatch-events', Attributes={'VisibilityTimeout': '1'})['QueueUrl'])",
    );
    let dir = KeepOnFailure::new();
    let port = free_port();
    let apps = format!(
        r#"
[aws.events]
sqs_queue_url = "{queue}"

[[apps]]
name = "web"
repository = "web"

[[apps.targets]]
env = "prod"
file = "prod.yaml"
key = "image.tag"

[[apps.targets]]
env = "dr"
file = "dr.yaml"
key = "image"
format = "image"
promote_from = "prod"
region = "{DR_REGION}"
repository = "web-replica"
"#
    );
    let config = write_config(
        dir.path(),
        &moto,
        &remote,
        &format!("interval = \"1h\"\nlisten = \"127.0.0.1:{port}\"\n"),
        &apps,
    );
    let log = dir.path().join("daemon.log");
    let daemon = Daemon::start_with_env(
        Path::new(&config),
        &log,
        &[("AWS_ENDPOINT_URL_SQS", &moto.endpoint)],
    );
    wait_for("the first cycle", Duration::from_secs(30), || {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        log.contains("listening for ECR push events") && log.contains("cycle finished")
    });
    assert!(
        get(port, "/status").contains("not yet replicated to us-west-2"),
        "{}",
        get(port, "/status")
    );
    assert_eq!(remote.subjects(), ["seed"]);

    seed(
        &moto,
        DR_REGION,
        "web-replica",
        json!([{"tag": "1.4.3", "digest": digest(143)}]),
    );
    let event = json!({"version": "0", "id": "r1", "detail-type": "ECR Replication Action",
        "source": "aws.ecr", "account": ACCOUNT, "time": "2026-11-21T10:03:00Z",
        "region": DR_REGION, "resources": [],
        "detail": {"result": "SUCCESS", "repository-name": "web-replica",
                   "image-digest": digest(143), "source-account": ACCOUNT,
                   "action-type": "REPLICATE", "source-region": REGION, "image-tag": "1.4.3"}});
    let sent = Instant::now();
    moto.boto3(&format!(
        "client('sqs').send_message(QueueUrl={queue:?}, MessageBody={:?})",
        event.to_string()
    ));
    remote.wait_for_commits(
        2,
        sent + Duration::from_secs(15),
        "no promotion after the replication event",
    );
    assert_eq!(
        remote.show("dr.yaml"),
        format!("image: {host}/web-replica:1.4.3\n")
    );
    daemon.stop();
}

/// A pull-request DR target is proposed only once replicated, and the
/// request's body says so, with the console link in the replica region.
#[test]
fn a_dr_pull_request_says_it_is_replicated() {
    let moto = Moto::start();
    let host = format!("{ACCOUNT}.dkr.ecr.{DR_REGION}.amazonaws.com");
    let remote = GitRemote::new(&[
        ("prod.yaml", "image:\n  tag: 1.4.3\n"),
        ("dr.yaml", &format!("image: {host}/web:1.4.2\n")),
    ]);
    for region in [REGION, DR_REGION] {
        seed(
            &moto,
            region,
            "web",
            json!([{"tag": "1.4.2", "digest": digest(142)}, {"tag": "1.4.3", "digest": digest(143)}]),
        );
    }
    let fake = forge::GitHubFake::start(
        forge::GitHubConfig::new("acme", "gitops")
            .token("forge-token-1")
            .git_dir(&remote.bare()),
    );
    let dir = KeepOnFailure::new();
    std::fs::write(dir.path().join("forge-token"), "forge-token-1\n").unwrap();
    let apps = format!(
        r#"
[forge]
kind = "github"
repository = "acme/gitops"
token_file = "forge-token"
api_url = "{api}"

[[apps]]
name = "web"
repository = "web"

[[apps.targets]]
env = "prod"
file = "prod.yaml"
key = "image.tag"

[[apps.targets]]
env = "dr"
file = "dr.yaml"
key = "image"
format = "image"
promote_from = "prod"
region = "{DR_REGION}"
update = "pull-request"
"#,
        api = fake.api_url()
    );
    let config = write_config(dir.path(), &moto, &remote, "", &apps);
    let (code, out) = run(&["once", "--config", &config], dir.path());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("web/dr: proposed 1.4.2 -> 1.4.3"), "{out}");
    let pulls = fake.pulls();
    assert_eq!(pulls.len(), 1);
    let body = pulls[0].body.clone().unwrap_or_default();
    assert!(
        body.contains("  - replicated: us-west-2 holds web:`1.4.3` at the same digest"),
        "{body}"
    );
    assert!(
        body.contains(
            "https://us-west-2.console.aws.amazon.com/ecr/repositories/private/123456789012/web/"
        ),
        "{body}"
    );
}
