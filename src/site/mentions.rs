//! Mentions of manufacturers, part numbers and product families in a
//! page's text blocks, each with the context that weighs it.
//!
//! Makers are found by their names and aliases from the reference data
//! (`classify`'s public API; spellings the reference keeps for brand
//! columns only, and names of two letters or fewer, are not looked for in
//! free text), word-bounded in any script, in one Aho-Corasick pass over
//! the folded text. Part numbers are tokens of a part-number shape,
//! classified by the reference patterns (`Reference::classify_item`); a
//! token no pattern knows counts only next to a maker's name. Family
//! words come from the reference families (English, French, Russian) and
//! a small Arabic list kept here.
//!
//! **Architecture Invariant:** pure: blocks and the reference in,
//! mentions out.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, MatchKind};
use regex::Regex;
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use super::scan::{Block, BlockKind, Region, Scanned};
use crate::classify::Reference;
pub use crate::detect::context::Weight;

/// One maker, part or family named on one page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mention {
    /// Stable key: the normalised part number, else `maker|family`.
    pub key: String,
    /// Canonical manufacturer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maker: Option<String>,
    /// Part number as shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<String>,
    /// Product family id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// Product name (JSON-LD or SSR product).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Price as shown next to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<String>,
    /// Context weight.
    pub weight: Weight,
    /// Why that weight ("JSON-LD Product", "price", "footer" …).
    pub reasons: Vec<String>,
    /// The text around it.
    pub snippet: String,
}

impl Mention {
    /// Part number, else maker (and family).
    pub fn label(&self) -> String {
        match (&self.part, &self.maker, &self.family) {
            (Some(p), Some(m), _) => format!("{p} ({m})"),
            (Some(p), None, _) => p.clone(),
            (None, Some(m), Some(f)) => format!("{m} {f}"),
            (None, Some(m), None) => m.clone(),
            (None, None, Some(f)) => f.clone(),
            (None, None, None) => self.key.clone(),
        }
    }

    /// `strong (JSON-LD Product, price)`.
    pub fn context(&self) -> String {
        format!("{} ({})", self.weight.as_str(), self.reasons.join(", "))
    }
}

/// Arabic family words (the reference has English, French and Russian).
const ARABIC_FAMILIES: &[(&str, &str)] = &[
    ("معالج*", "cpu"),
    ("متحكم* دقيق*", "mcu"),
    ("ذاكر*", "memory"),
    ("ترانزستور*", "transistor"),
    ("دوائر متكاملة", "other_ic"),
    ("دارات متكاملة", "other_ic"),
    ("هوائي*", "antenna"),
    ("مستشعر*", "mems_sensor"),
];

/// Arabic spellings of makers (canonical names of the reference).
const ARABIC_MAKERS: &[(&str, &str)] = &[
    ("إنتل", "Intel"),
    ("انتل", "Intel"),
    ("تكساس إنسترومنتس", "Texas Instruments"),
    ("تكساس انسترومنتس", "Texas Instruments"),
    ("إن إكس بي", "NXP Semiconductors"),
];

static PART: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"(?:^|[^\p{L}\p{N}])([A-Za-z0-9][A-Za-z0-9\-/.]{2,30}[A-Za-z0-9])").ok()
});
static PRICE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(?:[$€£¥₽]\s?\d[\d\s.,]*|\d[\d.,]*(?:\s?\d{3})*\s?(?:€|\$|£|₽|usd|eur|mad|dhs?|rub|руб\.?|درهم|د\.م\.))",
    )
    .ok()
});
const NEWS_PATHS: &[&str] = &[
    "/blog",
    "/news",
    "/actualite",
    "/press",
    "/novosti",
    "/новости",
    "/articles",
    "/أخبار",
];

/// The compiled matchers for one reference.
pub struct Scanner {
    reference: std::sync::Arc<Reference>,
    makers: Option<AhoCorasick>,
    maker_of: Vec<String>,
    families: Option<AhoCorasick>,
    family_of: Vec<String>,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner")
            .field("makers", &self.maker_of.len())
            .finish_non_exhaustive()
    }
}

