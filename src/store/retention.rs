//! Retention: which snapshots a source keeps (`[store] keep_snapshots`,
//! `keep_for`, per-source overrides, all given as a [`RetentionPolicy`]
//! by the caller) and the collection of blobs no snapshot references.
//!
//! Never removed: a source's latest snapshot (the next check diffs
//! against it) and any snapshot a finding names (`evidence.snapshot`,
//! `evidence.previous_snapshot`), with their bodies: a finding's evidence
//! is kept for ever.
//!
//! A pass runs beside commits. Histories are read before findings, so a
//! finding committed meanwhile either is seen or names a snapshot that
//! was the latest when the histories were read. Blobs are swept in two
//! steps: the references are gathered without a lock, then, holding the
//! collection lock for writing (every commit holds it for reading, from
//! its "is this blob stored?" to its write), the snapshots committed since
//! are added and only then are the unreferenced blobs removed. The lock is
//! held only for that last step, so a commit never waits long for it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use sled::Transactional;
use sled::transaction::TransactionError;

use super::codec::{dec_compressed, decoded, history_key};
use super::error::Fault;
use super::inner::Inner;
use super::{Store, StoreError};
use crate::record::{Finding, Snapshot};

/// How many snapshots a source keeps, and for how long. `None` = no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep at most this many snapshots (the newest).
    pub keep_snapshots: Option<usize>,
    /// Drop snapshots fetched longer ago than this.
    pub keep_for: Option<Duration>,
}

impl Retention {
    /// Whether it ever drops anything.
    pub fn is_limited(&self) -> bool {
        self.keep_snapshots.is_some() || self.keep_for.is_some()
    }
}

/// The retention of every source: a default and overrides by
/// `ENTITY/SOURCE` or by `ENTITY`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// For sources without an override.
    pub default: Retention,
    /// By `ENTITY/SOURCE` (first) or `ENTITY`.
    pub overrides: BTreeMap<String, Retention>,
}

impl RetentionPolicy {
    /// The retention of `entity/source`.
    pub fn of(&self, source: &str) -> Retention {
        if let Some(r) = self.overrides.get(source) {
            return *r;
        }
        let entity = source.split_once('/').map_or(source, |(e, _)| e);
        self.overrides.get(entity).copied().unwrap_or(self.default)
    }

    /// Whether any source's snapshots are ever dropped.
    pub fn is_limited(&self) -> bool {
        self.default.is_limited() || self.overrides.values().any(Retention::is_limited)
    }
}

/// What a collection pass removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Snapshots removed.
    pub snapshots_removed: u64,
    /// Snapshots kept because a finding names them (beyond the policy).
    pub kept_for_findings: u64,
    /// Blobs removed (no snapshot referenced them).
    pub blobs_removed: u64,
    /// Stored (compressed) bytes of the removed snapshots and blobs.
    pub bytes_removed: u64,
}

/// Counts and sizes of the store (`/metrics`, the status page).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StoreStats {
    /// Snapshots stored.
    pub snapshots: u64,
    /// Distinct bodies stored.
    pub blobs: u64,
    /// Their stored (compressed) size.
    pub blob_bytes: u64,
    /// Findings stored.
    pub findings: u64,
    /// Deliveries waiting in the outbox (pending and dead).
    pub outbox: u64,
    /// The database's size on disk.
    pub disk_bytes: u64,
}

impl Store {
    /// Removes the snapshots `policy` no longer keeps (never a source's
    /// latest, never one a finding names), then every blob no remaining
    /// snapshot references. `now` is the time `keep_for` counts back from.
    pub fn gc(&self, policy: &RetentionPolicy, now: DateTime<Utc>) -> Result<GcReport, StoreError> {
        let report = self.run(|i| i.gc(policy, now))?;
        self.flush()?;
        Ok(report)
    }

    /// Counts and sizes of the store.
    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        self.run(|i| i.stats())
    }
}

