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

/// Whether `err`, or an error in its chain, is an I/O error from writing
/// to a closed pipe (`pivotwatch findings | head -1`).
pub fn is_broken_pipe(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        {
            return true;
        }
        cur = e.source();
    }
    false
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

/// Byte offsets of one text mapped to 1-based line and column, the column
/// counted in characters (what an editor shows): the one lookup behind every
/// `path:line:col` of the configuration and the reference data.
///
/// Built once per file (the start of every line), then each lookup is a
/// binary search, instead of counting newlines from the top each time.
#[derive(Debug, Clone)]
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    /// Byte offset of the start of every line; the first is 0.
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    /// Indexes the lines of `text`.
    pub(crate) fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, starts }
    }

    /// The 1-based line and column of a byte offset. An offset past the end
    /// is the end; one inside a character counts as that character.
    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        // Lines starting at or before `offset`: at least the first.
        let idx = self.starts.partition_point(|&s| s <= offset).max(1) - 1;
        let start = self.starts.get(idx).copied().unwrap_or(0);
        let col = self
            .text
            .get(start..offset)
            .map_or(0, |s| s.chars().count());
        (idx + 1, col + 1)
    }
}

#[cfg(test)]
mod line_index_tests {
    use super::LineIndex;

    /// The definition the index must agree with: count from the top.
    fn counted(text: &str, offset: usize) -> (usize, usize) {
        let offset = offset.min(text.len());
        let before = text.get(..offset).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let col = before
            .get(line_start..)
            .map(|s| s.chars().count())
            .unwrap_or(0)
            + 1;
        (line, col)
    }

    #[test]
    fn line_col_counts_chars() {
        assert_eq!(counted("ab\ncdé\nx", 8), (3, 1));
        assert_eq!(counted("ab\ncd", 4), (2, 2));
        assert_eq!(LineIndex::new("ab\ncdé\nx").line_col(8), (3, 1));
        assert_eq!(LineIndex::new("ab\ncd").line_col(4), (2, 2));
        // The column after "bé" is the fourth character of its line.
        let text = "a = 1\nbé = 2\n";
        let off = text.find("= 2").unwrap_or(0);
        assert_eq!(LineIndex::new(text).line_col(off), (2, 4));
    }

    #[test]
    fn indexed_locations_agree_with_counting() {
        for text in [
            "a = 1\nname = \"Métaux\"\n\n[x]\ny = \"é\"\nlast",
            "",
            "\n\n",
            "no newline",
            "trailing\n",
            "crlf\r\nline\r\n",
        ] {
            let index = LineIndex::new(text);
            for offset in 0..=text.len() + 2 {
                if !text.is_char_boundary(offset.min(text.len())) {
                    continue;
                }
                assert_eq!(
                    index.line_col(offset),
                    counted(text, offset),
                    "{text:?} at {offset}"
                );
            }
        }
    }

    #[test]
    fn an_offset_inside_a_character_is_that_character() {
        let text = "xé\ny";
        // 'é' is bytes 1..3; offset 2 is inside it.
        assert_eq!(LineIndex::new(text).line_col(2), (1, 2));
        assert_eq!(LineIndex::new(text).line_col(3), (1, 3));
    }
}

/// Maps letters that look like Latin ones in chip markings (Cyrillic and
/// Greek capitals) to their Latin twin: GUR records carry "МАХ1660ЕЕЕ" and
/// "С8051F120" with Cyrillic letters. Applied after upper-casing.
fn latin_twin(c: char) -> char {
    match c {
        'А' | 'Α' => 'A',
        'В' | 'Β' => 'B',
        'С' | 'Ϲ' => 'C',
        'Е' | 'Ε' => 'E',
        'Н' | 'Η' => 'H',
        'І' | 'Ι' => 'I',
        'Ј' => 'J',
        'К' | 'Κ' => 'K',
        'М' | 'Μ' => 'M',
        'Ν' => 'N',
        'О' | 'Ο' => 'O',
        'Р' | 'Ρ' => 'P',
        'Ѕ' => 'S',
        'Т' | 'Τ' => 'T',
        'Х' | 'Χ' => 'X',
        'У' | 'Υ' => 'Y',
        'Ζ' => 'Z',
        _ => c,
    }
}

/// A part number's normal form, the one used for item keys (`extract`) and
/// for pattern matching (`classify`): compatibility-normalised (NFKC, so
/// full-width `ＴＭＳ` is `TMS`), upper case, look-alike Cyrillic and Greek
/// letters read as their Latin twin, letters and digits only
/// (`tms320-f28335 pgfa` → `TMS320F28335PGFA`, Cyrillic `МАХ1660ЕЕЕ` →
/// `MAX1660EEE`). Other letters (`Ж`, `型`) are kept, so two part numbers
/// that differ in them keep different keys.
pub fn normalise_part_number(s: &str) -> String {
    if s.is_ascii() {
        // NFKC leaves ASCII unchanged and no ASCII letter has a twin.
        let mut out = String::with_capacity(s.len());
        out.extend(
            s.chars()
                .filter(char::is_ascii_alphanumeric)
                .map(|c| c.to_ascii_uppercase()),
        );
        return out;
    }
    use unicode_normalization::UnicodeNormalization;
    s.nfkc()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_uppercase)
        .map(latin_twin)
        .collect()
}

#[cfg(test)]
mod part_number_tests {
    use super::normalise_part_number;

    #[test]
    fn one_key_for_one_part_whatever_the_script_of_its_look_alike_letters() {
        assert_eq!(normalise_part_number("МАХ1660ЕЕЕ"), "MAX1660EEE");
        assert_eq!(normalise_part_number("мах1660еее"), "MAX1660EEE");
        assert_eq!(normalise_part_number("С8051F120"), "C8051F120");
        assert_eq!(normalise_part_number("ΤΜΣ320"), "TMΣ320");
        assert_eq!(
            normalise_part_number("ＴＭＳ３２０－Ｆ２８３３５"),
            "TMS320F28335"
        );
        assert_eq!(normalise_part_number("NEO-M8N-0-10"), "NEOM8N010");
        assert_eq!(normalise_part_number("tms 320vc5416"), "TMS320VC5416");
        // Letters without a Latin twin are kept: different parts, different keys.
        assert_ne!(normalise_part_number("Ж100"), normalise_part_number("100"));
    }

    #[test]
    fn the_ascii_fast_path_agrees_with_the_definition() {
        use unicode_normalization::UnicodeNormalization;
        for s in ["tms320-f28335 pgfa", "a b\tc", "", "--", "NEO-M8N-0-10 x"]
            .into_iter()
            .map(str::to_string)
            .chain((0u8..128).map(|b| format!("a{}b", b as char)))
        {
            let slow: String = s
                .nfkc()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_uppercase)
                .map(super::latin_twin)
                .collect();
            assert_eq!(normalise_part_number(&s), slow, "{s:?}");
        }
    }
}
