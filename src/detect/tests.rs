//! The rules on small hand-built entities and snapshots, against the
//! shipped reference data.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, TimeZone, Utc};

use super::*;
use crate::extract::{ExtractSpec, JsonSpec};
use crate::record::{FieldValue, Item, Record};
use crate::schedule::Schedule;

fn reference() -> &'static Reference {
    static R: OnceLock<Reference> = OnceLock::new();
    R.get_or_init(|| Reference::embedded().expect("the shipped reference data loads"))
}

fn at(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, hour, 0, 0)
        .single()
        .expect("a valid time")
}

fn source(entity: &str, id: &str, kind: SourceKind) -> Source {
    Source {
        id: id.into(),
        entity: entity.into(),
        kind,
        url: url::Url::parse(&format!("https://example.test/{id}")).expect("url"),
        schedule: Schedule::parse("0 6 * * *").expect("cron"),
        spec: Arc::new(ExtractSpec::Json(JsonSpec {
            fields: Vec::new(),
            items: None,
        })),
        allow_private_addresses: None,
        adapter: None,
        site: None,
    }
}

/// An entity with a registry and a catalogue source, declared for `activity`.
fn entity(activity: &[&str]) -> Entity {
    Entity {
        id: "acme".into(),
        name: "Acme SARL".into(),
        aliases: vec![],
        jurisdiction: Some("MA".into()),
        identifiers: BTreeMap::new(),
        activity: activity.iter().map(|s| s.to_string()).collect(),
        tags: vec![],
        watchlist: "test".into(),
        sources: vec![
            source("acme", "registry", SourceKind::Registry),
            source("acme", "catalogue", SourceKind::Catalogue),
        ],
    }
}

fn item(name: &str, brand: Option<&str>, part: &str) -> Item {
    Item {
        key: part.to_lowercase(),
        name: Some(name.into()),
        manufacturer: brand.map(str::to_string),
        part_number: Some(part.into()),
        ..Item::default()
    }
}

/// A Texas Instruments DSP: CHPL Tier 1.
fn dsp() -> Item {
    item("DSP", Some("Texas Instruments"), "TMS320F28335PGFA")
}

/// Something no control list names.
fn pallet() -> Item {
    item("Palette en bois", None, "PAL-1200")
}

fn catalogue(id: u64, items: &[Item]) -> Snapshot {
    let mut record = Record::default();
    for i in items {
        record.items.insert(i.key.clone(), i.clone());
    }
    snapshot(id, "acme/catalogue", record)
}

fn registry(id: u64, fields: &[(&str, &str)]) -> Snapshot {
    let mut record = Record::default();
    for (k, v) in fields {
        record
            .fields
            .insert(k.to_string(), FieldValue::Text(v.to_string()));
    }
    snapshot(id, "acme/registry", record)
}

fn snapshot(id: u64, source: &str, record: Record) -> Snapshot {
    Snapshot {
        id,
        source: source.into(),
        url: format!("https://example.test/{source}"),
        fetched_at: at(1),
        http_status: 200,
        body_hash: String::new(),
        record,
        fetch: None,
    }
}

/// `assess` on one observation of `source_id`, the change computed by `diff`.
fn run(
    entity: &Entity,
    rules: &RuleConfig,
    source_id: &str,
    previous: Option<&Snapshot>,
    current: &Snapshot,
    now: DateTime<Utc>,
    raised: &dyn Fn(&str) -> bool,
) -> Assessment {
    let source = entity
        .sources
        .iter()
        .find(|s| s.id == source_id)
        .expect("source");
    let changes = previous
        .map(|p| crate::diff::diff(&p.record, &current.record))
        .unwrap_or_default();
    let scope = Scope {
        reference: reference(),
        rules,
        entity,
        now,
    };
    let observed = Observation {
        source,
        previous,
        current,
        changes: &changes,
    };
    assess(&scope, &[observed], &[], raised)
}

fn never(_: &str) -> bool {
    false
}

