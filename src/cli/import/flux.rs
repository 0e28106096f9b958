//! Reading Flux image automation: `ImageRepository`, `ImagePolicy`,
//! `ImageUpdateAutomation` and `GitRepository` objects, and the setter
//! markers (`# {"$imagepolicy": "NS:NAME[:tag|:digest|:name]"}`) in the
//! YAML files under each automation's `update.path`. One policy with at
//! least one marker becomes one app, one marker one target. Owns Flux's
//! semantics and the marker grammar.

use std::collections::BTreeMap;
use std::path::Path;

use super::yaml::{self, Node, Value};
use super::{
    Candidate, Found, Input, Origin, Place, Strategy, Target, Warning, collect, display,
    env_from_path, split_image,
};
use crate::manifest::KeyPath;

/// `(namespace, name)`: how Flux objects refer to each other.
type Key = (String, String);

struct Object<'a> {
    node: &'a Node,
    file: &'a str,
}

impl Object<'_> {
    fn origin(&self, node: &Node) -> Origin {
        Origin {
            file: self.file.to_string(),
            line: node.line,
        }
    }

    fn here(&self) -> Origin {
        self.origin(self.node.at("metadata.name").unwrap_or(self.node))
    }
}

fn key_of(node: &Node) -> Option<Key> {
    let name = node.str_at("metadata.name")?;
    let ns = node.str_at("metadata.namespace").unwrap_or("default");
    Some((ns.to_string(), name.to_string()))
}

/// A reference (`sourceRef`, `imageRepositoryRef`) from an object in `ns`.
fn ref_key(node: Option<&Node>, ns: &str) -> Option<Key> {
    let node = node?;
    let name = node.str_at("name")?;
    Some((
        node.str_at("namespace").unwrap_or(ns).to_string(),
        name.to_string(),
    ))
}

/// A setter marker found in a file.
struct Marker {
    origin: Origin,
    policy: Key,
    field: Option<String>,
    file: String,
    key: String,
    document: Option<usize>,
}

/// Reads the Flux objects in `inputs`, then the markers under the
/// automations' paths below `root`.
pub fn read(inputs: &[Input], root: &Path) -> Found {
    let mut found = Found::default();
    let mut repositories: BTreeMap<Key, Object<'_>> = BTreeMap::new();
    let mut policies: BTreeMap<Key, Object<'_>> = BTreeMap::new();
    let mut automations: Vec<Object<'_>> = Vec::new();
    let mut git_repositories: BTreeMap<Key, Object<'_>> = BTreeMap::new();
    for input in inputs {
        for doc in &input.docs {
            let api = doc.str_at("apiVersion").unwrap_or_default();
            let object = Object {
                node: doc,
                file: &input.name,
            };
            let Some(key) = key_of(doc) else { continue };
            match (doc.str_at("kind").unwrap_or_default(), api) {
                ("ImageRepository", a) if a.starts_with("image.toolkit.fluxcd.io/") => {
                    repositories.insert(key, object);
                }
                ("ImagePolicy", a) if a.starts_with("image.toolkit.fluxcd.io/") => {
                    policies.insert(key, object);
                }
                ("ImageUpdateAutomation", a) if a.starts_with("image.toolkit.fluxcd.io/") => {
                    automations.push(object);
                }
                ("GitRepository", a) if a.starts_with("source.toolkit.fluxcd.io/") => {
                    git_repositories.insert(key, object);
                }
                _ => {}
            }
        }
    }

    // The markers, from every file under any automation's update.path.
    let mut files = Vec::new();
    for automation in &automations {
        let node = automation.node;
        let ns = key_of(node).map(|k| k.0).unwrap_or_default();
        let here = automation.here();
        if let Some(strategy) = node.str_at("spec.update.strategy")
            && strategy != "Setters"
        {
            found.warn(
                &here,
                format!("update.strategy {strategy:?} is not Setters; its files are read for markers anyway"),
            );
        }
        let path = node.str_at("spec.update.path").unwrap_or(".");
        let dir = root.join(path.trim_start_matches('/'));
        if let Err(e) = collect(&dir, false, &mut files) {
            found.warn(
                &here,
                format!("update.path {path:?}: {e}; no markers read there"),
            );
        }
        git_settings(automation, &ns, &git_repositories, &mut found);
    }
    files.sort();
    files.dedup();
    let mut markers = Vec::new();
    for file in &files {
        let name = display(file.strip_prefix(root).unwrap_or(file));
        read_markers(file, &name, &mut markers, &mut found);
    }

    // One app per policy that some marker names.
    let mut by_policy: BTreeMap<Key, Vec<Marker>> = BTreeMap::new();
    for m in markers {
        if policies.contains_key(&m.policy) {
            by_policy.entry(m.policy.clone()).or_default().push(m);
        } else {
            found.warn(
                &m.origin,
                format!(
                    "marker names ImagePolicy {}:{}, which is not in the input; not migrated",
                    m.policy.0, m.policy.1
                ),
            );
        }
    }
    for (key, policy) in &policies {
        match by_policy.remove(key) {
            Some(markers) => candidate(policy, key, markers, &repositories, &mut found),
            None => found.warn(
                &policy.here(),
                format!(
                    "no setter marker names ImagePolicy {}:{} under any update.path; not migrated",
                    key.0, key.1
                ),
            ),
        }
    }
    found
}

