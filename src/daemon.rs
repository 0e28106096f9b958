//! The long-running loop: a cycle every `interval` until shutdown.
//!
//! Shutdown is a [`CancellationToken`]. The loop looks at it only between
//! cycles, so a cycle under way (and the push at its end) always finishes;
//! the registry's and git's own timeouts bound how long that can take.

use std::sync::Arc;

use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::config::Config;
use crate::forge::Forge;
use crate::reconcile::{self, CycleReport, Mode, Peers, SharedCheckout};
use crate::registry::Registry;

/// What a running daemon works with. Built once at start-up.
#[derive(Clone)]
pub struct Context {
    pub config: Arc<Config>,
    pub registry: Arc<dyn Registry>,
    pub forge: Option<Arc<dyn Forge>>,
    pub checkout: SharedCheckout,
    /// A fixed "now" (`--now`); `None` is the system clock.
    pub now: Option<time::OffsetDateTime>,
}

impl Context {
    pub fn new(
        config: Config,
        registry: Arc<dyn Registry>,
        forge: Option<Arc<dyn Forge>>,
    ) -> Context {
        Context {
            config: Arc::new(config),
            registry,
            forge,
            checkout: Default::default(),
            now: None,
        }
    }

    pub fn peers(&self) -> Peers {
        Peers {
            registry: Arc::clone(&self.registry),
            forge: self.forge.clone(),
            now: self.now,
        }
    }

    /// One cycle, logged.
    pub async fn cycle(&self, mode: Mode) -> CycleReport {
        let started = Instant::now();
        let report = reconcile::run_cycle(
            Arc::clone(&self.config),
            self.peers(),
            Arc::clone(&self.checkout),
            mode,
        )
        .await;
        let counts = reconcile::summarize(&report);
        if report.any_failed() {
            error!(elapsed = ?started.elapsed(), ?counts, "cycle finished with failures");
        } else {
            info!(elapsed = ?started.elapsed(), ?counts, "cycle finished");
        }
        report
    }
}

/// Runs cycles every `interval` until `shutdown` is cancelled. A cycle that
/// overruns the interval delays the next tick rather than causing a burst
/// of catch-up cycles.
pub async fn run(ctx: Context, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(ctx.config.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticks.tick() => {}
        }
        ctx.cycle(Mode::Apply).await;
    }
    info!("shut down");
}

/// Cancels `token` on SIGINT or SIGTERM (what Kubernetes sends). A second
/// signal exits at once, for the operator who really means it.
///
/// The handlers are installed before this returns, so a signal that
/// arrives during start-up is not lost to the default action.
pub fn cancel_on_signal(token: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::warn!("cannot install signal handlers; stop the process with SIGKILL");
            return;
        };
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            info!("signal received; finishing the current cycle, then stopping");
            token.cancel();
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::warn!("second signal; exiting without finishing the cycle");
            std::process::exit(130);
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        token.cancel();
    });
}
