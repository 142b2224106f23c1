//! One check's commit (snapshot, blob, findings, deliveries and source
//! state in one transaction) and the `findings` / `finding_keys` trees.

use chrono::Utc;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::codec::{
    dec_compressed, decoded, enc, enc_compressed, get, history_key, id_from, values,
};
use super::error::Fault;
use super::inner::Inner;
use super::{Delivery, NewSnapshot, SourceState, Store, StoreError};
use crate::record::Finding;
use std::sync::PoisonError;

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

impl Store {
    /// Whether a finding with this dedup key was ever committed.
    pub fn finding_for_key(&self, key: &str) -> Result<Option<u64>, StoreError> {
        self.run(|i| i.finding_for_key(key))
    }

    /// A finding by id.
    pub fn finding(&self, id: u64) -> Result<Option<Finding>, StoreError> {
        self.run(|i| i.finding(id))
    }

    /// All findings, oldest first, decoded at once. For small stores and
    /// tests; the read commands, exports and the status page use
    /// [`Store::each_finding`] and [`Store::newest_findings`].
    pub fn findings(&self) -> Result<Vec<Finding>, StoreError> {
        self.run(|i| i.findings())
    }

    /// Every finding, oldest first, handed to `visit` one at a time, so
    /// that a caller never holds them all: the 17 844 findings of a
    /// 100k-source store took 1101 MiB decoded at once (BENCHMARKS.md,
    /// issue 16). Stops at the first error, the store's or `visit`'s.
    pub fn each_finding<E: From<StoreError>>(
        &self,
        mut visit: impl FnMut(Finding) -> Result<(), E>,
    ) -> Result<(), E> {
        let _pause = self.h.pause.read().unwrap_or_else(PoisonError::into_inner);
        let i = self.inner()?;
        for f in decoded(i.findings.iter(), dec_compressed) {
            visit(f.map_err(|e| self.fail(e))?)?;
        }
        Ok(())
    }

    /// The newest `n` findings, newest first, read from the end of the
    /// tree (ids grow with every commit).
    pub fn newest_findings(&self, n: usize) -> Result<Vec<Finding>, StoreError> {
        self.run(|i| decoded(i.findings.iter().rev().take(n), dec_compressed).collect())
    }

    /// Commits one check: snapshot, evidence blob, findings, their
    /// deliveries and the source state, in one multi-tree transaction:
    /// either all of it is stored or none of it is. Flushed to disk before
    /// returning when it queues a delivery; otherwise at the next flush
    /// (sled's own, every 500 ms, or [`Store::flush`]). Bounded by
    /// `[store] write_timeout`.
    pub fn commit(&self, c: Commit) -> Result<Committed, StoreError> {
        self.bounded(move |i| i.commit(c))
    }
}

impl Inner {
    /// Whether a finding with this dedup key was ever committed.
    pub(super) fn finding_for_key(&self, key: &str) -> Result<Option<u64>, Fault> {
        Ok(self
            .finding_keys
            .get(key.as_bytes())?
            .and_then(|v| id_from(&v)))
    }

    /// A finding by id.
    pub(super) fn finding(&self, id: u64) -> Result<Option<Finding>, Fault> {
        get(&self.findings, id.to_be_bytes(), dec_compressed)
    }

    /// All findings, oldest first.
    pub(super) fn findings(&self) -> Result<Vec<Finding>, Fault> {
        values(&self.findings, dec_compressed)
    }

