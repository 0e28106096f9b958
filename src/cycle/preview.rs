//! Preview environments, decided: given one `[[apps.previews]]` block, the
//! repository's listing, the preview files the branch holds (and whether
//! tagwatch created each), the forge's word on each pull request and the
//! clock, what to do with each preview number. Pure, so every rule is a
//! table row; the cycle (`write.rs`) fetches the facts and carries the
//! actions out in the same commit-and-one-push as the targets' changes.
//!
//! The rules, in the order they are applied to one number:
//! 1. a file a person wrote at a preview path is never touched (reported);
//! 2. no tag for the number left in the registry → the file is removed;
//! 3. the pull request closed or merged (with `[forge]`) → removed;
//! 4. its newest image older than `ttl` → removed;
//! 5. a newer tag → the file's one scalar is updated, byte-minimally;
//! 6. no file yet → created from the template, newest previews first,
//!    until `max_previews` exist.
//!
//! A failed listing decides nothing: an empty answer must never read as
//! "every image is gone".

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use time::OffsetDateTime;

use crate::config::{App, Preview, RepoPath};
use crate::forge::State;
use crate::image::{Image, Listing};
use crate::manifest::{self, Document};
use crate::trailers::{format_time, one_line};

/// The trailer that marks a commit as the one that created a preview file.
pub const TRAILER: &str = "Tagwatch-Preview";

/// One preview file as the branch holds it.
#[derive(Clone, Debug)]
pub struct FileFact {
    pub path: RepoPath,
    pub content: Vec<u8>,
    /// Its creating commit carries `Tagwatch-Preview: N` for this number.
    pub by_tagwatch: bool,
}

/// Everything one block's decision rests on.
pub struct Facts<'a> {
    /// (app, block) indices in the config.
    pub at: (usize, usize),
    pub app: &'a App,
    pub preview: &'a Preview,
    /// `None` when the listing failed (the error is reported by the targets).
    pub listing: Option<&'a Listing>,
    /// The preview files on the branch, by number.
    pub files: &'a BTreeMap<u64, FileFact>,
    /// The template's content: `Ok(None)` when the branch has no such file.
    pub template: &'a Result<Option<Vec<u8>>, String>,
    /// The forge's answer per number; a number missing here is not known
    /// (no `[forge]`, or the lookup failed) and never removes a preview.
    pub states: &'a HashMap<u64, State>,
    pub now: OffsetDateTime,
}

/// Why a preview is removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    NoImage,
    Closed,
    Merged,
    Expired,
}

impl Why {
    pub fn as_str(self) -> &'static str {
        match self {
            Why::NoImage => "no image left",
            Why::Closed => "pull request closed",
            Why::Merged => "pull request merged",
            Why::Expired => "older than ttl",
        }
    }
}

/// What happens to one preview number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Create {
        content: Vec<u8>,
    },
    Update {
        from: String,
        content: Vec<u8>,
    },
    Remove {
        why: Why,
    },
    /// Live and on its newest image.
    Keep,
    /// Not created, or left alone; `reason` says why.
    Skip {
        reason: String,
    },
    /// This preview could not be made (template, key); others go on.
    Fail {
        error: String,
    },
}

impl Action {
    /// A fixed label, for metrics and JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Create { .. } => "created",
            Action::Update { .. } => "updated",
            Action::Remove { .. } => "removed",
            Action::Keep => "unchanged",
            Action::Skip { .. } => "skipped",
            Action::Fail { .. } => "failed",
        }
    }

    /// Whether the action writes a commit.
    pub fn writes(&self) -> bool {
        matches!(
            self,
            Action::Create { .. } | Action::Update { .. } | Action::Remove { .. }
        )
    }
}

/// One preview number's decision.
#[derive(Clone, Debug)]
pub struct Planned {
    /// (app, block) indices in the config.
    pub at: (usize, usize),
    pub app: String,
    pub pr: u64,
    pub file: RepoPath,
    /// The newest matching image, when the registry holds one.
    pub image: Option<Image>,
    pub state: Option<State>,
    /// Whether the file exists on the branch before this cycle.
    pub exists: bool,
    /// The file's content before this cycle (empty when there was none),
    /// for the dry run's diff.
    pub old: Vec<u8>,
    pub action: Action,
}

