//! The sled store: per-source state, snapshot history, evidence blobs,
//! findings and the delivery outbox.
//!
//! **Architecture Invariant:** the only module that imports `sled`; callers
//! never see a `sled::Tree`. It persists what it is given and decides
//! nothing: what is a finding is `detect`'s business.
//!
//! Trees (keys are big-endian so that byte order is time order):
//! - `sources`: `entity/source` → [`SourceState`] (JSON)
//! - `snapshots`: snapshot id → [`Snapshot`] (zstd-compressed JSON; the plain
//!   JSON of older stores still reads)
//! - `source_snapshots`: `entity/source` `\0` snapshot id → `()` (history index)
//! - `blobs`: body hash → zstd-compressed raw body (deduplicated evidence)
//! - `findings`: finding id → [`Finding`] (JSON)
//! - `finding_keys`: dedup key → finding id
//! - `outbox`: delivery id → [`Delivery`] (pending and dead)
//! - `sent`: delivery id → [`Delivery`] (delivery log)
//! - `digests`: subscriber name → [`DigestState`] (last digest sent)
//! - `daemon`: `entity/source` → [`DaemonSource`] (next due time and
//!   health notices of `pivotwatch run`, kept across restarts)
//! - `meta`: `installation_id` → the random id of this store, created with
//!   it (Message-IDs and Atom ids carry it, so two installations, or a store
//!   made anew, never reuse one another's ids)

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::record::{CheckStatus, Finding, Snapshot};

/// Store failures. Each says what to do next.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another process holds the database.
    #[error(
        "the store at {path} is in use by another pivotwatch process (is `pivotwatch run` running?); stop it or use another --state-dir"
    )]
    Locked {
        /// The state folder.
        path: PathBuf,
    },
    /// The folder cannot be created or read.
    #[error("cannot open the store at {path}: {source}")]
    Io {
        /// The state folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// sled reported an error (I/O, corruption, full disk).
    #[error("store error: {0}; check free disk space and permissions of the state folder")]
    Sled(#[from] sled::Error),
    /// A stored value does not decode.
    #[error(
        "stored value under {key} does not decode ({detail}); the store may be from a newer pivotwatch"
    )]
    Corrupt {
        /// Which key.
        key: String,
        /// The decoder's message.
        detail: String,
    },
    /// Compression or decompression of evidence failed.
    #[error("evidence blob {hash}: {detail}")]
    Blob {
        /// The body hash.
        hash: String,
        /// What failed.
        detail: String,
    },
}

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
}

/// A snapshot to commit, with the raw body kept as evidence.
#[derive(Debug, Clone)]
pub struct NewSnapshot {
    /// The snapshot; its `id` is assigned by the store.
    pub snapshot: Snapshot,
    /// The raw body (all pages).
    pub body: Vec<u8>,
}

/// One pending or finished delivery of a finding to a subscriber.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// Store-wide unique id.
    pub id: u64,
    /// The finding delivered.
    pub finding: u64,
    /// Subscriber name.
    pub subscriber: String,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// Attempts so far.
    #[serde(default)]
    pub attempts: u32,
    /// Not before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt: Option<DateTime<Utc>>,
    /// Last error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Given up (permanent failure).
    #[serde(default)]
    pub dead: bool,
    /// When it was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<DateTime<Utc>>,
    /// When the last attempt was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt: Option<DateTime<Utc>>,
    /// Set when an attempt starts and cleared when its outcome is recorded.
    /// Still set at the next run means the process died mid-send: the mail
    /// may have arrived, and is sent again with the same Message-ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<DateTime<Utc>>,
    /// Message-ID of the mail that carried it (the last one tried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The server's reply (or the spool file) when it was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// The most recent attempts, oldest first (at most [`MAX_ATTEMPT_LOG`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Attempt>,
}

/// How many attempts a [`Delivery`] remembers.
pub const MAX_ATTEMPT_LOG: usize = 10;

