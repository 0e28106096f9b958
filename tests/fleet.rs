//! The fleet benchmark (issue 8, `bench/fleet/run`) at its reduced CI size,
//! so the script cannot rot: 10 repositories × 50 images in moto, 50 apps ×
//! 2 envs over every layout and strategy, one round of cold, warm and
//! changed cycles with the debug binary, then two seconds of `tagwatch run`
//! idling. The SDK baseline is left to the full run, and so are times, RSS
//! and CPU: a benchmark's figures are measured there, never asserted here.
//!
//! The script asserts the structural targets itself on every cycle; this
//! test checks the same facts again from its JSON, so a script that stops
//! checking them cannot pass either.

mod support;

use std::process::Command;

use serde_json::Value;
use support::{python, root};

fn int(v: &Value) -> u64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("not a number: {v}"))
        .round() as u64
}

fn ints(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(int)
        .collect()
}

#[test]
fn reduced_fleet_lists_each_repository_once_and_writes_only_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("fleet.json");
    let out = Command::new(python())
        .arg(root().join("bench/fleet/run"))
        .args([
            "--reduced",
            "--binary",
            env!("CARGO_BIN_EXE_tagwatch"),
            "--json",
        ])
        .arg(&json)
        .output()
        .expect("run bench/fleet/run");
    assert!(
        out.status.success(),
        "bench/fleet/run --reduced failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let figures: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let size = &figures["size"];
    assert_eq!(
        (
            int(&size["repos"]),
            int(&size["apps"]),
            int(&size["targets"])
        ),
        (10, 50, 100)
    );
    let runs = &figures["runs"];
    for kind in ["cold", "warm", "changed"] {
        for run in runs[kind].as_array().unwrap() {
            // One listing per repository, and it took exactly the pages
            // the repository needs (one at 50 images): the app count does
            // not multiply the API calls.
            assert_eq!(int(&run["max_listings_per_repository"]), 1, "{kind}: {run}");
            assert_eq!(
                int(&run["listing_calls"]),
                int(&run["pages"]),
                "{kind}: {run}"
            );
            assert_eq!(int(&run["pages"]), 10, "{kind}: {run}");
        }
    }
    for kind in ["cold", "warm"] {
        for run in runs[kind].as_array().unwrap() {
            // Nothing new: no re-check, no commit, no push.
            assert_eq!(int(&run["calls"]), 10, "{kind}: {run}");
            assert_eq!(
                (int(&run["commits"]), int(&run["pushes"])),
                (0, 0),
                "{kind}: {run}"
            );
        }
    }
    // One repository of ten got a new build: its five apps × two envs move
    // in ten commits and one push; only newest and digest re-read the
    // chosen tag, once per app: dev and prod read the same tag in one
    // cycle, and one answer serves both. Before the first re-check of a
    // repository its mutability is read once (DescribeRepositories: an
    // IMMUTABLE repository needs no re-check).
    let summary = &figures["summary"]["changed"];
    assert_eq!(ints(&summary["commits"]), [10]);
    assert_eq!(ints(&summary["pushes"]), [1]);
    assert_eq!(int(&summary["rechecks"]), 2);
    assert_eq!(int(&summary["calls"]), 13);
    // The daemon made no ECR call while idle.
    assert_eq!(int(&figures["summary"]["idle"]["idle_calls"]), 0);
}
