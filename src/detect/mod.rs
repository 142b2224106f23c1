//! Rules: a check's changes and the entity's profile → [`Finding`]s with a
//! severity, a one-sentence summary a human can check, evidence and a
//! dedup key.
//!
//! **Architecture Invariant:** pure; no I/O. The caller supplies the
//! reference data, the profile and a way to ask which keys were already
//! raised, and persists what comes out. Severity is decided here and only
//! here.
//!
//! Every rule yields a [`Verdict`] (fires or not, and why), and
//! [`assess`] is the one entry point, called by `check` and by `explain`:
//! the explanation is the reasoning that produced the alerts. The time of
//! the check is an argument ([`Scope::now`]); nothing here reads the clock.

pub mod context;
mod profile;
pub mod registry;
mod rules;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use profile::{ClassifiedItem, Profile, classify, is_activity_field, scheme_name};

use crate::classify::Reference;
use crate::model::{Entity, Source, SourceKind};
use crate::record::{Change, Evidence, Finding, Severity, Snapshot};

/// Built-in rule ids.
pub mod ids {
    /// The firm's activity does not fit the controlled goods it lists.
    pub const PROFILE_MISMATCH: &str = "profile_mismatch";
    /// A catalogue diff adds controlled items.
    pub const CONTROLLED_GOODS: &str = "controlled_goods";
    /// The registered activity changed.
    pub const ACTIVITY_CHANGED: &str = "activity_changed";
    /// Officers, name, address, status or capital changed.
    pub const REGISTRY_CHANGE: &str = "registry_change";
    /// Catalogue rows appeared (not controlled goods).
    pub const ITEMS_ADDED: &str = "items_added";
    /// Any other field changed.
    pub const FIELD_CHANGED: &str = "field_changed";
}

/// Every built-in rule id, in evaluation order.
pub const BUILTIN_RULES: &[&str] = &[
    ids::PROFILE_MISMATCH,
    ids::CONTROLLED_GOODS,
    ids::ACTIVITY_CHANGED,
    ids::REGISTRY_CHANGE,
    ids::ITEMS_ADDED,
    ids::FIELD_CHANGED,
];

/// Per-watchlist switches and thresholds of a built-in rule (`[rules.ID]`).
#[derive(Debug, Clone, PartialEq)]
pub struct RuleOverride {
    /// `enabled`, default true.
    pub enabled: bool,
    /// `severity`: replaces the rule's computed severity.
    pub severity: Option<Severity>,
    /// `min_items`: controlled items needed (profile_mismatch, controlled_goods), default 1.
    pub min_items: Option<usize>,
    /// `min_confidence`: classification confidence needed, default 0.5.
    pub min_confidence: Option<f32>,
}

/// What a custom rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CustomTarget {
    /// Catalogue items (name, brand, part number, extra columns).
    Items,
    /// Record fields.
    Fields,
    /// Both.
    Any,
}

/// A watchlist's keyword/regex rule (`[[rule]]`).
#[derive(Debug, Clone)]
pub struct CustomRule {
    /// Rule id.
    pub id: String,
    /// Keywords and pattern, compiled case-insensitively.
    pub regex: regex::Regex,
    /// What it looks at.
    pub on: CustomTarget,
    /// Only these fields (empty: all).
    pub fields: Vec<String>,
    /// Severity of its findings.
    pub severity: Severity,
    /// What the rule is about, for summaries.
    pub description: Option<String>,
}

/// A watchlist's rule configuration.
#[derive(Debug, Clone, Default)]
pub struct RuleConfig {
    /// Overrides by built-in rule id.
    pub overrides: BTreeMap<String, RuleOverride>,
    /// Custom rules.
    pub custom: Vec<CustomRule>,
}

/// The confidence an item's family (controlled) and maker (attribution) need when the
/// watchlist does not set `min_confidence`.
pub const DEFAULT_MIN_CONFIDENCE: f32 = 0.5;

impl RuleConfig {
    /// The confidence `profile_mismatch` asks for: what `explain` and the status page call
    /// "controlled" and "attributed", so every count means what the finding means.
    pub fn profile_confidence(&self) -> f32 {
        self.min_confidence(ids::PROFILE_MISMATCH)
    }
    fn enabled(&self, id: &str) -> bool {
        self.overrides.get(id).is_none_or(|o| o.enabled)
    }
    fn min_items(&self, id: &str) -> usize {
        self.overrides
            .get(id)
            .and_then(|o| o.min_items)
            .unwrap_or(1)
            .max(1)
    }
    fn min_confidence(&self, id: &str) -> f32 {
        self.overrides
            .get(id)
            .and_then(|o| o.min_confidence)
            .unwrap_or(DEFAULT_MIN_CONFIDENCE)
    }
    fn severity(&self, id: &str, computed: Severity) -> Severity {
        self.overrides
            .get(id)
            .and_then(|o| o.severity)
            .unwrap_or(computed)
    }
}

