//! The Helm chart in `charts/tagwatch/`, through Helm's own code, offline.
//!
//! Debian has no helm package and nothing may be downloaded at test time, so
//! `tests/helm.py` drives Helm v4's Go SDK as bundled by the PyPI wheel
//! `helm-python-sdk` (tests/requirements.txt, installed into `.venv` by
//! `scripts/test`): `lint` is Helm's linter with `--strict`, `template` the
//! client-only dry-run install that `helm template` runs, values schema
//! included. The rendered objects then go through the same Kubernetes schema
//! check as `manifests/` (tests/k8s_validate.py, shared with tests/deploy.rs).
//!
//! The chart and the Kustomize base must not drift. They are compared, not
//! generated one from the other: each stays a file a person reads and edits
//! (the base's comments say why every setting is there, the chart adds its
//! values), and a generator would be one more program to trust. The bulky
//! data the two would otherwise copy — tagwatch.toml, the alert rules, the
//! dashboard — is shared: the chart's `files/` links to `manifests/`. The
//! test renders the chart with `ci/manifests-values.yaml` and asserts the
//! objects equal `kubectl kustomize manifests/`, as parsed YAML, after
//! removing only what Helm adds by design (its standard labels, which the
//! selectors include, and the config checksum annotation) and the base's
//! Namespace and ConfigMap hash suffix. The sharded variant is held the same
//! way: `ci/manifests-values.yaml` plus `ci/sharded-values.yaml` must render
//! what an overlay using `manifests/components/sharded` renders.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chart() -> PathBuf {
    root().join("charts/tagwatch")
}

/// A tool installed in `.venv` from `tests/requirements.txt`.
fn venv_tool(name: &str) -> PathBuf {
    let path = root().join(".venv/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/test, which installs tests/requirements.txt into .venv",
        path.display()
    );
    path
}

