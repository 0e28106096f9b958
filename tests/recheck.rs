//! `newest` and `digest` re-read their chosen tag just before writing, so a
//! tag moved between listing and writing never produces a stale tag/digest
//! pairing. The registry here is a test implementation of the `Registry`
//! trait whose tag moves exactly at that moment, which no real peer can be
//! made to do on cue.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tagwatch::cycle::{Mode, Outcome, Peers, run_cycle};
use tagwatch::registry::memory::MemoryRegistry;
use tagwatch::registry::{DescribeFuture, Image, ListFuture, Registry};

use support::*;

/// Lists `stable` at one digest; while `moved` is set, describes it at another.
struct MovingTag {
    inner: MemoryRegistry,
    moved: AtomicBool,
}

impl Registry for MovingTag {
    fn list(&self, repository: &str) -> ListFuture<'_> {
        self.inner.list(repository)
    }

    fn describe(&self, repository: &str, tag: &str) -> DescribeFuture<'_> {
        let moved = self.moved.load(Ordering::SeqCst);
        let inner = self.inner.describe(repository, tag);
        Box::pin(async move {
            let image = inner.await?;
            Ok(image.map(|i| {
                if moved {
                    Image {
                        digest: "sha256:moved".into(),
                        ..i
                    }
                } else {
                    i
                }
            }))
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_that_moves_while_deciding_is_deferred_not_written() {
    let remote = GitRemote::new(&[("values.yaml", "image:\n  digest: sha256:old\n")]);
    let work = tempfile::tempdir().unwrap();
    let config_path = work.path().join("tagwatch.toml");
    let text = config(
        "http://127.0.0.1:9",
        &remote.file_url(),
        &work.path().join("co"),
        &[("app", "app", "stable", "values.yaml")],
    )
    .replace(
        "constraint = \"stable\"",
        "strategy = \"digest\"\nconstraint = \"stable\"",
    )
    .replace("key = \"image.tag\"", "key = \"image.digest\"");
    std::fs::write(&config_path, text).unwrap();
    let config = Arc::new(tagwatch::config::load(&config_path).unwrap());

    let registry = Arc::new(MovingTag {
        inner: MemoryRegistry::default(),
        moved: AtomicBool::new(true),
    });
    registry.inner.set(
        "app",
        vec![Image {
            tag: "stable".into(),
            digest: "sha256:new".into(),
            pushed_at: None,
        }],
    );
    let checkout = Default::default();

    let peers = |registry: Arc<MovingTag>| Peers {
        registry,
        forge: None,
        prometheus: None,
        argocd: None,
        now: None,
    };
    let report = run_cycle(
        Arc::clone(&config),
        peers(registry.clone()),
        Arc::clone(&checkout),
        Mode::Apply,
    )
    .await;
    match &report.targets[0].outcome {
        Outcome::Deferred { reason, .. } => assert!(
            reason.contains("moved from sha256:new to sha256:moved"),
            "{reason}"
        ),
        other => panic!("expected Deferred, got {other:?}"),
    }
    assert_eq!(
        remote.subjects(),
        ["seed"],
        "nothing written while the tag moved"
    );

    registry.moved.store(false, Ordering::SeqCst);
    let report = run_cycle(config, peers(registry), checkout, Mode::Apply).await;
    assert!(
        matches!(&report.targets[0].outcome, Outcome::Promoted { to, .. } if to == "sha256:new"),
        "{report:?}"
    );
    assert_eq!(remote.show("values.yaml"), "image:\n  digest: sha256:new\n");
}

/// Lists what `inner` holds; `describe` answers as `gone` says, and counts
/// its calls.
struct Vanishing {
    inner: MemoryRegistry,
    gone: AtomicBool,
    describes: std::sync::atomic::AtomicUsize,
}

impl Registry for Vanishing {
    fn list(&self, repository: &str) -> ListFuture<'_> {
        self.inner.list(repository)
    }

    fn describe(&self, repository: &str, tag: &str) -> DescribeFuture<'_> {
        self.describes.fetch_add(1, Ordering::SeqCst);
        let gone = self.gone.load(Ordering::SeqCst);
        let inner = self.inner.describe(repository, tag);
        Box::pin(async move { Ok(if gone { None } else { inner.await? }) })
    }
}