/// Decides every preview number of one block.
pub fn plan(f: &Facts<'_>) -> Vec<Planned> {
    let Some(listing) = f.listing else {
        return Vec::new();
    };
    let newest = newest_by_number(f.preview, &listing.images);
    let numbers: BTreeSet<u64> = newest.keys().chain(f.files.keys()).copied().collect();
    let mut out = Vec::new();
    let mut to_create = Vec::new();
    let mut live = 0usize;
    for n in numbers {
        let image = newest.get(&n).map(|i| (*i).clone());
        let file = f.files.get(&n);
        let path = match (file, f.preview.file_of(n)) {
            (Some(file), _) => file.path.clone(),
            (None, Ok(path)) => path,
            (None, Err(_)) => continue,
        };
        let state = f.states.get(&n).copied();
        let mut planned = Planned {
            at: f.at,
            app: f.app.name.clone(),
            pr: n,
            file: path,
            image: image.clone(),
            state,
            exists: file.is_some(),
            old: file.map(|f| f.content.clone()).unwrap_or_default(),
            action: Action::Keep,
        };
        let closed = match state {
            Some(State::Closed) => Some(Why::Closed),
            Some(State::Merged) => Some(Why::Merged),
            _ => None,
        };
        let expired = match (&image, f.preview.ttl) {
            (
                Some(Image {
                    pushed_at: Some(at),
                    ..
                }),
                Some(ttl),
            ) => (f.now - *at).unsigned_abs() > ttl && f.now > *at,
            _ => false,
        };
        planned.action = match (file, &image) {
            (Some(file), _) if !file.by_tagwatch => Action::Skip {
                reason: format!(
                    "{} was not created by tagwatch (no {TRAILER} trailer); left alone",
                    file.path
                ),
            },
            (Some(_), None) => Action::Remove { why: Why::NoImage },
            (Some(_), Some(_)) if closed.is_some() => Action::Remove {
                why: closed.unwrap_or(Why::Closed),
            },
            (Some(_), Some(_)) if expired => Action::Remove { why: Why::Expired },
            (Some(file), Some(image)) => {
                live += 1;
                update(f, listing, file, image)
            }
            (None, Some(_)) if closed.is_some() => Action::Skip {
                reason: closed.map(Why::as_str).unwrap_or_default().to_string(),
            },
            (None, Some(_)) if expired => Action::Skip {
                reason: Why::Expired.as_str().to_string(),
            },
            (None, Some(image)) => {
                to_create.push((image.pushed_at, image.tag.clone(), out.len()));
                create(f, listing, image)
            }
            (None, None) => continue,
        };
        out.push(planned);
    }
    // The cap: the newest previews are created first; the oldest wait for
    // a slot and say why.
    to_create.sort_by(|a, b| b.cmp(a));
    for (_, _, i) in to_create {
        if !matches!(out[i].action, Action::Create { .. }) {
            continue;
        }
        if live >= f.preview.max_previews {
            out[i].action = Action::Skip {
                reason: format!(
                    "max_previews ({}) reached; the oldest are not created",
                    f.preview.max_previews
                ),
            };
        } else {
            live += 1;
        }
    }
    out
}

/// The newest image (by push time, then tag) of each preview number.
fn newest_by_number<'a>(preview: &Preview, images: &'a [Image]) -> BTreeMap<u64, &'a Image> {
    let mut newest: BTreeMap<u64, &Image> = BTreeMap::new();
    for image in images {
        if !crate::policy::is_valid_tag(&image.tag) {
            continue;
        }
        let Some(n) = preview.number_of_tag(&image.tag) else {
            continue;
        };
        let slot = newest.entry(n).or_insert(image);
        if (image.pushed_at, &image.tag) > (slot.pushed_at, &slot.tag) {
            *slot = image;
        }
    }
    newest
}

/// The scalar's new text for `image`, in the block's `format`, given what
/// it holds now.
fn render(
    f: &Facts<'_>,
    listing: &Listing,
    current: &str,
    image: &Image,
) -> Result<String, String> {
    let host = listing.registry_host();
    let parts = crate::format::Parts {
        registry: &host,
        repository: &listing.repository,
        tag: &image.tag,
        digest: &image.digest,
    };
    f.preview.format.render(current, &parts)
}

