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
//! owns git mechanics only: it does not decide what to write. No git2 type
//! leaves it: commits are named by the opaque [`CommitId`].
//!
//! Layout:
//! - `mod.rs` (here): the checkout — clone, fetch, read, commit, push
//!   (with the compare-and-swap for local remotes), and [`GitError`].
//! - `auth`: what a transport needs to trust and be trusted — credentials
//!   (only for the configured host), TLS with `ca_file`, SSH host keys,
//!   commit signing.
//! - `batch`: many commits on the branch at once — built in memory, stored
//!   as one pack, the branch moved once.
//! - `history`: questions answered from the branch's commits — promotions
//!   from trailers, when a value arrived, what a proposal branch proposes.
//! - `url`: remote URLs — the clone's directory name, redaction, which
//!   remotes are local, a remote's host and port.

mod auth;
mod batch;
mod files;
mod history;
mod line;
mod url;

use std::path::{Path, PathBuf};

use git2::{AutotagOption, ErrorCode, FetchOptions, FileMode, Oid, PushOptions, Repository};

use crate::config::{GitSettings, RepoPath};

pub use auth::AuthError;
pub use history::{Recorded, Setter, ValueEvent};
pub use url::{clone_name, redact};
use url::{local_path, scrub};

const REMOTE: &str = "origin";

/// tagwatch's own branches, one per pull request (`tagwatch/<app>/<env>`).
/// The only branches it ever force-pushes.
pub use crate::config::PROPOSAL_PREFIX;

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
    /// The commit could not be signed (the key file is missing or not a
    /// key); nothing was committed.
    #[error("checkout {}: {source}", path.display())]
    Signing {
        path: PathBuf,
        #[source]
        source: auth::AuthError,
    },
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
            GitError::Signing { .. } => "signing",
            GitError::Busy { .. } => "busy",
        }
    }
}

/// A commit, named without handing out libgit2's types: the branch's head,
/// a proposal branch's tip, a commit just made. Parsed from and printed as
/// its full hex id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CommitId(Oid);

impl std::fmt::Display for CommitId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A string that is not a full hex commit id.
#[derive(Debug, thiserror::Error)]
#[error("{text:?} is not a commit id (40 or 64 hex digits)")]
pub struct BadCommitId {
    text: String,
    #[source]
    source: git2::Error,
}

impl std::str::FromStr for CommitId {
    type Err = BadCommitId;

