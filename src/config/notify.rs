//! `[[notify]]` blocks: where a cycle's promotions, proposals and failures
//! are announced (a Slack incoming webhook, or any HTTP endpoint taking
//! tagwatch's JSON), which events, for which apps and envs. Validated into
//! [`NotifySettings`]; building and delivering messages is
//! `crate::notify`'s.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;
use super::apps::App;
use super::source::Source;

/// Where notifications go and how they are shaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotifyKind {
    /// A Slack incoming webhook: one message per event, a summary for a
    /// large cycle.
    Slack,
    /// Any HTTPS endpoint: one signed JSON POST per cycle.
    Webhook,
}

impl NotifyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyKind::Slack => "slack",
            NotifyKind::Webhook => "webhook",
        }
    }
}

/// What can be announced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    /// Committed and pushed.
    Promoted,
    /// A pull request opened, or rebuilt with new values.
    Proposed,
    /// A proposed value reached the branch (the request was merged).
    Merged,
    /// A change waits (soak, gate, declined request); sent when the reason
    /// or candidate changes, not every cycle.
    Waiting,
    /// A target failed; sent when the error changes, not every cycle.
    Failed,
    /// An env was rolled back (the rollback work's outcome).
    RolledBack,
    /// A target is held (the rollback work's hold).
    Held,
}

impl EventKind {
    pub const ALL: [EventKind; 7] = [
        EventKind::Promoted,
        EventKind::Proposed,
        EventKind::Merged,
        EventKind::Waiting,
        EventKind::Failed,
        EventKind::RolledBack,
        EventKind::Held,
    ];
    /// Without `events`.
    pub const DEFAULT: [EventKind; 3] =
        [EventKind::Promoted, EventKind::Proposed, EventKind::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Promoted => "promoted",
            EventKind::Proposed => "proposed",
            EventKind::Merged => "merged",
            EventKind::Waiting => "waiting",
            EventKind::Failed => "failed",
            EventKind::RolledBack => "rolled_back",
            EventKind::Held => "held",
        }
    }

    fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One `[[notify]]` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifySettings {
    pub kind: NotifyKind,
    /// A file holding the URL, which is itself a secret (a Slack webhook
    /// URL lets anyone post); read on every delivery, never logged.
    pub url_file: PathBuf,
    /// Webhook only: the HMAC-SHA256 key for `X-Tagwatch-Signature`.
    pub secret_file: Option<PathBuf>,
    pub events: BTreeSet<EventKind>,
    /// Only these apps; empty is every app.
    pub apps: Vec<String>,
    /// Only these envs; empty is every env.
    pub envs: Vec<String>,
}

impl NotifySettings {
    /// Whether an event of `kind` for `app`/`env` goes to this sink.
    pub fn wants(&self, kind: EventKind, app: &str, env: &str) -> bool {
        self.events.contains(&kind)
            && (self.apps.is_empty() || self.apps.iter().any(|a| a == app))
            && (self.envs.is_empty() || self.envs.iter().any(|e| e == env))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    kind: Option<Spanned<String>>,
    url_file: Option<Spanned<String>>,
    secret_file: Option<Spanned<String>>,
    events: Option<Spanned<Vec<Spanned<String>>>>,
    apps: Option<Vec<Spanned<String>>>,
    envs: Option<Vec<Spanned<String>>>,
}

/// Validates every `[[notify]]` block against the apps they may name.
pub(super) fn validate_notify(
    src: &Source<'_>,
    base: &Path,
    raw: &[Spanned<RawNotify>],
    apps: &[App],
) -> Result<Vec<NotifySettings>, ConfigError> {
    raw.iter()
        .enumerate()
        .map(|(i, block)| validate_one(src, base, i, block, apps))
        .collect()
}

fn validate_one(
    src: &Source<'_>,
    base: &Path,
    i: usize,
    block: &Spanned<RawNotify>,
    apps: &[App],
) -> Result<NotifySettings, ConfigError> {
    let raw = block.get_ref();
    let key = |k: &str| format!("notify[{i}].{k}");
    let kind = src.required(&raw.kind, Some(block.span()), &key("kind"))?;
    let kind = match kind.get_ref().as_str() {
        "slack" => NotifyKind::Slack,
        "webhook" => NotifyKind::Webhook,
        other => {
            return Err(src.error(
                Some(kind.span()),
                key("kind"),
                format!("unknown kind {other:?}; expected \"slack\" or \"webhook\""),
            ));
        }
    };
    let url_file = src.required(&raw.url_file, Some(block.span()), &key("url_file"))?;
    let secret_file = match &raw.secret_file {
        Some(f) if kind == NotifyKind::Slack => {
            return Err(src.error(
                Some(f.span()),
                key("secret_file"),
                "is for kind = \"webhook\"; Slack's URL is its own secret",
            ));
        }
        Some(f) if f.get_ref().trim().is_empty() => {
            return Err(src.error(Some(f.span()), key("secret_file"), "must not be empty"));
        }
        Some(f) => Some(base.join(f.get_ref())),
        None => None,
    };
    let events = match &raw.events {
        None => EventKind::DEFAULT.into_iter().collect(),
        Some(list) if list.get_ref().is_empty() => {
            return Err(src.error(
                Some(list.span()),
                key("events"),
                "must name at least one event (or leave it out for promoted, proposed, failed)",
            ));
        }
        Some(list) => {
            let mut events = BTreeSet::new();
            for e in list.get_ref() {
                let kind = EventKind::parse(e.get_ref()).ok_or_else(|| {
                    let all: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                    src.error(
                        Some(e.span()),
                        key("events"),
                        format!(
                            "unknown event {:?}; expected any of {}",
                            e.get_ref(),
                            all.join(", ")
                        ),
                    )
                })?;
                events.insert(kind);
            }
            events
        }
    };
    // A name that matches nothing is a typo that would silence a channel.
    let names = |list: &Option<Vec<Spanned<String>>>,
                 what: &str,
                 known: &dyn Fn(&str) -> bool|
     -> Result<Vec<String>, ConfigError> {
        let mut out = Vec::new();
        for n in list.iter().flatten() {
            if !known(n.get_ref()) {
                return Err(src.error(
                    Some(n.span()),
                    key(what),
                    format!(
                        "no configured {} is named {:?}",
                        &what[..what.len() - 1],
                        n.get_ref()
                    ),
                ));
            }
            out.push(n.get_ref().clone());
        }
        Ok(out)
    };
    let app_names = names(&raw.apps, "apps", &|n| apps.iter().any(|a| a.name == n))?;
    let env_names = names(&raw.envs, "envs", &|n| {
        apps.iter().any(|a| a.targets.iter().any(|t| t.env == n))
    })?;
    Ok(NotifySettings {
        kind,
        url_file: base.join(url_file.get_ref()),
        secret_file,
        events,
        apps: app_names,
        envs: env_names,
    })
}
