//! Limits on what the git layer reads from the GitOps repository, through
//! the real binary against `git daemon` (so the server, not tagwatch, packs
//! the objects).

mod support;

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use support::*;

const VALUES: &str = "image:\n  tag: 1.0.0\n";
/// Far over the 10 MiB limit, so inflating it would show in the peak
/// memory of the process; it compresses to almost nothing in git.
const HUGE: usize = 64 * 1024 * 1024;

/// Issue 13 item 17: a blob was inflated whole before the 10 MiB limit was
/// checked, so a 64 MiB values file cost 128 MiB of memory (the blob and
/// its copy) just to be refused. Its size now comes from the object's
/// header: the target fails with an error naming the file and its size,
/// the other target is promoted, and the process's peak memory stays near
/// that of a run without the file.
#[test]
fn a_huge_blob_is_refused_from_its_header_without_inflating_it() {
    let moto = Moto::start();
    moto.seed("app", &[("1.0.0", 1), ("1.1.0", 2)]);
    let remote = GitRemote::new(&[("values.yaml", VALUES)]);
    let seed = remote.dir.path().join("seed");
    let mut huge = VALUES.as_bytes().to_vec();
    while huge.len() <= HUGE {
        huge.extend_from_slice(b"# -----BEGIN CERTIFICATE----- MIIDdzCCAl+gAwIBAgIE\n");
    }
    std::fs::create_dir_all(seed.join("big")).unwrap();
    std::fs::write(seed.join("big/values.yaml"), &huge).unwrap();
    git(&seed, &["add", "-A"]);
    commit(&seed, "an inlined bundle of certificates");
    git(&seed, &["push", "-q", "origin", "HEAD:main"]);
    let server = GitDaemon::start(remote.dir.path());
    let url = server.url("remote.git");

    // The baseline: the same cycle without the huge file's target.
    let small = Workdir::new(&moto.endpoint, &url, &[("app", "app", "^1", "values.yaml")]);
    let (out, baseline) = peak_memory(&small.config, small.dir.path(), true);
    expect(&out, 0, &["app/dev: would promote 1.0.0 -> 1.1.0"]);

    let work = Workdir::new(
        &moto.endpoint,
        &url,
        &[
            ("app", "app", "^1", "values.yaml"),
            ("big", "app", "^1", "big/values.yaml"),
        ],
    );
    let (out, peak) = peak_memory(&work.config, work.dir.path(), false);
    let all = show(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("app/dev: promoted 1.0.0 -> 1.1.0"), "{all}");
    let size = huge.len();
    assert!(
        stdout.contains(&format!(
            "big/dev: failed (git): big/values.yaml: file is {size} bytes; the limit is 10485760"
        )),
        "{all}"
    );
    eprintln!(
        "peak memory: {} MiB without the huge file, {} MiB with it ({} MiB file)",
        baseline / 1024,
        peak / 1024,
        size / (1024 * 1024)
    );
    assert!(
        peak < baseline + 24 * 1024,
        "peak memory {peak} KiB against {baseline} KiB without the file: the blob was read"
    );
}

/// Runs `tagwatch once` (with `--dry-run` if asked) and returns its output
/// and its peak resident memory in KiB, from `/proc/PID/status` (`VmHWM`
/// only grows, so sampling it until the exit catches the peak).
fn peak_memory(config: &Path, cwd: &Path, dry_run: bool) -> (Output, u64) {
    let mut cmd = tagwatch_command();
    cmd.args(["once", "--config"]).arg(config).current_dir(cwd);
    if dry_run {
        cmd.arg("--dry-run");
    }
    let dir = tempfile::tempdir().unwrap();
    let (stdout, stderr) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("run tagwatch");
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(std::time::Instant::now() < deadline, "tagwatch once hung");
        let hwm = std::fs::read_to_string(&status)
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0);
        peak = peak.max(hwm);
        std::thread::sleep(Duration::from_millis(1));
    };
    let out = Output {
        status: exit,
        stdout: std::fs::read(stdout).unwrap(),
        stderr: std::fs::read(stderr).unwrap(),
    };
    (out, peak)
}
