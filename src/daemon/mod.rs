//! `pivotwatch run`: the daemon. One process holds the store and runs
//!
//! * the **scheduler** (this module): every source is due by its cron
//!   schedule in its watchlist's timezone ([`plan`]); due sources are
//!   checked by a bounded pool of tasks (`[http] concurrency`, and no more
//!   than the host's `per_host_concurrency` per host), and the next due
//!   time of each source is stored, so it survives restarts;
//! * **politeness** for every request ([`crate::fetch::polite`],
//!   [`crate::fetch::robots`]): per-host concurrency and spacing,
//!   `Retry-After`, robots.txt and its `Crawl-delay`;
//! * **source health** ([`health`]): notices to the maintainers when a
//!   source breaks and when it recovers;
//! * the **delivery loop**: [`crate::alert::deliver_due`] whenever
//!   something is due, and right after a check found something;
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
//! [`run`] returns only after each of them has ended.
//!
//! **Architecture Invariant:** a failed or panicking check never stops the
//! scheduler; the scheduler is the only writer of the `daemon` records.

pub mod control;
pub mod health;
pub mod metrics;
mod notify;
pub mod plan;
pub mod status;

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, watch};
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;

use crate::check::{CheckError, CheckReport, Checker};
use crate::config::{Config, ConfigErrors, LoadOptions};
use crate::fetch::polite::{HostLimits, host_key};
use crate::fetch::{Politeness, Robots};
use crate::store::{DaemonSource, SourceState, Store, StoreError};

use metrics::Metrics;
use plan::{Remembered, When};

/// The scheduler wakes at least this often (to notice clock jumps, expired
/// `Retry-After` pauses and to prove it is alive).
const TICK: Duration = Duration::from_secs(1);
/// `/healthz` reports the scheduler stalled past this.
pub(crate) const HEARTBEAT_STALE: Duration = Duration::from_secs(60);
/// How often `STATUS=` is sent to systemd at most.
const STATUS_EVERY: Duration = Duration::from_secs(10);
/// Longest pause of the delivery loop.
const DELIVERY_MAX_SLEEP: Duration = Duration::from_secs(30);

/// Why the daemon could not start (or had to stop).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The configuration is invalid (at start; a reload keeps the old one).
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    /// The store cannot be opened, e.g. another process holds it.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The checker cannot be built (HTTP client, reference data).
    #[error(transparent)]
    Check(#[from] CheckError),
    /// The status endpoint cannot listen.
    #[error(
        "cannot listen on {addr} for the status endpoint ({source}); change [status] listen or stop what uses that port"
    )]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A signal handler cannot be installed.
    #[error("cannot install the {signal} handler: {source}")]
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

/// One configured source in the scheduler.
#[derive(Debug, Clone)]
struct Entry {
    /// Indices of the watchlist, entity and source in the checker's
    /// configuration.
    at: (usize, usize, usize),
    host: String,
    /// What is stored for it (due time, notices).
    record: DaemonSource,
    due: DateTime<Utc>,
    running: bool,
}

/// What a check task hands back.
struct Done {
    report: CheckReport,
    took: Duration,
    state: Option<SourceState>,
    health: Option<health::Sent>,
}

struct Scheduler {
    opts: RunOptions,
    shared: Arc<Shared>,
    store: Store,
    checker: Checker,
    polite: Arc<Politeness>,
    robots: Option<Arc<Robots>>,
    entries: HashMap<String, Entry>,
    /// Sources waiting, by due time (running ones are not in it).
    queue: BTreeSet<(DateTime<Utc>, String)>,
    /// Checks in flight per host.
    per_host: HashMap<String, usize>,
    /// Task id → source key and host, to attribute a panicked task and
    /// free its host slot even when its source left the watchlists.
    task_keys: HashMap<tokio::task::Id, (String, String)>,
    tasks: JoinSet<Done>,
    kick_delivery: Arc<Notify>,
    last_status: Option<Instant>,
}

fn politeness(config: &Config, metrics: &Arc<Metrics>) -> Politeness {
    let m = metrics.clone();
    let (c, i, o) = limits(config);
    Politeness::new(c, i, o).with_observer(Arc::new(move |obs| {
        m.fetch_latency.observe(obs.elapsed);
    }))
}

