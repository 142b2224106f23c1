//! The rules themselves. Each returns a [`Verdict`].

use std::collections::{BTreeMap, BTreeSet};

use super::{
    ClassifiedItem, Input, Verdict, and_list, classify, finding, ids, is_activity_field, key,
    list_some, registry, source_label, truncate,
};
use crate::classify::{Sector, Tier};
use crate::extract::fold;
use crate::model::SourceKind;
use crate::record::{Change, Severity};

fn quote(s: Option<&str>) -> String {
    match s {
        Some(s) => format!("\"{}\"", truncate(s, 120)),
        None => "(nothing)".to_string(),
    }
}

/// The controlled items of a finding as its summary states them: makers attributed by
/// the one verdict ([`crate::classify::ItemClass::verdict`]) with their item counts
/// (coalition makers first, most items first), second sources, items with no maker
/// named, tiers present, and the HS codes of the most severe tier.
struct Composition {
    count: usize,
    parts: Vec<String>,
    /// Coalition makers and their item counts.
    makers: Vec<(String, usize)>,
    /// Non-coalition makers (second sources) and their item counts.
    second: Vec<(String, usize)>,
    /// Items with no maker attributed.
    unnamed: usize,
    /// Every attributed maker (coalition first), for dedup and escalation keys.
    manufacturers: Vec<String>,
    tiers: BTreeSet<Tier>,
    top: Option<(Tier, usize, Vec<String>)>,
}

fn composition(items: &[&ClassifiedItem], min_conf: f32) -> Composition {
    let mut coal: BTreeMap<String, usize> = BTreeMap::new();
    let mut second: BTreeMap<String, usize> = BTreeMap::new();
    let mut unnamed = 0;
    let mut tiers = BTreeSet::new();
    let verdicts: Vec<_> = items.iter().map(|i| i.verdict(min_conf)).collect();
    for v in &verdicts {
        match (&v.maker, v.coalition_maker) {
            (Some(m), true) => *coal.entry(m.clone()).or_default() += 1,
            (Some(m), false) => *second.entry(m.clone()).or_default() += 1,
            (None, _) => unnamed += 1,
        }
        if let Some(t) = v.tier {
            tiers.insert(t);
        }
    }
    let sorted = |m: BTreeMap<String, usize>| {
        let mut v: Vec<(String, usize)> = m.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    };
    let makers = sorted(coal);
    let second = sorted(second);
    let top = tiers.iter().next().map(|t| {
        let in_tier: Vec<&&ClassifiedItem> = items
            .iter()
            .zip(&verdicts)
            .filter(|(_, v)| v.tier == Some(*t))
            .map(|(i, _)| i)
            .collect();
        let hs: BTreeSet<String> = in_tier
            .iter()
            .filter_map(|i| i.class.hs_code.clone())
            .collect();
        (*t, in_tier.len(), hs.into_iter().collect())
    });
    Composition {
        count: items.len(),
        parts: items
            .iter()
            .map(|i| {
                i.item
                    .part_number
                    .clone()
                    .or_else(|| i.item.name.clone())
                    .unwrap_or_else(|| i.item.key.clone())
            })
            .collect(),
        manufacturers: makers
            .iter()
            .chain(&second)
            .map(|(m, _)| m.clone())
            .collect(),
        makers,
        second,
        unnamed,
        tiers,
        top,
    }
}

