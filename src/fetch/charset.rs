//! Turning response bytes into text with the right character encoding.
//!
//! **Boundary:** pure functions; no I/O.

use encoding_rs::{Encoding, UTF_8, WINDOWS_1252};

/// How far into the body `<meta charset>` is looked for.
const META_SNIFF_LIMIT: usize = 4 * 1024;

/// Decodes a response body to text, returning the text and the encoding used.
///
/// The encoding is chosen in this order:
///
/// 1. the `charset` parameter of `content_type` (e.g. `text/html; charset=windows-1256`);
/// 2. a byte-order mark;
/// 3. `<meta charset="…">` or `<meta http-equiv="Content-Type" content="…; charset=…">`
///    in the first 4 KiB, matched case-insensitively (skipped for JSON);
/// 4. UTF-8.
///
/// Labels are resolved with [`Encoding::for_label`], so WHATWG aliases apply
/// (`iso-8859-1` and `latin1` decode as windows-1252). Unknown labels are
/// skipped. As in browsers, a byte-order mark overrides a declared charset
/// when both are present. Invalid sequences become U+FFFD; decoding never fails.
pub fn decode_body(bytes: &[u8], content_type: Option<&str>) -> (String, &'static Encoding) {
    let is_json = content_type.is_some_and(|ct| ct.to_ascii_lowercase().contains("json"));
    let chosen = content_type
        .and_then(charset_param)
        .and_then(|label| Encoding::for_label(label.as_bytes()))
        .or_else(|| Encoding::for_bom(bytes).map(|(enc, _)| enc))
        .or_else(|| if is_json { None } else { sniff_meta(bytes) })
        .unwrap_or(UTF_8);
    // `decode` strips a BOM (and lets it win, as the WHATWG spec does).
    let (text, used, _had_errors) = chosen.decode(bytes);
    (text.into_owned(), used)
}

/// The `charset` parameter of a Content-Type value, unquoted.
fn charset_param(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|param| {
        let (key, value) = param.split_once('=')?;
        if !key.trim().eq_ignore_ascii_case("charset") {
            return None;
        }
        let value = value.trim().trim_matches(|c| c == '"' || c == '\'').trim();
        (!value.is_empty()).then_some(value)
    })
}

/// Finds a charset declared in a `<meta>` tag near the top of an HTML page.
fn sniff_meta(bytes: &[u8]) -> Option<&'static Encoding> {
    let head = bytes[..bytes.len().min(META_SNIFF_LIMIT)].to_ascii_lowercase();
    let mut pos = 0;
    while let Some(found) = find(&head[pos..], b"<meta") {
        let start = pos + found + b"<meta".len();
        let end = find(&head[start..], b">").map_or(head.len(), |i| start + i);
        pos = end;
        // `<metadata>` and similar are not meta tags.
        if !head
            .get(start)
            .is_some_and(|b| b.is_ascii_whitespace() || *b == b'/')
        {
            continue;
        }
        if let Some(enc) = meta_tag_charset(&head[start..end]) {
            // A meta tag cannot really declare UTF-16 (the page would not be
            // ASCII-readable); WHATWG maps that to UTF-8, and x-user-defined
            // to windows-1252.
            return Some(match enc.name() {
                "UTF-16LE" | "UTF-16BE" => UTF_8,
                "x-user-defined" => WINDOWS_1252,
                _ => enc,
            });
        }
    }
    None
}

/// The charset of one `<meta …>` tag, given its (lowercased) attribute text.
fn meta_tag_charset(attrs: &[u8]) -> Option<&'static Encoding> {
    let mut charset = None;
    let mut content = None;
    let mut http_equiv_content_type = false;
    for (name, value) in (Attributes { rest: attrs }) {
        match name {
            b"charset" => charset = charset.or(Some(value)),
            b"content" => content = content.or(Some(value)),
            b"http-equiv" => http_equiv_content_type |= value.trim_ascii() == b"content-type",
            _ => {}
        }
    }
    if let Some(label) = charset {
        if let Some(enc) = Encoding::for_label(label) {
            return Some(enc);
        }
    }
    if http_equiv_content_type {
        return content
            .and_then(charset_in_content)
            .and_then(Encoding::for_label);
    }
    None
}