impl Inner {
    pub(super) fn gc(
        &self,
        policy: &RetentionPolicy,
        now: DateTime<Utc>,
    ) -> Result<GcReport, Fault> {
        let mut report = GcReport::default();
        // Each source's history, newest last; read before the findings.
        let mut by_source: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for (source, id) in self.all_history()? {
            by_source.entry(source).or_default().push(id);
        }
        let mut pinned: BTreeSet<u64> = BTreeSet::new();
        for f in decoded(self.findings.iter(), dec_compressed) {
            let f: Finding = f?;
            pinned.extend(f.evidence.snapshot);
            pinned.extend(f.evidence.previous_snapshot);
        }
        for (source, ids) in &by_source {
            let r = policy.of(source);
            if !r.is_limited() {
                continue;
            }
            let cutoff = r
                .keep_for
                .and_then(|d| chrono::Duration::from_std(d).ok())
                .and_then(|d| now.checked_sub_signed(d));
            let n = ids.len();
            for (pos, id) in ids.iter().enumerate() {
                let from_newest = n - 1 - pos;
                if from_newest == 0 {
                    continue;
                }
                let over_count = r.keep_snapshots.is_some_and(|k| from_newest >= k.max(1));
                let too_old = match cutoff {
                    Some(c) => {
                        let key = id.to_be_bytes();
                        match self.snapshots.get(key)? {
                            Some(v) => dec_compressed::<Snapshot>(&key, &v)?.fetched_at < c,
                            None => false,
                        }
                    }
                    None => false,
                };
                if !(over_count || too_old) {
                    continue;
                }
                if pinned.contains(id) {
                    report.kept_for_findings += 1;
                    continue;
                }
                // The record and its index entry go together.
                let removed: Result<Option<sled::IVec>, TransactionError<()>> =
                    (&self.snapshots, &self.source_snapshots).transaction(|(s, h)| {
                        h.remove(history_key(source, *id))?;
                        Ok(s.remove(&id.to_be_bytes())?)
                    });
                match removed {
                    Ok(old) => {
                        report.bytes_removed += old.map_or(0, |v| v.len() as u64);
                        report.snapshots_removed += 1;
                    }
                    Err(TransactionError::Storage(e)) => return Err(e.into()),
                    Err(TransactionError::Abort(())) => {}
                }
            }
        }
        // Blobs no snapshot references. A moment with no commit in flight
        // (the lock taken and dropped) marks the last snapshot id: every
        // snapshot committed later has a higher one.
        let last_seen: Option<sled::IVec> = {
            let _barrier = self
                .gc_lock
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.snapshots.last()?.map(|(k, _)| k)
        };
        // The references, gathered without the lock ...
        let mut referenced: BTreeSet<Vec<u8>> = BTreeSet::new();
        for kv in self.snapshots.iter() {
            let (k, v) = kv?;
            let s: Snapshot = dec_compressed(&k, &v)?;
            snapshot_refs(s, &mut referenced);
        }
        self.state_blob_refs(&mut referenced)?;
        let mut candidates = Vec::new();
        for k in self.blobs.iter().keys() {
            let k = k?;
            if !is_referenced(&referenced, &k) {
                candidates.push(k);
            }
        }
        if candidates.is_empty() {
            return Ok(report);
        }
        // ... then the blobs removed under it, after adding the references
        // of the snapshots committed since the barrier.
        let _excl = self
            .gc_lock
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let since = match &last_seen {
            Some(k) => self.snapshots.range::<&[u8], _>((
                std::ops::Bound::Excluded(&k[..]),
                std::ops::Bound::Unbounded,
            )),
            None => self.snapshots.iter(),
        };
        for kv in since {
            let (k, v) = kv?;
            let s: Snapshot = dec_compressed(&k, &v)?;
            snapshot_refs(s, &mut referenced);
        }
        // Source states saved since the first read (a site check's page
        // table) are read again under the lock.
        self.state_blob_refs(&mut referenced)?;
        for k in candidates {
            if is_referenced(&referenced, &k) {
                continue;
            }
            if let Some(v) = self.blobs.remove(&k)? {
                report.blobs_removed += 1;
                report.bytes_removed += v.len() as u64;
            }
        }
        Ok(report)
    }

