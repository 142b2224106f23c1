//! The streaming extractor against the DOM path: over every page of the
//! scale harness's model, the demo scenario and pages from a seeded
//! generator (random nesting, unclosed and stray tags, entities, scripts,
//! comments, CDATA, templates, tables, non-ASCII text), both must give the
//! same result (record, next page, unmatched selectors, or error) for
//! every spec, and the pages the streaming path handles must really be
//! handled by it (a test that streamed nothing would prove nothing).

#[path = "../../benches/scale/pages.rs"]
pub(crate) mod pages;

use pivotwatch::config::{Config, LoadOptions};
use pivotwatch::extract::{
    ExtractSpec, HtmlSpec, extract_html, extract_html_dom, extract_html_stream,
    stream_fallback_reason,
};
use url::Url;

pub(crate) fn load(watchlist: &str) -> Vec<HtmlSpec> {
    let dir = tempfile::tempdir().expect("tempdir");
    let wl = dir.path().join("watchlists");
    std::fs::create_dir_all(&wl).expect("mkdir");
    std::fs::write(wl.join("w.toml"), watchlist).expect("write");
    let cfg = dir.path().join("pivotwatch.toml");
    std::fs::write(&cfg, "[http]\nallow_private_addresses = true\n").expect("write");
    let config = Config::load(&LoadOptions {
        config: Some(cfg),
        watchlists: Some(wl),
        state_dir: Some(dir.path().join("state")),
        check_address: Some(pivotwatch::alert::check_address),
    })
    .expect("watchlist loads");
    config
        .sources()
        .filter_map(|(_, s)| match &*s.spec {
            ExtractSpec::Html(h) => Some(h.clone()),
            ExtractSpec::Json(_) => None,
        })
        .collect()
}

/// Both paths on one page; whether the streaming path handled it.
pub(crate) fn same(spec: &HtmlSpec, page: &str, what: &str) -> bool {
    let base = Url::parse("http://127.0.0.1:9/x/page.html").expect("url");
    let dom = extract_html_dom(spec, page, &base, &no_time);
    let stream = extract_html_stream(spec, page, &base, &no_time);
    let streamed = match &stream {
        Ok(None) => false,
        Ok(Some(p)) => {
            assert_eq!(dom.as_ref().ok(), Some(p), "{what}: records differ\n{page}");
            true
        }
        Err(e) => {
            assert_eq!(dom.as_ref().err(), Some(e), "{what}: errors differ\n{page}");
            true
        }
    };
    // The combined entry point gives the DOM's answer too.
    assert_eq!(
        extract_html(spec, page, &base, &no_time),
        dom,
        "{what}: extract_html\n{page}"
    );
    streamed
}

fn stream_spec(spec: &HtmlSpec) {
    assert_eq!(spec.engine_name(), "stream", "spec should stream");
}

#[test]
fn scale_harness_pages_extract_the_same_and_all_stream() {
    let mut wl = String::from("[watchlist]\nname = \"bench\"\n");
    wl.push_str(&pages::entity_toml("http://127.0.0.1:9", 0));
    let specs = load(&wl);
    let plain = load(PLAIN);
    let model = pages::Model {
        seed: "pivotwatch".into(),
        n: 40,
        fraction: 0.2,
        noise_fraction: 0.2,
    };
    let mut pages_seen = 0;
    for g in 0..2 {
        let states = model.states(g);
        for (i, state) in states.iter().enumerate() {
            let page = model.render(i, state);
            pages_seen += 1;
            for spec in specs.iter().chain(&plain) {
                stream_spec(spec);
                let base = Url::parse("http://127.0.0.1:9/").expect("url");
                assert_eq!(
                    stream_fallback_reason(spec, &page, &base, &no_time),
                    None,
                    "scale page {i} gen {g} fell back"
                );
                assert!(same(spec, &page, &format!("scale page {i} gen {g}")));
            }
        }
    }
    assert_eq!(pages_seen, 80);
}