    fn from_str(text: &str) -> Result<CommitId, BadCommitId> {
        // libgit2 takes a prefix as the id padded with zeros; only a whole
        // id names one commit.
        let whole = matches!(text.len(), 40 | 64) && text.bytes().all(|b| b.is_ascii_hexdigit());
        Oid::from_str(text)
            .and_then(|oid| {
                if whole {
                    Ok(CommitId(oid))
                } else {
                    Err(git2::Error::from_str("not a whole hex id"))
                }
            })
            .map_err(|source| BadCommitId {
                text: text.to_string(),
                source,
            })
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

/// Why a write into a pack writer failed. git2's writer says only "Write
/// error"; libgit2 kept the cause (say, "No space left on device") as the
/// thread's last error, which the next libgit2 call would replace, so it
/// is read here, at the failed write.
fn write_failure(e: std::io::Error) -> String {
    format!("{e}: {}", git2::Error::last_error(-1).message())
}

/// A persistent bare clone of one remote branch.
pub struct Checkout {
    repo: Repository,
    settings: GitSettings,
    /// Set when a write found a stale lock file in the clone, or a read
    /// found an object missing. The clone is this process's alone, so a
    /// lock no one here holds was left by a process killed mid-write and
    /// will never go away, and a missing object will not come back: the
    /// cycle discards such a clone and clones again (see
    /// [`Checkout::is_damaged`]).
    damaged: std::cell::Cell<bool>,
    /// The commits of a [`Checkout::batched`] run, built in memory and not
    /// yet on the branch; `None` outside one.
    batch: Option<batch::Batch>,
    /// The branch's first-parent line indexed by the paths each commit
    /// changed, for [`Checkout::value_events`]. Derived from git; rebuilt
    /// (new commits only) when the branch moves.
    line: std::cell::RefCell<line::Line>,
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
                    batch: None,
                    line: Default::default(),
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
            batch: None,
            line: Default::default(),
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
        // An object the clone's own refs or trees name is gone: its files
        // were removed or corrupted under it. Nothing in this process will
        // bring it back, and a sync need not notice (a fetch with nothing
        // new reads no object, and libgit2 answers "exists" from its cache
        // for objects it read before), so the clone is discarded and made
        // again rather than failing every cycle.
        if e.class() == git2::ErrorClass::Odb && e.code() == ErrorCode::NotFound {
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
    pub fn fetch(&mut self) -> Result<CommitId, GitError> {
        let refspec = format!("+{}:{}", self.local_ref(), self.tracking_ref());
        // tagwatch's own pull-request branches come in the same fetch: what
        // they hold decides whether a request needs rebuilding, and a
        // deleted one must disappear here too (prune).
        let proposals =
            format!("+refs/heads/{PROPOSAL_PREFIX}*:refs/remotes/{REMOTE}/{PROPOSAL_PREFIX}*");
        let why = std::cell::RefCell::new(None);
        let mut options = FetchOptions::new();
        options
            .remote_callbacks(auth::callbacks(&self.settings, &why))
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
        tracing::debug!(remote = %redact(&self.settings.url), branch = %self.settings.branch, "fetching");
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
        Ok(CommitId(head))
    }

    /// Fetches the branch and moves the local branch to it, discarding any
    /// local commits that were never pushed (they are rebuilt from the
    /// desired state, never replayed). Returns the new head.
    pub fn sync(&mut self) -> Result<CommitId, GitError> {
        let head = self.fetch()?;
        self.repo
            .reference(
                &self.local_ref(),
                head.0,
                true,
                "tagwatch: sync with remote",
            )
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
    pub fn head(&self) -> Result<CommitId, GitError> {
        self.repo
            .refname_to_id(&self.local_ref())
            .map(CommitId)
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
    ) -> Result<CommitId, GitError> {
        let local = self.local_ref();
        crate::metrics::time(&crate::metrics::get().git_duration, "commit", || {
            self.commit_onto(&local, path, Some(content), message, when)
        })
    }

    /// Commits `content` as `path` (or, with `None`, the file's removal)
    /// on top of the commit `refname` points at, and moves `refname` to
    /// the new commit.
    ///
    /// Inside [`Checkout::batched`], a commit on the batch's branch is
    /// built in memory instead and the branch moves when the batch ends
    /// (see the `batch` module).
    fn commit_onto(
        &mut self,
        refname: &str,
        path: &RepoPath,
        content: Option<&[u8]>,
        message: &str,
        when: time::OffsetDateTime,
    ) -> Result<CommitId, GitError> {
        if self
            .batch
            .as_ref()
            .is_some_and(|batch| batch.refname() == refname)
        {
            return self.commit_in_batch(path, content, message, when);
        }
        let parent = self
            .repo
            .find_reference(refname)
            .and_then(|r| r.peel_to_commit())
            .map_err(|e| self.local_error(e))?;
        let built = batch::build_commit(
            &self.repo,
            &self.settings,
            &parent,
            path,
            content,
            message,
            when,
        )
        .map_err(|e| self.build_error(e))?;
        // Moves only if the branch still points at the parent: the
        // compare-and-swap libgit2's own `commit(Some(refname), …)` does.
        self.repo
            .reference_matching(refname, built.id, true, parent.id(), "tagwatch: commit")
            .map_err(|e| self.local_error(e))?;
        Ok(CommitId(built.id))
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
        let rejected = |message: String| GitError::Rejected {
            remote: redact(&self.settings.url),
            branch: self.settings.branch.clone(),
            message,
        };
        let expected = self
            .repo
            .refname_to_id(&self.tracking_ref())
            .map_err(|e| self.local_error(e))?;
        let new = self.head()?.0;
        if new == expected {
            return Ok(());
        }
        // A bare repository or a work tree's, as libgit2's transport takes.
        let remote = Repository::open(path).map_err(|e| self.remote_error("push", e))?;
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
        let packed = pack.foreach(|chunk| {
            written = std::io::Write::write_all(&mut writer, chunk).map_err(write_failure);
            written.is_ok()
        });
        // A failed write stops the walk, so it is the cause to report.
        written.map_err(|e| {
            let message = format!("cannot write the pack into {}: {e}", path.display());
            self.remote_error("push", git2::Error::from_str(&message))
        })?;
        packed.map_err(|e| self.local_error(e))?;
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
            Err(e) if e.code() == ErrorCode::Modified => {
                return Err(rejected(format!(
                    "the branch moved since it was fetched: {}",
                    e.message()
                )));
            }
            // Another writer holds the ref's lock right now, about to move
            // the branch: the same lost race, seen a moment earlier.
            Err(e)
                if e.code() == ErrorCode::Locked || e.message().contains("failed to lock file") =>
            {
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
            let mut cbs = auth::callbacks(&self.settings, &why);
            cbs.push_update_reference(|_, status| {
                if let Some(message) = status {
                    rejection = Some(message.to_string());
                }
                Ok(())
            });
            let mut options = PushOptions::new();
            // Delta search is most of a large push's cost (5,000 commits
            // of wide trees: issue 20); 0 is one thread a core.
            options
                .remote_callbacks(cbs)
                .packbuilder_parallelism(0)
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

    /// The commit tagwatch's branch `branch` has on the remote, as of the
    /// last fetch.
    pub fn remote_branch(&self, branch: &str) -> Option<CommitId> {
        self.repo
            .refname_to_id(&format!("refs/remotes/{REMOTE}/{branch}"))
            .ok()
            .map(CommitId)
    }

    /// Points the local `refs/heads/<branch>` at `at`, to build on. Returns
    /// its ref name.
    pub fn start_branch(&mut self, branch: &str, at: CommitId) -> Result<String, GitError> {
        let refname = format!("refs/heads/{branch}");
        self.repo
            .reference(&refname, at.0, true, "tagwatch: rebuild proposal")
            .map_err(|e| self.local_error(e))?;
        Ok(refname)
    }

    /// The local branch's commit, after building on it.
    pub fn start_branch_tip(&self, branch: &str) -> Option<CommitId> {
        self.repo
            .refname_to_id(&format!("refs/heads/{branch}"))
            .ok()
            .map(CommitId)
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
    ) -> Result<CommitId, GitError> {
        self.commit_onto(refname, path, Some(content), message, when)
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

#[cfg(test)]
mod tests {
    #[test]
    fn commit_ids_print_and_parse_as_their_full_hex_id() {
        use super::CommitId;
        let hex = "0123456789abcdef0123456789abcdef01234567";
        let id: CommitId = hex.parse().unwrap();
        assert_eq!(id.to_string(), hex);
        assert_eq!(hex.to_uppercase().parse::<CommitId>().unwrap(), id);
        for bad in [
            "",
            "0123",
            "xyz",
            &format!("{hex}0"),
            &format!("{}g", &hex[..39]),
        ] {
            let e = bad.parse::<CommitId>().unwrap_err();
            assert!(e.to_string().contains("is not a commit id"), "{bad}: {e}");
        }
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
}
