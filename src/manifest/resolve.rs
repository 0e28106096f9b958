//! Path resolution: walking a [`KeyPath`] through the flat tree of one or more documents to
//! exactly one node, with messages that say where the walk stopped and why. Owns uniqueness
//! (duplicate keys, several matching list entries or documents); it does not look at bytes.

use super::path::{KeyPath, Step};
use super::tree::{Kind, Tree};
use super::{Document, EditError};

/// The outcome of walking a path through one document.
enum Walk {
    /// The node the path leads to, and every node passed on the way (for the anchor check).
    Found { node: usize, trail: Vec<usize> },
    /// How many steps matched before the walk failed, and why it failed.
    Missing { depth: usize, reason: Miss },
}

/// Why a path does not lead anywhere in one document: "not here", as opposed to a hard
/// failure (an [`EditError`]). Phrased for the user, with the line the walk stopped at.
#[derive(Debug, thiserror::Error)]
pub(super) enum Miss {
    #[error("no key {key:?} {under} at line {line}{}", if *.merge {
        "; the mapping has a merge key (<<), and values merged from an anchor are not edited"
    } else {
        ""
    })]
    NoKey {
        key: String,
        under: String,
        line: usize,
        /// The mapping has a `<<` merge key, which may be where the user expected the key.
        merge: bool,
    },
    #[error("{list} has {len} item(s); index [{index}] is out of range (line {line})")]
    OutOfRange {
        list: String,
        len: usize,
        index: usize,
        line: usize,
    },
    #[error("no element of {list} has {field} = {value:?} (line {line})")]
    NoElement {
        list: String,
        field: String,
        value: String,
        line: usize,
    },
    #[error("expected {expected} {under} but found {found} (line {line})")]
    WrongKind {
        expected: &'static str,
        under: String,
        found: &'static str,
        line: usize,
    },
}

/// Where in the path a walk is, for phrasing messages.
pub(super) fn under(path: &KeyPath, i: usize) -> String {
    if i == 0 {
        "at the top level".to_string()
    } else {
        format!("under {:?}", path.prefix(i - 1))
    }
}

pub(super) fn describe(kind: Kind) -> &'static str {
    match kind {
        Kind::Scalar(_) => "a scalar",
        Kind::MappingStart => "a mapping",
        Kind::SequenceStart => "a list",
        Kind::Alias => "an alias",
        _ => "not a node",
    }
}

fn walk(tree: &Tree, root: usize, path: &KeyPath) -> Result<Walk, EditError> {
    let mut current = root;
    let mut trail = vec![root];
    for (i, step) in path.steps.iter().enumerate() {
        let node = tree.node(current)?;
        let line = node.line as usize;
        let next = match (step, node.kind) {
            (Step::Key(key), Kind::MappingStart) => find_key(tree, current, key, path, i, line)?,
            (Step::Index(n), Kind::SequenceStart) => {
                tree.children(current)
                    .nth(*n)
                    .ok_or_else(|| Miss::OutOfRange {
                        list: quoted_prefix(path, i),
                        len: tree.children(current).count(),
                        index: *n,
                        line,
                    })
            }
            (Step::Select { field, value }, Kind::SequenceStart) => {
                select(tree, current, field, value, path, i, line)?
            }
            (step, kind) => Err(Miss::WrongKind {
                expected: expected(step),
                under: under(path, i),
                found: describe(kind),
                line,
            }),
        };
        match next {
            Ok(id) => {
                current = id;
                trail.push(id);
            }
            Err(reason) => return Ok(Walk::Missing { depth: i, reason }),
        }
    }
    trail.pop();
    Ok(Walk::Found {
        node: current,
        trail,
    })
}

pub(super) fn expected(step: &Step) -> &'static str {
    match step {
        Step::Key(_) => "a mapping",
        Step::Index(_) | Step::Select { .. } => "a list",
    }
}

/// The list a selector applies to, named for messages.
fn quoted_prefix(path: &KeyPath, i: usize) -> String {
    if i == 0 {
        "the top-level list".to_string()
    } else {
        format!("{:?}", path.prefix(i - 1))
    }
}

fn node_lines(tree: &Tree, ids: impl Iterator<Item = usize>) -> Vec<usize> {
    ids.filter_map(|id| tree.nodes.get(id).map(|n| n.line as usize))
        .collect()
}

/// Finds the value of `key` in mapping node `mapping`. `Ok(Err(reason))` is "not here";
/// `Err` is a hard failure (a duplicate key makes the path ambiguous).
pub(super) fn find_key(
    tree: &Tree,
    mapping: usize,
    key: &str,
    path: &KeyPath,
    i: usize,
    line: usize,
) -> Result<Result<usize, Miss>, EditError> {
    let mut hits = Vec::new();
    let mut has_merge = false;
    for (k, v) in tree.pairs(mapping) {
        let Some(v) = v else { continue };
        match tree.scalar(k) {
            Some(name) if name == key => hits.push((k, v)),
            Some("<<") => has_merge = true,
            _ => {}
        }
    }
    match hits.as_slice() {
        [] => Ok(Err(Miss::NoKey {
            key: key.to_string(),
            under: under(path, i),
            line,
            merge: has_merge,
        })),
        [(_, v)] => Ok(Ok(*v)),
        many => Err(EditError::Ambiguous {
            count: many.len(),
            places: format!(
                "lines {}",
                join_numbers(&node_lines(tree, many.iter().map(|(k, _)| *k)))
            ),
            hint: format!(
                "the key {key:?} appears {} times {}",
                many.len(),
                under(path, i)
            ),
        }),
    }
}

