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
//!   the store has made (u64), recorded in the integrity marker
//!
//! Failing closed: flushes and commits are bounded by `[store]
//! write_timeout`; sled's errors become typed [`StoreError`]s naming the
//! state folder (a full disk is [`StoreError::DiskFull`]); a failed write
//! leaves the store failed until the database is reopened (sled 0.34 takes
//! no more writes after one failed, even once the disk has room). The
//! integrity marker `store.marker` (`marker.rs`) is checked at every open,
//! and a damaged sled snapshot file is rebuilt from when the data is
//! intact (`recover.rs`).

mod inner;
mod marker;
mod recover;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::record::{CheckStatus, Finding, Snapshot};
use inner::{Fault, Inner};
use marker::Marker;

/// Store failures. Each says what happened and what to do next; none
/// carries sled's own text (its debug output is not for users).
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
    #[error("cannot open the store at {path}")]
    Io {
        /// The state folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The disk holding the store is full (ENOSPC, or a quota).
    #[error(
        "the disk holding the store at {path} is full (no space left on device): free space on it, or move [store] path to a bigger disk, then run again; nothing committed is lost, and queued alerts go out once the store can write again"
    )]
    DiskFull {
        /// The state folder.
        path: PathBuf,
    },
    /// A write (flush, commit) did not finish within `[store] write_timeout`.
    #[error(
        "a write to the store at {path} did not finish within {after_s} s ([store] write_timeout): the disk holding it may be full, failing or very slow; check it (df -h, dmesg), then run again; nothing committed is lost"
    )]
    WriteTimeout {
        /// The state folder.
        path: PathBuf,
        /// The timeout, in seconds.
        after_s: u64,
    },
    /// After a failure, the database cannot be reopened because a write
    /// that timed out still holds it.
    #[error(
        "the store at {path} cannot be reopened: an earlier write is still stuck on the disk; check the disk (df -h, dmesg); if it does not recover, restart pivotwatch"
    )]
    Stalled {
        /// The state folder.
        path: PathBuf,
    },
    /// Reading or writing the database failed (not a full disk).
    #[error(
        "reading or writing the store at {path} failed; check the disk and the folder's permissions"
    )]
    Disk {
        /// The state folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// sled found damaged data in the database files.
    #[error(
        "the store at {path} is damaged (its database files hold corrupted data); pivotwatch refuses to use it and changed nothing: restore the state folder from a backup, or move it aside to start afresh (every source is then seen anew and old findings may be alerted again)"
    )]
    Damaged {
        /// The database folder.
        path: PathBuf,
    },
    /// sled's snapshot file is damaged and the data files alone do not
    /// rebuild the store the marker describes.
    #[error(
        "the store's snapshot file {file} is damaged and the store cannot be rebuilt without it ({why}); pivotwatch refuses to use it and changed nothing: restore the state folder from a backup, or move it aside to start afresh (old findings may then be alerted again)"
    )]
    DamagedSnapshot {
        /// The snapshot file.
        file: PathBuf,
        /// Why the rebuild was refused.
        why: String,
    },
    /// The database opened empty while its marker says it held data.
    #[error(
        "the store at {path} opened empty, but its integrity marker {marker} says it had made {seq} flush(es) as installation {installation_id}: its database files were lost or damaged; pivotwatch refuses to use it (it would alert old findings again under reused ids). Restore the state folder from a backup; to start afresh on purpose, move the whole folder aside"
    )]
    Emptied {
        /// The database folder.
        path: PathBuf,
        /// The marker file.
        marker: PathBuf,
        /// What the marker records.
        seq: u64,
        /// The installation id the marker names.
        installation_id: String,
    },
    /// The database belongs to another installation than its marker.
    #[error(
        "the store at {path} is installation {found}, but its integrity marker {marker} names installation {expected}: the database was replaced or made anew; pivotwatch refuses to use it. Put back the matching database (restore the state folder from a backup); to use this one on purpose, delete {marker}"
    )]
    Replaced {
        /// The database folder.
        path: PathBuf,
        /// The marker file.
        marker: PathBuf,
        /// The database's installation id.
        found: String,
        /// The marker's.
        expected: String,
    },
    /// The database is behind its marker: flushed writes were lost.
    #[error(
        "the store at {path} is behind its integrity marker {marker} (flush {found} on disk, {expected} recorded): writes it had made durable are gone (damaged files, or an older copy put back); pivotwatch refuses to use it. Restore the latest backup of the state folder; to accept this older copy on purpose, delete {marker} (alerts committed after it may be sent again)"
    )]
    Behind {
        /// The database folder.
        path: PathBuf,
        /// The marker file.
        marker: PathBuf,
        /// The sequence number in the database.
        found: u64,
        /// The marker's.
        expected: u64,
    },
    /// The marker file itself does not read.
    #[error(
        "the store's integrity marker {path} is damaged ({detail}); restore the state folder from a backup, or, if the store is known to be good, delete the marker (it is written again)"
    )]
    Marker {
        /// The marker file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The marker file cannot be read or written.
    #[error("cannot read or write the store's integrity marker {path}")]
    MarkerIo {
        /// The marker file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The store stopped after an unexpected failure inside sled.
    #[error(
        "the store at {path} failed unexpectedly ({detail}); restart pivotwatch, and report it if it happens again"
    )]
    Internal {
        /// The state folder.
        path: PathBuf,
        /// What sled said.
        detail: String,
    },
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

