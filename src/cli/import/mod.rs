//! `tagwatch import`: turns another tool's image-automation settings (Argo CD
//! Image Updater's annotations and `ImageUpdater` resources, Flux's image
//! policies and setter markers) into a tagwatch configuration.
//!
//! Owns the flow and the shared model: each reader (`argocd`, `flux`) turns
//! YAML into [`Candidate`]s and [`Warning`]s without deciding anything about
//! the output; [`assemble`] then decides the registry, the git remote, the
//! app names and which candidates are dropped, in one place, and `emit`
//! prints the result. Nothing here touches the network or the config module:
//! the output is checked by `tagwatch check` like any hand-written file.

mod argocd;
mod emit;
mod flux;
mod yaml;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::{EXIT_FAILED, EXIT_USAGE};
use crate::policy::{Policy, PolicySpec};

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    #[command(subcommand)]
    source: ImportSource,
}

#[derive(clap::Subcommand, Debug)]
enum ImportSource {
    /// Argo CD Applications with Image Updater annotations, and
    /// `ImageUpdater` resources (argocd-image-updater.argoproj.io/v1alpha1).
    #[command(name = "argocd-image-updater")]
    ArgocdImageUpdater(Common),
    /// Flux ImageRepository, ImagePolicy and ImageUpdateAutomation objects,
    /// plus the setter markers in the files under each automation's
    /// `update.path`.
    Flux {
        #[command(flatten)]
        common: Common,
        /// The checkout of the GitOps repository that `update.path` is
        /// relative to; target files are written relative to it.
        #[arg(long, default_value = ".")]
        repo_root: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
struct Common {
    /// The GitOps remote, when the input does not name one (or to override it).
    #[arg(long)]
    git_url: Option<String>,
    /// The branch tagwatch pushes to (else the input's, else `main`).
    #[arg(long)]
    branch: Option<String>,
    /// `git.checkout_dir` of the output.
    #[arg(long)]
    checkout_dir: Option<String>,
    /// Any warning makes the import fail (exit 1); the configuration is still printed.
    #[arg(long)]
    strict: bool,
    /// YAML files or directories (read recursively, `*.yaml` and `*.yml`).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

/// Where something came from: shown in warnings and in comments.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Origin {
    pub file: String,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// Something that did not translate exactly, and what was done instead.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Warning {
    pub origin: Origin,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "warning: {}: {}", self.origin, self.message)
    }
}

/// A tagwatch strategy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    Semver,
    Newest,
    Alphabetical,
    Numeric,
    Digest,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Semver => "semver",
            Strategy::Newest => "newest",
            Strategy::Alphabetical => "alphabetical",
            Strategy::Numeric => "numeric",
            Strategy::Digest => "digest",
        }
    }
}

/// Where a target writes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Place {
    /// A scalar at a key path, optionally in one document of the file.
    Yaml {
        key: String,
        document: Option<usize>,
    },
    /// An entry of a kustomization's `images:`.
    Kustomize { image: String },
}

/// One env of an app.
#[derive(Clone, Debug)]
pub struct Target {
    pub env: String,
    /// Why the env is what it is, when it was guessed.
    pub env_note: Option<String>,
    pub file: String,
    pub place: Place,
    /// `None` leaves tagwatch's default for the strategy.
    pub format: Option<&'static str>,
}

/// An app as a reader found it, before names and registries are settled.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// The wanted name; sanitized and made unique by [`assemble`].
    pub name: String,
    /// The image without tag or digest: `HOST/REPOSITORY`.
    pub image: String,
    pub origin: Origin,
    /// Comment lines printed above the app (what it came from, what was inferred).
    pub notes: Vec<String>,
    pub strategy: Strategy,
    pub constraint: Option<String>,
    pub allow: Option<String>,
    pub extract: Option<String>,
    pub ignore: Vec<String>,
    pub targets: Vec<Target>,
    /// Warnings that matter only if the app is migrated (an env guessed for
    /// an app that is then dropped for another reason is noise).
    pub pending: Vec<Warning>,
}

