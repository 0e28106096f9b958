//! Facts for the cycle's decision tables (`plan_tests.rs`,
//! `source_tests.rs`): an app read from TOML through the real config
//! loader, a listing written as `(tag, digest, pushed seconds ago)`, and a
//! [`Branch`] made of a few maps. Included by both table files, so the two
//! read alike; it owns no rule of its own.
//!
//! Every table runs at the fixed clock [`NOW`], never the real one, so
//! `min_age` and `soak` rows cannot flake.

use std::collections::{HashMap, HashSet};

use time::OffsetDateTime;
use time::macros::datetime;

use crate::config::{App, RepoPath};
use crate::cycle::plan::{Branch, Unreadable};
use crate::registry::{Image, Listing};

/// The clock every row runs at.
pub const NOW: OffsetDateTime = datetime!(2026-11-21 10:00 UTC);

/// The moment `secs` seconds before [`NOW`] (after it, when negative).
pub fn ago(secs: i64) -> OffsetDateTime {
    NOW - time::Duration::seconds(secs)
}

/// The registry host of every listing here, as `{registry}` renders it.
pub const HOST: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";

/// Reads one app the way a user writes it. `app` is the body of an inline
/// TOML table of the app's keys (`strategy = "numeric", allow = '…'`);
/// each entry of `targets` is the same for one `[[apps.targets]]`, with
/// `env = "dev"`, `file = "{env}.yaml"` and `key = "image.tag"` filled in
/// when the row leaves them out. The config goes through
/// [`crate::config::load`], so a row cannot describe a target the loader
/// would refuse, and a typo in a row fails loudly.
pub fn app(app: &str, targets: &[&str]) -> App {
    let mut table = inline(app);
    table
        .entry("name")
        .or_insert_with(|| toml::Value::from("web"));
    table
        .entry("repository")
        .or_insert_with(|| toml::Value::from("web"));
    let targets: Vec<toml::Value> = targets
        .iter()
        .map(|written| {
            let mut target = inline(written);
            let env = target
                .entry("env")
                .or_insert_with(|| toml::Value::from("dev"))
                .as_str()
                .unwrap_or_else(|| panic!("row target {written:?}: env must be a string"))
                .to_string();
            target
                .entry("file")
                .or_insert_with(|| toml::Value::from(format!("{env}.yaml")));
            if !target.contains_key("kind") {
                target
                    .entry("key")
                    .or_insert_with(|| toml::Value::from("image.tag"));
            }
            toml::Value::Table(target)
        })
        .collect();
    table.insert("targets".into(), toml::Value::Array(targets));

    let mut doc = inline(
        r#"aws = { region = "eu-west-1" },
           git = { url = "https://git.example.com/gitops.git", branch = "main",
                   checkout_dir = "checkout", author = "tagwatch <tagwatch@acme.dev>" }"#,
    );
    doc.insert(
        "apps".into(),
        toml::Value::Array(vec![toml::Value::Table(table)]),
    );
    let text = toml::to_string(&doc).expect("a TOML table always serializes");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("tagwatch.toml");
    std::fs::write(&path, &text).expect("writing the row's config");
    let mut config =
        crate::config::load(&path).unwrap_or_else(|e| panic!("row config is invalid: {e}\n{text}"));
    config.apps.remove(0)
}

/// The body of an inline table, as a table.
fn inline(written: &str) -> toml::Table {
    let doc: toml::Table = format!("row = {{ {} }}", written.replace('\n', " "))
        .parse()
        .unwrap_or_else(|e| panic!("row {written:?} is not TOML: {e}"));
    match doc.get("row") {
        Some(toml::Value::Table(table)) => table.clone(),
        _ => unreachable!("the wrapper always makes a table"),
    }
}

