//! The text of a PDF (a price list a site links to), page by page, with
//! lopdf.
//!
//! **Architecture Invariant:** pure: bytes in, text out.

/// Most pages of one PDF read.
const MAX_PDF_PAGES: u32 = 50;

/// Why a PDF gave no text.
#[derive(Debug, thiserror::Error)]
#[error("the PDF could not be read")]
pub(crate) struct PdfError(#[source] lopdf::Error);

/// The text of the first [`MAX_PDF_PAGES`] pages, one line per text line.
pub(crate) fn text(body: &[u8]) -> Result<String, PdfError> {
    let doc = lopdf::Document::load_mem(body).map_err(PdfError)?;
    let pages: Vec<u32> = doc
        .get_pages()
        .keys()
        .copied()
        .filter(|n| *n <= MAX_PDF_PAGES)
        .collect();
    doc.extract_text(&pages).map_err(PdfError)
}