/// A value for `[git]` found in the input, and where.
#[derive(Clone, Debug, Default)]
pub struct Found {
    pub candidates: Vec<Candidate>,
    pub warnings: Vec<Warning>,
    /// Git remotes the input names, each with where it was named.
    pub git_urls: Vec<(String, Origin)>,
    pub branches: Vec<(String, Origin)>,
    pub authors: Vec<(String, Origin)>,
}

impl Found {
    pub fn warn(&mut self, origin: &Origin, message: impl Into<String>) {
        self.warnings.push(Warning {
            origin: origin.clone(),
            message: message.into(),
        });
    }
}

/// A value in the output and, when it was not given, why it is what it is.
#[derive(Clone, Debug)]
pub struct Setting {
    pub value: String,
    pub note: Option<String>,
}

/// The finished import: what `emit` prints.
#[derive(Debug)]
pub struct Imported {
    /// `tagwatch import …` as run, for the header.
    pub command: &'static str,
    pub apps: Vec<App>,
    pub region: Option<String>,
    pub registry_id: Option<String>,
    pub git_url: Setting,
    pub branch: Setting,
    pub checkout_dir: Setting,
    pub author: Setting,
    pub warnings: Vec<Warning>,
}

/// An app with its final name.
#[derive(Debug)]
pub struct App {
    pub name: String,
    pub repository: String,
    pub candidate: Candidate,
}

/// Why an import cannot produce a configuration (exit 64).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: not valid YAML: {message}")]
    Yaml {
        path: String,
        line: usize,
        message: String,
    },
    #[error(
        "no git remote: the input names none; pass --git-url URL (the GitOps repository tagwatch should push to)"
    )]
    NoGitUrl,
}

/// One parsed input file.
pub struct Input {
    /// The path as shown in messages.
    pub name: String,
    pub docs: Vec<yaml::Node>,
}

/// A reader: parsed inputs in, candidates and warnings out.
type Reader = dyn Fn(&[Input]) -> Found;

/// Runs `tagwatch import …` and returns the exit status.
pub fn run(args: ImportArgs) -> u8 {
    let (common, command, read): (&Common, &'static str, Box<Reader>) = match &args.source {
        ImportSource::ArgocdImageUpdater(common) => (
            common,
            "tagwatch import argocd-image-updater",
            Box::new(argocd::read),
        ),
        ImportSource::Flux { common, repo_root } => {
            let root = repo_root.clone();
            (
                common,
                "tagwatch import flux",
                Box::new(move |inputs: &[Input]| flux::read(inputs, &root)),
            )
        }
    };
    let result = read_inputs(&common.paths).and_then(|inputs| {
        let found = read(&inputs);
        assemble(found, common, command)
    });
    match result {
        Ok(imported) => {
            print!("{}", emit::toml(&imported));
            for w in &imported.warnings {
                eprintln!("{w}");
            }
            if common.strict && !imported.warnings.is_empty() {
                eprintln!(
                    "tagwatch import: {} warning(s) and --strict: failing",
                    imported.warnings.len()
                );
                EXIT_FAILED
            } else {
                0
            }
        }
        Err(e) => {
            eprintln!("tagwatch import: {e}");
            EXIT_USAGE
        }
    }
}

/// Every YAML file under `paths`, parsed, in a stable order.
pub fn read_inputs(paths: &[PathBuf]) -> Result<Vec<Input>, ImportError> {
    let mut files = Vec::new();
    for path in paths {
        collect(path, true, &mut files)?;
    }
    files
        .into_iter()
        .map(|path| {
            let name = display(&path);
            let text = std::fs::read_to_string(&path).map_err(|source| ImportError::Read {
                path: name.clone(),
                source,
            })?;
            let docs = yaml::parse(&text).map_err(|e| ImportError::Yaml {
                path: name.clone(),
                line: e.line,
                message: e.message,
            })?;
            Ok(Input { name, docs })
        })
        .collect()
}