fn create(f: &Facts<'_>, listing: &Listing, image: &Image) -> Action {
    let template = match f.template {
        Ok(Some(t)) => t,
        Ok(None) => {
            return Action::Fail {
                error: format!("template {} is not on the branch", f.preview.template),
            };
        }
        Err(e) => {
            return Action::Fail {
                error: format!("template {}: {e}", f.preview.template),
            };
        }
    };
    let current = match manifest::get(template, &f.preview.key, &Document::Any) {
        Ok(scalar) => scalar.value,
        Err(e) => {
            return Action::Fail {
                error: format!("template {}: {}: {e}", f.preview.template, f.preview.key),
            };
        }
    };
    let value = match render(f, listing, &current, image) {
        Ok(v) => v,
        Err(e) => {
            return Action::Fail {
                error: format!("template {}: {}: {e}", f.preview.template, f.preview.key),
            };
        }
    };
    match manifest::set(template, &f.preview.key, &Document::Any, &value) {
        Ok(Some(content)) => Action::Create { content },
        Ok(None) => Action::Create {
            content: template.clone(),
        },
        Err(e) => Action::Fail {
            error: format!("template {}: {}: {e}", f.preview.template, f.preview.key),
        },
    }
}

fn update(f: &Facts<'_>, listing: &Listing, file: &FileFact, image: &Image) -> Action {
    let current = match manifest::get(&file.content, &f.preview.key, &Document::Any) {
        Ok(scalar) => scalar.value,
        Err(e) => {
            return Action::Fail {
                error: format!("{}: {}: {e}", file.path, f.preview.key),
            };
        }
    };
    let value = match render(f, listing, &current, image) {
        Ok(v) => v,
        Err(e) => {
            return Action::Fail {
                error: format!("{}: {}: {e}", file.path, f.preview.key),
            };
        }
    };
    // What the file held, as a tag where the format tells it.
    let from = f
        .preview
        .format
        .current_tag(&current)
        .unwrap_or(&current)
        .to_string();
    match manifest::set(&file.content, &f.preview.key, &Document::Any, &value) {
        Ok(Some(content)) => Action::Update { from, content },
        Ok(None) => Action::Keep,
        Err(e) => Action::Fail {
            error: format!("{}: {}: {e}", file.path, f.preview.key),
        },
    }
}

/// What became of one preview in a cycle: the line `once` prints, a row
/// of `/status` and of `tagwatch previews`, a count in the metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub app: String,
    pub pr: u64,
    pub file: String,
    /// The newest image's tag, when the registry holds one.
    pub tag: Option<String>,
    pub pushed_at: Option<OffsetDateTime>,
    /// `open`, `closed`, `merged`, or `None` when not asked or not known.
    pub state: Option<&'static str>,
    /// `created`, `updated`, `removed`, `unchanged`, `skipped`, `failed`.
    pub action: &'static str,
    /// Why it was removed, skipped or failed.
    pub reason: Option<String>,
    /// The pushed commit, for a change that was written.
    pub commit: Option<String>,
    /// A dry run's decision: nothing was written.
    pub dry_run: bool,
    /// Whether the file is on the branch after the cycle (or would be).
    pub live: bool,
    /// Whether the file was on the branch before the cycle.
    pub existed: bool,
    /// A dry run's unified diff of the change, empty otherwise.
    pub diff: String,
}

impl Report {
    /// From a decision, once written (`commit`) or not (`error`).
    pub fn of(p: &Planned, dry_run: bool, commit: Option<String>, error: Option<String>) -> Report {
        let (mut action, mut reason) = (
            p.action.kind(),
            match &p.action {
                Action::Remove { why } => Some(why.as_str().to_string()),
                Action::Skip { reason } => Some(reason.clone()),
                Action::Fail { error } => Some(error.clone()),
                _ => None,
            },
        );
        let mut live = match &p.action {
            Action::Create { .. } | Action::Update { .. } | Action::Keep => true,
            Action::Remove { .. } => false,
            Action::Skip { .. } | Action::Fail { .. } => p.exists,
        };
        if let Some(error) = error.filter(|_| p.action.writes() && !dry_run) {
            action = "failed";
            reason = Some(error);
            live = p.exists;
        }
        Report {
            app: p.app.clone(),
            pr: p.pr,
            file: p.file.to_string(),
            tag: p.image.as_ref().map(|i| i.tag.clone()),
            pushed_at: p.image.as_ref().and_then(|i| i.pushed_at),
            state: p.state.map(state_str),
            action,
            reason,
            commit,
            dry_run,
            live,
            existed: p.exists,
            diff: String::new(),
        }
    }
}

impl Planned {
    /// The file's content after the action (empty for a removal), when the
    /// action writes.
    pub fn new_content(&self) -> Option<&[u8]> {
        match &self.action {
            Action::Create { content } | Action::Update { content, .. } => Some(content),
            Action::Remove { .. } => Some(&[]),
            _ => None,
        }
    }
}

