//! Issue 4's benchmark: editing one scalar in a 5 MB values file, round-trip check included.
//!
//! `cargo bench --bench manifest`. Besides `set`, it measures what bounds it: one bare
//! saphyr-parser pass over the same text (the floor: `set` must parse the input and re-parse
//! the output in full, so it cannot go below two of these) and `get` (one parse plus the
//! lookup). `cargo test --bench manifest` (in CI) runs each once, with the sanity
//! assertions.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use saphyr_parser::{Event, Parser};
use tagwatch::manifest::{self, Document, KeyPath};

/// Builds a deterministic Helm-style values file of at least `min_bytes` bytes: one top-level
/// block per component, each with a `##` comment header, nested mappings, block and flow
/// lists, plain, single- and double-quoted scalars, a `|` block scalar, inline comments and
/// non-ASCII text (so character-to-byte conversion is exercised). Returns the text and the
/// key path of the last component's `image.tag`, near the end of the file.
fn values_file(min_bytes: usize) -> (String, String) {
    let mut s = String::with_capacity(min_bytes + 4096);
    s.push_str(
        "# Default values for the platform umbrella chart.\n\
         # This is a YAML-formatted file.\n\n\
         global:\n  imageRegistry: \"\"\n  imagePullSecrets: []\n  storageClass: ''\n\n",
    );
    // xorshift64: deterministic and dependency-free.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut i = 0;
    while s.len() < min_bytes {
        let r = next();
        let name = format!("svc-{i:05}");
        let (major, minor, patch) = (r % 3, (r >> 8) % 20, (r >> 16) % 30);
        s.push_str(&format!(
            "## @section {name} parameters\n\
             ## Settings for the {name} component. Values here override the chart defaults;\n\
             ## see https://example.com/charts/{name} for details — défaut, Grüße, 設定.\n\
             ##\n\
             {name}:\n\
             \x20 ## @param {name}.enabled Whether to deploy this component\n\
             \x20 enabled: {enabled}\n\
             \x20 replicaCount: {replicas}\n\
             \x20 image:\n\
             \x20   registry: 123456789012.dkr.ecr.eu-west-1.amazonaws.com\n\
             \x20   repository: team/{name}\n\
             \x20   tag: \"{major}.{minor}.{patch}\"   # managed by tagwatch\n\
             \x20   digest: ''\n\
             \x20   pullPolicy: IfNotPresent\n\
             \x20 nameOverride: \"\"\n\
             \x20 podAnnotations:\n\
             \x20   app.kubernetes.io/version: '{major}.{minor}.{patch}'\n\
             \x20   description: \"Zahlungsdienst für café ☃ — 支払い {r}\"\n\
             \x20 env:\n\
             \x20   - name: LOG_LEVEL\n\
             \x20     value: {level}\n\
             \x20   - name: GREETING\n\
             \x20     value: 'Grüße, 世界'\n\
             \x20   - name: FEATURE_FLAGS\n\
             \x20     value: \"a,b,c\"\n\
             \x20 resources:\n\
             \x20   limits: {{cpu: {cpu}m, memory: 512Mi}}\n\
             \x20   requests:\n\
             \x20     cpu: 250m\n\
             \x20     memory: 256Mi\n\
             \x20 ports: [8080, 8443, {port}]\n\
             \x20 config: |\n\
             \x20   # application.properties\n\
             \x20   server.port=8080\n\
             \x20   feature.x=true\n\
             \x20 tolerations: []\n\
             \x20 nodeSelector: {{}}\n\
             \x20 sidecars:\n\
             \x20   - name: envoy\n\
             \x20     image: envoyproxy/envoy:v1.29.{patch}\n\
             \x20     args: [\"--log-level\", warn]\n\n",
            enabled = if r % 5 == 0 { "false" } else { "true" },
            replicas = 1 + r % 4,
            level = ["info", "debug", "warn"][(r % 3) as usize],
            cpu = 100 * (1 + r % 9),
            port = 9000 + r % 1000,
        ));
        i += 1;
    }
    (s, format!("svc-{:05}.image.tag", i - 1))
}

fn bench_manifest(c: &mut Criterion) {
    let (text, path) = values_file(5_000_000);
    let path = KeyPath::parse(&path).expect("a valid path");
    let bytes = text.as_bytes();
    // The edit must succeed and change the file, or the benchmark measures a refusal.
    let out = manifest::set(bytes, &path, &Document::Any, "9.9.9")
        .expect("set succeeds")
        .expect("set changes the file");
    assert_eq!(out.len(), bytes.len());
    // ... and change only the tag: the edited file reads back the new value,
    // and is the old one outside the scalar's three bytes.
    let after = manifest::get(&out, &path, &Document::Any).expect("get after set");
    assert_eq!(after.value, "9.9.9");
    let before = manifest::get(bytes, &path, &Document::Any).expect("get before set");
    let span = before.byte_range.clone();
    assert_eq!(&out[..span.start], &bytes[..span.start]);
    assert_eq!(&out[span.end..], &bytes[span.end..]);

    let mut group = c.benchmark_group("manifest_5mb");
    // An iteration takes a tenth of a second or more: few, flat samples keep the run short.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("saphyr_parse_floor", |b| {
        b.iter(|| {
            let mut parser = Parser::new_from_str(black_box(&text));
            let mut scalars = 0usize;
            while let Some(Ok((event, _))) = parser.next_event() {
                scalars += usize::from(matches!(event, Event::Scalar(..)));
            }
            scalars
        })
    });
    group.bench_function("get", |b| {
        b.iter(|| manifest::get(black_box(bytes), &path, &Document::Any).expect("get"))
    });
    group.bench_function("set_with_roundtrip", |b| {
        b.iter(|| manifest::set(black_box(bytes), &path, &Document::Any, "9.9.9").expect("set"))
    });
    group.finish();
}

criterion_group!(benches, bench_manifest);
criterion_main!(benches);
