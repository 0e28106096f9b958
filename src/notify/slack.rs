//! Slack messages: one per event, or one summary for a large cycle. Pure;
//! delivery is `super`'s. Text is Slack's mrkdwn, with every value from a
//! registry, a file or an error escaped (`&`, `<`, `>`), so no tag or
//! message can become a link or a mention.

use serde_json::{Value, json};

use super::event::Event;
use crate::config::EventKind;

/// More events than this in one cycle (for one sink) are sent as one
/// summary message: a 200-app release is one message, not 200.
pub const SUMMARY_OVER: usize = 10;
/// Lines of events a summary lists before "and N more".
const SUMMARY_LINES: usize = 10;

/// The messages for one cycle's events.
pub fn messages(events: &[&Event]) -> Vec<Value> {
    if events.len() > SUMMARY_OVER {
        return vec![summary(events)];
    }
    events
        .iter()
        .map(|e| json!({ "text": line(e, true) }))
        .collect()
}

fn summary(events: &[&Event]) -> Value {
    let mut counts: Vec<(EventKind, usize)> = Vec::new();
    for e in events {
        match counts.iter_mut().find(|(k, _)| *k == e.event) {
            Some((_, n)) => *n += 1,
            None => counts.push((e.event, 1)),
        }
    }
    counts.sort();
    let counts: Vec<String> = counts
        .iter()
        .map(|(k, n)| format!("{n} {}", k.as_str()))
        .collect();
    // Failures first: they are what someone has to act on.
    let mut listed: Vec<&&Event> = events.iter().collect();
    listed.sort_by_key(|e| e.event != EventKind::Failed);
    let mut text = format!(
        ":package: tagwatch: {} events this cycle ({})",
        events.len(),
        counts.join(", ")
    );
    for e in listed.iter().take(SUMMARY_LINES) {
        text.push_str("\n• ");
        text.push_str(&line(e, false));
    }
    if events.len() > SUMMARY_LINES {
        text.push_str(&format!("\n…and {} more", events.len() - SUMMARY_LINES));
    }
    json!({ "text": text })
}

/// One event as one line: who, what, from → to, the links, the reason.
fn line(e: &Event, links: bool) -> String {
    let who = format!("*{}/{}*", esc(&e.app), esc(&e.env));
    let change = match (&e.from, &e.to) {
        (Some(f), Some(t)) => format!(" `{}` → `{}`", esc(f), esc(t)),
        (None, Some(t)) => format!(" → `{}`", esc(t)),
        _ => String::new(),
    };
    let (icon, verb) = match e.event {
        EventKind::Promoted => (":white_check_mark:", "promoted"),
        EventKind::Proposed => (":eyes:", "proposed"),
        EventKind::Merged => (":tada:", "merged"),
        EventKind::Waiting => (":hourglass_flowing_sand:", "waiting"),
        EventKind::Failed => (":x:", "failed"),
        EventKind::RolledBack => (":rewind:", "rolled back"),
        EventKind::Held => (":octagonal_sign:", "held"),
    };
    let mut text = format!("{icon} {who} {verb}{change}");
    if links {
        match (&e.url, &e.commit) {
            (Some(url), Some(commit)) => text.push_str(&format!(
                " · <{}|commit {}>",
                link(url),
                esc(&commit[..commit.len().min(12)])
            )),
            (None, Some(commit)) => text.push_str(&format!(
                " · commit `{}`",
                esc(&commit[..commit.len().min(12)])
            )),
            (Some(url), None) => text.push_str(&format!(" · <{}|pull request>", link(url))),
            (None, None) => {}
        }
        if let Some(ecr) = &e.ecr_url {
            text.push_str(&format!(" · <{}|ECR>", link(ecr)));
        }
    }
    if let Some(reason) = &e.reason {
        text.push_str(&format!(": {}", esc(&one_line(reason))));
    }
    text
}

/// Slack's three control characters, escaped as its docs ask.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A URL inside `<…|…>`: it ends at `|` or `>`, so neither may be in it.
fn link(url: &str) -> String {
    url.chars()
        .filter(|c| !matches!(c, '|' | '>' | '<') && !c.is_whitespace())
        .collect()
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind, app: &str) -> Event {
        Event {
            event: kind,
            app: app.into(),
            env: "prod".into(),
            from: Some("1.0.0".into()),
            to: Some("1.1.0<@here>".into()),
            commit: None,
            url: Some("https://github.com/acme/gitops/pull/7".into()),
            reason: None,
            time: "2026-11-21T10:00:00Z".into(),
            ecr_url: None,
        }
    }

    #[test]
    fn one_message_per_event_escaped_and_a_summary_over_ten() {
        let e = event(EventKind::Proposed, "web");
        let m = messages(&[&e]);
        assert_eq!(
            m[0]["text"],
            ":eyes: *web/prod* proposed `1.0.0` → `1.1.0&lt;@here&gt;` · <https://github.com/acme/gitops/pull/7|pull request>"
        );
        let many: Vec<Event> = (0..200)
            .map(|i| event(EventKind::Promoted, &format!("app{i}")))
            .collect();
        let refs: Vec<&Event> = many.iter().collect();
        let m = messages(&refs);
        assert_eq!(m.len(), 1);
        let text = m[0]["text"].as_str().unwrap();
        assert!(
            text.starts_with(":package: tagwatch: 200 events this cycle (200 promoted)"),
            "{text}"
        );
        assert!(text.ends_with("…and 190 more"), "{text}");
    }
}
