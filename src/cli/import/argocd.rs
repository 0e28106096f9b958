//! Reading Argo CD Image Updater's settings: `Application` annotations
//! (`argocd-image-updater.argoproj.io/…`) and the v1.x `ImageUpdater`
//! resource (`argocd-image-updater.argoproj.io/v1alpha1`). Both are read
//! into the same per-image [`ImageSpec`] and write-back [`WriteBack`], and
//! one function turns those into a [`Candidate`], so the two forms map the
//! same way. Owns Image Updater's semantics (defaults, precedence, syntax);
//! what tagwatch accepts is checked later by `assemble`.

use super::yaml::Node;
use super::{
    Candidate, Found, Input, Origin, Place, Strategy, Target, Warning, env_from_path, join,
    split_image,
};

const PREFIX: &str = "argocd-image-updater.argoproj.io/";
const CR_API: &str = "argocd-image-updater.argoproj.io/v1alpha1";

/// A value and where it was written.
type Val = Option<(String, Origin)>;

/// Per-image policy settings; at each level of the `ImageUpdater` resource
/// a more specific value replaces a general one, field by field.
#[derive(Clone, Default)]
struct Settings {
    strategy: Val,
    allow: Val,
    ignore: Option<(Vec<String>, Origin)>,
    pull_secret: Val,
    force_update: Val,
    platforms: Val,
}

impl Settings {
    fn over(self, base: &Settings) -> Settings {
        Settings {
            strategy: self.strategy.or_else(|| base.strategy.clone()),
            allow: self.allow.or_else(|| base.allow.clone()),
            ignore: self.ignore.or_else(|| base.ignore.clone()),
            pull_secret: self.pull_secret.or_else(|| base.pull_secret.clone()),
            force_update: self.force_update.or_else(|| base.force_update.clone()),
            platforms: self.platforms.or_else(|| base.platforms.clone()),
        }
    }
}

/// One image of one Application.
#[derive(Clone)]
struct ImageSpec {
    alias: String,
    /// `IMAGE[:CONSTRAINT]` as written.
    reference: (String, Origin),
    settings: Settings,
    helm_name: Val,
    helm_tag: Val,
    helm_spec: Val,
    kustomize_name: Val,
}

#[derive(Clone, Default)]
struct WriteBack {
    method: Val,
    target: Val,
    branch: Val,
    repository: Val,
}

impl WriteBack {
    fn over(self, base: &WriteBack) -> WriteBack {
        WriteBack {
            method: self.method.or_else(|| base.method.clone()),
            target: self.target.or_else(|| base.target.clone()),
            branch: self.branch.or_else(|| base.branch.clone()),
            repository: self.repository.or_else(|| base.repository.clone()),
        }
    }
}

/// The parts of an Argo CD `Application` the mapping needs.
struct Application<'a> {
    name: String,
    namespace: Option<String>,
    origin: Origin,
    file: &'a str,
    node: &'a Node,
}

impl Application<'_> {
    /// The source holding the app's manifests: `spec.source`, or the first
    /// of `spec.sources` with a `path`.
    fn source(&self) -> Option<&Node> {
        self.node.at("spec.source").or_else(|| {
            let sources = self.node.at("spec.sources")?.items();
            sources
                .iter()
                .find(|s| s.get("path").is_some())
                .or(sources.first())
        })
    }

    fn path(&self) -> String {
        self.source()
            .and_then(|s| s.str_at("path"))
            .map_or_else(String::new, |p| join("", p))
    }

    fn origin_of(&self, node: &Node) -> Origin {
        Origin {
            file: self.file.to_string(),
            line: node.line,
        }
    }
}

