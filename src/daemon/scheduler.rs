//! The scheduler: a table of sources, a queue by due time, a `JoinSet` of
//! check tasks bounded by `[http] concurrency` and by each host's
//! `per_host_concurrency`; SIGHUP reload (a new `Checker`, the table
//! rebuilt, due times kept unless a schedule changed); the next due time of
//! each source stored in the store's `daemon` records, so it survives
//! restarts. Due-time rules are pure functions in [`super::plan`].
//!
//! **Architecture Invariant:** a failed or panicking check never stops the
//! scheduler; the scheduler is the only writer of the `daemon` records.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::signal::unix::Signal;
use tokio::sync::Notify;
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;

use crate::check::{CheckReport, Checker, host_limits as limits, robots_for};
use crate::config::Config;
use crate::fetch::polite::host_key;
use crate::fetch::{Politeness, Robots};
use crate::store::{DaemonSource, SourceState, Store};

use super::metrics::Metrics;
use super::plan::{self, Remembered, When};
use super::{RunOptions, Shared, health, notify};

/// The scheduler wakes at least this often (to notice clock jumps, expired
/// `Retry-After` pauses and to prove it is alive).
const TICK: Duration = Duration::from_secs(1);
/// How often `STATUS=` is sent to systemd at most.
const STATUS_EVERY: Duration = Duration::from_secs(10);

/// The signals the scheduler's loop listens to.
pub(super) struct Signals {
    pub(super) term: Signal,
    pub(super) int: Signal,
    pub(super) hup: Signal,
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

/// A request to check sources now, out of schedule (the Companies House
/// streams send them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Wake {
    /// These sources (`entity/source`).
    Sources(Vec<String>),
    /// Every source of this adapter (`companies-house`): the stream lost
    /// its place (416), so anything may have changed.
    Adapter(&'static str),
}

async fn next_wake(rx: &mut Option<tokio::sync::mpsc::UnboundedReceiver<Wake>>) -> Option<Wake> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// What a check task hands back.
struct Done {
    report: CheckReport,
    took: Duration,
    state: Option<SourceState>,
    health: Option<health::Sent>,
}

pub(super) struct Scheduler {
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
    /// Out-of-schedule check requests (the streams'); `None` without streams.
    wakes: Option<tokio::sync::mpsc::UnboundedReceiver<Wake>>,
    /// Sources woken while their check ran: checked again when it ends.
    woken: BTreeSet<String>,
    tasks: JoinSet<Done>,
    kick_delivery: Arc<Notify>,
    last_status: Option<Instant>,
}

pub(super) fn politeness(config: &Config, metrics: &Arc<Metrics>) -> Politeness {
    let m = metrics.clone();
    let (c, i, o) = limits(config);
    Politeness::new(c, i, o).with_observer(Arc::new(move |obs| {
        m.fetch_done(obs.elapsed);
    }))
}

impl Scheduler {
    /// A scheduler over the checker's configuration; the table is built
    /// from the store at once.
    pub(super) fn new(
        opts: RunOptions,
        shared: Arc<Shared>,
        checker: Checker,
        polite: Arc<Politeness>,
        robots: Option<Arc<Robots>>,
        kick_delivery: Arc<Notify>,
    ) -> Self {
        let store = shared.store.clone();
        let mut sched = Scheduler {
            opts,
            shared,
            store,
            checker,
            polite,
            robots,
            entries: HashMap::new(),
            queue: BTreeSet::new(),
            per_host: HashMap::new(),
            task_keys: HashMap::new(),
            wakes: None,
            woken: BTreeSet::new(),
            tasks: JoinSet::new(),
            kick_delivery,
            last_status: None,
        };
        sched.rebuild(true);
        sched.shared.beat();
        let summary = sched.summary();
        tracing::info!(
            sources = sched.entries.len(),
            check_now = sched.opts.check_now,
            "Daemon started."
        );
        notify::ready(&summary);
        sched
    }

