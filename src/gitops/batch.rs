//! Many commits on the branch at once: a cycle's promotions, one commit
//! per app, built in memory, stored as packs, and the branch moved once.
//!
//! Why not one commit at a time: each commit rewrites every tree on its
//! file's path, and in a GitOps repository those trees are wide (an
//! `envs/prod/` of 2,000 apps is a 60 KB tree). Written as loose objects,
//! every commit zlib-compressed and wrote such trees to disk, and the next
//! commit read and inflated them back: 11 ms a commit at 2,000 entries,
//! growing with the directory's width (issue 20). In a batch, objects go
//! to an in-memory object database (libgit2's mempack) layered over the
//! clone's own, which it reads as an alternate and never writes: a commit
//! costs hashing its new trees, and the next commit finds them in memory.
//!
//! They reach disk as packs, written by libgit2's pack builder through the
//! clone's pack writer: delta-compressed (a tree that differs from the last
//! by one entry costs a few bytes) and indexed. A pack is written whenever
//! the batch holds [`STORE_BYTES`] of objects, so memory stays bounded
//! whatever the number of commits, and at the batch's end. Only then does
//! the branch move, once, with a compare-and-swap from where the batch
//! started: a crash or a failure leaves at worst unreferenced packs (as a
//! failed push does), never a branch pointing at objects that are not on
//! disk. The commits are the same objects, byte for byte, as the
//! one-at-a-time path makes (the mempack only changes where they live
//! until stored), so their ids, signatures and trailers do not change.
//!
//! This module owns building a commit's objects (for both paths) and the
//! batch; what to commit is the caller's.

use std::path::{Path, PathBuf};

use git2::{FileMode, Odb, Oid, Repository, Signature, build::TreeUpdateBuilder};

use super::{Checkout, CommitId, GitError, auth};
use crate::config::{GitSettings, RepoPath};

/// How many bytes of new objects a batch holds in memory before it writes
/// them out as a pack. At a 45 KB directory tree per commit this is about
/// 700 commits a pack: few packs per cycle, and a bounded heap (the issue's
/// budget is 200 MB for the whole process at 5,000 promotions).
const STORE_BYTES: usize = 32 << 20;

/// The mempack's priority in the overlay: above the alternate's loose and
/// pack backends (1 and 2), so every write lands in memory.
const MEMPACK_PRIORITY: i32 = 1000;

/// The commits of one [`Checkout::batched`] run that are not on the
/// branch yet.
pub(super) struct Batch {
    /// The overlay: a mempack for writes over the clone's objects
    /// directory as a read-only alternate. Replaced by a fresh one after
    /// each pack is stored, which empties the mempack.
    repo: Repository,
    /// The clone's objects directory, for the next overlay.
    objects: PathBuf,
    /// The branch the batch commits on.
    refname: String,
    /// Where the branch pointed when the batch began: the compare-and-swap
    /// at the end expects it there still.
    base: Oid,
    /// The batch's newest commit: the next commit's parent.
    tip: Oid,
    commits: usize,
    /// Objects in the mempack not yet in a pack, with the path each was
    /// written for (a hint that groups similar trees for delta search).
    unstored: Vec<(Oid, String)>,
    /// Their total size, uncompressed.
    unstored_bytes: usize,
    /// When to write them out: [`STORE_BYTES`] but in tests.
    store_bytes: usize,
}

impl Batch {
    pub(super) fn refname(&self) -> &str {
        &self.refname
    }
}

/// A commit built in some object database, not yet on any branch.
pub(super) struct Built {
    pub id: Oid,
    /// Every object written for it, with the path each stands for: the
    /// file's blob, the trees on its path, the root tree, the commit.
    pub objects: Vec<(Oid, String)>,
}

/// Why a commit could not be built; mapped to [`GitError`] by the checkout,
/// which knows its paths.
pub(super) enum BuildError {
    Git(git2::Error),
    Signing(auth::AuthError),
    NotUtf8(std::str::Utf8Error),
}

impl From<git2::Error> for BuildError {
    fn from(e: git2::Error) -> Self {
        BuildError::Git(e)
    }
}

