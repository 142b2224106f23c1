//! Alerts: routing findings to subscribers, rendering the email, and
//! delivering what the outbox holds.
//!
//! **Architecture Invariant:** decides *who* gets a finding and *how it
//! looks*, never its severity. Deliveries are queued by the store in the
//! same transaction as their finding; this module only drains the queue, so
//! a crash between commit and send loses nothing (at-least-once, with a
//! deterministic Message-ID per finding and subscriber).

mod render;

use std::path::PathBuf;

use chrono::Utc;
use lettre::{AsyncFileTransport, AsyncTransport, Tokio1Executor};

pub use render::{Rendered, render, sanitize_header, subject, text_body};

use crate::config::{Config, DeliveryMode, Entity, Settings, Subscriber};
use crate::record::Finding;
use crate::store::{Delivery, Store, StoreError};

/// Name of the built-in subscriber used when no `[[subscriber]]` is set:
/// every finding goes to the `[email] from` address, into the spool folder.
pub const DEFAULT_SUBSCRIBER: &str = "default";

/// Delivery failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AlertError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The message could not be built (bad address).
    #[error("cannot build the alert email: {0}")]
    Build(String),
    /// Writing the `.eml` file failed.
    #[error(
        "cannot write the alert to the spool folder {dir}: {detail}; check that it exists and is writable"
    )]
    Spool {
        /// The spool folder.
        dir: PathBuf,
        /// What failed.
        detail: String,
    },
}

/// The subscribers a finding goes to (immediately or in a digest).
pub fn route(settings: &Settings, entity: &Entity, finding: &Finding) -> Vec<String> {
    if settings.subscribers.is_empty() {
        return vec![DEFAULT_SUBSCRIBER.to_string()];
    }
    settings
        .subscribers
        .iter()
        .filter(|s| wants(s, entity, finding))
        .map(|s| s.name.clone())
        .collect()
}

fn wants(s: &Subscriber, entity: &Entity, f: &Finding) -> bool {
    f.severity >= s.min_severity
        && (s.watchlists.is_empty() || s.watchlists.contains(&f.watchlist))
        && (s.tags.is_empty() || s.tags.iter().any(|t| entity.tags.contains(t)))
        && (s.rules.is_empty() || s.rules.contains(&f.rule))
        && !s.exclude_rules.contains(&f.rule)
}

fn subscriber<'a>(settings: &'a Settings, name: &str) -> Option<std::borrow::Cow<'a, Subscriber>> {
    if let Some(s) = settings.subscribers.iter().find(|s| s.name == name) {
        return Some(std::borrow::Cow::Borrowed(s));
    }
    (name == DEFAULT_SUBSCRIBER).then(|| {
        std::borrow::Cow::Owned(Subscriber {
            name: DEFAULT_SUBSCRIBER.to_string(),
            to: vec![settings.email.from.clone()],
            watchlists: vec![],
            tags: vec![],
            min_severity: crate::record::Severity::Info,
            rules: vec![],
            exclude_rules: vec![],
            mode: DeliveryMode::Immediate,
            digest_schedule: None,
        })
    })
}

/// What happened to one delivery.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The delivery.
    pub delivery: Delivery,
    /// Where the mail went (`.eml` path, or the SMTP reply).
    pub to: String,
    /// The rendered mail's subject.
    pub subject: String,
    /// The `.eml` file, for the spool transport.
    pub file: Option<PathBuf>,
    /// The error, if the attempt failed.
    pub error: Option<String>,
}

/// Sends every due pending delivery. A failed delivery stays queued with
/// its error; one failure never stops the others.
pub async fn deliver_pending(store: &Store, config: &Config) -> Result<Vec<Delivered>, AlertError> {
    let settings = &config.settings;
    let mut out = Vec::new();
    let now = Utc::now();
    for d in store.pending_deliveries()? {
        if d.next_attempt.is_some_and(|t| t > now) {
            continue;
        }
        let Some(finding) = store.finding(d.finding)? else {
            let mut dead = d.clone();
            dead.dead = true;
            dead.last_error = Some(format!("finding {} is not in the store", d.finding));
            store.update_delivery(&dead)?;
            continue;
        };
        let Some(sub) = subscriber(settings, &d.subscriber) else {
            let mut held = d.clone();
            held.last_error = Some(format!(
                "subscriber {:?} is no longer configured; add it back or drop the delivery",
                d.subscriber
            ));
            store.update_delivery(&held)?;
            continue;
        };
        let entity = config.entity(&finding.entity);
        let mail = render(settings, entity, &finding, &sub, &d)?;
        let subject = mail.subject.clone();
        match send_spool(&settings.email.spool_dir, mail).await {
            Ok(path) => {
                store.mark_sent(&d)?;
                tracing::info!(delivery = d.id, finding = d.finding, subscriber = %d.subscriber, "Alert written to the spool folder.");
                out.push(Delivered {
                    delivery: d,
                    to: path.display().to_string(),
                    subject,
                    file: Some(path),
                    error: None,
                });
            }
            Err(e) => {
                let mut failed = d.clone();
                failed.attempts += 1;
                failed.last_error = Some(e.to_string());
                failed.next_attempt = Some(Utc::now() + chrono::Duration::seconds(60));
                store.update_delivery(&failed)?;
                tracing::warn!(delivery = d.id, error = %e, "Alert delivery failed; it stays queued.");
                out.push(Delivered {
                    delivery: failed,
                    to: String::new(),
                    subject,
                    file: None,
                    error: Some(e.to_string()),
                });
            }
        }
    }
    Ok(out)
}

async fn send_spool(dir: &std::path::Path, mail: Rendered) -> Result<PathBuf, AlertError> {
    let spool_err = |detail: String| AlertError::Spool {
        dir: dir.to_path_buf(),
        detail,
    };
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| spool_err(e.to_string()))?;
    let transport = AsyncFileTransport::<Tokio1Executor>::new(dir);
    let id = transport
        .send(mail.message)
        .await
        .map_err(|e| spool_err(e.to_string()))?;
    Ok(dir.join(format!("{id}.eml")))
}
