//! Source health: after `[daemon] failure_threshold` failed (or blocked,
//! or robots-disallowed, or "the extractor now yields nothing") checks in
//! a row, the watchlist's maintainers get one source-broken notice; when
//! the source works again, one recovery notice. A notice that cannot be
//! sent is tried again after the next check.
//!
//! **Boundary:** decides which notice is due; sends through
//! [`crate::alert::send_notice`]; the caller persists the outcome.

use chrono::{DateTime, Utc};

use crate::check::CheckReport;
use crate::config::{Config, Entity, Source};
use crate::record::CheckStatus;
use crate::store::SourceState;

/// A notice to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// The source failed `threshold` times in a row.
    Broken,
    /// The source works again after a broken notice.
    Recovered,
}

/// Which notice, if any, is due after a check. `broken_notice` is when
/// the maintainers were told it is broken (not yet told it recovered).
pub fn due_notice(
    report: &CheckReport,
    failures: u32,
    broken_notice: Option<DateTime<Utc>>,
    threshold: u32,
) -> Option<Notice> {
    let failed = matches!(report.status, CheckStatus::Failed | CheckStatus::Blocked);
    match (failed, broken_notice) {
        (true, None) if failures >= threshold => Some(Notice::Broken),
        (false, Some(_)) => Some(Notice::Recovered),
        _ => None,
    }
}

/// The result to persist: the new `broken_notice` and the send error.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    /// New value of `DaemonSource::broken_notice`.
    pub broken_notice: Option<DateTime<Utc>>,
    /// Why the notice could not be sent, if it could not.
    pub error: Option<String>,
    /// What was done, for the metrics: `broken`, `recovered` or `failed`.
    pub counted: &'static str,
}

/// Sends a notice to the maintainers of the entity's watchlist;
/// `installation` is the store's id (it goes into the Message-ID).
#[allow(clippy::too_many_arguments)]
pub async fn send(
    config: &Config,
    installation: &str,
    entity: &Entity,
    source: &Source,
    report: &CheckReport,
    state: &SourceState,
    notice: Notice,
    broken_notice: Option<DateTime<Utc>>,
) -> Sent {
    let now = Utc::now();
    let key = source.key();
    let Some(watchlist) = config.watchlist_of(entity) else {
        return Sent {
            broken_notice,
            error: Some("the entity's watchlist is gone".into()),
            counted: "failed",
        };
    };
    let since = state
        .last_success
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "never".into());
    let (subject, text, id, on_success) = match notice {
        Notice::Broken => (
            format!("source broken: {} / {}", entity.name, source.id),
            format!(
                "pivotwatch has not been able to check {key} ({url}) {n} time(s) in a row.\n\n\
                 Last status: {status}\nLast error: {error}\nLast successful check: {since}\n\n\
                 While it is broken, changes on this page are not seen. Check the page in a \
                 browser; if its layout changed, fix the selectors in {file} and test them with \
                 `pivotwatch probe`; if the site blocks pivotwatch, lower the request rate for the \
                 host or drop the source.\n\nYou get this notice once, and another one when the \
                 source works again.\n",
                url = source.url,
                n = state.consecutive_failures,
                status = report.status,
                error = report.error.as_deref().unwrap_or("-"),
                file = watchlist.path.display(),
            ),
            format!("source-broken/{key}/{since}"),
            Some(now),
        ),
        Notice::Recovered => (
            format!("source recovered: {} / {}", entity.name, source.id),
            format!(
                "{key} ({url}) works again: the check at {at} succeeded ({status}).\n",
                url = source.url,
                at = now.format("%Y-%m-%d %H:%M UTC"),
                status = report.status,
            ),
            format!(
                "source-recovered/{key}/{}",
                broken_notice.map(|t| t.timestamp()).unwrap_or_default()
            ),
            None,
        ),
    };
    let kind = match notice {
        Notice::Broken => "broken",
        Notice::Recovered => "recovered",
    };
    match crate::alert::send_notice(config, installation, watchlist, &subject, &text, &id).await {
        Ok(sent) => {
            if sent.is_none() {
                tracing::info!(
                    watchlist = %watchlist.name,
                    notice = kind,
                    "The watchlist names no maintainers; the source health notice goes nowhere."
                );
            } else {
                tracing::warn!(
                    notice = kind,
                    "Source health notice sent to the maintainers."
                );
            }
            Sent {
                broken_notice: on_success,
                error: None,
                counted: kind,
            }
        }
        Err(e) => {
            tracing::error!(notice = kind, error = %crate::text::chain(&e), "Source health notice could not be sent; it is tried again after the next check.");
            Sent {
                broken_notice,
                error: Some(crate::text::chain(&e)),
                counted: "failed",
            }
        }
    }
}

