//! One HTML page as text blocks, with no DOM and no selectors: the
//! streaming extractor's byte-level tokenizer (`extract::tokens`; html5ever's
//! for a page it gives up on) alone (no tree builder), a stack of open elements kept only
//! to know which region a text sits in (navigation, footer, a partners
//! logo strip, a table row), plus the title, meta description, image alt
//! texts, links, `rel=canonical`, JSON-LD `Product`/`Offer` objects and
//! embedded SSR JSON state.
//!
//! **Architecture Invariant:** pure: text in, blocks out.

use std::cell::RefCell;

use html5ever::TokenizerResult;
use html5ever::tendril::StrTendril;
use html5ever::tokenizer::{
    BufferQueue, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
};

use crate::extract::tokens::{self, Flow, Tok};

/// Where on the page a text block sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Region {
    /// The page's own content.
    #[default]
    Main,
    /// A navigation menu (`<nav>`, a `menu` class).
    Nav,
    /// The page header.
    Header,
    /// The footer.
    Footer,
    /// A sidebar.
    Aside,
    /// A partners / brands / clients logo strip.
    Partners,
}

/// What kind of text a block is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum BlockKind {
    /// Visible text.
    Text,
    /// `<title>`.
    Title,
    /// `<h1>`…`<h6>`.
    Heading,
    /// `<meta name=description>`.
    Meta,
    /// An image's alt text.
    Alt,
    /// A JSON-LD `Product` (or an SSR product object): name, brand, part
    /// number and price joined.
    Product,
}

/// A run of text between two block boundaries.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Block {
    pub(crate) text: String,
    pub(crate) kind: BlockKind,
    pub(crate) region: Region,
    /// Inside a `<tr>`.
    pub(crate) table_row: bool,
    /// For [`BlockKind::Product`]: its price, when the offer has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) price: Option<String>,
}

/// What the tokenizer saw on one page.
#[derive(Debug, Default, Clone)]
pub(crate) struct Scanned {
    pub(crate) blocks: Vec<Block>,
    /// `href`s of `<a>`, `<area>` and `<link rel=alternate>`, as written.
    pub(crate) links: Vec<String>,
    /// `<link rel=canonical href>`.
    pub(crate) canonical: Option<String>,
    /// JSON-LD or `og:type` says article / news / blog post.
    pub(crate) article: bool,
    /// The page has an "add to cart" control.
    pub(crate) add_to_cart: bool,
    /// Scripts on the page.
    pub(crate) scripts: usize,
    /// Characters of visible text (title and alt excluded).
    pub(crate) visible_chars: usize,
}

impl Scanned {
    /// A page that is only a JavaScript shell: scripts, almost no text
    /// and no product data a crawler can read.
    pub(crate) fn javascript_only(&self) -> bool {
        self.scripts > 0
            && self.visible_chars < 120
            && !self.blocks.iter().any(|b| b.kind == BlockKind::Product)
    }
}

const BLOCK_TAGS: &[&str] = &[
    "p",
    "div",
    "li",
    "ul",
    "ol",
    "tr",
    "table",
    "tbody",
    "thead",
    "section",
    "article",
    "main",
    "header",
    "footer",
    "nav",
    "aside",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "dd",
    "dt",
    "dl",
    "br",
    "form",
    "figure",
    "figcaption",
    "blockquote",
    "body",
    "option",
    "select",
    "button",
];
const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
    "wbr", "param",
];
/// Tags inside a word's run (`TMS<b>320</b>`): no space at their edges.
const INLINE: &[&str] = &[
    "b", "i", "em", "strong", "sup", "sub", "small", "u", "font", "wbr",
];
const CART_WORDS: &[&str] = &[
    "add to cart",
    "add to basket",
    "buy now",
    "ajouter au panier",
    "в корзину",
    "купить",
    "أضف إلى السلة",
    "اشتر الآن",
];

#[derive(Default)]
struct State {
    out: Scanned,
    /// Open elements: (name, region it sets, is a table row).
    stack: Vec<(String, Option<Region>, bool)>,
    text: String,
    /// Inside `<title>`, `<script>`, `<style>`, a heading.
    in_title: bool,
    title: String,
    heading: usize,
    /// The open `<script>`: its kind, and its text.
    script: Option<ScriptKind>,
    script_text: String,
    in_style: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ScriptKind {
    JsonLd,
    Json,
    Other,
}

struct Sink(RefCell<State>);

impl State {
    fn region(&self) -> Region {
        self.stack
            .iter()
            .rev()
            .find_map(|(_, r, _)| *r)
            .unwrap_or(Region::Main)
    }

