//! The watched nouns: an [`Entity`] and its [`Source`]s, as a watchlist
//! declares them once validated. Plain data, shared by `config` (which
//! builds them), `detect`, `check`, `alert` and the read commands.
//!
//! **Architecture Invariant:** plain data. Imports only the pure, lower
//! modules whose compiled values a source carries (`extract`'s spec,
//! `schedule`'s cron); never `config`, `store`, `fetch` or the clock.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::extract::ExtractSpec;
use crate::schedule::Schedule;

/// What a source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A company-registry record.
    Registry,
    /// A supplier catalogue (item rows).
    Catalogue,
    /// Any other page.
    Page,
}

/// A company being watched.
#[derive(Debug, Clone)]
pub struct Entity {
    /// Unique id (across all watchlists).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Other names.
    pub aliases: Vec<String>,
    /// ISO country code of registration.
    pub jurisdiction: Option<String>,
    /// Registry identifiers (`ice`, `rc`, `company_number`, `lei` …).
    pub identifiers: BTreeMap<String, String>,
    /// Declared/baseline activity codes, `SCHEME:CODE`.
    pub activity: Vec<String>,
    /// Tags (subscribers filter on them).
    pub tags: Vec<String>,
    /// Name of the watchlist that declares it.
    pub watchlist: String,
    /// Its sources.
    pub sources: Vec<Source>,
}

/// One configured target of an entity.
#[derive(Debug, Clone)]
pub struct Source {
    /// Id, unique within the entity.
    pub id: String,
    /// Owning entity id.
    pub entity: String,
    /// What it is.
    pub kind: SourceKind,
    /// The (first) URL.
    pub url: Url,
    /// When it is checked.
    pub schedule: Schedule,
    /// How bodies become records (shared by every source with the same
    /// spec).
    pub spec: Arc<ExtractSpec>,
    /// Per-source override of `[http] allow_private_addresses`.
    pub allow_private_addresses: Option<bool>,
    /// A built-in registry adapter (`adapter = "companies-house"` …): the
    /// URL is derived from `[registries.*]` and the record built by
    /// `crate::registry`, not by `spec`.
    pub adapter: Option<Adapter>,
}

/// A built-in registry adapter and the identifier it looks up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "adapter", rename_all = "kebab-case")]
pub enum Adapter {
    /// UK Companies House, by company number (8 characters, leading zeros kept).
    CompaniesHouse {
        /// e.g. `01234567`, `SC123456`.
        company_number: String,
    },
    /// GLEIF, by LEI.
    Gleif {
        /// 20 characters, ISO 17442.
        lei: String,
    },
    /// OpenCorporates, by jurisdiction code and company number.
    #[serde(rename = "opencorporates")]
    OpenCorporates {
        /// e.g. `gb`, `us_ca`.
        jurisdiction: String,
        /// As the registry writes it.
        company_number: String,
    },
}

impl Adapter {
    /// The name as a watchlist writes it.
    pub fn name(&self) -> &'static str {
        match self {
            Adapter::CompaniesHouse { .. } => "companies-house",
            Adapter::Gleif { .. } => "gleif",
            Adapter::OpenCorporates { .. } => "opencorporates",
        }
    }

    /// The identifier looked up, as shown to people (`gb/01234567` for
    /// OpenCorporates).
    pub fn identifier(&self) -> String {
        match self {
            Adapter::CompaniesHouse { company_number } => company_number.clone(),
            Adapter::Gleif { lei } => lei.clone(),
            Adapter::OpenCorporates {
                jurisdiction,
                company_number,
            } => format!("{jurisdiction}/{company_number}"),
        }
    }
}

impl Source {
    /// `entity/source`, the key used on the command line and in the store.
    pub fn key(&self) -> String {
        format!("{}/{}", self.entity, self.id)
    }
}