/// Builds, in `repo`'s object database, the commit that sets `path` to
/// `content` (or removes it, with `None`) on top of `parent`, signed when
/// the settings name a key. The file's mode (say, executable) is kept.
/// Moves no reference.
pub(super) fn build_commit(
    repo: &Repository,
    settings: &GitSettings,
    parent: &git2::Commit<'_>,
    path: &RepoPath,
    content: Option<&[u8]>,
    message: &str,
    when: time::OffsetDateTime,
) -> Result<Built, BuildError> {
    let tree = parent.tree()?;
    let mode = match tree.get_path(Path::new(path.as_str())) {
        Ok(entry) if entry.filemode() == i32::from(FileMode::BlobExecutable) => {
            FileMode::BlobExecutable
        }
        _ => FileMode::Blob,
    };
    let mut objects = Vec::new();
    let mut update = TreeUpdateBuilder::new();
    match content {
        Some(content) => {
            let blob = repo.blob(content)?;
            objects.push((blob, path.to_string()));
            update.upsert(path.as_str(), blob, mode);
        }
        None => {
            update.remove(path.as_str());
        }
    }
    let new_tree = repo.find_tree(update.create_updated(repo, &tree)?)?;
    objects.push((new_tree.id(), String::new()));
    // The trees on the file's path, rewritten by the update. A directory
    // the removal emptied is gone, and so is everything below it.
    let mut dir = String::new();
    let mut parts = path.as_str().split('/');
    parts.next_back();
    for part in parts {
        if !dir.is_empty() {
            dir.push('/');
        }
        dir.push_str(part);
        match new_tree.get_path(Path::new(&dir)) {
            Ok(entry) => objects.push((entry.id(), dir.clone())),
            Err(_) => break,
        }
    }
    let author = &settings.author;
    let time = git2::Time::new(when.unix_timestamp(), 0);
    let signature = Signature::new(&author.name, &author.email, &time)?;
    let id = match &settings.signing_key_file {
        None => repo.commit(None, &signature, &signature, message, &new_tree, &[parent])?,
        // A signed commit: build the commit object, sign its bytes with the
        // SSH key as `git -c gpg.format=ssh` would (namespace "git",
        // SHA-512), and store it with the signature in its gpgsig header.
        Some(key_file) => {
            let buffer =
                repo.commit_create_buffer(&signature, &signature, message, &new_tree, &[parent])?;
            let text = std::str::from_utf8(&buffer).map_err(BuildError::NotUtf8)?;
            let armored = auth::ssh_signature(key_file, &buffer).map_err(BuildError::Signing)?;
            repo.commit_signed(text, &armored, Some("gpgsig"))?
        }
    };
    objects.push((id, String::new()));
    Ok(Built { id, objects })
}

/// A repository whose writes go to a fresh mempack and whose reads fall
/// through to the objects directory `objects`.
fn overlay(objects: &Path) -> Result<Repository, git2::Error> {
    let odb = Odb::new()?;
    odb.add_new_mempack_backend(MEMPACK_PRIORITY)?;
    let dir = objects
        .to_str()
        .ok_or_else(|| git2::Error::from_str("the clone's path is not UTF-8"))?;
    odb.add_disk_alternate(dir)?;
    Repository::from_odb(odb)
}

impl Checkout {
    /// Runs `f`, building every commit it makes on the local branch in
    /// memory (see the module's header), then stores them and moves the
    /// branch once. If `f` fails, or storing does, the branch does not
    /// move and none of the batch's commits are on it.
    ///
    /// Inside `f`, reads ([`Checkout::read`], [`Checkout::head`]) still see
    /// the branch as it was before the batch: build every commit from
    /// facts gathered first.
    pub fn batched<T>(
        &mut self,
        f: impl FnOnce(&mut Checkout) -> Result<T, GitError>,
    ) -> Result<T, GitError> {
        self.batched_storing_at(STORE_BYTES, f)
    }

    /// [`Checkout::batched`], writing a pack whenever `store_bytes` of
    /// objects are held (tests make it small, to store many packs).
    fn batched_storing_at<T>(
        &mut self,
        store_bytes: usize,
        f: impl FnOnce(&mut Checkout) -> Result<T, GitError>,
    ) -> Result<T, GitError> {
        let refname = self.local_ref();
        let base = self
            .repo
            .refname_to_id(&refname)
            .map_err(|e| self.local_error(e))?;
        let objects = self.repo.path().join("objects");
        let repo = overlay(&objects).map_err(|e| self.local_error(e))?;
        self.batch = Some(Batch {
            repo,
            objects,
            refname,
            base,
            tip: base,
            commits: 0,
            unstored: Vec::new(),
            unstored_bytes: 0,
            store_bytes,
        });
        let result = f(self);
        let batch = self.batch.take();
        let value = result?;
        match batch {
            Some(batch) => self.finish(batch)?,
            None => return Err(self.no_batch()),
        }
        Ok(value)
    }