/// "14 parts from Texas Instruments (9), Intel (3) and NXP Semiconductors (2), 9 of them
/// in CHPL Tier 1 (HS 8542.31)"; "19 parts: 4 from Vishay Intertechnology, 3 from second
/// sources (HGSEMI 2, UMW 1), 12 with no maker named, all in CHPL Tier 3.A". Every maker
/// named is one the items are attributed to, with the count of those items.
fn describe(c: &Composition) -> String {
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let named = |v: &[(String, usize)], counts: bool| -> String {
        let mut m: Vec<String> = v
            .iter()
            .map(|(n, k)| {
                if counts {
                    format!("{n} ({k})")
                } else {
                    n.clone()
                }
            })
            .collect();
        if m.len() > 4 {
            let rest: usize = v[3..].iter().map(|(_, k)| k).sum();
            m.truncate(3);
            m.push(format!("{} other makers ({rest})", v.len() - 3));
        }
        and_list(&m)
    };
    let mut s = format!("{} part{}", c.count, plural(c.count));
    let only_coalition = c.second.is_empty() && c.unnamed == 0;
    if only_coalition && !c.makers.is_empty() {
        s.push_str(&format!(" from {}", named(&c.makers, c.makers.len() > 1)));
    } else if !c.makers.is_empty() || !c.second.is_empty() {
        let mut bits = Vec::new();
        if !c.makers.is_empty() {
            let n: usize = c.makers.iter().map(|(_, k)| k).sum();
            bits.push(format!("{n} from {}", named(&c.makers, c.makers.len() > 1)));
        }
        if !c.second.is_empty() {
            let n: usize = c.second.iter().map(|(_, k)| k).sum();
            let list: Vec<String> = c.second.iter().map(|(m, k)| format!("{m} {k}")).collect();
            bits.push(format!(
                "{n} from second source{} ({})",
                plural(c.second.len()),
                list.join(", ")
            ));
        }
        if c.unnamed > 0 {
            bits.push(format!("{} with no maker named", c.unnamed));
        }
        s.push_str(&format!(": {}", bits.join(", ")));
    }
    if c.count <= 3 {
        s.push_str(&format!(" ({})", c.parts.join(", ")));
    }
    if let Some((t, n, hs)) = &c.top {
        let of = match (*n == c.count, c.count) {
            (true, 1) => String::new(),
            (true, _) => " all".to_string(),
            (false, _) => format!(" {n} of them"),
        };
        s.push_str(&format!(",{of} in CHPL {t}"));
        if !hs.is_empty() {
            s.push_str(&format!(" (HS {})", hs.join(", ")));
        }
    }
    s
}

/// A dedup key made of the source and the exact changes.
fn changes_key(input: &Input<'_>, rule: &str, changes: &[Change]) -> String {
    key(
        rule,
        &input.source.key(),
        &serde_json::to_string(changes).unwrap_or_default(),
    )
}

/// The `ItemAdded` changes of this check that added one of `items`.
fn additions_of(input: &Input<'_>, items: &[&ClassifiedItem]) -> Vec<Change> {
    let keys: BTreeSet<&str> = items.iter().map(|i| i.item.key.as_str()).collect();
    input
        .changes
        .iter()
        .filter(|ch| matches!(ch, Change::ItemAdded { item, .. } if keys.contains(item.as_str())))
        .cloned()
        .collect()
}

/// Controlled (the one verdict) at the confidence `controlled_goods` asks for.
fn controlled(input: &Input<'_>, item: &ClassifiedItem) -> bool {
    item.verdict(input.rules.min_confidence(ids::CONTROLLED_GOODS))
        .controlled
}

fn is_high_tier(t: &Tier) -> bool {
    matches!(t, Tier::T1 | Tier::T2)
}

fn sectors_text(sectors: &BTreeSet<Sector>) -> String {
    and_list(&sectors.iter().map(|s| s.to_string()).collect::<Vec<_>>())
}

