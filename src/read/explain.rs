//! `explain ENTITY`: the entity's profile and every rule's verdict.

use std::io::Write;

use super::ReadError;
use crate::config::Config;
use crate::record::Snapshot;
use crate::store::Store;
use crate::text::for_display;

/// `explain`: the entity's profile and every rule's verdict on the latest
/// change of each source.
pub fn explain(
    config: &Config,
    store: &Store,
    entity: &str,
    json: bool,
    out: &mut impl Write,
) -> Result<u8, ReadError> {
    use crate::detect;
    let Some(ent) = config.entity(entity) else {
        return Err(ReadError::Usage(format!(
            "no entity {entity:?} in the watchlists"
        )));
    };
    let reference = crate::config::load_reference(config.settings.reference_dir.as_deref())
        .map_err(|e| ReadError::Usage(crate::text::chain(&e)))?;
    let mut snaps: Vec<(&crate::model::Source, Option<Snapshot>, Option<Snapshot>)> = Vec::new();
    for s in &ent.sources {
        let ids = store.history(&s.key())?;
        let cur = match ids.last() {
            Some(id) => store.snapshot(*id)?,
            None => None,
        };
        let prev = match ids.len().checked_sub(2) {
            Some(i) => store.snapshot(ids[i])?,
            None => None,
        };
        snaps.push((s, cur, prev));
    }
    let changes: Vec<Vec<crate::record::Change>> = snaps
        .iter()
        .map(|(_, cur, prev)| match (prev, cur) {
            (Some(p), Some(c)) => crate::diff::diff(&p.record, &c.record),
            _ => Vec::new(),
        })
        .collect();
    let observed: Vec<detect::Observation<'_>> = snaps
        .iter()
        .zip(&changes)
        .filter_map(|((s, cur, prev), changes)| {
            Some(detect::Observation {
                source: s,
                previous: prev.as_ref(),
                current: cur.as_ref()?,
                changes,
            })
        })
        .collect();
    let default_rules = detect::RuleConfig::default();
    let scope = detect::Scope {
        reference: &reference,
        rules: config
            .watchlist_of(ent)
            .map_or(&default_rules, |w| &w.rules),
        entity: ent,
        now: chrono::Utc::now(),
    };
    // Every verdict is shown, whether or not its finding was raised before.
    let detect::Assessment {
        profile,
        mut verdicts,
        ..
    } = detect::judge(&scope, &observed, &[]);
    // The confidence the profile rule uses: "controlled" and every count below mean what
    // the findings mean (one verdict, `ItemClass::verdict`).
    let min_conf = scope.rules.profile_confidence();
    // The profile rule judges the entity, not a source: show it once, as
    // seen from the catalogue when there is one.
    let pm = crate::detect::ids::PROFILE_MISMATCH;
    let keep = verdicts
        .iter()
        .rposition(|(s, v)| {
            v.rule == pm
                && ent
                    .sources
                    .iter()
                    .any(|x| &x.id == s && x.kind == crate::model::SourceKind::Catalogue)
        })
        .or_else(|| verdicts.iter().position(|(_, v)| v.rule == pm));
    let mut i = 0;
    verdicts.retain(|(_, v)| {
        let k = v.rule != pm || Some(i) == keep;
        i += 1;
        k
    });
    if let Some(p) = verdicts.iter().position(|(_, v)| v.rule == pm) {
        let v = verdicts.remove(p);
        verdicts.insert(0, ("(entity)".to_string(), v.1));
    }
    if json {
        let v = serde_json::json!({
            "entity": ent.id,
            "name": ent.name,
            "watchlist": ent.watchlist,
            "profile": {
                "declared": profile.declared,
                "registered": profile.registered,
                "registered_text": profile.registered_text,
                "sectors": profile.sectors(),
                "items": profile.items.len(),
                "controlled": profile.controlled(min_conf).iter().map(|i| i.evidence_at(min_conf)).collect::<Vec<_>>(),
                "by_tier": profile.by_tier_at(min_conf).iter().map(|(t, n)| (t.as_str().to_string(), *n)).collect::<std::collections::BTreeMap<_, _>>(),
                "by_manufacturer": profile.by_manufacturer_at(min_conf),
            },
            "website": snaps.iter().filter(|(s, c, _)| s.kind == crate::model::SourceKind::Site && c.is_some()).map(|(s, c, _)| serde_json::json!({
                "source": s.id,
                "pages": c.as_ref().and_then(|c| c.record.fields.get(crate::site::PAGES_FIELD)),
                "mentions": c.as_ref().map(|c| c.record.items.values().collect::<Vec<_>>()),
                "weak_mentions": c.as_ref().and_then(|c| c.record.fields.get(crate::site::WEAK_FIELD)),
            })).collect::<Vec<_>>(),
            "rules": verdicts.iter().map(|(s, v)| serde_json::json!({
                "source": s, "rule": v.rule, "enabled": v.enabled, "fires": v.finding.is_some(),
                "severity": v.finding.as_ref().map(|f| f.severity), "reason": v.reason,
                "summary": v.finding.as_ref().map(|f| f.summary.clone()),
            })).collect::<Vec<_>>(),
        });
        writeln!(out, "{v}")?;
        return Ok(0);
    }
    writeln!(
        out,
        "{} ({}), watchlist {}",
        for_display(&ent.name),
        ent.id,
        ent.watchlist
    )?;
    let acts = |v: &[crate::classify::ActivityMatch]| -> String {
        if v.is_empty() {
            return "(none known)".into();
        }
        v.iter()
            .map(|m| {
                format!(
                    "{}:{} {} [{}]",
                    for_display(&m.scheme),
                    for_display(&m.code),
                    for_display(&m.label),
                    m.sector
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    writeln!(out, "declared activity:   {}", acts(&profile.declared))?;
    if !profile.registered_text.is_empty() {
        writeln!(
            out,
            "registry says:       {}",
            for_display(&profile.registered_text.join("; "))
        )?;
    }
    writeln!(out, "registered activity: {}", acts(&profile.registered))?;
    let controlled = profile.controlled(min_conf);
    let makers = profile.by_manufacturer_at(min_conf);
    let attributed: usize = makers.values().map(|(_, n)| n).sum();
    writeln!(
        out,
        "catalogue:           {} items, {} controlled (CHPL goods, confidence {min_conf:.2} or more), {attributed} of them attributed to a maker",
        profile.items.len(),
        controlled.len()
    )?;
    for (t, n) in profile.by_tier_at(min_conf) {
        writeln!(out, "  {t}: {n}")?;
    }
    for (m, (country, n)) in makers {
        writeln!(out, "  {} ({country}): {n}", for_display(&m))?;
    }
    if attributed < controlled.len() {
        writeln!(out, "  no maker named: {}", controlled.len() - attributed)?;
    }
    // One table line per controlled item, its reasons under it.
    let rows = controlled
        .iter()
        .map(|i| {
            let e = i.evidence_at(min_conf);
            vec![
                for_display(&e.part_number.clone().or(e.name.clone()).unwrap_or_default())
                    .into_owned(),
                for_display(&e.manufacturer.clone().unwrap_or_else(|| "-".into())).into_owned(),
                for_display(&e.family.clone().unwrap_or_else(|| "-".into())).into_owned(),
                format!(
                    "HS {}",
                    for_display(&e.hs_code.clone().unwrap_or_else(|| "-".into()))
                ),
                e.tier
                    .map(|t| format!("Tier {t}"))
                    .unwrap_or_else(|| "-".into()),
                format!("confidence {:.2}", e.confidence),
            ]
        })
        .collect();
    for (i, line) in controlled.iter().zip(super::table_lines(rows)) {
        writeln!(out, "  - {line}")?;
        for r in &i.class.reasons {
            writeln!(out, "      {}", for_display(r))?;
        }
    }
    // Where each mention of a whole-site source was seen.
    for (src, cur, _) in &snaps {
        if src.kind == crate::model::SourceKind::Site
            && let Some(cur) = cur
        {
            write_site_mentions(&src.id, cur, out)?;
        }
    }
    writeln!(out, "rules (on the latest change of each source):")?;
    let mut rows = Vec::new();
    for (s, v) in &verdicts {
        let state = match (&v.finding, v.enabled) {
            (_, false) => "off".to_string(),
            (Some(f), true) => format!("FIRES {}", f.severity.as_str().to_uppercase()),
            (None, true) => "quiet".to_string(),
        };
        rows.push(vec![
            v.rule.to_string(),
            s.clone(),
            state,
            for_display(&v.reason).into_owned(),
        ]);
        if let Some(f) = &v.finding {
            rows.push(vec![
                String::new(),
                String::new(),
                String::new(),
                for_display(&f.summary).into_owned(),
            ]);
        }
    }
    for line in super::table_lines(rows) {
        writeln!(out, "  {line}")?;
    }
    Ok(0)
}

/// A site source's mentions: context, pages seen on, snippet; then its
/// weak mentions.
fn write_site_mentions(source: &str, snap: &Snapshot, out: &mut impl Write) -> std::io::Result<()> {
    let pages = match snap.record.fields.get(crate::site::PAGES_FIELD) {
        Some(crate::record::FieldValue::List(l)) => l.len(),
        _ => 0,
    };
    writeln!(
        out,
        "website ({source}): {pages} pages, {} mentions",
        snap.record.items.len()
    )?;
    for item in snap.record.items.values() {
        let get = |k: &str| item.extra.get(k).map(String::as_str).unwrap_or("");
        writeln!(
            out,
            "  - {}: {}",
            for_display(&item.label()),
            for_display(get(crate::site::CONTEXT_COLUMN))
        )?;
        writeln!(
            out,
            "      seen on {}: \u{201c}{}\u{201d}",
            for_display(get(crate::site::SEEN_ON_COLUMN)),
            for_display(get(crate::site::SNIPPET_COLUMN))
        )?;
    }
    if let Some(crate::record::FieldValue::List(weak)) =
        snap.record.fields.get(crate::site::WEAK_FIELD)
    {
        for w in weak {
            writeln!(out, "  - weak: {}", for_display(w))?;
        }
    }
    Ok(())
}
