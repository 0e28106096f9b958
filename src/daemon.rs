//! The long-running loop: a cycle every `interval` until shutdown.
//!
//! Shutdown is a [`CancellationToken`]. The loop looks at it only between
//! cycles, so a cycle under way (and the push at its end) always finishes;
//! the registry's and git's own timeouts bound how long that can take.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::app::Connect;
use crate::config::Config;
use crate::cycle::{self, CycleReport, Mode, Peers, SharedCheckout};
use crate::forge::Forge;
use crate::metrics;
use crate::registry::Registry;
use crate::server::Board;

/// What a running daemon works with. Built once at start-up.
#[derive(Clone)]
pub struct Context {
    pub config: Arc<Config>,
    pub registry: Arc<dyn Registry>,
    pub forge: Option<Arc<dyn Forge>>,
    /// For `analysis` gates; `None` without `[prometheus]`.
    pub prometheus: Option<Arc<dyn crate::prometheus::Prometheus>>,
    pub checkout: SharedCheckout,
    /// A fixed "now" (`--now`); `None` is the system clock.
    pub now: Option<time::OffsetDateTime>,
    /// What `/status` and `/` show.
    pub board: Arc<Board>,
    /// How a reload connects to the peers a new configuration names.
    pub connect: Arc<dyn Connect>,
    /// With `[argocd]`: the Argo CD health gate's peer.
    pub argocd: Option<Arc<dyn crate::argocd::ArgoCd>>,
    /// Where each applied cycle's report goes to be announced
    /// (`[[notify]]`); queued, never waited on.
    pub notifier: Option<Arc<crate::notify::Notifier>>,
}

impl Context {
    pub fn new(
        config: Config,
        registry: Arc<dyn Registry>,
        forge: Option<Arc<dyn Forge>>,
    ) -> Context {
        let board = Arc::new(Board::new(config.interval, targets(&config)));
        Context {
            config: Arc::new(config),
            registry,
            forge,
            prometheus: None,
            checkout: Default::default(),
            now: None,
            board,
            connect: Arc::new(crate::app::Real),
            argocd: None,
            notifier: None,
        }
    }

    pub fn peers(&self) -> Peers {
        Peers {
            registry: Arc::clone(&self.registry),
            forge: self.forge.clone(),
            prometheus: self.prometheus.clone(),
            argocd: self.argocd.clone(),
            now: self.now,
        }
    }

    /// One cycle over the apps named in `apps` only (an event's apps).
    pub async fn cycle_for(&self, apps: &[String]) -> CycleReport {
        let mut config = (*self.config).clone();
        config.apps.retain(|a| apps.contains(&a.name));
        self.cycle_with(Arc::new(config), Mode::Apply).await
    }

    /// One cycle, logged.
    pub async fn cycle(&self, mode: Mode) -> CycleReport {
        self.cycle_with(Arc::clone(&self.config), mode).await
    }

    async fn cycle_with(&self, config: Arc<Config>, mode: Mode) -> CycleReport {
        let started = Instant::now();
        let report = cycle::run_cycle(config, self.peers(), Arc::clone(&self.checkout), mode).await;
        cycle::export(&report, started.elapsed());
        self.board.record(&report);
        if mode == Mode::Apply
            && let Some(notifier) = &self.notifier
        {
            notifier.cycle(
                &report,
                self.now.unwrap_or_else(time::OffsetDateTime::now_utc),
            );
        }
        // `counts.<kind>` fields nest into one `counts` object in JSON logs
        // (numbers a log query can sum); kinds with none are left out.
        let counts = report.counts();
        let n = |kind: &str| counts.get(kind).copied();
        macro_rules! finished {
            ($level:ident, $message:literal) => {
                $level!(
                    elapsed = ?started.elapsed(),
                    counts.promoted = n("promoted"),
                    counts.proposed = n("proposed"),
                    counts.unchanged = n("unchanged"),
                    counts.no_candidate = n("no_candidate"),
                    counts.waiting = n("waiting"),
                    counts.deferred = n("deferred"),
                    counts.would_promote = n("would_promote"),
                    counts.failed = n("failed"),
                    $message
                )
            };
        }
        if report.any_failed() {
            finished!(error, "cycle finished with failures");
        } else {
            finished!(info, "cycle finished");
        }
        report
    }
}

