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
            tracing::error!(notice = kind, error = %e, "Source health notice could not be sent; it is tried again after the next check.");
            Sent {
                broken_notice,
                error: Some(e.to_string()),
                counted: "failed",
            }
        }
    }
}
