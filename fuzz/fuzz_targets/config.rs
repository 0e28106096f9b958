//! `config::load`: the TOML loader and validator.
//!
//! Input: the config file's bytes; if a line `#@include` occurs, what follows it is written to
//! `apps.d/extra.toml` beside the config (so `include = ["apps.d/*.toml"]` reads it) and what
//! precedes it is the config. Both live in a fresh temporary directory per input.
//!
//! Properties, beyond "never panics":
//! - an error names the config or the included file;
//! - an error's `line`, if any, is at least 1 and at most the named file's line count + 1.
//!
//! An `include` pattern with a `..` component would glob outside the directory (the whole
//! file system, with `**`), so such inputs are skipped rather than allowed to time out on
//! reading the machine's disk.
//!
//! Set `TAGWATCH_FUZZ_REPORT=1` to print each outcome (for `-runs=0` over a corpus).
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;

const MARKER: &[u8] = b"\n#@include\n";

/// Whether some `include` pattern leaves the directory.
fn escapes(config: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(config) else {
        return false;
    };
    let Ok(table) = text.parse::<toml::Table>() else {
        return false;
    };
    let Some(toml::Value::Array(patterns)) = table.get("include") else {
        return false;
    };
    patterns.iter().any(|p| {
        p.as_str()
            .is_some_and(|p| Path::new(p).components().any(|c| c == Component::ParentDir))
    })
}

fn lines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count() + 1
}

fuzz_target!(|data: &[u8]| {
    let (config, included) = match data.windows(MARKER.len()).position(|w| w == MARKER) {
        Some(at) => (&data[..at + 1], Some(&data[at + MARKER.len()..])),
        None => (data, None),
    };
    if escapes(config) {
        return;
    }
    // A fresh directory per input, removed when it returns: nothing carries over.
    let dir = tempfile::Builder::new()
        .prefix("tagwatch-fuzz-config-")
        .tempdir()
        .expect("temporary directory");
    let main = dir.path().join("tagwatch.toml");
    let extra = dir.path().join("apps.d").join("extra.toml");
    std::fs::write(&main, config).expect("write config");
    if let Some(bytes) = included {
        std::fs::create_dir(dir.path().join("apps.d")).expect("apps.d");
        std::fs::write(&extra, bytes).expect("write include");
    }

    let report = std::env::var_os("TAGWATCH_FUZZ_REPORT").is_some();
    let Err(e) = tagwatch::config::load(&main) else {
        if report {
            eprintln!("fuzz-report config ok");
        }
        return;
    };
    if report {
        let which = if e.file == main { "main" } else { "extra" };
        let line = if e.line.is_some() { "line" } else { "no-line" };
        eprintln!(
            "fuzz-report config {which} {line} {}",
            e.key.split(['.', '[']).next().unwrap_or("")
        );
    }
    let _ = e.to_string();
    let file_bytes = if e.file == main {
        config
    } else if e.file == extra {
        included.expect("an error names apps.d/extra.toml, which was not written")
    } else {
        panic!(
            "the error names {:?}, neither the config nor its include: {e}",
            e.file
        );
    };
    if let Some(line) = e.line {
        let count = lines(file_bytes);
        assert!(
            (1..=count + 1).contains(&line),
            "line {line} is outside {:?} ({count} lines): {e}",
            e.file
        );
    }
});