impl StoreError {
    /// Whether the disk is the likely cause (full, failing or too slow):
    /// the daemon tells the operator and retries.
    pub fn is_disk(&self) -> bool {
        matches!(
            self,
            StoreError::DiskFull { .. }
                | StoreError::WriteTimeout { .. }
                | StoreError::Stalled { .. }
                | StoreError::Disk { .. }
                | StoreError::MarkerIo { .. }
        )
    }
}

/// Whether an I/O error means "no space left" (ENOSPC, or EDQUOT).
fn is_disk_full(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    if matches!(e.kind(), ErrorKind::StorageFull | ErrorKind::QuotaExceeded)
        || matches!(e.raw_os_error(), Some(28 | 122))
    {
        return true;
    }
    // sled 0.34 rewraps the OS error as text ("Os { code: 28, ... }").
    let text = e.to_string();
    text.contains("code: 28,") || text.contains("code: 122,")
}

/// The OS error behind an I/O error sled rewrapped as its Debug text, so
/// that what users see reads "Input/output error (os error 5)".
fn clean_io(e: std::io::Error) -> std::io::Error {
    if e.raw_os_error().is_some() {
        return e;
    }
    let text = e.to_string();
    let code = text
        .split_once("code: ")
        .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse::<i32>().ok());
    match code {
        Some(n) => std::io::Error::from_raw_os_error(n),
        None if text.contains('{') => std::io::Error::from(e.kind()),
        None => e,
    }
}

/// The user-facing form of a sled error in the store at `dir`.
fn from_sled(dir: &Path, e: sled::Error) -> StoreError {
    match e {
        sled::Error::Io(io) if is_disk_full(&io) => StoreError::DiskFull {
            path: dir.to_path_buf(),
        },
        sled::Error::Io(io) => StoreError::Disk {
            path: dir.to_path_buf(),
            source: clean_io(io),
        },
        sled::Error::Corruption { .. } => StoreError::Damaged {
            path: dir.join("db"),
        },
        sled::Error::ReportableBug(s) | sled::Error::Unsupported(s) => StoreError::Internal {
            path: dir.to_path_buf(),
            detail: s,
        },
        sled::Error::CollectionNotFound(_) => StoreError::Internal {
            path: dir.to_path_buf(),
            detail: "a tree is missing".into(),
        },
    }
}

