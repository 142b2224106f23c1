//! The entity profile: declared activity (watchlist), registered activity
//! (latest registry records) and catalogue composition (latest catalogues,
//! every item classified).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::classify::{ActivityMatch, ItemClass, ItemVerdict, Reference, Sector, Tier};
use crate::model::{Entity, Source, SourceKind};
use crate::record::{EvidenceItem, FieldValue, Item, Snapshot};

/// Whether a registry field holds the firm's activity (by its name).
pub fn is_activity_field(name: &str) -> bool {
    let n = name.to_lowercase();
    [
        "activ", "sic", "nace", "naf", "isic", "nma", "objet", "business", "industry", "sector",
    ]
    .iter()
    .any(|k| n.contains(k))
}

/// One catalogue item with its classification.
#[derive(Debug, Clone, Serialize)]
pub struct ClassifiedItem {
    /// `entity/source`.
    pub source: String,
    /// The item as extracted.
    pub item: Item,
    /// What the classifier made of it.
    pub class: ItemClass,
}

impl ClassifiedItem {
    /// The one verdict on this item ([`ItemClass::verdict`]).
    pub fn verdict(&self, min_confidence: f32) -> ItemVerdict {
        self.class.verdict(min_confidence)
    }

    /// As evidence, at the default confidence.
    pub fn evidence(&self) -> EvidenceItem {
        self.evidence_at(super::DEFAULT_MIN_CONFIDENCE)
    }

    /// As evidence: the manufacturer and tier are those of the verdict at
    /// `min_confidence` (a maker not sure enough is not named).
    pub fn evidence_at(&self, min_confidence: f32) -> EvidenceItem {
        let v = self.verdict(min_confidence);
        EvidenceItem {
            source: self.source.clone(),
            key: self.item.key.clone(),
            part_number: self.item.part_number.clone(),
            name: self.item.name.clone(),
            brand: self.item.manufacturer.clone(),
            manufacturer: v.maker,
            country: v.country,
            family: self
                .class
                .family_label
                .clone()
                .or_else(|| self.class.family.clone()),
            hs_code: self.class.hs_code.clone(),
            tier: v.tier.map(|t| t.as_str().to_string()),
            confidence: self.class.confidence,
        }
    }
}

/// Classifies one item.
pub fn classify(reference: &Reference, source: &str, item: &Item) -> ClassifiedItem {
    let extra: Vec<&str> = item.extra.values().map(String::as_str).collect();
    ClassifiedItem {
        source: source.to_string(),
        item: item.clone(),
        class: reference.classify_item(
            item.name.as_deref(),
            item.manufacturer.as_deref(),
            item.part_number.as_deref(),
            &extra,
        ),
    }
}

/// What is known about an entity now.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Profile {
    /// Activity classes from the watchlist's `activity` codes.
    pub declared: Vec<ActivityMatch>,
    /// Activity classes read from the latest registry records.
    pub registered: Vec<ActivityMatch>,
    /// The activity texts of those records, as shown.
    pub registered_text: Vec<String>,
    /// Every catalogue item, classified.
    pub items: Vec<ClassifiedItem>,
}

impl Profile {
    /// Builds the profile from the latest snapshot of each source.
    pub fn build(
        reference: &Reference,
        entity: &Entity,
        latest: &[(&Source, &Snapshot)],
    ) -> Profile {
        let mut p = Profile::default();
        for code in &entity.activity {
            p.declared.extend(first_matches(reference, code));
        }
        for (source, snap) in latest {
            if source.kind == SourceKind::Registry {
                for (name, value) in &snap.record.fields {
                    if !is_activity_field(name) {
                        continue;
                    }
                    let values = match value {
                        FieldValue::Text(t) => vec![t.clone()],
                        FieldValue::List(l) => l.clone(),
                    };
                    for v in values {
                        p.registered.extend(first_matches(reference, &v));
                        p.registered_text.push(v);
                    }
                }
            }
            if source.kind == SourceKind::Catalogue || !snap.record.items.is_empty() {
                let key = source.key();
                for item in snap.record.items.values() {
                    p.items.push(classify(reference, &key, item));
                }
            }
        }
        dedup(&mut p.declared);
        dedup(&mut p.registered);
        p
    }

