//! The branch's first-parent line, indexed by the paths each commit
//! changed: what lets every target's history walk cost the commits that
//! touched its file, not every commit on the line.
//!
//! Why: each cycle derives every target's denials from the value history
//! of its file (a person's revert), walking up to a thousand first-parent
//! commits. Walked once per target, that is targets × commits tree
//! lookups: 5,000 targets on a line of 1,000 commits cost 5 million, about
//! 20 s a cycle (issue 20's write-phase scene). Indexed, the line costs one
//! tree-to-tree diff per commit (subtrees whose ids are equal are skipped,
//! so a commit touching one file costs the trees on that file's path), and
//! a target's walk visits only the commits that changed its file.
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
    /// Path → the commits that changed it (positions in `commits`),
    /// newest first, with the file's blob before and after each.
    by_path: HashMap<Arc<str>, Vec<(u32, Change)>>,
    /// What each commit changed against its first parent (all its paths
    /// for a root commit). Kept across rebuilds for the commits still on
    /// the line.
    changed: HashMap<Oid, Changes>,
}

/// The paths one commit changed, each with its [`Change`].
type Changes = Arc<[(Arc<str>, Change)]>;

/// A path's blob before (at the first parent) and after a commit: `None`
/// where the path is absent or not a file. Kept so that a walk reads the
/// blobs without looking the path up in either commit's trees, which
/// would load every commit's wide trees into libgit2's object cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Change {
    pub before: Option<Oid>,
    pub after: Option<Oid>,
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
        let mut by_path: HashMap<Arc<str>, Vec<(u32, Change)>> = HashMap::new();
        for (i, id) in commits.iter().enumerate() {
            for (path, change) in changed[id].iter() {
                by_path
                    .entry(Arc::clone(path))
                    .or_default()
                    .push((i as u32, *change));
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
    /// their first parent, newest first, with its blob before and after.
    pub(super) fn changes_of(
        &self,
        path: &str,
        limit: usize,
    ) -> impl Iterator<Item = (Oid, Change)> + '_ {
        self.by_path
            .get(path)
            .into_iter()
            .flatten()
            .take_while(move |(i, _)| (*i as usize) < limit)
            .map(|&(i, change)| (self.commits[i as usize], change))
    }
}

/// The paths `commit` changed against its first parent: added, deleted,
/// modified, or changed in kind (all of its paths for a root commit).
/// Renames are not looked for, so a rename is its two paths.
fn paths_changed(repo: &Repository, commit: &git2::Commit<'_>) -> Changes {
    let mut paths = Vec::new();
    if let Ok(odb) = repo.odb() {
        diff_trees(
            &odb,
            commit.parent(0).ok().map(|p| p.tree_id()),
            Some(commit.tree_id()),
            &mut String::new(),
            &mut paths,
        );
    }
    Arc::from(paths)
}

/// Appends to `out` every path below `prefix` whose entry differs between
/// the trees `old` and `new` (`None` is an empty tree).
///
/// Not libgit2's tree-to-tree diff: that builds the full path of every
/// entry it walks past, so a commit touching one file in a directory of
/// 5,000 entries cost about 24 ms, and a line of 1,000 such commits 24 s
/// (issue 20's scene). Here both trees' entries, already sorted, are
/// merged by name and only unequal ids are looked at: a subtree whose id
/// is unchanged is skipped whole, and a path string is built only for
/// what changed. Trees are read as raw objects, not through libgit2's
/// object cache, which a line of a thousand commits of wide trees would
/// otherwise fill (256 MB) with trees no later read wants.
fn diff_trees(
    odb: &git2::Odb<'_>,
    old: Option<Oid>,
    new: Option<Oid>,
    prefix: &mut String,
    out: &mut Vec<(Arc<str>, Change)>,
) {
    let raw = |id: Option<Oid>| {
        id.and_then(|id| odb.read(id).ok())
            .filter(|o| o.kind() == git2::ObjectType::Tree)
            .map(|o| o.data().to_vec())
            .unwrap_or_default()
    };
    let (old, new) = (raw(old), raw(new));
    let (mut a, mut b) = (Entries(&old).peekable(), Entries(&new).peekable());
    loop {
        let order = match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some(x), Some(y)) => x.git_order(y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
        };
        let (x, y) = match order {
            std::cmp::Ordering::Less => (a.next(), None),
            std::cmp::Ordering::Greater => (None, b.next()),
            std::cmp::Ordering::Equal => {
                let (x, y) = (a.next(), b.next());
                if x == y {
                    continue;
                }
                (x, y)
            }
        };
        let Some(name) = x.or(y).and_then(|e| std::str::from_utf8(e.name).ok()) else {
            continue;
        };
        let len = prefix.len();
        prefix.push_str(name);
        let tree = |e: Option<Entry<'_>>| e.filter(|e| e.is_tree()).and_then(|e| e.oid());
        let file = |e: Option<Entry<'_>>| e.is_some_and(|e| !e.is_tree());
        // A file on either side is a change at this path; a tree on either
        // side holds changes below it.
        if file(x) || file(y) {
            let blob = |e: Option<Entry<'_>>| e.filter(|e| !e.is_tree()).and_then(|e| e.oid());
            let change = Change {
                before: blob(x),
                after: blob(y),
            };
            out.push((Arc::from(prefix.as_str()), change));
        }
        let (old_tree, new_tree) = (tree(x), tree(y));
        if old_tree.is_some() || new_tree.is_some() {
            prefix.push('/');
            diff_trees(odb, old_tree, new_tree, prefix, out);
        }
        prefix.truncate(len);
    }
}

/// One entry of a raw tree object: `<octal mode> <name>\0<20-byte id>`.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Entry<'a> {
    mode: &'a [u8],
    name: &'a [u8],
    id: &'a [u8],
}

impl Entry<'_> {
    fn is_tree(&self) -> bool {
        // "40000"; some old tools wrote "040000".
        let zeros = self.mode.iter().take_while(|&&c| c == b'0').count();
        &self.mode[zeros..] == b"40000"
    }

    fn oid(&self) -> Option<Oid> {
        Oid::from_bytes(self.id).ok()
    }

    /// Git's order: by name, a tree's name as if it ended in '/'.
    fn git_order(&self, other: &Entry<'_>) -> std::cmp::Ordering {
        let tail = |e: &Entry<'_>| -> &'static [u8] { if e.is_tree() { b"/" } else { b"" } };
        self.name
            .iter()
            .chain(tail(self))
            .cmp(other.name.iter().chain(tail(other)))
    }
}

/// The entries of a raw tree object, in its order. A malformed object
/// ends the iteration where it goes wrong.
struct Entries<'a>(&'a [u8]);

impl<'a> Iterator for Entries<'a> {
    type Item = Entry<'a>;

    fn next(&mut self) -> Option<Entry<'a>> {
        let space = self.0.iter().position(|&c| c == b' ')?;
        let nul = space + self.0[space..].iter().position(|&c| c == 0)?;
        let end = nul + 1 + 20;
        if end > self.0.len() {
            self.0 = &[];
            return None;
        }
        let entry = Entry {
            mode: &self.0[..space],
            name: &self.0[space + 1..nul],
            id: &self.0[nul + 1..end],
        };
        self.0 = &self.0[end..];
        Some(entry)
    }
}
