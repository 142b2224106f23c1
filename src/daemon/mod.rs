//! `pivotwatch run`: the daemon. One process holds the store and runs
//!
//! * the **scheduler** (`scheduler.rs`): every source is due by its cron
//!   schedule in its watchlist's timezone ([`plan`]); due sources are
//!   checked by a bounded pool of tasks (`[http] concurrency`, and no more
//!   than the host's `per_host_concurrency` per host), and the next due
//!   time of each source is stored, so it survives restarts;
//! * **politeness** for every request ([`crate::fetch::polite`],
//!   [`crate::fetch::robots`]): per-host concurrency and spacing,
//!   `Retry-After`, robots.txt and its `Crawl-delay`;
//! * **source health** ([`health`]): notices to the maintainers when a
//!   source breaks and when it recovers;
//! * the **delivery loop** ([`crate::alert::delivery_loop_with`], the only
//!   one): [`crate::alert::deliver_due`] whenever something is due, and
//!   right after a check found something, with the running configuration;
//! * the **control socket** ([`control`]), through which `history`, `diff`,
//!   `findings`, `explain` and `outbox` run while the daemon holds the
//!   store;
//! * the **status endpoint** ([`status`]) when `[status] listen` is set;
//! * **signals**: SIGTERM and SIGINT stop dispatching, let the checks in
//!   flight finish within `[daemon] grace_period`, and exit 0; SIGHUP
//!   reloads settings and watchlists, keeping the running configuration
//!   when the new one has errors (logged as `path:line:col: message`);
//! * **systemd** readiness (`notify.rs`): READY, RELOADING, STOPPING,
//!   STATUS and watchdog pings.
//!
//! Shutdown follows mini-redis: the caller passes a future (tests pass a
//! oneshot), one `watch` channel tells every background task to stop, and
//! [`run`] returns only after each of them has ended. This module is that
//! boot and shutdown wiring; it decides nothing itself.
//!
//! **Architecture Invariant:** a failed or panicking check never stops the
//! scheduler; the scheduler is the only writer of the `daemon` records.

pub mod control;
pub mod health;
pub mod metrics;
mod notify;
pub mod plan;
mod scheduler;
pub mod status;
mod stream;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::check::{CheckError, Checker};
use crate::config::{Config, ConfigErrors, LoadOptions};
use crate::store::{Store, StoreError};

use crate::check::robots_for;
use metrics::Metrics;
use scheduler::{Scheduler, Signals, politeness};

/// `/healthz` reports the scheduler stalled past this.
pub(crate) const HEARTBEAT_STALE: Duration = Duration::from_secs(60);

/// Why the daemon could not start (or had to stop).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The configuration is invalid (at start; a reload keeps the old one).
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    /// The store cannot be opened, e.g. another process holds it.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The checker cannot be built (HTTP client, reference data).
    #[error(transparent)]
    Check(#[from] CheckError),
    /// The status endpoint cannot listen.
    #[error(
        "cannot listen on {addr} for the status endpoint; change [status] listen or stop what uses that port"
    )]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A signal handler cannot be installed.
    #[error("cannot install the {signal} handler")]
    Signal {
        /// Which signal.
        signal: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Where the configuration is (the global flags); read again on SIGHUP.
    pub load: LoadOptions,
    /// Check every source right after start instead of waiting for its
    /// schedule (`run --check-now`).
    pub check_now: bool,
}

/// State shared with the status endpoint and the control socket.
pub(crate) struct Shared {
    /// The running configuration; replaced by a successful reload.
    config: RwLock<Arc<Config>>,
    /// The store the daemon holds.
    pub(crate) store: Store,
    /// Counters.
    pub(crate) metrics: Arc<Metrics>,
    /// When the daemon started.
    pub(crate) started: DateTime<Utc>,
    /// Monotonic base of `heartbeat_ms`.
    base: Instant,
    /// Milliseconds after `base` of the scheduler's last turn.
    heartbeat_ms: AtomicU64,
    /// The store's counts as last read, and when (`status::store_stats`):
    /// reading them walks the evidence trees, so `/metrics` and the page
    /// reuse them for a while.
    pub(crate) store_stats: std::sync::Mutex<Option<(Instant, crate::store::StoreStats)>>,
}

impl Shared {
    pub(crate) fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_config(&self, c: Arc<Config>) {
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = c;
    }

    fn beat(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.heartbeat_ms.store(ms, Ordering::Relaxed);
    }

    pub(crate) fn heartbeat_age(&self) -> Duration {
        let last = Duration::from_millis(self.heartbeat_ms.load(Ordering::Relaxed));
        self.base.elapsed().saturating_sub(last)
    }
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// Runs the daemon until SIGTERM, SIGINT or `shutdown` completes; returns
/// after the checks in flight finished (or the grace period ran out) and
/// every background task ended.
pub async fn run(opts: RunOptions, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
    let config = Arc::new(Config::load(&opts.load)?);
    let store = Store::open_with(
        &config.settings.state_dir,
        config.settings.store_write_timeout,
    )?;
    let metrics = Arc::new(Metrics::default());
    let polite = Arc::new(politeness(&config, &metrics));
    let robots = robots_for(&config, &polite);
    let checker = Checker::new(config.clone(), store.clone())?
        .with_politeness(polite.clone(), robots.clone());

    let sig = |kind: SignalKind, name: &'static str| {
        signal(kind).map_err(|source| DaemonError::Signal {
            signal: name,
            source,
        })
    };
    let term = sig(SignalKind::terminate(), "SIGTERM")?;
    let int = sig(SignalKind::interrupt(), "SIGINT")?;
    let hup = sig(SignalKind::hangup(), "SIGHUP")?;

