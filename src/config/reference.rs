//! The reference data as the settings extend them: the shipped tables
//! (compiled in) merged with the files of `[reference] dir`. This is the
//! I/O half of [`crate::classify::Reference`], which is pure.

use std::path::Path;

use crate::classify::{ExtraFile, RefDataError, Reference};

/// The shipped data, then the files of the same names in `extra_dir`
/// (`chpl.csv`, `activity_codes.csv`, `manufacturers.toml`,
/// `families.toml`, …; see [`Reference::file_names`]), each of which adds
/// entries or overrides entries with the same key. Missing files are
/// skipped; a missing directory is an error. Every invalid entry of every
/// file is reported, each with its `path:line:col` (or `path:line` for
/// CSV), and so is every file that cannot be read.
pub fn load_reference(extra_dir: Option<&Path>) -> Result<Reference, RefDataError> {
    let mut extra: Vec<ExtraFile> = Vec::new();
    if let Some(dir) = extra_dir {
        if let Err(source) = std::fs::metadata(dir).and_then(|m| {
            if m.is_dir() {
                Ok(())
            } else {
                Err(std::io::Error::new(
                    std::io::ErrorKind::NotADirectory,
                    "not a directory",
                ))
            }
        }) {
            return Err(RefDataError::Read {
                path: dir.to_path_buf(),
                source,
            });
        }
        for name in Reference::file_names() {
            let path = dir.join(name);
            if !path.exists() {
                continue;
            }
            let text = std::fs::read_to_string(&path);
            extra.push((name, path, text));
        }
    }
    Reference::with_files(extra)
}
