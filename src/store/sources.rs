//! The `sources` tree: `entity/source` → [`SourceState`] (JSON), what a
//! check remembers about a source between checks.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::codec::{dec, enc, entries, get};
use super::error::Fault;
use super::inner::Inner;
use super::{Store, StoreError};
use crate::record::CheckStatus;

/// What the store remembers about one source between checks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceState {
    /// Last check, whatever its outcome.
    pub last_check: Option<DateTime<Utc>>,
    /// Its outcome.
    pub last_status: Option<CheckStatus>,
    /// Its error, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Last successful check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<DateTime<Utc>>,
    /// Failed checks in a row.
    #[serde(default)]
    pub consecutive_failures: u32,
    /// `ETag` of the last good response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// `Last-Modified` of the last good response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    /// Hash of the last good body (an equal body is not parsed again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_hash: Option<String>,
    /// Latest snapshot id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_snapshot: Option<u64>,
    /// Each page of a paginated source as last read whole, page 1 first:
    /// its validators and the next link it had (empty for one-page
    /// sources and in states written before pages were tracked).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pages: Vec<PageValidators>,
}

/// One page of a paginated source, as its last good check saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageValidators {
    /// The URL requested.
    pub url: String,
    /// Its `ETag`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Its `Last-Modified`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    /// The next page it linked (`None` on the last page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// A site page: the hash of its body (its raw body and its scan are
    /// blobs under it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// A site page: links followed from the home page to reach it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<u32>,
}

impl Store {
    /// A source's state.
    pub fn source_state(&self, source: &str) -> Result<Option<SourceState>, StoreError> {
        self.run(|i| i.source_state(source))
    }

    /// Every source state, by `entity/source`.
    pub fn source_states(&self) -> Result<Vec<(String, SourceState)>, StoreError> {
        self.run(|i| i.source_states())
    }

    /// Writes only a source's state (an unchanged or failed check). Not
    /// flushed: losing it in a crash loses nothing but a timestamp.
    pub fn put_source_state(&self, source: &str, state: &SourceState) -> Result<(), StoreError> {
        self.run(|i| i.put_source_state(source, state))
    }
}

impl Inner {
    /// A source's state.
    pub(super) fn source_state(&self, source: &str) -> Result<Option<SourceState>, Fault> {
        get(&self.sources, source, dec)
    }

    /// Every source state, by `entity/source`.
    pub(super) fn source_states(&self) -> Result<Vec<(String, SourceState)>, Fault> {
        entries(&self.sources)
    }

    /// Writes only a source's state (an unchanged or failed check). Not
    /// flushed: losing it in a crash loses nothing but a timestamp.
    pub(super) fn put_source_state(&self, source: &str, state: &SourceState) -> Result<(), Fault> {
        self.sources.insert(source.as_bytes(), enc(state))?;
        Ok(())
    }
}
