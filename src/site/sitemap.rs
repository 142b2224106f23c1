//! Sitemaps (sitemaps.org): `<urlset>` page lists and `<sitemapindex>`
//! lists of further sitemaps, plain or gzip-compressed; and the
//! `Sitemap:` lines of a robots.txt.
//!
//! **Architecture Invariant:** pure: bytes in, URLs out.

use std::io::Read;

use quick_xml::events::Event;

/// Largest decompressed sitemap read (the protocol's own limit is 50 MB;
/// a site of a few hundred pages needs far less).
pub(crate) const MAX_SITEMAP_BYTES: u64 = 10 * 1024 * 1024;

/// What one sitemap file lists.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Sitemap {
    /// Page URLs (`<urlset><url><loc>`).
    pub(crate) pages: Vec<String>,
    /// Child sitemaps (`<sitemapindex><sitemap><loc>`).
    pub(crate) children: Vec<String>,
}

/// Why a sitemap could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SitemapError {
    /// The gzip stream is corrupt.
    #[error("the gzip-compressed sitemap is corrupt")]
    Gzip(#[source] std::io::Error),
    /// The XML does not parse.
    #[error("the sitemap is not well-formed XML")]
    Xml(#[source] quick_xml::Error),
}

/// Parses a sitemap, gunzipping it first when it starts with the gzip
/// magic bytes (a `.xml.gz` served as it is).
pub(crate) fn parse(body: &[u8]) -> Result<Sitemap, SitemapError> {
    let unzipped;
    let xml: &[u8] = if body.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(body)
            .take(MAX_SITEMAP_BYTES)
            .read_to_end(&mut out)
            .map_err(SitemapError::Gzip)?;
        unzipped = out;
        &unzipped
    } else {
        body
    };
    let mut reader = quick_xml::Reader::from_reader(xml);
    reader.config_mut().trim_text(true);
    let mut out = Sitemap::default();
    let mut buf = Vec::new();
    // Which element the current <loc> is in.
    let mut in_sitemap = false;
    let mut in_loc = false;
    let mut loc = String::new();
    loop {
        match reader
            .read_event_into(&mut buf)
            .map_err(SitemapError::Xml)?
        {
            Event::Start(e) => match e.local_name().as_ref() {
                b"sitemap" => in_sitemap = true,
                b"loc" => in_loc = true,
                _ => {}
            },
            Event::End(e) => match e.local_name().as_ref() {
                b"sitemap" => in_sitemap = false,
                b"loc" => {
                    in_loc = false;
                    let l = std::mem::take(&mut loc).trim().to_string();
                    if !l.is_empty() {
                        if in_sitemap {
                            out.children.push(l);
                        } else {
                            out.pages.push(l);
                        }
                    }
                }
                _ => {}
            },
            Event::Text(t) if in_loc => loc.push_str(&String::from_utf8_lossy(&t)),
            Event::CData(t) if in_loc => loc.push_str(&String::from_utf8_lossy(&t)),
            Event::GeneralRef(r) if in_loc => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    loc.push(c);
                } else {
                    loc.push_str(match r.as_ref() as &[u8] {
                        b"amp" => "&",
                        b"lt" => "<",
                        b"gt" => ">",
                        b"quot" => "\"",
                        b"apos" => "'",
                        _ => "",
                    });
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn index_urlset_and_gzip() {
        let index = br#"<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><sitemap><loc>http://e.ma/s1.xml.gz</loc></sitemap></sitemapindex>"#;
        let s = parse(index).expect("index");
        assert_eq!(s.children, vec!["http://e.ma/s1.xml.gz"]);
        assert!(s.pages.is_empty());
        let set = br#"<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc> http://e.ma/a?x=1&amp;y=2 </loc><lastmod>2024-01-01</lastmod></url></urlset>"#;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(set).expect("gzip");
        let s = parse(&gz.finish().expect("gzip")).expect("urlset");
        assert_eq!(s.pages, vec!["http://e.ma/a?x=1&y=2"]);
        assert!(parse(&[0x1f, 0x8b, 0, 1, 2]).is_err());
        assert_eq!(
            crate::fetch::robots::sitemaps_in(
                b"User-agent: *\nSitemap: http://e.ma/s.xml # main\nsitemap:http://e.ma/b.xml"
            ),
            vec!["http://e.ma/s.xml", "http://e.ma/b.xml"]
        );
    }
}