pub(super) fn profile_mismatch(input: &Input<'_>) -> Verdict {
    let rule = ids::PROFILE_MISMATCH;
    let p = input.profile;
    let min_conf = input.rules.min_confidence(rule);
    let controlled = p.controlled(min_conf);
    let min = input.rules.min_items(rule);
    if controlled.len() < min {
        return Verdict::quiet(
            rule,
            format!(
                "the catalogue lists {} controlled item{} (CHPL goods); the rule needs {min}",
                controlled.len(),
                if controlled.len() == 1 { "" } else { "s" }
            ),
        );
    }
    let sectors = p.sectors();
    if sectors.is_empty() {
        return Verdict::quiet(
            rule,
            "no declared or registered activity is known for this entity (add `activity` codes to the watchlist or an activity field to its registry source)",
        );
    }
    if p.is_electronics() {
        return Verdict::quiet(
            rule,
            format!(
                "the entity is declared or registered for {}: listing electronics fits its profile",
                sectors_text(&sectors)
            ),
        );
    }
    let c = composition(&controlled, min_conf);
    let scrap = sectors.contains(&Sector::ScrapMetals);
    let high = c.tiers.iter().any(is_high_tier);
    let severity = match (scrap, high) {
        (true, true) => Severity::High,
        (true, false) | (false, true) => Severity::Medium,
        (false, false) => Severity::Low,
    };
    let activity = p
        .describe_activity()
        .unwrap_or_else(|| sectors_text(&sectors));
    let now = if input.previous.is_some() {
        "now lists"
    } else {
        "lists"
    };
    let summary = format!(
        "{} is registered for {activity} but its catalogue {now} {}",
        input.entity.name,
        describe(&c)
    );
    // Changes of this check that added controlled items, as evidence.
    let changes = additions_of(input, &controlled);
    let mut f = finding(input, rule, severity, summary, changes);
    f.evidence.items = controlled.iter().map(|i| i.evidence_at(min_conf)).collect();
    f.evidence.facts.insert(
        "activity (declared)".into(),
        p.declared
            .iter()
            .map(|m| format!("{}:{} {} [{}]", m.scheme, m.code, m.label, m.sector))
            .collect::<Vec<_>>()
            .join("; "),
    );
    if !p.registered_text.is_empty() {
        f.evidence
            .facts
            .insert("activity (registry)".into(), p.registered_text.join("; "));
    }
    f.evidence
        .facts
        .insert("sectors".into(), sectors_text(&sectors));
    f.explanation = format!(
        "The watchlist declares, or the registry shows, activity in {} and none in electronics trade or manufacture, yet {} controlled item(s) (CHPL goods) are listed. Each item was classified by brand column, text or part-number pattern against the reference data (CHPL tiers, manufacturers); a maker is named only where the brand, the text or the maker's own part-number prefix says so.",
        sectors_text(&sectors),
        controlled.len()
    );
    let scope = &input.entity.id;
    f.dedup_key = key(
        rule,
        scope,
        &format!("{severity}|{:?}|{:?}", c.tiers, c.manufacturers),
    );
    f.escalation_keys = c
        .tiers
        .iter()
        .map(|t| format!("{rule}:{scope}:tier:{}", t.as_str()))
        .chain(
            c.manufacturers
                .iter()
                .map(|m| format!("{rule}:{scope}:maker:{}", fold(m))),
        )
        .chain(std::iter::once(format!(
            "{rule}:{scope}:severity:{severity}"
        )))
        .collect();
    Verdict::fires(
        rule,
        format!(
            "fires: {} activity with {} controlled item(s)",
            sectors_text(&sectors),
            controlled.len()
        ),
        f,
    )
}

