//! `evidence`: a snapshot's body as fetched, or a finding's bundle
//! (`crate::export::bundle`).

use std::io::Write;
use std::path::Path;

use super::ReadError;
use crate::config::Config;
use crate::export::{Target, evidence_bundle, evidence_snapshot};
use crate::store::Store;

pub(crate) fn evidence(
    config: &Config,
    store: &Store,
    target: &str,
    path: Option<&Path>,
    out: &mut impl Write,
) -> Result<u8, ReadError> {
    match Target::parse(target)? {
        Target::Snapshot(id) => match path {
            Some(p) => crate::export::write_file(p, |w| evidence_snapshot(store, id, w))?,
            None => evidence_snapshot(store, id, out)?,
        },
        Target::Finding(id) => {
            let Some(p) = path else {
                return Err(ReadError::Usage(format!(
                    "evidence finding:{id} writes several files: give --out DIR or --out FILE.zip"
                )));
            };
            let names = evidence_bundle(config, store, id, p)?;
            writeln!(
                out,
                "Wrote the evidence of finding {id} to {} ({} files; manifest.json and SHA256SUMS list their SHA-256).",
                p.display(),
                names.len()
            )?;
        }
    }
    Ok(0)
}