fn limits(config: &Config) -> (usize, Duration, Vec<(String, HostLimits)>) {
    let h = &config.settings.http;
    let overrides = config
        .settings
        .hosts
        .iter()
        .map(|(name, s)| {
            (
                name.clone(),
                HostLimits {
                    concurrency: s.concurrency,
                    interval: s.interval,
                },
            )
        })
        .collect();
    (h.per_host_concurrency, h.per_host_interval, overrides)
}

fn robots_for(config: &Config, polite: &Arc<Politeness>) -> Option<Arc<Robots>> {
    config.settings.http.robots_txt.then(|| {
        Arc::new(Robots::new(
            &config.settings.http.user_agent,
            Some(polite.clone()),
        ))
    })
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
    let mut term = sig(SignalKind::terminate(), "SIGTERM")?;
    let mut int = sig(SignalKind::interrupt(), "SIGINT")?;
    let mut hup = sig(SignalKind::hangup(), "SIGHUP")?;

    let shared = Arc::new(Shared {
        config: RwLock::new(config.clone()),
        store: store.clone(),
        metrics: metrics.clone(),
        started: Utc::now(),
        base: Instant::now(),
        heartbeat_ms: AtomicU64::new(0),
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
                tracing::error!(error = %e, "Status endpoint stopped.");
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
            error = %e,
            "Cannot create the control socket in the state folder; history, diff, findings, explain and outbox will not work while the daemon runs."
        ),
    }

    // The delivery loop.
    let kick_delivery = Arc::new(Notify::new());
    background.spawn(delivery_loop(
        shared.clone(),
        kick_delivery.clone(),
        stop_rx.clone(),
    ));

    // The store watch: operator notices and retries when the store fails.
    background.spawn(health::watch_store(
        shared.clone(),
        kick_delivery.clone(),
        stop_rx.clone(),
    ));

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

    let mut sched = Scheduler {
        opts,
        shared: shared.clone(),
        store: store.clone(),
        checker,
        polite,
        robots,
        entries: HashMap::new(),
        queue: BTreeSet::new(),
        per_host: HashMap::new(),
        task_keys: HashMap::new(),
        tasks: JoinSet::new(),
        kick_delivery,
        last_status: None,
    };
    sched.rebuild(true);
    shared.beat();
    let summary = sched.summary();
    tracing::info!(
        sources = sched.entries.len(),
        check_now = sched.opts.check_now,
        "Daemon started."
    );
    notify::ready(&summary);

    let mut shutdown = std::pin::pin!(shutdown);
    let reason = loop {
        shared.beat();
        sched.dispatch();
        sched.report_status();
        let wait = sched.wait();
        tokio::select! {
            _ = &mut shutdown => break "shutdown requested",
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
            _ = hup.recv() => sched.reload(),
            Some(joined) = sched.tasks.join_next_with_id() => sched.finished(joined),
            _ = tokio::time::sleep(wait) => {}
        }
    };

    // Shutdown: no new checks; those in flight may finish.
    let grace = sched.shared.config().settings.daemon.grace_period;
    let deadline = Instant::now() + grace;
    let in_flight = sched.tasks.len();
    notify::stopping(&format!("stopping: {in_flight} check(s) in flight"));
    tracing::info!(
        reason,
        in_flight,
        grace_s = grace.as_secs(),
        "Stopping: no new checks; waiting for the checks in flight."
    );
    while !sched.tasks.is_empty() {
        let abandon = tokio::select! {
            joined = tokio::time::timeout_at(deadline, sched.tasks.join_next_with_id()) => match joined {
                Ok(Some(joined)) => {
                    sched.finished(joined);
                    None
                }
                Ok(None) => break,
                Err(_) => Some("Grace period over"),
            },
            _ = term.recv() => Some("Second SIGTERM"),
            _ = int.recv() => Some("Second SIGINT"),
        };
        if let Some(why) = abandon {
            tracing::warn!(
                abandoned = sched.tasks.len(),
                "{why}: abandoning the checks still in flight; they run again at the next start."
            );
            sched.tasks.abort_all();
            while sched.tasks.join_next().await.is_some() {}
            break;
        }
    }
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
    let flush = {
        let s = store.clone();
        tokio::task::spawn_blocking(move || s.flush()).await
    };
    match flush {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "Final store flush failed."),
        Err(e) => tracing::error!(error = %e, "Final store flush failed."),
    }
    tracing::info!("Stopped.");
    Ok(())
}