/// `path` itself when named (whatever its extension), or the YAML files
/// below a directory (symlinks below it skipped), sorted by name so the
/// output does not depend on the file system's order.
pub fn collect(path: &Path, named: bool, out: &mut Vec<PathBuf>) -> Result<(), ImportError> {
    // A named path is followed; inside a directory, symlinks are not, so a
    // link back to a parent cannot make the walk endless.
    let meta = if named {
        std::fs::metadata(path)
    } else {
        std::fs::symlink_metadata(path)
    };
    let meta = meta.map_err(|source| ImportError::Read {
        path: display(path),
        source,
    })?;
    if meta.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|source| ImportError::Read {
            path: display(path),
            source,
        })?;
        let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        children.sort();
        for child in children {
            let hidden = child
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if !hidden {
                collect(&child, false, out)?;
            }
        }
    } else if named || is_yaml(path) {
        out.push(path.to_path_buf());
    }
    Ok(())
}

pub fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

/// A path for messages: as given, without a leading `./`.
pub fn display(path: &Path) -> String {
    let text = path.to_string_lossy();
    text.strip_prefix("./").unwrap_or(&text).to_string()
}

/// An ECR image reference: `ACCOUNT.dkr.ecr.REGION.amazonaws.com[.cn]/REPO`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ecr {
    pub registry_id: String,
    pub region: String,
    pub repository: String,
}

/// The ECR registry and repository of `image` (`HOST/REPO`), if it is on ECR.
pub fn ecr(image: &str) -> Option<Ecr> {
    let (host, repository) = image.split_once('/')?;
    let rest = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"))?;
    let mut parts = rest.split('.');
    let account = parts.next()?;
    let (dkr, ecr, region) = (parts.next()?, parts.next()?, parts.next()?);
    let ok = account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && dkr == "dkr"
        && (ecr == "ecr" || ecr == "ecr-fips")
        && parts.next().is_none()
        && !region.is_empty()
        && !repository.is_empty();
    ok.then(|| Ecr {
        registry_id: account.to_string(),
        region: region.to_string(),
        repository: repository.to_string(),
    })
}

/// Splits `HOST/REPO:TAG` or `HOST/REPO@DIGEST` into the image and what
/// follows it (the tag, or for Image Updater the version constraint). A
/// colon before the last `/` is a registry port, not a tag.
pub fn split_image(reference: &str) -> (&str, Option<&str>) {
    let reference = reference.split('@').next().unwrap_or(reference);
    let last_slash = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[last_slash..].find(':') {
        Some(i) => (
            &reference[..last_slash + i],
            Some(&reference[last_slash + i + 1..]),
        ),
        None => (reference, None),
    }
}

/// A name that passes tagwatch's name rule: letters, digits, `.`, `_`, `-`,
/// starting with a letter or digit, at most 63 bytes.
pub fn sanitize(name: &str) -> String {
    let mapped: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = mapped.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    let mut out: String = trimmed.chars().take(63).collect();
    if out.is_empty() {
        out = "app".into();
    }
    out
}