/// `newest` re-checks its choice; a tag deleted between listing and
/// writing defers dev, and prod (promote_from dev, in the same cycle) is
/// decided as if dev had not moved — in a dry run exactly as in a real one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_that_disappears_while_deciding_defers_its_env_and_the_chain_after_it() {
    let remote = GitRemote::new(&[
        ("dev.yaml", "image:\n  tag: build-1\n"),
        ("prod.yaml", "image:\n  tag: build-1\n"),
    ]);
    let work = tempfile::tempdir().unwrap();
    let config_path = work.path().join("tagwatch.toml");
    let text = config(
        "http://127.0.0.1:9",
        &remote.file_url(),
        &work.path().join("co"),
        &[("app", "app", "build-*", "dev.yaml")],
    )
    .replace(
        "constraint = \"build-*\"",
        "strategy = \"newest\"\nallow = '^build-'",
    );
    let text = format!(
        "{text}\n[[apps.targets]]\nenv = \"prod\"\nfile = \"prod.yaml\"\nkey = \"image.tag\"\npromote_from = \"dev\"\n"
    );
    std::fs::write(&config_path, &text).unwrap();
    let config =
        Arc::new(tagwatch::config::load(&config_path).unwrap_or_else(|e| panic!("{e}\n{text}")));
    let at = |s: i64| time::OffsetDateTime::from_unix_timestamp(1_700_000_000 + s).ok();
    let registry = Arc::new(Vanishing {
        inner: MemoryRegistry::default(),
        gone: AtomicBool::new(true),
        describes: Default::default(),
    });
    registry.inner.set(
        "app",
        vec![
            Image {
                tag: "build-1".into(),
                digest: "sha256:1".into(),
                pushed_at: at(0),
            },
            Image {
                tag: "build-2".into(),
                digest: "sha256:2".into(),
                pushed_at: at(60),
            },
        ],
    );
    let checkout = Default::default();
    let peers = Peers {
        registry: registry.clone(),
        forge: None,
        prometheus: None,
        argocd: None,
        now: None,
    };
    let cycle = |mode| {
        run_cycle(
            Arc::clone(&config),
            peers.clone(),
            Arc::clone(&checkout),
            mode,
        )
    };

    for mode in [Mode::DryRun, Mode::Apply] {
        let report = cycle(mode).await;
        match &report.targets[0].outcome {
            Outcome::Deferred { reason, candidate } => {
                assert!(
                    reason.contains("tag build-2 disappeared while deciding"),
                    "{reason}"
                );
                assert_eq!(candidate, "build-2");
            }
            other => panic!("{mode:?}: dev: expected Deferred, got {other:?}"),
        }
        assert_eq!(
            report.targets[1].outcome,
            Outcome::Unchanged,
            "{mode:?}: {report:?}"
        );
    }
    assert_eq!(
        remote.subjects(),
        ["seed"],
        "nothing written for a vanished tag"
    );

    // Back: one re-check answers dev and prod (the same image), and the
    // chain flows in one cycle.
    registry.gone.store(false, Ordering::SeqCst);
    let before = registry.describes.load(Ordering::SeqCst);
    let report = cycle(Mode::Apply).await;
    let promoted: Vec<&str> = report
        .targets
        .iter()
        .filter_map(|t| match &t.outcome {
            Outcome::Promoted { to, .. } => Some(to.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(promoted, ["build-2", "build-2"], "{report:?}");
    assert_eq!(registry.describes.load(Ordering::SeqCst) - before, 1);

    // A quiet cycle asks the registry nothing beyond its listing.
    let before = registry.describes.load(Ordering::SeqCst);
    let report = cycle(Mode::Apply).await;
    assert!(
        report
            .targets
            .iter()
            .all(|t| t.outcome == Outcome::Unchanged),
        "{report:?}"
    );
    assert_eq!(registry.describes.load(Ordering::SeqCst), before);
}
