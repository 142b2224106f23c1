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
//!   made anew, never reuse one another's ids); `seq` → how many flushes
//!   the store has made (u64), recorded in the integrity marker;
//!   `schema_version` → the layout version ([`SCHEMA_VERSION`], u64)
//!
//! Files, one per tree family: `sources.rs`, `snapshots.rs` (with the
//! history index and blobs), `commit.rs` (a check's commit, findings),
//! `outbox.rs` (deliveries, sent log, digests), `daemon.rs`; `codec.rs`
//! holds the encodings, key layouts and the generic get/iterate helpers;
//! `inner.rs` the open database; `error.rs` the error type.
//!
//! Failing closed: flushes and commits are bounded by `[store]
//! write_timeout`; sled's errors become typed [`StoreError`]s naming the
//! state folder (a full disk is [`StoreError::DiskFull`]); a failed write
//! leaves the store failed until the database is reopened (sled 0.34 takes
//! no more writes after one failed, even once the disk has room). The
//! integrity marker `store.marker` (`marker.rs`) is checked at every open,
//! and a damaged sled snapshot file is rebuilt from when the data is
//! intact (`recover.rs`).

mod backup;
mod codec;
mod commit;
mod daemon;
mod error;
mod inner;
mod lane;
mod marker;
mod outbox;
mod recover;
mod retention;
mod snapshots;
mod sources;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

pub use backup::{BackupHeader, BackupReport, TreeDigest, restore};
pub use codec::SCHEMA_VERSION;
pub use commit::{Commit, Committed};
pub use daemon::DaemonSource;
use error::Fault;
pub use error::StoreError;
use error::from_fault;
use inner::Inner;
pub use lane::StateLane;
use marker::Marker;
pub use outbox::{Attempt, Delivery, DigestState, MAX_ATTEMPT_LOG};
pub use retention::{GcReport, Retention, RetentionPolicy, StoreStats};
pub use snapshots::NewSnapshot;
pub use sources::{PageValidators, SourceState};

/// Default `[store] write_timeout`: how long a flush or a commit may wait
/// for the disk. [default: 10s]
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a reopen after a failure waits for the failed database to
/// release its lock.
const REOPEN_WAIT: Duration = Duration::from_secs(2);

/// The store handle. Cheap to clone; all clones share one database.
///
/// After a write failed (full disk, I/O error, timeout) sled 0.34 refuses
/// every later write, even once the disk has room again. The store then
/// counts as failed: the next operation on any clone first reopens the
/// database (checked against the marker, as at start), and fails if that
/// is not possible yet.
#[derive(Clone, Debug)]
pub struct Store {
    h: Arc<Handle>,
}

#[derive(Debug)]
struct Handle {
    path: PathBuf,
    write_timeout: Duration,
    installation_id: String,
    inner: RwLock<Option<Arc<Inner>>>,
    /// The last failure, while the store is failed (cleared by a reopen).
    failed: Mutex<Option<String>>,
    failed_flag: AtomicBool,
    /// Every store operation holds it for reading; a backup for writing,
    /// so that it copies one moment of the store.
    pause: RwLock<()>,
    /// The thread that runs bounded writes ([`Store::bounded`]).
    writer: Writer,
}

/// One write for the writer thread.
type Job = Box<dyn FnOnce() + Send>;

/// A thread kept for the writes that wait for the disk, so that a commit
/// does not start (and end) a thread of its own: on a first pass that was
/// a mapped stack, a clone and a join per page. A write that times out
/// leaves its thread behind (it may hang in sled forever): the next write
/// starts a fresh one.
#[derive(Default, Debug)]
struct Writer {
    tx: Mutex<Option<std::sync::mpsc::Sender<Job>>>,
}

