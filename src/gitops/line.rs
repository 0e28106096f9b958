//! The branch's first-parent line, indexed by the paths each commit
//! changed: what lets every target's history walk cost the commits that
//! touched its file, not every commit on the line.
//!
//! Why: each cycle derives every target's denials from the value history
//! of its file (a person's revert), walking up to a thousand first-parent
//! commits. Walked once per target, that is targets × commits tree
//! lookups: 5,000 targets on a line of 1,000 commits cost 5 million, about
//! 20 s a cycle (issue 20's write-phase scene). Indexed, the line costs one
//! tree-to-tree diff per commit (libgit2 skips subtrees whose ids are
//! equal, so a commit touching one file costs the trees on that file's
//! path), and a target's walk visits only the commits that changed its
//! file.
//!
//! The index is derived from git and never stored: it is rebuilt when the
//! branch moves, and what each commit changed is remembered by commit id
//! (a commit never changes), so a cycle that finds ten new commits diffs
//! ten.

use std::collections::HashMap;
use std::sync::Arc;

use git2::{Oid, Repository};

/// The newest commits of the first-parent line from one head, and for each
/// path the commits that changed it.
#[derive(Default)]
pub(super) struct Line {
    /// The head the index was built from, and how deep it reaches.
    head: Option<Oid>,
    depth: usize,
    /// Newest first: `commits[0]` is the head.
    commits: Vec<Oid>,
    /// Path → positions in `commits` of the commits that changed it,
    /// newest first.
    by_path: HashMap<Arc<str>, Vec<u32>>,
    /// What each commit changed against its first parent (all its paths
    /// for a root commit). Kept across rebuilds for the commits still on
    /// the line.
    changed: HashMap<Oid, Arc<[Arc<str>]>>,
}

impl Line {
    /// Makes the index cover the `depth` newest commits from `head`,
    /// rebuilding it if the branch moved or a deeper walk is asked for.
    /// A commit that cannot be read ends the line there, as a walk would.
    pub(super) fn ensure(&mut self, repo: &Repository, head: Oid, depth: usize) {
        if self.head == Some(head) && self.depth >= depth {
            return;
        }
        let depth = depth.max(self.depth);
        let mut commits = Vec::new();
        let mut changed = HashMap::new();
        let mut next = repo.find_commit(head).ok();
        while let Some(commit) = next.take() {
            if commits.len() >= depth {
                break;
            }
            let id = commit.id();
            let paths = match self.changed.get(&id) {
                Some(paths) => Arc::clone(paths),
                None => paths_changed(repo, &commit),
            };
            changed.insert(id, paths);
            commits.push(id);
            next = commit.parent(0).ok();
        }
        let mut by_path: HashMap<Arc<str>, Vec<u32>> = HashMap::new();
        for (i, id) in commits.iter().enumerate() {
            for path in changed[id].iter() {
                by_path.entry(Arc::clone(path)).or_default().push(i as u32);
            }
        }
        *self = Line {
            head: Some(head),
            depth,
            commits,
            by_path,
            changed,
        };
    }

    /// The commits among the `limit` newest that changed `path` against
    /// their first parent, newest first.
    pub(super) fn changes_of(&self, path: &str, limit: usize) -> impl Iterator<Item = Oid> + '_ {
        self.by_path
            .get(path)
            .into_iter()
            .flatten()
            .take_while(move |&&i| (i as usize) < limit)
            .map(|&i| self.commits[i as usize])
    }
}

/// The paths `commit` changed against its first parent: added, deleted,
/// modified, or changed in kind (all of its paths for a root commit).
/// Renames are not looked for, so a rename is its two paths.
fn paths_changed(repo: &Repository, commit: &git2::Commit<'_>) -> Arc<[Arc<str>]> {
    let mut paths = Vec::new();
    if let Ok(tree) = commit.tree() {
        let parent = commit.parent(0).ok().and_then(|p| p.tree().ok());
        diff_trees(
            repo,
            parent.as_ref(),
            Some(&tree),
            &mut String::new(),
            &mut paths,
        );
    }
    Arc::from(paths)
}

/// Appends to `out` every path below `prefix` whose entry differs between
/// `old` and `new` (`None` is an empty tree).
///
/// Not libgit2's tree-to-tree diff: that builds the full path of every
/// entry it walks past, so a commit touching one file in a directory of
/// 5,000 entries cost about 24 ms, and a line of 1,000 such commits 24 s
/// (issue 20's scene). Here both trees' entries, already sorted, are
/// merged by name and only unequal ids are looked at: a subtree whose id
/// is unchanged is skipped whole, and a path string is built only for
/// what changed.
fn diff_trees(
    repo: &Repository,
    old: Option<&git2::Tree<'_>>,
    new: Option<&git2::Tree<'_>>,
    prefix: &mut String,
    out: &mut Vec<Arc<str>>,
) {
    let entries = |tree: Option<&git2::Tree<'_>>| tree.map_or(0, |t| t.len());
    let (mut i, mut j) = (0, 0);
    let (old_len, new_len) = (entries(old), entries(new));
    while i < old_len || j < new_len {
        let a = old.and_then(|t| t.get(i));
        let b = new.and_then(|t| t.get(j));
        // Entries are sorted by their name's bytes with a tree's name as
        // if it ended in '/': compare the same way to stay in step.
        let order = match (&a, &b) {
            (Some(a), Some(b)) => git_order(a, b),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, _) => std::cmp::Ordering::Greater,
        };
        let (a, b) = match order {
            std::cmp::Ordering::Less => {
                i += 1;
                (a, None)
            }
            std::cmp::Ordering::Greater => {
                j += 1;
                (None, b)
            }
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
                if a.as_ref().map(|e| (e.id(), e.filemode()))
                    == b.as_ref().map(|e| (e.id(), e.filemode()))
                {
                    continue;
                }
                (a, b)
            }
        };
        let name = a.as_ref().or(b.as_ref()).map(|e| e.name_bytes().to_vec());
        let Some(name) = name.and_then(|n| String::from_utf8(n).ok()) else {
            continue;
        };
        let len = prefix.len();
        prefix.push_str(&name);
        let as_tree = |e: &Option<git2::TreeEntry<'_>>| {
            e.as_ref()
                .filter(|e| e.kind() == Some(git2::ObjectType::Tree))
                .and_then(|e| repo.find_tree(e.id()).ok())
        };
        let (old_tree, new_tree) = (as_tree(&a), as_tree(&b));
        let file = |e: &Option<git2::TreeEntry<'_>>| {
            e.as_ref()
                .is_some_and(|e| e.kind() != Some(git2::ObjectType::Tree))
        };
        // A file on either side is a change at this path; a tree on either
        // side holds changes below it.
        if file(&a) || file(&b) {
            out.push(Arc::from(prefix.as_str()));
        }
        if old_tree.is_some() || new_tree.is_some() {
            prefix.push('/');
            diff_trees(repo, old_tree.as_ref(), new_tree.as_ref(), prefix, out);
        }
        prefix.truncate(len);
    }
}

/// Two tree entries in git's order: by name, a tree's name as if it
/// ended in '/'.
fn git_order(a: &git2::TreeEntry<'_>, b: &git2::TreeEntry<'_>) -> std::cmp::Ordering {
    let tail = |e: &git2::TreeEntry<'_>| -> &'static [u8] {
        if e.kind() == Some(git2::ObjectType::Tree) {
            b"/"
        } else {
            b""
        }
    };
    a.name_bytes()
        .iter()
        .chain(tail(a))
        .cmp(b.name_bytes().iter().chain(tail(b)))
}
