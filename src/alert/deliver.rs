//! Delivery: the state machine that drains the outbox (immediate mails,
//! digests, retries with the one backoff policy, dead letters, requeue)
//! and the one delivery loop the daemon runs.
//!
//! **Architecture Invariant:** a delivery leaves the outbox only after a
//! `250` (or a file on disk); a failure of one mail is recorded on its
//! delivery, never returned as an error that stops the others.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;

use super::AlertError;
use super::render::{DigestEntry, Rendered, render, render_digest};
use super::route::subscriber;
use super::transport::{SendFailure, Transport};
use crate::config::{Config, DeliveryMode, Subscriber};
use crate::store::{Delivery, DigestState, Store, StoreError};

/// The retry delays of a transient failure: the one retry policy,
/// [`crate::retry`].
pub use crate::retry::{RETRY_FIRST, RETRY_MAX};
/// Most findings in one digest mail; the rest follow in the next one.
pub const DIGEST_MAX_FINDINGS: usize = 500;
/// Subscribers delivered to at once.
const SUBSCRIBER_CONCURRENCY: usize = 4;
/// Longest sleep of [`delivery_loop`] between two runs.
pub const LOOP_MAX_SLEEP: Duration = Duration::from_secs(30);

/// What became of one mail (one finding, or one digest).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Accepted by the server (`250 …`) or written to the spool folder.
    Sent {
        /// The server's reply, or where the file was written.
        reply: String,
        /// The `.eml` file, for the spool transport.
        file: Option<PathBuf>,
    },
    /// A transient failure: tried again at `next_attempt`.
    Retry {
        /// What failed.
        error: String,
        /// When it is tried again.
        next_attempt: DateTime<Utc>,
    },
    /// A permanent failure: kept as a dead letter until `outbox retry`.
    Dead {
        /// What failed.
        error: String,
    },
    /// Not tried: an earlier mail to the same subscriber in this run could
    /// not reach the server.
    Deferred {
        /// That mail's error.
        error: String,
        /// When it is tried.
        next_attempt: DateTime<Utc>,
    },
    /// Not tried: the subscriber is no longer configured.
    Held {
        /// Why.
        reason: String,
    },
}

/// One mail handled by a delivery run.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// Subscriber name.
    pub subscriber: String,
    /// The deliveries it carried (one, or a digest's), as recorded after
    /// the attempt.
    pub deliveries: Vec<Delivery>,
    /// Whether it is a digest.
    pub digest: bool,
    /// The subject (empty when nothing was rendered).
    pub subject: String,
    /// The Message-ID (empty when nothing was rendered).
    pub message_id: String,
    /// What happened.
    pub outcome: Outcome,
    /// An earlier attempt was interrupted (the process died mid-send): the
    /// recipient may get this mail twice, with the same Message-ID.
    pub possible_duplicate: bool,
}

impl Delivered {
    /// The findings it carried.
    pub fn findings(&self) -> Vec<u64> {
        self.deliveries.iter().map(|d| d.finding).collect()
    }
}

/// What one delivery run did.
#[derive(Debug, Clone, Default)]
pub struct DeliveryReport {
    /// Where mail went ("SMTP host:port (starttls)" or "spool folder …").
    pub transport: String,
    /// One entry per mail tried, deferred or held.
    pub mails: Vec<Delivered>,
    /// The earliest time something queued becomes due (a retry, a
    /// digest), if any: when to run again.
    pub next_due: Option<DateTime<Utc>>,
}

impl DeliveryReport {
    /// Mails sent.
    pub fn sent(&self) -> usize {
        self.mails
            .iter()
            .filter(|m| matches!(m.outcome, Outcome::Sent { .. }))
            .count()
    }

    /// Mails that went dead in this run (refused for good, or not
    /// buildable): `once` exits 1 when there is one.
    pub fn dead(&self) -> usize {
        self.mails
            .iter()
            .filter(|m| matches!(m.outcome, Outcome::Dead { .. }))
            .count()
    }
}

fn delivery_lock() -> &'static tokio::sync::Mutex<()> {
    static LOCK: OnceLock<tokio::sync::Mutex<()>> = OnceLock::new();
    LOCK.get_or_init(|| tokio::sync::Mutex::new(()))
}

/// Sends everything due now. See [`deliver_due`].
pub async fn deliver_pending(store: &Store, config: &Config) -> Result<DeliveryReport, AlertError> {
    deliver_due(store, config, Utc::now()).await
}

