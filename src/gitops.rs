//! The GitOps repository: one persistent clone, read and written through
//! libgit2, with no working tree.
//!
//! The clone is bare. Files are read from the branch's tree and commits are
//! built straight in the object database (`TreeUpdateBuilder`), so a cycle
//! never checks out the 20,000 files of a large repository and never leaves
//! a half-written file on disk: an object is either in the database or not.
//! The local branch is reset to the remote's on every [`Checkout::sync`], so
//! the clone holds no state of its own; deleting it loses nothing.
//!
//! Everything here blocks; callers run it on a blocking thread. This module
//! owns git mechanics only: it does not decide what to write.

use std::path::{Path, PathBuf};

use git2::{
    AutotagOption, ErrorCode, FetchOptions, FileMode, Oid, PushOptions, RemoteCallbacks,
    Repository, Signature, build::TreeUpdateBuilder,
};

use crate::config::{GitSettings, RepoPath};
use crate::trailers::Promotion;

const REMOTE: &str = "origin";

/// tagwatch's own branches, one per pull request (`tagwatch/<app>/<env>`).
/// The only branches it ever force-pushes.
pub const PROPOSAL_PREFIX: &str = "tagwatch/";

/// How long to wait for a git server to accept a connection.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a git server may go silent mid-transfer before the fetch or
/// push fails. Set process-wide by the binary at start-up (libgit2's
/// default is to wait forever).
pub const IO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A failure talking to the remote or using the clone.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The remote refused the push because the branch moved; fetching and
    /// rebuilding the commits on the new head will fix it.
    #[error("{remote}: push to {branch} rejected: {message}")]
    Rejected {
        remote: String,
        branch: String,
        message: String,
    },
    #[error("{remote}: {operation} failed: {message}")]
    Remote {
        remote: String,
        operation: &'static str,
        message: String,
    },
    #[error("{remote}: branch {branch:?} does not exist on the remote")]
    NoBranch { remote: String, branch: String },
    #[error("checkout {}: {message}", path.display())]
    Local { path: PathBuf, message: String },
    /// A file on the branch is over [`MAX_BLOB_BYTES`]; found from the
    /// object's header, before any of it is inflated.
    #[error("{path}: file is {size} bytes; the limit is {limit}")]
    TooLarge {
        path: String,
        size: usize,
        limit: usize,
    },
    /// Another process holds a lock in the clone; the next cycle retries.
    #[error("checkout {}: {message} (held by another process; retrying next cycle)", path.display())]
    Busy { path: PathBuf, message: String },
}

impl GitError {
    /// A fixed name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            GitError::Rejected { .. } => "rejected",
            GitError::Remote { operation, .. } => operation,
            GitError::NoBranch { .. } => "no_branch",
            GitError::Local { .. } => "local",
            GitError::TooLarge { .. } => "too_large",
            GitError::Busy { .. } => "busy",
        }
    }
}

/// The largest file read from the branch: the editor's own limit
/// (`manifest::MAX_FILE_BYTES`), checked here from the object's header so
/// that a huge blob is never inflated into memory just to be refused.
pub const MAX_BLOB_BYTES: usize = 10 * 1024 * 1024;

/// How old a lock file must be before it is taken for one left by a killed
/// process rather than held by a live one.
const STALE_LOCK: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether the lock named in libgit2's "failed to lock file '…'" message is
/// older than [`STALE_LOCK`]. A lock that is gone, or a message without a
/// path, is not stale: the next attempt will see.
fn lock_is_stale(message: &str) -> bool {
    let Some(path) = message.split('\'').nth(1) else {
        return false;
    };
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age >= STALE_LOCK)
}

/// A promotion as the branch records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub promotion: Promotion,
    /// The commit time: when the promotion reached the branch.
    pub at: time::OffsetDateTime,
    pub commit: String,
}

/// A persistent bare clone of one remote branch.
pub struct Checkout {
    repo: Repository,
    settings: GitSettings,
    /// Set when a write found a lock file in the clone. The clone is this
    /// process's alone, so a lock no one here holds was left by a process
    /// killed mid-write and will never go away: the cycle discards such a
    /// clone and clones again (see [`Checkout::is_damaged`]).
    damaged: std::cell::Cell<bool>,
}

impl std::fmt::Debug for Checkout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkout")
            .field("path", &self.repo.path())
            .finish()
    }
}

impl Checkout {
    /// Opens the clone of this remote and branch under `checkout_dir`, or
    /// creates it.
    ///
    /// `checkout_dir` is a directory of clones, one per remote and branch,
    /// named by [`clone_name`]. It may be an empty volume mount (a
    /// Kubernetes emptyDir), which could not be renamed into place itself. A
    /// clone is made in a temporary sibling and renamed in, so a crash never
    /// leaves a half-made clone where the next start would trust it; a
    /// clone that no longer opens is ours, so it is removed and made again.
    pub fn open_or_create(settings: &GitSettings) -> Result<Checkout, GitError> {
        let root = &settings.checkout_dir;
        let dir = root.join(clone_name(&settings.url, &settings.branch));
        let local = |message: String| GitError::Local {
            path: dir.clone(),
            message,
        };
        match Repository::open_bare(&dir) {
            Ok(repo) => {
                return Ok(Checkout {
                    repo,
                    settings: settings.clone(),
                    damaged: Default::default(),
                });
            }
            Err(e) if dir.exists() => {
                tracing::warn!(path = %dir.display(), error = e.message(), "clone is damaged; cloning again");
                std::fs::remove_dir_all(&dir).map_err(|e| local(e.to_string()))?;
            }
            Err(_) => {}
        }
        std::fs::create_dir_all(root).map_err(|e| local(e.to_string()))?;
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-clone-")
            .tempdir_in(root)
            .map_err(|e| local(e.to_string()))?;
        {
            let repo =
                Repository::init_bare(tmp.path()).map_err(|e| local(e.message().to_string()))?;
            repo.remote(REMOTE, &settings.url)
                .map_err(|e| local(e.message().to_string()))?;
        }
        std::fs::rename(tmp.keep(), &dir).map_err(|e| local(e.to_string()))?;
        let repo = Repository::open_bare(&dir).map_err(|e| local(e.message().to_string()))?;
        Ok(Checkout {
            repo,
            settings: settings.clone(),
            damaged: Default::default(),
        })
    }

