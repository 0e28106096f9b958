//! Issue 3's performance goal: choosing among 100,000 tags takes under 20 ms,
//! including parsing, for a `semver` range and for `allow` + `extract` +
//! `numeric`.
//!
//! "Including parsing" means the tags go in as text: the measured closure
//! hands `Policy::best` the `&[Image]` a registry listing yields, and every
//! tag is read (regex, version, number) inside it. The `from_spec+best`
//! group adds compiling the policy itself, which the daemon does once per
//! config load but `tagwatch policy test` does on every run.
//!
//! Run: `cargo bench --bench policy` (about a minute on the 2-core machine).
//! `cargo test --bench policy` (in CI) runs each benchmark once, with the
//! sanity assertions, in a few seconds.
//! Medians land in `target/criterion/<group>/<bench>/new/estimates.json`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use tagwatch::policy::{Policy, PolicySpec};
use tagwatch::registry::Image;
use time::OffsetDateTime;
use time::macros::datetime;

const TAGS: usize = 100_000;
const NOW: OffsetDateTime = datetime!(2026-11-21 10:00 UTC);

/// A small deterministic generator (xorshift64*), so every run measures the
/// same listing and the bench needs no extra dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn hex7(&mut self) -> String {
        format!("{:07x}", self.below(1 << 28))
    }
}

fn image(i: usize, tag: String) -> Image {
    Image {
        tag,
        digest: format!("sha256:{i:064x}"),
        pushed_at: Some(NOW - time::Duration::minutes(i as i64)),
    }
}

/// A release repository: mostly `1.<minor>.<patch>` (some with `v`), other
/// majors outside the range, pre-releases, CI junk, and cosign signatures,
/// so every branch of `judge` is taken.
fn semver_listing() -> Vec<Image> {
    let mut rng = Rng(0x5eed_0001);
    (0..TAGS)
        .map(|i| {
            let (minor, patch) = (rng.below(60), rng.below(1000));
            let tag = match rng.below(100) {
                0..=59 => format!("1.{minor}.{patch}"),
                60..=69 => format!("v1.{minor}.{patch}"),
                70..=79 => format!("{}.{minor}.{patch}", [0, 2, 3][rng.below(3) as usize]),
                80..=89 => format!("1.{minor}.{patch}-rc.{}", rng.below(20)),
                90..=93 => format!("1.{minor}.{patch}+build.{}", rng.below(500)),
                94..=97 => format!("main-{}-{}", rng.below(1_000_000), rng.hex7()),
                98 => "latest".to_string(),
                _ => format!("sha256-{:064x}.sig", rng.next()),
            };
            image(i, tag)
        })
        .collect()
}

/// A CI repository: mostly `main-<build>-<sha7>`, plus branch builds,
/// malformed tags allow rejects, releases and signatures.
fn build_listing() -> Vec<Image> {
    let mut rng = Rng(0x5eed_0002);
    (0..TAGS)
        .map(|i| {
            let build = rng.below(1_000_000);
            let tag = match rng.below(100) {
                0..=89 => format!("main-{build}-{}", rng.hex7()),
                90..=94 => format!("pr-{build}-{}", rng.hex7()),
                95 => format!("main-{build}"),
                96 => format!("main-{build}-{}-dirty", rng.hex7()),
                97 => format!("1.{}.{}", rng.below(60), rng.below(1000)),
                98 => "latest".to_string(),
                _ => format!("sha256-{:064x}.att", rng.next()),
            };
            image(i, tag)
        })
        .collect()
}

fn semver_spec() -> PolicySpec {
    PolicySpec {
        constraint: Some("^1.4".into()),
        ..PolicySpec::default()
    }
}

fn build_spec() -> PolicySpec {
    PolicySpec {
        strategy: Some("numeric".into()),
        allow: Some(r"^main-(?P<build>\d+)-[0-9a-f]{7}$".into()),
        extract: Some("$build".into()),
        ..PolicySpec::default()
    }
}

fn choose(c: &mut Criterion) {
    let cases = [
        ("semver ^1.4", semver_spec(), semver_listing()),
        ("allow+extract+numeric", build_spec(), build_listing()),
    ];
    // What each policy must choose from its (deterministic) listing: the
    // highest 1.x release, and the highest build number. `cargo test
    // --bench policy` (CI) runs this once, so a policy that chooses wrong
    // fails there rather than being timed.
    let expected = ["1.59.999", "main-999998-b13a7c7"];
    for ((name, spec, images), want) in cases.iter().zip(expected) {
        // Fail loudly rather than time a policy that chooses nothing.
        let policy = Policy::from_spec(spec).expect("bench policy is valid");
        let chosen = policy
            .best(images, NOW)
            .expect("the listing has a candidate");
        eprintln!("{name}: {} tags, chooses {:?}", images.len(), chosen.tag);
        assert_eq!(chosen.tag, want, "{name}: wrong choice");
    }

    let mut group = c.benchmark_group("best");
    // Flat sampling suits iterations of milliseconds: every sample runs the
    // same count, so the run stays inside its measurement time.
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(TAGS as u64));
    for (name, spec, images) in &cases {
        let policy = Policy::from_spec(spec).expect("bench policy is valid");
        group.bench_with_input(BenchmarkId::new(*name, TAGS), images, |b, images| {
            b.iter(|| policy.best(black_box(images), black_box(NOW)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("from_spec+best");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(TAGS as u64));
    for (name, spec, images) in &cases {
        group.bench_with_input(BenchmarkId::new(*name, TAGS), images, |b, images| {
            b.iter(|| {
                let policy = Policy::from_spec(black_box(spec)).expect("valid");
                policy.best(black_box(images), black_box(NOW))
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // Each iteration is milliseconds long, so a few seconds per benchmark
    // gives a stable median and keeps the whole run near a minute.
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = choose
}
criterion_main!(benches);
