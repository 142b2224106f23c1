//! OpenCorporates API v0.4: one request per check
//! (`GET /companies/{jurisdiction}/{number}`, `api_token` as a query
//! parameter added by `fetch`, never part of a shown URL).

use serde::Deserialize;
use url::Url;

use super::{Reader, RegistryError, join, join_some, some};
use crate::detect::registry::fields;
use crate::record::{FieldValue, Record};

/// `{ "api_version": "0.4", "results": { "company": … } }`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Envelope {
    /// `results`.
    pub results: Results,
}

/// `results`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Results {
    /// The company.
    pub company: Option<Company>,
}

/// A company.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Company {
    /// Name.
    pub name: Option<String>,
    /// Number.
    pub company_number: Option<String>,
    /// `gb`, `us_ca` …
    pub jurisdiction_code: Option<String>,
    /// Incorporation.
    pub incorporation_date: Option<String>,
    /// Dissolution.
    pub dissolution_date: Option<String>,
    /// Type.
    pub company_type: Option<String>,
    /// Status as the registry writes it.
    pub current_status: Option<String>,
    /// Address parts.
    pub registered_address: Option<Address>,
    /// Address in one line.
    pub registered_address_in_full: Option<String>,
    /// Earlier names.
    pub previous_names: Option<Vec<PreviousName>>,
    /// Industry codes.
    pub industry_codes: Option<Vec<IndustryCodeWrap>>,
    /// Officers.
    pub officers: Option<Vec<OfficerWrap>>,
}

/// `registered_address`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Address {
    /// Street.
    pub street_address: Option<String>,
    /// Town.
    pub locality: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Postcode.
    pub postal_code: Option<String>,
    /// Country.
    pub country: Option<String>,
}

/// `previous_names[]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PreviousName {
    /// The name.
    pub company_name: Option<String>,
    /// From.
    pub start_date: Option<String>,
    /// Until (`con_date` in older records).
    pub end_date: Option<String>,
    /// Date of change of name.
    pub con_date: Option<String>,
}

/// `{ "industry_code": … }`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct IndustryCodeWrap {
    /// The code.
    pub industry_code: IndustryCode,
}

/// One industry code.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct IndustryCode {
    /// `46520`, `46.52` …
    pub code: Option<String>,
    /// Label.
    pub description: Option<String>,
    /// `uk_sic_2007`, `eu_nace_2` …
    pub code_scheme_id: Option<String>,
}

/// `{ "officer": … }`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct OfficerWrap {
    /// The officer.
    pub officer: Officer,
}

/// One officer.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Officer {
    /// Name.
    pub name: Option<String>,
    /// `director` …
    pub position: Option<String>,
    /// Appointed.
    pub start_date: Option<String>,
    /// Resigned.
    pub end_date: Option<String>,
}

/// An industry code as an activity code the reference data reads
/// (`SIC:46520`, `NACE:46.52`); other schemes as `scheme:code`.
fn activity(c: &IndustryCode) -> Option<String> {
    let code = some(c.code.as_deref())?;
    let scheme = match c.code_scheme_id.as_deref().unwrap_or("") {
        "uk_sic_2007" => "SIC",
        "eu_nace_2" => "NACE",
        "isic_4" => "ISIC",
        "" => return Some(code),
        other => other,
    };
    Some(format!("{scheme}:{code}"))
}

/// The record of one company.
pub fn record(c: &Company) -> Record {
    let mut r = Record::default();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            r.fields.insert(k.to_string(), FieldValue::Text(v));
        }
    };
    put(fields::NAME, some(c.name.as_deref()));
    put(fields::STATUS, some(c.current_status.as_deref()));
    put(fields::COMPANY_TYPE, some(c.company_type.as_deref()));
    put(fields::JURISDICTION, some(c.jurisdiction_code.as_deref()));
    put(
        fields::INCORPORATED_ON,
        some(c.incorporation_date.as_deref()),
    );
    put(fields::CESSATION_DATE, some(c.dissolution_date.as_deref()));
    put(
        fields::REGISTERED_ADDRESS,
        some(c.registered_address_in_full.as_deref()).or_else(|| {
            c.registered_address.as_ref().map(|a| {
                join_some(
                    [
                        &a.street_address,
                        &a.locality,
                        &a.region,
                        &a.postal_code,
                        &a.country,
                    ],
                    ", ",
                )
            })
        }),
    );
    let mut lists: Vec<(&str, Vec<String>)> = Vec::new();
    lists.push((
        fields::INDUSTRY_CODES,
        c.industry_codes
            .iter()
            .flatten()
            .filter_map(|w| activity(&w.industry_code))
            .collect(),
    ));
    lists.push((
        fields::PREVIOUS_NAMES,
        c.previous_names
            .iter()
            .flatten()
            .filter_map(|p| {
                let name = some(p.company_name.as_deref())?;
                let until = p.end_date.clone().or(p.con_date.clone());
                let span = join_some([&p.start_date, &until], " to ");
                Some(if span.is_empty() {
                    name
                } else {
                    format!("{name} ({span})")
                })
            })
            .collect(),
    ));
    let line = |o: &Officer| {
        let name = some(o.name.as_deref())?;
        let mut parts = vec![some(o.position.as_deref()).unwrap_or_else(|| "officer".into())];
        if let Some(d) = some(o.start_date.as_deref()) {
            parts.push(format!("appointed {d}"));
        }
        if let Some(d) = some(o.end_date.as_deref()) {
            parts.push(format!("resigned {d}"));
        }
        Some(format!("{name} ({})", parts.join(", ")))
    };
    let officers: Vec<&Officer> = c.officers.iter().flatten().map(|w| &w.officer).collect();
    lists.push((
        fields::OFFICERS,
        officers
            .iter()
            .filter(|o| some(o.end_date.as_deref()).is_none())
            .filter_map(|o| line(o))
            .collect(),
    ));
    lists.push((
        fields::RESIGNED_OFFICERS,
        officers
            .iter()
            .filter(|o| some(o.end_date.as_deref()).is_some())
            .filter_map(|o| line(o))
            .collect(),
    ));
    // Present even when empty: a later value is an addition to a set.
    for (k, mut v) in lists {
        v.sort();
        v.dedup();
        r.fields.insert(k.to_string(), FieldValue::List(v));
    }
    r
}

pub(super) async fn read(
    reader: &mut Reader<'_>,
    base: &Url,
    jurisdiction: &str,
    number: &str,
) -> Result<Record, RegistryError> {
    let url = join(base, &["companies", jurisdiction, number]);
    let env: Envelope = reader
        .get("company", &url, false)
        .await?
        .unwrap_or_default();
    Ok(record(&env.results.company.unwrap_or_default()))
}