    fn no_batch(&self) -> GitError {
        GitError::Local {
            path: self.settings.checkout_dir.clone(),
            message: "a batched commit outside a batch".into(),
        }
    }

    pub(super) fn build_error(&self, e: BuildError) -> GitError {
        match e {
            BuildError::Git(e) => self.local_error(e),
            BuildError::Signing(source) => GitError::Signing {
                path: self.settings.checkout_dir.clone(),
                source,
            },
            BuildError::NotUtf8(e) => GitError::Local {
                path: self.settings.checkout_dir.clone(),
                message: format!("commit is not UTF-8: {e}"),
            },
        }
    }

    /// One commit on the batch's branch, in memory.
    pub(super) fn commit_in_batch(
        &mut self,
        path: &RepoPath,
        content: Option<&[u8]>,
        message: &str,
        when: time::OffsetDateTime,
    ) -> Result<CommitId, GitError> {
        let Some(mut batch) = self.batch.take() else {
            return Err(self.no_batch());
        };
        let made = self.commit_into(&mut batch, path, content, message, when);
        self.batch = Some(batch);
        made
    }

    fn commit_into(
        &self,
        batch: &mut Batch,
        path: &RepoPath,
        content: Option<&[u8]>,
        message: &str,
        when: time::OffsetDateTime,
    ) -> Result<CommitId, GitError> {
        let built = {
            let parent = batch
                .repo
                .find_commit(batch.tip)
                .map_err(|e| self.local_error(e))?;
            build_commit(
                &batch.repo,
                &self.settings,
                &parent,
                path,
                content,
                message,
                when,
            )
            .map_err(|e| self.build_error(e))?
        };
        let odb = batch.repo.odb().map_err(|e| self.local_error(e))?;
        for (id, _) in &built.objects {
            let (size, _) = odb.read_header(*id).map_err(|e| self.local_error(e))?;
            batch.unstored_bytes += size;
        }
        drop(odb);
        batch.unstored.extend(built.objects);
        batch.tip = built.id;
        batch.commits += 1;
        if batch.unstored_bytes >= batch.store_bytes {
            self.store(batch)?;
        }
        Ok(CommitId(built.id))
    }

    /// Writes the batch's objects held in memory into the clone as one
    /// pack, and starts a fresh mempack.
    fn store(&self, batch: &mut Batch) -> Result<(), GitError> {
        if batch.unstored.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        {
            let mut pack = batch.repo.packbuilder().map_err(|e| self.local_error(e))?;
            // Delta search is the pack's main cost; 0 is one thread a core.
            pack.set_threads(0);
            for (id, name) in &batch.unstored {
                let name = (!name.is_empty()).then_some(name.as_str());
                pack.insert_object(*id, name)
                    .map_err(|e| self.local_error(e))?;
            }
            let odb = self.repo.odb().map_err(|e| self.local_error(e))?;
            let mut writer = odb.packwriter().map_err(|e| self.local_error(e))?;
            let mut written = Ok(());
            let packed = pack.foreach(|chunk| {
                written =
                    std::io::Write::write_all(&mut writer, chunk).map_err(super::write_failure);
                written.is_ok()
            });
            written.map_err(|e| GitError::Local {
                path: self.settings.checkout_dir.clone(),
                message: format!("cannot write a pack of new commits: {e}"),
            })?;
            packed.map_err(|e| self.local_error(e))?;
            // Indexes the pack and renames it into place: from here its
            // objects are the clone's.
            writer.commit().map_err(|e| self.local_error(e))?;
        }
        tracing::debug!(
            objects = batch.unstored.len(),
            bytes = batch.unstored_bytes,
            elapsed = ?started.elapsed(),
            "stored a pack of new commits"
        );
        batch.repo = overlay(&batch.objects).map_err(|e| self.local_error(e))?;
        batch.unstored.clear();
        batch.unstored_bytes = 0;
        Ok(())
    }

