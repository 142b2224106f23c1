//! The sled side of the store: the open database and its trees, its
//! `meta` keys and flush. The reads and writes of each tree family live in
//! their own file (`sources.rs`, `snapshots.rs`, ...). Errors stay sled's
//! ([`Fault`]) until [`super::Store`] maps them, with the state folder, to
//! a [`StoreError`].

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use super::StoreError;
use super::codec::{SCHEMA_KEY, SCHEMA_VERSION, id_from};
use super::error::Fault;
use super::marker::{self, Marker};

pub(super) const INSTALLATION_ID: &[u8] = b"installation_id";
/// How many flushes the store has made durable (u64, big-endian). The
/// marker records the value of the last successful one.
pub(super) const SEQ: &[u8] = b"seq";

/// The open database.
#[derive(Debug)]
pub(super) struct Inner {
    /// The state folder (the marker lives there).
    pub(super) dir: PathBuf,
    pub(super) db: sled::Db,
    pub(super) meta: sled::Tree,
    pub(super) sources: sled::Tree,
    pub(super) snapshots: sled::Tree,
    pub(super) source_snapshots: sled::Tree,
    pub(super) blobs: sled::Tree,
    pub(super) findings: sled::Tree,
    pub(super) finding_keys: sled::Tree,
    pub(super) outbox: sled::Tree,
    pub(super) sent: sled::Tree,
    pub(super) digests: sled::Tree,
    pub(super) daemon: sled::Tree,
    /// The installation id (set once verified against the marker).
    pub(super) installation_id: String,
    /// Held for reading by every commit and for writing by the blob
    /// sweep of a collection pass (`retention.rs`).
    pub(super) gc_lock: std::sync::RwLock<()>,
    /// The sequence number the marker holds; the lock orders marker writes.
    marked: Mutex<u64>,
}

/// sled's answer to a lock held by another process.
pub(super) fn is_locked(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock
        || io.to_string().contains("could not acquire lock"))
}

/// sled's page cache. Chosen from measurement (BENCHMARKS.md, issue 16,
/// third session): at 100k sources a no-change pass peaked at 170–182 MiB
/// with 64 MiB, 148–152 with 32 and 141.5–146.5 with 16, at the same speed;
/// 1–64 MiB made no difference to a 1000-page first pass.
const CACHE_BYTES: u64 = 16 << 20;

impl Inner {
    /// Opens sled in `db_path` (for the state folder `dir`). The id is
    /// filled in by the caller once it is checked.
    pub(super) fn open(dir: &Path, db_path: &Path) -> Result<Inner, Fault> {
        let db = sled::Config::new()
            .path(db_path)
            .cache_capacity(CACHE_BYTES)
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
            gc_lock: std::sync::RwLock::new(()),
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

    /// The stored schema version, if any. A value that is not a u64 is
    /// [`StoreError::Corrupt`].
    pub(super) fn schema_version(&self) -> Result<Option<u64>, Fault> {
        match self.meta.get(SCHEMA_KEY)? {
            Some(v) if v.len() == 8 => Ok(id_from(&v)),
            Some(_) => Err(StoreError::Corrupt {
                key: "meta/schema_version".into(),
                detail: "not a 64-bit version number".into(),
            }
            .into()),
            None => Ok(None),
        }
    }

    /// Records that this store has the layout of [`SCHEMA_VERSION`].
    pub(super) fn write_schema_version(&self) -> Result<(), Fault> {
        self.meta
            .insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
        Ok(())
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
