//! Companies House (UK): profile, officers, persons with significant
//! control and recent filing history, four requests per check (more only
//! for a company with over 100 officers or PSCs).

use serde::Deserialize;
use url::Url;

use super::{Reader, RegistryError, join, join_some, some};
use crate::detect::registry::fields;
use crate::record::{FieldValue, Record};

/// Officers and PSCs asked per page (the API's maximum is 100).
const PAGE: usize = 100;
/// Pages of officers or PSCs read at most.
const MAX_PAGES: usize = 5;
/// Latest filings kept.
const FILINGS: usize = 10;

/// `registered_office_address`, officer and PSC addresses.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Address {
    /// c/o.
    pub care_of: Option<String>,
    /// PO box.
    pub po_box: Option<String>,
    /// Building number or name.
    pub premises: Option<String>,
    /// First line.
    pub address_line_1: Option<String>,
    /// Second line.
    pub address_line_2: Option<String>,
    /// Town.
    pub locality: Option<String>,
    /// County.
    pub region: Option<String>,
    /// Postcode.
    pub postal_code: Option<String>,
    /// Country.
    pub country: Option<String>,
}

impl Address {
    /// One line, parts separated by commas.
    pub fn line(&self) -> String {
        join_some(
            [
                &self.care_of,
                &self.po_box,
                &self.premises,
                &self.address_line_1,
                &self.address_line_2,
                &self.locality,
                &self.region,
                &self.postal_code,
                &self.country,
            ],
            ", ",
        )
    }
}

/// `previous_company_names[]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PreviousName {
    /// The name.
    pub name: Option<String>,
    /// From.
    pub effective_from: Option<String>,
    /// Until.
    pub ceased_on: Option<String>,
}

/// `GET /company/{n}`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Profile {
    /// Name.
    pub company_name: Option<String>,
    /// Number.
    pub company_number: Option<String>,
    /// `active`, `dissolved`, `liquidation` …
    pub company_status: Option<String>,
    /// `ltd`, `plc` …
    #[serde(rename = "type")]
    pub company_type: Option<String>,
    /// `england-wales` …
    pub jurisdiction: Option<String>,
    /// Incorporation.
    pub date_of_creation: Option<String>,
    /// Dissolution.
    pub date_of_cessation: Option<String>,
    /// Registered office.
    pub registered_office_address: Option<Address>,
    /// UK SIC 2007 codes, 5 digits.
    pub sic_codes: Option<Vec<String>>,
    /// Earlier names.
    pub previous_company_names: Option<Vec<PreviousName>>,
}

/// `GET /company/{n}/officers` and `/persons-with-significant-control`.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct List<T> {
    /// This page.
    pub items: Option<Vec<T>>,
    /// All pages.
    pub total_results: Option<u64>,
}

impl<T> Default for List<T> {
    fn default() -> Self {
        List {
            items: None,
            total_results: None,
        }
    }
}

/// One officer.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Officer {
    /// `SURNAME, Forenames`.
    pub name: Option<String>,
    /// `director`, `secretary` …
    pub officer_role: Option<String>,
    /// Appointed.
    pub appointed_on: Option<String>,
    /// Resigned.
    pub resigned_on: Option<String>,
    /// Nationality.
    pub nationality: Option<String>,
    /// Country of residence.
    pub country_of_residence: Option<String>,
}

/// One person with significant control.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Psc {
    /// Name (for individuals with title).
    pub name: Option<String>,
    /// `individual-person-with-significant-control` …
    pub kind: Option<String>,
    /// `ownership-of-shares-75-to-100-percent` …
    pub natures_of_control: Option<Vec<String>>,
    /// Notified.
    pub notified_on: Option<String>,
    /// Ceased.
    pub ceased_on: Option<String>,
    /// Nationality.
    pub nationality: Option<String>,
    /// Country of residence.
    pub country_of_residence: Option<String>,
}

/// `GET /company/{n}/filing-history`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Filings {
    /// Latest first.
    pub items: Option<Vec<Filing>>,
}

/// One filing.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Filing {
    /// `CS01`, `AA`, `AD01` …
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Filed on.
    pub date: Option<String>,
    /// Slug, e.g. `change-registered-office-address-company-with-date-old-address-new-address`.
    pub description: Option<String>,
}

