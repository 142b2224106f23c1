//! Diagnostics with a location: `path:line:col: message`.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::text::LineIndex;

/// One configuration error, pointing at the offending value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file.
    pub path: PathBuf,
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// 1-based column in characters (0 when unknown).
    pub col: usize,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.path.display(),
                self.line,
                self.col,
                self.message
            )
        }
    }
}

/// Every error found while loading the configuration, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<Diagnostic>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Collects diagnostics for one file and maps byte spans to line:col.
#[derive(Debug)]
pub(crate) struct Sink<'a> {
    path: &'a Path,
    lines: LineIndex<'a>,
    pub(crate) out: Vec<Diagnostic>,
    check_address: Option<super::AddressCheck>,
    /// Added to every span: the offset of the part of the file being
    /// parsed on its own (a watchlist is parsed in runs of entities).
    base: usize,
}

impl<'a> Sink<'a> {
    pub(crate) fn new(path: &'a Path, text: &'a str) -> Self {
        Sink {
            path,
            lines: LineIndex::new(text),
            out: Vec::new(),
            check_address: None,
            base: 0,
        }
    }

    /// Spans from now on are relative to byte `base` of the file.
    pub(crate) fn set_base(&mut self, base: usize) {
        self.base = base;
    }

    /// The sink, validating mail addresses with `check`
    /// ([`super::LoadOptions::check_address`]).
    pub(crate) fn with_address_check(mut self, check: Option<super::AddressCheck>) -> Self {
        self.check_address = check;
        self
    }

    /// Validates a mail address written at `span`; `false` (and an error
    /// recorded there) when the check refuses it.
    pub(crate) fn address(&mut self, span: Range<usize>, address: &str) -> bool {
        match self.check_address.map(|check| check(address)) {
            Some(Err(msg)) => {
                self.error(Some(span), msg);
                false
            }
            _ => true,
        }
    }

    /// Records an error at a byte span (None: the whole file).
    pub(crate) fn error(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        let (line, col) = match span {
            Some(s) => self.lines.line_col(self.base + s.start),
            None => (0, 0),
        };
        self.out.push(Diagnostic {
            path: self.path.to_path_buf(),
            line,
            col,
            message: message.into(),
        });
    }

    /// A diagnostic at a byte span, not recorded: for a check that can only
    /// be made once every file is loaded (a subscriber naming a watchlist).
    pub(crate) fn at(&self, span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        let (line, col) = self.lines.line_col(self.base + span.start);
        Diagnostic {
            path: self.path.to_path_buf(),
            line,
            col,
            message: message.into(),
        }
    }

    /// Records a toml deserialisation error, keeping its location.
    pub(crate) fn toml(&mut self, e: &toml::de::Error, context: &str) {
        let msg = e.message().trim().to_string();
        let msg = if context.is_empty() {
            msg
        } else {
            format!("{context}: {msg}")
        };
        self.error(e.span(), msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let text = "a = 1\nbé = 2\n";
        let mut s = Sink::new(Path::new("x.toml"), text);
        s.error(Some(0..1), "first");
        let off = text.find("= 2").unwrap();
        s.error(Some(off..off + 1), "second");
        assert_eq!(s.out[0].to_string(), "x.toml:1:1: first");
        assert_eq!(s.out[1].to_string(), "x.toml:2:4: second");
    }
}
