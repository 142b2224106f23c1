//! Text normalisation: the single place that decides what counts as the
//! same text.

use unicode_normalization::UnicodeNormalization;

/// NFC-normalises and collapses every run of whitespace (incl. NBSP) to one
/// space, trimmed. Case is kept for display.
pub fn clean_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.nfc() {
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
    out
}

/// The comparison form of a cleaned text: case-folded. Two texts whose
/// folds are equal are the same text for diffing.
pub fn fold(s: &str) -> String {
    clean_text(s).to_lowercase()
}

/// A part number's normal form: letters and digits only, upper case
/// (`tms320-f28335 pgfa` → `TMS320F28335PGFA`).
pub fn normalise_part_number(s: &str) -> String {
    s.nfkc()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_uppercase)
        .collect()
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