    /// The blobs source states name: a page's `hash` (a whole-site
    /// source's raw page body), and an indirect entry whose URL is
    /// `pivotwatch:NAME` (its blob `pivotwatch:NAME:HASH` holds more page
    /// entries as JSON, each naming its own blob).
    fn state_blob_refs(&self, referenced: &mut BTreeSet<Vec<u8>>) -> Result<(), Fault> {
        for (_, state) in self.source_states()? {
            for p in &state.pages {
                let Some(h) = &p.hash else { continue };
                referenced.insert(h.as_bytes().to_vec());
                if p.url.starts_with("pivotwatch:") {
                    let key = format!("{}:{h}", p.url);
                    referenced.insert(key.as_bytes().to_vec());
                    // A table that does not decode names nothing more; the
                    // check that wrote it reads it the same way.
                    if let Some(bytes) = self.blob(&key)?
                        && let Ok(pages) =
                            serde_json::from_slice::<Vec<super::PageValidators>>(&bytes)
                    {
                        for e in pages {
                            if let Some(h) = e.hash {
                                referenced.insert(h.into_bytes());
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    pub(super) fn stats(&self) -> Result<StoreStats, Fault> {
        let mut blob_bytes = 0u64;
        let mut blobs = 0u64;
        for kv in self.blobs.iter() {
            let (_, v) = kv?;
            blobs += 1;
            blob_bytes += v.len() as u64;
        }
        let count = |t: &sled::Tree| t.iter().keys().filter(|k| k.is_ok()).count() as u64;
        Ok(StoreStats {
            snapshots: count(&self.snapshots),
            blobs,
            blob_bytes,
            findings: count(&self.findings),
            outbox: count(&self.outbox),
            disk_bytes: self.db.size_on_disk()?,
        })
    }
}

/// The blobs a snapshot names: its body, and each whole-site page body
/// its evidence points at (`ResponseMeta::body_blob`).
fn snapshot_refs(s: Snapshot, referenced: &mut BTreeSet<Vec<u8>>) {
    referenced.insert(s.body_hash.into_bytes());
    for r in s.fetch.into_iter().flat_map(|f| f.responses) {
        if let Some(h) = r.body_blob {
            referenced.insert(h.into_bytes());
        }
    }
}

/// Whether blob key `k` is referenced: named itself, or derived from a
/// referenced hash as `PREFIX:HASH` (a site page's scan, a page table).
fn is_referenced(referenced: &BTreeSet<Vec<u8>>, k: &[u8]) -> bool {
    referenced.contains(k)
        || k.iter()
            .rposition(|&b| b == b':')
            .is_some_and(|i| referenced.contains(&k[i + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;
    use crate::store::commit::test_finding;
    use crate::store::{Commit, NewSnapshot, SourceState, body_hash};

    fn commit(store: &Store, source: &str, body: &str, at: DateTime<Utc>, finding: bool) -> u64 {
        let snapshot = Snapshot {
            id: 0,
            source: source.into(),
            url: format!("https://example.test/{source}"),
            fetched_at: at,
            http_status: 200,
            body_hash: body_hash(body.as_bytes()),
            record: Record::default(),
            fetch: None,
        };
        let (entity, sid) = source.split_once('/').expect("key");
        let findings = if finding {
            vec![test_finding(entity, sid, format!("{source}/{body}"), at)]
        } else {
            vec![]
        };
        let n = findings.len();
        store
            .commit(Commit {
                source: source.into(),
                state: SourceState::default(),
                snapshot: Some(NewSnapshot {
                    snapshot,
                    body: body.as_bytes().to_vec(),
                }),
                findings,
                deliveries: vec![vec![]; n],
            })
            .expect("commit")
            .snapshot
            .expect("id")
    }

    #[test]
    fn age_and_count_limits_with_overrides_keep_the_latest_and_what_findings_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let now = Utc::now();
        let day = |d: i64| now - chrono::Duration::days(d);
        // a/x: four snapshots 40, 30, 20, 10 days old; the third raised a
        // finding (the commit names it as the finding's snapshot).
        let x1 = commit(&store, "a/x", "x1", day(40), false);
        let x2 = commit(&store, "a/x", "shared", day(30), false);
        let x3 = commit(&store, "a/x", "x3", day(20), true);
        let x4 = commit(&store, "a/x", "x4", day(10), false);
        // b/y: old, but no limit applies to it; shares a body with a/x's x2.
        let y1 = commit(&store, "b/y", "shared", day(90), false);
        let y2 = commit(&store, "b/y", "y2", day(80), false);
        // c/z: only one snapshot, older than any limit: it is the latest.
        let z1 = commit(&store, "c/z", "z1", day(400), false);
        let policy = RetentionPolicy {
            default: Retention {
                keep_snapshots: None,
                keep_for: Some(Duration::from_secs(15 * 86_400)),
            },
            overrides: [(
                "b".to_string(),
                Retention {
                    keep_snapshots: None,
                    keep_for: None,
                },
            )]
            .into(),
        };
        let r = store.gc(&policy, now).expect("gc");
        assert_eq!(store.history("a/x").expect("h"), vec![x3, x4]);
        assert_eq!(store.history("b/y").expect("h"), vec![y1, y2]);
        assert_eq!(store.history("c/z").expect("h"), vec![z1]);
        assert_eq!(r.snapshots_removed, 2, "{r:?}");
        assert_eq!(r.kept_for_findings, 1, "{r:?}");
        assert!(store.snapshot(x1).expect("read").is_none());
        // x1's body went with it; the shared body stays (b/y still has it).
        assert_eq!(r.blobs_removed, 1, "{r:?}");
        assert!(store.blob(&body_hash(b"x1")).expect("read").is_none());
        assert!(store.blob(&body_hash(b"shared")).expect("read").is_some());
        let _ = x2;
        // A count limit on a/x now: only the latest and the finding's remain.
        let policy = RetentionPolicy {
            default: Retention {
                keep_snapshots: Some(1),
                keep_for: None,
            },
            overrides: [("b/y".to_string(), Retention::default())].into(),
        };
        let r = store.gc(&policy, now).expect("gc");
        assert_eq!(r.snapshots_removed, 0, "{r:?}");
        assert_eq!(store.history("a/x").expect("h"), vec![x3, x4]);
        assert_eq!(store.history("b/y").expect("h"), vec![y1, y2]);
        let stats = store.stats().expect("stats");
        assert_eq!(stats.snapshots, 5);
        assert_eq!(stats.blobs, 5);
        assert_eq!(stats.findings, 1);
    }
}
