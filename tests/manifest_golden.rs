//! Golden, property and robustness tests for `tagwatch::manifest`.
//!
//! Golden cases live in `tests/golden/<case>/`: `input.yaml`, `case.txt` (lines `path: ...`,
//! or `kustomize_image: <name>` plus `field: <field>` for `set_kustomize_image`; `value: ...`,
//! optional `document: N`, and for refusals `error: <substring>` plus `kind: <kind>`), and for
//! successes `expected.yaml`, the exact bytes the edit must produce. An `expected.yaml` identical
//! to `input.yaml` means "already holds the value": the edit must return `Ok(None)`.

use std::fs;
use std::path::{Path, PathBuf};

use tagwatch::manifest::{self, Document, EditError, KeyPath, Style};

// ---------------------------------------------------------------------------------------------
// Golden cases
// ---------------------------------------------------------------------------------------------

struct Case {
    name: String,
    input: Vec<u8>,
    /// The path `set` edits, or for a Kustomize case the path the field reads back at.
    path: KeyPath,
    /// For `set_kustomize_image` cases: the image name and the field.
    kustomize: Option<(String, String)>,
    value: String,
    document: Document,
    outcome: Outcome,
}

impl Case {
    /// Runs the edit the case describes.
    fn edit(&self, input: &[u8]) -> Result<Option<Vec<u8>>, EditError> {
        match &self.kustomize {
            None => manifest::set(input, &self.path, &self.document, &self.value),
            Some((image, field)) => manifest::set_kustomize_image(input, image, field, &self.value),
        }
    }
}

