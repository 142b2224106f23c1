//! Whole-site sources (`kind = "site"`): no selectors. Discovery of the
//! site's pages (robots.txt `Sitemap:` lines, `/sitemap.xml`, same-site
//! links breadth-first), mentions of makers, part numbers and product
//! families on every page with the context that weighs them, and the
//! site record the rest of the pipeline diffs and judges like any other.
//!
//! * `canon.rs`: URL canonicalisation and what is one site;
//! * `sitemap.rs`: sitemap XML (quick-xml), gzip (flate2), robots.txt
//!   `Sitemap:` lines;
//! * `scan.rs`: a page as text blocks with their region, from html5ever's
//!   tokenizer (no DOM);
//! * `mentions.rs`: mentions in those blocks and their context weight;
//! * `pdf.rs`: the text of linked PDFs (lopdf);
//! * `crawl.rs`: the walk itself, through the checker's `Fetcher` (so
//!   its politeness applies) and the store's blobs;
//! * this file: one page's scan, the site record, and the context weights
//!   applied to findings.
//!
//! **Architecture Invariant:** everything but `crawl.rs` is pure (no
//! network, no store, no clock). A page that failed, was blocked or
//! turned into a bot challenge keeps its previous scan: its mentions are
//! never removed by it.

pub(crate) mod canon;
pub(crate) mod crawl;
pub mod mentions;
pub(crate) mod pdf;
pub(crate) mod scan;
pub(crate) mod sitemap;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use url::Url;

pub use mentions::{Mention, Scanner, Weight};

use crate::record::{FieldValue, Item, Record};

/// Field of the site record: every page read (its canonical URL).
pub const PAGES_FIELD: &str = "pages";
/// Field: pages with a product-page mention.
pub const PRODUCT_PAGES_FIELD: &str = "product pages";
/// Field: pages that are only a JavaScript shell (reported, never read as
/// an empty page).
pub const JS_ONLY_FIELD: &str = "javascript-only pages";
/// Field: weak mentions (news posts, menus, footers, logo strips), kept
/// out of the items.
pub const WEAK_FIELD: &str = "weak mentions";
pub use crate::detect::context::{
    CONTEXT_COLUMN, SEEN_ON_COLUMN, SNIPPET_COLUMN, item_weight, weigh_findings,
};
/// Most pages named in an item's `seen on`.
const SEEN_ON_MAX: usize = 5;

/// What one page gave: kept as a blob under its body hash, so an
/// unchanged page is never scanned again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PageScan {
    /// Same-site links (absolute, canonicalised).
    #[serde(default)]
    pub links: Vec<String>,
    /// `rel=canonical`, absolute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canonical: Option<String>,
    /// Only a JavaScript shell.
    #[serde(default)]
    pub javascript_only: bool,
    /// Its mentions, one per key.
    #[serde(default)]
    pub mentions: Vec<Mention>,
}

/// Scans one fetched page (HTML, or a PDF's text) at `url`.
pub fn scan_page(scanner: &Scanner, url: &Url, text: &str, pdf: bool) -> PageScan {
    let scanned = if pdf {
        scan::scan_text(text)
    } else {
        scan::scan_html(text)
    };
    let site = canon::site_of(url);
    let mut links: Vec<String> = scanned
        .links
        .iter()
        .filter_map(|h| canon::resolve(url, h))
        .filter(|u| canon::site_of(u) == site && !canon::is_asset(u))
        .map(|u| u.to_string())
        .collect();
    links.sort();
    links.dedup();
    let canonical = scanned
        .canonical
        .as_deref()
        .and_then(|h| canon::resolve(url, h))
        .filter(|u| canon::site_of(u) == site)
        .map(|u| u.to_string());
    let javascript_only = !pdf && scanned.javascript_only();
    let mentions = if javascript_only {
        vec![]
    } else {
        scanner.mentions(&scanned, url.path())
    };
    PageScan {
        links,
        canonical,
        javascript_only,
        mentions,
    }
}