    /// Whether a write here failed on a lock file left by a killed process.
    pub fn is_damaged(&self) -> bool {
        self.damaged.get()
    }

    fn local_ref(&self) -> String {
        format!("refs/heads/{}", self.settings.branch)
    }

    fn tracking_ref(&self) -> String {
        format!("refs/remotes/{REMOTE}/{}", self.settings.branch)
    }

    fn remote_error(&self, operation: &'static str, e: git2::Error) -> GitError {
        GitError::Remote {
            remote: redact(&self.settings.url),
            operation,
            message: scrub(e.message(), &self.settings.url),
        }
    }

    fn local_error(&self, e: git2::Error) -> GitError {
        let message = e.message().to_string();
        if e.code() == ErrorCode::Locked || message.contains("failed to lock file") {
            // Held right now by another process on this clone (`tagwatch
            // history` or `promote` next to the daemon): wait for it. Left
            // by a killed process: no one will ever remove it. Ref locks
            // are held for milliseconds, so age tells the two apart.
            if !lock_is_stale(&message) {
                return GitError::Busy {
                    path: self.settings.checkout_dir.clone(),
                    message,
                };
            }
            self.damaged.set(true);
        }
        GitError::Local {
            path: self.settings.checkout_dir.clone(),
            message,
        }
    }

    /// Fetches the branch into the remote-tracking ref only and returns its
    /// head. Leaves the local branch alone, so a reader (`tagwatch
    /// history`) never disturbs the commits a running daemon has not
    /// pushed yet.
    pub fn fetch(&mut self) -> Result<Oid, GitError> {
        let refspec = format!("+{}:{}", self.local_ref(), self.tracking_ref());
        // tagwatch's own pull-request branches come in the same fetch: what
        // they hold decides whether a request needs rebuilding, and a
        // deleted one must disappear here too (prune).
        let proposals =
            format!("+refs/heads/{PROPOSAL_PREFIX}*:refs/remotes/{REMOTE}/{PROPOSAL_PREFIX}*");
        let why = std::cell::RefCell::new(None);
        let mut options = FetchOptions::new();
        options
            .remote_callbacks(callbacks(&self.settings, &why))
            .prune(git2::FetchPrune::On)
            .download_tags(AutotagOption::None)
            // libgit2 follows an off-site redirect on the first request by
            // default, and would then answer the new host's request for
            // credentials: no redirect is followed, ever.
            .follow_redirects(git2::RemoteRedirect::None);
        let mut remote = self
            .repo
            .find_remote(REMOTE)
            .map_err(|e| self.local_error(e))?;
        let started = std::time::Instant::now();
        let fetched = remote.fetch(
            &[refspec.as_str(), proposals.as_str()],
            Some(&mut options),
            None,
        );
        crate::metrics::get()
            .git_duration
            .with_label_values(&["fetch"])
            .observe(started.elapsed().as_secs_f64());
        fetched.map_err(|e| {
            // A fetch fails either because of the remote or because the
            // clone's own storage is damaged. Only the second makes the
            // caller discard the clone, so look before deciding.
            if let Some(reason) = why.take() {
                self.remote_error("fetch", git2::Error::from_str(&reason))
            } else if e.code() == ErrorCode::Locked || e.message().contains("failed to lock file") {
                // A lock file left by a process killed mid-write: the clone
                // is this process's alone, so it is damaged, not busy.
                self.local_error(e)
            } else if self.storage_is_sound() {
                self.remote_error("fetch", e)
            } else {
                self.local_error(e)
            }
        })?;
        drop(remote);
        let head = match self.repo.refname_to_id(&self.tracking_ref()) {
            Ok(oid) => oid,
            Err(e) if e.code() == ErrorCode::NotFound => {
                return Err(GitError::NoBranch {
                    remote: redact(&self.settings.url),
                    branch: self.settings.branch.clone(),
                });
            }
            Err(e) => return Err(self.local_error(e)),
        };
        Ok(head)
    }

    /// Fetches the branch and moves the local branch to it, discarding any
    /// local commits that were never pushed (they are rebuilt from the
    /// desired state, never replayed). Returns the new head.
    pub fn sync(&mut self) -> Result<Oid, GitError> {
        let head = self.fetch()?;
        self.repo
            .reference(&self.local_ref(), head, true, "tagwatch: sync with remote")
            .map_err(|e| self.local_error(e))?;
        self.repo
            .set_head(&self.local_ref())
            .map_err(|e| self.local_error(e))?;
        Ok(head)
    }

    /// A cheap check of the clone's own storage: its object and ref
    /// directories exist, and the commit it last synced to can be read.
    fn storage_is_sound(&self) -> bool {
        let dir = self.repo.path();
        if !(dir.join("objects").is_dir() && dir.join("refs").is_dir()) {
            return false;
        }
        match self.repo.refname_to_id(&self.tracking_ref()) {
            Ok(oid) => self.repo.find_commit(oid).is_ok(),
            Err(e) => e.code() == ErrorCode::NotFound,
        }
    }

    /// The local branch's head.
    pub fn head(&self) -> Result<Oid, GitError> {
        self.repo
            .refname_to_id(&self.local_ref())
            .map_err(|e| self.local_error(e))
    }

    /// The content of `path` at the local branch's head; `None` when there
    /// is no such file.
    pub fn read(&self, path: &RepoPath) -> Result<Option<Vec<u8>>, GitError> {
        self.read_at(&self.local_ref(), path)
    }