/// Folded words as `" w1  w2 "`: lower case, accents dropped, every run of
/// other characters a gap; each word has its own spaces, so a pattern
/// `" a  b "` matches whole words only.
pub(crate) fn fold_words(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut in_word = false;
    for c in s.nfd() {
        if is_combining_mark(c) {
            continue;
        }
        if c.is_alphanumeric() {
            if !in_word {
                out.push(' ');
                in_word = true;
            }
            out.extend(c.to_lowercase());
        } else if in_word {
            out.push(' ');
            in_word = false;
        }
    }
    if in_word {
        out.push(' ');
    }
    out
}

/// A phrase as an Aho-Corasick pattern over [`fold_words`]; a trailing
/// `*` on the last word matches any ending; `None` for a phrase with a
/// star elsewhere or of two letters or fewer.
fn phrase_pattern(phrase: &str) -> Option<String> {
    let prefix = phrase.trim_end().ends_with('*');
    let words = fold_words(phrase.trim_end().trim_end_matches('*'));
    if words.contains('*') || words.trim().chars().count() <= 2 {
        return None;
    }
    Some(if prefix {
        words.trim_end().to_string()
    } else {
        words
    })
}

impl Scanner {
    /// Builds the matchers (once per reference: `check` keeps one).
    pub fn new(reference: std::sync::Arc<Reference>) -> Scanner {
        let mut pats: Vec<String> = Vec::new();
        let mut maker_of = Vec::new();
        let mut add = |name: &str, canonical: &str, skip: &[String]| {
            if skip.iter().any(|b| b.eq_ignore_ascii_case(name)) {
                return;
            }
            if let Some(p) = phrase_pattern(name) {
                pats.push(p);
                maker_of.push(canonical.to_string());
            }
        };
        let r = &*reference;
        for m in r.manufacturers() {
            add(&m.canonical, &m.canonical, &m.brand_only);
            for a in &m.aliases {
                add(a, &m.canonical, &m.brand_only);
            }
            for l in &m.legacy {
                add(&l.name, &m.canonical, &l.brand_only);
                for a in &l.aliases {
                    add(a, &m.canonical, &l.brand_only);
                }
            }
        }
        for (name, canonical) in ARABIC_MAKERS {
            if r.manufacturer(canonical).is_some() {
                add(name, canonical, &[]);
            }
        }
        let makers = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&pats)
            .ok();
        let mut fpats = Vec::new();
        let mut family_of = Vec::new();
        for f in r.families() {
            for k in &f.keywords {
                if let Some(p) = phrase_pattern(k) {
                    fpats.push(p);
                    family_of.push(f.id.clone());
                }
            }
        }
        for (k, id) in ARABIC_FAMILIES {
            if r.family(id).is_some()
                && let Some(p) = phrase_pattern(k)
            {
                fpats.push(p);
                family_of.push((*id).to_string());
            }
        }
        let families = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&fpats)
            .ok();
        Scanner {
            reference,
            makers,
            maker_of,
            families,
            family_of,
        }
    }

    fn makers_in(&self, folded: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if let Some(ac) = &self.makers {
            for m in ac.find_iter(folded) {
                if let Some(c) = self.maker_of.get(m.pattern().as_usize())
                    && !out.contains(c)
                {
                    out.push(c.clone());
                }
            }
        }
        out
    }

    fn family_in(&self, folded: &str) -> Option<String> {
        let ac = self.families.as_ref()?;
        ac.find_iter(folded)
            .next()
            .and_then(|m| self.family_of.get(m.pattern().as_usize()).cloned())
    }

    /// Every mention on one scanned page at `path` (the URL's path, for
    /// news sections), one per key, the strongest kept.
    pub(crate) fn mentions(&self, page: &Scanned, path: &str) -> Vec<Mention> {
        let lower_path = path.to_lowercase();
        let news = page.article || NEWS_PATHS.iter().any(|p| lower_path.contains(p));
        let mut by_key: BTreeMap<String, Mention> = BTreeMap::new();
        for block in &page.blocks {
            for m in self.block_mentions(block, page, news) {
                match by_key.get_mut(&m.key) {
                    Some(old) if old.weight >= m.weight => {
                        if old.price.is_none() {
                            old.price = m.price;
                        }
                    }
                    _ => {
                        by_key.insert(m.key.clone(), m);
                    }
                }
            }
        }
        by_key.into_values().collect()
    }

    fn block_mentions(&self, block: &Block, page: &Scanned, news: bool) -> Vec<Mention> {
        let folded = fold_words(&block.text);
        let makers = self.makers_in(&folded);
        let family = self.family_in(&folded);
        let price = block.price.clone().or_else(|| {
            PRICE
                .as_ref()?
                .find(&block.text)
                .map(|m| m.as_str().trim().to_string())
        });
        let mut out = Vec::new();
        let mut used: Vec<String> = Vec::new();
        let parts = PART.as_ref().map(|re| re.captures_iter(&block.text));
        for cap in parts.into_iter().flatten() {
            let Some(tok) = cap.get(1).map(|m| m.as_str()) else {
                continue;
            };
            if !looks_like_part(tok) {
                continue;
            }
            let class = self.reference.classify_item(None, None, Some(tok), &[]);
            let (maker, fam) = if class.part_number.is_some() {
                (
                    class
                        .manufacturer
                        .clone()
                        .or_else(|| makers.first().cloned()),
                    class.family.clone().or_else(|| family.clone()),
                )
            } else if makers.len() == 1 && tok.chars().filter(char::is_ascii_digit).count() >= 2 {
                (makers.first().cloned(), family.clone())
            } else {
                continue;
            };
            let next_to_maker = maker.as_ref().is_some_and(|m| makers.contains(m));
            if let Some(m) = &maker {
                used.push(m.clone());
            }
            let key = crate::extract::normalise_part_number(tok);
            let (weight, reasons) = weigh(block, page, news, true, next_to_maker, price.is_some());
            out.push(Mention {
                key,
                maker,
                part: Some(tok.to_string()),
                family: fam,
                name: (block.kind == BlockKind::Product).then(|| product_name(&block.text)),
                price: price.clone(),
                weight,
                reasons,
                snippet: snippet(&block.text, tok),
            });
        }
        for m in makers {
            if used.contains(&m) {
                continue;
            }
            let key = match &family {
                Some(f) => format!("{}|{f}", m.to_lowercase()),
                None => m.to_lowercase(),
            };
            let (weight, reasons) = weigh(block, page, news, false, false, price.is_some());
            out.push(Mention {
                key,
                snippet: snippet(&block.text, m.split_whitespace().next().unwrap_or(&m)),
                maker: Some(m),
                part: None,
                family: family.clone(),
                name: (block.kind == BlockKind::Product).then(|| product_name(&block.text)),
                price: price.clone(),
                weight,
                reasons,
            });
        }
        out
    }
}