fn output(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

/// Runs `command`; returns its stdout, or panics with all it printed.
fn run(command: &mut Command) -> String {
    let out = output(command);
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `tests/helm.py ARGS`: Helm's code on the chart.
fn helm(args: &[&str]) -> Command {
    let mut command = Command::new(venv_tool("python"));
    command.arg(root().join("tests/helm.py")).args(args);
    command
}

/// `helm template RELEASE charts/tagwatch --namespace NS` plus `extra`
/// (`-f FILE`, `--set-file K=PATH`).
fn template(release: &str, namespace: &str, extra: &[&str]) -> Command {
    let chart = chart();
    let mut args = vec![
        "template",
        release,
        chart.to_str().unwrap(),
        "--namespace",
        namespace,
    ];
    args.extend_from_slice(extra);
    helm(&args)
}

fn ci(file: &str) -> String {
    chart().join("ci").join(file).to_str().unwrap().to_string()
}

/// The arguments that turn every option on: ci/all-on-values.yaml, and
/// `config` as a map of two files.
fn all_on() -> Vec<String> {
    vec![
        "-f".into(),
        ci("all-on-values.yaml"),
        "--set-file".into(),
        format!("config.tagwatch\\.toml={}", ci("all-on-tagwatch.toml")),
        "--set-file".into(),
        format!("config.apps-payments\\.toml={}", ci("all-on-apps.toml")),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A YAML stream's documents as JSON, parsed by PyYAML: YAML 1.1 as
/// Kubernetes reads it (`defaultMode: 0440` is octal 288 there).
fn objects(yaml: &str) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("objects.yaml");
    std::fs::write(&path, yaml).unwrap();
    let json = run(Command::new(venv_tool("python"))
        .arg("-c")
        .arg(
            "import sys, json, yaml\n\
         print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))",
        )
        .arg(&path));
    serde_json::from_str::<Vec<Value>>(&json).unwrap()
}

/// Objects by "Kind/name".
fn by_name(objects: Vec<Value>) -> BTreeMap<String, Value> {
    objects
        .into_iter()
        .map(|o| {
            let key = format!(
                "{}/{}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            );
            (key, o)
        })
        .collect()
}

fn object<'a>(objects: &'a BTreeMap<String, Value>, key: &str) -> &'a Value {
    objects.get(key).unwrap_or_else(|| {
        panic!(
            "no {key} among {:?}",
            objects.keys().collect::<Vec<&String>>()
        )
    })
}

/// The Kubernetes schema check `manifests/` gets (tests/deploy.rs), for the
/// oldest and newest Kubernetes the chart is for. Returns how many objects
/// passed, per version.
fn validate(yaml: &str) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rendered.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = run(Command::new(venv_tool("python"))
        .arg(root().join("tests/k8s_validate.py"))
        .arg(&path)
        .arg("1.32.0,1.37.0")
        .arg("monitoring.coreos.com"));
    out.matches("valid:").count() / 2
}

#[test]
fn chart_app_version_is_the_crate_version() {
    let text = std::fs::read_to_string(chart().join("Chart.yaml")).unwrap();
    let chart: Value = serde_norway::from_str(&text).unwrap();
    assert_eq!(chart["appVersion"], env!("CARGO_PKG_VERSION"));
    assert_eq!(chart["apiVersion"], "v2");
    // The image tag defaults to the appVersion, as in the base's kustomization.
    let rendered = by_name(objects(&run(&mut template("tagwatch", "tagwatch", &[]))));
    let image = object(&rendered, "Deployment/tagwatch")["spec"]["template"]["spec"]["containers"]
        [0]["image"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(image, format!("tagwatch:{}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn chart_lints_strictly_with_default_values_and_with_every_option_on() {
    let chart = chart();
    let chart = chart.to_str().unwrap();
    for extra in [
        vec![],
        vec!["-f".to_string(), ci("manifests-values.yaml")],
        vec![
            "-f".to_string(),
            ci("manifests-values.yaml"),
            "-f".to_string(),
            ci("sharded-values.yaml"),
        ],
        all_on(),
    ] {
        let mut args = vec!["lint", chart];
        args.extend(strs(&extra));
        let out = run(&mut helm(&args));
        assert!(out.contains(r#""helm": "v4."#), "{out}");
        assert!(out.contains(r#""total_charts_linted": 1"#), "{out}");
    }
}

/// Helm's standard labels (the selectors carry the release's instance too)
/// and the checksum annotation: what the chart adds by design.
const HELM_ONLY: [&str; 5] = [
    "helm.sh/chart",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/version",
    "checksum/config",
];

fn strip_helm_only(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for key in HELM_ONLY {
                map.remove(key);
            }
            for v in map.values_mut() {
                strip_helm_only(v);
            }
            if map
                .get("annotations")
                .is_some_and(|a| a == &Value::Object(Default::default()))
            {
                map.remove("annotations");
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_helm_only),
        _ => {}
    }
}

/// Every occurrence of `from` (a whole string) becomes `to`.
fn rename(value: &mut Value, from: &str, to: &str) {
    match value {
        Value::String(s) if s == from => *s = to.to_string(),
        Value::Object(map) => map.values_mut().for_each(|v| rename(v, from, to)),
        Value::Array(items) => items.iter_mut().for_each(|v| rename(v, from, to)),
        _ => {}
    }
}

/// `kubectl kustomize DIR`.
fn kustomize(dir: &Path) -> String {
    run(Command::new(venv_tool("kubectl")).arg("kustomize").arg(dir))
}

/// `manifests/` with `manifests/components/sharded`, from an overlay outside
/// `manifests/` as the component's kustomization.yaml says a user's is
/// (kustomize refuses an overlay inside its base, and an absolute path).
fn kustomize_sharded() -> String {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(root().join("manifests"), dir.path().join("manifests")).unwrap();
    let overlay = dir.path().join("deploy");
    std::fs::create_dir(&overlay).unwrap();
    std::fs::write(
        overlay.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
         resources:\n  - ../manifests\ncomponents:\n  - ../manifests/components/sharded\n",
    )
    .unwrap();
    kustomize(&overlay)
}

/// Asserts the chart's render (release and namespace "tagwatch") holds the
/// objects `kubectl kustomize` rendered, as parsed YAML, after removing only
/// what Helm adds by design and the base's Namespace and ConfigMap hash.
fn assert_same_objects(kustomized: &str, rendered: &str) {
    let mut base: Vec<Value> = objects(kustomized)
        .into_iter()
        .filter(|o| o["kind"] != "Namespace")
        .collect();
    // configMapGenerator's hash suffix; the chart rolls the pod by checksum.
    let hashed = base
        .iter()
        .filter_map(|o| o["metadata"]["name"].as_str())
        .find(|n| n.starts_with("tagwatch-config-"))
        .expect("the generated tagwatch-config")
        .to_string();
    base.iter_mut()
        .for_each(|o| rename(o, &hashed, "tagwatch-config"));
    let base = by_name(base);

    let mut rendered = objects(rendered);
    rendered.iter_mut().for_each(strip_helm_only);
    let rendered = by_name(rendered);

    assert_eq!(
        base.keys().collect::<Vec<_>>(),
        rendered.keys().collect::<Vec<_>>(),
        "the chart and manifests/ render different objects"
    );
    for (key, object) in &base {
        assert_eq!(
            &rendered[key],
            object,
            "{key} differs between the chart (left) and manifests/ (right):\n{}\n{}",
            serde_json::to_string_pretty(&rendered[key]).unwrap(),
            serde_json::to_string_pretty(object).unwrap()
        );
    }
}

#[test]
fn chart_renders_the_objects_manifests_render() {
    let rendered = run(&mut template(
        "tagwatch",
        "tagwatch",
        &["-f", &ci("manifests-values.yaml")],
    ));
    assert_same_objects(&kustomize(&root().join("manifests")), &rendered);
}

/// Issues 20 and 21: the chart's `sharding.enabled` renders what an overlay
/// with `manifests/components/sharded` renders — the StatefulSet governed by
/// the headless `tagwatch-shards` Service, `--shard auto/N` with N =
/// replicas, POD_NAME from the downward API, no Deployment — so the two
/// sharded variants cannot drift apart, and the render passes the
/// Kubernetes schemas. ci/sharded-values.yaml holds the component's N.
#[test]
fn sharded_chart_renders_the_objects_the_sharded_component_renders() {
    let rendered = run(&mut template(
        "tagwatch",
        "tagwatch",
        &[
            "-f",
            &ci("manifests-values.yaml"),
            "-f",
            &ci("sharded-values.yaml"),
        ],
    ));
    let kustomized = kustomize_sharded();
    // What the comparison must cover, so that an empty or an unsharded
    // render on both sides cannot pass.
    let objects = by_name(objects(&rendered));
    assert!(
        !objects.contains_key("Deployment/tagwatch"),
        "no Deployment"
    );
    let set = object(&objects, "StatefulSet/tagwatch");
    assert_eq!(set["spec"]["replicas"], 4);
    assert_eq!(set["spec"]["serviceName"], "tagwatch-shards");
    assert_eq!(
        object(&objects, "Service/tagwatch-shards")["spec"]["clusterIP"],
        "None"
    );
    assert_same_objects(&kustomized, &rendered);

    // Every object but the two Prometheus Operator kinds, which have no
    // schema there: the StatefulSet and both Services included.
    assert_eq!(objects.len(), 10, "{:?}", objects.keys());
    assert_eq!(validate(&rendered), 8);
}

#[test]
fn default_and_all_on_renders_pass_the_kubernetes_schemas() {
    // Defaults: the Deployment, its ConfigMap, ServiceAccount, Service and
    // disruption budget; the Prometheus Operator's kinds, the dashboard and
    // the NetworkPolicy are opt-in.
    let defaults = run(&mut template("tagwatch", "tagwatch", &[]));
    let kinds: Vec<String> = by_name(objects(&defaults)).into_keys().collect();
    assert_eq!(
        kinds,
        [
            "ConfigMap/tagwatch-config",
            "Deployment/tagwatch",
            "PodDisruptionBudget/tagwatch",
            "Service/tagwatch",
            "ServiceAccount/tagwatch",
        ]
    );
    assert_eq!(validate(&defaults), 5);

    let all_on = run(&mut template("tw", "platform", &strs(&all_on())));
    let kinds: Vec<String> = by_name(objects(&all_on)).into_keys().collect();
    assert_eq!(
        kinds,
        [
            "ConfigMap/tw-tagwatch-config",
            "ConfigMap/tw-tagwatch-grafana-dashboard",
            "NetworkPolicy/tw-tagwatch",
            "PodDisruptionBudget/tw-tagwatch",
            "PrometheusRule/tw-tagwatch",
            "Service/tw-tagwatch",
            "Service/tw-tagwatch-shards",
            "ServiceAccount/tagwatch-sa",
            "ServiceMonitor/tw-tagwatch",
            "StatefulSet/tw-tagwatch",
        ]
    );
    // All but the two Prometheus Operator kinds, which have no schema there.
    assert_eq!(validate(&all_on), 8);
}

/// Every option of ci/all-on-values.yaml shows up where it should, and the
/// rendered config (a map of two files, plus sqs.queueUrl) passes
/// `tagwatch check` with its credential files on the existingSecret's volume.
#[test]
fn every_option_reaches_the_pod_and_the_config_passes_tagwatch_check() {
    let objects = by_name(objects(&run(&mut template(
        "tw",
        "platform",
        &strs(&all_on()),
    ))));
    let set = object(&objects, "StatefulSet/tw-tagwatch");
    assert_eq!(set["spec"]["replicas"], 3);
    assert_eq!(set["spec"]["serviceName"], "tw-tagwatch-shards");
    let pod = &set["spec"]["template"];
    let spec = &pod["spec"];
    let container = &spec["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        args,
        [
            "run",
            "--config",
            "/etc/tagwatch/tagwatch.toml",
            "--shard",
            "auto/3",
            "--log-format",
            "json"
        ]
    );
    assert_eq!(
        container["image"],
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/tagwatch@sha256:0000000000000000000000000000000000000000000000000000000000000001"
    );
    assert_eq!(container["imagePullPolicy"], "Always");
    assert_eq!(container["env"][0]["value"], "debug");
    // Sharded: the pod's name for `auto/N`, then extraEnv.
    assert_eq!(container["env"][1]["name"], "POD_NAME");
    assert_eq!(
        container["env"][1]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(container["env"][2]["name"], "AWS_STS_REGIONAL_ENDPOINTS");
    assert_eq!(container["resources"]["limits"]["memory"], "512Mi");
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(spec["serviceAccountName"], "tagwatch-sa");
    assert_eq!(spec["imagePullSecrets"][0]["name"], "ecr-pull");
    assert_eq!(spec["priorityClassName"], "system-cluster-critical");
    assert_eq!(spec["nodeSelector"]["kubernetes.io/os"], "linux");
    assert_eq!(spec["tolerations"][0]["value"], "platform");
    assert!(spec["affinity"]["nodeAffinity"].is_object());
    assert_eq!(spec["securityContext"]["runAsUser"], 65532);
    assert_eq!(pod["metadata"]["labels"]["team"], "platform");
    assert_eq!(
        pod["metadata"]["annotations"]["example.com/team"],
        "platform"
    );
    assert!(pod["metadata"]["annotations"]["checksum/config"].is_string());
    let sa = object(&objects, "ServiceAccount/tagwatch-sa");
    assert_eq!(
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::123456789012:role/tagwatch"
    );
    assert_eq!(
        object(&objects, "Service/tw-tagwatch")["spec"]["ports"][0]["port"],
        8080
    );
    let monitor = object(&objects, "ServiceMonitor/tw-tagwatch");
    assert_eq!(
        monitor["metadata"]["labels"]["release"],
        "kube-prometheus-stack"
    );
    assert_eq!(monitor["spec"]["endpoints"][0]["interval"], "15s");
    let rule = object(&objects, "PrometheusRule/tw-tagwatch");
    assert_eq!(
        rule["metadata"]["labels"]["release"],
        "kube-prometheus-stack"
    );
    assert!(
        !rule["spec"]["groups"][0]["rules"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let policy = object(&objects, "NetworkPolicy/tw-tagwatch");
    assert_eq!(
        policy["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "observability"
    );
    for selector in [
        &set["spec"]["selector"]["matchLabels"],
        &object(&objects, "Service/tw-tagwatch")["spec"]["selector"],
        &object(&objects, "Service/tw-tagwatch-shards")["spec"]["selector"],
        &policy["spec"]["podSelector"]["matchLabels"],
        &object(&objects, "PodDisruptionBudget/tw-tagwatch")["spec"]["selector"]["matchLabels"],
    ] {
        assert_eq!(selector["app.kubernetes.io/instance"], "tw", "{selector}");
        for (k, v) in selector.as_object().unwrap() {
            assert_eq!(
                &pod["metadata"]["labels"][k], v,
                "the selector picks the pod"
            );
        }
    }

    // The config: both files, the queue appended, and `tagwatch check` passes.
    let volumes = spec["volumes"].as_array().unwrap();
    let config_map = volumes.iter().find(|v| v["name"] == "config").unwrap()["configMap"]["name"]
        .as_str()
        .unwrap();
    let data = object(&objects, &format!("ConfigMap/{config_map}"))["data"]
        .as_object()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in data {
        std::fs::write(dir.path().join(name), text.as_str().unwrap()).unwrap();
    }
    let main = dir.path().join("tagwatch.toml");
    let summary = run(Command::new(env!("CARGO_BIN_EXE_tagwatch"))
        .arg("check")
        .arg("--config")
        .arg(&main));
    assert!(summary.contains(": ok:"), "{summary}");
    assert!(
        summary.contains("1 app"),
        "the included file's app: {summary}"
    );
    let config: toml::Table = data["tagwatch.toml"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        config["aws"]["events"]["sqs_queue_url"].as_str(),
        Some("https://sqs.eu-west-1.amazonaws.com/123456789012/tagwatch-ecr-events")
    );
    // The credential files are on the existingSecret's volume.
    let secret_mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "secrets")
        .expect("the existingSecret's mount");
    let secret = volumes.iter().find(|v| v["name"] == "secrets").unwrap();
    assert_eq!(secret["secret"]["secretName"], "tagwatch-credentials");
    for section in ["git", "forge"] {
        let file = config[section]["token_file"].as_str().unwrap();
        assert!(
            Path::new(file).starts_with(secret_mount["mountPath"].as_str().unwrap()),
            "{section}.token_file {file} is not on the existingSecret's volume"
        );
    }
}

/// A changed config rolls the pod: the checksum annotation changes with it.
#[test]
fn a_config_change_changes_the_pods_checksum() {
    let checksum = |extra: &[&str]| -> String {
        let objects = by_name(objects(&run(&mut template("tagwatch", "tagwatch", extra))));
        object(&objects, "Deployment/tagwatch")["spec"]["template"]["metadata"]["annotations"]
            ["checksum/config"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let default = checksum(&[]);
    assert_eq!(default.len(), 64, "{default}");
    assert_eq!(checksum(&[]), default, "the same config, the same checksum");
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("values.yaml");
    std::fs::write(
        &values,
        "sqs:\n  queueUrl: https://sqs.eu-west-1.amazonaws.com/1/q\n",
    )
    .unwrap();
    assert_ne!(checksum(&["-f", values.to_str().unwrap()]), default);
}

/// A wrong value fails `helm template` (and so `helm install`) on the
/// chart's values.schema.json or its own checks, naming the key.
#[test]
fn a_wrong_value_fails_at_install_naming_it() {
    let cases: [(&str, &str, &str); 9] = [
        ("a misspelt key", "nodeSelecter: {}\n", "nodeSelecter"),
        (
            "an unknown pull policy",
            "image:\n  pullPolicy: Sometimes\n",
            "/image/pullPolicy",
        ),
        (
            "zero shards",
            "sharding:\n  enabled: true\n  shards: 0\n",
            "/sharding/shards",
        ),
        (
            "shards as a string",
            "sharding:\n  shards: \"2\"\n",
            "/sharding/shards",
        ),
        (
            "a boolean as a string",
            "networkPolicy:\n  enabled: \"yes\"\n",
            "/networkPolicy/enabled",
        ),
        (
            "a tag for a digest",
            "image:\n  digest: \"1.2.3\"\n",
            "/image/digest",
        ),
        (
            "a config map without tagwatch.toml",
            "config:\n  apps.toml: \"\"\n",
            "tagwatch.toml",
        ),
        (
            "a queue that is no URL",
            "sqs:\n  queueUrl: tagwatch-events\n",
            "/sqs/queueUrl",
        ),
        (
            "a queue set twice",
            "sqs:\n  queueUrl: https://sqs.eu-west-1.amazonaws.com/1/q\nconfig: |\n  [aws.events]\n  sqs_queue_url = \"https://sqs.eu-west-1.amazonaws.com/1/other\"\n",
            "[aws.events]",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (case, values, named) in cases {
        let path = dir.path().join("values.yaml");
        std::fs::write(&path, values).unwrap();
        let out = output(&mut template(
            "tagwatch",
            "tagwatch",
            &["-f", path.to_str().unwrap()],
        ));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{case}: rendered anyway");
        assert!(
            stderr.contains("helm refused") && stderr.contains(named),
            "{case}: expected a refusal naming {named}, got:\n{stderr}"
        );
    }
}
