//! Built-in registry adapters: Companies House, GLEIF and OpenCorporates.
//! A source with `adapter = "…"` has no selectors: its URLs are derived
//! from `[registries.*]` and its API responses become one typed
//! [`Record`] (field names in [`crate::detect::registry::fields`]), which
//! the ordinary diff, rules and store then handle. One check may take
//! several requests (Companies House: profile, officers, persons with
//! significant control, filing history); they are committed as one
//! snapshot, their bodies concatenated as its evidence.
//!
//! **Architecture Invariant:** credentials travel only as [`Auth`] (HTTP
//! Basic or a query parameter added by `fetch`); no URL this module
//! returns or reports holds one, and [`Secret`]'s `Debug` hides it.

pub mod companies_house;
pub mod gleif;
pub mod opencorporates;
pub mod stream;

use serde::de::DeserializeOwned;
use url::Url;

use crate::fetch::{Auth, Conditional, FetchError, Fetcher};
use crate::model::Adapter;
use crate::record::Record;

/// Companies House's public data API.
pub const COMPANIES_HOUSE_BASE: &str = "https://api.company-information.service.gov.uk";
/// Companies House's streaming API.
pub const COMPANIES_HOUSE_STREAM: &str = "https://stream.companieshouse.gov.uk";
/// GLEIF's LEI API.
pub const GLEIF_BASE: &str = "https://api.gleif.org/api/v1";
/// OpenCorporates' API.
pub const OPENCORPORATES_BASE: &str = "https://api.opencorporates.com/v0.4";

/// An API key. `Debug` never shows it; [`Secret::expose`] is the one way
/// to read it, for the request itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a key (surrounding whitespace, e.g. a file's newline, removed).
    pub fn new(key: &str) -> Secret {
        Secret(key.trim().to_string())
    }

    /// The key, for the request that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// One `[registries.NAME]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrySettings {
    /// `base_url`: the API root (default: the public API).
    pub base_url: Url,
    /// `stream_url` (Companies House only).
    pub stream_url: Option<Url>,
    /// From `api_key_file` or `api_key_env`.
    pub api_key: Option<Secret>,
    /// From `stream_api_key_file` or `stream_api_key_env` (Companies
    /// House issues stream keys apart from REST keys); `api_key` when unset.
    pub stream_key: Option<Secret>,
    /// `stream = true`: follow the streaming API in `run` (Companies House).
    pub stream: bool,
}

impl RegistrySettings {
    fn public(base: &str, stream: Option<&str>) -> RegistrySettings {
        RegistrySettings {
            // Only ever called with the constants above, which parse.
            base_url: Url::parse(base).expect("built-in registry URL"),
            stream_url: stream.and_then(|s| Url::parse(s).ok()),
            api_key: None,
            stream_key: None,
            stream: false,
        }
    }
}

/// `[registries]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registries {
    /// `[registries.companies_house]`.
    pub companies_house: RegistrySettings,
    /// `[registries.gleif]`.
    pub gleif: RegistrySettings,
    /// `[registries.opencorporates]`.
    pub opencorporates: RegistrySettings,
}

impl Default for Registries {
    fn default() -> Self {
        Registries {
            companies_house: RegistrySettings::public(
                COMPANIES_HOUSE_BASE,
                Some(COMPANIES_HOUSE_STREAM),
            ),
            gleif: RegistrySettings::public(GLEIF_BASE, None),
            opencorporates: RegistrySettings::public(OPENCORPORATES_BASE, None),
        }
    }
}

impl Registries {
    /// The settings an adapter uses.
    pub fn of(&self, adapter: &Adapter) -> &RegistrySettings {
        match adapter {
            Adapter::CompaniesHouse { .. } => &self.companies_house,
            Adapter::Gleif { .. } => &self.gleif,
            Adapter::OpenCorporates { .. } => &self.opencorporates,
        }
    }

    /// The adapter's main URL (the profile, the LEI record, the company):
    /// what a source shows as its URL. Never holds a credential.
    pub fn url(&self, adapter: &Adapter) -> Url {
        let base = &self.of(adapter).base_url;
        match adapter {
            Adapter::CompaniesHouse { company_number } => join(base, &["company", company_number]),
            Adapter::Gleif { lei } => join(base, &["lei-records", lei]),
            Adapter::OpenCorporates {
                jurisdiction,
                company_number,
            } => join(base, &["companies", jurisdiction, company_number]),
        }
    }
}

/// `base` with path segments appended (each percent-encoded).
pub(crate) fn join(base: &Url, segments: &[&str]) -> Url {
    let mut u = base.clone();
    if let Ok(mut p) = u.path_segments_mut() {
        p.pop_if_empty();
        p.extend(segments);
    }
    u
}

