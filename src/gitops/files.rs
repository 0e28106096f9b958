//! What preview environments need from the branch: the files under a
//! folder, the commit that created a file (to tell tagwatch's preview
//! files from a person's), and committing a file's removal. Writing
//! content is `commit_file`'s in the parent module.

use std::path::Path;

use git2::{ObjectType, TreeWalkMode, TreeWalkResult};

use super::{Checkout, CommitId, GitError};
use crate::config::RepoPath;

impl Checkout {
    /// Every file path under `folder` (recursively) at the local branch's
    /// head; `folder` "" is the whole tree. Empty when there is no such folder.
    pub fn files_under(&self, folder: &str) -> Result<Vec<String>, GitError> {
        let tree = self.tree_at(&self.local_ref())?;
        let sub = if folder.is_empty() {
            tree
        } else {
            match tree.get_path(Path::new(folder)) {
                Ok(entry) if entry.kind() == Some(ObjectType::Tree) => self
                    .repo
                    .find_tree(entry.id())
                    .map_err(|e| self.local_error(e))?,
                _ => return Ok(Vec::new()),
            }
        };
        let mut out = Vec::new();
        let prefix = if folder.is_empty() {
            String::new()
        } else {
            format!("{folder}/")
        };
        sub.walk(TreeWalkMode::PreOrder, |dir, entry| {
            if entry.kind() == Some(ObjectType::Blob)
                && let Ok(name) = entry.name()
            {
                out.push(format!("{prefix}{dir}{name}"));
            }
            TreeWalkResult::Ok
        })
        .map_err(|e| self.local_error(e))?;
        Ok(out)
    }

    /// The message of the commit that created `path` as the head has it:
    /// the newest first-parent commit whose tree holds the file while its
    /// parent's does not. `None` when not found within `limit` commits.
    pub fn creation_message(&self, path: &RepoPath, limit: usize) -> Option<String> {
        let head = self.head().ok()?;
        let mut walk = self.repo.revwalk().ok()?;
        walk.push(head.0).ok()?;
        walk.simplify_first_parent().ok()?;
        let has = |commit: &git2::Commit<'_>| {
            commit
                .tree()
                .ok()
                .and_then(|t| t.get_path(Path::new(path.as_str())).ok())
                .is_some()
        };
        for oid in walk.take(limit).filter_map(Result::ok) {
            let commit = self.repo.find_commit(oid).ok()?;
            if !has(&commit) {
                // The file is absent here, so it was created later; only
                // reached when the head itself lacks it.
                return None;
            }
            let created = match commit.parent(0) {
                Ok(parent) => !has(&parent),
                Err(_) => true,
            };
            if created {
                return commit.message().ok().map(str::to_string);
            }
        }
        None
    }

    /// Commits the removal of `path` on the local branch, dated `when`.
    pub fn commit_removal(
        &mut self,
        path: &RepoPath,
        message: &str,
        when: time::OffsetDateTime,
    ) -> Result<CommitId, GitError> {
        let local = self.local_ref();
        crate::metrics::time(&crate::metrics::get().git_duration, "commit", || {
            self.commit_onto(&local, path, None, message, when)
        })
    }
}