impl Writer {
    /// Hands `job` to the writer thread, starting one if there is none.
    fn run(&self, job: Job) -> std::io::Result<()> {
        let mut tx = self.tx.lock().unwrap_or_else(PoisonError::into_inner);
        let job = match tx.as_ref() {
            Some(t) => match t.send(job) {
                Ok(()) => return Ok(()),
                // The thread is gone (it cannot be, short of a panic in
                // sled): start another and give it the job.
                Err(std::sync::mpsc::SendError(job)) => job,
            },
            None => job,
        };
        let (new_tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("pivotwatch-store-write".into())
            .spawn(move || {
                for job in rx {
                    job();
                }
            })?;
        // A send on a fresh channel whose receiver is alive cannot fail.
        let _ = new_tx.send(job);
        *tx = Some(new_tx);
        Ok(())
    }

    /// Forgets the current thread: it is stuck in a write (or gone).
    fn abandon(&self) {
        *self.tx.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

impl Store {
    /// Opens (or creates) the store in `dir/db` with the default
    /// [`DEFAULT_WRITE_TIMEOUT`]. See [`Store::open_with`].
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Store::open_with(dir, DEFAULT_WRITE_TIMEOUT)
    }

    /// Opens (or creates) the store in `dir/db`; flushes and commits give
    /// up after `write_timeout`. Torn `snap.*.generating` files from a
    /// crash during sled's snapshotting are removed first. The database is
    /// checked against its integrity marker (`dir/store.marker`): one that
    /// is empty, of another installation or behind the marker is refused.
    /// A damaged sled snapshot file is recovered from when the data files
    /// rebuild exactly the store the marker describes.
    pub fn open_with(dir: &Path, write_timeout: Duration) -> Result<Store, StoreError> {
        let write_timeout = write_timeout.max(Duration::from_millis(100));
        let inner = open_checked(dir, write_timeout)?;
        Ok(Store {
            h: Arc::new(Handle {
                path: dir.to_path_buf(),
                write_timeout,
                installation_id: inner.installation_id.clone(),
                inner: RwLock::new(Some(Arc::new(inner))),
                failed: Mutex::new(None),
                failed_flag: AtomicBool::new(false),
                pause: RwLock::new(()),
                writer: Writer::default(),
            }),
        })
    }

    /// Like [`Store::open`], but waits up to `max_wait` while the database
    /// is locked. For reopening in the same process right after a handle
    /// was dropped: sled may release its file lock a moment after the last
    /// handle goes away. Across processes, use [`Store::open`], which
    /// fails at once.
    pub fn open_waiting(dir: &Path, max_wait: Duration) -> Result<Store, StoreError> {
        let deadline = Instant::now() + max_wait;
        loop {
            match Store::open(dir) {
                Err(StoreError::Locked { .. }) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
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
        &self.h.installation_id
    }

    /// The state folder.
    pub fn path(&self) -> &Path {
        &self.h.path
    }

    /// The last write failure, while the store is failed (a write failed
    /// and the database has not been reopened since).
    pub fn failure(&self) -> Option<String> {
        if !self.h.failed_flag.load(Ordering::Acquire) {
            return None;
        }
        self.h
            .failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reopens the database if the store is failed, then proves it can
    /// write (a bounded flush). `Ok` means the store works again.
    pub fn recover(&self) -> Result<(), StoreError> {
        self.flush()
    }

    fn mark_failed(&self, e: &StoreError) {
        *self.h.failed.lock().unwrap_or_else(PoisonError::into_inner) = Some(e.to_string());
        self.h.failed_flag.store(true, Ordering::Release);
    }

    /// The open database, reopened first if the store is failed.
    fn inner(&self) -> Result<Arc<Inner>, StoreError> {
        if !self.h.failed_flag.load(Ordering::Acquire) {
            let g = self.h.inner.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(i) = &*g {
                return Ok(i.clone());
            }
        }
        let mut g = self.h.inner.write().unwrap_or_else(PoisonError::into_inner);
        if !self.h.failed_flag.load(Ordering::Acquire)
            && let Some(i) = &*g
        {
            return Ok(i.clone());
        }
        // Our handle on the failed database goes first, so that sled can
        // release its lock once the operations still using it end.
        drop(g.take());
        let deadline = Instant::now() + REOPEN_WAIT;
        let inner = loop {
            match open_checked(&self.h.path, self.h.write_timeout) {
                Err(StoreError::Locked { .. }) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(StoreError::Locked { .. }) => {
                    return Err(StoreError::Stalled {
                        path: self.h.path.clone(),
                    });
                }
                Ok(i) if i.installation_id != self.h.installation_id => {
                    return Err(StoreError::Replaced {
                        path: self.h.path.join("db"),
                        marker: marker::path(&self.h.path),
                        found: i.installation_id.clone(),
                        expected: self.h.installation_id.clone(),
                    });
                }
                Ok(i) => break Arc::new(i),
                Err(e) => return Err(e),
            }
        };
        *g = Some(inner.clone());
        *self.h.failed.lock().unwrap_or_else(PoisonError::into_inner) = None;
        self.h.failed_flag.store(false, Ordering::Release);
        tracing::warn!(path = %self.h.path.display(), "The store was reopened after a failure.");
        Ok(inner)
    }

    /// Maps a failure; one from sled (I/O, corruption) or the marker
    /// leaves the store failed until it is reopened.
    fn fail(&self, f: Fault) -> StoreError {
        let poisons = !matches!(f, Fault::Store(_));
        let e = from_fault(&self.h.path, f);
        if poisons {
            self.mark_failed(&e);
        }
        e
    }

    /// Runs a read or a write that does not wait for the disk.
    fn run<T>(&self, f: impl FnOnce(&Inner) -> Result<T, Fault>) -> Result<T, StoreError> {
        let _pause = self.h.pause.read().unwrap_or_else(PoisonError::into_inner);
        let i = self.inner()?;
        f(&i).map_err(|e| self.fail(e))
    }

    /// Runs `f` with every other operation on this store paused (each
    /// waits, with no timeout running, until `f` returns).
    fn paused<T>(&self, f: impl FnOnce(&Inner) -> T) -> Result<T, StoreError> {
        let _pause = self.h.pause.write().unwrap_or_else(PoisonError::into_inner);
        let i = self.inner()?;
        Ok(f(&i))
    }

    /// Runs a write that waits for the disk (a flush) on a helper thread,
    /// giving up after `[store] write_timeout`: sled's flush can block
    /// forever on a full or failing disk. On a timeout the store is failed
    /// (the thread may still hold the database; it is reopened later).
    fn bounded<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, Fault> + Send + 'static,
    ) -> Result<T, StoreError> {
        // Taken before the timeout starts: a backup in progress is not a
        // slow disk.
        let _pause = self.h.pause.read().unwrap_or_else(PoisonError::into_inner);
        let i = self.inner()?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let spawned = self.h.writer.run(Box::new(move || {
            let _ = tx.send(f(&i));
        }));
        if let Err(e) = spawned {
            return Err(StoreError::Internal {
                path: self.h.path.clone(),
                detail: format!("cannot start a writer thread: {e}"),
            });
        }
        match rx.recv_timeout(self.h.write_timeout) {
            Ok(r) => r.map_err(|e| self.fail(e)),
            Err(RecvTimeoutError::Timeout) => {
                let e = StoreError::WriteTimeout {
                    path: self.h.path.clone(),
                    after_s: self.h.write_timeout.as_secs().max(1),
                };
                tracing::error!(path = %self.h.path.display(), timeout_s = self.h.write_timeout.as_secs(), "A store write did not finish in time; the store is treated as failed until it can be reopened.");
                self.h.writer.abandon();
                self.mark_failed(&e);
                Err(e)
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.h.writer.abandon();
                let e = StoreError::Internal {
                    path: self.h.path.clone(),
                    detail: "a store write stopped without an answer".into(),
                };
                self.mark_failed(&e);
                Err(e)
            }
        }
    }

    /// Flushes everything written so far to disk and records it in the
    /// integrity marker. Bounded by `[store] write_timeout`.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.bounded(|i| i.flush())
    }
}

/// Opens the database in `dir/db` and checks it against the marker.
fn open_checked(dir: &Path, write_timeout: Duration) -> Result<Inner, StoreError> {
    let io = |source| StoreError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let db_path = dir.join("db");
    std::fs::create_dir_all(&db_path).map_err(io)?;
    inner::remove_torn_snapshots(&db_path).map_err(io)?;
    let marker_path = marker::path(dir);
    let marker = match marker::read(dir) {
        Ok(m) => m,
        Err(marker::ReadError::Io(source)) => {
            return Err(StoreError::MarkerIo {
                path: marker_path,
                source,
            });
        }
        Err(marker::ReadError::Damaged(detail)) => {
            return Err(StoreError::Marker {
                path: marker_path,
                detail,
            });
        }
    };
    let mut inner = match Inner::open(dir, &db_path) {
        Ok(i) => i,
        Err(Fault::Sled(e)) if inner::is_locked(&e) => {
            return Err(StoreError::Locked {
                path: dir.to_path_buf(),
            });
        }
        Err(Fault::Sled(sled::Error::Corruption { .. })) => {
            recover::rebuild_without_snapshot(dir, marker.as_ref())?
        }
        Err(f) => return Err(from_fault(dir, f)),
    };
    let fault = |f| from_fault(dir, f);
    let seq = verify(dir, &inner, marker.as_ref())?;
    // A store of a newer layout is refused before anything is written to
    // it; one without the key (older, or new) is version 1. An older one is
    // migrated, then records the version; the flush below makes both
    // durable (a crash before it migrates again at the next open, which
    // changes nothing already migrated).
    match inner.schema_version().map_err(fault)?.unwrap_or(1) {
        found if found > SCHEMA_VERSION => {
            return Err(StoreError::Schema {
                path: db_path,
                found,
                supported: SCHEMA_VERSION,
            });
        }
        SCHEMA_VERSION => {}
        found => {
            if found < 2 {
                let n = inner.rekey_snapshots().map_err(fault)?;
                if n > 0 {
                    tracing::info!(
                        snapshots = n,
                        "Stored item keys migrated to schema version 2."
                    );
                }
            }
            inner.write_schema_version().map_err(fault)?;
        }
    }
    let id = match inner.stored_id().map_err(fault)? {
        Some(id) => id,
        None => inner.create_id().map_err(fault)?,
    };
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(StoreError::Corrupt {
            key: "meta/installation_id".into(),
            detail: "not 32 hex digits".into(),
        });
    }
    inner.installation_id = id;
    if let Some(m) = &marker {
        inner.set_marked(m.seq.min(seq));
    }
    // Prove that what this store writes survives a reopen: a flush (which
    // writes the marker; a new store, or one from a pivotwatch without
    // markers, gets its first one here), then open it again and check it
    // against that marker. A database whose first segment header is
    // damaged reads fine but loses every later write: it is refused here,
    // before anything is mailed from it.
    let inner = match flush_bounded(dir, inner, write_timeout)? {
        (inner, Ok(())) => inner,
        (inner, Err(e @ StoreError::DiskFull { .. })) if marker.is_some() => {
            tracing::warn!(error = %crate::text::chain(&e), "The store opened on a full disk; writes fail until there is space again.");
            return Ok(inner);
        }
        (_, Err(e)) => return Err(e),
    };
    let written = Marker::new(&inner.installation_id, inner.seq().map_err(fault)?);
    let id = inner.installation_id.clone();
    drop(inner);
    let deadline = Instant::now() + REOPEN_WAIT;
    let mut again = loop {
        match Inner::open(dir, &db_path) {
            Err(Fault::Sled(e)) if inner::is_locked(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(i) => break i,
            Err(f) => return Err(from_fault(dir, f)),
        }
    };
    verify(dir, &again, Some(&written))?;
    again.installation_id = id;
    again.set_marked(written.seq);
    Ok(again)
}

/// Flushes a database being opened on a helper thread, giving up after
/// `timeout` (the thread keeps the database until its flush ends).
fn flush_bounded(
    dir: &Path,
    inner: Inner,
    timeout: Duration,
) -> Result<(Inner, Result<(), StoreError>), StoreError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("pivotwatch-store-open".into())
        .spawn(move || {
            let r = inner.flush();
            let _ = tx.send((inner, r));
        })
        .map_err(|e| StoreError::Internal {
            path: dir.to_path_buf(),
            detail: format!("cannot start a writer thread: {e}"),
        })?;
    match rx.recv_timeout(timeout) {
        Ok((inner, r)) => Ok((inner, r.map_err(|f| from_fault(dir, f)))),
        Err(RecvTimeoutError::Timeout) => Err(StoreError::WriteTimeout {
            path: dir.to_path_buf(),
            after_s: timeout.as_secs().max(1),
        }),
        Err(RecvTimeoutError::Disconnected) => Err(StoreError::Internal {
            path: dir.to_path_buf(),
            detail: "a store write stopped without an answer".into(),
        }),
    }
}

/// Checks an open database against the marker; returns its sequence
/// number.
fn verify(dir: &Path, inner: &Inner, marker: Option<&Marker>) -> Result<u64, StoreError> {
    let fault = |f| from_fault(dir, f);
    let seq = inner.seq().map_err(fault)?;
    let Some(m) = marker else {
        return Ok(seq);
    };
    let path = dir.join("db");
    let marker_path = marker::path(dir);
    match inner.stored_id().map_err(fault)? {
        None => Err(StoreError::Emptied {
            path,
            marker: marker_path,
            seq: m.seq,
            installation_id: m.installation_id.clone(),
        }),
        Some(found) if found != m.installation_id => Err(StoreError::Replaced {
            path,
            marker: marker_path,
            found,
            expected: m.installation_id.clone(),
        }),
        Some(_) if seq < m.seq => Err(StoreError::Behind {
            path,
            marker: marker_path,
            found: seq,
            expected: m.seq,
        }),
        Some(_) => Ok(seq),
    }
}

/// Runs a store call on tokio's blocking pool (sled blocks on disk I/O and
/// must not hold a runtime worker). A task that panicked or was cancelled
/// is [`StoreError::Task`].
///
/// **Architecture Invariant:** every store call made from async code goes
/// through this function (or [`run_blocking`]).
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(source) => Err(StoreError::Task { source }),
    }
}

