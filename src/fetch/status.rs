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
    "px-captcha",
    "perimeterx",
    "please complete the security check",
    "ddos-guard",
    "проверка браузера",
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

/// Why a page that the selectors could not read is not the catalogue: a bot challenge, a
/// geo-block, a login wall, an empty result, a JavaScript shell with no content or an
/// empty body. Phrases are matched case-insensitively in English, Russian, French and
/// German over the first 256 KiB; bot markers follow [`looks_blocked`]'s size rule.
///
/// Meant for pages on which extraction already failed (no selector matched), so none of
/// them can be read as a catalogue whose items were removed.
pub fn block_reason(text: &str) -> Option<&'static str> {
    if text.trim().is_empty() {
        return Some("an empty body");
    }
    if looks_blocked(text) {
        return Some("a bot challenge");
    }
    let hay = lowercase_prefix(text);
    let hay = hay.as_str();
    let lower = |m: &&str| hay.contains(&m.to_lowercase());
    if GEO_MARKERS.iter().any(lower) {
        return Some("a geo-block (the site serves only some countries)");
    }
    if LOGIN_MARKERS.iter().any(lower) {
        return Some("a login wall");
    }
    if EMPTY_MARKERS.iter().any(lower) {
        return Some("an empty result page");
    }
    if is_js_shell(text, hay) {
        return Some("a JavaScript shell with no content");
    }
    None
}

/// Geo-blocks (EN, RU, FR, DE).
const GEO_MARKERS: &[&str] = &[
    "russian ip address is required",
    "only available in russia",
    "not available in your country",
    "not available in your region",
    "is not available in your location",
    "access from your country",
    "your country is blocked",
    "unavailable in your country",
    "требуется российский ip",
    "российский ip-адрес",
    "доступен только из россии",
    "доступ из вашей страны",
    "недоступен в вашей стране",
    "недоступен в вашем регионе",
    "доступ ограничен для вашего региона",
    "n'est pas disponible dans votre pays",
    "pas disponible dans votre région",
    "accès depuis votre pays",
    "in ihrem land nicht verfügbar",
    "in ihrer region nicht verfügbar",
    "aus ihrem land nicht",
];

/// Login walls (EN, RU, FR, DE).
const LOGIN_MARKERS: &[&str] = &[
    "log in to see",
    "login to see",
    "sign in to see",
    "sign in to view",
    "log in to view",
    "please log in to continue",
    "login required",
    "войдите, чтобы",
    "войдите, чтобы увидеть",
    "авторизуйтесь, чтобы",
    "для просмотра необходимо авторизоваться",
    "войдите в личный кабинет",
    "connectez-vous pour voir",
    "connectez-vous pour accéder",
    "veuillez vous connecter",
    "bitte melden sie sich an",
    "anmelden, um",
    "einloggen, um",
];

/// Empty results (EN, RU, FR, DE).
const EMPTY_MARKERS: &[&str] = &[
    "no results found",
    "no products found",
    "your search returned no results",
    "0 results for",
    "nothing found",
    "по вашему запросу ничего не найдено",
    "ничего не найдено",
    "товары не найдены",
    "aucun résultat",
    "aucun produit ne correspond",
    "keine ergebnisse",
    "keine treffer",
    "keine produkte gefunden",
];

/// A page that is scripts and an empty mount point: almost no visible text outside
/// `<script>`/`<style>`, and a script or a "please enable JavaScript" notice.
fn is_js_shell(text: &str, hay: &str) -> bool {
    const NOTICES: &[&str] = &[
        "enable javascript",
        "javascript is required",
        "javascript is disabled",
        "включите javascript",
        "активируйте javascript",
        "activez javascript",
        "activer javascript",
        "javascript aktivieren",
        "aktivieren sie javascript",
    ];
    if !hay.contains("<script") {
        return false;
    }
    if NOTICES.iter().any(|n| hay.contains(n)) {
        return true;
    }
    visible_chars(text) < 200
}

/// Characters of text outside tags, `<script>` and `<style>` (a rough count, enough to
/// tell an empty shell from a page).
fn visible_chars(text: &str) -> usize {
    let lower = lowercase_prefix(text);
    let mut n = 0;
    let mut rest = lower.as_str();
    while let Some(lt) = rest.find('<') {
        n += rest[..lt].chars().filter(|c| !c.is_whitespace()).count();
        let after = &rest[lt..];
        let skip_to = if after.starts_with("<script") {
            after.find("</script").map(|i| i + 8)
        } else if after.starts_with("<style") {
            after.find("</style").map(|i| i + 7)
        } else {
            after.find('>').map(|i| i + 1)
        };
        match skip_to {
            Some(i) => rest = &after[i..],
            None => return n,
        }
    }
    n + rest.chars().filter(|c| !c.is_whitespace()).count()
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
    text[..end].to_lowercase()
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
