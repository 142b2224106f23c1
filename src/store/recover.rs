//! Recovery from a damaged sled snapshot file (`db/snap.*`).
//!
//! sled 0.34 keeps its page table in one snapshot file and refuses to open
//! when that file is damaged ("Read corrupted data"), although the data
//! files can rebuild it. The rebuild is tried on a copy of the database
//! without the snapshot; it is kept only when the result is exactly the
//! store the integrity marker describes (same installation, not behind).
//! Otherwise nothing is changed and the error names the file.

use std::path::{Path, PathBuf};

use super::error::Fault;
use super::error::from_fault;
use super::inner::Inner;
use super::marker::Marker;
use super::{StoreError, verify};

/// sled's snapshot files in a database folder, oldest first.
fn snapshot_files(db: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(db)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with("snap.") {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// Copies a database folder, leaving out its snapshot files.
fn copy_without_snapshots(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with("snap.") {
            continue;
        }
        if entry.file_type()?.is_dir() {
            copy_without_snapshots(&entry.path(), &to.join(&name))?;
        } else {
            std::fs::copy(entry.path(), to.join(&name))?;
        }
    }
    std::fs::File::open(to)?.sync_all()
}

fn io_error(dir: &Path, e: std::io::Error) -> StoreError {
    from_fault(dir, Fault::Sled(sled::Error::Io(e)))
}

/// Opens `dir/db` again after sled found corrupted data, by rebuilding
/// without its snapshot file when that gives back the whole store.
pub(super) fn rebuild_without_snapshot(
    dir: &Path,
    marker: Option<&Marker>,
) -> Result<Inner, StoreError> {
    let db = dir.join("db");
    let snaps = snapshot_files(&db).map_err(|e| io_error(dir, e))?;
    let Some(file) = snaps.last().cloned() else {
        return Err(StoreError::Damaged { path: db });
    };
    let Some(marker) = marker else {
        return Err(StoreError::DamagedSnapshot {
            file,
            why: "the store has no integrity marker to check a rebuild against".into(),
        });
    };
    let work = dir.join("db.rebuilding");
    if work.exists() {
        std::fs::remove_dir_all(&work).map_err(|e| io_error(dir, e))?;
    }
    let tried = copy_without_snapshots(&db, &work)
        .map_err(|e| io_error(dir, e))
        .and_then(|()| match Inner::open(dir, &work) {
            Ok(inner) => {
                let checked = verify(dir, &inner, Some(marker));
                drop(inner);
                checked.map(|_| ())
            }
            Err(f) => Err(from_fault(dir, f)),
        });
    if let Err(e) = tried {
        let _ = std::fs::remove_dir_all(&work);
        let why = match e {
            StoreError::Emptied { .. } => "without it the data files hold nothing".to_string(),
            StoreError::Behind {
                found, expected, ..
            } => format!(
                "without it the data files hold the store as of flush {found}, not {expected}"
            ),
            StoreError::Replaced { .. } => {
                "without it the data files hold another installation".to_string()
            }
            StoreError::Damaged { .. } => "the data files are damaged too".to_string(),
            StoreError::DiskFull { .. } => {
                return Err(e);
            }
            other => other.to_string(),
        };
        return Err(StoreError::DamagedSnapshot { file, why });
    }
    let aside = dir.join(format!(
        "db.damaged-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    ));
    std::fs::rename(&db, &aside).map_err(|e| io_error(dir, e))?;
    std::fs::rename(&work, &db).map_err(|e| io_error(dir, e))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))?;
    tracing::warn!(
        file = %file.display(),
        kept = %aside.display(),
        "The store's snapshot file was damaged; the store was rebuilt from its data files and matches its integrity marker. The damaged copy is kept; delete it once pivotwatch runs fine."
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match Inner::open(dir, &db) {
            Err(Fault::Sled(e))
                if super::inner::is_locked(&e) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Ok(i) => return Ok(i),
            Err(f) => return Err(from_fault(dir, f)),
        }
    }
}
