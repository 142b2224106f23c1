//! [`StoreError`], and how sled's errors and the store's faults become one.

use std::path::{Path, PathBuf};

use super::marker;

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
    /// A stored value's JSON does not match its record type.
    #[error("stored value under {key} does not decode; the store may be from a newer pivotwatch")]
    Undecodable {
        /// Which key.
        key: String,
        /// serde's error (with the line and column in the value).
        #[source]
        source: serde_json::Error,
    },
    /// The store was written by a newer pivotwatch, with a layout this one
    /// does not know.
    #[error(
        "the store at {path} has schema version {found}, newer than this pivotwatch reads (version {supported}): it was written by a newer pivotwatch; pivotwatch refuses to use it and changed nothing: run the newer pivotwatch, or use another --state-dir"
    )]
    Schema {
        /// The database folder.
        path: PathBuf,
        /// The version the store records.
        found: u64,
        /// The newest version this pivotwatch reads ([`super::SCHEMA_VERSION`]).
        supported: u64,
    },
    /// A batched source-state call (`store::StateLane`) got no answer: its
    /// batch's task panicked or was cancelled (a bug, or the runtime
    /// shutting down); the store itself may be fine.
    #[error("a batched store call on {path} stopped before it finished")]
    Lane {
        /// The state folder.
        path: PathBuf,
    },
    /// A store call on the blocking pool panicked or was cancelled (a bug,
    /// or the runtime shutting down); the store itself may be fine.
    #[error("a store task stopped before it finished")]
    Task {
        /// Tokio's report (panicked or cancelled).
        source: tokio::task::JoinError,
    },
    /// Compression or decompression of evidence failed.
    #[error("evidence blob {hash}: {detail}")]
    Blob {
        /// The body hash.
        hash: String,
        /// What failed.
        detail: String,
    },
    /// A backup file cannot be written or read.
    #[error("cannot {action} the backup {path}")]
    BackupIo {
        /// "write" or "read".
        action: &'static str,
        /// The backup file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A backup file is not one, or is damaged.
    #[error("{path} is not a pivotwatch backup, or it is damaged: {detail}; nothing was restored")]
    BackupFormat {
        /// The backup file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A backup of a newer store layout.
    #[error(
        "the backup {path} holds a store of schema version {found}, newer than this pivotwatch reads (version {supported}): restore it with the pivotwatch that made it (or a newer one); nothing was restored"
    )]
    BackupSchema {
        /// The backup file.
        path: PathBuf,
        /// The version the backup records.
        found: u64,
        /// The newest version this pivotwatch reads.
        supported: u64,
    },
    /// `restore` into a state folder that is not empty.
    #[error(
        "{path} is not empty: restore only into a new or empty state folder (move the old one aside first, or give another --state-dir); nothing was restored"
    )]
    RestoreNotEmpty {
        /// The state folder.
        path: PathBuf,
    },
    /// The restored store does not hold what the backup does.
    #[error(
        "the store restored in {path} does not match the backup in tree {tree} ({detail}); remove {path} and try again, on another disk if it happens again"
    )]
    RestoreMismatch {
        /// The state folder.
        path: PathBuf,
        /// The tree.
        tree: String,
        /// What differs.
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
pub(super) fn is_disk_full(e: &std::io::Error) -> bool {
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
pub(super) fn from_fault(dir: &Path, f: Fault) -> StoreError {
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
