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

// Moved from tests/daemon_schedule.rs (issue 11): pure functions, unit tests.
#[cfg(test)]
mod tests {
    //! The daemon's scheduling rules against known fire times: crontab
    //! weekday semantics, day-of-month OR day-of-week, DST in Europe/Berlin,
    //! America/Los_Angeles and Africa/Casablanca (Ramadan time), catch-up
    //! after downtime, retries. Pure: no clock, no network.

    use std::time::Duration;

    use crate::check::CheckReport;
    use crate::daemon::plan::{self, Remembered, When};
    use crate::record::CheckStatus;
    use crate::schedule::Schedule;
    use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc, Weekday};
    use chrono_tz::Tz;

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    /// The first `n` fire times after `from`, stepping as the daemon does: the
    /// next one is computed from the moment the previous check finished
    /// (`took` after it fired).
    fn fires(
        expr: &str,
        tz: Tz,
        from: DateTime<Utc>,
        n: usize,
        took: Duration,
    ) -> Vec<DateTime<Utc>> {
        let schedule = Schedule::parse(expr).unwrap();
        let when = When {
            schedule: &schedule,
            tz,
        };
        let mut out = Vec::new();
        let mut t = from;
        for _ in 0..n {
            let next = when.next_due(t, Duration::ZERO);
            out.push(next);
            t = next + chrono::Duration::from_std(took).unwrap();
        }
        out
    }

    fn local(ts: &[DateTime<Utc>], tz: Tz) -> Vec<String> {
        ts.iter()
            .map(|t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string())
            .collect()
    }

    const BERLIN: Tz = chrono_tz::Europe::Berlin;
    const LA: Tz = chrono_tz::America::Los_Angeles;
    const CASABLANCA: Tz = chrono_tz::Africa::Casablanca;
    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn weekday_ranges_and_names_follow_crontab() {
        // 2026-11-27 is a Friday.
        let from = utc(2026, 11, 27, 12, 0);
        for expr in [
            "0 9 * * 1-5",
            "0 9 * * Mon-Fri",
            "0 9 * * MON,TUE,WED,THU,FRI",
        ] {
            let days: Vec<Weekday> = fires(expr, BERLIN, from, 6, MINUTE)
                .iter()
                .map(|t| t.with_timezone(&BERLIN).weekday())
                .collect();
            assert_eq!(
                days,
                [
                    Weekday::Mon,
                    Weekday::Tue,
                    Weekday::Wed,
                    Weekday::Thu,
                    Weekday::Fri,
                    Weekday::Mon
                ],
                "{expr}"
            );
        }
        // 0 and 7 are both Sunday.
        for expr in ["30 8 * * 0", "30 8 * * 7", "30 8 * * Sun"] {
            let t = fires(expr, BERLIN, from, 1, MINUTE)[0].with_timezone(&BERLIN);
            assert_eq!(
                (t.weekday(), t.day(), t.hour(), t.minute()),
                (Weekday::Sun, 29, 8, 30),
                "{expr}"
            );
        }
        // Steps: every 20 minutes from 06:00 to 06:40, then the next day.
        assert_eq!(
            local(
                &fires("*/20 6 * * *", BERLIN, utc(2026, 12, 1, 0, 0), 4, MINUTE),
                BERLIN
            ),
            [
                "2026-12-01 06:00 CET",
                "2026-12-01 06:20 CET",
                "2026-12-01 06:40 CET",
                "2026-12-02 06:00 CET"
            ]
        );
    }

    #[test]
    fn day_of_month_or_day_of_week() {
        // "The 13th, or any Friday" (Vixie cron), not "Friday the 13th".
        // December 2026: Fridays are the 4th, 11th, 18th, 25th; the 13th is a Sunday.
        let got = local(
            &fires("0 9 13 * Fri", BERLIN, utc(2026, 12, 1, 0, 0), 5, MINUTE),
            BERLIN,
        );
        assert_eq!(
            got,
            [
                "2026-12-04 09:00 CET",
                "2026-12-11 09:00 CET",
                "2026-12-13 09:00 CET",
                "2026-12-18 09:00 CET",
                "2026-12-25 09:00 CET"
            ]
        );
        // A restricted day-of-month alone is not ORed with the `*` weekday.
        assert_eq!(
            local(
                &fires("0 9 13 * *", BERLIN, utc(2026, 12, 1, 0, 0), 2, MINUTE),
                BERLIN
            ),
            ["2026-12-13 09:00 CET", "2027-01-13 09:00 CET"]
        );
    }

    #[test]
    fn spring_forward_runs_a_skipped_time_once_at_the_next_valid_time() {
        // Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
        assert_eq!(
            local(
                &fires("30 2 * * *", BERLIN, utc(2026, 3, 27, 12, 0), 3, MINUTE),
                BERLIN
            ),
            [
                "2026-03-28 02:30 CET",
                "2026-03-29 03:00 CEST",
                "2026-03-30 02:30 CEST"
            ]
        );
        // Los Angeles, 2026-03-08: 02:00 PST jumps to 03:00 PDT.
        assert_eq!(
            local(
                &fires("30 2 * * *", LA, utc(2026, 3, 7, 0, 0), 3, MINUTE),
                LA
            ),
            [
                "2026-03-07 02:30 PST",
                "2026-03-08 03:00 PDT",
                "2026-03-09 02:30 PDT"
            ]
        );
        // Casablanca, 2026-03-22 (end of Ramadan time): 02:00 +00 jumps to 03:00 +01.
        assert_eq!(
            local(
                &fires("30 2 * * *", CASABLANCA, utc(2026, 3, 20, 12, 0), 3, MINUTE),
                CASABLANCA
            ),
            [
                "2026-03-21 02:30 +00",
                "2026-03-22 03:00 +01",
                "2026-03-23 02:30 +01"
            ]
        );
    }

    #[test]
    fn fall_back_runs_a_repeated_time_once_and_intervals_follow_real_time() {
        // Berlin, 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
        let berlin = fires("30 2 * * *", BERLIN, utc(2026, 10, 24, 12, 0), 3, MINUTE);
        assert_eq!(
            local(&berlin, BERLIN),
            [
                "2026-10-25 02:30 CEST",
                "2026-10-26 02:30 CET",
                "2026-10-27 02:30 CET"
            ]
        );
        // Also when the check finishes in the repeated hour itself (00:30 UTC
        // fired, done at 01:29 UTC = 02:29 CET, before the second 02:30).
        assert_eq!(
            fires("30 2 * * *", BERLIN, utc(2026, 10, 25, 1, 29), 1, MINUTE),
            [utc(2026, 10, 26, 1, 30)]
        );
        // Los Angeles, 2026-11-01: 02:00 PDT falls back to 01:00 PST.
        assert_eq!(
            local(
                &fires("30 1 * * *", LA, utc(2026, 10, 31, 12, 0), 2, MINUTE),
                LA
            ),
            ["2026-11-01 01:30 PDT", "2026-11-02 01:30 PST"]
        );
        // Casablanca, 2026-02-15 (start of Ramadan time): 03:00 +01 falls back to 02:00 +00.
        assert_eq!(
            local(
                &fires("30 2 * * *", CASABLANCA, utc(2026, 2, 14, 12, 0), 2, MINUTE),
                CASABLANCA
            ),
            ["2026-02-15 02:30 +01", "2026-02-16 02:30 +00"]
        );
        // An interval schedule runs in both passes: real time, every 30 minutes.
        let every = fires("*/30 * * * *", BERLIN, utc(2026, 10, 24, 23, 50), 5, MINUTE);
        assert_eq!(
            every,
            [
                utc(2026, 10, 25, 0, 0),
                utc(2026, 10, 25, 0, 30),
                utc(2026, 10, 25, 1, 0),
                utc(2026, 10, 25, 1, 30),
                utc(2026, 10, 25, 2, 0)
            ]
        );
        assert_eq!(
            local(&every, BERLIN),
            [
                "2026-10-25 02:00 CEST",
                "2026-10-25 02:30 CEST",
                "2026-10-25 02:00 CET",
                "2026-10-25 02:30 CET",
                "2026-10-25 03:00 CET"
            ]
        );
    }

    fn report(status: CheckStatus, transient: bool, retry_after: Option<Duration>) -> CheckReport {
        let mut r = CheckReport::new("e", "s", "", status);
        r.transient = transient;
        r.retry_after = retry_after;
        r
    }

    #[test]
    fn catch_up_after_downtime_runs_once_then_resumes_the_schedule() {
        let schedule = Schedule::parse("0 * * * *").unwrap();
        let when = When {
            schedule: &schedule,
            tz: chrono_tz::UTC,
        };
        let sig = when.signature();
        // Stored due at 06:00; the daemon was down from 05:30 to 12:10.
        let now = utc(2026, 11, 28, 12, 10);
        let due = plan::due_at_start(
            &when,
            Remembered {
                due: Some((utc(2026, 11, 28, 6, 0), &sig)),
                checked: true,
            },
            now,
            Duration::ZERO,
            false,
        );
        assert_eq!(due, now, "one catch-up check, now");
        // That check ends a minute later: the next is 13:00, not 07:00.
        let done = now + chrono::Duration::minutes(1);
        let (next, retry) = plan::due_after_check(
            &when,
            &report(CheckStatus::Unchanged, false, None),
            0,
            done,
            Duration::ZERO,
        );
        assert_eq!((next, retry), (utc(2026, 11, 28, 13, 0), false));
        // A due time in the future is kept across a restart …
        let later = utc(2026, 11, 28, 13, 0);
        let kept = plan::due_at_start(
            &when,
            Remembered {
                due: Some((later, &sig)),
                checked: true,
            },
            now,
            Duration::from_secs(30),
            false,
        );
        assert_eq!(kept, later);
        // … unless the schedule changed in between.
        let moved = plan::due_at_start(
            &when,
            Remembered {
                due: Some((later, "0 3 * * * UTC")),
                checked: true,
            },
            now,
            Duration::ZERO,
            false,
        );
        assert_eq!(moved, utc(2026, 11, 28, 13, 0));
        // Never checked: soon after start, at most the startup spread.
        let fresh = plan::due_at_start(
            &when,
            Remembered {
                due: None,
                checked: false,
            },
            now,
            Duration::from_secs(3600),
            false,
        );
        assert_eq!(
            fresh,
            now + chrono::Duration::from_std(plan::STARTUP_SPREAD).unwrap()
        );
        // Jitter is added to the slot.
        let (j, _) = plan::due_after_check(
            &when,
            &report(CheckStatus::New, false, None),
            0,
            done,
            Duration::from_secs(42),
        );
        assert_eq!(j, utc(2026, 11, 28, 13, 0) + chrono::Duration::seconds(42));
    }

    #[test]
    fn transient_failures_retry_early_and_retry_after_is_respected() {
        let schedule = Schedule::parse("0 3 * * *").unwrap();
        let when = When {
            schedule: &schedule,
            tz: chrono_tz::UTC,
        };
        let now = utc(2026, 11, 28, 12, 0);
        // A timeout: 1 min, then 2, 4 … 60 min.
        let r = report(CheckStatus::Failed, true, None);
        assert_eq!(
            plan::due_after_check(&when, &r, 1, now, Duration::ZERO),
            (now + chrono::Duration::minutes(1), true)
        );
        assert_eq!(
            plan::due_after_check(&when, &r, 3, now, Duration::ZERO),
            (now + chrono::Duration::minutes(4), true)
        );
        assert_eq!(plan::backoff(30), Duration::from_secs(3600));
        // Retry-After: exactly then, even past the next slot.
        let ra = report(
            CheckStatus::Failed,
            true,
            Some(Duration::from_secs(20 * 3600)),
        );
        assert_eq!(
            plan::due_after_check(&when, &ra, 1, now, Duration::ZERO),
            (now + chrono::Duration::hours(20), true)
        );
        // A permanent failure (404, block page, robots.txt) waits for the slot.
        let p = report(CheckStatus::Blocked, false, None);
        assert_eq!(
            plan::due_after_check(&when, &p, 5, now, Duration::ZERO),
            (utc(2026, 11, 29, 3, 0), false)
        );
    }
}
