//! Questions answered from the branch's history: the promotions recorded
//! in commit trailers, when the branch came to hold a value, which
//! promotion wrote a digest, what a proposal branch proposes, and which
//! commit set a file's value (`tagwatch history --at`). Read only; the
//! checkout ([`super::Checkout`]) owns writing. Callers get facts
//! ([`Recorded`], [`Setter`], [`CommitId`]), never git2's handles.

use std::path::Path;

use super::{Checkout, CommitId};
use crate::config::RepoPath;
use crate::trailers::Promotion;

/// A promotion as the branch records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub promotion: Promotion,
    /// The commit time: when the promotion reached the branch.
    pub at: time::OffsetDateTime,
    pub commit: String,
}

/// The commit that gave a file its value, as [`Checkout::value_setter`]
/// finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setter {
    /// The oldest commit of the unbroken first-parent run in which the file
    /// held `value`: the one that wrote it (or merged it in).
    pub commit: CommitId,
    /// Its commit time.
    pub at: time::OffsetDateTime,
    /// The value, as the caller's reader found it.
    pub value: String,
    /// The commit's parents, first parent first: a merge's second parent is
    /// the side branch (a pull request) that brought the value in.
    pub parents: Vec<CommitId>,
}

/// One commit that changed a file's value, as [`Checkout::value_events`]
/// finds it: the facts `cycle::holds` derives denials from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueEvent {
    pub commit: String,
    /// The commit's author name: who to credit with a revert.
    pub author: String,
    pub at: time::OffsetDateTime,
    /// The value before (at the first parent) and after; `None` where the
    /// file or the value was absent.
    pub from: Option<String>,
    pub to: Option<String>,
    /// The whole message, for its trailers.
    pub message: String,
}

impl Checkout {
    /// The promotions reachable from `from`, newest first, read from the
    /// commits' trailers along the first-parent line (what the branch ran,
    /// not what a merged side branch did). Looks at most `limit` commits back.
    pub fn promotions(&self, from: CommitId, limit: usize) -> impl Iterator<Item = Recorded> + '_ {
        let walk = self.repo.revwalk().ok().and_then(|mut walk| {
            walk.push(from.0).ok()?;
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

    /// The commits on the first-parent line from `from` (at most `limit`
    /// back), newest first, whose message's last paragraph has a trailer
    /// named in `keys`: `(commit, time, message)`. How `history` finds
    /// holds and releases, which are not promotions.
    pub fn commits_with_trailers(
        &self,
        from: CommitId,
        limit: usize,
        keys: &[&str],
    ) -> Vec<(String, time::OffsetDateTime, String)> {
        let Ok(mut walk) = self.repo.revwalk() else {
            return Vec::new();
        };
        if walk.push(from.0).is_err() || walk.simplify_first_parent().is_err() {
            return Vec::new();
        }
        walk.take(limit)
            .filter_map(Result::ok)
            .filter_map(|oid| {
                let commit = self.repo.find_commit(oid).ok()?;
                let message = commit.message().ok()?.to_string();
                let last = message.trim_end().rsplit("\n\n").next()?;
                let has = last.lines().any(|l| {
                    l.split_once(':')
                        .is_some_and(|(k, _)| keys.contains(&k.trim()))
                });
                has.then(|| (oid.to_string(), commit_time(&commit), message))
            })
            .collect()
    }

    /// The messages of the commits on `tip` that `base` does not have,
    /// newest first: what a proposal branch's commits say (a pending
    /// rollback's trailers among them).
    pub fn proposed_messages(&self, tip: CommitId, base: CommitId) -> Vec<String> {
        let Ok(mut walk) = self.repo.revwalk() else {
            return Vec::new();
        };
        if walk.push(tip.0).is_err() {
            return Vec::new();
        }
        if let Ok(fork) = self.repo.merge_base(tip.0, base.0) {
            let _ = walk.hide(fork);
        }
        walk.filter_map(Result::ok)
            .take(1_000)
            .filter_map(|oid| Some(self.repo.find_commit(oid).ok()?.message().ok()?.to_string()))
            .collect()
    }

    /// The message of `commit` (full hex id); `None` when it is not here.
    pub fn message_of(&self, commit: &str) -> Option<String> {
        let oid = git2::Oid::from_str(commit).ok()?;
        Some(self.repo.find_commit(oid).ok()?.message().ok()?.to_string())
    }

    /// The promotions on `tip` that `base` does not have: what a proposal
    /// branch proposes.
    pub fn proposed(&self, tip: CommitId, base: CommitId) -> Vec<Promotion> {
        self.proposed_messages(tip, base)
            .iter()
            .filter_map(|m| Promotion::parse(m))
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
        self.held_by(app, env, value, path, limit).map(|(_, at)| at)
    }

    /// The commit [`Checkout::held_since`] dates, with its time: the
    /// promotion (or, without one, the change to `path`) that made the
    /// branch hold `value`.
    pub fn held_by(
        &self,
        app: &str,
        env: &str,
        value: &str,
        path: &RepoPath,
        limit: usize,
    ) -> Option<(String, time::OffsetDateTime)> {
        let head = self.head().ok()?;
        if let Some(r) = self
            .promotions(head, limit)
            .find(|r| r.promotion.app == app && r.promotion.env == env)
            .filter(|r| r.promotion.to == value)
        {
            return Some((r.commit, r.at));
        }
        let mut walk = self.repo.revwalk().ok()?;
        walk.push(head.0).ok()?;
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
                let at = time::OffsetDateTime::from_unix_timestamp(commit.time().seconds()).ok()?;
                return Some((oid.to_string(), at));
            }
        }
        None
    }