    fn table_row(&self) -> bool {
        self.stack.iter().any(|(_, _, tr)| *tr)
    }

    fn flush(&mut self) {
        let text = collapse(&self.text);
        self.text.clear();
        if text.is_empty() {
            return;
        }
        let kind = if self.heading > 0 {
            BlockKind::Heading
        } else {
            BlockKind::Text
        };
        self.out.visible_chars += text.chars().count();
        let lower = text.to_lowercase();
        if CART_WORDS.iter().any(|w| lower.contains(w)) {
            self.out.add_to_cart = true;
        }
        let block = Block {
            text,
            kind,
            region: self.region(),
            table_row: self.table_row(),
            price: None,
        };
        self.out.blocks.push(block);
    }

    fn start(&mut self, name: &str, attrs: &[(String, String)], self_closing: bool) {
        let attr = |k: &str| attrs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        if BLOCK_TAGS.contains(&name) {
            self.flush();
        } else if !INLINE.contains(&name) {
            self.text.push(' ');
        }
        match name {
            "a" | "area" => {
                if let Some(h) = attr("href") {
                    self.out.links.push(h.to_string());
                }
            }
            "link" => {
                let rel = attr("rel").unwrap_or("").to_ascii_lowercase();
                if let Some(h) = attr("href") {
                    if rel.split_whitespace().any(|r| r == "canonical") {
                        self.out.canonical = Some(h.to_string());
                    } else if rel.split_whitespace().any(|r| r == "alternate")
                        && attr("hreflang").is_some()
                    {
                        self.out.links.push(h.to_string());
                    }
                }
            }
            "meta" => {
                let key = attr("name")
                    .or_else(|| attr("property"))
                    .unwrap_or("")
                    .to_ascii_lowercase();
                let content = attr("content").unwrap_or("");
                if key == "description" || key == "og:description" {
                    let text = collapse(content);
                    if !text.is_empty() {
                        self.out.blocks.push(Block {
                            text,
                            kind: BlockKind::Meta,
                            region: Region::Main,
                            table_row: false,
                            price: None,
                        });
                    }
                } else if key == "og:type" && content.eq_ignore_ascii_case("article") {
                    self.out.article = true;
                }
            }
            "img" => {
                if let Some(alt) = attr("alt") {
                    let text = collapse(alt);
                    if !text.is_empty() {
                        self.out.blocks.push(Block {
                            text,
                            kind: BlockKind::Alt,
                            region: self.region(),
                            table_row: self.table_row(),
                            price: None,
                        });
                    }
                }
            }
            "input" | "button" => {
                let v = attr("value").unwrap_or("").to_lowercase();
                if CART_WORDS.iter().any(|w| v.contains(w)) {
                    self.out.add_to_cart = true;
                }
            }
            "title" => self.in_title = true,
            "style" => self.in_style = true,
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => self.heading += 1,
            _ => {}
        }
        if VOID.contains(&name) || self_closing {
            return;
        }
        let class = format!(
            "{} {}",
            attr("class").unwrap_or(""),
            attr("id").unwrap_or("")
        )
        .to_ascii_lowercase();
        let region = match name {
            "nav" => Some(Region::Nav),
            "footer" => Some(Region::Footer),
            "header" => Some(Region::Header),
            "aside" => Some(Region::Aside),
            _ => class_region(&class),
        };
        self.stack.push((name.to_string(), region, name == "tr"));
    }

    fn end(&mut self, name: &str) {
        if BLOCK_TAGS.contains(&name) {
            self.flush();
        } else if !INLINE.contains(&name) {
            self.text.push(' ');
        }
        match name {
            "title" => {
                self.in_title = false;
                let text = collapse(&std::mem::take(&mut self.title));
                if !text.is_empty() {
                    self.out.blocks.push(Block {
                        text,
                        kind: BlockKind::Title,
                        region: Region::Main,
                        table_row: false,
                        price: None,
                    });
                }
            }
            "style" => self.in_style = false,
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                self.heading = self.heading.saturating_sub(1)
            }
            _ => {}
        }
        if let Some(pos) = self.stack.iter().rposition(|(n, _, _)| n == name) {
            self.stack.truncate(pos);
        }
    }