pub(super) fn controlled_goods(input: &Input<'_>) -> Verdict {
    let rule = ids::CONTROLLED_GOODS;
    if input.previous.is_none() {
        return Verdict::quiet(
            rule,
            "first observation of this source: nothing was added yet (profile_mismatch judges what is listed)",
        );
    }
    let min_conf = input.rules.min_confidence(rule);
    let src = input.source.key();
    let added: Vec<ClassifiedItem> = input
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::ItemAdded { new, .. } => Some(classify(input.reference, &src, new)),
            _ => None,
        })
        .filter(|i| i.verdict(min_conf).controlled)
        .collect();
    let min = input.rules.min_items(rule);
    if added.len() < min {
        return Verdict::quiet(
            rule,
            format!(
                "this check added {} controlled item(s); the rule needs {min}",
                added.len()
            ),
        );
    }
    let refs: Vec<&ClassifiedItem> = added.iter().collect();
    let c = composition(&refs, min_conf);
    let electronics = input.profile.is_electronics();
    let severity = if electronics {
        Severity::Low
    } else if c.tiers.iter().any(is_high_tier) {
        Severity::High
    } else {
        Severity::Medium
    };
    let before = input
        .previous
        .map(|p| {
            p.record
                .items
                .values()
                .filter(|i| {
                    classify(input.reference, &src, i)
                        .verdict(min_conf)
                        .controlled
                })
                .count()
        })
        .unwrap_or(0);
    let summary = format!(
        "{}'s {} added {} (it listed {before} controlled item{} before){}",
        input.entity.name,
        source_label(input.source),
        describe(&c),
        if before == 1 { "" } else { "s" },
        if electronics {
            "; the firm is an electronics trader, so this is routine"
        } else {
            ""
        }
    );
    let keys: BTreeSet<&str> = added.iter().map(|i| i.item.key.as_str()).collect();
    let changes = additions_of(input, &refs);
    let mut f = finding(input, rule, severity, summary, changes);
    f.evidence.items = added.iter().map(|i| i.evidence_at(min_conf)).collect();
    f.dedup_key = key(
        rule,
        &src,
        &keys.iter().copied().collect::<Vec<_>>().join("\n"),
    );
    f.escalation_keys = keys
        .iter()
        .map(|k| format!("{rule}:{src}:item:{k}"))
        .collect();
    Verdict::fires(
        rule,
        format!("fires: {} controlled item(s) added", added.len()),
        f,
    )
}

fn field_of(c: &Change) -> Option<&str> {
    match c {
        Change::FieldChanged { field, .. }
        | Change::ValueAdded { field, .. }
        | Change::ValueRemoved { field, .. } => Some(field),
        _ => None,
    }
}

fn sectors_of(input: &Input<'_>, text: Option<&str>) -> BTreeSet<Sector> {
    text.map(|t| {
        input
            .reference
            .classify_activity(t)
            .into_iter()
            .take(3)
            .map(|m| m.sector)
            .collect()
    })
    .unwrap_or_default()
}

pub(super) fn activity_changed(input: &Input<'_>) -> Verdict {
    let rule = ids::ACTIVITY_CHANGED;
    if input.source.kind != SourceKind::Registry {
        return Verdict::quiet(rule, "not a registry source");
    }
    let changes: Vec<Change> = input
        .changes
        .iter()
        .filter(|c| field_of(c).is_some_and(is_activity_field))
        .cloned()
        .collect();
    if changes.is_empty() {
        return Verdict::quiet(
            rule,
            if input.previous.is_none() {
                "first observation: nothing changed yet"
            } else {
                "no activity field changed"
            },
        );
    }
    let (mut old_s, mut new_s) = (BTreeSet::new(), BTreeSet::new());
    let mut parts = Vec::new();
    for c in &changes {
        match c {
            Change::FieldChanged { old, new, .. } => {
                old_s.extend(sectors_of(input, old.as_deref()));
                new_s.extend(sectors_of(input, new.as_deref()));
                parts.push(format!(
                    "from {} to {}",
                    quote(old.as_deref()),
                    quote(new.as_deref())
                ));
            }
            Change::ValueAdded { new, .. } => {
                new_s.extend(sectors_of(input, Some(new)));
                parts.push(format!("gained {}", quote(Some(new))));
            }
            Change::ValueRemoved { old, .. } => {
                old_s.extend(sectors_of(input, Some(old)));
                parts.push(format!("lost {}", quote(Some(old))));
            }
            _ => {}
        }
    }
    let gained: BTreeSet<Sector> = new_s.difference(&old_s).copied().collect();
    let severity = if gained
        .iter()
        .any(|s| s.is_electronics() || *s == Sector::DualUseMachinery)
    {
        if old_s.contains(&Sector::ScrapMetals) || old_s.is_empty() {
            Severity::High
        } else {
            Severity::Medium
        }
    } else if gained
        .iter()
        .any(|s| matches!(s, Sector::GenericTrading | Sector::Logistics))
    {
        Severity::Medium
    } else {
        Severity::Low
    };
    let sect = |s: &BTreeSet<Sector>| {
        if s.is_empty() {
            "unclassified".to_string()
        } else {
            sectors_text(s)
        }
    };
    let summary = format!(
        "{} changed its registered activity {} ({} → {})",
        input.entity.name,
        parts.join("; "),
        sect(&old_s),
        sect(&new_s)
    );
    let mut f = finding(input, rule, severity, summary, changes.clone());
    f.evidence
        .facts
        .insert("sectors before".into(), sect(&old_s));
    f.evidence
        .facts
        .insert("sectors after".into(), sect(&new_s));
    f.dedup_key = changes_key(input, rule, &changes);
    Verdict::fires(rule, "fires: an activity field changed", f)
}