const PLAIN: &str = r#"[watchlist]
name = "plain"
[[entity]]
id = "p"
name = "P"
[[entity.source]]
id = "body"
kind = "page"
url = "http://127.0.0.1:9/p"
[entity.source.fields]
content = "body"
"#;

#[test]
fn demo_pages_extract_the_same() {
    let specs = load(&pivotwatch::app::demo::WATCHLIST.replace("{BASE}", "http://127.0.0.1:9"));
    assert!(!specs.is_empty());
    for spec in &specs {
        stream_spec(spec);
        for (i, page) in pivotwatch::app::demo::html_pages().iter().enumerate() {
            same(spec, page, &format!("demo page {i}"));
        }
    }
}

/// The specs the generated pages are read with: fields (text, attribute,
/// `all`), rows with columns, a next-page link; and one that needs the DOM.
pub(crate) const GENERATED: &str = r#"[watchlist]
name = "gen"
[[entity]]
id = "g"
name = "G"
[[entity.source]]
id = "fields"
kind = "page"
url = "http://127.0.0.1:9/a"
[entity.source.fields]
title = "title"
first_a = ".a"
span_in_b = "div.b > span"
paras = { selector = "p", all = true }
links = { selector = "a", attr = "href", all = true }
x = { selector = "[data-x]", attr = "data-x" }
lis = { selector = "ul li", all = true }
script = "script"
heads = { selector = "h2 b, h3", all = true }
cells = { selector = "td", all = true }
desc = { selector = "meta[name=description]", attr = "content" }
pre = "pre"
body = "body"
any = { selector = "*", all = true }
[[entity.source]]
id = "rows"
kind = "catalogue"
url = "http://127.0.0.1:9/b"
[entity.source.items]
row = "tr"
part_number = "td.pn"
name = ".name"
link = { selector = "a", attr = "href" }
next_page = { selector = "a.next", attr = "href" }
[[entity.source]]
id = "lis"
kind = "catalogue"
url = "http://127.0.0.1:9/c"
[entity.source.items]
row = "li, div.b"
name = "span, b"
part_number = { selector = "i", attr = "title" }
[[entity.source]]
id = "dom"
kind = "page"
url = "http://127.0.0.1:9/d"
[entity.source.fields]
sib = "li + li"
"#;

/// splitmix64.
pub(crate) struct Rng(pub(crate) u64);
impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub(crate) fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
}

const TAGS: &[&str] = &[
    "div", "div", "p", "p", "span", "span", "a", "b", "i", "li", "ul", "ol", "table", "tr", "td",
    "td", "th", "tbody", "thead", "h2", "h3", "section", "article", "strong", "em", "pre", "dl",
    "dd", "dt", "button", "form", "label", "nav", "small", "u", "font", "nobr", "center",
];
const VOIDS: &[&str] = &[
    "br",
    "img",
    "hr",
    "input",
    "meta",
    "wbr",
    "link",
    "input type=hidden",
];
const TEXTS: &[&str] = &[
    "alpha",
    " beta ",
    "Ünïcødé ",
    "x&amp;y",
    "&nbsp;",
    "&lt;tag&gt;",
    "&#x41;&#66;",
    "&notin",
    "&amp",
    "\n",
    "  ",
    "Mét\u{0301}aux",
    "日本語",
    "\u{a0}",
    "TI TMS320",
    "\t",
    "a\u{200b}b",
    "e&eacute;",
    "&#0;",
    "\r\n",
];
const CLASSES: &[&str] = &["a", "b", "pn", "name", "next", "a b", "", "x"];

fn attrs(r: &mut Rng) -> String {
    let mut s = String::new();
    for _ in 0..r.below(3) {
        match r.below(6) {
            0 => s.push_str(&format!(" class=\"{}\"", r.pick(CLASSES))),
            1 => s.push_str(&format!(" href=\"/p/{}?q=1&amp;r=2\"", r.below(9))),
            2 => s.push_str(&format!(" data-x='{}'", r.pick(TEXTS))),
            3 => s.push_str(" id=main"),
            4 => s.push_str(&format!(" title=\"T{}\"", r.below(4))),
            _ => s.push_str(" class=name name=description content=\"d &amp; e\""),
        }
    }
    s
}

