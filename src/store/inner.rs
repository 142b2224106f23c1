//! The sled side of the store: the open database and its trees, and every
//! read and write on them. Errors stay sled's ([`Fault`]) until
//! [`super::Store`] maps them, with the state folder, to a [`StoreError`].

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use chrono::Utc;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::marker::{self, Marker};
use super::{
    Commit, Committed, DaemonSource, Delivery, DigestState, SourceState, StoreError, dec,
    dec_compressed, enc, enc_compressed, history_key, id_from, source_prefix,
};
use crate::record::{Finding, Snapshot};

/// A failure inside the store, before it is given its user-facing form.
#[derive(Debug)]
pub(super) enum Fault {
    /// sled failed (I/O, full disk, corruption, a sled bug).
    Sled(sled::Error),
    /// The marker could not be written.
    Marker(std::io::Error),
    /// Already a [`StoreError`] (a value that does not decode, ...).
    Store(StoreError),
}

impl From<sled::Error> for Fault {
    fn from(e: sled::Error) -> Fault {
        Fault::Sled(e)
    }
}

impl From<StoreError> for Fault {
    fn from(e: StoreError) -> Fault {
        Fault::Store(e)
    }
}

pub(super) const INSTALLATION_ID: &[u8] = b"installation_id";
/// How many flushes the store has made durable (u64, big-endian). The
/// marker records the value of the last successful one.
pub(super) const SEQ: &[u8] = b"seq";

/// The open database.
#[derive(Debug)]
pub(super) struct Inner {
    /// The state folder (the marker lives there).
    pub(super) dir: PathBuf,
    db: sled::Db,
    pub(super) meta: sled::Tree,
    sources: sled::Tree,
    pub(super) snapshots: sled::Tree,
    source_snapshots: sled::Tree,
    blobs: sled::Tree,
    findings: sled::Tree,
    finding_keys: sled::Tree,
    outbox: sled::Tree,
    sent: sled::Tree,
    digests: sled::Tree,
    daemon: sled::Tree,
    /// The installation id (set once verified against the marker).
    pub(super) installation_id: String,
    /// The sequence number the marker holds; the lock orders marker writes.
    marked: Mutex<u64>,
}

/// sled's answer to a lock held by another process.
pub(super) fn is_locked(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock
        || io.to_string().contains("could not acquire lock"))
}

impl Inner {
    /// Opens sled in `db_path` (for the state folder `dir`). The id is
    /// filled in by the caller once it is checked.
    pub(super) fn open(dir: &Path, db_path: &Path) -> Result<Inner, Fault> {
        let db = sled::Config::new()
            .path(db_path)
            .cache_capacity(64 << 20)
            .open()?;
        Ok(Inner {
            dir: dir.to_path_buf(),
            meta: db.open_tree("meta")?,
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
            installation_id: String::new(),
            marked: Mutex::new(0),
        })
    }

