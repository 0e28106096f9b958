//! Table tests for strategies, filters, validation and guards, then the
//! properties issue 3 asks for. Range syntax has its own tables in `range`.
//!
//! Rows are written the way users write them: a policy as the inline TOML of
//! an app in the config file, tags as `tagwatch policy test` reads them
//! (`TAG` or `TAG@TIME`). Every test uses the fixed clock [`NOW`], never the
//! real one, so `min_age` rows cannot flake.

use std::collections::HashSet;
use std::time::Duration;

// Not proptest's prelude: its `Strategy` trait would clash with ours.
use proptest::prelude::prop;
use proptest::strategy::{BoxedStrategy, Just, Strategy as Gen};
use proptest::test_runner::Config as ProptestConfig;
use proptest::{prop_assert, prop_assert_eq, prop_assert_ne, prop_oneof, proptest};
use time::macros::datetime;
use time::{OffsetDateTime, Time};

use super::*;

/// The clock every test runs at. Push times in rows are read on this day.
const NOW: OffsetDateTime = datetime!(2026-11-21 10:00 UTC);

/// A cosign tag for the image whose digest is the SHA-256 of nothing.
macro_rules! sig {
    ($ext:literal) => {
        concat!(
            "sha256-e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855.",
            $ext
        )
    };
}

/// Reads a policy written as the body of an inline TOML table, exactly as an
/// app's keys look in the config file: `strategy = "numeric", allow = '…'`.
/// Unknown keys panic, so a typo in a row cannot quietly test nothing.
fn spec(written: &str) -> PolicySpec {
    let doc: toml::Table = format!("policy = {{ {written} }}")
        .parse()
        .unwrap_or_else(|e| panic!("row policy {written:?} is not TOML: {e}"));
    let Some(toml::Value::Table(table)) = doc.get("policy") else {
        unreachable!("the wrapper always makes a table")
    };
    let text = |key: &str, v: &toml::Value| {
        v.as_str()
            .unwrap_or_else(|| panic!("row policy {written:?}: {key} must be a string"))
            .to_string()
    };
    let mut spec = PolicySpec::default();
    for (key, value) in table {
        match key.as_str() {
            "strategy" => spec.strategy = Some(text(key, value)),
            "constraint" => spec.constraint = Some(text(key, value)),
            "allow" => spec.allow = Some(text(key, value)),
            "extract" => spec.extract = Some(text(key, value)),
            "min_age" => spec.min_age = Some(text(key, value)),
            "ignore" => {
                spec.ignore = value
                    .as_array()
                    .unwrap_or_else(|| panic!("row policy {written:?}: ignore must be a list"))
                    .iter()
                    .map(|g| text(key, g))
                    .collect()
            }
            other => panic!("row policy {written:?} has unknown key {other:?}"),
        }
    }
    spec
}

fn policy(written: &str) -> Policy {
    Policy::from_spec(&spec(written))
        .unwrap_or_else(|e| panic!("row policy {written:?} is invalid: {} {e}", e.field))
}

/// Reads `TAG[@TIME][#DIGEST]`. `TIME` is the CLI's RFC 3339 form, or a
/// short `HH:MM[:SS]` on [`NOW`]'s day, so `@09:50` reads as "ten minutes
/// ago". Without `#DIGEST` the digest is derived from the tag, so distinct
/// tags point at distinct images.
fn image(written: &str) -> Image {
    let (rest, digest) = match written.split_once('#') {
        Some((rest, digest)) => (rest, digest.to_string()),
        None => (written, format!("sha256:digest-of-{}", tag_of(written))),
    };
    let (tag, pushed_at) = match rest.split_once('@') {
        Some((tag, when)) => (tag, Some(push_time(when))),
        None => (rest, None),
    };
    Image {
        tag: tag.to_string(),
        digest,
        pushed_at,
    }
}

fn tag_of(written: &str) -> &str {
    written.split(['@', '#']).next().unwrap_or(written)
}

fn push_time(when: &str) -> OffsetDateTime {
    if when.contains('T') {
        return OffsetDateTime::parse(when, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|e| panic!("push time {when:?}: {e}"));
    }
    let n: Vec<u8> = when
        .split(':')
        .map(|p| {
            p.parse()
                .unwrap_or_else(|e| panic!("push time {when:?}: {e}"))
        })
        .collect();
    let (h, m, s) = match n[..] {
        [h, m] => (h, m, 0),
        [h, m, s] => (h, m, s),
        _ => panic!("push time {when:?}: write HH:MM or HH:MM:SS"),
    };
    let time = Time::from_hms(h, m, s).unwrap_or_else(|e| panic!("push time {when:?}: {e}"));
    OffsetDateTime::new_utc(NOW.date(), time)
}

fn images(written: &[&str]) -> Vec<Image> {
    written.iter().map(|w| image(w)).collect()
}

/// Panics with every failed row at once, so one run shows the whole picture.
fn assert_rows(what: &str, failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} {what} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// (what the row proves, policy, tags, the tag `best` chooses)
type ChoiceRow<'a> = (&'a str, &'a str, &'a [&'a str], Option<&'a str>);

fn check_choices(what: &str, rows: &[ChoiceRow]) {
    let failures = rows
        .iter()
        .filter_map(|&(proves, written, tags, want)| {
            let images = images(tags);
            let got = policy(written).best(&images, NOW).map(|i| i.tag.as_str());
            (got != want)
                .then(|| format!("{proves}: {written} over {tags:?}: got {got:?}, want {want:?}"))
        })
        .collect();
    assert_rows(what, failures);
}