/// A product block's first part (`name · brand · mpn`).
fn product_name(text: &str) -> String {
    text.split(" · ").next().unwrap_or(text).to_string()
}

/// A token of part-number shape: letters and digits, both present, at
/// least four of them, not a lowercase word with a digit.
fn looks_like_part(tok: &str) -> bool {
    let alnum = tok.chars().filter(char::is_ascii_alphanumeric).count();
    let digits = tok.chars().filter(char::is_ascii_digit).count();
    let upper = tok.chars().filter(char::is_ascii_uppercase).count();
    let lower = tok.chars().filter(char::is_ascii_lowercase).count();
    alnum >= 4 && digits >= 1 && upper + lower >= 1 && upper >= lower
}

/// The context weight of a mention in `block`, and why.
fn weigh(
    block: &Block,
    page: &Scanned,
    news: bool,
    part: bool,
    next_to_maker: bool,
    price: bool,
) -> (Weight, Vec<String>) {
    let region = match block.region {
        Region::Main => None,
        Region::Nav => Some("navigation menu"),
        Region::Header => Some("page header"),
        Region::Footer => Some("footer"),
        Region::Aside => Some("sidebar"),
        Region::Partners => Some("partners logo strip"),
    };
    if let Some(r) = region {
        return (Weight::Weak, vec![r.to_string()]);
    }
    let mut strong = Vec::new();
    if block.kind == BlockKind::Product {
        strong.push("product data (JSON-LD or page state)".to_string());
    }
    if price {
        strong.push("price".to_string());
    }
    if part && block.table_row {
        strong.push("table row".to_string());
    }
    if part && page.add_to_cart {
        strong.push("add to cart".to_string());
    }
    if part && next_to_maker {
        strong.push("part number next to maker".to_string());
    }
    if !strong.is_empty() {
        return (Weight::Strong, strong);
    }
    if news {
        return (Weight::Weak, vec!["news post".to_string()]);
    }
    if block.kind == BlockKind::Alt && !part {
        return (Weight::Weak, vec!["image alt text (logo)".to_string()]);
    }
    let what = match block.kind {
        BlockKind::Title => "page title",
        BlockKind::Heading => "heading",
        BlockKind::Meta => "meta description",
        BlockKind::Alt => "image alt text",
        _ => "page text",
    };
    (Weight::Medium, vec![format!("{what}, no sign of an offer")])
}

