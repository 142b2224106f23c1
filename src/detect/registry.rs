//! Records of the built-in registry adapters (`crate::registry`): the
//! field names they fill, the sentences their changes read as, and the
//! free-zone list an address move is judged against.
//!
//! **Architecture Invariant:** pure. The adapters write these field names;
//! `registry_change` reads them; both sides use the constants here.

use std::sync::OnceLock;

use crate::extract::fold;
use crate::record::Change;

/// Field names of adapter records.
pub mod fields {
    /// Current legal name.
    pub const NAME: &str = "name";
    /// Earlier names, `NAME (FROM to UNTIL)`.
    pub const PREVIOUS_NAMES: &str = "previous_names";
    /// Other names (GLEIF `otherNames`, OpenCorporates alternative names).
    pub const OTHER_NAMES: &str = "other_names";
    /// Company status (`active`, `liquidation`, `dissolved` …).
    pub const STATUS: &str = "status";
    /// Company type (`ltd`, `plc` …) or legal form.
    pub const COMPANY_TYPE: &str = "company_type";
    /// Date of incorporation / creation.
    pub const INCORPORATED_ON: &str = "incorporated_on";
    /// Date of cessation / dissolution.
    pub const CESSATION_DATE: &str = "cessation_date";
    /// Registered office, one line.
    pub const REGISTERED_ADDRESS: &str = "registered_address";
    /// Activity codes, `SCHEME:CODE` (`SIC:46520`).
    pub const SIC_CODES: &str = "sic_codes";
    /// Industry codes (OpenCorporates), `SCHEME:CODE` where known.
    pub const INDUSTRY_CODES: &str = "industry_codes";
    /// Active officers, `NAME (role, appointed DATE…)`.
    pub const OFFICERS: &str = "officers";
    /// Officers who resigned: the active form with `, resigned DATE` before `)`.
    pub const RESIGNED_OFFICERS: &str = "resigned_officers";
    /// Active persons with significant control, `NAME (kind; natures; notified DATE)`.
    pub const PSCS: &str = "pscs";
    /// Ceased persons with significant control: the active form with `; ceased DATE`.
    pub const CEASED_PSCS: &str = "ceased_pscs";
    /// Latest filings, `DATE TYPE: description`.
    pub const LATEST_FILINGS: &str = "latest_filings";
    /// GLEIF legal address.
    pub const LEGAL_ADDRESS: &str = "legal_address";
    /// GLEIF headquarters address.
    pub const HEADQUARTERS_ADDRESS: &str = "headquarters_address";
    /// GLEIF entity status (ACTIVE, INACTIVE).
    pub const ENTITY_STATUS: &str = "entity_status";
    /// GLEIF registration status (ISSUED, LAPSED …).
    pub const REGISTRATION_STATUS: &str = "registration_status";
    /// GLEIF next renewal date.
    pub const NEXT_RENEWAL: &str = "next_renewal";
    /// GLEIF registration authority and local id, `RA000585 04366849`.
    pub const REGISTERED_AT: &str = "registered_at";
    /// Jurisdiction as the registry writes it.
    pub const JURISDICTION: &str = "jurisdiction";
    /// GLEIF direct parent, `NAME (LEI)`.
    pub const DIRECT_PARENT: &str = "direct_parent";
    /// GLEIF ultimate parent, `NAME (LEI)`.
    pub const ULTIMATE_PARENT: &str = "ultimate_parent";
    /// GLEIF successor entity, `NAME (LEI)`.
    pub const SUCCESSOR: &str = "successor";
}

/// The free zones of `data/free_zones.csv` (name, country), folded.
fn free_zones() -> &'static [(String, String, String)] {
    static ZONES: OnceLock<Vec<(String, String, String)>> = OnceLock::new();
    ZONES.get_or_init(|| {
        include_str!("../../data/free_zones.csv")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .skip(1) // header
            .filter_map(|l| {
                let mut parts = l.splitn(3, ',');
                let name = parts.next()?.trim();
                let country = parts.next()?.trim();
                Some((fold(name), name.to_string(), country.to_string()))
            })
            .collect()
    })
}

