//! `pivotwatch backup` and `restore`: a logical copy of every tree.
//!
//! The file is one zstd frame (with its content checksum) holding a magic
//! line, a JSON header ([`BackupHeader`]: format version, schema version,
//! installation id, time) and then, tree by tree, its entries in key order
//! followed by the tree's entry count and BLAKE3 digest (over each entry's
//! length-prefixed key and value). A backup is consistent: it is taken
//! with every other store operation of the process paused (the store's
//! pause lock, which every read and write holds for reading), so it is one
//! moment of the store, also while `pivotwatch run` holds it (the daemon
//! makes it, through its control socket).
//!
//! `restore` writes into a new or empty state folder only, refuses a
//! backup of a newer schema before writing anything, checks each tree's
//! digest as it reads it and again on the restored database, flushes (which
//! writes the integrity marker for the restored store: same installation
//! id, so Message-IDs and Atom ids carry on) and opens the result as any
//! start would, marker check included.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::codec::SCHEMA_VERSION;
use super::error::{Fault, from_fault};
use super::inner::{INSTALLATION_ID, Inner};
use super::{Store, StoreError};

const MAGIC: &[u8] = b"PIVOTWATCH-BACKUP\n";
/// The layout of the backup file itself.
const FORMAT: u32 = 1;
/// The longest key or value a backup entry may hold (sled's limit is far
/// above what the store writes; this bounds what a damaged file costs).
const MAX_ITEM: u32 = 1 << 30;

const TAG_TREE: u8 = b'T';
const TAG_ENTRY: u8 = b'E';
const TAG_DIGEST: u8 = b'D';
const TAG_END: u8 = b'Z';

/// What a backup file starts with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupHeader {
    /// The backup file's own format (1).
    pub format: u32,
    /// The store's schema version ([`SCHEMA_VERSION`] of the pivotwatch
    /// that made it).
    pub schema_version: u64,
    /// The store's installation id.
    pub installation_id: String,
    /// When the backup was made.
    pub created_at: DateTime<Utc>,
    /// The pivotwatch that made it.
    pub pivotwatch: String,
}

/// One tree's content, as a backup records it and a restore verifies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TreeDigest {
    /// The tree's name.
    pub tree: String,
    /// How many entries it holds.
    pub entries: u64,
    /// BLAKE3 over its entries in key order (hex).
    pub blake3: String,
}

/// What a backup or a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    /// The header.
    pub header: BackupHeader,
    /// Each tree.
    pub trees: Vec<TreeDigest>,
    /// The file's size.
    pub bytes: u64,
}

/// A running digest of one tree.
struct Digest {
    hasher: blake3::Hasher,
    entries: u64,
}

impl Digest {
    fn new() -> Digest {
        Digest {
            hasher: blake3::Hasher::new(),
            entries: 0,
        }
    }

    fn add(&mut self, k: &[u8], v: &[u8]) {
        self.hasher.update(&(k.len() as u64).to_be_bytes());
        self.hasher.update(k);
        self.hasher.update(&(v.len() as u64).to_be_bytes());
        self.hasher.update(v);
        self.entries += 1;
    }

    fn finish(self, tree: &str) -> TreeDigest {
        TreeDigest {
            tree: tree.to_string(),
            entries: self.entries,
            blake3: self.hasher.finalize().to_hex().to_string(),
        }
    }
}