/// Sends every delivery due at `now`: immediate deliveries whose retry
/// time has come, and each digest whose schedule has had an occurrence
/// since its last digest. Subscribers are served concurrently and
/// independently; one mail's failure never stops another. Runs in one
/// process are serialised, so the daemon may call this from several places.
/// Fails as a whole only when the transport cannot be set up (e.g. the
/// password file is missing) or the store fails; then nothing is touched.
pub async fn deliver_due(
    store: &Store,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<DeliveryReport, AlertError> {
    let _guard = delivery_lock().lock().await;
    let transport = Transport::from_settings(&config.settings)?;
    deliver_with(store, config, &transport, now).await
}

/// The daemon's delivery task with a fixed configuration: see
/// [`delivery_loop_with`].
pub async fn delivery_loop(store: Store, config: Arc<Config>, shutdown: impl Future<Output = ()>) {
    let kick = tokio::sync::Notify::new();
    delivery_loop_with(&store, || config.clone(), &kick, |_| {}, shutdown).await;
}

/// The one delivery loop (the daemon's): runs [`deliver_due`] now, again
/// when something becomes due, when `kick` is notified (a check found
/// something, the configuration was reloaded, the store works again), or
/// every [`LOOP_MAX_SLEEP`], until `shutdown` completes. `config` is read
/// at every turn, so a reload changes subscribers and SMTP settings
/// without restarting the loop; `on_report` sees each run's report. A run
/// that fails (e.g. the store cannot write) leaves every alert queued and
/// is tried again after [`LOOP_MAX_SLEEP`] or the next kick. A run in
/// progress is finished before stopping, so no send is cut short.
pub async fn delivery_loop_with(
    store: &Store,
    config: impl Fn() -> Arc<Config>,
    kick: &tokio::sync::Notify,
    on_report: impl Fn(&DeliveryReport),
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let config = config();
        let wait = match deliver_due(store, &config, Utc::now()).await {
            Ok(r) => {
                on_report(&r);
                if !r.mails.is_empty() {
                    tracing::info!(mails = r.mails.len(), sent = r.sent(), "Delivery run done.");
                }
                r.next_due
                    .and_then(|t| (t - Utc::now()).to_std().ok())
                    .unwrap_or(LOOP_MAX_SLEEP)
                    .clamp(Duration::from_secs(1), LOOP_MAX_SLEEP)
            }
            Err(e) => {
                tracing::error!(error = %crate::text::chain(&e), "Alert delivery failed; alerts stay queued.");
                LOOP_MAX_SLEEP
            }
        };
        tokio::select! {
            _ = &mut shutdown => break,
            _ = kick.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Runs a store call on the blocking pool.
async fn blocking<T: Send + 'static>(
    store: &Store,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, AlertError> {
    // One blocking helper for the whole crate: a panicked task is
    // `StoreError::Task`.
    crate::store::run_blocking(store, f)
        .await
        .map_err(AlertError::from)
}

/// The retry delay after `attempts` attempts: [`crate::retry::jittered`]
/// (1 min, 2, 4 … capped at 1 h, ±20 %).
pub fn backoff(attempts: u32) -> chrono::Duration {
    let jittered = crate::retry::jittered(attempts, fastrand::f64());
    chrono::Duration::from_std(jittered).unwrap_or(chrono::Duration::hours(1))
}

/// The mails of one subscriber's run, and when it next has something due.
type SubscriberRun = (Vec<Delivered>, Option<DateTime<Utc>>);

struct Ctx<'a> {
    store: &'a Store,
    config: &'a Config,
    transport: &'a Transport,
    now: DateTime<Utc>,
}

/// Like [`deliver_due`], with a transport built by the caller.
pub async fn deliver_with(
    store: &Store,
    config: &Config,
    transport: &Transport,
    now: DateTime<Utc>,
) -> Result<DeliveryReport, AlertError> {
    let pending = blocking(store, |s| s.pending_deliveries()).await?;
    let mut groups: BTreeMap<String, Vec<Delivery>> = BTreeMap::new();
    for d in pending {
        groups.entry(d.subscriber.clone()).or_default().push(d);
    }
    let ctx = Ctx {
        store,
        config,
        transport,
        now,
    };
    let results: Vec<Result<SubscriberRun, AlertError>> = futures_util::stream::iter(groups)
        .map(|(name, ds)| deliver_subscriber(&ctx, name, ds))
        .buffer_unordered(SUBSCRIBER_CONCURRENCY)
        .collect()
        .await;
    let mut report = DeliveryReport {
        transport: transport.label().to_string(),
        ..DeliveryReport::default()
    };
    let mut first_err = None;
    for r in results {
        match r {
            Ok((mails, next)) => {
                report.mails.extend(mails);
                report.next_due = match (report.next_due, next) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            Err(e) => {
                tracing::error!(error = %crate::text::chain(&e), "Delivery to a subscriber stopped; its alerts stay queued.");
                first_err.get_or_insert(e);
            }
        }
    }
    report
        .mails
        .sort_by_key(|m| m.deliveries.first().map(|d| d.id).unwrap_or_default());
    match first_err {
        Some(e) if report.mails.is_empty() => Err(e),
        _ => Ok(report),
    }
}

fn held(name: &str, ds: Vec<Delivery>, reason: String) -> Delivered {
    Delivered {
        subscriber: name.to_string(),
        deliveries: ds,
        digest: false,
        subject: String::new(),
        message_id: String::new(),
        outcome: Outcome::Held { reason },
        possible_duplicate: false,
    }
}

async fn deliver_subscriber(
    ctx: &Ctx<'_>,
    name: String,
    mut pending: Vec<Delivery>,
) -> Result<SubscriberRun, AlertError> {
    pending.sort_by_key(|d| d.id);
    let settings = &ctx.config.settings;
    let Some(sub) = subscriber(settings, &name) else {
        let reason = format!(
            "subscriber {name:?} is no longer configured; add it back to pivotwatch.toml (the alerts wait for it)"
        );
        let changed: Vec<Delivery> = pending
            .iter()
            .filter(|d| d.last_error.as_deref() != Some(reason.as_str()))
            .map(|d| Delivery {
                last_error: Some(reason.clone()),
                ..d.clone()
            })
            .collect();
        if !changed.is_empty() {
            blocking(ctx.store, move |s| s.update_deliveries(&changed)).await?;
        }
        tracing::warn!(subscriber = %name, count = pending.len(), "Alerts held: the subscriber is not configured.");
        return Ok((vec![held(&name, pending, reason)], None));
    };
    match (&sub.mode, &sub.digest_schedule) {
        (DeliveryMode::Digest, Some(_)) => deliver_digest(ctx, &sub, pending).await,
        _ => deliver_immediate(ctx, &sub, pending).await,
    }
}

async fn deliver_immediate(
    ctx: &Ctx<'_>,
    sub: &Subscriber,
    pending: Vec<Delivery>,
) -> Result<SubscriberRun, AlertError> {
    let mut out = Vec::new();
    let mut next_due: Option<DateTime<Utc>> = None;
    let mut defer: Option<(String, DateTime<Utc>)> = None;
    let mut deferred = Vec::new();
    for d in pending {
        if let Some(t) = d.next_attempt
            && t > ctx.now
        {
            next_due = Some(next_due.map_or(t, |n| n.min(t)));
            continue;
        }
        if let Some((error, next)) = &defer {
            let mut dd = d.clone();
            dd.next_attempt = Some(*next);
            dd.last_error = Some(format!("deferred: {error}"));
            dd.record(ctx.now, "deferred", error);
            deferred.push(dd.clone());
            out.push(Delivered {
                subscriber: sub.name.clone(),
                deliveries: vec![dd],
                digest: false,
                subject: String::new(),
                message_id: String::new(),
                outcome: Outcome::Deferred {
                    error: error.clone(),
                    next_attempt: *next,
                },
                possible_duplicate: false,
            });
            continue;
        }
        let id = d.finding;
        let Some(finding) = blocking(ctx.store, move |s| s.finding(id)).await? else {
            out.push(kill(ctx, vec![d], format!("finding {id} is not in the store")).await?);
            continue;
        };
        let entity = ctx.config.entity(&finding.entity);
        let installation = ctx.store.installation_id();
        let mail = match render(
            &ctx.config.settings,
            installation,
            entity,
            &finding,
            sub,
            &d,
        ) {
            Ok(m) => m,
            Err(e) => {
                out.push(kill(ctx, vec![d], crate::text::chain(&e)).await?);
                continue;
            }
        };
        let (delivered, unreachable) = attempt(ctx, sub, vec![d], &mail, None).await?;
        if let Outcome::Retry {
            error,
            next_attempt,
        } = &delivered.outcome
        {
            next_due = Some(next_due.map_or(*next_attempt, |n| n.min(*next_attempt)));
            if unreachable {
                defer = Some((error.clone(), *next_attempt));
            }
        }
        out.push(delivered);
    }
    if !deferred.is_empty() {
        blocking(ctx.store, move |s| s.update_deliveries(&deferred)).await?;
    }
    if let Some((_, t)) = defer {
        next_due = Some(next_due.map_or(t, |n| n.min(t)));
    }
    Ok((out, next_due))
}

/// The time the next digest is due for `sub`, given the pending deliveries
/// and the last digest sent.
pub fn next_digest_due(
    sub: &Subscriber,
    last: Option<&DigestState>,
    pending: &[Delivery],
) -> Option<DateTime<Utc>> {
    let schedule = sub.digest_schedule.as_ref()?;
    let baseline = match last {
        Some(s) => s.last_sent,
        None => pending.iter().map(|d| d.created_at).min()?,
    };
    schedule.next_after(&baseline.with_timezone(&sub.timezone))
}

async fn deliver_digest(
    ctx: &Ctx<'_>,
    sub: &Subscriber,
    pending: Vec<Delivery>,
) -> Result<SubscriberRun, AlertError> {
    if pending.is_empty() {
        return Ok((vec![], None));
    }
    // A digest that failed waits for its retry time, whatever arrived since.
    if let Some(t) = pending
        .iter()
        .filter_map(|d| d.next_attempt)
        .filter(|t| *t > ctx.now)
        .max()
    {
        return Ok((vec![], Some(t)));
    }
    let name = sub.name.clone();
    let last = blocking(ctx.store, move |s| s.digest_state(&name)).await?;
    let Some(due) = next_digest_due(sub, last.as_ref(), &pending) else {
        return Ok((vec![], None));
    };
    if due > ctx.now {
        return Ok((vec![], Some(due)));
    }
    let held_back = pending.len().saturating_sub(DIGEST_MAX_FINDINGS);
    let mut entries = Vec::new();
    let mut carried = Vec::new();
    let mut out = Vec::new();
    for d in pending.into_iter().take(DIGEST_MAX_FINDINGS) {
        let id = d.finding;
        match blocking(ctx.store, move |s| s.finding(id)).await? {
            Some(finding) => {
                let entity_name = ctx
                    .config
                    .entity(&finding.entity)
                    .map(|e| e.name.clone())
                    .unwrap_or_else(|| finding.entity.clone());
                entries.push(DigestEntry {
                    entity_name,
                    finding,
                });
                carried.push(d);
            }
            None => {
                out.push(kill(ctx, vec![d], format!("finding {id} is not in the store")).await?)
            }
        }
    }
    if carried.is_empty() {
        return Ok((out, None));
    }
    let installation = ctx.store.installation_id();
    let mail = match render_digest(&ctx.config.settings, installation, sub, &entries, held_back) {
        Ok(m) => m,
        Err(e) => {
            out.push(kill(ctx, carried, crate::text::chain(&e)).await?);
            return Ok((out, None));
        }
    };
    let state = DigestState {
        last_sent: ctx.now,
        message_id: Some(mail.message_id.clone()),
        findings: carried.len(),
    };
    let (delivered, _) = attempt(ctx, sub, carried, &mail, Some(state)).await?;
    let next = match &delivered.outcome {
        Outcome::Retry { next_attempt, .. } => Some(*next_attempt),
        _ => None,
    };
    out.push(delivered);
    Ok((out, next))
}

/// Moves deliveries to the dead list without an attempt (their finding is
/// gone, or their mail cannot be built).
async fn kill(ctx: &Ctx<'_>, ds: Vec<Delivery>, error: String) -> Result<Delivered, AlertError> {
    let ds: Vec<Delivery> = ds
        .into_iter()
        .map(|mut d| {
            d.dead = true;
            d.last_error = Some(error.clone());
            d.record(ctx.now, "dead", &error);
            d
        })
        .collect();
    let save = ds.clone();
    blocking(ctx.store, move |s| s.update_deliveries(&save)).await?;
    tracing::warn!(error = %error, "Alert moved to the dead list without sending.");
    Ok(Delivered {
        subscriber: ds.first().map(|d| d.subscriber.clone()).unwrap_or_default(),
        deliveries: ds,
        digest: false,
        subject: String::new(),
        message_id: String::new(),
        outcome: Outcome::Dead { error },
        possible_duplicate: false,
    })
}

/// One attempt of one mail carrying `ds`; records the outcome on each.
/// The flag is true when the server could not be reached at all.
async fn attempt(
    ctx: &Ctx<'_>,
    sub: &Subscriber,
    mut ds: Vec<Delivery>,
    mail: &Rendered,
    digest: Option<DigestState>,
) -> Result<(Delivered, bool), AlertError> {
    let is_digest = digest.is_some();
    let possible_duplicate = ds.iter().any(|d| d.in_flight.is_some());
    if possible_duplicate {
        tracing::warn!(subscriber = %sub.name, message_id = %mail.message_id,
            "An earlier attempt of this mail was interrupted; sending it again with the same Message-ID (the recipient may see it twice).");
    }
    for d in &mut ds {
        d.in_flight = Some(ctx.now);
        d.message_id = Some(mail.message_id.clone());
    }
    let mark = ds.clone();
    blocking(ctx.store, move |s| s.note_in_flight(&mark)).await?;

    let result = ctx.transport.send(mail).await;
    let unreachable = matches!(
        result,
        Err(SendFailure::Transient {
            connection: true,
            ..
        })
    );
    for d in &mut ds {
        d.in_flight = None;
        d.attempts += 1;
        d.last_attempt = Some(ctx.now);
    }
    let outcome = match result {
        Ok(ok) => {
            let sent_at = Utc::now();
            for d in &mut ds {
                d.sent_at = Some(sent_at);
                d.last_error = None;
                d.next_attempt = None;
                d.reply = Some(ok.reply.clone());
                d.record(ctx.now, "sent", &ok.reply);
            }
            let save = ds.clone();
            let name = sub.name.clone();
            blocking(ctx.store, move |s| {
                s.mark_sent_batch(&save, digest.as_ref().map(|st| (name.as_str(), st)))
            })
            .await?;
            tracing::info!(subscriber = %sub.name, message_id = %mail.message_id, reply = %ok.reply, "Alert delivered.");
            Outcome::Sent {
                reply: ok.reply,
                file: ok.file,
            }
        }
        Err(SendFailure::Permanent { error }) => {
            for d in &mut ds {
                d.dead = true;
                d.last_error = Some(error.clone());
                d.next_attempt = None;
                d.record(ctx.now, "dead", &error);
            }
            let save = ds.clone();
            blocking(ctx.store, move |s| s.update_deliveries(&save)).await?;
            tracing::warn!(subscriber = %sub.name, error = %error, "Alert refused permanently; moved to the dead list (`pivotwatch outbox`).");
            Outcome::Dead { error }
        }
        Err(SendFailure::Transient { error, .. }) => {
            let attempts = ds.iter().map(|d| d.attempts).max().unwrap_or(1);
            let next_attempt = ctx.now + backoff(attempts);
            for d in &mut ds {
                d.last_error = Some(error.clone());
                d.next_attempt = Some(next_attempt);
                d.record(ctx.now, "retry", &error);
            }
            let save = ds.clone();
            blocking(ctx.store, move |s| s.update_deliveries(&save)).await?;
            tracing::warn!(subscriber = %sub.name, error = %error, next_attempt = %next_attempt, "Alert delivery failed; it stays queued.");
            Outcome::Retry {
                error,
                next_attempt,
            }
        }
    };
    let delivered = Delivered {
        subscriber: sub.name.clone(),
        deliveries: ds,
        digest: is_digest,
        subject: mail.subject.clone(),
        message_id: mail.message_id.clone(),
        outcome,
        possible_duplicate,
    };
    Ok((delivered, unreachable))
}

/// Makes dead or waiting deliveries due now: one by id, or (`None`) every
/// dead or backing-off one. Returns those requeued. Digest deliveries go
/// out with their subscriber's next digest.
pub fn requeue(store: &Store, id: Option<u64>) -> Result<Vec<Delivery>, AlertError> {
    let now = Utc::now();
    let targets = match id {
        Some(id) => vec![store.delivery(id)?.ok_or(AlertError::UnknownDelivery(id))?],
        None => store
            .outbox_all()?
            .into_iter()
            .filter(|d| d.dead || d.next_attempt.is_some())
            .collect(),
    };
    let ds: Vec<Delivery> = targets
        .into_iter()
        .map(|mut d| {
            d.dead = false;
            d.next_attempt = None;
            d.record(now, "requeued", "pivotwatch outbox retry");
            d
        })
        .collect();
    store.update_deliveries(&ds)?;
    Ok(ds)
}