/// The named free zone an address lies in (from `data/free_zones.csv`),
/// as `Name (CC)`.
pub(crate) fn named_free_zone(address: &str) -> Option<String> {
    let a = fold(address);
    free_zones()
        .iter()
        .find(|(folded, _, _)| a.contains(folded.as_str()))
        .map(|(_, name, cc)| format!("{name} ({cc})"))
}

fn quoted(v: Option<&str>) -> String {
    match v {
        Some(v) => format!("\"{v}\""),
        None => "(nothing)".to_string(),
    }
}

/// Whether `removed` (an active officer or PSC) reappears in `all` as an
/// added value of `ended_field` that extends it (`…, resigned DATE)`).
fn ended(all: &[Change], ended_field: &str, removed: &str) -> bool {
    let stem = fold(removed.trim_end_matches(')'));
    all.iter().any(|c| {
        matches!(c, Change::ValueAdded { field, new } if field == ended_field && fold(new).starts_with(&stem))
    })
}

/// What a change of an adapter record says, as a sentence: `None` when the
/// field is not an adapter's (the caller describes it generically),
/// `Some(None)` when it says nothing of its own (a resignation's removal
/// from the active list, a filing that left the window of latest ones).
pub(crate) fn sentence(c: &Change, all: &[Change]) -> Option<Option<String>> {
    use fields::*;
    let s = match c {
        Change::ValueAdded { field, new } => match field.as_str() {
            OFFICERS => format!("officer appointed: {new}"),
            RESIGNED_OFFICERS => format!("officer resigned: {new}"),
            PSCS => format!("person with significant control added: {new}"),
            CEASED_PSCS => format!("person with significant control ceased: {new}"),
            PREVIOUS_NAMES => format!("previous name recorded: {new}"),
            OTHER_NAMES => format!("other name added: {new}"),
            LATEST_FILINGS => format!("new filing: {new}"),
            _ => return None,
        },
        Change::ValueRemoved { field, old } => match field.as_str() {
            OFFICERS if ended(all, RESIGNED_OFFICERS, old) => return Some(None),
            OFFICERS => format!("officer no longer listed: {old}"),
            PSCS if ended(all, CEASED_PSCS, old) => return Some(None),
            PSCS => format!("person with significant control no longer listed: {old}"),
            OTHER_NAMES => format!("other name removed: {old}"),
            RESIGNED_OFFICERS | CEASED_PSCS | PREVIOUS_NAMES | LATEST_FILINGS => return Some(None),
            _ => return None,
        },
        Change::FieldChanged { field, old, new } => {
            let (o, n) = (quoted(old.as_deref()), quoted(new.as_deref()));
            match field.as_str() {
                NAME => format!("name changed from {o} to {n}"),
                STATUS => format!("company status changed from {o} to {n}"),
                ENTITY_STATUS => format!("entity status changed from {o} to {n}"),
                REGISTRATION_STATUS => {
                    let lapsed = new
                        .as_deref()
                        .is_some_and(|v| v.eq_ignore_ascii_case("LAPSED"));
                    format!(
                        "LEI registration status changed from {o} to {n}{}",
                        if lapsed { " (the LEI lapsed)" } else { "" }
                    )
                }
                REGISTERED_ADDRESS | LEGAL_ADDRESS | HEADQUARTERS_ADDRESS => {
                    let what = match field.as_str() {
                        REGISTERED_ADDRESS => "registered office",
                        LEGAL_ADDRESS => "legal address",
                        _ => "headquarters",
                    };
                    let zone = new
                        .as_deref()
                        .and_then(named_free_zone)
                        .filter(|_| old.as_deref().and_then(named_free_zone).is_none())
                        .map(|z| format!(", into a free zone: {z}"))
                        .unwrap_or_default();
                    format!("{what} moved from {o} to {n}{zone}")
                }
                DIRECT_PARENT => format!("direct parent changed from {o} to {n}"),
                ULTIMATE_PARENT => format!("ultimate parent changed from {o} to {n}"),
                SUCCESSOR => format!("successor entity changed from {o} to {n}"),
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(Some(s))
}
