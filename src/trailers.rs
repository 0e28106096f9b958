//! The commit message of a promotion, and reading it back.
//!
//! The `Tagwatch-*` trailers are a contract: `git interpret-trailers
//! --parse` reads them, and later features (history, soak times, duplicate
//! detection) derive their state from them instead of storing any. So the
//! format lives in exactly one place, here, as pure code.
//!
//! Every value written into a message goes through [`one_line`] first: the
//! held value comes from a file anyone with write access can edit, and a
//! registry may hold a tag with a newline in it (moto does; ECR does not).
//! Unescaped, `1.0.0\n\nTagwatch-App: …` would end the paragraph and start
//! a forged trailer block inside a commit tagwatch authored (and may sign).
//! Reading back refuses any value with a control character, and any key
//! given twice, so a message that got round the escaping is not a record.

use std::borrow::Cow;
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
        format!(
            "{}: {} {} -> {}",
            one_line(&self.app),
            one_line(&self.env),
            one_line(&self.from),
            one_line(&self.to)
        )
    }

    /// The full commit message: subject, a body naming the file and key,
    /// and the trailers as the last paragraph (where git looks for them).
    pub fn message(&self, at: &Location<'_>) -> String {
        let mut m = String::new();
        let _ = writeln!(m, "{}", self.subject());
        let _ = writeln!(m);
        let _ = writeln!(
            m,
            "Set {} in {} to {}.",
            one_line(at.key),
            one_line(at.file),
            one_line(&self.to)
        );
        let _ = writeln!(m);
        for (key, value) in self.trailers() {
            let _ = writeln!(m, "{key}: {}", one_line(&value));
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
    /// A value with a control character, or a `Tagwatch-*` key given twice,
    /// makes the whole message `None`: tagwatch never writes either, so such
    /// a message is not one of its records.
    pub fn parse(message: &str) -> Option<Promotion> {
        let last = message.trim_end().rsplit("\n\n").next()?;
        let get = |key: &str| {
            // `split('\n')`, not `lines()`: a carriage return before the
            // newline is part of the value, and refused with it.
            let mut values = last.split('\n').filter_map(|line| {
                let (k, v) = line.split_once(':')?;
                (k.trim() == key).then_some(v)
            });
            let value = values.next()?;
            if values.next().is_some() || value.chars().any(needs_escape) {
                return None;
            }
            Some(value.trim().to_string())
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

/// `value` as it may stand on one line of a commit message, a pull
/// request's title or a log line: each control character (newline, carriage
/// return, tab, escape, DEL, C1) and each Unicode line or paragraph
/// separator becomes a visible `\u{..}` escape. Everything else is kept, so
/// an ordinary tag or value reads as written, and nothing is refused: the
/// record of what was written stays, it just cannot break a line.
pub fn one_line(value: &str) -> Cow<'_, str> {
    if !value.chars().any(needs_escape) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        if needs_escape(c) {
            let _ = write!(out, "{}", c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `value` as a Markdown code span that is safe in a table cell of a pull
/// request's body: on one line ([`one_line`]), `|` escaped (GitHub and
/// GitLab split cells on it even inside code), and fenced with more
/// backticks than any run inside it, so a value cannot close the span and
/// inject a link, an image or a mention.
pub fn markdown_code(value: &str) -> String {
    let text = one_line(value).replace('|', "\\|");
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    // A span that starts or ends with a backtick needs a space inside the
    // fence; CommonMark strips one space from each side.
    if text.starts_with('`') || text.ends_with('`') {
        format!("{fence} {text} {fence}")
    } else {
        format!("{fence}{text}{fence}")
    }
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
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

    /// Issue 13 item 13: a held value and a tag crafted to end the paragraph
    /// and start a trailer block of their own stay on their own lines.
    #[test]
    fn crafted_newlines_cannot_forge_trailers() {
        let forged = "1.0.0\n\nTagwatch-App: billing\nTagwatch-Env: prod\nTagwatch-Image: x\nTagwatch-From: 0\nTagwatch-To: 6.6.6\nTagwatch-Digest: sha256:evil";
        let p = Promotion {
            from: forged.into(),
            to: "1.4.3\r\nTagwatch-To: 9".into(),
            ..sample()
        };
        let m = p.message(&Location {
            file: "envs/dev\n\nTagwatch-App: x/values.yaml",
            key: "image.tag",
        });
        // Subject, blank, body, blank, seven trailers: nothing else.
        let lines: Vec<&str> = m.lines().collect();
        assert_eq!(lines.len(), 11, "{m}");
        assert_eq!(
            lines[0],
            "payments: dev 1.0.0\\u{a}\\u{a}Tagwatch-App: billing\\u{a}Tagwatch-Env: prod\\u{a}Tagwatch-Image: x\\u{a}Tagwatch-From: 0\\u{a}Tagwatch-To: 6.6.6\\u{a}Tagwatch-Digest: sha256:evil -> 1.4.3\\u{d}\\u{a}Tagwatch-To: 9"
        );
        assert_eq!(
            lines[4..]
                .iter()
                .filter(|l| l.starts_with("Tagwatch-App:"))
                .count(),
            1
        );
        // It reads back as what tagwatch wrote, escapes and all; the app
        // and env are the real ones.
        let back = Promotion::parse(&m).expect("still a promotion");
        assert_eq!((back.app.as_str(), back.env.as_str()), ("payments", "dev"));
        assert_eq!(back.to, "1.4.3\\u{d}\\u{a}Tagwatch-To: 9");
        assert!(!back.from.contains('\n'));
    }

    #[test]
    fn one_line_escapes_only_what_breaks_a_line() {
        #[rustfmt::skip]
        let rows = [
            ("1.4.3", "1.4.3"),
            ("main-102-aaaaaaa", "main-102-aaaaaaa"),
            ("a\nb", "a\\u{a}b"),
            ("a\r\n", "a\\u{d}\\u{a}"),
            ("tab\there", "tab\\u{9}here"),
            ("\u{1b}[31mred", "\\u{1b}[31mred"),
            ("del\u{7f}", "del\\u{7f}"),
            ("c1\u{85}", "c1\\u{85}"),
            ("ls\u{2028}ps\u{2029}", "ls\\u{2028}ps\\u{2029}"),
            ("ünïcode ok", "ünïcode ok"),
        ];
        for (value, want) in rows {
            assert_eq!(one_line(value), want, "{value:?}");
        }
        assert!(matches!(one_line("1.4.3"), Cow::Borrowed(_)));
    }

    #[test]
    fn markdown_code_cannot_leave_its_span_or_cell() {
        #[rustfmt::skip]
        let rows = [
            ("1.4.3", "`1.4.3`"),
            ("a|b", "`a\\|b`"),
            ("x`](https://evil)`", "`` x`](https://evil)` ``"),
            ("``", "``` `` ```"),
            ("1.0\n| forged | row |", "`1.0\\u{a}\\| forged \\| row \\|`"),
        ];
        for (value, want) in rows {
            assert_eq!(markdown_code(value), want, "{value:?}");
        }
    }

    #[test]
    fn parse_refuses_control_characters_and_repeated_keys() {
        let good = sample().message(&Location {
            file: "f.yaml",
            key: "k",
        });
        assert!(Promotion::parse(&good).is_some());
        // A carriage return or an escape sequence inside a value: not ours.
        let cr = good.replace("Tagwatch-To: 1.4.3", "Tagwatch-To: 1.4.3\r");
        assert_eq!(Promotion::parse(&cr), None);
        let esc = good.replace("Tagwatch-To: 1.4.3", "Tagwatch-To: \u{1b}[2K1.4.3");
        assert_eq!(Promotion::parse(&esc), None);
        // A key given twice: which one is true? Neither.
        let twice = good.replace(
            "Tagwatch-Env: dev\n",
            "Tagwatch-Env: dev\nTagwatch-Env: prod\n",
        );
        assert_eq!(Promotion::parse(&twice), None);
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