fn verdict<'a>(a: &'a Assessment, rule: &str) -> &'a Verdict {
    &a.verdicts
        .iter()
        .find(|(_, v)| v.rule == rule)
        .unwrap_or_else(|| panic!("no verdict of {rule}"))
        .1
}

fn rules_of(a: &Assessment) -> Vec<&str> {
    a.findings.iter().map(|f| f.rule.as_str()).collect()
}

#[test]
fn the_hand_built_items_classify_as_the_tests_assume() {
    let src = "acme/catalogue";
    assert!(classify(reference(), src, &dsp()).class.is_controlled());
    assert!(!classify(reference(), src, &pallet()).class.is_controlled());
}

#[test]
fn every_rule_gives_a_verdict_for_the_observed_source() {
    let e = entity(&["NACE:46.77"]);
    let cur = catalogue(1, &[pallet()]);
    let a = run(
        &e,
        &RuleConfig::default(),
        "catalogue",
        None,
        &cur,
        at(9),
        &never,
    );
    let rules: Vec<&str> = a.verdicts.iter().map(|(_, v)| v.rule.as_str()).collect();
    assert_eq!(rules, BUILTIN_RULES);
    assert!(a.verdicts.iter().all(|(s, _)| s == "catalogue"));
    assert!(a.findings.is_empty(), "{:?}", a.findings);
}

#[test]
fn a_scrap_trader_listing_tier_1_parts_is_a_high_profile_mismatch() {
    let e = entity(&["NACE:46.77"]);
    let cur = catalogue(1, &[dsp(), pallet()]);
    let a = run(
        &e,
        &RuleConfig::default(),
        "catalogue",
        None,
        &cur,
        at(9),
        &never,
    );
    let v = verdict(&a, ids::PROFILE_MISMATCH);
    let f = v.finding.as_ref().expect("profile_mismatch fires");
    assert_eq!(f.severity, Severity::High);
    assert!(
        f.summary.starts_with("Acme SARL is registered for"),
        "{}",
        f.summary
    );
    assert!(f.summary.contains("Texas Instruments"), "{}", f.summary);
    assert_eq!(f.evidence.items.len(), 1);
    assert_eq!(f.entity, "acme");
    assert_eq!(f.source, "catalogue");
    assert!(
        f.dedup_key.starts_with("profile_mismatch:acme:"),
        "{}",
        f.dedup_key
    );
    assert!(
        f.escalation_keys
            .contains(&"profile_mismatch:acme:tier:1".to_string()),
        "{:?}",
        f.escalation_keys
    );
    assert_eq!(rules_of(&a), [ids::PROFILE_MISMATCH]);
    assert_eq!(a.profile.items.len(), 2);
    assert_eq!(a.profile.controlled(0.5).len(), 1);
}

#[test]
fn an_electronics_trader_listing_the_same_parts_is_no_mismatch() {
    let e = entity(&["NACE:46.52"]);
    let cur = catalogue(1, &[dsp()]);
    let a = run(
        &e,
        &RuleConfig::default(),
        "catalogue",
        None,
        &cur,
        at(9),
        &never,
    );
    let v = verdict(&a, ids::PROFILE_MISMATCH);
    assert!(v.finding.is_none());
    assert!(v.reason.contains("fits its profile"), "{}", v.reason);
    assert!(a.findings.is_empty());
}

#[test]
fn no_known_activity_is_no_mismatch_and_says_what_to_add() {
    let e = entity(&[]);
    let cur = catalogue(1, &[dsp()]);
    let a = run(
        &e,
        &RuleConfig::default(),
        "catalogue",
        None,
        &cur,
        at(9),
        &never,
    );
    let v = verdict(&a, ids::PROFILE_MISMATCH);
    assert!(v.finding.is_none());
    assert!(v.reason.contains("add `activity` codes"), "{}", v.reason);
}

