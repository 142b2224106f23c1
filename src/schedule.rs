//! Cron schedules: standard 5-field crontab expressions evaluated in a
//! watchlist's IANA timezone.
//!
//! **Architecture Invariant:** no network and no store access; this module
//! only turns expressions and clocks into due times.

use chrono::{DateTime, TimeZone, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// A parsed, validated 5-field cron expression.
#[derive(Debug, Clone)]
pub struct Schedule {
    expr: String,
    cron: std::sync::Arc<Cron>,
}

static CRONS: std::sync::Mutex<Option<std::collections::HashMap<String, std::sync::Arc<Cron>>>> =
    std::sync::Mutex::new(None);

impl Schedule {
    /// Parses a standard 5-field crontab expression (`min hour dom month dow`;
    /// `0` and `7` are Sunday, names like `Mon-Fri` work, day-of-month and
    /// day-of-week combine with OR as in Vixie cron).
    pub fn parse(expr: &str) -> Result<Schedule, String> {
        let trimmed = expr.trim();
        let fields = trimmed.split_whitespace().count();
        if !trimmed.starts_with('@') && fields != 5 {
            return Err(if fields == 6 || fields == 7 {
                format!(
                    "cron expression {expr:?} has {fields} fields; pivotwatch uses standard 5-field crontab \
                     (minute hour day-of-month month day-of-week), without seconds or years: drop the first field"
                )
            } else {
                format!(
                    "cron expression {expr:?} has {fields} fields; expected 5 (minute hour day-of-month month day-of-week), e.g. \"0 */6 * * *\""
                )
            });
        }
        let mut cache = CRONS.lock().unwrap_or_else(|e| e.into_inner());
        let cache = cache.get_or_insert_with(Default::default);
        let cron = match cache.get(trimmed) {
            Some(c) => c.clone(),
            None => {
                let parser = CronParser::builder().seconds(Seconds::Disallowed).build();
                let c = std::sync::Arc::new(
                    parser
                        .parse(trimmed)
                        .map_err(|e| format!("invalid cron expression {expr:?}: {e}"))?,
                );
                cache.insert(trimmed.to_string(), c.clone());
                c
            }
        };
        Ok(Schedule {
            expr: trimmed.to_string(),
            cron,
        })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.expr
    }

    /// The next due time strictly after `after`, evaluated in `tz`.
    pub fn next_after<Tz: TimeZone>(&self, after: &DateTime<Tz>) -> Option<DateTime<Utc>>
    where
        Tz::Offset: Copy,
        DateTime<Tz>: croner::CronDateTime,
    {
        self.cron
            .find_next_occurrence(after, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, Timelike, Weekday};

    #[test]
    fn five_fields_accepted_six_rejected_with_hint() {
        assert!(Schedule::parse("0 */6 * * *").is_ok());
        assert!(Schedule::parse("30 9 * * Mon-Fri").is_ok());
        let e = Schedule::parse("0 30 9 * * Mon-Fri").unwrap_err();
        assert!(e.contains("6 fields"), "{e}");
        assert!(e.contains("drop the first field"), "{e}");
        assert!(Schedule::parse("61 * * * *").is_err());
        assert!(Schedule::parse("* * *").is_err());
    }

    #[test]
    fn weekdays_follow_crontab_numbering() {
        let s = Schedule::parse("0 9 * * 1-5").unwrap();
        // 2026-11-28 is a Saturday; the next slot is Monday 30th at 09:00.
        let sat = chrono_tz::Europe::Berlin
            .with_ymd_and_hms(2026, 11, 28, 12, 0, 0)
            .unwrap();
        let next = s
            .next_after(&sat)
            .unwrap()
            .with_timezone(&chrono_tz::Europe::Berlin);
        assert_eq!(next.weekday(), Weekday::Mon);
        assert_eq!((next.day(), next.hour()), (30, 9));
        let sun = Schedule::parse("0 9 * * 0").unwrap();
        let seven = Schedule::parse("0 9 * * 7").unwrap();
        assert_eq!(sun.next_after(&sat), seven.next_after(&sat));
    }
}