const INLINE: &[&str] = &[
    "span", "a", "b", "i", "strong", "em", "small", "u", "font", "label",
];
const TAME: &[&str] = &[
    "div", "div", "p", "p", "span", "a", "b", "li", "ul", "ol", "table", "h2", "h3", "section",
    "article", "strong", "pre", "dl", "dd", "dt", "nav", "u", "center",
];

/// `wild`: any construct; else the sloppiness of real pages only (tags
/// left open where HTML implies their end, formatting closed in order,
/// tables made of rows and cells). `inline`: inside a formatting element.
fn gen_node(r: &mut Rng, wild: bool, inline: bool, depth: usize, out: &mut String) {
    match r.below(if depth > 7 { 4 } else { 14 }) {
        0 | 1 => out.push_str(r.pick(TEXTS)),
        2 => out.push_str(&format!("<{}{}>", r.pick(VOIDS), attrs(r))),
        3 => {
            let tame = [0, 1, 2, 3, 4, 6, 8, 11];
            let k = if wild {
                r.below(12)
            } else {
                tame[r.below(tame.len())]
            };
            match k {
                0 => out.push_str("<!-- a <b>comment</b> -->"),
                1 => out.push_str("<![CDATA[ x < y ]]>"),
                2 => out.push_str("<script>var s = '<div>' + \"</p>\";</script>"),
                3 => out.push_str("<style>p > b { color: red }</style>"),
                4 => out.push_str("<noscript><p class=a>no js</p></noscript>"),
                5 => out.push_str("<template><li class=b>tpl</li></template>"),
                6 => out.push_str("<textarea>\n<b>raw</b> &amp;</textarea>"),
                7 => out.push_str(&format!("</{}>", r.pick(TAGS))),
                8 => out.push_str("<title>T &amp; t</title>"),
                9 => out.push_str("<select><option>o1<option>o2</select>"),
                10 => out.push_str("<svg><title>s</title><rect/></svg>"),
                _ => out.push_str("<p/>"),
            }
        }
        _ if !wild && !inline && r.below(6) == 0 => gen_table(r, depth, out),
        _ => {
            let t = if wild {
                r.pick(TAGS)
            } else if inline {
                r.pick(INLINE)
            } else {
                r.pick(TAME)
            };
            if !wild && t == "table" {
                return gen_table(r, depth, out);
            }
            out.push_str(&format!("<{t}{}>", attrs(r)));
            let inner = inline || INLINE.contains(&t);
            for _ in 0..r.below(5) {
                gen_node(r, wild, inner, depth + 1, out);
            }
            let may_stay_open = matches!(t, "p" | "li" | "dd" | "dt");
            if wild && r.below(5) == 0 || !wild && may_stay_open && r.below(3) == 0 {
                // Left open.
            } else {
                // Usually closed, sometimes wrong.
                let close = if wild && r.below(8) == 0 {
                    r.pick(TAGS)
                } else {
                    t
                };
                out.push_str(&format!("</{close}>"));
            }
        }
    }
}

/// A table as real pages write it: optional head and body, rows and
/// cells whose end tags may be left out.
fn gen_table(r: &mut Rng, depth: usize, out: &mut String) {
    out.push_str(&format!("<table{}>\n", attrs(r)));
    if r.below(2) == 0 {
        out.push_str("<thead><tr><th>Part</th><th>Name</th></tr></thead>\n");
    }
    let body = r.below(2) == 0;
    if body {
        out.push_str("<tbody>");
    }
    for _ in 0..r.below(5) {
        out.push_str(&format!("<tr{}>", attrs(r)));
        for _ in 0..1 + r.below(3) {
            let class = ["pn", "name", "", "pn x"][r.below(4)];
            out.push_str(&format!("<td class=\"{class}\">"));
            for _ in 0..r.below(3) {
                gen_node(r, false, false, depth + 3, out);
            }
            if r.below(3) != 0 {
                out.push_str("</td>");
            }
        }
        if r.below(2) == 0 {
            out.push_str("</tr>");
        }
        out.push_str("\n  ");
    }
    if body && r.below(2) == 0 {
        out.push_str("</tbody>");
    }
    out.push_str("</table>");
}

