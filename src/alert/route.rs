//! Routing: which subscribers get a finding, and the configured
//! subscriber by name. Pure: knows nothing of mail, transports or the
//! store, so the check pipeline (`check`) depends on this and nothing else
//! of `alert`.
//!
//! **Architecture Invariant:** decides *who* gets a finding, never its
//! severity; imports no mail code.

use std::borrow::Cow;

use crate::config::{DeliveryMode, Entity, Settings, Subscriber};
use crate::record::Finding;

/// Name of the built-in subscriber used when no `[[subscriber]]` is set:
/// every finding goes to the `[email] from` address.
pub const DEFAULT_SUBSCRIBER: &str = "default";

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

/// A configured subscriber by name; [`DEFAULT_SUBSCRIBER`] is the
/// `[email] from` address, immediate, every severity.
pub fn subscriber<'a>(settings: &'a Settings, name: &str) -> Option<Cow<'a, Subscriber>> {
    if let Some(s) = settings.subscribers.iter().find(|s| s.name == name) {
        return Some(Cow::Borrowed(s));
    }
    (name == DEFAULT_SUBSCRIBER).then(|| {
        Cow::Owned(Subscriber {
            name: DEFAULT_SUBSCRIBER.to_string(),
            to: vec![settings.email.from.clone()],
            watchlists: vec![],
            tags: vec![],
            min_severity: crate::record::Severity::Info,
            rules: vec![],
            exclude_rules: vec![],
            mode: DeliveryMode::Immediate,
            digest_schedule: None,
            timezone: chrono_tz::UTC,
        })
    })
}