impl std::fmt::Display for Report {
    /// `payments/preview pr-7: created pr-7-aaaaaaa (commit 1a2b3c4d5e6f)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/preview pr-{}: ", self.app, self.pr)?;
        let tag = self.tag.as_deref().unwrap_or("(no image)");
        let would = if self.dry_run { "would " } else { "" };
        let reason = self.reason.as_deref().unwrap_or("");
        match self.action {
            "created" => write!(
                f,
                "{would}{} {} at {tag}",
                if self.dry_run { "create" } else { "created" },
                self.file
            )?,
            "updated" => write!(
                f,
                "{would}{} to {tag}",
                if self.dry_run { "update" } else { "updated" }
            )?,
            "removed" => write!(
                f,
                "{would}{} {} ({reason})",
                if self.dry_run { "remove" } else { "removed" },
                self.file
            )?,
            "unchanged" => write!(f, "up to date at {tag}")?,
            "skipped" => write!(f, "skipped: {reason}")?,
            _ => write!(f, "failed: {reason}")?,
        }
        if let Some(commit) = &self.commit {
            write!(f, " (commit {})", &commit[..commit.len().min(12)])?;
        }
        Ok(())
    }
}

/// A pull request's state as the surfaces print it.
pub fn state_str(s: State) -> &'static str {
    match s {
        State::Open => "open",
        State::Closed => "closed",
        State::Merged => "merged",
    }
}

/// The commit message of a preview's create, update or removal: subject,
/// a body saying what and why, and the trailers (`Tagwatch-Preview` on
/// every one; only a create's marks the file as tagwatch's).
pub fn message(p: &Planned, image_name: &str, preview: &Preview) -> String {
    let app = one_line(&p.app);
    let n = p.pr;
    let mut m = String::new();
    let mut trailers: Vec<(&str, String)> = vec![("Tagwatch-App", p.app.clone())];
    match (&p.action, &p.image) {
        (Action::Create { .. }, Some(image)) => {
            let _ = writeln!(m, "{app}: preview pr-{n} -> {}\n", one_line(&image.tag));
            let _ = writeln!(
                m,
                "Created {} from {} with {} set to {}.",
                p.file,
                preview.template,
                preview.key,
                one_line(&image.tag)
            );
        }
        (Action::Update { from, .. }, Some(image)) => {
            let _ = writeln!(
                m,
                "{app}: preview pr-{n} {} -> {}\n",
                one_line(from),
                one_line(&image.tag)
            );
            let _ = writeln!(
                m,
                "Set {} in {} to {}.",
                preview.key,
                p.file,
                one_line(&image.tag)
            );
            trailers.push(("Tagwatch-From", from.clone()));
        }
        (Action::Remove { why }, _) => {
            let _ = writeln!(m, "{app}: remove preview pr-{n} ({})\n", why.as_str());
            let _ = writeln!(m, "Removed {}: {}.", p.file, why.as_str());
            trailers.push(("Tagwatch-Removed", why.as_str().to_string()));
        }
        _ => {
            let _ = writeln!(m, "{app}: preview pr-{n}\n");
        }
    }
    if let (Some(image), false) = (&p.image, matches!(p.action, Action::Remove { .. })) {
        trailers.push(("Tagwatch-Image", image_name.to_string()));
        trailers.push(("Tagwatch-To", image.tag.clone()));
        trailers.push(("Tagwatch-Digest", image.digest.clone()));
        if let Some(at) = image.pushed_at {
            trailers.push(("Tagwatch-Pushed-At", format_time(at)));
        }
    }
    trailers.push((TRAILER, n.to_string()));
    let _ = writeln!(m);
    for (k, v) in trailers {
        let _ = writeln!(m, "{k}: {}", one_line(&v));
    }
    m
}