/// About 160 characters of `text` around the first `needle`.
fn snippet(text: &str, needle: &str) -> String {
    const HALF: usize = 80;
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= 2 * HALF {
        return text.to_string();
    }
    let lower = text.to_lowercase();
    let at = lower
        .find(&needle.to_lowercase())
        .map(|b| text.get(..b).map_or(0, |s| s.chars().count()))
        .unwrap_or(0);
    let start = at.saturating_sub(HALF);
    let end = (at + HALF).min(chars.len());
    let mut s: String = chars.get(start..end).unwrap_or(&[]).iter().collect();
    if start > 0 {
        s.insert(0, '…');
    }
    if end < chars.len() {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::super::scan::scan_html;
    use super::*;

    fn reference() -> std::sync::Arc<Reference> {
        std::sync::Arc::new(Reference::embedded().expect("reference"))
    }

    fn find<'a>(ms: &'a [Mention], key: &str) -> Option<&'a Mention> {
        ms.iter().find(|m| m.key == key)
    }

    #[test]
    fn fold_is_word_bounded_in_any_script() {
        assert_eq!(
            fold_words("Texas-Instruments, Интел!"),
            " texas  instruments  интел "
        );
        assert_eq!(fold_words("إنتل"), " انتل ");
    }

    #[test]
    fn a_priced_part_is_strong_and_a_blog_maker_weak() {
        let r = reference();
        let s = Scanner::new(r);
        let shop = scan_html(
            "<table><tr><td>TMS320F28335PGFA</td><td>DSP</td><td>12,50 €</td></tr></table>",
        );
        let ms = s.mentions(&shop, "/electronique");
        let m = find(&ms, "TMS320F28335PGFA").expect("part");
        assert_eq!(m.weight, Weight::Strong, "{m:?}");
        assert_eq!(m.maker.as_deref(), Some("Texas Instruments"));
        assert!(m.reasons.iter().any(|r| r == "price"));
        let blog = scan_html("<article><p>Intel published its quarterly results.</p></article>");
        let ms = s.mentions(&blog, "/blog/2024/intel");
        assert_eq!(find(&ms, "intel").map(|m| m.weight), Some(Weight::Weak));
        // Not inside a word.
        let ms = s.mentions(&scan_html("<p>Intelligent sorting of metals</p>"), "/");
        assert!(ms.is_empty(), "{ms:?}");
    }

    #[test]
    fn french_russian_and_arabic_family_words() {
        let r = reference();
        let s = Scanner::new(r);
        for (text, key) in [
            (
                "<p>Processeurs de Texas Instruments et Intel</p>",
                "intel|cpu",
            ),
            ("<p>Процессоры Интел и микроконтроллеры</p>", "intel|cpu"),
            ("<p dir=rtl>معالجات إنتل</p>", "intel|cpu"),
        ] {
            let ms = s.mentions(&scan_html(text), "/");
            assert!(find(&ms, key).is_some(), "{text}: {ms:?}");
        }
    }
}