/// `[git]` facts from one automation and its `GitRepository`.
fn git_settings(
    automation: &Object<'_>,
    ns: &str,
    git_repositories: &BTreeMap<Key, Object<'_>>,
    found: &mut Found,
) {
    let node = automation.node;
    let source = ref_key(node.at("spec.sourceRef"), ns).and_then(|k| git_repositories.get(&k));
    if let Some(source) = source
        && let Some(url) = source.node.at("spec.url").filter(|n| n.str().is_some())
    {
        found.git_urls.push((
            url.str().unwrap_or_default().to_string(),
            source.origin(url),
        ));
    }
    let branch = node
        .at("spec.git.push.branch")
        .or_else(|| node.at("spec.git.checkout.ref.branch"))
        .map(|n| (n, automation.origin(n)))
        .or_else(|| source.and_then(|s| s.node.at("spec.ref.branch").map(|n| (n, s.origin(n)))));
    if let Some((b, origin)) = branch
        && let Some(b) = b.str().filter(|b| !b.is_empty())
    {
        found.branches.push((b.to_string(), origin));
    }
    if let Some(author) = node.at("spec.git.commit.author") {
        let name = author.str_at("name").unwrap_or("Flux");
        if let Some(email) = author.str_at("email") {
            found
                .authors
                .push((format!("{name} <{email}>"), automation.origin(author)));
        }
    }
}

/// Finds the markers in one file.
fn read_markers(path: &Path, name: &str, out: &mut Vec<Marker>, found: &mut Found) {
    let at = |line: usize| Origin {
        file: name.to_string(),
        line,
    };
    let Ok(text) = std::fs::read_to_string(path) else {
        found.warn(
            &at(1),
            "cannot be read as UTF-8 text; no markers read from it",
        );
        return;
    };
    if !text.contains("$imagepolicy") {
        return;
    }
    let docs = match yaml::parse(&text) {
        Ok(docs) => docs,
        Err(e) => {
            found.warn(
                &at(e.line),
                format!("not valid YAML ({}); no markers read from it", e.message),
            );
            return;
        }
    };
    // The key path of the scalar on each line, as tagwatch writes key paths.
    let mut scalars: BTreeMap<usize, (usize, String)> = BTreeMap::new();
    for (index, doc) in docs.iter().enumerate() {
        walk(doc, String::new(), index, &mut scalars);
    }
    let many = docs.len() > 1;
    for (i, line) in text.lines().enumerate() {
        let Some(start) = line.find("{\"$imagepolicy\"") else {
            continue;
        };
        let origin = at(i + 1);
        let json = &line[start..];
        let json = json.find('}').map_or(json, |end| &json[..=end]);
        let value = serde_json::from_str::<serde_json::Value>(json)
            .ok()
            .and_then(|v| v.get("$imagepolicy")?.as_str().map(str::to_string));
        let Some(value) = value else {
            found.warn(
                &origin,
                format!("marker {json:?} is not {{\"$imagepolicy\": \"NS:NAME\"}}; skipped"),
            );
            continue;
        };
        let mut parts = value.splitn(3, ':');
        let (Some(ns), Some(policy)) = (parts.next(), parts.next()) else {
            found.warn(
                &origin,
                format!("marker {value:?} is not NS:NAME[:FIELD]; skipped"),
            );
            continue;
        };
        let Some((document, key)) = scalars.get(&(i + 1)).cloned() else {
            found.warn(
                &origin,
                format!("marker {value:?} is not on the line of a scalar value; skipped"),
            );
            continue;
        };
        if KeyPath::parse(&key).is_err() {
            found.warn(
                &origin,
                format!("the key path {key:?} cannot be expressed for tagwatch; skipped"),
            );
            continue;
        }
        out.push(Marker {
            origin,
            policy: (ns.to_string(), policy.to_string()),
            field: parts.next().map(str::to_string),
            file: name.to_string(),
            key,
            document: many.then_some(document),
        });
    }
}

