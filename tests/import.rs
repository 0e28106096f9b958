//! `tagwatch import`, through the real binary, on a corpus under
//! tests/import/<case>/: inputs rewritten from the Argo CD Image Updater and
//! Flux documentation examples plus ECR variants and bad input. For each
//! case the printed configuration and warnings are golden files, the
//! configuration passes `tagwatch check`, and its policies choose, among a
//! fixed tag list, what the original tool would (the `policy` file says per
//! line which documented rule the expectation comes from).
//!
//! `UPDATE_GOLDEN=1 cargo test --test import` rewrites the golden files;
//! review the diff before committing it.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use support::*;

fn case_dir(case: &str) -> PathBuf {
    root().join("tests/import").join(case)
}

fn args(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("args")).unwrap();
    text.split_whitespace().map(str::to_string).collect()
}

fn import(dir: &Path, extra: &[&str]) -> Output {
    let mut cmd = tagwatch_command();
    cmd.arg("import")
        .args(args(dir))
        .args(extra)
        .current_dir(dir);
    output_within(&mut cmd, std::time::Duration::from_secs(30)).expect("import hung")
}

/// Compares `actual` with the golden file, or rewrites it with UPDATE_GOLDEN.
fn golden(path: &Path, actual: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        if actual.is_empty() {
            let _ = std::fs::remove_file(path);
        } else {
            std::fs::write(path, actual).unwrap();
        }
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    assert_eq!(actual, expected, "{} differs", path.display());
}

/// Runs one case: golden output and warnings, byte-stable, `check` accepts
/// it, `--strict` fails exactly when there are warnings, and each policy
/// line chooses its tag.
fn run_case(case: &str) {
    let dir = case_dir(case);
    let out = import(&dir, &[]);
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    golden(&dir.join("expected.toml"), &stdout);
    golden(&dir.join("expected.stderr"), &stderr);
    if stdout.is_empty() {
        assert_eq!(out.status.code(), Some(64), "{}", show(&out));
        return;
    }
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    for line in stderr.lines() {
        assert!(line.starts_with("warning: "), "not a warning line: {line}");
    }

    // Byte-stable: a second run prints the same bytes.
    let again = import(&dir, &[]);
    assert_eq!(again.stdout, out.stdout, "output is not stable");
    assert_eq!(again.stderr, out.stderr, "warnings are not stable");

    // --strict: the same output, and exit 1 when anything was warned about.
    let strict = import(&dir, &["--strict"]);
    assert_eq!(strict.stdout, out.stdout);
    let want = if stderr.is_empty() { 0 } else { 1 };
    assert_eq!(strict.status.code(), Some(want), "{}", show(&strict));

    // `tagwatch check` accepts it as printed.
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("tagwatch.toml");
    std::fs::write(&config, &stdout).unwrap();
    let check = tagwatch(&["check", "--config", config.to_str().unwrap()], tmp.path());
    assert_eq!(check.status.code(), Some(0), "{}", show(&check));

    check_policies(&dir, &config);
}

/// Each line of the case's `policy` file: `APP TAG... => CHOICE`, checked
/// with `tagwatch policy test --config OUT --app APP TAG...`: the imported
/// app's own policy, offline, on the tags given.
fn check_policies(dir: &Path, config: &Path) {
    let Ok(text) = std::fs::read_to_string(dir.join("policy")) else {
        return;
    };
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (left, choice) = line.split_once("=>").unwrap();
        let mut words = left.split_whitespace();
        let name = words.next().unwrap();
        let mut args = vec![
            "policy",
            "test",
            "--config",
            config.to_str().unwrap(),
            "--app",
            name,
            "--",
        ];
        args.extend(words);
        let out = tagwatch(&args, dir);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            stdout.lines().last().unwrap_or_default(),
            choice.trim(),
            "{line}\n{}",
            show(&out)
        );
    }
}

#[test]
fn argocd_annotations_map_strategies_filters_and_write_back() {
    run_case("argocd-annotations");
}

#[test]
fn argocd_image_updater_resource_merges_levels_and_selects_by_pattern() {
    run_case("argocd-resource");
}

#[test]
fn argocd_bad_input_is_warned_about_and_left_out() {
    run_case("argocd-bad-input");
}

#[test]
fn flux_setter_markers_become_targets() {
    run_case("flux-setters");
}

#[test]
fn flux_policies_filters_exclusions_and_bad_markers() {
    run_case("flux-policies");
}

#[test]
fn no_git_url_exits_64_asking_for_git_url() {
    run_case("no-git-url");
    let stderr = std::fs::read_to_string(case_dir("no-git-url").join("expected.stderr")).unwrap();
    assert!(stderr.contains("--git-url"), "{stderr}");
}