/// Reads every Application and `ImageUpdater` in `inputs`.
pub fn read(inputs: &[Input]) -> Found {
    let mut found = Found::default();
    let mut apps = Vec::new();
    let mut updaters = Vec::new();
    for input in inputs {
        for doc in &input.docs {
            let kind = doc.str_at("kind").unwrap_or_default();
            let api = doc.str_at("apiVersion").unwrap_or_default();
            if kind == "Application" && api.starts_with("argoproj.io/") {
                let origin = Origin {
                    file: input.name.clone(),
                    line: doc.at("metadata.name").map_or(doc.line, |n| n.line),
                };
                match doc.str_at("metadata.name") {
                    Some(name) => apps.push(Application {
                        name: name.to_string(),
                        namespace: doc.str_at("metadata.namespace").map(str::to_string),
                        origin,
                        file: &input.name,
                        node: doc,
                    }),
                    None => found.warn(&origin, "an Application without metadata.name is skipped"),
                }
            } else if kind == "ImageUpdater" {
                if api == CR_API {
                    updaters.push((input.name.as_str(), doc));
                } else {
                    let origin = Origin {
                        file: input.name.clone(),
                        line: doc.line,
                    };
                    found.warn(
                        &origin,
                        format!("ImageUpdater of apiVersion {api:?} is not the v1alpha1 form this importer knows; skipped"),
                    );
                }
            }
        }
    }

    let mut claimed: Vec<String> = Vec::new();
    for (file, doc) in updaters {
        read_updater(file, doc, &apps, &mut claimed, &mut found);
    }
    for app in &apps {
        let annotations = app.node.at("metadata.annotations");
        let Some(list) = annotations.and_then(|a| a.get(&format!("{PREFIX}image-list"))) else {
            continue;
        };
        let origin = app.origin_of(list);
        if claimed.contains(&app.name) {
            found.warn(
                &origin,
                format!(
                    "Application {} has Image Updater annotations and is also selected by an ImageUpdater resource; the resource's settings are used",
                    app.name
                ),
            );
            continue;
        }
        let annotations = annotations.map(Node::entries).unwrap_or_default();
        let get = |key: &str| -> Val {
            annotations
                .iter()
                .find(|(k, _)| k.strip_prefix(PREFIX) == Some(key))
                .and_then(|(_, v)| Some((v.str()?.trim().to_string(), app.origin_of(v))))
                .filter(|(v, _)| !v.is_empty())
        };
        let write_back = WriteBack {
            method: get("write-back-method"),
            target: get("write-back-target"),
            branch: get("git-branch"),
            repository: get("git-repository"),
        };
        let entries = list.str().unwrap_or_default();
        for entry in entries.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (alias, reference) = match entry.split_once('=') {
                Some((alias, reference)) => (alias.trim().to_string(), reference.trim()),
                None => {
                    let (image, _) = split_image(entry);
                    let alias = image.rsplit('/').next().unwrap_or(image).to_string();
                    found.warn(
                        &origin,
                        format!(
                            "image-list entry {entry:?} has no alias, so no <alias>.* setting can apply to it; Image Updater's defaults are used and the app is named after {alias:?}"
                        ),
                    );
                    (alias, entry)
                }
            };
            let ignore = get(&format!("{alias}.ignore-tags")).map(|(v, o)| {
                let globs = v
                    .split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(str::to_string)
                    .collect();
                (globs, o)
            });
            let spec = ImageSpec {
                reference: (reference.to_string(), origin.clone()),
                settings: Settings {
                    strategy: get(&format!("{alias}.update-strategy")),
                    allow: get(&format!("{alias}.allow-tags")),
                    ignore,
                    pull_secret: get(&format!("{alias}.pull-secret")),
                    force_update: get(&format!("{alias}.force-update")),
                    platforms: get(&format!("{alias}.platforms")),
                },
                helm_name: get(&format!("{alias}.helm.image-name")),
                helm_tag: get(&format!("{alias}.helm.image-tag")),
                helm_spec: get(&format!("{alias}.helm.image-spec")),
                kustomize_name: get(&format!("{alias}.kustomize.image-name")),
                alias,
            };
            candidate(app, &spec, &write_back, &mut found);
        }
    }
    found
}

