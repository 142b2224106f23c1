//! Which URLs are one page, and which belong to the site.
//!
//! A page's key is its URL without the scheme (`http` and `https` are one
//! page), without a leading `www.` (`www.` and the apex are one site),
//! with no fragment, no tracking parameters (`utm_*`, `gclid`, `fbclid`
//! …), the remaining query parameters sorted, and no trailing slash
//! (except the root). Language variants (`/fr/…`, `?lang=ru`) stay pages
//! of their own; their mentions merge by key.
//!
//! **Architecture Invariant:** pure.

use url::Url;

const TRACKING: &[&str] = &[
    "gclid", "fbclid", "yclid", "msclkid", "dclid", "mc_cid", "mc_eid", "_ga", "_gl", "ref_src",
    "igshid", "srsltid",
];

/// The site a host belongs to: lower case, without `www.`, with the port.
pub(crate) fn site_of(url: &Url) -> String {
    let host = url.host_str().unwrap_or("").to_ascii_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host).to_string();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    }
}

/// The URL to fetch for `href` found on `base`: absolute, http(s), no
/// fragment, no tracking parameters. `None` for other schemes.
pub(crate) fn resolve(base: &Url, href: &str) -> Option<Url> {
    let href = href.trim();
    if href.is_empty() || href.starts_with('#') {
        return None;
    }
    let mut u = base.join(href).ok()?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return None;
    }
    u.set_fragment(None);
    let kept: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| {
            let k = k.to_ascii_lowercase();
            !k.starts_with("utm_") && !TRACKING.contains(&k.as_str())
        })
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if u.query().is_some() {
        if kept.is_empty() {
            u.set_query(None);
        } else {
            let mut sorted = kept;
            sorted.sort();
            u.query_pairs_mut().clear().extend_pairs(sorted);
        }
    }
    Some(u)
}

/// The page key of a (resolved) URL.
pub(crate) fn key(url: &Url) -> String {
    let mut path = url.path().to_string();
    while path.len() > 1 && path.ends_with('/') {
        path.pop();
    }
    match url.query() {
        Some(q) => format!("{}{path}?{q}", site_of(url)),
        None => format!("{}{path}", site_of(url)),
    }
}

/// The path and query of a URL, as `include`/`exclude` see it.
pub(crate) fn path_and_query(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

/// Whether a URL names a document that is not a page to read (images,
/// archives, media); PDFs are read.
pub(crate) fn is_asset(url: &Url) -> bool {
    let p = url.path().to_ascii_lowercase();
    [
        ".jpg", ".jpeg", ".png", ".gif", ".webp", ".svg", ".ico", ".css", ".js", ".zip", ".rar",
        ".7z", ".gz", ".mp4", ".mp3", ".avi", ".mov", ".woff", ".woff2", ".ttf", ".exe", ".dmg",
        ".doc", ".docx", ".xls", ".xlsx",
    ]
    .iter()
    .any(|e| p.ends_with(e))
}

/// Whether a URL looks like a PDF.
pub(crate) fn is_pdf(url: &Url) -> bool {
    url.path().to_ascii_lowercase().ends_with(".pdf")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    #[test]
    fn one_page_whatever_the_spelling() {
        let base = u("http://www.example.ma/fr/");
        let a = resolve(&base, "produits/?utm_source=x&b=2&a=1#top").expect("a");
        assert_eq!(a.as_str(), "http://www.example.ma/fr/produits/?a=1&b=2");
        let b = resolve(&base, "https://example.ma/fr/produits?b=2&a=1&fbclid=z").expect("b");
        assert_eq!(key(&a), key(&b));
        assert_eq!(key(&a), "example.ma/fr/produits?a=1&b=2");
        assert_eq!(key(&u("https://example.ma/")), "example.ma/");
        assert_ne!(
            key(&u("https://example.ma/fr/x")),
            key(&u("https://example.ma/ru/x"))
        );
        assert_eq!(
            site_of(&u("http://WWW.Example.ma:8080/")),
            "example.ma:8080"
        );
        assert!(resolve(&base, "mailto:a@b.c").is_none());
        assert!(resolve(&base, "#x").is_none());
        assert!(is_asset(&u("http://e.ma/logo.PNG")));
        assert!(is_pdf(&u("http://e.ma/prix.pdf")));
    }
}
