//! The ECR-native promotion gates end to end: the real `tagwatch` binary
//! against moto's ECR (with per-image scan findings and the referrers API
//! served by tests/moto_server.py), moto's SQS for scan events, and a real
//! bare git repository.

#[path = "support/forge/mod.rs"]
mod forge;
mod support;

use std::time::{Duration, Instant};

use forge::{GitHubConfig, GitHubFake};

use support::*;

const REPO: &str = "app";
const FILE: &str = "values.yaml";
const IGNORE: &str = r#"ignore = ["*-debug", "1.4.9"]"#;

/// One app `app`, env dev on 1.0.0, with `keys` added to the app.
fn setup(keys: &str) -> (Moto, GitRemote, Workdir) {
    let moto = Moto::start();
    let remote = GitRemote::new(&[(FILE, "image:\n  tag: 1.0.0\n")]);
    let work = Workdir::new(
        &moto.endpoint,
        &remote.file_url(),
        &[("app", REPO, "^1", FILE)],
    );
    work.edit_config(IGNORE, &format!("{IGNORE}\n{keys}"));
    (moto, remote, work)
}

/// Seeds `(tag, pushed_at)` and returns each tag's digest.
fn seed(moto: &Moto, images: &[(&str, i64)]) -> Vec<String> {
    let seeded = moto.seed(REPO, images);
    images
        .iter()
        .map(|(tag, _)| moto.digest(&seeded, tag))
        .collect()
}

/// Sets the scan of `digest`: its status and `(severity, count)`.
fn scan(moto: &Moto, digest: &str, status: &str, counts: &[(&str, u32)]) {
    let counts: serde_json::Map<String, serde_json::Value> = counts
        .iter()
        .map(|(s, n)| (s.to_string(), (*n).into()))
        .collect();
    let body = serde_json::json!({
        "repositoryName": REPO, "imageDigest": digest, "status": status, "counts": counts,
    });
    let (code, text) = http(&moto.endpoint, "POST", "/_tagwatch/scan", &body.to_string());
    assert_eq!(code, 200, "{text}");
}

/// Pushes an OCI referrer of `artifact_type` whose subject is `digest`.
fn refer(moto: &Moto, digest: &str, artifact_type: &str) {
    let body = serde_json::json!({
        "region": "eu-west-1", "repositoryName": REPO,
        "images": [{"tags": [], "subject": digest, "artifactType": artifact_type, "pushedAt": 5}],
    });
    let (code, text) = http(&moto.endpoint, "POST", "/_tagwatch/seed", &body.to_string());
    assert_eq!(code, 200, "{text}");
}

/// The digests moto was asked `operation` about, in order.
fn asked(moto: &Moto, operation: &str) -> Vec<String> {
    moto.calls()
        .iter()
        .filter(|c| c["operation"] == operation)
        .map(|c| {
            let id = &c["imageIds"][0];
            id["imageDigest"].as_str().unwrap_or_default().to_string()
        })
        .collect()
}