    /// Sectors of the declared and registered activity.
    pub fn sectors(&self) -> BTreeSet<Sector> {
        self.declared
            .iter()
            .chain(&self.registered)
            .map(|m| m.sector)
            .collect()
    }

    /// Whether the firm is declared or registered as an electronics trader or maker.
    pub fn is_electronics(&self) -> bool {
        self.sectors().iter().any(|s| s.is_electronics())
    }

    /// Controlled items: CHPL goods by [`ItemClass::verdict`] at `min_confidence`,
    /// whoever made them.
    pub fn controlled(&self, min_confidence: f32) -> Vec<&ClassifiedItem> {
        self.items
            .iter()
            .filter(|i| i.verdict(min_confidence).controlled)
            .collect()
    }

    /// "wholesale of waste and scrap (NACE 46.77)" for the activity that
    /// best describes the firm (non-electronics first), or `None`.
    pub fn describe_activity(&self) -> Option<String> {
        let all: Vec<&ActivityMatch> = self.registered.iter().chain(&self.declared).collect();
        let best = all
            .iter()
            .find(|m| m.sector == Sector::ScrapMetals)
            .or_else(|| all.iter().find(|m| !m.sector.is_electronics()))
            .or_else(|| all.first())?;
        Some(format!(
            "{} ({} {})",
            lower_first(&best.label),
            scheme_name(&best.scheme),
            best.code
        ))
    }

    /// Controlled items per CHPL tier, at the default confidence.
    pub fn by_tier(&self) -> BTreeMap<Tier, usize> {
        self.by_tier_at(super::DEFAULT_MIN_CONFIDENCE)
    }

    /// Controlled items per CHPL tier ([`ItemClass::verdict`] at `min_confidence`).
    pub fn by_tier_at(&self, min_confidence: f32) -> BTreeMap<Tier, usize> {
        let mut m = BTreeMap::new();
        for i in &self.items {
            if let Some(t) = i.verdict(min_confidence).tier {
                *m.entry(t).or_insert(0) += 1;
            }
        }
        m
    }

    /// Controlled items per attributed manufacturer, with its country, at the default
    /// confidence.
    pub fn by_manufacturer(&self) -> BTreeMap<String, (String, usize)> {
        self.by_manufacturer_at(super::DEFAULT_MIN_CONFIDENCE)
    }

    /// Controlled items per manufacturer they are attributed to ([`ItemClass::verdict`]
    /// at `min_confidence`), with its country: the counts a summary may state.
    pub fn by_manufacturer_at(&self, min_confidence: f32) -> BTreeMap<String, (String, usize)> {
        let mut m: BTreeMap<String, (String, usize)> = BTreeMap::new();
        for i in &self.items {
            let v = i.verdict(min_confidence);
            if let (true, Some(name)) = (v.controlled, v.maker) {
                let e = m
                    .entry(name)
                    .or_insert_with(|| (v.country.clone().unwrap_or_default(), 0));
                e.1 += 1;
            }
        }
        m
    }
}

/// The best matches of a code or label: an exact code beats label text.
fn first_matches(reference: &Reference, text: &str) -> Vec<ActivityMatch> {
    let mut v = reference.classify_activity(text);
    v.truncate(3);
    v
}

/// One match per class: the same class in several schemes (NACE 46.77,
/// UK SIC 46770 …) is shown once.
fn dedup(v: &mut Vec<ActivityMatch>) {
    let mut seen = BTreeSet::new();
    v.retain(|m| seen.insert((m.sector, m.label.to_lowercase())));
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) if c.clone().next().is_some_and(|n| n.is_lowercase()) => {
            f.to_lowercase().chain(c).collect()
        }
        Some(f) => std::iter::once(f).chain(c).collect(),
        None => String::new(),
    }
}

/// Display name of a scheme id.
pub fn scheme_name(scheme: &str) -> &str {
    match scheme {
        "NACE21" => "NACE Rev.2.1",
        "NACE11" => "NACE Rev.1.1",
        "SIC" => "UK SIC",
        other => other,
    }
}