    fn end_script(&mut self) {
        let text = std::mem::take(&mut self.script_text);
        match self.script.take() {
            Some(ScriptKind::JsonLd) => {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(text.trim()) {
                    self.json_ld(&v);
                }
            }
            Some(ScriptKind::Json) | Some(ScriptKind::Other) => {
                // SSR state: `{…}` as the whole script, or after an `=`.
                if let (Some(a), Some(b)) = (text.find('{'), text.rfind('}'))
                    && a < b
                    && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text[a..=b])
                {
                    let mut n = 0;
                    self.ssr(&v, 0, &mut n);
                }
            }
            None => {}
        }
    }

    fn json_ld(&mut self, v: &serde_json::Value) {
        match v {
            serde_json::Value::Array(a) => a.iter().for_each(|x| self.json_ld(x)),
            serde_json::Value::Object(o) => {
                let types: Vec<String> = match o.get("@type") {
                    Some(serde_json::Value::String(s)) => vec![s.to_ascii_lowercase()],
                    Some(serde_json::Value::Array(a)) => a
                        .iter()
                        .filter_map(|x| x.as_str().map(str::to_ascii_lowercase))
                        .collect(),
                    _ => vec![],
                };
                if types
                    .iter()
                    .any(|t| matches!(t.as_str(), "newsarticle" | "blogposting" | "article"))
                {
                    self.out.article = true;
                }
                if types.iter().any(|t| t == "product" || t == "offer") {
                    self.product(o);
                }
                for key in ["@graph", "itemListElement", "item", "mainEntity", "hasPart"] {
                    if let Some(x) = o.get(key) {
                        self.json_ld(x);
                    }
                }
            }
            _ => {}
        }
    }

    /// One product-like object (JSON-LD `Product`/`Offer`, or SSR state
    /// with a name and a part number, brand or price).
    fn product(&mut self, o: &serde_json::Map<String, serde_json::Value>) {
        let s = |k: &str| -> Option<String> {
            match o.get(k)? {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                serde_json::Value::Object(m) => m.get("name")?.as_str().map(str::to_string),
                _ => None,
            }
        };
        let mut parts = Vec::new();
        for k in [
            "name",
            "title",
            "brand",
            "manufacturer",
            "mpn",
            "sku",
            "model",
            "partNumber",
            "part_number",
            "description",
        ] {
            if let Some(v) = s(k) {
                parts.push(v);
            }
        }
        let mut price = s("price").map(|p| match s("priceCurrency").or_else(|| s("currency")) {
            Some(c) => format!("{p} {c}"),
            None => p,
        });
        if price.is_none()
            && let Some(offers) = o.get("offers")
        {
            let first = match offers {
                serde_json::Value::Array(a) => a.first(),
                x => Some(x),
            };
            if let Some(serde_json::Value::Object(off)) = first {
                let g = |k: &str| {
                    off.get(k).and_then(|v| match v {
                        serde_json::Value::String(s) => Some(s.clone()),
                        serde_json::Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    })
                };
                price = g("price")
                    .or_else(|| g("lowPrice"))
                    .map(|p| match g("priceCurrency") {
                        Some(c) => format!("{p} {c}"),
                        None => p,
                    });
            }
        }
        let text = collapse(&parts.join(" · "));
        if !text.is_empty() {
            self.out.blocks.push(Block {
                text,
                kind: BlockKind::Product,
                region: Region::Main,
                table_row: false,
                price,
            });
        }
    }

    /// Walks SSR state for product-like objects (bounded: depth 12, 2000
    /// objects).
    fn ssr(&mut self, v: &serde_json::Value, depth: usize, n: &mut usize) {
        if depth > 12 || *n > 2000 {
            return;
        }
        *n += 1;
        match v {
            serde_json::Value::Array(a) => a.iter().for_each(|x| self.ssr(x, depth + 1, n)),
            serde_json::Value::Object(o) => {
                let has = |ks: &[&str]| ks.iter().any(|k| o.contains_key(*k));
                if has(&["name", "title"])
                    && has(&[
                        "mpn",
                        "partNumber",
                        "part_number",
                        "sku",
                        "brand",
                        "manufacturer",
                        "price",
                    ])
                {
                    self.product(o);
                } else {
                    o.values().for_each(|x| self.ssr(x, depth + 1, n));
                }
            }
            _ => {}
        }
    }
}

