//! Logging: human-readable on a terminal, JSON elsewhere (a pod's stdout is
//! read by a log pipeline, not a person). `RUST_LOG` overrides the level.
//! Also how a peer's error is put into one line ([`error_chain`]).
//!
//! In JSON, a field named with a dot is nested: `counts.promoted = 2,
//! counts.unchanged = 5` logs `"counts": {"promoted": 2, "unchanged": 5}`,
//! an object a log pipeline can index, where `?counts` would log a string
//! holding Rust's debug text. tracing's own structured values (`valuable`)
//! need an unstable cfg flag; dotted names work on stable.

use std::io::{IsTerminal, Write};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The `--log-format` flag.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Text on a terminal, JSON otherwise.
    #[default]
    Auto,
    Text,
    Json,
}

/// Installs the global subscriber. Logs go to stderr, so stdout stays
/// clean for command output that scripts read.
/// `default_level` applies when `RUST_LOG` is unset.
pub fn init(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // try_init: a second call (tests) keeps the first subscriber.
    let _ = if json {
        builder
            .with_writer(Nested)
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    } else {
        builder.with_writer(std::io::stderr).try_init()
    };
}

/// Stderr, with each JSON line's dotted field names nested ([`nest`]).
/// The formatter writes one event per writer, so the writer holds the line
/// and writes it, rewritten, when dropped.
struct Nested;

impl<'a> MakeWriter<'a> for Nested {
    type Writer = NestedLine;

    fn make_writer(&'a self) -> NestedLine {
        NestedLine(Vec::new())
    }
}

struct NestedLine(Vec<u8>);

impl Write for NestedLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for NestedLine {
    fn drop(&mut self) {
        let line = nest(&self.0);
        let _ = std::io::stderr().lock().write_all(&line);
    }
}

/// One JSON log line with each top-level `a.b` key moved into an object
/// `a`. A line without such a key (almost all of them) is returned as
/// written, byte for byte; so is anything that is not a JSON object.
fn nest(line: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    use serde_json::{Map, Value};
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(line) else {
        return line.into();
    };
    if !fields.keys().any(|k| k.contains('.')) {
        return line.into();
    }
    let mut out = Map::new();
    let mut dotted = Vec::new();
    for (key, value) in fields {
        match key.split_once('.') {
            Some((outer, inner)) if !outer.is_empty() && !inner.is_empty() => {
                dotted.push((outer.to_string(), inner.to_string(), value))
            }
            _ => {
                out.insert(key, value);
            }
        }
    }
    for (outer, inner, value) in dotted {
        match out
            .entry(outer.clone())
            .or_insert_with(|| Value::Object(Map::new()))
        {
            Value::Object(object) => {
                object.insert(inner, value);
            }
            // A plain field already has the name: keep the dotted one flat.
            _ => {
                out.insert(format!("{outer}.{inner}"), value);
            }
        }
    }
    let mut text = Value::Object(out).to_string().into_bytes();
    text.push(b'\n');
    text.into()
}

/// An error and its causes in one line, `outer: cause: root cause`, each
/// by its `Display`. The AWS SDK's own `DisplayErrorContext` appends the
/// whole error's `Debug` (a response's headers and internals), which is
/// noise in a log line and on `/status`. A cause whose text the previous
/// one already ends with is left out.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{error_chain, nest};

    /// Issue 13: the cycle summary's `counts` reached JSON logs as a string
    /// of Rust debug text. Dotted fields become an object.
    #[test]
    fn json_counts_are_an_object_not_a_string() {
        let line = br#"{"timestamp":"t","level":"INFO","message":"cycle finished","counts.promoted":2,"counts.unchanged":5,"elapsed":"1s"}"#;
        let nested: serde_json::Value = serde_json::from_slice(&nest(line)).unwrap();
        assert_eq!(
            nested["counts"],
            serde_json::json!({"promoted": 2, "unchanged": 5})
        );
        assert_eq!(nested["message"], "cycle finished");
        assert!(nested.get("counts.promoted").is_none());
        assert!(nest(line).ends_with(b"\n"));
        // Lines without dotted keys, and non-JSON, pass through untouched.
        let plain = b"{\"message\":\"x\",\"b\":1,\"a\":2}\n";
        assert_eq!(&*nest(plain), plain);
        assert_eq!(&*nest(b"not json\n"), b"not json\n");
        // A plain field of the same name wins; the dotted one stays flat.
        let clash = br#"{"counts":"x","counts.promoted":1}"#;
        let kept: serde_json::Value = serde_json::from_slice(&nest(clash)).unwrap();
        assert_eq!(
            (kept["counts"].as_str(), kept["counts.promoted"].as_u64()),
            (Some("x"), Some(1))
        );
    }

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct E {
        text: &'static str,
        #[source]
        source: Option<Box<E>>,
    }

    fn e(text: &'static str, source: Option<E>) -> E {
        E {
            text,
            source: source.map(Box::new),
        }
    }

    #[test]
    fn causes_are_joined_and_repeats_left_out() {
        let root = e("Connection reset by peer (os error 104)", None);
        let mid = e("connection error", Some(root));
        let same = e("connection error", Some(mid));
        let top = e("dispatch failure", Some(same));
        assert_eq!(
            error_chain(&top),
            "dispatch failure: connection error: Connection reset by peer (os error 104)"
        );
    }
}