/// One delivery attempt, as recorded in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// When it was made.
    pub at: DateTime<Utc>,
    /// `sent`, `retry` (transient failure), `dead` (permanent failure),
    /// `deferred` (not tried because an earlier send to the same
    /// subscriber could not reach the server) or `requeued` (by
    /// `pivotwatch outbox retry`).
    pub outcome: String,
    /// The server's reply or the error.
    pub detail: String,
}

impl Delivery {
    /// Appends an attempt to [`Delivery::history`], keeping the last
    /// [`MAX_ATTEMPT_LOG`].
    pub fn record(&mut self, at: DateTime<Utc>, outcome: &str, detail: &str) {
        self.history.push(Attempt {
            at,
            outcome: outcome.to_string(),
            detail: detail.to_string(),
        });
        if self.history.len() > MAX_ATTEMPT_LOG {
            let extra = self.history.len() - MAX_ATTEMPT_LOG;
            self.history.drain(..extra);
        }
    }
}

/// When a digest subscriber last got its digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DigestState {
    /// When the last digest was sent.
    pub last_sent: DateTime<Utc>,
    /// Its Message-ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// How many findings it carried.
    #[serde(default)]
    pub findings: usize,
}

/// What `pivotwatch run` remembers about one source across restarts: when
/// it is next due and which health notice its maintainers got. Plain data;
/// the daemon decides what it means.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DaemonSource {
    /// When the source is next due (jitter included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_due: Option<DateTime<Utc>>,
    /// The schedule `next_due` was computed from (expression and
    /// timezone); when the configuration changes it, the time is computed
    /// again.
    #[serde(default)]
    pub schedule: String,
    /// `next_due` is an early retry after a transient failure (or a
    /// server's `Retry-After`), not a scheduled slot.
    #[serde(default)]
    pub retry: bool,
    /// When the maintainers were told the source is broken; cleared when
    /// they were told it recovered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broken_notice: Option<DateTime<Utc>>,
    /// The last notice that could not be sent (it is tried again at the
    /// next check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice_error: Option<String>,
}

/// Everything one check persists, committed atomically.
#[derive(Debug, Clone)]
pub struct Commit {
    /// `entity/source`.
    pub source: String,
    /// The new source state.
    pub state: SourceState,
    /// A new snapshot, when the record changed.
    pub snapshot: Option<NewSnapshot>,
    /// New findings; ids are assigned by the store. Each finding's
    /// evidence snapshot is set to the new snapshot's id.
    pub findings: Vec<Finding>,
    /// For each finding (same index), the subscribers to deliver it to.
    pub deliveries: Vec<Vec<String>>,
}

/// Ids assigned by a commit.
#[derive(Debug, Clone, Default)]
pub struct Committed {
    /// The new snapshot's id.
    pub snapshot: Option<u64>,
    /// The findings as stored (ids filled in).
    pub findings: Vec<Finding>,
    /// The deliveries queued.
    pub deliveries: Vec<Delivery>,
}

/// The store handle. Cheap to clone; all clones share one database.
#[derive(Clone, Debug)]
pub struct Store {
    path: PathBuf,
    db: sled::Db,
    sources: sled::Tree,
    snapshots: sled::Tree,
    source_snapshots: sled::Tree,
    blobs: sled::Tree,
    findings: sled::Tree,
    finding_keys: sled::Tree,
    outbox: sled::Tree,
    sent: sled::Tree,
    digests: sled::Tree,
    daemon: sled::Tree,
    installation_id: String,
}

fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    // Serialising plain data structs to JSON cannot fail (no maps with
    // non-string keys, no custom serialisers that error).
    serde_json::to_vec(v).unwrap_or_default()
}

fn dec<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        detail: e.to_string(),
    })
}

/// The four bytes every zstd frame starts with. A stored JSON value starts
/// with `{`, so the two encodings cannot be confused.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Snapshots are stored as zstd-compressed JSON (a 120-item catalogue:
/// ~20 KB of JSON, ~3 KB compressed); records of older stores, plain JSON,
/// still read.
fn enc_compressed<T: Serialize>(v: &T) -> Vec<u8> {
    let json = enc(v);
    zstd::bulk::compress(&json, 1).unwrap_or(json)
}

