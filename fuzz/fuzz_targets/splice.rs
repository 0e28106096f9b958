//! `manifest`: the byte-minimal YAML splice (`get`, `set`, `set_kustomize_image`).
//!
//! Input, split at the first three `\n`:
//!
//! ```text
//! line 1   a key path (`image.tag`), or `kustomize <image> <field>`
//! line 2   the new value; `\n`, `\r`, `\t` are unescaped so values can hold them
//! line 3   the document: empty for any, else as `document =` reads it (`1`, `kind=Deployment`)
//! rest     the YAML file, any bytes
//! ```
//!
//! Properties, beyond "never panics" (what src/manifest.rs promises):
//! - `get`'s `byte_range` lies inside the file, on character boundaries, and `line >= 1`;
//! - `set` succeeds only where `get` does, returns `Ok(None)` exactly when the scalar already
//!   holds the value, and otherwise returns bytes that equal the input outside the scalar's
//!   byte range; `get` on them reads the new value, starting at the same byte, with the old
//!   style or double quotes, written exactly as `render` writes it in that style; setting the
//!   same value again is `Ok(None)`;
//! - `set_kustomize_image`: on an existing field, the same as `set` at
//!   `images[name=<image>].<field>`; otherwise the input is kept whole around one inserted
//!   run of bytes; either way the field reads back as the value and a second call is `Ok(None)`.
//!
//! Set `TAGWATCH_FUZZ_REPORT=1` to print each refusal's kind (for `-runs=0` over a corpus).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tagwatch::manifest::{
    self, Document, EditError, KeyPath, Scalar, Style, get, kustomize_path, set,
    set_kustomize_image,
};

fn report(what: &str, e: &EditError) {
    if std::env::var_os("TAGWATCH_FUZZ_REPORT").is_some() {
        eprintln!("fuzz-report {what} {}: {e}", e.kind());
    }
}

fn report_ok(what: &str) {
    if std::env::var_os("TAGWATCH_FUZZ_REPORT").is_some() {
        eprintln!("fuzz-report {what} ok");
    }
}

fn unescape(v: &str) -> String {
    v.replace("\\n", "\n")
        .replace("\\r", "\r")
        .replace("\\t", "\t")
}

/// Checks a `get` result against the file it came from.
fn check_scalar(src: &[u8], s: &Scalar) {
    let text = std::str::from_utf8(src).expect("get succeeded on a non-UTF-8 file");
    assert!(
        text.get(s.byte_range.clone()).is_some(),
        "byte_range {:?} is outside the file or off a character boundary",
        s.byte_range
    );
    assert!(s.line >= 1, "line 0");
}

/// Checks a replacement of `before` (read from `src`) by `value`, which produced `out`.
fn check_replaced(
    src: &[u8],
    before: &Scalar,
    out: &[u8],
    path: &KeyPath,
    doc: &Document,
    value: &str,
) {
    let r = &before.byte_range;
    let tail = src.len() - r.end;
    assert!(
        out.len() >= r.start + tail,
        "output shorter than the bytes kept"
    );
    assert_eq!(
        &out[..r.start],
        &src[..r.start],
        "bytes before the scalar changed"
    );
    assert_eq!(
        &out[out.len() - tail..],
        &src[r.end..],
        "bytes after the scalar changed"
    );
    let after = get(out, path, doc).unwrap_or_else(|e| panic!("get on the output fails: {e}"));
    check_scalar(out, &after);
    assert_eq!(after.value, value, "the output does not hold the new value");
    assert_eq!(
        after.byte_range,
        r.start..out.len() - tail,
        "the new scalar is not exactly the spliced bytes"
    );
    assert!(
        after.style == before.style || after.style == Style::DoubleQuoted,
        "style {:?} became {:?}",
        before.style,
        after.style
    );
    let written = std::str::from_utf8(&out[after.byte_range.clone()]).unwrap();
    assert_eq!(
        written,
        manifest::render(value, after.style),
        "the scalar is not written as render() writes a {:?} scalar",
        after.style
    );
}

