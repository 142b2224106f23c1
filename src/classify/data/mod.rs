//! Reading, merging, validating and compiling the reference data files.
//!
//! The shipped files are compiled in with `include_str!`; files of the same names in a
//! settings directory are merged over them. Loading runs in three steps, one file each:
//!
//! 1. [`csv`] and [`raw`]: each file is read into rows or serde shapes that keep where every
//!    value was written (`path:line[:col]`); syntax errors are collected.
//! 2. [`merge`]: the files are merged in order, the shipped ones first, so a settings file
//!    adds entries, replaces entries of the same key, or extends them (`extend = true`).
//! 3. [`compile`]: the merged data are validated (bad regex, unknown family, alias claimed
//!    twice…) and built into the lookup tables of a [`Reference`].
//!
//! **Invariants:** every error names its file and line (`path:line:col` for TOML values,
//! `path:line` for CSV rows); one load reports every error of every file, not just the
//! first; compiling starts only when every file parsed, so compile errors never repeat a
//! syntax error; no I/O: the settings directory is read by `config::load_reference`.

mod compile;
mod csv;
mod merge;
mod raw;

use std::path::{Path, PathBuf};

use toml::Spanned;

use crate::classify::{RefDataError, Reference};
use crate::text::LineIndex;

/// The data files, in the order they are read.
pub(crate) const FILE_NAMES: &[&str] = &[
    "chpl.csv",
    "activity_codes.csv",
    "families.toml",
    "manufacturers.toml",
    "makers.csv",
];

/// Where the shipped files live in the source tree (shown in error locations).
const EMBEDDED_DIR: &str = "data/reference";

const EMBEDDED: [(&str, &str); 5] = [
    ("chpl.csv", include_str!("../../../data/reference/chpl.csv")),
    (
        "activity_codes.csv",
        include_str!("../../../data/reference/activity_codes.csv"),
    ),
    (
        "families.toml",
        include_str!("../../../data/reference/families.toml"),
    ),
    (
        "manufacturers.toml",
        include_str!("../../../data/reference/manufacturers.toml"),
    ),
    (
        "makers.csv",
        include_str!("../../../data/reference/makers.csv"),
    ),
];

/// A position in a data file.
#[derive(Debug, Clone)]
struct Loc {
    path: PathBuf,
    line: usize,
    column: Option<usize>,
}

impl Loc {
    fn invalid(&self, message: impl Into<String>) -> RefDataError {
        RefDataError::Invalid {
            path: self.path.clone(),
            line: self.line,
            column: self.column,
            message: message.into(),
        }
    }
}

/// A string value and where it was written.
#[derive(Debug, Clone)]
struct S {
    v: String,
    loc: Loc,
}

/// One file being read.
struct File<'a> {
    path: PathBuf,
    text: &'a str,
    /// Every entry's location is looked up here instead of counting newlines
    /// from the top each time (that was a quarter of building the tables).
    lines: LineIndex<'a>,
}

impl<'a> File<'a> {
    fn new(path: PathBuf, text: &'a str) -> File<'a> {
        File {
            path,
            text,
            lines: LineIndex::new(text),
        }
    }

    /// The line and column of a byte offset.
    fn loc(&self, offset: usize) -> Loc {
        let (line, col) = self.lines.line_col(offset);
        Loc {
            path: self.path.clone(),
            line,
            column: Some(col),
        }
    }

    /// A whole line (CSV rows have no column).
    fn line(&self, line: usize) -> Loc {
        Loc {
            path: self.path.clone(),
            line,
            column: None,
        }
    }

    /// A syntax error on a whole line.
    fn syntax(&self, line: usize, message: impl Into<String>) -> RefDataError {
        RefDataError::Syntax {
            path: self.path.clone(),
            line,
            column: None,
            message: message.into(),
        }
    }

    fn s(&self, v: &Spanned<String>) -> S {
        S {
            v: v.get_ref().trim().to_string(),
            loc: self.loc(v.span().start),
        }
    }

    fn ss(&self, v: &[Spanned<String>]) -> Vec<S> {
        v.iter().map(|x| self.s(x)).collect()
    }

    fn toml_error(&self, e: &toml::de::Error) -> RefDataError {
        let loc = e.span().map(|sp| self.loc(sp.start));
        RefDataError::Syntax {
            path: self.path.clone(),
            line: loc.as_ref().map_or(1, |l| l.line),
            column: Some(loc.and_then(|l| l.column).unwrap_or(1)),
            message: e.message().trim().to_string(),
        }
    }
}

/// Six digits of an HS code written `854231`, `8542.31` or `8542 31`; None otherwise.
fn hs6_of(s: &str) -> Option<String> {
    let t = s.trim();
    if t.is_empty()
        || !t
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == ' ')
    {
        return None;
    }
    let digits: String = t.chars().filter(char::is_ascii_digit).collect();
    (digits.len() == 6).then_some(digits)
}

/// A settings file of reference data, as the caller read it: its name (one
/// of [`FILE_NAMES`]), where it is, and its text or the error reading it.
pub type ExtraFile = (&'static str, PathBuf, std::io::Result<String>);

/// Merges the shipped files and the caller's settings files (read by
/// `config::load_reference`; this module does no I/O), then compiles.
pub(crate) fn load(extra: Vec<ExtraFile>) -> Result<Reference, RefDataError> {
    let mut errs = Vec::new();
    let mut merged = merge::Merged::default();
    for (name, text) in EMBEDDED {
        let file = File::new(Path::new(EMBEDDED_DIR).join(name), text);
        merged.add_file(name, &file, &mut errs);
    }
    for (name, path, text) in extra {
        match text {
            Ok(text) => {
                let file = File::new(path, &text);
                merged.add_file(name, &file, &mut errs);
            }
            Err(source) => errs.push(RefDataError::Read { path, source }),
        }
    }
    if !errs.is_empty() {
        return Err(RefDataError::from_list(errs));
    }
    let reference = compile::compile(merged, &mut errs);
    match reference {
        Some(r) if errs.is_empty() => Ok(r),
        _ => Err(RefDataError::from_list(errs)),
    }
}