/// Registry field categories watched by `registry_change`, by field name.
fn registry_category(field: &str) -> Option<&'static str> {
    let n = field.to_lowercase();
    let has = |ks: &[&str]| ks.iter().any(|k| n.contains(k));
    if is_activity_field(field) {
        None
    } else if has(&[
        "officer",
        "director",
        "gerant",
        "gérant",
        "manager",
        "dirigeant",
        "shareholder",
        "associ",
        "psc",
        "owner",
        "beneficial",
    ]) {
        Some("officers")
    } else if has(&["parent", "successor"]) {
        Some("ownership")
    } else if has(&["filing"]) {
        Some("filings")
    } else if has(&[
        "address", "adresse", "siege", "siège", "city", "ville", "postcode", "postal", "zone",
    ]) {
        Some("address")
    } else if has(&["status", "statut", "etat", "état", "state"]) {
        Some("status")
    } else if has(&["capital"]) {
        Some("capital")
    } else if has(&["name", "denomination", "dénomination", "raison"]) {
        Some("name")
    } else {
        None
    }
}

const FREE_ZONE: &[&str] = &[
    "zone franche",
    "free zone",
    "freezone",
    "free-zone",
    "zona franca",
    "zone d'accélération",
    "zone d'acceleration",
    "special economic zone",
    "свободная экономическая зона",
    "المنطقة الحرة",
];

pub(super) fn registry_change(input: &Input<'_>) -> Verdict {
    let rule = ids::REGISTRY_CHANGE;
    if input.source.kind != SourceKind::Registry {
        return Verdict::quiet(rule, "not a registry source");
    }
    let mut by_cat: BTreeMap<&str, Vec<Change>> = BTreeMap::new();
    for c in input.changes {
        // An adapter's change that says nothing of its own (a resignation's
        // removal from the active list, a filing leaving the window).
        if matches!(registry::sentence(c, input.changes), Some(None)) {
            continue;
        }
        if let Some(cat) = field_of(c).and_then(registry_category) {
            by_cat.entry(cat).or_default().push(c.clone());
        }
    }
    if by_cat.is_empty() {
        return Verdict::quiet(
            rule,
            "no officer, name, address, status or capital field changed",
        );
    }
    let mut severity = Severity::Low;
    let mut parts = Vec::new();
    for (cat, changes) in &by_cat {
        let s = match *cat {
            "address" => {
                let into_zone = changes.iter().any(|c| match c {
                    Change::FieldChanged {
                        new: Some(n), old, ..
                    } => {
                        let named = registry::named_free_zone(n).is_some()
                            && old.as_deref().and_then(registry::named_free_zone).is_none();
                        let n = fold(n);
                        let o = old.as_deref().map(fold).unwrap_or_default();
                        named || FREE_ZONE.iter().any(|z| n.contains(z) && !o.contains(z))
                    }
                    Change::ValueAdded { new, .. } => {
                        FREE_ZONE.iter().any(|z| fold(new).contains(z))
                    }
                    _ => false,
                });
                if into_zone {
                    Severity::High
                } else {
                    Severity::Medium
                }
            }
            "officers" | "name" | "status" | "ownership" => Severity::Medium,
            _ => Severity::Low,
        };
        severity = severity.max(s);
        for c in changes {
            if let Some(Some(s)) = registry::sentence(c, input.changes) {
                parts.push(s);
                continue;
            }
            parts.push(match c {
                Change::FieldChanged { field, old, new } => format!(
                    "{field} {} → {}",
                    quote(old.as_deref()),
                    quote(new.as_deref())
                ),
                Change::ValueAdded { field, new } => format!("{field} + {}", quote(Some(new))),
                Change::ValueRemoved { field, old } => format!("{field} − {}", quote(Some(old))),
                _ => String::new(),
            });
        }
    }
    let changes: Vec<Change> = by_cat.values().flatten().cloned().collect();
    // Adapter sentences hold commas ("FRAY, Shelley Ann (director, …)"):
    // they are separated by semicolons.
    let adapter = input
        .changes
        .iter()
        .any(|c| registry::sentence(c, input.changes).is_some());
    let listed = if adapter {
        let mut s = parts.iter().take(6).cloned().collect::<Vec<_>>().join("; ");
        if parts.len() > 6 {
            s.push_str(&format!("; and {} more", parts.len() - 6));
        }
        s
    } else {
        list_some(&parts, 4)
    };
    let summary = format!(
        "{}'s registry record changed: {}",
        input.entity.name, listed
    );
    let mut f = finding(input, rule, severity, summary, changes.clone());
    f.dedup_key = changes_key(input, rule, &changes);
    Verdict::fires(
        rule,
        format!(
            "fires: {} changed",
            and_list(&by_cat.keys().map(|s| s.to_string()).collect::<Vec<_>>())
        ),
        f,
    )
}

