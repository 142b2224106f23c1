//! Text normalisation: the single place that decides what counts as the
//! same text.

use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};

pub use crate::text::normalise_part_number;

/// NFC-normalises and collapses every run of whitespace (incl. NBSP) to one
/// space, trimmed. Case is kept for display.
pub fn clean_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    // Fast paths (same result): ASCII is always NFC, and text that the quick
    // check already finds in NFC needs no normalising iterator.
    if s.is_ascii() {
        collapse_ascii(s, &mut out);
    } else if is_nfc_quick(s.chars()) == IsNormalized::Yes {
        collapse(s.chars(), &mut out);
    } else {
        collapse(s.nfc(), &mut out);
    }
    out
}

fn collapse(chars: impl Iterator<Item = char>, out: &mut String) {
    let mut space = false;
    for c in chars {
        if c.is_whitespace() || c == '\u{a0}' || c == '\u{200b}' {
            space = !out.is_empty();
        } else {
            if space {
                out.push(' ');
                space = false;
            }
            out.push(c);
        }
    }
}

/// [`collapse`] for ASCII text: the ASCII characters `char::is_whitespace`
/// accepts are TAB, LF, VT, FF, CR and space.
fn collapse_ascii(s: &str, out: &mut String) {
    let ws = |c: u8| matches!(c, b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r' | b' ');
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && ws(b[i]) {
            i += 1;
        }
        let start = i;
        while i < b.len() && !ws(b[i]) {
            i += 1;
        }
        if start < i {
            if !out.is_empty() {
                out.push(' ');
            }
            // ASCII: every byte offset is a character boundary.
            out.push_str(&s[start..i]);
        }
    }
}

/// The comparison form of a cleaned text: case-folded. Two texts whose
/// folds are equal are the same text for diffing.
pub fn fold(s: &str) -> String {
    let mut c = clean_text(s);
    if c.is_ascii() {
        c.make_ascii_lowercase();
        c
    } else {
        c.to_lowercase()
    }
}

/// An item's stable key: its normalised part number, else its normalised
/// name (lower case, punctuation dropped, single spaces); `None` when both
/// are empty.
pub fn item_key(part_number: Option<&str>, name: Option<&str>) -> Option<String> {
    if let Some(p) = part_number {
        let n = normalise_part_number(p);
        if !n.is_empty() {
            return Some(n);
        }
    }
    let name = name?;
    let mut out = String::new();
    for word in name
        .nfkc()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect::<String>()
        .split_whitespace()
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&word.to_lowercase());
    }
    (!out.is_empty()).then(|| format!("name:{out}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_and_nbsp_collapse() {
        assert_eq!(
            clean_text("  Texas\u{a0}\n Instruments\t "),
            "Texas Instruments"
        );
        assert_eq!(clean_text(""), "");
    }

    #[test]
    fn composed_and_decomposed_are_equal() {
        assert_eq!(clean_text("Me\u{301}taux"), clean_text("Métaux"));
        assert_eq!(fold("ATLAS  Métaux"), fold("atlas métaux"));
    }

    /// The definitions the fast paths must agree with.
    fn reference_clean(s: &str) -> String {
        let mut out = String::new();
        collapse(s.nfc(), &mut out);
        out
    }

    #[test]
    fn fast_paths_agree_with_the_definitions() {
        let samples = [
            "",
            " ",
            "\t\n\u{b}\u{c}\r ",
            "  a  b\tc\nd\u{b}e\u{c}f\rg  ",
            "\u{1c}x\u{1f}y\u{85}z",
            "Texas\u{a0}Instruments\u{200b}TMS320",
            "Me\u{301}taux  Métaux",
            "ＴＭＳ３２０－Ｆ２８３３５",
            "Ⅻ ﬁ ẞ İstanbul ΣΑΣ",
            "tms320-f28335 pgfa",
            "\u{2003}em\u{3000}space\u{2028}",
        ];
        for s in samples {
            assert_eq!(clean_text(s), reference_clean(s), "{s:?}");
            assert_eq!(fold(s), reference_clean(s).to_lowercase(), "{s:?}");
        }
        // Every ASCII byte, alone and between letters.
        for b in 0u8..128 {
            let c = b as char;
            for s in [c.to_string(), format!("a{c}b"), format!("{c}{c}x{c}")] {
                assert_eq!(clean_text(&s), reference_clean(&s), "{s:?}");
            }
        }
    }

    #[test]
    fn keys() {
        assert_eq!(
            item_key(Some(" tms320-f28335 pgfa"), Some("DSP")).as_deref(),
            Some("TMS320F28335PGFA")
        );
        assert_eq!(
            item_key(Some(" - "), Some("Copper  scrap, grade 2")).as_deref(),
            Some("name:copper scrap grade 2")
        );
        assert_eq!(item_key(None, Some("  ")), None);
        assert_eq!(item_key(None, None), None);
    }
}
