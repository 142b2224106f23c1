//! Rules: changes (and, with the reference data, the entity's profile) →
//! [`Finding`]s with a severity, a one-sentence summary and evidence.
//!
//! **Architecture Invariant:** pure; no I/O. The caller supplies what was
//! already raised (dedup keys) and persists what comes out.

use chrono::Utc;

use crate::config::{Entity, Source, SourceKind};
use crate::record::{Change, Evidence, Finding, Severity, Snapshot};

/// Everything a rule may look at for one check.
#[derive(Debug)]
pub struct Input<'a> {
    /// The entity checked.
    pub entity: &'a Entity,
    /// The source checked.
    pub source: &'a Source,
    /// The previous snapshot, if any.
    pub previous: Option<&'a Snapshot>,
    /// The new snapshot (its id is not known before commit).
    pub current: &'a Snapshot,
    /// `diff(previous, current)`; empty on a first observation.
    pub changes: &'a [Change],
}

/// The built-in rule ids of the minimal rule set.
pub mod rules {
    /// Catalogue rows appeared.
    pub const ITEMS_ADDED: &str = "items_added";
    /// A field of a registry record or page changed.
    pub const FIELD_CHANGED: &str = "field_changed";
}

/// Runs every rule. Findings whose dedup key `already_raised` returns true
/// for are dropped (no alert storms).
pub fn detect(input: &Input<'_>, already_raised: &dyn Fn(&str) -> bool) -> Vec<Finding> {
    let mut out = Vec::new();
    if input.previous.is_some() {
        items_added(input, &mut out);
        field_changed(input, &mut out);
    }
    out.retain(|f| !already_raised(&f.dedup_key));
    out
}

fn finding(
    input: &Input<'_>,
    rule: &str,
    severity: Severity,
    summary: String,
    changes: Vec<Change>,
    key_material: &str,
) -> Finding {
    let explanation = String::new();
    Finding {
        id: 0,
        entity: input.entity.id.clone(),
        source: input.source.id.clone(),
        watchlist: input.entity.watchlist.clone(),
        rule: rule.to_string(),
        severity,
        summary,
        explanation,
        evidence: Evidence {
            url: input.current.url.clone(),
            snapshot: None,
            previous_snapshot: input.previous.map(|p| p.id),
            changes,
            facts: Default::default(),
        },
        dedup_key: format!(
            "{rule}:{}:{}",
            input.source.key(),
            &blake3::hash(key_material.as_bytes()).to_hex()[..16]
        ),
        created_at: Utc::now(),
    }
}

/// Lists up to `n` labels, then "and K more".
pub fn list_some(labels: &[String], n: usize) -> String {
    let shown: Vec<&str> = labels.iter().take(n).map(String::as_str).collect();
    let mut s = shown.join(", ");
    if labels.len() > n {
        s.push_str(&format!(" and {} more", labels.len() - n));
    }
    s
}

fn items_added(input: &Input<'_>, out: &mut Vec<Finding>) {
    let added: Vec<Change> = input
        .changes
        .iter()
        .filter(|c| matches!(c, Change::ItemAdded { .. }))
        .cloned()
        .collect();
    if added.is_empty() {
        return;
    }
    let labels: Vec<String> = added
        .iter()
        .filter_map(|c| match c {
            Change::ItemAdded { new, .. } => {
                let id = new
                    .part_number
                    .clone()
                    .or_else(|| new.name.clone())
                    .unwrap_or_else(|| new.key.clone());
                Some(match &new.manufacturer {
                    Some(m) => format!("{id} ({m})"),
                    None => id,
                })
            }
            _ => None,
        })
        .collect();
    let keys: Vec<String> = added
        .iter()
        .filter_map(|c| match c {
            Change::ItemAdded { item, .. } => Some(item.clone()),
            _ => None,
        })
        .collect();
    let n = added.len();
    let summary = format!(
        "{}'s {} now lists {n} new item{}: {}",
        input.entity.name,
        source_label(input.source),
        if n == 1 { "" } else { "s" },
        list_some(&labels, 5)
    );
    out.push(finding(
        input,
        rules::ITEMS_ADDED,
        Severity::Low,
        summary,
        added,
        &keys.join("\n"),
    ));
}

fn field_changed(input: &Input<'_>, out: &mut Vec<Finding>) {
    let mut by_field: std::collections::BTreeMap<&str, Vec<Change>> = Default::default();
    for c in input.changes {
        let f = match c {
            Change::FieldChanged { field, .. }
            | Change::ValueAdded { field, .. }
            | Change::ValueRemoved { field, .. } => field.as_str(),
            _ => continue,
        };
        by_field.entry(f).or_default().push(c.clone());
    }
    for (field, changes) in by_field {
        let what = changes
            .iter()
            .map(|c| match c {
                Change::FieldChanged { old, new, .. } => format!(
                    "changed from {} to {}",
                    quote(old.as_deref()),
                    quote(new.as_deref())
                ),
                Change::ValueAdded { new, .. } => format!("gained {}", quote(Some(new))),
                Change::ValueRemoved { old, .. } => format!("lost {}", quote(Some(old))),
                _ => String::new(),
            })
            .collect::<Vec<_>>()
            .join("; ");
        let summary = format!(
            "{}'s {}: {field} {what}",
            input.entity.name,
            source_label(input.source)
        );
        let material = format!(
            "{field}\n{}",
            serde_json::to_string(&changes).unwrap_or_default()
        );
        out.push(finding(
            input,
            rules::FIELD_CHANGED,
            Severity::Low,
            summary,
            changes,
            &material,
        ));
    }
}

fn quote(s: Option<&str>) -> String {
    match s {
        Some(s) => format!("\"{}\"", truncate(s, 120)),
        None => "(nothing)".to_string(),
    }
}

/// Shortens a text to at most `max` characters, with an ellipsis.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// "catalogue", or "catalogue (shop-fr)" when the source id says more.
pub fn source_label(source: &Source) -> String {
    let noun = kind_noun(source.kind);
    if noun.starts_with(source.id.as_str()) {
        noun.to_string()
    } else {
        format!("{noun} ({})", source.id)
    }
}

/// "registry record", "catalogue", "page".
pub fn kind_noun(kind: SourceKind) -> &'static str {
    match kind {
        SourceKind::Registry => "registry record",
        SourceKind::Catalogue => "catalogue",
        SourceKind::Page => "page",
    }
}