/// What rules judge an entity by: the reference data, the watchlist's
/// rules, the entity, and the time of the check (the findings' creation
/// time; `detect` never reads the clock).
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// Reference data.
    pub reference: &'a Reference,
    /// The watchlist's rules.
    pub rules: &'a RuleConfig,
    /// The entity assessed.
    pub entity: &'a Entity,
    /// When the check happened.
    pub now: DateTime<Utc>,
}

/// One source's latest observation, on which every rule runs.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// The source.
    pub source: &'a Source,
    /// The snapshot before `current`, if any.
    pub previous: Option<&'a Snapshot>,
    /// The latest snapshot (a new one's id is not known before commit).
    pub current: &'a Snapshot,
    /// `diff(previous, current)`; empty on a first observation.
    pub changes: &'a [Change],
}

/// What [`assess`] concluded.
#[derive(Debug, Clone)]
pub struct Assessment {
    /// The entity's profile, from every observation and the other sources'
    /// latest snapshots.
    pub profile: Profile,
    /// Every rule's verdict on each observation, as (source id, verdict),
    /// in the order of the observations, then of the rules.
    pub verdicts: Vec<(String, Verdict)>,
    /// The findings to raise: those of the verdicts that are new (see
    /// [`assess`]).
    pub findings: Vec<Finding>,
}

/// Judges an entity: builds its profile from `observed` (first) and
/// `others` (the latest snapshots of sources not observed), runs every
/// rule on each observation, and keeps the findings that are new: a
/// finding whose dedup key was raised before is dropped, and one with
/// escalation keys is kept only when at least one of them is new.
///
/// One pivot, one alert: when a new profile mismatch is raised, it carries
/// the added controlled items too, so `controlled_goods` is not raised
/// beside it (per observation).
///
/// `check` calls it on the source it checked, `explain` on every source
/// with a snapshot: the explanation is the reasoning that produced the
/// alerts.
pub fn assess(
    scope: &Scope<'_>,
    observed: &[Observation<'_>],
    others: &[(&Source, &Snapshot)],
    already_raised: &dyn Fn(&str) -> bool,
) -> Assessment {
    let mut a = judge(scope, observed, others);
    a.findings = a.new_findings(already_raised);
    a
}

/// The first half of [`assess`]: the profile and every rule's verdict, with
/// no finding kept yet (`findings` is empty). For a caller that must look
/// the [`Assessment::candidate_keys`] up somewhere slow (the store, on the
/// blocking pool) before [`Assessment::new_findings`] decides.
pub fn judge(
    scope: &Scope<'_>,
    observed: &[Observation<'_>],
    others: &[(&Source, &Snapshot)],
) -> Assessment {
    let latest: Vec<(&Source, &Snapshot)> = observed
        .iter()
        .map(|o| (o.source, o.current))
        .chain(others.iter().copied())
        .collect();
    let profile = Profile::build(scope.reference, scope.entity, &latest);
    let mut verdicts = Vec::new();
    for o in observed {
        let input = Input {
            reference: scope.reference,
            rules: scope.rules,
            entity: scope.entity,
            source: o.source,
            previous: o.previous,
            current: o.current,
            changes: o.changes,
            profile: &profile,
            now: scope.now,
        };
        let mut these = evaluate(&input);
        // A whole-site source's mentions weigh by their context.
        if o.source.kind == SourceKind::Site {
            let key = o.source.key();
            for v in &mut these {
                if let Some(f) = v.finding.take() {
                    v.finding = context::weigh_findings(vec![f], &key, &o.current.record).pop();
                }
            }
        }
        verdicts.extend(these.into_iter().map(|v| (o.source.id.clone(), v)));
    }
    Assessment {
        profile,
        verdicts,
        findings: Vec::new(),
    }
}

impl Assessment {
    /// Every dedup and escalation key the verdicts' findings carry: what
    /// [`Assessment::new_findings`] may ask about.
    pub fn candidate_keys(&self) -> Vec<String> {
        self.verdicts
            .iter()
            .filter_map(|(_, v)| v.finding.as_ref())
            .flat_map(|f| std::iter::once(f.dedup_key.clone()).chain(f.escalation_keys.clone()))
            .collect()
    }

    /// The findings to raise: per observation, those whose dedup key was
    /// not raised before (and, with escalation keys, one of those is new);
    /// an entity-wide finding seen from several observations, once.
    pub fn new_findings(&self, already_raised: &dyn Fn(&str) -> bool) -> Vec<Finding> {
        let mut findings: Vec<Finding> = Vec::new();
        for group in self.verdicts.chunk_by(|a, b| a.0 == b.0) {
            let these: Vec<Verdict> = group.iter().map(|(_, v)| v.clone()).collect();
            for f in keep(&these, already_raised) {
                // An entity-wide rule fires as seen from every source: once.
                if !findings.iter().any(|k| k.dedup_key == f.dedup_key) {
                    findings.push(f);
                }
            }
        }
        findings
    }
}

/// Everything a rule may look at for one check.
#[derive(Debug)]
struct Input<'a> {
    reference: &'a Reference,
    rules: &'a RuleConfig,
    entity: &'a Entity,
    source: &'a Source,
    previous: Option<&'a Snapshot>,
    current: &'a Snapshot,
    changes: &'a [Change],
    /// The entity's profile with `current` in place.
    profile: &'a Profile,
    /// When the check happened.
    now: DateTime<Utc>,
}

/// One rule's conclusion on one check.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// Rule id.
    pub rule: String,
    /// Whether the rule is switched on.
    pub enabled: bool,
    /// Why it fires or not, in one sentence.
    pub reason: String,
    /// The finding, when it fires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding: Option<Finding>,
}

