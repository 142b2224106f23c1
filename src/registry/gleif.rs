//! GLEIF (LEI records, JSON:API): one request for the record, one more per
//! parent relationship the record says exists (direct, ultimate), for
//! the parent's name.

use std::collections::BTreeMap;

use serde::Deserialize;
use url::Url;

use super::{Reader, RegistryError, join, join_some, some};
use crate::detect::registry::fields;
use crate::record::{FieldValue, Record};

/// `{ "data": … }`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Document {
    /// The record.
    pub data: Option<LeiRecord>,
}

/// `data` of type `lei-records`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LeiRecord {
    /// The LEI.
    pub id: Option<String>,
    /// `attributes`.
    pub attributes: Attributes,
    /// `relationships`: name → `{ links: { … } }`.
    pub relationships: BTreeMap<String, Relationship>,
}

/// One relationship's links.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Relationship {
    /// `lei-record`, `relationship-record`, `reporting-exception`, `related`.
    pub links: BTreeMap<String, String>,
}

/// `attributes`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Attributes {
    /// The LEI.
    pub lei: Option<String>,
    /// `entity`.
    pub entity: Entity,
    /// `registration`.
    pub registration: Registration,
}

/// `{ name, language }`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Name {
    /// The name.
    pub name: Option<String>,
    /// `PREVIOUS_LEGAL_NAME`, `TRADING_OR_OPERATING_NAME` …
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// An address.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Address {
    /// Lines.
    pub address_lines: Option<Vec<String>>,
    /// Number.
    pub address_number: Option<String>,
    /// City.
    pub city: Option<String>,
    /// ISO 3166-2.
    pub region: Option<String>,
    /// ISO 3166-1.
    pub country: Option<String>,
    /// Postcode.
    pub postal_code: Option<String>,
}

impl Address {
    /// One line.
    pub fn line(&self) -> String {
        let lines: Vec<Option<String>> = self
            .address_lines
            .iter()
            .flatten()
            .map(|l| Some(l.clone()))
            .collect();
        let mut parts: Vec<&Option<String>> = vec![&self.address_number];
        parts.extend(lines.iter());
        parts.extend([&self.city, &self.region, &self.postal_code, &self.country]);
        join_some(parts, ", ")
    }
}

/// `{ id, other }`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Coded {
    /// Code (`RA000585`, ELF code).
    pub id: Option<String>,
    /// Free text when there is no code.
    pub other: Option<String>,
}

/// `{ lei, name }`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Successor {
    /// LEI.
    pub lei: Option<String>,
    /// Name.
    pub name: Option<String>,
}

/// `entity`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Entity {
    /// Legal name.
    pub legal_name: Option<Name>,
    /// Other names.
    pub other_names: Option<Vec<Name>>,
    /// Legal address.
    pub legal_address: Option<Address>,
    /// Headquarters.
    pub headquarters_address: Option<Address>,
    /// Registration authority.
    pub registered_at: Option<Coded>,
    /// Local register number.
    pub registered_as: Option<String>,
    /// Jurisdiction.
    pub jurisdiction: Option<String>,
    /// ELF code.
    pub legal_form: Option<Coded>,
    /// `ACTIVE`, `INACTIVE`.
    pub status: Option<String>,
    /// Successor (one).
    pub successor_entity: Option<Successor>,
    /// Successors (several).
    pub successor_entities: Option<Vec<Successor>>,
    /// Creation.
    pub creation_date: Option<String>,
}

/// `registration`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Registration {
    /// `ISSUED`, `LAPSED` …
    pub status: Option<String>,
    /// Next renewal.
    pub next_renewal_date: Option<String>,
}

fn date(s: Option<&str>) -> Option<String> {
    // `2026-07-04T00:00:00Z` → `2026-07-04`: the time is noise.
    some(s).map(|d| d.get(..10).map(str::to_string).unwrap_or(d))
}

fn who(name: Option<&str>, lei: Option<&str>) -> Option<String> {
    match (some(name), some(lei)) {
        (Some(n), Some(l)) => Some(format!("{n} (LEI {l})")),
        (Some(n), None) => Some(n),
        (None, Some(l)) => Some(format!("LEI {l}")),
        (None, None) => None,
    }
}