    /// Whether `descendant` is `ancestor` or has it in its history (both
    /// full hex commit ids); `None` when either is not in the clone.
    pub fn is_ancestor(&self, ancestor: &str, descendant: &str) -> Option<bool> {
        let a = git2::Oid::from_str(ancestor).ok()?;
        let d = git2::Oid::from_str(descendant).ok()?;
        self.repo.find_commit(a).ok()?;
        self.repo.find_commit(d).ok()?;
        if a == d {
            return Some(true);
        }
        self.repo.graph_descendant_of(d, a).ok()
    }

    /// Every commit on the first-parent line from the head (at most
    /// `limit` back) that changed the value `value_of` reads from `path`,
    /// oldest first. `value_of` runs only where the file's blob changed.
    pub fn value_events(
        &self,
        path: &RepoPath,
        limit: usize,
        value_of: &dyn Fn(&[u8]) -> Option<String>,
    ) -> Vec<ValueEvent> {
        let Ok(head) = self.head() else {
            return Vec::new();
        };
        let read = |blob| self.read_value(blob, value_of);
        let mut out = Vec::new();
        // Only the commits that changed the file can change its value: the
        // line's index names them and the file's blob before and after
        // (see `line`), so a target's walk costs its own file's commits,
        // not every commit on the line, and no tree lookups.
        let mut line = self.line.borrow_mut();
        line.ensure(&self.repo, head.0, limit);
        let changes = line
            .changes_of(path.as_str(), limit)
            .filter_map(|(id, change)| Some((self.repo.find_commit(id).ok()?, change)));
        for (commit, change) in changes {
            let (blob, parent_blob) = (change.after, change.before);
            if blob == parent_blob {
                continue;
            }
            let (to, from) = (read(blob), read(parent_blob));
            if to == from {
                continue;
            }
            // A merge without trailers of its own (a pull request merged
            // with a merge commit) speaks with its side branch's tip: the
            // commit tagwatch proposed, trailers and all.
            let own = commit.message().unwrap_or("").to_string();
            let message = match commit.parent(1) {
                Ok(side) if !own.contains("Tagwatch-") => side.message().unwrap_or("").to_string(),
                _ => own,
            };
            out.push(ValueEvent {
                commit: commit.id().to_string(),
                author: commit.author().name().unwrap_or("").to_string(),
                at: commit_time(&commit),
                from,
                to,
                message,
            });
        }
        out.reverse();
        out
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

    /// The newest commit on the first-parent line from `head` made at or
    /// before `at`: what the branch held then. Looks at most `limit`
    /// commits back.
    pub fn first_parent_at(
        &self,
        head: CommitId,
        at: time::OffsetDateTime,
        limit: usize,
    ) -> Option<CommitId> {
        std::iter::successors(self.repo.find_commit(head.0).ok(), |c| c.parent(0).ok())
            .take(limit)
            .find(|c| commit_time(c) <= at)
            .map(|c| CommitId(c.id()))
    }

    /// What `path` holds at `then`, as `value_of` reads it from the file's
    /// bytes, and the commit that set it: walking first parents back from
    /// `then` while the value stays the same (a commit that reformats the
    /// file but keeps the value does not count). `value_of` runs only where
    /// the file's blob changed, so most commits cost one id comparison.
    /// `None` when the file is absent at `then`, larger than
    /// [`super::MAX_BLOB_BYTES`], or `value_of` finds no value.
    pub fn value_setter(
        &self,
        then: CommitId,
        path: &RepoPath,
        limit: usize,
        value_of: impl Fn(&[u8]) -> Option<String>,
    ) -> Option<Setter> {
        let blob_in = |commit: &git2::Commit<'_>| blob_in(commit, path);
        let read = |blob| self.read_value(blob, &value_of);
        let mut setter = self.repo.find_commit(then.0).ok()?;
        let mut blob = blob_in(&setter);
        let value = read(blob)?;
        for _ in 0..limit {
            let Ok(parent) = setter.parent(0) else { break };
            let parent_blob = blob_in(&parent);
            if parent_blob != blob {
                if read(parent_blob).as_ref() != Some(&value) {
                    break;
                }
                blob = parent_blob;
            }
            setter = parent;
        }
        Some(Setter {
            commit: CommitId(setter.id()),
            at: commit_time(&setter),
            value,
            parents: setter.parent_ids().map(CommitId).collect(),
        })
    }
}

impl Checkout {
    /// What `value_of` reads from `blob`; `None` for no blob, or one larger
    /// than [`super::MAX_BLOB_BYTES`] (known from its header, unread).
    fn read_value(
        &self,
        blob: Option<git2::Oid>,
        value_of: &dyn Fn(&[u8]) -> Option<String>,
    ) -> Option<String> {
        let blob = blob?;
        let (size, _) = self.repo.odb().ok()?.read_header(blob).ok()?;
        if size > super::MAX_BLOB_BYTES {
            return None;
        }
        value_of(self.repo.find_blob(blob).ok()?.content())
    }
}

/// The blob `path` is in `commit`'s tree.
fn blob_in(commit: &git2::Commit<'_>, path: &RepoPath) -> Option<git2::Oid> {
    commit
        .tree()
        .ok()?
        .get_path(Path::new(path.as_str()))
        .ok()
        .map(|e| e.id())
}

fn commit_time(commit: &git2::Commit<'_>) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(commit.time().seconds())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use git2::{Repository, Signature, build::TreeUpdateBuilder};

    use crate::config::{GitSettings, Identity, RepoPath};
    use crate::gitops::Checkout;

    /// A bare repository whose `main` gets one commit per `(time, path,
    /// content)`, each on the previous one; returns the commits' ids.
    fn remote(dir: &Path, commits: &[(i64, &str, &str)]) -> Vec<git2::Oid> {
        let repo = Repository::init_bare(dir).unwrap();
        let mut ids: Vec<git2::Oid> = Vec::new();
        for (at, path, content) in commits {
            let parent = ids.last().map(|id| repo.find_commit(*id).unwrap());
            let base = match &parent {
                Some(p) => p.tree().unwrap(),
                None => repo
                    .find_tree(repo.treebuilder(None).unwrap().write().unwrap())
                    .unwrap(),
            };
            let blob = repo.blob(content.as_bytes()).unwrap();
            let mut update = TreeUpdateBuilder::new();
            update.upsert(*path, blob, git2::FileMode::Blob);
            let tree = repo
                .find_tree(update.create_updated(&repo, &base).unwrap())
                .unwrap();
            let who = Signature::new("P", "p@acme.dev", &git2::Time::new(*at, 0)).unwrap();
            let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
            let id = repo
                .commit(Some("refs/heads/main"), &who, &who, "c", &tree, &parents)
                .unwrap();
            ids.push(id);
        }
        ids
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

    #[test]
    fn the_setter_is_the_commit_that_wrote_the_value_not_one_that_reformatted_it() {
        let dir = tempfile::tempdir().unwrap();
        let ids = remote(
            &dir.path().join("remote.git"),
            &[
                (100, "values.yaml", "tag: 1.0.0\n"),
                (200, "README.md", "readme\n"),
                (300, "values.yaml", "tag: 1.1.0\n"),
                (400, "values.yaml", "# reformatted\ntag: 1.1.0\n"),
                (500, "README.md", "readme, again\n"),
            ],
        );
        let checkout = checkout(&dir.path().join("remote.git"), &dir.path().join("work"));
        let head = checkout.head().unwrap();
        let tag = |bytes: &[u8]| {
            std::str::from_utf8(bytes)
                .ok()?
                .lines()
                .find_map(|l| l.strip_prefix("tag: "))
                .map(str::to_string)
        };
        let values = RepoPath::new("values.yaml").unwrap();
        let at = |t| time::OffsetDateTime::from_unix_timestamp(t).unwrap();

        let now = checkout.value_setter(head, &values, 100, tag).unwrap();
        assert_eq!((now.commit.0, now.value.as_str()), (ids[2], "1.1.0"));
        assert_eq!(now.at, at(300));
        assert_eq!(
            now.parents.iter().map(|p| p.0).collect::<Vec<_>>(),
            [ids[1]]
        );

        let then = checkout.first_parent_at(head, at(250), 100).unwrap();
        assert_eq!(then.0, ids[1]);
        let before = checkout.value_setter(then, &values, 100, tag).unwrap();
        assert_eq!((before.commit.0, before.value.as_str()), (ids[0], "1.0.0"));

        assert_eq!(checkout.first_parent_at(head, at(99), 100), None);
        let readme = RepoPath::new("README.md").unwrap();
        assert_eq!(checkout.value_setter(head, &readme, 100, tag), None);
        let missing = RepoPath::new("nope.yaml").unwrap();
        assert_eq!(checkout.value_setter(head, &missing, 100, tag), None);
    }

    /// What [`Checkout::value_events`] finds, found the slow way: every
    /// commit of the first-parent line, its file's blob against its first
    /// parent's. The line index must find exactly the same events.
    fn walk_every_commit(
        repo: &Repository,
        path: &str,
        limit: usize,
        value_of: &dyn Fn(&[u8]) -> Option<String>,
    ) -> Vec<(String, Option<String>, Option<String>)> {
        let blob = |c: &git2::Commit<'_>| {
            c.tree()
                .unwrap()
                .get_path(Path::new(path))
                .ok()
                .map(|e| e.id())
        };
        let read =
            |b: Option<git2::Oid>| b.and_then(|b| value_of(repo.find_blob(b).ok()?.content()));
        let head = repo.refname_to_id("refs/heads/main").unwrap();
        let mut out = Vec::new();
        let commits = std::iter::successors(repo.find_commit(head).ok(), |c| c.parent(0).ok());
        for commit in commits.take(limit) {
            let (now, before) = (blob(&commit), commit.parent(0).ok().and_then(|p| blob(&p)));
            if now != before && read(now) != read(before) {
                out.push((commit.id().to_string(), read(before), read(now)));
            }
        }
        out.reverse();
        out
    }

    #[test]
    fn value_events_from_the_line_index_equal_a_walk_of_every_commit() {
        let dir = tempfile::tempdir().unwrap();
        let remote_dir = dir.path().join("remote.git");
        let repo = Repository::init_bare(&remote_dir).unwrap();
        let paths = [
            "a.yaml",
            "envs/dev/a.yaml",
            "envs/dev/b.yaml",
            "envs/prod/a.yaml",
            "envs",
        ];
        let tag = |bytes: &[u8]| {
            std::str::from_utf8(bytes)
                .ok()?
                .lines()
                .find_map(|l| l.strip_prefix("tag: "))
                .map(str::to_string)
        };
        // A seeded xorshift: commits that set, reformat or delete a file,
        // some of them merges of a side branch, so the first-parent line
        // skips commits that changed a file on the side.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let commit_on = |parents: &[git2::Oid], n: u64, r: u64, k: u64| {
            let parent = parents.first().map(|id| repo.find_commit(*id).unwrap());
            let base = match &parent {
                Some(p) => p.tree().unwrap(),
                None => repo
                    .find_tree(repo.treebuilder(None).unwrap().write().unwrap())
                    .unwrap(),
            };
            let path = paths[(r % 4) as usize];
            let mut update = TreeUpdateBuilder::new();
            match k {
                0 if base.get_path(Path::new(path)).is_ok() => {
                    update.remove(path);
                }
                1 => {
                    let blob = repo
                        .blob(format!("# reformat {n}\ntag: 1.{}.0\n", r % 3).as_bytes())
                        .unwrap();
                    update.upsert(path, blob, git2::FileMode::Blob);
                }
                _ => {
                    let blob = repo
                        .blob(format!("tag: 1.{}.0\n", r % 3).as_bytes())
                        .unwrap();
                    update.upsert(path, blob, git2::FileMode::Blob);
                }
            }
            let tree = repo
                .find_tree(update.create_updated(&repo, &base).unwrap())
                .unwrap();
            let who = Signature::new("P", "p@acme.dev", &git2::Time::new(n as i64, 0)).unwrap();
            let parents: Vec<git2::Commit<'_>> = parents
                .iter()
                .map(|id| repo.find_commit(*id).unwrap())
                .collect();
            let parents: Vec<&git2::Commit<'_>> = parents.iter().collect();
            repo.commit(None, &who, &who, &format!("c{n}"), &tree, &parents)
                .unwrap()
        };
        let mut main: Vec<git2::Oid> = Vec::new();
        let mut grow = |main: &mut Vec<git2::Oid>, count: u64, from: u64| {
            for n in from..from + count {
                let (r, k) = (next(1000), next(4));
                let parents: Vec<git2::Oid> = main.last().copied().into_iter().collect();
                let mut id = commit_on(&parents, n, r, k);
                if next(5) == 0 && !parents.is_empty() {
                    // A side commit, merged with a commit of its own.
                    let side = commit_on(&parents, n, r + 1, 2);
                    id = commit_on(&[id, side], n, r + 2, k);
                }
                main.push(id);
            }
            repo.reference("refs/heads/main", *main.last().unwrap(), true, "t")
                .unwrap();
        };
        grow(&mut main, 120, 0);
        let mut checkout = checkout(&remote_dir, &dir.path().join("work"));
        let check = |checkout: &Checkout, limit: usize| {
            let remote = Repository::open_bare(&remote_dir).unwrap();
            for path in paths.iter().chain(&["missing.yaml"]) {
                let events = checkout.value_events(&RepoPath::new(path).unwrap(), limit, &tag);
                let found: Vec<_> = events
                    .into_iter()
                    .map(|e| (e.commit, e.from, e.to))
                    .collect();
                let want = walk_every_commit(&remote, path, limit, &tag);
                assert_eq!(found, want, "{path}, limit {limit}");
            }
        };
        check(&checkout, 1000);
        check(&checkout, 17);
        // The branch moves: the index follows, new commits only.
        grow(&mut main, 40, 1000);
        checkout.sync().unwrap();
        check(&checkout, 1000);
        check(&checkout, 60);
    }
}