/// Records the key path of every scalar that is a mapping value or a list
/// item, by line (the first on a line wins, as a marker ends its line).
fn walk(node: &Node, path: String, document: usize, out: &mut BTreeMap<usize, (usize, String)>) {
    match &node.value {
        Value::Scalar(_) => {
            if !path.is_empty() {
                out.entry(node.line).or_insert((document, path));
            }
        }
        Value::Map(entries) => {
            for (k, v) in entries {
                let segment = if k.is_empty() || k.contains(['.', '[', ']', '"', '=', '\'', ' ']) {
                    format!("\"{}\"", k.replace('\\', "\\\\").replace('"', "\\\""))
                } else {
                    k.clone()
                };
                let child = if path.is_empty() {
                    segment
                } else {
                    format!("{path}.{segment}")
                };
                walk(v, child, document, out);
            }
        }
        Value::Seq(items) => {
            let names: Vec<Option<&str>> = items.iter().map(|i| i.str_at("name")).collect();
            for (index, item) in items.iter().enumerate() {
                // An element chosen by its unique `name` survives reordering;
                // an index is the fallback.
                let unique_name = names[index].filter(|n| {
                    names.iter().filter(|m| **m == Some(*n)).count() == 1
                        && !n.contains([']', '=', ',', '"'])
                });
                let step = match unique_name {
                    Some(n) => format!("[name={n}]"),
                    None => format!("[{index}]"),
                };
                walk(item, format!("{path}{step}"), document, out);
            }
        }
    }
}