/// Decides everything the readers leave open: drops candidates that cannot
/// run (another registry, an invalid policy, a scalar another target
/// already writes), picks `[aws]` and `[git]`, and names the apps.
fn assemble(
    mut found: Found,
    common: &Common,
    command: &'static str,
) -> Result<Imported, ImportError> {
    // Readers emit in input order; sorting here makes the output independent
    // of which reader found what first.
    found
        .candidates
        .sort_by(|a, b| (&a.name, &a.origin).cmp(&(&b.name, &b.origin)));

    // [aws]: one registry per configuration, so the one most apps use wins
    // (ties to the smaller account, region).
    let mut registries: BTreeMap<(String, String), usize> = BTreeMap::new();
    for c in &found.candidates {
        if let Some(e) = ecr(&c.image) {
            *registries.entry((e.registry_id, e.region)).or_default() += 1;
        }
    }
    let chosen = registries
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(k, _)| k.clone());

    let mut apps: Vec<App> = Vec::new();
    let mut taken_names: BTreeMap<String, usize> = BTreeMap::new();
    let mut written: BTreeMap<(String, Place), String> = BTreeMap::new();
    let candidates = std::mem::take(&mut found.candidates);
    for mut c in candidates {
        let Some(e) = ecr(&c.image) else {
            found.warn(
                &c.origin,
                format!("image {} is not on ECR; {} not migrated", c.image, c.name),
            );
            continue;
        };
        if chosen.as_ref() != Some(&(e.registry_id.clone(), e.region.clone())) {
            found.warn(
                &c.origin,
                format!(
                    "image {} is in registry {} ({}), not the one most apps use; {} not migrated (tagwatch reads one registry per configuration: import it into a second one)",
                    c.image, e.registry_id, e.region, c.name
                ),
            );
            continue;
        }
        let spec = PolicySpec {
            strategy: Some(c.strategy.as_str().to_string()),
            constraint: c.constraint.clone(),
            allow: c.allow.clone(),
            extract: c.extract.clone(),
            ignore: c.ignore.clone(),
            min_age: None,
        };
        if let Err(err) = Policy::from_spec(&spec) {
            found.warn(
                &c.origin,
                format!(
                    "{}: invalid {}: {err}; {} not migrated",
                    c.name, err.field, c.name
                ),
            );
            continue;
        }
        let name = unique(&sanitize(&c.name), &mut taken_names);
        if name != c.name {
            c.notes
                .push(format!("named {name:?} (wanted {:?})", c.name));
        }
        // Two targets may not write the same scalar: the first keeps it.
        let mut targets = Vec::new();
        let mut envs: BTreeMap<String, usize> = BTreeMap::new();
        for mut t in std::mem::take(&mut c.targets) {
            let slot = (t.file.clone(), t.place.clone());
            if let Some(owner) = written.get(&slot) {
                found.warn(
                    &c.origin,
                    format!(
                        "{name}: {} {} is already written by app {owner}; this target is not migrated",
                        t.file,
                        place_text(&t.place)
                    ),
                );
                continue;
            }
            let env = unique(&sanitize(&t.env), &mut envs);
            if env != t.env {
                t.env_note = Some(format!("env {:?} renamed to {env:?} to be unique", t.env));
                found.warn(
                    &c.origin,
                    format!(
                        "{name}: env {:?} is used twice; the second is named {env:?}",
                        t.env
                    ),
                );
                t.env = env;
            }
            written.insert(slot, name.clone());
            targets.push(t);
        }
        if targets.is_empty() {
            continue;
        }
        found.warnings.append(&mut c.pending);
        targets.sort_by(|a, b| (&a.env, &a.file, &a.place).cmp(&(&b.env, &b.file, &b.place)));
        c.targets = targets;
        apps.push(App {
            name,
            repository: e.repository,
            candidate: c,
        });
    }
    apps.sort_by(|a, b| a.name.cmp(&b.name));

    let git_url = match (&common.git_url, first(&found.git_urls)) {
        (Some(url), _) => Setting {
            value: url.clone(),
            note: None,
        },
        (None, Some((url, origin))) => {
            let others: Vec<&str> = found
                .git_urls
                .iter()
                .map(|(u, _)| u.as_str())
                .filter(|u| *u != url)
                .collect();
            if !others.is_empty() {
                let mut others = others;
                others.sort_unstable();
                others.dedup();
                found.warn(
                    &origin,
                    format!(
                        "the input names several git remotes; {url} is used, and apps from {} now push there too: check them, or import those apps separately with --git-url",
                        others.join(", ")
                    ),
                );
            }
            Setting {
                value: url,
                note: Some(format!("from {origin}")),
            }
        }
        (None, None) => return Err(ImportError::NoGitUrl),
    };
    let branch = match (&common.branch, first(&found.branches)) {
        (Some(b), _) => Setting {
            value: b.clone(),
            note: None,
        },
        (None, Some((b, origin))) => Setting {
            value: b,
            note: Some(format!("from {origin}")),
        },
        (None, None) => Setting {
            value: "main".into(),
            note: Some("inferred: the input names no branch".into()),
        },
    };
    let checkout_dir = match &common.checkout_dir {
        Some(d) => Setting {
            value: d.clone(),
            note: None,
        },
        None => Setting {
            value: "/var/lib/tagwatch/gitops".into(),
            note: Some("inferred: any writable directory (an emptyDir will do)".into()),
        },
    };
    let author = match first(&found.authors) {
        Some((a, origin)) => Setting {
            value: a,
            note: Some(format!("from {origin}")),
        },
        None => Setting {
            value: "tagwatch <tagwatch@localhost>".into(),
            note: Some("inferred: set the identity your branch protection expects".into()),
        },
    };
    found.warnings.sort();
    found.warnings.dedup();
    Ok(Imported {
        command,
        apps,
        region: chosen.as_ref().map(|(_, r)| r.clone()),
        registry_id: chosen.map(|(id, _)| id),
        git_url,
        branch,
        checkout_dir,
        author,
        warnings: found.warnings,
    })
}

