//! `tagwatch set` and `tagwatch get`, as a CI job calls them: exit codes,
//! in-place atomic writes, and refusals that leave the file untouched.

mod support;

use std::os::unix::fs::PermissionsExt;

use support::{show, tagwatch};

const VALUES: &str = "# app values\r\nimage:\r\n  repository: reg.io/acme/app\r\n  tag: 1.9   # pinned by CI\r\n  ref: \"reg.io/acme/app:1.9@sha256:aa\"\r\nlist: [a, b]\r\n";

fn file_with(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("values.yaml");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    (dir, path)
}

#[test]
fn set_changes_only_the_scalar_and_keeps_the_file_mode() {
    let cases: &[(&[&str], &str)] = &[
        // arguments after FILE, the file afterwards
        (
            &["image.tag", "1.10"],
            &VALUES.replace("tag: 1.9 ", "tag: \"1.10\" "),
        ),
        (&["image.tag", "1.9"], VALUES),
        (
            &["image.tag", "2.0.1"],
            &VALUES.replace("tag: 1.9 ", "tag: 2.0.1 "),
        ),
        (
            &["image.ref", "2.0@sha256:bb", "--format", "image"],
            &VALUES.replace("app:1.9@sha256:aa", "app:2.0@sha256:bb"),
        ),
        (
            &["image.ref", "1.9@sha256:cc", "--format", "tag@digest"],
            &VALUES.replace("reg.io/acme/app:1.9@sha256:aa", "1.9@sha256:cc"),
        ),
    ];
    for (args, expected) in cases {
        let (dir, path) = file_with(VALUES);
        let mut full = vec!["set", path.to_str().unwrap()];
        full.extend_from_slice(args);
        let out = tagwatch(&full, dir.path());
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", show(&out));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            *expected,
            "{args:?}"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "{args:?}: mode changed");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            leftovers,
            ["values.yaml"],
            "{args:?}: temporary files left behind"
        );
    }
}

#[test]
fn refused_edits_exit_64_name_the_reason_and_write_nothing() {
    let cases: &[(&[&str], &str)] = &[
        (&["image.nope", "1.0"], "path not found"),
        (&["image", "1.0"], "is a mapping, not a scalar"),
        (&["list", "1.0"], "not a scalar"),
        (&["image..tag", "1.0"], "invalid key path"),
        (
            &["image.tag", "1.0", "--format", "sideways"],
            "unknown format",
        ),
        (
            &["image.tag", "sha256:abc", "--format", "tag"],
            "writes a tag",
        ),
    ];
    for (args, reason) in cases {
        let (dir, path) = file_with(VALUES);
        let mut full = vec!["set", path.to_str().unwrap()];
        full.extend_from_slice(args);
        let out = tagwatch(&full, dir.path());
        assert_eq!(out.status.code(), Some(64), "{args:?}: {}", show(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(reason) && stderr.contains("values.yaml"),
            "{args:?}: {stderr}"
        );
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            VALUES,
            "{args:?}: file changed"
        );
    }
    let (dir, path) = file_with("a: [unclosed\n");
    let out = tagwatch(&["set", path.to_str().unwrap(), "a", "1"], dir.path());
    assert_eq!(out.status.code(), Some(64), "{}", show(&out));
    let out = tagwatch(&["set", "/nonexistent/values.yaml", "a", "1"], dir.path());
    assert_eq!(out.status.code(), Some(64), "{}", show(&out));
}

#[test]
fn get_prints_the_value() {
    let (dir, path) = file_with(VALUES);
    let out = tagwatch(&["get", path.to_str().unwrap(), "image.ref"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "reg.io/acme/app:1.9@sha256:aa\n"
    );
    let out = tagwatch(
        &["get", path.to_str().unwrap(), "image.missing"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(64), "{}", show(&out));
}

#[test]
fn set_through_a_symlink_edits_the_real_file() {
    let (dir, path) = file_with(VALUES);
    let link = dir.path().join("link.yaml");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    let out = tagwatch(
        &["set", link.to_str().unwrap(), "image.tag", "2.0.0"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link was replaced"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        VALUES.replace("tag: 1.9 ", "tag: 2.0.0 ")
    );
}

#[test]
fn a_template_that_does_not_fit_the_current_value_is_refused() {
    let (dir, path) = file_with("image: nginx:1.25\n");
    let out = tagwatch(
        &[
            "set",
            path.to_str().unwrap(),
            "image",
            "1.4.3",
            "--format",
            "{registry}/{repository}:{tag}",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(64), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs {registry}"),
        "{}",
        show(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "image: nginx:1.25\n"
    );
}

/// Issue 13 item 8: the default `--format tag` over an image reference
/// wrote the bare tag, so a container's `image:` became `main-103-bbbbbbb`.
/// The reference is kept and only its tag replaced; a digest-pinned one
/// without a digest to write is refused; a whole reference as VALUE is
/// written as given; a bare tag field is unchanged in behaviour.
#[test]
fn set_keeps_an_image_reference_with_the_default_format() {
    const DEPLOY: &str = "spec:\n  containers:\n    - name: web\n      image: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/web:main-102-aaaaaaa\n    - name: side\n      image: reg.io/side:1.0@sha256:aa\n  tag: main-102-aaaaaaa\n";
    let key = "spec.containers[name=web].image";
    #[rustfmt::skip]
    let cases: &[(&[&str], i32, &str, &str)] = &[
        // arguments after FILE, exit, the file afterwards, on stdout or stderr
        (&[key, "main-103-bbbbbbb"], 0,
            &DEPLOY.replace("web:main-102-aaaaaaa", "web:main-103-bbbbbbb"),
            "web:main-102-aaaaaaa -> 123456789012.dkr.ecr.eu-west-1.amazonaws.com/web:main-103-bbbbbbb (kept the image reference the field held)"),
        (&[key, "main-103-bbbbbbb", "--format", "tag"], 0,
            &DEPLOY.replace("web:main-102-aaaaaaa", "web:main-103-bbbbbbb"), "(kept the image reference"),
        (&[key, "main-102-aaaaaaa"], 0, DEPLOY, "already 123456789012.dkr.ecr.eu-west-1.amazonaws.com/web:main-102-aaaaaaa"),
        (&[key, "reg.io/other/web:7"], 0,
            &DEPLOY.replace("123456789012.dkr.ecr.eu-west-1.amazonaws.com/web:main-102-aaaaaaa", "reg.io/other/web:7"), "-> reg.io/other/web:7\n"),
        (&["spec.containers[name=side].image", "2.0"], 64, DEPLOY, "writes a digest, and none is known"),
        (&["spec.containers[name=side].image", "2.0@sha256:bb"], 0,
            &DEPLOY.replace("side:1.0@sha256:aa", "side:2.0@sha256:bb"), "(kept the image reference"),
        (&["spec.tag", "main-103-bbbbbbb"], 0,
            &DEPLOY.replace("tag: main-102-aaaaaaa", "tag: main-103-bbbbbbb"), "main-102-aaaaaaa -> main-103-bbbbbbb\n"),
    ];
    for (args, code, expected, says) in cases {
        let (dir, path) = file_with(DEPLOY);
        let mut full = vec!["set", path.to_str().unwrap()];
        full.extend_from_slice(args);
        let out = tagwatch(&full, dir.path());
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {}", show(&out));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            *expected,
            "{args:?}"
        );
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(said.contains(says), "{args:?}: {}", show(&out));
    }
}