/// Maps one policy and its markers, or explains why not.
fn candidate(
    policy: &Object<'_>,
    key: &Key,
    markers: Vec<Marker>,
    repositories: &BTreeMap<Key, Object<'_>>,
    found: &mut Found,
) {
    let name = key.1.clone();
    let here = policy.here();
    let node = policy.node;
    let mut notes = vec![format!("ImagePolicy {}:{}", key.0, key.1)];
    let Some(repo) =
        ref_key(node.at("spec.imageRepositoryRef"), &key.0).and_then(|k| repositories.get(&k))
    else {
        found.warn(
            &here,
            format!(
                "{name}: its imageRepositoryRef names no ImageRepository in the input; not migrated"
            ),
        );
        return;
    };
    let Some(image) = repo.node.str_at("spec.image") else {
        found.warn(
            &repo.here(),
            format!("{name}: the ImageRepository has no spec.image; not migrated"),
        );
        return;
    };
    let (image, _) = split_image(image);

    let p = node.at("spec.policy");
    let (strategy, constraint) = if let Some(range) = p.and_then(|p| p.at("semver.range")) {
        (Strategy::Semver, range.str().map(str::to_string))
    } else if let Some(a) = p.and_then(|p| p.get("alphabetical")) {
        if let Some(order) = a.at("order").filter(|o| o.str() == Some("desc")) {
            found.warn(
                &policy.origin(order),
                format!("{name}: alphabetical order \"desc\" (choosing the lowest tag) has no tagwatch equivalent; not migrated"),
            );
            return;
        }
        (Strategy::Alphabetical, None)
    } else if let Some(n) = p.and_then(|p| p.get("numerical")) {
        if let Some(order) = n.at("order").filter(|o| o.str() == Some("desc")) {
            found.warn(
                &policy.origin(order),
                format!("{name}: numerical order \"desc\" (choosing the lowest number) has no tagwatch equivalent; not migrated"),
            );
            return;
        }
        (Strategy::Numeric, None)
    } else {
        found.warn(
            &here,
            format!("{name}: spec.policy is none of semver, alphabetical, numerical; not migrated"),
        );
        return;
    };
    let allow = node.str_at("spec.filterTags.pattern").map(str::to_string);
    let extract = node.str_at("spec.filterTags.extract").map(str::to_string);

    // exclusionList is regexes, tagwatch's ignore is globs: the simple ones
    // translate exactly; the rest are reported.
    let mut ignore = Vec::new();
    match repo.node.at("spec.exclusionList") {
        None => {
            ignore.push("*.sig".to_string());
            notes.push("ignore \"*.sig\": Flux's default exclusionList ^.*\\.sig$".to_string());
        }
        Some(list) => {
            for item in list.items() {
                let Some(re) = item.str() else { continue };
                match regex_to_glob(re) {
                    Some(glob) => ignore.push(glob),
                    None => found.warn(
                        &repo.origin(item),
                        format!("{name}: exclusionList regex {re:?} is not a simple glob; dropped, so tags it excluded can be chosen: add an ignore glob or tighten allow"),
                    ),
                }
            }
        }
    }

    let mut targets = Vec::new();
    let mut pending = Vec::new();
    for m in markers {
        let format = match m.field.as_deref() {
            None => "image",
            Some("tag") => "tag",
            Some("digest") => "digest",
            Some("name") => {
                found.warn(
                    &m.origin,
                    format!("{name}: a :name marker sets the image name without a tag, which tagwatch does not write; skipped"),
                );
                continue;
            }
            Some(other) => {
                found.warn(
                    &m.origin,
                    format!("{name}: unknown marker field {other:?}; skipped"),
                );
                continue;
            }
        };
        let (env, env_note) = match env_from_path(&m.file) {
            Some(env) => (env, Some(format!("inferred from the path {}", m.file))),
            None => {
                pending.push(Warning {
                    origin: m.origin.clone(),
                    message: format!(
                        "{name}: no envs/<env>/ in {:?}; env \"default\" used",
                        m.file
                    ),
                });
                (
                    "default".to_string(),
                    Some("inferred: nothing names an env".to_string()),
                )
            }
        };
        targets.push(Target {
            env,
            env_note,
            file: m.file,
            place: Place::Yaml {
                key: m.key,
                document: m.document,
            },
            format: Some(format),
        });
    }
    if targets.is_empty() {
        return;
    }
    found.candidates.push(Candidate {
        name,
        image: image.to_string(),
        origin: here,
        notes,
        strategy,
        constraint,
        allow,
        extract,
        ignore,
        targets,
        pending,
    });
}

/// The glob matching exactly what `re` matches, for regexes made of
/// literals, `.`, `.*` and anchors; `None` for anything else.
fn regex_to_glob(re: &str) -> Option<String> {
    let (body, anchored_start) = match re.strip_prefix('^') {
        Some(b) => (b, true),
        None => (re, false),
    };
    let (body, anchored_end) = match body.strip_suffix('$') {
        Some(b) if !b.ends_with('\\') => (b, true),
        _ => (body, false),
    };
    let mut glob = String::new();
    if !anchored_start {
        glob.push('*');
    }
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '.' if chars.peek() == Some(&'*') => {
                chars.next();
                glob.push('*');
            }
            '.' => glob.push('?'),
            '\\' => match chars.next()? {
                e @ ('.' | '-' | '_' | '+') => glob.push(e),
                _ => return None,
            },
            c if c.is_ascii_alphanumeric() || c == '-' || c == '_' => glob.push(c),
            _ => return None,
        }
    }
    if !anchored_end {
        glob.push('*');
    }
    Some(glob)
}

#[cfg(test)]
mod tests {
    use super::regex_to_glob;

    #[test]
    fn simple_exclusion_regexes_become_globs() {
        assert_eq!(regex_to_glob(r"^.*\.sig$").as_deref(), Some("*.sig"));
        assert_eq!(regex_to_glob("^latest$").as_deref(), Some("latest"));
        assert_eq!(regex_to_glob("-rc").as_deref(), Some("*-rc*"));
        assert_eq!(regex_to_glob(r"^v\d+$"), None);
        assert_eq!(regex_to_glob("^(a|b)$"), None);
    }
}