fn tree_name(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

impl Inner {
    /// Every tree's digest, in name order.
    pub(super) fn tree_digests(&self) -> Result<Vec<TreeDigest>, Fault> {
        let mut names = self.db.tree_names();
        names.sort();
        let mut out = Vec::new();
        for name in names {
            let tree = self.db.open_tree(&name)?;
            let mut d = Digest::new();
            for kv in tree.iter() {
                let (k, v) = kv?;
                d.add(&k, &v);
            }
            out.push(d.finish(&tree_name(&name)));
        }
        Ok(out)
    }
}

impl Store {
    /// Every tree's entry count and digest, in name order (what a backup
    /// records and a restore checks).
    pub fn tree_digests(&self) -> Result<Vec<TreeDigest>, StoreError> {
        self.run(|i| i.tree_digests())
    }

    /// Writes a consistent copy of the store to `path` (through a
    /// temporary file in its folder, renamed into place once whole and
    /// synced). Every other store operation of this process waits while
    /// the trees are read.
    pub fn backup(&self, path: &Path) -> Result<BackupReport, StoreError> {
        let io = |source| StoreError::BackupIo {
            action: "write",
            path: path.to_path_buf(),
            source,
        };
        let tmp = path.with_file_name(format!(
            ".{}.pivotwatch-tmp",
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        let file = std::fs::File::create(&tmp).map_err(io)?;
        let result = self.paused(|i| write_backup(i, BufWriter::new(file)));
        let (header, trees) = match result {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(match e {
                    BackupFault::Io(source) => io(source),
                    BackupFault::Store(f) => from_fault(self.path(), f),
                });
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        std::fs::rename(&tmp, path).map_err(io)?;
        let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        Ok(BackupReport {
            header,
            trees,
            bytes,
        })
    }
}

/// Why writing or reading a backup failed.
enum BackupFault {
    Io(std::io::Error),
    Store(Fault),
}

impl From<std::io::Error> for BackupFault {
    fn from(e: std::io::Error) -> Self {
        BackupFault::Io(e)
    }
}

impl From<Fault> for BackupFault {
    fn from(f: Fault) -> Self {
        BackupFault::Store(f)
    }
}

impl From<sled::Error> for BackupFault {
    fn from(e: sled::Error) -> Self {
        BackupFault::Store(e.into())
    }
}

fn write_backup(
    i: &Inner,
    w: BufWriter<std::fs::File>,
) -> Result<(BackupHeader, Vec<TreeDigest>), BackupFault> {
    let header = BackupHeader {
        format: FORMAT,
        schema_version: i.schema_version()?.unwrap_or(1),
        installation_id: i.installation_id.clone(),
        created_at: Utc::now(),
        pivotwatch: env!("CARGO_PKG_VERSION").to_string(),
    };
    let mut z = zstd::stream::Encoder::new(w, 3)?;
    z.include_checksum(true)?;
    z.write_all(MAGIC)?;
    let mut line = serde_json::to_vec(&header).unwrap_or_default();
    line.push(b'\n');
    z.write_all(&line)?;
    let mut names = i.db.tree_names();
    names.sort();
    let mut trees = Vec::new();
    for name in names {
        let tree = i.db.open_tree(&name)?;
        z.write_all(&[TAG_TREE])?;
        write_item(&mut z, &name)?;
        let mut d = Digest::new();
        for kv in tree.iter() {
            let (k, v) = kv?;
            z.write_all(&[TAG_ENTRY])?;
            write_item(&mut z, &k)?;
            write_item(&mut z, &v)?;
            d.add(&k, &v);
        }
        let d = d.finish(&tree_name(&name));
        z.write_all(&[TAG_DIGEST])?;
        z.write_all(&d.entries.to_be_bytes())?;
        let raw = blake3::Hash::from_hex(&d.blake3)
            .map(|h| *h.as_bytes())
            .unwrap_or([0; 32]);
        z.write_all(&raw)?;
        trees.push(d);
    }
    z.write_all(&[TAG_END])?;
    let w = z.finish()?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok((header, trees))
}

fn write_item(w: &mut impl Write, b: &[u8]) -> std::io::Result<()> {
    let n = u32::try_from(b.len()).map_err(|_| std::io::Error::other("item over 4 GiB"))?;
    w.write_all(&n.to_be_bytes())?;
    w.write_all(b)
}

fn read_exact<const N: usize>(r: &mut impl Read) -> std::io::Result<[u8; N]> {
    let mut b = [0u8; N];
    r.read_exact(&mut b)?;
    Ok(b)
}

fn read_item(r: &mut impl Read) -> Result<Vec<u8>, String> {
    let n = u32::from_be_bytes(read_exact::<4>(r).map_err(|e| e.to_string())?);
    if n > MAX_ITEM {
        return Err(format!("an entry claims {n} bytes"));
    }
    let mut b = vec![0u8; n as usize];
    r.read_exact(&mut b).map_err(|e| e.to_string())?;
    Ok(b)
}

/// Restores the backup `file` into the state folder `dir`, which must be
/// new or empty; returns what was restored, every tree verified, the
/// result opened (and so checked against its new integrity marker).
pub fn restore(file: &Path, dir: &Path) -> Result<BackupReport, StoreError> {
    let format_err = |detail: String| StoreError::BackupFormat {
        path: file.to_path_buf(),
        detail,
    };
    let read_io = |source| StoreError::BackupIo {
        action: "read",
        path: file.to_path_buf(),
        source,
    };
    let dir_io = |source| StoreError::Io {
        path: dir.to_path_buf(),
        source,
    };
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(StoreError::RestoreNotEmpty {
                    path: dir.to_path_buf(),
                });
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(dir_io(e)),
    }
    let f = std::fs::File::open(file).map_err(read_io)?;
    let bytes = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut z = zstd::stream::Decoder::new(f).map_err(read_io)?;
    let mut magic = [0u8; MAGIC.len()];
    z.read_exact(&mut magic)
        .map_err(|e| format_err(format!("it does not start as one ({e})")))?;
    if magic != MAGIC {
        return Err(format_err("it does not start as one".into()));
    }
    let mut z = BufReader::new(z);
    let mut line = Vec::new();
    std::io::BufRead::read_until(&mut z, b'\n', &mut line).map_err(read_io)?;
    let header: BackupHeader = serde_json::from_slice(&line)
        .map_err(|e| format_err(format!("its header does not read ({e})")))?;
    if header.format != FORMAT {
        return Err(format_err(format!(
            "backup format {} (this pivotwatch reads format {FORMAT})",
            header.format
        )));
    }
    if header.schema_version > SCHEMA_VERSION {
        return Err(StoreError::BackupSchema {
            path: file.to_path_buf(),
            found: header.schema_version,
            supported: SCHEMA_VERSION,
        });
    }
    std::fs::create_dir_all(dir).map_err(dir_io)?;
    let db_path = dir.join("db");
    let result = (|| -> Result<Vec<TreeDigest>, StoreError> {
        let inner = Inner::open(dir, &db_path).map_err(|f| from_fault(dir, f))?;
        let fault = |f: Fault| from_fault(dir, f);
        let mut trees = Vec::new();
        loop {
            let tag =
                read_exact::<1>(&mut z).map_err(|e| format_err(format!("it ends early ({e})")))?[0];
            match tag {
                TAG_END => break,
                TAG_TREE => {}
                other => return Err(format_err(format!("unexpected record {other:#04x}"))),
            }
            let name = read_item(&mut z).map_err(&format_err)?;
            let label = tree_name(&name);
            let tree = inner.db.open_tree(&name).map_err(|e| fault(e.into()))?;
            let mut d = Digest::new();
            let mut batch = sled::Batch::default();
            let mut pending = 0usize;
            loop {
                let tag = read_exact::<1>(&mut z)
                    .map_err(|e| format_err(format!("it ends early ({e})")))?[0];
                match tag {
                    TAG_ENTRY => {
                        let k = read_item(&mut z).map_err(&format_err)?;
                        let v = read_item(&mut z).map_err(&format_err)?;
                        d.add(&k, &v);
                        pending += k.len() + v.len();
                        batch.insert(k, v);
                        if pending > 8 << 20 {
                            tree.apply_batch(std::mem::take(&mut batch))
                                .map_err(|e| fault(e.into()))?;
                            pending = 0;
                        }
                    }
                    TAG_DIGEST => break,
                    other => {
                        return Err(format_err(format!(
                            "unexpected record {other:#04x} in tree {label}"
                        )));
                    }
                }
            }
            tree.apply_batch(batch).map_err(|e| fault(e.into()))?;
            let entries =
                u64::from_be_bytes(read_exact::<8>(&mut z).map_err(|e| format_err(e.to_string()))?);
            let hash = blake3::Hash::from_bytes(
                read_exact::<32>(&mut z).map_err(|e| format_err(e.to_string()))?,
            );
            let got = d.finish(&label);
            if got.entries != entries || got.blake3 != hash.to_hex().as_str() {
                return Err(format_err(format!(
                    "tree {label} does not match its digest ({} entries read, {entries} recorded)",
                    got.entries
                )));
            }
            trees.push(got);
        }
        // The zstd frame's own checksum is checked at its end.
        let mut rest = Vec::new();
        z.read_to_end(&mut rest)
            .map_err(|e| format_err(format!("its checksum does not match ({e})")))?;
        // What the database now holds, tree by tree.
        let now = inner.tree_digests().map_err(fault)?;
        for t in &trees {
            match now.iter().find(|n| n.tree == t.tree) {
                Some(n) if n == t => {}
                Some(n) => {
                    return Err(StoreError::RestoreMismatch {
                        path: dir.to_path_buf(),
                        tree: t.tree.clone(),
                        detail: format!(
                            "{} entries and digest {} restored, {} and {} in the backup",
                            n.entries, n.blake3, t.entries, t.blake3
                        ),
                    });
                }
                None => {
                    return Err(StoreError::RestoreMismatch {
                        path: dir.to_path_buf(),
                        tree: t.tree.clone(),
                        detail: "missing".into(),
                    });
                }
            }
        }
        let mut inner = inner;
        let id = inner
            .meta
            .get(INSTALLATION_ID)
            .map_err(|e| fault(e.into()))?
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default();
        if id != header.installation_id {
            return Err(format_err(format!(
                "its header names installation {}, its data {id}",
                header.installation_id
            )));
        }
        inner.installation_id = id;
        // The flush writes the restored store's integrity marker.
        inner.flush().map_err(fault)?;
        Ok(trees)
    })();
    let trees = match result {
        Ok(t) => t,
        Err(e) => {
            // Leave the folder as it was: empty.
            let _ = std::fs::remove_dir_all(&db_path);
            let _ = std::fs::remove_file(super::marker::path(dir));
            return Err(e);
        }
    };
    // Opened as any start opens it: the marker check, the reopen proof.
    let store = Store::open_waiting(dir, std::time::Duration::from_secs(5))?;
    drop(store);
    Ok(BackupReport {
        header,
        trees,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SourceState;

    #[test]
    fn a_backup_restores_the_same_trees_and_a_newer_schema_or_a_full_folder_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a");
        let store = Store::open(&a).expect("open");
        store
            .put_source_state("acme/shop", &SourceState::default())
            .expect("write");
        let file = dir.path().join("a.backup");
        let made = store.backup(&file).expect("backup");
        assert_eq!(made.trees, store.tree_digests().expect("digests"));
        let id = store.installation_id().to_string();
        drop(store);
        // Restored: the same trees, the same installation, and it opens.
        let b = dir.path().join("b");
        let restored = restore(&file, &b).expect("restore");
        assert_eq!(restored.trees, made.trees);
        let back = Store::open_waiting(&b, std::time::Duration::from_secs(5)).expect("open");
        assert_eq!(back.installation_id(), id);
        assert_eq!(
            back.source_state("acme/shop").expect("read"),
            Some(SourceState::default())
        );
        drop(back);
        // Not into a folder that holds anything.
        let err = restore(&file, &b).expect_err("not empty");
        assert!(matches!(err, StoreError::RestoreNotEmpty { .. }), "{err:?}");
        // A damaged file is refused, and leaves the folder empty.
        let mut bytes = std::fs::read(&file).expect("read");
        let n = bytes.len();
        bytes[n / 2] ^= 0x55;
        let bad = dir.path().join("bad.backup");
        std::fs::write(&bad, &bytes).expect("write");
        let c = dir.path().join("c");
        let err = restore(&bad, &c).expect_err("damaged");
        assert!(
            matches!(
                err,
                StoreError::BackupFormat { .. } | StoreError::BackupIo { .. }
            ),
            "{err:?}"
        );
        assert!(
            std::fs::read_dir(&c)
                .map(|mut d| d.next().is_none())
                .unwrap_or(true)
        );
        // A backup of a newer schema: refused before anything is written.
        let raw = zstd::decode_all(&std::fs::read(&file).expect("read")[..]).expect("zstd");
        let text_end = MAGIC.len()
            + raw[MAGIC.len()..]
                .iter()
                .position(|&b| b == b'\n')
                .expect("line");
        let mut header: serde_json::Value =
            serde_json::from_slice(&raw[MAGIC.len()..text_end]).expect("header");
        header["schema_version"] = serde_json::json!(SCHEMA_VERSION + 1);
        let mut newer = MAGIC.to_vec();
        newer.extend(serde_json::to_vec(&header).expect("json"));
        newer.extend(&raw[text_end..]);
        let newer_file = dir.path().join("newer.backup");
        std::fs::write(&newer_file, zstd::encode_all(&newer[..], 3).expect("zstd")).expect("write");
        let d = dir.path().join("d");
        let err = restore(&newer_file, &d).expect_err("newer schema");
        assert!(matches!(err, StoreError::BackupSchema { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("schema version {}", SCHEMA_VERSION + 1)),
            "{msg}"
        );
        assert!(!d.exists(), "nothing written for a refused backup");
    }
}