/// A slug as words: `corporate-secretary` → `corporate secretary`.
fn words(slug: &str) -> String {
    slug.replace(['-', '_'], " ")
}

/// `NAME (role, appointed DATE, NATIONALITY, resident in COUNTRY[, resigned DATE])`.
pub fn officer_line(o: &Officer) -> Option<String> {
    let name = some(o.name.as_deref())?;
    let mut parts = vec![words(o.officer_role.as_deref().unwrap_or("officer"))];
    if let Some(d) = some(o.appointed_on.as_deref()) {
        parts.push(format!("appointed {d}"));
    }
    if let Some(n) = some(o.nationality.as_deref()) {
        parts.push(n);
    }
    if let Some(c) = some(o.country_of_residence.as_deref()) {
        parts.push(format!("resident in {c}"));
    }
    if let Some(d) = some(o.resigned_on.as_deref()) {
        parts.push(format!("resigned {d}"));
    }
    Some(format!("{name} ({})", parts.join(", ")))
}

fn psc_kind(kind: &str) -> String {
    let k = kind
        .trim_end_matches("-person-with-significant-control")
        .trim_end_matches("-with-significant-control");
    match k {
        "individual" | "individual-person" => "individual".into(),
        "corporate-entity" => "corporate entity".into(),
        "legal-person" => "legal person".into(),
        other => words(other),
    }
}

/// `NAME (kind; natures; notified DATE[; ceased DATE])`.
pub fn psc_line(p: &Psc) -> Option<String> {
    let name = some(p.name.as_deref())?;
    let mut natures: Vec<String> = p
        .natures_of_control
        .iter()
        .flatten()
        .map(|n| words(n))
        .collect();
    natures.sort();
    let mut parts = vec![psc_kind(p.kind.as_deref().unwrap_or("person"))];
    if !natures.is_empty() {
        parts.push(natures.join(", "));
    }
    if let Some(d) = some(p.notified_on.as_deref()) {
        parts.push(format!("notified {d}"));
    }
    if let Some(d) = some(p.ceased_on.as_deref()) {
        parts.push(format!("ceased {d}"));
    }
    Some(format!("{name} ({})", parts.join("; ")))
}

/// `DATE TYPE: description`.
pub fn filing_line(f: &Filing) -> Option<String> {
    let date = some(f.date.as_deref())?;
    let kind = some(f.kind.as_deref()).unwrap_or_else(|| "filing".into());
    Some(match some(f.description.as_deref()) {
        Some(d) => format!("{date} {kind}: {}", words(&d)),
        None => format!("{date} {kind}"),
    })
}

/// A UK SIC 2007 code as an activity code (`SIC:46520`).
fn sic(code: &str) -> Option<String> {
    let c = code.trim();
    (!c.is_empty()).then(|| format!("SIC:{c}"))
}

fn put(r: &mut Record, name: &str, v: Option<String>) {
    if let Some(v) = v {
        r.fields.insert(name.to_string(), FieldValue::Text(v));
    }
}

/// A list field, present even when empty: a value that appears later is
/// then an addition to a set, not a field that appeared.
fn put_list(r: &mut Record, name: &str, mut v: Vec<String>) {
    v.sort();
    v.dedup();
    r.fields.insert(name.to_string(), FieldValue::List(v));
}