    let shared = Arc::new(Shared {
        config: RwLock::new(config.clone()),
        store: store.clone(),
        metrics: metrics.clone(),
        started: Utc::now(),
        base: Instant::now(),
        heartbeat_ms: AtomicU64::new(0),
        store_stats: std::sync::Mutex::new(None),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut background = JoinSet::new();

    // The status endpoint.
    let status_addr = config.settings.status_listen;
    if let Some(addr) = status_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| DaemonError::Listen { addr, source })?;
        let local = listener.local_addr().unwrap_or(addr);
        tracing::info!(addr = %local, "Status endpoint listening.");
        let app = status::router(shared.clone());
        let rx = stop_rx.clone();
        background.spawn(async move {
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stopped(rx))
                .await
            {
                tracing::error!(error = %crate::text::chain(&e), "Status endpoint stopped.");
            }
        });
    }

    // The control socket.
    let mut socket: Option<PathBuf> = None;
    match control::bind(&config.settings.state_dir) {
        Ok((listener, path)) => {
            tracing::info!(path = %path.display(), "Control socket listening.");
            socket = Some(path);
            background.spawn(control::serve(
                listener,
                shared.clone(),
                stopped(stop_rx.clone()),
            ));
        }
        Err(e) => tracing::error!(
            error = %crate::text::chain(&e),
            "Cannot create the control socket in the state folder; history, diff, findings, explain and outbox will not work while the daemon runs."
        ),
    }

    // The delivery loop.
    let kick_delivery = Arc::new(Notify::new());
    {
        let (shared, kick, rx) = (shared.clone(), kick_delivery.clone(), stop_rx.clone());
        background.spawn(async move {
            crate::alert::delivery_loop_with(
                &shared.store,
                || shared.config(),
                &kick,
                |r| shared.metrics.delivered(r),
                stopped(rx),
            )
            .await;
        });
    }

    // The store watch: operator notices and retries when the store fails.
    background.spawn(health::watch_store(
        shared.clone(),
        kick_delivery.clone(),
        stop_rx.clone(),
    ));

    // The retention pass: `[store] keep_snapshots` / `keep_for`, then the
    // bodies no snapshot references; every `[store] gc_interval`, the first
    // one interval after start. Read from the running configuration each
    // time, so a reload changes it.
    {
        let (s, mut rx) = (shared.clone(), stop_rx.clone());
        background.spawn(async move {
            loop {
                let every = s.config().settings.gc_interval;
                tokio::select! {
                    _ = rx.wait_for(|v| *v) => break,
                    _ = tokio::time::sleep(every) => {}
                }
                let policy = s.config().settings.retention.clone();
                if !policy.is_limited() {
                    continue;
                }
                let r = crate::store::run_blocking(&s.store, move |st| st.gc(&policy, Utc::now())).await;
                match r {
                    Ok(r) => tracing::info!(
                        snapshots_removed = r.snapshots_removed,
                        kept_for_findings = r.kept_for_findings,
                        blobs_removed = r.blobs_removed,
                        bytes_removed = r.bytes_removed,
                        "Retention pass done."
                    ),
                    Err(e) => tracing::warn!(error = %crate::text::chain(&e), "Retention pass failed; it runs again at the next interval."),
                }
            }
        });
    }

    // The watchdog.
    if let Some(interval) = notify::watchdog_interval() {
        let s = shared.clone();
        let mut rx = stop_rx.clone();
        background.spawn(async move {
            let every = (interval / 2).max(Duration::from_millis(100));
            loop {
                tokio::select! {
                    _ = rx.wait_for(|v| *v) => break,
                    _ = tokio::time::sleep(every) => {
                        if s.heartbeat_age() < interval {
                            notify::watchdog();
                        }
                    }
                }
            }
        });
    }

    // The Companies House streams, when turned on.
    let (wake_tx, wake_rx) = tokio::sync::mpsc::unbounded_channel();
    stream::spawn(&shared, &wake_tx, &stop_rx, &mut background);

    let mut signals = Signals { term, int, hup };
    let mut sched = Scheduler::new(opts, shared.clone(), checker, polite, robots, kick_delivery)
        .with_wakes(wake_rx);
    let reason = sched.run(&mut signals, shutdown).await;
    let grace = shared.config().settings.daemon.grace_period;
    let deadline = sched.drain(reason, grace, &mut signals).await;
    let _ = stop_tx.send(true);
    // A delivery in progress finishes (it is bounded by the SMTP timeout).
    let bg_deadline = deadline.max(Instant::now() + Duration::from_secs(5));
    loop {
        match tokio::time::timeout_at(bg_deadline, background.join_next()).await {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => {
                tracing::warn!("Background tasks did not stop in time; ending them.");
                background.abort_all();
                while background.join_next().await.is_some() {}
                break;
            }
        }
    }
    if let Some(p) = socket {
        let _ = std::fs::remove_file(p);
    }
    let s = store.clone();
    if let Err(e) = crate::store::blocking(move || s.flush()).await {
        tracing::error!(error = %crate::text::chain(&e), "Final store flush failed.");
    }
    tracing::info!("Stopped.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::DaemonError;

    #[test]
    fn start_errors_name_their_os_cause_once() {
        let cause = || std::io::Error::new(std::io::ErrorKind::AddrInUse, "address in use");
        for e in [
            DaemonError::Listen {
                addr: "127.0.0.1:9".parse().expect("addr"),
                source: cause(),
            },
            DaemonError::Signal {
                signal: "SIGHUP",
                source: cause(),
            },
        ] {
            let chain = crate::text::chain(&e);
            assert_eq!(chain.matches("address in use").count(), 1, "{chain}");
        }
    }
}
