//! Text shown to people: scraped text made safe for a terminal, an HTML
//! page or a feed reader, and error chains written as one line.
//!
//! **Architecture Invariant:** pure; no I/O. Stored data (the store, JSON
//! output) keeps scraped text exactly as fetched: only what is *shown* goes
//! through [`for_display`].

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether a character must not reach a person's screen as it is: the
/// Unicode bidirectional controls (which can make `evil.exe` read as
/// `exe.live`, CVE-2021-42574), other invisible format controls that hide
/// or reorder text, and C0/C1 control characters (terminal escape
/// sequences) other than tab and newline.
fn is_unsafe(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}' // LRE, RLE, PDF, LRO, RLO
            | '\u{2066}'..='\u{2069}' // LRI, RLI, FSI, PDI
            | '\u{200E}' | '\u{200F}' | '\u{061C}' // LRM, RLM, ALM
            | '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' // zero-width
            | '\u{FFF9}'..='\u{FFFB}' // interlinear annotation
    ) || (c.is_control() && c != '\n' && c != '\t')
}

/// Scraped text as it may be shown: every unsafe character (see above) is
/// replaced by a visible escape such as `<U+202E>`, so an analyst sees that
/// something was hidden there and what. Borrowed when nothing changes.
pub fn for_display(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if is_unsafe(c) {
            let _ = write!(out, "<U+{:04X}>", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// An error and its causes as one line, `outer: cause: root cause`, each
/// cause once. A message that already ends with its cause's text (a
/// wrapper that printed it) does not get it a second time. Use this
/// wherever an error becomes data (a stored `last_error`, JSON output, a
/// notice); never `to_string()`, which drops the causes.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(cause) = cur {
        let msg = cause.to_string();
        if !msg.is_empty() && !out.ends_with(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        cur = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidi_and_control_characters_are_escaped_visibly() {
        let hostile = "Atlas\u{202E}gpj.exe\u{1b}[31m red\u{7}\u{85}";
        assert_eq!(
            for_display(hostile),
            "Atlas<U+202E>gpj.exe<U+001B>[31m red<U+0007><U+0085>"
        );
        assert_eq!(
            for_display("a\u{2066}b\u{2069}\u{200B}"),
            "a<U+2066>b<U+2069><U+200B>"
        );
    }

    #[test]
    fn ordinary_text_is_borrowed_untouched() {
        let s = "Процессоры TI — «DSP»\tи FPGA\nلوازم";
        assert!(matches!(for_display(s), Cow::Borrowed(_)));
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("wrapper: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn chain_prints_each_cause_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        assert_eq!(chain(&Outer(io())), "outer: no such file");
        assert_eq!(chain(&Repeats(io())), "wrapper: no such file");
        assert_eq!(chain(&io()), "no such file");
    }
}
