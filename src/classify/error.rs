//! Errors of the reference data.

use std::fmt;
use std::path::PathBuf;

/// Where an invalid entry sits: `path:line:col`, or `path:line` for CSV rows.
fn location(path: &std::path::Path, line: usize, column: Option<usize>) -> String {
    match column {
        Some(c) => format!("{}:{line}:{c}", path.display()),
        None => format!("{}:{line}", path.display()),
    }
}

/// Lines of several errors.
struct Lines<'a>(&'a [RefDataError]);

impl fmt::Display for Lines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// A reference data file could not be read or holds invalid data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RefDataError {
    /// A file or the settings directory could not be read.
    #[error("cannot read reference data {}", .path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid TOML or CSV (an unknown key, a wrong type, an unclosed quote).
    #[error("{}: {message}", location(.path, *.line, *.column))]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column (TOML only).
        column: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// An entry is well-formed but invalid (an unknown tier or family, a bad regex, an alias
    /// claimed by two manufacturers); the message says what to fix.
    #[error("{}: {message}", location(.path, *.line, *.column))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column (TOML only).
        column: Option<usize>,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// Several errors, each on its own line.
    #[error("{}", Lines(.0))]
    Many(Vec<RefDataError>),
}

impl RefDataError {
    /// The errors one by one (a single error yields itself).
    pub fn errors(&self) -> Vec<&RefDataError> {
        match self {
            RefDataError::Many(v) => v.iter().collect(),
            e => vec![e],
        }
    }

    /// One error, or [`RefDataError::Many`].
    pub(crate) fn from_list(mut errors: Vec<RefDataError>) -> RefDataError {
        if errors.len() == 1 {
            errors.remove(0)
        } else {
            RefDataError::Many(errors)
        }
    }
}