pub(crate) fn generate(seed: u64) -> String {
    let mut r = Rng(seed);
    let mut out = String::new();
    match r.below(4) {
        0 => out.push_str("<!DOCTYPE html>"),
        1 => out.push_str("<!DOCTYPE html PUBLIC \"-//W3C//DTD HTML 4.01//EN\">"),
        2 => {}
        _ => out.push_str("<!doctype html><html lang=en><head><title>t</title></head>"),
    }
    if r.below(2) == 0 {
        out.push_str("<body class=x>");
    }
    let wild = r.below(2) == 0;
    for _ in 0..1 + r.below(8) {
        gen_node(&mut r, wild, false, 0, &mut out);
    }
    if r.below(3) == 0 {
        out.push_str("</body></html>");
        gen_node(&mut r, wild, false, 5, &mut out);
    }
    out
}

#[test]
fn generated_pages_extract_the_same() {
    let specs = load(GENERATED);
    assert_eq!(specs.len(), 4);
    for s in &specs[..3] {
        stream_spec(s);
    }
    assert_eq!(
        specs[3].engine_name(),
        "dom (selector `li + li` needs the tree)"
    );
    let mut streamed = 0;
    let mut reasons = std::collections::BTreeMap::new();
    let base = Url::parse("http://127.0.0.1:9/x/page.html").expect("url");
    let n = 600;
    for seed in 0..n {
        let page = generate(seed);
        for spec in &specs {
            if same(spec, &page, &format!("generated page, seed {seed}")) {
                streamed += 1;
            } else if let Some(why) = stream_fallback_reason(spec, &page, &base, &no_time) {
                *reasons.entry(why).or_insert(0usize) += 1;
            }
        }
    }
    // A sixth of the (page, streamable spec) pairs at least go the
    // streaming way; the rest fall back and still agree.
    eprintln!(
        "{streamed} of {} page/spec pairs streamed; fallbacks: {reasons:?}",
        3 * n
    );
    assert!(streamed >= n as usize / 2, "only {streamed} streamed");
}

#[test]
fn probe_names_the_extractor_and_a_page_that_needs_the_dom() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let site = rt
        .block_on(pivotwatch::app::demo::Site::start())
        .expect("site");
    site.set(
        "/plain",
        pivotwatch::app::demo::Page::html("<ul><li class=a>one</li><li>two</li></ul>"),
    );
    site.set(
        "/select",
        pivotwatch::app::demo::Page::html(
            "<ul><li class=a>one</li></ul><select><option>x</select>",
        ),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let probe = |path: &str, field: &str| {
        let out = crate::support::process::pivotwatch(
            dir.path(),
            &[
                "probe",
                &site.url(path),
                "--allow-private-addresses",
                "--field",
                field,
            ],
        );
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let out = probe("/plain", "first=li.a");
    assert!(out.contains("extractor: stream\n"), "{out}");
    assert!(out.contains("field first: one"), "{out}");
    let out = probe("/select", "first=li.a");
    assert!(
        out.contains("extractor: stream (this page through the DOM: select)"),
        "{out}"
    );
    assert!(out.contains("field first: one"), "{out}");
    let out = probe("/plain", "second=li + li");
    assert!(
        out.contains("extractor: dom (selector `li + li` needs the tree)"),
        "{out}"
    );
    assert!(out.contains("field second: two"), "{out}");
    drop(rt);
}

/// The parse bound's clock in these tests: no time spent (the tests
/// compare results; the bound itself is tested in `extract::limits`).
fn no_time() -> std::time::Duration {
    std::time::Duration::ZERO
}
