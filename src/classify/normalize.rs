//! Text as the classifier matches it: case, accents and punctuation folded into words
//! ([`match_words`]); brand keys; part-number candidates (normalised by
//! [`crate::text::normalise_part_number`], look-alike letters read as Latin).

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use crate::text::normalise_part_number;

/// Small words skipped in keyword phrases and in the text they are matched against
/// (English, French, Russian), so "condensateur au tantale" matches "condensateur tantale".
const STOPWORDS: &[&str] = &[
    "a", "an", "and", "the", "of", "for", "with", "in", "to", "or", "de", "des", "du", "d", "la",
    "le", "les", "l", "et", "au", "aux", "en", "pour", "avec", "un", "une", "sur", "ou", "и", "в",
    "для", "с", "на", "из", "по", "к", "или",
];

/// Whether a folded word is a stopword.
pub(crate) fn is_stopword(w: &str) -> bool {
    STOPWORDS.contains(&w)
}

/// Text as the classifier matches it, word by word (not [`crate::extract::fold`], the
/// one definition of "same text" for diffing, which keeps accents, punctuation and signs:
/// `-5` and `5` are different values there, the same word here): canonical decomposition,
/// combining marks dropped, lowercase;
/// every run of characters that are not letters or digits becomes one space. With
/// `keep_star`, `*` is kept (keyword stems). "Microcontrôleurs, 32-bit" → "microcontroleurs 32 bit".
pub(crate) fn match_words(s: &str, keep_star: bool) -> String {
    if s.is_ascii() {
        return match_ascii_words(s, keep_star);
    }
    match_any_words(s, keep_star)
}

/// [`match_words`] for ASCII text, in which nothing decomposes and there are no marks.
/// A loop of its own: [`match_any_words`] over `s.chars()` costs 2.7× the instructions
/// (callgrind of the `classify_item` bench, one table build and 10 000 items: 75.1M
/// against 27.4M instructions in `match_words`).
fn match_ascii_words(s: &str, keep_star: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut gap = false;
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || (keep_star && b == b'*') {
            if gap && !out.is_empty() {
                out.push(' ');
            }
            gap = false;
            out.push(char::from(b.to_ascii_lowercase()));
        } else {
            gap = true;
        }
    }
    out
}

/// [`match_words`] for any text.
fn match_any_words(s: &str, keep_star: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut gap = false;
    for c in s.nfd() {
        if is_combining_mark(c) {
            continue;
        }
        if c.is_alphanumeric() || (keep_star && c == '*') {
            if gap && !out.is_empty() {
                out.push(' ');
            }
            gap = false;
            for l in c.to_lowercase() {
                if !is_combining_mark(l) {
                    out.push(l);
                }
            }
        } else {
            gap = true;
        }
    }
    out
}

/// Words joined as a haystack in which every word has its own surrounding spaces:
/// `" w1  w2  w3 "`. A phrase pattern `" a  b "` then matches whole words only, and
/// consecutive matches never share a space.
pub(crate) fn haystack<'a>(words: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for w in words {
        out.push(' ');
        out.push_str(w);
        out.push(' ');
    }
    out
}

/// Legal-form words dropped from the end of a brand before comparing.
const LEGAL_SUFFIXES: &[&str] = &[
    "inc",
    "incorporated",
    "corp",
    "corporation",
    "co",
    "company",
    "ltd",
    "limited",
    "llc",
    "ag",
    "gmbh",
    "sa",
    "sas",
    "sarl",
    "nv",
    "bv",
    "plc",
    "se",
    "asa",
    "oy",
    "oyj",
    "ab",
    "kk",
    "spa",
    "srl",
    "pte",
    "pty",
    "lp",
    "llp",
    "ooo",
    "ооо",
    "зао",
    "оао",
    "ао",
];

/// The words of a brand or manufacturer name as compared: folded, legal-form words dropped
/// from the end ("Texas Instruments, Inc." → `["texas", "instruments"]`).
pub(crate) fn brand_words(s: &str) -> Vec<String> {
    let folded = match_words(s, false);
    let mut words: Vec<String> = folded
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
    loop {
        let n = words.len();
        if n > 1 && LEGAL_SUFFIXES.contains(&words[n - 1].as_str()) {
            words.pop();
            continue;
        }
        // "N.V.", "S.A." match_words to two one-letter words.
        if n > 2 && words[n - 1].chars().count() == 1 && words[n - 2].chars().count() == 1 {
            let joined = format!("{}{}", words[n - 2], words[n - 1]);
            if LEGAL_SUFFIXES.contains(&joined.as_str()) {
                words.truncate(n - 2);
                continue;
            }
        }
        break;
    }
    words
}

/// The comparison key of a brand or manufacturer name: [`brand_words`] without spaces.
/// "Texas Instruments, Inc." → "texasinstruments", "T.I." → "ti",
/// "N.X.P. Semiconductors N.V." → "nxpsemiconductors", "u-blox AG" → "ublox".
pub(crate) fn brand_key(s: &str) -> String {
    brand_words(s).concat()
}

/// A string that may be a part number, and where it came from.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    /// Normalised (see [`crate::text::normalise_part_number`]).
    pub(crate) text: String,
    /// From the part-number column (else from free text).
    pub(crate) column: bool,
}

/// At most this many candidates per item.
const MAX_CANDIDATES: usize = 32;

fn is_token_sep(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            ',' | ';'
                | '('
                | ')'
                | '['
                | ']'
                | '{'
                | '}'
                | '"'
                | '\''
                | '«'
                | '»'
                | '“'
                | '”'
                | '„'
                | '|'
                | ':'
                | '!'
                | '?'
                | '*'
                | '='
                | '<'
                | '>'
                | '®'
                | '™'
                | '©'
        )
}

