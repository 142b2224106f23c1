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
}

impl Source {
    /// `entity/source`, the key used on the command line and in the store.
    pub fn key(&self) -> String {
        format!("{}/{}", self.entity, self.id)
    }
}