/// The record of the four responses. Only what a person would call a
/// change is kept: no etags, links, counts or page positions.
pub fn record(profile: &Profile, officers: &[Officer], pscs: &[Psc], filings: &[Filing]) -> Record {
    let mut r = Record::default();
    put(&mut r, fields::NAME, some(profile.company_name.as_deref()));
    put(
        &mut r,
        fields::STATUS,
        some(profile.company_status.as_deref()),
    );
    put(
        &mut r,
        fields::COMPANY_TYPE,
        some(profile.company_type.as_deref()),
    );
    put(
        &mut r,
        fields::JURISDICTION,
        some(profile.jurisdiction.as_deref()),
    );
    put(
        &mut r,
        fields::INCORPORATED_ON,
        some(profile.date_of_creation.as_deref()),
    );
    put(
        &mut r,
        fields::CESSATION_DATE,
        some(profile.date_of_cessation.as_deref()),
    );
    put(
        &mut r,
        fields::REGISTERED_ADDRESS,
        profile
            .registered_office_address
            .as_ref()
            .map(Address::line)
            .filter(|l| !l.is_empty()),
    );
    put_list(
        &mut r,
        fields::SIC_CODES,
        profile
            .sic_codes
            .iter()
            .flatten()
            .filter_map(|c| sic(c))
            .collect(),
    );
    put_list(
        &mut r,
        fields::PREVIOUS_NAMES,
        profile
            .previous_company_names
            .iter()
            .flatten()
            .filter_map(|p| {
                let name = some(p.name.as_deref())?;
                let span = join_some([&p.effective_from, &p.ceased_on], " to ");
                Some(if span.is_empty() {
                    name
                } else {
                    format!("{name} ({span})")
                })
            })
            .collect(),
    );
    let (active, resigned): (Vec<&Officer>, Vec<&Officer>) = officers
        .iter()
        .partition(|o| some(o.resigned_on.as_deref()).is_none());
    put_list(
        &mut r,
        fields::OFFICERS,
        active.into_iter().filter_map(officer_line).collect(),
    );
    put_list(
        &mut r,
        fields::RESIGNED_OFFICERS,
        resigned.into_iter().filter_map(officer_line).collect(),
    );
    let (current, ceased): (Vec<&Psc>, Vec<&Psc>) = pscs
        .iter()
        .partition(|p| some(p.ceased_on.as_deref()).is_none());
    put_list(
        &mut r,
        fields::PSCS,
        current.into_iter().filter_map(psc_line).collect(),
    );
    put_list(
        &mut r,
        fields::CEASED_PSCS,
        ceased.into_iter().filter_map(psc_line).collect(),
    );
    put_list(
        &mut r,
        fields::LATEST_FILINGS,
        filings
            .iter()
            .take(FILINGS)
            .filter_map(filing_line)
            .collect(),
    );
    r
}

/// `url` with `items_per_page` and, when given, `start_index`.
fn paged(url: &Url, per_page: usize, start: Option<usize>) -> Url {
    let mut u = url.clone();
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("items_per_page", &per_page.to_string());
        if let Some(s) = start {
            q.append_pair("start_index", &s.to_string());
        }
    }
    u
}

/// Every page of a list (officers, PSCs), up to [`MAX_PAGES`]; a 404 is
/// an empty list.
async fn all_pages<T: serde::de::DeserializeOwned>(
    reader: &mut Reader<'_>,
    what: &'static str,
    url: &Url,
) -> Result<Vec<T>, RegistryError> {
    let mut out = Vec::new();
    for _ in 0..MAX_PAGES {
        let Some(page) = reader
            .get::<List<T>>(what, &paged(url, PAGE, Some(out.len())), true)
            .await?
        else {
            break;
        };
        let items = page.items.unwrap_or_default();
        let got = items.len();
        out.extend(items);
        let total = page.total_results.and_then(|t| usize::try_from(t).ok());
        if got == 0 || total.is_none_or(|t| out.len() >= t) {
            break;
        }
    }
    Ok(out)
}

pub(super) async fn read(
    reader: &mut Reader<'_>,
    base: &Url,
    number: &str,
) -> Result<Record, RegistryError> {
    let company = join(base, &["company", number]);
    let profile: Profile = reader
        .get("profile", &company, false)
        .await?
        .unwrap_or_default();
    let officers: Vec<Officer> =
        all_pages(reader, "officers", &join(&company, &["officers"])).await?;
    let pscs: Vec<Psc> = all_pages(
        reader,
        "persons with significant control",
        &join(&company, &["persons-with-significant-control"]),
    )
    .await?;
    let filings: Filings = reader
        .get(
            "filing history",
            &paged(&join(&company, &["filing-history"]), FILINGS, None),
            true,
        )
        .await?
        .unwrap_or_default();
    Ok(record(
        &profile,
        &officers,
        &pscs,
        filings.items.as_deref().unwrap_or_default(),
    ))
}