pub(super) fn items_added(input: &Input<'_>) -> Verdict {
    let rule = ids::ITEMS_ADDED;
    if input.previous.is_none() {
        return Verdict::quiet(rule, "first observation of this source");
    }
    let src = input.source.key();
    let added: Vec<Change> = input
        .changes
        .iter()
        .filter(|c| matches!(c, Change::ItemAdded { new, .. } if !controlled(input, &classify(input.reference, &src, new))))
        .cloned()
        .collect();
    if added.is_empty() {
        return Verdict::quiet(rule, "no uncontrolled item was added");
    }
    let labels: Vec<String> = added
        .iter()
        .filter_map(|c| match c {
            Change::ItemAdded { new, .. } => Some(
                new.part_number
                    .clone()
                    .or_else(|| new.name.clone())
                    .unwrap_or_else(|| new.key.clone()),
            ),
            _ => None,
        })
        .collect();
    let n = added.len();
    let summary = format!(
        "{}'s {} now lists {n} new item{} not on the CHPL: {}",
        input.entity.name,
        source_label(input.source),
        if n == 1 { "" } else { "s" },
        list_some(&labels, 5)
    );
    let material: Vec<String> = added
        .iter()
        .filter_map(|c| match c {
            Change::ItemAdded { item, .. } => Some(item.clone()),
            _ => None,
        })
        .collect();
    let mut f = finding(input, rule, Severity::Info, summary, added);
    f.dedup_key = key(rule, &src, &material.join("\n"));
    Verdict::fires(rule, format!("fires: {n} uncontrolled item(s) added"), f)
}

pub(super) fn field_changed(input: &Input<'_>) -> Verdict {
    let rule = ids::FIELD_CHANGED;
    let registry = input.source.kind == SourceKind::Registry;
    let changes: Vec<Change> = input
        .changes
        .iter()
        .filter(|c| {
            field_of(c).is_some_and(|f| {
                !(registry && (is_activity_field(f) || registry_category(f).is_some()))
            })
        })
        .cloned()
        .collect();
    if changes.is_empty() {
        return Verdict::quiet(rule, "no other field changed");
    }
    let parts: Vec<String> = changes
        .iter()
        .map(|c| match c {
            Change::FieldChanged { field, old, new } => format!(
                "{field} changed from {} to {}",
                quote(old.as_deref()),
                quote(new.as_deref())
            ),
            Change::ValueAdded { field, new } => format!("{field} gained {}", quote(Some(new))),
            Change::ValueRemoved { field, old } => format!("{field} lost {}", quote(Some(old))),
            _ => String::new(),
        })
        .collect();
    let summary = format!(
        "{}'s {}: {}",
        input.entity.name,
        source_label(input.source),
        list_some(&parts, 3)
    );
    let mut f = finding(input, rule, Severity::Low, summary, changes.clone());
    f.dedup_key = changes_key(input, rule, &changes);
    Verdict::fires(rule, format!("fires: {} field change(s)", changes.len()), f)
}