/// A listing of repository `web`: `(tag, digest, pushed seconds before NOW)`.
pub fn images(written: &[(&str, &str, i64)]) -> Listing {
    Listing {
        repository: "web".into(),
        registry_id: "123456789012".into(),
        region: "eu-west-1".into(),
        images: written
            .iter()
            .map(|&(tag, digest, secs)| Image {
                tag: tag.into(),
                digest: digest.into(),
                pushed_at: Some(ago(secs)),
            })
            .collect(),
        pages: 1,
        ..Listing::default()
    }
}

/// The file every target of the tables writes, holding `value` at
/// `image.tag`.
pub fn values(value: &str) -> String {
    format!("# web\nimage:\n  repository: web\n  tag: {value}\n")
}

/// The branch as a few maps.
#[derive(Default)]
pub struct Facts {
    files: HashMap<RepoPath, Vec<u8>>,
    unreadable: HashSet<RepoPath>,
    /// digest → the tag the promotion that wrote it named.
    tags: HashMap<String, String>,
    /// (env, value) → since when the env holds it.
    since: HashMap<(String, String), OffsetDateTime>,
}

fn path(raw: &str) -> RepoPath {
    RepoPath::new(raw).unwrap_or_else(|e| panic!("row path {raw:?}: {e}"))
}

impl Facts {
    /// `{env}.yaml` holds `value` at `image.tag`.
    pub fn holds(self, env: &str, value: &str) -> Facts {
        self.file(&format!("{env}.yaml"), &values(value))
    }

    pub fn file(mut self, at: &str, text: &str) -> Facts {
        self.files.insert(path(at), text.as_bytes().to_vec());
        self
    }

    /// Reading `at` fails, as in a damaged clone.
    pub fn unreadable(mut self, at: &str) -> Facts {
        self.unreadable.insert(path(at));
        self
    }

    /// History says `env` has held `value` since `secs` seconds before NOW.
    pub fn since(mut self, env: &str, value: &str, secs: i64) -> Facts {
        self.since
            .insert((env.to_string(), value.to_string()), ago(secs));
        self
    }

    /// History says the promotion that wrote `digest` named `tag`.
    pub fn tag_of(mut self, digest: &str, tag: &str) -> Facts {
        self.tags.insert(digest.to_string(), tag.to_string());
        self
    }
}

impl Branch for Facts {
    fn read(&self, path: &RepoPath) -> Result<Option<Vec<u8>>, Unreadable> {
        if self.unreadable.contains(path) {
            return Err(Unreadable(format!("{path}: is a symbolic link")));
        }
        Ok(self.files.get(path).cloned())
    }

    fn tag_of_digest(&self, app: &str, _env: &str, digest: &str) -> Option<String> {
        assert_eq!(app, "web", "the tables have one app");
        self.tags.get(digest).cloned()
    }

    fn held_since(
        &self,
        app: &str,
        env: &str,
        value: &str,
        path: &RepoPath,
    ) -> Option<OffsetDateTime> {
        assert_eq!(app, "web", "the tables have one app");
        assert_eq!(
            path.as_str(),
            format!("{env}.yaml"),
            "asked about {env}'s file"
        );
        self.since
            .get(&(env.to_string(), value.to_string()))
            .copied()
    }
}

/// `Ok` when `text` says every one of `parts`; otherwise which it lacks.
pub fn contains_all(text: &str, parts: &[&str]) -> Result<(), String> {
    match parts.iter().find(|p| !text.contains(**p)) {
        Some(missing) => Err(format!("{text:?} does not say {missing:?}")),
        None => Ok(()),
    }
}

/// Runs every row of a table and reports all failures at once, each under
/// its rule. A row that panics (an `unreachable!` reached by a broken rule)
/// is one failure among the others, not the end of the table.
pub fn check_table<R>(
    what: &str,
    rows: &[R],
    rule: impl Fn(&R) -> &str,
    run: impl Fn(&R) -> Result<(), String>,
) {
    let failures: Vec<String> = rows
        .iter()
        .filter_map(|row| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(row)))
                .unwrap_or_else(|_| Err(format!("{}: panicked", rule(row))))
                .err()
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} {what} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}