fn push_candidate(out: &mut Vec<Candidate>, text: String, column: bool) {
    if out.len() < MAX_CANDIDATES && !out.iter().any(|c| c.text == text) {
        out.push(Candidate { text, column });
    }
}

fn text_ok(n: &str) -> bool {
    n.len() >= 4
        && n.bytes().any(|b| b.is_ascii_digit())
        && n.bytes().any(|b| b.is_ascii_alphabetic())
}

/// Whether a raw token is a short all-capitals prefix like "TMS" or "MAX" (two letters
/// are too common in text: "TL 173G" on a tyre is not a TI part).
fn is_caps_prefix(t: &str) -> bool {
    (3..=6).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_uppercase())
}

/// Whether a raw token could be the rest of a split marking ("320VC5416"): starts with a
/// digit and contains a letter.
fn is_marking_tail(t: &str) -> bool {
    let n = normalise_part_number(t);
    n.len() >= 3 && n.as_bytes()[0].is_ascii_digit() && n.bytes().any(|b| b.is_ascii_alphabetic())
}

/// Candidates from the part-number column: the whole value, each of its words, and
/// all-capital prefixes joined to the word after them ("TMS 320VC5416").
pub(crate) fn column_candidates(s: &str, out: &mut Vec<Candidate>) {
    let whole = normalise_part_number(s);
    if whole.len() >= 2 {
        push_candidate(out, whole, true);
    }
    let tokens: Vec<&str> = s.split(is_token_sep).filter(|t| !t.is_empty()).collect();
    if tokens.len() > 1 {
        for t in &tokens {
            let n = normalise_part_number(t);
            if n.len() >= 3 {
                push_candidate(out, n, true);
            }
        }
    }
    pair_join(&tokens, true, out);
}

/// Candidates from free text: words with a digit and a letter ("STM32F407", "M430F1611"),
/// their pieces between dashes and slashes ("9VK17-D9PSK" gives "D9PSK"), and split
/// markings joined ("TMS 320VC5416").
pub(crate) fn text_candidates(s: &str, out: &mut Vec<Candidate>) {
    let tokens: Vec<&str> = s.split(is_token_sep).filter(|t| !t.is_empty()).collect();
    for t in &tokens {
        if !t.chars().any(|c| c.is_ascii_digit()) {
            continue;
        }
        let n = normalise_part_number(t);
        if text_ok(&n) {
            push_candidate(out, n, false);
        }
        if t.contains(['-', '/']) {
            for piece in t.split(['-', '/']) {
                let p = normalise_part_number(piece);
                if text_ok(&p) {
                    push_candidate(out, p, false);
                }
            }
        }
    }
    pair_join(&tokens, false, out);
}

fn pair_join(tokens: &[&str], column: bool, out: &mut Vec<Candidate>) {
    for w in tokens.windows(2) {
        let (a, b) = (w[0].trim_end_matches('.'), w[1]);
        if is_caps_prefix(a) && is_marking_tail(b) {
            let n = normalise_part_number(&format!("{a}{b}"));
            push_candidate(out, n, column);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_text_folds_as_any_text_does() {
        // Every pair of ASCII characters between words, at both ends and alone.
        let mut checked = 0;
        for a in 0u8..128 {
            for b in (0u8..128).step_by(3) {
                let (a, b) = (char::from(a), char::from(b));
                for s in [
                    format!("{a}{b}"),
                    format!("Ab{a}{b}9z"),
                    format!("{a}X {b}*y{a}"),
                ] {
                    for star in [false, true] {
                        assert_eq!(
                            match_ascii_words(&s, star),
                            match_any_words(&s, star),
                            "{s:?}, keep_star {star}"
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 30_000);
        assert_eq!(
            match_words("Texas Instruments, Inc.", false),
            "texas instruments inc"
        );
    }

    #[test]
    fn folds_case_accents_and_punctuation() {
        assert_eq!(
            match_words("Microcontrôleurs, 32-bit", false),
            "microcontroleurs 32 bit"
        );
        assert_eq!(
            match_words("Микроконтроллер ПЛИС", false),
            "микроконтроллер плис"
        );
        assert_eq!(
            match_words("condensateur* céramique", true),
            "condensateur* ceramique"
        );
    }

    #[test]
    fn brand_keys_drop_suffixes_and_dots() {
        assert_eq!(brand_key("Texas Instruments, Inc."), "texasinstruments");
        assert_eq!(brand_key("T.I."), "ti");
        assert_eq!(brand_key("N.X.P."), "nxp");
        assert_eq!(brand_key("NXP Semiconductors N.V."), "nxpsemiconductors");
        assert_eq!(brand_key("u-blox AG"), "ublox");
    }

    #[test]
    fn part_numbers_read_cyrillic_lookalikes() {
        assert_eq!(normalise_part_number("МАХ1660ЕЕЕ"), "MAX1660EEE");
        assert_eq!(normalise_part_number("NEO-M8N-0-10"), "NEOM8N010");
    }

    #[test]
    fn text_candidates_join_split_markings() {
        let mut out = Vec::new();
        text_candidates(
            "Microcircuit TMS 320VC5416 and 9VK17-D9PSK, ISO 9001",
            &mut out,
        );
        let texts: Vec<&str> = out.iter().map(|c| c.text.as_str()).collect();
        assert!(texts.contains(&"TMS320VC5416"), "{texts:?}");
        assert!(texts.contains(&"D9PSK"), "{texts:?}");
        assert!(!texts.iter().any(|t| t.starts_with("ISO")), "{texts:?}");
    }
}