fn out_text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_critical_newest_is_skipped_for_the_clean_one_below() {
    let (moto, remote, work) = setup(r#"scan_max_severity = "HIGH""#);
    let d = seed(&moto, &[("1.0.0", 1), ("1.1.0", 2), ("1.2.0", 3)]);
    scan(&moto, &d[0], "COMPLETE", &[]);
    scan(&moto, &d[1], "COMPLETE", &[("HIGH", 4), ("UNDEFINED", 1)]);
    scan(&moto, &d[2], "COMPLETE", &[("CRITICAL", 2), ("LOW", 7)]);

    let out = work.once(&["--dry-run"]);
    expect(&out, 0, &["app/dev: would promote 1.0.0 -> 1.1.0"]);
    let out = work.once(&[]);
    expect(&out, 0, &["app/dev: promoted 1.0.0 -> 1.1.0"]);
    assert_eq!(remote.subjects(), ["app: dev 1.0.0 -> 1.1.0", "seed"]);
    // Best first, stopping at the first that passes: never the image the
    // file holds, never one below the choice.
    assert_eq!(
        asked(&moto, "DescribeImageScanFindings"),
        [d[2].as_str(), &d[1], &d[2], &d[1]],
        "two runs, each asking 1.2.0 then 1.1.0"
    );

    // Now on 1.1.0, the newer 1.2.0 stays out, and the line says why.
    let out = work.once(&[]);
    expect(
        &out,
        0,
        &[
            "app/dev: no candidate in the registry (1.2.0: 2 CRITICAL findings above HIGH (basic scan)); keeping 1.1.0",
        ],
    );
    assert_eq!(remote.subjects().len(), 2);
}

#[test]
fn a_pending_scan_waits_then_promotes_when_complete() {
    let (moto, remote, work) = setup(r#"scan_max_severity = "MEDIUM""#);
    let d = seed(&moto, &[("1.0.0", 1), ("1.1.0", 2)]);
    scan(&moto, &d[1], "IN_PROGRESS", &[]);

    let out = work.once(&[]);
    expect(&out, 0, &["app/dev: waiting: 1.1.0: scan pending"]);
    assert_eq!(remote.subjects(), ["seed"]);

    scan(&moto, &d[1], "COMPLETE", &[("MEDIUM", 1)]);
    let out = work.once(&[]);
    expect(&out, 0, &["app/dev: promoted 1.0.0 -> 1.1.0"]);
}

#[test]
fn a_missing_scan_is_pending_not_an_error() {
    let (moto, remote, work) = setup(r#"scan_max_severity = "MEDIUM""#);
    seed(&moto, &[("1.0.0", 1), ("1.1.0", 2)]);
    let out = work.once(&[]);
    expect(&out, 0, &["app/dev: waiting: 1.1.0: scan pending"]);
    assert_eq!(remote.subjects(), ["seed"]);
}

#[test]
fn a_scan_event_wakes_a_cycle_and_drops_the_kept_result() {
    let (moto, remote, work) = setup(r#"scan_max_severity = "HIGH""#);
    let d = seed(&moto, &[("1.0.0", 1), ("1.1.0", 2)]);
    scan(&moto, &d[1], "COMPLETE", &[("CRITICAL", 1)]);
    let queue = moto.boto3(
        "print(client('sqs').create_queue(QueueName='tagwatch-events', Attributes={'VisibilityTimeout': '60'})['QueueUrl'])",
    );
    let port = free_port();
    // Polling only hourly: anything sooner came from the event.
    work.edit_config("interval = \"2m\"", "interval = \"1h\"");
    work.edit_config(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    work.edit_config(
        "[git]",
        &format!("[aws.events]\nsqs_queue_url = \"{queue}\"\n\n[git]"),
    );
    let log = work.dir.path().join("daemon.log");
    let daemon = Daemon::start_with_env(
        &work.config,
        &log,
        &[("AWS_ENDPOINT_URL_SQS", &moto.endpoint)],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while daemon.count("listening for ECR push events") == 0 || daemon.count("cycle finished") == 0
    {
        assert!(
            Instant::now() < deadline,
            "no start:\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, status) = http(&format!("http://127.0.0.1:{port}"), "GET", "/status", "");
    assert_eq!(code, 200);
    assert!(
        status.contains("1.1.0: 1 CRITICAL finding above HIGH"),
        "/status names the gate: {status}"
    );
    let (_, metrics) = http(&format!("http://127.0.0.1:{port}"), "GET", "/metrics", "");
    assert!(
        metrics.contains("tagwatch_gate_results_total{gate=\"scan\",outcome=\"fail\"} 1"),
        "{metrics}"
    );
    // Each ECR call is counted under its own operation.
    assert!(
        metrics.contains(
            "tagwatch_registry_requests_total{operation=\"DescribeImageScanFindings\",outcome=\"success\"} 1"
        ),
        "{metrics}"
    );

    // A rescan with a newer vulnerability database clears it; ECR sends
    // the scan event, and the kept CRITICAL result must not outlive it.
    scan(&moto, &d[1], "COMPLETE", &[("LOW", 3)]);
    let event = serde_json::json!({
        "version": "0", "id": "s1", "detail-type": "ECR Image Scan", "source": "aws.ecr",
        "account": "123456789012", "time": "2026-11-21T10:05:00Z", "region": "eu-west-1",
        "resources": [], "detail": {"scan-status": "COMPLETE", "repository-name": REPO,
        "image-digest": d[1], "image-tags": ["1.1.0"], "finding-severity-counts": {"LOW": 3}},
    })
    .to_string();
    let sent = Instant::now();
    moto.boto3(&format!(
        "client('sqs').send_message(QueueUrl={queue:?}, MessageBody={event:?})\n"
    ));
    remote.wait_for_commits(
        2,
        sent + Duration::from_secs(15),
        "no promotion after the scan event",
    );
    assert_eq!(remote.subjects(), ["app: dev 1.0.0 -> 1.1.0", "seed"]);
    drop(daemon);
}

#[test]
fn an_unsigned_newest_is_skipped_for_the_signed_one() {
    let (moto, remote, work) = setup(r#"require_signature = "cosign""#);
    let d = seed(&moto, &[("1.0.0", 1), ("1.1.0", 2), ("1.2.0", 3)]);
    // cosign's legacy scheme: the signature is a tag named after the digest.
    let sig = format!("{}.sig", d[1].replacen(':', "-", 1));
    moto.seed(REPO, &[(sig.as_str(), 4)]);

    let out = work.once(&[]);
    expect(&out, 0, &["app/dev: promoted 1.0.0 -> 1.1.0"]);
    // 1.2.0 had no .sig tag, so its referrers were read; 1.1.0's tag was enough.
    assert_eq!(asked(&moto, "ListImageReferrers"), [d[2].as_str()]);

    // A notation signature (AWS Signer) on 1.2.0, as an OCI referrer.
    work.edit_config(
        r#"require_signature = "cosign""#,
        r#"require_signature = "notation""#,
    );
    refer(&moto, &d[2], "application/vnd.cncf.notary.signature");
    let out = work.once(&[]);
    expect(&out, 0, &["app/dev: promoted 1.1.0 -> 1.2.0"]);
    assert_eq!(remote.subjects().len(), 3);
}

#[test]
fn an_unsigned_image_is_named_when_nothing_is_signed() {
    let (moto, remote, work) = setup(r#"require_signature = "any""#);
    seed(&moto, &[("1.0.0", 1), ("1.1.0", 2)]);
    let out = work.once(&[]);
    expect(
        &out,
        0,
        &["app/dev: no candidate in the registry (1.1.0: not signed); keeping 1.0.0"],
    );
    assert_eq!(remote.subjects(), ["seed"]);
}

#[test]
fn a_sig_tag_is_never_chosen_by_newest() {
    let (moto, remote, work) = setup("");
    work.edit_config("constraint = \"^1\"", "strategy = \"newest\"");
    let d = seed(&moto, &[("1.0.0", 1), ("build-7", 2)]);
    // Signed after the push, so the signature tag is the newest of all.
    let sig = format!("{}.sig", d[1].replacen(':', "-", 1));
    let att = format!("{}.att", d[1].replacen(':', "-", 1));
    moto.seed(REPO, &[(sig.as_str(), 3), (att.as_str(), 4)]);
    let out = work.once(&[]);
    expect(&out, 0, &["app/dev: promoted 1.0.0 -> build-7"]);
    assert_eq!(remote.subjects().len(), 2);
    let _ = out_text(&out);
}

#[test]
fn a_bad_gate_value_exits_64_naming_file_line_and_key() {
    let (_moto, _remote, work) = setup(r#"scan_max_severity = "SEVERE""#);
    let out = work.once(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{}", show(&out));
    assert!(err.contains("apps[0].scan_max_severity"), "{err}");
    assert!(err.contains("tagwatch.toml:"), "{err}");
    assert!(err.contains("unknown severity \"SEVERE\""), "{err}");
}

#[test]
fn a_pull_request_body_says_which_gates_the_version_passed() {
    let (moto, remote, work) = setup(
        r#"scan_max_severity = "HIGH"
require_signature = "cosign""#,
    );
    let d = seed(&moto, &[("1.0.0", 1), ("1.1.0", 2)]);
    scan(&moto, &d[1], "COMPLETE", &[("HIGH", 2), ("LOW", 1)]);
    refer(
        &moto,
        &d[1],
        "application/vnd.dev.sigstore.bundle.v0.3+json",
    );
    let fake = GitHubFake::start(
        GitHubConfig::new("acme", "gitops")
            .token("forge-token-1")
            .git_dir(&remote.bare()),
    );
    work.edit_config(
        "key = \"image.tag\"",
        &format!(
            "key = \"image.tag\"\nupdate = \"pull-request\"\n\n[forge]\nkind = \"github\"\nrepository = \"acme/gitops\"\ntoken_file = \"forge-token\"\napi_url = \"{}\"",
            fake.api_url()
        ),
    );
    std::fs::write(work.dir.path().join("forge-token"), "forge-token-1\n").unwrap();
    let out = work.once(&[]);
    expect(&out, 0, &["app/dev: proposed 1.0.0 -> 1.1.0"]);
    let pulls = fake.pulls();
    let body = pulls[0].body.clone().unwrap_or_default();
    assert!(
        body.contains("gate scan passed: scan (basic): 3 findings, none above HIGH"),
        "{body}"
    );
    assert!(
        body.contains("gate signature passed: signed (cosign)"),
        "{body}"
    );
}

#[test]
fn policy_test_explain_shows_gate_verdicts_or_says_they_are_offline() {
    let (moto, _remote, work) = setup(r#"scan_max_severity = "HIGH""#);
    let d = seed(&moto, &[("1.0.0", 1), ("1.1.0", 2), ("1.2.0", 3)]);
    scan(&moto, &d[1], "COMPLETE", &[]);
    scan(&moto, &d[2], "COMPLETE", &[("CRITICAL", 2)]);
    let config = work.config.to_str().unwrap();
    let out = tagwatch(
        &[
            "policy",
            "test",
            "--config",
            config,
            "--app",
            "app",
            "--explain",
        ],
        work.dir.path(),
    );
    expect(
        &out,
        0,
        &[
            "gate scan on 1.2.0: fail (2 CRITICAL findings above HIGH (basic scan))",
            "gate scan on 1.1.0: pass (scan (basic): 0 findings, none above HIGH)",
            "\n1.1.0\n",
        ],
    );
    let out = tagwatch(
        &["policy", "test", "--explain", "1.0.0", "1.1.0"],
        work.dir.path(),
    );
    expect(&out, 0, &["1.1.0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("gates: not checked offline"),
        "{}",
        show(&out)
    );
}

/// Signs `digest` the way `cosign sign --key` does (a simple-signing
/// payload naming the digest, an ECDSA P-256 signature over it, pushed as
/// the layer of `sha256-<hex>.sig` with the signature as its annotation),
/// with the key whose public half is `key.pub` in `dir` (made if missing).
fn cosign_sign(moto: &Moto, dir: &std::path::Path, key: &str, digest: &str) {
    let script = format!(
        r#"
import base64, hashlib, os
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
path = {dir:?} + "/" + {key:?}
if os.path.exists(path + ".key"):
    private = serialization.load_pem_private_key(open(path + ".key", "rb").read(), None)
else:
    private = ec.generate_private_key(ec.SECP256R1())
    open(path + ".key", "wb").write(private.private_bytes(serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    open(path + ".pub", "wb").write(private.public_key().public_bytes(serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo))
payload = json.dumps({{"critical": {{"identity": {{"docker-reference": "app"}},
    "image": {{"docker-manifest-digest": {digest:?}}}, "type": "cosign container image signature"}},
    "optional": None}}).encode()
signature = base64.b64encode(private.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()
print(json.dumps({{"payload": base64.b64encode(payload).decode(), "signature": signature,
    "digest": "sha256:" + hashlib.sha256(payload).hexdigest()}}))
"#
    );
    let signed: serde_json::Value = serde_json::from_str(&moto.boto3(&script)).unwrap();
    let layer = signed["digest"].as_str().unwrap();
    let blob = serde_json::json!({"digest": layer, "base64": signed["payload"]});
    let (code, text) = http(&moto.endpoint, "POST", "/_tagwatch/blob", &blob.to_string());
    assert_eq!(code, 200, "{text}");
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 233,
                   "digest": "sha256:0000000000000000000000000000000000000000000000000000000000000000"},
        "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                    "size": 250, "digest": layer,
                    "annotations": {"dev.cosignproject.cosign/signature": signed["signature"]}}],
    });
    let tag = format!("{}.sig", digest.replacen(':', "-", 1));
    let body = serde_json::json!({
        "region": "eu-west-1", "repositoryName": REPO,
        "images": [{"tags": [tag], "manifest": manifest, "pushedAt": 9}],
    });
    let (code, text) = http(&moto.endpoint, "POST", "/_tagwatch/seed", &body.to_string());
    assert_eq!(code, 200, "{text}");
}

#[test]
fn a_signature_by_another_key_is_not_a_candidate() {
    let (moto, remote, work) = setup(
        r#"require_signature = "cosign"
cosign_public_key_file = "trusted.pub""#,
    );
    let dir = work.dir.path();
    let d = seed(&moto, &[("1.0.0", 1), ("1.1.0", 2), ("1.2.0", 3)]);
    // 1.1.0 signed with the trusted key; 1.2.0 (newer) with another.
    cosign_sign(&moto, dir, "trusted", &d[1]);
    cosign_sign(&moto, dir, "other", &d[2]);
    let out = work.once(&[]);
    expect(&out, 0, &["app/dev: promoted 1.0.0 -> 1.1.0"]);
    assert_eq!(remote.subjects().len(), 2);
    let out = work.once(&[]);
    expect(&out, 0, &["(1.2.0: no cosign signature verifies with"]);

    // Once 1.2.0 is signed with the trusted key too, it moves.
    cosign_sign(&moto, dir, "trusted", &d[2]);
    let out = work.once(&[]);
    expect(&out, 0, &["app/dev: promoted 1.1.0 -> 1.2.0"]);
}

#[test]
fn a_missing_cosign_key_file_exits_64() {
    let (_moto, _remote, work) = setup(
        r#"require_signature = "cosign"
cosign_public_key_file = "nowhere.pub""#,
    );
    let out = work.once(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{}", show(&out));
    assert!(err.contains("apps[0].cosign_public_key_file"), "{err}");
    assert!(err.contains("cannot read"), "{err}");
}

#[test]
fn scan_findings_are_read_to_the_last_page() {
    let (moto, remote, work) = setup(r#"scan_max_severity = "HIGH""#);
    let d = seed(&moto, &[("1.0.0", 1), ("1.1.0", 2)]);
    // More findings than one page of 1000 holds.
    scan(&moto, &d[1], "COMPLETE", &[("HIGH", 1500)]);
    let out = work.once(&[]);
    expect(&out, 0, &["app/dev: promoted 1.0.0 -> 1.1.0"]);
    let pages: Vec<bool> = moto
        .calls()
        .iter()
        .filter(|c| c["operation"] == "DescribeImageScanFindings")
        .map(|c| c["nextToken"] == true)
        .collect();
    assert_eq!(pages, [false, true], "two pages, the second by its token");
    assert_eq!(remote.subjects().len(), 2);
}

/// `tagwatch promote` goes through the same gates: an explicit tag with a
/// finding above the limit is refused, naming the gate; a clean one lands.
#[test]
fn promote_of_an_explicit_tag_passes_through_the_gates() {
    let (moto, remote, work) = setup(r#"scan_max_severity = "HIGH""#);
    let d = seed(&moto, &[("1.0.0", 1), ("1.1.0", 2), ("1.2.0", 3)]);
    scan(&moto, &d[1], "COMPLETE", &[("LOW", 1)]);
    scan(&moto, &d[2], "COMPLETE", &[("CRITICAL", 1)]);
    let config = work.config.to_str().unwrap();
    let promote = |tag: &str| {
        tagwatch(
            &[
                "promote", "--config", config, "--app", "app", "--env", "dev", "--tag", tag,
            ],
            work.dir.path(),
        )
    };
    let out = promote("1.2.0");
    assert_eq!(out.status.code(), Some(64), "{}", show(&out));
    assert!(show(&out).contains("CRITICAL"), "{}", show(&out));
    assert_eq!(remote.subjects(), ["seed"]);

    let out = promote("1.1.0");
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(remote.subjects(), ["app: dev 1.0.0 -> 1.1.0", "seed"]);
}