fn class_region(class: &str) -> Option<Region> {
    let has = |w: &str| class.contains(w);
    if has("partner") || has("logo") || has("sponsor") || has("clients") || has("brands-strip") {
        Some(Region::Partners)
    } else if has("footer") {
        Some(Region::Footer)
    } else if has("menu")
        || has("navbar")
        || has("nav ")
        || class.starts_with("nav")
        || has("breadcrumb")
    {
        Some(Region::Nav)
    } else if has("sidebar") {
        Some(Region::Aside)
    } else {
        None
    }
}

/// Whitespace runs as one space, trimmed.
pub(crate) fn collapse(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for w in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    }
    out
}

impl State {
    /// One token, from either tokenizer; the raw-text state it asks for.
    fn token(&mut self, tok: Tok<'_>) -> Flow {
        match tok {
            Tok::Tag(tag) => {
                let name: &str = &tag.name;
                if tag.end {
                    if name == "script" {
                        self.end_script();
                    } else {
                        self.end(name);
                    }
                    return Flow::Go;
                }
                if name == "script" {
                    self.out.scripts += 1;
                    let ty = tag
                        .attr("type")
                        .map(|v| v.to_ascii_lowercase())
                        .unwrap_or_default();
                    self.script = Some(if ty == "application/ld+json" {
                        ScriptKind::JsonLd
                    } else if ty.contains("json") {
                        ScriptKind::Json
                    } else {
                        ScriptKind::Other
                    });
                    return Flow::Script;
                }
                let attrs: Vec<(String, String)> = tag
                    .attrs
                    .iter()
                    .map(|a| (a.name.to_string(), a.value.to_string()))
                    .collect();
                self.start(name, &attrs, tag.self_closing);
                match name {
                    "style" => Flow::Rawtext,
                    "title" | "textarea" => Flow::Rcdata,
                    _ => Flow::Go,
                }
            }
            Tok::Text(t) => {
                if self.script.is_some() {
                    if self.script_text.len() < 2 * 1024 * 1024 {
                        self.script_text.push_str(t);
                    }
                } else if self.in_title {
                    self.title.push_str(t);
                } else if !self.in_style {
                    self.text.push_str(t);
                }
                Flow::Go
            }
            Tok::Eof => {
                self.flush();
                Flow::Go
            }
            Tok::Comment(_) | Tok::Doctype(_) | Tok::Error | Tok::Null => Flow::Go,
        }
    }
}

impl tokens::Sink for State {
    fn token(&mut self, tok: Tok<'_>, _pos: usize) -> Flow {
        State::token(self, tok)
    }
}

/// html5ever's tokens for the pages the byte-level tokenizer gives up.
impl TokenSink for Sink {
    type Handle = ();

    fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
        let mut st = self.0.borrow_mut();
        let flow = tokens::from_html5ever(token, |t| st.token(t));
        tokens::html5ever_result(flow)
    }
}

/// Scans one HTML page: the streaming extractor's byte-level tokenizer,
/// html5ever's for a page it gives up on (the same tokens either way).
pub(crate) fn scan_html(html: &str) -> Scanned {
    let mut st = State::default();
    if tokens::tokenize(html, &mut st).is_ok() {
        st.flush();
        return st.out;
    }
    scan_html5ever(html)
}

/// [`scan_html`] on html5ever's tokenizer.
pub(crate) fn scan_html5ever(html: &str) -> Scanned {
    let tok = Tokenizer::new(
        Sink(RefCell::new(State::default())),
        TokenizerOpts::default(),
    );
    let input = BufferQueue::default();
    input.push_back(StrTendril::from_slice(html));
    while let TokenizerResult::Script(()) = tok.feed(&input) {}
    tok.end();
    let mut st = tok.sink.0.into_inner();
    st.flush();
    st.out
}