    /// The content of `path` at the commit `refname` points at.
    pub fn read_at(&self, refname: &str, path: &RepoPath) -> Result<Option<Vec<u8>>, GitError> {
        let tree = self.tree_at(refname)?;
        let entry = match tree.get_path(Path::new(path.as_str())) {
            Ok(entry) => entry,
            Err(e) if e.code() == ErrorCode::NotFound => return Ok(None),
            Err(e) => return Err(self.local_error(e)),
        };
        if entry.filemode() == i32::from(FileMode::Link) {
            return Err(GitError::Local {
                path: self.settings.checkout_dir.clone(),
                message: format!("{path} is a symbolic link; point the target at the real file"),
            });
        }
        if entry.kind() != Some(git2::ObjectType::Blob) {
            return Ok(None);
        }
        // The header gives the size without inflating the object; only a
        // blob within the limit is read.
        let odb = self.repo.odb().map_err(|e| self.local_error(e))?;
        let (size, _) = odb
            .read_header(entry.id())
            .map_err(|e| self.local_error(e))?;
        if size > MAX_BLOB_BYTES {
            return Err(GitError::TooLarge {
                path: path.to_string(),
                size,
                limit: MAX_BLOB_BYTES,
            });
        }
        let blob = self
            .repo
            .find_blob(entry.id())
            .map_err(|e| self.local_error(e))?;
        Ok(Some(blob.content().to_vec()))
    }