/// The site record from every page's scan (page URL → scan; pages not
/// counted for mentions, by `include`, are left out by the caller).
pub fn build_record<'a>(pages: impl IntoIterator<Item = (&'a str, &'a PageScan)>) -> Record {
    let mut record = Record::default();
    let mut all = BTreeSet::new();
    let mut product = BTreeSet::new();
    let mut js = BTreeSet::new();
    let mut weak = BTreeSet::new();
    // key → (best mention, pages)
    let mut merged: BTreeMap<String, (Mention, BTreeSet<String>)> = BTreeMap::new();
    for (url, scan) in pages {
        all.insert(url.to_string());
        if scan.javascript_only {
            js.insert(url.to_string());
        }
        for m in &scan.mentions {
            if m.weight == Weight::Strong {
                product.insert(url.to_string());
            }
            let e = merged
                .entry(m.key.clone())
                .or_insert_with(|| (m.clone(), BTreeSet::new()));
            e.1.insert(url.to_string());
            if m.weight > e.0.weight {
                let price = e.0.price.take();
                e.0 = m.clone();
                if e.0.price.is_none() {
                    e.0.price = price;
                }
            } else if e.0.price.is_none() {
                e.0.price.clone_from(&m.price);
            }
        }
    }
    for (key, (m, urls)) in merged {
        if m.weight == Weight::Weak {
            weak.insert(format!("{} ({})", m.label(), m.reasons.join(", ")));
            continue;
        }
        let mut extra = BTreeMap::new();
        extra.insert(CONTEXT_COLUMN.to_string(), m.context());
        extra.insert(
            SEEN_ON_COLUMN.to_string(),
            urls.iter()
                .take(SEEN_ON_MAX)
                .cloned()
                .collect::<Vec<_>>()
                .join(" "),
        );
        extra.insert(SNIPPET_COLUMN.to_string(), m.snippet.clone());
        let item = Item {
            key: key.clone(),
            // A part's family comes from its pattern; a maker's mention
            // carries its family word as its name.
            name: m
                .name
                .clone()
                .or_else(|| m.part.is_none().then(|| m.family.clone()).flatten()),
            manufacturer: m.maker.clone(),
            part_number: m.part.clone(),
            price: m.price.clone(),
            link: urls.iter().next().cloned(),
            extra,
        };
        record.items.insert(key, item);
    }
    let list = |s: BTreeSet<String>| FieldValue::List(s.into_iter().collect());
    record.fields.insert(PAGES_FIELD.into(), list(all));
    record
        .fields
        .insert(PRODUCT_PAGES_FIELD.into(), list(product));
    if !js.is_empty() {
        record.fields.insert(JS_ONLY_FIELD.into(), list(js));
    }
    if !weak.is_empty() {
        record.fields.insert(WEAK_FIELD.into(), list(weak));
    }
    record
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Reference;

    #[test]
    fn the_record_keeps_weak_mentions_out_of_the_items() {
        let r = std::sync::Arc::new(Reference::embedded().expect("reference"));
        let s = Scanner::new(r);
        let shop = Url::parse("https://e.ma/electronique").expect("url");
        let blog = Url::parse("https://e.ma/blog/intel").expect("url");
        let a = scan_page(
            &s,
            &shop,
            "<table><tr><td>TMS320F28335PGFA</td><td>9,90 €</td></tr></table>",
            false,
        );
        let b = scan_page(&s, &blog, "<p>Intel results are in.</p>", false);
        let rec = build_record([(shop.as_str(), &a), (blog.as_str(), &b)]);
        assert!(rec.items.contains_key("TMS320F28335PGFA"));
        assert!(!rec.items.contains_key("intel"));
        assert_eq!(
            rec.fields.get(WEAK_FIELD),
            Some(&FieldValue::List(vec!["Intel (news post)".into()]))
        );
        assert_eq!(
            rec.fields.get(PRODUCT_PAGES_FIELD),
            Some(&FieldValue::List(vec![shop.to_string()]))
        );
        let item = &rec.items["TMS320F28335PGFA"];
        assert_eq!(item_weight(item), Some(Weight::Strong));
        assert_eq!(item.price.as_deref(), Some("9,90 €"));
    }
}