/// Delivers whatever is due, again when something becomes due, when a
/// check found something, or every [`DELIVERY_MAX_SLEEP`], until stopped.
/// The running configuration is read at every turn, so a reload changes
/// subscribers and SMTP settings without restarting the loop.
async fn delivery_loop(shared: Arc<Shared>, kick: Arc<Notify>, mut stop: watch::Receiver<bool>) {
    loop {
        let config = shared.config();
        let wait = match crate::alert::deliver_due(&shared.store, &config, Utc::now()).await {
            Ok(r) => {
                shared.metrics.delivered(&r);
                if !r.mails.is_empty() {
                    tracing::info!(mails = r.mails.len(), sent = r.sent(), "Delivery run done.");
                }
                r.next_due
                    .and_then(|t| (t - Utc::now()).to_std().ok())
                    .unwrap_or(DELIVERY_MAX_SLEEP)
                    .clamp(Duration::from_secs(1), DELIVERY_MAX_SLEEP)
            }
            Err(e) => {
                tracing::error!(error = %e, "Alert delivery failed; alerts stay queued.");
                DELIVERY_MAX_SLEEP
            }
        };
        tokio::select! {
            _ = stop.wait_for(|v| *v) => break,
            _ = kick.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

impl Scheduler {
    fn jitter(&self) -> Duration {
        plan::random_jitter(self.checker.config().settings.daemon.jitter)
    }

    /// (Re)builds the table of sources from the checker's configuration:
    /// at start (`start`), due times come from the store; after a reload,
    /// known sources keep theirs unless their schedule changed.
    fn rebuild(&mut self, start: bool) {
        let config = self.checker.config().clone();
        let now = Utc::now();
        let stored: HashMap<String, DaemonSource> = match self.store.daemon_sources() {
            Ok(v) => v.into_iter().collect(),
            Err(e) => {
                tracing::error!(error = %e, "Cannot read the stored schedule; sources are scheduled afresh.");
                HashMap::new()
            }
        };
        let mut entries = HashMap::new();
        for (wi, w) in config.watchlists.iter().enumerate() {
            for (ei, e) in w.entities.iter().enumerate() {
                for (si, s) in e.sources.iter().enumerate() {
                    let key = s.key();
                    let when = When {
                        schedule: &s.schedule,
                        tz: w.timezone,
                    };
                    let old = if start {
                        None
                    } else {
                        self.entries.remove(&key)
                    };
                    let entry = match old {
                        Some(mut old) => {
                            if !old.running && old.record.schedule != when.signature() {
                                old.due = when.next_due(now, self.jitter());
                                old.record.next_due = Some(old.due);
                                old.record.schedule = when.signature();
                                old.record.retry = false;
                                self.persist(&key, &old.record);
                            }
                            old.at = (wi, ei, si);
                            old.host = host_key(&s.url);
                            old
                        }
                        None => {
                            let record = stored.get(&key).cloned().unwrap_or_default();
                            let checked = self
                                .store
                                .source_state(&key)
                                .ok()
                                .flatten()
                                .is_some_and(|st| st.last_check.is_some());
                            let remembered = Remembered {
                                due: record.next_due.map(|d| (d, record.schedule.as_str())),
                                checked,
                            };
                            let due = plan::due_at_start(
                                &when,
                                remembered,
                                now,
                                self.jitter(),
                                start && self.opts.check_now,
                            );
                            let mut record = record;
                            if record.next_due != Some(due) {
                                record.next_due = Some(due);
                                record.schedule = when.signature();
                                self.persist(&key, &record);
                            }
                            Entry {
                                at: (wi, ei, si),
                                host: host_key(&s.url),
                                record,
                                due,
                                running: false,
                            }
                        }
                    };
                    entries.insert(key, entry);
                }
            }
        }
        // Sources that left the watchlists.
        for key in stored.keys() {
            if !entries.contains_key(key)
                && let Err(e) = self.store.remove_daemon_source(key)
            {
                tracing::warn!(error = %e, "Cannot forget a removed source's schedule.");
            }
        }
        self.entries = entries;
        self.queue = self
            .entries
            .iter()
            .filter(|(_, e)| !e.running)
            .map(|(k, e)| (e.due, k.clone()))
            .collect();
    }

    fn persist(&self, key: &str, record: &DaemonSource) {
        if let Err(e) = self.store.put_daemon_source(key, record) {
            tracing::error!(error = %e, "Cannot store a source's next due time.");
        }
    }

    /// Starts every due source the limits allow.
    fn dispatch(&mut self) {
        let now = Utc::now();
        let config = self.checker.config().clone();
        let concurrency = config.settings.http.concurrency.max(1);
        let mut start = Vec::new();
        let mut running = self.tasks.len();
        let mut extra: HashMap<&str, usize> = HashMap::new();
        for (due, key) in &self.queue {
            if *due > now || running >= concurrency {
                break;
            }
            let Some(e) = self.entries.get(key) else {
                continue;
            };
            let busy = self.per_host.get(&e.host).copied().unwrap_or(0)
                + extra.get(e.host.as_str()).copied().unwrap_or(0);
            if busy >= self.polite.limits(&e.host).0 || self.polite.held_for(&e.host).is_some() {
                continue;
            }
            *extra.entry(e.host.as_str()).or_default() += 1;
            running += 1;
            start.push((*due, key.clone()));
        }
        for (due, key) in start {
            self.queue.remove(&(due, key.clone()));
            self.spawn(&config, key);
        }
    }

    fn spawn(&mut self, config: &Arc<Config>, key: String) {
        let Some(e) = self.entries.get_mut(&key) else {
            return;
        };
        e.running = true;
        *self.per_host.entry(e.host.clone()).or_default() += 1;
        self.shared.metrics.in_flight(true);
        let (wi, ei, si) = e.at;
        let broken_notice = e.record.broken_notice;
        let checker = self.checker.clone();
        let config = config.clone();
        let store = self.store.clone();
        let installation = self.store.installation_id().to_string();
        let threshold = config.settings.daemon.failure_threshold;
        let k = key.clone();
        let host = e.host.clone();
        let handle = self.tasks.spawn(async move {
            let started = Instant::now();
            let found = config
                .watchlists
                .get(wi)
                .and_then(|w| w.entities.get(ei))
                .and_then(|e| e.sources.get(si).map(|s| (e, s)));
            let Some((entity, source)) = found else {
                return Done {
                    report: missing(&k),
                    took: started.elapsed(),
                    state: None,
                    health: None,
                };
            };
            let report = checker.check(entity, source).await;
            let took = started.elapsed();
            let state = {
                let k = k.clone();
                let store = store.clone();
                tokio::task::spawn_blocking(move || store.source_state(&k))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .flatten()
            };
            let failures = state.as_ref().map_or(0, |s| s.consecutive_failures);
            // While the store cannot write, checks fail for that reason:
            // the store notice covers it, not one notice per source.
            let store_down = store.failure().is_some();
            let due = health::due_notice(&report, failures, broken_notice, threshold)
                .filter(|_| !store_down);
            let health = match due {
                Some(n) => Some(
                    health::send(
                        &config,
                        &installation,
                        entity,
                        source,
                        &report,
                        &state.clone().unwrap_or_default(),
                        n,
                        broken_notice,
                    )
                    .await,
                ),
                None => None,
            };
            Done {
                report,
                took,
                state,
                health,
            }
        });
        self.task_keys.insert(handle.id(), (key, host));
    }

    /// Records a finished check and schedules its source again.
    fn finished(&mut self, joined: Result<(tokio::task::Id, Done), JoinError>) {
        let (id, done) = match joined {
            Ok((id, done)) => (id, Some(done)),
            Err(e) => (e.id(), None),
        };
        let Some((key, host)) = self.task_keys.remove(&id) else {
            return;
        };
        if done.is_none() {
            tracing::error!(source = %key, "A check panicked or was cancelled; the source is scheduled again.");
        }
        if let Some(n) = self.per_host.get_mut(&host) {
            *n = n.saturating_sub(1);
        }
        self.shared.metrics.in_flight(false);
        let report = match &done {
            Some(d) => {
                self.shared.metrics.check_done(&d.report, d.took);
                d.report.clone()
            }
            None => missing(&key),
        };
        if !report.findings.is_empty() {
            self.kick_delivery.notify_one();
        }
        let config = self.checker.config().clone();
        let jitter = self.jitter();
        let Some(e) = self.entries.get_mut(&key) else {
            return; // the source left the watchlists during its check
        };
        e.running = false;
        let (wi, ei, si) = e.at;
        let Some((w, s)) = config
            .watchlists
            .get(wi)
            .and_then(|w| Some((w, w.entities.get(ei)?.sources.get(si)?)))
        else {
            return;
        };
        let when = When {
            schedule: &s.schedule,
            tz: w.timezone,
        };
        let failures = done
            .as_ref()
            .and_then(|d| d.state.as_ref())
            .map_or(1, |st| st.consecutive_failures);
        let (due, retry) = plan::due_after_check(&when, &report, failures, Utc::now(), jitter);
        e.due = due;
        e.record.next_due = Some(due);
        e.record.schedule = when.signature();
        e.record.retry = retry;
        if let Some(h) = done.and_then(|d| d.health) {
            e.record.broken_notice = h.broken_notice;
            e.record.notice_error = h.error;
            self.shared.metrics.notice(h.counted);
        }
        let record = e.record.clone();
        if retry {
            tracing::info!(source = %key, next = %due.to_rfc3339(), "Transient failure; retrying early.");
        }
        self.queue.insert((due, key.clone()));
        self.persist(&key, &record);
    }

    /// How long the loop may sleep.
    fn wait(&self) -> Duration {
        match self.queue.first() {
            Some((due, _)) => (*due - Utc::now()).to_std().unwrap_or(TICK).min(TICK),
            None => TICK,
        }
        .max(Duration::from_millis(5))
    }

    fn summary(&self) -> String {
        let next = self
            .queue
            .first()
            .map(|(d, _)| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_else(|| "-".into());
        let store = match self.store.failure() {
            Some(_) => "; the store cannot write (see the log), retrying",
            None => "",
        };
        format!(
            "watching {} source(s); {} check(s) in flight; next check {next}{store}",
            self.entries.len(),
            self.tasks.len()
        )
    }

    fn report_status(&mut self) {
        if self.last_status.is_some_and(|t| t.elapsed() < STATUS_EVERY) {
            return;
        }
        self.last_status = Some(Instant::now());
        notify::status(&self.summary());
    }

    /// SIGHUP: reads settings and watchlists again; on any error keeps the
    /// running configuration and logs every error with its location.
    fn reload(&mut self) {
        notify::reloading();
        tracing::info!("Reloading the configuration (SIGHUP).");
        let result = Config::load(&self.opts.load)
            .map_err(|e| e.0.iter().map(ToString::to_string).collect::<Vec<_>>())
            .and_then(|c| {
                let c = Arc::new(c);
                Checker::new(c.clone(), self.store.clone())
                    .map(|ch| (c, ch))
                    .map_err(|e| vec![e.to_string()])
            });
        match result {
            Err(errors) => {
                for e in &errors {
                    tracing::error!("Reload refused: {e}");
                }
                tracing::error!(
                    errors = errors.len(),
                    "The new configuration has errors; still running on the previous one. Fix them (`pivotwatch check`) and send SIGHUP again."
                );
                self.shared.metrics.reload("error");
            }
            Ok((config, checker)) => {
                let old = self.checker.config().clone();
                if config.settings.state_dir != old.settings.state_dir {
                    tracing::warn!("A new state folder takes effect only after a restart.");
                }
                if config.settings.status_listen != old.settings.status_listen {
                    tracing::warn!(
                        "A new [status] listen address takes effect only after a restart."
                    );
                }
                let (c, i, o) = limits(&config);
                self.polite.reconfigure(c, i, o);
                if config.settings.http.user_agent != old.settings.http.user_agent
                    || config.settings.http.robots_txt != old.settings.http.robots_txt
                {
                    self.robots = robots_for(&config, &self.polite);
                }
                self.checker = checker.with_politeness(self.polite.clone(), self.robots.clone());
                self.rebuild(false);
                self.shared.set_config(config);
                self.kick_delivery.notify_one();
                self.shared.metrics.reload("ok");
                tracing::info!(sources = self.entries.len(), "Configuration reloaded.");
            }
        }
        notify::ready(&self.summary());
    }
}

/// The report of a check that could not run at all.
fn missing(key: &str) -> CheckReport {
    let (entity, source) = key.split_once('/').unwrap_or((key, ""));
    // Transient: the daemon retries it at the next due time.
    CheckReport {
        transient: true,
        ..CheckReport::aborted(entity, source)
    }
}