/// How often the store watch looks at the store.
const STORE_WATCH_TICK: std::time::Duration = std::time::Duration::from_secs(1);
/// How often a failed store is reopened and tried.
const STORE_RETRY_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// How often a store notice that could not be sent is tried again.
const STORE_NOTICE_RETRY: std::time::Duration = std::time::Duration::from_secs(60);

/// A notice about the store itself, for the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreNotice {
    Failing,
    Recovered,
}

/// Sends a store notice to the maintainers of every watchlist (the
/// settings name no operator address). `true` when every send worked.
async fn send_store_notice(
    config: &Config,
    installation: &str,
    notice: StoreNotice,
    since: DateTime<Utc>,
    path: &std::path::Path,
    error: &str,
) -> bool {
    let at = since.format("%Y-%m-%d %H:%M:%S UTC");
    let (subject, text, key) = match notice {
        StoreNotice::Failing => (
            "pivotwatch: the store cannot write".to_string(),
            format!(
                "pivotwatch cannot write its store at {path} since {at}:\n\n{error}\n\n\
                 While this lasts, checks fail and alerts stay queued; nothing already committed \
                 is lost. pivotwatch keeps running, reopens the store every {retry} s, and sends \
                 another notice when it works again; queued alerts then go out.\n\n\
                 What to do: free space on the disk holding {path} (`df -h`), or check the disk \
                 (`dmesg`) if it is not full. Nothing needs restarting.\n",
                path = path.display(),
                retry = STORE_RETRY_EVERY.as_secs(),
            ),
            format!("store-failing/{}", since.timestamp()),
        ),
        StoreNotice::Recovered => (
            "pivotwatch: the store works again".to_string(),
            format!(
                "The store at {path} can be written again (it could not since {at}). Queued \
                 alerts are being delivered; checks that failed meanwhile run again at their \
                 next scheduled time.\n",
                path = path.display(),
            ),
            format!("store-recovered/{}", since.timestamp()),
        ),
    };
    let mut all = true;
    for w in config
        .watchlists
        .iter()
        .filter(|w| !w.maintainers.is_empty())
    {
        if let Err(e) =
            crate::alert::send_notice(config, installation, w, &subject, &text, &key).await
        {
            tracing::error!(watchlist = %w.name, error = %crate::text::chain(&e), "The store notice could not be sent; it is tried again.");
            all = false;
        }
    }
    all
}

/// Watches the store of the daemon: when a write fails (full disk, I/O
/// error, timeout), tells the maintainers of every watchlist, reopens the
/// store every few seconds until it can write again, then tells them it
/// recovered and wakes the delivery loop so that queued alerts go out.
pub(crate) async fn watch_store(
    shared: std::sync::Arc<super::Shared>,
    kick_delivery: std::sync::Arc<tokio::sync::Notify>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    // Since when the store is failing, and whether the failing notice went out.
    let mut down: Option<(DateTime<Utc>, bool)> = None;
    let mut last_try = tokio::time::Instant::now();
    let mut last_notice = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = stop.wait_for(|v| *v) => break,
            _ = tokio::time::sleep(STORE_WATCH_TICK) => {}
        }
        let store = shared.store.clone();
        let path = store.path().to_path_buf();
        let notice = async |kind, since, error: &str| {
            send_store_notice(
                &shared.config(),
                store.installation_id(),
                kind,
                since,
                &path,
                error,
            )
            .await
        };
        match (down, store.failure()) {
            (None, None) => {}
            (None, Some(error)) => {
                let since = Utc::now();
                tracing::error!(path = %path.display(), error = %error, "The store cannot write; checks fail and alerts stay queued until it can. Retrying.");
                let sent = notice(StoreNotice::Failing, since, &error).await;
                down = Some((since, sent));
                last_try = tokio::time::Instant::now();
                last_notice = tokio::time::Instant::now();
            }
            (Some((since, sent)), _) => {
                if last_try.elapsed() >= STORE_RETRY_EVERY {
                    last_try = tokio::time::Instant::now();
                    let s = store.clone();
                    match crate::store::blocking(move || s.recover()).await {
                        Ok(()) => {
                            tracing::warn!(path = %path.display(), "The store can write again; delivering queued alerts.");
                            if sent {
                                notice(StoreNotice::Recovered, since, "").await;
                            }
                            down = None;
                            kick_delivery.notify_one();
                            continue;
                        }
                        Err(e) => {
                            tracing::debug!(error = %crate::text::chain(&e), "The store still cannot write.");
                        }
                    }
                }
                if !sent && last_notice.elapsed() >= STORE_NOTICE_RETRY {
                    last_notice = tokio::time::Instant::now();
                    let error = store.failure().unwrap_or_default();
                    let ok = notice(StoreNotice::Failing, since, &error).await;
                    down = Some((since, ok));
                }
            }
        }
    }
}