#[test]
fn the_registry_activity_counts_when_the_watchlist_declares_none() {
    let e = entity(&[]);
    let reg = registry(1, &[("activite", "NACE:46.77")]);
    let cur = catalogue(2, &[dsp()]);
    let source = &e.sources[1];
    let scope = Scope {
        reference: reference(),
        rules: &RuleConfig::default(),
        entity: &e,
        now: at(9),
    };
    let observed = Observation {
        source,
        previous: None,
        current: &cur,
        changes: &[],
    };
    let a = assess(&scope, &[observed], &[(&e.sources[0], &reg)], &never);
    assert_eq!(a.profile.registered_text, ["NACE:46.77"]);
    assert_eq!(rules_of(&a), [ids::PROFILE_MISMATCH]);
}

#[test]
fn a_first_observation_adds_nothing() {
    let e = entity(&["NACE:46.52"]);
    let cur = catalogue(1, &[dsp(), pallet()]);
    let a = run(
        &e,
        &RuleConfig::default(),
        "catalogue",
        None,
        &cur,
        at(9),
        &never,
    );
    for rule in [ids::CONTROLLED_GOODS, ids::ITEMS_ADDED] {
        let v = verdict(&a, rule);
        assert!(v.finding.is_none(), "{rule}");
        assert!(
            v.reason.contains("first observation"),
            "{rule}: {}",
            v.reason
        );
    }
}

#[test]
fn an_added_uncontrolled_item_is_items_added_at_info() {
    let e = entity(&["NACE:46.77"]);
    let prev = catalogue(1, &[]);
    let cur = catalogue(2, &[pallet()]);
    let a = run(
        &e,
        &RuleConfig::default(),
        "catalogue",
        Some(&prev),
        &cur,
        at(9),
        &never,
    );
    assert_eq!(rules_of(&a), [ids::ITEMS_ADDED]);
    let f = &a.findings[0];
    assert_eq!(f.severity, Severity::Info);
    assert!(f.summary.contains("PAL-1200"), "{}", f.summary);
    assert_eq!(f.evidence.previous_snapshot, Some(1));
    assert_eq!(f.evidence.changes.len(), 1);
    assert!(verdict(&a, ids::CONTROLLED_GOODS).finding.is_none());
}

#[test]
fn a_new_profile_mismatch_carries_the_added_goods_alone() {
    let e = entity(&["NACE:46.77"]);
    let prev = catalogue(1, &[pallet()]);
    let cur = catalogue(2, &[pallet(), dsp()]);
    let a = run(
        &e,
        &RuleConfig::default(),
        "catalogue",
        Some(&prev),
        &cur,
        at(9),
        &never,
    );
    // Both rules fire...
    let cg = verdict(&a, ids::CONTROLLED_GOODS);
    assert_eq!(
        cg.finding.as_ref().map(|f| f.severity),
        Some(Severity::High)
    );
    let pm = verdict(&a, ids::PROFILE_MISMATCH).finding.as_ref();
    assert!(pm.is_some());
    // ...one alert is raised, with the addition as its evidence.
    assert_eq!(rules_of(&a), [ids::PROFILE_MISMATCH]);
    assert_eq!(a.findings[0].evidence.changes.len(), 1);
    assert!(
        a.findings[0].summary.contains("now lists"),
        "{}",
        a.findings[0].summary
    );
}

#[test]
fn controlled_goods_is_raised_when_the_mismatch_was_raised_before() {
    let e = entity(&["NACE:46.77"]);
    let prev = catalogue(1, &[pallet()]);
    let cur = catalogue(2, &[pallet(), dsp()]);
    let first = run(
        &e,
        &RuleConfig::default(),
        "catalogue",
        Some(&prev),
        &cur,
        at(9),
        &never,
    );
    let pm = first.findings[0].clone();
    let mut known: BTreeSet<String> = pm.escalation_keys.iter().cloned().collect();
    known.insert(pm.dedup_key.clone());
    let raised = |k: &str| known.contains(k);
    let a = run(
        &e,
        &RuleConfig::default(),
        "catalogue",
        Some(&prev),
        &cur,
        at(9),
        &raised,
    );
    assert_eq!(rules_of(&a), [ids::CONTROLLED_GOODS]);
    // The verdicts are the same whatever was raised before.
    assert_eq!(a.verdicts.len(), first.verdicts.len());
}