/// The user-facing form of a failure in the store at `dir`.
fn from_fault(dir: &Path, f: Fault) -> StoreError {
    match f {
        Fault::Sled(e) => from_sled(dir, e),
        Fault::Marker(e) if is_disk_full(&e) => StoreError::DiskFull {
            path: dir.to_path_buf(),
        },
        Fault::Marker(e) => StoreError::MarkerIo {
            path: marker::path(dir),
            source: e,
        },
        Fault::Store(e) => e,
    }
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
        let i = self.inner()?;
        f(&i).map_err(|e| self.fail(e))
    }

    /// Runs a write that waits for the disk (a flush) on a helper thread,
    /// giving up after `[store] write_timeout`: sled's flush can block
    /// forever on a full or failing disk. On a timeout the store is failed
    /// (the thread may still hold the database; it is reopened later).
    fn bounded<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, Fault> + Send + 'static,
    ) -> Result<T, StoreError> {
        let i = self.inner()?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let spawned = std::thread::Builder::new()
            .name("pivotwatch-store-write".into())
            .spawn(move || {
                let _ = tx.send(f(&i));
            });
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
                self.mark_failed(&e);
                Err(e)
            }
            Err(RecvTimeoutError::Disconnected) => {
                let e = StoreError::Internal {
                    path: self.h.path.clone(),
                    detail: "a store write stopped without an answer".into(),
                };
                self.mark_failed(&e);
                Err(e)
            }
        }
    }

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

    /// A snapshot by id.
    pub fn snapshot(&self, id: u64) -> Result<Option<Snapshot>, StoreError> {
        self.run(|i| i.snapshot(id))
    }

    /// Snapshot ids of a source, oldest first.
    pub fn history(&self, source: &str) -> Result<Vec<u64>, StoreError> {
        self.run(|i| i.history(source))
    }

    /// The latest snapshot of a source.
    pub fn latest_snapshot(&self, source: &str) -> Result<Option<Snapshot>, StoreError> {
        self.run(|i| i.latest_snapshot(source))
    }

    /// The raw body stored under a hash.
    pub fn blob(&self, hash: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.run(|i| i.blob(hash))
    }

    /// Whether a finding with this dedup key was ever committed.
    pub fn finding_for_key(&self, key: &str) -> Result<Option<u64>, StoreError> {
        self.run(|i| i.finding_for_key(key))
    }

    /// A finding by id.
    pub fn finding(&self, id: u64) -> Result<Option<Finding>, StoreError> {
        self.run(|i| i.finding(id))
    }

    /// All findings, oldest first.
    pub fn findings(&self) -> Result<Vec<Finding>, StoreError> {
        self.run(|i| i.findings())
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

    /// Pending (not dead) deliveries, oldest first.
    pub fn pending_deliveries(&self) -> Result<Vec<Delivery>, StoreError> {
        self.run(|i| i.pending_deliveries())
    }

    /// Every delivery in the outbox (pending and dead), oldest first.
    pub fn outbox_all(&self) -> Result<Vec<Delivery>, StoreError> {
        self.run(|i| i.outbox_all())
    }

    /// Records a delivery as sent: moved from the outbox to the log, flushed.
    pub fn mark_sent(&self, d: &Delivery) -> Result<(), StoreError> {
        let d = d.clone();
        self.bounded(move |i| i.mark_sent(&d))
    }

    /// Updates a delivery still in the outbox (a failed attempt, or dead).
    pub fn update_delivery(&self, d: &Delivery) -> Result<(), StoreError> {
        let d = d.clone();
        self.bounded(move |i| i.update_delivery(&d))
    }

    /// The delivery log (sent deliveries), oldest first.
    pub fn sent_deliveries(&self) -> Result<Vec<Delivery>, StoreError> {
        self.run(|i| i.sent_deliveries())
    }

    /// A delivery still in the outbox (pending or dead).
    pub fn delivery(&self, id: u64) -> Result<Option<Delivery>, StoreError> {
        self.run(|i| i.delivery(id))
    }

    /// Updates several deliveries still in the outbox at once (failed
    /// attempts, dead letters, requeued ones), then flushes.
    pub fn update_deliveries(&self, ds: &[Delivery]) -> Result<(), StoreError> {
        let ds = ds.to_vec();
        self.bounded(move |i| i.update_deliveries(&ds))
    }

    /// Marks deliveries as in flight (an attempt started), flushed before
    /// the send, so a crash mid-send is known at the next run (the mail may
    /// have arrived: "possible duplicate").
    pub fn note_in_flight(&self, ds: &[Delivery]) -> Result<(), StoreError> {
        let ds = ds.to_vec();
        self.bounded(move |i| i.note_in_flight(&ds))
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
        let ds = ds.to_vec();
        let digest = digest.map(|(n, s)| (n.to_string(), s.clone()));
        self.bounded(move |i| i.mark_sent_batch(&ds, digest.as_ref().map(|(n, s)| (n.as_str(), s))))
    }

    /// When a digest subscriber last got its digest.
    pub fn digest_state(&self, subscriber: &str) -> Result<Option<DigestState>, StoreError> {
        self.run(|i| i.digest_state(subscriber))
    }

    /// The daemon's record of a source.
    pub fn daemon_source(&self, source: &str) -> Result<Option<DaemonSource>, StoreError> {
        self.run(|i| i.daemon_source(source))
    }

    /// Every daemon record, by `entity/source`.
    pub fn daemon_sources(&self) -> Result<Vec<(String, DaemonSource)>, StoreError> {
        self.run(|i| i.daemon_sources())
    }

    /// Writes the daemon's record of a source. Not flushed here: the
    /// daemon flushes its schedule in batches and on shutdown; a crash
    /// loses at most sled's flush window, i.e. a source is checked once
    /// more than planned.
    pub fn put_daemon_source(&self, source: &str, d: &DaemonSource) -> Result<(), StoreError> {
        self.run(|i| i.put_daemon_source(source, d))
    }

    /// Forgets the daemon's record of a source (it left the watchlists).
    pub fn remove_daemon_source(&self, source: &str) -> Result<(), StoreError> {
        self.run(|i| i.remove_daemon_source(source))
    }

    /// Flushes everything written so far to disk and records it in the
    /// integrity marker. Bounded by `[store] write_timeout`.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.bounded(|i| i.flush())
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.run(|i| i.size_on_disk())
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
            tracing::warn!(error = %e, "The store opened on a full disk; writes fail until there is space again.");
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