    fn tree_at(&self, refname: &str) -> Result<git2::Tree<'_>, GitError> {
        let commit = self
            .repo
            .find_reference(refname)
            .and_then(|r| r.peel_to_commit())
            .map_err(|e| self.local_error(e))?;
        commit.tree().map_err(|e| self.local_error(e))
    }

    /// Commits `content` as `path` on top of the local branch, dated
    /// `when` (the cycle's clock). The file's mode (say, executable) is kept.
    pub fn commit_file(
        &mut self,
        path: &RepoPath,
        content: &[u8],
        message: &str,
        when: time::OffsetDateTime,
    ) -> Result<Oid, GitError> {
        let local = self.local_ref();
        crate::metrics::time(&crate::metrics::get().git_duration, "commit", || {
            self.commit_onto(&local, path, content, message, when)
        })
    }

    /// Commits `content` as `path` on top of the commit `refname` points
    /// at, and moves `refname` to the new commit.
    fn commit_onto(
        &mut self,
        refname: &str,
        path: &RepoPath,
        content: &[u8],
        message: &str,
        when: time::OffsetDateTime,
    ) -> Result<Oid, GitError> {
        let parent = self
            .repo
            .find_reference(refname)
            .and_then(|r| r.peel_to_commit())
            .map_err(|e| self.local_error(e))?;
        let tree = parent.tree().map_err(|e| self.local_error(e))?;
        let mode = match tree.get_path(Path::new(path.as_str())) {
            Ok(entry) if entry.filemode() == i32::from(FileMode::BlobExecutable) => {
                FileMode::BlobExecutable
            }
            _ => FileMode::Blob,
        };
        let blob = self.repo.blob(content).map_err(|e| self.local_error(e))?;
        let mut update = TreeUpdateBuilder::new();
        update.upsert(path.as_str(), blob, mode);
        let new_tree = update
            .create_updated(&self.repo, &tree)
            .map_err(|e| self.local_error(e))?;
        let new_tree = self
            .repo
            .find_tree(new_tree)
            .map_err(|e| self.local_error(e))?;
        let author = &self.settings.author;
        let time = git2::Time::new(when.unix_timestamp(), 0);
        let signature =
            Signature::new(&author.name, &author.email, &time).map_err(|e| self.local_error(e))?;
        let Some(key_file) = &self.settings.signing_key_file else {
            return self
                .repo
                .commit(
                    Some(refname),
                    &signature,
                    &signature,
                    message,
                    &new_tree,
                    &[&parent],
                )
                .map_err(|e| self.local_error(e));
        };
        // A signed commit: build the commit object, sign its bytes with the
        // SSH key as `git -c gpg.format=ssh` would (namespace "git",
        // SHA-512), store it with the signature in its gpgsig header, and
        // move the branch only if it still points at the parent.
        let buffer = self
            .repo
            .commit_create_buffer(&signature, &signature, message, &new_tree, &[&parent])
            .map_err(|e| self.local_error(e))?;
        let content = std::str::from_utf8(&buffer).map_err(|e| GitError::Local {
            path: self.settings.checkout_dir.clone(),
            message: format!("commit is not UTF-8: {e}"),
        })?;
        let armored = ssh_signature(key_file, &buffer).map_err(|message| GitError::Local {
            path: self.settings.checkout_dir.clone(),
            message,
        })?;
        let oid = self
            .repo
            .commit_signed(content, &armored, Some("gpgsig"))
            .map_err(|e| self.local_error(e))?;
        self.repo
            .reference_matching(refname, oid, true, parent.id(), "tagwatch: signed commit")
            .map_err(|e| self.local_error(e))?;
        Ok(oid)
    }

    /// Pushes the local branch. Never forced: if the remote moved, this
    /// returns [`GitError::Rejected`] and the caller starts over from a sync.
    pub fn push(&mut self) -> Result<(), GitError> {
        if let Some(path) = local_path(&self.settings.url) {
            let started = std::time::Instant::now();
            let pushed = self.push_local(&path);
            crate::metrics::get()
                .git_duration
                .with_label_values(&["push"])
                .observe(started.elapsed().as_secs_f64());
            return pushed;
        }
        let refspec = format!("{0}:{0}", self.local_ref());
        self.push_specs(&[refspec])
    }

    /// Pushes the local branch to a repository on this machine with a
    /// compare-and-swap on its ref.
    ///
    /// libgit2's local transport checks fast-forward when it connects but
    /// then writes the ref unconditionally, so a push by another process in
    /// between was overwritten: a person's commit vanished from the branch.
    /// Here the objects go first, as one pack written into the remote's
    /// object database (unreferenced, so harmless if the swap then fails),
    /// and the branch moves only if it still points at the head this
    /// checkout fetched. The swap holds the ref's lock file, the same one
    /// stock git's receive-pack takes, so two writers can never both win; a
    /// lost race is [`GitError::Rejected`], as on every other transport.
    fn push_local(&mut self, path: &Path) -> Result<(), GitError> {
        let local = |message: String| GitError::Local {
            path: self.settings.checkout_dir.clone(),
            message,
        };
        let rejected = |message: String| GitError::Rejected {
            remote: redact(&self.settings.url),
            branch: self.settings.branch.clone(),
            message,
        };
        let expected = self
            .repo
            .refname_to_id(&self.tracking_ref())
            .map_err(|e| self.local_error(e))?;
        let new = self.head()?;
        if new == expected {
            return Ok(());
        }
        let remote = Repository::open_bare(path).map_err(|e| self.remote_error("push", e))?;
        // Only what the remote lacks: everything up to the fetched head is
        // there already.
        let mut walk = self.repo.revwalk().map_err(|e| self.local_error(e))?;
        walk.push(new).map_err(|e| self.local_error(e))?;
        walk.hide(expected).map_err(|e| self.local_error(e))?;
        let mut pack = self.repo.packbuilder().map_err(|e| self.local_error(e))?;
        pack.insert_walk(&mut walk)
            .map_err(|e| self.local_error(e))?;
        let odb = remote.odb().map_err(|e| self.remote_error("push", e))?;
        let mut writer = odb.packwriter().map_err(|e| self.remote_error("push", e))?;
        let mut written = Ok(());
        pack.foreach(|chunk| {
            written = std::io::Write::write_all(&mut writer, chunk);
            written.is_ok()
        })
        .map_err(|e| self.local_error(e))?;
        written.map_err(|e| {
            local(format!(
                "cannot write the pack into {}: {e}",
                path.display()
            ))
        })?;
        writer.commit().map_err(|e| self.remote_error("push", e))?;
        let swapped = remote.reference_matching(
            &self.local_ref(),
            new,
            true,
            expected,
            "tagwatch: push (compare-and-swap)",
        );
        match swapped {
            Ok(_) => {}
            // The branch moved since the fetch (Modified), or another
            // writer holds its lock right now and is about to move it.
            Err(e) if matches!(e.code(), ErrorCode::Modified | ErrorCode::Locked) => {
                return Err(rejected(format!(
                    "the branch moved since it was fetched: {}",
                    e.message()
                )));
            }
            Err(e) if e.message().contains("failed to lock file") => {
                return Err(rejected(format!(
                    "another writer holds the branch: {}",
                    e.message()
                )));
            }
            Err(e) => return Err(self.remote_error("push", e)),
        }
        // What libgit2's push would have done: the tracking ref follows.
        self.repo
            .reference(&self.tracking_ref(), new, true, "tagwatch: pushed")
            .map_err(|e| self.local_error(e))?;
        Ok(())
    }

    /// Force-pushes tagwatch's own branches (`tagwatch/…`) as they are
    /// locally, and deletes those in `delete` on the remote. Only ever
    /// branches under [`PROPOSAL_PREFIX`]: nothing else is forced.
    pub fn push_proposals(
        &mut self,
        branches: &[String],
        delete: &[String],
    ) -> Result<(), GitError> {
        let mut specs = Vec::new();
        for branch in branches.iter().chain(delete) {
            if !branch.starts_with(PROPOSAL_PREFIX) {
                return Err(GitError::Local {
                    path: self.settings.checkout_dir.clone(),
                    message: format!("refusing to force-push {branch}: not a tagwatch branch"),
                });
            }
        }
        specs.extend(
            branches
                .iter()
                .map(|b| format!("+refs/heads/{b}:refs/heads/{b}")),
        );
        specs.extend(delete.iter().map(|b| format!(":refs/heads/{b}")));
        if specs.is_empty() {
            return Ok(());
        }
        self.push_specs(&specs)
    }

    fn push_specs(&mut self, specs: &[String]) -> Result<(), GitError> {
        let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
        let mut rejection: Option<String> = None;
        let why = std::cell::RefCell::new(None);
        let result = {
            let mut cbs = callbacks(&self.settings, &why);
            cbs.push_update_reference(|_, status| {
                if let Some(message) = status {
                    rejection = Some(message.to_string());
                }
                Ok(())
            });
            let mut options = PushOptions::new();
            options
                .remote_callbacks(cbs)
                .follow_redirects(git2::RemoteRedirect::None);
            let mut remote = self
                .repo
                .find_remote(REMOTE)
                .map_err(|e| self.local_error(e))?;
            let started = std::time::Instant::now();
            let pushed = remote.push(&specs, Some(&mut options));
            crate::metrics::get()
                .git_duration
                .with_label_values(&["push"])
                .observe(started.elapsed().as_secs_f64());
            pushed
        };
        let rejected = |message: String| GitError::Rejected {
            remote: redact(&self.settings.url),
            branch: self.settings.branch.clone(),
            message,
        };
        match result {
            // libgit2 refuses locally when the remote's tip is not an
            // ancestor of ours: the branch moved since our fetch.
            Err(e) if e.code() == ErrorCode::NotFastForward => {
                Err(rejected(e.message().to_string()))
            }
            Err(e) => match why.take() {
                Some(reason) => Err(self.remote_error("push", git2::Error::from_str(&reason))),
                None => Err(self.remote_error("push", e)),
            },
            // The server refused the update. Only a lost race for the ref is
            // worth a fetch and another try; a hook or branch protection
            // saying no would say no again, so it fails the push at once.
            Ok(()) => match rejection {
                Some(message) if is_stale_ref(&message) => Err(rejected(message)),
                Some(message) => Err(GitError::Remote {
                    remote: redact(&self.settings.url),
                    operation: "push",
                    message: format!(
                        "the server refused the update: {}",
                        scrub(&message, &self.settings.url)
                    ),
                }),
                None => Ok(()),
            },
        }
    }

    /// The promotions reachable from `from`, newest first, read from the
    /// commits' trailers along the first-parent line (what the branch ran,
    /// not what a merged side branch did). Looks at most `limit` commits back.
    pub fn promotions(&self, from: Oid, limit: usize) -> impl Iterator<Item = Recorded> + '_ {
        let walk = self.repo.revwalk().ok().and_then(|mut walk| {
            walk.push(from).ok()?;
            walk.simplify_first_parent().ok()?;
            Some(walk)
        });
        walk.into_iter()
            .flatten()
            .take(limit)
            .filter_map(Result::ok)
            .filter_map(|oid| {
                let commit = self.repo.find_commit(oid).ok()?;
                let promotion = Promotion::parse(commit.message().ok()?)?;
                let at = time::OffsetDateTime::from_unix_timestamp(commit.time().seconds()).ok()?;
                Some(Recorded {
                    promotion,
                    at,
                    commit: oid.to_string(),
                })
            })
    }

    /// The commit tagwatch's branch `branch` has on the remote, as of the
    /// last fetch.
    pub fn remote_branch(&self, branch: &str) -> Option<Oid> {
        self.repo
            .refname_to_id(&format!("refs/remotes/{REMOTE}/{branch}"))
            .ok()
    }

    /// Points the local `refs/heads/<branch>` at `at`, to build on. Returns
    /// its ref name.
    pub fn start_branch(&mut self, branch: &str, at: Oid) -> Result<String, GitError> {
        let refname = format!("refs/heads/{branch}");
        self.repo
            .reference(&refname, at, true, "tagwatch: rebuild proposal")
            .map_err(|e| self.local_error(e))?;
        Ok(refname)
    }

    /// The local branch's commit, after building on it.
    pub fn start_branch_tip(&self, branch: &str) -> Option<Oid> {
        self.repo
            .refname_to_id(&format!("refs/heads/{branch}"))
            .ok()
    }

    /// Commits `content` as `path` on the local branch `refname` (see
    /// [`Checkout::start_branch`]).
    pub fn commit_on(
        &mut self,
        refname: &str,
        path: &RepoPath,
        content: &[u8],
        message: &str,
        when: time::OffsetDateTime,
    ) -> Result<Oid, GitError> {
        self.commit_onto(refname, path, content, message, when)
    }

    /// The promotions on `tip` that `base` does not have: what a proposal
    /// branch proposes.
    pub fn proposed(&self, tip: Oid, base: Oid) -> Vec<Promotion> {
        let Ok(mut walk) = self.repo.revwalk() else {
            return Vec::new();
        };
        if walk.push(tip).is_err() {
            return Vec::new();
        }
        if let Ok(fork) = self.repo.merge_base(tip, base) {
            let _ = walk.hide(fork);
        }
        walk.filter_map(Result::ok)
            .take(1_000)
            .filter_map(|oid| Promotion::parse(self.repo.find_commit(oid).ok()?.message().ok()?))
            .collect()
    }

    /// When the branch came to hold `value` for `app`/`env`: the commit time
    /// of the newest promotion commit that wrote it. Without one (the value
    /// was written by hand), the newest commit that changed `path` stands
    /// in: that is no earlier than the value's arrival, so a soak measured
    /// from it never ends early.
    pub fn held_since(
        &self,
        app: &str,
        env: &str,
        value: &str,
        path: &RepoPath,
        limit: usize,
    ) -> Option<time::OffsetDateTime> {
        let head = self.head().ok()?;
        if let Some(r) = self
            .promotions(head, limit)
            .find(|r| r.promotion.app == app && r.promotion.env == env)
            .filter(|r| r.promotion.to == value)
        {
            return Some(r.at);
        }
        let mut walk = self.repo.revwalk().ok()?;
        walk.push(head).ok()?;
        walk.simplify_first_parent().ok()?;
        let blob_at = |commit: &git2::Commit<'_>| {
            commit
                .tree()
                .ok()
                .and_then(|t| t.get_path(Path::new(path.as_str())).ok())
                .map(|e| e.id())
        };
        for oid in walk.take(limit).filter_map(Result::ok) {
            let commit = self.repo.find_commit(oid).ok()?;
            let parent_blob = commit.parent(0).ok().and_then(|p| blob_at(&p));
            if blob_at(&commit) != parent_blob {
                return time::OffsetDateTime::from_unix_timestamp(commit.time().seconds()).ok();
            }
        }
        None
    }

    /// The most recent promotion of `app`/`env` that wrote `digest`. This is
    /// how a digest-only value is tied back to its tag once the registry no
    /// longer has a tag on that digest.
    pub fn promotion_with_digest(
        &self,
        app: &str,
        env: &str,
        digest: &str,
        limit: usize,
    ) -> Option<Promotion> {
        self.promotions(self.head().ok()?, limit)
            .map(|r| r.promotion)
            .find(|p| p.app == app && p.env == env && p.digest == digest)
    }

    /// Removes the clone from disk. Used when it is damaged: it is a cache,
    /// and the next cycle clones again.
    pub fn discard(self) {
        let path = self.repo.path().to_path_buf();
        drop(self.repo);
        if let Err(e) = std::fs::remove_dir_all(&path) {
            tracing::warn!(path = %path.display(), error = %e, "could not remove a damaged clone");
        }
    }

    /// The underlying repository, for read-only inspection (the demo prints
    /// the log from it).
    pub fn repository(&self) -> &Repository {
        &self.repo
    }
}