    /// Stores what is left in memory, then moves the branch to the batch's
    /// last commit if it still points where the batch began.
    fn finish(&mut self, mut batch: Batch) -> Result<(), GitError> {
        if batch.tip == batch.base {
            return Ok(());
        }
        let started = std::time::Instant::now();
        self.store(&mut batch)?;
        self.repo
            .reference_matching(
                &batch.refname,
                batch.tip,
                true,
                batch.base,
                &format!("tagwatch: {} commits", batch.commits),
            )
            .map_err(|e| self.local_error(e))?;
        tracing::info!(commits = batch.commits, elapsed = ?started.elapsed(), "stored");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use git2::{Repository, Signature, build::TreeUpdateBuilder};

    use crate::config::{GitSettings, Identity, RepoPath};
    use crate::gitops::{Checkout, GitError};

    /// A bare remote whose `main` has one commit holding `files` files
    /// under `envs/prod/` (one directory per app, as a GitOps repository
    /// lays them out) and a README.
    fn remote(dir: &Path, files: usize) {
        let repo = Repository::init_bare(dir).unwrap();
        let empty = repo.treebuilder(None).unwrap().write().unwrap();
        let mut update = TreeUpdateBuilder::new();
        for i in 0..files {
            let blob = repo.blob(format!("tag: 1.0.{i}\n").as_bytes()).unwrap();
            update.upsert(
                format!("envs/prod/app-{i:04}/values.yaml"),
                blob,
                git2::FileMode::Blob,
            );
        }
        let readme = repo.blob(b"readme\n").unwrap();
        update.upsert("README.md", readme, git2::FileMode::Blob);
        let tree = update
            .create_updated(&repo, &repo.find_tree(empty).unwrap())
            .unwrap();
        let tree = repo.find_tree(tree).unwrap();
        let who = Signature::new("P", "p@acme.dev", &git2::Time::new(100, 0)).unwrap();
        repo.commit(Some("refs/heads/main"), &who, &who, "c", &tree, &[])
            .unwrap();
    }

    fn checkout(remote: &Path, work: &Path) -> Checkout {
        let settings = GitSettings {
            url: format!("file://{}", remote.display()),
            branch: "main".into(),
            checkout_dir: work.to_path_buf(),
            author: Identity {
                name: "tagwatch".into(),
                email: "tagwatch@acme.dev".into(),
            },
            push_attempts: 1,
            token: None,
            ssh: None,
            signing_key_file: None,
            ca_file: None,
            github_app: None,
        };
        let mut checkout = Checkout::open_or_create(&settings).unwrap();
        checkout.sync().unwrap();
        checkout
    }

    fn path(i: usize) -> RepoPath {
        RepoPath::new(&format!("envs/prod/app-{i:04}/values.yaml")).unwrap()
    }

    fn at() -> time::OffsetDateTime {
        time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    /// Loose objects under the clone's objects directory.
    fn loose_objects(clone: &Path) -> usize {
        std::fs::read_dir(clone.join("objects"))
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().len() == 2)
            .map(|e| std::fs::read_dir(e.path()).unwrap().count())
            .sum()
    }

    fn packs(clone: &Path) -> usize {
        std::fs::read_dir(clone.join("objects/pack"))
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".pack"))
            .count()
    }

    fn clone_dir(work: &Path) -> std::path::PathBuf {
        std::fs::read_dir(work)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.join("objects").is_dir())
            .unwrap()
    }

    fn fsck(dir: &Path) {
        let out = std::process::Command::new("git")
            .args(["fsck", "--strict", "--no-dangling"])
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git fsck in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn a_batch_moves_the_branch_once_with_every_commit_stored_in_packs() {
        let dir = tempfile::tempdir().unwrap();
        let remote_dir = dir.path().join("remote.git");
        remote(&remote_dir, 300);
        let work = dir.path().join("work");
        let mut checkout = checkout(&remote_dir, &work);
        let base = checkout.head().unwrap();
        let clone = clone_dir(&work);
        let loose_before = loose_objects(&clone);

        // A small budget: the 40 commits' objects go out in several packs.
        let ids = checkout
            .batched_storing_at(64 * 1024, |checkout| {
                let mut ids = Vec::new();
                for i in 0..40 {
                    let content = format!("tag: 2.0.{i}\n");
                    ids.push(checkout.commit_file(
                        &path(i),
                        content.as_bytes(),
                        "promote",
                        at(),
                    )?);
                    // Inside the batch the branch has not moved.
                    assert_eq!(checkout.head().unwrap(), base);
                }
                Ok(ids)
            })
            .unwrap();

        assert_eq!(checkout.head().unwrap(), ids[39]);
        assert!(packs(&clone) >= 3, "{} packs", packs(&clone));
        assert_eq!(
            loose_objects(&clone),
            loose_before,
            "no loose objects written"
        );
        for i in 0..40 {
            let content = checkout.read(&path(i)).unwrap().unwrap();
            assert_eq!(content, format!("tag: 2.0.{i}\n").as_bytes());
        }
        assert_eq!(checkout.read(&path(40)).unwrap().unwrap(), b"tag: 1.0.40\n");
        // A process opening the clone afresh sees every commit, one per
        // file, each on the one before.
        let reopened = Repository::open_bare(&clone).unwrap();
        let mut parent = base.0;
        for (i, id) in ids.iter().enumerate() {
            let commit = reopened.find_commit(id.0).unwrap();
            assert_eq!(
                commit.parent_ids().collect::<Vec<_>>(),
                [parent],
                "commit {i}"
            );
            parent = id.0;
        }
        fsck(&clone);

        checkout.push().unwrap();
        let remote = Repository::open_bare(&remote_dir).unwrap();
        assert_eq!(remote.refname_to_id("refs/heads/main").unwrap(), ids[39].0);
        fsck(&remote_dir);
    }

    #[test]
    fn batched_commits_are_the_same_commits_as_one_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let remote_dir = dir.path().join("remote.git");
        remote(&remote_dir, 50);
        let mut one_by_one = checkout(&remote_dir, &dir.path().join("a"));
        let mut batched = checkout(&remote_dir, &dir.path().join("b"));
        let content = |i: usize| format!("tag: 3.0.{i}\n");
        let mut expected = Vec::new();
        for i in 0..10 {
            expected.push(
                one_by_one
                    .commit_file(&path(i), content(i).as_bytes(), "promote", at())
                    .unwrap(),
            );
        }
        let removal = one_by_one
            .commit_removal(&path(10), "remove", at())
            .unwrap();
        let got = batched
            .batched(|checkout| {
                let mut got = Vec::new();
                for i in 0..10 {
                    got.push(checkout.commit_file(
                        &path(i),
                        content(i).as_bytes(),
                        "promote",
                        at(),
                    )?);
                }
                Ok((got, checkout.commit_removal(&path(10), "remove", at())?))
            })
            .unwrap();
        assert_eq!(got, (expected, removal));
        assert_eq!(batched.head().unwrap(), removal);
        assert_eq!(batched.read(&path(10)).unwrap(), None);
    }

    #[test]
    fn a_failed_batch_leaves_the_branch_where_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let remote_dir = dir.path().join("remote.git");
        remote(&remote_dir, 20);
        let mut checkout = checkout(&remote_dir, &dir.path().join("work"));
        let base = checkout.head().unwrap();
        let failed: Result<(), GitError> = checkout.batched(|checkout| {
            for i in 0..3 {
                checkout.commit_file(&path(i), b"tag: 9.9.9\n", "promote", at())?;
            }
            Err(GitError::Local {
                path: "x".into(),
                message: "the fourth commit failed".into(),
            })
        });
        assert!(failed.is_err());
        assert_eq!(checkout.head().unwrap(), base);
        assert_eq!(checkout.read(&path(0)).unwrap().unwrap(), b"tag: 1.0.0\n");
        // Nothing of the batch lingers: the next commit is on the branch.
        let next = checkout
            .commit_file(&path(1), b"tag: 1.1.0\n", "promote", at())
            .unwrap();
        assert_eq!(checkout.head().unwrap(), next);
        let repo = Repository::open_bare(clone_dir(&dir.path().join("work"))).unwrap();
        assert_eq!(
            repo.find_commit(next.0).unwrap().parent_id(0).unwrap(),
            base.0
        );
    }
}
