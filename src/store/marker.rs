//! The integrity marker: a small file next to the database, outside sled,
//! that says which store this is and how far it has durably got.
//!
//! `store.marker` in the state folder holds the store's installation id,
//! the last sequence number known to be on disk (written only after a
//! successful flush) and a checksum of both. On open, a database that is
//! empty, has another installation id, or is behind the marker was
//! damaged, lost writes or was replaced, and is refused.
//!
//! Written atomically: a temporary file, fsync, rename, fsync of the folder.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The marker's file name in the state folder.
pub(super) const FILE: &str = "store.marker";

/// What the marker records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Marker {
    /// The store's installation id.
    pub installation_id: String,
    /// The last sequence number durably flushed.
    pub seq: u64,
    /// BLAKE3 of `installation_id:seq`, hex.
    pub checksum: String,
}

/// Why a marker cannot be used.
#[derive(Debug)]
pub(super) enum ReadError {
    /// It cannot be read (permissions, I/O).
    Io(std::io::Error),
    /// It does not parse or its checksum does not match.
    Damaged(String),
}

fn checksum(installation_id: &str, seq: u64) -> String {
    blake3::hash(format!("{installation_id}:{seq}").as_bytes())
        .to_hex()
        .to_string()
}

impl Marker {
    pub(super) fn new(installation_id: &str, seq: u64) -> Marker {
        Marker {
            installation_id: installation_id.to_string(),
            seq,
            checksum: checksum(installation_id, seq),
        }
    }
}

/// The marker's path for a state folder.
pub(super) fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Reads the marker; `Ok(None)` when there is none (a new store, or one
/// made by a pivotwatch without markers).
pub(super) fn read(dir: &Path) -> Result<Option<Marker>, ReadError> {
    let bytes = match std::fs::read(path(dir)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ReadError::Io(e)),
    };
    let m: Marker =
        serde_json::from_slice(&bytes).map_err(|e| ReadError::Damaged(e.to_string()))?;
    if m.checksum != checksum(&m.installation_id, m.seq) {
        return Err(ReadError::Damaged("its checksum does not match".into()));
    }
    Ok(Some(m))
}

/// Writes the marker atomically (temp file, fsync, rename, fsync folder).
pub(super) fn write(dir: &Path, m: &Marker) -> std::io::Result<()> {
    let tmp = dir.join(format!("{FILE}.tmp"));
    let bytes = serde_json::to_vec_pretty(m).unwrap_or_default();
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path(dir))?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_round_trips_and_a_tampered_one_is_damaged() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(read(dir.path()).expect("read").is_none());
        let m = Marker::new("0123456789abcdef0123456789abcdef", 42);
        write(dir.path(), &m).expect("write");
        assert_eq!(read(dir.path()).expect("read"), Some(m.clone()));
        let text = std::fs::read_to_string(path(dir.path())).expect("read");
        std::fs::write(path(dir.path()), text.replace("42", "43")).expect("write");
        assert!(matches!(read(dir.path()), Err(ReadError::Damaged(_))));
    }
}