/// Callbacks shared by fetch and push.
///
/// Credentials are offered once per operation. libgit2 asks again after a
/// rejection, and answering again with the same secret would only loop;
/// the second request becomes one clear error naming the remote instead. A
/// remote that asks when nothing is configured gets that error at once.
///
/// libgit2 replaces a callback's error with a generic message ("invalid or
/// unknown remote ssh hostkey"), so each refusal is also written to `why`,
/// and the caller reports that instead.
fn callbacks<'a>(
    settings: &'a GitSettings,
    why: &'a std::cell::RefCell<Option<String>>,
) -> RemoteCallbacks<'a> {
    let refuse = move |reason: String| {
        *why.borrow_mut() = Some(reason.clone());
        git2::Error::from_str(&reason)
    };
    let mut cbs = RemoteCallbacks::new();
    let mut asked = false;
    let configured = host_port(&settings.url);
    cbs.credentials(move |url, username, allowed| {
        let remote = redact(url);
        // Only the configured remote's host and port get a secret. libgit2
        // refuses a redirect to another host (see `follow_redirects`) but
        // follows one to another port or path of the same host, which may
        // be someone else's server.
        let asking = host_port(url);
        if asking.is_none() || asking != configured {
            return Err(refuse(format!(
                "{remote} asks for credentials, but it is not the configured remote {} \
                 (redirected?); refusing to send them",
                redact(&settings.url)
            )));
        }
        let again = std::mem::replace(&mut asked, true);
        if let Some(ssh) = settings.ssh.as_ref().filter(|_| allowed.is_ssh_key()) {
            if again {
                return Err(refuse(format!(
                    "{remote} rejected the SSH key {}",
                    ssh.key_file.display()
                )));
            }
            return git2::Cred::ssh_key(username.unwrap_or("git"), None, &ssh.key_file, None);
        }
        let Some(token) = settings
            .token
            .as_ref()
            .filter(|_| allowed.is_user_pass_plaintext())
        else {
            return Err(refuse(format!(
                "{remote} asks for credentials, and none are configured"
            )));
        };
        if again {
            return Err(refuse(format!(
                "{remote} rejected the token from {} (user {:?})",
                token.file.display(),
                token.username
            )));
        }
        // Read on every operation: a Kubernetes Secret rotates in place.
        let secret = std::fs::read_to_string(&token.file).map_err(|e| {
            refuse(format!(
                "cannot read token_file {}: {e}",
                token.file.display()
            ))
        })?;
        git2::Cred::userpass_plaintext(&token.username, secret.trim())
    });
    cbs.certificate_check(move |cert, host| {
        if let Some(x509) = cert.as_x509() {
            // libgit2 has verified the chain against the system's roots, but
            // its verdict is not visible here. Passing through keeps it;
            // answering Ok overrides a failure, so that is done only when
            // the configured ca_file vouches for this certificate and host.
            let Some(ca_file) = &settings.ca_file else {
                return Ok(git2::CertificateCheckStatus::CertificatePassthrough);
            };
            return match trusted_by(ca_file, host, x509.data()) {
                Ok(()) => Ok(git2::CertificateCheckStatus::CertificateOk),
                Err(reason) => {
                    // Reported only if libgit2 refuses the certificate too.
                    *why.borrow_mut() = Some(reason);
                    Ok(git2::CertificateCheckStatus::CertificatePassthrough)
                }
            };
        }
        let Some(hostkey) = cert.as_hostkey() else {
            return Ok(git2::CertificateCheckStatus::CertificatePassthrough);
        };
        let Some(ssh) = &settings.ssh else {
            return Err(refuse(format!(
                "{host}: an SSH remote needs git.known_hosts_file (and git.ssh_key_file)"
            )));
        };
        let key = hostkey.hostkey().unwrap_or_default();
        let port = ssh_port(&settings.url);
        known_host(&ssh.known_hosts_file, host, port, key)
            .map(|()| git2::CertificateCheckStatus::CertificateOk)
            .map_err(refuse)
    });
    cbs
}

