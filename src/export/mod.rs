//! Evidence out of the store: a snapshot's body exactly as fetched, a
//! finding's evidence bundle (`bundle.rs`), and the exports: WARC/1.1
//! (`warc.rs`), FollowTheMoney entities (`ftm.rs`) and CSV of findings
//! (`csv.rs`). Each writes to a file (`--out`) or to any [`Write`].
//!
//! **Architecture Invariant:** only reads the store; what leaves it is
//! the stored bytes unchanged (bodies are never re-encoded), and every
//! file that leaves with a bundle is named, with its SHA-256, in the
//! bundle's manifest.

pub(crate) mod bundle;
mod csv;
mod ftm;
mod warc;

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::record::{Finding, Snapshot};
use crate::store::{Store, StoreError};

pub use bundle::{evidence_bundle, evidence_snapshot};

/// What `evidence` was asked for: `snapshot:ID` or `finding:ID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A snapshot: its body as fetched.
    Snapshot(u64),
    /// A finding: its evidence bundle.
    Finding(u64),
}

impl Target {
    /// Parses `snapshot:ID`, `finding:ID` (or `#ID`, as `findings` lists
    /// findings).
    pub fn parse(s: &str) -> Result<Target, ExportError> {
        let bad = || {
            ExportError::Usage(format!(
                "evidence target {s:?}: write snapshot:ID (`pivotwatch history` lists snapshot ids) \
                 or finding:ID (`pivotwatch findings` lists finding ids)"
            ))
        };
        let (kind, id) = match s.strip_prefix('#') {
            Some(id) => ("finding", id),
            None => s.split_once(':').ok_or_else(bad)?,
        };
        let id: u64 = id.trim().parse().map_err(|_| bad())?;
        match kind {
            "snapshot" | "s" => Ok(Target::Snapshot(id)),
            "finding" | "f" => Ok(Target::Finding(id)),
            _ => Err(bad()),
        }
    }
}

/// The export formats of `pivotwatch export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// WARC/1.1, one gzip member per record.
    Warc,
    /// FollowTheMoney entities, JSON lines.
    Ftm,
    /// Findings as CSV.
    Csv,
}

/// Which part of the store an export covers (`--entity`, `--source`,
/// `--since`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only this entity.
    pub entity: Option<String>,
    /// Only this source (`SOURCE` of the entity, or `ENTITY/SOURCE`).
    pub source: Option<String>,
    /// Only snapshots fetched and findings made at or after this time.
    pub since: Option<DateTime<Utc>>,
}

impl Filter {
    /// Whether `entity/source` is covered.
    pub fn covers_source(&self, key: &str) -> bool {
        let (entity, source) = key.split_once('/').unwrap_or((key, ""));
        if self.entity.as_deref().is_some_and(|e| e != entity) {
            return false;
        }
        match self.source.as_deref() {
            None => true,
            Some(s) if s.contains('/') => s == key,
            Some(s) => s == source,
        }
    }

    /// Whether a snapshot is covered.
    pub fn covers_snapshot(&self, s: &Snapshot) -> bool {
        self.covers_source(&s.source) && self.since.is_none_or(|t| s.fetched_at >= t)
    }

    /// Whether a finding is covered.
    pub fn covers_finding(&self, f: &Finding) -> bool {
        self.covers_source(&format!("{}/{}", f.entity, f.source))
            && self.since.is_none_or(|t| f.created_at >= t)
    }
}

/// Errors of `evidence` and `export`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Wrong usage, or a thing named that is not in the store.
    #[error("{0}")]
    Usage(String),
    /// A file could not be written.
    #[error("cannot write {path}")]
    File {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Writing the output failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The zip archive could not be written.
    #[error("cannot write the zip archive {path}")]
    Zip {
        /// The archive.
        path: PathBuf,
        /// What went wrong.
        source: zip::result::ZipError,
    },
    /// A stored snapshot's body is missing from the blob store.
    #[error(
        "the body of snapshot {snapshot} (BLAKE3 {hash}) is not in the store; \
         the store is damaged: restore it from a backup (README, \"Recovery\")"
    )]
    MissingBody {
        /// The snapshot.
        snapshot: u64,
        /// Its body hash.
        hash: String,
    },
}

impl ExportError {
    /// Whether this is a usage error (exit 2).
    pub fn is_usage(&self) -> bool {
        matches!(self, ExportError::Usage(_))
    }
}

/// A snapshot by id, or a usage error naming it.
pub(crate) fn snapshot(store: &Store, id: u64) -> Result<Snapshot, ExportError> {
    store.snapshot(id)?.ok_or_else(|| {
        ExportError::Usage(format!(
            "no snapshot {id} in the store (`pivotwatch history ENTITY` lists them)"
        ))
    })
}

/// A snapshot's stored body.
pub(crate) fn body(store: &Store, s: &Snapshot) -> Result<Vec<u8>, ExportError> {
    store
        .blob(&s.body_hash)?
        .ok_or_else(|| ExportError::MissingBody {
            snapshot: s.id,
            hash: s.body_hash.clone(),
        })
}

/// Runs `export FORMAT` to `out` (a file) or to `stdout`.
pub fn export(
    config: &crate::config::Config,
    store: &Store,
    format: Format,
    filter: &Filter,
    out: Option<&Path>,
    stdout: &mut dyn Write,
) -> Result<(), ExportError> {
    let run = |w: &mut dyn Write| -> Result<(), ExportError> {
        match format {
            Format::Warc => warc::export(store, filter, w),
            Format::Csv => csv::export(config, store, filter, w),
            Format::Ftm => ftm::export(config, store, filter, w),
        }
    };
    match out {
        None => run(stdout),
        Some(path) => write_file(path, |f| run(f)),
    }
}

/// Writes a file through a temporary name in its folder, renamed into
/// place once whole: a failed export never leaves a truncated file under
/// the name asked for.
pub(crate) fn write_file(
    path: &Path,
    f: impl FnOnce(&mut dyn Write) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    let file_err = |source| ExportError::File {
        path: path.to_path_buf(),
        source,
    };
    let tmp = temp_name(path);
    let file = std::fs::File::create(&tmp).map_err(file_err)?;
    let mut w = std::io::BufWriter::new(file);
    let result = f(&mut w).and_then(|()| {
        let file = w.into_inner().map_err(|e| file_err(e.into_error()))?;
        file.sync_all().map_err(file_err)
    });
    match result {
        Ok(()) => std::fs::rename(&tmp, path).map_err(file_err),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.pivotwatch-tmp"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_their_kind() {
        assert_eq!(
            Target::parse("snapshot:42").ok(),
            Some(Target::Snapshot(42))
        );
        assert_eq!(Target::parse("finding:7").ok(), Some(Target::Finding(7)));
        assert_eq!(Target::parse("#7").ok(), Some(Target::Finding(7)));
        let e = Target::parse("42").expect_err("ambiguous");
        assert!(e.to_string().contains("snapshot:ID"), "{e}");
        assert!(Target::parse("snapshot:x").is_err());
    }

    #[test]
    fn filters_by_entity_source_and_qualified_source() {
        let f = Filter {
            entity: Some("acme".into()),
            ..Filter::default()
        };
        assert!(f.covers_source("acme/shop"));
        assert!(!f.covers_source("other/shop"));
        let f = Filter {
            source: Some("acme/shop".into()),
            ..Filter::default()
        };
        assert!(f.covers_source("acme/shop"));
        assert!(!f.covers_source("acme/registry"));
        let f = Filter {
            source: Some("shop".into()),
            ..Filter::default()
        };
        assert!(f.covers_source("b/shop"));
    }
}