impl Verdict {
    fn fires(rule: &str, reason: impl Into<String>, finding: Finding) -> Verdict {
        Verdict {
            rule: rule.to_string(),
            enabled: true,
            reason: reason.into(),
            finding: Some(finding),
        }
    }

    fn quiet(rule: &str, reason: impl Into<String>) -> Verdict {
        Verdict {
            rule: rule.to_string(),
            enabled: true,
            reason: reason.into(),
            finding: None,
        }
    }
}

/// Evaluates every rule on a check.
fn evaluate(input: &Input<'_>) -> Vec<Verdict> {
    let mut out = vec![
        rules::profile_mismatch(input),
        rules::controlled_goods(input),
        rules::activity_changed(input),
        rules::registry_change(input),
        rules::items_added(input),
        rules::field_changed(input),
    ];
    for v in &mut out {
        if !input.rules.enabled(&v.rule) {
            v.enabled = false;
            v.finding = None;
            v.reason = format!(
                "switched off in the watchlist ([rules.{}] enabled = false)",
                v.rule
            );
        } else if let Some(f) = &mut v.finding {
            f.severity = input.rules.severity(&v.rule, f.severity);
        }
    }
    out.extend(rules::custom(input));
    out
}

/// The findings of `verdicts` that are new (see [`assess`]).
fn keep(verdicts: &[Verdict], already_raised: &dyn Fn(&str) -> bool) -> Vec<Finding> {
    let mut out: Vec<Finding> = verdicts
        .iter()
        .filter_map(|v| v.finding.clone())
        .filter(|f| {
            !already_raised(&f.dedup_key)
                && (f.escalation_keys.is_empty()
                    || f.escalation_keys.iter().any(|k| !already_raised(k)))
        })
        .collect();
    if out.iter().any(|f| f.rule == ids::PROFILE_MISMATCH) {
        out.retain(|f| f.rule != ids::CONTROLLED_GOODS);
    }
    out
}

/// A finding skeleton for the checked source.
fn finding(
    input: &Input<'_>,
    rule: &str,
    severity: Severity,
    summary: String,
    changes: Vec<Change>,
) -> Finding {
    Finding {
        id: 0,
        entity: input.entity.id.clone(),
        source: input.source.id.clone(),
        watchlist: input.entity.watchlist.clone(),
        rule: rule.to_string(),
        severity,
        summary,
        explanation: String::new(),
        evidence: Evidence {
            url: input.current.url.clone(),
            snapshot: None,
            previous_snapshot: input.previous.map(|p| p.id),
            changes,
            facts: Default::default(),
            items: Vec::new(),
        },
        dedup_key: String::new(),
        escalation_keys: Vec::new(),
        created_at: input.now,
    }
}

/// `rule:scope:hash(material)`.
fn key(rule: &str, scope: &str, material: &str) -> String {
    format!(
        "{rule}:{scope}:{}",
        &blake3::hash(material.as_bytes()).to_hex()[..16]
    )
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

/// "A", "A and B", "A, B and C".
pub fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [a] => a.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
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
        SourceKind::Site => "website",
    }
}
