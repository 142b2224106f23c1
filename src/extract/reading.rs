//! What the selectors read on one page, the same whichever extractor
//! read it (the DOM path in `html.rs`, the streaming path in `stream.rs`);
//! `html::assemble` turns it into the page's record.

use crate::record::FieldValue;

/// A selector's reading: its value, and whether it matched any element.
pub(crate) type Read = (Option<FieldValue>, bool);

/// What the selectors read on one page, before it becomes an
/// `HtmlPage`: the same from both extractors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Raw {
    /// One per field of the spec.
    pub(crate) fields: Vec<Read>,
    /// One per row matched, one reading per column.
    pub(crate) rows: Vec<Vec<Read>>,
    /// The next-page link.
    pub(crate) next: Read,
}

/// The elements whose text is set apart by spaces when an element's text
/// is read (the DOM path and the streaming path alike).
pub(crate) fn is_block(name: &str) -> bool {
    matches!(
        name,
        "br" | "p"
            | "div"
            | "li"
            | "td"
            | "th"
            | "tr"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "dd"
            | "dt"
            | "section"
            | "article"
    )
}
