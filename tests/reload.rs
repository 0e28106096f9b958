//! SIGHUP's reload, driven through `daemon::reload` with in-memory peers
//! handed in through `app::Connect`: a new registry client exactly when
//! `[aws]` changed, a forge when `[forge]` appears, and a broken file
//! changing nothing (and counted).

mod support;

use std::sync::Arc;
use std::sync::Mutex;

use tagwatch::app::{Connect, ConnectError, RegistryFuture};
use tagwatch::config::{AwsSettings, ForgeSettings};
use tagwatch::daemon::{Context, reload};
use tagwatch::forge::Forge;
use tagwatch::registry::Registry;
use tagwatch::registry::memory::MemoryRegistry;

use support::*;

/// Hands out memory registries and records the regions it was asked for;
/// refuses every forge (a reload that needs one must then be refused).
#[derive(Default)]
struct Recorder {
    regions: Mutex<Vec<String>>,
}

impl Connect for Recorder {
    fn registry<'a>(&'a self, aws: &'a AwsSettings) -> RegistryFuture<'a> {
        self.regions
            .lock()
            .unwrap()
            .push(format!("{:?}", aws.region));
        Box::pin(async { Ok(Arc::new(MemoryRegistry::default()) as Arc<dyn Registry>) })
    }

    fn forge(&self, forge: &ForgeSettings) -> Result<Arc<dyn Forge>, ConnectError> {
        tagwatch::app::Real.forge(forge)
    }
}

fn reloads(outcome: &str) -> f64 {
    let text = tagwatch::metrics::get().render();
    let series = format!("tagwatch_config_reloads_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series)?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn reload_reconnects_only_what_changed_and_a_broken_file_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tagwatch.toml");
    let text = config(
        "http://127.0.0.1:9",
        "file:///nowhere.git",
        &dir.path().join("co"),
        &[("app", "app", "^1", "dev.yaml")],
    );
    std::fs::write(&path, &text).unwrap();
    let first = tagwatch::config::load(&path).unwrap();
    let recorder = Arc::new(Recorder::default());
    let mut ctx = Context::new(first, Arc::new(MemoryRegistry::default()), None);
    ctx.connect = recorder.clone();
    let (ok0, bad0) = (reloads("success"), reloads("failure"));

    // Another app, same [aws]: no new registry client.
    let two = text.clone()
        + "\n[[apps]]\nname = \"web\"\nrepository = \"web\"\nconstraint = \"^2\"\n\n[[apps.targets]]\nenv = \"dev\"\nfile = \"web.yaml\"\nkey = \"image.tag\"\n";
    std::fs::write(&path, &two).unwrap();
    assert!(reload(&mut ctx).await);
    assert_eq!(ctx.config.apps.len(), 2);
    assert!(recorder.regions.lock().unwrap().is_empty());

    // Another region: exactly one new client, for that region.
    let moved = two.replace(&format!("region = \"{REGION}\""), "region = \"us-west-2\"");
    assert_ne!(moved, two);
    std::fs::write(&path, &moved).unwrap();
    assert!(reload(&mut ctx).await);
    assert_eq!(*recorder.regions.lock().unwrap(), ["Some(\"us-west-2\")"]);

    // A broken file: refused, nothing changes, counted as a failure.
    std::fs::write(&path, "interval = \"soon\"\n").unwrap();
    assert!(!reload(&mut ctx).await);
    assert_eq!(ctx.config.apps.len(), 2);
    assert_eq!(recorder.regions.lock().unwrap().len(), 1);
    assert_eq!(reloads("success") - ok0, 2.0);
    assert_eq!(reloads("failure") - bad0, 1.0);
}
