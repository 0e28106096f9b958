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
