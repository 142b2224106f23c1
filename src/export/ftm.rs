//! `export ftm`: FollowTheMoney entities as JSON lines (`{"id", "schema",
//! "properties"}`, every property a list of strings), the format Aleph,
//! OpenSanctions' tools and `ftm` read (`ftm validate`, `ftm aggregate`).
//!
//! - each watched entity: a `Company` (an `Organization` when it has no
//!   registry source and no identifiers) with its names, jurisdiction,
//!   identifiers (`leiCode`, `taxNumber`, `vatCode`, `registrationNumber`
//!   …), declared activity (`sector`) and source URLs; the latest registry
//!   snapshot adds its status, dates and address;
//! - an `Address` for each address a registry record holds (`addressEntity`);
//! - officers listed in a registry record (fields `officers`, `directors`,
//!   `managers`, …): a `Person` and a `Directorship` (role: the field);
//! - owners (fields `psc`, `owners`, `shareholders`, `beneficial_owners`,
//!   `parent`, …): a `LegalEntity` (a `Company` for `parent`) and an
//!   `Ownership` (`ownershipType`: the field);
//! - each finding: a `Note` on the entity (name and summary: the finding's
//!   summary; description: its explanation; `sourceUrl`: the page;
//!   `keywords`: rule and severity; `publisher`: pivotwatch).
//!
//! Every entity records where and when it was seen (`sourceUrl`,
//! `retrievedAt` or `recordId`). Ids are `pw-` + the kind + a SHA-256 of
//! natural keys (the watchlist's entity id; an address's folded text; an
//! officer's folded name within its company; a link's two ends and role):
//! the same fact gets the same id in every export, from any installation
//! that watches the entity under the same id.

use std::collections::BTreeMap;
use std::io::Write;

use super::{ExportError, Filter};
use crate::config::{Config, Entity, SourceKind};
use crate::record::{FieldValue, Snapshot};
use crate::store::Store;

/// Record fields naming officers (→ `Person` + `Directorship`).
const OFFICER_FIELDS: [&str; 6] = [
    "officers",
    "directors",
    "managers",
    "officer",
    "director",
    "manager",
];
/// Record fields naming owners (→ `LegalEntity` + `Ownership`).
const OWNER_FIELDS: [&str; 7] = [
    "psc",
    "owners",
    "owner",
    "shareholders",
    "shareholder",
    "beneficial_owners",
    "parent",
];
/// Record fields holding an address.
const ADDRESS_FIELDS: [&str; 4] = ["address", "registered_address", "registered_office", "seat"];

/// One FtM entity being built.
#[derive(Debug, Default)]
struct Ftm {
    id: String,
    schema: &'static str,
    props: BTreeMap<&'static str, Vec<String>>,
}

impl Ftm {
    fn new(schema: &'static str, id: String) -> Ftm {
        Ftm {
            id,
            schema,
            props: BTreeMap::new(),
        }
    }

    fn add(&mut self, prop: &'static str, value: impl Into<String>) -> &mut Ftm {
        let v: String = value.into();
        let v = v.trim().to_string();
        if !v.is_empty() {
            let vs = self.props.entry(prop).or_default();
            if !vs.contains(&v) {
                vs.push(v);
            }
        }
        self
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({"id": self.id, "schema": self.schema, "properties": self.props})
    }
}

/// The entities of one export, each id once (later facts merge in).
#[derive(Default)]
struct Graph {
    order: Vec<String>,
    by_id: BTreeMap<String, Ftm>,
}

impl Graph {
    fn put(&mut self, e: Ftm) {
        match self.by_id.get_mut(&e.id) {
            Some(have) => {
                for (p, vs) in e.props {
                    for v in vs {
                        have.add(p, v);
                    }
                }
            }
            None => {
                self.order.push(e.id.clone());
                self.by_id.insert(e.id.clone(), e);
            }
        }
    }
}

/// `pw-KIND-` + 32 hex digits of SHA-256 over the natural key parts.
fn make_id(kind: &str, parts: &[&str]) -> String {
    let key = parts.join("\u{1f}");
    let h = crate::store::sha256_hex(format!("{kind}\u{1f}{key}").as_bytes());
    format!("pw-{kind}-{}", &h[..32])
}

