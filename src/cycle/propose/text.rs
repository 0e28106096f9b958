//! What a pull request says: its title, its Markdown body, its options.
//!
//! Every value here may come from outside tagwatch: a tag from ECR, a
//! value a person wrote into a file. None may add a line to the title or
//! a row or a link to the body, so each is made one line ([`one_line`])
//! and, in the body's table, literal code ([`code`]).

use std::fmt::Write as _;

use time::OffsetDateTime;

use super::Member;
use crate::config::ProposalOptions;
use crate::trailers::format_time;

/// `payments: promote prod to 1.4.3`, or for a group
/// `backend: promote prod (payments 1.4.3, orders 2.0.1)`.
pub fn title(members: &[Member]) -> String {
    let text = match members {
        [one] if one.rollback.is_some() => format!(
            "{}: roll {} back to {}",
            one.app, one.target.env, one.promotion.to
        ),
        [one] => format!(
            "{}: promote {} to {}",
            one.app, one.target.env, one.promotion.to
        ),
        many => {
            let group = many[0].target.group.as_deref().unwrap_or(&many[0].app);
            let list: Vec<String> = many
                .iter()
                .map(|m| format!("{} {}", m.app, m.promotion.to))
                .collect();
            format!(
                "{group}: promote {} ({})",
                many[0].target.env,
                list.join(", ")
            )
        }
    };
    one_line(&text)
}

/// The request's Markdown: a table of the changes, where each value comes
/// from and how long it has run there, and a link to each image.
pub fn body(members: &[Member], base: &str, now: OffsetDateTime) -> String {
    let mut b = String::new();
    let _ = writeln!(
        b,
        "tagwatch proposes this promotion. Merging it deploys it; closing it declines these versions (a newer candidate opens a new request).\n"
    );
    let _ = writeln!(b, "| app | env | file | from | to | digest | pushed at |");
    let _ = writeln!(b, "|---|---|---|---|---|---|---|");
    for m in members {
        let p = &m.promotion;
        let _ = writeln!(
            b,
            "| {} | {} | {} | {} | {} | {} | {} |",
            cell(&p.app),
            cell(&p.env),
            code(m.target.file.as_str()),
            code(&p.from),
            code(&p.to),
            code(&p.digest),
            p.pushed_at
                .map(format_time)
                .unwrap_or_else(|| "unknown".into()),
        );
    }
    let _ = writeln!(b);
    for m in members {
        let p = &m.promotion;
        let origin = match (&m.rollback, &m.source) {
            (Some(r), _) => format!(
                "a rollback of {} ({}): {}; merging it denies {} for this env and those promoted from it",
                code(&r.of),
                r.cause.as_str(),
                cell(&r.reason),
                code(&r.of)
            ),
            (None, source) => match source {
                Some((env, Some(since))) => {
                    let ran = std::time::Duration::from_secs(
                        (now - *since).whole_seconds().max(0) as u64
                    );
                    format!(
                        "{} has run {} for {} (since {})",
                        cell(env),
                        code(&p.to),
                        humantime::format_duration(ran),
                        format_time(*since)
                    )
                }
                Some((env, None)) => format!("taken from {}", cell(env)),
                None => "the registry's newest match for the policy".to_string(),
            },
        };
        let _ = writeln!(
            b,
            "- **{}**: {origin}. [The image in the ECR console]({})",
            cell(&p.app),
            console_url(&p.image, &p.digest)
        );
        // A DR target is proposed only once its region holds the image.
        if let Some(replica) = &m.target.replica {
            let _ = writeln!(
                b,
                "  - replicated: {} holds {}:{} at the same digest",
                cell(&replica.location.label()),
                cell(&replica.repository),
                code(&p.to)
            );
        }
        // What the version passed, in the words of the gate's verdict.
        for (gate, found) in &m.passed {
            let _ = writeln!(b, "  - gate {} passed: {}", gate.as_str(), cell(found));
        }
    }
    let _ = writeln!(
        b,
        "\nEach commit carries the `Tagwatch-*` trailers, so once merged into {}, `tagwatch history` lists it.",
        code(base)
    );
    b
}

/// The union of the members' labels, reviewers and assignees; draft or
/// auto-merge if any member asks for it.
pub fn options(members: &[Member]) -> ProposalOptions {
    let mut o = ProposalOptions::default();
    for m in members {
        let p = &m.target.proposal;
        for (all, more) in [
            (&mut o.labels, &p.labels),
            (&mut o.reviewers, &p.reviewers),
            (&mut o.assignees, &p.assignees),
        ] {
            for item in more {
                if !all.contains(item) {
                    all.push(item.clone());
                }
            }
        }
        o.draft |= p.draft;
        o.auto_merge |= p.auto_merge;
    }
    o
}

/// The ECR console page of an image, from its registry host
/// (`ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO`) and digest.
pub fn console_url(image: &str, digest: &str) -> String {
    let (host, repository) = image.split_once('/').unwrap_or((image, ""));
    let mut parts = host.split('.');
    let account = parts.next().unwrap_or_default();
    let region = parts.nth(2).unwrap_or_default();
    let url = format!(
        "https://{region}.console.aws.amazon.com/ecr/repositories/private/{account}/{repository}/_/image/{digest}/details?region={region}"
    );
    // A link target ends at whitespace or `)`; neither belongs in one.
    url.chars()
        .filter(|c| !c.is_whitespace() && !c.is_control() && *c != ')' && *c != '(')
        .collect()
}

/// `text` on one line: control characters (a newline above all) shown as
/// escapes, so no value can start a line of its own.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Plain text in a Markdown table cell: one line, and no character that
/// Markdown would read as structure (a `|` ends the cell, `<` starts HTML,
/// `[` a link, `*`/`_` emphasis, `` ` `` code).
fn cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in one_line(text).chars() {
        if matches!(
            c,
            '|' | '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '!' | '~'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Literal code in a table cell: one line, fenced with more backticks than
/// it holds, and `|` escaped (GitHub splits cells on it even inside code).
fn code(text: &str) -> String {
    let line = one_line(text).replace('|', "\\|");
    let longest = line.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if line.starts_with('`') || line.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{line}{pad}{fence}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newline_in_a_value_cannot_add_a_line() {
        assert_eq!(one_line("1.0\nTagwatch-To: 9"), "1.0\\nTagwatch-To: 9");
        assert!(!code("a\nb").contains('\n'));
    }

    #[test]
    fn a_pipe_or_backtick_cannot_break_the_table() {
        assert_eq!(code("1.0"), "`1.0`");
        assert_eq!(code("a|b"), "`a\\|b`");
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(cell("x|[y](http://e)"), "x\\|\\[y\\](http://e)");
    }

    #[test]
    fn console_links_cannot_be_closed_early() {
        let url = console_url(
            "123.dkr.ecr.eu-west-1.amazonaws.com/a) [x](http://evil",
            "sha256:1",
        );
        assert!(!url.contains(')') && !url.contains(' '), "{url}");
    }
}
