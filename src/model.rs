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
    /// A whole website, no selectors: discovery and mentions (`crate::site`).
    Site,
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
    /// The bounds of a `kind = "site"` source (`None` for the others).
    pub site: Option<Arc<SiteSpec>>,
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

/// The bounds of a whole-site source: how far discovery goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteSpec {
    /// Most pages read in one check (`max_pages`, default
    /// [`SiteSpec::DEFAULT_MAX_PAGES`]).
    pub max_pages: u32,
    /// Most links followed from the home page (`max_depth`, default
    /// [`SiteSpec::DEFAULT_MAX_DEPTH`]).
    pub max_depth: u32,
    /// `include` URL patterns: when any, only matching pages count for
    /// mentions (others are still read for their links).
    pub include: Vec<UrlPattern>,
    /// `exclude` URL patterns: matching pages are never fetched.
    pub exclude: Vec<UrlPattern>,
}

impl SiteSpec {
    /// Default `max_pages`.
    pub const DEFAULT_MAX_PAGES: u32 = 200;
    /// Default `max_depth`.
    pub const DEFAULT_MAX_DEPTH: u32 = 4;
}

impl Default for SiteSpec {
    fn default() -> Self {
        SiteSpec {
            max_pages: Self::DEFAULT_MAX_PAGES,
            max_depth: Self::DEFAULT_MAX_DEPTH,
            include: vec![],
            exclude: vec![],
        }
    }
}

/// A URL pattern of `include`/`exclude`: matched against the path and
/// query (`/produits/*`); `*` is any run of characters, and a pattern
/// without `*` matches that path and everything under it.
#[derive(Debug, Clone)]
pub struct UrlPattern {
    /// As written.
    pub text: String,
    regex: regex::Regex,
}

impl PartialEq for UrlPattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}
impl Eq for UrlPattern {}

impl UrlPattern {
    /// Compiles a pattern; it must start with `/`.
    pub fn new(text: &str) -> Result<UrlPattern, String> {
        if !text.starts_with('/') {
            return Err(format!(
                "URL pattern {text:?} must start with `/` (a path, like \"/produits/*\")"
            ));
        }
        let mut re = String::from("^");
        for (i, part) in text.split('*').enumerate() {
            if i > 0 {
                re.push_str(".*");
            }
            re.push_str(&regex::escape(part));
        }
        if !text.contains('*') {
            re.push_str("(?:[/?#].*)?");
        }
        re.push('$');
        let regex = regex::Regex::new(&re).map_err(|e| format!("URL pattern {text:?}: {e}"))?;
        Ok(UrlPattern {
            text: text.to_string(),
            regex,
        })
    }

    /// Whether `path_and_query` (`/produits/a?x=1`) matches.
    pub fn matches(&self, path_and_query: &str) -> bool {
        self.regex.is_match(path_and_query)
    }
}

impl Source {
    /// `entity/source`, the key used on the command line and in the store.
    pub fn key(&self) -> String {
        format!("{}/{}", self.entity, self.id)
    }
}