/// Every app/env of `config`, in order.
pub fn targets(config: &Config) -> impl Iterator<Item = (String, String)> + '_ {
    config.apps.iter().flat_map(|a| {
        a.targets
            .iter()
            .map(move |t| (a.name.clone(), t.env.clone()))
    })
}

/// Runs cycles every `interval` until `shutdown` is cancelled. A cycle that
/// overruns the interval delays the next tick rather than causing a burst
/// of catch-up cycles.
///
/// This loop runs every cycle, so two never overlap: push events arrive as
/// [`Wake`]s and run a cycle over their apps between ticks, and SIGHUP
/// (a reload) is applied between cycles too.
pub async fn run(mut ctx: Context, mut wakes: mpsc::Receiver<Wake>, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(ctx.config.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut hangups = hangups();
    let mut backoff = Backoff::new(ctx.registry.throttled());
    // Whether the last turn of the loop ran a cycle (a reload or an event
    // for no app does not, and says nothing about throttling).
    let mut cycled = false;
    loop {
        // Between cycles, never during one: a registry that throttled the
        // last cycle gets a longer breather before the next (and the
        // events that arrive meanwhile wait in their channel).
        let pause = if cycled {
            let pause = backoff.pause(ctx.registry.throttled(), ctx.config.interval);
            let seconds = pause.map_or(0.0, |p| p.as_secs_f64());
            metrics::get().cycle_backoff.set(seconds);
            ctx.board.set_backoff(pause.unwrap_or_default());
            pause
        } else {
            None
        };
        cycled = false;
        if let Some(pause) = pause {
            tracing::warn!(
                pause = ?pause,
                throttled_cycles = backoff.streak,
                "the registry throttled the last cycle; waiting longer before the next"
            );
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticks.tick() => {
                ctx.cycle(Mode::Apply).await;
                cycled = true;
            }
            Some(wake) = wakes.recv() => {
                let apps: Vec<String> = ctx
                    .config
                    .apps
                    .iter()
                    // A DR target's replica repository wakes its app too
                    // (replication events name it).
                    .filter(|a| {
                        wake.repositories.contains(&a.repository)
                            || a.targets.iter().any(|t| {
                                t.replica
                                    .as_ref()
                                    .is_some_and(|r| wake.repositories.contains(&r.repository))
                            })
                    })
                    .map(|a| a.name.clone())
                    .collect();
                if !apps.is_empty() {
                    info!(repositories = ?wake.repositories, apps = apps.len(), "push events; reconciling their apps");
                    ctx.cycle_for(&apps).await;
                    cycled = true;
                }
                let _ = wake.done.send(());
            }
            Some(()) = recv_hangup(&mut hangups) => {
                let reloaded = reload(&mut ctx).await;
                // A new registry client counts throttles from zero.
                backoff.seen = ctx.registry.throttled();
                if reloaded && ticks.period() != ctx.config.interval {
                    ticks = tokio::time::interval_at(Instant::now() + ctx.config.interval, ctx.config.interval);
                    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
                }
            }
        }
    }
    info!("shut down");
}

/// The slowdown under throttling. The SDK already spaces one call's
/// retries (at most 3 attempts, exponential backoff with jitter), but a
/// daemon that lists the whole fleet again every interval keeps an
/// account's ECR quota exhausted however its single calls back off — the
/// rate-limit storm. So each cycle in which the registry throttled doubles
/// the wait before the next one (2, 4, 8 × the interval, at most 8 × and
/// at most 5 minutes more than the interval); the first cycle without a
/// throttle ends it.
struct Backoff {
    /// The registry's throttle count after the previous cycle.
    seen: u64,
    /// Cycles in a row that were throttled.
    streak: u32,
}

/// The most the backoff adds beyond the interval, whatever the interval.
const MAX_EXTRA_PAUSE: std::time::Duration = std::time::Duration::from_secs(300);

impl Backoff {
    fn new(throttled: u64) -> Backoff {
        Backoff {
            seen: throttled,
            streak: 0,
        }
    }

    /// How long to wait before the next cycle, beyond the usual schedule,
    /// given the registry's throttle count now; `None` when it did not
    /// throttle since the last call.
    fn pause(
        &mut self,
        throttled: u64,
        interval: std::time::Duration,
    ) -> Option<std::time::Duration> {
        let fresh = throttled > self.seen;
        self.seen = throttled;
        if !fresh {
            self.streak = 0;
            return None;
        }
        self.streak = self.streak.saturating_add(1);
        let factor = 1u32 << self.streak.min(3);
        let pause = interval
            .saturating_mul(factor)
            .min(interval.saturating_add(MAX_EXTRA_PAUSE));
        Some(pause)
    }
}

/// A burst of push events for `repositories`; `done` is answered once the
/// cycle they caused has finished (then the messages may be deleted).
pub struct Wake {
    pub repositories: std::collections::BTreeSet<String>,
    pub done: tokio::sync::oneshot::Sender<()>,
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = Option<()>;

fn hangups() -> Hangups {
    #[cfg(unix)]
    {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
    }
    #[cfg(not(unix))]
    None
}

async fn recv_hangup(hangups: &mut Hangups) -> Option<()> {
    #[cfg(unix)]
    if let Some(signal) = hangups {
        return signal.recv().await;
    }
    let _ = hangups;
    std::future::pending().await
}

/// Counts and logs a refused reload; the daemon keeps what it has.
fn refused(e: &dyn std::fmt::Display) -> bool {
    metrics::get()
        .config_reloads
        .with_label_values(&["failure"])
        .inc();
    error!(error = %e, "reload refused; still running the previous configuration");
    false
}

/// Re-reads the configuration file. A file that does not validate changes
/// nothing: the daemon goes on with what it has, and says why. Returns
/// whether the new configuration is in force.
pub async fn reload(ctx: &mut Context) -> bool {
    let path = ctx.config.source.clone();
    let config = match crate::config::load(&path) {
        Ok(config) => config,
        Err(e) => return refused(&e),
    };
    let forge = match config
        .forge
        .as_ref()
        .map(|f| ctx.connect.forge(f))
        .transpose()
    {
        Ok(forge) => forge,
        Err(e) => return refused(&e),
    };
    let prometheus = match config
        .prometheus
        .as_ref()
        .map(|p| ctx.connect.prometheus(p))
        .transpose()
    {
        Ok(prometheus) => prometheus,
        Err(e) => return refused(&e),
    };
    let argocd = match config
        .argocd
        .as_ref()
        .map(crate::argocd::connect)
        .transpose()
    {
        Ok(argocd) => argocd,
        Err(e) => return refused(&e),
    };
    // A different registry or remote needs a new client or clone; the
    // listen address and the event queue are fixed at start-up.
    if config.aws != ctx.config.aws {
        match ctx.connect.registry(&config.aws).await {
            Ok(registry) => ctx.registry = registry,
            Err(e) => return refused(&e),
        }
    }
    if config.git != ctx.config.git {
        *ctx.checkout.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
    if config.listen != ctx.config.listen {
        tracing::warn!("listen changed; it takes effect at the next restart");
    }
    ctx.board.configure(config.interval, targets(&config));
    metrics::get().retain_targets(&|app, env| {
        config
            .apps
            .iter()
            .any(|a| a.name == app && a.targets.iter().any(|t| t.env == env))
    });
    ctx.forge = forge;
    ctx.prometheus = prometheus;
    ctx.argocd = argocd;
    if let Some(notifier) = &ctx.notifier {
        notifier.reconfigure(&config);
    }
    ctx.config = Arc::new(config);
    metrics::get()
        .config_reloads
        .with_label_values(&["success"])
        .inc();
    info!(apps = ctx.config.apps.len(), "configuration reloaded");
    true
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn throttled_cycles_double_the_pause_and_a_clean_one_ends_it() {
        let interval = Duration::from_secs(10);
        let mut b = Backoff::new(5);
        // Nothing new since start-up: no pause.
        assert_eq!(b.pause(5, interval), None);
        let pauses: Vec<_> = [6, 9, 9 + 40, 50, 51]
            .into_iter()
            .map(|t| b.pause(t, interval))
            .collect();
        let s = Duration::from_secs;
        assert_eq!(
            pauses,
            [
                Some(s(20)),
                Some(s(40)),
                Some(s(80)),
                Some(s(80)),
                Some(s(80))
            ]
        );
        assert_eq!(b.pause(51, interval), None, "a clean cycle ends it");
        assert_eq!(b.pause(52, interval), Some(s(20)), "and it starts over");
    }

    #[test]
    fn the_pause_adds_at_most_five_minutes_to_a_long_interval() {
        let hour = Duration::from_secs(3600);
        let mut b = Backoff::new(0);
        assert_eq!(b.pause(1, hour), Some(hour + MAX_EXTRA_PAUSE));
    }
}