#[rustfmt::skip]
const STRATEGIES: &[ChoiceRow] = &[
    // semver
    ("semver: the highest version inside the range", r#"constraint = "^1.4""#, &["1.3.9", "1.4.0", "1.4.7", "2.0.0"], Some("1.4.7")),
    ("semver: no strategy means semver, and no constraint means any release", "", &["0.9.0", "3.1.4", "latest", "3.2.0-rc.1"], Some("3.1.4")),
    ("semver: versions order by number, not text", r#"strategy = "semver""#, &["1.9.0", "1.10.0", "1.2.0"], Some("1.10.0")),
    ("semver: a `v` prefix is read", r#"strategy = "semver""#, &["v1.2.0", "v1.10.0", "1.3.0"], Some("v1.10.0")),
    ("semver: a partial tag is read with zeros", r#"strategy = "semver""#, &["1.4.9", "1.5"], Some("1.5")),
    ("semver: v1.4.3 ties 1.4.3; the greater tag name wins", r#"strategy = "semver""#, &["1.4.3", "v1.4.3", "1.4.2"], Some("v1.4.3")),
    ("semver: the tie-break does not depend on input order", r#"strategy = "semver""#, &["v1.4.3", "1.4.3", "1.4.2"], Some("v1.4.3")),
    ("semver: `+` is outside the OCI tag grammar, so a tag with build metadata is never a candidate", r#"strategy = "semver""#, &["1.4.3+build.10", "1.4.2"], Some("1.4.2")),
    ("semver: pre-releases are skipped when the range names none", r#"constraint = "^1.4""#, &["1.4.0", "1.5.0-rc.1"], Some("1.4.0")),
    ("semver: a range naming a pre-release admits them", r#"constraint = ">=1.4.0-0""#, &["1.4.0", "1.5.0-rc.1"], Some("1.5.0-rc.1")),
    ("semver: a release outranks its own pre-releases", r#"constraint = ">=1.4.0-0""#, &["1.5.0-rc.2", "1.5.0", "1.5.0-rc.10"], Some("1.5.0")),
    ("semver: pre-releases order by SemVer (rc.10 > rc.2)", r#"constraint = ">=1.4.0-0""#, &["1.5.0-rc.2", "1.5.0-rc.10"], Some("1.5.0-rc.10")),
    ("semver: tags that are not versions are skipped", r#"strategy = "semver""#, &["latest", "sha-1a2b3c4", "1.2.3.4", "V9.0.0", "2.0.0"], Some("2.0.0")),
    ("semver: nothing inside the range, nothing chosen", r#"constraint = "^3""#, &["1.0.0", "2.0.0"], None),
    // newest
    ("newest: the most recently pushed, whatever its name", r#"strategy = "newest""#, &["b@09:00", "a@09:30", "c@08:00"], Some("a")),
    ("newest: push time beats version order", r#"strategy = "newest""#, &["2.0.0@08:00", "1.0.0@09:00"], Some("1.0.0")),
    ("newest: equal push times go to the greater tag name", r#"strategy = "newest""#, &["build-b@09:00", "build-a@09:00", "build-0@08:00"], Some("build-b")),
    ("newest: the tie-break does not depend on input order", r#"strategy = "newest""#, &["build-a@09:00", "build-b@09:00"], Some("build-b")),
    ("newest: a tag without a push time is never a candidate", r#"strategy = "newest""#, &["zzz", "a@09:00"], Some("a")),
    ("newest: no push times at all, nothing chosen", r#"strategy = "newest""#, &["x", "y"], None),
    ("newest: RFC 3339 push times, as the CLI takes them", r#"strategy = "newest""#, &["a@2026-11-20T23:59:59Z", "b@2026-11-21T00:00:00+01:00"], Some("a")),
    // alphabetical
    ("alphabetical: the last in byte order", r#"strategy = "alphabetical""#, &["2024-01-15", "2024-12-01", "2024-02-28"], Some("2024-12-01")),
    ("alphabetical: byte order puts uppercase before lowercase", r#"strategy = "alphabetical""#, &["Zeta", "alpha"], Some("alpha")),
    ("alphabetical: byte order, not numbers (9 > 10)", r#"strategy = "alphabetical""#, &["9", "10"], Some("9")),
    ("alphabetical: chooses after filtering", r#"strategy = "alphabetical", ignore = ["zz*"]"#, &["aa", "mm", "zz-debug"], Some("mm")),
    // numeric
    ("numeric: numbers, not text (10 > 9)", r#"strategy = "numeric""#, &["9", "10", "2"], Some("10")),
    ("numeric: 0012 = 12; the tie goes to the greater tag name", r#"strategy = "numeric""#, &["0012", "12", "11"], Some("12")),
    ("numeric: 1.50 = 1.5; the tie goes to the greater tag name", r#"strategy = "numeric""#, &["1.5", "1.50", "1.49"], Some("1.50")),
    ("numeric: decimals compare as numbers (1.5 > 1.25)", r#"strategy = "numeric""#, &["1.25", "1.5"], Some("1.5")),
    ("numeric: an integer beats a smaller decimal (2 > 1.999)", r#"strategy = "numeric""#, &["1.999", "2"], Some("2")),
    ("numeric: timestamps compare exactly", r#"strategy = "numeric""#, &["20241231235958", "20241231235959", "20241231235957"], Some("20241231235959")),
    ("numeric: exact past f64 precision (2^53+1 > 2^53 despite the leading zero)", r#"strategy = "numeric""#, &["09007199254740993", "9007199254740992"], Some("09007199254740993")),
    ("numeric: exact past u64", r#"strategy = "numeric""#, &["123456789012345678901234567890", "123456789012345678901234567889"], Some("123456789012345678901234567890")),
    ("numeric: tags that are not numbers are skipped", r#"strategy = "numeric""#, &["7", "1.2.3", "v99", "-5", "+8", "1e9", "1.", ".5", "latest"], Some("7")),
    ("numeric: no numbers at all, nothing chosen", r#"strategy = "numeric""#, &["latest", "v1"], None),
    // digest
    ("digest: follows the named tag, even when others are newer or higher", r#"strategy = "digest", constraint = "stable""#, &["stable@08:00#sha256:aaa", "latest@09:00#sha256:bbb", "9.9.9#sha256:ccc"], Some("stable")),
    ("digest: the named tag is absent, nothing chosen", r#"strategy = "digest", constraint = "stable""#, &["latest", "stable-1"], None),
];

#[test]
fn each_strategy_chooses_as_documented() {
    check_choices("strategy", STRATEGIES);
}

#[rustfmt::skip]
const FILTERS: &[ChoiceRow] = &[
    // allow: a regex searched as written, so only `^…$` anchors it.
    ("allow: unanchored, a regex matches anywhere in the tag", r#"strategy = "alphabetical", allow = 'prod'"#, &["prod-1", "zz-prod-2", "staging-3"], Some("zz-prod-2")),
    ("allow: anchored at the start with ^", r#"strategy = "alphabetical", allow = '^prod'"#, &["prod-1", "zz-prod-2", "staging-3"], Some("prod-1")),
    ("allow: without $, a suffix still matches", r#"strategy = "alphabetical", allow = '^v\d+\.\d+\.\d+'"#, &["v1.2.0", "v1.3.0-debug"], Some("v1.3.0-debug")),
    ("allow: with ^…$, a suffix does not match", r#"strategy = "alphabetical", allow = '^v\d+\.\d+\.\d+$'"#, &["v1.2.0", "v1.3.0-debug"], Some("v1.2.0")),
    ("allow: matching nothing chooses nothing", r#"allow = '^release-'"#, &["1.0.0", "2.0.0"], None),
    // extract: order by a capture of allow, not by the whole tag.
    ("extract $build: main-120 beats main-99 as numbers", r#"strategy = "numeric", allow = '^main-(?P<build>\d+)-[0-9a-f]{7}$', extract = '$build'"#, &["main-99-fffffff", "main-120-abc1234", "main-100-0000000"], Some("main-120-abc1234")),
    ("extract ${build}: the braced form", r#"strategy = "numeric", allow = '^main-(?P<build>\d+)-[0-9a-f]{7}$', extract = '${build}'"#, &["main-99-fffffff", "main-120-abc1234"], Some("main-120-abc1234")),
    ("extract $1: by index", r#"strategy = "numeric", allow = '^main-(\d+)-[0-9a-f]{7}$', extract = '$1'"#, &["main-99-fffffff", "main-120-abc1234"], Some("main-120-abc1234")),
    ("extract: tags outside allow are not candidates, however high", r#"strategy = "numeric", allow = '^main-(?P<build>\d+)-[0-9a-f]{7}$', extract = '$build'"#, &["main-5-abc1234", "pr-900-abc1234", "main-901", "main-902-ABC1234", "main-903-abc1234-dirty"], Some("main-5-abc1234")),
    ("extract: orders by the capture even when the whole tag orders otherwise", r#"strategy = "alphabetical", allow = '^(?P<sha>[0-9a-f]{7})-(?P<date>\d{8})$', extract = '$date'"#, &["fffffff-20241201", "0000000-20241215"], Some("0000000-20241215")),
    ("extract: semver over a capture", r#"constraint = "^1", allow = '^app-(?P<version>.+)$', extract = '$version'"#, &["app-1.9.0", "app-1.10.0", "app-2.0.0", "other-1.99.0"], Some("app-1.10.0")),
    ("extract: equal captures tie; the greater whole tag wins", r#"strategy = "numeric", allow = '^main-(?P<build>\d+)-[0-9a-f]{7}$', extract = '$build'"#, &["main-7-aaaaaaa", "main-7-bbbbbbb", "main-07-ccccccc"], Some("main-7-bbbbbbb")),
    ("extract: an optional group that did not take part is no candidate", r#"strategy = "numeric", allow = '^main(?:-(?P<build>\d+))?$', extract = '$build'"#, &["main", "main-3"], Some("main-3")),
    // ignore: shell globs on the whole tag.
    ("ignore *: any run of characters", r#"strategy = "alphabetical", ignore = ["*-debug"]"#, &["a", "b", "c-debug"], Some("b")),
    ("ignore ?: exactly one character (1.2.? skips 1.2.3, not 1.2.10)", r#"ignore = ["1.2.?"]"#, &["1.2.3", "1.2.10", "1.1.0"], Some("1.2.10")),
    ("ignore [...]: a character class", r#"ignore = ["2.0.[0-4]"]"#, &["1.9.0", "2.0.3", "2.0.4"], Some("1.9.0")),
    ("ignore [...]: the class leaves other characters alone", r#"ignore = ["2.0.[0-4]"]"#, &["1.9.0", "2.0.4", "2.0.5"], Some("2.0.5")),
    ("ignore [!...]: a negated class", r#"ignore = ["v[!1]*"]"#, &["v1.5.0", "v2.0.0", "v3.0.0"], Some("v1.5.0")),
    ("ignore: any of several globs", r#"strategy = "alphabetical", ignore = ["*-debug", "z*"]"#, &["a", "b-debug", "zz"], Some("a")),
    ("ignore: a glob matches the whole tag, not a part of it", r#"strategy = "alphabetical", ignore = ["debug"]"#, &["a", "b-debug"], Some("b-debug")),
    ("ignore: globs see the whole tag, not the extract", r#"strategy = "numeric", allow = '^main-(?P<build>\d+)-[0-9a-f]{7}$', extract = '$build', ignore = ["main-120-*"]"#, &["main-99-fffffff", "main-120-abc1234"], Some("main-99-fffffff")),
    ("ignore: everything ignored, nothing chosen", r#"ignore = ["*"]"#, &["1.0.0"], None),
    // min_age, with NOW at 10:00.
    ("min_age: a tag pushed too recently is not a candidate", r#"min_age = "10m""#, &["1.0.0@09:00", "1.1.0@09:55"], Some("1.0.0")),
    ("min_age: exactly min_age old is old enough", r#"min_age = "10m""#, &["1.0.0@09:00", "1.1.0@09:50"], Some("1.1.0")),
    ("min_age: one second short is too young", r#"min_age = "10m""#, &["1.0.0@09:00", "1.1.0@09:50:01"], Some("1.0.0")),
    ("min_age: pushed in the future (clock skew) is not a candidate", r#"min_age = "10m""#, &["1.0.0@09:00", "1.1.0@10:05"], Some("1.0.0")),
    ("min_age: no push time, no way to tell its age", r#"min_age = "10m""#, &["1.0.0@09:00", "1.1.0"], Some("1.0.0")),
    ("min_age: composite durations", r#"strategy = "newest", min_age = "1h 30m""#, &["a@08:30", "b@08:31"], Some("a")),
    ("min_age: with newest, the newest old-enough tag", r#"strategy = "newest", min_age = "10m""#, &["a@09:58", "b@09:30", "c@09:00"], Some("b")),
    ("min_age: every tag too young, nothing chosen", r#"min_age = "1h""#, &["1.0.0@09:30"], None),
    // cosign signature, attestation and SBOM tags.
    ("signatures: .sig, .att and .sbom tags are never candidates", r#"strategy = "alphabetical""#, &["release-1", sig!("sig"), sig!("att"), sig!("sbom")], Some("release-1")),
    ("signatures: not even when newest", r#"strategy = "newest""#, &["app@09:00", concat!(sig!("sig"), "@09:30")], Some("app")),
    ("signatures: not even when allow and no ignore would let them through", r#"strategy = "alphabetical", allow = '^sha256-'"#, &[sig!("att")], None),
    ("signatures: a short hex is an ordinary tag", r#"strategy = "alphabetical""#, &["release-1", "sha256-abc.sig"], Some("sha256-abc.sig")),
    ("signatures: another extension is an ordinary tag", r#"strategy = "alphabetical""#, &["release-1", sig!("txt")], Some(sig!("txt"))),
];

#[test]
fn each_filter_narrows_the_candidates() {
    check_choices("filter", FILTERS);
}

/// (what the row proves, policy, the field blamed, the `ignore` index, words
/// the message must contain)
type SpecErrorRow<'a> = (&'a str, &'a str, &'a str, Option<usize>, &'a str);

#[rustfmt::skip]
const SPEC_ERRORS: &[SpecErrorRow] = &[
    ("an unknown strategy", r#"strategy = "latest""#, "strategy", None, r#"unknown strategy "latest""#),
    ("strategy names are lowercase", r#"strategy = "SemVer""#, "strategy", None, "unknown strategy"),
    ("an invalid range", r#"constraint = "^1.x.y""#, "constraint", None, "invalid range"),
    ("an invalid allow regex", r#"allow = '^main-(\d+'"#, "allow", None, "invalid regex"),
    ("extract without allow has nothing to capture from", r#"strategy = "numeric", extract = '$1'"#, "extract", None, "needs an allow regex"),
    ("extract naming a group allow lacks", r#"strategy = "numeric", allow = '^main-(?P<build>\d+)$', extract = '$bulid'"#, "extract", None, r#"no capture group named "bulid""#),
    ("extract ${…} naming a group allow lacks", r#"strategy = "numeric", allow = '^main-(?P<build>\d+)$', extract = '${nope}'"#, "extract", None, r#"no capture group named "nope""#),
    ("extract naming an index allow lacks", r#"strategy = "numeric", allow = '^main-(\d+)$', extract = '$2'"#, "extract", None, "allow has 1 capture group, so $2 does not exist"),
    ("extract with newest would do nothing", r#"strategy = "newest", allow = '^main-(\d+)$', extract = '$1'"#, "extract", None, "newest strategy does not order by tag text"),
    ("extract with digest would do nothing", r#"strategy = "digest", constraint = "stable", allow = '^(stable)$', extract = '$1'"#, "extract", None, "digest strategy does not order by tag text"),
    ("a constraint with newest would do nothing", r#"strategy = "newest", constraint = "^1""#, "constraint", None, "newest strategy takes no constraint"),
    ("a constraint with alphabetical would do nothing", r#"strategy = "alphabetical", constraint = "^1""#, "constraint", None, "alphabetical strategy takes no constraint"),
    ("a constraint with numeric would do nothing", r#"strategy = "numeric", constraint = ">10""#, "constraint", None, "numeric strategy takes no constraint"),
    ("digest without a constraint follows no tag", r#"strategy = "digest""#, "constraint", None, "follows one tag"),
    ("digest with a blank constraint follows no tag", r#"strategy = "digest", constraint = "  ""#, "constraint", None, "follows one tag"),
    ("an unclosed glob class, at its index", r#"ignore = ["*-debug", "[abc"]"#, "ignore", Some(1), r#"invalid glob "[abc""#),
    ("a triple star glob, at its index", r#"ignore = ["a***"]"#, "ignore", Some(0), "invalid glob"),
    ("a min_age without a unit", r#"min_age = "10""#, "min_age", None, r#"invalid duration "10""#),
    ("a min_age in words", r#"min_age = "ten minutes""#, "min_age", None, "invalid duration"),
    ("a negative min_age", r#"min_age = "-5m""#, "min_age", None, "invalid duration"),
];

#[test]
fn invalid_specs_name_the_field() {
    let failures = SPEC_ERRORS
        .iter()
        .filter_map(|&(proves, written, field, index, words)| {
            match Policy::from_spec(&spec(written)) {
                Ok(p) => Some(format!("{proves}: {written} was accepted as {p:?}")),
                Err(e) if (e.field, e.index) != (field, index) || !e.message.contains(words) => {
                    Some(format!(
                        "{proves}: {written}: got {} {:?} {:?}, want {field} {index:?} with {words:?}",
                        e.field, e.index, e.message
                    ))
                }
                Err(_) => None,
            }
        })
        .collect();
    assert_rows("spec error", failures);
}

/// Policies users write that must validate; each a shape from the docs.
#[rustfmt::skip]
const VALID_SPECS: &[(&str, &str)] = &[
    ("nothing at all: semver, any release", ""),
    ("a blank constraint: any release", r#"constraint = "  ""#),
    ("the issue's example", r#"strategy = "numeric", allow = '^main-(?P<build>\d+)-[0-9a-f]{7}$', extract = '$build'"#),
    ("extract by index", r#"strategy = "alphabetical", allow = '^(\d{8})-', extract = '$1'"#),
    ("extract by braced name with semver", r#"constraint = "~2", allow = '^v(?P<v>.+)$', extract = '${v}'"#),
    ("digest trims its tag", r#"strategy = "digest", constraint = " stable ""#),
    ("allow with newest", r#"strategy = "newest", allow = '^main-', ignore = ["*-dirty"], min_age = "10m""#),
    ("every glob form", r#"ignore = ["*-debug", "1.2.?", "2.0.[0-4]", "v[!1]*"]"#),
    ("composite durations", r#"min_age = "1h 30m""#),
];

#[test]
fn valid_specs_are_accepted() {
    let failures = VALID_SPECS
        .iter()
        .filter_map(|&(proves, written)| {
            Policy::from_spec(&spec(written))
                .err()
                .map(|e| format!("{proves}: {written}: {} {e}", e.field))
        })
        .collect();
    assert_rows("valid spec", failures);
}

#[test]
fn parsed_fields_hold_what_was_written() {
    let p = policy(
        r#"strategy = "numeric", allow = '^main-(?P<build>\d+)-', extract = '${build}', ignore = ["a*", "b?"], min_age = "1h 30m""#,
    );
    assert_eq!(p.strategy.name(), "numeric");
    assert_eq!(p.extract, Some(Group::Name("build".into())));
    assert_eq!(
        p.ignore.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        ["a*", "b?"]
    );
    assert_eq!(p.min_age, Some(Duration::from_secs(90 * 60)));
    let p = policy(r#"strategy = "digest", constraint = " stable ""#);
    assert!(matches!(&p.strategy, Strategy::Digest { tag } if tag == "stable"));
    assert_eq!(
        policy(r#"strategy = "numeric", allow = '(\d+)', extract = '$1'"#).extract,
        Some(Group::Index(1))
    );
}

/// What `decide` should answer.
#[derive(Debug)]
enum Want<'a> {
    /// Write this value: the tag, or the digest for `digest`.
    Promote(&'a str),
    Keep,
    /// Write nothing; `why` contains each of these.
    NoCandidate(&'a [&'a str]),
    /// The file holds something that is not this kind of value.
    Unordered(&'static str),
}

/// (what the row proves, policy, tags, what the file holds, the decision)
type DecideRow<'a> = (&'a str, &'a str, &'a [&'a str], &'a str, Want<'a>);

const MAIN: &str =
    r#"strategy = "numeric", allow = '^main-(?P<build>\d+)-[0-9a-f]{7}$', extract = '$build'"#;
const STABLE: &str = r#"strategy = "digest", constraint = "stable""#;

#[rustfmt::skip]
const GUARDS: &[DecideRow] = &[
    // semver
    ("semver: promotes to the highest in range", r#"constraint = "^1.4""#, &["1.4.0", "1.4.2", "2.0.0"], "1.4.0", Want::Promote("1.4.2")),
    ("semver: keeps the best when the file holds it", r#"constraint = "^1.4""#, &["1.4.0", "1.4.2"], "1.4.2", Want::Keep),
    ("semver: never downgrades to the range when the file is above it", r#"constraint = "^1""#, &["1.4.0", "1.9.0"], "2.0.0", Want::Keep),
    ("semver: never downgrades when the file's tag was deleted from the registry", r#"strategy = "semver""#, &["1.4.0", "1.4.2"], "1.4.9", Want::Keep),
    ("semver: never downgrades from a higher pre-release", r#"constraint = "^1.4""#, &["1.4.9"], "1.5.0-rc.1", Want::Keep),
    ("semver: promotes from a pre-release to its release", r#"constraint = "^1.4""#, &["1.5.0"], "1.5.0-rc.1", Want::Promote("1.5.0")),
    ("semver: reads the file's `v` prefix", r#"strategy = "semver""#, &["1.3.0"], "v1.2.0", Want::Promote("1.3.0")),
    ("semver: 1.4.3 and v1.4.3 are one version, so no churn", r#"strategy = "semver""#, &["v1.4.3"], "1.4.3", Want::Keep),
    ("semver: build metadata alone is no upgrade (the file may hold it; a tag cannot)", r#"strategy = "semver""#, &["1.4.3"], "1.4.3+build.1", Want::Keep),
    ("semver: the file holds no version", r#"strategy = "semver""#, &["1.4.0"], "latest", Want::Unordered("version")),
    ("semver: the file holds a four-part tag", r#"strategy = "semver""#, &["1.4.0"], "1.4.0.1", Want::Unordered("version")),
    ("semver: the file's value is read through extract (upgrade)", r#"allow = '^app-(?P<v>.+)$', extract = '$v'"#, &["app-1.3.0"], "app-1.2.0", Want::Promote("app-1.3.0")),
    ("semver: the file's value is read through extract (no downgrade)", r#"allow = '^app-(?P<v>.+)$', extract = '$v'"#, &["app-1.3.0"], "app-2.0.0", Want::Keep),
    // numeric
    ("numeric: 10 after 9 is an upgrade", r#"strategy = "numeric""#, &["10", "8"], "9", Want::Promote("10")),
    ("numeric: never downgrades", r#"strategy = "numeric""#, &["10", "8"], "11", Want::Keep),
    ("numeric: 12 and 0012 are one number, so no churn", r#"strategy = "numeric""#, &["12"], "0012", Want::Keep),
    ("numeric: 1.5 and 1.50 are one number, so no churn", r#"strategy = "numeric""#, &["1.50"], "1.5", Want::Keep),
    ("numeric: the file holds no number", r#"strategy = "numeric""#, &["12"], "latest", Want::Unordered("number")),
    ("numeric: promotes by the extracted build", MAIN, &["main-120-abc1234", "main-119-0000000"], "main-99-fffffff", Want::Promote("main-120-abc1234")),
    ("numeric: the file's value is read through extract (main-120 > main-119)", MAIN, &["main-119-0000000", "main-100-fffffff"], "main-120-abc1234", Want::Keep),
    ("numeric: the file's value does not match allow, so it cannot be ordered", MAIN, &["main-120-abc1234"], "release-5", Want::Unordered("number")),
    // newest
    ("newest: promotes to a newer push", r#"strategy = "newest""#, &["a@09:00", "b@09:30"], "a", Want::Promote("b")),
    ("newest: keeps the newest when the file holds it", r#"strategy = "newest""#, &["a@09:00", "b@09:30"], "b", Want::Keep),
    ("newest: never back in time to an older candidate (file's tag too young)", r#"strategy = "newest", min_age = "10m""#, &["a@09:58", "b@09:30"], "a", Want::Keep),
    ("newest: never back in time to an older candidate (file's tag ignored)", r#"strategy = "newest", ignore = ["*-hotfix"]"#, &["b@09:30", "b-hotfix@09:45"], "b-hotfix", Want::Keep),
    ("newest: promotes when the file's tag is gone from the registry", r#"strategy = "newest""#, &["b@09:30"], "gone", Want::Promote("b")),
    ("newest: promotes when the file's tag has no push time to compare", r#"strategy = "newest""#, &["a", "b@09:30"], "a", Want::Promote("b")),
    // alphabetical
    ("alphabetical: promotes to the last tag", r#"strategy = "alphabetical""#, &["2024-01-15", "2024-02-01"], "2024-01-15", Want::Promote("2024-02-01")),
    ("alphabetical: keeps the last tag", r#"strategy = "alphabetical""#, &["2024-01-15", "2024-02-01"], "2024-02-01", Want::Keep),
    // digest
    ("digest: writes the digest behind the followed tag", STABLE, &["stable#sha256:new", "latest#sha256:other"], "sha256:old", Want::Promote("sha256:new")),
    ("digest: keeps when the file already holds that digest", STABLE, &["stable#sha256:aaa", "latest#sha256:bbb"], "sha256:aaa", Want::Keep),
    ("digest: a file holding the tag name gets the digest", STABLE, &["stable#sha256:aaa"], "stable", Want::Promote("sha256:aaa")),
    ("digest: the followed tag is gone, nothing is written", STABLE, &["latest#sha256:bbb"], "sha256:aaa", Want::NoCandidate(&["the one tag does not qualify: 1 not the followed tag"])),
    // nothing to write
    ("an empty repository writes nothing", r#"strategy = "semver""#, &[], "1.0.0", Want::NoCandidate(&["the repository holds no tagged images"])),
    ("everything outside the range writes nothing and counts why", r#"constraint = "^3""#, &["1.0.0", "2.0.0", "latest"], "3.0.0", Want::NoCandidate(&["none of 3 tags qualifies", "2 outside the range", "1 not a version"])),
    ("allow matching nothing writes nothing and says so", r#"allow = '^release-'"#, &["1.0.0", "2.0.0"], "1.0.0", Want::NoCandidate(&["2 not matched by allow"])),
    ("every filter's count is named", r#"strategy = "newest", allow = '^app', ignore = ["*-debug"], min_age = "10m""#,
        &["x@09:00", "app-debug@09:00", "app-1@09:55", "app-2@10:30", "app-3", sig!("sig")], "app-0",
        Want::NoCandidate(&["none of 6 tags qualifies", "1 not matched by allow", "1 ignored", "1 too young", "1 pushed in the future", "1 without a push time", "1 signature or attestation"])),
    ("nothing to write even when the file holds an unorderable value", r#"strategy = "numeric""#, &["latest"], "latest", Want::NoCandidate(&["1 not a number"])),
];

#[test]
fn guards_hold_for_every_strategy() {
    let failures = GUARDS
        .iter()
        .filter_map(|(proves, written, tags, current, want)| {
            let policy = policy(written);
            let images = images(tags);
            let got = policy.decide(&images, current, NOW);
            let ok = match (&got, want) {
                (Ok(Decision::Promote(i)), Want::Promote(v)) => policy.value_of(i) == *v,
                (Ok(Decision::Keep), Want::Keep) => true,
                (Ok(Decision::NoCandidate { why }), Want::NoCandidate(words)) => {
                    words.iter().all(|w| why.contains(w))
                }
                (Err(PolicyError::CurrentUnordered { current: c, kind }), Want::Unordered(k)) => {
                    c == current && kind == k
                }
                _ => false,
            };
            (!ok).then(|| {
                format!("{proves}: {written} over {tags:?} holding {current:?}: got {got:?}, want {want:?}")
            })
        })
        .collect();
    assert_rows("guard", failures);
}

#[test]
fn digest_writes_the_digest_and_rechecks() {
    let p = policy(STABLE);
    let stable = image("stable@08:00#sha256:aaa");
    assert_eq!(p.value_of(&stable), "sha256:aaa");
    assert_eq!(policy("").value_of(&stable), "stable");
    // The digest moved behind the tag: the same tag now promotes.
    let moved = [image("stable@09:00#sha256:bbb")];
    assert_eq!(
        p.decide(&moved, "sha256:aaa", NOW),
        Ok(Decision::Promote(&moved[0]))
    );
}

#[test]
fn strategies_that_choose_by_what_a_tag_points_at_recheck_it() {
    #[rustfmt::skip]
    let rows = [
        ("", false), (r#"strategy = "numeric""#, false), (r#"strategy = "alphabetical""#, false),
        (r#"strategy = "newest""#, true), (STABLE, true),
    ];
    for (written, want) in rows {
        assert_eq!(policy(written).needs_recheck(), want, "{written}");
    }
}

#[test]
fn unordered_current_error_says_why_it_writes_nothing() {
    let err = policy("")
        .decide(&images(&["1.0.0"]), "latest", NOW)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"the file holds "latest", which is not a version under this policy; it cannot tell whether a candidate would be a downgrade, so it writes nothing"#
    );
}

/// (what the row proves, policy, tags, each tag's verdict in input order)
type ExplainRow<'a> = (&'a str, &'a str, &'a [&'a str], Vec<Verdict>);

fn rejected(reason: Reason) -> Verdict {
    Verdict::Rejected(reason)
}

fn check_explain(rows: Vec<ExplainRow>) {
    let failures = rows
        .into_iter()
        .filter_map(|(proves, written, tags, want)| {
            let images = images(tags);
            let explained = policy(written).explain(&images, NOW);
            // One verdict per tag, in input order, each with its own image.
            assert_eq!(explained.len(), images.len(), "{proves}");
            for ((got, _), input) in explained.iter().zip(&images) {
                assert!(std::ptr::eq(*got, input), "{proves}: {got:?} out of order");
            }
            let got: Vec<Verdict> = explained.into_iter().map(|(_, v)| v).collect();
            (got != want).then(|| {
                format!("{proves}: {written} over {tags:?}:\n   got {got:?}\n  want {want:?}")
            })
        })
        .collect();
    assert_rows("explain", failures);
}

#[test]
fn explain_gives_each_tag_its_verdict_in_input_order() {
    use Reason::*;
    use Verdict::{Candidate, Chosen};
    #[rustfmt::skip]
    let rows: Vec<ExplainRow> = vec![
        ("semver: range, pre-release and non-version reasons", r#"constraint = "^1.4""#,
            &["1.3.0", "1.4.2", "1.4.9", "1.5.0-rc.1", "latest", "2.0.0"],
            vec![rejected(OutsideRange), Candidate, Chosen, rejected(Prerelease), rejected(NotVersion), rejected(OutsideRange)]),
        ("every filter's reason, in the order filters apply",
            r#"strategy = "numeric", allow = '^main-(?P<build>\d+)-[0-9a-f]{7}$', extract = '$build', ignore = ["main-7-*"], min_age = "10m""#,
            &["main-5-aaaaaaa@09:00", "main-7-bbbbbbb@09:00", "main-6-ccccccc@09:55", "main-4-ddddddd", "main-3-eeeeeee@10:30", "pr-9-fffffff@09:00", sig!("sig"), "main-2-0000000@08:00"],
            vec![Chosen, rejected(Ignored("main-7-*".into())), rejected(TooYoung { age: Duration::from_secs(300) }), rejected(NoPushTime), rejected(InTheFuture), rejected(NotAllowed), rejected(Signature), Candidate]),
        ("numeric: not a number", r#"strategy = "numeric""#, &["12", "x", "1.2.3"], vec![Chosen, rejected(NotNumber), rejected(NotNumber)]),
        ("newest: no push time", r#"strategy = "newest""#, &["a", "b@09:00", "c@08:00"], vec![rejected(NoPushTime), Chosen, Candidate]),
        ("digest: only the followed tag is considered", STABLE, &["latest", "stable", "1.0.0"], vec![rejected(NotFollowed), Chosen, rejected(NotFollowed)]),
        ("a signature is a signature before anything else", STABLE, &[sig!("att")], vec![rejected(Signature)]),
        ("the OCI tag grammar is the first filter, before signature, allow and strategy", r#"strategy = "alphabetical", allow = '^'"#,
            &["9.9.9\n\nTagwatch-App: forged", "-leading-dash", ".dot", "has space", "ünïcode", "build+1", "", "a/b", "ok_1.0-x"],
            vec![rejected(InvalidTag), rejected(InvalidTag), rejected(InvalidTag), rejected(InvalidTag), rejected(InvalidTag), rejected(InvalidTag), rejected(InvalidTag), rejected(InvalidTag), Chosen]),
        ("the first filter that rejects is the reason (allow before ignore)", r#"allow = '^v', ignore = ["*"]"#, &["1.0.0", "v1.0.0"], vec![rejected(NotAllowed), rejected(Ignored("*".into()))]),
        ("no candidate, so nothing chosen", r#"constraint = "^9""#, &["1.0.0", "2.0.0"], vec![rejected(OutsideRange), rejected(OutsideRange)]),
        ("ties: only the tag best() chose is Chosen", r#"strategy = "numeric""#, &["12", "0012", "012"], vec![Chosen, Candidate, Candidate]),
    ];
    check_explain(rows);
}

/// `Reason::label` is what logs and `why` counts print; the labels are a
/// fixed vocabulary users grep for.
#[test]
fn reasons_have_fixed_labels_and_readable_text() {
    #[rustfmt::skip]
    let rows = [
        (Reason::InvalidTag, "not a valid OCI tag", "not a valid OCI tag"),
        (Reason::Signature, "signature or attestation", "signature or attestation"),
        (Reason::NotFollowed, "not the followed tag", "not the followed tag"),
        (Reason::NotAllowed, "not matched by allow", "not matched by allow"),
        (Reason::Ignored("*-debug".into()), "ignored", r#"ignored by "*-debug""#),
        (Reason::NoPushTime, "without a push time", "without a push time"),
        (Reason::InTheFuture, "pushed in the future", "pushed in the future (clock skew?); too young"),
        (Reason::TooYoung { age: Duration::from_secs(300) }, "too young", "too young (pushed 5m ago)"),
        (Reason::NotVersion, "not a version", "not a version"),
        (Reason::Prerelease, "pre-release", "pre-release, and the range names no pre-release"),
        (Reason::OutsideRange, "outside the range", "outside the range"),
        (Reason::NotNumber, "not a number", "not a number"),
    ];
    for (reason, label, text) in rows {
        assert_eq!((reason.label(), reason.to_string().as_str()), (label, text));
    }
    assert_eq!(Verdict::Chosen.to_string(), "chosen");
    assert_eq!(Verdict::Candidate.to_string(), "candidate, not the best");
    assert_eq!(
        Verdict::Rejected(Reason::OutsideRange).to_string(),
        "outside the range"
    );
}

/// A rejected pre-release is labelled `Prerelease` only when the pre-release
/// rule alone keeps it out; otherwise it is outside the range, and "the range
/// names no pre-release" would send the user to the wrong fix.
#[test]
fn a_prerelease_is_labelled_by_what_keeps_it_out() {
    #[rustfmt::skip]
    let rows = [
        ("1.5.0 would match; only the pre-release keeps it out", r#"constraint = "^1.4""#, "1.5.0-rc.1", Reason::Prerelease),
        ("the range admits pre-releases; this one is above it", r#"constraint = ">=1.4.0-rc.1 <1.5""#, "1.6.0-rc.1", Reason::OutsideRange),
        ("the range admits pre-releases; this one is below it", r#"constraint = ">=1.4.0-0""#, "1.3.0-rc.1", Reason::OutsideRange),
        ("outside the range whatever its pre-release", r#"constraint = "^1.4""#, "3.0.0-rc.1", Reason::OutsideRange),
    ];
    for (proves, written, tag, want) in rows {
        assert_eq!(
            policy(written).judge(&image(tag), NOW),
            Err(want),
            "{proves}"
        );
    }
}

/// By SemVer order `2.0.0-rc.1 < 2.0.0` and `1.2.3-beta != 1.2.3`, so each
/// satisfies its comparator and only the pre-release rule keeps it out (as
/// Masterminds reports it). The engine asks whether the *release* `2.0.0` /
/// `1.2.3` would match, which it does not, and so calls them outside the range.
#[test]
fn a_prerelease_kept_out_only_by_the_prerelease_rule_is_a_prerelease() {
    #[rustfmt::skip]
    let rows = [
        (r#"constraint = "<2.0.0""#, "2.0.0-rc.1"),
        (r#"constraint = "!=1.2.3""#, "1.2.3-beta"),
    ];
    for (written, tag) in rows {
        assert_eq!(
            policy(written).judge(&image(tag), NOW),
            Err(Reason::Prerelease),
            "{written} {tag}"
        );
    }
}

/// `Ord` must agree with `Eq` (std's contract for `Ord`): `Key::cmp` ignores
/// build metadata, so `==` must too.
#[test]
fn keys_that_order_equal_are_equal() {
    let a = Key::Version(Version::parse("1.4.3+build.1").unwrap());
    let b = Key::Version(Version::parse("1.4.3+build.2").unwrap());
    assert_eq!(a.cmp(&b), Ordering::Equal);
    assert_eq!(a, b);
}

#[test]
fn decimal_reads_only_plain_numbers() {
    #[rustfmt::skip]
    let rows: &[(&str, Option<(&str, &str)>)] = &[
        ("12", Some(("12", ""))), ("0012", Some(("12", ""))), ("0", Some(("", ""))), ("000", Some(("", ""))),
        ("1.50", Some(("1", "5"))), ("0.0", Some(("", ""))), ("01.010", Some(("1", "01"))),
        ("", None), ("1.", None), (".5", None), ("1.2.3", None), ("-1", None), ("+1", None),
        ("1e3", None), (" 1", None), ("1_000", None), ("١٢", None), ("0x1f", None),
    ];
    for &(text, want) in rows {
        let got = Decimal::parse(text).map(|d| (d.int, d.frac));
        assert_eq!(got, want, "{text:?}");
    }
}

// ---------------------------------------------------------------- properties

/// Policies the properties draw from: every strategy, alone and with the
/// filters users combine with it.
#[rustfmt::skip]
const PROPERTY_SPECS: &[&str] = &[
    r#"strategy = "semver""#,
    r#"constraint = "^1.2""#,
    r#"constraint = ">=0.1.0-0 <2.5 || ~v2.x", ignore = ["*+*"]"#,
    r#"constraint = "1.0 - 2.3", min_age = "30m""#,
    r#"allow = '^v(?P<version>.+)$', extract = '$version'"#,
    r#"strategy = "newest""#,
    r#"strategy = "newest", min_age = "10m", ignore = ["*-rc*", "main-?-*"]"#,
    r#"strategy = "alphabetical""#,
    r#"strategy = "alphabetical", allow = '^[a-z]', ignore = ["[0-9]*"]"#,
    r#"strategy = "numeric""#,
    MAIN,
    r#"strategy = "numeric", allow = '^main-(\d+)-', extract = '$1', min_age = "10m""#,
    STABLE,
    r#"strategy = "digest", constraint = "latest", min_age = "10m""#,
];

/// Tags as registries hold them: versions with the usual decorations,
/// numbers, CI build tags, names, signatures and OCI-legal junk.
fn any_tag() -> impl Gen<Value = String> {
    let version = (
        prop::bool::ANY,
        0u64..3,
        0u64..6,
        prop::option::of(0u64..6),
        prop::option::of(prop::sample::select(vec![
            "rc.1", "rc.2", "rc.10", "alpha", "0",
        ])),
        prop::option::of("[a-z0-9]{1,4}"),
    )
        .prop_map(|(v, major, minor, patch, pre, build)| {
            let mut tag = format!("{}{major}.{minor}", if v { "v" } else { "" });
            if let Some(patch) = patch {
                tag += &format!(".{patch}");
            }
            if let Some(pre) = pre {
                tag += &format!("-{pre}");
            }
            if let Some(build) = build {
                tag += &format!("+{build}");
            }
            tag
        });
    prop_oneof![
        3 => version,
        2 => "0{0,2}[0-9]{1,4}(\\.[0-9]{1,3}0?)?",
        1 => "[0-9]{14,22}",
        2 => (0u32..300, "[0-9a-f]{7}").prop_map(|(n, hex)| format!("main-{n}-{hex}")),
        2 => "[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}",
        1 => prop::sample::select(vec!["latest", "stable", sig!("sig"), sig!("att"), "sha256-abc.sig"])
            .prop_map(String::from),
    ]
}

/// Up to 40 images with unique tags (as in one ECR repository). Push times
/// fall on a coarse grid around [`NOW`], some in the future and some
/// missing, so ties, `min_age` edges and clock skew all occur; digests come
/// from a small pool, as when one image carries several tags.
fn any_images() -> impl Gen<Value = Vec<Image>> {
    let one = (any_tag(), prop::option::of(-24i64..=2), 0u8..6);
    prop::collection::vec(one, 0..40).prop_map(|raw| {
        let mut seen = HashSet::new();
        raw.into_iter()
            .filter(|(tag, _, _)| seen.insert(tag.clone()))
            .map(|(tag, step, d)| Image {
                tag,
                digest: format!("sha256:{d:064x}"),
                pushed_at: step.map(|s| NOW + time::Duration::minutes(5 * s)),
            })
            .collect()
    })
}

fn any_policy() -> impl Gen<Value = (&'static str, Policy)> {
    prop::sample::select(PROPERTY_SPECS).prop_map(|w| (w, policy(w)))
}

/// What the file holds: often a tag of the repository, otherwise any tag.
fn any_current(images: &[Image]) -> BoxedStrategy<String> {
    let from_registry: Vec<String> = images.iter().map(|i| i.tag.clone()).collect();
    if from_registry.is_empty() {
        return any_tag().boxed();
    }
    prop_oneof![prop::sample::select(from_registry), any_tag()].boxed()
}

/// How the policy orders the value a file holds, for the strategies with a
/// downgrade guard; `None` when it cannot be ordered.
fn order_of<'a>(policy: &Policy, current: &'a str) -> Option<Key<'a>> {
    let text = policy.current_text(current)?;
    match policy.strategy {
        Strategy::Semver(_) => parse_version(text).map(Key::Version),
        Strategy::Numeric => Decimal::parse(text).map(Key::Number),
        _ => None,
    }
}

/// Every filter, checked without `judge`, so the property does not merely
/// restate the engine.
fn passes_every_filter(policy: &Policy, image: &Image) -> bool {
    let signature = regex::Regex::new(r"^sha256-[0-9a-fA-F]{64}\.(sig|att|sbom)$").unwrap();
    let oci_tag = regex::Regex::new(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$").unwrap();
    let old_enough = policy
        .min_age
        .is_none_or(|min| image.pushed_at.is_some_and(|t| NOW >= t && NOW - t >= min));
    oci_tag.is_match(&image.tag)
        && !signature.is_match(&image.tag)
        && policy
            .allow
            .as_ref()
            .is_none_or(|re| re.is_match(&image.tag))
        && !policy.ignore.iter().any(|g| g.matches(&image.tag))
        && old_enough
}

fn property_config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        // Never write regression files into the source tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(property_config())]

    /// The chosen tag is always one of the input tags, and it passes every
    /// filter (signature, allow, ignore, min_age) as well as `judge`. When
    /// nothing is chosen, no tag was a candidate. `explain` agrees: exactly
    /// one `Chosen`, on the chosen tag, or none when nothing is chosen.
    #[test]
    fn the_choice_is_an_input_that_passes_every_filter(
        images in any_images(),
        (written, policy) in any_policy(),
    ) {
        let best = policy.best(&images, NOW);
        match best {
            Some(b) => {
                prop_assert!(images.iter().any(|i| std::ptr::eq(i, b)), "{written}: not an input");
                prop_assert!(policy.judge(b, NOW).is_ok(), "{written}: {b:?} fails judge");
                prop_assert!(passes_every_filter(&policy, b), "{written}: {b:?} fails a filter");
            }
            None => prop_assert!(images.iter().all(|i| policy.judge(i, NOW).is_err())),
        }
        let chosen: Vec<&str> = policy
            .explain(&images, NOW)
            .into_iter()
            .filter(|(_, v)| *v == Verdict::Chosen)
            .map(|(i, _)| i.tag.as_str())
            .collect();
        prop_assert_eq!(chosen, best.map(|b| b.tag.as_str()).into_iter().collect::<Vec<_>>());
    }

    /// `decide` never promotes `semver` or `numeric` to a value that orders
    /// below the one the file holds, and never moves `newest` to an image
    /// pushed before the file's. It promotes only to an image the registry
    /// holds, writes nothing exactly when no tag qualifies, and refuses only
    /// values this policy cannot order.
    #[test]
    fn decide_never_goes_below_the_current_value(
        (images, current) in any_images().prop_flat_map(|images| {
            let current = any_current(&images);
            (Just(images), current)
        }),
        (written, policy) in any_policy(),
    ) {
        let decision = policy.decide(&images, &current, NOW);
        let best = policy.best(&images, NOW);
        match decision {
            Ok(Decision::Promote(new)) => {
                prop_assert!(images.iter().any(|i| std::ptr::eq(i, new)));
                prop_assert_ne!(policy.value_of(new), current.as_str());
                match policy.strategy {
                    Strategy::Semver(_) | Strategy::Numeric => {
                        let cur = order_of(&policy, &current);
                        prop_assert!(cur.is_some(), "{written}: promoted from unordered {current:?}");
                        let new_key = policy.judge(new, NOW).unwrap();
                        prop_assert!(new_key >= cur.unwrap(), "{written}: {current:?} -> {:?}", new.tag);
                    }
                    Strategy::Newest => {
                        for held in images.iter().filter(|i| i.tag == current) {
                            prop_assert!(held.pushed_at <= new.pushed_at, "{written}: back in time");
                        }
                    }
                    Strategy::Alphabetical | Strategy::Digest { .. } => {}
                }
            }
            Ok(Decision::Keep) => prop_assert!(best.is_some()),
            Ok(Decision::NoCandidate { why }) => {
                prop_assert!(best.is_none());
                prop_assert!(!why.is_empty());
            }
            Err(PolicyError::CurrentUnordered { current: c, .. }) => {
                prop_assert_eq!(&c, &current);
                prop_assert!(best.is_some());
                prop_assert!(matches!(policy.strategy, Strategy::Semver(_) | Strategy::Numeric));
                prop_assert!(order_of(&policy, &current).is_none());
            }
        }
    }

    /// Shuffling the input never changes the choice: ties are broken by tag
    /// name, and tags are unique within a repository.
    #[test]
    fn shuffling_the_input_never_changes_the_choice(
        (images, shuffled) in any_images().prop_flat_map(|images| {
            (Just(images.clone()), Just(images).prop_shuffle())
        }),
        (written, policy) in any_policy(),
    ) {
        let a = policy.best(&images, NOW).map(|i| &i.tag);
        let b = policy.best(&shuffled, NOW).map(|i| &i.tag);
        prop_assert_eq!(a, b, "{}", written);
    }
}

/// ECR's tag grammar, at its edges: 128 characters is the limit, `_` may
/// lead, `.` and `-` may not, and nothing outside ASCII letters, digits and
/// `._-` is a tag. The cycle counts what [`invalid_tags`] returns.
#[test]
fn oci_tag_grammar_at_its_edges() {
    let max = format!("a{}", "b".repeat(127));
    let over = format!("a{}", "b".repeat(128));
    #[rustfmt::skip]
    let rows: &[(&str, bool)] = &[
        ("1.4.3", true), ("_x", true), ("A-b_c.9", true), (&max, true),
        (&over, false), ("", false), (".x", false), ("-x", false), ("a b", false),
        ("a\nb", false), ("a\r", false), ("a\tb", false), ("1.4.3+build", false), ("é", false), ("a:b", false), ("a@b", false),
    ];
    for (tag, valid) in rows {
        assert_eq!(is_valid_tag(tag), *valid, "{tag:?}");
    }
    let listing = images(&["1.0.0", "bad tag", "2.0.0"]);
    let invalid: Vec<&str> = invalid_tags(&listing).map(|i| i.tag.as_str()).collect();
    assert_eq!(invalid, ["bad tag"]);
}

/// `ranked` is what a gate walks: its first must be `best` under every
/// strategy, and the rest in order (a gate that skips the best takes the
/// second best, never an arbitrary candidate).
#[test]
fn ranked_starts_with_best_and_descends() {
    let mut failures = Vec::new();
    for &(proves, written, tags, _) in STRATEGIES {
        let images = images(tags);
        let policy = policy(written);
        let ranked = policy.ranked(&images, NOW);
        let best = policy.best(&images, NOW);
        if ranked.first().copied() != best {
            failures.push(format!(
                "{proves}: ranked starts with {:?}, best is {best:?}",
                ranked.first()
            ));
        }
        // Without the first, the best of the rest is the second.
        if let Some(first) = ranked.first() {
            let rest: Vec<Image> = images
                .iter()
                .filter(|i| i.tag != first.tag)
                .cloned()
                .collect();
            let second = policy.best(&rest, NOW).map(|i| i.tag.clone());
            if ranked.get(1).map(|i| i.tag.clone()) != second {
                failures.push(format!(
                    "{proves}: second is {:?}, want {second:?}",
                    ranked.get(1)
                ));
            }
        }
    }
    assert_rows("ranked", failures);
}
