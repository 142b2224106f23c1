//! `pivotwatch evidence`: a snapshot's body exactly as fetched, or a
//! finding's bundle: `finding.json`, `alert.txt`, the `before/` and
//! `after/` snapshots (`body.*` as fetched, `snapshot.json` with the
//! fetch metadata and the extracted record), and `manifest.json` naming
//! every other file with its SHA-256 and size (also as `SHA256SUMS`, for
//! `sha256sum -c`). Written to a folder, or to a `.zip` file.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use super::{ExportError, body, snapshot};
use crate::config::Config;
use crate::record::{Finding, Snapshot};
use crate::store::{Store, sha256_hex};

/// Writes a snapshot's body, the decoded bytes as fetched, to `out`.
pub fn evidence_snapshot(store: &Store, id: u64, out: &mut dyn Write) -> Result<(), ExportError> {
    let s = snapshot(store, id)?;
    out.write_all(&body(store, &s)?)?;
    out.flush()?;
    Ok(())
}

/// One file of a bundle, as the manifest names it.
#[derive(Debug, Serialize)]
struct ManifestFile {
    path: String,
    sha256: String,
    bytes: u64,
}

#[derive(Debug, Serialize)]
struct Manifest<'a> {
    pivotwatch: &'static str,
    installation_id: &'a str,
    finding: u64,
    entity: &'a str,
    source: &'a str,
    created_at: chrono::DateTime<chrono::Utc>,
    files: Vec<ManifestFile>,
}

/// The files of a finding's bundle, in order (`manifest.json` and
/// `SHA256SUMS` last).
pub(crate) fn bundle_files(
    config: &Config,
    store: &Store,
    id: u64,
) -> Result<Vec<(String, Vec<u8>)>, ExportError> {
    let f: Finding = store.finding(id)?.ok_or_else(|| {
        ExportError::Usage(format!(
            "no finding {id} in the store (`pivotwatch findings` lists them)"
        ))
    })?;
    let entity_name = config
        .entity(&f.entity)
        .map_or_else(|| f.entity.clone(), |e| e.name.clone());
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    files.push(("finding.json".into(), pretty(&f)));
    files.push((
        "alert.txt".into(),
        crate::alert::text_body(&entity_name, &f).into_bytes(),
    ));
    for (dir, sid) in [
        ("before", f.evidence.previous_snapshot),
        ("after", f.evidence.snapshot),
    ] {
        let Some(sid) = sid else { continue };
        let s = snapshot(store, sid)?;
        let b = body(store, &s)?;
        let responses = s.fetch.as_ref().map_or(&[][..], |m| &m.responses[..]);
        if responses.iter().any(|r| r.body_blob.is_some()) {
            // A whole-site snapshot: its body is the page manifest; each
            // page read in that check is its own blob, as fetched.
            files.push((format!("{dir}/pages.txt"), b));
            for (n, r) in responses.iter().enumerate() {
                let Some(h) = &r.body_blob else { continue };
                let page = store.blob(h)?.ok_or_else(|| ExportError::MissingBody {
                    snapshot: s.id,
                    hash: h.clone(),
                })?;
                files.push((format!("{dir}/page-{n:03}.{}", extension_of(r)), page));
            }
        } else {
            files.push((format!("{dir}/body.{}", extension(&s)), b));
        }
        files.push((format!("{dir}/snapshot.json"), pretty(&s)));
    }
    let manifest = Manifest {
        pivotwatch: env!("CARGO_PKG_VERSION"),
        installation_id: store.installation_id(),
        finding: f.id,
        entity: &f.entity,
        source: &f.source,
        created_at: f.created_at,
        files: files
            .iter()
            .map(|(p, b)| ManifestFile {
                path: p.clone(),
                sha256: sha256_hex(b),
                bytes: b.len() as u64,
            })
            .collect(),
    };
    let sums: String = manifest
        .files
        .iter()
        .map(|m| format!("{}  {}\n", m.sha256, m.path))
        .collect();
    files.push(("manifest.json".into(), pretty(&manifest)));
    files.push(("SHA256SUMS".into(), sums.into_bytes()));
    Ok(files)
}

/// Writes a finding's bundle to `dest`: a `.zip` file when the name ends
/// so, else a folder (created; it must be empty or new).
pub fn evidence_bundle(
    config: &Config,
    store: &Store,
    id: u64,
    dest: &Path,
) -> Result<Vec<String>, ExportError> {
    let files = bundle_files(config, store, id)?;
    let names = files.iter().map(|(n, _)| n.clone()).collect();
    let is_zip = dest
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"));
    if is_zip {
        let zip_err = |source| ExportError::Zip {
            path: dest.to_path_buf(),
            source,
        };
        super::write_file(dest, |w| {
            let mut buf = std::io::Cursor::new(Vec::new());
            {
                let mut zip = zip::ZipWriter::new(&mut buf);
                let opts = zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Deflated);
                let top = format!("finding-{id}");
                for (name, bytes) in &files {
                    zip.start_file(format!("{top}/{name}"), opts)
                        .map_err(zip_err)?;
                    zip.write_all(bytes)?;
                }
                zip.finish().map_err(zip_err)?;
            }
            w.write_all(buf.get_ref())?;
            Ok(())
        })?;
    } else {
        let file_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ExportError::File { path, source }
        };
        if dest.exists()
            && std::fs::read_dir(dest)
                .map_err(file_err(dest))?
                .next()
                .is_some()
        {
            return Err(ExportError::Usage(format!(
                "{} is not empty: give a new or empty folder, or a FILE.zip",
                dest.display()
            )));
        }
        for (name, bytes) in &files {
            let path = dest.join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(file_err(parent))?;
            }
            std::fs::write(&path, bytes).map_err(file_err(&path))?;
        }
    }
    Ok(names)
}

fn pretty<T: Serialize>(v: &T) -> Vec<u8> {
    let mut b = serde_json::to_vec_pretty(v).unwrap_or_default();
    b.push(b'\n');
    b
}

/// A file extension for a snapshot's body, from its `Content-Type`.
fn extension(s: &Snapshot) -> &'static str {
    match s.fetch.as_ref().and_then(|m| m.responses.first()) {
        Some(r) => extension_of(r),
        None => "bin",
    }
}

/// A file extension for one response's body, from its `Content-Type`.
fn extension_of(r: &crate::record::ResponseMeta) -> &'static str {
    let ct = r
        .headers
        .get("content-type")
        .map(|c| c.to_ascii_lowercase())
        .unwrap_or_default();
    if ct.contains("pdf") {
        return "pdf";
    }
    if ct.contains("json") {
        "json"
    } else if ct.contains("html") {
        "html"
    } else if ct.contains("xml") {
        "xml"
    } else if ct.starts_with("text/") {
        "txt"
    } else {
        "bin"
    }
}