enum Outcome {
    Expected(Vec<u8>),
    Error { substring: String, kind: String },
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn load_case(dir: &Path) -> Result<Case, String> {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let spec = fs::read_to_string(dir.join("case.txt")).map_err(|e| format!("case.txt: {e}"))?;
    let (mut path, mut value, mut document, mut error, mut kind) = (None, None, None, None, None);
    let (mut image, mut field) = (None, None);
    for line in spec.lines().filter(|l| !l.trim().is_empty()) {
        let (key, rest) = line
            .split_once(':')
            .ok_or_else(|| format!("bad line {line:?}"))?;
        // Exactly one space after the colon is syntax; anything after it is the value.
        let rest = rest.strip_prefix(' ').unwrap_or(rest).to_string();
        match key {
            "path" => path = Some(rest),
            "kustomize_image" => image = Some(rest),
            "field" => field = Some(rest),
            "value" => value = Some(rest),
            "document" => document = Some(rest),
            "error" => error = Some(rest),
            "kind" => kind = Some(rest),
            other => return Err(format!("unknown key {other:?}")),
        }
    }
    let (path, kustomize) = match (path, image, field) {
        (Some(path), None, None) => (path, None),
        (None, Some(image), Some(field)) => (
            format!("images[name={image}].{field}"),
            Some((image, field)),
        ),
        _ => return Err("need either path: or both kustomize_image: and field:".into()),
    };
    let path = KeyPath::parse(&path).map_err(|e| e.to_string())?;
    let document = match document {
        None => Document::Any,
        Some(d) => Document::parse(d.trim()).map_err(|e| e.to_string())?,
    };
    let expected = fs::read(dir.join("expected.yaml")).ok();
    let outcome = match (expected, error, kind) {
        (Some(bytes), None, None) => Outcome::Expected(bytes),
        (None, Some(substring), Some(kind)) => Outcome::Error { substring, kind },
        _ => return Err("need either expected.yaml or both error: and kind:".into()),
    };
    Ok(Case {
        name,
        input: fs::read(dir.join("input.yaml")).map_err(|e| format!("input.yaml: {e}"))?,
        path,
        kustomize,
        value: value.ok_or("missing value")?,
        document,
        outcome,
    })
}

fn load_cases() -> Vec<Case> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(golden_dir())
        .expect("tests/golden exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.iter()
        .map(|d| load_case(d).unwrap_or_else(|e| panic!("{}: {e}", d.display())))
        .collect()
}

/// Describes the first differing line of two byte strings, with both lines escaped.
fn first_difference(expected: &[u8], actual: &[u8]) -> String {
    let exp: Vec<&[u8]> = expected.split_inclusive(|&b| b == b'\n').collect();
    let act: Vec<&[u8]> = actual.split_inclusive(|&b| b == b'\n').collect();
    for i in 0..exp.len().max(act.len()) {
        let (e, a) = (exp.get(i), act.get(i));
        if e != a {
            let show = |l: Option<&&[u8]>| {
                l.map_or("<end of file>".to_string(), |l| {
                    format!("{:?}", String::from_utf8_lossy(l))
                })
            };
            return format!(
                "first difference at line {}:\n  expected: {}\n  actual:   {}",
                i + 1,
                show(e),
                show(a)
            );
        }
    }
    "no line differs (lengths match?)".to_string()
}

/// Checks a successful edit: exact bytes, bytes outside the scalar untouched (or, for an
/// insertion, the input kept whole around one inserted run), and the value reads back.
fn check_success(case: &Case, expected: &[u8]) -> Result<(), String> {
    let result = case
        .edit(&case.input)
        .map_err(|e| format!("edit failed: [{}] {e}", e.kind()))?;
    let Some(out) = result else {
        return if expected == case.input.as_slice() {
            Ok(())
        } else {
            Err("edit returned Ok(None) (no change) but expected.yaml differs from input".into())
        };
    };
    if expected == case.input.as_slice() {
        return Err("expected no change (Ok(None)) but the edit returned new content".into());
    }
    if out != expected {
        return Err(first_difference(expected, &out));
    }
    let start = match manifest::get(&case.input, &case.path, &case.document) {
        Ok(before) => {
            let range = before.byte_range;
            let tail = case.input.len() - range.end;
            if out[..range.start] != case.input[..range.start] {
                return Err("bytes before the scalar changed".into());
            }
            if out.len() < tail || out[out.len() - tail..] != case.input[range.end..] {
                return Err("bytes after the scalar changed".into());
            }
            Some(range.start)
        }
        // Only set_kustomize_image adds what is not there.
        Err(_) if case.kustomize.is_some() => {
            let prefix = common_prefix(&case.input, &out);
            let rest = case.input.len() - prefix;
            if out.len() < case.input.len() || out[out.len() - rest..] != case.input[prefix..] {
                return Err("the input is not kept whole around one inserted run of bytes".into());
            }
            None
        }
        Err(e) => return Err(format!("get on input failed: {e}")),
    };
    let after = manifest::get(&out, &case.path, &case.document)
        .map_err(|e| format!("get on output failed: {e}"))?;
    if after.value != case.value || start.is_some_and(|s| after.byte_range.start != s) {
        return Err(format!("output reads back as {after:?}"));
    }
    if let Some((image, field)) = &case.kustomize {
        let read = independent_kustomize_value(&out, image, field);
        if read.as_deref() != Some(case.value.as_str()) {
            return Err(format!("serde_norway reads the field as {read:?}"));
        }
    }
    Ok(())
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Reads `images[name=<image>].<field>` of a kustomization with an independent parser.
fn independent_kustomize_value(out: &[u8], image: &str, field: &str) -> Option<String> {
    let text = std::str::from_utf8(out).ok()?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let doc: serde_norway::Value = serde_norway::from_str(text).ok()?;
    let entries = doc.get("images")?.as_sequence()?;
    let mut hits = entries
        .iter()
        .filter(|e| e.get("name").and_then(|n| n.as_str()) == Some(image));
    let entry = hits.next()?;
    if hits.next().is_some() {
        return None;
    }
    entry.get(field)?.as_str().map(str::to_string)
}

fn check_error(case: &Case, substring: &str, kind: &str) -> Result<(), String> {
    match case.edit(&case.input) {
        Ok(r) => Err(format!(
            "expected an error, got {:?}",
            r.map(String::from_utf8)
        )),
        Err(e) => {
            let shown = e.to_string();
            if !shown.contains(substring) {
                Err(format!("error {shown:?} does not contain {substring:?}"))
            } else if e.kind() != kind {
                Err(format!(
                    "error kind {:?}, expected {kind:?} ({shown})",
                    e.kind()
                ))
            } else {
                Ok(())
            }
        }
    }
}

#[test]
fn golden_cases() {
    let cases = load_cases();
    assert!(cases.len() >= 40, "only {} golden cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let result = match &case.outcome {
            Outcome::Expected(expected) => check_success(case, expected),
            Outcome::Error { substring, kind } => check_error(case, substring, kind),
        };
        if let Err(msg) = result {
            failures.push(format!("{} ({}): {msg}", case.name, case.path));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} golden cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// The harness itself must be able to fail: a wrong expectation is reported with a diff.
#[test]
fn golden_harness_detects_mismatch() {
    let case = Case {
        name: "self-test".into(),
        input: b"a:\n  tag: 1.0.0\n".to_vec(),
        path: KeyPath::parse("a.tag").unwrap(),
        kustomize: None,
        value: "1.0.1".into(),
        document: Document::Any,
        outcome: Outcome::Expected(Vec::new()),
    };
    let err = check_success(&case, b"a:\n  tag: 1.0.2\n").unwrap_err();
    assert!(err.contains("line 2"), "{err}");
    assert!(check_success(&case, b"a:\n  tag: 1.0.1\n").is_ok());
    assert!(check_error(&case, "x", "not_found").is_err());
}

// ---------------------------------------------------------------------------------------------
// Property test: random OCI tags into several base documents
// ---------------------------------------------------------------------------------------------

/// xorshift64*: deterministic, dependency-free, good enough to spread test inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const TAG_FIRST: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_";
const TAG_REST: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-";

/// Tags that are valid OCI tags and look like numbers, booleans or nulls to some YAML reader.
const TRICKY_TAGS: &[&str] = &[
    "1.10",
    "1.0",
    "1e3",
    "1E3",
    "0x1F",
    "012",
    "0o17",
    "1_000",
    "yes",
    "no",
    "on",
    "off",
    "y",
    "n",
    "true",
    "True",
    "FALSE",
    "null",
    "Null",
    "NULL",
    "1",
    "0",
    "10",
    "1.",
    "1.5e-3",
    "inf",
    "nan",
    "NaN",
    "_",
    "0b101",
    "2001-12-14",
    "1.4.3",
    "v1.2.3",
    "latest",
    "1e",
    "0.0.1",
];

fn random_tag(rng: &mut Rng) -> String {
    if rng.below(4) == 0 {
        return TRICKY_TAGS[rng.below(TRICKY_TAGS.len())].to_string();
    }
    // Mostly short tags, sometimes up to the 128-character maximum.
    let len = if rng.below(10) == 0 {
        1 + rng.below(128)
    } else {
        1 + rng.below(16)
    };
    let mut s = String::with_capacity(len);
    s.push(TAG_FIRST[rng.below(TAG_FIRST.len())] as char);
    // Digits, dots and dashes are over-represented to hit version-like strings.
    for _ in 1..len {
        let c = match rng.below(3) {
            0 => b"0123456789.-"[rng.below(12)],
            _ => TAG_REST[rng.below(TAG_REST.len())],
        };
        s.push(c as char);
    }
    s
}

struct Base {
    text: &'static str,
    path: &'static str,
    document: Document,
    style: Style,
    /// Walks serde_norway's reading of the output to the target.
    lookup: fn(&serde_norway::Value) -> Option<&serde_norway::Value>,
}

fn bases() -> Vec<Base> {
    vec![
        Base {
            text: "# values\nimage:\n  repository: x\n  tag: 1.0.0 # current\n  pullPolicy: Always\n",
            path: "image.tag",
            document: Document::Any,
            style: Style::Plain,
            lookup: |v| v.get("image")?.get("tag"),
        },
        Base {
            text: "\u{feff}# é ☃ 😀\r\nimage:\r\n  tag: '1.0.0'\r\n  x: y\r\n",
            path: "image.tag",
            document: Document::Any,
            style: Style::SingleQuoted,
            lookup: |v| v.get("image")?.get("tag"),
        },
        Base {
            text: "images:\n  - name: api\n    newTag: \"1.0.0\"   # managed\n  - name: web\n    newTag: x\n",
            path: "images[name=api].newTag",
            document: Document::Any,
            style: Style::DoubleQuoted,
            lookup: |v| v.get("images")?.get(0)?.get("newTag"),
        },
        Base {
            text: "a: 1\n---\nimage: {repository: x, tag: 1.0.0, pull: Always}\n",
            path: "image.tag",
            document: Document::Index(1),
            style: Style::Plain,
            lookup: |v| v.get("image")?.get("tag"),
        },
        Base {
            text: "spec:\n  containers:\n  - name: web\n    image: x:1\n    tags: [a, 1.0.0]\n",
            path: "spec.containers[0].tags[1]",
            document: Document::Any,
            style: Style::Plain,
            lookup: |v| {
                v.get("spec")?
                    .get("containers")?
                    .get(0)?
                    .get("tags")?
                    .get(1)
            },
        },
    ]
}

/// Reads the target with an independent YAML parser (serde_norway, YAML 1.2 resolution).
fn independent_value(base: &Base, out: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(out).ok()?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let docs: Vec<serde_norway::Value> = serde_norway::Deserializer::from_str(text)
        .map(<serde_norway::Value as serde::Deserialize>::deserialize)
        .collect::<Result<_, _>>()
        .ok()?;
    let doc = match base.document {
        Document::Index(n) => docs.get(n)?,
        Document::Any => docs.first()?,
        Document::Select(_) => return None,
    };
    match (base.lookup)(doc)? {
        serde_norway::Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

#[test]
fn random_tags_round_trip() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let bases = bases();
    for i in 0..2000 {
        let base = &bases[i % bases.len()];
        let path = KeyPath::parse(base.path).unwrap();
        let value = random_tag(&mut rng);
        let input = base.text.as_bytes();
        let before = manifest::get(input, &path, &base.document).unwrap();
        assert_eq!(before.style, base.style, "base {}", base.path);
        let out = match manifest::set(input, &path, &base.document, &value) {
            Ok(Some(out)) => out,
            Ok(None) => {
                assert_eq!(value, before.value);
                continue;
            }
            Err(e) => panic!("set {value:?} into {:?}: {e}", base.text),
        };
        let after = manifest::get(&out, &path, &base.document).unwrap();
        assert_eq!(after.value, value, "{:?}", String::from_utf8_lossy(&out));
        let start = before.byte_range.start;
        let tail = input.len() - before.byte_range.end;
        assert_eq!(
            &out[..start],
            &input[..start],
            "prefix changed for {value:?}"
        );
        assert_eq!(
            &out[out.len() - tail..],
            &input[input.len() - tail..],
            "suffix changed"
        );
        assert_eq!(after.byte_range.start, start);
        // Plain targets stay plain exactly when that is safe (OCI tags hold none of the flow
        // indicators, so flow context does not change the answer); quoted targets keep quotes.
        match base.style {
            Style::Plain if manifest::plain_is_safe(&value) => {
                assert_eq!(after.style, Style::Plain)
            }
            Style::Plain => assert_eq!(after.style, Style::DoubleQuoted, "{value:?}"),
            style => assert_eq!(after.style, style),
        }
        let written = std::str::from_utf8(&out[after.byte_range.clone()]).unwrap();
        assert_eq!(written, manifest::render(&value, after.style));
        assert_eq!(
            independent_value(base, &out).as_deref(),
            Some(value.as_str()),
            "serde_norway reads {value:?} differently in {:?}",
            String::from_utf8_lossy(&out)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Robustness: nothing panics on odd input
// ---------------------------------------------------------------------------------------------

fn exercise(input: &[u8], paths: &[KeyPath]) {
    for path in paths {
        for doc in [Document::Any, Document::Index(1)] {
            let got = manifest::get(input, path, &doc);
            let set = manifest::set(input, path, &doc, "1.2.3");
            // A successful get means set either succeeds or refuses for a stated reason;
            // when set produces output it must hold the new value.
            if let (Ok(_), Ok(Some(out))) = (&got, &set) {
                assert_eq!(manifest::get(out, path, &doc).unwrap().value, "1.2.3");
            }
            if let Err(e) = &set {
                assert!(!e.to_string().is_empty() && !e.kind().is_empty());
                // An internal error is a defence that should never fire: when it does, the
                // locating logic has a bug. (A round-trip refusal can be legitimate: saphyr
                // accepts `key:\t\\ x` but rejects `key:\tx`.)
                assert!(
                    e.kind() != "internal",
                    "{e} for {path} in {:?}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }
}

/// `exercise` for `set_kustomize_image`: output must read back; refusals must not be internal.
fn exercise_kustomize(input: &[u8], image: &str, field: &str) {
    let path = KeyPath::parse(&format!("images[name={image}].{field}")).unwrap();
    match manifest::set_kustomize_image(input, image, field, "1.2.3") {
        Ok(Some(out)) => {
            let got = manifest::get(&out, &path, &Document::Any);
            assert_eq!(
                got.map(|s| s.value).ok().as_deref(),
                Some("1.2.3"),
                "{:?} became {:?}",
                String::from_utf8_lossy(input),
                String::from_utf8_lossy(&out)
            );
        }
        Ok(None) => {}
        Err(e) => assert!(
            e.kind() != "internal",
            "{e} for {image} in {:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

/// A fuzz knob from the environment, for longer local runs (`TAGWATCH_FUZZ_ITERS`, `..._SEED`).
fn env_knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// Replaces, deletes or inserts 1-4 bytes drawn from YAML's syntax characters and odd bytes.
fn mutate(rng: &mut Rng, mut bytes: Vec<u8>) -> Vec<u8> {
    const POOL: &[u8] = b" \t\r\n:-?[]{},#&*!|>'\"%@`\\\x00\xff\xc3\xa9abc019.";
    for _ in 0..1 + rng.below(4) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.below(bytes.len());
        match rng.below(3) {
            0 => bytes[at] = POOL[rng.below(POOL.len())],
            1 => {
                bytes.remove(at);
            }
            _ => bytes.insert(at, POOL[rng.below(POOL.len())]),
        }
    }
    bytes
}

#[test]
fn odd_inputs_do_not_panic() {
    let parse = |p: &str| KeyPath::parse(p).unwrap();
    let generic: Vec<KeyPath> = ["image.tag", "a", "[0]", "a[0].b", "x[k=v].y"]
        .into_iter()
        .map(parse)
        .collect();
    let odd: &[&[u8]] = &[
        b"",
        b"\xef\xbb\xbf",
        b"\xef\xbb",
        b"\0",
        b"---",
        b"...\n...",
        b"a: &",
        b"a: *",
        b"a: !",
        b"a: !<",
        b"a: \"\\",
        b"a: '",
        b"a: |",
        b"a: |9\n x",
        b"? [a]\n: b\n",
        b"{a: b: c}",
        b"a:\r\r\rb: 1\r",
        b"a: 1\xff\n",
        b"\t- a",
        b"a: \xef\xbb\xbf1",
        b"%YAML 1.2\n%TAG ! tag:x,2000:\n--- !a\na: !b 1\n",
        b"image: &a !t\n  tag: &b !u 1\nx: *a\n",
        b"a: {k: !<tag:x,2000:y> v, j: &x}\n",
        "image:\n  tag: &\u{e9} 1\n".as_bytes(),
    ];
    let odd_kustomizations: &[&[u8]] = &[
        b"images: [",
        b"images:\n-",
        b"images:\n-\n",
        b"images:\n- \n",
        b"images:\n-\n  name: b\n",
        b"images:\n- name: app\n  newName: |\n    x\n",
        b"images:\n- name: b\n  newName: >-\n    x\n\n",
        b"images:\n- name: app\n  digest:\n",
        b"images:\n- name: app\n  newName: 'a\n    b'\n",
        b"images:\n- name: app\n  newName: [a,\n    b]\n",
        b"images: &a\n- name: b\nx: *a\n",
        b"images:\n- &e\n  name: app\nx: *e\n",
        b"images:\n- {name: app}\n",
        b"images: []\n",
        b"images: {}\n",
        b"images: ~\n",
        b"images:",
        b"images:\r\n- name: b\r\n  newTag: x",
        b"images:\n - name: b\n   newTag: *x\n",
        b"images: !!seq\n- name: b\n",
        b"- a\n",
        b"a: 1\n---\nb: 2\n",
        b"\xef\xbb\xbfkind: Kustomization",
        b"kind: Kustomization # c",
        b"a:\n  - x\n  - y\nb: |\n  z\n",
        b"{a: 1}",
        b"a: 1\n...\n",
        b"a: 1\n\t",
        b"- - name: app\n",
        b"images:\n- - name: app\n",
        b"images:\n-   name: b\n    newTag: 1\n",
        b"images:\n- name: b\n  x:\n    y: 1\n",
        b"images:\n- name: b\n  x:\n  - 1\n  - 2\n",
    ];
    let mut count = 0;
    for input in odd.iter().chain(odd_kustomizations) {
        exercise(input, &generic);
        for field in ["newTag", "digest"] {
            exercise_kustomize(input, "app", field);
        }
        count += 1;
    }
    let cases = load_cases();
    // Prefixes of every golden input, cut at any byte (including mid-character), each tried
    // with the case's own path so the cut lands inside the interesting part.
    for case in &cases {
        let paths = [case.path.clone(), parse("[0]")];
        // Long files are cut at every 7th byte to keep the debug-build run short.
        let step = if case.input.len() > 600 { 7 } else { 1 };
        for cut in (0..case.input.len()).step_by(step) {
            exercise(&case.input[..cut], &paths);
            if let Some((image, field)) = &case.kustomize {
                exercise_kustomize(&case.input[..cut], image, field);
            }
            count += 1;
        }
    }
    // Random byte mutations of golden inputs.
    let mut rng = Rng(env_knob("TAGWATCH_FUZZ_SEED", 42));
    for _ in 0..env_knob("TAGWATCH_FUZZ_ITERS", 3000) {
        let case = &cases[rng.below(cases.len())];
        let bytes = mutate(&mut rng, case.input.clone());
        exercise(&bytes, &[case.path.clone(), parse("image.tag")]);
        if let Some((image, field)) = &case.kustomize {
            exercise_kustomize(&bytes, image, field);
        }
        count += 1;
    }
    assert!(count > 3000);
}

#[test]
fn errors_have_kinds_and_messages() {
    let path = KeyPath::parse("image.tag").unwrap();
    let err: EditError = manifest::set(b"image: [", &path, &Document::Any, "1").unwrap_err();
    assert_eq!(err.kind(), "invalid_yaml");
    assert!(err.to_string().starts_with("not valid YAML: "), "{err}");
    assert!(err.to_string().contains(" at line "), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Property test: set_kustomize_image on generated kustomizations
// ---------------------------------------------------------------------------------------------

/// A random but well-formed kustomization: list styles, line endings, comments, quoting,
/// entries with and without the fields, a final line break or none.
fn random_kustomization(rng: &mut Rng) -> String {
    let nl = ["\n", "\r\n"][rng.below(2)];
    let indent = " ".repeat([0, 2, 4][rng.below(3)]);
    let gap = [2, 2, 4][rng.below(3)];
    let item = |key: &str, value: &str| format!("{indent}-{}{key}: {value}", " ".repeat(gap - 1));
    let field = |key: &str, value: &str| format!("{indent}{}{key}: {value}", " ".repeat(gap));
    let mut lines = vec![
        "apiVersion: kustomize.config.k8s.io/v1beta1".to_string(),
        "kind: Kustomization".to_string(),
    ];
    if rng.below(2) == 0 {
        lines.push("resources:".to_string());
        lines.push(format!("{indent}- ../../base"));
    }
    let quote = |rng: &mut Rng, v: &str| match rng.below(3) {
        0 => v.to_string(),
        1 => format!("'{v}'"),
        _ => format!("\"{v}\""),
    };
    match rng.below(5) {
        0 => {}
        1 => lines.push("images: # none yet".to_string()),
        _ => {
            lines.push("images:".to_string());
            for name in ["api", "worker", "web"] {
                if rng.below(3) == 0 {
                    continue;
                }
                if rng.below(4) == 0 {
                    lines.push(format!("{indent}# {name}"));
                }
                lines.push(item("name", &quote(rng, name)));
                if rng.below(2) == 0 {
                    lines.push(field("newName", &format!("registry.example.com/{name}")));
                }
                if rng.below(2) == 0 {
                    let tag = quote(rng, "1.0.0");
                    let comment = ["", " # pinned", "   # x"][rng.below(3)];
                    lines.push(field("newTag", &format!("{tag}{comment}")));
                }
                if rng.below(3) == 0 {
                    lines.push(field("digest", "sha256:abc"));
                }
            }
            if lines.last().is_some_and(|l| l == "images:") {
                lines.push(item("name", "other"));
            }
        }
    }
    if rng.below(2) == 0 {
        lines.push("namePrefix: prod-".to_string());
    }
    if rng.below(3) == 0 {
        lines.push(String::new());
        lines.push("# the end".to_string());
    }
    let mut text = lines.join(nl);
    if rng.below(3) != 0 {
        text.push_str(nl);
    }
    text
}

/// serde_norway's reading of a kustomization.
fn kustomization_value(text: &[u8]) -> serde_norway::Value {
    serde_norway::from_slice(text)
        .unwrap_or_else(|e| panic!("serde_norway: {e} in {:?}", String::from_utf8_lossy(text)))
}

/// The expected reading after the edit: the value set on the entry, which is added (and
/// `images` with it) when missing.
fn with_image_field(
    mut doc: serde_norway::Value,
    image: &str,
    field: &str,
    value: &str,
) -> serde_norway::Value {
    use serde_norway::{Mapping, Value};
    let root = doc.as_mapping_mut().expect("a mapping");
    let images = root.entry(Value::from("images")).or_insert(Value::Null);
    if images.is_null() {
        *images = Value::Sequence(Vec::new());
    }
    let list = images.as_sequence_mut().expect("a list");
    let position = list
        .iter()
        .position(|e| e.get("name").and_then(Value::as_str) == Some(image));
    let entry = match position {
        Some(i) => &mut list[i],
        None => {
            let mut entry = Mapping::new();
            entry.insert("name".into(), image.into());
            list.push(Value::Mapping(entry));
            list.last_mut().unwrap()
        }
    };
    entry
        .as_mapping_mut()
        .unwrap()
        .insert(field.into(), value.into());
    doc
}

#[test]
fn kustomize_images_round_trip() {
    let mut rng = Rng(env_knob("TAGWATCH_FUZZ_SEED", 7));
    for _ in 0..env_knob("TAGWATCH_FUZZ_ITERS", 3000) / 3 {
        let input = random_kustomization(&mut rng);
        let image = ["api", "worker", "web", "new"][rng.below(4)];
        let field = ["newTag", "digest"][rng.below(2)];
        let value = random_tag(&mut rng);
        let show = || format!("{image}.{field}={value:?} in {input:?}");
        let out = match manifest::set_kustomize_image(input.as_bytes(), image, field, &value) {
            Ok(Some(out)) => out,
            Ok(None) => {
                let path = KeyPath::parse(&format!("images[name={image}].{field}")).unwrap();
                let now = manifest::get(input.as_bytes(), &path, &Document::Any).unwrap();
                assert_eq!(now.value, value, "{}", show());
                continue;
            }
            Err(e) => panic!("[{}] {e}: {}", e.kind(), show()),
        };
        let want = with_image_field(kustomization_value(input.as_bytes()), image, field, &value);
        assert_eq!(
            kustomization_value(&out),
            want,
            "{} became {:?}",
            show(),
            String::from_utf8_lossy(&out)
        );
        // Either one scalar was replaced, or the input is kept whole around one insertion that
        // uses the file's line ending only.
        let prefix = common_prefix(input.as_bytes(), &out);
        let suffix = common_prefix(
            &input.as_bytes()[prefix..]
                .iter()
                .rev()
                .copied()
                .collect::<Vec<_>>(),
            &out[prefix..].iter().rev().copied().collect::<Vec<_>>(),
        );
        let added = &out[prefix..out.len() - suffix];
        let removed = &input.as_bytes()[prefix..input.len() - suffix];
        let crlf = input.contains("\r\n");
        if removed.is_empty() {
            let lf = added.iter().filter(|&&b| b == b'\n').count();
            let cr = added.iter().filter(|&&b| b == b'\r').count();
            assert_eq!(cr, if crlf { lf } else { 0 }, "{}", show());
        } else {
            assert!(
                !added.contains(&b'\n') && !removed.contains(&b'\n'),
                "{}",
                show()
            );
        }
        assert_eq!(input.ends_with('\n'), out.ends_with(b"\n"), "{}", show());
    }
}
