//! Companies House's streaming API: the streams, and the one thing read
//! from each event (its company number and timepoint). An event is one
//! JSON object per line; blank lines are heartbeats. Events of companies
//! no watchlist has are dropped after this cheap read: `data` is skipped
//! unparsed.

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// The streams followed: (name, path under `stream_url`).
pub const STREAMS: &[(&str, &str)] = &[
    ("companies", "companies"),
    ("officers", "officers"),
    (
        "persons-with-significant-control",
        "persons-with-significant-control",
    ),
    ("filing-history", "filings"),
];

/// What an event says, as far as `run` cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The company the resource belongs to (`/company/{n}/…`).
    pub company: Option<String>,
    /// Its position in the stream.
    pub timepoint: u64,
    /// When Companies House published it.
    pub published_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(borrow, default)]
    resource_uri: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    resource_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    resource_kind: Option<std::borrow::Cow<'a, str>>,
    event: RawEvent,
}

#[derive(Deserialize)]
struct RawEvent {
    timepoint: u64,
    #[serde(default)]
    published_at: Option<String>,
}

/// `01234567` of `/company/01234567/officers/…`.
pub fn company_of(uri: &str) -> Option<&str> {
    let rest = uri.strip_prefix("/company/")?;
    let n = rest.split(['/', '?']).next()?;
    (!n.is_empty()).then_some(n)
}

/// One line of a stream: `None` for a heartbeat (blank) or a line that
/// is not an event (logged by the caller).
pub fn parse_event(line: &[u8]) -> Option<Result<Event, serde_json::Error>> {
    let trimmed = line.trim_ascii();
    if trimmed.is_empty() {
        return None;
    }
    Some(serde_json::from_slice::<Raw<'_>>(trimmed).map(|r| {
        let company = r
            .resource_uri
            .as_deref()
            .and_then(company_of)
            .map(str::to_string)
            .or_else(|| {
                // A company-profile event names the company itself.
                match r.resource_kind.as_deref() {
                    Some(k) if k.starts_with("company-profile") => {
                        r.resource_id.as_deref().map(str::to_string)
                    }
                    _ => None,
                }
            });
        Event {
            company: company.map(|c| c.to_ascii_uppercase()),
            timepoint: r.event.timepoint,
            published_at: r.event.published_at.as_deref().and_then(|p| {
                DateTime::parse_from_rfc3339(p)
                    .ok()
                    .map(|d| d.with_timezone(&Utc))
            }),
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_name_their_company_and_timepoint() {
        let e = br#"{"resource_kind":"company-officers","resource_uri":"/company/01234567/appointments/abc","resource_id":"abc","data":{"name":"X","links":{}},"event":{"timepoint":42,"published_at":"2026-11-20T10:00:00Z","type":"changed"}}"#;
        let ev = parse_event(e).unwrap().unwrap();
        assert_eq!(ev.company.as_deref(), Some("01234567"));
        assert_eq!(ev.timepoint, 42);
        assert!(ev.published_at.is_some());
        let p = br#"{"resource_kind":"company-profile","resource_id":"sc123456","data":{},"event":{"timepoint":7}}"#;
        assert_eq!(
            parse_event(p).unwrap().unwrap().company.as_deref(),
            Some("SC123456")
        );
        assert!(parse_event(b"\n").is_none());
        assert!(parse_event(b"{not json").unwrap().is_err());
    }
}