/// An SSH signature over `data` in git's armored form (`-----BEGIN SSH
/// SIGNATURE-----`). The key is read on every call, so a rotated Secret is
/// picked up; errors name the file, never its content.
fn ssh_signature(key_file: &Path, data: &[u8]) -> Result<String, String> {
    let key = ssh_key::PrivateKey::read_openssh_file(key_file)
        .map_err(|e| format!("cannot read signing_key_file {}: {e}", key_file.display()))?;
    let signature = key
        .sign("git", ssh_key::HashAlg::Sha512, data)
        .map_err(|e| format!("cannot sign with {}: {e}", key_file.display()))?;
    signature
        .to_pem(ssh_key::LineEnding::LF)
        .map_err(|e| format!("cannot encode the signature: {e}"))
}

/// Verifies a TLS server's certificate (DER) for `host` against the PEM
/// certificates in `ca_file`, hostname or IP address included. libgit2
/// hands over only the server's own certificate, so any intermediate CA
/// must be in the file as well.
fn trusted_by(ca_file: &Path, host: &str, der: &[u8]) -> Result<(), String> {
    use openssl::x509::{X509, X509StoreContext, store::X509StoreBuilder, verify::X509VerifyParam};
    let refused = |detail: String| {
        format!(
            "{host}: the TLS certificate is not trusted by the system's roots or by ca_file {}: {detail}",
            ca_file.display()
        )
    };
    let pem = std::fs::read(ca_file)
        .map_err(|e| format!("cannot read ca_file {}: {e}", ca_file.display()))?;
    let authorities = X509::stack_from_pem(&pem)
        .ok()
        .filter(|certs| !certs.is_empty())
        .ok_or_else(|| format!("ca_file {} holds no PEM certificate", ca_file.display()))?;
    let ssl = |e: openssl::error::ErrorStack| refused(e.to_string());
    let mut store = X509StoreBuilder::new().map_err(ssl)?;
    for authority in authorities {
        store.add_cert(authority).map_err(ssl)?;
    }
    let mut param = X509VerifyParam::new().map_err(ssl)?;
    match host.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
        Ok(ip) => param.set_ip(ip),
        Err(_) => param.set_host(host),
    }
    .map_err(ssl)?;
    store.set_param(&param).map_err(ssl)?;
    let store = store.build();
    let server = X509::from_der(der).map_err(ssl)?;
    let chain = openssl::stack::Stack::new().map_err(ssl)?;
    let mut context = X509StoreContext::new().map_err(ssl)?;
    let verdict = context
        .init(&store, &server, &chain, |c| {
            Ok(c.verify_cert()?.then_some(()).ok_or(c.error()))
        })
        .map_err(ssl)?;
    verdict.map_err(|e| refused(e.error_string().to_string()))
}