#[test]
fn invalid_yaml_exits_64_naming_file_and_line() {
    run_case("invalid-yaml");
    let stderr = std::fs::read_to_string(case_dir("invalid-yaml").join("expected.stderr")).unwrap();
    assert!(stderr.contains("broken.yaml:5:"), "{stderr}");
}

#[test]
fn a_missing_path_exits_64() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tagwatch(
        &["import", "flux", "--git-url", "file:///x", "nothing-here"],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(64), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing-here: cannot read"));
}

#[test]
fn the_order_of_paths_does_not_change_the_output() {
    let dir = case_dir("argocd-resource");
    let run = |paths: &[&str]| {
        let mut args = vec!["import", "argocd-image-updater", "--git-url", "file:///g"];
        args.extend_from_slice(paths);
        tagwatch(&args, &dir)
    };
    let a = run(&["updater.yaml", "applications.yaml"]);
    let b = run(&["applications.yaml", "updater.yaml"]);
    assert_eq!(a.status.code(), Some(0), "{}", show(&a));
    assert_eq!(a.stdout, b.stdout);
    assert_eq!(a.stderr, b.stderr);
}

/// The Flux corpus is a GitOps repository in itself: a remote holding its
/// files, moto holding the tags, and `once` with the imported configuration
/// writes what Flux's semver policy 5.0.x would: 5.0.3 into every marker.
#[test]
fn an_imported_flux_config_promotes_what_flux_would() {
    let dir = case_dir("flux-setters");
    let moto = Moto::start();
    let seeded = moto.seed(
        "podinfo",
        &[
            ("5.0.0", 1_700_000_000),
            ("5.0.3", 1_700_000_100),
            ("5.1.0", 1_700_000_200),
            ("6.0.0", 1_700_000_300),
        ],
    );
    let deployment = "envs/dev/podinfo/deployment.yaml";
    let values = "envs/prod/podinfo/values.yaml";
    let read = |p: &str| std::fs::read_to_string(dir.join(p)).unwrap();
    // Flux would have written 5.0.0's real digest next to its tag; the
    // fixture holds a placeholder, which tagwatch rightly refuses to read as
    // a version.
    let zeros = format!("sha256:{}", "0".repeat(64));
    let values_text = read(values).replace(&zeros, &moto.digest(&seeded, "5.0.0"));
    let remote = GitRemote::new(&[(deployment, &read(deployment)), (values, &values_text)]);

    let work = tempfile::tempdir().unwrap();
    let checkout = work.path().join("checkout");
    std::fs::create_dir(&checkout).unwrap();
    let out = import(
        &dir,
        &[
            "--git-url",
            &remote.file_url(),
            "--checkout-dir",
            checkout.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let config = String::from_utf8(out.stdout).unwrap().replace(
        "[aws]\n",
        &format!("[aws]\nendpoint_url = \"{}\"\n", moto.endpoint),
    );
    let path = work.path().join("tagwatch.toml");
    std::fs::write(&path, config).unwrap();

    let out = tagwatch(&["once", "--config", path.to_str().unwrap()], work.path());
    expect(
        &out,
        0,
        &[
            "podinfo/dev: promoted 5.0.0 -> 5.0.3",
            "podinfo/prod: promoted 5.0.0 -> 5.0.3",
            "podinfo/prod-2: promoted",
        ],
    );
    assert!(
        remote
            .show(deployment)
            .contains("image: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/podinfo:5.0.3 # {\"$imagepolicy\": \"flux-system:podinfo\"}"),
        "{}",
        remote.show(deployment)
    );
    let prod = remote.show(values);
    assert!(prod.contains("tag: 5.0.3 # {"), "{prod}");
    let digest = moto.digest(&seeded, "5.0.3");
    assert!(prod.contains(&format!("digest: \"{digest}\"")), "{prod}");
}

#[test]
fn a_symlink_loop_in_a_directory_does_not_hang() {
    let tmp = tempfile::tempdir().unwrap();
    let apps = tmp.path().join("apps");
    std::fs::create_dir(&apps).unwrap();
    std::os::unix::fs::symlink("..", apps.join("up")).unwrap();
    std::fs::write(
        apps.join("app.yaml"),
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: a\n",
    )
    .unwrap();
    let mut cmd = tagwatch_command();
    cmd.args([
        "import",
        "argocd-image-updater",
        "--git-url",
        "file:///g",
        "apps",
    ])
    .current_dir(tmp.path());
    let out =
        output_within(&mut cmd, std::time::Duration::from_secs(20)).expect("import did not finish");
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
}