/// What one check of an adapter source read.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The typed record.
    pub record: Record,
    /// Every response body, each after a `GET URL` line: the evidence.
    pub body: Vec<u8>,
    /// Status of the main response.
    pub status: u16,
    /// Requests made.
    pub requests: u32,
    /// Each response, with where its body sits in `body` (evidence).
    pub responses: Vec<crate::record::ResponseMeta>,
}

/// Why an adapter could not read its record.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// A request failed.
    #[error("{adapter} {what} ({url})")]
    Fetch {
        /// Adapter name.
        adapter: &'static str,
        /// What was asked (`profile`, `officers` …).
        what: &'static str,
        /// The URL, without credentials.
        url: String,
        /// Why.
        #[source]
        source: FetchError,
    },
    /// A response was not the JSON the API documents.
    #[error(
        "{adapter} {what} ({url}): the response is not the JSON this API sends; is base_url right?"
    )]
    Parse {
        /// Adapter name.
        adapter: &'static str,
        /// What was asked.
        what: &'static str,
        /// The URL, without credentials.
        url: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

impl RegistryError {
    /// The fetch error behind it, if any (transient? `Retry-After`?).
    pub fn fetch_error(&self) -> Option<&FetchError> {
        match self {
            RegistryError::Fetch { source, .. } => Some(source),
            RegistryError::Parse { .. } => None,
        }
    }
}

/// Reads the record of one adapter source.
pub async fn fetch(
    fetcher: &Fetcher,
    registries: &Registries,
    adapter: &Adapter,
) -> Result<Fetched, RegistryError> {
    let settings = registries.of(adapter);
    let mut reader = Reader {
        fetcher,
        adapter: adapter.name(),
        auth: auth(adapter, settings),
        body: Vec::new(),
        requests: 0,
        status: None,
        responses: Vec::new(),
    };
    let record = match adapter {
        Adapter::CompaniesHouse { company_number } => {
            companies_house::read(&mut reader, &settings.base_url, company_number).await?
        }
        Adapter::Gleif { lei } => gleif::read(&mut reader, &settings.base_url, lei).await?,
        Adapter::OpenCorporates {
            jurisdiction,
            company_number,
        } => {
            opencorporates::read(
                &mut reader,
                &settings.base_url,
                jurisdiction,
                company_number,
            )
            .await?
        }
    };
    Ok(Fetched {
        record,
        body: reader.body,
        status: reader.status.unwrap_or(200),
        requests: reader.requests,
        responses: reader.responses,
    })
}

fn auth(adapter: &Adapter, settings: &RegistrySettings) -> Auth {
    match (adapter, &settings.api_key) {
        (Adapter::CompaniesHouse { .. }, Some(k)) => Auth::Basic {
            user: k.expose().to_string(),
        },
        (Adapter::OpenCorporates { .. }, Some(k)) => Auth::Query {
            name: "api_token",
            value: k.expose().to_string(),
        },
        _ => Auth::None,
    }
}

/// The requests of one check: credentials, evidence, count.
pub(crate) struct Reader<'a> {
    fetcher: &'a Fetcher,
    adapter: &'static str,
    auth: Auth,
    body: Vec<u8>,
    requests: u32,
    status: Option<u16>,
    responses: Vec<crate::record::ResponseMeta>,
}

impl Reader<'_> {
    /// GETs `url` and parses it as `T`; `Ok(None)` for a 404 when
    /// `missing_ok` (Companies House answers 404 for an empty list).
    pub(crate) async fn get<T: DeserializeOwned>(
        &mut self,
        what: &'static str,
        url: &Url,
        missing_ok: bool,
    ) -> Result<Option<T>, RegistryError> {
        self.requests += 1;
        let resp = match self
            .fetcher
            .fetch_with(url, &Conditional::default(), &self.auth)
            .await
        {
            Ok(r) => r,
            Err(FetchError::HttpStatus { status: 404, .. }) if missing_ok => return Ok(None),
            Err(source) => {
                return Err(RegistryError::Fetch {
                    adapter: self.adapter,
                    what,
                    url: url.to_string(),
                    source,
                });
            }
        };
        self.status.get_or_insert(resp.status);
        if !self.body.is_empty() {
            self.body.push(b'\n');
        }
        self.body
            .extend_from_slice(format!("GET {url}\n").as_bytes());
        self.responses.push(resp.evidence(url, self.body.len()));
        self.body.extend_from_slice(&resp.body);
        serde_json::from_slice(&resp.body)
            .map(Some)
            .map_err(|source| RegistryError::Parse {
                adapter: self.adapter,
                what,
                url: url.to_string(),
                source,
            })
    }
}

/// Non-empty parts joined by `sep`.
pub(crate) fn join_some<'a>(
    parts: impl IntoIterator<Item = &'a Option<String>>,
    sep: &str,
) -> String {
    parts
        .into_iter()
        .filter_map(|p| p.as_deref().map(str::trim).filter(|s| !s.is_empty()))
        .collect::<Vec<_>>()
        .join(sep)
}

/// `Some(text)` unless empty.
pub(crate) fn some(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}