pub(super) fn custom(input: &Input<'_>) -> Vec<Verdict> {
    let src = input.source.key();
    let mut out = Vec::new();
    for r in &input.rules.custom {
        // What is new in this check (everything, on a first observation).
        let mut hits: Vec<(String, String)> = Vec::new(); // (what, text)
        let first = input.previous.is_none();
        let item_texts = |it: &crate::record::Item| -> Vec<String> {
            let mut v: Vec<String> = it.attributes().into_values().collect();
            v.retain(|s| !s.is_empty());
            v
        };
        let field_ok = |f: &str| r.fields.is_empty() || r.fields.iter().any(|x| x == f);
        if matches!(r.on, super::CustomTarget::Items | super::CustomTarget::Any) {
            let items: Vec<&crate::record::Item> = if first {
                input.current.record.items.values().collect()
            } else {
                input
                    .changes
                    .iter()
                    .filter_map(|c| match c {
                        Change::ItemAdded { new, .. } | Change::ItemChanged { new, .. } => {
                            Some(new)
                        }
                        _ => None,
                    })
                    .collect()
            };
            for it in items {
                if item_texts(it).iter().any(|t| r.regex.is_match(t)) {
                    hits.push((format!("item {}", it.label()), it.key.clone()));
                }
            }
        }
        if matches!(r.on, super::CustomTarget::Fields | super::CustomTarget::Any) {
            let values: Vec<(String, String)> = if first {
                input
                    .current
                    .record
                    .fields
                    .iter()
                    .flat_map(|(k, v)| match v {
                        crate::record::FieldValue::Text(t) => vec![(k.clone(), t.clone())],
                        crate::record::FieldValue::List(l) => {
                            l.iter().map(|x| (k.clone(), x.clone())).collect()
                        }
                    })
                    .collect()
            } else {
                input
                    .changes
                    .iter()
                    .filter_map(|c| match c {
                        Change::FieldChanged {
                            field,
                            new: Some(n),
                            ..
                        } => Some((field.clone(), n.clone())),
                        Change::ValueAdded { field, new } => Some((field.clone(), new.clone())),
                        _ => None,
                    })
                    .collect()
            };
            for (f, v) in values {
                if field_ok(&f) && r.regex.is_match(&v) {
                    hits.push((
                        format!("{f} {}", quote(Some(&v))),
                        format!("{f}={}", fold(&v)),
                    ));
                }
            }
        }
        if hits.is_empty() {
            out.push(Verdict::quiet(
                &r.id,
                "no new item or field value matches the rule's keywords",
            ));
            continue;
        }
        let what = r
            .description
            .clone()
            .unwrap_or_else(|| format!("custom rule {}", r.id));
        let labels: Vec<String> = hits.iter().map(|h| h.0.clone()).collect();
        let summary = format!(
            "{}'s {} matches {what}: {}",
            input.entity.name,
            source_label(input.source),
            list_some(&labels, 3)
        );
        let mut f = finding(input, &r.id, r.severity, summary, Vec::new());
        f.evidence.facts.insert("matched".into(), labels.join("; "));
        f.dedup_key = key(
            &r.id,
            &src,
            &hits
                .iter()
                .map(|h| h.1.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
        );
        f.escalation_keys = hits
            .iter()
            .map(|h| format!("{}:{src}:{}", r.id, h.1))
            .collect();
        out.push(Verdict::fires(
            &r.id,
            format!("fires: {} match(es)", hits.len()),
            f,
        ));
    }
    out
}