/// Finds the one element of list node `list` that is a mapping whose `field` holds `value`.
pub(super) fn select(
    tree: &Tree,
    list: usize,
    field: &str,
    value: &str,
    path: &KeyPath,
    i: usize,
    line: usize,
) -> Result<Result<usize, Miss>, EditError> {
    let matches_field = |element: usize| -> bool {
        tree.nodes
            .get(element)
            .is_some_and(|n| n.kind == Kind::MappingStart)
            && tree.pairs(element).any(|(k, v)| {
                tree.scalar(k) == Some(field) && v.and_then(|v| tree.scalar(v)) == Some(value)
            })
    };
    let hits: Vec<usize> = tree.children(list).filter(|&c| matches_field(c)).collect();
    match hits.as_slice() {
        [] => Ok(Err(Miss::NoElement {
            list: quoted_prefix(path, i),
            field: field.to_string(),
            value: value.to_string(),
            line,
        })),
        [one] => Ok(Ok(*one)),
        many => Err(EditError::Ambiguous {
            count: many.len(),
            places: format!(
                "lines {}",
                join_numbers(&node_lines(tree, many.iter().copied()))
            ),
            hint: format!(
                "{} elements of {} have {field} = {value:?}",
                many.len(),
                quoted_prefix(path, i)
            ),
        }),
    }
}

/// "4", "4 and 9", "4, 9 and 12".
pub(super) fn join_numbers(n: &[usize]) -> String {
    match n {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => {
            let init: Vec<String> = init.iter().map(usize::to_string).collect();
            format!("{} and {last}", init.join(", "))
        }
    }
}

/// A unique match of the path: the document it is in, the node, and the nodes passed on the way.
pub(super) struct Hit {
    doc: usize,
    pub(super) node: usize,
    pub(super) trail: Vec<usize>,
}

/// Resolves `path` in the selected document(s) to exactly one node.
pub(super) fn resolve(tree: &Tree, path: &KeyPath, doc: &Document) -> Result<Hit, EditError> {
    let candidates: Vec<usize> = match doc {
        Document::Any => (0..tree.docs.len()).collect(),
        Document::Index(n) if *n < tree.docs.len() => vec![*n],
        Document::Index(n) => {
            return Err(EditError::NotFound {
                reason: format!(
                    "no document {n}: the file has {} document(s), numbered from 0",
                    tree.docs.len()
                ),
            });
        }
        Document::Select(conditions) => {
            let chosen: Vec<usize> = (0..tree.docs.len())
                .filter(|&d| {
                    let Some(Some(root)) = tree.docs.get(d).copied() else {
                        return false;
                    };
                    conditions
                        .iter()
                        .all(|(path, want)| match walk(tree, root, path) {
                            Ok(Walk::Found { node, .. }) => tree.node(node).is_ok_and(|n| {
                                matches!(n.kind, Kind::Scalar(_)) && tree.value(n) == want
                            }),
                            _ => false,
                        })
                })
                .collect();
            if chosen.is_empty() {
                let wanted: Vec<String> =
                    conditions.iter().map(|(p, v)| format!("{p}={v}")).collect();
                return Err(EditError::NotFound {
                    reason: format!("no document has {}", wanted.join(", ")),
                });
            }
            chosen
        }
    };
    let mut hits = Vec::new();
    let mut best_miss: Option<(usize, String)> = None;
    for d in candidates {
        let Some(Some(root)) = tree.docs.get(d).copied() else {
            continue;
        };
        match walk(tree, root, path)? {
            Walk::Found { node, trail } => hits.push(Hit {
                doc: d,
                node,
                trail,
            }),
            Walk::Missing { depth, reason } => {
                let reason = if tree.docs.len() > 1 {
                    format!("{reason} in document {d}")
                } else {
                    reason.to_string()
                };
                if best_miss.as_ref().is_none_or(|(best, _)| depth > *best) {
                    best_miss = Some((depth, reason));
                }
            }
        }
    }
    if hits.len() > 1 {
        let places: Vec<String> = hits
            .iter()
            .map(|h| {
                let line = tree.nodes.get(h.node).map_or(0, |n| n.line as usize);
                format!("document {} line {line}", h.doc)
            })
            .collect();
        return Err(EditError::Ambiguous {
            count: hits.len(),
            places: places.join(", "),
            hint: "use document = N to pick one".to_string(),
        });
    }
    hits.pop().ok_or_else(|| EditError::NotFound {
        reason: best_miss
            .map(|(_, r)| r)
            .unwrap_or_else(|| "the file holds no YAML document".to_string()),
    })
}
