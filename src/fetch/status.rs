//! Reading what a refusing server says: block pages and `Retry-After`.
//!
//! **Boundary:** pure functions; no I/O.

use std::time::{Duration, SystemTime};

use chrono::DateTime;

/// Markers specific enough to flag a page of any size.
const STRONG_MARKERS: &[&str] = &[
    "cf-chl",
    "_cf_chl_opt",
    "challenge-platform",
    "cf-browser-verification",
    "attention required! | cloudflare",
    "are you a robot",
    "checking your browser before accessing",
    "captcha-delivery.com",
    "_incapsula_resource",
];

/// Markers that also occur on ordinary pages (a contact form with a
/// reCAPTCHA, an article about DDoS protection). [`looks_blocked`] counts
/// them only on short pages; a refusing status counts them on any page.
const WEAK_MARKERS: &[&str] = &[
    "captcha",
    "access denied",
    "attention required",
    "unusual traffic",
    "ddos protection",
    "just a moment...",
    "request unsuccessful",
];

/// Block and challenge pages are small; weak markers count up to this size.
const SHORT_PAGE: usize = 32 * 1024;

/// Only the start of a page is scanned; markers sit in the head or near it.
const SCAN_LIMIT: usize = 256 * 1024;

/// Returns `true` when `text` looks like a block page or bot challenge
/// (Cloudflare, Akamai, DataDome, Imperva or a plain CAPTCHA wall) rather
/// than the page that was asked for.
///
/// Meant for 200 responses, where a false alarm is costly: challenge-specific
/// markers (`cf-chl`, `challenge-platform`, "are you a robot", …) count on any
/// page, generic ones ("captcha", "Access denied", "unusual traffic",
/// "DDoS protection", …) only on pages under 32 KiB. Matching is
/// case-insensitive over the first 256 KiB.
pub fn looks_blocked(text: &str) -> bool {
    let hay = lowercase_prefix(text);
    contains_any(&hay, STRONG_MARKERS)
        || (text.len() <= SHORT_PAGE && contains_any(&hay, WEAK_MARKERS))
}

/// Like [`looks_blocked`] but counts every marker regardless of page size;
/// used when the status (401/403/429/503) already says "refused".
pub(crate) fn has_block_marker(text: &str) -> bool {
    let hay = lowercase_prefix(text);
    contains_any(&hay, STRONG_MARKERS) || contains_any(&hay, WEAK_MARKERS)
}

fn lowercase_prefix(text: &str) -> String {
    let mut end = text.len().min(SCAN_LIMIT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_ascii_lowercase()
}

fn contains_any(hay: &str, markers: &[&str]) -> bool {
    markers.iter().any(|m| hay.contains(m))
}

/// Parses a `Retry-After` header value: delay-seconds (`120`) or an
/// HTTP-date (`Wed, 21 Oct 2015 07:28:00 GMT`, also the obsolete RFC 850
/// and asctime forms), relative to `now`.
///
/// A date in the past gives `Duration::ZERO`; anything unparseable gives
/// `None`. The value is not capped here; the scheduler decides how long it
/// is willing to wait.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits but too large for u64: treat as "very long".
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let when = parse_http_date(value)?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

fn parse_http_date(value: &str) -> Option<SystemTime> {
    // RFC 9110's three forms (IMF-fixdate, RFC 850, asctime) via httpdate;
    // other RFC 2822 dates (numeric zones) as some servers send them.
    httpdate::parse_http_date(value)
        .ok()
        .or_else(|| DateTime::parse_from_rfc2822(value).ok().map(Into::into))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_prefix_respects_char_boundaries() {
        let text = format!("{}é captcha", "a".repeat(SCAN_LIMIT - 1));
        // Must not panic on the 2-byte 'é' straddling the limit.
        assert_eq!(lowercase_prefix(&text).len(), SCAN_LIMIT - 1);
    }
}