/// The preview number a creating commit's message marks, if any: the
/// `Tagwatch-Preview` trailer in its last paragraph.
pub fn number_in(message: &str) -> Option<u64> {
    let last = message.trim_end().rsplit("\n\n").next()?;
    last.split('\n').find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == TRAILER).then(|| v.trim().parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cycle::table_facts::{NOW, ago};

    const TEMPLATE: &str = "# preview of payments\nimage:\n  repository: payments\n  tag: \"placeholder\" # set by tagwatch\n";

    fn app(extra: &str) -> App {
        let text = format!(
            r#"
[aws]
region = "eu-west-1"
[git]
url = "https://git.example.com/gitops.git"
branch = "main"
checkout_dir = "checkout"
author = "tagwatch <tagwatch@acme.dev>"
[[apps]]
name = "payments"
repository = "payments"
[[apps.targets]]
env = "dev"
file = "envs/dev/values.yaml"
key = "image.tag"
[[apps.previews]]
allow = '^pr-(?P<pr>\d+)-[0-9a-f]{{7,40}}$'
file = "previews/{{app}}/pr-{{pr}}.yaml"
template = "previews/{{app}}/_template.yaml"
key = "image.tag"
ttl = "72h"
{extra}
"#
        );
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("tagwatch.toml");
        std::fs::write(&path, text).expect("write config");
        let config = crate::config::load(&path).expect("config loads");
        config.apps[0].clone()
    }

    fn image(tag: &str, secs_ago: i64) -> Image {
        Image {
            tag: tag.into(),
            digest: format!("sha256:{:0>64}", tag.len()),
            pushed_at: Some(ago(secs_ago)),
        }
    }

    fn listing(images: Vec<Image>) -> Listing {
        Listing {
            repository: "payments".into(),
            registry_id: "123456789012".into(),
            region: "eu-west-1".into(),
            images,
            pages: 1,
            ..Listing::default()
        }
    }

    fn file(n: u64, tag: &str, by_tagwatch: bool) -> (u64, FileFact) {
        let content = TEMPLATE.replace("placeholder", tag).into_bytes();
        (
            n,
            FileFact {
                path: RepoPath::new(&format!("previews/payments/pr-{n}.yaml")).expect("path"),
                content,
                by_tagwatch,
            },
        )
    }

    struct Row {
        name: &'static str,
        images: Vec<Image>,
        files: Vec<(u64, FileFact)>,
        states: Vec<(u64, State)>,
        extra: &'static str,
        want: Vec<(u64, &'static str)>,
    }

    fn run(row: &Row) -> Vec<Planned> {
        let app = app(row.extra);
        let listing = listing(row.images.clone());
        let files: BTreeMap<_, _> = row.files.iter().cloned().collect();
        let template = Ok(Some(TEMPLATE.as_bytes().to_vec()));
        let states: HashMap<_, _> = row.states.iter().copied().collect();
        plan(&Facts {
            app: &app,
            at: (0, 0),
            preview: &app.previews[0],
            listing: Some(&listing),
            files: &files,
            template: &template,
            states: &states,
            now: NOW,
        })
    }

    #[test]
    fn table() {
        let rows = [
            Row {
                name: "a first image creates the preview",
                images: vec![image("pr-7-aaaaaaa", 60), image("1.0.0", 60)],
                files: vec![],
                states: vec![],
                extra: "",
                want: vec![(7, "created")],
            },
            Row {
                name: "a newer image updates it",
                images: vec![image("pr-7-aaaaaaa", 600), image("pr-7-bbbbbbb", 60)],
                files: vec![file(7, "pr-7-aaaaaaa", true)],
                states: vec![],
                extra: "",
                want: vec![(7, "updated")],
            },
            Row {
                name: "on its newest image it is left as is",
                images: vec![image("pr-7-aaaaaaa", 600), image("pr-7-bbbbbbb", 60)],
                files: vec![file(7, "pr-7-bbbbbbb", true)],
                states: vec![(7, State::Open)],
                extra: "",
                want: vec![(7, "unchanged")],
            },
            Row {
                name: "no image left removes it",
                images: vec![image("1.0.0", 60)],
                files: vec![file(7, "pr-7-aaaaaaa", true)],
                states: vec![],
                extra: "",
                want: vec![(7, "removed")],
            },
            Row {
                name: "a closed pull request removes it though its images remain",
                images: vec![image("pr-7-aaaaaaa", 60)],
                files: vec![file(7, "pr-7-aaaaaaa", true)],
                states: vec![(7, State::Closed)],
                extra: "",
                want: vec![(7, "removed")],
            },
            Row {
                name: "a merged pull request's preview is not created",
                images: vec![image("pr-8-aaaaaaa", 60)],
                files: vec![],
                states: vec![(8, State::Merged)],
                extra: "",
                want: vec![(8, "skipped")],
            },
            Row {
                name: "older than ttl removes it",
                images: vec![image("pr-7-aaaaaaa", 73 * 3600)],
                files: vec![file(7, "pr-7-aaaaaaa", true)],
                states: vec![],
                extra: "",
                want: vec![(7, "removed")],
            },
            Row {
                name: "a person's file at a preview path is never removed",
                images: vec![],
                files: vec![file(7, "pr-7-aaaaaaa", false)],
                states: vec![(7, State::Closed)],
                extra: "",
                want: vec![(7, "skipped")],
            },
            Row {
                name: "past max_previews the oldest are not created",
                images: vec![
                    image("pr-1-aaaaaaa", 300),
                    image("pr-2-aaaaaaa", 200),
                    image("pr-3-aaaaaaa", 100),
                ],
                files: vec![],
                states: vec![],
                extra: "max_previews = 2",
                want: vec![(1, "skipped"), (2, "created"), (3, "created")],
            },
            Row {
                name: "a removal frees a slot for a new preview",
                images: vec![image("pr-2-aaaaaaa", 100)],
                files: vec![file(1, "pr-1-aaaaaaa", true)],
                states: vec![],
                extra: "max_previews = 1",
                want: vec![(1, "removed"), (2, "created")],
            },
        ];
        for row in &rows {
            let got: Vec<(u64, &str)> = run(row).iter().map(|p| (p.pr, p.action.kind())).collect();
            assert_eq!(got, row.want, "{}", row.name);
        }
    }

    #[test]
    fn a_created_file_is_the_template_but_one_scalar() {
        let row = Row {
            name: "",
            images: vec![image("pr-7-aaaaaaa", 60)],
            files: vec![],
            states: vec![],
            extra: "",
            want: vec![],
        };
        let planned = run(&row);
        let Action::Create { content } = &planned[0].action else {
            panic!("{:?}", planned[0].action)
        };
        assert_eq!(
            String::from_utf8_lossy(content),
            TEMPLATE.replace("placeholder", "pr-7-aaaaaaa")
        );
    }

    #[test]
    fn a_format_writes_the_whole_reference() {
        let row = Row {
            name: "",
            images: vec![image("pr-7-aaaaaaa", 60)],
            files: vec![],
            states: vec![],
            extra: "format = \"{registry}/{repository}:{tag}\"",
            want: vec![],
        };
        let planned = run(&row);
        let Action::Create { content } = &planned[0].action else {
            panic!("{:?}", planned[0].action)
        };
        assert!(
            String::from_utf8_lossy(content).contains(
                "tag: \"123456789012.dkr.ecr.eu-west-1.amazonaws.com/payments:pr-7-aaaaaaa\""
            ),
            "{}",
            String::from_utf8_lossy(content)
        );
    }

    #[test]
    fn a_template_without_the_key_fails_that_preview_only() {
        let app = app("");
        let listing = listing(vec![image("pr-7-aaaaaaa", 60)]);
        let files = BTreeMap::new();
        let template = Ok(Some(b"other: 1\n".to_vec()));
        let planned = plan(&Facts {
            app: &app,
            at: (0, 0),
            preview: &app.previews[0],
            listing: Some(&listing),
            files: &files,
            template: &template,
            states: &HashMap::new(),
            now: NOW,
        });
        assert_eq!(planned[0].action.kind(), "failed");
    }

    #[test]
    fn a_failed_listing_removes_nothing() {
        let app = app("");
        let files: BTreeMap<_, _> = [file(7, "pr-7-aaaaaaa", true)].into_iter().collect();
        let planned = plan(&Facts {
            app: &app,
            at: (0, 0),
            preview: &app.previews[0],
            listing: None,
            files: &files,
            template: &Ok(None),
            states: &HashMap::new(),
            now: NOW,
        });
        assert!(planned.is_empty());
    }

    #[test]
    fn the_message_carries_the_preview_trailer() {
        let app = app("");
        let p = Planned {
            at: (0, 0),
            app: "payments".into(),
            pr: 42,
            file: RepoPath::new("previews/payments/pr-42.yaml").expect("path"),
            image: Some(image("pr-42-abc1234", 60)),
            state: None,
            exists: false,
            old: Vec::new(),
            action: Action::Create { content: vec![] },
        };
        let m = message(&p, "reg/payments", &app.previews[0]);
        assert!(
            m.starts_with("payments: preview pr-42 -> pr-42-abc1234\n"),
            "{m}"
        );
        assert_eq!(number_in(&m), Some(42));
        assert_eq!(number_in("fix: by hand\n\nSigned-off-by: x"), None);
    }
}
