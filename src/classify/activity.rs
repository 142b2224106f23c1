//! Activity codes and activity text → classes and sectors.

use std::collections::HashSet;

use super::normalize::{haystack, is_stopword, match_words};
use super::{ActivityMatch, ActivityVia, Reference};

/// The canonical scheme name of a spelling: `NACE` (Rev.2; also NAF rév.2 and other
/// 4-digit national versions), `NACE21`, `SIC` (UK SIC 2007, as Companies House uses),
/// `ISIC` (Rev.4, CITI), `NMA` (Morocco 2010) or `NACE11` (Rev.1.1).
pub(crate) fn canonical_scheme(s: &str) -> Option<&'static str> {
    let k: String = s
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_uppercase();
    Some(match k.as_str() {
        "NACE" | "NACE2" | "NACEREV2" | "NACER2" | "NAF" | "NAF2" | "NAFREV2" => "NACE",
        "NACE21" | "NACEREV21" | "NACER21" => "NACE21",
        "SIC" | "UKSIC" | "SIC2007" | "UKSIC2007" | "SIC07" => "SIC",
        "ISIC" | "ISIC4" | "ISICREV4" | "CITI" | "CITI4" | "CITIREV4" => "ISIC",
        "NMA" | "NMA2010" | "MANMA2010" | "MANMA" => "NMA",
        "NACE11" | "NACEREV11" => "NACE11",
        _ => return None,
    })
}

/// Number of digits of a class code in a scheme.
fn digits_of(scheme: &str) -> usize {
    match scheme {
        "SIC" => 5,
        _ => 4,
    }
}

/// Checks a code written in a data file and returns (display form, digits).
pub(crate) fn code_key(scheme: &str, code: &str) -> Result<(String, String), String> {
    let t = code.trim();
    let digits: String = t.chars().filter(char::is_ascii_digit).collect();
    let clean = t.chars().all(|c| c.is_ascii_digit() || c == '.');
    let n = digits_of(scheme);
    if !clean || digits.len() != n {
        let example = match scheme {
            "SIC" => "46770",
            "ISIC" | "NMA" => "4669",
            _ => "46.77",
        };
        return Err(format!(
            "code '{code}' is not a {scheme} class code ({n} digits, like {example})"
        ));
    }
    let display = match scheme {
        "NACE" | "NACE21" | "NACE11" => format!("{}.{}", &digits[..2], &digits[2..]),
        _ => digits.clone(),
    };
    Ok((display, digits))
}

/// Classifies a code or a text.
pub(crate) fn classify(r: &Reference, input: &str) -> Vec<ActivityMatch> {
    let input = input.trim();
    if input.is_empty() {
        return Vec::new();
    }
    if let Some((scheme, code)) = input.split_once(':')
        && let Some(scheme) = canonical_scheme(scheme)
    {
        return by_scheme(r, scheme, code);
    }
    if let Some(code) = BareCode::parse(input) {
        return bare(r, &code);
    }
    by_text(r, input)
}

fn lookup(
    r: &Reference,
    scheme: &str,
    digits: &str,
    via: ActivityVia,
    out: &mut Vec<ActivityMatch>,
) {
    let Some(rows) = r
        .activities
        .by_code
        .get(&(scheme.to_string(), digits.to_string()))
    else {
        return;
    };
    for &i in rows {
        push_row(r, i, via, out);
    }
}

fn push_row(r: &Reference, i: usize, via: ActivityVia, out: &mut Vec<ActivityMatch>) {
    let Some(row) = r.activities.rows.get(i) else {
        return;
    };
    if out
        .iter()
        .any(|m| m.scheme == row.scheme && m.code == row.code)
    {
        return;
    }
    out.push(ActivityMatch {
        scheme: row.scheme.clone(),
        code: row.code.clone(),
        label: row.label_en.clone(),
        sector: row.sector,
        via,
    });
}