#[test]
fn a_raised_dedup_key_is_not_raised_again() {
    let e = entity(&["NACE:46.77"]);
    let cur = catalogue(1, &[dsp()]);
    let first = run(
        &e,
        &RuleConfig::default(),
        "catalogue",
        None,
        &cur,
        at(9),
        &never,
    );
    let key = first.findings[0].dedup_key.clone();
    let a = run(
        &e,
        &RuleConfig::default(),
        "catalogue",
        None,
        &cur,
        at(10),
        &|k| k == key,
    );
    assert!(a.findings.is_empty(), "{:?}", rules_of(&a));
    assert!(verdict(&a, ids::PROFILE_MISMATCH).finding.is_some());
}

#[test]
fn escalation_needs_one_new_key() {
    let e = entity(&["NACE:46.77"]);
    let cur = catalogue(1, &[dsp()]);
    let first = run(
        &e,
        &RuleConfig::default(),
        "catalogue",
        None,
        &cur,
        at(9),
        &never,
    );
    let f = &first.findings[0];
    assert!(f.escalation_keys.len() >= 2, "{:?}", f.escalation_keys);
    // Every escalation key raised before (under another dedup key): nothing new.
    let all: BTreeSet<String> = f.escalation_keys.iter().cloned().collect();
    let a = run(
        &e,
        &RuleConfig::default(),
        "catalogue",
        None,
        &cur,
        at(9),
        &|k| all.contains(k),
    );
    assert!(a.findings.is_empty(), "{:?}", rules_of(&a));
    // One of them new (a maker, a tier or a severity not seen): raised.
    let mut some = all.clone();
    let new = some.pop_first().expect("a key");
    let b = run(
        &e,
        &RuleConfig::default(),
        "catalogue",
        None,
        &cur,
        at(9),
        &|k| some.contains(k),
    );
    assert_eq!(rules_of(&b), [ids::PROFILE_MISMATCH], "{new} is new");
}

#[test]
fn dedup_keys_name_the_material_not_the_time() {
    let e = entity(&["NACE:46.77"]);
    let prev = catalogue(1, &[]);
    let one = catalogue(2, &[pallet()]);
    let other = catalogue(2, &[item("Caisse", None, "BOX-9")]);
    let rules = RuleConfig::default();
    let a = run(&e, &rules, "catalogue", Some(&prev), &one, at(9), &never);
    let b = run(&e, &rules, "catalogue", Some(&prev), &one, at(17), &never);
    let c = run(&e, &rules, "catalogue", Some(&prev), &other, at(9), &never);
    assert_eq!(a.findings[0].dedup_key, b.findings[0].dedup_key);
    assert_ne!(a.findings[0].dedup_key, c.findings[0].dedup_key);
    assert!(
        a.findings[0]
            .dedup_key
            .starts_with("items_added:acme/catalogue:")
    );
}

#[test]
fn findings_are_created_at_the_time_given() {
    let e = entity(&["NACE:46.77"]);
    let prev = catalogue(1, &[pallet()]);
    let cur = catalogue(2, &[pallet(), dsp()]);
    for now in [at(3), at(21)] {
        let a = run(
            &e,
            &RuleConfig::default(),
            "catalogue",
            Some(&prev),
            &cur,
            now,
            &never,
        );
        assert!(!a.verdicts.is_empty());
        for (_, v) in &a.verdicts {
            if let Some(f) = &v.finding {
                assert_eq!(f.created_at, now, "{}", f.rule);
            }
        }
        assert_eq!(a.findings[0].created_at, now);
    }
}