/// [`blocking`] with a clone of `store` handed to the call.
pub(crate) async fn run_blocking<T: Send + 'static>(
    store: &Store,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let s = store.clone();
    blocking(move || f(&s)).await
}

/// BLAKE3 of a body, hex.
pub fn body_hash(body: &[u8]) -> String {
    blake3::hash(body).to_hex().to_string()
}

/// SHA-256 of a body, lowercase hex (the digest evidence files and WARC
/// records name: what other tools check).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::codec::{ZSTD_MAGIC, enc, enc_compressed};
    use super::*;
    use crate::record::{FieldValue, Record, Snapshot};
    use chrono::Utc;

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
            fetch: None,
        }
    }

    #[test]
    fn snapshots_are_stored_compressed_and_plain_json_ones_still_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let inner = store.inner().expect("inner");
        // Written by this version: a zstd frame that reads back whole.
        let new = snapshot(7);
        let bytes = enc_compressed(&new);
        assert!(bytes.starts_with(&ZSTD_MAGIC));
        inner
            .snapshots
            .insert(7u64.to_be_bytes(), bytes)
            .expect("insert");
        assert_eq!(store.snapshot(7).expect("read"), Some(new));
        // Written by an older version: plain JSON.
        let old = snapshot(8);
        inner
            .snapshots
            .insert(8u64.to_be_bytes(), enc(&old))
            .expect("insert");
        assert_eq!(store.snapshot(8).expect("read"), Some(old));
        // A damaged frame is an error naming the record, not a panic.
        let mut torn = enc_compressed(&snapshot(9));
        torn.truncate(torn.len() / 2);
        inner
            .snapshots
            .insert(9u64.to_be_bytes(), torn)
            .expect("insert");
        let err = store.snapshot(9).expect_err("torn record");
        assert!(err.to_string().contains("does not decompress"), "{err}");
    }

    #[test]
    fn snapshots_written_before_fetch_metadata_still_read() {
        // The record bytes as the codec wrote them before `fetch` existed:
        // zstd over JSON with exactly the older fields.
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let inner = store.inner().expect("inner");
        let old = serde_json::json!({
            "id": 3, "source": "acme/registry", "url": "https://registry.example/acme",
            "fetched_at": "2025-01-02T03:04:05Z", "http_status": 200, "body_hash": "00",
            "record": {"fields": {"activity": "46.77"}, "items": {}}
        });
        let bytes =
            zstd::bulk::compress(&serde_json::to_vec(&old).expect("json"), 1).expect("compress");
        inner
            .snapshots
            .insert(3u64.to_be_bytes(), bytes)
            .expect("insert");
        let snap = store.snapshot(3).expect("read").expect("present");
        assert_eq!(snap.fetch, None);
        assert_eq!(snap.url, "https://registry.example/acme");
        // One written now keeps its fetch metadata through the codec.
        let mut new = snapshot(4);
        new.fetch = Some(crate::record::FetchMeta {
            body_sha256: sha256_hex(b"body"),
            responses: vec![crate::record::ResponseMeta {
                requested_url: "https://registry.example/acme".into(),
                final_url: "https://registry.example/acme/".into(),
                status: 200,
                headers: [("server".to_string(), "nginx".to_string())].into(),
                remote_addr: Some("192.0.2.7:443".into()),
                started_at: Utc::now(),
                finished_at: Utc::now(),
                body_offset: 0,
                body_len: 4,
                body_blob: None,
            }],
        });
        inner
            .snapshots
            .insert(4u64.to_be_bytes(), enc_compressed(&new))
            .expect("insert");
        let back = store.snapshot(4).expect("read").expect("present");
        assert_eq!(back, new);
        let meta = back.fetch.expect("fetch meta");
        assert_eq!(meta.responses[0].remote_ip().as_deref(), Some("192.0.2.7"));
        assert_eq!(
            meta.body_sha256,
            "230d8358dc8e8890b4c58deeb62912ee2f20357ae92a5cc861b98e68fe31acb5"
        );
    }

    #[test]
    fn a_write_that_outlasts_write_timeout_fails_fast_and_the_store_reopens_after_it() {
        // The stall is simulated at the store boundary (a real store, a
        // real sled database; the write sleeps): sled's own hang on a full
        // disk could not be reproduced on demand (tests/store_integrity.rs
        // has the real full disk).
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_with(dir.path(), Duration::from_millis(200)).expect("open");
        let t = Instant::now();
        let err = store
            .bounded(|i| {
                std::thread::sleep(Duration::from_millis(1500));
                i.flush()
            })
            .expect_err("a stalled write must time out");
        assert!(
            t.elapsed() < Duration::from_millis(1000),
            "{:?}",
            t.elapsed()
        );
        assert!(matches!(err, StoreError::WriteTimeout { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
        assert!(msg.contains("[store] write_timeout"), "{msg}");
        assert!(store.failure().is_some(), "the store must count as failed");
        // Once the stalled write ends, the next operation reopens the
        // database, checked against its marker, and works.
        std::thread::sleep(Duration::from_millis(1500));
        store
            .put_source_state("a/b", &SourceState::default())
            .expect("reopened");
        assert!(store.failure().is_none());
        store.flush().expect("flush after reopen");
        assert_eq!(
            store.source_state("a/b").expect("read"),
            Some(SourceState::default())
        );
    }

    #[tokio::test]
    async fn a_panicking_store_task_is_a_task_error_not_a_corrupt_value() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let err = run_blocking(&store, |s| -> Result<(), StoreError> {
            s.source_state("a/b")?;
            panic!("a bug in a store call");
        })
        .await
        .expect_err("a panicked task must fail");
        assert!(matches!(err, StoreError::Task { .. }), "{err:?}");
        let chain = crate::text::chain(&err);
        assert!(chain.contains("a store task stopped"), "{chain}");
        assert!(chain.contains("panicked"), "{chain}");
        assert!(!chain.contains("newer pivotwatch"), "{chain}");
        // The store is not failed by it.
        assert!(store.failure().is_none());
        let ok = blocking(move || store.source_state("a/b")).await;
        assert!(matches!(ok, Ok(None)), "{ok:?}");
    }

    #[test]
    fn a_new_store_records_its_schema_version_and_an_old_one_gets_it_on_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let inner = store.inner().expect("inner");
        assert_eq!(
            inner.schema_version().expect("read"),
            Some(SCHEMA_VERSION),
            "a new store must record its schema version"
        );
        // A store from before the key existed: version 1, migrated to the
        // current version.
        inner.meta.remove(codec::SCHEMA_KEY).expect("remove");
        store.flush().expect("flush");
        drop(inner);
        drop(store);
        let store = Store::open_waiting(dir.path(), Duration::from_secs(5)).expect("reopen");
        assert_eq!(
            store
                .inner()
                .expect("inner")
                .schema_version()
                .expect("read"),
            Some(SCHEMA_VERSION)
        );
    }

    #[test]
    fn a_store_from_a_newer_schema_is_refused_naming_both_versions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        store
            .put_source_state("a/b", &SourceState::default())
            .expect("write");
        let inner = store.inner().expect("inner");
        let newer = SCHEMA_VERSION + 1;
        inner
            .meta
            .insert(codec::SCHEMA_KEY, &newer.to_be_bytes())
            .expect("insert");
        store.flush().expect("flush");
        drop(inner);
        drop(store);
        let err = Store::open_waiting(dir.path(), Duration::from_secs(5))
            .expect_err("a newer store must be refused");
        assert!(matches!(err, StoreError::Schema { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("schema version {newer}")),
            "names the store's version: {msg}"
        );
        assert!(
            msg.contains(&format!("version {SCHEMA_VERSION})")),
            "names this pivotwatch's version: {msg}"
        );
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
        // Nothing was changed: the key is still the newer one.
        let err = Store::open(dir.path()).expect_err("still refused");
        assert!(matches!(err, StoreError::Schema { found, .. } if found == newer));
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
