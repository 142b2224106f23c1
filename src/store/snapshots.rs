//! Snapshot history: the `snapshots` tree (id → [`Snapshot`], zstd JSON),
//! its per-source index `source_snapshots` (`entity/source` `\0` id → `()`)
//! and the deduplicated evidence `blobs` (body hash → zstd raw body).

use super::codec::{dec_compressed, enc_compressed, get, id_from, source_prefix};
use super::error::Fault;
use super::inner::Inner;
use super::{Store, StoreError};
use crate::record::Snapshot;

/// A snapshot to commit, with the raw body kept as evidence.
#[derive(Debug, Clone)]
pub struct NewSnapshot {
    /// The snapshot; its `id` is assigned by the store.
    pub snapshot: Snapshot,
    /// The raw body (all pages).
    pub body: Vec<u8>,
}

impl Store {
    /// A snapshot by id.
    pub fn snapshot(&self, id: u64) -> Result<Option<Snapshot>, StoreError> {
        self.run(|i| i.snapshot(id))
    }

    /// Snapshot ids of a source, oldest first.
    pub fn history(&self, source: &str) -> Result<Vec<u64>, StoreError> {
        self.run(|i| i.history(source))
    }

    /// Every snapshot id with its source (`entity/source`), by source then
    /// oldest first.
    pub fn all_history(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.run(|i| i.all_history())
    }

    /// The latest snapshot of a source.
    pub fn latest_snapshot(&self, source: &str) -> Result<Option<Snapshot>, StoreError> {
        self.run(|i| i.latest_snapshot(source))
    }

    /// The raw body stored under a hash.
    pub fn blob(&self, hash: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.run(|i| i.blob(hash))
    }

    /// Stores a blob under `hash` outside a commit (a site's per-page
    /// bodies and scans, deduplicated by hash); `true` when it was new.
    /// A blob no snapshot names is harmless: blobs are never listed.
    pub fn put_blob(&self, hash: &str, body: &[u8]) -> Result<bool, StoreError> {
        self.run(|i| i.put_blob(hash, body))
    }
}

impl Inner {
    /// A snapshot by id.
    pub(super) fn snapshot(&self, id: u64) -> Result<Option<Snapshot>, Fault> {
        get(&self.snapshots, id.to_be_bytes(), dec_compressed)
    }

    /// Snapshot ids of a source, oldest first.
    pub(super) fn history(&self, source: &str) -> Result<Vec<u64>, Fault> {
        let mut out = Vec::new();
        for kv in self.source_snapshots.scan_prefix(source_prefix(source)) {
            let (k, _) = kv?;
            if let Some(id) = id_from(&k) {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// Every snapshot id with its source, in index order.
    pub(super) fn all_history(&self) -> Result<Vec<(String, u64)>, Fault> {
        let mut out = Vec::new();
        for kv in self.source_snapshots.iter() {
            let (k, _) = kv?;
            let Some(id) = id_from(&k) else { continue };
            let Some(source) = k.len().checked_sub(9).and_then(|n| k.get(..n)) else {
                continue;
            };
            out.push((String::from_utf8_lossy(source).into_owned(), id));
        }
        Ok(out)
    }

    /// The latest snapshot of a source.
    pub(super) fn latest_snapshot(&self, source: &str) -> Result<Option<Snapshot>, Fault> {
        match self
            .source_snapshots
            .scan_prefix(source_prefix(source))
            .next_back()
        {
            Some(kv) => {
                let (k, _) = kv?;
                match id_from(&k) {
                    Some(id) => self.snapshot(id),
                    None => Ok(None),
                }
            }
            None => Ok(None),
        }
    }

    /// Schema 1 → 2: every stored snapshot's items keyed again by today's
    /// [`crate::extract::item_key`] (part numbers with Cyrillic or Greek
    /// look-alike letters now key as their Latin twin, `МАХ1660ЕЕЕ` →
    /// `MAX1660EEE`), so the first check after the upgrade compares like
    /// with like instead of reporting every such item removed and added.
    /// One batch; running it again changes nothing. Returns how many
    /// snapshots changed.
    pub(super) fn rekey_snapshots(&self) -> Result<usize, Fault> {
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for kv in self.snapshots.iter() {
            let (k, v) = kv?;
            let mut snap: Snapshot = dec_compressed(&k, &v)?;
            if crate::extract::rekey(&mut snap.record) {
                batch.insert(k, enc_compressed(&snap));
                n += 1;
            }
        }
        self.snapshots.apply_batch(batch)?;
        Ok(n)
    }

    /// Stores a blob under `hash` unless one is there (zstd level 1, as
    /// the commit's); `true` when it was new.
    pub(super) fn put_blob(&self, hash: &str, body: &[u8]) -> Result<bool, Fault> {
        if self.blobs.contains_key(hash.as_bytes())? {
            return Ok(false);
        }
        let compressed = super::codec::compress(body).map_err(|e| StoreError::Blob {
            hash: hash.to_string(),
            detail: e.to_string(),
        })?;
        self.blobs.insert(hash.as_bytes(), compressed)?;
        Ok(true)
    }

    /// The raw body stored under a hash.
    pub(super) fn blob(&self, hash: &str) -> Result<Option<Vec<u8>>, Fault> {
        match self.blobs.get(hash.as_bytes())? {
            Some(v) => super::codec::decompress(&v).map(Some).map_err(|e| {
                Fault::Store(StoreError::Blob {
                    hash: hash.to_string(),
                    detail: e.to_string(),
                })
            }),
            None => Ok(None),
        }
    }
}