/// One `ImageUpdater`: every Application its `applicationRefs` select, with
/// every image, settings merged spec → applicationRef → image.
fn read_updater(
    file: &str,
    doc: &Node,
    apps: &[Application<'_>],
    claimed: &mut Vec<String>,
    found: &mut Found,
) {
    let at = |node: &Node| Origin {
        file: file.to_string(),
        line: node.line,
    };
    let spec = doc.get("spec");
    let spec_settings = spec.map(|s| settings(s, file)).unwrap_or_default();
    let spec_write_back = spec.map(|s| write_back(s, file)).unwrap_or_default();
    let spec_images: Vec<&Node> = spec
        .and_then(|s| s.get("images"))
        .map(|i| i.items().iter().collect())
        .unwrap_or_default();
    let namespace = spec.and_then(|s| s.str_at("namespace"));
    let refs = spec.and_then(|s| s.get("applicationRefs"));
    if refs.is_none_or(|r| r.items().is_empty()) {
        found.warn(
            &at(doc),
            "ImageUpdater without spec.applicationRefs selects nothing; skipped",
        );
        return;
    }
    for r in refs.map(Node::items).unwrap_or_default() {
        let Some(pattern) = r.str_at("namePattern") else {
            found.warn(&at(r), "applicationRef without namePattern; skipped");
            continue;
        };
        if r.get("labelSelectors").is_some() {
            found.warn(
                &at(r),
                format!("labelSelectors are not evaluated: Applications are selected by namePattern {pattern:?} alone"),
            );
        }
        let ref_settings = settings(r, file).over(&spec_settings);
        let ref_write_back = write_back(r, file).over(&spec_write_back);
        let images: Vec<&Node> = spec_images
            .iter()
            .copied()
            .chain(r.get("images").map(Node::items).unwrap_or_default())
            .collect();
        let selected: Vec<&Application<'_>> = apps
            .iter()
            .filter(|a| glob(pattern, &a.name))
            .filter(|a| namespace.is_none_or(|ns| a.namespace.as_deref().is_none_or(|n| n == ns)))
            .collect();
        if selected.is_empty() {
            found.warn(
                &at(r),
                format!("namePattern {pattern:?} matches no Application in the input (pass the Application manifests too); not migrated"),
            );
            continue;
        }
        for app in selected {
            claimed.push(app.name.clone());
            for image in &images {
                let Some(alias) = image.str_at("alias") else {
                    found.warn(&at(image), "image without alias; skipped");
                    continue;
                };
                let Some(reference) = image.at("imageName").filter(|n| n.str().is_some()) else {
                    found.warn(
                        &at(image),
                        format!("image {alias:?} without imageName; skipped"),
                    );
                    continue;
                };
                let targets = image.get("manifestTargets");
                let val = |path: &str| -> Val {
                    let n = targets?.at(path)?;
                    Some((n.str()?.to_string(), at(n))).filter(|(v, _)| !v.is_empty())
                };
                let mut image_settings = settings(image, file);
                if let Some(p) = image.get("platforms") {
                    let list: Vec<&str> = p.items().iter().filter_map(Node::str).collect();
                    image_settings.platforms = Some((list.join(","), at(p)));
                }
                let spec = ImageSpec {
                    alias: alias.to_string(),
                    reference: (
                        reference.str().unwrap_or_default().to_string(),
                        at(reference),
                    ),
                    settings: image_settings.over(&ref_settings),
                    helm_name: val("helm.name"),
                    helm_tag: val("helm.tag"),
                    helm_spec: val("helm.spec"),
                    kustomize_name: val("kustomize.name"),
                };
                candidate(app, &spec, &ref_write_back, found);
            }
        }
    }
}

/// `commonUpdateSettings` of one level of an `ImageUpdater`.
fn settings(level: &Node, file: &str) -> Settings {
    let Some(s) = level.get("commonUpdateSettings") else {
        return Settings::default();
    };
    let val = |key: &str| -> Val {
        let n = s.get(key)?;
        Some((
            n.str()?.to_string(),
            Origin {
                file: file.to_string(),
                line: n.line,
            },
        ))
        .filter(|(v, _)| !v.is_empty())
    };
    Settings {
        strategy: val("updateStrategy"),
        allow: val("allowTags"),
        ignore: s.get("ignoreTags").map(|n| {
            let globs = n
                .items()
                .iter()
                .filter_map(Node::str)
                .map(str::to_string)
                .collect();
            (
                globs,
                Origin {
                    file: file.to_string(),
                    line: n.line,
                },
            )
        }),
        pull_secret: val("pullSecret"),
        force_update: val("forceUpdate").filter(|(v, _)| v == "true"),
        platforms: None,
    }
}

/// `writeBackConfig` of one level of an `ImageUpdater`.
fn write_back(level: &Node, file: &str) -> WriteBack {
    let Some(w) = level.get("writeBackConfig") else {
        return WriteBack::default();
    };
    let val = |path: &str| -> Val {
        let n = w.at(path)?;
        Some((
            n.str()?.to_string(),
            Origin {
                file: file.to_string(),
                line: n.line,
            },
        ))
        .filter(|(v, _)| !v.is_empty())
    };
    WriteBack {
        method: val("method"),
        target: val("gitConfig.writeBackTarget"),
        branch: val("gitConfig.branch"),
        repository: val("gitConfig.repository"),
    }
}

/// Shell-style `*` and `?` matching, as `namePattern` uses.
fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Iterative matching with one backtrack point: linear in practice and
    // never exponential on patterns full of stars.
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Whether the manifests are rendered by Helm or by Kustomize.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tool {
    Helm,
    Kustomize,
}

/// Maps one image of one Application, or explains in a warning why not.
fn candidate(app: &Application<'_>, spec: &ImageSpec, wb: &WriteBack, found: &mut Found) {
    let name = format!("{}-{}", app.name, spec.alias);
    let (reference, ref_origin) = &spec.reference;
    let (image, version) = split_image(reference);
    let s = &spec.settings;
    let mut notes = vec![format!(
        "Application {}, image {} ({reference})",
        app.name, spec.alias
    )];

    // The strategy, Image Updater's default being semver.
    let strategy = match s.strategy.as_ref().map(|(v, o)| (v.as_str(), o)) {
        None | Some(("semver", _)) => Strategy::Semver,
        Some((v @ ("newest-build" | "latest"), o)) => {
            found.warn(
                o,
                format!("update-strategy {v:?} mapped to \"newest\" (ECR push time instead of image build time)"),
            );
            Strategy::Newest
        }
        Some(("alphabetical" | "name", _)) => Strategy::Alphabetical,
        Some(("digest", _)) => Strategy::Digest,
        Some((v, o)) => {
            found.warn(
                o,
                format!("unknown update-strategy {v:?} (semver, newest-build, digest or alphabetical); {name} not migrated"),
            );
            return;
        }
    };
    let constraint = match (strategy, version) {
        (Strategy::Semver, v) => v.map(str::to_string),
        (Strategy::Digest, Some(tag)) => Some(tag.to_string()),
        (Strategy::Digest, None) => {
            found.warn(
                ref_origin,
                format!("{name}: the digest strategy needs a tag to follow and {reference:?} names none; following \"latest\""),
            );
            Some("latest".to_string())
        }
        (_, Some(v)) => {
            found.warn(
                ref_origin,
                format!(
                    "{name}: version constraint {v:?} dropped: the {} strategy takes none",
                    strategy.as_str()
                ),
            );
            None
        }
        (_, None) => None,
    };
    let allow = match s.allow.as_ref() {
        None => None,
        Some((v, _)) if v == "any" => None,
        Some((v, o)) => {
            match v.strip_prefix("regexp:") {
                Some(re) => Some((re.to_string(), o.clone())),
                None => {
                    found.warn(
                    o,
                    format!("allow-tags {v:?} is neither \"regexp:…\" nor \"any\"; {name} not migrated"),
                );
                    return;
                }
            }
        }
    };
    if let Some((re, o)) = &allow
        && let Err(e) = regex::Regex::new(re)
    {
        let first = e.to_string().lines().last().unwrap_or_default().to_string();
        found.warn(
            o,
            format!("allow-tags regexp {re:?} does not compile ({first}); {name} not migrated"),
        );
        return;
    }
    let ignore = s
        .ignore
        .as_ref()
        .map(|(g, _)| g.clone())
        .unwrap_or_default();
    if let Some((v, o)) = &s.platforms {
        found.warn(
            o,
            format!("{name}: platforms {v:?} dropped: tagwatch does not filter by platform (an image index on ECR carries every platform)"),
        );
    }
    if let Some((v, _)) = &s.pull_secret {
        notes.push(format!(
            "pull-secret {v:?} dropped: not needed on ECR, tagwatch reads it with the AWS SDK's credentials"
        ));
    }
    if let Some((_, o)) = &s.force_update {
        found.warn(
            o,
            format!(
                "{name}: force-update dropped: tagwatch updates the file whatever the cluster runs"
            ),
        );
    }

    // Where it writes.
    let method = wb.method.as_ref();
    match method {
        Some((m, _)) if m == "git" || m.starts_with("git:") => {
            if let Some(creds) = m.strip_prefix("git:") {
                notes.push(format!(
                    "write-back-method credentials {creds:?}: give tagwatch git.token_file or git.ssh_key_file instead"
                ));
            }
        }
        Some((m, o)) => found.warn(
            o,
            format!("{name}: write-back-method {m:?}: tagwatch always writes to git, so the change is committed instead of set on the Application"),
        ),
        None => found.warn(
            &app.origin,
            format!("{name}: write-back-method defaults to argocd: tagwatch always writes to git, so the change is committed instead of set on the Application"),
        ),
    }
    let path = app.path();
    let source = app.source();
    let declared =
        if spec.helm_spec.is_some() || spec.helm_tag.is_some() || spec.helm_name.is_some() {
            Some(Tool::Helm)
        } else if spec.kustomize_name.is_some() {
            Some(Tool::Kustomize)
        } else if source.is_some_and(|s| s.get("helm").is_some() || s.get("chart").is_some()) {
            Some(Tool::Helm)
        } else if source.is_some_and(|s| s.get("kustomize").is_some()) {
            Some(Tool::Kustomize)
        } else {
            None
        };
    let (tool, file) = match wb.target.as_ref() {
        Some((t, o)) => {
            let (kind, rel) = t.split_once(':').unwrap_or((t.as_str(), ""));
            match kind {
                "helmvalues" => {
                    let rel = if rel.is_empty() { "values.yaml" } else { rel };
                    (Tool::Helm, join(&path, rel))
                }
                "kustomization" => (
                    Tool::Kustomize,
                    join(&join(&path, rel), "kustomization.yaml"),
                ),
                _ => {
                    found.warn(
                        o,
                        format!("write-back-target {t:?} is neither helmvalues:… nor kustomization:…; {name} not migrated"),
                    );
                    return;
                }
            }
        }
        None => {
            let tool = declared.unwrap_or_else(|| {
                found.warn(
                    &app.origin,
                    format!("{name}: neither Helm nor Kustomize settings are given (Image Updater detects it from the repository); Helm values assumed"),
                );
                Tool::Helm
            });
            let file = match tool {
                Tool::Helm => join(&path, "values.yaml"),
                Tool::Kustomize => join(&path, "kustomization.yaml"),
            };
            if method.is_some_and(|(m, _)| m.starts_with("git")) {
                let equivalent = match tool {
                    Tool::Helm => "helmvalues",
                    Tool::Kustomize => "kustomization",
                };
                found.warn(
                    &method.map_or(app.origin.clone(), |(_, o)| o.clone()),
                    format!("{name}: Image Updater writes .argocd-source-{}.yaml, Argo CD's parameter overrides, which tagwatch does not write; targeting {file} instead (what write-back-target: {equivalent} does)", app.name),
                );
            }
            (tool, file)
        }
    };
    let (place, format) = match tool {
        Tool::Helm => match (&spec.helm_spec, &spec.helm_tag) {
            (Some((key, _)), _) => (
                Place::Yaml {
                    key: key.clone(),
                    document: None,
                },
                Some("image"),
            ),
            (None, tag) => {
                let key = tag.as_ref().map_or("image.tag", |(k, _)| k.as_str());
                if let Some((name_key, o)) = &spec.helm_name {
                    found.warn(
                        o,
                        format!("{name}: helm.image-name {name_key:?} is not written: tagwatch sets only the tag at {key:?} (Image Updater also sets {name_key:?} to {image}; make sure it holds that already)"),
                    );
                }
                let format = (strategy != Strategy::Digest).then_some("tag");
                (
                    Place::Yaml {
                        key: key.to_string(),
                        document: None,
                    },
                    format,
                )
            }
        },
        Tool::Kustomize => {
            let image_name = spec
                .kustomize_name
                .as_ref()
                .map_or(image.to_string(), |(n, _)| n.clone());
            (Place::Kustomize { image: image_name }, None)
        }
    };

    // The env.
    let mut pending = Vec::new();
    let (env, env_note) = match app.node.str_at("spec.destination.namespace") {
        Some(ns) => (
            ns.to_string(),
            Some("inferred from spec.destination.namespace".to_string()),
        ),
        None => match env_from_path(&file) {
            Some(env) => (env, Some(format!("inferred from the path {file}"))),
            None => {
                pending.push(Warning {
                    origin: app.origin.clone(),
                    message: format!("{name}: no destination namespace and no envs/<env>/ in {file:?}; env \"default\" used"),
                });
                (
                    "default".to_string(),
                    Some("inferred: nothing names an env".to_string()),
                )
            }
        },
    };

    // [git]: the write-back repository, else the Application's own source
    // (unless it is a Helm chart repository rather than git).
    let source_url = source
        .filter(|s| s.get("chart").is_none())
        .and_then(|s| {
            s.at("repoURL")
                .filter(|n| n.str().is_some_and(|v| !v.is_empty()))
        })
        .map(|n| (n.str().unwrap_or_default().to_string(), app.origin_of(n)));
    if let Some(url) = wb.repository.clone().or(source_url) {
        found.git_urls.push(url);
    }
    match &wb.branch {
        Some((b, o)) => {
            let (base, write) = b.split_once(':').unwrap_or((b.as_str(), ""));
            if !write.is_empty() {
                found.warn(
                    o,
                    format!("{name}: git-branch {b:?} writes to a separate branch {write:?} in Image Updater; tagwatch commits to {base:?} (use update = \"pull-request\" to review changes instead)"),
                );
            }
            if !base.is_empty() {
                found.branches.push((base.to_string(), o.clone()));
            }
        }
        None => {
            let revision = source.and_then(|s| s.at("targetRevision"));
            if let Some(r) =
                revision.filter(|r| r.str().is_some_and(|v| !v.is_empty() && v != "HEAD"))
            {
                found
                    .branches
                    .push((r.str().unwrap_or_default().to_string(), app.origin_of(r)));
            }
        }
    }

    found.candidates.push(Candidate {
        name,
        image: image.to_string(),
        origin: ref_origin.clone(),
        notes,
        strategy,
        constraint,
        allow: allow.map(|(re, _)| re),
        extract: None,
        ignore,
        targets: vec![Target {
            env,
            env_note,
            file,
            place,
            format,
        }],
        pending,
    });
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn name_patterns_glob() {
        assert!(glob("my-app-*", "my-app-dev"));
        assert!(glob("*", "x"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("my-app-*", "other"));
        assert!(!glob("a", "ab"));
    }
}