/// Plain text (a PDF's) as blocks, one per line.
pub(crate) fn scan_text(text: &str) -> Scanned {
    let mut out = Scanned::default();
    for line in text.lines() {
        let t = collapse(line);
        if t.is_empty() {
            continue;
        }
        out.visible_chars += t.chars().count();
        out.blocks.push(Block {
            text: t,
            kind: BlockKind::Text,
            region: Region::Main,
            // A price list's line is a row.
            table_row: true,
            price: None,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both tokenizers give the scan the same page: over pieces of real
    /// shop pages and the odd constructs (entities, comments, raw text,
    /// JSON-LD, CR, unclosed tags), in seeded combinations.
    #[test]
    fn the_byte_level_tokenizer_scans_as_html5ever_does() {
        const PIECES: &[&str] = &[
            "<html><head><title>Shop &amp; Co</title>",
            "<meta name=\"description\" content=\"Chips &lt;fast&gt;\">",
            "<link rel=canonical href='/p/1'>",
            "<script type=\"application/ld+json\">{\"@type\":\"Product\",\"name\":\"DSP\",\"mpn\":\"TMS320\"}</script>",
            "<script>var s = '</scr' + 'ipt>'; if (a<b) {}</script>",
            "<style>p > b { color: red }</style>",
            "<nav class=menu><a href=\"/a?x=1&amp;y=2\">Intel</a></nav>",
            "<table><tr><td>LM317<td>1.20 &euro;</tr></table>",
            "<footer>&copy 2026 Partners: <img alt=\"Acme\" src=a.png></footer>",
            "<!-- <p>hidden</p> -->",
            "<!DOCTYPE html>",
            "<p>unclosed <b>bold",
            "\r\n<P CLASS=Partners>Logo strip</P>\r",
            "<textarea>a &amp; <b></textarea>",
            "&notin; &#x41; &#128; &amp",
            // Attribute values keep `&name` before `=` or an alphanumeric.
            "<a href=\"/s?x=1&copy=2&amp;y&lt3\">Query &copy2026 &notit;</a>",
            "<img alt=\"&pound=5 &pound5 &pound;\" src=\"/i?a&amp=b\">",
            "<div class=\"product\"><h2>Name</h2><span class=price>9.99</span></div>",
            "<script>x<!-- y --></script>",
            "</>",
            "<?xml x?>",
        ];
        let mut seed = 7u64;
        for n in 0..300 {
            let mut page = String::new();
            for _ in 0..1 + n % 12 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                page.push_str(PIECES[(seed >> 33) as usize % PIECES.len()]);
            }
            assert_eq!(
                format!("{:?}", scan_html(&page)),
                format!("{:?}", scan_html5ever(&page)),
                "{page}"
            );
        }
    }

    #[test]
    fn regions_links_json_ld_and_scripts() {
        let html = r#"<html><head><title>Shop</title>
<meta name="description" content="Processors by Intel">
<link rel="canonical" href="/p/1">
<script type="application/ld+json">{"@type":"Product","name":"DSP","brand":{"name":"Texas Instruments"},"mpn":"TMS320F28335","offers":{"price":"12.50","priceCurrency":"EUR"}}</script>
<script>var x = "<p>not text</p>";</script>
</head><body><nav><a href="/a">Intel</a></nav>
<table><tr><td>LM317</td><td>1.20 €</td></tr></table>
<div class="partners-strip"><img src=x alt="NXP"></div>
<footer>© Intel</footer></body></html>"#;
        let s = scan_html(html);
        assert_eq!(s.canonical.as_deref(), Some("/p/1"));
        assert_eq!(s.links, vec!["/a".to_string()]);
        let find = |t: &str| s.blocks.iter().find(|b| b.text.contains(t)).cloned();
        assert_eq!(find("Shop").map(|b| b.kind), Some(BlockKind::Title));
        let p = find("TMS320F28335").expect("product");
        assert_eq!(p.kind, BlockKind::Product);
        assert_eq!(p.price.as_deref(), Some("12.50 EUR"));
        assert_eq!(find("Intel").map(|b| b.kind), Some(BlockKind::Meta));
        assert!(
            s.blocks
                .iter()
                .any(|b| b.text == "Intel" && b.region == Region::Nav)
        );
        assert!(
            s.blocks
                .iter()
                .any(|b| b.text == "© Intel" && b.region == Region::Footer)
        );
        assert!(
            s.blocks
                .iter()
                .any(|b| b.text == "NXP" && b.region == Region::Partners)
        );
        let row = find("LM317").expect("row");
        assert!(row.table_row);
        assert!(!s.blocks.iter().any(|b| b.text.contains("not text")));
    }

    #[test]
    fn a_script_shell_is_javascript_only() {
        let s = scan_html(
            r#"<html><head><title>App</title><script src="/app.js"></script></head><body><div id="root"></div><noscript>Enable JavaScript</noscript></body></html>"#,
        );
        assert!(s.javascript_only());
        let t = scan_html(
            "<p>Texas Instruments TMS320F28335 digital signal processors in stock, shipped worldwide from our warehouse in Tangier, with datasheets.</p><script>1</script>",
        );
        assert!(!t.javascript_only());
    }
}