/// The record of an LEI record and its parents (`NAME (LEI …)`).
pub fn record(rec: &LeiRecord, direct: Option<&LeiRecord>, ultimate: Option<&LeiRecord>) -> Record {
    let mut r = Record::default();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            r.fields.insert(k.to_string(), FieldValue::Text(v));
        }
    };
    let e = &rec.attributes.entity;
    put(
        fields::NAME,
        e.legal_name.as_ref().and_then(|n| some(n.name.as_deref())),
    );
    put(
        fields::LEGAL_ADDRESS,
        e.legal_address.as_ref().map(Address::line),
    );
    put(
        fields::HEADQUARTERS_ADDRESS,
        e.headquarters_address.as_ref().map(Address::line),
    );
    put(
        fields::COMPANY_TYPE,
        e.legal_form
            .as_ref()
            .map(|f| join_some([&f.id, &f.other], " ")),
    );
    put(fields::ENTITY_STATUS, some(e.status.as_deref()));
    put(fields::JURISDICTION, some(e.jurisdiction.as_deref()));
    put(fields::INCORPORATED_ON, date(e.creation_date.as_deref()));
    put(
        fields::REGISTERED_AT,
        Some(join_some(
            [
                &e.registered_at
                    .as_ref()
                    .and_then(|a| a.id.clone().or(a.other.clone())),
                &e.registered_as,
            ],
            " ",
        )),
    );
    let reg = &rec.attributes.registration;
    put(fields::REGISTRATION_STATUS, some(reg.status.as_deref()));
    put(fields::NEXT_RENEWAL, date(reg.next_renewal_date.as_deref()));
    let parent = |p: Option<&LeiRecord>| {
        p.and_then(|p| {
            who(
                p.attributes
                    .entity
                    .legal_name
                    .as_ref()
                    .and_then(|n| n.name.as_deref()),
                p.attributes.lei.as_deref().or(p.id.as_deref()),
            )
        })
    };
    put(fields::DIRECT_PARENT, parent(direct));
    put(fields::ULTIMATE_PARENT, parent(ultimate));
    let mut successors: Vec<String> = e
        .successor_entity
        .iter()
        .chain(e.successor_entities.iter().flatten())
        .filter_map(|s| who(s.name.as_deref(), s.lei.as_deref()))
        .collect();
    successors.sort();
    successors.dedup();
    put(fields::SUCCESSOR, Some(successors.join("; ")));
    let mut others: Vec<String> = e
        .other_names
        .iter()
        .flatten()
        .filter_map(|n| {
            let name = some(n.name.as_deref())?;
            Some(match some(n.kind.as_deref()) {
                Some(k) => format!("{name} ({})", k.to_lowercase().replace('_', " ")),
                None => name,
            })
        })
        .collect();
    others.sort();
    others.dedup();
    // Present even when empty: a later name is an addition to a set.
    r.fields
        .insert(fields::OTHER_NAMES.to_string(), FieldValue::List(others));
    r
}

/// Whether the record names a parent for `rel` (`direct-parent`): a
/// `lei-record` link, not a reporting exception.
fn has_parent(rec: &LeiRecord, rel: &str) -> bool {
    rec.relationships
        .get(rel)
        .is_some_and(|r| r.links.contains_key("lei-record"))
}

pub(super) async fn read(
    reader: &mut Reader<'_>,
    base: &Url,
    lei: &str,
) -> Result<Record, RegistryError> {
    let url = join(base, &["lei-records", lei]);
    let doc: Document = reader
        .get("LEI record", &url, false)
        .await?
        .unwrap_or_default();
    let rec = doc.data.unwrap_or_default();
    let mut parents = Vec::new();
    for (rel, what) in [
        ("direct-parent", "direct parent"),
        ("ultimate-parent", "ultimate parent"),
    ] {
        let p = if has_parent(&rec, rel) {
            reader
                .get::<Document>(what, &join(&url, &[rel]), true)
                .await?
                .and_then(|d| d.data)
        } else {
            None
        };
        parents.push(p);
    }
    Ok(record(&rec, parents[0].as_ref(), parents[1].as_ref()))
}