/// The port of an SSH remote (`ssh://host:2222/…`); scp-like remotes
/// (`git@host:path`) always use 22.
fn ssh_port(url: &str) -> u16 {
    url.strip_prefix("ssh://")
        .and_then(|rest| rest.split('/').next())
        .map(|authority| authority.rsplit('@').next().unwrap_or(authority))
        .and_then(|host| host.rsplit_once(':'))
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or(22)
}

/// Checks the key an SSH server presented against `known_hosts`, as
/// OpenSSH does: entries name the host plainly (`host`, or `[host]:port`
/// off port 22) or hashed (`|1|salt|hash`, from `ssh-keyscan -H`). A
/// matching `@revoked` key is refused. A different key under the host's
/// name is a changed host key, which could be an attacker, so it is
/// refused too. `@cert-authority` lines are not supported and are skipped.
fn known_host(path: &Path, host: &str, port: u16, presented: &[u8]) -> Result<(), String> {
    use base64::Engine as _;
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read known_hosts_file {}: {e}", path.display()))?;
    let name = if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    };
    let mut known_for_host = false;
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let mut fields = line.split_whitespace().peekable();
        let marker = fields.next_if(|f| f.starts_with('@'));
        let (Some(hosts), Some(_kind), Some(blob)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if !hosts.split(',').any(|pattern| names(pattern, &name)) {
            continue;
        }
        let same_key = base64::engine::general_purpose::STANDARD
            .decode(blob)
            .is_ok_and(|k| k == presented);
        match marker {
            Some("@revoked") if same_key => {
                return Err(format!(
                    "{host}: the host key is marked @revoked in {}; refusing to connect",
                    path.display()
                ));
            }
            Some(_) => continue,
            None if same_key => return Ok(()),
            None => known_for_host = true,
        }
    }
    Err(if known_for_host {
        format!(
            "{host}: the host key does not match {} (changed host key); refusing to connect",
            path.display()
        )
    } else {
        format!(
            "{host}: unknown host; add its key to {} (never accepted blindly)",
            path.display()
        )
    })
}

/// Whether one known_hosts host pattern names `name` (`host` or
/// `[host]:port`). Hashed patterns are HMAC-SHA1 of the name, keyed by
/// their salt. Wildcards and negations are not supported: a pattern with
/// them matches nothing, which fails closed.
fn names(pattern: &str, name: &str) -> bool {
    use base64::Engine as _;
    use hmac::Mac as _;
    let Some(hashed) = pattern.strip_prefix("|1|") else {
        return pattern == name;
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let Some((Ok(salt), Ok(hash))) = hashed
        .split_once('|')
        .map(|(salt, hash)| (b64.decode(salt), b64.decode(hash)))
    else {
        return false;
    };
    let Ok(mut mac) = hmac::Hmac::<sha1::Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// The repository directory of a remote that libgit2 would reach through
/// its local transport: a `file://` URL, or a path to a directory that
/// exists (libgit2 tries a path before the scp-like `host:path` form).
fn local_path(url: &str) -> Option<PathBuf> {
    if let Some(rest) = url.strip_prefix("file://") {
        let rest = rest.strip_prefix("localhost").unwrap_or(rest);
        return Some(PathBuf::from(percent_decode(rest)));
    }
    if url.contains("://") {
        return None;
    }
    let path = Path::new(url);
    path.is_dir().then(|| path.to_path_buf())
}

/// The host (lowercased, without brackets) and port a remote URL connects
/// to, with the scheme's default port: `https://h/…` is `(h, 443)`,
/// `ssh://git@h:2222/…` is `(h, 2222)`, scp-like `git@h:path` is
/// `(h, 22)`. `None` for a local path or an unparsable URL.
fn host_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None if local_path(url).is_none() => {
            // scp-like: [user@]host:path
            let (authority, _) = url.split_once(':')?;
            let host = authority.rsplit('@').next()?;
            return (!host.is_empty() && !host.contains('/'))
                .then(|| (host.to_ascii_lowercase(), 22));
        }
        None => return None,
    };
    let default = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        "ssh" | "git+ssh" | "ssh+git" => 22,
        "git" => 9418,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let hostport = authority.rsplit('@').next()?;
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    let port = match port {
        Some(p) if !p.is_empty() => p.parse().ok()?,
        _ => default,
    };
    (!host.is_empty()).then(|| (host.to_ascii_lowercase(), port))
}