/// Text folded for a natural key: case and spacing do not make a new id.
fn fold(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

pub(super) fn export(
    config: &Config,
    store: &Store,
    filter: &Filter,
    w: &mut dyn Write,
) -> Result<(), ExportError> {
    let mut g = Graph::default();
    let mut companies: BTreeMap<String, String> = BTreeMap::new();
    let mut entities: Vec<&Entity> = config
        .watchlists
        .iter()
        .flat_map(|wl| &wl.entities)
        .collect();
    entities.sort_by(|a, b| a.id.cmp(&b.id));
    for e in entities {
        if filter.entity.as_deref().is_some_and(|id| id != e.id) {
            continue;
        }
        let cid = entity(&mut g, store, filter, e)?;
        companies.insert(e.id.clone(), cid);
    }
    store.each_finding(|f| -> Result<(), ExportError> {
        if !filter.covers_finding(&f) {
            return Ok(());
        }
        let Some(cid) = companies.get(&f.entity) else {
            return Ok(());
        };
        let mut n = Ftm::new("Note", make_id("note", &[&f.entity, &f.dedup_key]));
        n.add("entity", cid.clone())
            .add("name", f.summary.clone())
            .add("summary", f.summary.clone())
            .add("description", f.explanation.clone())
            .add("sourceUrl", f.evidence.url.clone())
            .add("keywords", f.rule.clone())
            .add("keywords", format!("severity:{}", f.severity.as_str()))
            .add("publisher", "pivotwatch")
            .add(
                "modifiedAt",
                f.created_at.format("%Y-%m-%dT%H:%M:%S").to_string(),
            )
            .add("notes", f.evidence_command());
        g.put(n);
        Ok(())
    })?;
    for id in &g.order {
        if let Some(e) = g.by_id.get(id) {
            let mut line = serde_json::to_vec(&e.json()).unwrap_or_default();
            line.push(b'\n');
            w.write_all(&line)?;
        }
    }
    w.flush()?;
    Ok(())
}

/// Adds a watched entity and what its latest registry snapshots hold;
/// returns its id.
fn entity(
    g: &mut Graph,
    store: &Store,
    filter: &Filter,
    e: &Entity,
) -> Result<String, ExportError> {
    let has_registry = e.sources.iter().any(|s| s.kind == SourceKind::Registry);
    let schema = if has_registry || !e.identifiers.is_empty() {
        "Company"
    } else {
        "Organization"
    };
    let cid = make_id("entity", &[&e.id]);
    let mut c = Ftm::new(schema, cid.clone());
    c.add("name", e.name.clone());
    for a in &e.aliases {
        c.add("alias", a.clone());
    }
    if let Some(j) = &e.jurisdiction {
        c.add("jurisdiction", j.to_lowercase());
        c.add("country", j.to_lowercase());
    }
    for (scheme, value) in &e.identifiers {
        let prop = match scheme.to_ascii_lowercase().as_str() {
            "lei" => "leiCode",
            "vat" => "vatCode",
            "tax" | "tax_number" | "tin" => "taxNumber",
            "duns" => "dunsCode",
            "ogrn" => "ogrnCode",
            "inn" => "innCode",
            "swift" | "bic" => "swiftBic",
            _ => "registrationNumber",
        };
        c.add(prop, value.clone());
    }
    for a in &e.activity {
        c.add("sector", a.clone());
    }
    for s in &e.sources {
        c.add("sourceUrl", s.url.to_string());
    }
    let mut linked = Vec::new();
    for s in &e.sources {
        let key = s.key();
        if s.kind != SourceKind::Registry || !filter.covers_source(&key) {
            continue;
        }
        let Some(snap) = store.latest_snapshot(&key)? else {
            continue;
        };
        if filter.since.is_some_and(|t| snap.fetched_at < t) {
            continue;
        }
        registry_facts(&mut c, &mut linked, &cid, &snap);
    }
    g.put(c);
    for l in linked {
        g.put(l);
    }
    Ok(cid)
}

/// The facts of a registry snapshot: onto the company `c`, and as linked
/// entities (addresses, officers, owners and their links) into `linked`.
fn registry_facts(c: &mut Ftm, linked: &mut Vec<Ftm>, cid: &str, snap: &Snapshot) {
    let url = snap
        .fetch
        .as_ref()
        .and_then(|m| m.responses.first())
        .map_or_else(|| snap.url.clone(), |r| r.final_url.clone());
    let seen = snap.fetched_at.format("%Y-%m-%dT%H:%M:%S").to_string();
    let record_id = format!("snapshot:{}", snap.id);
    c.add("retrievedAt", seen.clone());
    let values = |v: &FieldValue| match v {
        FieldValue::Text(t) => vec![t.clone()],
        FieldValue::List(l) => l.clone(),
    };
    for (field, value) in &snap.record.fields {
        let name = field.to_ascii_lowercase();
        let name = name.as_str();
        for v in values(value) {
            match name {
                "status" => {
                    c.add("status", v);
                }
                "incorporation_date" | "incorporated" | "registration_date" | "founded" => {
                    if let Some(d) = date(&v) {
                        c.add("incorporationDate", d);
                    }
                }
                "dissolution_date" | "dissolved" => {
                    if let Some(d) = date(&v) {
                        c.add("dissolutionDate", d);
                    }
                }
                "activity" | "activities" | "sector" => {
                    c.add("sector", v);
                }
                "website" => {
                    c.add("website", v);
                }
                "name" | "legal_name" if !c.props.get("name").is_some_and(|n| n.contains(&v)) => {
                    c.add("alias", v);
                }
                n if ADDRESS_FIELDS.contains(&n) => {
                    let aid = make_id("address", &[&fold(&v)]);
                    let mut a = Ftm::new("Address", aid.clone());
                    a.add("full", v.clone())
                        .add("sourceUrl", url.clone())
                        .add("retrievedAt", seen.clone());
                    if let Some(country) = c.props.get("country").and_then(|v| v.first()) {
                        a.add("country", country.clone());
                    }
                    c.add("address", v).add("addressEntity", aid);
                    linked.push(a);
                }
                n if OFFICER_FIELDS.contains(&n) => {
                    let pid = make_id("person", &[cid, &fold(&v)]);
                    let mut p = Ftm::new("Person", pid.clone());
                    p.add("name", v)
                        .add("sourceUrl", url.clone())
                        .add("retrievedAt", seen.clone());
                    let role = n.trim_end_matches('s');
                    let mut d =
                        Ftm::new("Directorship", make_id("directorship", &[cid, &pid, role]));
                    d.add("director", pid)
                        .add("organization", cid.to_string())
                        .add("role", role)
                        .add("sourceUrl", url.clone())
                        .add("recordId", record_id.clone());
                    linked.push(p);
                    linked.push(d);
                }
                n if OWNER_FIELDS.contains(&n) => {
                    let schema = if n == "parent" {
                        "Company"
                    } else {
                        "LegalEntity"
                    };
                    let oid = make_id("owner", &[cid, &fold(&v)]);
                    let mut o = Ftm::new(schema, oid.clone());
                    o.add("name", v)
                        .add("sourceUrl", url.clone())
                        .add("retrievedAt", seen.clone());
                    let mut own = Ftm::new("Ownership", make_id("ownership", &[&oid, cid, n]));
                    own.add("owner", oid)
                        .add("asset", cid.to_string())
                        .add("ownershipType", n)
                        .add("sourceUrl", url.clone())
                        .add("recordId", record_id.clone());
                    linked.push(o);
                    linked.push(own);
                }
                _ => {}
            }
        }
    }
}

/// An ISO date (`YYYY-MM-DD`, `YYYY-MM` or `YYYY`) at the start of `s`,
/// or a `DD/MM/YYYY` or `DD.MM.YYYY` date, as FtM's date type wants it.
fn date(s: &str) -> Option<String> {
    let s = s.trim();
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d") {
        return Some(d.format("%Y-%m-%d").to_string());
    }
    for f in ["%d/%m/%Y", "%d.%m.%Y"] {
        if let Ok(d) = chrono::NaiveDate::parse_from_str(s, f) {
            return Some(d.format("%Y-%m-%d").to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_folded_natural_keys() {
        assert_eq!(
            make_id("person", &["c", &fold("Jane  DOE")]),
            make_id("person", &["c", &fold("jane doe")])
        );
        assert_ne!(
            make_id("person", &["c", "x"]),
            make_id("person", &["d", "x"])
        );
        assert!(make_id("entity", &["acme"]).starts_with("pw-entity-"));
    }

    #[test]
    fn dates_become_iso() {
        assert_eq!(date("2021-03-04").as_deref(), Some("2021-03-04"));
        assert_eq!(date("04/03/2021").as_deref(), Some("2021-03-04"));
        assert_eq!(date("soon"), None);
    }
}
