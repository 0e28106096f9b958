//! `policy::range`: the Masterminds/semver v3 range parser and matcher.
//!
//! Input: `RANGE` or `RANGE \0 TAG` (UTF-8; anything else is skipped).
//! Properties, beyond "never panics":
//! - `Range::parse` returns; a parsed range answers `matches` and
//!   `excludes_only_as_prerelease` for a fixed set of versions (zero, huge
//!   numbers, pre-releases, build metadata) and for `TAG` when it reads as a
//!   version, and `excludes_only_as_prerelease(v)` implies `!matches(v)`;
//! - its Display parses again to an equal range;
//! - `a || b` matches exactly what `a` or `b` matches (each alternative,
//!   parsed on its own, agrees with the whole);
//! - a tag `parse_version` accepts, read as a range, matches itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use semver::Version;
use tagwatch::policy::range::{Range, parse_version};

const FIXED: &[&str] = &[
    "0.0.0",
    "0.0.1",
    "0.1.0",
    "1.0.0",
    "1.2.3",
    "1.2.3-alpha.1",
    "1.2.3-0",
    "1.2.3-rc.1+build.5",
    "2.0.0-0",
    "18446744073709551615.18446744073709551615.18446744073709551615",
    "1.2.3-99999999999999999999999",
    "1.2.3-x-y-z.--",
];

fn check(range: &Range, v: &Version) {
    let matched = range.matches(v);
    if range.excludes_only_as_prerelease(v) {
        assert!(
            !matched,
            "{range:?} both matches {v} and excludes it as a pre-release"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (range_text, tag) = match text.split_once('\0') {
        Some((r, t)) => (r, Some(t)),
        None => (text, None),
    };

    // A tag that reads as a version matches itself when read as a range.
    for t in [Some(range_text), tag].into_iter().flatten() {
        if let Some(v) = parse_version(t) {
            let r = Range::parse(t)
                .unwrap_or_else(|e| panic!("version {t:?} ({v}) is not a range: {e}"));
            assert!(
                r.matches(&v),
                "range {t:?} does not match its own version {v}"
            );
        }
    }

    let Ok(range) = Range::parse(range_text) else {
        return;
    };

    let mut versions: Vec<Version> = FIXED
        .iter()
        .map(|s| Version::parse(s).expect("fixed version"))
        .collect();
    versions.extend(tag.and_then(parse_version));
    for v in &versions {
        check(&range, v);
    }

    let again = Range::parse(&range.to_string())
        .unwrap_or_else(|e| panic!("Display of {range:?} does not parse: {e}"));
    assert_eq!(again, range, "Display does not round-trip");

    // `||` is a plain union.
    let alternatives: Vec<Range> = range_text
        .split("||")
        .map(|alt| {
            Range::parse(alt).unwrap_or_else(|e| {
                panic!("{range_text:?} parses but its alternative {alt:?} does not: {e}")
            })
        })
        .collect();
    for v in &versions {
        let any = alternatives.iter().any(|a| a.matches(v));
        assert_eq!(
            range.matches(v),
            any,
            "{range_text:?} on {v}: the whole disagrees with its alternatives"
        );
    }
});