/// WHATWG "extract a character encoding from a meta element" on `content`.
fn charset_in_content(content: &[u8]) -> Option<&[u8]> {
    let mut rest = content;
    loop {
        let i = find(rest, b"charset")?;
        rest = rest[i + b"charset".len()..].trim_ascii_start();
        if let Some(after_eq) = rest.strip_prefix(b"=") {
            let value = after_eq.trim_ascii_start();
            return match value.first() {
                Some(q @ (b'"' | b'\'')) => {
                    let inner = &value[1..];
                    inner.iter().position(|b| b == q).map(|end| &inner[..end])
                }
                Some(_) => {
                    let end = value
                        .iter()
                        .position(|b| b.is_ascii_whitespace() || *b == b';')
                        .unwrap_or(value.len());
                    Some(&value[..end])
                }
                None => None,
            };
        }
    }
}

/// Iterator over `name=value` pairs of a tag's attribute text.
struct Attributes<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Attributes<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let s = self.rest;
            let start = s
                .iter()
                .position(|b| !b.is_ascii_whitespace() && *b != b'/')?;
            let s = &s[start..];
            let name_end = s
                .iter()
                .position(|b| b.is_ascii_whitespace() || *b == b'=' || *b == b'/')
                .unwrap_or(s.len());
            let name = &s[..name_end];
            let after = s[name_end..].trim_ascii_start();
            let Some(after_eq) = after.strip_prefix(b"=") else {
                // Attribute without a value.
                self.rest = after;
                if name.is_empty() {
                    return None;
                }
                continue;
            };
            let v = after_eq.trim_ascii_start();
            let (value, rest) = match v.first() {
                Some(q @ (b'"' | b'\'')) => {
                    let inner = &v[1..];
                    match inner.iter().position(|b| b == q) {
                        Some(end) => (&inner[..end], &inner[end + 1..]),
                        None => (inner, &inner[inner.len()..]),
                    }
                }
                _ => {
                    let end = v
                        .iter()
                        .position(|b| b.is_ascii_whitespace())
                        .unwrap_or(v.len());
                    (&v[..end], &v[end..])
                }
            };
            self.rest = rest;
            return Some((name, value));
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charset_param_variants() {
        assert_eq!(charset_param("text/html; charset=UTF-8"), Some("UTF-8"));
        assert_eq!(
            charset_param("text/html;CHARSET=\"koi8-r\""),
            Some("koi8-r")
        );
        assert_eq!(charset_param("text/html; q=1; charset = 'x' "), Some("x"));
        assert_eq!(charset_param("text/html"), None);
        assert_eq!(charset_param("text/html; charset="), None);
    }

    #[test]
    fn meta_variants() {
        let name = |html: &[u8]| sniff_meta(html).map(Encoding::name);
        assert_eq!(name(b"<meta charset=windows-1251>"), Some("windows-1251"));
        assert_eq!(
            name(b"<META CHARSET='Windows-1256'/>"),
            Some("windows-1256")
        );
        assert_eq!(
            name(b"<meta content=\"text/html; charset=iso-8859-1\" http-equiv=\"content-type\">"),
            Some("windows-1252")
        );
        // content with a charset but no http-equiv is not a declaration.
        assert_eq!(name(b"<meta name=x content=\"charset=koi8-r\">"), None);
        assert_eq!(name(b"<metadata charset=koi8-r>"), None);
        assert_eq!(name(b"<meta charset=utf-16>"), Some("UTF-8"));
        assert_eq!(
            name(b"<meta charset=bogus><meta charset=koi8-r>"),
            Some("KOI8-R")
        );
        let mut late = vec![b' '; META_SNIFF_LIMIT];
        late.extend_from_slice(b"<meta charset=koi8-r>");
        assert_eq!(name(&late), None);
    }

    #[test]
    fn header_wins_over_meta_and_json_skips_meta() {
        let body = b"<meta charset=windows-1251>\xcc";
        assert_eq!(
            decode_body(body, Some("text/html; charset=koi8-r"))
                .1
                .name(),
            "KOI8-R"
        );
        assert_eq!(
            decode_body(body, Some("application/json")).1.name(),
            "UTF-8"
        );
        assert_eq!(decode_body(body, None).1.name(), "windows-1251");
    }

    #[test]
    fn unknown_header_label_falls_through() {
        let (text, enc) = decode_body(
            b"<meta charset=windows-1252>M\xe9taux",
            Some("text/html; charset=nonsense"),
        );
        assert_eq!(enc.name(), "windows-1252");
        assert!(text.ends_with("Métaux"));
    }

    #[test]
    fn invalid_utf8_is_lossy() {
        let (text, enc) = decode_body(b"a\xffb", None);
        assert_eq!(enc.name(), "UTF-8");
        assert_eq!(text, "a\u{fffd}b");
    }
}