#[test]
fn a_switched_off_rule_says_so_and_never_fires() {
    let e = entity(&["NACE:46.77"]);
    let cur = catalogue(1, &[dsp()]);
    let mut rules = RuleConfig::default();
    rules.overrides.insert(
        ids::PROFILE_MISMATCH.into(),
        RuleOverride {
            enabled: false,
            severity: None,
            min_items: None,
            min_confidence: None,
        },
    );
    let a = run(&e, &rules, "catalogue", None, &cur, at(9), &never);
    let v = verdict(&a, ids::PROFILE_MISMATCH);
    assert!(!v.enabled);
    assert!(v.finding.is_none());
    assert!(v.reason.contains("enabled = false"), "{}", v.reason);
    assert!(a.findings.is_empty());
}

#[test]
fn overrides_set_severity_and_thresholds() {
    let e = entity(&["NACE:46.77"]);
    let cur = catalogue(1, &[dsp()]);
    let mut rules = RuleConfig::default();
    rules.overrides.insert(
        ids::PROFILE_MISMATCH.into(),
        RuleOverride {
            enabled: true,
            severity: Some(Severity::Low),
            min_items: None,
            min_confidence: None,
        },
    );
    let a = run(&e, &rules, "catalogue", None, &cur, at(9), &never);
    assert_eq!(a.findings[0].severity, Severity::Low);

    rules.overrides.insert(
        ids::PROFILE_MISMATCH.into(),
        RuleOverride {
            enabled: true,
            severity: None,
            min_items: Some(2),
            min_confidence: None,
        },
    );
    let b = run(&e, &rules, "catalogue", None, &cur, at(9), &never);
    let v = verdict(&b, ids::PROFILE_MISMATCH);
    assert!(v.finding.is_none());
    assert!(v.reason.contains("the rule needs 2"), "{}", v.reason);
}

#[test]
fn a_registry_turning_from_scrap_to_electronics_is_a_high_activity_change() {
    let e = entity(&["NACE:46.77"]);
    let prev = registry(1, &[("activite", "NACE:46.77")]);
    let cur = registry(2, &[("activite", "NACE:46.52")]);
    let a = run(
        &e,
        &RuleConfig::default(),
        "registry",
        Some(&prev),
        &cur,
        at(9),
        &never,
    );
    let f = verdict(&a, ids::ACTIVITY_CHANGED)
        .finding
        .as_ref()
        .expect("activity_changed fires");
    assert_eq!(f.severity, Severity::High);
    assert!(
        f.summary.contains("changed its registered activity"),
        "{}",
        f.summary
    );
    // The activity field is not also a registry or field change.
    assert!(verdict(&a, ids::REGISTRY_CHANGE).finding.is_none());
    assert!(verdict(&a, ids::FIELD_CHANGED).finding.is_none());
}

#[test]
fn a_move_into_a_free_zone_is_a_high_registry_change() {
    let e = entity(&["NACE:46.77"]);
    let prev = registry(1, &[("adresse", "12 rue des Forges, Tanger")]);
    let cur = registry(
        2,
        &[("adresse", "Zone Franche d'Exportation, Lot 112, Tanger")],
    );
    let a = run(
        &e,
        &RuleConfig::default(),
        "registry",
        Some(&prev),
        &cur,
        at(9),
        &never,
    );
    assert_eq!(rules_of(&a), [ids::REGISTRY_CHANGE]);
    assert_eq!(a.findings[0].severity, Severity::High);

    let moved = registry(2, &[("adresse", "3 avenue Hassan II, Tanger")]);
    let b = run(
        &e,
        &RuleConfig::default(),
        "registry",
        Some(&prev),
        &moved,
        at(9),
        &never,
    );
    assert_eq!(b.findings[0].severity, Severity::Medium);
}