/// The value named first in input order (files sorted, then lines).
fn first(values: &[(String, Origin)]) -> Option<(String, Origin)> {
    values.iter().min_by(|a, b| a.1.cmp(&b.1)).cloned()
}

/// `name`, or `name-2`, `name-3`… when taken.
fn unique(name: &str, taken: &mut BTreeMap<String, usize>) -> String {
    let mut n = 1;
    let mut candidate = name.to_string();
    while taken.contains_key(&candidate) {
        n += 1;
        let suffix = format!("-{n}");
        let stem: String = name.chars().take(63 - suffix.len()).collect();
        candidate = format!("{stem}{suffix}");
    }
    taken.insert(candidate.clone(), 1);
    candidate
}

pub fn place_text(place: &Place) -> String {
    match place {
        Place::Yaml {
            key,
            document: None,
        } => format!("key {key}"),
        Place::Yaml {
            key,
            document: Some(d),
        } => format!("key {key} (document {d})"),
        Place::Kustomize { image } => format!("kustomize image {image}"),
    }
}

/// The env an app's files are for, from a path such as `envs/dev/…`:
/// the component after `envs`, `env`, `environments` or `overlays`.
pub fn env_from_path(path: &str) -> Option<String> {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    parts.windows(2).find_map(|w| {
        matches!(w[0], "envs" | "env" | "environments" | "overlays").then(|| w[1].to_string())
    })
}

/// Joins a repository-relative directory and a relative path, resolving
/// `.` and `..` (a path that climbs above the root keeps its `..`, and
/// `tagwatch check` then refuses it with the file's name).
pub fn join(dir: &str, rel: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let start = if rel.starts_with('/') { "" } else { dir };
    for p in start.split('/').chain(rel.split('/')) {
        match p {
            "" | "." => {}
            ".." if parts.last().is_some_and(|l| *l != "..") => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecr_hosts_are_recognised() {
        let e = ecr("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/api").unwrap();
        assert_eq!(
            (
                e.registry_id.as_str(),
                e.region.as_str(),
                e.repository.as_str()
            ),
            ("123456789012", "eu-west-1", "team/api")
        );
        assert!(ecr("ghcr.io/acme/api").is_none());
        assert!(ecr("12345.dkr.ecr.eu-west-1.amazonaws.com/api").is_none());
    }

    #[test]
    fn images_split_at_the_tag_not_the_port() {
        assert_eq!(
            split_image("host:5000/a/b:1.2"),
            ("host:5000/a/b", Some("1.2"))
        );
        assert_eq!(split_image("host:5000/a/b"), ("host:5000/a/b", None));
        assert_eq!(split_image("a/b:~1.2@sha256:x"), ("a/b", Some("~1.2")));
    }

    #[test]
    fn names_are_sanitized() {
        assert_eq!(sanitize("my app/api"), "my-app-api");
        assert_eq!(sanitize("_x"), "x");
        assert_eq!(sanitize(&"a".repeat(80)).len(), 63);
        let mut taken = BTreeMap::new();
        assert_eq!(unique("a", &mut taken), "a");
        assert_eq!(unique("a", &mut taken), "a-2");
    }

    #[test]
    fn paths_join_and_envs_come_from_them() {
        assert_eq!(join("apps/guestbook", "../base"), "apps/base");
        assert_eq!(
            join("apps/guestbook", "/charts/values.yaml"),
            "charts/values.yaml"
        );
        assert_eq!(join("apps", "./values.yaml"), "apps/values.yaml");
        assert_eq!(
            env_from_path("clusters/x/envs/dev/app.yaml").as_deref(),
            Some("dev")
        );
        assert_eq!(env_from_path("apps/app.yaml"), None);
    }
}