    /// The stored installation id, if any (never created here).
    pub(super) fn stored_id(&self) -> Result<Option<String>, Fault> {
        Ok(self
            .meta
            .get(INSTALLATION_ID)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// The stored flush sequence number (0 when there is none).
    pub(super) fn seq(&self) -> Result<u64, Fault> {
        Ok(self.meta.get(SEQ)?.and_then(|v| id_from(&v)).unwrap_or(0))
    }

    /// Creates the installation id of a new store.
    pub(super) fn create_id(&self) -> Result<String, Fault> {
        let id = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        self.meta.insert(INSTALLATION_ID, id.as_bytes())?;
        Ok(id)
    }

    /// Sets what the marker holds now (at open).
    pub(super) fn set_marked(&mut self, seq: u64) {
        *self
            .marked
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner) = seq;
    }

    /// Flushes everything written so far to disk, then records in the
    /// marker how far the store has durably got: the sequence number is
    /// bumped before the flush, so once the flush succeeded everything up
    /// to it is on disk.
    pub(super) fn flush(&self) -> Result<(), Fault> {
        let seq = self
            .meta
            .update_and_fetch(SEQ, |old| {
                let n = old.and_then(id_from).unwrap_or(0) + 1;
                Some(n.to_be_bytes().to_vec())
            })?
            .and_then(|v| id_from(&v))
            .unwrap_or(0);
        self.db.flush()?;
        let mut marked = self.marked.lock().unwrap_or_else(PoisonError::into_inner);
        if seq > *marked {
            marker::write(&self.dir, &Marker::new(&self.installation_id, seq))
                .map_err(Fault::Marker)?;
            *marked = seq;
        }
        Ok(())
    }

    /// A source's state.
    pub(super) fn source_state(&self, source: &str) -> Result<Option<SourceState>, Fault> {
        match self.sources.get(source.as_bytes())? {
            Some(v) => Ok(Some(dec(source.as_bytes(), &v)?)),
            None => Ok(None),
        }
    }

    /// Every source state, by `entity/source`.
    pub(super) fn source_states(&self) -> Result<Vec<(String, SourceState)>, Fault> {
        let mut out = Vec::new();
        for kv in self.sources.iter() {
            let (k, v) = kv?;
            out.push((String::from_utf8_lossy(&k).into_owned(), dec(&k, &v)?));
        }
        Ok(out)
    }

    /// Writes only a source's state (an unchanged or failed check). Not
    /// flushed: losing it in a crash loses nothing but a timestamp.
    pub(super) fn put_source_state(&self, source: &str, state: &SourceState) -> Result<(), Fault> {
        self.sources.insert(source.as_bytes(), enc(state))?;
        Ok(())
    }

    /// A snapshot by id.
    pub(super) fn snapshot(&self, id: u64) -> Result<Option<Snapshot>, Fault> {
        let k = id.to_be_bytes();
        match self.snapshots.get(k)? {
            Some(v) => Ok(Some(dec_compressed(&k, &v)?)),
            None => Ok(None),
        }
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

    /// The raw body stored under a hash.
    pub(super) fn blob(&self, hash: &str) -> Result<Option<Vec<u8>>, Fault> {
        match self.blobs.get(hash.as_bytes())? {
            Some(v) => zstd::decode_all(&v[..]).map(Some).map_err(|e| {
                Fault::Store(StoreError::Blob {
                    hash: hash.to_string(),
                    detail: e.to_string(),
                })
            }),
            None => Ok(None),
        }
    }

    /// Whether a finding with this dedup key was ever committed.
    pub(super) fn finding_for_key(&self, key: &str) -> Result<Option<u64>, Fault> {
        Ok(self
            .finding_keys
            .get(key.as_bytes())?
            .and_then(|v| id_from(&v)))
    }

    /// A finding by id.
    pub(super) fn finding(&self, id: u64) -> Result<Option<Finding>, Fault> {
        let k = id.to_be_bytes();
        match self.findings.get(k)? {
            Some(v) => Ok(Some(dec(&k, &v)?)),
            None => Ok(None),
        }
    }

    /// All findings, oldest first.
    pub(super) fn findings(&self) -> Result<Vec<Finding>, Fault> {
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
    pub(super) fn commit(&self, mut c: Commit) -> Result<Committed, Fault> {
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
                }
                .into());
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
            self.flush()?;
        }
        Ok(out)
    }

    /// Pending (not dead) deliveries, oldest first.
    pub(super) fn pending_deliveries(&self) -> Result<Vec<Delivery>, Fault> {
        Ok(self.outbox_all()?.into_iter().filter(|d| !d.dead).collect())
    }

    /// Every delivery in the outbox (pending and dead), oldest first.
    pub(super) fn outbox_all(&self) -> Result<Vec<Delivery>, Fault> {
        let mut out = Vec::new();
        for kv in self.outbox.iter() {
            let (k, v) = kv?;
            out.push(dec(&k, &v)?);
        }
        Ok(out)
    }

    /// Records a delivery as sent: moved from the outbox to the log, flushed.
    pub(super) fn mark_sent(&self, d: &Delivery) -> Result<(), Fault> {
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
        self.flush()?;
        Ok(())
    }