    /// Out-of-schedule check requests arrive on `rx` (the streams').
    pub(super) fn with_wakes(mut self, rx: tokio::sync::mpsc::UnboundedReceiver<Wake>) -> Self {
        self.wakes = Some(rx);
        self
    }

    /// Makes the woken sources due now (a running one once its check ends).
    fn wake(&mut self, w: Wake) {
        let keys: Vec<String> = match w {
            Wake::Sources(k) => k,
            Wake::Adapter(name) => self
                .checker
                .config()
                .sources()
                .filter(|(_, s)| s.adapter.as_ref().is_some_and(|a| a.name() == name))
                .map(|(_, s)| s.key())
                .collect(),
        };
        let now = Utc::now();
        for key in keys {
            let Some(e) = self.entries.get_mut(&key) else {
                continue;
            };
            if e.running {
                self.woken.insert(key);
                continue;
            }
            if e.due > now {
                self.queue.remove(&(e.due, key.clone()));
                e.due = now;
                self.queue.insert((now, key.clone()));
            }
            tracing::info!(source = %key, "Checking now: the registry stream reported a change.");
        }
    }

    /// Dispatches due sources until `shutdown` completes or SIGTERM/SIGINT
    /// arrives (SIGHUP reloads); returns why it stopped.
    pub(super) async fn run(
        &mut self,
        signals: &mut Signals,
        shutdown: impl Future<Output = ()>,
    ) -> &'static str {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            self.shared.beat();
            self.dispatch();
            self.report_status();
            let wait = self.wait();
            tokio::select! {
                _ = &mut shutdown => break "shutdown requested",
                _ = signals.term.recv() => break "SIGTERM",
                _ = signals.int.recv() => break "SIGINT",
                _ = signals.hup.recv() => self.reload(),
                Some(joined) = self.tasks.join_next_with_id() => self.finished(joined),
                Some(w) = next_wake(&mut self.wakes) => self.wake(w),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Shutdown: no new checks; those in flight may finish until
    /// `grace` has passed or a second SIGTERM/SIGINT, then are abandoned.
    /// Returns the end of the grace period.
    pub(super) async fn drain(
        &mut self,
        reason: &str,
        grace: Duration,
        signals: &mut Signals,
    ) -> Instant {
        let deadline = Instant::now() + grace;
        let in_flight = self.tasks.len();
        notify::stopping(&format!("stopping: {in_flight} check(s) in flight"));
        tracing::info!(
            reason,
            in_flight,
            grace_s = grace.as_secs(),
            "Stopping: no new checks; waiting for the checks in flight."
        );
        while !self.tasks.is_empty() {
            let abandon = tokio::select! {
                joined = tokio::time::timeout_at(deadline, self.tasks.join_next_with_id()) => match joined {
                    Ok(Some(joined)) => {
                        self.finished(joined);
                        None
                    }
                    Ok(None) => break,
                    Err(_) => Some("Grace period over"),
                },
                _ = signals.term.recv() => Some("Second SIGTERM"),
                _ = signals.int.recv() => Some("Second SIGINT"),
            };
            if let Some(why) = abandon {
                tracing::warn!(
                    abandoned = self.tasks.len(),
                    "{why}: abandoning the checks still in flight; they run again at the next start."
                );
                self.tasks.abort_all();
                while self.tasks.join_next().await.is_some() {}
                break;
            }
        }
        deadline
    }
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
                tracing::error!(error = %crate::text::chain(&e), "Cannot read the stored schedule; sources are scheduled afresh.");
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
                tracing::warn!(error = %crate::text::chain(&e), "Cannot forget a removed source's schedule.");
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
            tracing::error!(error = %crate::text::chain(&e), "Cannot store a source's next due time.");
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
                // Only to pick the health notice: a store error here is the
                // store watch's to report, not this source's.
                crate::store::blocking(move || store.source_state(&k))
                    .await
                    .ok()
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
        if self.woken.remove(&key) {
            self.wake(Wake::Sources(vec![key]));
        }
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
                    .map_err(|e| vec![crate::text::chain(&e)])
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