fn plain(src: &[u8], path: &KeyPath, doc: &Document, value: &str) {
    let before = get(src, path, doc);
    if let Ok(s) = &before {
        check_scalar(src, s);
    }
    let result = set(src, path, doc, value);
    match (&before, &result) {
        (Err(_), Ok(_)) => panic!("set succeeded where get fails: {before:?}"),
        (Err(e), Err(_)) => report("get", e),
        (Ok(s), Ok(None)) => assert_eq!(s.value, value, "Ok(None) but the value differs"),
        (Ok(s), Ok(Some(out))) => {
            assert_ne!(s.value, value, "Ok(Some) but the value was already held");
            check_replaced(src, s, out, path, doc, value);
            report_ok("set replaced");
            match set(out, path, doc, value) {
                Ok(None) => {}
                other => panic!("setting the same value again gives {other:?}"),
            }
        }
        (Ok(s), Err(e)) => {
            assert_ne!(
                s.value, value,
                "refused ({e}) although the value was already held"
            );
            report("set", e);
        }
    }
}

fn kustomize(src: &[u8], image: &str, field: &str, value: &str) {
    let path = kustomize_path(image, field).ok();
    let before = path.as_ref().map(|p| get(src, p, &Document::Any));
    let result = set_kustomize_image(src, image, field, value);
    let out = match &result {
        Err(e) => {
            report("kustomize", e);
            return;
        }
        Ok(None) => {
            match &before {
                Some(Ok(s)) => assert_eq!(s.value, value, "Ok(None) but the value differs"),
                other => panic!("Ok(None) but the field is not there: {other:?}"),
            }
            return;
        }
        Ok(Some(out)) => out,
    };
    let path = path.expect("set_kustomize_image succeeded on a path kustomize_path refuses");
    match &before {
        Some(Ok(s)) => {
            check_scalar(src, s);
            check_replaced(src, s, out, &path, &Document::Any, value);
            report_ok("kustomize replaced");
        }
        _ => {
            // One inserted run of bytes, the input kept whole around it.
            let prefix = src
                .iter()
                .zip(out.iter())
                .take_while(|(a, b)| a == b)
                .count();
            let suffix = src
                .iter()
                .rev()
                .zip(out.iter().rev())
                .take_while(|(a, b)| a == b)
                .count();
            assert!(out.len() > src.len(), "an insertion made the file shorter");
            assert!(
                prefix + suffix >= src.len(),
                "more than one run of bytes changed (common prefix {prefix}, suffix {suffix})"
            );
            let after = get(out, &path, &Document::Any)
                .unwrap_or_else(|e| panic!("get on the output fails: {e}"));
            check_scalar(out, &after);
            assert_eq!(after.value, value, "the output does not hold the new value");
            report_ok("kustomize inserted");
        }
    }
    match set_kustomize_image(out, image, field, value) {
        Ok(None) => {}
        other => panic!("setting the same value again gives {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |&b| b == b'\n');
    let (Some(head), Some(value), Some(doc), Some(yaml)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    let (Ok(head), Ok(value), Ok(doc)) = (
        std::str::from_utf8(head),
        std::str::from_utf8(value),
        std::str::from_utf8(doc),
    ) else {
        return;
    };
    let value = unescape(value);
    if let Some(rest) = head.strip_prefix("kustomize ") {
        let Some((image, field)) = rest.rsplit_once(' ') else {
            return;
        };
        kustomize(yaml, image, field, &value);
        return;
    }
    let Ok(path) = KeyPath::parse(head) else {
        return;
    };
    let doc = if doc.is_empty() {
        Document::Any
    } else {
        match Document::parse(doc) {
            Ok(d) => d,
            Err(_) => return,
        }
    };
    plain(yaml, &path, &doc, &value);
});