    /// Commits one check: snapshot, evidence blob, findings, their
    /// deliveries and the source state, in one multi-tree transaction:
    /// either all of it is stored or none of it is. Flushed to disk before
    /// returning when it queues a delivery; otherwise at the next flush
    /// (sled's own, every 500 ms, or [`Store::flush`]).
    pub(super) fn commit(&self, mut c: Commit) -> Result<Committed, Fault> {
        // A collection pass removes no blob while this commit, which may
        // rely on one being stored, is under way.
        let _gc = self
            .gc_lock
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
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
                    super::codec::compress(&ns.body).map_err(|e| StoreError::Blob {
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
        // Findings are compressed like snapshots (schema version 3): one
        // carries its evidence items and facts, ~17 KB of JSON each at
        // 100k sources (BENCHMARKS.md, issue 16).
        let finding_bytes: Vec<Vec<u8>> = out.findings.iter().map(enc_compressed).collect();
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
                for (f, bytes) in out.findings.iter().zip(&finding_bytes) {
                    findings.insert(&f.id.to_be_bytes(), bytes.as_slice())?;
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
}

/// A finding for the store's tests: rule `r` of watchlist `w`, severity
/// high, summary `s`, no evidence.
#[cfg(test)]
pub(super) fn test_finding(
    entity: &str,
    source: &str,
    dedup_key: String,
    at: chrono::DateTime<Utc>,
) -> Finding {
    Finding {
        id: 0,
        entity: entity.into(),
        source: source.into(),
        watchlist: "w".into(),
        rule: "r".into(),
        severity: crate::record::Severity::High,
        summary: "s".into(),
        explanation: String::new(),
        evidence: crate::record::Evidence::default(),
        dedup_key,
        escalation_keys: vec![],
        created_at: at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(n: usize) -> Finding {
        let mut f = test_finding(&format!("e{n}"), "s", format!("k{n}"), Utc::now());
        f.summary = format!("finding {n}");
        f
    }

    fn store_with(n: usize) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        for i in 0..n {
            store
                .commit(Commit {
                    source: format!("e{i}/s"),
                    state: SourceState::default(),
                    snapshot: None,
                    findings: vec![finding(i)],
                    deliveries: vec![vec![]],
                })
                .expect("commit");
        }
        (dir, store)
    }

    #[test]
    fn each_finding_visits_them_all_oldest_first_and_stops_at_the_visitors_error() {
        let (_dir, store) = store_with(300);
        let all = store.findings().expect("findings");
        let mut seen = Vec::new();
        store
            .each_finding(|f| -> Result<(), StoreError> {
                seen.push(f);
                Ok(())
            })
            .expect("each");
        assert_eq!(seen.len(), 300);
        assert_eq!(
            seen.iter().map(|f| f.id).collect::<Vec<_>>(),
            all.iter().map(|f| f.id).collect::<Vec<_>>()
        );
        assert_eq!(seen[0].summary, "finding 0");
        // The visitor's own error ends the walk and comes back unchanged.
        #[derive(Debug)]
        enum Stop {
            Visitor(usize),
            Store(StoreError),
        }
        impl From<StoreError> for Stop {
            fn from(e: StoreError) -> Stop {
                Stop::Store(e)
            }
        }
        let mut visited = 0;
        let err = store
            .each_finding(|_| {
                visited += 1;
                if visited == 7 {
                    Err(Stop::Visitor(visited))
                } else {
                    Ok(())
                }
            })
            .expect_err("the visitor failed");
        match err {
            Stop::Visitor(n) => assert_eq!(n, 7),
            Stop::Store(e) => panic!("the store failed instead: {e}"),
        }
        assert_eq!(visited, 7);
    }

    #[test]
    fn findings_are_stored_compressed_and_plain_json_ones_still_read() {
        let (_dir, store) = store_with(3);
        let inner = store.inner().expect("inner");
        for kv in inner.findings.iter() {
            let (_, v) = kv.expect("read");
            assert!(
                v.starts_with(&super::super::codec::ZSTD_MAGIC),
                "stored as JSON"
            );
        }
        // A finding written by schema version 2: plain JSON.
        let mut old = finding(99);
        old.id = inner.db.generate_id().expect("id");
        inner
            .findings
            .insert(old.id.to_be_bytes(), enc(&old))
            .expect("insert");
        drop(inner);
        let all = store.findings().expect("findings");
        assert_eq!(all.len(), 4);
        assert_eq!(all[3], old);
        assert_eq!(store.finding(old.id).expect("read"), Some(old.clone()));
        assert_eq!(store.newest_findings(1).expect("newest"), vec![old]);
        let mut n = 0;
        store
            .each_finding(|_| -> Result<(), StoreError> {
                n += 1;
                Ok(())
            })
            .expect("each");
        assert_eq!(n, 4);
    }

    #[test]
    fn newest_findings_are_the_last_n_committed_newest_first() {
        let (_dir, store) = store_with(50);
        let all = store.findings().expect("findings");
        let newest = store.newest_findings(5).expect("newest");
        let want: Vec<u64> = all.iter().rev().take(5).map(|f| f.id).collect();
        assert_eq!(newest.iter().map(|f| f.id).collect::<Vec<_>>(), want);
        assert_eq!(newest[0].summary, "finding 49");
        assert_eq!(store.newest_findings(500).expect("all").len(), 50);
        assert!(store.newest_findings(0).expect("none").is_empty());
    }
}
