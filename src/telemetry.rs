//! Logging: human-readable on a terminal, JSON elsewhere (a pod's stdout is
//! read by a log pipeline, not a person). `RUST_LOG` overrides the level.
//! Also how a peer's error is put into one line ([`error_chain`]).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // try_init: a second call (tests) keeps the first subscriber.
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    } else {
        builder.try_init()
    };
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
    use super::error_chain;

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
