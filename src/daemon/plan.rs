//! When a source is due: the daemon's scheduling rules as pure functions
//! of (schedule, timezone, clock, outcome), so they can be tested against
//! known fire times without waiting for them.
//!
//! * The next check is the schedule's next occurrence strictly after the
//!   moment the last check finished, in the watchlist's timezone, plus a
//!   random jitter. Croner gives cron's DST semantics: a time skipped by
//!   spring-forward runs once at the next valid time; a time repeated by
//!   fall-back runs once; interval schedules (`*/15`) follow real time.
//! * After downtime the stored due time is in the past: the source runs
//!   once, now, and the next time is computed from now, so missed slots are
//!   never replayed one by one.
//! * A source never checked before is due at start (with a short jitter).
//! * A transient failure is retried before the next slot: after the
//!   server's `Retry-After` (never sooner), or else after 1, 2, 4 … 60
//!   minutes.
//!
//! **Boundary:** no IO; the random jitter is passed in.

use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::check::CheckReport;
use crate::record::CheckStatus;
use crate::schedule::Schedule;

/// Longest delay before the first check of a never-checked source.
pub const STARTUP_SPREAD: Duration = Duration::from_secs(10);
/// Longest `Retry-After` honoured for a source (a longer one is cut to
/// this, so a typo on the server does not silence a source for years).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);
/// How far ahead a schedule that never fires (e.g. `0 0 30 2 *`) pushes
/// its source.
pub const NEVER: Duration = Duration::from_secs(366 * 24 * 3600);

/// A source's schedule with its timezone.
#[derive(Debug, Clone)]
pub struct When<'a> {
    /// The cron expression.
    pub schedule: &'a Schedule,
    /// The watchlist's timezone.
    pub tz: Tz,
}

impl When<'_> {
    /// The identity of the schedule, stored with the due time: when a
    /// reload changes it, the due time is computed again.
    pub fn signature(&self) -> String {
        format!("{} {}", self.schedule.as_str(), self.tz.name())
    }

    /// The schedule's next occurrence strictly after `after`.
    pub fn next_slot(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule.next_after(&after.with_timezone(&self.tz))
    }

    /// The next slot after `after` plus `jitter`, or [`NEVER`] from now
    /// when the schedule has no further occurrence.
    pub fn next_due(&self, after: DateTime<Utc>, jitter: Duration) -> DateTime<Utc> {
        match self.next_slot(after) {
            Some(t) => add(t, jitter),
            None => add(after, NEVER),
        }
    }
}

/// What the store remembers of a source when the daemon starts.
#[derive(Debug, Clone, Copy)]
pub struct Remembered<'a> {
    /// The due time the daemon stored, and the schedule signature it was
    /// computed from.
    pub due: Option<(DateTime<Utc>, &'a str)>,
    /// The source was ever checked (by `run` or `once`).
    pub checked: bool,
}

/// When a source is first due after the daemon starts at `now`.
/// `jitter` is this source's random draw in `[0, [daemon] jitter]`.
pub fn due_at_start(
    when: &When<'_>,
    remembered: Remembered<'_>,
    now: DateTime<Utc>,
    jitter: Duration,
    check_now: bool,
) -> DateTime<Utc> {
    if check_now {
        return now;
    }
    if let Some((due, sig)) = remembered.due
        && sig == when.signature()
    {
        // In the past after downtime: due now, once.
        return due.max(now);
    }
    if !remembered.checked {
        return add(now, jitter.min(STARTUP_SPREAD));
    }
    when.next_due(now, jitter)
}

/// When a source is due again after a check that ended at `now`, and
/// whether that is an early retry. `failures` counts the failed checks in
/// a row, this one included.
pub fn due_after_check(
    when: &When<'_>,
    report: &CheckReport,
    failures: u32,
    now: DateTime<Utc>,
    jitter: Duration,
) -> (DateTime<Utc>, bool) {
    let regular = when.next_due(now, jitter);
    let failed = matches!(report.status, CheckStatus::Failed | CheckStatus::Blocked);
    if !failed || !report.transient {
        return (regular, false);
    }
    if let Some(ra) = report.retry_after {
        // The server said when: not before, and (if later than the
        // schedule) not at the schedule either.
        return (add(now, ra.min(MAX_RETRY_AFTER)), true);
    }
    let retry = add(now, backoff(failures));
    if retry < regular {
        (retry, true)
    } else {
        (regular, false)
    }
}

/// The early-retry delays without `Retry-After`: the one retry policy,
/// [`crate::retry`] (1 min, 2, 4 … 60 min for the 1st, 2nd, 3rd …
/// failure in a row), without jitter.
pub use crate::retry::{RETRY_FIRST, RETRY_MAX, backoff};

/// A random jitter in `[0, max]`.
pub fn random_jitter(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    max.mul_f64(fastrand::f64())
}

/// `t + d`, saturating instead of panicking at the end of time.
fn add(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}