/// `SCHEME:CODE`. A code missing from its scheme's table falls back to an equivalent class:
/// a UK SIC subclass to its NACE class (SIC 2007 = NACE Rev.2 plus a digit), a longer
/// national NACE code to its class, an NMA code to ISIC Rev.4 (which NMA 2010 follows) and
/// then to NACE (for codes written NACE-style, "NMA:46.77").
fn by_scheme(r: &Reference, scheme: &str, code: &str) -> Vec<ActivityMatch> {
    let digits: String = code.chars().filter(char::is_ascii_digit).collect();
    let mut out = Vec::new();
    if digits.len() < 2 {
        return out;
    }
    lookup(r, scheme, &digits, ActivityVia::Code, &mut out);
    if !out.is_empty() {
        return out;
    }
    let eq = ActivityVia::Equivalent;
    let four = digits.get(..4).unwrap_or(&digits);
    match scheme {
        "SIC" => lookup(r, "NACE", four, eq, &mut out),
        "NACE" | "NACE21" | "NACE11" if digits.len() > 4 => lookup(r, scheme, four, eq, &mut out),
        "NMA" => {
            lookup(r, "ISIC", four, eq, &mut out);
            if out.is_empty() {
                lookup(r, "NACE", four, eq, &mut out);
            }
        }
        "ISIC" => lookup(r, "NACE", four, eq, &mut out),
        _ => {}
    }
    out
}

/// A code written without a scheme.
struct BareCode {
    digits: String,
    dotted: bool,
    letter: bool,
}

impl BareCode {
    /// Digits with optional dots and one trailing letter (NAF "46.77Z"): "46.77", "46770",
    /// "4669", "4677Z".
    fn parse(s: &str) -> Option<BareCode> {
        let t: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        let (body, letter) = match t.chars().last() {
            Some(c) if c.is_ascii_alphabetic() => (&t[..t.len() - 1], true),
            _ => (t.as_str(), false),
        };
        if body.is_empty() || !body.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return None;
        }
        let digits: String = body.chars().filter(char::is_ascii_digit).collect();
        if digits.len() < 2 || !body.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        Some(BareCode {
            digits,
            dotted: body.contains('.'),
            letter,
        })
    }
}

fn bare(r: &Reference, c: &BareCode) -> Vec<ActivityMatch> {
    let mut out = Vec::new();
    let d = c.digits.as_str();
    if c.letter || c.dotted {
        // NACE-style ("46.77", French NAF "4677Z").
        let four = d.get(..4).unwrap_or(d);
        for scheme in ["NACE", "NACE21", "NACE11"] {
            lookup(r, scheme, four, ActivityVia::Code, &mut out);
        }
        return out;
    }
    match d.len() {
        5 => {
            lookup(r, "SIC", d, ActivityVia::Code, &mut out);
            if out.is_empty() {
                lookup(r, "NACE", &d[..4], ActivityVia::Equivalent, &mut out);
            }
        }
        4 => {
            lookup(r, "ISIC", d, ActivityVia::Code, &mut out);
            lookup(r, "NMA", d, ActivityVia::Code, &mut out);
            if out.is_empty() {
                lookup(r, "NACE", d, ActivityVia::Code, &mut out);
                lookup(r, "NACE21", d, ActivityVia::Code, &mut out);
            }
        }
        _ => {}
    }
    out
}

/// Label text or a free activity description.
fn by_text(r: &Reference, input: &str) -> Vec<ActivityMatch> {
    let mut out = Vec::new();
    let folded = match_words(input, false);
    if folded.is_empty() {
        return out;
    }
    // 1. An official label, exactly.
    if let Some(rows) = r.activities.by_label.get(&folded) {
        for &i in rows {
            push_row(r, i, ActivityVia::Label, &mut out);
        }
        return out;
    }
    // 2. A label inside the text (an objet social quoting it), or the text inside labels
    //    (a truncated label) when that points to one or two sectors only.
    let padded = format!(" {folded} ");
    let mut contained: Vec<usize> = Vec::new();
    for (label, i) in &r.activities.labels {
        if padded.contains(label.as_str()) && !contained.contains(i) {
            contained.push(*i);
        }
    }
    let significant = folded.split(' ').filter(|w| !is_stopword(w)).count();
    if contained.is_empty() && significant >= 2 {
        for (label, i) in &r.activities.labels {
            if label.contains(padded.as_str()) && !contained.contains(i) {
                contained.push(*i);
            }
        }
        let sectors: HashSet<_> = contained
            .iter()
            .filter_map(|&i| r.activities.rows.get(i).map(|x| x.sector))
            .collect();
        if sectors.len() > 2 {
            contained.clear();
        }
    }
    if !contained.is_empty() {
        for i in contained {
            push_row(r, i, ActivityVia::Label, &mut out);
        }
        return out;
    }
    // 3. Keywords of a class ("ferraille", "composants électroniques").
    let hay = haystack(folded.split(' ').filter(|w| !is_stopword(w)));
    let mut hits: Vec<(usize, usize)> = r
        .activities
        .keywords
        .hits(&hay)
        .map(|e| (e.words, e.tag))
        .collect();
    hits.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in hits {
        push_row(r, i, ActivityVia::Keyword, &mut out);
    }
    out
}
