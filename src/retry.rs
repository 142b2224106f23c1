//! The one retry policy: after the n-th transient failure in a row, wait
//! 1 min, 2, 4 … capped at 1 h. The daemon's early retries of a source
//! (`daemon::plan`) use it as is; alert delivery (`alert`) spreads it by
//! ±20 % so that mails refused together are not retried together.
//!
//! **Architecture Invariant:** pure; the random draw is passed in.

use std::time::Duration;

/// First retry delay after a transient failure; doubled per failure.
pub const RETRY_FIRST: Duration = Duration::from_secs(60);
/// Longest retry delay.
pub const RETRY_MAX: Duration = Duration::from_secs(3600);
/// How far [`jittered`] spreads a delay either way (a fraction of it).
pub const JITTER: f64 = 0.2;

/// The delay after the `failures`-th failure in a row (1-based; 0 is
/// taken as 1): [`RETRY_FIRST`] doubled per failure, at most
/// [`RETRY_MAX`].
pub fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    RETRY_FIRST.saturating_mul(1u32 << exp).min(RETRY_MAX)
}

/// First reconnect delay of a streaming connection after a failure.
pub const STREAM_FIRST: Duration = Duration::from_secs(1);
/// Longest reconnect delay of a streaming connection.
pub const STREAM_MAX: Duration = Duration::from_secs(300);

/// The reconnect delay of a long-lived stream (Companies House) after its
/// `failures`-th failure in a row: none after a clean end (0 failures),
/// then [`STREAM_FIRST`] doubled per failure, at most [`STREAM_MAX`].
pub fn stream_backoff(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let exp = (failures - 1).min(16);
    STREAM_FIRST.saturating_mul(1u32 << exp).min(STREAM_MAX)
}

/// [`backoff`] spread by ±[`JITTER`], still at most [`RETRY_MAX`];
/// `draw` is a random number in `[0, 1)`.
pub fn jittered(failures: u32, draw: f64) -> Duration {
    let factor = 1.0 - JITTER + 2.0 * JITTER * draw.clamp(0.0, 1.0);
    backoff(failures).mul_f64(factor).min(RETRY_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_one_minute_up_to_an_hour() {
        let mins: Vec<u64> = (0..9).map(|n| backoff(n).as_secs() / 60).collect();
        assert_eq!(mins, [1, 1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(backoff(u32::MAX), RETRY_MAX);
    }

    #[test]
    fn streams_reconnect_at_once_then_back_off_to_five_minutes() {
        let secs: Vec<u64> = (0..11).map(|n| stream_backoff(n).as_secs()).collect();
        assert_eq!(secs, [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
    }

    #[test]
    fn jitter_spreads_by_a_fifth_and_never_past_the_cap() {
        assert_eq!(jittered(1, 0.0), Duration::from_secs(48));
        assert_eq!(jittered(1, 0.5), Duration::from_secs(60));
        assert_eq!(jittered(1, 1.0), Duration::from_secs(72));
        assert_eq!(jittered(30, 1.0), RETRY_MAX);
        assert_eq!(jittered(30, 0.0), RETRY_MAX.mul_f64(0.8));
    }
}