#[test]
fn registry_rules_keep_to_registry_sources() {
    let e = entity(&["NACE:46.77"]);
    let mut prev = catalogue(1, &[]);
    let mut cur = catalogue(2, &[]);
    prev.record
        .fields
        .insert("adresse".into(), FieldValue::Text("A".into()));
    cur.record
        .fields
        .insert("adresse".into(), FieldValue::Text("B".into()));
    let a = run(
        &e,
        &RuleConfig::default(),
        "catalogue",
        Some(&prev),
        &cur,
        at(9),
        &never,
    );
    assert_eq!(
        verdict(&a, ids::REGISTRY_CHANGE).reason,
        "not a registry source"
    );
    assert_eq!(rules_of(&a), [ids::FIELD_CHANGED]);
    assert_eq!(a.findings[0].severity, Severity::Low);
}

#[test]
fn an_unchanged_source_fires_nothing() {
    let e = entity(&["NACE:46.52"]);
    let prev = catalogue(1, &[dsp(), pallet()]);
    let cur = catalogue(2, &[dsp(), pallet()]);
    let a = run(
        &e,
        &RuleConfig::default(),
        "catalogue",
        Some(&prev),
        &cur,
        at(9),
        &never,
    );
    assert!(a.findings.is_empty(), "{:?}", rules_of(&a));
    assert!(a.verdicts.iter().all(|(_, v)| v.finding.is_none()));
}

#[test]
fn a_custom_rule_matches_new_items_only() {
    let e = entity(&["NACE:46.52"]);
    let mut rules = RuleConfig::default();
    rules.custom.push(CustomRule {
        id: "wood".into(),
        regex: regex::Regex::new("(?i)bois").expect("regex"),
        on: CustomTarget::Items,
        fields: vec![],
        severity: Severity::Medium,
        description: Some("wooden goods".into()),
    });
    let prev = catalogue(1, &[dsp()]);
    let cur = catalogue(2, &[dsp(), pallet()]);
    let a = run(&e, &rules, "catalogue", Some(&prev), &cur, at(9), &never);
    let v = verdict(&a, "wood");
    let f = v.finding.as_ref().expect("the custom rule fires");
    assert_eq!(f.severity, Severity::Medium);
    assert!(f.summary.contains("matches wooden goods"), "{}", f.summary);
    assert_eq!(f.escalation_keys, ["wood:acme/catalogue:pal-1200"]);
    assert!(rules_of(&a).contains(&"wood"));

    let same = run(&e, &rules, "catalogue", Some(&cur), &cur, at(9), &never);
    assert!(verdict(&same, "wood").finding.is_none());
}

#[test]
fn explain_sees_every_observed_source_with_one_profile() {
    let e = entity(&["NACE:46.77"]);
    let reg = registry(1, &[("activite", "NACE:46.77")]);
    let cat = catalogue(2, &[dsp()]);
    let scope = Scope {
        reference: reference(),
        rules: &RuleConfig::default(),
        entity: &e,
        now: at(9),
    };
    let observed = [
        Observation {
            source: &e.sources[0],
            previous: None,
            current: &reg,
            changes: &[],
        },
        Observation {
            source: &e.sources[1],
            previous: None,
            current: &cat,
            changes: &[],
        },
    ];
    let a = assess(&scope, &observed, &[], &never);
    let n = BUILTIN_RULES.len();
    assert_eq!(a.verdicts.len(), 2 * n);
    assert!(a.verdicts[..n].iter().all(|(s, _)| s == "registry"));
    assert!(a.verdicts[n..].iter().all(|(s, _)| s == "catalogue"));
    // The profile holds both: the registry's activity, the catalogue's items.
    assert_eq!(a.profile.registered_text, ["NACE:46.77"]);
    assert_eq!(a.profile.items.len(), 1);
    // The profile rule judges the entity: it fires as seen from both.
    let fired: Vec<&str> = a
        .verdicts
        .iter()
        .filter(|(_, v)| v.rule == ids::PROFILE_MISMATCH && v.finding.is_some())
        .map(|(s, _)| s.as_str())
        .collect();
    assert_eq!(fired, ["registry", "catalogue"]);
    // It is raised once.
    assert_eq!(rules_of(&a), [ids::PROFILE_MISMATCH]);
}