/// `%XX` escapes decoded, as libgit2 does for a `file://` URL's path.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|b| hex(*b)),
                bytes.get(i + 2).and_then(|b| hex(*b)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The directory name of the clone of `url` at `branch`: readable (the
/// repository's name and the branch) and unique (a hash of both), so two
/// remotes that share a name never share a clone.
pub fn clone_name(url: &str, branch: &str) -> String {
    let name = url
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or("repo");
    let name = name.strip_suffix(".git").unwrap_or(name);
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    // FNV-1a: stable across releases and platforms, unlike std's hasher.
    let mut hash: u64 = 0xcbf29ce484222325;
    for b in url.bytes().chain([0]).chain(branch.bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    format!("{}@{}-{:08x}.git", safe(name), safe(branch), hash as u32)
}

/// True for a receive-pack refusal that means the branch moved under us
/// (git's wording: "failed to update ref", "cannot lock ref … is at … but
/// expected …", "fetch first", "non-fast-forward", "stale info").
fn is_stale_ref(status: &str) -> bool {
    let s = status.to_ascii_lowercase();
    [
        "failed to update ref",
        "cannot lock ref",
        "failed to lock",
        "fetch first",
        "non-fast-forward",
        "stale info",
        "but expected",
    ]
    .iter()
    .any(|needle| s.contains(needle))
}

/// Removes the URL's secret from a message a peer or libgit2 wrote, which
/// may quote the URL.
fn scrub(message: &str, url: &str) -> String {
    let mut out = message.replace(url, &redact(url));
    if let Some((_, rest)) = url.split_once("://")
        && let Some((userinfo, _)) = rest.split('/').next().unwrap_or("").rsplit_once('@')
    {
        let secret = userinfo.split_once(':').map_or(userinfo, |(_, p)| p);
        if secret.len() >= 4 {
            out = out.replace(secret, "***");
        }
    }
    out
}

/// Removes a password or token from a URL before it reaches a log line or
/// an error. In `https://user:pass@host` the password goes; in
/// `https://TOKEN@host` (a form GitHub documents) the whole user part goes.
/// An ssh user (`ssh://git@host`) is not a secret and stays.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_string();
    };
    let user = match userinfo.split_once(':') {
        Some((user, _password)) => format!("{user}:***"),
        None if scheme.starts_with("ssh") => userinfo.to_string(),
        None => "***".to_string(),
    };
    format!("{scheme}://{user}@{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::{clone_name, redact};

    #[test]
    fn clone_names_are_readable_and_distinct() {
        let a = clone_name("https://github.com/acme/gitops.git", "main");
        assert!(a.starts_with("gitops@main-") && a.ends_with(".git"), "{a}");
        assert_ne!(a, clone_name("https://github.com/other/gitops.git", "main"));
        assert_ne!(
            a,
            clone_name("https://github.com/acme/gitops.git", "release")
        );
        assert!(clone_name("git@host:team/x y.git", "feat/a").starts_with("x_y@feat_a-"));
    }

    #[test]
    fn local_remotes_are_recognised() {
        use std::path::PathBuf;
        assert_eq!(
            super::local_path("file:///srv/git/a%20b.git"),
            Some(PathBuf::from("/srv/git/a b.git"))
        );
        assert_eq!(
            super::local_path("file://localhost/srv/x.git"),
            Some(PathBuf::from("/srv/x.git"))
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap();
        assert_eq!(super::local_path(path), Some(dir.path().to_path_buf()));
        assert_eq!(super::local_path("https://github.com/a/b.git"), None);
        assert_eq!(super::local_path("git@github.com:a/b.git"), None);
        assert_eq!(super::local_path("/no/such/repository.git"), None);
    }

    #[test]
    fn credentials_go_only_to_the_configured_host_and_port() {
        use super::host_port;
        let h = |host: &str, port| Some((host.to_string(), port));
        assert_eq!(
            host_port("https://GitHub.com/a/b.git"),
            h("github.com", 443)
        );
        assert_eq!(
            host_port("http://127.0.0.1:8080/r.git"),
            h("127.0.0.1", 8080)
        );
        assert_eq!(host_port("https://u:p@host:8443/r"), h("host", 8443));
        assert_eq!(host_port("ssh://git@host:2222/r.git"), h("host", 2222));
        assert_eq!(host_port("git@host:team/r.git"), h("host", 22));
        assert_eq!(host_port("http://[::1]:9/r.git"), h("::1", 9));
        // What a redirect to another port or host would ask from.
        assert_ne!(
            host_port("http://127.0.0.1:8080/r.git"),
            host_port("http://127.0.0.1:8081/r.git/info/refs?service=git-upload-pack")
        );
        assert_ne!(
            host_port("https://github.com/a/b.git"),
            host_port("https://github.com.evil.example/a/b.git")
        );
        assert_eq!(host_port("file:///srv/r.git"), None);
    }

    #[test]
    fn the_blob_limit_is_the_editors() {
        assert_eq!(super::MAX_BLOB_BYTES, crate::manifest::MAX_FILE_BYTES);
    }

    #[test]
    fn only_a_lost_race_is_retried() {
        assert!(super::is_stale_ref("failed to update ref"));
        assert!(super::is_stale_ref(
            "cannot lock ref 'refs/heads/main': is at 1a but expected 2b"
        ));
        assert!(!super::is_stale_ref("pre-receive hook declined"));
        assert!(!super::is_stale_ref("protected branch hook declined"));
    }

    #[test]
    fn secrets_are_scrubbed_from_peer_messages() {
        let url = "https://ghp_SECRET1234@github.com/a/b.git";
        assert_eq!(
            super::scrub(
                "could not reach https://ghp_SECRET1234@github.com/a/b.git (ghp_SECRET1234)",
                url
            ),
            "could not reach https://***@github.com/a/b.git (***)"
        );
    }

    #[test]
    fn tokens_in_urls_are_redacted() {
        assert_eq!(
            redact("https://x-access-token:ghp_secret@github.com/a/b.git"),
            "https://x-access-token:***@github.com/a/b.git"
        );
        assert_eq!(
            redact("https://github.com/a/b.git"),
            "https://github.com/a/b.git"
        );
        assert_eq!(redact("git@github.com:a/b.git"), "git@github.com:a/b.git");
        assert_eq!(
            redact("https://ghp_SECRET@github.com/a/b.git"),
            "https://***@github.com/a/b.git"
        );
        assert_eq!(
            redact("https://u:p@ss@host/a@b.git"),
            "https://u:***@host/a@b.git"
        );
        assert_eq!(
            redact("ssh://git@github.com/a/b.git"),
            "ssh://git@github.com/a/b.git"
        );
        assert_eq!(
            redact("https://host/path@with-at.git"),
            "https://host/path@with-at.git"
        );
    }
}