    /// Updates a delivery still in the outbox (a failed attempt, or dead).
    pub(super) fn update_delivery(&self, d: &Delivery) -> Result<(), Fault> {
        self.outbox.insert(d.id.to_be_bytes(), enc(d))?;
        self.flush()?;
        Ok(())
    }

    /// The delivery log (sent deliveries), oldest first.
    pub(super) fn sent_deliveries(&self) -> Result<Vec<Delivery>, Fault> {
        let mut out = Vec::new();
        for kv in self.sent.iter() {
            let (k, v) = kv?;
            out.push(dec(&k, &v)?);
        }
        Ok(out)
    }

    /// A delivery still in the outbox (pending or dead).
    pub(super) fn delivery(&self, id: u64) -> Result<Option<Delivery>, Fault> {
        let k = id.to_be_bytes();
        match self.outbox.get(k)? {
            Some(v) => Ok(Some(dec(&k, &v)?)),
            None => Ok(None),
        }
    }

    /// Updates several deliveries still in the outbox at once (failed
    /// attempts, dead letters, requeued ones), then flushes.
    pub(super) fn update_deliveries(&self, ds: &[Delivery]) -> Result<(), Fault> {
        let mut batch = sled::Batch::default();
        for d in ds {
            batch.insert(&d.id.to_be_bytes(), enc(d));
        }
        self.outbox.apply_batch(batch)?;
        self.flush()?;
        Ok(())
    }

    /// Marks deliveries as in flight (an attempt started), flushed before
    /// the send, so a crash mid-send is known at the next run (the mail may
    /// have arrived: "possible duplicate").
    pub(super) fn note_in_flight(&self, ds: &[Delivery]) -> Result<(), Fault> {
        self.update_deliveries(ds)
    }

    /// Moves sent deliveries (as given: `sent_at`, `attempts`, `history`
    /// already filled in) from the outbox to the log and, for a digest,
    /// records the subscriber's digest state, all in one transaction; then
    /// flushes. A delivery that is no longer in the outbox is not logged
    /// twice.
    pub(super) fn mark_sent_batch(
        &self,
        ds: &[Delivery],
        digest: Option<(&str, &DigestState)>,
    ) -> Result<(), Fault> {
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
        self.flush()?;
        Ok(())
    }

    /// When a digest subscriber last got its digest.
    pub(super) fn digest_state(&self, subscriber: &str) -> Result<Option<DigestState>, Fault> {
        match self.digests.get(subscriber.as_bytes())? {
            Some(v) => Ok(Some(dec(subscriber.as_bytes(), &v)?)),
            None => Ok(None),
        }
    }

    /// The daemon's record of a source.
    pub(super) fn daemon_source(&self, source: &str) -> Result<Option<DaemonSource>, Fault> {
        match self.daemon.get(source.as_bytes())? {
            Some(v) => Ok(Some(dec(source.as_bytes(), &v)?)),
            None => Ok(None),
        }
    }

    /// Every daemon record, by `entity/source`.
    pub(super) fn daemon_sources(&self) -> Result<Vec<(String, DaemonSource)>, Fault> {
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
    pub(super) fn put_daemon_source(&self, source: &str, d: &DaemonSource) -> Result<(), Fault> {
        self.daemon.insert(source.as_bytes(), enc(d))?;
        Ok(())
    }

    /// Forgets the daemon's record of a source (it left the watchlists).
    pub(super) fn remove_daemon_source(&self, source: &str) -> Result<(), Fault> {
        self.daemon.remove(source.as_bytes())?;
        Ok(())
    }

    /// Bytes the database occupies on disk.
    pub(super) fn size_on_disk(&self) -> Result<u64, Fault> {
        Ok(self.db.size_on_disk()?)
    }
}

/// Deletes `snap.*.generating` files left by a crash during a sled
/// snapshot; sled 0.34 may fail to start or recover wrongly with them.
pub(super) fn remove_torn_snapshots(db_path: &Path) -> std::io::Result<()> {
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