fn dec_compressed<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    if !bytes.starts_with(&ZSTD_MAGIC) {
        return dec(key, bytes);
    }
    let json = zstd::decode_all(bytes).map_err(|e| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        detail: format!("compressed record does not decompress: {e}"),
    })?;
    dec(key, &json)
}

fn source_prefix(source: &str) -> Vec<u8> {
    let mut k = source.as_bytes().to_vec();
    k.push(0);
    k
}

fn history_key(source: &str, id: u64) -> Vec<u8> {
    let mut k = source_prefix(source);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn id_from(bytes: &[u8]) -> Option<u64> {
    let arr: [u8; 8] = bytes.get(bytes.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(arr))
}

/// BLAKE3 of a body, hex.
pub fn body_hash(body: &[u8]) -> String {
    blake3::hash(body).to_hex().to_string()
}

impl Store {
    /// Opens (or creates) the store in `dir/db`. Torn `snap.*.generating`
    /// files from a crash during sled's snapshotting are removed first.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let io = |source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let db_path = dir.join("db");
        std::fs::create_dir_all(&db_path).map_err(io)?;
        remove_torn_snapshots(&db_path).map_err(io)?;
        let db = match sled::Config::new()
            .path(&db_path)
            .cache_capacity(64 << 20)
            .open()
        {
            Ok(db) => db,
            Err(sled::Error::Io(e))
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.to_string().contains("could not acquire lock") =>
            {
                return Err(StoreError::Locked {
                    path: dir.to_path_buf(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let meta = db.open_tree("meta")?;
        let installation_id = installation_id(&db, &meta)?;
        Ok(Store {
            installation_id,
            path: dir.to_path_buf(),
            sources: db.open_tree("sources")?,
            snapshots: db.open_tree("snapshots")?,
            source_snapshots: db.open_tree("source_snapshots")?,
            blobs: db.open_tree("blobs")?,
            findings: db.open_tree("findings")?,
            finding_keys: db.open_tree("finding_keys")?,
            outbox: db.open_tree("outbox")?,
            sent: db.open_tree("sent")?,
            digests: db.open_tree("digests")?,
            daemon: db.open_tree("daemon")?,
            db,
        })
    }

    /// Like [`Store::open`], but waits up to `max_wait` while the database
    /// is locked. For reopening in the same process right after a handle
    /// was dropped: sled may release its file lock a moment after the last
    /// handle goes away. Across processes, use [`Store::open`], which
    /// fails at once.
    pub fn open_waiting(dir: &Path, max_wait: std::time::Duration) -> Result<Store, StoreError> {
        let deadline = std::time::Instant::now() + max_wait;
        loop {
            match Store::open(dir) {
                Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    /// This store's installation id: 32 lowercase hex digits, random,
    /// created with the store and never changed. Ids that leave the
    /// process (Message-IDs, Atom entry ids) include it, so a store made
    /// anew or a second installation never reuses another one's ids.
    pub fn installation_id(&self) -> &str {
        &self.installation_id
    }

    /// The state folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A source's state.
    pub fn source_state(&self, source: &str) -> Result<Option<SourceState>, StoreError> {
        match self.sources.get(source.as_bytes())? {
            Some(v) => Ok(Some(dec(source.as_bytes(), &v)?)),
            None => Ok(None),
        }
    }

    /// Every source state, by `entity/source`.
    pub fn source_states(&self) -> Result<Vec<(String, SourceState)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.sources.iter() {
            let (k, v) = kv?;
            out.push((String::from_utf8_lossy(&k).into_owned(), dec(&k, &v)?));
        }
        Ok(out)
    }

    /// Writes only a source's state (an unchanged or failed check). Not
    /// flushed: losing it in a crash loses nothing but a timestamp.
    pub fn put_source_state(&self, source: &str, state: &SourceState) -> Result<(), StoreError> {
        self.sources.insert(source.as_bytes(), enc(state))?;
        Ok(())
    }

    /// A snapshot by id.
    pub fn snapshot(&self, id: u64) -> Result<Option<Snapshot>, StoreError> {
        let k = id.to_be_bytes();
        match self.snapshots.get(k)? {
            Some(v) => Ok(Some(dec_compressed(&k, &v)?)),
            None => Ok(None),
        }
    }

    /// Snapshot ids of a source, oldest first.
    pub fn history(&self, source: &str) -> Result<Vec<u64>, StoreError> {
        let mut out = Vec::new();
        for kv in self.source_snapshots.scan_prefix(source_prefix(source)) {
            let (k, _) = kv?;
            if let Some(id) = id_from(&k) {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// The latest snapshot of a source.
    pub fn latest_snapshot(&self, source: &str) -> Result<Option<Snapshot>, StoreError> {
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

    /// The raw body stored under a hash.
    pub fn blob(&self, hash: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.blobs.get(hash.as_bytes())? {
            Some(v) => zstd::decode_all(&v[..])
                .map(Some)
                .map_err(|e| StoreError::Blob {
                    hash: hash.to_string(),
                    detail: e.to_string(),
                }),
            None => Ok(None),
        }
    }

    /// Whether a finding with this dedup key was ever committed.
    pub fn finding_for_key(&self, key: &str) -> Result<Option<u64>, StoreError> {
        Ok(self
            .finding_keys
            .get(key.as_bytes())?
            .and_then(|v| id_from(&v)))
    }

    /// A finding by id.
    pub fn finding(&self, id: u64) -> Result<Option<Finding>, StoreError> {
        let k = id.to_be_bytes();
        match self.findings.get(k)? {
            Some(v) => Ok(Some(dec(&k, &v)?)),
            None => Ok(None),
        }
    }

    /// All findings, oldest first.
    pub fn findings(&self) -> Result<Vec<Finding>, StoreError> {
        let mut out = Vec::new();
        for kv in self.findings.iter() {
            let (k, v) = kv?;
            out.push(dec(&k, &v)?);
        }
        Ok(out)
    }

    /// Commits one check: snapshot, evidence blob, findings, their
    /// deliveries and the source state, in one multi-tree transaction:
    /// either all of it is stored or none of it is. Flushed to disk before
    /// returning when it queues a delivery; otherwise at the next flush
    /// (sled's own, every 500 ms, or [`Store::flush`]).
    pub fn commit(&self, mut c: Commit) -> Result<Committed, StoreError> {
        let mut out = Committed::default();
        let mut blob: Option<(String, Vec<u8>)> = None;
        if let Some(ns) = &mut c.snapshot {
            let id = self.db.generate_id()?;
            ns.snapshot.id = id;
            c.state.last_snapshot = Some(id);
            out.snapshot = Some(id);
            // A body seen before (same hash) is already stored: compress
            // only new ones. Level 1 with the size known up front (`bulk`):
            // ~2x faster than `encode_all` at level 3 on a 56 KB page, for
            // ~3 % more bytes (BENCHMARKS.md, "What changed").
            if !self.blobs.contains_key(ns.snapshot.body_hash.as_bytes())? {
                let compressed =
                    zstd::bulk::compress(&ns.body, 1).map_err(|e| StoreError::Blob {
                        hash: ns.snapshot.body_hash.clone(),
                        detail: e.to_string(),
                    })?;
                blob = Some((ns.snapshot.body_hash.clone(), compressed));
            }
        }
        // Encoded (and compressed) once, outside the transaction closure,
        // which sled may run more than once.
        let snapshot_bytes = c
            .snapshot
            .as_ref()
            .map(|ns| enc_compressed(&ns.snapshot))
            .unwrap_or_default();
        let now = Utc::now();
        for (i, f) in c.findings.iter_mut().enumerate() {
            f.id = self.db.generate_id()?;
            if let Some(id) = out.snapshot {
                f.evidence.snapshot = Some(id);
            }
            for sub in c.deliveries.get(i).into_iter().flatten() {
                out.deliveries.push(Delivery {
                    id: self.db.generate_id()?,
                    finding: f.id,
                    subscriber: sub.clone(),
                    created_at: now,
                    attempts: 0,
                    next_attempt: None,
                    last_error: None,
                    dead: false,
                    sent_at: None,
                    last_attempt: None,
                    in_flight: None,
                    message_id: None,
                    reply: None,
                    history: Vec::new(),
                });
            }
        }
        out.findings = c.findings.clone();
        let trees = (
            &self.sources,
            &self.snapshots,
            &self.source_snapshots,
            &self.blobs,
            &self.findings,
            &self.finding_keys,
            &self.outbox,
        );
        let res: Result<(), TransactionError<()>> = trees.transaction(
            |(sources, snapshots, index, blobs, findings, keys, outbox)| {
                if let Some(ns) = &c.snapshot {
                    let id = ns.snapshot.id;
                    snapshots.insert(&id.to_be_bytes(), snapshot_bytes.as_slice())?;
                    index.insert(history_key(&c.source, id), &[][..])?;
                }
                if let Some((hash, bytes)) = &blob
                    && blobs.get(hash.as_bytes())?.is_none()
                {
                    blobs.insert(hash.as_bytes(), bytes.as_slice())?;
                }
                for f in &out.findings {
                    findings.insert(&f.id.to_be_bytes(), enc(f))?;
                    keys.insert(f.dedup_key.as_bytes(), &f.id.to_be_bytes())?;
                    for k in &f.escalation_keys {
                        keys.insert(k.as_bytes(), &f.id.to_be_bytes())?;
                    }
                }
                for d in &out.deliveries {
                    outbox.insert(&d.id.to_be_bytes(), enc(d))?;
                }
                sources.insert(c.source.as_bytes(), enc(&c.state))?;
                Ok::<(), ConflictableTransactionError<()>>(())
            },
        );
        match res {
            Ok(()) => {}
            Err(TransactionError::Storage(e)) => return Err(e.into()),
            Err(TransactionError::Abort(())) => {
                return Err(StoreError::Corrupt {
                    key: c.source.clone(),
                    detail: "transaction aborted".into(),
                });
            }
        }
        // Durability: a commit that queues deliveries is flushed before it
        // returns, so no alert is sent (or acknowledged to the caller) that
        // a crash could take back. Everything else (snapshots, states,
        // findings nobody subscribes to) rides on sled's periodic flush and
        // on `Store::flush` at the end of a run: a crash loses at most that
        // window, and the next check records it again. One fsync per new
        // snapshot was ~20 % of a first pass (BENCHMARKS.md, item 4).
        if !out.deliveries.is_empty() {
            self.db.flush()?;
        }
        Ok(out)
    }

    /// Pending (not dead) deliveries, oldest first.
    pub fn pending_deliveries(&self) -> Result<Vec<Delivery>, StoreError> {
        Ok(self.outbox_all()?.into_iter().filter(|d| !d.dead).collect())
    }

    /// Every delivery in the outbox (pending and dead), oldest first.
    pub fn outbox_all(&self) -> Result<Vec<Delivery>, StoreError> {
        let mut out = Vec::new();
        for kv in self.outbox.iter() {
            let (k, v) = kv?;
            out.push(dec(&k, &v)?);
        }
        Ok(out)
    }

    /// Records a delivery as sent: moved from the outbox to the log, flushed.
    pub fn mark_sent(&self, d: &Delivery) -> Result<(), StoreError> {
        let mut d = d.clone();
        d.sent_at = Some(Utc::now());
        d.attempts += 1;
        d.last_error = None;
        let k = d.id.to_be_bytes();
        let res: Result<(), TransactionError<()>> =
            (&self.outbox, &self.sent).transaction(|(outbox, sent)| {
                outbox.remove(&k)?;
                sent.insert(&k, enc(&d))?;
                Ok::<(), ConflictableTransactionError<()>>(())
            });
        match res {
            Ok(()) => {}
            Err(TransactionError::Storage(e)) => return Err(e.into()),
            Err(TransactionError::Abort(())) => {}
        }
        self.db.flush()?;
        Ok(())
    }

    /// Updates a delivery still in the outbox (a failed attempt, or dead).
    pub fn update_delivery(&self, d: &Delivery) -> Result<(), StoreError> {
        self.outbox.insert(d.id.to_be_bytes(), enc(d))?;
        self.db.flush()?;
        Ok(())
    }

    /// The delivery log (sent deliveries), oldest first.
    pub fn sent_deliveries(&self) -> Result<Vec<Delivery>, StoreError> {
        let mut out = Vec::new();
        for kv in self.sent.iter() {
            let (k, v) = kv?;
            out.push(dec(&k, &v)?);
        }
        Ok(out)
    }

    /// A delivery still in the outbox (pending or dead).
    pub fn delivery(&self, id: u64) -> Result<Option<Delivery>, StoreError> {
        let k = id.to_be_bytes();
        match self.outbox.get(k)? {
            Some(v) => Ok(Some(dec(&k, &v)?)),
            None => Ok(None),
        }
    }

    /// Updates several deliveries still in the outbox at once (failed
    /// attempts, dead letters, requeued ones), then flushes.
    pub fn update_deliveries(&self, ds: &[Delivery]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for d in ds {
            batch.insert(&d.id.to_be_bytes(), enc(d));
        }
        self.outbox.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    /// Marks deliveries as in flight (an attempt started), flushed before
    /// the send, so a crash mid-send is known at the next run (the mail may
    /// have arrived: "possible duplicate").
    pub fn note_in_flight(&self, ds: &[Delivery]) -> Result<(), StoreError> {
        self.update_deliveries(ds)
    }

    /// Moves sent deliveries (as given: `sent_at`, `attempts`, `history`
    /// already filled in) from the outbox to the log and, for a digest,
    /// records the subscriber's digest state, all in one transaction; then
    /// flushes. A delivery that is no longer in the outbox is not logged
    /// twice.
    pub fn mark_sent_batch(
        &self,
        ds: &[Delivery],
        digest: Option<(&str, &DigestState)>,
    ) -> Result<(), StoreError> {
        let res: Result<(), TransactionError<()>> = (&self.outbox, &self.sent, &self.digests)
            .transaction(|(outbox, sent, digests)| {
                for d in ds {
                    let k = d.id.to_be_bytes();
                    if outbox.remove(&k)?.is_some() {
                        sent.insert(&k, enc(d))?;
                    }
                }
                if let Some((name, state)) = digest {
                    digests.insert(name.as_bytes(), enc(state))?;
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            });
        match res {
            Ok(()) | Err(TransactionError::Abort(())) => {}
            Err(TransactionError::Storage(e)) => return Err(e.into()),
        }
        self.db.flush()?;
        Ok(())
    }

    /// When a digest subscriber last got its digest.
    pub fn digest_state(&self, subscriber: &str) -> Result<Option<DigestState>, StoreError> {
        match self.digests.get(subscriber.as_bytes())? {
            Some(v) => Ok(Some(dec(subscriber.as_bytes(), &v)?)),
            None => Ok(None),
        }
    }

    /// The daemon's record of a source.
    pub fn daemon_source(&self, source: &str) -> Result<Option<DaemonSource>, StoreError> {
        match self.daemon.get(source.as_bytes())? {
            Some(v) => Ok(Some(dec(source.as_bytes(), &v)?)),
            None => Ok(None),
        }
    }

    /// Every daemon record, by `entity/source`.
    pub fn daemon_sources(&self) -> Result<Vec<(String, DaemonSource)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.daemon.iter() {
            let (k, v) = kv?;
            out.push((String::from_utf8_lossy(&k).into_owned(), dec(&k, &v)?));
        }
        Ok(out)
    }

    /// Writes the daemon's record of a source. Not flushed here: the
    /// daemon flushes its schedule in batches and on shutdown; a crash
    /// loses at most sled's flush window, i.e. a source is checked once
    /// more than planned.
    pub fn put_daemon_source(&self, source: &str, d: &DaemonSource) -> Result<(), StoreError> {
        self.daemon.insert(source.as_bytes(), enc(d))?;
        Ok(())
    }

    /// Forgets the daemon's record of a source (it left the watchlists).
    pub fn remove_daemon_source(&self, source: &str) -> Result<(), StoreError> {
        self.daemon.remove(source.as_bytes())?;
        Ok(())
    }

    /// Flushes everything written so far to disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }
}

const INSTALLATION_ID: &[u8] = b"installation_id";

/// Reads the installation id from the `meta` tree, creating (and flushing)
/// a random one when the store is new.
fn installation_id(db: &sled::Db, meta: &sled::Tree) -> Result<String, StoreError> {
    if let Some(v) = meta.get(INSTALLATION_ID)? {
        return match std::str::from_utf8(&v) {
            Ok(id) if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Ok(id.to_string())
            }
            _ => Err(StoreError::Corrupt {
                key: "meta/installation_id".into(),
                detail: "not 32 hex digits".into(),
            }),
        };
    }
    let id = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    // Another handle in this process may have raced us: keep the first.
    match meta.compare_and_swap(INSTALLATION_ID, None as Option<&[u8]>, Some(id.as_bytes()))? {
        Ok(()) => {
            db.flush()?;
            Ok(id)
        }
        Err(current) => match current.current {
            Some(v) => Ok(String::from_utf8_lossy(&v).into_owned()),
            None => Ok(id),
        },
    }
}

/// Deletes `snap.*.generating` files left by a crash during a sled
/// snapshot; sled 0.34 may fail to start or recover wrongly with them.
fn remove_torn_snapshots(db_path: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(db_path)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            tracing::warn!(file = %name, "Removing a torn sled snapshot file left by a crash.");
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{FieldValue, Record};

    fn snapshot(id: u64) -> Snapshot {
        let mut record = Record::default();
        record.fields.insert(
            "activity".into(),
            FieldValue::Text("46.77 Wholesale of waste and scrap".into()),
        );
        Snapshot {
            id,
            source: "acme/registry".into(),
            url: "https://registry.example/acme".into(),
            fetched_at: Utc::now(),
            http_status: 200,
            body_hash: "00".into(),
            record,
        }
    }

    #[test]
    fn snapshots_are_stored_compressed_and_plain_json_ones_still_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        // Written by this version: a zstd frame that reads back whole.
        let new = snapshot(7);
        let bytes = enc_compressed(&new);
        assert!(bytes.starts_with(&ZSTD_MAGIC));
        store
            .snapshots
            .insert(7u64.to_be_bytes(), bytes)
            .expect("insert");
        assert_eq!(store.snapshot(7).expect("read"), Some(new));
        // Written by an older version: plain JSON.
        let old = snapshot(8);
        store
            .snapshots
            .insert(8u64.to_be_bytes(), enc(&old))
            .expect("insert");
        assert_eq!(store.snapshot(8).expect("read"), Some(old));
        // A damaged frame is an error naming the record, not a panic.
        let mut torn = enc_compressed(&snapshot(9));
        torn.truncate(torn.len() / 2);
        store
            .snapshots
            .insert(9u64.to_be_bytes(), torn)
            .expect("insert");
        let err = store.snapshot(9).expect_err("torn record");
        assert!(err.to_string().contains("does not decompress"), "{err}");
    }

    #[test]
    fn installation_id_is_random_per_store_and_kept_on_reopen() {
        let a = tempfile::tempdir().expect("tempdir");
        let b = tempfile::tempdir().expect("tempdir");
        let id_a = Store::open(a.path())
            .expect("open")
            .installation_id()
            .to_string();
        let id_b = Store::open(b.path())
            .expect("open")
            .installation_id()
            .to_string();
        assert_eq!(id_a.len(), 32);
        assert_ne!(id_a, id_b, "two fresh stores share an installation id");
        let again = Store::open_waiting(a.path(), std::time::Duration::from_secs(5))
            .expect("reopen")
            .installation_id()
            .to_string();
        assert_eq!(id_a, again, "reopening changed the installation id");
    }
}
