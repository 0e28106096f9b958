//! The commit message of a promotion, and reading it back.
//!
//! The `Tagwatch-*` trailers are a contract: `git interpret-trailers
//! --parse` reads them, and later features (history, soak times, duplicate
//! detection) derive their state from them instead of storing any. So the
//! format lives in exactly one place, here, as pure code.

use std::fmt::Write as _;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// One value change in one environment of one app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Promotion {
    pub app: String,
    pub env: String,
    /// Registry host and repository, e.g. `123456789012.dkr.ecr.eu-west-1.amazonaws.com/payments-api`.
    pub image: String,
    pub from: String,
    pub to: String,
    pub digest: String,
    pub pushed_at: Option<OffsetDateTime>,
}

/// Where the change was made; only for the human-readable body.
#[derive(Clone, Debug)]
pub struct Location<'a> {
    pub file: &'a str,
    pub key: &'a str,
}

impl Promotion {
    /// The subject, `payments: dev 1.4.2 -> 1.4.3`.
    pub fn subject(&self) -> String {
        format!("{}: {} {} -> {}", self.app, self.env, self.from, self.to)
    }

    /// The full commit message: subject, a body naming the file and key,
    /// and the trailers as the last paragraph (where git looks for them).
    pub fn message(&self, at: &Location<'_>) -> String {
        let mut m = String::new();
        let _ = writeln!(m, "{}", self.subject());
        let _ = writeln!(m);
        let _ = writeln!(m, "Set {} in {} to {}.", at.key, at.file, self.to);
        let _ = writeln!(m);
        for (key, value) in self.trailers() {
            let _ = writeln!(m, "{key}: {value}");
        }
        m
    }

    fn trailers(&self) -> Vec<(&'static str, String)> {
        let mut t = vec![
            ("Tagwatch-App", self.app.clone()),
            ("Tagwatch-Env", self.env.clone()),
            ("Tagwatch-Image", self.image.clone()),
            ("Tagwatch-From", self.from.clone()),
            ("Tagwatch-To", self.to.clone()),
            ("Tagwatch-Digest", self.digest.clone()),
        ];
        if let Some(at) = self.pushed_at {
            t.push(("Tagwatch-Pushed-At", format_time(at)));
        }
        t
    }

    /// Reads a promotion back from a commit message; `None` for commits
    /// tagwatch did not write. Only the last paragraph is read, as git does.
    pub fn parse(message: &str) -> Option<Promotion> {
        let last = message.trim_end().rsplit("\n\n").next()?;
        let get = |key: &str| {
            last.lines().find_map(|line| {
                let (k, v) = line.split_once(':')?;
                (k.trim() == key).then(|| v.trim().to_string())
            })
        };
        Some(Promotion {
            app: get("Tagwatch-App")?,
            env: get("Tagwatch-Env")?,
            image: get("Tagwatch-Image")?,
            from: get("Tagwatch-From")?,
            to: get("Tagwatch-To")?,
            digest: get("Tagwatch-Digest")?,
            pushed_at: get("Tagwatch-Pushed-At")
                .and_then(|s| OffsetDateTime::parse(&s, &Rfc3339).ok()),
        })
    }
}

/// RFC 3339 in UTC with whole seconds, `2026-11-21T10:00:00Z`, the form ECR
/// reports and people read.
pub fn format_time(t: OffsetDateTime) -> String {
    let t = t
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(t);
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Promotion {
        Promotion {
            app: "payments".into(),
            env: "dev".into(),
            image: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/payments-api".into(),
            from: "1.4.2".into(),
            to: "1.4.3".into(),
            digest: "sha256:0123abcd".into(),
            pushed_at: Some(time::macros::datetime!(2026-11-21 10:00:00 UTC)),
        }
    }

    #[test]
    fn message_has_subject_body_and_exact_trailers() {
        let m = sample().message(&Location {
            file: "envs/dev/payments/values.yaml",
            key: "image.tag",
        });
        assert_eq!(
            m,
            "payments: dev 1.4.2 -> 1.4.3\n\
             \n\
             Set image.tag in envs/dev/payments/values.yaml to 1.4.3.\n\
             \n\
             Tagwatch-App: payments\n\
             Tagwatch-Env: dev\n\
             Tagwatch-Image: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/payments-api\n\
             Tagwatch-From: 1.4.2\n\
             Tagwatch-To: 1.4.3\n\
             Tagwatch-Digest: sha256:0123abcd\n\
             Tagwatch-Pushed-At: 2026-11-21T10:00:00Z\n"
        );
    }

    #[test]
    fn message_parses_back() {
        let p = sample();
        let m = p.message(&Location {
            file: "f.yaml",
            key: "k",
        });
        assert_eq!(Promotion::parse(&m), Some(p));
        assert_eq!(
            Promotion::parse("fix: a typo\n\nSigned-off-by: x <y@z>\n"),
            None
        );
    }
}
